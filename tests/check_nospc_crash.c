/*
 * tests/check_nospc_crash.c — Check suite "nospc_crash": power cuts while the engine is short
 * of space (store/engine.c INV-E3), on io_fault's space limit (store/io_fault.h "Space").
 *
 * INV-E3 says: when a checkpoint's transaction fails with -ENOSPC the engine is not failed but
 * "short of space": the frozen overlay stays, the log keeps it, commits that add data get
 * -ENOSPC, a batch with a delete and at most 4 KiB of values is still logged, and the next
 * checkpoint folds the active overlay into the frozen one and commits twice — the overlay
 * without its LSN (the meta page keeps the old one: a crash replays the log onto a tree that
 * already holds it, which is safe because every record sets whole values), then the LSN
 * alone.  This suite attacks that with power cuts.
 *
 * The workload, through store/engine.h (no checkpoint thread: checkpoints only through
 * engine_checkpoint, so the run is deterministic), on tree 0 with a reference model:
 *   1. fill: small values (0.5..6 KiB) under keys "k00".."k29", synced and checkpointed;
 *   2. the disk is limited to what the files use plus NS_SLACK bytes
 *      (io_fault_set_space_limit); then, NS_OPS times, one of:
 *        - while not short of space: puts of large values (8..48 KiB, keys "b.."), a sync, or
 *          a checkpoint, which either succeeds or fails with -ENOSPC (then short of space);
 *        - while short of space: a put without delete (must get -ENOSPC, nothing changes), a
 *          delete plus a put of more than 4 KiB (-ENOSPC), deletes (of large values, or of
 *          small checkpointed ones) with or without a small put (logged), a sync, or a
 *          checkpoint — the retry: its fold and double commit, or -ENOSPC again.
 *      The model records a state per logged batch; a sync or a successful checkpoint makes the
 *      current state durable.
 * Cuts: a sync hook (io_fault_set_sync_hook) takes, at every sync point of phase 2, the images
 * a power cut would leave there (io_fault_cut_copy: keep all, drop all, NS_RANDOM random ones
 * that tear writes at 512-byte sectors; equal images once).  Each is checked:
 *   a. the data file as the cut left it passes store_verify;
 *   b. with the disk still full (the same limit), engine_open recovers, and tree 0 equals the
 *      model at the last acknowledged sync or checkpoint, or a later state up to the call in
 *      flight (every batch whole or absent, in order);
 *   c. a checkpoint on the full disk returns 0 or -ENOSPC, and the state is unchanged;
 *   d. the limit lifted, a checkpoint succeeds, a put and a sync succeed, close returns 0;
 *   e. reopened, the state is (b)'s plus the put, and store_verify is clean.
 * The suite requires, per seed, that the engine went short of space, that some retry
 * succeeded, and that cuts fell inside successful retries at every one of their sync points
 * (so the double commit's both commits are cut).
 *
 * Cost (CPU time): plain build 4 seeds, ~300 sync points, ~800 cuts, ~3 s; ASan+UBSan build
 * 2 seeds, ~460 cuts, ~8 s.  Each seed prints its cuts, how often the engine ran short of
 * space, the retries that succeeded and the cuts that fell in them; main prints the total.
 * Also here ("iofault"): io_fault's space limit, cut copies and sync hook, which the cuts
 * rely on.
 * Replay: CK_RUN_CASE=nospc KVFS_SEED=N [KVFS_CUT=k] ./check_nospc_crash (KVFS_CUT: only the
 * cuts at sync point k of phase 2; KVFS_TEST_VERBOSE=1 prints a line per cut).
 *
 * What it does not test: the namespace layer (check_ns_crash.c), a full disk through a mount
 * (tests/fs_fulldisk.sh), a log file system that fills (the ring is preallocated), the
 * checkpoint thread's retries (timing: check_engine.c).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/engine.h"
#include "store/io_fault.h"
#include "store/store.h"
#include "tests/testutil.h"
#include "tests/testutil_fault.h"

#if defined(__SANITIZE_ADDRESS__)
#define NS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NS_SANITIZED 1
#endif
#endif
#ifndef NS_SANITIZED
#define NS_SANITIZED 0
#endif

#define NS_SEEDS  (NS_SANITIZED ? 2 : 4)
#define NS_OPS    160           /* operations of phase 2 */
#define NS_SMALL  30            /* keys of the fill */
#define NS_BIG    40            /* large-value keys */
#define NS_SLACK  (48u << 10)   /* free bytes left on the disk at phase 2 */
#define NS_RING   (1u << 20)
#define NS_RANDOM 1             /* random cut images per sync point, besides keep and drop */
#define NS_VARIANTS (2 + NS_RANDOM)
#define NS_NOSPC_PUT (2u * 4096u + 512u) /* engine.c NOSPC_PUT_BYTES */

