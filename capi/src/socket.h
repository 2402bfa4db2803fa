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

typedef struct cltcp__socket {
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
  bool uv_closed;       /* uv_close called on tcp and timer (close_now) */
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
} cltcp__socket;

/* Bytes accepted by cltcp_socket_write() and not yet handed to the kernel
 * for good: in libuv's queue, the rest of `wf', and `wq'. */
static inline size_t sock_queued(const cltcp__socket *s) {
  return s->tcp.write_queue_size + (s->wf_len - s->wf_off - s->wf_chunk) +
         s->wq_len;
}

/* Nothing handed to libuv is still in flight and nothing waits in `wf'. */
static inline bool sock_idle_writer(const cltcp__socket *s) {
  return !s->writing && s->wf_len == 0;
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
