;;;; checks.lisp -- what every exported function checks at its entry.
;;;;
;;;; Three kinds of check live here, in one place, so that every function says
;;;; the same thing in the same words:
;;;;
;;;; - Argument types.  Each argument with a documented type is checked
;;;;   before anything is created or reaches C, and a bad one signals an
;;;;   ARGUMENT-TYPE-ERROR: a TYPE-ERROR whose datum is the value, whose
;;;;   expected type is the documented one and whose report names the
;;;;   argument.  Before these checks a string timeout silently meant "no
;;;;   timeout" and a NIL host was looked up as "NIL".  A check is one TYPEP
;;;;   on a constant type and a branch; the error path is out of line.
;;;;
;;;; - Liveness.  libcltcp ids from a loop that has been torn down may name
;;;;   handles of a later loop (and even once ids are unique, C cannot tell
;;;;   "closed" from "never mine").  So a socket, server or timer whose loop
;;;;   is gone never reaches C again: the Lisp object knows its loop (the
;;;;   HANDLE's BASE), and a base whose teardown began is dead for good --
;;;;   %TEARDOWN sets EVENT-BASE-CLOSING and nothing ever clears it.  An
;;;;   operation on a closed socket or server, or one of a dead loop,
;;;;   signals SOCKET-CLOSED (%OPEN-SOCKET, %OPEN-SERVER).
;;;;
;;;; - Status codes.  A libcltcp call that fails signals through the foreign
;;;;   type CLTCP:STATUS (lisp/ffi.lisp) into %STATUS-ERROR below, which
;;;;   makes the condition CODE-CONDITION-CLASS (lisp/conditions.lisp) names.

(in-package #:cl-async-tcp)

;;; ---- argument types ----

(define-condition argument-type-error (type-error)
  ((argument :initarg :argument :initform nil :reader argument-type-error-argument))
  (:report (lambda (c s)
             (format s "The argument ~A is ~S, which is not of type ~S."
                     (argument-type-error-argument c)
                     (type-error-datum c) (type-error-expected-type c))))
  (:documentation "A TYPE-ERROR signalled by an exported function for an argument of the
wrong type, before the function did anything.  ARGUMENT-TYPE-ERROR-ARGUMENT is the
argument's name (a symbol, a keyword for keyword arguments)."))

(eval-when (:compile-toplevel :load-toplevel :execute)
  (defvar *argument-types* '()
    "Alist (name . expansion) of the types DEFINE-ARGUMENT-TYPE made.")

  (defun %expand-argument-type (type)
    "TYPE with the names of DEFINE-ARGUMENT-TYPE expanded, for reports: a user
reads (INTEGER 0 65535), not an internal type name."
    (cond ((and (symbolp type) (assoc type *argument-types*))
           (%expand-argument-type (cdr (assoc type *argument-types*))))
          ((consp type) (mapcar #'%expand-argument-type type))
          (t type))))

(defmacro define-argument-type (name expansion documentation)
  "DEFTYPE NAME as EXPANSION, and remember it for the reports of bad arguments."
  `(progn
     (eval-when (:compile-toplevel :load-toplevel :execute)
       (setf *argument-types* (acons ',name ',expansion
                                     (remove ',name *argument-types* :key #'car))))
     (deftype ,name () ,documentation ',expansion)))

(define-argument-type port-number (integer 0 65535)
  "A TCP port.")

(defun %nul-free-p (x)
  "True when X is a string without a NUL character (C would end it there)."
  ;; STRINGP here too: TYPEP may test the parts of an AND type in any order.
  (and (stringp x) (not (find (code-char 0) x))))

(define-argument-type host-name (and string (satisfies %nul-free-p))
  "A host to connect to or bind: an address or a name, as a string without NUL
\(C would read \"127.0.0.1<NUL>junk\" as \"127.0.0.1\").")

;;; Keywords are symbols, but one in a callback's place is a keyword argument
;;; out of place -- (tcp-connect host port :read-cb cb) -- so it is refused
;;; rather than called (and found undefined) later.
(define-argument-type callback (or function (and symbol (not keyword)))
  "An optional callback: a function, a symbol naming one, or NIL for none.")

(define-argument-type required-callback (or function (and symbol (not null) (not keyword)))
  "A callback that must be there: a function or a (non-NIL) symbol naming one.")

(define-argument-type timeout-seconds (or null real)
  "A socket timeout in seconds: NIL or a non-positive number (the reference's
default -1) means none.")

(define-argument-type delay-seconds (or null (real 0))
  "A delay in seconds: NIL or a non-negative real.")

(define-argument-type socket-data-designator (or string (vector (unsigned-byte 8)))
  "What WRITE-SOCKET-DATA and :DATA accept: a string (sent as UTF-8) or octets.")

(defun %argument-error (argument value type)
  (declare (optimize (speed 1) (safety 1)))
  (error 'argument-type-error :argument argument :datum value :expected-type type))


(defmacro check-argument (place type &optional (name place))
  "Signal an ARGUMENT-TYPE-ERROR naming NAME unless the value of PLACE is of TYPE
(not evaluated)."
  (let ((value (gensym "VALUE")))
    `(let ((,value ,place))
       (unless (typep ,value ',type)
         (%argument-error ',name ,value ',(%expand-argument-type type))))))

(defmacro check-arguments (&rest specs)
  "Each spec is (place type [name]); see CHECK-ARGUMENT."
  `(progn ,@(loop for spec in specs collect `(check-argument ,@spec)) nil))

;;; The reference passes event-cb positionally after the read-cb (NIL there
;;; means *DEFAULT-EVENT-HANDLER*); current cl-async takes :event-cb as a
;;; keyword.  Both work: after the required arguments, an odd number of
;;; remaining arguments means the first one is the positional event-cb
;;; (keyword arguments always come in pairs).
(defun %split-event-cb (args)
  "Split the arguments after the required ones into (values event-cb keys)."
  (if (oddp (length args))
      (values (or (first args) (getf (rest args) :event-cb))
              (alexandria:remove-from-plist (rest args) :event-cb))
      (values (getf args :event-cb)
              (alexandria:remove-from-plist args :event-cb))))


(defun %c-seconds (x)
  "X -- NIL or a real, already checked (a DELAY-SECONDS or TIMEOUT-SECONDS) -- as
the double C takes: NIL or a non-positive number is 0 (no timeout, or the next
turn); reals beyond what C clamps to anyway (10^9 s) are clamped here, where
FLOAT could overflow."
  (cond ((not (and x (plusp x))) 0d0)
        ((> x 1000000000) 1d9)
        (t (float x 1d0))))

;;; ---- liveness ----

(declaim (inline %loop-gone-p %c-handle-gone-p))

(defun %loop-gone-p (object)
  "True when the loop OBJECT (a socket, server or timer) was made in has been
torn down: its id must never reach C again."
  (let ((base (%handle-base object)))
    (or (null base) (event-base-closing base))))

(defun %c-handle-gone-p (object)
  "True when OBJECT's C handle is gone for certain: its CLOSE event came (its
registry index is freed) or its loop was torn down."
  (or (< (%handle-index object) 0) (%loop-gone-p object)))

(defmethod stream-socket ((object t))
  ;; %SOCKET-OF (lisp/objects.lisp) asks for the socket of anything that is
  ;; not a socket: make that a type error naming the argument.
  (%argument-error 'socket object '(or socket async-stream)))

(defun %signal-closed (socket)
  "Signal SOCKET-CLOSED about SOCKET (a socket or tcp-server)."
  (error 'socket-closed :socket socket :code cltcp:+eclosed+))

(declaim (inline %open-socket))

(defun %open-socket (thing)
  "THING (a socket or an async stream) as its socket, which must be open:
signals SOCKET-CLOSED when it was closed or its loop is gone (and a TYPE-ERROR
when THING is neither a socket nor a stream)."
  (let ((socket (%socket-of thing)))
    (when (or (%sock-closed-p socket) (%loop-gone-p socket))
      (setf (%sock-closed-p socket) t)
      (%signal-closed socket))
    socket))

(defun %open-server (server)
  "SERVER, which must be a listening tcp-server: signals SOCKET-CLOSED when it was
closed or its loop is gone."
  (check-argument server tcp-server tcp-server)
  (when (or (%srv-closed-p server) (%loop-gone-p server))
    (setf (%srv-closed-p server) t)
    (%signal-closed server))
  server)

;;; ---- status codes: the one place a failed libcltcp call is signalled ----
;;; Every function of lisp/ffi.lisp that returns the foreign type STATUS
;;; calls %STATUS-ERROR for a negative code; WITH-STATUS says what the
;;; calls in its body are about, for the condition.  Binding one special
;;; variable is the whole cost on the hot write path.

(defvar *status-object* nil
  "What a failing libcltcp call is about (see WITH-STATUS).")

(defvar *status-context* nil
  "The CODE-CONDITION-CLASS context of a failing call; NIL: from *STATUS-OBJECT*.")

(defmacro with-status ((object &optional context) &body body)
  "Run BODY, whose libcltcp calls are about OBJECT: a negative status they return
signals the condition of its code about OBJECT, in CONTEXT (by default :CALL for
a socket or tcp-server, :DNS for a host name, else :LOOP)."
  `(let ((*status-object* ,object)
         ,@(when context `((*status-context* ,context))))
     ,@body))

(defun %status-context (object)
  (or *status-context*
      (typecase object
        ((or socket tcp-server) :call)
        (string :dns)
        (t :loop))))

(defun %status-error (code)
  "Signal the condition for the negative libcltcp status CODE: the one place a
failed call becomes a condition (the translator of the foreign type
CLTCP:STATUS calls it).  A socket C calls closed reads as closed from now on."
  (declare (type fixnum code))
  (let ((object *status-object*))
    (when (and (= code cltcp:+eclosed+) (typep object 'socket))
      (setf (%sock-closed-p object) t))
    (error (make-event-condition code object (%status-context object)))))

(defun check-status (status object &optional (context (%status-context object)))
  "A RAW-STATUS returned by a call whose caller tolerates some failures: STATUS
when it is not negative, else signal its condition about OBJECT in CONTEXT."
  (declare (type fixnum status))
  (if (< status 0)
      (with-status (object context) (%status-error status))
      status))
