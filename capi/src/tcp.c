/* tcp.c -- TCP sockets: connect, read (drain and keep modes), write queue,
 * timeouts, half-close and close. */
#include "internal.h"

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

/* A write at least this large, made while nothing is collected for the end
 * of the turn, is handed to the kernel at once: coalescing exists to save
 * the system calls of small writes, and for a large one it would only add a
 * copy of every byte (bulk transfers: an echo writes each read chunk). */
#define COALESCE_MAX ((size_t)32 * 1024)

enum {
  ST_NEW = 0,     /* created, not connecting */
  ST_RESOLVING,   /* waiting for DNS */
  ST_CONNECTING,  /* uv_tcp_connect in flight */
  ST_CONNECTED    /* connected (or accepted) */
};

struct cltcp__socket {
  cltcp__handle h;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  cltcp__deferred dfr;
  cltcp__deferred fq;   /* queued for the end of the turn (coalescing) */
  int state;
  int mode;
  /* flags */
  bool uv_closed;       /* uv_close called on tcp and timer */
  bool tcp_reopening;   /* tcp closing between two connect attempts */
  bool reading;         /* uv_read_start active */
  bool read_enabled;
  bool write_enabled;
  bool eof;             /* peer's EOF seen */
  bool writing;         /* wreq in flight */
  bool flush_close;     /* close once the queue is empty */
  bool shut_wanted;     /* cltcp_socket_shutdown called */
  bool shut_started;
  bool above_mark;
  bool nodelay;
  bool keepalive;
  unsigned keepalive_delay;
  bool accepted;        /* made by a server (cltcp_loop_handles()) */
  /* deferred events */
  int dfr_error;        /* an ERROR to deliver on the next turn */
  bool dfr_flushed;     /* a FLUSHED to deliver on the next turn */
  /* keep-mode input buffer: bytes [kstart, kend) of kbuf, then, during a
   * DATA callback only, the `blen' bytes at `bptr' still unread in the
   * loop's shared read buffer (see read_cb). */
  uint8_t *kbuf;
  size_t kcap, kstart, kend;
  const uint8_t *bptr;
  size_t blen;
  /* write queue: `wf' is being handed to uv_write, chunk by chunk: bytes
   * [0, wf_off) are sent, [wf_off, wf_off + wf_chunk) are in the uv_write
   * in flight.  `wq' collects what is written meanwhile, and the writes of
   * the current turn until its end; they swap, so the steady state
   * allocates nothing. */
  uint8_t *wf, *wq;
  size_t wf_len, wf_cap, wq_len, wq_cap;
  size_t wf_off, wf_chunk;
  /* byte counts since the socket was made: accepted by cltcp_socket_write,
   * and handed to the kernel for good.  A NOTIFY write's FLUSHED is due
   * once `sent' reaches the `written' count its write ended at. */
  uint64_t written, sent;
  uint64_t *marks;      /* ring of due counts, one per NOTIFY write */
  size_t marks_head, marks_len, marks_cap;
  uint64_t sends;       /* uv_try_write and uv_write calls (for tests) */
  size_t drain_mark;
  size_t last_queued;   /* queue size at the last write-progress check */
  /* timeouts (ms, 0 = none) and clocks (loop time, ms) */
  uint64_t read_to, write_to, connect_to;
  uint64_t last_read, last_write, connect_start;
  uint64_t timer_due;   /* when the armed timer fires; 0 = not armed */
  /* connecting by name */
  cltcp__dns_req *dns;
  cltcp_addr *addrs;
  size_t naddrs, next_addr;
  int port;
  int last_err;
};

static void close_now(cltcp__socket *s, int status);
static void arm_timer(cltcp__socket *s);
static void start_write(cltcp__socket *s);
static void try_connect_next(cltcp__socket *s);
static void emit_flushed(cltcp__socket *s);
static int append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *d,
                  size_t n);

static inline size_t queued(const cltcp__socket *s) {
  return s->tcp.write_queue_size + (s->wf_len - s->wf_off - s->wf_chunk) +
         s->wq_len;
}

/* Nothing handed to libuv is still in flight and nothing waits in `wf'. */
static inline bool idle_writer(const cltcp__socket *s) {
  return !s->writing && s->wf_len == 0;
}

/* The socket clocks (last_read, last_write, connect_start, deadlines) are
 * milliseconds of libuv's precise clock, not the loop's cached time, which
 * is stale after a long callback or outside cltcp_loop_run() and would make
 * a timeout fire early.  A clock is started with now() (rounded up) and a
 * deadline checked with now_floor() (rounded down), so a timeout never fires
 * before its time by the wall clock. */
static inline uint64_t now(const cltcp__socket *s) {
  (void)s;
  return (uv_hrtime() + 999999) / 1000000;
}

