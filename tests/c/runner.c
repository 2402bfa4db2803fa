/* runner.c -- run_suite() (helpers.h), apart from the other helpers so that
 * the white-box suites, which do not link the library, can use it too. */
#include <check.h>
#include <stdlib.h>

int run_suite(Suite *s);

int run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
