;;;; warm-up.lisp -- the constructors of per-connection objects, built at load.
;;;;
;;;; SBCL compiles the optimized constructor of a MAKE-INSTANCE call (one per
;;;; class and initarg list) the first time it runs, and throws away a few
;;;; megabytes of compiler data doing so.  Left to the first connection, a
;;;; timer or a server, that lands in a running server's memory and time;
;;;; here it happens at load, where the garbage goes with the rest of the
;;;; compiler's.  This file loads last: defining methods on
;;;; INITIALIZE-INSTANCE or classes that later files define can reset
;;;; constructors built before them.  Other implementations just make (and
;;;; drop) the objects.

(in-package #:cl-async-tcp)

(defun %warm-up-constructors (none id)
  "Make (and drop) one object through each constructor a running loop uses per
connection, server or timer, with NONE (NIL) and ID (0) as the initargs, so
that the implementation builds those constructors now.  The objects are never
registered and never reach C."
  (let ((server (%make-tcp-server :base none :read-cb none :event-cb none
                                  :connect-cb none :stream-p none)))
    (%make-accepted-socket 'tcp-socket id none server)
    (%make-tcp-socket :base none :read-cb none :event-cb none
                      :connect-cb none :write-cb none :keep-p none)
    (%make-timer :base none :callback none :event-cb none))
  nil)

;; Through a function call, so the initargs are not constants to the compiler
;; (constant initargs would make other constructors than the call sites').
(%warm-up-constructors (identity nil) (identity 0))
