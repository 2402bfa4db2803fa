/*
 * test_timers.c -- one-shot and repeating timers, close before firing, close
 * from inside the timer's own callback, firing order, argument errors; and
 * wall-clock time: timers and socket timeouts armed after a long callback
 * or outside a turn never fire before their time.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "helpers.h"

START_TEST(one_shot) {
  cltcp_id loop = new_loop(), t = 0;
  const ev *e;
  double armed = rec_now();
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.05, 0, rec_cb, 42), 0);
  ck_assert_int_ne(t, 0);
  ck_assert_int_eq(cltcp_id_kind(t), CLTCP_KIND_TIMER);
  track(t);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 10);
  ck_assert_str_eq(rec_seq(t), "TX");
  e = rec_find(t, CLTCP_EV_TIMER, 0);
  ck_assert_int_eq(e->status, 0);
  ck_assert_int_eq(e->ctx, 42);
  ck_assert_int_eq(e->other, 0);
  ck_assert_ptr_null(e->data);
  ck_assert_uint_eq(e->len, 0);
  assert_fired_in_time(e->when - armed, 0.05);
  /* Closed by itself after firing: status 0. */
  ck_assert_int_eq(rec_find(t, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_int_eq(cltcp_timer_close(t), CLTCP_ECLOSED);
  run_for(loop, 0.1);
  ck_assert_uint_eq(rec_count(), 2);
  finish_loop(loop);
}
END_TEST

START_TEST(zero_and_negative_delay) {
  cltcp_id loop = new_loop(), a = 0, b = 0;
  ck_assert_int_eq(cltcp_timer_start(&a, loop, 0, 0, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_timer_start(&b, loop, -5.0, -1.0, rec_cb, 2), 0);
  track(a);
  track(b);
  /* Never from inside the call. */
  ck_assert_uint_eq(rec_count(), 0);
  wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 10);
  wait_ev(loop, b, CLTCP_EV_CLOSE, 1, 10);
  ck_assert_str_eq(rec_seq(a), "TX");
  /* Negative repeat means no repeat. */
  ck_assert_str_eq(rec_seq(b), "TX");
  assert_fired_in_time(rec_find(b, CLTCP_EV_TIMER, 0)->when, 0);
  finish_loop(loop);
}
END_TEST

START_TEST(nan_is_einval) {
  cltcp_id loop = new_loop(), t = 0;
  size_t n = 5;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, NAN, 0, rec_cb, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, NAN, rec_cb, 1),
                   UV_EINVAL);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  run_for(loop, 0.05);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
}
END_TEST

START_TEST(repeat) {
  cltcp_id loop = new_loop(), t = 0;
  size_t i;
  double armed = rec_now();
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.02, 0.03, rec_cb, 5), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_TIMER, 4, 10);
  ck_assert_str_eq(rec_seq(t), "TTTT");
  for (i = 0; i < 4; i++) {
    const ev *e = rec_find(t, CLTCP_EV_TIMER, i);
    ck_assert_int_eq(e->status, 0);
    ck_assert_int_eq(e->ctx, 5);
    /* 20 ms, then every 30 ms counted from each firing: the i-th never
     * before 20 + 30 i ms from the arming.  (Two callbacks may be closer
     * than 30 ms: a period counts from the firing, which comes a little
     * before its callback, by a time no test can see.) */
    ck_assert_double_ge(e->when - armed,
                        0.02 + 0.03 * (double)i - CLTCP_EARLY_SLACK);
  }
  ck_assert_int_eq(cltcp_timer_close(t), 0);
  ck_assert_int_eq(cltcp_timer_close(t), CLTCP_ECLOSED);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 10);
  run_for(loop, 0.1);
  ck_assert_str_eq(rec_seq(t), "TTTTX");
  assert_timer_owner_close_status(rec_find(t, CLTCP_EV_CLOSE, 0)->status);
  finish_loop(loop);
}
END_TEST

START_TEST(close_before_firing) {
  cltcp_id loop = new_loop(), t = 0;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, 0, rec_cb, 1), 0);
  track(t);
  ck_assert_int_eq(cltcp_timer_close(t), 0);
  ck_assert_uint_eq(rec_count(), 0);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 10);
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(t), "X");
  assert_timer_owner_close_status(rec_find(t, CLTCP_EV_CLOSE, 0)->status);
  finish_loop(loop);
}
END_TEST

static int close_in_cb_ret = 1;
static int close_in_cb_after = 3;

static void close_self_hook(const ev *e) {
  if (e->event == CLTCP_EV_TIMER &&
      (int)rec_count_ev(e->id, CLTCP_EV_TIMER) == close_in_cb_after) {
    close_in_cb_ret = cltcp_timer_close(e->id);
    /* Dead at once. */
    ck_assert_int_eq(cltcp_timer_close(e->id), CLTCP_ECLOSED);
  }
}

