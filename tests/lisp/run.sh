#!/bin/sh
# Run the cl-async-tcp Lisp suite in a fresh Lisp:
#   tests/lisp/run.sh [sbcl|ecl]        (default sbcl)
# Exits 0 when every test passes, 1 otherwise.  The C library must be built
# first (meson setup build && meson compile -C build), or ASDF builds it.
# CL_ASYNC_TCP_LIBRARY=/path/to/libcltcp.so overrides where it is loaded from.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
impl=${1:-sbcl}
registry="(asdf:initialize-source-registry '(:source-registry (:directory \"$root/\") :inherit-configuration))"
run='(handler-case (progn (asdf:test-system :cl-async-tcp) (uiop:quit 0))
       (error (e) (format *error-output* "~&cl-async-tcp tests: ~A~%" e) (uiop:quit 1)))'
case "$impl" in
  sbcl)
    exec sbcl --noinform --non-interactive --no-userinit \
      --eval '(require :asdf)' --eval "$registry" --eval "$run" ;;
  ecl)
    # ECL compiles through its C compiler: the first run compiles every file
    # (about a minute and a half); later runs load the cached fasls.  Its
    # compiler's chatter goes away; warnings and test output stay.
    exec ecl --norc \
      --eval '(require :asdf)' --eval "$registry" \
      --eval '(setf c::*suppress-compiler-messages* (quote c::compiler-note) *compile-verbose* nil)' \
      --eval "$run" ;;
  *)
    echo "usage: $0 [sbcl|ecl]" >&2; exit 2 ;;
esac
