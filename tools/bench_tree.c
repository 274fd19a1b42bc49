/*
 * tools/bench_tree.c — kvfs-bench-tree: the store's copy-on-write B+tree (store/store.h) alone,
 * against LMDB, on the same keys.
 *
 * What it measures, for each engine, on a fresh data file in one directory:
 *   1. insert  N random 16-byte keys with 100-byte values, B puts per write transaction, every
 *              commit durable (the store: store_txn_commit(txn, 0); LMDB: default environment
 *              flags, i.e. a synced commit);
 *   2. get     N random lookups of inserted keys, GETS_PER_TXN per read transaction, each
 *              value's length and leading bytes checked;
 *   3. scan    one ordered cursor walk (first, next, ...) over every key, counted and checked
 *              for strictly increasing order;
 *   4. size    the data file's apparent size (st_size) and allocated bytes (st_blocks * 512);
 *              the size ratio uses allocated bytes, because LMDB's file may be sparse;
 *   5. the peak RSS of the process that ran the engine.
 *
 * What it does not measure: the log, the overlay, the file namespace or FUSE (the engine
 * layers above the tree); cold-cache reads (the page cache stays as the inserts left it);
 * concurrent readers or writers.
 *
 * Each engine runs in its own child process, so that its peak RSS (wait4's ru_maxrss) is its
 * own and a crash in one engine cannot spoil the other's figures; the child sends its result
 * back through a pipe.  Keys and lookup order come from a seeded xoshiro256** generator, so
 * both engines see the same keys in the same order and a run can be repeated (--seed).
 *
 * Output: the table on stdout; diagnostics on stderr as "kvfs-bench-tree: ENGINE: what: why".
 * Figures are computed at run time and printed as rates and ratios; nothing is hard-coded.
 */
/* man: kvfs-bench-tree.1 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if KVFS_HAVE_LMDB
#include <lmdb.h>
#endif

#include "store/store.h"

#ifndef KVFS_VERSION
#define KVFS_VERSION "unknown"
#endif

#define PROG "kvfs-bench-tree"
#include "tools/bench_util.h"

#define KEY_LEN 16          /* bytes */
#define VAL_LEN 100         /* bytes */
#define GETS_PER_TXN 1000   /* lookups per read transaction, both engines */
#define TREE_NAME "bench"   /* the store's tree and LMDB's named database */
#define KVFS_FILE "bench.kvfs"
#define LMDB_SUBDIR "lmdb"

#define DEFAULT_N 1000000u
#define DEFAULT_BATCH 1000u
#define DEFAULT_SEED 42u

enum engine_id { ENGINE_KVFS, ENGINE_LMDB, N_ENGINES };
static const char *const engine_name[N_ENGINES] = { "kvfs", "lmdb" };

struct bench_cfg {
	char *dir;         /* the directory holding both engines' files */
	uint64_t n;        /* keys inserted, and lookups made */
	uint64_t batch;    /* puts per durable write transaction */
	uint64_t seed;
	bool keep;         /* keep the data files afterwards */
	bool verify;       /* run store_verify() after the kvfs run (untimed) */
};

/* What a child sends back to the parent.  Times in ns. */
struct engine_result {
	int failed;            /* nonzero: the child printed why on stderr */
	uint64_t insert_ns, get_ns, scan_ns;
	uint64_t n_commits;
	uint64_t n_scanned;
	uint64_t file_size;    /* st_size, bytes */
	uint64_t file_alloc;   /* st_blocks * 512, bytes */
	uint64_t page_count;   /* pages in the last committed state, as the engine counts them */
	uint64_t pages_free;   /* of those, on the engine's free list */
	uint64_t n_syncs;      /* fdatasync calls the engine counted, 0 if it does not count */
};

/* ---- keys, values, clock ---------------------------------------------------------------- */

/* The lookup order is a second stream, the same for every engine. */
static uint64_t get_seed(uint64_t seed) { return seed ^ 0x5bd1e9955bd1e995ull; }

