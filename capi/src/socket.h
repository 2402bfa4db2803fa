/*
 * socket.h -- the TCP socket, shared by the socket files:
 *   tcp.c      the socket's life: create, options, the close tail, the
 *              timeouts (one timer per socket), teardown and recovery
 *   stream.c   reading (drain and keep modes, the keep buffer), the write
 *              queue with end-of-turn coalescing, FLUSHED and DRAIN,
 *              shutdown, and cltcp_socket_close()'s two modes
 *   connect.c  connecting by address or by name, trying each address, and
 *              the accept entry for server.c (both end in a connected
 *              socket that starts its I/O)
 * The calls between them go one way, connect.c -> stream.c -> tcp.c, so the
 * files form no circle.  Nothing here is part of the ABI.
 */
#ifndef CLTCP_SOCKET_H
#define CLTCP_SOCKET_H

#include "internal.h"

enum {
  ST_NEW = 0,     /* created, not connecting */
  ST_RESOLVING,   /* waiting for DNS */
  ST_CONNECTING,  /* uv_tcp_connect in flight */
  ST_CONNECTED    /* connected (or accepted) */
};

/* What a socket holds only while it uses it, each allocated on first use so
 * that an idle connection costs little more than its uv_tcp_t (issue 12;
 * writers come from a pool of the loop, so a keep-alive server's response
 * costs no malloc()):
 *   timeouts   the timer and the clocks, from the first timeout set
 *   connecting the connect request and the addresses to try, until connected
 *   keep       the keep-mode input buffer, from the first DATA callback
 *              that leaves bytes unread, until they are all read
 *   writer     the turn's collected bytes, the uv_write in flight and its
 *              buffer, the byte counts, the FLUSHED marks: from the first
 *              write, given back when all has left */
typedef struct cltcp__sock_timeouts {
  uv_timer_t timer;
  /* timeouts (ms, 0 = none) and clocks (ms of the precise clock) */
  uint64_t read_to, write_to, connect_to;
  uint64_t last_read, last_write;
  uint64_t timer_due;   /* when the armed timer fires; 0 = not armed */
  size_t last_queued;   /* queue size at the last write-progress check */
} cltcp__sock_timeouts;

typedef struct cltcp__sock_connecting {
  uv_connect_t creq;
  cltcp__dns_req *dns;
  cltcp_addr *addrs;
  size_t naddrs, next_addr;
  uint64_t start;       /* sock_now() when cltcp_socket_connect() was called */
  int port;
  int last_err;
} cltcp__sock_connecting;

typedef struct cltcp__sock_keep {
  /* bytes [kstart, kend) of kbuf.  Made only when a DATA callback left
   * bytes unread, and given back once they are all read (stream.c); the
   * unread rest of the loop's shared buffer during a DATA callback is the
   * loop's (kb_ptr, kb_len). */
  uint8_t *kbuf;
  size_t kcap, kstart, kend;
} cltcp__sock_keep;

typedef struct cltcp__sock_writer {
  /* `wq' collects the writes of the current turn until its end, and what is
   * written while a uv_write is in flight; it swaps with `wf', so the
   * steady state allocates nothing. */
  uint8_t *wq;
  size_t wq_len, wq_cap;
  /* byte counts since the writer was taken (every byte written before had
   * left then): accepted by cltcp_socket_write, and handed to the kernel
   * for good.  A NOTIFY write's FLUSHED is due once `sent' reaches the
   * `written' count its write ended at. */
  uint64_t written, sent;
  uv_write_t wreq;
  /* `wf' is being handed to uv_write, chunk by chunk: bytes [0, wf_off)
   * are sent, [wf_off, wf_off + wf_chunk) are in the uv_write in flight. */
  uint8_t *wf;
  size_t wf_len, wf_cap, wf_off, wf_chunk;
  uint64_t *marks;      /* ring of due counts, one per NOTIFY write */
  size_t marks_head, marks_len, marks_cap;
} cltcp__sock_writer;

/* The rest of what a socket uses rarely, in one part made on first use:
 * the parts above but the writer, an error owed, a keep-alive delay to
 * apply at the connection, a drain mark too large for the socket's own
 * field.  Kept until the socket is freed. */
typedef struct cltcp__sock_more {
  cltcp__sock_timeouts *tmo;
  cltcp__sock_connecting *conn;
  cltcp__sock_keep *keep;
  uv_shutdown_t *sreq;
  size_t drain_mark;        /* when the socket's field says SOCK_DRAIN_BIG */
  int dfr_error;            /* an ERROR to deliver on the next turn */
  unsigned keepalive_delay; /* set before the connection */
} cltcp__sock_more;

/* The socket's own drain mark field: none ((size_t)-1), or the mark is in
 * the `more' part; any other value is the mark. */
