;;;; client-tests.lisp -- real clients (curl, nc), many clients at once, and
;;;; the registry after many connect/close cycles.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defun wait-for-process (process then)
  "Poll PROCESS from the loop every 10 ms; call THEN when it has exited."
  (let ((iv nil))
    (setf iv (as:interval (lambda ()
                            (unless (uiop:process-alive-p process)
                              (as:remove-interval iv)
                              (funcall then)))
                          :time 0.01))))

(defun http-hello-server ()
  (as:tcp-server nil 0
                 (lambda (socket data)
                   (when (search (format nil "~c~c~c~c" #\return #\newline #\return #\newline)
                                 (text data))
                     (as:write-socket-data
                      socket
                      (format nil "HTTP/1.1 200 OK~c~cContent-Type: text/plain~c~cContent-Length: 12~c~cConnection: close~c~c~c~chello, curl!"
                              #\return #\newline #\return #\newline #\return #\newline
                              #\return #\newline #\return #\newline)
                      :write-cb (lambda (socket) (as:close-socket socket)))))
                 #'ignore-event))

(test curl-talks-to-a-lisp-http-server
  (let ((out (format nil "/tmp/cl-async-tcp-curl-~D.out" (random 1000000 (make-random-state t))))
        (status nil))
    (with-test-loop (:timeout 20)
      (let* ((server (http-hello-server))
             (process (run-client-program "curl" (list "-s" "--max-time" "10"
                                                       (format nil "http://127.0.0.1:~D/hello"
                                                               (as:tcp-server-port server)))
                                          out)))
        (wait-for-process process (lambda ()
                                    (setf status (process-exit-code process))
                                    (as:close-tcp-server server)
                                    (done)))))
    (is (eql 0 status))
    (is (equal "hello, curl!" (text (file-octets out))))
    (ignore-errors (delete-file out))))

(test nc-talks-to-a-lisp-echo-server
  (let ((out (format nil "/tmp/cl-async-tcp-nc-~D.out" (random 1000000 (make-random-state t))))
        (status nil))
    (with-test-loop (:timeout 20)
      (let* ((server (echo-server))
             (process (run-client-program
                       "sh" (list "-c" (format nil "printf 'ping from nc' | nc -N -w 10 127.0.0.1 ~D"
                                               (as:tcp-server-port server)))
                       out)))
        (wait-for-process process (lambda ()
                                    (setf status (process-exit-code process))
                                    (as:close-tcp-server server)
                                    (done)))))
    (is (eql 0 status))
    (is (equal "ping from nc" (text (file-octets out))))
    (ignore-errors (delete-file out))))

(test eight-clients-one-mib-each-byte-for-byte
  ;; cl-async never ran this "no overlap" case.
  (let* ((clients 8) (size (* 1024 1024))
         (patterns (loop for k below clients collect (pattern size k)))
         (results (make-array clients :initial-element nil))
         (left clients))
    (with-test-loop (:timeout 60)
      (let ((server (echo-server)))
        (loop for k below clients
              for payload in patterns
              do (let ((k k) (chunks '()) (got 0))
                   (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                   (lambda (socket data)
                                     (push data chunks)
                                     (when (>= (incf got (length data)) size)
                                       (setf (aref results k) (concat-octets (reverse chunks)))
                                       (as:close-socket socket)
                                       (when (zerop (decf left))
                                         (as:close-tcp-server server)
                                         (done))))
                                   #'ignore-event
                                   :data payload)))))
    (loop for k below clients
          do (is (equalp (nth k patterns) (aref results k)) "client ~D got other bytes back" k))))

(defparameter *cycles* 100000
  "Connect/close cycles of the leak test (measured: see the test's output).")

(test registry-is-empty-after-many-connect-close-cycles
  (let* ((total *cycles*) (parallel 32) (started 0) (finished 0) (peak 0)
         (inside-count nil) (c-count nil) (start (now)))
    (with-test-loop (:timeout 120)
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) #'ignore-event))
            (port nil))
        (setf port (as:tcp-server-port server))
        (labels ((one ()
                   (incf started)
                   (as:tcp-connect "127.0.0.1" port (lambda (s d) (declare (ignore s d)))
                                   #'ignore-event
                                   :connect-cb (lambda (socket)
                                                 (as:close-socket socket)
                                                 (setf peak (max peak (as:registry-live-count)))
                                                 (incf finished)
                                                 (cond ((< started total) (one))
                                                       ((= finished total)
                                                        (as:close-tcp-server server)
                                                        (done)
                                                        ;; every handle has closed a moment later
                                                        (as:with-delay (0.2)
                                                          (setf inside-count (as:registry-live-count))
                                                          (cffi:with-foreign-object (n :size)
                                                            (cltcp:loop-handle-count
                                                             n (as::event-base-id as:*event-base*))
                                                            (setf c-count (cffi:mem-ref n :size))))))))))
          (dotimes (i parallel) (one)))))
    (format t "~&  ~D connect/close cycles in ~,1F s (peak registry ~D)~%"
            total (- (now) start) peak)
    (is (= total finished))
    ;; only the checking delay itself is alive then
    (is (eql 1 inside-count))
    (is (eql 1 c-count))))
