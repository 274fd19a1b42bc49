/*
 * store/repair.c — repairs of the data file for kvfs-check (man/kvfs-check.8): rewriting a
 * meta slot from the other one, and rebuilding the free list from reachability.
 *
 * kvfs-check finds problems by reading the file itself (tools/check/); it never writes pages.
 * The writes are here, made with the library's own commit protocol, so that a repair is
 * crash-safe the way every commit is:
 *
 *   store_repair_meta     one meta page, written from the other slot's decoded meta page
 *                         (meta_encode with the target slot as the checksum seed), then
 *                         fdatasync.  A crash during the write leaves the target torn, which
 *                         is what it was (corrupt) or, for a rollback, the newer state.
 *   store_repair_rebuild  a normal durable commit whose free list starts empty: the pages no
 *                         tree reaches are freed under the commit's txnid, the freedb and
 *                         the meta page's free_pages and deferred runs are written anew.  A
 *                         crash before the meta page is durable leaves the store as it was.
 *
 * Both slots equal (after store_repair_meta): txn.c's load_meta then chooses slot 0, and
 * write_meta_durable writes the slot with the lower-or-equal txnid, slot 0, while slot 1
 * keeps the same state; the free list's gate is min(both slots) = that txnid.  Nothing in
 * txn.c needs both txnids to differ.
 *
 * The rebuild ignores the free list on disk by clearing it from the opened store's last
 * commit (st->meta) before its write transaction begins: freedb empty, free_pages 0, no
 * deferred runs.  No snapshot exists then (the store was just opened by us, under its
 * exclusive lock), and the commit publishes the new meta.  The old freedb's pages are
 * unreachable in the new state, so they are freed with every other page no tree reaches.
 * INV-1: those pages go under the commit's txnid, reusable once both meta pages are at least
 * this commit, because the older meta page may still reach some of them; INV-2 holds after
 * the commit by construction (reached once, or free once), which store_verify confirms.
 *
 * Refusals: the rebuild frees what the walk did not reach, so a walk that could not go
 * everywhere (a damaged page, a bad catalog entry, a page reached twice) would free live
 * pages.  It then writes nothing and returns -EUCLEAN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/txn.h"

static struct io_env *repair_env(const struct store_options *opt)
{
	return opt && opt->io ? opt->io : io_posix_env();
}

int store_repair_meta(const char *path, const struct store_options *opt, unsigned good_slot)
{
	if (good_slot > 1)
		return -EINVAL;
	struct io_file *f;
	int r = repair_env(opt)->open(repair_env(opt), path, 0, 0, &f);
	if (r < 0)
		return r;
	if ((r = f->m->lock(f, IO_LOCK_EXCL)) < 0)
		goto out;
	uint8_t page[STORE_PAGE_SIZE];
	ssize_t n = io_pread(f, page, STORE_PAGE_SIZE, (uint64_t)good_slot * STORE_PAGE_SIZE);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	if (n != STORE_PAGE_SIZE) {
		r = -EINVAL;
		goto out;
	}
	struct meta m;
	const char *why = NULL;
	if ((r = meta_decode(page, good_slot, &m, &why)) < 0)
		goto out;
	uint64_t size;
	if ((r = f->m->size(f, &size)) < 0)
		goto out;
	if (size < m.page_count * STORE_PAGE_SIZE) {
		r = -EUCLEAN;
		goto out;
	}
	unsigned bad = good_slot ^ 1;
	meta_encode(&m, bad, page);
	n = io_pwrite(f, page, STORE_PAGE_SIZE, (uint64_t)bad * STORE_PAGE_SIZE);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	r = io_sync(f);
out:
	f->m->close(f);
	return r;
}

/* ---- free-list rebuild ---- */

struct rec_fix {
	uint8_t name[STORE_MAX_TREE_NAME];
	size_t name_len;
	bool catalog;
	struct tree_rec rec;
};

struct rebuild {
	struct rec_fix *fix;
	size_t n_fix, cap_fix;
};