#define SOCK_DRAIN_NONE UINT32_MAX
#define SOCK_DRAIN_BIG (UINT32_MAX - 1)

/* What every socket pays beyond its uv_tcp_t and the handle head: 24 bytes
 * (issue 12), so that a socket is a 320-byte malloc() chunk.  The `more'
 * part's pointer is the tcp handle's `data' (libuv's field for its user,
 * which libuv never reads or writes): the tcp handle's callbacks get their
 * socket with container_of, not through `data'. */
typedef struct cltcp__socket {
  cltcp__handle h;
  uv_tcp_t tcp;
  cltcp__sock_writer *w;
  uint64_t sends;       /* uv_try_write and uv_write calls (for tests) */
  uint32_t drain_mark;  /* see SOCK_DRAIN_NONE */
  unsigned state : 2;
  unsigned mode : 1;
  unsigned uv_closed : 1;     /* uv_close called on the uv handles */
  unsigned tcp_reopening : 1; /* tcp closing between two connect attempts */
  unsigned reading : 1;       /* uv_read_start active */
  unsigned read_enabled : 1;
  unsigned write_enabled : 1;
  unsigned eof : 1;           /* peer's EOF seen */
  unsigned writing : 1;       /* wreq in flight */
  unsigned flush_close : 1;   /* close once the queue is empty */
  unsigned shut_wanted : 1;   /* cltcp_socket_shutdown called */
  unsigned shut_started : 1;
  unsigned above_mark : 1;
  unsigned nodelay : 1;
  unsigned keepalive : 1;
  unsigned accepted : 1;      /* made by a server (cltcp_loop_handles()) */
  unsigned dfr_flushed : 1;   /* a FLUSHED to deliver on the next turn */
  /* queued by id (defer.c): deferred_run() for the next turn, and
   * turn_end_run() for the end of the turn (write coalescing) */
  unsigned dfr_queued : 1;
  unsigned fq_queued : 1;
} cltcp__socket;
_Static_assert(sizeof(cltcp__socket) <= 312, "a socket fits 320 bytes");

/* The socket of its tcp handle. */
static inline cltcp__socket *sock_of_tcp(void *tcp) {
  return cltcp__container_of(tcp, cltcp__socket, tcp);
}

/* The `more' part, NULL until made (cltcp__socket_more()). */
static inline cltcp__sock_more *sock_x(const cltcp__socket *s) {
  return s->tcp.data;
}

/* The rare parts (NULL when the socket has none). */
static inline cltcp__sock_timeouts *sock_tmo(const cltcp__socket *s) {
  return sock_x(s) != NULL ? sock_x(s)->tmo : NULL;
}
static inline cltcp__sock_connecting *sock_conn(const cltcp__socket *s) {
  return sock_x(s) != NULL ? sock_x(s)->conn : NULL;
}
static inline cltcp__sock_keep *sock_keep(const cltcp__socket *s) {
  return sock_x(s) != NULL ? sock_x(s)->keep : NULL;
}

/* The drain mark, (size_t)-1 for none. */
static inline size_t sock_drain_mark(const cltcp__socket *s) {
  if (s->drain_mark == SOCK_DRAIN_NONE)
    return (size_t)-1;
  if (s->drain_mark == SOCK_DRAIN_BIG)
    return sock_x(s)->drain_mark;
  return s->drain_mark;
}

/* Bytes collected for the end of the turn (or behind a uv_write). */
static inline size_t sock_collected(const cltcp__socket *s) {
  return s->w != NULL ? s->w->wq_len : 0;
}

/* Bytes accepted by cltcp_socket_write() and not yet handed to the kernel
 * for good: in libuv's queue, the rest of `wf', and `wq'. */
static inline size_t sock_queued(const cltcp__socket *s) {
  const cltcp__sock_writer *w = s->w;
  return s->tcp.write_queue_size +
         (w != NULL ? w->wf_len - w->wf_off - w->wf_chunk + w->wq_len : 0);
}

/* Nothing handed to libuv is still in flight and nothing waits in `wf'. */
static inline bool sock_idle_writer(const cltcp__socket *s) {
  return !s->writing && (s->w == NULL || s->w->wf_len == 0);
}

/* FLUSHED marks still owed. */
static inline size_t sock_marks(const cltcp__socket *s) {
  return s->w != NULL ? s->w->marks_len : 0;
}

/* Bytes kept in keep mode (in kbuf, and unread in the shared buffer). */
static inline size_t sock_kept(const cltcp__socket *s) {
  const cltcp__sock_keep *k = sock_keep(s);
  const cltcp__loop *loop = cltcp__handle_loop(&s->h);
  return (k != NULL ? k->kend - k->kstart : 0) +
         (loop->kb_sock == (const void *)s ? loop->kb_len : 0);
}

