#!/usr/bin/env bash
# Build and run every kvfs test on a Debian 12 machine, installing what is missing.
#
#   bash tests/run.sh            the four stages below, in this order; CI (.ci/run) runs this
#   KVFS_RUN_ONLY=plain|sanitize|tsan|fuzz bash tests/run.sh    one of them
#
# Stages (build trees build/, build-san/, build-tsan/, build-fuzz/; exits non-zero on the first
# failure).  Times are on the 2-core CI machine, builds included:
#   plain     Debug build (asserts on) and every ctest test, full size: the Check suites
#             (tests/check_*.c) and the real-mount tests (tests/fs_*.sh).  ~4 min.
#   sanitize  AddressSanitizer + UndefinedBehaviorSanitizer build and every test, some with
#             fewer operations (below).  ~4.5 min.
#   tsan      ThreadSanitizer build of the concurrency tests and the concurrent cases of the
#             log and the engine (group commit, checkpoints against writers).  ~0.5 min.
#   fuzz      clang build of the four libFuzzer harnesses (tests/fuzz/: store, wal, keys,
#             check), seed corpora written by kvfs-fuzz-seeds, each harness fuzzed for
#             KVFS_FUZZ_SECONDS (default 60) two at a time into a fresh temporary directory;
#             fails on any crash, leak, timeout or out-of-memory input and prints it
#             (tests/fuzz/run.sh).  Installs clang, libclang-rt-14-dev (libFuzzer) and
#             llvm-14 (llvm-symbolizer) when missing.  ~3 min.
#
# What keeps CI short, and why each trim costs no test strength:
#   * The real-mount tests (fs_*) run after the Check suites, one at a time.  (Running them
#     alongside the suites saved ~3 min, but one CI run then failed fs_concurrency: an ln of
#     a file its writer had just made got ENOENT.  The cause was the kernel's cached nlink
#     after an unlink, since fenced in the daemon (fs/kvfs.c "Link removals and the kernel's
#     nlink"; fs_ops "hard links beside readers"); the mounts still run alone, as timed
#     tests do best on a 2-core machine.)
#   * sanitize: the model tests run every seed with fewer operations each (KVFS_MODEL_OPS,
#     KVFS_MODEL_STEPS; the plain stage runs them in full): a memory error shows at its first
#     occurrence, and every code path the long runs reach is reached by the short ones.
#   * sanitize: check_checker's random single-byte corruptions run KVFS_CHECK_TRIALS=200
#     (plain: 1000).  Each trial is a fork/exec of kvfs-check, which under ASan costs a slow
#     start-up; kvfs-check on arbitrary corrupt stores under ASan + UBSan is what the fuzz
#     stage's "check" harness does, coverage-guided, for a minute (thousands of inputs), so
#     the 800 trials dropped here bought nothing the fuzzer does not; the plain stage still
#     checks all 1000 exit statuses.
#   * tsan builds only the programs it runs (check_concurrency, check_wal, check_wal_perturb,
#     check_engine, check_dcache, the daemon and kvfs-check for fs_concurrency), not every
#     suite and tool again; the plain and sanitize stages build everything.
#   * sanitize: check_btree's crash case runs 6 of its 12 configurations (KVFS_CRASH_CONFIGS;
#     every cut mode once with durable commits only and once with NOSYNC commits, ~2,000
#     cuts instead of ~4,150).  The 6 dropped ones are the same workloads with other seeds;
#     whether recovery lands on the right commit is a property of the code, not of the
#     build, and the plain stage checks it at every cut of all 12; what ASan adds is memory
#     errors on the recovery paths, which the 6 already walk at every sync point.
#   * fs_torture (100 kills per CI run: 75 plain, 25 ASan) and fs_scale (full sizes plain,
#     20,000 files / 256 MiB under ASan) keep their defaults: the kill count is what the CI
#     promises, and the sizes are the ones users reach.
# Every knob can be set from the environment to run more (e.g. KVFS_CHECK_TRIALS=1000).
set -euo pipefail
cd "$(dirname "$0")/.."

only=${KVFS_RUN_ONLY:-all}
case $only in
all | plain | sanitize | tsan | fuzz) ;;
*) echo "tests/run.sh: KVFS_RUN_ONLY=$only: not one of plain, sanitize, tsan, fuzz" >&2; exit 2 ;;
esac
stage() { [ "$only" = all ] || [ "$only" = "$1" ]; }

install_missing() { # [apt-get option...] -- package...: install those not installed
	local opts=() missing=() p sudo=""
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	for p in "$@"; do
		case $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) in
		*" ok installed") ;;
		*) missing+=("$p") ;;
		esac
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing: ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${opts[@]}" "${missing[@]}"
}

