;;;; socket.lisp -- TCP sockets: what their events do (%SOCKET-EVENT, called
;;;; by lisp/callbacks.lisp's %DISPATCH), the reference's client functions,
;;;; writing, reading in keep mode, options, and the extras.  Servers are in
;;;; lisp/server.lisp.
;;;;
;;;; Positional or keyword event-cb: see %SPLIT-EVENT-CB (lisp/checks.lisp).
;;;;
;;;; How lisp/stream.lisp plugs in (it is loaded after this file):
;;;;   - :stream t makes the socket read in keep mode and calls
;;;;     (make-instance 'async-io-stream :socket socket), stored as the
;;;;     socket's SOCKET-STREAM; the read-cb then gets (socket stream).
;;;;   - The stream reads with READ-SOCKET-DATA (straight from the C input
;;;;     buffer into a Lisp octet vector, no intermediate copy) and asks
;;;;     SOCKET-BUFFERED-BYTES / SOCKET-PEER-CLOSED-P / SOCKET-CLOSED-P to tell
;;;;     "nothing yet" from "the peer closed".  Bytes still buffered when the
;;;;     handle dies are saved by the CLOSE event, so they stay readable.
;;;;   - It writes with WRITE-SOCKET-DATA (one copy into C, order kept) and
;;;;     closes with CLOSE-SOCKET; it defines methods on STREAM-SOCKET.

(in-package #:cl-async-tcp)

(declaim (ftype function %make-socket-stream)) ; lisp/stream.lisp

;;; ---- a socket's events (from %DISPATCH, under the callback guard) ----

(defun %socket-event (socket event status data len)
  ;; SOCKET is a socket (%DISPATCH's SOCKET-P): no second class check here.
  (declare (type fixnum event status)
           (type (and fixnum unsigned-byte) len)
           (optimize (speed 3) (safety 1)))
  ;; A write with a write-cb whose bytes never left (the connection closed
  ;; under it): the write-cb will not run, so the event-cb hears of it as
  ;; cl-async's streamish-canceled.  Not after close-socket, which forgets
  ;; the write-cb, and never to the default handler.
  (when (and (= event cltcp:+ev-flushed+) (< status 0))
    (let ((event-cb (%sock-event-cb socket)))
      (when (and event-cb (%sock-write-cb socket))
        (let ((*in-event-handler* t))
          (funcall (%fn event-cb) (make-event-condition status socket)))))
    (return-from %socket-event nil))
  ;; After close-socket the application hears nothing more of this socket.
  ;; The flags are read once for the closed bit and a DATA event's keep bit.
  (let ((flags (%sock-flags socket)))
    (declare (type fixnum flags))
    (when (logtest +flag-closed+ flags)
      (return-from %socket-event nil))
    (when (= event cltcp:+ev-data+)
      (let ((read-cb (%sock-read-cb socket)))
        (when read-cb
          (if (logtest +flag-keep+ flags)
              (funcall (%fn read-cb) socket (%sock-stream socket))
              (funcall (%fn read-cb) socket (copy-foreign-octets data len)))))
      (return-from %socket-event nil)))
  (case event
    (#.cltcp:+ev-flushed+
     (let ((write-cb (%sock-write-cb socket)))
       (when write-cb (funcall (%fn write-cb) socket))))
    (#.cltcp:+ev-connect+
     (setf (%sock-connected-p socket) t)
     (unwind-protect
          (let ((connect-cb (%sock-connect-cb socket)))
            (when connect-cb (funcall (%fn connect-cb) socket)))
       (when (and (%sock-shutdown-pending-p socket) (not (%sock-closed-p socket)))
         (setf (%sock-shutdown-pending-p socket) nil)
         (with-status (socket)
           (cltcp:socket-shutdown (%sock-id socket))))))
    (#.cltcp:+ev-eof+
     (setf (%sock-peer-closed-p socket) t)
     (unwind-protect
          (%deliver socket (make-event-condition *uv-eof* socket))
       ;; Unless the event-cb closed it, C now closes gracefully: the queue is
       ;; still sent, but nothing more can be written.
       (setf (%sock-draining-p socket) t)))
    (#.cltcp:+ev-error+
     (unwind-protect
          (%deliver socket (make-event-condition status socket :socket))
       ;; C closes the socket as soon as we return.
       (setf (%sock-closed-p socket) t)))
    (#.cltcp:+ev-drain+
     (let ((drain-cb (%sock-drain-cb socket)))
       (when drain-cb (funcall (%fn drain-cb) socket len))))
    (#.cltcp:+ev-shutdown+
     (if (< status 0)
         (%deliver socket (make-event-condition status socket :socket))
         (let ((shutdown-cb (%sock-shutdown-cb socket)))
           (when shutdown-cb (funcall (%fn shutdown-cb) socket))))))
  nil)

;;; ---- sockets ----

(defun %init-socket (read-cb event-cb &key data stream connect-cb write-cb
                                           (read-timeout -1) (write-timeout -1)
                                           (dont-drain-read-buffer nil dont-drain-supplied-p)
                                           connect-timeout)
  ;; Every check comes before the socket exists: a bad argument leaves nothing.
  (check-arguments (read-cb callback) (event-cb callback)
                   (data (or null socket-data-designator) :data)
                   (connect-cb callback :connect-cb) (write-cb callback :write-cb)
                   (read-timeout timeout-seconds :read-timeout)
                   (write-timeout timeout-seconds :write-timeout)
                   (connect-timeout timeout-seconds :connect-timeout))
  (let* ((base (%current-base))
         ;; With :stream t, keep mode is assumed unless given explicitly.
         (keep (if dont-drain-supplied-p dont-drain-read-buffer stream))
         (socket (%make-tcp-socket :base base :read-cb read-cb :event-cb event-cb
                                   :flags (if keep +flag-keep+ 0)))
         (made nil))
    ;; Stored only when given (lisp/objects.lisp: the socket's extras).
    (setf (%sock-connect-cb socket) connect-cb
          (%sock-write-cb socket) write-cb)
    (with-new-handle (id index) (base socket :context :socket)
      (cltcp:socket-new id (event-base-id base) *event-callback-pointer* index))
    ;; From here the C socket exists: if setting it up fails, close it (its
    ;; CLOSE event frees the registry entry) rather than leave it half made.
    (unwind-protect
         (let ((id (%sock-id socket)))
           (with-status (socket)
             (when keep
               (cltcp:socket-set-read-mode id cltcp:+read-keep+))
             (cltcp:socket-set-timeouts id (%c-seconds read-timeout)
                                        (%c-seconds write-timeout))
             (when connect-timeout
               (cltcp:socket-set-connect-timeout id (%c-seconds connect-timeout))))
           ;; As in cl-async, :data is written at once: libcltcp queues it
           ;; until the socket is connected (by TCP-CONNECT or a later
           ;; CONNECT-TCP-SOCKET).
           (when data
             (write-socket-data socket data))
           (when stream
             (%make-socket-stream socket))
           (setf made t))
      (unless made
        (setf (%sock-closed-p socket) t)
        (cltcp:socket-close (%sock-id socket) cltcp:+close-now+)))
    (if stream
        (%sock-stream socket)
        socket)))

(defun init-tcp-socket (read-cb &rest args)
  "Make an unconnected socket (connect it with CONNECT-TCP-SOCKET).
Lambda list: (read-cb event-cb &key data stream connect-cb write-cb
(read-timeout -1) (write-timeout -1) dont-drain-read-buffer connect-timeout);
event-cb may also be passed as :event-cb.  Returns the socket, or its
async-io-stream when :stream is true.  :data (a string, sent as UTF-8, or
octets) is queued at once and sent as soon as CONNECT-TCP-SOCKET has connected
the socket, before anything written later.  :connect-timeout (seconds, beyond
cl-async) bounds the time from connecting (DNS included) to connected."
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (apply #'%init-socket read-cb event-cb keys)))

(defun connect-tcp-socket (socket/stream host port &key (event-cb nil event-cb-p))
  "Connect a socket made by INIT-TCP-SOCKET to HOST (IPv4 or IPv6 address, or a
host name looked up asynchronously) and PORT.  Success calls the connect-cb;
failure delivers a tcp-error (tcp-refused, tcp-timeout, dns-error ...) to the
event-cb.  Returns SOCKET/STREAM.  Signals a TYPE-ERROR for a HOST that is
not a string (or holds a NUL character) or a PORT that is not an integer from 0 to 65535, and SOCKET-CLOSED
for a closed socket."
  (let ((socket (%socket-of socket/stream)))
    (check-arguments (host host-name) (port port-number))
    (when event-cb-p
      (check-argument event-cb callback :event-cb))
    (%open-socket socket)
    (when event-cb-p
      (setf (%sock-event-cb socket) event-cb))
    (with-status (socket)
      (cltcp:socket-connect (%sock-id socket) host port))
    socket/stream))

(defun %tcp-connect (host port read-cb event-cb &rest keys &key data &allow-other-keys)
  ;; Checked before the socket is made (%INIT-SOCKET checks the rest).
  (check-arguments (host host-name) (port port-number)
                   (data (or null socket-data-designator) :data))
  ;; :data goes to %INIT-SOCKET, which queues it before the connect starts.
  (let ((socket/stream (apply #'%init-socket read-cb event-cb keys)))
    ;; A connect refused at once (bad port ...) must not leave the socket
    ;; behind: close it, then let the error through.
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (let ((socket (%socket-of socket/stream)))
                              (unless (%sock-closed-p socket)
                                (close-socket socket :force t))))))
      (connect-tcp-socket socket/stream host port))
    socket/stream))

(defun tcp-connect (host port read-cb &rest args)
  "Open a TCP connection to HOST (IPv4/IPv6 address or host name) and PORT.
Lambda list: (host port read-cb event-cb &key data stream connect-cb write-cb
(read-timeout -1) (write-timeout -1) dont-drain-read-buffer connect-timeout);
event-cb (NIL = *DEFAULT-EVENT-HANDLER*) may also be given as :event-cb.

read-cb: (lambda (socket octets)) with a fresh (simple-array (unsigned-byte 8) (*));
with :stream t (or :dont-drain-read-buffer t) (lambda (socket stream)), the
stream being NIL without :stream.  :data (string, sent as UTF-8, or octets)
is sent once connected.  connect-cb: (lambda (socket)) when connected.
write-cb: (lambda (socket)) once written data has left the queue.  Timeouts
in seconds: read = idle time since data last arrived, write = time without
progress on queued data; both start at the connection.  Returns the socket,
or an async-io-stream with :stream t.

Every argument is checked before anything is made: a TYPE-ERROR naming the
argument for a HOST that is not a string (or holds a NUL character), a PORT
that is not an integer from 0 to 65535, a callback that is neither NIL, a function nor a symbol, a timeout
that is neither NIL nor a real, or :data that is neither a string nor octets."
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (apply #'%tcp-connect host port read-cb event-cb keys)))

(define-condition deprecated-function (style-warning)
  ((name :initarg :name :reader deprecated-function-name)
   (replacement :initarg :replacement :reader deprecated-function-replacement))
  (:report (lambda (c s)
             (format s "~S is deprecated; use ~S instead."
                     (deprecated-function-name c) (deprecated-function-replacement c))))
  (:documentation "A style-warning signalled when a deprecated function (TCP-SEND) is called."))

(defun tcp-send (host port data read-cb &rest args)
  "Deprecated version of TCP-CONNECT: (tcp-send host port data read-cb event-cb &key ...)
sends DATA once connected.  Behaves like TCP-CONNECT and signals a style-warning."
  (warn 'deprecated-function :name 'tcp-send :replacement 'tcp-connect)
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (apply #'%tcp-connect host port read-cb event-cb :data data
           (alexandria:remove-from-plist keys :data))))

(declaim (inline %check-writable))
(defun %check-writable (socket)
  "Signal SOCKET-CLOSED unless SOCKET can still be written to (its loop gone
included: lisp/checks.lisp)."
  ;; One read of the flags for both bits, and the socket's own accessor of
  ;; the loop (%LOOP-GONE-P's is shared by every kind of handle, so its
  ;; dispatch is the slower many-class kind): this runs on every write.
  (when (or (logtest (logior +flag-closed+ +flag-draining+)
                     (the fixnum (%sock-flags socket)))
            (let ((base (%sock-base socket)))
              (or (null base) (event-base-closing base))))
    (%signal-closed socket)))

(defun %send-octets (socket octets start end)
  "Hand bytes START..END of OCTETS to libcltcp for SOCKET: one foreign call, the
bytes copied there before it returns.  With *BUFFER-WRITES* (the default) they
leave with the turn's other writes at the end of the turn; without, the kernel
takes what it can at once.  What the kernel does not take is queued.  A write-cb
on the socket asks for a flush notice -- also for zero bytes, whose notice then
comes once everything written before has left.  A failure signals the
condition of its code in the :CALL context: SOCKET-CLOSED (closed, and the
socket reads as closed from then on; after SHUTDOWN-SOCKET one that is also a
STREAMISH-BROKEN-PIPE), or another.  Shared by WRITE-SOCKET-DATA and the output
streams."
  ;; SOCKET is a socket (its callers' %SOCKET-OF): a class check per write
  ;; costs more than the rest of the Lisp side of it.
  (declare (type octets octets) (type fixnum start end)
           (optimize (speed 3) (safety 1)))
  (let ((notify (%sock-write-cb socket)))
    (when (or (< start end) notify)
      (with-status (socket)
        (cffi:with-pointer-to-vector-data (p octets)
          (cltcp:socket-write (%sock-id socket) (cffi:inc-pointer p start)
                              (max 0 (- end start))
                              (logior (if notify cltcp:+write-notify+ 0)
                                      (if *buffer-writes* 0 cltcp:+write-now+)))))))
  nil)

(declaim (inline %check-bounds))
(defun %check-bounds (start end length)
  "WRITE-SOCKET-DATA's :START and :END against a sequence of LENGTH: signals a
TYPE-ERROR naming the argument; returns the end to use.  Plain comparisons:
a type specifier built at run time would be parsed on every write."
  (declare (type (and fixnum unsigned-byte) length))
  (unless (and (typep start 'fixnum) (<= 0 start length))
    (error 'simple-type-error :datum start :expected-type `(integer 0 ,length)
                              :format-control "WRITE-SOCKET-DATA: :START ~S is not an index ~
                                               into the data (0 to ~D)."
                              :format-arguments (list start length)))
  (unless (or (null end) (and (typep end 'fixnum) (<= start end length)))
    (error 'simple-type-error :datum end :expected-type `(or null (integer ,start ,length))
                              :format-control "WRITE-SOCKET-DATA: :END ~S is not NIL or an ~
                                               index from :START (~D) to ~D."
                              :format-arguments (list end start length)))
  (or end length))

(defun write-socket-data (socket data &key (start 0) end
                                           (read-cb nil read-cb-p) (write-cb nil write-cb-p)
                                           (event-cb nil event-cb-p))
  "Send DATA (a string, encoded as UTF-8 with babel, or an octet vector), or the
part of it from :START to :END (indices into DATA: characters of a string,
octets of a vector; a bad index is a TYPE-ERROR naming it), on SOCKET (or its
stream).  The bytes are copied at once.  With *BUFFER-WRITES* true (the
default) the writes of one loop turn leave together at the end of the turn,
in one send; with NIL the kernel takes what it can at once.  What the kernel
does not take is queued.  Given callbacks replace the socket's; while the
socket has a write-cb, it runs once this write's bytes and all earlier ones
have left -- also for an empty write ((bytes nil) or :start = :end), the way to
act once everything before it has gone (close a Connection: close response).
Signals SOCKET-CLOSED on a closed socket, and a TYPE-ERROR naming the argument
for DATA that is neither a string nor a vector of octets, a bad index, or a
callback that is not NIL, a function or a symbol (then nothing was sent or
changed).  Returns NIL."
  (declare (optimize (speed 3) (safety 1)))
  (let ((socket (%socket-of socket)))
    (%check-writable socket)
    (when read-cb-p (check-argument read-cb callback :read-cb))
    (when write-cb-p (check-argument write-cb callback :write-cb))
    (when event-cb-p (check-argument event-cb callback :event-cb))
    (multiple-value-bind (octets start end)
        (typecase data
          (octets
           (values data start (%check-bounds start end (length data))))
          (string
           (let* ((end (%check-bounds start end (length data)))
                  (octets (babel:string-to-octets data :encoding :utf-8 :start start :end end)))
             (declare (type octets octets)) ; what babel returns
             (values octets 0 (length octets))))
          ((vector (unsigned-byte 8))
           (let ((all (coerce data 'octets)))
             (values all start (%check-bounds start end (length all)))))
          (t (%argument-error 'data data '(or string (vector (unsigned-byte 8))))))
      (declare (type octets octets) (type fixnum start end))
      (when read-cb-p (setf (%sock-read-cb socket) read-cb))
      (when write-cb-p (setf (%sock-write-cb socket) write-cb))
      (when event-cb-p (setf (%sock-event-cb socket) event-cb))
      (%send-octets socket octets start end)))
  nil)

(defun set-socket-timeouts (socket read-sec write-sec)
  "Set SOCKET's read and write timeouts in seconds (NIL clears one).  Read: idle
time since data last arrived; write: time that queued data makes no progress.
Expiry delivers tcp-timeout and closes the socket.  A non-positive number
counts as NIL.  Signals a TYPE-ERROR for a timeout that is neither NIL nor a
real, and SOCKET-CLOSED on a closed socket."
  (let ((socket (%socket-of socket)))
    (check-arguments (read-sec timeout-seconds) (write-sec timeout-seconds))
    (%open-socket socket)
    (with-status (socket)
      (cltcp:socket-set-timeouts (%sock-id socket) (%c-seconds read-sec)
                                 (%c-seconds write-sec)))
    nil))

(defun %socket-enable (socket read write on)
  "Set the sides READ and WRITE name (true) of SOCKET to ON (1) or off (0); the
others keep their state (-1)."
  (let ((socket (%open-socket socket)))
    (with-status (socket)
      (cltcp:socket-enable (%sock-id socket) (if read on -1) (if write on -1)))
    nil))

(defun enable-socket (socket &key read write)
  "Turn read (and/or write) monitoring of SOCKET back on.  Signals SOCKET-CLOSED
on a closed socket."
  (%socket-enable socket read write 1))

(defun disable-socket (socket &key read write)
  "Turn read (and/or write) monitoring of SOCKET off: a disabled read side neither
reads nor times out; a disabled write side still sends its queue but does not
time out.  Signals SOCKET-CLOSED on a closed socket."
  (%socket-enable socket read write 0))

(defun socket-closed-p (socket)
  "True once SOCKET was closed (by CLOSE-SOCKET, after an error, or after the
peer's EOF, when it only sends what is still queued), and for every socket of
an event loop that has exited."
  (let ((socket (%socket-of socket)))
    (or (%sock-closed-p socket) (%sock-draining-p socket) (%loop-gone-p socket))))

(defmethod close-socket (socket &key force)
  "Close SOCKET and forget its callbacks.  Data already written is still sent
first (so nothing written is lost); with :FORCE true the queue is dropped and
the connection closes at once.  Signals SOCKET-CLOSED when SOCKET was closed
already (or its event loop has exited)."
  (let ((socket (%open-socket socket)))
    (setf (%sock-closed-p socket) t
          ;; The application hears nothing more of it: no write-cb, and no
          ;; streamish-canceled for the writes its own close drops.
          (%sock-write-cb socket) nil)
    ;; RAW-STATUS: C may have begun closing it already (after the peer's
    ;; EOF), which is what is wanted.
    (cltcp:socket-close (%sock-id socket) (if force cltcp:+close-now+ cltcp:+close-flush+))
    nil))

(defmacro with-address-out ((buf buflen port family) &body call)
  "Run CALL, a libcltcp address query writing into the out-parameters BUF (of
BUFLEN chars), PORT and FAMILY; return (values address port family)."
  `(cffi:with-foreign-objects ((,buf :char 64) (,port :int) (,family :int))
     (let ((,buflen 64))
       ,@call)
     (values (cffi:foreign-string-to-lisp ,buf)
             (cffi:mem-ref ,port :int)
             (cffi:mem-ref ,family :int))))

;;; ---- beyond the reference ----

(defun %socket-address (socket which)
  (let ((socket (%open-socket socket)))
    (with-status (socket)
      (with-address-out (buf buflen port family)
        (cltcp:socket-address buf buflen port family (%sock-id socket) which)))))

(defun socket-local-address (socket)
  "The local address of a connected SOCKET: (values address port family).
Signals SOCKET-CLOSED on a closed socket, a TCP-ERROR (ENOTCONN) on one not
connected yet."
  (%socket-address socket 0))

(defun socket-peer-address (socket)
  "The peer's address of a connected SOCKET: (values address port family).
Signals SOCKET-CLOSED on a closed socket, a TCP-ERROR (ENOTCONN) on one not
connected yet."
  (%socket-address socket 1))

(defun set-socket-nodelay (socket &optional (enable t))
  "Turn Nagle's algorithm off (ENABLE true: TCP_NODELAY) or back on.  Signals
SOCKET-CLOSED on a closed socket."
  (let ((socket (%open-socket socket)))
    (with-status (socket)
      (cltcp:socket-nodelay (%sock-id socket) (if enable 1 0)))
    nil))

(defun set-socket-keepalive (socket enable &optional (delay 60))
  "Turn TCP keep-alive on or off; DELAY (a non-negative real, rounded, at least 1)
is the idle seconds before the first probe.  Signals SOCKET-CLOSED on a closed
socket, a TYPE-ERROR for a bad DELAY."
  (let ((socket (%socket-of socket)))
    (check-argument delay (real 0))
    (%open-socket socket)
    (with-status (socket)
      (cltcp:socket-keepalive (%sock-id socket) (if enable 1 0)
                              (max 1 (min #xffffffff (round delay)))))
    nil))

(defun set-socket-connect-timeout (socket seconds)
  "Bound the time from connecting (DNS included) to connected; NIL = none.  Set it
before CONNECT-TCP-SOCKET.  Expiry delivers tcp-timeout.  Separate from the
read timeout.  Signals SOCKET-CLOSED on a closed socket, a TYPE-ERROR for
SECONDS that are neither NIL nor a real."
  (let ((socket (%socket-of socket)))
    (check-argument seconds timeout-seconds)
    (%open-socket socket)
    (with-status (socket)
      (cltcp:socket-set-connect-timeout (%sock-id socket) (%c-seconds seconds)))
    nil))

(defun shutdown-socket (socket &key shutdown-cb)
  "Half-close: once everything written so far is sent, shut the write side down
(the peer reads EOF); reading goes on.  On a socket still connecting, this
happens once it connects.  SHUTDOWN-CB (lambda (socket)) runs when it is done.
Later writes signal SOCKET-CLOSED, and so does this on a closed socket."
  (let ((socket (%socket-of socket)))
    (check-argument shutdown-cb callback :shutdown-cb)
    (%open-socket socket)
    (when shutdown-cb
      (setf (%sock-shutdown-cb socket) shutdown-cb))
    (if (%sock-connected-p socket)
        (with-status (socket)
          (cltcp:socket-shutdown (%sock-id socket)))
        ;; libcltcp refuses a shutdown before the connection (ESTATE): do it
        ;; from the CONNECT event instead.
        (setf (%sock-shutdown-pending-p socket) t))
    nil))

(defun socket-queued-bytes (socket)
  "Bytes written to SOCKET that the kernel has not taken yet (backpressure).
Signals SOCKET-CLOSED on a closed socket."
  (let ((socket (%open-socket socket)))
    (cffi:with-foreign-object (n :size)
      (with-status (socket)
        (cltcp:socket-queued n (%sock-id socket)))
      (cffi:mem-ref n :size))))

(defun %socket-send-count (socket)
  "How many sends libcltcp has made on SOCKET (cltcp_socket_send_count): the
writes of one loop turn cost one when the kernel takes them at once.  For tests
and statistics; NIL once the socket is gone."
  (let ((socket (%socket-of socket)))
    (cffi:with-foreign-object (n :uint64)
      ;; RAW-STATUS: a failure answers NIL.
      (when (zerop (cltcp:socket-send-count n (%sock-id socket)))
        (cffi:mem-ref n :uint64)))))

(defun set-socket-drain-mark (socket mark &optional drain-cb)
  "Backpressure: once more than MARK bytes were queued on SOCKET and the queue
falls to MARK or below, call DRAIN-CB as (lambda (socket queued-bytes)).
MARK NIL turns it off.  Signals SOCKET-CLOSED on a closed socket, a TYPE-ERROR
for a MARK that is neither NIL nor a non-negative integer or a bad DRAIN-CB."
  (let ((socket (%socket-of socket)))
    (check-arguments (mark (or null (unsigned-byte 64))) (drain-cb callback))
    (%open-socket socket)
    (setf (%sock-drain-cb socket) drain-cb)
    (with-status (socket)
      (cltcp:socket-set-drain-mark (%sock-id socket) (if mark mark (ldb (byte 64 0) -1))))
    nil))

(defun socket-peer-closed-p (socket)
  "True once the peer's EOF arrived on SOCKET (bytes may still be buffered)."
  (%sock-peer-closed-p (%socket-of socket)))

(defun socket-buffered-bytes (socket)
  "Keep mode (:stream t or :dont-drain-read-buffer t): the number of received
bytes waiting to be read with READ-SOCKET-DATA.  Always 0 in drain mode.  On a
closed socket it counts what is still readable (see READ-SOCKET-DATA), so it
does not signal SOCKET-CLOSED."
  (let* ((socket (%socket-of socket))
         (leftover (%sock-leftover socket)))
    (cond (leftover
           (- (length leftover) (%sock-leftover-start socket)))
          ((%c-handle-gone-p socket) 0)
          (t
           (cffi:with-foreign-object (n :size)
             ;; RAW-STATUS: a socket C closed has nothing buffered.
             (if (zerop (cltcp:socket-buffered n (%sock-id socket)))
                 (cffi:mem-ref n :size)
                 0))))))

(defun read-socket-data (socket buffer &key (start 0) end)
  "Keep mode: move up to (- END START) buffered bytes of SOCKET into BUFFER (a
(simple-array (unsigned-byte 8) (*))) from START, and return how many were
moved; 0 when nothing is buffered.  Never blocks.  Bytes still buffered when
the socket closes stay readable: on a closed socket this reads them, then
answers 0 (the end of input a stream reports), rather than signal
SOCKET-CLOSED.  Whether the peer closed is SOCKET-PEER-CLOSED-P.  Signals a
TYPE-ERROR naming the argument for a BUFFER that is not such a vector or for
START / END that are not bounding indices of it."
  (check-argument buffer octets)
  ;; Bound again so that the declarations are bound ones (ECL warns about a
  ;; free type declaration for a variable of an enclosing form).
  (let* ((buffer buffer)
         (socket (%socket-of socket))
         (length (length buffer))
         (end (or end length))
         (leftover (%sock-leftover socket)))
    (declare (type octets buffer))
    ;; C writes into BUFFER from START to END: both must lie inside it.
    (unless (and (typep end 'fixnum) (<= 0 end length))
      (%argument-error :end end `(or null (integer 0 ,length))))
    (unless (and (typep start 'fixnum) (<= 0 start end))
      (%argument-error :start start `(integer 0 ,end)))
    (let ((start start) (end end))
      (declare (type fixnum start end))
      (cond ((= start end) 0)
            (leftover
             (let* ((from (%sock-leftover-start socket))
                    (count (min (- end start) (- (length leftover) from))))
               (replace buffer leftover :start1 start :end1 (+ start count) :start2 from)
               (setf (%sock-leftover-start socket) (+ from count))
               (when (= (+ from count) (length leftover))
                 (setf (%sock-leftover socket) nil (%sock-leftover-start socket) 0))
               count))
            ;; A dead loop's id may name a later loop's socket.
            ((%c-handle-gone-p socket) 0)
            (t
             (cffi:with-foreign-object (n :size)
               ;; RAW-STATUS: a socket C closed reads as the end of input.
               (let ((rc (cffi:with-pointer-to-vector-data (p buffer)
                           (cltcp:socket-read n (%sock-id socket) (cffi:inc-pointer p start)
                                              (- end start)))))
                 (if (zerop rc) (cffi:mem-ref n :size) 0))))))))
