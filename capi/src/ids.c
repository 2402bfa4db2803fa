/* ids.c -- generational slot maps: the global loop table and each loop's
 * handle table.  The id layout, and why no id is ever issued twice, is
 * described in internal.h.  A lookup compares the whole id stored in the
 * slot with the one given, so a stale, forged or made-up id fails cleanly
 * and never reaches an object it does not name.
 *
 * Threads.  Loops may live in several threads; each loop's handle table
 * belongs to the thread that runs the loop.  The global table is written
 * (loop creation and close) under loops_mutex, and read by every lookup
 * without a lock, through the atomic arrays below.  A lookup touches a
 * loop's memory only for an id that is current for the loop now at its
 * index: a loop id equal to that loop's id, or a handle id whose generation
 * is above the index's floor.  Every id of a loop whose cltcp_loop_close()
 * has returned fails both tests (close raises the floor above all of its
 * handle generations before it frees anything), so such ids are safe from
 * any thread: they give CLTCP_ECLOSED and read only the global arrays. */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static pthread_mutex_t loops_mutex = PTHREAD_MUTEX_INITIALIZER;
/* Read without the lock (acquire), written under it (release). */
_Atomic(cltcp__loop *) cltcp__loops[CLTCP__LOOP_MAX];
static _Atomic(cltcp_id) loop_ids[CLTCP__LOOP_MAX]; /* 0 = no loop */
static _Atomic(uint32_t) gen_floors[CLTCP__LOOP_MAX];
/* Only under the lock. */
static uint32_t loop_gens[CLTCP__LOOP_MAX];
static bool retired[CLTCP__LOOP_MAX];

int cltcp__loop_register(cltcp__loop *loop) {
  uint32_t i;
  pthread_mutex_lock(&loops_mutex);
  /* Index 0 is never used, so that no loop id has an all-zero middle. */
  for (i = 1; i < CLTCP__LOOP_MAX; i++) {
    if (atomic_load_explicit(&cltcp__loops[i], memory_order_relaxed) == NULL &&
        !retired[i]) {
      loop_gens[i]++;
      loop->index = i;
      loop->gen_base =
          atomic_load_explicit(&gen_floors[i], memory_order_relaxed);
      loop->id = cltcp__id_make(CLTCP_KIND_LOOP, i, CLTCP__LOOP_SLOT,
                               loop_gens[i]);
      atomic_store_explicit(&cltcp__loops[i], loop, memory_order_release);
      atomic_store_explicit(&loop_ids[i], loop->id, memory_order_release);
      pthread_mutex_unlock(&loops_mutex);
      return 0;
    }
  }
  pthread_mutex_unlock(&loops_mutex);
  return UV_ENOMEM;
}

void cltcp__loop_unregister(cltcp__loop *loop) {
  uint32_t i = loop->index, s, floor = loop->gen_base;
  /* The new floor: the highest generation a slot of this loop holds.  A
   * free slot holds the generation its next id would get, which is above
   * every one it gave out. */
  for (s = 0; s < loop->nslots; s++) {
    uint32_t g = cltcp__id_gen(loop->slots[s].id);
    if (g > floor)
      floor = g;
  }
  pthread_mutex_lock(&loops_mutex);
  /* The floor first: once the loop is gone from the table, every id of it
   * must already fail on the floor alone. */
  atomic_store_explicit(&gen_floors[i], floor, memory_order_release);
  atomic_store_explicit(&loop_ids[i], 0, memory_order_release);
  atomic_store_explicit(&cltcp__loops[i], NULL, memory_order_release);
  if (floor >= CLTCP__GEN_RETIRE || loop_gens[i] >= CLTCP__GEN_MAX)
    retired[i] = true;
  pthread_mutex_unlock(&loops_mutex);
}

/* The code for an id whose kind is not the one wanted. */
static int kind_mismatch(int k) {
  return cltcp__kind_valid(k) ? CLTCP_EKIND : CLTCP_ECLOSED;
}

int cltcp__loop_lookup(cltcp__loop **out, cltcp_id id) {
  cltcp__loop *loop;
  uint32_t i;
  int k = cltcp__id_kind(id);
  if (k != CLTCP_KIND_LOOP)
    return kind_mismatch(k);
  i = cltcp__id_loop(id);
  if (i == 0 || i >= CLTCP__LOOP_MAX ||
      atomic_load_explicit(&loop_ids[i], memory_order_acquire) != id)
    return CLTCP_ECLOSED;
  loop = atomic_load_explicit(&cltcp__loops[i], memory_order_acquire);
  if (loop == NULL || loop->id != id || loop->tearing_down)
    return CLTCP_ECLOSED;
  *out = loop;
  return 0;
}

int cltcp__lookup(void **out, cltcp_id id, int kind) {
  cltcp__loop *loop;
  cltcp__slot *slot;
  uint32_t i, s;
  int k = cltcp__id_kind(id);
  if (k != kind)
    return kind_mismatch(k);
  i = cltcp__id_loop(id);
  if (i == 0 || i >= CLTCP__LOOP_MAX ||
      cltcp__id_gen(id) <=
          atomic_load_explicit(&gen_floors[i], memory_order_acquire))
    return CLTCP_ECLOSED;
  loop = atomic_load_explicit(&cltcp__loops[i], memory_order_acquire);
  if (loop == NULL)
    return CLTCP_ECLOSED;
  s = cltcp__id_slot(id);
  if (s >= loop->nslots)
    return CLTCP_ECLOSED;
  slot = &loop->slots[s];
  /* The stored id says what the slot holds: a forged kind, a stale
   * generation or a free slot (kind 0) all differ. */
  if (slot->id != id)
    return CLTCP_ECLOSED;
  *out = slot->ptr;
  return 0;
}

int cltcp__id_alloc(cltcp_id *out, cltcp__loop *loop, int kind, void *ptr) {
  uint32_t s, gen;
  cltcp__slot *slot;
  if (loop->free_head != 0) {
    s = loop->free_head - 1;
    loop->free_head = loop->slots[s].next_free;
    gen = cltcp__id_gen(loop->slots[s].id);
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
    gen = loop->gen_base + 1;
  }
  slot = &loop->slots[s];
  slot->ptr = ptr;
  slot->id = cltcp__id_make(kind, loop->index, s, gen);
  loop->live++;
  *out = slot->id;
  return 0;
}

void cltcp__id_free(cltcp__loop *loop, cltcp_id id) {
  uint32_t s = cltcp__id_slot(id), gen;
  cltcp__slot *slot;
  if (s >= loop->nslots)
    return;
  slot = &loop->slots[s];
  if (slot->id != id)
    return;
  loop->live--;
  slot->ptr = NULL;
  /* The next generation, stored now, so the dead id can never match
   * again, even before the slot is reused. */
  gen = cltcp__id_gen(id);
  if (gen >= CLTCP__GEN_MAX) {
    /* Worn out: retired, never on the free list again, so no id repeats.
     * Its generation still counts for the index's floor. */
    slot->id = CLTCP__GEN_MAX;
    return;
  }
  slot->id = gen + 1;
  slot->next_free = loop->free_head;
  loop->free_head = s + 1;
}

void cltcp__id_free_counted(cltcp__loop *loop, cltcp_id id) {
  size_t live = loop->live;
  cltcp__id_free(loop, id);
  loop->live = live;
}

void cltcp__id_uncount(cltcp__loop *loop) { loop->live--; }

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
  return (id == 0 || !cltcp__kind_valid(k)) ? CLTCP_KIND_NONE : k;
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
