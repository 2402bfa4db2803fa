/*
 * bench_http.h -- the request counter shared by the C HTTP responders.
 *
 * Benchmark code, not part of the library.  Every responder in bench/ gives
 * the same answer to every request: a fixed 200 with a 13-byte body.  A
 * request is everything up to and including "\r\n\r\n"; the terminator may be
 * split across reads and several requests may arrive in one read
 * (pipelining), so the scanner keeps how much of the terminator it has
 * matched so far between calls.
 */
#ifndef BENCH_HTTP_H
#define BENCH_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BENCH_HTTP_RESPONSE                                                  \
  "HTTP/1.1 200 OK\r\n"                                                      \
  "Content-Type: text/plain\r\n"                                             \
  "Content-Length: 13\r\n"                                                   \
  "\r\n"                                                                     \
  "Hello, World!"

static const char bench_http_response[] = BENCH_HTTP_RESPONSE;
#define BENCH_HTTP_RESPONSE_LEN (sizeof(bench_http_response) - 1)

/* Counts the requests completed in buf[0..len).  *state is the number of
 * terminator bytes ("\r\n\r\n") matched at the end of the previous chunk,
 * 0..3; it is updated for the next chunk.  memchr finds the candidate '\r'
 * bytes, so the scan costs about what a real parser's header scan costs. */
static inline size_t bench_http_count(int *state, const uint8_t *buf,
                                      size_t len) {
  static const uint8_t term[4] = {'\r', '\n', '\r', '\n'};
  size_t n = 0;
  size_t i = 0;
  int s = *state;

  while (i < len) {
    if (s == 0) {
      const uint8_t *p = memchr(buf + i, '\r', len - i);
      if (p == NULL)
        break;
      i = (size_t)(p - buf) + 1;
      s = 1;
      continue;
    }
    if (buf[i] == term[s]) {
      s++;
      i++;
      if (s == 4) {
        n++;
        s = 0;
      }
    } else {
      /* A mismatch restarts the match; the byte itself may begin one. */
      s = buf[i] == '\r' ? 1 : 0;
      i++;
    }
  }
  *state = s;
  return n;
}

#endif /* BENCH_HTTP_H */
