/*
 * internal.h -- private structures and cltcp__ functions shared between the
 * source files of libcltcp.  Nothing here is part of the ABI.
 */
#ifndef CLTCP_INTERNAL_H
#define CLTCP_INTERNAL_H

#include "cltcp.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Write buffers: the first size of a socket's buffers, and how many spare
 * ones a loop keeps (tcp.c). */
#define CLTCP__WBUF_SIZE 4096u
#define CLTCP__WBUF_SPARES 64u

#define CLTCP__HIDDEN __attribute__((visibility("hidden")))

/* ---- ids ---------------------------------------------------------------
 * Layout of an id, from bit 63 down:
 *
 *   63..62  always 0, so every id is a non-negative fixnum in a 64-bit Lisp
 *           (SBCL's fixnums hold 62 bits plus sign): ids cross CFFI without
 *           consing a bignum
 *   61..59  kind (CLTCP_KIND_*, 1 .. CLTCP__KIND_MAX)
 *   58..48  loop index: the loop's entry in the global loop table (1..2047)
 *   47..24  slot index in that loop's handle table; all ones for a loop
 *           id, which no slot has, so that no loop id relabelled with a
 *           handle kind names a handle
 *   23..0   generation (never 0, so no valid id is 0)
 *
 * A loop id carries the loop's generation: a per-index counter, bumped for
 * each loop that takes the index.  A handle id carries its slot's
 * generation, bumped each time the slot is freed.  Handle generations
 * survive the loop: each loop index has a floor (`gen_base'), the highest
 * handle generation any earlier loop at that index used, and a new loop's
 * slots count up from above it.  So generations only grow, per loop index,
 * for the life of the process:
 *  - no id is ever issued twice (a slot whose generation would pass
 *    CLTCP__GEN_MAX is retired, never reused; a loop index whose floor
 *    reaches CLTCP__GEN_RETIRE, or whose loop generation CLTCP__GEN_MAX,
 *    is retired when its loop closes; with every index retired
 *    cltcp_loop_new() gives UV_ENOMEM);
 *  - a handle id whose generation is at most its index's floor belongs to
 *    a dead loop, which a lookup decides from the global table alone,
 *    without touching any loop's memory (see ids.c for the threads).
 * A slot stores the whole id it holds, and a lookup compares it: kind,
 * loop, slot and generation must all match. */
#define CLTCP__KIND_SHIFT 59
#define CLTCP__LOOP_SHIFT 48
#define CLTCP__SLOT_SHIFT 24
#define CLTCP__LOOP_MAX 2048u
#define CLTCP__SLOT_MAX 0xFFFFFFu  /* slots per loop: 0 .. 0xFFFFFE */
#define CLTCP__LOOP_SLOT 0xFFFFFFu /* the slot field of a loop id */
#define CLTCP__GEN_MASK 0xFFFFFFu
/* The largest generation used, and the floor from which a loop index is
 * retired.  A white-box test (tests/c/test_ids_gen.c) compiles ids.c with
 * small values to reach the limits; the library uses these. */
#ifndef CLTCP__GEN_MAX
#define CLTCP__GEN_MAX CLTCP__GEN_MASK
#endif
#ifndef CLTCP__GEN_RETIRE
#define CLTCP__GEN_RETIRE (CLTCP__GEN_MAX / 2)
#endif

/* The largest CLTCP_KIND_* value: every range check uses it.  Raise it with
 * each new kind (the kind field holds at most 7). */
#define CLTCP__KIND_MAX CLTCP_KIND_LAST
_Static_assert(CLTCP__KIND_MAX <= 7, "the kind field of an id has 3 bits");

/* Any bit above the kind field makes the "kind" out of range
 * (> CLTCP__KIND_MAX), so such made-up ids are rejected as unknown. */
