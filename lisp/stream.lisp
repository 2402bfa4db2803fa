;;;; stream.lisp -- async-io-stream: Gray streams over keep-mode sockets.
;;;;
;;;; A stream is a thin view of one socket in keep read mode (:stream t or
;;;; :dont-drain-read-buffer t): received bytes stay in libcltcp's per-socket
;;;; input buffer until someone reads them, and every read here moves bytes
;;;; out of that buffer with one cltcp_socket_read call (READ-SOCKET-DATA).
;;;;
;;;; Two decisions shape this file:
;;;;
;;;; - No Lisp-side buffer, in either direction.  READ-SEQUENCE into an octet
;;;;   vector copies straight from C's buffer into the caller's (pinned)
;;;;   vector, so stream mode conses nothing per read -- the cost cl-async's
;;;;   users measured was a fresh copy of the whole buffer per read.  Without
;;;;   a Lisp copy of the input, SOCKET-BUFFERED-BYTES on the stream is the
;;;;   exact count, and READ-SOCKET-DATA on the socket interleaves with
;;;;   stream reads without losing or duplicating a byte.  On output every
;;;;   call hands its bytes to C at once (C copies them before returning), so
;;;;   the stream and WRITE-SOCKET-DATA on the same socket keep call order
;;;;   without either knowing about the other.  The price: READ-BYTE and
;;;;   WRITE-BYTE cost one foreign call each (the bytes of one loop turn
;;;;   then leave in one send, see *BUFFER-WRITES*); bulk data belongs in
;;;;   READ-SEQUENCE and WRITE-SEQUENCE.
;;;;
;;;; - Reading never blocks (it runs inside the event loop, which is what
;;;;   would deliver the next bytes), so a reader must be able to tell
;;;;   "nothing has arrived yet" from "nothing will ever arrive".  SBCL's
;;;;   READ-BYTE only accepts an integer or :EOF from a Gray stream, and a
;;;;   sentinel integer would turn the common (loop for b = (read-byte s nil
;;;;   nil) while b ...) into an endless loop.  So when the input is merely
;;;;   empty, READ-BYTE first SIGNALs ASYNC-STREAM-EMPTY (a plain condition,
;;;;   not an error, so nothing unwinds unless the program asks for it) and
;;;;   then answers end of file as cl-async does -- programs written for
;;;;   cl-async keep working, and a wrapping stream (flexi-streams) hands
;;;;   back a partial line.  READ-SEQUENCE and LISTEN never signal.

