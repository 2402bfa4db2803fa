/*
 * test_io.c -- the data path of a connected socket, against a raw POSIX peer
 * that does exactly what each test needs: FLUSHED order and count, bytes
 * queued, the drain mark, peer EOF, peer reset, read and write timeouts,
 * read monitoring on/off, keep mode and partial copy-out, read mode
 * switches, shutdown (half-close), CLOSE_FLUSH, CLOSE_NOW, argument errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "helpers.h"

#define MiB (1024 * 1024)

/* A client socket `c' connected to a raw peer `fd'. */
typedef struct pair {
  cltcp_id loop, c;
  int fd, lfd;
  double connecting; /* rec_now() just before cltcp_socket_connect() */
} pair;

static void pair_open(pair *p, double read_to, double write_to,
                      int rcvbuf) {
  int port = 0;
  p->loop = new_loop();
  p->lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&p->c, p->loop, rec_cb, 1), 0);
  track(p->c);
  if (read_to != 0 || write_to != 0)
    ck_assert_int_eq(cltcp_socket_set_timeouts(p->c, read_to, write_to), 0);
  p->connecting = rec_now();
  ck_assert_int_eq(cltcp_socket_connect(p->c, "127.0.0.1", port), 0);
  p->fd = raw_accept(p->loop, p->lfd, 5);
  if (rcvbuf > 0) raw_set_rcvbuf(p->fd, rcvbuf);
  wait_ev(p->loop, p->c, CLTCP_EV_CONNECT, 1, 5);
  ck_assert_int_eq(rec_find(p->c, CLTCP_EV_CONNECT, 0)->status, 0);
}

/* Reads exactly n bytes from the raw peer, running the loop meanwhile;
 * fails the test after `seconds' (a bound, not an expected speed). */
static void raw_read_n(pair *p, uint8_t *buf, size_t n, double seconds) {
  double deadline = now_s() + seconds;
  size_t have = 0;
  int eof = 0;
  while (have < n) {
    long r = raw_read(p->fd, buf + have, n - have, &eof);
    if (r > 0) have += (size_t)r;
    ck_assert_int_eq(eof, 0);
    ck_assert_msg(now_s() < deadline, "only %zu of %zu bytes arrived", have,
                  n);
    if (have < n) cltcp_loop_run(NULL, p->loop, CLTCP_RUN_NOWAIT);
  }
}

static void pair_finish(pair *p) {
  if (p->fd >= 0) close(p->fd);
  close(p->lfd);
  finish_loop(p->loop);
}

/* Reads from the raw peer, checking each byte against pattern `seed'. */
typedef struct reader {
  int fd;
  uint32_t seed;
  size_t want, got;
  int eof;
  size_t bad; /* first mismatch + 1, 0 = none */
  int stop_reading;
} reader;

static bool pred_reader(void *arg) {
  reader *r = arg;
  static uint8_t buf[256 * 1024];
  long n;
  if (r->stop_reading) return r->got >= r->want || r->eof;
  while (!r->eof && (n = raw_read(r->fd, buf, sizeof buf, &r->eof)) > 0) {
    long i;
    for (i = 0; i < n; i++)
      if (!r->bad && buf[i] != pattern_byte(r->seed, r->got + (size_t)i))
        r->bad = r->got + (size_t)i + 1;
    r->got += (size_t)n;
  }
  return r->got >= r->want || r->eof;
}

static bool pred_reader_eof(void *arg) {
  reader *r = arg;
  pred_reader(arg);
  return r->eof;
}

static uint8_t *payload(uint32_t seed, size_t len) {
  uint8_t *b = malloc(len);
  ck_assert_ptr_nonnull(b);
  pattern_fill(b, seed, 0, len);
  return b;
}

static size_t queued(cltcp_id s) {
  size_t n = 0;
  ck_assert_int_eq(cltcp_socket_queued(&n, s), 0);
  return n;
}

/* ---- FLUSHED ------------------------------------------------------------ */

static cltcp_id g_sock;
static size_t g_queued_at_event = 12345;

static void queued_at_flush_hook(const ev *e) {
  if (e->id == g_sock &&
      (e->event == CLTCP_EV_FLUSHED || e->event == CLTCP_EV_DRAIN))
    ck_assert_int_eq(cltcp_socket_queued(&g_queued_at_event, g_sock), 0);
}

START_TEST(flushed_small) {
  pair p;
  uint8_t buf[64];
  int eof = 0;
  size_t n0;
  pair_open(&p, 0, 0, 0);
  g_sock = p.c;
  rec_hook = queued_at_flush_hook;
  n0 = rec_count();
  ck_assert_int_eq(
      cltcp_socket_write(p.c, (const uint8_t *)"hello", 5, CLTCP_WRITE_NOTIFY),
      0);
  /* Never from inside the call. */
  ck_assert_uint_eq(rec_count(), n0);
  wait_ev(p.loop, p.c, CLTCP_EV_FLUSHED, 1, 5);
  {
    const ev *e = rec_find(p.c, CLTCP_EV_FLUSHED, 0);
    ck_assert_int_eq(e->status, 0);
    ck_assert_int_eq(e->other, 0);
    ck_assert_int_eq(e->ctx, 1);
  }
  ck_assert_uint_eq(g_queued_at_event, 0);
  /* A write without NOTIFY gets no FLUSHED. */
  ck_assert_int_eq(cltcp_socket_write(p.c, (const uint8_t *)"abc", 3, 0), 0);
  raw_read_n(&p, buf, 8, 10);
  ck_assert_mem_eq(buf, "helloabc", 8);
  run_for(p.loop, 0.1);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_FLUSHED), 1);
  {
    long n = raw_read(p.fd, buf, sizeof buf, &eof);
    ck_assert_int_eq(n, -1); /* nothing more */
  }
  /* Each NOTIFY write is followed by its own FLUSHED, in order, and only
   * once. */
  ck_assert_int_eq(
      cltcp_socket_write(p.c, (const uint8_t *)"1", 1, CLTCP_WRITE_NOTIFY), 0);
  ck_assert_int_eq(
      cltcp_socket_write(p.c, (const uint8_t *)"2", 1, CLTCP_WRITE_NOTIFY), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_FLUSHED, 3, 5);
  run_for(p.loop, 0.1);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_FLUSHED), 3);
  ck_assert_str_eq(rec_seq(p.c), "CFFF");
  pair_finish(&p);
}
END_TEST

