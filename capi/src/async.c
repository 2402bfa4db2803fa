/* async.c -- async wake-up handles over libuv's uv_async_t.
 *
 * cltcp_async_send() is the one call that other threads may make, so it
 * cannot use the loop's handle table (which the loop's thread grows and
 * changes without a lock).  Async handles are also entered in a
 * process-wide table of their own, indexed by loop index and slot like
 * their ids, and guarded by one mutex: a send looks its id up and calls
 * uv_async_send() (itself thread safe) with the mutex held, and closing
 * removes the entry with the mutex held before uv_close() is even called.
 * So a send either finds the live handle and wakes it, or finds nothing
 * and returns CLTCP_ECLOSED; it can never reach a handle whose memory is
 * being freed.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct cltcp__async {
  cltcp__handle h;
  uv_async_t async;
} cltcp__async;

/* Per loop index: the live async handles by slot index. */
typedef struct async_table {
  cltcp__async **v;
  uint32_t cap;
  uint32_t used; /* non-NULL entries; v is freed when it drops to 0 */
} async_table;

static pthread_mutex_t async_mutex = PTHREAD_MUTEX_INITIALIZER;
static async_table tables[CLTCP__LOOP_MAX];

static int table_add(cltcp__async *a) {
  async_table *t = &tables[cltcp__id_loop(a->h.id)];
  uint32_t slot = cltcp__id_slot(a->h.id);
  int rc = 0;
  pthread_mutex_lock(&async_mutex);
  if (slot >= t->cap) {
    uint32_t cap = t->cap ? t->cap : 16, i;
    cltcp__async **n;
    while (cap <= slot)
      cap *= 2;
    n = realloc(t->v, cap * sizeof(*n));
    if (n == NULL) {
      rc = UV_ENOMEM;
      goto out;
    }
    for (i = t->cap; i < cap; i++)
      n[i] = NULL;
    t->v = n;
    t->cap = cap;
  }
  t->v[slot] = a;
  t->used++;
out:
  pthread_mutex_unlock(&async_mutex);
  return rc;
}

static void table_remove(cltcp__async *a) {
  async_table *t = &tables[cltcp__id_loop(a->h.id)];
  uint32_t slot = cltcp__id_slot(a->h.id);
  pthread_mutex_lock(&async_mutex);
  if (slot < t->cap && t->v[slot] == a) {
    t->v[slot] = NULL;
    if (--t->used == 0) {
      free(t->v);
      t->v = NULL;
      t->cap = 0;
    }
  }
  pthread_mutex_unlock(&async_mutex);
}

static void async_close(cltcp__async *a, int status) {
  if (!cltcp__handle_begin_close(&a->h, status))
    return;
  table_remove(a);
  uv_close((uv_handle_t *)&a->async, cltcp__handle_uv_closed);
}

static void async_teardown(cltcp__handle *h) {
  async_close((cltcp__async *)h, UV_ECANCELED);
}

static void async_cb(uv_async_t *uva) {
  cltcp__async *a = uva->data;
  if (a->h.closing)
    return;
  a->h.cb(a->h.ctx, a->h.id, CLTCP_EV_ASYNC, 0, 0, NULL, 0);
}

static void unused_closed(uv_handle_t *uvh) { free(uvh->data); }

static void async_recover(cltcp__handle *h) {
  cltcp__async *a = (cltcp__async *)h;
  void **w = a->async.queue;
  void **head = cltcp__handle_loop(h)->uv.async_handles;
  void **q;
  for (q = head[0]; q != head; q = q[0])
    if (q == w)
      return; /* on the loop's own list */
  /* uv__async_io() moves the handles to a list on its stack and puts each
   * back before calling it: this one was still there when a callback never
   * returned.  Closing unlinks it, so make it a list of its own first.  The
   * loop only tears down now. */
  w[0] = w[1] = (void *)w;
}

static unsigned async_uv_handles(cltcp__handle *h, uv_handle_t *out[]) {
  out[0] = (uv_handle_t *)&((cltcp__async *)h)->async;
  return 1;
}

static const cltcp__handle_kind async_kind = {
    async_teardown, async_recover, NULL, NULL, async_uv_handles};

int cltcp_async_new(cltcp_id *out, cltcp_id loop_id, cltcp_cb cb,
                    uintptr_t ctx) {
  cltcp__loop *loop;
  cltcp__async *a;
  int rc;
  if (out == NULL || cb == NULL)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  a = calloc(1, sizeof(*a));
  if (a == NULL)
    return UV_ENOMEM;
  rc = uv_async_init(&loop->uv, &a->async, async_cb);
  if (rc != 0) {
    free(a);
    return rc;
  }
  a->async.data = a;
  rc = cltcp__id_alloc(&a->h.id, loop, CLTCP_KIND_ASYNC, a);
  if (rc == 0) {
    rc = table_add(a);
    if (rc != 0)
      cltcp__id_free(loop, a->h.id);
  }
  if (rc != 0) {
    uv_close((uv_handle_t *)&a->async, unused_closed);
    return rc;
  }
  cltcp__handle_init(&a->h, CLTCP_KIND_ASYNC, &async_kind, cb, ctx);
  cltcp__handle_link(&a->h);
  *out = a->h.id;
  return 0;
}

int cltcp_async_send(cltcp_id id) {
  int k = cltcp__id_kind(id);
  uint32_t li = cltcp__id_loop(id), slot = cltcp__id_slot(id);
  async_table *t;
  int rc = CLTCP_ECLOSED;
  if (k != CLTCP_KIND_ASYNC)
    return (k == CLTCP_KIND_NONE || k > CLTCP_KIND_LAST) ? CLTCP_ECLOSED
                                                        : CLTCP_EKIND;
  if (li == 0 || li >= CLTCP__LOOP_MAX)
    return CLTCP_ECLOSED;
  t = &tables[li];
  pthread_mutex_lock(&async_mutex);
  if (slot < t->cap && t->v[slot] != NULL && t->v[slot]->h.id == id)
    rc = uv_async_send(&t->v[slot]->async);
  pthread_mutex_unlock(&async_mutex);
  return rc;
}

int cltcp_async_close(cltcp_id id) {
  cltcp__handle *h;
  int rc = cltcp__handle_lookup(&h, id, CLTCP_KIND_ASYNC, false);
  if (rc != 0)
    return rc;
  async_close((cltcp__async *)h, 0);
  return 0;
}
