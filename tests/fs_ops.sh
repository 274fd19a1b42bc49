#!/usr/bin/env bash
# tests/fs_ops.sh BUILD_DIR — lseek SEEK_DATA/SEEK_HOLE, copy_file_range, flock and fcntl locks on
# a real mount, each compared with a plain directory (under $TMPDIR or /tmp) where Linux decides:
#   * SEEK_DATA/SEEK_HOLE on sparse files, a small (inline) file, an empty one: every answer and
#     errno is the expected one (written down here, Linux's rules) and the plain directory's when
#     that is ext4, xfs, btrfs or tmpfs with 4 KiB blocks; cp(1) of a 1 GiB sparse file copies
#     only its data (st_blocks of the copy stay small, the bytes are equal);
#   * copy_file_range(2): whole files, ranges of one file, short copies at the end, the VFS's
#     errors (overlap EINVAL, EBADF, EISDIR) — output identical to the plain directory's; cp(1)
#     on the mount uses it (strace, when installed) and the daemon serves it (its -d log shows
#     COPY_FILE_RANGE requests, and LSEEK ones);
#   * with -o writeback, SEEK_DATA/SEEK_HOLE on a descriptor whose writes are still in the
#     kernel's cache never report them as a hole (the daemon leaves lseek to the kernel), and cp
#     copies them;
#   * locks: flock(1) between processes (-n fails while held, -w waits), flock(2) per open file,
#     fcntl/lockf byte ranges between a parent and a child with F_GETLK — identical to the plain
#     directory's; no lock request reaches the daemon (the kernel keeps them: man/kvfs.1 "Locks");
#   * hard links beside readers: writers move files by `ln A B && rm A` and rename other files
#     over their second names while readers stat and list; no ln may fail (the kernel's cached
#     nlink after an unlink or a replacing rename: fs/kvfs.c "Link removals").
# Exit 77: FUSE unusable here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
command -v python3 >/dev/null || fs_skip "python3 is needed for lseek/copy_file_range/locks"

fs_tmpdir T
mkdir "$T/mnt" "$T/plain" "$T/aux"
M=$T/mnt P=$T/plain AUX=$T/aux
if ! fs_mount_debug "$T/s.kvfs" "$M" "$AUX/daemon.log"; then
	check "debug mount" false
	fs_summary; exit
fi

cat >"$AUX/ops.py" <<'EOF'
# ops.py SCENARIO: lseek, copy_file_range and lock calls, one result per line
import errno, fcntl, os, struct, sys, time
def show(*a, **kw): print(*a, flush=True, **kw)
def err(e): return "error: " + errno.errorcode.get(e.errno, str(e.errno))
def attempt(label, f):
    try:
        show(label, "->", f())
    except OSError as e:
        show(label, "->", err(e))
s = sys.argv[1]
K, M, G = 4096, 1 << 20, 1 << 30
if s == "seek":                       # FILE OFFSETS...: SEEK_DATA and SEEK_HOLE at each
    fd = os.open(sys.argv[2], os.O_RDONLY)
    for a in sys.argv[3:]:
        off = eval(a)
        for name, wh in (("DATA", os.SEEK_DATA), ("HOLE", os.SEEK_HOLE)):
            attempt("%s %s" % (name, a), lambda: os.lseek(fd, off, wh))
    os.close(fd)
