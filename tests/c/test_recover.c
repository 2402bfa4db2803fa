/*
 * test_recover.c -- cltcp_loop_recover(): a callback that never returns.
 *
 * A Lisp binding's error handler or restart may leave a callback by a
 * non-local exit, through cltcp_loop_run() and libuv's frames, without
 * returning to them.  Here longjmp() does the same from each place a
 * callback is called from -- a timer, a socket's DATA with other sockets'
 * writes completing in the same turn, the deferred queue (DNS results) --
 * and the loop is then repaired and torn down: every handle gets exactly
 * one CLOSE as its last event, every DNS request its one callback, and
 * cltcp_loop_close() returns 0 (under valgrind and ASan too, which see any
 * write through the abandoned frames' pointers).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

static jmp_buf g_jump;
static int g_jump_event; /* the event to leave from; 0 = none */
static int g_jumped;

static void jump_hook(const ev *e) {
  if (g_jump_event != 0 && e->event == g_jump_event) {
    g_jump_event = 0;
    g_jumped++;
    longjmp(g_jump, 1);
  }
}

/* Runs the loop until a callback jumps out; fails after `seconds'. */
static void run_until_jump(cltcp_id loop, double seconds) {
  double deadline = now_s() + seconds;
  g_jumped = 0;
  rec_hook = jump_hook;
  if (setjmp(g_jump) == 0) {
    while (now_s() < deadline)
      ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_ONCE), 0);
  }
  rec_hook = NULL;
  ck_assert_int_eq(g_jumped, 1);
}

START_TEST(close_needs_recover_after_a_jump) {
  cltcp_id loop = new_loop(), t = 0;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0, 0.001, rec_cb, 1), 0);
  track(t);
  g_jump_event = CLTCP_EV_TIMER;
  run_until_jump(loop, 5);
  /* Still "running" as far as the library knows. */
  ck_assert_int_eq(cltcp_loop_close(loop), CLTCP_EBUSY);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0); /* nothing left to do */
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  ck_assert_uint_eq(rec_count_ev(t, CLTCP_EV_CLOSE), 1);
  check_close_last();
  ck_assert_int_eq(cltcp_loop_recover(loop), CLTCP_ECLOSED);
}
END_TEST

START_TEST(recover_on_a_loop_that_returned_does_nothing) {
  cltcp_id loop = new_loop(), t = 0;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.001, 0, rec_cb, 1), 0);
  track(t);
  ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  /* The loop still runs normally afterwards. */
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.001, 0, rec_cb, 2), 0);
  track(t);
  ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_str_eq(rec_seq(t), "TX");
  finish_loop(loop);
}
END_TEST

START_TEST(jump_from_data_while_writes_complete) {
  /* Eight clients write to an echo server and read the echo; the first
   * DATA jumps out while the other sockets' reads and write completions
   * are due in the same turn (libuv's pending and poll lists). */
  enum { N = 8 };
  cltcp_id loop = new_loop(), c[N];
  echo_server es;
  static uint8_t msg[64 * 1024];
  size_t i;
  echo_start(&es, loop, "127.0.0.1");
  track(es.server);
  pattern_fill(msg, 3, 0, sizeof msg);
  for (i = 0; i < N; i++) {
    ck_assert_int_eq(cltcp_socket_new(&c[i], loop, rec_cb, 10 + i), 0);
    track(c[i]);
    ck_assert_int_eq(cltcp_socket_connect(c[i], "127.0.0.1", es.port), 0);
    ck_assert_int_eq(cltcp_socket_write(c[i], msg, sizeof msg,
                                        CLTCP_WRITE_NOTIFY), 0);
  }
  g_jump_event = CLTCP_EV_DATA;
  run_until_jump(loop, 10);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  for (i = 0; i < N; i++)
    ck_assert_uint_eq(rec_count_ev(c[i], CLTCP_EV_CLOSE), 1);
  ck_assert_uint_eq(rec_count_ev(es.server, CLTCP_EV_CLOSE), 1);
  check_close_last();
}
END_TEST

