/* handle.c -- what every handle kind shares: the head's init, the loop's
 * list, the close tail, teardown and recovery of all handles through each
 * kind's cltcp__handle_kind, references (uv_ref/uv_unref over all the uv
 * handles a handle keeps) and the listing of a loop's handles
 * (cltcp_loop_handles(), cltcp_loop_kind_counts()). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Each kind's functions, stored by every handle made of the kind (the same
 * pointer each time; atomic because loops may run in several threads), so
 * that the head needs no pointer to them and handle.c names no kind. */
static _Atomic(const cltcp__handle_kind *) kinds[CLTCP__KIND_MAX + 1];

static const cltcp__handle_kind *handle_ops(const cltcp__handle *h) {
  return atomic_load_explicit(&kinds[cltcp__id_kind(h->id)],
                              memory_order_relaxed);
}

void cltcp__handle_init(cltcp__handle *h, int kind,
                        const cltcp__handle_kind *ops, cltcp_cb cb,
                        uintptr_t ctx) {
  atomic_store_explicit(&kinds[kind], ops, memory_order_relaxed);
  h->prev = h->next = 0;
  h->linked = false;
  h->cb = cb;
  h->ctx = ctx;
}

int cltcp__handle_new(cltcp__handle **out, size_t size, cltcp__loop *loop,
                      int kind, const cltcp__handle_kind *ops, cltcp_cb cb,
                      uintptr_t ctx) {
  cltcp__handle *h = calloc(1, size);
  int rc;
  if (h == NULL)
    return UV_ENOMEM;
  rc = cltcp__id_alloc(&h->id, loop, kind, h);
  if (rc != 0) {
    free(h);
    return rc;
  }
  cltcp__handle_init(h, kind, ops, cb, ctx);
  *out = h;
  return 0;
}

/* The linked handle at slot index + 1 `i' (not 0). */
static cltcp__handle *linked_at(const cltcp__loop *loop, uint32_t i) {
  return loop->slots[i - 1].ptr;
}

void cltcp__handle_link(cltcp__handle *h) {
  cltcp__loop *loop = cltcp__handle_loop(h);
  uint32_t self = cltcp__id_slot(h->id) + 1;
  if (h->linked)
    return;
  h->prev = 0;
  h->next = loop->handles;
  if (h->next != 0)
    linked_at(loop, h->next)->prev = self;
  loop->handles = self;
  h->linked = true;
}

/* Needs only the neighbours' slots: the handle's own id may be freed
 * already. */
void cltcp__handle_unlink(cltcp__handle *h) {
  cltcp__loop *loop = cltcp__handle_loop(h);
  if (!h->linked)
    return;
  if (h->prev != 0)
    linked_at(loop, h->prev)->next = h->next;
  else
    loop->handles = h->next;
  if (h->next != 0)
    linked_at(loop, h->next)->prev = h->prev;
  h->prev = h->next = 0;
  h->linked = false;
}

bool cltcp__handle_begin_close(cltcp__handle *h, int status) {
  if (h->closing)
    return false;
  h->closing = true;
  h->close_status = status;
  return true;
}

void cltcp__handle_finish(cltcp__handle *h) {
  const cltcp__handle_kind *ops = handle_ops(h);
  h->cb(h->ctx, h->id, CLTCP_EV_CLOSE, h->close_status, 0, NULL, 0);
  cltcp__id_free(cltcp__handle_loop(h), h->id);
  cltcp__handle_unlink(h);
  if (ops->destroy != NULL)
    ops->destroy(h);
  else
    free(h);
}

void cltcp__handle_uv_closed(uv_handle_t *uvh) {
  cltcp__handle *h = uvh->data;
  if (h->pending_closes > 1) {
    h->pending_closes--;
    return;
  }
  cltcp__handle_finish(h);
}

void cltcp__handles_teardown(cltcp__loop *loop) {
  uint32_t i, next;
  /* A teardown starts a close and unlinks nothing, but the next handle is
   * taken first all the same. */
  for (i = loop->handles; i != 0; i = next) {
    cltcp__handle *h = linked_at(loop, i);
    next = h->next;
    handle_ops(h)->teardown(h);
  }
}

