/*
 * test_dns.c -- host name lookups through c-ares inside the loop, against a
 * real DNS server (dnsmasq) that the suite starts on loopback itself.
 *
 * Hermetic: every test that resolves a name not in /etc/hosts first points
 * its loop at the suite's dnsmasq, or at a loopback UDP port where nothing
 * answers.  No DNS query ever leaves the machine.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "dns_server.h"
#include "helpers.h"

/* ---- the suite's DNS server --------------------------------------------- */

static const char *const srv_args[] = {
    "--host-record=dual.example,127.0.0.7,fd00::7",
    "--host-record=v4.example,127.0.0.1",
    "--host-record=v6.example,::1",
    /* addr.example and every name below it */
    "--address=/addr.example/10.1.2.3",
    /* authoritative for example: other names there get NXDOMAIN */
    "--local=/example/",
    NULL};

/* ---- recording DNS results ---------------------------------------------- */

typedef struct dres {
  int calls;
  int status;
  cltcp_id req;
  size_t n;
  cltcp_addr addrs[8];
  double when;
  void (*hook)(struct dres *r);
  cltcp_id loop; /* for hooks */
  int aux;       /* for hooks */
  cltcp_id other; /* for hooks */
} dres;

static void dns_cb(uintptr_t ctx, cltcp_id req, int status,
                   const cltcp_addr *addrs, size_t n) {
  dres *r = (dres *)ctx;
  size_t i;
  r->calls++;
  r->status = status;
  r->req = req;
  r->n = n;
  r->when = now_s();
  if (status == 0) {
    ck_assert_uint_ge(n, 1);
    ck_assert_ptr_nonnull(addrs);
  } else {
    ck_assert_uint_eq(n, 0);
  }
  for (i = 0; i < n && i < 8; i++) {
    ck_assert(addrs[i].family == CLTCP_AF_INET ||
              addrs[i].family == CLTCP_AF_INET6);
    ck_assert(memchr(addrs[i].addr, 0, sizeof addrs[i].addr) != NULL);
    r->addrs[i] = addrs[i];
  }
  if (r->hook != NULL)
    r->hook(r);
}

static bool pred_called(void *arg) { return ((dres *)arg)->calls > 0; }

typedef struct many {
  dres *r;
  size_t n;
} many;

static bool pred_all_called(void *arg) {
  many *m = arg;
  size_t i;
  for (i = 0; i < m->n; i++)
    if (m->r[i].calls == 0)
      return false;
  return true;
}

/* Starts a lookup that must be accepted; never calls back inside. */
static cltcp_id lookup(cltcp_id loop, const char *host, int family,
                       dres *r) {
  cltcp_id req = 0;
  int rc = cltcp_dns_lookup(&req, loop, host, family, dns_cb, (uintptr_t)r);
  ck_assert_msg(rc == 0, "lookup %s returned %d (%s)", host, rc,
                cltcp_err_name(rc));
  ck_assert_int_eq(cltcp_id_kind(req), CLTCP_KIND_DNS);
  ck_assert_int_eq(r->calls, 0);
  return req;
}

static dres resolve(cltcp_id loop, const char *host, int family) {
  dres r;
  memset(&r, 0, sizeof r);
  lookup(loop, host, family, &r);
  run_until(loop, pred_called, &r, 10);
  ck_assert_int_eq(r.calls, 1);
  return r;
}

static size_t handles(cltcp_id loop) {
  size_t n = 99;
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  return n;
}

/* ---- answers ------------------------------------------------------------ */

START_TEST(a_and_aaaa) {
  cltcp_id loop = new_loop();
  dres r;
  use_suite_dns(loop);
  r = resolve(loop, "dual.example", CLTCP_AF_INET);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET);
  ck_assert_str_eq(r.addrs[0].addr, "127.0.0.7");

  r = resolve(loop, "dual.example", CLTCP_AF_INET6);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET6);
  ck_assert_str_eq(r.addrs[0].addr, "fd00::7");

  r = resolve(loop, "v6.example", CLTCP_AF_INET6);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_str_eq(r.addrs[0].addr, "::1");

  /* Case does not matter in DNS. */
  r = resolve(loop, "V4.Example", CLTCP_AF_INET);
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(r.addrs[0].addr, "127.0.0.1");

  /* The name exists, but has no address of that family. */
  r = resolve(loop, "v4.example", CLTCP_AF_INET6);
  ck_assert_int_eq(r.status, CLTCP_ENODATA);
  ck_assert_str_eq(cltcp_err_name(r.status), "ENODATA");
  ck_assert_uint_eq(handles(loop), 0);
  finish_loop(loop);
}
END_TEST

