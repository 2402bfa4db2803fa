;;;; lisp_echo.lisp -- the echo server on the Lisp API, in raw or stream mode.
;;;;
;;;; Benchmark code, not part of the library.  Written the way a user writes
;;;; it against the documented cl-async API.
;;;;  raw mode:    the read-cb gets (socket byte-array) and writes the bytes
;;;;               back with WRITE-SOCKET-DATA.
;;;;  stream mode: the server is made with :stream t; the read-cb gets
;;;;               (socket stream), reads with READ-SEQUENCE until it returns 0
;;;;               and writes back with WRITE-SEQUENCE on the same stream.
;;;; On the peer's EOF the event-cb does nothing: the library sends what is
;;;; still queued, then closes.
;;;;  timeout=SECS: the server's connect-cb sets a read timeout of SECS on
;;;;               every connection with SET-SOCKET-TIMEOUTS (the bench's idle
;;;;               CPU figure with timeouts set); without it none is set and
;;;;               there is no connect-cb.
;;;;
;;;; Usage: sbcl --script bench/lisp_echo.lisp PORT [stream] [timeout=SECS]
;;;; (prints "READY <port>").  SBCL compiles every form it loads (evaluator
;;;; mode :compile), so the callbacks run as native code.

(require :asdf)
(let ((root (merge-pathnames "../" (make-pathname :name nil :type nil
                                                  :defaults *load-truename*))))
  (push (truename root) asdf:*central-registry*))
(let ((*standard-output* (make-broadcast-stream)))
  ;; Compilation chatter would mix with the READY line the harness waits for.
  (asdf:load-system :cl-async-tcp))
;; Loading leaves ~100 MB of garbage behind; collect it so that the RSS
;; figures show the server, not the compiler (speed is unaffected).
(sb-ext:gc :full t)

(defpackage #:bench-echo
  (:use #:cl))
(in-package #:bench-echo)

(defun on-read (socket data)
  (as:write-socket-data socket data))

;; The loop runs on one thread, so one buffer serves every connection.
(defvar *buffer* (make-array 65536 :element-type '(unsigned-byte 8)))

(defun on-read-stream (socket stream)
  (declare (ignore socket))
  (let ((buffer *buffer*))
    (loop for n = (read-sequence buffer stream)
          while (plusp n)
          do (write-sequence buffer stream :end n))
    (force-output stream)))

(defun on-event (event)
  (declare (ignore event)))

(defun timeout-arg (args)
  "The SECS of a \"timeout=SECS\" in ARGS (a positive real), or NIL."
  (let ((arg (find-if (lambda (a) (and (> (length a) 8)
                                       (string= a "timeout=" :end1 8)))
                      args)))
    (when arg
      (let ((secs (let ((*read-eval* nil))
                    (read-from-string arg t nil :start 8))))
        (unless (and (realp secs) (plusp secs))
          (error "bad read timeout: ~a" arg))
        secs))))

(defun main ()
  (let* ((args (cddr sb-ext:*posix-argv*))
         (port (parse-integer (second sb-ext:*posix-argv*)))
         (stream (member "stream" args :test #'equal))
         (timeout (timeout-arg args))
         (connect-cb (when timeout
                       (lambda (socket)
                         (as:set-socket-timeouts socket timeout nil)))))
    (as:start-event-loop
     (lambda ()
       (if stream
           (as:tcp-server "127.0.0.1" port #'on-read-stream #'on-event
                          :backlog 4096 :stream t :connect-cb connect-cb)
           (as:tcp-server "127.0.0.1" port #'on-read #'on-event
                          :backlog 4096 :connect-cb connect-cb))
       (format t "READY ~d~%" port)
       (finish-output)))))

(main)
