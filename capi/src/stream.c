/* stream.c -- a socket's bytes: reading (drain and keep modes, the keep
 * buffer), the write queue with end-of-turn coalescing, FLUSHED and DRAIN,
 * half-close, and the two close modes (see socket.h). */
#include "socket.h"

#include <stdlib.h>
#include <string.h>

#define KEEP_MIN_FREE (64 * 1024)

/* The most bytes handed to the kernel in one uv_write or uv_try_write.
 * libuv takes a buffer length as `unsigned' and reports uv_try_write's count
 * as an int, so a larger queue (over 4 GiB) goes out in chunks of this size.
 * A test build sets CLTCP_TEST_MAX_CHUNK to a small value so that the
 * splitting is exercised with megabytes, not gigabytes. */
#ifdef CLTCP_TEST_MAX_CHUNK
#define MAX_CHUNK ((size_t)(CLTCP_TEST_MAX_CHUNK))
#else
#define MAX_CHUNK ((size_t)1 << 30)
#endif

/* A write larger than this, made while nothing is collected for the end of
 * the turn, is handed to the kernel at once; smaller ones are collected and
 * leave together at the end of the turn.  Collecting costs a copy of every
 * byte, and saves a system call and the kernel's work per send, which for
 * TCP is far from all per byte: a stream echo writing 64 KiB pieces (four
 * per 256 KiB read) used a fifth less CPU per GiB when its pieces left as
 * one send, the copy included (bench/ab-echo, issue 12).  Above 64 KiB --
 * the read chunks of a drain-mode echo, up to 256 KiB -- the copy is no
 * longer repaid: such a write goes straight from the caller's buffer. */
#define COALESCE_MAX ((size_t)64 * 1024)

static void emit_flushed(cltcp__socket *s);
static void writer_release(cltcp__socket *s);
static int append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *d,
                  size_t n);
static bool send_collected(cltcp__socket *s);
static void turn_end_run(void *obj);

/* ---- deferred events ------------------------------------------------- */

static void deferred_run(void *obj) {
  cltcp__socket *s = obj;
  if (!s->dfr_queued)
    return; /* cancelled by the close */
  s->dfr_queued = false;
  if (s->h.closing)
    return;
  if (sock_x(s) != NULL && sock_x(s)->dfr_error != 0) {
    int err = sock_x(s)->dfr_error;
    sock_x(s)->dfr_error = 0;
    sock_emit(s, CLTCP_EV_ERROR, err, NULL, 0);
    cltcp__socket_close_now(s, 0);
    return;
  }
  if (s->dfr_flushed) {
    s->dfr_flushed = false;
    emit_flushed(s);
  }
}

/* Queues deferred_run() for the next turn, once.  Returns 0 or UV_ENOMEM
 * (no queue item could be had). */
static int sock_defer(cltcp__socket *s) {
  int rc;
  if (s->dfr_queued)
    return 0;
  rc = cltcp__defer_id(cltcp__handle_loop(&s->h), s->h.id, deferred_run);
  if (rc == 0)
    s->dfr_queued = true;
  return rc;
}

/* Delivers, in order, one FLUSHED for each NOTIFY write whose bytes (and
 * everything before them) have left, stopping if the owner closes the
 * socket from one of them.  Every path on which bytes left or marks came
 * due ends here, so this is where an idle writer is given back. */
static void emit_flushed(cltcp__socket *s) {
  cltcp__sock_writer *w;
  while ((w = s->w) != NULL && w->marks_len > 0 && !s->uv_closed &&
         w->marks[w->marks_head] <= w->sent) {
    w->marks_head = (w->marks_head + 1) % w->marks_cap;
    w->marks_len--;
    sock_emit(s, CLTCP_EV_FLUSHED, 0, NULL, 0);
  }
  writer_release(s);
}

/* The socket's writer, taken on first use: a spare of the loop, or a new
 * one. */
