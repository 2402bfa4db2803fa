;;;; reverse-dns-tests.lisp -- reverse-dns-lookup against /etc/hosts and the
;;;; test dnsmasq (issue 10; cl-async's dns.md).  Every loop is pointed at the
;;;; test server first: no query leaves loopback.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defparameter *reverse-records*
  (append *dns-records*
          ;; --host-record makes dnsmasq answer the PTR queries too.
          '("--host-record=rev4.example,10.1.2.3"
            "--host-record=rev6.example,fd00::1234"
            ;; Other private addresses: NXDOMAIN, not "refused".
            "--bogus-priv"))
  "The test server's records plus some for reverse lookups.")

(defun hosts-file-name (address)
  "The first name /etc/hosts gives ADDRESS, or NIL."
  (with-open-file (s "/etc/hosts" :if-does-not-exist nil)
    (when s
      (loop for line = (read-line s nil)
            while line
            do (let* ((line (subseq line 0 (or (position #\# line) (length line))))
                      (words (remove "" (uiop:split-string line :separator '(#\Space #\Tab))
                                     :test #'string=)))
                 (when (and (rest words) (string= (first words) address))
                   (return (second words))))))))

(defun reverse-lookup (server-port address)
  "Reverse-look ADDRESS up in a loop of its own; (values host service error)."
  (let (host service err)
    (with-test-loop ()
      (as:set-dns-servers (dns-address server-port))
      (as:reverse-dns-lookup address
                             (lambda (h s) (setf host h service s) (done))
                             :event-cb (lambda (e) (setf err e) (done))))
    (values host service err)))

(test reverse-dns-lookup-ipv4-and-ipv6-from-the-test-server
  (with-dns-server (port :records *reverse-records*)
    (multiple-value-bind (host service err) (reverse-lookup port "10.1.2.3")
      (is (equal "rev4.example" host) "error: ~A" err)
      (is (equal "0" service)))
    (multiple-value-bind (host service err) (reverse-lookup port "fd00::1234")
      (is (equal "rev6.example" host) "error: ~A" err)
      (is (equal "0" service)))))

(test reverse-dns-lookup-reads-etc-hosts-first
  "/etc/hosts first: whatever it names 127.0.0.1 (Debian: localhost).  With no
entry there (run-tests also runs the suite with an empty /etc/hosts), the answer
comes from the test server, whose first host-record for 127.0.0.1 is test.example."
  (let ((expected (or (hosts-file-name "127.0.0.1") "test.example")))
    (with-dns-server (port :records *reverse-records*)
      (multiple-value-bind (host service err) (reverse-lookup port "127.0.0.1")
        (declare (ignore service))
        (is (equal expected host) "error: ~A" err)))))

(test reverse-dns-lookup-failures-are-dns-errors
  (with-dns-server (port :records *reverse-records*)
    (multiple-value-bind (host service err) (reverse-lookup port "10.9.9.9")
      (declare (ignore service))
      (is (null host))
      (is (typep err 'as:dns-error))
      (is (equal "ENOTFOUND" (as:event-errname err)))
      (is (equal "10.9.9.9" (as:dns-error-host err)))
      ;; The printed name is the documented class, not an internal one.
      (is (search "DNS-ERROR" (princ-to-string err)))
      (is (search "DNS-ERROR" (prin1-to-string err)))
      (is (not (search "%DNS" (prin1-to-string err)))))
    ;; Not a numeric address: a dns-error too, on a later turn.
    (let ((err nil) (returned nil))
      (with-test-loop ()
        (as:set-dns-servers (dns-address port))
        (setf returned (as:reverse-dns-lookup "not-an-address"
                                              (lambda (&rest r) (fail "resolved: ~S" r))
                                              (lambda (e) (setf err e) (done))))
        (is (null err)))                 ; not from inside the call
      (is-true returned)
      (is (typep err 'as:dns-error))
      (is (equal "EBADNAME" (as:event-errname err))))
    (with-test-loop ()
      (signals type-error (as:reverse-dns-lookup 10 (lambda (h s) (list h s))))
      (done))))

(test forward-dns-failure-prints-as-dns-error
  (with-dns-server (port)
    (let ((err nil))
      (with-test-loop ()
        (as:set-dns-servers (dns-address port))
        (as:dns-lookup "nope.example" (lambda (&rest r) (fail "resolved ~S" r))
                       (lambda (e) (setf err e) (done))))
      (is (typep err 'as:dns-error))
      (is (search "DNS-ERROR" (princ-to-string err)))
      (is (not (search "%DNS" (princ-to-string err))))
      (is (not (search "%DNS" (prin1-to-string err)))))))

(test reverse-lookups-are-counted-and-cancellable
  (with-silent-dns-port (port)
    (let ((called nil) (counts '()))
      (with-test-loop ()
        (as:set-dns-servers (dns-address port))
        (let ((r (as:reverse-dns-lookup "10.4.4.4" (lambda (h s) (setf called (list h s)))
                                        :event-cb (lambda (e) (setf called e)))))
          (push (getf (as:stats) :open-dns-queries) counts)
          (as:cancel-dns-lookup r)
          (push (getf (as:stats) :open-dns-queries) counts)
          (as:delay #'done :time 0.05)))
      (is (equal '(1 0) (reverse counts)))
      (is (null called)))))