static inline uint64_t now_floor(void) { return uv_hrtime() / 1000000; }

static inline void emit(cltcp__socket *s, int event, int status,
                        const uint8_t *data, size_t len) {
  s->h.cb(s->h.ctx, s->h.id, event, status, 0, data, len);
}

static int sock_get(cltcp__socket **out, cltcp_id id) {
  return cltcp__handle_lookup((cltcp__handle **)out, id, CLTCP_KIND_SOCKET,
                              false);
}

/* ---- deferred events ------------------------------------------------- */

static void deferred_run(cltcp__deferred *d) {
  cltcp__socket *s = (cltcp__socket *)((char *)d -
                                       offsetof(cltcp__socket, dfr));
  if (s->h.closing)
    return;
  if (s->dfr_error != 0) {
    int err = s->dfr_error;
    s->dfr_error = 0;
    emit(s, CLTCP_EV_ERROR, err, NULL, 0);
    close_now(s, 0);
    return;
  }
  if (s->dfr_flushed) {
    s->dfr_flushed = false;
    emit_flushed(s);
  }
}

/* Delivers, in order, one FLUSHED for each NOTIFY write whose bytes (and
 * everything before them) have left, stopping if the owner closes the
 * socket from one of them. */
static void emit_flushed(cltcp__socket *s) {
  while (s->marks_len > 0 && !s->uv_closed &&
         s->marks[s->marks_head] <= s->sent) {
    s->marks_head = (s->marks_head + 1) % s->marks_cap;
    s->marks_len--;
    emit(s, CLTCP_EV_FLUSHED, 0, NULL, 0);
  }
}

/* Remembers that a FLUSHED is owed once `sent' reaches `due'. */
static int push_mark(cltcp__socket *s, uint64_t due) {
  if (s->marks_len == s->marks_cap) {
    size_t cap = s->marks_cap ? s->marks_cap * 2 : 8, i;
    uint64_t *nm = malloc(cap * sizeof(*nm));
    if (nm == NULL)
      return UV_ENOMEM;
    for (i = 0; i < s->marks_len; i++)
      nm[i] = s->marks[(s->marks_head + i) % s->marks_cap];
    free(s->marks);
    s->marks = nm;
    s->marks_cap = cap;
    s->marks_head = 0;
  }
  s->marks[(s->marks_head + s->marks_len) % s->marks_cap] = due;
  s->marks_len++;
  return 0;
}

static void fail_later(cltcp__socket *s, int err) {
  if (s->dfr_error == 0)
    s->dfr_error = err;
  cltcp__defer(s->h.loop, &s->dfr, deferred_run);
}

/* An error seen in a libuv callback: tell the owner, then close. */
static void fail(cltcp__socket *s, int err) {
  if (s->h.closing) {
    close_now(s, err);
    return;
  }
  emit(s, CLTCP_EV_ERROR, err, NULL, 0);
  close_now(s, 0);
}

/* ---- close ------------------------------------------------------------ */

static void socket_free(cltcp__socket *s) {
  cltcp__loop *loop = s->h.loop;
  cltcp__id_free(loop, s->h.id);
  cltcp__handle_unlink(loop, &s->h);
  free(s->kbuf);
  free(s->wf);
  free(s->wq);
  free(s->marks);
  free(s->addrs);
  free(s);
}

static void uv_closed_cb(uv_handle_t *uvh) {
  cltcp__socket *s = uvh->data;
  if (--s->h.pending_closes > 0)
    return;
  /* NOTIFY writes whose bytes never left were cancelled by the close:
   * like libuv's pending writes, each completes with UV_ECANCELED before
   * the handle's last event. */
  while (s->marks_len > 0) {
    s->marks_len--;
    emit(s, CLTCP_EV_FLUSHED, UV_ECANCELED, NULL, 0);
  }
  /* The id is still valid here, so keep-mode bytes can be read during the
   * CLOSE event; it dies right after. */
  emit(s, CLTCP_EV_CLOSE, s->h.close_status, NULL, 0);
  socket_free(s);
}

static void close_now(cltcp__socket *s, int status) {
  if (s->uv_closed)
    return;
  s->uv_closed = true;
  if (!s->h.closing) {
    s->h.closing = true;
    s->h.close_status = status;
  } else if (status != 0 && s->h.close_status == 0) {
    s->h.close_status = status;
  }
  cltcp__undefer(s->h.loop, &s->dfr);
  cltcp__undefer(s->h.loop, &s->fq);
  if (s->dns != NULL) {
    cltcp__dns_abort(s->dns);
    s->dns = NULL;
  }
  s->h.pending_closes = 1;
  uv_close((uv_handle_t *)&s->timer, uv_closed_cb);
  /* Between two connect attempts the tcp handle is already closing; its
   * close callback (reopen_cb) counts itself. */
  s->h.pending_closes++;
  if (!s->tcp_reopening)
    uv_close((uv_handle_t *)&s->tcp, uv_closed_cb);
}

