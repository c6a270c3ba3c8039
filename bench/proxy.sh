#!/usr/bin/env bash
# moat against nginx, HAProxy and Caddy on this machine (bench/README.md).
#   bench/proxy.sh            everything: 3 rounds of 8 s per run (about 12 minutes)
#   BENCH_ROUNDS=1 BENCH_SECONDS=3 BENCH_ONLY=a,b BENCH_PROXIES=moat,nginx bench/proxy.sh
#   BENCH_SLOWLORIS=1 bench/proxy.sh   moat under slowloris (bench/slowloris.py), ~10 minutes
# Installs what is missing (as root, with apt-get), builds moat (release) unless
# MOAT_BIN names a binary, builds the noresume shim, then runs bench/proxy.py
# (or bench/slowloris.py).
# The report goes to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs what is missing without letting nginx, haproxy or caddy start a
# system service (scripts/deps.sh).
scripts/deps.sh bench

if [ -z "${MOAT_BIN:-}" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$(nproc)" --target moat
  MOAT_BIN=$PWD/build/moat
fi
export MOAT_BIN

mkdir -p build/bench
# shellcheck disable=SC2046  # pkg-config prints several words on purpose
gcc -std=c17 -O2 -Wall -Wextra -Werror -shared -fPIC -o build/bench/noresume.so \
    bench/noresume.c $(pkg-config --cflags --libs libssl) -ldl
export BENCH_SHIM=$PWD/build/bench/noresume.so

# BENCH_SLOWLORIS=1 (make bench-slowloris): the slowloris benchmark instead.
if [ "${BENCH_SLOWLORIS:-}" = 1 ]; then
  exec /usr/bin/python3 -u bench/slowloris.py
fi
exec /usr/bin/python3 -u bench/proxy.py
