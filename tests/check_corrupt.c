/*
 * tests/check_corrupt.c — corruption tests for the store (test case "corrupt").
 *
 * A prepared store (io_fault machine) holds three trees — "alpha" of depth >= 2 (branch
 * pages), "beta" with overflow values, "gamma" small — and a non-empty free list, after five
 * durable commits.  This suite walks the file itself, from store/format.h alone (meta pages,
 * tree records, page headers, cells, overflow refs, the catalog and the free-list tree),
 * checking every checksum on the way, and then damages it:
 *
 *   - one byte flipped (in the header, the middle, the last byte) in each kind of page: meta
 *     page 0, meta page 1, a branch page, a leaf page, an overflow run page, a free-list tree
 *     page, a catalog page.  Expected: open, get, scan and store_verify return -EUCLEAN (or
 *     open succeeds and only what needs the page fails; for an overflow page, the get of that
 *     value), a log line names the page, data outside the damage reads back exactly, and
 *     nothing crashes.  One meta page corrupt: the store opens from the other, holding that
 *     commit's data; both corrupt: -EUCLEAN.
 *   - a misdirected write (a valid page copied over another) and a lost write (an older valid
 *     version of a page restored): the header's page number and the parent's expected txnid
 *     catch them.
 *   - a file that is not a store (-EINVAL, with or without STORE_CREATE; only an empty or
 *     all-zero file shorter than two pages — a create cut short — is initialised by
 *     STORE_CREATE), a store of an unknown format version or page size (-EPROTONOSUPPORT), a
 *     truncated file (-EUCLEAN or -EINVAL), on io_fault and on POSIX files: a clear error and
 *     the file's bytes unchanged.
 *   - random byte flips (KVFS_SEED; KVFS_CORRUPT_FLIPS of them, default 500; one alone with
 *     KVFS_CORRUPT_FLIP=i), half anywhere in the file and half in pages the current state
 *     reaches (most of a file is free or preallocated), each on a fresh copy: every call
 *     returns 0 or a negative errno; whatever a call returns as data is exact; store_verify
 *     is never clean when a byte that a checksum covers, in a page the current state
 *     reaches, was changed; and a flip nothing reaches changes nothing.
 *
 * What this does not cover: damage to the log (the wal suite), I/O errors (check_fault.c).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/format.h"
#include "store/io_fault.h"
#include "store/store.h"
#include "tests/testutil.h"
#include "tests/testutil_fault.h"

#define STORE_FILE "/kvfs-test/store"
#define DEFAULT_SEED 0x636f7272u /* "corr" */
#define DEFAULT_FLIPS 500
#define PS STORE_PAGE_SIZE

static const char *const tree_names[] = { "alpha", "beta", "gamma" };
#define N_TREES 3
#define T_ALPHA 0
#define T_BETA 1
#define T_GAMMA 2

static uint64_t g_seed;

/* ---- the file's layout, walked from format.h ---- */

enum pkind { PK_NONE, PK_META, PK_BRANCH, PK_LEAF, PK_OVF };
#define OWN_CATALOG (-2)
#define OWN_FREEDB (-1)

struct pinfo {
	uint8_t kind;      /* PK_* */
	int8_t owner;      /* OWN_CATALOG, OWN_FREEDB, or a tree_names index */
	uint16_t covered;  /* bytes from the page start that a checksum covers */
	pgno_t parent;     /* the page that refers to it (0 for a root) */
	pgno_t run;        /* overflow: first page of its run */
};

struct layout {
	const uint8_t *img;
	size_t len;
	uint64_t npages;  /* whole pages in the file */
	int cur;          /* slot of the current meta page */
	bool valid[2];
	txnid_t txnid[2];
	uint64_t page_count;
	pgno_t catalog_root, freedb_root;
	pgno_t root[N_TREES];
	uint32_t depth[N_TREES];
	struct pinfo *pg; /* [npages] */
};

static bool meta_valid(const uint8_t *p, unsigned slot)
{
	return memcmp(p + META_MAGIC, STORE_MAGIC, 8) == 0 &&
	       ld64(p + META_CHECKSUM) == XXH3_64bits_withSeed(p + 8, PS - 8, slot);
}

static void meta_reseal(uint8_t *p, unsigned slot)
{
	st64(p + META_CHECKSUM, XXH3_64bits_withSeed(p + 8, PS - 8, slot));
}

static bool page_valid(const uint8_t *p, pgno_t pgno)
{
	return ld64(p + PH_CHECKSUM) == XXH3_64bits_withSeed(p + 8, PS - 8, pgno) &&
	       ld64(p + PH_PGNO) == pgno;
}

static void walk(struct layout *L, pgno_t pg, txnid_t want, unsigned level, int owner,
		 pgno_t parent);

static void walk_leaf_cell(struct layout *L, pgno_t pg, const uint8_t *c, int owner)
{
	uint16_t klen = ld16(c + LC_KLEN);
	uint8_t vtype = c[LC_VTYPE];
	uint32_t vlen = ld32(c + LC_VLEN);
	const uint8_t *key = c + LC_KEY;

	TU_ASSERT(vtype == VTYPE_INLINE || vtype == VTYPE_OVERFLOW, "layout: page %" PRIu64
		  ": vtype %u", pg, vtype);
	if (vtype == VTYPE_OVERFLOW) {
		const uint8_t *ref = key + klen;
		pgno_t first = ld64(ref + OVF_PGNO);
		uint64_t n = (vlen + PS - 1) / PS;
		TU_ASSERT(first >= FIRST_DATA_PGNO && first + n <= L->page_count,
			  "layout: page %" PRIu64 ": overflow run %" PRIu64 "+%" PRIu64, pg, first,
			  n);
		TU_ASSERT(ld64(ref + OVF_CHECKSUM) ==
				  XXH3_64bits_withSeed(L->img + first * PS, vlen, first),
			  "layout: overflow run at page %" PRIu64 ": checksum", first);
		for (uint64_t i = 0; i < n; i++) {
			struct pinfo *pi = &L->pg[first + i];
			TU_ASSERT(pi->kind == PK_NONE, "layout: page %" PRIu64 " reached twice",
				  first + i);
			pi->kind = PK_OVF;
			pi->owner = (int8_t)owner;
			pi->covered = (uint16_t)(i + 1 < n ? PS : vlen - i * PS);
			pi->parent = pg;
			pi->run = first;
		}
	}
	if (owner == OWN_CATALOG) {
		TU_ASSERT(vtype == VTYPE_INLINE && vlen == TREC_SIZE,
			  "layout: catalog entry of %u bytes", vlen);
		const uint8_t *rec = key + klen;
		for (int t = 0; t < N_TREES; t++) {
			if (klen == strlen(tree_names[t]) &&
			    memcmp(key, tree_names[t], klen) == 0) {
				L->root[t] = ld64(rec + TREC_ROOT_PGNO);
				L->depth[t] = ld32(rec + TREC_DEPTH);
				if (L->root[t])
					walk(L, L->root[t], ld64(rec + TREC_ROOT_TXNID),
					     L->depth[t] - 1, t, 0);
			}
		}
	}
}

