/*
 * helpers.h -- shared scaffolding for the Check suites of libcltcp.
 *
 * The tests follow libuv's test style: every callback is logged by an event
 * recorder, the test then asserts exact event sequences, statuses, data and
 * counts, and every test ends by closing all its handles and checking that
 * the loop has no handle left and closes cleanly (finish_loop()).
 *
 * Nothing here blocks without a bound: run_until() and pump_until() fail the
 * test after a deadline, and an alarm() watchdog fails it even if the loop
 * blocks inside libuv forever.
 */
#ifndef CLTCP_TEST_HELPERS_H
#define CLTCP_TEST_HELPERS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cltcp.h"

/* ---- event recorder ----------------------------------------------------- */

/* One recorded callback.  data is a private copy (NULL when len is 0 or when
 * the event carries no bytes). */
typedef struct ev {
  uintptr_t ctx;
  cltcp_id id;
  int event;
  int status;
  cltcp_id other;
  const uint8_t *data;
  size_t len;
  double when; /* seconds since rec_reset(), wall clock */
} ev;

/* Called after each recorded event (may be NULL).  Tests use it to act from
 * inside a callback: close, write, stop the loop ... */
typedef void (*rec_hook_fn)(const ev *e);
extern rec_hook_fn rec_hook;

/* Forget every event and tracked id; set rec_hook to NULL. */
void rec_reset(void);
/* The cltcp_cb that records.  Give it to every handle the test creates. */
void rec_cb(uintptr_t ctx, cltcp_id id, int event, int status, cltcp_id other,
            const uint8_t *data, size_t len);
/* Number of events recorded so far / the i-th of them. */
size_t rec_count(void);
const ev *rec_get(size_t i);
/* Number of events of kind `event' for id (event 0 = any event). */
size_t rec_count_ev(cltcp_id id, int event);
/* Index of the n-th (0-based) event of kind `event' for id, or -1. */
long rec_index(cltcp_id id, int event, size_t n);
/* The n-th event of kind `event' for id, or NULL. */
const ev *rec_find(cltcp_id id, int event, size_t n);
/* Total bytes of DATA events for id; rec_data copies them, concatenated,
 * into a fresh malloc'ed buffer (caller frees). */
size_t rec_data_len(cltcp_id id);
uint8_t *rec_data(cltcp_id id, size_t *len);
/* The events of id as a string of letters, in order, e.g. "CDDEX":
 * C connect, D data, E eof, R error, F flushed, W drain, S shutdown,
 * A accept, T timer, X close, G signal, N async (notify).  Static
 * buffer. */
const char *rec_seq(cltcp_id id);
/* Dump every event to stderr (for failing tests). */
void rec_dump(void);

/* Handles whose creating call returned 0: finish_loop() closes them and
 * checks that each got exactly one CLOSE, as its last event.  Ids of
 * accepted sockets (ACCEPT's `other') are tracked automatically. */
void track(cltcp_id id);

/* ---- running the loop ------------------------------------------------- */

typedef bool (*pred_fn)(void *arg);

/* Runs the loop with CLTCP_RUN_ONCE until pred(arg) is true; fails the test
 * with `what' if that takes longer than `seconds'. */
void run_until_(cltcp_id loop, pred_fn pred, void *arg, double seconds,
                const char *what, const char *file, int line);
