/*
 * test_loop.c -- the loop: run modes, stop from a callback, EBUSY from
 * inside run, teardown of live handles (CLOSE with UV_ECANCELED), the
 * handle count, the cached time.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <string.h>
#include <uv.h>

#include "helpers.h"

START_TEST(empty_loop) {
  cltcp_id loop = new_loop();
  size_t n = 99;
  int alive = 5;
  uint64_t ms = 0;
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  alive = 5;
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_ONCE), 0);
  ck_assert_int_eq(alive, 0);
  alive = 5;
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_NOWAIT), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(cltcp_loop_now(&ms, loop), 0);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
}
END_TEST

START_TEST(run_default_until_no_work) {
  cltcp_id loop = new_loop(), t = 0;
  int alive = 5;
  double start = now_s();
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.05, 0, rec_cb, 7), 0);
  track(t);
  ck_assert_uint_eq(rec_count(), 0);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  assert_fired_in_time(now_s() - start, 0.05);
  /* One-shot: TIMER, then it closes itself with status 0. */
  ck_assert_str_eq(rec_seq(t), "TX");
  ck_assert_int_eq(rec_find(t, CLTCP_EV_TIMER, 0)->status, 0);
  ck_assert_int_eq(rec_find(t, CLTCP_EV_TIMER, 0)->ctx, 7);
  ck_assert_int_eq(rec_find(t, CLTCP_EV_TIMER, 0)->other, 0);
  ck_assert_int_eq(rec_find(t, CLTCP_EV_TIMER, 0)->len, 0);
  ck_assert_int_eq(rec_find(t, CLTCP_EV_CLOSE, 0)->status, 0);
  finish_loop(loop);
}
END_TEST

START_TEST(run_nowait_and_once) {
  /* The bounds follow from what the modes promise, not from the machine's
   * speed: NOWAIT must return long before a 10 s timer (a blocking turn
   * would wait for it), ONCE blocks until the 0.2 s timer, never before it
   * is due, and in few turns (it sleeps in the kernel, no busy loop). */
  cltcp_id loop = new_loop(), t = 0, far = 0;
  int alive = 5, turns = 0;
  double start;
  ck_assert_int_eq(cltcp_timer_start(&far, loop, 10, 0, rec_cb, 8), 0);
  track(far);
  start = now_s();
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_NOWAIT), 0);
  ck_assert_double_lt(now_s() - start, 5.0);
  ck_assert_int_eq(alive, 1);
  ck_assert_uint_eq(rec_count(), 0);
  start = now_s();
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.2, 0, rec_cb, 7), 0);
  track(t);
  while (rec_count_ev(t, CLTCP_EV_TIMER) == 0 && turns < 1000) {
    ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_ONCE), 0);
    turns++;
    ck_assert_double_lt(now_s() - start, 0.2 + CLTCP_LATE_SLACK);
  }
  ck_assert_uint_eq(rec_count_ev(t, CLTCP_EV_TIMER), 1);
  assert_fired_in_time(now_s() - start, 0.2);
  /* Blocking turns, not a busy loop. */
  ck_assert_int_lt(turns, 20);
  ck_assert_uint_eq(rec_count_ev(far, 0), 0);
  finish_loop(loop);
  ck_assert_str_eq(rec_seq(t), "TX");
}
END_TEST

static cltcp_id g_loop;
static int g_stop_after;

static void stop_hook(const ev *e) {
  if (e->event == CLTCP_EV_TIMER &&
      (int)rec_count_ev(e->id, CLTCP_EV_TIMER) == g_stop_after)
    ck_assert_int_eq(cltcp_loop_stop(g_loop), 0);
}

START_TEST(stop_from_callback) {
  cltcp_id loop = new_loop(), t = 0;
  int alive = 0;
  g_loop = loop;
  g_stop_after = 3;
  rec_hook = stop_hook;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, 0.01, rec_cb, 1), 0);
  track(t);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 1);
  ck_assert_uint_eq(rec_count_ev(t, CLTCP_EV_TIMER), 3);
  ck_assert_uint_eq(rec_count(), 3);
  /* It can run again; stop again after the 5th firing. */
  g_stop_after = 5;
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 1);
  ck_assert_uint_eq(rec_count_ev(t, CLTCP_EV_TIMER), 5);
  rec_hook = NULL;
  ck_assert_int_eq(cltcp_timer_close(t), 0);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_str_eq(rec_seq(t), "TTTTTX");
  finish_loop(loop);
}
END_TEST

