/* dns.c -- asynchronous host name lookups with c-ares, driven by the loop.
 *
 * One c-ares channel per loop, created on first use, plugged into libuv the
 * way node's cares_wrap does it: c-ares tells us through its socket-state
 * callback which sockets to watch, each gets a uv_poll_t, and a uv_timer_t
 * armed from ares_timeout() lets c-ares retry and time out; both call
 * ares_process_fd().  Nothing blocks and no thread is involved.
 *
 * Only the c-ares 1.18 API is used (Debian 12 ships 1.18.1).
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
#include "internal.h"

#include <ares.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Default per-try timeout and tries (the header documents them). */
#define DNS_DEFAULT_TIMEOUT_MS 5000
#define DNS_DEFAULT_TRIES 2

/* At most this many DNS queries (an AF_UNSPEC lookup makes two: A and
 * AAAA) are handed to c-ares at once; further lookups wait in a queue.
 * c-ares sends a query as soon as it gets it and reads answers only when
 * the loop turns, so a burst of a thousand lookups would overflow the UDP
 * receive buffer (about 200 KiB, some 1.3 KiB per datagram) and stall in
 * retries.  128 answers fit. */
#define DNS_MAX_QUERIES 128

/* Most addresses a localhost name resolves to from the hosts file. */
#define LOCALHOST_MAX 16

typedef struct dns_link {
  struct dns_link *prev, *next;
} dns_link;

typedef struct dns_poll {
  uv_poll_t handle;
  struct dns_poll *next; /* dns->polls: watched sockets, not closing */
  cltcp__dns *dns;
  ares_socket_t fd;
} dns_poll;

struct cltcp__dns_req {
  cltcp__dns_req *prev, *next; /* dns->reqs (circular, with a sentinel) */
  cltcp__dns *dns;
  cltcp__deferred d;   /* the queued delivery */
  cltcp_id id;         /* public request: its id; internal: 0 */
  cltcp_dns_cb cb;     /* public callback */
  uintptr_t ctx;
  cltcp__dns_fn fn;    /* internal callback */
  void *arg;
  int family;          /* CLTCP_AF_* */
  bool in_ares;        /* c-ares still holds a pointer to this request */
  bool owed;           /* the owner's callback has not been called yet */
  bool cancelled;      /* public request cancelled: deliver UV_ECANCELED */
  bool delivering;     /* inside the owner's callback */
  bool waiting;        /* in dns->waitq, not yet given to c-ares */
  dns_link wait;       /* dns->waitq link */
  char *host;          /* copy of the name while waiting */
  int weight;          /* queries this lookup makes (1 or 2) */
  int status;          /* result, valid once c-ares is done (or cancel) */
  cltcp_addr *addrs;
  size_t naddrs;
  /* reverse lookups (cltcp_dns_reverse(), at the end of this file) */
  bool reverse;
  cltcp_dns_name_cb name_cb;
  char *name;          /* the result */
  unsigned char rev_addr[16];
  int rev_af;          /* AF_INET or AF_INET6 */
};

struct cltcp__dns {
  cltcp__loop *loop;
  ares_channel channel;
  uv_timer_t timer;
  dns_poll *polls;
  cltcp__dns_req reqs; /* sentinel of the list of every request */
  dns_link waitq;      /* requests waiting for room in c-ares, FIFO */
  int active;          /* queries c-ares holds (see DNS_MAX_QUERIES) */
  char *servers;       /* NULL: the system's servers (/etc/resolv.conf) */
  ares_channel hosts;  /* reverse lookups in /etc/hosts only; NULL until
                          the first one */
  int timeout_ms;
  int tries;
  bool closing;        /* loop teardown has started */
};

/* ---- helpers ------------------------------------------------------------ */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;

/* ares_library_init() is a reference-counted global that is not thread
 * safe; loops may live in different threads, so it runs exactly once for
 * the process and is never undone (on Unix it allocates nothing). */
