#!/usr/bin/env bash
# tests/fs_differential.sh BUILD_DIR — one shell script run twice, on a kvfs mount and on a plain
# directory (under $TMPDIR or /tmp: ext4, tmpfs, ...), step by step; every step's stdout, stderr
# and exit status must be the same on both sides.  Exit 77: FUSE unusable here.
#
# Normalizations (everything else is compared byte for byte):
#   * the root of each side (the mountpoint, the plain directory) is replaced by ROOT in every
#     output, and every step runs inside ROOT/w so that relative names are the same;
#   * `ls -la` goes through lsn(): `ls -lan --time-style=+%%`, then
#       - the "total N" line is dropped: it counts allocated blocks, which depend on the file
#         system's allocation unit, not on anything a user wrote;
#       - the ".." line is dropped: it describes the directory holding the test root, which is a
#         different directory on each side (a mountpoint vs a mktemp directory);
#       - timestamps are dropped (the files are created at different instants; times that a user
#         sets are compared exactly with stat -c %y/%x after touch -d);
#       - owners are compared as numbers (-n): names come from /etc/passwd, not from the file
#         system;
#       - a directory's size is replaced by "-": st_size of a directory is file-system specific
#         (4096 on ext4, 40+ on tmpfs, 0 on kvfs); a regular file's and a symlink's are kept;
#       - a trailing "." after the mode string is removed: it only says that an SELinux label
#         exists (ext4 under SELinux) and is not part of the mode;
#   * xattrs: only the user.* namespace is listed (security.* labels are added by an LSM on some
#     hosts); when the plain side has no user xattrs (tmpfs before Linux 6.6) both sides print
#     "xattrs: not supported by the reference file system" instead of running the xattr steps;
#   * stat formats used never include st_blocks, st_dev, st_ino or directory sizes (same reasons).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"

fs_tmpdir T
mkdir "$T/mnt" "$T/plain" "$T/aux"
AUX=$T/aux
head -c $((3 << 20)) /dev/urandom >"$AUX/rand"