elif s == "cfr":                      # copy_file_range(2) cases on files src (5 MB) and others
    size = os.stat("src").st_size
    src = os.open("src", os.O_RDONLY)
    out = os.open("out", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    n = 0
    while True:                        # a whole file, as cp does
        c = os.copy_file_range(src, out, 1 << 30)
        if c == 0:
            break
        n += c
    show("whole copy:", n, "equal:", os.pread(out, size + 1, 0) == os.pread(src, size + 1, 0))
    attempt("past the source's end", lambda: os.copy_file_range(src, out, 5000, size - 1000, 0))
    attempt("at the source's end", lambda: os.copy_file_range(src, out, 5000, size, 0))
    attempt("beyond the source's end", lambda: os.copy_file_range(src, out, 5000, size + 9, 0))
    attempt("zero length", lambda: os.copy_file_range(src, out, 0, 0, 0))
    attempt("into a hole far out", lambda: (os.copy_file_range(src, out, 3 * K, 7, 10 * M + 5),
                                            os.fstat(out).st_size,
                                            os.pread(out, 8, 10 * M + 2) == b"\0\0\0" + os.pread(src, 5, 7))[1:])
    rw = os.open("same", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(rw, os.pread(src, 3 * M, 0))
    attempt("one file, overlapping", lambda: os.copy_file_range(rw, rw, 1000, 0, 100))
    attempt("one file, overlapping backwards", lambda: os.copy_file_range(rw, rw, 1000, 500, 0))
    attempt("one file, same range", lambda: os.copy_file_range(rw, rw, 10, 0, 0))
    attempt("one file, adjacent", lambda: (os.copy_file_range(rw, rw, 1000, 0, 1000),
                                           os.pread(rw, 1000, 1000) == os.pread(src, 1000, 0))[1])
    attempt("one file, extending it", lambda: (os.copy_file_range(rw, rw, 2 * M, 0, 3 * M),
                                               os.fstat(rw).st_size)[1])
    attempt("one file, overlap cut at the end", lambda: os.copy_file_range(rw, rw, 10 * M, 5 * M - 10, 5 * M - 5))
    ro = os.open("out", os.O_RDONLY)
    attempt("into a read-only fd", lambda: os.copy_file_range(src, ro, 10, 0, 0))
    wo = os.open("out", os.O_WRONLY)
    attempt("from a write-only fd", lambda: os.copy_file_range(wo, out, 10, 0, 0))
    ap = os.open("out", os.O_WRONLY | os.O_APPEND)
    attempt("into an O_APPEND fd", lambda: os.copy_file_range(src, ap, 10, 0, 0))
    d = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    attempt("from a directory", lambda: os.copy_file_range(d, out, 10, 0, 0))
    attempt("negative offset", lambda: os.copy_file_range(src, out, 10, -1, 0))
    for f in (src, out, rw, ro, wo, ap, d):
        os.close(f)
    show("sizes:", os.stat("out").st_size, os.stat("same").st_size)
elif s == "flock":                    # flock(2) is per open file description
    a = os.open("lk", os.O_RDWR | os.O_CREAT, 0o644)
    b = os.open("lk", os.O_RDWR)
    c = os.open("lk", os.O_RDONLY)
    fcntl.flock(a, fcntl.LOCK_EX)
    attempt("second EX while EX held", lambda: fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB))
    attempt("SH while EX held", lambda: fcntl.flock(b, fcntl.LOCK_SH | fcntl.LOCK_NB))
    attempt("EX again on the holder", lambda: fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB))
    fcntl.flock(a, fcntl.LOCK_UN)
    attempt("SH", lambda: fcntl.flock(b, fcntl.LOCK_SH | fcntl.LOCK_NB))
    attempt("second SH", lambda: fcntl.flock(c, fcntl.LOCK_SH | fcntl.LOCK_NB))
    attempt("EX while SH held", lambda: fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB))
    os.close(b); os.close(c)
    attempt("EX once the others are closed", lambda: fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB))
    os.close(a)
elif s == "posix":                    # fcntl record locks between a parent and a child
    fd = os.open("rl", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 300)
    fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)          # bytes [0, 100)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        me = os.open("rl", os.O_RDWR)
        out = []
        def t(label, f):
            try:
                out.append("%s -> %s" % (label, f()))
            except OSError as e:
                out.append("%s -> %s" % (label, err(e)))
        t("child EX [50, 60)", lambda: fcntl.lockf(me, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50))
        t("child SH [99, 100)", lambda: fcntl.lockf(me, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 99))
        t("child EX [100, 200)", lambda: fcntl.lockf(me, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 100))
        fl = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        typ, wh, start, ln, who = struct.unpack("hhqqi4x", fcntl.fcntl(me, fcntl.F_GETLK, fl))
        out.append("child F_GETLK -> type %s start %d len %d by %s" % (
            {fcntl.F_WRLCK: "F_WRLCK", fcntl.F_RDLCK: "F_RDLCK", fcntl.F_UNLCK: "F_UNLCK"}[typ],
            start, ln, "the parent" if who == os.getppid() else who))
        os.write(w, ("\n".join(out) + "\n").encode())
        t0 = time.time()
        fcntl.lockf(me, fcntl.LOCK_EX, 10, 50)       # waits for the parent's unlock
        os.write(w, b"child EX [50, 60) blocking -> granted after the parent's unlock\n")
        os._exit(0)
    os.close(w)
    buf = b""
    while buf.count(b"\n") < 4:
        buf += os.read(r, 4096)
    show(buf.decode(), end="")
    fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        buf += chunk
    os.waitpid(pid, 0)
    show(buf.decode().split("\n", 4)[4], end="")
    os.close(fd)
EOF
ops() { timeout -k 5 60 python3 "$AUX/ops.py" "$@" 2>&1; }

