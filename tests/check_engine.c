/*
 * tests/check_engine.c — Check suite "engine": the engine of store/engine.h (the write-ahead
 * log with group commit in front of the copy-on-write B+tree store, the in-memory overlay,
 * checkpoints) against its header comments and the durability contract of DESIGN.md ("a
 * write that returned survives a crash of the process; data survives power loss once a sync
 * on it returned; after any crash the store opens consistent, every operation wholly present
 * or wholly absent, in log order").
 *
 * Test cases, by kind:
 *   core          one behaviour at a time: open/create and the store lock; batches over
 *                 several trees (order inside a batch, deleting a missing key, empty batches,
 *                 argument limits, the largest value, -EFBIG that does not fail the engine);
 *                 engine_get into buffers smaller than the value; bounded iteration, with short
 *                 buffers, over the overlay, the B+tree and both merged, and with commits and
 *                 checkpoints between steps; engine_checkpoint (reads, the store's own trees,
 *                 statistics); close/reopen; reopen when only the log holds the data (power cut
 *                 after engine_sync, or reboot of a live machine with the engine never closed);
 *                 sync_every_write; read-only open; a failed log write or sync failing the
 *                 engine; big batches (the overlay pointing at their values in the log's
 *                 mapping, a small ring rewritten under it) read back right, with a reader
 *                 running through the checkpoints; engine_batch_reserve keeping a batch's
 *                 first ops unchanged; a commit copying no value into the overlay.
 *   ring          the log's ring sized to the store: a new store gets the smallest automatic
 *                 ring (36 MiB), one grown to 400 MiB a bigger one at its next open, and
 *                 after every open that follows a clean close the ring is within a quarter of
 *                 the data file's target, the log at rest (1 MiB) between them (POSIX
 *                 files); an explicit ring never changes; the ring grows at an open only when
 *                 nothing is replayed, else at the open after the next clean close; the log
 *                 file always holds exactly its ring (io_fault).
 *   model         random batches (1..20 puts/deletes, keys 1..200 B from 256 per tree, values
 *                 0..64 KiB) over 3 trees, random gets (short buffers too), bounded iterations
 *                 (a quarter with commits and checkpoints between steps), engine_sync,
 *                 engine_checkpoint (store_verify and the store's trees compared after each),
 *                 statistics and close+reopen, against one reference model per tree; every
 *                 return and every iteration compared.  100 seeds x 2,000 steps.  Seeds rotate
 *                 over three configurations: 64 KiB checkpoints in pieces of 4 pages and a
 *                 1 MiB log ring (background checkpoints and log wrap-around all the
 *                 time); default checkpoint size with a 4 MiB ring and a 50 ms interval
 *                 (checkpoints by log use and by time); no checkpoint thread (explicit
 *                 checkpoints only).  Every 10th seed runs on POSIX files.
 *   crash         on io_fault (STORE and STORE-wal on one machine, no checkpoint thread, 1 MiB
 *                 ring so the log wraps): batches, engine_sync after some, engine_checkpoint now
 *                 and then; power cut at every sync point k = 1..K in each cut mode; the call that
 *                 hit the cut must fail (one that returns 0 is reported after the recovery
 *                 checks, so the report says whether recovery held) and the engine is failed
 *                 (-EIO) afterwards; after reboot the engine opens, the store verifies, and the
 *                 three trees equal the models after one prefix of the batches that includes
 *                 every batch acknowledged durable (engine_sync, engine_checkpoint or
 *                 engine_close returned 0) and no batch that had not been committed; the
 *                 recovered engine checkpoints and takes writes.  3 modes x 6 seeds, about
 *                 1,270 cuts.  Odd seeds checkpoint in pieces of 2 pages (several commits
 *                 without the LSN before the one with it: engine.c "Pieces").
 *   kill          a child process commits random batches on POSIX files (64 KiB checkpoints,
 *                 1 MiB ring) and reports each commit and engine_sync that returned through a
 *                 pipe; the parent SIGKILLs it after 3..50 ms, then checks (itself, or in a
 *                 checker child that exits without closing, so that the log stays for the next
 *                 round) that every reported batch is present and the state is a prefix; the
 *                 next round continues from that state.  60 kills.
 *   groupcommit   16 threads x 100 (commit + engine_sync) on POSIX files, twice: running free,
 *                 then with a barrier between each round's commits and syncs (so that the 16
 *                 syncs always meet, whatever a flush costs); every call returns 0, every key
 *                 is there, n_fdatasync <= n_sync_calls / 2 in both (the ratios are printed).
 *                 Where the store is on tmpfs or ramfs, fdatasync costs nothing and free-running
 *                 threads rarely overlap: the first ratio is then only printed.
 *   backpressure  mem_limit 256 KiB, 64 KiB checkpoints, POSIX files: a writer commits 20 MiB
 *                 while a second thread polls engine_stat; overlay_bytes never exceeds mem_limit
 *                 + the largest batch (its key and value bytes plus 512 bytes per entry for the
 *                 overlay's own overhead); checkpoints or backpressure waits happened.
 *
 * Every randomized test prints "seed=N (replay with KVFS_SEED=N)" on failure.  Replay with
 * Check's selector, e.g. CK_RUN_CASE=model KVFS_SEED=1042 ./check_engine, or
 * CK_RUN_CASE=crash KVFS_SEED=2003 KVFS_CUT=17 ./check_engine (KVFS_CUT_MODE=0|1|2 picks the
 * cut mode: random, keep, drop; CK_FORK=no for a debugger).  Knobs for timing runs:
 * KVFS_MODEL_STEPS, KVFS_KILL_ROUNDS, KVFS_TEST_VERBOSE=1.
 *
 * What it does not test: corrupted log or data bytes (check_corrupt.c's business), I/O
 * errors beyond the one failed log write and sync of "core" (check_fault.c).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/engine.h"
#include "store/io_fault.h"
#include "store/store.h"
#include "tests/testutil.h"
#include "tests/testutil_fault.h"
#include "wal/log.h"

static char g_msg[16384];

#define OK(expr) TU_ASSERT_EQ((expr), 0, "%s", "")
#define EXPECT(expr, want) TU_ASSERT_EQ((expr), (want), "%s", "")
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool verbose(void)
{
	return getenv("KVFS_TEST_VERBOSE") != NULL;
}

/* ---- keys and values ----------------------------------------------------------------- */

/*
 * The key space of the randomized cases: 64 base strings x 4 lengths (1..8, 9..40, 41..120,
 * 121..200 bytes), each length a prefix of the longer ones of its base, so keys that prefix
 * other keys are common.  Byte 0 (base * 4) differs between bases; the rest is random, 0x00
 * and 0xff included (unsigned comparison).
 */
#define KEY_BASES 64
#define KEY_SPACE (KEY_BASES * 4)
#define KEY_MAX 200

static uint8_t g_keys[KEY_SPACE][KEY_MAX];
static size_t g_klen[KEY_SPACE];

static void keys_init(void)
{
	static const size_t lo[4] = { 1, 9, 41, 121 }, span[4] = { 8, 32, 80, 80 };
	static bool done;

	if (done)
		return;
	for (uint32_t base = 0; base < KEY_BASES; base++) {
		uint64_t x = 0x5eedf00dull + base;
		uint8_t bytes[KEY_MAX + 8];

		bytes[0] = (uint8_t)(base * 4);
		for (size_t i = 1; i < KEY_MAX; i += 8) {
			uint64_t w = tu_splitmix64(&x);
			memcpy(bytes + i, &w, 8);
		}
		for (uint32_t v = 0; v < 4; v++) {
			size_t len = lo[v] + (size_t)(tu_splitmix64(&x) % span[v]);
			memcpy(g_keys[base * 4 + v], bytes, len);
			g_klen[base * 4 + v] = len;
		}
	}
	done = true;
}

#define VAL_MAX (64u << 10)

/* A value length for the model: mostly small, `large_pm` per mille 16..64 KiB. */
static size_t val_len(struct tu_rng *r, unsigned large_pm)
{
	uint64_t x = tu_rng_below(r, 1000);

	if (x < large_pm)
		return (size_t)tu_rng_range(r, 16u << 10, VAL_MAX);
	if (x < large_pm + 50)
		return (size_t)tu_rng_range(r, 2000, 16u << 10);
	if (x < large_pm + 250)
		return (size_t)tu_rng_range(r, 100, 2000);
	if (x < large_pm + 300)
		return 0;
	return (size_t)tu_rng_range(r, 1, 100);
}

/* ---- engine helpers ------------------------------------------------------------------ */

/* Options for `env` with small sizes (1 MiB checkpoints, a 4 MiB ring: io_fault keeps a heap
 * copy of every file, so the default 256 MiB ring is not for it). */
static void opts_init(struct engine_options *o, struct tu_env *env, unsigned flags)
{
	memset(o, 0, sizeof(*o));
	o->flags = flags;
	o->io = tu_env_io(env);
	o->ckpt_overlay_bytes = 1u << 20;
	o->log_ring_bytes = 4u << 20;
	o->log = tu_log_cb;
}

static struct engine *eopen_ok(struct tu_env *env, const struct engine_options *o)
{
	struct engine *e = NULL;
	char log[2048];
	int rc = engine_open(env->path, o, &e);

	TU_ASSERT(rc == 0 && e != NULL, "engine_open(%s) = %d; log: %s", env->path, rc,
		  tu_log_text(log, sizeof(log)));
	return e;
}

static void eclose_ok(struct engine *e)
{
	int rc = engine_close(e);

	TU_ASSERT_EQ(rc, 0, "%s", "engine_close");
}

/* engine_stat with the sanity checks that hold at any time. */
static struct engine_stat estat(struct engine *e)
{
	struct engine_stat s;

	memset(&s, 0xa5, sizeof(s));
	OK(engine_stat(e, &s));
	TU_ASSERT(s.log_ring_bytes >= WAL_MIN_RING && s.log_ring_bytes % 4096 == 0,
		  "log_ring_bytes %" PRIu64, s.log_ring_bytes);
	TU_ASSERT(s.log_bytes <= s.log_ring_bytes, "log_bytes %" PRIu64 " > ring %" PRIu64,
		  s.log_bytes, s.log_ring_bytes);
	TU_ASSERT(s.overlay_entries == 0 || s.overlay_bytes > 0, "%" PRIu64 " overlay entries "
		  "in %" PRIu64 " bytes", s.overlay_entries, s.overlay_bytes);
	TU_ASSERT_EQ(s.store.page_size, STORE_PAGE_SIZE, "%s", "store page_size");
	TU_ASSERT(s.store.pages_used + s.store.pages_free + 2 == s.store.page_count,
		  "pages_used %" PRIu64 " + pages_free %" PRIu64 " + 2 != page_count %" PRIu64,
		  s.store.pages_used, s.store.pages_free, s.store.page_count);
	return s;
}

static void bput(struct engine_batch *b, unsigned t, const void *k, size_t kl, const void *v,
		 size_t vl)
{
	int rc = engine_batch_put(b, t, k, kl, v, vl);

	TU_ASSERT_EQ(rc, 0, "engine_batch_put(tree %u, %zu-byte key, %zu-byte value)", t, kl, vl);
}

static void bputs(struct engine_batch *b, unsigned t, const char *k, const char *v)
{
	bput(b, t, k, strlen(k), v, strlen(v));
}

static void bdel(struct engine_batch *b, unsigned t, const void *k, size_t kl)
{
	int rc = engine_batch_del(b, t, k, kl);

	TU_ASSERT_EQ(rc, 0, "engine_batch_del(tree %u, %zu-byte key)", t, kl);
}

static void bdels(struct engine_batch *b, unsigned t, const char *k)
{
	bdel(b, t, k, strlen(k));
}

static uint64_t commit_ok(struct engine *e, struct engine_batch *b)
{
	uint64_t lsn = UINT64_MAX;
	int rc = engine_commit(e, b, &lsn);

	TU_ASSERT_EQ(rc, 0, "%s", "engine_commit");
	return lsn;
}

/* Buffers for engine_get and engine_iter_next, with room for a canary after the largest. */
#define CANARY 16
static uint8_t g_buf[ENGINE_MAX_VALUE + 64];
static uint8_t g_ikey[STORE_MAX_KEY + 64];
static uint8_t g_ival[ENGINE_MAX_VALUE + 64];

/* The bytes after what a copy wrote must be untouched. */
static bool canary_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < CANARY; i++)
		if (p[n + i] != 0xa5)
			return false;
	return true;
}

/* engine_get of (t, k) must return the value v[0..vl) copied into a buffer of `cap` bytes
 * (SIZE_MAX: a buffer larger than the value): min(cap, vl) bytes, nothing past them, and
 * *vlen == vl. */
static void get_expect_(int line, struct engine *e, unsigned t, const void *k, size_t kl,
			const void *v, size_t vl, size_t cap)
{
	char kb[96];
	size_t got = SIZE_MAX;

	if (cap > vl + CANARY)
		cap = vl + CANARY;
	size_t n = MIN(cap, vl);
	memset(g_buf, 0xa5, n + CANARY);
	int rc = engine_get(e, t, k, kl, g_buf, cap, &got);
	tu_fmt_bytes(kb, sizeof(kb), k, kl, 40);
	if (rc != 0)
		tu_fail(__FILE__, line, "engine_get(tree %u, %s, cap %zu) = %d, want 0 (a %zu-byte "
			"value)", t, kb, cap, rc, vl);
	if (got != vl)
		tu_fail(__FILE__, line, "engine_get(tree %u, %s, cap %zu): *vlen = %zu, want %zu",
			t, kb, cap, got, vl);
	if (n && memcmp(g_buf, v, n) != 0)
		tu_fail(__FILE__, line, "engine_get(tree %u, %s, cap %zu): value bytes differ "
			"(%zu-byte value)", t, kb, cap, vl);
	if (!canary_ok(g_buf, n))
		tu_fail(__FILE__, line, "engine_get(tree %u, %s, cap %zu): wrote past min(cap, "
			"length) = %zu", t, kb, cap, n);
}
#define get_expect(e, t, k, kl, v, vl, cap) get_expect_(__LINE__, e, t, k, kl, v, vl, cap)

static void get_str_(int line, struct engine *e, unsigned t, const char *k, const char *v)
{
	get_expect_(line, e, t, k, strlen(k), v, strlen(v), SIZE_MAX);
}
#define get_str(e, t, k, v) get_str_(__LINE__, e, t, k, v)

static void get_missing_(int line, struct engine *e, unsigned t, const void *k, size_t kl)
{
	char kb[96];
	size_t got = 12345;
	int rc = engine_get(e, t, k, kl, g_buf, 64, &got);

	if (rc != -ENOENT)
		tu_fail(__FILE__, line, "engine_get(tree %u, %s) of a missing key = %d (length "
			"%zu), want -ENOENT", t, tu_fmt_bytes(kb, sizeof(kb), k, kl, 40), rc, got);
}
#define get_missing(e, t, k, kl) get_missing_(__LINE__, e, t, k, kl)
#define get_missing_str(e, t, k) get_missing_(__LINE__, e, t, k, strlen(k))

/* Check one engine_iter_next result (rc, key g_ikey with cap kc and length kl, value g_ival
 * with cap vc and length vl) against the expected entry x (NULL: the end).  0 or -1 with a
 * message. */
static int step_check(int rc, const struct tu_ent *x, size_t kc, size_t kl, size_t vc, size_t vl,
		      char *msg, size_t len)
{
	char kb[96], xb[96];

	if (!x) {
		if (rc == -ENOENT)
			return 0;
		snprintf(msg, len, "engine_iter_next = %d (key %s), want -ENOENT (the end)", rc,
			 rc ? "-" : tu_fmt_bytes(kb, sizeof(kb), g_ikey, MIN(kl, kc), 40));
		return -1;
	}
	tu_fmt_bytes(xb, sizeof(xb), x->key, x->klen, 40);
	if (rc) {
		snprintf(msg, len, "engine_iter_next = %d, want key %s", rc, xb);
		return -1;
	}
	if (kl != x->klen || memcmp(g_ikey, x->key, MIN(kc, kl)) != 0) {
		snprintf(msg, len, "engine_iter_next: key %s (length %zu, cap %zu), want %s",
			 tu_fmt_bytes(kb, sizeof(kb), g_ikey, MIN(kl, kc), 40), kl, kc, xb);
		return -1;
	}
	if (vl != x->vlen || memcmp(g_ival, x->val, MIN(vc, vl)) != 0) {
		snprintf(msg, len, "engine_iter_next: key %s: value of %zu bytes (cap %zu) differs "
			 "from the expected %zu bytes", xb, vl, vc, x->vlen);
		return -1;
	}
	if (!canary_ok(g_ikey, MIN(kc, kl)) || !canary_ok(g_ival, MIN(vc, vl))) {
		snprintf(msg, len, "engine_iter_next: key %s: wrote past min(cap, length) (kcap "
			 "%zu, vcap %zu)", xb, kc, vc);
		return -1;
	}
	return 0;
}

/* One engine_iter_next with caps kcap/vcap (SIZE_MAX: whole), expecting at most `want` value
 * bytes (to bound the canary memset).  Sets *kl and *vl. */
static int iter_step(struct engine_iter *it, size_t *kcap, size_t *vcap, size_t want,
		     size_t *kl, size_t *vl)
{
	if (*kcap > STORE_MAX_KEY + 8)
		*kcap = STORE_MAX_KEY + 8;
	if (*vcap > ENGINE_MAX_VALUE + 8)
		*vcap = ENGINE_MAX_VALUE + 8;
	memset(g_ikey, 0xa5, *kcap + CANARY);
	memset(g_ival, 0xa5, MIN(*vcap, want) + CANARY);
	*kl = *vl = SIZE_MAX;
	return engine_iter_next(it, g_ikey, *kcap, kl, g_ival, *vcap, vl);
}

/* Walk tree t within bounds b (NULL: all; lo/hi only) with key/value caps (SIZE_MAX: whole)
 * and compare with the model's entries in those bounds.  0 or -1 with a message. */
static int iter_cmp(struct engine *e, unsigned t, const struct tu_model *m,
		    const struct tu_bounds *b, size_t kcap, size_t vcap, char *msg, size_t len)
{
	struct engine_iter *it = NULL;
	size_t begin, end;
	int rc = engine_iter_new(e, t, b ? b->lo : NULL, b ? b->lolen : 0, b ? b->hi : NULL,
				 b ? b->hilen : 0, &it);

	if (rc || !it) {
		snprintf(msg, len, "engine_iter_new(tree %u) = %d", t, rc);
		return -1;
	}
	tu_model_range(m, b, &begin, &end);
	for (size_t i = begin;; i++) {
		const struct tu_ent *x = i < end ? &m->ents[i] : NULL;
		size_t kc = kcap, vc = vcap, kl, vl;
		rc = iter_step(it, &kc, &vc, x ? x->vlen : 0, &kl, &vl);
		if (step_check(rc, x, kc, kl, vc, vl, msg, len)) {
			size_t o = strlen(msg);
			snprintf(msg + o, len - o, " (entry %zu of %zu in the bounds)", i - begin,
				 end - begin);
			engine_iter_free(it);
			return -1;
		}
		if (!x)
			break;
	}
	engine_iter_free(it);
	return 0;
}

static void iter_cmp_ok_(int line, struct engine *e, unsigned t, const struct tu_model *m,
			 const struct tu_bounds *b, size_t kcap, size_t vcap)
{
	if (iter_cmp(e, t, m, b, kcap, vcap, g_msg, sizeof(g_msg)))
		tu_fail(__FILE__, line, "tree %u, caps %zu/%zu: %s", t, kcap, vcap, g_msg);
}
#define iter_cmp_ok(e, t, m, b, kcap, vcap) iter_cmp_ok_(__LINE__, e, t, m, b, kcap, vcap)

/* Read tree t whole through engine iteration into `out` (cleared first), checking the order.
 * 0 or -1 with a message. */
static int eng_load(struct engine *e, unsigned t, struct tu_model *out, char *msg, size_t len)
{
	struct engine_iter *it = NULL;
	int rc = engine_iter_new(e, t, NULL, 0, NULL, 0, &it);

	tu_model_clear(out);
	if (rc || !it) {
		snprintf(msg, len, "engine_iter_new(tree %u) = %d", t, rc);
		return -1;
	}
	for (;;) {
		size_t kl = SIZE_MAX, vl = SIZE_MAX;
		rc = engine_iter_next(it, g_ikey, STORE_MAX_KEY, &kl, g_ival, ENGINE_MAX_VALUE,
				      &vl);
		if (rc == -ENOENT)
			break;
		if (rc || kl == 0 || kl > STORE_MAX_KEY || vl > ENGINE_MAX_VALUE) {
			snprintf(msg, len, "tree %u, entry %zu: engine_iter_next = %d (key length "
				 "%zu, value length %zu)", t, out->n, rc, kl, vl);
			engine_iter_free(it);
			return -1;
		}
		if (out->n) {
			const struct tu_ent *p = &out->ents[out->n - 1];
			if (tu_key_cmp(p->key, p->klen, g_ikey, kl) >= 0) {
				char a[96], b[96];
				snprintf(msg, len, "tree %u: iteration out of order: %s then %s", t,
					 tu_fmt_bytes(a, sizeof(a), p->key, p->klen, 40),
					 tu_fmt_bytes(b, sizeof(b), g_ikey, kl, 40));
				engine_iter_free(it);
				return -1;
			}
		}
		tu_model_put(out, g_ikey, kl, g_ival, vl);
	}
	engine_iter_free(it);
	return 0;
}

