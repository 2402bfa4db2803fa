;;;; signal-tests.lisp -- signal-handler, free-signal-handler,
;;;; clear-signal-handlers with real signals sent to this process (issue 10;
;;;; cl-async's signal-handling.md).
;;;;
;;;; Signals are sent with kill(getpid(), sig) through CFFI, from another
;;;; thread.  A signal is only ever sent while this library handles it: the
;;;; Lisp's own dispositions (SBCL exits on SIGTERM, SIGUSR1's default kills
;;;; the process) must never see one.  The disposition is read with
;;;; sigaction(2): the handler address is the first word of struct sigaction
;;;; on Linux and the BSDs.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defun send-signal (signo)
  "kill(getpid(), SIGNO)."
  (cffi:foreign-funcall "kill" :int (cffi:foreign-funcall "getpid" :int) :int signo :int))

(defun signal-disposition (signo)
  "The address of SIGNO's current handler (0 = SIG_DFL, 1 = SIG_IGN)."
  (cffi:with-foreign-object (sa :uint8 512)
    (assert (zerop (cffi:foreign-funcall "sigaction" :int signo :pointer (cffi:null-pointer)
                                                     :pointer sa :int)))
    (cffi:pointer-address (cffi:mem-ref sa :pointer))))

(defun send-signals-later (signals &key (delay 0.05))
  "A thread that sends SIGNALS to this process, one by one, after DELAY seconds."
  (bt:make-thread (lambda ()
                    (sleep delay)
                    (dolist (s signals) (send-signal s)))
                  :name "signal sender"))

(defparameter *test-signals* (list as:+sigint+ as:+sigterm+ as:+sighup+ as:+sigusr1+))

