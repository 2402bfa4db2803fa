/*
 * test_handles.c -- what every handle kind shares: ref/unref (an
 * unreferenced handle of any kind -- timer, server, socket with its timeout
 * timer, signal, async -- does not keep cltcp_loop_run() from returning;
 * referenced again it does) and the listing of a loop's handles (kind, id,
 * state, flags, detail) and their counts by kind.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "dns_server.h"
#include "helpers.h"

START_TEST(unref_timer_does_not_keep_loop) {
  cltcp_id loop = new_loop(), t = 0;
  int alive = 7, ref = 7;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.2, 0, rec_cb, 1), 0);
  track(t);
  ck_assert_int_eq(cltcp_handle_refd(&ref, t), 0);
  ck_assert_int_eq(ref, 1);
  ck_assert_int_eq(cltcp_handle_ref(t, 0), 0);
  ck_assert_int_eq(cltcp_handle_ref(t, 0), 0); /* idempotent */
  ck_assert_int_eq(cltcp_handle_refd(&ref, t), 0);
  ck_assert_int_eq(ref, 0);
  /* Returns at once: the only handle is unreferenced. */
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_uint_eq(rec_count(), 0);
  /* Referenced again, the run waits for it to fire (and close). */
  ck_assert_int_eq(cltcp_handle_ref(t, 1), 0);
  ck_assert_int_eq(cltcp_handle_refd(&ref, t), 0);
  ck_assert_int_eq(ref, 1);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_str_eq(rec_seq(t), "TX");
  ck_assert_int_eq(cltcp_handle_ref(t, 1), CLTCP_ECLOSED);
  finish_loop(loop);
}
END_TEST

START_TEST(unref_repeating_timer_still_fires) {
  /* Unreferenced is not stopped: while something else keeps the loop
   * running, the timer fires. */
  cltcp_id loop = new_loop(), t = 0, keep = 0;
  int alive = 7;
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 0.01, 0.01, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_timer_start(&keep, loop, 0.3, 0, rec_cb, 2), 0);
  track(t);
  track(keep);
  ck_assert_int_eq(cltcp_handle_ref(t, 0), 0);
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_str_eq(rec_seq(keep), "TX");
  ck_assert_uint_ge(rec_count_ev(t, CLTCP_EV_TIMER), 1);
  ck_assert_uint_eq(rec_count_ev(t, CLTCP_EV_CLOSE), 0);
  finish_loop(loop);
}
END_TEST

/* A connected pair on one loop: server, client, accepted socket. */
typedef struct pair {
  cltcp_id server, client, accepted;
  int port;
} pair;

static void make_pair(pair *p, cltcp_id loop) {
  const ev *e;
  ck_assert_int_eq(cltcp_server_listen(&p->server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 10, rec_cb, 11),
                   0);
  track(p->server);
  ck_assert_int_eq(cltcp_server_port(&p->port, p->server), 0);
  ck_assert_int_eq(cltcp_socket_new(&p->client, loop, rec_cb, 12), 0);
  track(p->client);
  ck_assert_int_eq(cltcp_socket_connect(p->client, "127.0.0.1", p->port), 0);
  wait_ev(loop, p->client, CLTCP_EV_CONNECT, 1, 10);
  wait_ev(loop, p->server, CLTCP_EV_ACCEPT, 1, 10);
  e = rec_find(p->server, CLTCP_EV_ACCEPT, 0);
  p->accepted = e->other;
}