/* Start a graceful close: stop reading, send what is queued, then close. */
static void close_flush(cltcp__socket *s) {
  if (s->reading) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = false;
  }
  /* Bytes written before the connection completes are sent once it does
   * (connected() flushes them and the write completion closes). */
  if (s->state == ST_NEW ||
      (s->state == ST_CONNECTED && queued(s) == 0 && idle_writer(s)) ||
      (s->state != ST_CONNECTED && s->wq_len == 0)) {
    close_now(s, s->h.close_status);
    return;
  }
  s->flush_close = true;
  arm_timer(s);
}

/* ---- timers ------------------------------------------------------------ */

static void timer_cb(uv_timer_t *t) {
  cltcp__socket *s = t->data;
  uint64_t n = now_floor();
  size_t q;
  s->timer_due = 0;
  if (s->uv_closed)
    return;
  if ((s->state == ST_RESOLVING || s->state == ST_CONNECTING) &&
      s->connect_to != 0 && n >= s->connect_start + s->connect_to) {
    fail(s, UV_ETIMEDOUT);
    return;
  }
  if (s->state == ST_CONNECTED) {
    /* libuv reports no partial progress of a write; compare queue sizes. */
    q = queued(s);
    if (q < s->last_queued)
      s->last_write = now(s);
    s->last_queued = q;
    if (s->write_to != 0 && s->write_enabled && q > 0 &&
        n >= s->last_write + s->write_to) {
      fail(s, UV_ETIMEDOUT);
      return;
    }
    if (s->read_to != 0 && s->read_enabled && !s->eof && !s->h.closing &&
        n >= s->last_read + s->read_to) {
      fail(s, UV_ETIMEDOUT);
      return;
    }
  }
  arm_timer(s);
}

/* Arms the timer for the earliest deadline.  Reads only move last_read:
 * the timer fires at the old deadline and re-arms itself, so a busy socket
 * costs no timer operation per read. */
static void arm_timer(cltcp__socket *s) {
  uint64_t due = 0, d, n;
  if (s->uv_closed)
    return;
  if ((s->state == ST_RESOLVING || s->state == ST_CONNECTING) &&
      s->connect_to != 0)
    due = s->connect_start + s->connect_to;
  if (s->state == ST_CONNECTED) {
    if (s->read_to != 0 && s->read_enabled && !s->eof && !s->h.closing) {
      d = s->last_read + s->read_to;
      if (due == 0 || d < due)
        due = d;
    }
    if (s->write_to != 0 && s->write_enabled && queued(s) > 0) {
      d = s->last_write + s->write_to;
      if (due == 0 || d < due)
        due = d;
    }
  }
  if (due == 0) {
    if (s->timer_due != 0) {
      uv_timer_stop(&s->timer);
      s->timer_due = 0;
    }
    return;
  }
  if (s->timer_due != 0 && s->timer_due <= due)
    return; /* fires early enough; it re-arms itself */
  /* The uv timer only wakes timer_cb, which checks the deadline on the
   * precise clock itself (and re-arms if it is not reached); the loop time
   * the wait counts from is made fresh first.  That time never runs ahead
   * of the precise clock, so the wait is never shorter than what is left. */
  uv_update_time(&s->h.loop->uv);
  n = uv_now(&s->h.loop->uv);
  uv_timer_start(&s->timer, timer_cb, due > n ? due - n : 1, 0);
  s->timer_due = due;
}

