/*
 * cltcp.h -- the whole public ABI of libcltcp.
 *
 * libcltcp is a small C library over libuv (event loop, TCP) and c-ares
 * (asynchronous DNS) that exists so that a garbage-collected language (Common
 * Lisp, through CFFI) can do asynchronous TCP without ever handing a pointer
 * to one of its own objects to C, and without C ever holding a pointer into
 * the caller's heap.
 *
 * Conventions (they hold for every function below):
 *
 *  - Loops, sockets, servers, timers, signal handlers, async wake-ups and
 *    DNS requests are 64-bit integer ids
 *    (cltcp_id): a kind, a loop index, a slot index and a generation counter.
 *    0 is never a valid id, and every id is below 2^62 (bits 62 and 63 are
 *    0: a fixnum in 64-bit Lisps).  No id is issued twice in the life of the
 *    process, not even by a later loop (once the counters of a loop index
 *    run out the index is retired; cltcp_loop_new() gives UV_ENOMEM when
 *    all 2047 are).  A closed or stale id -- also one of a loop that was
 *    closed -- or a made-up id (one with its kind bits changed included)
 *    makes a call return CLTCP_ECLOSED and never reaches another handle;
 *    an id of a live handle of another kind gives CLTCP_EKIND.  No id can
 *    make the library touch freed memory (for threads, see below).
 *
 *  - Every fallible call returns 0 or a negative error code.  Codes are
 *    libuv's where libuv has one (UV_ECONNREFUSED, ...; those the library
 *    returns are named here too, CLTCP_ECONNREFUSED and so on, so that
 *    uv.h is not needed) and the library's own CLTCP_E* values otherwise.
 *    cltcp_err_name() and cltcp_strerror() name and
 *    describe any code, known or not, with static strings.  Results come back
 *    through out-parameters, which come first.
 *
 *  - Every callback is a function pointer plus a uintptr_t context word chosen
 *    by the caller; the library never looks inside the context word.
 *
 *  - Delivery rules (libuv's): a call that returns an error never calls its
 *    callback.  A handle (socket, server, timer, signal, async) whose
 *    creating call returned
 *    0 gets exactly one CLTCP_EV_CLOSE event, always last, also when the loop
 *    is torn down (status UV_ECANCELED then).  A DNS request that was started
 *    gets exactly one callback.  A failure known while a call runs is
 *    delivered on the next loop turn, never from inside the call.
 *
 *  - Data reaches callbacks as (pointer, length), valid during the callback
 *    only.  Data given to the library is copied before the call returns, so
 *    the caller may move or free it at once.
 *
 *  - One thread per loop.  All calls on a loop and on its handles must come
 *    from the thread that runs it.  Callbacks run on that thread, from inside
 *    cltcp_loop_run() only -- and from cltcp_loop_close(), which delivers
 *    the teardown events (CLOSE with UV_ECANCELED, DNS UV_ECANCELED,
 *    cancelled FLUSHED).  Any callback may call any function of this header
 *    on the same loop (close the handle it is called for, write, stop the
 *    loop, ...), except cltcp_loop_run() and cltcp_loop_close().
 *    Loops may be created and closed on several threads at once.  The ids
 *    of a loop whose cltcp_loop_close() has returned (the loop's and its
 *    handles') may be passed from any thread: the call returns
 *    CLTCP_ECLOSED and reads no memory of any loop.  Any other id (live,
 *    stale within a live loop, made up) passed from a thread that does not
 *    run its loop races with that thread: not allowed.  The one exception
 *    to the thread rule is cltcp_async_send(), safe from any thread at any
 *    time, with any id.
 *
 * The sections, in order: version; errors (the library's codes, the names
 * of libuv's, name and message of any code); ids, events and the callback
 * type; loops; timers; signals; async wake-ups; what every handle shares
 * (references, the listing of a loop's handles); sockets (connect, read
 * modes, writes, timeouts, shutdown, close, options, addresses); servers;
 * DNS (forward and reverse lookups, cancel, the loop's servers and
 * timeout).  The implementation is in capi/src, one concern per file
 * (README.md, "Layout").
 */
#ifndef CLTCP_H
#define CLTCP_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CLTCP_EXTERN __attribute__((visibility("default")))
#else
#define CLTCP_EXTERN
#endif

/* ---------------------------------------------------------------------- */
/* Version                                                                  */
/* ---------------------------------------------------------------------- */

#define CLTCP_VERSION_MAJOR 0
#define CLTCP_VERSION_MINOR 1
#define CLTCP_VERSION_PATCH 0

/* The ABI version.  It changes whenever a declaration of this header changes
 * in a way a binding would notice; bindings compare it with the value they
 * were written for and refuse to run on a mismatch. */
#define CLTCP_ABI_VERSION 3

/* Returns CLTCP_ABI_VERSION of the library actually loaded. */
CLTCP_EXTERN int cltcp_abi_version(void);

/* Returns the library version as major * 10000 + minor * 100 + patch. */
CLTCP_EXTERN int cltcp_version(void);

/* Returns the library version as a static string, e.g. "0.1.0". */
CLTCP_EXTERN const char *cltcp_version_string(void);

/* ---------------------------------------------------------------------- */
/* Errors                                                                   */
/* ---------------------------------------------------------------------- */

/* The library's own codes.  They lie far below libuv's range (libuv uses
 * -1 .. -4095 on every platform), so the two never collide. */