static char g_msg[4096];
static uint8_t g_val[64u << 10];

static bool verbose(void)
{
	return getenv("KVFS_TEST_VERBOSE") != NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- a run ------------------------------------------------------------------------------ */

/* A cut image taken at a sync point, checked between two calls (cut_drain). */
struct cut {
	struct io_fault *m;
	uint64_t k;             /* sync point of phase 2 */
	int variant;
	size_t durable, last;   /* states: acknowledged, in flight */
	const char *in;         /* the call in flight */
	int ck_sync;            /* in a retry checkpoint: its n-th sync (1-based), else 0 */
};

struct run {
	uint64_t seed;
	struct tu_env env;
	struct engine *e;
	struct tu_rng rng;
	struct tu_model cur;    /* the model now */
	struct tu_model *st;    /* st[i]: the model after the i-th logged batch */
	size_t nst, cap;
	size_t durable;
	bool nospc;             /* the engine is short of space (as its returns said) */
	uint64_t limit;
	/* the hook */
	bool hook_on;
	uint64_t only_k, sync_no;
	const char *in;
	bool in_retry;          /* inside engine_checkpoint while short of space */
	int retry_syncs;        /* syncs so far in that checkpoint */
	struct cut *q;
	size_t nq, qcap;
	/* figures */
	uint64_t cuts, dups, at_sync, later, retry_cuts, retries_ok, nospc_entered;
	uint64_t retry_cut_at[8]; /* cuts in successful retries, by their sync number */
	uint64_t pending_retry_cut_at[8];
	int max_retry_syncs;
};

static void push_state(struct run *r)
{
	if (r->nst == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->st = realloc(r->st, r->cap * sizeof(*r->st));
		TU_ASSERT(r->st != NULL, "%s", "realloc");
	}
	memset(&r->st[r->nst], 0, sizeof(r->st[r->nst]));
	tu_model_copy(&r->st[r->nst++], &r->cur);
}

/* Even seeds: checkpoints in pieces of 8 pages, so that pieces meet ENOSPC midway, and the
 * retry's double commit.  Odd seeds: no pieces, so that the retry's first commit, which keeps
 * the old LSN, is the only one to flush the log before it (engine.c wal_rule): without that
 * flush, a cut after it keeps deletions whose records the log lost. */
static void opts(struct engine_options *o, struct tu_env *env, unsigned flags, uint64_t seed)
{
	memset(o, 0, sizeof(*o));
	o->flags = flags;
	o->io = tu_env_io(env);
	o->no_checkpoint_thread = true;
	o->log_ring_bytes = NS_RING;
	o->ckpt_piece_pages = seed & 1 ? 1u << 20 : 8;
	o->log = tu_log_cb;
}

/* Tree 0 of `e` into `out`.  0 or -errno. */
static int load(struct engine *e, struct tu_model *out)
{
	struct engine_iter *it;
	uint8_t key[STORE_MAX_KEY];
	size_t klen, vlen;
	int rc = engine_iter_new(e, 0, NULL, 0, NULL, 0, &it);

	tu_model_free(out);
	if (rc < 0)
		return rc;
	while ((rc = engine_iter_next(it, key, sizeof(key), &klen, g_val, sizeof(g_val),
				      &vlen)) == 0) {
		if (vlen > sizeof(g_val) || klen > sizeof(key)) {
			rc = -EOVERFLOW;
			break;
		}
		tu_model_put(out, key, klen, g_val, vlen);
	}
	engine_iter_free(it);
	return rc == -ENOENT ? 0 : rc;
}

static int mode_of(int v)
{
	return v == 0 ? IO_CUT_KEEP_ALL : v == 1 ? IO_CUT_DROP_ALL : IO_CUT_RANDOM;
}

static const char *mode_name(int v)
{
	return v == 0 ? "keep" : v == 1 ? "drop" : "random(tear)";
}

/* io_fault sync hook: the images of a cut before this sync, in each variant. */
static void hook(void *ctx, struct io_fault *m, const char *path)
{
	struct run *r = ctx;
	uint64_t k = ++r->sync_no, seeds[NS_VARIANTS];
	enum io_fault_cut_mode modes[NS_VARIANTS];
	struct io_fault *cms[NS_VARIANTS];

	(void)path;
	if (r->in_retry)
		r->retry_syncs++;
	if (r->only_k && k != r->only_k)
		return;
	for (int v = 0; v < NS_VARIANTS; v++) {
		modes[v] = mode_of(v);
		seeds[v] = r->seed * 7919u + k * 31u + (uint64_t)v;
	}
	tf_distinct_cuts(m, NS_VARIANTS, modes, seeds, cms, &r->dups);
	for (int v = 0; v < NS_VARIANTS; v++) {
		struct io_fault *cm = cms[v];
		if (!cm)
			continue;
		if (r->nq == r->qcap) {
			r->qcap = r->qcap ? r->qcap * 2 : 16;
			r->q = realloc(r->q, r->qcap * sizeof(*r->q));
			TU_ASSERT(r->q != NULL, "%s", "realloc");
		}
		r->q[r->nq++] = (struct cut){ .m = cm, .k = k, .variant = v,
					      .durable = r->durable, .last = r->nst - 1,
					      .in = r->in,
					      .ck_sync = r->in_retry ? r->retry_syncs : 0 };
	}
}

/* The state recovered must be one of st[durable..last]; returns its index. */
static size_t match_state(struct run *r, const struct tu_model *got, const struct cut *c,
			  const char *ctx)
{
	for (size_t i = c->durable; i <= c->last; i++)
		if (tu_model_cmp(got, &r->st[i], g_msg, sizeof(g_msg)) == 0)
			return i;
	tu_model_cmp(got, &r->st[c->durable], g_msg, sizeof(g_msg));
	size_t older = SIZE_MAX;
	char m2[sizeof(g_msg)];
	for (size_t i = 0; i < c->durable && older == SIZE_MAX; i++)
		if (tu_model_cmp(got, &r->st[i], m2, sizeof(m2)) == 0)
			older = i;
	tu_fail(__FILE__, __LINE__, "%s: the recovered tree is none of states %zu (durable) .. "
		"%zu (in flight)%s; against state %zu: %s", ctx, c->durable, c->last,
		older == SIZE_MAX ? "" : " (it is an older state)", c->durable, g_msg);
}

/* Checks a..e on one cut image (see the file comment). */
static void check_cut(struct run *r, struct cut *c)
{
	struct tu_env env = r->env;
	struct engine_options o;
	struct engine *e;
	struct store *st;
	struct tu_model got = { 0 }, again = { 0 };
	char ctx[320], log[2048];
	int rc;

	env.m = c->m;
	snprintf(ctx, sizeof(ctx), "seed %" PRIu64 ", cut at sync %" PRIu64 " of the full-disk "
		 "phase (%s, in %s%s%d; replay: KVFS_SEED=%" PRIu64 " KVFS_CUT=%" PRIu64 ")",
		 r->seed, c->k, mode_name(c->variant), c->in,
		 c->ck_sync ? ", retry checkpoint sync " : "", c->ck_sync, r->seed, c->k);
	tu_log_clear();
	/* a. */
	rc = tu_open(&env, 0, &st);
	TU_ASSERT(rc == 0, "%s: store_open = %d", ctx, rc);
	rc = tu_verify(st, g_msg, sizeof(g_msg));
	TU_ASSERT(rc == 0, "%s: the data file after the cut: store_verify = %d: %s", ctx, rc,
		  g_msg);
	tu_close_ok(st);
	/* b. the disk is still full */
	io_fault_set_space_limit(env.m, r->limit);
	opts(&o, &env, 0, r->seed);
	rc = engine_open(env.path, &o, &e);
	TU_ASSERT(rc == 0, "%s: engine_open on the full disk = %d; log: %s", ctx, rc,
		  tu_log_text(log, sizeof(log)));
	rc = load(e, &got);
	TU_ASSERT(rc == 0, "%s: reading tree 0 = %d", ctx, rc);
	size_t i = match_state(r, &got, c, ctx);
	r->cuts++;
	if (i == c->durable)
		r->at_sync++;
	else
		r->later++;
	if (verbose())
		fprintf(stderr, "nospc_crash: %s: durable %zu, in flight %zu, recovered %zu\n", ctx,
			c->durable, c->last, i);
	/* c. */
	rc = engine_checkpoint(e);
	TU_ASSERT(rc == 0 || rc == -ENOSPC, "%s: a checkpoint on the full disk = %d", ctx, rc);
	rc = load(e, &again);
	TU_ASSERT(rc == 0 && tu_model_cmp(&again, &got, g_msg, sizeof(g_msg)) == 0,
		  "%s: after a checkpoint on the full disk (%d): %s", ctx, rc, g_msg);
	/* d. room again */
	io_fault_set_space_limit(env.m, 0);
	rc = engine_checkpoint(e);
	TU_ASSERT(rc == 0, "%s: a checkpoint with room = %d", ctx, rc);
	struct engine_batch *b = engine_batch_new();
	TU_ASSERT(b != NULL, "%s", "engine_batch_new");
	rc = engine_batch_put(b, 0, "after", 5, "recovery", 8);
	TU_ASSERT(rc == 0, "%s", "engine_batch_put");
	rc = engine_commit(e, b, NULL);
	engine_batch_free(b);
	TU_ASSERT(rc == 0, "%s: a put with room = %d", ctx, rc);
	rc = engine_sync(e, 0);
	TU_ASSERT(rc == 0, "%s: engine_sync = %d", ctx, rc);
	rc = engine_close(e);
	TU_ASSERT(rc == 0, "%s: engine_close = %d", ctx, rc);
	/* e. */
	tu_model_put(&got, "after", 5, "recovery", 8);
	rc = engine_open(env.path, &o, &e);
	TU_ASSERT(rc == 0, "%s: engine_open after the put = %d", ctx, rc);
	rc = load(e, &again);
	TU_ASSERT(rc == 0 && tu_model_cmp(&again, &got, g_msg, sizeof(g_msg)) == 0,
		  "%s: after the put and a reopen (%d): %s", ctx, rc, g_msg);
	rc = tu_verify(engine_store(e), g_msg, sizeof(g_msg));
	TU_ASSERT(rc == 0, "%s: store_verify at the end = %d: %s", ctx, rc, g_msg);
	TU_ASSERT(engine_close(e) == 0, "%s: the last engine_close", ctx);
	tu_model_free(&got);
	tu_model_free(&again);
	if (c->ck_sync)
		r->retry_cuts++;
}

static void drain(struct run *r)
{
	for (size_t i = 0; i < r->nq; i++) {
		check_cut(r, &r->q[i]);
		if (r->q[i].ck_sync > 0 && r->q[i].ck_sync <= 8)
			r->pending_retry_cut_at[r->q[i].ck_sync - 1]++;
		io_fault_free(r->q[i].m);
	}
	r->nq = 0;
}

/* ---- the workload ----------------------------------------------------------------------- */

static void key_of(char *k, bool big, unsigned i)
{
	snprintf(k, 8, "%c%02u", big ? 'b' : 'k', i);
}

/* Commit `b`; expect `want`; a logged batch is a new state (the model already applied by
 * the caller to r->cur when want is 0). */
static void commit(struct run *r, struct engine_batch *b, int want, const char *what)
{
	uint64_t lsn;

	r->in = what;
	int rc = engine_commit(r->e, b, &lsn);
	TU_ASSERT(rc == want, "seed %" PRIu64 ": %s = %d, want %d (short of space: %d)",
		  r->seed, what, rc, want, r->nospc);
	drain(r);
}

static void do_sync(struct run *r)
{
	r->in = "engine_sync";
	int rc = engine_sync(r->e, 0);
	TU_ASSERT(rc == 0, "seed %" PRIu64 ": engine_sync = %d", r->seed, rc);
	r->durable = r->nst - 1;
	drain(r);
}

static void do_checkpoint(struct run *r)
{
	bool retry = r->nospc;

	r->in = retry ? "engine_checkpoint (a retry while short of space)" : "engine_checkpoint";
	r->in_retry = retry;
	r->retry_syncs = 0;
	memset(r->pending_retry_cut_at, 0, sizeof(r->pending_retry_cut_at));
	int rc = engine_checkpoint(r->e);
	r->in_retry = false;
	TU_ASSERT(rc == 0 || rc == -ENOSPC, "seed %" PRIu64 ": %s = %d", r->seed, r->in, rc);
	drain(r);
	if (rc == 0) {
		r->durable = r->nst - 1; /* the tree holds it all, durably */
		if (retry) {
			r->retries_ok++;
			for (int i = 0; i < 8; i++)
				r->retry_cut_at[i] += r->pending_retry_cut_at[i];
			if (r->retry_syncs > r->max_retry_syncs)
				r->max_retry_syncs = r->retry_syncs;
		}
		r->nospc = false;
	} else {
		if (!r->nospc)
			r->nospc_entered++;
		r->nospc = true;
	}
}

/* A batch of puts (and deletes).  `ndel` deletes of present keys, then `nput` puts of values
 * of `lo`..`hi` bytes under small (big=false) or large keys; applies it to the model when it
 * must be logged. */
static void batch(struct run *r, unsigned ndel, unsigned nput, bool big, size_t lo, size_t hi,
		  const char *what)
{
	struct engine_batch *b = engine_batch_new();
	struct tu_model next = { 0 };
	size_t put_bytes = 0;
	unsigned dels = 0;
	char k[8];

	TU_ASSERT(b != NULL, "%s", "engine_batch_new");
	tu_model_copy(&next, &r->cur);
	for (unsigned i = 0; i < ndel && next.n > 0; i++) {
		/* large values two times in three (what frees room), else any key */
		size_t nbig = 0, j;
		for (j = 0; j < next.n; j++)
			nbig += next.ents[j].key[0] == 'b';
		if (nbig && tu_rng_chance(&r->rng, 2, 3)) {
			size_t want = tu_rng_below(&r->rng, nbig);
			for (j = 0; next.ents[j].key[0] != 'b' || want--; j++)
				;
		} else {
			j = tu_rng_below(&r->rng, next.n);
		}
		char dk[4];
		memcpy(dk, next.ents[j].key, 3);
		TU_ASSERT(engine_batch_del(b, 0, dk, 3) == 0, "%s", "engine_batch_del");
		tu_model_del(&next, dk, 3);
		dels++;
	}
	for (unsigned i = 0; i < nput; i++) {
		size_t len = (size_t)tu_rng_range(&r->rng, lo, hi);
		key_of(k, big, (unsigned)tu_rng_below(&r->rng, big ? NS_BIG : NS_SMALL));
		tu_rng_bytes(&r->rng, g_val, len);
		TU_ASSERT(engine_batch_put(b, 0, k, 3, g_val, len) == 0, "%s", "engine_batch_put");
		tu_model_put(&next, k, 3, g_val, len);
		put_bytes += len;
	}
	int want = 0;
	if (r->nospc && (dels == 0 || put_bytes > NS_NOSPC_PUT))
		want = -ENOSPC; /* INV-E3: refused, nothing logged */
	if (want == 0) {
		tu_model_copy(&r->cur, &next);
		push_state(r);
	}
	commit(r, b, want, what);
	engine_batch_free(b);
	tu_model_free(&next);
}

static void workload(struct run *r)
{
	struct engine_options o;
	int rc;

	/* 1. fill, with room */
	opts(&o, &r->env, STORE_CREATE, r->seed);
	rc = engine_open(r->env.path, &o, &r->e);
	TU_ASSERT(rc == 0, "engine_open(create) = %d", rc);
	push_state(r); /* st[0]: empty */
	for (unsigned i = 0; i < NS_SMALL; i += 3)
		batch(r, 0, 3, false, 500, 6000, "fill");
	do_sync(r);
	TU_ASSERT(engine_checkpoint(r->e) == 0, "%s", "the fill's checkpoint");
	r->durable = r->nst - 1;
	/* 2. the disk full but for NS_SLACK bytes; cut at every sync point from here */
	r->limit = io_fault_space_used(r->env.m) + NS_SLACK;
	io_fault_set_space_limit(r->env.m, r->limit);
	r->hook_on = true;
	io_fault_set_sync_hook(r->env.m, hook, r);
	for (unsigned op = 0; op < NS_OPS; op++) {
		uint64_t x = tu_rng_below(&r->rng, 100);
		if (!r->nospc) {
			if (x < 55)
				batch(r, 0, 1 + (unsigned)tu_rng_below(&r->rng, 2), true, 8u << 10,
				      48u << 10, "put of large values");
			else if (x < 70)
				do_sync(r);
			else
				do_checkpoint(r);
			continue;
		}
		if (x < 10)
			batch(r, 0, 1, tu_rng_chance(&r->rng, 1, 2), 1, 2000,
			      "put without a delete (short of space)");
		else if (x < 18)
			batch(r, 1, 1, false, NS_NOSPC_PUT + 1, 9000,
			      "delete and a large put (short of space)");
		else if (x < 45)
			batch(r, 1 + (unsigned)tu_rng_below(&r->rng, 2), 0, false, 0, 0,
			      "delete (short of space)");
		else if (x < 60)
			batch(r, 1, 1, false, 1, NS_NOSPC_PUT, "delete and a small put "
			      "(short of space)");
		else if (x < 78)
			do_sync(r);
		else
			do_checkpoint(r);
	}
	io_fault_set_sync_hook(r->env.m, NULL, NULL);
	r->hook_on = false;
	/* the end: room again; everything checkpoints and verifies */
	io_fault_set_space_limit(r->env.m, 0);
	rc = engine_checkpoint(r->e);
	TU_ASSERT(rc == 0, "seed %" PRIu64 ": the last checkpoint with room = %d", r->seed, rc);
	struct tu_model got = { 0 };
	TU_ASSERT(load(r->e, &got) == 0 && tu_model_cmp(&got, &r->cur, g_msg, sizeof(g_msg)) == 0,
		  "seed %" PRIu64 ": the engine's tree is not the model's: %s", r->seed, g_msg);
	tu_model_free(&got);
	TU_ASSERT(tu_verify(engine_store(r->e), g_msg, sizeof(g_msg)) == 0, "seed %" PRIu64
		  ": store_verify at the end: %s", r->seed, g_msg);
	TU_ASSERT(engine_close(r->e) == 0, "%s", "engine_close");
	r->e = NULL;
}

/* Where each seed (a forked child) reports its cuts for main's total. */
static FILE *g_counts;

START_TEST(test_nospc)
{
	uint64_t seed;
	bool given = tu_seed_given("KVFS_SEED", &seed);
	struct run *r;
	double t0 = now_s();

	if (given && _i != 0)
		return;
	if (!given)
		seed = 7000 + (uint64_t)_i;
	r = calloc(1, sizeof(*r));
	TU_ASSERT(r != NULL, "%s", "calloc");
	r->seed = seed;
	r->only_k = tu_seed("KVFS_CUT", 0);
	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r->rng, seed);
	tu_env_fault(&r->env, seed);
	workload(r);
	fprintf(stderr, "nospc_crash: seed %" PRIu64 ": %" PRIu64 " sync points on the full disk, "
		"%" PRIu64 " cuts (%" PRIu64 " equal images skipped) in %.1f s: recovered the "
		"synced state %" PRIu64 ", a later one %" PRIu64 "; short of space %" PRIu64
		" times, %" PRIu64 " retries succeeded (up to %d syncs each), %" PRIu64 " cuts "
		"in retries, by sync: %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seed,
		r->sync_no, r->cuts, r->dups, now_s() - t0, r->at_sync, r->later,
		r->nospc_entered, r->retries_ok, r->max_retry_syncs, r->retry_cuts,
		r->retry_cut_at[0], r->retry_cut_at[1], r->retry_cut_at[2], r->retry_cut_at[3]);
	if (!r->only_k) {
		TU_ASSERT(r->nospc_entered > 0, "seed %" PRIu64 ": the engine never ran short of "
			  "space", seed);
		TU_ASSERT(r->retries_ok > 0, "seed %" PRIu64 ": no retry succeeded", seed);
		/* the double commit: a successful retry syncs at least twice (each commit's
		 * meta page), and every one of its sync points was cut */
		TU_ASSERT(r->max_retry_syncs >= 2, "seed %" PRIu64 ": a successful retry made %d "
			  "syncs", seed, r->max_retry_syncs);
		for (int i = 0; i < r->max_retry_syncs && i < 8; i++)
			TU_ASSERT(r->retry_cut_at[i] > 0, "seed %" PRIu64 ": no cut at sync %d of a "
				  "successful retry", seed, i + 1);
	}
	if (g_counts) {
		fprintf(g_counts, "%" PRIu64 " %" PRIu64 "\n", r->sync_no, r->cuts);
		fflush(g_counts);
	}
	for (size_t i = 0; i < r->nst; i++)
		tu_model_free(&r->st[i]);
	free(r->st);
	free(r->q);
	tu_model_free(&r->cur);
	tu_env_fini(&r->env);
	free(r);
	tu_seed_end();
}
END_TEST