/* n keys of KEY_LEN random bytes, byte order fixed so that a seed means the same keys on every
 * machine.  Two equal keys among 2^20 random 128-bit keys have a probability near 2^-89; the
 * scan count would catch it. */
static uint8_t *make_keys(uint64_t n, uint64_t seed)
{
	struct rng r;
	uint8_t *keys;

	if (n > SIZE_MAX / KEY_LEN)
		return NULL;
	keys = malloc((size_t)n * KEY_LEN);
	if (!keys)
		return NULL;
	rng_seed_raw(&r, seed);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *k = keys + i * KEY_LEN;
		for (int h = 0; h < KEY_LEN / 8; h++) {
			uint64_t x = rng_next(&r);
			for (int j = 0; j < 8; j++)
				k[h * 8 + j] = (uint8_t)(x >> (8 * j));
		}
	}
	return keys;
}

static inline const uint8_t *key_at(const uint8_t *keys, uint64_t i) { return keys + i * KEY_LEN; }

/* A value starts with its key, so that a lookup can check it got the right one. */
static void make_value(uint8_t *val, const uint8_t *key, uint64_t i)
{
	memcpy(val, key, KEY_LEN);
	for (int j = KEY_LEN; j < VAL_LEN; j++)
		val[j] = (uint8_t)(i * 31 + (uint64_t)j);
}

static bool value_ok(const void *val, size_t len, const uint8_t *key)
{
	return len == VAL_LEN && memcmp(val, key, KEY_LEN) == 0;
}

static int file_sizes(const char *path, struct engine_result *res)
{
	struct stat sb;

	if (stat(path, &sb) != 0) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -1;
	}
	res->file_size = (uint64_t)sb.st_size;
	res->file_alloc = (uint64_t)sb.st_blocks * 512u;
	return 0;
}

/* ---- kvfs: the store's tree ------------------------------------------------------------- */

static int kvfs_fail(const char *what, int rc)
{
	fprintf(stderr, PROG ": kvfs: %s: %s\n", what, strerror(-rc));
	return -1;
}

static void kvfs_verify_line(void *ctx, const char *line)
{
	uint64_t *n_problems = ctx;
	(*n_problems)++;
	fprintf(stderr, PROG ": kvfs: verify: %s\n", line);
}

static int kvfs_insert(struct store *st, const struct bench_cfg *cfg, const uint8_t *keys,
		       struct engine_result *res)
{
	uint8_t val[VAL_LEN];
	uint64_t i = 0;

	while (i < cfg->n) {
		struct store_txn *txn;
		struct store_tree *t;
		uint64_t end = cfg->n - i < cfg->batch ? cfg->n : i + cfg->batch;
		int rc = store_txn_begin(st, 0, &txn);
		if (rc)
			return kvfs_fail("store_txn_begin", rc);
		rc = store_tree_open(txn, TREE_NAME, strlen(TREE_NAME), true, &t);
		if (rc) {
			store_txn_abort(txn);
			return kvfs_fail("store_tree_open", rc);
		}
		for (; i < end; i++) {
			make_value(val, key_at(keys, i), i);
			rc = store_put(t, key_at(keys, i), KEY_LEN, val, VAL_LEN);
			if (rc) {
				store_txn_abort(txn);
				return kvfs_fail("store_put", rc);
			}
		}
		rc = store_txn_commit(txn, 0);
		if (rc)
			return kvfs_fail("store_txn_commit", rc);
		res->n_commits++;
	}
	return 0;
}

