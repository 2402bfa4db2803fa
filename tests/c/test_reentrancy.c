/*
 * test_reentrancy.c -- closing a handle from inside each kind of callback
 * it gets (CONNECT, DATA, EOF, ERROR, FLUSHED, DRAIN, SHUTDOWN, ACCEPT,
 * TIMER), and calls made from inside CLOSE.  Each must return 0 once, give
 * exactly one CLOSE, and nothing after it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "helpers.h"

#define MiB (1024 * 1024)

/* The hook closes `g_target' (0 = the id of the event) on the first event
 * of kind g_event, and records what the close returned and what a second
 * close returned. */
static int g_event;
static int g_close_ret = 1, g_second_ret = 1, g_fired;
static int g_close_mode = CLTCP_CLOSE_NOW;

static void close_on_event(const ev *e) {
  if (e->event != g_event || g_fired) return;
  g_fired = 1;
  if (cltcp_id_kind(e->id) == CLTCP_KIND_SERVER) {
    g_close_ret = cltcp_server_close(e->id);
    g_second_ret = cltcp_server_close(e->id);
  } else if (cltcp_id_kind(e->id) == CLTCP_KIND_TIMER) {
    g_close_ret = cltcp_timer_close(e->id);
    g_second_ret = cltcp_timer_close(e->id);
  } else {
    g_close_ret = cltcp_socket_close(e->id, g_close_mode);
    g_second_ret = cltcp_socket_close(e->id, g_close_mode);
    /* The id is dead at once, also inside its own callback. */
    ck_assert_int_eq(cltcp_socket_write(e->id, (const uint8_t *)"z", 1, 0),
                     CLTCP_ECLOSED);
  }
}

static void arm(int event) {
  g_event = event;
  g_fired = 0;
  g_close_ret = g_second_ret = 1;
  rec_hook = close_on_event;
}

static void check_closed_in_cb(void) {
  ck_assert_int_eq(g_fired, 1);
  ck_assert_msg(g_close_ret == 0, "close from inside %s returned %d (%s)",
                ev_name(g_event), g_close_ret, cltcp_err_name(g_close_ret));
  ck_assert_int_eq(g_second_ret, CLTCP_ECLOSED);
}

/* A client connected to an echo server. */
static cltcp_id connect_echo(cltcp_id loop, echo_server *es) {
  cltcp_id c = 0;
  echo_start(es, loop, "127.0.0.1");
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 1), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", es->port), 0);
  return c;
}

START_TEST(close_in_connect) {
  cltcp_id loop = new_loop(), c;
  echo_server es;
  arm(CLTCP_EV_CONNECT);
  c = connect_echo(loop, &es);
  ck_assert_int_eq(cltcp_socket_write(c, (const uint8_t *)"lost?", 5, 0), 0);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  run_for(loop, 0.1);
  ck_assert_str_eq(rec_seq(c), "CX");
  ck_assert_int_eq(rec_find(c, CLTCP_EV_CLOSE, 0)->status, 0);
  finish_loop(loop);
}
END_TEST

START_TEST(close_in_data) {
  cltcp_id loop = new_loop(), c;
  echo_server es;
  const size_t len = 4 * MiB;
  uint8_t *data = malloc(len);
  pattern_fill(data, 2, 0, len);
  arm(CLTCP_EV_DATA);
  c = connect_echo(loop, &es);
  /* Plenty of data keeps coming; none reaches us after the close. */
  ck_assert_int_eq(cltcp_socket_write(c, data, len, 0), 0);
  free(data);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  run_for(loop, 0.1);
  ck_assert_str_eq(rec_seq(c), "CDX");
  ck_assert_uint_eq(rec_count_ev(c, CLTCP_EV_DATA), 1);
  finish_loop(loop);
}
END_TEST

START_TEST(close_in_eof) {
  cltcp_id loop = new_loop(), c = 0;
  int lfd, port = 0, fd;
  arm(CLTCP_EV_EOF);
  lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 1), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  fd = raw_accept(loop, lfd, 5);
  ck_assert_int_eq(write(fd, "x", 1), 1);
  close(fd);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(c), "CDEX");
  close(lfd);
  finish_loop(loop);
}
END_TEST

