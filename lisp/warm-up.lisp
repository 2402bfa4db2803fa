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
connection (its socket, and the stream of a :stream t one), server or timer,
with NONE (NIL) and ID (0) as the initargs, so that the implementation builds
those constructors now.  Also calls READ-SEQUENCE, WRITE-SEQUENCE and
FORCE-OUTPUT once on the stream, so that their generic dispatch for it is
computed now (SBCL compiles it on the first call too); the socket's loop is
gone, so each ends in SOCKET-CLOSED before any foreign call, which is ignored.
The objects are never registered and never reach C."
  (let* ((server (%make-tcp-server :base none :read-cb none :event-cb none
                                   :connect-cb none :stream-p none))
         (socket (%make-accepted-socket 'tcp-socket id none server))
         (stream (%make-socket-stream socket))
         (octets (make-array 1 :element-type '(unsigned-byte 8))))
    (ignore-errors (read-sequence octets stream))
    (ignore-errors (write-sequence octets stream))
    (ignore-errors (force-output stream))
    (%make-tcp-socket :base none :read-cb none :event-cb none :flags id)
    (%make-timer :base none :callback none :event-cb none))
  nil)

;; Until a round builds nothing: the first use of a class finalizes it and its
;; superclasses, which resets the constructors built during that use, and on
;; SBCL a class's layout is only validated when a TYPEP or a dispatch first
;; meets it -- in the second round the stream's INITIALIZE-INSTANCE :AFTER
;; (its TYPEP of ASYNC-INPUT-STREAM) replaces ASYNC-IO-STREAM's layout, which
;; throws away the stream constructor that round had just built, so a third
;; round is needed (without it the first :stream t connection compiled it
;; again: 0.7 MB).  On SBCL a round that built a constructor conses hundreds
;; of kilobytes, one that built none about a kilobyte; elsewhere two rounds.
;; Through a function call, so the initargs are not constants to the compiler
;; (constant initargs would make other constructors than the call sites').
(loop repeat 6
      for consed = #+sbcl (let ((before (sb-ext:get-bytes-consed)))
                            (%warm-up-constructors (identity nil) (identity 0))
                            (- (sb-ext:get-bytes-consed) before))
                   #-sbcl (progn (%warm-up-constructors (identity nil) (identity 0)) 0)
      for round from 1
      until #+sbcl (< consed 65536) #-sbcl (>= round 2))
