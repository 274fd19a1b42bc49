#!/usr/bin/env bash
# tests/fs_libmount.sh BUILD_DIR — what the library (kvfs.h) writes the mount shows, and the
# other way round (DESIGN.md: "What is written through the library is visible through the
# mount and the other way round"):
#   * library -> mount: keys put with kvfs_put into an unmounted store (nested keys, whose
#     parent directories the put creates; a 100 KB binary value; an empty one; 100 keys in one
#     directory) read with cat, cmp, ls and stat on the mount (modes 0644 and 0755 as kvfs.h
#     says);
#   * mount -> library: files made with shell tools (echo, cp, mkdir -p, mv of a directory,
#     rm of a key the library made, truncate + dd of a sparse file) read back with kvfs_get,
#     kvfs_list and kvfs_scan after unmounting; a removed key is ENOENT;
#   * while mounted, the library cannot open the store (EBUSY); after the daemon is killed
#     with SIGKILL, the library opens it and finds every write that returned (log replay).
# The helper program is compiled here from a heredoc with the build's compiler against
# BUILD_DIR/libkvfs.a (and its sanitizer flags), so no build target is needed; without a
# compiler or the library the test is skipped.  Exit 77: FUSE unusable here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
# shellcheck source=tests/fs_lib.sh
source "$here/fs_lib.sh"
fs_init "${1:-}"
BUILD=$(cd "$1" && pwd)

fs_tmpdir T
mkdir "$T/mnt"
M=$T/mnt S=$T/s.kvfs

# ---- the helper: kvtool put|putmany|get|del|list|scan STORE [KEY]
cache=$BUILD/CMakeCache.txt
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$cache" 2>/dev/null)
cc=${cc:-cc}
flags=()
grep -q '^KVFS_SANITIZE:BOOL=ON' "$cache" 2>/dev/null && flags+=(-fsanitize=address,undefined)
grep -q '^KVFS_TSAN:BOOL=ON' "$cache" 2>/dev/null && flags+=(-fsanitize=thread)
[ -f "$BUILD/libkvfs.a" ] || fs_skip "no $BUILD/libkvfs.a (build the kvfs_static target)"
command -v "$cc" >/dev/null || fs_skip "no C compiler ($cc) for the helper program"
cat >"$T/kvtool.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/kvfs.h"
static int list_one(void *ctx, const char *name, const struct kvfs_stat *st)
{
	printf("%s %o %llu\n", name, st->mode, (unsigned long long)st->size);
	return 0;
}
int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *op = argv[1], *key = argc > 3 ? argv[3] : "";
	struct kvfs_options o;
	memset(&o, 0, sizeof(o));
	o.flags = strncmp(op, "put", 3) == 0 ? KVFS_CREATE : 0;
	struct kvfs *fs;
	int r = kvfs_open(argv[2], &o, &fs);
	if (r < 0) {
		printf("open: %s\n", strerror(-r));
		return 1;
	}
	if (strcmp(op, "put") == 0) { /* the value from stdin */
		size_t cap = 1 << 20, n = 0, got;
		char *buf = malloc(cap);
		while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0)
			if ((n += got) == cap && !(buf = realloc(buf, cap *= 2)))
				break;
		r = buf ? kvfs_put(fs, key, buf, n) : -ENOMEM;
		free(buf);
	} else if (strcmp(op, "putmany") == 0) { /* KEY00..KEY99 = v00..v99 */
		for (int i = 0; i < 100 && r == 0; i++) {
			char k[4096], v[8];
			snprintf(k, sizeof(k), "%s%02d", key, i);
			snprintf(v, sizeof(v), "v%02d", i);
			r = kvfs_put(fs, k, v, strlen(v));
		}
	} else if (strcmp(op, "get") == 0) {
		ssize_t n = kvfs_get(fs, key, NULL, 0);
		char *buf = n > 0 ? malloc((size_t)n) : NULL;
		if (n > 0)
			n = buf ? kvfs_get(fs, key, buf, (size_t)n) : -ENOMEM;
		if (n > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		free(buf);
		r = n < 0 ? (int)n : 0;
	} else if (strcmp(op, "del") == 0) {
		r = kvfs_delete(fs, key);
	} else if (strcmp(op, "list") == 0) {
		r = kvfs_list(fs, key, list_one, NULL);
	} else if (strcmp(op, "scan") == 0) {
		r = kvfs_scan(fs, NULL, NULL, list_one, NULL);
	} else {
		r = -EINVAL;
	}
	int rc = kvfs_close(fs);
	if (r == 0)
		r = rc;
	if (r < 0)
		printf("%s: %s\n", op, strerror(-r));
	return r < 0;
}
EOF
# shellcheck disable=SC2046
if ! "$cc" -std=gnu11 -O1 "${flags[@]}" -I"$src" -o "$T/kvtool" "$T/kvtool.c" "$BUILD/libkvfs.a" \
	$(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash) -lpthread 2>"$T/cc.err"; then
	cat "$T/cc.err"
	check "compile the helper against libkvfs.a" false
	fs_summary; exit
