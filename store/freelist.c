/*
 * store/freelist.c — where pages come from and where they go: the persistent free list.
 *
 * The free list is the tree "freedb" (man/kvfs.5 FREE LIST): chunks of up to
 * STORE_FREE_CHUNK_RUNS runs keyed by (txnid, chunk).  Runs under txnid T were freed by commit
 * T: states before T can reach them.  They may be reused once the gate has reached T:
 *
 *   gate = min(oldest live read snapshot, older meta page on disk, last commit)
 *
 * so that neither a reader (INV-1 for snapshots) nor a crash that falls back to the older meta
 * page (INV-1 on disk) can meet a reused page.  NOSYNC commits do not write meta pages, so the
 * disk's two meta pages, and with them the gate, only move on durable commits.
 *
 * A write transaction allocates from `pool`, lowest page number first (first fit): pool holds
 * the meta page's deferred runs, then the lowest-keyed reusable chunks, loaded one at a time
 * (and deleted from the freedb); when none fits, the file grows.  Pages it frees go to `freed`,
 * except pages it allocated itself, which no one else can see and which go back to `pool`.
 *
 * Why lowest first, not LIFO: only a free run at the end of the file can be given back (below),
 * so an allocator that reuses the highest (or the most recently freed, which after churn are
 * anywhere) pages keeps the file's tail occupied and the file at its high-water mark.  Handing
 * out the lowest pages lets the tail drain.  Chunks are loaded in key order, lowest first:
 * txnid 0 (reusable leftovers; after a compaction pass, below, they hold every reusable run in
 * page order, so chunk (0, 0) holds the lowest free pages of the file), then the oldest freed.
 * Only the choice among reusable pages changes; what is reusable (the gate) does not.
 *
 * Commit (freelist_commit) must record `freed` and what is left of `pool` in the freedb, but
 * writing the freedb allocates and frees pages itself.  The recursion is cut this way:
 *   1. every freedb leaf that will receive a chunk is materialized and the freedb is
 *      rebalanced, repeatedly until no new page is freed (materializing frees the old page);
 *   2. a reserve of pages for the freedb's own pages is set aside from pool (the lowest run
 *      that covers it, else the largest runs, at most META_DEFERRED_MAX - 1) and, if that is
 *      not enough, from the end of the file, with an upper bound on what the spill can need;
 *   3. `freed` goes in as chunks (txnid, 0..), `pool` as chunks (0, next..) — reusable at once;
 *   4. the freedb is spilled taking pages only from the reserve (or the file end);
 *   5. the unused tail of the reserve (at most META_DEFERRED_MAX runs) is the meta page's
 *      deferred runs, which the next write transaction puts in its pool first.
 * Every page is then reachable, in a freedb chunk, or in a deferred run: INV-2.
 *
 * A free run that ends at the end of the file is cut off instead (page_count shrinks), and
 * pager_trim() gives the file's tail back once both meta pages agree.  Only runs in pool can
 * be cut, so a commit may first load every reusable chunk into pool (a compaction pass); what
 * is not cut goes back, sorted and merged, as chunks (0, 0..) under txnid 0.  The pass costs
 * O(free list), about the freedb's pages rewritten, so it runs only when that is paid for:
 *   - when the commit already wrote at least COMPACT_PAID times the freedb's pages (a
 *     checkpoint piece; the pass then adds at most a fraction of its writes), or
 *   - when the free list has grown large (a quarter of the file, and twice what it was after
 *     the last pass: amortized by the doubling), or
 *   - when the txnid-0 chunk numbers run high (they restart at 0 after a pass).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/page.h"
#include "store/txn.h"

/* A commit that wrote at least this many times the freedb's pages runs a compaction pass. */
#define COMPACT_PAID 4