static int collect_fix(void *ctx, const void *name, size_t name_len, const struct tree_rec *rec)
{
	struct rebuild *rb = ctx;
	if (rb->n_fix == rb->cap_fix) {
		size_t cap = rb->cap_fix ? 2 * rb->cap_fix : 16;
		struct rec_fix *v = realloc(rb->fix, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rb->fix = v;
		rb->cap_fix = cap;
	}
	struct rec_fix *f = &rb->fix[rb->n_fix++];
	memset(f, 0, sizeof(*f));
	f->catalog = name == NULL;
	if (name) {
		if (name_len > sizeof(f->name))
			return -EUCLEAN; /* a catalog key is never longer (btree_put checks) */
		memcpy(f->name, name, name_len);
		f->name_len = name_len;
	}
	f->rec = *rec;
	return 0;
}

/* Walk the trees of the last commit; mark[] what they reach.  0, -EUCLEAN (damage), -errno. */
static int rebuild_walk(struct store *st, const struct store_options *opt, struct rebuild *rb,
			uint8_t **mark_out, uint64_t *page_count)
{
	struct store_txn *rt;
	int r = store_txn_begin(st, STORE_TXN_RDONLY, &rt);
	if (r < 0)
		return r;
	*page_count = rt->meta.page_count;
	uint8_t *mark = calloc(rt->meta.page_count, 1);
	if (!mark) {
		store_txn_abort(rt);
		return -ENOMEM;
	}
	int64_t n = verify_trees(rt, mark, opt ? opt->log : NULL, opt ? opt->log_ctx : NULL,
				 collect_fix, rb);
	store_txn_abort(rt);
	if (n != 0) {
		free(mark);
		if (n > 0)
			store_logf(st, "repair: %lld problems in the trees: the free list cannot be "
				   "rebuilt (nothing written)", (long long)n);
		return n > 0 ? -EUCLEAN : (int)n;
	}
	*mark_out = mark;
	return 0;
}

static int rebuild_commit(struct store *st, struct rebuild *rb, const uint8_t *mark,
			  uint64_t page_count, struct store_repair_result *res)
{
	lsn_t lsn = st->meta.lsn;
	/* No snapshot or writer exists yet: the next write transaction starts from this. */
	memset(&st->meta.freedb, 0, sizeof(st->meta.freedb));
	st->meta.free_pages = 0;
	st->meta.n_deferred = 0;
	memset(st->meta.deferred, 0, sizeof(st->meta.deferred));
	st->compact_at = 0;
	struct store_txn *txn;
	int r = store_txn_begin(st, 0, &txn);
	if (r < 0)
		return r;
	/* Counts are adjusted relative to the record as pages change: set the true ones first. */
	for (size_t i = 0; i < rb->n_fix; i++) {
		if (!rb->fix[i].catalog)
			continue;
		txn->catalog.rec.entries = rb->fix[i].rec.entries;
		txn->catalog.rec.pages = rb->fix[i].rec.pages;
		res->records_fixed++;
	}
	for (pgno_t p = FIRST_DATA_PGNO; p < page_count && r == 0; p++) {
		if (mark[p])
			continue;
		pgno_t e = p;
		while (e + 1 < page_count && !mark[e + 1])
			e++;
		r = freelist_free(txn, p, e - p + 1, 0);
		res->pages_freed += e - p + 1;
		p = e;
	}
	for (size_t i = 0; i < rb->n_fix && r == 0; i++) {
		if (rb->fix[i].catalog)
			continue;
		uint8_t rec[TREC_SIZE];
		trec_encode(&rb->fix[i].rec, rec);
		r = btree_put(&txn->catalog, rb->fix[i].name, rb->fix[i].name_len, rec, sizeof(rec));
		res->records_fixed++;
	}
	if (r < 0) {
		store_txn_abort(txn);
		return r;
	}
	store_txn_set_lsn(txn, lsn);
	txn->mod_seq++; /* the free list changed even when nothing else did: commit */
	if ((r = store_txn_commit(txn, 0)) < 0)
		return r;
	res->txnid = st->meta.txnid;
	return 0;
}

int store_repair_rebuild(const char *path, const struct store_options *opt,
			 struct store_repair_result *res)
{
	struct store_repair_result dummy;
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	struct store_options o;
	memset(&o, 0, sizeof(o));
	if (opt) {
		if (opt->flags)
			return -EINVAL;
		o = *opt;
	}
	struct store *st;
	int r = store_open(path, &o, &st);
	if (r < 0)
		return r;
	struct rebuild rb = { 0 };
	uint8_t *mark = NULL;
	uint64_t page_count = 0;
	r = rebuild_walk(st, &o, &rb, &mark, &page_count);
	if (r == 0)
		r = rebuild_commit(st, &rb, mark, page_count, res);
	if (r == 0 && (r = store_verify(st, o.log, o.log_ctx)) < 0)
		store_logf(st, "repair: the store does not verify clean after the free-list "
			   "rebuild");
	free(mark);
	free(rb.fix);
	int cr = store_close(st);
	return r < 0 ? r : cr;
}