static inline int cltcp__id_kind(cltcp_id id) {
  return (int)(id >> CLTCP__KIND_SHIFT);
}
static inline bool cltcp__kind_valid(int kind) {
  return kind > CLTCP_KIND_NONE && kind <= CLTCP__KIND_MAX;
}
static inline uint32_t cltcp__id_loop(cltcp_id id) {
  return (uint32_t)(id >> CLTCP__LOOP_SHIFT) & 0x7FFu;
}
static inline uint32_t cltcp__id_slot(cltcp_id id) {
  return (uint32_t)(id >> CLTCP__SLOT_SHIFT) & 0xFFFFFFu;
}
static inline uint32_t cltcp__id_gen(cltcp_id id) {
  return (uint32_t)id & CLTCP__GEN_MASK;
}
static inline cltcp_id cltcp__id_make(int kind, uint32_t loop, uint32_t slot,
                                      uint32_t gen) {
  return ((cltcp_id)kind << CLTCP__KIND_SHIFT) |
         ((cltcp_id)loop << CLTCP__LOOP_SHIFT) |
         ((cltcp_id)slot << CLTCP__SLOT_SHIFT) | (cltcp_id)gen;
}

/* A slot of a loop's handle table.  In use: ptr is the object and id its
 * whole id.  Free: ptr is NULL and id holds only the generation the next
 * id of this slot gets (kind 0, so no lookup can match it). */
typedef struct cltcp__slot {
  void *ptr;
  cltcp_id id;
  uint32_t next_free; /* free list link (index + 1, 0 = end) */
} cltcp__slot;

/* ---- deferred work ------------------------------------------------------
 * Work that must not run inside the call that produced it (libuv's rule:
 * a failure known during a call is reported on the next turn).  Items are
 * embedded in the structure that owns them and unlinked when it dies. */
typedef struct cltcp__deferred cltcp__deferred;
typedef void (*cltcp__deferred_fn)(cltcp__deferred *d);
struct cltcp__deferred {
  cltcp__deferred *prev, *next;
  cltcp__deferred_fn fn;
  bool queued;
};

/* ---- loop ---------------------------------------------------------------- */
typedef struct cltcp__dns cltcp__dns; /* dns.c */

typedef struct cltcp__loop {
  uv_loop_t uv;
  cltcp_id id;
  uint32_t index; /* loop index in the global loop table */
  uint32_t gen_base; /* handle generations of this loop are above it */
  int running;    /* inside cltcp_loop_run() */
  int closing;    /* inside cltcp_loop_close() */
  /* handle table */
  cltcp__slot *slots;
  uint32_t nslots, capslots;
  uint32_t free_head; /* index + 1 of the first free slot, 0 = none */
  size_t live;        /* ids allocated in the table (ids.c counts them);
                         handles keep their id until they are freed */
  /* deferred work, run by `idle' (which keeps the loop from blocking) */
  uv_idle_t idle;
  uv_timer_t wake; /* unreferenced; see cltcp_loop_set_wakeup() */
  cltcp__deferred deferred; /* list head (circular) */
  /* the batch the idle callback is running; in the loop, not on the stack,
   * so that a callback that never returns (cltcp_loop_recover) leaves no
   * item linked to a dead frame */
  cltcp__deferred batch;
  /* SIGPIPE mask saved by the running cltcp_loop_run(), for recovery */
  sigset_t sig_old;
  bool sig_blocked;
  /* one read buffer shared by all drain-mode sockets of the loop: libuv
   * calls alloc_cb and read_cb back to back for one stream at a time */
  uint8_t *readbuf;
  size_t readbuf_len;
  /* Spare write buffers of CLTCP__WBUF_SIZE (tcp.c): a socket whose turn's
   * writes all left gives its buffer back here, so an idle socket holds no
   * write buffer and a busy one does not call malloc() per turn. */
  uint8_t *wbuf_spare[CLTCP__WBUF_SPARES];
  unsigned nwbuf_spare;
  cltcp__dns *dns; /* NULL until the first lookup */
  /* every socket, server and timer of the loop, for teardown */
  struct cltcp__handle *handles_head;
  /* ---- end of turn (write coalescing, tcp.c) ----
   * Work run once per turn after the poll phase, by `turn_check': the
   * sockets written during the turn send everything they collected in one
   * go.  While this list is not empty `idle' stays active, so that a poll
   * phase after the write (writes from timers, deferred events or outside
   * a turn) never blocks and adds no latency. */
  uv_check_t turn_check;
  cltcp__deferred turn_end; /* list head (circular) */
  cltcp__deferred turn_batch; /* the batch turn_check runs (like `batch') */
} cltcp__loop;