START_TEST(unref_every_kind) {
  cltcp_id loop = new_loop(), t = 0, sig = 0, as = 0, ids[6];
  pair p;
  int alive = 7, i, ref;
  size_t before;
  make_pair(&p, loop);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 5, 5, rec_cb, 13), 0);
  track(t);
  ck_assert_int_eq(cltcp_signal_start(&sig, loop, SIGUSR1, rec_cb, 14), 0);
  track(sig);
  ck_assert_int_eq(cltcp_async_new(&as, loop, rec_cb, 15), 0);
  track(as);
  /* The sockets' timeout timers are armed too. */
  ck_assert_int_eq(cltcp_socket_set_timeouts(p.client, 5, 5), 0);
  ck_assert_int_eq(cltcp_socket_set_timeouts(p.accepted, 5, 5), 0);
  ids[0] = p.server;
  ids[1] = p.client;
  ids[2] = p.accepted;
  ids[3] = t;
  ids[4] = sig;
  ids[5] = as;
  before = rec_count();
  /* Each one alone keeps the loop alive. */
  for (i = 0; i < 6; i++) {
    int j;
    for (j = 0; j < 6; j++)
      ck_assert_int_eq(cltcp_handle_ref(ids[j], j == i), 0);
    ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_NOWAIT), 0);
    ck_assert_msg(alive == 1, "handle %d alone: alive %d", i, alive);
  }
  /* None of them does.  Were a socket's timer still referenced, the run
   * would last until its timeout and record an ERROR. */
  for (i = 0; i < 6; i++) {
    ck_assert_int_eq(cltcp_handle_ref(ids[i], 0), 0);
    ck_assert_int_eq(cltcp_handle_refd(&ref, ids[i]), 0);
    ck_assert_int_eq(ref, 0);
  }
  ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_uint_eq(rec_count(), before);
  /* Referenced handles still work: a signal is delivered. */
  ck_assert_int_eq(cltcp_handle_ref(sig, 1), 0);
  ck_assert_int_eq(raise(SIGUSR1), 0);
  wait_ev(loop, sig, CLTCP_EV_SIGNAL, 1, 5);
  finish_loop(loop);
}
END_TEST

static void dns_ignore(uintptr_t ctx, cltcp_id req, int status,
                       const cltcp_addr *addrs, size_t n) {
  (void)req; (void)addrs; (void)n;
  ((int *)ctx)[0]++;
  ((int *)ctx)[1] = status;
}

START_TEST(ref_bad_ids) {
  cltcp_id loop = new_loop(), t = 0, req = 0;
  int ref, fd, dres[2] = {0, 0};
  char servers[64];
  int port = silent_udp_port(&fd);
  ck_assert_int_eq(cltcp_handle_ref(0, 0), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_handle_ref(~(cltcp_id)0, 0), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_handle_ref(loop, 0), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_handle_refd(&ref, loop), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_handle_refd(NULL, loop), UV_EINVAL);
  snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, servers), 0);
  ck_assert_int_eq(cltcp_dns_lookup(&req, loop, "x.example", CLTCP_AF_INET,
                                    dns_ignore, (uintptr_t)dres),
                   0);
  ck_assert_int_eq(cltcp_handle_ref(req, 0), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_handle_refd(&ref, req), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_dns_cancel(req), 0);
  while (dres[0] == 0)
    ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_ONCE), 0);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 10, 0, rec_cb, 1), 0);
  track(t);
  ck_assert_int_eq(cltcp_timer_close(t), 0);
  ck_assert_int_eq(cltcp_handle_ref(t, 0), CLTCP_ECLOSED); /* closing */
  ck_assert_int_eq(cltcp_handle_refd(&ref, t), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_handle_ref(t ^ 1, 0), CLTCP_ECLOSED);
  close(fd);
  finish_loop(loop);
}
END_TEST

/* ---- listing ------------------------------------------------------------- */

static const cltcp_handle_info *find_info(const cltcp_handle_info *v,
                                          size_t n, cltcp_id id) {
  size_t i;
  for (i = 0; i < n; i++)
    if (v[i].id == id)
      return &v[i];
  return NULL;
}

static size_t listed(cltcp_handle_info *v, size_t max, cltcp_id loop) {
  size_t n = 0;
  ck_assert_int_eq(cltcp_loop_handles(v, max, &n, loop), 0);
  return n;
}