static int writer_get(cltcp__sock_writer **out, cltcp__socket *s) {
  if (s->w == NULL) {
    cltcp__loop *loop = cltcp__handle_loop(&s->h);
    cltcp__sock_writer *w;
    if (loop->nwriter_spare > 0) {
      /* writer_release() put it away empty: no buffer, no mark, nothing
       * in flight; only its counts start again (not a memset of the
       * whole part, uv_write_t included, on every response). */
      w = loop->writer_spare[--loop->nwriter_spare];
      w->written = w->sent = 0;
    } else {
      w = calloc(1, sizeof(*w));
      if (w == NULL)
        return UV_ENOMEM;
    }
    w->wreq.data = s;
    s->w = w;
  }
  *out = s->w;
  return 0;
}

/* Remembers that a FLUSHED is owed once `sent' reaches what is written now
 * plus len. */
static int push_mark(cltcp__socket *s, size_t len) {
  cltcp__sock_writer *w;
  uint64_t due;
  int rc = writer_get(&w, s);
  if (rc != 0)
    return rc;
  due = w->written + len;
  if (w->marks_len == w->marks_cap) {
    size_t cap = w->marks_cap ? w->marks_cap * 2 : 8, i;
    uint64_t *nm = malloc(cap * sizeof(*nm));
    if (nm == NULL) {
      writer_release(s);
      return UV_ENOMEM;
    }
    for (i = 0; i < w->marks_len; i++)
      nm[i] = w->marks[(w->marks_head + i) % w->marks_cap];
    free(w->marks);
    w->marks = nm;
    w->marks_cap = cap;
    w->marks_head = 0;
  }
  w->marks[(w->marks_head + w->marks_len) % w->marks_cap] = due;
  w->marks_len++;
  return 0;
}

void cltcp__socket_fail_later(cltcp__socket *s, int err) {
  /* Out of memory for the error's place or a queue item: the socket
   * closes without the ERROR event, its CLOSE carrying the error (never
   * from inside the call: CLOSE follows uv's close callbacks). */
  if (cltcp__socket_more(s) != 0) {
    cltcp__socket_close_now(s, err);
    return;
  }
  if (sock_x(s)->dfr_error == 0)
    sock_x(s)->dfr_error = err;
  if (sock_defer(s) != 0)
    cltcp__socket_close_now(s, err);
}

/* ---- reading ----------------------------------------------------------- */

/* Gives back the keep part (and the rare part, if nothing else needs it):
 * nothing is kept any more. */
static void keep_free(cltcp__socket *s) {
  cltcp__sock_keep *k = sock_keep(s);
  if (k == NULL)
    return;
  free(k->kbuf);
  free(k);
  sock_x(s)->keep = NULL;
  cltcp__socket_more_trim(s);
}

/* Keeps `len' bytes a DATA callback left unread, after those kept already.
 * Returns 0 or UV_ENOMEM. */
static int keep_append(cltcp__socket *s, const uint8_t *data, size_t len) {
  cltcp__sock_keep *k = sock_keep(s);
  if (k == NULL) {
    if (cltcp__socket_more(s) != 0)
      return UV_ENOMEM;
    k = calloc(1, sizeof(*k));
    if (k == NULL)
      return UV_ENOMEM;
    sock_x(s)->keep = k;
  }
  return append(&k->kbuf, &k->kend, &k->kcap, data, len);
}