/* The store's own tree for engine tree t: "t<t>". */
static const char *tree_name(unsigned t)
{
	static const char *const names[ENGINE_TREES] = { "t0", "t1", "t2", "t3",
							 "t4", "t5", "t6", "t7" };
	return names[t];
}

/* The store underneath must hold exactly `m` in tree t (after a checkpoint). */
static void store_tree_ok_(int line, struct engine *e, unsigned t, const struct tu_model *m)
{
	if (tu_store_cmp(engine_store(e), tree_name(t), m, g_msg, sizeof(g_msg)))
		tu_fail(__FILE__, line, "the store's tree %s after a checkpoint: %s", tree_name(t),
			g_msg);
}
#define store_tree_ok(e, t, m) store_tree_ok_(__LINE__, e, t, m)

static void verify_ok_(int line, struct engine *e, const char *when)
{
	int rc = tu_verify(engine_store(e), g_msg, sizeof(g_msg));

	if (rc)
		tu_fail(__FILE__, line, "%s: store_verify = %d: %s", when, rc, g_msg);
}
#define verify_ok(e, when) verify_ok_(__LINE__, e, when)

/* The path of the log of the store at `path`. */
static const char *wal_path(const char *path)
{
	static char buf[PATH_MAX + 8];

	snprintf(buf, sizeof(buf), "%s-wal", path);
	return buf;
}

/* ---- core ---------------------------------------------------------------------------- */

START_TEST(test_open_create)
{
	for (int fault = 0; fault < 2; fault++) {
		struct tu_env env;
		struct engine_options o;
		struct engine *e = NULL, *e2 = NULL;

		if (fault)
			tu_env_fault(&env, 11);
		else
			tu_env_posix(&env);
		opts_init(&o, &env, 0);
		EXPECT(engine_open(env.path, &o, &e), -ENOENT);
		o.flags = STORE_CREATE;
		e = eopen_ok(&env, &o);
		if (fault) {
			TU_ASSERT(io_fault_file_size(env.m, env.path) >= 2 * STORE_PAGE_SIZE, "%s",
				  "STORE after create");
			TU_ASSERT(io_fault_file_size(env.m, wal_path(env.path)) >= WAL_HDR_SIZE,
				  "%s", "STORE-wal after create");
		} else {
			struct stat sb;
			TU_ASSERT(stat(env.path, &sb) == 0, "%s", "STORE after create");
			TU_ASSERT(stat(wal_path(env.path), &sb) == 0, "%s",
				  "STORE-wal after create");
		}
		/* The store is locked. */
		EXPECT(engine_open(env.path, &o, &e2), -EBUSY);
		/* Empty everywhere. */
		for (unsigned t = 0; t < ENGINE_TREES; t++) {
			struct tu_model none = { 0 };
			get_missing_str(e, t, "k");
			iter_cmp_ok(e, t, &none, NULL, SIZE_MAX, SIZE_MAX);
		}
		struct engine_stat s = estat(e);
		TU_ASSERT_EQ(s.n_commits, 0, "%s", "n_commits of a new engine");
		TU_ASSERT_EQ(s.overlay_entries, 0, "%s", "overlay_entries of a new engine");
		TU_ASSERT_EQ(s.log_bytes, 0, "%s", "log_bytes of a new engine");
		TU_ASSERT_EQ(s.log_ring_bytes, o.log_ring_bytes, "%s", "log_ring_bytes as asked");
		verify_ok(e, "new store");
		eclose_ok(e);
		/* Reopen without STORE_CREATE; the ring size is the log's, not the option's. */
		o.flags = 0;
		o.log_ring_bytes = 2u << 20;
		e = eopen_ok(&env, &o);
		s = estat(e);
		TU_ASSERT_EQ(s.log_ring_bytes, 4u << 20, "%s", "log_ring_bytes of an existing log");
		eclose_ok(e);
		tu_env_fini(&env);
	}
}
END_TEST

START_TEST(test_batches)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_batch *b = engine_batch_new();
	static uint8_t big[ENGINE_MAX_VALUE + 1];
	uint8_t maxkey[STORE_MAX_KEY + 1], v5k[5000];
	struct tu_rng r;

	TU_ASSERT(b != NULL, "%s", "engine_batch_new");
	tu_env_fault(&env, 12);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);

	/* Several trees; deleting a missing key is fine. */
	bputs(b, 0, "apple", "red");
	bputs(b, 0, "banana", "yellow");
	bputs(b, 1, "apple", "green");
	bputs(b, 7, "k", "v7");
	bdels(b, 0, "missing");
	bdels(b, 5, "missing");
	uint64_t lsn1 = commit_ok(e, b);
	get_str(e, 0, "apple", "red");
	get_str(e, 0, "banana", "yellow");
	get_str(e, 1, "apple", "green");
	get_str(e, 7, "k", "v7");
	get_missing_str(e, 2, "apple");
	get_missing_str(e, 0, "missing");
	get_missing_str(e, 1, "banana");

	/* Inside a batch the operations apply in order: the last one wins. */
	engine_batch_clear(b);
	bputs(b, 0, "x", "1");
	bdels(b, 0, "x");
	bdels(b, 0, "y");
	bputs(b, 0, "y", "2");
	bputs(b, 0, "z", "1");
	bputs(b, 0, "z", "3");
	bdels(b, 0, "banana");
	bputs(b, 0, "apple", "");
	bputs(b, 1, "apple", "still green");
	bdels(b, 1, "apple");
	bputs(b, 1, "apple", "green again");
	uint64_t lsn2 = commit_ok(e, b);
	TU_ASSERT(lsn2 > lsn1, "LSNs %" PRIu64 " then %" PRIu64, lsn1, lsn2);
	get_missing_str(e, 0, "x");
	get_str(e, 0, "y", "2");
	get_str(e, 0, "z", "3");
	get_missing_str(e, 0, "banana");
	get_str(e, 0, "apple", "");
	get_str(e, 1, "apple", "green again");
	get_str(e, 7, "k", "v7");

	/* A cleared batch commits nothing; an empty batch is a no-op. */
	struct engine_stat s0 = estat(e);
	TU_ASSERT_EQ(s0.n_commits, 2, "%s", "n_commits after two batches");
	engine_batch_clear(b);
	uint64_t l = 0;
	OK(engine_commit(e, b, &l));
	OK(engine_commit(e, b, NULL));
	struct engine_stat s1 = estat(e);
	TU_ASSERT_EQ(s1.n_commits, s0.n_commits, "%s", "an empty batch logged a record");
	TU_ASSERT_EQ(s1.log_bytes, s0.log_bytes, "%s", "an empty batch used log space");
	engine_batch_free(b);

	/* A fresh batch; lsn may be NULL. */
	b = engine_batch_new();
	tu_rng_init(&r, 12);
	tu_rng_bytes(&r, v5k, sizeof(v5k));
	bput(b, 2, "five-thousand", 13, v5k, 5000);
	OK(engine_commit(e, b, NULL));
	/* Short buffers: a truncated copy and the full length. */
	get_expect(e, 2, "five-thousand", 13, v5k, 5000, SIZE_MAX);
	get_expect(e, 2, "five-thousand", 13, v5k, 5000, 5000);
	get_expect(e, 2, "five-thousand", 13, v5k, 5000, 4999);
	get_expect(e, 2, "five-thousand", 13, v5k, 5000, 10);
	get_expect(e, 2, "five-thousand", 13, v5k, 5000, 1);
	get_expect(e, 2, "five-thousand", 13, v5k, 5000, 0);
	get_expect(e, 0, "apple", 5, "", 0, 0);

	/* Argument limits. */
	memset(maxkey, 'K', sizeof(maxkey));
	engine_batch_clear(b);
	EXPECT(engine_batch_put(b, ENGINE_TREES, "k", 1, "v", 1), -EINVAL);
	EXPECT(engine_batch_put(b, 0, "k", 0, "v", 1), -EINVAL);
	EXPECT(engine_batch_put(b, 0, maxkey, STORE_MAX_KEY + 1, "v", 1), -EINVAL);
	EXPECT(engine_batch_put(b, 0, "k", 1, big, ENGINE_MAX_VALUE + 1), -EINVAL);
	EXPECT(engine_batch_del(b, ENGINE_TREES, "k", 1), -EINVAL);
	EXPECT(engine_batch_del(b, 0, "k", 0), -EINVAL);
	EXPECT(engine_batch_del(b, 0, maxkey, STORE_MAX_KEY + 1), -EINVAL);
	size_t vl = 0;
	EXPECT(engine_get(e, ENGINE_TREES, "k", 1, g_buf, 64, &vl), -EINVAL);
	EXPECT(engine_get(e, 0, "k", 0, g_buf, 64, &vl), -EINVAL);
	EXPECT(engine_get(e, 0, maxkey, STORE_MAX_KEY + 1, g_buf, 64, &vl), -EINVAL);
	/* The rejected calls added nothing: the batch is still empty. */
	s0 = estat(e);
	OK(engine_commit(e, b, NULL));
	TU_ASSERT_EQ(estat(e).n_commits, s0.n_commits, "%s", "rejected puts reached the batch");
	/* The limits themselves are fine: a 1024-byte key, a 1 MiB value (the ring is 4 MiB). */
	for (size_t i = 0; i < ENGINE_MAX_VALUE; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 12));
	bput(b, 3, maxkey, STORE_MAX_KEY, "max key", 7);
	bput(b, 3, "max value", 9, big, ENGINE_MAX_VALUE);
	commit_ok(e, b);
	get_expect(e, 3, maxkey, STORE_MAX_KEY, "max key", 7, SIZE_MAX);
	get_missing(e, 3, maxkey, STORE_MAX_KEY - 1);
	get_expect(e, 3, "max value", 9, big, ENGINE_MAX_VALUE, SIZE_MAX);
	get_expect(e, 3, "max value", 9, big, ENGINE_MAX_VALUE, 4096);
	OK(engine_checkpoint(e));
	get_expect(e, 3, "max value", 9, big, ENGINE_MAX_VALUE, SIZE_MAX);
	get_expect(e, 3, maxkey, STORE_MAX_KEY, "max key", 7, 3);
	get_str(e, 1, "apple", "green again");
	verify_ok(e, "after the checkpoint");
	eclose_ok(e);

	e = eopen_ok(&env, &o);
	get_expect(e, 3, "max value", 9, big, ENGINE_MAX_VALUE, SIZE_MAX);
	get_expect(e, 2, "five-thousand", 13, v5k, 5000, 100);
	get_str(e, 7, "k", "v7");
	eclose_ok(e);
	engine_batch_free(b);
	tu_env_fini(&env);
}
END_TEST

/* Tree 1 holds "k00".."k49" (values "v<i>" x i) and a few keys that prefix each other; tree 2
 * holds the same keys with other values (trees are independent). */
static void iter_fill(struct engine *e, struct tu_model *m1)
{
	struct engine_batch *b = engine_batch_new();
	char k[16], v[64];

	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "k%02d", i);
		int n = snprintf(v, sizeof(v), "v%d", i);
		memset(v + n, 'x', (size_t)i);
		bput(b, 1, k, 3, v, (size_t)n + (size_t)i);
		tu_model_put(m1, k, 3, v, (size_t)n + (size_t)i);
		bput(b, 2, k, 3, "other", 5);
	}
	static const char *const pre[] = { "a", "ab", "abc", "abd", "b", "\xff", "\xff\xff" };
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		bput(b, 1, pre[i], strlen(pre[i]), "0123456789", i);
		tu_model_put(m1, pre[i], strlen(pre[i]), "0123456789", i);
	}
	commit_ok(e, b);
	engine_batch_free(b);
}

/* Every bounds case below, at full and at short caps. */
static void iter_bounds_all(struct engine *e, const struct tu_model *m1)
{
	static const struct {
		const char *lo, *hi;
		size_t lolen, hilen;
	} cases[] = {
		{ NULL, NULL, 0, 0 },		{ "k10", NULL, 3, 0 },	{ NULL, "k20", 0, 3 },
		{ "k10", "k20", 3, 3 },		{ "k105", "k2", 4, 2 },	{ "k20", "k10", 3, 3 },
		{ "k20", "k20", 3, 3 },		{ "a", "abc", 1, 3 },	{ "ab", "abd", 2, 3 },
		{ "", "b", 0, 1 },		{ "k49", "", 3, 0 },	{ "k5", NULL, 2, 0 },
		{ "\xff", NULL, 1, 0 },		{ "\x01", "k00", 1, 3 }, { "zzz", NULL, 3, 0 },
	};
	static const size_t caps[][2] = { { SIZE_MAX, SIZE_MAX }, { 2, 1 }, { 0, 0 }, { 3, 4 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tu_bounds b = { cases[i].lo, cases[i].lolen, cases[i].hi, cases[i].hilen,
				       NULL, 0 };
		for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
			if (iter_cmp(e, 1, m1, &b, caps[c][0], caps[c][1], g_msg, sizeof(g_msg)))
				tu_fail(__FILE__, __LINE__, "bounds case %zu [%s, %s), caps "
					"%zu/%zu: %s", i, cases[i].lo ? cases[i].lo : "NULL",
					cases[i].hi ? cases[i].hi : "NULL", caps[c][0], caps[c][1],
					g_msg);
	}
}

START_TEST(test_iterate_bounds)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct tu_model m1 = { 0 }, m2 = { 0 };

	tu_env_fault(&env, 13);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	iter_fill(e, &m1);
	/* The overlay alone. */
	iter_bounds_all(e, &m1);
	/* The B+tree alone. */
	OK(engine_checkpoint(e));
	TU_ASSERT_EQ(estat(e).overlay_entries, 0, "%s", "overlay entries after a checkpoint");
	iter_bounds_all(e, &m1);
	store_tree_ok(e, 1, &m1);
	/* Both merged: replacements, deletions (tombstones over the tree), new keys between. */
	struct engine_batch *b = engine_batch_new();
	for (int i = 0; i < 50; i += 3) {
		char k[16];
		snprintf(k, sizeof(k), "k%02d", i);
		if (i % 2) {
			bdel(b, 1, k, 3);
			tu_model_del(&m1, k, 3);
		} else {
			bput(b, 1, k, 3, "replaced", 8);
			tu_model_put(&m1, k, 3, "replaced", 8);
		}
		snprintf(k, sizeof(k), "k%02d5", i);
		bput(b, 1, k, 4, "new", 3);
		tu_model_put(&m1, k, 4, "new", 3);
	}
	bdels(b, 1, "a");
	tu_model_del(&m1, "a", 1);
	bdels(b, 1, "\xff\xff");
	tu_model_del(&m1, "\xff\xff", 2);
	bdels(b, 1, "never");
	commit_ok(e, b);
	iter_bounds_all(e, &m1);
	/* Tree 2 is untouched by all that. */
	for (int i = 0; i < 50; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%02d", i);
		tu_model_put(&m2, k, 3, "other", 5);
	}
	iter_cmp_ok(e, 2, &m2, NULL, SIZE_MAX, SIZE_MAX);
	/* Reopened: everything in the tree again. */
	eclose_ok(e);
	e = eopen_ok(&env, &o);
	iter_bounds_all(e, &m1);
	iter_cmp_ok(e, 2, &m2, NULL, SIZE_MAX, SIZE_MAX);
	eclose_ok(e);
	engine_batch_free(b);
	tu_model_free(&m1);
	tu_model_free(&m2);
	tu_env_fini(&env);
}
END_TEST

static void next_is_(int line, struct engine_iter *it, const char *want)
{
	size_t kl, vl, kc = SIZE_MAX, vc = SIZE_MAX;
	int rc = iter_step(it, &kc, &vc, 64, &kl, &vl);

	if (!want) {
		if (rc != -ENOENT)
			tu_fail(__FILE__, line, "engine_iter_next = %d, want -ENOENT", rc);
		return;
	}
	if (rc != 0 || kl != strlen(want) || memcmp(g_ikey, want, kl) != 0)
		tu_fail(__FILE__, line, "engine_iter_next = %d, key \"%.*s\", want \"%s\"", rc,
			rc ? 0 : (int)MIN(kl, 64), (const char *)g_ikey, want);
}
#define next_is(it, want) next_is_(__LINE__, it, want)

static void commit1(struct engine *e, unsigned t, const char *put, const char *del)
{
	struct engine_batch *b = engine_batch_new();

	if (put)
		bputs(b, t, put, "v");
	if (del)
		bdels(b, t, del);
	commit_ok(e, b);
	engine_batch_free(b);
}

/* "Each step sees the latest committed state after the previous key": keys added behind the
 * iterator are not seen, keys added or deleted ahead are, across checkpoints too. */
START_TEST(test_iterate_changes)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_iter *it = NULL;

	tu_env_fault(&env, 14);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	for (int i = 10; i <= 90; i += 10) {
		char k[8];
		snprintf(k, sizeof(k), "m%02d", i);
		commit1(e, 4, k, NULL);
		if (i == 50)
			OK(engine_checkpoint(e)); /* m10..m50 in the tree, the rest not */
	}
	OK(engine_iter_new(e, 4, NULL, 0, NULL, 0, &it));
	commit1(e, 4, "m01", NULL);	/* before the first step: seen */
	next_is(it, "m01");
	next_is(it, "m10");
	commit1(e, 4, "m05", "m20");	/* behind: not seen; ahead deleted */
	commit1(e, 4, "m15", NULL);	/* ahead: seen */
	next_is(it, "m15");
	next_is(it, "m30");
	commit1(e, 4, "m30", "m40");	/* the current key replaced, the next one deleted */
	OK(engine_checkpoint(e));
	next_is(it, "m50");
	commit1(e, 4, "m55", NULL);
	OK(engine_checkpoint(e));
	commit1(e, 4, NULL, "m60");	/* a tombstone in the overlay over the tree */
	next_is(it, "m55");
	next_is(it, "m70");
	commit1(e, 4, "m99", "m80");
	next_is(it, "m90");
	next_is(it, "m99");
	next_is(it, NULL);
	engine_iter_free(it);

	/* With bounds: [m15, m60). */
	OK(engine_iter_new(e, 4, "m15", 3, "m60", 3, &it));
	commit1(e, 4, "m14", "m15");
	next_is(it, "m30");
	commit1(e, 4, "m59", NULL);
	commit1(e, 4, "m60", NULL);
	next_is(it, "m50");
	next_is(it, "m55");
	next_is(it, "m59");
	next_is(it, NULL);
	engine_iter_free(it);
	/* An iterator freed before its end, and one never stepped. */
	OK(engine_iter_new(e, 4, NULL, 0, NULL, 0, &it));
	next_is(it, "m01");
	engine_iter_free(it);
	OK(engine_iter_new(e, 4, NULL, 0, NULL, 0, &it));
	engine_iter_free(it);
	eclose_ok(e);
	tu_env_fini(&env);
}
END_TEST

/* A few hundred keys over three trees: the model per tree, the distinct (tree, key) count. */
static size_t fill_three(struct engine *e, struct tu_model *m, int round)
{
	struct engine_batch *b = engine_batch_new();
	size_t distinct = 0;

	for (int i = 0; i < 240; i++) {
		unsigned t = (unsigned)(i % 3);
		char k[32], v[200];
		int kl = snprintf(k, sizeof(k), "key-%d-%04d", round, i);
		size_t vl = (size_t)(i * 37 % 200);
		memset(v, 'a' + i % 26, vl);
		bput(b, t * 3, k, (size_t)kl, v, vl);
		tu_model_put(&m[t], k, (size_t)kl, v, vl);
		distinct++;
		if (i % 10 == 9) {
			commit_ok(e, b);
			engine_batch_clear(b);
		}
	}
	engine_batch_free(b);
	return distinct;
}

static void three_ok_(int line, struct engine *e, const struct tu_model *m)
{
	for (unsigned t = 0; t < 3; t++)
		if (iter_cmp(e, t * 3, &m[t], NULL, SIZE_MAX, SIZE_MAX, g_msg, sizeof(g_msg)))
			tu_fail(__FILE__, line, "tree %u: %s", t * 3, g_msg);
	for (unsigned t = 0; t < 3; t++)
		for (size_t i = 0; i < m[t].n; i += 7)
			get_expect_(line, e, t * 3, m[t].ents[i].key, m[t].ents[i].klen,
				    m[t].ents[i].val, m[t].ents[i].vlen, SIZE_MAX);
}
#define three_ok(e, m) three_ok_(__LINE__, e, m)

