/*
 * tests/check_io.c — the Check suite for the I/O seam: store/io_posix.c and store/io_fault.c.
 *
 * What it tests, by kind:
 *   core   the io_methods contract (store/io.h) on both environments alike — exact bytes after
 *          pwrite/pread, short reads at end of file, holes, truncate down and up, allocate,
 *          open flags, read-only files, unlink, a mapping that shows every pwrite at once,
 *          flock conflicts between two opens of one file — plus what only io_fault has
 *          (capacity, unlinked-but-open files, peek/poke, concurrent use under TSan).
 *   crash  io_fault's power cut: KEEP_ALL keeps and DROP_ALL drops every pending operation,
 *          synced bytes always survive, RANDOM is reproducible from its seed and tears writes
 *          at 512-byte sectors aligned to file offsets (never inside a sector), cut_at_sync
 *          fires at exactly the k-th sync and leaves every call failing with -EIO, reboot
 *          starts from the durable images.
 *   fault  io_fault's injected errors: the N-th counted call and only it fails with the armed
 *          errno and changes nothing, a short write writes half and reports -ENOSPC, and
 *          exactly pwrite/sync/truncate/allocate are counted.
 *
 * What it does not test: the store above the seam, or a real disk's behaviour at power loss.
 *
 * Randomized loops use seeds derived from KVFS_SEED (default 1) and name the seed in every
 * failure message; KVFS_SEED=N replays.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/io.h"
#include "store/io_fault.h"
#include "tests/testutil.h"

#define KIB 1024u
#define MAP_RESERVE ((size_t)1 << 30)

/* ---- fixtures ------------------------------------------------------------------------- */

/* A temporary directory per test case, made and removed in the parent process (an unchecked
 * fixture), so that it is removed even when a forked test fails half way. */
static char tmpdir[256];
/* A fresh fault machine per test (a checked fixture, in the forked child). */
static struct io_fault *fm;

static void dir_setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/kvfs-check-io-XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void dir_teardown(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[512];

	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		if (unlink(p) != 0)
			rmdir(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

static void setup(void)
{
	fm = io_fault_new(1);
	ck_assert_ptr_nonnull(fm);
}

static void teardown(void)
{
	io_fault_free(fm);
	fm = NULL;
}

/* Loop index 0: the POSIX environment; 1: the fault machine of the fixture. */
static struct io_env *env_at(int i)
{
	return i == 0 ? io_posix_env() : io_fault_env(fm);
}

static const char *path_of(const char *name)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

/* ---- helpers -------------------------------------------------------------------------- */

static uint64_t base_seed(void)
{
	const char *s = getenv("KVFS_SEED");

	return s && *s ? strtoull(s, NULL, 0) : 1;
}

/* Bytes that depend on tag and position, so misplaced bytes are caught. */
static void pattern(uint8_t *buf, size_t len, uint64_t off, uint8_t tag)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(tag ^ ((off + i) * 131) ^ ((off + i) >> 8));
}

static int is_fill(const uint8_t *buf, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != v)
			return 0;
	return 1;
}

static struct io_file *open_ok(struct io_env *env, const char *path, int flags)
{
	struct io_file *f = NULL;
	int rc = io_open(env, path, flags, 0644, &f);

	ck_assert_msg(rc == 0, "open %s flags %d: %d", path, flags, rc);
	ck_assert_ptr_nonnull(f);
	return f;
}

static void write_ok(struct io_file *f, const void *buf, size_t len, uint64_t off)
{
	ssize_t n = io_pwrite(f, buf, len, off);

	ck_assert_msg(n == (ssize_t)len, "pwrite %zu at %llu: %zd", len,
		      (unsigned long long)off, n);
}

static void pattern_write_ok(struct io_file *f, size_t len, uint64_t off, uint8_t tag)
{
	uint8_t *b = malloc(len);

	ck_assert_ptr_nonnull(b);
	pattern(b, len, off, tag);
	write_ok(f, b, len, off);
	free(b);
}

static uint64_t size_ok(struct io_file *f)
{
	uint64_t s = ~0ull;

	ck_assert_int_eq(io_size(f, &s), 0);
	return s;
}

/* Read [off, off+len) and require it to equal `pattern(tag)`, or zeros when tag < 0. */
static void expect_bytes(struct io_file *f, uint64_t off, size_t len, int tag)
{
	uint8_t *got = malloc(len), *want = malloc(len);

	ck_assert(got && want);
	ck_assert_int_eq(io_pread(f, got, len, off), (ssize_t)len);
	if (tag < 0)
		memset(want, 0, len);
	else
		pattern(want, len, off, (uint8_t)tag);
	for (size_t i = 0; i < len; i++)
		ck_assert_msg(got[i] == want[i], "byte %llu: got %#x, want %#x",
			      (unsigned long long)(off + i), got[i], want[i]);
	free(got);
	free(want);
}

/* The same through io_fault_peek. */
static void expect_peek(struct io_fault *m, const char *path, uint64_t off, size_t len,
			int tag)
{
	uint8_t *got = malloc(len), *want = malloc(len);

	ck_assert(got && want);
	ck_assert_int_eq(io_fault_peek(m, path, off, got, len), 0);
	if (tag < 0)
		memset(want, 0, len);
	else
		pattern(want, len, off, (uint8_t)tag);
	ck_assert_msg(memcmp(got, want, len) == 0, "%s [%llu, +%zu) differs", path,
		      (unsigned long long)off, len);
	free(got);
	free(want);
}

/* ---- core ----------------------------------------------------------------------------- */