START_TEST(close_in_error) {
  cltcp_id loop = new_loop(), c = 0;
  int fd, port = closed_port(&fd);
  arm(CLTCP_EV_ERROR);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 1), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  run_for(loop, 0.05);
  /* The library does not close it a second time. */
  ck_assert_str_eq(rec_seq(c), "RX");
  ck_assert_int_eq(rec_find(c, CLTCP_EV_ERROR, 0)->status, UV_ECONNREFUSED);
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(close_in_flushed) {
  cltcp_id loop = new_loop(), c;
  echo_server es;
  arm(CLTCP_EV_FLUSHED);
  c = connect_echo(loop, &es);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  ck_assert_int_eq(
      cltcp_socket_write(c, (const uint8_t *)"abc", 3, CLTCP_WRITE_NOTIFY), 0);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(c), "CFX");
  finish_loop(loop);
}
END_TEST

START_TEST(close_in_drain) {
  cltcp_id loop = new_loop(), c;
  echo_server es;
  const size_t len = 8 * MiB;
  uint8_t *data = malloc(len);
  pattern_fill(data, 3, 0, len);
  arm(CLTCP_EV_DRAIN);
  c = connect_echo(loop, &es);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  ck_assert_int_eq(cltcp_socket_set_drain_mark(c, 64 * 1024), 0);
  ck_assert_int_eq(cltcp_socket_write(c, data, len, 0), 0);
  free(data);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 10);
  check_closed_in_cb();
  run_for(loop, 0.05);
  ck_assert_uint_eq(rec_count_ev(c, CLTCP_EV_DRAIN), 1);
  ck_assert_uint_eq(rec_count_ev(c, CLTCP_EV_CLOSE), 1);
  finish_loop(loop);
}
END_TEST

START_TEST(close_in_shutdown) {
  cltcp_id loop = new_loop(), c;
  echo_server es;
  arm(CLTCP_EV_SHUTDOWN);
  c = connect_echo(loop, &es);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  ck_assert_int_eq(cltcp_socket_shutdown(c), 0);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  run_for(loop, 0.05);
  ck_assert_int_eq(rec_find(c, CLTCP_EV_SHUTDOWN, 0)->status, 0);
  ck_assert_str_eq(rec_seq(c), "CSX");
  finish_loop(loop);
}
END_TEST

START_TEST(close_accepted_in_accept) {
  cltcp_id loop = new_loop(), server = 0, c = 0, a;
  int port = 0;
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   0);
  track(server);
  ck_assert_int_eq(cltcp_server_port(&port, server), 0);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 3), 0);
  track(c);
  /* The hook closes the event's id; for ACCEPT that is the server. Close
   * the accepted socket too, from the same callback. */
  arm(CLTCP_EV_ACCEPT);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  wait_ev(loop, server, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  a = rec_find(server, CLTCP_EV_ACCEPT, 0)->other;
  ck_assert_int_eq(cltcp_socket_close(a, CLTCP_CLOSE_NOW), 0);
  wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 5);
  /* The client sees its peer go away. */
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_msg(strcmp(rec_seq(c), "CEX") == 0 ||
                    strcmp(rec_seq(c), "CRX") == 0,
                "client events %s", rec_seq(c));
  ck_assert_str_eq(rec_seq(a), "X");
  ck_assert_str_eq(rec_seq(server), "AX");
  finish_loop(loop);
}
END_TEST

static int g_accept_close_ret = 1;

static void close_new_hook(const ev *e) {
  if (e->event == CLTCP_EV_ACCEPT)
    g_accept_close_ret = cltcp_socket_close(e->other, CLTCP_CLOSE_NOW);
}

START_TEST(close_new_socket_in_accept) {
  cltcp_id loop = new_loop(), server = 0, a;
  int port = 0, fd;
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   0);
  track(server);
  ck_assert_int_eq(cltcp_server_port(&port, server), 0);
  rec_hook = close_new_hook;
  fd = raw_connect("127.0.0.1", port);
  ck_assert_int_eq(write(fd, "ignored", 7), 7);
  wait_ev(loop, server, CLTCP_EV_ACCEPT, 1, 5);
  a = rec_find(server, CLTCP_EV_ACCEPT, 0)->other;
  wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 5);
  run_for(loop, 0.05);
  ck_assert_int_eq(g_accept_close_ret, 0);
  /* Never started reading: CLOSE alone, with the server's socket ctx. */
  ck_assert_str_eq(rec_seq(a), "X");
  ck_assert_int_eq(rec_find(a, CLTCP_EV_CLOSE, 0)->ctx, 2);
  close(fd);
  finish_loop(loop);
}
END_TEST

