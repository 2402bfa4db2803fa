/*
 * test_ids_gen.c -- white-box test of the generation limits of ids.c.
 *
 * The library's counters are 24 bits wide, too many to wear out in a test,
 * so this suite compiles ids.c itself with tiny limits (CLTCP__GEN_MAX 16,
 * CLTCP__GEN_RETIRE 8) and drives its slot maps directly: a worn-out slot is
 * retired and never gives an id again, a loop index whose floor or loop
 * generation runs out is retired, and once every index is retired a new
 * loop gets UV_ENOMEM.  Through all of it, no id is issued twice.
 */
#define CLTCP__GEN_MAX 16u
#define CLTCP__GEN_RETIRE 8u
#include "../../capi/src/ids.c"

#include <check.h>

int run_suite(Suite *s); /* runner.c */
#include <stdlib.h>

static int cmp_id(const void *a, const void *b) {
  cltcp_id x = *(const cltcp_id *)a, y = *(const cltcp_id *)b;
  return x < y ? -1 : x > y;
}

static void assert_distinct(cltcp_id *ids, size_t n) {
  size_t i;
  qsort(ids, n, sizeof *ids, cmp_id);
  for (i = 1; i < n; i++)
    if (ids[i] == ids[i - 1])
      ck_abort_msg("id %#llx issued twice", (unsigned long long)ids[i]);
}

static cltcp__loop *fake_loop(void) {
  cltcp__loop *l = calloc(1, sizeof *l);
  ck_assert_ptr_nonnull(l);
  ck_assert_int_eq(cltcp__loop_register(l), 0);
  return l;
}

static void fake_loop_free(cltcp__loop *l) {
  cltcp__loop_unregister(l);
  free(l->slots);
  free(l);
}

static int obj; /* what the slots point to */

/* One slot allocated and freed over and over wears out at CLTCP__GEN_MAX
 * and is retired: the next id comes from a fresh slot. */
START_TEST(worn_slot_retired) {
  cltcp__loop *l = fake_loop();
  cltcp_id ids[64];
  size_t n = 0, i;
  void *p;
  for (i = 0; i < 40; i++) {
    ck_assert_int_eq(cltcp__id_alloc(&ids[n], l, CLTCP_KIND_TIMER, &obj), 0);
    ck_assert_int_eq(cltcp__lookup(&p, ids[n], CLTCP_KIND_TIMER), 0);
    ck_assert_ptr_eq(p, &obj);
    ck_assert_uint_ge(cltcp__id_gen(ids[n]), 1);
    ck_assert_uint_le(cltcp__id_gen(ids[n]), CLTCP__GEN_MAX);
    cltcp__id_free(l, ids[n]);
    ck_assert_int_eq(cltcp__lookup(&p, ids[n], CLTCP_KIND_TIMER),
                     CLTCP_ECLOSED);
    n++;
  }
  /* Slot 0 gave generations 1..16, slot 1 1..16, slot 2 the rest. */
  ck_assert_uint_eq(cltcp__id_slot(ids[15]), 0);
  ck_assert_uint_eq(cltcp__id_slot(ids[16]), 1);
  ck_assert_uint_eq(cltcp__id_slot(ids[32]), 2);
  ck_assert_uint_eq(l->nslots, 3);
  ck_assert_uint_eq(l->live, 0);
  for (i = 0; i < n; i++)
    ck_assert_int_eq(cltcp__lookup(&p, ids[i], CLTCP_KIND_TIMER),
                     CLTCP_ECLOSED);
  assert_distinct(ids, n);
  fake_loop_free(l);
}
END_TEST

/* A loop that raised its index's floor to CLTCP__GEN_RETIRE retires the
 * index: the next loop takes another one.  Below that, the index is reused
 * and the new loop's generations start above the old loop's. */
