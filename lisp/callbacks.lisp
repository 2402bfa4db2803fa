;;;; callbacks.lisp -- the one C callback, event dispatch and error routing.
;;;;
;;;; Every socket, server and timer event of libcltcp arrives in
;;;; %EVENT-CALLBACK with the handle's context word, which is its index in the
;;;; loop's registry (registry.lisp): one SVREF finds the Lisp object, one
;;;; CASE on the event code picks the work.  Nothing is hashed and nothing is
;;;; consed per event except the octet vector a drain-mode read-cb receives.
;;;;
;;;; Application code called from C runs under one guard, WITH-CALLBACK-GUARD
;;;; (every kind of handle uses it: sockets, servers, timers, DNS lookups and
;;;; any kind added later).  It runs the code with interrupts enabled (the
;;;; rest of the turn defers them, see portability.lisp) and establishes,
;;;; inside the callback, the restarts CONTINUE (abandon the rest of this
;;;; callback; the loop goes on) and EXIT-EVENT-LOOP.  An error is then
;;;; handled like this:
;;;;   - with :catch-app-errors, it goes to the operation's event-cb (or
;;;;     *default-event-handler*, or the catch-app-errors function), and the
;;;;     callback is left by RETURN-FROM, a transfer inside Lisp frames;
;;;;   - otherwise (or when that handler fails too) it is simply not handled
;;;;     here: it propagates from where it was signalled, so the debugger
;;;;     opens on top of the application's own frames, with those restarts.
;;;; A handler or restart further out (a HANDLER-CASE around START-EVENT-LOOP,
;;;; the REPL's ABORT) unwinds through cltcp_loop_run and libuv's frames
;;;; without returning to them; START-EVENT-LOOP then repairs the C loop
;;;; (cltcp_loop_recover) and tears it down, so nothing is left behind and a
;;;; new loop can start in the same thread.

(in-package #:cl-async-tcp)

(defvar *catch-application-errors* nil
  "When true (per loop: START-EVENT-LOOP's :catch-app-errors), an error inside an
application callback is caught and passed to the event-cb of the operation that
triggered it (or *DEFAULT-EVENT-HANDLER*).  When it is a function, it receives
the errors of operations without an event-cb.  When NIL, the error is signalled
where it happened, inside the callback, with the restarts CONTINUE and
EXIT-EVENT-LOOP.")

(defvar *send-errors-to-eventcb* t
  "Newer cl-async's :send-errors-to-eventcb (per loop).  When true, caught
application errors go to the operation's event-cb; when NIL, only to the
:catch-app-errors function, or to HANDLE-ERROR when it is not a function.")

(defun default-event-handler (condition)
  "The default *DEFAULT-EVENT-HANDLER*: re-signals errors (so an unhandled
tcp-refused is loud) and ignores plain event-info (so an unhandled tcp-eof is quiet)."
  (when (typep condition 'error)
    (error condition)))

(defvar *default-event-handler* #'default-event-handler
  "The event-cb used by every operation that has none (per loop: START-EVENT-LOOP's
:default-event-cb).  Called with one argument, the condition.  The default
re-signals event-errors and ignores event-info that is not an error.")

(defvar *event-callback-pointer*)       ; set at the end of this file

(defvar *in-event-handler* nil
  "True while an event-cb (or the default handler) runs, so that an error it
raises is not routed back into it.")

;;; ---- error routing ----

(defun %defer-error (base condition)
  "Queue CONDITION to be signalled out of START-EVENT-LOOP and stop the loop."
  (setf (event-base-pending-errors base)
        (append (event-base-pending-errors base) (list condition)))
  (cltcp:loop-stop (event-base-id base))
  nil)

(defgeneric %object-event-cb (object)
  (:documentation "The event-cb of the operation OBJECT stands for (NIL when it has
none).  A generic function, so that later files (dns.lisp) add their kinds of
operation; it is only consulted on events and errors, never per read.")
  (:method (object) (declare (ignore object)) nil)
  (:method ((object socket)) (%sock-event-cb object))
  (:method ((object tcp-server)) (%srv-event-cb object))
  (:method ((object event)) (%timer-event-cb object)))

(defgeneric handle-error (error)
  (:documentation "cl-async's handler of caught application errors that have nowhere else to
go: with :catch-app-errors T (not a function), an error raised in a callback of
an operation without an event-cb (or with :send-errors-to-eventcb NIL) is
passed to this generic function.  The default method hands it to
*DEFAULT-EVENT-HANDLER* (whose default re-signals it, so the error leaves
START-EVENT-LOOP).  Define a method to log or drop such errors instead.")
  (:method (error)
    (funcall (or *default-event-handler* #'default-event-handler) error)))

(defun %route-app-error (base object condition)
  "An error escaped an application callback about OBJECT (of the loop BASE).
With :catch-app-errors (and not from an event handler), give it to the operation's event-cb (or the
catch-app-errors function, or the default handler) and return true: the guard
then abandons the callback.  Otherwise return NIL: the error goes on up from
where it was signalled."
  (declare (ignore base))
  (let ((catch *catch-application-errors*))
    (when (and catch (not *in-event-handler*))
      ;; An error of the handler itself is not routed again (it is signalled
      ;; in place, with the guard's restarts).
      (let ((*in-event-handler* t)
            (event-cb (%object-event-cb object)))
        (cond ((and *send-errors-to-eventcb* event-cb)
               (funcall event-cb condition))
              ((functionp catch)
               (funcall catch condition))
              (t
               (handle-error condition))))
      t)))

(defmacro with-callback-guard ((object) &body body)
  "Run BODY -- application code called from a C callback about OBJECT (a socket,
server, timer, DNS request ...) -- under the library's one guard (see the top of
callbacks.lisp): interrupts enabled, errors routed to the event-cb with
:catch-app-errors and otherwise signalled in place, and the restarts CONTINUE
and EXIT-EVENT-LOOP established inside the callback.  Returns NIL."
  (let ((guard (gensym "GUARD")) (o (gensym "OBJECT"))
        (continue (gensym "CONTINUE")) (exit (gensym "EXIT")) (exitp (gensym "EXITP")))
    ;; RESTART-BIND with dynamic-extent functions rather than RESTART-CASE,
    ;; whose restart closures are consed on the heap on every event (64 bytes
    ;; per callback on SBCL).
    `(let ((,o ,object) (,exitp nil))
       (block ,guard
         (flet ((,continue () (return-from ,guard nil))
                ;; Like a RESTART-CASE clause: the loop is told to stop
                ;; once the callback's frames are gone.
                (,exit () (setf ,exitp t) (return-from ,guard nil)))
           (declare (dynamic-extent #',continue #',exit))
           (restart-bind
               ((continue #',continue
                          :report-function
                          (lambda (stream)
                            (write-string "Abandon the rest of this callback; the event loop goes on."
                                          stream)))
                (exit-event-loop #',exit
                                 :report-function
                                 (lambda (stream)
                                   (write-string "Stop the event loop: close everything and return from START-EVENT-LOOP."
                                                 stream))))
             (handler-bind ((error (lambda (e)
                                     (when (%route-app-error *event-base* ,o e)
                                       (return-from ,guard nil)))))
               (with-application-interrupts ,@body)))))
       (when ,exitp (exit-event-loop))
       nil)))

(defun %deliver (object condition)
  "Give the event CONDITION to OBJECT's event-cb, or to *DEFAULT-EVENT-HANDLER*."
  (let ((*in-event-handler* t))
    (funcall (or (%object-event-cb object) *default-event-handler* #'default-event-handler)
             condition)))

;;; ---- per-kind dispatch (run under the guard) ----
;;; What each kind's events do lives with the kind: %SOCKET-EVENT in
;;; socket.lisp, %SERVER-EVENT in server.lisp, %TIMER-EVENT in
;;; event-loop.lisp; the other kinds add %OTHER-EVENT methods (below).

(declaim (ftype function %make-socket-stream exit-event-loop
                %socket-event %server-event %timer-event))

(declaim (inline %fn))
(defun %fn (designator)
  "The function a callback designator (a function or a symbol) names."
  (if (functionp designator) designator (fdefinition designator)))

;;; ---- a handle's life: registered when made, freed by its CLOSE event ----

(declaim (ftype function %mark-dead))

(defmacro with-new-handle ((id-pointer index)
                           (base object &key context (about object))
                           &body call)
  "Register OBJECT (a %HANDLE-OBJECT or a DNS-REQUEST) in BASE's registry and run
CALL, the libcltcp call that makes its C handle, with ID-POINTER bound to the
id's out-parameter and INDEX to the context word, its status about ABOUT (in
CONTEXT, see WITH-STATUS); store the new id in OBJECT.  When CALL fails nothing
is left behind: the entry is freed and OBJECT reads as closed, then the
condition goes on.  Returns OBJECT."
  (let ((b (gensym "BASE")) (o (gensym "OBJECT")) (made (gensym "MADE")))
    `(let* ((,b ,base) (,o ,object)
            (,index (registry-add ,b ,o))
            (,made nil))
       (setf (%handle-index ,o) ,index)
       (unwind-protect
            (cffi:with-foreign-object (,id-pointer 'cltcp:id)
              (with-status (,about ,@(when context (list context)))
                ,@call)
              (setf (%handle-id ,o) (cffi:mem-ref ,id-pointer 'cltcp:id)
                    ,made t))
         (unless ,made
           (registry-remove ,b ,index)
           (setf (%handle-index ,o) -1)
           (%mark-dead ,o)))
       ,o)))

;;; ---- close: bookkeeping only, never user code ----

(defun %save-leftover (socket)
  "Keep mode: the handle is about to die; move its unread input into Lisp so
that a stream can still read it (C keeps it readable until CLOSE returns)."
  (let ((id (%sock-id socket)))
    (cffi:with-foreign-object (n :size)
      (when (and (zerop (cltcp:socket-buffered n id))
                 (plusp (cffi:mem-ref n :size)))
        (let* ((count (cffi:mem-ref n :size))
               (buffer (make-array count :element-type '(unsigned-byte 8))))
          (when (zerop (cffi:with-pointer-to-vector-data (p buffer)
                         (cltcp:socket-read n id p count)))
            ;; C hands over all COUNT bytes; shorten only if it ever did not.
            (let ((got (cffi:mem-ref n :size)))
              (setf (%sock-leftover socket) (if (= got count) buffer (subseq buffer 0 got))
                    (%sock-leftover-start socket) 0))))))))

(defgeneric %mark-other-dead (object)
  (:documentation "%MARK-DEAD for the other kinds of handle (notifiers, signal handlers).")
  (:method (object) (declare (ignore object)) nil))

(defun %mark-dead (object)
  "Make OBJECT read as closed (socket, server) or freed (timer) for the application."
  (typecase object
    (socket (setf (%sock-closed-p object) t))
    (tcp-server (setf (%srv-closed-p object) t))
    (timer (setf (%timer-freed-p object) t))
    (t (%mark-other-dead object))))

(declaim (ftype function %event-close))

(defun %handle-close (base object id)
  (declare (type event-base base) (type %handle-object object) (type (unsigned-byte 64) id))
  (when (timer-p object)
    ;; An event may have had several C timers (lisp/events.lisp).
    (return-from %handle-close (%event-close base object id)))
  (when (= id (%handle-id object))
    (when (socket-p object)
      (when (%sock-keep-p object)
        (%save-leftover object))
      (setf (%sock-read-cb object) nil
            (%sock-write-cb object) nil
            (%sock-connect-cb object) nil
            (%sock-drain-cb object) nil
            (%sock-shutdown-cb object) nil))
    (%mark-dead object)
    (registry-remove base (%handle-index object))
    (setf (%handle-index object) -1)))

;;; ---- the entry point ----

(defgeneric %other-event (base object id event status other)
  (:documentation "Events for objects that are neither sockets, servers nor timers
(signal handlers, notifiers ...): each later file adds its method.  Runs under
the callback guard.")
  (:method (base object id event status other)
    (declare (ignore base object id event status other))
    nil))

(defun %dispatch (base object id event status other data len)
  (declare (type event-base base) (type fixnum event status)
           (optimize (speed 3) (safety 1)))
  (with-callback-guard (object)
    (cond ((socket-p object) (%socket-event object event status data len))
          ((tcp-server-p object) (%server-event base object id event status other))
          ((timer-p object) (%timer-event object event))
          (t (%other-event base object id event status other)))))

(defun %handle-event (ctx id event status other data len)
  (declare (type (unsigned-byte 64) ctx id other) (type fixnum event status)
           (optimize (speed 3) (safety 1) (debug 0)))
  (let ((base *event-base*))
    (declare (type (or null event-base) base))
    (when base
      (let ((object (registry-ref base ctx)))
        (when object
          (cond ((= event cltcp:+ev-close+)
                 ;; Bookkeeping must not fail, but if it ever does the error
                 ;; still must not cross C frames.
                 (handler-case (%handle-close base object id)
                   (error (e) (%defer-error base e))))
                ((or (event-base-stopping base) (event-base-closing base))
                 ;; exit-event-loop: queued events do not run.  An accepted
                 ;; socket nobody will own is closed at once.
                 (when (= event cltcp:+ev-accept+)
                   (cltcp:socket-close other cltcp:+close-now+)))
                (t
                 (%dispatch base object id event status other data len)))))))
  nil)

(cffi:defcallback %event-callback :void
    ((ctx :uintptr) (id :uint64) (event :int) (status :int)
     (other :uint64) (data :pointer) (len :size))
  (%handle-event ctx id event status other data len))

(setf *event-callback-pointer* (cffi:callback %event-callback))
(setf (documentation '*event-callback-pointer* 'variable)
      "The C address of %EVENT-CALLBACK, given to every handle.")
