;;;; reverse-dns.lisp -- cl-async's reverse-dns-lookup (dns.md), through
;;;; libcltcp's cltcp_dns_reverse (c-ares' ares_gethostbyaddr: /etc/hosts
;;;; first, then a PTR query to the loop's DNS servers).
;;;;
;;;; A reverse lookup is a DNS-REQUEST like a forward one (lisp/dns.lisp): in
;;;; the loop's registry until its one callback, cancelled with
;;;; CANCEL-DNS-LOOKUP, counted by STATS, failing with a DNS-ERROR.

(in-package #:cl-async-tcp)

(define-dns-callback %dns-name-callback (status (name :pointer) (len :size))
    (not (cffi:null-pointer-p name))
  (let ((host (cffi:foreign-string-to-lisp name :count len :encoding :utf-8))
        (resolve-cb (%dns-resolve-cb request)))
    ;; cl-async passes getnameinfo's service for port 0, which is "0".
    (when resolve-cb (funcall resolve-cb host "0"))))

(defvar *dns-name-callback-pointer* (cffi:callback %dns-name-callback)
  "The C address of %DNS-NAME-CALLBACK, given to every reverse lookup.")

(defun %reverse-dns-lookup (ip resolve-cb event-cb)
  (check-type ip string)
  (let* ((base (%current-base))
         (request (%make-dns-request :base base :host ip :resolve-cb resolve-cb
                                     :event-cb event-cb)))
    (if (find (code-char 0) ip)
        (%fail-dns-later request cltcp:+ebadname+)
        (handler-case
            (with-new-dns-request (id index) (base request)
              (cltcp:dns-reverse id (event-base-id base) ip
                                 *dns-name-callback-pointer* index))
          ;; What cltcp_dns_reverse says of a string that is not a numeric
          ;; address: delivered later, as EBADNAME, like a bad name.
          (dns-error (e)
            (unless (eql (event-errcode e) *uv-einval*)
              (error e))
            (setf (%dns-done-p request) nil)
            (%fail-dns-later request cltcp:+ebadname+))))))

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
    (check-arguments (resolve-cb callback) (event-cb callback))
    (%reverse-dns-lookup ip resolve-cb event-cb)))