/* Common head of sockets, servers and timers. */
typedef struct cltcp__handle {
  struct cltcp__handle *hprev, *hnext; /* loop's list of live handles */
  cltcp__loop *loop;
  cltcp_id id;
  int kind;
  cltcp_cb cb;
  uintptr_t ctx;
  int close_status;  /* status of the CLOSE event */
  int pending_closes; /* uv handles still closing */
  /* Set when the owner or the library started closing the handle.  Its id
   * stays in the table until the CLOSE event has been delivered (so a
   * keep-mode socket's last bytes stay readable), but every call other than
   * reading returns CLTCP_ECLOSED from then on. */
  bool closing;
  /* The uv handles cltcp_handle_ref() acts on (NULL when unused), and
   * whether the owner unreferenced the handle.  A kind that re-initializes
   * one of them (a socket between connect attempts) applies `unref' again
   * with cltcp__handle_apply_ref(). */
  uv_handle_t *uvh[3];
  bool unref;
} cltcp__handle;

/* ids.c */
CLTCP__HIDDEN int cltcp__loop_lookup(cltcp__loop **out, cltcp_id id);
CLTCP__HIDDEN int cltcp__lookup(void **out, cltcp_id id, int kind);
CLTCP__HIDDEN int cltcp__id_alloc(cltcp_id *out, cltcp__loop *loop, int kind,
                                  void *ptr);
CLTCP__HIDDEN void cltcp__id_free(cltcp__loop *loop, cltcp_id id);
/* Looks up a socket, server or timer; a closing handle gives CLTCP_ECLOSED
 * unless allow_closing. */
CLTCP__HIDDEN int cltcp__handle_lookup(cltcp__handle **out, cltcp_id id,
                                       int kind, bool allow_closing);
CLTCP__HIDDEN int cltcp__loop_register(cltcp__loop *loop);
CLTCP__HIDDEN void cltcp__loop_unregister(cltcp__loop *loop);

/* loop.c */
CLTCP__HIDDEN void cltcp__defer(cltcp__loop *loop, cltcp__deferred *d,
                                cltcp__deferred_fn fn);
CLTCP__HIDDEN void cltcp__undefer(cltcp__loop *loop, cltcp__deferred *d);
/* Queues d to run at the end of the current turn (after the poll phase),
 * or of the next one when called outside a turn or from the end-of-turn
 * work itself.  Cancel with cltcp__undefer(). */
CLTCP__HIDDEN void cltcp__at_turn_end(cltcp__loop *loop, cltcp__deferred *d,
                                      cltcp__deferred_fn fn);
CLTCP__HIDDEN void cltcp__handle_link(cltcp__loop *loop, cltcp__handle *h);
CLTCP__HIDDEN void cltcp__handle_unlink(cltcp__loop *loop, cltcp__handle *h);
CLTCP__HIDDEN double cltcp__sanitize_seconds(double s);
/* Seconds (fractional) to milliseconds: NaN or <= 0 gives 0 (none), any
 * positive time at least 1. */
CLTCP__HIDDEN uint64_t cltcp__seconds_to_ms(double s);
/* Block SIGPIPE in this thread unless it is ignored; returns whether it
 * did, to be passed to cltcp__sigpipe_restore(). */
CLTCP__HIDDEN bool cltcp__sigpipe_block(sigset_t *old);
CLTCP__HIDDEN void cltcp__sigpipe_restore(const sigset_t *old, bool blocked);

/* tcp.c / server.c / timer.c: close for teardown (status UV_ECANCELED) */
CLTCP__HIDDEN void cltcp__socket_teardown(cltcp__handle *h);
/* cltcp_loop_recover(): unlink the socket's I/O watcher from a pending list
 * whose head was on an abandoned stack frame. */
CLTCP__HIDDEN void cltcp__socket_recover(cltcp__handle *h);
CLTCP__HIDDEN void cltcp__server_teardown(cltcp__handle *h);
CLTCP__HIDDEN void cltcp__timer_teardown(cltcp__handle *h);
/* signal.c / async.c: close for teardown (status UV_ECANCELED) */
CLTCP__HIDDEN void cltcp__signal_teardown(cltcp__handle *h);
CLTCP__HIDDEN void cltcp__async_teardown(cltcp__handle *h);
/* cltcp_loop_recover(): unlink the uv_async_t from the list of an abandoned
 * uv__async_io() (its head was on the dead frame). */
