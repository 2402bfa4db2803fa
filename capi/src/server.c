/* server.c -- listening sockets.
 *
 * The accept path is the library's own rather than uv_listen()'s.  When
 * accept() fails with EMFILE or ENFILE, libuv 1.44 (uv__server_io) uses its
 * "emfile trick": it closes a descriptor it keeps in reserve, accepts every
 * pending connection and closes it at once, reopens the reserve and returns
 * without calling the connection callback.  The owner never hears of the
 * shortage and the clients are dropped unseen.  When the trick cannot help
 * (no reserve), or on ENOMEM/ENOBUFS, libuv calls the callback in a loop
 * that only ends when accept() stops failing.
 *
 * So the server's descriptor is bound by uv_tcp_bind() (address handling
 * stays libuv's), put in listening state here and watched with a uv_poll_t;
 * connections are accepted with accept4() and handed to uv_tcp_open().
 *
 * A shortage of descriptors or memory starts an episode: the server's
 * callback gets one CLTCP_EV_ERROR (UV_EMFILE, UV_ENFILE, UV_ENOBUFS or
 * UV_ENOMEM; any other failure that would repeat at once is treated the
 * same), the poll stops and a timer tries one accept() every
 * ACCEPT_RETRY_MS.  Pending connections wait in the kernel's backlog
 * meanwhile; nothing is dropped on purpose, nothing spins, and existing
 * connections are not affected.  The episode ends when an accept() succeeds
 * or finds the backlog empty (Linux takes the descriptor before it looks at
 * the backlog, so EAGAIN means a descriptor was free); the next shortage is
 * a new episode and is reported again.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4() */
#endif
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections accepted per readiness callback; the poll is level-triggered,
 * so more pending ones are taken on the next turn, after other handles had
 * theirs. */
#define ACCEPT_BATCH 128
/* Delay between accept() attempts while short of descriptors or memory. */
#define ACCEPT_RETRY_MS 100

typedef struct cltcp__server {
  cltcp__handle h;
  uv_tcp_t tcp;     /* owns the listening descriptor; never started */
  uv_poll_t poll;   /* readiness of that descriptor */
  uv_timer_t retry; /* paced retries during a shortage */
  bool failing;     /* inside a failure episode (already reported) */
  cltcp_cb sock_cb;
  uintptr_t sock_ctx;
} cltcp__server;

static void server_close(cltcp__server *sv, int status) {
  if (!cltcp__handle_begin_close(&sv->h, status))
    return;
  sv->h.pending_closes = 3;
  /* The poll goes first: it must stop watching the descriptor before the
   * tcp handle closes it. */
  uv_close((uv_handle_t *)&sv->poll, cltcp__handle_uv_closed);
  uv_close((uv_handle_t *)&sv->retry, cltcp__handle_uv_closed);
  uv_close((uv_handle_t *)&sv->tcp, cltcp__handle_uv_closed);
}

/* The port the server listens on (0 if unknown). */
static int server_port(cltcp__server *sv) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), port = 0;
  if (uv_tcp_getsockname(&sv->tcp, (struct sockaddr *)&ss, &len) != 0 ||
      cltcp__format_addr(NULL, 0, &port, NULL, (struct sockaddr *)&ss) != 0)
    return 0;
  return port;
}

static void server_teardown(cltcp__handle *h) {
  server_close((cltcp__server *)h, UV_ECANCELED);
}

static void server_info(cltcp__handle *h, cltcp_handle_info *info) {
  if (!h->closing)
    info->detail = server_port((cltcp__server *)h);
}

static unsigned server_uv_handles(cltcp__handle *h, uv_handle_t *out[]) {
  cltcp__server *sv = (cltcp__server *)h;
  out[0] = (uv_handle_t *)&sv->tcp;
  out[1] = (uv_handle_t *)&sv->poll;
  out[2] = (uv_handle_t *)&sv->retry;
  return 3;
}

static const cltcp__handle_kind server_kind = {
    server_teardown, NULL, server_info, NULL, server_uv_handles};

/* Closing a server nobody knows (listen failed): no event. */
static void unused_closed(uv_handle_t *uvh) {
  cltcp__server *sv = uvh->data;
  if (--sv->h.pending_closes == 0)
    free(sv);
}

/* Failures of one pending connection, which accept() consumes (see Linux's
 * accept(2)): reported, and the next connection is taken. */
static bool is_connection_error(int err) {
  return err == UV_EPERM || err == UV_EPROTO || err == UV_ENETDOWN ||
         err == UV_ENETUNREACH || err == UV_EHOSTDOWN ||
         err == UV_EHOSTUNREACH || err == UV_ENONET || err == UV_ENOPROTOOPT ||
         err == UV_ENOTSUP;
}

/* One accept(): a non-blocking, close-on-exec descriptor or a negative
 * code. */