START_TEST(core_read_write)
{
	struct io_env *env = env_at(_i);
	const char *p = path_of("rw");
	struct io_file *f, *g;
	uint8_t buf[300];

	ck_assert_int_eq(io_open(env, p, 0, 0644, &f), -ENOENT);
	f = open_ok(env, p, IO_OPEN_CREATE);
	ck_assert_int_eq(size_ok(f), 0);
	ck_assert_int_eq(io_pread(f, buf, sizeof(buf), 0), 0);

	pattern_write_ok(f, 10000, 0, 1);
	ck_assert_int_eq(size_ok(f), 10000);
	expect_bytes(f, 0, 10000, 1);
	expect_bytes(f, 4321, 77, 1);
	/* a read across the end is short, exactly at the end */
	ck_assert_int_eq(io_pread(f, buf, sizeof(buf), 9900), 100);
	ck_assert_int_eq(io_pread(f, buf, sizeof(buf), 10000), 0);
	ck_assert_int_eq(io_pread(f, buf, sizeof(buf), 1u << 20), 0);

	/* overwrite in the middle; a write past the end leaves a hole of zeros */
	pattern_write_ok(f, 500, 3000, 2);
	pattern_write_ok(f, 100, 20000, 3);
	ck_assert_int_eq(size_ok(f), 20100);
	expect_bytes(f, 0, 3000, 1);
	expect_bytes(f, 3000, 500, 2);
	expect_bytes(f, 3500, 6500, 1);
	expect_bytes(f, 10000, 10000, -1);
	expect_bytes(f, 20000, 100, 3);
	ck_assert_int_eq(io_pwrite(f, buf, 0, 50000), 0);
	ck_assert_int_eq(size_ok(f), 20100);

	/* truncate down, then up: the cut bytes come back as zeros */
	ck_assert_int_eq(io_truncate(f, 5000), 0);
	ck_assert_int_eq(size_ok(f), 5000);
	ck_assert_int_eq(io_pread(f, buf, sizeof(buf), 4900), 100);
	ck_assert_int_eq(io_truncate(f, 8192), 0);
	ck_assert_int_eq(size_ok(f), 8192);
	expect_bytes(f, 0, 3000, 1);
	expect_bytes(f, 3000, 500, 2);
	expect_bytes(f, 3500, 1500, 1);
	expect_bytes(f, 5000, 3192, -1);

	/* allocate grows the size and reads as zeros; inside the file it changes nothing */
	ck_assert_int_eq(io_allocate(f, 8192, 16 * KIB), 0);
	ck_assert_int_eq(size_ok(f), 8192 + 16 * KIB);
	expect_bytes(f, 8192, 16 * KIB, -1);
	ck_assert_int_eq(io_allocate(f, 0, 4096), 0);
	ck_assert_int_eq(io_allocate(f, 100000, 0), 0);
	ck_assert_int_eq(size_ok(f), 8192 + 16 * KIB);
	expect_bytes(f, 0, 3000, 1);
	expect_bytes(f, 3000, 500, 2);
	ck_assert_int_eq(io_allocate(f, 30000, 1000), 0);
	ck_assert_int_eq(size_ok(f), 31000);
	ck_assert_int_eq(io_sync(f), 0);

	/* a second open sees the same file; it survives close */
	g = open_ok(env, p, 0);
	ck_assert_int_eq(size_ok(g), 31000);
	pattern_write_ok(g, 64, 100, 4);
	expect_bytes(f, 100, 64, 4);
	io_close(f);
	io_close(g);
	f = open_ok(env, p, IO_OPEN_CREATE);
	ck_assert_int_eq(size_ok(f), 31000);
	expect_bytes(f, 0, 100, 1);
	expect_bytes(f, 100, 64, 4);
	expect_bytes(f, 3000, 500, 2);
	io_close(f);

	ck_assert_int_eq(io_open(env, p, IO_OPEN_CREATE | IO_OPEN_EXCL, 0644, &f), -EEXIST);

	/* read-only: reads work, every kind of write is -EBADF and changes nothing */
	f = open_ok(env, p, IO_OPEN_RDONLY);
	expect_bytes(f, 3000, 500, 2);
	ck_assert_int_eq(io_pwrite(f, buf, 10, 0), -EBADF);
	ck_assert_int_eq(io_truncate(f, 0), -EBADF);
	ck_assert_int_eq(io_allocate(f, 0, 1 << 20), -EBADF);
	ck_assert_int_eq(size_ok(f), 31000);
	expect_bytes(f, 0, 100, 1);
	io_close(f);

	ck_assert_int_eq(env->unlink(env, p), 0);
	ck_assert_int_eq(io_open(env, p, 0, 0644, &f), -ENOENT);
	ck_assert_int_eq(env->unlink(env, p), -ENOENT);
	f = open_ok(env, p, IO_OPEN_CREATE | IO_OPEN_EXCL);
	ck_assert_int_eq(size_ok(f), 0);
	io_close(f);
}
END_TEST

/* pwritev: the buffers land in order as one run (empty ones too, and more of them than one
 * system call takes: io_posix writes in pieces), a write of none writes nothing, and the
 * bad arguments and a read-only file are refused. */
START_TEST(core_writev)
{
	struct io_env *env = env_at(_i);
	struct io_file *f = open_ok(env, path_of("wv"), IO_OPEN_CREATE);
	enum { N = 300 };
	uint8_t *b = malloc(N * 64);
	struct iovec iov[N];
	size_t sum = 0;

	ck_assert_ptr_nonnull(b);
	/* lengths 0..63 cycling: buffer i holds the pattern of the bytes it becomes */
	for (int i = 0; i < N; i++) {
		size_t len = (size_t)(i * 7) % 64;
		pattern(b + i * 64, len, 1000 + sum, 5);
		iov[i] = (struct iovec){ b + i * 64, len };
		sum += len;
	}
	ck_assert_int_eq(io_pwritev(f, iov, N, 1000), (ssize_t)sum);
	ck_assert_int_eq(size_ok(f), 1000 + sum);
	expect_bytes(f, 0, 1000, -1);
	expect_bytes(f, 1000, sum, 5);
	ck_assert_int_eq(io_pwritev(f, iov, 0, 1u << 20), 0);
	ck_assert_int_eq(size_ok(f), 1000 + sum);
	ck_assert_int_eq(io_pwritev(f, iov, -1, 0), -EINVAL);
	struct iovec huge[2] = { { b, SSIZE_MAX }, { b, 2 } };
	ck_assert_int_eq(io_pwritev(f, huge, 2, 0), -EINVAL);
	io_close(f);
	f = open_ok(env, path_of("wv"), IO_OPEN_RDONLY);
	ck_assert_int_eq(io_pwritev(f, iov, 2, 0), -EBADF);
	expect_bytes(f, 1000, sum, 5);
	io_close(f);
	free(b);
}
END_TEST

/* writeback (a hint): 0 on a written range, on a range past the end, and on an empty one;
 * the bytes unchanged by it; -EBADF read-only (INV-3); -EINVAL past the offsets io.h allows.
 * That it makes the next sync cheaper is measured by kvfs-bench (store/pager.c), not here. */
START_TEST(core_writeback)
{
	struct io_env *env = env_at(_i);
	struct io_file *f = open_ok(env, path_of("wb"), IO_OPEN_CREATE);
	uint8_t b[3 * 4096];

	pattern(b, sizeof(b), 0, 9);
	ck_assert_int_eq(io_pwrite(f, b, sizeof(b), 0), (ssize_t)sizeof(b));
	ck_assert_int_eq(io_writeback(f, 0, sizeof(b)), 0);
	ck_assert_int_eq(io_writeback(f, 4096, 1), 0);
	ck_assert_int_eq(io_writeback(f, 1u << 20, 4096), 0);
	ck_assert_int_eq(io_writeback(f, 0, 0), 0);
	ck_assert_int_eq(io_writeback(f, UINT64_MAX - 10, 100), -EINVAL);
	ck_assert_int_eq(io_sync(f), 0);
	expect_bytes(f, 0, sizeof(b), 9);
	ck_assert_int_eq(size_ok(f), sizeof(b));
	io_close(f);
	f = open_ok(env, path_of("wb"), IO_OPEN_RDONLY);
	ck_assert_int_eq(io_writeback(f, 0, 4096), -EBADF);
	io_close(f);
}
END_TEST

