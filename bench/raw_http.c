/*
 * raw_http.c -- the raw libuv baseline for the HTTP keep-alive figure.
 *
 * Benchmark code.  Answers every request (everything up to "\r\n\r\n") with
 * the fixed response of bench_http.h; all answers for one read leave in one
 * write.  Usage: raw_http PORT (0 = any); prints "READY <port>".
 */
#include "bench_http.h"
#include "raw_common.h"

/* Enough room for the answers to one 64 KiB read of minimal requests. */
static char out_buf[RAW_READ_BUF / 4 * BENCH_HTTP_RESPONSE_LEN];

static void raw_on_data(raw_conn *c, const char *data, size_t len) {
  size_t n = bench_http_count(&c->state, (const uint8_t *)data, len);
  size_t i;
  for (i = 0; i < n; i++)
    memcpy(out_buf + i * BENCH_HTTP_RESPONSE_LEN, bench_http_response,
           BENCH_HTTP_RESPONSE_LEN);
  if (n > 0)
    raw_send(c, out_buf, n * BENCH_HTTP_RESPONSE_LEN);
}

int main(int argc, char **argv) { return raw_main(argc, argv); }
