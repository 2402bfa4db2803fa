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

;;; ---- classes and generic functions where cl-async has them ----

(defclass compat-socket (as:tcp-socket)
  ((log :initform '() :accessor compat-log))
  (:documentation "A program's subclass of tcp-socket (as cl-async-ssl makes one)."))

(defclass compat-server (as:tcp-server)
  ((closed-by-method :initform nil :accessor closed-by-method))
  (:documentation "A program's subclass of tcp-server."))

(defmethod as::server-socket-class ((server compat-server)) 'compat-socket)

(defmethod as:close-socket :before ((socket compat-socket) &key force)
  (push (if force :force-close :close) (compat-log socket)))

(defmethod as:close-socket-server :after ((server compat-server))
  (setf (closed-by-method server) t))

(test socket-server-and-event-are-standard-classes
  (dolist (name '(as:socket as:tcp-socket as:tcp-server as:event))
    (is (typep (find-class name) 'standard-class) "~S is not a standard class" name))
  (is (subtypep 'as:tcp-socket 'as:socket))
  (dolist (name '(as:close-socket as:close-socket-server as:ref as:unref as:handle-error
                  as:socket-c as:socket-data as:event-freed-p as:event-c as:stream-socket
                  as:socket-socket as:socket-accept-error-listener
                  as:socket-accept-error-tcp-server))
    (is (typep (fdefinition name) 'generic-function) "~S is not generic" name)))

(test subclassed-server-accepts-subclassed-sockets-and-methods-run
  (let ((accepted nil) (got nil) (server nil))
    (with-test-loop ()
      (setf server (as:tcp-server "127.0.0.1" 0
                                  (lambda (s data)
                                    (as:write-socket-data s data)
                                    (as:close-socket s))
                                  :event-cb #'ignore-event
                                  :connect-cb (lambda (s) (setf accepted s))))
      ;; cl-async-ssl's way: CHANGE-CLASS a live object into a subclass.
      (change-class server 'compat-server)
      (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                      (lambda (s data)
                        (setf got (text data))
                        (as:close-socket s)
                        (as:close-tcp-server server)
                        (done))
                      :event-cb #'ignore-event
                      :data "sub"))
    (is (equal "sub" got))
    (is (typep accepted 'compat-socket))
    (is (equal '(:close) (compat-log accepted)))
    (is-true (closed-by-method server))
    (is-true (as:tcp-server-closed-p server))))

(test change-class-of-a-live-client-socket-keeps-it-working
  (let ((got '()) (client nil) (read-on nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (setf client (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s data)
                                       (push (text data) got)
                                       (setf read-on s)
                                       (if (equal (text data) "one")
                                           (as:write-socket-data s "two")
                                           (progn (as:close-socket s :force t)
                                                  (as:close-tcp-server server)
                                                  (done))))
                                     :event-cb #'ignore-event
                                     :connect-cb (lambda (s)
                                                   (change-class s 'compat-socket)
                                                   (as:write-socket-data s "one"))))))
    (is (equal '("one" "two") (reverse got)))
    (is (eq read-on client))
    (is (typep client 'compat-socket))
    (is (equal '(:force-close) (compat-log client)))))

(test close-socket-on-a-stream-runs-the-socket-class-methods
  (let ((socket nil))
    (with-test-loop ()
      (let* ((server (echo-server))
             (stream (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (s st) (declare (ignore s st)))
                                     :event-cb #'ignore-event :stream t)))
        (setf socket (as:stream-socket stream))
        (change-class socket 'compat-socket)
        (as:close-socket stream)
        (as:close-tcp-server server)
        (done)))
    (is (equal '(:close) (compat-log socket)))
    (is-true (as:socket-closed-p socket))))

(define-condition compat-bug (error) ()
  (:documentation "An application error for the handle-error test."))

(defvar *handled* '())

(defmethod as:handle-error ((e compat-bug))
  (push e *handled*))

(test handle-error-gets-caught-errors-without-an-event-cb
  (let ((*handled* '()) (later nil))
    (with-test-loop (:catch-app-errors t)
      (as:delay (lambda () (error 'compat-bug)))
      (as:delay (lambda () (setf later t) (done)) :time 0.02))
    (is (= 1 (length *handled*)))
    (is-true later))
  ;; With :send-errors-to-eventcb nil, even an operation's event-cb is passed
  ;; over (cl-async's rule).
  (let ((*handled* '()) (cb-got nil))
    (with-test-loop (:catch-app-errors t :send-errors-to-eventcb nil)
      (as:delay (lambda () (error 'compat-bug)) :event-cb (lambda (e) (setf cb-got e)))
      (as:delay #'done :time 0.02))
    (is (= 1 (length *handled*)))
    (is (null cb-got))))

(test condition-accessor-aliases
  (let ((ev nil) (socket nil))
    (with-test-loop ()
      (setf socket (as:tcp-connect "127.0.0.1" (closed-port)
                                   (lambda (s d) (declare (ignore s d)))
                                   :event-cb (lambda (e) (setf ev e) (done)))))
    (is (typep ev 'as:tcp-refused))
    (is (eq socket (as:socket-socket ev)))
    (is (eq socket (as:tcp-socket ev))))
  (let ((c (make-condition 'as::%accept-error :listener 42 :tcp-server :srv)))
    (is (= 42 (as:socket-accept-error-listener c)))
    (is (eq :srv (as:socket-accept-error-tcp-server c)))))

;;; ---- events: make-event, add-event, remove-event, event-c, event-freed ----

(test make-event-runs-only-when-added
  (let ((ran 0) (event nil))
    (with-test-loop ()
      (setf event (as:make-event (lambda () (incf ran) (done))))
      (is (typep event 'as:event))
      (is (integerp (as:event-c event)))
      (is (plusp (as:event-c event)))
      (as:delay (lambda ()
                  (is (= 0 ran))
                  (is (null (as:add-event event :activate t))))
                :time 0.02))
    (is (= 1 ran))
    (is-true (as:event-freed-p event))))

(test remove-event-then-add-event-with-timeout
  (let ((ran '()) (event nil) (start (now)))
    (with-test-loop ()
      (setf event (as:delay (lambda () (push :fired ran) (done)) :time 0.05))
      (is (eq t (as:remove-event event)))
      (is (null (as:remove-event event)))      ; removed already
      (is (= 0 (as:event-c event)))
      (is-false (as:event-freed-p event))
      (as:delay (lambda ()
                  (is (equal '() ran))
                  (as:add-event event :timeout 0.05))
                :time 0.1))
    (is (equal '(:fired) ran))
    ;; Fired at 0.1 + 0.05 at the earliest (timers never fire early).
    (is (>= (- (now) start) 0.14))))

(test removed-event-does-not-keep-the-loop-alive
  (let ((ran nil) (event nil) (start (now)))
    (with-test-loop ()
      (setf event (as:make-event (lambda () (setf ran t))))
      (as:remove-event event)
      (is-false (as:event-freed-p event))
      (done))
    (is-false ran)
    ;; Its loop has ended: from then on it reads as freed.
    (is-true (as:event-freed-p event))
    (is (< (- (now) start) 5))))

(test add-event-without-timeout-or-activate-leaves-it-out
  (let ((ran nil) (event nil))
    (with-test-loop ()
      (setf event (as:delay (lambda () (setf ran t)) :time 0.01))
      (as:add-event event)
      (done))
    (is-false ran)))

(test freed-events-signal-event-freed
  (let ((event nil) (conditions '()))
    (with-test-loop ()
      (setf event (as:delay (lambda ()) :time 0.001))
      (as:delay (lambda ()
                  (is-true (as:event-freed-p event))
                  (dolist (fn (list (lambda () (as:add-event event :activate t))
                                    (lambda () (as:remove-event event))
                                    (lambda () (as:unref event))))
                    (handler-case (funcall fn)
                      (as:event-freed (e) (push e conditions))))
                  (done))
                :time 0.05))
    (is (= 3 (length conditions)))
    (is (every (lambda (c) (typep c 'as:event-error)) conditions))
    (is (eq event (as::event-freed-event (first conditions))))))

(test free-event-frees-a-removed-event
  (let ((event nil))
    (with-test-loop ()
      (setf event (as:delay (lambda ()) :time 1))
      (as:remove-event event)
      (as:free-event event)
      (is-true (as:event-freed-p event))
      (done))
    (is-true (as:event-freed-p event))))

(test add-event-restarts-a-pending-event-and-re-arms-inside-its-callback
  (let ((fired 0) (event nil))
    (with-test-loop ()
      (setf event (as:delay (lambda ()
                              (when (< (incf fired) 3)
                                (as:add-event event :timeout 0.01))
                              (when (= fired 3) (done)))
                            :time 5))
      ;; Restart the pending 5 s event as a 10 ms one.
      (as:add-event event :timeout 0.01))
    (is (= 3 fired))
    (is-true (as:event-freed-p event))))

;;; ---- no name of cl-async is silently absent ----

(defparameter *cl-async-names*
  ;; cl-async's package exports (its src/package.lisp).
  '("octet" "octet-vector" "bytes" "*buffer-writes*" "*buffer-size*"
    "streamish" "close-streamish" "streamish-info" "streamish-error" "streamish-eof"
    "streamish-broken-pipe" "streamish-canceled" "streamish-closed"
    "check-streamish-open" "streamish-closed-p" "streamish-write"
    "handle-error" "+af-inet+" "+af-inet6+" "+af-unspec+" "+af-unix+"
    "event-info" "event-error" "event-errcode" "event-errmsg" "stats"
    "dump-event-loop-status" "add-event-loop-exit-callback" "ref" "unref"
    "start-event-loop" "with-event-loop" "exit-event-loop"
    "event-freed" "event" "event-c" "event-freed-p" "free-event" "remove-event"
    "add-event" "delay" "with-delay" "interval" "with-interval" "remove-interval"
    "make-event" "watch-fd" "fd-add"
    "notifier" "notifier-freed-p" "free-notifier" "make-notifier" "trigger-notifier"
    "+sighup+" "+sigint+" "+sigquit+" "+sigill+" "+sigtrap+" "+sigabrt+" "+sigemt+"
    "+sigfpe+" "+sigkill+" "+sigbus+" "+sigsegv+" "+sigsys+" "+sigpipe+" "+sigalrm+"
    "+sigterm+" "+sigurg+" "+sigstop+" "+sigtstp+" "+sigcont+" "+sigchld+" "+sigttin+"
    "+sigttou+" "+sigio+" "+sigxcpu+" "+sigxfsz+" "+sigvtalrm+" "+sigprof+" "+sigwinch+"
    "+siginfo+" "+sigusr1+" "+sigusr2+"
    "signal-handler" "free-signal-handler" "clear-signal-handlers"
    "dns-error" "dns-lookup" "reverse-dns-lookup"
    "socket-info" "socket-socket" "socket-error" "socket-eof" "socket-reset"
    "socket-timeout" "socket-refused" "socket-aborted" "socket-address-in-use"
    "socket-accept-error" "socket-accept-error-listener" "socket-accept-error-tcp-server"
    "tcp-info" "tcp-socket" "tcp-error" "tcp-eof" "tcp-reset" "tcp-timeout" "tcp-refused"
    "tcp-accept-error" "socket-closed" "tcp-server-bind-error"
    "socket" "socket-c" "socket-data" "socket-closed-p" "close-socket"
    "close-socket-server" "close-tcp-server" "write-socket-data" "set-socket-timeouts"
    "enable-socket" "disable-socket" "init-tcp-socket" "connect-tcp-socket"
    "tcp-connect" "tcp-server"
    "pipe-connect" "pipe-server" "pipe-not-found"
    "async-stream" "stream-socket" "async-input-stream" "async-output-stream"
    "async-io-stream"
    "idler" "idler-freed-p" "free-idler" "idle" "poller" "poller-freed-p" "free-poller"
    "poll" "mkdtemp" "filesystem-error" "filesystem-enoent" "filesystem-eacces"
    "filesystem-eperm" "spawn" "process-input" "process-output" "process-error-output"
    "process-kill" "fs-watch" "fs-unwatch" "fs-monitor-close")
  "What cl-async exports (from its package definition).")

(defun readme-not-provided ()
  "The text of README.md's \"Not provided\" section."
  (let* ((readme (uiop:read-file-string
                  (asdf:system-relative-pathname :cl-async-tcp "README.md")))
         (start (search "### Not provided" readme)))
    (and start (subseq readme start (search "<!-- =====" readme :start2 start)))))

(test every-cl-async-name-is-here-or-not-provided-with-a-reason
  (let ((not-provided (readme-not-provided)))
    (is-true not-provided "README.md has no \"Not provided\" section")
    (dolist (name *cl-async-names*)
      (multiple-value-bind (symbol status) (find-symbol (string-upcase name) :as)
        (cond ((eq status :external)
               (is-false (search (format nil "`~A`" name) (or not-provided ""))
                         "~A is in AS but listed as not provided" name)
               (is-true (documented-p symbol) "~A is exported without a docstring" name))
              (t
               (is-true (search (format nil "`~A`" name) (or not-provided ""))
                        "~A is neither in AS nor in README's Not provided" name)))))))

(test streamish-functions-are-the-socket-functions
  (let ((got nil) (closed-signalled nil) (log-socket nil))
    (with-test-loop ()
      (let ((server (echo-server)))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s data)
                          (setf got (text data))
                          (is-false (as:streamish-closed-p s))
                          (is (null (as:check-streamish-open s)))
                          (change-class s 'compat-socket)
                          (setf log-socket s)
                          (as:close-streamish s)
                          (is-true (as:streamish-closed-p s))
                          (handler-case (as:check-streamish-open s)
                            (as:streamish-closed () (setf closed-signalled t)))
                          (as:close-tcp-server server)
                          (done))
                        :event-cb #'ignore-event
                        :connect-cb (lambda (s)
                                      (as:streamish-write s "xxhello-streamishyy"
                                                          :start 2 :end 17 :force t)))))
    (is (equal "hello-streamish" got))
    (is-true closed-signalled)
    ;; CLOSE-STREAMISH went through CLOSE-SOCKET and its methods.
    (is (equal '(:close) (compat-log log-socket)))
    (dolist (name '(as:close-streamish as:streamish-write))
      (is (typep (fdefinition name) 'generic-function)))))