START_TEST(jump_from_flushed_at_turn_end) {
  /* Writes made between turns leave together at the end of the next turn
   * (the turn-end batch); the first FLUSHED jumps out of that batch while
   * the other sockets' sends are still in it. */
  enum { N = 6 };
  cltcp_id loop = new_loop(), c[N];
  echo_server es;
  static const uint8_t msg[] = "flushed";
  size_t i;
  echo_start(&es, loop, "127.0.0.1");
  track(es.server);
  for (i = 0; i < N; i++) {
    ck_assert_int_eq(cltcp_socket_new(&c[i], loop, rec_cb, 10 + i), 0);
    track(c[i]);
    ck_assert_int_eq(cltcp_socket_connect(c[i], "127.0.0.1", es.port), 0);
  }
  for (i = 0; i < N; i++)
    wait_ev(loop, c[i], CLTCP_EV_CONNECT, 1, 5);
  for (i = 0; i < N; i++)
    ck_assert_int_eq(cltcp_socket_write(c[i], msg, sizeof msg,
                                        CLTCP_WRITE_NOTIFY), 0);
  g_jump_event = CLTCP_EV_FLUSHED;
  run_until_jump(loop, 10);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  for (i = 0; i < N; i++)
    ck_assert_uint_eq(rec_count_ev(c[i], CLTCP_EV_CLOSE), 1);
  check_close_last();
}
END_TEST

START_TEST(jump_from_a_signal_and_an_async) {
  /* Out of a SIGNAL callback (libuv counts a signal dispatched only after
   * its callback returns, and closing waits for that), and out of one of
   * two ASYNC callbacks of one turn (libuv runs them from a list on its
   * stack). */
  cltcp_id loop = new_loop(), sig = 0, a1 = 0, a2 = 0;
  ck_assert_int_eq(cltcp_signal_start(&sig, loop, SIGUSR2, rec_cb, 1), 0);
  track(sig);
  ck_assert_int_eq(raise(SIGUSR2), 0);
  g_jump_event = CLTCP_EV_SIGNAL;
  run_until_jump(loop, 5);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  alarm(10); /* an unrepaired signal handle makes the close spin */
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  alarm(0);
  ck_assert_uint_eq(rec_count_ev(sig, CLTCP_EV_CLOSE), 1);
  check_close_last();

  loop = new_loop();
  ck_assert_int_eq(cltcp_async_new(&a1, loop, rec_cb, 2), 0);
  track(a1);
  ck_assert_int_eq(cltcp_async_new(&a2, loop, rec_cb, 3), 0);
  track(a2);
  ck_assert_int_eq(cltcp_async_send(a1), 0);
  ck_assert_int_eq(cltcp_async_send(a2), 0);
  g_jump_event = CLTCP_EV_ASYNC;
  run_until_jump(loop, 5);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  ck_assert_uint_eq(rec_count_ev(a1, CLTCP_EV_CLOSE), 1);
  ck_assert_uint_eq(rec_count_ev(a2, CLTCP_EV_CLOSE), 1);
  check_close_last();
}
END_TEST

static size_t g_dns_calls[3];
static int g_dns_status[3];

static void dns_jump_cb(uintptr_t ctx, cltcp_id req, int status,
                        const cltcp_addr *addrs, size_t n) {
  (void)req;
  (void)addrs;
  (void)n;
  g_dns_calls[ctx]++;
  g_dns_status[ctx] = status;
  if (ctx == 0) {
    g_jumped++;
    longjmp(g_jump, 1);
  }
}