/* The socket clocks (last_read, last_write, connect_start, deadlines) are
 * milliseconds of libuv's precise clock, not the loop's cached time, which
 * is stale after a long callback or outside cltcp_loop_run() and would make
 * a timeout fire early.  A clock is started with sock_now() (rounded up)
 * and a deadline checked with sock_now_floor() (rounded down), so a timeout
 * never fires before its time by the wall clock. */
static inline uint64_t sock_now(void) {
  return (uv_hrtime() + 999999) / 1000000;
}

static inline uint64_t sock_now_floor(void) { return uv_hrtime() / 1000000; }

/* Activity that restarts a clock: only a socket with timeouts keeps clocks,
 * so the others read no clock per read or write. */
static inline void sock_read_happened(cltcp__socket *s) {
  if (sock_tmo(s) != NULL)
    sock_tmo(s)->last_read = sock_now();
}
static inline void sock_write_happened(cltcp__socket *s) {
  if (sock_tmo(s) != NULL)
    sock_tmo(s)->last_write = sock_now();
}

static inline void sock_emit(cltcp__socket *s, int event, int status,
                             const uint8_t *data, size_t len) {
  s->h.cb(s->h.ctx, s->h.id, event, status, 0, data, len);
}

/* A live (not closing) socket by id. */
static inline int sock_get(cltcp__socket **out, cltcp_id id) {
  return cltcp__handle_lookup((cltcp__handle **)out, id, CLTCP_KIND_SOCKET,
                              false);
}

/* A socket by id, also a closing one (whose kept bytes stay readable until
 * its CLOSE event). */
static inline int sock_get_closing(cltcp__socket **out, cltcp_id id) {
  return cltcp__handle_lookup((cltcp__handle **)out, id, CLTCP_KIND_SOCKET,
                              true);
}

/* Stops reading if the socket reads. */
static inline void sock_read_stop(cltcp__socket *s) {
  if (s->reading) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = false;
  }
}

/* ---- tcp.c --------------------------------------------------------------- */
/* Makes a socket of the loop, linked and with an id. */
CLTCP__HIDDEN int cltcp__socket_create(cltcp__socket **out, cltcp__loop *loop,
                                       cltcp_cb cb, uintptr_t ctx);
/* Closes a socket made by cltcp__socket_create() that nobody knows: no
 * event, its id dies now. */
CLTCP__HIDDEN void cltcp__socket_destroy_unused(cltcp__socket *s);
/* TCP_NODELAY and keep-alive as set before the connection (connect.c). */
CLTCP__HIDDEN void cltcp__socket_apply_options(cltcp__socket *s);
/* The close tail: closes the uv handles (the socket's close status from
 * `status' unless it has one), aborts a lookup; CLOSE follows once both
 * are closed (cltcp__socket_uv_closed). */
CLTCP__HIDDEN void cltcp__socket_close_now(cltcp__socket *s, int status);
CLTCP__HIDDEN void cltcp__socket_uv_closed(uv_handle_t *uvh);
/* Starts a graceful close: stop reading, send what is queued, then close. */
CLTCP__HIDDEN void cltcp__socket_close_flush(cltcp__socket *s);
/* An error seen in a libuv callback: tell the owner, then close. */
CLTCP__HIDDEN void cltcp__socket_fail(cltcp__socket *s, int err);
/* Arms the socket's timer for its earliest deadline (a timer armed early
 * enough stays); cltcp__socket_rearm_timer() first forgets the armed one,
 * after a deadline moved later. */
CLTCP__HIDDEN void cltcp__socket_arm_timer(cltcp__socket *s);
CLTCP__HIDDEN void cltcp__socket_rearm_timer(cltcp__socket *s);
/* The socket's timeouts part, made on first use (UV_ENOMEM). */
CLTCP__HIDDEN int cltcp__socket_timeouts(cltcp__socket *s);
/* The socket's `more' part, made on first use (UV_ENOMEM). */
CLTCP__HIDDEN int cltcp__socket_more(cltcp__socket *s);
/* Frees the `more' part if nothing in it is needed any more (a connected
 * socket's: its keep-alive delay was applied). */
CLTCP__HIDDEN void cltcp__socket_more_trim(cltcp__socket *s);

/* ---- stream.c ------------------------------------------------------------ */
/* Reports err on the next turn (ERROR, then close): for failures known
 * inside a call. */
CLTCP__HIDDEN void cltcp__socket_fail_later(cltcp__socket *s, int err);
/* Starts reading if enabled, connected and not at EOF or closing. */
CLTCP__HIDDEN void cltcp__socket_start_reading(cltcp__socket *s);
/* Hands the queue (or a pending shutdown) to libuv if nothing is in flight
 * and the socket is connected. */
CLTCP__HIDDEN void cltcp__socket_start_write(cltcp__socket *s);

#endif /* CLTCP_SOCKET_H */
