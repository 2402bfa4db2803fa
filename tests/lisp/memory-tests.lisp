;;;; memory-tests.lisp -- what a connection costs the Lisp side (issue 12).
;;;;
;;;; A socket keeps its booleans in one fixnum of flags and its rarely set
;;;; fields in an extras structure made only when one is first set; a stream
;;;; makes its scratch vector on first use (lisp/objects.lisp, stream.lisp).
;;;; These tests hold the promise "nothing a connection does not use is
;;;; allocated for it" where it can be seen from Lisp -- the objects, not byte
;;;; counts, which are the implementation's -- and check that the packed
;;;; state still behaves like the slots it replaced, across CHANGE-CLASS too.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defclass memory-test-socket (as:tcp-socket)
  ((note :initform nil :accessor memory-test-note)))

(test an-accepted-socket-without-connect-cb-holds-no-extras
  "A server without a connect-cb: its sockets hold no extras until something
rare is set; a write-cb then makes them, runs, and close forgets it."
  (let ((extras-at-read :unset) (extras-after :unset) (write-cb-runs 0)
        (flags-at-read nil) (incoming nil) (reply nil))
    (with-test-loop ()
      (let* ((server nil)
             (client nil))
        (setf server
              (as:tcp-server "127.0.0.1" 0
                             (lambda (s data)
                               (setf extras-at-read (as::%sock-extras s)
                                     flags-at-read (list (as:socket-closed-p s)
                                                         (as::%sock-connected-p s)
                                                         (as::%sock-accepted-p s)
                                                         (as::%sock-keep-p s))
                                     incoming (stat :incoming-tcp-connections))
                               (as:write-socket-data
                                s data
                                :write-cb (lambda (s)
                                            (incf write-cb-runs)
                                            (setf extras-after (as::%sock-write-cb s))
                                            (as:close-socket s))))
                             :event-cb #'ignore-event))
        (setf client (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s data)
                                       (setf reply (text data))
                                       (as:close-socket s)
                                       (as:close-tcp-server server)
                                       (done))
                                     :event-cb #'ignore-event
                                     :data "ping"))
        (is (null (as::%sock-extras client)) "a client without connect-cb or write-cb made extras")
        (is-false (as::%sock-accepted-p client))))
    (is (null extras-at-read) "an idle accepted socket made extras: ~S" extras-at-read)
    (is (equal '(nil t t nil) flags-at-read))
    (is (eql 1 incoming))
    (is (= 1 write-cb-runs))
    (is (functionp extras-after))
    (is (equal "ping" reply))))

(test an-accepted-socket-of-a-server-with-connect-cb-holds-no-extras
  "The server's connect-cb runs for each connection, but the accepted socket
does not keep it: no extras, and STATS counts the function once, on the server."
  (let ((extras-in-connect :unset) (extras-at-read :unset) (connects 0)
        (base nil) (fns-with-server nil) (fns-with-socket nil) (reply nil))
    (with-test-loop ()
      (let* ((server nil))
        (setf base (stat :fn-registry-count))
        (setf server
              (as:tcp-server "127.0.0.1" 0
                             (lambda (s data)
                               (setf extras-at-read (as::%sock-extras s)
                                     fns-with-socket (- (stat :fn-registry-count) base))
                               (as:write-socket-data s data))
                             :event-cb #'ignore-event
                             :connect-cb (lambda (s)
                                           (incf connects)
                                           (setf extras-in-connect (as::%sock-extras s)))))
        (setf fns-with-server (- (stat :fn-registry-count) base))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (one-reply server (lambda (data) (setf reply (text data))))
                        :event-cb #'ignore-event
                        :data "ping")))
    (is (= 1 connects))
    (is (null extras-in-connect) "the accepted socket made extras: ~S" extras-in-connect)
    (is (null extras-at-read) "the accepted socket made extras: ~S" extras-at-read)
    ;; The server: read-cb, event-cb, connect-cb; then also the client and
    ;; the accepted socket: a read-cb and an event-cb each.
    (is (eql 3 fns-with-server))
    (is (eql 7 fns-with-socket))
    (is (equal "ping" reply))))

(test flags-and-extras-survive-change-class
  "CHANGE-CLASS of a live socket keeps its packed flags (unref, closed) and
its extras (write-cb)."
  (let ((seen nil) (flushed 0))
    (with-test-loop ()
      (let ((server (echo-server)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s data)
                          (declare (ignore data))
                          (as:close-socket s)
                          (push (list :closed (as:socket-closed-p s)) seen)
                          (as:close-tcp-server server)
                          (done))
                        :event-cb #'ignore-event
                        :write-cb (lambda (s) (declare (ignore s)) (incf flushed))
                        :connect-cb (lambda (s)
                                      (as:unref s)
                                      (change-class s 'memory-test-socket)
                                      (push (list :class (type-of s)
                                                  :refd (as::%handle-refd s)
                                                  :connected (as::%sock-connected-p s)
                                                  :write-cb (functionp (as::%sock-write-cb s)))
                                            seen)
                                      (as:ref s)
                                      (push (list :refd (as::%handle-refd s)) seen)
                                      (as:write-socket-data s "x")))))
    (is (equal '((:class memory-test-socket :refd nil :connected t :write-cb t)
                 (:refd t)
                 (:closed t))
               (reverse seen)))
    (is (= 1 flushed))))

(test a-stream-makes-its-byte-vector-on-first-use
  "A :stream t socket's stream: no scratch vector while only sequences move;
WRITE-BYTE makes it, and the byte arrives."
  (let ((before :unset) (after nil) (reply nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (s stream)
                                      (declare (ignore s))
                                      (let ((buffer (make-array 16 :element-type '(unsigned-byte 8))))
                                        (read-sequence buffer stream)
                                        (setf before (as::%stream-small-slot stream))
                                        (write-byte 33 stream)
                                        (setf after (as::%stream-small-slot stream))))
                                    :event-cb #'ignore-event :stream t)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s data)
                          (setf reply (coerce data 'list))
                          (as:close-socket s)
                          (as:close-tcp-server server)
                          (done))
                        :event-cb #'ignore-event
                        :data "hello")))
    (is (null before))
    (is (typep after '(simple-array (unsigned-byte 8) (4))))
    (is (equal '(33) reply))))

(test a-stream-socket-holds-its-stream-alone-until-it-needs-extras
  "An accepted :stream t socket holds its stream in place of the extras
structure; setting a write-cb makes the structure, the stream moves into it,
the write-cb runs and the stream still reads and writes."
  (let ((alone :unset) (same-stream nil) (extras-after :unset) (stream-after :unset)
        (write-cb-runs 0) (reply nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (s stream)
                                      (let ((buffer (make-array 16 :element-type '(unsigned-byte 8))))
                                        (setf alone (as::%sock-extras s)
                                              same-stream (eq stream (as::%sock-stream s)))
                                        (let ((n (read-sequence buffer stream)))
                                          (as:write-socket-data
                                           s (subseq buffer 0 n)
                                           :write-cb (lambda (s)
                                                       (incf write-cb-runs)
                                                       (as:close-socket s)))
                                          (setf extras-after (as::%sock-extras s)
                                                stream-after (as::%sock-stream s)))))
                                    :event-cb #'ignore-event :stream t)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (one-reply server (lambda (data) (setf reply (text data))))
                        :event-cb #'ignore-event
                        :data "hello")))
    (is (typep alone 'as:async-io-stream) "the extras slot held ~S" alone)
    (is-true same-stream)
    (is (typep extras-after 'as::socket-extras))
    (is (eq alone stream-after))
    (is (= 1 write-cb-runs))
    (is (equal "hello" reply))))
