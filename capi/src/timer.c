/* timer.c -- one-shot and repeating timers. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct cltcp__timer {
  cltcp__handle h;
  uv_timer_t timer;
  bool repeat;
} cltcp__timer;

static void timer_closed(uv_handle_t *uvh) {
  cltcp__timer *t = uvh->data;
  cltcp__loop *loop = t->h.loop;
  t->h.cb(t->h.ctx, t->h.id, CLTCP_EV_CLOSE, t->h.close_status, 0, NULL, 0);
  cltcp__id_free(loop, t->h.id);
  cltcp__handle_unlink(loop, &t->h);
  free(t);
}

static void timer_close(cltcp__timer *t, int status) {
  if (t->h.closing)
    return;
  t->h.closing = true;
  t->h.close_status = status;
  uv_close((uv_handle_t *)&t->timer, timer_closed);
}

static void timer_fired(uv_timer_t *uvt) {
  cltcp__timer *t = uvt->data;
  if (t->h.closing)
    return;
  t->h.cb(t->h.ctx, t->h.id, CLTCP_EV_TIMER, 0, 0, NULL, 0);
  if (!t->repeat)
    timer_close(t, 0);
}

int cltcp_timer_start(cltcp_id *out, cltcp_id loop_id, double seconds,
                      double repeat_seconds, cltcp_cb cb, uintptr_t ctx) {
  cltcp__loop *loop;
  cltcp__timer *t;
  uint64_t rep;
  int rc;
  if (out == NULL || cb == NULL || isnan(seconds) || isnan(repeat_seconds))
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  t = calloc(1, sizeof(*t));
  if (t == NULL)
    return UV_ENOMEM;
  rc = cltcp__id_alloc(&t->h.id, loop, CLTCP_KIND_TIMER, t);
  if (rc != 0) {
    free(t);
    return rc;
  }
  t->h.loop = loop;
  t->h.kind = CLTCP_KIND_TIMER;
  t->h.cb = cb;
  t->h.ctx = ctx;
  uv_timer_init(&loop->uv, &t->timer);
  t->timer.data = t;
  t->h.uvh[0] = (uv_handle_t *)&t->timer;
  rep = cltcp__seconds_to_ms(repeat_seconds);
  t->repeat = rep > 0;
  uv_timer_start(&t->timer, timer_fired, cltcp__seconds_to_ms(seconds), rep);
  cltcp__handle_link(loop, &t->h);
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

void cltcp__timer_teardown(cltcp__handle *h) {
  timer_close((cltcp__timer *)h, UV_ECANCELED);
}
