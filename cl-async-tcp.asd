;;;; cl-async-tcp.asd -- cl-async's documented TCP API on libcltcp (libuv + c-ares).
;;;;
;;;; The C library is built with `meson setup build && meson compile -C build';
;;;; lisp/library.lisp finds build/capi/libcltcp.so next to this file.

(defsystem "cl-async-tcp"
  :description "The documented cl-async TCP API (event loop, sockets, servers, conditions) over libcltcp."
  :version "0.1.0"
  :license "MIT"
  :depends-on ("cffi" "babel" "alexandria" "trivial-gray-streams")
  :serial t
  :components ((:module "lisp"
                :serial t
                :components
                ((:file "package")
                 (:file "library")
                 (:file "ffi")
                 (:file "portability")
                 (:file "octets")
                 (:file "conditions")
                 (:file "registry")
                 (:file "objects")
                 ;; Argument and liveness checks of the exported functions.
                 (:file "checks")
                 (:file "callbacks")
                 (:file "event-loop")
                 (:file "tcp")
                 ;; Built on tcp.lisp.
                 (:file "stream")
                 (:file "dns")
                 ;; issue 10: the rest of cl-async's event loop
                 (:file "events")
                 (:file "handles")
                 (:file "compat")
                 (:file "stats")
                 (:file "notifiers")
                 (:file "signals")
                 (:file "reverse-dns"))))
  :in-order-to ((test-op (test-op "cl-async-tcp/test"))))

(defsystem "cl-async-tcp/test"
  :description "fiveam suite of cl-async-tcp (loopback only)."
  :depends-on ("cl-async-tcp" "fiveam" "babel" "flexi-streams" "bordeaux-threads")
  :serial t
  :components ((:module "tests/lisp"
                :serial t
                :components
                ((:file "package")
                 (:file "helpers")
                 (:file "loop-tests")
                 (:file "tcp-tests")
                 (:file "condition-tests")
                 (:file "error-tests")
                 (:file "extras-tests")
                 (:file "client-tests")
                 (:file "dns-server")
                 (:file "dns-tests")
                 (:file "stream-tests")
                 (:file "writes-tests")
                 ;; issue 9 item 4: descriptor exhaustion
                 (:file "resource-tests")
                 ;; issue 9 item 5: localhost names
                 (:file "localhost-tests")
                 ;; Bad input and objects of closed or dead loops.
                 (:file "input-tests")
                 ;; issue 10: what programs written for cl-async rely on
                 (:file "compat-tests")
                 (:file "stats-tests")
                 (:file "notifier-tests")
                 (:file "signal-tests")
                 (:file "thread-tests")
                 (:file "reverse-dns-tests"))))
  ;; test-op must fail loudly: fiveam:run! only returns NIL, so signal here.
  :perform (test-op (o c)
             (unless (uiop:symbol-call :cl-async-tcp-test :run-suite)
               (error "cl-async-tcp test suite failed"))))
