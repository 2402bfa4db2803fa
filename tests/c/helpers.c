/*
 * helpers.c -- event recorder, bounded loop runners, ports and raw peers for
 * the Check suites.  See helpers.h.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- recorder ------------------------------------------------------------ */

rec_hook_fn rec_hook;

static ev *evs;
static size_t nevs, capevs;
static cltcp_id *tracked;
static size_t ntracked, captracked;
static double t0;

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double rec_now(void) { return now_s() - t0; }

void rec_reset(void) {
  size_t i;
  for (i = 0; i < nevs; i++) free((void *)evs[i].data);
  free(evs);
  evs = NULL;
  nevs = capevs = 0;
  free(tracked);
  tracked = NULL;
  ntracked = captracked = 0;
  rec_hook = NULL;
  t0 = now_s();
}

void track(cltcp_id id) {
  size_t i;
  for (i = 0; i < ntracked; i++)
    if (tracked[i] == id) return;
  if (ntracked == captracked) {
    captracked = captracked ? captracked * 2 : 64;
    tracked = realloc(tracked, captracked * sizeof *tracked);
    ck_assert_ptr_nonnull(tracked);
  }
  tracked[ntracked++] = id;
}

void rec_cb(uintptr_t ctx, cltcp_id id, int event, int status, cltcp_id other,
            const uint8_t *data, size_t len) {
  ev *e;
  if (nevs == capevs) {
    capevs = capevs ? capevs * 2 : 256;
    evs = realloc(evs, capevs * sizeof *evs);
    ck_assert_ptr_nonnull(evs);
  }
  e = &evs[nevs++];
  memset(e, 0, sizeof *e);
  e->ctx = ctx;
  e->id = id;
  e->event = event;
  e->status = status;
  e->other = other;
  e->len = len;
  e->when = now_s() - t0;
  if (event == CLTCP_EV_DATA && len > 0) {
    uint8_t *copy;
    ck_assert_ptr_nonnull(data);
    copy = malloc(len);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, data, len);
    e->data = copy;
  }
  track(id);
  if (event == CLTCP_EV_ACCEPT && other != 0) track(other);
  if (rec_hook != NULL) rec_hook(e);
}

size_t rec_count(void) { return nevs; }
const ev *rec_get(size_t i) { return i < nevs ? &evs[i] : NULL; }

size_t rec_count_ev(cltcp_id id, int event) {
  size_t i, n = 0;
  for (i = 0; i < nevs; i++)
    if (evs[i].id == id && (event == 0 || evs[i].event == event)) n++;
  return n;
}

long rec_index(cltcp_id id, int event, size_t n) {
  size_t i;
  for (i = 0; i < nevs; i++)
    if (evs[i].id == id && (event == 0 || evs[i].event == event)) {
      if (n == 0) return (long)i;
      n--;
    }
  return -1;
}

const ev *rec_find(cltcp_id id, int event, size_t n) {
  long i = rec_index(id, event, n);
  return i < 0 ? NULL : &evs[i];
}

size_t rec_data_len(cltcp_id id) {
  size_t i, n = 0;
  for (i = 0; i < nevs; i++)
    if (evs[i].id == id && evs[i].event == CLTCP_EV_DATA) n += evs[i].len;
  return n;
}

uint8_t *rec_data(cltcp_id id, size_t *len) {
  size_t i, off = 0, total = rec_data_len(id);
  uint8_t *buf = malloc(total + 1);
  ck_assert_ptr_nonnull(buf);
  for (i = 0; i < nevs; i++)
    if (evs[i].id == id && evs[i].event == CLTCP_EV_DATA && evs[i].len) {
      memcpy(buf + off, evs[i].data, evs[i].len);
      off += evs[i].len;
    }
  buf[off] = 0;
  *len = off;
  return buf;
}

static char ev_letter(int event) {
  static const char letters[] = "?CDERFWSATXGN";
  return event >= 1 && event <= 12 ? letters[event] : '?';
}

const char *rec_seq(cltcp_id id) {
  static char buf[4096];
  size_t i, n = 0;
  for (i = 0; i < nevs && n + 1 < sizeof buf; i++)
    if (evs[i].id == id) {
      /* Runs of DATA collapse into one letter: how the kernel chunks a
       * stream is not part of the contract. */
      if (evs[i].event == CLTCP_EV_DATA && n > 0 && buf[n - 1] == 'D')
        continue;
      buf[n++] = ev_letter(evs[i].event);
    }
  buf[n] = 0;
  return buf;
}

