/*
 * internal.h -- private structures and cltcp__ functions shared between the
 * source files of libcltcp: the id layout, the loop and the common head of
 * every handle, then the prototypes of each file, grouped by file.  The
 * socket files share socket.h besides, the DNS files resolver.h.  Nothing
 * here is part of the ABI.
 */
#ifndef CLTCP_INTERNAL_H
#define CLTCP_INTERNAL_H

#include "cltcp.h"
#include "queue.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Write buffers: the first size of a socket's buffers, and how many spare
 * ones a loop keeps (stream.c).  The turn's writes of a socket are collected
 * in one (an HTTP response fits); with a thousand connections written in one
 * turn, 64 spares ran out and every response paid a malloc() and a free()
 * (3% of a server's CPU).  At most 1 MiB is kept. */
#define CLTCP__WBUF_SIZE 2048u
#define CLTCP__WBUF_SPARES 512u
/* A socket whose turn's writes fit in CLTCP__WBUF_SMALL bytes collects them
 * in a small buffer (of which a loop keeps as many spares as writers): a
 * short answer (an echo, a small HTTP response) then holds 272 bytes until
 * the end of the turn, not 2 KiB, and so do the spares that the busiest
 * turn leaves (issue 12: the idle figure counts those of the bench's
 * handshake turns).  At most 272 KiB is kept. */
#define CLTCP__WBUF_SMALL 256u
#define CLTCP__WBUF_SMALL_SPARES 1024u
/* Spare socket writers a loop keeps (stream.c; 320 bytes each, at most
 * 320 KiB): every socket written in a turn holds one until the end of the
 * turn, so a thousand connections answered in one turn take a thousand. */
#define CLTCP__WRITER_SPARES 1024u

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

/* A slot of a loop's handle table (16 bytes: issue 12).  In use: ptr is
 * the object and id its whole id.  Free: id holds only the generation the
 * next id of this slot gets (kind 0, so no lookup can match it, which is
 * how a slot is known to be free), and next_free takes ptr's place. */
typedef struct cltcp__slot {
  union {
    void *ptr;
    uint32_t next_free; /* free list link (index + 1, 0 = end) */
  };
  cltcp_id id;
} cltcp__slot;
_Static_assert(sizeof(cltcp__slot) == 16, "a slot is two words");

/* ---- deferred work (defer.c) --------------------------------------------
 * Work that must not run inside the call that produced it (libuv's rule:
 * a failure known during a call is reported on the next turn).  Items are
 * embedded in the structure that owns them and unlinked when it dies. */
typedef struct cltcp__deferred cltcp__deferred;
typedef void (*cltcp__deferred_fn)(cltcp__deferred *d);
struct cltcp__deferred {
  cltcp__queue q; /* linked while queued; an unlinked node points at itself */
  cltcp__deferred_fn fn;
};

static inline bool cltcp__deferred_queued(const cltcp__deferred *d) {
  return !cltcp__queue_empty(&d->q);
}

/* ---- loop ---------------------------------------------------------------- */
typedef struct cltcp__dns cltcp__dns; /* resolver.h */

typedef struct cltcp__loop {
  uv_loop_t uv;
  cltcp_id id;
  uint32_t index; /* loop index in the global loop table */
  uint32_t gen_base; /* handle generations of this loop are above it */
  /* Inside cltcp_loop_run() or cltcp_loop_close(): callbacks may run,
   * SIGPIPE is blocked, and neither call may be entered again. */
  bool entered;
  /* cltcp_loop_close() has started: the loop is being torn down. */
  bool tearing_down;
  /* handle table */
  cltcp__slot *slots;
  uint32_t nslots, capslots;
  uint32_t free_head; /* index + 1 of the first free slot, 0 = none */
  size_t live;        /* ids allocated in the table (ids.c counts them);
                         handles keep their id until they are freed */
  /* deferred work, run by `idle' (which keeps the loop from blocking) */
  uv_idle_t idle;
  uv_timer_t wake; /* unreferenced; see cltcp_loop_set_wakeup() */
  cltcp__queue deferred;
  /* the batch the idle callback is running; in the loop, not on the stack,
   * so that a callback that never returns (cltcp_loop_recover) leaves no
   * item linked to a dead frame */
  cltcp__queue batch;
  /* SIGPIPE mask saved by the running cltcp_loop_run(), for recovery */
  sigset_t sig_old;
  bool sig_blocked;
  /* one read buffer shared by all drain-mode sockets of the loop: libuv
   * calls alloc_cb and read_cb back to back for one stream at a time */
  uint8_t *readbuf;
  size_t readbuf_len;
  /* Keep mode, while a DATA callback runs on bytes read into `readbuf':
   * the socket, and the part of those bytes it has not read yet
   * (cltcp_socket_read takes from here after the socket's own kept bytes).
   * What is left when the callback returns is copied into the socket's keep
   * buffer; a socket that reads everything never needs one (stream.c). */
  void *kb_sock;
  const uint8_t *kb_ptr;
  size_t kb_len;
  /* Spare write buffers of CLTCP__WBUF_SIZE (stream.c): a socket whose
   * turn's writes all left gives its buffer back here, so an idle socket
   * holds no write buffer and a busy one does not call malloc() per turn. */
  uint8_t *wbuf_spare[CLTCP__WBUF_SPARES];
  unsigned nwbuf_spare;
  uint8_t *wbuf_small_spare[CLTCP__WBUF_SMALL_SPARES];
  unsigned nwbuf_small_spare;
  /* Spare socket writers (stream.c), for the same reason: a socket holds
   * one only while it writes. */
  void *writer_spare[CLTCP__WRITER_SPARES];
  unsigned nwriter_spare;
  cltcp__dns *dns; /* NULL until the first lookup */
  /* every socket, server, timer, signal and async of the loop (newest
   * first), for listing, recovery and teardown: the slot index + 1 of the
   * first (0 = none), linked through the handles' `prev' and `next'
   * (handle.c) */
  uint32_t handles;
  /* ---- end of turn (write coalescing, stream.c) ----
   * Work run once per turn after the poll phase, by `turn_check': the
   * sockets written during the turn send everything they collected in one
   * go.  While this list is not empty `idle' stays active, so that a poll
   * phase after the write (writes from timers, deferred events or outside
   * a turn) never blocks and adds no latency. */
  uv_check_t turn_check;
  cltcp__queue turn_end;
  cltcp__queue turn_batch; /* the batch turn_check runs (like `batch') */
  /* spare items of the queues by id (defer.c), kept for reuse so that
   * queueing a socket costs no malloc() in the steady state */
  cltcp__queue spare_items;
} cltcp__loop;

/* ---- handles (handle.c) --------------------------------------------------
 * The common head of sockets, servers, timers, signals and asyncs, and
 * what each kind tells the shared code about itself: the shared code calls
 * no kind's function by name. */
typedef struct cltcp__handle cltcp__handle;
typedef struct cltcp__handle_kind {
  /* Closes the handle for the loop's teardown (status UV_ECANCELED). */
  void (*teardown)(cltcp__handle *h);
  /* cltcp_loop_recover(): repairs what an abandoned callback frame left in
   * the handle's libuv state (NULL: nothing to repair). */
  void (*recover)(cltcp__handle *h);
  /* cltcp_loop_handles(): fills the kind's part of an entry (state,
   * detail, flags) beyond what handle.c fills (NULL: nothing to add). */
  void (*info)(cltcp__handle *h, cltcp_handle_info *info);
  /* Frees the handle's memory once its CLOSE event was delivered (NULL:
   * free() of the handle, which is the head of its allocation). */
  void (*destroy)(cltcp__handle *h);
  /* Stores the uv handles cltcp_handle_ref() acts on in out[] and returns
   * their number.  A kind that re-initializes one of them (a socket between
   * connect attempts) or adds one later (a socket's timer) applies `unref'
   * again with cltcp__handle_apply_ref(). */
  unsigned (*uv_handles)(cltcp__handle *h, uv_handle_t *out[]);
} cltcp__handle_kind;

/* The most uv handles a handle has (a server: tcp, poll, retry timer). */
#define CLTCP__UV_HANDLES_MAX 3

/* The head is what every handle pays (issue 12: 40 bytes, from 96).  What
 * the id tells is not stored again: the kind (so the kind's functions, from
 * a table handle.c fills) and the loop (cltcp__handle_loop()). */
struct cltcp__handle {
  /* loop->handles, by slot index + 1 (0 = none): a handle's id, so its
   * slot, lives while it is linked; two indices are half of two pointers */
  uint32_t prev, next;
  cltcp_id id;
  cltcp_cb cb;
  uintptr_t ctx;
  int close_status;       /* status of the CLOSE event */
  uint8_t pending_closes; /* uv handles still closing */
  /* Set when the owner or the library started closing the handle.  Its id
   * stays in the table until the CLOSE event has been delivered (so a
   * keep-mode socket's last bytes stay readable), but every call other than
   * reading returns CLTCP_ECLOSED from then on. */
  bool closing;
  bool unref;  /* the owner unreferenced the handle */
  bool linked; /* in loop->handles */
};

/* The loops by index (ids.c): read without a lock, see ids.c. */
CLTCP__HIDDEN extern _Atomic(cltcp__loop *) cltcp__loops[CLTCP__LOOP_MAX];

/* The loop of a handle, from its id (the loop outlives its handles, and
 * the thread that runs it stored it there before making any of them). */
static inline cltcp__loop *cltcp__handle_loop(const cltcp__handle *h) {
  return atomic_load_explicit(&cltcp__loops[cltcp__id_loop(h->id)],
                              memory_order_relaxed);
}

/* ---- ids.c --------------------------------------------------------------- */
CLTCP__HIDDEN int cltcp__loop_lookup(cltcp__loop **out, cltcp_id id);
CLTCP__HIDDEN int cltcp__lookup(void **out, cltcp_id id, int kind);
CLTCP__HIDDEN int cltcp__id_alloc(cltcp_id *out, cltcp__loop *loop, int kind,
                                  void *ptr);
CLTCP__HIDDEN void cltcp__id_free(cltcp__loop *loop, cltcp_id id);
/* Frees an id but keeps it counted in `live' (cltcp_loop_handle_count())
 * until cltcp__id_uncount(): a cancelled DNS request whose callback is
 * still owed. */
CLTCP__HIDDEN void cltcp__id_free_counted(cltcp__loop *loop, cltcp_id id);
CLTCP__HIDDEN void cltcp__id_uncount(cltcp__loop *loop);
/* Looks up a socket, server or timer; a closing handle gives CLTCP_ECLOSED
 * unless allow_closing. */
CLTCP__HIDDEN int cltcp__handle_lookup(cltcp__handle **out, cltcp_id id,
                                       int kind, bool allow_closing);
CLTCP__HIDDEN int cltcp__loop_register(cltcp__loop *loop);
CLTCP__HIDDEN void cltcp__loop_unregister(cltcp__loop *loop);

/* ---- defer.c ------------------------------------------------------------- */
/* Sets up and closes the loop's deferred queues and their uv handles. */
CLTCP__HIDDEN void cltcp__defer_loop_init(cltcp__loop *loop);
CLTCP__HIDDEN void cltcp__defer_loop_close(cltcp__loop *loop);
/* cltcp_loop_recover(): the items of an abandoned batch go back to the
 * front of their queue, in order. */
CLTCP__HIDDEN void cltcp__defer_loop_recover(cltcp__loop *loop);
CLTCP__HIDDEN void cltcp__deferred_init(cltcp__deferred *d);
/* Queues d to run on the next turn (once, however often it is queued). */
CLTCP__HIDDEN void cltcp__defer(cltcp__loop *loop, cltcp__deferred *d,
                                cltcp__deferred_fn fn);
/* Unqueues d, from whichever queue holds it (a no-op when none does). */
CLTCP__HIDDEN void cltcp__undefer(cltcp__deferred *d);
/* Work queued by id, for handles that embed no node (sockets): fn gets the
 * handle the id names, if the id is still alive when the work runs.  The
 * owner keeps its own "queued" bit: it queues once while the bit is set,
 * and cancels by clearing it (fn checks the bit; the item stays queued and
 * is skipped).  cltcp__defer_id() runs on the next turn (with the nodes,
 * in one FIFO order); cltcp__at_turn_end_id() at the end of the current
 * turn (after the poll phase), or of the next one when called outside a
 * turn or from the end-of-turn work itself.  Both return 0, or UV_ENOMEM
 * when no item could be had: cltcp__defer_reserve() makes sure the next
 * one can (0 or UV_ENOMEM). */
typedef void (*cltcp__id_fn)(void *handle);
CLTCP__HIDDEN int cltcp__defer_id(cltcp__loop *loop, cltcp_id id,
                                  cltcp__id_fn fn);
CLTCP__HIDDEN int cltcp__at_turn_end_id(cltcp__loop *loop, cltcp_id id,
                                        cltcp__id_fn fn);
CLTCP__HIDDEN int cltcp__defer_reserve(cltcp__loop *loop);

/* ---- handle.c ------------------------------------------------------------ */
/* Fills the head of a new handle (not linked yet; its id is set). */
CLTCP__HIDDEN void cltcp__handle_init(cltcp__handle *h, int kind,
                                      const cltcp__handle_kind *ops,
                                      cltcp_cb cb, uintptr_t ctx);
/* A new handle of `size' bytes (the cltcp__handle first), zeroed, with its
 * id and head filled, not linked yet.  Returns 0, UV_ENOMEM or an id
 * allocation failure. */
CLTCP__HIDDEN int cltcp__handle_new(cltcp__handle **out, size_t size,
                                    cltcp__loop *loop, int kind,
                                    const cltcp__handle_kind *ops, cltcp_cb cb,
                                    uintptr_t ctx);
CLTCP__HIDDEN void cltcp__handle_link(cltcp__handle *h);
CLTCP__HIDDEN void cltcp__handle_unlink(cltcp__handle *h);
/* Starts closing h with the given CLOSE status; false if it was closing
 * already. */
CLTCP__HIDDEN bool cltcp__handle_begin_close(cltcp__handle *h, int status);
/* The shared close tail, for a uv close callback whose handle's `data' is
 * the cltcp__handle: once the last of h->pending_closes uv handles has
 * closed (0 counts as 1), delivers CLOSE, frees the id, unlinks and frees
 * the handle. */
CLTCP__HIDDEN void cltcp__handle_uv_closed(uv_handle_t *uvh);
/* The same tail for a handle whose uv handles are all closed. */
CLTCP__HIDDEN void cltcp__handle_finish(cltcp__handle *h);
/* uv_ref/uv_unref every uv handle of h as h->unref says */
CLTCP__HIDDEN void cltcp__handle_apply_ref(cltcp__handle *h);
/* cltcp_loop_close() / cltcp_loop_recover(): every handle's teardown or
 * recover function. */
CLTCP__HIDDEN void cltcp__handles_teardown(cltcp__loop *loop);
CLTCP__HIDDEN void cltcp__handles_recover(cltcp__loop *loop);

/* ---- sigpipe.c ----------------------------------------------------------- */
/* Block SIGPIPE in this thread unless it is ignored; returns whether it
 * did, to be passed to cltcp__sigpipe_restore(). */
CLTCP__HIDDEN bool cltcp__sigpipe_block(sigset_t *old);
CLTCP__HIDDEN void cltcp__sigpipe_restore(const sigset_t *old, bool blocked);

/* ---- time (inline: every file converts seconds the same way) ------------- */
/* NaN or <= 0 gives 0 (none); at most 1e9 seconds. */
static inline double cltcp__sanitize_seconds(double s) {
  if (s != s || s <= 0) /* NaN, without libm */
    return 0;
  if (s > 1e9)
    return 1e9;
  return s;
}
/* Seconds (fractional) to milliseconds, to the nearest: NaN or <= 0 gives
 * 0 (none), any positive time at least 1. */
static inline uint64_t cltcp__seconds_to_ms(double s) {
  s = cltcp__sanitize_seconds(s);
  if (s == 0)
    return 0;
  if (s < 0.001)
    return 1; /* a positive time never rounds down to "none" */
  return (uint64_t)(s * 1000.0 + 0.5);
}

/* ---- connect.c: what server.c uses of sockets ---------------------------- */
/* The one accept entry: makes a socket of `loop' for the connected
 * descriptor fd (non-blocking), calls announce(arg, id) with its id (the
 * server's ACCEPT event), then starts it unless the announcement closed
 * it.  Returns 0; or a negative code with fd closed and nothing announced,
 * *made telling whether the socket could be made at all (false: out of
 * memory or ids, true: libuv refused the descriptor). */
CLTCP__HIDDEN int cltcp__socket_accept(cltcp__loop *loop, int fd, cltcp_cb cb,
                                       uintptr_t ctx,
                                       void (*announce)(void *arg, cltcp_id id),
                                       void *arg, bool *made);

/* ---- stream.c: what loop.c uses of keep mode ----------------------------- */
/* cltcp_loop_recover(): a keep-mode DATA callback that never returned left
 * the shared read buffer lent; keeps its unread rest for the socket (until
 * its CLOSE) and ends the loan. */
CLTCP__HIDDEN void cltcp__keep_recover(cltcp__loop *loop);

/* ---- dns.c ----------------------------------------------------------------
 * Internal lookups, used by connect.c for connecting by name.  The callback
 * is called exactly once, never from inside cltcp__dns_start(), unless
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
/* Writes the public requests still pending (live ids) to out[n ..], up to
 * max entries in all; returns n plus their number (which may exceed max). */
CLTCP__HIDDEN size_t cltcp__dns_list(cltcp_handle_info *out, size_t max,
                                     size_t n, cltcp__loop *loop);

/* ---- addr.c -------------------------------------------------------------- */
/* Parses a numeric IPv4/IPv6 address ("[v6]" too) and port into *ss.
 * Returns 0 or UV_EINVAL. */
CLTCP__HIDDEN int cltcp__parse_addr(struct sockaddr_storage *ss,
                                    const char *host, int port);
/* Formats a sockaddr as numeric address, port, family (4/6). */
CLTCP__HIDDEN int cltcp__format_addr(char *buf, size_t buflen, int *port,
                                     int *family, const struct sockaddr *sa);

/* ---- dns_parse.c (pure: no loop, no c-ares) ------------------------------ */
/* "[addr]" without its brackets into buf (size max); returns buf, or NULL
 * when host is not bracketed or does not fit. */
CLTCP__HIDDEN const char *cltcp__unbracket(char *buf, size_t max,
                                           const char *host);

#endif /* CLTCP_INTERNAL_H */
