/*
 * cltcp_http.c -- the HTTP keep-alive responder on the cltcp ABI.
 *
 * Benchmark code.  Same answers as raw_http.c; all answers for one read leave
 * in one write.  Usage: cltcp_http PORT (0 = any); prints "READY <port>".
 */
#include <string.h>

#include "bench_http.h"
#include "cltcp_common.h"

/* Enough room for the answers to one 64 KiB read of minimal requests. */
static uint8_t out_buf[64 * 1024 / 4 * BENCH_HTTP_RESPONSE_LEN];

static void cl_on_data(cltcp_id sock, cl_conn *c, const uint8_t *data,
                       size_t len) {
  size_t n = bench_http_count(&c->state, data, len);
  size_t i;
  if (n > sizeof(out_buf) / BENCH_HTTP_RESPONSE_LEN) {
    /* A read larger than 64 KiB of minimal requests: answer in pieces. */
    while (n > 0) {
      cl_send(sock, c, (const uint8_t *)bench_http_response,
              BENCH_HTTP_RESPONSE_LEN, 0);
      n--;
    }
    return;
  }
  for (i = 0; i < n; i++)
    memcpy(out_buf + i * BENCH_HTTP_RESPONSE_LEN, bench_http_response,
           BENCH_HTTP_RESPONSE_LEN);
  if (n > 0)
    cl_send(sock, c, out_buf, n * BENCH_HTTP_RESPONSE_LEN, 0);
}

int main(int argc, char **argv) { return cl_main(argc, argv); }
