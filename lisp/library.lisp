;;;; library.lisp -- finding (or building) and loading libcltcp, and the ABI handshake.
;;;;
;;;; Where libcltcp comes from, first match wins:
;;;;   1. the file named by the environment variable CL_ASYNC_TCP_LIBRARY;
;;;;   2. a libcltcp of this ABI installed on the system (`meson install'):
;;;;      libcltcp.so.<ABI> in pkg-config's libdir for `cltcp', in
;;;;      LD_LIBRARY_PATH or in the usual library directories -- the soname's
;;;;      major number is the ABI version, so the name alone says the ABI;
;;;;   3. the one built next to cl-async-tcp.asd by hand, build/capi/
;;;;      (`meson setup build && meson compile -C build');
;;;;   4. the one ASDF built: the system's LIBCLTCP component (see
;;;;      cl-async-tcp.asd) runs meson and ninja when nothing above exists,
;;;;      once, into build-asdf/<key>/ next to the sources when that is
;;;;      writable, else into the user's cache (XDG, cl-async-tcp/<key>/),
;;;;      where <key> names the source version and a hash of the C sources.
;;;; The library is then loaded through CFFI's own search path
;;;; (CFFI:*FOREIGN-LIBRARY-DIRECTORIES*), so a failure is CFFI's error with
;;;; CFFI's restarts.  Like iolib with libfixposix, we refuse to run on a
;;;; library whose ABI version differs from the one lisp/ffi.lisp mirrors.

(in-package #:cl-async-tcp)

(defconstant +abi-version+ 3
  "The CLTCP_ABI_VERSION that lisp/ffi.lisp mirrors: the one place the Lisp side
states it (the soname, the build key and the load-time handshake use it).")

;;; Strings: DEFINE-CONSTANT with STRING=, so that reloading this file does
;;; not redefine a constant with a new (EQUAL, not EQL) string.
(alexandria:define-constant +build-command+ "meson setup build && meson compile -C build"
  :test #'string=
  :documentation "The command (run in the source tree) that builds libcltcp.")

(alexandria:define-constant +build-packages+
    "meson ninja-build pkg-config libuv1-dev libc-ares-dev"
  :test #'string=
  :documentation "The Debian packages building libcltcp needs (a C compiler aside).")

(defun soname ()
  "The file name of libcltcp of this ABI (the soname)."
  #+darwin (format nil "libcltcp.~D.dylib" +abi-version+)
  #-darwin (format nil "libcltcp.so.~D" +abi-version+))

(defun source-directory ()
  (asdf:system-source-directory "cl-async-tcp"))

;;; ---- where it is ----

(defun %program-output (&rest command)
  "The first line COMMAND prints, or NIL when it fails or cannot run."
  (ignore-errors
   (multiple-value-bind (out err code)
       (uiop:run-program command :output '(:string :stripped t) :error-output nil
                                 :ignore-error-status t)
     (declare (ignore err))
     (and (eql code 0) (plusp (length out))
          (first (uiop:split-string out :separator '(#\Newline)))))))

(defun installed-directories ()
  "Directories where an installed libcltcp may be, in search order."
  (remove-duplicates
   (remove nil
           (append (let ((libdir (%program-output "pkg-config" "--variable=libdir" "cltcp")))
                     (and libdir (list (uiop:ensure-directory-pathname libdir))))
                   (mapcar #'uiop:ensure-directory-pathname
                           (remove "" (uiop:split-string (or (uiop:getenv "LD_LIBRARY_PATH") "")
                                                         :separator ":")
                                   :test #'string=))
                   (mapcar #'uiop:ensure-directory-pathname
                           '("/usr/local/lib/" "/usr/local/lib/x86_64-linux-gnu/"
                             "/usr/lib/x86_64-linux-gnu/" "/usr/lib/" "/usr/lib64/"))))
   :test #'equal :from-end t))

(defun source-hash ()
  "A hash (FNV-1a, 32 bits, hex) of the C sources and build files, so that a
changed source tree never reuses an old ASDF build."
  (let ((h #x811c9dc5)
        (root (source-directory)))
    (dolist (file (sort (mapcar #'namestring
                                (append (mapcar (lambda (f) (merge-pathnames f root))
                                                '("meson.build" "meson_options.txt"
                                                  "capi/meson.build" "examples/meson.build"))
                                        (directory (merge-pathnames "capi/include/*.h" root))
                                        (directory (merge-pathnames "capi/src/*.*" root))))
                        #'string<))
      (with-open-file (s file :element-type '(unsigned-byte 8) :if-does-not-exist nil)
        (when s
          (loop for byte = (read-byte s nil) while byte
                do (setf h (logand #xffffffff (* (logxor h byte) #x01000193)))))))
    (format nil "~8,'0x" h)))

(defun build-key ()
  (format nil "~A-abi~D-~A"
          (or (asdf:component-version (asdf:find-system "cl-async-tcp")) "0")
          +abi-version+ (source-hash)))

(defun build-directories ()
  "Where ASDF builds libcltcp: next to the sources, and the user's cache."
  (let ((key (build-key)))
    (list (merge-pathnames (format nil "build-asdf/~A/" key) (source-directory))
          (uiop:xdg-cache-home "cl-async-tcp" (format nil "~A/" key)))))

(defun %abi-of-built (directory)
  "DIRECTORY/capi/ when the library built there is of this ABI, else NIL."
  (let ((capi (merge-pathnames "capi/" directory)))
    (and (probe-file (merge-pathnames (soname) capi)) capi)))

(defun find-libcltcp ()
  "Where libcltcp is (see the top of this file): a directory that holds the
library of this ABI under its soname, the pathname from CL_ASYNC_TCP_LIBRARY,
or NIL when it has to be built."
  (let ((env (uiop:getenv "CL_ASYNC_TCP_LIBRARY")))
    (if (and env (plusp (length env)))
        (pathname env)
        (or (find-if (lambda (d) (probe-file (merge-pathnames (soname) d)))
                     (installed-directories))
            (%abi-of-built (merge-pathnames "build/" (source-directory)))
            (some #'%abi-of-built (build-directories))))))

;;; ---- building it (run by ASDF, see cl-async-tcp.asd) ----

(define-condition libcltcp-build-error (error)
  ((message :initarg :message :reader libcltcp-build-error-message))
  (:report (lambda (c s)
             (format s "cl-async-tcp: cannot build libcltcp: ~A~%~
                        On Debian or Ubuntu, install what it needs with:~%  ~
                        apt-get install build-essential ~A~%~
                        Or build it yourself in ~A with:~%  ~A~%~
                        or set CL_ASYNC_TCP_LIBRARY to a libcltcp.so of ABI version ~D."
                     (libcltcp-build-error-message c) +build-packages+
                     (namestring (source-directory)) +build-command+ +abi-version+)))
  (:documentation "Signalled when ASDF has to build libcltcp and cannot."))

(defun %writable-directory-p (directory)
  (ignore-errors
   (ensure-directories-exist directory)
   (let ((probe (merge-pathnames ".write-test" directory)))
     (with-open-file (s probe :direction :output :if-exists :supersede)
       (write-char #\x s))
     (delete-file probe)
     t)))

(defun %run-build-step (command)
  (multiple-value-bind (out err code)
      (uiop:run-program command :output '(:string :stripped t) :error-output :output
                                :ignore-error-status t)
    (declare (ignore err))
    (unless (eql code 0)
      (error 'libcltcp-build-error
             :message (format nil "~{~A~^ ~} failed (exit ~A):~%~A" command code
                              (let ((lines (uiop:split-string out :separator '(#\Newline))))
                                (format nil "~{  ~A~^~%~}" (last lines 15))))))))

(defun build-libcltcp ()
  "Build libcltcp with meson and ninja (release, without tests or benchmarks)
into the first writable of BUILD-DIRECTORIES; print one line of progress.
Returns the directory holding the library."
  (dolist (tool '(("meson" "--version") ("ninja" "--version") ("pkg-config" "--version")))
    (unless (%program-output (first tool) (second tool))
      (error 'libcltcp-build-error :message (format nil "~A is not installed." (first tool)))))
  (dolist (pkg '("libuv" "libcares"))
    (unless (%program-output "pkg-config" "--modversion" pkg)
      (error 'libcltcp-build-error
             :message (format nil "pkg-config finds no ~A (its development files are missing)." pkg))))
  (let ((dir (or (find-if #'%writable-directory-p (build-directories))
                 (error 'libcltcp-build-error
                        :message (format nil "no writable build directory among ~{~A~^, ~}."
                                         (mapcar #'namestring (build-directories))))))
        (start (get-internal-real-time)))
    (format t "~&; cl-async-tcp: building libcltcp with meson + ninja in ~A ... "
            (namestring dir))
    (finish-output)
    (%run-build-step (append (list "meson" "setup")
                             (when (probe-file (merge-pathnames "build.ninja" dir))
                               (list "--reconfigure"))
                             (list "--buildtype=release" "-Dtests=false" "-Dbench=false"
                                   (namestring dir) (namestring (source-directory)))))
    (%run-build-step (list "ninja" "-C" (namestring dir)))
    (format t "done in ~,1F s~%" (/ (- (get-internal-real-time) start)
                                   internal-time-units-per-second))
    (or (%abi-of-built dir)
        (error 'libcltcp-build-error
               :message (format nil "the build in ~A made no ~A." (namestring dir) (soname))))))

(defun ensure-libcltcp ()
  "Find libcltcp, or build it when there is none (ASDF's compile-op of LIBCLTCP)."
  (or (find-libcltcp) (build-libcltcp)))

;;; ---- loading it ----

(defvar *library-pathname* nil
  "Where libcltcp was loaded from (a pathname).")

(defun load-libcltcp ()
  "Load libcltcp (see the top of this file) and check its ABI version."
  (let ((where (ensure-libcltcp)))
    (if (uiop:directory-pathname-p where)
        ;; CFFI's own search path, error and restarts.
        (progn
          ;; Kept there, so that CFFI finds it again when a saved image starts.
          (pushnew where cffi:*foreign-library-directories* :test #'equal)
          (cffi:load-foreign-library (soname))
          (setf *library-pathname* (merge-pathnames (soname) where)))
        (progn
          (cffi:load-foreign-library (namestring where))
          (setf *library-pathname* where))))
  ;; The handshake: the one C call made outside ffi.lisp, because ffi.lisp
  ;; must not be trusted before it.
  (let ((abi (cffi:foreign-funcall "cltcp_abi_version" :int)))
    (unless (= abi +abi-version+)
      (error "cl-async-tcp: libcltcp at ~A has ABI version ~D, but this Lisp code ~
              was written for ABI version ~D.  Rebuild the library (~A) from the ~
              same source tree as the Lisp code."
             *library-pathname* abi +abi-version+ +build-command+)))
  *library-pathname*)
