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
                 (:file "conditions")
                 (:file "registry")
                 (:file "objects")
                 (:file "callbacks")
                 (:file "event-loop")
                 (:file "tcp")
                 ;; Built on tcp.lisp.
                 (:file "stream")
                 (:file "dns"))))
  :in-order-to ((test-op (test-op "cl-async-tcp/test"))))

(defsystem "cl-async-tcp/test"
  :description "fiveam suite of cl-async-tcp (loopback only)."
  :depends-on ("cl-async-tcp" "fiveam" "babel" "flexi-streams" "bordeaux-threads" "usocket")
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
                 (:file "guard-tests"))))
  ;; test-op must fail loudly: fiveam:run! only returns NIL, so signal here.
  :perform (test-op (o c)
             (unless (uiop:symbol-call :cl-async-tcp-test :run-suite)
               (error "cl-async-tcp test suite failed"))))
