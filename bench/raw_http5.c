/*
 * raw_http5.c -- the raw libuv baseline for the "response in five pieces"
 * figure: the same answer as raw_http.c, but every response goes out as five
 * sends (status line, each of the two headers, the blank line, the body),
 * each handed to the kernel at once the way raw_send does (uv_try_write,
 * a copied uv_write for the rest).  Like every raw server it sets
 * TCP_NODELAY, so five small segments cost five system calls but no Nagle
 * stall.  Benchmark code.  Usage: raw_http5 PORT; prints "READY <port>".
 */
#include "bench_http.h"
#include "raw_common.h"

static const char *const pieces[] = {"HTTP/1.1 200 OK\r\n",
                                     "Content-Type: text/plain\r\n",
                                     "Content-Length: 13\r\n", "\r\n",
                                     "Hello, World!"};

static void raw_on_data(raw_conn *c, const char *data, size_t len) {
  size_t n = bench_http_count(&c->state, (const uint8_t *)data, len);
  size_t i, p;
  for (i = 0; i < n && !c->closing; i++)
    for (p = 0; p < sizeof(pieces) / sizeof(pieces[0]) && !c->closing; p++)
      raw_send(c, pieces[p], strlen(pieces[p]));
}

int main(int argc, char **argv) { return raw_main(argc, argv); }
