;;;; handles.lisp -- ref / unref (cl-async's generic functions) for sockets,
;;;; servers and events.  Notifiers and signal handlers add their methods in
;;;; their own files.
;;;;
;;;; libcltcp's cltcp_handle_ref is libuv's uv_ref/uv_unref over every uv
;;;; handle a libcltcp handle keeps.  The choice is also remembered in the
;;;; Lisp object (%HANDLE-REFD), because an event that ADD-EVENT re-arms gets
;;;; a new C timer, which must inherit it.

(in-package #:cl-async-tcp)

(defun %check-loop-thread (handle operation)
  "Signal an error unless this thread runs HANDLE's loop: libcltcp takes calls
on a loop's handles from that loop's thread only."
  (unless (eq *event-base* (%handle-base handle))
    (error "cl-async-tcp: ~S on ~S must be called in the thread of its event loop ~
            (another thread may only TRIGGER-NOTIFIER)." operation handle)))

(defun %set-ref (handle on)
  "Record and apply HANDLE's reference state ON (true: keeps the loop alive)."
  (%check-loop-thread handle (if on 'ref 'unref))
  (setf (%handle-refd handle) (and on t))
  (let ((id (%handle-id handle)))
    (unless (zerop id)
      ;; RAW-STATUS.  ECLOSED: the C handle is closing already (a server
      ;; closed, a socket the library closes after an error); nothing is left
      ;; to keep the loop alive, so there is nothing to do.
      (let ((rc (cltcp:handle-ref id (if on 1 0))))
        (unless (= rc cltcp:+eclosed+)
          (check-status rc handle :loop)))))
  nil)

(defun %check-socket-ref (socket)
  ;; Closed, or of a loop that has exited (lisp/checks.lisp).
  (%open-socket socket))

(defmethod ref ((handle socket))
  (%check-socket-ref handle)
  (%set-ref handle t))

(defmethod unref ((handle socket))
  (%check-socket-ref handle)
  (%set-ref handle nil))

(defmethod ref ((handle tcp-server))
  (%open-server handle)
  (%set-ref handle t))

(defmethod unref ((handle tcp-server))
  (%open-server handle)
  (%set-ref handle nil))

(defmethod ref ((handle event))
  (%check-event-unfreed handle)
  (%set-ref handle t))

(defmethod unref ((handle event))
  (%check-event-unfreed handle)
  (%set-ref handle nil))

(defun %ref-target (handle)
  "What REF / UNREF act on for HANDLE when it is not one of the classes: the
socket of an async stream, or the event of an INTERVAL's function."
  (cond ((typep handle 'async-stream) (stream-socket handle))
        ((and (functionp handle) (%interval-event handle)))
        ((functionp handle)
         (error 'event-freed :event handle :code -1
                             :msg "not a live interval of this event loop"))
        (t (error 'type-error :datum handle
                              :expected-type '(or socket async-stream tcp-server event
                                               function notifier)))))

(defmethod ref ((handle t))
  (ref (%ref-target handle)))

(defmethod unref ((handle t))
  (unref (%ref-target handle)))