void cltcp__keep_recover(cltcp__loop *loop) {
  cltcp__socket *s = loop->kb_sock;
  const uint8_t *rest = loop->kb_ptr;
  size_t left = loop->kb_len;
  loop->kb_sock = NULL;
  loop->kb_ptr = NULL;
  loop->kb_len = 0;
  /* Readable until its CLOSE, as after a callback that returned.  Without
   * memory for them they are dropped: the loop is being torn down, and no
   * event may be delivered from here. */
  if (s != NULL && left > 0)
    (void)keep_append(s, rest, left);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  cltcp__socket *s = sock_of_tcp(h);
  cltcp__sock_keep *k;
  (void)hint;
  k = s->mode == CLTCP_READ_DRAIN ? NULL : sock_keep(s);
  if (k == NULL || k->kstart == k->kend) {
    /* Drain mode, or nothing kept: read into the loop's shared buffer.  A
     * keep-mode reader that takes everything during the DATA callback (the
     * usual case) then costs no per-socket memory and one copy in all; only
     * what it leaves is copied into a keep buffer.  An idle keep-mode
     * socket holds none. */
    if (k != NULL)
      keep_free(s);
    buf->base = (char *)cltcp__handle_loop(&s->h)->readbuf;
    buf->len = cltcp__handle_loop(&s->h)->readbuf_len;
    return;
  }
  if (k->kcap - k->kend < KEEP_MIN_FREE) {
    size_t used = k->kend - k->kstart;
    if (k->kstart > 0 && k->kcap - used >= KEEP_MIN_FREE &&
        k->kstart >= used) {
      /* Compact only when the live bytes are at most as many as the
       * consumed ones, so each byte moves O(1) times on average. */
      memmove(k->kbuf, k->kbuf + k->kstart, used);
      k->kstart = 0;
      k->kend = used;
    } else {
      size_t cap = k->kcap ? k->kcap : KEEP_MIN_FREE;
      uint8_t *nb;
      while (cap - k->kend < KEEP_MIN_FREE)
        cap *= 2;
      nb = realloc(k->kbuf, cap);
      if (nb == NULL) {
        buf->base = NULL;
        buf->len = 0; /* libuv reports UV_ENOBUFS */
        return;
      }
      k->kbuf = nb;
      k->kcap = cap;
    }
  }
  buf->base = (char *)k->kbuf + k->kend;
  buf->len = k->kcap - k->kend;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  cltcp__socket *s = sock_of_tcp(stream);
  if (nread > 0) {
    sock_read_happened(s);
    if (s->mode == CLTCP_READ_DRAIN) {
      sock_emit(s, CLTCP_EV_DATA, 0, (const uint8_t *)buf->base, (size_t)nread);
    } else {
      cltcp__loop *loop = cltcp__handle_loop(&s->h);
      if ((uint8_t *)buf->base == loop->readbuf) {
        /* Lent to cltcp_socket_read() for the callback (read callbacks do
         * not nest: cltcp_loop_run() refuses to run inside one). */
        const uint8_t *rest;
        size_t left;
        loop->kb_sock = s;
        loop->kb_ptr = (const uint8_t *)buf->base;
        loop->kb_len = (size_t)nread;
        sock_emit(s, CLTCP_EV_DATA, 0, loop->kb_ptr, (size_t)nread);
        rest = loop->kb_ptr;
        left = loop->kb_len;
        loop->kb_sock = NULL;
        loop->kb_ptr = NULL;
        loop->kb_len = 0;
        /* Keep what the callback did not read (also when it closed the
         * socket: the bytes stay readable until CLOSE). */
        if (left > 0 && keep_append(s, rest, left) != 0) {
          cltcp__socket_fail(s, UV_ENOMEM);
          return;
        }
      } else {
        cltcp__sock_keep *k = sock_keep(s); /* alloc_cb gave its kbuf */
        k->kend += (size_t)nread;
        sock_emit(s, CLTCP_EV_DATA, 0, k->kbuf + k->kend - nread,
                  (size_t)nread);
      }
    }
    return;
  }
  if (nread == 0)
    return;
  sock_read_stop(s);
  if (nread == UV_EOF) {
    s->eof = true;
    sock_emit(s, CLTCP_EV_EOF, 0, NULL, 0);
    if (!s->h.closing) {
      s->h.closing = true;
      s->h.close_status = 0;
      cltcp__socket_close_flush(s);
    }
    return;
  }
  cltcp__socket_fail(s, (int)nread);
}

void cltcp__socket_start_reading(cltcp__socket *s) {
  int rc;
  if (s->reading || !s->read_enabled || s->eof || s->h.closing ||
      s->state != ST_CONNECTED)
    return;
  rc = uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb);
  if (rc == 0)
    s->reading = true;
  else
    cltcp__socket_fail_later(s, rc);
}

/* ---- writing ----------------------------------------------------------- */