static int runvec_push(struct runvec *rv, pgno_t pgno, uint64_t count)
{
	if (rv->n && rv->v[rv->n - 1].pgno + rv->v[rv->n - 1].count == pgno) {
		rv->v[rv->n - 1].count += count;
		return 0;
	}
	if (rv->n == rv->cap) {
		size_t cap = rv->cap ? rv->cap * 2 : 64;
		struct run *v = realloc(rv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rv->v = v;
		rv->cap = cap;
	}
	rv->v[rv->n].pgno = pgno;
	rv->v[rv->n].count = count;
	rv->n++;
	return 0;
}

static uint64_t runvec_pages(const struct runvec *rv)
{
	uint64_t s = 0;
	for (size_t i = 0; i < rv->n; i++)
		s += rv->v[i].count;
	return s;
}

static int run_cmp(const void *a, const void *b)
{
	const struct run *x = a, *y = b;
	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* Sort by page number and merge neighbours. */
static void runvec_normalize(struct runvec *rv)
{
	if (rv->n < 2)
		return;
	qsort(rv->v, rv->n, sizeof(rv->v[0]), run_cmp);
	size_t o = 0;
	for (size_t i = 1; i < rv->n; i++) {
		if (rv->v[o].pgno + rv->v[o].count == rv->v[i].pgno)
			rv->v[o].count += rv->v[i].count;
		else
			rv->v[++o] = rv->v[i];
	}
	rv->n = o + 1;
}

static void free_key(uint8_t *k, txnid_t txnid, uint32_t chunk)
{
	stbe64(k, txnid);
	stbe32(k + 8, chunk);
}

int freelist_begin(struct store_txn *txn)
{
	struct store *st = txn->st;
	struct freelist *fl = &txn->fl;
	memset(fl, 0, sizeof(*fl));
	txnid_t gate = txn->meta.txnid;
	txnid_t d0 = atomic_load(&st->disk_txnid[0]), d1 = atomic_load(&st->disk_txnid[1]);
	txnid_t d = d0 < d1 ? d0 : d1;
	if (d < gate)
		gate = d;
	txnid_t oldest = store_oldest_reader(st, NULL, NULL);
	if (oldest < gate)
		gate = oldest;
	fl->gate = gate;
	for (uint32_t i = 0; i < txn->meta.n_deferred; i++) {
		int r = runvec_push(&fl->pool, txn->meta.deferred[i].pgno,
				    txn->meta.deferred[i].count);
		if (r < 0)
			return r;
		fl->loaded += txn->meta.deferred[i].count;
	}
	txn->meta.n_deferred = 0;
	memset(txn->meta.deferred, 0, sizeof(txn->meta.deferred));
	return 0;
}

void freelist_end(struct store_txn *txn)
{
	free(txn->fl.pool.v);
	free(txn->fl.freed.v);
	free(txn->fl.reserve.v);
	memset(&txn->fl, 0, sizeof(txn->fl));
}

/* Check one chunk's value and append its runs to rv (or call fn).  0 or -EUCLEAN. */
static int chunk_decode(struct store_txn *txn, const struct store_val *key,
			const struct store_val *val, struct runvec *rv,
			int (*fn)(void *ctx, txnid_t key, pgno_t pgno, uint64_t count), void *ctx)
{
	pgno_t where = txn->freedb.rec.root;
	if (key->len != FREE_KEY_SIZE || val->len == 0 || val->len % FREE_RUN_SIZE ||
	    val->len / FREE_RUN_SIZE > STORE_FREE_CHUNK_RUNS)
		return CORRUPT(txn->st, where, "free-list chunk of %zu bytes is malformed",
			       val->len);
	txnid_t ktx = ldbe64(key->data);
	const uint8_t *p = val->data;
	for (size_t i = 0; i < val->len / FREE_RUN_SIZE; i++, p += FREE_RUN_SIZE) {
		pgno_t pgno = ld64(p);
		uint64_t count = ld32(p + 8);
		if (count == 0 || pgno < FIRST_DATA_PGNO || pgno >= txn->meta.page_count ||
		    count > txn->meta.page_count - pgno)
			return CORRUPT(txn->st, where, "free-list run %llu+%llu out of range "
				       "(page_count %llu)", (unsigned long long)pgno,
				       (unsigned long long)count,
				       (unsigned long long)txn->meta.page_count);
		int r = rv ? runvec_push(rv, pgno, count) : fn(ctx, ktx, pgno, count);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Move the lowest-keyed reusable chunk into pool (header: why lowest).  0, -ENOENT (none),
 * -errno. */
static int load_chunk(struct store_txn *txn)
{
	struct freelist *fl = &txn->fl;
	struct store_cursor *c;
	int r = store_cursor_open(&txn->freedb, &c);
	if (r < 0)
		return r;
	uint8_t hi[FREE_KEY_SIZE];
	free_key(hi, fl->gate + 1, 0);
	r = store_cursor_set_range(c, NULL, 0, hi, sizeof(hi));
	if (r == 0)
		r = store_cursor_first(c);
	struct store_val k, v;
	if (r == 0)
		r = store_cursor_get(c, &k, &v);
	uint8_t key[FREE_KEY_SIZE];
	if (r == 0) {
		uint64_t before = runvec_pages(&fl->pool);
		r = chunk_decode(txn, &k, &v, &fl->pool, NULL, NULL);
		fl->loaded += runvec_pages(&fl->pool) - before;
		memcpy(key, k.data, sizeof(key));
	}
	store_cursor_close(c);
	if (r < 0)
		return r;
	return btree_del(&txn->freedb, key, sizeof(key));
}

/* Grow the file by n pages. */
static int alloc_end(struct store_txn *txn, uint64_t n, pgno_t *pgno)
{
	pgno_t p = txn->meta.page_count;
	int r = pager_ensure_size(txn->st, p + n);
	if (r < 0)
		return r;
	txn->meta.page_count = p + n;
	*pgno = p;
	return 0;
}

int freelist_alloc(struct store_txn *txn, uint64_t n, pgno_t *pgno)
{
	struct freelist *fl = &txn->fl;
	int r;
	if (fl->finalizing) {
		while (fl->reserve_next < fl->reserve.n && fl->reserve.v[fl->reserve_next].count < n)
			fl->reserve_next++; /* the spill takes single pages: nothing is skipped */
		if (fl->reserve_next < fl->reserve.n) {
			struct run *run = &fl->reserve.v[fl->reserve_next];
			*pgno = run->pgno;
			run->pgno += n;
			run->count -= n;
		} else if ((r = alloc_end(txn, n, pgno)) < 0) {
			return r;
		}
		pager_forget(txn->st, *pgno, n);
		return 0;
	}
	for (int loads = 0;; loads++) {
		if (n > 1) /* a run: neighbours from different chunks may make one */
			runvec_normalize(&fl->pool);
		/* the lowest run that fits (pool is in no particular order: normalized only for
		 * runs, and an emptied run is replaced by the last one) */
		size_t best = fl->pool.n;
		for (size_t i = 0; i < fl->pool.n; i++) {
			const struct run *run = &fl->pool.v[i];
			if (run->count >= n && (best == fl->pool.n || run->pgno < fl->pool.v[best].pgno))
				best = i;
		}
		if (best < fl->pool.n) {
			struct run *run = &fl->pool.v[best];
			*pgno = run->pgno;
			run->pgno += n;
			run->count -= n;
			if (run->count == 0)
				*run = fl->pool.v[--fl->pool.n];
			pager_forget(txn->st, *pgno, n);
			return 0;
		}
		if (fl->exhausted || loads >= 8)
			break;
		r = load_chunk(txn);
		if (r == -ENOENT)
			fl->exhausted = true;
		else if (r < 0)
			return r;
	}
	if ((r = alloc_end(txn, n, pgno)) < 0)
		return r;
	pager_forget(txn->st, *pgno, n);
	return 0;
}

int freelist_free(struct store_txn *txn, pgno_t pgno, uint64_t n, txnid_t page_txnid)
{
	struct freelist *fl = &txn->fl;
	return runvec_push(page_txnid == txn->txnid ? &fl->pool : &fl->freed, pgno, n);
}

/* The next free chunk number under txnid 0. */
static int next_zero_chunk(struct store_txn *txn, uint32_t *out)
{
	struct store_cursor *c;
	int r = store_cursor_open(&txn->freedb, &c);
	if (r < 0)
		return r;
	uint8_t lo[FREE_KEY_SIZE], hi[FREE_KEY_SIZE];
	free_key(lo, 0, 0);
	free_key(hi, 1, 0);
	r = store_cursor_set_range(c, lo, sizeof(lo), hi, sizeof(hi));
	if (r == 0)
		r = store_cursor_last(c);
	struct store_val k;
	*out = 0;
	if (r == 0 && (r = store_cursor_get(c, &k, NULL)) == 0) {
		if (k.len != FREE_KEY_SIZE)
			r = CORRUPT(txn->st, txn->freedb.rec.root, "free-list key of %zu bytes",
				    k.len);
		else
			*out = ldbe32((const uint8_t *)k.data + 8) + 1;
	}
	store_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

static size_t chunks_for(size_t runs)
{
	return (runs + STORE_FREE_CHUNK_RUNS - 1) / STORE_FREE_CHUNK_RUNS;
}

/* Insert rv as chunks keyed (txnid, first..). */
static int put_chunks(struct store_txn *txn, const struct runvec *rv, txnid_t txnid,
		      uint32_t first)
{
	uint8_t key[FREE_KEY_SIZE];
	uint8_t *val = txn_alloc(txn, STORE_FREE_CHUNK_RUNS * FREE_RUN_SIZE);
	if (!val)
		return -ENOMEM;
	size_t i = 0;
	for (uint32_t c = first; i < rv->n; c++) {
		size_t k = 0;
		for (; k < STORE_FREE_CHUNK_RUNS && i < rv->n; k++, i++) {
			uint64_t left = rv->v[i].count;
			pgno_t pgno = rv->v[i].pgno;
			if (left > UINT32_MAX) { /* split a huge run across entries */
				st64(val + k * FREE_RUN_SIZE, pgno);
				st32(val + k * FREE_RUN_SIZE + 8, UINT32_MAX);
				rv->v[i].pgno += UINT32_MAX;
				rv->v[i].count -= UINT32_MAX;
				i--;
				continue;
			}
			st64(val + k * FREE_RUN_SIZE, pgno);
			st32(val + k * FREE_RUN_SIZE + 8, (uint32_t)left);
		}
		free_key(key, txnid, c);
		int r = btree_put(&txn->freedb, key, sizeof(key), val, k * FREE_RUN_SIZE);
		if (r < 0)
			return r;
	}
	return 0;
}

static int touch_chunks(struct store_txn *txn, txnid_t txnid, uint32_t first, size_t n)
{
	uint8_t key[FREE_KEY_SIZE];
	for (size_t i = 0; i < n; i++) {
		free_key(key, txnid, first + (uint32_t)i);
		int r = btree_touch(&txn->freedb, key, sizeof(key));
		if (r < 0)
			return r;
	}
	return 0;
}

int freelist_commit(struct store_txn *txn)
{
	struct freelist *fl = &txn->fl;
	struct store_tree *fdb = &txn->freedb;
	uint32_t zc;
	int r = next_zero_chunk(txn, &zc);
	if (r < 0)
		return r;
	size_t n_w, n_0;
	uint64_t need;
	struct store *st = txn->st;
	uint64_t free_now = txn->meta.free_pages;
	bool paid = free_now > 0 && txn->n_pages >= COMPACT_PAID * (fdb->rec.pages + 1);
	bool large = free_now >= 256 && free_now >= txn->meta.page_count / 4 &&
		     free_now >= st->compact_at;
	if (paid || large || zc >= UINT32_MAX / 2) {
		while (!fl->exhausted) {
			r = load_chunk(txn);
			if (r == -ENOENT)
				fl->exhausted = true;
			else if (r < 0)
				return r;
		}
		zc = 0; /* every txnid-0 chunk was reusable, so loaded and deleted */
		if (large)
			st->compact_at = 0; /* set below from what is left */
	}
	/* 1. materialize and rebalance until nothing more is freed, with enough reusable pages
	 *    in pool for the reserve (loading a chunk deletes it: another change) */
	for (;;) {
		uint64_t before = runvec_pages(&fl->freed) + runvec_pages(&fl->pool);
		runvec_normalize(&fl->pool);
		runvec_normalize(&fl->freed);
		while (fl->pool.n) { /* a free run at the end of the file: cut it off */
			struct run *last = &fl->pool.v[fl->pool.n - 1];
			if (last->pgno + last->count != txn->meta.page_count)
				break;
			txn->meta.page_count = last->pgno;
			fl->pool.n--;
		}
		n_w = chunks_for(fl->freed.n) + 1;
		n_0 = chunks_for(fl->pool.n) + 1;
		if ((r = touch_chunks(txn, txn->txnid, 0, n_w)) < 0 ||
		    (r = touch_chunks(txn, 0, zc, n_0)) < 0 ||
		    (r = node_rebalance_tree(fdb)) < 0 ||
		    (r = touch_chunks(txn, txn->txnid, 0, n_w)) < 0 ||
		    (r = touch_chunks(txn, 0, zc, n_0)) < 0)
			return r;
		uint64_t extra = (n_w + n_0) * (2 + LC_HDR + FREE_KEY_SIZE) +
				 (fl->freed.n + fl->pool.n) * FREE_RUN_SIZE;
		need = node_spill_estimate(fdb, extra);
		if (runvec_pages(&fl->pool) < need && !fl->exhausted) {
			r = load_chunk(txn);
			if (r == -ENOENT)
				fl->exhausted = true;
			else if (r < 0)
				return r;
			continue;
		}
		if (runvec_pages(&fl->freed) + runvec_pages(&fl->pool) == before)
			break;
	}
	/* 2. the reserve for the freedb's own pages: pool runs, then the file's end */
	fl->reserve.n = 0;
	fl->reserve_next = 0;
	while (need && fl->pool.n && fl->reserve.n < META_DEFERRED_MAX - 1) {
		/* the lowest run that covers what is needed (pool is sorted: the first), else the
		 * largest run: few runs cover the reserve */
		size_t best = fl->pool.n;
		for (size_t i = 0; i < fl->pool.n && best == fl->pool.n; i++)
			if (fl->pool.v[i].count >= need)
				best = i;
		if (best == fl->pool.n)
			for (size_t i = best = 0; i < fl->pool.n; i++)
				if (fl->pool.v[i].count > fl->pool.v[best].count)
					best = i;
		struct run *run = &fl->pool.v[best];
		uint64_t take = run->count < need ? run->count : need;
		if ((r = runvec_push(&fl->reserve, run->pgno, take)) < 0)
			return r;
		run->pgno += take;
		run->count -= take;
		if (run->count == 0) {
			memmove(run, run + 1, (fl->pool.n - best - 1) * sizeof(*run));
			fl->pool.n--;
		}
		need -= take;
	}
	if (need) {
		pgno_t pgno;
		if ((r = alloc_end(txn, need, &pgno)) < 0 ||
		    (r = runvec_push(&fl->reserve, pgno, need)) < 0)
			return r;
	}
	/* 3. record freed and pool; nothing may be materialized any more */
	uint64_t freed_pages = runvec_pages(&fl->freed), pool_pages = runvec_pages(&fl->pool);
	size_t freed_runs = fl->freed.n, pool_runs = fl->pool.n;
	if ((r = put_chunks(txn, &fl->freed, txn->txnid, 0)) < 0 ||
	    (r = put_chunks(txn, &fl->pool, 0, zc)) < 0)
		return r;
	if (fl->freed.n != freed_runs || fl->pool.n != pool_runs ||
	    runvec_pages(&fl->freed) != freed_pages || runvec_pages(&fl->pool) != pool_pages) {
		store_logf(txn->st, "free list changed while being recorded (internal error)");
		return -EIO;
	}
	/* 4. write the freedb from the reserve */
	fl->finalizing = true;
	if ((r = node_spill_tree(fdb)) < 0)
		return r;
	/* 5. the rest of the reserve waits in the meta page, but what lies at the end of the
	 *    file is cut off instead (the estimate is generous: the file need not grow for it) */
	uint64_t deferred_pages = 0;
	txn->meta.n_deferred = 0;
	struct runvec *rv = &fl->reserve;
	size_t o = 0;
	for (size_t i = fl->reserve_next; i < rv->n; i++)
		if (rv->v[i].count)
			rv->v[o++] = rv->v[i];
	rv->n = o;
	fl->reserve_next = 0;
	runvec_normalize(rv);
	while (rv->n && rv->v[rv->n - 1].pgno + rv->v[rv->n - 1].count == txn->meta.page_count) {
		txn->meta.page_count = rv->v[rv->n - 1].pgno;
		rv->n--;
	}
	for (size_t i = 0; i < rv->n; i++) {
		txn->meta.deferred[txn->meta.n_deferred].pgno = rv->v[i].pgno;
		txn->meta.deferred[txn->meta.n_deferred].count = rv->v[i].count;
		txn->meta.n_deferred++;
		deferred_pages += rv->v[i].count;
	}
	txn->meta.freedb = fdb->rec;
	txn->meta.free_pages = txn->meta.free_pages - fl->loaded + freed_pages + pool_pages +
			       deferred_pages;
	if (st->compact_at == 0)
		st->compact_at = 2 * txn->meta.free_pages;
	return 0;
}

struct walk_ctx {
	int (*fn)(void *ctx, txnid_t key, pgno_t pgno, uint64_t count);
	void *ctx;
};

int freelist_walk(struct store_txn *txn, int (*fn)(void *ctx, txnid_t key, pgno_t pgno,
						   uint64_t count), void *ctx)
{
	struct store_cursor *c;
	int r = store_cursor_open(&txn->freedb, &c);
	if (r < 0)
		return r;
	for (r = store_cursor_first(c); r == 0; r = store_cursor_next(c)) {
		struct store_val k, v;
		if ((r = store_cursor_get(c, &k, &v)) < 0)
			break;
		if ((r = chunk_decode(txn, &k, &v, NULL, fn, ctx)) < 0)
			break;
	}
	store_cursor_close(c);
	if (r != -ENOENT)
		return r;
	for (uint32_t i = 0; i < txn->meta.n_deferred; i++)
		if ((r = fn(ctx, 0, txn->meta.deferred[i].pgno, txn->meta.deferred[i].count)) < 0)
			return r;
	return 0;
}
