#!/usr/bin/env bash
# tests/fs_persistence.sh BUILD_DIR — what is written to a kvfs mount is there after
#   1. a clean unmount and a second mount (and a read-only mount): a manifest of names, types,
#      modes, link counts, owners, sizes, mtimes (ns), symlink targets, file contents (md5) and
#      xattrs must be identical, and the contents must equal the data that was copied in;
#   2. a crash of the daemon (kill -9, then umount -l of the dead mount): every change whose call
#      returned -- file data with or without fsync, mkdir, rename, unlink, chmod, symlink, xattrs
#      -- is there after the next mount (kvfs.h: "a call that changes the store returns after
#      its change is in the log"), and still after a second crash right after the replay and a
#      clean unmount after that.  Run once with the default options and once with tiny
#      checkpoint thresholds, so that checkpoints run while the files are written.
# Exit 77: FUSE unusable here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"

fs_tmpdir T
mkdir "$T/mnt" "$T/src"
STORE=$T/store.kvfs
M=$T/mnt

manifest() { # DIR: everything a user relies on, one line per path, then contents and xattrs
	(
		cd "$1"
		find . -printf '%p %y %m %n %U:%G %s %T@ %l\n' | sort
		find . -type f -print0 | sort -z | xargs -0 -r md5sum
		python3 - <<'EOF'
import hashlib, os
for root, dirs, files in sorted(os.walk(".")):
    for n in sorted(dirs + files) + ([] if root != "." else ["."]):
        p = os.path.join(root, n) if n != "." else "."
        for a in sorted(os.listxattr(p, follow_symlinks=False)):
            v = os.getxattr(p, a, follow_symlinks=False)
            print("xattr", p, a, len(v), hashlib.md5(v).hexdigest())
EOF
	)
}

mount_or_fail() { # STORE MNT [OPTS...]
	if ! fs_mount "$@"; then
		check "mount $*" false
		fs_summary; exit 1
	fi
}

# ---------------------------------------------------------------- 1. clean unmount
echo "== clean unmount and remount"
sizes=(0 1 2047 2048 2049 4096 100000 $((5 << 20)))
for s in "${sizes[@]}"; do head -c "$s" /dev/urandom >"$T/src/s$s"; done
head -c 4096 /dev/urandom >"$T/src/block"
# the sparse file's reference, built on the plain file system
truncate -s 1G "$T/src/sparse"
dd if="$T/src/block" of="$T/src/sparse" bs=4096 seek=$((512 * 256)) conv=notrunc status=none
sparse_md5=$(md5sum <"$T/src/sparse" | cut -c1-32)
rm "$T/src/sparse"

mount_or_fail "$STORE" "$M"
build_tree() ( # in $M/p, under a time limit
	set -e
	cd "$M"
	mkdir -p p/dir/nested/deep p/empty p/modes
	cd p
	for s in "${sizes[@]}"; do cp "$T/src/s$s" "s$s"; done
	truncate -s 1G sparse
	dd if="$T/src/block" of=sparse bs=4096 seek=$((512 * 256)) conv=notrunc status=none
	ln s1 dir/hard1; ln s100000 hard2; ln s100000 dir/nested/hard3
	ln -s s1 sym1; ln -s dir/nested/deep symdir; ln -s /nonexistent/target dangling
	ln -s "$(printf 'x%.0s' $(seq 300))" longsym
	mkfifo fifo
	echo deep >dir/nested/deep/file
	for m in 600 640 4755 2755 1755 000 777; do echo "$m" >"modes/m$m"; chmod "$m" "modes/m$m"; done
	chmod 1777 empty; chmod 2750 dir/nested
	chown 1234:5678 s1; chown -h 42:43 sym1; chown 7:8 dir
	python3 - <<'EOF'
import os
os.setxattr("s2047", "user.small", b"v")
os.setxattr("s2047", "user.empty", b"")
os.setxattr("s2047", "user.big", bytes(range(256)) * 12)
os.setxattr("dir", "user.onadir", b"d")
os.setxattr("s100000", "user.shared", b"seen through every hard link")
os.setxattr("s100000", "trusted.t", b"root only")
EOF
	touch -d '2001-02-03 04:05:06.123456789' s0 s1 sparse
	touch -m -d '1999-12-31 23:59:59.999999999' s2048
	touch -h -d '2002-02-02 02:02:02.000000002' sym1 dangling
	touch -d '2010-10-10 10:10:10.5' dir/nested/deep dir/nested dir empty modes
)
rc=0; timeout -k 5 60 bash -c "$(declare -f build_tree); T=$T M=$M sizes=(${sizes[*]}); build_tree" || rc=$?
check "build the tree on the mount (exit $rc)" test "$rc" -eq 0

