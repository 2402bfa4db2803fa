/*
 * test_async.c -- async wake-ups: 8 threads x 10,000 sends on one repeating
 * handle (every callback in the loop's thread, at least one and at most one
 * per send, one after the last send); coalescing as libuv does it; sends on
 * closed, closing, stale and made-up ids from other threads return an error
 * and never touch freed memory (this suite runs under ASan and valgrind);
 * the handle keeps the loop alive; teardown; bad arguments.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define THREADS 8
#define SENDS 10000

/* ---- counting callback (not the recorder: 80,000 events are too many) -- */

static atomic_long sent;        /* incremented before each send */
static atomic_int send_errors;  /* sends that did not return 0 */
static long cb_count;           /* loop thread only */
static long max_sent_seen;      /* `sent' read at the start of a callback */
static int cb_wrong_thread;
static int cb_closed;
static int cb_close_status;
static pthread_t loop_thread;

static void count_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                     cltcp_id other, const uint8_t *data, size_t len) {
  (void)ctx; (void)id; (void)other; (void)data; (void)len;
  if (!pthread_equal(pthread_self(), loop_thread))
    cb_wrong_thread++;
  if (event == CLTCP_EV_ASYNC) {
    long s = atomic_load(&sent);
    ck_assert_int_eq(status, 0);
    cb_count++;
    if (s > max_sent_seen)
      max_sent_seen = s;
  } else if (event == CLTCP_EV_CLOSE) {
    cb_closed++;
    cb_close_status = status;
  }
}

static void counters_reset(void) {
  atomic_store(&sent, 0);
  atomic_store(&send_errors, 0);
  cb_count = max_sent_seen = 0;
  cb_wrong_thread = cb_closed = 0;
  cb_close_status = 1;
  loop_thread = pthread_self();
}

typedef struct sender {
  pthread_t th;
  cltcp_id id;
  long n;
} sender;

static void *send_many(void *arg) {
  sender *s = arg;
  long i;
  for (i = 0; i < s->n; i++) {
    atomic_fetch_add(&sent, 1);
    if (cltcp_async_send(s->id) != 0)
      atomic_fetch_add(&send_errors, 1);
  }
  return NULL;
}

static bool pred_saw_all(void *arg) {
  return max_sent_seen == *(long *)arg;
}

START_TEST(threads_8_x_10000_sends) {
  cltcp_id loop = new_loop(), a = 0;
  sender s[THREADS];
  long total = (long)THREADS * SENDS;
  size_t base = 99, n = 99;
  int i;
  counters_reset();
  ck_assert_int_eq(cltcp_loop_handle_count(&base, loop), 0);
  ck_assert_int_eq(cltcp_async_new(&a, loop, count_cb, 5), 0);
  ck_assert_int_eq(cltcp_id_kind(a), CLTCP_KIND_ASYNC);
  for (i = 0; i < THREADS; i++) {
    s[i].id = a;
    s[i].n = SENDS;
    ck_assert_int_eq(pthread_create(&s[i].th, NULL, send_many, &s[i]), 0);
  }
  /* A callback that starts after the last send sees every send counted
   * (each is counted before it is made): run until one has. */
  run_until(loop, pred_saw_all, &total, 120);
  for (i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_join(s[i].th, NULL), 0);
  ck_assert_int_eq(atomic_load(&send_errors), 0);
  ck_assert_int_eq(atomic_load(&sent), total);
  ck_assert_int_eq(cb_wrong_thread, 0);
  ck_assert_int_gt(cb_count, 0);
  ck_assert_int_le(cb_count, total);
  /* Nothing is owed once a callback has seen every send. */
  {
    long before = cb_count;
    run_for(loop, 0.05);
    ck_assert_int_eq(cb_count, before);
  }
  ck_assert_int_eq(cltcp_async_close(a), 0);
  ck_assert_int_eq(cltcp_async_send(a), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_async_close(a), CLTCP_ECLOSED);
  while (cb_closed == 0)
    ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_ONCE), 0);
  ck_assert_int_eq(cb_closed, 1);
  ck_assert_int_eq(cb_close_status, 0);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, base);
  ck_assert_int_eq(cltcp_async_send(a), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  ck_assert_int_eq(cltcp_async_send(a), CLTCP_ECLOSED);
  ck_assert_int_eq(cb_wrong_thread, 0);
}
END_TEST

