;;;; server.lisp -- TCP servers: tcp-server, closing it, where it listens.
;;;;
;;;; A server's events (accepting a connection into a socket of
;;;; SERVER-SOCKET-CLASS, accept errors) come through lisp/callbacks.lisp's
;;;; %DISPATCH to %SERVER-EVENT, at the end of this file.

(in-package #:cl-async-tcp)

(defun %tcp-server (bind-address port read-cb event-cb &key connect-cb (backlog -1) stream
                                                           reuse-port)
  (check-arguments (bind-address (or null host-name)) (port port-number)
                   (read-cb callback) (event-cb callback) (connect-cb callback :connect-cb)
                   (backlog (or null (signed-byte 32)) :backlog))
  (let* ((base (%current-base))
         (server (%make-tcp-server :base base :read-cb read-cb :event-cb event-cb
                                   :connect-cb connect-cb :stream-p (and stream t))))
    (with-new-handle (id index) (base server :context :bind)
      (cltcp:server-listen-ex id (event-base-id base) (or bind-address "")
                              port (or backlog -1)
                              ;; issue 10: SO_REUSEPORT
                              (if reuse-port cltcp:+listen-reuseport+ 0)
                              *event-callback-pointer* index
                              *event-callback-pointer* index))))

(defun tcp-server (bind-address port read-cb &rest args)
  "Listen on BIND-ADDRESS (NIL = any IPv4 address, \"0.0.0.0\"; IPv6 addresses
and /etc/hosts names work) and PORT (0 = a free port, see TCP-SERVER-PORT).
Lambda list: (bind-address port read-cb event-cb &key connect-cb (backlog -1)
stream reuse-port); event-cb (NIL = *DEFAULT-EVENT-HANDLER*) may also be :event-cb.
:reuse-port t (SO_REUSEPORT, beyond cl-async): servers that all ask for it may
listen on the same address and port -- one loop per thread, or per process --
and the kernel spreads incoming connections over them.
Every connection becomes a socket with these callbacks; connect-cb
(lambda (socket)) runs before its first read-cb.  With :stream t, read-cb
gets (socket stream).  Signals TCP-SERVER-BIND-ERROR (and, for a used port,
SOCKET-ADDRESS-IN-USE) when it cannot listen, and a TYPE-ERROR naming the
argument, before anything is made, for a BIND-ADDRESS that is neither NIL nor a
string, a PORT that is not an integer from 0 to 65535, a callback that is not
NIL, a function or a symbol, or a :backlog that is not NIL or a 32-bit integer
(negative = the system's default).  Returns the tcp-server."
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (apply #'%tcp-server bind-address port read-cb event-cb keys)))

(defmethod close-socket-server ((tcp-server tcp-server))
  "Stop listening; connections already accepted stay open.  Does nothing when the
server is closed already (or its event loop has exited).  Returns NIL."
  (check-argument tcp-server tcp-server)
  (unless (%srv-closed-p tcp-server)
    (setf (%srv-closed-p tcp-server) t)
    ;; A dead loop's server id may name a later loop's handle.
    (unless (%c-handle-gone-p tcp-server)
      (cltcp:server-close (%srv-id tcp-server)))) ; RAW-STATUS: closing already is fine
  nil)

(defun close-tcp-server (tcp-server)
  "Stop listening; connections already accepted stay open.  Does nothing when the
server is closed already.  Returns NIL.  Calls the generic CLOSE-SOCKET-SERVER
(cl-async's name), so methods defined on it for a subclass run."
  (check-argument tcp-server tcp-server)
  (close-socket-server tcp-server))

(defmethod close-socket-server (server)
  ;; Anything else: a type error naming the argument.
  (check-argument server tcp-server))

(defun tcp-server-closed-p (tcp-server)
  "True once TCP-SERVER was closed, and for every server of an event loop that
has exited."
  (check-argument tcp-server tcp-server)
  (or (%srv-closed-p tcp-server) (%loop-gone-p tcp-server)))

(defun tcp-server-port (tcp-server)
  "The port TCP-SERVER listens on (useful after binding port 0).  Signals
SOCKET-CLOSED on a closed server."
  (%open-server tcp-server)
  (cffi:with-foreign-object (port :int)
    (with-status (tcp-server)
      (cltcp:server-port port (%srv-id tcp-server)))
    (cffi:mem-ref port :int)))

(defun tcp-server-address (tcp-server)
  "Where TCP-SERVER listens: (values address port family), family 4 or 6.
Signals SOCKET-CLOSED on a closed server."
  (%open-server tcp-server)
  (with-status (tcp-server)
    (with-address-out (buf buflen port family)
      (cltcp:server-address buf buflen port family (%srv-id tcp-server)))))

;;; ---- a server's events (from %DISPATCH, under the callback guard) ----

(defun %make-accepted-socket (class new-id base server)
  "The socket object of a connection SERVER accepted (C id NEW-ID), of CLASS."
  (let* ((flags (logior +flag-connected+ +flag-accepted+
                        (if (%srv-stream-p server) +flag-keep+ 0)))
         (socket (if (eq class 'tcp-socket)
                     ;; The usual case, with a literal class name (fast).
                     (%make-tcp-socket :id new-id :base base
                                       :read-cb (%srv-read-cb server)
                                       :event-cb (%srv-event-cb server)
                                       :flags flags)
                     (make-instance class :id new-id :base base
                                          :read-cb (%srv-read-cb server)
                                          :event-cb (%srv-event-cb server)
                                          :flags flags))))
    ;; The server's connect-cb is the server's: %ACCEPT calls it, the socket
    ;; does not keep it (that would make extras for every connection).
    socket))

(defun %accept (base server new-id)
  "A connection came in on SERVER: make its socket object, point the C socket
at it, then run the server's connect-cb (reading starts after we return)."
  (declare (type event-base base) (type tcp-server server))
  (let* ((socket (%make-accepted-socket (server-socket-class server) new-id base server))
         (index (registry-add base socket)))
    (setf (%sock-index socket) index)
    ;; RAW-STATUS: a failure means the socket died already; it closes with
    ;; the server's context word.
    (unless (zerop (cltcp:socket-set-cb new-id *event-callback-pointer* index))
      (registry-remove base index)
      (setf (%sock-index socket) -1 (%sock-closed-p socket) t)
      (return-from %accept nil))
    (when (%srv-stream-p server)
      (with-status (socket)
        (cltcp:socket-set-read-mode new-id cltcp:+read-keep+))
      (%make-socket-stream socket))
    (let ((connect-cb (%srv-connect-cb server)))
      (when connect-cb (funcall (%fn connect-cb) socket)))))

(defun %server-event (base server id event status other)
  (declare (type tcp-server server) (type fixnum event status)
           (type (unsigned-byte 64) id other))
  (cond ((/= id (%srv-id server))
         ;; An accepted socket that never got its own context word (its
         ;; ACCEPT was skipped): nobody owns it, so close it.
         (cltcp:socket-close id cltcp:+close-now+))
        ((%srv-closed-p server)
         (when (= event cltcp:+ev-accept+)
           (cltcp:socket-close other cltcp:+close-now+)))
        ((= event cltcp:+ev-accept+)
         (%accept base server other))
        ((= event cltcp:+ev-error+)
         (%deliver server (make-condition (code-condition-class status :accept)
                                          :code status :socket server
                                          :listener (%srv-id server)
                                          :tcp-server server))))
  nil)