START_TEST(list_every_kind) {
  cltcp_id loop = new_loop(), t = 0, sig = 0, as = 0, req = 0, fresh = 0;
  cltcp_handle_info v[16];
  size_t counts[CLTCP_KIND_LAST + 3], n = 0, total = 0, k, sum = 0;
  const cltcp_handle_info *hi;
  int dres[2] = {0, 0};
  int fd, port;
  char servers[64];
  pair p;
  make_pair(&p, loop);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 30, 0, rec_cb, 13), 0);
  track(t);
  ck_assert_int_eq(cltcp_signal_start(&sig, loop, SIGUSR2, rec_cb, 14), 0);
  track(sig);
  ck_assert_int_eq(cltcp_async_new(&as, loop, rec_cb, 15), 0);
  track(as);
  ck_assert_int_eq(cltcp_socket_new(&fresh, loop, rec_cb, 16), 0);
  track(fresh);
  port = silent_udp_port(&fd);
  snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, servers), 0);
  ck_assert_int_eq(cltcp_dns_lookup(&req, loop, "x.example", CLTCP_AF_INET,
                                    dns_ignore, (uintptr_t)dres),
                   0);
  ck_assert_int_eq(cltcp_handle_ref(t, 0), 0);

  /* Size first, then the entries. */
  ck_assert_int_eq(cltcp_loop_handles(NULL, 0, &n, loop), 0);
  ck_assert_uint_eq(n, 8);
  ck_assert_int_eq(cltcp_loop_handle_count(&total, loop), 0);
  ck_assert_uint_eq(total, 8);
  memset(v, 0xAB, sizeof(v));
  ck_assert_uint_eq(listed(v, 16, loop), 8);
  /* Most recent first, DNS last. */
  ck_assert(v[0].id == fresh);
  ck_assert(v[7].id == req);

  hi = find_info(v, 8, p.server);
  ck_assert_ptr_nonnull(hi);
  ck_assert_int_eq(hi->kind, CLTCP_KIND_SERVER);
  ck_assert_int_eq(hi->state, CLTCP_STATE_ACTIVE);
  ck_assert_int_eq(hi->flags, CLTCP_INFO_REF);
  ck_assert_int_eq(hi->detail, p.port);
  hi = find_info(v, 8, p.client);
  ck_assert_int_eq(hi->kind, CLTCP_KIND_SOCKET);
  ck_assert_int_eq(hi->state, CLTCP_STATE_CONNECTED);
  ck_assert_int_eq(hi->flags, CLTCP_INFO_REF);
  hi = find_info(v, 8, p.accepted);
  ck_assert_int_eq(hi->kind, CLTCP_KIND_SOCKET);
  ck_assert_int_eq(hi->state, CLTCP_STATE_CONNECTED);
  ck_assert_int_eq(hi->flags, CLTCP_INFO_REF | CLTCP_INFO_ACCEPTED);
  hi = find_info(v, 8, fresh);
  ck_assert_int_eq(hi->state, CLTCP_STATE_NEW);
  ck_assert_int_eq(hi->flags, CLTCP_INFO_REF);
  hi = find_info(v, 8, t);
  ck_assert_int_eq(hi->kind, CLTCP_KIND_TIMER);
  ck_assert_int_eq(hi->state, CLTCP_STATE_ACTIVE);
  ck_assert_int_eq(hi->flags, 0); /* unreferenced */
  hi = find_info(v, 8, sig);
  ck_assert_int_eq(hi->kind, CLTCP_KIND_SIGNAL);
  ck_assert_int_eq(hi->detail, SIGUSR2);
  hi = find_info(v, 8, as);
  ck_assert_int_eq(hi->kind, CLTCP_KIND_ASYNC);
  ck_assert_int_eq(hi->detail, 0);
  hi = find_info(v, 8, req);
  ck_assert_int_eq(hi->kind, CLTCP_KIND_DNS);
  ck_assert_int_eq(hi->state, CLTCP_STATE_ACTIVE);

  for (k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
    counts[k] = 77;
  ck_assert_int_eq(cltcp_loop_kind_counts(counts, CLTCP_KIND_LAST + 3, loop),
                   0);
  ck_assert_uint_eq(counts[CLTCP_KIND_NONE], 0);
  ck_assert_uint_eq(counts[CLTCP_KIND_LOOP], 0);
  ck_assert_uint_eq(counts[CLTCP_KIND_SOCKET], 3);
  ck_assert_uint_eq(counts[CLTCP_KIND_SERVER], 1);
  ck_assert_uint_eq(counts[CLTCP_KIND_TIMER], 1);
  ck_assert_uint_eq(counts[CLTCP_KIND_DNS], 1);
  ck_assert_uint_eq(counts[CLTCP_KIND_SIGNAL], 1);
  ck_assert_uint_eq(counts[CLTCP_KIND_ASYNC], 1);
  ck_assert_uint_eq(counts[CLTCP_KIND_LAST + 1], 0);
  ck_assert_uint_eq(counts[CLTCP_KIND_LAST + 2], 0);
  for (k = 0; k <= CLTCP_KIND_LAST; k++)
    sum += counts[k];
  ck_assert_uint_eq(sum, total);

  /* A short array: only `max' entries written, the full count returned. */
  memset(v, 0xAB, sizeof(v));
  ck_assert_uint_eq(listed(v, 3, loop), 8);
  ck_assert(v[0].id == fresh);
  ck_assert_int_eq(v[3].kind, (int)0xABABABAB);

  /* Closing shows as CLOSING until the CLOSE event; a cancelled lookup is
   * no longer listed but still counted until its callback. */
  ck_assert_int_eq(cltcp_async_close(as), 0);
  ck_assert_int_eq(cltcp_dns_cancel(req), 0);
  ck_assert_uint_eq(listed(v, 16, loop), 7);
  ck_assert_int_eq(find_info(v, 7, as)->state, CLTCP_STATE_CLOSING);
  ck_assert_ptr_null(find_info(v, 7, req));
  ck_assert_int_eq(cltcp_loop_kind_counts(counts, 8, loop), 0);
  ck_assert_uint_eq(counts[CLTCP_KIND_DNS], 1);
  ck_assert_uint_eq(counts[CLTCP_KIND_ASYNC], 1);
  wait_ev(loop, as, CLTCP_EV_CLOSE, 1, 5);
  while (dres[0] == 0)
    ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_ONCE), 0);
  ck_assert_int_eq(dres[1], UV_ECANCELED);
  ck_assert_uint_eq(listed(v, 16, loop), 6);
  ck_assert_ptr_null(find_info(v, 6, as));
  ck_assert_int_eq(cltcp_loop_kind_counts(counts, 8, loop), 0);
  ck_assert_uint_eq(counts[CLTCP_KIND_DNS], 0);
  ck_assert_uint_eq(counts[CLTCP_KIND_ASYNC], 0);

  /* A socket connecting. */
  ck_assert_int_eq(cltcp_socket_connect(fresh, "127.0.0.1", p.port), 0);
  ck_assert_uint_eq(listed(v, 16, loop), 6);
  ck_assert_int_eq(find_info(v, 6, fresh)->state, CLTCP_STATE_CONNECTING);
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(list_bad_arguments) {
  cltcp_id loop = new_loop();
  cltcp_handle_info v[2];
  size_t n = 5, counts[2];
  ck_assert_int_eq(cltcp_loop_handles(v, 2, NULL, loop), UV_EINVAL);
  ck_assert_int_eq(cltcp_loop_handles(NULL, 2, &n, loop), UV_EINVAL);
  ck_assert_int_eq(cltcp_loop_handles(v, 2, &n, 0), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_kind_counts(NULL, 2, loop), UV_EINVAL);
  ck_assert_int_eq(cltcp_loop_kind_counts(counts, 2, 0), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_kind_counts(NULL, 0, loop), 0);
  ck_assert_int_eq(cltcp_loop_handles(v, 2, &n, loop), 0);
  ck_assert_uint_eq(n, 0);
  finish_loop(loop);
  ck_assert_int_eq(cltcp_loop_handles(v, 2, &n, loop), CLTCP_ECLOSED);
}
END_TEST

