#!/usr/bin/env bash
# tests/fs_scale.sh BUILD_DIR — sizes a user reaches, on a real mount, with the tools a user has:
#   * 100,000 files in one directory (made by one python3 process, not 100k forks): ls | wc -l,
#     stat of a sample, the same listing after a remount, rm of them all (an empty directory
#     and no inodes left: statfs's file count back where it was);
#   * a 1 GiB file written sequentially (dd bs=1M) and read back, checksummed against the
#     bytes sent, before and after a remount;
#   * a 10 GiB sparse file (truncate -s 10G, a few blocks with dd seek): st_blocks counts only
#     those blocks, holes read as zeros, SEEK_DATA finds each block and SEEK_HOLE the gaps;
#   * a directory of 10,000 entries renamed with one mv: every entry there afterwards with its
#     contents, none left under the old name, also after a remount.
# Under an AddressSanitizer build (KVFS_SANITIZE=ON in BUILD_DIR/CMakeCache.txt) the first two
# shrink to 20,000 files and 256 MiB, as the output says; KVFS_SCALE_FILES and KVFS_SCALE_MIB
# override both.  Exit 77: FUSE unusable here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
command -v python3 >/dev/null || fs_skip "python3 is needed"

files=100000 mib=1024
if grep -q '^KVFS_SANITIZE:BOOL=ON' "$1/CMakeCache.txt" 2>/dev/null; then
	files=20000 mib=256
	echo "(AddressSanitizer build: $files files and $mib MiB instead of 100000 and 1024)"
fi
files=${KVFS_SCALE_FILES:-$files} mib=${KVFS_SCALE_MIB:-$mib}

fs_tmpdir T
mkdir "$T/mnt"
M=$T/mnt S=$T/s.kvfs
fs_mount "$S" "$M" || { check "mount" false; fs_summary; exit; }
remount() { fs_umount "$M" && fs_mount "$S" "$M"; }
secs() { echo $(( ($(date +%s%N) - $1) / 1000000 ))ms; }
files_used() { stat -f -c '%c %d' "$M" | awk '{ print $1 - $2 }'; } # f_files - f_ffree

