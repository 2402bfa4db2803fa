/*
 * test_stress.c -- volume: 64 MiB through an echo server with backpressure
 * (DRAIN) and a checksum compare, and 1,000 concurrent connections through
 * one server on one loop, each echoing its own payload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "helpers.h"

#define MiB (1024 * 1024)

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

/* ---- 64 MiB -------------------------------------------------------------- */

typedef struct xfer {
  cltcp_id id;
  size_t total, sent, got;
  uint64_t sum_sent, sum_got;
  size_t first_bad; /* offset + 1 */
  int shut;
  uint8_t chunk[256 * 1024];
} xfer;

/* Writes until more than 2 MiB are queued or everything is sent, then
 * shuts the write side down; DRAIN (mark 1 MiB) calls it again. */
static void xfer_pump(xfer *x) {
  size_t q = 0;
  for (;;) {
    size_t n;
    ck_assert_int_eq(cltcp_socket_queued(&q, x->id), 0);
    if (q > 2 * MiB || x->sent == x->total) break;
    n = x->total - x->sent;
    if (n > sizeof x->chunk) n = sizeof x->chunk;
    pattern_fill(x->chunk, 64, x->sent, n);
    x->sum_sent = fnv1a(x->sum_sent, x->chunk, n);
    ck_assert_int_eq(cltcp_socket_write(x->id, x->chunk, n, 0), 0);
    x->sent += n;
  }
  if (x->sent == x->total && !x->shut) {
    ck_assert_int_eq(cltcp_socket_shutdown(x->id), 0);
    x->shut = 1;
  }
}

static void xfer_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                    cltcp_id other, const uint8_t *data, size_t len) {
  xfer *x = (xfer *)ctx;
  if (event == CLTCP_EV_DATA) {
    size_t i;
    for (i = 0; i < len && !x->first_bad; i++)
      if (data[i] != pattern_byte(64, x->got + i))
        x->first_bad = x->got + i + 1;
    x->sum_got = fnv1a(x->sum_got, data, len);
    x->got += len;
    return;
  }
  rec_cb(0, id, event, status, other, data, len);
  if (event == CLTCP_EV_CONNECT) {
    ck_assert_int_eq(cltcp_socket_set_drain_mark(id, 1 * MiB), 0);
    xfer_pump(x);
  } else if (event == CLTCP_EV_DRAIN) {
    xfer_pump(x);
  }
}

static bool pred_closed(void *arg) {
  return rec_count_ev(*(cltcp_id *)arg, CLTCP_EV_CLOSE) > 0;
}

