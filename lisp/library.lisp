;;;; library.lisp -- finding and loading libcltcp, and the ABI handshake.
;;;;
;;;; Search order: the file named by the environment variable
;;;; CL_ASYNC_TCP_LIBRARY, then build/capi/ next to cl-async-tcp.asd (where
;;;; the README's build command puts it), then the system's library path.
;;;; Like iolib with libfixposix, we refuse to run on a library whose ABI
;;;; version differs from the one lisp/ffi.lisp mirrors.

(in-package #:cl-async-tcp)

(defparameter +abi-version+ 3
  "The CLTCP_ABI_VERSION that lisp/ffi.lisp mirrors.")

(defparameter +build-command+ "meson setup build && meson compile -C build"
  "The command (run in the source tree) that builds libcltcp.")

(cffi:define-foreign-library libcltcp
  (:darwin (:or "libcltcp.1.dylib" "libcltcp.dylib"))
  (t (:or "libcltcp.so.1" "libcltcp.so")))

(defun library-file-name ()
  #+darwin "libcltcp.dylib"
  #-darwin "libcltcp.so")

(defun local-library-pathname ()
  "The libcltcp built in the source tree, or NIL when there is none."
  (let ((path (ignore-errors
               (asdf:system-relative-pathname
                "cl-async-tcp" (concatenate 'string "build/capi/" (library-file-name))))))
    (and path (probe-file path))))

(defvar *library-pathname* nil
  "Where libcltcp was loaded from (a pathname, or a name resolved by the system).")

(defun load-libcltcp ()
  "Load libcltcp and check its ABI version.  Signals an error naming the
build command when the library cannot be found."
  (let ((env (uiop:getenv "CL_ASYNC_TCP_LIBRARY"))
        (local (local-library-pathname)))
    (handler-case
        (cond ((and env (plusp (length env)))
               (cffi:load-foreign-library env)
               (setf *library-pathname* env))
              (local
               (cffi:load-foreign-library local)
               (setf *library-pathname* local))
              (t
               (cffi:load-foreign-library 'libcltcp)
               (setf *library-pathname* "libcltcp (system library path)")))
      (cffi:load-foreign-library-error (e)
        (error "cl-async-tcp: cannot load libcltcp (~A).~%~
                Build it in ~A with:~%  ~A~%~
                or install it in the system's library path, ~
                or set CL_ASYNC_TCP_LIBRARY to its file."
               e
               (ignore-errors (namestring (asdf:system-source-directory "cl-async-tcp")))
               +build-command+))))
  ;; The handshake: the one C call made outside ffi.lisp, because ffi.lisp
  ;; must not be trusted before it.
  (let ((abi (cffi:foreign-funcall "cltcp_abi_version" :int)))
    (unless (= abi +abi-version+)
      (error "cl-async-tcp: libcltcp at ~A has ABI version ~D, but this Lisp code ~
              was written for ABI version ~D.  Rebuild the library (~A) from the ~
              same source tree as the Lisp code."
             *library-pathname* abi +abi-version+ +build-command+)))
  *library-pathname*)

(load-libcltcp)