START_TEST(core_map)
{
	struct io_env *env = env_at(_i);
	struct io_file *f = open_ok(env, path_of("map"), IO_OPEN_CREATE);
	const uint8_t *base = NULL;
	uint8_t want[8192];

	pattern_write_ok(f, 8192, 0, 7);
	ck_assert_int_eq(io_map(f, MAP_RESERVE, (const void **)&base), 0);
	ck_assert_ptr_nonnull(base);
	pattern(want, 8192, 0, 7);
	ck_assert_mem_eq(base, want, 8192);

	/* every completed pwrite shows at once, in a mapped page and in a page added later */
	pattern_write_ok(f, 100, 1000, 8);
	pattern(want + 1000, 100, 1000, 8);
	ck_assert_mem_eq(base, want, 8192);
	ck_assert_int_eq(io_allocate(f, 8192, 8192), 0);
	pattern_write_ok(f, 4096, 12288, 9);
	pattern(want, 4096, 12288, 9);
	ck_assert_mem_eq(base + 12288, want, 4096);
	ck_assert(is_fill(base + 8192, 4096, 0));
	pattern_write_ok(f, 4096, 16384, 10);
	pattern(want, 4096, 16384, 10);
	ck_assert_mem_eq(base + 16384, want, 4096);
	io_unmap(f, base, MAP_RESERVE);

	ck_assert_int_eq(io_map(f, 0, (const void **)&base), -EINVAL);
	io_close(f);
}
END_TEST

START_TEST(core_lock)
{
	struct io_env *env = env_at(_i);
	const char *p = path_of("lock");
	struct io_file *a = open_ok(env, p, IO_OPEN_CREATE);
	struct io_file *b = open_ok(env, p, 0);
	struct io_file *c = open_ok(env, p, IO_OPEN_RDONLY);

	ck_assert_int_eq(io_lock(a, IO_LOCK_EXCL), 0);
	ck_assert_int_eq(io_lock(b, IO_LOCK_SHARED), -EBUSY);
	ck_assert_int_eq(io_lock(b, IO_LOCK_EXCL), -EBUSY);
	ck_assert_int_eq(io_lock(c, IO_LOCK_SHARED), -EBUSY);
	ck_assert_int_eq(io_lock(a, IO_LOCK_EXCL), 0); /* again: no conflict with itself */
	ck_assert_int_eq(io_lock(a, IO_LOCK_NONE), 0);
	ck_assert_int_eq(io_lock(b, IO_LOCK_SHARED), 0);
	ck_assert_int_eq(io_lock(c, IO_LOCK_SHARED), 0); /* shared with shared */
	ck_assert_int_eq(io_lock(a, IO_LOCK_EXCL), -EBUSY);
	ck_assert_int_eq(io_lock(c, IO_LOCK_NONE), 0);
	ck_assert_int_eq(io_lock(b, IO_LOCK_EXCL), 0); /* conversion shared -> exclusive */
	ck_assert_int_eq(io_lock(c, IO_LOCK_SHARED), -EBUSY);
	ck_assert_int_eq(io_lock(a, IO_LOCK_SHARED), -EBUSY);
	io_close(b); /* close releases */
	ck_assert_int_eq(io_lock(c, IO_LOCK_SHARED), 0);
	ck_assert_int_eq(io_lock(a, IO_LOCK_SHARED), 0);
	/* A conversion that fails drops the lock held (flock(2): conversion is not atomic), so
	 * c can then convert. */
	ck_assert_int_eq(io_lock(a, IO_LOCK_EXCL), -EBUSY);
	ck_assert_int_eq(io_lock(c, IO_LOCK_EXCL), 0);
	ck_assert_int_eq(io_lock(a, IO_LOCK_SHARED), -EBUSY);
	ck_assert_int_eq(io_lock(a, 99), -EINVAL);
	io_close(c);
	ck_assert_int_eq(io_lock(a, IO_LOCK_EXCL), 0);
	io_close(a);
	a = open_ok(env, p, 0);
	ck_assert_int_eq(io_lock(a, IO_LOCK_EXCL), 0);
	io_close(a);

	/* another file is not affected */
	a = open_ok(env, p, 0);
	b = open_ok(env, path_of("lock2"), IO_OPEN_CREATE);
	ck_assert_int_eq(io_lock(a, IO_LOCK_EXCL), 0);
	ck_assert_int_eq(io_lock(b, IO_LOCK_EXCL), 0);
	io_close(a);
	io_close(b);
}
END_TEST

START_TEST(core_posix_only)
{
	struct io_env *env = io_posix_env();
	struct io_file *f;

	ck_assert_ptr_eq(io_posix_env(), env);
	ck_assert_int_eq(io_open(env, tmpdir, 0, 0, &f), -EISDIR);
	ck_assert_int_eq(io_open(env, tmpdir, IO_OPEN_RDONLY, 0, &f), -EISDIR);
	ck_assert_int_eq(io_open(env, path_of("no/such/dir"), IO_OPEN_CREATE, 0644, &f),
			 -ENOENT);
}
END_TEST