START_TEST(close_repeat_from_own_callback) {
  cltcp_id loop = new_loop(), t = 0;
  rec_hook = close_self_hook;
  close_in_cb_after = 3;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, 0.01, rec_cb, 1), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 10);
  run_for(loop, 0.1);
  ck_assert_int_eq(close_in_cb_ret, 0);
  ck_assert_str_eq(rec_seq(t), "TTTX");
  assert_timer_owner_close_status(rec_find(t, CLTCP_EV_CLOSE, 0)->status);
  finish_loop(loop);
}
END_TEST

START_TEST(close_one_shot_from_own_callback) {
  cltcp_id loop = new_loop(), t = 0;
  rec_hook = close_self_hook;
  close_in_cb_after = 1;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, 0, rec_cb, 1), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 10);
  run_for(loop, 0.05);
  /* The header does not say whether a one-shot timer's id is still alive
   * during its TIMER callback; either way exactly one CLOSE follows. */
  ck_assert_msg(close_in_cb_ret == 0 || close_in_cb_ret == CLTCP_ECLOSED,
                "timer_close from its own callback returned %d (%s)",
                close_in_cb_ret, cltcp_err_name(close_in_cb_ret));
  ck_assert_str_eq(rec_seq(t), "TX");
  finish_loop(loop);
}
END_TEST

static cltcp_id victim;
static int victim_close_ret = 1;

static void close_other_hook(const ev *e) {
  if (e->event == CLTCP_EV_TIMER && victim != 0) {
    victim_close_ret = cltcp_timer_close(victim);
    victim = 0;
  }
}

START_TEST(close_other_timer_due_same_turn) {
  /* Two timers due in the same turn; the first closes the second, which
   * must then not fire. */
  cltcp_id loop = new_loop(), a = 0, b = 0;
  ck_assert_int_eq(cltcp_timer_start(&a, loop, 0.02, 0, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_timer_start(&b, loop, 0.02, 0, rec_cb, 2), 0);
  track(a);
  track(b);
  victim = b;
  rec_hook = close_other_hook;
  wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 10);
  wait_ev(loop, b, CLTCP_EV_CLOSE, 1, 10);
  run_for(loop, 0.05);
  ck_assert_int_eq(victim_close_ret, 0);
  ck_assert_str_eq(rec_seq(a), "TX");
  ck_assert_str_eq(rec_seq(b), "X");
  assert_timer_owner_close_status(rec_find(b, CLTCP_EV_CLOSE, 0)->status);
  finish_loop(loop);
}
END_TEST

START_TEST(ordering) {
  cltcp_id loop = new_loop(), t[5] = {0};
  /* Due times 60, 20, 40, 20, 0 ms: fire by due time, equal due times in
   * start order (libuv's rule). */
  static const double due[5] = {0.06, 0.02, 0.04, 0.02, 0.0};
  static const int order[5] = {4, 1, 3, 2, 0};
  size_t i, k = 0;
  for (i = 0; i < 5; i++) {
    ck_assert_int_eq(cltcp_timer_start(&t[i], loop, due[i], 0, rec_cb, i),
                     0);
    track(t[i]);
  }
  for (i = 0; i < 5; i++) wait_ev(loop, t[i], CLTCP_EV_CLOSE, 1, 10);
  for (i = 0; i < rec_count(); i++) {
    const ev *e = rec_get(i);
    if (e->event != CLTCP_EV_TIMER) continue;
    ck_assert_msg(e->ctx == (uintptr_t)order[k],
                  "timer firing #%zu was timer %lu, want %d", k,
                  (unsigned long)e->ctx, order[k]);
    k++;
  }
  ck_assert_uint_eq(k, 5);
  for (i = 0; i < 5; i++) ck_assert_str_eq(rec_seq(t[i]), "TX");
  finish_loop(loop);
}
END_TEST

START_TEST(many_timers) {
  cltcp_id loop = new_loop();
  cltcp_id *t = calloc(1000, sizeof *t);
  size_t i;
  for (i = 0; i < 1000; i++) {
    ck_assert_int_eq(
        cltcp_timer_start(&t[i], loop, 0.001 * (double)(i % 50), 0, rec_cb, i),
        0);
    track(t[i]);
  }
  for (i = 0; i < 1000; i++) wait_ev(loop, t[i], CLTCP_EV_CLOSE, 1, 5);
  for (i = 0; i < 1000; i++) {
    ck_assert_str_eq(rec_seq(t[i]), "TX");
    ck_assert_int_eq(rec_find(t[i], CLTCP_EV_TIMER, 0)->ctx, i);
  }
  ck_assert_uint_eq(rec_count(), 2000);
  finish_loop(loop);
  free(t);
}
END_TEST