/* ---- reading ----------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  cltcp__socket *s = h->data;
  (void)hint;
  if (s->mode == CLTCP_READ_DRAIN) {
    buf->base = (char *)s->h.loop->readbuf;
    buf->len = s->h.loop->readbuf_len;
    return;
  }
  if (s->kstart == s->kend) {
    /* Nothing kept: read into the loop's shared buffer.  A reader that
     * takes everything during the DATA callback (the usual case) then costs
     * no per-socket memory and one copy in all; only what it leaves is
     * copied into kbuf.  An idle keep-mode socket holds no buffer. */
    if (s->kbuf != NULL) {
      free(s->kbuf);
      s->kbuf = NULL;
      s->kcap = 0;
    }
    s->kstart = s->kend = 0;
    buf->base = (char *)s->h.loop->readbuf;
    buf->len = s->h.loop->readbuf_len;
    return;
  }
  if (s->kcap - s->kend < KEEP_MIN_FREE) {
    size_t used = s->kend - s->kstart;
    if (s->kstart > 0 && s->kcap - used >= KEEP_MIN_FREE &&
        s->kstart >= used) {
      /* Compact only when the live bytes are at most as many as the
       * consumed ones, so each byte moves O(1) times on average. */
      memmove(s->kbuf, s->kbuf + s->kstart, used);
      s->kstart = 0;
      s->kend = used;
    } else {
      size_t cap = s->kcap ? s->kcap : KEEP_MIN_FREE;
      uint8_t *nb;
      while (cap - s->kend < KEEP_MIN_FREE)
        cap *= 2;
      nb = realloc(s->kbuf, cap);
      if (nb == NULL) {
        buf->base = NULL;
        buf->len = 0; /* libuv reports UV_ENOBUFS */
        return;
      }
      s->kbuf = nb;
      s->kcap = cap;
    }
  }
  buf->base = (char *)s->kbuf + s->kend;
  buf->len = s->kcap - s->kend;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  cltcp__socket *s = stream->data;
  if (nread > 0) {
    s->last_read = now(s);
    if (s->mode == CLTCP_READ_DRAIN) {
      emit(s, CLTCP_EV_DATA, 0, (const uint8_t *)buf->base, (size_t)nread);
    } else {
      if ((uint8_t *)buf->base == s->h.loop->readbuf) {
        s->bptr = (const uint8_t *)buf->base;
        s->blen = (size_t)nread;
        emit(s, CLTCP_EV_DATA, 0, s->bptr, (size_t)nread);
        /* Keep what the callback did not read (also when it closed the
         * socket: the bytes stay readable until CLOSE). */
        if (s->blen > 0 &&
            append(&s->kbuf, &s->kend, &s->kcap, s->bptr, s->blen) != 0) {
          s->bptr = NULL;
          s->blen = 0;
          fail(s, UV_ENOMEM);
          return;
        }
        s->bptr = NULL;
        s->blen = 0;
      } else {
        s->kend += (size_t)nread;
        emit(s, CLTCP_EV_DATA, 0, s->kbuf + s->kend - nread, (size_t)nread);
      }
    }
    return;
  }
  if (nread == 0)
    return;
  if (s->reading) {
    uv_read_stop(stream);
    s->reading = false;
  }
  if (nread == UV_EOF) {
    s->eof = true;
    emit(s, CLTCP_EV_EOF, 0, NULL, 0);
    if (!s->h.closing) {
      s->h.closing = true;
      s->h.close_status = 0;
      close_flush(s);
    }
    return;
  }
  fail(s, (int)nread);
}

static void start_reading(cltcp__socket *s) {
  int rc;
  if (s->reading || !s->read_enabled || s->eof || s->h.closing ||
      s->state != ST_CONNECTED)
    return;
  rc = uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb);
  if (rc == 0)
    s->reading = true;
  else
    fail_later(s, rc);
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
 * when it has the first size and there is room, else freed. */
static void wbuf_release(cltcp__loop *loop, uint8_t **buf, size_t *cap) {
  if (*buf == NULL)
    return;
  if (*cap == CLTCP__WBUF_SIZE && loop->nwbuf_spare < CLTCP__WBUF_SPARES)
    loop->wbuf_spare[loop->nwbuf_spare++] = *buf;
  else
    free(*buf);
  *buf = NULL;
  *cap = 0;
}

static void queue_emptied(cltcp__socket *s) {
  if (s->flush_close) {
    close_now(s, s->h.close_status);
    return;
  }
  if (s->shut_wanted && !s->shut_started && !s->h.closing)
    start_write(s); /* starts the shutdown */
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  cltcp__socket *s = req->data;
  if (status == UV_ECANCELED || s->h.closing)
    return;
  emit(s, CLTCP_EV_SHUTDOWN, status, NULL, 0);
}

/* After bytes left (from a libuv callback or the end of the turn, never
 * from inside a call): the drain mark, the FLUSHED events now due, and the
 * close or shutdown that waited for an empty queue. */
static void after_progress(cltcp__socket *s) {
  if (s->above_mark && queued(s) <= s->drain_mark) {
    s->above_mark = false;
    if (!s->h.closing) {
      emit(s, CLTCP_EV_DRAIN, 0, NULL, queued(s));
      if (s->uv_closed)
        return;
    }
  }
  emit_flushed(s);
  if (s->uv_closed)
    return;
  if (idle_writer(s) && s->wq_len == 0)
    queue_emptied(s);
  else
    arm_timer(s);
}

static void write_cb(uv_write_t *req, int status) {
  cltcp__socket *s = req->data;
  s->writing = false;
  if (status == UV_ECANCELED || s->uv_closed) {
    s->wf_len = s->wf_off = s->wf_chunk = 0;
    return;
  }
  if (status < 0) {
    s->wf_len = s->wf_off = s->wf_chunk = 0;
    fail(s, status);
    return;
  }
  s->sent += s->wf_chunk;
  s->wf_off += s->wf_chunk;
  s->wf_chunk = 0;
  if (s->wf_off >= s->wf_len) {
    s->wf_len = s->wf_off = 0;
    wbuf_release(s->h.loop, &s->wf, &s->wf_cap);
  }
  s->last_write = now(s);
  s->last_queued = queued(s);
  if (s->wf_len > 0 || s->wq_len > 0) {
    start_write(s);
    if (s->uv_closed)
      return;
  }
  after_progress(s);
}

