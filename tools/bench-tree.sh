#!/usr/bin/env bash
# tools/bench-tree.sh — build kvfs-bench-tree in Release and run it, printing its table.
#
#   tools/bench-tree.sh [kvfs-bench-tree options]     e.g.  tools/bench-tree.sh -n 1000000
#
# Builds into build-release/ (override with KVFS_BUILD_DIR=dir) with -DCMAKE_BUILD_TYPE=Release,
# then runs build-release/kvfs-bench-tree with the arguments given (see kvfs-bench-tree(1)).
# Exits with the benchmark's status.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KVFS_BUILD_DIR:-build-release}
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target kvfs-bench-tree -j "$jobs" >/dev/null
exec "$build/kvfs-bench-tree" "$@"
