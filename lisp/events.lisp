;;;; events.lisp -- cl-async's event objects beyond DELAY: event-freed,
;;;; event-c, remove-event / add-event, make-event.
;;;;
;;;; An EVENT stands for a libcltcp timer.  libcltcp timers cannot be stopped
;;;; and restarted, only started and closed, so REMOVE-EVENT closes the C
;;;; timer and ADD-EVENT starts a new one for the same Lisp object.  The
;;;; object keeps one registry index (its context word) for all of its C
;;;; timers, and counts the C timers whose CLOSE event has not arrived yet
;;;; (%TIMER-C-LIVE): the registry entry is freed only when that count is
;;;; back to 0, so C never calls back for a freed entry.

(in-package #:cl-async-tcp)

(define-condition event-freed (event-error)
  ((event :initarg :event :initform nil :reader event-freed-event))
  (:report (lambda (c s)
             (format s "~S is freed: it fired, was freed with FREE-EVENT, or its loop ended."
                     (event-freed-event c))))
  (:documentation "Signalled when an event that is freed already (EVENT-FREED-P) is operated on
by ADD-EVENT, REMOVE-EVENT, REF or UNREF (cl-async's event-freed, an
event-error; EVENT-ERRCODE is -1).  EVENT-FREED-EVENT is the event."))

(setf (documentation 'event-freed-event 'function)
      "The event an EVENT-FREED condition is about.")

(defun %check-event-unfreed (event)
  (check-type event event)
  (when (%timer-freed-p event)
    (error 'event-freed :event event :code -1 :msg "the event is freed")))

(defmethod event-c ((event event))
  (%timer-id event))

(defun %note-interval (fn event)
  "Remember that INTERVAL returned FN for EVENT (REF and UNREF take FN)."
  (let* ((base (%handle-base event))
         (table (or (event-base-intervals base)
                    (setf (event-base-intervals base) (make-hash-table :test 'eq)))))
    (setf (gethash fn table) event
          (%timer-interval-fn event) fn)))

(defun %interval-event (fn)
  "The event of the interval whose function is FN, in the running loop, or NIL."
  (let* ((base *event-base*)
         (table (and base (event-base-intervals base))))
    (and table (values (gethash fn table)))))

(defun %event-close (base event id)
  "The CLOSE event of one of EVENT's C timers (bookkeeping only)."
  (declare (type event-base base) (type event event))
  (decf (%timer-c-live event))
  (when (= id (%timer-id event))
    ;; The current C timer is gone: it fired (one-shot), was freed, or the
    ;; loop was torn down.  A removed event has no current timer (id 0).
    (setf (%timer-id event) 0
          (%timer-freed-p event) t)
    (let ((fn (%timer-interval-fn event)))
      (when (and fn (event-base-intervals base))
        (remhash fn (event-base-intervals base)))))
  (when (<= (%timer-c-live event) 0)
    (setf (%timer-c-live event) 0)
    (registry-remove base (%timer-index event))
    (setf (%timer-index event) -1))
  nil)

(defun %arm-event (event seconds)
  "Start a new C timer for EVENT, firing once after SECONDS."
  (let ((base (%current-base)))
    (unless (eq base (%handle-base event))
      (error "cl-async-tcp: ~S belongs to another event loop." event))
    (when (< (%timer-index event) 0)
      (setf (%timer-index event) (registry-add base event)))
    (cffi:with-foreign-object (id 'cltcp:id)
      (let ((made nil))
        (unwind-protect
             (with-status (event)
               (cltcp:timer-start id (event-base-id base) (%c-seconds seconds) 0d0
                                  *event-callback-pointer* (%timer-index event))
               (setf made t))
          ;; The entry stays while an earlier C timer of EVENT may still close.
          (when (and (not made) (zerop (%timer-c-live event)))
            (registry-remove base (%timer-index event))
            (setf (%timer-index event) -1))))
      (setf (%timer-id event) (cffi:mem-ref id 'cltcp:id)
            (%timer-removed-p event) nil)
      (incf (%timer-c-live event)))
    (unless (%handle-refd event)
      (cltcp:handle-ref (%timer-id event) 0)) ; RAW-STATUS: a timer just made
    nil))

(defun %disarm-event (event)
  "Close EVENT's current C timer, if any; EVENT stays unfreed."
  (let ((id (%timer-id event)))
    (setf (%timer-id event) 0
          (%timer-removed-p event) t)
    (unless (zerop id)
      (cltcp:timer-close id)))) ; RAW-STATUS: it may have fired

(defun remove-event (event)
  "Take EVENT (what DELAY or MAKE-EVENT returns) out of the event loop without
freeing it: it will not fire and does not keep the loop alive, and ADD-EVENT
can put it back.  Returns T, or NIL when EVENT was removed already.  Signals
EVENT-FREED when EVENT is freed (a delay is freed once it has fired)."
  (%check-event-unfreed event)
  (cond ((%timer-removed-p event) nil)
        (t (%disarm-event event) t)))

(defun add-event (event &key timeout activate)
  "Make EVENT pending again in the loop it was made in (typically after
REMOVE-EVENT, or to trigger a MAKE-EVENT): with :TIMEOUT (seconds, fractional)
it fires once that much later; with :ACTIVATE true and no :TIMEOUT it fires on
the next loop turn; with neither it is left out of the loop (removed), as
cl-async documents.  A pending event is restarted.  Must be called in EVENT's
loop.  Signals EVENT-FREED when EVENT is freed.  Returns NIL."
  (%check-event-unfreed event)
  (when timeout
    (check-type timeout (real 0)))
  (cond ((or timeout activate)
         (%disarm-event event)
         (%arm-event event (or timeout 0)))
        (t (%disarm-event event)))
  nil)

(defconstant +make-event-seconds+ (* 100 365 24 3600)
  "How far away MAKE-EVENT's event is (cl-async: one hundred years; libcltcp
caps a timer at about 31 years, which is as good).")

(defun make-event (callback &key event-cb)
  "Make an event that runs CALLBACK (no arguments) only when triggered with
(ADD-EVENT event :activate t) -- or :timeout -- in the same loop, or never if
freed first (FREE-EVENT, REMOVE-EVENT).  Like cl-async's, it is a DELAY a
hundred years away, so until then it keeps the loop alive (REMOVE-EVENT or
UNREF it to let the loop exit).  EVENT-CB receives CALLBACK's errors under
:catch-app-errors.  Not a way to reach the loop from another thread: use a
NOTIFIER for that.  Returns the event."
  (delay callback :time +make-event-seconds+ :event-cb event-cb))
