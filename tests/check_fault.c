/*
 * tests/check_fault.c — I/O error tests for the store (test case "fault").
 *
 * For each operation — create a new store; open one; a write transaction with puts (one of
 * them a large overflow value) and a durable commit; the same with a NOSYNC commit; a
 * delete-heavy durable commit that merges pages; a commit that drops trees and re-creates
 * one; a commit larger than the file (it must grow); store_sync after NOSYNC commits;
 * store_close with NOSYNC commits pending —
 * and each fault kind (EIO, ENOSPC, short write), for N = 1, 2, ... until the operation
 * succeeds: on a fresh copy of a prepared io_fault machine, fail the Nth counted I/O call
 * (io_fault_fail_at) and check that
 *
 *   1. when the fault fired during the operation, the operation returned a negative errno
 *      (-EIO for an EIO fault; -EIO or -ENOSPC otherwise), never success — except that an
 *      ENOSPC may be absorbed (the pager preallocates more than it needs and falls back to
 *      exactly what it needs), and then the store must hold exactly the state after the
 *      operation, live and after both reopenings, as in 4;
 *   2. the store is then failed (DESIGN.md "After a failed write or sync the store is
 *      failed"): a later write transaction (its begin or commit) and store_sync return -EIO,
 *      while read transactions still see the last committed state; store_close with NOSYNC
 *      commits that could not be made durable returns an error;
 *   3. after closing, the store reopens — both on the machine's current images (the page
 *      cache) and on a reboot of it (only what was durable) — store_verify is clean, its
 *      contents equal either the durable state before the operation or the state after it,
 *      and it takes a new durable commit;
 *   4. when the fault did not fire, the operation succeeded and both reopenings hold the state
 *      after it.
 *
 * Leaks are caught by AddressSanitizer in the sanitizer build (every failure path runs).
 *
 * The data is deterministic (seeded by KVFS_SEED, default below); a failure message names the
 * operation, fault kind and N, and the seed is printed, so a run is replayable.
 *
 * Not covered here: power cuts (the crash suite) and corrupt bytes (check_corrupt.c).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/io_fault.h"
#include "store/store.h"
#include "tests/testutil.h"
#include "tests/testutil_fault.h"

#define STORE_FILE "/kvfs-test/store"
#define DEFAULT_SEED 0x6b766673u /* "kvfs" */
#define MAX_N 100000 /* a bound on N: an operation that never succeeds is a bug */
#define BIG_VALUE (64u * 1024 + 100) /* the large overflow value of the commit operation */

static const char *const tree_names[] = { "alpha", "beta", "gamma" };
#define N_TREES (sizeof(tree_names) / sizeof(tree_names[0]))

static uint64_t g_seed;

/* ---- plans: a list of mutations applied both to a model and to the store ---- */

struct mut {
	const char *tree;
	char key[24];
	bool del;
	bool drop; /* drop the whole tree (key unused) */
	size_t vlen;
	uint64_t tag; /* value bytes: tf_value_fill(…, vlen, tag) */
};

struct plan {
	struct mut *v;
	size_t n, cap;
};

static struct mut *plan_add(struct plan *p, const char *tree, unsigned k)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->v = realloc(p->v, p->cap * sizeof(*p->v));
		TU_ASSERT(p->v != NULL, "%s", "out of memory");
	}
	struct mut *m = &p->v[p->n++];
	memset(m, 0, sizeof(*m));
	m->tree = tree;
	snprintf(m->key, sizeof(m->key), "k%06u", k);
	return m;
}

static void plan_put(struct plan *p, const char *tree, unsigned k, size_t vlen, uint64_t tag)
{
	struct mut *m = plan_add(p, tree, k);

	m->vlen = vlen;
	m->tag = tag;
}

static void plan_del(struct plan *p, const char *tree, unsigned k)
{
	plan_add(p, tree, k)->del = true;
}

static void plan_drop(struct plan *p, const char *tree)
{
	plan_add(p, tree, 0)->drop = true;
}