/* ---- unref survives a reconnect ------------------------------------------
 * Connecting by name tries the addresses in order; a failed attempt closes
 * the socket's uv handle and makes a fresh one, which libuv creates
 * referenced.  The owner's unref must hold for the fresh one too. */

static const char *const srv_args[] = {
    "--host-record=two.example,127.0.0.1,::1", "--local=/example/", NULL};

static bool pred_not_alive(void *arg) {
  int alive = 1;
  ck_assert_int_eq(cltcp_loop_run(&alive, *(cltcp_id *)arg, CLTCP_RUN_NOWAIT),
                   0);
  return alive == 0;
}

START_TEST(unref_holds_across_reconnect) {
  cltcp_id loop = new_loop(), server = 0, c = 0, acc;
  int port = 0, fd;
  if (!have_ipv6_loopback()) {
    fprintf(stderr, "handles: no ::1 here, reconnect case not run\n");
    return;
  }
  use_suite_dns(loop);
  /* Listening on ::1 only: the IPv4 attempt (first) is refused, the IPv6
   * one, on a fresh uv handle, connects.  A socket bound to 127.0.0.1 on
   * that port without listening makes sure of the refusal. */
  /* The port is free on ::1; on 127.0.0.1 some other program (a busy,
   * shared machine) may hold it: then take another port. */
  {
    int tries;
    for (tries = 0;; tries++) {
      struct sockaddr_in sin;
      ck_assert_int_eq(cltcp_server_listen(&server, loop, "::1", 0, -1,
                                           rec_cb, 1, rec_cb, 2),
                       0);
      track(server);
      ck_assert_int_eq(cltcp_server_port(&port, server), 0);
      fd = socket(AF_INET, SOCK_STREAM, 0);
      memset(&sin, 0, sizeof sin);
      sin.sin_family = AF_INET;
      sin.sin_port = htons((uint16_t)port);
      sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0)
        break;
      ck_assert_msg(errno == EADDRINUSE && tries < 50, "bind 127.0.0.1:%d: %s",
                    port, strerror(errno));
      close(fd);
      ck_assert_int_eq(cltcp_server_close(server), 0);
    }
  }
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 3), 0);
  track(c);
  ck_assert_int_eq(cltcp_handle_ref(c, 0), 0);
  ck_assert_int_eq(cltcp_socket_connect(c, "two.example", port), 0);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 20);
  wait_ev(loop, server, CLTCP_EV_ACCEPT, 1, 20);
  acc = rec_find(server, CLTCP_EV_ACCEPT, 0)->other;
  {
    char addr[64];
    int p, fam;
    ck_assert_int_eq(cltcp_socket_address(addr, sizeof addr, &p, &fam, c, 1),
                     0);
    ck_assert_int_eq(fam, 6); /* it did go through the second address */
  }
  ck_assert_int_eq(cltcp_handle_ref(server, 0), 0);
  ck_assert_int_eq(cltcp_handle_ref(acc, 0), 0);
  /* Connected and reading, yet nothing keeps the loop alive. */
  run_until(loop, pred_not_alive, &loop, 10);
  close(fd);
  finish_loop(loop);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("handles");
  TCase *tc = tcase_create("handles");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, unref_timer_does_not_keep_loop);
  tcase_add_test(tc, unref_repeating_timer_still_fires);
  tcase_add_test(tc, unref_every_kind);
  tcase_add_test(tc, ref_bad_ids);
  tcase_add_test(tc, list_every_kind);
  tcase_add_test(tc, list_bad_arguments);
  suite_add_tcase(s, tc);
  tc = tcase_create("reconnect");
  suite_dns_config(srv_args, "two.example");
  tcase_add_unchecked_fixture(tc, suite_dns_setup, suite_dns_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, unref_holds_across_reconnect);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
