/*
 * tests/check_namespace.c — Check suite "namespace": the file namespace of store/kvfs.h, both
 * of its faces (keys as paths: kvfs_put/get/delete/exists/list/scan; and the inode calls a FUSE
 * layer makes), against the header's comments and, where they are silent, against what Linux's
 * native file systems (ext4, tmpfs) return in the same case.  Expectations that come from Linux
 * rather than from the header are marked "Linux:" where they are asserted.
 *
 * Test cases, by kind:
 *   core   one behaviour per test: the key API and its errno for every kind of bad key; list
 *          and scan order and bounds (also with names holding bytes below '/'); the root; open
 *          flags; mknod/mkdir/symlink/link/unlink/rmdir; rename with every flag and every
 *          rename(2) error; read/write at offsets, holes, truncate, punch, sizes around a page
 *          and the inline-to-block transition; setattr and timestamps; xattrs; readdir resumed
 *          after a name across changes; orphans (unlinked while open, also left by a process
 *          that died).  Most tests close and reopen the store and check again.
 *   model  random operations through both APIs against an in-memory namespace (a tree of
 *          directories, files, symlinks and special files with inode numbers, link counts,
 *          contents and xattrs): every return value, every read and every listing compared;
 *          rename errors in the order Linux checks them (fs/namei.c); the whole tree (getattr,
 *          read, readlink, readdir, kvfs_list, kvfs_scan, xattrs, freed inodes) walked every
 *          M_CHECK_EVERY operations, after every reopen and at the end.  MODEL_SEEDS seeds x
 *          MODEL_OPS operations, about 1 s a seed on ext4 (reopens dominate: the log is
 *          preallocated); KVFS_SEED=N replays one seed, KVFS_MODEL_OPS=n and
 *          KVFS_MODEL_SEEDS=n change the counts, KVFS_TEST_VERBOSE=1 prints a line per seed.
 *   edge   200 entries in one directory; a 10 MiB file in odd-sized chunks; a block at 1 TiB
 *          offset, the KVFS_MAX_FILE limit, truncating and removing huge sparse files; a
 *          directory of 1,000 entries renamed; a 94 MiB file truncated, punched and removed
 *          with a 1 MiB log ring (-EFBIG when one change deletes every block, as before the
 *          steps).
 *   core, bounded changes (namespace.c "Bounded changes"): with a step of 4 blocks, rm, rename
 *          over, the release of an unlinked open file, truncation (also of an unlinked open
 *          file, and growing again: old bytes must not come back), kvfs_put over a bigger file
 *          (hard links see the new bytes, the inode is kept; the split put over 16 MiB) and
 *          kvfs_batch deletes and puts, each crossing many steps; then the data file checked
 *          (store_verify, every block within its file's size and counted by its inode, no
 *          orphan left) and kvfs-check -n clean (KVFS_CHECK_BIN or ./kvfs-check, when built);
 *          a purge and a truncation cut short (as a crash between steps leaves them): kvfs-check
 *          reports NS_ORPHAN_PENDING and nothing else, -y finishes them (then clean), and so
 *          does the next open; holes punched in steps (also in an unlinked open file, and
 *          written into afterwards: the write must stay), and one cut short: a read-only open
 *          shows the hole, kvfs-check -n reports it pending, -y or the next open finishes it.
 *
 * Choices where neither the header nor Linux decides (the model avoids these cases rather than
 * guess): whether kvfs_put replacing a file keeps its inode (the model accepts either and
 * follows what it sees); how the key API treats a symlink or special file inside or at the end
 * of a key; the gid of nodes kvfs_put creates in a set-group-ID directory; xattrs on symlinks
 * and special files.  The model's names contain only bytes above '/' (where kvfs.h's key order
 * is plain byte order); test_key_scan_order covers the others.
 *
 * Every test runs on POSIX files in its own temporary directory ($TMPDIR or /tmp).
 * Replay: CK_RUN_CASE=model KVFS_SEED=1042 ./check_namespace (CK_FORK=no for a debugger).
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "store/engine.h"
#include "store/kvfs.h"
#include "store/kvfs_env.h"
#include "store/ns_format.h"
#include "store/store.h"
#include "tests/testutil.h"

#define MODEL_SEEDS   100
#define MODEL_OPS     5000
#define M_CHECK_EVERY 500

#define NS_PER_S 1000000000ll

#define OK(expr)           TU_ASSERT_EQ((expr), 0, "%s", "")
#define EXPECT(expr, want) TU_ASSERT_EQ((expr), (want), "%s", "")
#define MEM_EQ(got, want, len, what) mem_eq(__FILE__, __LINE__, (got), (want), (len), (what))
#define ST_EQ(got, want)   st_eq(__FILE__, __LINE__, (got), (want))
#define GET_EQ(fs, key, want, len) get_eq(__FILE__, __LINE__, (fs), (key), (want), (len))
#define READ_EQ(fs, ino, off, want, len)                                                     \
	read_eq(__FILE__, __LINE__, (fs), (ino), (off), (want), (len))
/* A timestamp the library set to "now" (generous: the library may use a coarse clock). */
#define FRESH(t)                                                                             \
	TU_ASSERT(llabs((long long)(t) - now_ns()) < 10 * NS_PER_S, "%s = %lld is not now",   \
		  #t, (long long)(t))

_Static_assert(XATTR_CREATE == 1 && XATTR_REPLACE == 2, "kvfs.h xattr flag values");

/* ---- helpers ------------------------------------------------------------------------- */

struct ns {
	struct tu_env env;
	struct kvfs *fs;
};

static void ns_open_ok(struct ns *n, unsigned flags)
{
	struct kvfs_options o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.flags = flags;
	o.log = tu_log_cb;
	n->fs = NULL;
	rc = kvfs_open(n->env.path, &o, &n->fs);
	TU_ASSERT_EQ(rc, 0, "kvfs_open(%s)", n->env.path);
	TU_ASSERT(n->fs != NULL, "%s", "kvfs_open returned no handle");
}

static struct kvfs *ns_setup(struct ns *n)
{
	tu_env_posix(&n->env);
	ns_open_ok(n, KVFS_CREATE);
	return n->fs;
}

static struct kvfs *ns_reopen(struct ns *n)
{
	int rc = kvfs_close(n->fs);

	n->fs = NULL;
	TU_ASSERT_EQ(rc, 0, "%s", "kvfs_close");
	ns_open_ok(n, 0);
	return n->fs;
}

static void ns_done(struct ns *n)
{
	if (n->fs) {
		int rc = kvfs_close(n->fs);

		n->fs = NULL;
		TU_ASSERT_EQ(rc, 0, "%s", "kvfs_close");
	}
	tu_env_fini(&n->env);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void mem_eq(const char *file, int line, const void *got, const void *want, size_t len,
		   const char *what)
{
	const uint8_t *g = got, *w = want;

	for (size_t i = 0; i < len; i++)
		if (g[i] != w[i])
			tu_fail(file, line, "%s: byte %zu of %zu is 0x%02x, want 0x%02x", what, i,
				len, g[i], w[i]);
}

static void st_eq(const char *file, int line, const struct kvfs_stat *a,
		  const struct kvfs_stat *b)
{
#define ST_FIELD(f)                                                                          \
	if ((long long)a->f != (long long)b->f)                                              \
		tu_fail_eq(file, line, "st." #f, (long long)a->f, (long long)b->f, "ino %llu",   \
			   (unsigned long long)b->ino)
	ST_FIELD(ino);
	ST_FIELD(mode);
	ST_FIELD(nlink);
	ST_FIELD(uid);
	ST_FIELD(gid);
	ST_FIELD(rdev);
	ST_FIELD(size);
	ST_FIELD(blocks);
	ST_FIELD(atime_ns);
	ST_FIELD(mtime_ns);
	ST_FIELD(ctime_ns);
	ST_FIELD(generation);
#undef ST_FIELD
}

/* Bytes of a test file: depend on a seed and the file offset (a block written at the wrong
 * offset is caught) and are never 0 (a hole is caught). */
static void pat(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i + 1) * 0x9E3779B97F4A7C15ull ^ seed * 0xBF58476D1CE4E5B9ull;

		x ^= x >> 31;
		p[i] = (uint8_t)(x % 251 + 1);
	}
}

static char *name_rep(char *buf, char c, size_t len)
{
	memset(buf, c, len);
	buf[len] = 0;
	return buf;
}

/* Walk `key` ("" is the root) with kvfs_lookup from the root. 0 and *st, or the -errno. */
static int walk(struct kvfs *fs, const char *key, struct kvfs_stat *st)
{
	char comp[KVFS_NAME_MAX + 2];
	struct kvfs_stat cur;
	const char *p = key;
	int rc = kvfs_getattr(fs, KVFS_ROOT_INO, &cur);

	while (rc == 0 && *p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		TU_ASSERT(n > 0 && n <= KVFS_NAME_MAX, "test key %s", key);
		memcpy(comp, p, n);
		comp[n] = 0;
		rc = kvfs_lookup(fs, cur.ino, comp, &cur);
		p += n;
		if (*p == '/')
			p++;
	}
	if (rc == 0 && st)
		*st = cur;
	return rc;
}

static struct kvfs_stat walk_ok(struct kvfs *fs, const char *key)
{
	struct kvfs_stat st;
	int rc = walk(fs, key, &st);

	TU_ASSERT_EQ(rc, 0, "walk(%s)", key);
	return st;
}

static uint64_t ino_ok(struct kvfs *fs, const char *key)
{
	return walk_ok(fs, key).ino;
}

static struct kvfs_stat attr_ok(struct kvfs *fs, uint64_t ino)
{
	struct kvfs_stat st;
	int rc = kvfs_getattr(fs, ino, &st);

	TU_ASSERT_EQ(rc, 0, "getattr(%llu)", (unsigned long long)ino);
	TU_ASSERT_EQ(st.ino, ino, "%s", "getattr returned another inode");
	return st;
}

static void get_eq(const char *file, int line, struct kvfs *fs, const char *key,
		   const void *want, size_t len)
{
	uint8_t *buf = malloc(len + 64);
	ssize_t got;

	TU_ASSERT(buf != NULL, "%s", "malloc");
	memset(buf, 0xEE, len + 64);
	got = kvfs_get(fs, key, buf, len + 64);
	if (got != (ssize_t)len)
		tu_fail(file, line, "kvfs_get(%s) = %zd, want %zu", key, got, len);
	mem_eq(file, line, buf, want, len, key);
	for (size_t i = len; i < len + 64; i++)
		if (buf[i] != 0xEE)
			tu_fail(file, line, "kvfs_get(%s) wrote past the size, at %zu", key, i);
	free(buf);
}

/* kvfs_read(ino, off, len + 100) must return exactly len bytes equal to `want`. */
static void read_eq(const char *file, int line, struct kvfs *fs, uint64_t ino, uint64_t off,
		    const void *want, size_t len)
{
	uint8_t *buf = malloc(len + 100);
	ssize_t got;
	char what[64];

	TU_ASSERT(buf != NULL, "%s", "malloc");
	got = kvfs_read(fs, ino, buf, len + 100, off);
	if (got != (ssize_t)len)
		tu_fail(file, line, "kvfs_read(ino %llu, off %llu) = %zd, want %zu",
			(unsigned long long)ino, (unsigned long long)off, got, len);
	snprintf(what, sizeof(what), "read ino %llu off %llu", (unsigned long long)ino,
		 (unsigned long long)off);
	mem_eq(file, line, buf, want, len, what);
	free(buf);
}

static uint64_t page_size_ok(struct kvfs *fs)
{
	struct kvfs_stats s;

	OK(kvfs_stats(fs, &s));
	TU_ASSERT(s.page_size >= 512 && (s.page_size & (s.page_size - 1)) == 0,
		  "page_size %llu", (unsigned long long)s.page_size);
	return s.page_size;
}

static struct kvfs_stat set_size_ok(struct kvfs *fs, uint64_t ino, uint64_t size)
{
	struct kvfs_stat sa, st;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.size = size;
	rc = kvfs_setattr(fs, ino, &sa, KVFS_SET_SIZE, &st);
	TU_ASSERT_EQ(rc, 0, "truncate ino %llu to %llu", (unsigned long long)ino,
		     (unsigned long long)size);
	TU_ASSERT_EQ(st.size, size, "%s", "size returned by setattr");
	return st;
}

static int set_times(struct kvfs *fs, uint64_t ino, int64_t a, int64_t m, int64_t c)
{
	struct kvfs_stat sa, st;

	memset(&sa, 0, sizeof(sa));
	sa.atime_ns = a;
	sa.mtime_ns = m;
	sa.ctime_ns = c;
	return kvfs_setattr(fs, ino, &sa, KVFS_SET_ATIME | KVFS_SET_MTIME | KVFS_SET_CTIME, &st);
}

static ssize_t write_s(struct kvfs *fs, uint64_t ino, const char *s, uint64_t off)
{
	return kvfs_write(fs, ino, s, strlen(s), off);
}

/* A regular file `name` in `parent`, mode 0644, owned by the caller. */
static uint64_t mkfile_ok(struct kvfs *fs, uint64_t parent, const char *name)
{
	struct kvfs_stat st;
	int rc = kvfs_mknod(fs, parent, name, S_IFREG | 0644, 0, getuid(), getgid(), &st);

	TU_ASSERT_EQ(rc, 0, "mknod %s", name);
	return st.ino;
}

static uint64_t mkdir_ok(struct kvfs *fs, uint64_t parent, const char *name)
{
	struct kvfs_stat st;
	int rc = kvfs_mkdir(fs, parent, name, 0755, getuid(), getgid(), &st);

	TU_ASSERT_EQ(rc, 0, "mkdir %s", name);
	return st.ino;
}

/* Collected readdir output. */
struct rd_ent {
	char *name;
	uint64_t ino;
	unsigned type;
};

struct rd {
	struct rd_ent *v;
	size_t n, cap;
	size_t limit; /* stop (return 1) once this many were collected by one call; 0: never */
	size_t this_call;
};

static int rd_cb(void *ctx, const char *name, uint64_t ino, unsigned type)
{
	struct rd *r = ctx;

	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 16;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		TU_ASSERT(r->v != NULL, "%s", "realloc");
	}
	TU_ASSERT(name != NULL && strlen(name) >= 1 && strlen(name) <= KVFS_NAME_MAX,
		  "readdir name of length %zu", name ? strlen(name) : 0);
	r->v[r->n].name = strdup(name);
	r->v[r->n].ino = ino;
	r->v[r->n].type = type;
	r->n++;
	r->this_call++;
	return r->limit && r->this_call >= r->limit;
}

static void rd_free(struct rd *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].name);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* One readdir call resuming after `after` (NULL: from the start), appending to r. */
static int rd_call(struct kvfs *fs, uint64_t ino, const char *after, struct rd *r)
{
	r->this_call = 0;
	return kvfs_readdir(fs, ino, after, rd_cb, r);
}

/* Whole listing in calls of at most `chunk` entries (0: one call). */
static void rd_all_ok(struct kvfs *fs, uint64_t ino, size_t chunk, struct rd *r)
{
	const char *after = NULL;

	memset(r, 0, sizeof(*r));
	r->limit = chunk;
	for (unsigned calls = 0;; calls++) {
		size_t before = r->n;
		int rc = rd_call(fs, ino, after, r);

		TU_ASSERT_EQ(rc, 0, "readdir ino %llu after %.40s", (unsigned long long)ino,
			     after ? after : "NULL");
		TU_ASSERT(calls < 100000, "%s", "readdir does not end");
		if (!chunk || r->n - before < chunk)
			break;
		after = r->v[r->n - 1].name;
	}
}

/* Collected kvfs_list/kvfs_scan output. */
struct ls_ent {
	char *name;
	struct kvfs_stat st;
};

struct ls {
	struct ls_ent *v;
	size_t n, cap;
	size_t limit; /* return stop_rc once this many were collected; 0: never */
	int stop_rc;
};

static int ls_cb(void *ctx, const char *name, const struct kvfs_stat *st)
{
	struct ls *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		TU_ASSERT(l->v != NULL, "%s", "realloc");
	}
	TU_ASSERT(name != NULL && st != NULL, "%s", "list/scan callback without name or stat");
	l->v[l->n].name = strdup(name);
	l->v[l->n].st = *st;
	l->n++;
	return l->limit && l->n >= l->limit ? l->stop_rc : 0;
}

static void ls_free(struct ls *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* The names of `l` joined with ',' (for comparing with a literal). */
static char *ls_join(const struct ls *l, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = 0;
	for (size_t i = 0; i < l->n && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", l->v[i].name);
	return buf;
}

static void list_is(struct kvfs *fs, const char *dir, const char *want)
{
	struct ls l = { 0 };
	char got[8192];
	int rc = kvfs_list(fs, dir, ls_cb, &l);

	TU_ASSERT_EQ(rc, 0, "kvfs_list(%s)", dir);
	ls_join(&l, got, sizeof(got));
	TU_ASSERT(strcmp(got, want) == 0, "kvfs_list(%s) = [%s], want [%s]", dir, got, want);
	ls_free(&l);
}

static void scan_is(struct kvfs *fs, const char *lo, const char *hi, const char *want)
{
	struct ls l = { 0 };
	char got[8192];
	int rc = kvfs_scan(fs, lo, hi, ls_cb, &l);

	TU_ASSERT_EQ(rc, 0, "kvfs_scan(%s, %s)", lo ? lo : "NULL", hi ? hi : "NULL");
	ls_join(&l, got, sizeof(got));
	TU_ASSERT(strcmp(got, want) == 0, "kvfs_scan(%s, %s) = [%s], want [%s]",
		  lo ? lo : "NULL", hi ? hi : "NULL", got, want);
	for (size_t i = 0; i < l.n; i++) {
		struct kvfs_stat st = walk_ok(fs, l.v[i].name);

		TU_ASSERT(!S_ISDIR(l.v[i].st.mode), "scan returned directory %s", l.v[i].name);
		TU_ASSERT_EQ(l.v[i].st.ino, st.ino, "scan ino of %s", l.v[i].name);
		TU_ASSERT_EQ(l.v[i].st.size, st.size, "scan size of %s", l.v[i].name);
		TU_ASSERT_EQ(l.v[i].st.mode, st.mode, "scan mode of %s", l.v[i].name);
	}
	ls_free(&l);
}

/* Readdir names joined with ','. */
static void readdir_is(struct kvfs *fs, uint64_t ino, const char *want)
{
	struct rd r;
	char got[8192];
	size_t n = 0;

	rd_all_ok(fs, ino, 0, &r);
	got[0] = 0;
	for (size_t i = 0; i < r.n && n < sizeof(got); i++)
		n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", i ? "," : "", r.v[i].name);
	TU_ASSERT(strcmp(got, want) == 0, "readdir(%llu) = [%s], want [%s]",
		  (unsigned long long)ino, got, want);
	rd_free(&r);
}

static unsigned dt_of(uint32_t mode)
{
	return (mode & S_IFMT) >> 12;
}

/* ---- core: keys ---------------------------------------------------------------------- */

START_TEST(test_key_put_get)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat st;
	char buf[64];
	uint8_t *big = malloc(100000);

	TU_ASSERT(big != NULL, "%s", "malloc");
	pat(big, 100000, 7, 0);
	OK(kvfs_put(fs, "a/b/c", "hello", 5));
	for (int pass = 0; pass < 2; pass++) {
		/* Parents were created as directories 0755 owned by the caller. */
		st = walk_ok(fs, "a");
		EXPECT(st.mode, S_IFDIR | 0755);
		EXPECT(st.uid, getuid());
		EXPECT(st.gid, getgid());
		EXPECT(st.nlink, 3); /* Linux: 2 + one subdirectory */
		st = walk_ok(fs, "a/b");
		EXPECT(st.mode, S_IFDIR | 0755);
		EXPECT(st.nlink, 2);
		st = walk_ok(fs, "a/b/c");
		EXPECT(st.mode, S_IFREG | 0644);
		EXPECT(st.nlink, 1);
		EXPECT(st.size, 5);
		EXPECT(st.uid, getuid());
		EXPECT(st.gid, getgid());
		GET_EQ(fs, "a/b/c", "hello", 5);
		EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 3);
		fs = ns_reopen(&n);
	}

	/* A short buffer: the size is returned, only cap bytes are written. */
	memset(buf, 'Z', sizeof(buf));
	EXPECT(kvfs_get(fs, "a/b/c", buf, 3), 5);
	MEM_EQ(buf, "helZZZ", 6, "truncated get");
	EXPECT(kvfs_get(fs, "a/b/c", buf, 0), 5);
	EXPECT(buf[0], 'h');
	EXPECT(kvfs_get(fs, "a/b/c", NULL, 0), 5);

	/* Replace: shorter, longer (block sized), back to tiny, empty. */
	OK(kvfs_put(fs, "a/b/c", "xy", 2));
	GET_EQ(fs, "a/b/c", "xy", 2);
	READ_EQ(fs, ino_ok(fs, "a/b/c"), 0, "xy", 2);
	OK(kvfs_put(fs, "a/b/c", big, 100000));
	GET_EQ(fs, "a/b/c", big, 100000);
	EXPECT(walk_ok(fs, "a/b/c").size, 100000);
	fs = ns_reopen(&n);
	GET_EQ(fs, "a/b/c", big, 100000);
	OK(kvfs_put(fs, "a/b/c", "tiny", 4));
	GET_EQ(fs, "a/b/c", "tiny", 4);
	OK(kvfs_put(fs, "a/b/c", "", 0));
	GET_EQ(fs, "a/b/c", "", 0);
	EXPECT(walk_ok(fs, "a/b/c").size, 0);
	OK(kvfs_put(fs, "a/d", "1", 1));
	fs = ns_reopen(&n);
	GET_EQ(fs, "a/b/c", "", 0);
	GET_EQ(fs, "a/d", "1", 1);

	/* exists */
	EXPECT(kvfs_exists(fs, "a"), 1);
	EXPECT(kvfs_exists(fs, "a/b"), 1);
	EXPECT(kvfs_exists(fs, "a/b/c"), 1);
	EXPECT(kvfs_exists(fs, "a/x"), 0);
	EXPECT(kvfs_exists(fs, "x/y/z"), 0);

	/* delete: files, then directories once empty. */
	OK(kvfs_delete(fs, "a/b/c"));
	EXPECT(kvfs_exists(fs, "a/b/c"), 0);
	EXPECT(kvfs_get(fs, "a/b/c", buf, sizeof(buf)), -ENOENT);
	EXPECT(kvfs_delete(fs, "a/b/c"), -ENOENT);
	EXPECT(kvfs_exists(fs, "a/b"), 1);
	EXPECT(kvfs_delete(fs, "a"), -ENOTEMPTY);
	fs = ns_reopen(&n);
	EXPECT(kvfs_exists(fs, "a/b/c"), 0);
	OK(kvfs_delete(fs, "a/b"));
	EXPECT(walk_ok(fs, "a").nlink, 2);
	OK(kvfs_delete(fs, "a/d"));
	OK(kvfs_delete(fs, "a"));
	EXPECT(kvfs_exists(fs, "a"), 0);
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 2);
	fs = ns_reopen(&n);
	EXPECT(kvfs_exists(fs, "a"), 0);
	list_is(fs, "", "");
	free(big);
	ns_done(&n);
}
END_TEST

START_TEST(test_key_errors)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	char buf[64], n255[300], n256[300], key[700];
	static const char *const bad[] = { "",	   "/",	    "/a",    "a/",     "a//b",   "d//g",
					   "a/./b", "d/./g", "a/..", "d/..", ".",	 "..",
					   "./a",   "a/../b", "d/g/", "//",   "d/g/." };

	OK(kvfs_put(fs, "f", "x", 1));
	OK(kvfs_put(fs, "d/g", "y", 1));
	name_rep(n255, 'n', 255);
	name_rep(n256, 'n', 256);
	for (int pass = 0; pass < 2; pass++) {
		EXPECT(kvfs_put(fs, "d", "x", 1), -EISDIR);
		EXPECT(kvfs_put(fs, "f/x", "x", 1), -ENOTDIR);
		EXPECT(kvfs_put(fs, "f/x/y", "x", 1), -ENOTDIR);
		EXPECT(kvfs_put(fs, "d/g/x", "x", 1), -ENOTDIR);
		EXPECT(kvfs_get(fs, "d", buf, sizeof(buf)), -EISDIR);
		EXPECT(kvfs_get(fs, "f/x", buf, sizeof(buf)), -ENOTDIR);
		EXPECT(kvfs_get(fs, "nope", buf, sizeof(buf)), -ENOENT);
		EXPECT(kvfs_get(fs, "nope/x", buf, sizeof(buf)), -ENOENT);
		EXPECT(kvfs_get(fs, "d/nope", buf, sizeof(buf)), -ENOENT);
		EXPECT(kvfs_delete(fs, "f/x"), -ENOTDIR);
		EXPECT(kvfs_delete(fs, "nope/x"), -ENOENT);
		EXPECT(kvfs_delete(fs, "d"), -ENOTEMPTY);
		EXPECT(kvfs_exists(fs, "f/x"), -ENOTDIR); /* Linux: stat("f/x") */
		EXPECT(kvfs_exists(fs, "nope/x"), 0);
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			TU_ASSERT_EQ(kvfs_put(fs, bad[i], "x", 1), -EINVAL, "put '%s'", bad[i]);
			TU_ASSERT_EQ(kvfs_get(fs, bad[i], buf, sizeof(buf)), -EINVAL, "get '%s'",
				     bad[i]);
			TU_ASSERT_EQ(kvfs_delete(fs, bad[i]), -EINVAL, "delete '%s'", bad[i]);
			TU_ASSERT_EQ(kvfs_exists(fs, bad[i]), -EINVAL, "exists '%s'", bad[i]);
		}
		/* Components of 256 bytes, anywhere in the key. */
		EXPECT(kvfs_put(fs, n256, "x", 1), -ENAMETOOLONG);
		EXPECT(kvfs_get(fs, n256, buf, sizeof(buf)), -ENAMETOOLONG);
		EXPECT(kvfs_delete(fs, n256), -ENAMETOOLONG);
		EXPECT(kvfs_exists(fs, n256), -ENAMETOOLONG);
		snprintf(key, sizeof(key), "d/%s", n256);
		EXPECT(kvfs_put(fs, key, "x", 1), -ENAMETOOLONG);
		EXPECT(kvfs_get(fs, key, buf, sizeof(buf)), -ENAMETOOLONG);
		snprintf(key, sizeof(key), "x/%s/y", n256);
		EXPECT(kvfs_put(fs, key, "x", 1), -ENAMETOOLONG);
		/* Nothing was created by the failures above. */
		list_is(fs, "", "d,f");
		list_is(fs, "d", "g");
		GET_EQ(fs, "f", "x", 1);
		GET_EQ(fs, "d/g", "y", 1);
		fs = ns_reopen(&n);
	}

	/* 255 bytes is a valid component, as a file and as a directory. */
	OK(kvfs_put(fs, n255, "long", 4));
	snprintf(key, sizeof(key), "%s/%s", "d", n255);
	OK(kvfs_put(fs, key, "deep", 4));
	snprintf(key, sizeof(key), "%s/%s/%s", "x", n255, n255);
	OK(kvfs_put(fs, key, "two", 3));
	fs = ns_reopen(&n);
	GET_EQ(fs, n255, "long", 4);
	EXPECT(kvfs_exists(fs, n255), 1);
	GET_EQ(fs, key, "two", 3);
	snprintf(key, sizeof(key), "%s/%s", "d", n255);
	GET_EQ(fs, key, "deep", 4);
	{
		struct kvfs_stat st;

		OK(kvfs_lookup(fs, KVFS_ROOT_INO, n255, &st));
		EXPECT(st.size, 4);
		EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, n256, &st), -ENAMETOOLONG);
	}
	{
		struct ls l = { 0 };

		OK(kvfs_list(fs, "", ls_cb, &l));
		EXPECT(l.n, 4);
		TU_ASSERT(strcmp(l.v[2].name, n255) == 0, "%s", "long name listed");
		ls_free(&l);
	}
	OK(kvfs_delete(fs, n255));
	EXPECT(kvfs_exists(fs, n255), 0);

	/* kvfs_list of what is not a directory. */
	{
		struct ls l = { 0 };

		EXPECT(kvfs_list(fs, "f", ls_cb, &l), -ENOTDIR);
		EXPECT(kvfs_list(fs, "f/x", ls_cb, &l), -ENOTDIR);
		EXPECT(kvfs_list(fs, "nope", ls_cb, &l), -ENOENT);
		EXPECT(kvfs_list(fs, "/d", ls_cb, &l), -EINVAL);
		EXPECT(kvfs_list(fs, "d/", ls_cb, &l), -EINVAL);
		EXPECT(kvfs_list(fs, "d/../d", ls_cb, &l), -EINVAL);
		EXPECT(l.n, 0);
	}
	ns_done(&n);
}
END_TEST

START_TEST(test_key_list_scan)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	static const char *const keys[] = { "b",	 "ab",	  "a/c",    "a/bb", "a/b/d/e",
					    "a/b/c", "a/b/ca", "a/b0/x", "aa/z", "a/a" };
	struct ls l = { 0 };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		OK(kvfs_put(fs, keys[i], keys[i], strlen(keys[i])));
	for (int pass = 0; pass < 2; pass++) {
		list_is(fs, "", "a,aa,ab,b");
		list_is(fs, "a", "a,b,b0,bb,c");
		list_is(fs, "a/b", "c,ca,d");
		list_is(fs, "a/b/d", "e");
		scan_is(fs, NULL, NULL, "a/a,a/b/c,a/b/ca,a/b/d/e,a/b0/x,a/bb,a/c,aa/z,ab,b");
		/* Bounds: lo inclusive, hi exclusive, either may name a directory or nothing. */
		scan_is(fs, "a/b/d", "ab", "a/b/d/e,a/b0/x,a/bb,a/c,aa/z");
		scan_is(fs, "a/bb", "ab", "a/bb,a/c,aa/z");
		scan_is(fs, "a/b/c", "a/b/ca", "a/b/c");
		scan_is(fs, "a/b", "a/b0", "a/b/c,a/b/ca,a/b/d/e");
		scan_is(fs, NULL, "a/b", "a/a");
		scan_is(fs, "aa", NULL, "aa/z,ab,b");
		scan_is(fs, "a/c", "a/c", "");
		scan_is(fs, "b", "a", "");
		scan_is(fs, "c", NULL, "");
		scan_is(fs, "b", NULL, "b");
		fs = ns_reopen(&n);
	}

	/* The stat passed to the callback describes the entry. */
	OK(kvfs_list(fs, "a", ls_cb, &l));
	EXPECT(l.n, 5);
	EXPECT(l.v[0].st.ino, ino_ok(fs, "a/a"));
	EXPECT(l.v[0].st.size, 3);
	EXPECT(l.v[0].st.mode, S_IFREG | 0644);
	EXPECT(l.v[1].st.ino, ino_ok(fs, "a/b"));
	EXPECT(l.v[1].st.mode, S_IFDIR | 0755);
	ls_free(&l);

	/* A callback's non-zero return stops the walk and is returned. */
	l.limit = 2;
	l.stop_rc = 42;
	EXPECT(kvfs_list(fs, "", ls_cb, &l), 42);
	EXPECT(l.n, 2);
	ls_free(&l);
	l.limit = 3;
	l.stop_rc = -7;
	EXPECT(kvfs_scan(fs, NULL, NULL, ls_cb, &l), -7);
	EXPECT(l.n, 3);
	TU_ASSERT(strcmp(l.v[2].name, "a/b/ca") == 0, "third scanned %s", l.v[2].name);
	ls_free(&l);

	/* Empty directories are not scanned; symlinks and FIFOs (non-directories) are. */
	{
		struct kvfs_stat st;

		OK(kvfs_mkdir(fs, KVFS_ROOT_INO, "e", 0755, 0, 0, &st));
		OK(kvfs_mknod(fs, st.ino, "p", S_IFIFO | 0644, 0, 0, 0, &st));
		OK(kvfs_symlink(fs, ino_ok(fs, "a"), "l", "b/c", 0, 0, &st));
	}
	fs = ns_reopen(&n);
	scan_is(fs, "a/k", "ac", "a/l,aa/z,ab");
	scan_is(fs, "d", NULL, "e/p");
	list_is(fs, "e", "p");
	ns_done(&n);
}
END_TEST

/* Compare keys in kvfs.h's key order: byte order with '/' below every other byte, i.e.
 * component by component ("a/b" < "a/b/c" < "a/c" < "a!" < "ab").  Differs from strcmp when a
 * name holds a byte below '/' ("foo/x" < "foo-bar" here, not with strcmp). */
static int key_order(const char *a, const char *b)
{
	for (;;) {
		size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
		int c = memcmp(a, b, la < lb ? la : lb);

		if (c || la != lb)
			return c ? c : la < lb ? -1 : 1;
		a += la;
		b += lb;
		if (!*a || !*b)
			return *a ? 1 : *b ? -1 : 0;
		a++;
		b++;
	}
}

