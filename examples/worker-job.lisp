;;;; worker-job.lisp -- a job done in a worker thread, its result reported to
;;;; the event loop through a notifier (cl-async's threading page).
;;;;
;;;;   sbcl --non-interactive --load examples/worker-job.lisp
;;;;
;;;; The loop keeps running (an interval ticks) while a bordeaux-threads
;;;; worker counts the primes below 200,000.  The worker stores its result,
;;;; then triggers the notifier -- the one call that is safe from another
;;;; thread; the notifier's callback then runs in the loop's thread, where it
;;;; may use the loop (it stops the interval), and the single-shot notifier
;;;; frees itself.  With nothing left, the loop ends.

(load (merge-pathnames "load.lisp" *load-truename*))

(defpackage #:worker-job-example (:use #:cl))
(in-package #:worker-job-example)

(defun say (fmt &rest args)
  (format t "~&~?~%" fmt args)
  (finish-output))

(defun count-primes-below (n)
  (let ((sieve (make-array n :element-type 'bit :initial-element 1)))
    (loop for i from 2 below n
          when (= 1 (sbit sieve i))
            count it
            and do (loop for j from (* i i) below n by i
                         do (setf (sbit sieve j) 0)))))

(defun main ()
  (let ((ticks 0))
    (as:with-event-loop ()
      (let* ((loop-thread (bt:current-thread))
             (result nil)
             (ticker (as:interval (lambda () (incf ticks)) :time 0.01))
             (notifier
               (as:make-notifier
                (lambda ()
                  ;; No lock needed: the worker wrote RESULT before it
                  ;; triggered, and writes nothing after.
                  (say "job finished: ~D primes below 200000" result)
                  (say "callback ran in the loop's thread: ~:[no~;yes~]"
                       (eq (bt:current-thread) loop-thread))
                  (as:remove-interval ticker)))))
        (say "event loop running; starting the worker")
        (bt:make-thread (lambda ()
                          (setf result (count-primes-below 200000))
                          (as:trigger-notifier notifier))
                        :name "worker")))
    ;; How often it ticked meanwhile depends on the machine: shown, not checked.
    (say "event loop exited (it ticked ~D time~:P while the worker ran)" ticks)))

(main)
