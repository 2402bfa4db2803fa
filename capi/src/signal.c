/* signal.c -- signal handles over libuv's uv_signal_t, which put the
 * signal's previous disposition back when the last of them closes.
 *
 * libuv installs its own handler when the first uv_signal_t of the process
 * starts watching a signal and, when the last one stops, sets the signal
 * to SIG_DFL -- not to what it was before.  In a Lisp image that would
 * leave SIGINT killing the process instead of reaching the Lisp's own
 * handler (C-c at the REPL).  So the library keeps, per signal and for the
 * whole process (loops may live in several threads), a count of its
 * watching handles and the sigaction the signal had before the first one
 * started; the last one to stop restores it, right after libuv's reset.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

typedef struct cltcp__signal {
  cltcp__handle h;
  uv_signal_t sig;
  int signum;
  bool watching; /* counted in `watchers' below */
} cltcp__signal;

#ifndef NSIG
#define NSIG 65
#endif

/* Guards `watchers' and `saved', and orders the save and restore with
 * libuv's own install and reset (uv_signal_start/uv_signal_stop are
 * called with it held). */
static pthread_mutex_t sig_mutex = PTHREAD_MUTEX_INITIALIZER;
static unsigned watchers[NSIG];
static struct sigaction saved[NSIG];

/* Starts libuv's watch, saving the disposition first if this is the first
 * handle of the process for the signal. */
static int watch_start(cltcp__signal *s, uv_signal_cb cb) {
  int rc;
  pthread_mutex_lock(&sig_mutex);
  if (watchers[s->signum] == 0 &&
      sigaction(s->signum, NULL, &saved[s->signum]) != 0) {
    pthread_mutex_unlock(&sig_mutex);
    return UV_EINVAL;
  }
  rc = uv_signal_start(&s->sig, cb, s->signum);
  if (rc == 0) {
    watchers[s->signum]++;
    s->watching = true;
  }
  pthread_mutex_unlock(&sig_mutex);
  return rc;
}

/* Stops libuv's watch; the last handle puts the saved disposition back.
 * The signal is blocked in this thread meanwhile, so one sent to it
 * between libuv's SIG_DFL and the restore stays pending and then reaches
 * the restored handler instead of the default action. */
static void watch_stop(cltcp__signal *s) {
  sigset_t block, old;
  if (!s->watching)
    return;
  sigemptyset(&block);
  sigaddset(&block, s->signum);
  pthread_mutex_lock(&sig_mutex);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  uv_signal_stop(&s->sig);
  s->watching = false;
  if (--watchers[s->signum] == 0)
    sigaction(s->signum, &saved[s->signum], NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_unlock(&sig_mutex);
}

static void signal_close(cltcp__signal *s, int status) {
  if (!cltcp__handle_begin_close(&s->h, status))
    return;
  watch_stop(s);
  uv_close((uv_handle_t *)&s->sig, cltcp__handle_uv_closed);
}

static void signal_teardown(cltcp__handle *h) {
  signal_close((cltcp__signal *)h, UV_ECANCELED);
}

static void signal_recover(cltcp__handle *h) {
  cltcp__signal *s = (cltcp__signal *)h;
  /* uv__signal_event() counts a signal as dispatched after its callback
   * returns, and uv_close() waits until every caught signal was dispatched.
   * One callback never returned: its message is gone from the pipe, so the
   * close would wait forever.  (One still in the pipe is counted when read,
   * without a callback, once the handle is stopped.) */
  if (s->sig.caught_signals > s->sig.dispatched_signals)
    s->sig.dispatched_signals = s->sig.caught_signals;
}

static void signal_info(cltcp__handle *h, cltcp_handle_info *info) {
  info->detail = ((cltcp__signal *)h)->signum;
}

static unsigned signal_uv_handles(cltcp__handle *h, uv_handle_t *out[]) {
  out[0] = (uv_handle_t *)&((cltcp__signal *)h)->sig;
  return 1;
}

static const cltcp__handle_kind signal_kind = {
    signal_teardown, signal_recover, signal_info, NULL, signal_uv_handles};

static void signal_cb(uv_signal_t *uvs, int signum) {
  cltcp__signal *s = uvs->data;
  if (s->h.closing)
    return;
  s->h.cb(s->h.ctx, s->h.id, CLTCP_EV_SIGNAL, 0, (cltcp_id)signum, NULL, 0);
}

static void unused_closed(uv_handle_t *uvh) { free(uvh->data); }

/* The signals the kernel sends for a fault of the instruction running
 * (SIGSEGV, SIGBUS, SIGILL, SIGFPE): libuv's handler only notes the signal
 * and returns, to the same instruction, which faults again -- the thread
 * would spin there, and the loop never gets to the event.  Such a signal
 * is the runtime's (a Lisp's garbage collector and error traps use them)
 * or the process's end; it is not an event. */
static bool fault_signal(int signum) {
  return signum == SIGSEGV || signum == SIGBUS || signum == SIGILL ||
         signum == SIGFPE;
}

int cltcp_signal_start(cltcp_id *out, cltcp_id loop_id, int signum,
                       cltcp_cb cb, uintptr_t ctx) {
  cltcp__loop *loop;
  cltcp__signal *s;
  int rc;
  if (out == NULL || cb == NULL || signum <= 0 || signum >= NSIG ||
      fault_signal(signum))
    return UV_EINVAL;
  rc = cltcp__loop_lookup(&loop, loop_id);
  if (rc != 0)
    return rc;
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return UV_ENOMEM;
  rc = uv_signal_init(&loop->uv, &s->sig);
  if (rc != 0) {
    free(s);
    return rc;
  }
  s->sig.data = s;
  s->signum = signum;
  rc = watch_start(s, signal_cb);
  if (rc == 0)
    rc = cltcp__id_alloc(&s->h.id, loop, CLTCP_KIND_SIGNAL, s);
  if (rc != 0) {
    /* Nobody knows this handle: no event; freed by the close callback. */
    watch_stop(s);
    uv_close((uv_handle_t *)&s->sig, unused_closed);
    return rc;
  }
  cltcp__handle_init(&s->h, CLTCP_KIND_SIGNAL, &signal_kind, cb, ctx);
  cltcp__handle_link(&s->h);
  *out = s->h.id;
  return 0;
}

int cltcp_signal_close(cltcp_id id) {
  cltcp__handle *h;
  int rc = cltcp__handle_lookup(&h, id, CLTCP_KIND_SIGNAL, false);
  if (rc != 0)
    return rc;
  signal_close((cltcp__signal *)h, 0);
  return 0;
}

int cltcp_signal_signum(int *signum, cltcp_id id) {
  cltcp__handle *h;
  int rc;
  if (signum == NULL)
    return UV_EINVAL;
  rc = cltcp__handle_lookup(&h, id, CLTCP_KIND_SIGNAL, false);
  if (rc != 0)
    return rc;
  *signum = ((cltcp__signal *)h)->signum;
  return 0;
}