static int append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *d,
                  size_t n) {
  if (*cap - *len < n) {
    size_t c = *cap ? *cap : CLTCP__WBUF_SIZE;
    uint8_t *nb;
    while (c - *len < n)
      c *= 2;
    nb = realloc(*buf, c);
    if (nb == NULL)
      return UV_ENOMEM;
    *buf = nb;
    *cap = c;
  }
  memcpy(*buf + *len, d, n);
  *len += n;
  return 0;
}

/* A write buffer no longer needed (*buf empty): back to the loop's spares
 * when it has one of the two first sizes and there is room, else freed. */
static void wbuf_release(cltcp__loop *loop, uint8_t **buf, size_t *cap) {
  if (*buf == NULL)
    return;
  if (*cap == CLTCP__WBUF_SIZE && loop->nwbuf_spare < CLTCP__WBUF_SPARES)
    loop->wbuf_spare[loop->nwbuf_spare++] = *buf;
  else if (*cap == CLTCP__WBUF_SMALL &&
           loop->nwbuf_small_spare < CLTCP__WBUF_SMALL_SPARES)
    loop->wbuf_small_spare[loop->nwbuf_small_spare++] = *buf;
  else
    free(*buf);
  *buf = NULL;
  *cap = 0;
}

/* A spare write buffer of `size' bytes, NULL when the loop has none. */
static uint8_t *wbuf_take(cltcp__loop *loop, size_t size) {
  if (size == CLTCP__WBUF_SIZE && loop->nwbuf_spare > 0)
    return loop->wbuf_spare[--loop->nwbuf_spare];
  if (size == CLTCP__WBUF_SMALL && loop->nwbuf_small_spare > 0)
    return loop->wbuf_small_spare[--loop->nwbuf_small_spare];
  return NULL;
}

/* Appends n bytes to the writer's `wq'.  It starts small when they fit in
 * CLTCP__WBUF_SMALL, else at CLTCP__WBUF_SIZE, and doubles from there; a
 * buffer of one of the two first sizes comes from the loop's spares when
 * there is one (the bytes so far move into it), so that collecting a turn's
 * writes calls no malloc() in the steady state. */
static int wq_append(cltcp__loop *loop, cltcp__sock_writer *w,
                     const uint8_t *d, size_t n) {
  size_t need = w->wq_len + n;
  if (need > w->wq_cap) {
    size_t c = w->wq_cap == 0 && need <= CLTCP__WBUF_SMALL ? CLTCP__WBUF_SMALL
                                                           : CLTCP__WBUF_SIZE;
    uint8_t *nb;
    while (c < need)
      c *= 2;
    nb = wbuf_take(loop, c);
    if (nb != NULL) {
      if (w->wq_len > 0)
        memcpy(nb, w->wq, w->wq_len);
      wbuf_release(loop, &w->wq, &w->wq_cap);
    } else {
      nb = realloc(w->wq, c);
      if (nb == NULL)
        return UV_ENOMEM;
    }
    w->wq = nb;
    w->wq_cap = c;
  }
  memcpy(w->wq + w->wq_len, d, n);
  w->wq_len = need;
  return 0;
}

static void queue_emptied(cltcp__socket *s) {
  if (s->flush_close) {
    cltcp__socket_close_now(s, s->h.close_status);
    return;
  }
  if (s->shut_wanted && !s->shut_started && !s->h.closing)
    cltcp__socket_start_write(s); /* starts the shutdown */
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  cltcp__socket *s = req->data;
  free(req);
  sock_x(s)->sreq = NULL;
  if (status == UV_ECANCELED || s->h.closing)
    return;
  sock_emit(s, CLTCP_EV_SHUTDOWN, status, NULL, 0);
}

/* After bytes left (from a libuv callback or the end of the turn, never
 * from inside a call): the drain mark, the FLUSHED events now due, and the
 * close or shutdown that waited for an empty queue. */