START_TEST(flushed_after_queue_drains) {
  pair p;
  const size_t len = 8 * MiB;
  uint8_t *data = payload(7, len);
  reader r = {0};
  pair_open(&p, 0, 0, 16 * 1024);
  g_sock = p.c;
  rec_hook = queued_at_flush_hook;
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, CLTCP_WRITE_NOTIFY), 0);
  memset(data, 0, len); /* copied already */
  free(data);
  ck_assert_uint_gt(queued(p.c), 0);
  ck_assert_uint_le(queued(p.c), len);
  /* The peer does not read: no FLUSHED. */
  run_for(p.loop, 0.2);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_FLUSHED), 0);
  ck_assert_uint_gt(queued(p.c), 0);
  r.fd = p.fd;
  r.seed = 7;
  r.want = len;
  pump_until(p.loop, pred_reader, &r, 20);
  wait_ev(p.loop, p.c, CLTCP_EV_FLUSHED, 1, 5);
  ck_assert_uint_eq(r.got, len);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_int_eq(r.eof, 0);
  ck_assert_uint_eq(g_queued_at_event, 0);
  run_for(p.loop, 0.05);
  ck_assert_str_eq(rec_seq(p.c), "CF");
  pair_finish(&p);
}
END_TEST

START_TEST(flushed_empty_write) {
  /* A NOTIFY write of 0 bytes asks only for the FLUSHED (a "finish
   * output"): it follows on a later turn, once. */
  pair p;
  size_t n0;
  pair_open(&p, 0, 0, 0);
  n0 = rec_count();
  ck_assert_int_eq(cltcp_socket_write(p.c, NULL, 0, CLTCP_WRITE_NOTIFY), 0);
  ck_assert_uint_eq(rec_count(), n0);
  wait_ev(p.loop, p.c, CLTCP_EV_FLUSHED, 1, 5);
  run_for(p.loop, 0.05);
  ck_assert_str_eq(rec_seq(p.c), "CF");
  pair_finish(&p);
}
END_TEST

START_TEST(set_cb_mid_stream) {
  pair p;
  pair_open(&p, 0, 0, 0);
  ck_assert_int_eq(write(p.fd, "one", 3), 3);
  wait_ev(p.loop, p.c, CLTCP_EV_DATA, 1, 5);
  ck_assert_int_eq(cltcp_socket_set_cb(p.c, rec_cb, 42), 0);
  ck_assert_int_eq(write(p.fd, "two", 3), 3);
  wait_ev(p.loop, p.c, CLTCP_EV_DATA, 2, 5);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_DATA, 0)->ctx, 1);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_DATA, 1)->ctx, 42);
  pair_finish(&p);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_CLOSE, 0)->ctx, 42);
}
END_TEST

/* ---- queued and DRAIN ---------------------------------------------------- */

START_TEST(queued_and_drain_mark) {
  pair p;
  const size_t len = 16 * MiB, mark = 1 * MiB;
  uint8_t *data = payload(9, len);
  reader r = {0};
  size_t q;
  const ev *e;
  pair_open(&p, 0, 0, 16 * 1024);
  g_sock = p.c;
  rec_hook = queued_at_flush_hook;
  ck_assert_uint_eq(queued(p.c), 0);
  ck_assert_int_eq(cltcp_socket_set_drain_mark(p.c, mark), 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, 0), 0);
  free(data);
  q = queued(p.c);
  /* The kernel takes a few MiB at most; the rest is queued in the library. */
  ck_assert_uint_gt(q, mark);
  ck_assert_uint_le(q, len);
  run_for(p.loop, 0.2);
  ck_assert_uint_gt(queued(p.c), mark);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_DRAIN), 0);
  r.fd = p.fd;
  r.seed = 9;
  r.want = len;
  pump_until(p.loop, pred_reader, &r, 30);
  ck_assert_uint_eq(r.got, len);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_uint_eq(queued(p.c), 0);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_DRAIN), 1);
  e = rec_find(p.c, CLTCP_EV_DRAIN, 0);
  ck_assert_int_eq(e->status, 0);
  ck_assert_uint_le(e->len, mark);
  ck_assert_uint_eq(e->len, g_queued_at_event);
  ck_assert_ptr_null(e->data);
  /* Crossing the mark again gives another DRAIN; writes that stay below it
   * give none. */
  ck_assert_int_eq(cltcp_socket_write(p.c, (const uint8_t *)"x", 1, 0), 0);
  run_for(p.loop, 0.05);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_DRAIN), 1);
  /* The kernel's send buffer has grown by now: write enough to go well
   * above the mark again. */
  data = payload(10, 16 * MiB);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, 16 * MiB, 0), 0);
  free(data);
  ck_assert_uint_gt(queued(p.c), mark);
  r.want += 1 + 16 * MiB;
  r.seed = 0;
  r.bad = 1; /* contents not checked for this part */
  pump_until(p.loop, pred_reader, &r, 30);
  wait_ev(p.loop, p.c, CLTCP_EV_DRAIN, 2, 5);
  run_for(p.loop, 0.05);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_DRAIN), 2);
  /* Turned off: no DRAIN. */
  ck_assert_int_eq(cltcp_socket_set_drain_mark(p.c, (size_t)-1), 0);
  data = payload(11, 4 * MiB);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, 4 * MiB, CLTCP_WRITE_NOTIFY),
                   0);
  free(data);
  r.want += 4 * MiB;
  pump_until(p.loop, pred_reader, &r, 30);
  wait_ev(p.loop, p.c, CLTCP_EV_FLUSHED, 1, 5);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_DRAIN), 2);
  ck_assert_str_eq(rec_seq(p.c), "CWWF");
  pair_finish(&p);
}
END_TEST

