/* tcp.c -- a TCP socket's life: creation, options, the close tail,
 * timeouts, teardown and recovery (see socket.h for the other socket
 * files). */
#include "socket.h"

#include <stdlib.h>
#include <string.h>

static void socket_teardown(cltcp__handle *h);
static void socket_recover(cltcp__handle *h);
static void socket_info(cltcp__handle *h, cltcp_handle_info *info);
static void socket_destroy(cltcp__handle *h);
static unsigned socket_uv_handles(cltcp__handle *h, uv_handle_t *out[]);

static const cltcp__handle_kind socket_kind = {
    socket_teardown, socket_recover, socket_info, socket_destroy,
    socket_uv_handles};

/* ---- creation ------------------------------------------------------------ */

int cltcp__socket_create(cltcp__socket **out, cltcp__loop *loop, cltcp_cb cb,
                         uintptr_t ctx) {
  cltcp__socket *s;
  int rc = cltcp__handle_new((cltcp__handle **)&s, sizeof(*s), loop,
                             CLTCP_KIND_SOCKET, &socket_kind, cb, ctx);
  if (rc != 0)
    return rc;
  s->read_enabled = s->write_enabled = true;
  s->drain_mark = SOCK_DRAIN_NONE;
  uv_tcp_init(&loop->uv, &s->tcp);
  s->tcp.data = NULL; /* no `more' part yet */
  cltcp__handle_link(&s->h);
  *out = s;
  return 0;
}

/* The kind's destroy: the socket's memory, after its CLOSE event. */
static void socket_destroy(cltcp__handle *h) {
  cltcp__socket *s = (cltcp__socket *)h;
  cltcp__sock_more *x = sock_x(s);
  if (s->w != NULL) {
    free(s->w->wq);
    free(s->w->wf);
    free(s->w->marks);
    free(s->w);
  }
  if (x != NULL) {
    if (x->keep != NULL) {
      free(x->keep->kbuf);
      free(x->keep);
    }
    if (x->conn != NULL) {
      free(x->conn->addrs);
      free(x->conn);
    }
    free(x->tmo);
    free(x->sreq);
    free(x);
  }
  free(s);
}

int cltcp__socket_more(cltcp__socket *s) {
  if (sock_x(s) == NULL) {
    cltcp__sock_more *x = calloc(1, sizeof(*x));
    if (x == NULL)
      return UV_ENOMEM;
    s->tcp.data = x;
  }
  return 0;
}

void cltcp__socket_more_trim(cltcp__socket *s) {
  cltcp__sock_more *x = sock_x(s);
  if (x == NULL || x->tmo != NULL || x->conn != NULL || x->keep != NULL ||
      x->sreq != NULL || x->dfr_error != 0 || s->drain_mark == SOCK_DRAIN_BIG ||
      s->state != ST_CONNECTED)
    return;
  free(x);
  s->tcp.data = NULL;
}

int cltcp__socket_timeouts(cltcp__socket *s) {
  cltcp__sock_timeouts *t;
  uint64_t n;
  if (sock_tmo(s) != NULL)
    return 0;
  if (cltcp__socket_more(s) != 0)
    return UV_ENOMEM;
  t = calloc(1, sizeof(*t));
  if (t == NULL)
    return UV_ENOMEM;
  uv_timer_init(&cltcp__handle_loop(&s->h)->uv, &t->timer);
  t->timer.data = s;
  n = sock_now();
  t->last_read = t->last_write = n;
  t->last_queued = sock_queued(s);
  sock_x(s)->tmo = t;
  cltcp__handle_apply_ref(&s->h);
  return 0;
}

static void unused_closed(uv_handle_t *h) {
  cltcp__socket *s = sock_of_tcp(h);
  if (--s->h.pending_closes > 0)
    return;
  cltcp__id_free(cltcp__handle_loop(&s->h), s->h.id);
  cltcp__handle_unlink(&s->h);
  socket_destroy(&s->h);
}

void cltcp__socket_destroy_unused(cltcp__socket *s) {
  s->uv_closed = true;
  s->h.closing = true;
  s->h.pending_closes = 1;
  uv_close((uv_handle_t *)&s->tcp, unused_closed);
}

