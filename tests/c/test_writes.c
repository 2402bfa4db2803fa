/*
 * test_writes.c -- write coalescing and write notifications: the writes made
 * on a socket during one loop turn leave in one send at the end of that
 * turn (counted with cltcp_socket_send_count, never timed), CLTCP_WRITE_NOW
 * keeps the immediate behaviour, FLUSHED events follow their own bytes and
 * come in order, a zero-byte NOTIFY write waits for everything before it,
 * and NOTIFY writes cancelled by a close complete with UV_ECANCELED.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "helpers.h"

#define MiB (1024 * 1024)

typedef struct pair {
  cltcp_id loop, c;
  int fd, lfd;
} pair;

static void pair_open(pair *p, int rcvbuf) {
  int port = 0;
  p->loop = new_loop();
  p->lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&p->c, p->loop, rec_cb, 1), 0);
  track(p->c);
  ck_assert_int_eq(cltcp_socket_connect(p->c, "127.0.0.1", port), 0);
  p->fd = raw_accept(p->loop, p->lfd, 5);
  if (rcvbuf > 0) raw_set_rcvbuf(p->fd, rcvbuf);
  wait_ev(p->loop, p->c, CLTCP_EV_CONNECT, 1, 5);
}

static void pair_finish(pair *p) {
  if (p->fd >= 0) close(p->fd);
  close(p->lfd);
  finish_loop(p->loop);
}

static uint64_t sends(cltcp_id s) {
  uint64_t n = 0;
  ck_assert_int_eq(cltcp_socket_send_count(&n, s), 0);
  return n;
}

static size_t queued(cltcp_id s) {
  size_t n = 0;
  ck_assert_int_eq(cltcp_socket_queued(&n, s), 0);
  return n;
}

/* Reads everything the raw peer has now into buf (at most max). */
static size_t drain_now(int fd, uint8_t *buf, size_t max) {
  size_t got = 0;
  long n;
  while (got < max && (n = raw_read(fd, buf + got, max - got, NULL)) > 0)
    got += (size_t)n;
  return got;
}

static const char *pieces[] = {"HTTP/1.1 200 OK\r\n", "Content-Length: 5\r\n",
                               "Connection: keep-alive\r\n", "\r\n",
                               "hello"};
#define NPIECES 5
#define RESPONSE                                                             \
  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"   \
  "hello"

static void write_pieces(cltcp_id s, int flags) {
  int i;
  for (i = 0; i < NPIECES; i++)
    ck_assert_int_eq(cltcp_socket_write(s, (const uint8_t *)pieces[i],
                                        strlen(pieces[i]), flags),
                     0);
}

/* ---- coalescing ------------------------------------------------------- */

static cltcp_id g_sock;
static uint64_t g_sends_before = 99;

static void respond_on_data(const ev *e) {
  if (e->id == g_sock && e->event == CLTCP_EV_DATA) {
    g_sends_before = sends(g_sock);
    write_pieces(g_sock, 0);
  }
}

START_TEST(five_writes_in_a_turn_one_send) {
  /* A response written in five pieces from inside a DATA callback (a real
   * turn, poll phase) leaves in one send at the end of that turn. */
  pair p;
  uint8_t buf[256];
  size_t got;
  want w;
  pair_open(&p, 0);
  g_sock = p.c;
  rec_hook = respond_on_data;
  ck_assert_int_eq(write(p.fd, "GET /", 5), 5);
  w = (want){p.c, CLTCP_EV_DATA, 1};
  run_until(p.loop, pred_events, &w, 5);
  /* The run that delivered DATA ended the turn: everything left already. */
  ck_assert_uint_eq(sends(p.c), g_sends_before + 1);
  ck_assert_uint_eq(queued(p.c), 0);
  got = drain_now(p.fd, buf, sizeof buf);
  ck_assert_uint_eq(got, strlen(RESPONSE));
  ck_assert_mem_eq(buf, RESPONSE, got);
  pair_finish(&p);
}
END_TEST

/* Writes of one turn that outgrow the small first buffer (256 bytes) and
 * then the 2 KiB one: the bytes move along, in order, and still leave in
 * one send.  The first round leaves a 2 KiB spare, which the second moves
 * into (leaving a small spare), and the third starts in that. */
static uint8_t g_grow[2200];
static const size_t g_grow_cut[3][3] = {
    {200, 100, 1000}, {200, 100, 1900}, {200, 100, 1900}};
