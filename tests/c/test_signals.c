/*
 * test_signals.c -- signal handles: real signals (raise, kill(getpid()),
 * kill from another thread) reach the loop as SIGNAL events in the loop's
 * thread; closing the last handle for a signal puts back exactly the
 * disposition the signal had before (a test-installed sigaction handler,
 * SIG_IGN), which then gets the signal again; several handles and several
 * loops share a signal; teardown; bad arguments.
 *
 * Each Check test runs in its own process, so dispositions set here do not
 * leak from one test to the next.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
#define NSIGS (sizeof(sigs) / sizeof(sigs[0]))

/* The test's own handler (standing in for a Lisp's): counts per signal. */
static volatile sig_atomic_t own_hits[65];
static void own_handler(int sig, siginfo_t *info, void *uctx) {
  (void)info;
  (void)uctx;
  own_hits[sig]++;
}

/* Installs own_handler for sig with distinctive flags and mask; returns
 * the disposition as the kernel reports it, to compare with later. */
static struct sigaction install_own(int sig) {
  struct sigaction sa, got;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = own_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGALRM);
  sigaddset(&sa.sa_mask, SIGUSR2);
  ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
  ck_assert_int_eq(sigaction(sig, NULL, &got), 0);
  own_hits[sig] = 0;
  return got;
}

/* Asserts that sig's disposition now is exactly `want'. */
static void assert_disposition(int sig, const struct sigaction *want) {
  struct sigaction now;
  int s;
  ck_assert_int_eq(sigaction(sig, NULL, &now), 0);
  ck_assert_msg(now.sa_flags == want->sa_flags,
                "signal %d: flags %#x, want %#x", sig, now.sa_flags,
                want->sa_flags);
  if (want->sa_flags & SA_SIGINFO)
    ck_assert_ptr_eq((void *)now.sa_sigaction, (void *)want->sa_sigaction);
  else
    ck_assert_ptr_eq((void *)now.sa_handler, (void *)want->sa_handler);
  for (s = 1; s < 65; s++)
    ck_assert_msg(sigismember(&now.sa_mask, s) ==
                      sigismember(&want->sa_mask, s),
                  "signal %d: mask differs at %d", sig, s);
}

/* libuv's handler is installed: not the test's. */
static void assert_not_disposition(int sig, const struct sigaction *was) {
  struct sigaction now;
  ck_assert_int_eq(sigaction(sig, NULL, &now), 0);
  ck_assert_ptr_ne((void *)now.sa_sigaction, (void *)was->sa_sigaction);
}

/* Loop thread recorded by the signal callback. */
/* A callback for handles of other threads (the recorder is not thread
 * safe). */
static void rec_cb_none(uintptr_t ctx, cltcp_id id, int event, int status,
                        cltcp_id other, const uint8_t *data, size_t len) {
  (void)ctx; (void)id; (void)event; (void)status; (void)other; (void)data;
  (void)len;
}

static pthread_t cb_thread;
static int cb_thread_set;
static void thread_hook(const ev *e) {
  if (e->event == CLTCP_EV_SIGNAL) {
    cb_thread = pthread_self();
    cb_thread_set = 1;
  }
}