/* ---- close ------------------------------------------------------------ */

void cltcp__socket_fail(cltcp__socket *s, int err) {
  if (s->h.closing) {
    cltcp__socket_close_now(s, err);
    return;
  }
  sock_emit(s, CLTCP_EV_ERROR, err, NULL, 0);
  cltcp__socket_close_now(s, 0);
}

void cltcp__socket_uv_closed(uv_handle_t *uvh) {
  /* the tcp handle, or the timer (whose `data' is the socket) */
  cltcp__socket *s = uvh->type == UV_TCP ? sock_of_tcp(uvh) : uvh->data;
  if (--s->h.pending_closes > 0)
    return;
  /* NOTIFY writes whose bytes never left were cancelled by the close:
   * like libuv's pending writes, each completes with UV_ECANCELED before
   * the handle's last event. */
  while (s->w != NULL && s->w->marks_len > 0) {
    s->w->marks_len--;
    sock_emit(s, CLTCP_EV_FLUSHED, UV_ECANCELED, NULL, 0);
  }
  /* The id is still valid here, so keep-mode bytes can be read during the
   * CLOSE event; it dies right after. */
  cltcp__handle_finish(&s->h);
}

void cltcp__socket_close_now(cltcp__socket *s, int status) {
  if (s->uv_closed)
    return;
  s->uv_closed = true;
  if (!s->h.closing) {
    s->h.closing = true;
    s->h.close_status = status;
  } else if (status != 0 && s->h.close_status == 0) {
    s->h.close_status = status;
  }
  s->dfr_queued = false; /* the queued items are skipped */
  s->fq_queued = false;
  if (sock_conn(s) != NULL && sock_conn(s)->dns != NULL) {
    cltcp__dns_abort(sock_conn(s)->dns);
    sock_conn(s)->dns = NULL;
  }
  s->h.pending_closes = 0;
  if (sock_tmo(s) != NULL) {
    s->h.pending_closes++;
    uv_close((uv_handle_t *)&sock_tmo(s)->timer, cltcp__socket_uv_closed);
  }
  /* Between two connect attempts the tcp handle is already closing; its
   * close callback (reopen_cb) counts itself. */
  s->h.pending_closes++;
  if (!s->tcp_reopening)
    uv_close((uv_handle_t *)&s->tcp, cltcp__socket_uv_closed);
}

void cltcp__socket_close_flush(cltcp__socket *s) {
  sock_read_stop(s);
  /* Bytes written before the connection completes are sent once it does
   * (connected() flushes them and the write completion closes). */
  if (s->state == ST_NEW ||
      (s->state == ST_CONNECTED && sock_queued(s) == 0 &&
       sock_idle_writer(s)) ||
      (s->state != ST_CONNECTED && sock_collected(s) == 0)) {
    cltcp__socket_close_now(s, s->h.close_status);
    return;
  }
  s->flush_close = true;
  cltcp__socket_arm_timer(s);
}

/* ---- timeouts ------------------------------------------------------------ */

static void socket_timer_cb(uv_timer_t *timer) {
  cltcp__socket *s = timer->data;
  cltcp__sock_timeouts *t = sock_tmo(s);
  uint64_t n = sock_now_floor();
  size_t q;
  t->timer_due = 0;
  if (s->uv_closed)
    return;
  if ((s->state == ST_RESOLVING || s->state == ST_CONNECTING) &&
      t->connect_to != 0 && sock_conn(s) != NULL &&
      n >= sock_conn(s)->start + t->connect_to) {
    cltcp__socket_fail(s, UV_ETIMEDOUT);
    return;
  }
  if (s->state == ST_CONNECTED) {
    /* libuv reports no partial progress of a write; compare queue sizes. */
    q = sock_queued(s);
    if (q < t->last_queued)
      t->last_write = sock_now();
    t->last_queued = q;
    if (t->write_to != 0 && s->write_enabled && q > 0 &&
        n >= t->last_write + t->write_to) {
      cltcp__socket_fail(s, UV_ETIMEDOUT);
      return;
    }
    if (t->read_to != 0 && s->read_enabled && !s->eof && !s->h.closing &&
        n >= t->last_read + t->read_to) {
      cltcp__socket_fail(s, UV_ETIMEDOUT);
      return;
    }
  }
  cltcp__socket_arm_timer(s);
}

