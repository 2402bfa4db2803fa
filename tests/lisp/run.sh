#!/bin/sh
# Run the cl-async-tcp Lisp suite in a fresh SBCL.  Exits 0 when every test
# passes, 1 otherwise.  The C library must be built first:
#   meson setup build && meson compile -C build
# CL_ASYNC_TCP_LIBRARY=/path/to/libcltcp.so overrides where it is loaded from.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
exec sbcl --noinform --non-interactive --no-userinit \
  --eval '(require :asdf)' \
  --eval "(asdf:initialize-source-registry '(:source-registry (:directory \"$root/\") :inherit-configuration))" \
  --eval '(handler-case (progn (asdf:test-system :cl-async-tcp) (uiop:quit 0))
            (error (e) (format *error-output* "~&cl-async-tcp tests: ~A~%" e) (uiop:quit 1)))'