START_TEST(each_signal_handled_freed_readded) {
  size_t i, round;
  for (i = 0; i < NSIGS; i++) {
    int sig = sigs[i];
    cltcp_id loop = new_loop();
    struct sigaction own = install_own(sig);
    for (round = 0; round < 2; round++) { /* handle, free, re-add */
      cltcp_id h = 0;
      const ev *e;
      int signum = 0;
      ck_assert_int_eq(cltcp_signal_start(&h, loop, sig, rec_cb, 70 + i), 0);
      ck_assert_int_eq(cltcp_id_kind(h), CLTCP_KIND_SIGNAL);
      ck_assert_int_eq(cltcp_signal_signum(&signum, h), 0);
      ck_assert_int_eq(signum, sig);
      track(h);
      assert_not_disposition(sig, &own);
      /* raise() in round 0, kill(getpid()) in round 1. */
      if (round == 0)
        ck_assert_int_eq(raise(sig), 0);
      else
        ck_assert_int_eq(kill(getpid(), sig), 0);
      /* Nothing from inside the signal handler itself. */
      ck_assert_uint_eq(rec_count_ev(h, CLTCP_EV_SIGNAL), 0);
      wait_ev(loop, h, CLTCP_EV_SIGNAL, 1, 5);
      e = rec_find(h, CLTCP_EV_SIGNAL, 0);
      ck_assert_int_eq(e->status, 0);
      ck_assert_int_eq(e->other, sig);
      ck_assert_int_eq(e->ctx, 70 + i);
      ck_assert_int_eq(own_hits[sig], 0); /* the loop got it, not ours */
      ck_assert_int_eq(cltcp_signal_close(h), 0);
      /* Restored when the close returns, before the CLOSE event. */
      assert_disposition(sig, &own);
      ck_assert_int_eq(cltcp_signal_close(h), CLTCP_ECLOSED);
      ck_assert_int_eq(cltcp_signal_signum(&signum, h), CLTCP_ECLOSED);
      wait_ev(loop, h, CLTCP_EV_CLOSE, 1, 5);
      ck_assert_str_eq(rec_seq(h), "GX");
      ck_assert_int_eq(rec_find(h, CLTCP_EV_CLOSE, 0)->status, 0);
      /* The test's own handler gets the signal again. */
      ck_assert_int_eq(raise(sig), 0);
      ck_assert_int_eq(own_hits[sig], 1);
      own_hits[sig] = 0;
      run_for(loop, 0.05);
      ck_assert_uint_eq(rec_count_ev(h, 0), 2); /* nothing after CLOSE */
    }
    finish_loop(loop);
  }
}
END_TEST

START_TEST(ignored_stays_ignored) {
  /* libuv alone would leave SIG_DFL; SIGHUP's default kills the process. */
  cltcp_id loop = new_loop(), h = 0;
  struct sigaction ign, was;
  memset(&ign, 0, sizeof(ign));
  ign.sa_handler = SIG_IGN;
  ck_assert_int_eq(sigaction(SIGHUP, &ign, NULL), 0);
  ck_assert_int_eq(sigaction(SIGHUP, NULL, &was), 0);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGHUP, rec_cb, 1), 0);
  track(h);
  ck_assert_int_eq(raise(SIGHUP), 0);
  wait_ev(loop, h, CLTCP_EV_SIGNAL, 1, 5);
  ck_assert_int_eq(cltcp_signal_close(h), 0);
  assert_disposition(SIGHUP, &was);
  ck_assert_int_eq(raise(SIGHUP), 0); /* still ignored: we live */
  finish_loop(loop);
}
END_TEST

START_TEST(default_restored) {
  cltcp_id loop = new_loop(), h = 0;
  struct sigaction dfl, was;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  ck_assert_int_eq(sigaction(SIGUSR1, &dfl, NULL), 0);
  ck_assert_int_eq(sigaction(SIGUSR1, NULL, &was), 0);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGUSR1, rec_cb, 1), 0);
  track(h);
  ck_assert_int_eq(cltcp_signal_close(h), 0);
  assert_disposition(SIGUSR1, &was);
  finish_loop(loop);
}
END_TEST

