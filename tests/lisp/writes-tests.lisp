;;;; writes-tests.lisp -- the write path as cl-async's users rely on it:
;;;; writes coalesced per loop turn (counted with libcltcp's send counter,
;;;; never timed), *buffer-writes* nil, zero-byte writes whose write-cb runs
;;;; once everything before has left, :start/:end, an async-io-stream on a
;;;; plain socket, and cl-async's octet, bytes and streamish-* names.

(in-package #:cl-async-tcp-test)

(in-suite :cl-async-tcp)

(defparameter *pieces* '("HTTP/1.1 200 OK" #.(format nil "~c~c" #\Return #\Newline)
                         "Content-Length: 5" #.(format nil "~c~c" #\Return #\Newline)
                         "hello")
  "A response written in five pieces, as HTTP frameworks for cl-async do.")

(defun pieces-text () (apply #'concatenate 'string *pieces*))

(defun collect-until-eof (host port on-connect)
  "Connect to HOST:PORT, call ON-CONNECT with the socket, collect every byte until
the peer closes; calls (done).  Returns a function giving (values octets eof-p)."
  (let ((chunks '()) (eof nil))
    (as:tcp-connect host port
                    (lambda (s data) (declare (ignore s)) (push data chunks))
                    (lambda (c)
                      (when (typep c 'as:tcp-eof)
                        (setf eof t)
                        (done)))
                    :connect-cb on-connect)
    (lambda () (values (concat-octets (reverse chunks)) eof))))

(defun one-shot-server (on-request)
  "A server that calls ON-REQUEST with the socket on its first data, then closes."
  (let (server)
    (setf server
          (as:tcp-server "127.0.0.1" 0
                         (lambda (s data)
                           (declare (ignore data))
                           (funcall on-request s)
                           (as:close-tcp-server server))
                         #'ignore-event))
    server))

(test writes-in-a-turn-leave-in-one-send
  "Five write-socket-data calls in one callback leave in one send at the end of
the turn (libcltcp's send counter); the peer gets exactly the five pieces."
  (let ((sends-before nil) (sends-after nil) (queued-in-turn nil) result)
    (with-test-loop ()
      (let ((server (one-shot-server
                     (lambda (s)
                       (setf sends-before (as::%socket-send-count s))
                       (dolist (p *pieces*) (as:write-socket-data s p))
                       (setf queued-in-turn (as:socket-queued-bytes s))
                       ;; The next turn: the bytes left at the end of this one.
                       (as:delay (lambda ()
                                   (setf sends-after (as::%socket-send-count s))
                                   (as:close-socket s))
                                 :time 0)))))
        (setf result (collect-until-eof "127.0.0.1" (as:tcp-server-port server)
                                        (lambda (s) (as:write-socket-data s "GET /"))))))
    (multiple-value-bind (octets eof) (funcall result)
      (is-true eof)
      (is (string= (pieces-text) (text octets))))
    (is (eql 0 sends-before))
    (is (= (length (pieces-text)) queued-in-turn) "collected until the turn ends")
    (is (eql 1 sends-after))))

(test buffer-writes-nil-sends-at-once
  "With as:*buffer-writes* nil each write goes to the kernel during the call."
  (let ((sends nil) (queued nil) result)
    (with-test-loop ()
      (let ((server (one-shot-server
                     (lambda (s)
                       (let ((as:*buffer-writes* nil))
                         (dolist (p *pieces*) (as:write-socket-data s p)))
                       (setf sends (as::%socket-send-count s)
                             queued (as:socket-queued-bytes s))
                       (as:close-socket s)))))
        (setf result (collect-until-eof "127.0.0.1" (as:tcp-server-port server)
                                        (lambda (s) (as:write-socket-data s "GET /"))))))
    (is (eql 5 sends))
    (is (eql 0 queued))
    (is (string= (pieces-text) (text (funcall result))))))

(test zero-byte-write-cb-closes-after-everything
  "Connection: close the way cl-async frameworks do it: the response in pieces,
then (write-socket-data socket (bytes nil) :write-cb #'close-socket).  The
write-cb runs once everything before it has left; the peer gets every byte and
then EOF."
  (let ((calls 0) (queued-at-cb nil) result)
    (with-test-loop ()
      (let ((server (one-shot-server
                     (lambda (s)
                       (dolist (p *pieces*) (as:write-socket-data s p))
                       (as:write-socket-data s (as:bytes nil)
                                             :write-cb (lambda (s)
                                                         (incf calls)
                                                         (setf queued-at-cb
                                                               (as:socket-queued-bytes s))
                                                         (as:close-socket s)))))))
        (setf result (collect-until-eof "127.0.0.1" (as:tcp-server-port server)
                                        (lambda (s) (as:write-socket-data s "GET /"))))))
    (multiple-value-bind (octets eof) (funcall result)
      (is-true eof)
      (is (string= (pieces-text) (text octets))))
    (is (= 1 calls))
    (is (eql 0 queued-at-cb))))

(test write-cbs-in-order-zero-byte-included
  "While a write-cb is set every write reports once its bytes have left, in the
order of the writes, an empty write included (an empty string and :start = :end
too)."
  (let ((log '()) result)
    (with-test-loop ()
      (let ((server (one-shot-server
                     (lambda (s)
                       (let ((n 0))
                         (as:write-socket-data s "one" :write-cb (lambda (s)
                                                                   (push (list (incf n) (as:socket-queued-bytes s))
                                                                         log)
                                                                   (when (= n 4) (as:close-socket s)))))
                       (as:write-socket-data s "")
                       (as:write-socket-data s (make-string 100000 :initial-element #\x))
                       (as:write-socket-data s "abc" :start 1 :end 1)))))
        (setf result (collect-until-eof "127.0.0.1" (as:tcp-server-port server)
                                        (lambda (s) (as:write-socket-data s "GET /"))))))
    (is (equal '(1 2 3 4) (mapcar #'first (reverse log))))
    (is (every (lambda (entry) (eql 0 (second entry))) log) "~S" log)
    (is (= 100003 (length (funcall result))))))

(test write-socket-data-start-end
  ":start and :end select part of a string (characters) or an octet vector
(octets; other sequences go through as:bytes first); a bad index is a type-error naming the argument."
  (let ((errors '()) result)
    (with-test-loop ()
      (let ((server (one-shot-server
                     (lambda (s)
                       (as:write-socket-data s "xxhéllo!yy" :start 2 :end 8)
                       (as:write-socket-data s (octets "--[ok]--") :start 2 :end 6)
                       (as:write-socket-data s (as:bytes (list 65 66 67 68)) :start 1)
                       (as:write-socket-data s (octets "tail") :end 2)
                       (dolist (args '((:start -1) (:start 99) (:end 99)
                                       (:start 3 :end 2) (:start "1") (:end 1.5)))
                         (handler-case (progn (apply #'as:write-socket-data s "abcd" args)
                                              (push (list args :no-error) errors))
                           (type-error (e)
                             (push (list args (princ-to-string e)) errors))))
                       (as:close-socket s)))))
        (setf result (collect-until-eof "127.0.0.1" (as:tcp-server-port server)
                                        (lambda (s) (as:write-socket-data s "GET /"))))))
    (is (string= "héllo![ok]BCDta" (text (funcall result))))
    (is (= 6 (length errors)))
    (dolist (entry errors)
      (destructuring-bind (args message) entry
        (is (stringp message) "~S gave no type-error" args)
        (when (stringp message)
          (is (search (if (member :end args) ":END" ":START") message)
              "~S: ~A does not name the argument" args message))))))

(test async-io-stream-on-a-plain-socket
  "(make-instance 'as:async-io-stream :socket s) on a draining socket: writing
through it works (in order with write-socket-data); reading sees no bytes while
the read-cb keeps receiving octet vectors."
  (let ((read-cb-got '()) (stream-reads nil) (socket-stream-slot :unset) result)
    (with-test-loop ()
      (let* ((server
               (as:tcp-server "127.0.0.1" 0
                              (lambda (s data)
                                (push data read-cb-got)
                                (let ((stream (make-instance 'as:async-io-stream :socket s))
                                      (buffer (make-array 16 :element-type '(unsigned-byte 8))))
                                  (setf socket-stream-slot (as:socket-stream s))
                                  (setf stream-reads
                                        (list (listen stream)
                                              (read-sequence buffer stream)
                                              (handler-case (read-byte stream nil :none)
                                                (as:async-stream-empty () :empty))))
                                  (format stream "status ~D~%" 200)
                                  (as:write-socket-data s "middle ")
                                  (write-sequence (octets "body") stream)
                                  (close stream)))
                              #'ignore-event)))
        (setf result (collect-until-eof "127.0.0.1" (as:tcp-server-port server)
                                        (lambda (s)
                                          (as:write-socket-data s "ping")
                                          (as:close-tcp-server server))))))
    (is (string= (format nil "status 200~%middle body") (text (funcall result))))
    (is (equalp (list (octets "ping")) read-cb-got))
    (is (typep (first read-cb-got) 'as:octet-vector))
    (is (equal '(nil 0 :empty) stream-reads))
    (is (null socket-stream-slot))))

(test octet-names-and-bytes
  "cl-async's octet, octet-vector and bytes, and its write variables."
  (is (typep 255 'as:octet))
  (is (not (typep 256 'as:octet)))
  (is (typep (make-array 3 :element-type '(unsigned-byte 8)) 'as:octet-vector))
  (is (typep (make-array 3 :element-type '(unsigned-byte 8)) '(as:octet-vector 3)))
  (is (not (typep (make-array 3 :element-type '(unsigned-byte 8)) '(as:octet-vector 4))))
  (is (not (typep "abc" 'as:octet-vector)))
  (let ((empty (as:bytes nil)))
    (is (typep empty 'as:octet-vector))
    (is (= 0 (length empty))))
  (let ((v (make-array 2 :element-type '(unsigned-byte 8) :initial-contents '(1 2))))
    (is (eq v (as:bytes v))))
  (is (equalp #(1 2 3) (as:bytes '(1 2 3))))
  (is (typep (as:bytes #(1 2 3)) 'as:octet-vector))
  (is (equalp #(195 169) (as:bytes (string (code-char 233)))))
  (signals type-error (as:bytes '(1 300)))
  (signals type-error (as:bytes 42))
  (is (eq t as:*buffer-writes*))
  (is (typep as:*buffer-size* '(integer 1)))
  (is (stringp (documentation 'as:bytes 'function)))
  (is (stringp (documentation 'as:*buffer-writes* 'variable)))
  (is (stringp (documentation 'as:*buffer-size* 'variable)))
  (is (stringp (documentation 'as:octet 'type)))
  (is (stringp (documentation 'as:octet-vector 'type))))

(test streamish-names-are-ancestors
  "cl-async's streamish-* conditions are ancestors of what this library delivers."
  (loop for (ours theirs) in '((as:tcp-info as:streamish-info) (as:socket-info as:streamish-info)
                               (as:tcp-error as:streamish-error) (as:socket-error as:streamish-error)
                               (as:tcp-eof as:streamish-eof) (as:socket-eof as:streamish-eof)
                               (as:socket-closed as:streamish-closed)
                               (as:tcp-reset as:streamish-error) (as:tcp-timeout as:streamish-error))
        do (is (subtypep ours theirs) "~S is not a ~S" ours theirs))
  (dolist (name '(as:streamish-info as:streamish-error as:streamish-eof as:streamish-closed
                  as:streamish-broken-pipe as:streamish-canceled))
    (is (stringp (documentation name 'type)) "~S has no docstring" name))
  (is (stringp (documentation 'as:streamish 'function)))
  ;; The code mapping: EPIPE and ECANCELED from libcltcp.
  (is (typep (as::make-event-condition as::*uv-epipe* nil) 'as:streamish-broken-pipe))
  (is (typep (as::make-event-condition as::*uv-epipe* nil) 'as:tcp-error))
  (is (typep (as::make-event-condition as::*uv-ecanceled* nil) 'as:streamish-canceled)))

(test streamish-conditions-caught-by-cl-async-names
  "handler-case on cl-async's names catches what this library signals and
delivers: eof, a write to a closed socket, a write after shutdown (EPIPE)."
  (let ((eof-streamish nil) (closed nil) (pipe nil) (pipe-closed nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d) (declare (ignore s d)))
                                   #'ignore-event
                                   :connect-cb (lambda (s) (as:close-socket s)))))
        (let ((client nil))
          (setf client
                (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore s d)))
                                (lambda (c)
                                  (typecase c
                                    (as:streamish-eof
                                     (setf eof-streamish (eq (as:streamish c) client))
                                     (as:close-tcp-server server)
                                     (done))))
                                :connect-cb
                                (lambda (s)
                                  (as:shutdown-socket s)
                                  (handler-case (as:write-socket-data s "late")
                                    (as:streamish-broken-pipe (e)
                                      (setf pipe t pipe-closed (typep e 'as:socket-closed))))))))
        (let ((dead (as:init-tcp-socket (lambda (s d) (declare (ignore s d))) nil)))
          (as:close-socket dead)
          (handler-case (as:write-socket-data dead "x")
            (as:streamish-closed () (setf closed t))))))
    (is-true eof-streamish)
    (is-true closed)
    (is-true pipe)
    (is-true pipe-closed)))

(test write-cancelled-by-close-is-streamish-canceled
  "A write whose bytes never left because the connection closed under it (a
write timeout: the peer stops reading) reaches the event-cb as cl-async's
streamish-canceled, after the timeout, while the write-cb never runs."
  (let ((events '()) (write-cbs 0))
    (with-test-loop (:timeout 30)
      (let ((server (as:tcp-server "127.0.0.1" 0
                                   (lambda (s d) (declare (ignore s d)))
                                   #'ignore-event
                                   :connect-cb (lambda (s) (as:disable-socket s :read t)))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (s d) (declare (ignore s d)))
                        (lambda (c)
                          (push c events)
                          (when (typep c 'as:streamish-canceled)
                            (as:close-tcp-server server)
                            (as:delay (lambda () (done)) :time 0.2)))
                        :write-timeout 1
                        :connect-cb
                        (lambda (s)
                          (as:write-socket-data s (make-array (* 64 1024 1024)
                                                              :element-type '(unsigned-byte 8))
                                                :write-cb (lambda (s) (declare (ignore s))
                                                            (incf write-cbs)))))))
    (setf events (reverse events))
    (is (typep (first events) 'as:tcp-timeout) "~S" events)
    (is (= 1 (count-if (lambda (c) (typep c 'as:streamish-canceled)) events)) "~S" events)
    (is (typep (second events) 'as:streamish-canceled))
    (is (typep (second events) 'as:tcp-error))
    (is (= 0 write-cbs))))

(test stream-writes-coalesce-too
  "WRITE-BYTE and FORMAT on an async-io-stream made on a plain socket: a hundred
one-byte writes in one callback still leave in one send."
  (let ((sends nil) result)
    (with-test-loop ()
      (let ((server (one-shot-server
                     (lambda (s)
                       (let ((stream (make-instance 'as:async-io-stream :socket s)))
                         (dotimes (i 100) (write-byte (+ 48 (mod i 10)) stream))
                         (format stream "~%end")
                         (as:delay (lambda ()
                                     (setf sends (as::%socket-send-count s))
                                     (close stream))
                                   :time 0))))))
        (setf result (collect-until-eof "127.0.0.1" (as:tcp-server-port server)
                                        (lambda (s) (as:write-socket-data s "GET /"))))))
    (is (eql 1 sends))
    (is (string= (format nil "~{~a~}~%end"
                         (loop for i below 100 collect (mod i 10)))
                 (text (funcall result))))))