#define CLTCP_ERRNO_MAP(XX)                                                  \
  XX(ECLOSED, -20001, "handle is closed or the id is unknown")               \
  XX(EKIND, -20002, "id names a handle of another kind")                     \
  XX(EBUSY, -20003, "not allowed while the loop is running")                 \
  XX(EMODE, -20004, "operation not allowed in the socket's read mode")      \
  XX(ESTATE, -20005, "operation not allowed in the handle's current state")  \
  XX(ENOTFOUND, -20010, "host name not found")                               \
  XX(ENODATA, -20011, "host name has no address of the requested family")   \
  XX(ESERVFAIL, -20012, "DNS server failure")                                \
  XX(EDNSREFUSED, -20013, "DNS server refused the query")                    \
  XX(EDNSTIMEOUT, -20014, "DNS lookup timed out")                            \
  XX(EBADNAME, -20015, "malformed host name")                                \
  XX(EDNSFORMAT, -20016, "malformed DNS reply or query")                     \
  XX(EDNSCONN, -20017, "could not contact the DNS server")                   \
  XX(EDNS, -20018, "DNS lookup failed")                                      \
  XX(EDNSCONFIG, -20019, "bad DNS configuration")

typedef enum {
#define CLTCP__ERR_ENUM(name, val, msg) CLTCP_##name = val,
  CLTCP_ERRNO_MAP(CLTCP__ERR_ENUM)
#undef CLTCP__ERR_ENUM
  CLTCP_ERRNO_MAX_ = -30000
} cltcp_errno_t;

/* The libuv codes the library returns or delivers, nameable without uv.h:
 * CLTCP_EINVAL is UV_EINVAL, and so on (libuv's code on Unix is the
 * negated errno; errors.c checks each against uv.h when the library is
 * built).  Any other libuv code may still reach a callback from the system
 * (cltcp_err_name() names it). */
#define CLTCP_UV_ERRNO_MAP(XX)                                               \
  XX(EACCES, -EACCES)                                                        \
  XX(EADDRINUSE, -EADDRINUSE)                                                \
  XX(EADDRNOTAVAIL, -EADDRNOTAVAIL)                                          \
  XX(EAFNOSUPPORT, -EAFNOSUPPORT)                                            \
  XX(EAGAIN, -EAGAIN)                                                        \
  XX(ECANCELED, -ECANCELED)                                                  \
  XX(ECONNABORTED, -ECONNABORTED)                                            \
  XX(ECONNREFUSED, -ECONNREFUSED)                                            \
  XX(ECONNRESET, -ECONNRESET)                                                \
  XX(EHOSTDOWN, -EHOSTDOWN)                                                  \
  XX(EHOSTUNREACH, -EHOSTUNREACH)                                            \
  XX(EINVAL, -EINVAL)                                                        \
  XX(EMFILE, -EMFILE)                                                        \
  XX(ENETDOWN, -ENETDOWN)                                                    \
  XX(ENETUNREACH, -ENETUNREACH)                                              \
  XX(ENFILE, -ENFILE)                                                        \
  XX(ENOBUFS, -ENOBUFS)                                                      \
  XX(ENOMEM, -ENOMEM)                                                        \
  XX(ENONET, -ENONET)                                                        \
  XX(ENOPROTOOPT, -ENOPROTOOPT)                                              \
  XX(ENOTCONN, -ENOTCONN)                                                    \
  XX(ENOTSUP, -ENOTSUP)                                                      \
  XX(EPERM, -EPERM)                                                          \
  XX(EPIPE, -EPIPE)                                                          \
  XX(EPROTO, -EPROTO)                                                        \
  XX(ETIMEDOUT, -ETIMEDOUT)

enum {
#define CLTCP__UV_ERR_ENUM(name, val) CLTCP_##name = val,
  CLTCP_UV_ERRNO_MAP(CLTCP__UV_ERR_ENUM)
#undef CLTCP__UV_ERR_ENUM
  CLTCP_UV_ERRNO_END_ = 0
};

/* Returns the symbolic name of any code ("ECONNREFUSED", "ECLOSED", ...):
 * a static string, "UNKNOWN" for a value that is not a code, "OK" for 0. */
CLTCP_EXTERN const char *cltcp_err_name(int code);

/* Returns a human readable message for any code: a static string. */
CLTCP_EXTERN const char *cltcp_strerror(int code);

/* ---------------------------------------------------------------------- */
/* Ids, events, callbacks                                                  */
/* ---------------------------------------------------------------------- */

typedef uint64_t cltcp_id;

/* Kinds of handle, as returned by cltcp_id_kind(). */
enum {
  CLTCP_KIND_NONE = 0,
  CLTCP_KIND_LOOP = 1,
  CLTCP_KIND_SOCKET = 2,
  CLTCP_KIND_SERVER = 3,
  CLTCP_KIND_TIMER = 4,
  CLTCP_KIND_DNS = 5,
  CLTCP_KIND_SIGNAL = 6,
  CLTCP_KIND_ASYNC = 7,
  /* The largest kind: kinds are 1 .. CLTCP_KIND_LAST (3 bits of the id). */
  CLTCP_KIND_LAST = 7
};