START_TEST(shared_by_handles_and_loops) {
  cltcp_id l1 = new_loop(), l2 = 0, a = 0, b = 0, c = 0;
  struct sigaction own = install_own(SIGUSR1);
  ck_assert_int_eq(cltcp_loop_new(&l2), 0);
  ck_assert_int_eq(cltcp_signal_start(&a, l1, SIGUSR1, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_signal_start(&b, l1, SIGUSR1, rec_cb, 2), 0);
  ck_assert_int_eq(cltcp_signal_start(&c, l2, SIGUSR1, rec_cb, 3), 0);
  ck_assert_int_eq(raise(SIGUSR1), 0);
  wait_ev(l1, a, CLTCP_EV_SIGNAL, 1, 5);
  wait_ev(l1, b, CLTCP_EV_SIGNAL, 1, 5);
  wait_ev(l2, c, CLTCP_EV_SIGNAL, 1, 5);
  /* Closing two of three leaves libuv's handler in place. */
  ck_assert_int_eq(cltcp_signal_close(a), 0);
  ck_assert_int_eq(cltcp_signal_close(c), 0);
  assert_not_disposition(SIGUSR1, &own);
  wait_ev(l1, a, CLTCP_EV_CLOSE, 1, 5);
  wait_ev(l2, c, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_int_eq(raise(SIGUSR1), 0);
  wait_ev(l1, b, CLTCP_EV_SIGNAL, 2, 5);
  ck_assert_int_eq(own_hits[SIGUSR1], 0);
  ck_assert_uint_eq(rec_count_ev(a, CLTCP_EV_SIGNAL), 1);
  ck_assert_uint_eq(rec_count_ev(c, CLTCP_EV_SIGNAL), 1);
  /* The last one restores. */
  ck_assert_int_eq(cltcp_signal_close(b), 0);
  assert_disposition(SIGUSR1, &own);
  wait_ev(l1, b, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_int_eq(raise(SIGUSR1), 0);
  ck_assert_int_eq(own_hits[SIGUSR1], 1);
  ck_assert_int_eq(cltcp_loop_close(l2), 0);
  finish_loop(l1);
}
END_TEST

static void *kill_later(void *arg) {
  int sig = *(int *)arg;
  usleep(20000);
  kill(getpid(), sig);
  return NULL;
}

START_TEST(from_another_thread_runs_in_loop_thread) {
  cltcp_id loop = new_loop(), h = 0;
  pthread_t th;
  int sig = SIGTERM;
  struct sigaction own = install_own(SIGTERM);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGTERM, rec_cb, 9), 0);
  track(h);
  cb_thread_set = 0;
  rec_hook = thread_hook;
  ck_assert_int_eq(pthread_create(&th, NULL, kill_later, &sig), 0);
  wait_ev(loop, h, CLTCP_EV_SIGNAL, 1, 5);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert(cb_thread_set);
  ck_assert(pthread_equal(cb_thread, pthread_self()));
  rec_hook = NULL;
  ck_assert_int_eq(cltcp_signal_close(h), 0);
  assert_disposition(SIGTERM, &own);
  finish_loop(loop);
}
END_TEST

static void close_in_cb(const ev *e) {
  if (e->event == CLTCP_EV_SIGNAL)
    ck_assert_int_eq(cltcp_signal_close(e->id), 0);
}

START_TEST(close_from_own_callback) {
  cltcp_id loop = new_loop(), h = 0;
  struct sigaction own = install_own(SIGINT);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGINT, rec_cb, 4), 0);
  track(h);
  rec_hook = close_in_cb;
  ck_assert_int_eq(raise(SIGINT), 0);
  ck_assert_int_eq(raise(SIGINT), 0);
  wait_ev(loop, h, CLTCP_EV_CLOSE, 1, 5);
  rec_hook = NULL;
  ck_assert_str_eq(rec_seq(h), "GX");
  assert_disposition(SIGINT, &own);
  finish_loop(loop);
}
END_TEST

START_TEST(keeps_loop_alive) {
  cltcp_id loop = new_loop(), h = 0;
  int alive = 0;
  install_own(SIGUSR1);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGUSR1, rec_cb, 1), 0);
  track(h);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_NOWAIT), 0);
  ck_assert_int_eq(alive, 1);
  /* A DEFAULT run waits for the signal; it comes from a thread. */
  {
    pthread_t th;
    int sig = SIGUSR1;
    rec_hook = NULL;
    ck_assert_int_eq(pthread_create(&th, NULL, kill_later, &sig), 0);
    wait_ev(loop, h, CLTCP_EV_SIGNAL, 1, 5);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
  }
  ck_assert_int_eq(cltcp_signal_close(h), 0);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  finish_loop(loop);
}
END_TEST