/* Names with bytes below '/' ('-', '.', '!' are common in file names): kvfs_scan's order and
 * its bounds must agree, so that a scan resumed from a key it returned continues where it was
 * (pagination) and [lo, hi) is one contiguous run of the full scan. */
START_TEST(test_key_scan_order)
{
	static const char *const keys[] = { "foo/x", "foo-bar", "foo.txt", "fop", "a!/b", "a/c",
					    "a/b!/c", "a/b/c", "a/b-c" };
	const size_t nk = sizeof(keys) / sizeof(keys[0]);
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct ls full = { 0 }, part = { 0 };

	for (size_t i = 0; i < nk; i++)
		OK(kvfs_put(fs, keys[i], "v", 1));
	fs = ns_reopen(&n);
	OK(kvfs_scan(fs, NULL, NULL, ls_cb, &full));
	EXPECT(full.n, nk);
	for (size_t i = 1; i < full.n; i++)
		TU_ASSERT(key_order(full.v[i - 1].name, full.v[i].name) < 0,
			  "scan gives %s before %s", full.v[i - 1].name, full.v[i].name);
	/* Every [lo, hi) drawn from the keys is the run of the full scan between them. */
	for (size_t a = 0; a < full.n; a++) {
		for (size_t b = a; b <= full.n; b++) {
			const char *lo = full.v[a].name, *hi = b < full.n ? full.v[b].name : NULL;
			char got[512], want[512];
			size_t gn = 0, wn = 0;

			OK(kvfs_scan(fs, lo, hi, ls_cb, &part));
			got[0] = want[0] = 0;
			for (size_t i = 0; i < part.n; i++)
				gn += (size_t)snprintf(got + gn, sizeof(got) - gn, "%s ",
						       part.v[i].name);
			for (size_t i = a; i < b; i++)
				wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%s ",
						       full.v[i].name);
			TU_ASSERT(strcmp(got, want) == 0, "scan [%s, %s) = [%s], want [%s]", lo,
				  hi ? hi : "NULL", got, want);
			ls_free(&part);
		}
	}
	ls_free(&full);
	ns_done(&n);
}
END_TEST

/* ---- core: inodes -------------------------------------------------------------------- */

START_TEST(test_root)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat st, st2;
	char n256[300];

	name_rep(n256, 'r', 256);
	for (int pass = 0; pass < 2; pass++) {
		st = attr_ok(fs, KVFS_ROOT_INO);
		EXPECT(st.ino, KVFS_ROOT_INO);
		EXPECT(st.mode, S_IFDIR | 0755);
		EXPECT(st.nlink, 2);
		EXPECT(st.uid, getuid());
		EXPECT(st.gid, getgid());
		if (pass == 0)
			FRESH(st.mtime_ns);
		EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, "x", &st2), -ENOENT);
		EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, n256, &st2), -ENAMETOOLONG);
		EXPECT(kvfs_getattr(fs, 123456789, &st2), -ENOENT);
		EXPECT(kvfs_getattr(fs, 0, &st2), -ENOENT);
		EXPECT(kvfs_lookup(fs, 123456789, "x", &st2), -ENOENT);
		readdir_is(fs, KVFS_ROOT_INO, "");
		list_is(fs, "", "");
		scan_is(fs, NULL, NULL, "");
		fs = ns_reopen(&n);
	}
	/* The root's attributes survive a reopen unchanged. */
	st = attr_ok(fs, KVFS_ROOT_INO);
	fs = ns_reopen(&n);
	st2 = attr_ok(fs, KVFS_ROOT_INO);
	ST_EQ(&st2, &st);

	/* lookup through a file. */
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "f", 0644, 0, 0, 0, &st));
	EXPECT(kvfs_lookup(fs, st.ino, "x", &st2), -ENOTDIR);
	ns_done(&n);
}
END_TEST

START_TEST(test_open_flags)
{
	struct ns n;
	struct kvfs *fs, *fs2 = NULL;
	struct kvfs_options o;
	struct kvfs_stat st;
	char buf[16];

	tu_env_posix(&n.env);
	memset(&o, 0, sizeof(o));
	o.log = tu_log_cb;
	EXPECT(kvfs_open(n.env.path, &o, &fs2), -ENOENT);
	ns_open_ok(&n, KVFS_CREATE);
	fs = n.fs;
	OK(kvfs_put(fs, "k", "v", 1));
	o.flags = KVFS_CREATE;
	EXPECT(kvfs_open(n.env.path, &o, &fs2), -EBUSY);
	EXPECT(kvfs_close(fs), 0);
	n.fs = NULL;

	ns_open_ok(&n, KVFS_RDONLY);
	fs = n.fs;
	GET_EQ(fs, "k", "v", 1);
	EXPECT(kvfs_put(fs, "k", "w", 1), -EROFS);
	EXPECT(kvfs_put(fs, "new", "w", 1), -EROFS);
	EXPECT(kvfs_delete(fs, "k"), -EROFS);
	EXPECT(kvfs_mknod(fs, KVFS_ROOT_INO, "m", 0644, 0, 0, 0, &st), -EROFS);
	EXPECT(kvfs_write(fs, ino_ok(fs, "k"), "z", 1, 0), -EROFS);
	EXPECT(kvfs_get(fs, "k", buf, sizeof(buf)), 1);
	ns_done(&n);
}
END_TEST

START_TEST(test_mknod_mkdir)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat f, p, c, s, d, e, z, st, g, gf, gd, gdf;
	char n255[300], n256[300];
	struct rd r;

	name_rep(n255, 'z', 255);
	name_rep(n256, 'z', 256);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "f", 0640, 0, 1000, 1001, &f));
	EXPECT(f.mode, S_IFREG | 0640);
	EXPECT(f.nlink, 1);
	EXPECT(f.uid, 1000);
	EXPECT(f.gid, 1001);
	EXPECT(f.size, 0);
	EXPECT(f.blocks, 0);
	FRESH(f.mtime_ns);
	FRESH(f.ctime_ns);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "p", S_IFIFO | 0600, 0, 0, 0, &p));
	EXPECT(p.mode, S_IFIFO | 0600);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "c", S_IFCHR | 0620, makedev(4, 5), 0, 5, &c));
	EXPECT(c.mode, S_IFCHR | 0620);
	EXPECT(c.rdev, makedev(4, 5));
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "s", S_IFSOCK | 0755, 0, 0, 0, &s));
	EXPECT(s.mode, S_IFSOCK | 0755);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "r", S_IFREG | 01755, 0, 0, 0, &st));
	EXPECT(st.mode, S_IFREG | 01755);
	OK(kvfs_mkdir(fs, KVFS_ROOT_INO, "d", 0750, 1000, 1001, &d));
	EXPECT(d.mode, S_IFDIR | 0750);
	EXPECT(d.nlink, 2);
	EXPECT(d.uid, 1000);
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 3);
	OK(kvfs_mkdir(fs, d.ino, "e", 0700, 0, 0, &e));
	EXPECT(attr_ok(fs, d.ino).nlink, 3);
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 3);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, n255, 0644, 0, 0, 0, &z));

	/* All distinct inode numbers, none the root's. */
	{
		uint64_t inos[] = { f.ino, p.ino, c.ino, s.ino, st.ino, d.ino, e.ino, z.ino, 1 };

		for (size_t i = 0; i < 9; i++)
			for (size_t j = i + 1; j < 9; j++)
				TU_ASSERT(inos[i] != inos[j], "inode %llu given twice",
					  (unsigned long long)inos[i]);
	}

	/* Errors: exists, bad parent, long name, a type mknod does not make. */
	for (int pass = 0; pass < 2; pass++) {
		EXPECT(kvfs_mknod(fs, KVFS_ROOT_INO, "f", 0644, 0, 0, 0, &st), -EEXIST);
		EXPECT(kvfs_mknod(fs, KVFS_ROOT_INO, "d", 0644, 0, 0, 0, &st), -EEXIST);
		EXPECT(kvfs_mkdir(fs, KVFS_ROOT_INO, "f", 0755, 0, 0, &st), -EEXIST);
		EXPECT(kvfs_mkdir(fs, KVFS_ROOT_INO, "d", 0755, 0, 0, &st), -EEXIST);
		EXPECT(kvfs_symlink(fs, KVFS_ROOT_INO, "d", "t", 0, 0, &st), -EEXIST);
		EXPECT(kvfs_mknod(fs, f.ino, "x", 0644, 0, 0, 0, &st), -ENOTDIR);
		EXPECT(kvfs_mkdir(fs, f.ino, "x", 0755, 0, 0, &st), -ENOTDIR);
		EXPECT(kvfs_symlink(fs, f.ino, "x", "t", 0, 0, &st), -ENOTDIR);
		EXPECT(kvfs_mknod(fs, 987654321, "x", 0644, 0, 0, 0, &st), -ENOENT);
		EXPECT(kvfs_mkdir(fs, 987654321, "x", 0755, 0, 0, &st), -ENOENT);
		EXPECT(kvfs_mknod(fs, KVFS_ROOT_INO, n256, 0644, 0, 0, 0, &st), -ENAMETOOLONG);
		EXPECT(kvfs_mkdir(fs, KVFS_ROOT_INO, n256, 0755, 0, 0, &st), -ENAMETOOLONG);
		EXPECT(kvfs_mknod(fs, KVFS_ROOT_INO, "l", S_IFLNK | 0777, 0, 0, 0, &st), -EINVAL);
		EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, "l", &st), -ENOENT);

		/* Everything as created, through getattr, lookup and readdir. */
		st = attr_ok(fs, f.ino);
		ST_EQ(&st, &f);
		OK(kvfs_lookup(fs, KVFS_ROOT_INO, "f", &st));
		ST_EQ(&st, &f);
		OK(kvfs_lookup(fs, KVFS_ROOT_INO, "c", &st));
		ST_EQ(&st, &c);
		OK(kvfs_lookup(fs, KVFS_ROOT_INO, "p", &st));
		ST_EQ(&st, &p);
		OK(kvfs_lookup(fs, KVFS_ROOT_INO, "s", &st));
		ST_EQ(&st, &s);
		OK(kvfs_lookup(fs, d.ino, "e", &st));
		EXPECT(st.ino, e.ino);
		EXPECT(st.mode, S_IFDIR | 0700);
		OK(kvfs_lookup(fs, KVFS_ROOT_INO, n255, &st));
		ST_EQ(&st, &z);
		rd_all_ok(fs, KVFS_ROOT_INO, 0, &r);
		EXPECT(r.n, 7);
		{
			static const char *const names[] = { "c", "d", "f", "p", "r", "s" };
			uint64_t inos[] = { c.ino, d.ino, f.ino, p.ino, 0, s.ino };
			unsigned types[] = { DT_CHR, DT_DIR, DT_REG, DT_FIFO, DT_REG, DT_SOCK };

			for (size_t i = 0; i < 6; i++) {
				TU_ASSERT(strcmp(r.v[i].name, names[i]) == 0, "entry %zu is %s", i,
					  r.v[i].name);
				if (inos[i])
					EXPECT(r.v[i].ino, inos[i]);
				EXPECT(r.v[i].type, types[i]);
			}
			TU_ASSERT(strcmp(r.v[6].name, n255) == 0, "%s", "long name last");
		}
		rd_free(&r);
		fs = ns_reopen(&n);
	}

	/* A set-group-ID directory passes its gid down, and the bit to directories. */
	OK(kvfs_mkdir(fs, KVFS_ROOT_INO, "g", 0775, 0, 500, &g));
	{
		struct kvfs_stat sa;

		memset(&sa, 0, sizeof(sa));
		sa.mode = 02775;
		OK(kvfs_setattr(fs, g.ino, &sa, KVFS_SET_MODE, &g));
		EXPECT(g.mode, S_IFDIR | 02775);
	}
	OK(kvfs_mknod(fs, g.ino, "f", 0644, 0, 7, 8, &gf));
	EXPECT(gf.uid, 7);
	EXPECT(gf.gid, 500);
	EXPECT(gf.mode, S_IFREG | 0644);
	OK(kvfs_mkdir(fs, g.ino, "sub", 0755, 7, 8, &gd));
	EXPECT(gd.gid, 500);
	EXPECT(gd.mode, S_IFDIR | S_ISGID | 0755);
	OK(kvfs_symlink(fs, gd.ino, "l", "x", 7, 8, &gdf));
	EXPECT(gdf.gid, 500);
	OK(kvfs_mknod(fs, gd.ino, "f", 0600, 0, 7, 8, &gdf));
	EXPECT(gdf.gid, 500);
	OK(kvfs_mknod(fs, d.ino, "plain", 0600, 0, 7, 8, &st));
	EXPECT(st.gid, 8);
	fs = ns_reopen(&n);
	EXPECT(attr_ok(fs, gd.ino).mode, S_IFDIR | S_ISGID | 0755);
	EXPECT(attr_ok(fs, gdf.ino).gid, 500);
	ns_done(&n);
}
END_TEST

START_TEST(test_symlink)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat l, l2, st;
	char buf[4096], target[3001];
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");

	for (size_t i = 0; i < 3000; i++)
		target[i] = (char)('a' + i % 26);
	target[3000] = 0;
	OK(kvfs_symlink(fs, KVFS_ROOT_INO, "l", "target/x", 11, 12, &l));
	EXPECT(l.mode & S_IFMT, S_IFLNK);
	EXPECT(l.mode & 07777, 0777); /* Linux: symlinks are lrwxrwxrwx */
	EXPECT(l.size, 8);
	EXPECT(l.nlink, 1);
	EXPECT(l.uid, 11);
	EXPECT(l.gid, 12);
	OK(kvfs_symlink(fs, d, "long", target, 0, 0, &l2));
	EXPECT(l2.size, 3000);
	for (int pass = 0; pass < 2; pass++) {
		memset(buf, 'Q', sizeof(buf));
		EXPECT(kvfs_readlink(fs, l.ino, buf, sizeof(buf)), 8);
		MEM_EQ(buf, "target/xQ", 9, "readlink");
		EXPECT(kvfs_readlink(fs, l2.ino, buf, sizeof(buf)), 3000);
		MEM_EQ(buf, target, 3000, "readlink long");
		EXPECT(kvfs_readlink(fs, f, buf, sizeof(buf)), -EINVAL);
		EXPECT(kvfs_readlink(fs, d, buf, sizeof(buf)), -EINVAL);
		EXPECT(kvfs_readlink(fs, 987654321, buf, sizeof(buf)), -ENOENT);
		EXPECT(kvfs_read(fs, l.ino, buf, sizeof(buf), 0), -EINVAL);
		EXPECT(kvfs_write(fs, l.ino, "x", 1, 0), -EINVAL);
		OK(kvfs_lookup(fs, KVFS_ROOT_INO, "l", &st));
		ST_EQ(&st, &l);
		{
			struct rd r;

			rd_all_ok(fs, KVFS_ROOT_INO, 0, &r);
			EXPECT(r.n, 3);
			EXPECT(r.v[2].type, DT_LNK);
			EXPECT(r.v[2].ino, l.ino);
			rd_free(&r);
		}
		fs = ns_reopen(&n);
	}
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "l"));
	EXPECT(kvfs_readlink(fs, l.ino, buf, sizeof(buf)), -ENOENT);
	ns_done(&n);
}
END_TEST

START_TEST(test_link_unlink)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat st;
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");
	uint64_t p;

	EXPECT(write_s(fs, f, "data", 0), 4);
	OK(set_times(fs, f, 1000, 2000, 3000));
	OK(kvfs_link(fs, f, d, "g", &st));
	EXPECT(st.ino, f);
	EXPECT(st.nlink, 2);
	TU_ASSERT(st.ctime_ns > 3000, "%s", "link updates ctime"); /* Linux */
	EXPECT(st.mtime_ns, 2000);
	OK(kvfs_link(fs, f, d, "h", &st));
	EXPECT(st.nlink, 3);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "p", S_IFIFO | 0644, 0, 0, 0, &st));
	p = st.ino;
	OK(kvfs_link(fs, p, d, "p2", &st)); /* any non-directory may be linked */
	EXPECT(st.nlink, 2);
	for (int pass = 0; pass < 2; pass++) {
		EXPECT(attr_ok(fs, f).nlink, 3);
		EXPECT(ino_ok(fs, "d/g"), f);
		EXPECT(ino_ok(fs, "d/h"), f);
		GET_EQ(fs, "d/g", "data", 4);
		EXPECT(attr_ok(fs, d).nlink, 2); /* links to files do not count */
		EXPECT(kvfs_link(fs, f, KVFS_ROOT_INO, "f", &st), -EEXIST);
		EXPECT(kvfs_link(fs, f, KVFS_ROOT_INO, "d", &st), -EEXIST);
		EXPECT(kvfs_link(fs, d, KVFS_ROOT_INO, "dd", &st), -EPERM);
		EXPECT(kvfs_link(fs, KVFS_ROOT_INO, d, "root", &st), -EPERM);
		EXPECT(kvfs_link(fs, f, f, "x", &st), -ENOTDIR);
		EXPECT(kvfs_link(fs, f, 987654321, "x", &st), -ENOENT);
		EXPECT(kvfs_link(fs, 987654321, KVFS_ROOT_INO, "x", &st), -ENOENT);
		EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, "dd", &st), -ENOENT);
		fs = ns_reopen(&n);
	}

	/* A write through one name is seen through the others (one inode). */
	EXPECT(write_s(fs, ino_ok(fs, "d/h"), "DA", 0), 2);
	GET_EQ(fs, "f", "DAta", 4);

	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "f"));
	EXPECT(attr_ok(fs, f).nlink, 2);
	EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, "f", &st), -ENOENT);
	GET_EQ(fs, "d/g", "DAta", 4);
	EXPECT(kvfs_unlink(fs, KVFS_ROOT_INO, "f"), -ENOENT);
	EXPECT(kvfs_unlink(fs, KVFS_ROOT_INO, "d"), -EISDIR);
	EXPECT(kvfs_unlink(fs, f, "x"), -ENOTDIR);
	EXPECT(kvfs_unlink(fs, 987654321, "x"), -ENOENT);
	fs = ns_reopen(&n);
	EXPECT(attr_ok(fs, f).nlink, 2);
	OK(kvfs_unlink(fs, d, "g"));
	OK(kvfs_unlink(fs, d, "h"));
	EXPECT(kvfs_getattr(fs, f, &st), -ENOENT);
	EXPECT(kvfs_read(fs, f, &st, 1, 0), -ENOENT);
	OK(kvfs_unlink(fs, d, "p2"));
	EXPECT(attr_ok(fs, p).nlink, 1);
	readdir_is(fs, d, "");
	readdir_is(fs, KVFS_ROOT_INO, "d,p");
	fs = ns_reopen(&n);
	EXPECT(kvfs_getattr(fs, f, &st), -ENOENT);
	readdir_is(fs, d, "");
	ns_done(&n);
}
END_TEST

START_TEST(test_rmdir)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat st;
	uint64_t d, e, f;

	OK(kvfs_put(fs, "d/e/f", "x", 1));
	d = ino_ok(fs, "d");
	e = ino_ok(fs, "d/e");
	f = ino_ok(fs, "d/e/f");
	for (int pass = 0; pass < 2; pass++) {
		EXPECT(kvfs_rmdir(fs, KVFS_ROOT_INO, "d"), -ENOTEMPTY);
		EXPECT(kvfs_rmdir(fs, d, "e"), -ENOTEMPTY);
		EXPECT(kvfs_rmdir(fs, e, "f"), -ENOTDIR);
		EXPECT(kvfs_rmdir(fs, KVFS_ROOT_INO, "zz"), -ENOENT);
		EXPECT(kvfs_rmdir(fs, f, "x"), -ENOTDIR);
		EXPECT(kvfs_rmdir(fs, 987654321, "x"), -ENOENT);
		EXPECT(attr_ok(fs, d).nlink, 3);
		fs = ns_reopen(&n);
	}
	OK(kvfs_unlink(fs, e, "f"));
	OK(set_times(fs, d, 10, 20, 30));
	OK(kvfs_rmdir(fs, d, "e"));
	st = attr_ok(fs, d);
	EXPECT(st.nlink, 2);
	FRESH(st.mtime_ns); /* Linux: removing an entry updates the directory's mtime */
	FRESH(st.ctime_ns);
	EXPECT(kvfs_getattr(fs, e, &st), -ENOENT);
	EXPECT(kvfs_lookup(fs, d, "e", &st), -ENOENT);
	EXPECT(kvfs_mknod(fs, e, "x", 0644, 0, 0, 0, &st), -ENOENT);
	{
		struct rd r = { 0 };

		EXPECT(rd_call(fs, e, NULL, &r), -ENOENT);
		rd_free(&r);
	}
	EXPECT(kvfs_rmdir(fs, d, "e"), -ENOENT);
	fs = ns_reopen(&n);
	EXPECT(kvfs_getattr(fs, e, &st), -ENOENT);
	OK(kvfs_rmdir(fs, KVFS_ROOT_INO, "d"));
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 2);
	fs = ns_reopen(&n);
	EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, "d", &st), -ENOENT);
	EXPECT(kvfs_getattr(fs, d, &st), -ENOENT);
	readdir_is(fs, KVFS_ROOT_INO, "");
	ns_done(&n);
}
END_TEST

START_TEST(test_rename_files)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat st;
	uint64_t a, b, c, d, lnk;
	char n256[300];

	name_rep(n256, 'q', 256);
	OK(kvfs_put(fs, "a", "AAAA", 4));
	OK(kvfs_put(fs, "b", "BB", 2));
	OK(kvfs_put(fs, "c", "C", 1));
	OK(kvfs_put(fs, "d/x", "X", 1));
	a = ino_ok(fs, "a");
	b = ino_ok(fs, "b");
	c = ino_ok(fs, "c");
	d = ino_ok(fs, "d");

	/* Plain, in one directory and across directories. */
	OK(set_times(fs, a, 1, 2, 3));
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "a", KVFS_ROOT_INO, "a2", 0));
	EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, "a", &st), -ENOENT);
	EXPECT(ino_ok(fs, "a2"), a);
	st = attr_ok(fs, a);
	EXPECT(st.mtime_ns, 2);
	TU_ASSERT(st.ctime_ns > 3, "%s", "rename updates the inode's ctime (Linux)");
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "a2", d, "a3", 0));
	fs = ns_reopen(&n);
	EXPECT(ino_ok(fs, "d/a3"), a);
	GET_EQ(fs, "d/a3", "AAAA", 4);
	readdir_is(fs, KVFS_ROOT_INO, "b,c,d");
	readdir_is(fs, d, "a3,x");

	/* Over an existing file: the replaced inode is gone. */
	OK(kvfs_rename(fs, d, "a3", KVFS_ROOT_INO, "b", 0));
	EXPECT(ino_ok(fs, "b"), a);
	GET_EQ(fs, "b", "AAAA", 4);
	EXPECT(kvfs_getattr(fs, b, &st), -ENOENT);
	fs = ns_reopen(&n);
	EXPECT(kvfs_getattr(fs, b, &st), -ENOENT);
	readdir_is(fs, KVFS_ROOT_INO, "b,c,d");
	readdir_is(fs, d, "x");

	/* Flags. */
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "b", KVFS_ROOT_INO, "c", KVFS_RENAME_NOREPLACE),
	       -EEXIST);
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "b", KVFS_ROOT_INO, "c",
			   KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE),
	       -EINVAL);
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "b", KVFS_ROOT_INO, "new", KVFS_RENAME_EXCHANGE),
	       -ENOENT);
	GET_EQ(fs, "b", "AAAA", 4);
	GET_EQ(fs, "c", "C", 1);
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "b", KVFS_ROOT_INO, "b2", KVFS_RENAME_NOREPLACE));
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "b2", KVFS_ROOT_INO, "c", KVFS_RENAME_EXCHANGE));
	GET_EQ(fs, "c", "AAAA", 4);
	GET_EQ(fs, "b2", "C", 1);
	EXPECT(ino_ok(fs, "b2"), c);
	EXPECT(ino_ok(fs, "c"), a);

	/* Errors of the arguments. */
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "nope", KVFS_ROOT_INO, "z", 0), -ENOENT);
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "nope", KVFS_ROOT_INO, "c", KVFS_RENAME_EXCHANGE),
	       -ENOENT);
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "c", a, "z", 0), -ENOTDIR);
	EXPECT(kvfs_rename(fs, a, "z", KVFS_ROOT_INO, "c", 0), -ENOTDIR);
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "c", 987654321, "z", 0), -ENOENT);
	EXPECT(kvfs_rename(fs, 987654321, "z", KVFS_ROOT_INO, "y", 0), -ENOENT);
	EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "c", KVFS_ROOT_INO, n256, 0), -ENAMETOOLONG);

	/* Onto itself, and onto a hard link of itself: nothing happens, both names stay. */
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "c", KVFS_ROOT_INO, "c", 0));
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "c", KVFS_ROOT_INO, "c", KVFS_RENAME_EXCHANGE));
	OK(kvfs_link(fs, a, d, "hl", &st));
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "c", d, "hl", 0));
	OK(kvfs_rename(fs, d, "hl", KVFS_ROOT_INO, "c", 0));
	OK(kvfs_rename(fs, d, "hl", KVFS_ROOT_INO, "c", KVFS_RENAME_EXCHANGE));
	EXPECT(kvfs_rename(fs, d, "hl", KVFS_ROOT_INO, "c", KVFS_RENAME_NOREPLACE), -EEXIST);
	fs = ns_reopen(&n);
	EXPECT(ino_ok(fs, "c"), a);
	EXPECT(ino_ok(fs, "d/hl"), a);
	EXPECT(attr_ok(fs, a).nlink, 2);
	readdir_is(fs, KVFS_ROOT_INO, "b2,c,d");
	readdir_is(fs, d, "hl,x");

	/* A file renamed over one of two names of another inode: that inode keeps one link. */
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "b2", d, "hl", 0));
	EXPECT(attr_ok(fs, a).nlink, 1);
	EXPECT(ino_ok(fs, "d/hl"), c);
	GET_EQ(fs, "c", "AAAA", 4);

	/* A symlink is renamed like a file. */
	OK(kvfs_symlink(fs, KVFS_ROOT_INO, "s", "c", 0, 0, &st));
	lnk = st.ino;
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "s", d, "s2", 0));
	fs = ns_reopen(&n);
	EXPECT(ino_ok(fs, "d/s2"), lnk);
	readdir_is(fs, KVFS_ROOT_INO, "c,d");
	readdir_is(fs, d, "hl,s2,x");
	ns_done(&n);
}
END_TEST

START_TEST(test_rename_dirs)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_stat st;
	uint64_t a, ab, abc, e, f, x;

	OK(kvfs_put(fs, "a/b/c/file", "F", 1));
	OK(kvfs_put(fs, "x/file", "XF", 2));
	OK(kvfs_put(fs, "f", "ff", 2));
	a = ino_ok(fs, "a");
	ab = ino_ok(fs, "a/b");
	abc = ino_ok(fs, "a/b/c");
	x = ino_ok(fs, "x");
	f = ino_ok(fs, "f");
	e = mkdir_ok(fs, KVFS_ROOT_INO, "e");
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 5); /* a, x, e */

	for (int pass = 0; pass < 2; pass++) {
		/* Into its own subtree. */
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "a", a, "z", 0), -EINVAL);
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "a", ab, "z", 0), -EINVAL);
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "a", abc, "z", 0), -EINVAL);
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "a", abc, "z", KVFS_RENAME_NOREPLACE),
		       -EINVAL);
		EXPECT(kvfs_rename(fs, a, "b", abc, "file", KVFS_RENAME_EXCHANGE), -EINVAL);
		/* Over an ancestor of itself (Linux: -ENOTEMPTY; exchange: -EINVAL). */
		EXPECT(kvfs_rename(fs, ab, "c", KVFS_ROOT_INO, "a", 0), -ENOTEMPTY);
		/* A file over its own ancestor (Linux: -ENOTEMPTY; rename(2) allows -EISDIR). */
		EXPECT(kvfs_rename(fs, abc, "file", KVFS_ROOT_INO, "a", 0), -ENOTEMPTY);
		EXPECT(kvfs_rename(fs, abc, "file", KVFS_ROOT_INO, "a", KVFS_RENAME_EXCHANGE),
		       -EINVAL);
		/* Over a non-empty directory, type mismatches. */
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "e", KVFS_ROOT_INO, "x", 0), -ENOTEMPTY);
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "f", KVFS_ROOT_INO, "e", 0), -EISDIR);
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "f", KVFS_ROOT_INO, "x", 0), -EISDIR);
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "e", KVFS_ROOT_INO, "f", 0), -ENOTDIR);
		EXPECT(kvfs_rename(fs, KVFS_ROOT_INO, "x", x, "file", 0), -EINVAL);
		EXPECT(kvfs_rename(fs, ab, "c", a, "b", 0), -ENOTEMPTY);
		EXPECT(ino_ok(fs, "a/b/c"), abc);
		GET_EQ(fs, "f", "ff", 2);
		fs = ns_reopen(&n);
	}

	/* A directory over an empty directory; link counts follow. */
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "a", x, "sub", 0)); /* a moves into x */
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 4);
	EXPECT(attr_ok(fs, x).nlink, 3);
	OK(kvfs_rename(fs, x, "sub", KVFS_ROOT_INO, "e", 0)); /* back, replacing empty e */
	EXPECT(kvfs_getattr(fs, e, &st), -ENOENT);
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 4);
	EXPECT(attr_ok(fs, x).nlink, 2);
	EXPECT(ino_ok(fs, "e"), a);
	GET_EQ(fs, "e/b/c/file", "F", 1);
	EXPECT(kvfs_exists(fs, "a"), 0);
	fs = ns_reopen(&n);
	GET_EQ(fs, "e/b/c/file", "F", 1);
	EXPECT(ino_ok(fs, "e/b/c"), abc);
	readdir_is(fs, KVFS_ROOT_INO, "e,f,x");
	scan_is(fs, NULL, NULL, "e/b/c/file,f,x/file");

	/* EXCHANGE a file and a directory in different parents. */
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "f", ab, "c", KVFS_RENAME_EXCHANGE));
	EXPECT(ino_ok(fs, "f"), abc);
	EXPECT(ino_ok(fs, "e/b/c"), f);
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 5); /* gained directory f */
	EXPECT(attr_ok(fs, ab).nlink, 2);            /* lost directory c */
	GET_EQ(fs, "f/file", "F", 1);
	GET_EQ(fs, "e/b/c", "ff", 2);
	fs = ns_reopen(&n);
	GET_EQ(fs, "f/file", "F", 1);
	GET_EQ(fs, "e/b/c", "ff", 2);
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 5);
	EXPECT(attr_ok(fs, ab).nlink, 2);
	scan_is(fs, NULL, NULL, "e/b/c,f/file,x/file");

	/* EXCHANGE two directories: subtrees follow. */
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "f", KVFS_ROOT_INO, "x", KVFS_RENAME_EXCHANGE));
	GET_EQ(fs, "x/file", "F", 1);
	GET_EQ(fs, "f/file", "XF", 2);
	/* A moved directory can be moved again and emptied (its parent pointer is right). */
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "x", ab, "back", 0));
	EXPECT(attr_ok(fs, ab).nlink, 3);
	OK(kvfs_rename(fs, ab, "back", KVFS_ROOT_INO, "x", 0));
	EXPECT(attr_ok(fs, ab).nlink, 2);
	OK(kvfs_delete(fs, "x/file"));
	OK(kvfs_rmdir(fs, KVFS_ROOT_INO, "x"));
	EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 4);
	fs = ns_reopen(&n);
	readdir_is(fs, KVFS_ROOT_INO, "e,f");
	scan_is(fs, NULL, NULL, "e/b/c,f/file");
	ns_done(&n);
}
END_TEST

/* ---- core: data ---------------------------------------------------------------------- */

