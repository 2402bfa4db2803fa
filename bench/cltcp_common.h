/*
 * cltcp_common.h -- what the two cltcp servers share.
 *
 * Benchmark code, not part of the library.  The same servers as raw_*.c,
 * written on the cltcp ABI the way a binding would use it, so that the
 * difference to the raw baseline is the shim's own cost: id lookups, the
 * single callback with its context word, the library's read buffer and
 * write path.  Backpressure uses the documented drain mark.
 *
 * A second argument "timeout=SECS" sets a read timeout on every accepted
 * connection through cltcp_socket_set_timeouts (the bench's idle CPU figure
 * with timeouts set); without it no timeout is set.
 */
#ifndef CLTCP_COMMON_H
#define CLTCP_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cltcp.h>

/* Stop reading a connection whose write queue holds more than this. */
#define CL_HIGH_WATER (1024 * 1024)

/* The read timeout set on every accepted connection; 0 = none. */
static double cl_read_timeout_s;

typedef struct cl_conn {
  int state;  /* HTTP terminator match state */
  int paused; /* reading disabled for backpressure */
} cl_conn;

static void cl_on_data(cltcp_id sock, cl_conn *c, const uint8_t *data,
                       size_t len);

static void cl_check(int r, const char *what) {
  if (r != 0) {
    fprintf(stderr, "%s: %s\n", what, cltcp_strerror(r));
    exit(1);
  }
}

/* Writes len bytes.  With check_queue, pauses reading while the queue is
 * above the mark (the echo server; the HTTP answers are tiny and the raw
 * baseline's check is a field read, while this one is a call). */
static void cl_send(cltcp_id sock, cl_conn *c, const uint8_t *data,
                    size_t len, int check_queue) {
  size_t queued = 0;
  if (cltcp_socket_write(sock, data, len, 0) != 0)
    return; /* closing: the close event frees the connection */
  if (check_queue && cltcp_socket_queued(&queued, sock) == 0 &&
      queued > CL_HIGH_WATER && !c->paused) {
    c->paused = 1;
    cltcp_socket_enable(sock, 0, -1);
  }
}

static void cl_sock_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                       cltcp_id other, const uint8_t *data, size_t len) {
  cl_conn *c = (cl_conn *)ctx;
  (void)status;
  (void)other;
  switch (event) {
  case CLTCP_EV_DATA:
    cl_on_data(id, c, data, len);
    break;
  case CLTCP_EV_DRAIN:
    if (c->paused) {
      c->paused = 0;
      cltcp_socket_enable(id, 1, -1);
    }
    break;
  case CLTCP_EV_CLOSE:
    free(c);
    break;
  default:
    /* EOF: left open, the library sends what is queued, then closes.
     * ERROR: the library closes the socket after this callback. */
    break;
  }
}

static void cl_server_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                         cltcp_id other, const uint8_t *data, size_t len) {
  cl_conn *c;
  (void)ctx;
  (void)id;
  (void)status;
  (void)data;
  (void)len;
  if (event != CLTCP_EV_ACCEPT)
    return;
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    cltcp_socket_close(other, CLTCP_CLOSE_NOW);
    return;
  }
  cltcp_socket_set_cb(other, cl_sock_cb, (uintptr_t)c);
  cltcp_socket_nodelay(other, 1);
  cltcp_socket_set_drain_mark(other, CL_HIGH_WATER / 2);
  if (cl_read_timeout_s > 0)
    cl_check(cltcp_socket_set_timeouts(other, cl_read_timeout_s, 0),
             "set timeouts");
}

/* Listens on 127.0.0.1:argv[1] (0 = any free port), prints "READY <port>"
 * and runs the loop until killed.  argv[2] "timeout=SECS": read timeouts. */
static int cl_main(int argc, char **argv) {
  cltcp_id loop, server;
  int port = argc > 1 ? atoi(argv[1]) : 0;
  if (argc > 2 && strncmp(argv[2], "timeout=", 8) == 0) {
    cl_read_timeout_s = atof(argv[2] + 8);
    if (!(cl_read_timeout_s > 0)) {
      fprintf(stderr, "bad read timeout: %s\n", argv[2]);
      return 2;
    }
  } else if (argc > 2) {
    fprintf(stderr, "unknown argument: %s\n", argv[2]);
    return 2;
  }
  cl_check(cltcp_loop_new(&loop), "loop");
  cl_check(cltcp_server_listen(&server, loop, "127.0.0.1", port, 4096,
                               cl_server_cb, 0, cl_sock_cb, 0),
           "listen");
  cl_check(cltcp_server_port(&port, server), "port");
  printf("READY %d\n", port);
  fflush(stdout);
  cl_check(cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT), "run");
  return 0;
}

#endif /* CLTCP_COMMON_H */
