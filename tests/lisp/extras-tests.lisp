;;;; extras-tests.lisp -- what cl-async lacks: addresses, IPv6, options,
;;;; backpressure, connect timeout, keep mode without a stream.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(test addresses-of-both-ends
  (let ((client-local nil) (client-peer nil) (server-peer nil) (port nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                                   :connect-cb (lambda (s)
                                                 (setf server-peer (multiple-value-list
                                                                    (as:socket-peer-address s)))
                                                 (as:close-socket s)))))
        (setf port (as:tcp-server-port server))
        (is (equal (list "127.0.0.1" port 4) (multiple-value-list (as:tcp-server-address server))))
        (as:tcp-connect "127.0.0.1" port (lambda (s d) (declare (ignore s d)))
                        (lambda (c) (declare (ignore c)) (as:close-tcp-server server) (done))
                        :connect-cb (lambda (s)
                                      (as:set-socket-nodelay s t)
                                      (as:set-socket-keepalive s t 30)
                                      (setf client-local (multiple-value-list (as:socket-local-address s))
                                            client-peer (multiple-value-list (as:socket-peer-address s)))))))
    (is (equal (list "127.0.0.1" port 4) client-peer))
    (is (equal client-local server-peer))))

(test ipv6-loopback
  (let ((got nil) (family nil) (skipped nil))
    (with-test-loop ()
      (handler-case
          (let ((server (echo-server :bind "::1")))
            (as:tcp-connect "::1" (as:tcp-server-port server)
                            (lambda (socket data)
                              (setf got data
                                    family (nth-value 2 (as:socket-peer-address socket)))
                              (as:close-socket socket)
                              (as:close-tcp-server server)
                              (done))
                            nil :data "six"))
        (as:tcp-server-bind-error () (setf skipped t) (done))))
    (if skipped
        (skip "no IPv6 loopback on this machine")
        (progn (is (equal "six" (text got)))
               (is (eql 6 family))))))

(test backpressure-queued-bytes-and-drain-mark
  (let ((queued-after-write nil) (drained nil) (server-socket nil) (received 0)
        (size (* 16 1024 1024)))
    (with-test-loop (:timeout 30)
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (socket data)
                                     (declare (ignore socket))
                                     (incf received (length data)))
                                   #'ignore-event
                                   :connect-cb (lambda (s)
                                                 (setf server-socket s)
                                                 ;; read nothing for a while
                                                 (as:disable-socket s :read t)
                                                 (as:with-delay (0.2) (as:enable-socket s :read t))))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (declare (ignore s d)))
                        #'ignore-event
                        :connect-cb
                        (lambda (s)
                          (as:set-socket-drain-mark s (* 64 1024)
                                                    (lambda (socket queued)
                                                      (setf drained queued)
                                                      (as:set-socket-drain-mark socket nil)
                                                      (as:close-socket socket)
                                                      (as:close-tcp-server server)
                                                      (as:with-delay (0.2)
                                                        (unless (as:socket-closed-p server-socket)
                                                          (as:close-socket server-socket))
                                                        (done))))
                          (as:write-socket-data s (make-array size :element-type '(unsigned-byte 8)))
                          (setf queued-after-write (as:socket-queued-bytes s))))))
    (is (< 0 queued-after-write (1+ size)))
    (is (and drained (<= drained (* 64 1024))))))

(test connect-timeout-is-separate-from-read-timeout
  ;; A listener with a full accept queue that never accepts: further SYNs are
  ;; dropped, so connects hang until the connect timeout.
  (let* ((listener (usocket:socket-listen "127.0.0.1" 0 :backlog 0))
         (timeouts 0) (connects 0) (port (usocket:get-local-port listener)))
    (unwind-protect
         (progn
           (with-test-loop (:timeout 40)
             (let ((pending 6) (start (now)))
               (dotimes (i 6)
                 (as:tcp-connect "127.0.0.1" port (lambda (s d) (declare (ignore s d)))
                                 (lambda (c)
                                   (when (typep c 'as:tcp-timeout)
                                     (incf timeouts)
                                     ;; the connect timeout, never early, not the long
                                     ;; read timeout (60 s)
                                     (is (<= (- 0.5 +clock-slack+) (- (now) start) 30)))
                                   (when (zerop (decf pending)) (done)))
                                 :connect-cb (lambda (s)
                                               (incf connects)
                                               (as:close-socket s)
                                               (when (zerop (decf pending)) (done)))
                                 :connect-timeout 0.5
                                 :read-timeout 60)))))
      (usocket:socket-close listener))
    (is (>= timeouts 1) "no connect timed out (connects: ~D)" connects)))

(test keep-mode-without-stream
  (let ((bytes '()) (stream-arg :unset) (peer-closed nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                                   :connect-cb (lambda (s)
                                                 (as:write-socket-data s "kept bytes")
                                                 (as:close-socket s)))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (socket stream)
                          (setf stream-arg stream)
                          (is (plusp (as:socket-buffered-bytes socket))))
                        (lambda (c)
                          (when (typep c 'as:tcp-eof)
                            (let ((socket (as:tcp-socket c)))
                              (setf peer-closed (as:socket-peer-closed-p socket))
                              ;; read after the handle died: the bytes were kept
                              (as:with-delay (0.05)
                                (let ((buf (make-array 4 :element-type '(unsigned-byte 8))))
                                  (loop for n = (as:read-socket-data socket buf)
                                        while (plusp n)
                                        do (push (subseq buf 0 n) bytes)))
                                (as:close-tcp-server server)
                                (done)))))
                        :dont-drain-read-buffer t)))
    (is (null stream-arg))
    (is-true peer-closed)
    (is (equal "kept bytes" (text (concat-octets (reverse bytes)))))))

(test registry-reuses-slots
  (let ((base (as::make-event-base :size 2)))
    (let ((a (as::registry-add base :a)) (b (as::registry-add base :b)) (c (as::registry-add base :c)))
      (is (= 3 (as:registry-live-count base)))
      (is (eq :b (as::registry-ref base b)))
      (as::registry-remove base b)
      (as::registry-remove base b)
      (is (= 2 (as:registry-live-count base)))
      (is (null (as::registry-ref base b)))
      (is (= b (as::registry-add base :d)))
      (is (eq :a (as::registry-ref base a)))
      (is (eq :c (as::registry-ref base c))))))
