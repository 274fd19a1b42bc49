/*
 * tests/fuzz/fuzz_check.c — fuzz harness: kvfs-check (tools/check/) on an arbitrary data file
 * and log.  kvfs-check reads real files through real descriptors (not io_env), so the files
 * live in a private directory on tmpfs (/dev/shm, else $TMPDIR or /tmp), removed at exit.  Its
 * main() is compiled in as kvfs_check_main (tests/fuzz/check_main.c).
 *
 * Input: a flags byte, a little-endian u32 `n`, then the data file (its first n bytes, cut at
 * FUZZ_STORE_MAX_PAGES pages) and the log (the rest, cut at FUZZ_WAL_MAX_BYTES).  Flags:
 * FUZZ_FIXUP recomputes the checksums of both files; FUZZ_CHECK_REPAIR (0x02) also runs -y;
 * FUZZ_CHECK_NOLOG (0x04) writes no log file at all.
 *
 * Runs: `kvfs-check -n -v STORE`, then with FUZZ_CHECK_REPAIR `kvfs-check -y STORE` and
 * `kvfs-check -n STORE` again.  Promises checked (abort when broken): no crash, hang or leak;
 * every exit status is one e2fsck's bit sum allows (0, 1, 4, 5, 8, or with 16 for usage:
 * never here); -n changes no byte of either file; a -y run that corrected errors and left none
 * (exit 1) leaves a store that the next -n finds clean (exit 0), as man/kvfs-check.8 says.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_CHECK_REPAIR 0x02
#define FUZZ_CHECK_NOLOG 0x04

int kvfs_check_main(int argc, char **argv);

static char dir[256];
static char data_path[300], wal_path[310];

static void remove_dir(void)
{
	/* -y may have made the log; nothing else is written beside the store. */
	unlink(wal_path);
	unlink(data_path);
	rmdir(dir);
}

static void setup_dir(void)
{
	if (dir[0])
		return;
	const char *base = "/dev/shm";
	struct stat sb;
	if (stat(base, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(base, W_OK) != 0)
		base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof(dir), "%s/kvfs-fuzz-check-%ld-XXXXXX", base, (long)getpid());
	if (!mkdtemp(dir))
		fuzz_fail("mkdtemp %s: %s", dir, strerror(errno));
	snprintf(data_path, sizeof(data_path), "%s/s", dir);
	snprintf(wal_path, sizeof(wal_path), "%s/s-wal", dir);
	atexit(remove_dir);
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fuzz_fail("open %s: %s", path, strerror(errno));
	for (size_t done = 0; done < len;) {
		ssize_t w = write(fd, buf + done, len - done);
		if (w < 0)
			fuzz_fail("write %s: %s", path, strerror(errno));
		done += (size_t)w;
	}
	close(fd);
}

/* The file's bytes equal buf[len] (a missing file equals nothing when `exists` is false). */
static bool same_file(const char *path, bool exists, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return !exists && errno == ENOENT;
	struct stat sb;
	bool same = fstat(fd, &sb) == 0 && exists && (uint64_t)sb.st_size == len;
	uint8_t chunk[4096];
	for (size_t off = 0; same && off < len;) {
		ssize_t r = pread(fd, chunk, sizeof(chunk), (off_t)off);
		if (r <= 0 || memcmp(chunk, buf + off, (size_t)r) != 0)
			same = false;
		off += r > 0 ? (size_t)r : 0;
	}
	close(fd);
	return same;
}

static int run_check(const char *mode, bool verbose)
{
	char *argv[] = { "kvfs-check", (char *)mode, verbose ? "-v" : "-f", data_path, NULL };
	optind = 0; /* glibc: reinitialise getopt fully before another parse */
	int status = kvfs_check_main(4, argv);
	fflush(stdout);
	if (status != 0 && status != 1 && status != 4 && status != 5 && status != 8)
		fuzz_fail("kvfs-check %s: exit status %d", mode, status);
	return status;
}

int fuzz_check_one(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	uint64_t n = fuzz_ld(data + 1, size - 1, 4);
	size_t skip = size < 5 ? size : 5;
	data += skip;
	size -= skip;
	size_t dlen = n < size ? (size_t)n : size;
	const uint8_t *log = data + dlen;
	size_t llen = size - dlen;
	if (dlen > FUZZ_STORE_MAX_PAGES * STORE_PAGE_SIZE)
		dlen = FUZZ_STORE_MAX_PAGES * STORE_PAGE_SIZE;
	if (llen > FUZZ_WAL_MAX_BYTES)
		llen = FUZZ_WAL_MAX_BYTES;
	uint8_t *dbuf = malloc(dlen + 1), *lbuf = malloc(llen + 1);
	if (!dbuf || !lbuf)
		fuzz_fail("out of memory");
	memcpy(dbuf, data, dlen);
	memcpy(lbuf, log, llen);
	if (flags & FUZZ_FIXUP) {
		fuzz_fixup_store(dbuf, dlen - dlen % STORE_PAGE_SIZE);
		fuzz_fixup_wal(lbuf, llen);
	}
	bool with_log = !(flags & FUZZ_CHECK_NOLOG);

	setup_dir();
	unlink(wal_path);
	write_file(data_path, dbuf, dlen);
	if (with_log)
		write_file(wal_path, lbuf, llen);

	run_check("-n", true);
	if (!same_file(data_path, true, dbuf, dlen) || !same_file(wal_path, with_log, lbuf, llen))
		fuzz_fail("kvfs-check -n changed the store or its log");

	if (flags & FUZZ_CHECK_REPAIR) {
		int y = run_check("-y", false);
		int again = run_check("-n", false);
		if (y == 1 && again != 0)
			fuzz_fail("kvfs-check -y exited 1 (all corrected) but the next -n exited %d",
				  again);
	}
	free(dbuf);
	free(lbuf);
	return 0;
}

#ifdef KVFS_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_check_one(data, size);
}
#endif
