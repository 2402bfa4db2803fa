/*
 * fuzz_abi.c -- a libFuzzer target for the whole ABI of libcltcp.
 *
 * Each input is decoded into a sequence of ABI calls on one loop (or a few,
 * one after the other) over real loopback sockets: servers, connects
 * (to a live server, a closed port, by number and by name), writes, reads,
 * shutdowns, closes in every mode, timers, DNS of numeric names and of
 * localhost names, reverse lookups, signal and async handles, references
 * and the loop's handle list, settings -- on live, closing, closed, stale,
 * forged-kind, zero and made-up ids.  Callbacks take their next action
 * from the same input: close the handle they are called for, write to it,
 * close another handle, start a timer or a lookup, stop the loop, or call
 * cltcp_loop_run()/cltcp_loop_close() (which must refuse).  Every input
 * ends with cltcp_loop_close() on a loop that still has live handles.
 *
 * The header's rules are checked as the input runs, with abort() (so
 * libFuzzer keeps the input) on any violation:
 *  - no callback from inside a call (only from cltcp_loop_run() and the
 *    teardown in cltcp_loop_close());
 *  - every handle whose creating call returned 0 gets exactly one CLOSE,
 *    as its last event, by the time cltcp_loop_close() returns; every
 *    started lookup exactly one callback; a failed call none;
 *  - no event for an id that is dead or unknown, none after CLOSE;
 *  - a call on a dead id (closed by its owner, CLOSE delivered, or of a
 *    closed loop), on a forged-kind id or on 0 does not succeed;
 *  - lookups of numeric names give the name back, names under
 *    ".localhost" give loopback addresses.
 * AddressSanitizer and UndefinedBehaviorSanitizer watch the memory.
 *
 * Environment (for investigating, not for normal runs):
 *  CLTCP_FUZZ_NO_FORGED=1   no forged-kind ids
 *  CLTCP_FUZZ_NO_OLD_LOOP=1 no ids of closed loops
 *  CLTCP_FUZZ_VERBOSE=1     print each operation
 *
 * Build and run: tests/fuzz/run (see there).
 */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cltcp.h"

/* The signal the fuzzer watches and raises: ignored by default, and not
 * one of libFuzzer's own (SIGUSR1/2, SIGINT, SIGTERM, SIGSEGV, ...). */
#define FUZZ_SIGNAL SIGWINCH

/* ---- the input ---------------------------------------------------------- */

static const uint8_t *in_data;
static size_t in_len, in_pos;

static int more(void) { return in_pos < in_len; }

static unsigned byte(void) { return in_pos < in_len ? in_data[in_pos++] : 0; }

static unsigned pick(unsigned n) { return n ? byte() % n : 0; }

/* ---- checks -------------------------------------------------------------- */

static int verbose;
static int no_forged, no_old_loop;

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_abi: rule broken: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