const char *ev_name(int event) {
  static const char *names[] = {"?",     "CONNECT",  "DATA",  "EOF",
                                "ERROR", "FLUSHED",  "DRAIN", "SHUTDOWN",
                                "ACCEPT", "TIMER",   "CLOSE",
                                "SIGNAL", "ASYNC"};
  return event >= 1 && event <= 12 ? names[event] : "?";
}

void rec_dump(void) {
  size_t i;
  for (i = 0; i < nevs; i++)
    fprintf(stderr,
            "  #%zu %.3fs ctx=%lu id=%#llx %s status=%d(%s) other=%#llx "
            "len=%zu\n",
            i, evs[i].when, (unsigned long)evs[i].ctx,
            (unsigned long long)evs[i].id, ev_name(evs[i].event),
            evs[i].status, cltcp_err_name(evs[i].status),
            (unsigned long long)evs[i].other, evs[i].len);
}

void check_close_last(void) {
  size_t i;
  for (i = 0; i < ntracked; i++) {
    cltcp_id id = tracked[i];
    size_t closes = rec_count_ev(id, CLTCP_EV_CLOSE);
    if (closes > 1) rec_dump();
    ck_assert_msg(closes <= 1, "id %#llx got %zu CLOSE events",
                  (unsigned long long)id, closes);
    if (closes == 1) {
      long ci = rec_index(id, CLTCP_EV_CLOSE, 0);
      long last = rec_index(id, 0, rec_count_ev(id, 0) - 1);
      if (ci != last) rec_dump();
      ck_assert_msg(ci == last, "id %#llx: an event came after CLOSE",
                    (unsigned long long)id);
    }
  }
}

/* ---- watchdog ------------------------------------------------------------ */

static const char *wd_what, *wd_file;
static int wd_line;
static double wd_seconds;

static void watchdog(int sig) {
  char msg[512];
  int n;
  (void)sig;
  /* The loop blocked inside libuv past the deadline: report and fail.  Not
   * async-signal-safe in theory, but the process is failing anyway and
   * Check's own timeout is the backstop if this deadlocks. */
  n = snprintf(msg, sizeof msg,
               "%s:%d: watchdog: '%s' not reached within %.1f s "
               "(loop blocked)\n",
               wd_file, wd_line, wd_what, wd_seconds);
  if (n > 0) (void)!write(2, msg, (size_t)n);
  ck_abort_msg("watchdog: '%s' not reached within %.1f s (loop blocked)",
               wd_what, wd_seconds);
}

static void watchdog_arm(double seconds, const char *what, const char *file,
                         int line) {
  wd_what = what;
  wd_file = file;
  wd_line = line;
  wd_seconds = seconds;
  signal(SIGALRM, watchdog);
  alarm((unsigned)seconds + 2);
}

static void watchdog_disarm(void) { alarm(0); }

static void run_until_mode(cltcp_id loop, pred_fn pred, void *arg,
                           double seconds, const char *what, const char *file,
                           int line, int mode) {
  double deadline = now_s() + seconds;
  watchdog_arm(seconds, what, file, line);
  while (!pred(arg)) {
    int alive = 0;
    int r = cltcp_loop_run(&alive, loop, mode);
    if (r != 0) {
      watchdog_disarm();
      ck_abort_msg("%s:%d: cltcp_loop_run returned %d (%s) waiting for %s",
                   file, line, r, cltcp_err_name(r), what);
    }
    if (pred(arg)) break;
    if (now_s() > deadline) {
      watchdog_disarm();
      rec_dump();
      ck_abort_msg("%s:%d: '%s' not reached within %.1f s", file, line, what,
                   seconds);
    }
    if (mode == CLTCP_RUN_NOWAIT || !alive) {
      struct timespec ts = {0, 200000}; /* 0.2 ms */
      nanosleep(&ts, NULL);
    }
  }
  watchdog_disarm();
}

void run_until_(cltcp_id loop, pred_fn pred, void *arg, double seconds,
                const char *what, const char *file, int line) {
  run_until_mode(loop, pred, arg, seconds, what, file, line, CLTCP_RUN_ONCE);
}

