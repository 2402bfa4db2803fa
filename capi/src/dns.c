/* dns.c -- asynchronous host name lookups: the requests and the public
 * DNS API.  The c-ares channel and its libuv glue are dns_ares.c's, the
 * text work dns_parse.c's (see resolver.h).  The channel is created on
 * first use.
 *
 * Delivery: the c-ares completion callback never calls the user.  It stores
 * the result in the request and queues the delivery as deferred work of the
 * loop (cltcp__defer), so every result -- also the ones c-ares produces
 * inside ares_getaddrinfo() itself (/etc/hosts hits, bad names) -- reaches
 * its callback on a later loop turn, and no user code ever runs inside
 * c-ares (where calling back into the channel would be unsafe).
 *
 * Bursts: at most DNS_MAX_QUERIES queries are in c-ares at once; further
 * lookups wait in a FIFO and start as answers come in (see below why).
 * Numeric addresses never reach c-ares, and malformed names fail at once.
 *
 * Lifetime of a request: c-ares has no way to cancel one query, so a
 * request that is cancelled, aborted or torn down stays allocated until
 * c-ares is done with it (its completion callback ran) and its own deferred
 * delivery, if any, has run or been unqueued.  Its owner's callback, though,
 * is called exactly once (public requests, internal ones unless aborted),
 * and never after the owner stopped caring.
 */
#include "resolver.h"

#include <math.h> /* isnan(), a macro: no libm */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* At most this many DNS queries (an AF_UNSPEC lookup makes two: A and
 * AAAA) are handed to c-ares at once; further lookups wait in a queue.
 * c-ares sends a query as soon as it gets it and reads answers only when
 * the loop turns, so a burst of a thousand lookups would overflow the UDP
 * receive buffer (about 200 KiB, some 1.3 KiB per datagram) and stall in
 * retries.  128 answers fit. */
#define DNS_MAX_QUERIES 128

static void reverse_call(cltcp__dns_req *r, int status);
static void reverse_start(cltcp__dns_req *r, const char *addr);
static void ares_start(cltcp__dns_req *r, const char *host);

/* ---- requests ----------------------------------------------------------- */

/* Frees a request nobody needs any more: c-ares is done with it, its owner
 * was called (or gave up) and no delivery is queued. */
static void req_maybe_free(cltcp__dns_req *r) {
  if (r->in_ares || r->owed || cltcp__deferred_queued(&r->d) || r->delivering || r->waiting)
    return;
  cltcp__queue_remove(&r->rq);
  free(r->addrs);
  free(r->name);
  free(r);
}

/* Takes a request out of the wait queue (it will not go to c-ares). */
static void req_unwait(cltcp__dns_req *r) {
  if (!r->waiting)
    return;
  cltcp__queue_remove(&r->wait);
  r->waiting = false;
  free(r->host);
  r->host = NULL;
}

static void req_clear_result(cltcp__dns_req *r) {
  free(r->addrs);
  r->addrs = NULL;
  r->naddrs = 0;
  free(r->name);
  r->name = NULL;
}

/* Calls the owner once.  Public requests lose their id here (a cancelled
 * one lost it at cltcp_dns_cancel() and only kept its place in `live'). */
static void req_call(cltcp__dns_req *r) {
  cltcp__loop *loop = r->dns->loop;
  cltcp_addr *addrs = r->addrs;
  size_t n = r->naddrs;
  int status = r->status;
  if (!r->owed)
    return;
  r->owed = false;
  if (status != 0) {
    addrs = NULL;
    n = 0;
  } else if (n == 0) {
    status = CLTCP_ENODATA;
    addrs = NULL;
  }
  r->delivering = true;
  if (r->id != 0) {
    if (r->cancelled)
      cltcp__id_uncount(loop);
    else
      cltcp__id_free(loop, r->id);
    if (r->reverse)
      reverse_call(r, r->status);
    else
      r->cb(r->ctx, r->id, status, addrs, n);
  } else {
    r->fn(r->arg, status, addrs, n);
  }
  r->delivering = false;
  req_clear_result(r);
  req_maybe_free(r);
}

static void req_deliver(cltcp__deferred *d) {
  cltcp__dns_req *r = cltcp__container_of(d, cltcp__dns_req, d);
  if (r->owed)
    req_call(r);
  else
    req_maybe_free(r);
}