/* A mark too large for the socket's own 32-bit field is kept whole (in the
 * socket's rarely used part): cut to its low 32 bits, this one would be
 * 1 MiB and the queue below would cross it. */
START_TEST(drain_mark_of_4_gib_or_more) {
#if SIZE_MAX > UINT32_MAX
  pair p;
  const size_t len = 16 * MiB, small = 1 * MiB;
  const size_t big = ((size_t)1 << 32) + small;
  uint8_t *data = payload(12, len);
  reader r = {0};
  pair_open(&p, 0, 0, 16 * 1024);
  ck_assert_int_eq(cltcp_socket_set_drain_mark(p.c, big), 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, 0), 0);
  ck_assert_uint_gt(queued(p.c), small);
  r.fd = p.fd;
  r.seed = 12;
  r.want = len;
  pump_until(p.loop, pred_reader, &r, 30);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_uint_eq(queued(p.c), 0);
  run_for(p.loop, 0.05);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_DRAIN), 0);
  /* The same queue against the small mark: one DRAIN (the set-up can give
   * one), also after the large mark was in the part. */
  ck_assert_int_eq(cltcp_socket_set_drain_mark(p.c, small), 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, 0), 0);
  free(data);
  ck_assert_uint_gt(queued(p.c), small);
  r.want += len;
  r.seed = 0;
  r.bad = 1; /* contents checked above */
  pump_until(p.loop, pred_reader, &r, 30);
  wait_ev(p.loop, p.c, CLTCP_EV_DRAIN, 1, 5);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_DRAIN), 1);
  ck_assert_uint_le(rec_find(p.c, CLTCP_EV_DRAIN, 0)->len, small);
  pair_finish(&p);
#endif
}
END_TEST

/* ---- EOF ----------------------------------------------------------------- */

START_TEST(peer_eof) {
  pair p;
  int alive = 5;
  pair_open(&p, 0, 0, 0);
  ck_assert_int_eq(write(p.fd, "bye", 3), 3);
  ck_assert_int_eq(close(p.fd), 0);
  p.fd = -1;
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  run_for(p.loop, 0.05);
  ck_assert_str_eq(rec_seq(p.c), "CDEX");
  {
    size_t n;
    uint8_t *d = rec_data(p.c, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(d, "bye", 3);
    free(d);
  }
  {
    const ev *e = rec_find(p.c, CLTCP_EV_EOF, 0);
    ck_assert_msg(e->status == 0 || e->status == UV_EOF, "EOF status %d",
                  e->status);
    ck_assert_uint_eq(e->len, 0);
  }
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_int_eq(cltcp_id_alive(&alive, p.c), 0);
  ck_assert_int_eq(alive, 0);
  pair_finish(&p);
}
END_TEST

static int g_eof_write = 1, g_after_eof_write = 1;

static void write_in_eof_hook(const ev *e) {
  if (e->event == CLTCP_EV_EOF)
    g_eof_write = cltcp_socket_write(e->id, (const uint8_t *)"tail", 4,
                                     CLTCP_WRITE_NOTIFY);
}

START_TEST(write_in_eof_then_graceful_close) {
  /* The peer half-closes; the EOF callback still writes; the socket then
   * closes gracefully and the peer gets every byte, then EOF. */
  pair p;
  uint8_t buf[64];
  size_t got = 0;
  int eof = 0;
  double deadline;
  pair_open(&p, 0, 0, 0);
  rec_hook = write_in_eof_hook;
  ck_assert_int_eq(write(p.fd, "req", 3), 3);
  ck_assert_int_eq(shutdown(p.fd, SHUT_WR), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_EOF, 1, 5);
  ck_assert_int_eq(g_eof_write, 0);
  /* After the EOF callback returned, the graceful close has started. */
  g_after_eof_write = cltcp_socket_write(p.c, (const uint8_t *)"late", 4, 0);
  ck_assert_msg(g_after_eof_write == UV_EPIPE ||
                    g_after_eof_write == CLTCP_ECLOSED,
                "write after EOF returned %d (%s)", g_after_eof_write,
                cltcp_err_name(g_after_eof_write));
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  deadline = now_s() + 5;
  while (!eof && now_s() < deadline) {
    long n = raw_read(p.fd, buf + got, sizeof buf - got, &eof);
    if (n > 0) got += (size_t)n;
    cltcp_loop_run(NULL, p.loop, CLTCP_RUN_NOWAIT);
  }
  ck_assert_int_eq(eof, 1);
  ck_assert_uint_eq(got, 4);
  ck_assert_mem_eq(buf, "tail", 4);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_CLOSE, 0)->status, 0);
  /* FLUSHED of the tail may come before CLOSE; nothing else. */
  ck_assert_msg(strcmp(rec_seq(p.c), "CDEFX") == 0 ||
                    strcmp(rec_seq(p.c), "CDEX") == 0,
                "events %s", rec_seq(p.c));
  pair_finish(&p);
}
END_TEST

/* ---- reset --------------------------------------------------------------- */

START_TEST(peer_reset_client) {
  pair p;
  const ev *e;
  pair_open(&p, 0, 0, 0);
  raw_reset(p.fd);
  p.fd = -1;
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  run_for(p.loop, 0.05);
  ck_assert_str_eq(rec_seq(p.c), "CRX");
  e = rec_find(p.c, CLTCP_EV_ERROR, 0);
  ck_assert_msg(e->status == UV_ECONNRESET, "ERROR status %d (%s)", e->status,
                cltcp_err_name(e->status));
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_EOF), 0);
  pair_finish(&p);
}
END_TEST