static int busy_run, busy_close, busy_checked;

static void busy_hook(const ev *e) {
  if (e->event == CLTCP_EV_TIMER) {
    int alive = 5;
    busy_run = cltcp_loop_run(&alive, g_loop, CLTCP_RUN_NOWAIT);
    busy_close = cltcp_loop_close(g_loop);
    busy_checked++;
    /* Everything else is allowed from a callback. */
    ck_assert_int_eq(cltcp_loop_stop(g_loop), 0);
  }
}

START_TEST(busy_inside_run) {
  cltcp_id loop = new_loop(), t = 0;
  g_loop = loop;
  rec_hook = busy_hook;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0, 0, rec_cb, 1), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_CLOSE, 1, 10);
  ck_assert_int_eq(busy_checked, 1);
  ck_assert_int_eq(busy_run, CLTCP_EBUSY);
  ck_assert_int_eq(busy_close, CLTCP_EBUSY);
  ck_assert_str_eq(rec_seq(t), "TX");
  finish_loop(loop);
}
END_TEST

START_TEST(close_tears_down_live_handles) {
  cltcp_id loop = new_loop(), t = 0, rt = 0, sock = 0, server = 0, client = 0;
  cltcp_id accepted;
  int port = 0, alive = 0;
  size_t n = 0, i;
  static uint8_t big[1 << 20];
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 30, 0, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_timer_start(&rt, loop, 30, 1, rec_cb, 2), 0);
  ck_assert_int_eq(cltcp_socket_new(&sock, loop, rec_cb, 3), 0);
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 4, rec_cb, 5),
                   0);
  ck_assert_int_eq(cltcp_server_port(&port, server), 0);
  ck_assert_int_eq(cltcp_socket_new(&client, loop, rec_cb, 6), 0);
  ck_assert_int_eq(cltcp_socket_connect(client, "127.0.0.1", port), 0);
  wait_ev(loop, client, CLTCP_EV_CONNECT, 1, 5);
  wait_ev(loop, server, CLTCP_EV_ACCEPT, 1, 5);
  accepted = rec_find(server, CLTCP_EV_ACCEPT, 0)->other;
  ck_assert_int_ne(accepted, 0);
  /* Leave bytes queued on the client: the teardown must drop them. */
  ck_assert_int_eq(cltcp_socket_write(client, big, sizeof big, 0), 0);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 6);
  ck_assert_uint_eq(rec_count(), 2);

  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  {
    cltcp_id all[] = {t, rt, sock, server, client, accepted};
    for (i = 0; i < 6; i++) {
      const ev *c = rec_find(all[i], CLTCP_EV_CLOSE, 0);
      ck_assert_uint_eq(rec_count_ev(all[i], CLTCP_EV_CLOSE), 1);
      ck_assert_msg(c->status == UV_ECANCELED,
                    "teardown CLOSE of handle #%zu had status %d (%s)",
                    i, c->status,
                    cltcp_err_name(c->status));
      ck_assert_int_eq(cltcp_id_alive(&alive, all[i]), 0);
      ck_assert_int_eq(alive, 0);
    }
  }
  ck_assert_str_eq(rec_seq(t), "X");
  ck_assert_str_eq(rec_seq(rt), "X");
  ck_assert_str_eq(rec_seq(sock), "X");
  ck_assert_str_eq(rec_seq(server), "AX");
  ck_assert_str_eq(rec_seq(client), "CX");
  ck_assert_str_eq(rec_seq(accepted), "X");
  ck_assert_int_eq(rec_find(accepted, CLTCP_EV_CLOSE, 0)->ctx, 5);
  ck_assert_uint_eq(rec_count(), 8);
  check_close_last();
  ck_assert_int_eq(cltcp_loop_close(loop), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_NOWAIT),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_socket_write(client, big, 1, 0), CLTCP_ECLOSED);
}
END_TEST

