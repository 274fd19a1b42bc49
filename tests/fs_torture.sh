#!/usr/bin/env bash
# tests/fs_torture.sh BUILD_DIR — whole-stack kill torture on a real mount: 4 load processes
# (tests/fs_load.py) do random file operations -- create, write at offset, append, truncate,
# rename of files and directories (also over an existing file), link, unlink (also of a file
# held open: it stays an orphan until its release), mkdir, rmdir, fsync -- each in its own
# subtree, each journaling every call before it starts and after it returned to a file outside
# the mount.  At a random moment the daemon is killed with SIGKILL;
# the load processes get ENOTCONN and stop; then, per kill:
#   1. `kvfs-check -n STORE` on the crashed, unmounted store must find nothing but what a
#      crash leaves for the next open to finish: the log records still to replay are not
#      problems, and NS_ORPHAN_PENDING is the only problem allowed (exit 4).  An unlinked file
#      still open in the daemon is on the orphan list until its release, and the kernel sends
#      FUSE_RELEASE after close(2) has returned, without waiting, so an unlink that follows a
#      close can reach the daemon first (kvfs-check.8: "open at a crash").  A round that finds
#      such an orphan unmounts cleanly after its mount and the verify, and kvfs-check -n must
#      then exit 0: the mount purged it;
#   2. the store is mounted again (the log is replayed) and each subtree must equal the model
#      its journal replays to: every call that returned is there (kvfs.h and man/kvfs.1: a
#      call that changes the store returns after its change is in the log; a crash of the
#      daemon loses none of them), and the one call per process that may have been in flight
#      is wholly present or wholly absent -- except that an in-flight write(2) may be present
#      in part, cut at a page boundary: the kernel sends a write that starts inside a page
#      that is not cached as that partial page alone, then the rest (fs_load.py,
#      in_flight_states), and the daemon can die between the two requests.  Mismatches print
#      the path, expected and actual.
# The next round's load runs on that mount (in new subtrees), so later kills also land during
# replay-fresh states and during checkpoints (every fourth round mounts with checkpoints every
# 100 ms / 1 MiB; every tenth round ends with a clean unmount and kvfs-check -n).  At the end
# every subtree of every round is compared again, with the state each was found in, before
# and after a clean unmount and remount, and kvfs-check -n runs once more.
#
# Cost: KVFS_TORTURE_KILLS kills (default 75; 25 in an AddressSanitizer build, detected from
# BUILD_DIR/CMakeCache.txt KVFS_SANITIZE:BOOL=ON, which runs the daemon several times slower:
# 100 kills per CI run, which runs both builds), about 1.5 s each: ~2 minutes plain, ~1 minute
# under ASan.  ThreadSanitizer CI does not run it
# (it runs only fs tests matching 'concurrency').
# Randomness: KVFS_TORTURE_SEED (default 1) seeds the delays, the mount options and every load
# process (printed first).  The moment of each kill cannot be replayed exactly -- it depends on
# scheduling -- but what is checked does not depend on it.
# Exit 77: FUSE unusable here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
BUILD=$(cd "$1" && pwd)
CHECKER=$BUILD/kvfs-check
LOAD=$here/fs_load.py
NPROC=4

[ -x "$CHECKER" ] || { check "kvfs-check is built ($CHECKER)" false; fs_summary; exit 1; }
SEED=${KVFS_TORTURE_SEED:-1}
if fs_sanitized "$BUILD"; then
	KILLS=${KVFS_TORTURE_KILLS:-25}
	fs_log "AddressSanitizer build: $KILLS kills instead of 100"
else
	KILLS=${KVFS_TORTURE_KILLS:-75}
fi
fs_log "seed $SEED (KVFS_TORTURE_SEED), $KILLS kills (KVFS_TORTURE_KILLS), $NPROC load processes"
RANDOM=$SEED

fs_tmpdir T
mkdir "$T/mnt" "$T/j"
M=$T/mnt S=$T/store.kvfs

mount_opts() { # round: the options for this round's mount
	if [ $(($1 % 4)) -eq 3 ]; then
		echo "-o checkpoint_ms=100 -o checkpoint_mib=1"
	fi
}

mount_or_die() { # round
	# shellcheck disable=SC2046
	if ! fs_mount "$S" "$M" $(mount_opts "$1"); then
		check "mount in round $1" false
		fs_summary; exit 1
	fi
}

# kvfs-check -n on the crashed store.  Exit 0, printing nothing, when it finds no problem; exit 0,
# printing how many, when it finds only NS_ORPHAN_PENDING; else exit 1, printing the problems
# or the tool's exit status and output.
crash_check() {
	local js rc=0
	js=$("$CHECKER" -n --json "$S" 2>"$T/check.err") || rc=$?
	case $rc in
	0) return 0 ;;
	4) ;;
	*) printf 'exit %d\n%s\n' "$rc" "$(cat "$T/check.err")"; return 1 ;;
	esac
	python3 -c 'import json, sys