START_TEST(peer_reset_accepted) {
  cltcp_id loop = new_loop(), server = 0, a;
  int port = 0, fd;
  const ev *e;
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   0);
  track(server);
  ck_assert_int_eq(cltcp_server_port(&port, server), 0);
  fd = raw_connect("127.0.0.1", port);
  wait_ev(loop, server, CLTCP_EV_ACCEPT, 1, 5);
  a = rec_find(server, CLTCP_EV_ACCEPT, 0)->other;
  run_for(loop, 0.02);
  raw_reset(fd);
  wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 5);
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(a), "RX");
  e = rec_find(a, CLTCP_EV_ERROR, 0);
  ck_assert_msg(e->status == UV_ECONNRESET, "ERROR status %d (%s)", e->status,
                cltcp_err_name(e->status));
  ck_assert_int_eq(e->ctx, 2);
  finish_loop(loop);
}
END_TEST

/* ---- timeouts ------------------------------------------------------------ */

START_TEST(read_timeout) {
  pair p;
  const ev *e;
  double since;
  pair_open(&p, 0.3, 0, 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 10);
  e = rec_find(p.c, CLTCP_EV_ERROR, 0);
  ck_assert_ptr_nonnull(e);
  ck_assert_msg(e->status == UV_ETIMEDOUT, "ERROR status %d (%s)", e->status,
                cltcp_err_name(e->status));
  /* The clock starts at the connection, which is made after the connect
   * call and before the CONNECT event: never before 0.3 s from the call,
   * and within the slack of the event. */
  since = e->when - p.connecting;
  ck_assert_msg(since >= 0.3 - CLTCP_EARLY_SLACK,
                "read timeout of 0.3 s fired after %.4f s", since);
  ck_assert_double_lt(e->when - rec_find(p.c, CLTCP_EV_CONNECT, 0)->when,
                      0.3 + CLTCP_LATE_SLACK);
  ck_assert_str_eq(rec_seq(p.c), "CRX");
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_CLOSE, 0)->status, 0);
  pair_finish(&p);
}
END_TEST

typedef struct ticker {
  int fd;
  double next, until;
  double last; /* rec_now() before the last byte was written */
  int sent;
} ticker;

static bool pred_tick(void *arg) {
  ticker *t = arg;
  double now = now_s();
  if (now >= t->until) return true;
  if (now >= t->next) {
    t->last = rec_now();
    ck_assert_int_eq(write(t->fd, "t", 1), 1);
    t->sent++;
    t->next = now + 0.1;
  }
  return false;
}

START_TEST(read_timeout_reset_by_data) {
  /* A byte every 0.1 s for 2 s keeps a 1 s read timeout from firing (the
   * test tolerates the peer being held up for 0.9 s by a busy machine);
   * then it fires 1 s after the last byte. */
  pair p;
  ticker t;
  double ticking_ended;
  const ev *e;
  pair_open(&p, 1.0, 0, 0);
  t.fd = p.fd;
  t.next = now_s();
  t.until = now_s() + 2.0;
  t.sent = 0;
  t.last = 0;
  pump_until(p.loop, pred_tick, &t, 2.0 + CLTCP_LATE_SLACK);
  ticking_ended = rec_now();
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_ERROR), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 10);
  ck_assert_uint_eq(rec_data_len(p.c), (size_t)t.sent);
  e = rec_find(p.c, CLTCP_EV_ERROR, 0);
  ck_assert_int_eq(e->status, UV_ETIMEDOUT);
  /* 1 s after the last byte (written before it arrived), not after the
   * connection. */
  ck_assert_msg(e->when - t.last >= 1.0 - CLTCP_EARLY_SLACK,
                "fired %.4f s after the last byte", e->when - t.last);
  ck_assert_double_lt(
      e->when - rec_find(p.c, CLTCP_EV_DATA,
                         rec_count_ev(p.c, CLTCP_EV_DATA) - 1)->when,
      1.0 + CLTCP_LATE_SLACK);
  ck_assert_double_gt(e->when, ticking_ended);
  ck_assert_str_eq(rec_seq(p.c), "CDRX");
  pair_finish(&p);
}
END_TEST

START_TEST(read_disabled_no_timeout) {
  pair p;
  int rd = 5, wr = 5;
  pair_open(&p, 0, 0, 0);
  ck_assert_int_eq(cltcp_socket_enabled(&rd, &wr, p.c), 0);
  ck_assert_int_eq(rd, 1);
  ck_assert_int_eq(wr, 1);
  ck_assert_int_eq(cltcp_socket_enable(p.c, 0, -1), 0);
  /* The timeout is set once reading is off, so no busy machine can let it
   * expire before: the run below then shows that it does not count. */
  ck_assert_int_eq(cltcp_socket_set_timeouts(p.c, 0.2, 0), 0);
  ck_assert_int_eq(cltcp_socket_enabled(&rd, &wr, p.c), 0);
  ck_assert_int_eq(rd, 0);
  ck_assert_int_eq(wr, 1);
  ck_assert_int_eq(cltcp_socket_enabled(NULL, &wr, p.c), 0);
  ck_assert_int_eq(cltcp_socket_enabled(&rd, NULL, p.c), 0);
  ck_assert_int_eq(write(p.fd, "xyz", 3), 3);
  run_for(p.loop, 0.5);
  /* Neither reads nor times out. */
  ck_assert_str_eq(rec_seq(p.c), "C");
  ck_assert_int_eq(cltcp_socket_enable(p.c, 1, -1), 0);
  ck_assert_int_eq(cltcp_socket_enabled(&rd, &wr, p.c), 0);
  ck_assert_int_eq(rd, 1);
  ck_assert_int_eq(wr, 1);
  {
    want w = {p.c, 0, 3};
    size_t n;
    uint8_t *d;
    run_until(p.loop, pred_data_len, &w, 5);
    d = rec_data(p.c, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(d, "xyz", 3);
    free(d);
  }
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_ERROR, 0)->status, UV_ETIMEDOUT);
  ck_assert_str_eq(rec_seq(p.c), "CDRX");
  pair_finish(&p);
}
END_TEST