/* Hands the next chunk of `wf' to libuv -- or, when `wf' is done, the bytes
 * collected in `wq' -- or starts a pending shutdown. */
static void start_write(cltcp__socket *s) {
  uv_buf_t b;
  uint8_t *tb;
  size_t tc;
  int rc;
  if (s->writing || s->state != ST_CONNECTED || s->uv_closed)
    return;
  if (s->wf_len == 0) {
    if (s->wq_len == 0) {
      if (s->shut_wanted && !s->shut_started) {
        s->shut_started = true;
        s->sreq.data = s;
        rc = uv_shutdown(&s->sreq, (uv_stream_t *)&s->tcp, shutdown_cb);
        if (rc != 0)
          fail_later(s, rc);
      }
      return;
    }
    tb = s->wf;
    tc = s->wf_cap;
    s->wf = s->wq;
    s->wf_cap = s->wq_cap;
    s->wf_len = s->wq_len;
    s->wf_off = 0;
    s->wq = tb;
    s->wq_cap = tc;
    s->wq_len = 0;
  }
  s->wf_chunk = s->wf_len - s->wf_off;
  if (s->wf_chunk > MAX_CHUNK)
    s->wf_chunk = MAX_CHUNK;
  /* Not uv_buf_init(): its length parameter is `unsigned'. */
  b.base = (char *)s->wf + s->wf_off;
  b.len = s->wf_chunk;
  s->wreq.data = s;
  s->sends++;
  rc = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, write_cb);
  if (rc != 0) {
    s->wf_len = s->wf_off = s->wf_chunk = 0;
    fail_later(s, rc);
    return;
  }
  s->writing = true;
}

/* Sends what `wq' collected: one uv_try_write of all of it (up to
 * MAX_CHUNK), the rest through uv_write.  Nothing is emitted here. */
static void send_collected(cltcp__socket *s) {
  uv_buf_t b;
  int n;
  if (s->state != ST_CONNECTED || s->uv_closed || s->wq_len == 0 ||
      !idle_writer(s) || s->tcp.write_queue_size != 0)
    return; /* connected() or write_cb() sends it */
  b.base = (char *)s->wq;
  b.len = s->wq_len < MAX_CHUNK ? s->wq_len : MAX_CHUNK;
  s->sends++;
  n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
  /* Any error other than EAGAIN is left for uv_write to report through its
   * callback, so failures arrive as events, never from here. */
  if (n > 0) {
    s->sent += (uint64_t)n;
    s->last_write = now(s);
    if ((size_t)n == s->wq_len) {
      /* All of it left: an idle socket keeps no buffer. */
      s->wq_len = 0;
      wbuf_release(s->h.loop, &s->wq, &s->wq_cap);
      return;
    }
  } else {
    n = 0;
  }
  /* Hand the rest to uv_write from where the kernel stopped: `wq' becomes
   * `wf' (empty, as nothing is in flight) without moving a byte. */
  {
    uint8_t *tb = s->wf;
    size_t tc = s->wf_cap;
    s->wf = s->wq;
    s->wf_cap = s->wq_cap;
    s->wf_len = s->wq_len;
    s->wf_off = (size_t)n;
    s->wq = tb;
    s->wq_cap = tc;
    s->wq_len = 0;
  }
  start_write(s);
}

/* The end of the turn a socket was written in: the turn's writes leave
 * together. */
static void turn_end_run(cltcp__deferred *d) {
  cltcp__socket *s = (cltcp__socket *)((char *)d -
                                       offsetof(cltcp__socket, fq));
  uint64_t before = s->sent;
  if (s->uv_closed)
    return;
  send_collected(s);
  if (s->uv_closed)
    return;
  if (s->sent != before || (s->marks_len > 0 && idle_writer(s)))
    after_progress(s);
  else
    arm_timer(s);
}

/* ---- connecting ---------------------------------------------------------- */

static void apply_options(cltcp__socket *s) {
  if (s->nodelay)
    uv_tcp_nodelay(&s->tcp, 1);
  if (s->keepalive)
    uv_tcp_keepalive(&s->tcp, 1, s->keepalive_delay);
}

