/*
 * test_reuseport.c -- CLTCP_LISTEN_REUSEPORT: two loops in two threads
 * listen on one port and both accept connections (the kernel spreads
 * them); without the flag the second bind fails; bad flags.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* ---- a loop in its own thread, with a REUSEPORT server ------------------ */

typedef struct worker {
  pthread_t th;
  const char *host;
  int port;              /* in: port to bind (0: any); out: bound port */
  atomic_int ready;      /* 1: listening (or failed, see rc) */
  int rc;                /* listen's result */
  atomic_int accepted;
  cltcp_id loop, server, stop;
  pthread_t loop_thread;
  atomic_int wrong_thread;
} worker;

static void sock_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                    cltcp_id other, const uint8_t *data, size_t len) {
  worker *w = (worker *)ctx;
  (void)id; (void)event; (void)status; (void)other; (void)data; (void)len;
  if (!pthread_equal(pthread_self(), w->loop_thread))
    atomic_fetch_add(&w->wrong_thread, 1);
}

static void server_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                      cltcp_id other, const uint8_t *data, size_t len) {
  worker *w = (worker *)ctx;
  (void)id; (void)status; (void)data; (void)len;
  if (!pthread_equal(pthread_self(), w->loop_thread))
    atomic_fetch_add(&w->wrong_thread, 1);
  if (event == CLTCP_EV_ACCEPT) {
    atomic_fetch_add(&w->accepted, 1);
    cltcp_socket_close(other, CLTCP_CLOSE_NOW);
  }
}

/* The main thread's cltcp_async_send() ends the worker's loop: the
 * callback closes the server and the async handle itself. */
