/*
 * test_ids.c -- integer ids: id 0, made-up ids, ids of the wrong kind, stale
 * ids after close and after their slot was reused, double close,
 * cltcp_id_alive() and cltcp_id_kind(); forged kind bits on live handles of
 * every kind; ids of closed loops, which must never name a later loop's
 * handles, also when used from another thread.  No id may crash the library
 * or touch another handle.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "helpers.h"

/* Every public call that takes an id, with that id, must return `code'
 * (code2 is accepted too when non-zero; see made_up_other_kind). */
#define ASSERT_CODE(expr, code)                                              \
  do {                                                                       \
    int r__ = (expr);                                                        \
    ck_assert_msg(r__ == (code), "%s returned %d (%s), want %d (%s)", #expr, \
                  r__, cltcp_err_name(r__), (code), cltcp_err_name(code));   \
  } while (0)

/* The header says both that a closed socket's id "dies at once" and that
 * its buffered bytes "stay readable until its CLTCP_EV_CLOSE event returns";
 * between cltcp_socket_close() and CLOSE, buffered/read may therefore
 * return 0 as well. */
static int read_calls_may_succeed;

/* Calls every socket function on `id' and asserts they all return code. */
static void socket_calls_return(cltcp_id id, int code) {
  uint8_t buf[4] = {1, 2, 3, 4};
  char addr[64];
  size_t n = 7;
  int port = 0, fam = 0, rd = 0, wr = 0;
  ASSERT_CODE(cltcp_socket_set_cb(id, rec_cb, 1), code);
  ASSERT_CODE(cltcp_socket_connect(id, "127.0.0.1", 1), code);
  ASSERT_CODE(cltcp_socket_set_read_mode(id, CLTCP_READ_KEEP), code);
  if (read_calls_may_succeed) {
    int r1 = cltcp_socket_buffered(&n, id);
    int r2 = cltcp_socket_read(&n, id, buf, sizeof buf);
    ck_assert_msg(r1 == code || r1 == 0, "buffered returned %d", r1);
    ck_assert_msg(r2 == code || r2 == 0, "read returned %d", r2);
  } else {
    ASSERT_CODE(cltcp_socket_buffered(&n, id), code);
    ASSERT_CODE(cltcp_socket_read(&n, id, buf, sizeof buf), code);
  }
  ASSERT_CODE(cltcp_socket_write(id, buf, sizeof buf, 0), code);
  ASSERT_CODE(cltcp_socket_queued(&n, id), code);
  ASSERT_CODE(cltcp_socket_set_drain_mark(id, 10), code);
  ASSERT_CODE(cltcp_socket_set_timeouts(id, 1.0, 1.0), code);
  ASSERT_CODE(cltcp_socket_set_connect_timeout(id, 1.0), code);
  ASSERT_CODE(cltcp_socket_enable(id, 1, 1), code);
  ASSERT_CODE(cltcp_socket_enabled(&rd, &wr, id), code);
  ASSERT_CODE(cltcp_socket_shutdown(id), code);
  ASSERT_CODE(cltcp_socket_nodelay(id, 1), code);
  ASSERT_CODE(cltcp_socket_keepalive(id, 1, 10), code);
  ASSERT_CODE(cltcp_socket_address(addr, sizeof addr, &port, &fam, id, 0),
              code);
  ASSERT_CODE(cltcp_socket_close(id, CLTCP_CLOSE_NOW), code);
}

static void server_calls_return(cltcp_id id, int code) {
  char addr[64];
  int port = 0, fam = 0;
  ASSERT_CODE(cltcp_server_port(&port, id), code);
  ASSERT_CODE(cltcp_server_address(addr, sizeof addr, &port, &fam, id), code);
  ASSERT_CODE(cltcp_server_close(id), code);
}

static void loop_calls_return(cltcp_id id, int code) {
  cltcp_id out = 0;
  uint64_t ms = 0;
  size_t n = 0;
  int alive = 5;
  ASSERT_CODE(cltcp_loop_run(&alive, id, CLTCP_RUN_NOWAIT), code);
  ASSERT_CODE(cltcp_loop_stop(id), code);
  ASSERT_CODE(cltcp_loop_now(&ms, id), code);
  ASSERT_CODE(cltcp_loop_handle_count(&n, id), code);
  ASSERT_CODE(cltcp_socket_new(&out, id, rec_cb, 1), code);
  ASSERT_CODE(cltcp_timer_start(&out, id, 0.01, 0, rec_cb, 1), code);
  ASSERT_CODE(cltcp_server_listen(&out, id, "127.0.0.1", 0, -1, rec_cb, 1,
                                  rec_cb, 2),
              code);
  ASSERT_CODE(cltcp_loop_close(id), code);
}

static void assert_dead(cltcp_id id) {
  int alive = 5;
  ck_assert_int_eq(cltcp_id_alive(&alive, id), 0);
  ck_assert_msg(alive == 0, "id %#llx is alive", (unsigned long long)id);
}

static void assert_alive(cltcp_id id) {
  int alive = 5;
  ck_assert_int_eq(cltcp_id_alive(&alive, id), 0);
  ck_assert_msg(alive == 1, "id %#llx is not alive", (unsigned long long)id);
}