START_TEST(core_fault_only)
{
	struct io_env *env = io_fault_env(fm);
	struct io_file *f, *g;
	const void *base;
	uint8_t b[64];

	ck_assert_ptr_eq(io_fault_env(fm), env);
	ck_assert_int_eq(io_fault_file_size(fm, "x"), -ENOENT);
	ck_assert_int_eq(io_fault_peek(fm, "x", 0, b, 1), -ENOENT);
	ck_assert_int_eq(io_fault_poke(fm, "x", 0, b, 1), -ENOENT);
	ck_assert_int_eq(io_open(env, "", IO_OPEN_CREATE, 0644, &f), -ENOENT);

	f = open_ok(env, "x", IO_OPEN_CREATE);
	/* the capacity bounds the mapping and the file */
	ck_assert_int_eq(io_map(f, IO_FAULT_CAPACITY + 1, &base), -ENOMEM);
	ck_assert_int_eq(io_map(f, IO_FAULT_CAPACITY, &base), 0);
	io_unmap(f, base, IO_FAULT_CAPACITY);
	ck_assert_int_eq(io_pwrite(f, b, 2, IO_FAULT_CAPACITY - 1), -EFBIG);
	ck_assert_int_eq(io_pwrite(f, b, 1, UINT64_MAX), -EFBIG);
	ck_assert_int_eq(io_truncate(f, (uint64_t)IO_FAULT_CAPACITY + 1), -EFBIG);
	ck_assert_int_eq(io_allocate(f, IO_FAULT_CAPACITY, 1), -EFBIG);
	ck_assert_int_eq(io_fault_file_size(fm, "x"), 0);

	/* peek and poke see and change both images */
	pattern_write_ok(f, 1000, 0, 1);
	ck_assert_int_eq(io_fault_file_size(fm, "x"), 1000);
	expect_peek(fm, "x", 0, 1000, 1);
	ck_assert_int_eq(io_fault_peek(fm, "x", 990, b, 11), -ERANGE);
	ck_assert_int_eq(io_fault_peek(fm, "x", 1001, b, 0), -ERANGE);
	memset(b, 0xEE, sizeof(b));
	ck_assert_int_eq(io_fault_poke(fm, "x", 980, b, 40), 0);
	ck_assert_int_eq(io_fault_file_size(fm, "x"), 1020);
	ck_assert_int_eq(size_ok(f), 1020);
	expect_bytes(f, 0, 980, 1);
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(io_pread(f, b, 64, 980), 40);
	ck_assert(is_fill(b, 40, 0xEE));
	ck_assert_int_eq(io_fault_poke(fm, "x", IO_FAULT_CAPACITY, b, 1), -ERANGE);
	ck_assert_uint_eq(io_fault_calls(fm), 5); /* refused calls are counted too */

	/* an unlinked file lives on through its open io_files; the name is free again */
	g = open_ok(env, "x", 0);
	ck_assert_int_eq(env->unlink(env, "x"), 0);
	ck_assert_int_eq(io_fault_file_size(fm, "x"), -ENOENT);
	expect_bytes(g, 0, 980, 1);
	pattern_write_ok(f, 10, 2000, 2);
	expect_bytes(g, 2000, 10, 2);
	ck_assert_int_eq(io_sync(g), 0);
	io_close(f);
	struct io_file *h = open_ok(env, "x", IO_OPEN_CREATE | IO_OPEN_EXCL);
	ck_assert_int_eq(size_ok(h), 0);
	ck_assert_int_eq(size_ok(g), 2010);
	io_close(g);
	io_close(h);
	ck_assert_int_eq(io_fault_file_size(fm, "x"), 0);
}
END_TEST

/* Writer and readers on one fault file, and other threads opening and closing other files:
 * meant to run under ThreadSanitizer (-DKVFS_TSAN=ON). */
#define THR_PAGES 64
#define THR_ROUNDS 200

struct thr_arg {
	struct io_file *f;
	const uint8_t *base;
	int id;
};

static void *thr_reader(void *p)
{
	struct thr_arg *a = p;
	uint8_t buf[4096], want[4096];

	/* Pages [0, THR_PAGES/2) were written before the threads started and never change. */
	for (int r = 0; r < THR_ROUNDS; r++) {
		uint64_t pg = (uint64_t)(r + a->id) % (THR_PAGES / 2);

		pattern(want, 4096, pg * 4096, 1);
		if (io_pread(a->f, buf, 4096, pg * 4096) != 4096 || memcmp(buf, want, 4096))
			return (void *)1;
		if (memcmp(a->base + pg * 4096, want, 4096))
			return (void *)1;
	}
	return NULL;
}

static void *thr_opener(void *p)
{
	struct thr_arg *a = p;
	struct io_env *env = io_fault_env(fm);
	char name[32];

	for (int r = 0; r < THR_ROUNDS / 4; r++) {
		struct io_file *f;
		uint64_t s;

		snprintf(name, sizeof(name), "other-%d-%d", a->id, r % 3);
		if (io_open(env, name, IO_OPEN_CREATE, 0644, &f) != 0)
			return (void *)1;
		if (io_pwrite(f, name, sizeof(name), 0) != (ssize_t)sizeof(name) ||
		    io_size(f, &s) != 0 || io_sync(f) != 0)
			return (void *)1;
		io_close(f);
		if (r % 3 == 2 && env->unlink(env, name) != 0)
			return (void *)1;
		(void)io_fault_calls(fm);
	}
	return NULL;
}

START_TEST(core_fault_threads)
{
	struct io_env *env = io_fault_env(fm);
	struct io_file *f = open_ok(env, "shared", IO_OPEN_CREATE);
	struct thr_arg args[4];
	pthread_t t[4];
	const void *base;

	pattern_write_ok(f, THR_PAGES / 2 * 4096, 0, 1);
	ck_assert_int_eq(io_map(f, MAP_RESERVE, &base), 0);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thr_arg){ .f = f, .base = base, .id = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, i < 2 ? thr_reader : thr_opener,
						&args[i]), 0);
	}
	/* the writer: the upper half of the pages, and syncs */
	for (int r = 0; r < THR_ROUNDS; r++) {
		uint64_t pg = THR_PAGES / 2 + (uint64_t)r % (THR_PAGES / 2);

		pattern_write_ok(f, 4096, pg * 4096, (uint8_t)r);
		if (r % 16 == 0)
			ck_assert_int_eq(io_sync(f), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *res;

		ck_assert_int_eq(pthread_join(t[i], &res), 0);
		ck_assert_msg(res == NULL, "thread %d failed", i);
	}
	io_unmap(f, base, MAP_RESERVE);
	io_close(f);
}
END_TEST

/* ---- crash ---------------------------------------------------------------------------- */

/* A file "f" with [0, 8192) of tag 1 synced, then pending: tag 2 over [4096, 6096), tag 3 at
 * [10000, 10500) (growing the file), and a truncate to 10400. */
static void crash_prepare(struct io_fault *m)
{
	struct io_file *f = open_ok(io_fault_env(m), "f", IO_OPEN_CREATE);

	pattern_write_ok(f, 8192, 0, 1);
	ck_assert_int_eq(io_sync(f), 0);
	pattern_write_ok(f, 2000, 4096, 2);
	pattern_write_ok(f, 500, 10000, 3);
	ck_assert_int_eq(io_truncate(f, 10400), 0);
	io_close(f); /* pending operations belong to the file, not the io_file */
}

