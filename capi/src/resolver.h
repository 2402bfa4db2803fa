/*
 * resolver.h -- the resolver of a loop, shared by the DNS files:
 *   dns.c        requests: their lifecycle (queueing, starting in c-ares,
 *                delivery, cancel, abort, teardown) and the public DNS API
 *   dns_ares.c   the c-ares channel and its libuv glue (socket-state
 *                callback, polls, timer), the hosts file, status mapping
 *   dns_parse.c  pure text work: name validation, numeric addresses,
 *                server lists, PTR names (no loop, no c-ares; unit-tested
 *                by tests/c/test_dns_parse.c)
 * Calls go dns.c -> dns_ares.c -> dns_parse.c (the glue reaches the
 * requests only through cltcp__dns.on_progress).
 */
#ifndef CLTCP_RESOLVER_H
#define CLTCP_RESOLVER_H

#include "internal.h"

#include <ares.h>

/* Default per-try timeout and tries (the header documents them). */
#define DNS_DEFAULT_TIMEOUT_MS 5000
#define DNS_DEFAULT_TRIES 2

/* Most addresses a localhost name resolves to from the hosts file. */
#define LOCALHOST_MAX 16

typedef struct dns_poll {
  uv_poll_t handle;
  cltcp__queue pq;       /* dns->polls: watched sockets, not closing */
  cltcp__dns *dns;
  ares_socket_t fd;
} dns_poll;

struct cltcp__dns_req {
  cltcp__queue rq;     /* dns->reqs */
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
  cltcp__queue wait;   /* dns->waitq link */
  char *host;          /* copy of the name while waiting */
  int weight;          /* queries this lookup makes (1 or 2) */
  int status;          /* result, valid once c-ares is done (or cancel) */
  cltcp_addr *addrs;
  size_t naddrs;
  /* reverse lookups (cltcp_dns_reverse()) */
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
  cltcp__queue polls;  /* dns_poll */
  cltcp__queue reqs;   /* every request (cltcp__dns_req) */
  cltcp__queue waitq;  /* requests waiting for room in c-ares, FIFO */
  int active;          /* queries c-ares holds (see DNS_MAX_QUERIES) */
  char *servers;       /* NULL: the system's servers (/etc/resolv.conf) */
  ares_channel hosts;  /* reverse lookups in /etc/hosts only; NULL until
                          the first one */
  int timeout_ms;
  int tries;
  bool tearing_down;   /* the loop's teardown has started */
  /* Called by dns_ares.c after c-ares processed I/O or a timeout (answers
   * came in, so room in c-ares may be free): dns.c moves waiting requests
   * in.  A hook rather than a call, so that the c-ares glue stays below the
   * requests and the two files form no circle. */
  void (*on_progress)(cltcp__dns *dns);
};

/* ---- dns_ares.c ---------------------------------------------------------- */
/* A lookup whose owner still waits for c-ares: the channel must stay. */
CLTCP__HIDDEN bool cltcp__ares_busy(cltcp__dns *dns);
/* c-ares statuses are positive; the library's one code space is negative. */
CLTCP__HIDDEN int cltcp__ares_status(int status);
/* A channel for dns (its socket-state callback drives dns's polls), with
 * these settings; servers NULL for the system's.  Returns 0,
 * CLTCP_EDNSCONFIG or UV_ENOMEM. */
CLTCP__HIDDEN int cltcp__ares_channel_new(ares_channel *out, cltcp__dns *dns,
                                          int timeout_ms, int tries,
                                          const char *servers);
/* The timer, at the resolver's creation; closing the timer and every poll,
 * at the loop's teardown; the channels, when the loop is freed. */
CLTCP__HIDDEN void cltcp__ares_init_handles(cltcp__dns *dns);
CLTCP__HIDDEN void cltcp__ares_close_handles(cltcp__dns *dns);
CLTCP__HIDDEN void cltcp__ares_free(cltcp__dns *dns);
CLTCP__HIDDEN void cltcp__ares_poll_close(cltcp__dns *dns, dns_poll *p);
/* Arms the timer for c-ares' next timeout, or stops it when no query is
 * pending; cltcp__ares_update_ref() references the timer and polls only
 * while some owner waits (cltcp__ares_busy()). */
CLTCP__HIDDEN void cltcp__ares_schedule(cltcp__dns *dns);
CLTCP__HIDDEN void cltcp__ares_update_ref(cltcp__dns *dns);
/* Appends the hosts file's addresses of family af (AF_INET/AF_INET6) for
 * host.  Returns the new count; *status gets a c-ares status. */
CLTCP__HIDDEN size_t cltcp__ares_hosts_family(cltcp_addr *out, size_t n,
                                              size_t max, cltcp__dns *dns,
                                              const char *host, int af,
                                              int *status);
/* The addresses of a localhost name, IPv4 first; at least one per family
 * asked for (max >= 1).  Returns the count. */
CLTCP__HIDDEN size_t cltcp__ares_localhost(cltcp_addr *out, size_t max,
                                           cltcp__dns *dns, const char *host,
                                           int family);
/* The name of an address in /etc/hosts: 0 with a malloc'ed *name,
 * CLTCP_ENOTFOUND, or UV_ENOMEM. */
CLTCP__HIDDEN int cltcp__ares_hosts_reverse(char **name, cltcp__dns *dns,
                                            const unsigned char *bin, int af);

/* ---- dns_parse.c (pure) -------------------------------------------------- */
/* CLTCP_AF_* as given, or -1 for anything else. */
CLTCP__HIDDEN int cltcp__dns_family(int family);
/* Appends an address unless it is already there; returns the new count. */
CLTCP__HIDDEN size_t cltcp__addr_add(cltcp_addr *out, size_t n, size_t max,
                                     int family, const char *text);
/* The same from a binary address of AF_INET / AF_INET6. */
CLTCP__HIDDEN size_t cltcp__addr_add_raw(cltcp_addr *out, size_t n, size_t max,
                                         int af, const void *raw);
/* Returns 1 if host is numeric, with *status and out[0] set; else 0. */
CLTCP__HIDDEN int cltcp__dns_numeric(cltcp_addr *out, int *status,
                                     const char *host, int family);
CLTCP__HIDDEN bool cltcp__dns_name_valid(const char *host);
/* "localhost" or a name under ".localhost" (RFC 6761). */
CLTCP__HIDDEN bool cltcp__dns_is_localhost(const char *host);
CLTCP__HIDDEN int cltcp__dns_servers_normalize(char **out, const char *list);
/* A numeric IPv4 or IPv6 address into bin: the AF_* or 0. */
CLTCP__HIDDEN int cltcp__dns_reverse_parse(unsigned char bin[16],
                                           const char *addr);
/* The PTR query name of an address. */
CLTCP__HIDDEN void cltcp__dns_arpa_name(char *out, size_t max,
                                        const unsigned char *bin, int af);

#endif /* CLTCP_RESOLVER_H */
