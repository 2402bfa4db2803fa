;;;; signals.lisp -- cl-async's signal handling (signal-handling.md).
;;;;
;;;; A signal handler is a libcltcp signal handle (libuv's uv_signal_t): the
;;;; signal arrives as a CLTCP_EV_SIGNAL event in the loop's thread, inside a
;;;; loop turn, through the common callback and its error guard -- never in
;;;; the OS signal handler, where almost nothing may be done safely.
;;;;
;;;; Dispositions: while any libcltcp handle watches a signal, libuv's handler
;;;; is installed for it process-wide; libcltcp saved the disposition the
;;;; signal had before (the Lisp's own handler -- SBCL's SIGINT handler, which
;;;; raises an interactive interrupt -- SIG_DFL, SIG_IGN ...) and puts it back
;;;; exactly when the last handle for that signal closes.  That is cl-async's
;;;; promise ("the original lisp signal handler is restored"), kept without
;;;; replacing the Lisp's handler from Lisp.
;;;;
;;;; Each loop keeps at most one handler per signal number, as cl-async's
;;;; did: SIGNAL-HANDLER for a number that has one replaces it.

(in-package #:cl-async-tcp)

;;; ---- signal numbers ----
;;; cl-async's table holds the BSD numbers (its SIGUSR1 is 30); these are the
;;; numbers of the system this runs on, which is what kill(2) and libuv use.

(defmacro defsignals (&rest specs)
  "Define the +SIG...+ constants: each spec is (name linux-number bsd-number doc)."
  `(progn
     ,@(loop for (name linux bsd doc) in specs
             collect `(defconstant ,name #+linux ,linux #-linux ,bsd
                        ,(format nil "~A (~:[not a signal of this system, so NIL~;the ~
                                      system's number~]).  For SIGNAL-HANDLER."
                                 doc #+linux linux #-linux bsd)))))

(defsignals
  (+sighup+ 1 1 "SIGHUP, hangup")
  (+sigint+ 2 2 "SIGINT, interrupt (C-c)")
  (+sigquit+ 3 3 "SIGQUIT, quit")
  (+sigill+ 4 4 "SIGILL, illegal instruction")
  (+sigtrap+ 5 5 "SIGTRAP, trace trap")
  (+sigabrt+ 6 6 "SIGABRT, abort")
  (+sigemt+ nil 7 "SIGEMT, emulator trap")
  (+sigfpe+ 8 8 "SIGFPE, arithmetic exception")
  (+sigkill+ 9 9 "SIGKILL, kill (cannot be handled)")
  (+sigbus+ 7 10 "SIGBUS, bus error")
  (+sigsegv+ 11 11 "SIGSEGV, segmentation fault")
  (+sigsys+ 31 12 "SIGSYS, bad system call")
  (+sigpipe+ 13 13 "SIGPIPE, broken pipe")
  (+sigalrm+ 14 14 "SIGALRM, alarm clock")
  (+sigterm+ 15 15 "SIGTERM, termination")
  (+sigurg+ 23 16 "SIGURG, urgent data on a socket")
  (+sigstop+ 19 17 "SIGSTOP, stop (cannot be handled)")
  (+sigtstp+ 20 18 "SIGTSTP, terminal stop")
  (+sigcont+ 18 19 "SIGCONT, continue")
  (+sigchld+ 17 20 "SIGCHLD, child status changed")
  (+sigttin+ 21 21 "SIGTTIN, background read from the terminal")
  (+sigttou+ 22 22 "SIGTTOU, background write to the terminal")
  (+sigio+ 29 23 "SIGIO, I/O possible")
  (+sigxcpu+ 24 24 "SIGXCPU, CPU time limit")
  (+sigxfsz+ 25 25 "SIGXFSZ, file size limit")
  (+sigvtalrm+ 26 26 "SIGVTALRM, virtual timer")
  (+sigprof+ 27 27 "SIGPROF, profiling timer")
  (+sigwinch+ 28 28 "SIGWINCH, window size change")
  (+siginfo+ nil 29 "SIGINFO, status request")
  (+sigusr1+ 10 30 "SIGUSR1, user signal 1")
  (+sigusr2+ 12 31 "SIGUSR2, user signal 2"))

;;; ---- handlers ----

(defclass signal-watcher (%handle-object)
  ((signo :initarg :signo :reader %signal-signo)
   (callback :initarg :callback :initform nil :accessor %signal-callback)
   (event-cb :initarg :event-cb :initform nil :accessor %signal-event-cb)
   (freed-p :initform nil :accessor %signal-freed-p))
  (:documentation "What SIGNAL-HANDLER returns: one signal watched by one loop.  Give it to
REF / UNREF; free it with FREE-SIGNAL-HANDLER (by signal number)."))

(defmethod print-object ((w signal-watcher) stream)
  (print-unreadable-object (w stream :type t :identity t)
    (format stream "signal ~D~:[~; freed~]" (%signal-signo w) (%signal-freed-p w))))

(defun %forget-watcher (watcher)
  "Take WATCHER out of its loop's table of handlers."
  (let ((base (%handle-base watcher)))
    (when base
      (setf (event-base-signal-handlers base)
            (remove watcher (event-base-signal-handlers base))))))

(defun %free-watcher (watcher)
  (unless (%signal-freed-p watcher)
    (setf (%signal-freed-p watcher) t)
    (%forget-watcher watcher)
    ;; libcltcp puts the previous disposition back before this returns when
    ;; this was the last handle for the signal.
    (cltcp:signal-close (%handle-id watcher)))) ; RAW-STATUS: the loop may be closing it

(defun %refuse-runtime-signal (signo)
  "Signal an EVENT-ERROR (code EINVAL) when SIGNO is one the Lisp runtime needs
for itself (see %RUNTIME-SIGNAL-USE in portability.lisp)."
  (let ((use (%runtime-signal-use signo)))
    (when use
      (error 'event-error
             :code *uv-einval*
             :msg (format nil "signal-handler: signal ~D cannot be handled here: ~A; ~
                               a handler in its place would hang or crash this Lisp."
                          signo use)))))

(defun %signal-handler (signo signal-cb event-cb)
  (check-type signo (integer 1 127))
  (check-type signal-cb (or function symbol))
  ;; Before anything changes: an earlier handler for SIGNO is not freed.
  (%refuse-runtime-signal signo)
  (let ((base (%current-base)))
    ;; One handler per signal and loop: replace an earlier one.
    (free-signal-handler signo)
    (let ((watcher (make-instance 'signal-watcher :base base :signo signo
                                                  :callback signal-cb :event-cb event-cb)))
      (with-new-handle (id index) (base watcher)
        (cltcp:signal-start id (event-base-id base) signo *event-callback-pointer* index))
      (push watcher (event-base-signal-handlers base))
      watcher)))

(defun signal-handler (signo signal-cb &rest args)
  "Handle signal SIGNO (one of the +SIG...+ constants, or any signal number) in
the event loop running in this thread: each time the signal arrives, SIGNAL-CB
is called with SIGNO, in the loop's thread, inside a loop turn, under the
callback error policy (with :catch-app-errors, its errors go to EVENT-CB).
Lambda list: (signo signal-cb &key event-cb); as in cl-async's own example,
EVENT-CB may also be given positionally.  Repeats of a signal that arrive
before the loop gets to it may be merged into one call.

While the handler lives, the signal no longer reaches the previous handler
(for SIGINT: the Lisp's C-c handling); FREE-SIGNAL-HANDLER,
CLEAR-SIGNAL-HANDLERS or the end of the loop put the previous disposition back
exactly.  A live handler keeps the loop alive (free it, or UNREF it, to let the
loop end).  A second SIGNAL-HANDLER for SIGNO in the same loop replaces the
first; loops in other threads may handle the same signal too (each gets it).
Signals the Lisp implementation needs for itself are refused with an
EVENT-ERROR (code EINVAL) that says what it uses them for: the fault signals
SIGSEGV, SIGBUS, SIGILL and SIGFPE everywhere; on SBCL also SIGUSR2 (threads
stop for the garbage collector), SIGURG (INTERRUPT-THREAD) and SIGTRAP; on ECL
SIGPWR, SIGXCPU and SIGRTMIN+2; on CCL SIGPWR, SIGRTMIN+6 and +7.  SIGKILL and
SIGSTOP cannot be handled, and give an EVENT-ERROR too.  Nothing changes when
it is refused.  Returns the handler object (cl-async returned NIL), for
REF and UNREF."
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (when keys
      (error "signal-handler: unknown arguments ~S (lambda list: ~
              (signo signal-cb &key event-cb))" keys))
    (%signal-handler signo signal-cb event-cb)))

(defun free-signal-handler (signo)
  "Stop handling signal SIGNO in the event loop running in this thread, and put
back the disposition the signal had before it was handled (for SIGINT, the
Lisp's own C-c handling) when no other loop handles it.  Does nothing when
SIGNO has no handler here, or outside a loop.  Returns NIL.  Signals a
TYPE-ERROR for a SIGNO that is not a signal number."
  (check-argument signo (integer 1 127))
  (let ((base *event-base*))
    (when base
      (let ((watcher (find signo (event-base-signal-handlers base) :key #'%signal-signo)))
        (when watcher
          (%free-watcher watcher)))))
  nil)

(defun clear-signal-handlers ()
  "Free every signal handler of the event loop running in this thread, putting
back each signal's previous disposition (see FREE-SIGNAL-HANDLER).  Does
nothing outside a loop.  Returns NIL."
  (let ((base *event-base*))
    (when base
      (dolist (watcher (copy-list (event-base-signal-handlers base)))
        (%free-watcher watcher))))
  nil)

;;; ---- the loop's side ----

(defmethod %other-event (base (watcher signal-watcher) id event status other)
  (declare (ignore base id status))
  (when (and (= event cltcp:+ev-signal+) (not (%signal-freed-p watcher)))
    (let ((callback (%signal-callback watcher)))
      (when callback
        (funcall callback (if (zerop other) (%signal-signo watcher) other))))))

(defmethod %object-event-cb ((watcher signal-watcher))
  (%signal-event-cb watcher))

(defmethod %mark-other-dead ((watcher signal-watcher))
  (setf (%signal-freed-p watcher) t)
  (%forget-watcher watcher))

(defmethod %callback-count ((watcher signal-watcher))
  (%count-functions (%signal-callback watcher) (%signal-event-cb watcher)))

(defmethod ref ((handle signal-watcher))
  (%set-ref handle t))

(defmethod unref ((handle signal-watcher))
  (%set-ref handle nil))