START_TEST(id_zero) {
  cltcp_id loop = new_loop();
  ck_assert_int_eq(cltcp_id_kind(0), CLTCP_KIND_NONE);
  assert_dead(0);
  socket_calls_return(0, CLTCP_ECLOSED);
  server_calls_return(0, CLTCP_ECLOSED);
  ASSERT_CODE(cltcp_timer_close(0), CLTCP_ECLOSED);
  loop_calls_return(0, CLTCP_ECLOSED);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
}
END_TEST

START_TEST(made_up_ids) {
  cltcp_id loop = new_loop(), sock = 0, timer = 0, server = 0;
  size_t i, n = 0;
  ck_assert_int_eq(cltcp_socket_new(&sock, loop, rec_cb, 1), 0);
  track(sock);
  ck_assert_int_eq(cltcp_timer_start(&timer, loop, 60, 0, rec_cb, 2), 0);
  track(timer);
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 3, rec_cb, 4),
                   0);
  track(server);
  {
    /* Ids that name no handle but carry the right kind (a live id of the
     * same kind with other bits changed): the header's "made-up id", so
     * CLTCP_ECLOSED, exactly. */
    cltcp_id fake_sock[] = {sock ^ 1, sock ^ 0x800000ull, sock + 3,
                            sock ^ (1ull << 40)};
    cltcp_id fake_timer[] = {timer ^ 1, timer ^ 0x800000ull, timer + 3};
    cltcp_id fake_server[] = {server ^ 1, server ^ 0x800000ull, server + 3};
    cltcp_id fake_loop[] = {loop ^ 1, loop ^ (1ull << 40), loop + 3};
    for (i = 0; i < sizeof fake_sock / sizeof fake_sock[0]; i++) {
      if (cltcp_id_kind(fake_sock[i]) != CLTCP_KIND_SOCKET) continue;
      assert_dead(fake_sock[i]);
      socket_calls_return(fake_sock[i], CLTCP_ECLOSED);
      n++;
    }
    for (i = 0; i < sizeof fake_timer / sizeof fake_timer[0]; i++) {
      if (cltcp_id_kind(fake_timer[i]) != CLTCP_KIND_TIMER) continue;
      assert_dead(fake_timer[i]);
      ASSERT_CODE(cltcp_timer_close(fake_timer[i]), CLTCP_ECLOSED);
      n++;
    }
    for (i = 0; i < sizeof fake_server / sizeof fake_server[0]; i++) {
      if (cltcp_id_kind(fake_server[i]) != CLTCP_KIND_SERVER) continue;
      assert_dead(fake_server[i]);
      server_calls_return(fake_server[i], CLTCP_ECLOSED);
      n++;
    }
    for (i = 0; i < sizeof fake_loop / sizeof fake_loop[0]; i++) {
      if (cltcp_id_kind(fake_loop[i]) != CLTCP_KIND_LOOP) continue;
      assert_dead(fake_loop[i]);
      loop_calls_return(fake_loop[i], CLTCP_ECLOSED);
      n++;
    }
    ck_assert_uint_gt(n, 8);
  }
  {
    /* Plain numbers that are not ids of any kind the library makes. */
    cltcp_id junk[] = {1, 2, 0xdeadbeefull, 0x0fffffffffffffffull,
                       UINT64_MAX};
    for (i = 0; i < sizeof junk / sizeof junk[0]; i++) {
      int k = cltcp_id_kind(junk[i]);
      assert_dead(junk[i]);
      if (k != CLTCP_KIND_NONE) continue;
      socket_calls_return(junk[i], CLTCP_ECLOSED);
      server_calls_return(junk[i], CLTCP_ECLOSED);
      ASSERT_CODE(cltcp_timer_close(junk[i]), CLTCP_ECLOSED);
      loop_calls_return(junk[i], CLTCP_ECLOSED);
    }
  }
  /* None of that touched the real handles. */
  assert_alive(loop);
  assert_alive(sock);
  assert_alive(timer);
  assert_alive(server);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
  /* Owner closes: socket and server CLOSE status 0; timer_close documents
   * UV_ECANCELED. */
  ck_assert_str_eq(rec_seq(sock), "X");
  ck_assert_int_eq(rec_find(sock, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_int_eq(rec_find(sock, CLTCP_EV_CLOSE, 0)->ctx, 1);
  ck_assert_str_eq(rec_seq(server), "X");
  ck_assert_int_eq(rec_find(server, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_str_eq(rec_seq(timer), "X");
  assert_timer_owner_close_status(rec_find(timer, CLTCP_EV_CLOSE, 0)->status);
}
END_TEST

START_TEST(wrong_kind) {
  cltcp_id loop = new_loop(), sock = 0, timer = 0, server = 0;
  ck_assert_int_eq(cltcp_socket_new(&sock, loop, rec_cb, 1), 0);
  track(sock);
  ck_assert_int_eq(cltcp_timer_start(&timer, loop, 60, 0, rec_cb, 2), 0);
  track(timer);
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 3, rec_cb, 4),
                   0);
  track(server);
  ck_assert_int_eq(cltcp_id_kind(loop), CLTCP_KIND_LOOP);
  ck_assert_int_eq(cltcp_id_kind(sock), CLTCP_KIND_SOCKET);
  ck_assert_int_eq(cltcp_id_kind(timer), CLTCP_KIND_TIMER);
  ck_assert_int_eq(cltcp_id_kind(server), CLTCP_KIND_SERVER);
  ck_assert_int_ne(sock, timer);
  ck_assert_int_ne(sock, server);
  ck_assert_int_ne(sock, loop);

  socket_calls_return(loop, CLTCP_EKIND);
  socket_calls_return(timer, CLTCP_EKIND);
  socket_calls_return(server, CLTCP_EKIND);
  server_calls_return(loop, CLTCP_EKIND);
  server_calls_return(sock, CLTCP_EKIND);
  server_calls_return(timer, CLTCP_EKIND);
  ASSERT_CODE(cltcp_timer_close(loop), CLTCP_EKIND);
  ASSERT_CODE(cltcp_timer_close(sock), CLTCP_EKIND);
  ASSERT_CODE(cltcp_timer_close(server), CLTCP_EKIND);
  loop_calls_return(sock, CLTCP_EKIND);
  loop_calls_return(timer, CLTCP_EKIND);
  loop_calls_return(server, CLTCP_EKIND);

  assert_alive(loop);
  assert_alive(sock);
  assert_alive(timer);
  assert_alive(server);
  {
    size_t n = 0;
    ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
    ck_assert_uint_eq(n, 3);
  }
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
}
END_TEST

START_TEST(stale_after_close) {
  cltcp_id loop = new_loop(), sock = 0, timer = 0, server = 0;
  size_t n = 0;
  ck_assert_int_eq(cltcp_socket_new(&sock, loop, rec_cb, 1), 0);
  track(sock);
  ck_assert_int_eq(cltcp_timer_start(&timer, loop, 60, 0, rec_cb, 2), 0);
  track(timer);
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 3, rec_cb, 4),
                   0);
  track(server);

  ck_assert_int_eq(cltcp_socket_close(sock, CLTCP_CLOSE_NOW), 0);
  ck_assert_int_eq(cltcp_timer_close(timer), 0);
  ck_assert_int_eq(cltcp_server_close(server), 0);
  /* The ids die at once, before the CLOSE events... */
  assert_dead(sock);
  assert_dead(timer);
  assert_dead(server);
  read_calls_may_succeed = 1;
  socket_calls_return(sock, CLTCP_ECLOSED);
  read_calls_may_succeed = 0;
  ASSERT_CODE(cltcp_timer_close(timer), CLTCP_ECLOSED);
  server_calls_return(server, CLTCP_ECLOSED);
  /* ...which never come from inside the close call. */
  ck_assert_uint_eq(rec_count(), 0);
  /* Closing handles still count until their CLOSE. */
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_le(n, 3);

  wait_ev(loop, sock, CLTCP_EV_CLOSE, 1, 5);
  wait_ev(loop, timer, CLTCP_EV_CLOSE, 1, 5);
  wait_ev(loop, server, CLTCP_EV_CLOSE, 1, 5);
  ck_assert_int_eq(rec_find(sock, CLTCP_EV_CLOSE, 0)->status, 0);
  ck_assert_int_eq(rec_find(server, CLTCP_EV_CLOSE, 0)->status, 0);
  assert_timer_owner_close_status(rec_find(timer, CLTCP_EV_CLOSE, 0)->status);
  ck_assert_int_eq(rec_find(sock, CLTCP_EV_CLOSE, 0)->ctx, 1);
  ck_assert_int_eq(rec_find(timer, CLTCP_EV_CLOSE, 0)->ctx, 2);
  ck_assert_int_eq(rec_find(server, CLTCP_EV_CLOSE, 0)->ctx, 3);
  /* And after them. */
  socket_calls_return(sock, CLTCP_ECLOSED);
  ASSERT_CODE(cltcp_timer_close(timer), CLTCP_ECLOSED);
  server_calls_return(server, CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(rec_count(), 3);
  finish_loop(loop);
}
END_TEST