static int kvfs_gets(struct store *st, const struct bench_cfg *cfg, const uint8_t *keys)
{
	struct rng r;
	uint64_t i = 0;

	rng_seed_raw(&r, get_seed(cfg->seed));
	while (i < cfg->n) {
		struct store_txn *txn;
		struct store_tree *t;
		uint64_t end = cfg->n - i < GETS_PER_TXN ? cfg->n : i + GETS_PER_TXN;
		int rc = store_txn_begin(st, STORE_TXN_RDONLY, &txn);
		if (rc)
			return kvfs_fail("store_txn_begin (read)", rc);
		rc = store_tree_open(txn, TREE_NAME, strlen(TREE_NAME), false, &t);
		if (rc) {
			store_txn_abort(txn);
			return kvfs_fail("store_tree_open (read)", rc);
		}
		for (; i < end; i++) {
			uint64_t k = rng_below(&r, cfg->n);
			struct store_val v;
			rc = store_get(t, key_at(keys, k), KEY_LEN, &v);
			if (rc) {
				store_txn_abort(txn);
				fprintf(stderr, PROG ": kvfs: store_get of key #%" PRIu64 ": %s\n", k,
					strerror(-rc));
				return -1;
			}
			if (!value_ok(v.data, v.len, key_at(keys, k))) {
				store_txn_abort(txn);
				fprintf(stderr, PROG ": kvfs: key #%" PRIu64 ": wrong value (%zu bytes)\n",
					k, v.len);
				return -1;
			}
		}
		store_txn_abort(txn);
	}
	return 0;
}

static int kvfs_scan(struct store *st, struct engine_result *res)
{
	struct store_txn *txn;
	struct store_tree *t;
	struct store_cursor *c;
	uint8_t prev[KEY_LEN];
	uint64_t count = 0;
	int rc;

	rc = store_txn_begin(st, STORE_TXN_RDONLY, &txn);
	if (rc)
		return kvfs_fail("store_txn_begin (scan)", rc);
	rc = store_tree_open(txn, TREE_NAME, strlen(TREE_NAME), false, &t);
	if (rc == 0)
		rc = store_cursor_open(t, &c);
	if (rc) {
		store_txn_abort(txn);
		return kvfs_fail("store_cursor_open", rc);
	}
	for (rc = store_cursor_first(c); rc == 0; rc = store_cursor_next(c)) {
		struct store_val k;
		rc = store_cursor_get(c, &k, NULL);
		if (rc)
			break;
		if (k.len != KEY_LEN || (count > 0 && memcmp(prev, k.data, KEY_LEN) >= 0)) {
			fprintf(stderr, PROG ": kvfs: scan: key %" PRIu64 " out of order\n", count);
			store_txn_abort(txn);
			return -1;
		}
		memcpy(prev, k.data, KEY_LEN);
		count++;
	}
	store_txn_abort(txn); /* frees the cursor too */
	if (rc != -ENOENT)
		return kvfs_fail("scan", rc);
	res->n_scanned = count;
	return 0;
}

static int run_kvfs(const struct bench_cfg *cfg, const uint8_t *keys, struct engine_result *res)
{
	struct store_options opt = { .flags = STORE_CREATE, .mode = 0644 };
	struct store *st;
	struct store_stat ss;
	char path[PATH_MAX];
	uint64_t t0;
	int rc;

	path_join(path, sizeof path, cfg->dir, KVFS_FILE);
	rc = store_open(path, &opt, &st);
	if (rc)
		return kvfs_fail(path, rc);

	t0 = now_ns();
	rc = kvfs_insert(st, cfg, keys, res);
	res->insert_ns = now_ns() - t0;
	if (rc == 0) {
		t0 = now_ns();
		rc = kvfs_gets(st, cfg, keys);
		res->get_ns = now_ns() - t0;
	}
	if (rc == 0) {
		t0 = now_ns();
		rc = kvfs_scan(st, res);
		res->scan_ns = now_ns() - t0;
	}
	if (rc == 0) {
		int src = store_stat(st, &ss);
		if (src) {
			rc = kvfs_fail("store_stat", src);
		} else {
			res->page_count = ss.page_count;
			res->pages_free = ss.pages_free;
			res->n_syncs = ss.n_syncs;
		}
	}
	if (rc == 0 && cfg->verify) {
		uint64_t n_problems = 0;
		int vrc = store_verify(st, kvfs_verify_line, &n_problems);
		if (vrc) {
			fprintf(stderr, PROG ": kvfs: store_verify: %s (%" PRIu64 " problems)\n",
				strerror(-vrc), n_problems);
			rc = -1;
		}
	}
	int crc = store_close(st);
	if (crc && rc == 0)
		rc = kvfs_fail("store_close", crc);
	if (rc == 0)
		rc = file_sizes(path, res);
	return rc;
}