static int g_round;

static void grow_on_data(const ev *e) {
  size_t i, off = 0;
  if (e->id != g_sock || e->event != CLTCP_EV_DATA)
    return;
  g_sends_before = sends(g_sock);
  for (i = 0; i < 3; i++) {
    size_t n = g_grow_cut[g_round][i];
    ck_assert_int_eq(cltcp_socket_write(g_sock, g_grow + off, n, 0), 0);
    off += n;
  }
}

START_TEST(writes_outgrowing_the_first_buffers_in_a_turn) {
  pair p;
  uint8_t buf[4096];
  size_t got, total;
  want w;
  pair_open(&p, 0);
  g_sock = p.c;
  rec_hook = grow_on_data;
  for (g_round = 0; g_round < 3; g_round++) {
    /* other bytes each round: a buffer reused must not pass for right */
    pattern_fill(g_grow, 21 + (uint32_t)g_round, 0, sizeof g_grow);
    total = g_grow_cut[g_round][0] + g_grow_cut[g_round][1] +
            g_grow_cut[g_round][2];
    ck_assert_int_eq(write(p.fd, "x", 1), 1);
    w = (want){p.c, CLTCP_EV_DATA, g_round + 1};
    run_until(p.loop, pred_events, &w, 5);
    ck_assert_uint_eq(sends(p.c), g_sends_before + 1);
    ck_assert_uint_eq(queued(p.c), 0);
    got = drain_now(p.fd, buf, sizeof buf);
    ck_assert_uint_eq(got, total);
    ck_assert_mem_eq(buf, g_grow, got);
  }
  pair_finish(&p);
}
END_TEST

START_TEST(writes_outside_a_turn_leave_in_the_next) {
  /* Writes before the loop runs are collected (nothing sent yet, all of it
   * queued) and leave together during the next turn, which does not block
   * first: one NOWAIT turn is enough. */
  pair p;
  uint8_t buf[256];
  uint64_t s0;
  size_t got;
  int alive = 0;
  pair_open(&p, 0);
  s0 = sends(p.c);
  write_pieces(p.c, 0);
  ck_assert_uint_eq(sends(p.c), s0);
  ck_assert_uint_eq(queued(p.c), strlen(RESPONSE));
  ck_assert_int_eq(raw_read(p.fd, buf, sizeof buf, NULL), -1);
  ck_assert_int_eq(cltcp_loop_run(&alive, p.loop, CLTCP_RUN_NOWAIT), 0);
  ck_assert_uint_eq(sends(p.c), s0 + 1);
  ck_assert_uint_eq(queued(p.c), 0);
  got = drain_now(p.fd, buf, sizeof buf);
  ck_assert_uint_eq(got, strlen(RESPONSE));
  ck_assert_mem_eq(buf, RESPONSE, got);
  pair_finish(&p);
}
END_TEST

static void write_on_timer(const ev *e) {
  if (e->event == CLTCP_EV_TIMER) {
    g_sends_before = sends(g_sock);
    write_pieces(g_sock, 0);
  }
}

START_TEST(writes_from_a_timer_leave_in_that_turn) {
  /* The timer phase comes before the poll phase: the poll must not block
   * with bytes collected (nothing else would wake the loop: the peer sends
   * nothing), and they leave at the end of the same turn. */
  pair p;
  uint8_t buf[256];
  cltcp_id t;
  size_t got;
  want w;
  pair_open(&p, 0);
  g_sock = p.c;
  rec_hook = write_on_timer;
  ck_assert_int_eq(cltcp_timer_start(&t, p.loop, 0.01, 0, rec_cb, 2), 0);
  track(t);
  w = (want){t, CLTCP_EV_TIMER, 1};
  run_until(p.loop, pred_events, &w, 10);
  /* libuv's RUN_ONCE runs due timers once more after the check phase; a
   * write made there leaves in the next turn, which must not block (the
   * alarm kills the test if it does). */
  if (sends(p.c) == g_sends_before) {
    int alive = 0;
    alarm(10);
    ck_assert_int_eq(cltcp_loop_run(&alive, p.loop, CLTCP_RUN_ONCE), 0);
    alarm(0);
  }
  ck_assert_uint_eq(sends(p.c), g_sends_before + 1);
  got = drain_now(p.fd, buf, sizeof buf);
  ck_assert_uint_eq(got, strlen(RESPONSE));
  ck_assert_mem_eq(buf, RESPONSE, got);
  pair_finish(&p);
}
END_TEST

