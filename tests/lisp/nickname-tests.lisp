;;;; nickname-tests.lisp -- loading beside cl-async: the nickname AS.
;;;;
;;;; Each case runs in a fresh image of the implementation running the suite
;;;; (uiop:run-program), since the nickname is decided when the library loads.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defun fresh-lisp-result (&rest forms)
  "Evaluate FORMS (strings) in a fresh Lisp of this implementation that knows
this source tree; return the value READ from the last line it prints."
  (let* ((registry (format nil "(asdf:initialize-source-registry '(:source-registry (:directory ~S) :inherit-configuration))"
                           (namestring (asdf:system-source-directory "cl-async-tcp"))))
         (all (append (list "(require :asdf)" registry) forms))
         (command
           #+sbcl (append (list "sbcl" "--noinform" "--non-interactive" "--no-userinit")
                          (loop for f in all append (list "--eval" f)))
           #+ecl (append (list "ecl" "--norc")
                         (loop for f in all append (list "--eval" f))
                         (list "--eval" "(ext:quit 0)"))
           #-(or sbcl ecl) (error "no fresh-image command for ~A" (lisp-implementation-type)))
         (out (uiop:run-program command :output :string :error-output nil
                                        :ignore-error-status t))
         (lines (remove "" (uiop:split-string out :separator '(#\Newline)) :test #'string=)))
    (ignore-errors (let ((*read-eval* nil)) (read-from-string (car (last lines)))))))

(defparameter *nickname-report-form*
  "(let ((n 0))
     (handler-bind ((warning (lambda (w)
                               (when (search \"nickname AS\" (princ-to-string w)) (incf n))
                               (muffle-warning w))))
       (asdf:load-system :cl-async-tcp))
     (let ((ok nil))
       (funcall (find-symbol \"START-EVENT-LOOP\" \"CL-ASYNC-TCP\")
                (lambda () (funcall (find-symbol \"DELAY\" \"CL-ASYNC-TCP\")
                                    (lambda () (setf ok t)) :time 0.01)))
       (format t \"~&~S~%\" (list n (package-name (find-package \"AS\"))
                                  (package-nicknames (find-package \"CL-ASYNC-TCP\")) ok))))"
  "Loads the system counting the nickname warnings, runs a loop, prints
(warnings AS-owner our-nicknames loop-ran).")

(test loads-beside-cl-async-without-the-nickname
  "With a package CL-ASYNC holding AS first, the library loads without AS, says
so in exactly one warning, and works."
  (is (equal '(1 "CL-ASYNC" () t)
             (fresh-lisp-result "(defpackage #:cl-async (:nicknames #:as) (:use #:cl))"
                                *nickname-report-form*))))

(test takes-the-nickname-when-it-is-free
  "Alone, the library takes AS, without a warning."
  (is (equal '(0 "CL-ASYNC-TCP" ("AS") t)
             (fresh-lisp-result *nickname-report-form*))))