/* Arms the timer for the earliest deadline.  Reads only move last_read:
 * the timer fires at the old deadline and re-arms itself, so a busy socket
 * costs no timer operation per read.  A socket without timeouts has no
 * timer. */
void cltcp__socket_arm_timer(cltcp__socket *s) {
  cltcp__sock_timeouts *t = sock_tmo(s);
  uint64_t due = 0, d, n;
  if (s->uv_closed || t == NULL)
    return;
  if ((s->state == ST_RESOLVING || s->state == ST_CONNECTING) &&
      t->connect_to != 0 && sock_conn(s) != NULL)
    due = sock_conn(s)->start + t->connect_to;
  if (s->state == ST_CONNECTED) {
    if (t->read_to != 0 && s->read_enabled && !s->eof && !s->h.closing) {
      d = t->last_read + t->read_to;
      if (due == 0 || d < due)
        due = d;
    }
    if (t->write_to != 0 && s->write_enabled && sock_queued(s) > 0) {
      d = t->last_write + t->write_to;
      if (due == 0 || d < due)
        due = d;
    }
  }
  if (due == 0) {
    if (t->timer_due != 0) {
      uv_timer_stop(&t->timer);
      t->timer_due = 0;
    }
    return;
  }
  if (t->timer_due != 0 && t->timer_due <= due)
    return; /* fires early enough; it re-arms itself */
  /* The uv timer only wakes socket_timer_cb, which checks the deadline on the
   * precise clock itself (and re-arms if it is not reached); the loop time
   * the wait counts from is made fresh first.  That time never runs ahead
   * of the precise clock, so the wait is never shorter than what is left. */
  uv_update_time(&cltcp__handle_loop(&s->h)->uv);
  n = uv_now(&cltcp__handle_loop(&s->h)->uv);
  uv_timer_start(&t->timer, socket_timer_cb, due > n ? due - n : 1, 0);
  t->timer_due = due;
}

void cltcp__socket_rearm_timer(cltcp__socket *s) {
  if (sock_tmo(s) != NULL && sock_tmo(s)->timer_due) {
    uv_timer_stop(&sock_tmo(s)->timer);
    sock_tmo(s)->timer_due = 0;
  }
  cltcp__socket_arm_timer(s);
}

/* ---- the kind's functions (handle.c calls them) -------------------------- */

static void socket_teardown(cltcp__handle *h) {
  cltcp__socket_close_now((cltcp__socket *)h, UV_ECANCELED);
}

/* cltcp_loop_recover(): unlink the socket's I/O watcher from a pending list
 * whose head was on an abandoned stack frame. */
static void socket_recover(cltcp__handle *h) {
  cltcp__socket *s = (cltcp__socket *)h;
  void **w = s->tcp.io_watcher.pending_queue;
  void **head = cltcp__handle_loop(&s->h)->uv.pending_queue;
  void **q;
  if (w[0] == (void *)w)
    return; /* not pending */
  for (q = head[0]; q != head; q = q[0])
    if (q == w)
      return; /* on the loop's own list */
  /* Left on the list of an abandoned uv__run_pending(): its neighbours
   * include that dead frame's list head.  Closing the handle unlinks it,
   * so make it a list of its own first.  (The loop only tears down now.) */
  w[0] = w[1] = (void *)w;
}

/* The tcp handle, and the timer once the socket has timeouts. */
static unsigned socket_uv_handles(cltcp__handle *h, uv_handle_t *out[]) {
  cltcp__socket *s = (cltcp__socket *)h;
  out[0] = (uv_handle_t *)&s->tcp;
  if (sock_tmo(s) == NULL)
    return 1;
  out[1] = (uv_handle_t *)&sock_tmo(s)->timer;
  return 2;
}

/* cltcp_loop_handles(): the socket's CLTCP_STATE_* (handle.c puts
 * CLOSING over it), and whether a server made it. */
