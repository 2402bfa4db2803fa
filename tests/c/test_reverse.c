/*
 * test_reverse.c -- reverse lookups (cltcp_dns_reverse): IPv4 and IPv6 PTR
 * answers from a real DNS server (dnsmasq, started by the suite on
 * loopback), /etc/hosts, names not found, timeouts, cancel, teardown, a
 * burst larger than the resolver's in-flight limit, bad arguments.
 *
 * Hermetic: every loop is pointed at the suite's dnsmasq or at a silent
 * loopback port before it looks anything up.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns_server.h"
#include "helpers.h"

static const char *const srv_args[] = {
    /* A, AAAA and the matching PTR records */
    "--host-record=rev.example,192.0.2.7,2001:db8::7",
    /* a PTR record alone */
    "--ptr-record=8.2.0.192.in-addr.arpa,ptr-only.example",
    "--ptr-record=8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1."
    "0.0.2.ip6.arpa,ptr6-only.example",
    /* authoritative: other names and addresses there get NXDOMAIN */
    "--local=/example/",
    "--local=/2.0.192.in-addr.arpa/",
    "--local=/8.b.d.0.1.0.0.2.ip6.arpa/",
    "--local=/127.in-addr.arpa/",
    NULL};

/* ---- recording results -------------------------------------------------- */

typedef struct rres {
  int calls;
  int status;
  cltcp_id req;
  char name[256];
  size_t len;
  double when;
} rres;

static void name_cb(uintptr_t ctx, cltcp_id req, int status,
                    const char *name, size_t len) {
  rres *r = (rres *)ctx;
  r->calls++;
  r->status = status;
  r->req = req;
  r->when = now_s();
  if (status == 0) {
    ck_assert_ptr_nonnull(name);
    ck_assert_uint_eq(strlen(name), len);
    ck_assert_uint_lt(len, sizeof r->name);
    memcpy(r->name, name, len + 1);
  } else {
    ck_assert_ptr_null(name);
    ck_assert_uint_eq(len, 0);
  }
  r->len = len;
}

static bool pred_called(void *arg) { return ((rres *)arg)->calls > 0; }

/* Looks addr up and waits; asserts it was called exactly once, later. */
static rres reverse(cltcp_id loop, const char *addr) {
  rres r;
  cltcp_id req = 0;
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(cltcp_dns_reverse(&req, loop, addr, name_cb, (uintptr_t)&r),
                   0);
  ck_assert_int_eq(cltcp_id_kind(req), CLTCP_KIND_DNS);
  ck_assert_int_eq(r.calls, 0); /* never from inside the call */
  run_until(loop, pred_called, &r, 30);
  run_for(loop, 0.02);
  ck_assert_int_eq(r.calls, 1);
  ck_assert(r.req == req);
  return r;
}

#define assert_name(r, want)                                                 \
  do {                                                                       \
    ck_assert_msg((r).status == 0, "status %d (%s)", (r).status,             \
                  cltcp_err_name((r).status));                               \
    ck_assert_str_eq((r).name, (want));                                      \
  } while (0)

/* ---- tests ------------------------------------------------------------------ */

START_TEST(ipv4_ptr) {
  cltcp_id loop = new_loop();
  rres r;
  use_suite_dns(loop);
  r = reverse(loop, "192.0.2.7");
  assert_name(r, "rev.example");
  ck_assert_uint_eq(r.len, strlen("rev.example"));
  r = reverse(loop, "192.0.2.8");
  assert_name(r, "ptr-only.example");
  finish_loop(loop);
}
END_TEST

START_TEST(ipv6_ptr) {
  cltcp_id loop = new_loop();
  rres r;
  use_suite_dns(loop);
  r = reverse(loop, "2001:db8::7");
  assert_name(r, "rev.example");
  /* Any spelling of the address. */
  r = reverse(loop, "2001:0DB8:0000:0000:0000:0000:0000:0007");
  assert_name(r, "rev.example");
  r = reverse(loop, "2001:db8::8");
  assert_name(r, "ptr6-only.example");
  finish_loop(loop);
}
END_TEST