for s in "${sizes[@]}"; do
	check "s$s holds the bytes copied in ($s bytes)" cmp -s "$T/src/s$s" "$M/p/s$s"
done
check_eq "the sparse file reads as 1 GiB of zeros with 4 KiB of data at 512 MiB" \
	"$sparse_md5" "$(timeout -k 5 60 md5sum <"$M/p/sparse" | cut -c1-32)"
timeout -k 5 60 bash -c "$(declare -f manifest); manifest '$M/p'" >"$T/manifest.1"
check "the manifest lists every path ($(grep -c '^\./' "$T/manifest.1" || true) lines)" \
	test "$(grep -c '^\./' "$T/manifest.1")" -ge 20
check "fs_umount: unmount and the daemon exits" fs_umount "$M"
check "a file of the store is left behind" test -s "$STORE"

mount_or_fail "$STORE" "$M"
timeout -k 5 60 bash -c "$(declare -f manifest); manifest '$M/p'" >"$T/manifest.2" || true
if cmp -s "$T/manifest.1" "$T/manifest.2"; then
	check "after unmount and mount: the manifest is identical" true
else
	check "after unmount and mount: the manifest is identical" false
	diff -u "$T/manifest.1" "$T/manifest.2" | sed 's/^/    /' | head -n 60 || true
fi
check_eq "after unmount and mount: the sparse file's contents" \
	"$sparse_md5" "$(timeout -k 5 60 md5sum <"$M/p/sparse" | cut -c1-32)"
check "unmount again" fs_umount "$M"

mount_or_fail "$STORE" "$M" -o ro
timeout -k 5 60 bash -c "$(declare -f manifest); manifest '$M/p'" >"$T/manifest.3" || true
check "read-only mount: the manifest is identical" cmp -s "$T/manifest.1" "$T/manifest.3"
err=$(timeout -k 5 10 bash -c "echo x > '$M/p/new'" 2>&1) && rc=0 || rc=$?
# shellcheck disable=SC2016
check "read-only mount: creating a file fails with EROFS ($err)" \
	bash -c '[ "$1" -ne 0 ] && [[ $2 == *"Read-only file system"* ]]' _ "$rc" "$err"
check "read-only mount: unmount" fs_umount "$M"
rm -f "$STORE" "$STORE"-*

# ---------------------------------------------------------------- 2. kill -9
cat >"$T/crash.py" <<'EOF'
# crash.py write DIR EXPECTED SEED | crash.py verify DIR EXPECTED
import hashlib, os, random, sys
def md5(b): return hashlib.md5(b).hexdigest()
if sys.argv[1] == "write":
    d, exp, rnd = sys.argv[2], sys.argv[3], random.Random(int(sys.argv[4]))
    want = {}           # path -> ("f", md5, mode) | ("d",) | ("l", target) | ("gone",)
    xattrs = {}
    def put(rel, data, sync, mode=0o644):
        p = os.path.join(d, rel)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        for i in range(0, len(data), 100000):          # several write calls
            os.write(fd, data[i:i + 100000])
        if sync:
            os.fsync(fd)
        os.close(fd)
        want[rel] = ("f", md5(data), mode)
    os.mkdir(os.path.join(d, "c"))
    want["c"] = ("d",)
    for i in range(12):
        put("c/sync%d" % i, rnd.randbytes(rnd.choice([0, 1, 4095, 4097, 70000, 300000])), True)
    for i in range(12):
        put("c/nosync%d" % i, rnd.randbytes(rnd.choice([0, 1, 4095, 4097, 70000, 300000])), False)
    put("c/big-nosync", rnd.randbytes(3 << 20), False)
    put("c/big-sync", rnd.randbytes(3 << 20), True)
    # in-place changes after the file was written
    p = os.path.join(d, "c/patched")
    base = bytearray(rnd.randbytes(50000)); put("c/patched", bytes(base), True)
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"PATCH" * 100, 12345); base[12345:12845] = b"PATCH" * 100
    os.close(fd)
    with open(p, "ab") as f: f.write(b"appended")
    base += b"appended"
    os.truncate(p, 40000); base = base[:40000]
    want["c/patched"] = ("f", md5(bytes(base)), 0o644)
    # namespace changes, no fsync anywhere
    os.makedirs(os.path.join(d, "c/sub/deeper")); want["c/sub"] = ("d",); want["c/sub/deeper"] = ("d",)
    put("c/sub/deeper/f", b"deeper", False)
    os.rename(os.path.join(d, "c/nosync0"), os.path.join(d, "c/sub/renamed"))
    want["c/sub/renamed"] = want.pop("c/nosync0"); want["c/nosync0"] = ("gone",)
    os.unlink(os.path.join(d, "c/nosync1")); want["c/nosync1"] = ("gone",)
    os.chmod(os.path.join(d, "c/nosync2"), 0o600); want["c/nosync2"] = want["c/nosync2"][:2] + (0o600,)
    os.symlink("sync3", os.path.join(d, "c/link")); want["c/link"] = ("l", "sync3")
    os.link(os.path.join(d, "c/sync4"), os.path.join(d, "c/sync4.hard")); want["c/sync4.hard"] = want["c/sync4"]
    os.setxattr(os.path.join(d, "c/sync5"), "user.k", b"xattr value"); xattrs["c/sync5"] = {"user.k": md5(b"xattr value")}
    os.rename(os.path.join(d, "c/sync6"), os.path.join(d, "c/sync7"))   # over an existing file
    want["c/sync7"] = want.pop("c/sync6"); want["c/sync6"] = ("gone",)
    os.mkdir(os.path.join(d, "c/gone-dir")); os.rmdir(os.path.join(d, "c/gone-dir")); want["c/gone-dir"] = ("gone",)
    with open(exp, "w") as f:
        for k in sorted(want):
            print(k, *want[k], file=f)
        for k in sorted(xattrs):
            for a, v in sorted(xattrs[k].items()):
                print(k, "xattr", a, v, file=f)
