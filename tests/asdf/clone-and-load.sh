#!/bin/sh
# tests/asdf/clone-and-load.sh -- what a new user does: a fresh `git clone'
# of this repository's committed HEAD into ~/common-lisp/ of an empty HOME,
# no build directory, nothing else set up.  Checks that
#   1. (asdf:load-system :cl-async-tcp) in `sbcl --non-interactive' finds no
#      libcltcp, builds it (one progress line) and loads it from the clone;
#   2. an echo round trip over loopback works with it, and compiling the
#      library's own files (a first load: the cache is empty) printed no
#      compiler note or warning;
#   3. a second load in a new image does not build again: no progress line,
#      and the library file is untouched (same mtime);
#   4. without the build tools (meson not on PATH) the load fails with an
#      error that names the Debian packages to install;
#   5. (as root, with runuser) a user who cannot write to the sources gets
#      the build in ~/.cache/cl-async-tcp/ instead.
# Exits 0 when all hold.  Needs git, sbcl and the packages of tools/install-deps.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/cl-async-tcp-clone.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
home="$tmp/home"
clone="$home/common-lisp/cl-async-tcp"
mkdir -p "$home/common-lisp"
git clone -q "$repo" "$clone"
git -C "$clone" checkout -q --detach "$(git -C "$repo" rev-parse HEAD)"
[ ! -e "$clone/build" ] || { echo "clone-and-load: the clone has a build directory" >&2; exit 1; }

cat > "$tmp/load.lisp" <<'LISP'
(require :asdf)
(asdf:load-system :cl-async-tcp)
(let ((got nil))
  (as:start-event-loop
   (lambda ()
     (let ((server (as:tcp-server "127.0.0.1" 0
                                  (lambda (socket data) (as:write-socket-data socket data))
                                  nil)))
       (as:tcp-connect "127.0.0.1" (as:tcp-server-port server)
                       (lambda (socket data)
                         (setf got (babel:octets-to-string data))
                         (as:close-socket socket)
                         (as:close-tcp-server server))
                       nil :data "round trip"))))
  (format t "~&clone-and-load: library ~A~%" (namestring cl-async-tcp::*library-pathname*))
  (format t "~&clone-and-load: echo ~S~%" got)
  (uiop:quit (if (equal got "round trip") 0 1)))
LISP

run_load() {
  env -u CL_ASYNC_TCP_LIBRARY HOME="$home" XDG_CACHE_HOME= XDG_CONFIG_HOME= \
    sbcl --noinform --non-interactive --no-userinit --load "$tmp/load.lisp" >"$1" 2>&1 \
    || { echo "clone-and-load: sbcl failed:" >&2; tail -30 "$1" >&2; exit 1; }
}

fail() { echo "clone-and-load: $*" >&2; exit 1; }

run_load "$tmp/first.out"
grep "building libcltcp" "$tmp/first.out" || fail "the first load printed no build line"
grep -q 'clone-and-load: echo "round trip"' "$tmp/first.out" || fail "no echo on the first load"
# The compiler's output for the clone's own files (SBCL prints a section per
# file, starting with "; compiling file").
awk -v dir="$clone/" 'index($0, "; compiling file \"") == 1 { own = index($0, dir) > 0 }
                      own' "$tmp/first.out" >"$tmp/own-compile.out"
grep -q "compiling file" "$tmp/own-compile.out" || fail "found no compiler output for the clone's files"
if grep -E "; (note|caught [A-Z-]*WARNING)" "$tmp/own-compile.out"; then
  fail "the library's own files gave compiler notes or warnings"
fi
lib=$(sed -n 's/^clone-and-load: library //p' "$tmp/first.out")
case "$lib" in
  "$clone"/*|"$home"/*) ;;
  *) fail "loaded $lib, not a library built for the clone" ;;
esac
real=$(readlink -f "$lib")
mtime=$(stat -c %Y "$real")
echo "clone-and-load: first load built and loaded $real"

sleep 1   # a rebuild would then show in the mtime
run_load "$tmp/second.out"
if grep "building libcltcp" "$tmp/second.out"; then fail "the second load built again"; fi
grep -q 'clone-and-load: echo "round trip"' "$tmp/second.out" || fail "no echo on the second load"
[ "$(stat -c %Y "$real")" = "$mtime" ] || fail "the library file changed on the second load"
echo "clone-and-load: second load reused it (no build line, same mtime)"

# 4. Another fresh clone, with a PATH that has sbcl but no meson or ninja.
home2="$tmp/home2"
mkdir -p "$home2/common-lisp" "$tmp/bin"
git clone -q "$repo" "$home2/common-lisp/cl-async-tcp"
ln -s "$(command -v sbcl)" "$tmp/bin/sbcl"
if env -u CL_ASYNC_TCP_LIBRARY HOME="$home2" XDG_CACHE_HOME= PATH="$tmp/bin" \
     sbcl --noinform --non-interactive --no-userinit --load "$tmp/load.lisp" \
     >"$tmp/notools.out" 2>&1; then
  fail "the load without meson succeeded"
fi
grep -q "meson is not installed" "$tmp/notools.out" || fail "no 'meson is not installed' in the error"
grep -q "apt-get install build-essential meson ninja-build pkg-config libuv1-dev libc-ares-dev" \
  "$tmp/notools.out" || fail "the error does not name the Debian packages"
echo "clone-and-load: without meson the error names the Debian packages"

# 5. Sources the user cannot write: the build goes to the user's cache.
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
  home3="$tmp/home3"
  mkdir -p "$home3/common-lisp"
  git clone -q "$repo" "$home3/common-lisp/cl-async-tcp"
  chmod -R a+rX,go-w "$tmp"
  chown nobody "$home3"
  chmod 755 "$home3/common-lisp"
  if ! runuser -u nobody -- env -u CL_ASYNC_TCP_LIBRARY HOME="$home3" XDG_CACHE_HOME= \
       sbcl --noinform --non-interactive --no-userinit --load "$tmp/load.lisp" \
       >"$tmp/cache.out" 2>&1; then
    tail -30 "$tmp/cache.out" >&2; fail "the load as a user without write access failed"
  fi
  grep -q "building libcltcp with meson + ninja in $home3/.cache/cl-async-tcp/" "$tmp/cache.out" \
    || { tail -30 "$tmp/cache.out" >&2; fail "the build did not go to the user's cache"; }
  grep -q 'clone-and-load: echo "round trip"' "$tmp/cache.out" || fail "no echo from the cached build"
  echo "clone-and-load: unwritable sources: built in ~/.cache/cl-async-tcp/"
else
  echo "clone-and-load: (not root: the unwritable-sources case is not checked)"
fi
echo "clone-and-load: 1 passed, 0 failed"