static void connected(cltcp__socket *s) {
  uint64_t n = now(s);
  s->state = ST_CONNECTED;
  s->last_read = s->last_write = n;
  s->last_queued = 0;
  free(s->addrs);
  s->addrs = NULL;
  s->naddrs = 0;
  apply_options(s);
  if (!s->h.closing) {
    emit(s, CLTCP_EV_CONNECT, 0, NULL, 0);
    if (s->uv_closed)
      return;
  }
  start_write(s);
  if (s->uv_closed)
    return;
  start_reading(s);
  arm_timer(s);
}

static void connect_cb(uv_connect_t *req, int status) {
  cltcp__socket *s = req->data;
  if (status == UV_ECANCELED || s->uv_closed)
    return;
  if (status == 0) {
    connected(s);
    return;
  }
  s->last_err = status;
  if (s->next_addr < s->naddrs && !s->h.closing) {
    try_connect_next(s);
    return;
  }
  fail(s, status);
}

static int start_connect(cltcp__socket *s, const struct sockaddr *sa) {
  int rc;
  s->state = ST_CONNECTING;
  s->creq.data = s;
  rc = uv_tcp_connect(&s->creq, &s->tcp, sa, connect_cb);
  return rc;
}

static void reopen_cb(uv_handle_t *h) {
  cltcp__socket *s = h->data;
  s->tcp_reopening = false;
  if (s->uv_closed) {
    /* Closed while reopening: this close counts for the socket. */
    uv_closed_cb(h);
    return;
  }
  uv_tcp_init(&s->h.loop->uv, &s->tcp);
  s->tcp.data = s;
  cltcp__handle_apply_ref(&s->h); /* a fresh handle is referenced */
  try_connect_next(s);
}

/* Tries the next resolved address; the first attempt uses the fresh tcp
 * handle, later ones close and reopen it (a socket that failed to connect
 * cannot be reused, and the family may differ). */
static void try_connect_next(cltcp__socket *s) {
  struct sockaddr_storage ss;
  int rc;
  if (uv_fileno((uv_handle_t *)&s->tcp, &(uv_os_fd_t){0}) == 0) {
    s->tcp_reopening = true;
    uv_close((uv_handle_t *)&s->tcp, reopen_cb);
    return;
  }
  while (s->next_addr < s->naddrs) {
    const cltcp_addr *a = &s->addrs[s->next_addr++];
    if (cltcp__parse_addr(&ss, a->addr, s->port) != 0)
      continue;
    rc = start_connect(s, (struct sockaddr *)&ss);
    if (rc == 0)
      return;
    s->last_err = rc;
    /* uv_tcp_connect may have opened the fd before failing. */
    if (uv_fileno((uv_handle_t *)&s->tcp, &(uv_os_fd_t){0}) == 0) {
      s->tcp_reopening = true;
      uv_close((uv_handle_t *)&s->tcp, reopen_cb);
      return;
    }
  }
  fail(s, s->last_err != 0 ? s->last_err : CLTCP_ENOTFOUND);
}

static void dns_done(void *arg, int status, const cltcp_addr *addrs,
                     size_t n) {
  cltcp__socket *s = arg;
  s->dns = NULL;
  if (s->uv_closed)
    return;
  if (status == UV_ECANCELED && s->h.loop->closing)
    return; /* loop teardown: cltcp__socket_teardown() closes the socket */
  if (status < 0 || n == 0) {
    fail(s, status < 0 ? status : CLTCP_ENOTFOUND);
    return;
  }
  s->addrs = malloc(n * sizeof(*addrs));
  if (s->addrs == NULL) {
    fail(s, UV_ENOMEM);
    return;
  }
  memcpy(s->addrs, addrs, n * sizeof(*addrs));
  s->naddrs = n;
  s->next_addr = 0;
  s->state = ST_CONNECTING;
  try_connect_next(s);
}

/* ---- internal API for server.c and loop.c ------------------------------ */

int cltcp__socket_create(cltcp__socket **out, cltcp__loop *loop, cltcp_cb cb,
                         uintptr_t ctx) {
  cltcp__socket *s = calloc(1, sizeof(*s));
  int rc;
  if (s == NULL)
    return UV_ENOMEM;
  rc = cltcp__id_alloc(&s->h.id, loop, CLTCP_KIND_SOCKET, s);
  if (rc != 0) {
    free(s);
    return rc;
  }
  s->h.loop = loop;
  s->h.kind = CLTCP_KIND_SOCKET;
  s->h.cb = cb;
  s->h.ctx = ctx;
  s->read_enabled = s->write_enabled = true;
  s->drain_mark = (size_t)-1;
  s->dfr.prev = s->dfr.next = &s->dfr;
  s->fq.prev = s->fq.next = &s->fq;
  uv_tcp_init(&loop->uv, &s->tcp);
  uv_timer_init(&loop->uv, &s->timer);
  s->tcp.data = s;
  s->timer.data = s;
  s->h.uvh[0] = (uv_handle_t *)&s->tcp;
  s->h.uvh[1] = (uv_handle_t *)&s->timer;
  cltcp__handle_link(loop, &s->h);
  *out = s;
  return 0;
}

