/*
 * queue.h -- the one intrusive list of libcltcp: circular and doubly
 * linked, its head a node of its own, like libuv's queue.h.  A node is
 * embedded in the structure it links, which container_of() gets back.
 * An unlinked node points at itself (cltcp__queue_init(), and
 * cltcp__queue_remove() leaves it so), so removing it twice is harmless.
 */
#ifndef CLTCP_QUEUE_H
#define CLTCP_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

/* The structure of type `type' whose member `member' is at `ptr'. */
#define cltcp__container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct cltcp__queue {
  struct cltcp__queue *next, *prev;
} cltcp__queue;

static inline void cltcp__queue_init(cltcp__queue *q) {
  q->next = q->prev = q;
}

static inline bool cltcp__queue_empty(const cltcp__queue *head) {
  return head->next == head;
}

static inline void cltcp__queue_insert_tail(cltcp__queue *head,
                                            cltcp__queue *q) {
  q->prev = head->prev;
  q->next = head;
  head->prev->next = q;
  head->prev = q;
}

static inline void cltcp__queue_insert_head(cltcp__queue *head,
                                            cltcp__queue *q) {
  q->next = head->next;
  q->prev = head;
  head->next->prev = q;
  head->next = q;
}

/* Unlinks q (a no-op for a node that is not linked) and leaves it alone. */
static inline void cltcp__queue_remove(cltcp__queue *q) {
  q->prev->next = q->next;
  q->next->prev = q->prev;
  cltcp__queue_init(q);
}

/* Moves every node of `from' to the front of `to', in order; `from' is
 * left empty.  With `to' empty this is taking the whole list. */
static inline void cltcp__queue_splice_head(cltcp__queue *to,
                                            cltcp__queue *from) {
  cltcp__queue *first = from->next, *last = from->prev;
  if (cltcp__queue_empty(from))
    return;
  last->next = to->next;
  to->next->prev = last;
  first->prev = to;
  to->next = first;
  cltcp__queue_init(from);
}

#define cltcp__queue_foreach(q, head) \
  for ((q) = (head)->next; (q) != (head); (q) = (q)->next)

#endif /* CLTCP_QUEUE_H */