(test signal-constants-are-this-systems-numbers
  (is (= 2 as:+sigint+))
  (is (= 15 as:+sigterm+))
  (is (= 1 as:+sighup+))
  #+linux (is (= 10 as:+sigusr1+))
  #+linux (is (= 12 as:+sigusr2+))
  #+linux (is (null as:+siginfo+)))

(test signal-handlers-handle-free-re-add-and-clear
  (let* ((before (mapcar #'signal-disposition *test-signals*))
         (got '()) (during nil) (after-free nil) (after-readd nil) (after-clear nil)
         (threads '()) (loop-thread nil) (wrong-thread 0) (phase :first))
    (with-test-loop ()
      (setf loop-thread (bt:current-thread))
      (labels ((handler (sig)
                 (unless (eq (bt:current-thread) loop-thread) (incf wrong-thread))
                 (push (list phase sig) got)
                 (case phase
                   (:first
                    (when (= 4 (count :first got :key #'first))
                      (setf during (mapcar #'signal-disposition *test-signals*))
                      ;; Free one: its disposition is back, the others stay ours.
                      (as:free-signal-handler as:+sigusr1+)
                      (setf after-free (mapcar #'signal-disposition *test-signals*))
                      ;; Re-add it and send it again.
                      (as:signal-handler as:+sigusr1+ #'handler)
                      (setf phase :again)
                      (push (send-signals-later (list as:+sigusr1+)) threads)))
                   (:again
                    (setf after-readd (signal-disposition as:+sigusr1+))
                    (as:clear-signal-handlers)
                    (setf after-clear (mapcar #'signal-disposition *test-signals*))
                    ;; Only the watchdog was left: the loop now ends.
                    (done)))))
        (dolist (s *test-signals*)
          (as:signal-handler s #'handler))
        (push (send-signals-later *test-signals*) threads)))
    (mapc #'bt:join-thread threads)
    (is (= 0 wrong-thread))
    (is (equal (sort (mapcar #'second (remove :again got :key #'first)) #'<)
               (sort (copy-list *test-signals*) #'<)))
    (is (equal (list (list :again as:+sigusr1+)) (remove :first got :key #'first)))
    ;; While handled, no signal had its previous disposition.
    (is (notany #'= before during) "before ~S during ~S" before during)
    ;; Freeing SIGUSR1 put exactly its previous disposition back.
    (is (= (fourth before) (fourth after-free)))
    (is (equal (butlast during) (butlast after-free)))
    (is (= (fourth during) after-readd))
    ;; Clearing put every previous disposition back.
    (is (equal before after-clear))))

(test a-live-signal-handler-keeps-the-loop-alive
  (let ((got nil) (start (now)) (sender nil) (before (signal-disposition as:+sigusr1+)))
    (with-test-loop ()
      (done)                            ; nothing but the handler is left
      (as:signal-handler as:+sigusr1+ (lambda (sig)
                                        (setf got sig)
                                        (as:free-signal-handler sig)))
      (setf sender (send-signals-later (list as:+sigusr1+) :delay 0.3)))
    (bt:join-thread sender)
    (is (eql as:+sigusr1+ got))
    (is (>= (- (now) start) 0.29))
    (is (= before (signal-disposition as:+sigusr1+)))))

(test unref-signal-handler-and-loop-end-restore-the-disposition
  (let ((before (signal-disposition as:+sighup+)) (during nil) (start (now)) (watcher nil))
    (with-test-loop ()
      (setf watcher (as:signal-handler as:+sighup+ (lambda (sig) (declare (ignore sig)))))
      (setf during (signal-disposition as:+sighup+))
      ;; Unreferenced, it does not keep the loop alive: the loop ends at
      ;; once, and its end frees the handler.
      (as:unref watcher)
      (done))
    (is (/= before during))
    (is (< (- (now) start) 5))
    (is (= before (signal-disposition as:+sighup+)))))

(test signal-cb-errors-follow-the-error-policy
  (let ((caught nil) (sender nil))
    (with-test-loop (:catch-app-errors t)
      ;; cl-async's own example passes the event-cb positionally.
      (as:signal-handler as:+sigusr1+
                         (lambda (sig) (declare (ignore sig)) (error "signal-cb boom"))
                         (lambda (e)
                           (setf caught e)
                           (as:clear-signal-handlers)
                           (done)))
      (setf sender (send-signals-later (list as:+sigusr1+))))
    (bt:join-thread sender)
    (is (search "signal-cb boom" (princ-to-string caught)))))

(test signal-handler-bad-arguments
  (with-test-loop ()
    (signals type-error (as:signal-handler "2" (lambda (s) s)))
    (signals type-error (as:signal-handler 0 (lambda (s) s)))
    (signals as:event-error (as:signal-handler as:+sigkill+ (lambda (s) s)))
    (is (null (as:free-signal-handler as:+sigusr2+)))   ; none: nothing to do
    (done))
  (signals error (as:signal-handler as:+sigusr1+ (lambda (s) s))))

;;; The signals the runtime needs are refused before anything changes: the
;;; loop's handler for another signal lives on, and no object is registered.
(test signal-handler-refuses-runtime-signals
  (let ((refused (append (list as:+sigsegv+ as:+sigbus+ as:+sigill+ as:+sigfpe+)
                         #+sbcl (list as:+sigusr2+ as:+sigurg+ as:+sigtrap+)
                         #+(and ecl linux) (list 30 as:+sigxcpu+ (+ ext:+sigrtmin+ 2))))
        (hits 0)
        (sender nil))
    (with-test-loop ()
      (as:signal-handler as:+sigusr1+ (lambda (sig)
                                        (declare (ignore sig))
                                        (incf hits)
                                        (as:clear-signal-handlers)
                                        (done)))
      (let ((registered (getf (as:stats) :data-registry-count)))
        (dolist (signo refused)
          (let ((e (handler-case (progn (as:signal-handler signo (lambda (s) s)) nil)
                     (as:event-error (e) e))))
            (is (typep e 'as:event-error) "signal ~D was not refused" signo)
            (when e
              (is (equal "EINVAL" (as:event-errname e)))
              (is (search (format nil "signal ~D " signo) (princ-to-string e))))
            (is (null (as:free-signal-handler signo)))))
        (is (= registered (getf (as:stats) :data-registry-count))))
      ;; The SIGUSR1 handler still works.
      (setf sender (send-signals-later (list as:+sigusr1+))))
    (bt:join-thread sender)
    (is (= 1 hits))
    ;; Signals nobody runtime-side uses are still handled (SIGUSR1 above;
    ;; SIGTERM, which SBCL catches too, is a program's to take).
    (is (null (as::%runtime-signal-use as:+sigterm+)))
    (is (null (as::%runtime-signal-use as:+sigint+)))))

;;; SBCL only, because it checks SBCL's own SIGINT handling (C-c at the REPL
;;; raises SB-SYS:INTERACTIVE-INTERRUPT in the main thread), which a handler
;;; replaces while it lives and which freeing it must give back.  One test.
#+sbcl
(defun sigint-interrupts-p ()
  "Send SIGINT from another thread; true when SBCL raised its interactive
interrupt in this thread (what C-c does)."
  (let ((sender (send-signals-later (list as:+sigint+) :delay 0.1)))
    (prog1 (handler-case (progn (sleep 10) nil)
             (sb-sys:interactive-interrupt () t))
      (bt:join-thread sender))))

#+sbcl
(test sbcl-c-c-works-before-and-after-a-sigint-handler
  (is-true (sigint-interrupts-p) "SIGINT did not interrupt before any handler")
  (let ((got nil) (sender nil))
    (with-test-loop ()
      (as:signal-handler as:+sigint+ (lambda (sig)
                                       (setf got sig)
                                       (as:free-signal-handler sig)
                                       (done)))
      (setf sender (send-signals-later (list as:+sigint+))))
    (bt:join-thread sender)
    ;; The handler took it: with SBCL's handler, the loop would have been
    ;; interrupted instead (and this test ended in the error above).
    (is (eql as:+sigint+ got)))
  (is-true (sigint-interrupts-p) "SIGINT no longer interrupts after free-signal-handler"))

(test a-second-handler-for-a-signal-replaces-the-first
  (let ((calls '()) (sender nil) (before (signal-disposition as:+sigusr1+)) (first nil))
    (with-test-loop ()
      (setf first (as:signal-handler as:+sigusr1+ (lambda (s) (push (list :first s) calls))))
      (as:signal-handler as:+sigusr1+ (lambda (s)
                                        (push (list :second s) calls)
                                        (as:free-signal-handler s)
                                        (done)))
      (is-true (as::%signal-freed-p first) "the first handler was not freed")
      (setf sender (send-signals-later (list as:+sigusr1+))))
    (bt:join-thread sender)
    (is (equal (list (list :second as:+sigusr1+)) calls))
    (is (= before (signal-disposition as:+sigusr1+)))))
