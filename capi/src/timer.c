/* timer.c -- one-shot and repeating timers. */
#include "internal.h"

#include <math.h> /* isnan(), a macro: no libm */
#include <stdlib.h>

/* A timer keeps its deadline on libuv's precise clock (uv_hrtime(), ns)
 * rather than trusting the loop's millisecond time: that time is cached
 * (stale after a long callback, or outside cltcp_loop_run()), truncated to
 * the millisecond and may come from a coarse clock, and a uv timer armed
 * against it can fire up to a few milliseconds early.  The uv timer only
 * wakes the loop; a firing before the deadline re-arms for the rest, so no
 * timer ever fires before its time by the wall clock. */
typedef struct cltcp__timer {
  cltcp__handle h;
  uv_timer_t timer;
  uint64_t due_ns;    /* uv_hrtime() from which it may fire */
  uint64_t repeat_ns; /* 0 = one-shot */
} cltcp__timer;

static void timer_fired(uv_timer_t *uvt);

/* Arms the uv timer for the time left until due_ns, in whole milliseconds
 * rounded up (at least min_ms), against a freshly updated loop time.  From
 * inside timer_fired() min_ms is 1: libuv (1.44) runs a timer due "now"
 * again in the same pass, so a timer re-armed for 0 ms from its own
 * callback would never let the loop poll. */
static void timer_arm(cltcp__timer *t, uint64_t now_ns, uint64_t min_ms) {
  /* The uv timer's deadline is due_ns rounded up to the millisecond on the
   * loop's own clock (uv_now() counts milliseconds of the same monotonic
   * clock as uv_hrtime(), and never runs ahead of it), rather than "now +
   * the time left": timers then wake in the order of their deadlines, so
   * two delays of the same time fire in the order they were made.  (Armed
   * as "time left" from a lagging loop time, the first could wake early,
   * re-arm, and go behind the second.) */
  uint64_t due_ms = (t->due_ns + 999999) / 1000000;
  uint64_t loop_ms, ms;
  (void)now_ns;
  uv_update_time(&cltcp__handle_loop(&t->h)->uv);
  loop_ms = uv_now(&cltcp__handle_loop(&t->h)->uv);
  ms = due_ms > loop_ms ? due_ms - loop_ms : 0;
  uv_timer_start(&t->timer, timer_fired, ms < min_ms ? min_ms : ms, 0);
}

/* Seconds to nanoseconds (cltcp__sanitize_seconds: NaN or <= 0 is 0). */
static uint64_t seconds_to_ns(double s) {
  s = cltcp__sanitize_seconds(s);
  return (uint64_t)(s * 1e9);
}

static void timer_close(cltcp__timer *t, int status) {
  if (cltcp__handle_begin_close(&t->h, status))
    uv_close((uv_handle_t *)&t->timer, cltcp__handle_uv_closed);
}

static void timer_teardown(cltcp__handle *h) {
  timer_close((cltcp__timer *)h, UV_ECANCELED);
}

static unsigned timer_uv_handles(cltcp__handle *h, uv_handle_t *out[]) {
  out[0] = (uv_handle_t *)&((cltcp__timer *)h)->timer;
  return 1;
}

static const cltcp__handle_kind timer_kind = {timer_teardown, NULL, NULL, NULL,
                                              timer_uv_handles};

static void timer_fired(uv_timer_t *uvt) {
  cltcp__timer *t = uvt->data;
  uint64_t n = uv_hrtime();
  if (t->h.closing)
    return;
  if (n < t->due_ns) {
    timer_arm(t, n, 1); /* woken early by the loop's clock: not yet */
    return;
  }
  /* Like libuv's repeat: the next period counts from this firing. */
  if (t->repeat_ns != 0)
    t->due_ns = n + t->repeat_ns;
  t->h.cb(t->h.ctx, t->h.id, CLTCP_EV_TIMER, 0, 0, NULL, 0);
  if (t->h.closing)
    return;
  if (t->repeat_ns == 0)
    timer_close(t, 0);
  else
    timer_arm(t, uv_hrtime(), 1);
}

int cltcp_timer_start(cltcp_id *out, cltcp_id loop_id, double seconds,
                      double repeat_seconds, cltcp_cb cb, uintptr_t ctx) {
  cltcp__loop *loop;
  cltcp__timer *t;
  uint64_t now_ns;
  int rc;
  if (out == NULL || cb == NULL || isnan(seconds) || isnan(repeat_seconds))
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  rc = cltcp__handle_new((cltcp__handle **)&t, sizeof(*t), loop,
                         CLTCP_KIND_TIMER, &timer_kind, cb, ctx);
  if (rc != 0)
    return rc;
  uv_timer_init(&loop->uv, &t->timer);
  t->timer.data = t;
  /* A positive repeat of less than a nanosecond still repeats. */
  t->repeat_ns = seconds_to_ns(repeat_seconds);
  if (t->repeat_ns == 0 && cltcp__sanitize_seconds(repeat_seconds) > 0)
    t->repeat_ns = 1;
  now_ns = uv_hrtime();
  t->due_ns = now_ns + seconds_to_ns(seconds);
  timer_arm(t, now_ns, 0);
  cltcp__handle_link(&t->h);
  *out = t->h.id;
  return 0;
}

int cltcp_timer_close(cltcp_id id) {
  cltcp__handle *h;
  int rc = cltcp__handle_lookup(&h, id, CLTCP_KIND_TIMER, false);
  if (rc != 0)
    return rc;
  timer_close((cltcp__timer *)h, 0);
  return 0;
}
