;;;; resource-tests.lisp -- running out of file descriptors while serving.
;;;;
;;;; The test lowers RLIMIT_NOFILE of this very process (through CFFI, so it
;;;; runs on any Lisp CFFI supports) and fills every free descriptor below
;;;; the new limit with /dev/null, so the server's accept() fails with
;;;; EMFILE.  Limit and descriptors are restored in UNWIND-PROTECT whatever
;;;; happens.  The clients that hit the full server are raw sockets made
;;;; before the descriptors run out (connect(2) needs no new descriptor).

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defconstant +rlimit-nofile+ 7 "RLIMIT_NOFILE on Linux.")

(defun %rlimit-nofile ()
  "The soft and hard RLIMIT_NOFILE, as two values."
  (cffi:with-foreign-object (lim :unsigned-long 2)
    (assert (zerop (cffi:foreign-funcall "getrlimit" :int +rlimit-nofile+
                                         :pointer lim :int)))
    (values (cffi:mem-aref lim :unsigned-long 0)
            (cffi:mem-aref lim :unsigned-long 1))))

(defun %set-rlimit-nofile (soft hard)
  (cffi:with-foreign-object (lim :unsigned-long 2)
    (setf (cffi:mem-aref lim :unsigned-long 0) soft
          (cffi:mem-aref lim :unsigned-long 1) hard)
    (assert (zerop (cffi:foreign-funcall "setrlimit" :int +rlimit-nofile+
                                         :pointer lim :int)))))

