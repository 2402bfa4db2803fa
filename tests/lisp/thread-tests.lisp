;;;; thread-tests.lisp -- ref/unref, several loops in several threads, and
;;;; tcp-server :reuse-port (issue 10).

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

;;; ---- ref / unref ----

(test unref-timer-lets-the-loop-end-and-ref-undoes-it
  (let ((ran-unref nil) (ran-ref nil) (start (now)))
    (with-test-loop ()
      (as:unref (as:delay (lambda () (setf ran-unref t)) :time 5))
      (let ((e (as:delay (lambda () (setf ran-ref t)) :time 0.05)))
        (as:unref e)
        (as:ref e))
      (done))
    ;; The referenced one kept the loop alive until it fired; the other did not.
    (is-true ran-ref)
    (is-false ran-unref)
    (is (< (- (now) start) 4))))

(test unref-survives-add-event
  (let ((ran nil) (start (now)))
    (with-test-loop ()
      (let ((e (as:make-event (lambda () (setf ran t)))))
        (as:unref e)
        ;; A new C timer for the same event keeps it unreferenced.
        (as:add-event e :timeout 5))
      (done))
    (is-false ran)
    (is (< (- (now) start) 4))))

(test unref-server-and-sockets
  (let ((accepted nil) (client nil) (server nil) (start (now)) (got nil))
    (with-test-loop ()
      (setf server (as:tcp-server "127.0.0.1" 0
                                  (lambda (s data) (as:write-socket-data s data))
                                  :event-cb #'ignore-event
                                  :connect-cb (lambda (s) (setf accepted s) (as:unref s))))
      (as:unref server)
      ;; The unreferenced server still accepts while the loop runs.
      (setf client (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                   (lambda (s data)
                                     (setf got (text data))
                                     ;; Now only unreferenced handles are left
                                     ;; once the watchdog is gone.
                                     (as:unref s)
                                     (done))
                                   :event-cb #'ignore-event :data "ref")))
    (is (equal "ref" got))
    (is (typep accepted 'as:socket))
    ;; The loop ended with the connection and the server open: closed by
    ;; the loop's end.
    (is-true (as:socket-closed-p client))
    (is-true (as:tcp-server-closed-p server))
    (is (< (- (now) start) 5))))

(test ref-on-closed-handles
  (with-test-loop ()
    (let* ((server (echo-server))
           (socket (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                                   (lambda (s d) (declare (ignore s d)))
                                   :event-cb #'ignore-event)))
      (as:close-socket socket)
      (signals as:socket-closed (as:ref socket))
      (signals as:socket-closed (as:unref socket))
      (as:close-tcp-server server)
      (is (null (as:unref server)))     ; closing already: nothing to keep alive
      (signals type-error (as:ref 42))
      (done))))

;;; ---- several loops in several threads ----

(defun run-echo-loop (tag clients)
  "Run a loop with its own echo server and CLIENTS clients; return a plist."
  (let ((replies '()) (bases '()) (base nil) (timed-out nil) (handled '()))
    (as:start-event-loop
     (lambda ()
       (setf base as:*event-base*)
       ;; An application error, for this loop's own default handler.
       (as:delay (lambda () (error "error in ~A" tag)))
       (let* ((watchdog (as:delay (lambda () (setf timed-out t) (as:exit-event-loop))
                                  :time 60))
              (server (as:tcp-server "127.0.0.1" 0
                                     (lambda (s data) (as:write-socket-data s data))
                                     :event-cb #'ignore-event))
              (left clients))
         (dotimes (i clients)
           (let ((message (format nil "~A-~D" tag i)))
             (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                             (lambda (s data)
                               (push (text data) replies)
                               (push as:*event-base* bases)
                               (as:close-socket s)
                               (when (zerop (decf left))
                                 (as:close-tcp-server server)
                                 (as:free-event watchdog)))
                             :event-cb #'ignore-event
                             :data message)))))
     :catch-app-errors t
     :default-event-cb (lambda (e) (push (princ-to-string e) handled)))
    (list :replies replies :bases bases :base base :timed-out timed-out
          :handled handled :registry (as:registry-live-count base))))

(test four-loops-in-four-threads-at-once
  (let* ((n 4) (clients 20)
         (results (make-array n :initial-element nil))
         (errors '()) (lock (bt:make-lock))
         (threads (loop for i below n
                        collect (let ((i i))
                                  (bt:make-thread
                                   (lambda ()
                                     (handler-case
                                         (setf (aref results i)
                                               (run-echo-loop (format nil "loop~D" i) clients))
                                       (error (e) (bt:with-lock-held (lock) (push e errors)))))
                                   :name (format nil "loop ~D" i))))))
    (mapc #'bt:join-thread threads)
    (is (null errors) "errors: ~S" errors)
    (let ((bases (map 'list (lambda (r) (getf r :base)) results)))
      ;; Each loop had its own event base.
      (is (= n (length (remove-duplicates bases)))))
    (dotimes (i n)
      (let ((r (aref results i)))
        (is-false (getf r :timed-out))
        (is (equal (sort (loop for k below clients collect (format nil "loop~D-~D" i k))
                         #'string<)
                   (sort (copy-list (getf r :replies)) #'string<)))
        ;; Every callback of loop I ran with loop I's *event-base*.
        (is (every (lambda (b) (eq b (getf r :base))) (getf r :bases)))
        ;; Its error reached its own :default-event-cb, and only that one.
        (is (equal (list (format nil "error in loop~D" i)) (getf r :handled)))
        (is (= 0 (getf r :registry)))))
    ;; The thread that started them runs no loop.
    (is (null as:*event-base*))))

;;; ---- tcp-server :reuse-port ----

(defun wait-until (predicate &key (timeout 30))
  "Poll PREDICATE (outside any loop) every 10 ms until true or TIMEOUT seconds."
  (loop with end = (+ (now) timeout)
        until (funcall predicate)
        do (if (> (now) end) (return nil) (sleep 0.01))
        finally (return t)))

(test two-loops-in-two-threads-share-a-port-with-reuse-port
  (let* ((lock (bt:make-lock)) (port nil) (listening 0)
         (accepts (make-array 2 :initial-element 0))
         (stop nil) (errors '()) (replies '()) (tried 0))
    (flet ((server-loop (i)
             (handler-case
                 (as:start-event-loop
                  (lambda ()
                    (let* ((watchdog (as:delay #'as:exit-event-loop :time 60))
                           (server (as:tcp-server "127.0.0.1"
                                                  (if (= i 0) 0 (bt:with-lock-held (lock) port))
                                                  (lambda (s d)
                                                    (declare (ignore d))
                                                    (as:write-socket-data s (format nil "~D" i))
                                                    (as:close-socket s))
                                                  :event-cb #'ignore-event
                                                  :connect-cb (lambda (s)
                                                                (declare (ignore s))
                                                                (incf (aref accepts i)))
                                                  :reuse-port t))
                           (iv nil))
                      (bt:with-lock-held (lock)
                        (when (= i 0) (setf port (as:tcp-server-port server)))
                        (incf listening))
                      ;; Stop once the clients are done.
                      (setf iv (as:interval (lambda ()
                                              (when stop
                                                (as:remove-interval iv)
                                                (as:free-event watchdog)
                                                (as:close-tcp-server server)))
                                            :time 0.02)))))
               (error (e) (bt:with-lock-held (lock) (push e errors))))))
      (let ((first (bt:make-thread (lambda () (server-loop 0)) :name "reuse-port loop 0")))
        (is-true (wait-until (lambda () (bt:with-lock-held (lock) port))))
        (let ((second (bt:make-thread (lambda () (server-loop 1)) :name "reuse-port loop 1")))
          (is-true (wait-until (lambda () (bt:with-lock-held (lock) (= listening 2)))))
          ;; The clients, in a loop of this thread: one connection after the
          ;; other until both servers accepted some.  The kernel picks a
          ;; listener from each connection's addresses: with at least 60
          ;; connections, all on one side has probability 2^-59.
          (with-test-loop (:timeout 60)
            (labels ((next ()
                       (if (or (>= tried 400)
                               (and (>= tried 60)
                                    (plusp (aref accepts 0)) (plusp (aref accepts 1))))
                           (done)
                           (progn
                             (incf tried)
                             (as:tcp-connect "127.0.0.1" port
                                             (lambda (s data)
                                               (push (text data) replies)
                                               (as:close-socket s)
                                               (next))
                                             :event-cb (lambda (e)
                                                         (unless (typep e 'as:tcp-eof)
                                                           (bt:with-lock-held (lock)
                                                             (push e errors))
                                                           (done)))
                                             :data "?")))))
              (next)))
          (setf stop t)
          (bt:join-thread first)
          (bt:join-thread second))))
    (is (null errors) "errors: ~S" errors)
    (is (plusp (aref accepts 0)) "loop 0 accepted none of ~D" tried)
    (is (plusp (aref accepts 1)) "loop 1 accepted none of ~D" tried)
    (is (= (length replies) tried))
    (is (= tried (+ (aref accepts 0) (aref accepts 1))))
    (is (= (count "0" replies :test #'string=) (aref accepts 0)))))

(test reuse-port-off-means-the-port-is-taken
  (with-test-loop ()
    (let ((a (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                            :reuse-port t)))
      (signals as:tcp-server-bind-error
        (as:tcp-server "127.0.0.1" (as:tcp-server-port a) (lambda (s d) (declare (ignore s d)))
                       nil))
      (as:close-tcp-server a)
      (done))))

(test unref-interval-function
  (let ((ticks 0) (start (now)) (iv nil))
    (with-test-loop ()
      (setf iv (as:interval (lambda () (incf ticks)) :time 0.01))
      (as:unref iv)
      ;; Only the unreferenced interval is left: the loop ends.
      (as:delay #'done :time 0.05))
    (is (plusp ticks))
    (is (< (- (now) start) 5))
    ;; After its loop ended the function is no live interval any more.
    (with-test-loop ()
      (signals as:event-freed (as:ref iv))
      (signals as:event-freed (as:ref (lambda ())))
      (done))))