START_TEST(write_timeout) {
  pair p;
  const size_t len = 32 * MiB;
  uint8_t *data = payload(1, len);
  const ev *e;
  double t0;
  pair_open(&p, 0, 0.3, 4096);
  t0 = rec_now();
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, 0), 0);
  free(data);
  ck_assert_uint_gt(queued(p.c), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 10);
  e = rec_find(p.c, CLTCP_EV_ERROR, 0);
  ck_assert_ptr_nonnull(e);
  ck_assert_msg(e->status == UV_ETIMEDOUT, "ERROR status %d (%s)", e->status,
                cltcp_err_name(e->status));
  /* The write clock starts at the write: never before 0.3 s from it. */
  ck_assert_msg(e->when - t0 >= 0.3 - CLTCP_EARLY_SLACK,
                "write timeout of 0.3 s fired after %.4f s", e->when - t0);
  ck_assert_str_eq(rec_seq(p.c), "CRX");
  pair_finish(&p);
}
END_TEST

START_TEST(write_disabled_no_timeout) {
  /* "A disabled write side keeps sending its queue but does not time
   * out." */
  pair p;
  const size_t len = 8 * MiB;
  uint8_t *data = payload(21, len);
  reader r = {0};
  int wr = 5;
  pair_open(&p, 0, 0.3, 16 * 1024);
  ck_assert_int_eq(cltcp_socket_enable(p.c, -1, 0), 0);
  ck_assert_int_eq(cltcp_socket_enabled(NULL, &wr, p.c), 0);
  ck_assert_int_eq(wr, 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, CLTCP_WRITE_NOTIFY), 0);
  free(data);
  run_for(p.loop, 0.7);
  ck_assert_str_eq(rec_seq(p.c), "C");
  ck_assert_uint_gt(queued(p.c), 0);
  r.fd = p.fd;
  r.seed = 21;
  r.want = len;
  pump_until(p.loop, pred_reader, &r, 20);
  ck_assert_uint_eq(r.got, len);
  ck_assert_uint_eq(r.bad, 0);
  wait_ev(p.loop, p.c, CLTCP_EV_FLUSHED, 1, 5);
  ck_assert_str_eq(rec_seq(p.c), "CF");
  pair_finish(&p);
}
END_TEST

START_TEST(no_timeouts_for_nan_zero_negative) {
  pair p;
  pair_open(&p, NAN, -1.0, 0);
  ck_assert_int_eq(cltcp_socket_set_timeouts(p.c, 0, NAN), 0);
  run_for(p.loop, 0.4);
  ck_assert_int_eq(cltcp_socket_set_timeouts(p.c, -2.0, 0), 0);
  run_for(p.loop, 0.2);
  ck_assert_str_eq(rec_seq(p.c), "C");
  /* A timeout set on a connected socket starts counting. */
  ck_assert_int_eq(cltcp_socket_set_timeouts(p.c, 0.1, 0), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_str_eq(rec_seq(p.c), "CRX");
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_ERROR, 0)->status, UV_ETIMEDOUT);
  pair_finish(&p);
}
END_TEST

/* ---- keep mode ----------------------------------------------------------- */

START_TEST(keep_mode_partial_reads) {
  pair p;
  uint8_t buf[64];
  size_t n = 99;
  const ev *e;
  int port = 0;
  p.loop = new_loop();
  p.lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&p.c, p.loop, rec_cb, 1), 0);
  track(p.c);
  /* Drain mode by default: buffered is always 0. */
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_KEEP), 0);
  ck_assert_int_eq(cltcp_socket_connect(p.c, "127.0.0.1", port), 0);
  p.fd = raw_accept(p.loop, p.lfd, 5);
  wait_ev(p.loop, p.c, CLTCP_EV_CONNECT, 1, 5);

  ck_assert_int_eq(write(p.fd, "hello world", 11), 11);
  {
    want w = {p.c, 0, 11};
    run_until(p.loop, pred_data_len, &w, 5);
  }
  /* DATA in keep mode shows the chunk just appended. */
  e = rec_find(p.c, CLTCP_EV_DATA, 0);
  ck_assert_uint_eq(e->len, 11);
  ck_assert_mem_eq(e->data, "hello world", 11);
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, 11);
  memset(buf, 0, sizeof buf);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, 5), 0);
  ck_assert_uint_eq(n, 5);
  ck_assert_mem_eq(buf, "hello", 5);
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, 6);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, 1), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_int_eq(buf[0], ' ');
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, sizeof buf), 0);
  ck_assert_uint_eq(n, 5);
  ck_assert_mem_eq(buf, "world", 5);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, sizeof buf), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, 0);
  /* Argument checks. */
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, NULL, 5), UV_EINVAL);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, NULL, 0), 0);
  ck_assert_uint_eq(n, 0);

  /* Several chunks accumulate, in order. */
  ck_assert_int_eq(write(p.fd, "abc", 3), 3);
  {
    want w = {p.c, 0, 14};
    run_until(p.loop, pred_data_len, &w, 5);
  }
  ck_assert_int_eq(write(p.fd, "defg", 4), 4);
  {
    want w = {p.c, 0, 18};
    run_until(p.loop, pred_data_len, &w, 5);
  }
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, 7);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, 2), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_mem_eq(buf, "ab", 2);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, sizeof buf), 0);
  ck_assert_uint_eq(n, 5);
  ck_assert_mem_eq(buf, "cdefg", 5);
  pair_finish(&p);
}
END_TEST

