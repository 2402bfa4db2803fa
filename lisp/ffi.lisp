;;;; ffi.lisp -- mirror of capi/include/cltcp.h, in the header's order.
;;;;
;;;; One definition per declaration and nothing else but the status type.
;;;; C name cltcp_foo_bar is CLTCP:FOO-BAR; enum constant CLTCP_EV_DATA is
;;;; CLTCP:+EV-DATA+ (the one exception: CLTCP_AF_* are +FAMILY-*+, because
;;;; CL-ASYNC-TCP:+AF-INET+ is cl-async's number, which is another).
;;;;
;;;; Status codes are checked here, in one place, as iolib checks errno: a
;;;; function whose C result is a status returns the foreign type STATUS,
;;;; whose translator returns a non-negative code and signals the condition
;;;; of a negative one (CL-ASYNC-TCP::%STATUS-ERROR, lisp/checks.lisp: the
;;;; class CODE-CONDITION-CLASS names for the code, about the object the
;;;; caller named with WITH-STATUS).
;;;; The translator is expanded inline into each function (CFFI's
;;;; EXPAND-FROM-FOREIGN at compile time), so the check is one comparison and
;;;; a branch, with no generic dispatch per call.  A function every caller
;;;; of which tolerates a failure -- closing a handle that may be gone
;;;; already, reading what may not be there, the thread-safe wake-up --
;;;; returns RAW-STATUS, the plain int, and its callers say what they do
;;;; with a negative code.

(in-package #:cl-async-tcp.ffi)

(declaim (ftype (function (fixnum) nil) cl-async-tcp::%status-error))

(eval-when (:compile-toplevel :load-toplevel :execute)
  (cffi:define-foreign-type status-type ()
    ()
    (:actual-type :int)
    (:simple-parser status)
    (:documentation "A libcltcp status: 0 or a positive count, or a negative code, which
is signalled."))

  (defmethod cffi:expand-from-foreign (form (type status-type))
    (let ((rc (gensym "RC")))
      `(let ((,rc ,form))
         (declare (type fixnum ,rc))
         (if (< ,rc 0) (cl-async-tcp::%status-error ,rc) ,rc))))

  (defmethod cffi:translate-from-foreign (value (type status-type))
    (if (< value 0) (cl-async-tcp::%status-error value) value)))

(export '(status raw-status))
(cffi:defctype raw-status :int
  "A libcltcp status returned as it is, negative codes included: for the calls
whose callers decide what a failure means.")

(defmacro defconst (name value &optional doc)
  "DEFCONSTANT and export; the docstring names the C constant (cltcp.h says
what it means)."
  `(progn (export ',name)
          (defconstant ,name ,value
            ,(or doc (format nil "CLTCP_~A in capi/include/cltcp.h."
                             (substitute #\_ #\- (string-trim "+" (symbol-name name))))))))

(defmacro defun-c ((c-name lisp-name) return-type &body args)
  "CFFI:DEFCFUN, declaimed inline (the hot calls are one alien call each) and
exported; the docstring names the C function (cltcp.h documents it)."
  `(progn
     (export ',lisp-name)
     (declaim (inline ,lisp-name))
     (cffi:defcfun (,c-name ,lisp-name) ,return-type
       ,(format nil "~A in capi/include/cltcp.h~@[; ~A~]." c-name
                (case return-type
                  (status "a negative status signals its condition (the type STATUS)")
                  (raw-status "returns the status as it is (the type RAW-STATUS)")))
       ,@args)))

;;; ---- Version ----

;; CLTCP_ABI_VERSION is CL-ASYNC-TCP::+ABI-VERSION+ (lisp/library.lisp),
;; stated there once: the load-time handshake needs it before this file.
(defun-c ("cltcp_abi_version" abi-version) :int)
(defun-c ("cltcp_version" version) :int)
(defun-c ("cltcp_version_string" version-string) :string)

;;; ---- Errors ----
;;; The library's own codes (CLTCP_ERRNO_MAP).  libuv's codes are platform
;;; errno values; conditions.lisp learns them by name through ERR-NAME.

(defconst +eclosed+ -20001)
(defconst +ekind+ -20002)
(defconst +ebusy+ -20003)
(defconst +emode+ -20004)
(defconst +estate+ -20005)
(defconst +enotfound+ -20010)
(defconst +enodata+ -20011)
(defconst +eservfail+ -20012)
(defconst +ednsrefused+ -20013)
(defconst +ednstimeout+ -20014)
(defconst +ebadname+ -20015)
(defconst +ednsformat+ -20016)
(defconst +ednsconn+ -20017)
(defconst +edns+ -20018)
(defconst +ednsconfig+ -20019)

(defun-c ("cltcp_err_name" err-name) :string (code :int))
(defun-c ("cltcp_strerror" strerror) :string (code :int))

;;; ---- Ids, events, callbacks ----

(export 'id)
(cffi:defctype id :uint64 "cltcp_id: a handle's id (slot and generation); 0 names none.")

(defconst +kind-none+ 0)
(defconst +kind-loop+ 1)
(defconst +kind-socket+ 2)
(defconst +kind-server+ 3)
(defconst +kind-timer+ 4)
(defconst +kind-dns+ 5)
(defconst +kind-signal+ 6)
(defconst +kind-async+ 7)
(defconst +kind-last+ 7)

(defconst +ev-connect+ 1)
(defconst +ev-data+ 2)
(defconst +ev-eof+ 3)
(defconst +ev-error+ 4)
(defconst +ev-flushed+ 5)
(defconst +ev-drain+ 6)
(defconst +ev-shutdown+ 7)
(defconst +ev-accept+ 8)
(defconst +ev-timer+ 9)
(defconst +ev-close+ 10)
(defconst +ev-signal+ 11)
(defconst +ev-async+ 12)

;; typedef void (*cltcp_cb)(uintptr_t ctx, cltcp_id id, int event, int status,
;;                          cltcp_id other, const uint8_t *data, size_t len);
;; The one callback of this type is defined in callbacks.lisp.

(defun-c ("cltcp_id_kind" id-kind) :int (id id))
(defun-c ("cltcp_id_alive" id-alive) status (alive :pointer) (id id))

;;; ---- Loop ----

(defun-c ("cltcp_loop_new" loop-new) status (loop :pointer))

(defconst +run-default+ 0)
(defconst +run-once+ 1)
(defconst +run-nowait+ 2)

(defun-c ("cltcp_loop_run" loop-run) raw-status (alive :pointer) (loop id) (mode :int))
(defun-c ("cltcp_loop_stop" loop-stop) raw-status (loop id))
(defun-c ("cltcp_loop_close" loop-close) raw-status (loop id))
(defun-c ("cltcp_loop_recover" loop-recover) raw-status (loop id))
(defun-c ("cltcp_loop_set_wakeup" loop-set-wakeup) raw-status (loop id) (seconds :double))
(defun-c ("cltcp_loop_now" loop-now) status (ms :pointer) (loop id))
(defun-c ("cltcp_loop_handle_count" loop-handle-count) status (count :pointer) (loop id))

;;; ---- Timers ----

(defun-c ("cltcp_timer_start" timer-start) status
  (timer :pointer) (loop id) (seconds :double) (repeat-seconds :double)
  (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_timer_close" timer-close) raw-status (timer id))

;;; ---- Signals ----

(defun-c ("cltcp_signal_start" signal-start) status
  (sig :pointer) (loop id) (signum :int) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_signal_close" signal-close) raw-status (sig id))
(defun-c ("cltcp_signal_signum" signal-signum) status (signum :pointer) (sig id))

;;; ---- Async wake-ups ----

(defun-c ("cltcp_async_new" async-new) status
  (async :pointer) (loop id) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_async_send" async-send) raw-status (async id))
(defun-c ("cltcp_async_close" async-close) raw-status (async id))

;;; ---- Any handle: references, enumeration ----

(defun-c ("cltcp_handle_ref" handle-ref) raw-status (handle id) (ref :int))
(defun-c ("cltcp_handle_refd" handle-refd) status (ref :pointer) (handle id))

(defconst +state-new+ 1)
(defconst +state-resolving+ 2)
(defconst +state-connecting+ 3)
(defconst +state-connected+ 4)
(defconst +state-active+ 5)
(defconst +state-closing+ 6)

(defconst +info-ref+ 1)
(defconst +info-accepted+ 2)

(export '(handle-info kind state flags detail)) ; the struct and its slots (and ID)
(cffi:defcstruct (handle-info :class handle-info)
  "cltcp_handle_info, what cltcp_loop_handles fills in."
  (id id)
  (kind :int)
  (state :int)
  (flags :int)
  (detail :int))

(defun-c ("cltcp_loop_handles" loop-handles) status
  (out :pointer) (max :size) (n :pointer) (loop id))
(defun-c ("cltcp_loop_kind_counts" loop-kind-counts) status
  (counts :pointer) (ncounts :size) (loop id))

;;; ---- Sockets ----

(defun-c ("cltcp_socket_new" socket-new) status
  (sock :pointer) (loop id) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_socket_set_cb" socket-set-cb) raw-status
  (sock id) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_socket_connect" socket-connect) status
  (sock id) (host :string) (port :int))

(defconst +read-drain+ 0)
(defconst +read-keep+ 1)

(defun-c ("cltcp_socket_set_read_mode" socket-set-read-mode) status (sock id) (mode :int))
(defun-c ("cltcp_socket_buffered" socket-buffered) raw-status (n :pointer) (sock id))
(defun-c ("cltcp_socket_read" socket-read) raw-status
  (n :pointer) (sock id) (dst :pointer) (max :size))

(defconst +write-notify+ 1)
(defconst +write-now+ 2)

(defun-c ("cltcp_socket_write" socket-write) status
  (sock id) (data :pointer) (len :size) (flags :int))
(defun-c ("cltcp_socket_queued" socket-queued) status (n :pointer) (sock id))
(defun-c ("cltcp_socket_send_count" socket-send-count) raw-status (n :pointer) (sock id))
(defun-c ("cltcp_socket_set_drain_mark" socket-set-drain-mark) status (sock id) (mark :size))
(defun-c ("cltcp_socket_set_timeouts" socket-set-timeouts) status
  (sock id) (read-seconds :double) (write-seconds :double))
(defun-c ("cltcp_socket_set_connect_timeout" socket-set-connect-timeout) status
  (sock id) (seconds :double))
(defun-c ("cltcp_socket_enable" socket-enable) status (sock id) (read :int) (write :int))
(defun-c ("cltcp_socket_enabled" socket-enabled) status
  (read :pointer) (write :pointer) (sock id))
(defun-c ("cltcp_socket_shutdown" socket-shutdown) status (sock id))

(defconst +close-now+ 0)
(defconst +close-flush+ 1)

(defun-c ("cltcp_socket_close" socket-close) raw-status (sock id) (mode :int))
(defun-c ("cltcp_socket_nodelay" socket-nodelay) status (sock id) (enable :int))
(defun-c ("cltcp_socket_keepalive" socket-keepalive) status
  (sock id) (enable :int) (delay-seconds :unsigned-int))
(defun-c ("cltcp_socket_address" socket-address) status
  (buf :pointer) (buflen :size) (port :pointer) (family :pointer) (sock id) (which :int))

;;; ---- Servers ----

(defun-c ("cltcp_server_listen" server-listen) status
  (server :pointer) (loop id) (host :string) (port :int) (backlog :int)
  (server-cb :pointer) (server-ctx :uintptr) (sock-cb :pointer) (sock-ctx :uintptr))
(defconst +listen-reuseport+ 1)

(defun-c ("cltcp_server_listen_ex" server-listen-ex) status
  (server :pointer) (loop id) (host :string) (port :int) (backlog :int) (flags :int)
  (server-cb :pointer) (server-ctx :uintptr) (sock-cb :pointer) (sock-ctx :uintptr))
(defun-c ("cltcp_server_address" server-address) status
  (buf :pointer) (buflen :size) (port :pointer) (family :pointer) (server id))
(defun-c ("cltcp_server_port" server-port) status (port :pointer) (server id))
(defun-c ("cltcp_server_close" server-close) raw-status (server id))

;;; ---- DNS ----

;; CLTCP_AF_UNSPEC, CLTCP_AF_INET, CLTCP_AF_INET6 (see the top of the file).
(defconst +family-unspec+ 0 "CLTCP_AF_UNSPEC in capi/include/cltcp.h.")
(defconst +family-inet+ 4 "CLTCP_AF_INET in capi/include/cltcp.h (not AS:+AF-INET+, 2).")
(defconst +family-inet6+ 6 "CLTCP_AF_INET6 in capi/include/cltcp.h (not AS:+AF-INET6+, 10).")

(export '(addr family))             ; the struct and its slot names
(cffi:defcstruct (addr :class addr)
  "cltcp_addr: one address a lookup found (family, numeric text)."
  (family :int)
  (addr :char :count 48))

;; typedef void (*cltcp_dns_cb)(uintptr_t ctx, cltcp_id req, int status,
;;                              const cltcp_addr *addrs, size_t n);
;; Its Lisp side belongs to lisp/dns.lisp.

(defun-c ("cltcp_dns_lookup" dns-lookup) status
  (req :pointer) (loop id) (host :string) (family :int) (cb :pointer) (ctx :uintptr))
;; typedef void (*cltcp_dns_name_cb)(uintptr_t ctx, cltcp_id req, int status,
;;                                   const char *name, size_t len);
;; Its Lisp side belongs to lisp/dns.lisp.

(defun-c ("cltcp_dns_reverse" dns-reverse) status
  (req :pointer) (loop id) (addr :string) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_dns_cancel" dns-cancel) raw-status (req id))
(defun-c ("cltcp_loop_set_dns_servers" loop-set-dns-servers) status (loop id) (servers :string))
(defun-c ("cltcp_loop_set_dns_timeout" loop-set-dns-timeout) status
  (loop id) (seconds :double) (tries :int))
