/*
 * raw_common.h -- what the two raw libuv baselines share.
 *
 * Benchmark code, not part of the library.  The raw servers are what a
 * careful C programmer writes straight on libuv: one read buffer per loop
 * (the read callback consumes it before returning), uv_try_write first and a
 * copied uv_write only for what the kernel did not take, and reading paused
 * while too much is queued.  They are the baseline every other server is
 * measured against, so they must be good, not naive.
 *
 * A second argument "timeout=SECS" gives every connection a read timeout:
 * one uv_timer per connection, restarted on every read, closing the
 * connection when it fires (what a careful libuv program does; libuv keeps
 * its timers in a heap, so idle timers cost nothing until they are due).
 * Without it no timer exists and a connection is what it always was.
 */
#ifndef RAW_COMMON_H
#define RAW_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define RAW_READ_BUF (64 * 1024)
/* Stop reading a connection whose write queue holds more than this. */
#define RAW_HIGH_WATER (1024 * 1024)

typedef struct raw_conn {
  uv_tcp_t tcp;
  int state;      /* HTTP terminator match state */
  int paused;     /* reading stopped for backpressure */
  int eof;        /* peer closed its side */
  int closing;
} raw_conn;

/* With a read timeout a connection is allocated as this larger struct (the
 * connection first); without one, as a plain raw_conn. */
typedef struct raw_timed_conn {
  raw_conn conn;
  uv_timer_t timer;
} raw_timed_conn;

/* The read timeout in milliseconds; 0 = none (the default). */
static uint64_t raw_read_timeout_ms;

typedef struct raw_write {
  uv_write_t req;
  raw_conn *conn;
  char data[];    /* the bytes the kernel did not take */
} raw_write;

static char raw_read_buf[RAW_READ_BUF];

static void raw_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = raw_read_buf;
  buf->len = sizeof(raw_read_buf);
}

/* `closing' counts the handles still to be closed: the connection is freed
 * with the last one. */
static void raw_free_cb(uv_handle_t *h) {
  raw_conn *c = h->data;
  if (--c->closing == 0)
    free(c);
}

static void raw_close(raw_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  if (raw_read_timeout_ms > 0) {
    c->closing = 2;
    uv_close((uv_handle_t *)&((raw_timed_conn *)c)->timer, raw_free_cb);
  }
  uv_close((uv_handle_t *)&c->tcp, raw_free_cb);
}

static void raw_timeout_cb(uv_timer_t *t) { raw_close(t->data); }

static void raw_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void raw_shutdown_cb(uv_shutdown_t *req, int status) {
  raw_conn *c = req->handle->data;
  (void)status;
  free(req);
  raw_close(c);
}

/* After the peer's EOF: close once everything queued has been sent. */
static void raw_finish(raw_conn *c) {
  uv_shutdown_t *req;
  if (c->closing)
    return;
  if (c->tcp.write_queue_size > 0)
    return; /* raw_write_cb comes back here */
  req = malloc(sizeof(*req));
  if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp,
                                 raw_shutdown_cb) != 0) {
    free(req);
    raw_close(c);
  }
}

static void raw_write_cb(uv_write_t *req, int status) {
  raw_write *w = (raw_write *)req;
  raw_conn *c = w->conn;
  free(w);
  if (status < 0) {
    raw_close(c);
    return;
  }
  if (c->closing)
    return;
  if (c->paused && c->tcp.write_queue_size <= RAW_HIGH_WATER / 2) {
    c->paused = 0;
    if (!c->eof)
      uv_read_start((uv_stream_t *)&c->tcp, raw_alloc_cb, raw_read_cb);
  }
  if (c->eof)
    raw_finish(c);
}

/* Sends len bytes: straight to the kernel when the queue is empty, the rest
 * copied into one write request. */
static void raw_send(raw_conn *c, const char *data, size_t len) {
  raw_write *w;
  uv_buf_t b;
  int r;

  if (c->tcp.write_queue_size == 0) {
    b = uv_buf_init((char *)data, (unsigned)len);
    r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r >= 0) {
      data += r;
      len -= (size_t)r;
    } else if (r != UV_EAGAIN) {
      raw_close(c);
      return;
    }
  }
  if (len == 0)
    return;
  w = malloc(sizeof(*w) + len);
  if (w == NULL) {
    raw_close(c);
    return;
  }
  w->conn = c;
  memcpy(w->data, data, len);
  b = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, raw_write_cb) != 0) {
    free(w);
    raw_close(c);
    return;
  }
  if (c->tcp.write_queue_size > RAW_HIGH_WATER && !c->paused) {
    c->paused = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
}

static void raw_on_data(raw_conn *c, const char *data, size_t len);

static void raw_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  raw_conn *c = s->data;
  if (nread > 0) {
    if (raw_read_timeout_ms > 0)
      uv_timer_again(&((raw_timed_conn *)c)->timer);
    raw_on_data(c, buf->base, (size_t)nread);
  } else if (nread == UV_EOF) {
    c->eof = 1;
    uv_read_stop(s);
    raw_finish(c);
  } else if (nread < 0) {
    raw_close(c);
  }
}

static void raw_connection_cb(uv_stream_t *server, int status) {
  raw_conn *c;
  if (status < 0)
    return;
  c = calloc(1, raw_read_timeout_ms > 0 ? sizeof(raw_timed_conn)
                                        : sizeof(raw_conn));
  if (c == NULL)
    return;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (raw_read_timeout_ms > 0) {
    uv_timer_t *t = &((raw_timed_conn *)c)->timer;
    uv_timer_init(server->loop, t);
    t->data = c;
    uv_timer_start(t, raw_timeout_cb, raw_read_timeout_ms,
                   raw_read_timeout_ms);
  }
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    raw_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, raw_alloc_cb, raw_read_cb);
}

/* Listens on 127.0.0.1:argv[1] (0 = any free port), prints "READY <port>"
 * and runs the loop until killed.  argv[2] "timeout=SECS": read timeouts. */
static int raw_main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int namelen = sizeof(bound);
  int port = argc > 1 ? atoi(argv[1]) : 0;
  int r;

  if (argc > 2 && strncmp(argv[2], "timeout=", 8) == 0) {
    double secs = atof(argv[2] + 8);
    if (!(secs > 0)) {
      fprintf(stderr, "bad read timeout: %s\n", argv[2]);
      return 2;
    }
    raw_read_timeout_ms = (uint64_t)(secs * 1000.0);
  } else if (argc > 2) {
    fprintf(stderr, "unknown argument: %s\n", argv[2]);
    return 2;
  }
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&server, 4096, raw_connection_cb);
  if (r != 0) {
    fprintf(stderr, "listen: %s\n", uv_strerror(r));
    return 1;
  }
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &namelen);
  printf("READY %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}

#endif /* RAW_COMMON_H */
