/*
 * tools/bench.c — kvfs-bench: db_bench-style workloads through the public library (kvfs.h),
 * and the same workloads on LMDB and on SQLite in WAL mode, in one run, side by side.
 *
 * Workloads, for each value size (--value-size; the count of keys N per size comes from -n):
 *   fillseq       N puts in key order into a fresh store, --batch puts per atomic batch, at
 *                 most BATCH_BYTES_MAX of values (kvfs_batch_*; an LMDB write transaction; a
 *                 SQLite transaction around a prepared INSERT OR REPLACE into
 *                 (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID);
 *   fillrandom    the same in random order, into another fresh store, which the next ones use;
 *   readrandom    N lookups of keys drawn at random (with replacement) among those stored,
 *                 1000 to a read transaction where the engine has them; every value checked;
 *   readseq       one ordered walk over every key and value (kvfs_scan with kvfs_read of each
 *                 file; an LMDB cursor; SELECT ... ORDER BY k), order and values checked;
 *   overwrite     N puts of keys drawn at random among those stored, one put per commit;
 *   deleterandom  N deletes of every stored key in random order, one delete per commit;
 *   syncwrite     puts of new keys from 1, 4, 16 threads (--threads), each put durable before
 *                 the next: kvfs_put + kvfs_sync (group commit); an LMDB write transaction per
 *                 put with a synced commit; SQLite with synchronous=FULL, one connection per
 *                 thread (busy_timeout), one autocommit INSERT per put.
 * The first value size runs every selected workload; further sizes run the fills and reads
 * only.  Between fillrandom and the reads each engine is closed and reopened, so that reads
 * come from what is on disk (kvfs: the B+tree after the closing checkpoint, not the overlay).
 *
 * Durability is matched: outside syncwrite every engine commits without waiting for the
 * disk but survives a crash of the process — kvfs by its log, LMDB with MDB_NOSYNC (its pages
 * are in the page cache when the commit returns), SQLite with synchronous=NORMAL in WAL mode.
 * In syncwrite every put survives power loss when it returns.
 *
 * Also measured: space amplification — the bytes allocated on disk (st_blocks * 512) to the
 * data file(s), the -wal file included for kvfs and SQLite, over N * (key + value) bytes —
 * right after fillrandom with the store open, and again after closing it; the peak RSS of each
 * engine's process; for kvfs in syncwrite, the mean group size (kvfs_stats: sync_calls per
 * fdatasync_calls, counted over each run).
 *
 * Keys are 16 random bytes written as 32 lower-case hex digits and split after the first two,
 * "xx/yyyy..." (33 bytes), so that kvfs spreads them over 256 directories; every engine gets
 * the same key strings (LMDB and SQLite as 33-byte keys, without the NUL).  Hex digits sort
 * after '/', so kvfs's key order (kvfs.h, kvfs_scan) is byte order here, as in the others.
 * Keys, lookups and orders come from seeded xoshiro256** streams (--seed): every engine sees
 * the same operations, and a run can be repeated.
 *
 * What it does not measure: FUSE (the library is called directly); cold-cache reads; mixed
 * readers and writers.
 *
 * Each engine runs each value size (and syncwrite) in its own child process, so that its peak
 * RSS (wait4's ru_maxrss) is its own and a crash of one engine does not end the run; the child
 * sends its figures back through a pipe.  Keys are made in the child, so that the parent's
 * memory does not count.
 *
 * Output: the table on stdout; diagnostics on stderr as "kvfs-bench: ENGINE: what: why".
 * Every figure is measured at run time; nothing is hard-coded.
 */
/* man: kvfs-bench.1 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
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
#if KVFS_HAVE_SQLITE
#include <sqlite3.h>
#endif

#include "store/kvfs.h"

#ifndef KVFS_VERSION
#define KVFS_VERSION "unknown"
#endif

#define PROG "kvfs-bench"
#include "tools/bench_util.h"

#define KEY_BYTES 16                 /* random bytes in a key */
#define KEY_HEX (2 * KEY_BYTES)      /* hex digits */
#define KEY_LEN (KEY_HEX + 1)        /* "xx/" + 30 digits: 33 bytes */
#define KEY_REC (KEY_LEN + 1)        /* one key in memory, NUL-terminated */
#define READS_PER_TXN 1000           /* lookups per read transaction (LMDB, SQLite) */
#define POOL_SLACK 256               /* the filler pool is this much longer than a value */
/* Values per fill batch, every engine alike: kvfs.h allows 64 MiB, but a batch must also fit
 * in half of the log's ring (store/engine.h), 18 MiB for a new store with the default options. */
#define BATCH_BYTES_MAX (16u << 20)

#define DEFAULT_N 100000u
#define DEFAULT_BATCH 1000u
#define DEFAULT_SEED 42u
#define DEFAULT_SYNC_COUNT 2000u
#define DEFAULT_SIZES "100,4K,64K"
#define DEFAULT_THREADS "1,4,16"
#define MAX_SIZES 8
#define MAX_THREAD_RUNS 8
#define MAX_THREADS 256
#define MAX_VALUE (16u << 20)

enum engine_id { ENGINE_KVFS, ENGINE_LMDB, ENGINE_SQLITE, N_ENGINES };
static const char *const engine_name[N_ENGINES] = { "kvfs", "lmdb", "sqlite" };

enum workload {
	W_FILLSEQ,
	W_FILLRANDOM,
	W_READRANDOM,
	W_READSEQ,
	W_OVERWRITE,
	W_DELETERANDOM,
	W_SYNCWRITE,
	N_WORKLOADS
};
static const char *const workload_name[N_WORKLOADS] = {
	"fillseq", "fillrandom", "readrandom", "readseq", "overwrite", "deleterandom", "syncwrite",
};

struct value_size {
	size_t bytes;  /* value length */
	uint64_t n;    /* keys */
};

struct bench_cfg {
	char *dir;
	uint64_t n;                        /* -n: keys for values under 1 KiB */
	uint64_t batch;                    /* puts per batch in the fills */
	uint64_t seed;
	uint64_t sync_count;               /* puts per syncwrite run (all threads together) */
	struct value_size sizes[MAX_SIZES];
	int n_sizes;
	unsigned threads[MAX_THREAD_RUNS];
	int n_thread_runs;
	bool workload[N_WORKLOADS];
	bool keep;
};

/* One child's job: a value size (index into cfg->sizes), or the syncwrite runs. */
#define JOB_SYNC (-1)

/* What a child sends back.  Times in ns. */
struct wl_result {
	uint64_t ns, ops;
	bool ran;
};

struct engine_result {
	int failed;                        /* nonzero: the child said why on stderr */
	struct wl_result w[N_WORKLOADS];   /* syncwrite: see sync[] */
	struct wl_result sync[MAX_THREAD_RUNS];
	uint64_t sync_calls[MAX_THREAD_RUNS], fdatasyncs[MAX_THREAD_RUNS]; /* kvfs: deltas */
	bool space_ran;
	uint64_t raw_bytes;                /* N * (key + value) */
	uint64_t open_data, open_wal;      /* allocated bytes with the store open */
	uint64_t closed_data, closed_wal;  /* and after closing it */
};

/* ---- random streams, keys, values, clock ------------------------------------------------ */

/* Streams: one per purpose, so that one workload's draws do not shift another's. */
enum stream { S_KEYS, S_SYNC_KEYS, S_READS, S_OVERWRITES, S_DELETES, S_FILLER };

static void rng_seed(struct rng *r, uint64_t seed, enum stream s)
{
	rng_seed_raw(r, seed ^ (0x5bd1e9955bd1e995ull * ((uint64_t)s + 1)));
}

/* n keys of KEY_REC bytes each: "xx/" + 30 hex digits + NUL.  Two equal keys among 2^20 random
 * 128-bit keys have a probability near 2^-89; the readseq count would catch it. */
static char *make_keys(uint64_t n, uint64_t seed, enum stream s)
{
	static const char hex[] = "0123456789abcdef";
	struct rng r;
	char *keys;

	if (n > SIZE_MAX / KEY_REC)
		return NULL;
	keys = malloc((size_t)n * KEY_REC);
	if (!keys)
		return NULL;
	rng_seed(&r, seed, s);
	for (uint64_t i = 0; i < n; i++) {
		char *k = keys + i * KEY_REC, digits[KEY_HEX];
		for (int h = 0; h < KEY_BYTES / 8; h++) {
			uint64_t x = rng_next(&r);
			for (int j = 0; j < 8; j++) {
				uint8_t b = (uint8_t)(x >> (8 * j));
				digits[(h * 8 + j) * 2] = hex[b >> 4];
				digits[(h * 8 + j) * 2 + 1] = hex[b & 15];
			}
		}
		k[0] = digits[0];
		k[1] = digits[1];
		k[2] = '/';
		memcpy(k + 3, digits + 2, KEY_HEX - 2);
		k[KEY_LEN] = '\0';
	}
	return keys;
}

static inline const char *key_at(const char *keys, uint64_t i) { return keys + i * KEY_REC; }

/* A value: bytes of the (random, so incompressible) filler pool from an offset that varies
 * with `salt`, then the key's 32 hex digits over its first bytes, so that a read can check
 * that it got the value of the key it asked for. */