uv_stream_t *cltcp__socket_stream(cltcp__socket *s) {
  return (uv_stream_t *)&s->tcp;
}

cltcp_id cltcp__socket_id(cltcp__socket *s) { return s->h.id; }

static void unused_closed(uv_handle_t *h) {
  cltcp__socket *s = h->data;
  if (--s->h.pending_closes == 0)
    socket_free(s);
}

void cltcp__socket_destroy_unused(cltcp__socket *s) {
  s->uv_closed = true;
  s->h.closing = true;
  s->h.pending_closes = 2;
  uv_close((uv_handle_t *)&s->tcp, unused_closed);
  uv_close((uv_handle_t *)&s->timer, unused_closed);
}

void cltcp__socket_accepted(cltcp__socket *s) {
  uint64_t n = now(s);
  s->state = ST_CONNECTED;
  s->accepted = true;
  s->last_read = s->last_write = n;
}

int cltcp__socket_state(cltcp__handle *h, bool *accepted) {
  static const int map[] = {CLTCP_STATE_NEW, CLTCP_STATE_RESOLVING,
                            CLTCP_STATE_CONNECTING, CLTCP_STATE_CONNECTED};
  cltcp__socket *s = (cltcp__socket *)h;
  *accepted = s->accepted;
  return map[s->state];
}

void cltcp__socket_start(cltcp__socket *s) {
  if (s->h.closing)
    return;
  start_write(s);
  if (s->uv_closed)
    return;
  start_reading(s);
  arm_timer(s);
}

