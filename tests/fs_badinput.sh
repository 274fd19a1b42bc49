#!/usr/bin/env bash
# tests/fs_badinput.sh BUILD_DIR — bad input at the mount gets the errno a native file system
# gives, and nothing crashes:
#   1. the same probes (python3, one system call each, printing the errno name) run in a plain
#      directory on the local file system and on a kvfs mount must print the same: names of 255
#      and 256 bytes, paths of PATH_MAX bytes, names that are not UTF-8 (they are bytes), a hard
#      link to a directory, a rename of a directory into its own subtree, rmdir of "." and of a
#      non-empty directory, xattr names without a namespace, writes and truncates past the
#      largest file size, O_DIRECTORY of a file, O_CREAT|O_EXCL of an existing name;
#   2. kvfs-only: rmdir of the mount's root (EBUSY, as for any mount point), O_TMPFILE (refused
#      with EOPNOTSUPP (python calls it ENOTSUP: the same number), as by a file system
#      without it), and the daemon still serves afterwards;
#   3. a corrupt store (both meta pages damaged) and a file that is not a store are refused at
#      mount with one line naming the problem and a non-zero exit, and are left unchanged.
# Exit 77: FUSE unusable here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
command -v python3 >/dev/null || fs_skip "python3 not found"

fs_tmpdir T
mkdir "$T/mnt" "$T/plain"
STORE=$T/store.kvfs
M=$T/mnt

probes() { # DIR: run every probe inside DIR, one line each
	python3 - "$1" <<'PY'
import errno, os, sys
os.chdir(sys.argv[1])
def probe(what, fn):
    try:
        fn()
        print(what + ": OK")
    except OSError as e:
        print(what + ": " + errno.errorcode.get(e.errno, str(e.errno)))
def create(name):
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644))
probe("name of 255 bytes", lambda: create(b"n" * 255))
probe("name of 256 bytes", lambda: create(b"n" * 256))
probe("lookup of a 256-byte name", lambda: os.stat(b"n" * 256))
# paths of 4095 bytes (the longest with its NUL in PATH_MAX) and of 4096
deep = b"/".join([b"d" * 200] * 20)
os.makedirs(deep, exist_ok=True)
probe("path of 4095 bytes", lambda: create(deep + b"/" + b"f" * (4095 - len(deep) - 1)))
probe("path of 4096 bytes", lambda: create(deep + b"/" + b"f" * (4096 - len(deep) - 1)))
probe("name not UTF-8", lambda: create(b"\xff\xfe\x80bad"))
probe("listing shows it", lambda: None if b"\xff\xfe\x80bad" in os.listdir(b".") else os.stat(b"\x00"))
os.mkdir("dir"); os.mkdir("dir/sub"); create("dir/f")
probe("hard link to a directory", lambda: os.link("dir", "dirlink"))
probe("rename a directory into itself", lambda: os.rename("dir", "dir/sub/x"))
probe("rename a directory onto its child", lambda: os.rename("dir", "dir/sub"))
probe("rmdir of .", lambda: os.rmdir("dir/."))
probe("rmdir of ..", lambda: os.rmdir("dir/sub/.."))
probe("rmdir of a non-empty directory", lambda: os.rmdir("dir"))
probe("unlink of a directory", lambda: os.unlink("dir"))
probe("mkdir over a file", lambda: os.mkdir("dir/f"))
probe("open O_DIRECTORY of a file", lambda: os.close(os.open("dir/f", os.O_RDONLY | os.O_DIRECTORY)))
probe("O_CREAT|O_EXCL of an existing name", lambda: os.close(os.open("dir/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)))
probe("a file as a directory", lambda: create("dir/f/x"))
probe("setxattr without a namespace", lambda: os.setxattr("dir/f", "plain", b"v"))
probe("setxattr user.", lambda: os.setxattr("dir/f", "user.k", b"v"))
probe("getxattr of a missing name", lambda: os.getxattr("dir/f", "user.missing"))
def write_at(off):
    fd = os.open("dir/f", os.O_WRONLY)
    try:
        os.pwrite(fd, b"x", off)
    finally:
        os.close(fd)
probe("write at 2**63 - 2", lambda: write_at(2**63 - 2))
probe("truncate to 2**63 - 1", lambda: os.truncate("dir/f", 2**63 - 1))
probe("truncate to -1", lambda: os.truncate("dir/f", -1))
probe("readlink of a file", lambda: os.readlink("dir/f"))
PY
}

if ! fs_mount "$STORE" "$M"; then
	check "mount a new store" false
	fs_summary; exit 1
fi

echo "== 1. the same probes on the local file system and on kvfs"
probes "$T/plain" >"$T/plain.out"
probes "$M" >"$T/kvfs.out" || true
while IFS= read -r line; do fs_log "    local: $line"; done <"$T/plain.out"
if diff -u "$T/plain.out" "$T/kvfs.out" >"$T/diff"; then
	check "every probe gives the local file system's result" true
else
	cat "$T/diff"
	check "every probe gives the local file system's result" false
fi

echo "== 2. kvfs-only cases"
out=$(python3 - "$M" <<'PY'
import errno, os, sys
def res(fn):
    try:
        fn(); return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
print(res(lambda: os.rmdir(sys.argv[1])))
print(res(lambda: os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600))))
PY
)
check_eq "rmdir of the mount's root; O_TMPFILE" "$(printf 'EBUSY\nENOTSUP')" "$out"
echo hello >"$M/after"
check_eq "the daemon still serves" hello "$(cat "$M/after")"
check "unmount" fs_umount "$M"

echo "== 3. refusals at mount"
cp "$STORE" "$T/bad.kvfs"; cp "$STORE-wal" "$T/bad.kvfs-wal"
# both meta pages: flip a byte inside each (checksummed) page
printf '\x55' | dd of="$T/bad.kvfs" bs=1 seek=200 conv=notrunc status=none
printf '\x55' | dd of="$T/bad.kvfs" bs=1 seek=$((4096 + 200)) conv=notrunc status=none
sum_before=$(md5sum <"$T/bad.kvfs")
rc=0; fs_mount "$T/bad.kvfs" "$M" || rc=$?
check "a store with both meta pages corrupt is refused" test "$rc" -ne 0
check_eq "with one line on stderr" 1 "$(printf '%s\n' "$FS_MOUNT_ERR" | grep -c .)"
check "naming the problem" grep -qi "corrupt" <<<"$FS_MOUNT_ERR"
check_eq "and left unchanged" "$sum_before" "$(md5sum <"$T/bad.kvfs")"
check "nothing mounted" bash -c "! fgrep -q ' $M ' /proc/mounts"

head -c 65536 /dev/urandom >"$T/notastore"
sum_before=$(md5sum <"$T/notastore")
rc=0; fs_mount "$T/notastore" "$M" || rc=$?
check "a file that is not a store is refused" test "$rc" -ne 0
check "with a line saying so" grep -qi "not a kvfs store" <<<"$FS_MOUNT_ERR"
check_eq "and left unchanged" "$sum_before" "$(md5sum <"$T/notastore")"
check "and no log was created beside it" test ! -e "$T/notastore-wal"

fs_summary
