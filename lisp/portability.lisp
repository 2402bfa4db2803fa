;;;; portability.lisp -- every implementation-specific bit of the library, in one place.
;;;;
;;;; Supported: SBCL, CCL and ECL.  SBCL and ECL are tested (the whole suite
;;;; runs on both); the CCL branches are written against CCL's documented API
;;;; (the "Threads" chapter of its manual: WITHOUT-INTERRUPTS,
;;;; WITH-INTERRUPTS-ENABLED) but have not been run (see the README).  Any
;;;; other implementation gets the portable fallbacks below: everything
;;;; works, only C-c is not kept away from libuv's frames.

(in-package #:cl-async-tcp)

(deftype octets () '(simple-array (unsigned-byte 8) (*)))

;;; ---- interrupts ----
;;;
;;; Keyboard interrupts (C-c at the REPL, INTERRUPT-THREAD).  If one were
;;; handled while the loop waits inside libuv, or while this library's own
;;; bookkeeping runs inside a callback, the debugger would sit on top of a
;;; half-done update.  So the loop runs turn by turn with interrupts deferred
;;; during each turn (WITH-LOOP-TURN), and C ends a turn at least every
;;; +WAKEUP-SECONDS+ (cltcp_loop_set_wakeup, which keeps no loop alive): a
;;; C-c while the loop waits is then handled between turns, in Lisp frames
;;; only.  The application's own callbacks run with interrupts enabled again
;;; (WITH-APPLICATION-INTERRUPTS), so a C-c reaches a runaway callback at once,
;;; with the callback's restarts (see WITH-CALLBACK-GUARD in callbacks.lisp).

(defconstant +wakeup-seconds+
  #+(or sbcl ccl ecl) 0.2d0
  #-(or sbcl ccl ecl) 0d0
  "How often a waiting loop comes back to Lisp to take deferred interrupts
(0: never, where this file knows no way to defer them).")

(defconstant +turn-mode+
  #+(or sbcl ccl ecl) cltcp:+run-once+
  #-(or sbcl ccl ecl) cltcp:+run-default+
  "How %RUN-LOOP runs the C loop: one turn at a time when it must come back for
interrupts, else until it stops.")

(defmacro with-loop-turn (&body body)
  "Run BODY (one turn of the C loop) with the implementation's interrupts
deferred, but allowing WITH-APPLICATION-INTERRUPTS in the callbacks it runs."
  ;; SBCL and ECL: WITHOUT-INTERRUPTS also forbids WITH-INTERRUPTS further in
  ;; unless its body says ALLOW-WITH-INTERRUPTS.
  #+sbcl `(sb-sys:without-interrupts (sb-sys:allow-with-interrupts ,@body))
  #+ccl `(ccl:without-interrupts ,@body)
  #+ecl `(mp:without-interrupts (mp:allow-with-interrupts ,@body))
  #-(or sbcl ccl ecl) `(progn ,@body))

(defmacro with-application-interrupts (&body body)
  "Inside WITH-LOOP-TURN: run BODY (application code) with interrupts enabled."
  #+sbcl `(sb-sys:with-interrupts ,@body)
  #+ccl `(ccl:with-interrupts-enabled ,@body)
  #+ecl `(mp:with-interrupts ,@body)
  #-(or sbcl ccl ecl) `(progn ,@body))

;;; ---- foreign <-> octet copies ----
;;;
;;; Copying a foreign buffer into a fresh Lisp octet vector is on the read
;;; path of every drain-mode socket.  CFFI:WITH-POINTER-TO-VECTOR-DATA gives
;;; the vector's own storage on SBCL (pinned), CCL (ivectors) and ECL, so one
;;; memcpy does it; elsewhere CFFI may copy or not support it, so a byte loop.

#+(or sbcl ccl ecl)
(declaim (inline %memcpy))
#+(or sbcl ccl ecl)
(cffi:defcfun ("memcpy" %memcpy) :pointer
  (dst :pointer) (src :pointer) (n :size))

(declaim (inline copy-foreign-octets copy-foreign-into-octets))

(defun copy-foreign-into-octets (pointer vector start count)
  "Copy COUNT bytes from the foreign POINTER into VECTOR (an OCTETS) at START."
  (declare (type octets vector)
           (type (and fixnum unsigned-byte) start count)
           (optimize (speed 3) (safety 0)))
  #+(or sbcl ccl ecl)
  (when (plusp count)
    (cffi:with-pointer-to-vector-data (p vector)
      (%memcpy (cffi:inc-pointer p start) pointer count)))
  #-(or sbcl ccl ecl)
  (dotimes (i count)
    (setf (aref vector (+ start i)) (cffi:mem-aref pointer :uint8 i)))
  vector)

(defun copy-foreign-octets (pointer count)
  "A fresh OCTETS vector holding the COUNT bytes at the foreign POINTER."
  (declare (type (and fixnum unsigned-byte) count)
           (optimize (speed 3) (safety 0)))
  (let ((vector (make-array count :element-type '(unsigned-byte 8))))
    (copy-foreign-into-octets pointer vector 0 count)))

;;; ---- the runtime's own signals ----
;;;
;;; SIGNAL-HANDLER installs libuv's handler process-wide (lisp/signals.lisp),
;;; in place of whatever the signal had.  Some signals are the Lisp runtime's
;;; own machinery: taking one away would hang or crash the process at its
;;; next garbage collection or thread interrupt.  (The fault signals --
;;; SIGSEGV, SIGBUS, SIGILL, SIGFPE -- are every runtime's, and libcltcp
;;; refuses them too: a handler that only notes one returns to the faulting
;;; instruction.)  Read off the running implementations with /proc's
;;; SigCgt and their sources: SBCL stops threads for GC with SIGUSR2,
;;; interrupts them (INTERRUPT-THREAD) with SIGURG, and traps with SIGTRAP;
;;; ECL's collector (Boehm's) suspends and resumes threads with SIGPWR and
;;; SIGXCPU, and MP:INTERRUPT-PROCESS uses SIGRTMIN+2; CCL interrupts
;;; processes with SIGPWR and suspends and kills threads with SIGRTMIN+6 and
;;; +7 (its lisp-kernel/os-linux.h; not run here).

#+(and linux (or ccl ecl))
(defun %sigrtmin ()
  #+ecl ext:+sigrtmin+
  #-ecl (cffi:foreign-funcall "__libc_current_sigrtmin" :int))

(defun %runtime-signal-use (signo)
  "What the Lisp runtime (or the kernel, for a fault) uses the signal SIGNO for,
as a phrase, when a handler of this library must not take it; else NIL."
  (declare (type integer signo))
  (cond ((member signo (list 11 4 8 #+linux 7 #-linux 10)) ; SEGV ILL FPE BUS
         "the kernel sends it for a fault of the running instruction, which the Lisp runtime handles itself")
        #+sbcl
        ((= signo sb-unix:sigusr2) "SBCL stops threads with it for the garbage collector")
        #+sbcl
        ((= signo sb-unix:sigurg) "SBCL interrupts threads with it (INTERRUPT-THREAD, timeouts)")
        #+sbcl
        ((= signo sb-unix:sigtrap) "SBCL's error traps and breakpoints raise it")
        #+(and ecl linux)
        ((member signo '(30 24)) "ECL's garbage collector suspends and resumes threads with it")
        #+(and ecl linux)
        ((= signo (+ (%sigrtmin) 2)) "ECL interrupts threads with it (MP:INTERRUPT-PROCESS)")
        #+(and ccl linux)
        ((= signo 30) "CCL interrupts processes with it (PROCESS-INTERRUPT)")
        #+(and ccl linux)
        ((member signo (list (+ (%sigrtmin) 6) (+ (%sigrtmin) 7)))
         "CCL suspends and kills threads with it")
        (t nil)))
