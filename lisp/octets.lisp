;;;; octets.lisp -- cl-async's octet names and its write-buffering variables.
;;;;
;;;; Programs and HTTP frameworks written for cl-async declare their buffers
;;;; as as:octet-vector, coerce with as:bytes and bind as:*buffer-writes*;
;;;; here those names mean what they mean there.  *BUFFER-WRITES* is read by
;;;; the write path (socket.lisp %SEND-OCTETS), which is why it lives before it.

(in-package #:cl-async-tcp)

(deftype octet ()
  "cl-async's octet: an (unsigned-byte 8)."
  '(unsigned-byte 8))

(deftype octet-vector (&optional (size '*))
  "cl-async's octet-vector: a (simple-array octet (SIZE)), what read-cbs receive
and what write-socket-data sends without converting."
  `(simple-array (unsigned-byte 8) (,size)))

(defun bytes (sequence)
  "cl-async's coercion to an octet vector.  SEQUENCE may be an octet vector
(returned as it is), NIL ((bytes nil) is an empty vector, so
(write-socket-data socket (bytes nil) :write-cb ...) is a zero-byte write that
reports), a list or vector of octets (copied into a fresh octet-vector; an
element that is not an octet signals a TYPE-ERROR), or -- unlike cl-async,
which refuses strings -- a string, encoded as UTF-8."
  (typecase sequence
    (octets sequence)
    (null (make-array 0 :element-type '(unsigned-byte 8)))
    (string (babel:string-to-octets sequence :encoding :utf-8))
    (sequence
     (let ((out (make-array (length sequence) :element-type '(unsigned-byte 8)))
           (i 0))
       (map nil (lambda (x)
                  (unless (typep x '(unsigned-byte 8))
                    (error 'type-error :datum x :expected-type '(unsigned-byte 8)))
                  (setf (aref out i) x)
                  (incf i))
            sequence)
       out))
    (t (error 'type-error :datum sequence :expected-type 'sequence))))

(defvar *buffer-writes* t
  "cl-async's write buffering (true by default, as there): when true, the writes
made on a socket during one turn of the event loop leave together in one send
at the end of that turn (libcltcp coalesces them; nothing waits longer than the
turn, and write-cbs still fire once their own bytes have left).  Bind it to NIL
around WRITE-SOCKET-DATA (or the output stream's writes) to hand each write to
the kernel at once, together with what the turn collected before it.")

(defvar *buffer-size* (* 64 1024)
  "cl-async's buffer size, in bytes: there, the most bytes a read pulls at once.
libcltcp reads into a buffer of its own (256 KiB per call), so here it is the
step in which an async stream copies into a sequence that is not an octet
vector (READ-SEQUENCE on a list or an adjustable vector); nothing else reads it.")
