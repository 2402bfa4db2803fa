/* c_echo_demo.c -- an echo server and a client on one loop, over loopback,
 * through the cltcp ABI.  Prints what happens and exits 0 when the client
 * got its message back. */
#include <cltcp.h>

#include <stdio.h>
#include <string.h>

static const char message[] = "hello from cltcp";
static char echoed[256];
static size_t echoed_len;
static cltcp_id server;

static void server_sock_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                           cltcp_id other, const uint8_t *data, size_t len) {
  (void)ctx;
  (void)other;
  switch (event) {
  case CLTCP_EV_DATA:
    printf("server: got %zu bytes, echoing\n", len);
    cltcp_socket_write(id, data, len, 0);
    break;
  case CLTCP_EV_EOF:
    printf("server: client closed its side\n");
    break;
  case CLTCP_EV_ERROR:
    printf("server: error %s\n", cltcp_err_name(status));
    break;
  case CLTCP_EV_CLOSE:
    printf("server: connection closed\n");
    break;
  }
}

static void server_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                      cltcp_id other, const uint8_t *data, size_t len) {
  (void)ctx;
  (void)id;
  (void)data;
  (void)len;
  if (event == CLTCP_EV_ACCEPT)
    printf("server: accepted a connection (socket id %#llx)\n",
           (unsigned long long)other);
  else if (event == CLTCP_EV_ERROR)
    printf("server: accept error %s\n", cltcp_err_name(status));
  else if (event == CLTCP_EV_CLOSE)
    printf("server: stopped listening\n");
}

static void client_cb(uintptr_t ctx, cltcp_id id, int event, int status,
                      cltcp_id other, const uint8_t *data, size_t len) {
  (void)ctx;
  (void)other;
  switch (event) {
  case CLTCP_EV_CONNECT:
    printf("client: connected, sending \"%s\"\n", message);
    cltcp_socket_write(id, (const uint8_t *)message, strlen(message), 0);
    break;
  case CLTCP_EV_DATA:
    if (echoed_len + len < sizeof(echoed)) {
      memcpy(echoed + echoed_len, data, len);
      echoed_len += len;
    }
    if (echoed_len >= strlen(message)) {
      printf("client: got back \"%.*s\"\n", (int)echoed_len, echoed);
      cltcp_socket_close(id, CLTCP_CLOSE_FLUSH);
      cltcp_server_close(server);
    }
    break;
  case CLTCP_EV_ERROR:
    printf("client: error %s: %s\n", cltcp_err_name(status),
           cltcp_strerror(status));
    cltcp_server_close(server);
    break;
  case CLTCP_EV_CLOSE:
    printf("client: closed\n");
    break;
  }
}

int main(void) {
  cltcp_id loop, client;
  int port, rc;
  printf("libcltcp %s\n", cltcp_version_string());
  if ((rc = cltcp_loop_new(&loop)) != 0 ||
      (rc = cltcp_server_listen(&server, loop, "127.0.0.1", 0, -1, server_cb,
                                0, server_sock_cb, 0)) != 0 ||
      (rc = cltcp_server_port(&port, server)) != 0) {
    fprintf(stderr, "setup failed: %s\n", cltcp_strerror(rc));
    return 1;
  }
  printf("server: listening on 127.0.0.1:%d\n", port);
  if ((rc = cltcp_socket_new(&client, loop, client_cb, 0)) != 0 ||
      (rc = cltcp_socket_connect(client, "127.0.0.1", port)) != 0) {
    fprintf(stderr, "connect failed: %s\n", cltcp_strerror(rc));
    return 1;
  }
  cltcp_loop_run(NULL, loop, CLTCP_RUN_DEFAULT);
  cltcp_loop_close(loop);
  if (echoed_len != strlen(message) || memcmp(echoed, message, echoed_len)) {
    fprintf(stderr, "echo mismatch\n");
    return 1;
  }
  printf("demo: ok\n");
  return 0;
}
