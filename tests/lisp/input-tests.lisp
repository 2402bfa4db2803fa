;;;; input-tests.lisp -- bad input, and objects of closed or dead loops.
;;;;
;;;; Bad input: every exported function refuses an argument of the wrong type
;;;; with a TYPE-ERROR whose datum is the value and whose report names the
;;;; argument, before it makes anything: the loop's registry and the C
;;;; library's handle count are the same after the refusal as before.
;;;;
;;;; Dead objects: a socket, stream, server or timer kept from an earlier
;;;; START-EVENT-LOOP (or closed in this one) signals SOCKET-CLOSED for every
;;;; operation, and never reaches C -- where its id may name a handle of the
;;;; running loop.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

;;; ---- helpers ----

(defun c-handle-count ()
  "The number of live C handles of the running loop (cltcp_loop_handle_count)."
  (cffi:with-foreign-object (n :size)
    (let ((rc (cltcp:loop-handle-count n (as::event-base-id as:*event-base*))))
      (assert (zerop rc) () "cltcp_loop_handle_count failed: ~D" rc))
    (cffi:mem-ref n :size)))

(defun live-counts ()
  "(registry entries, C handles) of the running loop."
  (list (as:registry-live-count) (c-handle-count)))

(defun check-refused (form thunk argument datum)
  "Call THUNK: it must signal a TYPE-ERROR with DATUM (compared with EQUALP)
whose report names ARGUMENT (unless ARGUMENT is NIL), and leave the running
loop's registry and C handles as they were."
  (let ((before (and as:*event-base* (live-counts)))
        (condition nil)
        (returned nil))
    (handler-case (progn (funcall thunk) (setf returned t))
      (type-error (c) (setf condition c))
      (error (c) (setf condition c)))
    (is (typep condition 'type-error)
        "~S: expected a type-error, ~:[got ~S~;it returned normally~]" form returned condition)
    (when (typep condition 'type-error)
      (is (equalp datum (type-error-datum condition))
          "~S: the type-error's datum is ~S, not ~S" form (type-error-datum condition) datum)
      (when argument
        (is (search (string argument) (princ-to-string condition))
            "~S: the report does not name ~A: ~A" form argument condition)))
    (when before
      (is (equal before (live-counts))
          "~S left something behind: (registry C-handles) ~S before, ~S after"
          form before (live-counts)))))

(defmacro refuses (argument datum form)
  "FORM signals a type-error about ARGUMENT (a symbol, or NIL: do not look for
its name in the report) whose datum is DATUM, and makes nothing."
  `(check-refused ',form (lambda () ,form) ',argument ,datum))

(defun check-socket-closed (label name thunk)
  (let ((got (handler-case (progn (funcall thunk) :returned-normally)
               (error (e) e))))
    (is (typep got 'as:socket-closed)
        "~A: ~A should signal socket-closed, got ~S" label name got)))

(defmacro signals-socket-closed (label &body forms)
  "Each of FORMS signals SOCKET-CLOSED."
  `(progn
     ,@(loop for form in forms
             collect `(check-socket-closed ,label ',(first form) (lambda () ,form)))))

(defun check-dead-socket (label s)
  "Every operation on the socket or stream S, which is closed (or of a loop that
has exited), signals SOCKET-CLOSED; the predicates say closed; reading finds
nothing."
  (signals-socket-closed label
    (as:write-socket-data s "x")
    (as:write-socket-data s (octets "x") :write-cb (lambda (s) (declare (ignore s))))
    (as:set-socket-timeouts s 1 1)
    (as:set-socket-timeouts s nil nil)
    (as:enable-socket s :read t :write t)
    (as:disable-socket s :read t :write t)
    (as:set-socket-nodelay s t)
    (as:set-socket-keepalive s t 10)
    (as:set-socket-connect-timeout s 5)
    (as:set-socket-drain-mark s 100 (lambda (s n) (declare (ignore s n))))
    (as:shutdown-socket s)
    (as:socket-queued-bytes s)
    (as:socket-local-address s)
    (as:socket-peer-address s)
    (as:connect-tcp-socket s "127.0.0.1" 9)
    (as:close-socket s)
    (as:close-socket s :force t))
  (is-true (as:socket-closed-p s) "~A: socket-closed-p" label)
  (let ((buffer (make-array 16 :element-type '(unsigned-byte 8))))
    (is (eql 0 (as:read-socket-data s buffer)) "~A: read-socket-data" label))
  (is (eql 0 (as:socket-buffered-bytes s)) "~A: socket-buffered-bytes" label))

(defun check-dead-server (label server)
  "Every operation on the closed (or dead) SERVER signals SOCKET-CLOSED, never a
bind error; closing it again does nothing."
  (signals-socket-closed label
    (as:tcp-server-port server)
    (as:tcp-server-address server))
  (is-true (as:tcp-server-closed-p server) "~A: tcp-server-closed-p" label)
  (is (null (as:close-tcp-server server)) "~A: close-tcp-server" label))

;;; ---- objects of a loop that has exited ----

(defun connect-set (port on-connect)
  "Connect a drain-mode client and a :stream t client to PORT; call ON-CONNECT
with the socket, then with the stream, as each connects.  Returns them."
  (values (as:tcp-connect "127.0.0.1" port (lambda (s d) (declare (ignore s d))) #'ignore-event
                          :connect-cb on-connect)
          (as:tcp-connect "127.0.0.1" port (lambda (s d) (declare (ignore s d))) #'ignore-event
                          :stream t
                          :connect-cb (lambda (s) (funcall on-connect (as:socket-stream s))))))

(test objects-of-an-exited-loop-signal-socket-closed
  "Sockets, a stream, a server and a timer kept from one START-EVENT-LOOP are
dead in the next one: every operation signals SOCKET-CLOSED, none reaches C
(where their ids can name the new loop's handles), and the new loop's sockets
and server go on working."
  (let ((old-client nil) (old-stream nil) (old-accepted nil) (old-server nil) (old-timer nil)
        (same-ids nil) (echo nil) (again nil))
    ;; Loop A: a server, two clients (one a stream), an accepted socket and a
    ;; pending timer, all still open when the loop is stopped.
    (with-test-loop ()
      (let ((connects 0))
        (flet ((connected ()
                 (when (= 4 (incf connects)) (finish-test))))
          (setf old-server (echo-server :connect-cb (lambda (s)
                                                     (unless old-accepted (setf old-accepted s))
                                                     (connected)))
                old-timer (as:delay (lambda () (fail "loop A's timer fired")) :time 60))
          (connect-set (as:tcp-server-port old-server)
                       (lambda (s)
                         (if (typep s 'as:async-stream) (setf old-stream s) (setf old-client s))
                         (connected))))))
    (is-true (and old-client old-stream old-accepted) "loop A did not connect")
    ;; Loop B: the same handles made in the same order (so that, before ids
    ;; were unique across loops, they had the very same ids).
    (let ((new-client nil) (new-stream nil) (ready 0) (pong nil) (received '()))
      (with-test-loop ()
        (let* ((server (echo-server))
               (timer (as:delay (lambda () (fail "loop B's timer fired")) :time 60))
               (port (as:tcp-server-port server)))
          (labels ((check-old ()
                     (setf same-ids (= (as:socket-c old-client) (as:socket-c new-client)))
                     (check-dead-socket "old client" old-client)
                     (check-dead-socket "old stream" old-stream)
                     (check-dead-socket "old accepted socket" old-accepted)
                     (check-dead-server "old server" old-server)
                     (is (null (as:free-event old-timer)))
                     (is-true (as:event-freed-p old-timer))
                     (signals-socket-closed "old stream"
                       (write-sequence (octets "x") old-stream)
                       (write-string "x" old-stream))
                     (is-false (open-stream-p old-stream))
                     (is-false (listen old-stream))
                     ;; The new loop's sockets still read and echo ...
                     (as:write-socket-data new-client "ping")
                     (write-sequence (octets "pong") new-stream)
                     ;; ... and its server still accepts.
                     (as:tcp-connect "127.0.0.1" port
                                     (lambda (s d)
                                       (when (equal "again" (text d))
                                         (setf again t)
                                         (as:close-socket s)
                                         (maybe-finish)))
                                     #'ignore-event :data "again"))
                   (connected (s)
                     (declare (ignore s))
                     (when (= 2 (incf ready)) (check-old)))
                   (maybe-finish ()
                     (when (and echo pong again)
                       (as:free-event timer)
                       (as:close-socket new-client)
                       (close new-stream)
                       (as:close-tcp-server server)
                       (done))))
            (setf new-client
                  (as:tcp-connect "127.0.0.1" port
                                  (lambda (s d)
                                    (declare (ignore s))
                                    (push (text d) received)
                                    (when (equal "ping" (apply #'concatenate 'string
                                                               (reverse received)))
                                      (setf echo :ping)
                                      (maybe-finish)))
                                  #'ignore-event :connect-cb #'connected))
            (setf new-stream
                  (as:tcp-connect "127.0.0.1" port
                                  (lambda (s stream)
                                    (declare (ignore s))
                                    (let ((buf (make-array 4 :element-type '(unsigned-byte 8))))
                                      (when (and (not pong)
                                                 (>= (as:socket-buffered-bytes stream) 4)
                                                 (= 4 (read-sequence buf stream)))
                                        (setf pong (text buf))
                                        (maybe-finish))))
                                  #'ignore-event :stream t :connect-cb #'connected)))))
      (is (eq :ping echo) "the new loop's socket no longer echoes")
      (is (equal "pong" pong) "the new loop's stream no longer echoes")
      (is-true again "the new loop's server no longer accepts"))
    ;; Informational: whether the C library gave both loops the same ids.
    (format t "~&  ids of the old and new client ~:[differ~;are the same~]~%" same-ids)))