void pump_until_(cltcp_id loop, pred_fn pred, void *arg, double seconds,
                 const char *what, const char *file, int line) {
  run_until_mode(loop, pred, arg, seconds, what, file, line,
                 CLTCP_RUN_NOWAIT);
}

static bool pred_deadline(void *arg) { return now_s() >= *(double *)arg; }

void run_for(cltcp_id loop, double seconds) {
  double deadline;
  int r;
  /* At least one turn, however slow the machine: tests use run_for() to
   * let the loop take a step, not only to wait. */
  r = cltcp_loop_run(NULL, loop, CLTCP_RUN_NOWAIT);
  ck_assert_msg(r == 0, "run_for: cltcp_loop_run returned %d (%s)", r,
                cltcp_err_name(r));
  deadline = now_s() + seconds;
  run_until_mode(loop, pred_deadline, &deadline, seconds + 5, "run_for",
                 __FILE__, __LINE__, CLTCP_RUN_NOWAIT);
}

bool pred_events(void *arg) {
  want *w = arg;
  return rec_count_ev(w->id, w->event) >= w->n;
}

bool pred_data_len(void *arg) {
  want *w = arg;
  return rec_data_len(w->id) >= w->n;
}

bool pred_false(void *arg) {
  (void)arg;
  return false;
}

static bool pred_all_closed(void *arg) {
  size_t i;
  (void)arg;
  for (i = 0; i < ntracked; i++)
    if (rec_count_ev(tracked[i], CLTCP_EV_CLOSE) == 0) return false;
  return true;
}

void finish_loop_(cltcp_id loop, const char *file, int line) {
  size_t i, count = 99;
  int r;
  for (i = 0; i < ntracked; i++) {
    int alive = 0;
    cltcp_id id = tracked[i];
    ck_assert_int_eq(cltcp_id_alive(&alive, id), 0);
    if (!alive) continue;
    switch (cltcp_id_kind(id)) {
      case CLTCP_KIND_SOCKET:
        r = cltcp_socket_close(id, CLTCP_CLOSE_NOW);
        break;
      case CLTCP_KIND_SERVER:
        r = cltcp_server_close(id);
        break;
      case CLTCP_KIND_TIMER:
        r = cltcp_timer_close(id);
        break;
      case CLTCP_KIND_SIGNAL:
        r = cltcp_signal_close(id);
        break;
      case CLTCP_KIND_ASYNC:
        r = cltcp_async_close(id);
        break;
      default:
        r = 0;
    }
    ck_assert_msg(r == 0, "%s:%d: closing live id %#llx returned %d (%s)",
                  file, line, (unsigned long long)id, r, cltcp_err_name(r));
  }
  run_until_(loop, pred_all_closed, NULL, 10.0, "every handle closed", file,
             line);
  check_close_last();
  ck_assert_int_eq(cltcp_loop_handle_count(&count, loop), 0);
  ck_assert_msg(count == 0, "%s:%d: %zu handles left on the loop", file, line,
                count);
  r = cltcp_loop_close(loop);
  ck_assert_msg(r == 0, "%s:%d: cltcp_loop_close returned %d (%s)", file,
                line, r, cltcp_err_name(r));
  /* No tracked handle may get an event from the teardown: they were all
   * closed already. */
  check_close_last();
}

/* ---- ports and raw sockets ----------------------------------------------- */

static int fill_addr(struct sockaddr_storage *ss, socklen_t *len,
                     const char *host, int port) {
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  memset(ss, 0, sizeof *ss);
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *len = sizeof *in4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *len = sizeof *in6;
    return AF_INET6;
  }
  ck_abort_msg("bad numeric address %s", host);
  return -1;
}

static int sock_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int closed_port(int *fd) {
  struct sockaddr_storage ss;
  socklen_t len;
  int af = fill_addr(&ss, &len, "127.0.0.1", 0);
  *fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(*fd, 0);
  ck_assert_int_eq(bind(*fd, (struct sockaddr *)&ss, len), 0);
  return sock_port(*fd);
}