# python3 (the mount tests' load and checks) and procps (pgrep) are in Debian's standard
# images, not in its minimal ones
install_missing -- cmake gcc make pkg-config libfuse3-dev fuse3 check libxxhash-dev liblmdb-dev \
	libsqlite3-dev groff-base python3 procps

jobs=$(nproc 2>/dev/null || echo 2)
targets=

build() { # dir, cmake args...: configure, then build $targets (default: everything)
	local dir=$1
	shift
	cmake -S . -B "$dir" "$@" >/dev/null
	# shellcheck disable=SC2086
	cmake --build "$dir" -j "$jobs" ${targets:+--target $targets}
}

run_all() { # dir: every test: the Check suites two at a time, then the real-mount tests
	local dir=$1 rc=0 fs_rc=0
	ctest --test-dir "$dir" --output-on-failure -j "$jobs" -E '^fs_' || rc=$?
	# the power-cut totals of the crash suites (passing tests' output is otherwise hidden;
	# ctest's log of the run keeps it)
	grep -h "power cuts made and verified" "$dir"/Testing/Temporary/LastTest.log || true
	ctest --test-dir "$dir" --output-on-failure -R '^fs_' || fs_rc=$?
	[ "$rc" -eq 0 ] || echo "FAILED: the Check suites in $dir (ctest exit $rc)"
	[ "$fs_rc" -eq 0 ] || echo "FAILED: the real-mount tests in $dir (ctest exit $fs_rc)"
	[ "$rc" -eq 0 ] && [ "$fs_rc" -eq 0 ]
}

if stage plain; then
	echo "== plain build (Debug, asserts on) =="
	build build -DCMAKE_BUILD_TYPE=Debug
	run_all build
fi
if stage sanitize; then
	echo "== AddressSanitizer + UndefinedBehaviorSanitizer =="
	build build-san -DCMAKE_BUILD_TYPE=Debug -DKVFS_SANITIZE=ON
	# fewer operations per model seed and fewer kvfs-check trials: see the header
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	KVFS_MODEL_OPS=${KVFS_MODEL_OPS:-1500} KVFS_MODEL_STEPS=${KVFS_MODEL_STEPS:-800} \
	KVFS_CHECK_TRIALS=${KVFS_CHECK_TRIALS:-200} KVFS_CRASH_CONFIGS=${KVFS_CRASH_CONFIGS:-6} \
		run_all build-san
fi
if stage tsan; then
	echo "== ThreadSanitizer (concurrency tests) =="
	export TSAN_OPTIONS=halt_on_error=1
	# only what this stage runs (the plain stage compiles everything)
	targets="check_concurrency check_wal check_wal_perturb check_engine check_dcache kvfs_daemon \
		kvfs-check" \
		build build-tsan -DCMAKE_BUILD_TYPE=Debug -DKVFS_TSAN=ON
	ctest --test-dir build-tsan --output-on-failure -R 'concurrency|wal_perturb'
	# the concurrent cases of the log and the engine: group commit, checkpoints vs writers,
	# big batches read from the log's mapping while a reader runs (core), the directory-entry
	# cache's invalidations against lookups (race)
	for t in "check_wal groupcommit" "check_engine groupcommit" "check_engine backpressure" \
		"check_engine core" "check_dcache race"; do
		set -- $t
		echo "-- $1 ($2) under ThreadSanitizer"
		(cd build-tsan && CK_RUN_CASE=$2 ./"$1")
	done
fi
if stage fuzz; then
	echo "== libFuzzer harnesses (clang, ASan + UBSan):" \
		"${KVFS_FUZZ_SECONDS:-60} s each, $jobs at a time =="
	# libclang_rt.fuzzer*.a is in libclang-rt-14-dev, which Debian 12's clang only recommends;
	# llvm-14 has llvm-symbolizer for the reports' stack traces
	install_missing --no-install-recommends -- clang libclang-rt-14-dev llvm-14
	work=$(mktemp -d "${TMPDIR:-/tmp}/kvfs-fuzz.XXXXXX")
	rc=0
	KVFS_FUZZ_BUILD=$PWD/build-fuzz KVFS_FUZZ_WORK=$work KVFS_FUZZ_PARALLEL=$jobs \
		KVFS_FUZZ_JOBS=$jobs bash tests/fuzz/run.sh "${KVFS_FUZZ_SECONDS:-60}" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "FAILED: fuzzing (exit $rc); corpora, logs and inputs kept in $work"
		exit "$rc"
	fi
	rm -rf "$work"
fi
