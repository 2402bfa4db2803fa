;;;; ffi-tests.lisp -- lisp/ffi.lisp against the loaded libcltcp: the error
;;;; constants copied from cltcp.h, and the STATUS type that signals.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(defun mirrored-error-constants ()
  "The error constants lisp/ffi.lisp exports: (symbol . value), +ECLOSED+ ..."
  (let ((result '()))
    (do-external-symbols (symbol '#:cltcp)
      (let ((name (symbol-name symbol)))
        (when (and (constantp symbol)
                   (integerp (symbol-value symbol))
                   (minusp (symbol-value symbol))
                   (> (length name) 3)
                   (string= "+E" name :end2 2)
                   (char= #\+ (char name (1- (length name)))))
          (push (cons symbol (symbol-value symbol)) result))))
    result))

(test error-constants-match-the-library
  ;; Each constant is looked up by its value in the library's own table: a
  ;; renumbered code in cltcp.h names another code (or none) and fails here.
  (let ((constants (mirrored-error-constants)))
    (is (<= 15 (length constants)))
    (loop for (symbol . value) in constants
          for name = (string-trim "+" (symbol-name symbol))
          do (is (equal name (cltcp:err-name value))
                 "~S is ~D, which libcltcp names ~S" symbol value (cltcp:err-name value))
             (is (string/= "unknown error" (cltcp:strerror value))))))

(test every-library-code-is-mirrored
  ;; The other way round: every code of libcltcp's own range has its constant.
  (let ((mirrored (mapcar #'cdr (mirrored-error-constants))))
    (loop for code from -20000 downto -20200
          for name = (cltcp:err-name code)
          unless (equal name "UNKNOWN")
            do (is (member code mirrored) "libcltcp's ~A (~D) has no constant in ffi.lisp"
                   name code))))

(test error-code-finds-codes-by-name
  (is (= cltcp:+eclosed+ (as:error-code "ECLOSED")))
  (is (= cltcp:+ednsconfig+ (as:error-code "EDNSCONFIG")))
  (is (equal "ECONNREFUSED" (cltcp:err-name (as:error-code "ECONNREFUSED"))))
  (is (eq :none (as:error-code "NO-SUCH-CODE" :none))))

(test status-type-signals-and-raw-status-returns
  ;; An id that names nothing: a STATUS call signals its code's condition, a
  ;; RAW-STATUS call returns the code.
  (let ((c (handler-case (progn (cltcp:socket-nodelay 12345 1) nil)
             (as:event-error (e) e))))
    (is (typep c 'as:event-error))
    (is (= cltcp:+eclosed+ (as:event-errcode c))))
  (is (= cltcp:+eclosed+ (cltcp:socket-close 12345 cltcp:+close-now+)))
  (is (= 0 (cffi:with-foreign-object (alive :int) (cltcp:id-alive alive 12345)))))