/* Walk the subtree at `pg`, checking what format.h promises. */
static void walk(struct layout *L, pgno_t pg, txnid_t want, unsigned level, int owner,
		 pgno_t parent)
{
	TU_ASSERT(pg >= FIRST_DATA_PGNO && pg < L->page_count && pg < L->npages,
		  "layout: page %" PRIu64 " out of range", pg);
	const uint8_t *p = L->img + pg * PS;
	struct pinfo *pi = &L->pg[pg];
	TU_ASSERT(pi->kind == PK_NONE, "layout: page %" PRIu64 " reached twice", pg);
	TU_ASSERT(page_valid(p, pg), "layout: page %" PRIu64 ": checksum or pgno", pg);
	TU_ASSERT(ld64(p + PH_TXNID) == want, "layout: page %" PRIu64 ": txnid %" PRIu64
		  ", parent expects %" PRIu64, pg, ld64(p + PH_TXNID), want);
	TU_ASSERT(p[PH_LEVEL] == level, "layout: page %" PRIu64 ": level %u, expected %u", pg,
		  p[PH_LEVEL], level);
	uint8_t type = p[PH_TYPE];
	uint16_t nkeys = ld16(p + PH_NKEYS);
	TU_ASSERT((type == PAGE_BRANCH) == (level > 0) && (type == PAGE_BRANCH ||
							    type == PAGE_LEAF),
		  "layout: page %" PRIu64 ": type %u at level %u", pg, type, level);
	TU_ASSERT(nkeys >= 1 && PH_SIZE + 2u * nkeys <= ld16(p + PH_UPPER),
		  "layout: page %" PRIu64 ": nkeys %u upper %u", pg, nkeys, ld16(p + PH_UPPER));
	pi->kind = type == PAGE_BRANCH ? PK_BRANCH : PK_LEAF;
	pi->owner = (int8_t)owner;
	pi->covered = PS;
	pi->parent = parent;
	for (unsigned i = 0; i < nkeys; i++) {
		uint16_t off = ld16(p + PH_SIZE + 2 * i);
		TU_ASSERT(off >= ld16(p + PH_UPPER) && off < PS, "layout: page %" PRIu64
			  ": cell %u at %u", pg, i, off);
		const uint8_t *c = p + off;
		if (type == PAGE_BRANCH)
			walk(L, ld64(c + BC_CHILD_PGNO), ld64(c + BC_CHILD_TXNID), level - 1, owner,
			     pg);
		else
			walk_leaf_cell(L, pg, c, owner);
	}
}

static void layout_build(struct layout *L, const uint8_t *img, size_t len)
{
	memset(L, 0, sizeof(*L));
	L->img = img;
	L->len = len;
	L->npages = len / PS;
	TU_ASSERT(L->npages >= 2, "layout: file of %zu bytes", len);
	L->pg = calloc(L->npages, sizeof(*L->pg));
	TU_ASSERT(L->pg != NULL, "%s", "out of memory");
	for (unsigned s = 0; s < 2; s++) {
		const uint8_t *p = img + s * PS;
		L->valid[s] = meta_valid(p, s);
		L->txnid[s] = ld64(p + META_TXNID);
		L->pg[s].kind = PK_META;
		L->pg[s].covered = PS;
	}
	TU_ASSERT(L->valid[0] && L->valid[1], "layout: meta pages valid: %d %d", L->valid[0],
		  L->valid[1]);
	L->cur = L->txnid[1] > L->txnid[0];
	const uint8_t *m = img + (size_t)L->cur * PS;
	TU_ASSERT_EQ(ld32(m + META_VERSION), STORE_FORMAT_VERSION, "%s", "layout: version");
	TU_ASSERT_EQ(ld32(m + META_PAGE_SIZE), PS, "%s", "layout: page size");
	L->page_count = ld64(m + META_PAGE_COUNT);
	TU_ASSERT(L->page_count <= L->npages, "layout: page_count %" PRIu64 " > %" PRIu64
		  " pages in the file", L->page_count, L->npages);
	L->catalog_root = ld64(m + META_CATALOG + TREC_ROOT_PGNO);
	L->freedb_root = ld64(m + META_FREEDB + TREC_ROOT_PGNO);
	if (L->catalog_root)
		walk(L, L->catalog_root, ld64(m + META_CATALOG + TREC_ROOT_TXNID),
		     ld32(m + META_CATALOG + TREC_DEPTH) - 1, OWN_CATALOG, 0);
	if (L->freedb_root)
		walk(L, L->freedb_root, ld64(m + META_FREEDB + TREC_ROOT_TXNID),
		     ld32(m + META_FREEDB + TREC_DEPTH) - 1, OWN_FREEDB, 0);
}

static void layout_free(struct layout *L)
{
	free(L->pg);
	L->pg = NULL;
}

/* The `nth` (0-based, wrapping) page of `kind` owned by `owner`; 0 when there is none. */
static pgno_t layout_find(const struct layout *L, enum pkind kind, int owner, unsigned nth)
{
	unsigned count = 0;

	for (pgno_t p = 0; p < L->npages; p++)
		if (L->pg[p].kind == kind && L->pg[p].owner == owner)
			count++;
	if (!count)
		return 0;
	nth %= count;
	for (pgno_t p = 0; p < L->npages; p++)
		if (L->pg[p].kind == kind && L->pg[p].owner == owner && nth-- == 0)
			return p;
	return 0;
}

/* The first key of leaf `pg` into buf (NUL-terminated; keys here are text). */
static void leaf_first_key(const struct layout *L, pgno_t pg, char *buf, size_t len)
{
	const uint8_t *p = L->img + pg * PS;
	const uint8_t *c = p + ld16(p + PH_SIZE);
	size_t klen = ld16(c + LC_KLEN);

	TU_ASSERT(klen < len, "leaf %" PRIu64 ": key of %zu bytes", pg, klen);
	memcpy(buf, c + LC_KEY, klen);
	buf[klen] = 0;
}

/* ---- the prepared store ---- */

#define MAX_STATES 8