/* Event types delivered to callbacks. */
enum {
  /* socket: the connection is established (status 0).  Sockets accepted by
   * a server get no CONNECT event: the server's ACCEPT event announces them. */
  CLTCP_EV_CONNECT = 1,
  /* socket: data arrived.  Drain mode: (data, len) is the chunk, valid during
   * the callback.  Keep mode: (data, len) is the chunk just appended to the
   * socket's input buffer; it stays there until cltcp_socket_read(). */
  CLTCP_EV_DATA = 2,
  /* socket: the peer closed its side.  If the callback leaves the socket
   * open, the socket then closes gracefully: reading stops, data already
   * queued is still sent, then the socket closes (CLTCP_EV_CLOSE). */
  CLTCP_EV_EOF = 3,
  /* socket: an error (status < 0: UV_ECONNREFUSED, UV_ECONNRESET,
   * UV_ETIMEDOUT for a read, write or connect timeout, a DNS code, ...).
   * The socket is closed by the library right after the callback returns,
   * unless the callback closed it already.  server: an accept failure
   * (UV_EMFILE, ...); the server keeps listening. */
  CLTCP_EV_ERROR = 4,
  /* socket: the bytes of a write made with CLTCP_WRITE_NOTIFY, and
   * everything written before them, have been handed to the kernel.  One
   * event per such write, in the order of the writes.  status 0; or
   * UV_ECANCELED when the socket closed before those bytes left (then just
   * before its CLOSE event). */
  CLTCP_EV_FLUSHED = 5,
  /* socket: the write queue fell to or below the drain mark set with
   * cltcp_socket_set_drain_mark() after being above it.  len = bytes still
   * queued. */
  CLTCP_EV_DRAIN = 6,
  /* socket: the write side was shut down after cltcp_socket_shutdown()
   * (status 0 or an error code). */
  CLTCP_EV_SHUTDOWN = 7,
  /* server: a connection was accepted; the new socket's id is `other'. */
  CLTCP_EV_ACCEPT = 8,
  /* timer: the timer fired. */
  CLTCP_EV_TIMER = 9,
  /* any handle: the handle is gone, its id is dead, this is the last event.
   * status 0 after a close asked by the owner or done by the library after
   * an error or EOF, UV_ECANCELED when the loop was torn down. */
  CLTCP_EV_CLOSE = 10,
  /* signal: the signal arrived (once or more since the last event: the
   * kernel and libuv merge repeats of a pending signal); `other' is the
   * signal number.  status 0. */
  CLTCP_EV_SIGNAL = 11,
  /* async: cltcp_async_send() was called (once or more since the last
   * event, see there).  status 0. */
  CLTCP_EV_ASYNC = 12
};

/* The one callback type for sockets, servers, timers, signals, asyncs.
 *  ctx    the context word given when the handle was created (or set later)
 *  id     the handle the event is for
 *  event  one of CLTCP_EV_*
 *  status 0 or a negative code
 *  other  server ACCEPT: the new socket's id; SIGNAL: the signal number;
 *         otherwise 0
 *  data, len  socket DATA: the bytes; DRAIN: len = bytes queued; else 0 */
typedef void (*cltcp_cb)(uintptr_t ctx, cltcp_id id, int event, int status,
                         cltcp_id other, const uint8_t *data, size_t len);

/* Returns the CLTCP_KIND_* encoded in an id (no lookup; 0 for id 0). */
CLTCP_EXTERN int cltcp_id_kind(cltcp_id id);

/* Stores in *alive 1 when id names a live handle (not closed, not closing),
 * else 0.  Any id value is accepted (a dead or made-up one gives 0).
 * Returns 0, or UV_EINVAL when alive is NULL. */
CLTCP_EXTERN int cltcp_id_alive(int *alive, cltcp_id id);

/* ---------------------------------------------------------------------- */
/* Loop                                                                     */
/* ---------------------------------------------------------------------- */

/* Creates a loop; its id goes to *loop.  Returns 0 or UV_ENOMEM. */
CLTCP_EXTERN int cltcp_loop_new(cltcp_id *loop);

enum {
  CLTCP_RUN_DEFAULT = 0, /* until no work is left or cltcp_loop_stop() */
  CLTCP_RUN_ONCE = 1,    /* one turn, blocking for I/O if there is work */
  CLTCP_RUN_NOWAIT = 2   /* one turn, never blocking */
};

/* Runs the loop.  *alive (may be NULL) is set to 1 if work is left when it
 * returns.  SIGPIPE is blocked in the calling thread while it runs (and a
 * SIGPIPE raised by a write to a reset connection is discarded), so the
 * process's disposition for it does not matter.  Returns 0, UV_EINVAL (bad
 * mode), CLTCP_ECLOSED, or CLTCP_EBUSY when called from one of the loop's own
 * callbacks. */
CLTCP_EXTERN int cltcp_loop_run(int *alive, cltcp_id loop, int mode);

/* Makes cltcp_loop_run() return at the end of the current turn.  Safe from
 * any callback.  Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_stop(cltcp_id loop);

/* Tears a loop down: every live handle of it is closed, each gets its
 * CLTCP_EV_CLOSE (status UV_ECANCELED; a socket's NOTIFY writes whose bytes
 * never left get their FLUSHED with UV_ECANCELED first) and each pending
 * DNS request its
 * callback (UV_ECANCELED), then everything is freed and the id dies.
 * Returns 0, CLTCP_ECLOSED, or CLTCP_EBUSY from inside cltcp_loop_run(). */
CLTCP_EXTERN int cltcp_loop_close(cltcp_id loop);

/* For a binding whose callbacks may leave by a non-local exit (a Lisp
 * error handler or restart that unwinds out of a callback, through
 * cltcp_loop_run() and libuv's frames, without returning to them): after
 * such an exit, call this (on the loop's thread, outside any callback)
 * before cltcp_loop_close().  It repairs what the abandoned frames left
 * behind -- the running state, libuv's stop flag and its pointer to the
 * abandoned poll's event array, I/O watchers left on the abandoned pending
 * list, the deferred work of the abandoned turn, the SIGPIPE mask -- so that
 * cltcp_loop_close() can tear the loop down (cltcp_loop_run() must not be
 * called on it again).  Does nothing on a loop that was not abandoned.
 * Returns 0, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_recover(cltcp_id loop);

/* Makes a blocked cltcp_loop_run(CLTCP_RUN_ONCE) return at least every
 * `seconds' (0, negative or NaN: never, the default), without keeping the
 * loop alive: a loop with no other work still ends.  A binding whose
 * runtime defers its own signals while it is inside C (a Lisp's keyboard
 * interrupt) runs the loop turn by turn with this set, so such a signal is
 * handled within `seconds', between turns, in the binding's own frames and
 * never on top of libuv's.  Returns 0, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_set_wakeup(cltcp_id loop, double seconds);

/* The loop's cached time in milliseconds (libuv's uv_now): taken at the
 * start of each turn, so stale inside a long callback.  Timers and timeouts
 * do not depend on it (they keep the precise clock).  Returns 0, UV_EINVAL
 * (ms NULL), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_now(uint64_t *ms, cltcp_id loop);

/* Number of live handles of the loop (sockets, servers, timers, signals,
 * asyncs, DNS requests), closing ones included.  For leak checks in tests;
 * cltcp_loop_kind_counts() splits it by kind, cltcp_loop_handles() lists
 * the handles.  Returns 0, UV_EINVAL (count NULL), CLTCP_ECLOSED or
 * CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_handle_count(size_t *count, cltcp_id loop);

/* ---------------------------------------------------------------------- */
/* Timers                                                                   */
/* ---------------------------------------------------------------------- */