/* ---- LMDB --------------------------------------------------------------------------------- */

#if KVFS_HAVE_LMDB
static int lmdb_fail(const char *what, int rc)
{
	fprintf(stderr, PROG ": lmdb: %s: %s\n", what, mdb_strerror(rc));
	return -1;
}

static int lmdb_insert(MDB_env *env, MDB_dbi dbi, const struct bench_cfg *cfg,
		       const uint8_t *keys, struct engine_result *res)
{
	uint8_t val[VAL_LEN];
	uint64_t i = 0;

	while (i < cfg->n) {
		MDB_txn *txn;
		uint64_t end = cfg->n - i < cfg->batch ? cfg->n : i + cfg->batch;
		int rc = mdb_txn_begin(env, NULL, 0, &txn);
		if (rc)
			return lmdb_fail("mdb_txn_begin", rc);
		for (; i < end; i++) {
			MDB_val k = { KEY_LEN, (void *)key_at(keys, i) };
			MDB_val v = { VAL_LEN, val };
			make_value(val, key_at(keys, i), i);
			rc = mdb_put(txn, dbi, &k, &v, 0);
			if (rc) {
				mdb_txn_abort(txn);
				return lmdb_fail("mdb_put", rc);
			}
		}
		rc = mdb_txn_commit(txn);
		if (rc)
			return lmdb_fail("mdb_txn_commit", rc);
		res->n_commits++;
	}
	return 0;
}

static int lmdb_gets(MDB_env *env, MDB_dbi dbi, const struct bench_cfg *cfg, const uint8_t *keys)
{
	struct rng r;
	uint64_t i = 0;

	rng_seed_raw(&r, get_seed(cfg->seed));
	while (i < cfg->n) {
		MDB_txn *txn;
		uint64_t end = cfg->n - i < GETS_PER_TXN ? cfg->n : i + GETS_PER_TXN;
		int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
		if (rc)
			return lmdb_fail("mdb_txn_begin (read)", rc);
		for (; i < end; i++) {
			uint64_t kno = rng_below(&r, cfg->n);
			MDB_val k = { KEY_LEN, (void *)key_at(keys, kno) };
			MDB_val v;
			rc = mdb_get(txn, dbi, &k, &v);
			if (rc) {
				mdb_txn_abort(txn);
				fprintf(stderr, PROG ": lmdb: mdb_get of key #%" PRIu64 ": %s\n", kno,
					mdb_strerror(rc));
				return -1;
			}
			if (!value_ok(v.mv_data, v.mv_size, key_at(keys, kno))) {
				mdb_txn_abort(txn);
				fprintf(stderr, PROG ": lmdb: key #%" PRIu64 ": wrong value (%zu bytes)\n",
					kno, v.mv_size);
				return -1;
			}
		}
		mdb_txn_abort(txn);
	}
	return 0;
}

static int lmdb_scan(MDB_env *env, MDB_dbi dbi, struct engine_result *res)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t prev[KEY_LEN];
	uint64_t count = 0;
	int rc;

	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_fail("mdb_txn_begin (scan)", rc);
	rc = mdb_cursor_open(txn, dbi, &c);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_fail("mdb_cursor_open", rc);
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != KEY_LEN || (count > 0 && memcmp(prev, k.mv_data, KEY_LEN) >= 0)) {
			fprintf(stderr, PROG ": lmdb: scan: key %" PRIu64 " out of order\n", count);
			mdb_cursor_close(c);
			mdb_txn_abort(txn);
			return -1;
		}
		memcpy(prev, k.mv_data, KEY_LEN);
		count++;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return lmdb_fail("scan", rc);
	res->n_scanned = count;
	return 0;
}

