;;;; condition-tests.lisp -- both vocabularies, codes, names, sockets.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defun check-event-condition (c socket name &rest types)
  (dolist (type types)
    (is (typep c type) "~A is not a ~A" (type-of c) type))
  (is (eq socket (as:tcp-socket c)))
  (is (eq socket (as:socket c)))
  (is (integerp (as:event-errcode c)))
  (is (equal name (as:event-errname c)))
  (is (stringp (as:event-errmsg c)))
  (is (stringp (princ-to-string c))))

(test refused-is-both-names-and-carries-the-socket
  (let ((c nil) (socket nil))
    (with-test-loop ()
      (setf socket (as:tcp-connect "127.0.0.1" (closed-port) (lambda (s d) (declare (ignore s d)))
                                   (lambda (e) (setf c e) (done)))))
    (check-event-condition c socket "ECONNREFUSED"
                           'as:tcp-refused 'as:socket-refused 'as:tcp-error 'as:socket-error
                           'as:event-error 'as:tcp-info 'as:socket-info 'as:event-info 'error)
    (is-true (as:socket-closed-p socket))))

(test unhandled-refused-leaves-start-event-loop-on-either-name
  (dolist (name '(as:tcp-refused as:socket-refused as:tcp-error as:event-error))
    (let ((caught nil))
      (handler-case
          (with-test-loop ()
            (as:tcp-connect "127.0.0.1" (closed-port) (lambda (s d) (declare (ignore s d))) nil))
        (error (c) (when (typep c name) (setf caught c))))
      (is (typep caught name) "handler on ~A did not fire" name))))

(test handler-bind-on-documented-name-fires
  ;; cl-async's tcp-* names are subclasses it never signals; ours fire.
  (let ((fired '()))
    (ignore-errors
     (handler-bind ((as:tcp-refused (lambda (c) (declare (ignore c)) (push :tcp fired)))
                    (as:socket-refused (lambda (c) (declare (ignore c)) (push :socket fired))))
       (as:start-event-loop
        (lambda ()
          (as:tcp-connect "127.0.0.1" (closed-port) (lambda (s d) (declare (ignore s d))) nil)))))
    (is (member :tcp fired))
    (is (member :socket fired))))

(test bind-to-used-port-is-bind-error-and-address-in-use
  (let ((c nil) (server nil))
    (with-test-loop ()
      (setf server (echo-server))
      (handler-case (as:tcp-server "127.0.0.1" (as:tcp-server-port server)
                                   (lambda (s d) (declare (ignore s d))) nil)
        (as:tcp-server-bind-error (e) (setf c e)))
      (as:close-tcp-server server)
      (done))
    (is (typep c 'as:tcp-server-bind-error))
    (is (typep c 'as:socket-address-in-use))
    (is (typep c 'as:tcp-error))
    (is (equal "EADDRINUSE" (as:event-errname c)))
    (is (typep (as:tcp-socket c) 'as:tcp-server))))

(test bind-errors-caught-by-cl-async-name
  (let ((caught nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (handler-case (as:tcp-server "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s d) (declare (ignore s d))) nil)
          (as:socket-address-in-use () (setf caught t)))
        (as:close-tcp-server server)
        (done)))
    (is-true caught)))

(test eof-is-both-names
  (let ((c nil) (socket nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                                   :connect-cb (lambda (s) (as:close-socket s)))))
        (setf socket (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s d) (declare (ignore s d)))
                                     (lambda (e)
                                       (setf c e)
                                       (as:close-tcp-server server)
                                       (done))))))
    (check-event-condition c socket "EOF" 'as:tcp-eof 'as:socket-eof 'as:tcp-info 'as:socket-info)
    (is-false (typep c 'error))
    (is-true (as:socket-closed-p socket))))

(test timeout-is-both-names
  (let ((c nil) (socket nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (setf socket (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s d) (declare (ignore s d)))
                                     (lambda (e)
                                       (setf c e)
                                       (as:close-tcp-server server)
                                       (done))
                                     :read-timeout 0.1))))
    (check-event-condition c socket "ETIMEDOUT" 'as:tcp-timeout 'as:socket-timeout 'as:tcp-error)))

(test reset-is-both-names
  ;; The server closes with unread bytes in its receive buffer: the kernel
  ;; answers with RST, the client reads ECONNRESET.
  ;; The server closes once it has accepted AND the client's bytes have left
  ;; the client (they are then in the server's receive buffer): an order of
  ;; events, not a delay that a busy machine could outrun.
  (let ((c nil) (socket nil) (accepted nil) (written nil))
    (with-test-loop ()
      (flet ((maybe-close ()
               (when (and accepted written)
                 (as:close-socket accepted :force t))))
        (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                                     :connect-cb (lambda (s)
                                                   (as:disable-socket s :read t)
                                                   (setf accepted s)
                                                   (maybe-close)))))
          (setf socket (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                       (lambda (s d) (declare (ignore s d)))
                                       (lambda (e)
                                         (setf c e)
                                         (as:close-tcp-server server)
                                         (done))
                                       :connect-cb
                                       (lambda (s)
                                         (as:write-socket-data
                                          s "unread bytes"
                                          :write-cb (lambda (s)
                                                      (declare (ignore s))
                                                      (setf written t)
                                                      (maybe-close)))))))))
    (check-event-condition c socket "ECONNRESET" 'as:tcp-reset 'as:socket-reset 'as:tcp-error)))

(test every-code-keeps-socket-code-and-name
  (let ((socket :some-socket))
    (loop for code in (list -1 -5 -22 -104 -110 -111 -125 cltcp:+eclosed+ cltcp:+estate+
                            cltcp:+enotfound+ cltcp:+ednstimeout+ -12345 -4095)
          do (let ((c (as::make-event-condition code socket)))
               (is (eq socket (as:tcp-socket c)))
               (is (eq socket (as:socket c)))
               (is (= code (as:event-errcode c)))
               (is (stringp (as:event-errname c)))
               (is (stringp (as:event-errmsg c)))
               (is (typep c 'as:tcp-info))
               (is (typep c 'as:socket-info))))))

(test dns-codes-map-to-dns-error
  (let ((c (as::make-event-condition cltcp:+enotfound+ :s)))
    (is (typep c 'as:dns-error))
    (is (typep c 'as:event-error))
    (is (typep c 'as:tcp-error))
    (is (equal "ENOTFOUND" (as:event-errname c)))))

(test aborted-and-accept-error-classes
  (let ((c (as::make-event-condition (as:error-code "ECONNABORTED" -103) :s)))
    (is (typep c 'as:socket-aborted))
    (is (typep c 'as:tcp-error)))
  (let ((c (make-condition 'as::%accept-error :code -24 :socket :srv :listener 7 :tcp-server :srv)))
    (is (typep c 'as:tcp-accept-error))
    (is (typep c 'as:socket-accept-error))
    (is (eql 7 (as::tcp-accept-error-listener c)))
    (is (eq :srv (as:tcp-accept-error-tcp-server c)))))

;;; The mapping is extensible: a program's EQL method on CODE-CONDITION-CLASS
;;; decides what the library delivers.
(define-condition my-refused (as:tcp-refused) ())

(test a-user-mapping-of-a-code-is-used
  (let* ((gf #'as:code-condition-class)
         (code (as:error-code "ECONNREFUSED"))
         ;; The library's own method for the code (the most specific one),
         ;; which the program's replaces.
         (library-method (first (compute-applicable-methods gf (list code :socket))))
         (method (eval `(defmethod as:code-condition-class ((code (eql ,code))
                                                            (context (eql :socket)))
                          'my-refused)))
         (c nil) (socket nil))
    (is-true library-method)
    (unwind-protect
         (with-test-loop ()
           (setf socket (as:tcp-connect "127.0.0.1" (closed-port)
                                        (lambda (s d) (declare (ignore s d)))
                                        (lambda (e) (setf c e) (done)))))
      (remove-method gf method)
      (when library-method (add-method gf library-method)))
    (is (typep c 'my-refused))
    (is (eq socket (as:tcp-socket c)))
    (is (= code (as:event-errcode c)))
    ;; Gone again: the library's own class.
    (is (eq 'as::%refused (as:code-condition-class code :socket)))))