void cltcp__socket_recover(cltcp__handle *h) {
  cltcp__socket *s = (cltcp__socket *)h;
  void **w = s->tcp.io_watcher.pending_queue;
  void **head = s->h.loop->uv.pending_queue;
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

void cltcp__socket_teardown(cltcp__handle *h) {
  close_now((cltcp__socket *)h, UV_ECANCELED);
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
  s->port = port;
  s->connect_start = now(s);
  if (cltcp__parse_addr(&ss, host, port) == 0) {
    rc = start_connect(s, (struct sockaddr *)&ss);
    if (rc != 0)
      fail_later(s, rc);
  } else {
    s->state = ST_RESOLVING;
    rc = cltcp__dns_start(&s->dns, s->h.loop, host, CLTCP_AF_UNSPEC,
                          dns_done, s);
    if (rc != 0) {
      s->state = ST_NEW;
      s->dns = NULL;
      return rc;
    }
  }
  arm_timer(s);
  return 0;
}

int cltcp_socket_set_read_mode(cltcp_id id, int mode) {
  cltcp__socket *s;
  int rc;
  if (mode != CLTCP_READ_DRAIN && mode != CLTCP_READ_KEEP)
    return UV_EINVAL;
  rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (mode == CLTCP_READ_DRAIN && (s->kend > s->kstart || s->blen > 0))
    return CLTCP_EMODE;
  s->mode = mode;
  return 0;
}

int cltcp_socket_buffered(size_t *n, cltcp_id id) {
  cltcp__socket *s;
  int rc;
  if (n == NULL)
    return UV_EINVAL;
  rc = cltcp__handle_lookup((cltcp__handle **)&s, id, CLTCP_KIND_SOCKET,
                            true);
  if (rc != 0)
    return rc;
  *n = s->kend - s->kstart + s->blen;
  return 0;
}

int cltcp_socket_read(size_t *n, cltcp_id id, uint8_t *dst, size_t max) {
  cltcp__socket *s;
  size_t avail, done;
  int rc;
  if (n == NULL || (dst == NULL && max > 0))
    return UV_EINVAL;
  rc = cltcp__handle_lookup((cltcp__handle **)&s, id, CLTCP_KIND_SOCKET,
                            true);
  if (rc != 0)
    return rc;
  /* Kept bytes come first: the shared buffer is only borrowed when none
   * were kept (alloc_cb). */
  avail = s->kend - s->kstart;
  if (avail > max)
    avail = max;
  if (avail > 0) {
    memcpy(dst, s->kbuf + s->kstart, avail);
    s->kstart += avail;
    if (s->kstart == s->kend)
      s->kstart = s->kend = 0;
  }
  done = avail;
  if (done < max && s->blen > 0) {
    size_t take = s->blen < max - done ? s->blen : max - done;
    memcpy(dst + done, s->bptr, take);
    s->bptr += take;
    s->blen -= take;
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
  if (s->h.loop->running) /* cltcp_loop_run() blocked SIGPIPE already */
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
  /* Reserve the FLUSHED first, so a failure leaves nothing half done. */
  if (flags & CLTCP_WRITE_NOTIFY) {
    rc = push_mark(s, s->written + len);
    if (rc != 0)
      return rc;
  }
  q = queued(s);
  if (len >= COALESCE_MAX && s->wq_len == 0)
    flags |= CLTCP_WRITE_NOW;
  if (len > 0) {
    if ((flags & CLTCP_WRITE_NOW) && s->state == ST_CONNECTED && q == 0 &&
        idle_writer(s)) {
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
      if (n > 0) {
        done = (size_t)n;
        s->sent += done;
      }
    }
    s->written += done; /* those bytes left, whatever happens next */
    if (done < len) {
      cltcp__loop *loop = s->h.loop;
      if (s->wq == NULL && len - done <= CLTCP__WBUF_SIZE &&
          loop->nwbuf_spare > 0) {
        s->wq = loop->wbuf_spare[--loop->nwbuf_spare];
        s->wq_cap = CLTCP__WBUF_SIZE;
      }
      rc = append(&s->wq, &s->wq_len, &s->wq_cap, data + done, len - done);
      if (rc != 0) {
        if (flags & CLTCP_WRITE_NOTIFY)
          s->marks_len--; /* the mark just pushed */
        return rc;
      }
    }
    s->written += len - done;
    if (done < len) {
      if (q == 0)
        s->last_write = now(s); /* the write clock starts now */
      if (tried)
        start_write(s); /* the kernel is full: no second try */
      else if (flags & CLTCP_WRITE_NOW)
        send_collected(s); /* this write and what the turn collected */
      else
        cltcp__at_turn_end(s->h.loop, &s->fq, turn_end_run);
      if (s->drain_mark != (size_t)-1 && queued(s) > s->drain_mark)
        s->above_mark = true;
      arm_timer(s);
    }
  }
  if ((flags & CLTCP_WRITE_NOTIFY) && s->sent >= s->written) {
    /* Everything before it has left already: the FLUSHED comes on the next
     * turn, never from inside this call. */
    s->dfr_flushed = true;
    cltcp__defer(s->h.loop, &s->dfr, deferred_run);
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
  *n = queued(s);
  return 0;
}

int cltcp_socket_set_drain_mark(cltcp_id id, size_t mark) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  s->drain_mark = mark;
  s->above_mark = mark != (size_t)-1 && queued(s) > mark;
  return 0;
}

int cltcp_socket_set_timeouts(cltcp_id id, double read_seconds,
                              double write_seconds) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  s->read_to = cltcp__seconds_to_ms(read_seconds);
  s->write_to = cltcp__seconds_to_ms(write_seconds);
  /* A new timeout counts from now, not from an old activity. */
  if (s->state == ST_CONNECTED) {
    uint64_t n = now(s);
    s->last_read = n;
    s->last_write = n;
  }
  if (s->timer_due) {
    uv_timer_stop(&s->timer);
    s->timer_due = 0;
  }
  arm_timer(s);
  return 0;
}

int cltcp_socket_set_connect_timeout(cltcp_id id, double seconds) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  s->connect_to = cltcp__seconds_to_ms(seconds);
  if (s->timer_due) {
    uv_timer_stop(&s->timer);
    s->timer_due = 0;
  }
  arm_timer(s);
  return 0;
}

int cltcp_socket_enable(cltcp_id id, int read, int write) {
  cltcp__socket *s;
  int rc = sock_get(&s, id);
  if (rc != 0)
    return rc;
  if (write == 0 || write == 1) {
    if (write && !s->write_enabled)
      s->last_write = now(s);
    s->write_enabled = write;
  }
  if (read == 1 && !s->read_enabled) {
    s->read_enabled = true;
    s->last_read = now(s);
    start_reading(s);
  } else if (read == 0 && s->read_enabled) {
    s->read_enabled = false;
    if (s->reading) {
      uv_read_stop((uv_stream_t *)&s->tcp);
      s->reading = false;
    }
  }
  if (s->timer_due) {
    uv_timer_stop(&s->timer);
    s->timer_due = 0;
  }
  arm_timer(s);
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
  /* start_write() starts the shutdown once connected and flushed. */
  if (queued(s) == 0 && idle_writer(s))
    start_write(s);
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
    if (s->fq.queued)
      send_collected(s);
    close_now(s, 0);
  } else {
    close_flush(s);
  }
  return 0;
}

int cltcp_socket_send_count(uint64_t *n, cltcp_id id) {
  cltcp__socket *s;
  int rc;
  if (n == NULL)
    return UV_EINVAL;
  rc = cltcp__handle_lookup((cltcp__handle **)&s, id, CLTCP_KIND_SOCKET,
                            true);
  if (rc != 0)
    return rc;
  *n = s->sends;
  return 0;
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
  s->keepalive = enable != 0;
  s->keepalive_delay = delay;
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
