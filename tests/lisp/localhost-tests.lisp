;;;; localhost-tests.lisp -- "localhost" and names under ".localhost" are
;;;; loopback (RFC 6761) in lookups, connects and binds, without any DNS
;;;; server.  Names under ".localhost" are in no hosts file, so these tests
;;;; exercise the library's own answer on every machine.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(test dot-localhost-names-resolve-to-loopback-without-a-server
  (with-silent-dns-port (port)
    (let ((results '()))
      (flet ((got (key)
               (lambda (&rest result)
                 (push (cons key result) results)
                 (when (= 3 (length results)) (done)))))
        (with-test-loop (:timeout 5)
          ;; A trip to the (silent) server would time out instead.
          (as:set-dns-servers (dns-address port))
          (as:set-dns-timeout 2 1)
          (as:dns-lookup "app.localhost" (got :v4) #'expect-no-dns-error
                         :family as:+af-inet+)
          (as:dns-lookup "App.LOCALHOST." (got :v6) #'expect-no-dns-error
                         :family as:+af-inet6+)
          (as:dns-lookup-all "x.y.localhost" (got :all) #'expect-no-dns-error)))
      (is (equal '("127.0.0.1" 2) (rest (assoc :v4 results))))
      (is (equal '("::1" 10) (rest (assoc :v6 results))))
      (is (equal '((("127.0.0.1" 2) ("::1" 10))) (rest (assoc :all results)))))))

(test tcp-server-and-connect-by-a-dot-localhost-name
  (with-silent-dns-port (port)
    (let ((reply nil) (address nil))
      (with-test-loop (:timeout 5)
        (as:set-dns-servers (dns-address port))
        (as:set-dns-timeout 2 1)
        (let* ((server (echo-server :bind "api.localhost"))
               (server-port (as:tcp-server-port server)))
          (setf address (as:tcp-server-address server))
          (as:tcp-connect "API.localhost." server-port
                          (one-reply server (lambda (data) (setf reply (text data))))
                          #'expect-no-dns-error
                          :data "ping")))
      (is (equal "127.0.0.1" address))
      (is (equal "ping" reply)))))