CLTCP__HIDDEN void cltcp__async_recover(cltcp__handle *h);
/* cltcp_loop_recover(): count as dispatched the signal an abandoned
 * uv__signal_event() read but did not finish (else closing waits for it). */
CLTCP__HIDDEN void cltcp__signal_recover(cltcp__handle *h);
CLTCP__HIDDEN int cltcp__signal_signum(cltcp__handle *h);
/* handles.c: uv_ref/uv_unref every uv handle of h as h->unref says */
CLTCP__HIDDEN void cltcp__handle_apply_ref(cltcp__handle *h);
/* tcp.c: make a socket for an accepted connection (server.c) */
typedef struct cltcp__socket cltcp__socket;
CLTCP__HIDDEN int cltcp__socket_create(cltcp__socket **out, cltcp__loop *loop,
                                       cltcp_cb cb, uintptr_t ctx);
CLTCP__HIDDEN uv_stream_t *cltcp__socket_stream(cltcp__socket *s);
/* Before the ACCEPT event: mark connected, start the clocks. */
CLTCP__HIDDEN void cltcp__socket_accepted(cltcp__socket *s);
/* After the ACCEPT event: start reading (unless closed or disabled). */
CLTCP__HIDDEN void cltcp__socket_start(cltcp__socket *s);
CLTCP__HIDDEN void cltcp__socket_destroy_unused(cltcp__socket *s);
CLTCP__HIDDEN cltcp_id cltcp__socket_id(cltcp__socket *s);
/* The socket's CLTCP_STATE_* (ignoring `closing'), and whether a server
 * made it. */
CLTCP__HIDDEN int cltcp__socket_state(cltcp__handle *h, bool *accepted);
/* server.c: the port a server listens on (0 if unknown). */
CLTCP__HIDDEN int cltcp__server_port(cltcp__handle *h);
/* dns.c: writes the public requests still pending (live ids) to
 * out[n ..], up to max entries in all; returns n plus their number (which
 * may exceed max). */
CLTCP__HIDDEN size_t cltcp__dns_list(cltcp_handle_info *out, size_t max,
                                     size_t n, cltcp__loop *loop);

/* ---- dns.c ----------------------------------------------------------------
 * Internal lookups, used by tcp.c for connecting by name.  The callback is
 * called exactly once, never from inside cltcp__dns_start(), unless
 * cltcp__dns_abort() was called first (then never).  addrs live during the
 * callback only. */
typedef struct cltcp__dns_req cltcp__dns_req;
typedef void (*cltcp__dns_fn)(void *arg, int status, const cltcp_addr *addrs,
                              size_t n);
CLTCP__HIDDEN int cltcp__dns_start(cltcp__dns_req **out, cltcp__loop *loop,
                                   const char *host, int family,
                                   cltcp__dns_fn fn, void *arg);
CLTCP__HIDDEN void cltcp__dns_abort(cltcp__dns_req *req);
/* Synchronous /etc/hosts lookup (for server bind names).  Fills up to max
 * addresses; returns 0 or CLTCP_ENOTFOUND / a negative code. */
CLTCP__HIDDEN int cltcp__dns_hosts(cltcp_addr *out, size_t max, size_t *n,
                                   cltcp__loop *loop, const char *host,
                                   int family);
/* Called by cltcp_loop_close() before the handles are closed: fails every
 * pending request with UV_ECANCELED (public requests get their callback,
 * internal ones too unless aborted), closes the poll handles and timer. */
CLTCP__HIDDEN void cltcp__dns_loop_teardown(cltcp__loop *loop);
/* Called once the loop's uv handles are all closed: frees the channel. */
CLTCP__HIDDEN void cltcp__dns_loop_free(cltcp__loop *loop);

/* Parses a numeric IPv4/IPv6 address and port into *ss.  Returns 0 or
 * UV_EINVAL. */
CLTCP__HIDDEN int cltcp__parse_addr(struct sockaddr_storage *ss,
                                    const char *host, int port);
/* Formats a sockaddr as numeric address, port, family (4/6). */
CLTCP__HIDDEN int cltcp__format_addr(char *buf, size_t buflen, int *port,
                                     int *family, const struct sockaddr *sa);

#endif /* CLTCP_INTERNAL_H */