START_TEST(write_now_is_immediate) {
  /* CLTCP_WRITE_NOW: each write goes to the kernel during the call. */
  pair p;
  uint8_t buf[256];
  uint64_t s0;
  size_t got;
  pair_open(&p, 0);
  s0 = sends(p.c);
  write_pieces(p.c, CLTCP_WRITE_NOW);
  ck_assert_uint_eq(sends(p.c), s0 + NPIECES);
  ck_assert_uint_eq(queued(p.c), 0);
  got = drain_now(p.fd, buf, sizeof buf);
  ck_assert_uint_eq(got, strlen(RESPONSE));
  ck_assert_mem_eq(buf, RESPONSE, got);
  /* A NOW write after collected ones sends them too, in order, at once. */
  ck_assert_int_eq(cltcp_socket_write(p.c, (const uint8_t *)"ab", 2, 0), 0);
  ck_assert_int_eq(
      cltcp_socket_write(p.c, (const uint8_t *)"cd", 2, CLTCP_WRITE_NOW), 0);
  ck_assert_uint_eq(queued(p.c), 0);
  got = drain_now(p.fd, buf, sizeof buf);
  ck_assert_uint_eq(got, 4);
  ck_assert_mem_eq(buf, "abcd", 4);
  pair_finish(&p);
}
END_TEST

/* Writes `len' patterned bytes and then "tail" on a fresh pair: the big
 * write makes `sends_in_call' sends during the call (1: at once, 0:
 * collected), the small one none; after one turn everything has left, and
 * the peer reads all of it, whole and in order. */
static void big_then_tail(size_t len, uint8_t seed, uint64_t sends_in_call) {
  pair p;
  uint8_t *data = malloc(len), *buf = malloc(len + 16);
  uint64_t s0;
  size_t got = 0;
  int alive = 0;
  double deadline;
  ck_assert_ptr_nonnull(data);
  ck_assert_ptr_nonnull(buf);
  pattern_fill(data, seed, 0, len);
  pair_open(&p, 0);
  s0 = sends(p.c);
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, 0), 0);
  ck_assert_uint_eq(sends(p.c), s0 + sends_in_call);
  ck_assert_int_eq(cltcp_socket_write(p.c, (const uint8_t *)"tail", 4, 0), 0);
  ck_assert_uint_eq(sends(p.c), s0 + sends_in_call);
  ck_assert_int_eq(cltcp_loop_run(&alive, p.loop, CLTCP_RUN_NOWAIT), 0);
  ck_assert_uint_gt(sends(p.c), s0);
  deadline = now_s() + 10;
  while (got < len + 4 && now_s() < deadline) {
    long n = raw_read(p.fd, buf + got, len + 16 - got, NULL);
    if (n > 0) got += (size_t)n;
    else cltcp_loop_run(&alive, p.loop, CLTCP_RUN_NOWAIT);
  }
  ck_assert_uint_eq(got, len + 4);
  ck_assert_mem_eq(buf, data, len);
  ck_assert_mem_eq(buf + len, "tail", 4);
  free(data);
  free(buf);
  pair_finish(&p);
}

START_TEST(large_write_goes_at_once) {
  /* A write of more than 64 KiB with nothing collected is not copied for
   * the end of the turn: it goes to the kernel during the call (one send),
   * and a small write after it is collected again. */
  big_then_tail(64 * 1024 + 1, 13, 1);
}
END_TEST

START_TEST(write_of_64k_is_collected) {
  /* A write of 64 KiB is still collected: nothing is sent during the call,
   * the turn's writes leave together at its end. */
  big_then_tail(64 * 1024, 17, 0);
}
END_TEST