/* Starts a timer that fires after `seconds' (fractional; negative = 0) and,
 * if repeat_seconds > 0, every repeat_seconds after that (counted from each
 * firing).  Times are wall-clock times counted from this call: a timer never
 * fires before its time has passed, however long callbacks ran and whether
 * or not the loop is running when it is started.  Each firing is a
 * CLTCP_EV_TIMER event.  A one-shot timer closes itself after firing (then
 * CLTCP_EV_CLOSE, status 0).  Returns 0, UV_EINVAL (NaN), UV_ENOMEM,
 * CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_timer_start(cltcp_id *timer, cltcp_id loop,
                                   double seconds, double repeat_seconds,
                                   cltcp_cb cb, uintptr_t ctx);

/* Stops and closes a timer (the id dies at once): CLTCP_EV_CLOSE (status 0)
 * follows on a later turn.  Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_timer_close(cltcp_id timer);

/* ---------------------------------------------------------------------- */
/* Signals                                                                  */
/* ---------------------------------------------------------------------- */

/* Starts watching signal `signum' (SIGINT, SIGTERM, SIGHUP, SIGUSR1, ...)
 * on a loop, through libuv's uv_signal_t.  Each arrival is a
 * CLTCP_EV_SIGNAL event (other = signum) delivered in the loop's thread,
 * from inside cltcp_loop_run(), never from the signal handler itself.
 * Several handles may watch one signal, on one loop or on several loops
 * (each gets the event).  A live signal handle keeps the loop alive (see
 * cltcp_handle_ref() to change that).
 * While any handle watches `signum', libuv's handler is installed for it
 * process-wide.  The disposition the signal had just before the first
 * handle started (handler, flags and mask, as sigaction(2) reports them:
 * a Lisp's own SIGINT handler, SIG_DFL, SIG_IGN, ...) is saved, and put back
 * exactly when the last handle for it closes.  The signal is blocked in the
 * closing thread while libuv's handler is swapped for the saved one, so a
 * signal sent to this thread meanwhile reaches the restored handler; in a
 * process with other threads that do not block it, one arriving in that
 * instant may meet SIG_DFL.  Do not change the signal's disposition
 * yourself while a handle watches it (it would be overwritten at close).
 * Returns 0, UV_EINVAL (cb NULL, signum not a signal number, one that
 * cannot be caught: SIGKILL, SIGSTOP, or one the kernel sends for a fault
 * of the running instruction: SIGSEGV, SIGBUS, SIGILL, SIGFPE -- a handler
 * that only notes it would return to the faulting instruction, and these
 * are a Lisp runtime's own), UV_ENOMEM, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_signal_start(cltcp_id *sig, cltcp_id loop, int signum,
                                    cltcp_cb cb, uintptr_t ctx);

/* Stops watching and closes a signal handle (the id dies at once); if it
 * was the last handle for its signal in the process, the saved disposition
 * is back in place when this returns.  CLTCP_EV_CLOSE (status 0) follows
 * on a later turn; no SIGNAL event comes after this call.  Loop teardown
 * does the same, with status UV_ECANCELED.  Returns 0 or
 * CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_signal_close(cltcp_id sig);

/* Stores in *signum the signal a signal handle watches.  Returns 0,
 * UV_EINVAL (signum NULL), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_signal_signum(int *signum, cltcp_id sig);

/* ---------------------------------------------------------------------- */
/* Async wake-ups                                                           */
/* ---------------------------------------------------------------------- */

/* Creates an async wake-up handle (libuv's uv_async_t) on a loop: any
 * thread may call cltcp_async_send() on it, and the loop then delivers a
 * CLTCP_EV_ASYNC event to (cb, ctx) in its own thread.  The handle stays
 * until closed (it repeats); it keeps the loop alive while it lives, even
 * when nobody sends (see cltcp_handle_ref()).  Returns 0, UV_EINVAL (async
 * or cb NULL), UV_ENOMEM, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_async_new(cltcp_id *async, cltcp_id loop, cltcp_cb cb,
                                 uintptr_t ctx);

/* Wakes the loop of an async handle: a CLTCP_EV_ASYNC event follows in the
 * loop's thread.  THE ONE CALL OF THIS HEADER THAT IS SAFE FROM ANY THREAD
 * (and from the loop's own thread, in or out of a callback).  Sends
 * coalesce, as libuv's do: several sends before the loop gets to the handle
 * give one event; a send made after an event's callback has started gives
 * at least one more event.  So every send is followed by at least one event
 * that starts after it, unless the handle is closed first: a send that
 * returned 0 before cltcp_async_close() may have no event.  A send on a
 * closed or closing handle, or on any id that is not a live async handle,
 * returns an error and touches nothing (the lookup is guarded by a lock
 * that cltcp_async_close() also takes).  Never blocks for long, never
 * calls a callback.  It takes a mutex, so it is not for signal handlers
 * (watch the signal with cltcp_signal_start() instead).  Returns 0,
 * CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_async_send(cltcp_id async);

/* Closes an async handle (loop thread only; the id dies at once for every
 * thread: later sends return CLTCP_ECLOSED).  No ASYNC event comes after
 * this call; CLTCP_EV_CLOSE (status 0) follows on a later turn.  Returns 0
 * or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_async_close(cltcp_id async);

/* ---------------------------------------------------------------------- */
/* Any handle: references, enumeration                                      */
/* ---------------------------------------------------------------------- */

