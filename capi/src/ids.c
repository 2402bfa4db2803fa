/* ids.c -- generational slot maps: the global loop table and each loop's
 * handle table.  A lookup compares the generation stored in the slot with
 * the one in the id, so a stale id fails cleanly even after its slot was
 * reused, and never reads freed memory. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

/* Loops may live in several threads, so the loop table is guarded for
 * allocation; lookups read one pointer-sized slot and the generation,
 * which only the loop's own thread changes (at close). */
static pthread_mutex_t loops_mutex = PTHREAD_MUTEX_INITIALIZER;
static cltcp__loop *loops[CLTCP__LOOP_MAX];
static uint32_t loop_gens[CLTCP__LOOP_MAX];

static uint32_t next_gen(uint32_t g) {
  g = (g + 1) & CLTCP__GEN_MASK;
  return g == 0 ? 1 : g;
}

int cltcp__loop_register(cltcp__loop *loop) {
  uint32_t i;
  pthread_mutex_lock(&loops_mutex);
  /* Index 0 is never used, so that no loop id has an all-zero middle. */
  for (i = 1; i < CLTCP__LOOP_MAX; i++) {
    if (loops[i] == NULL) {
      loop_gens[i] = next_gen(loop_gens[i]);
      loops[i] = loop;
      loop->index = i;
      loop->id = cltcp__id_make(CLTCP_KIND_LOOP, i, 0, loop_gens[i]);
      pthread_mutex_unlock(&loops_mutex);
      return 0;
    }
  }
  pthread_mutex_unlock(&loops_mutex);
  return UV_ENOMEM;
}

void cltcp__loop_unregister(cltcp__loop *loop) {
  pthread_mutex_lock(&loops_mutex);
  loops[loop->index] = NULL;
  loop_gens[loop->index] = next_gen(loop_gens[loop->index]);
  pthread_mutex_unlock(&loops_mutex);
}

static cltcp__loop *loop_of(cltcp_id id) {
  uint32_t i = cltcp__id_loop(id);
  if (i == 0 || i >= CLTCP__LOOP_MAX)
    return NULL;
  return loops[i];
}

int cltcp__loop_lookup(cltcp__loop **out, cltcp_id id) {
  cltcp__loop *loop;
  int k = cltcp__id_kind(id);
  if (k != CLTCP_KIND_LOOP)
    return (k == CLTCP_KIND_NONE || k > CLTCP_KIND_LAST) ? CLTCP_ECLOSED
                                                       : CLTCP_EKIND;
  loop = loop_of(id);
  if (loop == NULL || loop->id != id || loop->closing)
    return CLTCP_ECLOSED;
  *out = loop;
  return 0;
}

int cltcp__lookup(void **out, cltcp_id id, int kind) {
  cltcp__loop *loop;
  cltcp__slot *slot;
  uint32_t s;
  int k = cltcp__id_kind(id);
  if (k != kind)
    return (k == CLTCP_KIND_NONE || k > CLTCP_KIND_LAST) ? CLTCP_ECLOSED
                                                       : CLTCP_EKIND;
  loop = loop_of(id);
  if (loop == NULL)
    return CLTCP_ECLOSED;
  s = cltcp__id_slot(id);
  if (s >= loop->nslots)
    return CLTCP_ECLOSED;
  slot = &loop->slots[s];
  if (slot->ptr == NULL || slot->gen != cltcp__id_gen(id))
    return CLTCP_ECLOSED;
  *out = slot->ptr;
  return 0;
}

int cltcp__id_alloc(cltcp_id *out, cltcp__loop *loop, int kind, void *ptr) {
  uint32_t s;
  cltcp__slot *slot;
  if (loop->free_head != 0) {
    s = loop->free_head - 1;
    loop->free_head = loop->slots[s].next_free;
  } else {
    if (loop->nslots == loop->capslots) {
      uint32_t cap = loop->capslots ? loop->capslots * 2 : 64;
      cltcp__slot *n;
      if (cap > CLTCP__SLOT_MAX)
        cap = CLTCP__SLOT_MAX;
      if (cap == loop->capslots)
        return UV_ENOMEM;
      n = realloc(loop->slots, cap * sizeof(*n));
      if (n == NULL)
        return UV_ENOMEM;
      loop->slots = n;
      loop->capslots = cap;
    }
    s = loop->nslots++;
    loop->slots[s].gen = 0;
  }
  slot = &loop->slots[s];
  slot->gen = next_gen(slot->gen);
  slot->ptr = ptr;
  slot->next_free = 0;
  loop->live++;
  *out = cltcp__id_make(kind, loop->index, s, slot->gen);
  return 0;
}

void cltcp__id_free(cltcp__loop *loop, cltcp_id id) {
  uint32_t s = cltcp__id_slot(id);
  cltcp__slot *slot;
  if (s >= loop->nslots)
    return;
  slot = &loop->slots[s];
  if (slot->ptr == NULL || slot->gen != cltcp__id_gen(id))
    return;
  slot->ptr = NULL;
  /* Bump the generation now so the dead id can never match again, even
   * before the slot is reused. */
  slot->gen = next_gen(slot->gen);
  slot->next_free = loop->free_head;
  loop->free_head = s + 1;
  loop->live--;
}

int cltcp__handle_lookup(cltcp__handle **out, cltcp_id id, int kind,
                         bool allow_closing) {
  void *p;
  int rc = cltcp__lookup(&p, id, kind);
  if (rc != 0)
    return rc;
  if (((cltcp__handle *)p)->closing && !allow_closing)
    return CLTCP_ECLOSED;
  *out = p;
  return 0;
}

int cltcp_id_kind(cltcp_id id) {
  int k = cltcp__id_kind(id);
  return (id == 0 || k > CLTCP_KIND_LAST) ? CLTCP_KIND_NONE : k;
}

int cltcp_id_alive(int *alive, cltcp_id id) {
  void *p;
  cltcp__loop *l;
  int k = cltcp_id_kind(id);
  if (alive == NULL)
    return UV_EINVAL;
  if (k == CLTCP_KIND_LOOP)
    *alive = cltcp__loop_lookup(&l, id) == 0;
  else if (k == CLTCP_KIND_NONE)
    *alive = 0;
  else if (k == CLTCP_KIND_DNS)
    *alive = cltcp__lookup(&p, id, k) == 0;
  else
    *alive = cltcp__handle_lookup((cltcp__handle **)&p, id, k, false) == 0;
  return 0;
}