/* After a cut every call returns -EIO, open and unlink included; close still works. */
static void expect_dead(struct io_fault *m, struct io_file *f)
{
	struct io_env *env = io_fault_env(m);
	struct io_file *g;
	const void *base;
	uint8_t b[16];
	uint64_t s;

	ck_assert(io_fault_dead(m));
	ck_assert_int_eq(io_pread(f, b, sizeof(b), 0), -EIO);
	ck_assert_int_eq(io_pwrite(f, b, sizeof(b), 0), -EIO);
	ck_assert_int_eq(io_sync(f), -EIO);
	ck_assert_int_eq(io_size(f, &s), -EIO);
	ck_assert_int_eq(io_truncate(f, 0), -EIO);
	ck_assert_int_eq(io_allocate(f, 0, 4096), -EIO);
	ck_assert_int_eq(io_map(f, MAP_RESERVE, &base), -EIO);
	ck_assert_int_eq(io_lock(f, IO_LOCK_SHARED), -EIO);
	ck_assert_int_eq(io_open(env, "f", 0, 0644, &g), -EIO);
	ck_assert_int_eq(io_open(env, "new", IO_OPEN_CREATE, 0644, &g), -EIO);
	ck_assert_int_eq(env->unlink(env, "f"), -EIO);
}

START_TEST(crash_keep_all)
{
	struct io_fault *r = NULL;
	struct io_file *f;

	crash_prepare(fm);
	f = open_ok(io_fault_env(fm), "f", 0);
	io_fault_set_cut_mode(fm, IO_CUT_KEEP_ALL);
	ck_assert(!io_fault_dead(fm));
	io_fault_power_cut(fm);
	expect_dead(fm, f);
	io_close(f);
	io_fault_power_cut(fm); /* a second cut changes nothing */

	/* the dead machine shows its disk; the rebooted one starts from it */
	for (int k = 0; k < 2; k++) {
		struct io_fault *m = k == 0 ? fm : (r = io_fault_reboot(fm, 5));

		ck_assert_ptr_nonnull(m);
		ck_assert_int_eq(io_fault_file_size(m, "f"), 10400);
		expect_peek(m, "f", 0, 4096, 1);
		expect_peek(m, "f", 4096, 2000, 2);
		expect_peek(m, "f", 6096, 2096, 1);
		expect_peek(m, "f", 8192, 1808, -1);
		expect_peek(m, "f", 10000, 400, 3);
	}
	ck_assert(!io_fault_dead(r));
	f = open_ok(io_fault_env(r), "f", 0);
	ck_assert_int_eq(size_ok(f), 10400);
	expect_bytes(f, 4096, 2000, 2);
	expect_bytes(f, 10000, 400, 3);
	pattern_write_ok(f, 10, 0, 4); /* the new machine is alive */
	io_close(f);
	io_fault_free(r);
}
END_TEST

START_TEST(crash_drop_all)
{
	struct io_fault *r;
	struct io_file *f;

	crash_prepare(fm);
	io_fault_set_cut_mode(fm, IO_CUT_DROP_ALL);
	io_fault_power_cut(fm);
	ck_assert(io_fault_dead(fm));
	ck_assert_int_eq(io_fault_file_size(fm, "f"), 8192);
	expect_peek(fm, "f", 0, 8192, 1);
	r = io_fault_reboot(fm, 5);
	ck_assert_ptr_nonnull(r);
	f = open_ok(io_fault_env(r), "f", 0);
	ck_assert_int_eq(size_ok(f), 8192);
	expect_bytes(f, 0, 8192, 1);
	io_close(f);
	io_fault_free(r);
}
END_TEST

/* Reboot of a live machine: the durable images only; the machine itself is untouched. */
START_TEST(crash_reboot_live)
{
	struct io_fault *r, *r2;
	struct io_file *f;

	crash_prepare(fm);
	r = io_fault_reboot(fm, 9);
	ck_assert_ptr_nonnull(r);
	ck_assert(!io_fault_dead(fm));
	ck_assert_int_eq(io_fault_file_size(fm, "f"), 10400);
	expect_peek(fm, "f", 4096, 2000, 2);
	ck_assert_int_eq(io_fault_file_size(r, "f"), 8192);
	expect_peek(r, "f", 0, 8192, 1);

	/* the original's pending operations still become durable at its next sync */
	f = open_ok(io_fault_env(fm), "f", 0);
	ck_assert_int_eq(io_sync(f), 0);
	io_close(f);
	r2 = io_fault_reboot(fm, 9);
	ck_assert_ptr_nonnull(r2);
	ck_assert_int_eq(io_fault_file_size(r2, "f"), 10400);
	expect_peek(r2, "f", 4096, 2000, 2);
	expect_peek(r2, "f", 10000, 400, 3);
	io_fault_free(r2);
	io_fault_free(r);
}
END_TEST

/* Under RANDOM, synced bytes that no pending operation touches always survive, and a file
 * that was only ever synced is exact. */
START_TEST(crash_synced_survive)
{
	uint64_t s0 = base_seed();

	for (uint64_t s = s0; s < s0 + 50; s++) {
		struct io_fault *m = io_fault_new(s), *r;
		struct io_env *env = io_fault_env(m);
		struct io_file *a = open_ok(env, "a", IO_OPEN_CREATE);
		struct io_file *b = open_ok(env, "b", IO_OPEN_CREATE);
		int64_t size;

		pattern_write_ok(a, 8192, 0, 1);
		pattern_write_ok(b, 3000, 0, 5);
		ck_assert_int_eq(io_sync(a), 0);
		ck_assert_int_eq(io_sync(b), 0);
		pattern_write_ok(a, 8192, 8192, 2);
		ck_assert_int_eq(io_allocate(a, 16384, 4096), 0);
		pattern_write_ok(a, 1000, 20000, 3);
		io_close(a);
		io_close(b);
		io_fault_power_cut(m);
		r = io_fault_reboot(m, s);
		ck_assert_ptr_nonnull(r);
		expect_peek(r, "a", 0, 8192, 1);
		size = io_fault_file_size(r, "a");
		ck_assert_msg(size >= 8192 && size <= 21000, "seed=%llu size %lld",
			      (unsigned long long)s, (long long)size);
		ck_assert_int_eq(io_fault_file_size(r, "b"), 3000);
		expect_peek(r, "b", 0, 3000, 5);
		io_fault_free(r);
		io_fault_free(m);
	}
}
END_TEST

/* Run one fixed workload on a machine seeded `seed`, cut power at random, and return the
 * post-cut images of its files concatenated (with sizes), malloc'd, length in *len. */
