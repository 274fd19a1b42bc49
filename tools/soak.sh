#!/usr/bin/env bash
# tools/soak.sh — the soak benchmark: minutes of mixed load on a fresh kvfs mount, with the
# daemon's memory, descriptors, store size and statistics sampled over time and judged.
# A benchmark, not a CI test (it runs for 10 minutes by default).
#
#   tools/soak.sh [--duration S] [--interval S] [--live-mib N] [--writers N] [--readers N]
#                 [--baseline S] [--seed N] [--keep] [-- KVFS-MOUNT-OPTIONS...]
#
#   --duration S   seconds of load (default 600)
#   --interval S   seconds between samples (default 10)
#   --live-mib N   live data held steady after the ramp-up, in MiB (default 256)
#   --writers N, --readers N   load processes (default 3 and 2)
#   --baseline S   also run the same load for S seconds on a directory of the host file system
#                  (next to the store) and print its rates for comparison; 0 = no baseline
#                  (default 60)
#   --seed N       seeds the load (default 1)
#   --keep         keep the store and the logs (default: removed when every criterion passed)
#   after --, options for the daemon, e.g. -- -o checkpoint_mib=4
#
# What it does: builds kvfs and kvfs-check in Release into build-release/ (override with
# KVFS_BUILD_DIR=dir; KVFS_JOBS=n parallel jobs, default 2), creates a fresh store and
# mountpoint under a new directory ${KVFS_SOAK_DIR:-${TMPDIR:-/tmp}/kvfs-soak}.XXXXXX, mounts
# it with the daemon in the foreground (-f, its standard error in daemon.err), runs
# tools/soak_load.py there (writers creating, appending, overwriting, truncating, renaming,
# replacing and unlinking files of 1 byte to 4 MiB with fsyncs; readers doing ls -lR, cat and
# stat; the live data held near --live-mib after a ramp-up), and every --interval seconds
# samples the daemon's VmRSS, RssAnon, RssFile and open descriptors (/proc), the allocated
# size (st_blocks x 512) of STORE and STORE-wal, and the engine's statistics (SIGUSR1 makes
# the daemon print them; kvfs(1) "Statistics").  Then it unmounts, waits for the daemon's exit,
# runs kvfs-check -n on the store, optionally the baseline, and prints the table over time and
# one verdict per criterion, each computed from the samples:
#   RSS flat             max VmRSS over the last third of the samples <= max over the first
#                        third x 1.2 + 8 MiB
#   descriptors flat     open descriptors at the end within +-2 of those after the ramp-up
#                        (the first sample with live data >= 90 % of --live-mib)
#   log recycled         checkpoints happened, the log's unreleased bytes went down at least
#                        once, and the log file's allocated size never changed
#   data file bounded    STORE's allocated size <= live data x 1.5 at every sample after the
#                        ramp-up (live = the sum of file sizes, from the statistics)
#   store bounded        STORE + STORE-wal <= live data x 1.5 likewise (the log is a
#                        preallocated ring sized to the data file, 36 MiB for the fresh store
#                        of a run (an eighth of the data file, from 36 to 64 MiB, at later
#                        mounts): a fixed cost on a small store, which is why the default live
#                        data set is 256 MiB)
#   no errors            no call of the load failed (readers may see ENOENT)
#   statistics           every sample got its stats line
#   clean unmount, kvfs-check -n exit 0
# Exits 0 when every criterion holds, 1 when one fails, 2 on a usage error, 77 when FUSE is
# unusable here.  Costs: one to two cores for --duration, up to ~1.5 x --live-mib plus the
# 36 MiB log of disk, and the baseline's --live-mib on the host file system.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

duration=600 interval=10 live=256 writers=3 readers=2 baseline=60 seed=1 keep=
kvfs_opts=()
usage() { sed -n '5,18p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=$2; shift 2;;
	--interval) interval=$2; shift 2;;
	--live-mib) live=$2; shift 2;;
	--writers) writers=$2; shift 2;;
	--readers) readers=$2; shift 2;;
	--baseline) baseline=$2; shift 2;;
	--seed) seed=$2; shift 2;;
	--keep) keep=1; shift;;
	-h|--help) usage; exit 0;;
	--) shift; kvfs_opts=("$@"); break;;
	*) echo "soak.sh: unknown option $1" >&2; usage >&2; exit 2;;
	esac
done

