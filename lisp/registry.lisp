;;;; registry.lisp -- the per-loop state and its context-word registry.
;;;;
;;;; C never holds a pointer into the Lisp heap: every handle is created with
;;;; a context word that is an index into a growable SIMPLE-VECTOR of the
;;;; loop, and the callback finds its Lisp object with one SVREF.  Free slots
;;;; hold the fixnum index of the next free slot (-1 ends the list), so
;;;; registering and freeing are O(1) and never cons once the vector is big
;;;; enough.  cl-async used a hash table keyed by pointer addresses instead.
;;;; An entry is freed on the handle's CLTCP_EV_CLOSE, which the C side
;;;; guarantees to be the last event of every handle, so a context word is
;;;; never reused while C can still deliver for it.

(in-package #:cl-async-tcp)

(defstruct (event-base (:constructor %make-event-base) (:copier nil))
  "The state of one running event loop (one per thread that runs a loop)."
  (id 0 :type (unsigned-byte 64))
  ;; registry
  (objects (make-array 0) :type simple-vector)
  (free -1 :type fixnum)
  (live 0 :type fixnum)
  ;; loop state
  (stopping nil)            ; exit-event-loop was called: run no more user callbacks
  (closing nil)             ; inside cltcp_loop_close: only bookkeeping
  (in-run nil)              ; inside cltcp_loop_run (still true after a non-local exit from it)
  (pending-errors '())      ; application errors to hand out of start-event-loop
  (exit-functions '())      ; add-event-loop-exit-callback, newest first
  (data nil)
  (signal-handlers '())     ; lisp/signals.lisp: this loop's signal watchers
  (intervals nil))          ; lisp/events.lisp: INTERVAL's function -> its event

(defvar *event-base* nil
  "The event loop running in this thread (an EVENT-BASE), or NIL outside a loop.")

(defun make-registry-vector (size start)
  "A simple-vector of SIZE whose slots from START on form a free list."
  (let ((v (make-array size)))
    (loop for i from start below size
          do (setf (svref v i) (if (< (1+ i) size) (1+ i) -1)))
    v))

(defun make-event-base (&key (size 256))
  (%make-event-base :objects (make-registry-vector size 0) :free 0))

(defun registry-grow (base)
  (declare (type event-base base))
  (let* ((old (event-base-objects base))
         (n (length old))
         (new (make-registry-vector (max 16 (* 2 n)) n)))
    (replace new old)
    (setf (event-base-objects base) new
          (event-base-free base) n)))

(declaim (inline registry-add registry-ref registry-remove))

(defun registry-add (base object)
  "Store OBJECT in BASE's registry and return its index (the C context word)."
  (declare (type event-base base) (optimize (speed 3) (safety 0)))
  (when (< (event-base-free base) 0)
    (registry-grow base))
  (let* ((objects (event-base-objects base))
         (index (event-base-free base)))
    (declare (type fixnum index))
    (setf (event-base-free base) (the fixnum (svref objects index))
          (svref objects index) object)
    (incf (event-base-live base))
    index))

(defun registry-ref (base index)
  "The object registered under INDEX, or NIL when the slot is free."
  (declare (type event-base base) (optimize (speed 3) (safety 0)))
  (let ((objects (event-base-objects base)))
    (if (and (typep index 'fixnum) (< -1 index (length objects)))
        (let ((object (svref objects index)))
          (if (typep object 'fixnum) nil object))
        nil)))

(defun registry-remove (base index)
  "Free the registry slot INDEX (idempotent)."
  (declare (type event-base base) (type fixnum index) (optimize (speed 3) (safety 0)))
  (let ((objects (event-base-objects base)))
    (when (and (< -1 index (length objects))
               (not (typep (svref objects index) 'fixnum)))
      (setf (svref objects index) (event-base-free base)
            (event-base-free base) index)
      (decf (event-base-live base))))
  nil)

(defun registry-live-count (&optional (base *event-base*))
  "The number of live entries in the registry that maps C context words to Lisp
objects (sockets, servers, timers) of BASE, the current loop by default.  It
returns to 0 once every handle of the loop has closed; tests use it to prove
that nothing leaks across the C border."
  (check-type base (or null event-base))
  (if base (event-base-live base) 0))

(defun registry-objects (base)
  "The live objects of BASE's registry (a fresh list)."
  (loop for object across (event-base-objects base)
        unless (typep object 'fixnum) collect object))
