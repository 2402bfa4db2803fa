;;;; http-server.lisp -- a small HTTP/1.1 server on the documented cl-async
;;;; API, written the way HTTP frameworks for cl-async write (Wookie-style):
;;;; every response goes out in pieces -- the status line, each header, the
;;;; blank line and the body, each its own WRITE-SOCKET-DATA -- and relies on
;;;; the library to send the pieces of one loop turn together
;;;; (as:*buffer-writes*).
;;;;
;;;;   GET  /          "hello world", keep-alive
;;;;   any request with "Connection: close" (or HTTP/1.0 without keep-alive):
;;;;                   answered, then closed from the write-cb of a zero-byte
;;;;                   write, i.e. once everything before it has left
;;;;   GET  /chunked   a chunked response streamed over several loop turns
;;;;                   through (make-instance 'as:async-io-stream :socket s)
;;;;                   on the plain (draining) socket
;;;;   POST /echo      the request body echoed back byte for byte (any size;
;;;;                   "Expect: 100-continue" answered with 100 Continue)
;;;;   GET  /quit      "bye", then the server stops
;;;;   anything else   404
;;;;
;;;; Run:  sbcl --non-interactive --load examples/http-server.lisp
;;;; Environment: HTTP_SERVER_PORT (default 8080; 0 = any free port),
;;;; HTTP_SERVER_PORT_FILE (the bound port is written there once listening),
;;;; HTTP_SERVER_SECONDS (stop after this long; default 300),
;;;; HTTP_SERVER_READY (set: also print "READY <port>", for bench/run) and
;;;; HTTP_SERVER_NO_MAIN (set: only define the package).
;;;; tests/examples/http-server.sh drives every case with curl and wrk.

(require :asdf)
(asdf:initialize-source-registry
 `(:source-registry
   (:directory ,(merge-pathnames "../" (make-pathname :name nil :type nil
                                                      :defaults *load-truename*)))
   :inherit-configuration))
(let ((*compile-verbose* nil) (*compile-print* nil))
  (handler-bind ((warning #'muffle-warning))
    (asdf:load-system :cl-async-tcp)))

(defpackage #:http-server-example
  (:use #:cl)
  (:export #:start #:main))
(in-package #:http-server-example)

(defconstant +max-head+ (* 64 1024)
  "A request head (request line and headers) larger than this is refused.")

(defparameter +crlf+ (coerce '(#\Return #\Newline) 'string))

(defstruct conn
  socket
  (buf (make-array 4096 :element-type '(unsigned-byte 8)) :type as:octet-vector)
  (len 0 :type fixnum)          ; bytes of BUF in use
  (head nil)                    ; the request whose body is awaited
  (busy nil))                   ; a response is being streamed

;;; ---- input ----

(defun append-input (conn data)
  (let* ((len (conn-len conn))
         (need (+ len (length data))))
    (when (> need (length (conn-buf conn)))
      (let ((new (make-array (max need (* 2 (length (conn-buf conn))))
                             :element-type '(unsigned-byte 8))))
        (replace new (conn-buf conn) :end2 len)
        (setf (conn-buf conn) new)))
    (replace (conn-buf conn) data :start1 len)
    (setf (conn-len conn) need)))

(defun consume (conn n)
  "Drop the first N input bytes."
  (let ((buf (conn-buf conn)))
    (replace buf buf :start2 n :end2 (conn-len conn))
    (decf (conn-len conn) n)))

(defun head-end (conn)
  "The index just after the blank line ending the request head, or NIL."
  (let ((buf (conn-buf conn)))
    (loop for i from 3 below (conn-len conn)
          when (and (= (aref buf i) 10) (= (aref buf (- i 1)) 13)
                    (= (aref buf (- i 2)) 10) (= (aref buf (- i 3)) 13))
            do (return (1+ i)))))

(defun parse-head (conn end)
  "The request head in the first END input bytes, as a plist
(:method :path :version :headers), header names in lower case."
  (let* ((text (map 'string #'code-char (subseq (conn-buf conn) 0 (- end 4))))
         (lines (loop with start = 0
                      for pos = (search +crlf+ text :start2 start)
                      collect (subseq text start pos)
                      while pos
                      do (setf start (+ pos 2))))
         (request-line (first lines))
         (sp1 (position #\Space request-line))
         (sp2 (and sp1 (position #\Space request-line :start (1+ sp1)))))
    (list :method (subseq request-line 0 sp1)
          :path (if sp1 (subseq request-line (1+ sp1) sp2) "/")
          :version (if sp2 (subseq request-line (1+ sp2)) "HTTP/1.0")
          :headers (loop for line in (rest lines)
                         for colon = (position #\: line)
                         when colon
                           collect (cons (string-downcase (subseq line 0 colon))
                                         (string-trim " " (subseq line (1+ colon))))))))

(defun header (head name)
  (cdr (assoc name (getf head :headers) :test #'string=)))

(defun keep-alive-p (head)
  (let ((connection (string-downcase (or (header head "connection") ""))))
    (if (string= (getf head :version) "HTTP/1.1")
        (not (search "close" connection))
        (search "keep-alive" connection))))

;;; ---- output: each piece its own write ----

(declaim (ftype function process))

(defun respond (conn status reason headers body &key (close nil))
  "Write a response in pieces: status line, each header, blank line, body.
With CLOSE, a zero-byte write then closes the socket from its write-cb, once
everything before it has left."
  (let ((socket (conn-socket conn))
        (body (if (stringp body) (babel:string-to-octets body :encoding :utf-8) body)))
    (as:write-socket-data socket (format nil "HTTP/1.1 ~D ~A~A" status reason +crlf+))
    (loop for (name . value) in headers
          do (as:write-socket-data socket (format nil "~A: ~A~A" name value +crlf+)))
    (as:write-socket-data socket (format nil "Content-Length: ~D~A" (length body) +crlf+))
    (when close
      (as:write-socket-data socket (format nil "Connection: close~A" +crlf+)))
    (as:write-socket-data socket +crlf+)
    (when (plusp (length body))
      (as:write-socket-data socket body))
    (when close
      (as:write-socket-data socket (as:bytes nil)
                            :write-cb (lambda (socket) (as:close-socket socket))))))

(defun stream-chunked (conn close)
  "A chunked response written through an async-io-stream made on the plain
socket, one chunk per loop turn."
  (let* ((socket (conn-socket conn))
         (stream (make-instance 'as:async-io-stream :socket socket))
         (chunks (list "streamed " "through " "an " "async-io-stream" (string #\Newline))))
    (as:write-socket-data socket (format nil "HTTP/1.1 200 OK~A" +crlf+))
    (as:write-socket-data socket (format nil "Content-Type: text/plain~A" +crlf+))
    (as:write-socket-data socket (format nil "Transfer-Encoding: chunked~A" +crlf+))
    (when close
      (as:write-socket-data socket (format nil "Connection: close~A" +crlf+)))
    (as:write-socket-data socket +crlf+)
    (setf (conn-busy conn) t)
    (labels ((next ()
               (cond ((as:socket-closed-p socket))
                     (chunks
                      (let ((chunk (pop chunks)))
                        (format stream "~X~A~A~A" (length chunk) +crlf+ chunk +crlf+))
                      (as:delay #'next :time 0))
                     (t
                      (format stream "0~A~A" +crlf+ +crlf+)
                      (setf (conn-busy conn) nil)
                      (if close
                          (as:write-socket-data socket (as:bytes nil)
                                                :write-cb (lambda (s) (as:close-socket s)))
                          (process conn))))))
      (next))))

;;; ---- requests ----

(defvar *server* nil)

(defun stop-server ()
  (when (and *server* (not (as:tcp-server-closed-p *server*)))
    (as:close-tcp-server *server*))
  ;; Keep-alive connections of clients that are gone must not keep the loop.
  (as:delay (lambda () (as:exit-event-loop)) :time 0.5))

(defun handle (conn head body)
  (let ((method (getf head :method))
        (path (getf head :path))
        (close (not (keep-alive-p head))))
    (cond ((and (string= method "GET") (string= path "/"))
           (respond conn 200 "OK" '(("Content-Type" . "text/plain")) (format nil "hello world~%")
                    :close close))
          ((and (string= method "GET") (string= path "/chunked"))
           (stream-chunked conn close))
          ((and (string= method "POST") (string= path "/echo"))
           (respond conn 200 "OK" '(("Content-Type" . "application/octet-stream")) body
                    :close close))
          ((and (string= method "GET") (string= path "/quit"))
           (respond conn 200 "OK" '(("Content-Type" . "text/plain")) (format nil "bye~%")
                    :close t)
           (stop-server))
          (t
           (respond conn 404 "Not Found" '(("Content-Type" . "text/plain"))
                    (format nil "not found~%") :close close)))
    close))

(defun process (conn)
  "Answer every complete request in the input, in order."
  (loop
    (when (or (conn-busy conn) (as:socket-closed-p (conn-socket conn)))
      (return))
    (let ((head (conn-head conn)))
      (unless head
        (let ((end (head-end conn)))
          (unless end
            (when (> (conn-len conn) +max-head+)
              (respond conn 431 "Request Header Fields Too Large" '() "" :close t))
            (return))
          (setf head (parse-head conn end))
          (consume conn end)
          (setf (getf head :length)
                (or (ignore-errors (parse-integer (or (header head "content-length") "0"))) 0))
          (setf (conn-head conn) head)
          (when (and (plusp (getf head :length))
                     (string-equal (or (header head "expect") "") "100-continue")
                     (< (conn-len conn) (getf head :length)))
            (as:write-socket-data (conn-socket conn)
                                  (format nil "HTTP/1.1 100 Continue~A~A" +crlf+ +crlf+)))))
      (let ((length (getf head :length)))
        (when (< (conn-len conn) length)
          (return))
        (let ((body (subseq (conn-buf conn) 0 length)))
          (consume conn length)
          (setf (conn-head conn) nil)
          (when (handle conn head body)
            (return)))))))

(defun start (&key (host "127.0.0.1") (port 8080) port-file)
  "Listen on HOST:PORT (inside a running event loop); returns the server."
  (setf *server*
        (as:tcp-server host port
                       (lambda (socket data)
                         (let ((conn (as:socket-data socket)))
                           (append-input conn data)
                           (process conn)))
                       (lambda (event)
                         ;; A client that resets or goes away is normal here.
                         (unless (typep event '(or as:tcp-eof as:tcp-reset as:tcp-timeout
                                                as:streamish-broken-pipe
                                                as:streamish-canceled))
                           (format *error-output* "~&http-server: ~A~%" event)))
                       :connect-cb (lambda (socket)
                                     (setf (as:socket-data socket)
                                           (make-conn :socket socket)))
                       :backlog 1024))
  (when port-file
    (with-open-file (out port-file :direction :output :if-exists :supersede)
      (format out "~D~%" (as:tcp-server-port *server*))))
  *server*)

(defun env-integer (name default)
  (or (ignore-errors (parse-integer (uiop:getenv name))) default))

(defun main ()
  (let ((port (env-integer "HTTP_SERVER_PORT" 8080))
        (seconds (env-integer "HTTP_SERVER_SECONDS" 300))
        (port-file (uiop:getenv "HTTP_SERVER_PORT_FILE")))
    (as:start-event-loop
     (lambda ()
       (start :port port :port-file (and port-file (plusp (length port-file)) port-file))
       (format t "~&http-server: listening on 127.0.0.1:~D for ~D s~%"
               (as:tcp-server-port *server*) seconds)
       ;; bench/run waits for this line.
       (when (uiop:getenv "HTTP_SERVER_READY")
         (format t "READY ~D~%" (as:tcp-server-port *server*)))
       (finish-output)
       ;; The time limit: the server never outlives its test.
       (as:delay (lambda ()
                   (format t "~&http-server: time limit reached~%")
                   (stop-server))
                 :time seconds))
     :catch-app-errors t)
    (format t "~&http-server: stopped~%")))

(unless (uiop:getenv "HTTP_SERVER_NO_MAIN")
  (main))
