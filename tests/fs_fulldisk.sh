#!/usr/bin/env bash
# tests/fs_fulldisk.sh BUILD_DIR — a kvfs store on a full disk (a size-limited tmpfs).
#   1. Three writers fill the mount with fsynced 256 KiB files until it is full: each must stop
#      on ENOSPC (not EIO, and not hang); every file whose fsync returned must read back the
#      same while mounted, after the unmount (whose final checkpoint cannot get the pages it
#      needs: the daemon must still exit and lose nothing), after kvfs-check -n (exit 0: store
#      and log clean, the records still to replay are not errors), and after the next mount
#      (which replays the log onto a store that is still full).  On that full mount a new
#      file still gets ENOSPC, a hole punch with both ends inside blocks works, and rm of the
#      writers' files must succeed (deletes need no space: store/engine.c INV-E3) and give the
#      room back: new fsynced writes succeed again.
#      The store then unmounts cleanly (checkpointed) and kvfs-check -n exits 0.
#   2. The log's file system filling up: STORE-wal's ring is allocated whole at the mount, so
#      filling the disk with another file while mounted must not stop writes that fit in the
#      log without a checkpoint growing the data file (1 MiB of fsynced files with checkpoints
#      at 8 MiB), nor lose them at the unmount or the next mount; once a checkpoint needs the
#      data file to grow, writes get ENOSPC; when the other file is removed, writes go on.  A
#      clean unmount leaves the log at rest (a 1 MiB ring: store/engine.c ring_rest); a disk
#      filled before the next mount keeps the ring that small: writes then go on or stop on
#      ENOSPC (never EIO), lose nothing, and the ring grows back at a mount with room.
# The tmpfs is 96 MiB: the log's ring is 36 MiB for a new store (engine_log_ring_bytes), and
# the data file needs room to fill.  Needs root (mount -t
# tmpfs); skipped (77) without it or without FUSE.  Cost: about 20 s (the writers fill ~30 MiB
# through FUSE), a little more under AddressSanitizer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
BUILD=$(cd "$1" && pwd)
CHECKER=$BUILD/kvfs-check
LOAD=$here/fs_load.py
SEED=${KVFS_FULLDISK_SEED:-7}
FILE=$((256 << 10))
fs_log "seed $SEED (KVFS_FULLDISK_SEED)"
[ -x "$CHECKER" ] || { check "kvfs-check is built ($CHECKER)" false; fs_summary; exit 1; }

fs_tmpdir T
mkdir "$T/disk" "$T/mnt"
M=$T/mnt D=$T/disk S=$T/disk/store.kvfs
if ! mount -t tmpfs -o size=96m kvfs-fulldisk "$D" 2>"$T/err"; then
	fs_skip "cannot mount a tmpfs here: $(cat "$T/err")"
fi

mount_or_die() { # [options]
	if ! fs_mount "$S" "$M" "$@"; then
		check "mount $*" false
		fs_summary; exit 1
	fi
}

# fill_ballast: fill the tmpfs with a file outside the store until ENOSPC
fill_ballast() {
	dd if=/dev/zero of="$D/ballast" bs=64k status=none 2>/dev/null || true
}

disk_free_kib() { df -k --output=avail "$D" | tail -n 1 | tr -d ' '; }

# room_back DIR: a 64 KiB file goes into DIR and its fsync returns (the probe is removed).
# While a checkpoint has found the disk full every write is refused (engine.c INV-E3); a
# delete is admitted and wakes the checkpoint that finds the room it made.
room_back() {
	local ok=1
	dd if=/dev/zero of="$1/.probe" bs=64k count=1 conv=fsync status=none 2>/dev/null && ok=0
	rm -f "$1/.probe"
	return "$ok"
}
# refused: a new 100000-byte file gets ENOSPC
refused() {
	if ! head -c 100000 /dev/zero 2>"$T/err" >"$M/new" && grep -q 'No space left' "$T/err"; then
		return 0
	fi
	rm -f "$M/new"
	return 1
}
# how long the checkpoint thread may take to find the disk full, or the room a delete made
WAIT_CK=30

# ---------------------------------------------------------------- 1. writers fill the disk
echo "== writers fill the disk"
mount_or_die -o checkpoint_mib=2 -o checkpoint_ms=500
pids=()
for j in 1 2 3; do
	mkdir "$M/w$j"
	python3 "$LOAD" fill "$M/w$j" "$T/list$j" $((SEED * 10 + j)) $FILE 100000 &
	pids+=($!)