static void say(const char *fmt, ...) {
  va_list ap;
  if (!verbose)
    return;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- what the fuzzer knows about each handle ----------------------------- */

enum { MAXREC = 256 };

typedef struct rec {
  cltcp_id id;
  int kind;        /* CLTCP_KIND_* */
  int loop_no;     /* which loop of this input */
  int owner_closed; /* a close call returned 0: the id is dead for calls */
  int closes;      /* CLOSE events (handles) or callbacks (DNS) */
  int connected;   /* socket: CONNECT seen, or accepted */
  int aux;         /* DNS: index of the name in hosts[] */
} rec;

static rec recs[MAXREC];
static int nrec;
static cltcp_id loop_id;   /* the current loop */
static cltcp_id old_loops[4];
static int nold;
static int loop_no;
static int in_call;        /* inside an ABI call made by the fuzzer */
static int in_teardown;    /* inside cltcp_loop_close() */
static int depth;          /* callback nesting (never > 1) */
static double slept;       /* seconds slept for this input */

static rec *rec_new(cltcp_id id, int kind) {
  rec *r;
  if (nrec == MAXREC)
    return NULL;
  r = &recs[nrec++];
  memset(r, 0, sizeof(*r));
  r->id = id;
  r->kind = kind;
  r->loop_no = loop_no;
  return r;
}

static rec *rec_find(cltcp_id id) {
  int i;
  for (i = nrec - 1; i >= 0; i--)
    if (recs[i].id == id && recs[i].loop_no == loop_no)
      return &recs[i];
  return NULL;
}

/* A handle the library still owes events to. */
static int rec_live(const rec *r) {
  return r->loop_no == loop_no && r->closes == 0;
}

/* Dead for calls: the owner closed it, its CLOSE came, or its loop is
 * gone.  (Keep-mode reads stay allowed until CLOSE; not asserted here.) */
static int rec_dead(const rec *r) {
  return r->owner_closed || r->closes > 0 || r->loop_no != loop_no;
}

/* ---- ids to call with ---------------------------------------------------- */

typedef struct target {
  cltcp_id id;
  rec *r;       /* the handle it came from, if any */
  int must_fail; /* dead, forged, zero: the call must not return 0 */
  int forged;
} target;

static target pick_target(int want_kind) {
  target t;
  unsigned how = pick(16);
  int i, start;
  memset(&t, 0, sizeof(t));
  if (nrec == 0 || how == 15) {
    t.must_fail = 1; /* id 0 */
    return t;
  }
  if (how == 14) {
    /* Made up from the input; if it happens to be a real id, it is one. */
    for (i = 0; i < 8; i++)
      t.id = (t.id << 8) | byte();
    t.r = rec_find(t.id);
    t.must_fail = t.id != loop_id &&
                  (t.r == NULL || rec_dead(t.r) || t.r->kind != want_kind);
    return t;
  }
  /* Prefer handles of the wanted kind, so that most calls reach the code;
   * with no such handle, one of another kind (EKIND). */
  start = (int)pick((unsigned)nrec);
  t.r = &recs[start];
  for (i = 0; i < nrec; i++) {
    rec *c = &recs[(start + i) % nrec];
    if (c->kind == want_kind && (how < 6 || !rec_dead(c))) {
      t.r = c;
      break;
    }
  }
  if (no_old_loop && t.r->loop_no != loop_no) {
    t.r = NULL;
    t.must_fail = 1; /* id 0 */
    return t;
  }
  t.id = t.r->id;
  t.must_fail = rec_dead(t.r) || t.r->kind != want_kind;
  if (how >= 11 && !no_forged) {
    /* Forged kind: the id's kind bits (59..61) say another kind. */
    int k = 1 + (int)pick(7);
    if (k != t.r->kind) {
      t.id = (t.id & ~((cltcp_id)7 << 59)) | ((cltcp_id)k << 59);
      t.forged = 1;
      t.must_fail = 1;
    }
  }
  return t;
}

/* The target of an operation on a handle of `kind': from a callback often
 * the handle called for, else pick_target(). */
static target target_for(int kind, rec *self) {
  target t;
  if (self != NULL && pick(2) == 0) {
    memset(&t, 0, sizeof(t));
    t.id = self->id;
    t.r = self;
    t.must_fail = rec_dead(self) || self->kind != kind;
    return t;
  }
  return pick_target(kind);
}

/* Room for one more handle or lookup made by the fuzzer: half the records,
 * so that every connect's ACCEPT still finds one. */
static int room(void) { return nrec < MAXREC / 2 - 1; }

/* Runs an ABI call with the in_call flag up; checks must_fail. */
#define CALL(t, expr)                                                        \
  ({                                                                         \
    int rc__;                                                                \
    in_call++;                                                               \
    rc__ = (expr);                                                           \
    in_call--;                                                               \
    if ((t).must_fail && rc__ == 0)                                          \
      fail("%s returned 0 for a dead/forged/zero id %#llx (line %d)",        \
           #expr, (unsigned long long)(t).id, __LINE__);                     \
    rc__;                                                                    \
  })

#define PLAIN(expr)                                                          \
  ({                                                                         \
    int rc__;                                                                \
    in_call++;                                                               \
    rc__ = (expr);                                                           \
    in_call--;                                                               \
    rc__;                                                                    \
  })

/* ---- names --------------------------------------------------------------- */

static const char *const hosts[] = {
    "127.0.0.1", "::1",          "[::1]",          "localhost",
    "LOCALHOST.", "a.localhost", "x.y.LocalHost",  "0.0.0.0",
    "1.2.3",      "bad name",    "",               "256.0.0.1",
    "nosuch.invalid", "::ffff:127.0.0.1", "1:2:3:4:5:6:7:8:9", "a..b",
};
enum { NHOSTS = sizeof(hosts) / sizeof(hosts[0]) };

static int is_dot_localhost(const char *h) {
  return strcmp(h, "a.localhost") == 0 || strcmp(h, "x.y.LocalHost") == 0;
}

/* ---- callbacks ---------------------------------------------------------- */

static void cb(uintptr_t ctx, cltcp_id id, int event, int status,
               cltcp_id other, const uint8_t *data, size_t len);
static void dns_cb(uintptr_t ctx, cltcp_id req, int status,
                   const cltcp_addr *addrs, size_t n);
static void do_op(int from_cb, rec *self);

static void cb(uintptr_t ctx, cltcp_id id, int event, int status,
               cltcp_id other, const uint8_t *data, size_t len) {
  rec *r;
  (void)ctx;
  if (in_call)
    fail("event %d for %#llx from inside a call", event,
         (unsigned long long)id);
  r = rec_find(id);
  if (r == NULL)
    fail("event %d for an id the fuzzer never got: %#llx", event,
         (unsigned long long)id);
  if (r->closes > 0)
    fail("event %d after CLOSE for %#llx", event, (unsigned long long)id);
  if (r->kind == CLTCP_KIND_DNS)
    fail("handle event for a DNS request");
  if (event < CLTCP_EV_CONNECT || event > CLTCP_EV_ASYNC)
    fail("unknown event %d", event);
  if ((event == CLTCP_EV_ACCEPT || event == CLTCP_EV_SIGNAL) !=
          (other != 0) ||
      (event == CLTCP_EV_ACCEPT && r->kind != CLTCP_KIND_SERVER) ||
      (event == CLTCP_EV_TIMER && r->kind != CLTCP_KIND_TIMER) ||
      (event == CLTCP_EV_SIGNAL &&
       (r->kind != CLTCP_KIND_SIGNAL || other != FUZZ_SIGNAL)) ||
      (event == CLTCP_EV_ASYNC && r->kind != CLTCP_KIND_ASYNC))
    fail("event %d (other %#llx) on a handle of kind %d", event,
         (unsigned long long)other, r->kind);
  if (event == CLTCP_EV_DATA && len > 0 && data == NULL)
    fail("DATA without bytes");
  if (event == CLTCP_EV_ERROR && status >= 0)
    fail("ERROR with status %d", status);
  if (event == CLTCP_EV_CLOSE) {
    r->closes++;
    if (in_teardown && status != UV_ECANCELED && status != 0)
      fail("teardown CLOSE with status %d", status);
    return; /* the id is dead: nothing more to do with it */
  }
  if (event == CLTCP_EV_CONNECT)
    r->connected = 1;
  if (event == CLTCP_EV_ACCEPT) {
    rec *s;
    if (rec_find(other) != NULL && rec_live(rec_find(other)))
      fail("ACCEPT of an id already live: %#llx", (unsigned long long)other);
    s = rec_new(other, CLTCP_KIND_SOCKET);
    if (s == NULL) /* room() keeps half the records for accepts */
      fail("out of records");
    s->connected = 1;
    if (cltcp_id_kind(other) != CLTCP_KIND_SOCKET)
      fail("ACCEPT gave a non-socket id");
  }
  if (depth > 0 || in_teardown)
    return;
  depth++;
  if (more())
    do_op(1, r);
  depth--;
}

static void dns_cb(uintptr_t ctx, cltcp_id req, int status,
                   const cltcp_addr *addrs, size_t n) {
  rec *r;
  const char *host;
  size_t i;
  if (in_call)
    fail("DNS callback from inside a call");
  if (ctx == 0 || ctx > (uintptr_t)nrec)
    fail("DNS callback with an unknown context");
  r = &recs[ctx - 1];
  if (r->kind != CLTCP_KIND_DNS || r->id != req)
    fail("DNS callback with the context of another request");
  if (r->closes++ > 0)
    fail("second DNS callback for %#llx", (unsigned long long)req);
  if ((status == 0) != (n > 0) || (n > 0 && addrs == NULL))
    fail("DNS status %d with %zu addresses", status, n);
  for (i = 0; i < n; i++) {
    if (addrs[i].family != CLTCP_AF_INET && addrs[i].family != CLTCP_AF_INET6)
      fail("DNS address family %d", addrs[i].family);
    if (memchr(addrs[i].addr, 0, sizeof(addrs[i].addr)) == NULL)
      fail("DNS address not terminated");
  }
  /* What each name must give (r->connected holds the name's index). */
  host = hosts[r->aux];
  if (status == 0 && is_dot_localhost(host))
    for (i = 0; i < n; i++)
      if (strcmp(addrs[i].addr, "127.0.0.1") != 0 &&
          strcmp(addrs[i].addr, "::1") != 0)
        fail("%s resolved to %s", host, addrs[i].addr);
  if (status == 0 && (strcmp(host, "127.0.0.1") == 0 ||
                      strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0))
    if (n != 1 || strcmp(addrs[0].addr, host[0] == '[' ? "::1" : host) != 0)
      fail("%s resolved to %s", host, addrs[0].addr);
  if (status != 0 && (is_dot_localhost(host) || strcmp(host, "localhost") ==
                                                    0) &&
      status != UV_ECANCELED)
    fail("%s failed: %d", host, status);
  if (depth > 0 || in_teardown)
    return;
  depth++;
  if (more())
    do_op(1, NULL);
  depth--;
}

static void name_cb(uintptr_t ctx, cltcp_id req, int status,
                    const char *name, size_t len) {
  rec *r;
  if (in_call)
    fail("reverse DNS callback from inside a call");
  if (ctx == 0 || ctx > (uintptr_t)nrec)
    fail("reverse DNS callback with an unknown context");
  r = &recs[ctx - 1];
  if (r->kind != CLTCP_KIND_DNS || r->id != req)
    fail("reverse DNS callback with the context of another request");
  if (r->closes++ > 0)
    fail("second reverse DNS callback for %#llx", (unsigned long long)req);
  if ((status == 0) != (name != NULL && len > 0) ||
      (name != NULL && strlen(name) != len))
    fail("reverse DNS status %d with name length %zu", status, len);
  if (depth > 0 || in_teardown)
    return;
  depth++;
  if (more())
    do_op(1, NULL);
  depth--;
}

/* ---- operations ---------------------------------------------------------- */

static int server_port(void) {
  int i, port = 0;
  for (i = nrec - 1; i >= 0; i--)
    if (recs[i].kind == CLTCP_KIND_SERVER && !rec_dead(&recs[i]) &&
        cltcp_server_port(&port, recs[i].id) == 0)
      return port;
  return 1; /* nothing listens on 127.0.0.1:1 */
}

static void run_turns(unsigned n) {
  unsigned i;
  for (i = 0; i < n; i++) {
    int alive = 0, rc = cltcp_loop_run(&alive, loop_id, CLTCP_RUN_NOWAIT);
    if (rc != 0)
      fail("cltcp_loop_run returned %d", rc);
  }
}

static void nap(unsigned ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  if (slept > 0.05)
    return;
  slept += ms / 1000.0;
  nanosleep(&ts, NULL);
}

static void new_loop(void) {
  loop_no++;
  if (cltcp_loop_new(&loop_id) != 0)
    fail("cltcp_loop_new failed");
  /* Names that do reach c-ares (none of the localhost ones) go to a port
   * where nothing listens and fail fast; nothing leaves the machine. */
  if (cltcp_loop_set_dns_servers(loop_id, "127.0.0.1:1") != 0 ||
      cltcp_loop_set_dns_timeout(loop_id, 0.05, 1) != 0)
    fail("DNS settings refused");
}

static void check_loop_done(int no) {
  int i;
  for (i = 0; i < nrec; i++)
    if (recs[i].loop_no == no && recs[i].closes != 1)
      fail("%s %#llx got %d final callbacks after cltcp_loop_close()",
           recs[i].kind == CLTCP_KIND_DNS ? "lookup" : "handle",
           (unsigned long long)recs[i].id, recs[i].closes);
}

static void close_loop(void) {
  int rc;
  in_teardown = 1;
  rc = cltcp_loop_close(loop_id);
  in_teardown = 0;
  if (rc != 0)
    fail("cltcp_loop_close returned %d", rc);
  check_loop_done(loop_no);
  if (nold < 4)
    old_loops[nold++] = loop_id;
}

static void op_write(target t, int from_cb) {
  uint8_t buf[300];
  size_t len = pick(4) == 0 ? 0 : byte() + 1;
  int flags = (int)pick(3); /* 0, NOTIFY, or an unknown bit */
  memset(buf, 'a' + (int)pick(26), sizeof(buf));
  (void)from_cb;
  CALL(t, cltcp_socket_write(t.id, buf, len, flags));
}

static void op_close(target t, int kind) {
  int rc;
  switch (kind) {
  case CLTCP_KIND_SOCKET:
    rc = CALL(t, cltcp_socket_close(t.id, (int)pick(3)));
    break;
  case CLTCP_KIND_SERVER:
    rc = CALL(t, cltcp_server_close(t.id));
    break;
  case CLTCP_KIND_TIMER:
    rc = CALL(t, cltcp_timer_close(t.id));
    break;
  case CLTCP_KIND_SIGNAL:
    rc = CALL(t, cltcp_signal_close(t.id));
    break;
  case CLTCP_KIND_ASYNC:
    rc = CALL(t, cltcp_async_close(t.id));
    break;
  default:
    rc = CALL(t, cltcp_dns_cancel(t.id));
    return; /* a cancelled lookup still gets its one callback */
  }
  if (rc == 0 && t.r != NULL && !t.forged && !t.must_fail)
    t.r->owner_closed = 1;
}

static void op_lookup(void) {
  unsigned h = pick(NHOSTS);
  int fam = (int)pick(4); /* 0, 1 (bad), 2 (bad) or 3 -> map below */
  static const int fams[] = {CLTCP_AF_UNSPEC, CLTCP_AF_INET, CLTCP_AF_INET6,
                             7};
  cltcp_id req = 0;
  rec *r;
  int rc;
  if (nrec == MAXREC)
    return;
  r = &recs[nrec]; /* filled only if the call succeeds */
  rc = PLAIN(cltcp_dns_lookup(&req, loop_id, hosts[h], fams[fam], dns_cb,
                              (uintptr_t)(nrec + 1)));
  say("lookup %s/%d -> %d", hosts[h], fams[fam], rc);
  if (rc == 0) {
    r = rec_new(req, CLTCP_KIND_DNS);
    r->aux = (int)h;
  } else if (fams[fam] != 7 && h != 10 /* "" */) {
    if (rc != CLTCP_EDNSCONFIG && rc != UV_ENOMEM)
      fail("lookup of %s refused: %d", hosts[h], rc);
  }
}

static void do_op(int from_cb, rec *self) {
  unsigned op = pick(from_cb ? 14 : 30);
  target t;
  int rc;
  say("%s op %u", from_cb ? "  cb" : "", op);
  switch (op) {
  case 0: /* close, by the handle's own kind */
  {
    static const int kinds[] = {CLTCP_KIND_SOCKET, CLTCP_KIND_SERVER,
                                CLTCP_KIND_TIMER,  CLTCP_KIND_DNS,
                                CLTCP_KIND_SIGNAL, CLTCP_KIND_ASYNC};
    int k = kinds[pick(6)];
    t = target_for(k, self);
    op_close(t, k);
    break;
  }
  case 1: /* write */
    op_write(target_for(CLTCP_KIND_SOCKET, self), from_cb);
    break;
  case 2: /* shutdown */
    t = target_for(CLTCP_KIND_SOCKET, self);
    CALL(t, cltcp_socket_shutdown(t.id));
    break;
  case 3: { /* start a timer */
    cltcp_id tm = 0;
    double sec = pick(8) / 1000.0, rep = pick(4) == 0 ? pick(5) / 1000.0 : 0;
    if (pick(16) == 0)
      sec = (double)NAN;
    if (!room())
      break;
    rc = PLAIN(cltcp_timer_start(&tm, loop_id, sec, rep, cb, 1));
    if (rc == 0)
      rec_new(tm, CLTCP_KIND_TIMER);
    break;
  }
  case 4: /* keep or drain mode, read */
  {
    uint8_t buf[64];
    size_t n = 0;
    t = target_for(CLTCP_KIND_SOCKET, self);
    if (pick(2))
      CALL(t, cltcp_socket_set_read_mode(t.id, (int)pick(3)));
    /* buffered/read keep working on a closing socket until its CLOSE. */
    if (t.r != NULL && !t.forged && t.r->kind == CLTCP_KIND_SOCKET &&
        t.r->closes == 0 && t.r->loop_no == loop_no)
      t.must_fail = 0;
    CALL(t, cltcp_socket_buffered(&n, t.id));
    CALL(t, cltcp_socket_read(&n, t.id, buf, pick(2) ? sizeof(buf) : 1));
    break;
  }
  case 5: /* lookup */
    if (room())
      op_lookup();
    break;
  case 6: /* stop the loop */
    PLAIN(cltcp_loop_stop(loop_id));
    break;
  case 7: /* run or close the loop from where we are */
    if (from_cb) {
      if (PLAIN(cltcp_loop_run(NULL, loop_id, CLTCP_RUN_NOWAIT)) !=
          CLTCP_EBUSY)
        fail("cltcp_loop_run from a callback did not say EBUSY");
      if (PLAIN(cltcp_loop_close(loop_id)) != CLTCP_EBUSY)
        fail("cltcp_loop_close from a callback did not say EBUSY");
    } else {
      run_turns(1 + pick(8));
    }
    break;
  case 8: /* settings on a socket */
    t = target_for(CLTCP_KIND_SOCKET, self);
    switch (pick(7)) {
    case 0:
      CALL(t, cltcp_socket_set_timeouts(t.id, pick(3) * 0.01, pick(3) * 0.01));
      break;
    case 1:
      CALL(t, cltcp_socket_set_connect_timeout(t.id, pick(3) * 0.01));
      break;
    case 2:
      CALL(t, cltcp_socket_set_drain_mark(t.id, pick(2) ? 0 : (size_t)-1));
      break;
    case 3:
      CALL(t, cltcp_socket_enable(t.id, (int)pick(3) - 1, (int)pick(3) - 1));
      break;
    case 4:
      /* Not asserted: setsockopt() on a socket not connected yet may
       * succeed or not. */
      PLAIN(cltcp_socket_nodelay(t.id, (int)pick(2)));
      PLAIN(cltcp_socket_keepalive(t.id, (int)pick(2), pick(3)));
      break;
    case 5:
      CALL(t, cltcp_socket_set_cb(t.id, cb, 2));
      break;
    default: {
      int rd, wr;
      CALL(t, cltcp_socket_enabled(&rd, &wr, t.id));
    }
    }
    break;
  case 9: { /* addresses, ports, liveness, on anything */
    char buf[64];
    int port, fam, alive = 2;
    size_t cnt;
    static const int kinds[] = {CLTCP_KIND_SOCKET, CLTCP_KIND_SERVER,
                                CLTCP_KIND_TIMER, CLTCP_KIND_DNS};
    t = pick_target(kinds[pick(4)]);
    /* Only "no crash" for these (UV_ENOTCONN and such are fine). */
    PLAIN(cltcp_socket_address(buf, pick(2) ? sizeof(buf) : 3, &port, &fam,
                               t.id, (int)pick(3)));
    PLAIN(cltcp_server_address(buf, sizeof(buf), &port, &fam, t.id));
    PLAIN(cltcp_server_port(&port, t.id));
    PLAIN(cltcp_loop_handle_count(&cnt, pick(2) ? loop_id : t.id));
    if (PLAIN(cltcp_id_alive(&alive, t.id)) != 0 || (alive != 0 && alive != 1))
      fail("cltcp_id_alive");
    /* A forged or dead id is never alive. */
    if (alive && (t.forged || (t.r != NULL && rec_dead(t.r)) ||
                  (t.r == NULL && t.id != loop_id)))
      fail("%#llx reported alive", (unsigned long long)t.id);
    break;
  }
  case 10: { /* connect, mostly a fresh socket */
    int port;
    const char *h = pick(2) ? "127.0.0.1" : hosts[pick(NHOSTS)];
    if (pick(4) != 0 && room()) {
      cltcp_id fresh = 0;
      if (PLAIN(cltcp_socket_new(&fresh, loop_id, cb, 3)) != 0)
        break;
      memset(&t, 0, sizeof(t));
      t.r = rec_new(fresh, CLTCP_KIND_SOCKET);
      t.id = fresh;
    } else {
      t = target_for(CLTCP_KIND_SOCKET, self);
    }
    port = pick(8) == 0 ? -1 : server_port();
    rc = CALL(t, cltcp_socket_connect(t.id, h, port));
    say("connect %s:%d -> %d", h, port, rc);
    break;
  }
  case 11: /* close this handle in its own callback */
  case 12:
  case 13:
    if (self != NULL && !rec_dead(self)) {
      memset(&t, 0, sizeof(t));
      t.id = self->id;
      t.r = self;
      op_close(t, self->kind);
    } else if (!from_cb) {
      run_turns(1);
    }
    break;
  case 14: { /* listen */
    cltcp_id sv = 0;
    const char *h = pick(2) ? "127.0.0.1" : hosts[pick(NHOSTS)];
    if (!room())
      break;
    rc = PLAIN(cltcp_server_listen(&sv, loop_id, h, 0, (int)pick(4) - 1, cb,
                                   4, cb, 0));
    say("listen %s -> %d", h, rc);
    if (rc == 0)
      rec_new(sv, CLTCP_KIND_SERVER);
    break;
  }
  case 15: /* new socket, not connected */
  {
    cltcp_id sk = 0;
    if (room() && PLAIN(cltcp_socket_new(&sk, loop_id, cb, 5)) == 0)
      rec_new(sk, CLTCP_KIND_SOCKET);
    break;
  }
  case 16: /* let time pass */
    nap(1 + pick(3));
    run_turns(1 + pick(4));
    break;
  case 17: /* tear the loop down with whatever is live, start another */
    if (nold < 3) {
      close_loop();
      new_loop();
    }
    break;
  case 18: /* the loop id itself, a closed loop's, or a handle's */
  {
    target l;
    uint64_t ms;
    memset(&l, 0, sizeof(l));
    l.id = loop_id;
    if (nold > 0 && pick(2) && !no_old_loop) {
      l.id = old_loops[pick((unsigned)nold)];
      l.must_fail = 1;
    }
    CALL(l, cltcp_loop_set_wakeup(l.id, pick(3) * 0.01));
    CALL(l, cltcp_loop_now(&ms, l.id));
    if (l.must_fail)
      CALL(l, cltcp_loop_stop(l.id));
    /* A socket call with a loop id, a loop call with a handle id. */
    l.must_fail = 1;
    CALL(l, cltcp_socket_close(l.id, 0));
    t = pick_target(CLTCP_KIND_SOCKET);
    if (t.id != loop_id) {
      t.must_fail = 1;
      CALL(t, cltcp_loop_stop(t.id));
      CALL(t, cltcp_loop_set_wakeup(t.id, 1));
    }
    break;
  }
  case 19: /* cancel a lookup */
    t = pick_target(CLTCP_KIND_DNS);
    CALL(t, cltcp_dns_cancel(t.id));
    break;
  case 20: { /* async handles: new, send, close */
    cltcp_id as = 0;
    if (pick(2) && room()) {
      if (PLAIN(cltcp_async_new(&as, loop_id, cb, 6)) == 0)
        rec_new(as, CLTCP_KIND_ASYNC);
      break;
    }
    t = target_for(CLTCP_KIND_ASYNC, self);
    if (pick(3))
      CALL(t, cltcp_async_send(t.id));
    else
      op_close(t, CLTCP_KIND_ASYNC);
    break;
  }
  case 21: { /* signal handles: watch, raise, close */
    cltcp_id sg = 0;
    int signum = 0;
    switch (pick(3)) {
    case 0:
      if (room() &&
          PLAIN(cltcp_signal_start(&sg, loop_id, FUZZ_SIGNAL, cb, 7)) == 0)
        rec_new(sg, CLTCP_KIND_SIGNAL);
      break;
    case 1:
      raise(FUZZ_SIGNAL); /* ignored when nobody watches */
      break;
    default:
      t = target_for(CLTCP_KIND_SIGNAL, self);
      CALL(t, cltcp_signal_signum(&signum, t.id));
      op_close(t, CLTCP_KIND_SIGNAL);
    }
    break;
  }
  case 22: { /* references, on a handle of any kind */
    static const int kinds[] = {CLTCP_KIND_SOCKET, CLTCP_KIND_SERVER,
                                CLTCP_KIND_TIMER, CLTCP_KIND_SIGNAL,
                                CLTCP_KIND_ASYNC, CLTCP_KIND_DNS};
    int refd = 2;
    t = target_for(kinds[pick(6)], self);
    /* Any live handle but a lookup takes it, whatever kind was wanted. */
    t.must_fail = t.forged || t.r == NULL || rec_dead(t.r) ||
                  t.r->kind == CLTCP_KIND_DNS;
    CALL(t, cltcp_handle_ref(t.id, (int)pick(2)));
    if (CALL(t, cltcp_handle_refd(&refd, t.id)) == 0 && refd != 0 &&
        refd != 1)
      fail("cltcp_handle_refd gave %d", refd);
    break;
  }
  case 23: { /* the loop's handle list and counts agree with the fuzzer */
    cltcp_handle_info info[64];
    size_t n = 0, cnt = 0, counts[CLTCP_KIND_LAST + 1], sum = 0, i;
    if (PLAIN(cltcp_loop_handles(info, 64, &n, loop_id)) != 0 ||
        PLAIN(cltcp_loop_kind_counts(counts, CLTCP_KIND_LAST + 1, loop_id)) !=
            0 ||
        PLAIN(cltcp_loop_handle_count(&cnt, loop_id)) != 0)
      fail("listing the loop's handles failed");
    for (i = 0; i <= CLTCP_KIND_LAST; i++)
      sum += counts[i];
    if (sum != cnt || n > cnt)
      fail("kind counts sum %zu, handle count %zu, listed %zu", sum, cnt, n);
    for (i = 0; i < n && i < 64; i++) {
      rec *r = rec_find(info[i].id);
      if (r == NULL || r->closes > 0 || r->kind != info[i].kind)
        fail("listed handle %#llx (kind %d) is not a live one",
             (unsigned long long)info[i].id, info[i].kind);
    }
    break;
  }
  case 24: { /* reverse lookups of numeric addresses */
    static const char *const addrs[] = {"127.0.0.1", "::1", "10.9.8.7",
                                        "localhost", ""};
    cltcp_id req = 0;
    unsigned a = pick(5);
    if (!room())
      break;
    rc = PLAIN(cltcp_dns_reverse(&req, loop_id, addrs[a], name_cb,
                                 (uintptr_t)(nrec + 1)));
    if (rc == 0)
      rec_new(req, CLTCP_KIND_DNS)->aux = 10; /* "": no forward checks */
    else if (a < 3 && rc != CLTCP_EDNSCONFIG && rc != UV_ENOMEM)
      fail("reverse lookup of %s refused: %d", addrs[a], rc);
    break;
  }
  case 25: { /* listen with flags, good and bad */
    cltcp_id sv = 0;
    int flags = pick(3) == 0 ? 2 : (int)pick(2) * CLTCP_LISTEN_REUSEPORT;
    if (!room())
      break;
    rc = PLAIN(cltcp_server_listen_ex(&sv, loop_id, "127.0.0.1", 0, -1,
                                      flags, cb, 4, cb, 0));
    if (rc == 0)
      rec_new(sv, CLTCP_KIND_SERVER);
    else if (flags != 2 && rc != UV_ENOTSUP)
      fail("listen_ex(%d) refused: %d", flags, rc);
    break;
  }
  default: /* more running, so that I/O makes progress */
    run_turns(1 + pick(3));
    break;
  }
}

/* ---- libFuzzer ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  verbose = getenv("CLTCP_FUZZ_VERBOSE") != NULL;
  no_forged = getenv("CLTCP_FUZZ_NO_FORGED") != NULL;
  no_old_loop = getenv("CLTCP_FUZZ_NO_OLD_LOOP") != NULL;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  in_data = data;
  in_len = size;
  in_pos = 0;
  nrec = 0;
  nold = 0;
  slept = 0;
  depth = 0;
  new_loop();
  while (more())
    do_op(0, NULL);
  run_turns(2);
  close_loop();
  return 0;
}