START_TEST(test_checkpoint_stat)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct tu_model m[3] = { { 0 } };

	tu_env_fault(&env, 15);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	struct engine_stat s0 = estat(e);
	size_t distinct = fill_three(e, m, 0);
	struct engine_batch *b = engine_batch_new();
	bdels(b, 0, "never-there");
	commit_ok(e, b);
	distinct++; /* a tombstone is an overlay entry */
	struct engine_stat s1 = estat(e);
	TU_ASSERT_EQ(s1.n_commits - s0.n_commits, 25, "%s", "n_commits after 25 batches");
	TU_ASSERT_EQ(s1.overlay_entries, distinct, "%s", "overlay_entries");
	TU_ASSERT(s1.overlay_bytes > 0 && s1.log_bytes > 0, "overlay %" PRIu64 " bytes, log %"
		  PRIu64 " bytes after 25 batches", s1.overlay_bytes, s1.log_bytes);
	TU_ASSERT_EQ(s1.n_checkpoints, s0.n_checkpoints, "%s", "a checkpoint without a thread");
	TU_ASSERT_EQ(s1.n_sync_calls, s0.n_sync_calls, "%s", "n_sync_calls without a sync");
	OK(engine_sync(e, 0));
	struct engine_stat s2 = estat(e);
	TU_ASSERT_EQ(s2.n_sync_calls, s1.n_sync_calls + 1, "%s", "n_sync_calls");
	TU_ASSERT(s2.n_fdatasync > s1.n_fdatasync, "n_fdatasync %" PRIu64 " -> %" PRIu64
		  " over a sync of new records", s1.n_fdatasync, s2.n_fdatasync);
	three_ok(e, m);

	OK(engine_checkpoint(e));
	struct engine_stat s3 = estat(e);
	TU_ASSERT_EQ(s3.n_checkpoints, s2.n_checkpoints + 1, "%s", "n_checkpoints");
	TU_ASSERT(s3.log_bytes < s2.log_bytes, "log_bytes %" PRIu64 " -> %" PRIu64 " over a "
		  "checkpoint", s2.log_bytes, s3.log_bytes);
	TU_ASSERT(s3.overlay_entries == 0 && s3.overlay_bytes == 0, "overlay %" PRIu64
		  " entries, %" PRIu64 " bytes after a checkpoint", s3.overlay_entries,
		  s3.overlay_bytes);
	TU_ASSERT(s3.store.txnid > s2.store.txnid && s3.store.durable_txnid == s3.store.txnid,
		  "store txnid %" PRIu64 " -> %" PRIu64 " (durable %" PRIu64 ")", s2.store.txnid,
		  s3.store.txnid, s3.store.durable_txnid);
	TU_ASSERT(s3.store.n_trees >= 3, "n_trees %" PRIu64, s3.store.n_trees);
	three_ok(e, m);
	for (unsigned t = 0; t < 3; t++)
		store_tree_ok(e, t * 3, &m[t]);
	verify_ok(e, "after the checkpoint");

	/* Changes over the tree: replace, delete, add; reads merge. */
	engine_batch_clear(b);
	for (unsigned t = 0; t < 3; t++) {
		for (size_t i = 0; i < m[t].n; i += 5) {
			char k[64];
			size_t kl = m[t].ents[i].klen;
			memcpy(k, m[t].ents[i].key, kl);
			if (i % 2) {
				bdel(b, t * 3, k, kl);
				tu_model_del(&m[t], k, kl);
			} else {
				bput(b, t * 3, k, kl, "new value", 9);
				tu_model_put(&m[t], k, kl, "new value", 9);
			}
		}
	}
	commit_ok(e, b);
	fill_three(e, m, 1);
	three_ok(e, m);
	struct engine_stat s4 = estat(e);
	TU_ASSERT(s4.log_bytes > 0 && s4.overlay_entries > 0, "%s", "new changes not counted");
	OK(engine_checkpoint(e));
	struct engine_stat s5 = estat(e);
	TU_ASSERT_EQ(s5.n_checkpoints, s4.n_checkpoints + 1, "%s", "n_checkpoints");
	TU_ASSERT(s5.log_bytes < s4.log_bytes, "log_bytes %" PRIu64 " -> %" PRIu64 " over a "
		  "checkpoint", s4.log_bytes, s5.log_bytes);
	three_ok(e, m);
	for (unsigned t = 0; t < 3; t++)
		store_tree_ok(e, t * 3, &m[t]);
	verify_ok(e, "after the second checkpoint");
	/* A checkpoint with nothing to do. */
	OK(engine_checkpoint(e));
	three_ok(e, m);

	/* Close and reopen: everything there, the log empty. */
	fill_three(e, m, 2);
	eclose_ok(e);
	e = eopen_ok(&env, &o);
	struct engine_stat s6 = estat(e);
	TU_ASSERT(s6.overlay_entries == 0 && s6.log_bytes == 0, "after a clean close: overlay %"
		  PRIu64 " entries, log %" PRIu64 " bytes", s6.overlay_entries, s6.log_bytes);
	three_ok(e, m);
	for (unsigned t = 0; t < 3; t++)
		store_tree_ok(e, t * 3, &m[t]);
	verify_ok(e, "reopened");
	eclose_ok(e);
	engine_batch_free(b);
	for (unsigned t = 0; t < 3; t++)
		tu_model_free(&m[t]);
	tu_env_fini(&env);
}
END_TEST

/* The end of a three-tree test: the trees (not the overlay) equal the models, the store
 * verifies (`what` names the moment), close, reopen, the models read back, close; the models
 * and env are freed. */
static void trees_ok_reopen_end(struct engine *e, struct tu_env *env,
				const struct engine_options *o, struct tu_model *m, const char *what)
{
	for (unsigned t = 0; t < 3; t++)
		store_tree_ok(e, t * 3, &m[t]);
	verify_ok(e, what);
	eclose_ok(e);
	e = eopen_ok(env, o);
	three_ok(e, m);
	eclose_ok(e);
	for (unsigned t = 0; t < 3; t++)
		tu_model_free(&m[t]);
	tu_env_fini(env);
}

/* The log flush of a checkpoint (engine.c wal_rule): none when the checkpoint commits once,
 * with its LSN (the meta page then says the tree holds those records); exactly one, before
 * the first, when it commits in pieces that keep the old LSN, however many pieces. */
START_TEST(test_checkpoint_log_flush)
{
	struct tu_env env;
	struct engine_options o;
	struct tu_model m[3] = { { 0 } };

	tu_env_fault(&env, 16);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	struct engine *e = eopen_ok(&env, &o);
	for (int round = 0; round < 2; round++) {
		fill_three(e, m, round);
		struct engine_stat s0 = estat(e);
		OK(engine_checkpoint(e));
		struct engine_stat s1 = estat(e);
		TU_ASSERT_EQ(s1.n_checkpoints, s0.n_checkpoints + 1, "round %d", round);
		TU_ASSERT(s1.n_fdatasync == s0.n_fdatasync, "round %d: a checkpoint in one commit "
			  "flushed the log: n_fdatasync %" PRIu64 " -> %" PRIu64, round,
			  s0.n_fdatasync, s1.n_fdatasync);
		TU_ASSERT(s1.store.durable_txnid == s0.store.durable_txnid + 1, "round %d: %" PRIu64
			  " commits, want 1", round, s1.store.durable_txnid - s0.store.durable_txnid);
		three_ok(e, m);
	}
	eclose_ok(e);

	o.flags = 0;
	o.ckpt_piece_pages = 1; /* a piece after every copied page */
	e = eopen_ok(&env, &o);
	three_ok(e, m);
	fill_three(e, m, 2);
	struct engine_stat s0 = estat(e);
	OK(engine_checkpoint(e));
	struct engine_stat s1 = estat(e);
	uint64_t commits = s1.store.durable_txnid - s0.store.durable_txnid;
	TU_ASSERT(commits >= 3, "a checkpoint in pieces of one page made %" PRIu64 " commits",
		  commits);
	TU_ASSERT_EQ(s1.n_fdatasync, s0.n_fdatasync + 1, "log flushes of a checkpoint of %" PRIu64
		     " commits", commits);
	three_ok(e, m);
	trees_ok_reopen_end(e, &env, &o, m, "after a checkpoint in pieces");
}
END_TEST

/* Commit the log-only workload: three trees, deletes, values up to 100 KiB. */
static void log_only_fill(struct engine *e, struct tu_model *m, uint64_t seed)
{
	struct tu_rng r;
	struct engine_batch *b = engine_batch_new();
	static uint8_t v[100 << 10];

	tu_rng_init(&r, seed);
	keys_init();
	for (int c = 0; c < 40; c++) {
		unsigned n = 1 + (unsigned)tu_rng_below(&r, 8);
		engine_batch_clear(b);
		for (unsigned j = 0; j < n; j++) {
			unsigned t = (unsigned)tu_rng_below(&r, 3);
			size_t ki = (size_t)tu_rng_below(&r, 64);
			if (tu_rng_chance(&r, 1, 4)) {
				bdel(b, t * 3, g_keys[ki], g_klen[ki]);
				tu_model_del(&m[t], g_keys[ki], g_klen[ki]);
				continue;
			}
			size_t vl = tu_rng_chance(&r, 1, 10) ? sizeof(v)
							     : (size_t)tu_rng_below(&r, 300);
			tf_value_fill(v, vl, tu_rng_next(&r));
			bput(b, t * 3, g_keys[ki], g_klen[ki], v, vl);
			tu_model_put(&m[t], g_keys[ki], g_klen[ki], v, vl);
		}
		commit_ok(e, b);
	}
	engine_batch_free(b);
}

/* Only the log holds the data: no checkpoint ran, engine_sync returned, then the power went
 * (the engine is given up on the dead machine) — reopen replays it all. */
START_TEST(test_log_only_power_cut)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct tu_model m[3] = { { 0 } };

	tu_env_fault(&env, 16);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	log_only_fill(e, m, 16);
	OK(engine_sync(e, 0));
	struct engine_stat s = estat(e);
	TU_ASSERT(s.n_checkpoints == 0 && s.log_bytes > 0, "%" PRIu64 " checkpoints, log %"
		  PRIu64 " bytes", s.n_checkpoints, s.log_bytes);
	io_fault_set_cut_mode(env.m, IO_CUT_DROP_ALL);
	io_fault_power_cut(env.m);
	int rc = engine_close(e); /* frees it; nothing can reach the disk any more */
	TU_ASSERT(rc < 0, "engine_close on a dead machine with a dirty overlay = %d", rc);
	tu_env_reboot(&env, 160);
	o.io = tu_env_io(&env); /* the new machine */

	o.flags = 0;
	e = eopen_ok(&env, &o);
	verify_ok(e, "reopened after the cut");
	three_ok(e, m);
	s = estat(e);
	TU_ASSERT(s.overlay_entries > 0 && s.log_bytes > 0, "after replay: overlay %" PRIu64
		  " entries, log %" PRIu64 " bytes", s.overlay_entries, s.log_bytes);
	/* The replayed records checkpoint into the tree like any others. */
	OK(engine_checkpoint(e));
	trees_ok_reopen_end(e, &env, &o, m, "checkpoint after replay");
}
END_TEST

/* The same with the engine never closed: reboot the live machine under it (what was not synced
 * is lost), open the copy; unsynced batches after the sync are a prefix. */
START_TEST(test_log_only_reboot)
{
	struct tu_env env, env2;
	struct engine_options o, o2;
	struct engine *e, *e2;
	struct tu_model m[3] = { { 0 } }, got[3] = { { 0 } };
	struct tu_model after[6][3];

	memset(after, 0, sizeof(after));
	tu_env_fault(&env, 17);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	log_only_fill(e, m, 17);
	OK(engine_sync(e, 0));
	for (unsigned t = 0; t < 3; t++)
		tu_model_copy(&after[0][t], &m[t]);
	/* Five more batches, never synced. */
	for (int c = 1; c <= 5; c++) {
		char k[16];
		snprintf(k, sizeof(k), "late%d", c);
		commit1(e, 0, k, NULL);
		tu_model_put(&m[0], k, strlen(k), "v", 1);
		for (unsigned t = 0; t < 3; t++)
			tu_model_copy(&after[c][t], &m[t]);
	}

	memset(&env2, 0, sizeof(env2));
	env2 = env;
	env2.m = io_fault_reboot(env.m, 170);
	TU_ASSERT(env2.m != NULL, "%s", "io_fault_reboot");
	opts_init(&o2, &env2, 0);
	o2.no_checkpoint_thread = true;
	e2 = eopen_ok(&env2, &o2);
	verify_ok(e2, "opened on the rebooted copy");
	for (unsigned t = 0; t < 3; t++)
		if (eng_load(e2, t * 3, &got[t], g_msg, sizeof(g_msg)))
			tu_fail(__FILE__, __LINE__, "%s", g_msg);
	int match = -1;
	for (int c = 5; c >= 0 && match < 0; c--) {
		bool eq = true;
		for (unsigned t = 0; t < 3 && eq; t++)
			eq = tu_model_cmp(&got[t], &after[c][t], g_msg, sizeof(g_msg)) == 0;
		if (eq)
			match = c;
	}
	if (match < 0) {
		for (unsigned t = 0; t < 3; t++)
			if (tu_model_cmp(&got[t], &after[0][t], g_msg, sizeof(g_msg)))
				break;
		tu_fail(__FILE__, __LINE__, "the state after the reboot is no prefix from the "
			"synced batch on; against it: %s", g_msg);
	}
	three_ok(e2, after[match]);
	eclose_ok(e2);
	/* The original engine, on its own machine, still works and closes. */
	three_ok(e, m);
	eclose_ok(e);
	io_fault_free(env2.m);
	tu_env_fini(&env);
	for (unsigned t = 0; t < 3; t++) {
		tu_model_free(&m[t]);
		tu_model_free(&got[t]);
		for (int c = 0; c < 6; c++)
			tu_model_free(&after[c][t]);
	}
}
END_TEST

/* sync_every_write: every commit is durable when it returns. */
START_TEST(test_sync_every_write)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct tu_model m[3] = { { 0 } };

	tu_env_fault(&env, 18);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	o.sync_every_write = true;
	e = eopen_ok(&env, &o);
	struct engine_stat s0 = estat(e);
	log_only_fill(e, m, 18);
	struct engine_stat s1 = estat(e);
	TU_ASSERT(s1.n_fdatasync >= s0.n_fdatasync + 40, "n_fdatasync %" PRIu64 " -> %" PRIu64
		  " over 40 commits with sync_every_write", s0.n_fdatasync, s1.n_fdatasync);
	io_fault_set_cut_mode(env.m, IO_CUT_DROP_ALL);
	io_fault_power_cut(env.m);
	engine_close(e);
	tu_env_reboot(&env, 180);
	o.io = tu_env_io(&env); /* the new machine */
	o.flags = 0;
	o.sync_every_write = false;
	e = eopen_ok(&env, &o);
	verify_ok(e, "after the cut");
	three_ok(e, m);
	eclose_ok(e);
	for (unsigned t = 0; t < 3; t++)
		tu_model_free(&m[t]);
	tu_env_fini(&env);
}
END_TEST

/* STORE_RDONLY: sees what the log holds, takes no commit, writes nothing. */
START_TEST(test_rdonly)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct tu_model m[3] = { { 0 } };

	tu_env_fault(&env, 19);
	opts_init(&o, &env, STORE_CREATE);
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	log_only_fill(e, m, 19);
	OK(engine_checkpoint(e));
	log_only_fill(e, m, 190);	/* these only in the log */
	OK(engine_sync(e, 0));
	io_fault_power_cut(env.m);
	engine_close(e);
	tu_env_reboot(&env, 191);
	o.io = tu_env_io(&env); /* the new machine */

	size_t slen, wlen;
	uint8_t *simg = tf_image_read(env.m, env.path, &slen);
	uint8_t *wimg = tf_image_read(env.m, wal_path(env.path), &wlen);
	o.flags = STORE_RDONLY;
	o.no_checkpoint_thread = false;
	e = eopen_ok(&env, &o);
	three_ok(e, m);
	struct engine_batch *b = engine_batch_new();
	bputs(b, 0, "no", "way");
	EXPECT(engine_commit(e, b, NULL), -EROFS);
	get_missing_str(e, 0, "no");
	eclose_ok(e);
	TU_ASSERT(tf_image_equal(env.m, env.path, simg, slen), "%s",
		  "a read-only engine changed STORE");
	TU_ASSERT(tf_image_equal(env.m, wal_path(env.path), wimg, wlen), "%s",
		  "a read-only engine changed STORE-wal");
	/* Read-write again: still all there. */
	o.flags = 0;
	e = eopen_ok(&env, &o);
	three_ok(e, m);
	eclose_ok(e);
	engine_batch_free(b);
	free(simg);
	free(wimg);
	for (unsigned t = 0; t < 3; t++)
		tu_model_free(&m[t]);
	tu_env_fini(&env);
}
END_TEST

/* A failed log write or sync fails the engine: later commits and syncs return -EIO, reads go on,
 * the failed batch is not visible; a reopen works. */
START_TEST(test_failed_engine)
{
	for (int what = 0; what < 2; what++) {
		struct tu_env env;
		struct engine_options o;
		struct engine *e;
		struct engine_batch *b = engine_batch_new();

		tu_env_fault(&env, 20 + (uint64_t)what);
		opts_init(&o, &env, STORE_CREATE);
		o.no_checkpoint_thread = true;
		e = eopen_ok(&env, &o);
		commit1(e, 0, "first", NULL);
		OK(engine_sync(e, 0));
		if (what == 0) {
			/* The next counted call is the record's pwrite. */
			io_fault_fail_at(env.m, 1, IO_FAULT_EIO);
			bputs(b, 0, "second", "v");
			EXPECT(engine_commit(e, b, NULL), -EIO);
			TU_ASSERT(io_fault_fired(env.m), "%s", "the failure did not fire");
			get_missing_str(e, 0, "second");
		} else {
			commit1(e, 0, "second", NULL);
			io_fault_fail_at(env.m, 1, IO_FAULT_EIO);
			EXPECT(engine_sync(e, 0), -EIO);
			TU_ASSERT(io_fault_fired(env.m), "%s", "the failure did not fire");
		}
		get_str(e, 0, "first", "v");
		engine_batch_clear(b);
		bputs(b, 0, "third", "v");
		EXPECT(engine_commit(e, b, NULL), -EIO);
		EXPECT(engine_sync(e, 0), -EIO);
		get_missing_str(e, 0, "third");
		get_str(e, 0, "first", "v");
		engine_close(e);
		o.flags = 0;
		e = eopen_ok(&env, &o);
		get_str(e, 0, "first", "v");
		if (what == 0)
			get_missing_str(e, 0, "second");
		get_missing_str(e, 0, "third");
		commit1(e, 0, "fourth", NULL);
		OK(engine_sync(e, 0));
		verify_ok(e, "reopened after a failure");
		eclose_ok(e);
		engine_batch_free(b);
		tu_env_fini(&env);
	}
}
END_TEST

/* Between the read passes of a test: after pass 0 a checkpoint, after pass 1 a close and
 * reopen with o (the next pass reads from the tree, then from the store as reopened). */
static struct engine *next_pass(struct engine *e, struct tu_env *env,
				const struct engine_options *o, int pass)
{
	if (pass == 0) {
		OK(engine_checkpoint(e));
	} else if (pass == 1) {
		eclose_ok(e);
		e = eopen_ok(env, o);
	}
	return e;
}

/* Close e, free b and env. */
static void test_end(struct engine *e, struct engine_batch *b, struct tu_env *env)
{
	eclose_ok(e);
	engine_batch_free(b);
	tu_env_fini(env);
}

/* A new store on an io_fault machine seeded `seed`, for the big_rounds tests: a ring of
 * `ring` bytes, checkpoints every `ckpt` bytes, by the thread unless `no_thread`. */
static struct engine *big_open(struct tu_env *env, struct engine_options *o, uint64_t seed,
			       uint64_t ring, uint64_t ckpt, bool no_thread)
{
	tu_env_fault(env, seed);
	opts_init(o, env, STORE_CREATE);
	o->log_ring_bytes = ring;
	o->ckpt_overlay_bytes = ckpt;
	o->no_checkpoint_thread = no_thread;
	return eopen_ok(env, o);
}

/* Commit `rounds` batches to tree 0 of e, batch r holding keys r * 100 + i (i < keys(r)) with
 * values of len(r, i) bytes (tf_value_fill, seeded by the key), reserving each batch first
 * when `reserve`; after each commit, check(e, r) when not NULL. */
static void big_rounds(struct engine *e, struct engine_batch *b, int rounds, int (*keys)(int),
		       size_t (*len)(int, int), bool reserve, void (*check)(struct engine *, int))
{
	static uint8_t v[64u << 10];
	for (int r = 0; r < rounds; r++) {
		engine_batch_clear(b);
		size_t rec = 0;
		for (int i = 0; i < keys(r); i++)
			rec += 8 + 4 + len(r, i);
		if (reserve)
			OK(engine_batch_reserve(b, rec));
		for (int i = 0; i < keys(r); i++) {
			uint32_t k = (uint32_t)(r * 100 + i);
			tf_value_fill(v, len(r, i), k);
			bput(b, 0, &k, sizeof(k), v, len(r, i));
		}
		commit_ok(e, b);
		if (check)
			check(e, r);
	}
}

/* Every value big_rounds committed reads back from e. */
static void big_rounds_ok(struct engine *e, int rounds, int (*keys)(int), size_t (*len)(int, int))
{
	static uint8_t v[64u << 10];
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < keys(r); i++) {
			uint32_t k = (uint32_t)(r * 100 + i);
			tf_value_fill(v, len(r, i), k);
			get_expect(e, 0, &k, sizeof(k), v, len(r, i), SIZE_MAX);
		}
}

/* The end of a big_rounds test: every value reads back, and again after a close and reopen
 * with o; then e is closed and b and env freed. */