static void library_init(void) {
  library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* c-ares statuses are positive; the library's one code space is negative. */
static int map_status(int status) {
  switch (status) {
  case ARES_SUCCESS:
    return 0;
  case ARES_ENODATA:
    return CLTCP_ENODATA;
  case ARES_EFORMERR:
  case ARES_EBADQUERY:
  case ARES_EBADRESP:
    return CLTCP_EDNSFORMAT;
  case ARES_ESERVFAIL:
    return CLTCP_ESERVFAIL;
  case ARES_ENOTFOUND:
    return CLTCP_ENOTFOUND;
  case ARES_EREFUSED:
    return CLTCP_EDNSREFUSED;
  case ARES_EBADNAME:
  case ARES_EBADSTR:
  case ARES_ENONAME:
    return CLTCP_EBADNAME;
  case ARES_ECONNREFUSED:
  case ARES_EOF:
    return CLTCP_EDNSCONN;
  case ARES_ETIMEOUT:
    return CLTCP_EDNSTIMEOUT;
  case ARES_EFILE:
  case ARES_ENOTINITIALIZED:
    return CLTCP_EDNSCONFIG;
  case ARES_ENOMEM:
    return UV_ENOMEM;
  case ARES_EDESTRUCTION:
  case ARES_ECANCELLED:
    return UV_ECANCELED;
  default: /* ENOTIMP, EBADFAMILY, EBADFLAGS, EBADHINTS, ESERVICE, ... */
    return CLTCP_EDNS;
  }
}

/* Accepts CLTCP_AF_* (and, for internal callers, the AF_* values). */
static int family_norm(int family) {
  switch (family) {
  case CLTCP_AF_UNSPEC:
    return CLTCP_AF_UNSPEC;
  case CLTCP_AF_INET:
  case AF_INET:
    return CLTCP_AF_INET;
  case CLTCP_AF_INET6:
  case AF_INET6:
    return CLTCP_AF_INET6;
  default:
    return -1;
  }
}

/* Appends an address unless it is already there (hosts files and DNS
 * answers may repeat one).  Returns the new count. */
static size_t addr_add(cltcp_addr *out, size_t n, size_t max, int family,
                       const char *text) {
  size_t i, len = strlen(text);
  if (n >= max || len >= sizeof(out[0].addr))
    return n;
  for (i = 0; i < n; i++)
    if (out[i].family == family && strcmp(out[i].addr, text) == 0)
      return n;
  out[n].family = family;
  memcpy(out[n].addr, text, len + 1);
  return n + 1;
}

static size_t addr_add_raw(cltcp_addr *out, size_t n, size_t max, int af,
                           const void *raw) {
  char text[INET6_ADDRSTRLEN + 1];
  if (uv_inet_ntop(af, raw, text, sizeof(text)) != 0)
    return n;
  return addr_add(out, n, max, af == AF_INET ? CLTCP_AF_INET : CLTCP_AF_INET6,
                  text);
}

/* A numeric address "resolves" to itself without c-ares (whose 1.18
 * getaddrinfo even queries the servers for a literal with AF_UNSPEC).
 * Returns 1 if host is numeric, with *status and out[0] set; else 0. */
static int numeric_lookup(cltcp_addr *out, int *status, const char *host,
                          int family) {
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  char buf[64];
  const char *h = host;
  size_t len = strlen(host);
  /* "[::1]" as well as "::1", like cltcp__parse_addr(). */
  if (len >= 3 && host[0] == '[' && host[len - 1] == ']' &&
      len - 2 < sizeof(buf)) {
    memcpy(buf, host + 1, len - 2);
    buf[len - 2] = '\0';
    h = buf;
  }
  if (h == host && uv_ip4_addr(h, 0, &sin) == 0) {
    *status = family == CLTCP_AF_INET6 ? CLTCP_ENODATA : 0;
    if (*status == 0)
      addr_add_raw(out, 0, 1, AF_INET, &sin.sin_addr);
    return 1;
  }
  if (strchr(h, ':') != NULL && uv_ip6_addr(h, 0, &sin6) == 0) {
    *status = family == CLTCP_AF_INET ? CLTCP_ENODATA : 0;
    if (*status == 0) {
      /* Keep a scope ("fe80::1%eth0") as written; normalize the rest. */
      if (strchr(h, '%') == NULL ||
          addr_add(out, 0, 1, CLTCP_AF_INET6, h) == 0)
        addr_add_raw(out, 0, 1, AF_INET6, &sin6.sin6_addr);
    }
    return 1;
  }
  return 0;
}

/* A host name as DNS can carry it: labels of 1..63 bytes separated by dots,
 * at most 253 bytes (one trailing dot allowed), made of letters, digits,
 * '-' and '_' (and UTF-8 bytes, which c-ares passes as they are).  Anything
 * else (a malformed address such as "1:2:3:4:5:6:7:8:9", spaces, "a..b")
 * is CLTCP_EBADNAME at once rather than a query to the servers. */
static bool name_valid(const char *host) {
  size_t len = strlen(host), label = 0, i;
  if (len > 0 && host[len - 1] == '.')
    len--;
  if (len == 0 || len > 253)
    return false;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)host[i];
    if (c == '.') {
      if (label == 0)
        return false;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c >= 0x80))
      return false;
    if (++label > 63)
      return false;
  }
  return true;
}