/* Makes a handle (socket, server, timer, signal, async) keep the loop alive
 * (ref != 0, the default for every new handle) or not (ref == 0), like
 * libuv's uv_ref()/uv_unref(): cltcp_loop_run(CLTCP_RUN_DEFAULT) returns
 * once only unreferenced handles are left, and *alive is then 0.  The
 * setting covers every uv handle the library keeps for it (a socket's
 * connection and its timeout timer) and lasts until changed.  libuv's rule
 * for requests still holds: a socket with a connect, a write or a shutdown
 * in flight, or a name lookup for its connect, keeps the loop alive until
 * that completes, referenced or not.  Idempotent.  Returns 0, CLTCP_ECLOSED
 * (closed or closing) or CLTCP_EKIND (a loop, a DNS request, id 0's
 * kinds). */
CLTCP_EXTERN int cltcp_handle_ref(cltcp_id handle, int ref);

/* Stores in *ref 1 if the handle keeps the loop alive (see
 * cltcp_handle_ref()), else 0.  Returns 0, UV_EINVAL (ref NULL),
 * CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_handle_refd(int *ref, cltcp_id handle);

/* States in cltcp_handle_info.state. */
enum {
  CLTCP_STATE_NEW = 1,        /* socket: created, not connecting */
  CLTCP_STATE_RESOLVING = 2,  /* socket: looking its peer's name up */
  CLTCP_STATE_CONNECTING = 3, /* socket: connect in flight */
  CLTCP_STATE_CONNECTED = 4,  /* socket: connected or accepted */
  CLTCP_STATE_ACTIVE = 5,     /* server listening, timer armed, signal
                                 watched, async ready, DNS lookup pending */
  CLTCP_STATE_CLOSING = 6     /* closed, its CLOSE event not yet delivered */
};

/* Flags in cltcp_handle_info.flags. */
enum {
  CLTCP_INFO_REF = 1,     /* keeps the loop alive (cltcp_handle_ref()) */
  CLTCP_INFO_ACCEPTED = 2 /* socket: made by a server (incoming); a socket
                             without it was made by cltcp_socket_new() */
};

/* One live handle of a loop, as cltcp_loop_handles() reports it. */
typedef struct cltcp_handle_info {
  cltcp_id id;
  int kind;   /* CLTCP_KIND_* */
  int state;  /* CLTCP_STATE_* */
  int flags;  /* CLTCP_INFO_* */
  int detail; /* signal: the signal number; server: its port; else 0 */
} cltcp_handle_info;

/* Lists the loop's live handles -- sockets, servers, timers, signals,
 * asyncs and pending DNS requests, closing ones included -- most recently
 * created first, DNS requests last.  That is what
 * cltcp_loop_handle_count() counts, except DNS requests cancelled with
 * cltcp_dns_cancel() whose UV_ECANCELED callback is still to come: their
 * id is dead, so they are counted but not listed.  Up to `max' entries are
 * written to out (which may be NULL when max is 0); *n gets the number of
 * entries there are, which may exceed max (call again with a larger
 * array).  The ids are a snapshot:
 * valid until the next call that can close something.  Returns 0,
 * UV_EINVAL (n NULL, or out NULL with max > 0), CLTCP_ECLOSED or
 * CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_handles(cltcp_handle_info *out, size_t max,
                                    size_t *n, cltcp_id loop);

/* Counts the loop's live handles by kind: counts[k] gets the number of
 * live handles of kind k (closing ones included, and cancelled DNS
 * requests whose callback is still to come), for k = 0 .. ncounts - 1
 * (counts[0] and counts[CLTCP_KIND_LOOP] are always 0; pass
 * CLTCP_KIND_LAST + 1 entries to get every kind; entries past
 * CLTCP_KIND_LAST are set to 0).  The sum is cltcp_loop_handle_count().
 * Returns 0, UV_EINVAL (counts NULL with ncounts > 0), CLTCP_ECLOSED or
 * CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_kind_counts(size_t *counts, size_t ncounts,
                                        cltcp_id loop);

/* ---------------------------------------------------------------------- */
/* Sockets                                                                  */
/* ---------------------------------------------------------------------- */

/* Creates an unconnected TCP socket on a loop.  All its events go to
 * (cb, ctx).  It reads in drain mode until cltcp_socket_set_read_mode().
 * Returns 0, UV_ENOMEM, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_new(cltcp_id *sock, cltcp_id loop, cltcp_cb cb,
                                  uintptr_t ctx);

/* Replaces the socket's callback and context word (for sockets accepted by a
 * server, which start with the server's socket callback and context).
 * Takes effect for the next event.  Returns 0 or CLTCP_ECLOSED/EKIND. */
CLTCP_EXTERN int cltcp_socket_set_cb(cltcp_id sock, cltcp_cb cb,
                                     uintptr_t ctx);