START_TEST(index_retired_by_floor) {
  cltcp__loop *a = fake_loop(), *b, *c;
  cltcp_id ida, idb, idc;
  uint32_t ia = a->index;
  void *p;
  int i;
  ck_assert_int_eq(cltcp__id_alloc(&ida, a, CLTCP_KIND_SOCKET, &obj), 0);
  for (i = 0; i < 3; i++) {
    cltcp__id_free(a, ida);
    ck_assert_int_eq(cltcp__id_alloc(&ida, a, CLTCP_KIND_SOCKET, &obj), 0);
  }
  ck_assert_uint_eq(cltcp__id_gen(ida), 4);
  fake_loop_free(a); /* leaves a live slot: its generation counts too */
  ck_assert_int_eq(cltcp__lookup(&p, ida, CLTCP_KIND_SOCKET), CLTCP_ECLOSED);
  b = fake_loop();
  ck_assert_uint_eq(b->index, ia);
  ck_assert_int_eq(cltcp__id_alloc(&idb, b, CLTCP_KIND_SOCKET, &obj), 0);
  ck_assert_uint_eq(cltcp__id_gen(idb), 5);
  ck_assert_uint_ne(idb, ida);
  ck_assert_int_eq(cltcp__lookup(&p, ida, CLTCP_KIND_SOCKET), CLTCP_ECLOSED);
  for (i = 0; i < 3; i++) {
    cltcp__id_free(b, idb);
    ck_assert_int_eq(cltcp__id_alloc(&idb, b, CLTCP_KIND_SOCKET, &obj), 0);
  }
  ck_assert_uint_eq(cltcp__id_gen(idb), 8);
  cltcp__id_free(b, idb);
  fake_loop_free(b); /* floor 9 >= CLTCP__GEN_RETIRE: index retired */
  c = fake_loop();
  ck_assert_uint_ne(c->index, ia);
  ck_assert_int_eq(cltcp__id_alloc(&idc, c, CLTCP_KIND_SOCKET, &obj), 0);
  ck_assert_uint_ne(idc, idb);
  ck_assert_int_eq(cltcp__lookup(&p, idb, CLTCP_KIND_SOCKET), CLTCP_ECLOSED);
  cltcp__id_free(c, idc);
  fake_loop_free(c);
}
END_TEST

/* Loops come and go on one index until its loop generation runs out, then
 * on the next, ...; once all 2047 are retired cltcp_loop_new() would get
 * UV_ENOMEM.  Every loop id of the whole run is distinct and below 2^62. */
START_TEST(all_indexes_retired) {
  size_t max = (size_t)(CLTCP__LOOP_MAX - 1) * CLTCP__GEN_MAX, n = 0, i;
  size_t bad = 0;
  cltcp_id *ids = malloc(max * sizeof *ids);
  cltcp__loop *l = calloc(1, sizeof *l);
  cltcp__loop *dead;
  ck_assert_ptr_nonnull(ids);
  ck_assert_ptr_nonnull(l);
  /* Plain tests in the loop (ck_assert is slow under valgrind). */
  while (cltcp__loop_register(l) == 0) {
    ck_assert_uint_lt(n, max);
    if (l->id >= 1ull << 62 || cltcp__loop_lookup(&dead, l->id) != 0)
      bad++;
    ids[n++] = l->id;
    cltcp__loop_unregister(l);
    if (cltcp__loop_lookup(&dead, l->id) != CLTCP_ECLOSED)
      bad++;
  }
  ck_assert_uint_eq(bad, 0);
  ck_assert_uint_eq(n, max);
  ck_assert_int_eq(cltcp__loop_register(l), UV_ENOMEM);
  for (i = 0; i < n; i++)
    if (cltcp__loop_lookup(&dead, ids[i]) != CLTCP_ECLOSED)
      bad++;
  ck_assert_uint_eq(bad, 0);
  assert_distinct(ids, n);
  free(ids);
  free(l);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ids_gen");
  TCase *tc = tcase_create("ids_gen");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, worn_slot_retired);
  tcase_add_test(tc, index_retired_by_floor);
  tcase_add_test(tc, all_indexes_retired);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
