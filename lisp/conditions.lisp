;;;; conditions.lisp -- event conditions, both vocabularies, and code mapping.
;;;;
;;;; The reference documents tcp-* names; cl-async signals socket-* names.
;;;; Handlers written for either must fire, so each condition we deliver is an
;;;; instance of a small combined class that inherits from the documented
;;;; class AND from cl-async's name for it (cl-async itself only made the
;;;; tcp-* names subclasses it never signals).  Every condition carries the
;;;; object it is about (socket or server), the numeric code and its name.

(in-package #:cl-async-tcp)

;;; ---- error codes, learnt from the library by name ----
;;; libuv's codes are negated errno values, which differ between systems, so
;;; they are read from the loaded library (cltcp_err_name) instead of being
;;; hardcoded; the Linux values are only the fallback.  Variables, not
;;; constants: their values come from the library at load time.

(defun error-code (name &optional fallback)
  "The negative code whose symbolic name (CLTCP_ERR_NAME, e.g. \"ECONNREFUSED\",
\"ECLOSED\") is the string NAME in the loaded libcltcp, or FALLBACK when it has
none.  libuv's codes are errno values, which differ between systems: use this
to name one in an EQL method of CODE-CONDITION-CLASS."
  (check-type name string)
  (or (loop for code from -1 downto -4095
            when (string= name (cltcp:err-name code))
              do (return code))
      (loop for code from -20000 downto -20100
            when (string= name (cltcp:err-name code))
              do (return code))
      fallback))

(defvar *uv-eof* (error-code "EOF" -4095))
(defvar *uv-econnrefused* (error-code "ECONNREFUSED" -111))
(defvar *uv-etimedout* (error-code "ETIMEDOUT" -110))
(defvar *uv-econnreset* (error-code "ECONNRESET" -104))
(defvar *uv-econnaborted* (error-code "ECONNABORTED" -103))
(defvar *uv-eaddrinuse* (error-code "EADDRINUSE" -98))
(defvar *uv-epipe* (error-code "EPIPE" -32))
(defvar *uv-ecanceled* (error-code "ECANCELED" -125))
(defvar *uv-einval* (error-code "EINVAL" -22))

(defun code-name (code)
  "The library's symbolic name of CODE (\"ECONNREFUSED\", \"ECLOSED\" ...)."
  (if (= code -1) "LISP" (cltcp:err-name code)))

(defun code-message (code)
  "The library's message for CODE."
  (cltcp:strerror code))

;;; ---- the base conditions ----

(define-condition event-info ()
  ((code :initarg :code :initform 0 :reader event-errcode
         :documentation "The library or OS code; -1 when this library made the condition itself.")
   (name :initarg :name :initform nil)
   (msg :initarg :msg :initform nil))
  (:report (lambda (c s) (report-event c s)))
  (:documentation "Base condition: something happened (cl-async's event-info).
Carries a code (EVENT-ERRCODE), its name (EVENT-ERRNAME) and a message
(EVENT-ERRMSG)."))

(define-condition event-error (event-info error)
  ()
  (:documentation "Something bad happened (cl-async's event-error).  EVENT-ERRCODE is the
OS or library code (-1 when the library made the error itself) and EVENT-ERRMSG
the system's message or the library's own text."))

(defgeneric event-errname (condition)
  (:documentation "The symbolic name of the condition's code, e.g. \"ECONNREFUSED\".")
  (:method ((c event-info))
    (or (slot-value c 'name) (code-name (event-errcode c)))))

(defgeneric event-errmsg (condition)
  (:documentation "The message of an event condition: the system's or the library's text.")
  (:method ((c event-info))
    (or (slot-value c 'msg) (code-message (event-errcode c)))))

(setf (documentation 'event-errcode 'function)
      "The numeric code of an event condition (a negative libuv/libcltcp code, 0 or -1).")

(defgeneric condition-object (condition)
  (:documentation "The socket or server an event condition is about, or NIL.")
  (:method ((c event-info)) nil))

(defparameter *public-condition-names*
  '((%eof . tcp-eof) (%timeout . tcp-timeout) (%refused . tcp-refused)
    (%reset . tcp-reset) (%aborted . socket-aborted) (%accept-error . tcp-accept-error)
    (%tcp-error . tcp-error) (%bind-in-use . tcp-server-bind-error)
    (%bind-error . tcp-server-bind-error) (%dns-connect-error . dns-error)
    (%broken-pipe . streamish-broken-pipe) (%canceled . streamish-canceled)
    (%closed-broken-pipe . socket-closed) (%dns-lookup-error . dns-error))
  "Reports name the documented class, not the internal combined one.")

(defun report-event (c stream)
  (let ((object (condition-object c))
        (name (type-of c)))
    (format stream "~A~@[ on ~A~]: ~A (~A, code ~D)"
            (or (cdr (assoc name *public-condition-names*)) name)
            object (event-errmsg c) (event-errname c) (event-errcode c))))

;;; ---- the documented TCP conditions and cl-async's names ----

;;; cl-async's streamish-* names.  In cl-async a socket is a "streamish"
;;; and its conditions descend from these; programs and frameworks written
;;; for it dispatch on them (handler-case, typecase in an event-cb).  Here
;;; they are ancestors of the tcp-* and socket-* classes, so what this
;;; library delivers is an instance of cl-async's name too.

(define-condition streamish-info (event-info)
  ((socket :initarg :socket :initarg :streamish :initform nil :reader streamish))
  (:documentation "cl-async's base condition of a streamish (a socket): an ancestor of
TCP-INFO and SOCKET-INFO.  STREAMISH is the socket (or tcp-server) it is about."))

(setf (documentation 'streamish 'function)
      "cl-async's accessor name: the socket (or tcp-server) a streamish condition is about.")

(define-condition streamish-error (event-error streamish-info) ()
  (:documentation "cl-async's general streamish error: an ancestor of TCP-ERROR and
SOCKET-ERROR, so every socket error this library delivers or signals is one."))

(define-condition streamish-eof (streamish-info) ()
  (:documentation "cl-async's end-of-file condition: an ancestor of TCP-EOF and SOCKET-EOF
(the peer closed its side)."))

(define-condition streamish-closed (streamish-error) ()
  (:documentation "cl-async's condition for an operation on a closed streamish: an
ancestor of SOCKET-CLOSED, signalled by WRITE-SOCKET-DATA, CLOSE-SOCKET ... on a
closed socket."))

(define-condition streamish-broken-pipe (streamish-error) ()
  (:documentation "cl-async's broken pipe (EPIPE): what a write gets when the write side
is gone -- the event-cb receives one when the kernel refuses queued bytes with
EPIPE, and WRITE-SOCKET-DATA after SHUTDOWN-SOCKET signals one (also a
SOCKET-CLOSED)."))

(define-condition streamish-canceled (streamish-error) ()
  (:documentation "cl-async's cancelled operation (ECANCELED): delivered to a socket's
event-cb for a write whose bytes never left because the connection closed under
it (a reset, a timeout, the peer's close), when the socket has a write-cb that
will therefore never be called for it.  After CLOSE-SOCKET the application hears
nothing more of the socket, so writes it drops itself are not reported."))

(define-condition tcp-info (streamish-info)
  ((socket :initarg :socket :initform nil :reader tcp-socket :reader socket))
  (:documentation "Base TCP condition: something happened on a TCP connection.
TCP-SOCKET (or cl-async's SOCKET) is the socket (for server conditions, the tcp-server)."))

(define-condition socket-info (streamish-info)
  ((socket :initarg :socket :initform nil :reader socket :reader tcp-socket))
  (:documentation "cl-async's name for TCP-INFO; what this library delivers is both."))

(defmethod condition-object ((c tcp-info)) (tcp-socket c))
(defmethod condition-object ((c socket-info)) (socket c))

(setf (documentation 'tcp-socket 'function)
      "The socket (or tcp-server) a TCP condition is about.")
(setf (documentation 'socket 'function)
      "cl-async's accessor name for TCP-SOCKET: the socket a TCP condition is about.")

(define-condition tcp-error (streamish-error tcp-info) ()
  (:documentation "A general error on a TCP connection.  The library closes the socket itself
after delivering it (a failed write or an operation on a closed socket excepted)."))
(define-condition socket-error (streamish-error socket-info) ()
  (:documentation "cl-async's name for TCP-ERROR; what this library delivers is both."))

(define-condition tcp-eof (tcp-info streamish-eof) ()
  (:documentation "The peer closed its side of the connection.  Bytes already queued for the
peer are still sent, then the socket closes, unless the event-cb closes it first."))
(define-condition socket-eof (socket-info streamish-eof) ()
  (:documentation "cl-async's name for TCP-EOF; what this library delivers is both."))

(define-condition tcp-timeout (tcp-error) ()
  (:documentation "A read, write or connect timeout expired on a TCP connection."))
(define-condition socket-timeout (socket-error) ()
  (:documentation "cl-async's name for TCP-TIMEOUT; what this library delivers is both."))

(define-condition tcp-refused (tcp-error) ()
  (:documentation "The peer refused the connection."))
(define-condition socket-refused (socket-error) ()
  (:documentation "cl-async's name for TCP-REFUSED; what this library delivers is both."))

(define-condition tcp-reset (tcp-error) ()
  (:documentation "The peer reset the connection (ECONNRESET)."))
(define-condition socket-reset (socket-error) ()
  (:documentation "cl-async's name for TCP-RESET; what this library delivers is both."))

(define-condition socket-aborted (socket-error) ()
  (:documentation "The connection was aborted (ECONNABORTED).  Delivered as a TCP-ERROR too."))

(define-condition tcp-accept-error (tcp-error)
  ((listener :initarg :listener :initform nil :reader tcp-accept-error-listener)
   (tcp-server :initarg :tcp-server :initform nil :reader tcp-accept-error-tcp-server))
  (:documentation "Passed to a tcp-server's event-cb when accepting a connection failed; the
server keeps listening.  Running out of file descriptors or memory (EVENT-ERRNAME
\"EMFILE\", \"ENFILE\", \"ENOBUFS\", \"ENOMEM\") is delivered once per episode: accepting
pauses, waiting clients stay queued, and it resumes by itself once a descriptor is
free.  TCP-ACCEPT-ERROR-LISTENER is the server's C handle (an id),
TCP-ACCEPT-ERROR-TCP-SERVER the tcp-server object."))
(define-condition socket-accept-error (socket-error)
  ((listener :initarg :listener :initform nil :reader tcp-accept-error-listener)
   (tcp-server :initarg :tcp-server :initform nil :reader tcp-accept-error-tcp-server))
  (:documentation "cl-async's name for TCP-ACCEPT-ERROR; what this library delivers is both."))

(setf (documentation 'tcp-accept-error-listener 'function)
      "The C handle (cltcp id) of the server an accept error happened on.")
(setf (documentation 'tcp-accept-error-tcp-server 'function)
      "The tcp-server object an accept error happened on.")

(define-condition socket-closed (tcp-error socket-error streamish-closed) ()
  (:documentation "Signalled when the application uses a socket that is already closed
(write-socket-data, set-socket-timeouts, close-socket ...)."))

(define-condition tcp-server-bind-error (tcp-error) ()
  (:documentation "Signalled by tcp-server when it cannot bind or listen (port in use,
privileged port, bad address).  TCP-SOCKET is the server object."))
(define-condition socket-address-in-use (socket-error) ()
  (:documentation "cl-async's condition for a bind to an address in use; a bind to a used
port delivers something that is both this and TCP-SERVER-BIND-ERROR."))

(define-condition dns-error (event-error) ()
  (:documentation "A host name lookup failed (no such name, server failure, timeout ...).
EVENT-ERRCODE and EVENT-ERRNAME say which."))

(define-condition %dns-lookup-error (dns-error)
  ((host :initarg :host :initform nil :reader dns-error-host))
  (:documentation "What a failed lookup delivers: a DNS-ERROR that also knows the host."))

(setf (documentation 'dns-error-host 'function)
      "The host name whose lookup failed (a string), for a DNS-ERROR delivered by
DNS-LOOKUP, DNS-LOOKUP-ALL or REVERSE-DNS-LOOKUP.")

(defmethod condition-object ((c %dns-lookup-error))
  (dns-error-host c))

;;; The classes actually delivered: each one is both names at once.
(define-condition %eof (tcp-eof socket-eof) ())
(define-condition %timeout (tcp-timeout socket-timeout) ())
(define-condition %refused (tcp-refused socket-refused) ())
(define-condition %reset (tcp-reset socket-reset) ())
(define-condition %aborted (socket-aborted tcp-error) ())
(define-condition %accept-error (tcp-accept-error socket-accept-error) ())
(define-condition %tcp-error (tcp-error socket-error) ())
(define-condition %bind-in-use (tcp-server-bind-error socket-address-in-use) ())
(define-condition %bind-error (tcp-server-bind-error socket-error) ())
(define-condition %dns-connect-error (dns-error tcp-error socket-error) ())
(define-condition %broken-pipe (tcp-error socket-error streamish-broken-pipe) ())
(define-condition %canceled (tcp-error socket-error streamish-canceled) ())
(define-condition %closed-broken-pipe (socket-closed streamish-broken-pipe) ())

;;; ---- codes -> condition classes: one extensible mapping ----
;;; A generic function with EQL methods on the code (as cl-async maps its
;;; error names): a program maps a code to its own class by adding a method.
;;; Only consulted when something failed, never per read or write.

(defgeneric code-condition-class (code context)
  (:documentation "The condition class (a symbol) this library makes for the negative CODE
met in CONTEXT, one of
  :SOCKET  an event delivered about a socket (its event-cb),
  :CALL    a call about a socket or tcp-server that failed at once (a code
           without a :CALL method of its own maps as in :SOCKET),
  :BIND    TCP-SERVER failing to listen,
  :ACCEPT  a tcp-server failing to accept,
  :DNS     a host name lookup (or a DNS setting) failing,
  :LOOP    anything else (event loop, timers, notifiers, signal handlers).
The condition is made with :CODE CODE and, except in :DNS and :LOOP, :SOCKET
(the socket or server); in :DNS with :HOST.  Extend it with EQL methods, e.g.
  (defmethod code-condition-class ((code (eql (error-code \"EHOSTUNREACH\")))
                                   (context (eql :socket)))
    'my-unreachable)
where MY-UNREACHABLE should be a subclass of the class the default gives (here
TCP-ERROR), so that handlers written for the documented classes still fire.")
  (:method (code (context (eql :socket)))
    (if (<= cltcp:+ednsconfig+ code cltcp:+enotfound+)
        '%dns-connect-error
        '%tcp-error))
  (:method (code (context (eql :call)))
    (code-condition-class code :socket))
  (:method (code (context (eql :bind))) (declare (ignore code)) '%bind-error)
  (:method (code (context (eql :accept))) (declare (ignore code)) '%accept-error)
  (:method (code (context (eql :dns))) (declare (ignore code)) '%dns-lookup-error)
  (:method (code (context (eql :loop))) (declare (ignore code)) 'event-error))

(defmacro define-code-conditions (context &body pairs)
  "CODE-CONDITION-CLASS methods for CONTEXT: each pair is (code-form class)."
  `(progn
     ,@(loop for (code class) in pairs
             collect `(defmethod code-condition-class ((code (eql ,code))
                                                       (context (eql ,context)))
                        ',class))))

(define-code-conditions :socket
  (*uv-eof* %eof)
  (*uv-econnrefused* %refused)
  (*uv-etimedout* %timeout)
  (*uv-econnreset* %reset)
  (*uv-econnaborted* %aborted)
  (cltcp:+eclosed+ socket-closed)
  (*uv-epipe* %broken-pipe)
  (*uv-ecanceled* %canceled))

(define-code-conditions :call
  ;; A call on a closed socket, and a write after SHUTDOWN-SOCKET.
  (cltcp:+eclosed+ socket-closed)
  (*uv-epipe* %closed-broken-pipe))

(define-code-conditions :bind
  (*uv-eaddrinuse* %bind-in-use))

(defun make-event-condition (code object &optional (context :socket))
  "A condition for CODE about OBJECT (a socket or server; a host name in :DNS),
of the class CODE-CONDITION-CLASS maps it to in CONTEXT."
  (let ((class (code-condition-class code context)))
    (case context
      (:dns (make-condition class :code code :host object))
      (:loop (make-condition class :code code))
      (t (make-condition class :code code :socket object)))))
