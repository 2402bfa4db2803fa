/*
 * test_dns_parse.c -- white-box unit tests of the resolver's pure text work
 * (capi/src/dns_parse.c, compiled into this test): no loop, no c-ares, no
 * server.  The lookups that use these functions are tested end to end in
 * test_dns.c and test_reverse.c.
 */
#include <check.h>

int run_suite(Suite *s); /* runner.c */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "resolver.h"

START_TEST(families) {
  ck_assert_int_eq(cltcp__dns_family(CLTCP_AF_UNSPEC), CLTCP_AF_UNSPEC);
  ck_assert_int_eq(cltcp__dns_family(CLTCP_AF_INET), CLTCP_AF_INET);
  ck_assert_int_eq(cltcp__dns_family(CLTCP_AF_INET6), CLTCP_AF_INET6);
  /* The system's AF_* values are not families of the ABI. */
  ck_assert_int_eq(cltcp__dns_family(AF_INET), -1);
  ck_assert_int_eq(cltcp__dns_family(AF_INET6), -1);
  ck_assert_int_eq(cltcp__dns_family(-1), -1);
  ck_assert_int_eq(cltcp__dns_family(5), -1);
}
END_TEST

START_TEST(brackets) {
  char buf[8];
  ck_assert_str_eq(cltcp__unbracket(buf, sizeof(buf), "[::1]"), "::1");
  ck_assert_ptr_eq(cltcp__unbracket(buf, sizeof(buf), "::1"), NULL);
  ck_assert_ptr_eq(cltcp__unbracket(buf, sizeof(buf), "[]"), NULL);
  ck_assert_ptr_eq(cltcp__unbracket(buf, sizeof(buf), "[::1"), NULL);
  ck_assert_ptr_eq(cltcp__unbracket(buf, sizeof(buf), "::1]"), NULL);
  /* 7 bytes and the NUL fit in 8; 8 do not. */
  ck_assert_str_eq(cltcp__unbracket(buf, sizeof(buf), "[1:2:3:4]"), "1:2:3:4");
  ck_assert_ptr_eq(cltcp__unbracket(buf, sizeof(buf), "[1:2:3:45]"), NULL);
}
END_TEST

START_TEST(numeric) {
  cltcp_addr a[1];
  int status = 99;
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "127.0.0.1", 0), 1);
  ck_assert_int_eq(status, 0);
  ck_assert_int_eq(a[0].family, CLTCP_AF_INET);
  ck_assert_str_eq(a[0].addr, "127.0.0.1");
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "[0:0::1]", 0), 1);
  ck_assert_int_eq(status, 0);
  ck_assert_int_eq(a[0].family, CLTCP_AF_INET6);
  ck_assert_str_eq(a[0].addr, "::1"); /* normalized */
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "fe80::1%lo", 6), 1);
  ck_assert_str_eq(a[0].addr, "fe80::1%lo"); /* a scope kept as written */
  /* A numeric address of the other family: no data. */
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "10.0.0.1", 6), 1);
  ck_assert_int_eq(status, CLTCP_ENODATA);
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "::1", 4), 1);
  ck_assert_int_eq(status, CLTCP_ENODATA);
  /* Names and malformed addresses are not numeric. */
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "localhost", 0), 0);
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "1:2:3:4:5:6:7:8:9", 0), 0);
  ck_assert_int_eq(cltcp__dns_numeric(a, &status, "[127.0.0.1]", 0), 0);
}
END_TEST

START_TEST(names) {
  char label63[64], label64[65], long254[256];
  memset(label63, 'a', 63);
  label63[63] = '\0';
  memset(label64, 'a', 64);
  label64[64] = '\0';
  ck_assert(cltcp__dns_name_valid("example.com"));
  ck_assert(cltcp__dns_name_valid("example.com."));
  ck_assert(cltcp__dns_name_valid("a-b_c.d9"));
  ck_assert(cltcp__dns_name_valid("\xc3\xa9t\xc3\xa9.example"));
  ck_assert(cltcp__dns_name_valid(label63));
  ck_assert(!cltcp__dns_name_valid(label64));
  ck_assert(!cltcp__dns_name_valid(""));
  ck_assert(!cltcp__dns_name_valid("."));
  ck_assert(!cltcp__dns_name_valid("a..b"));
  ck_assert(!cltcp__dns_name_valid(".a"));
  ck_assert(!cltcp__dns_name_valid("a b"));
  ck_assert(!cltcp__dns_name_valid("1:2:3:4:5:6:7:8:9"));
  /* 253 bytes at most (one trailing dot besides). */
  memset(long254, 'a', 254);
  long254[254] = '\0';
  for (int i = 50; i < 254; i += 51)
    long254[i] = '.';
  long254[253] = '\0';
  ck_assert(cltcp__dns_name_valid(long254));
  long254[253] = 'a';
  ck_assert(!cltcp__dns_name_valid(long254));
  long254[253] = '.';
  ck_assert(cltcp__dns_name_valid(long254));
}
END_TEST

