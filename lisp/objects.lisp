;;;; objects.lisp -- the Lisp objects that stand for C handles.
;;;;
;;;; Sockets, servers and events (delays, intervals) are standard classes, as
;;;; in cl-async, so that programs and libraries can subclass them, add
;;;; methods, or CHANGE-CLASS a live socket into a subclass (cl-async-ssl
;;;; does all three).  Each object holds its C id and its registry index (the
;;;; context word), which stay valid across CHANGE-CLASS.
;;;;
;;;; The cost, against the structures this file held before: an internal
;;;; field read (%SOCK-READ-CB ...) is a call of a slot reader generic
;;;; function -- a cached check of the instance's class, then a slot load --
;;;; where it was one inlined load.  No path uses SLOT-VALUE; the event path
;;;; reads 3 to 5 fields per event, a write 3.
;;;;
;;;; A socket is made per connection, so its size is the Lisp share of a
;;;; connection's memory (issue 12): 8 slots, 96 bytes on 64-bit SBCL (21
;;;; slots, 208 bytes, before).  Its booleans are bits of one fixnum slot
;;;; (FLAGS) and its rarely set fields live in a SOCKET-EXTRAS structure made
;;;; the first time one is set; both are read through inline functions with
;;;; setf functions, so that call sites read like the slot accessors they
;;;; replaced and cost one slot read each.
;;;;
;;;; DNS requests (lisp/dns.lisp) are not handed to programs as anything to
;;;; subclass and have no CLOSE event; they are a structure, DNS-REQUEST.