/* Pages in the state and on the free list, counted the way mdb_stat -f does (the first word of
 * each free-list record is its page count). */
static int lmdb_pages(MDB_env *env, struct engine_result *res)
{
	MDB_envinfo info;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	rc = mdb_env_info(env, &info);
	if (rc)
		return lmdb_fail("mdb_env_info", rc);
	res->page_count = (uint64_t)info.me_last_pgno + 1;
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_fail("mdb_txn_begin (stat)", rc);
	rc = mdb_cursor_open(txn, 0 /* FREE_DBI */, &c);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_fail("mdb_cursor_open (free list)", rc);
	}
	res->pages_free = 0;
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		size_t n;
		memcpy(&n, v.mv_data, sizeof n);
		res->pages_free += n;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : lmdb_fail("free list", rc);
}

static int run_lmdb(const struct bench_cfg *cfg, const uint8_t *keys, struct engine_result *res)
{
	char dir[PATH_MAX], path[PATH_MAX];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint64_t t0;
	/* The map is address space, not disk: room for ~8x the raw data, so that "map full"
	 * never ends a run. */
	uint64_t mapsize = (64u << 20) + cfg->n * 1024u;
	int rc;

	path_join(dir, sizeof dir, cfg->dir, LMDB_SUBDIR);
	path_join(path, sizeof path, dir, "data.mdb");
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, PROG ": lmdb: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	rc = mdb_env_create(&env);
	if (rc)
		return lmdb_fail("mdb_env_create", rc);
	if ((rc = mdb_env_set_maxdbs(env, 1)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, (size_t)mapsize)) != 0 ||
	    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0644)) != 0) {
		mdb_env_close(env);
		return lmdb_fail(dir, rc);
	}
	rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, TREE_NAME, MDB_CREATE, &dbi);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc) {
		mdb_env_close(env);
		return lmdb_fail("mdb_dbi_open", rc);
	}

	t0 = now_ns();
	rc = lmdb_insert(env, dbi, cfg, keys, res);
	res->insert_ns = now_ns() - t0;
	if (rc == 0) {
		t0 = now_ns();
		rc = lmdb_gets(env, dbi, cfg, keys);
		res->get_ns = now_ns() - t0;
	}
	if (rc == 0) {
		t0 = now_ns();
		rc = lmdb_scan(env, dbi, res);
		res->scan_ns = now_ns() - t0;
	}
	if (rc == 0)
		rc = lmdb_pages(env, res);
	mdb_env_close(env);
	if (rc == 0)
		rc = file_sizes(path, res);
	return rc;
}
#endif /* KVFS_HAVE_LMDB */

/* ---- driver ------------------------------------------------------------------------------- */

struct child_job {
	enum engine_id e;
	const struct bench_cfg *cfg;
	const uint8_t *keys;
};

static int child_job(void *arg, void *out)
{
	struct child_job *cj = arg;
	struct engine_result *r = out;
	int rc = -1;
	if (cj->e == ENGINE_KVFS)
		rc = run_kvfs(cj->cfg, cj->keys, r);
#if KVFS_HAVE_LMDB
	else
		rc = run_lmdb(cj->cfg, cj->keys, r);
#endif
	r->failed = rc != 0;
	return rc;
}

/* Run one engine in a child process.  Returns 0 with *res and *maxrss_kb, or -1 (the reason is
 * on stderr). */
static int run_engine(enum engine_id e, const struct bench_cfg *cfg, const uint8_t *keys,
		      struct engine_result *res, long *maxrss_kb)
{
	struct child_job cj = { e, cfg, keys };
	if (bench_in_child(engine_name[e], child_job, &cj, res, sizeof(*res), maxrss_kb) < 0 ||
	    res->failed)
		return -1;
	if (res->n_scanned != cfg->n) {
		fprintf(stderr, PROG ": %s: scan saw %" PRIu64 " keys, expected %" PRIu64 "\n",
			engine_name[e], res->n_scanned, cfg->n);
		return -1;
	}
	return 0;
}

