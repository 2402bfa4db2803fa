;;;; tcp-tests.lisp -- the reference's TCP functions end to end on loopback.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(test echo-read-cb-gets-fresh-octets-and-callbacks-fire-in-order
  (let ((events '()) (chunks '()) (types '()))
    (with-test-loop ()
      (let ((server (echo-server)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (socket data)
                          (push :read events)
                          (push (type-of data) types)
                          (push data chunks)
                          (when (>= (reduce #'+ chunks :key #'length) 5)
                            (as:close-socket socket)
                            (as:close-tcp-server server)
                            (done)))
                        #'ignore-event
                        :data "hello"
                        :connect-cb (lambda (socket) (declare (ignore socket)) (push :connect events))
                        :write-cb (lambda (socket) (declare (ignore socket)) (push :write events)))))
    (is (equal "hello" (text (concat-octets (reverse chunks)))))
    (is (every (lambda (ty) (subtypep ty '(simple-array (unsigned-byte 8) (*)))) types))
    (is (eq :connect (car (last events))))
    (is (member :write events))))

;;; Reference example 1: tcp-connect with :data and a read-cb that closes the
;;; socket when the response is complete, against an HTTP-ish server here.
(test reference-example-tcp-connect
  (let ((errors '()) (response '()))
    (flet ((my-app-error-handler (err) (push err errors))
           (process-http-stream (data)
             (push data response)
             (search "hello" (text (concat-octets (reverse response))))))
      (with-test-loop ()
        (let* ((server (as:tcp-server "127.0.0.1" 0
                                      (lambda (socket data)
                                        (when (search "GET /" (text data))
                                          (as:write-socket-data
                                           socket (format nil "HTTP/1.0 200 OK~c~c~c~chello"
                                                          #\return #\newline #\return #\newline))))
                                      nil
                                      :connect-cb (lambda (s) (declare (ignore s)))))
               (port (as:tcp-server-port server)))
          (as:tcp-connect "127.0.0.1" port
                          (lambda (socket data)
                            (when (process-http-stream data)
                              (as:close-socket socket)
                              (as:close-tcp-server server)
                              (done)))
                          #'my-app-error-handler
                          :data (format nil "GET /~c~c" #\return #\newline)))))
    (is (null errors))
    (is (search "HTTP/1.0 200 OK" (text (concat-octets (reverse response)))))))

;;; Reference example 2: tcp-server with a positional NIL event-cb (cl-async
;;; itself fails this with "odd number of &KEY arguments").
(test reference-example-tcp-server
  (let ((received '()) (eof nil) (printed nil))
    (with-test-loop ()
      (let ((server (let ((*standard-output* (make-broadcast-stream)))
                      (as:tcp-server "127.0.0.1" 0
                                     (lambda (socket data)
                                       (setf printed (format nil "data: ~a~%" data))
                                       (as:write-socket-data socket "i noticed you have brathes. i have brathes too. uhhhhuhuhuh."
                                                             :write-cb (lambda (socket)
                                                                         (as:close-socket socket))))
                                     nil))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (socket data) (declare (ignore socket)) (push data received))
                        (lambda (c)
                          (when (typep c 'as:tcp-eof)
                            (setf eof t)
                            (as:close-tcp-server server)
                            (done)))
                        :data "hi")))
    (is-true eof)
    (is (stringp printed))
    (is (equal "i noticed you have brathes. i have brathes too. uhhhhuhuhuh."
               (text (concat-octets (reverse received)))))))

;;; Reference example 3: write-socket-data resetting callbacks, the write-cb
;;; that closes, set-socket-timeouts and enable-socket as the page shows them.
(test reference-example-write-socket-data
  (let ((received '()) (convo-errors '()) (eof nil))
    (labels ((continue-conversation (socket data)
               (if (string= (string-trim '(#\Newline) (text data)) "good")
                   (as:write-socket-data socket "glad to hear it")
                   (as:write-socket-data socket "invalid command, closing connection"
                                         :write-cb (lambda (socket) (as:close-socket socket))))))
      (with-test-loop ()
        (let ((server (as:tcp-server "127.0.0.1" 0
                                     (lambda (socket data) (declare (ignore socket data)))
                                     nil
                                     :connect-cb
                                     (lambda (socket)
                                       (as:set-socket-timeouts socket 10.5 nil)
                                       (as:enable-socket socket :read t :write t)
                                       (as:write-socket-data socket "thanks for connecting. how are you? (good|bad)"
                                                             :read-cb (lambda (socket data)
                                                                        (continue-conversation socket data))
                                                             :event-cb (lambda (err)
                                                                         (push err convo-errors)))))))
          (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                          (lambda (socket data)
                            (push data received)
                            (when (search "(good|bad)" (text (concat-octets (reverse received))))
                              (unless (as:socket-data socket)
                                (setf (as:socket-data socket) :answered)
                                (as:write-socket-data socket "bad"))))
                          (lambda (c)
                            (when (typep c 'as:tcp-eof)
                              (setf eof t)
                              (as:close-tcp-server server)
                              (done)))))))
    (is-true eof)
    (is (equal "thanks for connecting. how are you? (good|bad)invalid command, closing connection"
               (text (concat-octets (reverse received)))))
    (is (null convo-errors))))

(test event-cb-keyword-convention
  (let ((got '()) (refused nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (socket data) (as:write-socket-data socket data))
                                   :event-cb #'ignore-event :backlog 16)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (socket data)
                          (push data got)
                          (as:close-socket socket)
                          (as:close-tcp-server server))
                        :event-cb #'ignore-event
                        :data "kw")
        (as:tcp-connect "127.0.0.1" (closed-port)
                        (lambda (s d) (declare (ignore s d)))
                        :event-cb (lambda (c) (setf refused c) (done)))))
    (is (equal "kw" (text (first got))))
    (is (typep refused 'as:tcp-refused))))

(test init-tcp-socket-then-connect
  (let ((got nil) (connected nil) (socket nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (setf socket (as:init-tcp-socket (one-reply server (lambda (data) (setf got data)))
                                         nil
                                         :connect-cb (lambda (s) (setf connected s))))
        (is (typep socket 'as:socket))
        (is (eq socket (as:connect-tcp-socket socket "127.0.0.1" (as:tcp-server-port server)
                                              :event-cb #'ignore-event)))
        (as:write-socket-data socket "late")))
    (is (eq connected socket))
    (is (equal "late" (text got)))))

(test tcp-send-is-deprecated-but-works
  (let ((got nil) (warned nil))
    (handler-bind ((style-warning (lambda (w) (setf warned w) (muffle-warning w))))
      (with-test-loop ()
        (let ((server (echo-server)))
          (as:tcp-send "127.0.0.1" (as:tcp-server-port server) "old"
                       (one-reply server (lambda (data) (setf got data)))
                       nil))))
    (is (typep warned 'style-warning))
    (is (equal "old" (text got)))))

(test tcp-server-nil-bind-address-means-any
  (let ((got nil))
    (with-test-loop ()
      (let ((server (echo-server :bind nil)))
        (is (equal "0.0.0.0" (nth-value 0 (as:tcp-server-address server))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (one-reply server (lambda (data) (setf got data)))
                        nil :data "any")))
    (is (equal "any" (text got)))))

(test close-tcp-server-is-idempotent-and-keeps-connections
  (let ((replies '()) (refused nil))
    (with-test-loop ()
      (let* ((server (echo-server))
             (port (as:tcp-server-port server)))
        (as:tcp-connect "127.0.0.1" port
                        (lambda (socket data)
                          (push (text data) replies)
                          (cond ((equal (text data) "one")
                                 ;; close the server, then talk on the live connection
                                 (is (null (as:close-tcp-server server)))
                                 (is (null (as:close-tcp-server server)))
                                 (is-true (as:tcp-server-closed-p server))
                                 (as:write-socket-data socket "two"))
                                (t
                                 (as:close-socket socket)
                                 (as:tcp-connect "127.0.0.1" port
                                                 (lambda (s d) (declare (ignore s d)))
                                                 (lambda (c) (setf refused c) (done))))))
                        nil :data "one")))
    (is (equal '("one" "two") (reverse replies)))
    (is (typep refused 'as:tcp-refused))))

(test half-close-gets-the-whole-echo-back
  ;; The client sends 4 MiB, then half-closes; the server echoes and gets EOF
  ;; while much of the echo is still queued: all of it must still arrive.
  (let* ((size (* 4 1024 1024)) (payload (pattern size 3)) (chunks '()) (eof nil) (server-eof nil))
    (with-test-loop (:timeout 30)
      (let ((server (echo-server :event-cb (lambda (c) (when (typep c 'as:tcp-eof) (setf server-eof t))))))
        (let ((client (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                      (lambda (socket data) (declare (ignore socket)) (push data chunks))
                                      (lambda (c)
                                        (when (typep c 'as:tcp-eof)
                                          (setf eof t)
                                          (as:close-tcp-server server)
                                          (done))))))
          (as:write-socket-data client payload)
          (as:shutdown-socket client))))
    (is-true eof)
    (is-true server-eof)
    (let ((back (concat-octets (reverse chunks))))
      (is (= size (length back)))
      (is (equalp payload back)))))

(test close-socket-flushes-and-force-drops
  (let* ((size (* 2 1024 1024)) (payload (pattern size 5)) (chunks '()) (eof nil))
    (with-test-loop (:timeout 30)
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                                   :connect-cb (lambda (socket)
                                                 (as:write-socket-data socket payload)
                                                 (as:close-socket socket)
                                                 (signals as:socket-closed (as:close-socket socket))))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (socket data) (declare (ignore socket)) (push data chunks))
                        (lambda (c)
                          (when (typep c 'as:tcp-eof)
                            (setf eof t)
                            (as:close-tcp-server server)
                            (done))))))
    (is-true eof)
    (is (equalp payload (concat-octets (reverse chunks))))))

(test read-timeout-is-idle-time
  ;; The 1 s timeout leaves a busy machine 0.9 s of slack between pings.
  (let ((timeout nil) (start nil) (elapsed nil) (pings 0))
    (with-test-loop (:timeout 30)
      ;; The server sends a byte every 0.1 s for 0.6 s, then goes quiet.
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                                   :connect-cb
                                   (lambda (socket)
                                     (let ((iv nil) (n 0))
                                       (setf iv (as:interval (lambda ()
                                                               (if (< (incf n) 7)
                                                                   (as:write-socket-data socket "x")
                                                                   (as:remove-interval iv)))
                                                             :time 0.1)))))))
        (setf start (now))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (socket data) (declare (ignore socket)) (incf pings (length data)))
                        (lambda (c)
                          (when (typep c 'as:tcp-timeout)
                            (setf timeout c elapsed (- (now) start))
                            (as:close-tcp-server server)
                            (done)))
                        :read-timeout 1.0)))
    (is (typep timeout 'as:socket-timeout))
    (is (= pings 6))
    ;; The sixth byte is written at least 0.6 s after START; the timeout
    ;; counts 1 s from its arrival.
    (is (fired-in-time-p elapsed 1.6) "timed out after ~,2F s" elapsed)))

(test write-timeout-when-no-progress
  (let ((timeout nil) (server-socket nil))
    (with-test-loop (:timeout 20)
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) #'ignore-event
                                   :connect-cb (lambda (socket)
                                                 (setf server-socket socket)
                                                 (as:disable-socket socket :read t)))))
        (let ((client (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                      (lambda (s d) (declare (ignore s d)))
                                      (lambda (c)
                                        (when (typep c 'as:tcp-timeout)
                                          (setf timeout c)
                                          (as:close-socket server-socket)
                                          (as:close-tcp-server server)
                                          (done)))
                                      :write-timeout 0.5)))
          (as:write-socket-data client (make-array (* 64 1024 1024) :element-type '(unsigned-byte 8))))))
    (is (typep timeout 'as:tcp-timeout))))

(test disable-and-enable-socket
  (let ((got '()) (early nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (socket data)
                                     (push (text data) got)
                                     (as:close-socket socket))
                                   nil
                                   :connect-cb (lambda (socket)
                                                 (as:disable-socket socket :read t)
                                                 (as:with-delay (0.3)
                                                   (setf early (copy-list got))
                                                   (as:enable-socket socket :read t))))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (declare (ignore s d)))
                        (lambda (c)
                          (when (typep c 'as:tcp-eof)
                            (as:close-tcp-server server)
                            (done)))
                        :data "wait")))
    (is (null early))
    (is (equal '("wait") got))))

(test operations-on-closed-sockets-signal-socket-closed
  (let ((checked nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (declare (ignore s d)))
                        nil
                        :connect-cb
                        (lambda (socket)
                          (is-false (as:socket-closed-p socket))
                          (as:close-socket socket)
                          (is-true (as:socket-closed-p socket))
                          (signals as:socket-closed (as:write-socket-data socket "x"))
                          (signals as:socket-closed (as:set-socket-timeouts socket 1 1))
                          (signals as:socket-closed (as:close-socket socket))
                          (handler-case (as:write-socket-data socket "x")
                            (as:socket-closed (c)
                              (is (typep c 'as:tcp-error))
                              (is (typep c 'as:socket-error))
                              (is (eq socket (as:tcp-socket c)))
                              (is (equal "ECLOSED" (as:event-errname c)))
                              (setf checked t)))
                          (as:close-tcp-server server)
                          (done)))))
    (is-true checked)))

(test connect-by-name-localhost
  ;; "localhost" comes from /etc/hosts: no DNS query leaves the machine.
  (let ((got nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (as:tcp-connect "localhost" (as:tcp-server-port server)
                        (one-reply server (lambda (data) (setf got data)))
                        #'ignore-event
                        :data "by name")))
    (is (equal "by name" (and got (text got))))))

(test server-connect-cb-runs-before-the-first-read-cb
  (let ((events '()))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (socket data)
                                     (push (list :read (text data)) events)
                                     (as:close-socket socket))
                                   nil
                                   :connect-cb (lambda (socket)
                                                 (push (list :connect (as:socket-closed-p socket)) events)))))
        ;; the client's bytes are already there when the server accepts
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (declare (ignore s d)))
                        (lambda (c)
                          (when (typep c 'as:tcp-eof)
                            (as:close-tcp-server server)
                            (done)))
                        :data "first")))
    (is (equal '((:connect nil) (:read "first")) (reverse events)))))
