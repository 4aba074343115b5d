#!/bin/sh
# Installs what building and testing llamac needs on Debian 12, and only what is missing.
set -eu
need=""
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
command -v npm >/dev/null 2>&1 || need="$need nodejs npm"
[ -f /usr/include/pcre2.h ] || need="$need libpcre2-dev"
[ -f /usr/include/utf8proc.h ] || need="$need libutf8proc-dev"
[ -f /usr/include/microhttpd.h ] || need="$need libmicrohttpd-dev"
# libasan/libubsan come with gcc on Debian; check the runtime is really there.
if command -v cc >/dev/null 2>&1; then
  printf 'int main(void){return 0;}\n' > /tmp/llamac-asan-probe.c
  if ! cc -fsanitize=address,undefined /tmp/llamac-asan-probe.c -o /tmp/llamac-asan-probe 2>/dev/null; then
    need="$need libasan8 libubsan1"
  fi
  rm -f /tmp/llamac-asan-probe /tmp/llamac-asan-probe.c
fi
if [ -n "$need" ]; then
  echo "install-deps: installing:$need"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