/* Keep mode, reading inside the DATA callback: each callback takes an odd
 * share of what is buffered (some of it kept from before, some just
 * arrived), so kept and fresh bytes interleave; the bytes must come out
 * once each, in order, and `buffered' must always count what is left. */
static cltcp_id g_kr_sock;
static uint8_t *g_kr_out;
static size_t g_kr_got, g_kr_calls, g_kr_bad_count;

static void keep_read_in_data_hook(const ev *e) {
  size_t before = 0, after = 0, n = 0, want;
  if (e->id != g_kr_sock || e->event != CLTCP_EV_DATA)
    return;
  g_kr_calls++;
  ck_assert_int_eq(cltcp_socket_buffered(&before, g_kr_sock), 0);
  want = (g_kr_calls % 3 == 0) ? before : (before * 2) / 3 + 1;
  if (want > before)
    want = before;
  ck_assert_int_eq(cltcp_socket_read(&n, g_kr_sock, g_kr_out + g_kr_got,
                                     want),
                   0);
  g_kr_got += n;
  ck_assert_int_eq(cltcp_socket_buffered(&after, g_kr_sock), 0);
  if (n != want || after != before - n)
    g_kr_bad_count++;
}

static bool pred_kr_all(void *arg) {
  size_t buffered = 0, len = *(size_t *)arg;
  cltcp_socket_buffered(&buffered, g_kr_sock);
  return g_kr_got + buffered >= len;
}

START_TEST(keep_mode_read_inside_data) {
  pair p;
  const size_t len = 3 * MiB + 12345;
  uint8_t *data = payload(21, len);
  size_t off = 0, n = 0;
  int port = 0;
  p.loop = new_loop();
  p.lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&p.c, p.loop, rec_cb, 1), 0);
  track(p.c);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_KEEP), 0);
  ck_assert_int_eq(cltcp_socket_connect(p.c, "127.0.0.1", port), 0);
  p.fd = raw_accept(p.loop, p.lfd, 5);
  wait_ev(p.loop, p.c, CLTCP_EV_CONNECT, 1, 5);
  g_kr_sock = p.c;
  g_kr_out = malloc(len);
  g_kr_got = g_kr_calls = g_kr_bad_count = 0;
  rec_hook = keep_read_in_data_hook;
  /* Send in uneven pieces, letting the loop run between them. */
  while (off < len) {
    size_t piece = 1 + (off * 7919) % 70000;
    if (piece > len - off)
      piece = len - off;
    ck_assert_int_eq(write(p.fd, data + off, piece), (ssize_t)piece);
    off += piece;
    run_for(p.loop, 0.001);
  }
  {
    size_t l = len;
    run_until(p.loop, pred_kr_all, &l, 10);
  }
  rec_hook = NULL;
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, g_kr_out + g_kr_got,
                                     len - g_kr_got),
                   0);
  g_kr_got += n;
  ck_assert_uint_eq(g_kr_got, len);
  ck_assert_uint_gt(g_kr_calls, 2);
  ck_assert_uint_eq(g_kr_bad_count, 0);
  ck_assert_int_eq(memcmp(g_kr_out, data, len), 0);
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, 0);
  free(g_kr_out);
  free(data);
  pair_finish(&p);
}
END_TEST

START_TEST(keep_mode_large) {
  /* 4 MiB accumulate in the keep buffer while nobody reads it; then they
   * are copied out in odd-sized pieces, exact. */
  pair p;
  const size_t len = 4 * MiB;
  uint8_t *data = payload(5, len), *out = malloc(len);
  size_t off = 0, n, sent = 0;
  int port = 0;
  p.loop = new_loop();
  p.lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&p.c, p.loop, rec_cb, 1), 0);
  track(p.c);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_KEEP), 0);
  ck_assert_int_eq(cltcp_socket_connect(p.c, "127.0.0.1", port), 0);
  p.fd = raw_accept(p.loop, p.lfd, 5);
  wait_ev(p.loop, p.c, CLTCP_EV_CONNECT, 1, 5);
  {
    double deadline = now_s() + 20;
    while (rec_data_len(p.c) < len) {
      if (sent < len) {
        ssize_t w = send(p.fd, data + sent, len - sent, MSG_NOSIGNAL);
        if (w > 0) sent += (size_t)w;
      }
      cltcp_loop_run(NULL, p.loop, CLTCP_RUN_NOWAIT);
      ck_assert_msg(now_s() < deadline, "only %zu of %zu bytes arrived",
                    rec_data_len(p.c), len);
    }
  }
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, len);
  while (off < len) {
    ck_assert_int_eq(cltcp_socket_read(&n, p.c, out + off, 65537), 0);
    ck_assert_uint_gt(n, 0);
    off += n;
  }
  ck_assert_uint_eq(off, len);
  ck_assert_int_eq(memcmp(out, data, len), 0);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, out, len), 0);
  ck_assert_uint_eq(n, 0);
  free(data);
  free(out);
  pair_finish(&p);
}
END_TEST

static size_t g_read_in_close = 999;
static uint8_t g_close_buf[16];

static void read_in_close_hook(const ev *e) {
  if (e->event == CLTCP_EV_CLOSE)
    ck_assert_int_eq(
        cltcp_socket_read(&g_read_in_close, e->id, g_close_buf, 16), 0);
}