START_TEST(test_read_write)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint8_t want[20000], buf[20100];
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");
	struct kvfs_stat st;

	memset(want, 0, sizeof(want));
	EXPECT(write_s(fs, f, "abc", 0), 3);
	memcpy(want, "abc", 3);
	EXPECT(attr_ok(fs, f).size, 3);
	EXPECT(write_s(fs, f, "XYZ", 10), 3); /* a 7-byte hole */
	memcpy(want + 10, "XYZ", 3);
	EXPECT(attr_ok(fs, f).size, 13);
	READ_EQ(fs, f, 0, want, 13);
	READ_EQ(fs, f, 11, "YZ", 2);
	READ_EQ(fs, f, 13, "", 0);
	READ_EQ(fs, f, 1000, "", 0);
	EXPECT(kvfs_read(fs, f, buf, 0, 0), 0);
	EXPECT(kvfs_read(fs, f, buf, 5, 3), 5);
	MEM_EQ(buf, "\0\0\0\0\0", 5, "hole");
	/* A zero-length write past the end does not extend the file (Linux). */
	EXPECT(kvfs_write(fs, f, "", 0, 100), 0);
	EXPECT(attr_ok(fs, f).size, 13);
	fs = ns_reopen(&n);
	READ_EQ(fs, f, 0, want, 13);

	/* Writes past the end extend; the gap reads as zeros, across a page boundary. */
	pat(want + 5000, 100, 1, 5000);
	EXPECT(kvfs_write(fs, f, want + 5000, 100, 5000), 100);
	EXPECT(attr_ok(fs, f).size, 5100);
	READ_EQ(fs, f, 0, want, 5100);
	/* Overwrite in the middle, and across page boundaries. */
	EXPECT(write_s(fs, f, "QQ", 2), 2);
	memcpy(want + 2, "QQ", 2);
	pat(want + 4090, 12, 2, 4090);
	EXPECT(kvfs_write(fs, f, want + 4090, 12, 4090), 12);
	pat(want + 8000, 9000, 3, 8000);
	EXPECT(kvfs_write(fs, f, want + 8000, 9000, 8000), 9000);
	EXPECT(attr_ok(fs, f).size, 17000);
	READ_EQ(fs, f, 0, want, 17000);
	READ_EQ(fs, f, 4095, want + 4095, 17000 - 4095);
	READ_EQ(fs, f, 8191, want + 8191, 17000 - 8191);
	fs = ns_reopen(&n);
	READ_EQ(fs, f, 0, want, 17000);
	/* Partial reads end where asked. */
	EXPECT(kvfs_read(fs, f, buf, 4097, 4000), 4097);
	MEM_EQ(buf, want + 4000, 4097, "partial read");

	/* Not regular files, missing inodes. */
	EXPECT(kvfs_read(fs, d, buf, 10, 0), -EISDIR);
	EXPECT(kvfs_write(fs, d, "x", 1, 0), -EISDIR);
	EXPECT(kvfs_read(fs, KVFS_ROOT_INO, buf, 10, 0), -EISDIR);
	EXPECT(kvfs_read(fs, 987654321, buf, 10, 0), -ENOENT);
	EXPECT(kvfs_write(fs, 987654321, "x", 1, 0), -ENOENT);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "p", S_IFIFO | 0644, 0, 0, 0, &st));
	EXPECT(kvfs_read(fs, st.ino, buf, 10, 0), -EINVAL);
	EXPECT(kvfs_write(fs, st.ino, "x", 1, 0), -EINVAL);
	/* The key API sees what the inode API wrote. */
	GET_EQ(fs, "f", want, 17000);
	ns_done(&n);
}
END_TEST

/* Every pair of sizes around a page: fill to a, truncate to b, extend to the largest; the
 * bytes past b must read as zeros afterwards (no stale tail from the old contents). */
START_TEST(test_truncate)
{
	static const uint64_t sizes[] = { 0,    1,    100,  2047, 2048, 2049, 4095,
					  4096, 4097, 8191, 8192, 8193, 102400 };
	const size_t ns_ = sizeof(sizes) / sizeof(sizes[0]);
	const uint64_t max = 102400;
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint8_t *want = malloc(max), *buf = malloc(max + 100);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");
	struct kvfs_stat sa, st;

	TU_ASSERT(want && buf, "%s", "malloc");
	for (size_t i = 0; i < ns_; i++) {
		for (size_t j = 0; j < ns_; j++) {
			uint64_t a = sizes[i], b = sizes[j];

			set_size_ok(fs, f, 0);
			pat(want, a, i * 16 + j, 0);
			if (a)
				EXPECT(kvfs_write(fs, f, want, a, 0), (ssize_t)a);
			st = set_size_ok(fs, f, b);
			if (b > a)
				memset(want + a, 0, b - a);
			READ_EQ(fs, f, 0, want, b);
			if ((i + j) % 7 == 0) {
				fs = ns_reopen(&n);
				READ_EQ(fs, f, 0, want, b);
			}
			set_size_ok(fs, f, max);
			memset(want + b, 0, max - b);
			READ_EQ(fs, f, 0, want, max);
			TU_ASSERT(kvfs_read(fs, f, buf, max, 0) == (ssize_t)max,
				  "a %llu b %llu", (unsigned long long)a, (unsigned long long)b);
		}
	}

	/* Errors. */
	memset(&sa, 0, sizeof(sa));
	sa.size = 10;
	EXPECT(kvfs_setattr(fs, d, &sa, KVFS_SET_SIZE, &st), -EISDIR);
	EXPECT(kvfs_setattr(fs, 987654321, &sa, KVFS_SET_SIZE, &st), -ENOENT);
	OK(kvfs_mknod(fs, KVFS_ROOT_INO, "p", S_IFIFO | 0644, 0, 0, 0, &st));
	EXPECT(kvfs_setattr(fs, st.ino, &sa, KVFS_SET_SIZE, &st), -EINVAL);
	sa.size = KVFS_MAX_FILE + 1;
	EXPECT(kvfs_setattr(fs, f, &sa, KVFS_SET_SIZE, &st), -EFBIG);
	EXPECT(attr_ok(fs, f).size, max);
	free(want);
	free(buf);
	ns_done(&n);
}
END_TEST

/* A file grown from nothing to 100 KiB by appends of odd sizes and shrunk back: contents at
 * every step, blocks as the header defines them. */
START_TEST(test_grow_shrink)
{
	static const size_t chunks[] = { 1, 7, 100, 511, 1000, 3000, 4096, 5000, 333 };
	static const uint64_t shrink[] = { 70000, 8193, 4097, 4096, 4095, 2049,
					   2048,  2047, 1000, 100,  1,    0 };
	const size_t max = 102400;
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint8_t *want = malloc(max + 64);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t ps = page_size_ok(fs), size = 0;
	struct kvfs_stat st;

	TU_ASSERT(want != NULL, "%s", "malloc");
	pat(want, max, 99, 0);
	for (unsigned k = 0; size < max; k++) {
		size_t c = chunks[k % (sizeof(chunks) / sizeof(chunks[0]))];

		if (c > max - size)
			c = max - size;
		EXPECT(kvfs_write(fs, f, want + size, c, size), (ssize_t)c);
		size += c;
		st = attr_ok(fs, f);
		EXPECT(st.size, size);
		if (size <= 100)
			EXPECT(st.blocks, 0); /* inline (DESIGN: 100 bytes cost ~100) */
		else if (st.blocks) /* no holes: every byte is in an allocated block */
			TU_ASSERT(st.blocks * 512 >= size, "size %llu blocks %llu",
				  (unsigned long long)size, (unsigned long long)st.blocks);
		READ_EQ(fs, f, 0, want, size);
		if (k % 11 == 5)
			fs = ns_reopen(&n);
	}
	st = attr_ok(fs, f);
	TU_ASSERT(st.blocks * 512 >= max && st.blocks * 512 <= 2 * max + 4 * ps,
		  "100 KiB file has %llu blocks", (unsigned long long)st.blocks);
	fs = ns_reopen(&n);
	READ_EQ(fs, f, 0, want, max);
	GET_EQ(fs, "f", want, max);

	for (size_t i = 0; i < sizeof(shrink) / sizeof(shrink[0]); i++) {
		uint64_t s = shrink[i];

		st = set_size_ok(fs, f, s);
		READ_EQ(fs, f, 0, want, s);
		/* No block is kept past the end of the file. */
		TU_ASSERT(st.blocks * 512 <= (s + ps - 1) / ps * ps,
			  "size %llu keeps %llu blocks", (unsigned long long)s,
			  (unsigned long long)st.blocks);
		if (i % 2)
			fs = ns_reopen(&n);
		st = attr_ok(fs, f);
		EXPECT(st.size, s);
	}
	EXPECT(attr_ok(fs, f).blocks, 0);
	/* Grow again from 0: nothing of the old contents shows. */
	set_size_ok(fs, f, 9000);
	memset(want, 0, 9000);
	READ_EQ(fs, f, 0, want, 9000);
	EXPECT(write_s(fs, f, "end", 8997), 3);
	memcpy(want + 8997, "end", 3);
	fs = ns_reopen(&n);
	READ_EQ(fs, f, 0, want, 9000);

	/* The same transitions through kvfs_put. */
	pat(want, max, 5, 0);
	{
		static const size_t puts[] = { 1,    100,    2048, 2049, 4095, 4096, 4097,
					       102400, 5000, 2047, 1,    0,    8192 };

		for (size_t i = 0; i < sizeof(puts) / sizeof(puts[0]); i++) {
			OK(kvfs_put(fs, "k", want + i, puts[i]));
			GET_EQ(fs, "k", want + i, puts[i]);
			if (i % 3 == 2) {
				fs = ns_reopen(&n);
				GET_EQ(fs, "k", want + i, puts[i]);
			}
			st = walk_ok(fs, "k");
			EXPECT(st.size, puts[i]);
			TU_ASSERT(st.blocks * 512 <= (puts[i] + ps - 1) / ps * ps,
				  "put of %zu leaves %llu blocks", puts[i],
				  (unsigned long long)st.blocks);
		}
	}
	free(want);
	ns_done(&n);
}
END_TEST

START_TEST(test_punch)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t s = mkfile_ok(fs, KVFS_ROOT_INO, "small");
	uint64_t ps = page_size_ok(fs), size = 5 * ps, b0, b1;
	uint8_t *want = calloc(1, 8 * ps);
	const int punch = KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE;

	TU_ASSERT(want != NULL, "%s", "malloc");
	pat(want, size, 3, 0);
	EXPECT(kvfs_write(fs, f, want, size, 0), (ssize_t)size);
	b0 = attr_ok(fs, f).blocks;
	TU_ASSERT(b0 * 512 >= size, "blocks %llu", (unsigned long long)b0);

	/* Inside one page. */
	OK(kvfs_fallocate(fs, f, punch, 100, 50));
	memset(want + 100, 0, 50);
	READ_EQ(fs, f, 0, want, size);
	/* Across pages: page 1 entirely, edges of pages 0 and 2. */
	OK(kvfs_fallocate(fs, f, punch, ps - 10, ps + 20));
	memset(want + ps - 10, 0, ps + 20);
	READ_EQ(fs, f, 0, want, size);
	b1 = attr_ok(fs, f).blocks;
	TU_ASSERT(b1 * 512 <= b0 * 512 - ps, "punching a page: blocks %llu -> %llu",
		  (unsigned long long)b0, (unsigned long long)b1);
	EXPECT(attr_ok(fs, f).size, size);
	fs = ns_reopen(&n);
	READ_EQ(fs, f, 0, want, size);
	/* Past the end, and across it: the size stays. */
	OK(kvfs_fallocate(fs, f, punch, size + 100, 1000));
	EXPECT(attr_ok(fs, f).size, size);
	OK(kvfs_fallocate(fs, f, punch, size - 10, 100));
	memset(want + size - 10, 0, 10);
	EXPECT(attr_ok(fs, f).size, size);
	READ_EQ(fs, f, 0, want, size);
	/* Writing into a punched page. */
	EXPECT(write_s(fs, f, "mid", ps + 5), 3);
	memcpy(want + ps + 5, "mid", 3);
	READ_EQ(fs, f, 0, want, size);
	/* The whole file: no blocks left. */
	OK(kvfs_fallocate(fs, f, punch, 0, size));
	memset(want, 0, size);
	READ_EQ(fs, f, 0, want, size);
	EXPECT(attr_ok(fs, f).blocks, 0);
	EXPECT(attr_ok(fs, f).size, size);
	fs = ns_reopen(&n);
	READ_EQ(fs, f, 0, want, size);

	/* Modes: punch needs KEEP_SIZE; unknown modes are refused. */
	EXPECT(kvfs_fallocate(fs, f, KVFS_FALLOC_PUNCH_HOLE, 0, 10), -EOPNOTSUPP);
	EXPECT(kvfs_fallocate(fs, f, 0x4, 0, 10), -EOPNOTSUPP);
	EXPECT(kvfs_fallocate(fs, f, 0x10, 0, 10), -EOPNOTSUPP);
	/* Mode 0 extends the size like a write, never shrinks. */
	OK(kvfs_fallocate(fs, f, 0, size + 1000, 10));
	EXPECT(attr_ok(fs, f).size, size + 1010);
	OK(kvfs_fallocate(fs, f, 0, 0, 10));
	EXPECT(attr_ok(fs, f).size, size + 1010);
	READ_EQ(fs, f, 0, want, size + 1010);

	/* An inline file. */
	pat(want, 100, 4, 0);
	EXPECT(kvfs_write(fs, s, want, 100, 0), 100);
	OK(kvfs_fallocate(fs, s, punch, 10, 10));
	memset(want + 10, 0, 10);
	READ_EQ(fs, s, 0, want, 100);
	fs = ns_reopen(&n);
	READ_EQ(fs, s, 0, want, 100);
	EXPECT(attr_ok(fs, s).size, 100);
	free(want);
	ns_done(&n);
}
END_TEST

/* ---- core: attributes ---------------------------------------------------------------- */

START_TEST(test_setattr)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");
	struct kvfs_stat sa, st, st2;

	memset(&sa, 0, sizeof(sa));
	sa.mode = S_IFDIR | 04751; /* type bits are ignored */
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_MODE, &st));
	EXPECT(st.mode, S_IFREG | 04751);
	sa.mode = S_IFREG | 0700;
	OK(kvfs_setattr(fs, d, &sa, KVFS_SET_MODE, &st));
	EXPECT(st.mode, S_IFDIR | 0700);
	sa.mode = 0640;
	sa.uid = 1234;
	sa.gid = 5678;
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_MODE | KVFS_SET_UID | KVFS_SET_GID, &st));
	EXPECT(st.mode, S_IFREG | 0640);
	EXPECT(st.uid, 1234);
	EXPECT(st.gid, 5678);
	sa.uid = 42;
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_UID, &st));
	EXPECT(st.uid, 42);
	EXPECT(st.gid, 5678);

	/* Times keep their nanoseconds. */
	sa.atime_ns = 1111111111123456789ll;
	sa.mtime_ns = 1222222222987654321ll;
	sa.ctime_ns = 1333333333000000001ll;
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_ATIME | KVFS_SET_MTIME | KVFS_SET_CTIME, &st));
	EXPECT(st.atime_ns, 1111111111123456789ll);
	EXPECT(st.mtime_ns, 1222222222987654321ll);
	EXPECT(st.ctime_ns, 1333333333000000001ll);
	st2 = attr_ok(fs, f);
	ST_EQ(&st2, &st);
	fs = ns_reopen(&n);
	st2 = attr_ok(fs, f);
	ST_EQ(&st2, &st);

	/* One time at a time; without KVFS_SET_CTIME the ctime becomes now. */
	sa.atime_ns = 5;
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_ATIME, &st));
	EXPECT(st.atime_ns, 5);
	EXPECT(st.mtime_ns, 1222222222987654321ll);
	FRESH(st.ctime_ns);
	sa.mtime_ns = 6;
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_MTIME, &st));
	EXPECT(st.atime_ns, 5);
	EXPECT(st.mtime_ns, 6);
	sa.ctime_ns = 7;
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_CTIME, &st));
	EXPECT(st.ctime_ns, 7);
	sa.mode = 0600;
	OK(kvfs_setattr(fs, f, &sa, KVFS_SET_MODE, &st));
	FRESH(st.ctime_ns);
	EXPECT(st.mtime_ns, 6);
	/* An empty mask changes nothing but (as Linux's chown(f, -1, -1)) maybe the ctime. */
	st2 = attr_ok(fs, f);
	OK(kvfs_setattr(fs, f, &sa, 0, &st));
	st.ctime_ns = st2.ctime_ns;
	ST_EQ(&st, &st2);
	/* Errors. */
	EXPECT(kvfs_setattr(fs, 987654321, &sa, KVFS_SET_MODE, &st), -ENOENT);
	fs = ns_reopen(&n);
	st = attr_ok(fs, f);
	EXPECT(st.mode, S_IFREG | 0600);
	EXPECT(st.uid, 42);
	EXPECT(st.gid, 5678);
	EXPECT(st.atime_ns, 5);
	EXPECT(st.mtime_ns, 6);
	EXPECT(attr_ok(fs, d).mode, S_IFDIR | 0700);
	ns_done(&n);
}
END_TEST

/* Which calls set mtime and ctime (Linux: data changes set both, attribute and name changes
 * ctime; a directory's entries changing set its mtime and ctime). */
START_TEST(test_times)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");
	uint64_t f = mkfile_ok(fs, d, "f");
	struct kvfs_stat st;
	char buf[8];

#define RESET(ino) OK(set_times(fs, (ino), 1000, 2000, 3000))
#define DATA_CHANGED(ino)                                                                    \
	do {                                                                                 \
		st = attr_ok(fs, (ino));                                                     \
		EXPECT(st.atime_ns, 1000);                                                   \
		FRESH(st.mtime_ns);                                                          \
		FRESH(st.ctime_ns);                                                          \
	} while (0)
#define META_CHANGED(ino)                                                                    \
	do {                                                                                 \
		st = attr_ok(fs, (ino));                                                     \
		EXPECT(st.atime_ns, 1000);                                                   \
		EXPECT(st.mtime_ns, 2000);                                                   \
		FRESH(st.ctime_ns);                                                          \
	} while (0)
#define UNCHANGED(ino)                                                                       \
	do {                                                                                 \
		st = attr_ok(fs, (ino));                                                     \
		EXPECT(st.mtime_ns, 2000);                                                   \
		EXPECT(st.ctime_ns, 3000);                                                   \
	} while (0)

	RESET(f);
	EXPECT(write_s(fs, f, "abc", 0), 3);
	DATA_CHANGED(f);
	RESET(f);
	EXPECT(kvfs_read(fs, f, buf, sizeof(buf), 0), 3);
	UNCHANGED(f);
	RESET(f);
	set_size_ok(fs, f, 1);
	DATA_CHANGED(f);
	RESET(f);
	OK(kvfs_fallocate(fs, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 0, 1));
	DATA_CHANGED(f);
	RESET(f);
	OK(kvfs_setxattr(fs, f, "user.t", "v", 1, 0));
	META_CHANGED(f);
	RESET(f);
	OK(kvfs_removexattr(fs, f, "user.t"));
	META_CHANGED(f);
	RESET(f);
	OK(kvfs_link(fs, f, KVFS_ROOT_INO, "g", &st));
	META_CHANGED(f);
	RESET(f);
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "g"));
	META_CHANGED(f);
	RESET(f);
	OK(kvfs_put(fs, "d/f", "new", 3));
	st = attr_ok(fs, ino_ok(fs, "d/f"));
	FRESH(st.mtime_ns);
	FRESH(st.ctime_ns);
	f = st.ino;

	/* The directory: entries added, removed, renamed in and out. */
	RESET(d);
	OK(kvfs_mknod(fs, d, "g", 0644, 0, 0, 0, &st));
	DATA_CHANGED(d);
	RESET(d);
	OK(kvfs_rename(fs, d, "g", d, "h", 0));
	DATA_CHANGED(d);
	RESET(d);
	OK(kvfs_rename(fs, d, "h", KVFS_ROOT_INO, "h", 0));
	DATA_CHANGED(d);
	RESET(d);
	OK(kvfs_link(fs, f, d, "l", &st));
	DATA_CHANGED(d);
	RESET(d);
	OK(kvfs_unlink(fs, d, "l"));
	DATA_CHANGED(d);
	RESET(d);
	OK(kvfs_mkdir(fs, d, "sub", 0755, 0, 0, &st));
	DATA_CHANGED(d);
	RESET(d);
	OK(kvfs_rmdir(fs, d, "sub"));
	DATA_CHANGED(d);
	RESET(d);
	OK(kvfs_symlink(fs, d, "s", "t", 0, 0, &st));
	DATA_CHANGED(d);
	RESET(d);
	EXPECT(write_s(fs, f, "x", 0), 1); /* a file's data is not its directory's */
	UNCHANGED(d);
	RESET(d);
	OK(kvfs_put(fs, "d/new", "x", 1));
	DATA_CHANGED(d);
#undef RESET
#undef DATA_CHANGED
#undef META_CHANGED
#undef UNCHANGED
	ns_done(&n);
}
END_TEST

/* The names in a listxattr buffer, sorted, joined with ','. */
static char *xattr_names(const char *buf, ssize_t len, char *out, size_t cap)
{
	const char *v[256];
	size_t n = 0, o = 0;

	for (ssize_t i = 0; i < len && n < 256;) {
		v[n++] = buf + i;
		i += (ssize_t)strlen(buf + i) + 1;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			const char *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	out[0] = 0;
	for (size_t i = 0; i < n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", v[i]);
	return out;
}

static void xattrs_are(struct kvfs *fs, uint64_t ino, const char *want, ssize_t want_len)
{
	char buf[8192], names[8192];
	ssize_t len = kvfs_listxattr(fs, ino, NULL, 0);

	TU_ASSERT_EQ(len, want_len, "listxattr size of ino %llu", (unsigned long long)ino);
	len = kvfs_listxattr(fs, ino, buf, sizeof(buf));
	TU_ASSERT_EQ(len, want_len, "listxattr of ino %llu", (unsigned long long)ino);
	xattr_names(buf, len, names, sizeof(names));
	TU_ASSERT(strcmp(names, want) == 0, "xattrs [%s], want [%s]", names, want);
}

START_TEST(test_xattr)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");
	char buf[256], n255[300], n256[300];
	uint8_t *big = malloc(65537), *bigbuf = malloc(65537);

	TU_ASSERT(big && bigbuf, "%s", "malloc");
	pat(big, 65537, 8, 0);
	memcpy(n255, "user.", 5);
	name_rep(n255 + 5, 'x', 250);
	memcpy(n256, "user.", 5);
	name_rep(n256 + 5, 'x', 251);

	EXPECT(kvfs_getxattr(fs, f, "user.a", buf, sizeof(buf)), -ENODATA);
	EXPECT(kvfs_getxattr(fs, f, "user.a", NULL, 0), -ENODATA);
	EXPECT(kvfs_listxattr(fs, f, NULL, 0), 0);
	EXPECT(kvfs_removexattr(fs, f, "user.a"), -ENODATA);
	OK(kvfs_setxattr(fs, f, "user.a", "v1", 2, 0));
	EXPECT(kvfs_getxattr(fs, f, "user.a", buf, sizeof(buf)), 2);
	MEM_EQ(buf, "v1", 2, "xattr");
	EXPECT(kvfs_getxattr(fs, f, "user.a", NULL, 0), 2);
	EXPECT(kvfs_getxattr(fs, f, "user.a", buf, 1), -ERANGE);
	EXPECT(kvfs_setxattr(fs, f, "user.a", "zz", 2, XATTR_CREATE), -EEXIST);
	EXPECT(kvfs_setxattr(fs, f, "user.b", "zz", 2, XATTR_REPLACE), -ENODATA);
	EXPECT(kvfs_getxattr(fs, f, "user.b", buf, sizeof(buf)), -ENODATA);
	OK(kvfs_setxattr(fs, f, "user.a", "value2", 6, XATTR_REPLACE));
	OK(kvfs_setxattr(fs, f, "user.b", "", 0, XATTR_CREATE));
	EXPECT(kvfs_getxattr(fs, f, "user.b", buf, sizeof(buf)), 0);
	EXPECT(kvfs_getxattr(fs, f, "user.b", NULL, 0), 0);
	OK(kvfs_setxattr(fs, f, "user.a2", "3", 1, 0));
	xattrs_are(fs, f, "user.a,user.a2,user.b", 22);
	EXPECT(kvfs_listxattr(fs, f, buf, 5), -ERANGE);
	EXPECT(kvfs_listxattr(fs, f, buf, 21), -ERANGE);
	fs = ns_reopen(&n);
	EXPECT(kvfs_getxattr(fs, f, "user.a", buf, sizeof(buf)), 6);
	MEM_EQ(buf, "value2", 6, "xattr after reopen");
	xattrs_are(fs, f, "user.a,user.a2,user.b", 22);
	OK(kvfs_removexattr(fs, f, "user.a"));
	EXPECT(kvfs_removexattr(fs, f, "user.a"), -ENODATA);
	EXPECT(kvfs_getxattr(fs, f, "user.a", buf, sizeof(buf)), -ENODATA);
	xattrs_are(fs, f, "user.a2,user.b", 15);
	EXPECT(kvfs_getxattr(fs, f, "user.a2", buf, sizeof(buf)), 1);

	/* Limits: values up to 64 KiB, names up to 255 bytes (Linux: -ERANGE beyond). */
	OK(kvfs_setxattr(fs, f, "user.big", big, 65536, 0));
	EXPECT(kvfs_setxattr(fs, f, "user.big2", big, 65537, 0), -E2BIG);
	OK(kvfs_setxattr(fs, f, n255, "L", 1, 0));
	EXPECT(kvfs_setxattr(fs, f, n256, "L", 1, 0), -ERANGE);
	EXPECT(kvfs_getxattr(fs, f, "user.big", NULL, 0), 65536);
	EXPECT(kvfs_getxattr(fs, f, "user.big", bigbuf, 65535), -ERANGE);
	EXPECT(kvfs_getxattr(fs, f, "user.big", bigbuf, 65537), 65536);
	MEM_EQ(bigbuf, big, 65536, "64 KiB xattr");
	/* Replace a big value by a small one and back. */
	OK(kvfs_setxattr(fs, f, "user.big", "s", 1, XATTR_REPLACE));
	EXPECT(kvfs_getxattr(fs, f, "user.big", bigbuf, 65537), 1);
	OK(kvfs_setxattr(fs, f, "user.big", big + 1, 40000, 0));

	/* Directories have xattrs too; inodes keep theirs apart. */
	OK(kvfs_setxattr(fs, d, "user.a", "dir", 3, XATTR_CREATE));
	xattrs_are(fs, d, "user.a", 7);
	/* Many. */
	for (int i = 0; i < 50; i++) {
		char name[32], val[32];

		snprintf(name, sizeof(name), "user.m%02d", i);
		snprintf(val, sizeof(val), "value %d", i);
		OK(kvfs_setxattr(fs, d, name, val, strlen(val), XATTR_CREATE));
	}
	fs = ns_reopen(&n);
	EXPECT(kvfs_getxattr(fs, f, "user.big", bigbuf, 65537), 40000);
	MEM_EQ(bigbuf, big + 1, 40000, "40000-byte xattr");
	EXPECT(kvfs_getxattr(fs, f, n255, buf, sizeof(buf)), 1);
	EXPECT(kvfs_listxattr(fs, d, NULL, 0), 7 + 50 * 9);
	for (int i = 0; i < 50; i++) {
		char name[32], val[32];

		snprintf(name, sizeof(name), "user.m%02d", i);
		snprintf(val, sizeof(val), "value %d", i);
		EXPECT(kvfs_getxattr(fs, d, name, buf, sizeof(buf)), (ssize_t)strlen(val));
		MEM_EQ(buf, val, strlen(val), name);
	}
	EXPECT(kvfs_getxattr(fs, d, "user.a", buf, sizeof(buf)), 3);

	/* Missing inodes; a removed inode takes its xattrs along. */
	EXPECT(kvfs_setxattr(fs, 987654321, "user.a", "x", 1, 0), -ENOENT);
	EXPECT(kvfs_getxattr(fs, 987654321, "user.a", buf, sizeof(buf)), -ENOENT);
	EXPECT(kvfs_listxattr(fs, 987654321, buf, sizeof(buf)), -ENOENT);
	EXPECT(kvfs_removexattr(fs, 987654321, "user.a"), -ENOENT);
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "f"));
	EXPECT(kvfs_getxattr(fs, f, "user.a2", buf, sizeof(buf)), -ENOENT);
	f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	EXPECT(kvfs_listxattr(fs, f, NULL, 0), 0);
	free(big);
	free(bigbuf);
	ns_done(&n);
}
END_TEST

/* ---- core: readdir, orphans ---------------------------------------------------------- */

START_TEST(test_readdir_resume)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d"), e;
	uint64_t inos[50];
	struct rd full, part, r;
	struct kvfs_stat st;

	for (int i = 0; i < 50; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%02d", 49 - i); /* created in reverse order */
		if (i % 10 == 3)
			OK(kvfs_mkdir(fs, d, name, 0755, 0, 0, &st));
		else if (i % 10 == 7)
			OK(kvfs_symlink(fs, d, name, "t", 0, 0, &st));
		else
			OK(kvfs_mknod(fs, d, name, 0644, 0, 0, 0, &st));
		inos[49 - i] = st.ino;
	}
	fs = ns_reopen(&n);
	rd_all_ok(fs, d, 0, &full);
	EXPECT(full.n, 50);
	for (int i = 0; i < 50; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%02d", i);
		TU_ASSERT(strcmp(full.v[i].name, name) == 0, "entry %d is %s", i, full.v[i].name);
		EXPECT(full.v[i].ino, inos[i]);
		EXPECT(full.v[i].type, dt_of(attr_ok(fs, inos[i]).mode));
	}
	/* In chunks of 7: the same entries. */
	rd_all_ok(fs, d, 7, &part);
	EXPECT(part.n, 50);
	for (int i = 0; i < 50; i++)
		TU_ASSERT(strcmp(full.v[i].name, part.v[i].name) == 0, "chunked entry %d", i);
	rd_free(&part);
	/* "" starts like NULL; after the last name nothing is left; a stopping fn is no error. */
	memset(&r, 0, sizeof(r));
	OK(rd_call(fs, d, "", &r));
	EXPECT(r.n, 50);
	rd_free(&r);
	OK(rd_call(fs, d, "f49", &r));
	EXPECT(r.n, 0);
	OK(rd_call(fs, d, "zzz", &r));
	EXPECT(r.n, 0);
	r.limit = 1;
	OK(rd_call(fs, d, NULL, &r));
	EXPECT(r.n, 1);
	rd_free(&r);
	/* Strictly after: an existing name, a name between two, a prefix of names. */
	for (int i = 0; i < 50; i += 9) {
		memset(&r, 0, sizeof(r));
		OK(rd_call(fs, d, full.v[i].name, &r));
		EXPECT(r.n, 49 - (size_t)i);
		if (r.n)
			TU_ASSERT(strcmp(r.v[0].name, full.v[i + 1].name) == 0, "after %d: %s", i,
				  r.v[0].name);
		rd_free(&r);
	}
	OK(rd_call(fs, d, "f10a", &r));
	EXPECT(r.n, 39);
	TU_ASSERT(strcmp(r.v[0].name, "f11") == 0, "after f10a: %s", r.v[0].name);
	rd_free(&r);
	OK(rd_call(fs, d, "f", &r));
	EXPECT(r.n, 50);
	rd_free(&r);
	OK(rd_call(fs, d, "a", &r));
	EXPECT(r.n, 50);
	rd_free(&r);

	/* Stable across changes: list 20, insert before and after, remove the last one listed,
	 * one listed earlier and one not yet listed, close and reopen, resume. */
	memset(&part, 0, sizeof(part));
	part.limit = 20;
	OK(rd_call(fs, d, NULL, &part));
	EXPECT(part.n, 20);
	TU_ASSERT(strcmp(part.v[19].name, "f19") == 0, "20th %s", part.v[19].name);
	OK(kvfs_mknod(fs, d, "f10a", 0644, 0, 0, 0, &st));
	OK(kvfs_mknod(fs, d, "f35a", 0644, 0, 0, 0, &st));
	OK(kvfs_mknod(fs, d, "a", 0644, 0, 0, 0, &st));
	OK(kvfs_mknod(fs, d, "zzz", 0644, 0, 0, 0, &st));
	OK(kvfs_unlink(fs, d, "f05"));
	OK(kvfs_unlink(fs, d, "f19"));
	OK(kvfs_unlink(fs, d, "f30"));
	fs = ns_reopen(&n);
	part.limit = 0;
	OK(rd_call(fs, d, "f19", &part));
	{
		int seen[50] = { 0 };
		int added = 0;

		for (size_t i = 0; i < part.n; i++) {
			int k;

			if (sscanf(part.v[i].name, "f%2d", &k) == 1 && strlen(part.v[i].name) == 3)
				seen[k]++;
			else if (!strcmp(part.v[i].name, "f35a") || !strcmp(part.v[i].name, "zzz"))
				added++;
			else
				TU_ASSERT(0, "unexpected entry %s after resume", part.v[i].name);
			if (i)
				TU_ASSERT(strcmp(part.v[i - 1].name, part.v[i].name) < 0,
					  "%s listed after %s", part.v[i].name, part.v[i - 1].name);
		}
		for (int k = 0; k < 50; k++)
			if (k != 30)
				TU_ASSERT_EQ(seen[k], 1, "f%02d seen", k);
		TU_ASSERT(seen[30] <= 1, "%s", "f30 seen twice");
		TU_ASSERT(added <= 2, "%s", "added entries repeated");
	}
	rd_free(&part);
	rd_free(&full);

	/* Errors; an empty directory. */
	memset(&r, 0, sizeof(r));
	EXPECT(rd_call(fs, inos[0], NULL, &r), -ENOTDIR);
	EXPECT(rd_call(fs, 987654321, NULL, &r), -ENOENT);
	e = mkdir_ok(fs, KVFS_ROOT_INO, "e");
	OK(rd_call(fs, e, NULL, &r));
	EXPECT(r.n, 0);
	rd_free(&r);
	ns_done(&n);
}
END_TEST

