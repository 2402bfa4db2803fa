;;;; tcp-proxy.lisp -- a cl-async-style TCP proxy: every connection to the
;;;; proxy port is forwarded to TARGET_HOST:TARGET_PORT, both ways.
;;;;
;;;;   PROXY_PORT=8080 TARGET_HOST=127.0.0.1 TARGET_PORT=7777 \
;;;;     sbcl --non-interactive --load examples/tcp-proxy.lisp
;;;;
;;;; Each side's socket keeps the other in its SOCKET-DATA (the reference's
;;;; own suggestion for proxies).  Bytes from the client are written to the
;;;; upstream socket at once, before it is even connected (they are queued
;;;; until then).  When either side closes or fails, the other is closed
;;;; after what was already written to it has been sent.  SIGINT stops the
;;;; proxy from accepting; the program ends once the open connections are
;;;; done.  PROXY_PORT unset or 0 picks a free port; the first line names it.

(load (merge-pathnames "load.lisp" *load-truename*))

(defpackage #:tcp-proxy-example (:use #:cl))
(in-package #:tcp-proxy-example)

(defun say (fmt &rest args)
  (format t "~&~?~%" fmt args)
  (finish-output))

(defun close-peer (socket)
  "Close the socket paired with SOCKET, unless it is closed already."
  (let ((peer (and socket (as:socket-data socket))))
    (when (and peer (not (as:socket-closed-p peer)))
      (as:close-socket peer))))

(defun forward (from data)
  (let ((to (as:socket-data from)))
    (when (and to (not (as:socket-closed-p to)))
      (as:write-socket-data to data))))

(defun main ()
  (let ((port (parse-integer (or (uiop:getenv "PROXY_PORT") "0") :junk-allowed t))
        (target-host (or (uiop:getenv "TARGET_HOST") "127.0.0.1"))
        (target-port (parse-integer (or (uiop:getenv "TARGET_PORT") "") :junk-allowed t))
        (connections 0))
    (unless target-port
      (error "set TARGET_PORT to the port to forward to"))
    (as:with-event-loop (:catch-app-errors t)
      (let ((server
              (as:tcp-server
               "127.0.0.1" (or port 0)
               #'forward
               ;; The client side ended (EOF, reset ...): end the upstream side.
               :event-cb (lambda (ev)
                           (unless (typep ev 'as:tcp-eof) (say "client side: ~A" ev))
                           (when (typep ev 'as:tcp-info)
                             (close-peer (as:tcp-socket ev))))
               :connect-cb
               (lambda (client)
                 (incf connections)
                 (let ((upstream
                         (as:tcp-connect target-host target-port
                                         #'forward
                                         :event-cb
                                         (lambda (ev)
                                           (unless (typep ev 'as:tcp-eof)
                                             (say "upstream side: ~A" ev))
                                           (close-peer (as:tcp-socket ev))))))
                   (setf (as:socket-data client) upstream
                         (as:socket-data upstream) client))))))
        (as:signal-handler as:+sigint+
                           (lambda (sig)
                             (declare (ignore sig))
                             (say "got SIGINT: no new connections (~D served)" connections)
                             (as:close-tcp-server server)
                             (as:clear-signal-handlers)))
        (say "proxy listening on port ~D, forwarding to ~A:~D"
             (as:tcp-server-port server) target-host target-port)))
    (say "proxy stopped cleanly")))

(main)