static uint8_t *random_cut_run(uint64_t seed, size_t *len)
{
	static const char *names[] = { "log", "data", "zz" };
	struct io_fault *m = io_fault_new(seed), *r;
	struct io_env *env;
	struct io_file *f[3];
	uint8_t *out = NULL;
	size_t n = 0;

	ck_assert_ptr_nonnull(m);
	env = io_fault_env(m);
	/* opened in a different order than the path order the cut visits */
	for (int i = 2; i >= 0; i--)
		f[i] = open_ok(env, names[i], IO_OPEN_CREATE);
	pattern_write_ok(f[0], 4096, 0, 1);
	ck_assert_int_eq(io_sync(f[0]), 0);
	for (int k = 0; k < 12; k++) {
		struct io_file *g = f[k % 3];

		size_t wlen = 512 * (size_t)(k + 1) + 37;

		pattern_write_ok(g, wlen, (uint64_t)k * 700, (uint8_t)(k + 10));
		if (k % 5 == 4)
			ck_assert_int_eq(io_truncate(g, (uint64_t)k * 1000), 0);
		if (k % 4 == 3)
			ck_assert_int_eq(io_allocate(g, 30000, 5000), 0);
	}
	io_fault_power_cut(m);
	r = io_fault_reboot(m, 0);
	ck_assert_ptr_nonnull(r);
	for (int i = 0; i < 3; i++) {
		int64_t sz = io_fault_file_size(r, names[i]);

		ck_assert_int_ge(sz, 0);
		out = realloc(out, n + sizeof(sz) + (size_t)sz);
		ck_assert_ptr_nonnull(out);
		memcpy(out + n, &sz, sizeof(sz));
		n += sizeof(sz);
		ck_assert_int_eq(io_fault_peek(r, names[i], 0, out + n, (size_t)sz), 0);
		n += (size_t)sz;
		io_close(f[i]);
	}
	io_fault_free(r);
	io_fault_free(m);
	*len = n;
	return out;
}

START_TEST(crash_random_reproducible)
{
	uint64_t s0 = base_seed();
	int differ = 0;

	for (uint64_t s = s0; s < s0 + 20; s++) {
		size_t la, lb, lc;
		uint8_t *a = random_cut_run(s, &la), *b = random_cut_run(s, &lb);
		uint8_t *c = random_cut_run(s + 1000, &lc);

		ck_assert_msg(la == lb && memcmp(a, b, la) == 0,
			      "seed=%llu: two runs differ", (unsigned long long)s);
		differ += la != lc || memcmp(a, c, la) != 0;
		free(a);
		free(b);
		free(c);
	}
	ck_assert_msg(differ > 0, "seeds %llu..: different seeds never gave different images",
		      (unsigned long long)s0);
}
END_TEST

/* One pending write over zeros, cut at random: each 512-byte sector (aligned to file
 * offsets) is wholly old or wholly new; across many seeds some writes are torn. */
START_TEST(crash_torn_sectors)
{
	/* an aligned write of 16 sectors and an unaligned one: [100,512) [512,1024) [1024,1100)
	 * of a second file */
	static const struct {
		uint64_t off, len;
	} w[2] = { { 0, 16 * 512 }, { 100, 1000 } };
	uint64_t s0 = base_seed();
	int kept = 0, dropped = 0, torn = 0;

	for (uint64_t s = s0; s < s0 + 300; s++) {
		struct io_fault *m = io_fault_new(s), *r;
		struct io_env *env = io_fault_env(m);

		for (int i = 0; i < 2; i++) {
			struct io_file *f = open_ok(env, i ? "b" : "a", IO_OPEN_CREATE);

			ck_assert_int_eq(io_allocate(f, 0, 16 * 512), 0);
			ck_assert_int_eq(io_sync(f), 0);
			pattern_write_ok(f, (size_t)w[i].len, w[i].off, 0x5A);
			io_close(f);
		}
		io_fault_power_cut(m);
		r = io_fault_reboot(m, s);
		ck_assert_ptr_nonnull(r);
		for (int i = 0; i < 2; i++) {
			const char *name = i ? "b" : "a";
			uint8_t img[16 * 512], want[16 * 512];
			uint64_t pos = w[i].off, end = w[i].off + w[i].len;
			int n_new = 0, n_old = 0;

			ck_assert_int_eq(io_fault_file_size(r, name), 16 * 512);
			ck_assert_int_eq(io_fault_peek(r, name, 0, img, sizeof(img)), 0);
			pattern(want, sizeof(want), 0, 0x5A);
			ck_assert(is_fill(img, (size_t)pos, 0));
			ck_assert(is_fill(img + end, sizeof(img) - (size_t)end, 0));
			while (pos < end) {
				uint64_t se = (pos / 512 + 1) * 512;
				size_t l;

				se = se < end ? se : end;
				l = (size_t)(se - pos);
				if (memcmp(img + pos, want + pos, l) == 0)
					n_new++;
				else if (is_fill(img + pos, l, 0))
					n_old++;
				else
					ck_abort_msg("seed=%llu %s: sector at %d mixed",
						     (unsigned long long)s, name, (int)pos);
				pos = se;
			}
			kept += n_old == 0;
			dropped += n_new == 0;
			torn += n_new > 0 && n_old > 0;
		}
		io_fault_free(r);
		io_fault_free(m);
	}
	ck_assert_msg(kept > 0 && dropped > 0 && torn > 0,
		      "seeds %llu..: kept %d dropped %d torn %d", (unsigned long long)s0, kept,
		      dropped, torn);
}
END_TEST