START_TEST(test_orphans)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint8_t want[10000];
	uint64_t f, g, h, k;
	struct kvfs_stat st;
	char buf[16];

	pat(want, sizeof(want), 11, 0);
	OK(kvfs_put(fs, "f", want, sizeof(want)));
	f = ino_ok(fs, "f");
	OK(kvfs_setxattr(fs, f, "user.x", "1", 1, 0));
	OK(kvfs_open_ino(fs, f));
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "f"));
	EXPECT(kvfs_lookup(fs, KVFS_ROOT_INO, "f", &st), -ENOENT);
	EXPECT(kvfs_exists(fs, "f"), 0);
	readdir_is(fs, KVFS_ROOT_INO, "");
	scan_is(fs, NULL, NULL, "");
	st = attr_ok(fs, f);
	EXPECT(st.nlink, 0);
	EXPECT(st.size, sizeof(want));
	READ_EQ(fs, f, 0, want, sizeof(want));
	EXPECT(write_s(fs, f, "more", sizeof(want)), 4);
	EXPECT(attr_ok(fs, f).size, sizeof(want) + 4);
	set_size_ok(fs, f, 5000);
	READ_EQ(fs, f, 0, want, 5000);
	EXPECT(kvfs_getxattr(fs, f, "user.x", buf, sizeof(buf)), 1);
	OK(kvfs_setxattr(fs, f, "user.y", "2", 1, 0));
	/* Linux (vfs_link): no new name for an inode whose last name is gone. */
	EXPECT(kvfs_link(fs, f, KVFS_ROOT_INO, "relinked", &st), -ENOENT);
	kvfs_release_ino(fs, f);
	EXPECT(kvfs_getattr(fs, f, &st), -ENOENT);
	EXPECT(kvfs_read(fs, f, buf, sizeof(buf), 0), -ENOENT);
	EXPECT(kvfs_open_ino(fs, f), -ENOENT);
	EXPECT(kvfs_getxattr(fs, f, "user.x", buf, sizeof(buf)), -ENOENT);

	/* Two references: the first release keeps it. */
	OK(kvfs_put(fs, "g", "gg", 2));
	g = ino_ok(fs, "g");
	OK(kvfs_open_ino(fs, g));
	OK(kvfs_open_ino(fs, g));
	OK(kvfs_delete(fs, "g"));
	kvfs_release_ino(fs, g);
	READ_EQ(fs, g, 0, "gg", 2);
	kvfs_release_ino(fs, g);
	EXPECT(kvfs_getattr(fs, g, &st), -ENOENT);

	/* Open and released without unlink: nothing happens. */
	OK(kvfs_put(fs, "g", "g2", 2));
	g = ino_ok(fs, "g");
	OK(kvfs_open_ino(fs, g));
	kvfs_release_ino(fs, g);
	EXPECT(attr_ok(fs, g).nlink, 1);
	GET_EQ(fs, "g", "g2", 2);
	EXPECT(kvfs_open_ino(fs, 987654321), -ENOENT);

	/* Replaced by a rename while open. */
	OK(kvfs_put(fs, "h", "hh", 2));
	h = ino_ok(fs, "h");
	OK(kvfs_open_ino(fs, h));
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "g", KVFS_ROOT_INO, "h", 0));
	GET_EQ(fs, "h", "g2", 2);
	EXPECT(attr_ok(fs, h).nlink, 0);
	READ_EQ(fs, h, 0, "hh", 2);
	kvfs_release_ino(fs, h);
	EXPECT(kvfs_getattr(fs, h, &st), -ENOENT);

	/* Still open at close: gone after reopen; the rest is intact. */
	OK(kvfs_put(fs, "k", want, sizeof(want)));
	k = ino_ok(fs, "k");
	OK(kvfs_open_ino(fs, k));
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "k"));
	READ_EQ(fs, k, 0, want, sizeof(want));
	fs = ns_reopen(&n);
	EXPECT(kvfs_getattr(fs, k, &st), -ENOENT);
	EXPECT(kvfs_getattr(fs, f, &st), -ENOENT);
	GET_EQ(fs, "h", "g2", 2);
	readdir_is(fs, KVFS_ROOT_INO, "h");
	{
		struct kvfs_stats s;

		OK(kvfs_stats(fs, &s));
		EXPECT(s.files, 1);
		EXPECT(s.bytes, 2);
	}

	/* A process that dies with an orphan open: the next open purges it. */
	OK(kvfs_put(fs, "c", want, sizeof(want)));
	k = ino_ok(fs, "c");
	OK(kvfs_close(fs));
	n.fs = NULL;
	{
		pid_t pid = fork();
		int status;

		TU_ASSERT(pid >= 0, "%s", "fork");
		if (pid == 0) {
			struct kvfs_options o;
			struct kvfs *c = NULL;

			memset(&o, 0, sizeof(o));
			o.log = tu_log_cb;
			if (kvfs_open(n.env.path, &o, &c) || kvfs_open_ino(c, k) ||
			    kvfs_delete(c, "c") || kvfs_sync(c))
				_exit(1);
			_exit(0); /* no close, no release: as a crash */
		}
		TU_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
			  WEXITSTATUS(status) == 0, "%s", "child");
	}
	ns_open_ok(&n, 0);
	fs = n.fs;
	EXPECT(kvfs_getattr(fs, k, &st), -ENOENT);
	EXPECT(kvfs_exists(fs, "c"), 0);
	{
		struct kvfs_stats s;

		OK(kvfs_stats(fs, &s));
		EXPECT(s.files, 1);
		EXPECT(s.bytes, 2);
	}
	ns_done(&n);
}
END_TEST

/* ---- model --------------------------------------------------------------------------- */

/*
 * The reference: a tree of nodes in slots (slot 0 is the root).  Names come from a small pool
 * so that operations collide; a directory keeps one child slot per pool name, so its entries
 * are always in name order.  A node is "used" while the store must have its inode: while it
 * has a name, or (non-directories) while kvfs_open_ino references it.  Inode numbers the
 * store freed are remembered (a few) and probed for -ENOENT.
 */
#define M_NAMES     8
#define M_XNAMES    4
#define M_MAX_NODES 150
#define M_MAX_FILE  (1u << 20)
#define M_DEPTH     6
#define M_DEAD      16
#define M_KEY_MAX   4000 /* keys longer than this are not given to the key API */
#define M_PATH_CAP  65536

static char m_long_name[KVFS_NAME_MAX + 1];
static char m_long_xname[KVFS_NAME_MAX + 1];
/* In byte order, so that a directory's slots are in listing order. */
static const char *const m_names[M_NAMES] = { "a", "b", "c", "d0", "e1", "fg", m_long_name, "zz" };
static const char *const m_xnames[M_XNAMES] = { "user.a", "user.bb", "user.c.d", m_long_xname };

struct m_node {
	bool used;
	uint64_t ino;
	uint32_t mode, uid, gid;
	uint32_t links; /* names of a non-directory (a directory's nlink is computed) */
	uint64_t rdev;
	int open;       /* kvfs_open_ino references */
	int parent;     /* directories: the parent's slot */
	uint8_t *data;  /* regular file: contents; symlink: target */
	size_t size, cap;
	int ents[M_NAMES]; /* directories: the child's slot for each pool name, or -1 */
	uint8_t *xv[M_XNAMES];
	size_t xl[M_XNAMES];
	bool xs[M_XNAMES];
};

struct model {
	struct ns ns;
	struct kvfs *fs;
	struct tu_rng r;
	unsigned op;
	char what[600];
	struct m_node *nodes;
	int n_nodes, cap_nodes;
	int *cand;
	uint64_t dead[M_DEAD];
	int n_dead;
	uint32_t uid, gid;
	uint64_t page_size;
	uint8_t *buf, *buf2; /* scratch, M_MAX_FILE + 70000 each */
	char *path;          /* scratch, M_PATH_CAP */
	unsigned put_same, put_new, reopens;
};

#define MX(got, want) TU_ASSERT_EQ((got), (want), "op %u: %s", m->op, m->what)
#define MA(cond)      TU_ASSERT((cond), "op %u: %s", m->op, m->what)
#define MWHAT(...)    snprintf(m->what, sizeof(m->what), __VA_ARGS__)

enum { K_DIR, K_REG, K_ANY, K_LINKED_NONDIR, K_LINKED_REG, K_OPEN, K_XA };
enum { R_FOUND, R_MISSING, R_NOTDIR, R_SKIP };

struct m_key {
	int comp[M_DEPTH];
	int n;
	char s[M_DEPTH * (KVFS_NAME_MAX + 1) + 1];
};

struct m_res {
	int kind;
	int dir;  /* R_FOUND, R_MISSING: the directory holding the last existing component */
	int node; /* R_FOUND: the node */
	int at;   /* R_MISSING: index of the first missing component */
};

static bool m_isdir(const struct model *m, int i)
{
	return S_ISDIR(m->nodes[i].mode);
}

static bool m_isreg(const struct model *m, int i)
{
	return S_ISREG(m->nodes[i].mode);
}

static bool m_islnk(const struct model *m, int i)
{
	return S_ISLNK(m->nodes[i].mode);
}

static int m_nents(const struct model *m, int i)
{
	int n = 0;

	for (int k = 0; k < M_NAMES; k++)
		n += m->nodes[i].ents[k] >= 0;
	return n;
}

static uint32_t m_nlink(const struct model *m, int i)
{
	uint32_t n = 2;

	if (!m_isdir(m, i))
		return m->nodes[i].links;
	for (int k = 0; k < M_NAMES; k++)
		if (m->nodes[i].ents[k] >= 0 && m_isdir(m, m->nodes[i].ents[k]))
			n++;
	return n;
}

static int m_used(const struct model *m)
{
	int n = 0;

	for (int i = 0; i < m->n_nodes; i++)
		n += m->nodes[i].used;
	return n;
}

static int m_depth(const struct model *m, int dir)
{
	int d = 0;

	for (; dir != 0; dir = m->nodes[dir].parent)
		d++;
	return d;
}

/* True when directory `a` is `b` or one of its ancestors. */
static bool m_anc_or_eq(const struct model *m, int a, int b)
{
	for (;; b = m->nodes[b].parent) {
		if (a == b)
			return true;
		if (b == 0)
			return false;
	}
}

static void m_dead_forget(struct model *m, uint64_t ino)
{
	int j = 0;

	for (int i = 0; i < m->n_dead; i++)
		if (m->dead[i] != ino)
			m->dead[j++] = m->dead[i];
	m->n_dead = j;
}

static void m_kill(struct model *m, int i)
{
	struct m_node *x = &m->nodes[i];

	if (m->n_dead == M_DEAD) {
		memmove(m->dead, m->dead + 1, (M_DEAD - 1) * sizeof(m->dead[0]));
		m->n_dead--;
	}
	m->dead[m->n_dead++] = x->ino;
	free(x->data);
	for (int k = 0; k < M_XNAMES; k++)
		free(x->xv[k]);
	memset(x, 0, sizeof(*x));
}

static void m_drop_link(struct model *m, int i)
{
	struct m_node *x = &m->nodes[i];

	MA(x->links > 0);
	if (--x->links == 0 && x->open == 0)
		m_kill(m, i);
}

/* A slot for an inode the store has just created and described in *st. */
static int m_new(struct model *m, const struct kvfs_stat *st, uint32_t mode, uint32_t uid,
		 uint32_t gid)
{
	struct m_node *x;
	int i;

	MA(st->ino != 0);
	for (int j = 0; j < m->n_nodes; j++)
		TU_ASSERT(!m->nodes[j].used || m->nodes[j].ino != st->ino,
			  "op %u: %s: inode %llu is in use", m->op, m->what,
			  (unsigned long long)st->ino);
	m_dead_forget(m, st->ino);
	for (i = 1; i < m->n_nodes; i++)
		if (!m->nodes[i].used)
			break;
	if (i == m->n_nodes) {
		if (m->n_nodes == m->cap_nodes) {
			m->cap_nodes *= 2;
			m->nodes = realloc(m->nodes, m->cap_nodes * sizeof(*m->nodes));
			m->cand = realloc(m->cand, m->cap_nodes * sizeof(*m->cand));
			TU_ASSERT(m->nodes && m->cand, "%s", "realloc");
		}
		m->n_nodes++;
	}
	x = &m->nodes[i];
	memset(x, 0, sizeof(*x));
	x->used = true;
	x->ino = st->ino;
	x->mode = mode;
	x->uid = uid;
	x->gid = gid;
	x->links = S_ISDIR(mode) ? 0 : 1;
	for (int k = 0; k < M_NAMES; k++)
		x->ents[k] = -1;
	return i;
}

static void m_resize(struct m_node *x, size_t size)
{
	if (size > x->cap || !x->data) { /* never NULL: memcpy(NULL, p, 0) is undefined */
		size_t c = x->cap ? x->cap : 64;

		while (c < size)
			c *= 2;
		x->data = realloc(x->data, c);
		TU_ASSERT(x->data != NULL, "%s", "realloc");
		x->cap = c;
	}
	if (size > x->size)
		memset(x->data + x->size, 0, size - x->size);
	x->size = size;
}

static void m_check_st(struct model *m, int i, const struct kvfs_stat *st)
{
	const struct m_node *x = &m->nodes[i];

	MX(st->ino, x->ino);
	MX(st->mode, x->mode);
	MX(st->nlink, m_nlink(m, i));
	MX(st->uid, x->uid);
	MX(st->gid, x->gid);
	if (S_ISREG(x->mode) || S_ISLNK(x->mode))
		MX(st->size, x->size);
	if (S_ISCHR(x->mode) || S_ISBLK(x->mode))
		MX(st->rdev, x->rdev);
}

static void m_check_attr(struct model *m, int i)
{
	struct kvfs_stat st;

	MX(kvfs_getattr(m->fs, m->nodes[i].ino, &st), 0);
	m_check_st(m, i, &st);
}

/* ---- model: choosing arguments ---- */

static bool m_kind_ok(const struct model *m, int i, int kind)
{
	const struct m_node *x = &m->nodes[i];

	switch (kind) {
	case K_DIR:
		return S_ISDIR(x->mode);
	case K_REG:
		return S_ISREG(x->mode);
	case K_LINKED_NONDIR:
		return !S_ISDIR(x->mode) && x->links > 0;
	case K_LINKED_REG:
		return S_ISREG(x->mode) && x->links > 0;
	case K_OPEN:
		return x->open > 0;
	case K_XA:
		return S_ISREG(x->mode) || S_ISDIR(x->mode);
	default:
		return true;
	}
}

static int m_pick(struct model *m, int kind)
{
	int n = 0;

	for (int i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].used && m_kind_ok(m, i, kind))
			m->cand[n++] = i;
	return n ? m->cand[tu_rng_below(&m->r, (uint64_t)n)] : -1;
}

static uint64_t m_dead_ino(struct model *m)
{
	return m->dead[tu_rng_below(&m->r, (uint64_t)m->n_dead)];
}

/* An inode for a call: mostly a `kind` node, `wrong` percent any node (type errors), a few
 * percent a freed inode (*slot = -1). */
static uint64_t m_target(struct model *m, int kind, unsigned wrong, int *slot)
{
	uint64_t c = tu_rng_below(&m->r, 100);
	int i = -1;

	if (c < 4 && m->n_dead) {
		*slot = -1;
		return m_dead_ino(m);
	}
	if (c >= 100 - wrong)
		i = m_pick(m, K_ANY);
	if (i < 0)
		i = m_pick(m, kind);
	if (i < 0)
		i = m_pick(m, kind == K_XA ? K_DIR : K_ANY);
	*slot = i;
	return m->nodes[i].ino;
}

/* A parent directory for a call: mostly a directory, sometimes a non-directory or a freed
 * inode. */
static uint64_t m_parent(struct model *m, int *slot)
{
	uint64_t c = tu_rng_below(&m->r, 100);
	int i = -1;

	if (c < 3 && m->n_dead) {
		*slot = -1;
		return m_dead_ino(m);
	}
	if (c < 8)
		i = m_pick(m, K_LINKED_NONDIR);
	if (i < 0)
		i = m_pick(m, K_DIR);
	*slot = i;
	return m->nodes[i].ino;
}

static int m_parent_err(const struct model *m, int slot)
{
	if (slot < 0)
		return -ENOENT;
	return m_isdir(m, slot) ? 0 : -ENOTDIR;
}

/* A pool name: with `pct` percent chance one that exists in `dir`. */
static int m_name_in(struct model *m, int dir, unsigned pct)
{
	if (dir >= 0 && m_isdir(m, dir) && m_nents(m, dir) && tu_rng_below(&m->r, 100) < pct) {
		int k = (int)tu_rng_below(&m->r, (uint64_t)m_nents(m, dir));

		for (int j = 0; j < M_NAMES; j++)
			if (m->nodes[dir].ents[j] >= 0 && k-- == 0)
				return j;
	}
	return (int)tu_rng_below(&m->r, M_NAMES);
}

static int m_free_name(struct model *m, int dir)
{
	int k = M_NAMES - m_nents(m, dir);

	if (k == 0)
		return -1;
	k = (int)tu_rng_below(&m->r, (uint64_t)k);
	for (int j = 0; j < M_NAMES; j++)
		if (m->nodes[dir].ents[j] < 0 && k-- == 0)
			return j;
	return -1;
}

enum { E_REG, E_NONDIR, E_EMPTY_DIR };

/* A random existing entry (*dir, *k) whose node is of kind E_*: false when there is none. */
static bool m_pick_entry(struct model *m, int kind, int *dir, int *k)
{
	uint64_t seen = 0;

	for (int d = 0; d < m->n_nodes; d++) {
		if (!m->nodes[d].used || !m_isdir(m, d))
			continue;
		for (int j = 0; j < M_NAMES; j++) {
			int c = m->nodes[d].ents[j];

			if (c < 0 || (kind == E_REG && !m_isreg(m, c)) ||
			    (kind == E_NONDIR && m_isdir(m, c)) ||
			    (kind == E_EMPTY_DIR && (!m_isdir(m, c) || m_nents(m, c))))
				continue;
			if (tu_rng_below(&m->r, ++seen) == 0) {
				*dir = d;
				*k = j;
			}
		}
	}
	return seen > 0;
}

/* The key of entry `k` of directory `dir`: false when deeper than M_DEPTH. */
static bool m_key_of(struct model *m, int dir, int k, struct m_key *key)
{
	int comp[M_DEPTH], n = 0;
	size_t len = 0;

	comp[n++] = k;
	for (int d = dir; d != 0; d = m->nodes[d].parent) {
		int p = m->nodes[d].parent, j;

		if (n == M_DEPTH)
			return false;
		for (j = 0; j < M_NAMES && m->nodes[p].ents[j] != d; j++)
			;
		comp[n++] = j;
	}
	key->n = n;
	for (int i = 0; i < n; i++) {
		key->comp[i] = comp[n - 1 - i];
		len += (size_t)sprintf(key->s + len, "%s%s", i ? "/" : "", m_names[key->comp[i]]);
	}
	return true;
}

static void m_gen_key(struct model *m, struct m_key *k);

/* A key for the key API: `pct` percent of the time an existing entry of kind E_*. */
static void m_key_for(struct model *m, int kind, unsigned pct, struct m_key *key)
{
	int dir, k;

	if (tu_rng_below(&m->r, 100) < pct && m_pick_entry(m, kind, &dir, &k) &&
	    m_key_of(m, dir, k, key))
		return;
	m_gen_key(m, key);
}

static uint32_t m_rand_id(struct model *m)
{
	static const uint32_t ids[] = { 0, 1, 1000, 4242, 65534 };

	return ids[tu_rng_below(&m->r, 5)];
}

static uint64_t m_rand_off(struct model *m)
{
	uint64_t c = tu_rng_below(&m->r, 100);

	if (c < 55)
		return tu_rng_below(&m->r, 5000);
	if (c < 85)
		return tu_rng_below(&m->r, 20000);
	if (c < 97)
		return tu_rng_below(&m->r, 150000);
	return tu_rng_below(&m->r, M_MAX_FILE - 70000);
}

static size_t m_rand_len(struct model *m)
{
	uint64_t c = tu_rng_below(&m->r, 100);

	if (c < 60)
		return (size_t)tu_rng_range(&m->r, 1, 300);
	if (c < 90)
		return (size_t)tu_rng_range(&m->r, 1, 9000);
	return (size_t)tu_rng_range(&m->r, 1, 66000);
}

/* The key of directory `dir` ("" for the root) into m->path; its length. */
static size_t m_path(struct model *m, int dir, char *buf)
{
	size_t n;
	int p, k;

	if (dir == 0) {
		buf[0] = 0;
		return 0;
	}
	p = m->nodes[dir].parent;
	n = m_path(m, p, buf);
	for (k = 0; k < M_NAMES && m->nodes[p].ents[k] != dir; k++)
		;
	TU_ASSERT(k < M_NAMES, "model: slot %d not in its parent %d", dir, p);
	n += (size_t)snprintf(buf + n, M_PATH_CAP - n, "%s%s", n ? "/" : "", m_names[k]);
	TU_ASSERT(n < M_PATH_CAP, "%s", "model path too long");
	return n;
}

static void m_gen_key(struct model *m, struct m_key *k)
{
	int cur = 0;
	size_t len = 0;

	k->n = 0;
	do {
		int idx = m_name_in(m, cur, 75);

		k->comp[k->n++] = idx;
		len += (size_t)sprintf(k->s + len, "%s%s", len ? "/" : "", m_names[idx]);
		cur = cur >= 0 && m_isdir(m, cur) ? m->nodes[cur].ents[idx] : -1;
	} while (k->n < M_DEPTH && tu_rng_chance(&m->r, 11, 20));
}

static void m_resolve(const struct model *m, const struct m_key *k, struct m_res *res)
{
	int cur = 0;

	memset(res, 0, sizeof(*res));
	for (int i = 0; i < k->n; i++) {
		int c = m->nodes[cur].ents[k->comp[i]];

		if (c < 0) {
			res->kind = R_MISSING;
			res->dir = cur;
			res->at = i;
			return;
		}
		if (i == k->n - 1) {
			res->kind = R_FOUND;
			res->dir = cur;
			res->node = c;
			return;
		}
		if (m_islnk(m, c)) {
			res->kind = R_SKIP; /* symlinks inside keys: not specified */
			return;
		}
		if (!m_isdir(m, c)) {
			res->kind = R_NOTDIR;
			return;
		}
		cur = c;
	}
}

/* ---- model: comparing whole objects ---- */

static void m_check_data(struct model *m, int i)
{
	const struct m_node *x = &m->nodes[i];
	ssize_t got;

	if (S_ISREG(x->mode)) {
		got = kvfs_read(m->fs, x->ino, m->buf, x->size + 100, 0);
		MX(got, (ssize_t)x->size);
		if (x->size && memcmp(m->buf, x->data, x->size) != 0) {
			size_t j = 0;

			while (m->buf[j] == x->data[j])
				j++;
			TU_ASSERT(0, "op %u: %s: ino %llu differs at byte %zu of %zu: 0x%02x, want "
				  "0x%02x", m->op, m->what, (unsigned long long)x->ino, j, x->size,
				  m->buf[j], x->data[j]);
		}
	} else if (S_ISLNK(x->mode)) {
		got = kvfs_readlink(m->fs, x->ino, (char *)m->buf, M_MAX_FILE);
		MX(got, (ssize_t)x->size);
		MA(memcmp(m->buf, x->data, x->size) == 0);
	}
}

static void m_check_readdir(struct model *m, int i, size_t chunk)
{
	const struct m_node *x = &m->nodes[i];
	struct rd r;
	size_t j = 0;

	rd_all_ok(m->fs, x->ino, chunk, &r);
	for (int k = 0; k < M_NAMES; k++) {
		int c = x->ents[k];

		if (c < 0)
			continue;
		TU_ASSERT(j < r.n && strcmp(r.v[j].name, m_names[k]) == 0,
			  "op %u: %s: readdir(%llu) entry %zu is %.20s, want %.20s", m->op, m->what,
			  (unsigned long long)x->ino, j, j < r.n ? r.v[j].name : "(end)",
			  m_names[k]);
		MX(r.v[j].ino, m->nodes[c].ino);
		MX(r.v[j].type, dt_of(m->nodes[c].mode));
		j++;
	}
	MX(r.n, j);
	rd_free(&r);
}

static void m_check_list(struct model *m, int dir, const char *key, size_t limit)
{
	struct ls l = { 0 };
	size_t j = 0, want_n = 0;
	int rc;

	l.limit = limit;
	l.stop_rc = 5;
	rc = kvfs_list(m->fs, key, ls_cb, &l);
	want_n = (size_t)m_nents(m, dir);
	if (limit && want_n >= limit) {
		MX(rc, 5);
		want_n = limit;
	} else {
		MX(rc, 0);
	}
	MX(l.n, want_n);
	for (int k = 0; k < M_NAMES && j < want_n; k++) {
		int c = m->nodes[dir].ents[k];

		if (c < 0)
			continue;
		TU_ASSERT(strcmp(l.v[j].name, m_names[k]) == 0,
			  "op %u: %s: kvfs_list(%.40s) entry %zu is %.20s, want %.20s", m->op,
			  m->what, key, j, l.v[j].name, m_names[k]);
		m_check_st(m, c, &l.v[j].st);
		j++;
	}
	ls_free(&l);
}

struct m_keys {
	char **k;
	int *slot;
	size_t n, cap;
};

static void m_collect(struct model *m, int dir, char *path, size_t plen, const char *lo,
		      const char *hi, struct m_keys *out)
{
	for (int k = 0; k < M_NAMES; k++) {
		int c = m->nodes[dir].ents[k];
		size_t n;

		if (c < 0)
			continue;
		n = plen + (size_t)snprintf(path + plen, M_PATH_CAP - plen, "%s%s", plen ? "/" : "",
					    m_names[k]);
		if (m_isdir(m, c)) {
			m_collect(m, c, path, n, lo, hi, out);
		} else if ((!lo || strcmp(path, lo) >= 0) && (!hi || strcmp(path, hi) < 0)) {
			if (out->n == out->cap) {
				out->cap = out->cap ? 2 * out->cap : 32;
				out->k = realloc(out->k, out->cap * sizeof(*out->k));
				out->slot = realloc(out->slot, out->cap * sizeof(*out->slot));
				TU_ASSERT(out->k && out->slot, "%s", "realloc");
			}
			out->k[out->n] = strdup(path);
			out->slot[out->n++] = c;
		}
		path[plen] = 0;
	}
}

static void m_check_scan(struct model *m, const char *lo, const char *hi, size_t limit)
{
	struct m_keys want = { 0 };
	struct ls l = { 0 };
	size_t want_n;
	int rc;

	m->path[0] = 0;
	m_collect(m, 0, m->path, 0, lo, hi, &want);
	l.limit = limit;
	l.stop_rc = -77;
	rc = kvfs_scan(m->fs, lo, hi, ls_cb, &l);
	want_n = want.n;
	if (limit && want_n >= limit) {
		MX(rc, -77);
		want_n = limit;
	} else {
		MX(rc, 0);
	}
	for (size_t j = 0; j < want_n; j++) {
		TU_ASSERT(j < l.n && strcmp(l.v[j].name, want.k[j]) == 0,
			  "op %u: %s: scan entry %zu is %.80s, want %.80s", m->op, m->what, j,
			  j < l.n ? l.v[j].name : "(end)", want.k[j]);
		m_check_st(m, want.slot[j], &l.v[j].st);
	}
	TU_ASSERT(l.n == want_n, "op %u: %s: scan gave %zu keys, want %zu (extra: %.80s)", m->op,
		  m->what, l.n, want_n, l.n > want_n ? l.v[want_n].name : "");
	for (size_t j = 0; j < want.n; j++)
		free(want.k[j]);
	free(want.k);
	free(want.slot);
	ls_free(&l);
}

static void m_check_xattrs(struct model *m, int i)
{
	const struct m_node *x = &m->nodes[i];
	char want[4 * (KVFS_NAME_MAX + 1)], got[8192], a[8192], b[8192];
	ssize_t wn = 0, gn;

	for (int k = 0; k < M_XNAMES; k++)
		if (x->xs[k]) {
			memcpy(want + wn, m_xnames[k], strlen(m_xnames[k]) + 1);
			wn += (ssize_t)strlen(m_xnames[k]) + 1;
		}
	gn = kvfs_listxattr(m->fs, x->ino, got, sizeof(got));
	MX(gn, wn);
	xattr_names(want, wn, a, sizeof(a));
	xattr_names(got, gn, b, sizeof(b));
	TU_ASSERT(strcmp(a, b) == 0, "op %u: %s: xattrs of %llu are [%.100s], want [%.100s]",
		  m->op, m->what, (unsigned long long)x->ino, b, a);
	for (int k = 0; k < M_XNAMES; k++) {
		gn = kvfs_getxattr(m->fs, x->ino, m_xnames[k], m->buf, 70000);
		if (!x->xs[k]) {
			MX(gn, -ENODATA);
			continue;
		}
		MX(gn, (ssize_t)x->xl[k]);
		MA(x->xl[k] == 0 || memcmp(m->buf, x->xv[k], x->xl[k]) == 0);
	}
}

/* Everything: every inode, its data, every directory through readdir and kvfs_list, the
 * scan of the whole tree, xattrs, freed inodes. */
static void m_check_all(struct model *m, const char *when)
{
	MWHAT("full check (%s)", when);
	for (int i = 0; i < m->n_nodes; i++) {
		if (!m->nodes[i].used)
			continue;
		MWHAT("full check (%s): ino %llu", when, (unsigned long long)m->nodes[i].ino);
		m_check_attr(m, i);
		m_check_data(m, i);
		if (m_isdir(m, i)) {
			m_check_readdir(m, i, (size_t)tu_rng_below(&m->r, 4));
			if (m_path(m, i, m->path) < M_KEY_MAX) {
				char *key = strdup(m->path);

				m_check_list(m, i, key, 0);
				free(key);
			}
		}
		if (m_isreg(m, i) || m_isdir(m, i))
			m_check_xattrs(m, i);
	}
	MWHAT("full check (%s): freed inodes", when);
	for (int j = 0; j < m->n_dead; j++) {
		struct kvfs_stat st;

		MX(kvfs_getattr(m->fs, m->dead[j], &st), -ENOENT);
	}
	MWHAT("full check (%s): scan", when);
	m_check_scan(m, NULL, NULL, 0);
}

/* ---- model: operations ---- */

static void m_op_create(struct model *m, int kind) /* 0 mknod, 1 mkdir, 2 symlink */
{
	static const uint32_t types[] = { 0, S_IFREG, S_IFREG, S_IFREG, S_IFREG, S_IFIFO,
					  S_IFCHR, S_IFBLK, S_IFSOCK };
	int p, ni, err, node, rc = 0;
	uint64_t pino = m_parent(m, &p), rdev = 0;
	uint32_t uid = m_rand_id(m), gid = m_rand_id(m), type = 0, mode;
	uint32_t perm = (uint32_t)tu_rng_below(&m->r, 01000) |
			(tu_rng_chance(&m->r, 1, 10) ? S_ISVTX : 0);
	char target[1100];
	size_t tlen = 0;
	struct kvfs_stat st, st2;

	ni = m_name_in(m, p, 30);
	err = m_parent_err(m, p);
	if (!err && m->nodes[p].ents[ni] >= 0)
		err = -EEXIST;
	if (!err && m_used(m) >= M_MAX_NODES)
		return;
	if (!err && kind == 1 && m_depth(m, p) >= M_DEPTH)
		return;
	if (kind == 0) {
		type = types[tu_rng_below(&m->r, sizeof(types) / sizeof(types[0]))];
		if (type == S_IFCHR || type == S_IFBLK)
			rdev = makedev(tu_rng_below(&m->r, 256), tu_rng_below(&m->r, 256));
		MWHAT("mknod(%llu, %.20s, 0%o, rdev %llu)", (unsigned long long)pino, m_names[ni],
		      type | perm, (unsigned long long)rdev);
		rc = kvfs_mknod(m->fs, pino, m_names[ni], type | perm, rdev, uid, gid, &st);
	} else if (kind == 1) {
		MWHAT("mkdir(%llu, %.20s, 0%o)", (unsigned long long)pino, m_names[ni], perm);
		rc = kvfs_mkdir(m->fs, pino, m_names[ni], perm, uid, gid, &st);
	} else {
		tlen = tu_rng_chance(&m->r, 1, 10) ? (size_t)tu_rng_range(&m->r, 1, 1000)
						   : (size_t)tu_rng_range(&m->r, 1, 40);
		for (size_t j = 0; j < tlen; j++)
			target[j] = "abc/.xyz0123"[tu_rng_below(&m->r, 12)];
		target[tlen] = 0;
		MWHAT("symlink(%llu, %.20s, target of %zu)", (unsigned long long)pino,
		      m_names[ni], tlen);
		rc = kvfs_symlink(m->fs, pino, m_names[ni], target, uid, gid, &st);
	}
	MX(rc, err);
	if (rc)
		return;
	if (m->nodes[p].mode & S_ISGID) {
		gid = m->nodes[p].gid;
		if (kind == 1)
			perm |= S_ISGID;
	}
	if (kind == 0)
		mode = (type ? type : S_IFREG) | perm;
	else if (kind == 1)
		mode = S_IFDIR | perm;
	else
		mode = S_IFLNK | 0777;
	node = m_new(m, &st, mode, uid, gid);
	m->nodes[node].rdev = rdev;
	if (kind == 1)
		m->nodes[node].parent = p;
	if (kind == 2) {
		m_resize(&m->nodes[node], tlen);
		memcpy(m->nodes[node].data, target, tlen);
	}
	m->nodes[p].ents[ni] = node;
	m_check_st(m, node, &st);
	MX(kvfs_lookup(m->fs, pino, m_names[ni], &st2), 0);
	m_check_st(m, node, &st2);
	m_check_attr(m, p);
}

