/*
 * test_ids.c -- integer ids: id 0, made-up ids, ids of the wrong kind, stale
 * ids after close and after their slot was reused, double close,
 * cltcp_id_alive() and cltcp_id_kind().  No id may crash the library or
 * touch another handle.
 */
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
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(suite()); }
