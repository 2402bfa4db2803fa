/*
 * loadgen.c -- the load generator for the echo figures, and the answer
 * checker for the HTTP responders.
 *
 * Benchmark code, not part of the library.  Plain non-blocking sockets and
 * epoll, one thread, so that its own cost is small and the same for every
 * server it drives.  Every mode checks every byte it gets back and exits
 * non-zero on any wrong, missing or extra byte, on a connection error, or
 * when nothing moves for TIMEOUT seconds; slowness alone is never a failure.
 *
 *   loadgen echo  PORT BYTES [CONNS]     bulk echo: BYTES in total (split over
 *                                        CONNS connections) sent and checked;
 *                                        prints "ECHO <bytes> <secs> <MB/s>"
 *   loadgen churn PORT SECS [CONC] [echo|http]
 *                                        short connections (connect, send,
 *                                        receive the answer, close), CONC at
 *                                        a time, for SECS seconds; prints
 *                                        "CHURN <conns> <secs> <conns/s>"
 *   loadgen idle  PORT COUNT [echo|http] [SOURCES]
 *                                        opens COUNT connections, each
 *                                        checked with one round trip; prints
 *                                        "HELD <count> <secs>" and holds them
 *                                        until SIGTERM/SIGINT (or 600 s).
 *                                        SOURCES > 0: the connections take
 *                                        their source address from 127.0.0.2
 *                                        .. 127.0.0.(SOURCES+1) in turn (one
 *                                        address has ~28k ephemeral ports);
 *                                        0 (default): all from 127.0.1.1
 *   loadgen http-check PORT              pipelined and split requests, exact
 *                                        answers; prints "HTTP-OK"
 *   loadgen freeport                     prints a currently free port
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_http.h"

#define TIMEOUT_S 30.0

/* The echo pattern repeats every PATTERN_PERIOD bytes, a prime, so that a
 * lost, doubled or reordered run of bytes shifts the stream against the
 * pattern (a shift by a whole multiple of the period would also change the
 * byte count, which is checked too).  The buffer holds one extra CHUNK so
 * that CHUNK contiguous pattern bytes start at any offset below the period. */
#define PATTERN_PERIOD 65521u
#define CHUNK (256u * 1024u)
#define WINDOW (4u * 1024u * 1024u)

static uint8_t pattern[PATTERN_PERIOD + CHUNK];
static uint8_t rbuf[CHUNK];

static const char http_request[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("loadgen: FAIL: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill_pattern(void) {
  uint32_t x = 2463534242u;
  size_t i;
  for (i = 0; i < PATTERN_PERIOD; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    pattern[i] = (uint8_t)(x >> 11);
  }
  for (; i < sizeof(pattern); i++)
    pattern[i] = pattern[i - PATTERN_PERIOD];
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Client sockets take their source address from 127.0.1.1 .. 127.0.1.64 in
 * turn.  Each churned connection leaves a TIME_WAIT entry behind on the
 * client side, and one source address has only ~28k ephemeral ports; with
 * many source addresses the churn test never runs out of them. */
static int open_client_from(int port, uint32_t src_addr) {
  struct sockaddr_in src, dst;
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die("socket: %s", strerror(errno));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef IP_BIND_ADDRESS_NO_PORT
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
  memset(&src, 0, sizeof(src));
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(src_addr);
  if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0)
    die("bind source address %u.%u.%u.%u: %s", src_addr >> 24,
        (src_addr >> 16) & 255u, (src_addr >> 8) & 255u, src_addr & 255u,
        strerror(errno));
  memset(&dst, 0, sizeof(dst));
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)port);
  dst.sin_addr.s_addr = htonl(0x7f000001u);
  if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 &&
      errno != EINPROGRESS)
    die("connect: %s", strerror(errno));
  return fd;
}

static int open_client(int port, unsigned seq) {
  return open_client_from(port, 0x7f000101u + (seq % 64u));
}

/* ------------------------------------------------------------------ */
/* Bulk echo                                                            */
/* ------------------------------------------------------------------ */

typedef struct echo_conn {
  int fd;
  uint64_t total, sent, recvd;
  int shut, done;
} echo_conn;

/* Moves as many bytes as the socket and the window allow; returns 1 when
 * anything moved. */