struct fixture {
	struct io_fault *base;
	struct tf_state states[MAX_STATES]; /* after each commit */
	txnid_t state_txnid[MAX_STATES];
	size_t n_states;
	uint8_t *old_img; /* the file after commit 2, for lost writes */
	size_t old_len;
	uint8_t *img;     /* the file as prepared */
	size_t len;
	struct layout L;
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

static void key_of(char *buf, size_t len, int tree, unsigned k)
{
	snprintf(buf, len, "%c%05u", tree_names[tree][0], k);
}

/* One write transaction: put keys [lo, hi) step `step` of `tree` with random lengths in
 * [vmin, vmax] (or delete them), in `st` and in `s`. */
struct batch {
	int tree;
	unsigned lo, hi, step;
	bool del;
	size_t vmin, vmax;
};

static void commit_batches(struct store *st, struct tf_state *s, const struct batch *b,
			   size_t nb, struct tu_rng *r, txnid_t *txnid)
{
	struct store_txn *txn = NULL;
	uint8_t *buf = malloc(64 * 1024);
	char key[32];
	int rc = store_txn_begin(st, 0, &txn);

	TU_ASSERT(buf != NULL, "%s", "out of memory");
	TU_ASSERT_EQ(rc, 0, "prepare: begin (%s)", tf_errname(rc));
	*txnid = store_txn_id(txn);
	for (size_t i = 0; i < nb; i++) {
		struct store_tree *t = NULL;
		const char *name = tree_names[b[i].tree];
		rc = store_tree_open(txn, name, strlen(name), true, &t);
		TU_ASSERT_EQ(rc, 0, "prepare: tree_open %s (%s)", name, tf_errname(rc));
		for (unsigned k = b[i].lo; k < b[i].hi; k += b[i].step) {
			key_of(key, sizeof(key), b[i].tree, k);
			if (b[i].del) {
				rc = store_del(t, key, strlen(key));
				TU_ASSERT_EQ(rc, 0, "prepare: del %s (%s)", key, tf_errname(rc));
				tf_state_del(s, name, key, strlen(key));
				continue;
			}
			size_t vlen = tu_rng_range(r, b[i].vmin, b[i].vmax);
			tf_value_fill(buf, vlen, tu_rng_next(r));
			rc = store_put(t, key, strlen(key), buf, vlen);
			TU_ASSERT_EQ(rc, 0, "prepare: put %s (%s)", key, tf_errname(rc));
			tf_state_put(s, name, key, strlen(key), buf, vlen);
		}
	}
	rc = store_txn_commit(txn, 0);
	TU_ASSERT_EQ(rc, 0, "prepare: commit (%s)", tf_errname(rc));
	free(buf);
}

static void fixture_init(struct fixture *fx)
{
	static const struct batch c1[] = {
		{ T_ALPHA, 0, 3000, 1, false, 60, 140 },
		{ T_BETA, 0, 8, 1, false, 9000, 20000 },
		{ T_GAMMA, 0, 30, 1, false, 0, 50 },
	};
	static const struct batch c2[] = {
		{ T_ALPHA, 0, 3000, 4, false, 60, 140 },
		{ T_BETA, 1, 2, 1, false, 9000, 20000 },
	};
	static const struct batch c3[] = {
		{ T_ALPHA, 1, 3000, 3, true, 0, 0 },
		{ T_BETA, 3, 4, 1, true, 0, 0 },
	};
	static const struct batch c4[] = {
		{ T_ALPHA, 0, 3000, 7, false, 60, 140 },
		{ T_GAMMA, 30, 40, 1, false, 0, 50 },
		{ T_BETA, 5, 6, 1, false, 12000, 12000 },
	};
	static const struct batch c5[] = {
		{ T_ALPHA, 2, 3000, 30, false, 60, 140 },
		{ T_GAMMA, 0, 10, 1, true, 0, 0 },
	};
	const struct batch *plan[] = { c1, c2, c3, c4, c5 };
	const size_t plan_n[] = { 3, 2, 2, 3, 2 };
	struct tf_state s;
	struct store *st = NULL;
	struct tu_rng r;
	int rc;

	memset(fx, 0, sizeof(*fx));
	tu_seed_begin("KVFS_SEED", g_seed);
	tu_rng_init(&r, g_seed);
	tu_log_clear();
	fx->base = io_fault_new(g_seed);
	TU_ASSERT(fx->base != NULL, "%s", "io_fault_new");
	rc = open_on(fx->base, STORE_CREATE, &st);
	TU_ASSERT_EQ(rc, 0, "prepare: create (%s)", tf_errname(rc));
	tf_state_init(&s, tree_names, N_TREES);
	for (size_t i = 0; i < 5; i++) {
		commit_batches(st, &s, plan[i], plan_n[i], &r, &fx->state_txnid[i]);
		tf_state_copy(&fx->states[i], &s);
		fx->n_states++;
		if (i == 1) {
			fx->old_img = tf_image_read(fx->base, STORE_FILE, &fx->old_len);
		}
	}
	tu_verify_ok(st);
	tf_state_expect_ok(st, &s, NULL, "prepare");
	tf_state_free(&s);
	rc = store_close(st);
	TU_ASSERT_EQ(rc, 0, "prepare: close (%s)", tf_errname(rc));
	fx->img = tf_image_read(fx->base, STORE_FILE, &fx->len);
	layout_build(&fx->L, fx->img, fx->len);
	TU_ASSERT(fx->L.depth[T_ALPHA] >= 2, "prepare: alpha has depth %u", fx->L.depth[T_ALPHA]);
	TU_ASSERT(fx->L.freedb_root != 0, "%s", "prepare: the free list is empty");
	TU_ASSERT(layout_find(&fx->L, PK_OVF, T_BETA, 0) != 0, "%s",
		  "prepare: no overflow page");
	TU_ASSERT(fx->L.txnid[fx->L.cur] == fx->state_txnid[4],
		  "prepare: current meta txnid %" PRIu64 ", last commit %" PRIu64,
		  fx->L.txnid[fx->L.cur], fx->state_txnid[4]);
}

static void fixture_fini(struct fixture *fx)
{
	layout_free(&fx->L);
	for (size_t i = 0; i < fx->n_states; i++)
		tf_state_free(&fx->states[i]);
	free(fx->img);
	free(fx->old_img);
	io_fault_free(fx->base);
	tu_seed_end();
}

static const struct tf_state *state_of(const struct fixture *fx, txnid_t txnid)
{
	for (size_t i = 0; i < fx->n_states; i++)
		if (fx->state_txnid[i] == txnid)
			return &fx->states[i];
	tu_fail(__FILE__, __LINE__, "no state recorded for txnid %" PRIu64, txnid);
}

static const struct tf_state *final_state(const struct fixture *fx)
{
	return &fx->states[fx->n_states - 1];
}

/* ---- checking a damaged store ---- */

/* What was damaged, hence what may fail. */
struct damage {
	bool catalog, freedb, tree[N_TREES];
	bool strict;            /* deterministic case: -EUCLEAN must be seen where expected and
				   a log / verify line must name one of pages[] */
	const char *ovf_key;    /* an overflow value that was damaged (its get must fail) */
	const char *leaf_key;   /* a key in a damaged leaf (its get must fail) */
	uint64_t pages[4];      /* pages a diagnostic may name */
	size_t n_pages;
};

static bool damaged(const struct damage *d)
{
	return d->catalog || d->freedb || d->tree[0] || d->tree[1] || d->tree[2];
}

/* A full scan of tree `ti` reading every value: the entries returned must be exactly a
 * prefix of the model.  Returns 0 (whole tree), or the error that ended it. */
static int scan_check(struct store_tree *t, const struct tu_model *m, const char *what)
{
	struct store_cursor *c = NULL;
	size_t i = 0;
	int rc = store_cursor_open(t, &c);

	if (rc)
		return rc;
	for (rc = store_cursor_first(c); rc == 0; rc = store_cursor_next(c), i++) {
		struct store_val k, v;
		rc = store_cursor_get(c, &k, &v);
		if (rc)
			break;
		TU_ASSERT(i < m->n, "%s: scan returned more than %zu entries", what, m->n);
		const struct tu_ent *e = &m->ents[i];
		TU_ASSERT(k.len == e->klen && memcmp(k.data, e->key, k.len) == 0,
			  "%s: scan entry %zu has the wrong key", what, i);
		TU_ASSERT(v.len == e->vlen && (!v.len || memcmp(v.data, e->val, v.len) == 0),
			  "%s: scan entry %zu (%.*s): wrong value (%zu bytes, expected %zu) "
			  "returned as good", what, i, (int)k.len, (const char *)k.data, v.len,
			  e->vlen);
	}
	store_cursor_close(c);
	if (rc == -ENOENT) {
		TU_ASSERT(i == m->n, "%s: scan ended after %zu of %zu entries", what, i, m->n);
		return 0;
	}
	return rc;
}

/* get `key` of tree `t`: 0 with the exact value, or an error (returned). */
static int get_check(struct store_tree *t, const struct tu_model *m, const char *key,
		     size_t klen, const char *what)
{
	struct store_val v;
	const struct tu_ent *e = tu_model_get(m, key, klen);
	int rc = store_get(t, key, klen, &v);

	if (rc == 0) {
		TU_ASSERT(e != NULL, "%s: get %.*s found a deleted key", what, (int)klen, key);
		TU_ASSERT(v.len == e->vlen && (!v.len || memcmp(v.data, e->val, v.len) == 0),
			  "%s: get %.*s returned a wrong value as good", what, (int)klen, key);
	} else if (rc == -ENOENT) {
		TU_ASSERT(e == NULL, "%s: get %.*s: ENOENT for a present key", what, (int)klen,
			  key);
		rc = 0;
	}
	return rc;
}

/* Open the machine's store and exercise it; `expect` is the state it must hold where nothing
 * is damaged.  Fails the test on any outcome the damage does not allow. */
static void check_store(struct io_fault *m, const struct tf_state *expect,
			const struct damage *d, const char *what)
{
	struct store *st = NULL;
	struct store_txn *txn = NULL;
	char msg[8192], sub[300], log[4096];
	size_t img_len;
	uint8_t *img = tf_image_read(m, STORE_FILE, &img_len);
	bool saw = false;
	int rc;

	tu_log_clear();
	rc = open_on(m, 0, &st);
	if (rc) {
		TU_ASSERT(rc == -EUCLEAN && damaged(d), "%s: store_open = %s; log: %s", what,
			  tf_errname(rc), tu_log_text(log, sizeof(log)));
		TU_ASSERT(tf_image_equal(m, STORE_FILE, img, img_len),
			  "%s: a failed store_open changed the file", what);
		if (d->strict)
			TU_ASSERT(tf_log_names_any(d->pages, d->n_pages),
				  "%s: store_open = EUCLEAN, but no log line names page %" PRIu64
				  "; log: %s", what, d->pages[0], tu_log_text(log, sizeof(log)));
		free(img);
		return;
	}
	free(img);

	rc = store_txn_begin(st, STORE_TXN_RDONLY, &txn);
	TU_ASSERT_EQ(rc, 0, "%s: begin read (%s)", what, tf_errname(rc));
	for (int ti = 0; ti < N_TREES; ti++) {
		const char *name = tree_names[ti];
		const struct tu_model *mod = &expect->m[ti];
		bool may_fail = d->catalog || d->tree[ti];
		struct store_tree *t = NULL;

		snprintf(sub, sizeof(sub), "%s: tree %s", what, name);
		rc = store_tree_open(txn, name, strlen(name), false, &t);
		if (rc) {
			TU_ASSERT(rc == -EUCLEAN && d->catalog, "%s: store_tree_open = %s", sub,
				  tf_errname(rc));
			saw = true;
			continue;
		}
		/* Gets: every 37th key, the first and last, and the damaged ones. */
		for (size_t i = 0; i < mod->n; i++) {
			if (i % 37 && i != mod->n - 1)
				continue;
			const struct tu_ent *e = &mod->ents[i];
			rc = get_check(t, mod, (const char *)e->key, e->klen, sub);
			TU_ASSERT(rc == 0 || (rc == -EUCLEAN && may_fail),
				  "%s: get %.*s = %s", sub, (int)e->klen, (const char *)e->key,
				  tf_errname(rc));
			saw |= rc != 0;
		}
		const char *dkeys[2] = { d->leaf_key, d->ovf_key };
		for (int j = 0; j < 2; j++) {
			if (!dkeys[j] || !d->tree[ti])
				continue;
			rc = get_check(t, mod, dkeys[j], strlen(dkeys[j]), sub);
			TU_ASSERT(rc == -EUCLEAN || (!d->strict && rc == 0),
				  "%s: get of damaged key %s = %s, expected EUCLEAN", sub, dkeys[j],
				  tf_errname(rc));
			saw |= rc != 0;
		}
		rc = scan_check(t, mod, sub);
		if (d->tree[ti])
			TU_ASSERT(rc == -EUCLEAN, "%s: a full scan of the damaged tree = %s, "
				  "expected EUCLEAN", sub, tf_errname(rc));
		else
			TU_ASSERT(rc == 0 || (rc == -EUCLEAN && may_fail), "%s: full scan = %s",
				  sub, tf_errname(rc));
		saw |= rc != 0;
	}
	store_txn_abort(txn);

	struct store_stat ss;
	rc = store_stat(st, &ss);
	TU_ASSERT(rc == 0 || (rc == -EUCLEAN && damaged(d)), "%s: store_stat = %s", what,
		  tf_errname(rc));

	rc = tu_verify(st, msg, sizeof(msg));
	if (damaged(d)) {
		TU_ASSERT(rc == -EUCLEAN, "%s: store_verify = %s on a damaged store", what,
			  tf_errname(rc));
		if (d->strict) {
			bool named = false;
			for (size_t i = 0; i < d->n_pages && !named; i++) {
				char needle[32];
				snprintf(needle, sizeof(needle), "page %" PRIu64, d->pages[i]);
				const char *p = strstr(msg, needle);
				named = p && (p[strlen(needle)] < '0' || p[strlen(needle)] > '9');
			}
			TU_ASSERT(named, "%s: no store_verify line names page %" PRIu64 ": %s",
				  what, d->pages[0], msg);
		}
	} else {
		TU_ASSERT(rc == 0, "%s: store_verify = %s on an undamaged store: %s", what,
			  tf_errname(rc), msg);
	}

	if (d->freedb) {
		/* A commit must free and allocate pages through the free list. */
		struct store_tree *t = NULL;
		rc = store_txn_begin(st, 0, &txn);
		TU_ASSERT_EQ(rc, 0, "%s: begin write (%s)", what, tf_errname(rc));
		rc = store_tree_open(txn, "gamma", 5, false, &t);
		if (rc == 0)
			rc = store_put(t, "g00011", 6, "new", 3);
		if (rc == 0) {
			rc = store_txn_commit(txn, 0);
		} else {
			store_txn_abort(txn);
		}
		TU_ASSERT(rc == -EUCLEAN || (!d->strict && rc == 0),
			  "%s: a commit with a damaged free list = %s, expected EUCLEAN", what,
			  tf_errname(rc));
		saw |= rc != 0;
	}
	if (d->strict && saw)
		TU_ASSERT(tf_log_names_any(d->pages, d->n_pages),
			  "%s: EUCLEAN returned, but no log line names page %" PRIu64 "; log: %s",
			  what, d->pages[0], tu_log_text(log, sizeof(log)));
	rc = store_close(st);
	TU_ASSERT(rc == 0 || tf_is_errno(rc), "%s: store_close = %d", what, rc);
}

/* ---- meta pages ---- */

static void meta_case(struct fixture *fx, unsigned slot, unsigned off)
{
	char what[160];
	struct io_fault *m = tf_machine_copy(fx->base, g_seed);
	struct store *st = NULL;
	char log[4096];
	unsigned other = !slot;
	int rc;

	snprintf(what, sizeof(what), "meta page %u (%s), byte %u flipped", slot,
		 (int)slot == fx->L.cur ? "current" : "older", off);
	tf_flip(m, STORE_FILE, (uint64_t)slot * PS + off, 0x01);
	tu_log_clear();
	rc = open_on(m, 0, &st);
	TU_ASSERT(rc == 0, "%s: store_open = %s, expected it to open from meta page %u; log: %s",
		  what, tf_errname(rc), other, tu_log_text(log, sizeof(log)));
	TU_ASSERT(tf_log_names_page(slot), "%s: no log line names page %u; log: %s", what, slot,
		  tu_log_text(log, sizeof(log)));
	const struct tf_state *want = state_of(fx, fx->L.txnid[other]);
	tf_state_expect_ok(st, want, NULL, what);
	tu_verify_ok(st);
	/* It goes on: a commit, then a reopen, holds. */
	struct store_txn *txn = NULL;
	struct store_tree *t = NULL;
	rc = store_txn_begin(st, 0, &txn);
	TU_ASSERT_EQ(rc, 0, "%s: begin write (%s)", what, tf_errname(rc));
	rc = store_tree_open(txn, "gamma", 5, true, &t);
	if (!rc)
		rc = store_put(t, "zz-new", 6, "v", 1);
	TU_ASSERT_EQ(rc, 0, "%s: put (%s)", what, tf_errname(rc));
	rc = store_txn_commit(txn, 0);
	TU_ASSERT_EQ(rc, 0, "%s: commit after fallback (%s)", what, tf_errname(rc));
	rc = store_close(st);
	TU_ASSERT_EQ(rc, 0, "%s: close (%s)", what, tf_errname(rc));
	struct tf_state w2;
	memset(&w2, 0, sizeof(w2));
	tf_state_copy(&w2, want);
	tf_state_put(&w2, "gamma", "zz-new", 6, "v", 1);
	rc = open_on(m, 0, &st);
	TU_ASSERT_EQ(rc, 0, "%s: reopen after the commit (%s)", what, tf_errname(rc));
	tu_verify_ok(st);
	tf_state_expect_ok(st, &w2, NULL, what);
	store_close(st);
	tf_state_free(&w2);
	io_fault_free(m);
}

START_TEST(test_corrupt_meta_one)
{
	static const unsigned offs[] = { 0, 7, META_MAGIC, META_VERSION, META_TXNID,
					 META_PAGE_COUNT, META_CATALOG, META_FREEDB + 8,
					 META_END, 2048, PS - 1 };
	struct fixture fx;

	fixture_init(&fx);
	for (unsigned slot = 0; slot < 2; slot++)
		for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
			meta_case(&fx, slot, offs[i]);
	fixture_fini(&fx);
}
END_TEST

START_TEST(test_corrupt_meta_both)
{
	static const unsigned offs[] = { 0, META_TXNID, META_CATALOG, 2048, PS - 1 };
	struct fixture fx;
	char log[4096];

	fixture_init(&fx);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (unsigned flags = 0; flags <= STORE_RDONLY; flags += STORE_RDONLY) {
			struct io_fault *m = tf_machine_copy(fx.base, g_seed);
			struct store *st = NULL;
			size_t len;
			tf_flip(m, STORE_FILE, offs[i], 0x10);
			tf_flip(m, STORE_FILE, PS + offs[i], 0x10);
			uint8_t *img = tf_image_read(m, STORE_FILE, &len);
			tu_log_clear();
			int rc = open_on(m, flags, &st);
			TU_ASSERT(rc == -EUCLEAN, "both meta pages, byte %u flipped (flags %#x): "
				  "store_open = %s, expected EUCLEAN", offs[i], flags,
				  tf_errname(rc));
			TU_ASSERT(tf_image_equal(m, STORE_FILE, img, len), "both meta pages, byte "
				  "%u: the failed open changed the file", offs[i]);
			TU_ASSERT(tf_log_names_page(0) || tf_log_names_page(1),
				  "both meta pages, byte %u: no log line names page 0 or 1; "
				  "log: %s", offs[i], tu_log_text(log, sizeof(log)));
			rc = open_on(m, STORE_CREATE, &st);
			TU_ASSERT(rc == -EUCLEAN, "both meta pages corrupt: store_open(CREATE) = "
				  "%s, expected EUCLEAN (never re-create over a store)",
				  tf_errname(rc));
			TU_ASSERT(tf_image_equal(m, STORE_FILE, img, len), "%s",
				  "both meta pages: open(CREATE) changed the file");
			free(img);
			io_fault_free(m);
		}
	}
	fixture_fini(&fx);
}
END_TEST