static void m_op_write(struct model *m)
{
	int i;
	uint64_t ino = m_target(m, K_REG, 10, &i), off = m_rand_off(m);
	size_t len = m_rand_len(m);
	int err = i < 0 ? -ENOENT : m_isdir(m, i) ? -EISDIR : !m_isreg(m, i) ? -EINVAL : 0;
	struct m_node *x;

	tu_rng_bytes(&m->r, m->buf, len);
	MWHAT("write(%llu, off %llu, len %zu)", (unsigned long long)ino, (unsigned long long)off,
	      len);
	MX(kvfs_write(m->fs, ino, m->buf, len, off), err ? err : (ssize_t)len);
	if (err)
		return;
	x = &m->nodes[i];
	if (off + len > x->size)
		m_resize(x, off + len);
	memcpy(x->data + off, m->buf, len);
	m_check_attr(m, i);
	MX(kvfs_read(m->fs, ino, m->buf2, len + 10, off), (ssize_t)(x->size - off < len + 10 ?
								     x->size - off : len + 10));
	MA(memcmp(m->buf2, x->data + off, len) == 0);
}

static void m_op_read(struct model *m)
{
	int i;
	uint64_t ino = m_target(m, K_REG, 10, &i), off;
	size_t len = m_rand_len(m), want;
	int err = i < 0 ? -ENOENT : m_isdir(m, i) ? -EISDIR : !m_isreg(m, i) ? -EINVAL : 0;

	off = i >= 0 && tu_rng_chance(&m->r, 7, 10) ? tu_rng_below(&m->r, m->nodes[i].size + 100)
						     : m_rand_off(m);
	MWHAT("read(%llu, off %llu, len %zu)", (unsigned long long)ino, (unsigned long long)off,
	      len);
	if (err) {
		MX(kvfs_read(m->fs, ino, m->buf, len, off), err);
		return;
	}
	want = off >= m->nodes[i].size ? 0 : m->nodes[i].size - off;
	if (want > len)
		want = len;
	MX(kvfs_read(m->fs, ino, m->buf, len, off), (ssize_t)want);
	if (want && memcmp(m->buf, m->nodes[i].data + off, want) != 0) {
		size_t j = 0;

		while (m->buf[j] == m->nodes[i].data[off + j])
			j++;
		TU_ASSERT(0, "op %u: %s: byte %zu is 0x%02x, want 0x%02x", m->op, m->what, j,
			  m->buf[j], m->nodes[i].data[off + j]);
	}
}

static void m_op_truncate(struct model *m)
{
	int i;
	uint64_t ino = m_target(m, K_REG, 10, &i), size;
	int err = i < 0 ? -ENOENT : m_isdir(m, i) ? -EISDIR : !m_isreg(m, i) ? -EINVAL : 0;
	struct kvfs_stat sa, st;

	if (tu_rng_chance(&m->r, 1, 5))
		size = 0;
	else if (i >= 0 && tu_rng_chance(&m->r, 1, 3))
		size = tu_rng_below(&m->r, m->nodes[i].size + 1);
	else
		size = m_rand_off(m);
	memset(&sa, 0, sizeof(sa));
	sa.size = size;
	MWHAT("truncate(%llu, %llu)", (unsigned long long)ino, (unsigned long long)size);
	MX(kvfs_setattr(m->fs, ino, &sa, KVFS_SET_SIZE, &st), err);
	if (err)
		return;
	m->nodes[i].size = size < m->nodes[i].size ? size : m->nodes[i].size;
	m_resize(&m->nodes[i], size);
	m_check_st(m, i, &st);
}

static void m_op_fallocate(struct model *m, bool punch)
{
	int i = m_pick(m, K_REG);
	uint64_t off, len, ino;
	struct m_node *x;

	if (i < 0)
		return;
	x = &m->nodes[i];
	ino = x->ino;
	off = tu_rng_chance(&m->r, 7, 10) ? tu_rng_below(&m->r, x->size + 1000) : m_rand_off(m);
	len = tu_rng_chance(&m->r, 1, 2) ? tu_rng_range(&m->r, 1, 5000)
					 : tu_rng_range(&m->r, 1, 60000);
	if (!punch && off + len > M_MAX_FILE)
		off = M_MAX_FILE - len;
	MWHAT("fallocate(%llu, %s, off %llu, len %llu)", (unsigned long long)ino,
	      punch ? "punch" : "0", (unsigned long long)off, (unsigned long long)len);
	MX(kvfs_fallocate(m->fs, ino,
			  punch ? KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE : 0, off, len),
	   0);
	if (punch) {
		if (off < x->size)
			memset(x->data + off, 0, (off + len < x->size ? off + len : x->size) - off);
	} else if (off + len > x->size) {
		m_resize(x, off + len); /* at most M_MAX_FILE + 71000: inside the scratch buffers */
	}
	m_check_attr(m, i);
	if (off < x->size) {
		size_t n = x->size - off < len + 10 ? x->size - off : len + 10;

		MX(kvfs_read(m->fs, ino, m->buf, len + 10, off), (ssize_t)n);
		MA(memcmp(m->buf, x->data + off, n) == 0);
	}
}

/* rename(2)'s checks in Linux's order (fs/namei.c do_renameat2, vfs_rename).  *alt is another
 * errno accepted: a non-directory renamed over an ancestor directory of its own is -ENOTEMPTY
 * on Linux (and test_rename_dirs insists), but rename(2) documents -EISDIR for it too, and
 * under FUSE the kernel answers before the library is asked; the model lets that pass so as
 * to go on looking for other bugs. */
static int m_rename_err(const struct model *m, int p, int ni, int q, int mi, unsigned flags,
			int *alt)
{
	int s, t;

	*alt = 0;
	if ((flags & KVFS_RENAME_NOREPLACE) && (flags & KVFS_RENAME_EXCHANGE))
		return -EINVAL;
	if (m_parent_err(m, p))
		return m_parent_err(m, p);
	if (m_parent_err(m, q))
		return m_parent_err(m, q);
	s = m->nodes[p].ents[ni];
	t = m->nodes[q].ents[mi];
	if (s < 0)
		return -ENOENT;
	if ((flags & KVFS_RENAME_NOREPLACE) && t >= 0)
		return -EEXIST;
	if ((flags & KVFS_RENAME_EXCHANGE) && t < 0)
		return -ENOENT;
	if (p != q) {
		if (m_isdir(m, s) && m_anc_or_eq(m, s, q))
			return -EINVAL;
		if (t >= 0 && m_isdir(m, t) && m_anc_or_eq(m, t, p)) {
			if (flags & KVFS_RENAME_EXCHANGE)
				return -EINVAL;
			*alt = m_isdir(m, s) ? 0 : -EISDIR;
			return -ENOTEMPTY;
		}
	}
	if (s == t)
		return 0;
	if (!(flags & KVFS_RENAME_EXCHANGE) && t >= 0) {
		if (m_isdir(m, s) && !m_isdir(m, t))
			return -ENOTDIR;
		if (!m_isdir(m, s) && m_isdir(m, t))
			return -EISDIR;
		if (m_isdir(m, t) && m_nents(m, t))
			return -ENOTEMPTY;
	}
	return 0;
}

static void m_op_rename(struct model *m)
{
	static const unsigned fl[] = { 0, 0, 0, 0, 0, KVFS_RENAME_NOREPLACE, KVFS_RENAME_NOREPLACE,
				       KVFS_RENAME_EXCHANGE, KVFS_RENAME_EXCHANGE,
				       KVFS_RENAME_EXCHANGE,
				       KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE };
	unsigned flags = fl[tu_rng_below(&m->r, sizeof(fl) / sizeof(fl[0]))];
	int p, q, ni, mi, err, alt, rc, s, t;
	uint64_t pino = m_parent(m, &p), qino = m_parent(m, &q);
	struct kvfs_stat st;

	ni = m_name_in(m, p, 85);
	mi = m_name_in(m, q, 50);
	err = m_rename_err(m, p, ni, q, mi, flags, &alt);
	MWHAT("rename(%llu, %.20s, %llu, %.20s, %u)", (unsigned long long)pino, m_names[ni],
	      (unsigned long long)qino, m_names[mi], flags);
	rc = kvfs_rename(m->fs, pino, m_names[ni], qino, m_names[mi], flags);
	MX(rc == alt && alt ? err : rc, err);
	if (err)
		return;
	s = m->nodes[p].ents[ni];
	t = m->nodes[q].ents[mi];
	if (s != t) {
		if (flags & KVFS_RENAME_EXCHANGE) {
			m->nodes[p].ents[ni] = t;
			m->nodes[q].ents[mi] = s;
			if (m_isdir(m, s))
				m->nodes[s].parent = q;
			if (m_isdir(m, t))
				m->nodes[t].parent = p;
		} else {
			m->nodes[p].ents[ni] = -1;
			if (t >= 0) {
				if (m_isdir(m, t))
					m_kill(m, t);
				else
					m_drop_link(m, t);
			}
			m->nodes[q].ents[mi] = s;
			if (m_isdir(m, s))
				m->nodes[s].parent = q;
		}
	}
	m_check_attr(m, p);
	m_check_attr(m, q);
	m_check_attr(m, s);
	if (t >= 0 && m->nodes[t].used)
		m_check_attr(m, t);
	MX(kvfs_lookup(m->fs, qino, m_names[mi], &st), 0);
	m_check_st(m, s, &st);
	if (m->nodes[p].ents[ni] < 0)
		MX(kvfs_lookup(m->fs, pino, m_names[ni], &st), -ENOENT);
}

static void m_op_link(struct model *m)
{
	uint64_t c = tu_rng_below(&m->r, 100), sino, qino;
	int s, q, ni, err;
	struct kvfs_stat st;

	if (c < 82) {
		s = m_pick(m, K_LINKED_NONDIR);
		q = m_pick(m, K_DIR);
		if (s < 0)
			return;
		ni = m_name_in(m, q, 30);
		err = m->nodes[q].ents[ni] >= 0 ? -EEXIST : 0;
	} else if (c < 90) {
		s = m_pick(m, K_DIR);
		q = m_pick(m, K_DIR);
		ni = m_free_name(m, q);
		err = -EPERM;
	} else if (c < 95) {
		s = m_pick(m, K_LINKED_NONDIR);
		q = m->n_dead && tu_rng_chance(&m->r, 1, 2) ? -1 : m_pick(m, K_LINKED_NONDIR);
		ni = (int)tu_rng_below(&m->r, M_NAMES);
		if (s < 0 || (q < 0 && !m->n_dead))
			return;
		err = q < 0 ? -ENOENT : -ENOTDIR;
	} else {
		if (!m->n_dead)
			return;
		s = -1;
		q = m_pick(m, K_DIR);
		ni = m_free_name(m, q);
		err = -ENOENT;
	}
	if (ni < 0)
		return;
	sino = s < 0 ? m_dead_ino(m) : m->nodes[s].ino;
	qino = q < 0 ? m_dead_ino(m) : m->nodes[q].ino;
	MWHAT("link(%llu, %llu, %.20s)", (unsigned long long)sino, (unsigned long long)qino,
	      m_names[ni]);
	MX(kvfs_link(m->fs, sino, qino, m_names[ni], &st), err);
	if (err)
		return;
	m->nodes[s].links++;
	m->nodes[q].ents[ni] = s;
	m_check_st(m, s, &st);
	m_check_attr(m, q);
}

static void m_op_remove(struct model *m, bool dir)
{
	int p, ni, err, c = -1;
	uint64_t pino;

	if (tu_rng_chance(&m->r, 1, 2) && m_pick_entry(m, dir ? E_EMPTY_DIR : E_NONDIR, &p, &ni)) {
		pino = m->nodes[p].ino;
	} else {
		pino = m_parent(m, &p);
		ni = m_name_in(m, p, 80);
	}
	err = m_parent_err(m, p);
	if (!err) {
		c = m->nodes[p].ents[ni];
		if (c < 0)
			err = -ENOENT;
		else if (!dir && m_isdir(m, c))
			err = -EISDIR;
		else if (dir && !m_isdir(m, c))
			err = -ENOTDIR;
		else if (dir && m_nents(m, c))
			err = -ENOTEMPTY;
	}
	MWHAT("%s(%llu, %.20s)", dir ? "rmdir" : "unlink", (unsigned long long)pino,
	      m_names[ni]);
	MX(dir ? kvfs_rmdir(m->fs, pino, m_names[ni]) : kvfs_unlink(m->fs, pino, m_names[ni]),
	   err);
	if (err)
		return;
	m->nodes[p].ents[ni] = -1;
	if (dir)
		m_kill(m, c);
	else
		m_drop_link(m, c);
	m_check_attr(m, p);
	if (m->nodes[c].used) {
		m_check_attr(m, c);
	} else {
		struct kvfs_stat st;

		MX(kvfs_getattr(m->fs, m->dead[m->n_dead - 1], &st), -ENOENT);
	}
}

static void m_op_setattr(struct model *m)
{
	static const unsigned bits[] = { KVFS_SET_MODE,	 KVFS_SET_UID,	 KVFS_SET_GID,
					 KVFS_SET_ATIME, KVFS_SET_MTIME, KVFS_SET_CTIME };
	int i;
	uint64_t ino = m_target(m, K_ANY, 0, &i);
	unsigned mask = 0;
	struct kvfs_stat sa, st, st2;

	for (int b = 0; b < 6; b++)
		if (tu_rng_chance(&m->r, 1, 3))
			mask |= bits[b];
	if (i >= 0 && m_islnk(m, i))
		mask &= ~(unsigned)KVFS_SET_MODE;
	memset(&sa, 0, sizeof(sa));
	sa.mode = ((uint32_t)tu_rng_next(&m->r) & S_IFMT) |
		  ((uint32_t)tu_rng_next(&m->r) & (i >= 0 && m_isdir(m, i) ? 03777 : 01777));
	sa.uid = m_rand_id(m);
	sa.gid = m_rand_id(m);
	sa.atime_ns = (int64_t)(tu_rng_next(&m->r) >> 2);
	sa.mtime_ns = (int64_t)(tu_rng_next(&m->r) >> 2);
	sa.ctime_ns = tu_rng_chance(&m->r, 1, 4) ? 0 : (int64_t)(tu_rng_next(&m->r) >> 2);
	MWHAT("setattr(%llu, mask 0x%x, mode 0%o, uid %u, gid %u)", (unsigned long long)ino, mask,
	      sa.mode, sa.uid, sa.gid);
	MX(kvfs_setattr(m->fs, ino, &sa, mask, &st), i < 0 ? -ENOENT : 0);
	if (i < 0)
		return;
	if (mask & KVFS_SET_MODE)
		m->nodes[i].mode = (m->nodes[i].mode & S_IFMT) | (sa.mode & 07777);
	if (mask & KVFS_SET_UID)
		m->nodes[i].uid = sa.uid;
	if (mask & KVFS_SET_GID)
		m->nodes[i].gid = sa.gid;
	m_check_st(m, i, &st);
	if (mask & KVFS_SET_ATIME)
		MX(st.atime_ns, sa.atime_ns);
	if (mask & KVFS_SET_MTIME)
		MX(st.mtime_ns, sa.mtime_ns);
	if (mask & KVFS_SET_CTIME)
		MX(st.ctime_ns, sa.ctime_ns);
	MX(kvfs_getattr(m->fs, ino, &st2), 0);
	MX(st2.atime_ns, st.atime_ns);
	MX(st2.mtime_ns, st.mtime_ns);
	MX(st2.ctime_ns, st.ctime_ns);
}

static void m_op_xattr(struct model *m, int what) /* 0 set, 1 remove, 2 get, 3 list */
{
	static const int fl[] = { 0, 0, XATTR_CREATE, XATTR_REPLACE };
	int i, k = (int)tu_rng_below(&m->r, M_XNAMES), flags = fl[tu_rng_below(&m->r, 4)];
	uint64_t ino = m_target(m, K_XA, 0, &i), c = tu_rng_below(&m->r, 100);
	struct m_node *x;
	size_t len, cap;
	int err = i < 0 ? -ENOENT : 0;

	if (what != 0 && i >= 0 && tu_rng_chance(&m->r, 2, 3)) { /* an attribute that exists */
		uint64_t seen = 0;

		for (int j = 0; j < m->n_nodes; j++)
			for (int q = 0; q < M_XNAMES; q++)
				if (m->nodes[j].used && m->nodes[j].xs[q] &&
				    tu_rng_below(&m->r, ++seen) == 0) {
					i = j;
					k = q;
				}
		ino = m->nodes[i].ino;
	}
	x = i >= 0 ? &m->nodes[i] : NULL;

	if (what == 0) {
		if (c < 70)
			len = tu_rng_below(&m->r, 100);
		else if (c < 97)
			len = tu_rng_below(&m->r, 4000);
		else
			len = tu_rng_range(&m->r, 60000, 65536);
		tu_rng_bytes(&m->r, m->buf, len);
		if (!err && (flags & XATTR_CREATE) && x->xs[k])
			err = -EEXIST;
		if (!err && (flags & XATTR_REPLACE) && !x->xs[k])
			err = -ENODATA;
		MWHAT("setxattr(%llu, %.20s, len %zu, flags %d)", (unsigned long long)ino,
		      m_xnames[k], len, flags);
		MX(kvfs_setxattr(m->fs, ino, m_xnames[k], m->buf, len, flags), err);
		if (err)
			return;
		free(x->xv[k]);
		x->xv[k] = malloc(len + 1);
		memcpy(x->xv[k], m->buf, len);
		x->xl[k] = len;
		x->xs[k] = true;
		m_check_xattrs(m, i);
	} else if (what == 1) {
		if (!err && !x->xs[k])
			err = -ENODATA;
		MWHAT("removexattr(%llu, %.20s)", (unsigned long long)ino, m_xnames[k]);
		MX(kvfs_removexattr(m->fs, ino, m_xnames[k]), err);
		if (err)
			return;
		free(x->xv[k]);
		x->xv[k] = NULL;
		x->xs[k] = false;
		x->xl[k] = 0;
		m_check_xattrs(m, i);
	} else if (what == 2) {
		size_t have = x && x->xs[k] ? x->xl[k] : 0;
		ssize_t want;

		cap = c < 25 ? 0 : c < 50 ? tu_rng_below(&m->r, have + 1) : have + 10;
		if (!err && !x->xs[k])
			err = -ENODATA;
		want = err ? err : cap == 0 ? (ssize_t)have : cap < have ? -ERANGE : (ssize_t)have;
		MWHAT("getxattr(%llu, %.20s, cap %zu)", (unsigned long long)ino, m_xnames[k], cap);
		MX(kvfs_getxattr(m->fs, ino, m_xnames[k], m->buf, cap), want);
		if (want > 0 && cap)
			MA(memcmp(m->buf, x->xv[k], have) == 0);
	} else {
		size_t need = 0;
		ssize_t want;

		for (int j = 0; x && j < M_XNAMES; j++)
			if (x->xs[j])
				need += strlen(m_xnames[j]) + 1;
		cap = c < 30 ? 0 : c < 50 ? tu_rng_below(&m->r, need + 1) : need + 5;
		want = err ? err : cap == 0 ? (ssize_t)need : cap < need ? -ERANGE : (ssize_t)need;
		MWHAT("listxattr(%llu, cap %zu)", (unsigned long long)ino, cap);
		MX(kvfs_listxattr(m->fs, ino, (char *)m->buf, cap), want);
		if (want > 0 && cap)
			m_check_xattrs(m, i);
	}
}

static void m_op_open(struct model *m, bool open)
{
	int i;
	struct kvfs_stat st;

	if (open) {
		uint64_t ino;

		if (m->n_dead && tu_rng_chance(&m->r, 1, 10)) {
			ino = m_dead_ino(m);
			MWHAT("open_ino(%llu) freed", (unsigned long long)ino);
			MX(kvfs_open_ino(m->fs, ino), -ENOENT);
			return;
		}
		i = m_pick(m, K_LINKED_REG);
		if (i < 0)
			return;
		MWHAT("open_ino(%llu)", (unsigned long long)m->nodes[i].ino);
		MX(kvfs_open_ino(m->fs, m->nodes[i].ino), 0);
		m->nodes[i].open++;
		return;
	}
	i = m_pick(m, K_OPEN);
	if (i < 0)
		return;
	MWHAT("release_ino(%llu)", (unsigned long long)m->nodes[i].ino);
	kvfs_release_ino(m->fs, m->nodes[i].ino);
	if (--m->nodes[i].open == 0 && m->nodes[i].links == 0) {
		uint64_t ino = m->nodes[i].ino;

		m_kill(m, i);
		MX(kvfs_getattr(m->fs, ino, &st), -ENOENT);
		MX(kvfs_read(m->fs, ino, m->buf, 10, 0), -ENOENT);
	} else {
		m_check_attr(m, i);
	}
}

static void m_op_lookup(struct model *m)
{
	struct kvfs_stat st;
	int p, ni, err, c = -1;
	uint64_t pino;

	if (tu_rng_chance(&m->r, 1, 2)) {
		pino = m_target(m, K_ANY, 0, &p);
		MWHAT("getattr(%llu)", (unsigned long long)pino);
		MX(kvfs_getattr(m->fs, pino, &st), p < 0 ? -ENOENT : 0);
		if (p >= 0)
			m_check_st(m, p, &st);
		return;
	}
	pino = m_parent(m, &p);
	ni = m_name_in(m, p, 70);
	err = m_parent_err(m, p);
	if (!err && (c = m->nodes[p].ents[ni]) < 0)
		err = -ENOENT;
	MWHAT("lookup(%llu, %.20s)", (unsigned long long)pino, m_names[ni]);
	MX(kvfs_lookup(m->fs, pino, m_names[ni], &st), err);
	if (!err)
		m_check_st(m, c, &st);
}

static void m_op_readdir(struct model *m)
{
	int i;
	uint64_t ino = m_target(m, K_DIR, 8, &i);
	struct rd r = { 0 };

	MWHAT("readdir(%llu)", (unsigned long long)ino);
	if (i >= 0 && m_isdir(m, i)) {
		m_check_readdir(m, i, (size_t)tu_rng_below(&m->r, 4));
		return;
	}
	MX(rd_call(m->fs, ino, NULL, &r), i < 0 ? -ENOENT : -ENOTDIR);
	MX(r.n, 0);
	rd_free(&r);
}

static void m_op_put(struct model *m)
{
	struct m_key k;
	struct m_res res;
	struct kvfs_stat st;
	size_t len = tu_rng_chance(&m->r, 1, 8) ? 0 : m_rand_len(m);
	int err = 0, node, cur;

	m_key_for(m, E_REG, 35, &k);
	m_resolve(m, &k, &res);
	if (res.kind == R_SKIP)
		return;
	if (res.kind == R_NOTDIR) {
		err = -ENOTDIR;
	} else if (res.kind == R_FOUND) {
		if (m_isdir(m, res.node))
			err = -EISDIR;
		else if (!m_isreg(m, res.node))
			return; /* put onto a symlink or special file: not specified */
	} else {
		if ((m->nodes[res.dir].mode & S_ISGID) || m_used(m) + k.n - res.at > M_MAX_NODES)
			return;
	}
	tu_rng_bytes(&m->r, m->buf, len);
	MWHAT("put(%.120s, len %zu)", k.s, len);
	MX(kvfs_put(m->fs, k.s, m->buf, len), err);
	if (err)
		return;
	if (res.kind == R_FOUND) {
		int old = res.node;

		MX(kvfs_lookup(m->fs, m->nodes[res.dir].ino, m_names[k.comp[k.n - 1]], &st), 0);
		if (st.ino == m->nodes[old].ino) { /* replaced in place */
			node = old;
			m->nodes[node].size = 0;
			m->put_same++;
		} else { /* a new inode took the name */
			m->nodes[res.dir].ents[k.comp[k.n - 1]] = -1;
			m_drop_link(m, old);
			node = m_new(m, &st, S_IFREG | 0644, m->uid, m->gid);
			m->nodes[res.dir].ents[k.comp[k.n - 1]] = node;
			m->put_new++;
		}
		m_resize(&m->nodes[node], len);
		memcpy(m->nodes[node].data, m->buf, len);
		m_check_st(m, node, &st);
	} else {
		struct kvfs_stat sts[M_DEPTH];
		int made[M_DEPTH];

		cur = res.dir;
		for (int j = res.at; j < k.n; j++) {
			bool last = j == k.n - 1;

			MX(kvfs_lookup(m->fs, m->nodes[cur].ino, m_names[k.comp[j]], &sts[j]), 0);
			node = m_new(m, &sts[j], last ? S_IFREG | 0644 : S_IFDIR | 0755, m->uid,
				     m->gid);
			m->nodes[cur].ents[k.comp[j]] = node;
			m->nodes[node].parent = cur;
			made[j] = node;
			cur = node;
		}
		m_resize(&m->nodes[cur], len);
		memcpy(m->nodes[cur].data, m->buf, len);
		for (int j = res.at; j < k.n; j++)
			m_check_st(m, made[j], &sts[j]);
		m_check_attr(m, res.dir);
	}
	MX(kvfs_get(m->fs, k.s, m->buf2, len + 10), (ssize_t)len);
	MA(memcmp(m->buf2, m->buf, len) == 0);
}

static void m_op_get(struct model *m)
{
	struct m_key k;
	struct m_res res;
	size_t cap = 0, have = 0, n;
	ssize_t want;

	m_key_for(m, E_REG, 60, &k);
	m_resolve(m, &k, &res);
	if (res.kind == R_SKIP || (res.kind == R_FOUND && !m_isdir(m, res.node) &&
				   !m_isreg(m, res.node)))
		return;
	if (res.kind == R_FOUND && m_isreg(m, res.node)) {
		uint64_t c = tu_rng_below(&m->r, 100);

		have = m->nodes[res.node].size;
		cap = c < 60 ? have + 10 : c < 80 ? tu_rng_below(&m->r, have + 1) : 0;
		want = (ssize_t)have;
	} else {
		cap = 100;
		want = res.kind == R_FOUND ? -EISDIR : res.kind == R_NOTDIR ? -ENOTDIR : -ENOENT;
	}
	memset(m->buf, 0xA5, cap + 16);
	MWHAT("get(%.120s, cap %zu)", k.s, cap);
	MX(kvfs_get(m->fs, k.s, m->buf, cap), want);
	if (want < 0)
		return;
	n = cap < have ? cap : have;
	MA(n == 0 || memcmp(m->buf, m->nodes[res.node].data, n) == 0);
	for (size_t j = n; j < n + 16; j++)
		MX(m->buf[j], 0xA5);
}

static void m_op_delete(struct model *m)
{
	struct m_key k;
	struct m_res res;
	int err = 0, c;

	m_key_for(m, tu_rng_chance(&m->r, 1, 3) ? E_EMPTY_DIR : E_NONDIR, 50, &k);
	m_resolve(m, &k, &res);
	if (res.kind == R_SKIP)
		return;
	if (res.kind == R_MISSING)
		err = -ENOENT;
	else if (res.kind == R_NOTDIR)
		err = -ENOTDIR;
	else if (m_isdir(m, res.node) && m_nents(m, res.node))
		err = -ENOTEMPTY;
	MWHAT("delete(%.120s)", k.s);
	MX(kvfs_delete(m->fs, k.s), err);
	if (err)
		return;
	c = res.node;
	m->nodes[res.dir].ents[k.comp[k.n - 1]] = -1;
	if (m_isdir(m, c))
		m_kill(m, c);
	else
		m_drop_link(m, c);
	MX(kvfs_exists(m->fs, k.s), 0);
	m_check_attr(m, res.dir);
}

static void m_op_exists(struct model *m)
{
	struct m_key k;
	struct m_res res;

	m_gen_key(m, &k);
	m_resolve(m, &k, &res);
	if (res.kind == R_SKIP)
		return;
	MWHAT("exists(%.120s)", k.s);
	MX(kvfs_exists(m->fs, k.s),
	   res.kind == R_FOUND ? 1 : res.kind == R_MISSING ? 0 : -ENOTDIR);
}

static void m_op_list(struct model *m)
{
	struct m_key k;
	struct m_res res;
	struct ls l = { 0 };
	size_t limit = tu_rng_chance(&m->r, 1, 4) ? (size_t)tu_rng_range(&m->r, 1, 3) : 0;
	int err;

	if (tu_rng_chance(&m->r, 1, 4)) {
		MWHAT("list(\"\", limit %zu)", limit);
		m_check_list(m, 0, "", limit);
		return;
	}
	m_gen_key(m, &k);
	m_resolve(m, &k, &res);
	MWHAT("list(%.120s, limit %zu)", k.s, limit);
	if (res.kind == R_SKIP || (res.kind == R_FOUND && m_islnk(m, res.node)))
		return;
	if (res.kind == R_FOUND && m_isdir(m, res.node)) {
		m_check_list(m, res.node, k.s, limit);
		return;
	}
	err = res.kind == R_MISSING ? -ENOENT : -ENOTDIR;
	MX(kvfs_list(m->fs, k.s, ls_cb, &l), err);
	MX(l.n, 0);
	ls_free(&l);
}

static void m_op_scan(struct model *m)
{
	struct m_key lo, hi;
	bool has_lo = tu_rng_chance(&m->r, 2, 3), has_hi = tu_rng_chance(&m->r, 1, 2);
	size_t limit = tu_rng_chance(&m->r, 1, 4) ? (size_t)tu_rng_range(&m->r, 1, 5) : 0;

	m_gen_key(m, &lo);
	m_gen_key(m, &hi);
	MWHAT("scan(%.120s, %.120s, limit %zu)", has_lo ? lo.s : "NULL", has_hi ? hi.s : "NULL",
	      limit);
	m_check_scan(m, has_lo ? lo.s : NULL, has_hi ? hi.s : NULL, limit);
}

static void m_reopen(struct model *m)
{
	MWHAT("close and reopen");
	m->fs = ns_reopen(&m->ns);
	m->reopens++;
	for (int i = 0; i < m->n_nodes; i++) {
		struct m_node *x = &m->nodes[i];

		if (!x->used || !x->open)
			continue;
		x->open = 0;
		if (x->links == 0)
			m_kill(m, i);
	}
	m_check_all(m, "after reopen");
}

static void m_op_sync(struct model *m)
{
	int i = m_pick(m, K_ANY);

	MWHAT("sync");
	if (tu_rng_chance(&m->r, 1, 2))
		MX(kvfs_sync(m->fs), 0);
	else
		MX(kvfs_fsync(m->fs, m->nodes[i].ino), 0);
}

/*
 * kvfs_batch: 1..6 operations on distinct names and inodes (two names of one inode would make
 * the result depend on the batch's key order), each a put (over a regular file, or a new file
 * in an existing directory) or a delete of a regular file, so that the batch succeeds; then
 * each name is checked as m_op_put and m_op_delete check theirs.  Inside a batch the
 * namespace writes each changed inode and next_ino once, at the end (pending_flush): a batch
 * followed by a reopen and a create shows a lost next_ino as an inode number used twice.
 */
/* A name of node `x` (another hard link, often), as a key: false when none is found. */
static bool m_link_key(struct model *m, int x, struct m_key *key)
{
	uint64_t seen = 0;
	int dir = -1, k = -1;

	for (int d = 0; d < m->n_nodes; d++) {
		if (!m->nodes[d].used || !m_isdir(m, d))
			continue;
		for (int j = 0; j < M_NAMES; j++)
			if (m->nodes[d].ents[j] == x && tu_rng_below(&m->r, ++seen) == 0) {
				dir = d;
				k = j;
			}
	}
	return seen && m_key_of(m, dir, k, key);
}

