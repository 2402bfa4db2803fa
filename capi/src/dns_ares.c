/* dns_ares.c -- the c-ares side of a loop's resolver: one channel per
 * loop, plugged into libuv the way node's cares_wrap does it: c-ares tells
 * us through its socket-state callback which sockets to watch, each gets a
 * uv_poll_t, and a uv_timer_t armed from ares_timeout() lets c-ares retry
 * and time out; both call ares_process_fd().  Nothing blocks and no thread
 * is involved.  Also here: the hosts-file lookups (synchronous, through
 * c-ares) and the mapping of c-ares statuses to the library's codes.
 *
 * Only the c-ares 1.18 API is used (Debian 12 ships 1.18.1). */
#include "resolver.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;

/* ares_library_init() is a reference-counted global that is not thread
 * safe; loops may live in different threads, so it runs exactly once for
 * the process and is never undone (on Unix it allocates nothing). */
static void library_init(void) {
  library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* c-ares statuses are positive; the library's one code space is negative. */
int cltcp__ares_status(int status) {
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

/* ---- the uv handles ------------------------------------------------------ */

static void ares_timer_cb(uv_timer_t *t) {
  cltcp__dns *dns = t->data;
  ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  dns->on_progress(dns);
  cltcp__ares_schedule(dns);
}

/* Arms the timer for c-ares' next timeout, or stops it when no query is
 * pending (so an idle resolver does not keep the loop alive). */
void cltcp__ares_schedule(cltcp__dns *dns) {
  struct timeval tv, *t;
  uint64_t ms;
  if (dns->tearing_down)
    return;
  t = ares_timeout(dns->channel, NULL, &tv);
  if (t == NULL) {
    uv_timer_stop(&dns->timer);
    return;
  }
  ms = (uint64_t)t->tv_sec * 1000 + ((uint64_t)t->tv_usec + 999) / 1000;
  uv_timer_start(&dns->timer, ares_timer_cb, ms, 0);
  cltcp__ares_update_ref(dns);
}

static void poll_close_cb(uv_handle_t *h) { free(h->data); }

void cltcp__ares_poll_close(cltcp__dns *dns, dns_poll *p) {
  (void)dns;
  cltcp__queue_remove(&p->pq);
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
  dns->on_progress(dns);
  cltcp__ares_schedule(dns);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable,
                          int writable) {
  cltcp__dns *dns = data;
  dns_poll *p = NULL;
  cltcp__queue *q;
  cltcp__queue_foreach(q, &dns->polls) {
    if (cltcp__container_of(q, dns_poll, pq)->fd == fd) {
      p = cltcp__container_of(q, dns_poll, pq);
      break;
    }
  }
  if (!readable && !writable) {
    if (p != NULL)
      cltcp__ares_poll_close(dns, p);
    return;
  }
  if (dns->tearing_down)
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
    cltcp__queue_insert_head(&dns->polls, &p->pq);
  }
  uv_poll_start(&p->handle,
                (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                poll_cb);
  cltcp__ares_update_ref(dns);
}

void cltcp__ares_init_handles(cltcp__dns *dns) {
  uv_timer_init(&dns->loop->uv, &dns->timer);
  dns->timer.data = dns;
}

void cltcp__ares_close_handles(cltcp__dns *dns) {
  while (!cltcp__queue_empty(&dns->polls))
    cltcp__ares_poll_close(dns,
                           cltcp__container_of(dns->polls.next, dns_poll, pq));
  uv_close((uv_handle_t *)&dns->timer, NULL);
}

void cltcp__ares_free(cltcp__dns *dns) {
  ares_destroy(dns->channel);
  if (dns->hosts != NULL)
    ares_destroy(dns->hosts);
  /* Only if the teardown was skipped: polls never closed. */
  while (!cltcp__queue_empty(&dns->polls)) {
    dns_poll *p = cltcp__container_of(dns->polls.next, dns_poll, pq);
    cltcp__queue_remove(&p->pq);
    free(p);
  }
}

/* Queries whose owner no longer waits (cancelled, aborted) stay in c-ares
 * until they answer or time out, since c-ares 1.18 cannot cancel one query.
 * They must not keep the loop alive: the poll handles and the timer hold a
 * reference on the loop only while some owner is waiting. */
void cltcp__ares_update_ref(cltcp__dns *dns) {
  bool busy = cltcp__ares_busy(dns);
  cltcp__queue *q;
  if (busy)
    uv_ref((uv_handle_t *)&dns->timer);
  else
    uv_unref((uv_handle_t *)&dns->timer);
  cltcp__queue_foreach(q, &dns->polls) {
    dns_poll *p = cltcp__container_of(q, dns_poll, pq);
    if (busy)
      uv_ref((uv_handle_t *)&p->handle);
    else
      uv_unref((uv_handle_t *)&p->handle);
  }
}

/* A lookup whose owner still waits for c-ares: the channel must stay, and
 * its handles keep the loop alive. */
bool cltcp__ares_busy(cltcp__dns *dns) {
  cltcp__queue *q;
  cltcp__queue_foreach(q, &dns->reqs) {
    cltcp__dns_req *r = cltcp__container_of(q, cltcp__dns_req, rq);
    if ((r->in_ares || r->waiting) && r->owed && !r->cancelled)
      return true;
  }
  return false;
}

/* ---- the channel --------------------------------------------------------- */

int cltcp__ares_channel_new(ares_channel *out, cltcp__dns *dns, int timeout_ms,
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

/* ---- localhost ----------------------------------------------------------
 * RFC 6761 (6.3): "localhost" and every name under ".localhost" are the
 * loopback addresses, and lookups of them must not go to a DNS server.
 * c-ares 1.18 only knows the exact name "localhost" and only in
 * ares_getaddrinfo(); ares_gethostbyname_file() (server bind names) and
 * "x.localhost" or "LOCALHOST." went to /etc/hosts and then the servers.
 * So these names are answered here, for every path: the hosts file's
 * addresses of a family when it has some (the administrator's word), else
 * 127.0.0.1 / ::1.  Errors reading the hosts file are ignored for them. */

/* Appends the hosts file's addresses of family af (AF_INET/AF_INET6) for
 * host.  Returns the new count; *status gets a c-ares status. */
size_t cltcp__ares_hosts_family(cltcp_addr *out, size_t n, size_t max,
                                cltcp__dns *dns, const char *host, int af,
                                int *status) {
  struct hostent *he = NULL;
  char **a;
  *status = ares_gethostbyname_file(dns->channel, host, af, &he);
  if (*status != ARES_SUCCESS || he == NULL)
    return n;
  if (he->h_addrtype == af)
    for (a = he->h_addr_list; *a != NULL; a++)
      n = cltcp__addr_add_raw(out, n, max, af, *a);
  ares_free_hostent(he);
  return n;
}

/* The addresses of a localhost name (cltcp__dns_is_localhost()), IPv4 first; at
 * least one per family asked for (max >= 1).  Returns the count. */
size_t cltcp__ares_localhost(cltcp_addr *out, size_t max, cltcp__dns *dns,
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
    n = cltcp__ares_hosts_family(out, n, max, dns, name, af, &status);
    if (n == before)
      n = cltcp__addr_add(out, n, max,
                          pass == 0 ? CLTCP_AF_INET : CLTCP_AF_INET6,
                          pass == 0 ? "127.0.0.1" : "::1");
  }
  return n;
}

/* ---- reverse lookups in the hosts file ----------------------------------- */

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
int cltcp__ares_hosts_reverse(char **name, cltcp__dns *dns,
                              const unsigned char *bin, int af) {
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
