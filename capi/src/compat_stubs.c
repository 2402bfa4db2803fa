/* compat_stubs.c -- TEMPORARY: the calls of issue 10 declared in cltcp.h
 * whose implementations are still to come return UV_ENOSYS, so the header
 * can be committed (and bound from Lisp) first.  Removed entry by entry. */
#include "internal.h"

int cltcp_signal_start(cltcp_id *sig, cltcp_id loop, int signum, cltcp_cb cb,
                       uintptr_t ctx) {
  (void)sig; (void)loop; (void)signum; (void)cb; (void)ctx;
  return UV_ENOSYS;
}
int cltcp_signal_close(cltcp_id sig) { (void)sig; return UV_ENOSYS; }
int cltcp_signal_signum(int *signum, cltcp_id sig) {
  (void)signum; (void)sig;
  return UV_ENOSYS;
}
int cltcp_async_new(cltcp_id *async, cltcp_id loop, cltcp_cb cb,
                    uintptr_t ctx) {
  (void)async; (void)loop; (void)cb; (void)ctx;
  return UV_ENOSYS;
}
int cltcp_async_send(cltcp_id async) { (void)async; return UV_ENOSYS; }
int cltcp_async_close(cltcp_id async) { (void)async; return UV_ENOSYS; }
int cltcp_handle_ref(cltcp_id handle, int ref) {
  (void)handle; (void)ref;
  return UV_ENOSYS;
}
int cltcp_handle_refd(int *ref, cltcp_id handle) {
  (void)ref; (void)handle;
  return UV_ENOSYS;
}
int cltcp_loop_handles(cltcp_handle_info *out, size_t max, size_t *n,
                       cltcp_id loop) {
  (void)out; (void)max; (void)n; (void)loop;
  return UV_ENOSYS;
}
int cltcp_loop_kind_counts(size_t *counts, size_t ncounts, cltcp_id loop) {
  (void)counts; (void)ncounts; (void)loop;
  return UV_ENOSYS;
}
int cltcp_server_listen_ex(cltcp_id *server, cltcp_id loop, const char *host,
                           int port, int backlog, int flags,
                           cltcp_cb server_cb, uintptr_t server_ctx,
                           cltcp_cb sock_cb, uintptr_t sock_ctx) {
  (void)server; (void)loop; (void)host; (void)port; (void)backlog;
  (void)flags; (void)server_cb; (void)server_ctx; (void)sock_cb;
  (void)sock_ctx;
  return UV_ENOSYS;
}
int cltcp_dns_reverse(cltcp_id *req, cltcp_id loop, const char *addr,
                      cltcp_dns_name_cb cb, uintptr_t ctx) {
  (void)req; (void)loop; (void)addr; (void)cb; (void)ctx;
  return UV_ENOSYS;
}
