;;;; cl-async-tcp.asd -- cl-async's documented TCP API on libcltcp (libuv + c-ares).
;;;;
;;;; The C library needs no step of its own: the component LIBCLTCP below
;;;; finds it (lisp/library.lisp says where it looks) or, when there is none,
;;;; builds it with meson and ninja as ASDF compiles the system, once.

(defclass cltcp-shim (asdf:component) ()
  (:documentation "libcltcp, the C shim under the system.  Compiling it finds the
library or builds it (CL-ASYNC-TCP::ENSURE-LIBCLTCP); loading it loads the
library and checks its ABI (CL-ASYNC-TCP::LOAD-LIBCLTCP).  Both functions come
from lisp/library.lisp, the component before it."))

(defmethod asdf:source-file-type ((c cltcp-shim) (s asdf:system)) nil)
(defmethod asdf:input-files ((o asdf:compile-op) (c cltcp-shim)) '())
(defmethod asdf:output-files ((o asdf:compile-op) (c cltcp-shim)) (values '() t))

(defmethod asdf:operation-done-p ((o asdf:compile-op) (c cltcp-shim))
  ;; Done when the library is already there; while lisp/library.lisp is not
  ;; loaded yet (planning a first load) PERFORM decides, and finds it if it is.
  (and (find-package '#:cl-async-tcp)
       (uiop:symbol-call '#:cl-async-tcp '#:find-libcltcp)
       t))

(defmethod asdf:perform ((o asdf:compile-op) (c cltcp-shim))
  (uiop:symbol-call '#:cl-async-tcp '#:ensure-libcltcp))

(defmethod asdf:perform ((o asdf:load-op) (c cltcp-shim))
  (uiop:symbol-call '#:cl-async-tcp '#:load-libcltcp))

(defsystem "cl-async-tcp"
  :description "The documented cl-async TCP API (event loop, sockets, servers, conditions) over libcltcp."
  :long-description #.(uiop:read-file-string
                       (uiop:merge-pathnames* "README.md" (or *load-truename* *compile-file-truename*)))
  :version "0.1.0"
  :author "The cl-async-tcp developers"
  :maintainer "The cl-async-tcp developers"
  :license "MIT"
  ;; The public addresses below are placeholders until the project's public
  ;; repository exists.
  :homepage "https://github.com/cl-async-tcp/cl-async-tcp"
  :bug-tracker "https://github.com/cl-async-tcp/cl-async-tcp/issues"
  :source-control (:git "https://github.com/cl-async-tcp/cl-async-tcp.git")
  :depends-on ("cffi" "babel" "alexandria" "trivial-gray-streams")
  :serial t
  :components ((:module "lisp"
                :serial t
                :components
                ((:file "package")
                 (:file "library")
                 (:cltcp-shim "libcltcp")
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
                 (:file "socket")
                 (:file "server")
                 ;; Built on socket.lisp.
                 (:file "stream")
                 (:file "dns")
                 ;; issue 10: the rest of cl-async's event loop
                 (:file "events")
                 (:file "handles")
                 (:file "compat")
                 (:file "stats")
                 (:file "notifiers")
                 (:file "signals")
                 (:file "reverse-dns")
                 (:file "warm-up"))))
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
                 ;; lisp/ffi.lisp against the library
                 (:file "ffi-tests")
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
                 (:file "reverse-dns-tests")
                 ;; issue 12: what a connection allocates on the Lisp side
                 (:file "memory-tests")
                 ;; issue 11: the callback guard; beside cl-async
                 (:file "guard-tests")
                 (:file "nickname-tests"))))
  ;; test-op must fail loudly: fiveam:run! only returns NIL, so signal here.
  :perform (test-op (o c)
             (unless (uiop:symbol-call :cl-async-tcp-test :run-suite)
               (error "cl-async-tcp test suite failed"))))