static int accept_one(int lfd) {
  int fd;
  do {
#ifdef __linux__
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    fd = accept(lfd, NULL, NULL);
    if (fd >= 0 && (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) !=
                        0)) {
      int e = errno;
      close(fd);
      errno = e;
      fd = -1;
    }
#endif
  } while (fd < 0 && errno == EINTR);
  return fd >= 0 ? fd : uv_translate_sys_error(errno);
}

static void accept_some(cltcp__server *sv);

static void retry_cb(uv_timer_t *t) {
  cltcp__server *sv = t->data;
  if (!sv->h.closing)
    accept_some(sv);
}

/* Stops watching and retries later: for a shortage (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM) and any failure that would repeat at once if retried
 * now.  The first failure of an episode is reported; the callback may close
 * the server. */
static void pause_accepting(cltcp__server *sv, int err) {
  uv_poll_stop(&sv->poll);
  uv_timer_start(&sv->retry, retry_cb, ACCEPT_RETRY_MS, 0);
  if (sv->failing)
    return;
  sv->failing = true;
  sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ERROR, err, 0, NULL, 0);
}

static void poll_cb(uv_poll_t *p, int status, int events) {
  cltcp__server *sv = p->data;
  (void)events;
  if (sv->h.closing)
    return;
  if (status < 0) {
    /* libuv stopped the poll. */
    pause_accepting(sv, status);
    return;
  }
  accept_some(sv);
}

/* The ACCEPT event for a socket just made (cltcp__socket_accept()). */
static void announce(void *arg, cltcp_id sock) {
  cltcp__server *sv = arg;
  sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ACCEPT, 0, sock, NULL, 0);
}

/* Accepts up to ACCEPT_BATCH connections, each announced by an ACCEPT
 * event, then watches for more unless accepting had to pause. */
static void accept_some(cltcp__server *sv) {
  int lfd, i;
  if (uv_fileno((uv_handle_t *)&sv->tcp, &lfd) != 0)
    return;
  for (i = 0; i < ACCEPT_BATCH && !sv->h.closing; i++) {
    bool made;
    int fd = accept_one(lfd), rc;
    if (fd == UV_EAGAIN) { /* (EWOULDBLOCK is EAGAIN on Linux) */
      sv->failing = false;
      break;
    }
    if (fd == UV_ECONNABORTED)
      continue; /* the client gave up; nothing to tell */
    if (fd < 0 && is_connection_error(fd)) {
      sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ERROR, fd, 0, NULL, 0);
      continue;
    }
    if (fd < 0) {
      pause_accepting(sv, fd);
      return;
    }
    sv->failing = false;
    rc = cltcp__socket_accept(cltcp__handle_loop(&sv->h), fd, sv->sock_cb,
                              sv->sock_ctx, announce, sv, &made);
    if (rc != 0 && !made) {
      pause_accepting(sv, rc);
      return;
    }
    if (rc != 0)
      sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ERROR, rc, 0, NULL, 0);
  }
  if (!sv->h.closing && !uv_is_active((uv_handle_t *)&sv->poll))
    uv_poll_start(&sv->poll, UV_READABLE, poll_cb);
}

/* Puts the bound descriptor in listening state and prepares the poll.
 * Returns 0 or a negative code. */
static int server_start(cltcp__server *sv, int backlog) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), fd, rc, port = 0;
  /* uv_tcp_bind() keeps EADDRINUSE for uv_listen() and returns 0; an
   * unbound socket has port 0 while a bound one never has. */
  rc = uv_tcp_getsockname(&sv->tcp, (struct sockaddr *)&ss, &len);
  if (rc != 0)
    return rc;
  rc = cltcp__format_addr(NULL, 0, &port, NULL, (struct sockaddr *)&ss);
  if (rc != 0)
    return rc;
  if (port == 0)
    return UV_EADDRINUSE;
  rc = uv_fileno((uv_handle_t *)&sv->tcp, &fd);
  if (rc != 0)
    return rc;
  if (listen(fd, backlog < 0 ? SOMAXCONN : backlog) != 0)
    return uv_translate_sys_error(errno);
  rc = uv_poll_init_socket(sv->tcp.loop, &sv->poll, fd);
  if (rc != 0)
    return rc;
  sv->poll.data = sv;
  return 0;
}

/* SO_REUSEPORT must be set before bind(2), so a server with it gets its
 * socket at once (uv_tcp_init_ex with the address family) rather than from
 * uv_tcp_bind. */
