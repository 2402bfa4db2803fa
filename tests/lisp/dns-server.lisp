;;;; dns-server.lisp -- a real DNS server for the DNS tests, on loopback only.
;;;;
;;;; WITH-DNS-SERVER starts Debian's dnsmasq in the foreground on 127.0.0.1
;;;; and a free port, with fixed records and no upstream (--no-resolv), waits
;;;; until it answers a query, and kills it afterwards.  WITH-SILENT-DNS-PORT
;;;; binds a loopback UDP port that never answers: the "unreachable server".
;;;; No DNS query of the suite ever leaves loopback: every test that resolves
;;;; a name not in /etc/hosts points its loop at one of these first.

(in-package #:cl-async-tcp-test)

(defparameter *dnsmasq* "/usr/sbin/dnsmasq")

(defparameter *dns-records*
  '("--host-record=test.example,127.0.0.1,::1"
    "--host-record=v4.example,127.0.0.1"
    "--host-record=v6.example,::1"
    "--host-record=multi.example,127.0.0.2"
    "--host-record=multi.example,127.0.0.3"
    ;; Every name under bulk.example is 127.0.0.1 (the 1,000-lookups test).
    "--address=/bulk.example/127.0.0.1"
    ;; Authoritative for example: other names there get NXDOMAIN.
    "--local=/example/")
  "The records of the test server.")

(defun udp-socket (&optional (port 0))
  "A UDP socket bound to 127.0.0.1:PORT (usocket)."
  (usocket:socket-connect nil nil :protocol :datagram
                                  :local-host "127.0.0.1" :local-port port
                                  :element-type '(unsigned-byte 8)))

(defun port-free-p (port)
  "True when 127.0.0.1:PORT can be bound for UDP and for TCP (dnsmasq needs both)."
  (flet ((try (make)
           (let ((socket (handler-case (funcall make) (error () nil))))
             (when socket
               (usocket:socket-close socket)
               t))))
    (and (try (lambda () (udp-socket port)))
         (try (lambda () (usocket:socket-listen "127.0.0.1" port :reuse-address nil))))))

(defvar *port-random-state* (make-random-state t))

(defun free-dns-port ()
  "A loopback port free for UDP and TCP a moment ago.  It is taken below the
kernel's ephemeral range (32768 and up), where the suite's many short TCP
connections leave ports in TIME_WAIT that a UDP-only check would miss."
  (loop for port = (+ 20000 (random 12000 *port-random-state*))
        when (port-free-p port) do (return port)))

(defun dns-query-packet (name &optional (qtype 1))
  "A DNS query (id #x4242, recursion desired) for NAME, type QTYPE (1 = A)."
  (let ((bytes (list #x42 #x42 #x01 #x00 0 1 0 0 0 0 0 0)))
    (dolist (label (uiop:split-string name :separator "."))
      (setf bytes (append bytes (list (length label)) (map 'list #'char-code label))))
    (coerce (append bytes (list 0 0 qtype 0 1)) '(vector (unsigned-byte 8)))))

(defun dns-server-answers-p (port &key (timeout 0.2))
  "True when a DNS server on 127.0.0.1:PORT answers a query for test.example."
  (let ((s (udp-socket)))
    (unwind-protect
         (let ((query (dns-query-packet "test.example")))
           (usocket:socket-send s (coerce query '(simple-array (unsigned-byte 8) (*)))
                                (length query) :host "127.0.0.1" :port port)
           (and (usocket:wait-for-input s :timeout timeout :ready-only t)
                (let ((buffer (make-array 512 :element-type '(unsigned-byte 8))))
                  (multiple-value-bind (buf len) (usocket:socket-receive s buffer 512)
                    (declare (ignore buf))
                    (and len (>= len 12) (= (aref buffer 0) #x42) (= (aref buffer 1) #x42))))))
      (usocket:socket-close s))))

(defun stop-dns-server (process)
  (when (uiop:process-alive-p process)
    (uiop:terminate-process process)
    (uiop:wait-process process))
  (uiop:close-streams process))

(defun start-dns-server (&key (records *dns-records*))
  "Start dnsmasq on 127.0.0.1 and a free port; return (values process port)
once it answers.  A port taken in between makes it try another one."
  (unless (probe-file *dnsmasq*)
    (error "DNS tests need ~A (Debian package dnsmasq-base)." *dnsmasq*))
  (loop repeat 20
        do (let* ((port (free-dns-port))
                  ;; Under timeout(1): should this SBCL be killed before it
                  ;; can stop dnsmasq, dnsmasq still ends within 10 minutes.
                  ;; Killing timeout (SIGTERM) passes the signal on.
                  (process (uiop:launch-program
                            (append (list "/usr/bin/timeout" "600" *dnsmasq*
                                          "--no-daemon" "--no-resolv" "--no-hosts"
                                          "--bind-interfaces" "--listen-address=127.0.0.1"
                                          (format nil "--port=~D" port)
                                          "--user=root" "--pid-file=")
                                    records)
                            :input nil :output nil :error-output nil)))
             (loop repeat 100            ; 5 s
                   while (uiop:process-alive-p process)
                   when (dns-server-answers-p port :timeout 0.05)
                     do (return-from start-dns-server (values process port))
                   do (sleep 0.05))
             (stop-dns-server process)))
  (error "could not start ~A on a loopback port" *dnsmasq*))

(defmacro with-dns-server ((port-var &rest options) &body body)
  "Run BODY with a dnsmasq answering on 127.0.0.1:PORT-VAR; kill it afterwards."
  (let ((process (gensym "DNSMASQ")))
    `(multiple-value-bind (,process ,port-var) (start-dns-server ,@options)
       (unwind-protect (progn ,@body)
         (stop-dns-server ,process)))))

(defmacro with-silent-dns-port ((port-var) &body body)
  "Run BODY with PORT-VAR a loopback UDP port that is bound but never answers."
  (let ((socket (gensym "SOCKET")))
    `(let* ((,socket (udp-socket))
            (,port-var (usocket:get-local-port ,socket)))
       (unwind-protect (progn ,@body)
         (usocket:socket-close ,socket)))))

(defun dns-address (port)
  "The SET-DNS-SERVERS string for a server on 127.0.0.1:PORT."
  (format nil "127.0.0.1:~D" port))
