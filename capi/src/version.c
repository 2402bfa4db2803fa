/* version.c -- version handshake for bindings. */
#include "internal.h"

#define CLTCP__STR2(x) #x
#define CLTCP__STR(x) CLTCP__STR2(x)

int cltcp_abi_version(void) { return CLTCP_ABI_VERSION; }

int cltcp_version(void) {
  return CLTCP_VERSION_MAJOR * 10000 + CLTCP_VERSION_MINOR * 100 +
         CLTCP_VERSION_PATCH;
}

const char *cltcp_version_string(void) {
  return CLTCP__STR(CLTCP_VERSION_MAJOR) "." CLTCP__STR(
      CLTCP_VERSION_MINOR) "." CLTCP__STR(CLTCP_VERSION_PATCH);
}