static int set_reuseport(uv_tcp_t *tcp) {
#ifdef SO_REUSEPORT
  uv_os_fd_t fd;
  int one = 1;
  int rc = uv_fileno((uv_handle_t *)tcp, &fd);
  if (rc == 0 &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
    rc = uv_translate_sys_error(errno);
  return rc;
#else
  (void)tcp;
  return UV_ENOTSUP;
#endif
}

int cltcp_server_listen(cltcp_id *out, cltcp_id loop_id, const char *host,
                        int port, int backlog, cltcp_cb server_cb,
                        uintptr_t server_ctx, cltcp_cb sock_cb,
                        uintptr_t sock_ctx) {
  return cltcp_server_listen_ex(out, loop_id, host, port, backlog, 0,
                                server_cb, server_ctx, sock_cb, sock_ctx);
}

int cltcp_server_listen_ex(cltcp_id *out, cltcp_id loop_id, const char *host,
                           int port, int backlog, int flags,
                           cltcp_cb server_cb, uintptr_t server_ctx,
                           cltcp_cb sock_cb, uintptr_t sock_ctx) {
  cltcp__loop *loop;
  cltcp__server *sv;
  struct sockaddr_storage ss;
  int rc;
  if (out == NULL || server_cb == NULL || sock_cb == NULL || port < 0 ||
      port > 65535 || (flags & ~CLTCP_LISTEN_REUSEPORT) != 0)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  if (host == NULL || *host == '\0')
    host = "0.0.0.0";
  rc = cltcp__parse_addr(&ss, host, port);
  if (rc != 0) {
    /* Not numeric: a name from /etc/hosts ("localhost"). */
    cltcp_addr a;
    size_t n = 0;
    rc = cltcp__dns_hosts(&a, 1, &n, loop, host, CLTCP_AF_UNSPEC);
    if (rc != 0)
      return rc == CLTCP_EBADNAME ? UV_EINVAL : rc;
    if (n == 0)
      return CLTCP_ENOTFOUND;
    rc = cltcp__parse_addr(&ss, a.addr, port);
    if (rc != 0)
      return rc;
  }
  sv = calloc(1, sizeof(*sv));
  if (sv == NULL)
    return UV_ENOMEM;
  if (flags & CLTCP_LISTEN_REUSEPORT)
    rc = uv_tcp_init_ex(&loop->uv, &sv->tcp, ss.ss_family);
  else
    rc = uv_tcp_init(&loop->uv, &sv->tcp);
  if (rc != 0) {
    free(sv);
    return rc;
  }
  sv->tcp.data = sv;
  uv_timer_init(&loop->uv, &sv->retry);
  sv->retry.data = sv;
  sv->h.pending_closes = 2;
  if (flags & CLTCP_LISTEN_REUSEPORT)
    rc = set_reuseport(&sv->tcp);
  if (rc == 0)
    rc = uv_tcp_bind(&sv->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = server_start(sv, backlog);
  if (rc == 0) {
    sv->h.pending_closes = 3;
    rc = cltcp__id_alloc(&sv->h.id, loop, CLTCP_KIND_SERVER, sv);
  }
  if (rc == 0)
    rc = uv_poll_start(&sv->poll, UV_READABLE, poll_cb);
  if (rc != 0) {
    /* Nobody knows this server: close it without any event.  The memory
     * is freed by the close callbacks, on a later turn. */
    if (sv->h.id != 0)
      cltcp__id_free(loop, sv->h.id);
    if (sv->h.pending_closes == 3)
      uv_close((uv_handle_t *)&sv->poll, unused_closed);
    uv_close((uv_handle_t *)&sv->retry, unused_closed);
    uv_close((uv_handle_t *)&sv->tcp, unused_closed);
    return rc;
  }
  cltcp__handle_init(&sv->h, CLTCP_KIND_SERVER, &server_kind, server_cb,
                     server_ctx);
  sv->sock_cb = sock_cb;
  sv->sock_ctx = sock_ctx;
  cltcp__handle_link(&sv->h);
  *out = sv->h.id;
  return 0;
}

int cltcp_server_address(char *buf, size_t buflen, int *port, int *family,
                         cltcp_id id) {
  cltcp__handle *h;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  int rc = cltcp__handle_lookup(&h, id, CLTCP_KIND_SERVER, false);
  if (rc != 0)
    return rc;
  rc = uv_tcp_getsockname(&((cltcp__server *)h)->tcp, (struct sockaddr *)&ss,
                          &len);
  if (rc != 0)
    return rc;
  return cltcp__format_addr(buf, buflen, port, family,
                            (struct sockaddr *)&ss);
}

int cltcp_server_port(int *port, cltcp_id id) {
  if (port == NULL)
    return UV_EINVAL;
  return cltcp_server_address(NULL, 0, port, NULL, id);
}

int cltcp_server_close(cltcp_id id) {
  cltcp__handle *h;
  int rc = cltcp__handle_lookup(&h, id, CLTCP_KIND_SERVER, false);
  if (rc != 0)
    return rc;
  server_close((cltcp__server *)h, 0);
  return 0;
}