/* Connects an unconnected socket to host:port.  host is a numeric IPv4 or
 * IPv6 address or a host name; a name is looked up with the loop's resolver
 * (both families) and the addresses are tried in order until one connects.
 * Success: CLTCP_EV_CONNECT, then reading starts.  Failure (refused,
 * unreachable, DNS, connect timeout): CLTCP_EV_ERROR then CLTCP_EV_CLOSE,
 * never from inside this call.  Returns 0, UV_EINVAL (NULL host, port out of
 * 0..65535), CLTCP_ESTATE (already connecting or connected), CLTCP_ECLOSED
 * or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_connect(cltcp_id sock, const char *host,
                                      int port);

/* Read modes. */
enum {
  CLTCP_READ_DRAIN = 0, /* each chunk goes to the callback, then is dropped */
  CLTCP_READ_KEEP = 1   /* chunks accumulate in the socket's input buffer */
};

/* Switches the read mode.  Switching keep -> drain with bytes buffered
 * returns CLTCP_EMODE (read them first).  Keep mode holds no memory for
 * the socket until a DATA callback leaves bytes unread; those wait in a
 * buffer of the socket's, given back once they are all read.  Returns 0,
 * CLTCP_EMODE, UV_EINVAL, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_set_read_mode(cltcp_id sock, int mode);

/* Keep mode: stores in *n the number of bytes in the input buffer.  Works in
 * drain mode too (always 0 there).  Returns 0 or CLTCP_ECLOSED/EKIND. */
CLTCP_EXTERN int cltcp_socket_buffered(size_t *n, cltcp_id sock);

/* Keep mode: copies up to `max' buffered bytes into dst and removes them from
 * the input buffer; *n gets the count (0 when nothing is buffered).  Never
 * blocks.  The bytes of a socket that has just closed stay readable until
 * its CLTCP_EV_CLOSE event returns.  Returns 0, UV_EINVAL (dst NULL with
 * max > 0), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_read(size_t *n, cltcp_id sock, uint8_t *dst,
                                   size_t max);

/* Write flags. */
enum {
  CLTCP_WRITE_NOTIFY = 1, /* deliver CLTCP_EV_FLUSHED once these bytes left */
  CLTCP_WRITE_NOW = 2     /* send at once instead of at the end of the turn */
};

/* Writes len bytes.  They are copied before the call returns.  The writes
 * made on a socket during one turn of the loop are coalesced: they leave
 * together, in one send (one uv_try_write of all of them; what the kernel
 * does not take is queued and drains as the socket becomes writable), at
 * the end of that turn -- after the poll phase's callbacks, before the loop
 * waits again, so coalescing adds no latency beyond the turn.  A write of
 * more than 64 KiB made while nothing is collected goes to the kernel at
 * once, straight from `data' (collecting saves a send per write, and the
 * kernel's work per send; above 64 KiB that no longer repays the copy);
 * later writes of the turn are collected again.  A write made
 * outside a turn (before cltcp_loop_run) leaves during the next turn, which
 * then does not block before sending it.  With CLTCP_WRITE_NOW the bytes,
 * and any collected earlier in the turn, are handed to the kernel during
 * the call, as far as it takes them (the behaviour before coalescing).
 * Writing to a socket that is still connecting queues the bytes until it
 * connects.  With CLTCP_WRITE_NOTIFY a CLTCP_EV_FLUSHED event follows (on
 * a later turn or at the end of this one, never from inside the call) once
 * these bytes and all written before them have left; len 0 with NOTIFY
 * asks only for that event.  Writing from the CLTCP_EV_EOF callback works
 * (the reply is sent before the graceful close); after it the socket is
 * closing (ECLOSED).
 * A write to a peer that reset the connection ends in an ERROR event;
 * SIGPIPE is kept blocked while the library writes, whatever the process's
 * disposition for it.
 * Returns 0, UV_EINVAL (data NULL with len > 0), UV_EPIPE (write side shut
 * down), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_write(cltcp_id sock, const uint8_t *data,
                                    size_t len, int flags);

/* Stores in *n the number of bytes written but not yet handed to the kernel
 * (those collected for the end of the turn included).
 * Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_queued(size_t *n, cltcp_id sock);

/* Stores in *n how many sends the library has made on the socket so far:
 * each uv_try_write and each uv_write it started (a large queue goes in
 * chunks, one send each).  For tests and statistics: N writes made during
 * one turn cost one send when the kernel takes them at once.  Works until
 * the CLOSE event returns.  Returns 0, UV_EINVAL (n NULL), CLTCP_ECLOSED or
 * CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_send_count(uint64_t *n, cltcp_id sock);

/* Sets the drain mark for backpressure: once the write queue has held more
 * than `mark' bytes and falls to `mark' or below, CLTCP_EV_DRAIN is
 * delivered.  (size_t)-1 (the default) turns it off.  Returns 0,
 * UV_ENOMEM (a mark of 4 GiB or more only, which takes memory),
 * CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_set_drain_mark(cltcp_id sock, size_t mark);

/* Sets the read and write timeouts in seconds; 0, negative or NaN = none.
 * Read timeout: time since the last data arrived (or since the connection
 * was made).  Write timeout: time that queued data makes no progress.  A
 * timeout delivers CLTCP_EV_ERROR with UV_ETIMEDOUT, then the socket closes.
 * Like timers, timeouts are wall-clock times and never fire early.
 * Either can be set before connecting; the clocks start at the connection.
 * Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_set_timeouts(cltcp_id sock, double read_seconds,
                                           double write_seconds);

/* Sets the connect timeout in seconds (0 or negative = none, the default):
 * time from cltcp_socket_connect() (DNS included) to the connection.
 * Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_set_connect_timeout(cltcp_id sock,
                                                  double seconds);

/* Enables or disables read and write monitoring.  For each of read/write:
 * 1 enables, 0 disables, -1 leaves as is.  A disabled read side neither
 * reads nor times out; a disabled write side keeps sending its queue but
 * does not time out.  Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_enable(cltcp_id sock, int read, int write);

/* Stores in *read and *write (either may be NULL) whether the socket's read
 * and write monitoring is enabled.  Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_enabled(int *read, int *write, cltcp_id sock);

/* Shuts the write side down once the queue is flushed (a TCP half-close);
 * reading goes on.  On a socket still connecting, the shutdown waits for
 * the connection (and the bytes queued before it).  CLTCP_EV_SHUTDOWN
 * follows.  Later writes return UV_EPIPE.  Returns 0, CLTCP_ESTATE (never
 * connected, or already shut down), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_shutdown(cltcp_id sock);

/* Close modes. */
enum {
  CLTCP_CLOSE_NOW = 0,     /* drop the queue, close at once */
  CLTCP_CLOSE_FLUSH = 1    /* stop reading, send the queue, then close */
};

