;;;; echo-server.lisp -- a cl-async-style echo server that stops cleanly on
;;;; SIGINT (C-c).
;;;;
;;;;   ECHO_PORT=7777 sbcl --non-interactive --load examples/echo-server.lisp
;;;;
;;;; Every line a client sends comes back; the line "quit" is answered with
;;;; "bye" and ends that connection.  On SIGINT the server stops listening and
;;;; frees its signal handler; the loop then ends "of natural causes" once the
;;;; connections still open are done, and the program says so.  ECHO_PORT
;;;; unset or 0 picks a free port; the first line printed names it.

(load (merge-pathnames "load.lisp" *load-truename*))

(defpackage #:echo-server-example (:use #:cl))
(in-package #:echo-server-example)

(defun say (fmt &rest args)
  (format t "~&~?~%" fmt args)
  (finish-output))

(defun handle-lines (socket data)
  "Split what arrived into lines (keeping a partial one in the socket's data)
and answer each."
  (let* ((text (concatenate 'string (or (as:socket-data socket) "")
                            (babel:octets-to-string data :encoding :utf-8)))
         (start 0))
    (loop for newline = (position #\Newline text :start start)
          while newline
          do (let ((line (string-right-trim '(#\Return) (subseq text start newline))))
               (setf start (1+ newline))
               (cond ((string= line "quit")
                      (as:write-socket-data socket (format nil "bye~%"))
                      ;; What was written is still sent, then it closes.
                      (as:close-socket socket)
                      (return-from handle-lines))
                     (t (as:write-socket-data socket (format nil "~A~%" line))))))
    (setf (as:socket-data socket) (subseq text start))))

(defun main ()
  (let ((port (parse-integer (or (uiop:getenv "ECHO_PORT") "0") :junk-allowed t)))
    (as:with-event-loop (:catch-app-errors t)
      (let ((server (as:tcp-server "127.0.0.1" (or port 0)
                                   #'handle-lines
                                   :event-cb (lambda (ev)
                                               (unless (typep ev 'as:tcp-eof)
                                                 (say "event: ~A" ev)))
                                   :connect-cb (lambda (socket)
                                                 (say "connection from ~{~A port ~A~}"
                                                      (multiple-value-list
                                                       (as:socket-peer-address socket)))))))
        ;; The handler first, so a SIGINT that follows our first line of
        ;; output always finds it.
        (as:signal-handler as:+sigint+
                           (lambda (sig)
                             (say "got SIGINT (signal ~D): closing the server" sig)
                             (as:close-tcp-server server)
                             (as:free-signal-handler sig)))
        (say "echo server listening on port ~D" (as:tcp-server-port server))))
    (say "echo server stopped cleanly")))

(main)