/* ---- localhost ----------------------------------------------------------
 * RFC 6761 (6.3): "localhost" and every name under ".localhost" are the
 * loopback addresses, and lookups of them must not go to a DNS server.
 * c-ares 1.18 only knows the exact name "localhost" and only in
 * ares_getaddrinfo(); ares_gethostbyname_file() (server bind names) and
 * "x.localhost" or "LOCALHOST." went to /etc/hosts and then the servers.
 * So these names are answered here, for every path: the hosts file's
 * addresses of a family when it has some (the administrator's word), else
 * 127.0.0.1 / ::1.  Errors reading the hosts file are ignored for them. */

static bool is_localhost(const char *host) {
  size_t len = strlen(host);
  if (len > 0 && host[len - 1] == '.')
    len--;
  if (len < 9 || strncasecmp(host + len - 9, "localhost", 9) != 0)
    return false;
  return len == 9 || host[len - 10] == '.';
}

/* Appends the hosts file's addresses of family af (AF_INET/AF_INET6) for
 * host.  Returns the new count; *status gets a c-ares status. */
static size_t hosts_family(cltcp_addr *out, size_t n, size_t max,
                           cltcp__dns *dns, const char *host, int af,
                           int *status) {
  struct hostent *he = NULL;
  char **a;
  *status = ares_gethostbyname_file(dns->channel, host, af, &he);
  if (*status != ARES_SUCCESS || he == NULL)
    return n;
  if (he->h_addrtype == af)
    for (a = he->h_addr_list; *a != NULL; a++)
      n = addr_add_raw(out, n, max, af, *a);
  ares_free_hostent(he);
  return n;
}

/* The addresses of a localhost name (is_localhost()), IPv4 first; at least
 * one per family asked for (max >= 1).  Returns the count. */
static size_t localhost_lookup(cltcp_addr *out, size_t max, cltcp__dns *dns,
                               const char *host, int family) {
  char name[256];
  size_t len = strlen(host), n = 0, before;
  int pass, status;
  /* Hosts files spell names without the root's trailing dot. */
  if (len > 0 && host[len - 1] == '.')
    len--;
  if (len >= sizeof(name))
    len = sizeof(name) - 1;
  memcpy(name, host, len);
  name[len] = '\0';
  for (pass = 0; pass < 2; pass++) {
    int af = pass == 0 ? AF_INET : AF_INET6;
    if (family != CLTCP_AF_UNSPEC &&
        family != (pass == 0 ? CLTCP_AF_INET : CLTCP_AF_INET6))
      continue;
    before = n;
    n = hosts_family(out, n, max, dns, name, af, &status);
    if (n == before)
      n = addr_add(out, n, max, pass == 0 ? CLTCP_AF_INET : CLTCP_AF_INET6,
                   pass == 0 ? "127.0.0.1" : "::1");
  }
  return n;
}

/* Checks a server list -- comma-separated entries "a.b.c.d", "a.b.c.d:port",
 * "[v6]", "[v6]:port" or a bare "v6", ports 1..65535 -- and rewrites it in
 * the form c-ares 1.18 parses ("[v6]" without a port becomes "v6").  c-ares
 * itself would accept out-of-range ports and empty entries silently.
 * Returns 0 with a malloc'ed *out, CLTCP_EDNSCONFIG or UV_ENOMEM. */
