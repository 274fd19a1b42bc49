#!/usr/bin/env bash
# tools/bench-check.sh — how fast kvfs-check checks a store (issue target: a 1 GiB store in at
# most 2 s of CPU), for stores of 1 and 4 GiB by default, against a baseline measured in the
# same run on the same file: hashing it with XXH3 (`xxhsum -H3`, package xxhash) — the speed
# at which pages can be checksummed at all — or, without xxhsum, `cat > /dev/null`.
#
#   bash tools/bench-check.sh [BUILD_DIR [GIB ...]]      (default: build 1 4)
#
# Stores are made by kvfs-bench (fillseq of 64 KiB values, so the store is mostly data pages
# and its trees have thousands of leaves) in a scratch directory under $TMPDIR (or /tmp), which
# needs GIB + 10% free space per size; it is removed afterwards.  Every file is read once
# before timing, so both runs see the page cache warm.  Prints CPU seconds (user + system) of
# `kvfs-check -n` and of the baseline, and their ratio.
set -euo pipefail
build=${1:-build}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1 4)
for t in kvfs-check kvfs-bench; do
  [ -x "$build/$t" ] || { echo "bench-check: $build/$t not built" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/kvfs-bench-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

cpu() { # command... -> "user+sys" seconds on stdout
  local TIMEFORMAT='%U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  awk '{ printf "%.2f", $1 + $2 }' <<<"$t"
}

printf '%-8s %12s %14s %14s %8s\n' size pages check_cpu_s baseline_cpu_s ratio
for g in "${sizes[@]}"; do
  dir="$work/$g"
  n=$((g * 16384)) # 64 KiB values
  "$build/kvfs-bench" -d "$dir" -e kvfs -w fillseq --value-size "64K:$n" -k >/dev/null
  store="$dir/kvfs-65536-seq"
  cat "$store" "$store-wal" >/dev/null
  status=0
  "$build/kvfs-check" -n "$store" >"$work/out" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "bench-check: kvfs-check -n exited $status on a fresh store:" >&2
    cat "$work/out" >&2
    exit 1
  fi
  check=$(cpu "$build/kvfs-check" -n "$store")
  if command -v xxhsum >/dev/null 2>&1; then
    base=$(cpu xxhsum -H3 "$store"); bname="xxhsum -H3"
  else
    base=$(cpu cat "$store"); bname="cat"
  fi
  pages=$(( $(stat -c %s "$store") / 4096 ))
  printf '%-8s %12d %14s %14s %8s\n' "${g}GiB" "$pages" "$check" "$base" \
    "$(awk -v a="$check" -v b="$base" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')"
  rm -rf "$dir"
done
echo "baseline: $bname over the data file; target: check_cpu_s <= 2 per GiB"