START_TEST(unspec_gives_both_ipv4_first) {
  cltcp_id loop = new_loop();
  dres r;
  int i;
  use_suite_dns(loop);
  /* Several times: the A and AAAA answers race, the order must not. */
  for (i = 0; i < 5; i++) {
    r = resolve(loop, "dual.example", CLTCP_AF_UNSPEC);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET);
    ck_assert_str_eq(r.addrs[0].addr, "127.0.0.7");
    ck_assert_int_eq(r.addrs[1].family, CLTCP_AF_INET6);
    ck_assert_str_eq(r.addrs[1].addr, "fd00::7");
  }
  /* Only one family exists: UNSPEC gives just that one. */
  r = resolve(loop, "v6.example", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_str_eq(r.addrs[0].addr, "::1");
  r = resolve(loop, "sub.addr.example", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_str_eq(r.addrs[0].addr, "10.1.2.3");
  finish_loop(loop);
}
END_TEST

START_TEST(numeric_resolves_to_itself) {
  cltcp_id loop = new_loop();
  dres r;
  /* A query would hang for 30 s: none is sent (the bound below is far
   * from both, so no machine is too slow for it). */
  int fd = use_silent_dns(loop, 30, 1);
  double t = now_s();
  r = resolve(loop, "127.0.0.1", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET);
  ck_assert_str_eq(r.addrs[0].addr, "127.0.0.1");
  r = resolve(loop, "::1", CLTCP_AF_INET6);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET6);
  ck_assert_str_eq(r.addrs[0].addr, "::1");
  r = resolve(loop, "[0:0::1]", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(r.addrs[0].addr, "::1");
  r = resolve(loop, "10.0.0.1", CLTCP_AF_INET6);
  ck_assert_int_eq(r.status, CLTCP_ENODATA);
  r = resolve(loop, "::1", CLTCP_AF_INET);
  ck_assert_int_eq(r.status, CLTCP_ENODATA);
  ck_assert_double_lt(now_s() - t, 15.0);
  ck_assert_int_eq(udp_pending(fd), 0);
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(localhost_from_hosts_file) {
  cltcp_id loop = new_loop();
  dres r;
  /* The servers swallow queries (for 30 s): an answer proves /etc/hosts
   * gave it. */
  int fd = use_silent_dns(loop, 30, 1);
  double t = now_s();
  r = resolve(loop, "localhost", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_ge(r.n, 1);
  ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET);
  ck_assert_str_eq(r.addrs[0].addr, "127.0.0.1");
  r = resolve(loop, "localhost", CLTCP_AF_INET);
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(r.addrs[0].addr, "127.0.0.1");
  ck_assert_double_lt(now_s() - t, 15.0);
  ck_assert_int_eq(udp_pending(fd), 0);
  close(fd);
  finish_loop(loop);
}
END_TEST

/* RFC 6761: "localhost" in any spelling and every name under ".localhost"
 * are loopback, answered without asking any server.  The names below
 * ".localhost" are in no hosts file, so they exercise the built-in answer
 * on every machine; run-tests also runs this suite with an empty
 * /etc/hosts, where plain "localhost" takes the same path. */
START_TEST(localhost_names_are_loopback) {
  static const char *const names[] = {"app.localhost", "a.b.LocalHost",
                                      "x.localhost.", "LOCALHOST.",
                                      "localhost", NULL};
  cltcp_id loop = new_loop(), req;
  dres r;
  int fd = use_silent_dns(loop, 5, 1), i;
  size_t k;
  for (i = 0; names[i] != NULL; i++) {
    r = resolve(loop, names[i], CLTCP_AF_INET);
    ck_assert_msg(r.status == 0, "%s: %s", names[i],
                  cltcp_err_name(r.status));
    ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET);
    ck_assert_str_eq(r.addrs[0].addr, "127.0.0.1");
    for (k = 0; k < r.n; k++)
      ck_assert_int_eq(r.addrs[k].family, CLTCP_AF_INET);
    r = resolve(loop, names[i], CLTCP_AF_INET6);
    ck_assert_msg(r.status == 0, "%s/6: %s", names[i],
                  cltcp_err_name(r.status));
    ck_assert_int_eq(r.addrs[0].family, CLTCP_AF_INET6);
    ck_assert_str_eq(r.addrs[0].addr, "::1");
    r = resolve(loop, names[i], CLTCP_AF_UNSPEC);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_ge(r.n, 2);
    ck_assert_str_eq(r.addrs[0].addr, "127.0.0.1");
    ck_assert_int_eq(r.addrs[r.n - 1].family, CLTCP_AF_INET6);
  }
  ck_assert_int_eq(udp_pending(fd), 0);
  /* Names that only look alike do go to the servers. */
  {
    static const char *const others[] = {"xlocalhost", "localhost.example",
                                         NULL};
    for (i = 0; others[i] != NULL; i++) {
      int seen = 0;
      double until = now_s() + 10;
      memset(&r, 0, sizeof r);
      req = lookup(loop, others[i], CLTCP_AF_INET, &r);
      while (seen == 0 && now_s() < until) {
        run_for(loop, 0.01);
        seen = udp_pending(fd);
      }
      ck_assert_msg(seen > 0, "%s was not asked of the server", others[i]);
      ck_assert_int_eq(cltcp_dns_cancel(req), 0);
      run_until(loop, pred_called, &r, 5);
      ck_assert_int_eq(r.status, UV_ECANCELED);
    }
  }
  close(fd);
  finish_loop(loop);
}
END_TEST

/* ---- failures ----------------------------------------------------------- */

START_TEST(nxdomain_is_enotfound) {
  cltcp_id loop = new_loop();
  dres r;
  use_suite_dns(loop);
  r = resolve(loop, "nosuch.example", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, CLTCP_ENOTFOUND);
  ck_assert_str_eq(cltcp_err_name(r.status), "ENOTFOUND");
  ck_assert_uint_eq(r.n, 0);
  r = resolve(loop, "nosuch.example", CLTCP_AF_INET);
  ck_assert_int_eq(r.status, CLTCP_ENOTFOUND);
  finish_loop(loop);
}
END_TEST

START_TEST(bad_names) {
  cltcp_id loop = new_loop();
  dres r;
  char longlabel[100];
  use_suite_dns(loop);
  r = resolve(loop, "", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, CLTCP_EBADNAME);
  /* A label longer than 63 bytes cannot be put in a query. */
  memset(longlabel, 'a', 70);
  strcpy(longlabel + 70, ".example");
  r = resolve(loop, longlabel, CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, CLTCP_EBADNAME);
  {
    const char *bad[] = {"a..example", ".example", "bad name.example",
                         "1:2:3:4:5:6:7:8:9", "a/b.example", "[v4.example]",
                         "..", NULL};
    int i;
    for (i = 0; bad[i]; i++) {
      r = resolve(loop, bad[i], CLTCP_AF_UNSPEC);
      ck_assert_msg(r.status == CLTCP_EBADNAME, "'%s': %s", bad[i],
                    cltcp_err_name(r.status));
    }
  }
  /* A trailing dot (fully qualified) is fine. */
  r = resolve(loop, "v4.example.", CLTCP_AF_INET);
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(r.addrs[0].addr, "127.0.0.1");
  finish_loop(loop);
}
END_TEST

START_TEST(unreachable_server_times_out) {
  cltcp_id loop = new_loop();
  dres r4, r6;
  int fd = use_silent_dns(loop, 0.5, 1);
  double t = now_s(), dt;
  memset(&r4, 0, sizeof r4);
  memset(&r6, 0, sizeof r6);
  lookup(loop, "slow.example", CLTCP_AF_UNSPEC, &r4);
  lookup(loop, "slow6.example", CLTCP_AF_INET6, &r6);
  ck_assert_uint_eq(handles(loop), 2);
  run_until(loop, pred_called, &r4, 15);
  run_until(loop, pred_called, &r6, 15);
  dt = now_s() - t;
  ck_assert_int_eq(r4.calls, 1);
  ck_assert_int_eq(r4.status, CLTCP_EDNSTIMEOUT);
  ck_assert_int_eq(r6.status, CLTCP_EDNSTIMEOUT);
  ck_assert_str_eq(cltcp_err_name(r4.status), "EDNSTIMEOUT");
  /* Never before the 0.5 s try (c-ares keeps its own clock, in ms), and
   * within a generous slack. */
  ck_assert_msg(dt >= 0.5 - 0.002 && dt < 0.5 + 10, "timed out after %.3f s",
                dt);
  /* The queries did reach the silent server (A + AAAA, then AAAA). */
  ck_assert_int_ge(udp_pending(fd), 3);
  ck_assert_uint_eq(handles(loop), 0);
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(refused_port_fails_fast) {
  /* A loopback port with no socket at all: the ICMP error ends the query
   * with a DNS error, well within the timeout. */
  cltcp_id loop = new_loop();
  char servers[64];
  dres r;
  int fd, port = silent_udp_port(&fd);
  close(fd);
  snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, servers), 0);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 0.5, 1), 0);
  r = resolve(loop, "gone.example", CLTCP_AF_INET);
  ck_assert_msg(r.status == CLTCP_EDNSCONN || r.status == CLTCP_EDNSTIMEOUT,
                "status %d (%s)", r.status, cltcp_err_name(r.status));
  finish_loop(loop);
}
END_TEST

