;;;; reverse-dns.lisp -- cl-async's reverse-dns-lookup (dns.md), through
;;;; libcltcp's cltcp_dns_reverse (c-ares' ares_gethostbyaddr: /etc/hosts
;;;; first, then a PTR query to the loop's DNS servers).
;;;;
;;;; A reverse lookup is a DNS-REQUEST like a forward one (lisp/dns.lisp): in
;;;; the loop's registry until its one callback, cancelled with
;;;; CANCEL-DNS-LOOKUP, counted by STATS, failing with a DNS-ERROR.

(in-package #:cl-async-tcp)

(defvar *dns-name-callback-pointer*)    ; set below, after the callback

(defparameter +uv-einval+ (find-code-by-name "EINVAL" -22)
  "libuv's EINVAL: what cltcp_dns_reverse returns for a string that is not a
numeric address.")

(defun %dns-name-dispatch (request status name len)
  "Run the application's callback for a finished reverse lookup, under the
callback guard."
  (with-callback-guard (request)
    (if (and (zerop status) (not (cffi:null-pointer-p name)))
        (let ((host (cffi:foreign-string-to-lisp name :count len :encoding :utf-8))
              (resolve-cb (%dns-resolve-cb request)))
          ;; cl-async passes getnameinfo's service for port 0, which is "0".
          (when resolve-cb (funcall resolve-cb host "0")))
        (%deliver-dns-error request (if (zerop status) cltcp:+enodata+ status))))
  nil)

(defun %handle-dns-name (ctx req status name len)
  (let ((base *event-base*))
    (when base
      (let ((request (registry-ref base ctx)))
        (when (and (dns-request-p request)
                   (or (zerop (%dns-id request)) (= req (%dns-id request))))
          ;; The request's one callback: free its context word first.
          (registry-remove base ctx)
          (setf (%dns-index request) -1)
          (unless (or (%dns-done-p request)
                      (event-base-stopping base)
                      (event-base-closing base))
            (setf (%dns-done-p request) t)
            (%dns-name-dispatch request status name len))))))
  nil)

(cffi:defcallback %dns-name-callback :void
    ((ctx :uintptr) (req :uint64) (status :int) (name :pointer) (len :size))
  (%handle-dns-name ctx req status name len))

(setf *dns-name-callback-pointer* (cffi:callback %dns-name-callback))
(setf (documentation '*dns-name-callback-pointer* 'variable)
      "The C address of %DNS-NAME-CALLBACK, given to every reverse lookup.")

(defun %reverse-dns-lookup (ip resolve-cb event-cb)
  (check-type ip string)
  (let* ((base (%current-base))
         (request (%make-dns-request :base base :host ip :resolve-cb resolve-cb
                                     :event-cb event-cb)))
    (flet ((fail-later (code)
             ;; A failure known now is delivered on a later turn, like the
             ;; failures C finds (and like DNS-LOOKUP's bad names).
             (delay (lambda ()
                      (unless (%dns-done-p request)
                        (setf (%dns-done-p request) t)
                        (%deliver-dns-error request code)))
                    :event-cb event-cb)
             (return-from %reverse-dns-lookup request)))
      (when (find (code-char 0) ip)
        (fail-later cltcp:+ebadname+))
      (let ((index (registry-add base request)))
        (setf (%dns-index request) index)
        (cffi:with-foreign-object (id 'cltcp:id)
          (let ((rc (cltcp:dns-reverse id (event-base-id base) ip
                                       *dns-name-callback-pointer* index)))
            (when (< rc 0)
              ;; An error return means no callback will come.
              (registry-remove base index)
              (setf (%dns-index request) -1)
              (if (= rc +uv-einval+)
                  (fail-later cltcp:+ebadname+) ; not a numeric address
                  (progn (setf (%dns-done-p request) t)
                         (error (%dns-error rc ip))))))
          (setf (%dns-id request) (cffi:mem-ref id 'cltcp:id)))))
    request))

(defun reverse-dns-lookup (ip resolve-cb &rest args)
  "Look the host name of the numeric IPv4 or IPv6 address IP (a string) up
asynchronously: /etc/hosts first, then a PTR query (in-addr.arpa / ip6.arpa)
to the loop's DNS servers (SET-DNS-SERVERS), without blocking the loop.
Lambda list: (ip resolve-cb &key event-cb); EVENT-CB may also be given
positionally, as for DNS-LOOKUP (NIL: *DEFAULT-EVENT-HANDLER*).

RESOLVE-CB is called once, on a later loop turn, with (host service): the
name (the official, first one) and, as in cl-async, the service name of port 0,
\"0\".  On failure EVENT-CB receives a DNS-ERROR (EVENT-ERRNAME: ENOTFOUND no
name for the address, EDNSTIMEOUT, ESERVFAIL, EDNSREFUSED, EDNSCONN ...;
EBADNAME when IP is not a numeric address; DNS-ERROR-HOST is IP).  Returns the
pending lookup (CANCEL-DNS-LOOKUP cancels it)."
  (multiple-value-bind (event-cb keys) (%split-event-cb args)
    (when keys
      (error "reverse-dns-lookup: unknown arguments ~S (lambda list: ~
              (ip resolve-cb &key event-cb))" keys))
    (%reverse-dns-lookup ip resolve-cb event-cb)))
