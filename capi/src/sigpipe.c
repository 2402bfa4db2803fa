/* sigpipe.c -- SIGPIPE blocked while the library can write.
 *
 * libuv writes with write(2), which raises SIGPIPE on a reset connection.
 * The host process (a Lisp image) may not ignore it, and must not be asked
 * to, so SIGPIPE is blocked in this thread while the library can write, and
 * one raised meanwhile is consumed before unblocking. */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

bool cltcp__sigpipe_block(sigset_t *old) {
  struct sigaction sa;
  sigset_t set;
  /* Where SIGPIPE is ignored (SBCL ignores it), one query is all it costs. */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
    return false;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, old);
  return true;
}

void cltcp__sigpipe_restore(const sigset_t *old, bool blocked) {
  sigset_t set, pending;
  if (!blocked)
    return;
  if (!sigismember(old, SIGPIPE) && sigpending(&pending) == 0 &&
      sigismember(&pending, SIGPIPE)) {
    struct timespec zero = {0, 0};
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    (void)sigtimedwait(&set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, old, NULL);
}