/* A kvfs_batch of up to 6 puts and deletes of distinct keys, some through hard links of one
 * inode (two puts, a put and a delete, two deletes); the model applies them in key order, as
 * kvfs_batch_commit does. */
static void m_op_batch(struct model *m)
{
	struct {
		struct m_key k;
		struct m_res res;
		bool del;
		size_t len, off;
	} ops[6];
	int n = 0, want = 1 + (int)tu_rng_below(&m->r, 6), made = 0, order[6], node[6];
	size_t off = 0;
	struct kvfs_batch *b = kvfs_batch_new();
	struct kvfs_stat st;

	MA(b != NULL);
	for (int tries = 0; n < want && tries < 40; tries++) {
		bool del = tu_rng_chance(&m->r, 1, 3), ok;
		int name, j = n ? (int)tu_rng_below(&m->r, (uint64_t)n) : 0;

		if (n && ops[j].res.kind == R_FOUND && m->nodes[ops[j].res.node].links > 1 &&
		    tu_rng_chance(&m->r, 1, 2) && m_link_key(m, ops[j].res.node, &ops[n].k))
			; /* another name of an inode in the batch */
		else
			m_key_for(m, E_REG, del ? 80 : 40, &ops[n].k);
		m_resolve(m, &ops[n].k, &ops[n].res);
		name = ops[n].k.comp[ops[n].k.n - 1];
		if (ops[n].res.kind == R_FOUND)
			ok = m_isreg(m, ops[n].res.node);
		else
			ok = !del && ops[n].res.kind == R_MISSING && ops[n].res.at == ops[n].k.n - 1 &&
			     !(m->nodes[ops[n].res.dir].mode & S_ISGID) &&
			     m_used(m) + made + 1 <= M_MAX_NODES;
		for (int q = 0; ok && q < n; q++) /* distinct names */
			ok = ops[q].res.dir != ops[n].res.dir ||
			     ops[q].k.comp[ops[q].k.n - 1] != name;
		if (!ok)
			continue;
		ops[n].del = del;
		ops[n].len = del || tu_rng_chance(&m->r, 1, 8) ? 0 : m_rand_len(m);
		ops[n].off = off;
		tu_rng_bytes(&m->r, m->buf + off, ops[n].len);
		off += ops[n].len;
		made += ops[n].res.kind == R_MISSING;
		if (del)
			MX(kvfs_batch_delete(b, ops[n].k.s), 0);
		else
			MX(kvfs_batch_put(b, ops[n].k.s, m->buf + ops[n].off, ops[n].len), 0);
		n++;
	}
	MWHAT("batch of %d (first %s %.120s)", n, n && ops[0].del ? "delete" : "put",
	      n ? ops[0].k.s : "-");
	MX(kvfs_batch_commit(m->fs, b), 0);
	kvfs_batch_free(b);
	for (int i = 0; i < n; i++) { /* key order (distinct keys) */
		int at = i;

		while (at > 0 && strcmp(ops[order[at - 1]].k.s, ops[i].k.s) > 0) {
			order[at] = order[at - 1];
			at--;
		}
		order[at] = i;
	}
	for (int oi = 0; oi < n; oi++) {
		int i = order[oi], name = ops[i].k.comp[ops[i].k.n - 1], dir = ops[i].res.dir;

		snprintf(m->what, sizeof(m->what), "batch op %d: %s %.120s", i,
			 ops[i].del ? "delete" : "put", ops[i].k.s);
		node[i] = -1;
		if (ops[i].del) {
			m->nodes[dir].ents[name] = -1;
			m_drop_link(m, ops[i].res.node);
			MX(kvfs_exists(m->fs, ops[i].k.s), 0);
			continue;
		}
		MX(kvfs_lookup(m->fs, m->nodes[dir].ino, m_names[name], &st), 0);
		if (ops[i].res.kind == R_FOUND && st.ino == m->nodes[ops[i].res.node].ino) {
			node[i] = ops[i].res.node; /* replaced in place */
			m->nodes[node[i]].size = 0;
		} else {
			if (ops[i].res.kind == R_FOUND) { /* a new inode took the name */
				m->nodes[dir].ents[name] = -1;
				m_drop_link(m, ops[i].res.node);
			}
			node[i] = m_new(m, &st, S_IFREG | 0644, m->uid, m->gid);
			m->nodes[dir].ents[name] = node[i];
			m->nodes[node[i]].parent = dir;
		}
		m_resize(&m->nodes[node[i]], ops[i].len);
		memcpy(m->nodes[node[i]].data, m->buf + ops[i].off, ops[i].len);
	}
	for (int i = 0; i < n; i++) { /* a later put or delete may have changed a put's inode */
		const struct m_node *x;

		snprintf(m->what, sizeof(m->what), "after the batch: %s %.120s",
			 ops[i].del ? "delete" : "put", ops[i].k.s);
		m_check_attr(m, ops[i].res.dir);
		if (ops[i].del)
			continue;
		x = &m->nodes[node[i]];
		m_check_attr(m, node[i]);
		MX(kvfs_get(m->fs, ops[i].k.s, m->buf2, x->size + 10), (ssize_t)x->size);
		MA(x->size == 0 || memcmp(m->buf2, x->data, x->size) == 0);
	}
}

static void m_step(struct model *m)
{
	uint64_t c = tu_rng_below(&m->r, 1000);

	if (c < 70)
		m_op_create(m, 0);
	else if (c < 110)
		m_op_create(m, 1);
	else if (c < 130)
		m_op_create(m, 2);
	else if (c < 250)
		m_op_write(m);
	else if (c < 310)
		m_op_read(m);
	else if (c < 350)
		m_op_truncate(m);
	else if (c < 375)
		m_op_fallocate(m, true);
	else if (c < 385)
		m_op_fallocate(m, false);
	else if (c < 475)
		m_op_rename(m);
	else if (c < 510)
		m_op_link(m);
	else if (c < 560)
		m_op_remove(m, false);
	else if (c < 595)
		m_op_remove(m, true);
	else if (c < 635)
		m_op_setattr(m);
	else if (c < 670)
		m_op_xattr(m, 0);
	else if (c < 685)
		m_op_xattr(m, 1);
	else if (c < 700)
		m_op_xattr(m, 2);
	else if (c < 710)
		m_op_xattr(m, 3);
	else if (c < 730)
		m_op_open(m, true);
	else if (c < 750)
		m_op_open(m, false);
	else if (c < 790)
		m_op_lookup(m);
	else if (c < 810)
		m_op_readdir(m);
	else if (c < 855)
		m_op_put(m);
	else if (c < 870)
		m_op_batch(m);
	else if (c < 905)
		m_op_get(m);
	else if (c < 935)
		m_op_delete(m);
	else if (c < 955)
		m_op_exists(m);
	else if (c < 970)
		m_op_list(m);
	else if (c < 985)
		m_op_scan(m);
	else if (c < 995)
		m_op_sync(m);
	else if (c < 999)
		m_op_lookup(m);
	else
		m_reopen(m); /* about 0.15 s each (the log is preallocated): 5 per seed */
}

static void model_run(uint64_t seed, unsigned ops)
{
	struct model *m = calloc(1, sizeof(*m));
	struct kvfs_stat st;

	TU_ASSERT(m != NULL, "%s", "calloc");
	memset(m_long_name, 'w', KVFS_NAME_MAX);
	memcpy(m_long_xname, "user.", 5);
	memset(m_long_xname + 5, 'x', KVFS_NAME_MAX - 5);
	for (int k = 1; k < M_NAMES; k++)
		TU_ASSERT(strcmp(m_names[k - 1], m_names[k]) < 0, "%s", "m_names not sorted");
	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&m->r, seed);
	m->uid = getuid();
	m->gid = getgid();
	m->buf = malloc(M_MAX_FILE + 70000);
	m->buf2 = malloc(M_MAX_FILE + 70000);
	m->path = malloc(M_PATH_CAP);
	m->cap_nodes = 64;
	m->nodes = calloc((size_t)m->cap_nodes, sizeof(*m->nodes));
	m->cand = calloc((size_t)m->cap_nodes, sizeof(*m->cand));
	TU_ASSERT(m->buf && m->buf2 && m->path && m->nodes && m->cand, "%s", "malloc");
	m->fs = ns_setup(&m->ns);
	m->page_size = page_size_ok(m->fs);

	OK(kvfs_getattr(m->fs, KVFS_ROOT_INO, &st));
	m->n_nodes = 1;
	m->nodes[0].used = true;
	m->nodes[0].ino = KVFS_ROOT_INO;
	m->nodes[0].mode = S_IFDIR | 0755;
	m->nodes[0].uid = m->uid;
	m->nodes[0].gid = m->gid;
	for (int k = 0; k < M_NAMES; k++)
		m->nodes[0].ents[k] = -1;

	for (m->op = 0; m->op < ops; m->op++) {
		m_step(m);
		if ((m->op + 1) % M_CHECK_EVERY == 0)
			m_check_all(m, "periodic");
	}
	m_check_all(m, "end");
	m_reopen(m);
	if (getenv("KVFS_TEST_VERBOSE"))
		fprintf(stderr, "seed %llu: %d inodes, %u reopens, put replaced %u in place, "
			"%u by a new inode\n", (unsigned long long)seed, m_used(m), m->reopens,
			m->put_same, m->put_new);
	tu_seed_end();
	ns_done(&m->ns);
	for (int i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].used) {
			free(m->nodes[i].data);
			for (int k = 0; k < M_XNAMES; k++)
				free(m->nodes[i].xv[k]);
		}
	free(m->nodes);
	free(m->cand);
	free(m->buf);
	free(m->buf2);
	free(m->path);
	free(m);
}

START_TEST(test_model)
{
	uint64_t seed;
	bool given = tu_seed_given("KVFS_SEED", &seed);
	unsigned ops = MODEL_OPS, seeds = MODEL_SEEDS;

	if (getenv("KVFS_MODEL_SEEDS"))
		seeds = (unsigned)atoi(getenv("KVFS_MODEL_SEEDS"));
	if ((given && _i != 0) || (unsigned)_i >= seeds)
		return;
	if (!given)
		seed = 1000 + (uint64_t)_i;
	if (getenv("KVFS_MODEL_OPS"))
		ops = (unsigned)atoi(getenv("KVFS_MODEL_OPS"));
	model_run(seed, ops);
}
END_TEST

/* ---- edge ---------------------------------------------------------------------------- */

START_TEST(test_edge_many_entries)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct tu_rng r;
	int order[200];
	uint64_t big = mkdir_ok(fs, KVFS_ROOT_INO, "big");

	tu_rng_init(&r, 200);
	for (int i = 0; i < 200; i++)
		order[i] = i;
	for (int i = 199; i > 0; i--) {
		int j = (int)tu_rng_below(&r, (uint64_t)i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < 200; i++) {
		char key[32];

		snprintf(key, sizeof(key), "big/n%03d", order[i]);
		if (i % 2)
			OK(kvfs_put(fs, key, key, strlen(key)));
		else
			mkfile_ok(fs, big, key + 4);
	}
	for (int pass = 0; pass < 2; pass++) {
		struct ls l = { 0 };
		struct rd rd;

		OK(kvfs_list(fs, "big", ls_cb, &l));
		EXPECT(l.n, 200);
		for (int i = 0; i < 200; i++) {
			char name[16];

			snprintf(name, sizeof(name), "n%03d", i);
			TU_ASSERT(strcmp(l.v[i].name, name) == 0, "list entry %d is %s", i,
				  l.v[i].name);
		}
		ls_free(&l);
		rd_all_ok(fs, big, pass ? 13 : 0, &rd);
		EXPECT(rd.n, 200);
		for (int i = 0; i < 200; i++) {
			char name[32];

			snprintf(name, sizeof(name), "n%03d", i);
			TU_ASSERT(strcmp(rd.v[i].name, name) == 0, "readdir entry %d is %s", i,
				  rd.v[i].name);
			snprintf(name, sizeof(name), "big/n%03d", i);
			EXPECT(rd.v[i].ino, ino_ok(fs, name));
		}
		rd_free(&rd);
		OK(kvfs_scan(fs, "big/n050", "big/n150", ls_cb, &l));
		EXPECT(l.n, 100);
		TU_ASSERT(strcmp(l.v[0].name, "big/n050") == 0 &&
				  strcmp(l.v[99].name, "big/n149") == 0,
			  "scan from %s to %s", l.v[0].name, l.v[99].name);
		ls_free(&l);
		fs = ns_reopen(&n);
	}
	ns_done(&n);
}
END_TEST

START_TEST(test_edge_10mib)
{
	static const size_t wchunks[] = { 4093, 1, 65537, 12289, 777, 131071, 4096, 3 };
	static const size_t rchunks[] = { 3000, 100003, 1, 8191, 4096, 77777 };
	const size_t size = 10u << 20;
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint8_t *want = malloc(size), *buf = malloc(size + 100);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "ten");
	size_t off = 0;
	struct kvfs_stat st;

	TU_ASSERT(want && buf, "%s", "malloc");
	pat(want, size, 10, 0);
	for (unsigned k = 0; off < size; k++) {
		size_t c = wchunks[k % (sizeof(wchunks) / sizeof(wchunks[0]))];

		if (c > size - off)
			c = size - off;
		EXPECT(kvfs_write(fs, f, want + off, c, off), (ssize_t)c);
		off += c;
	}
	st = attr_ok(fs, f);
	EXPECT(st.size, size);
	TU_ASSERT(st.blocks * 512 >= size, "blocks %llu", (unsigned long long)st.blocks);
	for (int pass = 0; pass < 2; pass++) {
		off = 0;
		for (unsigned k = 0; off < size; k++) {
			size_t c = rchunks[k % (sizeof(rchunks) / sizeof(rchunks[0]))];
			size_t want_n = c > size - off ? size - off : c;

			EXPECT(kvfs_read(fs, f, buf, c, off), (ssize_t)want_n);
			MEM_EQ(buf, want + off, want_n, "10 MiB file");
			off += want_n;
		}
		EXPECT(kvfs_read(fs, f, buf, 100, size), 0);
		fs = ns_reopen(&n);
	}
	EXPECT(kvfs_get(fs, "ten", buf, size + 100), (ssize_t)size);
	MEM_EQ(buf, want, size, "kvfs_get of 10 MiB");
	/* Overwrite a 4 KiB piece in the middle, unaligned. */
	pat(want + 5000001, 4096, 11, 5000001);
	EXPECT(kvfs_write(fs, f, want + 5000001, 4096, 5000001), 4096);
	EXPECT(kvfs_read(fs, f, buf, 30000, 4990000), 30000);
	MEM_EQ(buf, want + 4990000, 30000, "after an unaligned overwrite");
	fs = ns_reopen(&n);
	EXPECT(kvfs_read(fs, f, buf, 30000, 4990000), 30000);
	MEM_EQ(buf, want + 4990000, 30000, "after an unaligned overwrite, reopened");
	free(want);
	free(buf);
	ns_done(&n);
}
END_TEST

START_TEST(test_edge_sparse)
{
	const uint64_t tib = 1ull << 40;
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "sparse");
	uint64_t ps = page_size_ok(fs);
	uint8_t data[4096], zero[8192], buf[8192];
	struct kvfs_stat st, sa;

	pat(data, sizeof(data), 40, tib);
	memset(zero, 0, sizeof(zero));
	EXPECT(kvfs_write(fs, f, data, sizeof(data), tib), 4096);
	for (int pass = 0; pass < 2; pass++) {
		st = attr_ok(fs, f);
		EXPECT(st.size, tib + 4096);
		TU_ASSERT(st.blocks * 512 <= 4 * ps + 8192, "1 TiB sparse file has %llu blocks",
			  (unsigned long long)st.blocks);
		EXPECT(kvfs_read(fs, f, buf, 8192, 0), 8192);
		MEM_EQ(buf, zero, 8192, "hole at 0");
		EXPECT(kvfs_read(fs, f, buf, 8192, tib / 2 + 12345), 8192);
		MEM_EQ(buf, zero, 8192, "hole at 512 GiB");
		EXPECT(kvfs_read(fs, f, buf, 200, tib - 100), 200);
		MEM_EQ(buf, zero, 100, "hole before the block");
		MEM_EQ(buf + 100, data, 100, "start of the block");
		READ_EQ(fs, f, tib, data, 4096);
		fs = ns_reopen(&n);
	}

	/* The limit: the last byte below KVFS_MAX_FILE can be written, none past it. */
	EXPECT(kvfs_write(fs, f, "x", 1, KVFS_MAX_FILE - 1), 1);
	EXPECT(attr_ok(fs, f).size, KVFS_MAX_FILE);
	EXPECT(kvfs_write(fs, f, "x", 1, KVFS_MAX_FILE), -EFBIG);
	EXPECT(kvfs_write(fs, f, "xy", 2, KVFS_MAX_FILE - 1), -EFBIG);
	memset(&sa, 0, sizeof(sa));
	sa.size = KVFS_MAX_FILE + 1;
	EXPECT(kvfs_setattr(fs, f, &sa, KVFS_SET_SIZE, &st), -EFBIG);
	EXPECT(attr_ok(fs, f).size, KVFS_MAX_FILE);
	READ_EQ(fs, f, KVFS_MAX_FILE - 1, "x", 1);

	/* Truncating a huge sparse file costs what it holds, not its size. */
	set_size_ok(fs, f, tib + 100);
	READ_EQ(fs, f, tib, data, 100);
	set_size_ok(fs, f, 1);
	EXPECT(attr_ok(fs, f).blocks, 0);
	set_size_ok(fs, f, tib);
	EXPECT(kvfs_read(fs, f, buf, 8192, tib - 8192), 8192);
	MEM_EQ(buf, zero, 8192, "old block after shrink and grow");
	OK(kvfs_fallocate(fs, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 0, tib));
	fs = ns_reopen(&n);
	EXPECT(attr_ok(fs, f).size, tib);
	EXPECT(attr_ok(fs, f).blocks, 0);
	/* Removing a sparse file with blocks far apart costs its blocks, not its size. */
	EXPECT(kvfs_write(fs, f, data, sizeof(data), tib), 4096);
	EXPECT(kvfs_write(fs, f, "y", 1, KVFS_MAX_FILE - 1), 1);
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "sparse"));
	EXPECT(kvfs_getattr(fs, f, &st), -ENOENT);
	fs = ns_reopen(&n);
	EXPECT(kvfs_getattr(fs, f, &st), -ENOENT);
	ns_done(&n);
}
END_TEST

/*
 * Reads of runs of blocks (issue 3: one engine_read per run, the B+tree's leaves walked
 * through a finger): a file of RR_BLOCKS blocks and a partial tail, with holes at its start,
 * in the middle (wider than a leaf) and at its end, between two other files whose blocks
 * share leaves with it; checkpointed, then changed in the overlay (blocks written into a
 * hole, overwritten, punched, an unaligned write), so that one read meets blocks of the tree,
 * of the overlay, and of both (the overlay's shadowing the tree's, tombstones too).  Every
 * read is compared with a model: aligned and unaligned offsets, across a hole, a leaf, the
 * 1 MiB chunk of kvfs_read, the end of the file and past it; kvfs_get whole and cut short.
 * Then again after a checkpoint (all in the tree).
 */
#define RR_BLOCKS 300u

static void read_runs_check(struct kvfs *fs, uint64_t f, const uint8_t *want, size_t size,
			    uint8_t *buf)
{
	static const size_t offs[][2] = {
		{ 0, 0 }, { 0, 1 }, { 1, 4095 }, { 4095, 2 }, { 4096, 4096 }, { 8191, 8194 },
		{ 45 * 4096 + 17, 90 * 4096 }, { 100 * 4096 - 7, 30 * 4096 },
		{ (1u << 20) - 10, 20 }, { (1u << 20) - 4096, 3 * 4096 }, { 5000, 1u << 20 },
		{ 195 * 4096 + 1, 20 * 4096 }, { 290 * 4096, 20 * 4096 },
	};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		size_t off = offs[i][0], len = offs[i][1];
		size_t got = off >= size ? 0 : len < size - off ? len : size - off;
		memset(buf, 0xee, len + 1);
		TU_ASSERT_EQ(kvfs_read(fs, f, buf, len, off), (ssize_t)got, "read %zu at %zu",
			     len, off);
		MEM_EQ(buf, want + off, got, "kvfs_read");
		TU_ASSERT(buf[got] == 0xee, "read %zu at %zu wrote past its length", len, off);
	}
	/* the end of the file, and past it */
	EXPECT(kvfs_read(fs, f, buf, 100, size - 10), 10);
	MEM_EQ(buf, want + size - 10, 10, "tail");
	EXPECT(kvfs_read(fs, f, buf, 10, size), 0);
	EXPECT(kvfs_read(fs, f, buf, 10, size + 5000), 0);
	/* everything at once, and random runs */
	EXPECT(kvfs_read(fs, f, buf, size + 9000, 0), (ssize_t)size);
	MEM_EQ(buf, want, size, "whole file");
	uint64_t x = 42;
	for (int i = 0; i < 60; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t off = (size_t)((x >> 20) % (size + 100)), len = (size_t)((x >> 44) % 300000);
		size_t got = off >= size ? 0 : len < size - off ? len : size - off;
		TU_ASSERT_EQ(kvfs_read(fs, f, buf, len, off), (ssize_t)got, "read %zu at %zu",
			     len, off);
		MEM_EQ(buf, want + off, got, "random run");
	}
	memset(buf, 0xee, size + 1);
	EXPECT(kvfs_get(fs, "d/f", buf, size + 100), (ssize_t)size);
	MEM_EQ(buf, want, size, "kvfs_get");
	memset(buf, 0xee, size);
	EXPECT(kvfs_get(fs, "d/f", buf, 5000), (ssize_t)size);
	MEM_EQ(buf, want, 5000, "kvfs_get cut short");
	TU_ASSERT(buf[5000] == 0xee, "%s", "kvfs_get wrote past its cap");
}

/* The stat of d/NAME (d under the root). */
static struct kvfs_stat attr_key_ok(struct kvfs *fs, const char *name)
{
	struct kvfs_stat d, st;
	OK(kvfs_lookup(fs, KVFS_ROOT_INO, "d", &d));
	OK(kvfs_lookup(fs, d.ino, name, &st));
	return st;
}

START_TEST(test_read_runs)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	size_t size = RR_BLOCKS * 4096 + 1000;
	uint8_t *want = calloc(1, size + 4096), *buf = malloc(size + 10000);
	uint8_t *tmp = malloc(size);
	const int punch = KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE;

	TU_ASSERT(want && buf && tmp, "%s", "malloc");
	OK(kvfs_put(fs, "d/e", "e", 1)); /* a file on each side of f in the data tree */
	uint64_t e = attr_key_ok(fs, "e").ino;
	pat(tmp, 8 * 4096, 7, 0);
	EXPECT(kvfs_write(fs, e, tmp, 8 * 4096, 0), 8 * 4096);
	OK(kvfs_put(fs, "d/f", "", 0));
	uint64_t f = attr_key_ok(fs, "f").ino;
	OK(kvfs_put(fs, "d/g", "g", 1));
	uint64_t g = attr_key_ok(fs, "g").ino;
	EXPECT(kvfs_write(fs, g, tmp, 8 * 4096, 0), 8 * 4096);
	TU_ASSERT(e < f && f < g, "inode numbers %llu %llu %llu", (unsigned long long)e,
		  (unsigned long long)f, (unsigned long long)g);
	/* f: holes at blocks 0-1, 50-119 and 299; the tail 1000 bytes in block 300 */
	pat(want, size, 11, 0);
	memset(want, 0, 2 * 4096);
	memset(want + 50 * 4096, 0, 70 * 4096);
	memset(want + 299 * 4096, 0, 4096);
	EXPECT(kvfs_write(fs, f, want + 2 * 4096, 48 * 4096, 2 * 4096), 48 * 4096);
	EXPECT(kvfs_write(fs, f, want + 120 * 4096, 179 * 4096, 120 * 4096), 179 * 4096);
	EXPECT(kvfs_write(fs, f, want + 300 * 4096, 1000, 300 * 4096), 1000);
	EXPECT(attr_ok(fs, f).size, size);
	read_runs_check(fs, f, want, size, buf);
	fs = ns_reopen(&n); /* all in the tree */
	read_runs_check(fs, f, want, size, buf);
	/* the overlay over the tree: into a hole, over blocks, a punch, an unaligned write */
	pat(tmp, 5 * 4096, 12, 0);
	EXPECT(kvfs_write(fs, f, tmp, 5 * 4096, 60 * 4096), 5 * 4096);
	memcpy(want + 60 * 4096, tmp, 5 * 4096);
	pat(tmp, 11 * 4096, 13, 0);
	EXPECT(kvfs_write(fs, f, tmp, 11 * 4096, 10 * 4096), 11 * 4096);
	memcpy(want + 10 * 4096, tmp, 11 * 4096);
	OK(kvfs_fallocate(fs, f, punch, 200 * 4096, 11 * 4096));
	memset(want + 200 * 4096, 0, 11 * 4096);
	OK(kvfs_fallocate(fs, f, punch, 230 * 4096 + 300, 4096));
	memset(want + 230 * 4096 + 300, 0, 4096);
	pat(tmp, 3000, 14, 0);
	EXPECT(kvfs_write(fs, f, tmp, 3000, 130 * 4096 + 100), 3000);
	memcpy(want + 130 * 4096 + 100, tmp, 3000);
	read_runs_check(fs, f, want, size, buf);
	fs = ns_reopen(&n);
	read_runs_check(fs, f, want, size, buf);
	free(want);
	free(buf);
	free(tmp);
	ns_done(&n);
}
END_TEST

START_TEST(test_edge_rename_big_dir)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t src, dst;
	struct rd r;

	for (int i = 0; i < 1000; i++) {
		char key[32];

		snprintf(key, sizeof(key), "src/sub/f%04d", i);
		OK(kvfs_put(fs, key, key, strlen(key)));
	}
	src = ino_ok(fs, "src");
	dst = mkdir_ok(fs, KVFS_ROOT_INO, "dst");
	OK(kvfs_rename(fs, KVFS_ROOT_INO, "src", dst, "moved", 0));
	for (int pass = 0; pass < 2; pass++) {
		EXPECT(kvfs_exists(fs, "src"), 0);
		EXPECT(ino_ok(fs, "dst/moved"), src);
		for (int i = 0; i < 1000; i++) {
			char key[32], old[32];

			snprintf(key, sizeof(key), "dst/moved/sub/f%04d", i);
			snprintf(old, sizeof(old), "src/sub/f%04d", i);
			GET_EQ(fs, key, old, strlen(old));
		}
		rd_all_ok(fs, ino_ok(fs, "dst/moved/sub"), 100, &r);
		EXPECT(r.n, 1000);
		rd_free(&r);
		{
			struct ls l = { 0 };

			OK(kvfs_scan(fs, "dst", "dst0", ls_cb, &l));
			EXPECT(l.n, 1000);
			ls_free(&l);
			OK(kvfs_scan(fs, "src", "src0", ls_cb, &l));
			EXPECT(l.n, 0);
			ls_free(&l);
		}
		EXPECT(attr_ok(fs, dst).nlink, 3);
		EXPECT(attr_ok(fs, KVFS_ROOT_INO).nlink, 3);
		fs = ns_reopen(&n);
	}
	ns_done(&n);
}
END_TEST

/* ---- core: lseek SEEK_DATA / SEEK_HOLE ----------------------------------------------- */

/* kvfs_lseek's answer, or its -errno as a negative number. */
static long long seek_r(struct kvfs *fs, uint64_t ino, int64_t off, int whence)
{
	uint64_t at = 0xdeadbeef;
	int rc = kvfs_lseek(fs, ino, off, whence, &at);

	return rc < 0 ? rc : (long long)at;
}

#define SEEK_EQ(fs, ino, off, whence, want)                                                  \
	TU_ASSERT_EQ(seek_r((fs), (ino), (off), (whence)), (long long)(want), "lseek(%lld, %s)", \
		     (long long)(off), (whence) == KVFS_SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE")

/* Linux (ext4, tmpfs, xfs): the results of lseek(2) SEEK_DATA/SEEK_HOLE on the same layout. */
START_TEST(test_lseek)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "f");
	uint64_t s = mkfile_ok(fs, KVFS_ROOT_INO, "small");
	uint64_t e = mkfile_ok(fs, KVFS_ROOT_INO, "empty");
	uint64_t d = mkdir_ok(fs, KVFS_ROOT_INO, "d");
	const uint64_t B = 4096, G = 1ull << 30;
	const int D = KVFS_SEEK_DATA, H = KVFS_SEEK_HOLE;
	uint8_t blk[4096];
	struct kvfs_stat st;

	/* The constants are Linux's. */
	EXPECT(KVFS_SEEK_DATA, SEEK_DATA);
	EXPECT(KVFS_SEEK_HOLE, SEEK_HOLE);

	/* Layout: hole [0, 2B), data [2B, 4B), hole [4B, 10 GiB - B), data the last block but
	 * 100 bytes, then a size of 10 GiB (the last block is partial). */
	pat(blk, sizeof(blk), 50, 0);
	set_size_ok(fs, f, 10 * G);
	EXPECT(kvfs_write(fs, f, blk, B, 2 * B), (ssize_t)B);
	EXPECT(kvfs_write(fs, f, blk, B, 3 * B), (ssize_t)B);
	EXPECT(kvfs_write(fs, f, blk, 100, 10 * G - B), 100);
	for (int pass = 0; pass < 2; pass++) {
		SEEK_EQ(fs, f, 0, D, 2 * B);
		SEEK_EQ(fs, f, 0, H, 0);
		SEEK_EQ(fs, f, B + 7, D, 2 * B);
		SEEK_EQ(fs, f, B + 7, H, B + 7);
		SEEK_EQ(fs, f, 2 * B, D, 2 * B);
		SEEK_EQ(fs, f, 2 * B + 5, D, 2 * B + 5);
		SEEK_EQ(fs, f, 2 * B + 5, H, 4 * B);
		SEEK_EQ(fs, f, 4 * B - 1, H, 4 * B);
		SEEK_EQ(fs, f, 4 * B, H, 4 * B);
		SEEK_EQ(fs, f, 4 * B, D, 10 * G - B);
		SEEK_EQ(fs, f, 10 * G - B - 1, D, 10 * G - B);
		/* the last block is data up to the end, and the end is a hole */
		SEEK_EQ(fs, f, 10 * G - B, H, 10 * G);
		SEEK_EQ(fs, f, 10 * G - 1, D, 10 * G - 1);
		SEEK_EQ(fs, f, 10 * G - 1, H, 10 * G - 1 + 1);
		/* nothing at or past the end, nor before 0 */
		SEEK_EQ(fs, f, 10 * G, D, -ENXIO);
		SEEK_EQ(fs, f, 10 * G, H, -ENXIO);
		SEEK_EQ(fs, f, 20 * G, D, -ENXIO);
		SEEK_EQ(fs, f, -1, D, -ENXIO);
		SEEK_EQ(fs, f, -1, H, -ENXIO);
		fs = ns_reopen(&n);
	}

	/* Punching the first run leaves a hole up to the last block: SEEK_DATA skips it. */
	OK(kvfs_fallocate(fs, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 2 * B, 2 * B));
	SEEK_EQ(fs, f, 0, D, 10 * G - B);
	SEEK_EQ(fs, f, 0, H, 0);
	/* A block of zeros written is data (as on ext4): it was written. */
	memset(blk, 0, sizeof(blk));
	EXPECT(kvfs_write(fs, f, blk, B, 7 * B), (ssize_t)B);
	SEEK_EQ(fs, f, 0, D, 7 * B);
	SEEK_EQ(fs, f, 7 * B, H, 8 * B);
	/* Truncating drops the tail's blocks: only a hole after 7B + B. */
	set_size_ok(fs, f, 9 * B + 10);
	SEEK_EQ(fs, f, 8 * B, D, -ENXIO);
	SEEK_EQ(fs, f, 8 * B, H, 8 * B);
	SEEK_EQ(fs, f, 7 * B + 1, H, 8 * B);
	/* Growing again: the old last block does not come back. */
	set_size_ok(fs, f, 10 * G);
	SEEK_EQ(fs, f, 8 * B, D, -ENXIO);
	/* A file that is all data: the only hole is the end. */
	set_size_ok(fs, f, 0);
	pat(blk, sizeof(blk), 51, 0);
	for (int i = 0; i < 5; i++)
		EXPECT(kvfs_write(fs, f, blk, B, i * B), (ssize_t)B);
	EXPECT(kvfs_write(fs, f, blk, 10, 5 * B), 10);
	SEEK_EQ(fs, f, 0, D, 0);
	SEEK_EQ(fs, f, 0, H, 5 * B + 10);
	SEEK_EQ(fs, f, 3 * B + 3, H, 5 * B + 10);
	SEEK_EQ(fs, f, 5 * B + 9, D, 5 * B + 9);
	SEEK_EQ(fs, f, 5 * B + 10, D, -ENXIO);

	/* An inline file is all data; an empty one has nothing. */
	EXPECT(write_s(fs, s, "hello", 0), 5);
	SEEK_EQ(fs, s, 0, D, 0);
	SEEK_EQ(fs, s, 3, D, 3);
	SEEK_EQ(fs, s, 0, H, 5);
	SEEK_EQ(fs, s, 4, H, 5);
	SEEK_EQ(fs, s, 5, D, -ENXIO);
	SEEK_EQ(fs, s, 5, H, -ENXIO);
	SEEK_EQ(fs, e, 0, D, -ENXIO);
	SEEK_EQ(fs, e, 0, H, -ENXIO);
	/* An inline file extended by truncate stays inline while small: still all data. */
	set_size_ok(fs, s, 1000);
	SEEK_EQ(fs, s, 500, D, 500);
	SEEK_EQ(fs, s, 0, H, 1000);

	/* Bad arguments and other kinds of inode. */
	EXPECT(kvfs_lseek(fs, s, 0, 0, &(uint64_t){ 0 }), -EINVAL);  /* SEEK_SET */
	EXPECT(kvfs_lseek(fs, s, 0, 2, &(uint64_t){ 0 }), -EINVAL);  /* SEEK_END */
	EXPECT(kvfs_lseek(fs, s, 0, 5, &(uint64_t){ 0 }), -EINVAL);
	EXPECT(kvfs_lseek(fs, d, 0, D, &(uint64_t){ 0 }), -EISDIR);
	OK(kvfs_symlink(fs, KVFS_ROOT_INO, "l", "target", 0, 0, &st));
	EXPECT(kvfs_lseek(fs, st.ino, 0, D, &(uint64_t){ 0 }), -EINVAL);
	EXPECT(kvfs_lseek(fs, 999999, 0, D, &(uint64_t){ 0 }), -ENOENT);
	ns_done(&n);
}
END_TEST

