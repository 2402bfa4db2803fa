;;;; load.lisp -- loads cl-async-tcp (and bordeaux-threads) from this source
;;;; tree for the example programs: (load "examples/load.lisp").  Quiet, so
;;;; that the programs' output is only their own.

(require :asdf)
(asdf:initialize-source-registry
 `(:source-registry
   (:directory ,(merge-pathnames "../" (make-pathname :name nil :type nil
                                                      :defaults *load-truename*)))
   :inherit-configuration))
(let ((*compile-verbose* nil) (*compile-print* nil))
  (handler-bind ((warning #'muffle-warning))
    (asdf:load-system :cl-async-tcp)
    (asdf:load-system :bordeaux-threads)))