static int echo_pump(echo_conn *c) {
  int moved = 0;
  for (;;) {
    int progress = 0;
    while (!c->done) {
      ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), 0);
      if (r > 0) {
        size_t off = 0;
        if (c->recvd + (uint64_t)r > c->total)
          die("echo: %llu bytes back, more than the %llu sent",
              (unsigned long long)(c->recvd + (uint64_t)r),
              (unsigned long long)c->total);
        while (off < (size_t)r) {
          size_t p = (size_t)((c->recvd + off) % PATTERN_PERIOD);
          size_t n = (size_t)r - off;
          if (memcmp(rbuf + off, pattern + p, n) != 0) {
            size_t i;
            for (i = 0; i < n && rbuf[off + i] == pattern[p + i]; i++)
              ;
            die("echo: wrong byte at offset %llu",
                (unsigned long long)(c->recvd + off + i));
          }
          off += n;
        }
        c->recvd += (uint64_t)r;
        progress = 1;
      } else if (r == 0) {
        if (c->recvd != c->total)
          die("echo: EOF after %llu of %llu bytes",
              (unsigned long long)c->recvd, (unsigned long long)c->total);
        c->done = 1;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno != EINTR) {
        die("echo: recv: %s", strerror(errno));
      }
    }
    while (c->sent < c->total && c->sent - c->recvd < WINDOW) {
      uint64_t left = c->total - c->sent;
      uint64_t room = WINDOW - (c->sent - c->recvd);
      size_t n = CHUNK;
      ssize_t r;
      if (n > left)
        n = (size_t)left;
      if (n > room)
        n = (size_t)room;
      r = send(c->fd, pattern + c->sent % PATTERN_PERIOD, n, MSG_NOSIGNAL);
      if (r > 0) {
        c->sent += (uint64_t)r;
        progress = 1;
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else if (r < 0 && errno == ENOTCONN) {
        break; /* still connecting: EPOLLOUT comes */
      } else if (r < 0 && errno != EINTR) {
        die("echo: send: %s", strerror(errno));
      }
    }
    /* Everything sent: half-close, so the server sees EOF and must still
     * send back all it has queued before it closes. */
    if (c->sent == c->total && !c->shut) {
      shutdown(c->fd, SHUT_WR);
      c->shut = 1;
    }
    if (!progress)
      break;
    moved = 1;
  }
  return moved;
}

static int mode_echo(int port, uint64_t bytes, int nconns) {
  echo_conn *cs = calloc((size_t)nconns, sizeof(*cs));
  struct epoll_event evs[64];
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int left = nconns;
  double t0, last;
  int i;

  fill_pattern();
  t0 = last = now();
  for (i = 0; i < nconns; i++) {
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLET, {.u32 = (uint32_t)i}};
    cs[i].total = bytes / (uint64_t)nconns +
                  (i == 0 ? bytes % (uint64_t)nconns : 0);
    cs[i].fd = open_client(port, (unsigned)i);
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  while (left > 0) {
    int n = epoll_wait(ep, evs, 64, 1000);
    for (i = 0; i < n; i++) {
      echo_conn *c = &cs[evs[i].data.u32];
      if (c->done)
        continue;
      if ((evs[i].events & EPOLLERR) != 0) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        die("echo: socket error: %s", strerror(err));
      }
      if (echo_pump(c))
        last = now();
      if (c->done) {
        close(c->fd);
        left--;
      }
    }
    if (now() - last > TIMEOUT_S)
      die("echo: no progress for %.0f s", TIMEOUT_S);
  }
  {
    double secs = now() - t0;
    printf("ECHO %llu %.3f %.1f\n", (unsigned long long)bytes, secs,
           (double)bytes / secs / 1e6);
  }
  free(cs);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Short connections (churn) and held connections (idle)               */
/* ------------------------------------------------------------------ */

typedef struct short_conn {
  int fd;
  size_t sent, got;
  int phase; /* 0 free, 1 connecting/sending, 2 receiving, 3 held */
} short_conn;

static int use_http;
static const uint8_t *msg;
static size_t msg_len;
static const uint8_t *answer;
static size_t answer_len;

static void set_protocol(const char *proto, size_t echo_len) {
  if (proto != NULL && strcmp(proto, "http") == 0) {
    use_http = 1;
    msg = (const uint8_t *)http_request;
    msg_len = sizeof(http_request) - 1;
    answer = (const uint8_t *)bench_http_response;
    answer_len = BENCH_HTTP_RESPONSE_LEN;
  } else {
    fill_pattern();
    msg = pattern;
    msg_len = echo_len;
    answer = pattern;
    answer_len = echo_len;
  }
}