/* Many runs: an alternating layout of 300 blocks, each answer checked against a bitmap, before
 * and after a checkpoint (the overlay and the B+tree answer alike). */
START_TEST(test_lseek_runs)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	uint64_t f = mkfile_ok(fs, KVFS_ROOT_INO, "runs");
	const uint64_t B = 4096, NB = 300;
	uint8_t blk[4096], map[300];
	uint64_t x = 12345;

	pat(blk, sizeof(blk), 52, 0);
	for (uint64_t i = 0; i < NB; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		map[i] = (x >> 60) < 6;
		if (map[i])
			EXPECT(kvfs_write(fs, f, blk, B, i * B), (ssize_t)B);
	}
	set_size_ok(fs, f, NB * B);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t off = 0; off < NB * B; off += B / 2 + 1) {
			uint64_t b = off / B, dat = b, hol = b;

			while (dat < NB && !map[dat])
				dat++;
			while (hol < NB && map[hol])
				hol++;
			if (dat == NB)
				SEEK_EQ(fs, f, off, KVFS_SEEK_DATA, -ENXIO);
			else
				SEEK_EQ(fs, f, off, KVFS_SEEK_DATA, dat == b ? off : dat * B);
			SEEK_EQ(fs, f, off, KVFS_SEEK_HOLE, hol == b ? off : hol * B);
		}
		fs = ns_reopen(&n);
	}
	ns_done(&n);
}
END_TEST

/* ---- suite --------------------------------------------------------------------------- */

static void add_batch_tests(TCase *core, TCase *edge); /* at the end of the file */
static void add_step_tests(TCase *core, TCase *edge);

static Suite *namespace_suite(void)
{
	Suite *s = suite_create("namespace");
	TCase *tc;

	tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_key_put_get);
	tcase_add_test(tc, test_key_errors);
	tcase_add_test(tc, test_key_list_scan);
	tcase_add_test(tc, test_key_scan_order);
	tcase_add_test(tc, test_root);
	tcase_add_test(tc, test_open_flags);
	tcase_add_test(tc, test_mknod_mkdir);
	tcase_add_test(tc, test_symlink);
	tcase_add_test(tc, test_link_unlink);
	tcase_add_test(tc, test_rmdir);
	tcase_add_test(tc, test_rename_files);
	tcase_add_test(tc, test_rename_dirs);
	tcase_add_test(tc, test_read_write);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_grow_shrink);
	tcase_add_test(tc, test_punch);
	tcase_add_test(tc, test_setattr);
	tcase_add_test(tc, test_times);
	tcase_add_test(tc, test_xattr);
	tcase_add_test(tc, test_readdir_resume);
	tcase_add_test(tc, test_orphans);
	tcase_add_test(tc, test_lseek);
	tcase_add_test(tc, test_lseek_runs);
	tcase_add_test(tc, test_read_runs);
	add_batch_tests(tc, NULL);
	add_step_tests(tc, NULL);
	suite_add_tcase(s, tc);

	tc = tcase_create("model");
	tcase_set_timeout(tc, 60); /* per seed */
	tcase_add_loop_test(tc, test_model, 0, MODEL_SEEDS);
	suite_add_tcase(s, tc);

	tc = tcase_create("edge");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_edge_many_entries);
	tcase_add_test(tc, test_edge_10mib);
	tcase_add_test(tc, test_edge_sparse);
	tcase_add_test(tc, test_edge_rename_big_dir);
	add_batch_tests(NULL, tc);
	add_step_tests(NULL, tc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(namespace_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- batches (core) ------------------------------------------------------------------- */

/* kvfs_batch_*: all or none, the last operation on a key counting, parents created first and
 * kept, deletes of files only, the batch kept after commit, the 16 MiB bound, key checks;
 * the names of one inode deleted in one batch (the batch's pending inodes); reopen. */
START_TEST(test_batch)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_batch *b = kvfs_batch_new();
	struct kvfs_stat st, ast;
	static uint8_t big[5000];

	TU_ASSERT(b != NULL, "%s", "kvfs_batch_new");
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	OK(kvfs_put(fs, "a/x", "old", 3));
	OK(kvfs_put(fs, "a/gone", "g", 1));
	EXPECT(kvfs_batch_commit(fs, b), 0); /* empty */

	/* the last operation on a key counts; new parents are made; a delete */
	OK(kvfs_batch_put(b, "a/x", "v1", 2));
	OK(kvfs_batch_put(b, "b/c/y", big, sizeof(big)));
	OK(kvfs_batch_delete(b, "a/gone"));
	OK(kvfs_batch_put(b, "a/x", "v2", 2));
	OK(kvfs_batch_put(b, "a/d", "d", 1));
	OK(kvfs_batch_delete(b, "a/d"));
	OK(kvfs_put(fs, "a/d", "was here", 8));
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "a/x", "v2", 2);
	GET_EQ(fs, "b/c/y", big, sizeof(big));
	EXPECT(kvfs_exists(fs, "a/gone"), 0);
	EXPECT(kvfs_exists(fs, "a/d"), 0);
	OK(kvfs_lookup(fs, KVFS_ROOT_INO, "b", &st));
	TU_ASSERT(S_ISDIR(st.mode), "%s", "b is not a directory");
	EXPECT(st.nlink, 3);

	/* the batch keeps its operations: committing it again fails on the delete of the
	 * missing a/gone, and nothing of it is applied */
	OK(kvfs_put(fs, "a/x", "zz", 2));
	OK(kvfs_put(fs, "b/c/y", "short", 5));
	EXPECT(kvfs_batch_commit(fs, b), -ENOENT);
	GET_EQ(fs, "a/x", "zz", 2);
	GET_EQ(fs, "b/c/y", "short", 5);

	/* deletes take files only: nothing applied */
	kvfs_batch_clear(b);
	OK(kvfs_batch_put(b, "a/x", "no", 2));
	OK(kvfs_batch_delete(b, "b/c"));
	EXPECT(kvfs_batch_commit(fs, b), -EISDIR);
	GET_EQ(fs, "a/x", "zz", 2);
	EXPECT(kvfs_exists(fs, "b/c/y"), 1);

	/* a failing batch keeps the parents it made (as kvfs_put would), not its files */
	kvfs_batch_clear(b);
	OK(kvfs_batch_put(b, "p/q/r", "1", 1));
	OK(kvfs_batch_delete(b, "nope"));
	EXPECT(kvfs_batch_commit(fs, b), -ENOENT);
	EXPECT(kvfs_exists(fs, "p/q"), 1);
	EXPECT(kvfs_exists(fs, "p/q/r"), 0);

	/* a parent that is a file */
	kvfs_batch_clear(b);
	OK(kvfs_batch_put(b, "a/x/under", "1", 1));
	EXPECT(kvfs_batch_commit(fs, b), -ENOTDIR);
	GET_EQ(fs, "a/x", "zz", 2);

	/* both names of one inode in one batch: nlink 2 -> 0, the inode is gone */
	OK(kvfs_lookup(fs, KVFS_ROOT_INO, "a", &ast));
	OK(kvfs_lookup(fs, ast.ino, "x", &st));
	OK(kvfs_link(fs, st.ino, ast.ino, "x2", &st));
	EXPECT(st.nlink, 2);
	kvfs_batch_clear(b);
	OK(kvfs_batch_delete(b, "a/x"));
	OK(kvfs_batch_delete(b, "a/x2"));
	OK(kvfs_batch_commit(fs, b));
	EXPECT(kvfs_exists(fs, "a/x"), 0);
	EXPECT(kvfs_exists(fs, "a/x2"), 0);
	EXPECT(kvfs_getattr(fs, st.ino, &st), -ENOENT);

	/* bad keys, and the 16 MiB bound on values */
	kvfs_batch_clear(b);
	EXPECT(kvfs_batch_put(b, "a//b", "1", 1), -EINVAL);
	EXPECT(kvfs_batch_put(b, "../x", "1", 1), -EINVAL);
	EXPECT(kvfs_batch_delete(b, ""), -EINVAL);
	{
		size_t lim = 16u << 20;
		uint8_t *v = calloc(1, lim);
		TU_ASSERT(v != NULL, "%s", "calloc");
		OK(kvfs_batch_put(b, "huge", v, lim));
		EXPECT(kvfs_batch_put(b, "one-more", "1", 1), -EFBIG);
		free(v);
	}
	kvfs_batch_clear(b);
	OK(kvfs_batch_put(b, "after/clear", "c", 1));
	OK(kvfs_batch_commit(fs, b));
	EXPECT(kvfs_exists(fs, "huge"), 0);

	/* after a reopen */
	fs = ns_reopen(&n);
	GET_EQ(fs, "b/c/y", "short", 5);
	GET_EQ(fs, "after/clear", "c", 1);
	EXPECT(kvfs_exists(fs, "a/x"), 0);
	EXPECT(kvfs_exists(fs, "p/q"), 1);
	kvfs_batch_free(b);
	ns_done(&n);
}
END_TEST

/*
 * The size bound of kvfs.h ("Size"): tiny puts under one directory reach -EFBIG at
 * kvfs_batch_put exactly where the documented estimate passes KVFS_BATCH_RECORD_MAX, the
 * batch just under it commits (the default log ring, the smallest: 18 MiB halves), and so does
 * one batch deleting them all; a 15 MiB value, then tiny puts up to the bound, commits too.
 */
START_TEST(test_edge_batch_size)
{
	struct ns n;
	struct kvfs *fs = ns_setup(&n);
	struct kvfs_batch *b = kvfs_batch_new();
	char key[32];
	/* per put: 49 + an inode record (16 + the longest header) + name + value; the
	 * directory's inode once */
	size_t rec_inode = 16 + NS_INODE_HDR_MAX;
	size_t per = 49 + rec_inode + 9 + 16, want = (KVFS_BATCH_RECORD_MAX - rec_inode) / per, i;
	int rc = 0;

	TU_ASSERT(b != NULL, "%s", "kvfs_batch_new");
	for (i = 0; rc == 0 && i < 2 * want; i++) {
		snprintf(key, sizeof(key), "t/k%08zu", i);
		rc = kvfs_batch_put(b, key, "0123456789abcdef", 16);
	}
	EXPECT(rc, -EFBIG);
	TU_ASSERT_EQ(i - 1, want, "%s", "puts accepted before -EFBIG");
	EXPECT(kvfs_batch_delete(b, "t/k00000000"), -EFBIG); /* a delete does not fit either */
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "t/k00000000", "0123456789abcdef", 16);
	snprintf(key, sizeof(key), "t/k%08zu", want - 1);
	GET_EQ(fs, key, "0123456789abcdef", 16);
	snprintf(key, sizeof(key), "t/k%08zu", want);
	EXPECT(kvfs_exists(fs, key), 0);

	/* one batch deleting them all (deletes cost less than puts) */
	kvfs_batch_clear(b);
	for (i = 0; i < want; i++) {
		snprintf(key, sizeof(key), "t/k%08zu", i);
		OK(kvfs_batch_delete(b, key));
	}
	OK(kvfs_batch_commit(fs, b));
	EXPECT(kvfs_exists(fs, "t/k00000000"), 0);
	list_is(fs, "t", "");

	/* a 15 MiB value (3,840 blocks), then 16-byte values up to the bound (~11,000) */
	size_t lim = 15u << 20;
	uint8_t *v = malloc(lim);
	TU_ASSERT(v != NULL, "%s", "malloc");
	pat(v, lim, 21, 0);
	kvfs_batch_clear(b);
	OK(kvfs_batch_put(b, "big/v", v, lim));
	for (i = 0, rc = 0; rc == 0; i++) {
		snprintf(key, sizeof(key), "big/s%zu", i);
		rc = kvfs_batch_put(b, key, v, 16);
	}
	EXPECT(rc, -EFBIG);
	TU_ASSERT(i > 10000, "only %zu small puts after the big one", i);
	OK(kvfs_batch_commit(fs, b));
	fs = ns_reopen(&n);
	GET_EQ(fs, "big/v", v, lim);
	GET_EQ(fs, "big/s0", v, 16);
	free(v);
	kvfs_batch_free(b);
	ns_done(&n);
}
END_TEST

static void add_batch_tests(TCase *core, TCase *edge)
{
	if (core)
		tcase_add_test(core, test_batch);
	if (edge)
		tcase_add_test(edge, test_edge_batch_size);
}

/* ---- bounded changes: purges and truncations in steps (core, edge) --------------------- */

#define STEP 4u /* purge_step_blocks for these tests: a 40-block file takes 10 steps */

/* Open n's store on its environment (posix, or an io_fault machine) with purge steps of
 * `step` blocks, a log ring of `ring` bytes (0: sized to the store) and, when `no_thread`, no
 * checkpoint thread (checkpoints at close only: deterministic).  kvfs_open_env's return. */
static int ns_open_with(struct ns *n, unsigned flags, uint64_t step, uint64_t ring,
			bool no_thread)
{
	struct kvfs_options o;
	struct kvfs_engine_tuning t;

	memset(&o, 0, sizeof(o));
	memset(&t, 0, sizeof(t));
	o.flags = flags;
	o.log = tu_log_cb;
	t.purge_step_blocks = step;
	t.log_ring_bytes = ring;
	t.no_checkpoint_thread = no_thread;
	n->fs = NULL;
	return kvfs_open_env(n->env.path, &o, tu_env_io(&n->env), &t, &n->fs);
}

static void ns_open_tuned(struct ns *n, unsigned flags, uint64_t step, uint64_t ring)
{
	int rc = ns_open_with(n, flags, step, ring, false);
	TU_ASSERT_EQ(rc, 0, "kvfs_open_env(%s)", n->env.path);
}

static void ns_close_ok(struct ns *n)
{
	int rc = kvfs_close(n->fs);

	n->fs = NULL;
	TU_ASSERT_EQ(rc, 0, "%s", "kvfs_close");
}

struct raw_sum {
	size_t blocks, orphans;
};

/* Index of inode `ino` in the inode tree's model, or SIZE_MAX. */
static size_t raw_ino(const struct tu_model *ti, uint64_t ino)
{
	uint8_t k[8];

	stbe64(k, ino);
	size_t i = tu_model_lower_bound(ti, k, 8);
	return i < ti->n && memcmp(ti->ents[i].key, k, 8) == 0 ? i : SIZE_MAX;
}

/* Decode the header of inode ti->ents[i]: its T_INODE record, or through its INODE REF the
 * record embedded in the dirent it names (td: the dirent tree's model).  <0: neither. */
static int raw_decode(const struct tu_model *ti, const struct tu_model *tdir, size_t i,
		      struct ns_inode *h)
{
	const struct tu_ent *ie = &ti->ents[i];
	if (!ns_is_ref(ie->val, ie->vlen))
		return ns_inode_decode(ie->val, ie->vlen, h, NULL);
	uint64_t parent;
	const uint8_t *name;
	size_t nlen;
	uint8_t k[8 + 255];
	if (ns_ref_decode(ie->val, ie->vlen, &parent, &name, &nlen) < 0)
		return -1;
	stbe64(k, parent);
	memcpy(k + 8, name, nlen);
	const struct tu_ent *de = tu_model_get(tdir, k, 8 + nlen);
	if (!de || de->vlen <= DIRENT_VALUE || ld64(de->val) != ldbe64(ie->key))
		return -1;
	return ns_inode_decode(de->val + DIRENT_VALUE, de->vlen - DIRENT_VALUE, h, NULL);
}

/*
 * The data file, the kvfs closed: store_verify clean, and every data block as man/kvfs.5
 * says: of a regular file kept in blocks, below ceil(size / 4096) unless a pending truncation
 * to that size (an 8-byte orphan value) or a pending purge (nlink 0) covers it, and counted by
 * its inode's blocks field.  Returns the blocks and orphan entries found.
 */
static struct raw_sum raw_ok(struct ns *n)
{
	struct store *st = NULL;
	struct tu_model ti, tn, td, to;
	static char msg[4096];
	struct raw_sum sum;
	int rc = tu_open(&n->env, 0, &st);

	TU_ASSERT_EQ(rc, 0, "%s", "store_open of the closed store");
	rc = tu_verify(st, msg, sizeof(msg));
	TU_ASSERT(rc == 0, "store_verify: %s", msg);
	memset(&ti, 0, sizeof(ti));
	memset(&tn, 0, sizeof(tn));
	memset(&td, 0, sizeof(td));
	memset(&to, 0, sizeof(to));
	OK(tu_store_load(st, "t0", &ti));
	OK(tu_store_load(st, "t1", &tn));
	OK(tu_store_load(st, "t2", &td));
	OK(tu_store_load(st, "t4", &to));
	uint64_t *cnt = calloc(ti.n + 1, sizeof(*cnt));
	TU_ASSERT(cnt != NULL, "%s", "calloc");
	for (size_t i = 0; i < td.n; i++) {
		const struct tu_ent *e = &td.ents[i];
		TU_ASSERT_EQ(e->klen, 16, "data key %zu", i);
		uint64_t ino = ldbe64(e->key), blk = ldbe64(e->key + 8);
		size_t c = raw_ino(&ti, ino);
		TU_ASSERT(c != SIZE_MAX, "block %llu of missing inode %llu", (unsigned long long)blk,
			  (unsigned long long)ino);
		struct ns_inode h;
		TU_ASSERT(raw_decode(&ti, &tn, c, &h) >= 0,
			  "inode %llu: record does not parse", (unsigned long long)ino);
		uint32_t mode = h.mode, nlink = h.nlink;
		uint64_t size = h.size;
		TU_ASSERT(S_ISREG(mode) && !(h.flags & INODE_INLINE),
			  "block %llu of inode %llu, which keeps none", (unsigned long long)blk,
			  (unsigned long long)ino);
		const struct tu_ent *o = tu_model_get(&to, e->key, 8);
		bool covered = o && (nlink == 0 || (o->vlen == 8 && ld64(o->val) == size));
		TU_ASSERT(blk < (size + BLOCK - 1) / BLOCK || covered,
			  "block %llu of inode %llu lies past its size %llu, no orphan entry covers "
			  "it", (unsigned long long)blk, (unsigned long long)ino,
			  (unsigned long long)size);
		cnt[c]++;
	}
	for (size_t i = 0; i < ti.n; i++) {
		struct ns_inode h;
		TU_ASSERT(raw_decode(&ti, &tn, i, &h) >= 0,
			  "inode %llu: record does not parse",
			  (unsigned long long)ldbe64(ti.ents[i].key));
		if (S_ISREG(h.mode))
			TU_ASSERT_EQ(h.blocks, cnt[i], "blocks field of inode %llu",
				     (unsigned long long)ldbe64(ti.ents[i].key));
	}
	sum.blocks = td.n;
	sum.orphans = to.n;
	free(cnt);
	tu_model_free(&ti);
	tu_model_free(&tn);
	tu_model_free(&td);
	tu_model_free(&to);
	tu_close_ok(st);
	return sum;
}

/* kvfs-check OPT STORE (KVFS_CHECK_BIN, or ./kvfs-check in the build directory): its exit
 * status and output, or -1 when it is not there (not built). */
static int run_check(struct ns *n, const char *opt, char *out, size_t cap)
{
	const char *bin = getenv("KVFS_CHECK_BIN");
	char cmd[2 * PATH_MAX + 64];

#ifdef KVFS_CHECK_BIN /* built with the suite (tests/checker.cmake): it must be there */
	if (!bin)
		bin = KVFS_CHECK_BIN;
	TU_ASSERT(access(bin, X_OK) == 0, "kvfs-check %s is not there", bin);
#else
	if (!bin)
		bin = "./kvfs-check";
	if (access(bin, X_OK) != 0)
		return -1;
#endif
	snprintf(cmd, sizeof(cmd), "'%s' %s '%s' 2>&1", bin, opt, n->env.path);
	FILE *f = popen(cmd, "r");
	TU_ASSERT(f != NULL, "popen %s", cmd);
	size_t got = fread(out, 1, cap - 1, f);
	out[got] = 0;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* kvfs-check -n must find the closed store clean (when kvfs-check is built). */
static void check_clean(struct ns *n)
{
	static char out[16384];
	int rc = run_check(n, "-n", out, sizeof(out));

	if (rc == -1) {
		fprintf(stderr, "check_namespace: no kvfs-check (KVFS_CHECK_BIN or ./kvfs-check): "
			"its run is skipped\n");
		return;
	}
	TU_ASSERT(rc == 0, "kvfs-check -n = %d:\n%s", rc, out);
}

/* kvfs-check on a closed store left with steps pending (when kvfs-check is built): -n exits 4
 * reporting NS_ORPHAN_PENDING (and `also`, when not NULL) and none of NS_SIZE,
 * NS_BLOCKS_COUNT, NS_LOST, NS_ORPHAN_STALE; with `repair`, -y then finishes the steps as the
 * next open would: no orphan left, `blocks` data blocks, and the store clean. */
static void check_pending(struct ns *n, const char *also, bool repair, uint64_t blocks)
{
	static char out[16384];
	int rc = run_check(n, "-n", out, sizeof(out));
	if (rc == -1)
		return;
	TU_ASSERT(rc == 4 && strstr(out, "NS_ORPHAN_PENDING") && (!also || strstr(out, also)) &&
			  !strstr(out, "NS_SIZE") && !strstr(out, "NS_BLOCKS_COUNT") &&
			  !strstr(out, "NS_LOST") && !strstr(out, "NS_ORPHAN_STALE"),
		  "kvfs-check -n = %d (want 4, NS_ORPHAN_PENDING only):\n%s", rc, out);
	if (!repair)
		return;
	rc = run_check(n, "-y", out, sizeof(out));
	TU_ASSERT(rc == 1, "kvfs-check -y = %d:\n%s", rc, out);
	struct raw_sum sum = raw_ok(n);
	EXPECT(sum.orphans, 0);
	EXPECT(sum.blocks, blocks);
	check_clean(n);
}

/* rm, rename over, the release of an unlinked open file: purges of many steps. */
START_TEST(test_steps_unlink)
{
	struct ns n;
	struct kvfs_stat st;
	size_t len = 37 * 4096 + 100;
	uint8_t *buf = malloc(len);

	TU_ASSERT(buf != NULL, "%s", "malloc");
	pat(buf, len, 1, 0);
	tu_env_posix(&n.env);
	ns_open_tuned(&n, KVFS_CREATE, STEP, 0);
	struct kvfs *fs = n.fs;
	OK(kvfs_put(fs, "d/big", buf, len));
	OK(kvfs_put(fs, "d/small", buf, 3 * 4096)); /* fewer blocks than a step: one change */
	uint64_t d = ino_ok(fs, "d"), big = ino_ok(fs, "d/big");
	OK(kvfs_setxattr(fs, big, "user.a", "v", 1, 0));
	st = attr_ok(fs, big);
	EXPECT(st.blocks, 38 * 8);
	OK(kvfs_delete(fs, "d/big"));
	EXPECT(kvfs_exists(fs, "d/big"), 0);
	EXPECT(kvfs_getattr(fs, big, &st), -ENOENT);
	EXPECT(kvfs_getxattr(fs, big, "user.a", NULL, 0), -ENOENT);

	/* unlinked while open: readable, then purged in steps at the release */
	OK(kvfs_put(fs, "d/open", buf, len));
	uint64_t o = ino_ok(fs, "d/open");
	OK(kvfs_open_ino(fs, o));
	OK(kvfs_unlink(fs, d, "open"));
	READ_EQ(fs, o, 0, buf, len);
	EXPECT(attr_ok(fs, o).nlink, 0);
	kvfs_release_ino(fs, o);
	EXPECT(kvfs_getattr(fs, o, &st), -ENOENT);

	/* a rename over a big file purges it */
	OK(kvfs_put(fs, "d/victim", buf, len));
	uint64_t v = ino_ok(fs, "d/victim");
	OK(kvfs_rename(fs, d, "small", d, "victim", 0));
	EXPECT(kvfs_getattr(fs, v, &st), -ENOENT);
	GET_EQ(fs, "d/victim", buf, 3 * 4096);
	EXPECT(kvfs_exists(fs, "d/small"), 0);

	ns_close_ok(&n);
	struct raw_sum sum = raw_ok(&n);
	EXPECT(sum.blocks, 3);
	EXPECT(sum.orphans, 0);
	check_clean(&n);
	ns_open_tuned(&n, 0, STEP, 0);
	GET_EQ(n.fs, "d/victim", buf, 3 * 4096);
	free(buf);
	ns_done(&n);
}
END_TEST

/* Truncation in steps: the size first, then the blocks past it; growing again shows zeros. */
START_TEST(test_steps_truncate)
{
	struct ns n;
	struct kvfs_stat st;
	size_t len = 41 * 4096;
	uint8_t *buf = malloc(len), *zero = calloc(1, len);
	uint64_t at;

	TU_ASSERT(buf && zero, "%s", "malloc");
	pat(buf, len, 2, 0);
	tu_env_posix(&n.env);
	ns_open_tuned(&n, KVFS_CREATE, STEP, 0);
	struct kvfs *fs = n.fs;
	OK(kvfs_put(fs, "t", buf, len));
	uint64_t t = ino_ok(fs, "t");
	st = set_size_ok(fs, t, 5000);
	EXPECT(st.blocks, 2 * 8);
	READ_EQ(fs, t, 0, buf, 5000);
	/* growing again: the old blocks are gone, not shown again */
	st = set_size_ok(fs, t, len);
	EXPECT(st.blocks, 2 * 8);
	memcpy(zero, buf, 5000); /* the first 5000 bytes, then zeros */
	READ_EQ(fs, t, 0, zero, len);
	memset(zero, 0, 5000);
	EXPECT(kvfs_lseek(fs, t, 8192, KVFS_SEEK_DATA, &at), -ENXIO);
	/* to 0: inline again */
	EXPECT(kvfs_write(fs, t, buf, len, 0), (ssize_t)len);
	st = set_size_ok(fs, t, 0);
	EXPECT(st.blocks, 0);
	EXPECT(kvfs_write(fs, t, "abc", 3, 0), 3);
	READ_EQ(fs, t, 0, "abc", 3);

	/* an unlinked file held open, truncated: it stays an orphan until its release */
	OK(kvfs_put(fs, "u", buf, len));
	uint64_t u = ino_ok(fs, "u");
	OK(kvfs_open_ino(fs, u));
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "u"));
	st = set_size_ok(fs, u, 4096);
	EXPECT(st.blocks, 8);
	EXPECT(st.nlink, 0);
	READ_EQ(fs, u, 0, buf, 4096);
	fs = ns_reopen(&n); /* the orphan is purged at close: as a crash, the next open would */
	EXPECT(kvfs_getattr(fs, u, &st), -ENOENT);
	READ_EQ(fs, t, 0, "abc", 3);

	ns_close_ok(&n);
	struct raw_sum sum = raw_ok(&n);
	EXPECT(sum.blocks, 0);
	EXPECT(sum.orphans, 0);
	check_clean(&n);
	free(buf);
	free(zero);
	ns_done(&n);
}
END_TEST

/* kvfs_put over a bigger file: one change (the old blocks past the new size go after, in
 * steps), the inode kept (hard links see the new bytes); a split put over 16 MiB too. */
START_TEST(test_steps_put_over)
{
	struct ns n;
	struct kvfs_stat st;
	size_t len = 60 * 4096 + 10, nlen = 10 * 4096 + 7, huge = (16u << 20) + 3 * 4096 + 5;
	uint8_t *buf = malloc(len), *nb = malloc(nlen), *hb = malloc(huge);

	TU_ASSERT(buf && nb && hb, "%s", "malloc");
	pat(buf, len, 3, 0);
	pat(nb, nlen, 4, 0);
	pat(hb, huge, 5, 0);
	tu_env_posix(&n.env);
	ns_open_tuned(&n, KVFS_CREATE, STEP, 0);
	struct kvfs *fs = n.fs;
	OK(kvfs_put(fs, "p", buf, len));
	uint64_t p = ino_ok(fs, "p");
	OK(kvfs_link(fs, p, KVFS_ROOT_INO, "p2", &st));
	OK(kvfs_put(fs, "p", nb, nlen));
	EXPECT(ino_ok(fs, "p"), p);
	GET_EQ(fs, "p", nb, nlen);
	GET_EQ(fs, "p2", nb, nlen);
	EXPECT(attr_ok(fs, p).blocks, 11 * 8);
	/* a small value over a file of more blocks than a step: kept in one block */
	OK(kvfs_put(fs, "p", "tiny", 4));
	GET_EQ(fs, "p2", "tiny", 4);
	EXPECT(attr_ok(fs, p).blocks, 8);
	/* an empty value over a big file */
	OK(kvfs_put(fs, "p", buf, len));
	OK(kvfs_put(fs, "p", NULL, 0));
	GET_EQ(fs, "p", "", 0);
	EXPECT(attr_ok(fs, p).blocks, 0);
	/* a bigger one over a smaller one, then a put of more than 16 MiB (in pieces) over it */
	OK(kvfs_put(fs, "p", nb, nlen));
	OK(kvfs_put(fs, "p", buf, len));
	GET_EQ(fs, "p2", buf, len);
	EXPECT(attr_ok(fs, p).blocks, 61 * 8);
	OK(kvfs_put(fs, "p", hb, huge));
	GET_EQ(fs, "p2", hb, huge);
	EXPECT(attr_ok(fs, p).blocks, (huge + 4095) / 4096 * 8);
	OK(kvfs_put(fs, "p", buf, len));
	GET_EQ(fs, "p", buf, len);
	EXPECT(attr_ok(fs, p).blocks, 61 * 8);

	fs = ns_reopen(&n);
	GET_EQ(fs, "p2", buf, len);
	ns_close_ok(&n);
	struct raw_sum sum = raw_ok(&n);
	EXPECT(sum.blocks, 61);
	EXPECT(sum.orphans, 0);
	check_clean(&n);
	free(buf);
	free(nb);
	free(hb);
	tu_env_fini(&n.env);
}
END_TEST