/* Senders that keep sending until the handle is gone: they race with the
 * close and with the loop's teardown and free. */
typedef struct racer {
  pthread_t th;
  cltcp_id id;
  atomic_int *go;
  long ok, closed, other;
} racer;

static void *race_send(void *arg) {
  racer *r = arg;
  /* Yield while waiting and between sends: under valgrind, which runs one
   * thread at a time, spinning senders would starve the loop's thread. */
  while (!atomic_load(r->go))
    sched_yield();
  /* Bounded: the loop's thread closes the handle in every round. */
  for (;;) {
    int rc = cltcp_async_send(r->id);
    if (rc == 0)
      r->ok++;
    else if (rc == CLTCP_ECLOSED)
      r->closed++;
    else
      r->other++;
    if (r->closed > 100)
      break;
    sched_yield();
  }
  return NULL;
}

START_TEST(send_races_close_and_free) {
  int round;
  for (round = 0; round < 4; round++) {
    cltcp_id loop = new_loop(), a = 0, b = 0;
    racer r[4];
    atomic_int go = 0;
    int i;
    counters_reset();
    ck_assert_int_eq(cltcp_async_new(&a, loop, count_cb, 1), 0);
    for (i = 0; i < 4; i++) {
      memset(&r[i], 0, sizeof(r[i]));
      r[i].id = a;
      r[i].go = &go;
      ck_assert_int_eq(pthread_create(&r[i].th, NULL, race_send, &r[i]), 0);
    }
    atomic_store(&go, 1);
    ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_NOWAIT), 0);
    if (round % 2 == 0) {
      /* Closed by its owner, then a new async takes a slot. */
      ck_assert_int_eq(cltcp_async_close(a), 0);
      ck_assert_int_eq(cltcp_async_new(&b, loop, count_cb, 2), 0);
      ck_assert(b != a);
      ck_assert_int_eq(cltcp_async_close(b), 0);
      ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT), 0);
      ck_assert_int_eq(cltcp_loop_close(loop), 0);
    } else {
      /* Freed by the loop's teardown while the senders go on. */
      ck_assert_int_eq(cltcp_loop_close(loop), 0);
      ck_assert_int_eq(cb_close_status, UV_ECANCELED);
    }
    for (i = 0; i < 4; i++) {
      ck_assert_int_eq(pthread_join(r[i].th, NULL), 0);
      ck_assert_int_eq(r[i].other, 0);
      ck_assert_int_gt(r[i].closed, 0);
    }
    ck_assert_int_eq(cltcp_async_send(a), CLTCP_ECLOSED);
    ck_assert_int_eq(cb_wrong_thread, 0);
  }
}
END_TEST

START_TEST(coalescing) {
  cltcp_id loop = new_loop(), a = 0;
  int i;
  ck_assert_int_eq(cltcp_async_new(&a, loop, rec_cb, 3), 0);
  track(a);
  /* Five sends before the loop gets to the handle: one event. */
  for (i = 0; i < 5; i++)
    ck_assert_int_eq(cltcp_async_send(a), 0);
  ck_assert_uint_eq(rec_count(), 0); /* never from inside send */
  wait_ev(loop, a, CLTCP_EV_ASYNC, 1, 5);
  run_for(loop, 0.05);
  ck_assert_uint_eq(rec_count_ev(a, CLTCP_EV_ASYNC), 1);
  ck_assert_int_eq(rec_find(a, CLTCP_EV_ASYNC, 0)->ctx, 3);
  ck_assert_int_eq(rec_find(a, CLTCP_EV_ASYNC, 0)->status, 0);
  /* It repeats: a later send, a later event. */
  ck_assert_int_eq(cltcp_async_send(a), 0);
  wait_ev(loop, a, CLTCP_EV_ASYNC, 2, 5);
  ck_assert_str_eq(rec_seq(a), "NN");
  finish_loop(loop);
}
END_TEST

static void resend_once(const ev *e) {
  static int done;
  if (e->event == CLTCP_EV_ASYNC && !done) {
    done = 1;
    ck_assert_int_eq(cltcp_async_send(e->id), 0);
  }
}

