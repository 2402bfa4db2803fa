/* connect.c -- a socket becomes connected: by address or by name (each
 * resolved address tried in turn), or by being accepted (server.c's one
 * entry).  See socket.h for the other socket files. */
#include "socket.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void try_connect_next(cltcp__socket *s);

/* A connected socket starts its I/O: what was written before the
 * connection goes, reading starts, the clocks run. */
static void start_io(cltcp__socket *s) {
  cltcp__socket_start_write(s);
  if (s->uv_closed)
    return;
  cltcp__socket_start_reading(s);
  cltcp__socket_arm_timer(s);
}

/* The connecting part is no longer needed (its request has completed). */
static void connecting_done(cltcp__socket *s) {
  cltcp__sock_connecting *c = sock_conn(s);
  if (c != NULL) {
    free(c->addrs);
    free(c);
    sock_x(s)->conn = NULL;
  }
}

static void connected(cltcp__socket *s) {
  cltcp__sock_timeouts *t = sock_tmo(s);
  s->state = ST_CONNECTED;
  if (t != NULL) {
    t->last_read = t->last_write = sock_now();
    t->last_queued = 0;
  }
  connecting_done(s);
  cltcp__socket_apply_options(s);
  /* A client's part held the connect state and the keep-alive delay: an
   * idle connection keeps no part it does not use (issue 12). */
  cltcp__socket_more_trim(s);
  if (!s->h.closing) {
    sock_emit(s, CLTCP_EV_CONNECT, 0, NULL, 0);
    if (s->uv_closed)
      return;
  }
  start_io(s);
}

static void connect_cb(uv_connect_t *req, int status) {
  cltcp__socket *s = req->data;
  if (status == UV_ECANCELED || s->uv_closed)
    return;
  if (status == 0) {
    connected(s);
    return;
  }
  sock_conn(s)->last_err = status;
  if (sock_conn(s)->next_addr < sock_conn(s)->naddrs && !s->h.closing) {
    try_connect_next(s);
    return;
  }
  cltcp__socket_fail(s, status);
}

static int start_connect(cltcp__socket *s, const struct sockaddr *sa) {
  int rc;
  s->state = ST_CONNECTING;
  sock_conn(s)->creq.data = s;
  rc = uv_tcp_connect(&sock_conn(s)->creq, &s->tcp, sa, connect_cb);
  return rc;
}

static void reopen_cb(uv_handle_t *h) {
  cltcp__socket *s = sock_of_tcp(h);
  s->tcp_reopening = false;
  if (s->uv_closed) {
    /* Closed while reopening: this close counts for the socket. */
    cltcp__socket_uv_closed(h);
    return;
  }
  {
    /* libuv leaves `data' alone, but the part is not left to that */
    void *x = s->tcp.data;
    uv_tcp_init(&cltcp__handle_loop(&s->h)->uv, &s->tcp);
    s->tcp.data = x;
  }
  cltcp__handle_apply_ref(&s->h); /* a fresh handle is referenced */
  try_connect_next(s);
}

/* Tries the next resolved address; the first attempt uses the fresh tcp
 * handle, later ones close and reopen it (a socket that failed to connect
 * cannot be reused, and the family may differ). */
static void try_connect_next(cltcp__socket *s) {
  cltcp__sock_connecting *c = sock_conn(s);
  struct sockaddr_storage ss;
  int rc;
  if (uv_fileno((uv_handle_t *)&s->tcp, &(uv_os_fd_t){0}) == 0) {
    s->tcp_reopening = true;
    uv_close((uv_handle_t *)&s->tcp, reopen_cb);
    return;
  }
  while (c->next_addr < c->naddrs) {
    const cltcp_addr *a = &c->addrs[c->next_addr++];
    if (cltcp__parse_addr(&ss, a->addr, c->port) != 0)
      continue;
    rc = start_connect(s, (struct sockaddr *)&ss);
    if (rc == 0)
      return;
    c->last_err = rc;
    /* uv_tcp_connect may have opened the fd before failing. */
    if (uv_fileno((uv_handle_t *)&s->tcp, &(uv_os_fd_t){0}) == 0) {
      s->tcp_reopening = true;
      uv_close((uv_handle_t *)&s->tcp, reopen_cb);
      return;
    }
  }
  cltcp__socket_fail(s, c->last_err != 0 ? c->last_err : CLTCP_ENOTFOUND);
}

static void dns_done(void *arg, int status, const cltcp_addr *addrs, size_t n) {
  cltcp__socket *s = arg;
  cltcp__sock_connecting *c = sock_conn(s);
  c->dns = NULL;
  if (s->uv_closed)
    return;
  if (status == UV_ECANCELED && cltcp__handle_loop(&s->h)->tearing_down)
    return; /* loop teardown: socket_teardown() closes the socket */
  if (status < 0 || n == 0) {
    cltcp__socket_fail(s, status < 0 ? status : CLTCP_ENOTFOUND);
    return;
  }
  c->addrs = malloc(n * sizeof(*addrs));
  if (c->addrs == NULL) {
    cltcp__socket_fail(s, UV_ENOMEM);
    return;
  }
  memcpy(c->addrs, addrs, n * sizeof(*addrs));
  c->naddrs = n;
  c->next_addr = 0;
  s->state = ST_CONNECTING;
  try_connect_next(s);
}

int cltcp_socket_connect(cltcp_id id, const char *host, int port) {
  cltcp__socket *s;
  struct sockaddr_storage ss;
  int rc;
  if (host == NULL || port < 0 || port > 65535)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (s->state != ST_NEW)
    return CLTCP_ESTATE;
  rc = cltcp__socket_more(s);
  if (rc != 0)
    return rc;
  sock_x(s)->conn = calloc(1, sizeof(*sock_x(s)->conn));
  if (sock_x(s)->conn == NULL)
    return UV_ENOMEM;
  sock_conn(s)->port = port;
  sock_conn(s)->start = sock_now();
  if (cltcp__parse_addr(&ss, host, port) == 0) {
    rc = start_connect(s, (struct sockaddr *)&ss);
    if (rc != 0)
      cltcp__socket_fail_later(s, rc);
  } else {
    s->state = ST_RESOLVING;
    rc = cltcp__dns_start(&sock_conn(s)->dns, cltcp__handle_loop(&s->h),
                          host, CLTCP_AF_UNSPEC, dns_done, s);
    if (rc != 0) {
      s->state = ST_NEW;
      connecting_done(s);
      return rc;
    }
  }
  cltcp__socket_arm_timer(s);
  return 0;
}

/* ---- accepting (server.c) ------------------------------------------------ */

int cltcp__socket_accept(cltcp__loop *loop, int fd, cltcp_cb cb, uintptr_t ctx,
                         void (*announce)(void *arg, cltcp_id id), void *arg,
                         bool *made) {
  cltcp__socket *s;
  int rc = cltcp__socket_create(&s, loop, cb, ctx);
  *made = rc == 0;
  if (rc != 0) {
    close(fd);
    return rc;
  }
  rc = uv_tcp_open(&s->tcp, fd);
  if (rc != 0) {
    close(fd);
    cltcp__socket_destroy_unused(s);
    return rc;
  }
  s->state = ST_CONNECTED;
  s->accepted = true;
  announce(arg, s->h.id);
  /* The socket is still valid memory even if the announcement closed it
   * (its free waits for uv's close callback). */
  if (!s->h.closing)
    start_io(s);
  return 0;
}