static cltcp_id g_victim;

static void timer_closes_socket(const ev *e) {
  if (e->event == CLTCP_EV_TIMER)
    ck_assert_int_eq(cltcp_socket_close(g_victim, CLTCP_CLOSE_NOW), 0);
}

START_TEST(close_socket_in_timer) {
  cltcp_id loop = new_loop(), c, t = 0;
  echo_server es;
  c = connect_echo(loop, &es);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  g_victim = c;
  rec_hook = timer_closes_socket;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, 0, rec_cb, 5), 0);
  track(t);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_str_eq(rec_seq(c), "CX");
  ck_assert_str_eq(rec_seq(t), "TX");
  finish_loop(loop);
}
END_TEST

START_TEST(close_timer_in_timer) {
  cltcp_id loop = new_loop(), t = 0;
  arm(CLTCP_EV_TIMER);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, 0.01, rec_cb, 5), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 5);
  check_closed_in_cb();
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(t), "TX");
  finish_loop(loop);
}
END_TEST

static cltcp_id g_loop;
static int g_in_close_calls;
static cltcp_id g_new_timer;

static void calls_in_close(const ev *e) {
  if (e->event != CLTCP_EV_CLOSE || g_in_close_calls) return;
  g_in_close_calls = 1;
  ck_assert_int_eq(cltcp_socket_close(e->id, CLTCP_CLOSE_NOW), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_socket_write(e->id, (const uint8_t *)"x", 1, 0),
                   CLTCP_ECLOSED);
  /* New handles may be made from inside CLOSE. */
  ck_assert_int_eq(cltcp_timer_start(&g_new_timer, g_loop, 0, 0, rec_cb, 9),
                   0);
  track(g_new_timer);
}

START_TEST(calls_from_close) {
  cltcp_id loop = new_loop(), c = 0;
  g_loop = loop;
  rec_hook = calls_in_close;
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 1), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_close(c, CLTCP_CLOSE_NOW), 0);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 5);
  wait_ev(loop, g_new_timer, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_str_eq(rec_seq(g_new_timer), "TX");
  finish_loop(loop);
}
END_TEST

static int g_flush_writes;

static void write_in_flushed(const ev *e) {
  if (e->event == CLTCP_EV_FLUSHED && g_flush_writes < 5) {
    g_flush_writes++;
    ck_assert_int_eq(cltcp_socket_write(e->id, (const uint8_t *)"more", 4,
                                        CLTCP_WRITE_NOTIFY),
                     0);
  }
}

START_TEST(write_from_flushed) {
  /* Each FLUSHED writes again with NOTIFY: exactly one FLUSHED per write,
   * each on a later turn (no recursion inside the write call). */
  cltcp_id loop = new_loop(), c;
  echo_server es;
  c = connect_echo(loop, &es);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  rec_hook = write_in_flushed;
  ck_assert_int_eq(
      cltcp_socket_write(c, (const uint8_t *)"more", 4, CLTCP_WRITE_NOTIFY), 0);
  wait_ev(loop, c, CLTCP_EV_FLUSHED, 6, 5);
  {
    want w = {c, 0, 24};
    run_until(loop, pred_data_len, &w, 5);
  }
  run_for(loop, 0.05);
  ck_assert_uint_eq(rec_count_ev(c, CLTCP_EV_FLUSHED), 6);
  ck_assert_uint_eq(rec_data_len(c), 24);
  finish_loop(loop);
}
END_TEST

static void keep_in_data(const ev *e) {
  if (e->event == CLTCP_EV_DATA && rec_count_ev(e->id, CLTCP_EV_DATA) == 1)
    ck_assert_int_eq(cltcp_socket_set_read_mode(e->id, CLTCP_READ_KEEP), 0);
}

