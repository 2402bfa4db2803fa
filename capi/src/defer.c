/* defer.c -- the deferred-delivery queues of a loop: work queued for the
 * next turn (run by an idle handle, like libuv's pending queue) and work
 * queued for the end of the current turn (run by a check handle; write
 * coalescing).  A queue holds nodes embedded in their owner (DNS requests)
 * and items that name their owner by id (sockets: issue 12, a socket pays
 * for no node of its own); items come from a pool the loop keeps. */
#include "internal.h"

#include <stdlib.h>

/* Work for the handle `id' names, queued by id: it runs only if the id is
 * still alive when its turn comes (a stale id fails the lookup, so a dead
 * owner is skipped safely).  The owner keeps a "queued" bit of its own, to
 * queue once and to cancel by clearing it; the function checks the bit. */
typedef struct id_item {
  cltcp__deferred d;
  cltcp__loop *loop;
  cltcp_id id;
  cltcp__id_fn fn;
} id_item;

static void id_item_run(cltcp__deferred *d) {
  id_item *it = cltcp__container_of(d, id_item, d);
  cltcp__loop *loop = it->loop;
  cltcp_id id = it->id;
  cltcp__id_fn fn = it->fn;
  void *obj;
  /* Back to the pool first: the function may queue its owner again. */
  cltcp__queue_insert_head(&loop->spare_items, &it->d.q);
  if (cltcp__lookup(&obj, id, cltcp__id_kind(id)) == 0)
    fn(obj);
}

static id_item *item_take(cltcp__loop *loop) {
  cltcp__queue *q;
  if (cltcp__queue_empty(&loop->spare_items))
    return malloc(sizeof(id_item));
  q = loop->spare_items.next;
  cltcp__queue_remove(q);
  return cltcp__container_of(q, id_item, d.q);
}

int cltcp__defer_reserve(cltcp__loop *loop) {
  id_item *it;
  if (!cltcp__queue_empty(&loop->spare_items))
    return 0;
  it = malloc(sizeof(*it));
  if (it == NULL)
    return UV_ENOMEM;
  cltcp__queue_insert_head(&loop->spare_items, &it->d.q);
  return 0;
}

/* An item for fn(id's handle), not queued yet; NULL when out of memory. */
static id_item *item_make(cltcp__loop *loop, cltcp_id id, cltcp__id_fn fn) {
  id_item *it = item_take(loop);
  if (it == NULL)
    return NULL;
  cltcp__deferred_init(&it->d);
  it->loop = loop;
  it->id = id;
  it->fn = fn;
  return it;
}

/* Frees the items linked in `queue' (nodes of other owners stay). */
static void free_items(cltcp__queue *queue) {
  cltcp__queue *q, *next;
  for (q = queue->next; q != queue; q = next) {
    cltcp__deferred *d = cltcp__container_of(q, cltcp__deferred, q);
    next = q->next;
    if (d->fn == id_item_run) {
      cltcp__queue_remove(q);
      free(cltcp__container_of(d, id_item, d));
    }
  }
}

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

int cltcp__defer_id(cltcp__loop *loop, cltcp_id id, cltcp__id_fn fn) {
  id_item *it = item_make(loop, id, fn);
  if (it == NULL)
    return UV_ENOMEM;
  cltcp__defer(loop, &it->d, id_item_run);
  return 0;
}

int cltcp__at_turn_end_id(cltcp__loop *loop, cltcp_id id, cltcp__id_fn fn) {
  id_item *it = item_make(loop, id, fn);
  if (it == NULL)
    return UV_ENOMEM;
  enqueue(&loop->turn_end, &it->d, id_item_run);
  if (!uv_is_active((uv_handle_t *)&loop->turn_check))
    uv_check_start(&loop->turn_check, turn_check_cb);
  if (!uv_is_active((uv_handle_t *)&loop->idle))
    uv_idle_start(&loop->idle, idle_cb);
  return 0;
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
  cltcp__queue_init(&loop->spare_items);
}

void cltcp__defer_loop_close(cltcp__loop *loop) {
  uv_close((uv_handle_t *)&loop->idle, NULL);
  uv_close((uv_handle_t *)&loop->turn_check, NULL);
  /* Nothing runs any more: the items still queued (their owners were
   * closed by the teardown) and the pool go. */
  free_items(&loop->deferred);
  free_items(&loop->batch);
  free_items(&loop->turn_end);
  free_items(&loop->turn_batch);
  while (!cltcp__queue_empty(&loop->spare_items)) {
    cltcp__queue *q = loop->spare_items.next;
    cltcp__queue_remove(q);
    free(cltcp__container_of(q, id_item, d.q));
  }
}

void cltcp__defer_loop_recover(cltcp__loop *loop) {
  cltcp__queue_splice_head(&loop->deferred, &loop->batch);
  cltcp__queue_splice_head(&loop->turn_end, &loop->turn_batch);
}