static void big_rounds_end(struct engine *e, struct tu_env *env, const struct engine_options *o,
			   struct engine_batch *b, int rounds, int (*keys)(int),
			   size_t (*len)(int, int))
{
	big_rounds_ok(e, rounds, keys, len);
	eclose_ok(e);
	e = eopen_ok(env, o);
	big_rounds_ok(e, rounds, keys, len);
	eclose_ok(e);
	engine_batch_free(b);
	tu_env_fini(env);
}

/* io_fault sync hook: a slow disk, so that the writer runs ahead of the checkpoints (each
 * flush of the data file takes *ctx ms, 5 when ctx is NULL). */
static void slow_sync(void *ctx, struct io_fault *m, const char *path)
{
	(void)m;
	if (!strstr(path, "-wal")) {
		long ms = ctx ? *(const long *)ctx : 5;
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Value length of key i of round r in test_big_batch_stream: 28 of 64 KiB (0.44 of the ring),
 * and one that grows by 512 bytes a round, so that each batch is a little bigger than the
 * one before it. */
#define BS_ROUNDS 40
static int bs_keys(int r)
{
	(void)r;
	return 29;
}

static size_t bs_len(int r, int i)
{
	return i < 28 ? 64u << 10 : 1000u + 512u * (size_t)r;
}

/*
 * The checkpoint thread keeps a stream of big batches going.  With the values in the log
 * ("Values stay in the log") the overlay holds next to nothing, so it is the log that must
 * bring a checkpoint on.  The case that stalled: a batch waited for room in the ring until a
 * checkpoint released everything before it, and then, alone in the log (under half the
 * ring: not due by the log), it left the next batch, a little bigger and pushed to the next
 * lap past a pad, no room and no checkpoint coming (kvfs-bench fillrandom, 64 KiB values: 60
 * s for 3,000 puts, the checkpoint interval).  Batches a little bigger each round on a slow
 * disk make that happen; the interval here is 10 minutes, so a stall fails the test by its
 * timeout.  Then every value reads back, after a reopen too.
 */
START_TEST(test_big_batch_stream)
{
	struct tu_env env;
	struct engine_options o;
	struct engine_batch *b = engine_batch_new();

	tu_env_fault(&env, 33);
	io_fault_set_sync_hook(env.m, slow_sync, NULL);
	opts_init(&o, &env, STORE_CREATE);
	o.ckpt_overlay_bytes = 2u << 20;
	o.log_ring_bytes = 4u << 20; /* the automatic ring's proportions: 2 x ckpt_overlay_bytes */
	o.ckpt_interval_ms = 600000;
	struct engine *e = eopen_ok(&env, &o);
	big_rounds(e, b, BS_ROUNDS, bs_keys, bs_len, false, NULL);
	TU_ASSERT(estat(e).n_checkpoints > 0, "%s", "no checkpoint over the stream");
	io_fault_set_sync_hook(env.m, NULL, NULL);
	big_rounds_end(e, &env, &o, b, BS_ROUNDS, bs_keys, bs_len);
}
END_TEST

/*
 * Values in the log (engine.c "Values stay in the log"): the overlay's entries point at the
 * values where they lie in the log's mapping, and the ring (1 MiB here) is written again once
 * a checkpoint released it, several times over the test.  Every value must read back right at
 * every step: from the overlay, from the tree after a checkpoint while the ring is being
 * rewritten by later batches, after replacements (of values in the log by others and by
 * copies made at a full-disk fold, and the other way round), and after a reopen.  A reader
 * thread reads tree 0 all the while, through the checkpoints: an overlay still read after its
 * records were released shows as a wrong value.
 */
#define BB_ROUNDS 14
#define BB_KEYS 6
struct bb_reader {
	struct engine *e;
	_Atomic int published; /* rounds whose tree 0 keys are committed */
	_Atomic bool stop;
	_Atomic long bad, reads;
};

static size_t bb_len(int round, int i)
{
	return 14000 + (size_t)round * 1031 + (size_t)i * 97; /* sizes vary */
}

static void *bb_read(void *arg)
{
	struct bb_reader *rd = arg;
	static uint8_t buf[64 << 10];
	while (!atomic_load(&rd->stop)) {
		int n = atomic_load(&rd->published);
		for (int r = 0; r < n; r++)
			for (int i = 0; i < BB_KEYS; i++) {
				uint32_t k = (uint32_t)(r * 100 + i);
				size_t got = 0;
				int rc = engine_get(rd->e, 0, &k, sizeof(k), buf, sizeof(buf), &got);
				atomic_fetch_add(&rd->reads, 1);
				if (rc != 0 || got != bb_len(r, i) || !tf_value_check(buf, got, k))
					atomic_fetch_add(&rd->bad, 1);
			}
	}
	return NULL;
}

/* Every key of test_big_batches holds what rounds [0, rounds) and the tree-1 tags left. */
static void bb_expect(struct engine *e, int rounds, const uint64_t *tag1, const size_t *len1,
		      uint8_t *v)
{
	for (int rr = 0; rr < rounds; rr++)
		for (int i = 0; i < BB_KEYS; i++) {
			uint32_t k = (uint32_t)(rr * 100 + i);
			tf_value_fill(v, bb_len(rr, i), k);
			get_expect(e, 0, &k, sizeof(k), v, bb_len(rr, i), SIZE_MAX);
		}
	for (int i = 0; i < BB_KEYS; i++) {
		uint32_t k1 = (uint32_t)i;
		if (tag1[i])
			tf_value_fill(v, len1[i], tag1[i]);
		else
			v[0] = 's';
		get_expect(e, 1, &k1, sizeof(k1), v, len1[i], SIZE_MAX);
	}
}

START_TEST(test_big_batches)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_batch *b = engine_batch_new();
	static uint8_t v[64 << 10];
	uint64_t tag1[BB_KEYS]; /* tree 1: the tag of each key's current value (0: copied "s") */
	size_t len1[BB_KEYS];
	struct bb_reader rd = { 0 };
	pthread_t th;

	tu_env_fault(&env, 31);
	opts_init(&o, &env, STORE_CREATE);
	o.ckpt_overlay_bytes = 128u << 10;
	o.log_ring_bytes = 1u << 20; /* the smallest: rewritten every few rounds */
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	rd.e = e;
	TU_ASSERT(pthread_create(&th, NULL, bb_read, &rd) == 0, "%s", "pthread_create");
	for (int r = 0; r < BB_ROUNDS; r++) {
		engine_batch_clear(b);
		size_t rec = 0;
		for (int i = 0; i < BB_KEYS; i++)
			rec += 2 * (8 + 4 + bb_len(r, i));
		OK(engine_batch_reserve(b, rec));
		for (int i = 0; i < BB_KEYS; i++) {
			uint32_t k = (uint32_t)(r * 100 + i);
			tf_value_fill(v, bb_len(r, i), k);
			bput(b, 0, &k, sizeof(k), v, bb_len(r, i));
			/* tree 1: the same BB_KEYS keys every round, adopted values replacing adopted
			 * and copied ones */
			uint32_t k1 = (uint32_t)i;
			tag1[i] = 1000u * (uint64_t)(r + 1) + (uint64_t)i;
			len1[i] = bb_len(r, i) / 2;
			tf_value_fill(v, len1[i], tag1[i]);
			bput(b, 1, &k1, sizeof(k1), v, len1[i]);
		}
		commit_ok(e, b);
		atomic_store(&rd.published, r + 1);
		if (r % 3 == 1) { /* a small batch (copied) replaces two adopted values */
			engine_batch_clear(b);
			for (int i = 0; i < 2; i++) {
				uint32_t k1 = (uint32_t)i;
				bput(b, 1, &k1, sizeof(k1), "s", 1);
				tag1[i] = 0;
				len1[i] = 1;
			}
			commit_ok(e, b);
		}
		if (r % 2 == 0 || r % 5 == 4)
			OK(engine_checkpoint(e));
		bb_expect(e, r + 1, tag1, len1, v);
	}
	atomic_store(&rd.stop, true);
	pthread_join(th, NULL);
	TU_ASSERT_EQ(atomic_load(&rd.bad), 0, "reader: %ld wrong of %ld reads",
		     atomic_load(&rd.bad), atomic_load(&rd.reads));
	eclose_ok(e);
	e = eopen_ok(&env, &o);
	bb_expect(e, BB_ROUNDS, tag1, len1, v);
	eclose_ok(e);
	engine_batch_free(b);
	tu_env_fini(&env);
}
END_TEST

/*
 * Values stay in the log (engine.c): a commit copies no value into the overlay, whose bytes
 * grow by its nodes only (48 values of 64 KiB: far below their 3 MiB), and the batch keeps its
 * buffer; the overlay's entries point into the log, not into the batch, so refilling the same
 * batch with other values changes nothing that was committed.  Every value reads back before
 * and after a checkpoint and a reopen.
 */
#define VL_ROUNDS 4
static int vl_keys(int r)
{
	(void)r;
	return 48;
}

static size_t vl_len(int r, int i)
{
	(void)r;
	(void)i;
	return 64u << 10;
}

/* After each commit of test_values_in_log: the overlay grew by its nodes only (against the
 * stat before the commit, kept here), and after the second round a checkpoint. */
static uint64_t vl_bytes;
static void vl_check(struct engine *e, int r)
{
	uint64_t now = estat(e).overlay_bytes, grew = now - vl_bytes;
	TU_ASSERT(grew < (64u << 10), "round %d: the overlay grew by %" PRIu64 " bytes for "
		  "48 values of 64 KiB", r, grew);
	if (r == 1)
		OK(engine_checkpoint(e));
	vl_bytes = estat(e).overlay_bytes;
}

START_TEST(test_values_in_log)
{
	struct tu_env env;
	struct engine_options o;
	struct engine_batch *b = engine_batch_new();

	/* a ring of 16 MiB: a record may take half */
	struct engine *e = big_open(&env, &o, 32, 16u << 20, 8u << 20, true);
	vl_bytes = estat(e).overlay_bytes;
	/* the same batch, reserved once, refilled every round */
	big_rounds(e, b, VL_ROUNDS, vl_keys, vl_len, true, vl_check);
	big_rounds_ok(e, VL_ROUNDS, vl_keys, vl_len);
	OK(engine_checkpoint(e));
	big_rounds_end(e, &env, &o, b, VL_ROUNDS, vl_keys, vl_len);
}
END_TEST

/* tu_wrap_env's before_pwritev for test_put_ref_race, when armed: scribbles over the buffers
 * of every pwritev that lie in the caller's value (scribble_val: not the log's own, such as
 * its zeros ahead of a record, log.c "Written ring") before they are written, as a caller
 * changing a value put by reference while its commit writes it. */
static _Atomic bool scribble_armed;
static uint8_t scribble_val[64u << 10];

static void scribble(const struct iovec *iov, int n)
{
	for (int i = 0; atomic_load(&scribble_armed) && i < n; i++) {
		uint8_t *p = iov[i].iov_base;
		if (p >= scribble_val && p + iov[i].iov_len <= scribble_val + sizeof(scribble_val))
			memset(p, 'M', 64);
	}
}

/*
 * A value put by reference that its caller changes while the commit writes it (review H21):
 * the record must hold the bytes as written, with a checksum that matches them, so that after
 * the process dies (every write kept: io_fault_cut_copy KEEP_ALL) the log replays past it.
 * When the checksum was taken from the caller's bytes before the write, the record failed it,
 * the replay stopped there, and a later put whose engine_sync had returned was lost.
 */
START_TEST(test_put_ref_race)
{
	struct tu_env env;
	struct engine_options o;
	uint8_t *v = scribble_val;
	static uint8_t want[64u << 10];

	tu_env_fault(&env, 37);
	struct tu_wrap_env sc;
	tu_wrap_init(&sc, io_fault_env(env.m));
	sc.before_pwritev = scribble;
	opts_init(&o, &env, STORE_CREATE);
	o.io = &sc.base;
	o.no_checkpoint_thread = true;
	struct engine *e = eopen_ok(&env, &o);
	struct engine_batch *b = engine_batch_new();
	memset(v, 'a', sizeof(scribble_val));
	OK(engine_batch_put_ref(b, 0, "big", 3, v, sizeof(scribble_val)));
	atomic_store(&scribble_armed, true);
	commit_ok(e, b);
	atomic_store(&scribble_armed, false);
	memcpy(want, v, sizeof(want)); /* as written: scribbled */
	TU_ASSERT(want[0] == 'M', "%s", "the scribbler did not run");
	get_expect(e, 0, "big", 3, want, sizeof(want), SIZE_MAX);
	engine_batch_clear(b);
	bput(b, 0, "after", 5, "synced", 6);
	commit_ok(e, b);
	OK(engine_sync(e, 0));

	struct tu_env killed = env;
	killed.m = io_fault_cut_copy(env.m, IO_CUT_KEEP_ALL, 1, NULL);
	TU_ASSERT(killed.m != NULL, "%s", "cut copy");
	struct engine_options ko;
	opts_init(&ko, &killed, 0);
	ko.no_checkpoint_thread = true;
	struct engine *k = eopen_ok(&killed, &ko);
	get_expect(k, 0, "after", 5, "synced", 6, SIZE_MAX);
	get_expect(k, 0, "big", 3, want, sizeof(want), SIZE_MAX);
	eclose_ok(k);
	io_fault_free(killed.m);
	eclose_ok(e);
	engine_batch_free(b);
	tu_env_fini(&env);
}
END_TEST

/* Without a checkpoint thread (kvfs-check -y), commits of more than the log's ring hold: a
 * commit that finds no room checkpoints first, where it waited for ever before (review H20;
 * the test's timeout fails it).  Every value reads back, and after a reopen. */
static int nt_keys(int r)
{
	(void)r;
	return 6;
}

static size_t nt_len(int r, int i)
{
	return 20000u + 100u * (size_t)r + (size_t)i;
}

START_TEST(test_no_thread_ring_full)
{
	struct tu_env env;
	struct engine_options o;
	struct engine_batch *b = engine_batch_new();

	/* a ring of 1 MiB, 120 KiB a batch: a lap every 8 */
	struct engine *e = big_open(&env, &o, 36, 1u << 20, 1u << 20, true);
	big_rounds(e, b, 40, nt_keys, nt_len, false, NULL);
	TU_ASSERT(estat(e).n_checkpoints >= 4, "%" PRIu64 " checkpoints for 4.7 MiB in a 1 MiB "
		  "ring", estat(e).n_checkpoints);
	big_rounds_end(e, &env, &o, b, 40, nt_keys, nt_len);
}
END_TEST

/* Two threads commit to an engine without a checkpoint thread, each commit that finds no room
 * checkpointing inline (under commit_lock: engine.c wait_room), while the other's batches
 * arrive; every value reads back, and after a reopen.  Thread t commits rounds
 * [40 t, 40 t + 40) of test_no_thread_ring_full's batches.  (The race review H21 found, a
 * look at the room before commit_lock, left the last commit of a run waiting for ever only
 * when the other thread's append took the room in between and it had nothing more to commit:
 * 12 runs of this test with the old code did not meet it.) */
struct nt_writer {
	struct engine *e;
	int first;
	_Atomic int bad;
};

static void *nt_write(void *arg)
{
	struct nt_writer *w = arg;
	struct engine_batch *b = engine_batch_new();
	static _Thread_local uint8_t v[64u << 10];
	for (int r = w->first; b && r < w->first + 40; r++) {
		engine_batch_clear(b);
		for (int i = 0; i < nt_keys(r); i++) {
			uint32_t k = (uint32_t)(r * 100 + i);
			tf_value_fill(v, nt_len(r, i), k);
			if (engine_batch_put(b, 0, &k, sizeof(k), v, nt_len(r, i)) < 0)
				atomic_store(&w->bad, -ENOMEM);
		}
		int rc = engine_commit(w->e, b, NULL);
		if (rc < 0)
			atomic_store(&w->bad, rc);
	}
	if (!b)
		atomic_store(&w->bad, -ENOMEM);
	engine_batch_free(b);
	return NULL;
}

START_TEST(test_no_thread_two_writers)
{
	struct tu_env env;
	struct engine_options o;
	struct engine_batch *b = engine_batch_new();
	struct engine *e = big_open(&env, &o, 38, 1u << 20, 1u << 20, true);
	struct nt_writer w[2] = { { .e = e, .first = 0 }, { .e = e, .first = 40 } };
	pthread_t th[2];
	for (int t = 0; t < 2; t++)
		TU_ASSERT(pthread_create(&th[t], NULL, nt_write, &w[t]) == 0, "%s",
			  "pthread_create");
	for (int t = 0; t < 2; t++) {
		pthread_join(th[t], NULL);
		TU_ASSERT(atomic_load(&w[t].bad) == 0, "writer %d: engine_commit = %d", t,
			  atomic_load(&w[t].bad));
	}
	big_rounds_end(e, &env, &o, b, 80, nt_keys, nt_len);
}
END_TEST

/*
 * A full ring on a full disk (INV-E3, engine.c wait_room; review H20): a commit whose record
 * the ring has no room for asks for a checkpoint, and when that checkpoint fails with -ENOSPC
 * the commit gets -ENOSPC, logging nothing, where it waited for room for ever (holding
 * commit_lock: every later commit, the unlink that could make room too, hung behind it; this
 * test then ends by its timeout).  The ring (16 MiB, so that a checkpoint needs more than the
 * data file's free tail, pager.c "Growth") is laid out so that the record does not fit while
 * the log is under half full (no checkpoint was due): 0.3 of it released, 0.45 in use at
 * 0.3-0.75, and a record of 0.4 that must skip to the next lap.  Once the disk has room again
 * a checkpoint succeeds and the same commit goes through; after a reopen every committed
 * value is there and nothing refused is.
 */
#define NF_RING (16u << 20)
#define NF_N 8 /* keys a batch: values under ENGINE_MAX_VALUE */

/* Commit one batch of NF_N keys base + i, values of `bytes` / NF_N bytes each: want. */
static void nf_put(struct engine *e, struct engine_batch *b, uint32_t base, size_t bytes,
		   int want)
{
	static uint8_t v[ENGINE_MAX_VALUE];
	engine_batch_clear(b);
	for (uint32_t i = 0; i < NF_N; i++) {
		uint32_t k = base + i;
		tf_value_fill(v, bytes / NF_N, k);
		bput(b, 0, &k, sizeof(k), v, bytes / NF_N);
	}
	EXPECT(engine_commit(e, b, NULL), want);
}

/* The keys of nf_put(base, bytes) read back (present) or are all missing. */
static void nf_get(struct engine *e, uint32_t base, size_t bytes, bool present)
{
	static uint8_t v[ENGINE_MAX_VALUE];
	for (uint32_t i = 0; i < NF_N; i++) {
		uint32_t k = base + i;
		size_t got = 0;
		int rc = engine_get(e, 0, &k, sizeof(k), v, sizeof(v), &got);
		if (!present) {
			EXPECT(rc, -ENOENT);
			continue;
		}
		OK(rc);
		TU_ASSERT(got == bytes / NF_N && tf_value_check(v, got, k), "key %u: %zu bytes "
			  "(want %zu) or wrong bytes", k, got, bytes / NF_N);
	}
}

START_TEST(test_nospc_ring_full)
{
	struct tu_env env;
	struct engine_options o;
	struct engine_batch *b = engine_batch_new();
	const size_t v30 = NF_RING / 10 * 3, v45 = NF_RING / 100 * 45, v40 = NF_RING / 10 * 4;

	TU_ASSERT(b != NULL, "%s", "out of memory");
	tu_env_fault(&env, 37);
	opts_init(&o, &env, STORE_CREATE);
	o.log_ring_bytes = NF_RING;
	o.ckpt_overlay_bytes = 256u << 20; /* no checkpoint by size: only at the ring's half */
	o.ckpt_interval_ms = 600000;
	struct engine *e = eopen_ok(&env, &o);
	nf_put(e, b, 100, v30, 0);
	OK(engine_checkpoint(e));
	nf_put(e, b, 200, v45, 0);
	struct engine_stat s = estat(e);
	TU_ASSERT(s.log_bytes < NF_RING / 2 && s.n_checkpoints == 1, "log %" PRIu64 " bytes, %"
		  PRIu64 " checkpoints: a checkpoint was due", s.log_bytes, s.n_checkpoints);

	io_fault_set_space_limit(env.m, io_fault_space_used(env.m)); /* the disk is full */
	nf_put(e, b, 300, v40, -ENOSPC);
	TU_ASSERT(estat(e).short_of_space, "%s", "the engine is not short of space");
	nf_get(e, 100, v30, true);
	nf_get(e, 200, v45, true);
	nf_get(e, 300, v40, false);
	/* a delete is still admitted, and its small record fits the rest of the lap */
	engine_batch_clear(b);
	OK(engine_batch_del(b, 0, &(uint32_t){100}, sizeof(uint32_t)));
	commit_ok(e, b);
	get_missing(e, 0, &(uint32_t){100}, sizeof(uint32_t));
	nf_put(e, b, 300, v40, -ENOSPC); /* the retry the delete asked for failed too */

	io_fault_set_space_limit(env.m, 0); /* room again */
	OK(engine_checkpoint(e));
	TU_ASSERT(!estat(e).short_of_space, "%s", "short of space after a checkpoint with room");
	nf_put(e, b, 300, v40, 0);
	engine_batch_clear(b);
	for (uint32_t i = 0; i < NF_N; i++)
		OK(engine_batch_del(b, 0, &(uint32_t){100 + i}, sizeof(uint32_t)));
	commit_ok(e, b);
	eclose_ok(e);
	e = eopen_ok(&env, &o);
	nf_get(e, 100, v30, false);
	nf_get(e, 200, v45, true);
	nf_get(e, 300, v40, true);
	eclose_ok(e);
	engine_batch_free(b);
	tu_env_fini(&env);
}
END_TEST

/*
 * engine_batch_put_ref: a value by reference is read at commit, not at the put (changed in
 * between, the commit logs the change), and not after (changed after, nothing committed
 * changes: the overlay reads the log); one under EXT_MIN (1 KiB) is copied at the put.  Mixed
 * with copied values and a delete, in one record; before and after a checkpoint and a reopen;
 * with the log mapped and without a mapping (no_log_map: values gathered and copied).
 */
START_TEST(test_put_ref)
{
	for (int nomap = 0; nomap < 2; nomap++) {
		struct tu_env env;
		struct engine_options o;
		tu_env_fault(&env, 34 + (uint64_t)nomap);
		opts_init(&o, &env, STORE_CREATE);
		o.no_checkpoint_thread = true;
		o.no_log_map = nomap;
		struct engine *e = eopen_ok(&env, &o);
		struct engine_batch *b = engine_batch_new();
		static uint8_t big[64u << 10], mid[2000], tiny[100], want[64u << 10];
		bput(b, 0, "gone", 4, "x", 1);
		commit_ok(e, b);
		engine_batch_clear(b);
		memset(big, 'a', sizeof(big));
		memset(mid, 'b', sizeof(mid));
		memset(tiny, 'c', sizeof(tiny));
		OK(engine_batch_put_ref(b, 0, "big", 3, big, sizeof(big)));
		OK(engine_batch_put_ref(b, 0, "mid", 3, mid, sizeof(mid)));
		OK(engine_batch_put_ref(b, 0, "tiny", 4, tiny, sizeof(tiny)));
		bput(b, 0, "copied", 6, "plain", 5);
		OK(engine_batch_del(b, 0, "gone", 4));
		OK(engine_batch_put_ref(b, 1, "big", 3, big, sizeof(big))); /* the same bytes twice */
		memset(big + 1000, 'A', 3000); /* before the commit: logged */
		memset(mid, 'B', 10);
		memset(tiny, 'C', 10); /* copied at the put: not logged */
		commit_ok(e, b);
		memset(big, 'z', sizeof(big)); /* after the commit: changes nothing */
		memset(mid, 'z', sizeof(mid));
		for (int pass = 0; pass < 3; pass++) {
			memset(want, 'a', sizeof(big));
			memset(want + 1000, 'A', 3000);
			get_expect(e, 0, "big", 3, want, sizeof(big), SIZE_MAX);
			get_expect(e, 1, "big", 3, want, sizeof(big), SIZE_MAX);
			memset(want, 'b', sizeof(mid));
			memset(want, 'B', 10);
			get_expect(e, 0, "mid", 3, want, sizeof(mid), SIZE_MAX);
			memset(want, 'c', sizeof(tiny));
			get_expect(e, 0, "tiny", 4, want, sizeof(tiny), SIZE_MAX);
			get_expect(e, 0, "copied", 6, "plain", 5, SIZE_MAX);
			get_missing(e, 0, "gone", 4);
			e = next_pass(e, &env, &o, pass);
		}
		test_end(e, b, &env);
	}
}
END_TEST

/* engine_batch_reserve on a batch that holds a few ops already (a single put's dirent and
 * inode): the grown buffer must hold them unchanged, and the big batch then logs and reads
 * back whole, before and after a checkpoint and a reopen. */
START_TEST(test_reserve_keeps_ops)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_batch *b = engine_batch_new();
	static uint8_t v[64 << 10];
	enum { BIG = 4 };

	tu_env_fault(&env, 33);
	opts_init(&o, &env, STORE_CREATE);
	o.ckpt_overlay_bytes = 1u << 20; /* spares: at most 2 MiB */
	o.log_ring_bytes = 16u << 20;    /* a 3 MiB record fits half of it */
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	/* a big batch, adopted, then given back as a spare by a checkpoint */
	for (uint32_t i = 0; i < BIG; i++) {
		uint32_t k = 100 + i;
		tf_value_fill(v, sizeof(v), k);
		bput(b, 0, &k, sizeof(k), v, sizeof(v));
	}
	commit_ok(e, b);
	OK(engine_checkpoint(e));
	/* 1: into the spare; 2: no spare left, a new buffer of 3 MiB (huge-page aligned) */
	for (int round = 1; round <= 2; round++) {
		char k1[32], k2[32];
		snprintf(k1, sizeof(k1), "small%d", round);
		snprintf(k2, sizeof(k2), "del%d", round);
		engine_batch_clear(b);
		bputs(b, 1, k1, "dirent and inode");
		OK(engine_batch_del(b, 1, k2, strlen(k2)));
		bputs(b, 2, k1, "x");
		size_t big = round == 1 ? BIG * (sizeof(v) + 16) : (3u << 20);
		OK(engine_batch_reserve(b, big));
		for (uint32_t i = 0; (i + 1) * (sizeof(v) + 16) <= big; i++) {
			uint32_t k = (uint32_t)round * 1000 + i;
			tf_value_fill(v, sizeof(v), k);
			bput(b, 0, &k, sizeof(k), v, sizeof(v));
		}
		commit_ok(e, b);
	}
	for (int pass = 0; pass < 3; pass++) { /* in the overlay, in the tree, after reopen */
		for (int round = 1; round <= 2; round++) {
			char k1[32];
			snprintf(k1, sizeof(k1), "small%d", round);
			get_str(e, 1, k1, "dirent and inode");
			get_str(e, 2, k1, "x");
			size_t big = round == 1 ? BIG * (sizeof(v) + 16) : (3u << 20);
			for (uint32_t i = 0; (i + 1) * (sizeof(v) + 16) <= big; i++) {
				uint32_t k = (uint32_t)round * 1000 + i;
				tf_value_fill(v, sizeof(v), k);
				get_expect(e, 0, &k, sizeof(k), v, sizeof(v), SIZE_MAX);
			}
		}
		e = next_pass(e, &env, &o, pass);
	}
	test_end(e, b, &env);
}
END_TEST