START_TEST(keep_mode_readable_until_close) {
  /* "The bytes of a socket that has just closed stay readable until its
   * CLTCP_EV_CLOSE event returns." */
  pair p;
  int port = 0;
  p.loop = new_loop();
  p.lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&p.c, p.loop, rec_cb, 1), 0);
  track(p.c);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_KEEP), 0);
  ck_assert_int_eq(cltcp_socket_connect(p.c, "127.0.0.1", port), 0);
  p.fd = raw_accept(p.loop, p.lfd, 5);
  rec_hook = read_in_close_hook;
  ck_assert_int_eq(write(p.fd, "last words", 10), 10);
  close(p.fd);
  p.fd = -1;
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_str_eq(rec_seq(p.c), "CDEX");
  ck_assert_uint_eq(g_read_in_close, 10);
  ck_assert_mem_eq(g_close_buf, "last words", 10);
  {
    size_t n = 0;
    ck_assert_int_eq(cltcp_socket_read(&n, p.c, g_close_buf, 16),
                     CLTCP_ECLOSED);
  }
  pair_finish(&p);
}
END_TEST

START_TEST(switch_modes) {
  pair p;
  uint8_t buf[16];
  size_t n;
  pair_open(&p, 0, 0, 0);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, 2), UV_EINVAL);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, -1), UV_EINVAL);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_DRAIN), 0);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_KEEP), 0);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_KEEP), 0);
  /* Empty buffer: keep -> drain is fine. */
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_DRAIN), 0);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_KEEP), 0);
  ck_assert_int_eq(write(p.fd, "12345", 5), 5);
  {
    want w = {p.c, 0, 5};
    run_until(p.loop, pred_data_len, &w, 5);
  }
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_DRAIN),
                   CLTCP_EMODE);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, 3), 0);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_DRAIN),
                   CLTCP_EMODE);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, 3), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_mem_eq(buf, "45", 2);
  ck_assert_int_eq(cltcp_socket_set_read_mode(p.c, CLTCP_READ_DRAIN), 0);
  /* Drain mode again: chunks are not kept. */
  ck_assert_int_eq(write(p.fd, "678", 3), 3);
  {
    want w = {p.c, 0, 8};
    run_until(p.loop, pred_data_len, &w, 5);
  }
  ck_assert_int_eq(cltcp_socket_buffered(&n, p.c), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(cltcp_socket_read(&n, p.c, buf, sizeof buf), 0);
  ck_assert_uint_eq(n, 0);
  {
    uint8_t *d = rec_data(p.c, &n);
    ck_assert_uint_eq(n, 8);
    ck_assert_mem_eq(d, "12345678", 8);
    free(d);
  }
  pair_finish(&p);
}
END_TEST

/* ---- shutdown and close modes -------------------------------------------- */

START_TEST(shutdown_half_close) {
  pair p;
  reader r = {0};
  const size_t len = 2 * MiB;
  uint8_t *data = payload(4, len);
  int rd = 0;
  pair_open(&p, 0, 0, 16 * 1024);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, 0), 0);
  free(data);
  ck_assert_int_eq(cltcp_socket_shutdown(p.c), 0);
  ck_assert_int_eq(cltcp_socket_shutdown(p.c), CLTCP_ESTATE);
  ck_assert_int_eq(cltcp_socket_write(p.c, (const uint8_t *)"x", 1, 0),
                   UV_EPIPE);
  /* Everything queued before the shutdown arrives, then EOF. */
  r.fd = p.fd;
  r.seed = 4;
  r.want = len + 1;
  pump_until(p.loop, pred_reader_eof, &r, 20);
  ck_assert_uint_eq(r.got, len);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_int_eq(r.eof, 1);
  wait_ev(p.loop, p.c, CLTCP_EV_SHUTDOWN, 1, 5);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_SHUTDOWN, 0)->status, 0);
  /* Reading goes on. */
  ck_assert_int_eq(write(p.fd, "still here", 10), 10);
  {
    want w = {p.c, 0, 10};
    size_t n;
    uint8_t *d;
    run_until(p.loop, pred_data_len, &w, 5);
    d = rec_data(p.c, &n);
    ck_assert_uint_eq(n, 10);
    ck_assert_mem_eq(d, "still here", 10);
    free(d);
  }
  ck_assert_int_eq(cltcp_socket_enabled(&rd, NULL, p.c), 0);
  ck_assert_int_eq(rd, 1);
  close(p.fd);
  p.fd = -1;
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_str_eq(rec_seq(p.c), "CSDEX");
  pair_finish(&p);
}
END_TEST

START_TEST(close_flush_delivers_queue) {
  pair p;
  reader r = {0};
  const size_t len = 8 * MiB;
  uint8_t *data = payload(8, len);
  int alive = 5;
  pair_open(&p, 0, 0, 16 * 1024);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, 0), 0);
  free(data);
  ck_assert_uint_gt(queued(p.c), 0);
  ck_assert_int_eq(cltcp_socket_close(p.c, CLTCP_CLOSE_FLUSH), 0);
  ck_assert_int_eq(cltcp_id_alive(&alive, p.c), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, (const uint8_t *)"x", 1, 0),
                   CLTCP_ECLOSED);
  r.fd = p.fd;
  r.seed = 8;
  r.want = len + 1;
  pump_until(p.loop, pred_reader_eof, &r, 20);
  ck_assert_uint_eq(r.got, len);
  ck_assert_uint_eq(r.bad, 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_str_eq(rec_seq(p.c), "CX");
  pair_finish(&p);
}
END_TEST

START_TEST(close_now_drops_queue) {
  pair p;
  reader r = {0};
  const size_t len = 16 * MiB;
  uint8_t *data = payload(8, len);
  pair_open(&p, 0, 0, 16 * 1024);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, CLTCP_WRITE_NOTIFY), 0);
  free(data);
  ck_assert_uint_gt(queued(p.c), 0);
  ck_assert_int_eq(cltcp_socket_close(p.c, CLTCP_CLOSE_NOW), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  r.fd = p.fd;
  r.seed = 8;
  r.want = len + 1;
  pump_until(p.loop, pred_reader_eof, &r, 20);
  ck_assert_uint_lt(r.got, len);
  ck_assert_uint_eq(r.bad, 0);
  /* The NOTIFY write whose bytes were dropped completes cancelled, just
   * before CLOSE (libuv's order for pending writes). */
  ck_assert_str_eq(rec_seq(p.c), "CFX");
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_FLUSHED, 0)->status, UV_ECANCELED);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_CLOSE, 0)->status, 0);
  pair_finish(&p);
}
END_TEST