(in-package #:cl-async-tcp)

(defclass %handle-object ()
  ((id :initarg :id :initform 0
       :accessor %handle-id :accessor %sock-id :accessor %srv-id :accessor %timer-id
       :documentation "The libcltcp id of the C handle (0 before it exists).")
   (index :initarg :index :initform -1
          :accessor %handle-index :accessor %sock-index :accessor %srv-index
          :accessor %timer-index
          :documentation "The registry index given to C as the context word (-1: none).")
   (base :initarg :base :initform nil
         :accessor %handle-base :accessor %sock-base :accessor %srv-base
         :documentation "The EVENT-BASE (loop) the handle belongs to.")
   ;; One fixnum of flag bits (the +FLAG-...+ constants below) rather than a
   ;; slot per boolean: a socket is made per connection, and each slot costs
   ;; 8 bytes in every one (issue 12).  %SOCK-FLAGS is the same slot, read
   ;; only with sockets, so that its dispatch stays the one-class kind.
   (flags :initarg :flags :initform 0 :type fixnum
          :accessor %handle-flags :accessor %sock-flags
          :documentation "Flag bits: +FLAG-UNREFD+ for every handle, the socket flags for sockets."))
  (:documentation "Internal base class of every object that stands for a C handle."))

;;; The flag bits.  Every handle: UNREFD (after UNREF: the handle does not
;;; keep the loop alive; 0, the initial state, is referenced).  Sockets:
;;;   CLOSED           closed or closing, as the application sees it
;;;   PEER-CLOSED      the peer's EOF arrived
;;;   DRAINING         after EOF: C sends the queue, then closes
;;;   CONNECTED        connected (accepted sockets from the start)
;;;   SHUTDOWN-PENDING SHUTDOWN-SOCKET was called before connecting
;;;   KEEP             keep read mode (stream or :dont-drain-read-buffer)
;;;   ACCEPTED         accepted by a TCP-SERVER (STATS counts it as incoming)
(defconstant +flag-unrefd+ 1)
(defconstant +flag-closed+ 2)
(defconstant +flag-peer-closed+ 4)
(defconstant +flag-draining+ 8)
(defconstant +flag-connected+ 16)
(defconstant +flag-shutdown-pending+ 32)
(defconstant +flag-keep+ 64)
(defconstant +flag-accepted+ 128)

(defmacro define-flag-accessor (name reader bit)
  "Define NAME and (SETF NAME), inline, as the flag BIT of the slot READER reads:
one slot read and a LOGTEST, the cost of the slot read it replaces."
  `(progn
     (declaim (inline ,name (setf ,name)))
     (defun ,name (object)
       (logtest ,bit (the fixnum (,reader object))))
     (defun (setf ,name) (value object)
       (let ((flags (the fixnum (,reader object))))
         (setf (,reader object) (if value (logior flags ,bit) (logandc2 flags ,bit))))
       value)))

(define-flag-accessor %handle-unrefd-p %handle-flags +flag-unrefd+)
(define-flag-accessor %sock-closed-p %sock-flags +flag-closed+)
(define-flag-accessor %sock-peer-closed-p %sock-flags +flag-peer-closed+)
(define-flag-accessor %sock-draining-p %sock-flags +flag-draining+)
(define-flag-accessor %sock-connected-p %sock-flags +flag-connected+)
(define-flag-accessor %sock-shutdown-pending-p %sock-flags +flag-shutdown-pending+)
(define-flag-accessor %sock-keep-p %sock-flags +flag-keep+)
(define-flag-accessor %sock-accepted-p %sock-flags +flag-accepted+)

(declaim (inline %handle-refd (setf %handle-refd)))
(defun %handle-refd (handle)
  "False after UNREF: the handle does not keep the loop alive."
  (not (%handle-unrefd-p handle)))
(defun (setf %handle-refd) (value handle)
  (setf (%handle-unrefd-p handle) (not value))
  value)

;;; What few sockets use lives in one structure, made the first time one of
;;; its fields is set to something else than its default, so that a socket
;;; that uses none (an accepted connection, with or without its server's
;;; connect-cb, the usual case) holds NIL there: 7 fields it would otherwise carry in
;;; every instance.  Reading one is a slot read and a NIL test while there is
;;; none (the write path reads the write-cb per write).  A :stream t socket
;;; that uses nothing else holds its stream there alone, not in a structure
;;; (64 bytes less per such connection); the structure is made, with the
;;; stream moved into it, when another field is set.
(defstruct (socket-extras (:constructor %make-socket-extras ())
                          (:conc-name %extras-) (:copier nil)
                          (:predicate %socket-extras-p))
  "A socket's rarely set fields (see %SOCK-EXTRAS)."
  (connect-cb nil)
  (write-cb nil)
  (drain-cb nil)
  (shutdown-cb nil)
  ;; the async-io-stream of a :stream t socket
  (stream nil)
  ;; keep mode: input bytes saved when the handle died
  (leftover nil)
  (leftover-start 0 :type fixnum))

(defclass socket (%handle-object)
  (;; SOCKET-DATA is this slot's own accessor (no method in between): programs
   ;; read it per event.
   (data :initarg :data :initform nil :accessor %sock-data :accessor socket-data)
   (read-cb :initarg :read-cb :initform nil :accessor %sock-read-cb)
   (event-cb :initarg :event-cb :initform nil :accessor %sock-event-cb)
   ;; NIL, a SOCKET-EXTRAS, or the socket's stream alone: read through the
   ;; accessors below
   (extras :initform nil :accessor %sock-extras))
  (:documentation "A TCP connection (cl-async's socket class).  SOCKET-C is its C handle,
SOCKET-DATA holds anything the application wants to keep with it.  A standard
class: programs may subclass it and specialize CLOSE-SOCKET, REF, UNREF ... on
their class, or CHANGE-CLASS a live socket into a subclass of TCP-SOCKET."))

(defmacro define-extra-accessor (name field default)
  "Define NAME and (SETF NAME), inline, as FIELD of a socket's SOCKET-EXTRAS,
DEFAULT while it has none; storing DEFAULT then makes none.  A stream held
alone moves into the structure when one is made."
  `(progn
     (declaim (inline ,name (setf ,name)))
     (defun ,name (socket)
       (let ((extras (%sock-extras socket)))
         (if (%socket-extras-p extras) (,field extras) ,default)))
     (defun (setf ,name) (value socket)
       (let ((extras (%sock-extras socket)))
         (cond ((%socket-extras-p extras) (setf (,field extras) value))
               ((eql value ,default))
               (t (let ((new (%make-socket-extras)))
                    ;; EXTRAS is NIL or the stream alone.
                    (setf (%extras-stream new) extras
                          (,field new) value
                          (%sock-extras socket) new)))))
       value)))

(declaim (inline %sock-stream (setf %sock-stream)))
(defun %sock-stream (socket)
  "The async-io-stream of a :stream t socket (or NIL): in its extras, or there
alone."
  (let ((extras (%sock-extras socket)))
    (if (%socket-extras-p extras) (%extras-stream extras) extras)))
(defun (setf %sock-stream) (value socket)
  (let ((extras (%sock-extras socket)))
    (if (%socket-extras-p extras)
        (setf (%extras-stream extras) value)
        (setf (%sock-extras socket) value)))
  value)

(define-extra-accessor %sock-connect-cb %extras-connect-cb nil)
(define-extra-accessor %sock-write-cb %extras-write-cb nil)
(define-extra-accessor %sock-drain-cb %extras-drain-cb nil)
(define-extra-accessor %sock-shutdown-cb %extras-shutdown-cb nil)
(define-extra-accessor %sock-leftover %extras-leftover nil)
(define-extra-accessor %sock-leftover-start %extras-leftover-start 0)

(defclass tcp-socket (socket)
  ()
  (:documentation "The class of the sockets this library makes (cl-async's tcp-socket, a
socket).  Accepted sockets are of the class SERVER-SOCKET-CLASS names for their server."))

(defclass tcp-server (%handle-object)
  ((read-cb :initarg :read-cb :initform nil :accessor %srv-read-cb)
   (event-cb :initarg :event-cb :initform nil :accessor %srv-event-cb)
   (connect-cb :initarg :connect-cb :initform nil :accessor %srv-connect-cb)
   (stream-p :initarg :stream-p :initform nil :accessor %srv-stream-p)
   (closed-p :initform nil :accessor %srv-closed-p))
  (:documentation "A listening TCP server, returned by the function TCP-SERVER; close it with
CLOSE-TCP-SERVER (or cl-async's generic CLOSE-SOCKET-SERVER).  TCP-SERVER-PORT and
TCP-SERVER-ADDRESS tell where it listens.  A standard class, as in cl-async."))

(defclass event (%handle-object)
  ((callback :initarg :callback :initform nil :accessor %timer-callback)
   (event-cb :initarg :event-cb :initform nil :accessor %timer-event-cb)
   (freed-p :initform nil :accessor %timer-freed-p)
   ;; REMOVE-EVENT took it out of the loop; ADD-EVENT can put it back.
   (removed-p :initform nil :accessor %timer-removed-p)
   ;; C timers made for this event whose CLOSE has not arrived yet (ADD-EVENT
   ;; replaces the C timer); the registry entry lives while this is > 0.
   (c-live :initform 0 :accessor %timer-c-live)
   ;; INTERVAL: the function it returned (a key of the loop's intervals table)
   (interval-fn :initform nil :accessor %timer-interval-fn))
  (:documentation "cl-async's event class: what DELAY, WITH-DELAY and MAKE-EVENT return (and
what an INTERVAL runs on).  FREE-EVENT cancels it, REMOVE-EVENT takes it out of
the loop, ADD-EVENT puts it back; EVENT-FREED-P tells whether it is freed, and
EVENT-C is its C handle (a libcltcp timer id, 0 while removed)."))

(deftype timer ()
  "Internal name of the class EVENT (a libcltcp timer)."
  'event)

;;; The class this library makes is tested by identity first: TYPEP of a
;;; standard class walks the class's inheritance (about 13 ns on SBCL against
;;; 4 for CLASS-OF and EQ), and the read and write paths test every event and
;;; every write.  Subclasses still pass through TYPEP.
(declaim (inline socket-p tcp-server-p timer-p))
(defun socket-p (x)
  (or (eq (class-of x) (load-time-value (find-class 'tcp-socket) t))
      (typep x 'socket)))
(defun tcp-server-p (x)
  (or (eq (class-of x) (load-time-value (find-class 'tcp-server) t))
      (typep x 'tcp-server)))
(defun timer-p (x)
  (or (eq (class-of x) (load-time-value (find-class 'event) t))
      (typep x 'event)))

;;; Constructors with literal class names and keywords, so that the
;;; implementation can optimize MAKE-INSTANCE at the call site.
(defmacro %make-tcp-socket (&rest initargs)
  `(make-instance 'tcp-socket ,@initargs))

(defmacro %make-tcp-server (&rest initargs)
  `(make-instance 'tcp-server ,@initargs))

(defmacro %make-timer (&rest initargs)
  `(make-instance 'event ,@initargs))

(defgeneric server-socket-class (server)
  (:documentation "The class of the sockets SERVER accepts (a class name); TCP-SOCKET by
default.  A subclass of TCP-SERVER may return a subclass of TCP-SOCKET (as
cl-async's internal generic of the same name does).")
  (:method ((server tcp-server)) 'tcp-socket))

(defmethod print-object ((s socket) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~:[open~;closed~]" (%sock-closed-p s))))

(defmethod print-object ((s tcp-server) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~:[listening~;closed~]" (%srv-closed-p s))))

(defmethod print-object ((s event) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~:[~:[pending~;removed~]~;freed~]" (%timer-freed-p s) (%timer-removed-p s))))

(defgeneric socket-c (socket)
  (:documentation "The C handle of SOCKET: the libcltcp socket id (an integer; 0 never names a
live handle).  Calls on a closed id fail cleanly in C.  (cl-async: the libuv
handle pointer.)")
  (:method ((socket socket)) (%sock-id socket)))

(setf (documentation 'socket-data 'function)
      "Arbitrary application data stored with SOCKET (setf-able); a generic slot
accessor, as in cl-async."
      (documentation '(setf socket-data) 'function)
      "Store VALUE as SOCKET's application data.")

;;; ---- generic functions where cl-async has them ----
;;; Their methods live with the code they belong to (socket.lisp, server.lisp, events.lisp,
;;; handles.lisp ...); programs add methods for their subclasses.

(defgeneric close-socket (socket &key force)
  (:documentation "Close SOCKET (or the socket of an async stream) and forget its callbacks.
Data already written is still sent first; with :FORCE true the queue is dropped
and the connection closes at once.  Signals SOCKET-CLOSED when SOCKET was closed
already.  Returns NIL.  Generic (cl-async's close-streamish / close-socket), so a
subclass of SOCKET may add :before, :after or :around methods."))

(defgeneric close-socket-server (server)
  (:documentation "cl-async's generic name for closing a server: stop listening (connections
already accepted stay open); does nothing when SERVER is closed already.  Returns
NIL.  CLOSE-TCP-SERVER calls it."))

(defgeneric ref (handle)
  (:documentation "Make HANDLE keep its event loop alive again (libuv's uv_ref), undoing UNREF.
Every handle starts referenced.  HANDLE is a socket (or its async stream), a
tcp-server, an event (what DELAY and MAKE-EVENT return), the function INTERVAL
returned (in the interval's loop), a notifier or a signal handler (what
SIGNAL-HANDLER returns).  Returns NIL.  Signals SOCKET-CLOSED, EVENT-FREED
(also for a function that is no live interval) or NOTIFIER-FREED when HANDLE is
closed or freed already (a tcp-server too), or of an event loop that has exited."))

(defgeneric unref (handle)
  (:documentation "Let the event loop exit even while HANDLE is alive (libuv's uv_unref): once
only unreferenced handles are left, START-EVENT-LOOP returns (closing them).
An unreferenced handle still works (a server accepts, a timer fires) while the
loop runs for other reasons.  Handles as for REF.  A socket with a connect,
write or shutdown in flight keeps the loop alive until that completes (libuv's
rule for requests).  Returns NIL."))

(defgeneric event-freed-p (event)
  (:documentation "True once EVENT (what DELAY or MAKE-EVENT returns) is freed: it fired (a
delay fires once), FREE-EVENT cancelled it, or its loop ended.  A removed
event (REMOVE-EVENT) is not freed while its loop runs."))

(defgeneric event-c (event)
  (:documentation "The C handle of EVENT: its libcltcp timer id (an integer; 0 while the event
is removed from the loop or freed).  cl-async: the libuv timer pointer."))

(defgeneric stream-socket (stream)
  (:documentation "The socket an async stream wraps (see lisp/stream.lisp)."))

(declaim (ftype (function (t t t) nil) %argument-error)) ; as in checks.lisp

(defun socket-stream (socket)
  "The async-io-stream made for SOCKET by :stream t, or NIL."
  (if (socket-p socket)
      (%sock-stream socket)
      (%argument-error 'socket socket 'socket)))

(defun %socket-of (thing)
  "THING as a socket: a socket itself, or the socket of an async stream."
  (if (socket-p thing) thing (stream-socket thing)))
