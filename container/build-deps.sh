#!/bin/sh
# Installs what the image's build stage needs to compile the C element walker: a C compiler and,
# where the interpreter lacks them, its headers. Never fails the build: without a compiler the
# package installs its pure-Python walker, which gives the same results more slowly.
set -u
has_headers() {
  python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
if command -v cc >/dev/null 2>&1 && has_headers; then
  exit 0
fi
packages="gcc libc6-dev"
has_headers || packages="$packages python3-dev"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "build-deps: no apt-get; the image will use the pure-Python walker" >&2
  exit 0
fi
if timeout 300 apt-get update -qq >/dev/null 2>&1 \
   && timeout 600 apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1; then
  echo "build-deps: installed $packages" >&2
else
  echo "build-deps: could not install $packages; the image will use the pure-Python walker" >&2
fi
exit 0