int have_ipv6_loopback(void) {
  struct sockaddr_in6 a;
  int ok, fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  memset(&a, 0, sizeof a);
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  ck_assert_int_ge(fl, 0);
  ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

int raw_listen(const char *host, int *port) {
  struct sockaddr_storage ss;
  socklen_t len;
  int one = 1, fd, af = fill_addr(&ss, &len, host, 0);
  fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
  ck_assert_int_eq(listen(fd, 128), 0);
  set_nonblock(fd);
  *port = sock_port(fd);
  return fd;
}

int raw_connect(const char *host, int port) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, af = fill_addr(&ss, &len, host, port);
  fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  /* A loopback connect completes in the kernel (the listener's backlog)
   * without the server's loop running, so blocking here is bounded. */
  ck_assert_msg(connect(fd, (struct sockaddr *)&ss, len) == 0,
                "raw connect to %s:%d: %s", host, port, strerror(errno));
  set_nonblock(fd);
  return fd;
}

struct accept_arg {
  int lfd, fd;
};

static bool pred_accept(void *arg) {
  struct accept_arg *a = arg;
  a->fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  return a->fd >= 0;
}

int raw_accept(cltcp_id loop, int lfd, double seconds) {
  struct accept_arg a = {lfd, -1};
  pump_until(loop, pred_accept, &a, seconds);
  return a.fd;
}

void raw_reset(int fd) {
  struct linger lg = {1, 0};
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  ck_assert_int_eq(close(fd), 0);
}

long raw_read(int fd, uint8_t *buf, size_t max, int *eof) {
  ssize_t n = read(fd, buf, max);
  if (n == 0) {
    if (eof) *eof = 1;
    return 0;
  }
  if (n < 0 && errno == ECONNRESET) {
    if (eof) *eof = 1;
    return 0;
  }
  if (n < 0) {
    ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "raw read: %s",
                  strerror(errno));
    return -1;
  }
  return (long)n;
}

void raw_set_rcvbuf(int fd, int bytes) {
  ck_assert_int_eq(
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes), 0);
}

/* ---- echo server --------------------------------------------------------- */

static void echo_server_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                           cltcp_id other, const uint8_t *data, size_t len) {
  echo_server *es = (echo_server *)ctx;
  if (event == CLTCP_EV_ACCEPT) es->accepted++;
  rec_cb(ctx, id, event, status, other, data, len);
}

static void echo_sock_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                         cltcp_id other, const uint8_t *data, size_t len) {
  echo_server *es = (echo_server *)ctx;
  if (event == CLTCP_EV_DATA) {
    int r = cltcp_socket_write(id, data, len, 0);
    ck_assert_msg(r == 0, "echo write returned %d (%s)", r,
                  cltcp_err_name(r));
    es->bytes += len;
    return; /* not recorded: transfers are large */
  }
  if (event == CLTCP_EV_ERROR) es->errors++;
  if (event == CLTCP_EV_CLOSE) es->closed++;
  rec_cb(ctx, id, event, status, other, data, len);
}

void echo_start(echo_server *es, cltcp_id loop, const char *host) {
  int r;
  memset(es, 0, sizeof *es);
  r = cltcp_server_listen(&es->server, loop, host, 0, -1, echo_server_cb,
                          (uintptr_t)es, echo_sock_cb, (uintptr_t)es);
  ck_assert_msg(r == 0, "echo listen on %s returned %d (%s)", host, r,
                cltcp_err_name(r));
  track(es->server);
  ck_assert_int_eq(cltcp_server_port(&es->port, es->server), 0);
  ck_assert_int_gt(es->port, 0);
}

/* ---- payloads ------------------------------------------------------------ */

uint8_t pattern_byte(uint32_t seed, size_t i) {
  /* Not periodic at any power-of-two length, so a dropped, duplicated or
   * reordered chunk changes the bytes, not just the count. */
  uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull +
               (uint64_t)seed * 0x632BE59BD9B4E019ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return (uint8_t)x;
}

void pattern_fill(uint8_t *dst, uint32_t seed, size_t off, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) dst[i] = pattern_byte(seed, off + i);
}

cltcp_id new_loop(void) {
  cltcp_id loop = 0;
  /* Tests write to peers that reset; one test (io:no_sigpipe) checks with
   * the default disposition what the library does about SIGPIPE.  The
   * others must not die of it, so it is ignored here (each Check test runs
   * in its own process). */
  signal(SIGPIPE, SIG_IGN);
  rec_reset();
  ck_assert_int_eq(cltcp_loop_new(&loop), 0);
  ck_assert_int_ne(loop, 0);
  ck_assert_int_eq(cltcp_id_kind(loop), CLTCP_KIND_LOOP);
  return loop;
}
