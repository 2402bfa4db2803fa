;;;; event-loop.lisp -- start-event-loop and friends, delays and intervals.
;;;;
;;;; One loop per thread: START-EVENT-LOOP binds *EVENT-BASE* and the per-loop
;;;; settings (*DEFAULT-EVENT-HANDLER*, *CATCH-APPLICATION-ERRORS* ...) for
;;;; its dynamic extent, so callbacks -- which run on this thread inside
;;;; cltcp_loop_run -- see them, and loops in other threads keep their own.

(in-package #:cl-async-tcp)

(defun %current-base ()
  "The running loop of this thread, or a clear error."
  (or *event-base*
      (error "cl-async-tcp: no event loop is running in this thread.  Asynchronous ~
              operations must be called inside START-EVENT-LOOP (or WITH-EVENT-LOOP), ~
              from its start function or from a callback.")))

(defun event-loop-running-p ()
  "True inside a running event loop (in this thread)."
  (not (null *event-base*)))

(defun %signal-pending-errors (base)
  "Signal the application errors the callbacks queued, oldest first.  Returns
true when the loop should go on, NIL when the user chose to stop it."
  (loop while (event-base-pending-errors base)
        do (let ((condition (pop (event-base-pending-errors base))))
             (restart-case (error condition)
               (continue ()
                 :report "Drop the callback that failed and keep the event loop running."
                 nil)
               (exit-event-loop ()
                 :report "Stop the event loop: close everything and return from START-EVENT-LOOP."
                 (setf (event-base-stopping base) t)
                 (return-from %signal-pending-errors nil)))))
  t)

(defun %run-loop (base)
  (declare (type event-base base))
  (cffi:with-foreign-object (alive :int)
    (loop
      (when (event-base-stopping base)
        (return))
      (setf (cffi:mem-ref alive :int) 0)
      ;; IN-RUN stays true when a callback leaves by a non-local exit
      ;; (callbacks.lisp): %TEARDOWN then repairs the C loop first.
      (setf (event-base-in-run base) t)
      ;; RAW-STATUS, checked once the turn is over: not inside
      ;; WITH-LOOP-TURN, where interrupts are deferred.
      (let ((rc (with-loop-turn
                  (cltcp:loop-run alive (event-base-id base) +turn-mode+))))
        (setf (event-base-in-run base) nil)
        (check-status rc nil :loop))
      (cond ((event-base-pending-errors base)
             (unless (%signal-pending-errors base)
               (return)))
            ((event-base-stopping base) (return))
            ((zerop (cffi:mem-ref alive :int)) (return))))))

(defun %teardown (base)
  "Run the exit callbacks, then close the C loop: every handle gets its CLOSE
event (status ECANCELED), which frees its registry entry."
  (declare (type event-base base))
  (setf (event-base-stopping base) t)
  (unwind-protect
       (loop for fn = (pop (event-base-exit-functions base))
             while fn do (funcall fn))
    ;; CLOSING is never cleared again: from here on the objects of this
    ;; loop are dead and their ids never reach C (lisp/checks.lisp).
    (setf (event-base-closing base) t)
    (unless (zerop (event-base-id base))
      (with-loop-turn
        ;; RAW-STATUS, both: teardown must not fail half way.
        (when (event-base-in-run base)
          ;; We got here by a non-local exit out of a callback, through C.
          (cltcp:loop-recover (event-base-id base))
          (setf (event-base-in-run base) nil))
        (cltcp:loop-close (event-base-id base))))
    ;; Anything still registered would be a bug of the C side; release it so
    ;; the objects at least read as closed.
    (let ((objects (event-base-objects base)))
      (dotimes (index (length objects))
        (let ((object (svref objects index)))
          (unless (typep object 'fixnum)
            (%mark-dead object)
            (registry-remove base index)))))))

(defun start-event-loop (start-fn &key default-event-cb catch-app-errors
                                       (send-errors-to-eventcb t))
  "Run START-FN (a function of no arguments) inside a new event loop and block
until the loop has no work left or EXIT-EVENT-LOOP is called; returns 0.
START-FN runs as the loop's first callback, under the same error policy as
every callback (below); an error it raises has no event-cb of its own.

:DEFAULT-EVENT-CB replaces *DEFAULT-EVENT-HANDLER* for this loop.
:CATCH-APP-ERRORS true: an error inside an application callback goes to the
  event-cb of its operation (or the default handler); a function: it also
  receives errors of operations that have no event-cb.
:SEND-ERRORS-TO-EVENTCB (default T), newer cl-async's switch: NIL sends caught
  errors only to a :catch-app-errors function.

Without :catch-app-errors, an error in a callback is signalled where it
happened, inside the callback (the debugger shows the callback's frames), with
two restarts established there: CONTINUE (abandon the rest of that callback,
keep the loop running) and EXIT-EVENT-LOOP (close everything and return).  A
handler around START-EVENT-LOOP sees it too.  Any non-local exit out of here
(a HANDLER-CASE outside, the REPL's ABORT, a THROW from a C-c) closes the loop
and frees every handle, so a new loop can start at once in the same thread."
  (check-arguments (start-fn callback) (default-event-cb callback))
  (when *event-base*
    (error "cl-async-tcp: an event loop is already running in this thread."))
  (let* ((base (make-event-base))
         (*event-base* base)
         (*default-event-handler* (or default-event-cb *default-event-handler*))
         (*catch-application-errors* catch-app-errors)
         (*send-errors-to-eventcb* send-errors-to-eventcb)
         (*in-event-handler* nil))
    (cffi:with-foreign-object (id 'cltcp:id)
      (cltcp:loop-new id)
      (setf (event-base-id base) (cffi:mem-ref id 'cltcp:id))
      ;; RAW-STATUS: it cannot fail on a loop just made, and this is before
      ;; the UNWIND-PROTECT that would close the loop again.
      (cltcp:loop-set-wakeup (event-base-id base) +wakeup-seconds+))
    (unwind-protect
         (progn
           ;; cl-async runs the start function as the loop's first callback:
           ;; it gets the same error policy as every other callback.
           (when start-fn
             (with-callback-guard (nil)
               (funcall start-fn)))
           (%run-loop base))
      (%teardown base)))
  0)

(defmacro with-event-loop ((&rest options &key default-event-cb catch-app-errors
                                               send-errors-to-eventcb)
                           &body body)
  "Run BODY inside a new event loop (START-EVENT-LOOP with OPTIONS)."
  (declare (ignore default-event-cb catch-app-errors send-errors-to-eventcb))
  `(start-event-loop (lambda () ,@body) ,@options))

(defun exit-event-loop ()
  "Stop the running event loop at once: events already queued do not run, and
every socket, server and timer is closed.  Outside a loop it does nothing."
  (let ((base *event-base*))
    (when (and base (not (event-base-stopping base)))
      (setf (event-base-stopping base) t)
      (cltcp:loop-stop (event-base-id base))))
  nil)

(defun add-event-loop-exit-callback (fn)
  "Call FN (no arguments) when the running event loop exits."
  (check-argument fn required-callback)
  (push fn (event-base-exit-functions (%current-base)))
  nil)

;;; ---- delays and intervals ----

(defun %timer-event (timer event)
  (declare (type timer timer) (type fixnum event))
  (when (and (= event cltcp:+ev-timer+) (not (%timer-freed-p timer)))
    (let ((callback (%timer-callback timer)))
      (when callback (funcall (%fn callback))))))

(declaim (ftype function %note-interval))

(defun %start-timer (callback event-cb seconds repeat)
  (let* ((base (%current-base))
         (timer (%make-timer :base base :callback callback :event-cb event-cb)))
    (with-new-handle (id index) (base timer)
      (cltcp:timer-start id (event-base-id base) (%c-seconds seconds)
                         (%c-seconds repeat) *event-callback-pointer* index))
    (incf (%timer-c-live timer))
    timer))

(defun delay (callback &key time event-cb)
  "Call CALLBACK (no arguments) once, TIME seconds from now (fractional; NIL or
0 = on the next loop turn).  EVENT-CB receives errors of CALLBACK when
:catch-app-errors is on.  Returns the pending event (see FREE-EVENT).
Signals a TYPE-ERROR naming the argument for a CALLBACK that is not a function
designator, a TIME that is not NIL or a non-negative real, or a bad EVENT-CB."
  (check-arguments (callback required-callback) (time delay-seconds) (event-cb callback))
  (%start-timer callback event-cb time 0))

(defmacro with-delay ((&optional (seconds 0)) &body body)
  "Run BODY once, SECONDS from now."
  `(delay (lambda () ,@body) :time ,seconds))

(defun free-event (event)
  "Cancel a pending delay or interval (what DELAY returns) for good, also one
that REMOVE-EVENT took out of the loop.  Idempotent (cl-async signals
EVENT-FREED on a second call; this library does nothing); does nothing for one
of an event loop that has exited."
  (check-argument event timer)
  (unless (%timer-freed-p event)
    (setf (%timer-freed-p event) t)
    ;; Id 0: removed, no C timer (lisp/events.lisp).  A dead loop's timer id
    ;; may name a later loop's timer.
    (unless (or (zerop (%timer-id event)) (%c-handle-gone-p event))
      (cltcp:timer-close (%timer-id event)))) ; RAW-STATUS: it may have fired
  nil)

(defmethod event-freed-p ((event event))
  (or (%timer-freed-p event) (%loop-gone-p event)))

(defmethod event-freed-p (event)
  (check-argument event timer))

(defun interval (callback &key time event-cb)
  "Call CALLBACK (no arguments) every TIME seconds until REMOVE-INTERVAL.
Returns a function; REMOVE-INTERVAL (or calling the function) stops it.
Arguments are checked as DELAY checks them."
  (check-arguments (callback required-callback) (time delay-seconds) (event-cb callback))
  (let* ((seconds (if (and time (plusp time)) time 0.001d0))
         (timer (%start-timer callback event-cb seconds seconds))
         (fn (lambda () (free-event timer))))
    ;; So that REF / UNREF accept the function (lisp/events.lisp).
    (%note-interval fn timer)
    fn))

(defmacro with-interval ((seconds) &body body)
  "Run BODY every SECONDS; returns what INTERVAL returns."
  `(interval (lambda () ,@body) :time ,seconds))

(defun remove-interval (interval)
  "Stop an interval made by INTERVAL (its returned function, or a timer)."
  (check-argument interval (or function timer))
  (if (functionp interval)
      (funcall interval)
      (free-event interval))
  nil)