static int servers_normalize(char **out, const char *list) {
  size_t cap = strlen(list) + 1, used = 0;
  const char *p = list;
  char *res = malloc(cap);
  if (res == NULL)
    return UV_ENOMEM;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char buf[80];
    const char *host = buf, *port = NULL;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    bool v6 = false;
    int n;
    if (len == 0 || len >= sizeof(buf))
      goto bad;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (buf[0] == '[') {
      char *close = strchr(buf, ']');
      if (close == NULL)
        goto bad;
      *close = '\0';
      host = buf + 1;
      if (close[1] == ':')
        port = close + 2;
      else if (close[1] != '\0')
        goto bad;
      v6 = true;
    } else {
      char *colon = strchr(buf, ':');
      if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        *colon = '\0';
        port = colon + 1;
      }
      v6 = strchr(buf, ':') != NULL;
    }
    if (v6 ? (uv_ip6_addr(host, 53, &sin6) != 0 || strchr(host, '%'))
           : uv_ip4_addr(host, 53, &sin) != 0)
      goto bad;
    if (port != NULL) {
      char *e;
      long v;
      if (*port < '0' || *port > '9')
        goto bad;
      v = strtol(port, &e, 10);
      if (*e != '\0' || v < 1 || v > 65535)
        goto bad;
    }
    /* The rewritten entry is never longer than the original plus a
     * comma, except "v6" (no brackets) which is shorter. */
    if (v6 && port != NULL)
      n = snprintf(res + used, cap - used, "%s[%s]:%s", used ? "," : "",
                   host, port);
    else if (port != NULL)
      n = snprintf(res + used, cap - used, "%s%s:%s", used ? "," : "", host,
                   port);
    else
      n = snprintf(res + used, cap - used, "%s%s", used ? "," : "", host);
    if (n < 0 || (size_t)n >= cap - used)
      goto bad;
    used += (size_t)n;
    if (end == NULL)
      break;
    p = end + 1;
  }
  *out = res;
  return 0;
bad:
  free(res);
  return CLTCP_EDNSCONFIG;
}

/* ---- requests ----------------------------------------------------------- */

static void req_link(cltcp__dns_req *head, cltcp__dns_req *r) {
  r->prev = head->prev;
  r->next = head;
  head->prev->next = r;
  head->prev = r;
}

static void req_unlink(cltcp__dns_req *r) {
  r->prev->next = r->next;
  r->next->prev = r->prev;
  r->prev = r->next = r;
}

/* Frees a request nobody needs any more: c-ares is done with it, its owner
 * was called (or gave up) and no delivery is queued. */
static void req_maybe_free(cltcp__dns_req *r) {
  if (r->in_ares || r->owed || r->d.queued || r->delivering || r->waiting)
    return;
  req_unlink(r);
  free(r->addrs);
  free(r->name);
  free(r);
}

/* Takes a request out of the wait queue (it will not go to c-ares). */
static void req_unwait(cltcp__dns_req *r) {
  if (!r->waiting)
    return;
  r->wait.prev->next = r->wait.next;
  r->wait.next->prev = r->wait.prev;
  r->wait.prev = r->wait.next = &r->wait;
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

static void reverse_call(cltcp__dns_req *r, int status);
static void reverse_start(cltcp__dns_req *r, const char *addr);

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
  cltcp__dns_req *r =
      (cltcp__dns_req *)((char *)d - offsetof(cltcp__dns_req, d));
  if (r->owed)
    req_call(r);
  else
    req_maybe_free(r);
}

static void req_queue(cltcp__dns_req *r) {
  if (!r->dns->closing)
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
        n = addr_add_raw(r->addrs, n, count, af,
                         &((struct sockaddr_in *)node->ai_addr)->sin_addr);
      else
        n = addr_add_raw(r->addrs, n, count, af,
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
      r->status = map_status(status);
    req_queue(r);
  }
  if (ai != NULL)
    ares_freeaddrinfo(ai);
  req_maybe_free(r);
}

/* ---- the channel and its uv handles ------------------------------------- */