/* Closing handles count until their CLOSE event. */
START_TEST(handle_count) {
  cltcp_id loop = new_loop(), ids[10];
  size_t n = 0, i;
  for (i = 0; i < 5; i++) {
    ck_assert_int_eq(cltcp_timer_start(&ids[i], loop, 60, 0, rec_cb, i), 0);
    ck_assert_int_eq(cltcp_socket_new(&ids[5 + i], loop, rec_cb, i), 0);
  }
  for (i = 0; i < 10; i++) track(ids[i]);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 10);
  ck_assert_int_eq(cltcp_timer_close(ids[0]), 0);
  ck_assert_int_eq(cltcp_socket_close(ids[5], CLTCP_CLOSE_NOW), 0);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 10);
  wait_ev(loop, ids[0], CLTCP_EV_CLOSE, 1, 10);
  wait_ev(loop, ids[5], CLTCP_EV_CLOSE, 1, 10);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 8);
  finish_loop(loop);
}
END_TEST

START_TEST(wakeup_ends_turns_without_keeping_alive) {
  cltcp_id loop = new_loop(), t = 0;
  uint64_t a = 0, b = 0;
  int alive = 5, i;
  /* Alone, the wake timer keeps nothing alive: a default run returns. */
  ck_assert_int_eq(cltcp_loop_set_wakeup(loop, 0.05), 0);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  /* With real work far away (10 s), a ONCE turn returns within about the
   * wakeup interval, with work left, and no event delivered. */
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 10, 0, rec_cb, 1), 0);
  track(t);
  for (i = 0; i < 3; i++) {
    ck_assert_int_eq(cltcp_loop_now(&a, loop), 0);
    ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_ONCE), 0);
    ck_assert_int_eq(cltcp_loop_now(&b, loop), 0);
    ck_assert_int_eq(alive, 1);
    /* Far below the timer's 10 s, generous for a busy machine. */
    ck_assert_uint_lt(b - a, 5000);
  }
  ck_assert_uint_eq(rec_count(), 0);
  /* Turned off, bad values are "off" too; the id is checked. */
  ck_assert_int_eq(cltcp_loop_set_wakeup(loop, 0), 0);
  ck_assert_int_eq(cltcp_loop_set_wakeup(loop, -1), 0);
  ck_assert_int_eq(cltcp_loop_set_wakeup(0, 0.1), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_set_wakeup(t, 0.1), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_timer_close(t), 0);
  finish_loop(loop);
}
END_TEST

START_TEST(loop_now_advances) {
  cltcp_id loop = new_loop(), t = 0;
  uint64_t a = 0, b = 0;
  ck_assert_int_eq(cltcp_loop_now(&a, loop), 0);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.1, 0, rec_cb, 1), 0);
  track(t);
  wait_ev(loop, t, CLTCP_EV_TIMER, 1, 10);
  ck_assert_int_eq(cltcp_loop_now(&b, loop), 0);
  /* The loop's time is cached at the start of the turn, whole
   * milliseconds, possibly of a coarse clock; the timer keeps the precise
   * clock.  So the loop time of the firing turn may read up to 2 ms less
   * than the timer's 100 ms after `a'. */
  ck_assert_uint_ge(b, a + 100 - 2);
  ck_assert_uint_lt(b, a + 100 + 5000);
  finish_loop(loop);
}
END_TEST