static void req_queue(cltcp__dns_req *r) {
  if (!r->dns->tearing_down)
    cltcp__defer(r->dns->loop, &r->d, req_deliver);
}

/* Keeps the addresses of the wanted families, IPv4 first, in answer order
 * within a family. */
static void req_store(cltcp__dns_req *r, const struct ares_addrinfo *ai) {
  const struct ares_addrinfo_node *node;
  size_t count = 0, n = 0;
  int pass;
  for (node = ai ? ai->nodes : NULL; node != NULL; node = node->ai_next)
    count++;
  if (count == 0) {
    r->status = CLTCP_ENODATA;
    return;
  }
  r->addrs = calloc(count, sizeof(*r->addrs));
  if (r->addrs == NULL) {
    r->status = UV_ENOMEM;
    return;
  }
  for (pass = 0; pass < 2; pass++) {
    int af = pass == 0 ? AF_INET : AF_INET6;
    int want = pass == 0 ? CLTCP_AF_INET : CLTCP_AF_INET6;
    if (r->family != CLTCP_AF_UNSPEC && r->family != want)
      continue;
    for (node = ai->nodes; node != NULL; node = node->ai_next) {
      if (node->ai_family != af || node->ai_addr == NULL)
        continue;
      if (af == AF_INET)
        n = cltcp__addr_add_raw(
            r->addrs, n, count, af,
            &((struct sockaddr_in *)node->ai_addr)->sin_addr);
      else
        n = cltcp__addr_add_raw(
            r->addrs, n, count, af,
            &((struct sockaddr_in6 *)node->ai_addr)->sin6_addr);
    }
  }
  r->naddrs = n;
  r->status = n > 0 ? 0 : CLTCP_ENODATA;
  if (n == 0)
    req_clear_result(r);
}

/* c-ares' completion callback: runs inside ares_getaddrinfo() (hosts file,
 * bad name), ares_process_fd(), ares_cancel() or ares_destroy().  It only
 * records; the owner is called from the deferred queue. */
static void gai_cb(void *arg, int status, int timeouts,
                   struct ares_addrinfo *ai) {
  cltcp__dns_req *r = arg;
  (void)timeouts;
  r->in_ares = false;
  r->dns->active -= r->weight;
  if (r->owed && !r->cancelled) {
    req_clear_result(r);
    if (status == ARES_SUCCESS)
      req_store(r, ai);
    else
      r->status = cltcp__ares_status(status);
    req_queue(r);
  }
  if (ai != NULL)
    ares_freeaddrinfo(ai);
  req_maybe_free(r);
}

/* ---- into c-ares --------------------------------------------------------- */