static void dns_schedule(cltcp__dns *dns);
static void dns_update_ref(cltcp__dns *dns);

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
  while (!dns->closing && dns->waitq.next != &dns->waitq) {
    cltcp__dns_req *r = (cltcp__dns_req *)((char *)dns->waitq.next -
                                           offsetof(cltcp__dns_req, wait));
    char *host;
    if (!dns_has_room(dns, r->weight))
      break;
    host = r->host;
    r->host = NULL;
    r->wait.prev->next = r->wait.next;
    r->wait.next->prev = r->wait.prev;
    r->wait.prev = r->wait.next = &r->wait;
    r->waiting = false;
    ares_start(r, host);
    free(host);
  }
}

static void timer_cb(uv_timer_t *t) {
  cltcp__dns *dns = t->data;
  ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  dns_pump(dns);
  dns_schedule(dns);
}

/* Arms the timer for c-ares' next timeout, or stops it when no query is
 * pending (so an idle resolver does not keep the loop alive). */
static void dns_schedule(cltcp__dns *dns) {
  struct timeval tv, *t;
  uint64_t ms;
  if (dns->closing)
    return;
  t = ares_timeout(dns->channel, NULL, &tv);
  if (t == NULL) {
    uv_timer_stop(&dns->timer);
    return;
  }
  ms = (uint64_t)t->tv_sec * 1000 + ((uint64_t)t->tv_usec + 999) / 1000;
  uv_timer_start(&dns->timer, timer_cb, ms, 0);
  dns_update_ref(dns);
}

static void poll_close_cb(uv_handle_t *h) {
  free(h->data);
}