START_TEST(two_loops_independent) {
  cltcp_id a = new_loop(), b = 0, ta = 0, tb = 0;
  ck_assert_int_eq(cltcp_loop_new(&b), 0);
  ck_assert_int_eq(cltcp_timer_start(&ta, a, 0.01, 0, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_timer_start(&tb, b, 0.01, 0, rec_cb, 2), 0);
  track(ta);
  track(tb);
  wait_ev(a, ta, CLTCP_EV_CLOSE, 1, 10);
  /* Running a never runs b's handles. */
  ck_assert_uint_eq(rec_count_ev(tb, 0), 0);
  wait_ev(b, tb, CLTCP_EV_CLOSE, 1, 10);
  ck_assert_str_eq(rec_seq(ta), "TX");
  ck_assert_str_eq(rec_seq(tb), "TX");
  ck_assert_int_eq(cltcp_loop_close(b), 0);
  finish_loop(a);
}
END_TEST

START_TEST(close_loop_with_unfired_timer_from_outside) {
  /* Teardown delivers the CLOSE events synchronously inside
   * cltcp_loop_close(): after it returns the id is dead and nothing of the
   * loop can run any more. */
  cltcp_id loop = new_loop(), t = 0;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0, 0, rec_cb, 1), 0);
  ck_assert_uint_eq(rec_count(), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  ck_assert_str_eq(rec_seq(t), "X");
  ck_assert_int_eq(rec_find(t, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
}
END_TEST

START_TEST(teardown_mid_operations) {
  /* Loop teardown while handles are half-way: a connect whose refusal is
   * not delivered yet, a CLOSE_FLUSH still sending, a socket closing
   * gracefully after EOF with bytes queued, a timer closed but not yet
   * CLOSEd.  Each gets exactly one CLOSE, as its last event. */
  cltcp_id loop = new_loop(), refused = 0, flushing = 0, graceful = 0;
  cltcp_id server = 0, t = 0;
  int cfd, port = closed_port(&cfd), sport = 0, fd1, fd2;
  static uint8_t big[8 << 20];
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   0);
  ck_assert_int_eq(cltcp_server_port(&sport, server), 0);
  fd1 = raw_connect("127.0.0.1", sport);
  fd2 = raw_connect("127.0.0.1", sport);
  raw_set_rcvbuf(fd1, 16 * 1024);
  raw_set_rcvbuf(fd2, 16 * 1024);
  wait_ev(loop, server, CLTCP_EV_ACCEPT, 2, 5);
  flushing = rec_find(server, CLTCP_EV_ACCEPT, 0)->other;
  graceful = rec_find(server, CLTCP_EV_ACCEPT, 1)->other;
  ck_assert_int_eq(cltcp_socket_write(flushing, big, sizeof big, 0), 0);
  ck_assert_int_eq(cltcp_socket_close(flushing, CLTCP_CLOSE_FLUSH), 0);
  ck_assert_int_eq(cltcp_socket_write(graceful, big, sizeof big, 0), 0);
  ck_assert_int_eq(shutdown(fd2, SHUT_WR), 0);
  wait_ev(loop, graceful, CLTCP_EV_EOF, 1, 5);
  ck_assert_int_eq(cltcp_socket_new(&refused, loop, rec_cb, 3), 0);
  ck_assert_int_eq(cltcp_socket_connect(refused, "127.0.0.1", port), 0);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 10, 0, rec_cb, 4), 0);
  ck_assert_int_eq(cltcp_timer_close(t), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  {
    cltcp_id all[] = {server, flushing, graceful, refused, t};
    size_t i;
    for (i = 0; i < 5; i++) {
      ck_assert_msg(rec_count_ev(all[i], CLTCP_EV_CLOSE) == 1,
                    "handle #%zu: %zu CLOSE events", i,
                    rec_count_ev(all[i], CLTCP_EV_CLOSE));
    }
  }
  check_close_last();
  ck_assert_uint_eq(rec_count_ev(refused, CLTCP_EV_CONNECT), 0);
  ck_assert_int_eq(rec_find(server, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  ck_assert_str_eq(rec_seq(flushing), "X");
  ck_assert_str_eq(rec_seq(graceful), "EX");
  close(fd1);
  close(fd2);
  close(cfd);
}
END_TEST

static void stop_on_connect(const ev *e) {
  if (e->event == CLTCP_EV_CONNECT)
    ck_assert_int_eq(cltcp_loop_stop(g_loop), 0);
}

START_TEST(stop_from_socket_callback) {
  cltcp_id loop = new_loop(), server = 0, c = 0;
  int port = 0, alive = 0;
  g_loop = loop;
  rec_hook = stop_on_connect;
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   0);
  track(server);
  ck_assert_int_eq(cltcp_server_port(&port, server), 0);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 3), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  /* DEFAULT would run forever (a listening server); stop returns it. */
  alarm(5);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  alarm(0);
  ck_assert_int_eq(alive, 1);
  ck_assert_uint_eq(rec_count_ev(c, CLTCP_EV_CONNECT), 1);
  rec_hook = NULL;
  finish_loop(loop);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("loop");
  TCase *tc = tcase_create("loop");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, empty_loop);
  tcase_add_test(tc, run_default_until_no_work);
  tcase_add_test(tc, run_nowait_and_once);
  tcase_add_test(tc, stop_from_callback);
  tcase_add_test(tc, busy_inside_run);
  tcase_add_test(tc, close_tears_down_live_handles);
  tcase_add_test(tc, handle_count);
  tcase_add_test(tc, loop_now_advances);
  tcase_add_test(tc, wakeup_ends_turns_without_keeping_alive);
  tcase_add_test(tc, two_loops_independent);
  tcase_add_test(tc, close_loop_with_unfired_timer_from_outside);
  tcase_add_test(tc, teardown_mid_operations);
  tcase_add_test(tc, stop_from_socket_callback);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