#define NREUSE 200

START_TEST(stale_after_slot_reuse) {
  cltcp_id loop = new_loop();
  cltcp_id *old_s = calloc(NREUSE, sizeof *old_s);
  cltcp_id *old_t = calloc(NREUSE, sizeof *old_t);
  cltcp_id *new_s = calloc(NREUSE, sizeof *new_s);
  cltcp_id *new_t = calloc(NREUSE, sizeof *new_t);
  size_t i, j, n = 0;
  for (i = 0; i < NREUSE; i++) {
    ck_assert_int_eq(cltcp_socket_new(&old_s[i], loop, rec_cb, 10), 0);
    ck_assert_int_eq(cltcp_timer_start(&old_t[i], loop, 60, 0, rec_cb, 11),
                     0);
    track(old_s[i]);
    track(old_t[i]);
  }
  for (i = 0; i < NREUSE; i++) {
    ck_assert_int_eq(cltcp_socket_close(old_s[i], CLTCP_CLOSE_NOW), 0);
    ck_assert_int_eq(cltcp_timer_close(old_t[i]), 0);
  }
  for (i = 0; i < NREUSE; i++) {
    wait_ev(loop, old_s[i], CLTCP_EV_CLOSE, 1, 5);
    wait_ev(loop, old_t[i], CLTCP_EV_CLOSE, 1, 5);
  }
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 0);
  /* New handles, of both kinds crossed over, land in the freed slots. */
  for (i = 0; i < NREUSE; i++) {
    ck_assert_int_eq(cltcp_timer_start(&new_t[i], loop, 60, 0, rec_cb, 21),
                     0);
    ck_assert_int_eq(cltcp_socket_new(&new_s[i], loop, rec_cb, 20), 0);
    track(new_s[i]);
    track(new_t[i]);
  }
  for (i = 0; i < NREUSE; i++)
    for (j = 0; j < NREUSE; j++) {
      ck_assert_int_ne(new_s[i], old_s[j]);
      ck_assert_int_ne(new_t[i], old_t[j]);
    }
  /* Every old id is stale: exact ECLOSED, and no effect on the new ones. */
  for (i = 0; i < NREUSE; i++) {
    assert_dead(old_s[i]);
    assert_dead(old_t[i]);
    ASSERT_CODE(cltcp_socket_close(old_s[i], CLTCP_CLOSE_NOW), CLTCP_ECLOSED);
    ASSERT_CODE(cltcp_socket_write(old_s[i], (const uint8_t *)"x", 1, 0),
                CLTCP_ECLOSED);
    ASSERT_CODE(cltcp_socket_set_cb(old_s[i], rec_cb, 99), CLTCP_ECLOSED);
    ASSERT_CODE(cltcp_timer_close(old_t[i]), CLTCP_ECLOSED);
  }
  socket_calls_return(old_s[0], CLTCP_ECLOSED);
  for (i = 0; i < NREUSE; i++) {
    assert_alive(new_s[i]);
    assert_alive(new_t[i]);
  }
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 2 * NREUSE);
  run_for(loop, 0.05);
  /* Only the 2 * NREUSE CLOSE events of the old handles so far. */
  ck_assert_uint_eq(rec_count(), 2 * NREUSE);
  finish_loop(loop);
  for (i = 0; i < NREUSE; i++) {
    ck_assert_str_eq(rec_seq(new_s[i]), "X");
    ck_assert_int_eq(rec_find(new_s[i], CLTCP_EV_CLOSE, 0)->ctx, 20);
    ck_assert_str_eq(rec_seq(old_s[i]), "X");
    ck_assert_int_eq(rec_find(old_s[i], CLTCP_EV_CLOSE, 0)->ctx, 10);
  }
  free(old_s);
  free(old_t);
  free(new_s);
  free(new_t);
}
END_TEST