/* ---- tree, overflow, free-list and catalog pages ---- */

static void page_case(struct fixture *fx, pgno_t pg, unsigned off, const char *kind)
{
	const struct pinfo *pi = &fx->L.pg[pg];
	struct damage d;
	char what[200], leaf_key[64];
	struct io_fault *m = tf_machine_copy(fx->base, g_seed);

	memset(&d, 0, sizeof(d));
	d.strict = true;
	d.pages[d.n_pages++] = pg;
	if (pi->owner == OWN_CATALOG)
		d.catalog = true;
	else if (pi->owner == OWN_FREEDB)
		d.freedb = true;
	else
		d.tree[pi->owner] = true;
	if (pi->kind == PK_LEAF && pi->owner >= 0) {
		leaf_first_key(&fx->L, pg, leaf_key, sizeof(leaf_key));
		d.leaf_key = leaf_key;
	}
	if (pi->kind == PK_OVF) {
		/* The damaged value: find the leaf cell referring to the run. */
		const uint8_t *p = fx->L.img + pi->parent * PS;
		static char ovf_key[64];
		for (unsigned i = 0; i < ld16(p + PH_NKEYS); i++) {
			const uint8_t *c = p + ld16(p + PH_SIZE + 2 * i);
			size_t klen = ld16(c + LC_KLEN);
			if (c[LC_VTYPE] == VTYPE_OVERFLOW &&
			    ld64(c + LC_KEY + klen + OVF_PGNO) == pi->run) {
				memcpy(ovf_key, c + LC_KEY, klen);
				ovf_key[klen] = 0;
			}
		}
		d.ovf_key = ovf_key;
		d.pages[d.n_pages++] = pi->run;
		d.pages[d.n_pages++] = pi->parent;
	}
	snprintf(what, sizeof(what), "%s page %" PRIu64 ", byte %u flipped", kind, pg, off);
	tf_flip(m, STORE_FILE, pg * PS + off, 0x01);
	check_store(m, final_state(fx), &d, what);
	io_fault_free(m);
}