/* ---- many at once ------------------------------------------------------- */

START_TEST(thousand_in_flight) {
  enum { N = 1000 };
  cltcp_id loop = new_loop();
  dres *r = calloc(N, sizeof *r);
  many m = {r, N};
  char name[64];
  size_t i;
  double t;
  ck_assert_ptr_nonnull(r);
  use_suite_dns(loop);
  /* Replies dropped by a full socket buffer are retried quickly. */
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 1.0, 4), 0);
  t = now_s();
  for (i = 0; i < N; i++) {
    snprintf(name, sizeof name, "n%zu.addr.example", i);
    lookup(loop, name, CLTCP_AF_INET, &r[i]);
  }
  ck_assert_uint_eq(handles(loop), N);
  run_until(loop, pred_all_called, &m, 30);
  for (i = 0; i < N; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_msg(r[i].status == 0, "lookup %zu: %s", i,
                  cltcp_err_name(r[i].status));
    ck_assert_uint_eq(r[i].n, 1);
    ck_assert_str_eq(r[i].addrs[0].addr, "10.1.2.3");
  }
  fprintf(stderr, "thousand_in_flight: %.3f s\n", now_s() - t);
  ck_assert_uint_eq(handles(loop), 0);
  free(r);
  finish_loop(loop);
}
END_TEST

