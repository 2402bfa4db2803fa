;;;; package.lisp -- the test package of cl-async-tcp.

(defpackage #:cl-async-tcp-test
  (:use #:cl #:fiveam)
  (:export #:run-suite))

(in-package #:cl-async-tcp-test)

(def-suite :cl-async-tcp
  :description "cl-async-tcp: event loop, TCP, conditions, errors, extras (loopback only).")
