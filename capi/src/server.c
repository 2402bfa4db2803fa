/* server.c -- listening sockets. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct cltcp__server {
  cltcp__handle h;
  uv_tcp_t tcp;
  cltcp_cb sock_cb;
  uintptr_t sock_ctx;
} cltcp__server;

static void server_closed(uv_handle_t *uvh) {
  cltcp__server *sv = uvh->data;
  cltcp__loop *loop = sv->h.loop;
  sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_CLOSE, sv->h.close_status, 0, NULL,
           0);
  cltcp__id_free(loop, sv->h.id);
  cltcp__handle_unlink(loop, &sv->h);
  free(sv);
}

static void server_close(cltcp__server *sv, int status) {
  if (sv->h.closing)
    return;
  sv->h.closing = true;
  sv->h.close_status = status;
  uv_close((uv_handle_t *)&sv->tcp, server_closed);
}

static void unused_closed(uv_handle_t *uvh) { free(uvh->data); }

static void on_connection(uv_stream_t *stream, int status) {
  cltcp__server *sv = stream->data;
  cltcp__socket *s;
  int rc;
  if (sv->h.closing)
    return;
  if (status < 0) {
    sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ERROR, status, 0, NULL, 0);
    return;
  }
  rc = cltcp__socket_create(&s, sv->h.loop, sv->sock_cb, sv->sock_ctx);
  if (rc != 0) {
    sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ERROR, rc, 0, NULL, 0);
    return;
  }
  rc = uv_accept(stream, cltcp__socket_stream(s));
  if (rc != 0) {
    cltcp__socket_destroy_unused(s);
    sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ERROR, rc, 0, NULL, 0);
    return;
  }
  cltcp__socket_accepted(s);
  sv->h.cb(sv->h.ctx, sv->h.id, CLTCP_EV_ACCEPT, 0, cltcp__socket_id(s), NULL,
           0);
  /* The socket is still valid memory even if the callback closed it (its
   * free waits for uv's close callback); start() checks that. */
  cltcp__socket_start(s);
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
  if (flags & CLTCP_LISTEN_REUSEPORT)
    rc = set_reuseport(&sv->tcp);
  if (rc == 0)
    rc = uv_tcp_bind(&sv->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&sv->tcp, backlog < 0 ? SOMAXCONN : backlog,
                   on_connection);
  if (rc == 0)
    rc = cltcp__id_alloc(&sv->h.id, loop, CLTCP_KIND_SERVER, sv);
  if (rc != 0) {
    /* Nobody knows this server: close it without any event.  The memory
     * is freed by the close callback, on a later turn. */
    uv_close((uv_handle_t *)&sv->tcp, unused_closed);
    return rc;
  }
  sv->h.loop = loop;
  sv->h.kind = CLTCP_KIND_SERVER;
  sv->h.cb = server_cb;
  sv->h.ctx = server_ctx;
  sv->sock_cb = sock_cb;
  sv->sock_ctx = sock_ctx;
  sv->h.uvh[0] = (uv_handle_t *)&sv->tcp;
  cltcp__handle_link(loop, &sv->h);
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

int cltcp__server_port(cltcp__handle *h) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), port = 0;
  if (uv_tcp_getsockname(&((cltcp__server *)h)->tcp, (struct sockaddr *)&ss,
                         &len) != 0 ||
      cltcp__format_addr(NULL, 0, &port, NULL, (struct sockaddr *)&ss) != 0)
    return 0;
  return port;
}

void cltcp__server_teardown(cltcp__handle *h) {
  server_close((cltcp__server *)h, UV_ECANCELED);
}
