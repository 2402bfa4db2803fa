/*
 * dns_server.h -- a real DNS server for the tests, on loopback only.
 *
 * dns_server_start() runs Debian's dnsmasq (dnsmasq-base) in the foreground
 * on 127.0.0.1 and a free high port, with no upstream (--no-resolv), no
 * hosts file (--no-hosts) and only the records the test gives, then waits
 * until it answers.  Point a loop at it with
 * cltcp_loop_set_dns_servers(loop, srv.servers) before resolving any name
 * that is not in /etc/hosts: tests never send a DNS query beyond loopback.
 */
#ifndef CLTCP_TEST_DNS_SERVER_H
#define CLTCP_TEST_DNS_SERVER_H

#include <sys/types.h>

#include "cltcp.h"

#define DNSMASQ_PATH "/usr/sbin/dnsmasq"

typedef struct dns_server {
  pid_t pid;
  int port;
  char servers[64]; /* "127.0.0.1:PORT", for cltcp_loop_set_dns_servers() */
} dns_server;

/* Starts dnsmasq with the extra arguments `args' (NULL-terminated, e.g.
 * "--host-record=a.example,127.0.0.1").  `probe' is a name the server
 * answers (type A); it is queried until an answer comes.  Returns 0, or -1
 * after printing why (dnsmasq missing, did not start or answer in 5 s). */
int dns_server_start(dns_server *srv, const char *const *args,
                     const char *probe);

/* Stops it (SIGTERM, then SIGKILL after 2 s) and reaps it. */
void dns_server_stop(dns_server *srv);

/* A loopback UDP port where a "DNS server" never answers: a bound socket
 * that nobody reads.  Returns the port; *fd gets the socket.
 * udp_pending() tells how many datagrams wait on it (queries it got). */
int silent_udp_port(int *fd);
int udp_pending(int fd);

/* ---- the suite's server ----------------------------------------------------
 * A suite gives its records once with suite_dns_config() and adds
 * suite_dns_setup / suite_dns_teardown as an unchecked fixture: they run in
 * the runner process, once per test case, so the server is stopped even
 * when a (forked) test fails. */
extern dns_server suite_dns;
void suite_dns_config(const char *const *args, const char *probe);
void suite_dns_setup(void);
void suite_dns_teardown(void);
/* Points the loop at the suite's server; fails the test if it did not
 * start. */
void use_suite_dns(cltcp_id loop);
/* Points the loop at a silent UDP port, with this per-try timeout and
 * tries.  Returns the port's socket (close it at the end). */
int use_silent_dns(cltcp_id loop, double timeout, int tries);

#endif
