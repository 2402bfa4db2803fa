;;;; stream-tests.lisp
(in-package #:cl-async-tcp-test)