/* ---- connecting by name ------------------------------------------------- */

START_TEST(connect_by_name) {
  cltcp_id loop = new_loop(), s = 0;
  echo_server es;
  const ev *e;
  uint8_t *got;
  size_t len;
  use_suite_dns(loop);
  echo_start(&es, loop, "127.0.0.1");
  ck_assert_int_eq(cltcp_socket_new(&s, loop, rec_cb, 7), 0);
  track(s);
  /* v4.example is 127.0.0.1 on the suite's server only. */
  ck_assert_int_eq(cltcp_socket_connect(s, "v4.example", es.port), 0);
  ck_assert_uint_eq(rec_count_ev(s, 0), 0);
  wait_ev(loop, s, CLTCP_EV_CONNECT, 1, 10);
  e = rec_find(s, CLTCP_EV_CONNECT, 0);
  ck_assert_int_eq(e->status, 0);
  {
    char addr[64];
    int port = 0, family = 0;
    ck_assert_int_eq(
        cltcp_socket_address(addr, sizeof addr, &port, &family, s, 1), 0);
    ck_assert_str_eq(addr, "127.0.0.1");
    ck_assert_int_eq(port, es.port);
    ck_assert_int_eq(family, 4);
  }
  ck_assert_int_eq(cltcp_socket_write(s, (const uint8_t *)"hello dns", 9, 0),
                   0);
  {
    want w = {s, 0, 9};
    run_until(loop, pred_data_len, &w, 10);
  }
  got = rec_data(s, &len);
  ck_assert_uint_eq(len, 9);
  ck_assert_mem_eq(got, "hello dns", 9);
  free(got);
  ck_assert_str_eq(rec_seq(s), "CD");
  finish_loop(loop);
}
END_TEST

START_TEST(connect_by_name_nxdomain) {
  cltcp_id loop = new_loop(), s = 0;
  const ev *e;
  use_suite_dns(loop);
  ck_assert_int_eq(cltcp_socket_new(&s, loop, rec_cb, 7), 0);
  track(s);
  ck_assert_int_eq(cltcp_socket_connect(s, "nosuch.example", 80), 0);
  ck_assert_uint_eq(rec_count_ev(s, 0), 0);
  wait_ev(loop, s, CLTCP_EV_CLOSE, 1, 10);
  ck_assert_str_eq(rec_seq(s), "RX");
  e = rec_find(s, CLTCP_EV_ERROR, 0);
  ck_assert_int_eq(e->status, CLTCP_ENOTFOUND);
  ck_assert_int_eq(rec_find(s, CLTCP_EV_CLOSE, 0)->status, 0);
  finish_loop(loop);
}
END_TEST