START_TEST(send_from_own_callback) {
  cltcp_id loop = new_loop(), a = 0;
  ck_assert_int_eq(cltcp_async_new(&a, loop, rec_cb, 3), 0);
  track(a);
  rec_hook = resend_once;
  ck_assert_int_eq(cltcp_async_send(a), 0);
  wait_ev(loop, a, CLTCP_EV_ASYNC, 2, 5);
  rec_hook = NULL;
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(a), "NN");
  finish_loop(loop);
}
END_TEST

static void close_on_async(const ev *e) {
  if (e->event == CLTCP_EV_ASYNC) {
    ck_assert_int_eq(cltcp_async_close(e->id), 0);
    ck_assert_int_eq(cltcp_async_send(e->id), CLTCP_ECLOSED);
  }
}

START_TEST(close_from_own_callback) {
  cltcp_id loop = new_loop(), a = 0;
  ck_assert_int_eq(cltcp_async_new(&a, loop, rec_cb, 3), 0);
  track(a);
  rec_hook = close_on_async;
  ck_assert_int_eq(cltcp_async_send(a), 0);
  wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 5);
  rec_hook = NULL;
  ck_assert_str_eq(rec_seq(a), "NX");
  ck_assert_int_eq(rec_find(a, CLTCP_EV_CLOSE, 0)->status, 0);
  finish_loop(loop);
}
END_TEST

START_TEST(send_then_close_gives_no_event) {
  cltcp_id loop = new_loop(), a = 0;
  ck_assert_int_eq(cltcp_async_new(&a, loop, rec_cb, 3), 0);
  track(a);
  ck_assert_int_eq(cltcp_async_send(a), 0);
  ck_assert_int_eq(cltcp_async_close(a), 0);
  wait_ev(loop, a, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_str_eq(rec_seq(a), "X");
  finish_loop(loop);
}
END_TEST

START_TEST(keeps_loop_alive) {
  cltcp_id loop = new_loop(), a = 0;
  int alive = 0;
  ck_assert_int_eq(cltcp_async_new(&a, loop, rec_cb, 3), 0);
  track(a);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_NOWAIT), 0);
  ck_assert_int_eq(alive, 1);
  finish_loop(loop);
}
END_TEST

START_TEST(teardown) {
  cltcp_id loop = new_loop(), a = 0;
  rec_reset();
  ck_assert_int_eq(cltcp_async_new(&a, loop, rec_cb, 8), 0);
  ck_assert_int_eq(cltcp_async_send(a), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  ck_assert_str_eq(rec_seq(a), "X");
  ck_assert_int_eq(rec_find(a, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  ck_assert_int_eq(cltcp_async_send(a), CLTCP_ECLOSED);
}
END_TEST

START_TEST(bad_arguments) {
  cltcp_id loop = new_loop(), a = 0, t = 0;
  size_t n = 9;
  ck_assert_int_eq(cltcp_async_new(NULL, loop, rec_cb, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_async_new(&a, loop, NULL, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_async_new(&a, 0, rec_cb, 1), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(cltcp_async_send(0), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_async_send(loop), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_async_send(~(cltcp_id)0), CLTCP_ECLOSED);
  /* Made-up async ids: any loop index, any slot. */
  ck_assert_int_eq(cltcp_async_send(((cltcp_id)CLTCP_KIND_ASYNC << 59) |
                                    ((cltcp_id)2047 << 48) | 0xFFFFFFFFFFFF),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_async_send(((cltcp_id)CLTCP_KIND_ASYNC << 59) |
                                    ((cltcp_id)1 << 48) | 1),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 10, 0, rec_cb, 2), 0);
  track(t);
  ck_assert_int_eq(cltcp_async_send(t), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_async_close(t), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_async_new(&a, loop, rec_cb, 1), 0);
  track(a);
  ck_assert_int_eq(cltcp_timer_close(a), CLTCP_EKIND);
  /* A wrong generation is a dead id. */
  ck_assert_int_eq(cltcp_async_send(a ^ 1), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_async_close(a ^ 1), CLTCP_ECLOSED);
  run_for(loop, 0.05);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("async");
  TCase *tc = tcase_create("async");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, threads_8_x_10000_sends);
  tcase_add_test(tc, send_races_close_and_free);
  tcase_add_test(tc, coalescing);
  tcase_add_test(tc, send_from_own_callback);
  tcase_add_test(tc, close_from_own_callback);
  tcase_add_test(tc, send_then_close_gives_no_event);
  tcase_add_test(tc, keeps_loop_alive);
  tcase_add_test(tc, teardown);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