static void after_progress(cltcp__socket *s) {
  if (s->above_mark && sock_queued(s) <= sock_drain_mark(s)) {
    s->above_mark = false;
    if (!s->h.closing) {
      sock_emit(s, CLTCP_EV_DRAIN, 0, NULL, sock_queued(s));
      if (s->uv_closed)
        return;
    }
  }
  emit_flushed(s);
  if (s->uv_closed)
    return;
  if (sock_idle_writer(s) && sock_collected(s) == 0)
    queue_emptied(s);
  else
    cltcp__socket_arm_timer(s);
}

static void write_cb(uv_write_t *req, int status) {
  cltcp__socket *s = req->data;
  cltcp__sock_writer *w = s->w;
  s->writing = false;
  if (status == UV_ECANCELED || s->uv_closed) {
    w->wf_len = w->wf_off = w->wf_chunk = 0;
    return;
  }
  if (status < 0) {
    w->wf_len = w->wf_off = w->wf_chunk = 0;
    cltcp__socket_fail(s, status);
    return;
  }
  w->sent += w->wf_chunk;
  w->wf_off += w->wf_chunk;
  w->wf_chunk = 0;
  if (w->wf_off >= w->wf_len) {
    w->wf_len = w->wf_off = 0;
    wbuf_release(cltcp__handle_loop(&s->h), &w->wf, &w->wf_cap);
  }
  sock_write_happened(s);
  if (sock_tmo(s) != NULL)
    sock_tmo(s)->last_queued = sock_queued(s);
  if (w->wf_len > 0 || w->wq_len > 0) {
    cltcp__socket_start_write(s);
    if (s->uv_closed)
      return;
  }
  after_progress(s);
}

/* Gives the writer back once nothing is in flight or collected and no
 * mark is owed: to the loop's spares while there is room.  Its counts go
 * with it: with nothing queued, the next writer counts from 0 again. */
static void writer_release(cltcp__socket *s) {
  cltcp__sock_writer *w = s->w;
  cltcp__loop *loop;
  if (w == NULL || s->writing || w->wf_len != 0 || w->wq_len != 0 ||
      w->marks_len != 0)
    return;
  loop = cltcp__handle_loop(&s->h);
  wbuf_release(loop, &w->wf, &w->wf_cap);
  wbuf_release(loop, &w->wq, &w->wq_cap);
  if (w->marks != NULL) {
    free(w->marks);
    w->marks = NULL;
    w->marks_cap = w->marks_head = 0;
  }
  w->wf_off = w->wf_chunk = 0;
  if (loop->nwriter_spare < CLTCP__WRITER_SPARES)
    loop->writer_spare[loop->nwriter_spare++] = w;
  else
    free(w);
  s->w = NULL;
}

/* The bytes collected in `wq' become the writer's `wf' (empty, as nothing
 * is in flight), the first `sent' of them already sent; the buffers swap,
 * so no byte moves and the steady state allocates nothing. */
static int take_collected(cltcp__socket *s, size_t sent) {
  cltcp__sock_writer *w;
  uint8_t *tb;
  size_t tc;
  int rc = writer_get(&w, s);
  if (rc != 0)
    return rc;
  tb = w->wf;
  tc = w->wf_cap;
  w->wf = w->wq;
  w->wf_cap = w->wq_cap;
  w->wf_len = w->wq_len;
  w->wf_off = sent;
  w->wq = tb;
  w->wq_cap = tc;
  w->wq_len = 0;
  return 0;
}

/* Hands the next chunk of `wf' to libuv -- or, when `wf' is done, the bytes
 * collected in `wq' -- or starts a pending shutdown. */