START_TEST(write_args) {
  pair p;
  uint8_t buf[8] = "copyme!";
  uint8_t got[16];
  int eof = 0;
  long n;
  pair_open(&p, 0, 0, 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, NULL, 1, 0), UV_EINVAL);
  ck_assert_int_eq(cltcp_socket_write(p.c, NULL, 0, 0), 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, buf, 7, 0), 0);
  memset(buf, 'X', sizeof buf); /* the library copied it */
  raw_read_n(&p, got, 7, 10);
  ck_assert_mem_eq(got, "copyme!", 7);
  run_for(p.loop, 0.05);
  n = raw_read(p.fd, got, sizeof got, &eof);
  ck_assert_int_eq(n, -1); /* nothing more */
  ck_assert_str_eq(rec_seq(p.c), "C");
  pair_finish(&p);
}
END_TEST

START_TEST(half_close_echo) {
  /* A peer that sends, then half-closes, gets the whole echo back, then
   * EOF: the echo side's graceful close flushes its queue first. */
  cltcp_id loop = new_loop();
  echo_server es;
  const size_t len = 4 * MiB;
  uint8_t *data = payload(12, len);
  size_t sent = 0;
  reader r = {0};
  int fd;
  double deadline = now_s() + 20;
  echo_start(&es, loop, "127.0.0.1");
  fd = raw_connect("127.0.0.1", es.port);
  r.fd = fd;
  r.seed = 12;
  r.want = len + 1;
  while (!r.eof) {
    if (sent < len) {
      ssize_t w = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
      if (w > 0) sent += (size_t)w;
      if (sent == len) ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    }
    pred_reader(&r);
    cltcp_loop_run(NULL, loop, CLTCP_RUN_NOWAIT);
    ck_assert_msg(now_s() < deadline, "echo: %zu of %zu back", r.got, len);
  }
  ck_assert_uint_eq(r.got, len);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_uint_eq(es.bytes, len);
  ck_assert_uint_eq(es.accepted, 1);
  {
    cltcp_id a = rec_find(es.server, CLTCP_EV_ACCEPT, 0)->other;
    wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 5);
    ck_assert_str_eq(rec_seq(a), "EX");
    ck_assert_int_eq(rec_find(a, CLTCP_EV_CLOSE, 0)->status, 0);
  }
  ck_assert_uint_eq(es.errors, 0);
  free(data);
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(no_sigpipe) {
  /* A write to a peer that reset the connection must end in an ERROR
   * event, not kill the process: the host (a Lisp image) cannot be asked to
   * ignore SIGPIPE for the library's sake.  Default disposition here. */
  pair p;
  const size_t len = 1 * MiB;
  uint8_t *data = payload(1, len);
  int i;
  const ev *e;
  pair_open(&p, 0, 0, 0);
  signal(SIGPIPE, SIG_DFL);
  raw_reset(p.fd);
  p.fd = -1;
  /* Keep writing until the library notices. */
  for (i = 0; i < 50 && rec_count_ev(p.c, CLTCP_EV_CLOSE) == 0; i++) {
    int r = cltcp_socket_write(p.c, data, len, 0);
    ck_assert_msg(r == 0 || r == CLTCP_ECLOSED || r == UV_EPIPE,
                  "write returned %d (%s)", r, cltcp_err_name(r));
    run_for(p.loop, 0.01);
  }
  free(data);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  e = rec_find(p.c, CLTCP_EV_ERROR, 0);
  ck_assert_ptr_nonnull(e);
  ck_assert_msg(e->status == UV_ECONNRESET || e->status == UV_EPIPE,
                "ERROR status %d (%s)", e->status, cltcp_err_name(e->status));
  ck_assert_str_eq(rec_seq(p.c), "CRX");
  pair_finish(&p);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("io");
  TCase *tc = tcase_create("io");
  tcase_set_timeout(tc, 40);
  tcase_add_test(tc, flushed_small);
  tcase_add_test(tc, flushed_after_queue_drains);
  tcase_add_test(tc, flushed_empty_write);
  tcase_add_test(tc, set_cb_mid_stream);
  tcase_add_test(tc, queued_and_drain_mark);
  tcase_add_test(tc, drain_mark_of_4_gib_or_more);
  tcase_add_test(tc, peer_eof);
  tcase_add_test(tc, write_in_eof_then_graceful_close);
  tcase_add_test(tc, peer_reset_client);
  tcase_add_test(tc, peer_reset_accepted);
  tcase_add_test(tc, read_timeout);
  tcase_add_test(tc, read_timeout_reset_by_data);
  tcase_add_test(tc, read_disabled_no_timeout);
  tcase_add_test(tc, write_timeout);
  tcase_add_test(tc, write_disabled_no_timeout);
  tcase_add_test(tc, no_timeouts_for_nan_zero_negative);
  tcase_add_test(tc, keep_mode_partial_reads);
  tcase_add_test(tc, keep_mode_large);
  tcase_add_test(tc, keep_mode_read_inside_data);
  tcase_add_test(tc, keep_mode_readable_until_close);
  tcase_add_test(tc, switch_modes);
  tcase_add_test(tc, shutdown_half_close);
  tcase_add_test(tc, close_flush_delivers_queue);
  tcase_add_test(tc, close_now_drops_queue);
  tcase_add_test(tc, write_args);
  tcase_add_test(tc, half_close_echo);
  tcase_add_test(tc, no_sigpipe);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