/* Closes a socket.  The id dies at once for every call (CLTCP_ECLOSED)
 * except cltcp_socket_buffered(), cltcp_socket_read() and
 * cltcp_socket_send_count(), which keep working until the CLOSE event
 * returns; CLTCP_EV_CLOSE (status 0) follows on a later turn.  With
 * CLTCP_CLOSE_FLUSH the queued bytes are still sent first (the write timeout
 * still applies).  With CLTCP_CLOSE_NOW the bytes written during this turn
 * get the one try to leave at once that they would have had without
 * coalescing; whatever the kernel does not take then is dropped.  NOTIFY
 * writes whose bytes did not leave get their FLUSHED with UV_ECANCELED.  Returns 0, UV_EINVAL (bad mode), CLTCP_ECLOSED or
 * CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_close(cltcp_id sock, int mode);

/* Sets TCP_NODELAY (enable != 0 turns Nagle's algorithm off).  May be called
 * before connecting (it applies once connected).  Returns 0, the system's
 * error for the setting (a libuv code), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_nodelay(cltcp_id sock, int enable);

/* Sets TCP keep-alive; delay_seconds is the idle time before the first
 * probe (ignored when enable is 0; 0 with enable means 1).  May be called
 * before connecting (it applies once connected).  Returns 0, the system's
 * error for the setting (a libuv code), UV_ENOMEM (enabling it before the
 * connection only), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_keepalive(cltcp_id sock, int enable,
                                        unsigned delay_seconds);

/* Address of a connected socket: `which' 0 = local, 1 = peer.  The numeric
 * address is written NUL-terminated to buf (46 bytes are always enough);
 * *port gets the port, *family 4 or 6.  Returns 0, UV_ENOTCONN, UV_ENOBUFS
 * (buf too small), UV_EINVAL, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_socket_address(char *buf, size_t buflen, int *port,
                                      int *family, cltcp_id sock, int which);

/* ---------------------------------------------------------------------- */
/* Servers                                                                  */
/* ---------------------------------------------------------------------- */

/* Listens on host:port.  host NULL or "" means "0.0.0.0"; it may be a
 * numeric IPv4/IPv6 address or a name found in /etc/hosts, or "localhost"
 * or a name under ".localhost" (see cltcp_dns_lookup()), which binds the
 * first loopback address (127.0.0.1 unless /etc/hosts says otherwise).
 * port 0 picks a free port (see cltcp_server_port()).  backlog < 0 means the
 * system default (SOMAXCONN).
 * Each accepted connection becomes a socket, announced to (server_cb,
 * server_ctx) as CLTCP_EV_ACCEPT with the socket id in `other'; the socket
 * starts with (sock_cb, sock_ctx) and starts reading (drain mode) once the
 * ACCEPT callback returns; change them with cltcp_socket_set_cb() and
 * cltcp_socket_set_read_mode() inside that callback.  Accept failures are
 * CLTCP_EV_ERROR events on the server, which keeps listening.  Running out
 * of descriptors or memory (UV_EMFILE, UV_ENFILE, UV_ENOBUFS, UV_ENOMEM) is
 * reported once per episode, not once per connection: accepting then pauses
 * and is retried about every 100 ms, pending connections wait in the
 * backlog, established ones are served as usual, and accepting resumes by
 * itself once a descriptor is free; the next shortage is reported again.
 * Bind and listen failures are returned here: UV_EADDRINUSE, UV_EACCES
 * (privileged port), UV_EADDRNOTAVAIL, UV_EINVAL (bad address or port),
 * CLTCP_ENOTFOUND (name not in /etc/hosts), CLTCP_ECLOSED, CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_server_listen(cltcp_id *server, cltcp_id loop,
                                     const char *host, int port, int backlog,
                                     cltcp_cb server_cb, uintptr_t server_ctx,
                                     cltcp_cb sock_cb, uintptr_t sock_ctx);

/* Listen flags for cltcp_server_listen_ex(). */
enum {
  /* SO_REUSEPORT: several servers -- in several loops and threads, or
   * several processes of one user -- may listen on one address and port,
   * each with this flag, and the kernel spreads incoming connections over
   * them.  Set on the socket before it is bound. */
  CLTCP_LISTEN_REUSEPORT = 1
};

/* cltcp_server_listen() with flags (CLTCP_LISTEN_*, or-ed; 0 is exactly
 * cltcp_server_listen()).  Returns what cltcp_server_listen() returns, and
 * UV_EINVAL for an unknown flag, UV_ENOTSUP where the system has no
 * SO_REUSEPORT, or the setsockopt(2) error. */
CLTCP_EXTERN int cltcp_server_listen_ex(cltcp_id *server, cltcp_id loop,
                                        const char *host, int port,
                                        int backlog, int flags,
                                        cltcp_cb server_cb,
                                        uintptr_t server_ctx,
                                        cltcp_cb sock_cb, uintptr_t sock_ctx);