START_TEST(switch_to_keep_in_data) {
  /* Drain -> keep from inside a DATA callback: that chunk was drained,
   * later chunks are kept. */
  cltcp_id loop = new_loop(), c = 0;
  int lfd, port = 0, fd;
  size_t n = 0;
  uint8_t buf[16];
  lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 1), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  fd = raw_accept(loop, lfd, 5);
  rec_hook = keep_in_data;
  ck_assert_int_eq(write(fd, "first", 5), 5);
  wait_ev(loop, c, CLTCP_EV_DATA, 1, 5);
  ck_assert_int_eq(cltcp_socket_buffered(&n, c), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(write(fd, "second", 6), 6);
  wait_ev(loop, c, CLTCP_EV_DATA, 2, 5);
  {
    want w = {c, 0, 11};
    run_until(loop, pred_data_len, &w, 5);
  }
  ck_assert_int_eq(cltcp_socket_buffered(&n, c), 0);
  ck_assert_uint_eq(n, 6);
  ck_assert_int_eq(cltcp_socket_read(&n, c, buf, sizeof buf), 0);
  ck_assert_uint_eq(n, 6);
  ck_assert_mem_eq(buf, "second", 6);
  close(fd);
  close(lfd);
  finish_loop(loop);
}
END_TEST

static cltcp_id g_pair[2];
static int g_cross_closed;

static void close_other_in_data(const ev *e) {
  if (e->event == CLTCP_EV_DATA && !g_cross_closed &&
      (e->id == g_pair[0] || e->id == g_pair[1])) {
    cltcp_id other = e->id == g_pair[0] ? g_pair[1] : g_pair[0];
    g_cross_closed = 1;
    ck_assert_int_eq(cltcp_socket_close(other, CLTCP_CLOSE_NOW), 0);
    ck_assert_int_eq(cltcp_socket_close(e->id, CLTCP_CLOSE_NOW), 0);
  }
}

START_TEST(close_other_socket_with_pending_events) {
  /* Both sockets have data ready in the same turn; the first DATA callback
   * closes both.  The second must get no DATA after its close. */
  cltcp_id loop = new_loop();
  int lfd, port = 0, fds[2], i;
  lfd = raw_listen("127.0.0.1", &port);
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(cltcp_socket_new(&g_pair[i], loop, rec_cb, i), 0);
    track(g_pair[i]);
    ck_assert_int_eq(cltcp_socket_connect(g_pair[i], "127.0.0.1", port), 0);
    fds[i] = raw_accept(loop, lfd, 5);
  }
  wait_ev(loop, g_pair[0], CLTCP_EV_CONNECT, 1, 5);
  wait_ev(loop, g_pair[1], CLTCP_EV_CONNECT, 1, 5);
  ck_assert_int_eq(write(fds[0], "a", 1), 1);
  ck_assert_int_eq(write(fds[1], "b", 1), 1);
  ck_assert_int_eq(shutdown(fds[0], SHUT_WR), 0);
  ck_assert_int_eq(shutdown(fds[1], SHUT_WR), 0);
  usleep(20000);
  rec_hook = close_other_in_data;
  wait_ev(loop, g_pair[0], CLTCP_EV_CLOSE, 1, 5);
  wait_ev(loop, g_pair[1], CLTCP_EV_CLOSE, 1, 5);
  run_for(loop, 0.05);
  ck_assert_uint_eq(rec_count_ev(g_pair[0], CLTCP_EV_DATA) +
                        rec_count_ev(g_pair[1], CLTCP_EV_DATA),
                    1);
  ck_assert_uint_eq(rec_count_ev(g_pair[0], CLTCP_EV_EOF), 0);
  ck_assert_uint_eq(rec_count_ev(g_pair[1], CLTCP_EV_EOF), 0);
  check_close_last();
  for (i = 0; i < 2; i++) close(fds[i]);
  close(lfd);
  finish_loop(loop);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("reentrancy");
  TCase *tc = tcase_create("reentrancy");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, close_in_connect);
  tcase_add_test(tc, close_in_data);
  tcase_add_test(tc, close_in_eof);
  tcase_add_test(tc, close_in_error);
  tcase_add_test(tc, close_in_flushed);
  tcase_add_test(tc, close_in_drain);
  tcase_add_test(tc, close_in_shutdown);
  tcase_add_test(tc, close_accepted_in_accept);
  tcase_add_test(tc, close_new_socket_in_accept);
  tcase_add_test(tc, close_socket_in_timer);
  tcase_add_test(tc, close_timer_in_timer);
  tcase_add_test(tc, calls_from_close);
  tcase_add_test(tc, write_from_flushed);
  tcase_add_test(tc, switch_to_keep_in_data);
  tcase_add_test(tc, close_other_socket_with_pending_events);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