# ---- many files in one directory
echo "== $files files in one directory"
used0=$(files_used)
t0=$(date +%s%N)
timeout -k 5 240 python3 - "$M/many" "$files" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
for i in range(n):
    fd = os.open("%s/f%06d" % (d, i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    if i % 1000 == 0:          # every thousandth file has contents
        os.write(fd, b"file %d\n" % i)
    os.close(fd)
EOF
echo "    created in $(secs "$t0")"
t0=$(date +%s%N)
check_eq "ls | wc -l" "$files" "$(ls "$M/many" | wc -l)"
echo "    listed in $(secs "$t0")"
check_eq "ls: names in order, first and last" "f000000 f$(printf %06d $((files - 1)))" \
	"$(ls "$M/many" | sed -n "1p;${files}p" | tr '\n' ' ' | sed 's/ $//')"
sample=$(for i in 0 1 999 1000 $((files / 2)) $((files - 1)); do printf '%s/many/f%06d ' "$M" "$i"; done)
want=
for i in 0 1 999 1000 $((files / 2)) $((files - 1)); do
	if [ $((i % 1000)) -eq 0 ]; then
		want="$want|$(printf 'file %d\n' "$i" | wc -c) regular file"
	else
		want="$want|0 regular empty file"
	fi
done
# shellcheck disable=SC2086
check_eq "stat of a sample: sizes and types" "${want#|}" \
	"$(stat -c '%s %F' $sample | tr '\n' '|' | sed 's/|$//')"
check_eq "a file's contents" "file 1000" "$(cat "$M/many/f001000")"
check "remount" remount
check_eq "after a remount: ls | wc -l" "$files" "$(ls "$M/many" | wc -l)"
check_eq "after a remount: a file's contents" "file $((files / 2))" "$(cat "$M/many/f$(printf %06d $((files / 2)))")"
t0=$(date +%s%N)
check "rm -rf of them all" timeout -k 5 240 rm -rf "$M/many"
echo "    removed in $(secs "$t0")"
check "the directory is gone" test ! -e "$M/many"
check_eq "no inodes left over (statfs: files in use)" "$used0" "$(files_used)"

# ---- a big file
echo "== a $mib MiB file, sequential"
t0=$(date +%s%N)
mkfifo "$T/fifo"
timeout -k 5 240 dd if="$T/fifo" of="$M/big" bs=1M iflag=fullblock status=none &
writer=$!
want=$(head -c $((mib << 20)) /dev/urandom | tee "$T/fifo" | sha256sum | cut -d' ' -f1)
rc=0; wait "$writer" || rc=$?
check_eq "dd bs=1M of=the mount: exit status" 0 "$rc"
echo "    written in $(secs "$t0")"
check_eq "size" $((mib << 20)) "$(stat -c %s "$M/big")"
t0=$(date +%s%N)
check_eq "read back: the same sha256" "$want" "$(dd if="$M/big" bs=1M status=none | sha256sum | cut -d' ' -f1)"
echo "    read in $(secs "$t0")"
blocks=$(stat -c %b "$M/big")
check "st_blocks covers the data ($blocks)" test "$blocks" -ge $((mib * 2048))
t0=$(date +%s%N)
check "remount" remount
echo "    remounted (a checkpoint of the file) in $(secs "$t0")"
check_eq "after a remount: the same sha256" "$want" "$(sha256sum <"$M/big" | cut -d' ' -f1)"
rm "$M/big"

# ---- a 10 GiB sparse file
echo "== a 10 GiB sparse file"
truncate -s 10G "$M/sparse"
offs="0 12345 1000000 2621437 2621438 2621439"  # in 4 KiB blocks; 2621439 is the last one
for b in $offs; do
	printf 'block %s' "$b" | dd of="$M/sparse" bs=4096 seek="$b" conv=notrunc status=none
done
check_eq "size" 10737418240 "$(stat -c %s "$M/sparse")"
blocks=$(stat -c %b "$M/sparse")
check "st_blocks counts the 6 blocks written, not 10 GiB ($blocks)" test "$blocks" -le 64
check_eq "a hole reads as zeros (4 MiB at 5 GiB)" 0 \
	"$(dd if="$M/sparse" bs=1M skip=5120 count=4 status=none | tr -d '\0' | wc -c)"
check_eq "a written block reads back" "block 1000000" \
	"$(dd if="$M/sparse" bs=4096 skip=1000000 count=1 status=none | tr -d '\0')"
seekmap() {
	timeout -k 5 60 python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
off, runs = 0, []
while True:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    runs.append("%d+%d" % (d // 4096, (h - d) // 4096))
    off = h
print(" ".join(runs))
EOF
}
check_eq "SEEK_DATA/SEEK_HOLE walk: every run of blocks (start+length, in blocks)" \
	"0+1 12345+1 1000000+1 2621437+3" "$(seekmap "$M/sparse")"
check "remount" remount
check_eq "after a remount: the same runs" "0+1 12345+1 1000000+1 2621437+3" "$(seekmap "$M/sparse")"
check_eq "after a remount: the last block" "block 2621439" \
	"$(dd if="$M/sparse" bs=4096 skip=2621439 count=1 status=none | tr -d '\0')"
t0=$(date +%s%N)
check "rm of the sparse file" rm "$M/sparse"
echo "    removed in $(secs "$t0")"

# ---- renaming a big directory
echo "== a directory of 10,000 entries renamed"
timeout -k 5 120 python3 - "$M/src/dir" <<'EOF'
import os, sys
os.makedirs(sys.argv[1])
for i in range(10000):
    with open("%s/e%05d" % (sys.argv[1], i), "w") as f:
        f.write("entry %d\n" % i)
EOF
mkdir "$M/dst"
t0=$(date +%s%N)
check "mv of the directory" mv "$M/src/dir" "$M/dst/moved"
echo "    renamed in $(secs "$t0")"
want=$(seq -f 'e%05g' 0 9999)
check_eq "all 10,000 entries under the new name" "$want" "$(ls "$M/dst/moved")"
check "nothing under the old name" test ! -e "$M/src/dir"
check_eq "contents (a sample)" "entry 0 entry 4242 entry 9999" \
	"$(cat "$M/dst/moved/e00000" "$M/dst/moved/e04242" "$M/dst/moved/e09999" | tr '\n' ' ' | sed 's/ $//')"
check "remount" remount
check_eq "after a remount: all 10,000 entries" "$want" "$(ls "$M/dst/moved")"
check_eq "after a remount: every file's contents" "10000" \
	"$(cat "$M"/dst/moved/e* | awk -v n=0 '$0 == "entry " n { n++ } END { print n }')"
check "unmount" fs_umount "$M"
fs_summary