START_TEST(transfer_64mib) {
  cltcp_id loop = new_loop();
  echo_server es;
  xfer *x = calloc(1, sizeof *x);
  double t0 = now_s();
  x->total = 64 * MiB;
  x->sum_sent = x->sum_got = FNV_INIT;
  echo_start(&es, loop, "127.0.0.1");
  ck_assert_int_eq(cltcp_socket_new(&x->id, loop, xfer_cb, (uintptr_t)x), 0);
  track(x->id);
  ck_assert_int_eq(cltcp_socket_nodelay(x->id, 1), 0);
  ck_assert_int_eq(cltcp_socket_connect(x->id, "127.0.0.1", es.port), 0);
  run_until(loop, pred_closed, &x->id, 60);
  printf("transfer_64mib: 64 MiB echoed in %.2f s\n", now_s() - t0);
  ck_assert_uint_eq(x->sent, 64 * MiB);
  ck_assert_uint_eq(x->got, 64 * MiB);
  ck_assert_uint_eq(es.bytes, 64 * MiB);
  ck_assert_msg(x->first_bad == 0, "first wrong byte at offset %zu",
                x->first_bad - 1);
  ck_assert_msg(x->sum_got == x->sum_sent, "checksum %016llx != %016llx",
                (unsigned long long)x->sum_got,
                (unsigned long long)x->sum_sent);
  ck_assert_uint_eq(rec_count_ev(x->id, CLTCP_EV_CONNECT), 1);
  ck_assert_uint_eq(rec_count_ev(x->id, CLTCP_EV_SHUTDOWN), 1);
  ck_assert_uint_eq(rec_count_ev(x->id, CLTCP_EV_EOF), 1);
  ck_assert_uint_eq(rec_count_ev(x->id, CLTCP_EV_ERROR), 0);
  ck_assert_uint_ge(rec_count_ev(x->id, CLTCP_EV_DRAIN), 1);
  ck_assert_int_eq(rec_find(x->id, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_uint_eq(es.errors, 0);
  ck_assert_uint_eq(es.accepted, 1);
  finish_loop(loop);
  ck_assert_uint_eq(es.closed, 1);
  free(x);
}
END_TEST

/* ---- 1,000 connections --------------------------------------------------- */

#define NCONN 1000

typedef struct conn {
  cltcp_id id;
  uint32_t seed;
  size_t len, got;
  size_t first_bad;
  int closed;
} conn;

static conn *conns;
static size_t nclosed;

static void conn_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                    cltcp_id other, const uint8_t *data, size_t len) {
  conn *c = &conns[ctx];
  if (event == CLTCP_EV_DATA) {
    size_t i;
    for (i = 0; i < len && !c->first_bad; i++)
      if (c->got + i >= c->len || data[i] != pattern_byte(c->seed, c->got + i))
        c->first_bad = c->got + i + 1;
    c->got += len;
    return;
  }
  rec_cb(ctx, id, event, status, other, data, len);
  if (event == CLTCP_EV_CONNECT) {
    uint8_t *p = malloc(c->len);
    ck_assert_ptr_nonnull(p);
    pattern_fill(p, c->seed, 0, c->len);
    ck_assert_int_eq(cltcp_socket_write(id, p, c->len, 0), 0);
    free(p);
    ck_assert_int_eq(cltcp_socket_shutdown(id), 0);
  } else if (event == CLTCP_EV_CLOSE) {
    c->closed = 1;
    nclosed++;
  }
}

static bool pred_all_conns_closed(void *arg) {
  (void)arg;
  return nclosed == NCONN;
}

START_TEST(thousand_connections) {
  cltcp_id loop = new_loop();
  echo_server es;
  size_t i, total = 0;
  double t0 = now_s();
  conns = calloc(NCONN, sizeof *conns);
  nclosed = 0;
  echo_start(&es, loop, "127.0.0.1");
  for (i = 0; i < NCONN; i++) {
    conn *c = &conns[i];
    c->seed = (uint32_t)i + 1000;
    c->len = 1 + (i * 7919) % 20000; /* 1 .. 20000 bytes, all different */
    total += c->len;
    ck_assert_int_eq(cltcp_socket_new(&c->id, loop, conn_cb, i), 0);
    track(c->id);
    ck_assert_int_eq(cltcp_socket_connect(c->id, "127.0.0.1", es.port), 0);
  }
  {
    size_t n = 0;
    ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
    ck_assert_uint_eq(n, NCONN + 1);
  }
  run_until(loop, pred_all_conns_closed, NULL, 60);
  printf("thousand_connections: %d echoes (%zu bytes) in %.2f s\n", NCONN,
         total, now_s() - t0);
  for (i = 0; i < NCONN; i++) {
    conn *c = &conns[i];
    ck_assert_msg(c->got == c->len, "conn %zu: %zu of %zu bytes back", i,
                  c->got, c->len);
    ck_assert_msg(c->first_bad == 0, "conn %zu: wrong byte at %zu", i,
                  c->first_bad - 1);
    ck_assert_uint_eq(rec_count_ev(c->id, CLTCP_EV_CONNECT), 1);
    ck_assert_uint_eq(rec_count_ev(c->id, CLTCP_EV_SHUTDOWN), 1);
    ck_assert_uint_eq(rec_count_ev(c->id, CLTCP_EV_EOF), 1);
    ck_assert_uint_eq(rec_count_ev(c->id, CLTCP_EV_ERROR), 0);
    ck_assert_uint_eq(rec_count_ev(c->id, CLTCP_EV_CLOSE), 1);
    ck_assert_int_eq(rec_find(c->id, CLTCP_EV_CLOSE, 0)->status, 0);
  }
  ck_assert_uint_eq(es.accepted, NCONN);
  ck_assert_uint_eq(es.bytes, total);
  ck_assert_uint_eq(es.errors, 0);
  ck_assert_uint_eq(rec_count_ev(es.server, CLTCP_EV_ACCEPT), NCONN);
  ck_assert_uint_eq(rec_count_ev(es.server, CLTCP_EV_ERROR), 0);
  finish_loop(loop);
  ck_assert_uint_eq(es.closed, NCONN);
  free(conns);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("stress");
  TCase *tc = tcase_create("stress");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, transfer_64mib);
  tcase_add_test(tc, thousand_connections);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
