/* defer.c -- the deferred-delivery queues of a loop: work queued for the
 * next turn (run by an idle handle, like libuv's pending queue) and work
 * queued for the end of the current turn (run by a check handle; write
 * coalescing). */
#include "internal.h"

/* Runs every item of `batch' (taken from a queue before the first runs):
 * work queued by these callbacks waits for the next run. */
static void run_batch(cltcp__queue *batch) {
  while (!cltcp__queue_empty(batch)) {
    cltcp__deferred *d = cltcp__container_of(batch->next, cltcp__deferred, q);
    cltcp__queue_remove(&d->q);
    d->fn(d);
  }
}

static void idle_cb(uv_idle_t *idle) {
  cltcp__loop *loop = idle->data;
  /* Run only what was queued before this turn, like libuv's pending
   * queue.  The batch is in the loop, not on the stack: see `batch' in
   * internal.h. */
  cltcp__queue_init(&loop->batch);
  cltcp__queue_splice_head(&loop->batch, &loop->deferred);
  run_batch(&loop->batch);
  if (cltcp__queue_empty(&loop->deferred) &&
      cltcp__queue_empty(&loop->turn_end))
    uv_idle_stop(&loop->idle);
}

/* The end of a turn: runs what was queued for it until now.  Work queued
 * meanwhile (a FLUSHED callback that writes again) waits for the next turn,
 * whose poll phase `idle' keeps from blocking. */
static void turn_check_cb(uv_check_t *check) {
  cltcp__loop *loop = check->data;
  cltcp__queue_init(&loop->turn_batch);
  cltcp__queue_splice_head(&loop->turn_batch, &loop->turn_end);
  run_batch(&loop->turn_batch);
  if (cltcp__queue_empty(&loop->turn_end)) {
    uv_check_stop(&loop->turn_check);
    if (cltcp__queue_empty(&loop->deferred))
      uv_idle_stop(&loop->idle);
  }
}

/* Links d at the tail of `queue' unless it is queued already. */
static bool enqueue(cltcp__queue *queue, cltcp__deferred *d,
                    cltcp__deferred_fn fn) {
  if (cltcp__deferred_queued(d))
    return false;
  d->fn = fn;
  cltcp__queue_insert_tail(queue, &d->q);
  return true;
}

void cltcp__deferred_init(cltcp__deferred *d) {
  cltcp__queue_init(&d->q);
  d->fn = NULL;
}

void cltcp__defer(cltcp__loop *loop, cltcp__deferred *d,
                  cltcp__deferred_fn fn) {
  if (enqueue(&loop->deferred, d, fn) &&
      !uv_is_active((uv_handle_t *)&loop->idle))
    uv_idle_start(&loop->idle, idle_cb);
}

void cltcp__at_turn_end(cltcp__loop *loop, cltcp__deferred *d,
                        cltcp__deferred_fn fn) {
  if (!enqueue(&loop->turn_end, d, fn))
    return;
  if (!uv_is_active((uv_handle_t *)&loop->turn_check))
    uv_check_start(&loop->turn_check, turn_check_cb);
  if (!uv_is_active((uv_handle_t *)&loop->idle))
    uv_idle_start(&loop->idle, idle_cb);
}

void cltcp__undefer(cltcp__deferred *d) {
  cltcp__queue_remove(&d->q); /* a no-op for an unlinked node */
}

void cltcp__defer_loop_init(cltcp__loop *loop) {
  uv_idle_init(&loop->uv, &loop->idle);
  loop->idle.data = loop;
  cltcp__queue_init(&loop->deferred);
  cltcp__queue_init(&loop->batch);
  /* Unreferenced: the end-of-turn work never keeps a loop alive by itself
   * (`idle' does while work is queued). */
  uv_check_init(&loop->uv, &loop->turn_check);
  uv_unref((uv_handle_t *)&loop->turn_check);
  loop->turn_check.data = loop;
  cltcp__queue_init(&loop->turn_end);
  cltcp__queue_init(&loop->turn_batch);
}

void cltcp__defer_loop_close(cltcp__loop *loop) {
  uv_close((uv_handle_t *)&loop->idle, NULL);
  uv_close((uv_handle_t *)&loop->turn_check, NULL);
}

void cltcp__defer_loop_recover(cltcp__loop *loop) {
  cltcp__queue_splice_head(&loop->deferred, &loop->batch);
  cltcp__queue_splice_head(&loop->turn_end, &loop->turn_batch);
}
