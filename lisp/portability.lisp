;;;; portability.lisp -- the implementation-specific bits, kept in one place.
;;;;
;;;; Copying a foreign buffer into a fresh Lisp octet vector is on the read
;;;; path of every drain-mode socket, so SBCL gets its native block copy;
;;;; other implementations get a portable loop until someone measures them.

(in-package #:cl-async-tcp)

(deftype octets () '(simple-array (unsigned-byte 8) (*)))

;;; Keyboard interrupts (C-c at the REPL) and other deferrable signals.  If
;;; one were handled while the loop waits inside libuv, the debugger would
;;; sit on top of libuv's frames, and leaving it (ABORT) would unwind through
;;; them, leaving the C loop half-updated and impossible to close.  So the
;;; loop runs turn by turn with interrupts deferred during each turn, and C
;;; ends a turn at least every +WAKEUP-SECONDS+ (cltcp_loop_set_wakeup, which
;;; keeps no loop alive): a C-c is then handled between turns, in Lisp
;;; frames only, within that time.  Callbacks run inside a turn, so they run
;;; with interrupts deferred too (a callback should not block anyway).

(defconstant +wakeup-seconds+
  #+sbcl 0.2d0
  #-sbcl 0d0
  "How often a waiting loop comes back to Lisp to take deferred interrupts
(0: never, where the implementation needs no such care).")

(defmacro with-loop-turn (&body body)
  "Run BODY (one turn of the C loop) with the implementation's interrupts deferred."
  #+sbcl `(sb-sys:without-interrupts ,@body)
  #-sbcl `(progn ,@body))

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
