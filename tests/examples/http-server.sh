#!/usr/bin/env bash
# Drives examples/http-server.lisp with real clients: curl for each case
# (exact bytes compared) and wrk -c50 -d3s (no socket errors, no non-2xx).
# The server stops by itself (GET /quit, or its time limit); the trap kills
# it if this script ends early.  Exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

fail() { echo "http-server.sh: FAIL: $*" >&2; exit 1; }
ok() { echo "  ok: $*"; }

# Exact comparison of a file with the expected bytes (given with printf
# escapes, so \r\n are real CR LF).
expect_bytes() { # what file printf-format
  printf "$3" > "$work/expected"
  cmp -s "$work/expected" "$2" || {
    echo "--- expected"; od -c "$work/expected" | head -20
    echo "--- got"; od -c "$2" | head -20
    fail "$1: bytes differ"
  }
  ok "$1"
}

cd "$root"
HTTP_SERVER_PORT=0 HTTP_SERVER_PORT_FILE="$work/port" HTTP_SERVER_SECONDS=600 \
  sbcl --noinform --non-interactive --no-userinit \
  --load examples/http-server.lisp >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 1500); do
  [ -s "$work/port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; fail "server died"; }
  sleep 0.2
done
[ -s "$work/port" ] || fail "server did not start within 300 s"
port=$(cat "$work/port")
url="http://127.0.0.1:$port"
echo "http-server.sh: server on port $port"
c=(curl -s --max-time 30)

hello='HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n'

# 1. keep-alive: two requests over one connection (curl reuses it: one
#    connect, then none).
"${c[@]}" -i "$url/" "$url/" -o "$work/ka1" -o "$work/ka2" \
  -w '%{num_connects}\n' > "$work/connects"
expect_bytes "keep-alive: first response" "$work/ka1" "$hello"
expect_bytes "keep-alive: second response" "$work/ka2" "$hello"
[ "$(tr '\n' ' ' < "$work/connects")" = "1 0 " ] \
  || fail "keep-alive: connections made: $(cat "$work/connects")"
ok "keep-alive: one connection for both"

# 2. Connection: close -- the server closes (cat returns only at its EOF).
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
timeout 20 cat <&3 > "$work/close" || fail "Connection: close: server did not close"
exec 3<&-
expect_bytes "Connection: close (closed by the server)" "$work/close" \
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello world\n'

# 3. chunked, raw framing, and as curl decodes it.
"${c[@]}" -i --raw "$url/chunked" -o "$work/chunked-raw"
expect_bytes "chunked: raw framing" "$work/chunked-raw" \
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nstreamed \r\n8\r\nthrough \r\n3\r\nan \r\nF\r\nasync-io-stream\r\n1\r\n\n\r\n0\r\n\r\n'
"${c[@]}" "$url/chunked" -o "$work/chunked"
expect_bytes "chunked: decoded body" "$work/chunked" 'streamed through an async-io-stream\n'

# 4. POST 5 MB with Expect: 100-continue, echoed byte for byte.
head -c 5242880 /dev/urandom > "$work/body"
"${c[@]}" -H 'Expect: 100-continue' -H 'Content-Type: application/octet-stream' \
  --data-binary @"$work/body" -D "$work/post-head" -o "$work/post-body" "$url/echo"
cmp -s "$work/body" "$work/post-body" || fail "POST: echoed body differs"
ok "POST 5 MB: body echoed byte for byte"
expect_bytes "POST: 100 Continue, then the response head" "$work/post-head" \
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5242880\r\n\r\n'

# 5. 404.
"${c[@]}" -i "$url/nowhere" -o "$work/404"
expect_bytes "404" "$work/404" \
  'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n'

# 6. wrk -c50 -d3s: requests answered, no socket errors, no non-2xx.
wrk -t2 -c50 -d3s --timeout 30s "$url/" > "$work/wrk" 2>&1 || { cat "$work/wrk"; fail "wrk failed"; }
requests=$(awk '/requests in/ {print $1}' "$work/wrk")
[ -n "$requests" ] && [ "$requests" -gt 0 ] || { cat "$work/wrk"; fail "wrk: no requests"; }
if grep -q 'Socket errors' "$work/wrk"; then cat "$work/wrk"; fail "wrk: socket errors"; fi
if grep -q 'Non-2xx' "$work/wrk"; then cat "$work/wrk"; fail "wrk: non-2xx responses"; fi
ok "wrk -c50 -d3s: $requests requests, no errors, all 2xx"

# 7. /quit: the server answers and stops by itself.
"${c[@]}" -i "$url/quit" -o "$work/quit"
expect_bytes "quit" "$work/quit" \
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbye\n'
for _ in $(seq 1 100); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then fail "server still running after /quit"; fi
wait "$server_pid" || fail "server exited with status $?"
server_pid=
if grep -qi 'http-server: .*error' "$work/server.log"; then
  cat "$work/server.log"; fail "server reported errors"
fi
ok "server stopped after /quit"
sed 's/^/  server: /' "$work/server.log"
echo "http-server.sh: all passed"