START_TEST(socket_closed_while_resolving) {
  cltcp_id loop = new_loop(), s = 0;
  int fd = use_silent_dns(loop, 5, 1);
  ck_assert_int_eq(cltcp_socket_new(&s, loop, rec_cb, 7), 0);
  track(s);
  ck_assert_int_eq(cltcp_socket_connect(s, "slow.example", 80), 0);
  run_for(loop, 0.05);
  ck_assert_int_ge(udp_pending(fd), 1); /* the lookup is in flight */
  ck_assert_int_eq(cltcp_socket_close(s, CLTCP_CLOSE_NOW), 0);
  wait_ev(loop, s, CLTCP_EV_CLOSE, 1, 5);
  run_for(loop, 0.1);
  /* Nothing but the close: no DNS error reaches the dead socket. */
  ck_assert_str_eq(rec_seq(s), "X");
  ck_assert_int_eq(rec_find(s, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_uint_eq(handles(loop), 0);
  {
    /* The orphaned query (5 s timeout) must not keep the loop running: a
     * default run returns at once, with no work left. */
    int alive = 1;
    uint64_t t0 = 0, t1 = 0;
    ck_assert_int_eq(cltcp_loop_now(&t0, loop), 0);
    ck_assert_int_eq(cltcp_loop_run(&alive, loop, CLTCP_RUN_DEFAULT), 0);
    ck_assert_int_eq(cltcp_loop_now(&t1, loop), 0);
    ck_assert_int_eq(alive, 0);
    ck_assert_msg(t1 - t0 < 1000, "loop ran %llu ms for a dead lookup",
                  (unsigned long long)(t1 - t0));
  }
  close(fd);
  /* The query is still in c-ares: the loop closes anyway, and the sanitizer
   * build proves nothing leaks or is touched after free. */
  finish_loop(loop);
}
END_TEST

START_TEST(socket_closed_before_hosts_result) {
  /* /etc/hosts answers inside the connect call; the result waits for the
   * next turn, and the close in between must drop it. */
  cltcp_id loop = new_loop(), s = 0;
  ck_assert_int_eq(cltcp_socket_new(&s, loop, rec_cb, 7), 0);
  track(s);
  ck_assert_int_eq(cltcp_socket_connect(s, "localhost", 9), 0);
  ck_assert_int_eq(cltcp_socket_close(s, CLTCP_CLOSE_NOW), 0);
  wait_ev(loop, s, CLTCP_EV_CLOSE, 1, 5);
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(s), "X");
  finish_loop(loop);
}
END_TEST

/* ---- cancelling --------------------------------------------------------- */

START_TEST(cancel_lookup) {
  cltcp_id loop = new_loop(), req;
  dres r, r2, r3;
  int alive = 1, fd = use_silent_dns(loop, 5, 1);
  memset(&r, 0, sizeof r);
  memset(&r2, 0, sizeof r2);
  req = lookup(loop, "slow.example", CLTCP_AF_UNSPEC, &r);
  run_for(loop, 0.05);
  ck_assert_int_eq(r.calls, 0);
  ck_assert_int_eq(cltcp_dns_cancel(req), 0);
  /* Not from inside the call; the id is dead at once, the request still
   * counts until its callback ran. */
  ck_assert_int_eq(r.calls, 0);
  ck_assert_int_eq(cltcp_id_alive(&alive, req), 0);
  ck_assert_int_eq(alive, 0);
  ck_assert_int_eq(cltcp_dns_cancel(req), CLTCP_ECLOSED);
  ck_assert_uint_eq(handles(loop), 1);
  run_until(loop, pred_called, &r, 2);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, UV_ECANCELED);
  ck_assert_uint_eq(r.req, req);
  ck_assert_uint_eq(handles(loop), 0);

  /* Cancel a result that is ready but not delivered yet (hosts file). */
  req = lookup(loop, "localhost", CLTCP_AF_UNSPEC, &r2);
  ck_assert_int_eq(cltcp_dns_cancel(req), 0);
  run_until(loop, pred_called, &r2, 2);
  ck_assert_int_eq(r2.status, UV_ECANCELED);

  /* The cancelled query still sits in c-ares; that does not block a new
   * configuration, and the new servers work. */
  use_suite_dns(loop);
  r3 = resolve(loop, "v4.example", CLTCP_AF_INET);
  ck_assert_int_eq(r3.status, 0);
  run_for(loop, 0.1);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r2.calls, 1);
  close(fd);
  finish_loop(loop);
}
END_TEST

static void cancel_other_hook(dres *r) {
  /* From one callback, cancel another request that already has its
   * answer queued: it must get UV_ECANCELED, once. */
  ck_assert_int_eq(cltcp_dns_cancel(r->other), 0);
}