/* The files an engine creates in cfg->dir, for the existence check and for cleanup. */
static void engine_files(enum engine_id e, const char *dir, char paths[3][PATH_MAX],
			 char subdir[PATH_MAX])
{
	subdir[0] = '\0';
	paths[1][0] = paths[2][0] = '\0';
	if (e == ENGINE_KVFS) {
		path_join(paths[0], PATH_MAX, dir, KVFS_FILE);
		return;
	}
	path_join(subdir, PATH_MAX, dir, LMDB_SUBDIR);
	path_join(paths[0], PATH_MAX, subdir, "data.mdb");
	path_join(paths[1], PATH_MAX, subdir, "lock.mdb");
}

static bool engine_files_exist(enum engine_id e, const char *dir)
{
	char paths[3][PATH_MAX], subdir[PATH_MAX];
	struct stat sb;

	engine_files(e, dir, paths, subdir);
	for (int i = 0; i < 3 && paths[i][0]; i++) {
		if (lstat(paths[i], &sb) == 0) {
			fprintf(stderr, PROG ": %s: already exists (remove it, or choose another -d)\n",
				paths[i]);
			return true;
		}
	}
	return false;
}

static void engine_cleanup(enum engine_id e, const char *dir)
{
	char paths[3][PATH_MAX], subdir[PATH_MAX];

	engine_files(e, dir, paths, subdir);
	for (int i = 0; i < 3 && paths[i][0]; i++)
		if (unlink(paths[i]) != 0 && errno != ENOENT)
			fprintf(stderr, PROG ": %s: %s\n", paths[i], strerror(errno));
	if (subdir[0] && rmdir(subdir) != 0 && errno != ENOENT)
		fprintf(stderr, PROG ": %s: %s\n", subdir, strerror(errno));
}

/* ---- output ------------------------------------------------------------------------------- */

struct run {
	bool selected, ok;
	struct engine_result res;
	long maxrss_kb;
};

static double rate(uint64_t n, uint64_t ns) { return ns ? (double)n * 1e9 / (double)ns : 0; }

static void print_row(const char *label, const struct run runs[N_ENGINES],
		      double (*value)(const struct run *, const struct bench_cfg *),
		      const struct bench_cfg *cfg, bool with_ratio)
{
	double v[N_ENGINES] = { 0 };
	char cell[N_ENGINES][32], ratio[32] = "-";

	for (int e = 0; e < N_ENGINES; e++) {
		if (!runs[e].ok) {
			snprintf(cell[e], sizeof cell[e], "%s", runs[e].selected ? "failed" : "-");
			continue;
		}
		v[e] = value(&runs[e], cfg);
		snprintf(cell[e], sizeof cell[e], "%.0f", v[e]);
	}
	if (!with_ratio)
		ratio[0] = '\0';
	else if (runs[ENGINE_KVFS].ok && runs[ENGINE_LMDB].ok && v[ENGINE_LMDB] > 0)
		snprintf(ratio, sizeof ratio, "%.2f", v[ENGINE_KVFS] / v[ENGINE_LMDB]);
	if (ratio[0])
		printf("%-30s %14s %14s %10s\n", label, cell[ENGINE_KVFS], cell[ENGINE_LMDB], ratio);
	else
		printf("%-30s %14s %14s\n", label, cell[ENGINE_KVFS], cell[ENGINE_LMDB]);
}

static double v_insert(const struct run *r, const struct bench_cfg *c) { return rate(c->n, r->res.insert_ns); }
static double v_get(const struct run *r, const struct bench_cfg *c) { return rate(c->n, r->res.get_ns); }
static double v_scan(const struct run *r, const struct bench_cfg *c) { return rate(r->res.n_scanned, r->res.scan_ns); }
static double v_alloc(const struct run *r, const struct bench_cfg *c) { return (double)r->res.file_alloc; }
static double v_size(const struct run *r, const struct bench_cfg *c) { return (double)r->res.file_size; }
static double v_rss(const struct run *r, const struct bench_cfg *c) { return (double)r->maxrss_kb; }