static void stop_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                    cltcp_id other, const uint8_t *data, size_t len) {
  worker *w = (worker *)ctx;
  (void)status; (void)other; (void)data; (void)len;
  if (event == CLTCP_EV_ASYNC) {
    cltcp_server_close(w->server);
    cltcp_async_close(id);
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  w->loop_thread = pthread_self();
  ck_assert_int_eq(cltcp_loop_new(&w->loop), 0);
  w->rc = cltcp_server_listen_ex(&w->server, w->loop, w->host, w->port, -1,
                                 CLTCP_LISTEN_REUSEPORT, server_cb,
                                 (uintptr_t)w, sock_cb, (uintptr_t)w);
  if (w->rc == 0) {
    ck_assert_int_eq(cltcp_server_port(&w->port, w->server), 0);
    ck_assert_int_eq(cltcp_async_new(&w->stop, w->loop, stop_cb, (uintptr_t)w),
                     0);
  }
  atomic_store(&w->ready, 1);
  if (w->rc == 0)
    ck_assert_int_eq(cltcp_loop_run(NULL, w->loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(cltcp_loop_close(w->loop), 0);
  return NULL;
}

static void worker_start(worker *w, const char *host, int port) {
  double deadline = now_s() + 20;
  memset(w, 0, sizeof(*w));
  w->host = host;
  w->port = port;
  ck_assert_int_eq(pthread_create(&w->th, NULL, worker_main, w), 0);
  while (!atomic_load(&w->ready)) {
    ck_assert_msg(now_s() < deadline, "worker did not start");
    usleep(1000);
  }
}

static void two_loops_one_port(const char *host) {
  worker a, b;
  int fds[512], nfds = 0, i;
  worker_start(&a, host, 0);
  ck_assert_int_eq(a.rc, 0);
  ck_assert_int_gt(a.port, 0);
  worker_start(&b, host, a.port);
  ck_assert_int_eq(b.rc, 0);
  ck_assert_int_eq(b.port, a.port);
  /* Connect in batches until both have accepted (bounded count: the
   * kernel hashes each connection's addresses and ports, so 512 all going
   * to one listener has probability 2^-511). */
  while (nfds < 512 &&
         (atomic_load(&a.accepted) == 0 || atomic_load(&b.accepted) == 0)) {
    double deadline = now_s() + 30;
    for (i = 0; i < 16; i++) {
      fds[nfds] = raw_connect(host, a.port);
      ck_assert_int_ge(fds[nfds], 0);
      nfds++;
    }
    while (atomic_load(&a.accepted) + atomic_load(&b.accepted) < nfds) {
      ck_assert_msg(now_s() < deadline, "accepted %d + %d of %d",
                    atomic_load(&a.accepted), atomic_load(&b.accepted), nfds);
      usleep(2000);
    }
  }
  ck_assert_int_gt(atomic_load(&a.accepted), 0);
  ck_assert_int_gt(atomic_load(&b.accepted), 0);
  ck_assert_int_eq(atomic_load(&a.accepted) + atomic_load(&b.accepted), nfds);
  /* Stopped from this thread through their async handles. */
  ck_assert_int_eq(cltcp_async_send(a.stop), 0);
  ck_assert_int_eq(cltcp_async_send(b.stop), 0);
  ck_assert_int_eq(pthread_join(a.th, NULL), 0);
  ck_assert_int_eq(pthread_join(b.th, NULL), 0);
  ck_assert_int_eq(atomic_load(&a.wrong_thread), 0);
  ck_assert_int_eq(atomic_load(&b.wrong_thread), 0);
  ck_assert_int_eq(cltcp_async_send(a.stop), CLTCP_ECLOSED);
  for (i = 0; i < nfds; i++)
    close(fds[i]);
}

START_TEST(two_loops_two_threads_ipv4) { two_loops_one_port("127.0.0.1"); }
END_TEST

START_TEST(two_loops_two_threads_ipv6) {
  if (!have_ipv6_loopback()) {
    fprintf(stderr, "reuseport: no ::1 here, IPv6 case not run\n");
    return;
  }
  two_loops_one_port("::1");
}
END_TEST

START_TEST(without_flag_second_bind_fails) {
  cltcp_id loop = new_loop(), s1 = 0, s2 = 0;
  int port = 0;
  ck_assert_int_eq(cltcp_server_listen_ex(&s1, loop, "127.0.0.1", 0, -1, 0,
                                          rec_cb, 1, rec_cb, 2),
                   0);
  track(s1);
  ck_assert_int_eq(cltcp_server_port(&port, s1), 0);
  ck_assert_int_eq(cltcp_server_listen_ex(&s2, loop, "127.0.0.1", port, -1,
                                          CLTCP_LISTEN_REUSEPORT, rec_cb, 1,
                                          rec_cb, 2),
                   UV_EADDRINUSE);
  finish_loop(loop);
  /* The first with the flag, the second without: refused too. */
  loop = new_loop();
  ck_assert_int_eq(cltcp_server_listen_ex(&s1, loop, "127.0.0.1", 0, -1,
                                          CLTCP_LISTEN_REUSEPORT, rec_cb, 1,
                                          rec_cb, 2),
                   0);
  track(s1);
  ck_assert_int_eq(cltcp_server_port(&port, s1), 0);
  ck_assert_int_eq(cltcp_server_listen(&s2, loop, "127.0.0.1", port, -1,
                                       rec_cb, 1, rec_cb, 2),
                   UV_EADDRINUSE);
  /* Both with it, on one loop: fine. */
  ck_assert_int_eq(cltcp_server_listen_ex(&s2, loop, "127.0.0.1", port, -1,
                                          CLTCP_LISTEN_REUSEPORT, rec_cb, 1,
                                          rec_cb, 2),
                   0);
  track(s2);
  finish_loop(loop);
}
END_TEST

START_TEST(bad_flags) {
  cltcp_id loop = new_loop(), s = 0;
  size_t n = 9;
  ck_assert_int_eq(cltcp_server_listen_ex(&s, loop, "127.0.0.1", 0, -1, 2,
                                          rec_cb, 1, rec_cb, 2),
                   UV_EINVAL);
  ck_assert_int_eq(cltcp_server_listen_ex(&s, loop, "127.0.0.1", 0, -1, -1,
                                          rec_cb, 1, rec_cb, 2),
                   UV_EINVAL);
  ck_assert_int_eq(cltcp_server_listen_ex(&s, loop, "127.0.0.1", 70000, -1,
                                          CLTCP_LISTEN_REUSEPORT, rec_cb, 1,
                                          rec_cb, 2),
                   UV_EINVAL);
  ck_assert_int_eq(cltcp_server_listen_ex(&s, loop, "not an address", 0, -1,
                                          CLTCP_LISTEN_REUSEPORT, rec_cb, 1,
                                          rec_cb, 2),
                   UV_EINVAL);
  run_for(loop, 0.05);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("reuseport");
  TCase *tc = tcase_create("reuseport");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, two_loops_two_threads_ipv4);
  tcase_add_test(tc, two_loops_two_threads_ipv6);
  tcase_add_test(tc, without_flag_second_bind_fails);
  tcase_add_test(tc, bad_flags);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