START_TEST(not_found) {
  cltcp_id loop = new_loop();
  rres r;
  use_suite_dns(loop);
  r = reverse(loop, "192.0.2.99");
  ck_assert_int_eq(r.status, CLTCP_ENOTFOUND);
  r = reverse(loop, "2001:db8::99");
  ck_assert_int_eq(r.status, CLTCP_ENOTFOUND);
  finish_loop(loop);
}
END_TEST

START_TEST(refused) {
  /* Outside the server's zones, with no upstream: the server answers
   * REFUSED.  c-ares 1.18 reports that (the last server refused) as
   * ARES_ECONNREFUSED, for forward lookups too: CLTCP_EDNSCONN -- a DNS
   * failure, not "no such name" (c-ares' own reverse lookup would say
   * ARES_ENOTFOUND). */
  cltcp_id loop = new_loop();
  rres r;
  use_suite_dns(loop);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, 2, 1), 0);
  r = reverse(loop, "198.51.100.1");
  ck_assert_msg(r.status == CLTCP_EDNSCONN, "status %d (%s)", r.status,
                cltcp_err_name(r.status));
  finish_loop(loop);
}
END_TEST

/* The first name /etc/hosts gives for addr, or "" if it has none. */
static void hosts_name(char *out, size_t max, const char *addr) {
  FILE *f = fopen("/etc/hosts", "r");
  char line[1024];
  out[0] = '\0';
  if (f == NULL)
    return;
  while (fgets(line, sizeof line, f) != NULL) {
    char a[128], n[256];
    char *hash = strchr(line, '#');
    if (hash != NULL)
      *hash = '\0';
    if (sscanf(line, "%127s %255s", a, n) == 2 && strcmp(a, addr) == 0) {
      snprintf(out, max, "%s", n);
      break;
    }
  }
  fclose(f);
}

START_TEST(hosts_file) {
  /* /etc/hosts first: whatever it says for 127.0.0.1 (Debian: localhost).
   * Without an entry, the suite's server says NXDOMAIN for 127.*. */
  cltcp_id loop = new_loop();
  char want[256];
  rres r;
  use_suite_dns(loop);
  hosts_name(want, sizeof want, "127.0.0.1");
  r = reverse(loop, "127.0.0.1");
  if (want[0] != '\0') {
    assert_name(r, want);
  } else {
    ck_assert_int_eq(r.status, CLTCP_ENOTFOUND);
  }
  finish_loop(loop);
}
END_TEST