else:
    d, exp = sys.argv[2], sys.argv[3]
    bad = 0
    for line in open(exp):
        f = line.split()
        p = os.path.join(d, f[0])
        got = None
        try:
            if f[1] == "f":
                st = os.lstat(p)
                got = ["f", md5(open(p, "rb").read()), str(st.st_mode & 0o7777)]
                want = ["f", f[2], f[3]]
            elif f[1] == "d":
                got, want = ["d" if os.path.isdir(p) else "not a directory"], ["d"]
            elif f[1] == "l":
                got, want = ["l", os.readlink(p)], ["l", f[2]]
            elif f[1] == "gone":
                got, want = ["exists" if os.path.lexists(p) else "gone"], ["gone"]
            elif f[1] == "xattr":
                got, want = [md5(os.getxattr(p, f[2]))], [f[3]]
        except OSError as e:
            got = ["error " + e.strerror]
        if got != want:
            bad += 1
            print("    MISMATCH", f[0], "want", want, "got", got)
    print("checked", sum(1 for _ in open(exp)), "entries,", bad, "wrong")
    sys.exit(1 if bad else 0)
EOF

crash_round() { # LABEL SEED [MOUNT OPTIONS...]
	local label=$1 seed=$2; shift 2
	echo "== kill -9 ($label)"
	mount_or_fail "$STORE" "$M" "$@"
	local rc=0
	timeout -k 5 60 python3 "$T/crash.py" write "$M" "$T/expected" "$seed" || rc=$?
	check "$label: write the files (exit $rc)" test "$rc" -eq 0
	check "$label: kill -9 the daemon and detach the dead mount" fs_kill9 "$M"
	mount_or_fail "$STORE" "$M" "$@"
	check "$label: after the crash, every change that returned is there" \
		timeout -k 5 60 python3 "$T/crash.py" verify "$M" "$T/expected"
	check "$label: a second kill -9 right after the replay" fs_kill9 "$M"
	mount_or_fail "$STORE" "$M" "$@"
	check "$label: after the second crash, still all there" \
		timeout -k 5 60 python3 "$T/crash.py" verify "$M" "$T/expected"
	check "$label: clean unmount" fs_umount "$M"
	mount_or_fail "$STORE" "$M" "$@"
	check "$label: after the clean unmount, still all there" \
		timeout -k 5 60 python3 "$T/crash.py" verify "$M" "$T/expected"
	check "$label: unmount" fs_umount "$M"
	rm -f "$STORE" "$STORE"-*
}
crash_round "default options" 1
crash_round "checkpoint_mib=1,checkpoint_ms=100" 2 -o checkpoint_mib=1,checkpoint_ms=100

fs_summary