/* Hands a request to c-ares.  Its callback may run inside (hosts file). */
static void ares_start(cltcp__dns_req *r, const char *host) {
  cltcp__dns *dns = r->dns;
  struct ares_addrinfo_hints hints;
  if (r->reverse) {
    reverse_start(r, host);
    return;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = r->family == CLTCP_AF_INET    ? AF_INET
                    : r->family == CLTCP_AF_INET6 ? AF_INET6
                                                  : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* We order the answers ourselves (IPv4 first); RFC 6724 sorting would
   * cost a socket and a connect() per address. */
  hints.ai_flags = ARES_AI_NOSORT;
  r->in_ares = true;
  dns->active += r->weight;
  ares_getaddrinfo(dns->channel, host, NULL, &hints, gai_cb, r);
}

static bool dns_has_room(cltcp__dns *dns, int weight) {
  return dns->active == 0 || dns->active + weight <= DNS_MAX_QUERIES;
}

/* Moves waiting requests into c-ares while there is room.  Called after
 * ares_process_fd() returned, never from inside a c-ares callback. */
static void dns_pump(cltcp__dns *dns) {
  while (!dns->tearing_down && !cltcp__queue_empty(&dns->waitq)) {
    cltcp__dns_req *r =
        cltcp__container_of(dns->waitq.next, cltcp__dns_req, wait);
    char *host;
    if (!dns_has_room(dns, r->weight))
      break;
    host = r->host;
    r->host = NULL;
    cltcp__queue_remove(&r->wait);
    r->waiting = false;
    ares_start(r, host);
    free(host);
  }
}

/* The loop's resolver, created on first use. */
static int dns_get(cltcp__dns **out, cltcp__loop *loop) {
  cltcp__dns *dns = loop->dns;
  int rc;
  if (dns == NULL) {
    dns = calloc(1, sizeof(*dns));
    if (dns == NULL)
      return UV_ENOMEM;
    dns->loop = loop;
    cltcp__queue_init(&dns->reqs);
    cltcp__queue_init(&dns->waitq);
    cltcp__queue_init(&dns->polls);
    dns->on_progress = dns_pump;
    dns->timeout_ms = DNS_DEFAULT_TIMEOUT_MS;
    dns->tries = DNS_DEFAULT_TRIES;
    rc = cltcp__ares_channel_new(&dns->channel, dns, dns->timeout_ms,
                                 dns->tries, NULL);
    if (rc != 0) {
      free(dns);
      return rc;
    }
    cltcp__ares_init_handles(dns);
    loop->dns = dns;
  }
  *out = dns;
  return 0;
}

/* Replaces the channel with one built from the new settings (c-ares 1.18
 * sets timeouts only at init, and cannot go back to the system's servers).
 * Queries still in the old channel belong to cancelled or aborted requests;
 * destroying it completes them (ARES_EDESTRUCTION) and frees them. */
static int dns_reconfigure(cltcp__dns *dns, int timeout_ms, int tries,
                           const char *servers) {
  ares_channel ch, old;
  char *copy = NULL;
  int rc;
  if (cltcp__ares_busy(dns))
    return CLTCP_EBUSY;
  if (servers != NULL) {
    copy = strdup(servers);
    if (copy == NULL)
      return UV_ENOMEM;
  }
  rc = cltcp__ares_channel_new(&ch, dns, timeout_ms, tries, servers);
  if (rc != 0) {
    free(copy);
    return rc;
  }
  old = dns->channel;
  dns->channel = ch;
  ares_destroy(old);
  free(dns->servers);
  dns->servers = copy;
  dns->timeout_ms = timeout_ms;
  dns->tries = tries;
  dns_pump(dns);
  cltcp__ares_schedule(dns);
  return 0;
}

/* ---- starting ----------------------------------------------------------- */

static int req_new(cltcp__dns_req **out, cltcp__loop *loop, const char *host,
                   int family) {
  cltcp__dns *dns;
  cltcp__dns_req *r;
  int rc;
  if (host == NULL || (family = cltcp__dns_family(family)) < 0)
    return UV_EINVAL;
  if (loop->tearing_down)
    return CLTCP_ECLOSED;
  rc = dns_get(&dns, loop);
  if (rc != 0)
    return rc;
  r = calloc(1, sizeof(*r));
  if (r == NULL)
    return UV_ENOMEM;
  r->dns = dns;
  r->family = family;
  r->owed = true;
  r->weight = family == CLTCP_AF_UNSPEC ? 2 : 1;
  cltcp__deferred_init(&r->d);
  cltcp__queue_init(&r->wait);
  cltcp__queue_insert_tail(&dns->reqs, &r->rq);
  *out = r;
  return 0;
}

/* Starts a request made by req_new().  Cannot fail: every failure is a
 * result, delivered on a later turn. */
static void req_launch(cltcp__dns_req *r, const char *host) {
  cltcp__dns *dns = r->dns;
  cltcp_addr one;
  if (!r->reverse && cltcp__dns_numeric(&one, &r->status, host, r->family)) {
    if (r->status == 0) {
      r->addrs = malloc(sizeof(one));
      if (r->addrs == NULL) {
        r->status = UV_ENOMEM;
      } else {
        r->addrs[0] = one;
        r->naddrs = 1;
      }
    }
    req_queue(r);
    return;
  }
  if (!r->reverse && !cltcp__dns_name_valid(host)) {
    r->status = CLTCP_EBADNAME;
    req_queue(r);
    return;
  }
  if (cltcp__dns_is_localhost(host)) {
    r->addrs = calloc(LOCALHOST_MAX, sizeof(*r->addrs));
    if (r->addrs == NULL) {
      r->status = UV_ENOMEM;
    } else {
      r->naddrs =
          cltcp__ares_localhost(r->addrs, LOCALHOST_MAX, dns, host, r->family);
      r->status = 0;
    }
    req_queue(r);
    return;
  }
  if (cltcp__queue_empty(&dns->waitq) && dns_has_room(dns, r->weight)) {
    ares_start(r, host);
    cltcp__ares_schedule(dns);
    return;
  }
  r->host = strdup(host);
  if (r->host == NULL) {
    r->status = UV_ENOMEM;
    req_queue(r);
    return;
  }
  r->waiting = true;
  cltcp__queue_insert_tail(&dns->waitq, &r->wait);
}

int cltcp__dns_start(cltcp__dns_req **out, cltcp__loop *loop,
                     const char *host, int family, cltcp__dns_fn fn,
                     void *arg) {
  cltcp__dns_req *r;
  int rc;
  if (out == NULL || fn == NULL)
    return UV_EINVAL;
  rc = req_new(&r, loop, host, family);
  if (rc != 0)
    return rc;
  r->fn = fn;
  r->arg = arg;
  *out = r;
  req_launch(r, host);
  return 0;
}

void cltcp__dns_abort(cltcp__dns_req *r) {
  if (r == NULL || r->delivering || !r->owed)
    return;
  cltcp__dns *dns = r->dns;
  r->owed = false;
  req_unwait(r);
  cltcp__undefer(&r->d);
  req_clear_result(r);
  req_maybe_free(r);
  if (!dns->tearing_down)
    cltcp__ares_update_ref(dns);
}

int cltcp__dns_hosts(cltcp_addr *out, size_t max, size_t *n,
                     cltcp__loop *loop, const char *host, int family) {
  cltcp__dns *dns;
  size_t count = 0;
  int rc, status = CLTCP_ENOTFOUND, pass;
  if (n != NULL)
    *n = 0;
  if (out == NULL || max == 0 || n == NULL || host == NULL ||
      (family = cltcp__dns_family(family)) < 0)
    return UV_EINVAL;
  if (cltcp__dns_numeric(out, &status, host, family)) {
    if (status == 0)
      *n = 1;
    return status;
  }
  if (!cltcp__dns_name_valid(host))
    return CLTCP_EBADNAME;
  if (loop->tearing_down)
    return CLTCP_ECLOSED;
  rc = dns_get(&dns, loop);
  if (rc != 0)
    return rc;
  if (cltcp__dns_is_localhost(host)) {
    *n = cltcp__ares_localhost(out, max, dns, host, family);
    return 0;
  }
  for (pass = 0; pass < 2; pass++) {
    int af = pass == 0 ? AF_INET : AF_INET6;
    if (family != CLTCP_AF_UNSPEC &&
        family != (pass == 0 ? CLTCP_AF_INET : CLTCP_AF_INET6))
      continue;
    count = cltcp__ares_hosts_family(out, count, max, dns, host, af, &rc);
    if (rc != ARES_ENOTFOUND && rc != ARES_SUCCESS)
      status = cltcp__ares_status(rc);
  }
  *n = count;
  return count > 0 ? 0 : status;
}

/* ---- teardown ----------------------------------------------------------- */

void cltcp__dns_loop_teardown(cltcp__loop *loop) {
  cltcp__dns *dns = loop->dns;
  cltcp__queue todo;
  if (dns == NULL || dns->tearing_down)
    return;
  dns->tearing_down = true;
  uv_timer_stop(&dns->timer);
  /* Completes every query c-ares holds (ARES_ECANCELLED); nothing is queued
   * for delivery any more since `closing' is set. */
  ares_cancel(dns->channel);
  while (!cltcp__queue_empty(&dns->waitq))
    req_unwait(cltcp__container_of(dns->waitq.next, cltcp__dns_req, wait));
  /* Call every owner still waiting, once, with UV_ECANCELED.  The list is
   * moved aside first: a callback may abort or cancel other requests, which
   * unlinks them from whatever list they are in. */
  cltcp__queue_init(&todo);
  cltcp__queue_splice_head(&todo, &dns->reqs);
  while (!cltcp__queue_empty(&todo)) {
    cltcp__dns_req *r = cltcp__container_of(todo.next, cltcp__dns_req, rq);
    cltcp__queue_remove(&r->rq);
    cltcp__queue_insert_tail(&dns->reqs, &r->rq);
    cltcp__undefer(&r->d);
    if (r->owed) {
      req_clear_result(r);
      r->status = UV_ECANCELED;
      req_call(r);
    } else {
      req_maybe_free(r);
    }
  }
  cltcp__ares_close_handles(dns);
}

void cltcp__dns_loop_free(cltcp__loop *loop) {
  cltcp__dns *dns = loop->dns;
  if (dns == NULL)
    return;
  dns->tearing_down = true;
  /* Completes whatever c-ares still holds (nothing, after ares_cancel())
   * and closes its sockets; their polls are closed already. */
  cltcp__ares_free(dns);
  while (!cltcp__queue_empty(&dns->reqs)) {
    cltcp__dns_req *r = cltcp__container_of(dns->reqs.next, cltcp__dns_req, rq);
    cltcp__queue_remove(&r->rq);
    free(r->host);
    free(r->addrs);
    free(r->name);
    free(r);
  }
  free(dns->servers);
  free(dns);
  loop->dns = NULL;
}

/* ---- public API --------------------------------------------------------- */

int cltcp_dns_lookup(cltcp_id *req, cltcp_id loop_id, const char *host,
                     int family, cltcp_dns_cb cb, uintptr_t ctx) {
  cltcp__loop *loop;
  cltcp__dns_req *r;
  int rc;
  if (host == NULL || cb == NULL ||
      (family != CLTCP_AF_UNSPEC && family != CLTCP_AF_INET &&
       family != CLTCP_AF_INET6))
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  rc = req_new(&r, loop, host, family);
  if (rc != 0)
    return rc;
  rc = cltcp__id_alloc(&r->id, loop, CLTCP_KIND_DNS, r);
  if (rc != 0) {
    r->id = 0;
    r->owed = false;
    req_maybe_free(r);
    return rc;
  }
  r->cb = cb;
  r->ctx = ctx;
  if (req != NULL)
    *req = r->id;
  req_launch(r, host);
  return 0;
}

int cltcp_dns_cancel(cltcp_id id) {
  cltcp__dns_req *r;
  void *p;
  int rc = cltcp__lookup(&p, id, CLTCP_KIND_DNS);
  if (rc != 0)
    return rc;
  r = p;
  if (!r->owed || r->cancelled || r->delivering)
    return CLTCP_ECLOSED;
  /* The id dies now, like a closed socket's; the request stays counted in
   * `live' until its UV_ECANCELED callback has run. */
  r->cancelled = true;
  req_unwait(r);
  cltcp__id_free_counted(r->dns->loop, r->id);
  req_clear_result(r);
  r->status = UV_ECANCELED;
  cltcp__undefer(&r->d);
  req_queue(r);
  cltcp__ares_update_ref(r->dns);
  return 0;
}

int cltcp_loop_set_dns_servers(cltcp_id loop_id, const char *servers) {
  cltcp__loop *loop;
  cltcp__dns *dns;
  char *list = NULL;
  int rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  if (servers != NULL && *servers != '\0') {
    rc = cltcp__dns_servers_normalize(&list, servers);
    if (rc != 0)
      return rc;
  } else if (loop->dns == NULL) {
    return 0; /* the system's servers are what a new channel gets */
  }
  rc = dns_get(&dns, loop);
  if (rc == 0)
    rc = dns_reconfigure(dns, dns->timeout_ms, dns->tries, list);
  free(list);
  return rc;
}

int cltcp_loop_set_dns_timeout(cltcp_id loop_id, double seconds, int tries) {
  cltcp__loop *loop;
  cltcp__dns *dns;
  int ms;
  int rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  if (isnan(seconds) || seconds <= 0 || seconds > 86400)
    return UV_EINVAL;
  ms = (int)cltcp__seconds_to_ms(seconds); /* at least 1 */
  rc = dns_get(&dns, loop);
  if (rc != 0)
    return rc;
  return dns_reconfigure(dns, ms, tries >= 1 ? tries : dns->tries,
                         dns->servers);
}

/* ---- reverse lookups ------------------------------------------------------
 * A reverse request is an ordinary request (same queue, same delivery,
 * same cancel and teardown) with `reverse' set: ares_start() hands it to
 * ares_gethostbyaddr() instead of ares_getaddrinfo(), and req_call() gives
 * the owner the name instead of addresses.  /etc/hosts is read on a second
 * channel (dns_ares.c), DNS asked with a PTR query of our own. */

static void reverse_call(cltcp__dns_req *r, int status) {
  const char *name = status == 0 ? r->name : NULL;
  if (status == 0 && name == NULL)
    status = CLTCP_ENOTFOUND;
  r->name_cb(r->ctx, r->id, status, name, name != NULL ? strlen(name) : 0);
}

/* c-ares' completion callback for the PTR query; like gai_cb(), it only
 * records. */
static void reverse_cb(void *arg, int status, int timeouts,
                       unsigned char *abuf, int alen) {
  cltcp__dns_req *r = arg;
  struct hostent *he = NULL;
  (void)timeouts;
  r->in_ares = false;
  r->dns->active -= r->weight;
  if (r->owed && !r->cancelled) {
    req_clear_result(r);
    if (status == ARES_SUCCESS)
      status = ares_parse_ptr_reply(abuf, alen, r->rev_addr,
                                    r->rev_af == AF_INET ? 4 : 16, r->rev_af,
                                    &he);
    if (status == ARES_SUCCESS && he != NULL && he->h_name != NULL &&
        he->h_name[0] != '\0') {
      r->name = strdup(he->h_name);
      r->status = r->name != NULL ? 0 : UV_ENOMEM;
    } else if (status == ARES_SUCCESS || status == ARES_ENODATA) {
      r->status = CLTCP_ENOTFOUND; /* no PTR record for the address */
    } else {
      r->status = cltcp__ares_status(status);
    }
    req_queue(r);
  }
  if (he != NULL)
    ares_free_hostent(he);
  req_maybe_free(r);
}

static void reverse_start(cltcp__dns_req *r, const char *addr) {
  cltcp__dns *dns = r->dns;
  char qname[80];
  char *name;
  int rc;
  /* checked by the caller */
  r->rev_af = cltcp__dns_reverse_parse(r->rev_addr, addr);
  rc = cltcp__ares_hosts_reverse(&name, dns, r->rev_addr, r->rev_af);
  if (rc != CLTCP_ENOTFOUND) {
    r->name = name;
    r->status = rc;
    req_queue(r);
    return;
  }
  cltcp__dns_arpa_name(qname, sizeof(qname), r->rev_addr, r->rev_af);
  r->in_ares = true;
  dns->active += r->weight;
  ares_query(dns->channel, qname, 1 /* C_IN */, 12 /* T_PTR */, reverse_cb,
             r);
}

int cltcp_dns_reverse(cltcp_id *req, cltcp_id loop_id, const char *addr,
                      cltcp_dns_name_cb cb, uintptr_t ctx) {
  cltcp__loop *loop;
  cltcp__dns_req *r;
  unsigned char bin[16];
  int rc, af;
  if (addr == NULL || cb == NULL ||
      (af = cltcp__dns_reverse_parse(bin, addr)) == 0)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  rc = req_new(&r, loop, addr, af == AF_INET ? CLTCP_AF_INET : CLTCP_AF_INET6);
  if (rc != 0)
    return rc;
  r->reverse = true;
  r->weight = 1;
  rc = cltcp__id_alloc(&r->id, loop, CLTCP_KIND_DNS, r);
  if (rc != 0) {
    r->id = 0;
    r->owed = false;
    req_maybe_free(r);
    return rc;
  }
  r->name_cb = cb;
  r->ctx = ctx;
  if (req != NULL)
    *req = r->id;
  req_launch(r, addr);
  return 0;
}

/* ---- listing (cltcp_loop_handles()) ------------------------------------- */

size_t cltcp__dns_list(cltcp_handle_info *out, size_t max, size_t n,
                       cltcp__loop *loop) {
  cltcp__dns *dns = loop->dns;
  cltcp__queue *q;
  if (dns == NULL)
    return n;
  cltcp__queue_foreach(q, &dns->reqs) {
    cltcp__dns_req *r = cltcp__container_of(q, cltcp__dns_req, rq);
    if (r->id == 0 || !r->owed || r->cancelled || r->delivering)
      continue;
    if (n < max) {
      out[n].id = r->id;
      out[n].kind = CLTCP_KIND_DNS;
      out[n].state = CLTCP_STATE_ACTIVE;
      out[n].flags = CLTCP_INFO_REF;
      out[n].detail = 0;
    }
    n++;
  }
  return n;
}