static void poll_close(cltcp__dns *dns, dns_poll *p) {
  dns_poll **pp;
  for (pp = &dns->polls; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&p->handle, poll_close_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  dns_poll *p = h->data;
  cltcp__dns *dns = p->dns;
  ares_socket_t fd = p->fd;
  /* On an error let c-ares read and write, so it sees the error itself and
   * moves to the next server (node does the same).  `p' may be closed by
   * the socket-state callback inside ares_process_fd(). */
  if (status < 0)
    events = UV_READABLE | UV_WRITABLE;
  ares_process_fd(dns->channel, (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
                  (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
  dns_pump(dns);
  dns_schedule(dns);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable,
                          int writable) {
  cltcp__dns *dns = data;
  dns_poll *p;
  for (p = dns->polls; p != NULL; p = p->next)
    if (p->fd == fd)
      break;
  if (!readable && !writable) {
    if (p != NULL)
      poll_close(dns, p);
    return;
  }
  if (dns->closing)
    return;
  if (p == NULL) {
    p = calloc(1, sizeof(*p));
    if (p == NULL)
      return; /* c-ares times the query out */
    if (uv_poll_init_socket(&dns->loop->uv, &p->handle, fd) != 0) {
      free(p);
      return;
    }
    p->handle.data = p;
    p->dns = dns;
    p->fd = fd;
    p->next = dns->polls;
    dns->polls = p;
  }
  uv_poll_start(&p->handle,
                (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                poll_cb);
  dns_update_ref(dns);
}

static int channel_new(ares_channel *out, cltcp__dns *dns, int timeout_ms,
                       int tries, const char *servers) {
  struct ares_options o;
  ares_channel ch;
  int rc;
  pthread_once(&library_once, library_init);
  if (library_status != ARES_SUCCESS)
    return CLTCP_EDNSCONFIG;
  memset(&o, 0, sizeof(o));
  o.sock_state_cb = sock_state_cb;
  o.sock_state_cb_data = dns;
  o.lookups = (char *)"fb"; /* /etc/hosts first, then DNS */
  o.timeout = timeout_ms;
  o.tries = tries;
  rc = ares_init_options(&ch, &o,
                         ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS |
                             ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS)
    return rc == ARES_ENOMEM ? UV_ENOMEM : CLTCP_EDNSCONFIG;
  if (servers != NULL) {
    rc = ares_set_servers_ports_csv(ch, servers);
    if (rc != ARES_SUCCESS) {
      ares_destroy(ch);
      return rc == ARES_ENOMEM ? UV_ENOMEM : CLTCP_EDNSCONFIG;
    }
  }
  *out = ch;
  return 0;
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
    dns->reqs.prev = dns->reqs.next = &dns->reqs;
    dns->waitq.prev = dns->waitq.next = &dns->waitq;
    dns->timeout_ms = DNS_DEFAULT_TIMEOUT_MS;
    dns->tries = DNS_DEFAULT_TRIES;
    rc = channel_new(&dns->channel, dns, dns->timeout_ms, dns->tries, NULL);
    if (rc != 0) {
      free(dns);
      return rc;
    }
    uv_timer_init(&loop->uv, &dns->timer);
    dns->timer.data = dns;
    loop->dns = dns;
  }
  *out = dns;
  return 0;
}

/* A lookup whose owner still waits for c-ares: the channel must stay. */
static bool dns_busy(cltcp__dns *dns) {
  cltcp__dns_req *r;
  for (r = dns->reqs.next; r != &dns->reqs; r = r->next)
    if ((r->in_ares || r->waiting) && r->owed && !r->cancelled)
      return true;
  return false;
}

/* Queries whose owner no longer waits (cancelled, aborted) stay in c-ares
 * until they answer or time out, since c-ares 1.18 cannot cancel one query.
 * They must not keep the loop alive: the poll handles and the timer hold a
 * reference on the loop only while some owner is waiting. */
static void dns_update_ref(cltcp__dns *dns) {
  bool busy = dns_busy(dns);
  dns_poll *p;
  if (busy)
    uv_ref((uv_handle_t *)&dns->timer);
  else
    uv_unref((uv_handle_t *)&dns->timer);
  for (p = dns->polls; p != NULL; p = p->next) {
    if (busy)
      uv_ref((uv_handle_t *)&p->handle);
    else
      uv_unref((uv_handle_t *)&p->handle);
  }
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
  if (dns_busy(dns))
    return CLTCP_EBUSY;
  if (servers != NULL) {
    copy = strdup(servers);
    if (copy == NULL)
      return UV_ENOMEM;
  }
  rc = channel_new(&ch, dns, timeout_ms, tries, servers);
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
  dns_schedule(dns);
  return 0;
}

/* ---- starting ----------------------------------------------------------- */

static int req_new(cltcp__dns_req **out, cltcp__loop *loop, const char *host,
                   int family) {
  cltcp__dns *dns;
  cltcp__dns_req *r;
  int rc;
  if (host == NULL || (family = family_norm(family)) < 0)
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
  r->wait.prev = r->wait.next = &r->wait;
  req_link(&dns->reqs, r);
  *out = r;
  return 0;
}

/* Starts a request made by req_new().  Cannot fail: every failure is a
 * result, delivered on a later turn. */
static void req_launch(cltcp__dns_req *r, const char *host) {
  cltcp__dns *dns = r->dns;
  cltcp_addr one;
  if (!r->reverse && numeric_lookup(&one, &r->status, host, r->family)) {
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
  if (!r->reverse && !name_valid(host)) {
    r->status = CLTCP_EBADNAME;
    req_queue(r);
    return;
  }
  if (is_localhost(host)) {
    r->addrs = calloc(LOCALHOST_MAX, sizeof(*r->addrs));
    if (r->addrs == NULL) {
      r->status = UV_ENOMEM;
    } else {
      r->naddrs = localhost_lookup(r->addrs, LOCALHOST_MAX, dns, host,
                                   r->family);
      r->status = 0;
    }
    req_queue(r);
    return;
  }
  if (dns->waitq.next == &dns->waitq && dns_has_room(dns, r->weight)) {
    ares_start(r, host);
    dns_schedule(dns);
    return;
  }
  r->host = strdup(host);
  if (r->host == NULL) {
    r->status = UV_ENOMEM;
    req_queue(r);
    return;
  }
  r->waiting = true;
  r->wait.prev = dns->waitq.prev;
  r->wait.next = &dns->waitq;
  dns->waitq.prev->next = &r->wait;
  dns->waitq.prev = &r->wait;
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
  if (!dns->closing)
    dns_update_ref(dns);
}

int cltcp__dns_hosts(cltcp_addr *out, size_t max, size_t *n,
                     cltcp__loop *loop, const char *host, int family) {
  cltcp__dns *dns;
  size_t count = 0;
  int rc, status = CLTCP_ENOTFOUND, pass;
  if (n != NULL)
    *n = 0;
  if (out == NULL || max == 0 || n == NULL || host == NULL ||
      (family = family_norm(family)) < 0)
    return UV_EINVAL;
  if (numeric_lookup(out, &status, host, family)) {
    if (status == 0)
      *n = 1;
    return status;
  }
  if (!name_valid(host))
    return CLTCP_EBADNAME;
  if (loop->tearing_down)
    return CLTCP_ECLOSED;
  rc = dns_get(&dns, loop);
  if (rc != 0)
    return rc;
  if (is_localhost(host)) {
    *n = localhost_lookup(out, max, dns, host, family);
    return 0;
  }
  for (pass = 0; pass < 2; pass++) {
    int af = pass == 0 ? AF_INET : AF_INET6;
    if (family != CLTCP_AF_UNSPEC &&
        family != (pass == 0 ? CLTCP_AF_INET : CLTCP_AF_INET6))
      continue;
    count = hosts_family(out, count, max, dns, host, af, &rc);
    if (rc != ARES_ENOTFOUND && rc != ARES_SUCCESS)
      status = map_status(rc);
  }
  *n = count;
  return count > 0 ? 0 : status;
}

/* ---- teardown ----------------------------------------------------------- */

void cltcp__dns_loop_teardown(cltcp__loop *loop) {
  cltcp__dns *dns = loop->dns;
  cltcp__dns_req todo, *r;
  if (dns == NULL || dns->closing)
    return;
  dns->closing = true;
  uv_timer_stop(&dns->timer);
  /* Completes every query c-ares holds (ARES_ECANCELLED); nothing is queued
   * for delivery any more since `closing' is set. */
  ares_cancel(dns->channel);
  while (dns->waitq.next != &dns->waitq)
    req_unwait((cltcp__dns_req *)((char *)dns->waitq.next -
                                  offsetof(cltcp__dns_req, wait)));
  /* Call every owner still waiting, once, with UV_ECANCELED.  The list is
   * moved aside first: a callback may abort or cancel other requests, which
   * unlinks them from whatever list they are in. */
  todo.prev = todo.next = &todo;
  if (dns->reqs.next != &dns->reqs) {
    todo.next = dns->reqs.next;
    todo.prev = dns->reqs.prev;
    todo.next->prev = &todo;
    todo.prev->next = &todo;
    dns->reqs.prev = dns->reqs.next = &dns->reqs;
  }
  while (todo.next != &todo) {
    r = todo.next;
    req_unlink(r);
    req_link(&dns->reqs, r);
    cltcp__undefer(&r->d);
    if (r->owed) {
      req_clear_result(r);
      r->status = UV_ECANCELED;
      req_call(r);
    } else {
      req_maybe_free(r);
    }
  }
  while (dns->polls != NULL)
    poll_close(dns, dns->polls);
  uv_close((uv_handle_t *)&dns->timer, NULL);
}

void cltcp__dns_loop_free(cltcp__loop *loop) {
  cltcp__dns *dns = loop->dns;
  if (dns == NULL)
    return;
  dns->closing = true;
  /* Completes whatever c-ares still holds (nothing, after ares_cancel())
   * and closes its sockets; their polls are closed already. */
  ares_destroy(dns->channel);
  if (dns->hosts != NULL)
    ares_destroy(dns->hosts);
  while (dns->reqs.next != &dns->reqs) {
    cltcp__dns_req *r = dns->reqs.next;
    req_unlink(r);
    free(r->host);
    free(r->addrs);
    free(r->name);
    free(r);
  }
  while (dns->polls != NULL) { /* only if teardown was skipped */
    dns_poll *p = dns->polls;
    dns->polls = p->next;
    free(p);
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
  dns_update_ref(r->dns);
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
    rc = servers_normalize(&list, servers);
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
  /* Rounded up, at least 1 ms (no libm needed for ceil()). */
  ms = (int)(seconds * 1000);
  if ((double)ms < seconds * 1000 || ms < 1)
    ms++;
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
 * the owner the name instead of addresses. */

/* Parses a numeric IPv4 or IPv6 address.  Returns the AF_* or 0. */
static int reverse_parse(unsigned char bin[16], const char *addr) {
  if (uv_inet_pton(AF_INET, addr, bin) == 0)
    return AF_INET;
  if (strchr(addr, ':') != NULL && uv_inet_pton(AF_INET6, addr, bin) == 0)
    return AF_INET6;
  return 0;
}

static void reverse_call(cltcp__dns_req *r, int status) {
  const char *name = status == 0 ? r->name : NULL;
  if (status == 0 && name == NULL)
    status = CLTCP_ENOTFOUND;
  r->name_cb(r->ctx, r->id, status, name, name != NULL ? strlen(name) : 0);
}

/* /etc/hosts, synchronously.  c-ares' ares_gethostbyaddr() would do the
 * hosts file and then DNS, but it reports every DNS failure (timeout,
 * refused, server failure) as ARES_ENOTFOUND; so the hosts file is read
 * with it on a second channel whose only lookup method is the file ("f",
 * which completes inside the call), and DNS is asked with a PTR query of
 * our own, whose status c-ares reports as it is. */
typedef struct hosts_res {
  bool done, abandoned;
  int status;
  char *name;
} hosts_res;

static void hosts_cb(void *arg, int status, int timeouts, struct hostent *he) {
  hosts_res *h = arg;
  (void)timeouts;
  h->done = true;
  h->status = status;
  if (status == ARES_SUCCESS && he != NULL && he->h_name != NULL &&
      he->h_name[0] != '\0')
    h->name = strdup(he->h_name);
  if (h->abandoned) {
    free(h->name);
    free(h);
  }
}

/* Returns 0 with a malloc'ed *name, CLTCP_ENOTFOUND, or UV_ENOMEM. */
static int hosts_reverse(char **name, cltcp__dns *dns, const unsigned char *bin,
                         int af) {
  hosts_res *h;
  int rc;
  *name = NULL;
  if (dns->hosts == NULL) {
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.lookups = (char *)"f";
    if (ares_init_options(&dns->hosts, &o, ARES_OPT_LOOKUPS) != ARES_SUCCESS) {
      dns->hosts = NULL;
      return CLTCP_ENOTFOUND; /* DNS may still know */
    }
  }
  h = calloc(1, sizeof(*h));
  if (h == NULL)
    return UV_ENOMEM;
  ares_gethostbyaddr(dns->hosts, bin, af == AF_INET ? 4 : 16, af, hosts_cb, h);
  if (!h->done) { /* not the case with "f" alone; never wait for it */
    h->abandoned = true;
    return CLTCP_ENOTFOUND;
  }
  if (h->name != NULL)
    rc = 0;
  else if (h->status == ARES_ENOMEM)
    rc = UV_ENOMEM;
  else
    rc = CLTCP_ENOTFOUND;
  *name = h->name;
  free(h);
  return rc;
}

/* The PTR query name: "d.c.b.a.in-addr.arpa" or 32 nibbles + "ip6.arpa". */
static void arpa_name(char *out, size_t max, const unsigned char *bin,
                      int af) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  int i;
  if (af == AF_INET) {
    snprintf(out, max, "%u.%u.%u.%u.in-addr.arpa", bin[3], bin[2], bin[1],
             bin[0]);
    return;
  }
  for (i = 15; i >= 0 && n + 4 < max; i--) {
    out[n++] = hex[bin[i] & 0xF];
    out[n++] = '.';
    out[n++] = hex[bin[i] >> 4];
    out[n++] = '.';
  }
  snprintf(out + n, max - n, "ip6.arpa");
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
      r->status = map_status(status);
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
  r->rev_af = reverse_parse(r->rev_addr, addr); /* checked by the caller */
  rc = hosts_reverse(&name, dns, r->rev_addr, r->rev_af);
  if (rc != CLTCP_ENOTFOUND) {
    r->name = name;
    r->status = rc;
    req_queue(r);
    return;
  }
  arpa_name(qname, sizeof(qname), r->rev_addr, r->rev_af);
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
  if (addr == NULL || cb == NULL || (af = reverse_parse(bin, addr)) == 0)
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
  cltcp__dns_req *r;
  if (dns == NULL)
    return n;
  for (r = dns->reqs.next; r != &dns->reqs; r = r->next) {
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