/* ---- io_fault: the space limit and cut copies, which the cuts above rely on ----------- */

static struct io_file *iof_open(struct io_fault *m, const char *path)
{
	struct io_file *f;
	int rc = io_fault_env(m)->open(io_fault_env(m), path, IO_OPEN_CREATE, 0644, &f);

	TU_ASSERT(rc == 0, "open %s = %d", path, rc);
	return f;
}

/* INV-7 of io_fault.c: growth past the limit is refused (a pwrite keeps the prefix that
 * fits), writes inside a file and truncates are not. */
START_TEST(test_space_limit)
{
	struct io_fault *m = io_fault_new(1);
	struct io_file *a = iof_open(m, "a"), *b = iof_open(m, "b");
	uint64_t size;

	memset(g_val, 0xab, 8192);
	ck_assert_int_eq(io_pwrite(a, g_val, 4096, 0), 4096);
	ck_assert_int_eq(io_allocate(b, 0, 4096), 0);
	ck_assert_uint_eq(io_fault_space_used(m), 8192);
	io_fault_set_space_limit(m, 10000);
	/* 1808 bytes fit: the write keeps them and fails */
	ck_assert_int_eq(io_pwrite(a, g_val, 4096, 4096), -ENOSPC);
	ck_assert_int_eq(io_size(a, &size), 0);
	ck_assert_uint_eq(size, 4096 + 1808);
	ck_assert_int_eq(io_allocate(b, 4096, 1), -ENOSPC);
	ck_assert_int_eq(io_size(b, &size), 0);
	ck_assert_uint_eq(size, 4096);
	/* inside the files: no space needed */
	ck_assert_int_eq(io_pwrite(b, g_val, 4096, 0), 4096);
	ck_assert_int_eq(io_pwrite(a, g_val, 100, 5000), 100);
	/* a truncate frees, and growth fits again */
	ck_assert_int_eq(io_truncate(a, 1000), 0);
	ck_assert_int_eq(io_allocate(b, 4096, 4000), 0);
	ck_assert_uint_eq(io_fault_space_used(m), 1000 + 8096);
	ck_assert_int_eq(io_sync(a), 0);
	ck_assert_int_eq(io_sync(b), 0);
	/* lifted */
	io_fault_set_space_limit(m, 0);
	ck_assert_int_eq(io_pwrite(a, g_val, 8192, 1 << 20), 8192);
	io_close(a);
	io_close(b);
	io_fault_free(m);
}
END_TEST

