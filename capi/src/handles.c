/* handles.c -- what every handle kind shares: references (uv_ref/uv_unref
 * over all the uv handles a handle keeps) and the listing of a loop's
 * handles (cltcp_loop_handles(), cltcp_loop_kind_counts()). */
#include "internal.h"

#include <string.h>

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
  size_t i;
  for (i = 0; i < sizeof(h->uvh) / sizeof(h->uvh[0]); i++) {
    if (h->uvh[i] == NULL)
      continue;
    if (h->unref)
      uv_unref(h->uvh[i]);
    else
      uv_ref(h->uvh[i]);
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
  bool accepted = false;
  memset(info, 0, sizeof(*info));
  info->id = h->id;
  info->kind = h->kind;
  info->state = CLTCP_STATE_ACTIVE;
  if (h->kind == CLTCP_KIND_SOCKET)
    info->state = cltcp__socket_state(h, &accepted);
  else if (h->kind == CLTCP_KIND_SIGNAL)
    info->detail = cltcp__signal_signum(h);
  else if (h->kind == CLTCP_KIND_SERVER && !h->closing)
    info->detail = cltcp__server_port(h);
  if (h->closing)
    info->state = CLTCP_STATE_CLOSING;
  info->flags = (h->unref ? 0 : CLTCP_INFO_REF) |
                (accepted ? CLTCP_INFO_ACCEPTED : 0);
}

int cltcp_loop_handles(cltcp_handle_info *out, size_t max, size_t *n,
                       cltcp_id loop_id) {
  cltcp__loop *loop;
  cltcp__handle *h;
  size_t count = 0;
  int rc;
  if (n == NULL || (out == NULL && max > 0))
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  for (h = loop->handles_head; h != NULL; h = h->hnext) {
    if (count < max)
      handle_info(&out[count], h);
    count++;
  }
  *n = cltcp__dns_list(out, max, count, loop);
  return 0;
}

int cltcp_loop_kind_counts(size_t *counts, size_t ncounts, cltcp_id loop_id) {
  cltcp__loop *loop;
  cltcp__handle *h;
  size_t listed = 0, i;
  int rc;
  if (counts == NULL && ncounts > 0)
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  for (i = 0; i < ncounts; i++)
    counts[i] = 0;
  for (h = loop->handles_head; h != NULL; h = h->hnext) {
    if ((size_t)h->kind < ncounts)
      counts[h->kind]++;
    listed++;
  }
  /* Every other id of the table is a DNS request, and so is every
   * cancelled request still owed its callback (ids.c's `live'). */
  if (CLTCP_KIND_DNS < ncounts)
    counts[CLTCP_KIND_DNS] = loop->live - listed;
  return 0;
}
