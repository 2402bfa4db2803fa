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
;;; Checks that run inside callbacks note what is wrong in *PROBLEMS* rather
;;; than call IS: a fiveam failure is a condition of class ERROR, which the
;;; loop's error routing would take out of the callback.  Each test then
;;; asserts, outside its loop, that there were none (WITH-PROBLEMS).

(defvar *problems* nil "What the checks of the running test found wrong (newest first).")
(defvar *checks* 0 "How many checks ran.")

(defun expect (ok format-control &rest args)
  "Note a problem unless OK."
  (incf *checks*)
  (unless ok
    (push (apply #'format nil format-control args) *problems*))
  ok)

(defmacro with-problems ((&key (min-checks 1)) &body body)
  "Run BODY, then assert that the checks it ran (at least MIN-CHECKS) found nothing wrong."
  `(let ((*problems* '()) (*checks* 0))
     ,@body
     (is (<= ,min-checks *checks*) "only ~D checks ran" *checks*)
     (is (null *problems*) "~D problem~:P:~%~{  ~A~%~}"
         (length *problems*) (reverse *problems*))))

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
    (expect (typep condition 'type-error)
            "~S: expected a type-error, ~:[got ~S~;it returned normally~]" form returned condition)
    (when (typep condition 'type-error)
      (expect (equalp datum (type-error-datum condition))
              "~S: the type-error's datum is ~S, not ~S" form (type-error-datum condition) datum)
      (when argument
        ;; The library's own checks say which argument; anything else (CHECK-TYPE)
        ;; must at least name it in its report.
        (if (typep condition 'as::argument-type-error)
            (expect (string= (string argument)
                             (string (as::argument-type-error-argument condition)))
                    "~S: the type-error names the argument ~A, not ~A"
                    form (as::argument-type-error-argument condition) argument)
            (expect (search (string argument) (princ-to-string condition))
                    "~S: the report does not name ~A: ~A" form argument condition))))
    (when before
      (let ((after (live-counts)))
        (expect (equal before after)
                "~S left something behind: (registry C-handles) ~S before, ~S after"
                form before after)))))

(defmacro refuses (argument datum form)
  "FORM signals a type-error about ARGUMENT (a symbol, or NIL: do not look for
its name in the report) whose datum is DATUM, and makes nothing."
  `(check-refused ',form (lambda () ,form) ',argument ,datum))

(defun check-socket-closed (label name thunk)
  (let ((got (handler-case (progn (funcall thunk) :returned-normally)
               (error (e) e))))
    (expect (typep got 'as:socket-closed)
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
  (expect (as:socket-closed-p s) "~A: socket-closed-p is false" label)
  (let ((buffer (make-array 16 :element-type '(unsigned-byte 8))))
    (expect (eql 0 (as:read-socket-data s buffer)) "~A: read-socket-data read something" label))
  (expect (eql 0 (as:socket-buffered-bytes s)) "~A: socket-buffered-bytes is not 0" label))

(defun check-dead-server (label server)
  "Every operation on the closed (or dead) SERVER signals SOCKET-CLOSED, never a
bind error; closing it again does nothing."
  (signals-socket-closed label
    (as:tcp-server-port server)
    (as:tcp-server-address server))
  (expect (as:tcp-server-closed-p server) "~A: tcp-server-closed-p is false" label)
  (expect (null (as:close-tcp-server server)) "~A: close-tcp-server returned non-NIL" label))

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
  (with-problems (:min-checks 60)
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
                  old-timer (as:delay (lambda () (expect nil "loop A's timer fired")) :time 60))
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
                 (timer (as:delay (lambda () (expect nil "loop B's timer fired")) :time 60))
                 (port (as:tcp-server-port server)))
            (labels ((check-old ()
                       (setf same-ids (= (as:socket-c old-client) (as:socket-c new-client)))
                       (check-dead-socket "old client" old-client)
                       (check-dead-socket "old stream" old-stream)
                       (check-dead-socket "old accepted socket" old-accepted)
                       (check-dead-server "old server" old-server)
                       (expect (null (as:free-event old-timer)) "free-event of the old timer")
                       (expect (as:event-freed-p old-timer) "the old timer is not freed")
                       (signals-socket-closed "old stream"
                         (write-sequence (octets "x") old-stream)
                         (write-string "x" old-stream))
                       (expect (not (open-stream-p old-stream)) "the old stream is open")
                       (expect (not (listen old-stream)) "the old stream has input")
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
      (format t "~&  ids of the old and new client ~:[differ~;are the same~]~%" same-ids))))

;;; ---- objects closed in the running loop ----

(test operations-on-closed-objects-signal-socket-closed
  "After CLOSE-SOCKET and CLOSE-TCP-SERVER every operation signals SOCKET-CLOSED
(TCP-SERVER-PORT included, which used to signal TCP-SERVER-BIND-ERROR); after
the CLOSE events as well as right away."
  (with-problems (:min-checks 40)
    (let ((checked 0))
      (with-test-loop ()
        (let ((server (echo-server)))
          (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                          (lambda (s d) (declare (ignore s d)))
                          #'ignore-event
                          :connect-cb
                          (lambda (socket)
                            (as:close-socket socket)
                            (as:close-tcp-server server)
                            (check-dead-socket "closed socket" socket)
                            (check-dead-server "closed server" server)
                            (handler-case (as:tcp-server-port server)
                              (as:tcp-server-bind-error (c)
                                (expect nil "tcp-server-port on a closed server: ~A" c))
                              (as:socket-closed (c)
                                (expect (eq server (as:tcp-socket c)) "socket-closed names ~S"
                                        (as:tcp-socket c))
                                (incf checked)))
                            ;; Once the CLOSE events have come, too.
                            (as:delay (lambda ()
                                        (check-dead-socket "socket after its CLOSE" socket)
                                        (check-dead-server "server after its CLOSE" server)
                                        (incf checked)
                                        (done))
                                      :time 0.05)))))
      (is (= 2 checked)))))

(test socket-queued-bytes-reports-errors
  "SOCKET-QUEUED-BYTES counts queued bytes on an open socket and signals
SOCKET-CLOSED on a closed one (it used to answer 0)."
  (let ((open-count nil) (closed nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (declare (ignore s d)))
                        #'ignore-event
                        :connect-cb
                        (lambda (socket)
                          (setf open-count (as:socket-queued-bytes socket))
                          (as:close-socket socket)
                          (handler-case (as:socket-queued-bytes socket)
                            (as:socket-closed () (setf closed t)))
                          (as:close-tcp-server server)
                          (done)))))
    (is (eql 0 open-count))
    (is-true closed)))

;;; ---- bad input ----

(defun bad-input-outside-a-loop ()
  (refuses start-fn 42 (as:start-event-loop 42))
  (refuses default-event-cb "cb" (as:start-event-loop (lambda ()) :default-event-cb "cb"))
  (refuses default-event-cb 42 (as:with-event-loop (:default-event-cb 42) nil))
  (refuses base 42 (as:registry-live-count 42))
  (refuses event 42 (as:free-event 42))
  (refuses event 42 (as:remove-event 42))
  (refuses event "x" (as:event-freed-p "x"))
  (refuses interval 42 (as:remove-interval 42)))

(test bad-input-to-the-event-loop-functions
  (with-problems (:min-checks 100)
    (bad-input-outside-a-loop)
    (let ((ran nil) (fired '()))
      (with-test-loop ()
        (bad-input-outside-a-loop)
        (refuses fn 42 (as:add-event-loop-exit-callback 42))
        (refuses fn nil (as:add-event-loop-exit-callback nil))
        ;; Before: a string time ran the callback at once, a negative one too.
        (refuses time "1" (as:delay (lambda () (push :string fired)) :time "1"))
        (refuses time -1 (as:delay (lambda () (push :negative fired)) :time -1))
        (refuses time :soon (as:delay (lambda () (push :keyword fired)) :time :soon))
        (refuses callback nil (as:delay nil))
        (refuses callback 42 (as:delay 42 :time 0))
      (refuses callback :now (as:delay :now))
        (refuses event-cb 42 (as:delay (lambda () (push :event-cb fired)) :event-cb 42))
        (refuses time "1" (as:with-delay ("1") (push :with-delay fired)))
        (refuses time "1" (as:interval (lambda () (push :interval fired)) :time "1"))
        (refuses time -1 (as:interval (lambda () (push :interval fired)) :time -1))
        (refuses callback nil (as:interval nil :time 1))
        (refuses time "1" (as:with-interval ("1") (push :with-interval fired)))
        (refuses event-cb 42 (as:interval (lambda () (push :interval fired)) :time 1 :event-cb 42))
        ;; Huge and exact times are fine (they mean "a long time").
        (as:free-event (as:delay (lambda () (push :huge fired)) :time (expt 10 400)))
        (as:free-event (as:delay (lambda () (push :ratio fired)) :time 1/3))
        (as:delay (lambda () (setf ran t) (done)) :time 0.05))
      (is-true ran)
      (is (null fired) "a refused or freed timer fired: ~S" fired))))

(defun refusals-on-a-connected-socket (socket port server)
  "Every bad argument of the functions that take a socket, on the connected
SOCKET of SERVER (listening on PORT)."
  (let ((cb (lambda (s d) (declare (ignore s d))))
        (buffer (make-array 10 :element-type '(unsigned-byte 8))))
    ;; tcp-connect / tcp-send / init-tcp-socket: nothing is made.
    ;; Before: a NIL host was looked up as "NIL", a symbol as its name.
    (refuses host nil (as:tcp-connect nil port cb #'ignore-event))
    (refuses host :localhost (as:tcp-connect :localhost port cb #'ignore-event))
    (refuses host 2130706433 (as:tcp-connect 2130706433 port cb #'ignore-event))
    ;; Before: C read the host up to the NUL, and connected to 127.0.0.1.
    (let ((nul-host (format nil "127.0.0.1~Cjunk" (code-char 0))))
      (refuses host nul-host (as:tcp-connect nul-host port cb #'ignore-event))
      (refuses bind-address nul-host (as:tcp-server nul-host 0 cb nil)))
    (refuses port "80" (as:tcp-connect "127.0.0.1" "80" cb #'ignore-event))
    (refuses port -1 (as:tcp-connect "127.0.0.1" -1 cb #'ignore-event))
    (refuses port 65536 (as:tcp-connect "127.0.0.1" 65536 cb #'ignore-event))
    (refuses port 80.0 (as:tcp-connect "127.0.0.1" 80.0 cb #'ignore-event))
    (refuses read-cb 42 (as:tcp-connect "127.0.0.1" port 42 #'ignore-event))
    (refuses event-cb "cb" (as:tcp-connect "127.0.0.1" port cb "cb"))
    (refuses event-cb 42 (as:tcp-connect "127.0.0.1" port cb :event-cb 42))
    ;; A keyword where a callback belongs is a keyword argument out of place.
    (refuses read-cb :read-cb (as:tcp-connect "127.0.0.1" port :read-cb cb))
    (refuses read-cb :read-cb (as:tcp-server "127.0.0.1" 0 :read-cb cb))
    (refuses connect-cb 42 (as:tcp-connect "127.0.0.1" port cb nil :connect-cb 42))
    (refuses write-cb 42 (as:tcp-connect "127.0.0.1" port cb nil :write-cb 42))
    (refuses read-timeout "5" (as:tcp-connect "127.0.0.1" port cb nil :read-timeout "5"))
    (refuses write-timeout "5" (as:tcp-connect "127.0.0.1" port cb nil :write-timeout "5"))
    (refuses connect-timeout "5" (as:tcp-connect "127.0.0.1" port cb nil :connect-timeout "5"))
    (refuses data 42 (as:tcp-connect "127.0.0.1" port cb nil :data 42))
    (refuses data #(104 105) (as:tcp-connect "127.0.0.1" port cb nil :data (vector 104 105)))
    (refuses host nil (handler-bind ((as:deprecated-function #'muffle-warning))
                        (as:tcp-send nil port "x" cb nil)))
    (refuses data 42 (handler-bind ((as:deprecated-function #'muffle-warning))
                       (as:tcp-send "127.0.0.1" port 42 cb nil)))
    (refuses read-cb 42 (as:init-tcp-socket 42 nil))
    (refuses event-cb 42 (as:init-tcp-socket cb 42))
    (refuses read-timeout "5" (as:init-tcp-socket cb nil :read-timeout "5"))
    (refuses write-timeout '(5) (as:init-tcp-socket cb nil :write-timeout '(5)))
    (refuses connect-timeout "5" (as:init-tcp-socket cb nil :connect-timeout "5" :stream t))
    ;; connect-tcp-socket on a fresh socket: nothing starts.
    (let ((fresh (as:init-tcp-socket cb #'ignore-event)))
      (refuses host nil (as:connect-tcp-socket fresh nil port))
      (refuses port "80" (as:connect-tcp-socket fresh "127.0.0.1" "80"))
      (refuses event-cb 42 (as:connect-tcp-socket fresh "127.0.0.1" port :event-cb 42))
      (refuses socket 42 (as:connect-tcp-socket 42 "127.0.0.1" port))
      (as:close-socket fresh))
    ;; tcp-server
    (refuses bind-address :any (as:tcp-server :any 0 cb nil))
    (refuses port "0" (as:tcp-server "127.0.0.1" "0" cb nil))
    (refuses port 65536 (as:tcp-server "127.0.0.1" 65536 cb nil))
    (refuses read-cb 42 (as:tcp-server "127.0.0.1" 0 42 nil))
    (refuses event-cb 42 (as:tcp-server "127.0.0.1" 0 cb 42))
    (refuses connect-cb 42 (as:tcp-server "127.0.0.1" 0 cb nil :connect-cb 42))
    (refuses backlog "128" (as:tcp-server "127.0.0.1" 0 cb nil :backlog "128"))
    (refuses tcp-server 42 (as:tcp-server-port 42))
    (refuses tcp-server 42 (as:tcp-server-address 42))
    (refuses tcp-server 42 (as:close-tcp-server 42))
    (refuses tcp-server socket (as:tcp-server-closed-p socket))
    ;; (Accessors: a type-error about the value; SERVER is only known at run time.)
    (refuses nil server (as:socket-data server))
    (refuses nil server (as:socket-c server))
    (refuses nil server (as:socket-stream server))
    (refuses socket 42 (as:stream-socket 42))
    (refuses nil server (setf (as:socket-data server) :data))
    (refuses socket server (make-instance 'as:async-io-stream :socket server))
    ;; write-socket-data: nothing is sent, no callback is replaced.
    (refuses data 42 (as:write-socket-data socket 42))
    (refuses data nil (as:write-socket-data socket nil))
    (refuses data '(1 2) (as:write-socket-data socket '(1 2)))
    (refuses data #(1 2) (as:write-socket-data socket (vector 1 2)))
    (refuses read-cb 42 (as:write-socket-data socket "lost" :read-cb 42))
    (refuses write-cb 42 (as:write-socket-data socket "lost" :write-cb 42))
    (refuses event-cb 42 (as:write-socket-data socket "lost" :event-cb 42))
    (refuses socket 42 (as:write-socket-data 42 "lost"))
    (refuses start -1 (as:write-socket-data socket "lost" :start -1))
    (refuses end 10 (as:write-socket-data socket "lost" :end 10))
    (refuses start "0" (as:write-socket-data socket (octets "lost") :start "0"))
    ;; Before: a string timeout silently meant none.
    (refuses read-sec "5" (as:set-socket-timeouts socket "5" "5"))
    (refuses write-sec "5" (as:set-socket-timeouts socket 5 "5"))
    (refuses seconds "5" (as:set-socket-connect-timeout socket "5"))
    (refuses delay "60" (as:set-socket-keepalive socket t "60"))
    (refuses delay -1 (as:set-socket-keepalive socket t -1))
    (refuses mark "10" (as:set-socket-drain-mark socket "10"))
    (refuses mark -1 (as:set-socket-drain-mark socket -1))
    (refuses drain-cb 42 (as:set-socket-drain-mark socket 10 42))
    ;; Before: the socket was shut down anyway.
    (refuses shutdown-cb 42 (as:shutdown-socket socket :shutdown-cb 42))
    (refuses buffer "abc" (as:read-socket-data socket "abc"))
    (refuses buffer (vector 1 2) (as:read-socket-data socket (vector 1 2)))
    (refuses end 100 (as:read-socket-data socket buffer :end 100))
    (refuses end -1 (as:read-socket-data socket buffer :end -1))
    (refuses start 5 (as:read-socket-data socket buffer :start 5 :end 3))
    (refuses start -1 (as:read-socket-data socket buffer :start -1))
    (refuses start "0" (as:read-socket-data socket buffer :start "0"))
    ;; Functions of a socket given something else.
    (dolist (thing (list 42 "socket" nil server))
      (refuses socket thing (as:enable-socket thing :read t))
      (refuses socket thing (as:disable-socket thing :read t))
      (refuses socket thing (as:set-socket-nodelay thing))
      (refuses socket thing (as:set-socket-keepalive thing t))
      (refuses socket thing (as:set-socket-timeouts thing 1 1))
      (refuses socket thing (as:set-socket-connect-timeout thing 1))
      (refuses socket thing (as:set-socket-drain-mark thing 10))
      (refuses socket thing (as:shutdown-socket thing))
      (refuses socket thing (as:socket-queued-bytes thing))
      (refuses socket thing (as:socket-buffered-bytes thing))
      (refuses socket thing (as:socket-local-address thing))
      (refuses socket thing (as:socket-peer-address thing))
      (refuses socket thing (as:socket-closed-p thing))
      (refuses socket thing (as:socket-peer-closed-p thing))
      (refuses socket thing (as:close-socket thing))
      (refuses socket thing (as:read-socket-data thing buffer)))
    ;; DNS.  Before: a symbol host was looked up by its name.
    (refuses host nil (as:dns-lookup nil cb nil))
    (refuses host 'localhost (as:dns-lookup 'localhost cb nil))
    (refuses host nil (as:dns-lookup-all nil cb nil))
    (refuses resolve-cb 42 (as:dns-lookup "localhost" 42 nil))
    (refuses event-cb 42 (as:dns-lookup "localhost" cb 42))
    (refuses event-cb 42 (as:dns-lookup-all "localhost" cb :event-cb 42))
    (refuses family 99 (as:dns-lookup "localhost" cb nil :family 99))
    (refuses request socket (as:cancel-dns-lookup socket))
    (refuses servers 42 (as:set-dns-servers 42))
    (refuses servers '(127 53) (as:set-dns-servers (list (list 127 53))))
    (refuses servers '("127.0.0.1" "53") (as:set-dns-servers (list (list "127.0.0.1" "53"))))
    (refuses servers :default (as:set-dns-servers (list :default)))
    (refuses seconds "5" (as:set-dns-timeout "5"))
    (refuses tries "2" (as:set-dns-timeout 5 "2"))))

(test bad-input-to-the-tcp-and-dns-functions
  "Every bad argument is refused before anything is made or changed: the socket
the refusals were tried on still echoes exactly what is sent afterwards."
  (with-problems (:min-checks 400)
    (let ((received '()) (checked nil))
      (with-test-loop ()
        (let* ((server (echo-server))
               (port (as:tcp-server-port server)))
          (as:tcp-connect "127.0.0.1" port
                          (lambda (s d)
                            (push (text d) received)
                            (when (search "end" (apply #'concatenate 'string (reverse received)))
                              (as:close-socket s)
                              (as:close-tcp-server server)
                              (done)))
                          #'ignore-event
                          :connect-cb
                          (lambda (socket)
                            (refusals-on-a-connected-socket socket port server)
                            (setf checked t)
                            (as:write-socket-data socket "end")))))
      (is-true checked)
      ;; Nothing refused was sent, and the socket was not shut down or closed.
      (is (equal "end" (apply #'concatenate 'string (reverse received)))))))

;;; ---- a failure after the C socket exists ----

(define-condition stream-init-failed (error) ())

(defvar *fail-stream-init* nil
  "When true, making an async-io-stream fails (see the method below).")

;; Only ever active inside HALF-MADE-SOCKET-IS-CLOSED-AGAIN.
(defmethod initialize-instance :before ((stream as:async-io-stream) &key)
  (when *fail-stream-init*
    (error 'stream-init-failed)))

(test half-made-socket-is-closed-again
  "When setting a new socket up fails after its C handle exists (here: making
its :stream t stream signals), the socket is closed again: the registry and
the C handle count come back to where they were."
  (let ((signalled nil) (before nil) (after nil) (server-port nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (setf server-port (as:tcp-server-port server))
        (setf before (live-counts))
        (handler-case (let ((*fail-stream-init* t))
                        (as:tcp-connect "127.0.0.1" server-port
                                        (lambda (s d) (declare (ignore s d)))
                                        #'ignore-event :stream t))
          (stream-init-failed () (setf signalled t)))
        ;; The CLOSE event of the half-made socket comes on a later turn; wait
        ;; for it (a bound on how many turns, not on how fast they are).  The
        ;; checking delay counts itself while it runs.
        (let ((tries 0))
          (labels ((check ()
                     (setf after (mapcar #'1- (live-counts)))
                     (if (or (equal before after) (> (incf tries) 500))
                         (progn (as:close-tcp-server server) (done))
                         (as:delay #'check :time 0.01))))
            (as:delay #'check)))))
    (is-true signalled)
    (is (equal before after) "(registry C-handles): ~S before, ~S after" before after)))

(test dns-lookup-of-an-exited-loop-cancels-nothing
  "CANCEL-DNS-LOOKUP on a lookup still pending when its loop exited does
nothing: it does not cancel the lookup a later loop made in the same place."
  (let ((old nil) (resolved nil) (event nil))
    (with-silent-dns-port (port)
      (with-test-loop (:timeout 5)
        (as:set-dns-servers (dns-address port))
        (setf old (as:dns-lookup "test.example" (lambda (&rest r) (setf resolved r)) nil))
        (finish-test)))
    (with-dns-server (port)
      (with-test-loop ()
        (as:set-dns-servers (dns-address port))
        (as:dns-lookup "test.example"
                       (lambda (address family)
                         (declare (ignore family))
                         (setf resolved address)
                         (done))
                       (lambda (c) (setf event c) (done))
                       :family as:+af-inet+)
        (is (null (as:cancel-dns-lookup old)))))
    (is (null event) "the new loop's lookup got ~A" event)
    (is (stringp resolved) "the new loop's lookup was cancelled")))
