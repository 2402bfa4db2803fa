;;;; loop-tests.lisp -- start-event-loop, exit, delays, intervals, settings.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(test loop-returns-when-no-work-is-left
  (let ((ran nil) base)
    (is (eql 0 (as:start-event-loop (lambda () (setf ran t base as:*event-base*)))))
    (is-true ran)
    (is (= 0 (as:registry-live-count base)))
    (is-false (as:event-loop-running-p))))

(test delays-fire-in-time-order
  ;; Due times 0.2 s apart, so that a busy machine arming them late cannot
  ;; swap them.
  (let ((order '()))
    (with-test-loop ()
      (as:delay (lambda () (push :a order)) :time 0.6)
      (as:delay (lambda () (push :b order)) :time 0.2)
      (as:with-delay (0.4) (push :c order))
      (as:delay (lambda () (push :d order)))
      (done))
    (is (equal '(:d :b :c :a) (reverse order)))))

(test interval-and-remove-interval
  (let ((count 0) (interval nil))
    (with-test-loop ()
      (setf interval (as:interval (lambda ()
                                    (when (= (incf count) 3)
                                      (as:remove-interval interval)
                                      (done)))
                                  :time 0.01)))
    (is (= 3 count))))

(test with-interval-and-free-event
  (let ((count 0) (cancelled-ran nil))
    (with-test-loop ()
      (let ((cancelled (as:delay (lambda () (setf cancelled-ran t)) :time 0.02)))
        (as:free-event cancelled)
        (as:free-event cancelled))        ; idempotent
      (let ((iv nil))
        (setf iv (as:with-interval (0.005)
                   (when (>= (incf count) 2)
                     (as:remove-interval iv)
                     (done))))))
    (is (= 2 count))
    (is-false cancelled-ran)))

(test exit-event-loop-drops-queued-events
  (let ((ran '()) (start (now)))
    (with-test-loop (:timeout 60)
      (done)
      (as:delay (lambda () (push :exit ran) (as:exit-event-loop)) :time 0.01)
      (as:delay (lambda () (push :same-turn ran)) :time 0.01)
      (as:delay (lambda () (push :late ran)) :time 60))
    (is (equal '(:exit) ran))
    ;; It did not wait for the 60 s delay (generous for a busy machine).
    (is (< (- (now) start) 30))))

(test exit-event-loop-from-start-fn
  (let ((ran nil))
    (as:start-event-loop (lambda ()
                           (as:delay (lambda () (setf ran t)))
                           (as:exit-event-loop)))
    (is-false ran)))

(test exit-callbacks-run-once
  (let ((calls 0))
    (with-test-loop ()
      (as:add-event-loop-exit-callback (lambda () (incf calls)))
      (as:delay (lambda () (is (= 0 calls)) (done)) :time 0.01))
    (is (= 1 calls))))

(test async-calls-outside-a-loop-signal
  (signals error (as:delay (lambda ())))
  (signals error (as:tcp-connect "127.0.0.1" 1 (lambda (s d) (declare (ignore s d))) nil))
  (signals error (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil))
  (signals error (as:add-event-loop-exit-callback (lambda ())))
  (is (null (as:exit-event-loop))))

(test nested-loop-signals
  (let ((signalled nil))
    (as:start-event-loop
     (lambda ()
       (handler-case (as:start-event-loop (lambda ()))
         (error () (setf signalled t)))))
    (is-true signalled)))

(test default-event-cb-is-per-loop
  (let ((got nil))
    (with-test-loop (:default-event-cb (lambda (c) (setf got c) (done)))
      (as:tcp-connect "127.0.0.1" (closed-port) (lambda (s d) (declare (ignore s d))) nil))
    (is (typep got 'as:tcp-refused)))
  ;; and the global default is back afterwards
  (is (eq as:*default-event-handler* (symbol-value 'as:*default-event-handler*))))

(test default-handler-ignores-info-and-resignals-errors
  (is (null (funcall as:*default-event-handler*
                     (make-condition 'as::%eof :socket nil :code -1))))
  (signals as:tcp-refused
    (funcall as:*default-event-handler* (make-condition 'as::%refused :socket nil :code -1))))

(test new-loop-after-loop
  (dotimes (i 3)
    (let ((n 0))
      (with-test-loop ()
        (as:delay (lambda () (incf n) (done))))
      (is (= 1 n)))))

(defparameter *defined-later*
  '("ASYNC-STREAM" "ASYNC-INPUT-STREAM" "ASYNC-OUTPUT-STREAM" "ASYNC-IO-STREAM"
    "DNS-LOOKUP" "+AF-INET+" "+AF-INET6+" "+AF-UNSPEC+")
  "Exported names that lisp/stream.lisp and lisp/dns.lisp define.")

(defun documented-p (symbol)
  (or (documentation symbol 'function)
      (documentation symbol 'variable)
      (documentation symbol 'type)
      (documentation symbol 'structure)
      (and (find-class symbol nil) (documentation (find-class symbol) t))))

(test every-exported-symbol-has-a-docstring
  (do-external-symbols (symbol :cl-async-tcp)
    (unless (and (member (symbol-name symbol) *defined-later* :test #'string=)
                 (not (or (fboundp symbol) (boundp symbol) (find-class symbol nil))))
      (is-true (documented-p symbol) "~S has no docstring" symbol))))

(test with-event-loop-macro
  (let ((ran nil) (handler-seen nil))
    (as:with-event-loop (:catch-app-errors t :default-event-cb (lambda (c) (setf handler-seen c)))
      (as:with-delay (0.01)
        (setf ran (as:event-loop-running-p))
        (error "caught by the default handler")))
    (is-true ran)
    (is (typep handler-seen 'simple-error))))

(test synchronous-connect-failure-leaves-nothing-behind
  (let ((signalled nil) (count nil))
    (with-test-loop ()
      ;; A port out of range is refused before anything is made.
      (handler-case (as:tcp-connect "127.0.0.1" 70000 (lambda (s d) (declare (ignore s d))) nil)
        (type-error (e) (setf signalled e)))
      (done)
      (as:with-delay (0.05) (setf count (as:registry-live-count))))
    (is (typep signalled 'type-error))
    (is (eql 70000 (and signalled (type-error-datum signalled))))
    ;; only the checking delay itself
    (is (eql 1 count))))

(test interrupt-while-waiting-unwinds-in-lisp-frames-only
  "An interrupt (what C-c at the REPL is) reaching a loop that waits in libuv is
handled between turns, in Lisp frames: a THROW out of it leaves the C loop closed
properly (its id dead), nothing registered, and a new loop runs afterwards in
the same thread."
  (let* ((loop-id nil) (base nil) (after nil)
         (thread (bt:make-thread
                  (lambda ()
                    (list (catch 'stop
                            (as:start-event-loop
                             (lambda ()
                               (setf base as:*event-base*
                                     loop-id (as::event-base-id as:*event-base*))
                               (as:tcp-server "127.0.0.1" 0
                                              (lambda (s d) (declare (ignore s d)))
                                              nil)))
                            :finished)
                          ;; The same thread runs a new loop afterwards.
                          (progn (as:start-event-loop
                                  (lambda () (as:delay (lambda () (setf after t)) :time 0.01)))
                                 after))))))
    (loop repeat 500 until loop-id do (sleep 0.01))
    (is-true loop-id)
    (sleep 0.3)                         ; the loop now waits inside libuv
    (bt:interrupt-thread thread (lambda () (throw 'stop :interrupted)))
    (let ((result (join-thread-within thread 5)))
      (is (equal '(:interrupted t) result)))
    (is (= 0 (cffi:with-foreign-object (alive :int)
               (cltcp:id-alive alive loop-id)
               (cffi:mem-ref alive :int))))
    (is (= 0 (as:registry-live-count base)))))

;;; ---- wall-clock time ----------------------------------------------------

(test delay-armed-after-a-long-callback-waits-its-time
  "A callback that computes for 0.5 s, then asks for a 0.3 s delay: the delay
waits 0.3 s of wall-clock time from the asking (libuv's cached loop time
would have made it run at once)."
  (let ((armed nil) (fired nil))
    (with-test-loop ()
      (as:delay (lambda ()
                  (busy-wait 0.5)
                  (setf armed (now))
                  (as:delay (lambda () (setf fired (now)) (done)) :time 0.3))))
    (is-true fired)
    (is (fired-in-time-p (and fired (- fired armed)) 0.3)
        "a 0.3 s delay fired ~,4F s after it was made" (and fired (- fired armed)))))

(test delay-armed-after-sleeping-in-a-callback-waits-its-time
  (let ((armed nil) (fired nil))
    (with-test-loop ()
      (as:delay (lambda ()
                  (sleep 0.5)
                  (setf armed (now))
                  (as:delay (lambda () (setf fired (now)) (done)) :time 0.3))))
    (is (fired-in-time-p (and fired (- fired armed)) 0.3)
        "a 0.3 s delay fired ~,4F s after it was made" (and fired (- fired armed)))))

(test interval-after-a-long-callback-keeps-its-period
  ;; The k-th firing comes no earlier than k periods after the arming (each
  ;; period counts from the firing before, a little ahead of its callback).
  (let ((times '()) (armed nil) (iv nil))
    (with-test-loop ()
      (as:delay (lambda ()
                  (busy-wait 0.5)
                  (setf armed (now))
                  (setf iv (as:interval (lambda ()
                                          (push (now) times)
                                          (when (= (length times) 3)
                                            (as:remove-interval iv)
                                            (done)))
                                        :time 0.2)))))
    (setf times (reverse times))
    (is (= 3 (length times)))
    (loop for at in times
          for k from 1
          do (is (fired-in-time-p (- at armed) (* k 0.2))
                 "firing ~D of a 0.2 s interval after ~,4F s" k (- at armed)))))

(test read-timeout-set-after-a-long-callback-waits-its-time
  (let ((armed nil) (timed-out nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d)))
                                   #'ignore-event)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (declare (ignore s d)))
                        (lambda (c)
                          (when (typep c 'as:tcp-timeout)
                            (setf timed-out (now))
                            (as:close-tcp-server server)
                            (done)))
                        :connect-cb (lambda (s)
                                      (busy-wait 0.5)
                                      (setf armed (now))
                                      (as:set-socket-timeouts s 0.3 nil)))))
    (is-true timed-out)
    (is (fired-in-time-p (and timed-out (- timed-out armed)) 0.3)
        "a 0.3 s read timeout fired ~,4F s after it was set"
        (and timed-out (- timed-out armed)))))