void cltcp__socket_start_write(cltcp__socket *s) {
  cltcp__sock_writer *w;
  uv_buf_t b;
  int rc;
  if (s->writing || s->state != ST_CONNECTED || s->uv_closed)
    return;
  if (s->w == NULL || s->w->wf_len == 0) {
    if (sock_collected(s) == 0) {
      if (s->shut_wanted && !s->shut_started) {
        s->shut_started = true;
        if (cltcp__socket_more(s) != 0 ||
            (sock_x(s)->sreq = malloc(sizeof(*sock_x(s)->sreq))) == NULL) {
          cltcp__socket_fail_later(s, UV_ENOMEM);
          return;
        }
        sock_x(s)->sreq->data = s;
        rc = uv_shutdown(sock_x(s)->sreq, (uv_stream_t *)&s->tcp, shutdown_cb);
        if (rc != 0) {
          free(sock_x(s)->sreq);
          sock_x(s)->sreq = NULL;
          cltcp__socket_fail_later(s, rc);
        }
      }
      return;
    }
    rc = take_collected(s, 0);
    if (rc != 0) {
      cltcp__socket_fail_later(s, rc);
      return;
    }
  }
  w = s->w;
  w->wf_chunk = w->wf_len - w->wf_off;
  if (w->wf_chunk > MAX_CHUNK)
    w->wf_chunk = MAX_CHUNK;
  /* Not uv_buf_init(): its length parameter is `unsigned'. */
  b.base = (char *)w->wf + w->wf_off;
  b.len = w->wf_chunk;
  s->sends++;
  rc = uv_write(&w->wreq, (uv_stream_t *)&s->tcp, &b, 1, write_cb);
  if (rc != 0) {
    w->wf_len = w->wf_off = w->wf_chunk = 0;
    cltcp__socket_fail_later(s, rc);
    return;
  }
  s->writing = true;
}

/* Sends what `wq' collected: one uv_try_write of all of it (up to
 * MAX_CHUNK), the rest through uv_write.  Nothing is emitted here.
 * Returns whether any byte left. */
static bool send_collected(cltcp__socket *s) {
  cltcp__sock_writer *w = s->w;
  uv_buf_t b;
  int n, rc;
  if (s->state != ST_CONNECTED || s->uv_closed || w == NULL ||
      w->wq_len == 0 || !sock_idle_writer(s) || s->tcp.write_queue_size != 0)
    return false; /* connected() or write_cb() sends it */
  b.base = (char *)w->wq;
  b.len = w->wq_len < MAX_CHUNK ? w->wq_len : MAX_CHUNK;
  s->sends++;
  n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
  /* Any error other than EAGAIN is left for uv_write to report through its
   * callback, so failures arrive as events, never from here. */
  if (n > 0) {
    w->sent += (uint64_t)n;
    sock_write_happened(s);
    if ((size_t)n == w->wq_len) {
      /* All of it left: an idle socket keeps no buffer and no writer
       * (unless FLUSHED marks are owed). */
      w->wq_len = 0;
      wbuf_release(cltcp__handle_loop(&s->h), &w->wq, &w->wq_cap);
      writer_release(s);
      return true;
    }
  } else {
    n = 0;
  }
  /* Hand the rest to uv_write from where the kernel stopped. */
  rc = take_collected(s, (size_t)n);
  if (rc != 0) {
    cltcp__socket_fail_later(s, rc);
    return n > 0;
  }
  cltcp__socket_start_write(s);
  return n > 0;
}

/* The end of the turn a socket was written in: the turn's writes leave
 * together. */
static void turn_end_run(void *obj) {
  cltcp__socket *s = obj;
  bool progress;
  if (!s->fq_queued)
    return; /* cancelled by the close */
  s->fq_queued = false;
  if (s->uv_closed)
    return;
  progress = send_collected(s);
  if (s->uv_closed)
    return;
  if (progress || (sock_marks(s) > 0 && sock_idle_writer(s)))
    after_progress(s);
  else
    cltcp__socket_arm_timer(s);
}

/* ---- public API -------------------------------------------------------- */

int cltcp_socket_set_read_mode(cltcp_id id, int mode) {
  cltcp__socket *s;
  int rc;
  if (mode != CLTCP_READ_DRAIN && mode != CLTCP_READ_KEEP)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (mode == CLTCP_READ_DRAIN && sock_kept(s) > 0)
    return CLTCP_EMODE;
  /* Keep mode needs nothing until a DATA callback leaves bytes unread. */
  if (mode == CLTCP_READ_DRAIN)
    keep_free(s);
  s->mode = (uint8_t)mode;
  return 0;
}