struct values {
	uint8_t *pool; /* len + POOL_SLACK bytes */
	size_t len;
};

static int values_init(struct values *v, size_t len, uint64_t seed)
{
	struct rng r;

	v->len = len;
	v->pool = malloc(len + POOL_SLACK);
	if (!v->pool)
		return -1;
	rng_seed(&r, seed, S_FILLER);
	for (size_t i = 0; i < len + POOL_SLACK; i++)
		v->pool[i] = (uint8_t)rng_next(&r);
	return 0;
}

static size_t prefix_len(size_t len) { return len < KEY_HEX ? len : KEY_HEX; }

static void key_digits(char out[KEY_HEX], const char *key)
{
	out[0] = key[0];
	out[1] = key[1];
	memcpy(out + 2, key + 3, KEY_HEX - 2);
}

/* The value for `key` with `salt`; points into `buf` (v->len bytes). */
static const uint8_t *make_value(uint8_t *buf, const struct values *v, const char *key,
				 uint64_t salt)
{
	char d[KEY_HEX];

	memcpy(buf, v->pool + salt % POOL_SLACK, v->len);
	key_digits(d, key);
	memcpy(buf, d, prefix_len(v->len));
	return buf;
}

static bool value_ok(const void *val, size_t len, const struct values *v, const char *key)
{
	char d[KEY_HEX];

	if (len != v->len)
		return false;
	key_digits(d, key);
	return memcmp(val, d, prefix_len(len)) == 0;
}

/* Puts per fill batch: cfg->batch, fewer when their values would pass BATCH_BYTES_MAX. */
static uint64_t batch_puts(const struct bench_cfg *cfg, size_t vlen)
{
	uint64_t by_bytes = BATCH_BYTES_MAX / (vlen ? vlen : 1);
	if (by_bytes == 0)
		by_bytes = 1;
	return cfg->batch < by_bytes ? cfg->batch : by_bytes;
}

static void path_suffix(char *out, size_t size, const char *base, const char *suffix)
{
	int len = snprintf(out, size, "%s%s", base, suffix);
	if (len < 0 || (size_t)len >= size) {
		fprintf(stderr, PROG ": %s%s: path too long\n", base, suffix);
		exit(1);
	}
}

/* Allocated bytes of a file; 0 when it does not exist. */
static uint64_t allocated(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (uint64_t)sb.st_blocks * 512u : 0;
}

/* ---- the engines, behind one table of operations ----------------------------------------- */

/*
 * Every call prints its own diagnostic and returns -1 on failure, 0 on success.  A store is
 * `base` (a path) plus suffixes: kvfs base and base-wal; LMDB base and base-lock
 * (MDB_NOSUBDIR); SQLite base, base-wal and base-shm.
 */
struct db;
struct dbt; /* one syncwrite thread's handle */

#define N_SUFFIXES 3

typedef int (*scan_fn)(void *ctx, const char *key, size_t klen, const void *val, size_t vlen);

struct engine_ops {
	/* the store's files: [0] data, [1] log (counted in space amplification), [2] other
	 * (a lock or index file); NULL: none */
	const char *suffixes[N_SUFFIXES];
	int (*open)(const char *base, size_t max_value, uint64_t n_keys, struct db **out);
	int (*close)(struct db *db);   /* makes everything durable first */
	int (*set_durable)(struct db *db, bool durable);
	int (*batch_begin)(struct db *db);
	int (*batch_put)(struct db *db, const char *key, const void *val, size_t len);
	int (*batch_commit)(struct db *db);
	int (*put)(struct db *db, const char *key, const void *val, size_t len);
	int (*del)(struct db *db, const char *key);
	int (*read_begin)(struct db *db);
	/* copies min(cap, length) bytes; *len receives the length */
	int (*get)(struct db *db, const char *key, void *buf, size_t cap, size_t *len);
	int (*read_end)(struct db *db);
	int (*scan)(struct db *db, scan_fn fn, void *ctx);
	int (*thread_open)(struct db *db, struct dbt **out);
	int (*sync_put)(struct dbt *t, const char *key, const void *val, size_t len);
	void (*thread_close)(struct dbt *t);
};

/* ---- kvfs ---- */

struct kvfs_db {
	struct kvfs *fs;
	struct kvfs_batch *batch;
	uint8_t *buf; /* one value, for readseq */
	size_t cap;
	scan_fn fn;   /* readseq callback and its state */
	void *ctx;
	int err;
};

static int kvfs_fail(const char *what, const char *key, int rc)
{
	if (key)
		fprintf(stderr, PROG ": kvfs: %s %s: %s\n", what, key, strerror(-rc));
	else
		fprintf(stderr, PROG ": kvfs: %s: %s\n", what, strerror(-rc));
	return -1;
}

static int k_open(const char *base, size_t max_value, uint64_t n_keys, struct db **out)
{
	struct kvfs_options opt = { .flags = KVFS_CREATE, .mode = 0644 };
	struct kvfs_db *d = calloc(1, sizeof *d);
	int rc;

	(void)n_keys;
	if (!d || !(d->batch = kvfs_batch_new()) || !(d->buf = malloc(max_value ? max_value : 1))) {
		if (d)
			kvfs_batch_free(d->batch);
		free(d);
		return kvfs_fail("open", base, -ENOMEM);
	}
	d->cap = max_value;
	rc = kvfs_open(base, &opt, &d->fs);
	if (rc) {
		kvfs_batch_free(d->batch);
		free(d->buf);
		free(d);
		return kvfs_fail("kvfs_open", base, rc);
	}
	*out = (struct db *)d;
	return 0;
}

static int k_close(struct db *db)
{
	struct kvfs_db *d = (struct kvfs_db *)db;
	int rc = kvfs_close(d->fs);
	kvfs_batch_free(d->batch);
	free(d->buf);
	free(d);
	return rc ? kvfs_fail("kvfs_close", NULL, rc) : 0;
}

static int k_set_durable(struct db *db, bool durable) { return 0; }

static int k_batch_begin(struct db *db)
{
	kvfs_batch_clear(((struct kvfs_db *)db)->batch);
	return 0;
}

static int k_batch_commit(struct db *db)
{
	struct kvfs_db *d = (struct kvfs_db *)db;
	int rc = kvfs_batch_commit(d->fs, d->batch);
	kvfs_batch_clear(d->batch);
	return rc ? kvfs_fail("kvfs_batch_commit", NULL, rc) : 0;
}

static int k_batch_put(struct db *db, const char *key, const void *val, size_t len)
{
	int rc = kvfs_batch_put(((struct kvfs_db *)db)->batch, key, val, len);
	return rc ? kvfs_fail("kvfs_batch_put", key, rc) : 0;
}

static int k_put(struct db *db, const char *key, const void *val, size_t len)
{
	int rc = kvfs_put(((struct kvfs_db *)db)->fs, key, val, len);
	return rc ? kvfs_fail("kvfs_put", key, rc) : 0;
}

static int k_del(struct db *db, const char *key)
{
	int rc = kvfs_delete(((struct kvfs_db *)db)->fs, key);
	return rc ? kvfs_fail("kvfs_delete", key, rc) : 0;
}

static int k_read_nop(struct db *db) { return 0; }

static int k_get(struct db *db, const char *key, void *buf, size_t cap, size_t *len)
{
	ssize_t n = kvfs_get(((struct kvfs_db *)db)->fs, key, buf, cap);
	if (n < 0)
		return kvfs_fail("kvfs_get", key, (int)n);
	*len = (size_t)n;
	return 0;
}

static int k_scan_one(void *ctx, const char *key, const struct kvfs_stat *st)
{
	struct kvfs_db *d = ctx;
	size_t want = st->size < d->cap ? (size_t)st->size : d->cap;
	ssize_t n = kvfs_read(d->fs, st->ino, d->buf, want, 0);
	if (n < 0) {
		d->err = kvfs_fail("kvfs_read", key, (int)n);
		return 1;
	}
	if (st->size > d->cap || (size_t)n != want) {
		fprintf(stderr, PROG ": kvfs: %s: size %" PRIu64 ", read %zd bytes\n", key, st->size,
			n);
		d->err = -1;
		return 1;
	}
	if (d->fn(d->ctx, key, strlen(key), d->buf, (size_t)n)) {
		d->err = -1;
		return 1;
	}
	return 0;
}

static int k_scan(struct db *db, scan_fn fn, void *ctx)
{
	struct kvfs_db *d = (struct kvfs_db *)db;
	int rc;

	d->fn = fn;
	d->ctx = ctx;
	d->err = 0;
	rc = kvfs_scan(d->fs, NULL, NULL, k_scan_one, d);
	if (d->err)
		return -1;
	return rc ? kvfs_fail("kvfs_scan", NULL, rc) : 0;
}

/* A struct kvfs is shared by all threads (kvfs.h); the thread handle is the store itself. */
static int k_thread_open(struct db *db, struct dbt **out)
{
	*out = (struct dbt *)((struct kvfs_db *)db)->fs;
	return 0;
}

static int k_sync_put(struct dbt *t, const char *key, const void *val, size_t len)
{
	struct kvfs *fs = (struct kvfs *)t;
	int rc = kvfs_put(fs, key, val, len);
	if (rc)
		return kvfs_fail("kvfs_put", key, rc);
	rc = kvfs_sync(fs);
	return rc ? kvfs_fail("kvfs_sync after", key, rc) : 0;
}