done
hung=0
for p in "${pids[@]}"; do
	# a writer that never returns is a failure, not a hang of the test
	for _ in $(seq 1 1200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then hung=1; kill "$p"; fi
	wait "$p" || true
done
check_eq "no writer hung on the full disk" 0 "$hung"
ends=$(for j in 1 2 3; do tail -n 1 "$T/list$j"; done | sort | uniq -c | sed 's/^ *//' | tr '\n' ' ')
check_eq "every writer stopped on ENOSPC" "3 E ENOSPC " "$ends"
n=$(cat "$T"/list[123] | grep -vc '^E' || true)
fs_log "    $n files of $FILE bytes fsynced before the disk was full ($(disk_free_kib) KiB left)"
check "at least 20 MiB went in before ENOSPC ($n files)" test "$n" -ge 80

checkall() { # what
	local j ok=0 out
	for j in 1 2 3; do # one run each: the first 10 lines of what it finds, and its status
		out=$(python3 "$LOAD" checkfill "$M/w$j" "$T/list$j" $((SEED * 10 + j)) \
			"$FILE" 2>&1) || ok=1
		[ -z "$out" ] || printf '%s\n' "$out" | fs_indent 10
	done
	check "every fsynced file reads back: $1" test "$ok" -eq 0
}
checkall "on the full mount"
check "a new file on the full mount gets ENOSPC" \
	bash -c "! echo x 2>$T/err >'$M/new' && grep -q 'No space left' $T/err"
check "unmount of the full store (the daemon exits)" fs_umount "$M"
out=$("$CHECKER" -n "$S" 2>&1) && rc=0 || rc=$?
check_eq "kvfs-check -n on the full store exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | fs_indent 20
mount_or_die -o checkpoint_mib=2 -o checkpoint_ms=500
checkall "after the unmount and the next mount"
# the engine learns that the disk is full when its first checkpoint fails (checkpoint_ms)
check "the full mount refuses new data with ENOSPC (once a checkpoint failed)" \
	fs_poll "$WAIT_CK" refused
# a hole punched to make room, both ends inside blocks (two edge blocks rewritten zeroed)
f1=$(find "$M/w1" -type f | sort | sed -n 1p)
check "a hole punch with unaligned ends works on the full mount" \
	fallocate -p -o 100 -l 200000 "$f1"
check "the punched range reads as zeros" python3 -c "import sys
d = open(sys.argv[1], 'rb').read()
sys.exit(0 if len(d) == $FILE and d[100:200100] == bytes(200000) else 1)" "$f1"
rm_all() { # the first few errors only
	rm -rf "$@" 2>"$T/err" && return 0
	fs_indent 5 <"$T/err"
	return 1
}
check "rm -rf of the writers' files works on the full mount" rm_all "$M/w1" "$M/w2" "$M/w3"
check "after the rm, room comes back (a checkpoint)" fs_poll "$WAIT_CK" room_back "$M"
mkdir "$M/after" || true
python3 "$LOAD" fill "$M/after" "$T/list4" $((SEED * 10 + 4)) $FILE 40
check_eq "after the rm, 40 new fsynced files (10 MiB) go in" "E none" "$(tail -n 1 "$T/list4")"
check "they read back" python3 "$LOAD" checkfill "$M/after" "$T/list4" $((SEED * 10 + 4)) $FILE
check "the removed files are gone" test ! -e "$M/w1"
check "clean unmount" fs_umount "$M"
check "kvfs-check -n after the clean unmount" "$CHECKER" -n "$S"
mount_or_die
check "the new files after the next mount" \
	python3 "$LOAD" checkfill "$M/after" "$T/list4" $((SEED * 10 + 4)) $FILE
check "unmount" fs_umount "$M"

# ---------------------------------------------------------------- 2. the log's file system fills
echo "== the disk fills with another file; the log was allocated at the mount"
rm -f "$S" "$S-wal"
mount_or_die -o checkpoint_mib=8 -o checkpoint_ms=600000
# the ring of a new store: 36 MiB (engine.c ring_target), every byte of it allocated
check "a new store's log is allocated whole (36 MiB ring)" \
	test "$(stat -c %s "$S-wal")" -ge $((36 << 20)) -a \
	"$(($(stat -c '%b * %B' "$S-wal")))" -ge "$(stat -c %s "$S-wal")"
fill_ballast
fs_log "    while mounted: ballast $(($(stat -c %s "$D/ballast") >> 20)) MiB," \
	"$(disk_free_kib) KiB free"
mkdir "$M/b" || true
python3 "$LOAD" fill "$M/b" "$T/list6" $((SEED * 10 + 6)) 65536 16
check_eq "disk filled while mounted: 1 MiB of fsynced files go into the log" "E none" \
	"$(tail -n 1 "$T/list6")"
check "unmount with the disk full (the final checkpoint may fail: nothing is lost)" fs_umount "$M"
check "kvfs-check -n exits 0" "$CHECKER" -n "$S"
mount_or_die -o checkpoint_mib=8 -o checkpoint_ms=600000
check "the files written with the disk full, after the next mount" \
	python3 "$LOAD" checkfill "$M/b" "$T/list6" $((SEED * 10 + 6)) 65536
# more than a checkpoint's worth: the checkpoint needs the data file to grow, and cannot
mkdir "$M/c" || true
python3 "$LOAD" fill "$M/c" "$T/list7" $((SEED * 10 + 7)) 65536 1000 &
fp=$!
for _ in $(seq 1 600); do kill -0 "$fp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$fp" 2>/dev/null && { kill "$fp"; check "the writer stops once the checkpoint fails" false; }
wait "$fp" || true
check_eq "once a checkpoint needs the data file to grow: ENOSPC" "E ENOSPC" \
	"$(tail -n 1 "$T/list7")"
rm -f "$D/ballast"
check "the other file removed, room comes back (a checkpoint retried)" \
	fs_poll "$WAIT_CK" room_back "$M"
mkdir "$M/d" || true
python3 "$LOAD" fill "$M/d" "$T/list8" $((SEED * 10 + 8)) 65536 16
check_eq "the other file removed: writes go on" "E none" "$(tail -n 1 "$T/list8")"
check "every fsynced file reads back" \
	python3 "$LOAD" checkfill "$M/c" "$T/list7" $((SEED * 10 + 7)) 65536
check "clean unmount" fs_umount "$M"
check "kvfs-check -n after the clean unmount" "$CHECKER" -n "$S"
# engine.c ring_rest: a cleanly closed store's log is a 1 MiB ring and its header
check "after a clean unmount the log is at rest (1 MiB ring)" \
	test "$(stat -c %s "$S-wal")" -eq $(((1 << 20) + 4096)) -a \
	"$(($(stat -c '%b * %B' "$S-wal")))" -le $(((1 << 20) + 8192))

echo "== the disk fills before the mount; the log is at rest"
fill_ballast
fs_log "    before the mount: ballast $(($(stat -c %s "$D/ballast") >> 20)) MiB," \
	"$(disk_free_kib) KiB free"
mount_or_die -o checkpoint_mib=8 -o checkpoint_ms=600000
# the ring cannot grow: writes go on while the log at rest (and the free pages) hold them,
# then stop on ENOSPC, never EIO
mkdir "$M/e" 2>/dev/null || true
python3 "$LOAD" fill "$M/e" "$T/list9" $((SEED * 10 + 9)) 65536 16
end9=$(tail -n 1 "$T/list9")
fs_log "    $(grep -vc '^E' "$T/list9" || true) files fsynced, then $end9"
check "disk full before the mount: writes end with no error or ENOSPC" \
	test "$end9" = "E none" -o "$end9" = "E ENOSPC"
check "the other files read back" \
	python3 "$LOAD" checkfill "$M/d" "$T/list8" $((SEED * 10 + 8)) 65536
check "unmount with the disk full" fs_umount "$M"
rm -f "$D/ballast"
check "kvfs-check -n exits 0 (disk full before the mount)" "$CHECKER" -n "$S"
mount_or_die
check "every file fsynced with the disk full before the mount reads back" \
	python3 "$LOAD" checkfill "$M/e" "$T/list9" $((SEED * 10 + 9)) 65536
check "clean unmount (disk full before the mount)" fs_umount "$M"
check "kvfs-check -n after it" "$CHECKER" -n "$S"
# that mount replayed the log, so its ring stayed small; the next one starts from rest
mount_or_die
check "the log grows back at a mount with room (36 MiB ring, allocated)" \
	test "$(stat -c %s "$S-wal")" -ge $((36 << 20)) -a \
	"$(($(stat -c '%b * %B' "$S-wal")))" -ge "$(stat -c %s "$S-wal")"
check "unmount" fs_umount "$M"
fs_summary