START_TEST(jump_from_a_deferred_dns_result) {
  /* Three numeric lookups finish at once and are delivered from the
   * deferred queue in one batch; the first callback jumps out, leaving the
   * other two queued in that batch.  Teardown still calls each back once. */
  cltcp_id loop = new_loop(), req[3];
  size_t i;
  for (i = 0; i < 3; i++) {
    g_dns_calls[i] = 0;
    ck_assert_int_eq(cltcp_dns_lookup(&req[i], loop, "127.0.0.1",
                                      CLTCP_AF_UNSPEC, dns_jump_cb, i),
                     0);
  }
  g_jumped = 0;
  if (setjmp(g_jump) == 0) {
    double deadline = now_s() + 5;
    while (now_s() < deadline)
      ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_ONCE), 0);
  }
  ck_assert_int_eq(g_jumped, 1);
  ck_assert_uint_eq(g_dns_calls[0], 1);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  for (i = 0; i < 3; i++)
    ck_assert_uint_eq(g_dns_calls[i], 1);
  ck_assert_int_eq(g_dns_status[1], UV_ECANCELED);
  ck_assert_int_eq(g_dns_status[2], UV_ECANCELED);
}
END_TEST

/* Keep mode: the DATA callback reads 3 of the 8 bytes, then jumps out.
 * After the repair the other 5 are still readable, and stay so until the
 * CLOSE of the teardown. */
static cltcp_id g_keep_sock;
static size_t g_keep_got, g_close_got;
static uint8_t g_keep_buf[16], g_close_buf[16];

static void keep_jump_hook(const ev *e) {
  if (e->id == g_keep_sock && e->event == CLTCP_EV_DATA && g_jump_event != 0) {
    g_jump_event = 0;
    ck_assert_int_eq(cltcp_socket_read(&g_keep_got, g_keep_sock, g_keep_buf, 3), 0);
    g_jumped++;
    longjmp(g_jump, 1);
  }
  if (e->id == g_keep_sock && e->event == CLTCP_EV_CLOSE)
    ck_assert_int_eq(cltcp_socket_read(&g_close_got, g_keep_sock, g_close_buf,
                                       sizeof g_close_buf),
                     0);
}

START_TEST(jump_from_keep_mode_data_keeps_the_rest) {
  cltcp_id loop = new_loop(), c = 0;
  int port = 0, lfd, fd;
  size_t n = 0;
  uint8_t buf[16];
  lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 1), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_set_read_mode(c, CLTCP_READ_KEEP), 0);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  fd = raw_accept(loop, lfd, 5);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  ck_assert_int_eq(write(fd, "abcdefgh", 8), 8);
  g_keep_sock = c;
  g_keep_got = g_close_got = 0;
  g_jump_event = CLTCP_EV_DATA;
  g_jumped = 0;
  rec_hook = keep_jump_hook;
  if (setjmp(g_jump) == 0) {
    double deadline = now_s() + 5;
    while (now_s() < deadline)
      ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_ONCE), 0);
  }
  ck_assert_int_eq(g_jumped, 1);
  ck_assert_uint_eq(g_keep_got, 3);
  ck_assert_mem_eq(g_keep_buf, "abc", 3);
  ck_assert_int_eq(cltcp_loop_recover(loop), 0);
  ck_assert_int_eq(cltcp_socket_buffered(&n, c), 0);
  ck_assert_uint_eq(n, 5);
  ck_assert_int_eq(cltcp_socket_read(&n, c, buf, 2), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_mem_eq(buf, "de", 2);
  /* The rest is read in the CLOSE of the teardown. */
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  rec_hook = NULL;
  ck_assert_uint_eq(g_close_got, 3);
  ck_assert_mem_eq(g_close_buf, "fgh", 3);
  ck_assert_uint_eq(rec_count_ev(c, CLTCP_EV_CLOSE), 1);
  check_close_last();
  close(fd);
  close(lfd);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("recover");
  TCase *tc = tcase_create("recover");
  tcase_add_test(tc, close_needs_recover_after_a_jump);
  tcase_add_test(tc, recover_on_a_loop_that_returned_does_nothing);
  tcase_add_test(tc, jump_from_data_while_writes_complete);
  tcase_add_test(tc, jump_from_flushed_at_turn_end);
  tcase_add_test(tc, jump_from_a_deferred_dns_result);
  tcase_add_test(tc, jump_from_a_signal_and_an_async);
  tcase_add_test(tc, jump_from_keep_mode_data_keeps_the_rest);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