START_TEST(double_close) {
  cltcp_id loop = new_loop(), sock = 0, timer = 0, server = 0;
  ck_assert_int_eq(cltcp_socket_new(&sock, loop, rec_cb, 1), 0);
  track(sock);
  ck_assert_int_eq(cltcp_timer_start(&timer, loop, 60, 1, rec_cb, 2), 0);
  track(timer);
  ck_assert_int_eq(cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1,
                                       rec_cb, 3, rec_cb, 4),
                   0);
  track(server);
  ck_assert_int_eq(cltcp_socket_close(sock, CLTCP_CLOSE_FLUSH), 0);
  ASSERT_CODE(cltcp_socket_close(sock, CLTCP_CLOSE_NOW), CLTCP_ECLOSED);
  ASSERT_CODE(cltcp_socket_close(sock, CLTCP_CLOSE_FLUSH), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_timer_close(timer), 0);
  ASSERT_CODE(cltcp_timer_close(timer), CLTCP_ECLOSED);
  ck_assert_int_eq(cltcp_server_close(server), 0);
  ASSERT_CODE(cltcp_server_close(server), CLTCP_ECLOSED);
  finish_loop(loop);
  ck_assert_str_eq(rec_seq(sock), "X");
  ck_assert_str_eq(rec_seq(timer), "X");
  ck_assert_str_eq(rec_seq(server), "X");
  ck_assert_uint_eq(rec_count(), 3);
}
END_TEST

START_TEST(bad_close_mode) {
  cltcp_id loop = new_loop(), sock = 0;
  ck_assert_int_eq(cltcp_socket_new(&sock, loop, rec_cb, 1), 0);
  track(sock);
  ASSERT_CODE(cltcp_socket_close(sock, 7), UV_EINVAL);
  ASSERT_CODE(cltcp_socket_close(sock, -1), UV_EINVAL);
  assert_alive(sock);
  run_for(loop, 0.02);
  ck_assert_uint_eq(rec_count(), 0);
  finish_loop(loop);
  ck_assert_str_eq(rec_seq(sock), "X");
}
END_TEST