static void k_thread_close(struct dbt *t) { }

static int k_group(struct db *db, uint64_t *sync_calls, uint64_t *fdatasyncs)
{
	struct kvfs_stats s;
	int rc = kvfs_stats(((struct kvfs_db *)db)->fs, &s);
	if (rc)
		return kvfs_fail("kvfs_stats", NULL, rc);
	*sync_calls = s.sync_calls;
	*fdatasyncs = s.fdatasync_calls;
	return 0;
}

static const struct engine_ops kvfs_ops = {
	.suffixes = { "", "-wal", NULL },
	.open = k_open,
	.close = k_close,
	.set_durable = k_set_durable,
	.batch_begin = k_batch_begin,
	.batch_put = k_batch_put,
	.batch_commit = k_batch_commit,
	.put = k_put,
	.del = k_del,
	.read_begin = k_read_nop,
	.get = k_get,
	.read_end = k_read_nop,
	.scan = k_scan,
	.thread_open = k_thread_open,
	.sync_put = k_sync_put,
	.thread_close = k_thread_close,
};

/* ---- LMDB ---- */

#if KVFS_HAVE_LMDB
struct lmdb_db {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn; /* the open batch or read transaction */
};

static int lmdb_fail(const char *what, const char *key, int rc)
{
	if (key)
		fprintf(stderr, PROG ": lmdb: %s %s: %s\n", what, key, mdb_strerror(rc));
	else
		fprintf(stderr, PROG ": lmdb: %s: %s\n", what, mdb_strerror(rc));
	return -1;
}

static int l_open(const char *base, size_t max_value, uint64_t n_keys, struct db **out)
{
	struct lmdb_db *d = calloc(1, sizeof *d);
	MDB_txn *txn;
	/* The map is address space, not disk: room for four times the data, each value rounded
	 * up to whole overflow pages, so that "map full" never ends a run. */
	uint64_t mapsize = (256u << 20) + 4 * n_keys * ((uint64_t)max_value + KEY_LEN + 4096);
	int rc;

	if (!d)
		return lmdb_fail("open", base, ENOMEM);
	rc = mdb_env_create(&d->env);
	if (rc) {
		free(d);
		return lmdb_fail("mdb_env_create", base, rc);
	}
	if ((rc = mdb_env_set_mapsize(d->env, (size_t)mapsize)) != 0 ||
	    (rc = mdb_env_open(d->env, base, MDB_NOSUBDIR | MDB_NOTLS | MDB_NOSYNC, 0644)) != 0) {
		mdb_env_close(d->env);
		free(d);
		return lmdb_fail("mdb_env_open", base, rc);
	}
	rc = mdb_txn_begin(d->env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, NULL, 0, &d->dbi);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc) {
		mdb_env_close(d->env);
		free(d);
		return lmdb_fail("mdb_dbi_open", base, rc);
	}
	*out = (struct db *)d;
	return 0;
}

static int l_close(struct db *db)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	int rc = mdb_env_sync(d->env, 1);
	mdb_env_close(d->env);
	free(d);
	return rc ? lmdb_fail("mdb_env_sync", NULL, rc) : 0;
}

/* Without MDB_NOSYNC a commit syncs the data, then the meta page. */
static int l_set_durable(struct db *db, bool durable)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	int rc = durable ? mdb_env_sync(d->env, 1) : 0;
	if (rc == 0)
		rc = mdb_env_set_flags(d->env, MDB_NOSYNC, durable ? 0 : 1);
	return rc ? lmdb_fail("mdb_env_set_flags", NULL, rc) : 0;
}

static int l_batch_begin(struct db *db)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	int rc = mdb_txn_begin(d->env, NULL, 0, &d->txn);
	return rc ? lmdb_fail("mdb_txn_begin", NULL, rc) : 0;
}

static int l_batch_put(struct db *db, const char *key, const void *val, size_t len)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	MDB_val k = { KEY_LEN, (void *)key }, v = { len, (void *)val };
	int rc = mdb_put(d->txn, d->dbi, &k, &v, 0);
	if (rc) {
		mdb_txn_abort(d->txn);
		d->txn = NULL;
		return lmdb_fail("mdb_put", key, rc);
	}
	return 0;
}

static int l_batch_commit(struct db *db)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	int rc = mdb_txn_commit(d->txn);
	d->txn = NULL;
	return rc ? lmdb_fail("mdb_txn_commit", NULL, rc) : 0;
}

static int l_put(struct db *db, const char *key, const void *val, size_t len)
{
	if (l_batch_begin(db) || l_batch_put(db, key, val, len))
		return -1;
	return l_batch_commit(db);
}

static int l_del(struct db *db, const char *key)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	MDB_val k = { KEY_LEN, (void *)key };
	int rc;

	if (l_batch_begin(db))
		return -1;
	rc = mdb_del(d->txn, d->dbi, &k, NULL);
	if (rc) {
		mdb_txn_abort(d->txn);
		d->txn = NULL;
		return lmdb_fail("mdb_del", key, rc);
	}
	return l_batch_commit(db);
}

static int l_read_begin(struct db *db)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	int rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &d->txn);
	return rc ? lmdb_fail("mdb_txn_begin (read)", NULL, rc) : 0;
}

static int l_read_end(struct db *db)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	mdb_txn_abort(d->txn);
	d->txn = NULL;
	return 0;
}

static int l_get(struct db *db, const char *key, void *buf, size_t cap, size_t *len)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	MDB_val k = { KEY_LEN, (void *)key }, v;
	int rc = mdb_get(d->txn, d->dbi, &k, &v);
	if (rc)
		return lmdb_fail("mdb_get", key, rc);
	memcpy(buf, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
	*len = v.mv_size;
	return 0;
}

static int l_scan(struct db *db, scan_fn fn, void *ctx)
{
	struct lmdb_db *d = (struct lmdb_db *)db;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if (l_read_begin(db))
		return -1;
	rc = mdb_cursor_open(d->txn, d->dbi, &c);
	if (rc) {
		l_read_end(db);
		return lmdb_fail("mdb_cursor_open", NULL, rc);
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) {
			rc = -1;
			break;
		}
	}
	mdb_cursor_close(c);
	l_read_end(db);
	if (rc == -1)
		return -1;
	return rc == MDB_NOTFOUND ? 0 : lmdb_fail("mdb_cursor_get", NULL, rc);
}

/* Write transactions of all threads share the environment (MDB_NOTLS); LMDB serializes them. */
static int l_thread_open(struct db *db, struct dbt **out)
{
	*out = (struct dbt *)db;
	return 0;
}

static int l_sync_put(struct dbt *t, const char *key, const void *val, size_t len)
{
	struct lmdb_db *d = (struct lmdb_db *)t;
	MDB_val k = { KEY_LEN, (void *)key }, v = { len, (void *)val };
	MDB_txn *txn;
	int rc = mdb_txn_begin(d->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail("mdb_txn_begin", key, rc);
	rc = mdb_put(txn, d->dbi, &k, &v, 0);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_fail("mdb_put", key, rc);
	}
	rc = mdb_txn_commit(txn);
	return rc ? lmdb_fail("mdb_txn_commit", key, rc) : 0;
}

static void l_thread_close(struct dbt *t) { }

static const struct engine_ops lmdb_ops = {
	.suffixes = { "", NULL, "-lock" },
	.open = l_open,
	.close = l_close,
	.set_durable = l_set_durable,
	.batch_begin = l_batch_begin,
	.batch_put = l_batch_put,
	.batch_commit = l_batch_commit,
	.put = l_put,
	.del = l_del,
	.read_begin = l_read_begin,
	.get = l_get,
	.read_end = l_read_end,
	.scan = l_scan,
	.thread_open = l_thread_open,
	.sync_put = l_sync_put,
	.thread_close = l_thread_close,
};
#endif /* KVFS_HAVE_LMDB */

/* ---- SQLite ---- */

#if KVFS_HAVE_SQLITE
#define SQL_INSERT "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)"
#define BUSY_TIMEOUT_MS 60000

struct sqlite_db {
	sqlite3 *h;
	char path[PATH_MAX];
	sqlite3_stmt *ins, *sel, *del, *scan, *begin, *commit;
};

struct sqlite_thread {
	sqlite3 *h;
	sqlite3_stmt *ins;
};

static int sqlite_fail(sqlite3 *h, const char *what, const char *key)
{
	const char *msg = h ? sqlite3_errmsg(h) : "out of memory";
	if (key)
		fprintf(stderr, PROG ": sqlite: %s %s: %s\n", what, key, msg);
	else
		fprintf(stderr, PROG ": sqlite: %s: %s\n", what, msg);
	return -1;
}

static int sqlite_exec(sqlite3 *h, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, PROG ": sqlite: %s: %s\n", sql, err ? err : sqlite3_errmsg(h));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* Run a prepared statement that returns no rows, then reset it. */
static int sqlite_step_done(sqlite3 *h, sqlite3_stmt *st, const char *what, const char *key)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(h, what, key);
}

