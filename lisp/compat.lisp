;;;; compat.lisp -- the rest of cl-async's names that are small enough to live
;;;; together: condition accessor aliases, generic-function methods for
;;;; streams.  (What cl-async exports and this library does not provide is
;;;; listed, with the reason, in README.md's "Not provided" section.)

(in-package #:cl-async-tcp)

;;; ---- streams go to their socket ----

(defmethod close-socket ((stream async-stream) &key force)
  "Close the socket of STREAM (as CLOSE-SOCKET on the socket itself, so methods
for the socket's class run)."
  (close-socket (stream-socket stream) :force force))

;;; ---- condition accessors under cl-async's other names ----

(defgeneric socket-socket (condition)
  (:documentation "cl-async's older accessor name: the socket (or tcp-server) a TCP condition
is about; the same as TCP-SOCKET and SOCKET.")
  (:method ((c tcp-info)) (tcp-socket c))
  (:method ((c socket-info)) (socket c)))

(defgeneric socket-accept-error-listener (condition)
  (:documentation "cl-async's name for TCP-ACCEPT-ERROR-LISTENER: the C handle (a libcltcp
server id) of the server an accept error happened on.")
  (:method ((c tcp-accept-error)) (tcp-accept-error-listener c))
  (:method ((c socket-accept-error)) (tcp-accept-error-listener c)))

(defgeneric socket-accept-error-tcp-server (condition)
  (:documentation "cl-async's name for TCP-ACCEPT-ERROR-TCP-SERVER: the tcp-server object an
accept error happened on.")
  (:method ((c tcp-accept-error)) (tcp-accept-error-tcp-server c))
  (:method ((c socket-accept-error)) (tcp-accept-error-tcp-server c)))

;;; ---- printed names: the documented class, never an internal one ----
;;; What this library delivers is often an internal class that inherits
;;; from the documented one and from cl-async's other name for it (see
;;; conditions.lisp).  Its report already names the documented class; so
;;; does its unreadable form (PRIN1, the debugger's "#<...>").

(defun %public-condition-name (condition)
  (let ((name (type-of condition)))
    (or (cdr (assoc name *public-condition-names*)) name)))

(defmethod print-object ((c event-info) stream)
  (if *print-escape*
      (print-unreadable-object (c stream :identity t)
        (format stream "~S~@[ ~A~]" (%public-condition-name c)
                (ignore-errors (event-errname c))))
      (call-next-method)))
