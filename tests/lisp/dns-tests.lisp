;;;; dns-tests.lisp -- dns-lookup, dns-error, DNS settings, connecting by name.
;;;;
;;;; Every test that resolves a name not in /etc/hosts first points its loop
;;;; at a dnsmasq it started itself (WITH-DNS-SERVER) or at a loopback port
;;;; that never answers (WITH-SILENT-DNS-PORT): no query leaves the machine.
;;;; Even the /etc/hosts tests point the loop at a silent port, so a lookup
;;;; that wrongly went to DNS would fail instead of asking the system's resolver.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defun expect-no-dns-error (c)
  (fail "unexpected event: ~A" c)
  (finish-test))

(test dns-lookup-a-and-aaaa-answers
  (with-dns-server (port)
    (let ((results '()) (pending 5))
      (flet ((got (tag)
               (lambda (&rest args)
                 (push (cons tag args) results)
                 (when (zerop (decf pending)) (done)))))
        (with-test-loop ()
          (as:set-dns-servers (dns-address port))
          ;; cl-async's documented positional event-cb ...
          (as:dns-lookup "test.example" (got :a) #'expect-no-dns-error :family as:+af-inet+)
          ;; ... and newer cl-async's :event-cb keyword.
          (as:dns-lookup "test.example" (got :aaaa) :event-cb #'expect-no-dns-error
                                                    :family as:+af-inet6+)
          (as:dns-lookup "test.example" (got :unspec) nil)
          (as:dns-lookup-all "test.example" (got :all) #'expect-no-dns-error)
          (as:dns-lookup-all "multi.example" (got :multi) :event-cb #'expect-no-dns-error)))
      (is (= 0 pending))
      (is (equal '("127.0.0.1" 2) (rest (assoc :a results))))
      (is (equal '("::1" 10) (rest (assoc :aaaa results))))
      (is (equal (list "127.0.0.1" as:+af-inet+) (rest (assoc :unspec results)))
          "unspec gives IPv4 first")
      (is (equal '((("127.0.0.1" 2) ("::1" 10))) (rest (assoc :all results))))
      (is (equal '(("127.0.0.2" 2) ("127.0.0.3" 2))
                 (sort (copy-list (second (assoc :multi results))) #'string< :key #'first))))))

(test dns-nxdomain-and-nodata-are-dns-errors
  (with-dns-server (port)
    (let ((errors '()) (default-got nil) (resolved nil))
      (with-test-loop (:default-event-cb (lambda (c) (setf default-got c) (done)))
        (as:set-dns-servers (dns-address port))
        (as:dns-lookup "nope.example" (lambda (&rest r) (setf resolved r))
                       (lambda (c) (push (cons :nx c) errors)))
        (as:dns-lookup "v4.example" (lambda (&rest r) (setf resolved r))
                       :event-cb (lambda (c) (push (cons :nodata c) errors))
                       :family as:+af-inet6+)
        ;; No event-cb: *default-event-handler* (here :default-event-cb) gets it.
        (as:dns-lookup "also-nope.example" (lambda (&rest r) (setf resolved r)) nil))
      (is (null resolved))
      (let ((nx (cdr (assoc :nx errors)))
            (nodata (cdr (assoc :nodata errors))))
        (is (typep nx 'as:dns-error))
        (is (typep nx 'as:event-error))
        (is (= cltcp:+enotfound+ (as:event-errcode nx)))
        (is (string= "ENOTFOUND" (as:event-errname nx)))
        (is (string= "nope.example" (as:dns-error-host nx)))
        (is (search "nope.example" (princ-to-string nx)))
        (is (typep nodata 'as:dns-error))
        (is (= cltcp:+enodata+ (as:event-errcode nodata))))
      (is (typep default-got 'as:dns-error))
      (is (= cltcp:+enotfound+ (as:event-errcode default-got))))))

(test dns-unreachable-server-times-out-as-configured
  (with-silent-dns-port (port)
    (let ((error nil) (elapsed nil) (start (now)))
      (with-test-loop (:timeout 20)
        (as:set-dns-servers (dns-address port))
        (as:set-dns-timeout 0.5 1)
        (as:dns-lookup "test.example" (lambda (&rest r) (fail "resolved: ~S" r))
                       (lambda (c) (setf error c elapsed (- (now) start)) (done))))
      (is (typep error 'as:dns-error))
      (is (= cltcp:+ednstimeout+ (as:event-errcode error)))
      (is (string= "EDNSTIMEOUT" (as:event-errname error)))
      ;; c-ares keeps its own clock, in ms: allow that and NOW's granularity.
      (is (and elapsed (<= (- 0.5 0.002 +clock-slack+) elapsed (+ 0.5 +late-slack+)))
          "timed out after ~A s, configured 0.5 s" elapsed))))

(test dns-localhost-and-literals-need-no-server
  (with-silent-dns-port (port)
    (let ((results '()))
      (flet ((got (&rest result)
               (push result results)
               (when (= 3 (length results)) (done))))
        (with-test-loop (:timeout 5)
          ;; A wrong trip to DNS would time out here instead of answering.
          (as:set-dns-servers (dns-address port))
          (as:set-dns-timeout 0.5 1)
          (as:dns-lookup "localhost" (lambda (a f) (got :localhost a f))
                         #'expect-no-dns-error :family as:+af-inet+)
          (as:dns-lookup "127.0.0.1" (lambda (a f) (got :v4 a f))
                         #'expect-no-dns-error)
          (as:dns-lookup-all "::1" (lambda (l) (got :v6 l))
                             #'expect-no-dns-error)))
      (is (equal '("127.0.0.1" 2) (rest (assoc :localhost results))))
      (is (equal '("127.0.0.1" 2) (rest (assoc :v4 results))))
      (is (equal '((("::1" 10))) (rest (assoc :v6 results)))))))

(test tcp-connect-by-a-name-from-the-test-server
  (with-dns-server (port)
    (let ((received '()) (connected nil) (bad-name-error nil))
      (with-test-loop ()
        (as:set-dns-servers (dns-address port))
        (let* ((server (echo-server))
               (server-port (as:tcp-server-port server)))
          (as:tcp-connect "v4.example" server-port
                          (lambda (socket data)
                            (push data received)
                            (when (>= (reduce #'+ received :key #'length) 11)
                              (as:close-socket socket)
                              (as:close-tcp-server server)
                              (done)))
                          #'expect-no-dns-error
                          :connect-cb (lambda (s) (declare (ignore s)) (setf connected t))
                          :data "hello, name")
          ;; A name that does not exist reaches the socket's event-cb as a dns-error.
          (as:tcp-connect "nope.example" server-port
                          (lambda (s d) (declare (ignore s d)) (fail "read on a bad name"))
                          :event-cb (lambda (c) (setf bad-name-error c)))))
      (is-true connected)
      (is (string= "hello, name" (text (concat-octets (reverse received)))))
      (is (typep bad-name-error 'as:dns-error))
      (is (typep bad-name-error 'as:tcp-error))
      (is (and bad-name-error (= cltcp:+enotfound+ (as:event-errcode bad-name-error)))))))

(test tcp-server-bound-to-localhost
  (let ((reply nil) (address nil))
    (with-test-loop ()
      (let* ((server (echo-server :bind "localhost"))
             (port (as:tcp-server-port server)))
        (setf address (as:tcp-server-address server))
        (as:tcp-connect "127.0.0.1" port
                        (one-reply server (lambda (data) (setf reply (text data))))
                        #'expect-no-dns-error
                        :data "ping")))
    (is (equal "127.0.0.1" address))
    (is (equal "ping" reply))))

(test dns-thousand-lookups-in-flight
  (with-dns-server (port)
    (let ((answers 0) (wrong '()) (errors '()) (in-flight nil) (start nil) (elapsed nil))
      (with-test-loop (:timeout 20)
        (as:set-dns-servers (dns-address port))
        (let ((before (as:registry-live-count)))
          (setf start (now))
          (dotimes (i 1000)
            (let ((name (format nil "n~D.bulk.example" i)))
              (as:dns-lookup name
                             (lambda (address family)
                               (unless (and (equal address "127.0.0.1") (= family as:+af-inet+))
                                 (push (list name address family) wrong))
                               (when (= 1000 (incf answers))
                                 (setf elapsed (- (now) start))
                                 (done)))
                             (lambda (c) (push c errors) (finish-test))
                             :family as:+af-inet+)))
          (setf in-flight (- (as:registry-live-count) before))))
      (is (= 1000 in-flight) "all 1,000 lookups are pending at once")
      (is (= 1000 answers))
      (is (null wrong) "wrong answers: ~S" (subseq wrong 0 (min 5 (length wrong))))
      (is (null errors) "errors: ~S" (subseq errors 0 (min 5 (length errors))))
      (when elapsed
        (format t "~&  1000 parallel lookups answered in ~,2F s~%" elapsed)))))

(test dns-exit-event-loop-with-lookups-pending-leaks-nothing
  (with-silent-dns-port (port)
    (let ((called 0) (before nil) (during nil))
      (with-test-loop (:timeout 5)
        (as:set-dns-servers (dns-address port))
        (setf before (as:registry-live-count))
        (dotimes (i 100)
          (as:dns-lookup (format nil "n~D.example" i)
                         (lambda (&rest r) (declare (ignore r)) (incf called))
                         (lambda (c) (declare (ignore c)) (incf called))))
        (setf during (as:registry-live-count))
        (as:delay (lambda () (finish-test)) :time 0.1))
      ;; WITH-TEST-LOOP checks that the registry is empty after the loop.
      (is (= (+ before 100) during))
      (is (= 0 called) "no callback runs after exit-event-loop"))))

(test dns-cancel-frees-everything-and-calls-nothing
  (with-silent-dns-port (port)
    (let ((called 0) (before nil) (after nil))
      (with-test-loop (:timeout 5)
        (as:set-dns-servers (dns-address port))
        ;; A cancelled query stays with c-ares until it times out and keeps
        ;; the loop alive until then (libcltcp), so keep that short.
        (as:set-dns-timeout 0.5 1)
        (setf before (as:registry-live-count))
        (let ((requests (loop for i below 50
                              collect (as:dns-lookup (format nil "c~D.example" i)
                                                     (lambda (&rest r) (declare (ignore r))
                                                       (incf called))
                                                     (lambda (c) (declare (ignore c))
                                                       (incf called))))))
          (dolist (r requests) (as:cancel-dns-lookup r))
          (dolist (r requests) (as:cancel-dns-lookup r)) ; idempotent
          (as:delay (lambda ()
                      (setf after (as:registry-live-count))
                      (done))
                    :time 0.2)))
      ;; The delay that looks is itself registered while it runs.
      (is (eql (1+ before) after))
      (is (= 0 called)))))

(test dns-socket-closed-while-its-lookup-is-pending
  (with-silent-dns-port (port)
    (let ((events '()))
      (with-test-loop (:timeout 5)
        (as:set-dns-servers (dns-address port))
        ;; A cancelled query stays with c-ares until it times out and keeps
        ;; the loop alive until then (libcltcp), so keep that short.
        (as:set-dns-timeout 0.5 1)
        (let ((socket (as:tcp-connect "test.example" 9
                                      (lambda (s d) (declare (ignore s d)) (push :read events))
                                      (lambda (c) (push c events)))))
          (as:delay (lambda ()
                      (as:close-socket socket)
                      (as:delay #'done :time 0.2))
                    :time 0.05)))
      ;; The loop ended by itself: the socket and its lookup are gone.
      (is (null events) "events after close: ~S" events))))

(test dns-settings-validate-their-arguments
  (with-dns-server (port)
    (let ((bad-list nil) (busy nil) (bad-timeout nil) (bad-family nil) (ok nil))
      (with-test-loop ()
        (handler-case (as:set-dns-servers "not a server list")
          (as:dns-error (c) (setf bad-list c)))
        (handler-case (as:set-dns-timeout 0)
          (type-error (c) (setf bad-timeout c)))
        (handler-case (as:dns-lookup "test.example" nil nil :family 99)
          (type-error (c) (setf bad-family c)))
        ;; A list of (host port) works as well as a string.
        (as:set-dns-servers (list (list "127.0.0.1" port)))
        (as:set-dns-timeout 2 1)
        (as:dns-lookup "test.example"
                       (lambda (a f) (declare (ignore f)) (setf ok a) (done))
                       #'expect-no-dns-error :family as:+af-inet+)
        (handler-case (as:set-dns-servers (dns-address port))
          (as:dns-error (c) (setf busy c))))
      (is (typep bad-list 'as:dns-error))
      (is (and bad-list (string= "EDNSCONFIG" (as:event-errname bad-list))))
      (is (typep bad-timeout 'type-error))
      (is (typep bad-family 'type-error))
      (is (typep busy 'as:dns-error) "changing servers with a lookup in flight")
      (is (and busy (string= "EBUSY" (as:event-errname busy))))
      (is (equal "127.0.0.1" ok)))))

(test dns-errors-in-resolve-cb-are-routed
  (with-dns-server (port)
    ;; With :catch-app-errors, an error in the resolve-cb reaches the lookup's event-cb.
    (let ((caught nil))
      (with-test-loop (:catch-app-errors t)
        (as:set-dns-servers (dns-address port))
        (as:dns-lookup "test.example"
                       (lambda (a f) (declare (ignore a f)) (error "boom in resolve-cb"))
                       (lambda (c) (setf caught c) (done))))
      (is (typep caught 'simple-error))
      (is (search "boom" (princ-to-string caught))))
    ;; Without it, the error comes out of start-event-loop (and nothing leaks).
    (let ((base nil))
      (signals simple-error
        (as:start-event-loop
         (lambda ()
           (setf base as:*event-base*)
           (as:set-dns-servers (dns-address port))
           (as:dns-lookup "test.example"
                          (lambda (a f) (declare (ignore a f)) (error "boom"))
                          nil))))
      (is (= 0 (as:registry-live-count base))))))

(test dns-lookup-needs-a-running-loop
  (signals error (as:dns-lookup "localhost" (lambda (a f) (declare (ignore a f))) nil)))

(test dns-nul-in-host-is-a-bad-name
  (with-silent-dns-port (port)
    (let ((error nil))
      (with-test-loop (:timeout 5)
        (as:set-dns-servers (dns-address port))
        (as:dns-lookup (format nil "local~Chost" (code-char 0))
                       (lambda (&rest r) (fail "resolved ~S" r))
                       (lambda (c) (setf error c) (done))))
      (is (typep error 'as:dns-error))
      (is (and error (= cltcp:+ebadname+ (as:event-errcode error)))))))