START_TEST(teardown_restores) {
  cltcp_id loop = new_loop(), h = 0;
  struct sigaction own = install_own(SIGHUP);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGHUP, rec_cb, 6), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  ck_assert_str_eq(rec_seq(h), "X");
  ck_assert_int_eq(rec_find(h, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  assert_disposition(SIGHUP, &own);
  ck_assert_int_eq(raise(SIGHUP), 0);
  ck_assert_int_eq(own_hits[SIGHUP], 1);
}
END_TEST

/* Loops in several threads start and close handles for one signal at the
 * same time: the process-wide count never loses track, and the last close
 * restores the disposition. */
static void *churn(void *arg) {
  int i;
  cltcp_id loop = 0;
  (void)arg;
  ck_assert_int_eq(cltcp_loop_new(&loop), 0);
  for (i = 0; i < 300; i++) {
    cltcp_id h = 0;
    ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGUSR1, rec_cb_none, 0), 0);
    if (i % 3 == 0)
      ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_NOWAIT), 0);
    ck_assert_int_eq(cltcp_signal_close(h), 0);
  }
  ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  return NULL;
}

START_TEST(concurrent_loops_in_threads) {
  pthread_t th[4];
  cltcp_id loop = new_loop(), keep = 0;
  struct sigaction own = install_own(SIGUSR1);
  int i;
  /* This loop's handle lives throughout: libuv's handler must stay. */
  ck_assert_int_eq(cltcp_signal_start(&keep, loop, SIGUSR1, rec_cb, 1), 0);
  track(keep);
  for (i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, churn, NULL), 0);
  for (i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  assert_not_disposition(SIGUSR1, &own);
  ck_assert_int_eq(raise(SIGUSR1), 0);
  wait_ev(loop, keep, CLTCP_EV_SIGNAL, 1, 5);
  ck_assert_int_eq(own_hits[SIGUSR1], 0);
  ck_assert_int_eq(cltcp_signal_close(keep), 0);
  assert_disposition(SIGUSR1, &own);
  /* And with no handle left at all, threads again from scratch. */
  for (i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, churn, NULL), 0);
  for (i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  assert_disposition(SIGUSR1, &own);
  ck_assert_int_eq(raise(SIGUSR1), 0);
  ck_assert_int_eq(own_hits[SIGUSR1], 1);
  finish_loop(loop);
}
END_TEST

START_TEST(bad_arguments) {
  cltcp_id loop = new_loop(), h = 0, t = 0;
  size_t n = 9;
  int signum;
  struct sigaction own = install_own(SIGUSR1);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, 0, rec_cb, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, -1, rec_cb, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, 65, rec_cb, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, 1000, rec_cb, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGKILL, rec_cb, 1),
                   UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGSTOP, rec_cb, 1),
                   UV_EINVAL);
  {
    /* Fault signals are refused, and their dispositions (the runner's or
     * the sanitizers' own) stay as they were. */
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
      struct sigaction before;
      ck_assert_int_eq(sigaction(faults[i], NULL, &before), 0);
      ck_assert_int_eq(cltcp_signal_start(&h, loop, faults[i], rec_cb, 1),
                       UV_EINVAL);
      assert_disposition(faults[i], &before);
    }
  }
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGUSR1, NULL, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(NULL, loop, SIGUSR1, rec_cb, 1),
                   UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(&h, 0, SIGUSR1, rec_cb, 1),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  /* None of the failures touched the disposition. */
  assert_disposition(SIGUSR1, &own);
  ck_assert_int_eq(cltcp_signal_close(0), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_signal_close(loop), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 10, 0, rec_cb, 2), 0);
  track(t);
  ck_assert_int_eq(cltcp_signal_close(t), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_signal_signum(&signum, t), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_signal_signum(NULL, t), UV_EINVAL);
  ck_assert_int_eq(cltcp_signal_start(&h, loop, SIGUSR1, rec_cb, 1), 0);
  track(h);
  ck_assert_int_eq(cltcp_timer_close(h), CLTCP_EKIND);
  run_for(loop, 0.05);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
  assert_disposition(SIGUSR1, &own);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("signals");
  TCase *tc = tcase_create("signals");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, each_signal_handled_freed_readded);
  tcase_add_test(tc, ignored_stays_ignored);
  tcase_add_test(tc, default_restored);
  tcase_add_test(tc, shared_by_handles_and_loops);
  tcase_add_test(tc, from_another_thread_runs_in_loop_thread);
  tcase_add_test(tc, close_from_own_callback);
  tcase_add_test(tc, keeps_loop_alive);
  tcase_add_test(tc, teardown_restores);
  tcase_add_test(tc, concurrent_loops_in_threads);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