START_TEST(loop_ids) {
  cltcp_id a = new_loop(), b = 0, c = 0, sock = 0, timer = 0;
  ck_assert_int_eq(cltcp_loop_new(&b), 0);
  ck_assert_int_ne(a, b);
  ck_assert_int_ne(b, 0);
  assert_alive(a);
  assert_alive(b);
  ck_assert_int_eq(cltcp_socket_new(&sock, b, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_timer_start(&timer, b, 60, 0, rec_cb, 2), 0);
  ck_assert_int_eq(cltcp_loop_close(b), 0);
  assert_dead(b);
  assert_dead(sock);
  assert_dead(timer);
  /* Teardown delivered exactly one CLOSE (UV_ECANCELED) to each. */
  ck_assert_str_eq(rec_seq(sock), "X");
  ck_assert_str_eq(rec_seq(timer), "X");
  ck_assert_int_eq(rec_find(sock, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  ck_assert_int_eq(rec_find(timer, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  loop_calls_return(b, CLTCP_ECLOSED);
  socket_calls_return(sock, CLTCP_ECLOSED);
  ASSERT_CODE(cltcp_timer_close(timer), CLTCP_ECLOSED);
  /* A new loop may reuse b's slot; b stays dead and c is unaffected. */
  ck_assert_int_eq(cltcp_loop_new(&c), 0);
  ck_assert_int_ne(c, b);
  assert_dead(b);
  assert_alive(c);
  ASSERT_CODE(cltcp_loop_close(b), CLTCP_ECLOSED);
  assert_alive(c);
  ck_assert_int_eq(cltcp_loop_close(c), 0);
  assert_alive(a);
  ck_assert_uint_eq(rec_count(), 2);
  finish_loop(a);
  assert_dead(a);
}
END_TEST

START_TEST(alive_never_fails) {
  cltcp_id vals[] = {0, 1, UINT64_MAX, 0x1000000000000000ull,
                     0x2000000000000001ull, 0x5000000000000001ull,
                     0xf000000000000000ull};
  size_t i;
  for (i = 0; i < sizeof vals / sizeof vals[0]; i++) assert_dead(vals[i]);
}
END_TEST


/* ---- forged kinds, dead loops, threads ---------------------------------- */

/* The kind field of an id: bits 61..59 (capi/src/internal.h). */
#define KIND_BITS (7ull << 59)

static cltcp_id with_kind(cltcp_id id, int kind) {
  return (id & ~KIND_BITS) | ((cltcp_id)kind << 59);
}

static int dns_calls, dns_last_status;
static cltcp_id dns_last_req;

static void ids_dns_cb(uintptr_t ctx, cltcp_id req, int status,
                       const cltcp_addr *addrs, size_t n) {
  (void)ctx;
  (void)addrs;
  (void)n;
  dns_calls++;
  dns_last_status = status;
  dns_last_req = req;
}

static bool pred_dns_done(void *arg) { return dns_calls >= *(int *)arg; }

/* Every call of the given kind, with `id', returns `code'. */
static void kind_calls_return(int kind, cltcp_id id, int code) {
  switch (kind) {
    case CLTCP_KIND_LOOP: {
      cltcp_id req = 0;
      loop_calls_return(id, code);
      ASSERT_CODE(cltcp_loop_set_wakeup(id, 1.0), code);
      ASSERT_CODE(cltcp_loop_set_dns_timeout(id, 1.0, 1), code);
      ASSERT_CODE(cltcp_loop_set_dns_servers(id, "127.0.0.1:1"), code);
      ASSERT_CODE(cltcp_dns_lookup(&req, id, "127.0.0.1", CLTCP_AF_UNSPEC,
                                   ids_dns_cb, 1),
                  code);
      break;
    }
    case CLTCP_KIND_SOCKET:
      socket_calls_return(id, code);
      break;
    case CLTCP_KIND_SERVER:
      server_calls_return(id, code);
      break;
    case CLTCP_KIND_TIMER:
      ASSERT_CODE(cltcp_timer_close(id), code);
      break;
    case CLTCP_KIND_DNS:
      ASSERT_CODE(cltcp_dns_cancel(id), code);
      break;
    case CLTCP_KIND_SIGNAL: {
      int signum = 0;
      ASSERT_CODE(cltcp_signal_signum(&signum, id), code);
      ASSERT_CODE(cltcp_signal_close(id), code);
      break;
    }
    case CLTCP_KIND_ASYNC:
      ASSERT_CODE(cltcp_async_send(id), code);
      ASSERT_CODE(cltcp_async_close(id), code);
      break;
    default:
      ck_abort_msg("no calls for kind %d", kind);
  }
}

/* A live handle of every kind; its id with the kind bits rewritten to every
 * other kind names nothing (CLTCP_ECLOSED) and never reaches the handle:
 * before the slot stored its kind, a server id relabelled SOCKET was
 * accepted by the socket calls, which read past the server's memory.  The
 * real id given to the calls of another kind gives CLTCP_EKIND. */
START_TEST(forged_kinds) {
  cltcp_id loop = new_loop(), h[CLTCP_KIND_LAST + 1] = {0};
  int r, c, want_dns = 1;
  size_t n = 0, forged = 0;
  dns_calls = 0;
  h[CLTCP_KIND_LOOP] = loop;
  ck_assert_int_eq(cltcp_socket_new(&h[CLTCP_KIND_SOCKET], loop, rec_cb, 1),
                   0);
  ck_assert_int_eq(cltcp_server_listen(&h[CLTCP_KIND_SERVER], loop,
                                       "127.0.0.1", 0, -1, rec_cb, 2, rec_cb,
                                       3),
                   0);
  ck_assert_int_eq(
      cltcp_timer_start(&h[CLTCP_KIND_TIMER], loop, 60, 0, rec_cb, 4), 0);
  /* A lookup of a numeric address is answered on the next turn, so the
   * request is live until the loop runs. */
  ck_assert_int_eq(cltcp_dns_lookup(&h[CLTCP_KIND_DNS], loop, "127.0.0.1",
                                    CLTCP_AF_UNSPEC, ids_dns_cb, 5),
                   0);
  ck_assert_int_eq(
      cltcp_signal_start(&h[CLTCP_KIND_SIGNAL], loop, SIGUSR1, rec_cb, 6), 0);
  ck_assert_int_eq(cltcp_async_new(&h[CLTCP_KIND_ASYNC], loop, rec_cb, 7), 0);
  for (r = CLTCP_KIND_SOCKET; r <= CLTCP_KIND_LAST; r++)
    if (r != CLTCP_KIND_DNS) track(h[r]);
  for (r = CLTCP_KIND_LOOP; r <= CLTCP_KIND_LAST; r++) {
    ck_assert_int_eq(cltcp_id_kind(h[r]), r);
    assert_alive(h[r]);
    /* Kinds 0..7: every value the field can hold (7 is CLTCP_KIND_LAST). */
    for (c = 0; c <= 7; c++) {
      cltcp_id f = with_kind(h[r], c);
      if (c == r) continue;
      ck_assert_uint_lt(f, 1ull << 62);
      assert_dead(f);
      if (c == CLTCP_KIND_NONE) {
        for (int k = CLTCP_KIND_LOOP; k <= CLTCP_KIND_LAST; k++)
          kind_calls_return(k, f, CLTCP_ECLOSED);
      } else {
        kind_calls_return(c, f, CLTCP_ECLOSED);
        kind_calls_return(c, h[r], CLTCP_EKIND);
      }
      forged++;
    }
  }
  ck_assert_uint_eq(forged, 7 * 7);
  /* Nothing reached a handle: all alive, no event, no callback. */
  for (r = CLTCP_KIND_LOOP; r <= CLTCP_KIND_LAST; r++) assert_alive(h[r]);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, loop), 0);
  ck_assert_uint_eq(n, 6);
  ck_assert_uint_eq(rec_count(), 0);
  ck_assert_int_eq(dns_calls, 0);
  run_until(loop, pred_dns_done, &want_dns, 10);
  ck_assert_int_eq(dns_calls, 1);
  ck_assert_int_eq(dns_last_status, 0);
  ck_assert_uint_eq(dns_last_req, h[CLTCP_KIND_DNS]);
  finish_loop(loop);
  ck_assert_str_eq(rec_seq(h[CLTCP_KIND_SOCKET]), "X");
  ck_assert_str_eq(rec_seq(h[CLTCP_KIND_SERVER]), "X");
  ck_assert_str_eq(rec_seq(h[CLTCP_KIND_TIMER]), "X");
  ck_assert_str_eq(rec_seq(h[CLTCP_KIND_SIGNAL]), "X");
  ck_assert_str_eq(rec_seq(h[CLTCP_KIND_ASYNC]), "X");
}
END_TEST

static int cmp_id(const void *a, const void *b) {
  cltcp_id x = *(const cltcp_id *)a, y = *(const cltcp_id *)b;
  return x < y ? -1 : x > y;
}

static bool pred_closed(void *arg) {
  return rec_count_ev(*(cltcp_id *)arg, CLTCP_EV_CLOSE) == 1;
}

/* The loop index of a loop id (bits 58..48, capi/src/internal.h). */
static unsigned loop_index(cltcp_id id) { return (unsigned)(id >> 48) & 0x7FF; }

#define UROUNDS 30
#define UPER 8 /* ids kept per round */

/* Loop A, socket sa, close A; loop B takes A's index, socket sb: sa and sb
 * must differ and sa must stay dead.  Before, B's slots started at
 * generation 1 again, so sb == sa and cltcp_socket_close(sa) closed B's
 * socket.  Then many loops on one index, each reusing its slots, give ids
 * that are all distinct. */
START_TEST(ids_unique_across_loops) {
  cltcp_id keep = new_loop(), a = 0, b = 0, sa = 0, sb = 0, ta = 0, tb = 0;
  cltcp_id *all = calloc(UROUNDS * UPER + 4, sizeof *all);
  size_t nall = 0, i, n = 0;
  int round;
  ck_assert_ptr_nonnull(all);
  ck_assert_int_eq(cltcp_loop_new(&a), 0);
  ck_assert_int_eq(cltcp_socket_new(&sa, a, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_timer_start(&ta, a, 60, 0, rec_cb, 1), 0);
  ck_assert_int_eq(cltcp_loop_close(a), 0);
  ck_assert_int_eq(rec_find(sa, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  ck_assert_int_eq(cltcp_loop_new(&b), 0);
  /* The lowest free index is reused: the case that aliased. */
  ck_assert_uint_eq(loop_index(b), loop_index(a));
  ck_assert_uint_ne(b, a);
  ck_assert_int_eq(cltcp_socket_new(&sb, b, rec_cb, 2), 0);
  ck_assert_int_eq(cltcp_timer_start(&tb, b, 60, 0, rec_cb, 2), 0);
  ck_assert_uint_ne(sb, sa);
  ck_assert_uint_ne(tb, ta);
  assert_dead(sa);
  assert_dead(ta);
  assert_dead(a);
  ASSERT_CODE(cltcp_socket_close(sa, CLTCP_CLOSE_NOW), CLTCP_ECLOSED);
  ASSERT_CODE(cltcp_socket_write(sa, (const uint8_t *)"x", 1, 0),
              CLTCP_ECLOSED);
  ASSERT_CODE(cltcp_timer_close(ta), CLTCP_ECLOSED);
  socket_calls_return(sa, CLTCP_ECLOSED);
  loop_calls_return(a, CLTCP_ECLOSED);
  assert_alive(sb);
  assert_alive(tb);
  run_for(b, 0.02);
  ck_assert_uint_eq(rec_count_ev(sb, 0), 0);
  ck_assert_uint_eq(rec_count_ev(tb, 0), 0);
  ck_assert_int_eq(cltcp_loop_close(b), 0);
  ck_assert_str_eq(rec_seq(sb), "X");
  ck_assert_int_eq(rec_find(sb, CLTCP_EV_CLOSE, 0)->status, UV_ECANCELED);
  ck_assert_int_eq(rec_find(sb, CLTCP_EV_CLOSE, 0)->ctx, 2);
  all[nall++] = a;
  all[nall++] = sa;
  all[nall++] = b;
  all[nall++] = sb;

  for (round = 0; round < UROUNDS; round++) {
    cltcp_id l = 0, s = 0, t = 0;
    int j;
    ck_assert_int_eq(cltcp_loop_new(&l), 0);
    ck_assert_uint_eq(loop_index(l), loop_index(a));
    all[nall++] = l;
    /* Slot reuse inside the loop moves its generations on... */
    for (j = 0; j < 3; j++) {
      ck_assert_int_eq(cltcp_socket_new(&s, l, rec_cb, 3), 0);
      ck_assert_int_eq(cltcp_socket_close(s, CLTCP_CLOSE_NOW), 0);
      run_until(l, pred_closed, &s, 5);
      all[nall++] = s;
    }
    ck_assert_int_eq(cltcp_timer_start(&t, l, 60, 0, rec_cb, 3), 0);
    all[nall++] = t;
    for (j = 0; j < UPER - 5; j++) {
      ck_assert_int_eq(cltcp_socket_new(&s, l, rec_cb, 3), 0);
      all[nall++] = s;
    }
    /* ...and the loop closes with handles live. */
    ck_assert_int_eq(cltcp_loop_close(l), 0);
  }
  ck_assert_uint_eq(nall, UROUNDS * UPER + 4);
  for (i = 0; i < nall; i++) {
    ck_assert_uint_ne(all[i], 0);
    ck_assert_uint_lt(all[i], 1ull << 62);
    assert_dead(all[i]);
  }
  qsort(all, nall, sizeof *all, cmp_id);
  for (i = 1; i < nall; i++)
    ck_assert_msg(all[i] != all[i - 1], "id %#llx issued twice",
                  (unsigned long long)all[i]);
  for (i = 0; i < nall; i++) {
    switch (cltcp_id_kind(all[i])) {
      case CLTCP_KIND_SOCKET:
        ASSERT_CODE(cltcp_socket_close(all[i], CLTCP_CLOSE_NOW),
                    CLTCP_ECLOSED);
        break;
      case CLTCP_KIND_TIMER:
        ASSERT_CODE(cltcp_timer_close(all[i]), CLTCP_ECLOSED);
        break;
      case CLTCP_KIND_LOOP:
        ASSERT_CODE(cltcp_loop_stop(all[i]), CLTCP_ECLOSED);
        break;
      default:
        ck_abort_msg("unexpected kind of %#llx", (unsigned long long)all[i]);
    }
  }
  free(all);
  ck_assert_int_eq(cltcp_loop_handle_count(&n, keep), 0);
  ck_assert_uint_eq(n, 0);
  finish_loop(keep);
}
END_TEST

/* Two threads: one creates loops with handles and closes them, over and
 * over; after closing a loop it makes the next one (on the same index) and
 * only then hands the closed loop's ids to the other thread, and waits
 * until that thread has called the library with them before it goes on.
 * Every such call must give CLTCP_ECLOSED and read no memory of any loop:
 * the header allows ids of closed loops on any thread.  Under
 * ThreadSanitizer (run-tests builds this suite with it) a read of the loop
 * table or of a live loop's memory that races with the first thread is
 * reported even when it happens to return the right code. */
#define TLOOPS 100

static struct {
  pthread_mutex_t mu;
  cltcp_id ids[3]; /* a closed loop, its socket, its timer */
  size_t seq;      /* bumped with each new set of ids */
  atomic_size_t seen; /* the last seq the user thread finished calls with */
  atomic_bool done;
  size_t creator_errors;
  size_t calls, bad_calls, alive_seen, rounds;
  int bad_code;
} xt = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void quiet_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                     cltcp_id other, const uint8_t *data, size_t len) {
  (void)ctx; (void)id; (void)event; (void)status; (void)other; (void)data;
  (void)len;
}

static int make_loop(cltcp_id ids[3]) {
  int alive = 0;
  if (cltcp_loop_new(&ids[0]) != 0 ||
      cltcp_socket_new(&ids[1], ids[0], quiet_cb, 0) != 0 ||
      cltcp_timer_start(&ids[2], ids[0], 60, 0, quiet_cb, 0) != 0 ||
      cltcp_loop_run(&alive, ids[0], CLTCP_RUN_NOWAIT) != 0)
    return -1;
  return 0;
}

static void *creator(void *arg) {
  cltcp_id cur[3], prev[3];
  size_t i;
  (void)arg;
  if (make_loop(cur) != 0) {
    xt.creator_errors++;
    goto out;
  }
  for (i = 1; i <= TLOOPS; i++) {
    memcpy(prev, cur, sizeof cur);
    if (cltcp_loop_close(prev[0]) != 0 || make_loop(cur) != 0) {
      xt.creator_errors++;
      goto out;
    }
    pthread_mutex_lock(&xt.mu);
    memcpy(xt.ids, prev, sizeof prev);
    xt.seq = i;
    pthread_mutex_unlock(&xt.mu);
    /* The other thread uses prev while cur, on prev's index, is live and
     * changing: its handle table is written (and a loop is created and
     * closed on another index) all the while.  A handshake, not a sleep:
     * the test's timeout bounds it. */
    while (atomic_load(&xt.seen) < i) {
      cltcp_id x = 0, other = 0;
      int alive = 0;
      if (cltcp_socket_new(&x, cur[0], quiet_cb, 0) != 0 ||
          cltcp_socket_close(x, CLTCP_CLOSE_NOW) != 0 ||
          cltcp_loop_run(&alive, cur[0], CLTCP_RUN_NOWAIT) != 0 ||
          cltcp_loop_new(&other) != 0 || cltcp_loop_close(other) != 0) {
        xt.creator_errors++;
        goto out;
      }
      sched_yield(); /* valgrind runs one thread at a time */
    }
  }
  if (cltcp_loop_close(cur[0]) != 0) xt.creator_errors++;
out:
  atomic_store(&xt.done, true);
  return NULL;
}

static void stale_call(int rc) {
  xt.calls++;
  if (rc != CLTCP_ECLOSED) {
    xt.bad_calls++;
    xt.bad_code = rc;
  }
}

static void *stale_user(void *arg) {
  (void)arg;
  while (!atomic_load(&xt.done)) {
    cltcp_id l, s, t;
    uint64_t ms;
    size_t n, seq;
    int rd, wr, alive = 0;
    pthread_mutex_lock(&xt.mu);
    l = xt.ids[0];
    s = xt.ids[1];
    t = xt.ids[2];
    seq = xt.seq;
    pthread_mutex_unlock(&xt.mu);
    if (seq == 0 || atomic_load(&xt.seen) == seq) {
      sched_yield();
      continue;
    }
    stale_call(cltcp_socket_queued(&n, s));
    stale_call(cltcp_socket_enabled(&rd, &wr, s));
    stale_call(cltcp_socket_nodelay(s, 1));
    stale_call(cltcp_socket_close(s, CLTCP_CLOSE_NOW));
    stale_call(cltcp_timer_close(t));
    stale_call(cltcp_loop_now(&ms, l));
    stale_call(cltcp_loop_handle_count(&n, l));
    stale_call(cltcp_loop_stop(l));
    cltcp_id_alive(&alive, s);
    if (alive) xt.alive_seen++;
    cltcp_id_alive(&alive, t);
    if (alive) xt.alive_seen++;
    cltcp_id_alive(&alive, l);
    if (alive) xt.alive_seen++;
    xt.rounds++;
    atomic_store(&xt.seen, seq);
  }
  return NULL;
}

START_TEST(closed_loop_ids_from_another_thread) {
  pthread_t a, b;
  ck_assert_int_eq(pthread_create(&b, NULL, stale_user, NULL), 0);
  ck_assert_int_eq(pthread_create(&a, NULL, creator, NULL), 0);
  ck_assert_int_eq(pthread_join(a, NULL), 0);
  ck_assert_int_eq(pthread_join(b, NULL), 0);
  ck_assert_uint_eq(xt.creator_errors, 0);
  ck_assert_msg(xt.bad_calls == 0, "%zu of %zu calls with ids of closed "
                "loops did not return ECLOSED (last: %d %s)", xt.bad_calls,
                xt.calls, xt.bad_code, cltcp_err_name(xt.bad_code));
  ck_assert_uint_eq(xt.alive_seen, 0);
  /* One round of calls per closed loop, each while the next was live. */
  ck_assert_uint_eq(xt.rounds, TLOOPS);
  ck_assert_uint_eq(xt.calls, TLOOPS * 8);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("ids");
  TCase *tc = tcase_create("ids");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, id_zero);
  tcase_add_test(tc, made_up_ids);
  tcase_add_test(tc, wrong_kind);
  tcase_add_test(tc, stale_after_close);
  tcase_add_test(tc, stale_after_slot_reuse);
  tcase_add_test(tc, double_close);
  tcase_add_test(tc, bad_close_mode);
  tcase_add_test(tc, loop_ids);
  tcase_add_test(tc, alive_never_fails);
  tcase_add_test(tc, forged_kinds);
  tcase_add_test(tc, ids_unique_across_loops);
  tcase_add_test(tc, closed_loop_ids_from_another_thread);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