# ---- SEEK_DATA / SEEK_HOLE
echo "== lseek SEEK_DATA / SEEK_HOLE"
layout() { # DIR: the same files on either side
	( cd "$1"
	  truncate -s 1G sp
	  head -c 8192 /dev/urandom | dd of=sp bs=4096 seek=256 iflag=fullblock conv=notrunc status=none
	  head -c 4096 /dev/urandom | dd of=sp bs=4096 seek=131072 iflag=fullblock conv=notrunc status=none
	  truncate -s 40000 tail && printf 'z' | dd of=tail bs=1 seek=39999 conv=notrunc status=none
	  printf hello >small
	  : >empty )
}
layout "$M"; layout "$P"
offs_sp='0 M-1 M M+5 M+2*K-1 M+2*K 512*M-1 512*M 512*M+K-1 512*M+K G-1 G 2*G -1'
(cd "$M" && ops seek sp $offs_sp) >"$AUX/seek.kvfs" || true
(cd "$M" && ops seek tail 0 36863 36864 39999 40000) >"$AUX/seek.kvfs.tail" || true
(cd "$M" && ops seek small 0 4 5 6 && ops seek empty 0) >"$AUX/seek.kvfs.small" || true
cat >"$AUX/seek.want" <<'EOF'
DATA 0 -> 1048576
HOLE 0 -> 0
DATA M-1 -> 1048576
HOLE M-1 -> 1048575
DATA M -> 1048576
HOLE M -> 1056768
DATA M+5 -> 1048581
HOLE M+5 -> 1056768
DATA M+2*K-1 -> 1056767
HOLE M+2*K-1 -> 1056768
DATA M+2*K -> 536870912
HOLE M+2*K -> 1056768
DATA 512*M-1 -> 536870912
HOLE 512*M-1 -> 536870911
DATA 512*M -> 536870912
HOLE 512*M -> 536875008
DATA 512*M+K-1 -> 536875007
HOLE 512*M+K-1 -> 536875008
DATA 512*M+K -> error: ENXIO
HOLE 512*M+K -> 536875008
DATA G-1 -> error: ENXIO
HOLE G-1 -> 1073741823
DATA G -> error: ENXIO
HOLE G -> error: ENXIO
DATA 2*G -> error: ENXIO
HOLE 2*G -> error: ENXIO
DATA -1 -> error: ENXIO
HOLE -1 -> error: ENXIO
EOF
check_eq "sparse 1 GiB file: SEEK_DATA/SEEK_HOLE at 14 offsets" "$(cat "$AUX/seek.want")" "$(cat "$AUX/seek.kvfs")"
check_eq "a file whose last block holds one byte" "DATA 0 -> 36864
HOLE 0 -> 0
DATA 36863 -> 36864
HOLE 36863 -> 36863
DATA 36864 -> 36864
HOLE 36864 -> 40000
DATA 39999 -> 39999
HOLE 39999 -> 40000
DATA 40000 -> error: ENXIO
HOLE 40000 -> error: ENXIO" "$(cat "$AUX/seek.kvfs.tail")"
check_eq "a small (inline) file is all data; an empty one has none" "DATA 0 -> 0
HOLE 0 -> 5
DATA 4 -> 4
HOLE 4 -> 5
DATA 5 -> error: ENXIO
HOLE 5 -> error: ENXIO
DATA 6 -> error: ENXIO
HOLE 6 -> error: ENXIO
DATA 0 -> error: ENXIO
HOLE 0 -> error: ENXIO" "$(cat "$AUX/seek.kvfs.small")"
ptype=$(stat -f -c %T "$P"); pbs=$(stat -f -c %S "$P")
case "$ptype/$pbs" in
ext2/ext3/4096|xfs/4096|btrfs/4096|tmpfs/4096)
	(cd "$P" && ops seek sp $offs_sp) >"$AUX/seek.plain" || true
	check_eq "the same answers as the plain directory ($ptype)" "$(cat "$AUX/seek.plain")" "$(cat "$AUX/seek.kvfs")";;
*)	echo "    (no comparison: the plain directory is $ptype with $pbs-byte blocks)";;
esac
# cp uses SEEK_DATA/SEEK_HOLE (coreutils >= 9) and then copy_file_range per data extent
(cd "$M" && timeout -k 5 120 cp sp sp.copy)
check "cp of the sparse file: the same bytes" cmp -s "$M/sp" "$M/sp.copy"
blocks=$(stat -c %b "$M/sp.copy")
check "cp of the sparse file: the copy is sparse too ($blocks blocks of 512 bytes)" test "$blocks" -le 256
check_eq "cp of the sparse file: its size" 1073741824 "$(stat -c %s "$M/sp.copy")"
check "a 1 GiB sparse file reads as zeros in a hole" \
	bash -c '[ "$(dd if="$1" bs=4096 skip=1000 count=16 status=none | tr -d "\0" | wc -c)" -eq 0 ]' _ "$M/sp"