p = json.loads(sys.argv[1])["problems"]
other = [q for q in p if q["code"] != "NS_ORPHAN_PENDING"]
if other or not p:
    for q in other or [{"code": "exit 4", "message": "and no problem listed"}]:
        print("%s: %s" % (q["code"], q["message"]))
    sys.exit(1)
print("%d orphan(s) left for the next open (NS_ORPHAN_PENDING): %s"
      % (len(p), "; ".join(q["message"] for q in p)))' "$js"
}

bad_check=() bad_model=() n_state1=0 n_part=0 n_orphan=0 t0=$SECONDS
pairs=()
mount_or_die 0
for ((c = 1; c <= KILLS; c++)); do
	round=()
	for ((j = 1; j <= NPROC; j++)); do
		mkdir -p "$M/c$c/p$j"
		round+=("$M/c$c/p$j" "$T/j/c$c.p$j")
	done
	pids=()
	for ((j = 1; j <= NPROC; j++)); do
		python3 "$LOAD" load "$M/c$c/p$j" "$T/j/c$c.p$j" $((SEED * 100000 + c * 10 + j)) \
			100000 30 &
		pids+=($!)
	done
	# once every process has returned from 5 calls (however loaded the machine is), 0..190 ms
	# more of load, then the crash
	for _ in $(seq 1 500); do
		started=0
		for ((j = 1; j <= NPROC; j++)); do
			n=$(grep -c '^D' "$T/j/c$c.p$j" 2>/dev/null || true)
			[ "${n:-0}" -ge 5 ] && started=$((started + 1))
		done
		[ "$started" -lt "$NPROC" ] || break
		sleep 0.02
	done
	sleep "0.$((RANDOM % 2))$((RANDOM % 10))"
	fs_kill9_daemon "$M" || { check "kill -9 in round $c" false; break; }
	for p in "${pids[@]}"; do wait "$p" || true; done
	fs_kill9 "$M" || { check "detach the dead mount in round $c" false; break; }

	orphans=0
	if ! out=$(crash_check); then
		bad_check+=("$c")
		fs_log "FAIL: round $c: kvfs-check -n after the kill:"
		printf '%s\n' "$out" | fs_indent 20
	elif [ -n "$out" ]; then
		orphans=1 n_orphan=$((n_orphan + 1))
		fs_log "    round $c: $out"
	fi
	mount_or_die "$c"
	if ! out=$(python3 "$LOAD" verify "${round[@]}" 2>&1); then
		bad_model+=("$c")
		fs_log "FAIL: round $c: the mount differs from the journals (seed $SEED):"
		printf '%s\n' "$out" | fs_indent 30
	fi
	n_state1=$((n_state1 + $(cat "$T"/j/c$c.p*.res 2>/dev/null | grep -c '^[1-9]' || true)))
	n_part=$((n_part + $(cat "$T"/j/c$c.p*.res 2>/dev/null | grep -c '^[2-9]' || true)))
	pairs+=("${round[@]}")
	# every tenth round, and after a round whose kill left orphans (which the mount purged)
	if [ $((c % 10)) -eq 0 ] || [ "$orphans" -eq 1 ]; then
		fs_umount "$M" || { check "clean unmount in round $c" false; break; }
		if ! out=$("$CHECKER" -n "$S" 2>&1); then
			bad_check+=("$c-clean")
			fs_log "FAIL: round $c: kvfs-check -n after a clean unmount:"
			printf '%s\n' "$out" | fs_indent 20
		fi
		mount_or_die "$c"
		[ $((c % 10)) -ne 0 ] || fs_log "    $c kills in $((SECONDS - t0)) s"
	fi
	[ ${#bad_model[@]} -lt 3 ] || { fs_log "    stopping after 3 rounds with mismatches"; break; }
done
ops=$(cat "$T"/j/*.p[0-9] | grep -c '^D' || true)
fs_log "    $((c - 1)) kills, $ops calls returned, $n_state1 in-flight calls found applied" \
	"($n_part of them writes cut at a page boundary), $n_orphan kills left orphans," \
	"$((SECONDS - t0)) s"

check_eq "kvfs-check -n finds nothing but orphans after a kill, and exits 0 after the mount" \
	"" "${bad_check[*]}"
check_eq "after every kill the mount holds every returned call (failing rounds)" "" \
	"${bad_model[*]}"
check "the load made progress ($ops calls returned, at least 20 per kill)" \
	test "$ops" -ge $((20 * (c - 1)))

# every round's subtrees again, in the state each was found in: nothing changed them since
check "every subtree still matches after $((c - 1)) crashes" \
	python3 "$LOAD" verify --final "${pairs[@]}"
fs_umount "$M" || check "the final clean unmount" false
check "kvfs-check -n after the final clean unmount" "$CHECKER" -n "$S"
mount_or_die 0
check "every subtree matches after a clean unmount and remount" \
	python3 "$LOAD" verify --final "${pairs[@]}"
check "clean unmount" fs_umount "$M"
fs_summary