START_TEST(timeout) {
  cltcp_id loop = new_loop();
  int fd = use_silent_dns(loop, 0.3, 1);
  double t0 = now_s();
  rres r = reverse(loop, "192.0.2.7");
  ck_assert_int_eq(r.status, CLTCP_EDNSTIMEOUT);
  /* Never early: one try of 0.3 s. */
  ck_assert_double_ge(r.when - t0, 0.29);
  ck_assert_int_gt(udp_pending(fd), 0); /* the query did reach the server */
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(cancel) {
  cltcp_id loop = new_loop(), req = 0;
  cltcp_handle_info v[4];
  size_t n = 0;
  rres r;
  int fd = use_silent_dns(loop, 5, 1);
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(
      cltcp_dns_reverse(&req, loop, "192.0.2.7", name_cb, (uintptr_t)&r), 0);
  ck_assert_int_eq(cltcp_loop_handles(v, 4, &n, loop), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert(v[0].id == req);
  ck_assert_int_eq(v[0].kind, CLTCP_KIND_DNS);
  run_for(loop, 0.05);
  ck_assert_int_eq(r.calls, 0);
  ck_assert_int_eq(cltcp_dns_cancel(req), 0);
  ck_assert_int_eq(cltcp_dns_cancel(req), CLTCP_ECLOSED);
  ck_assert_int_eq(r.calls, 0);
  run_until(loop, pred_called, &r, 5);
  run_for(loop, 0.05);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, UV_ECANCELED);
  close(fd);
  finish_loop(loop);
}
END_TEST

START_TEST(teardown) {
  cltcp_id loop = new_loop();
  rres r[2];
  int fd = use_silent_dns(loop, 5, 1);
  memset(r, 0, sizeof r);
  ck_assert_int_eq(
      cltcp_dns_reverse(NULL, loop, "192.0.2.7", name_cb, (uintptr_t)&r[0]), 0);
  ck_assert_int_eq(
      cltcp_dns_reverse(NULL, loop, "2001:db8::7", name_cb, (uintptr_t)&r[1]),
      0);
  run_for(loop, 0.05);
  ck_assert_int_eq(cltcp_loop_close(loop), 0);
  ck_assert_int_eq(r[0].calls, 1);
  ck_assert_int_eq(r[0].status, UV_ECANCELED);
  ck_assert_int_eq(r[1].calls, 1);
  ck_assert_int_eq(r[1].status, UV_ECANCELED);
  close(fd);
}
END_TEST

START_TEST(burst_beyond_in_flight_limit) {
  enum { N = 300 };
  cltcp_id loop = new_loop();
  static rres r[N];
  size_t i, done;
  double deadline = now_s() + 60;
  use_suite_dns(loop);
  memset(r, 0, sizeof r);
  for (i = 0; i < N; i++) {
    const char *a = i % 3 == 0   ? "192.0.2.7"
                    : i % 3 == 1 ? "2001:db8::7"
                                 : "192.0.2.99";
    ck_assert_int_eq(cltcp_dns_reverse(NULL, loop, a, name_cb, (uintptr_t)&r[i]),
                     0);
  }
  do {
    ck_assert_msg(now_s() < deadline, "burst did not finish");
    ck_assert_int_eq(cltcp_loop_run(NULL, loop, CLTCP_RUN_ONCE), 0);
    for (done = 0, i = 0; i < N; i++)
      done += r[i].calls > 0;
  } while (done < N);
  for (i = 0; i < N; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    if (i % 3 == 2)
      ck_assert_int_eq(r[i].status, CLTCP_ENOTFOUND);
    else
      assert_name(r[i], "rev.example");
  }
  finish_loop(loop);
}
END_TEST

START_TEST(bad_arguments) {
  cltcp_id loop = new_loop(), req = 5;
  rres r;
  size_t n = 9;
  static const char *bad[] = {"",        "not-an-address", "192.0.2",
                              "[::1]",   "192.0.2.7:53",   "::1::2",
                              "rev.example", "1.2.3.4 "};
  size_t i;
  memset(&r, 0, sizeof r);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(cltcp_dns_reverse(&req, loop, bad[i], name_cb,
                                    (uintptr_t)&r) == UV_EINVAL,
                  "\"%s\" accepted", bad[i]);
  ck_assert_int_eq(cltcp_dns_reverse(&req, loop, NULL, name_cb, (uintptr_t)&r),
                   UV_EINVAL);
  ck_assert_int_eq(cltcp_dns_reverse(&req, loop, "::1", NULL, 0), UV_EINVAL);
  ck_assert_int_eq(cltcp_dns_reverse(&req, 0, "::1", name_cb, (uintptr_t)&r),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_dns_reverse(&req, req, "::1", name_cb, (uintptr_t)&r),
                   CLTCP_ECLOSED);
  ck_assert_int_eq(req, 5); /* untouched */
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  run_for(loop, 0.05);
  ck_assert_int_eq(r.calls, 0);
  finish_loop(loop);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("reverse");
  TCase *tc = tcase_create("reverse");
  suite_dns_config(srv_args, "rev.example");
  tcase_add_unchecked_fixture(tc, suite_dns_setup, suite_dns_teardown);
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, ipv4_ptr);
  tcase_add_test(tc, ipv6_ptr);
  tcase_add_test(tc, not_found);
  tcase_add_test(tc, refused);
  tcase_add_test(tc, hosts_file);
  tcase_add_test(tc, timeout);
  tcase_add_test(tc, cancel);
  tcase_add_test(tc, teardown);
  tcase_add_test(tc, burst_beyond_in_flight_limit);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