START_TEST(bad_loop) {
  cltcp_id loop = new_loop(), t = 77, s = 0;
  ck_assert_int_eq(cltcp_socket_new(&s, loop, rec_cb, 1), 0);
  track(s);
  ck_assert_int_eq(cltcp_timer_start(&t, s, 0.01, 0, rec_cb, 1), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_timer_start(&t, 0, 0.01, 0, rec_cb, 1),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_timer_close(s), CLTCP_EKIND);
  run_for(loop, 0.03);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
}
END_TEST

START_TEST(timer_close_status) {
  /* cltcp_timer_close(): "CLTCP_EV_CLOSE (status 0) follows on a later
   * turn"; UV_ECANCELED is kept for loop teardown. */
  cltcp_id loop = new_loop(), t = 0;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 10, 0, rec_cb, 1), 0);
  track(t);
  ck_assert_int_eq(cltcp_timer_close(t), 0);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 10);
  ck_assert_int_eq(rec_find(t, CLTCP_EV_CLOSE, 0)->status, 0);
  finish_loop(loop);
}
END_TEST


/* ---- wall-clock time ----------------------------------------------------- */

/* A callback that runs long, then arms a timer: libuv's loop time is cached
 * at the start of the turn, so a timer armed against it came due as soon
 * as it was made (a 0.3 s timer after 0.5 s of work fired at once). */
static double long_cb_armed;
static cltcp_id long_cb_timer;
static cltcp_id long_cb_loop;

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void block_then_arm_hook(const ev *e) {
  if (e->event == CLTCP_EV_TIMER && long_cb_timer == 0) {
    sleep_s(0.5); /* the callback "computes" for 0.5 s */
    long_cb_armed = rec_now();
    ck_assert_int_eq(
        cltcp_timer_start(&long_cb_timer, long_cb_loop, 0.3, 0, rec_cb, 2),
        0);
    track(long_cb_timer);
  }
}

START_TEST(timer_armed_after_long_callback) {
  cltcp_id loop = new_loop(), a = 0;
  long_cb_timer = 0;
  long_cb_loop = loop;
  rec_hook = block_then_arm_hook;
  ck_assert_int_eq(cltcp_timer_start(&a, loop, 0, 0, rec_cb, 1), 0);
  track(a);
  wait_ev(loop, a, CLTCP_EV_TIMER, 1, 10);
  ck_assert_uint_ne(long_cb_timer, 0);
  wait_ev(loop, long_cb_timer, CLTCP_EV_TIMER, 1, 10);
  assert_fired_in_time(
      rec_find(long_cb_timer, CLTCP_EV_TIMER, 0)->when - long_cb_armed, 0.3);
  rec_hook = NULL;
  finish_loop(loop);
  ck_assert_str_eq(rec_seq(a), "TX");
  ck_assert_str_eq(rec_seq(long_cb_timer), "TX");
}
END_TEST

/* A timer started while the loop is not running (its time is from the last
 * turn, or from its creation) counts from the call too. */
START_TEST(timer_armed_outside_run) {
  cltcp_id loop = new_loop(), t = 0, r = 0;
  double armed;
  int alive = 0;
  /* One turn, so the loop has a time of its own, then 0.5 s without one. */
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_NOWAIT), 0);
  sleep_s(0.5);
  armed = rec_now();
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.3, 0, rec_cb, 1), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_TIMER, 1, 10);
  assert_fired_in_time(rec_find(t, CLTCP_EV_TIMER, 0)->when - armed, 0.3);
  /* A repeating one too: its first firing and each period. */
  sleep_s(0.5);
  armed = rec_now();
  ck_assert_int_eq(cltcp_timer_start(&r, loop, 0.2, 0.2, rec_cb, 2), 0);
  track(r);
  wait_ev(loop, r, CLTCP_EV_TIMER, 2, 10);
  assert_fired_in_time(rec_find(r, CLTCP_EV_TIMER, 0)->when - armed, 0.2);
  assert_fired_in_time(rec_find(r, CLTCP_EV_TIMER, 1)->when - armed, 0.4);
  finish_loop(loop);
}
END_TEST

/* The socket timeouts, set from a callback that ran long. */
static cltcp_id to_sock;
static double to_armed;

static void block_then_timeout_hook(const ev *e) {
  if (e->id == to_sock && e->event == CLTCP_EV_CONNECT) {
    sleep_s(0.5);
    to_armed = rec_now();
    ck_assert_int_eq(cltcp_socket_set_timeouts(to_sock, 0.3, 0), 0);
  }
}

