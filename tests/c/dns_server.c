/*
 * dns_server.c -- start and stop dnsmasq on loopback for the tests.  See
 * dns_server.h.
 */
#define _GNU_SOURCE
#include "dns_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bind_loopback(int type, int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int local_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  return ntohs(a.sin_port);
}

/* A port free for both UDP and TCP (dnsmasq binds both).  The kernel picks
 * ephemeral (high) ports; the small race with other programs is covered by
 * retrying in dns_server_start(). */
static int free_port(void) {
  int i;
  for (i = 0; i < 50; i++) {
    int u = bind_loopback(SOCK_DGRAM, 0), t, port;
    if (u < 0)
      return -1;
    port = local_port(u);
    t = bind_loopback(SOCK_STREAM, port);
    close(u);
    if (t >= 0) {
      close(t);
      return port;
    }
  }
  return -1;
}

/* One A query for `name' to 127.0.0.1:port; 1 when an answer (any rcode)
 * with our id comes back within `seconds'. */
static int probe_once(int port, const char *name, double seconds) {
  uint8_t q[300], r[512];
  size_t n = 0;
  const char *p = name;
  struct sockaddr_in a;
  struct pollfd pfd;
  int fd, ok = 0;
  uint16_t id = (uint16_t)(getpid() ^ (int)(mono() * 1000));
  memset(q, 0, 12);
  q[0] = (uint8_t)(id >> 8);
  q[1] = (uint8_t)id;
  q[2] = 0x01; /* RD */
  q[5] = 1;    /* QDCOUNT */
  n = 12;
  while (*p && n < sizeof q - 8) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (len == 0 || len > 63 || n + len + 1 > sizeof q - 8)
      return 0;
    q[n++] = (uint8_t)len;
    memcpy(q + n, p, len);
    n += len;
    p += len;
    if (*p == '.')
      p++;
  }
  q[n++] = 0;
  q[n++] = 0;
  q[n++] = 1; /* A */
  q[n++] = 0;
  q[n++] = 1; /* IN */
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (sendto(fd, q, n, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)n) {
    double end = mono() + seconds;
    pfd.fd = fd;
    pfd.events = POLLIN;
    while (!ok && mono() < end) {
      int ms = (int)((end - mono()) * 1000) + 1;
      if (poll(&pfd, 1, ms) <= 0)
        break;
      ssize_t got = recv(fd, r, sizeof r, 0);
      if (got >= 12 && r[0] == q[0] && r[1] == q[1] && (r[2] & 0x80))
        ok = 1;
      else if (got < 0 && errno != EAGAIN && errno != EINTR)
        break; /* ECONNREFUSED: not listening yet */
    }
  }
  close(fd);
  return ok;
}

static int start_on(dns_server *srv, int port, const char *const *args,
                    const char *probe) {
  char portarg[32];
  const char *fixed[] = {DNSMASQ_PATH, "--no-daemon", "--no-resolv",
                         "--no-hosts", "--bind-interfaces",
                         "--listen-address=127.0.0.1", portarg,
                         "--pid-file=", "--cache-size=0",
                         "--log-facility=/dev/null"};
  size_t nfixed = sizeof fixed / sizeof fixed[0], nargs = 0, i, n = 0;
  const char **argv;
  double end;
  pid_t pid;
  snprintf(portarg, sizeof portarg, "--port=%d", port);
  while (args && args[nargs])
    nargs++;
  argv = calloc(nfixed + nargs + 2, sizeof *argv);
  if (argv == NULL)
    return -1;
  for (i = 0; i < nfixed; i++)
    argv[n++] = fixed[i];
  /* As root, dnsmasq would drop to user "nobody"; keep root (the doc's
   * verified command line).  Otherwise it runs as us. */
  if (geteuid() == 0)
    argv[n++] = "--user=root";
  for (i = 0; i < nargs; i++)
    argv[n++] = args[i];
  pid = fork();
  if (pid < 0) {
    free(argv);
    return -1;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    /* Die with the test runner, whatever happens to it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      if (getenv("DNS_SERVER_VERBOSE") == NULL)
        dup2(devnull, 2);
    }
    execv(DNSMASQ_PATH, (char *const *)argv);
    _exit(127);
  }
  free(argv);
  srv->pid = pid;
  srv->port = port;
  snprintf(srv->servers, sizeof srv->servers, "127.0.0.1:%d", port);
  end = mono() + 5.0;
  while (mono() < end) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      srv->pid = 0;
      return -1; /* exited: port taken, bad option, ... */
    }
    if (probe_once(port, probe, 0.2))
      return 0;
  }
  dns_server_stop(srv);
  return -1;
}

int dns_server_start(dns_server *srv, const char *const *args,
                     const char *probe) {
  int attempt;
  memset(srv, 0, sizeof *srv);
  if (access(DNSMASQ_PATH, X_OK) != 0) {
    fprintf(stderr, "dns_server: %s not found (install dnsmasq-base)\n",
            DNSMASQ_PATH);
    return -1;
  }
  for (attempt = 0; attempt < 5; attempt++) {
    int port = free_port();
    if (port > 0 && start_on(srv, port, args, probe) == 0)
      return 0;
  }
  fprintf(stderr, "dns_server: dnsmasq did not start or answer "
                  "(run with DNS_SERVER_VERBOSE=1 to see its messages)\n");
  return -1;
}

void dns_server_stop(dns_server *srv) {
  double end;
  int status;
  if (srv->pid <= 0)
    return;
  kill(srv->pid, SIGTERM);
  end = mono() + 2.0;
  while (waitpid(srv->pid, &status, WNOHANG) == 0) {
    struct timespec ts = {0, 10000000};
    if (mono() > end) {
      kill(srv->pid, SIGKILL);
      waitpid(srv->pid, &status, 0);
      break;
    }
    nanosleep(&ts, NULL);
  }
  srv->pid = 0;
}

int silent_udp_port(int *fd) {
  *fd = bind_loopback(SOCK_DGRAM, 0);
  if (*fd < 0)
    return -1;
  return local_port(*fd);
}

int udp_pending(int fd) {
  uint8_t buf[600];
  int n = 0;
  while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
    n++;
  return n;
}

/* ---- the suite's server ------------------------------------------------- */

dns_server suite_dns;
static int suite_dns_ok;
static const char *const *suite_dns_args;
static const char *suite_dns_probe;

void suite_dns_config(const char *const *args, const char *probe) {
  suite_dns_args = args;
  suite_dns_probe = probe;
}

void suite_dns_setup(void) {
  suite_dns_ok =
      dns_server_start(&suite_dns, suite_dns_args, suite_dns_probe) == 0;
}

void suite_dns_teardown(void) { dns_server_stop(&suite_dns); }

void use_suite_dns(cltcp_id loop) {
  ck_assert_msg(suite_dns_ok, "dnsmasq did not start");
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, suite_dns.servers), 0);
}

int use_silent_dns(cltcp_id loop, double timeout, int tries) {
  char servers[64];
  int fd, port = silent_udp_port(&fd);
  ck_assert_int_gt(port, 0);
  snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
  ck_assert_int_eq(cltcp_loop_set_dns_servers(loop, servers), 0);
  ck_assert_int_eq(cltcp_loop_set_dns_timeout(loop, timeout, tries), 0);
  return fd;
}