/* Pending operations on two files of `m` (the same on every call). */
static void iof_pending(struct io_fault *m)
{
	struct io_file *a = iof_open(m, "a"), *b = iof_open(m, "b");

	for (unsigned i = 0; i < 8192; i++)
		g_val[i] = (uint8_t)(i * 7 + 1);
	ck_assert_int_eq(io_pwrite(a, g_val, 3000, 0), 3000);
	ck_assert_int_eq(io_sync(a), 0);
	ck_assert_int_eq(io_pwrite(a, g_val + 5, 5000, 700), 5000);
	ck_assert_int_eq(io_truncate(a, 4000), 0);
	ck_assert_int_eq(io_pwrite(a, g_val + 9, 2000, 3900), 2000);
	ck_assert_int_eq(io_allocate(b, 0, 1024), 0);
	ck_assert_int_eq(io_pwrite(b, g_val, 8192, 512), 8192);
	io_close(a);
	io_close(b);
}

static bool iof_same(struct io_fault *x, struct io_fault *y, const char *path)
{
	int64_t n = io_fault_file_size(x, path);
	static uint8_t bx[16384], by[16384];

	if (n < 0 || n != io_fault_file_size(y, path) || n > (int64_t)sizeof(bx))
		return false;
	return io_fault_peek(x, path, 0, bx, (size_t)n) == 0 &&
	       io_fault_peek(y, path, 0, by, (size_t)n) == 0 && memcmp(bx, by, (size_t)n) == 0;
}