START_TEST(read_timeout_set_after_long_callback) {
  cltcp_id loop = new_loop(), server = 0, c = 0;
  int port = 0;
  const ev *e;
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   0);
  track(server);
  ck_assert_int_eq(cltcp_server_port(&port, server), 0);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 3), 0);
  track(c);
  to_sock = c;
  to_armed = -1;
  rec_hook = block_then_timeout_hook;
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  wait_ev(loop, c, CLTCP_EV_CLOSE, 1, 10);
  rec_hook = NULL;
  ck_assert_double_ge(to_armed, 0);
  ck_assert_str_eq(rec_seq(c), "CRX");
  e = rec_find(c, CLTCP_EV_ERROR, 0);
  ck_assert_int_eq(e->status, UV_ETIMEDOUT);
  assert_fired_in_time(e->when - to_armed, 0.3);
  finish_loop(loop);
}
END_TEST

/* The connect timeout (it covers DNS), set and started from a timer
 * callback that ran long.  The DNS server is a UDP socket that never
 * answers, so only the timeout can end the connect. */
static int silent_udp(int *port) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static void block_then_connect_hook(const ev *e) {
  if (e->event == CLTCP_EV_TIMER && to_sock == 0) {
    sleep_s(0.5);
    to_armed = rec_now();
    ck_assert_int_eq(cltcp_socket_new(&to_sock, long_cb_loop, rec_cb, 3), 0);
    track(to_sock);
    ck_assert_int_eq(cltcp_socket_set_connect_timeout(to_sock, 0.3), 0);
    ck_assert_int_eq(cltcp_socket_connect(to_sock, "hang.example", 80), 0);
  }
}

START_TEST(connect_timeout_set_after_long_callback) {
  cltcp_id loop = new_loop(), t = 0;
  char servers[64];
  int port = 0, fd = silent_udp(&port);
  const ev *e;
  snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, servers), 0);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 60, 1), 0);
  to_sock = 0;
  to_armed = -1;
  long_cb_loop = loop;
  rec_hook = block_then_connect_hook;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0, 0, rec_cb, 1), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_TIMER, 1, 10);
  ck_assert_uint_ne(to_sock, 0);
  wait_ev(loop, to_sock, CLTCP_EV_CLOSE, 1, 10);
  rec_hook = NULL;
  ck_assert_str_eq(rec_seq(to_sock), "RX");
  e = rec_find(to_sock, CLTCP_EV_ERROR, 0);
  ck_assert_int_eq(e->status, UV_ETIMEDOUT);
  assert_fired_in_time(e->when - to_armed, 0.3);
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(equal_delays_fire_in_the_order_made) {
  /* Two timers of the same delay, the second made half a millisecond after
   * the first (so often in the next millisecond of the loop's clock): the
   * first always fires first.  Repeated, so that every position of the two
   * within the millisecond occurs. */
  int round;
  for (round = 0; round < 40; round++) {
    cltcp_id loop = new_loop(), a = 0, b = 0;
    double t0;
    ck_assert_int_eq(cltcp_timer_start(&a, loop, 0.01, 0, rec_cb, 1), 0);
    track(a);
    t0 = now_s();
    while (now_s() - t0 < 0.0005)
      ;
    ck_assert_int_eq(cltcp_timer_start(&b, loop, 0.01, 0, rec_cb, 2), 0);
    track(b);
    alarm(5);
    ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT), 0);
    alarm(0);
    ck_assert_msg(rec_index(a, CLTCP_EV_TIMER, 0) < rec_index(b, CLTCP_EV_TIMER, 0),
                  "round %d: the second timer fired first", round);
    finish_loop(loop);
  }
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("timers");
  TCase *tc = tcase_create("timers");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, one_shot);
  tcase_add_test(tc, zero_and_negative_delay);
  tcase_add_test(tc, nan_is_einval);
  tcase_add_test(tc, repeat);
  tcase_add_test(tc, close_before_firing);
  tcase_add_test(tc, close_repeat_from_own_callback);
  tcase_add_test(tc, close_one_shot_from_own_callback);
  tcase_add_test(tc, close_other_timer_due_same_turn);
  tcase_add_test(tc, ordering);
  tcase_add_test(tc, many_timers);
  tcase_add_test(tc, bad_loop);
  tcase_add_test(tc, timer_close_status);
  tcase_add_test(tc, timer_armed_after_long_callback);
  tcase_add_test(tc, timer_armed_outside_run);
  tcase_add_test(tc, read_timeout_set_after_long_callback);
  tcase_add_test(tc, connect_timeout_set_after_long_callback);
  tcase_add_test(tc, equal_delays_fire_in_the_order_made);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
