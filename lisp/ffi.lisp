;;;; ffi.lisp -- mirror of capi/include/cltcp.h, in the header's order.
;;;;
;;;; One definition per declaration and nothing else: no policy, no error
;;;; checking (callers check status codes in one place, CHECK-STATUS in
;;;; conditions.lisp).  C name cltcp_foo_bar is CLTCP:FOO-BAR; enum constant
;;;; CLTCP_EV_DATA is CLTCP:+EV-DATA+.  Every function returns the raw int.

(in-package #:cl-async-tcp.ffi)

(defmacro defconst (name value &optional doc)
  `(progn (export ',name)
          (defconstant ,name ,value ,@(when doc (list doc)))))

(defmacro defun-c ((c-name lisp-name) return-type &body args)
  "CFFI:DEFCFUN, declaimed inline (the hot calls are one alien call each) and exported."
  `(progn
     (export ',lisp-name)
     (declaim (inline ,lisp-name))
     (cffi:defcfun (,c-name ,lisp-name) ,return-type ,@args)))

;;; ---- Version ----

(defconst +abi-version+ 3)
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
(cffi:defctype id :uint64)

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
(defun-c ("cltcp_id_alive" id-alive) :int (alive :pointer) (id id))

;;; ---- Loop ----

(defun-c ("cltcp_loop_new" loop-new) :int (loop :pointer))

(defconst +run-default+ 0)
(defconst +run-once+ 1)
(defconst +run-nowait+ 2)

(defun-c ("cltcp_loop_run" loop-run) :int (alive :pointer) (loop id) (mode :int))
(defun-c ("cltcp_loop_stop" loop-stop) :int (loop id))
(defun-c ("cltcp_loop_close" loop-close) :int (loop id))
(defun-c ("cltcp_loop_recover" loop-recover) :int (loop id))
(defun-c ("cltcp_loop_set_wakeup" loop-set-wakeup) :int (loop id) (seconds :double))
(defun-c ("cltcp_loop_now" loop-now) :int (ms :pointer) (loop id))
(defun-c ("cltcp_loop_handle_count" loop-handle-count) :int (count :pointer) (loop id))

;;; ---- Timers ----

(defun-c ("cltcp_timer_start" timer-start) :int
  (timer :pointer) (loop id) (seconds :double) (repeat-seconds :double)
  (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_timer_close" timer-close) :int (timer id))

;;; ---- Signals ----

(defun-c ("cltcp_signal_start" signal-start) :int
  (sig :pointer) (loop id) (signum :int) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_signal_close" signal-close) :int (sig id))
(defun-c ("cltcp_signal_signum" signal-signum) :int (signum :pointer) (sig id))

;;; ---- Async wake-ups ----

(defun-c ("cltcp_async_new" async-new) :int
  (async :pointer) (loop id) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_async_send" async-send) :int (async id))
(defun-c ("cltcp_async_close" async-close) :int (async id))

;;; ---- Any handle: references, enumeration ----

(defun-c ("cltcp_handle_ref" handle-ref) :int (handle id) (ref :int))
(defun-c ("cltcp_handle_refd" handle-refd) :int (ref :pointer) (handle id))

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
  (id id)
  (kind :int)
  (state :int)
  (flags :int)
  (detail :int))

(defun-c ("cltcp_loop_handles" loop-handles) :int
  (out :pointer) (max :size) (n :pointer) (loop id))
(defun-c ("cltcp_loop_kind_counts" loop-kind-counts) :int
  (counts :pointer) (ncounts :size) (loop id))

;;; ---- Sockets ----

(defun-c ("cltcp_socket_new" socket-new) :int
  (sock :pointer) (loop id) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_socket_set_cb" socket-set-cb) :int
  (sock id) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_socket_connect" socket-connect) :int
  (sock id) (host :string) (port :int))

(defconst +read-drain+ 0)
(defconst +read-keep+ 1)

(defun-c ("cltcp_socket_set_read_mode" socket-set-read-mode) :int (sock id) (mode :int))
(defun-c ("cltcp_socket_buffered" socket-buffered) :int (n :pointer) (sock id))
(defun-c ("cltcp_socket_read" socket-read) :int
  (n :pointer) (sock id) (dst :pointer) (max :size))

(defconst +write-notify+ 1)
(defconst +write-now+ 2)

(defun-c ("cltcp_socket_write" socket-write) :int
  (sock id) (data :pointer) (len :size) (flags :int))
(defun-c ("cltcp_socket_queued" socket-queued) :int (n :pointer) (sock id))
(defun-c ("cltcp_socket_send_count" socket-send-count) :int (n :pointer) (sock id))
(defun-c ("cltcp_socket_set_drain_mark" socket-set-drain-mark) :int (sock id) (mark :size))
(defun-c ("cltcp_socket_set_timeouts" socket-set-timeouts) :int
  (sock id) (read-seconds :double) (write-seconds :double))
(defun-c ("cltcp_socket_set_connect_timeout" socket-set-connect-timeout) :int
  (sock id) (seconds :double))
(defun-c ("cltcp_socket_enable" socket-enable) :int (sock id) (read :int) (write :int))
(defun-c ("cltcp_socket_enabled" socket-enabled) :int
  (read :pointer) (write :pointer) (sock id))
(defun-c ("cltcp_socket_shutdown" socket-shutdown) :int (sock id))

(defconst +close-now+ 0)
(defconst +close-flush+ 1)

(defun-c ("cltcp_socket_close" socket-close) :int (sock id) (mode :int))
(defun-c ("cltcp_socket_nodelay" socket-nodelay) :int (sock id) (enable :int))
(defun-c ("cltcp_socket_keepalive" socket-keepalive) :int
  (sock id) (enable :int) (delay-seconds :unsigned-int))
(defun-c ("cltcp_socket_address" socket-address) :int
  (buf :pointer) (buflen :size) (port :pointer) (family :pointer) (sock id) (which :int))

;;; ---- Servers ----

(defun-c ("cltcp_server_listen" server-listen) :int
  (server :pointer) (loop id) (host :string) (port :int) (backlog :int)
  (server-cb :pointer) (server-ctx :uintptr) (sock-cb :pointer) (sock-ctx :uintptr))
(defconst +listen-reuseport+ 1)

(defun-c ("cltcp_server_listen_ex" server-listen-ex) :int
  (server :pointer) (loop id) (host :string) (port :int) (backlog :int) (flags :int)
  (server-cb :pointer) (server-ctx :uintptr) (sock-cb :pointer) (sock-ctx :uintptr))
(defun-c ("cltcp_server_address" server-address) :int
  (buf :pointer) (buflen :size) (port :pointer) (family :pointer) (server id))
(defun-c ("cltcp_server_port" server-port) :int (port :pointer) (server id))
(defun-c ("cltcp_server_close" server-close) :int (server id))

;;; ---- DNS ----

(defconst +af-unspec+ 0)
(defconst +af-inet+ 4)
(defconst +af-inet6+ 6)

(export '(addr family))             ; the struct and its slot names
(cffi:defcstruct (addr :class addr)
  (family :int)
  (addr :char :count 48))

;; typedef void (*cltcp_dns_cb)(uintptr_t ctx, cltcp_id req, int status,
;;                              const cltcp_addr *addrs, size_t n);
;; Its Lisp side belongs to lisp/dns.lisp.

(defun-c ("cltcp_dns_lookup" dns-lookup) :int
  (req :pointer) (loop id) (host :string) (family :int) (cb :pointer) (ctx :uintptr))
;; typedef void (*cltcp_dns_name_cb)(uintptr_t ctx, cltcp_id req, int status,
;;                                   const char *name, size_t len);
;; Its Lisp side belongs to lisp/dns.lisp.

(defun-c ("cltcp_dns_reverse" dns-reverse) :int
  (req :pointer) (loop id) (addr :string) (cb :pointer) (ctx :uintptr))
(defun-c ("cltcp_dns_cancel" dns-cancel) :int (req id))
(defun-c ("cltcp_loop_set_dns_servers" loop-set-dns-servers) :int (loop id) (servers :string))
(defun-c ("cltcp_loop_set_dns_timeout" loop-set-dns-timeout) :int
  (loop id) (seconds :double) (tries :int))
