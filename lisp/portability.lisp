;;;; portability.lisp -- the implementation-specific bits, kept in one place.
;;;;
;;;; Copying a foreign buffer into a fresh Lisp octet vector is on the read
;;;; path of every drain-mode socket, so SBCL gets its native block copy;
;;;; other implementations get a portable loop until someone measures them.

(in-package #:cl-async-tcp)

(deftype octets () '(simple-array (unsigned-byte 8) (*)))

(declaim (inline copy-foreign-octets copy-foreign-into-octets))

(defun copy-foreign-into-octets (pointer vector start count)
  "Copy COUNT bytes from the foreign POINTER into VECTOR (an OCTETS) at START."
  (declare (type octets vector)
           (type (and fixnum unsigned-byte) start count)
           (optimize (speed 3) (safety 0)))
  #+sbcl
  (sb-kernel:copy-ub8-from-system-area pointer 0 vector start count)
  #-sbcl
  (dotimes (i count)
    (setf (aref vector (+ start i)) (cffi:mem-aref pointer :uint8 i)))
  vector)

(defun copy-foreign-octets (pointer count)
  "A fresh OCTETS vector holding the COUNT bytes at the foreign POINTER."
  (declare (type (and fixnum unsigned-byte) count)
           (optimize (speed 3) (safety 0)))
  (let ((vector (make-array count :element-type '(unsigned-byte 8))))
    (copy-foreign-into-octets pointer vector 0 count)))