(in-package #:cl-async-tcp)

(define-condition async-stream-empty (condition)
  ((stream :initarg :stream :reader async-stream-empty-stream))
  (:report (lambda (c s)
             (format s "Nothing is buffered on ~S yet (the peer has not closed): ~
                        read again from the next read-cb, or check LISTEN first."
                     (async-stream-empty-stream c))))
  (:documentation "Signalled (with SIGNAL: it is neither an error nor a warning) by
READ-BYTE on an async input stream when no byte is buffered yet but more can
still arrive (the peer has not closed and the socket is open).  Nothing was
consumed.  When no handler takes it, the read then answers as cl-async's does,
as at end of file: READ-BYTE returns its eof-value (or signals END-OF-FILE when
eof-error-p is true), so programs written for cl-async that loop on
(read-byte stream nil :eof) inside their read-cb run unchanged, and a wrapping
stream such as flexi-streams returns what it has read so far.  A program that
must tell \"nothing yet\" from \"the peer closed\" handles this condition, or asks
LISTEN / SOCKET-PEER-CLOSED-P, before treating the answer as the end:
  (handler-case (read-byte stream nil :eof)
    (as:async-stream-empty () :not-yet))"))

;;; ---- classes ----

(defclass async-stream (trivial-gray-streams:trivial-gray-stream-mixin
                        trivial-gray-streams:fundamental-binary-stream)
  ((socket :initarg :socket :reader stream-socket
           :documentation "The socket this stream reads from and writes to.")
   ;; Made by the first READ-BYTE, WRITE-BYTE or WRITE-CHAR (%STREAM-SMALL):
   ;; a stream made per connection that moves sequences never needs it.
   (small :initform nil :accessor %stream-small-slot
          :documentation "Room for one byte read or written, or one UTF-8 character (or NIL)."))
  (:documentation "Base class of the streams over a cl-async-tcp socket (cl-async's
async-stream).  STREAM-SOCKET is the socket.  The stream is open while its socket
is: OPEN-STREAM-P is (NOT (SOCKET-CLOSED-P socket)); CLOSE on the stream closes
the socket (with :ABORT T, dropping data not yet sent).  Its element type is
(UNSIGNED-BYTE 8)."))

(defclass async-input-stream (async-stream trivial-gray-streams:fundamental-binary-input-stream)
  ()
  (:documentation "A binary input stream over a socket in keep read mode (made by
:stream t, or with (make-instance 'async-input-stream :socket s) on a socket made
with :dont-drain-read-buffer t).  Received bytes wait in the socket's input
buffer until they are read, here or with READ-SOCKET-DATA; reading never
blocks, so read from the read-cb, which runs whenever bytes arrived.

What a reader sees:
- bytes buffered: READ-BYTE returns the next one; READ-SEQUENCE fills as many
  elements as are buffered (up to :END) and returns, as CLHS says, the index of
  the first element not updated (START + count, also for :START > 0); LISTEN
  is true.  (SOCKET-BUFFERED-BYTES stream) is the number of buffered bytes.
- nothing buffered yet, connection open: READ-BYTE signals the condition
  ASYNC-STREAM-EMPTY (with SIGNAL; nothing consumed) and, when no handler
  takes it, answers like end of file, as cl-async does (its eof-value, or
  END-OF-FILE when eof-error-p is true); READ-SEQUENCE returns START; LISTEN
  is false; SOCKET-PEER-CLOSED-P is false.
- end of input (the peer closed, or the socket was closed, and every byte
  has been read): READ-BYTE answers end of file -- END-OF-FILE, or its
  eof-value when eof-error-p is NIL; READ-SEQUENCE returns START; LISTEN is
  false; SOCKET-PEER-CLOSED-P is true when the peer closed.
Bytes that arrived before the peer closed stay readable after the socket
closed; nothing is ever lost or returned twice."))

(defclass async-output-stream (async-stream
                               trivial-gray-streams:fundamental-binary-output-stream
                               trivial-gray-streams:fundamental-character-output-stream)
  ((column :initform 0 :accessor %stream-column
           :documentation "Characters since the last newline written, or NIL once
bytes were written (then the column is unknown)."))
  (:documentation "An output stream over a socket: WRITE-BYTE and WRITE-SEQUENCE
of octets, and characters (WRITE-CHAR, WRITE-STRING, FORMAT ...) encoded as
UTF-8.  Each call hands its bytes to libcltcp before it returns (they are
copied; with *BUFFER-WRITES* they leave with the turn's other writes at the
end of the loop turn, otherwise at once; what the kernel does not take is
queued and sent by the loop), so data written here and with WRITE-SOCKET-DATA
on the same socket leaves in call order.  FORCE-OUTPUT therefore has nothing
left to push (the end of the turn sends it); FINISH-OUTPUT
returns at once too, because waiting inside the event loop would stop the
loop that sends: to know when the bytes left, use the socket's write-cb or
SOCKET-QUEUED-BYTES.  Writing to a closed stream (or after the peer closed)
signals SOCKET-CLOSED.  WRITE-BYTE costs one foreign call each; write bulk
data with WRITE-SEQUENCE."))

(defclass async-io-stream (async-input-stream async-output-stream)
  ()
  (:documentation "A bidirectional stream over a socket (cl-async's async-io-stream):
what TCP-CONNECT returns with :stream t, and what a read-cb receives as its
second argument with :stream t (always this same object).  Input behaves as
ASYNC-INPUT-STREAM describes, output as ASYNC-OUTPUT-STREAM.

It can also be made on any socket, as in cl-async:
(make-instance 'async-io-stream :socket socket) on a plain socket (drain mode,
the default: the read-cb receives each chunk as an octet vector).  Writing
through it works exactly as on a :stream t socket (FORMAT, WRITE-SEQUENCE ...,
in call order with WRITE-SOCKET-DATA).  Reading from it sees no bytes: in drain
mode every received chunk goes to the read-cb and is not kept, so READ-SEQUENCE
returns START and LISTEN is false; READ-BYTE answers as when nothing is
buffered yet (ASYNC-STREAM-EMPTY, then its eof-value) until the peer closes or
the socket closes, and then as at end of file.  The read-cb keeps receiving
octet vectors; SOCKET-STREAM of the socket stays NIL."))

(defmethod initialize-instance :after ((stream async-stream) &key)
  (let ((socket (stream-socket stream)))
    (check-type socket socket)
    ;; So that a keep-mode read-cb receives this stream (socket.lisp sets the
    ;; same object again for :stream t).  On a drain-mode socket the read-cb
    ;; keeps receiving octet vectors and the stream only writes (see
    ;; ASYNC-IO-STREAM).
    (when (and (typep stream 'async-input-stream) (%sock-keep-p socket)
               (not (%sock-stream socket)))
      (setf (%sock-stream socket) stream))))

(defun %make-socket-stream (socket)
  "Make the async-io-stream of SOCKET (:stream t) and keep it in the socket.  The
class is a literal, so that the implementation can build the constructor once
(lisp/warm-up.lisp builds it at load): this runs for every connection."
  (setf (%sock-stream socket) (make-instance 'async-io-stream :socket socket)))

(declaim (inline %stream-small))
(defun %stream-small (stream)
  "STREAM's 4-byte scratch vector, made on first use."
  (or (%stream-small-slot stream)
      (setf (%stream-small-slot stream) (make-array 4 :element-type '(unsigned-byte 8)))))

(defmethod print-object ((stream async-stream) out)
  (print-unreadable-object (stream out :type t :identity t)
    (format out "~:[open~;closed~]" (socket-closed-p (stream-socket stream)))))

(defmethod stream-element-type ((stream async-stream))
  '(unsigned-byte 8))

(defmethod open-stream-p ((stream async-stream))
  (not (socket-closed-p (stream-socket stream))))

(defmethod close ((stream async-stream) &key abort)
  "Close the socket (queued data is still sent unless ABORT).  Closing a stream
whose socket is closed already does nothing."
  (let ((socket (stream-socket stream)))
    (unless (%sock-closed-p socket)
      (close-socket socket :force abort)))
  (call-next-method)
  t)

;;; ---- input ----

(declaim (inline %input-ended-p))
(defun %input-ended-p (socket)
  "True when no more bytes can arrive on SOCKET: the peer closed, or the
socket is closed (by the application, an error or a timeout)."
  (or (%sock-peer-closed-p socket) (%sock-closed-p socket) (%sock-draining-p socket)))

(defun %signal-empty (stream)
  "Tell handlers that nothing is buffered yet, then answer as at end of file."
  (signal 'async-stream-empty :stream stream)
  :eof)

(defmethod trivial-gray-streams:stream-read-byte ((stream async-input-stream))
  (let ((socket (stream-socket stream))
        (small (%stream-small stream)))
    (cond ((= 1 (the fixnum (read-socket-data socket small :start 0 :end 1)))
           (aref small 0))
          ((%input-ended-p socket) :eof)
          (t (%signal-empty stream)))))

(defconstant +scratch-size+ 16384
  "Bytes per step when READ-SEQUENCE fills a sequence that is not a simple octet
vector (through a temporary octet vector) and *BUFFER-SIZE* is not a positive
integer of at most 16 MiB; otherwise *BUFFER-SIZE* is the step.")

(defmethod trivial-gray-streams:stream-read-sequence ((stream async-input-stream)
                                                     sequence start end &key)
  (declare (type fixnum start end))
  (let ((socket (stream-socket stream)))
    (cond ((>= start end) start)
          ((typep sequence 'octets)
           ;; The fast path: C copies into the caller's vector directly.
           (+ start (the fixnum (read-socket-data socket sequence :start start :end end))))
          ((stringp sequence)
           (error 'type-error :datum sequence
                              :expected-type '(sequence (unsigned-byte 8))))
          (t
           ;; Adjustable vectors, lists, (vector t): go through a temporary
           ;; vector.  Each step takes what is buffered, so stop at a short one.
           (let ((scratch (make-array (min (if (typep *buffer-size* '(integer 1 #.(* 16 1024 1024)))
                                               *buffer-size*
                                               +scratch-size+)
                                           (- end start))
                                      :element-type '(unsigned-byte 8)))
                 (pos start))
             (declare (type fixnum pos))
             (loop
               (let* ((want (min (length scratch) (- end pos)))
                      (n (read-socket-data socket scratch :start 0 :end want)))
                 (declare (type fixnum want n))
                 (replace sequence scratch :start1 pos :end2 n)
                 (incf pos n)
                 (when (or (< n want) (>= pos end))
                   (return pos)))))))))

;;; trivial-gray-streams' method on SBCL's own generic (for every
;;; FUNDAMENTAL-INPUT-STREAM) may CALL-NEXT-METHOD, so SBCL conses its optional
;;; arguments into a list on every call: about 50 bytes per READ-SEQUENCE or
;;; WRITE-SEQUENCE, and a :stream t read-cb makes several per read.  Ours, more
;;; specific, calls trivial-gray-streams' generic the same way without it (so
;;; methods that programs define on it for a subclass still run).  Its method
;;; above never answers trivial-gray-streams' FALLBACK, so nothing is lost.
#+sbcl
(defmethod sb-gray:stream-read-sequence ((stream async-input-stream) sequence
                                         &optional start end)
  (trivial-gray-streams:stream-read-sequence stream sequence (or start 0)
                                             (or end (length sequence))))

(defmethod trivial-gray-streams:stream-listen ((stream async-input-stream))
  (plusp (socket-buffered-bytes (stream-socket stream))))

(defmethod trivial-gray-streams:stream-clear-input ((stream async-input-stream))
  (let ((socket (stream-socket stream))
        (scratch (make-array 4096 :element-type '(unsigned-byte 8))))
    (loop while (plusp (the fixnum (read-socket-data socket scratch))))
    nil))

;;; ---- output ----

(defun %stream-write (stream octets start end)
  "Hand bytes START..END of OCTETS to libcltcp (copied before it returns), with
WRITE-SOCKET-DATA's checks and error mapping, without copying the sub-range first."
  (declare (type octets octets) (type fixnum start end))
  (let ((socket (stream-socket stream)))
    (%check-writable socket)
    (%send-octets socket octets start end)))

(defmethod trivial-gray-streams:stream-write-byte ((stream async-output-stream) byte)
  (let ((small (%stream-small stream)))
    (setf (aref small 0) byte)
    (%stream-write stream small 0 1)
    (setf (%stream-column stream) nil)
    byte))

(defun %encode-char-utf-8 (char octets)
  "Encode CHAR as UTF-8 into OCTETS (at least 4 long); return the byte count."
  (declare (type character char) (type octets octets))
  (let ((code (char-code char)))
    (cond ((< code #x80)
           (setf (aref octets 0) code)
           1)
          ((< code #x800)
           (setf (aref octets 0) (logior #xC0 (ash code -6))
                 (aref octets 1) (logior #x80 (ldb (byte 6 0) code)))
           2)
          ((< code #x10000)
           (setf (aref octets 0) (logior #xE0 (ash code -12))
                 (aref octets 1) (logior #x80 (ldb (byte 6 6) code))
                 (aref octets 2) (logior #x80 (ldb (byte 6 0) code)))
           3)
          (t
           (setf (aref octets 0) (logior #xF0 (ash code -18))
                 (aref octets 1) (logior #x80 (ldb (byte 6 12) code))
                 (aref octets 2) (logior #x80 (ldb (byte 6 6) code))
                 (aref octets 3) (logior #x80 (ldb (byte 6 0) code)))
           4))))

(defmethod trivial-gray-streams:stream-write-char ((stream async-output-stream) char)
  (let ((small (%stream-small stream)))
    (%stream-write stream small 0 (%encode-char-utf-8 char small))
    (setf (%stream-column stream)
          (if (char= char #\Newline)
              0
              (let ((column (%stream-column stream)))
                (and column (1+ column)))))
    char))

(defun %note-string-column (stream string start end)
  (let ((newline (position #\Newline string :start start :end end :from-end t))
        (column (%stream-column stream)))
    (setf (%stream-column stream)
          (cond (newline (- end newline 1))
                (column (+ column (- end start)))
                (t nil)))))

(defmethod trivial-gray-streams:stream-write-string ((stream async-output-stream) string
                                                    &optional (start 0) end)
  (let* ((end (or end (length string)))
         (octets (babel:string-to-octets string :encoding :utf-8 :start start :end end)))
    (%stream-write stream octets 0 (length octets))
    (%note-string-column stream string start end)
    string))

(defmethod trivial-gray-streams:stream-write-sequence ((stream async-output-stream)
                                                      sequence start end &key)
  (declare (type fixnum start end))
  (cond ((typep sequence 'octets)
         (%stream-write stream sequence start end)
         (setf (%stream-column stream) nil))
        ((stringp sequence)
         (trivial-gray-streams:stream-write-string stream sequence start end))
        (t
         (let ((octets (make-array (- end start) :element-type '(unsigned-byte 8))))
           (replace octets sequence :start2 start :end2 end)
           (%stream-write stream octets 0 (length octets))
           (setf (%stream-column stream) nil))))
  sequence)

;; As for STREAM-READ-SEQUENCE above: no list consed per call on SBCL.
#+sbcl
(defmethod sb-gray:stream-write-sequence ((stream async-output-stream) sequence
                                          &optional start end)
  (trivial-gray-streams:stream-write-sequence stream sequence (or start 0)
                                              (or end (length sequence))))

(defmethod trivial-gray-streams:stream-line-column ((stream async-output-stream))
  (%stream-column stream))

(defmethod trivial-gray-streams:stream-force-output ((stream async-output-stream))
  ;; Every write reached libcltcp already; the loop sends the queue.
  nil)

(defmethod trivial-gray-streams:stream-finish-output ((stream async-output-stream))
  ;; Blocking here would stop the very loop that sends the queue; see the
  ;; class documentation for how to learn when bytes have left.
  nil)

(defmethod trivial-gray-streams:stream-clear-output ((stream async-output-stream))
  ;; Bytes handed to libcltcp cannot be taken back.
  nil)