START_TEST(localhost_names) {
  ck_assert(cltcp__dns_is_localhost("localhost"));
  ck_assert(cltcp__dns_is_localhost("LOCALHOST."));
  ck_assert(cltcp__dns_is_localhost("a.b.localhost"));
  ck_assert(!cltcp__dns_is_localhost("notlocalhost"));
  ck_assert(!cltcp__dns_is_localhost("localhost.example"));
  ck_assert(!cltcp__dns_is_localhost("localhos"));
}
END_TEST

static void servers_ok(const char *in, const char *want) {
  char *out = NULL;
  ck_assert_int_eq(cltcp__dns_servers_normalize(&out, in), 0);
  ck_assert_str_eq(out, want);
  free(out);
}

static void servers_bad(const char *in) {
  char *out = NULL;
  ck_assert_int_eq(cltcp__dns_servers_normalize(&out, in), CLTCP_EDNSCONFIG);
  ck_assert_ptr_eq(out, NULL);
}

START_TEST(server_lists) {
  servers_ok("127.0.0.1", "127.0.0.1");
  servers_ok("127.0.0.1:15353", "127.0.0.1:15353");
  servers_ok("[::1]:53,10.0.0.1:65535", "[::1]:53,10.0.0.1:65535");
  servers_ok("[::1]", "::1");
  servers_ok("::1,1.2.3.4", "::1,1.2.3.4");
  servers_bad("");
  servers_bad("1.2.3.4,");
  servers_bad("1.2.3.4,,5.6.7.8");
  servers_bad("1.2.3.4:0");
  servers_bad("1.2.3.4:65536");
  servers_bad("1.2.3.4:+53");
  servers_bad("1.2.3.4:53x");
  servers_bad("[::1");
  servers_bad("[::1]x");
  servers_bad("[fe80::1%lo]");
  servers_bad("example.com");
  servers_bad("1.2.3");
}
END_TEST

START_TEST(reverse_names) {
  unsigned char bin[16];
  char name[80];
  ck_assert_int_eq(cltcp__dns_reverse_parse(bin, "1.2.3.4"), AF_INET);
  cltcp__dns_arpa_name(name, sizeof(name), bin, AF_INET);
  ck_assert_str_eq(name, "4.3.2.1.in-addr.arpa");
  ck_assert_int_eq(cltcp__dns_reverse_parse(bin, "2001:db8::1"), AF_INET6);
  cltcp__dns_arpa_name(name, sizeof(name), bin, AF_INET6);
  ck_assert_str_eq(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                         "8.b.d.0.1.0.0.2.ip6.arpa");
  ck_assert_int_eq(cltcp__dns_reverse_parse(bin, "example.com"), 0);
  ck_assert_int_eq(cltcp__dns_reverse_parse(bin, "[::1]"), 0);
  ck_assert_int_eq(cltcp__dns_reverse_parse(bin, ""), 0);
}
END_TEST

START_TEST(addr_lists) {
  cltcp_addr a[2];
  size_t n = 0;
  n = cltcp__addr_add(a, n, 2, CLTCP_AF_INET, "1.2.3.4");
  n = cltcp__addr_add(a, n, 2, CLTCP_AF_INET, "1.2.3.4"); /* repeated */
  ck_assert_uint_eq(n, 1);
  n = cltcp__addr_add(a, n, 2, CLTCP_AF_INET6, "::1");
  n = cltcp__addr_add(a, n, 2, CLTCP_AF_INET, "5.6.7.8"); /* full */
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(a[1].addr, "::1");
  ck_assert_int_eq(a[1].family, CLTCP_AF_INET6);
}
END_TEST

int main(void) {
  Suite *s = suite_create("dns_parse");
  TCase *tc = tcase_create("pure");
  tcase_add_test(tc, families);
  tcase_add_test(tc, brackets);
  tcase_add_test(tc, numeric);
  tcase_add_test(tc, names);
  tcase_add_test(tc, localhost_names);
  tcase_add_test(tc, server_lists);
  tcase_add_test(tc, reverse_names);
  tcase_add_test(tc, addr_lists);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