static void print_table(const struct run runs[N_ENGINES], const struct bench_cfg *cfg)
{
	char label[64];

	printf("\n%-30s %14s %14s %10s\n", "workload", "kvfs", "lmdb", "kvfs/lmdb");
	snprintf(label, sizeof label, "insert, ops/s (%" PRIu64 "/commit)", cfg->batch);
	print_row(label, runs, v_insert, cfg, true);
	snprintf(label, sizeof label, "get, ops/s (%u/txn)", GETS_PER_TXN);
	print_row(label, runs, v_get, cfg, true);
	print_row("scan, keys/s", runs, v_scan, cfg, true);
	print_row("file allocated, bytes", runs, v_alloc, cfg, true);
	print_row("file apparent size, bytes", runs, v_size, cfg, false);
	print_row("peak RSS, KiB", runs, v_rss, cfg, true);
	printf("\nkvfs/lmdb above 1: kvfs is faster (ops/s, keys/s) or larger (bytes, KiB).\n");
	for (int e = 0; e < N_ENGINES; e++) {
		const struct engine_result *r = &runs[e].res;
		if (!runs[e].ok)
			continue;
		char syncs[48] = "";
		if (r->n_syncs)
			snprintf(syncs, sizeof syncs, ", %" PRIu64 " syncs", r->n_syncs);
		printf("%s: insert %.2f s (%" PRIu64 " durable commits%s), get %.2f s, scan %.2f s; "
		       "%" PRIu64 " pages in the state, %" PRIu64 " of them free\n",
		       engine_name[e], (double)r->insert_ns / 1e9, r->n_commits, syncs,
		       (double)r->get_ns / 1e9, (double)r->scan_ns / 1e9, r->page_count,
		       r->pages_free);
	}
}

/* ---- options ------------------------------------------------------------------------------ */

enum { OPT_VERIFY = 256 };

static const struct option long_options[] = {
	{ "dir", required_argument, NULL, 'd' },
	{ "count", required_argument, NULL, 'n' },
	{ "batch", required_argument, NULL, 'b' },
	{ "seed", required_argument, NULL, 's' },
	{ "engine", required_argument, NULL, 'e' },
	{ "keep", no_argument, NULL, 'k' },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " [OPTION]...\n"
		"Benchmark the kvfs store's copy-on-write B+tree alone against LMDB: durable\n"
		"inserts, random gets and an ordered scan of the same random keys, then the data\n"
		"file's size and the peak RSS of each engine.\n"
		"\n"
		"  -d, --dir=DIR         work in DIR (created if missing; default: a fresh\n"
		"                        directory under $TMPDIR or /tmp, removed afterwards)\n"
		"  -n, --count=N         keys to insert, and random gets to make (default %u)\n"
		"  -b, --batch=B         puts per durable write transaction (default %u)\n"
		"  -s, --seed=SEED       seed of the key and lookup generator (default %u)\n"
		"  -e, --engine=ENGINE   kvfs, lmdb or both (default both)\n"
		"  -k, --keep            keep the data files (and the directory)\n"
		"      --verify          after the kvfs run, verify its store in full (untimed)\n"
		"  -h, --help            show this help and exit\n"
		"  -V, --version         show the version and exit\n"
		"\n"
		"Keys are 16 random bytes, values 100 bytes; gets run %u to a read transaction.\n"
		"Exit status: 0 success, 1 a benchmark failed, 2 usage error.\n"
		"See kvfs-bench-tree(1).\n",
		DEFAULT_N, DEFAULT_BATCH, DEFAULT_SEED, GETS_PER_TXN);
}

