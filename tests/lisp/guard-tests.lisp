;;;; guard-tests.lisp -- errors and interrupts inside every kind of callback.
;;;;
;;;; Without :catch-app-errors an error in a callback is signalled inside the
;;;; callback, with the restarts CONTINUE and EXIT-EVENT-LOOP established
;;;; there; an interrupt (what C-c is; here BT:INTERRUPT-THREAD from the test
;;;; thread) reaches a callback that never returns, with the same restarts.
;;;; For each kind of callback and each way out -- CONTINUE, EXIT-EVENT-LOOP,
;;;; a THROW past the loop and an outer restart (the REPL's ABORT), both of
;;;; which unwind through C -- the loop ends up consistent: it goes on, or it
;;;; is torn down with every C handle dead and the registry empty, and a new
;;;; loop then works in the same thread.  Each scenario runs in a thread of
;;;; its own; the checks are made in the test thread.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(define-condition guard-bug (error) ()
  (:report "an application bug inside a callback"))
(define-condition guard-interrupt (error) ()
  (:report "an interrupt delivered inside a callback"))

(defvar *in-user-callback* nil
  "Bound to T by the failing application callback: a handler that sees it was
called inside that callback's dynamic extent.")

(defstruct scenario
  kind how restart
  (spinning nil)            ; the runaway callback is running
  (handler-restarts nil)    ; restart names the handler saw
  (handler-inside nil)      ; the handler ran inside the failing callback
  (handled 0)               ; times the handler ran
  (interrupted-at nil) (handled-at nil)
  (went-on nil)             ; the loop went on after the failure
  (result nil)              ; what the loop thread ended with
  (base nil) (loop-id nil)
  (ids '())                 ; every C id the scenario made
  (finish nil)              ; closes what the scenario opened
  (new-loop nil))           ; the echo of a new loop in the same thread

(defun c-id-alive-p (id)
  (cffi:with-foreign-object (alive :int)
    (and (zerop (cltcp:id-alive alive id))
         (= 1 (cffi:mem-ref alive :int)))))

(defun fail-here (sc)
  "The application's failing code: an error, or a loop that only an interrupt ends."
  (let ((*in-user-callback* t))
    (ecase (scenario-how sc)
      (:error (error 'guard-bug))
      (:interrupt
       (setf (scenario-spinning sc) t)
       (loop (sleep 0.001))))))

(defun failing-once (sc)
  "A function that runs FAIL-HERE the first time it is called, and nothing after."
  (let ((first t))
    (lambda (&rest args)
      (declare (ignore args))
      (when first
        (setf first nil)
        (fail-here sc)))))

(defun start-scenario (sc)
  "Set up the scenario's loop: the failing callback of its kind, and the function
that closes everything (the handler runs it on CONTINUE: the loop then ends by
itself once it went on)."
  (let* ((fail (failing-once sc))
         (server (echo-server))
         (port (as:tcp-server-port server))
         (cleanup '()))
    (push (as::%handle-id server) (scenario-ids sc))
    (push (lambda () (as:close-tcp-server server)) cleanup)
    (flet ((client (&rest args)
             (let ((s (apply #'as:tcp-connect "127.0.0.1" port args)))
               (push (as:socket-c s) (scenario-ids sc))
               (push (lambda () (unless (as:socket-closed-p s) (as:close-socket s))) cleanup)
               s)))
      (ecase (scenario-kind sc)
        (:read (client fail #'ignore-event :data "x"))
        (:write (client (lambda (s d) (declare (ignore s d))) #'ignore-event
                        :connect-cb (lambda (s) (as:write-socket-data s "x" :write-cb fail))))
        (:connect (client (lambda (s d) (declare (ignore s d))) #'ignore-event :connect-cb fail))
        (:event (let ((s (as:tcp-connect "127.0.0.1" (closed-port)
                                         (lambda (s d) (declare (ignore s d))) fail)))
                  (push (as:socket-c s) (scenario-ids sc))))
        (:delay (push (as::%timer-id (as:delay fail :time 0.01)) (scenario-ids sc)))
        (:interval (let ((iv (as:interval fail :time 0.01)))
                     (push (lambda () (as:remove-interval iv)) cleanup)))
        (:dns (as:dns-lookup "127.0.0.1" fail #'ignore-event))
        (:accept (let ((s2 (echo-server :connect-cb fail)))
                   (push (as::%handle-id s2) (scenario-ids sc))
                   (push (lambda () (as:close-tcp-server s2)) cleanup)
                   (let ((c (as:tcp-connect "127.0.0.1" (as:tcp-server-port s2)
                                            (lambda (s d) (declare (ignore s d)))
                                            #'ignore-event)))
                     (push (as:socket-c c) (scenario-ids sc))
                     (push (lambda () (unless (as:socket-closed-p c) (as:close-socket c)))
                           cleanup))))))
    (setf (scenario-finish sc) (lambda ()
                                 (setf (scenario-went-on sc) t)
                                 (mapc #'funcall cleanup)))))

(defun handle-failure (sc condition)
  "The test's handler: note what it sees, then take the scenario's way out."
  (declare (ignore condition))
  (incf (scenario-handled sc))
  (setf (scenario-handled-at sc) (now)
        (scenario-handler-inside sc) *in-user-callback*
        (scenario-handler-restarts sc) (mapcar #'restart-name (compute-restarts)))
  (ecase (scenario-restart sc)
    (:continue (as:delay (scenario-finish sc))
               (invoke-restart 'continue))
    (:exit (invoke-restart 'as:exit-event-loop))
    (:throw (throw 'scenario-out :thrown))
    (:outer-abort (invoke-restart (find-restart 'abort)))))

(defun run-scenario-thread (sc)
  (block nil
    (setf (scenario-result sc)
          (catch 'scenario-out
            (restart-case
                (handler-bind ((guard-bug (lambda (c) (handle-failure sc c)))
                               (guard-interrupt (lambda (c) (handle-failure sc c))))
                  (as:start-event-loop
                   (lambda ()
                     (setf (scenario-base sc) as:*event-base*
                           (scenario-loop-id sc) (as::event-base-id as:*event-base*))
                     (start-scenario sc)))
                  :returned)
              (abort () (values :aborted)))))
    ;; A new loop in the same thread: one echo round trip.
    (let ((got nil))
      (as:start-event-loop
       (lambda ()
         (let ((server (echo-server)))
           (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                           (lambda (socket data)
                             (setf got (text data))
                             (as:close-socket socket)
                             (as:close-tcp-server server))
                           #'ignore-event :data "again"))))
      (setf (scenario-new-loop sc) got))))

(defun run-scenario (kind how restart)
  (let* ((sc (make-scenario :kind kind :how how :restart restart))
         (thread (bt:make-thread (lambda () (run-scenario-thread sc))
                                 :name "cl-async-tcp guard test")))
    (when (eq how :interrupt)
      (loop repeat 1000 until (scenario-spinning sc) do (sleep 0.01))
      (when (scenario-spinning sc)
        (setf (scenario-interrupted-at sc) (now))
        (bt:interrupt-thread thread (lambda () (error 'guard-interrupt)))))
    (values sc (join-thread-within thread 20))))

(defun check-scenario (kind how restart)
  (multiple-value-bind (sc joined) (run-scenario kind how restart)
    (let ((what (list kind how restart)))
      (is (not (eq joined :timed-out)) "~S: the loop thread did not end" what)
      (when (eq how :interrupt)
        (is-true (scenario-spinning sc) "~S: the runaway callback never ran" what)
        (is-true (and (scenario-handled-at sc) (scenario-interrupted-at sc)
                      ;; A bound with slack; the promise is "at once".
                      (< (- (scenario-handled-at sc) (scenario-interrupted-at sc)) 5))
                 "~S: the interrupt did not reach the callback" what))
      (is (= 1 (scenario-handled sc)) "~S: handler ran ~D times" what (scenario-handled sc))
      (is-true (scenario-handler-inside sc) "~S: not signalled inside the callback" what)
      (is (subsetp '(continue as:exit-event-loop) (scenario-handler-restarts sc))
          "~S: restarts seen ~S" what (scenario-handler-restarts sc))
      (is (eq (ecase restart
                ((:continue :exit) :returned)
                (:throw :thrown)
                (:outer-abort :aborted))
              (scenario-result sc))
          "~S: the loop ended with ~S" what (scenario-result sc))
      (is (eq (eq restart :continue) (scenario-went-on sc))
          "~S: the loop ~:[stopped~;went on~]" what (scenario-went-on sc))
      (is (and (scenario-base sc) (= 0 (as:registry-live-count (scenario-base sc))))
          "~S: registry not empty" what)
      (is (and (scenario-loop-id sc) (not (c-id-alive-p (scenario-loop-id sc))))
          "~S: the C loop is still alive" what)
      (is (notany #'c-id-alive-p (scenario-ids sc)) "~S: a C handle is still alive" what)
      (is (equal "again" (scenario-new-loop sc)) "~S: no new loop in the same thread" what))))

(defparameter *callback-kinds* '(:read :write :connect :event :delay :interval :dns :accept))

(test errors-in-every-kind-of-callback-with-every-way-out
  "An error in each kind of callback is signalled inside it, with CONTINUE and
EXIT-EVENT-LOOP; each of them, a THROW and an outer ABORT leave a consistent loop."
  (dolist (kind *callback-kinds*)
    (dolist (restart '(:continue :exit :throw :outer-abort))
      (check-scenario kind :error restart))))

(test interrupts-reach-runaway-callbacks-of-every-kind
  "An interrupt from another thread reaches a callback that never returns, with
the same restarts, and every way out leaves a consistent loop."
  (dolist (kind *callback-kinds*)
    (dolist (restart '(:continue :exit :throw :outer-abort))
      (check-scenario kind :interrupt restart))))

(test handler-case-around-the-loop-unwinds-through-c-safely
  "The common pattern: HANDLER-CASE around START-EVENT-LOOP catches an error of a
read-cb (unwinding through C), many times in a row in one thread."
  (let ((caught 0) (bases '()))
    (dotimes (i 20)
      (handler-case
          (as:start-event-loop
           (lambda ()
             (push as:*event-base* bases)
             (let ((server (echo-server)))
               (dotimes (k 3)
                 (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                 (lambda (s d) (declare (ignore s d)) (error 'guard-bug))
                                 #'ignore-event :data "boom")))))
        (guard-bug () (incf caught))))
    (is (= 20 caught))
    (is (every (lambda (b) (= 0 (as:registry-live-count b))) bases))))
