#!/usr/bin/env bash
# Build and run every kvfs test on a Debian 12 machine, installing what is missing.
#
#   bash tests/run.sh            plain build + every test, then ASan+UBSan build + every test
#                                (model tests with fewer operations per seed), then
#                                ThreadSanitizer build + the concurrency tests
#   KVFS_RUN_ONLY=plain|sanitize|tsan bash tests/run.sh    one of the three
#
# Build trees: build/, build-san/, build-tsan/.  Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(cmake gcc make pkg-config libfuse3-dev fuse3 check libxxhash-dev liblmdb-dev libsqlite3-dev groff-base)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

jobs=$(nproc 2>/dev/null || echo 2)
only=${KVFS_RUN_ONLY:-all}

run() { # dir, ctest args, cmake args...
  local dir=$1 targs=$2; shift 2
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  # shellcheck disable=SC2086
  ctest --test-dir "$dir" --output-on-failure $targs
}

if [ "$only" = all ] || [ "$only" = plain ]; then
  echo "== plain build (Debug, asserts on) =="
  run build "-j $jobs" -DCMAKE_BUILD_TYPE=Debug
fi
if [ "$only" = all ] || [ "$only" = sanitize ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer =="
  # The model tests run every seed with fewer operations each (the plain build runs them in
  # full): a memory error shows at its first occurrence, and the sanitized run stays short.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  KVFS_MODEL_OPS=${KVFS_MODEL_OPS:-1500} KVFS_MODEL_STEPS=${KVFS_MODEL_STEPS:-800} \
    run build-san "-j $jobs" -DCMAKE_BUILD_TYPE=Debug -DKVFS_SANITIZE=ON
fi
if [ "$only" = all ] || [ "$only" = tsan ]; then
  echo "== ThreadSanitizer (concurrency tests) =="
  export TSAN_OPTIONS=halt_on_error=1
  run build-tsan "-R concurrency" -DCMAKE_BUILD_TYPE=Debug -DKVFS_TSAN=ON
  # the concurrent cases of the log and the engine: group commit, checkpoints vs writers
  for t in "check_wal groupcommit" "check_engine groupcommit" "check_engine backpressure"; do
    set -- $t
    echo "-- $1 ($2) under ThreadSanitizer"
    (cd build-tsan && CK_RUN_CASE=$2 ./"$1")
  done
fi
