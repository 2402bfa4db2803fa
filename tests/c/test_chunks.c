/*
 * test_chunks.c -- a queue larger than the maximum chunk goes out whole, in
 * chunks.  Built with CLTCP_TEST_MAX_CHUNK=4096 (see meson.build): the same
 * code that splits a queue of more than 4 GiB (libuv takes `unsigned'
 * lengths) into 1 GiB sends here splits megabytes into 4 KiB ones.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "helpers.h"

#define CHUNK 4096

typedef struct reader {
  int fd;
  uint32_t seed;
  size_t want, got, bad;
} reader;

static bool pred_read_all(void *arg) {
  reader *r = arg;
  static uint8_t buf[64 * 1024];
  long n;
  while ((n = raw_read(r->fd, buf, sizeof buf, NULL)) > 0) {
    long i;
    for (i = 0; i < n; i++)
      if (!r->bad && buf[i] != pattern_byte(r->seed, r->got + (size_t)i))
        r->bad = r->got + (size_t)i + 1;
    r->got += (size_t)n;
  }
  return r->got >= r->want;
}

static void run_case(int flags) {
  cltcp_id loop, c;
  int lfd, fd, port = 0;
  const size_t la = 1024 * 1024 + 1, lb = 3 * CHUNK + 7;
  uint8_t *data = malloc(la + lb);
  uint64_t n = 0;
  size_t q = 1;
  reader r = {0};
  ck_assert_ptr_nonnull(data);
  pattern_fill(data, 21, 0, la + lb);
  loop = new_loop();
  lfd = raw_listen("127.0.0.1", &port);
  ck_assert_int_eq(cltcp_socket_new(&c, loop, rec_cb, 1), 0);
  track(c);
  ck_assert_int_eq(cltcp_socket_connect(c, "127.0.0.1", port), 0);
  fd = raw_accept(loop, lfd, 5);
  wait_ev(loop, c, CLTCP_EV_CONNECT, 1, 5);
  /* Coalesced: a small write first, so the large one joins it in the
   * collected queue (alone it would go at once, like a NOW write). */
  if (!(flags & CLTCP_WRITE_NOW))
    ck_assert_int_eq(cltcp_socket_write(c, data, 10, 0), 0);
  ck_assert_int_eq(cltcp_socket_write(c, data + (flags ? 0 : 10),
                                      la - (flags ? 0 : 10),
                                      flags | CLTCP_WRITE_NOTIFY),
                   0);
  if (!(flags & CLTCP_WRITE_NOW)) {
    ck_assert_int_eq(cltcp_socket_queued(&q, c), 0);
    ck_assert_uint_eq(q, la);
  }
  /* One turn later the first chunks are in flight; more is written while
   * they are: it must follow the rest of the first write, in order. */
  run_for(loop, 0.01);
  ck_assert_int_eq(
      cltcp_socket_write(c, data + la, lb, flags | CLTCP_WRITE_NOTIFY), 0);
  free(data);
  r.fd = fd;
  r.seed = 21;
  r.want = la + lb;
  pump_until(loop, pred_read_all, &r, 60);
  wait_ev(loop, c, CLTCP_EV_FLUSHED, 2, 10);
  ck_assert_uint_eq(r.got, la + lb);
  ck_assert_uint_eq(r.bad, 0);
  ck_assert_int_eq(cltcp_socket_queued(&q, c), 0);
  ck_assert_uint_eq(q, 0);
  ck_assert_int_eq(cltcp_socket_send_count(&n, c), 0);
  /* Never more than CHUNK bytes per send. */
  ck_assert_uint_ge(n, (la + lb + CHUNK - 1) / CHUNK);
  run_for(loop, 0.05);
  ck_assert_str_eq(rec_seq(c), "CFF");
  close(fd);
  close(lfd);
  finish_loop(loop);
}

START_TEST(coalesced_queue_goes_in_chunks) { run_case(0); }
END_TEST

START_TEST(immediate_write_goes_in_chunks) { run_case(CLTCP_WRITE_NOW); }
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("chunks");
  TCase *tc = tcase_create("chunks");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, coalesced_queue_goes_in_chunks);
  tcase_add_test(tc, immediate_write_goes_in_chunks);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