build=${KVFS_BUILD_DIR:-build-release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target kvfs_daemon kvfs-check -j "${KVFS_JOBS:-2}" >/dev/null
build=$(cd "$build" && pwd)
KVFS=$build/kvfs CHECK=$build/kvfs-check LOAD=$src/tools/soak_load.py

[ -c /dev/fuse ] || { echo "soak.sh: /dev/fuse is absent: no FUSE here"; exit 77; }

dir=$(mktemp -d "${KVFS_SOAK_DIR:-${TMPDIR:-/tmp}/kvfs-soak}.XXXXXX")
S=$dir/store.kvfs M=$dir/mnt
mkdir "$M" "$dir/host"
daemon=;loadpid=;mounted=
cleanup() {
	local st=$?
	set +e
	[ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null && wait "$loadpid" 2>/dev/null
	if [ -n "$mounted" ]; then
		fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null
	fi
	if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
		for _ in $(seq 300); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$daemon" 2>/dev/null
	fi
	if [ "$st" -eq 0 ] && [ -z "$keep" ]; then
		rm -rf --one-file-system "$dir"
	else
		echo "soak.sh: kept $dir (store, daemon.err, samples.tsv, load.json)"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "soak: ${duration} s, live data ${live} MiB, $writers writers, $readers readers," \
	"seed $seed, samples every ${interval} s; kvfs options: ${kvfs_opts[*]:-(none)}; in $dir"
"$KVFS" -f "${kvfs_opts[@]}" "$S" "$M" 2>"$dir/daemon.err" </dev/null &
daemon=$!
for _ in $(seq 100); do
	awk -v m="$M" '$2 == m { f = 1 } END { exit !f }' /proc/mounts && break
	kill -0 "$daemon" 2>/dev/null || break
	sleep 0.1
done
if ! awk -v m="$M" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
	echo "soak.sh: the mount failed: $(tail -n 3 "$dir/daemon.err")"
	grep -Eq 'not permitted|Permission denied|fusermount' "$dir/daemon.err" && exit 77
	exit 1
fi
mounted=1

mkdir "$M/soak"
python3 "$LOAD" run "$M/soak" "$dir/load.json" --writers "$writers" --readers "$readers" \
	--duration "$duration" --live-mib "$live" --seed "$seed" &
loadpid=$!
python3 "$LOAD" sample "$daemon" "$dir/daemon.err" "$S" "$dir/samples.tsv" "$interval" "$loadpid"
load_rc=0
wait "$loadpid" || load_rc=$?
loadpid=

fails=0
live_end=$(du -s --apparent-size -B1 "$M/soak" | cut -f1)
t0=$SECONDS
if fusermount3 -u "$M"; then
	mounted=
	st=0
	wait "$daemon" || st=$?
	daemon=
	echo "unmount: $((SECONDS - t0)) s (final checkpoint), daemon exit status $st"
	[ "$st" -eq 0 ] || fails=$((fails + 1))
else
	echo "FAIL: fusermount3 -u $M"
	fails=$((fails + 1))
fi
ck=0
"$CHECK" -n "$S" >"$dir/check.out" 2>&1 || ck=$?
echo "kvfs-check -n: exit $ck$( [ "$ck" -eq 0 ] || { echo; cat "$dir/check.out"; })"
[ "$ck" -eq 0 ] || fails=$((fails + 1))
stat -c '%n %b %B %s' "$S" "$S-wal" | awk '{ printf "after unmount: %s allocated %.1f MiB, length %.1f MiB\n",
	$1, $2 * $3 / 1048576, $4 / 1048576 }'
echo "live data at the end (du --apparent-size of the mount): $((live_end / 1048576)) MiB"
[ "$load_rc" -eq 0 ] || echo "the load exited with status $load_rc (see the errors below)"

basejson=()
if [ "$baseline" != 0 ]; then
	mkdir -p "$dir/host/soak"
	if python3 "$LOAD" run "$dir/host/soak" "$dir/baseline.json" --writers "$writers" \
		--readers "$readers" --duration "$baseline" --live-mib "$live" --seed "$seed"; then
		basejson=("$dir/baseline.json")
	else
		echo "the baseline run failed (its rates are not shown)"
	fi
	rm -rf --one-file-system "$dir/host/soak"
fi
echo
python3 "$LOAD" report "$dir/samples.tsv" "$dir/load.json" "$live" "${basejson[@]}" ||
	fails=$((fails + 1))
if [ "$fails" -eq 0 ]; then
	echo "soak: every criterion holds"
else
	echo "soak: $fails failure(s)"
	exit 1
fi