/* A batch larger than half the log is -EFBIG, and does not fail the engine. */
START_TEST(test_efbig)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_batch *b = engine_batch_new();
	static uint8_t v[600 << 10];

	tu_env_fault(&env, 22);
	opts_init(&o, &env, STORE_CREATE);
	o.log_ring_bytes = WAL_MIN_RING;
	o.ckpt_overlay_bytes = 64u << 10;
	e = eopen_ok(&env, &o);
	tf_value_fill(v, sizeof(v), 22);
	bput(b, 0, "big", 3, v, sizeof(v));
	EXPECT(engine_commit(e, b, NULL), -EFBIG);
	get_missing_str(e, 0, "big");
	engine_batch_clear(b);
	bput(b, 0, "half", 4, v, 200 << 10);
	bput(b, 1, "half", 4, v, 200 << 10);
	EXPECT(engine_commit(e, b, NULL), 0);
	OK(engine_sync(e, 0));
	get_expect(e, 0, "half", 4, v, 200 << 10, SIZE_MAX);
	get_expect(e, 1, "half", 4, v, 200 << 10, SIZE_MAX);
	/* Many of those through a 1 MiB ring: checkpoints make the room. */
	for (int i = 0; i < 20; i++) {
		engine_batch_clear(b);
		bput(b, 2, &i, sizeof(i), v + i, 300 << 10);
		commit_ok(e, b);
	}
	for (int i = 0; i < 20; i++)
		get_expect(e, 2, &i, sizeof(i), v + i, 300 << 10, SIZE_MAX);
	eclose_ok(e);
	o.flags = 0;
	e = eopen_ok(&env, &o);
	for (int i = 0; i < 20; i++)
		get_expect(e, 2, &i, sizeof(i), v + i, 300 << 10, SIZE_MAX);
	eclose_ok(e);
	engine_batch_free(b);
	tu_env_fini(&env);
}
END_TEST

/* ---- model --------------------------------------------------------------------------- */

#define NT 3
#define MODEL_SEEDS 100
#define MODEL_STEPS 2000
#define MAX_BATCH 20

static const unsigned g_tree[NT] = { 0, 2, 7 };

enum { CFG_SMALL, CFG_LOGUSE, CFG_NOTHREAD, CFG_N };
static const char *const g_cfg_name[CFG_N] = { "64 KiB checkpoints, 1 MiB ring",
					       "checkpoints by log use (4 MiB ring) and time",
					       "no checkpoint thread" };

struct mop {
	unsigned ti;	/* index into g_tree */
	unsigned ki;	/* index into g_keys */
	bool del;
	uint64_t tag;	/* value bytes: tf_value_fill(.., vlen, tag) */
	size_t vlen;
};

struct mstate {
	uint64_t seed;
	int cfg;
	bool posix;
	unsigned large_pm;
	struct tu_rng r;
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_batch *b;
	struct tu_model m[NT];
	uint8_t *vbuf;
	uint64_t last_lsn;	/* of this session: LSNs increase */
	uint64_t lsns[16];	/* recent batch LSNs, for engine_sync(lsn) */
	uint64_t since_ckpt;	/* bytes committed since the last explicit checkpoint */
	uint64_t commits, syncs, ckpts; /* this session's, for engine_stat */
	uint64_t step;
	/* summary */
	uint64_t n_batches, n_ops, n_gets, n_iters, n_iter_commits, n_ckpt, n_reopen, n_sync;
	uint64_t n_engine_ckpts; /* engine_stat's n_checkpoints, summed over the sessions */
};

static void m_fail_ctx(struct mstate *s, char *buf, size_t len)
{
	snprintf(buf, len, "seed %" PRIu64 " (%s%s), step %" PRIu64, s->seed,
		 g_cfg_name[s->cfg], s->posix ? ", POSIX" : "", s->step);
}

