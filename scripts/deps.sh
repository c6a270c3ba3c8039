#!/usr/bin/env bash
# Install what moat needs on Debian bookworm, only what is missing.
#   scripts/deps.sh build   compiler, cmake, -dev libraries
#   scripts/deps.sh test    build + cmocka and the real peers the tests use
#   scripts/deps.sh fuzz    build + clang for the libFuzzer targets
#   scripts/deps.sh bench   build + the proxies and the load generator of bench/
set -euo pipefail
what=${1:-build}

build=(gcc libc6-dev make cmake pkg-config libuv1-dev libssl-dev libyaml-dev libjansson-dev
       libnghttp2-dev libcurl4-openssl-dev openssl ca-certificates)
test=(libcmocka-dev curl python3 python3-websockets python3-h2 python3-cryptography
      nginx socat procps iproute2 faketime slowhttptest pebble bind9 bind9-dnsutils)
fuzz=(clang libclang-rt-dev)
bench=(nginx haproxy caddy wrk nghttp2-client python3)

pkgs=("${build[@]}")
case "$what" in
  build) ;;
  test) pkgs+=("${test[@]}") ;;
  fuzz) pkgs+=("${fuzz[@]}") ;;
  bench) pkgs+=("${bench[@]}") ;;
  *) echo "usage: $0 build|test|fuzz|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "moat: missing packages: ${missing[*]}" >&2
  echo "moat: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "moat: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages like nginx, haproxy and caddy start a system service on install
# (ports 80, 443); tests and benchmarks run their own instances, so keep
# services from starting while we install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