/* A cut copy with seed S is power_cut + reboot on a machine seeded S; the source is left as
 * it was; equal signatures mean equal images. */
START_TEST(test_cut_copy)
{
	for (uint64_t seed = 1; seed <= 40; seed++) {
		for (int mode = 0; mode < 3; mode++) {
			struct io_fault *src = io_fault_new(999), *ref = io_fault_new(seed);
			uint64_t sig, sig2;

			iof_pending(src);
			iof_pending(ref);
			struct io_fault *c = io_fault_cut_copy(src, mode, seed, &sig);
			struct io_fault *c2 = io_fault_cut_copy(src, mode, seed, &sig2);
			ck_assert_ptr_nonnull(c);
			ck_assert_ptr_nonnull(c2);
			ck_assert_uint_eq(sig, sig2);
			io_fault_set_cut_mode(ref, mode);
			io_fault_power_cut(ref);
			struct io_fault *rb = io_fault_reboot(ref, 5);
			ck_assert(iof_same(c, rb, "a") && iof_same(c, rb, "b"));
			ck_assert(iof_same(c, c2, "a") && iof_same(c, c2, "b"));
			/* the source: alive, its pending operations still pending */
			ck_assert(!io_fault_dead(src));
			ck_assert_int_eq(io_fault_file_size(src, "a"), 5900);
			struct io_fault *dropped = io_fault_reboot(src, 5);
			ck_assert_int_eq(io_fault_file_size(dropped, "a"), 3000);
			io_fault_free(dropped);
			io_fault_free(rb);
			io_fault_free(c2);
			io_fault_free(c);
			io_fault_free(ref);
			io_fault_free(src);
		}
	}
	/* different choices, different signatures (keep vs drop here) */
	struct io_fault *src = io_fault_new(1);
	uint64_t s1, s2;
	iof_pending(src);
	io_fault_free(io_fault_cut_copy(src, IO_CUT_KEEP_ALL, 1, &s1));
	io_fault_free(io_fault_cut_copy(src, IO_CUT_DROP_ALL, 1, &s2));
	ck_assert_uint_ne(s1, s2);
	io_fault_free(src);
}
END_TEST