START_TEST(close_now_sends_the_turns_writes) {
  /* Without coalescing, small writes followed by CLOSE_NOW reached the
   * kernel; they still do. */
  pair p;
  uint8_t buf[256];
  size_t got = 0;
  int eof = 0;
  long n;
  double deadline;
  pair_open(&p, 0);
  write_pieces(p.c, 0);
  ck_assert_int_eq(cltcp_socket_close(p.c, CLTCP_CLOSE_NOW), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  deadline = now_s() + 10;
  while (!eof && now_s() < deadline) {
    n = raw_read(p.fd, buf + got, sizeof buf - got, &eof);
    if (n > 0) got += (size_t)n;
  }
  ck_assert_int_eq(eof, 1);
  ck_assert_uint_eq(got, strlen(RESPONSE));
  ck_assert_mem_eq(buf, RESPONSE, got);
  ck_assert_str_eq(rec_seq(p.c), "CX");
  pair_finish(&p);
}
END_TEST

/* ---- FLUSHED ---------------------------------------------------------- */

typedef struct reader {
  int fd;
  uint32_t seed;
  size_t want, got, bad;
  cltcp_id sock;
  size_t flushed_wanted;
} reader;

static bool pred_read_until_flushed(void *arg) {
  reader *r = arg;
  static uint8_t buf[256 * 1024];
  long n;
  if (rec_count_ev(r->sock, CLTCP_EV_FLUSHED) >= r->flushed_wanted)
    return true;
  while ((n = raw_read(r->fd, buf, sizeof buf, NULL)) > 0) {
    long i;
    for (i = 0; i < n; i++)
      if (!r->bad && buf[i] != pattern_byte(r->seed, r->got + (size_t)i))
        r->bad = r->got + (size_t)i + 1;
    r->got += (size_t)n;
  }
  return rec_count_ev(r->sock, CLTCP_EV_FLUSHED) >= r->flushed_wanted;
}

static bool pred_read_all(void *arg) {
  reader *r = arg;
  pred_read_until_flushed(arg);
  return r->got >= r->want;
}

static size_t g_queued_at_flushed[8];
static size_t g_nflushed;

static void note_queued_at_flushed(const ev *e) {
  if (e->id == g_sock && e->event == CLTCP_EV_FLUSHED && g_nflushed < 8)
    g_queued_at_flushed[g_nflushed++] = queued(g_sock);
}

START_TEST(flushed_follows_its_own_bytes) {
  /* A NOTIFY write's FLUSHED comes once ITS bytes left, not when the whole
   * queue is empty: A (16 MiB, NOTIFY, more than the kernel buffers) is in
   * flight, B (32 MiB, more than
   * the kernel buffers) is written on a later turn; A's FLUSHED arrives
   * while B is still queued. */
  pair p;
  const size_t la = 16 * MiB, lb = 32 * MiB;
  uint8_t *data = malloc(la + lb);
  reader r = {0};
  ck_assert_ptr_nonnull(data);
  pattern_fill(data, 11, 0, la + lb);
  pair_open(&p, 16 * 1024);
  g_sock = p.c;
  g_nflushed = 0;
  rec_hook = note_queued_at_flushed;
  ck_assert_int_eq(cltcp_socket_write(p.c, data, la, CLTCP_WRITE_NOTIFY), 0);
  run_for(p.loop, 0.05); /* A is handed to uv_write: it is in flight */
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_FLUSHED), 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, data + la, lb, 0), 0);
  free(data);
  r.fd = p.fd;
  r.seed = 11;
  r.want = la + lb;
  r.sock = p.c;
  r.flushed_wanted = 1;
  pump_until(p.loop, pred_read_until_flushed, &r, 30);
  ck_assert_uint_eq(g_nflushed, 1);
  ck_assert_uint_gt(g_queued_at_flushed[0], 0);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_FLUSHED, 0)->status, 0);
  r.flushed_wanted = 99;
  pump_until(p.loop, pred_read_all, &r, 30);
  ck_assert_uint_eq(r.got, la + lb);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_FLUSHED), 1);
  pair_finish(&p);
}
END_TEST