START_TEST(cancel_from_callback) {
  cltcp_id loop = new_loop(), b;
  dres ra, rb;
  memset(&ra, 0, sizeof ra);
  memset(&rb, 0, sizeof rb);
  lookup(loop, "127.0.0.1", CLTCP_AF_UNSPEC, &ra);
  b = lookup(loop, "127.0.0.2", CLTCP_AF_UNSPEC, &rb);
  /* Both answers are queued for the same turn, a's first. */
  ra.hook = cancel_other_hook;
  ra.other = b;
  run_until(loop, pred_called, &rb, 2);
  run_until(loop, pred_called, &ra, 2);
  ck_assert_int_eq(ra.status, 0);
  ck_assert_int_eq(rb.status, UV_ECANCELED);
  ck_assert_int_eq(rb.calls, 1);
  finish_loop(loop);
}
END_TEST

/* ---- callbacks that call back in ---------------------------------------- */

static void chain_hook(dres *r) {
  cltcp_id req = 0;
  /* Reconfigure the resolver from inside a result callback (nothing else
   * in flight), then start the next lookup. */
  if (r->aux > 0) {
    r->aux--;
    ck_assert_int_eq(cltcp_loop_set_dns_servers(r->loop, suite_dns.servers), 0);
    r->calls = 0;
    ck_assert_int_eq(cltcp_dns_lookup(&req, r->loop, "dual.example",
                                      CLTCP_AF_UNSPEC, dns_cb, (uintptr_t)r),
                     0);
  }
}

START_TEST(lookup_from_callback) {
  cltcp_id loop = new_loop();
  dres r;
  memset(&r, 0, sizeof r);
  use_suite_dns(loop);
  r.hook = chain_hook;
  r.loop = loop;
  r.aux = 5;
  lookup(loop, "dual.example", CLTCP_AF_UNSPEC, &r);
  while (r.aux > 0 || r.calls == 0)
    run_until(loop, pred_called, &r, 5);
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.n, 2);
  finish_loop(loop);
}
END_TEST

/* ---- loop teardown ------------------------------------------------------ */

static void teardown_hook(dres *r) {
  cltcp_id req = 0;
  /* The loop is closing: no new lookup may start. */
  ck_assert_int_eq(cltcp_dns_lookup(&req, r->loop, "x.example",
                                    CLTCP_AF_UNSPEC, dns_cb, (uintptr_t)r),
                   CLTCP_ECLOSED);
}

START_TEST(loop_closed_with_lookups_pending) {
  cltcp_id loop = new_loop(), s = 0, c;
  dres r[4];
  int i, fd = use_silent_dns(loop, 5, 2);
  memset(r, 0, sizeof r);
  for (i = 0; i < 4; i++) r[i].loop = loop;
  r[0].hook = teardown_hook;
  lookup(loop, "slow.example", CLTCP_AF_UNSPEC, &r[0]);
  lookup(loop, "slow6.example", CLTCP_AF_INET6, &r[1]);
  lookup(loop, "127.0.0.1", CLTCP_AF_UNSPEC, &r[2]); /* answer queued */
  c = lookup(loop, "slower.example", CLTCP_AF_INET, &r[3]);
  ck_assert_int_eq(cltcp_dns_cancel(c), 0); /* ECANCELED queued */
  ck_assert_int_eq(cltcp_socket_new(&s, loop, rec_cb, 7), 0);
  track(s);
  ck_assert_int_eq(cltcp_socket_connect(s, "conn.example", 80), 0);
  ck_assert_uint_eq(handles(loop), 5);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  for (i = 0; i < 4; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].status, UV_ECANCELED);
  }
  /* The socket got one CLOSE (cancelled, as for any handle at teardown),
   * and nothing else: its lookup was not a failure of the socket. */
  if (strcmp(rec_seq(s), "X") != 0 ||
      rec_find(s, CLTCP_EV_CLOSE, 0)->status != UV_ECANCELED)
    rec_dump();
  ck_assert_str_eq(rec_seq(s), "X");
  ck_assert_int_eq(rec_find(s, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  check_close_last();
  ck_assert_int_eq(cltcp_loop_handle_count(NULL, loop), UV_EINVAL);
  {
    size_t n;
    ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), CLTCP_ECLOSED);
  }
  close(fd);
}
END_TEST