(defun %open-dev-null ()
  "A new descriptor on /dev/null (O_RDONLY | O_CLOEXEC), or -1."
  (cffi:foreign-funcall "open" :string "/dev/null" :int #o2000000 :int))

(defun %close-fd (fd)
  (cffi:foreign-funcall "close" :int fd :int))

(defun %exhaust-descriptors ()
  "Lower the soft limit to a little above the lowest free descriptor and fill
every free slot below it.  Returns the list of filler descriptors."
  (let ((probe (%open-dev-null)))
    (assert (>= probe 0))
    (%close-fd probe)
    (multiple-value-bind (soft hard) (%rlimit-nofile)
      (%set-rlimit-nofile (min soft (+ probe 24)) hard))
    (loop for fd = (%open-dev-null)
          for n from 0
          while (>= fd 0)
          collect fd
          do (assert (< n 64)))))

(defun %raw-socket ()
  "An unconnected IPv4 TCP socket (socket(2)), close-on-exec."
  (let ((fd (cffi:foreign-funcall "socket" :int 2 :int (logior 1 #o2000000)
                                  :int 0 :int)))
    (assert (>= fd 0))
    fd))

(defun %raw-connect (fd port)
  "Blocking connect of FD to 127.0.0.1:PORT; on loopback it completes in the
listener's backlog, whether the server accepts or not."
  (cffi:with-foreign-object (sin :uint8 16)
    (dotimes (i 16) (setf (cffi:mem-aref sin :uint8 i) 0))
    ;; sa_family (host order, AF_INET = 2), port and address in network order.
    (setf (cffi:mem-ref sin :uint16 0) 2
          (cffi:mem-aref sin :uint8 2) (ldb (byte 8 8) port)
          (cffi:mem-aref sin :uint8 3) (ldb (byte 8 0) port)
          (cffi:mem-aref sin :uint8 4) 127
          (cffi:mem-aref sin :uint8 7) 1)
    (assert (zerop (cffi:foreign-funcall "connect" :int fd :pointer sin
                                         :unsigned-int 16 :int)))))

;;; On ECL the test once saw descriptors freed under the lowered limit while
;;; it held them all (3 of its waiting clients accepted during the shortage,
;;; so two episodes were reported): the runtime closing descriptors of
;;; earlier tests' streams and child processes after a collection.  So the
;;; test first collects (SETTLE-DESCRIPTORS).  The behaviour is also proven
;;; in C (test_server.c accept_emfile_episode).
(defun settle-descriptors ()
  "Let the runtime close what it will close of itself -- descriptors of streams
and processes earlier tests dropped, closed by finalizers after a collection --
before the test takes every free descriptor: one closed during the shortage
would let an accept through."
  #+ecl (progn (ext:gc t) (ext:gc t) (sleep 0.1) (ext:gc t))
  #+sbcl (sb-ext:gc :full t)
  #+ccl (ccl:gc)
  nil)

(test accept-emfile-is-a-tcp-accept-error-once-per-episode
  "With no descriptor left, pending connections make the server's event-cb
get one tcp-accept-error naming EMFILE; an established connection still
echoes; once descriptors are free again a new connection is accepted and
served, and the error was reported once, not once per waiting client."
  (multiple-value-bind (soft hard) (%rlimit-nofile)
    (let ((accept-errors '()) (fillers '()) (raw '()) (echoed '())
          (error-count-after-wait nil) (accepts 0) (accepts-while-full nil)
          (old nil))
      (unwind-protect
           (with-test-loop (:timeout 30)
             (let* ((server (as:tcp-server
                             "127.0.0.1" 0
                             (lambda (socket data) (as:write-socket-data socket data))
                             ;; It also gets the accepted sockets' events
                             ;; (their EOFs at the end): only accept errors
                             ;; count.
                             :event-cb (lambda (c)
                                         (when (typep c 'as:tcp-accept-error)
                                           (push c accept-errors)
                                           ;; The established connection is
                                           ;; served during the shortage;
                                           ;; its echo starts the wait.
                                           (when (= 1 (length accept-errors))
                                             (as:write-socket-data old "two!"))))
                             :connect-cb (lambda (s) (declare (ignore s)) (incf accepts))))
                    (port (as:tcp-server-port server)))
               (labels ((release ()
                          (mapc #'%close-fd fillers)
                          (setf fillers '())
                          (%set-rlimit-nofile soft hard))
                        (finish (socket)
                          (as:close-socket socket)
                          (as:close-socket old)
                          (mapc #'%close-fd raw)
                          (setf raw '())
                          (as:close-tcp-server server)
                          (done))
                        (after-release ()
                          ;; A new connection is accepted and served.
                          (as:tcp-connect "127.0.0.1" port
                                          (lambda (socket data)
                                            (push (text data) echoed)
                                            (finish socket))
                                          #'ignore-event :data "new!"))
                        (wait-while-full ()
                          ;; A second of retries with the descriptors still
                          ;; gone: still one report.
                          (as:delay (lambda ()
                                      (setf error-count-after-wait (length accept-errors)
                                            accepts-while-full accepts)
                                      (release)
                                      (after-release))
                                    :time 1))
                        (exhaust ()
                          (settle-descriptors)
                          (setf raw (loop repeat 5 collect (%raw-socket)))
                          (setf fillers (%exhaust-descriptors))
                          (dolist (fd raw) (%raw-connect fd port))))
                 (setf old
                       (as:tcp-connect "127.0.0.1" port
                                       (lambda (socket data)
                                         (declare (ignore socket))
                                         (push (text data) echoed)
                                         (cond ((equal (text data) "one!")
                                                (exhaust))
                                               ((equal (text data) "two!")
                                                (wait-while-full))))
                                       #'ignore-event :data "one!")))))
        (mapc #'%close-fd fillers)
        (mapc #'%close-fd raw)
        (%set-rlimit-nofile soft hard))
      (is (= 1 (length accept-errors)) "accept errors: ~S" accept-errors)
      (let ((c (first accept-errors)))
        (is (typep c 'as:tcp-accept-error))
        (is (typep c 'as:socket-accept-error))
        (is (member (as:event-errname c) '("EMFILE" "ENFILE") :test #'equal)
            "code name ~S" (and c (as:event-errname c)))
        (is (typep (as:tcp-accept-error-tcp-server c) 'as:tcp-server)))
      (is (eql 1 error-count-after-wait))
      (is (eql 1 accepts-while-full) "accepted while full: ~S" accepts-while-full)
      (is (equal '("new!" "two!" "one!") echoed)))))