START_TEST(zero_byte_notify_waits_for_what_came_before) {
  /* A zero-byte NOTIFY write reports once everything written before it has
   * left, in order with the other NOTIFY writes: 8 MiB to a peer that does
   * not read, then NOTIFY(0), then 1 byte with NOTIFY.  Nothing fires
   * while the peer does not read; then exactly three FLUSHED, each with
   * status 0, after all the 8 MiB left. */
  pair p;
  const size_t len = 8 * MiB;
  uint8_t *data = malloc(len + 1);
  reader r = {0};
  ck_assert_ptr_nonnull(data);
  pattern_fill(data, 12, 0, len + 1);
  pair_open(&p, 16 * 1024);
  g_sock = p.c;
  g_nflushed = 0;
  rec_hook = note_queued_at_flushed;
  ck_assert_int_eq(cltcp_socket_write(p.c, data, len, CLTCP_WRITE_NOTIFY), 0);
  run_for(p.loop, 0.05);
  ck_assert_int_eq(cltcp_socket_write(p.c, NULL, 0, CLTCP_WRITE_NOTIFY), 0);
  ck_assert_int_eq(
      cltcp_socket_write(p.c, data + len, 1, CLTCP_WRITE_NOTIFY), 0);
  free(data);
  run_for(p.loop, 0.2);
  ck_assert_uint_eq(rec_count_ev(p.c, CLTCP_EV_FLUSHED), 0);
  r.fd = p.fd;
  r.seed = 12;
  r.want = len + 1;
  r.sock = p.c;
  r.flushed_wanted = 3;
  pump_until(p.loop, pred_read_until_flushed, &r, 30);
  ck_assert_uint_eq(g_nflushed, 3);
  /* The first two come once the 8 MiB left (only the last byte may still
   * wait); the third once that byte left too. */
  ck_assert_uint_le(g_queued_at_flushed[0], 1);
  ck_assert_uint_le(g_queued_at_flushed[1], 1);
  ck_assert_uint_eq(g_queued_at_flushed[2], 0);
  ck_assert_int_eq(rec_find(p.c, CLTCP_EV_FLUSHED, 1)->status, 0);
  r.flushed_wanted = 99;
  pump_until(p.loop, pred_read_all, &r, 30);
  ck_assert_uint_eq(r.bad, 0);
  run_for(p.loop, 0.05);
  ck_assert_str_eq(rec_seq(p.c), "CFFF");
  pair_finish(&p);
}
END_TEST

static void close_on_flushed(const ev *e) {
  if (e->id == g_sock && e->event == CLTCP_EV_FLUSHED && e->status == 0)
    ck_assert_int_eq(cltcp_socket_close(g_sock, CLTCP_CLOSE_FLUSH), 0);
}

START_TEST(zero_byte_notify_then_close) {
  /* The "Connection: close" idiom: the response in pieces, a zero-byte
   * NOTIFY write, close from its FLUSHED.  The peer gets every byte, then
   * EOF. */
  pair p;
  uint8_t buf[256];
  size_t got = 0;
  int eof = 0;
  long n;
  double deadline;
  pair_open(&p, 0);
  g_sock = p.c;
  rec_hook = close_on_flushed;
  write_pieces(p.c, 0);
  ck_assert_int_eq(cltcp_socket_write(p.c, NULL, 0, CLTCP_WRITE_NOTIFY), 0);
  wait_ev(p.loop, p.c, CLTCP_EV_CLOSE, 1, 5);
  deadline = now_s() + 10;
  while (!eof && now_s() < deadline) {
    n = raw_read(p.fd, buf + got, sizeof buf - got, &eof);
    if (n > 0) got += (size_t)n;
  }
  ck_assert_int_eq(eof, 1);
  ck_assert_uint_eq(got, strlen(RESPONSE));
  ck_assert_mem_eq(buf, RESPONSE, got);
  ck_assert_str_eq(rec_seq(p.c), "CFX");
  pair_finish(&p);
}
END_TEST

START_TEST(send_count_args) {
  pair p;
  uint64_t n;
  ck_assert_int_eq(cltcp_socket_send_count(NULL, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_socket_send_count(&n, 0), CLTCP_ECLOSED);
  pair_open(&p, 0);
  ck_assert_int_eq(cltcp_socket_send_count(&n, p.loop), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_socket_send_count(&n, p.c), 0);
  ck_assert_uint_eq(n, 0);
  pair_finish(&p);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("writes");
  TCase *tc = tcase_create("writes");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, five_writes_in_a_turn_one_send);
  tcase_add_test(tc, writes_outgrowing_the_first_buffers_in_a_turn);
  tcase_add_test(tc, writes_outside_a_turn_leave_in_the_next);
  tcase_add_test(tc, writes_from_a_timer_leave_in_that_turn);
  tcase_add_test(tc, write_now_is_immediate);
  tcase_add_test(tc, large_write_goes_at_once);
  tcase_add_test(tc, write_of_64k_is_collected);
  tcase_add_test(tc, close_now_sends_the_turns_writes);
  tcase_add_test(tc, flushed_follows_its_own_bytes);
  tcase_add_test(tc, zero_byte_notify_waits_for_what_came_before);
  tcase_add_test(tc, zero_byte_notify_then_close);
  tcase_add_test(tc, send_count_args);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