START_TEST(queued_lookups_cancel_abort_close) {
  /* More lookups than c-ares gets at once: some wait in the library's own
   * queue.  Cancelling and aborting (closing a socket) work the same for
   * both, and the loop's teardown finishes the rest. */
  enum { N = 300 };
  cltcp_id loop = new_loop(), s = 0, *ids = calloc(N, sizeof *ids);
  dres *r = calloc(N, sizeof *r);
  char name[64];
  int i, fd = use_silent_dns(loop, 5, 1);
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(ids);
  for (i = 0; i < N; i++) {
    snprintf(name, sizeof name, "q%d.example", i);
    ids[i] = lookup(loop, name, CLTCP_AF_UNSPEC, &r[i]);
  }
  /* The socket's lookup is queued behind all of them. */
  ck_assert_int_eq(cltcp_socket_new(&s, loop, rec_cb, 7), 0);
  track(s);
  ck_assert_int_eq(cltcp_socket_connect(s, "conn.example", 80), 0);
  for (i = 0; i < N; i += 2)
    ck_assert_int_eq(cltcp_dns_cancel(ids[i]), 0);
  ck_assert_uint_eq(handles(loop), N + 1);
  run_for(loop, 0.05);
  ck_assert_int_eq(cltcp_socket_close(s, CLTCP_CLOSE_NOW), 0);
  wait_ev(loop, s, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_str_eq(rec_seq(s), "X");
  for (i = 0; i < N; i++) {
    ck_assert_int_eq(r[i].calls, i % 2 == 0 ? 1 : 0);
    if (i % 2 == 0)
      ck_assert_int_eq(r[i].status, UV_ECANCELED);
  }
  ck_assert_uint_eq(handles(loop), N / 2);
  /* Only the first ones reached the server; the rest are still queued. */
  ck_assert_int_le(udp_pending(fd), 128);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  for (i = 0; i < N; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_int_eq(r[i].status, UV_ECANCELED);
  }
  check_close_last();
  free(r);
  free(ids);
  close(fd);
}
END_TEST

START_TEST(loop_closed_idle_resolver) {
  /* A resolver that was used and is idle, and one that never was. */
  cltcp_id loop = new_loop();
  dres r;
  use_suite_dns(loop);
  r = resolve(loop, "v4.example", CLTCP_AF_UNSPEC);
  ck_assert_int_eq(r.status, 0);
  finish_loop(loop);
  loop = new_loop();
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 1, 1), 0);
  finish_loop(loop);
}
END_TEST

/* ---- configuration and arguments ---------------------------------------- */

START_TEST(server_list_and_timeout_settings) {
  cltcp_id loop = new_loop(), req;
  dres r;
  const char *bad[] = {"abc",        "127.0.0.1:99999", "127.0.0.1:0",
                       "127.0.0.1,", ",127.0.0.1",     " 127.0.0.1",
                       "[::1",       "[::1]x",         "127.0.0.1:53x",
                       "1.2.3",      "host.example",   NULL};
  const char *good[] = {"127.0.0.1", "127.0.0.1:5353,[::1]:53", "::1",
                        "[::1]", NULL};
  int i, fd;
  for (i = 0; bad[i]; i++)
    ck_assert_msg(cltcp_loop_set_dns_servers(loop, bad[i]) == CLTCP_EDNSCONFIG,
                  "'%s' accepted", bad[i]);
  for (i = 0; good[i]; i++)
    ck_assert_msg(cltcp_loop_set_dns_servers(loop, good[i]) == 0,
                  "'%s' refused", good[i]);
  /* Back to the system's servers (no query is sent here). */
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, ""), 0);
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, NULL), 0);

  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, NAN, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 0, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, -1, 1), UV_EINVAL);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 0.0001, 0), 0);

  /* Lookups in flight: the configuration stays. */
  fd = use_silent_dns(loop, 5, 1);
  memset(&r, 0, sizeof r);
  req = lookup(loop, "slow.example", CLTCP_AF_INET, &r);
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, "127.0.0.1"),
                   CLTCP_EBUSY);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 1, 1), CLTCP_EBUSY);
  ck_assert_int_eq(cltcp_dns_cancel(req), 0);
  run_until(loop, pred_called, &r, 2);
  close(fd);

  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop + 1, "127.0.0.1"),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(req, 1, 1), CLTCP_EKIND);
  finish_loop(loop);
}
END_TEST

START_TEST(argument_errors) {
  cltcp_id loop = new_loop(), req = 0, t = 0;
  dres r;
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(
      cltcp_dns_lookup(&req, loop, NULL, 0, dns_cb, (uintptr_t)&r),
      UV_EINVAL);
  ck_assert_int_eq(
      cltcp_dns_lookup(&req, loop, "a.example", 5, dns_cb, (uintptr_t)&r),
      UV_EINVAL);
  ck_assert_int_eq(
      cltcp_dns_lookup(&req, loop, "a.example", 0, NULL, (uintptr_t)&r),
      UV_EINVAL);
  ck_assert_int_eq(cltcp_dns_lookup(&req, loop + 1, "a.example", 0, dns_cb,
                                    (uintptr_t)&r),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_timer_start(&t, loop, 10, 0, rec_cb, 0), 0);
  track(t);
  ck_assert_int_eq(
      cltcp_dns_lookup(&req, t, "a.example", 0, dns_cb, (uintptr_t)&r),
      CLTCP_EKIND);
  ck_assert_int_eq(cltcp_dns_cancel(t), CLTCP_EKIND);
  ck_assert_int_eq(cltcp_dns_cancel(0), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_dns_cancel(req), CLTCP_ECLOSED);
  /* NULL req is allowed. */
  ck_assert_int_eq(
      cltcp_dns_lookup(NULL, loop, "127.0.0.1", 4, dns_cb, (uintptr_t)&r), 0);
  run_until(loop, pred_called, &r, 2);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, 0);
  finish_loop(loop);
}
END_TEST