# ---- copy_file_range
echo "== copy_file_range"
head -c 5000000 /dev/urandom >"$AUX/rand"
cp "$AUX/rand" "$M/src"; cp "$AUX/rand" "$P/src"
(cd "$P" && ops cfr) >"$AUX/cfr.plain" || true
(cd "$M" && ops cfr) >"$AUX/cfr.kvfs" || true
sed 's/^/    /' "$AUX/cfr.kvfs"
check_eq "copy_file_range: results, errors and contents as on the plain directory" \
	"$(cat "$AUX/cfr.plain")" "$(cat "$AUX/cfr.kvfs")"
check "copy_file_range: the copied files have the same bytes as on the plain directory" \
	bash -c 'cmp -s "$1/out" "$2/out" && cmp -s "$1/same" "$2/same"' _ "$M" "$P"
before=$(grep -c 'opcode: COPY_FILE_RANGE' "$AUX/daemon.log" || true)
if command -v strace >/dev/null; then
	(cd "$M" && timeout -k 5 60 strace -f -qq -e trace=copy_file_range -o "$AUX/cp.strace" cp src src.cp)
	check "cp on the mount calls copy_file_range and it copies (strace)" \
		grep -Eq 'copy_file_range\(.*\) = [1-9]' "$AUX/cp.strace"
else
	(cd "$M" && cp src src.cp)
	echo "    (strace not installed: not checking which system call cp made)"
fi
check "cp on the mount: the same bytes" cmp -s "$AUX/rand" "$M/src.cp"
after=$(grep -c 'opcode: COPY_FILE_RANGE' "$AUX/daemon.log" || true)
check "the daemon served cp's copy_file_range ($before -> $after COPY_FILE_RANGE requests)" \
	test "$after" -gt "$before"
check "the daemon served lseek SEEK_DATA/SEEK_HOLE (LSEEK requests)" \
	grep -q 'opcode: LSEEK' "$AUX/daemon.log"

# ---- locks
echo "== flock and fcntl locks"
(cd "$P" && ops flock && ops posix) >"$AUX/lock.plain" || true
(cd "$M" && ops flock && ops posix) >"$AUX/lock.kvfs" || true
sed 's/^/    /' "$AUX/lock.kvfs"
check_eq "flock(2) and fcntl locks: the same results as on the plain directory" \
	"$(cat "$AUX/lock.plain")" "$(cat "$AUX/lock.kvfs")"
: >"$M/lk2"
# the holder says when it has the lock ($AUX/held) and keeps it until told ($AUX/rel): no
# step depends on how fast the machine is
timeout -k 5 60 flock -x "$M/lk2" \
	sh -c ': >"$1"; while [ ! -e "$2" ]; do sleep 0.05; done' _ "$AUX/held" "$AUX/rel" &
holder=$!
check "flock(1) -x: the holder has the lock" fs_poll 20 test -e "$AUX/held"
rc=0; timeout -k 5 10 flock -n -x "$M/lk2" true || rc=$?
check_eq "flock(1) -n while another process holds the lock: exit 1" 1 "$rc"
rc=0; timeout -k 5 10 flock -n -s "$M/lk2" true || rc=$?
check_eq "flock(1) -n -s while another process holds it exclusively: exit 1" 1 "$rc"
timeout -k 5 30 flock -w 20 -x "$M/lk2" true &
waiter=$!
sleep 0.5
check "flock(1) -w: still waiting while the holder holds the lock" kill -0 "$waiter"
: >"$AUX/rel"
rc=0; wait "$waiter" || rc=$?
check_eq "flock(1) -w: granted once the holder lets go" 0 "$rc"
wait "$holder" || true
check "no lock request reached the daemon (the kernel keeps locks locally)" \
	bash -c '! grep -Eq "opcode: (GETLK|SETLK|SETLKW|FLOCK)" "$1"' _ "$AUX/daemon.log"

check "unmount" fs_umount "$M"

