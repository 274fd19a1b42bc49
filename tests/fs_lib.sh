# shellcheck shell=bash
# tests/fs_lib.sh — shared helpers for the tests/fs_*.sh mount tests (sourced, not run).
#
#   source "$(dirname "$0")/fs_lib.sh"
#   fs_init "$1"            # BUILD_DIR: sets KVFS=BUILD_DIR/kvfs, installs the cleanup trap,
#                           # exits 77 (skipped) when FUSE is absent or mounting is not permitted
#   fs_tmpdir T             # T := a fresh directory, removed at exit (after unmounting under it)
#   fs_mount STORE MNT [kvfs options...]    # background daemon; waits until it serves
#   fs_mount_debug STORE MNT LOG [options...]  # the same with -d, every request logged to LOG
#   fs_umount MNT           # umount, then wait for the daemon to checkpoint and exit
#   fs_kill9 MNT            # kill -9 the daemon, umount -l the dead mount
#   fs_kill9_daemon MNT     # kill -9 the daemon only (the dead mount stays: ENOTCONN)
#   fs_sanitized BUILD_DIR  # is it an ASan build (KVFS_SANITIZE=ON)?
#   ... | fs_indent N       # the first N lines, indented (no SIGPIPE: it reads all its input)
#   fs_poll SECONDS CMD...  # CMD every 0.2 s until it succeeds; 1 after SECONDS
#   check "what" CMD...     # PASS if CMD exits 0;  check_eq "what" EXPECTED ACTUAL
#   fs_summary              # prints "N passed, M failed"; exits 0 or 1
#
# FS_KEEP=1 keeps the temporary directories (unmounted) for a look after the run.
#
# Every command that could hang on a broken daemon runs under `timeout -k`.  Nothing here kills
# a process it did not start: daemons are known by the pid recorded at mount time.

FS_PASS=0
FS_FAIL=0
FS_TMPDIRS=()
declare -A FS_PID=()   # mountpoint -> daemon pid
FS_T=${FS_T:-20}       # seconds allowed for one mount, unmount or daemon exit

fs_log() { printf '%s\n' "$*"; }

# fs_indent N: the first N lines of standard input, indented by four spaces.  It reads all of
# its input: `| head -n N` exits early, and under `set -o pipefail` the writer's SIGPIPE (exit
# 141) would stop the script.
fs_indent() { sed -n "1,${1}s/^/    /p"; }

# fs_poll SECONDS CMD...: run CMD every 0.2 s until it succeeds (0) or SECONDS have passed (1).
# For what the daemon does in the background (a checkpoint thread's retry), in place of a
# fixed sleep that a slow machine can outrun.
fs_poll() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}

check() { # check "message" CMD [ARGS...]
	local msg=$1; shift
	if "$@"; then
		FS_PASS=$((FS_PASS + 1)); fs_log "PASS: $msg"
	else
		FS_FAIL=$((FS_FAIL + 1)); fs_log "FAIL: $msg"
	fi
	return 0
}

check_eq() { # check_eq "message" EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then
		FS_PASS=$((FS_PASS + 1)); fs_log "PASS: $1"
	else
		FS_FAIL=$((FS_FAIL + 1)); fs_log "FAIL: $1"
		fs_log "    expected: $2"
		fs_log "    actual:   $3"
	fi
	return 0
}

FS_SUMMARY_DONE=
fs_summary() {
	FS_SUMMARY_DONE=1
	fs_log "$FS_PASS passed, $FS_FAIL failed"
	[ "$FS_FAIL" -eq 0 ]
}

fs_skip() { fs_log "SKIPPED: $*"; exit 77; }

fs_tmpdir() { # VAR: VAR := a fresh directory under $TMPDIR (or /tmp), removed by the exit trap
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/kvfs-fst.XXXXXX")
	FS_TMPDIRS+=("$d")
	printf -v "$1" '%s' "$d"
}

fs_is_mounted() { # MNT: is MNT a mount point right now? (paths here contain no spaces)
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts
}

fs_regex() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

fs_pid_of() { # STORE MNT: the daemon serving STORE at MNT ("kvfs ... STORE MNT")
	pgrep -f -- "kvfs( .*)? $(fs_regex "$1") $(fs_regex "$2")\$" | sed -n 1p
}

