/*
 * raw_echo.c -- the raw libuv baseline for the echo figures (bulk echo,
 * connection churn, idle scale).
 *
 * Benchmark code.  Sends back every byte it reads; on the peer's EOF it
 * sends what is still queued, shuts its side down and closes.
 * Usage: raw_echo PORT (0 = any); prints "READY <port>".
 */
#include "raw_common.h"

static void raw_on_data(raw_conn *c, const char *data, size_t len) {
  raw_send(c, data, len);
}

int main(int argc, char **argv) { return raw_main(argc, argv); }