static void plan_free(struct plan *p)
{
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static void plan_model(const struct plan *p, struct tf_state *s)
{
	uint8_t *buf = NULL;
	size_t cap = 0;

	for (size_t i = 0; i < p->n; i++) {
		const struct mut *m = &p->v[i];
		if (m->drop) {
			size_t ti = tf_state_tree(s, m->tree);
			tu_model_clear(&s->m[ti]);
			s->present[ti] = false;
			continue;
		}
		if (m->del) {
			tf_state_del(s, m->tree, m->key, strlen(m->key));
			continue;
		}
		if (m->vlen > cap) {
			cap = m->vlen;
			buf = realloc(buf, cap);
			TU_ASSERT(buf != NULL, "%s", "out of memory");
		}
		tf_value_fill(buf, m->vlen, m->tag);
		tf_state_put(s, m->tree, m->key, strlen(m->key), buf, m->vlen);
	}
	free(buf);
}

/* Apply the plan in one write transaction and commit it with `flags`.  Returns the first
 * error (the transaction then aborted) or the commit's result. */
static int plan_store(const struct plan *p, struct store *st, unsigned flags)
{
	struct store_txn *txn = NULL;
	struct store_tree *t[N_TREES] = { 0 };
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc = store_txn_begin(st, 0, &txn);

	if (rc)
		return rc;
	for (size_t i = 0; i < p->n && rc == 0; i++) {
		const struct mut *m = &p->v[i];
		size_t ti = 0;
		while (strcmp(tree_names[ti], m->tree) != 0)
			ti++;
		if (m->drop) {
			rc = store_tree_drop(txn, m->tree, strlen(m->tree));
			t[ti] = NULL;
			continue;
		}
		if (!t[ti])
			rc = store_tree_open(txn, m->tree, strlen(m->tree), true, &t[ti]);
		if (rc)
			break;
		if (m->del) {
			rc = store_del(t[ti], m->key, strlen(m->key));
			continue;
		}
		if (m->vlen > cap) {
			cap = m->vlen;
			buf = realloc(buf, cap);
			TU_ASSERT(buf != NULL, "%s", "out of memory");
		}
		tf_value_fill(buf, m->vlen, m->tag);
		rc = store_put(t[ti], m->key, strlen(m->key), buf, m->vlen);
	}
	free(buf);
	if (rc) {
		store_txn_abort(txn);
		return rc;
	}
	return store_txn_commit(txn, flags);
}

/* ---- the operations ---- */

enum op {
	OP_CREATE, OP_OPEN, OP_COMMIT, OP_NOSYNC, OP_MERGE, OP_DROP, OP_GROW, OP_SYNC, OP_CLOSE
};

static const char *const op_names[] = {
	[OP_CREATE] = "create", [OP_OPEN] = "open",   [OP_COMMIT] = "commit",
	[OP_NOSYNC] = "nosync-commit", [OP_MERGE] = "merge", [OP_DROP] = "drop",
	[OP_GROW] = "grow",
	[OP_SYNC] = "sync",     [OP_CLOSE] = "close",
};

static const char *kind_name(enum io_fault_kind k)
{
	return k == IO_FAULT_EIO ? "EIO" : k == IO_FAULT_ENOSPC ? "ENOSPC" : "SHORT";
}

/* A prepared machine and everything a trial expects of it. */
struct fixture {
	enum op op;
	struct io_fault *base;    /* stores closed: the durable images are the whole truth */
	struct plan setup[3];     /* NOSYNC commits made before the fault is armed */
	size_t n_setup;
	struct plan work;         /* OP_COMMIT / OP_MERGE: the durable commit under test */
	struct tf_state durable;  /* contents of base */
	struct tf_state visible;  /* after the setup commits */
	struct tf_state after;    /* after the operation */
	unsigned trials, fired, absorbed; /* statistics */
};

static int open_on(struct io_fault *m, unsigned flags, struct store **out)
{
	struct store_options o;

	memset(&o, 0, sizeof(o));
	o.flags = flags;
	o.io = io_fault_env(m);
	o.log = tu_log_cb;
	*out = NULL;
	return store_open(STORE_FILE, &o, out);
}

static struct store *open_ok(struct io_fault *m, unsigned flags, const char *what)
{
	struct store *st = NULL;
	char log[2048];
	int rc = open_on(m, flags, &st);

	if (rc || !st)
		tu_fail(__FILE__, __LINE__, "%s: store_open = %d (%s); log: %s", what, rc,
			tf_errname(rc), tu_log_text(log, sizeof(log)));
	return st;
}

static void verify_ok(struct store *st, const char *what)
{
	char msg[4096];
	int rc = tu_verify(st, msg, sizeof(msg));

	if (rc)
		tu_fail(__FILE__, __LINE__, "%s: store_verify = %d (%s): %s", what, rc,
			tf_errname(rc), msg);
}

/* Build the prepared machine: three trees, one of depth >= 2, overflow values, a free list
 * (replaced and deleted keys over several durable commits). */
static void fixture_base(struct fixture *fx, struct tu_rng *r)
{
	struct plan p1 = { 0 }, p2 = { 0 };
	struct store *st;
	int rc;

	fx->base = io_fault_new(g_seed);
	TU_ASSERT(fx->base != NULL, "%s", "io_fault_new");
	tf_state_init(&fx->durable, tree_names, N_TREES);
	st = open_ok(fx->base, STORE_CREATE, "prepare: create");
	for (unsigned k = 0; k < 800; k++)
		plan_put(&p1, "alpha", k, tu_rng_range(r, 40, 200), tu_rng_next(r));
	for (unsigned k = 0; k < 6; k++)
		plan_put(&p1, "beta", k, tu_rng_range(r, 5000, 30000), tu_rng_next(r));
	for (unsigned k = 0; k < 20; k++)
		plan_put(&p1, "gamma", k, tu_rng_range(r, 0, 64), tu_rng_next(r));
	rc = plan_store(&p1, st, 0);
	TU_ASSERT_EQ(rc, 0, "prepare: first commit (%s)", tf_errname(rc));
	for (unsigned k = 0; k < 800; k += 8)
		plan_put(&p2, "alpha", k, tu_rng_range(r, 40, 200), tu_rng_next(r));
	for (unsigned k = 3; k < 800; k += 16)
		plan_del(&p2, "alpha", k);
	plan_put(&p2, "beta", 1, tu_rng_range(r, 5000, 30000), tu_rng_next(r));
	plan_del(&p2, "beta", 2);
	rc = plan_store(&p2, st, 0);
	TU_ASSERT_EQ(rc, 0, "prepare: second commit (%s)", tf_errname(rc));
	plan_model(&p1, &fx->durable);
	plan_model(&p2, &fx->durable);
	tf_state_expect_ok(st, &fx->durable, NULL, "prepare");
	verify_ok(st, "prepare");
	rc = store_close(st);
	TU_ASSERT_EQ(rc, 0, "prepare: store_close (%s)", tf_errname(rc));
	plan_free(&p1);
	plan_free(&p2);
}

static void fixture_init(struct fixture *fx, enum op op)
{
	struct tu_rng r;

	memset(fx, 0, sizeof(*fx));
	fx->op = op;
	tu_rng_init(&r, g_seed ^ (uint64_t)op << 56);
	tu_seed_begin("KVFS_SEED", g_seed);
	tu_log_clear();
	if (op == OP_CREATE) {
		fx->base = io_fault_new(g_seed);
		TU_ASSERT(fx->base != NULL, "%s", "io_fault_new");
		tf_state_init(&fx->durable, tree_names, N_TREES);
	} else {
		fixture_base(fx, &r);
	}
	tf_state_copy(&fx->visible, &fx->durable);
	if (op == OP_SYNC || op == OP_CLOSE) {
		/* Replace, delete and add across three NOSYNC commits, so that pages the durable
		 * meta page still reaches are freed and must not be reused before a sync. */
		fx->n_setup = 3;
		for (size_t i = 0; i < fx->n_setup; i++) {
			struct plan *p = &fx->setup[i];
			for (unsigned k = (unsigned)i; k < 800; k += 5)
				plan_put(p, "alpha", k, tu_rng_range(&r, 40, 300), tu_rng_next(&r));
			for (unsigned k = 7 + (unsigned)i; k < 800; k += 23) {
				char key[24];
				snprintf(key, sizeof(key), "k%06u", k);
				if (tu_model_get(&fx->visible.m[0], key, strlen(key)))
					plan_del(p, "alpha", k);
			}
			plan_put(p, "beta", (unsigned)i, tu_rng_range(&r, 5000, 20000),
				 tu_rng_next(&r));
			plan_put(p, "gamma", 100 + (unsigned)i, 10, tu_rng_next(&r));
			plan_model(p, &fx->visible);
		}
	}
	tf_state_copy(&fx->after, &fx->visible);
	if (op == OP_COMMIT || op == OP_NOSYNC) {
		for (unsigned k = 1000; k < 1100; k++)
			plan_put(&fx->work, "alpha", k, tu_rng_range(&r, 40, 200), tu_rng_next(&r));
		for (unsigned k = 0; k < 800; k += 16)
			plan_put(&fx->work, "alpha", k, tu_rng_range(&r, 40, 200), tu_rng_next(&r));
		for (unsigned k = 5; k < 800; k += 80)
			plan_del(&fx->work, "alpha", k);
		plan_put(&fx->work, "beta", 50, BIG_VALUE, tu_rng_next(&r));
		plan_put(&fx->work, "gamma", 200, 0, 0);
	} else if (op == OP_MERGE) {
		/* Delete 90% of the depth >= 2 tree: leaves must merge. */
		for (unsigned k = 0; k < 800; k++)
			if (k % 10 != 0 && k % 16 != 3)
				plan_del(&fx->work, "alpha", k);
		plan_del(&fx->work, "beta", 0);
	} else if (op == OP_GROW) {
		/* More than the file holds: the commit must grow (allocate) the file. */
		for (unsigned k = 0; k < 400; k++)
			plan_put(&fx->work, "gamma", 10000 + k, 8192, tu_rng_next(&r));
	} else if (op == OP_DROP) {
		/* Catalog changes: drop a tree with overflow values, drop and re-create one. */
		plan_drop(&fx->work, "beta");
		plan_drop(&fx->work, "gamma");
		for (unsigned k = 0; k < 5; k++)
			plan_put(&fx->work, "gamma", k, 20, tu_rng_next(&r));
	}
	plan_model(&fx->work, &fx->after);
	if (op == OP_CREATE) {
		/* A created store holds no tree; "before" (no store) reads the same when
		 * reopened with STORE_CREATE. */
		TU_ASSERT_EQ(tf_state_cmp(&fx->durable, &fx->after, (char[8]){ 0 }, 8), 0,
			     "%s", "create: states");
	}
}

static void fixture_fini(struct fixture *fx)
{
	io_fault_free(fx->base);
	for (size_t i = 0; i < 3; i++)
		plan_free(&fx->setup[i]);
	plan_free(&fx->work);
	tf_state_free(&fx->durable);
	tf_state_free(&fx->visible);
	tf_state_free(&fx->after);
	tu_seed_end();
}

/* The store failed an operation: later writes and syncs return -EIO; reads see `visible`. */
static void check_failed(struct store *st, const struct fixture *fx, const char *what)
{
	struct store_txn *w = NULL;
	struct store_tree *t = NULL;
	int rc = store_txn_begin(st, 0, &w);

	if (rc == 0) {
		rc = store_tree_open(w, "gamma", 5, true, &t);
		if (rc == 0)
			rc = store_put(t, "after-failure", 13, "x", 1);
		if (rc == 0) {
			rc = store_txn_commit(w, 0);
			TU_ASSERT_EQ(rc, -EIO, "%s: a commit on the failed store returned %s", what,
				     tf_errname(rc));
		} else {
			store_txn_abort(w);
			TU_ASSERT_EQ(rc, -EIO, "%s: a write on the failed store returned %s", what,
				     tf_errname(rc));
		}
	} else {
		TU_ASSERT_EQ(rc, -EIO, "%s: store_txn_begin on the failed store returned %s", what,
			     tf_errname(rc));
	}
	rc = store_sync(st);
	TU_ASSERT_EQ(rc, -EIO, "%s: store_sync on the failed store returned %s", what,
		     tf_errname(rc));
	char sub[300];
	snprintf(sub, sizeof(sub), "%s: read snapshot of the failed store", what);
	tf_state_expect_ok(st, &fx->visible, NULL, sub);
}

/* Reopen on machine `m`: clean, contents `before` or `after`, and it takes a durable commit.
 * Returns 0 when it held `before`, 1 for `after`. */
static int reopen_check(struct io_fault *m, const struct tf_state *before,
			const struct tf_state *after, const char *what)
{
	struct store *st = open_ok(m, 0, what);
	struct plan p = { 0 };
	int which, rc;

	verify_ok(st, what);
	which = tf_state_expect_ok(st, before, after, what);
	plan_put(&p, "gamma", 999999, 33, 42);
	rc = plan_store(&p, st, 0);
	plan_free(&p);
	TU_ASSERT_EQ(rc, 0, "%s: a durable commit after reopening (%s)", what, tf_errname(rc));
	verify_ok(st, what);
	rc = store_close(st);
	TU_ASSERT_EQ(rc, 0, "%s: store_close after reopening (%s)", what, tf_errname(rc));
	return which;
}

/* After a create that failed: the file is either absent or a complete empty store, and
 * opening with STORE_CREATE gives a clean empty store. */
static void reopen_check_create(struct io_fault *m, const struct fixture *fx, const char *what)
{
	struct store *st = NULL;
	char log[2048];
	int rc = open_on(m, 0, &st);

	if (rc == 0) {
		verify_ok(st, what);
		tf_state_expect_ok(st, &fx->after, NULL, what);
		rc = store_close(st);
		TU_ASSERT_EQ(rc, 0, "%s: store_close (%s)", what, tf_errname(rc));
	} else {
		TU_ASSERT(rc == -ENOENT || rc == -EINVAL,
			  "%s: after a failed create, store_open without STORE_CREATE = %s; "
			  "log: %s", what, tf_errname(rc), tu_log_text(log, sizeof(log)));
	}
	rc = open_on(m, STORE_CREATE, &st);
	TU_ASSERT(rc == 0, "%s: after a failed create, store_open(STORE_CREATE) = %s; log: %s",
		  what, tf_errname(rc), tu_log_text(log, sizeof(log)));
	store_close(st);
	reopen_check(m, &fx->after, NULL, what);
}

/* One trial: fail the nth counted call with `kind`.  True when the operation succeeded. */
static bool trial(struct fixture *fx, uint64_t n, enum io_fault_kind kind)
{
	char what[160], sub[200];
	struct io_fault *m = tf_machine_copy(fx->base, g_seed + n);
	struct store *st = NULL;
	uint8_t *img = NULL;
	size_t img_len = 0;
	int rc;

	snprintf(what, sizeof(what), "op %s, fault %s at call %" PRIu64, op_names[fx->op],
		 kind_name(kind), n);
	tu_log_clear();
	fx->trials++;
	if (fx->op != OP_CREATE && fx->op != OP_OPEN) {
		st = open_ok(m, 0, what);
		for (size_t i = 0; i < fx->n_setup; i++) {
			rc = plan_store(&fx->setup[i], st, STORE_COMMIT_NOSYNC);
			TU_ASSERT_EQ(rc, 0, "%s: setup NOSYNC commit %zu (%s)", what, i,
				     tf_errname(rc));
		}
	}
	if (fx->op == OP_OPEN)
		img = tf_image_read(m, STORE_FILE, &img_len);

	io_fault_fail_at(m, n, kind);
	switch (fx->op) {
	case OP_CREATE:
	case OP_OPEN:
		rc = open_on(m, fx->op == OP_CREATE ? STORE_CREATE : 0, &st);
		if (rc)
			st = NULL;
		break;
	case OP_COMMIT:
	case OP_MERGE:
	case OP_DROP:
	case OP_GROW:
		rc = plan_store(&fx->work, st, 0);
		break;
	case OP_NOSYNC:
		rc = plan_store(&fx->work, st, STORE_COMMIT_NOSYNC);
		break;
	case OP_SYNC:
		rc = store_sync(st);
		break;
	case OP_CLOSE:
		rc = store_close(st);
		st = NULL;
		break;
	default:
		rc = -EPROTO;
	}
	bool fired = io_fault_fired(m);
	io_fault_fail_at(m, 0, kind);
	/* A store may absorb ENOSPC from an optional step (preallocating more than it needs,
	 * then taking exactly what it needs); it then must hold exactly the state after. */
	bool absorbed = fired && rc == 0 && kind == IO_FAULT_ENOSPC;

	if (!fired || absorbed) {
		if (absorbed) {
			fx->absorbed++;
			strncat(what, " (ENOSPC absorbed)", sizeof(what) - strlen(what) - 1);
		}
		TU_ASSERT(rc == 0, "%s: the fault did not fire, yet the operation returned %s",
			  what, tf_errname(rc));
		if (img)
			TU_ASSERT(tf_image_equal(m, STORE_FILE, img, img_len),
				  "%s: store_open wrote to the file", what);
		if (st) {
			snprintf(sub, sizeof(sub), "%s: live store after success", what);
			verify_ok(st, sub);
			tf_state_expect_ok(st, &fx->after, NULL, sub);
			rc = store_close(st);
			TU_ASSERT_EQ(rc, 0, "%s: store_close after success (%s)", what,
				     tf_errname(rc));
		}
		struct io_fault *r = tf_machine_copy(m, g_seed + n + 1);
		snprintf(sub, sizeof(sub), "%s (succeeded): reopen on current images", what);
		reopen_check(m, &fx->after, NULL, sub);
		snprintf(sub, sizeof(sub), "%s (succeeded): reopen after reboot", what);
		reopen_check(r, &fx->after, NULL, sub);
		io_fault_free(r);
		io_fault_free(m);
		free(img);
		return !fired;
	}

	fx->fired++;
	TU_ASSERT(rc != 0, "%s: the fault fired but the operation reported success", what);
	TU_ASSERT(tf_is_errno(rc), "%s: returned %d, not a negative errno", what, rc);
	if (kind == IO_FAULT_EIO)
		TU_ASSERT(rc == -EIO, "%s: returned %s, expected EIO", what, tf_errname(rc));
	else
		TU_ASSERT(rc == -EIO || rc == -ENOSPC, "%s: returned %s, expected ENOSPC or EIO",
			  what, tf_errname(rc));
	TU_ASSERT(!(fx->op == OP_CREATE || fx->op == OP_OPEN) || st == NULL,
		  "%s: store_open failed but set *out", what);
	if (st) {
		check_failed(st, fx, what);
		rc = store_close(st);
		TU_ASSERT(rc == 0 || tf_is_errno(rc), "%s: store_close of the failed store = %d",
			  what, rc);
		if (fx->op == OP_SYNC)
			TU_ASSERT(rc != 0,
				  "%s: store_close of a store whose sync failed, with NOSYNC "
				  "commits pending, returned 0",
				  what);
	}
	/* Take the durable images before reopening the current ones (which may write). */
	struct io_fault *r = tf_machine_copy(m, g_seed + n + 1);
	if (fx->op == OP_CREATE) {
		snprintf(sub, sizeof(sub), "%s (failed): reopen on current images", what);
		reopen_check_create(m, fx, sub);
		snprintf(sub, sizeof(sub), "%s (failed): reopen after reboot", what);
		reopen_check_create(r, fx, sub);
	} else {
		snprintf(sub, sizeof(sub), "%s (failed): reopen on current images", what);
		reopen_check(m, &fx->durable, &fx->after, sub);
		snprintf(sub, sizeof(sub), "%s (failed): reopen after reboot", what);
		reopen_check(r, &fx->durable, &fx->after, sub);
	}
	io_fault_free(r);
	io_fault_free(m);
	free(img);
	return false;
}

static void run_op(enum op op)
{
	static const enum io_fault_kind kinds[] = { IO_FAULT_EIO, IO_FAULT_ENOSPC,
						    IO_FAULT_SHORT };
	struct fixture fx;
	uint64_t max_n = 0;

	fixture_init(&fx, op);
	for (size_t k = 0; k < 3; k++) {
		uint64_t n;
		for (n = 1; n <= MAX_N; n++)
			if (trial(&fx, n, kinds[k]))
				break;
		TU_ASSERT(n <= MAX_N, "op %s, fault %s: still failing at N = %d", op_names[op],
			  kind_name(kinds[k]), MAX_N);
		if (n > max_n)
			max_n = n;
	}
	if (getenv("KVFS_TEST_VERBOSE"))
		fprintf(stderr, "fault: op %s: %u trials, %u failed, %u absorbed ENOSPC, "
			"succeeded at N <= %" PRIu64 "\n", op_names[op], fx.trials, fx.fired,
			fx.absorbed, max_n);
	fixture_fini(&fx);
}

START_TEST(test_fault_create)
{
	run_op(OP_CREATE);
}
END_TEST

START_TEST(test_fault_open)
{
	run_op(OP_OPEN);
}
END_TEST

START_TEST(test_fault_commit)
{
	run_op(OP_COMMIT);
}
END_TEST

START_TEST(test_fault_nosync_commit)
{
	run_op(OP_NOSYNC);
}
END_TEST

START_TEST(test_fault_merge)
{
	run_op(OP_MERGE);
}
END_TEST

START_TEST(test_fault_drop)
{
	run_op(OP_DROP);
}
END_TEST

START_TEST(test_fault_grow)
{
	run_op(OP_GROW);
}
END_TEST

START_TEST(test_fault_sync)
{
	run_op(OP_SYNC);
}
END_TEST

START_TEST(test_fault_close)
{
	run_op(OP_CLOSE);
}
END_TEST

static Suite *fault_suite(void)
{
	Suite *s = suite_create("fault");
	TCase *tc = tcase_create("fault");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_fault_create);
	tcase_add_test(tc, test_fault_open);
	tcase_add_test(tc, test_fault_commit);
	tcase_add_test(tc, test_fault_nosync_commit);
	tcase_add_test(tc, test_fault_merge);
	tcase_add_test(tc, test_fault_drop);
	tcase_add_test(tc, test_fault_grow);
	tcase_add_test(tc, test_fault_sync);
	tcase_add_test(tc, test_fault_close);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	g_seed = tu_seed("KVFS_SEED", DEFAULT_SEED);
	return tu_run_suite(fault_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