fi
kv() { timeout -k 5 60 "$T/kvtool" "$@"; }

# ---- library -> mount
echo "== library -> mount"
printf 'alice' | kv put "$S" user/1001
printf 'bob\n' | kv put "$S" user/1002
head -c 100000 /dev/urandom >"$T/bin"
kv put "$S" blobs/deep/er/bin <"$T/bin"
kv put "$S" empty </dev/null
kv putmany "$S" many/k
kv put "$S" user/1002 <<<'bob again'   # a put replaces
fs_mount "$S" "$M" || { check "mount" false; fs_summary; exit; }
check_eq "cat of a key put through the library" alice "$(cat "$M/user/1001")"
check_eq "cat of a replaced key" "bob again" "$(cat "$M/user/1002")"
check "a 100 KB binary value: cmp" cmp -s "$T/bin" "$M/blobs/deep/er/bin"
check_eq "an empty value: an empty file" "0 regular empty file" "$(stat -c '%s %F' "$M/empty")"
check_eq "ls of a directory of 100 keys, in order" "$(seq -f 'k%02g' 0 99)" "$(ls "$M/many")"
check_eq "a file's contents among them" v42 "$(cat "$M/many/k42")"
check_eq "modes: a put file 0644, a created parent directory 0755" "644 regular file|755 directory" \
	"$(stat -c '%a %F' "$M/user/1001" "$M/blobs/deep" | tr '\n' '|' | sed 's/|$//')"
check_eq "nlink of a parent directory the put created (its subdirectory counts)" 3 \
	"$(stat -c %h "$M/blobs/deep")"
check_eq "find sees the whole tree" "$(printf '%s\n' blobs blobs/deep blobs/deep/er blobs/deep/er/bin empty)" \
	"$(cd "$M" && find blobs empty | sort)"
out=$(kv get "$S" user/1001 || true)
check "while mounted, the library cannot open the store (EBUSY)" \
	bash -c '[[ $1 == "open: Device or resource busy" ]]' _ "$out"

# ---- mount -> library
echo "== mount -> library"
echo "written through the mount" >"$M/user/1003"
cp "$T/bin" "$M/copy.bin"
mkdir -p "$M/x/y/z" && printf 'deep' >"$M/x/y/z/f"
mv "$M/x/y" "$M/moved"
rm "$M/user/1001" "$M/many/k00"
truncate -s 1M "$M/sparse" && printf 'end' | dd of="$M/sparse" bs=1 seek=$((1048576 - 3)) conv=notrunc status=none
printf 'tail' >>"$M/user/1002"
check "unmount" fs_umount "$M"
check_eq "kvfs_get of a file echo wrote" "written through the mount" "$(kv get "$S" user/1003)"
kv get "$S" copy.bin >"$T/bin.got"
check "kvfs_get of a file cp wrote: cmp" cmp -s "$T/bin" "$T/bin.got"
check_eq "kvfs_get after mkdir -p and mv of the directory" deep "$(kv get "$S" moved/z/f)"
check_eq "the old path is gone" "get: No such file or directory" "$(kv get "$S" x/y/z/f || true)"
check_eq "a key removed with rm is gone" "get: No such file or directory" "$(kv get "$S" user/1001 || true)"
check_eq "an appended file" "bob again
tail" "$(kv get "$S" user/1002)"
kv get "$S" sparse >"$T/sparse.got"
check_eq "a sparse file: its size and its last bytes" "1048576 end" \
	"$(stat -c %s "$T/sparse.got") $(tail -c 3 "$T/sparse.got")"
check_eq "a sparse file: zeros before them" 0 "$(head -c 1048573 "$T/sparse.got" | tr -d '\0' | wc -c)"
check_eq "kvfs_list of a directory, in order (name, mode, size)" "1002 100644 14
1003 100644 26" "$(kv list "$S" user)"
check_eq "kvfs_list sees the rm'd key gone: 99 keys" 99 "$(kv list "$S" many | wc -l)"
check_eq "kvfs_scan: every file, in key order" \
	"blobs/deep/er/bin copy.bin empty many/k01 many/k99 moved/z/f sparse user/1002 user/1003" \
	"$(kv scan "$S" | awk '{ print $1 }' | grep -v '^many/k\(0[2-9]\|[1-8][0-9]\|9[0-8]\)$' | tr '\n' ' ' | sed 's/ $//')"

# ---- a crash of the daemon, then the library
echo "== after kill -9 of the daemon"
fs_mount "$S" "$M" || { check "mount" false; fs_summary; exit; }
printf 'before the crash' >"$M/crash"
check "kill -9 the daemon" fs_kill9 "$M"
check_eq "the library finds a write that returned before the crash" "before the crash" \
	"$(kv get "$S" crash)"
fs_summary
