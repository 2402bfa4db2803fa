/* errors.c -- names and messages for every code, from one table. */
#include "internal.h"

/* Each libuv code cltcp.h names is libuv's own value. */
#define CLTCP__UV_ERR_CHECK(name, val)                                         \
  _Static_assert((int)CLTCP_##name == (int)UV_##name,                          \
                 "CLTCP_" #name " is UV_" #name);
CLTCP_UV_ERRNO_MAP(CLTCP__UV_ERR_CHECK)
#undef CLTCP__UV_ERR_CHECK

const char *cltcp_err_name(int code) {
  switch (code) {
  case 0:
    return "OK";
#define CLTCP__ERR_NAME(name, val, msg) \
  case CLTCP_##name:                    \
    return #name;
    CLTCP_ERRNO_MAP(CLTCP__ERR_NAME)
#undef CLTCP__ERR_NAME
  default:
    break;
  }
  /* libuv's own table knows every libuv code; it returns a leaked
   * "Unknown system error" string for the rest, which we avoid. */
  if (code < 0 && code > -4096) {
#define CLTCP__UV_NAME(name, msg) \
  if (code == UV_##name)          \
    return #name;
    UV_ERRNO_MAP(CLTCP__UV_NAME)
#undef CLTCP__UV_NAME
  }
  return "UNKNOWN";
}

const char *cltcp_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
#define CLTCP__ERR_MSG(name, val, msg) \
  case CLTCP_##name:                   \
    return msg;
    CLTCP_ERRNO_MAP(CLTCP__ERR_MSG)
#undef CLTCP__ERR_MSG
  default:
    break;
  }
  if (code < 0 && code > -4096) {
#define CLTCP__UV_MSG(name, msg) \
  if (code == UV_##name)         \
    return msg;
    UV_ERRNO_MAP(CLTCP__UV_MSG)
#undef CLTCP__UV_MSG
  }
  return "unknown error";
}