static void socket_info(cltcp__handle *h, cltcp_handle_info *info) {
  static const int map[] = {CLTCP_STATE_NEW, CLTCP_STATE_RESOLVING,
                            CLTCP_STATE_CONNECTING, CLTCP_STATE_CONNECTED};
  cltcp__socket *s = (cltcp__socket *)h;
  info->state = map[s->state];
  if (s->accepted)
    info->flags |= CLTCP_INFO_ACCEPTED;
}

/* ---- public API -------------------------------------------------------- */

int cltcp_socket_new(cltcp_id *out, cltcp_id loop_id, cltcp_cb cb,
                     uintptr_t ctx) {
  cltcp__loop *loop;
  cltcp__socket *s;
  int rc;
  if (out == NULL || cb == NULL)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  rc = cltcp__socket_create(&s, loop, cb, ctx);
  if (rc != 0)
    return rc;
  *out = s->h.id;
  return 0;
}

int cltcp_socket_set_cb(cltcp_id id, cltcp_cb cb, uintptr_t ctx) {
  cltcp__socket *s;
  int rc;
  if (cb == NULL)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  s->h.cb = cb;
  s->h.ctx = ctx;
  return 0;
}

int cltcp_socket_set_timeouts(cltcp_id id, double read_seconds,
                              double write_seconds) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  {
    uint64_t r = cltcp__seconds_to_ms(read_seconds);
    uint64_t w = cltcp__seconds_to_ms(write_seconds);
    if (sock_tmo(s) == NULL && r == 0 && w == 0)
      return 0; /* none set, none asked: nothing to make */
    rc = cltcp__socket_timeouts(s);
    if (rc != 0)
      return rc;
    sock_tmo(s)->read_to = r;
    sock_tmo(s)->write_to = w;
  }
  /* A new timeout counts from now, not from an old activity. */
  if (s->state == ST_CONNECTED) {
    uint64_t n = sock_now();
    sock_tmo(s)->last_read = n;
    sock_tmo(s)->last_write = n;
  }
  cltcp__socket_rearm_timer(s);
  return 0;
}

int cltcp_socket_set_connect_timeout(cltcp_id id, double seconds) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  {
    uint64_t c = cltcp__seconds_to_ms(seconds);
    if (sock_tmo(s) == NULL && c == 0)
      return 0;
    rc = cltcp__socket_timeouts(s);
    if (rc != 0)
      return rc;
    sock_tmo(s)->connect_to = c;
  }
  cltcp__socket_rearm_timer(s);
  return 0;
}

int cltcp_socket_send_count(uint64_t *n, cltcp_id id) {
  cltcp__socket *s;
  int rc;
  if (n == NULL)
    return UV_EINVAL;
  rc = sock_get_closing(&s, id);
  if (rc != 0)
    return rc;
  *n = s->sends;
  return 0;
}

void cltcp__socket_apply_options(cltcp__socket *s) {
  if (s->nodelay)
    uv_tcp_nodelay(&s->tcp, 1);
  if (s->keepalive)
    uv_tcp_keepalive(&s->tcp, 1,
                     sock_x(s) != NULL ? sock_x(s)->keepalive_delay : 1);
}

int cltcp_socket_nodelay(cltcp_id id, int enable) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  s->nodelay = enable != 0;
  return uv_tcp_nodelay(&s->tcp, enable != 0);
}

int cltcp_socket_keepalive(cltcp_id id, int enable, unsigned delay) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (enable && delay == 0)
    delay = 1;
  /* The delay is kept only for a socket that is not connected yet:
   * cltcp__socket_apply_options() applies it at the connection. */
  if (enable && s->state != ST_CONNECTED) {
    rc = cltcp__socket_more(s);
    if (rc != 0)
      return rc;
    sock_x(s)->keepalive_delay = delay;
  }
  s->keepalive = enable != 0;
  return uv_tcp_keepalive(&s->tcp, enable != 0, delay);
}

int cltcp_socket_address(char *buf, size_t buflen, int *port, int *family,
                         cltcp_id id, int which) {
  cltcp__socket *s;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  int rc;
  if (which != 0 && which != 1)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (s->state != ST_CONNECTED)
    return UV_ENOTCONN;
  rc = which == 0 ? uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len)
                  : uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len);
  if (rc != 0)
    return rc;
  return cltcp__format_addr(buf, buflen, port, family,
                            (struct sockaddr *)&ss);
}