int cltcp_socket_buffered(size_t *n, cltcp_id id) {
  cltcp__socket *s;
  int rc;
  if (n == NULL)
    return UV_EINVAL;
  rc = sock_get_closing(&s, id);
  if (rc != 0)
    return rc;
  *n = sock_kept(s);
  return 0;
}

int cltcp_socket_read(size_t *n, cltcp_id id, uint8_t *dst, size_t max) {
  cltcp__socket *s;
  cltcp__sock_keep *k;
  cltcp__loop *loop;
  size_t avail, done;
  int rc;
  if (n == NULL || (dst == NULL && max > 0))
    return UV_EINVAL;
  rc = sock_get_closing(&s, id);
  if (rc != 0)
    return rc;
  k = sock_keep(s);
  loop = cltcp__handle_loop(&s->h);
  /* Kept bytes come first: the shared buffer is only lent when none were
   * kept (alloc_cb).  Drain mode keeps nothing. */
  avail = k != NULL ? k->kend - k->kstart : 0;
  if (avail > max)
    avail = max;
  if (avail > 0) {
    memcpy(dst, k->kbuf + k->kstart, avail);
    k->kstart += avail;
    if (k->kstart == k->kend)
      k->kstart = k->kend = 0;
  }
  done = avail;
  if (done < max && loop->kb_sock == (void *)s && loop->kb_len > 0) {
    size_t take = loop->kb_len < max - done ? loop->kb_len : max - done;
    memcpy(dst + done, loop->kb_ptr, take);
    loop->kb_ptr += take;
    loop->kb_len -= take;
    done += take;
  }
  *n = done;
  return 0;
}

static int socket_write(cltcp__socket *s, const uint8_t *data, size_t len,
                        int flags);

int cltcp_socket_write(cltcp_id id, const uint8_t *data, size_t len,
                       int flags) {
  cltcp__socket *s;
  sigset_t old;
  bool blocked;
  int rc;
  if (data == NULL && len > 0)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  /* cltcp_loop_run() blocked SIGPIPE already */
  if (cltcp__handle_loop(&s->h)->entered)
    return socket_write(s, data, len, flags);
  blocked = cltcp__sigpipe_block(&old);
  rc = socket_write(s, data, len, flags);
  cltcp__sigpipe_restore(&old, blocked);
  return rc;
}

static int socket_write(cltcp__socket *s, const uint8_t *data, size_t len,
                        int flags) {
  size_t done = 0, q;
  bool tried = false;
  int rc;
  if (s->shut_wanted)
    return UV_EPIPE;
  /* Reserve the FLUSHED first, so a failure leaves nothing half done: its
   * mark, and the queue item a FLUSHED due at once needs. */
  if (flags & CLTCP_WRITE_NOTIFY) {
    rc = cltcp__defer_reserve(cltcp__handle_loop(&s->h));
    if (rc != 0)
      return rc;
    rc = push_mark(s, len);
    if (rc != 0)
      return rc;
  }
  q = sock_queued(s);
  if (len > COALESCE_MAX && sock_collected(s) == 0)
    flags |= CLTCP_WRITE_NOW;
  if (len > 0) {
    if ((flags & CLTCP_WRITE_NOW) && s->state == ST_CONNECTED && q == 0 &&
        sock_idle_writer(s)) {
      /* Nothing collected or queued: the kernel takes what it can straight
       * from the caller's buffer. */
      uv_buf_t b;
      int n;
      b.base = (char *)data;
      b.len = len < MAX_CHUNK ? len : MAX_CHUNK;
      s->sends++;
      tried = true;
      n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
      /* Any error other than EAGAIN is left for uv_write to report through
       * its callback, so failures arrive as events, never from here. */
      if (n > 0)
        done = (size_t)n;
    }
    /* Those bytes left, whatever happens next.  Without a writer nothing
     * is counted: the next one counts from there. */
    if (done > 0 && s->w != NULL) {
      s->w->sent += done;
      s->w->written += done;
    }
    if (done < len) {
      cltcp__loop *loop = cltcp__handle_loop(&s->h);
      cltcp__sock_writer *w;
      rc = writer_get(&w, s);
      if (rc == 0)
        rc = wq_append(loop, w, data + done, len - done);
      if (rc != 0) {
        if (flags & CLTCP_WRITE_NOTIFY)
          s->w->marks_len--; /* the mark just pushed */
        writer_release(s);
        return rc;
      }
      w->written += len - done;
      if (q == 0)
        sock_write_happened(s); /* the write clock starts now */
      if (tried)
        cltcp__socket_start_write(s); /* the kernel is full: no second try */
      else if (flags & CLTCP_WRITE_NOW)
        send_collected(s); /* this write and what the turn collected */
      else if (!s->fq_queued) {
        if (cltcp__at_turn_end_id(loop, s->h.id, turn_end_run) == 0)
          s->fq_queued = true;
        else
          send_collected(s); /* no queue item: sent now, not coalesced */
      }
      if (s->drain_mark != SOCK_DRAIN_NONE &&
          sock_queued(s) > sock_drain_mark(s))
        s->above_mark = true;
      cltcp__socket_arm_timer(s);
    }
  }
  if ((flags & CLTCP_WRITE_NOTIFY) &&
      (s->w == NULL || s->w->sent >= s->w->written)) {
    /* Everything before it has left already: the FLUSHED comes on the next
     * turn, never from inside this call. */
    s->dfr_flushed = true;
    (void)sock_defer(s); /* cannot fail: an item was reserved above */
  }
  return 0;
}