void cltcp__handles_recover(cltcp__loop *loop) {
  uint32_t i;
  for (i = loop->handles; i != 0; i = linked_at(loop, i)->next) {
    cltcp__handle *h = linked_at(loop, i);
    const cltcp__handle_kind *ops = handle_ops(h);
    if (ops->recover != NULL)
      ops->recover(h);
  }
}

/* The kinds that are handles of the loop's list (not loops, not DNS). */
static bool is_handle_kind(int k) {
  return k == CLTCP_KIND_SOCKET || k == CLTCP_KIND_SERVER ||
         k == CLTCP_KIND_TIMER || k == CLTCP_KIND_SIGNAL ||
         k == CLTCP_KIND_ASYNC;
}

static int handle_get(cltcp__handle **out, cltcp_id id) {
  int k = cltcp_id_kind(id);
  if (k == CLTCP_KIND_NONE)
    return CLTCP_ECLOSED;
  if (!is_handle_kind(k))
    return CLTCP_EKIND;
  return cltcp__handle_lookup(out, id, k, false);
}

void cltcp__handle_apply_ref(cltcp__handle *h) {
  uv_handle_t *uvh[CLTCP__UV_HANDLES_MAX];
  unsigned i, n = handle_ops(h)->uv_handles(h, uvh);
  for (i = 0; i < n; i++) {
    if (h->unref)
      uv_unref(uvh[i]);
    else
      uv_ref(uvh[i]);
  }
}

int cltcp_handle_ref(cltcp_id id, int ref) {
  cltcp__handle *h;
  int rc = handle_get(&h, id);
  if (rc != 0)
    return rc;
  h->unref = ref == 0;
  cltcp__handle_apply_ref(h);
  return 0;
}

int cltcp_handle_refd(int *ref, cltcp_id id) {
  cltcp__handle *h;
  int rc;
  if (ref == NULL)
    return UV_EINVAL;
  rc = handle_get(&h, id);
  if (rc != 0)
    return rc;
  *ref = !h->unref;
  return 0;
}

static void handle_info(cltcp_handle_info *info, cltcp__handle *h) {
  const cltcp__handle_kind *ops = handle_ops(h);
  memset(info, 0, sizeof(*info));
  info->id = h->id;
  info->kind = cltcp__id_kind(h->id);
  info->state = CLTCP_STATE_ACTIVE;
  if (ops->info != NULL)
    ops->info(h, info);
  if (h->closing)
    info->state = CLTCP_STATE_CLOSING;
  info->flags |= h->unref ? 0 : CLTCP_INFO_REF;
}

int cltcp_loop_handles(cltcp_handle_info *out, size_t max, size_t *n,
                       cltcp_id loop_id) {
  cltcp__loop *loop;
  uint32_t i;
  size_t count = 0;
  int rc;
  if (n == NULL || (out == NULL && max > 0))
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  for (i = loop->handles; i != 0; i = linked_at(loop, i)->next) {
    if (count < max)
      handle_info(&out[count], linked_at(loop, i));
    count++;
  }
  *n = cltcp__dns_list(out, max, count, loop);
  return 0;
}

int cltcp_loop_kind_counts(size_t *counts, size_t ncounts, cltcp_id loop_id) {
  cltcp__loop *loop;
  uint32_t j;
  size_t listed = 0, i;
  int rc;
  if (counts == NULL && ncounts > 0)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  for (i = 0; i < ncounts; i++)
    counts[i] = 0;
  for (j = loop->handles; j != 0; j = linked_at(loop, j)->next) {
    cltcp__handle *h = linked_at(loop, j);
    size_t k = (size_t)cltcp__id_kind(h->id);
    if (k < ncounts)
      counts[k]++;
    listed++;
  }
  /* Every other id of the table is a DNS request, and so is every
   * cancelled request still owed its callback (ids.c's `live'). */
  if (CLTCP_KIND_DNS < ncounts)
    counts[CLTCP_KIND_DNS] = loop->live - listed;
  return 0;
}
