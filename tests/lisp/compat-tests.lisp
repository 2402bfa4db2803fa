;;;; compat-tests.lisp -- what programs written for cl-async itself rely on
;;;; (issue 10): the start function's error policy, init-tcp-socket's :data,
;;;; subclassable classes and generic functions, the rest of cl-async's names.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

;;; ---- the start function runs under the callback error policy ----

(test start-fn-error-goes-to-default-event-cb-with-catch-app-errors
  (let ((caught '()) (later nil))
    (is (eql 0 (as:start-event-loop
                (lambda ()
                  (as:delay (lambda () (setf later t)))
                  (error "boom in start-fn"))
                :catch-app-errors t
                :default-event-cb (lambda (c) (push c caught)))))
    (is (= 1 (length caught)))
    (is (typep (first caught) 'simple-error))
    (is (search "boom in start-fn" (princ-to-string (first caught))))
    ;; The loop went on: what start-fn set up before the error still ran.
    (is-true later)))

(test start-fn-error-goes-to-catch-app-errors-function
  (let ((caught '()) (default-called nil))
    (is (eql 0 (as:start-event-loop
                (lambda () (error "start-fn fails"))
                :catch-app-errors (lambda (c) (push c caught))
                :default-event-cb (lambda (c) (setf default-called c)))))
    (is (= 1 (length caught)))
    (is (search "start-fn fails" (princ-to-string (first caught))))
    (is-false default-called)))

(test start-fn-error-without-catch-has-the-callback-restarts
  ;; Without :catch-app-errors the error leaves START-EVENT-LOOP like any
  ;; callback's, with CONTINUE available: continuing keeps the loop running.
  (let ((seen nil) (later nil))
    (handler-case
        (handler-bind ((error (lambda (e)
                                (when (search "no catch" (princ-to-string e))
                                  (setf seen t)
                                  (let ((r (find-restart 'continue e)))
                                    (when r (invoke-restart r)))))))
          (as:start-event-loop (lambda ()
                                 (as:delay (lambda () (setf later t)) :time 0.01)
                                 (error "no catch in start-fn"))))
      ;; No CONTINUE restart: the error left the loop (today's main).
      (error () nil))
    (is-true seen)
    (is-true later)))

(test with-event-loop-start-body-errors-are-caught-too
  (let ((caught nil))
    (as:with-event-loop (:catch-app-errors t :default-event-cb (lambda (c) (setf caught c)))
      (error "body error"))
    (is (typep caught 'error))))

;;; ---- init-tcp-socket's :data is sent once connect-tcp-socket connects ----

(test init-tcp-socket-data-is-sent-on-connect
  (let ((got '()) (socket nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s data)
                                     (push (text data) got)
                                     (when (search "late" (apply #'concatenate 'string
                                                                 (reverse got)))
                                       (as:close-socket s)))
                                   :event-cb #'ignore-event)))
        (setf socket (as:init-tcp-socket (lambda (s d) (declare (ignore s d))) nil
                                         :data "first;"))
        ;; Nothing is connected yet; :data waits.  It is not socket-data.
        (is (null (as:socket-data socket)))
        (as:connect-tcp-socket socket "127.0.0.1" (as:tcp-server-port server)
                               :event-cb (lambda (ev)
                                           (declare (ignore ev))
                                           (unless (as:socket-closed-p socket)
                                             (as:close-socket socket))
                                           (as:close-tcp-server server)
                                           (done)))
        (as:write-socket-data socket "late")))
    (is (equal "first;late" (apply #'concatenate 'string (reverse got))))))

(test init-tcp-socket-octet-data-with-stream
  (let ((got nil))
    (with-test-loop ()
      (let* ((server (echo-server))
             (stream (as:init-tcp-socket
                      (lambda (s stream)
                        (let* ((buf (make-array 16 :element-type '(unsigned-byte 8)))
                               (n (read-sequence buf stream)))
                          (setf got (text (subseq buf 0 n)))
                          (as:close-socket s)
                          (as:close-tcp-server server)
                          (done)))
                      nil :stream t :data (octets "bytes"))))
        (is (typep stream 'as:async-io-stream))
        (as:connect-tcp-socket stream "127.0.0.1" (as:tcp-server-port server))))
    (is (equal "bytes" got))))

(test init-tcp-socket-bad-data-leaves-nothing-behind
  (let ((signalled nil))
    (with-test-loop ()
      (handler-case (as:init-tcp-socket (lambda (s d) (declare (ignore s d))) nil
                                        :data (list :not "data"))
        (error () (setf signalled t)))
      (done))
    (is-true signalled)))
