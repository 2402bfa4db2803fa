;;;; lisp_http.lisp -- the HTTP keep-alive responder on the Lisp API.
;;;;
;;;; Benchmark code, not part of the library.  Written the way a user writes
;;;; a server against the documented cl-async API: AS:TCP-SERVER with a
;;;; read-cb and an event-cb, WRITE-SOCKET-DATA for the answers, SOCKET-DATA
;;;; for per-connection state.  Same answers as every responder in bench/:
;;;; each request (everything up to CR LF CR LF, which may be split across
;;;; reads or pipelined) gets a fixed 200 with a 13-byte body.
;;;;
;;;; Usage: sbcl --script bench/lisp_http.lisp PORT [five] [loops=N]
;;;; (prints "READY <port>").
;;;; With "five", every response is written in five pieces -- the status
;;;; line, each header, the blank line, the body: five WRITE-SOCKET-DATA
;;;; calls, as HTTP frameworks for cl-async write -- which the library sends
;;;; together at the end of the loop turn (as:*buffer-writes*).
;;;; loops=N, N > 1 (issue 10): N event loops, one per thread, each with its
;;;; own server on PORT opened with :reuse-port t; the kernel spreads the
;;;; connections over them.  READY is printed once every loop listens.
;;;; SBCL compiles every form it loads (its evaluator mode is :compile), so
;;;; the callbacks below run as native code, as in a user's compiled program.

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

(defpackage #:bench-http
  (:use #:cl))
(in-package #:bench-http)

(defparameter *response*
  (map '(simple-array (unsigned-byte 8) (*)) #'char-code
       (format nil "HTTP/1.1 200 OK~c~%Content-Type: text/plain~c~%~
                    Content-Length: 13~c~%~c~%Hello, World!"
               #\Return #\Return #\Return #\Return)))

(defun count-requests (state data)
  "Counts the requests that end in DATA.  STATE is how many bytes of CR LF CR
LF the previous read ended with; returns the count and the new state."
  (declare (type (simple-array (unsigned-byte 8) (*)) data)
           (type (integer 0 3) state))
  (let ((n 0))
    (declare (type fixnum n))
    (loop for b of-type (unsigned-byte 8) across data
          do (setf state
                   (case state
                     (0 (if (= b 13) 1 0))
                     (1 (cond ((= b 10) 2) ((= b 13) 1) (t 0)))
                     (2 (if (= b 13) 3 0))
                     (t (cond ((= b 10) (incf n) 0) ((= b 13) 1) (t 0))))))
    (values n state)))

(defparameter *pieces*
  (mapcar (lambda (s) (map '(simple-array (unsigned-byte 8) (*)) #'char-code s))
          (list (format nil "HTTP/1.1 200 OK~c~%" #\Return)
                (format nil "Content-Type: text/plain~c~%" #\Return)
                (format nil "Content-Length: 13~c~%" #\Return)
                (format nil "~c~%" #\Return)
                "Hello, World!"))
  "The same response as *RESPONSE*, in the five pieces a framework writes.")

(defvar *five* nil "Write each response in five pieces.")

(defun on-read (socket data)
  (multiple-value-bind (n state)
      (count-requests (or (as:socket-data socket) 0) data)
    (setf (as:socket-data socket) state)
    (dotimes (i n)
      (if *five*
          (dolist (piece *pieces*)
            (as:write-socket-data socket piece))
          (as:write-socket-data socket *response*)))))

(defun on-event (event)
  ;; Clients come and go (EOF, reset): nothing to do, the library closes.
  (declare (ignore event)))

(defun main ()
  (let* ((port (parse-integer (second sb-ext:*posix-argv*)))
         (loops (let ((arg (find-if (lambda (a) (eql 0 (search "loops=" a)))
                                    (cddr sb-ext:*posix-argv*))))
                  (if arg (parse-integer arg :start 6) 1)))
         (lock (sb-thread:make-mutex))
         (listening 0))
    (setf *five* (and (member "five" (cddr sb-ext:*posix-argv*) :test #'equal) t))
    (flet ((serve ()
             (as:start-event-loop
              (lambda ()
                (as:tcp-server "127.0.0.1" port #'on-read #'on-event :backlog 4096
                                                                      :reuse-port (> loops 1))
                (sb-thread:with-mutex (lock)
                  (when (= (incf listening) loops)
                    (format t "READY ~d~%" port)
                    (finish-output)))))))
      (dotimes (i (1- loops))
        (sb-thread:make-thread #'serve :name (format nil "loop ~D" (1+ i))))
      (serve))))

(main)