fs_wait_gone() { # PID [SECONDS]: 0 once PID has exited
	local pid=$1 n=$(( ${2:-$FS_T} * 10 ))
	while kill -0 "$pid" 2>/dev/null; do
		# a zombie is gone as far as the store is concerned once its other threads have
		# exited too: a killed thread-group leader turns zombie while threads of it may
		# still be on their way out holding the descriptors (and the store's lock); a
		# parent that never reaps (a container's init) leaves the zombie itself for good
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] &&
			[ "$(ls "/proc/$pid/task" 2>/dev/null | wc -l)" -le 1 ] && return 0
		n=$((n - 1)); [ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
	return 0
}

# fs_mount STORE MNT [OPTIONS...]: start the daemon (background mode) and wait until MNT is in
# /proc/mounts (10 s at most) and the daemon answers a statfs (FS_T s at most).  Returns the
# daemon's status when it fails; its stderr is in $FS_MOUNT_ERR (also printed).
FS_MOUNT_ERR=
fs_mount() {
	local store=$1 mnt=$2; shift 2
	local errf rc=0
	errf=$(mktemp "${TMPDIR:-/tmp}/kvfs-fst-err.XXXXXX")
	timeout -k 5 "$FS_T" "$KVFS" "$@" "$store" "$mnt" 2>"$errf" || rc=$?
	FS_MOUNT_ERR=$(cat "$errf"); rm -f "$errf"
	if [ "$rc" -ne 0 ]; then
		fs_log "    mount $store at $mnt failed (exit $rc): $FS_MOUNT_ERR"
		return "$rc"
	fi
	local n=100
	until fs_is_mounted "$mnt"; do
		n=$((n - 1))
		if [ "$n" -le 0 ]; then
			fs_log "    $mnt did not appear in /proc/mounts within 10 s"
			return 1
		fi
		sleep 0.1
	done
	local pid
	pid=$(fs_pid_of "$store" "$mnt")
	if [ -z "$pid" ]; then
		fs_log "    no daemon process found for $store at $mnt"
		return 1
	fi
	FS_PID[$mnt]=$pid
	# The daemon mounts, then opens the store (fs/kvfs.c main: libfuse forks it): a statfs
	# is answered once it serves requests, so the store's files are as the open left them.
	if ! timeout -k 5 "$FS_T" stat -f "$mnt" >/dev/null; then
		fs_log "    the daemon at $mnt does not answer statfs within $FS_T s"
		return 1
	fi
	return 0
}

# fs_mount_debug STORE MNT LOG [OPTIONS...]: the daemon in debug mode (-d: foreground, every
# request logged to LOG), started in the background by this shell; waits for /proc/mounts like
# fs_mount.  fs_umount stops it.  For tests that must see which requests reach the daemon.
fs_mount_debug() {
	local store=$1 mnt=$2 log=$3; shift 3
	"$KVFS" -d "$@" "$store" "$mnt" >"$log" 2>&1 </dev/null &
	local pid=$! n=100
	until fs_is_mounted "$mnt"; do
		n=$((n - 1))
		if [ "$n" -le 0 ] || ! kill -0 "$pid" 2>/dev/null; then
			fs_log "    debug mount of $store at $mnt failed: $(tail -n 3 "$log")"
			kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
			return 1
		fi
		sleep 0.1
	done
	FS_PID[$mnt]=$pid
	return 0
}

# fs_umount MNT: unmount and wait for the daemon to checkpoint and exit (it must: a second open
# of the store fails while it runs).
fs_umount() {
	local mnt=$1 pid=${FS_PID[$1]:-} rc=0
	timeout -k 5 "$FS_T" umount "$mnt" || rc=$?
	if [ "$rc" -ne 0 ]; then
		fs_log "    umount $mnt failed (exit $rc)"
		return 1
	fi
	if [ -n "$pid" ] && ! fs_wait_gone "$pid"; then
		fs_log "    the daemon (pid $pid) did not exit within $FS_T s of umount $mnt"
		return 1
	fi
	unset "FS_PID[$mnt]"
	return 0
}

# fs_kill9 MNT: a crash of the daemon: SIGKILL, then detach the dead mount.
fs_kill9() {
	local mnt=$1 pid=${FS_PID[$1]:-}
	[ -n "$pid" ] || { fs_log "    no daemon recorded for $mnt"; return 1; }
	kill -9 "$pid" 2>/dev/null || true
	fs_wait_gone "$pid" || { fs_log "    pid $pid survived kill -9"; return 1; }
	timeout -k 5 "$FS_T" umount -l "$mnt" 2>/dev/null || true
	unset "FS_PID[$mnt]"
	! fs_is_mounted "$mnt"
}