/* A connection with the pragmas every connection of the benchmark uses. */
static int sqlite_connect(const char *path, const char *synchronous, sqlite3 **out)
{
	char sql[64];
	sqlite3 *h = NULL;

	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sqlite_fail(h, "open", path);
		sqlite3_close(h);
		return -1;
	}
	snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", synchronous);
	if (sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    sqlite_exec(h, "PRAGMA journal_mode=WAL") || sqlite_exec(h, sql)) {
		sqlite3_close(h);
		return -1;
	}
	*out = h;
	return 0;
}

static void s_free(struct sqlite_db *d)
{
	sqlite3_finalize(d->ins);
	sqlite3_finalize(d->sel);
	sqlite3_finalize(d->del);
	sqlite3_finalize(d->scan);
	sqlite3_finalize(d->begin);
	sqlite3_finalize(d->commit);
}

static int s_open(const char *base, size_t max_value, uint64_t n_keys, struct db **out)
{
	struct sqlite_db *d = calloc(1, sizeof *d);
	struct {
		const char *sql;
		sqlite3_stmt **st;
	} stmts[6];

	(void)max_value;
	(void)n_keys;
	if (!d)
		return sqlite_fail(NULL, "open", base);
	snprintf(d->path, sizeof d->path, "%s", base);
	if (sqlite_connect(base, "NORMAL", &d->h)) {
		free(d);
		return -1;
	}
	if (sqlite_exec(d->h, "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) "
			      "WITHOUT ROWID"))
		goto fail;
	stmts[0].sql = SQL_INSERT, stmts[0].st = &d->ins;
	stmts[1].sql = "SELECT v FROM kv WHERE k = ?1", stmts[1].st = &d->sel;
	stmts[2].sql = "DELETE FROM kv WHERE k = ?1", stmts[2].st = &d->del;
	stmts[3].sql = "SELECT k, v FROM kv ORDER BY k", stmts[3].st = &d->scan;
	stmts[4].sql = "BEGIN", stmts[4].st = &d->begin;
	stmts[5].sql = "COMMIT", stmts[5].st = &d->commit;
	for (int i = 0; i < 6; i++) {
		if (sqlite3_prepare_v2(d->h, stmts[i].sql, -1, stmts[i].st, NULL) != SQLITE_OK) {
			sqlite_fail(d->h, stmts[i].sql, NULL);
			goto fail;
		}
	}
	*out = (struct db *)d;
	return 0;
fail:
	s_free(d);
	sqlite3_close(d->h);
	free(d);
	return -1;
}

/* The last connection to close checkpoints the WAL into the database and removes it. */
static int s_close(struct db *db)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	int rc = 0;

	s_free(d);
	if (sqlite3_close(d->h) != SQLITE_OK)
		rc = sqlite_fail(d->h, "close", d->path);
	free(d);
	return rc;
}

static int s_set_durable(struct db *db, bool durable)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	return sqlite_exec(d->h, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

static int s_begin(struct db *db)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	return sqlite_step_done(d->h, d->begin, "BEGIN", NULL);
}

static int s_commit(struct db *db)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	return sqlite_step_done(d->h, d->commit, "COMMIT", NULL);
}

static int s_put(struct db *db, const char *key, const void *val, size_t len)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	if (sqlite3_bind_blob(d->ins, 1, key, KEY_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob64(d->ins, 2, val, len, SQLITE_STATIC) != SQLITE_OK)
		return sqlite_fail(d->h, "bind", key);
	return sqlite_step_done(d->h, d->ins, "INSERT", key);
}

static int s_del(struct db *db, const char *key)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	if (sqlite3_bind_blob(d->del, 1, key, KEY_LEN, SQLITE_STATIC) != SQLITE_OK)
		return sqlite_fail(d->h, "bind", key);
	if (sqlite_step_done(d->h, d->del, "DELETE", key))
		return -1;
	if (sqlite3_changes(d->h) != 1) {
		fprintf(stderr, PROG ": sqlite: DELETE %s: no such key\n", key);
		return -1;
	}
	return 0;
}

static int s_get(struct db *db, const char *key, void *buf, size_t cap, size_t *len)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	int rc;

	if (sqlite3_bind_blob(d->sel, 1, key, KEY_LEN, SQLITE_STATIC) != SQLITE_OK)
		return sqlite_fail(d->h, "bind", key);
	rc = sqlite3_step(d->sel);
	if (rc == SQLITE_ROW) {
		const void *v = sqlite3_column_blob(d->sel, 0);
		size_t n = (size_t)sqlite3_column_bytes(d->sel, 0);
		memcpy(buf, v, n < cap ? n : cap);
		*len = n;
	} else {
		sqlite_fail(d->h, rc == SQLITE_DONE ? "SELECT (no row)" : "SELECT", key);
	}
	sqlite3_reset(d->sel);
	sqlite3_clear_bindings(d->sel);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int s_scan(struct db *db, scan_fn fn, void *ctx)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	int rc;

	while ((rc = sqlite3_step(d->scan)) == SQLITE_ROW) {
		const void *k = sqlite3_column_blob(d->scan, 0);
		size_t klen = (size_t)sqlite3_column_bytes(d->scan, 0);
		const void *v = sqlite3_column_blob(d->scan, 1);
		size_t vlen = (size_t)sqlite3_column_bytes(d->scan, 1);
		if (fn(ctx, k, klen, v, vlen)) {
			sqlite3_reset(d->scan);
			return -1;
		}
	}
	sqlite3_reset(d->scan);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(d->h, "SELECT ... ORDER BY k", NULL);
}

/* One connection per thread, synchronous=FULL: each autocommit INSERT syncs the WAL. */
static int s_thread_open(struct db *db, struct dbt **out)
{
	struct sqlite_db *d = (struct sqlite_db *)db;
	struct sqlite_thread *t = calloc(1, sizeof *t);

	if (!t)
		return sqlite_fail(NULL, "thread", NULL);
	if (sqlite_connect(d->path, "FULL", &t->h)) {
		free(t);
		return -1;
	}
	if (sqlite3_prepare_v2(t->h, SQL_INSERT, -1, &t->ins, NULL) != SQLITE_OK) {
		sqlite_fail(t->h, SQL_INSERT, NULL);
		sqlite3_close(t->h);
		free(t);
		return -1;
	}
	*out = (struct dbt *)t;
	return 0;
}

