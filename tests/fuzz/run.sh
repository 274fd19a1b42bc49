#!/usr/bin/env bash
# tests/fuzz/run.sh — build the libFuzzer harnesses (tests/fuzz/) with clang, write their seed
# corpora, and fuzz each harness in turn.
#
#   tests/fuzz/run.sh [SECONDS_PER_HARNESS] [HARNESS...]
#       SECONDS_PER_HARNESS: default 30.  HARNESS: store wal keys check (default: all four).
#       One harness at a time, in one process (the machine stays usable).  Prints executions,
#       coverage and crashes per harness; exits 1 when any harness crashed (the inputs are
#       left in $KVFS_FUZZ_WORK/artifacts/HARNESS/), 2 when it cannot build.
#   tests/fuzz/run.sh --regress HARNESS NAME FILE
#       Print FILE as an entry for tests/fuzz/regress.c (a sparse C array).
#
# Environment: KVFS_FUZZ_BUILD (build directory, default build-fuzz beside the sources),
# KVFS_FUZZ_WORK (corpora and artifacts, default $KVFS_FUZZ_BUILD/fuzz-work; the corpora grow
# across runs), CC (default clang), KVFS_FUZZ_JOBS (build parallelism, default 2).
# Needs clang and libclang-rt-dev (the libFuzzer and sanitizer runtimes).
set -euo pipefail

src="$(cd "$(dirname "$0")/../.." && pwd)"

if [ "${1:-}" = "--regress" ]; then
	[ $# -eq 4 ] || { echo "usage: $0 --regress HARNESS NAME FILE" >&2; exit 16; }
	python3 - "$2" "$3" "$4" <<'EOF'
import sys
harness, name, path = sys.argv[1:]
data = open(path, 'rb').read()
ident = 'r_' + ''.join(c if c.isalnum() else '_' for c in (harness + '_' + name))[:48]
runs, i = [], 0
while i < len(data):
	if data[i] == 0:
		i += 1
		continue
	j = i
	zeros = 0
	while j < len(data) and j - i < 60000:
		zeros = zeros + 1 if data[j] == 0 else 0
		if zeros > 8:
			break
		j += 1
	j -= zeros if zeros <= 8 else zeros - 1
	j = max(j, i + 1)
	runs.append((i, data[i:j]))
	i = j
out = []
for off, b in runs:
	out.append('RUN(%d, %d), ' % (off, len(b)) + ', '.join('0x%02x' % x for x in b) + ',')
print('static const uint8_t %s[] = {' % ident)
for line in out:
	while len(line) > 88:
		cut = line.rfind(' ', 0, 88)
		print('\t' + line[:cut])
		line = line[cut + 1:]
	print('\t' + line)
print('};')
print('\t{ "%s", "%s", %d,\n\t  %s, sizeof(%s) },' % (harness, name, len(data), ident, ident))
EOF
	exit 0
fi

secs="${1:-30}"
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(store wal keys check)
build="${KVFS_FUZZ_BUILD:-$src/build-fuzz}"
work="${KVFS_FUZZ_WORK:-$build/fuzz-work}"
jobs="${KVFS_FUZZ_JOBS:-2}"

if ! command -v "${CC:-clang}" >/dev/null; then
	echo "run.sh: ${CC:-clang} not found (apt-get install clang libclang-rt-dev)" >&2
	exit 2
fi
# The top-level CMakeLists.txt includes tests/fuzz/fuzz.cmake; KVFS_FUZZ=ON builds the
# harnesses.
if [ ! -f "$build/CMakeCache.txt" ]; then
	CC="${CC:-clang}" cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DKVFS_FUZZ=ON \
		>"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 2; }
fi
targets=(kvfs-fuzz-seeds)
for h in "${harnesses[@]}"; do targets+=("kvfs-fuzz-$h"); done
if ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$build/fuzz-build.log" 2>&1; then
	tail -40 "$build/fuzz-build.log" >&2
	echo "run.sh: build failed (log: $build/fuzz-build.log)" >&2
	exit 2
fi

mkdir -p "$work"
"$build/kvfs-fuzz-seeds" "$work/seeds"

# Per-harness input limits: a data file of 64 pages, a log of 260 KiB, both for check.
declare -A max_len=([store]=262145 [wal]=266249 [keys]=70000 [check]=528389)
status=0
printf '%-6s %10s %8s %8s %8s %s\n' harness execs cov ft crashes "(seconds: $secs)"
for h in "${harnesses[@]}"; do
	corpus="$work/corpus/$h"
	art="$work/artifacts/$h"
	mkdir -p "$corpus" "$art"
	log="$work/$h.log"
	extra=()
	[ "$h" = check ] && extra+=(-close_fd_mask=1) # kvfs-check's report on stdout
	# keys keeps a store across inputs, so every input looks like a leak to libFuzzer's
	# per-input check, which then runs LeakSanitizer each time (70% of the time); leaks are
	# still found by LeakSanitizer at exit, when everything not reachable is reported.
	[ "$h" = keys ] && extra+=(-detect_leaks=0)
	set +e
	"$build/kvfs-fuzz-$h" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 \
		-max_len="${max_len[$h]}" -print_final_stats=1 \
		-artifact_prefix="$art/" "${extra[@]}" "$corpus" "$work/seeds/$h" >"$log" 2>&1
	rc=$?
	set -e
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
	final=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1)
	cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$final")
	ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$final")
	crashes=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
		-o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
	printf '%-6s %10s %8s %8s %8s\n' "$h" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
	if [ "$crashes" -gt 0 ] || [ $rc -ne 0 ]; then
		status=1
		echo "  $h: exit $rc; inputs in $art; log $log" >&2
		grep -m3 -E 'ERROR|runtime error|broken promise|SUMMARY' "$log" | sed 's/^/  /' >&2 || true
	fi
done
exit $status
