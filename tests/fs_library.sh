#!/usr/bin/env bash
# tests/fs_library.sh BUILD_DIR — the daemon's command line and its refusals, on real mounts:
#   * a second mount of a store in use fails with status 1 and "in use", and leaves the first
#     mount working;
#   * a missing mountpoint fails with a message and a nonzero status, and creates no store;
#   * a file that is not a store (10 KiB of random bytes) is refused with "not a kvfs store" and
#     is byte-identical afterwards (nothing written into it, nothing mounted);
#   * both refusals are one line on stderr, as kvfs(1) says ("refused with a one-line message");
#   * kvfs --help exits 0; kvfs --version prints the version (CMakeLists.txt's project version).
# Exit 77: FUSE unusable here.
# shellcheck disable=SC2016  # the bash -c snippets take their values as "$1".. on purpose
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
export -f fs_is_mounted

fs_tmpdir T
mkdir "$T/m1" "$T/m2"

run() { # run CMD...: sets OUT (stdout+stderr) and RC, never hangs
	RC=0
	OUT=$(timeout -k 5 "$FS_T" "$@" 2>&1) || RC=$?
	echo "    \$ ${*/#$KVFS/kvfs} -> exit $RC: ${OUT:0:300}"
}

# ---- a store in use
echo "== a second mount of a store in use"
if fs_mount "$T/s.kvfs" "$T/m1"; then
	check "first mount" true
	echo first >"$T/m1/f"
	run "$KVFS" "$T/s.kvfs" "$T/m2"
	check_eq "second mount of the same store: exit status" 1 "$RC"
	check "second mount: the message says the store is in use" \
		bash -c '[[ $1 == *"in use"* ]]' _ "$OUT"
	check_eq "second mount: a one-line message (kvfs(1): \"refused with a one-line message\")" \
		1 "$(printf '%s\n' "$OUT" | wc -l)"
	check "second mount: nothing mounted at the second mountpoint" bash -c '! fs_is_mounted "$1"' _ "$T/m2"
	if fs_is_mounted "$T/m2"; then timeout -k 2 10 umount -l "$T/m2" || true; fi
	check_eq "the first mount still works" first "$(timeout -k 5 10 cat "$T/m1/f" 2>&1)"
	# the same store in the foreground (-f) is refused the same way, without hanging
	run "$KVFS" -f "$T/s.kvfs" "$T/m2"
	check_eq "second mount in the foreground (-f): exit status" 1 "$RC"
	check "second mount (-f): the message says the store is in use" \
		bash -c '[[ $1 == *"in use"* ]]' _ "$OUT"
	check "unmount the first mount" fs_umount "$T/m1"
	if fs_mount "$T/s.kvfs" "$T/m2"; then
		check "once unmounted, the store mounts elsewhere" true
		check_eq "  with its file" first "$(timeout -k 5 10 cat "$T/m2/f" 2>&1)"
		check "  and unmounts" fs_umount "$T/m2"
	else
		check "once unmounted, the store mounts elsewhere" false
	fi
else
	check "first mount" false
fi
# ---- a missing mountpoint
echo "== a missing mountpoint"
run "$KVFS" "$T/new.kvfs" "$T/no/such/dir"
check "missing mountpoint: nonzero exit status ($RC)" test "$RC" -ne 0
check "missing mountpoint: a message naming it" bash -c '[[ $1 == *"$2"* ]]' _ "$OUT" "$T/no/such/dir"
check "missing mountpoint: no store created" test ! -e "$T/new.kvfs"
echo plain >"$T/afile"
run "$KVFS" "$T/new.kvfs" "$T/afile"
check "mountpoint is a file: nonzero exit status ($RC)" test "$RC" -ne 0
check "mountpoint is a file: a message" test -n "$OUT"

# ---- a file that is not a store
echo "== a file that is not a kvfs store"
head -c 10240 /dev/urandom >"$T/foreign"
cp "$T/foreign" "$T/foreign.orig"
touch -d '2001-02-03 04:05:06' "$T/foreign"
before=$(stat -c '%s %Y %a' "$T/foreign")
run "$KVFS" "$T/foreign" "$T/m1"
check "foreign file: nonzero exit status ($RC)" test "$RC" -ne 0
check_eq "foreign file: exit status 1" 1 "$RC"
check "foreign file: the message says \"not a kvfs store\"" \
	bash -c '[[ $1 == *"not a kvfs store"* ]]' _ "$OUT"
check_eq "foreign file: a one-line message (kvfs(1): \"refused with a one-line message\")" \
	1 "$(printf '%s\n' "$OUT" | wc -l)"
check "foreign file: byte-identical afterwards" cmp -s "$T/foreign" "$T/foreign.orig"
check_eq "foreign file: size, mtime and mode unchanged" "$before" "$(stat -c '%s %Y %a' "$T/foreign")"
check "foreign file: nothing mounted" bash -c '! fs_is_mounted "$1"' _ "$T/m1"
check "foreign file: no log file created next to it" \
	test ! -e "$T/foreign-wal"
if fs_is_mounted "$T/m1"; then timeout -k 2 10 umount -l "$T/m1" || true; fi
# ---- --help, --version
echo "== --help and --version"
run "$KVFS" --help
check_eq "kvfs --help: exit status" 0 "$RC"
check "kvfs --help: prints a usage line" bash -c '[[ $1 == *"usage:"* ]]' _ "$OUT"
version=$(sed -n 's/^project(kvfs VERSION \([0-9.]*\).*/\1/p' "$here/../CMakeLists.txt")
run "$KVFS" --version
check_eq "kvfs --version: exit status" 0 "$RC"
check "kvfs --version: prints \"kvfs $version\"" bash -c '[[ $1 == *"kvfs $2"* ]]' _ "$OUT" "$version"
run "$KVFS" -V
check "kvfs -V: the same version ($RC)" bash -c '[ "$1" -eq 0 ] && [[ $2 == *"kvfs $3"* ]]' _ "$RC" "$OUT" "$version"
run "$KVFS" "$T/a" "$T/b" "$T/c"
check "too many arguments: nonzero exit status and a message" \
	bash -c '[ "$1" -ne 0 ] && [ -n "$2" ]' _ "$RC" "$OUT"

fs_summary