/* Advances one connection; returns 1 when its answer is complete. */
static int short_step(short_conn *c, uint32_t events) {
  if ((events & EPOLLERR) != 0) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    die("connection error: %s", strerror(err));
  }
  while (c->phase == 1 && c->sent < msg_len) {
    ssize_t r = send(c->fd, msg + c->sent, msg_len - c->sent, MSG_NOSIGNAL);
    if (r > 0) {
      c->sent += (size_t)r;
    } else if (r < 0 && (errno == EAGAIN || errno == ENOTCONN || errno == EINPROGRESS)) {
      return 0;
    } else if (r < 0 && errno != EINTR) {
      die("send: %s", strerror(errno));
    }
  }
  c->phase = 2;
  while (c->got < answer_len) {
    uint8_t buf[512];
    size_t want = answer_len - c->got;
    ssize_t r = recv(c->fd, buf, want < sizeof(buf) ? want : sizeof(buf), 0);
    if (r > 0) {
      if (memcmp(buf, answer + c->got, (size_t)r) != 0)
        die("wrong answer bytes (offset %zu)", c->got);
      c->got += (size_t)r;
    } else if (r == 0) {
      die("connection closed after %zu of %zu answer bytes", c->got,
          answer_len);
    } else if (errno == EAGAIN) {
      return 0;
    } else if (errno != EINTR) {
      die("recv: %s", strerror(errno));
    }
  }
  return 1;
}

static void short_start(short_conn *c, int ep, int fd, uint32_t slot) {
  struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLET, {.u32 = slot}};
  c->fd = fd;
  c->sent = c->got = 0;
  c->phase = 1;
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void short_open(short_conn *c, int ep, int port, unsigned seq,
                       uint32_t slot) {
  short_start(c, ep, open_client(port, seq), slot);
}

static int mode_churn(int port, double secs, int conc, const char *proto) {
  short_conn *cs = calloc((size_t)conc, sizeof(*cs));
  struct epoll_event evs[256];
  int ep = epoll_create1(EPOLL_CLOEXEC);
  unsigned seq = 0;
  unsigned long done = 0;
  int active = 0;
  double t0, deadline, last;
  int i;

  set_protocol(proto, 64);
  t0 = last = now();
  deadline = t0 + secs;
  for (i = 0; i < conc; i++) {
    short_open(&cs[i], ep, port, seq++, (uint32_t)i);
    active++;
  }
  while (active > 0) {
    int n = epoll_wait(ep, evs, 256, 1000);
    double t = now();
    for (i = 0; i < n; i++) {
      uint32_t slot = evs[i].data.u32;
      short_conn *c = &cs[slot];
      if (c->phase == 0 || !short_step(c, evs[i].events))
        continue;
      /* close() also takes the fd out of the epoll set. */
      close(c->fd);
      c->phase = 0;
      done++;
      last = t;
      if (t < deadline)
        short_open(c, ep, port, seq++, slot);
      else
        active--;
    }
    if (t - last > TIMEOUT_S)
      die("churn: no connection finished for %.0f s", TIMEOUT_S);
  }
  {
    double el = now() - t0;
    printf("CHURN %lu %.3f %.1f\n", done, el, (double)done / el);
  }
  free(cs);
  return 0;
}

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig) {
  (void)sig;
  stop_flag = 1;
}

