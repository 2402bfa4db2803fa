;;;; stream-tests.lisp -- async-io-stream (:stream t) and keep mode without a
;;;; stream: line chat on both sides, bulk transfer in odd chunks, a peer that
;;;; sends byte by byte, timeouts, flexi-streams, write ordering, CLHS
;;;; read-sequence results, closed streams.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

;;; ---- helpers ----

(defun read-available (stream-or-socket)
  "Everything buffered on STREAM-OR-SOCKET now, as one octet vector: through
READ-SEQUENCE for a stream, READ-SOCKET-DATA for a socket."
  (let ((buf (make-array 4096 :element-type '(unsigned-byte 8)))
        (chunks '()))
    (loop for n = (if (typep stream-or-socket 'stream)
                      (read-sequence buf stream-or-socket)
                      (as:read-socket-data stream-or-socket buf))
          while (plusp n)
          do (push (subseq buf 0 n) chunks))
    (concat-octets (reverse chunks))))

(defun make-line-splitter ()
  "A function that takes received octets and returns the complete lines seen
so far (without newlines), keeping an incomplete last line for the next call."
  (let ((pending (make-array 0 :element-type '(unsigned-byte 8))))
    (lambda (octets)
      (setf pending (concat-octets (list pending octets)))
      (loop for nl = (position 10 pending)
            while nl
            collect (prog1 (text (subseq pending 0 nl))
                      (setf pending (subseq pending (1+ nl))))))))

(defun chat-server (&key (on-line (lambda (out line) (format out "echo: ~A~%" line))))
  "A :stream t server: each complete line is answered through the stream by
ON-LINE; after the line \"bye\" it closes the connection."
  (as:tcp-server "127.0.0.1" 0
                 (lambda (socket stream)
                   (is (typep stream 'as:async-io-stream))
                   (is (eq stream (as:socket-stream socket)))
                   (is (eq socket (as:stream-socket stream)))
                   (let ((split (or (as:socket-data socket)
                                    (setf (as:socket-data socket) (make-line-splitter)))))
                     (dolist (line (funcall split (read-available stream)))
                       (funcall on-line stream line)
                       (force-output stream)
                       (when (string= line "bye")
                         (close stream)
                         (return)))))
                 #'ignore-event
                 :stream t))

(defparameter *chat-script* '("hello" "how are you? ünïcödé λ" "bye"))

(defun adler (octets &key (start 0) (end (length octets)) (a 1) (b 0))
  "Adler-32 style checksum of OCTETS[START,END), continuing from A and B."
  (declare (type (simple-array (unsigned-byte 8) (*)) octets) (type fixnum start end a b)
           (optimize (speed 3) (safety 0)))
  (loop for i of-type fixnum from start below end
        do (setf a (mod (+ a (aref octets i)) 65521)
                 b (mod (+ b a) 65521)))
  (values a b))

;;; ---- tests ----

(test stream-line-chat-both-sides
  "tcp-server :stream t and tcp-connect :stream t exchange lines; the stream
given to read-cb is the one tcp-connect returned."
  (let ((replies '()) (client nil) (same-stream t))
    (with-test-loop ()
      (let* ((server (chat-server))
             (script *chat-script*)
             (split (make-line-splitter)))
        (setf client
              (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                              (lambda (socket stream)
                                (unless (and (eq stream client)
                                             (eq socket (as:stream-socket client)))
                                  (setf same-stream nil))
                                (dolist (line (funcall split (read-available stream)))
                                  (push line replies)
                                  (pop script)
                                  (when script
                                    (format stream "~A~%" (first script)))))
                              (lambda (c)
                                (when (typep c 'as:tcp-eof)
                                  (as:close-tcp-server server)
                                  (done)))
                              :stream t))
        (is (typep client 'as:async-io-stream))
        ;; Written before the connection exists: queued, sent once connected.
        (format client "~A~%" (first script))
        (finish-output client)))
    (is-true same-stream)
    (is (equal (mapcar (lambda (l) (format nil "echo: ~A" l)) *chat-script*)
               (reverse replies)))
    (is-false (open-stream-p client))))

(test dont-drain-read-buffer-exchange-without-stream
  "The same exchange from a client in keep mode without a stream: read-cb gets
(socket nil); READ-SOCKET-DATA and WRITE-SOCKET-DATA do the work."
  (let ((replies '()) (args '()))
    (with-test-loop ()
      (let* ((server (chat-server))
             (script *chat-script*)
             (split (make-line-splitter))
             (socket (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                     (lambda (socket stream)
                                       (push stream args)
                                       (is (plusp (as:socket-buffered-bytes socket)))
                                       (dolist (line (funcall split (read-available socket)))
                                         (push line replies)
                                         (pop script)
                                         (when script
                                           (as:write-socket-data socket (format nil "~A~%"
                                                                                (first script))))))
                                     (lambda (c)
                                       (when (typep c 'as:tcp-eof)
                                         (as:close-tcp-server server)
                                         (done)))
                                     :dont-drain-read-buffer t)))
        (is (typep socket 'as:socket))
        (as:write-socket-data socket (format nil "~A~%" (first script)))))
    (is (every #'null args))
    (is (plusp (length args)))
    (is (equal (mapcar (lambda (l) (format nil "echo: ~A" l)) *chat-script*)
               (reverse replies)))))

(test stream-16mib-in-odd-chunks
  "16 MiB read with READ-SEQUENCE in odd-sized chunks at odd :start offsets:
the checksum matches, and reading conses far less than the data."
  (let* ((size (* 16 1024 1024))
         (data (pattern size 3))
         (sizes #(1 3 17 1021 4093 65537 9 255))
         (buf (make-array (+ 11 65537) :element-type '(unsigned-byte 8)))
         (total 0) (a 1) (b 0) (k 0) (bad-return nil) (consed 0) (eof nil))
    (multiple-value-bind (want-a want-b) (adler data)
      (flet ((drain (stream)
               (loop
                 (let* ((want (aref sizes (mod k (length sizes))))
                        (start (1+ (mod k 11)))
                        (before (bytes-consed))
                        (end (read-sequence buf stream :start start :end (+ start want)))
                        (n (- end start)))
                   (when before (incf consed (- (bytes-consed) before)))
                   (incf k)
                   (unless (<= 0 n want) (setf bad-return end))
                   (multiple-value-setq (a b) (adler buf :start start :end end :a a :b b))
                   (incf total n)
                   (when (< n want) (return))))))
        (with-test-loop (:timeout 60)
          (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d)))
                                       #'ignore-event
                                       :connect-cb (lambda (s)
                                                     (as:write-socket-data s data)
                                                     (as:close-socket s)))))
            (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                            (lambda (socket stream)
                              (declare (ignore socket))
                              (drain stream))
                            (lambda (c)
                              (when (typep c 'as:tcp-eof)
                                (setf eof t)
                                (drain (as:socket-stream (as:tcp-socket c)))
                                (as:close-tcp-server server)
                                (done)))
                            :stream t)))
        (is-true eof)
        (is (null bad-return))
        (is (= size total))
        (is (and (= want-a a) (= want-b b)) "checksum differs")
        (if (bytes-consed)
            (is (< consed (* 1024 1024)) "reading 16 MiB consed ~D bytes" consed)
            (skip "no allocation counter on ~A (see BYTES-CONSED)" (lisp-implementation-type)))))))

(test stream-peer-sends-byte-by-byte
  "A peer sends one byte per loop turn: every byte arrives once, in order,
through READ-BYTE, READ-SEQUENCE and READ-SOCKET-DATA taking turns; an empty
stream signals ASYNC-STREAM-EMPTY, the end of input answers :EOF."
  (let* ((message (octets "one byte at a time, ünïcödé too"))
         (got '()) (reads 0) (turn 0)
         (empty-seen nil) (empty-listen nil) (empty-read-sequence nil)
         (eof-answer nil) (eof-error nil) (eof-read-sequence nil) (peer-closed nil))
    (with-test-loop (:timeout 20)
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d)))
                                   #'ignore-event
                                   :connect-cb (lambda (s)
                                                 (let ((i 0))
                                                   (labels ((next ()
                                                              (if (< i (length message))
                                                                  (progn
                                                                    (as:write-socket-data
                                                                     s (subseq message i (1+ i)))
                                                                    (incf i)
                                                                    (as:delay #'next :time 0.002))
                                                                  (as:close-socket s))))
                                                     (next)))))))
        (flet ((take (stream)
                 (loop while (listen stream)
                       do (ecase (mod (incf turn) 3)
                            (0 (push (read-byte stream) got))
                            (1 (let* ((v (make-array 2 :element-type '(unsigned-byte 8)))
                                      (n (read-sequence v stream)))
                                 (dotimes (i n) (push (aref v i) got))))
                            (2 (let* ((v (make-array 1 :element-type '(unsigned-byte 8)))
                                      (n (as:read-socket-data stream v)))
                                 (dotimes (i n) (push (aref v i) got))))))))
          (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                          (lambda (socket stream)
                            (declare (ignore socket))
                            (incf reads)
                            (take stream)
                            (unless (as:socket-peer-closed-p stream)
                              ;; Merely empty: not an end of file.
                              (setf empty-listen (listen stream)
                                    empty-read-sequence
                                    (read-sequence (make-array 4 :element-type '(unsigned-byte 8))
                                                   stream :start 1))
                              (handler-case (read-byte stream nil :eof)
                                (as:async-stream-empty () (setf empty-seen t)))
                              ;; Unhandled, it answers like cl-async: the eof-value.
                              (is (eq :eof (read-byte stream nil :eof)))))
                          (lambda (c)
                            (when (typep c 'as:tcp-eof)
                              (let ((stream (as:socket-stream (as:tcp-socket c))))
                                (setf peer-closed (as:socket-peer-closed-p stream))
                                (take stream)
                                (setf eof-answer (read-byte stream nil :eof)
                                      eof-read-sequence
                                      (read-sequence (make-array 4 :element-type '(unsigned-byte 8))
                                                     stream :start 2))
                                (handler-case (read-byte stream)
                                  (end-of-file () (setf eof-error t))))
                              (as:close-tcp-server server)
                              (done)))
                          :stream t))))
    (is (equalp message (coerce (reverse got) '(simple-array (unsigned-byte 8) (*)))))
    (is (> reads 5) "only ~D read-cb calls" reads)
    (is-true empty-seen)
    (is-false empty-listen)
    (is (eql 1 empty-read-sequence))
    (is-true peer-closed)
    (is (eq :eof eof-answer))
    (is (eql 2 eof-read-sequence))
    (is-true eof-error)))

(test stream-read-and-write-timeouts
  "Stream mode with a read timeout (an idle peer) and a write timeout (a peer
that stops reading): tcp-timeout arrives, and the stream is closed after it."
  (let ((read-timeout nil) (read-elapsed nil) (write-timeout nil)
        (write-elapsed nil) (closed-after nil) (write-after nil) (start (now))
        (server-sockets '()))
    (with-test-loop (:timeout 30)
      (let* ((pending 2)
             (server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d)))
                                    #'ignore-event
                                    :stream t
                                    :connect-cb (lambda (s)
                                                  (push s server-sockets)
                                                  ;; Never read: the kernel buffers fill.
                                                  (as:disable-socket s :read t)))))
        (flet ((finish ()
                 (when (zerop (decf pending))
                   (dolist (s server-sockets)
                     (unless (as:socket-closed-p s) (as:close-socket s :force t)))
                   (as:close-tcp-server server)
                   (done))))
          ;; An idle connection: nothing ever arrives.
          (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                          (lambda (s d) (declare (ignore s d)))
                          (lambda (c)
                            (when (typep c 'as:tcp-timeout)
                              (setf read-timeout c
                                    read-elapsed (- (now) start)))
                            (when (typep c 'as:tcp-error) (finish)))
                          :stream t :read-timeout 0.3)
          ;; A writer whose peer stops reading.
          (let ((stream nil))
            (setf stream
                  (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                  (lambda (s d) (declare (ignore s d)))
                                  (lambda (c)
                                    (when (typep c 'as:tcp-timeout)
                                      (setf write-timeout c
                                            write-elapsed (- (now) start))
                                      (as:with-delay (0.01)
                                        (setf closed-after (not (open-stream-p stream)))
                                        (handler-case (write-byte 1 stream)
                                          (as:socket-closed () (setf write-after :socket-closed)))))
                                    (when (typep c 'as:tcp-error)
                                      (as:with-delay (0.02) (finish))))
                                  :stream t :write-timeout 0.5
                                  :connect-cb (lambda (s)
                                                (declare (ignore s))
                                                (write-sequence (make-array (* 64 1024 1024)
                                                                            :element-type '(unsigned-byte 8)
                                                                            :initial-element 7)
                                                                stream))))))))
    (is (typep read-timeout 'as:tcp-timeout))
    ;; START is before the connects, so before both clocks start.
    (is (fired-in-time-p read-elapsed 0.3) "read timeout after ~A s" read-elapsed)
    (is (typep write-timeout 'as:tcp-timeout))
    (is (and write-elapsed (<= (- 0.5 +clock-slack+) write-elapsed 20))
        "write timeout after ~A s" write-elapsed)
    (is-true closed-after)
    (is (eq :socket-closed write-after))))

(defun utf-8-flexi (stream)
  (flexi-streams:make-flexi-stream
   stream :external-format (flexi-streams:make-external-format :utf-8 :eol-style :lf)))

(defun flexi-read-lines (flexi partial on-line)
  "Call ON-LINE on each complete line buffered under FLEXI, as soon as it is
read (so ON-LINE may read on from FLEXI itself).  A line that has not fully
arrived is returned, to be passed as PARTIAL (its beginning) to the next call."
  (progn
    (loop
      (multiple-value-bind (line missing-newline-p) (read-line flexi nil nil)
        (cond ((null line) (return partial))
              (missing-newline-p (return (concatenate 'string partial line)))
              (t (funcall on-line (concatenate 'string partial line))
                 (setf partial "")))))))

(test flexi-streams-lines-and-characters
  "flexi-streams over async-io-streams on both ends: lines (one arriving in two
pieces), single characters and FORMAT, in UTF-8."
  (let ((server-lines '()) (server-chars '()) (client-lines '()))
    (with-test-loop ()
      (let* ((partial "")
             (server (as:tcp-server
                      "127.0.0.1" 0
                      (lambda (socket stream)
                        (let ((flexi (or (as:socket-data socket)
                                         (setf (as:socket-data socket) (utf-8-flexi stream)))))
                          (setf partial
                                (flexi-read-lines
                                 flexi partial
                                 (lambda (line)
                                   (if (string= line "chars:")
                                       (progn
                                         ;; Sent in the same turn, so buffered.
                                         (dotimes (i 3) (push (read-char flexi) server-chars))
                                         (is (eql #\Newline (read-char flexi))))
                                       (push line server-lines))
                                   (when (string= line "end")
                                     (format flexi "got ~D lines: ~{~A~^|~}~%λ done~%"
                                             (length server-lines) (reverse server-lines))
                                     (force-output flexi)))))))
                      #'ignore-event :stream t))
             (client-partial "")
             (client nil))
        (setf client
              (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                              (lambda (socket stream)
                                (declare (ignore socket))
                                (setf client-partial
                                      (flexi-read-lines (utf-8-flexi stream) client-partial
                                                        (lambda (line)
                                                          (setf client-lines
                                                                (append client-lines (list line))))))
                                (when (and (>= (length client-lines) 2) (open-stream-p stream))
                                  (close stream)
                                  (as:close-tcp-server server)
                                  (done)))
                              #'ignore-event
                              :stream t
                              :connect-cb (lambda (s)
                                            (declare (ignore s))
                                            (let ((flexi (utf-8-flexi client)))
                                              (write-line "première ligne" flexi)
                                              (write-string "chars:" flexi)
                                              (terpri flexi)
                                              (write-char #\λ flexi)
                                              (write-char #\é flexi)
                                              (write-char #\z flexi)
                                              (terpri flexi)
                                              (write-string "a line in two pie" flexi)
                                              (force-output flexi)
                                              (as:with-delay (0.05)
                                                (format flexi "ces~%end~%")
                                                (force-output flexi))))))))
    (is (equal '("première ligne" "a line in two pieces" "end") (reverse server-lines)))
    (is (equal '(#\λ #\é #\z) (reverse server-chars)))
    (is (equal '("got 3 lines: première ligne|a line in two pieces|end" "λ done")
               client-lines))))

(test stream-writes-and-write-socket-data-keep-order
  "Writes through the stream (octets, bytes, characters, FORMAT) and
WRITE-SOCKET-DATA on the same socket leave in call order, also behind a
large queued write."
  (let* ((expected '()) (received '()) (big (pattern (* 4 1024 1024) 5)))
    (with-test-loop (:timeout 30)
      (let* ((server (as:tcp-server "127.0.0.1" 0
                                    (lambda (socket data)
                                      (declare (ignore socket))
                                      (push data received))
                                    (lambda (c)
                                      (when (typep c 'as:tcp-eof)
                                        (done)))))
             (stream nil))
        (flet ((note (x) (push (if (stringp x) (octets x) x) expected)))
          (setf stream
                (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                (lambda (s d) (declare (ignore s d)))
                                #'ignore-event
                                :stream t
                                :connect-cb
                                (lambda (socket)
                                  (dotimes (i 50)
                                    (let ((a (octets (format nil "[s~D]" i)))
                                          (b (format nil "[w~D]" i)))
                                      (write-sequence a stream) (note a)
                                      (as:write-socket-data socket b) (note b)
                                      (write-byte 33 stream) (note (octets "!"))
                                      (format stream "<f~D>" i) (note (format nil "<f~D>" i))
                                      (when (= i 10)
                                        ;; Most of this is queued in C: later
                                        ;; small writes must wait behind it.
                                        (write-sequence big stream) (note big))))
                                  (close stream)
                                  (as:close-tcp-server server)))))))
    (is (equalp (concat-octets (reverse expected)) (concat-octets (reverse received))))))

(test stream-read-sequence-returns-clhs-index
  "READ-SEQUENCE returns the index of the first element not updated, also with
:START > 0, for simple octet vectors, adjustable vectors and (vector t)."
  (let ((results '()) (simple nil) (adjustable nil) (general nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d)))
                                   #'ignore-event
                                   :connect-cb (lambda (s)
                                                 (as:write-socket-data s "abcdefghijklmnop")))))
        (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                        (lambda (socket stream)
                          (when (= 16 (as:socket-buffered-bytes stream))
                            (setf simple (make-array 20 :element-type '(unsigned-byte 8)
                                                        :initial-element 0)
                                  adjustable (make-array 10 :element-type '(unsigned-byte 8)
                                                            :adjustable t :initial-element 0)
                                  general (make-array 20 :initial-element nil))
                            (push (read-sequence simple stream :start 5 :end 9) results)
                            (push (read-sequence adjustable stream :start 2 :end 6) results)
                            (push (as:socket-buffered-bytes stream) results)
                            (push (read-sequence general stream :start 1) results)
                            (push (read-sequence simple stream :start 3) results)
                            (as:close-socket socket)
                            (as:close-tcp-server server)
                            (done)))
                        #'ignore-event
                        :stream t)))
    (is (equal '(9 6 8 9 3) (reverse results)))
    (is (equal "abcd" (text (subseq simple 5 9))))
    (is (every #'zerop (subseq simple 0 5)))
    (is (equal "efgh" (text (coerce (subseq adjustable 2 6) '(simple-array (unsigned-byte 8) (*))))))
    (is (equal "ijklmnop" (text (coerce (subseq general 1 9) '(simple-array (unsigned-byte 8) (*))))))
    (is (null (aref general 0)))
    (is (null (aref general 9)))))

(test closed-stream-signals-socket-closed
  "CLOSE on the stream closes the socket (OPEN-STREAM-P and SOCKET-CLOSED-P
agree); later writes signal SOCKET-CLOSED, reads answer end of file, a second
CLOSE is harmless; after the peer's EOF, writing signals SOCKET-CLOSED too."
  (let ((checks '()) (server-write nil))
    (with-test-loop ()
      (let* ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d)))
                                    (lambda (c)
                                      (when (typep c 'as:tcp-eof)
                                        ;; Writing in the EOF callback itself is still
                                        ;; allowed (a half-close); afterwards it is not.
                                        (let ((stream (as:socket-stream (as:tcp-socket c))))
                                          (as:with-delay (0.01)
                                            (handler-case (write-string "too late" stream)
                                              (as:socket-closed () (setf server-write :socket-closed)))
                                            (done)))))
                                    :stream t))
             (client nil))
        (setf client
              (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                              (lambda (s d) (declare (ignore s d)))
                              #'ignore-event
                              :stream t
                              :connect-cb
                              (lambda (socket)
                                (push (open-stream-p client) checks)
                                (push (close client) checks)
                                (push (open-stream-p client) checks)
                                (push (as:socket-closed-p socket) checks)
                                (push (as:socket-closed-p client) checks)
                                (push (close client) checks)
                                (dolist (thunk (list (lambda () (write-byte 1 client))
                                                     (lambda () (write-sequence (octets "x") client))
                                                     (lambda () (write-char #\x client))
                                                     (lambda () (format client "~A" "x"))
                                                     (lambda () (as:write-socket-data client "x"))))
                                  (push (handler-case (progn (funcall thunk) :no-error)
                                          (as:socket-closed () :socket-closed))
                                        checks))
                                (push (read-byte client nil :eof) checks)
                                (as:close-tcp-server server))))))
    (is (equal '(t t nil t t t
                 :socket-closed :socket-closed :socket-closed :socket-closed :socket-closed
                 :eof)
               (reverse checks)))
    (is (eq :socket-closed server-write))))

(test stream-classes-and-make-instance
  "The four classes, their docstrings, element type, and a stream made with
MAKE-INSTANCE on a :dont-drain-read-buffer socket (read-cb then gets it)."
  (dolist (class '(as:async-stream as:async-input-stream as:async-output-stream
                   as:async-io-stream))
    (is (find-class class))
    (is (stringp (documentation (find-class class) t))))
  (is (subtypep 'as:async-io-stream 'as:async-input-stream))
  (is (subtypep 'as:async-io-stream 'as:async-output-stream))
  (is (subtypep 'as:async-input-stream 'as:async-stream))
  (is (not (subtypep 'as:async-stream-empty 'end-of-file)))
  ;; Not an error: the library's callback trap and user handlers on ERROR
  ;; must not take "nothing buffered yet" for a failure.
  (is (not (subtypep 'as:async-stream-empty 'error)))
  (let ((got nil) (arg nil) (made nil) (drain-error nil))
    (with-test-loop ()
      (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d)))
                                   #'ignore-event
                                   :connect-cb (lambda (s)
                                                 (as:write-socket-data s "made by hand")
                                                 (as:close-socket s)))))
        (let ((socket (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                      (lambda (socket stream)
                                        (declare (ignore socket))
                                        (setf arg stream))
                                      (lambda (c)
                                        (when (typep c 'as:tcp-eof)
                                          (setf got (read-available made))
                                          (as:close-tcp-server server)
                                          (done)))
                                      :dont-drain-read-buffer t))
              (drain (as:init-tcp-socket (lambda (s d) (declare (ignore s d))) nil)))
          (setf made (make-instance 'as:async-io-stream :socket socket))
          (is (equal '(unsigned-byte 8) (stream-element-type made)))
          ;; Any socket takes a stream, a draining one too (cl-async does);
          ;; what it means there is tested in writes-tests.lisp.
          (handler-case (make-instance 'as:async-input-stream :socket drain)
            (error () (setf drain-error t)))
          (as:close-socket drain))))
    (is (eq arg made))
    (is-false drain-error)
    (is (equal "made by hand" (text got)))))