static void m_fail(struct mstate *s, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
static void m_fail(struct mstate *s, int line, const char *fmt, ...)
{
	static char what[sizeof(g_msg) + 1024];
	char ctx[160];
	va_list ap;

	m_fail_ctx(s, ctx, sizeof(ctx));
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	tu_fail(__FILE__, line, "%s: %s", ctx, what);
}
#define MFAIL(s, ...) m_fail(s, __LINE__, __VA_ARGS__)

static void m_open(struct mstate *s, unsigned flags)
{
	opts_init(&s->o, &s->env, flags);
	switch (s->cfg) {
	case CFG_SMALL:
		s->o.ckpt_overlay_bytes = 64u << 10;
		s->o.log_ring_bytes = WAL_MIN_RING;
		s->o.ckpt_piece_pages = 4; /* readers meet a snapshot that moves mid-checkpoint */
		break;
	case CFG_LOGUSE:
		s->o.ckpt_overlay_bytes = 0;
		s->o.log_ring_bytes = 4u << 20;
		s->o.ckpt_interval_ms = 50;
		break;
	default:
		s->o.no_checkpoint_thread = true;
		s->o.log_ring_bytes = 2u << 20;
		break;
	}
	int rc = engine_open(s->env.path, &s->o, &s->e);
	if (rc)
		MFAIL(s, "engine_open = %d", rc);
	s->commits = s->syncs = s->ckpts = 0;
	s->last_lsn = 0;
	memset(s->lsns, 0, sizeof(s->lsns));
}

static void m_compare_all(struct mstate *s, const char *when)
{
	for (unsigned i = 0; i < NT; i++)
		if (iter_cmp(s->e, g_tree[i], &s->m[i], NULL, SIZE_MAX, SIZE_MAX, g_msg,
			     sizeof(g_msg)))
			MFAIL(s, "%s: tree %u: %s", when, g_tree[i], g_msg);
}

static void m_checkpoint(struct mstate *s)
{
	/* engine_stat reads its fields one after another, and a background checkpoint may end
	 * between the overlay counts and the counters: take the counters (n_checkpoints,
	 * log_bytes) from an earlier call than the overlay count they are judged by. */
	struct engine_stat a0 = estat(s->e);
	struct engine_stat a = estat(s->e);
	a.n_checkpoints = a0.n_checkpoints;
	a.log_bytes = a0.log_bytes;
	int rc = engine_checkpoint(s->e);

	if (rc)
		MFAIL(s, "engine_checkpoint = %d", rc);
	struct engine_stat z = estat(s->e);
	/* (A checkpoint with nothing to do need not count.) */
	if (a.overlay_entries && z.n_checkpoints <= a.n_checkpoints)
		MFAIL(s, "n_checkpoints %" PRIu64 " -> %" PRIu64 " over engine_checkpoint of %"
		      PRIu64 " overlay entries", a.n_checkpoints, z.n_checkpoints,
		      a.overlay_entries);
	if (z.overlay_entries || z.overlay_bytes)
		MFAIL(s, "after engine_checkpoint (no other writer): overlay %" PRIu64
		      " entries, %" PRIu64 " bytes", z.overlay_entries, z.overlay_bytes);
	if (z.log_bytes > a.log_bytes || (a.overlay_entries && z.log_bytes == a.log_bytes))
		MFAIL(s, "log_bytes %" PRIu64 " -> %" PRIu64 " over engine_checkpoint",
		      a.log_bytes, z.log_bytes);
	rc = tu_verify(engine_store(s->e), g_msg, sizeof(g_msg));
	if (rc)
		MFAIL(s, "store_verify after a checkpoint = %d: %s", rc, g_msg);
	for (unsigned i = 0; i < NT; i++)
		if (tu_store_cmp(engine_store(s->e), tree_name(g_tree[i]), &s->m[i], g_msg,
				 sizeof(g_msg)))
			MFAIL(s, "the store's tree %s after a checkpoint: %s",
			      tree_name(g_tree[i]), g_msg);
	s->since_ckpt = 0;
	s->ckpts += a.overlay_entries != 0;
	s->n_ckpt++;
}

/* Check (tree i, key ki) against the model with a buffer of `cap` bytes. */
static void m_get1(struct mstate *s, unsigned i, unsigned ki, size_t cap)
{
	const struct tu_ent *x = tu_model_get(&s->m[i], g_keys[ki], g_klen[ki]);
	size_t got = SIZE_MAX;

	s->n_gets++;
	if (!x) {
		int rc = engine_get(s->e, g_tree[i], g_keys[ki], g_klen[ki], g_buf, 16, &got);
		if (rc != -ENOENT)
			MFAIL(s, "engine_get(tree %u, key #%u) = %d (length %zu), want -ENOENT",
			      g_tree[i], ki, rc, got);
		return;
	}
	if (cap > x->vlen + CANARY)
		cap = x->vlen + CANARY;
	size_t n = MIN(cap, x->vlen);
	memset(g_buf, 0xa5, n + CANARY);
	int rc = engine_get(s->e, g_tree[i], g_keys[ki], g_klen[ki], g_buf, cap, &got);
	if (rc || got != x->vlen || (n && memcmp(g_buf, x->val, n)) || !canary_ok(g_buf, n))
		MFAIL(s, "engine_get(tree %u, key #%u, cap %zu) = %d, length %zu: want 0 and the "
		      "model's %zu bytes (%s)", g_tree[i], ki, cap, rc, got, x->vlen,
		      rc || got != x->vlen ? "rc/length" : !canary_ok(g_buf, n) ?
		      "wrote past min(cap, length)" : "bytes differ");
}

/*
 * Commit one random batch of 1..max_ops puts and deletes (tree `only` when < NT) and apply it
 * to the models.  A batch's key and value bytes stay under a quarter of the ring (no -EFBIG).
 */
static void m_batch(struct mstate *s, unsigned only, unsigned max_ops)
{
	struct tu_rng *r = &s->r;
	struct mop ops[MAX_BATCH];
	unsigned n = tu_rng_chance(r, 1, 2) ? 1 + (unsigned)tu_rng_below(r, 3)
					    : 1 + (unsigned)tu_rng_below(r, max_ops);
	uint64_t budget = s->o.log_ring_bytes / 4, raw = 0;

	if (n > max_ops)
		n = max_ops;
	engine_batch_clear(s->b);
	if (tu_rng_chance(r, 1, 100)) {
		/* An empty batch: a no-op. */
		uint64_t lsn = 0;
		int rc = engine_commit(s->e, s->b, &lsn);
		if (rc)
			MFAIL(s, "engine_commit of an empty batch = %d", rc);
		return;
	}
	for (unsigned j = 0; j < n; j++) {
		struct mop *op = &ops[j];
		op->ti = only < NT ? only : (unsigned)tu_rng_below(r, NT);
		op->ki = (unsigned)tu_rng_below(r, KEY_SPACE);
		op->del = tu_rng_chance(r, 3, 10);
		op->vlen = 0;
		op->tag = 0;
		int rc;
		if (op->del) {
			rc = engine_batch_del(s->b, g_tree[op->ti], g_keys[op->ki],
					      g_klen[op->ki]);
		} else {
			op->vlen = val_len(r, s->large_pm);
			if (raw + op->vlen + KEY_MAX > budget)
				op->vlen = (size_t)tu_rng_below(r, 100);
			op->tag = tu_rng_next(r);
			tf_value_fill(s->vbuf, op->vlen, op->tag);
			rc = engine_batch_put(s->b, g_tree[op->ti], g_keys[op->ki],
					      g_klen[op->ki], s->vbuf, op->vlen);
		}
		if (rc)
			MFAIL(s, "engine_batch_%s = %d", op->del ? "del" : "put", rc);
		raw += g_klen[op->ki] + op->vlen + 16;
	}
	/* Without a checkpoint thread, checkpoint before the log could fill. */
	if (s->cfg == CFG_NOTHREAD && s->since_ckpt + raw > s->o.log_ring_bytes * 3 / 8)
		m_checkpoint(s);
	uint64_t lsn = 0;
	int rc = engine_commit(s->e, s->b, &lsn);
	if (rc)
		MFAIL(s, "engine_commit of %u operations (%" PRIu64 " bytes) = %d", n, raw, rc);
	if (lsn <= s->last_lsn)
		MFAIL(s, "engine_commit: LSN %" PRIu64 " after %" PRIu64, lsn, s->last_lsn);
	s->last_lsn = lsn;
	s->lsns[s->commits % 16] = lsn;
	s->commits++;
	s->since_ckpt += raw;
	s->n_batches++;
	s->n_ops += n;
	for (unsigned j = 0; j < n; j++) {
		struct mop *op = &ops[j];
		if (op->del) {
			tu_model_del(&s->m[op->ti], g_keys[op->ki], g_klen[op->ki]);
		} else {
			tf_value_fill(s->vbuf, op->vlen, op->tag);
			tu_model_put(&s->m[op->ti], g_keys[op->ki], g_klen[op->ki], s->vbuf,
				     op->vlen);
		}
	}
	/* Read one of the keys back at once. */
	unsigned j = (unsigned)tu_rng_below(r, n);
	m_get1(s, ops[j].ti, ops[j].ki, SIZE_MAX);
}

static void m_gets(struct mstate *s)
{
	unsigned n = 1 + (unsigned)tu_rng_below(&s->r, 8);

	for (unsigned j = 0; j < n; j++) {
		unsigned i = (unsigned)tu_rng_below(&s->r, NT);
		unsigned ki = (unsigned)tu_rng_below(&s->r, KEY_SPACE);
		size_t cap = SIZE_MAX;
		if (tu_rng_chance(&s->r, 3, 10)) {
			const struct tu_ent *x = tu_model_get(&s->m[i], g_keys[ki], g_klen[ki]);
			cap = (size_t)tu_rng_below(&s->r, (x ? x->vlen : 0) + 1);
		}
		m_get1(s, i, ki, cap);
	}
}

/* A random bound: NULL, a key of the key space, or 1..2 random bytes. */
static void m_bound(struct mstate *s, uint8_t *buf, const void **p, size_t *len)
{
	uint64_t x = tu_rng_below(&s->r, 10);

	if (x < 3) {
		*p = NULL;
		*len = 0;
	} else if (x < 8) {
		unsigned ki = (unsigned)tu_rng_below(&s->r, KEY_SPACE);
		memcpy(buf, g_keys[ki], g_klen[ki]);
		*p = buf;
		*len = g_klen[ki];
	} else {
		*len = 1 + (size_t)tu_rng_below(&s->r, 2);
		tu_rng_bytes(&s->r, buf, *len);
		*p = buf;
	}
}

/*
 * A bounded iteration of one tree, with random caps; in a quarter of them, commits (and now and
 * then a checkpoint) between the steps.  The expectation at every step is the engine's
 * contract: the first key after the previous one (at first: >= lo) below hi, in the state
 * committed at that moment.
 */
static void m_iter(struct mstate *s)
{
	struct tu_rng *r = &s->r;
	unsigned i = (unsigned)tu_rng_below(r, NT);
	uint8_t lo[KEY_MAX], hi[KEY_MAX], prev[KEY_MAX];
	struct tu_bounds b = { 0 };
	size_t prevlen = 0, kcap = SIZE_MAX, vcap = SIZE_MAX;
	bool have_prev = false, mutate = tu_rng_chance(r, 1, 4);
	struct engine_iter *it = NULL;

	m_bound(s, lo, &b.lo, &b.lolen);
	m_bound(s, hi, &b.hi, &b.hilen);
	if (b.hi && tu_rng_chance(r, 1, 5))
		b.hilen = 0; /* open, with a pointer */
	if (tu_rng_chance(r, 1, 5)) {
		kcap = (size_t)tu_rng_below(r, 20);
		vcap = (size_t)tu_rng_below(r, 100);
	}
	s->n_iters++;
	int rc = engine_iter_new(s->e, g_tree[i], b.lo, b.lolen, b.hi, b.hilen, &it);
	if (rc || !it)
		MFAIL(s, "engine_iter_new = %d", rc);
	for (size_t steps = 0;; steps++) {
		if (mutate && tu_rng_chance(r, 1, 3)) {
			m_batch(s, tu_rng_chance(r, 1, 2) ? i : NT, 6);
			s->n_iter_commits++;
			if (tu_rng_chance(r, 1, 30))
				m_checkpoint(s);
		}
		const struct tu_model *m = &s->m[i];
		size_t at;
		if (have_prev) {
			at = tu_model_lower_bound(m, prev, prevlen);
			if (at < m->n && tu_key_cmp(m->ents[at].key, m->ents[at].klen, prev,
						   prevlen) == 0)
				at++;
		} else {
			at = b.lo ? tu_model_lower_bound(m, b.lo, b.lolen) : 0;
		}
		const struct tu_ent *x = at < m->n && tu_bounds_contain(&b, m->ents[at].key,
									 m->ents[at].klen)
						 ? &m->ents[at] : NULL;
		size_t kc = kcap, vc = vcap, kl, vl;
		rc = iter_step(it, &kc, &vc, x ? x->vlen : 0, &kl, &vl);
		if (step_check(rc, x, kc, kl, vc, vl, g_msg, sizeof(g_msg)))
			MFAIL(s, "iteration of tree %u (bounds %zu/%zu bytes%s), step %zu: %s",
			      g_tree[i], b.lo ? b.lolen : 0, b.hi ? b.hilen : 0,
			      mutate ? ", commits between steps" : "", steps, g_msg);
		if (!x)
			break;
		memcpy(prev, x->key, x->klen);
		prevlen = x->klen;
		have_prev = true;
	}
	engine_iter_free(it);
}

static void m_sync(struct mstate *s)
{
	uint64_t lsn = tu_rng_chance(&s->r, 1, 2) ? 0 : s->lsns[tu_rng_below(&s->r, 16)];
	int rc = engine_sync(s->e, lsn);

	if (rc)
		MFAIL(s, "engine_sync(%" PRIu64 ") = %d", lsn, rc);
	s->syncs++;
	s->n_sync++;
}

static void m_stat(struct mstate *s)
{
	struct engine_stat st = estat(s->e);

	if (st.n_commits != s->commits || st.n_sync_calls != s->syncs ||
	    st.n_checkpoints < s->ckpts)
		MFAIL(s, "engine_stat: n_commits %" PRIu64 " (want %" PRIu64 "), n_sync_calls %"
		      PRIu64 " (want %" PRIu64 "), n_checkpoints %" PRIu64 " (want >= %" PRIu64 ")",
		      st.n_commits, s->commits, st.n_sync_calls, s->syncs, st.n_checkpoints,
		      s->ckpts);
	if (st.log_ring_bytes != s->o.log_ring_bytes)
		MFAIL(s, "log_ring_bytes %" PRIu64 ", want %" PRIu64, st.log_ring_bytes,
		      s->o.log_ring_bytes);
}

static void m_reopen(struct mstate *s)
{
	s->n_engine_ckpts += estat(s->e).n_checkpoints;
	int rc = engine_close(s->e);

	s->e = NULL;
	if (rc)
		MFAIL(s, "engine_close = %d", rc);
	m_open(s, 0);
	struct engine_stat st = estat(s->e);
	if (st.overlay_entries || st.log_bytes)
		MFAIL(s, "reopened after a clean close: overlay %" PRIu64 " entries, log %" PRIu64
		      " bytes", st.overlay_entries, st.log_bytes);
	m_compare_all(s, "after close+reopen");
	s->since_ckpt = 0;
	s->n_reopen++;
}

static void model_run(uint64_t seed, unsigned steps)
{
	struct mstate *s = calloc(1, sizeof(*s));

	TU_ASSERT(s != NULL, "%s", "calloc");
	keys_init();
	tu_seed_begin("KVFS_SEED", seed);
	s->seed = seed;
	s->cfg = (int)(seed % CFG_N);
	s->posix = seed % 10 == 7;
	s->large_pm = seed % 5 == 4 ? 60 : 15;
	tu_rng_init(&s->r, seed);
	s->vbuf = malloc(VAL_MAX);
	s->b = engine_batch_new();
	TU_ASSERT(s->vbuf && s->b, "%s", "allocation");
	if (s->posix)
		tu_env_posix(&s->env);
	else
		tu_env_fault(&s->env, seed);
	m_open(s, STORE_CREATE);
	double t0 = now_s();
	for (s->step = 0; s->step < steps; s->step++) {
		uint64_t x = tu_rng_below(&s->r, 1000);
		if (x < 650)
			m_batch(s, NT, MAX_BATCH);
		else if (x < 800)
			m_gets(s);
		else if (x < 850)
			m_iter(s);
		else if (x < 900)
			m_sync(s);
		else if (x < 925)
			m_checkpoint(s);
		else if (x < 932)
			m_reopen(s);
		else if (x < 960)
			m_stat(s);
		else if (x < 970)
			m_compare_all(s, "full comparison");
		else
			m_batch(s, NT, MAX_BATCH);
	}
	m_compare_all(s, "at the end");
	m_checkpoint(s);
	m_reopen(s);
	m_stat(s);
	s->n_engine_ckpts += estat(s->e).n_checkpoints;
	int rc = engine_close(s->e);
	if (rc)
		MFAIL(s, "final engine_close = %d", rc);
	if (verbose())
		fprintf(stderr, "model: seed %" PRIu64 " (%s%s): %" PRIu64 " batches, %" PRIu64
			" ops, %" PRIu64 " gets, %" PRIu64 " iterations (%" PRIu64 " commits "
			"inside), %" PRIu64 " engine_checkpoint (%" PRIu64 " checkpoints in "
			"all), %" PRIu64 " syncs, %" PRIu64 " reopens in %.2f s\n", seed,
			g_cfg_name[s->cfg], s->posix ? ", POSIX" : "", s->n_batches, s->n_ops,
			s->n_gets, s->n_iters, s->n_iter_commits, s->n_ckpt, s->n_engine_ckpts,
			s->n_sync, s->n_reopen, now_s() - t0);
	tu_env_fini(&s->env);
	for (unsigned i = 0; i < NT; i++)
		tu_model_free(&s->m[i]);
	engine_batch_free(s->b);
	free(s->vbuf);
	free(s);
	tu_seed_end();
}

/* Loop test: iteration i runs seed 1000 + i; KVFS_SEED=N runs only N (in iteration 0). */
START_TEST(test_model)
{
	uint64_t seed;
	bool given = tu_seed_given("KVFS_SEED", &seed);
	unsigned steps = MODEL_STEPS;

	if (given && _i != 0)
		return;
	if (!given)
		seed = 1000 + (uint64_t)_i;
	if (getenv("KVFS_MODEL_STEPS"))
		steps = (unsigned)atoi(getenv("KVFS_MODEL_STEPS"));
	model_run(seed, steps);
}
END_TEST

/* ---- crash --------------------------------------------------------------------------- */

#define CRASH_BATCHES 160

struct crash_cfg {
	uint64_t wseed;
	enum io_fault_cut_mode mode;
};

struct crash_res {
	struct tu_model (*m)[NT];	/* [CRASH_BATCHES + 1]: the trees after batch c */
	size_t durable;			/* batches 1..durable were acknowledged durable */
	const char *durable_by;		/* by which call */
	size_t inflight;		/* the highest batch that may have reached the log */
	bool died;
	uint64_t syncs;			/* sync calls counted (for the counting run) */
	const char *died_in;
	char lie[160];			/* a call that returned 0 although its sync was cut */
};

static const char *mode_name(enum io_fault_cut_mode m)
{
	return m == IO_CUT_KEEP_ALL ? "keep" : m == IO_CUT_DROP_ALL ? "drop" : "random(tear)";
}

/* Checkpoint pieces of the current crash run: odd workload seeds commit every 2 pages, so
 * that every checkpoint is several commits without the LSN before the one with it. */
static uint64_t crash_piece_pages;

static void crash_opts(struct engine_options *o, struct tu_env *env, unsigned flags)
{
	opts_init(o, env, flags);
	o->no_checkpoint_thread = true;
	o->log_ring_bytes = WAL_MIN_RING;
	o->ckpt_piece_pages = crash_piece_pages;
}

/* After a call failed on the dead machine the engine is failed: commits and syncs -EIO. */
static void crash_expect_failed(struct engine *e, const char *after)
{
	struct engine_batch *b = engine_batch_new();

	bputs(b, 0, "after-failure", "x");
	int rc = engine_commit(e, b, NULL);
	TU_ASSERT(rc == -EIO, "%s failed; the next engine_commit = %d, want -EIO (a failed "
		  "engine)", after, rc);
	rc = engine_sync(e, 0);
	TU_ASSERT(rc == -EIO, "%s failed; the next engine_sync = %d, want -EIO", after, rc);
	engine_batch_free(b);
}

/* Run the workload on `env` (a machine holding a created, closed engine) with a power cut at
 * sync `cut` (0: none).  Fills res. */
static void crash_workload(struct tu_env *env, const struct crash_cfg *cfg, uint64_t cut,
			   struct crash_res *res)
{
	struct tu_rng r;
	struct tu_model work[NT];
	struct engine_options o;
	struct engine *e = NULL;
	struct engine_batch *b = engine_batch_new();
	static uint8_t v[40000];
	uint64_t since = 0;
	int rc;

	memset(work, 0, sizeof(work));
	tu_rng_init(&r, cfg->wseed);
	res->durable = res->inflight = 0;
	res->durable_by = "nothing";
	res->died = false;
	res->died_in = "";
	res->lie[0] = 0;
	for (size_t c = 0; c <= CRASH_BATCHES; c++)
		for (unsigned i = 0; i < NT; i++)
			tu_model_clear(&res->m[c][i]);
	io_fault_cut_at_sync(env->m, cut);
	crash_opts(&o, env, 0);
	rc = engine_open(env->path, &o, &e);
	if (rc) {
		TU_ASSERT(io_fault_dead(env->m), "engine_open = %d on a live machine", rc);
		res->died = true;
		res->died_in = "engine_open";
		goto out;
	}
	if (io_fault_dead(env->m)) {
		snprintf(res->lie, sizeof(res->lie), "engine_open returned 0 although power was "
			 "cut at sync %" PRIu64, cut);
		res->died = true;
		res->died_in = "engine_open";
		engine_close(e);
		goto out;
	}
	for (size_t c = 1; c <= CRASH_BATCHES; c++) {
		unsigned n = 1 + (unsigned)tu_rng_below(&r, 6);
		uint64_t raw = 0;
		engine_batch_clear(b);
		for (unsigned j = 0; j < n; j++) {
			unsigned i = (unsigned)tu_rng_below(&r, NT);
			unsigned ki = (unsigned)tu_rng_below(&r, KEY_SPACE / 2);
			if (tu_rng_chance(&r, 1, 4)) {
				bdel(b, g_tree[i], g_keys[ki], g_klen[ki]);
				tu_model_del(&work[i], g_keys[ki], g_klen[ki]);
				continue;
			}
			uint64_t x = tu_rng_below(&r, 100);
			size_t vl = x < 70 ? (size_t)tu_rng_below(&r, 200)
				    : x < 92 ? (size_t)tu_rng_range(&r, 200, 4000)
					     : (size_t)tu_rng_range(&r, 4000, sizeof(v));
			tf_value_fill(v, vl, tu_rng_next(&r));
			bput(b, g_tree[i], g_keys[ki], g_klen[ki], v, vl);
			tu_model_put(&work[i], g_keys[ki], g_klen[ki], v, vl);
			raw += g_klen[ki] + vl;
		}
		for (unsigned i = 0; i < NT; i++)
			tu_model_copy(&res->m[c][i], &work[i]);
		res->inflight = c;
		uint64_t lsn = 0;
		rc = engine_commit(e, b, &lsn);
		if (rc) {
			TU_ASSERT(io_fault_dead(env->m), "batch %zu: engine_commit = %d on a live "
				  "machine", c, rc);
			crash_expect_failed(e, "engine_commit");
			res->died = true;
			res->died_in = "engine_commit";
			break;
		}
		if (io_fault_dead(env->m)) {
			snprintf(res->lie, sizeof(res->lie), "batch %zu: engine_commit returned 0 "
				 "although power was cut at sync %" PRIu64, c, cut);
			res->died = true;
			res->died_in = "engine_commit";
			break;
		}
		since += raw;
		if (tu_rng_chance(&r, 1, 4)) {
			uint64_t upto = tu_rng_chance(&r, 1, 2) ? lsn : 0;
			rc = engine_sync(e, upto);
			if (rc) {
				TU_ASSERT(io_fault_dead(env->m), "batch %zu: engine_sync = %d on a "
					  "live machine", c, rc);
				crash_expect_failed(e, "engine_sync");
				res->died = true;
				res->died_in = "engine_sync";
				break;
			}
			res->durable = c;
			res->durable_by = "engine_sync";
			if (io_fault_dead(env->m)) {
				snprintf(res->lie, sizeof(res->lie), "batch %zu: engine_sync "
					 "returned 0 although power was cut at sync %" PRIu64, c,
					 cut);
				res->died = true;
				res->died_in = "engine_sync";
				break;
			}
		}
		if (since > (300u << 10) || tu_rng_chance(&r, 1, 12)) {
			rc = engine_checkpoint(e);
			if (rc) {
				TU_ASSERT(io_fault_dead(env->m), "batch %zu: engine_checkpoint = "
					  "%d on a live machine", c, rc);
				crash_expect_failed(e, "engine_checkpoint");
				res->died = true;
				res->died_in = "engine_checkpoint";
				break;
			}
			res->durable = c;
			res->durable_by = "engine_checkpoint";
			since = 0;
			if (io_fault_dead(env->m)) {
				snprintf(res->lie, sizeof(res->lie), "batch %zu: engine_checkpoint "
					 "returned 0 although power was cut at sync %" PRIu64, c,
					 cut);
				res->died = true;
				res->died_in = "engine_checkpoint";
				break;
			}
		}
	}
	if (!res->died) {
		rc = engine_close(e);
		e = NULL;
		if (rc) {
			TU_ASSERT(io_fault_dead(env->m), "engine_close = %d on a live machine", rc);
			res->died = true;
			res->died_in = "engine_close";
		} else {
			res->durable = CRASH_BATCHES;
			res->durable_by = "engine_close";
			if (io_fault_dead(env->m)) {
				snprintf(res->lie, sizeof(res->lie), "engine_close returned 0 "
					 "although power was cut at sync %" PRIu64, cut);
				res->died = true;
				res->died_in = "engine_close";
			}
		}
	}
	if (e)
		engine_close(e); /* on the dead machine: frees it, cannot succeed */
out:
	res->syncs = io_fault_syncs(env->m);
	for (unsigned i = 0; i < NT; i++)
		tu_model_free(&work[i]);
	engine_batch_free(b);
}

static void crash_setup(struct tu_env *env, const struct crash_cfg *cfg, uint64_t k)
{
	struct engine_options o;

	tu_env_fault(env, cfg->wseed * 7919 + k);
	io_fault_set_cut_mode(env->m, cfg->mode);
	crash_opts(&o, env, STORE_CREATE);
	eclose_ok(eopen_ok(env, &o));
}

/* Returns the number of cuts run. */
static uint64_t crash_run(const struct crash_cfg *cfg, uint64_t only_k)
{
	struct tu_env env;
	struct crash_res res;
	struct tu_model got[NT], want[NT];
	struct engine_options o;
	char log[4096];

	memset(got, 0, sizeof(got));
	memset(want, 0, sizeof(want));
	keys_init();
	tu_seed_begin("KVFS_SEED", cfg->wseed);
	res.m = calloc(CRASH_BATCHES + 1, sizeof(*res.m));
	TU_ASSERT(res.m != NULL, "%s", "calloc");

	/* Counting run. */
	crash_setup(&env, cfg, 0);
	crash_workload(&env, cfg, 0, &res);
	TU_ASSERT(!res.died, "the counting run died in %s", res.died_in);
	uint64_t K = res.syncs;
	TU_ASSERT(K >= CRASH_BATCHES / 8, "only %" PRIu64 " syncs", K);
	tu_env_fini(&env);

	uint64_t runs = 0;
	for (uint64_t k = 1; k <= K; k++) {
		if (only_k && k != only_k)
			continue;
		crash_setup(&env, cfg, k);
		crash_workload(&env, cfg, k, &res);
		TU_ASSERT(res.died, "cut at sync %" PRIu64 " of %" PRIu64 " (%s) never fell", k, K,
			  mode_name(cfg->mode));
		tu_env_reboot(&env, cfg->wseed ^ (k << 20));
		tu_log_clear();
		crash_opts(&o, &env, 0);
		struct engine *e = NULL;
		int rc = engine_open(env.path, &o, &e);
		TU_ASSERT(rc == 0, "cut at sync %" PRIu64 "/%" PRIu64 " (%s, in %s, batch %zu in "
			  "flight%s%s): reopen = %d; log: %s", k, K, mode_name(cfg->mode),
			  res.died_in, res.inflight, res.lie[0] ? "; " : "", res.lie, rc,
			  tu_log_text(log, sizeof(log)));
		rc = tu_verify(engine_store(e), g_msg, sizeof(g_msg));
		TU_ASSERT(rc == 0, "cut at sync %" PRIu64 "/%" PRIu64 " (%s, in %s, batch %zu in "
			  "flight): store_verify = %d: %s", k, K, mode_name(cfg->mode), res.died_in,
			  res.inflight, rc, g_msg);
		for (unsigned i = 0; i < NT; i++)
			if (eng_load(e, g_tree[i], &got[i], g_msg, sizeof(g_msg)))
				tu_fail(__FILE__, __LINE__, "cut at sync %" PRIu64 ": %s", k,
					g_msg);
		/* One prefix from the last durable batch to the one in flight. */
		size_t match = SIZE_MAX;
		for (size_t c = res.inflight + 1; c-- > res.durable && match == SIZE_MAX;) {
			bool eq = true;
			for (unsigned i = 0; i < NT && eq; i++)
				eq = tu_model_cmp(&got[i], &res.m[c][i], g_msg, sizeof(g_msg)) == 0;
			if (eq)
				match = c;
		}
		if (match == SIZE_MAX) {
			/* Name what it is, for the report: an earlier prefix, or none at all. */
			size_t older = SIZE_MAX;
			for (size_t c = res.durable; c-- > 0 && older == SIZE_MAX;) {
				bool eq = true;
				for (unsigned i = 0; i < NT && eq; i++)
					eq = tu_model_cmp(&got[i], &res.m[c][i], NULL, 0) == 0;
				if (eq)
					older = c;
			}
			char older_s[64] = "";
			if (older != SIZE_MAX)
				snprintf(older_s, sizeof(older_s), "; it is batch %zu's", older);
			unsigned i = 0;
			for (; i < NT; i++)
				if (tu_model_cmp(&got[i], &res.m[res.durable][i], g_msg,
						 sizeof(g_msg)))
					break;
			tu_fail(__FILE__, __LINE__, "cut at sync %" PRIu64 "/%" PRIu64 " (%s, in "
				"%s): the recovered state is none of batches %zu (durable by %s) "
				".. %zu (in flight)%s; against batch %zu, tree %u: %s", k, K,
				mode_name(cfg->mode), res.died_in, res.durable, res.durable_by,
				res.inflight, older_s, res.durable, g_tree[i < NT ? i : 0],
				i < NT ? g_msg : "equal");
		}
		if (verbose())
			fprintf(stderr, "crash: cut %" PRIu64 "/%" PRIu64 " in %s: durable %zu, in "
				"flight %zu, recovered %zu\n", k, K, res.died_in, res.durable,
				res.inflight, match);
		/* The replayed state checkpoints into the tree; the engine takes writes. */
		rc = engine_checkpoint(e);
		TU_ASSERT(rc == 0, "cut at sync %" PRIu64 ": engine_checkpoint after recovery = %d",
			  k, rc);
		verify_ok(e, "checkpoint after recovery");
		for (unsigned i = 0; i < NT; i++) {
			store_tree_ok(e, g_tree[i], &res.m[match][i]);
			tu_model_copy(&want[i], &res.m[match][i]);
		}
		commit1(e, g_tree[1], "after-recovery", NULL);
		tu_model_put(&want[1], "after-recovery", 14, "v", 1);
		OK(engine_sync(e, 0));
		if (k % 8 == 0) {
			eclose_ok(e);
			e = eopen_ok(&env, &o);
			verify_ok(e, "reopened after recovery");
		}
		for (unsigned i = 0; i < NT; i++)
			if (iter_cmp(e, g_tree[i], &want[i], NULL, SIZE_MAX, SIZE_MAX, g_msg,
				     sizeof(g_msg)))
				tu_fail(__FILE__, __LINE__, "cut at sync %" PRIu64 ", after "
					"recovery and a commit: tree %u: %s", k, g_tree[i], g_msg);
		eclose_ok(e);
		tu_env_fini(&env);
		/* Recovery was fine; a call that hid the failed sync is still wrong. */
		TU_ASSERT(!res.lie[0], "cut at sync %" PRIu64 "/%" PRIu64 " (%s): %s (recovery "
			  "itself was fine: batch %zu)", k, K, mode_name(cfg->mode), res.lie,
			  match);
		runs++;
	}
	for (size_t c = 0; c <= CRASH_BATCHES; c++)
		for (unsigned i = 0; i < NT; i++)
			tu_model_free(&res.m[c][i]);
	free(res.m);
	for (unsigned i = 0; i < NT; i++) {
		tu_model_free(&got[i]);
		tu_model_free(&want[i]);
	}
	tu_seed_end();
	return runs;
}

/* Loop test over configurations: 3 cut modes x CRASH_SEEDS workload seeds. */
#define CRASH_SEEDS 6
#define CRASH_CONFIGS (3 * CRASH_SEEDS)
START_TEST(test_crash)
{
	static const enum io_fault_cut_mode modes[] = { IO_CUT_RANDOM, IO_CUT_KEEP_ALL,
							 IO_CUT_DROP_ALL };
	struct crash_cfg cfg;
	uint64_t seed;
	bool given = tu_seed_given("KVFS_SEED", &seed);
	uint64_t only_k = tu_seed("KVFS_CUT", 0);

	cfg.mode = modes[_i % 3];
	if (given) {
		if (getenv("KVFS_CUT_MODE")) {
			if (_i != 0)
				return;
			cfg.mode = modes[atoi(getenv("KVFS_CUT_MODE")) % 3];
		} else if (_i >= 3) {
			return;
		}
	}
	cfg.wseed = given ? seed : 2000 + (uint64_t)_i;
	crash_piece_pages = cfg.wseed % 2 ? 16 : 0;
	double t0 = now_s();
	uint64_t n = crash_run(&cfg, only_k);
	fprintf(stderr, "crash: seed %" PRIu64 ", %s, checkpoint pieces of %s pages: %" PRIu64
		" cuts in %.1f s\n", cfg.wseed, mode_name(cfg.mode),
		crash_piece_pages ? "16" : "256", n, now_s() - t0);
}
END_TEST

/* ---- kill ---------------------------------------------------------------------------- */

#define KILL_ROUNDS 60

enum { KR_OPENED = 1, KR_COMMIT = 2, KR_SYNC = 3, KR_ERROR = 4 };
struct kill_rec {
	uint32_t kind;
	uint32_t val;	/* batch index, or -rc for KR_ERROR */
};

static void kill_opts(struct engine_options *o, struct tu_env *env, unsigned flags)
{
	opts_init(o, env, flags);
	o->ckpt_overlay_bytes = 64u << 10;
	o->log_ring_bytes = WAL_MIN_RING;
	o->ckpt_piece_pages = 4; /* a kill often lands between the pieces of a checkpoint */
}

/* Batch `idx` of round `rseed`: a function of those alone.  Added to b (when not NULL) and
 * applied to m[NT] (when not NULL). */
static void kill_batch(uint64_t rseed, uint32_t idx, struct engine_batch *b, struct tu_model *m)
{
	static uint8_t v[16 << 10];
	struct tu_rng r;

	tu_rng_init(&r, rseed ^ ((uint64_t)idx * 0x9e3779b97f4a7c15ull));
	unsigned n = 1 + (unsigned)tu_rng_below(&r, 8);
	for (unsigned j = 0; j < n; j++) {
		unsigned i = (unsigned)tu_rng_below(&r, NT);
		unsigned ki = (unsigned)tu_rng_below(&r, KEY_SPACE);
		if (tu_rng_chance(&r, 1, 4)) {
			if (b)
				engine_batch_del(b, g_tree[i], g_keys[ki], g_klen[ki]);
			if (m)
				tu_model_del(&m[i], g_keys[ki], g_klen[ki]);
			continue;
		}
		size_t vl = tu_rng_chance(&r, 1, 10) ? (size_t)tu_rng_range(&r, 2000, sizeof(v))
						       : (size_t)tu_rng_below(&r, 2000);
		tf_value_fill(v, vl, tu_rng_next(&r));
		if (b)
			engine_batch_put(b, g_tree[i], g_keys[ki], g_klen[ki], v, vl);
		if (m)
			tu_model_put(&m[i], g_keys[ki], g_klen[ki], v, vl);
	}
}

static void kill_report(int fd, uint32_t kind, uint32_t val)
{
	struct kill_rec rec = { kind, val };

	if (write(fd, &rec, sizeof(rec)) != (ssize_t)sizeof(rec))
		_exit(9);
}

/* The child: commit batches 0, 1, ... until killed; report each that returned. */
static void kill_child(struct tu_env *env, uint64_t rseed, int fd)
{
	struct engine_options o;
	struct engine *e = NULL;
	struct engine_batch *b = engine_batch_new();
	struct tu_rng r;

	tu_rng_init(&r, ~rseed);
	kill_opts(&o, env, 0);
	int rc = engine_open(env->path, &o, &e);
	if (rc) {
		kill_report(fd, KR_ERROR, (uint32_t)-rc);
		_exit(2);
	}
	kill_report(fd, KR_OPENED, 0);
	for (uint32_t i = 0;; i++) {
		engine_batch_clear(b);
		kill_batch(rseed, i, b, NULL);
		rc = engine_commit(e, b, NULL);
		if (rc) {
			kill_report(fd, KR_ERROR, (uint32_t)-rc);
			_exit(3);
		}
		kill_report(fd, KR_COMMIT, i);
		if (tu_rng_chance(&r, 1, 8)) {
			rc = engine_sync(e, 0);
			if (rc) {
				kill_report(fd, KR_ERROR, (uint32_t)-rc);
				_exit(4);
			}
			kill_report(fd, KR_SYNC, i);
		}
	}
}

/* Compare the engine's trees with a[] (0) or a1[] (1); -1 with g_msg otherwise. */
static int kill_check(struct engine *e, struct tu_model *a, struct tu_model *a1)
{
	struct tu_model got[NT];
	int which = -1;

	memset(got, 0, sizeof(got));
	int rc = tu_verify(engine_store(e), g_msg + 64, sizeof(g_msg) - 64);
	if (rc) {
		int n = snprintf(g_msg, 64, "store_verify = %d: ", rc);
		memmove(g_msg + n, g_msg + 64, strlen(g_msg + 64) + 1);
		return -1;
	}
	for (unsigned i = 0; i < NT; i++)
		if (eng_load(e, g_tree[i], &got[i], g_msg, sizeof(g_msg)))
			goto out;
	for (int w = 0; w <= 1 && which < 0; w++) {
		struct tu_model *x = w ? a1 : a;
		bool eq = true;
		for (unsigned i = 0; i < NT && eq; i++)
			eq = tu_model_cmp(&got[i], &x[i], g_msg, sizeof(g_msg)) == 0;
		if (eq)
			which = w;
	}
	if (which < 0) {
		for (unsigned i = 0; i < NT; i++) {
			if (tu_model_cmp(&got[i], &a[i], g_msg + 64, sizeof(g_msg) - 64)) {
				int n = snprintf(g_msg, 64, "tree %u against the reported prefix: ",
						 g_tree[i]);
				memmove(g_msg + n, g_msg + 64, strlen(g_msg + 64) + 1);
				break;
			}
		}
	}
out:
	for (unsigned i = 0; i < NT; i++)
		tu_model_free(&got[i]);
	return which;
}

START_TEST(test_kill)
{
	struct tu_env env;
	struct engine_options o;
	struct tu_model base[NT], a[NT], a1[NT];
	uint64_t seed = tu_seed("KVFS_SEED", 4242), x;
	unsigned rounds = KILL_ROUNDS;
	uint64_t n_reported = 0, n_syncs = 0, n_inflight = 0, n_unopened = 0;
	double t0 = now_s();

	if (getenv("KVFS_KILL_ROUNDS"))
		rounds = (unsigned)atoi(getenv("KVFS_KILL_ROUNDS"));
	memset(base, 0, sizeof(base));
	memset(a, 0, sizeof(a));
	memset(a1, 0, sizeof(a1));
	keys_init();
	tu_seed_begin("KVFS_SEED", seed);
	x = seed;
	tu_env_posix(&env);
	kill_opts(&o, &env, STORE_CREATE);
	eclose_ok(eopen_ok(&env, &o));
	o.flags = 0;
	for (unsigned round = 0; round < rounds; round++) {
		uint64_t rseed = tu_splitmix64(&x);
		unsigned delay_ms = 3 + (unsigned)(tu_splitmix64(&x) % 48);
		int fds[2];
		TU_ASSERT(pipe(fds) == 0, "%s", "pipe");
		pid_t pid = fork();
		TU_ASSERT(pid >= 0, "%s", "fork");
		if (pid == 0) {
			close(fds[0]);
			kill_child(&env, rseed, fds[1]);
			_exit(1);
		}
		close(fds[1]);
		/* Collect reports until the deadline, then kill and drain. */
		struct kill_rec *recs = NULL;
		size_t nrec = 0, cap = 0, have = 0;
		uint8_t buf[4096 + sizeof(struct kill_rec)];
		double deadline = now_s() + delay_ms / 1000.0;
		bool killed = false, eof = false;
		while (!eof) {
			double left = deadline - now_s();
			if (!killed && left <= 0) {
				kill(pid, SIGKILL);
				killed = true;
			}
			struct pollfd p = { fds[0], POLLIN, 0 };
			int pr = poll(&p, 1, killed ? -1 : (int)(left * 1000) + 1);
			if (pr <= 0)
				continue;
			ssize_t got = read(fds[0], buf + have, sizeof(buf) - have);
			if (got <= 0) {
				eof = got == 0;
				continue;
			}
			have += (size_t)got;
			size_t whole = have / sizeof(struct kill_rec);
			if (nrec + whole > cap) {
				cap = (nrec + whole) * 2;
				recs = realloc(recs, cap * sizeof(*recs));
				TU_ASSERT(recs != NULL, "%s", "realloc");
			}
			memcpy(recs + nrec, buf, whole * sizeof(struct kill_rec));
			nrec += whole;
			memmove(buf, buf + whole * sizeof(struct kill_rec),
				have - whole * sizeof(struct kill_rec));
			have -= whole * sizeof(struct kill_rec);
		}
		close(fds[0]);
		int status = 0;
		TU_ASSERT(waitpid(pid, &status, 0) == pid, "%s", "waitpid");
		uint32_t done = 0;	/* batches 0..done-1 returned */
		bool opened = false;
		for (size_t j = 0; j < nrec; j++) {
			if (recs[j].kind == KR_ERROR)
				tu_fail(__FILE__, __LINE__, "round %u: the child failed with %d "
					"after %u batches", round, -(int)recs[j].val, done);
			if (recs[j].kind == KR_OPENED)
				opened = true;
			if (recs[j].kind == KR_COMMIT) {
				TU_ASSERT_EQ(recs[j].val, done, "round %u: report order", round);
				done++;
			}
			if (recs[j].kind == KR_SYNC)
				n_syncs++;
		}
		free(recs);
		TU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "round %u: the child "
			  "ended with status %#x, not by SIGKILL", round, status);
		n_reported += done;
		n_unopened += !opened;

		/* What the store may hold: batches 0..done-1, and perhaps batch done. */
		for (unsigned i = 0; i < NT; i++)
			tu_model_copy(&a[i], &base[i]);
		for (uint32_t j = 0; j < done; j++)
			kill_batch(rseed, j, NULL, a);
		for (unsigned i = 0; i < NT; i++)
			tu_model_copy(&a1[i], &a[i]);
		if (opened)
			kill_batch(rseed, done, NULL, a1);

		int which;
		if (round % 3 == 0) {
			/* Check here, and close cleanly. */
			struct engine *e = eopen_ok(&env, &o);
			which = kill_check(e, a, a1);
			if (which < 0)
				tu_fail(__FILE__, __LINE__, "round %u (killed after %u ms, %u "
					"batches reported): %s", round, delay_ms, done, g_msg);
			eclose_ok(e);
		} else {
			/* Check in a child that then exits without closing: the log stays. */
			int cf[2];
			TU_ASSERT(pipe(cf) == 0, "%s", "pipe");
			pid_t cp = fork();
			TU_ASSERT(cp >= 0, "%s", "fork");
			if (cp == 0) {
				struct engine *e = NULL;
				char out[1024];
				close(cf[0]);
				int rc = engine_open(env.path, &o, &e);
				if (rc) {
					which = -1;
					snprintf(g_msg, sizeof(g_msg), "engine_open = %d", rc);
				} else {
					which = kill_check(e, a, a1);
				}
				int n = snprintf(out, sizeof(out), "%d %s", which,
						 which < 0 ? g_msg : "");
				if (write(cf[1], out, (size_t)MIN(n, (int)sizeof(out) - 1)) < 0)
					_exit(8);
				_exit(0);
			}
			close(cf[1]);
			char in[1024] = "";
			ssize_t n = 0, got;
			while ((got = read(cf[0], in + n, sizeof(in) - 1 - (size_t)n)) > 0)
				n += got;
			in[n] = 0;
			close(cf[0]);
			TU_ASSERT(waitpid(cp, &status, 0) == cp, "%s", "waitpid");
			TU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0 && n > 0,
				  "round %u: the checker ended with status %#x", round, status);
			which = atoi(in);
			const char *why = strchr(in, ' ') ? strchr(in, ' ') + 1 : in;
			if (which < 0)
				tu_fail(__FILE__, __LINE__, "round %u (killed after %u ms, %u "
					"batches reported; checked in a child): %s", round,
					delay_ms, done, why);
		}
		n_inflight += which == 1;
		for (unsigned i = 0; i < NT; i++)
			tu_model_copy(&base[i], which ? &a1[i] : &a[i]);
		if (verbose())
			fprintf(stderr, "kill: round %u: %u ms, %u batches reported%s\n", round,
				delay_ms, done, which ? " + the one in flight" : "");
	}
	/* Finally: a clean open, the state, a clean close. */
	struct engine *e = eopen_ok(&env, &o);
	verify_ok(e, "after the last round");
	for (unsigned i = 0; i < NT; i++)
		if (iter_cmp(e, g_tree[i], &base[i], NULL, SIZE_MAX, SIZE_MAX, g_msg,
			     sizeof(g_msg)))
			tu_fail(__FILE__, __LINE__, "after the last round: tree %u: %s", g_tree[i],
				g_msg);
	eclose_ok(e);
	fprintf(stderr, "kill: %u kills (%" PRIu64 " before the open finished), %" PRIu64
		" batches and %" PRIu64 " syncs reported, the in-flight batch present %" PRIu64
		" times, in %.1f s\n", rounds, n_unopened, n_reported, n_syncs, n_inflight,
		now_s() - t0);
	for (unsigned i = 0; i < NT; i++) {
		tu_model_free(&base[i]);
		tu_model_free(&a[i]);
		tu_model_free(&a1[i]);
	}
	tu_env_fini(&env);
	tu_seed_end();
}
END_TEST

