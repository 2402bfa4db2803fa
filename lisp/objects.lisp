;;;; objects.lisp -- the Lisp objects that stand for C handles.
;;;;
;;;; Structures, not standard classes: the event callback reads a few slots
;;;; of these per event, and a structure slot read is one load instruction.
;;;; Each object holds its C id and its registry index (the context word).

(in-package #:cl-async-tcp)

(defstruct (handle (:constructor nil) (:copier nil) (:conc-name %handle-))
  (id 0 :type (unsigned-byte 64))
  (index -1 :type fixnum)
  (base nil))

(defstruct (socket (:include handle) (:constructor nil) (:copier nil) (:conc-name %sock-))
  "A TCP connection (cl-async's socket class).  SOCKET-C is its C handle, SOCKET-DATA
holds anything the application wants to keep with it."
  (data nil)
  (read-cb nil)
  (event-cb nil)
  (connect-cb nil)
  (write-cb nil)
  (drain-cb nil)
  (shutdown-cb nil)
  (stream nil)
  (keep-p nil)                ; keep read mode (stream or :dont-drain-read-buffer)
  (closed-p nil)              ; closed or closing, as the application sees it
  (peer-closed-p nil)         ; the peer's EOF arrived
  (draining-p nil)            ; after EOF: C sends the queue, then closes
  (connected-p nil)
  (shutdown-pending-p nil)    ; shutdown-socket was called before connecting
  (leftover nil)              ; keep mode: input bytes saved when the handle died
  (leftover-start 0 :type fixnum)
  (server nil))               ; the tcp-server that accepted it, if any

(defstruct (tcp-socket (:include socket) (:constructor %make-tcp-socket) (:copier nil)
                       (:conc-name %tcp-sock-))
  "The class of the sockets this library makes (cl-async's tcp-socket, a socket).")

(defstruct (tcp-server (:include handle) (:constructor %make-tcp-server) (:copier nil)
                       (:conc-name %srv-))
  "A listening TCP server, returned by the function TCP-SERVER; close it with
CLOSE-TCP-SERVER.  TCP-SERVER-PORT and TCP-SERVER-ADDRESS tell where it listens."
  (read-cb nil)
  (event-cb nil)
  (connect-cb nil)
  (stream-p nil)
  (closed-p nil))

(defstruct (timer (:include handle) (:constructor %make-timer) (:copier nil)
                  (:conc-name %timer-))
  "A delay or interval (what DELAY returns; cl-async calls it an event)."
  (callback nil)
  (event-cb nil)
  (freed-p nil))

(defmethod print-object ((s socket) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~:[open~;closed~]" (%sock-closed-p s))))

(defmethod print-object ((s tcp-server) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~:[listening~;closed~]" (%srv-closed-p s))))

(defmethod print-object ((s timer) stream)
  (print-unreadable-object (s stream :type t :identity t)
    (format stream "~:[pending~;freed~]" (%timer-freed-p s))))

(declaim (inline socket-c socket-data (setf socket-data)))

(defun socket-c (socket)
  "The C handle of SOCKET: the libcltcp socket id (an integer; 0 never names a
live handle).  Calls on a closed id fail cleanly in C."
  (%sock-id socket))

(defun socket-data (socket)
  "Arbitrary application data stored with SOCKET (setf-able)."
  (%sock-data socket))

(defun (setf socket-data) (value socket)
  "Store VALUE as SOCKET's application data."
  (setf (%sock-data socket) value))

(defgeneric stream-socket (stream)
  (:documentation "The socket an async stream wraps (see lisp/stream.lisp)."))

(defun socket-stream (socket)
  "The async-io-stream made for SOCKET by :stream t, or NIL."
  (%sock-stream socket))

(defun %socket-of (thing)
  "THING as a socket: a socket itself, or the socket of an async stream."
  (if (socket-p thing) thing (stream-socket thing)))
