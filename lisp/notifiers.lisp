;;;; notifiers.lisp -- cl-async's notifiers: a callback in the loop's thread,
;;;; triggered from any thread (notifiers.md, threading.md).
;;;;
;;;; A notifier is a libcltcp async handle (libuv's uv_async_t).
;;;; cltcp_async_send is the one call of the ABI that is safe from any thread:
;;;; it finds the handle under a lock and wakes the loop, or returns
;;;; CLTCP_ECLOSED for a handle that is closed or closing -- it never touches
;;;; freed memory.  So TRIGGER-NOTIFIER, the one function here meant for
;;;; other threads, only reads the notifier's id and makes that call; all the
;;;; rest runs in the loop's thread.  The wake-up arrives as a CLTCP_EV_ASYNC
;;;; event through the common callback (callbacks.lisp), under the same error
;;;; guard as every callback.

(in-package #:cl-async-tcp)

(define-condition notifier-freed (event-error)
  ((notifier :initarg :notifier :initform nil :reader notifier-freed-notifier))
  (:report (lambda (c s)
             (format s "~S is freed: it cannot be triggered any more."
                     (notifier-freed-notifier c))))
  (:documentation "Signalled by TRIGGER-NOTIFIER (in the thread that calls it) and by REF /
UNREF when the notifier is freed already: by FREE-NOTIFIER, by itself after its
callback ran (single-shot), or because its loop ended (cl-async's
notifier-freed, an event-error; EVENT-ERRCODE is -1).  NOTIFIER-FREED-NOTIFIER
is the notifier."))

(setf (documentation 'notifier-freed-notifier 'function)
      "The notifier a NOTIFIER-FREED condition is about.")

(defclass notifier (%handle-object)
  ((callback :initarg :callback :initform nil :accessor %notifier-callback)
   (event-cb :initarg :event-cb :initform nil :accessor %notifier-event-cb)
   (single-shot :initarg :single-shot :initform t :accessor %notifier-single-shot)
   (freed-p :initform nil :accessor %notifier-freed-p))
  (:documentation "cl-async's notifier: lets any thread run a callback in an event loop's
thread (MAKE-NOTIFIER, TRIGGER-NOTIFIER, FREE-NOTIFIER, NOTIFIER-FREED-P; REF and
UNREF).  A libcltcp async handle; opaque otherwise."))

(defmethod print-object ((n notifier) stream)
  (print-unreadable-object (n stream :type t :identity t)
    (format stream "~:[~:[repeating~;single-shot~]~;freed~]"
            (%notifier-freed-p n) (%notifier-single-shot n))))

(defgeneric notifier-freed-p (notifier)
  (:documentation "True once NOTIFIER is freed: by FREE-NOTIFIER, by itself once its callback
ran (a single-shot notifier), or because its event loop ended.")
  (:method ((notifier notifier)) (%notifier-freed-p notifier)))

(defun make-notifier (callback &key event-cb (single-shot t))
  "Make a notifier in the event loop running in this thread: after
(TRIGGER-NOTIFIER notifier), called from any thread, the loop calls CALLBACK
(no arguments) in its own thread.  With :SINGLE-SHOT true (the default) the
notifier frees itself once CALLBACK has run; with :SINGLE-SHOT NIL it stays
until FREE-NOTIFIER.  EVENT-CB receives CALLBACK's errors under
:catch-app-errors, like any operation's.

Triggers coalesce, as libuv's uv_async_send does (and as cl-async's notifiers
do, being the same libuv call): several triggers made before the loop gets to
the notifier run CALLBACK once.  What is promised is that CALLBACK runs at
least once, after any trigger, starting after that trigger was made -- unless
the notifier is freed first.  So count work in your own (locked) data, not in
callback calls.

A live notifier keeps the loop alive, even when nobody triggers it (UNREF
lets the loop exit without it).  Returns the notifier."
  (check-type callback (or function symbol))
  (let* ((base (%current-base))
         (notifier (make-instance 'notifier :base base :callback callback
                                            :event-cb event-cb
                                            :single-shot (and single-shot t))))
    (with-new-handle (id index) (base notifier)
      (cltcp:async-new id (event-base-id base) *event-callback-pointer* index))))

(defun %signal-notifier-freed (notifier)
  (error 'notifier-freed :notifier notifier :code -1 :msg "the notifier is freed"))

(defun trigger-notifier (notifier)
  "Make NOTIFIER's loop call its callback, in the loop's thread, soon.  Safe from
any thread (the loop's own included), and never blocks.  Signals
NOTIFIER-FREED, in the calling thread, when NOTIFIER is freed (also when it is
freed concurrently by the loop: the C side tells a freed handle apart safely).
Returns NIL."
  (check-type notifier notifier)
  (when (%notifier-freed-p notifier)
    (%signal-notifier-freed notifier))
  ;; RAW-STATUS: ECLOSED is a notifier freed under us, by the loop's thread.
  (let ((rc (cltcp:async-send (%handle-id notifier))))
    (if (= rc cltcp:+eclosed+)
        (%signal-notifier-freed notifier)
        (check-status rc notifier :loop))
    nil))

(defun free-notifier (notifier)
  "Stop NOTIFIER and free its resources: its callback will not run any more, even
for triggers already made.  Later TRIGGER-NOTIFIER calls signal NOTIFIER-FREED.
Freeing a freed notifier does nothing (cl-async signals there).  Must be called
in the notifier's loop thread (only TRIGGER-NOTIFIER may come from others): from
another thread it signals an error and frees nothing.  Returns NIL."
  (check-type notifier notifier)
  (unless (%notifier-freed-p notifier)
    (%check-loop-thread notifier 'free-notifier)
    (setf (%notifier-freed-p notifier) t)
    (cltcp:async-close (%handle-id notifier))) ; RAW-STATUS: see TRIGGER-NOTIFIER
  nil)

;;; ---- the loop's side ----

(defmethod %other-event (base (notifier notifier) id event status other)
  (declare (ignore base id status other))
  (when (and (= event cltcp:+ev-async+) (not (%notifier-freed-p notifier)))
    (unwind-protect
         (let ((callback (%notifier-callback notifier)))
           (when callback (funcall callback)))
      ;; Also when the callback failed (its error is routed by the guard).
      (when (and (%notifier-single-shot notifier) (not (%notifier-freed-p notifier)))
        (free-notifier notifier)))))

(defmethod %object-event-cb ((notifier notifier))
  (%notifier-event-cb notifier))

(defmethod %mark-other-dead ((notifier notifier))
  (setf (%notifier-freed-p notifier) t))

(defmethod %callback-count ((notifier notifier))
  (%count-functions (%notifier-callback notifier) (%notifier-event-cb notifier)))

(defmethod ref ((handle notifier))
  (when (%notifier-freed-p handle) (%signal-notifier-freed handle))
  (%set-ref handle t))

(defmethod unref ((handle notifier))
  (when (%notifier-freed-p handle) (%signal-notifier-freed handle))
  (%set-ref handle nil))