# fs_kill9_daemon MNT: SIGKILL the daemon and wait until it is gone, but leave the dead mount in
# place (every call on it fails with ENOTCONN), so that processes still working under MNT stop
# there instead of carrying on in the directory below; fs_kill9 MNT then detaches it.
fs_kill9_daemon() {
	local mnt=$1 pid=${FS_PID[$1]:-}
	[ -n "$pid" ] || { fs_log "    no daemon recorded for $mnt"; return 1; }
	kill -9 "$pid" 2>/dev/null || true
	fs_wait_gone "$pid" || { fs_log "    pid $pid survived kill -9"; return 1; }
}

# fs_sanitized BUILD_DIR: 0 when BUILD_DIR is an AddressSanitizer build (KVFS_SANITIZE=ON), which
# runs several times slower: tests scale their repetitions down there.
fs_sanitized() {
	grep -q '^KVFS_SANITIZE:BOOL=ON' "$1/CMakeCache.txt" 2>/dev/null
}

fs_cleanup() {
	local status=$? mnt pid d
	set +e
	if [ -z "$FS_SUMMARY_DONE" ] && [ -n "${FS_STARTED:-}" ]; then
		fs_log "FAIL: the script stopped early (status $status) at line ${BASH_LINENO[0]:-?}"
		FS_FAIL=$((FS_FAIL + 1))
		fs_summary
	fi
	for mnt in "${!FS_PID[@]}"; do
		if fs_is_mounted "$mnt"; then
			timeout -k 2 10 umount "$mnt" 2>/dev/null || timeout -k 2 10 umount -l "$mnt" 2>/dev/null
		fi
		pid=${FS_PID[$mnt]}
		if ! fs_wait_gone "$pid" 15; then
			fs_log "cleanup: daemon pid $pid still running 15 s after umount: killing it"
			kill -9 "$pid" 2>/dev/null
			fs_wait_gone "$pid" 5
		fi
	done
	for d in "${FS_TMPDIRS[@]}"; do
		# anything still mounted below d (a mount this script lost track of): detach it first
		awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r |
			while read -r mnt; do timeout -k 2 10 umount -l "$mnt" 2>/dev/null; done
		if [ -n "${FS_KEEP:-}" ]; then fs_log "kept $d (FS_KEEP)"; else rm -rf --one-file-system "$d"; fi
	done
}

# fs_init BUILD_DIR: the daemon, the cleanup trap, and a skip (77) when FUSE is unusable here.
fs_init() {
	local build=${1:-}
	[ -n "$build" ] || { echo "usage: bash $0 BUILD_DIR" >&2; exit 2; }
	KVFS=$(cd "$build" 2>/dev/null && pwd)/kvfs
	trap fs_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	export LC_ALL=C TZ=UTC
	umask 022
	[ -x "$KVFS" ] || { echo "FAIL: no kvfs binary at $KVFS (build the kvfs_daemon target)"; exit 1; }
	[ -c /dev/fuse ] || fs_skip "/dev/fuse is absent (no FUSE in this kernel or container)"
	if [ "$(id -u)" -ne 0 ] && ! { [ -r /dev/fuse ] && [ -w /dev/fuse ]; }; then
		fs_skip "/dev/fuse is not readable and writable by uid $(id -u)"
	fi
	# a trial mount: failing for want of permission is a skip, failing otherwise is a failure
	local t
	fs_tmpdir t; mkdir "$t/mnt"
	if ! fs_mount "$t/probe.kvfs" "$t/mnt"; then
		case $FS_MOUNT_ERR in
		*"not permitted"*|*"Permission denied"*|*fusermount*|*"device not found"*|*"No such device"*)
			fs_skip "mounting is not permitted here: $FS_MOUNT_ERR";;
		esac
		echo "FAIL: a trial mount failed: $FS_MOUNT_ERR"
		exit 1
	fi
	fs_umount "$t/mnt" || { echo "FAIL: the trial mount did not unmount cleanly"; exit 1; }
	rm -rf "${t:?}"/*
	FS_STARTED=1
}
