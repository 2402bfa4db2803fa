;;;; package.lisp -- the CL-ASYNC-TCP package (nickname AS when it is free).
;;;;
;;;; Exports are grouped by feature.  Names from cl-async's TCP reference come
;;;; first, then cl-async's other names for the same things (so programs
;;;; written against either vocabulary run), then what this library adds.
;;;; The stream and DNS names are exported here already so that
;;;; lisp/stream.lisp and lisp/dns.lisp only have to define them.

;;; The nickname AS is cl-async's.  It is taken at load time (after the
;;; DEFPACKAGE) and only when no other package holds it, so that this
;;; library loads beside cl-async.  The DEFPACKAGE itself names no nickname,
;;; and a reload first drops the one we took, so the DEFPACKAGE never differs
;;; from the package it finds.
(eval-when (:compile-toplevel :load-toplevel :execute)
  (let ((package (find-package '#:cl-async-tcp)))
    (when package
      (rename-package package (package-name package)
                      (remove "AS" (package-nicknames package) :test #'string=)))))

(defpackage #:cl-async-tcp
  (:use #:cl)
  (:documentation "cl-async's documented TCP API -- event loop, delays and intervals,
TCP clients and servers, streams, DNS, and the tcp-*/socket-* conditions -- over
libcltcp (libuv + c-ares).  Nickname AS, cl-async's, unless another package
(cl-async itself) holds it already: then use CL-ASYNC-TCP: or a package-local
nickname.")
  (:export
   ;; ---- event loop (cl-async's event-loop page) ----
   #:start-event-loop
   #:with-event-loop
   #:exit-event-loop
   #:add-event-loop-exit-callback
   #:event-loop-running-p
   #:*default-event-handler*
   #:*catch-application-errors*
   #:*event-base*
   #:delay
   #:with-delay
   #:interval
   #:with-interval
   #:remove-interval
   #:free-event
   #:remove-event
   #:event-freed-p
   ;; ---- base conditions ----
   #:event-info
   #:event-error
   #:event-errcode
   #:event-errmsg
   #:event-errname
   ;; which condition class a code makes (extensible with EQL methods)
   #:code-condition-class
   #:error-code
   ;; ---- TCP functions (the reference) ----
   #:tcp-connect
   #:tcp-send
   #:init-tcp-socket
   #:connect-tcp-socket
   #:tcp-server
   #:close-tcp-server
   #:write-socket-data
   #:set-socket-timeouts
   #:enable-socket
   #:disable-socket
   #:socket-closed-p
   #:close-socket
   ;; ---- classes and accessors (the reference) ----
   #:socket
   #:tcp-socket
   #:socket-c
   #:socket-data
   ;; ---- TCP conditions (the reference) ----
   #:tcp-info
   #:tcp-error
   #:tcp-eof
   #:tcp-timeout
   #:tcp-refused
   #:tcp-reset
   #:tcp-accept-error
   #:tcp-accept-error-listener
   #:tcp-accept-error-tcp-server
   #:socket-closed
   #:tcp-server-bind-error
   ;; ---- cl-async's other names for these conditions ----
   #:socket-info
   #:socket-error
   #:socket-eof
   #:socket-reset
   #:socket-timeout
   #:socket-refused
   #:socket-aborted
   #:socket-address-in-use
   #:socket-accept-error
   ;; ---- beyond the reference ----
   #:tcp-server-port
   #:tcp-server-address
   #:tcp-server-closed-p
   #:socket-local-address
   #:socket-peer-address
   #:set-socket-nodelay
   #:set-socket-keepalive
   #:set-socket-connect-timeout
   #:shutdown-socket
   #:socket-queued-bytes
   #:set-socket-drain-mark
   #:socket-buffered-bytes
   #:read-socket-data
   #:socket-peer-closed-p
   #:socket-stream
   #:registry-live-count
   #:deprecated-function
   ;; ---- streams (defined in lisp/stream.lisp) ----
   #:async-stream
   #:async-input-stream
   #:async-output-stream
   #:async-io-stream
   #:stream-socket
   #:async-stream-empty
   ;; ---- DNS (dns-error in conditions.lisp, the rest in lisp/dns.lisp) ----
   #:dns-lookup
   #:dns-error
   #:+af-inet+
   #:+af-inet6+
   #:+af-unspec+
   ;; beyond cl-async (lisp/dns.lisp)
   #:dns-lookup-all
   #:cancel-dns-lookup
   #:dns-error-host
   #:set-dns-servers
   #:set-dns-timeout
   ;; ---- cl-async's octet names, write buffering, streamish-* conditions
   ;; (lisp/octets.lisp, lisp/conditions.lisp) ----
   #:octet
   #:octet-vector
   #:bytes
   #:*buffer-writes*
   #:*buffer-size*
   #:streamish
   #:streamish-info
   #:streamish-error
   #:streamish-eof
   #:streamish-closed
   #:streamish-broken-pipe
   #:streamish-canceled
   ;; ==== issue 10: the rest of cl-async's names (compat) ====
   ;; The names cl-async exports that are not here are listed in README.md,
   ;; "Not provided", with the reason.
   ;; generic functions and classes (objects.lisp, socket.lisp, server.lisp, compat.lisp)
   #:close-socket-server
   #:ref
   #:unref
   #:handle-error
   #:socket-socket
   #:socket-accept-error-listener
   #:socket-accept-error-tcp-server
   ;; cl-async's streamish functions (compat.lisp; the conditions are above)
   #:close-streamish
   #:streamish-write
   #:streamish-closed-p
   #:check-streamish-open
   ;; events (events.lisp)
   #:event
   #:event-c
   #:event-freed
   #:add-event
   #:make-event
   ;; stats (stats.lisp)
   #:stats
   #:dump-event-loop-status
   ;; notifiers (notifiers.lisp); notifier-freed is cl-async's internal name
   #:notifier
   #:notifier-freed-p
   #:make-notifier
   #:trigger-notifier
   #:free-notifier
   #:notifier-freed
   ;; signals (signals.lisp)
   #:signal-handler
   #:free-signal-handler
   #:clear-signal-handlers
   #:+sighup+ #:+sigint+ #:+sigquit+ #:+sigill+ #:+sigtrap+ #:+sigabrt+ #:+sigemt+
   #:+sigfpe+ #:+sigkill+ #:+sigbus+ #:+sigsegv+ #:+sigsys+ #:+sigpipe+ #:+sigalrm+
   #:+sigterm+ #:+sigurg+ #:+sigstop+ #:+sigtstp+ #:+sigcont+ #:+sigchld+ #:+sigttin+
   #:+sigttou+ #:+sigio+ #:+sigxcpu+ #:+sigxfsz+ #:+sigvtalrm+ #:+sigprof+ #:+sigwinch+
   #:+siginfo+ #:+sigusr1+ #:+sigusr2+
   ;; DNS (reverse-dns.lisp)
   #:reverse-dns-lookup))

;;; Take AS (see above), or say in one warning why not.
(define-condition cl-async-tcp::nickname-taken (warning)
  ((holder :initarg :holder :reader cl-async-tcp::nickname-taken-holder))
  (:report (lambda (c s)
             (format s "cl-async-tcp: the nickname AS belongs to the package ~A already ~
                        (cl-async?), so CL-ASYNC-TCP is loaded without it.  Refer to it ~
                        as CL-ASYNC-TCP: or give it a package-local nickname."
                     (package-name (cl-async-tcp::nickname-taken-holder c)))))
  (:documentation "Warned when another package holds the nickname AS."))

(eval-when (:load-toplevel :execute)
  (let ((package (find-package '#:cl-async-tcp))
        (holder (find-package '#:as)))
    (cond ((null holder)
           (rename-package package (package-name package)
                           (cons "AS" (package-nicknames package))))
          ((not (eq holder package))
           (warn 'cl-async-tcp::nickname-taken :holder holder)))))

;;; The foreign layer lives in its own package so that nothing outside
;;; lisp/ffi.lisp can mistake a raw C entry point for policy.
(defpackage #:cl-async-tcp.ffi
  (:nicknames #:cltcp)
  (:use #:cl)
  (:documentation "Mirror of capi/include/cltcp.h: constants, types and functions, nothing else.
Each C name cltcp_foo_bar is the Lisp symbol CLTCP:FOO-BAR; CLTCP_EV_DATA is CLTCP:+EV-DATA+."))
