#!/usr/bin/env bash
# tests/fs_concurrency.sh BUILD_DIR — 8 writer processes (bash loops) and a reader at once on
# one mount, for about 20 s, in 4 shared directories:
#   each writer creates files (of 1 byte to 30 KB: inline and block files), rewrites them,
#   renames them across the shared directories, replaces a name by a hard link, deletes some,
#   and makes, fills, moves and removes subdirectories; the reader lists and reads everything
#   meanwhile (errors from names vanishing under it are expected and ignored), and now and then
#   syncs.  Every file's bytes are a function of its name (its writer id, sequence number and
#   sub-index), so that what a writer last wrote is known without a log of writes.
# Afterwards: unmount; `kvfs-check -n STORE` must be clean when BUILD_DIR/kvfs-check exists
# (skipped with a message otherwise); remount; the tree must hold exactly the files the writers
# left (each writer keeps its own list), each with the bytes its name says and one link.
# KVFS_CONC_SECONDS changes the duration.  Exit 77: FUSE unusable here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
command -v python3 >/dev/null || fs_skip "python3 is needed"
BUILD=$(cd "$1" && pwd)

NW=8
SECS=${KVFS_CONC_SECONDS:-20}
fs_tmpdir T
mkdir "$T/mnt" "$T/lists"
M=$T/mnt S=$T/s.kvfs
fs_mount "$S" "$M" || { check "mount" false; fs_summary; exit; }
mkdir "$M/d0" "$M/d1" "$M/d2" "$M/d3"