static int s_sync_put(struct dbt *dt, const char *key, const void *val, size_t len)
{
	struct sqlite_thread *t = (struct sqlite_thread *)dt;
	if (sqlite3_bind_blob(t->ins, 1, key, KEY_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob64(t->ins, 2, val, len, SQLITE_STATIC) != SQLITE_OK)
		return sqlite_fail(t->h, "bind", key);
	return sqlite_step_done(t->h, t->ins, "INSERT", key);
}

static void s_thread_close(struct dbt *dt)
{
	struct sqlite_thread *t = (struct sqlite_thread *)dt;
	sqlite3_finalize(t->ins);
	sqlite3_close(t->h);
	free(t);
}

static const struct engine_ops sqlite_ops = {
	.suffixes = { "", "-wal", "-shm" },
	.open = s_open,
	.close = s_close,
	.set_durable = s_set_durable,
	.batch_begin = s_begin,
	.batch_put = s_put,
	.batch_commit = s_commit,
	.put = s_put,
	.del = s_del,
	.read_begin = s_begin,
	.get = s_get,
	.read_end = s_commit,
	.scan = s_scan,
	.thread_open = s_thread_open,
	.sync_put = s_sync_put,
	.thread_close = s_thread_close,
};
#endif /* KVFS_HAVE_SQLITE */

static const struct engine_ops *engine_ops(enum engine_id e)
{
	switch (e) {
	case ENGINE_KVFS:
		return &kvfs_ops;
#if KVFS_HAVE_LMDB
	case ENGINE_LMDB:
		return &lmdb_ops;
#endif
#if KVFS_HAVE_SQLITE
	case ENGINE_SQLITE:
		return &sqlite_ops;
#endif
	default:
		return NULL;
	}
}

static bool engine_built(enum engine_id e) { return engine_ops(e) != NULL; }

/* The store's base path: DIR/ENGINE-NAME. */
static void store_base(char *out, const char *dir, enum engine_id e, const char *name)
{
	char file[64];
	snprintf(file, sizeof file, "%s-%s", engine_name[e], name);
	path_join(out, PATH_MAX, dir, file);
}

static void store_remove(enum engine_id e, const char *base)
{
	const struct engine_ops *ops = engine_ops(e);
	char path[PATH_MAX];

	for (int i = 0; i < N_SUFFIXES; i++) {
		if (!ops->suffixes[i])
			continue;
		path_suffix(path, sizeof path, base, ops->suffixes[i]);
		if (unlink(path) != 0 && errno != ENOENT)
			fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
	}
}

static bool store_exists(enum engine_id e, const char *base)
{
	const struct engine_ops *ops = engine_ops(e);
	char path[PATH_MAX];
	struct stat sb;

	for (int i = 0; i < N_SUFFIXES; i++) {
		if (!ops->suffixes[i])
			continue;
		path_suffix(path, sizeof path, base, ops->suffixes[i]);
		if (lstat(path, &sb) == 0) {
			fprintf(stderr, PROG ": %s: already exists (remove it, or choose another -d)\n",
				path);
			return true;
		}
	}
	return false;
}

/* Allocated bytes of the data file and of the log (0 when the engine has none or it is gone). */
static void store_space(const struct engine_ops *ops, const char *base, uint64_t *data,
			uint64_t *wal)
{
	char path[PATH_MAX];

	path_suffix(path, sizeof path, base, ops->suffixes[0]);
	*data = allocated(path);
	*wal = 0;
	if (ops->suffixes[1]) {
		path_suffix(path, sizeof path, base, ops->suffixes[1]);
		*wal = allocated(path);
	}
}

/* ---- workloads (run in the child) -------------------------------------------------------- */

struct ctx {
	const struct engine_ops *ops;
	const struct bench_cfg *cfg;
	const char *engine;
	const struct values *vals;
	uint8_t *vbuf, *rbuf;          /* a value to write; a value read */
};

/* Put keys[0..n) in order, batch_puts(cfg, value length) to a batch. */
static int fill(struct ctx *c, struct db *db, const char *keys, uint64_t n)
{
	uint64_t per_batch = batch_puts(c->cfg, c->vals->len), i = 0;

	while (i < n) {
		uint64_t end = n - i < per_batch ? n : i + per_batch;
		if (c->ops->batch_begin(db))
			return -1;
		for (; i < end; i++) {
			const char *k = key_at(keys, i);
			if (c->ops->batch_put(db, k, make_value(c->vbuf, c->vals, k, i), c->vals->len))
				return -1;
		}
		if (c->ops->batch_commit(db))
			return -1;
	}
	return 0;
}

static int read_random(struct ctx *c, struct db *db, const char *keys, uint64_t n)
{
	struct rng r;
	uint64_t i = 0;

	rng_seed(&r, c->cfg->seed, S_READS);
	while (i < n) {
		uint64_t end = n - i < READS_PER_TXN ? n : i + READS_PER_TXN;
		if (c->ops->read_begin(db))
			return -1;
		for (; i < end; i++) {
			const char *k = key_at(keys, rng_below(&r, n));
			size_t len;
			if (c->ops->get(db, k, c->rbuf, c->vals->len, &len)) {
				c->ops->read_end(db);
				return -1;
			}
			if (!value_ok(c->rbuf, len, c->vals, k)) {
				fprintf(stderr, PROG ": %s: %s: wrong value (%zu bytes)\n", c->engine, k,
					len);
				c->ops->read_end(db);
				return -1;
			}
		}
		if (c->ops->read_end(db))
			return -1;
	}
	return 0;
}

struct seq_state {
	struct ctx *c;
	char prev[KEY_REC];
	uint64_t count;
};

static int read_seq_one(void *ctx, const char *key, size_t klen, const void *val, size_t vlen)
{
	struct seq_state *s = ctx;
	char k[KEY_REC];

	if (klen != KEY_LEN) {
		fprintf(stderr, PROG ": %s: readseq: key %" PRIu64 " has %zu bytes\n", s->c->engine,
			s->count, klen);
		return 1;
	}
	memcpy(k, key, KEY_LEN);
	k[KEY_LEN] = '\0';
	if (s->count > 0 && memcmp(s->prev, k, KEY_LEN) >= 0) {
		fprintf(stderr, PROG ": %s: readseq: %s after %s: out of order\n", s->c->engine, k,
			s->prev);
		return 1;
	}
	if (!value_ok(val, vlen, s->c->vals, k)) {
		fprintf(stderr, PROG ": %s: readseq: %s: wrong value (%zu bytes)\n", s->c->engine, k,
			vlen);
		return 1;
	}
	memcpy(s->prev, k, KEY_REC);
	s->count++;
	return 0;
}

static int read_seq(struct ctx *c, struct db *db, uint64_t n)
{
	struct seq_state s = { .c = c };

	if (c->ops->scan(db, read_seq_one, &s))
		return -1;
	if (s.count != n) {
		fprintf(stderr, PROG ": %s: readseq saw %" PRIu64 " keys, expected %" PRIu64 "\n",
			c->engine, s.count, n);
		return -1;
	}
	return 0;
}

static int overwrite(struct ctx *c, struct db *db, const char *keys, uint64_t n)
{
	struct rng r;

	rng_seed(&r, c->cfg->seed, S_OVERWRITES);
	for (uint64_t i = 0; i < n; i++) {
		const char *k = key_at(keys, rng_below(&r, n));
		if (c->ops->put(db, k, make_value(c->vbuf, c->vals, k, n + i), c->vals->len))
			return -1;
	}
	return 0;
}

/* 0..n-1 in the deleterandom order (Fisher-Yates); NULL after a message. */
static uint64_t *shuffled(struct ctx *c, uint64_t n)
{
	uint64_t *perm = malloc(n * sizeof *perm);
	struct rng r;

	if (!perm) {
		fprintf(stderr, PROG ": %s: deleterandom: %s\n", c->engine, strerror(ENOMEM));
		return NULL;
	}
	rng_seed(&r, c->cfg->seed, S_DELETES);
	for (uint64_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = rng_below(&r, i), t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	return perm;
}

static int delete_random(struct ctx *c, struct db *db, const char *keys, const uint64_t *perm,
			 uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (c->ops->del(db, key_at(keys, perm[i])))
			return -1;
	return 0;
}

static int key_cmp(const void *a, const void *b) { return strcmp(a, b); }

/* Time one workload into res->w[wl]; `call` returns 0 or -1.  A failure ends the child (its
 * stores are left for the parent to remove). */
#define TIMED(res, wl, n_ops, call)                                                  \
	do {                                                                         \
		uint64_t t0_ = now_ns();                                             \
		int rc_ = (call);                                                    \
		(res)->w[wl].ns = now_ns() - t0_;                                    \
		(res)->w[wl].ops = (n_ops);                                          \
		(res)->w[wl].ran = true;                                             \
		if (rc_)                                                             \
			return -1;                                                   \
	} while (0)

/* Fills, reads (and on the first size overwrite and deleterandom) for one value size. */
static int run_values(struct ctx *c, enum engine_id e, int size_idx, struct engine_result *res)
{
	const struct bench_cfg *cfg = c->cfg;
	const struct engine_ops *ops = c->ops;
	uint64_t n = cfg->sizes[size_idx].n;
	size_t vlen = cfg->sizes[size_idx].bytes;
	bool first = size_idx == 0;
	bool want_reads = cfg->workload[W_READRANDOM] || cfg->workload[W_READSEQ] ||
			  (first && (cfg->workload[W_OVERWRITE] || cfg->workload[W_DELETERANDOM]));
	char name[32], base[PATH_MAX];
	struct db *db;
	char *keys = make_keys(n, cfg->seed, S_KEYS);

	if (!keys) {
		fprintf(stderr, PROG ": %s: %" PRIu64 " keys: %s\n", c->engine, n, strerror(ENOMEM));
		return -1;
	}
	if (cfg->workload[W_FILLSEQ]) {
		char *sorted = malloc((size_t)n * KEY_REC);
		int rc;
		if (!sorted) {
			fprintf(stderr, PROG ": %s: %s\n", c->engine, strerror(ENOMEM));
			return -1;
		}
		memcpy(sorted, keys, (size_t)n * KEY_REC);
		qsort(sorted, (size_t)n, KEY_REC, key_cmp);
		snprintf(name, sizeof name, "%zu-seq", vlen);
		store_base(base, cfg->dir, e, name);
		if (ops->open(base, vlen, n, &db))
			return -1;
		TIMED(res, W_FILLSEQ, n, fill(c, db, sorted, n));
		free(sorted);
		rc = ops->close(db);
		if (!cfg->keep)
			store_remove(e, base);
		if (rc)
			return -1;
	}
	if (!cfg->workload[W_FILLRANDOM] && !want_reads)
		return 0;

	snprintf(name, sizeof name, "%zu", vlen);
	store_base(base, cfg->dir, e, name);
	if (ops->open(base, vlen, n, &db))
		return -1;
	if (cfg->workload[W_FILLRANDOM])
		TIMED(res, W_FILLRANDOM, n, fill(c, db, keys, n));
	else if (fill(c, db, keys, n))
		return -1;
	res->space_ran = true;
	res->raw_bytes = n * (KEY_LEN + (uint64_t)vlen);
	store_space(ops, base, &res->open_data, &res->open_wal);
	if (ops->close(db))
		return -1;
	store_space(ops, base, &res->closed_data, &res->closed_wal);

	if (want_reads) {
		if (ops->open(base, vlen, n, &db))
			return -1;
		if (cfg->workload[W_READRANDOM])
			TIMED(res, W_READRANDOM, n, read_random(c, db, keys, n));
		if (cfg->workload[W_READSEQ])
			TIMED(res, W_READSEQ, n, read_seq(c, db, n));
		if (first && cfg->workload[W_OVERWRITE])
			TIMED(res, W_OVERWRITE, n, overwrite(c, db, keys, n));
		if (first && cfg->workload[W_DELETERANDOM]) {
			uint64_t *perm = shuffled(c, n);
			if (!perm)
				return -1;
			TIMED(res, W_DELETERANDOM, n, delete_random(c, db, keys, perm, n));
			free(perm);
		}
		if (ops->close(db))
			return -1;
	}
	if (!cfg->keep)
		store_remove(e, base);
	free(keys);
	return 0;
}

/* ---- syncwrite ---- */

struct sync_thread {
	struct ctx *c;
	struct db *db;
	pthread_barrier_t *start;
	const char *keys;   /* this run's keys */
	uint64_t n;         /* keys in this run */
	unsigned id, n_threads;
	uint64_t end_ns;
	int rc;
};

static void *sync_worker(void *arg)
{
	struct sync_thread *t = arg;
	struct ctx *c = t->c;
	struct dbt *h = NULL;
	uint8_t *buf = malloc(c->vals->len ? c->vals->len : 1);

	t->rc = buf ? c->ops->thread_open(t->db, &h) : -1;
	if (!buf)
		fprintf(stderr, PROG ": %s: %s\n", c->engine, strerror(ENOMEM));
	pthread_barrier_wait(t->start);
	/* thread i writes keys i, i + T, i + 2T, ... of the run */
	for (uint64_t i = t->id; t->rc == 0 && i < t->n; i += t->n_threads) {
		const char *k = key_at(t->keys, i);
		t->rc = c->ops->sync_put(h, k, make_value(buf, c->vals, k, i), c->vals->len);
	}
	t->end_ns = now_ns();
	if (h)
		c->ops->thread_close(h);
	free(buf);
	return NULL;
}

static int sync_run(struct ctx *c, struct db *db, const char *keys, unsigned n_threads,
		    struct wl_result *out)
{
	struct sync_thread *ts = calloc(n_threads, sizeof *ts);
	pthread_t *tids = calloc(n_threads, sizeof *tids);
	pthread_barrier_t start;
	unsigned started = 0;
	uint64_t t0, end = 0;
	int rc = 0;

	if (!ts || !tids || pthread_barrier_init(&start, NULL, n_threads + 1) != 0) {
		fprintf(stderr, PROG ": %s: syncwrite: %s\n", c->engine, strerror(ENOMEM));
		free(ts);
		free(tids);
		return -1;
	}
	for (; started < n_threads; started++) {
		ts[started] = (struct sync_thread){ .c = c, .db = db, .start = &start, .keys = keys,
						    .n = c->cfg->sync_count, .id = started,
						    .n_threads = n_threads };
		int err = pthread_create(&tids[started], NULL, sync_worker, &ts[started]);
		if (err) {
			fprintf(stderr, PROG ": %s: pthread_create: %s\n", c->engine, strerror(err));
			/* a barrier cannot shrink: the run is lost, the process ends */
			_exit(1);
		}
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (unsigned i = 0; i < n_threads; i++) {
		pthread_join(tids[i], NULL);
		rc |= ts[i].rc;
		if (ts[i].end_ns > end)
			end = ts[i].end_ns;
	}
	pthread_barrier_destroy(&start);
	out->ns = end > t0 ? end - t0 : 0;
	out->ops = c->cfg->sync_count;
	out->ran = true;
	free(ts);
	free(tids);
	return rc ? -1 : 0;
}

static int run_sync(struct ctx *c, enum engine_id e, struct engine_result *res)
{
	const struct bench_cfg *cfg = c->cfg;
	uint64_t n_all = cfg->sync_count * (uint64_t)cfg->n_thread_runs;
	char base[PATH_MAX];
	char *keys = make_keys(n_all, cfg->seed, S_SYNC_KEYS);
	struct db *db;
	int rc = 0;

	if (!keys) {
		fprintf(stderr, PROG ": %s: %" PRIu64 " keys: %s\n", c->engine, n_all,
			strerror(ENOMEM));
		return -1;
	}
	store_base(base, cfg->dir, e, "sync");
	if (c->ops->open(base, c->vals->len, n_all, &db))
		return -1;
	rc = c->ops->set_durable(db, true);
	for (int i = 0; rc == 0 && i < cfg->n_thread_runs; i++) {
		uint64_t s0 = 0, f0 = 0, s1 = 0, f1 = 0;
		if (e == ENGINE_KVFS && (rc = k_group(db, &s0, &f0)) != 0)
			break;
		rc = sync_run(c, db, key_at(keys, cfg->sync_count * (uint64_t)i), cfg->threads[i],
			      &res->sync[i]);
		if (rc == 0 && e == ENGINE_KVFS && (rc = k_group(db, &s1, &f1)) == 0) {
			res->sync_calls[i] = s1 - s0;
			res->fdatasyncs[i] = f1 - f0;
		}
	}
	if (c->ops->close(db))
		rc = -1;
	if (!cfg->keep)
		store_remove(e, base);
	free(keys);
	return rc;
}

static int run_child(enum engine_id e, const struct bench_cfg *cfg, int job,
		     struct engine_result *res)
{
	size_t vlen = cfg->sizes[job == JOB_SYNC ? 0 : job].bytes;
	struct values vals;
	struct ctx c = { .ops = engine_ops(e), .cfg = cfg, .engine = engine_name[e],
			 .vals = &vals };
	int rc;

	if (values_init(&vals, vlen, cfg->seed) || !(c.vbuf = malloc(vlen)) ||
	    !(c.rbuf = malloc(vlen))) {
		fprintf(stderr, PROG ": %s: %s\n", c.engine, strerror(ENOMEM));
		return -1;
	}
	rc = job == JOB_SYNC ? run_sync(&c, e, res) : run_values(&c, e, job, res);
	free(vals.pool);
	free(c.vbuf);
	free(c.rbuf);
	return rc;
}

/* ---- driver ------------------------------------------------------------------------------- */

struct child_job {
	enum engine_id e;
	const struct bench_cfg *cfg;
	int job;
};

static int child_job(void *arg, void *out)
{
	struct child_job *cj = arg;
	struct engine_result *r = out;
	int rc = run_child(cj->e, cj->cfg, cj->job, r);
	r->failed = rc != 0;
	return rc;
}

/* Run one engine's job in a child process.  Returns 0 with *res and *maxrss_kb, or -1 (the
 * reason is on stderr). */
static int run_engine(enum engine_id e, const struct bench_cfg *cfg, int job,
		      struct engine_result *res, long *maxrss_kb)
{
	struct child_job cj = { e, cfg, job };
	if (bench_in_child(engine_name[e], child_job, &cj, res, sizeof(*res), maxrss_kb) < 0 ||
	    res->failed)
		return -1;
	return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

struct run {
	bool selected, ok;
	struct engine_result res;
	long maxrss_kb;
};

#define LABEL_W 40
#define CELL_W 11

static double rate(const struct wl_result *w)
{
	return w->ran && w->ns ? (double)w->ops * 1e9 / (double)w->ns : 0;
}

static void print_header(const char *title, const bool selected[N_ENGINES])
{
	printf("\n%-*s", LABEL_W, title);
	for (int e = 0; e < N_ENGINES; e++)
		printf(" %*s", CELL_W, engine_name[e]);
	for (int e = 1; e < N_ENGINES; e++) {
		char h[32];
		snprintf(h, sizeof h, "kvfs/%s", engine_name[e]);
		printf(" %*s", CELL_W, h);
	}
	printf("\n");
	(void)selected;
}

/* One row: a value per engine (has[e] false: not measured), then kvfs/peer ratios. */
static void print_row(const char *label, const struct run runs[N_ENGINES], const double v[],
		      const bool has[], const char *fmt, bool with_ratio)
{
	printf("%-*s", LABEL_W, label);
	for (int e = 0; e < N_ENGINES; e++) {
		char cell[32];
		if (!runs[e].selected)
			snprintf(cell, sizeof cell, "-");
		else if (!runs[e].ok)
			snprintf(cell, sizeof cell, "failed");
		else if (!has[e])
			snprintf(cell, sizeof cell, "-");
		else
			snprintf(cell, sizeof cell, fmt, v[e]);
		printf(" %*s", CELL_W, cell);
	}
	for (int e = 1; e < N_ENGINES && with_ratio; e++) {
		char cell[32] = "-";
		if (runs[ENGINE_KVFS].ok && runs[e].ok && has[ENGINE_KVFS] && has[e] && v[e] > 0)
			snprintf(cell, sizeof cell, "%.2f", v[ENGINE_KVFS] / v[e]);
		printf(" %*s", CELL_W, cell);
	}
	printf("\n");
}

static void print_values_section(const struct bench_cfg *cfg, int s,
				 const struct run runs[N_ENGINES])
{
	char title[96], label[64];
	double v[N_ENGINES];
	bool has[N_ENGINES];

	snprintf(title, sizeof title, "%zu-byte values, %" PRIu64 " keys", cfg->sizes[s].bytes,
		 cfg->sizes[s].n);
	print_header(title, NULL);
	for (int w = 0; w < W_SYNCWRITE; w++) {
		bool any = false;
		for (int e = 0; e < N_ENGINES; e++) {
			has[e] = runs[e].ok && runs[e].res.w[w].ran;
			v[e] = has[e] ? rate(&runs[e].res.w[w]) : 0;
			any |= runs[e].selected && (has[e] || !runs[e].ok);
		}
		if (!cfg->workload[w] || (!any && w >= W_OVERWRITE))
			continue;
		if (w == W_FILLSEQ || w == W_FILLRANDOM)
			snprintf(label, sizeof label, "%s, ops/s (%" PRIu64 "/batch)",
				 workload_name[w], batch_puts(cfg, cfg->sizes[s].bytes));
		else if (w == W_READRANDOM)
			snprintf(label, sizeof label, "%s, ops/s", workload_name[w]);
		else if (w == W_READSEQ)
			snprintf(label, sizeof label, "%s, keys/s", workload_name[w]);
		else
			snprintf(label, sizeof label, "%s, ops/s (1/commit)", workload_name[w]);
		print_row(label, runs, v, has, "%.0f", true);
	}
	bool any_space = false;
	for (int e = 0; e < N_ENGINES; e++) {
		const struct engine_result *r = &runs[e].res;
		has[e] = runs[e].ok && r->space_ran && r->raw_bytes;
		v[e] = has[e] ? (double)(r->open_data + r->open_wal) / (double)r->raw_bytes : 0;
		any_space |= has[e];
	}
	if (any_space) {
		print_row("space amp, open (data + wal)", runs, v, has, "%.2f", true);
		for (int e = 0; e < N_ENGINES; e++) {
			const struct engine_result *r = &runs[e].res;
			v[e] = has[e] ? (double)(r->closed_data + r->closed_wal) / (double)r->raw_bytes
				      : 0;
		}
		print_row("space amp, closed (data + wal)", runs, v, has, "%.2f", true);
	}
	for (int e = 0; e < N_ENGINES; e++) {
		has[e] = runs[e].ok;
		v[e] = (double)runs[e].maxrss_kb / 1024.0;
	}
	print_row("peak RSS, MiB", runs, v, has, "%.1f", true);
}

static void print_space_detail(const struct bench_cfg *cfg, int s,
			       const struct run runs[N_ENGINES])
{
	for (int e = 0; e < N_ENGINES; e++) {
		const struct engine_result *r = &runs[e].res;
		if (!runs[e].ok || !r->space_ran)
			continue;
		printf("  %s, %zu-byte values: raw %.1f MiB; open: data %.1f + wal %.1f MiB; "
		       "closed: data %.1f + wal %.1f MiB\n",
		       engine_name[e], cfg->sizes[s].bytes, (double)r->raw_bytes / 1048576.0,
		       (double)r->open_data / 1048576.0, (double)r->open_wal / 1048576.0,
		       (double)r->closed_data / 1048576.0, (double)r->closed_wal / 1048576.0);
	}
}

static void print_sync_section(const struct bench_cfg *cfg, const struct run runs[N_ENGINES])
{
	char title[96], label[64];
	double v[N_ENGINES];
	bool has[N_ENGINES];

	snprintf(title, sizeof title, "syncwrite, %zu-byte values, %" PRIu64 " puts",
		 cfg->sizes[0].bytes, cfg->sync_count);
	print_header(title, NULL);
	for (int i = 0; i < cfg->n_thread_runs; i++) {
		for (int e = 0; e < N_ENGINES; e++) {
			has[e] = runs[e].ok && runs[e].res.sync[i].ran;
			v[e] = has[e] ? rate(&runs[e].res.sync[i]) : 0;
		}
		snprintf(label, sizeof label, "%u thread%s, durable ops/s", cfg->threads[i],
			 cfg->threads[i] == 1 ? "" : "s");
		print_row(label, runs, v, has, "%.0f", true);
	}
	for (int i = 0; i < cfg->n_thread_runs; i++) {
		const struct engine_result *r = &runs[ENGINE_KVFS].res;
		for (int e = 0; e < N_ENGINES; e++)
			has[e] = false;
		has[ENGINE_KVFS] = runs[ENGINE_KVFS].ok && r->fdatasyncs[i] > 0;
		v[ENGINE_KVFS] = has[ENGINE_KVFS] ? (double)r->sync_calls[i] / (double)r->fdatasyncs[i]
						  : 0;
		snprintf(label, sizeof label, "%u thread%s, kvfs mean group size", cfg->threads[i],
			 cfg->threads[i] == 1 ? "" : "s");
		print_row(label, runs, v, has, "%.2f", false);
	}
	for (int e = 0; e < N_ENGINES; e++) {
		has[e] = runs[e].ok;
		v[e] = (double)runs[e].maxrss_kb / 1024.0;
	}
	print_row("peak RSS, MiB", runs, v, has, "%.1f", true);
}

/* ---- options ------------------------------------------------------------------------------ */

enum { OPT_VALUE_SIZE = 256, OPT_SYNC_COUNT };

static const struct option long_options[] = {
	{ "dir", required_argument, NULL, 'd' },
	{ "count", required_argument, NULL, 'n' },
	{ "value-size", required_argument, NULL, OPT_VALUE_SIZE },
	{ "batch", required_argument, NULL, 'b' },
	{ "threads", required_argument, NULL, 't' },
	{ "sync-count", required_argument, NULL, OPT_SYNC_COUNT },
	{ "workloads", required_argument, NULL, 'w' },
	{ "engine", required_argument, NULL, 'e' },
	{ "seed", required_argument, NULL, 's' },
	{ "keep", no_argument, NULL, 'k' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " [OPTION]...\n"
		"Run db_bench-style workloads through the kvfs library and the same ones on LMDB\n"
		"and on SQLite (WAL mode), and print ops/s, space amplification and peak RSS side\n"
		"by side, with kvfs/peer ratios.\n"
		"\n"
		"  -d, --dir=DIR          work in DIR (created if missing; default: a fresh\n"
		"                         directory under $TMPDIR or /tmp, removed afterwards)\n"
		"  -n, --count=N          keys for values under 1 KiB; N/10 for values under\n"
		"                         16 KiB, N/100 for larger ones (default %u)\n"
		"      --value-size=LIST  value sizes in bytes, SIZE[K|M][:COUNT],... (default\n"
		"                         " DEFAULT_SIZES "); the first runs every workload, the\n"
		"                         others the fills and reads\n"
		"  -b, --batch=B          puts per batch in fillseq and fillrandom, at most\n"
		"                         16 MiB of values (default %u)\n"
		"  -t, --threads=LIST     syncwrite thread counts (default " DEFAULT_THREADS ")\n"
		"      --sync-count=M     durable puts per syncwrite run, all threads together\n"
		"                         (default %u)\n"
		"  -w, --workloads=LIST   fillseq,fillrandom,readrandom,readseq,overwrite,\n"
		"                         deleterandom,syncwrite or all (default all)\n"
		"  -e, --engine=LIST      kvfs,lmdb,sqlite or all (default all built in)\n"
		"  -s, --seed=SEED        seed of keys and operation orders (default %u)\n"
		"  -k, --keep             keep the stores (and the directory)\n"
		"  -h, --help             show this help and exit\n"
		"  -V, --version          show the version and exit\n"
		"\n"
		"Keys are 16 random bytes as 32 hex digits split \"xx/yyyy...\" (33 bytes).\n"
		"Exit status: 0 success, 1 a benchmark failed, 2 usage error.\n"
		"See kvfs-bench(1).\n",
		DEFAULT_N, DEFAULT_BATCH, DEFAULT_SYNC_COUNT, DEFAULT_SEED);
}

static void version(void)
{
	printf(PROG " (kvfs) " KVFS_VERSION "\n");
#if KVFS_HAVE_LMDB
	printf("built with %s\n", mdb_version(NULL, NULL, NULL));
#else
	printf("built without LMDB\n");
#endif
#if KVFS_HAVE_SQLITE
	printf("built with SQLite %s\n", sqlite3_libversion());
#else
	printf("built without SQLite\n");
#endif
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	return 2;
}

/* A decimal number of at least `min`, ending at *end (NULL: at the string's end). */
static bool parse_u64(const char *s, uint64_t min, uint64_t *out, char **end)
{
	char *e;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno || v < min || (end ? 0 : *e != '\0'))
		return false;
	if (end)
		*end = e;
	*out = v;
	return true;
}

/* Split a comma-separated list in place; returns the number of items, or -1 past `max`. */
static int split_list(char *s, char **items, int max)
{
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			return -1;
		items[n++] = tok;
	}
	return n;
}

static uint64_t default_count(uint64_t n, size_t bytes)
{
	uint64_t c = bytes < 1024 ? n : bytes < 16384 ? n / 10 : n / 100;
	return c ? c : 1;
}

/* SIZE[K|M][:COUNT],... */
static int parse_sizes(const char *arg, struct bench_cfg *cfg, uint64_t counts[MAX_SIZES])
{
	char buf[256], *items[MAX_SIZES + 1];
	int n;

	if (snprintf(buf, sizeof buf, "%s", arg) >= (int)sizeof buf)
		return -1;
	n = split_list(buf, items, MAX_SIZES);
	if (n <= 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char *end;
		uint64_t v, count = 0;
		if (!parse_u64(items[i], 1, &v, &end))
			return -1;
		if (*end == 'K' || *end == 'k')
			v <<= 10, end++;
		else if (*end == 'M' || *end == 'm')
			v <<= 20, end++;
		if (*end == ':') {
			if (!parse_u64(end + 1, 1, &count, NULL) || count > (UINT64_C(1) << 32))
				return -1;
		} else if (*end) {
			return -1;
		}
		if (v > MAX_VALUE)
			return -1;
		for (int j = 0; j < i; j++)
			if (cfg->sizes[j].bytes == v)
				return -1; /* one store name per size */
		cfg->sizes[i].bytes = (size_t)v;
		counts[i] = count;
	}
	cfg->n_sizes = n;
	return 0;
}

static int parse_threads(const char *arg, struct bench_cfg *cfg)
{
	char buf[256], *items[MAX_THREAD_RUNS + 1];
	int n;

	if (snprintf(buf, sizeof buf, "%s", arg) >= (int)sizeof buf)
		return -1;
	n = split_list(buf, items, MAX_THREAD_RUNS);
	if (n <= 0)
		return -1;
	for (int i = 0; i < n; i++) {
		uint64_t v;
		if (!parse_u64(items[i], 1, &v, NULL) || v > MAX_THREADS)
			return -1;
		cfg->threads[i] = (unsigned)v;
	}
	cfg->n_thread_runs = n;
	return 0;
}

static int parse_workloads(const char *arg, struct bench_cfg *cfg)
{
	char buf[256], *items[N_WORKLOADS * 2];
	int n;

	if (snprintf(buf, sizeof buf, "%s", arg) >= (int)sizeof buf)
		return -1;
	n = split_list(buf, items, N_WORKLOADS * 2);
	if (n <= 0)
		return -1;
	memset(cfg->workload, 0, sizeof cfg->workload);
	for (int i = 0; i < n; i++) {
		int w;
		if (strcmp(items[i], "all") == 0) {
			for (w = 0; w < N_WORKLOADS; w++)
				cfg->workload[w] = true;
			continue;
		}
		for (w = 0; w < N_WORKLOADS; w++)
			if (strcmp(items[i], workload_name[w]) == 0)
				break;
		if (w == N_WORKLOADS)
			return -1;
		cfg->workload[w] = true;
	}
	return 0;
}

/* Returns 0, or 2 after a usage message. */
static int parse_engines(const char *arg, struct run runs[N_ENGINES])
{
	char buf[256], *items[N_ENGINES * 2];
	int n;

	if (!arg) {
		for (int e = 0; e < N_ENGINES; e++) {
			runs[e].selected = engine_built((enum engine_id)e);
			if (!runs[e].selected)
				fprintf(stderr, PROG ": %s: not built in (install %s and rebuild)\n",
					engine_name[e], e == ENGINE_LMDB ? "liblmdb-dev" : "libsqlite3-dev");
		}
		return 0;
	}
	if (snprintf(buf, sizeof buf, "%s", arg) >= (int)sizeof buf)
		return usage_error("invalid engine list '%s'", arg);
	n = split_list(buf, items, N_ENGINES * 2);
	if (n <= 0)
		return usage_error("invalid engine list '%s'", arg);
	for (int i = 0; i < n; i++) {
		int e;
		if (strcmp(items[i], "all") == 0)
			return parse_engines(NULL, runs);
		for (e = 0; e < N_ENGINES; e++)
			if (strcmp(items[i], engine_name[e]) == 0)
				break;
		if (e == N_ENGINES)
			return usage_error("unknown engine '%s' (kvfs, lmdb, sqlite or all)", items[i]);
		if (!engine_built((enum engine_id)e))
			return usage_error("%s: not built in (install its -dev package and rebuild)",
					   items[i]);
		runs[e].selected = true;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg = { .n = DEFAULT_N, .batch = DEFAULT_BATCH, .seed = DEFAULT_SEED,
				 .sync_count = DEFAULT_SYNC_COUNT };
	struct run engines[N_ENGINES] = { { 0 } };
	uint64_t counts[MAX_SIZES] = { 0 };
	const char *engine_arg = NULL;
	bool made_dir = false, failed = false;
	char tmpl[PATH_MAX];
	int opt, rc;

	for (int w = 0; w < N_WORKLOADS; w++)
		cfg.workload[w] = true;
	parse_sizes(DEFAULT_SIZES, &cfg, counts);
	parse_threads(DEFAULT_THREADS, &cfg);
	while ((opt = getopt_long(argc, argv, "d:n:b:t:w:e:s:khV", long_options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			cfg.dir = optarg;
			break;
		case 'n':
			if (!parse_u64(optarg, 1, &cfg.n, NULL) || cfg.n > (UINT64_C(1) << 32))
				return usage_error("invalid key count '%s'", optarg);
			break;
		case OPT_VALUE_SIZE:
			if (parse_sizes(optarg, &cfg, counts))
				return usage_error("invalid value sizes '%s'", optarg);
			break;
		case 'b':
			if (!parse_u64(optarg, 1, &cfg.batch, NULL))
				return usage_error("invalid batch size '%s'", optarg);
			break;
		case 't':
			if (parse_threads(optarg, &cfg))
				return usage_error("invalid thread counts '%s'", optarg);
			break;
		case OPT_SYNC_COUNT:
			if (!parse_u64(optarg, 1, &cfg.sync_count, NULL) ||
			    cfg.sync_count > (UINT64_C(1) << 32))
				return usage_error("invalid syncwrite count '%s'", optarg);
			break;
		case 'w':
			if (parse_workloads(optarg, &cfg))
				return usage_error("invalid workload list '%s' (see --help)", optarg);
			break;
		case 'e':
			engine_arg = optarg;
			break;
		case 's':
			if (!parse_u64(optarg, 0, &cfg.seed, NULL))
				return usage_error("invalid seed '%s'", optarg);
			break;
		case 'k':
			cfg.keep = true;
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
	if ((rc = parse_engines(engine_arg, engines)) != 0)
		return rc;
	for (int i = 0; i < cfg.n_sizes; i++)
		cfg.sizes[i].n = counts[i] ? counts[i] : default_count(cfg.n, cfg.sizes[i].bytes);

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
	/* Refuse to start over an earlier run's stores. */
	for (int e = 0; e < N_ENGINES; e++) {
		char base[PATH_MAX], name[32];
		if (!engines[e].selected)
			continue;
		for (int i = 0; i < cfg.n_sizes; i++) {
			for (int seq = 0; seq < 2; seq++) {
				snprintf(name, sizeof name, seq ? "%zu-seq" : "%zu", cfg.sizes[i].bytes);
				store_base(base, cfg.dir, (enum engine_id)e, name);
				if (store_exists((enum engine_id)e, base))
					return 1;
			}
		}
		store_base(base, cfg.dir, (enum engine_id)e, "sync");
		if (store_exists((enum engine_id)e, base))
			return 1;
	}

	printf(PROG " " KVFS_VERSION ": keys %d bytes (\"xx/\" + %d hex digits, seed %" PRIu64
	       "), in %s\n",
	       KEY_LEN, KEY_HEX - 2, cfg.seed, cfg.dir);
	printf("fills: %" PRIu64 " puts per batch (at most %u MiB of values); overwrite, "
	       "deleterandom: one per commit; none of these wait for the disk\n", cfg.batch,
	       BATCH_BYTES_MAX >> 20);
	fflush(stdout);

	/* Each value size, then syncwrite; each engine in turn, each in its own process. */
	bool any_values = false;
	for (int w = 0; w < W_SYNCWRITE; w++)
		any_values |= cfg.workload[w];
	for (int s = 0; any_values && s < cfg.n_sizes; s++) {
		struct run runs[N_ENGINES] = { { 0 } };
		bool first = s == 0, any = false;
		for (int w = 0; w < W_SYNCWRITE; w++)
			any |= cfg.workload[w] && (first || w < W_OVERWRITE);
		if (!any)
			continue;
		for (int e = 0; e < N_ENGINES; e++) {
			runs[e].selected = engines[e].selected;
			if (!runs[e].selected)
				continue;
			runs[e].ok = run_engine((enum engine_id)e, &cfg, s, &runs[e].res,
						&runs[e].maxrss_kb) == 0;
			failed |= !runs[e].ok;
		}
		print_values_section(&cfg, s, runs);
		print_space_detail(&cfg, s, runs);
		fflush(stdout);
	}
	if (cfg.workload[W_SYNCWRITE]) {
		struct run runs[N_ENGINES] = { { 0 } };
		for (int e = 0; e < N_ENGINES; e++) {
			runs[e].selected = engines[e].selected;
			if (!runs[e].selected)
				continue;
			runs[e].ok = run_engine((enum engine_id)e, &cfg, JOB_SYNC, &runs[e].res,
						&runs[e].maxrss_kb) == 0;
			failed |= !runs[e].ok;
		}
		print_sync_section(&cfg, runs);
	}

	/* A crashed child leaves its stores behind. */
	for (int e = 0; e < N_ENGINES && !cfg.keep; e++) {
		char base[PATH_MAX], name[32];
		if (!engines[e].selected)
			continue;
		for (int i = 0; i < cfg.n_sizes; i++) {
			for (int seq = 0; seq < 2; seq++) {
				snprintf(name, sizeof name, seq ? "%zu-seq" : "%zu", cfg.sizes[i].bytes);
				store_base(base, cfg.dir, (enum engine_id)e, name);
				store_remove((enum engine_id)e, base);
			}
		}
		store_base(base, cfg.dir, (enum engine_id)e, "sync");
		store_remove((enum engine_id)e, base);
	}
	if (made_dir && !cfg.keep && rmdir(cfg.dir) != 0)
		fprintf(stderr, PROG ": %s: %s\n", cfg.dir, strerror(errno));

	printf("\nkvfs/peer above 1: kvfs is faster (ops/s, keys/s) or larger (space, RSS).\n");
	if (cfg.keep)
		printf("stores kept in %s\n", cfg.dir);
	return failed ? 1 : 0;
}
