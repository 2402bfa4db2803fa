;;;; error-tests.lisp -- errors in callbacks: routing, restarts, new loops.

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(define-condition app-bug (error) ((where :initarg :where :reader where)))

(test uncaught-error-leaves-start-event-loop-and-a-new-loop-works
  (let ((caught nil) (base nil))
    (handler-case
        (as:start-event-loop
         (lambda ()
           (setf base as:*event-base*)
           (let ((server (echo-server)))
             (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                             (lambda (socket data)
                               (declare (ignore socket data))
                               (error 'app-bug :where :read-cb))
                             nil :data "boom"))))
      (app-bug (e) (setf caught e)))
    (is (eq :read-cb (and caught (where caught))))
    (is (= 0 (as:registry-live-count base)))
    (is-false (as:event-loop-running-p))
    ;; a new loop starts and works
    (let ((got nil))
      (with-test-loop ()
        (let ((server (echo-server)))
          (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                          (one-reply server (lambda (data) (setf got data)))
                          nil :data "again")))
      (is (equal "again" (text got))))))

(test restarts-continue-and-exit-are-offered
  (let ((restarts nil) (after nil))
    (handler-bind ((app-bug (lambda (e)
                              (setf restarts (mapcar #'restart-name (compute-restarts e)))
                              (invoke-restart 'continue))))
      (with-test-loop ()
        (as:delay (lambda () (error 'app-bug :where :delay)) :time 0.01)
        (as:delay (lambda () (setf after t) (done)) :time 0.05)))
    (is (member 'continue restarts))
    (is (member 'as:exit-event-loop restarts))
    (is-true after "the loop did not go on after CONTINUE")))

(test restart-exit-event-loop-stops-the-loop
  (let ((after nil) (result nil) (start (now)))
    (handler-bind ((app-bug (lambda (e)
                              (declare (ignore e))
                              (invoke-restart 'as:exit-event-loop))))
      (setf result
            (as:start-event-loop
             (lambda ()
               (as:delay (lambda () (error 'app-bug :where :delay)) :time 0.01)
               (as:delay (lambda () (setf after t)) :time 60)))))
    (is (eql 0 result))
    (is-false after)
    ;; It did not wait for the 60 s delay (generous for a busy machine).
    (is (< (- (now) start) 30))))

(test catch-app-errors-sends-to-the-event-cb
  (let ((got nil) (later nil) (client nil))
    (with-test-loop (:catch-app-errors t)
      (let ((server (echo-server)))
        (setf client
              (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                              (lambda (socket data)
                                (declare (ignore socket data))
                                (error 'app-bug :where :read-cb))
                              (lambda (e)
                                (when (typep e 'app-bug)
                                  (setf got e)
                                  ;; the loop goes on
                                  (as:delay (lambda ()
                                              (setf later t)
                                              (as:close-socket client)
                                              (as:close-tcp-server server)
                                              (done)))))
                              :data "x"))))
    (is (typep got 'app-bug))
    (is-true later)))

(test catch-app-errors-without-event-cb-uses-default-handler
  (let ((got nil))
    (with-test-loop (:catch-app-errors t
                     :default-event-cb (lambda (e) (when (typep e 'app-bug) (setf got e) (done))))
      (as:delay (lambda () (error 'app-bug :where :delay))))
    (is (typep got 'app-bug))))

(test catch-app-errors-function-and-send-errors-to-eventcb-nil
  (let ((fn-got nil) (cb-got nil))
    (with-test-loop (:catch-app-errors (lambda (e) (setf fn-got e) (done))
                     :send-errors-to-eventcb nil)
      (as:delay (lambda () (error 'app-bug :where :delay))
                :event-cb (lambda (e) (setf cb-got e))))
    (is (typep fn-got 'app-bug))
    (is (null cb-got))))

(test failing-event-cb-goes-out-of-the-loop
  (let ((caught nil))
    (handler-case
        (with-test-loop (:catch-app-errors t)
          (as:delay (lambda () (error 'app-bug :where :delay))
                    :event-cb (lambda (e) (declare (ignore e)) (error 'app-bug :where :event-cb))))
      (app-bug (e) (setf caught (where e))))
    (is (eq :event-cb caught))))

(test warnings-in-callbacks-unwind-nothing
  (let ((warned nil) (after-warn nil))
    (handler-bind ((warning (lambda (w) (setf warned t) (muffle-warning w))))
      (with-test-loop ()
        (as:delay (lambda ()
                    (warn "just a warning")
                    (setf after-warn t)
                    (done)))))
    (is-true warned)
    (is-true after-warn))
  ;; and without any handler a warning just prints and the callback goes on
  (let ((after-warn nil))
    (let ((*error-output* (make-broadcast-stream)))
      (with-test-loop (:catch-app-errors t)
        (as:delay (lambda () (warn "unhandled warning") (setf after-warn t) (done)))))
    (is-true after-warn)))

(test error-in-start-fn-propagates-and-cleans-up
  (let ((base nil))
    (signals app-bug
      (as:start-event-loop (lambda ()
                             (setf base as:*event-base*)
                             (echo-server)
                             (error 'app-bug :where :start))))
    (is (= 0 (as:registry-live-count base)))
    (is-false (as:event-loop-running-p))))

(test error-in-connect-cb-of-a-server
  (let ((caught nil))
    (handler-case
        (with-test-loop ()
          (let ((server (as:tcp-server "127.0.0.1" 0 (lambda (s d) (declare (ignore s d))) nil
                                       :connect-cb (lambda (s) (declare (ignore s))
                                                     (error 'app-bug :where :connect-cb)))))
            (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                            (lambda (s d) (declare (ignore s d))) #'ignore-event)))
      (app-bug (e) (setf caught (where e))))
    (is (eq :connect-cb caught))))