# content ID: the bytes of file ID ("wW-N" or "wW-N-sK"): ID repeated, cut at a length that
# depends on N and K (1 .. 30000 bytes)
len_of() { # ID: LEN := its length
	local n k=0 rest=${1#w*-}
	n=${rest%%-*}
	if [[ $rest == *-s* ]]; then k=${rest##*-s}; fi
	LEN=$(( (n * 7919 + k * 101) % 30000 + 1 ))
}
content() { # ID: bash builtins only (no fork, no SIGPIPE from a `yes | head`)
	local s=$1$'\n'
	len_of "$1"
	while [ ${#s} -lt "$LEN" ]; do s=$s$s; done
	printf '%s' "${s:0:LEN}"
}

writer() { # W: runs until the deadline, then writes its list of live files
	local w=$1 end=$((EPOCHSECONDS + SECS)) i=0 id d p q base
	declare -A live=()   # relative path -> id
	RANDOM=$((w * 7 + 1))
	while [ "$EPOCHSECONDS" -lt "$end" ]; do
		i=$((i + 1)); id="w$w-$i"; d="d$((RANDOM % 4))"
		content "$id" >"$M/$d/$id"
		live["$d/$id"]=$id
		# one change to a file picked among this writer's
		local keys=("${!live[@]}")
		p=${keys[$((RANDOM % ${#keys[@]}))]}
		id=${live[$p]}
		base=${p##*/}
		case $((RANDOM % 6)) in
		0)	# rename into another shared directory (sometimes under a new name)
			q="d$((RANDOM % 4))/$base"
			[ $((RANDOM % 2)) -eq 0 ] && q="d$((RANDOM % 4))/r-$id"
			if [ "$q" != "$p" ] && mv "$M/$p" "$M/$q"; then unset "live[$p]"; live[$q]=$id; fi;;
		1)	rm "$M/$p" && unset "live[$p]";;
		2)	# rewrite in place: truncated, then written in two pieces
			: >"$M/$p"
			content "$id" | dd of="$M/$p" bs=1000 count=3 iflag=fullblock status=none
			len_of "$id"
			if [ "$LEN" -gt 3000 ]; then
				content "$id" | dd of="$M/$p" bs=1000 skip=3 seek=3 iflag=fullblock \
					conv=notrunc status=none
			fi;;
		3)	# a hard link replaces the name
			q="d$((RANDOM % 4))/l-$id"
			if [ "$q" != "$p" ] && ln "$M/$p" "$M/$q" && rm "$M/$p"; then
				unset "live[$p]"; live[$q]=$id
			fi;;
		4)	# overwrite with other bytes, then back (rename over an existing name)
			printf 'temporary' >"$M/$p.tmp"
			mv "$M/$p.tmp" "$M/$p"
			content "$id" >"$M/$p.tmp"
			mv "$M/$p.tmp" "$M/$p";;
		5)	# a subdirectory with 3 files, made in one shared directory and moved to another
			q="d$((RANDOM % 4))/w$w-$i.dir"
			mkdir "$M/$q"
			for k in 0 1 2; do content "w$w-$i-s$k" >"$M/$q/w$w-$i-s$k"; done
			local q2="d$((RANDOM % 4))/w$w-$i.moved"
			mv "$M/$q" "$M/$q2"
			if [ $((RANDOM % 3)) -eq 0 ]; then
				rm -r "$M/$q2"
			else
				for k in 0 1 2; do live["$q2/w$w-$i-s$k"]="w$w-$i-s$k"; done
			fi;;
		esac
	done
	for p in "${!live[@]}"; do printf '%s %s\n' "$p" "${live[$p]}"; done >"$T/lists/$w"
	echo "    writer $w: $i rounds, ${#live[@]} files left"
}

reader() { # lists and reads until told to stop
	local n=0
	while [ ! -e "$T/stop" ]; do
		find "$M" -type f 2>/dev/null | head -n 200 | xargs -r cat >/dev/null 2>&1 || true
		ls -laR "$M" >/dev/null 2>&1 || true
		n=$((n + 1))
		[ $((n % 5)) -eq 0 ] && sync
	done
	echo "    reader: $n passes"
}

echo "== $NW writers and a reader for $SECS s"
t0=$(date +%s)
pids=()
for w in $(seq 1 $NW); do
	( set +e; writer "$w" ) 2>"$T/err.$w" &
	pids+=($!)
done
( set +e; reader ) 2>/dev/null &
rpid=$!
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
touch "$T/stop"
wait "$rpid" || true
echo "    ran $(( $(date +%s) - t0 )) s"
check_eq "every writer finished" 0 "$bad"
errs=$(cat "$T"/err.* | sed -n 1,5p)
check_eq "no operation of a writer failed (each is on its own names)" "" "$errs"

check "unmount" fs_umount "$M"
if [ -x "$BUILD/kvfs-check" ]; then
	rc=0; out=$(timeout -k 5 120 "$BUILD/kvfs-check" -n "$S" 2>&1) || rc=$?
	[ "$rc" -eq 0 ] || printf '%s\n' "$out" | fs_indent 20
	check_eq "kvfs-check -n: the store is clean" 0 "$rc"
else
	echo "    (no $BUILD/kvfs-check: the store is not verified offline; the checks below still run)"
fi
fs_mount "$S" "$M" || { check "remount" false; fs_summary; exit; }
cat "$T"/lists/* | sort >"$T/expected"
check "the writers left files" test -s "$T/expected"
rc=0
timeout -k 5 120 python3 - "$M" "$T/expected" <<'EOF' || rc=$?
import os, re, sys
root, expected = sys.argv[1], sys.argv[2]
def content(i):
    m = re.fullmatch(r"w(\d+)-(\d+)(?:-s(\d+))?", i)
    n, k = int(m.group(2)), int(m.group(3) or 0)
    line = (i + "\n").encode()
    ln = (n * 7919 + k * 101) % 30000 + 1
    return (line * (ln // len(line) + 1))[:ln]
want = {}
for l in open(expected):
    p, i = l.split()
    want[p] = i
have = {}
for d, dirs, files in os.walk(root):
    for f in files:
        have[os.path.relpath(os.path.join(d, f), root)] = True
bad = 0
for p in sorted(set(want) - set(have)):
    print("    missing:", p); bad += 1
for p in sorted(set(have) - set(want)):
    print("    unexpected:", p); bad += 1
for p, i in sorted(want.items()):
    if p in have:
        full = os.path.join(root, p)
        data = open(full, "rb").read()
        if data != content(i):
            print("    wrong bytes in %s: %d bytes, want %d" % (p, len(data), len(content(i)))); bad += 1
        elif os.stat(full).st_nlink != 1:
            print("    %s has %d links" % (p, os.stat(full).st_nlink)); bad += 1
print("    %d files checked, %d problems" % (len(want), bad))
sys.exit(1 if bad else 0)
EOF
check_eq "after a remount: exactly the files the writers left, each with its bytes" 0 "$rc"
check "unmount" fs_umount "$M"
fs_summary
