#!/usr/bin/env bash
# tools/bench.sh — build kvfs-bench in Release and run it, printing its tables.
#
#   tools/bench.sh [kvfs-bench options]     e.g.  tools/bench.sh -n 200000
#
# Builds into build-release/ (override with KVFS_BUILD_DIR=dir) with -DCMAKE_BUILD_TYPE=Release,
# then runs build-release/kvfs-bench with the arguments given (see kvfs-bench(1)).  LMDB and
# SQLite are compared when liblmdb-dev and libsqlite3-dev are installed.
# Exits with the benchmark's status.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KVFS_BUILD_DIR:-build-release}
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target kvfs-bench -j "$jobs" >/dev/null
exec "$build/kvfs-bench" "$@"
