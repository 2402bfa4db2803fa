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

;;; ---- the generic accessors refuse what is not a socket ----
;;; (A type error naming the argument, as everywhere; without these methods
;;; it would be NO-APPLICABLE-METHOD.)

(defmethod socket-c (socket)
  (check-argument socket socket))

(defmethod socket-data (socket)
  (check-argument socket socket))

(defmethod (setf socket-data) (value socket)
  (declare (ignore value))
  (check-argument socket socket))

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

;;; ---- cl-async's streamish functions ----
;;; In cl-async a socket is a "streamish" and these are its generic layer
;;; (the streamish-* conditions are in conditions.lisp).  Here they are thin
;;; entries to the socket functions, so methods that programs define on
;;; CLOSE-SOCKET run from CLOSE-STREAMISH too.

(defgeneric close-streamish (streamish &key force &allow-other-keys)
  (:documentation "cl-async's generic close of a streamish (a socket or its async stream): the
same as CLOSE-SOCKET (:FORCE drops what is still queued).  Signals SOCKET-CLOSED
(a STREAMISH-CLOSED) when it is closed already.  Returns NIL.")
  (:method (streamish &key force &allow-other-keys)
    (close-socket streamish :force force)))

(defgeneric streamish-write (streamish data &key start end &allow-other-keys)
  (:documentation "cl-async's generic write on a streamish: the same as WRITE-SOCKET-DATA
(:START, :END, :READ-CB, :WRITE-CB, :EVENT-CB as there; cl-async's :FORCE is
accepted and changes nothing).  Returns NIL.")
  (:method (streamish data &rest args &key (start 0) end force &allow-other-keys)
    (declare (ignore force))
    (apply #'write-socket-data streamish data :start start :end end
           (alexandria:remove-from-plist args :start :end :force))))

(defun streamish-closed-p (streamish)
  "cl-async's name for SOCKET-CLOSED-P: true once the socket (or the socket of
the async stream) STREAMISH is closed."
  (socket-closed-p streamish))

(defun check-streamish-open (streamish)
  "cl-async's check: signal SOCKET-CLOSED (a STREAMISH-CLOSED) when the socket
STREAMISH (or its async stream's socket) is closed; otherwise return NIL."
  (when (socket-closed-p streamish)
    (%signal-closed (%socket-of streamish)))
  nil)