/* ---- groupcommit --------------------------------------------------------------------- */

#define GC_THREADS 16
#define GC_ROUNDS 100

struct gc_arg {
	struct engine *e;
	unsigned id, phase;
	pthread_barrier_t *barrier; /* NULL: run free */
	int rc;			    /* first failure */
	char what[64];
};

static void gc_kv(unsigned phase, unsigned id, unsigned i, char *k, size_t *kl, char *v)
{
	*kl = (size_t)snprintf(k, 32, "gc%u/%02u/%03u", phase, id, i);
	memset(v, (int)(phase * 64 + id * 16 + i % 16), 100);
}

static void *gc_main(void *p)
{
	struct gc_arg *a = p;
	struct engine_batch *b = engine_batch_new();
	char k[32], v[100];
	size_t kl;

	for (unsigned i = 0; i < GC_ROUNDS; i++) {
		uint64_t lsn = 0;
		int rc = b ? 0 : -ENOMEM;
		gc_kv(a->phase, a->id, i, k, &kl, v);
		if (b) {
			engine_batch_clear(b);
			rc = engine_batch_put(b, a->id % 3, k, kl, v, sizeof(v));
		}
		if (!rc && !a->rc)
			rc = engine_commit(a->e, b, &lsn);
		if (rc && !a->rc) {
			a->rc = rc;
			snprintf(a->what, sizeof(a->what), "commit %u", i);
		}
		/* Every thread goes through every round, so that the barrier never hangs. */
		if (a->barrier)
			pthread_barrier_wait(a->barrier);
		rc = a->rc ? 0 : engine_sync(a->e, lsn);
		if (rc && !a->rc) {
			a->rc = rc;
			snprintf(a->what, sizeof(a->what), "engine_sync %u", i);
		}
	}
	engine_batch_free(b);
	return NULL;
}

static void gc_check(struct engine *e, unsigned phases)
{
	char k[32], v[100];
	size_t kl;

	for (unsigned phase = 0; phase < phases; phase++)
		for (unsigned id = 0; id < GC_THREADS; id++)
			for (unsigned i = 0; i < GC_ROUNDS; i++) {
				gc_kv(phase, id, i, k, &kl, v);
				get_expect(e, id % 3, k, kl, v, sizeof(v), SIZE_MAX);
			}
}

/* One phase: GC_THREADS threads, with or without the barrier.  Returns the fdatasync count
 * and sets *calls to the engine_sync count. */
static uint64_t gc_phase(struct engine *e, unsigned phase, bool barrier, uint64_t *calls,
			 double *secs)
{
	struct gc_arg args[GC_THREADS];
	pthread_t th[GC_THREADS];
	pthread_barrier_t bar;

	if (barrier)
		TU_ASSERT_EQ(pthread_barrier_init(&bar, NULL, GC_THREADS), 0, "%s", "barrier");
	struct engine_stat s0 = estat(e);
	double t0 = now_s();
	for (unsigned i = 0; i < GC_THREADS; i++) {
		args[i] = (struct gc_arg){ .e = e, .id = i, .phase = phase,
					   .barrier = barrier ? &bar : NULL };
		TU_ASSERT_EQ(pthread_create(&th[i], NULL, gc_main, &args[i]), 0, "%s", "thread");
	}
	for (unsigned i = 0; i < GC_THREADS; i++)
		pthread_join(th[i], NULL);
	*secs = now_s() - t0;
	if (barrier)
		pthread_barrier_destroy(&bar);
	for (unsigned i = 0; i < GC_THREADS; i++)
		TU_ASSERT(args[i].rc == 0, "phase %u, thread %u: %s = %d", phase, i, args[i].what,
			  args[i].rc);
	struct engine_stat s1 = estat(e);
	*calls = s1.n_sync_calls - s0.n_sync_calls;
	TU_ASSERT_EQ(*calls, GC_THREADS * GC_ROUNDS, "phase %u: n_sync_calls", phase);
	TU_ASSERT_EQ(s1.n_commits - s0.n_commits, GC_THREADS * GC_ROUNDS, "phase %u: n_commits",
		     phase);
	return s1.n_fdatasync - s0.n_fdatasync;
}

START_TEST(test_groupcommit)
{
	struct tu_env env;
	struct engine_options o;
	uint64_t calls[2], flushes[2];
	double secs[2];

	tu_env_posix(&env);
	bool ramfs = tu_dir_in_memory(env.dir);
	opts_init(&o, &env, STORE_CREATE);
	struct engine *e = eopen_ok(&env, &o);
	for (unsigned phase = 0; phase < 2; phase++) {
		flushes[phase] = gc_phase(e, phase, phase == 1, &calls[phase], &secs[phase]);
		fprintf(stderr, "groupcommit: %u threads x %u, %s: %" PRIu64 " engine_sync calls, %"
			PRIu64 " fdatasync (ratio %.3f) in %.2f s%s\n", GC_THREADS, GC_ROUNDS,
			phase ? "barrier before the syncs" : "free-running", calls[phase],
			flushes[phase], (double)flushes[phase] / (double)calls[phase], secs[phase],
			!phase && ramfs ? " (tmpfs: not asserted)" : "");
		TU_ASSERT(flushes[phase] > 0, "phase %u: no fdatasync at all", phase);
	}
	TU_ASSERT(ramfs || flushes[0] <= calls[0] / 2, "group commit, free-running: %" PRIu64
		  " fdatasync for %" PRIu64 " engine_sync calls", flushes[0], calls[0]);
	TU_ASSERT(flushes[1] <= calls[1] / 2, "group commit, %u syncs at once: %" PRIu64
		  " fdatasync for %" PRIu64 " engine_sync calls", GC_THREADS, flushes[1], calls[1]);
	gc_check(e, 2);
	eclose_ok(e);
	o.flags = 0;
	e = eopen_ok(&env, &o);
	gc_check(e, 2);
	verify_ok(e, "after group commit");
	eclose_ok(e);
	tu_env_fini(&env);
}
END_TEST