/* kvfs_batch: deletes of big files and a put over one share one step; the rest after. */
START_TEST(test_steps_batch)
{
	struct ns n;
	struct kvfs_stat st;
	size_t len = 30 * 4096;
	uint8_t *buf = malloc(len);
	struct kvfs_batch *b = kvfs_batch_new();

	TU_ASSERT(buf && b, "%s", "malloc");
	pat(buf, len, 6, 0);
	tu_env_posix(&n.env);
	ns_open_tuned(&n, KVFS_CREATE, STEP, 0);
	struct kvfs *fs = n.fs;
	OK(kvfs_put(fs, "a/x", buf, len));
	OK(kvfs_put(fs, "a/y", buf, len));
	OK(kvfs_put(fs, "a/z", buf, len));
	OK(kvfs_put(fs, "a/w", buf, len));
	OK(kvfs_put(fs, "a/s", buf, 4096));
	uint64_t x = ino_ok(fs, "a/x"), w = ino_ok(fs, "a/w");
	OK(kvfs_batch_delete(b, "a/x"));
	OK(kvfs_batch_delete(b, "a/y"));
	OK(kvfs_batch_delete(b, "a/z"));
	OK(kvfs_batch_put(b, "a/w", buf + 4096, 2 * 4096));
	OK(kvfs_batch_put(b, "a/n", "new", 3));
	OK(kvfs_batch_commit(fs, b));
	EXPECT(kvfs_exists(fs, "a/x"), 0);
	EXPECT(kvfs_exists(fs, "a/y"), 0);
	EXPECT(kvfs_exists(fs, "a/z"), 0);
	EXPECT(kvfs_getattr(fs, x, &st), -ENOENT);
	GET_EQ(fs, "a/w", buf + 4096, 2 * 4096);
	EXPECT(ino_ok(fs, "a/w"), w);
	EXPECT(attr_ok(fs, w).blocks, 2 * 8);
	GET_EQ(fs, "a/n", "new", 3);
	GET_EQ(fs, "a/s", buf, 4096);

	ns_close_ok(&n);
	struct raw_sum sum = raw_ok(&n);
	EXPECT(sum.blocks, 3);
	EXPECT(sum.orphans, 0);
	check_clean(&n);
	kvfs_batch_free(b);
	free(buf);
	tu_env_fini(&n.env);
}
END_TEST

/* Leave t truncated to 3 blocks and u unlinked, each with its first step only (10 of u's 40
 * blocks deleted), as a crash between steps does.  The kvfs is closed on entry and return. */
/* Where ino's record is (through a raw engine e): the key of T_INODE[ino] or, when that is an
 * INODE REF, of its dirent; *tree and *klen set, *off the record's offset in the value. */
static void raw_inode_where(struct engine *e, uint64_t ino, uint8_t *k, size_t *klen,
			    unsigned *tree, size_t *off)
{
	uint8_t v[NS_REF_MAX];
	size_t vlen;
	ino_key(k, ino);
	*klen = 8;
	*tree = T_INODE;
	*off = 0;
	OK(engine_get(e, T_INODE, k, 8, v, sizeof(v), &vlen));
	if (ns_is_ref(v, vlen)) {
		uint64_t parent;
		const uint8_t *name;
		size_t nlen;
		OK(ns_ref_decode(v, vlen, &parent, &name, &nlen));
		stbe64(k, parent);
		memcpy(k + 8, name, nlen);
		*klen = 8 + nlen;
		*tree = T_DIRENT;
		*off = DIRENT_VALUE;
	}
}

/* A closed store's inode record (in T_INODE or embedded in its dirent), read and decoded
 * through a raw engine (e). */
static void raw_inode_get(struct engine *e, uint64_t ino, struct ns_inode *h)
{
	uint8_t k[8 + 255], v[DIRENT_VALUE + NS_INODE_HDR_MAX];
	size_t klen, vlen, off;
	unsigned tree;
	raw_inode_where(e, ino, k, &klen, &tree, &off);
	OK(engine_get(e, tree, k, klen, v, sizeof(v), &vlen));
	TU_ASSERT(vlen <= sizeof(v) && vlen > off, "inode record of %zu bytes", vlen);
	/* in blocks: no inline data */
	EXPECT((size_t)ns_inode_decode(v + off, vlen - off, h, NULL), vlen - off);
}

/* Add to b the inode record h of ino (no inline data), where the store (e) keeps it; e NULL:
 * into T_INODE (where an orphan's record must be, over its INODE REF if it had one). */
static void raw_inode_put(struct engine *e, struct engine_batch *b, uint64_t ino,
			  const struct ns_inode *h)
{
	uint8_t k[8 + 255], v[DIRENT_VALUE + NS_INODE_HDR_MAX];
	size_t klen = 8, off = 0;
	unsigned tree = T_INODE;
	if (e)
		raw_inode_where(e, ino, k, &klen, &tree, &off);
	else
		ino_key(k, ino);
	st64(v, ino);
	v[8] = (uint8_t)((h->mode & S_IFMT) >> 12);
	OK(engine_batch_put(b, tree, k, klen, v + (DIRENT_VALUE - off),
			    off + ns_inode_encode(h, v + DIRENT_VALUE)));
}

static void make_cut_short(struct ns *n, const uint8_t *buf, size_t len, uint64_t *t, uint64_t *u)
{
	struct engine *e;
	struct engine_options eo;
	struct engine_batch *b = engine_batch_new();
	uint8_t k[16], dk[8 + 1], ov[8];
	struct ns_inode h;

	ns_open_tuned(n, 0, STEP, 0);
	OK(kvfs_put(n->fs, "t", buf, len));
	OK(kvfs_put(n->fs, "u", buf, len));
	*t = ino_ok(n->fs, "t");
	*u = ino_ok(n->fs, "u");
	ns_close_ok(n);
	memset(&eo, 0, sizeof(eo));
	eo.log = tu_log_cb;
	OK(engine_open(n->env.path, &eo, &e));
	TU_ASSERT(b != NULL, "%s", "engine_batch_new");
	raw_inode_get(e, *t, &h);
	h.size = 3 * 4096;
	raw_inode_put(e, b, *t, &h);
	ino_key(k, *t);
	st64(ov, 3 * 4096);
	OK(engine_batch_put(b, T_ORPHAN, k, 8, ov, 8));
	raw_inode_get(e, *u, &h);
	h.nlink = 0;
	h.blocks -= 10;
	raw_inode_put(NULL, b, *u, &h); /* an orphan: its record in T_INODE (EI-4) */
	ino_key(k, *u);
	OK(engine_batch_put(b, T_ORPHAN, k, 8, NULL, 0));
	OK(engine_batch_del(b, T_DIRENT, dk, dirent_key(dk, KVFS_ROOT_INO, "u", 1)));
	for (uint64_t i = 0; i < 10; i++) {
		block_key(k, *u, i);
		OK(engine_batch_del(b, T_DATA, k, 16));
	}
	OK(engine_commit(e, b, NULL));
	engine_batch_free(b);
	OK(engine_close(e));
}

/* A purge and a truncation cut short: kvfs-check sees pending orphans only, -y or the next
 * open finishes them. */
/* Link the file at `key` as `name2` in the root (nlink 2); its inode number. */
static uint64_t link_ok(struct kvfs *fs, const char *key, const char *name2)
{
	struct kvfs_stat st;
	uint64_t ino = ino_ok(fs, key);

	OK(kvfs_link(fs, ino, KVFS_ROOT_INO, name2, &st));
	EXPECT(st.nlink, 2);
	return ino;
}

/*
 * Several operations of one kvfs_batch on one inode through its hard links (kvfs_batch_commit
 * runs them in key order): a later put truncates or grows what an earlier put of the same
 * batch wrote, which the engine does not show before the commit (namespace.c fs->bnotes).
 * Every block past the last size must go with the batch, the blocks field must count what is
 * stored, and kvfs-check must find the store clean.  Then with a step of 4 blocks: the old
 * blocks left to steps, the orphan entry holding the inode's last size.
 */
START_TEST(test_batch_links)
{
	struct ns n;
	struct kvfs_stat st;
	size_t big = 40 * 4096 + 1;
	uint8_t *v5 = malloc(5 * 4096), *v2 = malloc(5000), *v3 = malloc(3 * 4096),
		*v6 = malloc(6 * 4096), *vb = malloc(big);
	struct kvfs_batch *b = kvfs_batch_new();

	TU_ASSERT(v5 && v2 && v3 && v6 && vb && b, "%s", "malloc");
	pat(v5, 5 * 4096, 11, 0);
	pat(v2, 5000, 12, 0);
	pat(v3, 3 * 4096, 13, 0);
	pat(v6, 6 * 4096, 14, 0);
	pat(vb, big, 15, 0);
	tu_env_posix(&n.env);
	ns_open_tuned(&n, KVFS_CREATE, 0, 0);
	struct kvfs *fs = n.fs;

	/* inline file; put a (5 blocks), then put b (tiny): inline again, no block left */
	OK(kvfs_put(fs, "a", "x", 1));
	uint64_t a = link_ok(fs, "a", "b");
	OK(kvfs_batch_put(b, "a", v5, 5 * 4096));
	OK(kvfs_batch_put(b, "b", "tiny", 4));
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "a", "tiny", 4);
	EXPECT(ino_ok(fs, "b"), a);
	EXPECT(attr_ok(fs, a).blocks, 0);

	/* put c (5 blocks), then put d (2 blocks): the batch's blocks 2-4 go */
	kvfs_batch_clear(b);
	OK(kvfs_put(fs, "c", "y", 1));
	uint64_t c = link_ok(fs, "c", "d");
	OK(kvfs_batch_put(b, "c", v5, 5 * 4096));
	OK(kvfs_batch_put(b, "d", v2, 5000));
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "c", v2, 5000);
	EXPECT(attr_ok(fs, c).blocks, 2 * 8);

	/* 10 committed blocks; put e (3 blocks: 3-9 deleted), then put f (6 blocks): the
	 * batch's deletes of 3-5 are overwritten, 6-9 stay deleted */
	kvfs_batch_clear(b);
	OK(kvfs_put(fs, "e", vb, 10 * 4096));
	uint64_t e = link_ok(fs, "e", "f");
	OK(kvfs_batch_put(b, "e", v3, 3 * 4096));
	OK(kvfs_batch_put(b, "f", v6, 6 * 4096));
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "e", v6, 6 * 4096);
	EXPECT(attr_ok(fs, e).blocks, 6 * 8);

	/* a put through one name, a delete through the other */
	kvfs_batch_clear(b);
	OK(kvfs_put(fs, "g", vb, 4 * 4096));
	uint64_t g = link_ok(fs, "g", "h");
	OK(kvfs_batch_put(b, "g", v3, 3 * 4096));
	OK(kvfs_batch_delete(b, "h"));
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "g", v3, 3 * 4096);
	EXPECT(kvfs_exists(fs, "h"), 0);
	st = attr_ok(fs, g);
	EXPECT(st.nlink, 1);
	EXPECT(st.blocks, 3 * 8);
	/* three names: two puts and a delete, the last put the smallest */
	kvfs_batch_clear(b);
	OK(kvfs_link(fs, g, KVFS_ROOT_INO, "g2", &st));
	OK(kvfs_link(fs, g, KVFS_ROOT_INO, "g3", &st));
	OK(kvfs_batch_put(b, "g", v6, 6 * 4096));
	OK(kvfs_batch_delete(b, "g2"));
	OK(kvfs_batch_put(b, "g3", v2, 5000));
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "g", v2, 5000);
	st = attr_ok(fs, g);
	EXPECT(st.nlink, 2);
	EXPECT(st.blocks, 2 * 8);

	/* with a step of 4 blocks: a 40-block file, put p (3 blocks: 4 blocks deleted, the rest
	 * left to steps) then put q (6 blocks); and put r (5 blocks) over a 41-block file, then
	 * put s (tiny: the step is spent, so kept in a block) */
	ns_close_ok(&n);
	ns_open_tuned(&n, 0, STEP, 0);
	fs = n.fs;
	OK(kvfs_put(fs, "p", vb, 40 * 4096));
	uint64_t p = link_ok(fs, "p", "q");
	OK(kvfs_put(fs, "r", vb, big));
	uint64_t r = link_ok(fs, "r", "s");
	kvfs_batch_clear(b);
	OK(kvfs_batch_put(b, "p", v3, 3 * 4096));
	OK(kvfs_batch_put(b, "q", v6, 6 * 4096));
	OK(kvfs_batch_put(b, "r", v5, 5 * 4096));
	OK(kvfs_batch_put(b, "s", "tiny", 4));
	OK(kvfs_batch_commit(fs, b));
	GET_EQ(fs, "p", v6, 6 * 4096);
	EXPECT(attr_ok(fs, p).blocks, 6 * 8);
	GET_EQ(fs, "r", "tiny", 4);
	EXPECT(attr_ok(fs, r).blocks, 8);

	ns_close_ok(&n);
	struct raw_sum sum = raw_ok(&n);
	EXPECT(sum.blocks, 2 + 6 + 2 + 6 + 1);
	EXPECT(sum.orphans, 0);
	check_clean(&n);
	ns_open_tuned(&n, 0, STEP, 0);
	GET_EQ(n.fs, "b", "tiny", 4);
	GET_EQ(n.fs, "d", v2, 5000);
	GET_EQ(n.fs, "f", v6, 6 * 4096);
	GET_EQ(n.fs, "g3", v2, 5000);
	GET_EQ(n.fs, "q", v6, 6 * 4096);
	GET_EQ(n.fs, "s", "tiny", 4);
	kvfs_batch_free(b);
	free(v5);
	free(v2);
	free(v3);
	free(v6);
	free(vb);
	ns_done(&n);
}
END_TEST

START_TEST(test_steps_cut_short)
{
	struct ns n;
	struct kvfs_stat st;
	size_t len = 40 * 4096;
	uint8_t *buf = malloc(len);
	uint64_t t, u;

	TU_ASSERT(buf != NULL, "%s", "malloc");
	pat(buf, len, 7, 0);
	ns_setup(&n);
	ns_close_ok(&n);
	for (int round = 0; round < 2; round++) {
		make_cut_short(&n, buf, len, &t, &u);
		struct raw_sum sum = raw_ok(&n); /* the cut-short state is a sound one */
		EXPECT(sum.orphans, 2);
		EXPECT(sum.blocks, 40 + 30);
		check_pending(&n, NULL, round == 1, 3); /* round 1: repaired as the next open would */
		ns_open_tuned(&n, 0, STEP, 0);
		EXPECT(kvfs_getattr(n.fs, u, &st), -ENOENT);
		EXPECT(kvfs_exists(n.fs, "u"), 0);
		GET_EQ(n.fs, "t", buf, 3 * 4096);
		EXPECT(attr_ok(n.fs, t).blocks, 3 * 8);
		ns_close_ok(&n);
		sum = raw_ok(&n);
		EXPECT(sum.orphans, 0);
		EXPECT(sum.blocks, 3);
		check_clean(&n);
	}
	free(buf);
	tu_env_fini(&n.env);
}
END_TEST

/* Write `blocks` blocks of pattern into a new file `name` in the root, 64 blocks a write
 * (a 256 KiB record: a 1 MiB ring takes 512 KiB at most). */
static uint64_t big_file(struct kvfs *fs, const char *name, uint64_t blocks, uint8_t *chunk)
{
	struct kvfs_stat st;

	OK(kvfs_mknod(fs, KVFS_ROOT_INO, name, S_IFREG | 0644, 0, 0, 0, &st));
	for (uint64_t b = 0; b < blocks; b += 64) {
		size_t n = (size_t)((blocks - b < 64 ? blocks - b : 64) * 4096);
		pat(chunk, n, 8, b * 4096);
		TU_ASSERT_EQ(kvfs_write(fs, st.ino, chunk, n, b * 4096), (ssize_t)n, "write at block %llu",
			     (unsigned long long)b);
	}
	return st.ino;
}

/* A file of 24,000 blocks (94 MiB, no holes) with a 1 MiB log ring: deleting every block in
 * one change is a 576 KiB record, more than half the ring (-EFBIG: what rm met before the
 * steps); truncating and removing it in steps works. */
START_TEST(test_edge_steps_small_ring)
{
	struct ns n;
	struct kvfs_stat st;
	const uint64_t nblk = 24000;
	uint8_t *chunk = malloc(64 * 4096), *want = malloc(3 * 4096);

	TU_ASSERT(chunk && want, "%s", "malloc");
	tu_env_posix(&n.env);
	ns_open_tuned(&n, KVFS_CREATE, 1ull << 40, 1u << 20); /* one change, as before */
	uint64_t f = big_file(n.fs, "f", nblk, chunk);
	EXPECT(attr_ok(n.fs, f).blocks, nblk * 8);
	EXPECT(kvfs_unlink(n.fs, KVFS_ROOT_INO, "f"), -EFBIG);
	ns_close_ok(&n);

	ns_open_tuned(&n, 0, 0, 1u << 20); /* the default step, the same ring */
	struct kvfs *fs = n.fs;
	EXPECT(kvfs_exists(fs, "f"), 1);
	st = set_size_ok(fs, f, 3 * 4096 - 10);
	EXPECT(st.blocks, 3 * 8);
	pat(want, 3 * 4096 - 10, 8, 0);
	READ_EQ(fs, f, 0, want, 3 * 4096 - 10);
	uint64_t g = big_file(fs, "g", nblk, chunk);
	/* a hole over every block but the first and last (in one change: a 576 KiB record) */
	OK(kvfs_fallocate(fs, g, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 100,
			  nblk * 4096 - 200));
	st = attr_ok(fs, g);
	EXPECT(st.blocks, 2 * 8);
	EXPECT(st.size, nblk * 4096);
	pat(want, 100, 8, 0);
	memset(want + 100, 0, 3 * 4096 - 100);
	static uint8_t got3[3 * 4096];
	EXPECT(kvfs_read(fs, g, got3, sizeof(got3), 0), (ssize_t)sizeof(got3));
	TU_ASSERT(memcmp(got3, want, sizeof(got3)) == 0, "%s", "the hole's first blocks");
	pat(want, 3 * 4096, 8, (nblk - 3) * 4096);
	memset(want, 0, 3 * 4096 - 100);
	READ_EQ(fs, g, (nblk - 3) * 4096, want, 3 * 4096);
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "g"));
	EXPECT(kvfs_getattr(fs, g, &st), -ENOENT);
	ns_close_ok(&n);
	struct raw_sum sum = raw_ok(&n);
	EXPECT(sum.blocks, 3);
	EXPECT(sum.orphans, 0);
	check_clean(&n);
	free(chunk);
	free(want);
	tu_env_fini(&n.env);
}
END_TEST

#define PUNCH (KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE)

/* Holes punched in steps: reads show zeros and st_blocks is right when the call returns, the
 * bytes around the hole stay; a write into the hole afterwards stays (no later step deletes
 * it); an unlinked open file keeps its orphan entry through a punch and is purged at its
 * release.  Then no orphan entry is left, and kvfs-check finds the store clean. */
/* ns_open_with: steps of STEP blocks, no checkpoint thread. */
static int ns_open_steps(struct ns *n, unsigned flags)
{
	return ns_open_with(n, flags, STEP, 0, true);
}

/* Tombstones that engine iterators stepped over since the last call (n->fs's engine). */
static uint64_t tombstones_since(struct ns *n, uint64_t *last)
{
	struct engine_stat es;
	OK(kvfs_env_engine_stat(n->fs, &es));
	uint64_t d = es.n_iter_tombstones - *last;
	*last = es.n_iter_tombstones;
	return d;
}

/*
 * A deletion in many steps is linear in its blocks: each step of orphan_finish goes on where
 * the last one stopped, not from the start of its range, where it would step over the
 * tombstones of every earlier step again (checkpoints are off, so they all stay in the
 * overlay): 256 blocks in steps of 4 made ~8,000 such steps before (quadratic), at most one
 * pass over the blocks now.  For a truncation, a purge and a punch; each result read back.
 */
START_TEST(test_steps_linear)
{
	enum { NB = 256 };
	struct ns n;
	size_t len = NB * 4096;
	uint8_t *buf = malloc(len), *want = malloc(len);
	uint64_t last = 0;

	TU_ASSERT(buf && want, "%s", "malloc");
	pat(buf, len, 11, 0);
	tu_env_posix(&n.env);
	OK(ns_open_steps(&n, KVFS_CREATE));
	struct kvfs *fs = n.fs;
	OK(kvfs_put(fs, "t", buf, len));
	OK(kvfs_put(fs, "u", buf, len));
	OK(kvfs_put(fs, "p", buf, len));
	uint64_t ti = ino_ok(fs, "t"), pi = ino_ok(fs, "p");
	tombstones_since(&n, &last);

	struct kvfs_stat st = set_size_ok(fs, ti, 0);
	EXPECT(st.blocks, 0);
	uint64_t d = tombstones_since(&n, &last);
	TU_ASSERT(d <= NB, "a truncation of %d blocks in steps of %u stepped over %" PRIu64
		  " tombstones", NB, STEP, d);

	OK(kvfs_delete(fs, "u"));
	d = tombstones_since(&n, &last);
	TU_ASSERT(d <= NB, "a purge of %d blocks in steps of %u stepped over %" PRIu64
		  " tombstones", NB, STEP, d);
	EXPECT(kvfs_exists(fs, "u"), 0);

	OK(kvfs_fallocate(fs, pi, PUNCH, 4096, (NB - 2) * 4096));
	d = tombstones_since(&n, &last);
	TU_ASSERT(d <= NB, "a punch of %d blocks in steps of %u stepped over %" PRIu64
		  " tombstones", NB - 2, STEP, d);
	memcpy(want, buf, len);
	memset(want + 4096, 0, (NB - 2) * 4096);
	READ_EQ(fs, pi, 0, want, len);
	EXPECT(attr_ok(fs, pi).blocks, 2 * 8);
	EXPECT(attr_ok(fs, ti).size, 0);
	fs = ns_reopen(&n);
	READ_EQ(fs, pi, 0, want, len);
	EXPECT(kvfs_exists(fs, "u"), 0);
	ns_close_ok(&n);
	tu_env_fini(&n.env);
	free(buf);
	free(want);
}
END_TEST

START_TEST(test_steps_punch)
{
	struct ns n;
	struct kvfs_stat st;
	size_t len = 40 * 4096 + 100;
	uint8_t *buf = malloc(len), *want = malloc(len);
	uint64_t at;

	TU_ASSERT(buf && want, "%s", "malloc");
	pat(buf, len, 9, 0);
	tu_env_posix(&n.env);
	ns_open_tuned(&n, KVFS_CREATE, STEP, 0);
	struct kvfs *fs = n.fs;
	OK(kvfs_put(fs, "h", buf, len));
	uint64_t h = ino_ok(fs, "h");
	st = attr_ok(fs, h);
	EXPECT(st.blocks, 41 * 8);
	int64_t mtime = st.mtime_ns;
	/* blocks 4..32 whole (29: 8 steps), edges of 3 and 33 zeroed */
	uint64_t off = 3 * 4096 + 100, plen = 30 * 4096;
	OK(kvfs_fallocate(fs, h, PUNCH, off, plen));
	memcpy(want, buf, len);
	memset(want + off, 0, plen);
	READ_EQ(fs, h, 0, want, len);
	st = attr_ok(fs, h);
	EXPECT(st.blocks, (41 - 29) * 8);
	EXPECT(st.size, len);
	TU_ASSERT(st.mtime_ns >= mtime, "%s", "mtime went back");
	OK(kvfs_lseek(fs, h, (int64_t)(4 * 4096), KVFS_SEEK_DATA, &at));
	EXPECT(at, 33 * 4096);
	/* a write into the hole stays, also after a second punch of many steps elsewhere */
	EXPECT(write_s(fs, h, "in the hole", 10 * 4096 + 7), 11);
	memcpy(want + 10 * 4096 + 7, "in the hole", 11);
	OK(kvfs_fallocate(fs, h, PUNCH, 20 * 4096, 20 * 4096)); /* 20..39: 7 left there */
	memset(want + 20 * 4096, 0, 20 * 4096);
	READ_EQ(fs, h, 0, want, len);
	EXPECT(attr_ok(fs, h).blocks, (4 + 1 + 1) * 8); /* 0..3, 10, 40 */
	/* one within a step: one change */
	OK(kvfs_fallocate(fs, h, PUNCH, 0, 2 * 4096));
	memset(want, 0, 2 * 4096);
	READ_EQ(fs, h, 0, want, len);
	EXPECT(attr_ok(fs, h).blocks, 4 * 8);
	/* truncation inside the punched range, then growing: zeros */
	st = set_size_ok(fs, h, 15 * 4096);
	EXPECT(st.blocks, 3 * 8);
	st = set_size_ok(fs, h, len);
	memset(want + 15 * 4096, 0, len - 15 * 4096);
	READ_EQ(fs, h, 0, want, len);
	fs = ns_reopen(&n);
	READ_EQ(fs, h, 0, want, len);

	/* an unlinked file held open: punched in steps, still an orphan, purged at release */
	OK(kvfs_put(fs, "u", buf, len));
	uint64_t u = ino_ok(fs, "u");
	OK(kvfs_open_ino(fs, u));
	OK(kvfs_unlink(fs, KVFS_ROOT_INO, "u"));
	OK(kvfs_fallocate(fs, u, PUNCH, 4096, 36 * 4096));
	uint8_t *w2 = malloc(len);
	TU_ASSERT(w2 != NULL, "%s", "malloc");
	memcpy(w2, buf, len);
	memset(w2 + 4096, 0, 36 * 4096);
	READ_EQ(fs, u, 0, w2, len);
	st = attr_ok(fs, u);
	EXPECT(st.nlink, 0);
	EXPECT(st.blocks, 5 * 8);
	kvfs_release_ino(fs, u);
	EXPECT(kvfs_getattr(fs, u, &st), -ENOENT);
	free(w2);

	ns_close_ok(&n);
	struct raw_sum sum = raw_ok(&n);
	EXPECT(sum.blocks, 3);
	EXPECT(sum.orphans, 0);
	check_clean(&n);
	ns_open_tuned(&n, 0, STEP, 0);
	READ_EQ(n.fs, h, 0, want, len);
	free(buf);
	free(want);
	ns_done(&n);
}
END_TEST

/* Leave a hole punched in p, blocks [2, 38) of 40 with only 8 of them deleted, under its
 * range orphan entry, as a crash between the punch's steps does.  The kvfs is closed on entry
 * and return. */
static void make_punch_cut_short(struct ns *n, const uint8_t *buf, size_t len, uint64_t *p)
{
	struct engine *e;
	struct engine_options eo;
	struct engine_batch *b = engine_batch_new();
	uint8_t k[16], ov[16];
	struct ns_inode h;

	ns_open_tuned(n, 0, STEP, 0);
	OK(kvfs_put(n->fs, "p", buf, len));
	*p = ino_ok(n->fs, "p");
	ns_close_ok(n);
	memset(&eo, 0, sizeof(eo));
	eo.log = tu_log_cb;
	OK(engine_open(n->env.path, &eo, &e));
	TU_ASSERT(b != NULL, "%s", "engine_batch_new");
	raw_inode_get(e, *p, &h);
	h.blocks -= 8;
	raw_inode_put(e, b, *p, &h);
	ino_key(k, *p);
	st64(ov, 2);
	st64(ov + 8, 38);
	OK(engine_batch_put(b, T_ORPHAN, k, 8, ov, 16));
	for (uint64_t i = 2; i < 10; i++) {
		block_key(k, *p, i);
		OK(engine_batch_del(b, T_DATA, k, 16));
	}
	OK(engine_commit(e, b, NULL));
	engine_batch_free(b);
	OK(engine_close(e));
}

/* A punch cut short: a read-only open shows the whole hole; kvfs-check sees a pending orphan
 * only, -y finishes it, and so does the next open. */
START_TEST(test_steps_punch_cut_short)
{
	struct ns n;
	size_t len = 40 * 4096;
	uint8_t *buf = malloc(len), *want = malloc(len);
	uint64_t p, at;

	TU_ASSERT(buf && want, "%s", "malloc");
	pat(buf, len, 10, 0);
	memcpy(want, buf, len);
	memset(want + 2 * 4096, 0, 36 * 4096);
	ns_setup(&n);
	ns_close_ok(&n);
	for (int round = 0; round < 2; round++) {
		make_punch_cut_short(&n, buf, len, &p);
		struct raw_sum sum = raw_ok(&n);
		EXPECT(sum.orphans, 1);
		EXPECT(sum.blocks, 32);
		ns_open_tuned(&n, KVFS_RDONLY, STEP, 0); /* runs no step: hides the range */
		READ_EQ(n.fs, p, 0, want, len);
		memset(buf, 0xee, len);
		EXPECT(kvfs_get(n.fs, "p", buf, len), (ssize_t)len); /* one run over the range */
		MEM_EQ(buf, want, len, "kvfs_get over a pending punch");
		pat(buf, len, 10, 0);
		OK(kvfs_lseek(n.fs, p, 4096, KVFS_SEEK_HOLE, &at));
		EXPECT(at, 2 * 4096);
		OK(kvfs_lseek(n.fs, p, 2 * 4096, KVFS_SEEK_DATA, &at));
		EXPECT(at, 38 * 4096);
		ns_close_ok(&n);
		check_pending(&n, "punched", round == 1, 4); /* round 1: repaired */
		ns_open_tuned(&n, 0, STEP, 0);
		READ_EQ(n.fs, p, 0, want, len);
		EXPECT(attr_ok(n.fs, p).blocks, 4 * 8);
		OK(kvfs_unlink(n.fs, KVFS_ROOT_INO, "p"));
		ns_close_ok(&n);
		sum = raw_ok(&n);
		EXPECT(sum.orphans, 0);
		EXPECT(sum.blocks, 0);
		check_clean(&n);
	}
	free(buf);
	free(want);
	tu_env_fini(&n.env);
}
END_TEST

/*
 * A punch of 36 blocks (9 steps) with the Nth I/O call failing (ENOSPC, then EIO), for N = 1,
 * 2, ... until the call succeeds: the error is returned; the store, reopened on the same disk
 * (the process restarted, the log as written), holds the punch wholly or not at all (the
 * next open finishes a punch cut between its steps), every block counted, no orphan left.
 */
START_TEST(test_steps_punch_fault)
{
	size_t len = 40 * 4096;
	uint8_t *buf = malloc(len), *want = malloc(len);
	unsigned done_kinds = 0, n_cut = 0;

	TU_ASSERT(buf && want, "%s", "malloc");
	pat(buf, len, 11, 0);
	memcpy(want, buf, len);
	memset(want + 2 * 4096, 0, 36 * 4096);
	for (int kind = IO_FAULT_ENOSPC; kind >= IO_FAULT_EIO; kind--) {
		for (uint64_t at = 1;; at++) {
			struct ns n;
			struct kvfs_stat st;
			tu_env_fault(&n.env, at);
			OK(ns_open_steps(&n, KVFS_CREATE));
			OK(kvfs_put(n.fs, "p", buf, len));
			uint64_t p = ino_ok(n.fs, "p");
			io_fault_fail_at(n.env.m, at, (enum io_fault_kind)kind);
			int rc = kvfs_fallocate(n.fs, p, PUNCH, 2 * 4096, 36 * 4096);
			bool fired = io_fault_fired(n.env.m);
			io_fault_fail_at(n.env.m, 0, (enum io_fault_kind)kind);
			TU_ASSERT(fired ? rc < 0 : rc == 0, "fail at call %llu (%d): fired %d, "
				  "kvfs_fallocate = %d", (unsigned long long)at, kind, fired, rc);
			(void)kvfs_close(n.fs); /* the store is failed: errors expected */
			n.fs = NULL;
			OK(ns_open_steps(&n, 0)); /* the next open finishes a punch cut short */
			st = attr_ok(n.fs, p);
			uint8_t *got = malloc(len);
			TU_ASSERT(got != NULL, "%s", "malloc");
			EXPECT(kvfs_read(n.fs, p, got, len, 0), (ssize_t)len);
			bool punched = memcmp(got, want, len) == 0;
			TU_ASSERT(punched || memcmp(got, buf, len) == 0, "fail at call %llu (%d): "
				  "the punch is neither whole nor absent after the reopen",
				  (unsigned long long)at, kind);
			EXPECT(st.blocks, (punched ? 4 : 40) * 8);
			n_cut += fired && punched;
			free(got);
			ns_close_ok(&n);
			struct raw_sum sum = raw_ok(&n);
			EXPECT(sum.orphans, 0);
			EXPECT(sum.blocks, punched ? 4 : 40);
			tu_env_fini(&n.env);
			if (!fired) {
				TU_ASSERT(punched, "%s", "the punch that succeeded is not there");
				done_kinds++;
				break;
			}
			TU_ASSERT(at < 200, "%s", "kvfs_fallocate still failing after 200 calls");
		}
	}
	EXPECT(done_kinds, 2);
	TU_ASSERT(n_cut > 0, "%s", "no failure fell between the punch's steps");
	free(buf);
	free(want);
}
END_TEST

static void add_step_tests(TCase *core, TCase *edge)
{
	if (core) {
		tcase_add_test(core, test_steps_unlink);
		tcase_add_test(core, test_steps_truncate);
		tcase_add_test(core, test_steps_put_over);
		tcase_add_test(core, test_steps_batch);
		tcase_add_test(core, test_batch_links);
		tcase_add_test(core, test_steps_cut_short);
		tcase_add_test(core, test_steps_punch);
		tcase_add_test(core, test_steps_linear);
		tcase_add_test(core, test_steps_punch_cut_short);
		tcase_add_test(core, test_steps_punch_fault);
	}
	if (edge)
		tcase_add_test(edge, test_edge_steps_small_ring);
}
