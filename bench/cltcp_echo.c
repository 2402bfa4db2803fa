/*
 * cltcp_echo.c -- the echo server on the cltcp ABI.
 *
 * Benchmark code.  Same behaviour as raw_echo.c: every byte read is written
 * back; on the peer's EOF the library sends what is queued, then closes.
 * Usage: cltcp_echo PORT (0 = any); prints "READY <port>".
 */
#include "cltcp_common.h"

static void cl_on_data(cltcp_id sock, cl_conn *c, const uint8_t *data,
                       size_t len) {
  cl_send(sock, c, data, len, 1);
}

int main(int argc, char **argv) { return cl_main(argc, argv); }
