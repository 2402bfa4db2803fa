/*
 * test_errors.c -- cltcp_err_name() and cltcp_strerror() for every code of
 * CLTCP_ERRNO_MAP, every libuv code, 0 and values that are not codes; and
 * the version functions.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "helpers.h"

START_TEST(own_codes) {
  size_t n = 0;
  /* Name without the CLTCP_ prefix, message exactly as in the table. */
#define XX(name, val, msg)                                                   \
  ck_assert_int_eq(CLTCP_##name, val);                                       \
  ck_assert_str_eq(cltcp_err_name(val), #name);                              \
  ck_assert_str_eq(cltcp_strerror(val), msg);                                \
  ck_assert_ptr_eq(cltcp_err_name(val), cltcp_err_name(val));                \
  ck_assert_ptr_eq(cltcp_strerror(val), cltcp_strerror(val));                \
  ck_assert_int_lt(val, -4095);                                              \
  n++;
  CLTCP_ERRNO_MAP(XX)
#undef XX
  ck_assert_uint_eq(n, 15);
}
END_TEST

START_TEST(uv_codes) {
  size_t n = 0;
  /* Every libuv code keeps libuv's name and message. */
#define XX(name, msg)                                                        \
  ck_assert_str_eq(cltcp_err_name(UV_##name), #name);                        \
  ck_assert_str_eq(cltcp_strerror(UV_##name), uv_strerror(UV_##name));       \
  ck_assert_ptr_eq(cltcp_err_name(UV_##name), cltcp_err_name(UV_##name));    \
  n++;
  UV_ERRNO_MAP(XX)
#undef XX
  ck_assert_uint_gt(n, 70);
  ck_assert_str_eq(cltcp_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  ck_assert_str_eq(cltcp_err_name(UV_ECONNRESET), "ECONNRESET");
  ck_assert_str_eq(cltcp_err_name(UV_ETIMEDOUT), "ETIMEDOUT");
  ck_assert_str_eq(cltcp_err_name(UV_EADDRINUSE), "EADDRINUSE");
  ck_assert_str_eq(cltcp_err_name(UV_ECANCELED), "ECANCELED");
  ck_assert_str_eq(cltcp_err_name(UV_EOF), "EOF");
}
END_TEST

START_TEST(zero_and_unknown) {
  static const int unknown[] = {1,       2,       12345,   INT_MAX, -2999,
                                -4096,   -5000,   -20000,  -20006,  -20009,
                                -20020,  -29999,  -30000,  -30001,  INT_MIN,
                                -1000000};
  size_t i;
  ck_assert_str_eq(cltcp_err_name(0), "OK");
  ck_assert_ptr_nonnull(cltcp_strerror(0));
  ck_assert_uint_gt(strlen(cltcp_strerror(0)), 0);
  for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *m1 = cltcp_strerror(unknown[i]);
    const char *m2 = cltcp_strerror(unknown[i]);
    ck_assert_msg(strcmp(cltcp_err_name(unknown[i]), "UNKNOWN") == 0,
                  "cltcp_err_name(%d) = \"%s\", want \"UNKNOWN\"", unknown[i],
                  cltcp_err_name(unknown[i]));
    ck_assert_ptr_nonnull(m1);
    ck_assert_uint_gt(strlen(m1), 0);
    /* Static strings: the same pointer every time, nothing to free (libuv's
     * own uv_strerror leaks for unknown codes; ours must not). */
    ck_assert_ptr_eq(m1, m2);
    ck_assert_ptr_eq(cltcp_err_name(unknown[i]), cltcp_err_name(unknown[i]));
  }
}
END_TEST

START_TEST(version) {
  char want[32];
  ck_assert_int_eq(cltcp_abi_version(), CLTCP_ABI_VERSION);
  ck_assert_int_eq(cltcp_abi_version(), 3);
  ck_assert_int_eq(cltcp_version(), CLTCP_VERSION_MAJOR * 10000 +
                                        CLTCP_VERSION_MINOR * 100 +
                                        CLTCP_VERSION_PATCH);
  snprintf(want, sizeof want, "%d.%d.%d", CLTCP_VERSION_MAJOR,
           CLTCP_VERSION_MINOR, CLTCP_VERSION_PATCH);
  ck_assert_str_eq(cltcp_version_string(), want);
  ck_assert_str_eq(cltcp_version_string(), "0.1.0");
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("errors");
  TCase *tc = tcase_create("errors");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, own_codes);
  tcase_add_test(tc, uv_codes);
  tcase_add_test(tc, zero_and_unknown);
  tcase_add_test(tc, version);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