static void page_kind_cases(struct fixture *fx, pgno_t pg, const char *kind)
{
	static const unsigned offs[] = { PH_CHECKSUM, PH_PGNO, PH_TXNID, PH_TYPE, PH_LEVEL,
					 PH_NKEYS, PH_UPPER, PH_SIZE, 2048, PS - 1 };

	TU_ASSERT(pg != 0, "no %s page in the prepared store", kind);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		page_case(fx, pg, offs[i], kind);
}

START_TEST(test_corrupt_branch)
{
	struct fixture fx;

	fixture_init(&fx);
	page_kind_cases(&fx, layout_find(&fx.L, PK_BRANCH, T_ALPHA, 0), "branch");
	fixture_fini(&fx);
}
END_TEST

START_TEST(test_corrupt_leaf)
{
	struct fixture fx;

	fixture_init(&fx);
	page_kind_cases(&fx, layout_find(&fx.L, PK_LEAF, T_ALPHA, 17), "alpha leaf");
	page_kind_cases(&fx, layout_find(&fx.L, PK_LEAF, T_GAMMA, 0), "gamma leaf");
	fixture_fini(&fx);
}
END_TEST

START_TEST(test_corrupt_overflow)
{
	struct fixture fx;

	fixture_init(&fx);
	pgno_t first = layout_find(&fx.L, PK_OVF, T_BETA, 0);
	TU_ASSERT(first != 0, "%s", "no overflow page");
	const struct pinfo *pi = &fx.L.pg[first];
	pgno_t run = pi->run, last = run;
	while (last + 1 < fx.L.npages && fx.L.pg[last + 1].kind == PK_OVF &&
	       fx.L.pg[last + 1].run == run)
		last++;
	static const unsigned offs[] = { 0, 8, 2048, PS - 1 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		page_case(&fx, run, offs[i], "overflow (first of run)");
	page_case(&fx, last, 0, "overflow (last of run)");
	page_case(&fx, last, fx.L.pg[last].covered - 1u, "overflow (last value byte)");
	fixture_fini(&fx);
}
END_TEST

START_TEST(test_corrupt_freelist)
{
	struct fixture fx;

	fixture_init(&fx);
	page_kind_cases(&fx, fx.L.freedb_root, "free-list tree");
	fixture_fini(&fx);
}
END_TEST

START_TEST(test_corrupt_catalog)
{
	struct fixture fx;

	fixture_init(&fx);
	page_kind_cases(&fx, fx.L.catalog_root, "catalog");
	fixture_fini(&fx);
}
END_TEST

/* ---- misdirected and lost writes ---- */

START_TEST(test_corrupt_misdirected)
{
	struct fixture fx;
	uint8_t page[PS];
	char what[160], key[64];

	fixture_init(&fx);
	/* A valid leaf written over another leaf; a leaf over a branch; a branch over a leaf. */
	const struct layout *L = &fx.L;
	const pgno_t pairs[][2] = {
		{ layout_find(L, PK_LEAF, T_ALPHA, 3), layout_find(L, PK_LEAF, T_ALPHA, 9) },
		{ layout_find(L, PK_LEAF, T_GAMMA, 0), layout_find(L, PK_BRANCH, T_ALPHA, 0) },
		{ layout_find(L, PK_BRANCH, T_ALPHA, 0), layout_find(L, PK_LEAF, T_ALPHA, 5) },
		{ layout_find(L, PK_LEAF, T_ALPHA, 2), L->catalog_root },
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		pgno_t src = pairs[i][0], dst = pairs[i][1];
		TU_ASSERT(src && dst && src != dst, "misdirected case %zu: pages", i);
		struct io_fault *m = tf_machine_copy(fx.base, g_seed);
		struct damage d;
		memset(&d, 0, sizeof(d));
		d.strict = true;
		d.pages[d.n_pages++] = dst;
		d.pages[d.n_pages++] = fx.L.pg[dst].parent ? fx.L.pg[dst].parent : dst;
		int owner = fx.L.pg[dst].owner;
		if (owner == OWN_CATALOG)
			d.catalog = true;
		else
			d.tree[owner] = true;
		if (fx.L.pg[dst].kind == PK_LEAF && owner >= 0) {
			leaf_first_key(&fx.L, dst, key, sizeof(key));
			d.leaf_key = key;
		}
		memcpy(page, fx.img + src * PS, PS);
		int rc = io_fault_poke(m, STORE_FILE, dst * PS, page, PS);
		TU_ASSERT_EQ(rc, 0, "%s", "poke");
		snprintf(what, sizeof(what), "misdirected write: page %" PRIu64 " written at page %"
			 PRIu64, src, dst);
		check_store(m, final_state(&fx), &d, what);
		io_fault_free(m);
	}
	fixture_fini(&fx);
}
END_TEST

START_TEST(test_corrupt_lost_write)
{
	struct fixture fx;
	char what[200], key[64];
	unsigned found = 0;

	fixture_init(&fx);
	/* Every reachable tree page whose older version (after commit 2) is a valid page of the
	 * same number but another txnid: restoring it is a lost write. */
	for (pgno_t p = FIRST_DATA_PGNO; p < fx.L.npages && found < 6; p++) {
		const struct pinfo *pi = &fx.L.pg[p];
		if (pi->kind != PK_BRANCH && pi->kind != PK_LEAF)
			continue;
		if ((p + 1) * PS > fx.old_len)
			continue;
		const uint8_t *old = fx.old_img + p * PS;
		if (!page_valid(old, p) || ld64(old + PH_TXNID) == ld64(fx.img + p * PS + PH_TXNID))
			continue;
		found++;
		struct io_fault *m = tf_machine_copy(fx.base, g_seed);
		struct damage d;
		memset(&d, 0, sizeof(d));
		d.strict = true;
		d.pages[d.n_pages++] = p;
		if (pi->parent)
			d.pages[d.n_pages++] = pi->parent;
		if (pi->owner == OWN_CATALOG)
			d.catalog = true;
		else if (pi->owner == OWN_FREEDB)
			d.freedb = true;
		else
			d.tree[pi->owner] = true;
		if (pi->kind == PK_LEAF && pi->owner >= 0) {
			leaf_first_key(&fx.L, p, key, sizeof(key));
			d.leaf_key = key;
		}
		int rc = io_fault_poke(m, STORE_FILE, p * PS, old, PS);
		TU_ASSERT_EQ(rc, 0, "%s", "poke");
		snprintf(what, sizeof(what), "lost write: page %" PRIu64 " (owner %d, kind %u) "
			 "restored to its version of txnid %" PRIu64 " (now %" PRIu64 ")", p,
			 pi->owner, pi->kind, ld64(old + PH_TXNID),
			 ld64(fx.img + p * PS + PH_TXNID));
		check_store(m, final_state(&fx), &d, what);
		io_fault_free(m);
	}
	TU_ASSERT(found > 0, "%s", "no page of the last state reuses a page number of commit 2 "
		  "(free pages are never reused?)");
	fixture_fini(&fx);
}
END_TEST

/* ---- files that are not (readable) stores ---- */

/* Open a file holding exactly img[0..len) with `flags`, on io_fault (posix false) or on a
 * POSIX file; returns store_open's result and checks the bytes did not change. */
static int open_image(bool posix, const uint8_t *img, size_t len, unsigned flags,
		      const char *what)
{
	struct store *st = NULL;
	struct store_options o;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	int rc;

	memset(&o, 0, sizeof(o));
	o.flags = flags;
	o.log = tu_log_cb;
	tu_log_clear();
	if (!posix) {
		struct io_fault *m = io_fault_new(g_seed);
		struct io_file *f = NULL;
		TU_ASSERT(m != NULL, "%s", "io_fault_new");
		rc = io_open(io_fault_env(m), STORE_FILE, IO_OPEN_CREATE, 0644, &f);
		TU_ASSERT_EQ(rc, 0, "%s", "io_fault create");
		if (len)
			TU_ASSERT_EQ(io_pwrite(f, img, len, 0), (long long)len, "%s",
				     "io_fault write");
		TU_ASSERT_EQ(io_sync(f), 0, "%s", "io_fault sync");
		io_close(f);
		o.io = io_fault_env(m);
		rc = store_open(STORE_FILE, &o, &st);
		if (rc == 0)
			store_close(st);
		else
			TU_ASSERT(tf_image_equal(m, STORE_FILE, img, len),
				  "%s (io_fault): the failed store_open changed the file", what);
		io_fault_free(m);
		return rc;
	}
	rc = tu_tmpdir(dir, sizeof(dir));
	TU_ASSERT_EQ(rc, 0, "%s", "tu_tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	FILE *fp = fopen(path, "wb");
	TU_ASSERT(fp != NULL, "fopen %s", path);
	TU_ASSERT(fwrite(img, 1, len, fp) == len, "%s", "fwrite");
	TU_ASSERT(fclose(fp) == 0, "%s", "fclose");
	rc = store_open(path, &o, &st);
	if (rc == 0) {
		store_close(st);
	} else {
		uint8_t *now = malloc(len + 1);
		fp = fopen(path, "rb");
		TU_ASSERT(fp != NULL && now != NULL, "%s", "reopen for compare");
		size_t got = fread(now, 1, len + 1, fp);
		fclose(fp);
		TU_ASSERT(got == len && (!len || memcmp(now, img, len) == 0),
			  "%s (POSIX): the failed store_open changed the file", what);
		free(now);
	}
	tu_rmtree(dir);
	return rc;
}

START_TEST(test_corrupt_not_a_store)
{
	static const char text[] = "This is a text file, not a kvfs store.\n";
	struct tu_rng r;
	uint8_t *buf = calloc(1, 4 * PS);
	char what[120], log[2048];

	TU_ASSERT(buf != NULL, "%s", "out of memory");
	tu_rng_init(&r, g_seed);
	struct {
		const char *name;
		size_t len;
		int fill; /* 0 zeros, 1 text, 2 random, 3 sqlite-like header */
		/* STORE_CREATE initialises it: shorter than two meta pages and all zeros, as a
		 * create cut short by a crash or an I/O error leaves it (store_open's rule). */
		bool create_ok;
	} cases[] = {
		{ "empty file", 0, 0, true },  { "100 bytes of text", 100, 1, false },
		{ "one page of zeros", PS, 0, true }, { "two pages of zeros", 2 * PS, 0, false },
		{ "three pages of text", 3 * PS, 1, false },
		{ "four random pages", 4 * PS, 2, false },
		{ "an SQLite header", 2 * PS, 3, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 0, 4 * PS);
		for (size_t o = 0; cases[i].fill == 1 && o < cases[i].len; o++)
			buf[o] = (uint8_t)text[o % (sizeof(text) - 1)];
		if (cases[i].fill == 2)
			tu_rng_bytes(&r, buf, cases[i].len);
		if (cases[i].fill == 3)
			memcpy(buf, "SQLite format 3\0", 16);
		for (int posix = 0; posix < 2; posix++) {
			for (unsigned flags = 0; flags <= STORE_CREATE; flags += STORE_CREATE) {
				bool init = flags == STORE_CREATE && cases[i].create_ok;
				snprintf(what, sizeof(what), "%s (flags %#x, %s)", cases[i].name,
					 flags, posix ? "POSIX" : "io_fault");
				int rc = open_image(posix, buf, cases[i].len, flags, what);
				int want = init ? 0 : -EINVAL;
				TU_ASSERT(rc == want, "%s: store_open = %s, expected %s; log: %s",
					  what, tf_errname(rc), tf_errname(want),
					  tu_log_text(log, sizeof(log)));
			}
		}
	}
	free(buf);
}
END_TEST

START_TEST(test_corrupt_version)
{
	struct fixture fx;
	char what[120], log[2048];

	fixture_init(&fx);
	uint8_t *img = malloc(fx.len);
	TU_ASSERT(img != NULL, "%s", "out of memory");
	struct {
		const char *name;
		unsigned off;
		uint32_t value;
	} cases[] = {
		{ "a newer format version", META_VERSION, STORE_FORMAT_VERSION + 1 },
		{ "format version 0", META_VERSION, 0 },
		{ "format version 0xffffffff", META_VERSION, 0xffffffffu },
		{ "page size 8192", META_PAGE_SIZE, 8192 },
		{ "page size 512", META_PAGE_SIZE, 512 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(img, fx.img, fx.len);
		for (unsigned slot = 0; slot < 2; slot++) {
			st32(img + slot * PS + cases[i].off, cases[i].value);
			meta_reseal(img + slot * PS, slot);
		}
		for (int posix = 0; posix < 2; posix++) {
			for (unsigned flags = 0; flags <= STORE_RDONLY; flags += STORE_RDONLY) {
				snprintf(what, sizeof(what), "%s (flags %#x, %s)", cases[i].name,
					 flags, posix ? "POSIX" : "io_fault");
				int rc = open_image(posix, img, fx.len, flags, what);
				TU_ASSERT(rc == -EPROTONOSUPPORT, "%s: store_open = %s, expected "
					  "EPROTONOSUPPORT; log: %s", what, tf_errname(rc),
					  tu_log_text(log, sizeof(log)));
			}
		}
	}
	/* Version 1 (every inode record of the old, fixed layout) is still read. */
	memcpy(img, fx.img, fx.len);
	for (unsigned slot = 0; slot < 2; slot++) {
		st32(img + slot * PS + META_VERSION, STORE_FORMAT_VERSION_MIN);
		meta_reseal(img + slot * PS, slot);
	}
	for (int posix = 0; posix < 2; posix++) {
		snprintf(what, sizeof(what), "format version 1 (%s)", posix ? "POSIX" : "io_fault");
		int rc = open_image(posix, img, fx.len, 0, what);
		TU_ASSERT(rc == 0, "%s: store_open = %s; log: %s", what, tf_errname(rc),
			  tu_log_text(log, sizeof(log)));
	}
	free(img);
	fixture_fini(&fx);
}
END_TEST

START_TEST(test_corrupt_truncated)
{
	struct fixture fx;
	char what[120], log[2048];

	fixture_init(&fx);
	uint64_t pc = fx.L.page_count;
	const size_t sizes[] = { 100, PS, PS + 2000, 2 * PS - 1, 2 * PS, 2 * PS + 100,
				 (pc / 2) * PS, (pc - 1) * PS, pc * PS - 1 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int posix = 0; posix < 2; posix++) {
			snprintf(what, sizeof(what), "truncated to %zu of %zu bytes (page_count %"
				 PRIu64 ", %s)", sizes[i], fx.len, pc,
				 posix ? "POSIX" : "io_fault");
			int rc = open_image(posix, fx.img, sizes[i], 0, what);
			TU_ASSERT(rc == -EUCLEAN || rc == -EINVAL, "%s: store_open = %s, expected "
				  "EUCLEAN or EINVAL; log: %s", what, tf_errname(rc),
				  tu_log_text(log, sizeof(log)));
		}
	}
	fixture_fini(&fx);
}
END_TEST

/* ---- random flips ---- */

START_TEST(test_corrupt_random_flips)
{
	struct fixture fx;
	struct tu_rng r;
	char what[200];
	unsigned n = (unsigned)tu_seed("KVFS_CORRUPT_FLIPS", DEFAULT_FLIPS);
	uint64_t only;
	bool one = tu_seed_given("KVFS_CORRUPT_FLIP", &only);
	unsigned n_reach = 0, n_meta = 0, n_none = 0;

	fixture_init(&fx);
	tu_rng_init(&r, g_seed ^ 0x666c6970u);
	/* Half the flips anywhere in the file, half in pages the current state reaches (most
	 * of a file is free or preallocated). */
	pgno_t *reach = calloc(fx.L.npages, sizeof(*reach));
	size_t n_reachable = 0;
	TU_ASSERT(reach != NULL, "%s", "out of memory");
	for (pgno_t p = 0; p < fx.L.npages; p++)
		if (fx.L.pg[p].kind != PK_NONE)
			reach[n_reachable++] = p;
	for (unsigned i = 0; i < n; i++) {
		uint64_t off = i % 2 ? reach[tu_rng_below(&r, n_reachable)] * PS +
					       tu_rng_below(&r, PS)
				     : tu_rng_below(&r, fx.len);
		uint8_t mask = (uint8_t)tu_rng_range(&r, 1, 255);
		if (one && i != only)
			continue;
		pgno_t pg = off / PS;
		unsigned in = (unsigned)(off % PS);
		const struct pinfo *pi = &fx.L.pg[pg];
		struct io_fault *m = tf_machine_copy(fx.base, g_seed + i);
		snprintf(what, sizeof(what), "flip %u (replay: KVFS_SEED=%" PRIu64
			 " KVFS_CORRUPT_FLIP=%u): byte %" PRIu64 " (page %" PRIu64 " +%u, kind %u,"
			 " owner %d) ^= %#x", i, g_seed, i, off, pg, in, pi->kind, pi->owner, mask);
		tf_flip(m, STORE_FILE, off, mask);
		if (pi->kind == PK_META) {
			/* Either meta page: the store opens from the other one. */
			struct store *st = NULL;
			char log[2048];
			int rc = open_on(m, 0, &st);
			TU_ASSERT(rc == 0, "%s: store_open = %s; log: %s", what, tf_errname(rc),
				  tu_log_text(log, sizeof(log)));
			tf_state_expect_ok(st, state_of(&fx, fx.L.txnid[!pg]), NULL, what);
			tu_verify_ok(st);
			store_close(st);
			n_meta++;
		} else {
			struct damage d;
			memset(&d, 0, sizeof(d));
			if (pi->kind != PK_NONE && in < pi->covered) {
				if (pi->owner == OWN_CATALOG)
					d.catalog = true;
				else if (pi->owner == OWN_FREEDB)
					d.freedb = true;
				else
					d.tree[pi->owner] = true;
				n_reach++;
			} else {
				n_none++;
			}
			check_store(m, final_state(&fx), &d, what);
		}
		io_fault_free(m);
	}
	free(reach);
	if (getenv("KVFS_TEST_VERBOSE"))
		fprintf(stderr, "random flips: %u in reachable pages, %u in meta pages, %u "
			"elsewhere (file %zu bytes, page_count %" PRIu64 ")\n", n_reach, n_meta,
			n_none, fx.len, fx.L.page_count);
	fixture_fini(&fx);
}
END_TEST

static Suite *corrupt_suite(void)
{
	Suite *s = suite_create("corrupt");
	TCase *tc = tcase_create("corrupt");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_corrupt_meta_one);
	tcase_add_test(tc, test_corrupt_meta_both);
	tcase_add_test(tc, test_corrupt_branch);
	tcase_add_test(tc, test_corrupt_leaf);
	tcase_add_test(tc, test_corrupt_overflow);
	tcase_add_test(tc, test_corrupt_freelist);
	tcase_add_test(tc, test_corrupt_catalog);
	tcase_add_test(tc, test_corrupt_misdirected);
	tcase_add_test(tc, test_corrupt_lost_write);
	tcase_add_test(tc, test_corrupt_not_a_store);
	tcase_add_test(tc, test_corrupt_version);
	tcase_add_test(tc, test_corrupt_truncated);
	tcase_add_test(tc, test_corrupt_random_flips);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	g_seed = tu_seed("KVFS_SEED", DEFAULT_SEED);
	return tu_run_suite(corrupt_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