int cltcp_socket_queued(size_t *n, cltcp_id id) {
  cltcp__socket *s;
  int rc;
  if (n == NULL)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  *n = sock_queued(s);
  return 0;
}

int cltcp_socket_set_drain_mark(cltcp_id id, size_t mark) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (mark == (size_t)-1) {
    s->drain_mark = SOCK_DRAIN_NONE;
  } else if (mark < SOCK_DRAIN_BIG) {
    s->drain_mark = (uint32_t)mark;
  } else {
    rc = cltcp__socket_more(s); /* 4 GiB or more: kept in the part */
    if (rc != 0)
      return rc;
    sock_x(s)->drain_mark = mark;
    s->drain_mark = SOCK_DRAIN_BIG;
  }
  s->above_mark = mark != (size_t)-1 && sock_queued(s) > mark;
  return 0;
}

int cltcp_socket_enable(cltcp_id id, int read, int write) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (write == 0 || write == 1) {
    if (write && !s->write_enabled)
      sock_write_happened(s);
    s->write_enabled = write;
  }
  if (read == 1 && !s->read_enabled) {
    s->read_enabled = true;
    sock_read_happened(s);
    cltcp__socket_start_reading(s);
  } else if (read == 0 && s->read_enabled) {
    s->read_enabled = false;
    sock_read_stop(s);
  }
  cltcp__socket_rearm_timer(s);
  return 0;
}

int cltcp_socket_enabled(int *read, int *write, cltcp_id id) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (read != NULL)
    *read = s->read_enabled;
  if (write != NULL)
    *write = s->write_enabled;
  return 0;
}

int cltcp_socket_shutdown(cltcp_id id) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (s->state == ST_NEW || s->shut_wanted)
    return CLTCP_ESTATE;
  s->shut_wanted = true;
  /* cltcp__socket_start_write() starts the shutdown once connected and
   * flushed. */
  if (sock_queued(s) == 0 && sock_idle_writer(s))
    cltcp__socket_start_write(s);
  return 0;
}

int cltcp_socket_close(cltcp_id id, int mode) {
  cltcp__socket *s;
  int rc;
  if (mode != CLTCP_CLOSE_NOW && mode != CLTCP_CLOSE_FLUSH)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  s->h.closing = true;
  s->h.close_status = 0;
  if (mode == CLTCP_CLOSE_NOW) {
    /* What the kernel would have taken at once without coalescing still
     * goes: the writes of this turn get the one try they would have had. */
    if (s->fq_queued)
      send_collected(s);
    cltcp__socket_close_now(s, 0);
  } else {
    cltcp__socket_close_flush(s);
  }
  return 0;
}