START_TEST(crash_cut_at_sync)
{
	struct io_env *env = io_fault_env(fm);
	struct io_file *f = open_ok(env, "f", IO_OPEN_CREATE);
	struct io_file *g = open_ok(env, "g", IO_OPEN_CREATE);
	struct io_fault *r;

	io_fault_set_cut_mode(fm, IO_CUT_DROP_ALL);
	io_fault_cut_at_sync(fm, 3);
	ck_assert_uint_eq(io_fault_syncs(fm), 0);
	pattern_write_ok(f, 1000, 0, 1);
	ck_assert_int_eq(io_sync(f), 0);
	pattern_write_ok(g, 100, 0, 6);
	ck_assert_int_eq(io_sync(f), 0); /* g's write stays pending: f's sync is f's */
	ck_assert_uint_eq(io_fault_syncs(fm), 2);
	ck_assert(!io_fault_dead(fm));
	pattern_write_ok(f, 1000, 1000, 2);
	ck_assert_int_eq(io_sync(f), -EIO); /* the third: power is cut, the sync never ran */
	ck_assert_uint_eq(io_fault_syncs(fm), 3);
	expect_dead(fm, f);
	ck_assert_uint_eq(io_fault_syncs(fm), 3); /* dead calls are not counted */
	io_close(f);
	io_close(g);

	r = io_fault_reboot(fm, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(io_fault_file_size(r, "f"), 1000);
	expect_peek(r, "f", 0, 1000, 1);
	ck_assert_int_eq(io_fault_file_size(r, "g"), 0);

	/* disarmed (0) and re-armed counters start over */
	env = io_fault_env(r);
	f = open_ok(env, "f", 0);
	io_fault_cut_at_sync(r, 0);
	for (int k = 0; k < 5; k++)
		ck_assert_int_eq(io_sync(f), 0);
	ck_assert_uint_eq(io_fault_syncs(r), 5);
	io_fault_cut_at_sync(r, 1);
	ck_assert_uint_eq(io_fault_syncs(r), 0);
	ck_assert_int_eq(io_sync(f), -EIO);
	ck_assert(io_fault_dead(r));
	io_close(f);
	io_fault_free(r);
}
END_TEST

/* ---- fault ---------------------------------------------------------------------------- */

/* The five counted calls of fault_sequence, in order. */
static void fault_sequence(struct io_fault *m, int rc[5])
{
	struct io_env *env = io_fault_env(m);
	struct io_file *f = open_ok(env, "f", IO_OPEN_CREATE);
	uint8_t b[1000];
	const void *base;
	uint64_t s;

	pattern(b, 1000, 0, 1);
	rc[0] = (int)io_pwrite(f, b, 1000, 0);
	ck_assert_int_eq(io_size(f, &s), 0);          /* not counted */
	rc[1] = io_truncate(f, 2000);
	ck_assert_int_ge(io_pread(f, b, 10, 0), 0);   /* not counted */
	rc[2] = io_allocate(f, 2000, 2096);
	ck_assert_int_eq(io_map(f, MAP_RESERVE, &base), 0);
	io_unmap(f, base, MAP_RESERVE);
	ck_assert_int_eq(io_lock(f, IO_LOCK_EXCL), 0);
	rc[3] = io_sync(f);
	pattern(b, 100, 3000, 2);
	rc[4] = (int)io_pwrite(f, b, 100, 3000);
	io_close(f);
}

START_TEST(fault_fail_nth)
{
	static const enum io_fault_kind kinds[2] = { IO_FAULT_EIO, IO_FAULT_ENOSPC };
	static const int ok[5] = { 1000, 0, 0, 0, 100 };

	for (int ki = 0; ki < 2; ki++) {
		int err = kinds[ki] == IO_FAULT_EIO ? -EIO : -ENOSPC;

		for (uint64_t n = 0; n <= 6; n++) {
			struct io_fault *m = io_fault_new(1), *r;
			int rc[5];

			io_fault_fail_at(m, n, kinds[ki]);
			ck_assert(!io_fault_fired(m));
			fault_sequence(m, rc);
			for (uint64_t i = 0; i < 5; i++)
				ck_assert_msg(rc[i] == (i + 1 == n ? err : ok[i]),
					      "kind %d n %d call %d: %d", kinds[ki], (int)n,
					      (int)i + 1, rc[i]);
			ck_assert_uint_eq(io_fault_calls(m), 5);
			ck_assert(io_fault_fired(m) == (n >= 1 && n <= 5));

			/* the failed call changed nothing */
			r = io_fault_reboot(m, 1);
			ck_assert_ptr_nonnull(r);
			switch (n) {
			case 1: /* no data; truncate and allocate still grew the file */
				ck_assert_int_eq(io_fault_file_size(m, "f"), 4096);
				expect_peek(m, "f", 0, 3000, -1);
				expect_peek(m, "f", 3000, 100, 2);
				break;
			case 3: /* no allocate: the write at 3000 sets the size */
				ck_assert_int_eq(io_fault_file_size(m, "f"), 3100);
				expect_peek(m, "f", 0, 1000, 1);
				expect_peek(m, "f", 1000, 2000, -1);
				break;
			case 4: /* no sync: nothing durable */
				ck_assert_int_eq(io_fault_file_size(m, "f"), 4096);
				ck_assert_int_eq(io_fault_file_size(r, "f"), 0);
				break;
			case 5: /* no final write */
				ck_assert_int_eq(io_fault_file_size(m, "f"), 4096);
				expect_peek(m, "f", 0, 1000, 1);
				expect_peek(m, "f", 1000, 3096, -1);
				break;
			default: /* 0 (disarmed), 2 (truncate to 2000 is then grown anyway), 6 */
				ck_assert_int_eq(io_fault_file_size(m, "f"), 4096);
				expect_peek(m, "f", 0, 1000, 1);
				expect_peek(m, "f", 1000, 2000, -1);
				expect_peek(m, "f", 3000, 100, 2);
				break;
			}
			/* the reboot sees the sync (call 4) but not the final write */
			if (n != 4) {
				ck_assert_int_eq(io_fault_file_size(r, "f"), n == 3 ? 2000 : 4096);
				expect_peek(r, "f", 0, 1000, n == 1 ? -1 : 1);
				expect_peek(r, "f", 1000, 1000, -1);
				if (n != 3)
					expect_peek(r, "f", 2000, 2096, -1);
			}
			io_fault_free(r);
			io_fault_free(m);
		}
	}
}
END_TEST

START_TEST(fault_short_write)
{
	struct io_env *env = io_fault_env(fm);
	struct io_file *f = open_ok(env, "f", IO_OPEN_CREATE);
	uint8_t b[1001];
	struct io_fault *r;

	pattern_write_ok(f, 2000, 0, 1);
	io_fault_fail_at(fm, 2, IO_FAULT_SHORT);
	pattern(b, sizeof(b), 5000, 2);
	ck_assert_int_eq(io_pwrite(f, b, sizeof(b), 5000), sizeof(b)); /* call 1 */
	ck_assert(!io_fault_fired(fm));
	pattern(b, sizeof(b), 100, 3);
	ck_assert_int_eq(io_pwrite(f, b, sizeof(b), 100), -ENOSPC);    /* call 2: 500 bytes */
	ck_assert(io_fault_fired(fm));
	expect_bytes(f, 0, 100, 1);
	expect_bytes(f, 100, 500, 3);
	expect_bytes(f, 600, 1400, 1);
	ck_assert_int_eq(size_ok(f), 6001);

	/* past the end, a short write sets the size to what it wrote */
	io_fault_fail_at(fm, 1, IO_FAULT_SHORT);
	pattern(b, sizeof(b), 10000, 4);
	ck_assert_int_eq(io_pwrite(f, b, sizeof(b), 10000), -ENOSPC);
	ck_assert_int_eq(size_ok(f), 10500);
	expect_bytes(f, 10000, 500, 4);
	io_fault_fail_at(fm, 1, IO_FAULT_SHORT);
	ck_assert_int_eq(io_pwrite(f, b, 1, 20000), -ENOSPC); /* half of 1 is nothing */
	ck_assert_int_eq(size_ok(f), 10500);

	/* the fired failure does not fire again; the half written is an ordinary write */
	ck_assert_int_eq(io_sync(f), 0);
	/* on other calls SHORT is EIO */
	io_fault_fail_at(fm, 1, IO_FAULT_SHORT);
	ck_assert_int_eq(io_truncate(f, 0), -EIO);
	io_fault_fail_at(fm, 1, IO_FAULT_SHORT);
	ck_assert_int_eq(io_allocate(f, 0, 1 << 20), -EIO);
	io_fault_fail_at(fm, 1, IO_FAULT_SHORT);
	ck_assert_int_eq(io_sync(f), -EIO);
	ck_assert_int_eq(size_ok(f), 10500);
	io_close(f);

	r = io_fault_reboot(fm, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(io_fault_file_size(r, "f"), 10500);
	expect_peek(r, "f", 100, 500, 3);
	expect_peek(r, "f", 600, 1400, 1);
	expect_peek(r, "f", 10000, 500, 4);
	io_fault_free(r);
}
END_TEST

START_TEST(fault_counting)
{
	struct io_env *env = io_fault_env(fm);
	struct io_file *f, *ro;
	const void *base;
	uint8_t b[64] = { 0 };
	uint64_t s;

	/* not counted: open, close, pread, size, map, unmap, lock, unlink, control calls */
	f = open_ok(env, "f", IO_OPEN_CREATE);
	ro = open_ok(env, "f", IO_OPEN_RDONLY);
	ck_assert_int_eq(io_pread(f, b, sizeof(b), 0), 0);
	ck_assert_int_eq(io_size(f, &s), 0);
	ck_assert_int_eq(io_map(f, MAP_RESERVE, &base), 0);
	io_unmap(f, base, MAP_RESERVE);
	ck_assert_int_eq(io_lock(f, IO_LOCK_SHARED), 0);
	ck_assert_int_eq(io_lock(f, IO_LOCK_NONE), 0);
	ck_assert_int_eq(io_fault_poke(fm, "f", 0, b, 8), 0);
	ck_assert_int_eq(io_fault_peek(fm, "f", 0, b, 8), 0);
	ck_assert_int_eq(io_fault_file_size(fm, "f"), 8);
	ck_assert_int_eq(env->unlink(env, "nothing"), -ENOENT);
	ck_assert_uint_eq(io_fault_calls(fm), 0);
	ck_assert_uint_eq(io_fault_syncs(fm), 0);

	/* counted: each pwrite, sync, truncate, allocate — failing ones too */
	ck_assert_int_eq(io_pwrite(f, b, 8, 0), 8);
	ck_assert_uint_eq(io_fault_calls(fm), 1);
	ck_assert_int_eq(io_sync(f), 0);
	ck_assert_uint_eq(io_fault_calls(fm), 2);
	ck_assert_uint_eq(io_fault_syncs(fm), 1);
	ck_assert_int_eq(io_truncate(f, 4), 0);
	ck_assert_uint_eq(io_fault_calls(fm), 3);
	ck_assert_int_eq(io_allocate(f, 0, 0), 0);
	ck_assert_uint_eq(io_fault_calls(fm), 4);
	ck_assert_int_eq(io_pwrite(ro, b, 8, 0), -EBADF);
	ck_assert_int_eq(io_truncate(ro, 0), -EBADF);
	ck_assert_int_eq(io_allocate(ro, 0, 1), -EBADF);
	ck_assert_int_eq(io_sync(ro), 0);
	ck_assert_uint_eq(io_fault_calls(fm), 8);
	ck_assert_uint_eq(io_fault_syncs(fm), 2);

	/* fail_at resets the count; the armed call fails once, later calls succeed */
	io_fault_fail_at(fm, 2, IO_FAULT_EIO);
	ck_assert_uint_eq(io_fault_calls(fm), 0);
	ck_assert_uint_eq(io_fault_syncs(fm), 2); /* only cut_at_sync resets syncs */
	ck_assert_int_eq(io_sync(f), 0);
	ck_assert_int_eq(io_sync(f), -EIO);
	ck_assert(io_fault_fired(fm));
	for (int k = 0; k < 4; k++)
		ck_assert_int_eq(io_pwrite(f, b, 8, 0), 8);
	ck_assert_uint_eq(io_fault_calls(fm), 6);
	io_fault_fail_at(fm, 0, IO_FAULT_EIO);
	ck_assert(!io_fault_fired(fm));

	/* an argument error on the armed call is reported instead of the injected error */
	io_fault_fail_at(fm, 1, IO_FAULT_ENOSPC);
	ck_assert_int_eq(io_pwrite(ro, b, 8, 0), -EBADF);
	ck_assert(io_fault_fired(fm));
	ck_assert_int_eq(io_pwrite(f, b, 8, 0), 8);

	/* a sync that is both the armed call and the cut: the cut wins */
	io_fault_fail_at(fm, 1, IO_FAULT_ENOSPC);
	io_fault_cut_at_sync(fm, 1);
	io_fault_set_cut_mode(fm, IO_CUT_KEEP_ALL);
	ck_assert_int_eq(io_sync(f), -EIO);
	ck_assert(io_fault_dead(fm));
	ck_assert(!io_fault_fired(fm));
	ck_assert_uint_eq(io_fault_calls(fm), 1);
	ck_assert_int_eq(io_pwrite(f, b, 8, 0), -EIO);
	ck_assert_uint_eq(io_fault_calls(fm), 1);
	io_close(f);
	io_close(ro);
}
END_TEST

static Suite *io_suite(void)
{
	Suite *s = suite_create("io");
	TCase *core = tcase_create("core");
	TCase *crash = tcase_create("crash");
	TCase *fault = tcase_create("fault");
	TCase *all[3] = { core, crash, fault };

	for (int i = 0; i < 3; i++) {
		tcase_add_unchecked_fixture(all[i], dir_setup, dir_teardown);
		tcase_add_checked_fixture(all[i], setup, teardown);
		tcase_set_timeout(all[i], 120);
		suite_add_tcase(s, all[i]);
	}
	/* loop index 0: io_posix, 1: io_fault */
	tcase_add_loop_test(core, core_read_write, 0, 2);
	tcase_add_loop_test(core, core_map, 0, 2);
	tcase_add_loop_test(core, core_writev, 0, 2);
	tcase_add_loop_test(core, core_writeback, 0, 2);
	tcase_add_loop_test(core, core_lock, 0, 2);
	tcase_add_test(core, core_posix_only);
	tcase_add_test(core, core_fault_only);
	tcase_add_test(core, core_fault_threads);

	tcase_add_test(crash, crash_keep_all);
	tcase_add_test(crash, crash_drop_all);
	tcase_add_test(crash, crash_reboot_live);
	tcase_add_test(crash, crash_synced_survive);
	tcase_add_test(crash, crash_random_reproducible);
	tcase_add_test(crash, crash_torn_sectors);
	tcase_add_test(crash, crash_cut_at_sync);

	tcase_add_test(fault, fault_fail_nth);
	tcase_add_test(fault, fault_short_write);
	tcase_add_test(fault, fault_counting);
	return s;
}

int main(void)
{
	return tu_run_suite(io_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