/* ---- servers bound by name ---------------------------------------------- */

START_TEST(server_binds_localhost) {
  cltcp_id loop = new_loop(), sv = 0, c = 0;
  char addr[64];
  int port = 0, family = 0;
  ck_assert_int_eq(cltcp_server_listen(&sv, loop, "localhost", 0, -1, rec_cb,
                                       1, rec_cb, 2),
                   0);
  track(sv);
  ck_assert_int_eq(
      cltcp_server_address(addr, sizeof addr, &port, &family, sv), 0);
  ck_assert_str_eq(addr, "127.0.0.1");
  ck_assert_int_eq(family, 4);
  /* And a client connects to it by the same name. */
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 3), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "localhost", port), 0);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  wait_ev(loop, sv, CLTCP_EV_ACCEPT, 1, 5);
  /* Not in /etc/hosts: refused at once, without asking any DNS server. */
  ck_assert_int_eq(cltcp_server_listen(&sv, loop, "nosuch.invalid", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   CLTCP_ENOTFOUND);
  finish_loop(loop);
}
END_TEST

/* Binds and connects by a name under .localhost: no hosts file has it. */
START_TEST(server_binds_dot_localhost) {
  cltcp_id loop = new_loop(), sv = 0, c = 0;
  char addr[64];
  int port = 0, family = 0;
  int fd = use_silent_dns(loop, 5, 1);
  ck_assert_int_eq(cltcp_server_listen(&sv, loop, "api.localhost", 0, -1,
                                       rec_cb, 1, rec_cb, 2),
                   0);
  track(sv);
  ck_assert_int_eq(
      cltcp_server_address(addr, sizeof addr, &port, &family, sv), 0);
  ck_assert_str_eq(addr, "127.0.0.1");
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 3), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "API.localhost.", port), 0);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  wait_ev(loop, sv, CLTCP_EV_ACCEPT, 1, 5);
  ck_assert_int_eq(udp_pending(fd), 0);
  close(fd);
  finish_loop(loop);
}
END_TEST

static Suite *dns_suite(void) {
  Suite *s = suite_create("dns");
  TCase *tc = tcase_create("dns");
  suite_dns_config(srv_args, "v4.example");
  tcase_add_unchecked_fixture(tc, suite_dns_setup, suite_dns_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, a_and_aaaa);
  tcase_add_test(tc, unspec_gives_both_ipv4_first);
  tcase_add_test(tc, numeric_resolves_to_itself);
  tcase_add_test(tc, localhost_from_hosts_file);
  tcase_add_test(tc, localhost_names_are_loopback);
  tcase_add_test(tc, nxdomain_is_enotfound);
  tcase_add_test(tc, bad_names);
  tcase_add_test(tc, unreachable_server_times_out);
  tcase_add_test(tc, refused_port_fails_fast);
  tcase_add_test(tc, thousand_in_flight);
  tcase_add_test(tc, connect_by_name);
  tcase_add_test(tc, connect_by_name_nxdomain);
  tcase_add_test(tc, socket_closed_while_resolving);
  tcase_add_test(tc, socket_closed_before_hosts_result);
  tcase_add_test(tc, cancel_lookup);
  tcase_add_test(tc, cancel_from_callback);
  tcase_add_test(tc, lookup_from_callback);
  tcase_add_test(tc, loop_closed_with_lookups_pending);
  tcase_add_test(tc, queued_lookups_cancel_abort_close);
  tcase_add_test(tc, loop_closed_idle_resolver);
  tcase_add_test(tc, server_list_and_timeout_settings);
  tcase_add_test(tc, argument_errors);
  tcase_add_test(tc, server_binds_localhost);
  tcase_add_test(tc, server_binds_dot_localhost);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  /* A search domain (from resolv.conf or a dotted host name) would send
   * "nosuch.example.<domain>" to the suite's server, which refuses names
   * outside example.  Pin it to one the server answers NXDOMAIN for. */
  setenv("LOCALDOMAIN", "example", 1);
  return run_suite(dns_suite());
}
