/* loop.c -- the loop API (cltcp_loop_*): create, run, stop, close,
 * recover, wake-up, clock and count.  Deferred work is defer.c's, the
 * handles handle.c's, SIGPIPE sigpipe.c's. */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>

/* One read buffer per loop, shared by every drain-mode socket (and by
 * keep-mode sockets with nothing kept).  256 KiB rather than libuv's usual
 * 64 KiB: a bulk reader gets a quarter of the read calls and callbacks, and
 * a Lisp read-cb's fresh array is then large enough for SBCL to allocate it
 * on pages of its own, which it frees without copying.  Measured: Lisp bulk
 * echo 0.79x -> 0.95x raw libuv, alternating 1 GiB runs (see the bench
 * issue note). */
#define CLTCP__READBUF_SIZE (256 * 1024)

int cltcp_loop_new(cltcp_id *out) {
  cltcp__loop *loop;
  int rc;
  if (out == NULL)
    return UV_EINVAL;
  loop = calloc(1, sizeof(*loop));
  if (loop == NULL)
    return UV_ENOMEM;
  loop->readbuf = malloc(CLTCP__READBUF_SIZE);
  if (loop->readbuf == NULL) {
    free(loop);
    return UV_ENOMEM;
  }
  loop->readbuf_len = CLTCP__READBUF_SIZE;
  rc = uv_loop_init(&loop->uv);
  if (rc != 0) {
    free(loop->readbuf);
    free(loop);
    return rc;
  }
  loop->uv.data = loop;
  cltcp__defer_loop_init(loop);
  uv_timer_init(&loop->uv, &loop->wake);
  uv_unref((uv_handle_t *)&loop->wake);
  rc = cltcp__loop_register(loop);
  if (rc != 0) {
    cltcp__defer_loop_close(loop);
    uv_close((uv_handle_t *)&loop->wake, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    uv_loop_close(&loop->uv);
    free(loop->readbuf);
    free(loop);
    return rc;
  }
  *out = loop->id;
  return 0;
}

int cltcp_loop_run(int *alive, cltcp_id id, int mode) {
  cltcp__loop *loop;
  uv_run_mode m;
  sigset_t old;
  bool blocked;
  int rc = cltcp__loop_lookup(&loop, id);
  if (rc != 0)
    return rc;
  if (loop->entered)
    return CLTCP_EBUSY;
  switch (mode) {
  case CLTCP_RUN_DEFAULT:
    m = UV_RUN_DEFAULT;
    break;
  case CLTCP_RUN_ONCE:
    m = UV_RUN_ONCE;
    break;
  case CLTCP_RUN_NOWAIT:
    m = UV_RUN_NOWAIT;
    break;
  default:
    return UV_EINVAL;
  }
  loop->entered = true;
  blocked = cltcp__sigpipe_block(&old);
  loop->sig_old = old;
  loop->sig_blocked = blocked;
  uv_run(&loop->uv, m);
  loop->sig_blocked = false;
  cltcp__sigpipe_restore(&old, blocked);
  loop->entered = false;
  if (alive != NULL)
    *alive = uv_loop_alive(&loop->uv);
  return 0;
}

int cltcp_loop_stop(cltcp_id id) {
  cltcp__loop *loop;
  int rc = cltcp__loop_lookup(&loop, id);
  if (rc != 0)
    return rc;
  uv_stop(&loop->uv);
  return 0;
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int cltcp_loop_close(cltcp_id id) {
  cltcp__loop *loop;
  sigset_t old;
  bool blocked;
  int rc = cltcp__loop_lookup(&loop, id);
  if (rc != 0)
    return rc;
  if (loop->entered)
    return CLTCP_EBUSY;
  blocked = cltcp__sigpipe_block(&old);
  loop->tearing_down = true;
  loop->entered = true; /* the callbacks below run inside this call */
  cltcp__dns_loop_teardown(loop);
  cltcp__handles_teardown(loop);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  cltcp__defer_loop_close(loop);
  uv_close((uv_handle_t *)&loop->wake, NULL);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  cltcp__dns_loop_free(loop);
  if (uv_loop_close(&loop->uv) == UV_EBUSY) {
    /* Only a bug leaves handles here; close them rather than leak. */
    uv_walk(&loop->uv, walk_close, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    uv_loop_close(&loop->uv);
  }
  cltcp__sigpipe_restore(&old, blocked);
  cltcp__loop_unregister(loop);
  free(loop->slots);
  free(loop->readbuf);
  while (loop->nwbuf_spare > 0)
    free(loop->wbuf_spare[--loop->nwbuf_spare]);
  while (loop->nwbuf_small_spare > 0)
    free(loop->wbuf_small_spare[--loop->nwbuf_small_spare]);
  while (loop->nwriter_spare > 0)
    free(loop->writer_spare[--loop->nwriter_spare]);
  free(loop);
  return 0;
}

int cltcp_loop_recover(cltcp_id id) {
  cltcp__loop *loop;
  int rc = cltcp__loop_lookup(&loop, id);
  if (rc != 0)
    return rc;
  if (!loop->entered || loop->tearing_down)
    return 0;
  loop->entered = false;
  /* uv_run() resets the flag when it returns; it did not return. */
  loop->uv.stop_flag = 0;
#ifndef _WIN32
  /* The poll of the abandoned turn left the address of its (stack) event
   * array here, for uv__platform_invalidate_fd(), which closing a handle
   * calls and which would write through it. */
  if (loop->uv.watchers != NULL) {
    loop->uv.watchers[loop->uv.nwatchers] = NULL;
    loop->uv.watchers[loop->uv.nwatchers + 1] = NULL;
  }
#endif
  /* A keep-mode DATA callback left: what it had not read of the shared
   * buffer is kept, and the buffer is no longer lent. */
  cltcp__keep_recover(loop);
  /* Items of an abandoned batch go back to their queue, in order. */
  cltcp__defer_loop_recover(loop);
  cltcp__handles_recover(loop);
  if (loop->sig_blocked) {
    loop->sig_blocked = false;
    cltcp__sigpipe_restore(&loop->sig_old, true);
  }
  return 0;
}

static void wake_cb(uv_timer_t *t) {
  (void)t; /* its only job is to end the turn */
}

int cltcp_loop_set_wakeup(cltcp_id id, double seconds) {
  cltcp__loop *loop;
  uint64_t ms;
  int rc = cltcp__loop_lookup(&loop, id);
  if (rc != 0)
    return rc;
  ms = cltcp__seconds_to_ms(seconds);
  if (ms == 0) {
    uv_timer_stop(&loop->wake);
  } else {
    /* Counted from now, not from the loop's cached time (stale when this
     * is called outside a turn or after a long callback). */
    uv_update_time(&loop->uv);
    uv_timer_start(&loop->wake, wake_cb, ms, ms);
  }
  return 0;
}

int cltcp_loop_now(uint64_t *ms, cltcp_id id) {
  cltcp__loop *loop;
  int rc;
  if (ms == NULL)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, id);
  if (rc != 0)
    return rc;
  *ms = uv_now(&loop->uv);
  return 0;
}

int cltcp_loop_handle_count(size_t *count, cltcp_id id) {
  cltcp__loop *loop;
  int rc;
  if (count == NULL)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, id);
  if (rc != 0)
    return rc;
  *count = loop->live;
  return 0;
}