/* ---- backpressure -------------------------------------------------------------------- */

#define BP_MEM_LIMIT (256u << 10)
#define BP_TOTAL (6u << 20)
#define BP_ENTRY_SLACK 512 /* overlay bytes allowed per entry beyond its key and value */

struct bp_shared {
	struct engine *e;
	atomic_bool done;
	uint64_t max_overlay, polls;
	int rc;
};

static void *bp_poller(void *p)
{
	struct bp_shared *sh = p;

	while (!atomic_load(&sh->done)) {
		struct engine_stat st;
		int rc = engine_stat(sh->e, &st);
		if (rc) {
			sh->rc = rc;
			break;
		}
		if (st.overlay_bytes > sh->max_overlay)
			sh->max_overlay = st.overlay_bytes;
		sh->polls++;
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

START_TEST(test_backpressure)
{
	struct tu_env env;
	struct engine_options o;
	struct bp_shared sh = { 0 };
	struct tu_model m = { 0 };
	struct tu_rng r;
	pthread_t th;
	static uint8_t v[16 << 10];
	uint64_t total = 0, largest = 0, n_batches = 0;

	tu_seed_begin("KVFS_SEED", 77);
	tu_rng_init(&r, 77);
	tu_env_fault(&env, 77);
	/* a slow disk (20 ms a flush of the data file): the writer runs ahead of the
	 * checkpoints, and only backpressure holds the overlay to its bound */
	static const long flush_ms = 20;
	io_fault_set_sync_hook(env.m, slow_sync, (void *)&flush_ms);
	opts_init(&o, &env, STORE_CREATE);
	o.mem_limit = BP_MEM_LIMIT;
	o.ckpt_overlay_bytes = 64u << 10;
	o.log_ring_bytes = WAL_MIN_RING;
	struct engine *e = eopen_ok(&env, &o);
	struct engine_batch *b = engine_batch_new();
	sh.e = e;
	atomic_init(&sh.done, false);
	TU_ASSERT_EQ(pthread_create(&th, NULL, bp_poller, &sh), 0, "%s", "poller");
	double t0 = now_s();
	while (total < BP_TOTAL) {
		unsigned n = 1 + (unsigned)tu_rng_below(&r, 4);
		uint64_t bytes = 0;
		engine_batch_clear(b);
		for (unsigned j = 0; j < n; j++) {
			/* many small entries: values in the log cost the overlay nothing, so
			 * what fills it is nodes and keys (engine.c "Values stay in the log"),
			 * with now and then a big value */
			char k[16];
			unsigned ki = (unsigned)tu_rng_below(&r, 100000);
			int kl = snprintf(k, sizeof(k), "bp/%06u", ki);
			size_t vl = tu_rng_chance(&r, 1, 50) ? (size_t)tu_rng_range(&r, 1, sizeof(v))
							     : (size_t)tu_rng_range(&r, 1, 64);
			tf_value_fill(v, vl, total + j);
			bput(b, 5, k, (size_t)kl, v, vl);
			tu_model_put(&m, k, (size_t)kl, v, vl);
			bytes += (uint64_t)kl + vl + BP_ENTRY_SLACK;
			total += (uint64_t)kl + vl;
		}
		commit_ok(e, b);
		n_batches++;
		if (bytes > largest)
			largest = bytes;
	}
	double dt = now_s() - t0;
	atomic_store(&sh.done, true);
	pthread_join(th, NULL);
	TU_ASSERT_EQ(sh.rc, 0, "%s", "engine_stat in the poller");
	struct engine_stat st = estat(e);
	fprintf(stderr, "backpressure: %" PRIu64 " MiB in %" PRIu64 " batches in %.2f s: overlay "
		"max %" PRIu64 " bytes over %" PRIu64 " polls (bound %" PRIu64 "), %" PRIu64
		" checkpoints, %" PRIu64 " backpressure waits\n", total >> 20, n_batches, dt,
		sh.max_overlay, sh.polls, (uint64_t)BP_MEM_LIMIT + largest + BP_MEM_LIMIT / 2,
		st.n_checkpoints,
		st.n_backpressure);
	TU_ASSERT(sh.polls > 0, "%s", "the poller never ran");
	/* one commit can also double the overlay's hash index (16 bytes a slot, at most half
	 * full: a doubling adds at most a third of what ~110-byte entries take) */
	uint64_t bound = BP_MEM_LIMIT + largest + BP_MEM_LIMIT / 2;
	TU_ASSERT(sh.max_overlay <= bound, "overlay_bytes reached %" PRIu64 " > mem_limit %u + "
		  "the largest batch %" PRIu64 " + an index doubling", sh.max_overlay,
		  BP_MEM_LIMIT, largest);
	TU_ASSERT(st.n_backpressure > 0 || st.n_checkpoints > 0, "%s",
		  "neither checkpoints nor backpressure over 6 MiB");
	io_fault_set_sync_hook(env.m, NULL, NULL);
	iter_cmp_ok(e, 5, &m, NULL, SIZE_MAX, SIZE_MAX);
	verify_ok(e, "after 6 MiB");
	eclose_ok(e);
	o.flags = 0;
	e = eopen_ok(&env, &o);
	iter_cmp_ok(e, 5, &m, NULL, SIZE_MAX, SIZE_MAX);
	eclose_ok(e);
	engine_batch_free(b);
	tu_model_free(&m);
	tu_env_fini(&env);
	tu_seed_end();
}
END_TEST

/* ---- ring: the log's ring sized to the store (engine.c ring_target, ring_fit) ---------- */

#define MIB (1ull << 20)
#define RING_LO (36 * MIB) /* engine.c RING_FLOOR: the default options' smallest ring */

/* The automatic ring for a data file of `bytes` with the default options (engine.c
 * ring_target, written out again here): bytes / 8 rounded up to a MiB, within 36..64 MiB. */
static uint64_t ring_model(uint64_t bytes)
{
	uint64_t t = (bytes / 8 + MIB - 1) / MIB * MIB;

	return t < RING_LO ? RING_LO : t > 64 * MIB ? 64 * MIB : t;
}

/* After a clean close and reopen with an automatic ring: the ring is the target for the data
 * file, or within a quarter of it (not worth rewriting the log); the log file holds it. */
static uint64_t ring_fits(struct tu_env *env, struct engine *e, const char *what)
{
	struct engine_stat s = estat(e);
	uint64_t t = ring_model(s.store.file_bytes), r = s.log_ring_bytes;
	uint64_t d = t > r ? t - r : r - t;
	int64_t size;

	TU_ASSERT(r == t || 4 * d <= r, "%s: ring %" PRIu64 " for a data file of %" PRIu64
		  " bytes (target %" PRIu64 ")", what, r, s.store.file_bytes, t);
	if (env->fault) {
		size = io_fault_file_size(env->m, wal_path(env->path));
	} else {
		struct stat sb;
		TU_ASSERT(stat(wal_path(env->path), &sb) == 0, "%s", "stat STORE-wal");
		size = sb.st_size;
	}
	TU_ASSERT_EQ((uint64_t)size, WAL_HDR_SIZE + r, "%s: log file size", what);
	return r;
}

/* After a clean close, the log is at rest: a ring of WAL_MIN_RING, the file that size (engine.c
 * ring_rest). */
static void at_rest(struct tu_env *env, const char *what)
{
	struct stat sb;

	TU_ASSERT(stat(wal_path(env->path), &sb) == 0, "%s", "stat STORE-wal");
	TU_ASSERT_EQ((uint64_t)sb.st_size, WAL_HDR_SIZE + WAL_MIN_RING, "%s: log file size at rest",
		     what);
	TU_ASSERT((uint64_t)sb.st_blocks * 512u <= 2 * (WAL_HDR_SIZE + WAL_MIN_RING),
		  "%s: %llu bytes allocated to the log at rest", what,
		  (unsigned long long)sb.st_blocks * 512u);
}

/* A new store's log gets the smallest automatic ring; one that grew past 8 x 45 MiB gets a
 * bigger one at its next open (never while open), one that shrank a smaller one; between
 * opens the log is at rest (1 MiB); an explicit log_ring_bytes never changes an existing log.
 * POSIX files (400 MiB). */
START_TEST(test_ring_grows)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_batch *b = engine_batch_new();
	uint8_t *v = malloc(ENGINE_MAX_VALUE), *got = malloc(ENGINE_MAX_VALUE);
	const int n = 400;
	char k[16];
	size_t vlen;

	TU_ASSERT(b && v && got, "%s", "out of memory");
	tu_env_posix(&env);
	memset(&o, 0, sizeof(o));
	o.flags = STORE_CREATE;
	o.log = tu_log_cb;
	TU_ASSERT_EQ(engine_log_ring_bytes(&o), RING_LO, "%s", "a new store's ring");
	TU_ASSERT_EQ(engine_log_ring_bytes(NULL), RING_LO, "%s", "a new store's ring (NULL)");
	e = eopen_ok(&env, &o);
	TU_ASSERT_EQ(ring_fits(&env, e, "new store"), RING_LO, "%s", "new store");
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "k%04d", i);
		tf_value_fill(v, ENGINE_MAX_VALUE, (uint64_t)i);
		bput(b, 0, k, strlen(k), v, ENGINE_MAX_VALUE);
		commit_ok(e, b);
		engine_batch_clear(b);
	}
	struct engine_stat s = estat(e);
	TU_ASSERT_EQ(s.log_ring_bytes, RING_LO, "%s", "the ring does not change while open");
	eclose_ok(e);
	at_rest(&env, "closed after growing");

	o.flags = 0;
	e = eopen_ok(&env, &o);
	s = estat(e);
	TU_ASSERT(s.store.file_bytes >= (uint64_t)n * MIB, "data file %" PRIu64 " bytes",
		  s.store.file_bytes);
	uint64_t grown = ring_fits(&env, e, "after growing");
	TU_ASSERT(grown > RING_LO, "ring %" PRIu64 " after growing to %" PRIu64 " bytes", grown,
		  s.store.file_bytes);
	OK(engine_get(e, 0, "k0399", 5, got, ENGINE_MAX_VALUE, &vlen));
	TU_ASSERT(vlen == ENGINE_MAX_VALUE && tf_value_check(got, vlen, 399), "%s", "a value");
	eclose_ok(e);

	/* An explicit ring is the ring of a new log only: this one keeps its size, the size at
	 * rest its clean close left, and is not shrunk again at close. */
	o.log_ring_bytes = 4 * MIB;
	e = eopen_ok(&env, &o);
	TU_ASSERT_EQ(estat(e).log_ring_bytes, WAL_MIN_RING, "%s",
		     "explicit log_ring_bytes, existing log at rest");
	eclose_ok(e);
	at_rest(&env, "closed with an explicit ring");
	o.log_ring_bytes = 0;

	/* Empty the store: the ring follows the data file, which shrinks only where its tail is
	 * free (here it keeps its size: the ring stays). */
	e = eopen_ok(&env, &o);
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "k%04d", i);
		bdel(b, 0, k, strlen(k));
	}
	commit_ok(e, b);
	OK(engine_checkpoint(e));
	OK(engine_checkpoint(e));
	eclose_ok(e);
	e = eopen_ok(&env, &o);
	uint64_t after = ring_fits(&env, e, "after emptying");
	fprintf(stderr, "engine ring: new %llu MiB, %d MiB of values %llu MiB, emptied %llu MiB "
		"(data file %llu MiB)\n", (unsigned long long)(RING_LO / MIB), n,
		(unsigned long long)(grown / MIB), (unsigned long long)(after / MIB),
		(unsigned long long)(estat(e).store.file_bytes / MIB));
	eclose_ok(e);
	engine_batch_free(b);
	free(v);
	free(got);
	tu_env_fini(&env);
}
END_TEST

/* The ring changes only while the log is empty: at open when there is nothing to replay (here
 * a store created with a 1 MiB ring, reopened with an automatic one), not at an open that
 * replays records (power cut after engine_sync); the clean close after it puts the log at
 * rest, and the next open sizes it.  io_fault. */
START_TEST(test_ring_open)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;

	tu_env_fault(&env, 31);
	memset(&o, 0, sizeof(o));
	o.flags = STORE_CREATE;
	o.io = tu_env_io(&env);
	o.log = tu_log_cb;
	o.no_checkpoint_thread = true;
	o.log_ring_bytes = WAL_MIN_RING;
	e = eopen_ok(&env, &o);
	commit1(e, 0, "a", NULL);
	TU_ASSERT_EQ(estat(e).log_ring_bytes, WAL_MIN_RING, "%s", "as asked");
	eclose_ok(e);

	o.flags = 0;
	o.log_ring_bytes = 0;
	e = eopen_ok(&env, &o);
	TU_ASSERT_EQ(ring_fits(&env, e, "reopened, automatic"), RING_LO, "%s",
		     "grown at open: the log was empty");
	get_str(e, 0, "a", "v");
	/* a batch over half the old ring fits now */
	{
		struct engine_batch *b = engine_batch_new();
		uint8_t *v = calloc(1, ENGINE_MAX_VALUE);
		TU_ASSERT(b && v, "%s", "out of memory");
		bput(b, 0, "big", 3, v, ENGINE_MAX_VALUE);
		commit_ok(e, b);
		engine_batch_free(b);
		free(v);
	}
	OK(engine_checkpoint(e));
	commit1(e, 0, "b", NULL);
	OK(engine_sync(e, 0));
	io_fault_set_cut_mode(env.m, IO_CUT_DROP_ALL);
	io_fault_power_cut(env.m);
	TU_ASSERT(engine_close(e) < 0, "%s", "engine_close on a dead machine");
	tu_env_reboot(&env, 32);
	o.io = tu_env_io(&env);

	/* checkpoints of 32 MiB: the smallest ring is now 64 MiB, but the log holds "b" */
	o.ckpt_overlay_bytes = 32 * MIB;
	e = eopen_ok(&env, &o);
	struct engine_stat s = estat(e);
	TU_ASSERT(s.log_bytes > 0 && s.log_ring_bytes == RING_LO, "replayed %" PRIu64 " bytes, "
		  "ring %" PRIu64, s.log_bytes, s.log_ring_bytes);
	get_str(e, 0, "b", "v");
	eclose_ok(e);
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(env.m, wal_path(env.path)),
		     WAL_HDR_SIZE + WAL_MIN_RING, "%s", "log file size at rest");
	e = eopen_ok(&env, &o);
	s = estat(e);
	TU_ASSERT_EQ(s.log_ring_bytes, 64 * MIB, "%s", "resized at the open after a clean close");
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(env.m, wal_path(env.path)),
		     WAL_HDR_SIZE + 64 * MIB, "%s", "log file size");
	get_str(e, 0, "a", "v");
	get_str(e, 0, "b", "v");
	eclose_ok(e);
	tu_env_fini(&env);
}
END_TEST

/* A disk with no room to grow the log at open: the store opens with its ring at rest (1 MiB);
 * a record that fits half of it is accepted, one that would fit half of the wanted ring but
 * not this one fails with -ENOSPC (not -EFBIG, which would say the change can never fit), one
 * too large for any ring with -EFBIG; the next open with room grows the ring and takes it.
 * io_fault with a space limit. */
START_TEST(test_ring_nospc)
{
	struct tu_env env;
	struct engine_options o;
	struct engine *e;
	struct engine_batch *b = engine_batch_new();
	const size_t mid = 600u << 10; /* > 512 KiB: half the ring at rest */
	uint8_t *v = calloc(1, ENGINE_MAX_VALUE);

	TU_ASSERT(b && v, "%s", "out of memory");
	tu_env_fault(&env, 41);
	memset(&o, 0, sizeof(o));
	o.flags = STORE_CREATE;
	o.io = tu_env_io(&env);
	o.log = tu_log_cb;
	o.no_checkpoint_thread = true;
	e = eopen_ok(&env, &o);
	commit1(e, 0, "a", NULL);
	eclose_ok(e);
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(env.m, wal_path(env.path)),
		     WAL_HDR_SIZE + WAL_MIN_RING, "%s", "log file size at rest");

	/* room for what is there and 8 MiB more, not for a 36 MiB ring */
	io_fault_set_space_limit(env.m, io_fault_space_used(env.m) + 8 * MIB);
	o.flags = 0;
	e = eopen_ok(&env, &o);
	TU_ASSERT_EQ(estat(e).log_ring_bytes, WAL_MIN_RING, "%s", "the ring stays at rest");
	get_str(e, 0, "a", "v");
	bput(b, 0, "small", 5, v, 100u << 10);
	commit_ok(e, b);
	engine_batch_clear(b);
	bput(b, 0, "mid", 3, v, mid);
	EXPECT(engine_commit(e, b, NULL), -ENOSPC);
	engine_batch_clear(b);
	for (int i = 0; i < 40; i++) {
		char k[16];
		snprintf(k, sizeof(k), "b%02d", i);
		bput(b, 0, k, strlen(k), v, ENGINE_MAX_VALUE);
	}
	EXPECT(engine_commit(e, b, NULL), -EFBIG); /* 40 MiB: over half of any ring */
	engine_batch_clear(b);
	get_str(e, 0, "a", "v");
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(env.m, wal_path(env.path)),
		     WAL_HDR_SIZE + WAL_MIN_RING, "%s", "log file size after the failed growth");
	/* A power cut with records in the log: the next open replays them, so the ring cannot
	 * grow there either; it is still short, and says so. */
	commit1(e, 0, "c", NULL);
	OK(engine_sync(e, 0));
	io_fault_set_cut_mode(env.m, IO_CUT_DROP_ALL);
	io_fault_power_cut(env.m);
	TU_ASSERT(engine_close(e) < 0, "%s", "engine_close on a dead machine");
	tu_env_reboot(&env, 42);
	o.io = tu_env_io(&env);
	e = eopen_ok(&env, &o);
	struct engine_stat rs = estat(e);
	TU_ASSERT(rs.log_bytes > 0 && rs.log_ring_bytes == WAL_MIN_RING, "replayed %" PRIu64
		  " bytes, ring %" PRIu64, rs.log_bytes, rs.log_ring_bytes);
	get_str(e, 0, "c", "v");
	bput(b, 0, "mid", 3, v, mid);
	EXPECT(engine_commit(e, b, NULL), -ENOSPC);
	engine_batch_clear(b);
	eclose_ok(e);

	io_fault_set_space_limit(env.m, 0);
	e = eopen_ok(&env, &o);
	TU_ASSERT_EQ(estat(e).log_ring_bytes, RING_LO, "%s", "grown at the open with room");
	bput(b, 0, "mid", 3, v, mid);
	commit_ok(e, b);
	engine_batch_clear(b);
	eclose_ok(e);
	e = eopen_ok(&env, &o);
	size_t vlen;
	uint8_t *got = malloc(mid);
	TU_ASSERT(got != NULL, "%s", "out of memory");
	OK(engine_get(e, 0, "mid", 3, got, mid, &vlen));
	TU_ASSERT_EQ(vlen, mid, "%s", "the value that did not fit before");
	get_str(e, 0, "a", "v");
	eclose_ok(e);
	free(got);
	free(v);
	engine_batch_free(b);
	tu_env_fini(&env);
}
END_TEST

/* ---- suite --------------------------------------------------------------------------- */

static Suite *engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc;

	tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open_create);
	tcase_add_test(tc, test_batches);
	tcase_add_test(tc, test_iterate_bounds);
	tcase_add_test(tc, test_iterate_changes);
	tcase_add_test(tc, test_checkpoint_stat);
	tcase_add_test(tc, test_checkpoint_log_flush);
	tcase_add_test(tc, test_log_only_power_cut);
	tcase_add_test(tc, test_log_only_reboot);
	tcase_add_test(tc, test_sync_every_write);
	tcase_add_test(tc, test_rdonly);
	tcase_add_test(tc, test_failed_engine);
	tcase_add_test(tc, test_efbig);
	tcase_add_test(tc, test_big_batches);
	tcase_add_test(tc, test_values_in_log);
	tcase_add_test(tc, test_put_ref);
	tcase_add_test(tc, test_put_ref_race);
	tcase_add_test(tc, test_no_thread_ring_full);
	tcase_add_test(tc, test_no_thread_two_writers);
	tcase_add_test(tc, test_big_batch_stream);
	tcase_add_test(tc, test_nospc_ring_full);
	tcase_add_test(tc, test_reserve_keeps_ops);
	suite_add_tcase(s, tc);

	tc = tcase_create("ring");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_ring_grows);
	tcase_add_test(tc, test_ring_open);
	tcase_add_test(tc, test_ring_nospc);
	suite_add_tcase(s, tc);

	tc = tcase_create("model");
	tcase_set_timeout(tc, 120); /* per seed */
	tcase_add_loop_test(tc, test_model, 0, MODEL_SEEDS);
	suite_add_tcase(s, tc);

	tc = tcase_create("crash");
	tcase_set_timeout(tc, 300); /* per configuration */
	tcase_add_loop_test(tc, test_crash, 0, CRASH_CONFIGS);
	suite_add_tcase(s, tc);

	tc = tcase_create("kill");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_kill);
	suite_add_tcase(s, tc);

	tc = tcase_create("groupcommit");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_groupcommit);
	suite_add_tcase(s, tc);

	tc = tcase_create("backpressure");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_backpressure);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(engine_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
