;;;; demo.lisp -- cl-async-tcp in a few lines: an echo server and an HTTP
;;;; "hello" server written with the documented cl-async API, and clients
;;;; talking to them over loopback.  Run by ./run-demo; by hand:
;;;;   sbcl --non-interactive --load examples/demo.lisp
;;;; Exits 0 when every exchange came back as expected.

(require :asdf)
(asdf:initialize-source-registry
 `(:source-registry
   (:directory ,(merge-pathnames "../" (make-pathname :name nil :type nil
                                                      :defaults *load-truename*)))
   :inherit-configuration))
(let ((*compile-verbose* nil) (*compile-print* nil))
  ;; The libraries we depend on may print compiler notes the first time they
  ;; are compiled; those are theirs, so they are kept quiet here.  This
  ;; library's own files compile without notes or warnings, and nothing of
  ;; them is muffled.
  (handler-bind (#+sbcl (sb-ext:compiler-note #'muffle-warning))
    (dolist (dependency (asdf:system-depends-on (asdf:find-system :cl-async-tcp)))
      (asdf:load-system dependency)))
  (asdf:load-system :cl-async-tcp))

(defpackage #:cl-async-tcp-demo (:use #:cl))
(in-package #:cl-async-tcp-demo)

(defvar *ok* t)

(defun say (fmt &rest args)
  (format t "~&~?~%" fmt args)
  (finish-output))

(defun check (what ok)
  (say "  ~:[FAILED~;ok~]: ~a" ok what)
  (unless ok (setf *ok* nil)))

(defun echo-demo ()
  "A tcp-server that echoes, a tcp-connect client that sends a line, prints
the echo and closes; closing the server then ends the loop."
  (say "echo: server and client on 127.0.0.1")
  (let ((reply ""))
    (as:start-event-loop
     (lambda ()
       (let* ((server (as:tcp-server "127.0.0.1" 0
                                     (lambda (socket data)
                                       (as:write-socket-data socket data))
                                     nil))
              (port (as:tcp-server-port server)))
         (say "  server listening on port ~d" port)
         (as:tcp-connect "127.0.0.1" port
                         (lambda (socket data)
                           (setf reply (concatenate 'string reply
                                                    (babel:octets-to-string data)))
                           (when (>= (length reply) 24)
                             (as:close-socket socket)
                             (as:close-tcp-server server)))
                         (lambda (ev) (say "  client event: ~a" ev))
                         :connect-cb (lambda (socket)
                                       (declare (ignore socket))
                                       (say "  client connected"))
                         :data "hello from cl-async-tcp!"))))
    (say "  client got back: ~s" reply)
    (check "echo came back whole" (string= reply "hello from cl-async-tcp!"))))

(defun http-demo ()
  "An HTTP hello server answered by curl, the way a user would test it."
  (say "http: a Lisp HTTP hello server, queried with curl")
  (let ((body nil))
    (as:with-event-loop (:catch-app-errors t)
      (let* ((server (as:tcp-server
                      nil 0
                      (lambda (socket data)
                        (declare (ignore data))
                        (as:write-socket-data
                         socket
                         (format nil "HTTP/1.1 200 OK~c~cContent-Length: 13~c~cConnection: close~c~c~c~cHello, World!"
                                 #\Return #\Newline #\Return #\Newline #\Return #\Newline
                                 #\Return #\Newline)
                         :write-cb (lambda (socket) (as:close-socket socket))))
                      :event-cb (lambda (ev) (declare (ignore ev)))))
             (port (as:tcp-server-port server)))
        (say "  server listening on port ~d" port)
        ;; curl runs in another process; poll for it from the loop.
        (let ((proc (sb-ext:run-program "/usr/bin/curl"
                                        (list "-s" "--max-time" "5"
                                              (format nil "http://127.0.0.1:~d/" port))
                                        :output :stream :wait nil)))
          (as:with-interval (0.02)
            (unless (sb-ext:process-alive-p proc)
              (setf body (with-output-to-string (out)
                           (loop for line = (read-line (sb-ext:process-output proc) nil)
                                 while line do (write-string line out))))
              (sb-ext:process-close proc)
              (as:exit-event-loop))))))
    (say "  curl printed: ~s" body)
    (check "curl got Hello, World!" (equal body "Hello, World!"))))

(defun condition-demo ()
  "A refused connection reaches the event-cb as a tcp-refused condition."
  (say "conditions: connecting to a closed port")
  (let ((seen nil))
    (as:start-event-loop
     (lambda ()
       (let* ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil))
              (port (as:tcp-server-port server)))
         ;; Close the server first: its port is then closed for sure.
         (as:close-tcp-server server)
         (as:delay (lambda ()
                     (as:tcp-connect "127.0.0.1" port
                                     (lambda (s d) (declare (ignore s d)))
                                     (lambda (ev)
                                       (setf seen ev)
                                       (say "  event-cb got ~a" ev))))
                   :time 0.01))))
    (check "tcp-refused delivered" (typep seen 'as:tcp-refused))))

(echo-demo)
(http-demo)
(condition-demo)
(say "demo: ~:[FAILED~;all ok~]" *ok*)
(uiop:quit (if *ok* 0 1))