/* The server's bound address, as cltcp_socket_address() gives a socket's
 * local one.  Returns 0, UV_ENOBUFS (buf too small), another libuv code
 * from getsockname(2), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_server_address(char *buf, size_t buflen, int *port,
                                      int *family, cltcp_id server);

/* The port the server listens on.  Returns 0 or CLTCP_ECLOSED/EKIND. */
CLTCP_EXTERN int cltcp_server_port(int *port, cltcp_id server);

/* Stops listening and closes the server (the id dies at once); accepted
 * sockets stay open.  CLTCP_EV_CLOSE (status 0) follows.  Returns 0, or
 * CLTCP_ECLOSED when already closed (so closing twice changes nothing), or
 * CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_server_close(cltcp_id server);

/* ---------------------------------------------------------------------- */
/* DNS                                                                      */
/* ---------------------------------------------------------------------- */

/* Address families for lookups. */
enum {
  CLTCP_AF_UNSPEC = 0,
  CLTCP_AF_INET = 4,
  CLTCP_AF_INET6 = 6
};

/* One resolved address. */
typedef struct cltcp_addr {
  int family;      /* CLTCP_AF_INET or CLTCP_AF_INET6 */
  char addr[48];   /* numeric form, NUL-terminated */
} cltcp_addr;

/* The DNS result callback.  status 0 with n >= 1 addresses, or a negative
 * code with n = 0 (UV_ECANCELED when the request or its loop was closed). */
typedef void (*cltcp_dns_cb)(uintptr_t ctx, cltcp_id req, int status,
                             const cltcp_addr *addrs, size_t n);

/* Looks a host name up asynchronously: /etc/hosts first, then the loop's DNS
 * servers, through c-ares driven by the loop (no threads, nothing blocks).
 * family: CLTCP_AF_UNSPEC (both; IPv4 first), CLTCP_AF_INET or _INET6.
 * A numeric address is "resolved" to itself.  "localhost" and every name
 * under ".localhost" (any case, trailing dot or not) never reach a DNS
 * server (RFC 6761): they resolve to /etc/hosts' addresses of each family
 * asked for, and to 127.0.0.1 / ::1 for a family /etc/hosts has none of
 * (also when there is no /etc/hosts).  The callback fires exactly
 * once, on a later turn.  *req (may be NULL) gets the request id.
 * Returns 0, UV_EINVAL (NULL host or bad family), UV_ENOMEM,
 * CLTCP_EDNSCONFIG (the resolver could not start), CLTCP_ECLOSED or
 * CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_dns_lookup(cltcp_id *req, cltcp_id loop,
                                  const char *host, int family,
                                  cltcp_dns_cb cb, uintptr_t ctx);

/* The reverse lookup callback.  status 0 with the host name in (name, len)
 * (NUL-terminated, valid during the callback), or a negative code with
 * name NULL and len 0 (UV_ECANCELED when the request or its loop was
 * closed). */
typedef void (*cltcp_dns_name_cb)(uintptr_t ctx, cltcp_id req, int status,
                                  const char *name, size_t len);

/* Looks the name of a numeric IPv4 or IPv6 address up asynchronously,
 * through c-ares: /etc/hosts first (ares_gethostbyaddr; the first name of
 * the first line with the address), then a PTR query (in-addr.arpa /
 * ip6.arpa) to the loop's DNS servers, with the loop's DNS timeout and
 * tries.  The answer is one name, the official one.  The callback fires
 * exactly once, on a later turn, like cltcp_dns_lookup()'s, also for an
 * /etc/hosts hit; the request is a CLTCP_KIND_DNS id, cancelled with
 * cltcp_dns_cancel().  Failures are the lookup codes: CLTCP_ENOTFOUND (no
 * name for the address: NXDOMAIN, or no PTR record), CLTCP_EDNSTIMEOUT,
 * CLTCP_EDNSCONN (no server reachable, or every server refused: c-ares
 * 1.18 reports a REFUSED answer so), CLTCP_ESERVFAIL, CLTCP_EDNSFORMAT,
 * CLTCP_EDNS, UV_ENOMEM, UV_ECANCELED.  *req (may be NULL) gets the id.
 * Returns 0, UV_EINVAL (addr NULL or not a numeric address, cb NULL),
 * UV_ENOMEM, CLTCP_EDNSCONFIG, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_dns_reverse(cltcp_id *req, cltcp_id loop,
                                   const char *addr, cltcp_dns_name_cb cb,
                                   uintptr_t ctx);

/* Cancels a pending lookup (forward or reverse): its callback fires with
 * UV_ECANCELED on a later turn.  Returns 0 or CLTCP_ECLOSED/CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_dns_cancel(cltcp_id req);

/* Sets the loop's DNS servers, a comma-separated list of host[:port] (IPv6
 * as [addr]:port), e.g. "127.0.0.1:15353".  NULL or "" restores the system's
 * (/etc/resolv.conf).  Not while a lookup whose owner still waits is in
 * flight: that gives CLTCP_EBUSY and changes nothing (cancelled lookups do
 * not count; their queries are dropped).  Returns 0, CLTCP_EDNSCONFIG (bad
 * list), CLTCP_EBUSY, UV_ENOMEM, CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_set_dns_servers(cltcp_id loop,
                                            const char *servers);

/* Sets the per-try DNS timeout in seconds and the number of tries per
 * server (tries < 1 keeps the current value).  Defaults: 5 s, 2 tries.
 * Returns 0, UV_EINVAL (seconds NaN, <= 0 or > 86400), CLTCP_EBUSY (lookups
 * in flight), CLTCP_ECLOSED or CLTCP_EKIND. */
CLTCP_EXTERN int cltcp_loop_set_dns_timeout(cltcp_id loop, double seconds,
                                            int tries);

#ifdef __cplusplus
}
#endif
#endif /* CLTCP_H */
