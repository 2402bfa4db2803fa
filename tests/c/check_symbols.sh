#!/bin/sh
# check_symbols.sh LIB -- fails unless every dynamic symbol LIB defines is
# part of the ABI (cltcp_*), as STYLE.md rule 1 demands: `nm -D` shows only
# the ABI.  Prints the offending symbols.
set -eu
lib="$1"
syms=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }')
if [ -z "$syms" ]; then
  echo "no dynamic symbols found in $lib" >&2
  exit 1
fi
bad=$(printf '%s\n' "$syms" | grep -v '^cltcp_' || true)
if [ -n "$bad" ]; then
  echo "symbols outside the ABI exported by $lib:" >&2
  printf '%s\n' "$bad" >&2
  exit 1
fi
# Every function the header declares is exported.
hdr="$2"
missing=""
for f in $(grep '^CLTCP_EXTERN' "$hdr" | grep -o 'cltcp_[a-z0-9_]*(' |
           tr -d '(' | sort -u); do
  printf '%s\n' "$syms" | grep -qx "$f" || missing="$missing $f"
done
if [ -n "$missing" ]; then
  echo "declared in cltcp.h but not exported:$missing" >&2
  exit 1
fi
echo "$(printf '%s\n' "$syms" | wc -l) symbols, all cltcp_*"
