/* addr.c -- numeric address parsing and formatting. */
#include "internal.h"

#include <string.h>

int cltcp__parse_addr(struct sockaddr_storage *ss, const char *host,
                      int port) {
  if (host == NULL || port < 0 || port > 65535)
    return UV_EINVAL;
  memset(ss, 0, sizeof(*ss));
  if (*host == '\0')
    host = "0.0.0.0";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
    return 0;
  /* Accept "[::1]" as well as "::1". */
  if (host[0] == '[') {
    char buf[64];
    const char *h = cltcp__unbracket(buf, sizeof(buf), host);
    if (h == NULL)
      return UV_EINVAL;
    return uv_ip6_addr(h, port, (struct sockaddr_in6 *)ss) == 0 ? 0 : UV_EINVAL;
  }
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return UV_EINVAL;
}

int cltcp__format_addr(char *buf, size_t buflen, int *port, int *family,
                       const struct sockaddr *sa) {
  char tmp[INET6_ADDRSTRLEN + 1];
  int p, f, rc;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    rc = uv_ip4_name(in, tmp, sizeof(tmp));
    p = ntohs(in->sin_port);
    f = 4;
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    rc = uv_ip6_name(in6, tmp, sizeof(tmp));
    p = ntohs(in6->sin6_port);
    f = 6;
  } else {
    return UV_EINVAL;
  }
  if (rc != 0)
    return rc;
  if (buf != NULL) {
    size_t n = strlen(tmp);
    if (n + 1 > buflen)
      return UV_ENOBUFS;
    memcpy(buf, tmp, n + 1);
  }
  if (port != NULL)
    *port = p;
  if (family != NULL)
    *family = f;
  return 0;
}
