/* dns_parse.c -- the resolver's pure text work: families, numeric
 * addresses (also for addr.c: IPv6 brackets), host name validation,
 * localhost names, server lists and PTR names.  No loop, no c-ares: the
 * Check suite test_dns_parse.c calls these directly. */
#include "resolver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

int cltcp__dns_family(int family) {
  switch (family) {
  case CLTCP_AF_UNSPEC:
  case CLTCP_AF_INET:
  case CLTCP_AF_INET6:
    return family;
  default:
    return -1;
  }
}

const char *cltcp__unbracket(char *buf, size_t max, const char *host) {
  size_t n = strlen(host);
  if (n < 3 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= max)
    return NULL;
  memcpy(buf, host + 1, n - 2);
  buf[n - 2] = '\0';
  return buf;
}

/* Appends an address unless it is already there (hosts files and DNS
 * answers may repeat one).  Returns the new count. */
size_t cltcp__addr_add(cltcp_addr *out, size_t n, size_t max, int family,
                       const char *text) {
  size_t i, len = strlen(text);
  if (n >= max || len >= sizeof(out[0].addr))
    return n;
  for (i = 0; i < n; i++)
    if (out[i].family == family && strcmp(out[i].addr, text) == 0)
      return n;
  out[n].family = family;
  memcpy(out[n].addr, text, len + 1);
  return n + 1;
}

size_t cltcp__addr_add_raw(cltcp_addr *out, size_t n, size_t max, int af,
                           const void *raw) {
  char text[INET6_ADDRSTRLEN + 1];
  if (uv_inet_ntop(af, raw, text, sizeof(text)) != 0)
    return n;
  return cltcp__addr_add(out, n, max,
                         af == AF_INET ? CLTCP_AF_INET : CLTCP_AF_INET6, text);
}

/* A numeric address "resolves" to itself without c-ares (whose 1.18
 * getaddrinfo even queries the servers for a literal with AF_UNSPEC).
 * Returns 1 if host is numeric, with *status and out[0] set; else 0. */
int cltcp__dns_numeric(cltcp_addr *out, int *status, const char *host,
                       int family) {
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  char buf[64];
  /* "[::1]" as well as "::1", like cltcp__parse_addr(). */
  const char *h = cltcp__unbracket(buf, sizeof(buf), host);
  if (h == NULL)
    h = host;
  if (h == host && uv_ip4_addr(h, 0, &sin) == 0) {
    *status = family == CLTCP_AF_INET6 ? CLTCP_ENODATA : 0;
    if (*status == 0)
      cltcp__addr_add_raw(out, 0, 1, AF_INET, &sin.sin_addr);
    return 1;
  }
  if (strchr(h, ':') != NULL && uv_ip6_addr(h, 0, &sin6) == 0) {
    *status = family == CLTCP_AF_INET ? CLTCP_ENODATA : 0;
    if (*status == 0) {
      /* Keep a scope ("fe80::1%eth0") as written; normalize the rest. */
      if (strchr(h, '%') == NULL ||
          cltcp__addr_add(out, 0, 1, CLTCP_AF_INET6, h) == 0)
        cltcp__addr_add_raw(out, 0, 1, AF_INET6, &sin6.sin6_addr);
    }
    return 1;
  }
  return 0;
}

/* A host name as DNS can carry it: labels of 1..63 bytes separated by dots,
 * at most 253 bytes (one trailing dot allowed), made of letters, digits,
 * '-' and '_' (and UTF-8 bytes, which c-ares passes as they are).  Anything
 * else (a malformed address such as "1:2:3:4:5:6:7:8:9", spaces, "a..b")
 * is CLTCP_EBADNAME at once rather than a query to the servers. */
bool cltcp__dns_name_valid(const char *host) {
  size_t len = strlen(host), label = 0, i;
  if (len > 0 && host[len - 1] == '.')
    len--;
  if (len == 0 || len > 253)
    return false;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)host[i];
    if (c == '.') {
      if (label == 0)
        return false;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c >= 0x80))
      return false;
    if (++label > 63)
      return false;
  }
  return true;
}

