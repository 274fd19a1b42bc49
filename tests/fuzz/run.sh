#!/usr/bin/env bash
# tests/fuzz/run.sh — build the libFuzzer harnesses (tests/fuzz/) with clang, write their seed
# corpora, and fuzz each harness for a bounded time.
#
#   tests/fuzz/run.sh [SECONDS_PER_HARNESS] [HARNESS...]
#       SECONDS_PER_HARNESS: default 30.  HARNESS: store wal keys check (default: all four).
#       KVFS_FUZZ_PARALLEL harnesses at a time (default 1: the machine stays usable; CI uses 2,
#       one per core), each one libFuzzer process.  Prints executions, coverage, peak RSS,
#       the slowest input and crashes per harness; exits 1 when any harness found a crash,
#       leak, timeout or out-of-memory input or exited non-zero: for each such input it
#       prints the path, the sanitizer's report and the input itself (gzip + base64, so a CI
#       log alone reproduces it: `base64 -d <<'B64' | gunzip >crash`); exits 2 when it
#       cannot build.
#   tests/fuzz/run.sh --regress HARNESS NAME FILE
#       Print FILE as an entry for tests/fuzz/regress.c (a sparse C array).
#
# Limits per input: -timeout=20 s (the slowest unit of a 60 s run of each harness takes under
# 1 s under ASan; 20 s leaves room for a loaded machine without letting a hang hide), and
# -rss_limit_mb=2048 (libFuzzer's default; the harnesses peak at about 0.5 GiB, two at a time
# fit a 4 GiB machine).  A leak is reported by LeakSanitizer after each input (at exit only
# for keys, below).
#
# Environment: KVFS_FUZZ_BUILD (build directory, default build-fuzz beside the sources),
# KVFS_FUZZ_WORK (corpora and artifacts, default $KVFS_FUZZ_BUILD/fuzz-work; the corpora grow
# across runs; CI passes a fresh temporary directory), CC (default clang), KVFS_FUZZ_JOBS
# (build parallelism, default 2), KVFS_FUZZ_PARALLEL (harnesses fuzzed at once, default 1).
# Needs clang and libclang-rt-14-dev (the libFuzzer and sanitizer runtimes; Debian 12's clang
# package only recommends it); llvm-14 for symbolized stack traces (llvm-symbolizer).
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
par="${KVFS_FUZZ_PARALLEL:-1}"

if ! command -v "${CC:-clang}" >/dev/null; then
	echo "run.sh: ${CC:-clang} not found (apt-get install clang libclang-rt-14-dev)" >&2
	exit 2
fi
# Symbolized reports: Debian's llvm-14 installs llvm-symbolizer only under a versioned name.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && ! command -v llvm-symbolizer >/dev/null; then
	for s in /usr/lib/llvm-14/bin/llvm-symbolizer /usr/bin/llvm-symbolizer-14; do
		[ -x "$s" ] && { export ASAN_SYMBOLIZER_PATH=$s; break; }
	done
fi
# The top-level CMakeLists.txt includes tests/fuzz/fuzz.cmake; KVFS_FUZZ=ON builds the
# harnesses.
mkdir -p "$build"
if [ ! -f "$build/CMakeCache.txt" ]; then
	CC="${CC:-clang}" cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DKVFS_FUZZ=ON \
		>"$build/fuzz-configure.log" 2>&1 || { cat "$build/fuzz-configure.log" >&2; exit 2; }
fi
targets=(kvfs-fuzz-seeds)
for h in "${harnesses[@]}"; do targets+=("kvfs-fuzz-$h"); done
if ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$build/fuzz-build.log" 2>&1; then
	tail -40 "$build/fuzz-build.log" >&2
	echo "run.sh: build failed (log: $build/fuzz-build.log)" >&2
	exit 2
fi

mkdir -p "$work"
"$build/kvfs-fuzz-seeds" "$work/seeds" || { echo "run.sh: kvfs-fuzz-seeds failed" >&2; exit 2; }

# Per-harness input limits: a data file of 64 pages, a log of 260 KiB, both for check.
declare -A max_len=([store]=262145 [wal]=266249 [keys]=70000 [check]=528389)

fuzz_one() { # harness: fuzz it for $secs seconds; its exit status to $work/$h.rc
	local h=$1 corpus="$work/corpus/$1" art="$work/artifacts/$1" extra=() rc=0
	mkdir -p "$corpus" "$art"
	[ "$h" = check ] && extra+=(-close_fd_mask=1) # kvfs-check's report on stdout
	# keys keeps a store across inputs, so every input looks like a leak to libFuzzer's
	# per-input check, which then runs LeakSanitizer each time (70% of the time); leaks are
	# still found by LeakSanitizer at exit, when everything not reachable is reported.
	[ "$h" = keys ] && extra+=(-detect_leaks=0)
	"$build/kvfs-fuzz-$h" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
		-max_len="${max_len[$h]}" -print_final_stats=1 \
		-artifact_prefix="$art/" "${extra[@]}" "$corpus" "$work/seeds/$h" \
		>"$work/$h.log" 2>&1 || rc=$?
	echo "$rc" >"$work/$h.rc"
}

t0=$SECONDS
running=0
for h in "${harnesses[@]}"; do
	if [ "$running" -ge "$par" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	fuzz_one "$h" &
	running=$((running + 1))
done
wait || true

status=0
printf '%-6s %10s %8s %8s %8s %8s %8s %s\n' harness execs cov ft rss_mb slowest crashes \
	"($secs s each, $par at a time, $((SECONDS - t0)) s in all)"
# last_stat NAME LOG: the last value of libFuzzer's -print_final_stats line stat::NAME, or
# nothing (a harness killed before its final stats: still reported, never a stop of this script)
last_stat() { grep -o "stat::$1: *[0-9]*" "$2" | grep -o '[0-9]*$' | tail -n 1 || true; }
for h in "${harnesses[@]}"; do
	log="$work/$h.log"
	art="$work/artifacts/$h"
	rc=$(cat "$work/$h.rc" 2>/dev/null || echo '?')
	execs=$(last_stat number_of_executed_units "$log")
	final=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true)
	cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$final")
	ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$final")
	rss=$(last_stat peak_rss_mb "$log")
	slow=$(last_stat slowest_unit_time_sec "$log")
	found=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
		-o -name 'timeout-*' -o -name 'oom-*' \) | sort)
	crashes=$(grep -c . <<<"$found" || true)
	printf '%-6s %10s %8s %8s %8s %7ss %8s\n' "$h" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
		"${rss:-?}" "${slow:-?}" "$crashes"
	if [ "$crashes" -gt 0 ] || [ "$rc" != 0 ]; then
		status=1
		{
			echo "== $h: libFuzzer exit $rc; log $log; its report:"
			grep -n -m1 -E '==[0-9]+==ERROR|runtime error|broken promise|ERROR: libFuzzer' \
				"$log" | cut -d: -f1 | {
				read -r at || at=1
				sed -n "$((at > 5 ? at - 5 : 1)),$((at + 60))p" "$log"
			}
			for f in $found; do
				echo "-- reproducer $f ($(stat -c %s "$f") bytes)," \
					"replay: $build/kvfs-fuzz-$h FILE"
				echo "   its bytes, gzip + base64 (base64 -d <<'B64' | gunzip >FILE):"
				gzip -9c "$f" | base64 -w 100
				echo "B64"
				echo "   as a regression entry: tests/fuzz/run.sh --regress $h NAME FILE"
			done
		} >&2
	fi
done
exit $status