# ---- hard links beside readers.  After an unlink, and after a rename that replaces a file, the
# kernel decrements its cached nlink itself; an attribute reply made after the store's change
# but applied before that decrement (a reader's stat, lookup or readdirplus) would count it
# twice: nlink 0 on a file that still has a name, and link(2) of that name fails with ENOENT in
# the VFS, no request reaching the daemon (fs/kvfs.c "Link removals and the kernel's nlink";
# fs_concurrency's `ln` failed so once).  4 writers move a file around by `ln A B && rm A`,
# names coming back, and now and then give it a second name and rename another file over it;
# 2 readers stat and list everything meanwhile.  Without the daemon's fence every writer
# failed within a second or two.  KVFS_OPS_LINK_SECONDS changes the duration (default 6).
echo "== hard links beside readers (the kernel's nlink after unlink and rename)"
mkdir "$T/ln"
if fs_mount "$T/ln.kvfs" "$T/ln"; then
	L=$T/ln LSECS=${KVFS_OPS_LINK_SECONDS:-6}
	mkdir "$L/d0" "$L/d1" "$L/d2" "$L/d3"
	ln_writer() { # W: stops at the first failed step, with its message on stderr
		local w=$1 end=$((EPOCHSECONDS + LSECS)) cur nx n=0 links
		RANDOM=$w
		echo "w$w" >"$L/d0/f$w"
		cur=d0/f$w
		while [ "$EPOCHSECONDS" -lt "$end" ]; do
			nx=d$((RANDOM % 4))/l$((RANDOM % 2))-f$w
			[ "$nx" = "$cur" ] && continue
			{ ln "$L/$cur" "$L/$nx" && rm "$L/$cur"; } || return 1
			cur=$nx n=$((n + 1))
			if [ $((n % 2)) -eq 0 ]; then # a second name elsewhere, then a rename over it
				nx=d$(( (${cur:1:1} + 1 + RANDOM % 3) % 4 ))/r-f$w
				{ ln "$L/$cur" "$L/$nx" && printf t >"$L/$nx.t" &&
					mv "$L/$nx.t" "$L/$nx" && rm "$L/$nx"; } || return 1
			fi
		done
		links=$(stat -c %h "$L/$cur")
		[ "$links" = 1 ] || { echo "writer $w: $cur has $links links" >&2; return 1; }
		[ "$(cat "$L/$cur")" = "w$w" ] || { echo "writer $w: $cur: other bytes" >&2; return 1; }
		echo "$n" >"$AUX/ln.$w"
	}
	ln_reader() {
		while [ ! -e "$AUX/ln.stop" ]; do
			stat "$L"/d*/* >/dev/null 2>&1 || true
			ls -laR "$L" >/dev/null 2>&1 || true
		done
	}
	ln_pids=() ln_rpids=()
	for w in 1 2 3 4; do
		( set +e; ln_writer "$w" ) 2>"$AUX/ln.err.$w" &
		ln_pids+=($!)
	done
	for _ in 1 2; do ( set +e; ln_reader ) & ln_rpids+=($!); done
	ln_bad=0
	for p in "${ln_pids[@]}"; do wait "$p" || ln_bad=$((ln_bad + 1)); done
	touch "$AUX/ln.stop"
	for p in "${ln_rpids[@]}"; do wait "$p" || true; done
	ln_moves=0
	for f in "$AUX"/ln.[1-4]; do [ -f "$f" ] && ln_moves=$((ln_moves + $(cat "$f"))); done
	echo "    $ln_moves moves in $LSECS s"
	cat "$AUX"/ln.err.* | fs_indent 4
	check_eq "hard links beside readers: writers that failed (ln, mv, rm, or the links at the end)" \
		0 "$ln_bad"
	check "unmount" fs_umount "$L"
else
	check "mount for the hard-link test" false
fi

# ---- with the writeback cache, written bytes may be in the kernel only: never a hole
echo "== lseek and cp with -o writeback"
mkdir "$T/wb"
if fs_mount "$T/wb.kvfs" "$T/wb" -o writeback; then
	truncate -s 64M "$T/wb/f"
	head -c 8192 /dev/urandom >"$AUX/blk"
	dd if="$AUX/blk" of="$T/wb/f" bs=4096 seek=1000 conv=notrunc status=none
	# a write on a descriptor still open is only in the kernel's cache (close flushes it)
	check_eq "SEEK_DATA/SEEK_HOLE on a descriptor just written: all data, never a hole" \
		"0 67108864" "$(timeout -k 5 30 python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"x" * 8192, 20 << 20)
print(os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE))' "$T/wb/f" 2>&1)"
	cp "$T/wb/f" "$T/wb/g"
	check "cp: the copy has the bytes written just before" \
		bash -c 'cmp -s "$1" <(dd if="$2" bs=4096 skip=1000 count=2 status=none)' _ "$AUX/blk" "$T/wb/g"
	check "cp: the same file" cmp -s "$T/wb/f" "$T/wb/g"
	check "unmount" fs_umount "$T/wb"
else
	check "mount -o writeback" false
fi
fs_summary
