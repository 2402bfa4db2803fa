;;;; notifier-tests.lisp -- notifiers: triggered from other threads, run in the
;;;; loop's thread (issue 10; cl-async's notifiers.md and threading.md).

(in-package #:cl-async-tcp-test)
(in-suite :cl-async-tcp)

(test single-shot-notifier-from-a-worker-thread
  ;; threading.md's example: the loop stays alive for the notifier, the
  ;; callback runs in the loop's thread and sees the worker's result.
  (let ((result nil) (seen nil) (loop-thread nil) (cb-thread nil) (notifier nil) (worker nil))
    (with-test-loop ()
      (setf loop-thread (bt:current-thread))
      (setf notifier (as:make-notifier (lambda ()
                                         (setf cb-thread (bt:current-thread)
                                               seen result)
                                         (done))))
      (is-false (as:notifier-freed-p notifier))
      (setf worker (bt:make-thread (lambda ()
                                     (sleep 0.1)
                                     (setf result 42)
                                     (as:trigger-notifier notifier))
                                   :name "notifier worker")))
    (bt:join-thread worker)
    (is (eql 42 seen))
    (is (eq loop-thread cb-thread))
    ;; Single-shot: it freed itself, so the loop could end.
    (is-true (as:notifier-freed-p notifier))))

(test triggering-a-freed-notifier-signals-notifier-freed
  (let ((in-loop nil) (in-thread nil) (notifier nil))
    (with-test-loop ()
      (setf notifier (as:make-notifier (lambda ()) :single-shot nil))
      (as:free-notifier notifier)
      (as:free-notifier notifier)        ; freeing twice does nothing
      (is-true (as:notifier-freed-p notifier))
      (handler-case (as:trigger-notifier notifier)
        (as:notifier-freed (e) (setf in-loop e)))
      (let ((th (bt:make-thread (lambda ()
                                  (handler-case (as:trigger-notifier notifier)
                                    (as:notifier-freed (e) (setf in-thread e)))))))
        (bt:join-thread th))
      (done))
    (is (typep in-loop 'as:event-error))
    (is (eq notifier (as::notifier-freed-notifier in-loop)))
    (is (typep in-thread 'as:notifier-freed))
    ;; Outside the loop, after it ended, still a clear error.
    (signals as:notifier-freed (as:trigger-notifier notifier))))

(test notifier-callback-errors-follow-the-error-policy
  (let ((caught nil) (notifier nil))
    (with-test-loop (:catch-app-errors t)
      (setf notifier (as:make-notifier (lambda () (error "notifier boom"))
                                       :event-cb (lambda (e) (setf caught e) (done))))
      (as:trigger-notifier notifier))
    (is (search "notifier boom" (princ-to-string caught)))
    ;; Single-shot: freed even though its callback failed.
    (is-true (as:notifier-freed-p notifier))))

(test eight-threads-ten-thousand-triggers-each
  (let* ((threads 8) (triggers 10000)
         (calls (make-array threads :initial-element 0))
         (finished (make-array threads :initial-element nil))
         (errors '()) (errors-lock (bt:make-lock))
         (wrong-thread 0) (freed 0)
         (handles-before nil) (registry-before nil) (handles-after nil) (registry-after nil)
         (workers '()))
    (with-test-loop (:timeout 120)
      ;; Both counts are taken inside a delay's callback (that delay is live
      ;; then), so that they compare like with like.
      (as:with-delay (0)
        (let ((loop-thread (bt:current-thread))
              (notifiers (make-array threads)))
          (setf handles-before (c-handle-count)
                registry-before (as:registry-live-count))
          (dotimes (i threads)
            (let ((i i))
              (setf (aref notifiers i)
                    (as:make-notifier
                     (lambda ()
                       (unless (eq (bt:current-thread) loop-thread)
                         (incf wrong-thread))
                       (incf (aref calls i))
                       ;; FINISHED is set after the worker's last trigger.
                       (when (aref finished i)
                         (as:free-notifier (aref notifiers i))
                         (when (= (incf freed) threads)
                           ;; Back to the baseline once the CLOSE events ran.
                           (as:delay (lambda ()
                                       (setf handles-after (c-handle-count)
                                             registry-after (as:registry-live-count))
                                       (done))
                                     :time 0.05))))
                     :single-shot nil))))
          (dotimes (i threads)
            (let ((i i))
              (push (bt:make-thread
                     (lambda ()
                       (handler-case
                           (progn
                             (dotimes (k triggers)
                               (as:trigger-notifier (aref notifiers i)))
                             (setf (aref finished i) t)
                             ;; One more, after FINISHED: its event sees it.  A
                             ;; callback for an earlier (coalesced) trigger may
                             ;; already have seen FINISHED and freed the
                             ;; notifier: then this one is refused, as documented.
                             (handler-case (as:trigger-notifier (aref notifiers i))
                               (as:notifier-freed () nil)))
                         (error (e) (bt:with-lock-held (errors-lock) (push e errors)))))
                     :name (format nil "trigger ~D" i))
                    workers))))))
    (mapc #'bt:join-thread workers)
    (is (null errors) "trigger errors: ~S" errors)
    (is (= 0 wrong-thread))
    (is (= threads freed))
    ;; Coalescing: at least one call per notifier, never more than triggers.
    (is (every (lambda (n) (<= 1 n (1+ triggers))) calls) "calls: ~S" calls)
    (is (eql handles-before handles-after))
    (is (eql registry-before registry-after))))

(test repeating-notifier-keeps-the-loop-alive-until-freed-and-unref-lets-it-go
  (let ((ran 0) (start (now)) (n1 nil))
    (with-test-loop ()
      (setf n1 (as:make-notifier (lambda () (incf ran)) :single-shot nil))
      (let ((n2 (as:make-notifier (lambda ()) :single-shot nil)))
        ;; n2 alone would keep the loop alive forever: unref it.
        (as:unref n2))
      (as:trigger-notifier n1)
      (as:delay (lambda ()
                  (is (= 1 ran))
                  (as:free-notifier n1)
                  (done))
                :time 0.05))
    (is (= 1 ran))
    (is (< (- (now) start) 5))))

(test free-notifier-and-unref-from-another-thread-are-refused
  (let ((free-error nil) (unref-error nil) (ran nil) (notifier nil))
    (with-test-loop ()
      (setf notifier (as:make-notifier (lambda () (setf ran t) (done))))
      (bt:join-thread
       (bt:make-thread (lambda ()
                         (handler-case (as:free-notifier notifier)
                           (error (e) (setf free-error e)))
                         (handler-case (as:unref notifier)
                           (error (e) (setf unref-error e))))))
      ;; Refused, so it still works.
      (is-false (as:notifier-freed-p notifier))
      (as:trigger-notifier notifier))
    (is (typep free-error 'error))
    (is (typep unref-error 'error))
    (is-true ran)))
