;;;; helpers.lisp -- watchdog loops, ports, byte patterns, external clients.
;;;;
;;;; Every test runs its loop under WITH-TEST-LOOP: a watchdog timer exits
;;;; the loop and fails the test if it is not done in time.  A test calls
;;;; (DONE) when it has what it wanted; that cancels the watchdog so the loop
;;;; must then end by itself, which also proves that every handle closed.
;;;; Everything uses 127.0.0.1 with port 0 read back from the server.

(in-package #:cl-async-tcp-test)

(defvar *watchdog* nil "The running test's watchdog (a delay).")
(defvar *timed-out* nil "True when the watchdog fired.")
(defvar *last-base* nil "The event base of the last test loop (for leak checks).")

(defun run-suite ()
  "Run the whole suite, print the results; true when everything passed."
  (let ((results (run :cl-async-tcp)))
    (explain! results)
    (results-status results)))

(defmacro with-test-loop ((&key (timeout 10) catch-app-errors default-event-cb
                                (send-errors-to-eventcb t))
                          &body body)
  "Run BODY in a fresh event loop with a watchdog of TIMEOUT seconds; then check
that the watchdog did not fire and that the registry is empty."
  `(let ((*timed-out* nil) (*watchdog* nil) (*last-base* nil))
     (as:start-event-loop
      (lambda ()
        (setf *last-base* as:*event-base*)
        (setf *watchdog* (as:delay (lambda ()
                                     (setf *timed-out* t)
                                     (as:exit-event-loop))
                                   :time ,timeout))
        ,@body)
      :catch-app-errors ,catch-app-errors
      :default-event-cb ,default-event-cb
      :send-errors-to-eventcb ,send-errors-to-eventcb)
     (is-false *timed-out* "watchdog: the test did not finish within ~A s" ,timeout)
     (is (= 0 (as:registry-live-count *last-base*)) "registry not empty after the loop")))

(defun done ()
  "The test has what it wanted: cancel the watchdog (the loop then ends once
every handle is closed)."
  (when (and *watchdog* (not (as:event-freed-p *watchdog*)))
    (as:free-event *watchdog*)))

(defun finish-test ()
  "Cancel the watchdog and stop the loop at once."
  (done)
  (as:exit-event-loop))

(defun octets (string)
  (babel:string-to-octets string :encoding :utf-8))

(defun text (octets)
  (babel:octets-to-string octets :encoding :utf-8))

(defun concat-octets (chunks)
  "One octet vector made of the list CHUNKS (in order)."
  (let ((out (make-array (reduce #'+ chunks :key #'length)
                         :element-type '(unsigned-byte 8)))
        (pos 0))
    (dolist (c chunks out)
      (replace out c :start1 pos)
      (incf pos (length c)))))

(defun pattern (n seed)
  "N bytes of a byte pattern of its own for SEED."
  (let ((v (make-array n :element-type '(unsigned-byte 8))))
    (dotimes (i n v)
      (setf (aref v i) (ldb (byte 8 0) (+ (* seed 131) (* i (+ 7 (* 2 seed))) (ash i -9)))))))

(defun echo-server (&key (bind "127.0.0.1") connect-cb event-cb)
  "A tcp-server that writes back everything it reads."
  (as:tcp-server bind 0
                 (lambda (socket data) (as:write-socket-data socket data))
                 :event-cb (or event-cb (lambda (c) (declare (ignore c))))
                 :connect-cb connect-cb))

(defun one-reply (server on-reply)
  "A read-cb for a client of SERVER that hands the first data it reads to
ON-REPLY, then closes its socket and SERVER and ends the test loop."
  (lambda (socket data)
    (funcall on-reply data)
    (as:close-socket socket)
    (as:close-tcp-server server)
    (done)))

(defun closed-port ()
  "A loopback port where nothing listens (bound, read back, closed again)."
  (let* ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil))
         (port (as:tcp-server-port server)))
    (as:close-tcp-server server)
    port))

(defun ignore-event (c) (declare (ignore c)) nil)

(defun run-client-program (program args output-file)
  "Start PROGRAM (found on PATH) in the background with its output going to
OUTPUT-FILE; returns a UIOP process-info."
  (uiop:launch-program (cons program args) :input nil
                       :output output-file :if-output-exists :supersede
                       :error-output nil))

(defun process-exit-code (process)
  "The exit code of PROCESS (a UIOP process-info), waiting for it to end."
  (uiop:wait-process process))

(defun bytes-consed ()
  "Bytes allocated by this Lisp so far, or NIL where the suite's allocation
bounds do not apply (those checks are skipped then, saying so).  There is no
portable counter; SBCL's is SB-EXT:GET-BYTES-CONSED.  ECL has one (SI:GC-STATS)
but the bounds are not ECL's: there every foreign pointer CFFI makes is a heap
object, so each read call allocates (16 MiB read in small chunks allocated
about 30 MB there), which the library cannot avoid."
  #+sbcl (sb-ext:get-bytes-consed)
  #-sbcl nil)

(defun file-octets (path)
  (with-open-file (s path :element-type '(unsigned-byte 8))
    (let ((v (make-array (file-length s) :element-type '(unsigned-byte 8))))
      (read-sequence v s)
      v)))

(defun now () (/ (get-internal-real-time) internal-time-units-per-second))

(defun join-thread-within (thread seconds)
  "THREAD's value once it has ended, or :TIMED-OUT when it has not ended within
SECONDS (it is left running then)."
  (loop repeat (ceiling seconds 0.01)
        while (bt:thread-alive-p thread)
        do (sleep 0.01))
  (if (bt:thread-alive-p thread)
      :timed-out
      (bt:join-thread thread)))

;;; Timing bounds follow from the promise, never from the machine's speed: a
;;; timer or timeout never fires before its time (counted from the arming),
;;; and fires within its time plus a generous slack.  +CLOCK-SLACK+ is the
;;; granularity of NOW: SBCL reads a coarse monotonic clock (ticks of 4 ms
;;; at HZ=250, 10 ms at HZ=100); the library itself keeps the precise one.
(defconstant +clock-slack+ 0.011)
(defconstant +late-slack+ 10)

(defun fired-in-time-p (elapsed seconds)
  "True when ELAPSED (seconds from the arming, by NOW) is not before SECONDS
and within SECONDS plus +LATE-SLACK+."
  (and elapsed (<= (- seconds +clock-slack+) elapsed (+ seconds +late-slack+))))

(defun busy-wait (seconds)
  "Compute, without yielding to the loop, for SECONDS of wall-clock time."
  (let ((end (+ (now) seconds)))
    (loop while (< (now) end))))

(defun c-handle-count ()
  "The number of live C handles of the running loop (cltcp_loop_handle_count)."
  (cffi:with-foreign-object (n :size)
    (let ((rc (cltcp:loop-handle-count n (as::event-base-id as:*event-base*))))
      (assert (zerop rc) () "cltcp_loop_handle_count failed: ~D" rc))
    (cffi:mem-ref n :size)))
