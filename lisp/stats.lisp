;;;; stats.lisp -- cl-async's (stats) and dump-event-loop-status.
;;;;
;;;; cl-async counted entries of its pointer-keyed hash tables.  Here the one
;;;; registry of the loop (registry.lisp) holds every Lisp object C can call
;;;; back for, so the counts are taken from it, at the time of the call (a
;;;; walk over the registry: for monitoring, not for a hot path).

(in-package #:cl-async-tcp)

(defgeneric %callback-count (object)
  (:documentation "How many application functions OBJECT (a registry entry) holds.")
  (:method (object) (declare (ignore object)) 0))

(defun %count-functions (&rest slots)
  (count-if #'identity slots))

(defmethod %callback-count ((s socket))
  (%count-functions (%sock-read-cb s) (%sock-event-cb s) (%sock-connect-cb s)
                    (%sock-write-cb s) (%sock-drain-cb s) (%sock-shutdown-cb s)))

(defmethod %callback-count ((s tcp-server))
  (%count-functions (%srv-read-cb s) (%srv-event-cb s) (%srv-connect-cb s)))

(defmethod %callback-count ((e event))
  (%count-functions (%timer-callback e) (%timer-event-cb e)))

(defmethod %callback-count ((r dns-request))
  (%count-functions (%dns-resolve-cb r) (%dns-event-cb r)))

(defun stats ()
  "Counts about the event loop running in this thread, as a plist with
cl-async's keys.  What each counts here:
  :OPEN-DNS-QUERIES   lookups started with DNS-LOOKUP, DNS-LOOKUP-ALL or
                      REVERSE-DNS-LOOKUP and neither answered nor cancelled
                      yet.  (The lookup a TCP-CONNECT to a host name makes
                      runs inside libcltcp and is not counted.)
  :FN-REGISTRY-COUNT  application callbacks (read-cb, event-cb, connect-cb,
                      write-cb, signal-cb ...) held by the loop's live objects.
  :DATA-REGISTRY-COUNT  live entries of the loop's registry: the Lisp objects
                      (sockets, servers, events, lookups, notifiers, signal
                      handlers) that C can still call back for.  It returns
                      to 0 once everything has closed (REGISTRY-LIVE-COUNT).
  :INCOMING-TCP-CONNECTIONS  sockets accepted by a TCP-SERVER whose connection
                      is not closed yet (one that flushes its queue before
                      closing still counts).
  :OUTGOING-TCP-CONNECTIONS  sockets made by TCP-CONNECT or INIT-TCP-SOCKET
                      whose C handle is not closed yet (connecting ones included).
Signals an error outside a running loop, as every loop operation does."
  (let ((base (%current-base))
        (dns 0) (fns 0) (in 0) (out 0))
    (dolist (object (registry-objects base))
      (incf fns (%callback-count object))
      (typecase object
        (socket (if (%sock-accepted-p object) (incf in) (incf out)))
        (dns-request (unless (%dns-done-p object) (incf dns)))))
    (list :open-dns-queries dns
          :fn-registry-count fns
          :data-registry-count (event-base-live base)
          :incoming-tcp-connections in
          :outgoing-tcp-connections out)))

;;; ---- dump-event-loop-status ----

(alexandria:define-constant +kind-names+
  '((#.cltcp:+kind-socket+ . :socket) (#.cltcp:+kind-server+ . :server)
    (#.cltcp:+kind-timer+ . :timer) (#.cltcp:+kind-dns+ . :dns)
    (#.cltcp:+kind-signal+ . :signal) (#.cltcp:+kind-async+ . :async))
  :test #'equal
  :documentation "libcltcp handle kinds and the keywords DUMP-EVENT-LOOP-STATUS names them with.")

(alexandria:define-constant +state-names+
  '((#.cltcp:+state-new+ . :new) (#.cltcp:+state-resolving+ . :resolving)
    (#.cltcp:+state-connecting+ . :connecting) (#.cltcp:+state-connected+ . :connected)
    (#.cltcp:+state-active+ . :active) (#.cltcp:+state-closing+ . :closing))
  :test #'equal
  :documentation "libcltcp handle states and their keywords.")

(defun %loop-handles (base)
  "The live handles of BASE's C loop: a list of plists (see DUMP-EVENT-LOOP-STATUS)."
  (let ((loop-id (event-base-id base))
        (by-id (make-hash-table)))
    (dolist (object (registry-objects base))
      (let ((id (%handle-id object)))
        (unless (zerop id)
          (setf (gethash id by-id) object))))
    (cffi:with-foreign-object (n :size)
      (cltcp:loop-handles (cffi:null-pointer) 0 n loop-id)
      (loop
        (let ((max (+ 8 (cffi:mem-ref n :size))))
          (cffi:with-foreign-object (infos '(:struct cltcp:handle-info) max)
            (cltcp:loop-handles infos max n loop-id)
            (let ((count (cffi:mem-ref n :size)))
              (when (<= count max)
                (return
                  (loop for i below count
                        for info = (cffi:mem-aptr infos '(:struct cltcp:handle-info) i)
                        collect (cffi:with-foreign-slots ((cltcp:id cltcp:kind cltcp:state
                                                           cltcp:flags cltcp:detail)
                                                          info (:struct cltcp:handle-info))
                                  (list :kind (or (cdr (assoc cltcp:kind +kind-names+))
                                                  cltcp:kind)
                                        :id cltcp:id
                                        :state (or (cdr (assoc cltcp:state +state-names+))
                                                   cltcp:state)
                                        :ref (logtest cltcp:flags cltcp:+info-ref+)
                                        :incoming (logtest cltcp:flags cltcp:+info-accepted+)
                                        :detail cltcp:detail
                                        :object (gethash cltcp:id by-id)))))))))))))

(defun dump-event-loop-status (&optional (stream *standard-output*))
  "Print every live handle of the event loop running in this thread to STREAM,
one line each -- kind (:socket :server :timer :signal :async :dns), libcltcp
id, state (:new :resolving :connecting :connected :active :closing), whether
it keeps the loop alive (ref), the detail (a server's port, a signal's number)
and the Lisp object standing for it -- and return the same as a list of
plists (:kind :id :state :ref :incoming :detail :object), most recently made
first.  A debugging aid, like cl-async's (which printed libuv's handles).
Signals an error outside a running loop."
  (let ((handles (%loop-handles (%current-base))))
    (format stream "~&;; event loop: ~D live handle~:P~%" (length handles))
    (dolist (h handles)
      (format stream ";;   ~(~A~) ~D ~(~A~)~:[ unref~;~]~:[~; incoming~]~@[ detail ~D~]~@[ ~A~]~%"
              (getf h :kind) (getf h :id) (getf h :state) (getf h :ref) (getf h :incoming)
              (let ((d (getf h :detail))) (and d (/= d 0) d))
              (getf h :object)))
    handles))