#define run_until(loop, pred, arg, seconds)                                  \
  run_until_((loop), (pred), (arg), (seconds), #pred, __FILE__, __LINE__)

/* Same, but with CLTCP_RUN_NOWAIT turns and short sleeps, for tests where
 * pred itself must make progress (a raw POSIX peer reading or writing). */
void pump_until_(cltcp_id loop, pred_fn pred, void *arg, double seconds,
                 const char *what, const char *file, int line);
#define pump_until(loop, pred, arg, seconds)                                 \
  pump_until_((loop), (pred), (arg), (seconds), #pred, __FILE__, __LINE__)

/* Runs NOWAIT turns for about `seconds' (to prove nothing else happens),
 * and always at least one. */
void run_for(cltcp_id loop, double seconds);

/* Ready-made predicates.  `arg' points to a struct want. */
typedef struct want {
  cltcp_id id;
  int event;
  size_t n; /* at least n such events */
} want;
bool pred_events(void *arg);      /* rec_count_ev(id, event) >= n */
bool pred_data_len(void *arg);    /* rec_data_len(id) >= n */
bool pred_false(void *arg);

/* Wait for at least n events of kind `event' on id. */
#define wait_ev(loop, id_, event_, n_, seconds)                              \
  do {                                                                       \
    want w__ = {(id_), (event_), (n_)};                                      \
    run_until_((loop), pred_events, &w__, (seconds),                         \
               "event " #event_ " on " #id_, __FILE__, __LINE__);            \
  } while (0)

/* Closes every tracked handle that is still alive, runs the loop until all
 * of them have had their CLOSE event, then asserts: each tracked id got
 * exactly one CLOSE and no event after it, the handle count is 0, and
 * cltcp_loop_close() returns 0. */
void finish_loop_(cltcp_id loop, const char *file, int line);
#define finish_loop(loop) finish_loop_((loop), __FILE__, __LINE__)

/* Asserts that each tracked id got at most one CLOSE and nothing after it. */
void check_close_last(void);

/* ---- time, ports, raw sockets ----------------------------------------- */

double now_s(void); /* monotonic seconds */
/* Seconds since rec_reset(): the clock of ev.when.  Take it just before
 * arming a timer or timeout, then compare with the event's `when'. */
double rec_now(void);
/* Timing bounds for timers and timeouts, from the promise, not from the
 * machine's speed: never before their time (CLTCP_EARLY_SLACK only absorbs
 * the rounding of doubles), and within their time plus a generous slack
 * (a slow, busy machine under valgrind). */
#define CLTCP_EARLY_SLACK 0.001
#define CLTCP_LATE_SLACK 5.0
#define assert_fired_in_time(elapsed, want)                                  \
  do {                                                                       \
    double el__ = (elapsed), w__ = (want);                                   \
    ck_assert_msg(el__ >= w__ - CLTCP_EARLY_SLACK,                           \
                  "%s: fired after %.4f s, before its %.3f s", #elapsed,     \
                  el__, w__);                                                \
    ck_assert_msg(el__ < w__ + CLTCP_LATE_SLACK,                             \
                  "%s: fired after %.4f s, %.3f s were asked", #elapsed,     \
                  el__, w__);                                                \
  } while (0)

/* A loopback TCP port on which nothing listens: a socket is bound to it (so
 * no one else can take it) but does not listen, so connecting is refused.
 * *fd gets that socket; close it at the end of the test. */
int closed_port(int *fd);

/* 1 when an IPv6 socket can bind to ::1. */
int have_ipv6_loopback(void);

/* Raw, non-blocking POSIX sockets used as the far end of a connection, so a
 * test controls exactly what the peer does (not read, reset, half-close). */
int raw_listen(const char *host, int *port); /* returns the listening fd */
int raw_connect(const char *host, int port); /* blocking connect, then
                                                non-blocking */
/* accept() while pumping the loop; fails the test after `seconds'. */
int raw_accept(cltcp_id loop, int lfd, double seconds);
/* Close with SO_LINGER 0: the kernel sends RST instead of FIN. */
void raw_reset(int fd);
/* Read what is available (non-blocking); returns bytes read, 0 on EOF
 * (and sets *eof), -1 when nothing is available. */
long raw_read(int fd, uint8_t *buf, size_t max, int *eof);
void raw_set_rcvbuf(int fd, int bytes);

/* A server that echoes every chunk back on each accepted socket, built on
 * rec_cb-independent callbacks (so huge transfers are not recorded). */
typedef struct echo_server {
  cltcp_id server;
  int port;
  size_t accepted;
  size_t closed;  /* accepted sockets that got CLOSE */
  size_t bytes;   /* bytes echoed */
  size_t errors;  /* ERROR events on accepted sockets */
} echo_server;
void echo_start(echo_server *es, cltcp_id loop, const char *host);

/* Deterministic test payload: byte i of stream `seed'. */
uint8_t pattern_byte(uint32_t seed, size_t i);
void pattern_fill(uint8_t *dst, uint32_t seed, size_t off, size_t len);

/* rec_reset() then a fresh loop (the start of every test). */
cltcp_id new_loop(void);

/* The CLOSE status after cltcp_timer_close(): the header says both
 * "UV_ECANCELED" (cltcp_timer_close) and "status 0 after a close asked by
 * the owner" (CLTCP_EV_CLOSE).  Only timers:timer_close_status asserts the
 * literal cltcp_timer_close() comment; the other tests accept either so that
 * they keep testing what they are about. */
#define assert_timer_owner_close_status(st)                                  \
  ck_assert_msg((st) == 0, "timer CLOSE status %d, want 0", (st))

/* Name of an event, for messages. */
const char *ev_name(int event);

/* Standard runner main: runs the suite, returns non-zero on failure. */
int run_suite(Suite *s);

#endif /* CLTCP_TEST_HELPERS_H */
