;;;; dns.lisp -- cl-async's DNS page: dns-lookup, dns-error, the +af-*+ constants,
;;;; and what this library adds (every address, cancelling, per-loop settings).
;;;;
;;;; Lookups run in libcltcp: c-ares driven by the loop itself (no thread
;;;; pool, nothing blocks), /etc/hosts first, then the loop's DNS servers.
;;;; A lookup is a DNS-REQUEST registered in the loop's registry like any
;;;; other handle; its context word is freed in the one result callback the
;;;; C side guarantees for every started request -- also when the request is
;;;; cancelled (UV_ECANCELED) and when the loop is torn down (cltcp_loop_close
;;;; calls every pending request back), so neither path leaks an entry.
;;;;
;;;; Families: the Lisp constants keep cl-async's values, which are the
;;;; Linux AF_* numbers (AF_INET 2, AF_INET6 10), so code comparing against
;;;; them keeps working; the C library uses its own CLTCP_AF_* (4, 6) and the
;;;; two are translated here, in one place.

(in-package #:cl-async-tcp)

(defconstant +af-inet+ 2
  "Address family IPv4 (cl-async's value, Linux AF_INET).  As DNS-LOOKUP's
:family it asks for IPv4 addresses only; a resolve-cb receives it with an IPv4
address.")

(defconstant +af-inet6+ 10
  "Address family IPv6 (cl-async's value, Linux AF_INET6).  As DNS-LOOKUP's
:family it asks for IPv6 addresses only; a resolve-cb receives it with an IPv6
address.")

(defconstant +af-unspec+ 0
  "Any address family (cl-async's value, AF_UNSPEC): DNS-LOOKUP's default
:family, which asks for IPv4 and IPv6 addresses (IPv4 ones first).")

(defun %family->c (family)
  "The CLTCP_AF_* value (CLTCP:+FAMILY-*+) for one of the +AF-*+ constants (NIL = +AF-UNSPEC+)."
  (case family
    ((nil #.+af-unspec+) cltcp:+family-unspec+)
    (#.+af-inet+ cltcp:+family-inet+)
    (#.+af-inet6+ cltcp:+family-inet6+)
    (t (%argument-error :family family
                        `(member nil ,+af-unspec+ ,+af-inet+ ,+af-inet6+)))))

(defun %family<-c (family)
  "The +AF-*+ constant for a CLTCP_AF_* value."
  (if (= family cltcp:+family-inet6+) +af-inet6+ +af-inet+))

;;; ---- requests ----

(defstruct (dns-request (:constructor %make-dns-request) (:copier nil)
                        (:conc-name %dns-))
  "A host name lookup in flight: what DNS-LOOKUP, DNS-LOOKUP-ALL and
REVERSE-DNS-LOOKUP return.  CANCEL-DNS-LOOKUP cancels it."
  ;; The libcltcp request id, the registry index (its context word) and the
  ;; loop, as a %HANDLE-OBJECT has them.
  (id 0 :type (unsigned-byte 64))
  (index -1 :type fixnum)
  (base nil)
  (host "" :type string)
  (resolve-cb nil)
  (event-cb nil)
  (all-p nil)
  ;; The result was handed out or the lookup was cancelled: no more user code.
  (done-p nil))

(defmethod print-object ((r dns-request) stream)
  (print-unreadable-object (r stream :type t :identity t)
    (format stream "~S ~:[pending~;done~]" (%dns-host r) (%dns-done-p r))))

;;; A request lives in the registry like a handle (WITH-NEW-HANDLE), from
;;; its start to its one callback.
(defmethod (setf %handle-index) (index (request dns-request))
  (setf (%dns-index request) index))
(defmethod (setf %handle-id) (id (request dns-request))
  (setf (%dns-id request) id))
(defmethod %handle-id ((request dns-request))
  (%dns-id request))
(defmethod %mark-other-dead ((request dns-request))
  (setf (%dns-done-p request) t))

(defmethod %object-event-cb ((request dns-request))
  (%dns-event-cb request))

(defun %deliver-dns-error (request code)
  (%deliver request (make-event-condition code (%dns-host request) :dns)))

(defun %fail-dns-later (request code)
  "A failure known when the lookup is made is still delivered on a later turn,
like the failures C finds.  Returns REQUEST."
  (delay (lambda ()
           (unless (%dns-done-p request)
             (setf (%dns-done-p request) t)
             (%deliver-dns-error request code)))
         :event-cb (%dns-event-cb request))
  request)

;;; ---- the C side: starting a request, and its one callback ----

(defmacro with-new-dns-request ((id index) (base request) &body call)
  "Start REQUEST with CALL, the libcltcp call that makes it (see WITH-NEW-HANDLE):
a failure signals a DNS-ERROR about its host and leaves nothing behind."
  (let ((r (gensym "REQUEST")))
    `(let ((,r ,request))
       (with-new-handle (,id ,index) (,base ,r :context :dns :about (%dns-host ,r))
         ,@call))))

(defun %dns-entry (ctx req)
  "The request a DNS callback (CTX, REQ) finishes, when its application callback
is to run: its context word is freed first in any case (this is its one and
only callback), and NIL is returned when it was finished or cancelled already
or its loop is stopping."
  (let* ((base *event-base*)
         (request (and base (registry-ref base ctx))))
    (when (and (dns-request-p request) (= req (%dns-id request)))
      (registry-remove base ctx)
      (setf (%dns-index request) -1)
      (unless (or (%dns-done-p request)
                  (event-base-stopping base)
                  (event-base-closing base))
        (setf (%dns-done-p request) t)
        request))))

(defmacro define-dns-callback (name (status &rest args) found &body on-success)
  "Define the C callback NAME of a DNS request: (ctx req STATUS . ARGS), ARGS
being (name foreign-type) pairs.  Under the callback guard, it runs ON-SUCCESS
with REQUEST bound when STATUS is 0 and FOUND is true, and otherwise delivers
the DNS-ERROR of STATUS (ENODATA for a success that found nothing)."
  `(cffi:defcallback ,name :void
       ((ctx :uintptr) (req :uint64) (,status :int) ,@args)
     (let ((request (%dns-entry ctx req)))
       (when request
         (with-callback-guard (request)
           (if (and (zerop ,status) ,found)
               (progn ,@on-success)
               (%deliver-dns-error request
                                   (if (zerop ,status) cltcp:+enodata+ ,status))))))
     nil))

(defun %read-addresses (addrs n)
  "The N cltcp_addr structs at ADDRS as a fresh list of (address-string family)."
  (loop for i below n
        for a = (cffi:mem-aptr addrs '(:struct cltcp:addr) i)
        collect (list (cffi:foreign-string-to-lisp
                       (cffi:foreign-slot-pointer a '(:struct cltcp:addr) 'cltcp:addr)
                       :max-chars 48)
                      (%family<-c (cffi:foreign-slot-value a '(:struct cltcp:addr)
                                                           'cltcp:family)))))

(define-dns-callback %dns-callback (status (addrs :pointer) (n :size)) (plusp n)
  (let ((addresses (%read-addresses addrs n))
        (resolve-cb (%dns-resolve-cb request)))
    (when resolve-cb
      (if (%dns-all-p request)
          (funcall resolve-cb addresses)
          (apply resolve-cb (first addresses))))))

(defvar *dns-callback-pointer* (cffi:callback %dns-callback)
  "The C address of %DNS-CALLBACK, given to every lookup.")

(defun %dns-lookup (host resolve-cb event-cb all-p &key (family +af-unspec+))
  (check-arguments (host string) (resolve-cb callback) (event-cb callback))
  (let* ((base (%current-base))
         (c-family (%family->c family))
         (request (%make-dns-request :base base :host host :resolve-cb resolve-cb
                                     :event-cb event-cb :all-p all-p)))
    (if (find (code-char 0) host)
        ;; C strings end at the first NUL, so C would look up a shorter name.
        (%fail-dns-later request cltcp:+ebadname+)
        (with-new-dns-request (id index) (base request)
          (cltcp:dns-lookup id (event-base-id base) host c-family
                            *dns-callback-pointer* index)))))

(defun dns-lookup (host resolve-cb &rest args)
  "Look HOST (a host name, or a numeric IPv4/IPv6 address, which resolves to
itself) up asynchronously: /etc/hosts first, then the loop's DNS servers (see
SET-DNS-SERVERS), without blocking the loop or using threads.
Lambda list: (host resolve-cb event-cb &key (family +af-unspec+)); event-cb
may also be given as :event-cb (newer cl-async), and NIL means
*DEFAULT-EVENT-HANDLER*.

RESOLVE-CB is called once, on a later loop turn, with (address family): the
first address as a string (\"127.0.0.1\", \"::1\") and +AF-INET+ or
+AF-INET6+.  :FAMILY +AF-INET+ or +AF-INET6+ asks for one family only;
+AF-UNSPEC+ asks for both and gives IPv4 addresses first.  On failure the
event-cb receives a DNS-ERROR (EVENT-ERRCODE / EVENT-ERRNAME say why:
ENOTFOUND no such name, ENODATA no address of that family, EDNSTIMEOUT,
ESERVFAIL, EDNSREFUSED, EDNSCONN, EBADNAME ...; DNS-ERROR-HOST is HOST).
Use DNS-LOOKUP-ALL for every address.  Returns the pending lookup, which
CANCEL-DNS-LOOKUP cancels.  Signals a DNS-ERROR at once only when the lookup
cannot even start (no memory, unusable resolver configuration), and a
TYPE-ERROR naming the argument for a HOST that is not a string, a callback that
is neither NIL, a function nor a symbol, or an unknown :FAMILY."
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (apply #'%dns-lookup host resolve-cb event-cb nil keys)))

(defun dns-lookup-all (host resolve-cb &rest args)
  "Like DNS-LOOKUP, but RESOLVE-CB receives one argument, the list of every
address found, each a list (address-string family), without duplicates, IPv4
ones first when :family is +AF-UNSPEC+ -- e.g. ((\"127.0.0.1\" 2) (\"::1\" 10)).
Lambda list: (host resolve-cb event-cb &key (family +af-unspec+)); event-cb
may also be given as :event-cb.  Beyond cl-async, which hands out the first
address only."
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (apply #'%dns-lookup host resolve-cb event-cb t keys)))

(defun cancel-dns-lookup (request)
  "Cancel a lookup made by DNS-LOOKUP or DNS-LOOKUP-ALL: neither its resolve-cb
nor its event-cb will be called.  Does nothing when the lookup is finished or
cancelled already (or its event loop has exited).  Returns NIL."
  (check-argument request dns-request)
  (unless (%dns-done-p request)
    (setf (%dns-done-p request) t)
    ;; C still calls back once (UV_ECANCELED), which frees the registry entry.
    ;; No call once that callback came or the loop is gone: the id may name
    ;; a later loop's request then.
    (unless (or (zerop (%dns-id request)) (< (%dns-index request) 0)
                (let ((base (%dns-base request)))
                  (or (null base) (event-base-closing base))))
      (cltcp:dns-cancel (%dns-id request)))) ; RAW-STATUS: it may be finishing
  nil)

;;; ---- per-loop settings ----

(defun %server-spec (spec)
  "One DNS server as \"host[:port]\": a string as it is, or a list (host port)."
  (typecase spec
    (string spec)
    (cons (destructuring-bind (host &optional port)
              (if (listp (cdr spec)) spec (list (car spec) (cdr spec)))
            (unless (and (stringp host) (typep port '(or null port-number)))
              (%argument-error 'servers spec
                               '(or string (cons string (or null (integer 0 65535))))))
            (cond ((null port) host)
                  ((find #\: host) (format nil "[~A]:~D" host port))
                  (t (format nil "~A:~D" host port)))))
    (t (%argument-error 'servers spec
                        '(or string (cons string (or null (integer 0 65535))))))))

(defun %servers-string (servers)
  (cond ((null servers) "")
        ((stringp servers) servers)
        ((listp servers) (format nil "~{~A~^,~}" (mapcar #'%server-spec servers)))
        (t (%argument-error 'servers servers '(or null string list)))))

(defun set-dns-servers (servers)
  "Use SERVERS for the host name lookups of the running event loop (DNS-LOOKUP,
and TCP-CONNECT / CONNECT-TCP-SOCKET by name); /etc/hosts is still read first.
SERVERS is a string of comma-separated host[:port] entries (IPv6 as
[addr]:port), e.g. \"127.0.0.1:15353\", or a list whose elements are such
strings or lists (host port); NIL restores the system's servers
(/etc/resolv.conf).  Each loop starts with the system's servers.  Signals a
DNS-ERROR (EDNSCONFIG for a bad list; EBUSY while lookups are in flight, so
call it before starting any), and a TYPE-ERROR for SERVERS or an element of
them of another type.  Returns NIL."
  (with-status (nil :dns)
    (cltcp:loop-set-dns-servers (event-base-id (%current-base)) (%servers-string servers)))
  nil)

(defun set-dns-timeout (seconds &optional tries)
  "Set the running event loop's DNS timeout: SECONDS (a positive real, at most
86400) per try, and TRIES tries per server (NIL keeps the current number).
Defaults: 5 s, 2 tries.  A lookup that gets no answer fails with a DNS-ERROR
named EDNSTIMEOUT.  Signals a DNS-ERROR (EINVAL for a bad value, EBUSY while
lookups are in flight).  Returns NIL."
  (check-arguments (seconds (real (0))) (tries (or null (integer 1 #x7fffffff))))
  (with-status (nil :dns)
    (cltcp:loop-set-dns-timeout (event-base-id (%current-base)) (%c-seconds seconds)
                                (or tries -1)))
  nil)