struct hook_seen {
	unsigned n;
	char last[32];
};

static void count_hook(void *ctx, struct io_fault *m, const char *path)
{
	struct hook_seen *h = ctx;
	uint64_t sig;

	h->n++;
	snprintf(h->last, sizeof(h->last), "%s", path);
	io_fault_free(io_fault_cut_copy(m, IO_CUT_RANDOM, h->n, &sig)); /* control calls work */
}

START_TEST(test_sync_hook)
{
	struct io_fault *m = io_fault_new(3);
	struct hook_seen h = { 0 };
	struct io_file *a = iof_open(m, "a");

	io_fault_set_sync_hook(m, count_hook, &h);
	ck_assert_int_eq(io_pwrite(a, "x", 1, 0), 1);
	ck_assert_int_eq(io_sync(a), 0);
	ck_assert_int_eq(io_sync(a), 0);
	ck_assert_uint_eq(h.n, 2);
	ck_assert_str_eq(h.last, "a");
	ck_assert_uint_eq(io_fault_syncs(m), 2);
	io_fault_set_sync_hook(m, NULL, NULL);
	ck_assert_int_eq(io_sync(a), 0);
	ck_assert_uint_eq(h.n, 2);
	io_close(a);
	io_fault_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("nospc_crash");
	TCase *tc = tcase_create("nospc");
	TCase *tio = tcase_create("iofault");
	uint64_t syncs = 0, cuts = 0, a, b;
	double t0 = now_s();
	int failed;

	tcase_set_timeout(tc, 300); /* per seed */
	tcase_add_loop_test(tc, test_nospc, 0, NS_SEEDS);
	suite_add_tcase(s, tc);
	tcase_add_test(tio, test_space_limit);
	tcase_add_test(tio, test_cut_copy);
	tcase_add_test(tio, test_sync_hook);
	suite_add_tcase(s, tio);
	/* Every cut allocates and frees images of about a MiB: keep them in the heap, not in
	 * fresh mappings returned at each free (half the system time of a cut, measured). */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	g_counts = tmpfile();
	failed = tu_run_suite(s);
	if (g_counts) {
		rewind(g_counts);
		while (fscanf(g_counts, "%" SCNu64 " %" SCNu64, &a, &b) == 2) {
			syncs += a;
			cuts += b;
		}
		fclose(g_counts);
	}
	printf("nospc_crash: %" PRIu64 " power cuts made and verified on a full disk at %" PRIu64
	       " sync points; %d failed; %.1f s\n", cuts, syncs, failed, now_s() - t0);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