static void version(void)
{
	printf(PROG " (kvfs) " KVFS_VERSION "\n");
#if KVFS_HAVE_LMDB
	printf("built with %s\n", mdb_version(NULL, NULL, NULL));
#else
	printf("built without LMDB\n");
#endif
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	return 2;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg = { .n = DEFAULT_N, .batch = DEFAULT_BATCH, .seed = DEFAULT_SEED };
	struct run runs[N_ENGINES] = { { 0 } };
	const char *engine = "both";
	bool made_dir = false, failed = false;
	char tmpl[PATH_MAX];
	uint8_t *keys;
	int opt;

	while ((opt = getopt_long(argc, argv, "d:n:b:s:e:khV", long_options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			cfg.dir = optarg;
			break;
		case 'n':
			if (!parse_u64(optarg, 1, &cfg.n) || cfg.n > (UINT64_C(1) << 40))
				return usage_error("invalid key count '%s'", optarg);
			break;
		case 'b':
			if (!parse_u64(optarg, 1, &cfg.batch))
				return usage_error("invalid batch size '%s'", optarg);
			break;
		case 's':
			if (!parse_u64(optarg, 0, &cfg.seed))
				return usage_error("invalid seed '%s'", optarg);
			break;
		case 'e':
			engine = optarg;
			break;
		case 'k':
			cfg.keep = true;
			break;
		case OPT_VERIFY:
			cfg.verify = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version();
			return 0;
		default:
			fprintf(stderr, "Try '" PROG " --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (strcmp(engine, "kvfs") == 0) {
		runs[ENGINE_KVFS].selected = true;
	} else if (strcmp(engine, "lmdb") == 0 || strcmp(engine, "both") == 0) {
		runs[ENGINE_KVFS].selected = engine[0] == 'b';
#if KVFS_HAVE_LMDB
		runs[ENGINE_LMDB].selected = true;
#else
		if (engine[0] == 'l')
			return usage_error("%s: this build has no LMDB (install liblmdb-dev)",
					   "--engine=lmdb");
		fprintf(stderr, PROG ": lmdb: not built in (install liblmdb-dev and rebuild)\n");
#endif
	} else {
		return usage_error("invalid engine '%s' (kvfs, lmdb or both)", engine);
	}

	if (!cfg.dir) {
		const char *tmp = getenv("TMPDIR");
		if (!tmp || !*tmp)
			tmp = "/tmp";
		path_join(tmpl, sizeof tmpl, tmp, PROG ".XXXXXX");
		if (!mkdtemp(tmpl)) {
			fprintf(stderr, PROG ": %s: %s\n", tmpl, strerror(errno));
			return 1;
		}
		cfg.dir = tmpl;
		made_dir = true;
	} else if (mkdir(cfg.dir, 0755) == 0) {
		made_dir = true;
	} else if (errno != EEXIST) {
		fprintf(stderr, PROG ": %s: %s\n", cfg.dir, strerror(errno));
		return 1;
	}
	for (int e = 0; e < N_ENGINES; e++)
		if (runs[e].selected && engine_files_exist((enum engine_id)e, cfg.dir))
			return 1;

	keys = make_keys(cfg.n, cfg.seed);
	if (!keys) {
		fprintf(stderr, PROG ": %" PRIu64 " keys: %s\n", cfg.n, strerror(ENOMEM));
		return 1;
	}
	printf(PROG " " KVFS_VERSION ": %" PRIu64 " random %d-byte keys (seed %" PRIu64
	       "), %d-byte values, %" PRIu64 " puts per durable commit, in %s\n",
	       cfg.n, KEY_LEN, cfg.seed, VAL_LEN, cfg.batch, cfg.dir);

	for (int e = 0; e < N_ENGINES; e++) {
		if (!runs[e].selected)
			continue;
		runs[e].ok = run_engine((enum engine_id)e, &cfg, keys, &runs[e].res,
					&runs[e].maxrss_kb) == 0;
		failed |= !runs[e].ok;
		if (!cfg.keep)
			engine_cleanup((enum engine_id)e, cfg.dir);
	}
	free(keys);
	if (made_dir && !cfg.keep && rmdir(cfg.dir) != 0)
		fprintf(stderr, PROG ": %s: %s\n", cfg.dir, strerror(errno));

	print_table(runs, &cfg);
	if (cfg.keep)
		printf("files kept in %s\n", cfg.dir);
	return failed ? 1 : 0;
}