# ---- helpers the steps use (outside both trees, so no path of theirs is printed) ----
cat >"$AUX/xa.py" <<'EOF'
# xa.py OP PATH [NAME [VALUE [create|replace]]]: xattrs without setfattr/getfattr
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "set":
        flags = {"create": os.XATTR_CREATE, "replace": os.XATTR_REPLACE}.get(
            sys.argv[5] if len(sys.argv) > 5 else "", 0)
        os.setxattr(path, sys.argv[3], sys.argv[4].encode(), flags, follow_symlinks=False)
    elif op == "setbig":  # NAME LEN: a value of LEN patterned bytes
        n = int(sys.argv[4])
        os.setxattr(path, sys.argv[3], bytes((i * 7) % 251 for i in range(n)), 0,
                    follow_symlinks=False)
    elif op == "get":
        v = os.getxattr(path, sys.argv[3], follow_symlinks=False)
        print(len(v), v[:48])
    elif op == "list":
        print(sorted(n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user.")))
    elif op == "rm":
        os.removexattr(path, sys.argv[3], follow_symlinks=False)
    elif op == "probe":
        os.setxattr(path, "user.probe", b"1")
        os.removexattr(path, "user.probe")
except OSError as e:
    print("error:", errno.errorcode.get(e.errno, e.errno), e.strerror)
    sys.exit(1)
EOF

cat >"$AUX/ops.py" <<'EOF'
# ops.py SCENARIO: system-call sequences that shell tools cannot express
import errno, os, sys
def show(*a): print(*a, flush=True)
def attempt(label, f):
    try:
        show(label, "->", f())
    except OSError as e:
        show(label, "-> error:", errno.errorcode.get(e.errno, e.errno))
s = sys.argv[1]
if s == "unlinked-open":          # an unlinked file stays usable until its last close
    fd = os.open("u", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"abc")
    os.unlink("u")
    show("exists after unlink:", os.path.exists("u"))
    show("nlink:", os.fstat(fd).st_nlink)
    os.write(fd, b"def")
    show("pread:", os.pread(fd, 100, 0))
    os.ftruncate(fd, 2)
    show("size after ftruncate:", os.fstat(fd).st_size, os.pread(fd, 100, 0))
    os.close(fd)
    show("listed:", "u" in os.listdir("."))
elif s == "append":               # O_APPEND from two descriptors
    a = os.open("ap", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    b = os.open("ap", os.O_WRONLY | os.O_APPEND)
    for i in range(5):
        os.write(a, b"a%d\n" % i)
        os.write(b, b"b%d\n" % i)
    os.close(a); os.close(b)
    show(open("ap", "rb").read())
elif s == "excl":
    attempt("O_CREAT|O_EXCL new", lambda: os.close(os.open("ex", os.O_CREAT | os.O_EXCL | os.O_WRONLY)) or "ok")
    attempt("O_CREAT|O_EXCL again", lambda: os.open("ex", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    attempt("O_DIRECTORY on a file", lambda: os.open("ex", os.O_DIRECTORY))
    attempt("O_WRONLY on a dir", lambda: os.open(".", os.O_WRONLY))
    attempt("open missing", lambda: os.open("missing", os.O_RDONLY))
    attempt("O_CREAT in missing dir", lambda: os.open("nodir/x", os.O_CREAT | os.O_WRONLY))
    attempt("O_TRUNC", lambda: (open("ex", "w").write("12345"), os.close(os.open("ex", os.O_WRONLY | os.O_TRUNC)), os.stat("ex").st_size)[2])
elif s == "holes":                # pwrite past the end, reads of holes and past EOF
    fd = os.open("ho", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"tail", 100000)
    show("size:", os.fstat(fd).st_size)
    show("hole read:", os.pread(fd, 8, 5000), "past eof:", os.pread(fd, 10, 100002))
    os.pwrite(fd, b"X" * 5000, 4090)    # across several 4 KiB boundaries
    data = os.pread(fd, 200000, 0)
    show("len:", len(data), "nonzero:", sum(1 for c in data if c))
    os.ftruncate(fd, 4095)
    os.ftruncate(fd, 9000)             # regrown: bytes 4095.. must read as zeros
    data = os.pread(fd, 20000, 0)
    show("len:", len(data), "nonzero:", sum(1 for c in data if c))
    os.close(fd)
elif s == "rename":               # rename(2) corner cases, errno by errno
    os.mkdir("rn"); os.chdir("rn")
    open("f", "w").write("f"); open("g", "w").write("g"); os.mkdir("d"); os.mkdir("e")
    open("e/x", "w").write("x"); os.mkdir("empty")
    attempt("file over file", lambda: (os.rename("f", "g"), open("g").read())[1])
    attempt("file over dir", lambda: os.rename("g", "d"))
    attempt("dir over file", lambda: (open("h", "w").write("h"), os.rename("d", "h"))[1])
    attempt("dir over empty dir", lambda: (os.rename("d", "empty"), sorted(os.listdir(".")))[1])
    attempt("dir over non-empty dir", lambda: os.rename("empty", "e"))
    attempt("dir into itself", lambda: os.rename("e", "e/sub"))
    attempt("missing source", lambda: os.rename("nope", "x"))
    attempt("into missing dir", lambda: os.rename("h", "nodir/h"))
    attempt("onto itself", lambda: (os.rename("h", "h"), os.path.exists("h"))[1])
    os.link("h", "h2")
    attempt("onto its own hard link", lambda: (os.rename("h", "h2"), sorted(os.listdir(".")))[1])
    attempt("nlink", lambda: (os.stat("h").st_nlink, os.stat("h2").st_nlink))
    attempt("dot", lambda: os.rename(".", "x"))
    os.chdir("..")
elif s == "replaced-open":        # a file replaced by rename or unlinked stays readable through fds
    open("ro1", "w").write("old contents")
    fd = os.open("ro1", os.O_RDONLY)
    open("ro2", "w").write("new")
    os.rename("ro2", "ro1")
    show("old fd:", os.pread(fd, 100, 0), "nlink:", os.fstat(fd).st_nlink)
    show("by name:", open("ro1").read())
    fd2 = os.open("ro1", os.O_RDONLY)
    os.unlink("ro1")
    open("ro1", "w").write("third")
    show("fd2:", os.pread(fd2, 100, 0), "name:", open("ro1").read())
    os.close(fd); os.close(fd2); os.unlink("ro1")
elif s == "rmdir-open":           # a removed directory, still open
    os.mkdir("rd")
    fd = os.open("rd", os.O_RDONLY | os.O_DIRECTORY)
    os.rmdir("rd")
    attempt("listdir of removed dir", lambda: os.listdir(fd))
    attempt("create in removed dir", lambda: os.open("x", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    attempt("nlink", lambda: os.fstat(fd).st_nlink)
    os.close(fd)
elif s == "mmap":                 # shared writable mapping, msync, read back
    import mmap
    fd = os.open("mm", os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 3 * 4096 + 100)
    m = mmap.mmap(fd, 3 * 4096 + 100)
    m[4090:4100] = b"0123456789"
    m[-4:] = b"last"
    m.flush(); m.close(); os.close(fd)
    data = open("mm", "rb").read()
    show(len(data), data[4090:4100], data[-4:], sum(1 for c in data if c))
elif s == "times":                # which calls move mtime and ctime (50 ms apart)
    import time
    def t(p):
        st = os.stat(p)
        return st.st_mtime_ns, st.st_ctime_ns
    def step(label, f, *paths):
        before = [t(p) for p in paths]
        time.sleep(0.05)
        f()
        after = [t(p) for p in paths]
        show(label, " ".join("%s:m%s,c%s" % (p, "+" if a[0] > b[0] else "=", "+" if a[1] > b[1] else "=")
                             for p, a, b in zip(paths, after, before)))
    os.mkdir("td"); open("td/f", "w").write("x")
    step("write", lambda: open("td/f", "a").write("y"), "td/f", "td")
    step("chmod", lambda: os.chmod("td/f", 0o600), "td/f", "td")
    step("chown", lambda: os.chown("td/f", 0, 0), "td/f")
    step("truncate", lambda: os.truncate("td/f", 1), "td/f")
    step("same-size truncate", lambda: os.truncate("td/f", 1), "td/f")
    step("link", lambda: os.link("td/f", "td/g"), "td/f", "td")
    step("rename", lambda: os.rename("td/g", "td/h"), "td/f", "td")
    step("unlink", lambda: os.unlink("td/h"), "td/f", "td")
    step("create", lambda: open("td/n", "w").close(), "td")
    step("mkdir", lambda: os.mkdir("td/sub"), "td")
    step("rmdir", lambda: os.rmdir("td/sub"), "td")
    step("symlink", lambda: os.symlink("f", "td/sl"), "td")
    step("setxattr", lambda: os.setxattr("td/f", "user.t", b"1"), "td/f")
    step("O_TRUNC of empty file", lambda: open("td/n", "w").close(), "td/n")
    step("utime", lambda: os.utime("td/n", ns=(5, 7)), "td/n")
else:
    sys.exit("unknown scenario " + s)
EOF

cat >"$AUX/steps.sh" <<'EOF'
# steps.sh: run in ROOT/w on each side.  Each step prints its header, its output, its status.
AUX=$1
n=0
step() {
	n=$((n + 1))
	printf '=== step %d: %s\n' "$n" "$1"
	local rc=0
	( eval "$1" ) 2>&1 || rc=$?
	printf '[exit %d]\n' "$rc"
}
lsn() {
	ls -lan --time-style=+%% "$@" | awk '
		/^total / { next }
		NF < 7 { print; next }
		{
			mode = $1; sub(/\.$/, "", mode)
			name = $0
			for (i = 0; i < 6; i++) sub(/^[^ ]+ +/, "", name)
			if (name == "..") next
			size = $5; if (mode ~ /^d/) size = "-"
			print mode, $2, $3, $4, size, name
		}'
}
xa() { python3 "$AUX/xa.py" "$@"; }
ops() { python3 "$AUX/ops.py" "$@"; }
tree() { # tree DIR: what a user relies on, without times and directory sizes
	find "$1" -printf '%P %y %m %n %U:%G %l\n' | sort | while read -r p y rest; do
		if [ "$y" = f ]; then printf '%s %s %s %s %s\n' "$p" "$y" "$rest" "$(stat -c %s "$1/$p")" "$(md5sum <"$1/$p" | cut -c1-32)"
		else printf '%s %s %s\n' "$p" "$y" "$rest"; fi
	done
}

# -- create, append, read
step 'echo hello > a; cat a'
step 'printf "more\n" >> a; printf "%s" x y z >> a; echo >> a; cat a; stat -c "%s %h %F" a'
step 'mkdir d d/sub; echo 1 > d/f1; lsn d'
step 'lsn .'
step 'stat -c "%h %F %a" . d d/sub'
# -- errors
step 'mkdir d'
step 'mkdir -p d/sub; echo $?'
step 'rmdir d'
step 'rmdir nonexistent'
step 'rmdir a'
step 'rm nope'
step 'rm -f nope; echo $?'
step 'rm d'
step 'unlink d'
step 'cat d'
step 'echo x > d'
step 'mkdir x/y'
step 'mkdir a/y'
step 'cat a/y'
step 'touch $(printf "n%.0s" $(seq 256))'
step 'touch $(printf "n%.0s" $(seq 255)) && ls | grep -c nnnn && rm n*'
step 'ln d dlink'
step 'ln -s loop loop; cat loop; rm loop'
step 'ops excl'
# -- rm, mv
step 'rm a; cat a; lsn .'
step 'echo b > b; echo c > c; mv b c; cat c; ls'
step 'mv c d/; ls d; cat d/c'
step 'mkdir e f; echo x > e/x; mv -T e f; lsn .; ls f'
step 'mkdir g h; echo y > h/y; mv -T g h'
step 'mv -T f h'
step 'mv g g/inside'
step 'echo moved > m1; mkdir md; mv m1 md/m2; mv md md2; cat md2/m2; ls md 2>&1; lsn md2'
step 'ops rename; lsn rn'
# -- cp -a, links
step 'cp -a d dcopy; diff -r d dcopy && echo same; lsn dcopy; tree dcopy; rm -r dcopy'
step 'echo data > l1; ln l1 l2; stat -c "%s %h %F" l1 l2; lsn .'
step 'echo more >> l2; cat l1; rm l1; stat -c "%h" l2; cat l2'
step 'ln l2 d/l3; ln l2 l4; stat -c %h l2; mv l4 d/l3; stat -c %h l2 d/l3; rm d/l3; stat -c %h l2'
step 'ln -s l2 s1; ln -s nowhere s2; ln -s ../w/d s3; readlink s1 s2 s3; cat s1; cat s2; ls s3'
step 'stat -c "%s %F %N" s1 s2 s3; stat -L -c "%s %F" s1; stat -L -c %F s3; lsn .'
step 'ln -s "$(printf "t%.0s" $(seq 1000))" long1; readlink long1 | wc -c; stat -c %s long1'
step 'ln -s "$(printf "%04095d" 0)" long2; readlink long2 | wc -c; stat -c %s long2'
step 'readlink l2; echo $?'
step 'ln s1 hs; stat -c "%h %F" hs s1; readlink hs'
# -- chmod, chown
step 'chmod 640 l2; stat -c "%a %A" l2; chmod u+s,g+s l2; stat -c "%a %A" l2; chmod 1777 d; stat -c "%a %A" d; chmod 755 d'
step 'chmod 000 l2; stat -c %a l2; cat l2; chmod 644 l2'
step 'chown 1234:5678 l2; stat -c "%u %g" l2; chown -h 42:43 s1; stat -c "%u %g" s1 l2; chown 0:0 l2'
step 'chown 7 d/sub; stat -c "%u %g" d/sub; chgrp 9 d/sub; stat -c "%u %g" d/sub'
step 'echo s > suid; chmod 6755 suid; chown 5:6 suid; stat -c "%a %u %g" suid'
step 'echo s > sgid; chmod 2745 sgid; chown 5:6 sgid; stat -c "%a %u %g" sgid'
step 'echo s > suidw; chmod 4755 suidw; echo more >> suidw; stat -c %a suidw'
step '(umask 027; mkdir um; echo > um/f; mkdir um/d; stat -c "%n %a" um um/f um/d)'
step 'mkdir sg; chown 0:1234 sg; chmod 2775 sg; mkdir sg/sub; echo > sg/f; mkfifo sg/p; stat -c "%n %a %u %g %F" sg sg/sub sg/f sg/p'
step 'mknod nod c 1 3; stat -c "%F %t %T %a" nod; rm nod'
# -- times
step 'touch -d "2001-02-03 04:05:06.123456789" l2; stat -c "%y|%x" l2'
step 'touch -m -d "1999-12-31 23:59:59.5" l2; stat -c "%y|%x" l2'
step 'touch -a -d "2003-03-03 03:03:03.000000003" l2; stat -c "%y|%x" l2'
step 'touch -h -d "2002-01-01 00:00:00.000000001" s1; stat -c %y s1; stat -L -c %y s1'
step 'touch -d "1960-06-01 12:00:00.25" l2; stat -c %y l2; touch -d @-0.25 l2; stat -c %y l2; touch -d @-1 l2; stat -c %y l2'
step 'touch -d @4294967296 l2; stat -c %Y l2'
step 'touch -d "2001-02-03 04:05:06.7" d; stat -c %y d'
step 'touch -r l2 rt; stat -c %y rt'
# -- truncate, dd
step 'printf 0123456789 > tr; truncate -s 20 tr; od -An -c tr; stat -c %s tr; truncate -s 4 tr; cat tr; echo; truncate -s 5000 tr; md5sum < tr; truncate -s 0 tr; stat -c %s tr'
step 'printf 0123456789 > tr2; truncate -s +3 tr2; truncate -s -8 tr2; od -An -c tr2'
step 'printf abcdefghij > dd1; printf XYZ | dd of=dd1 conv=notrunc bs=1 seek=3 status=none; cat dd1; echo; printf END | dd of=dd1 conv=notrunc bs=1 seek=15 status=none; od -An -c dd1; stat -c %s dd1'
step 'printf Q | dd of=dd2 bs=4096 seek=3 status=none; stat -c %s dd2; md5sum < dd2'
step 'printf abcdef > dd3; printf Z | dd of=dd3 bs=1 seek=2 status=none; od -An -c dd3'
step 'ops holes'
step 'ops unlinked-open'
step 'ops append'
step 'ops replaced-open'
step 'ops rmdir-open'
step 'ops mmap'
step 'ops times'
step 'truncate -s 5G huge; printf END | dd of=huge bs=1 seek=$((4 << 30)) conv=notrunc status=none; stat -c %s huge; dd if=huge bs=1 skip=$((4 << 30)) count=3 status=none; echo; dd if=huge bs=1 skip=$((4 << 30 - 2)) count=2 status=none | od -An -c; rm huge'
step 'for n in "sp ace" "$(printf "new\nline")" "ütf8" "-dash" "..." ".hidden" "a:b" "back\\slash"; do echo "[$n]" > "./$n"; done; ls -A --quoting-style=escape; cat ./-dash ./... "ütf8" "back\\slash"; rm -f -- "sp ace" "$(printf "new\nline")" "ütf8" "-dash" "..." ".hidden" "a:b" "back\\slash"; ls -A'
step 'mkdir -p r1/r2/r3; echo deep > r1/r2/r3/f; mv r1/r2 r2moved; cat r2moved/r3/f; ls r1; cat r1/r2/r3/f; mv r2moved r1/r2; cat r1/r2/r3/f; rm -r r1'
step 'stat -f -c "%l" .'
step 'fallocate -l 10000 fa; stat -c %s fa; fallocate -n -o 20000 -l 100 fa; stat -c %s fa; printf abcdefghij > pu; fallocate -p -o 2 -l 3 pu; od -An -c pu'
# -- listings
step 'find . | sort'
step 'find . -type f | sort; find . -type l | sort; find . -type d | sort'
step 'tree .'
step 'stat -c "%n %s %h %F" $(find . -type f | sort)'
step 'stat -c "%n %h %F" $(find . -type d | sort)'
# -- tar round trip within the same side
step 'mkdir tsrc tsrc/sub; echo 1 > tsrc/one; head -c 70000 "$AUX/rand" > tsrc/sub/bin; ln tsrc/one tsrc/one.hard; ln -s one tsrc/one.sym; chmod 600 tsrc/one; touch -d "2005-05-05 05:05:05" tsrc/sub/bin; : > tsrc/empty'
step 'mkdir tdst; tar cf - -C tsrc . | tar xf - -C tdst; echo "tar: ${PIPESTATUS[*]}"; diff -r tsrc tdst && echo identical; diff <(tree tsrc) <(tree tdst) && echo same-tree; stat -c "%n %y" tdst/sub/bin'
# -- many small files (long names: several readdir buffers)
step 'mkdir many; for i in $(seq 200); do printf "file %d\n" $i > many/f$i; done; ls many | wc -l; cat $(for i in $(seq 200); do echo many/f$i; done) | md5sum; ls many | md5sum'
step 'mkdir long; for i in $(seq 200); do printf "%d" $i > long/$(printf "%03d-%0200d" $i $i); done; ls long | wc -l; ls long | md5sum; ls -U long | sort | md5sum; cat long/* | md5sum'
step 'lsn many | md5sum; stat -c %h many'
step 'rm many/f1*; ls many | wc -l; rm -r many long; ls many'
# -- 3 MiB of random bytes
step 'cp "$AUX/rand" big; md5sum < big; md5sum < "$AUX/rand"; stat -c %s big; cmp big "$AUX/rand" && echo same'
step 'dd if=big bs=7777 skip=3 count=10 status=none | md5sum; dd if="$AUX/rand" bs=7777 skip=3 count=10 status=none | md5sum'
step 'printf HELLO | dd of=big bs=1 seek=1048575 conv=notrunc status=none; head -c 100000 /dev/zero | dd of=big bs=1 seek=2000001 conv=notrunc status=none 2>/dev/null; dd if=big bs=1M skip=1 count=1 status=none | od -An -c | head -n 1; md5sum < big'
step 'cat big big > big2; stat -c %s big2; md5sum < big2; truncate -s 3000000 big2; md5sum < big2'
# -- xattrs (python3 os.*xattr)
if python3 "$AUX/xa.py" probe . >/dev/null 2>&1 && [ -z "${NO_XATTR:-}" ]; then
step 'echo x > xf; xa set xf user.a 1; xa get xf user.a; xa list xf'
step 'xa set xf user.b "" ; xa get xf user.b; xa set xf user.c "value with spaces"; xa list xf'
step 'xa set xf user.a 2 create; xa set xf user.zz 1 replace; xa set xf user.a 3 replace; xa get xf user.a'
step 'xa get xf user.missing; xa rm xf user.missing; xa rm xf user.b; xa list xf'
step 'xa setbig xf user.big 3000; xa get xf user.big; xa list xf'
step 'xa set d user.dir yes; xa get d user.dir; xa list d'
step 'xa set s1 user.link no; xa list s1'
step 'xa set xf trusted.t tv; xa get xf trusted.t'
step 'xa set xf nonamespace v'
step 'ln xf xf2; mv xf xf3; xa get xf2 user.c; xa list xf3'
step 'cp -a xf3 xf4; xa list xf4; xa get xf4 user.big; stat -c %a xf3 xf4'
step 'rm xf2 xf3; xa list xf4; rm xf4'
else
step 'echo "xattrs: not supported by the reference file system"'
fi
# -- everything at the end
step 'tree .'
step 'rm -rf ./*; ls -A; lsn .'
EOF

run_side() { # NAME ROOT
	local rc=0
	mkdir "$2/w"
	(cd "$2/w" && timeout -k 5 120 bash "$AUX/steps.sh" "$AUX") >"$AUX/raw.$1" 2>&1 || rc=$?
	sed "s|$2|ROOT|g" "$AUX/raw.$1" >"$AUX/out.$1"
	return $rc
}

NO_XATTR=
python3 "$AUX/xa.py" probe "$T/plain" >/dev/null 2>&1 || NO_XATTR=1
export NO_XATTR

if ! fs_mount "$T/store.kvfs" "$T/mnt"; then
	check "mount the store" false
	fs_summary; exit 1
fi
rc=0; run_side plain "$T/plain" || rc=$?
check "the steps run to the end on the plain directory (exit $rc)" test "$rc" -eq 0
rc=0; run_side kvfs "$T/mnt" || rc=$?
check "the steps run to the end on kvfs, without a hang (exit $rc)" test "$rc" -eq 0

# compare step by step
total=$(grep -c '^=== step ' "$AUX/out.plain" || true)
for i in $(seq 1 "$total"); do
	for side in plain kvfs; do
		awk -v n="$i" '/^=== step / { s = ($3 == n ":") } s' "$AUX/out.$side" >"$AUX/step.$side"
	done
	title=$(head -n 1 "$AUX/step.plain" | cut -c5-120)
	if cmp -s "$AUX/step.plain" "$AUX/step.kvfs"; then
		check "same output: $title" true
	else
		check "same output: $title" false
		diff -u --label plain --label kvfs "$AUX/step.plain" "$AUX/step.kvfs" | sed 's/^/    /' | head -n 60 || true
	fi
done
check "whole outputs identical" cmp -s "$AUX/out.plain" "$AUX/out.kvfs"
check "unmount and the daemon exits" fs_umount "$T/mnt"
fs_summary