static int mode_idle(int port, int count, const char *proto, int sources) {
  short_conn *cs = calloc((size_t)count, sizeof(*cs));
  struct epoll_event evs[256];
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int opened = 0, held = 0, in_flight = 0;
  const int max_in_flight = 256;
  double t0, last;
  int i;

  if (cs == NULL)
    die("idle: no memory for %d connections", count);
  if (sources < 0 || sources > 250)
    die("idle: SOURCES must be 0 .. 250, not %d", sources);
  signal(SIGTERM, on_stop);
  signal(SIGINT, on_stop);
  set_protocol(proto, 1);
  t0 = last = now();
  while (held < count) {
    int n;
    while (opened < count && in_flight < max_in_flight) {
      /* By default all from one source address: the test holds
       * connections, it does not churn them.  Past ~28k connections one
       * address runs out of ephemeral ports: SOURCES spreads them. */
      uint32_t src = sources > 0
                         ? 0x7f000002u + (uint32_t)(opened % sources)
                         : 0x7f000101u;
      short_start(&cs[opened], ep, open_client_from(port, src),
                  (uint32_t)opened);
      opened++;
      in_flight++;
    }
    n = epoll_wait(ep, evs, 256, 1000);
    for (i = 0; i < n; i++) {
      short_conn *c = &cs[evs[i].data.u32];
      if (c->phase == 3 || !short_step(c, evs[i].events))
        continue;
      c->phase = 3;
      /* Held connections stay in the epoll set only to notice a close. */
      {
        struct epoll_event ev = {EPOLLRDHUP, {.u32 = evs[i].data.u32}};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      }
      held++;
      in_flight--;
      last = now();
    }
    if (now() - last > TIMEOUT_S)
      die("idle: stuck at %d of %d connections", held, count);
  }
  printf("HELD %d %.3f\n", count, now() - t0);
  fflush(stdout);
  /* Hold until told to stop; a held connection the server closes is an
   * error (idle connections must survive). */
  t0 = now();
  while (!stop_flag && now() - t0 < 600) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (i = 0; i < n; i++)
      if ((evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)
        die("idle: the server closed a held connection");
  }
  for (i = 0; i < count; i++)
    close(cs[i].fd);
  free(cs);
  return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP answer check                                                    */
/* ------------------------------------------------------------------ */

static void send_all(int fd, const char *s, size_t len) {
  while (len > 0) {
    ssize_t r = send(fd, s, len, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      die("http-check: send: %s", strerror(errno));
    s += r;
    len -= (size_t)r;
  }
}

/* Reads exactly `count' answers and checks every byte; nothing more may
 * arrive within 50 ms (an answer too many). */
static void expect_answers(int fd, int count) {
  size_t want = (size_t)count * BENCH_HTTP_RESPONSE_LEN, got = 0;
  uint8_t buf[4096];
  double t0 = now();
  struct timeval tv = {0, 50000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  while (got < want + 1) {
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r > 0) {
      size_t i;
      for (i = 0; i < (size_t)r; i++, got++) {
        if (got >= want)
          die("http-check: more than %d answers", count);
        if (buf[i] !=
            (uint8_t)bench_http_response[got % BENCH_HTTP_RESPONSE_LEN])
          die("http-check: wrong byte %zu of the answers", got);
      }
    } else if (r == 0) {
      die("http-check: closed after %zu of %zu bytes", got, want);
    } else if (errno == EAGAIN || errno == EINTR) {
      if (got == want)
        return;
      if (now() - t0 > TIMEOUT_S)
        die("http-check: %zu of %zu bytes after %.0f s", got, want,
            TIMEOUT_S);
    } else {
      die("http-check: recv: %s", strerror(errno));
    }
  }
}

static int mode_http_check(int port) {
  int fd = open_client(port, 0);
  int fl = fcntl(fd, F_GETFL);
  char three[3 * sizeof(http_request)];
  fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  /* One request. */
  send_all(fd, http_request, sizeof(http_request) - 1);
  expect_answers(fd, 1);
  /* Three pipelined requests in one segment. */
  snprintf(three, sizeof(three), "%s%s%s", http_request, http_request,
           http_request);
  send_all(fd, three, strlen(three));
  expect_answers(fd, 3);
  /* One request with its terminator split over three segments. */
  send_all(fd, "GET /x HTTP/1.1\r\nHost: bench\r\n\r", 31);
  usleep(20000);
  send_all(fd, "\n", 1);
  usleep(20000);
  send_all(fd, "GET /y HTTP/1.1\r\n", 17);
  usleep(20000);
  send_all(fd, "\r\n", 2);
  expect_answers(fd, 2);
  close(fd);
  printf("HTTP-OK\n");
  return 0;
}

static int mode_freeport(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7f000001u);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    die("freeport: %s", strerror(errno));
  printf("%d\n", ntohs(a.sin_port));
  close(fd);
  return 0;
}

static void usage(void) {
  fputs("usage: loadgen echo PORT BYTES [CONNS]\n"
        "       loadgen churn PORT SECS [CONC] [echo|http]\n"
        "       loadgen idle PORT COUNT [echo|http] [SOURCES]\n"
        "       loadgen http-check PORT\n"
        "       loadgen freeport\n",
        stderr);
  exit(2);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  if (argc < 2)
    usage();
  if (strcmp(argv[1], "freeport") == 0)
    return mode_freeport();
  if (argc < 3)
    usage();
  if (strcmp(argv[1], "echo") == 0 && argc >= 4)
    return mode_echo(atoi(argv[2]), strtoull(argv[3], NULL, 0),
                     argc > 4 ? atoi(argv[4]) : 1);
  if (strcmp(argv[1], "churn") == 0 && argc >= 4)
    return mode_churn(atoi(argv[2]), atof(argv[3]),
                      argc > 4 ? atoi(argv[4]) : 32,
                      argc > 5 ? argv[5] : "echo");
  if (strcmp(argv[1], "idle") == 0 && argc >= 4)
    return mode_idle(atoi(argv[2]), atoi(argv[3]),
                     argc > 4 ? argv[4] : "echo",
                     argc > 5 ? atoi(argv[5]) : 0);
  if (strcmp(argv[1], "http-check") == 0)
    return mode_http_check(atoi(argv[2]));
  usage();
  return 2;
}