bool cltcp__dns_is_localhost(const char *host) {
  size_t len = strlen(host);
  if (len > 0 && host[len - 1] == '.')
    len--;
  if (len < 9 || strncasecmp(host + len - 9, "localhost", 9) != 0)
    return false;
  return len == 9 || host[len - 10] == '.';
}

/* Checks a server list -- comma-separated entries "a.b.c.d", "a.b.c.d:port",
 * "[v6]", "[v6]:port" or a bare "v6", ports 1..65535 -- and rewrites it in
 * the form c-ares 1.18 parses ("[v6]" without a port becomes "v6").  c-ares
 * itself would accept out-of-range ports and empty entries silently.
 * Returns 0 with a malloc'ed *out, CLTCP_EDNSCONFIG or UV_ENOMEM. */
int cltcp__dns_servers_normalize(char **out, const char *list) {
  size_t cap = strlen(list) + 1, used = 0;
  const char *p = list;
  char *res = malloc(cap);
  if (res == NULL)
    return UV_ENOMEM;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char buf[80];
    const char *host = buf, *port = NULL;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    bool v6 = false;
    int n;
    if (len == 0 || len >= sizeof(buf))
      goto bad;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (buf[0] == '[') {
      char *close = strchr(buf, ']');
      if (close == NULL)
        goto bad;
      *close = '\0';
      host = buf + 1;
      if (close[1] == ':')
        port = close + 2;
      else if (close[1] != '\0')
        goto bad;
      v6 = true;
    } else {
      char *colon = strchr(buf, ':');
      if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        *colon = '\0';
        port = colon + 1;
      }
      v6 = strchr(buf, ':') != NULL;
    }
    if (v6 ? (uv_ip6_addr(host, 53, &sin6) != 0 || strchr(host, '%'))
           : uv_ip4_addr(host, 53, &sin) != 0)
      goto bad;
    if (port != NULL) {
      char *e;
      long v;
      if (*port < '0' || *port > '9')
        goto bad;
      v = strtol(port, &e, 10);
      if (*e != '\0' || v < 1 || v > 65535)
        goto bad;
    }
    /* The rewritten entry is never longer than the original plus a
     * comma, except "v6" (no brackets) which is shorter. */
    if (v6 && port != NULL)
      n = snprintf(res + used, cap - used, "%s[%s]:%s", used ? "," : "", host,
                   port);
    else if (port != NULL)
      n = snprintf(res + used, cap - used, "%s%s:%s", used ? "," : "", host,
                   port);
    else
      n = snprintf(res + used, cap - used, "%s%s", used ? "," : "", host);
    if (n < 0 || (size_t)n >= cap - used)
      goto bad;
    used += (size_t)n;
    if (end == NULL)
      break;
    p = end + 1;
  }
  *out = res;
  return 0;
bad:
  free(res);
  return CLTCP_EDNSCONFIG;
}

/* Parses a numeric IPv4 or IPv6 address.  Returns the AF_* or 0. */
int cltcp__dns_reverse_parse(unsigned char bin[16], const char *addr) {
  if (uv_inet_pton(AF_INET, addr, bin) == 0)
    return AF_INET;
  if (strchr(addr, ':') != NULL && uv_inet_pton(AF_INET6, addr, bin) == 0)
    return AF_INET6;
  return 0;
}

/* The PTR query name: "d.c.b.a.in-addr.arpa" or 32 nibbles + "ip6.arpa". */
void cltcp__dns_arpa_name(char *out, size_t max, const unsigned char *bin,
                          int af) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  int i;
  if (af == AF_INET) {
    snprintf(out, max, "%u.%u.%u.%u.in-addr.arpa", bin[3], bin[2], bin[1],
             bin[0]);
    return;
  }
  for (i = 15; i >= 0 && n + 4 < max; i--) {
    out[n++] = hex[bin[i] & 0xF];
    out[n++] = '.';
    out[n++] = hex[bin[i] >> 4];
    out[n++] = '.';
  }
  snprintf(out + n, max - n, "ip6.arpa");
}
