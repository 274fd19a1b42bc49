/*
 * store/verify.c — the verifier inside the library (store_verify): a full walk of one
 * snapshot that tests run after every commit and kvfs-check builds on.
 *
 * It checks, for the catalog, every named tree and the free-list tree:
 *   - every page: checksum, page number, structure, and the parent's expectation (txnid,
 *     level) — always in full, ignoring the pager's verified bits;
 *   - key order within pages and separator bounds across them (every key of child i lies in
 *     [separator i, separator i+1) of every ancestor);
 *   - uniform depth (levels count down to 0 at every leaf);
 *   - overflow runs: within page_count, checksum;
 *   - the tree record: entries and pages agree with what was walked;
 *   - INV-2: every page from FIRST_DATA_PGNO to page_count is reachable exactly once or free
 *     (a freedb run or the meta page's deferred run) exactly once, and meta free_pages agrees.
 * It reports every problem (up to a limit) and never stops at the first.
 *
 * verify_trees() is the same walk without the free list, for the free-list rebuild
 * (store/repair.c): it marks what the trees reach, so that everything else can be freed, and
 * hands tree records whose counts disagree to the caller instead of reporting them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"
#include "store/page.h"
#include "store/txn.h"

#define VERIFY_MAX_REPORTS 200

enum { M_NONE = 0, M_REACH = 1, M_FREE = 2 };

struct vctx {
	struct store *st;
	struct store_txn *txn;
	uint8_t *mark;
	void (*report)(void *ctx, const char *line);
	void *ctx;
	uint64_t problems;
	uint64_t free_seen;
	const char *tree;
	/* verify_trees: records that disagree go here instead of being reported */
	int (*rec_fix)(void *ctx, const void *name, size_t name_len, const struct tree_rec *rec);
	void *fix_ctx;
	int fix_err;
};

static void vreport(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vreport(struct vctx *v, const char *fmt, ...)
{
	if (v->problems++ >= VERIFY_MAX_REPORTS)
		return;
	char msg[512], line[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "store %s: verify: %s", v->st->path, msg);
	if (v->report)
		v->report(v->ctx, line);
	else if (v->st->log)
		v->st->log(v->st->log_ctx, line);
	else
		fprintf(stderr, "kvfs: %s\n", line);
}

static void mark(struct vctx *v, pgno_t pgno, uint64_t n, int what)
{
	uint64_t pc = v->txn->meta.page_count;
	for (uint64_t i = 0; i < n; i++) {
		pgno_t p = pgno + i;
		if (p < FIRST_DATA_PGNO || p >= pc) {
			vreport(v, "tree %s: page %llu out of range (page_count %llu)", v->tree,
				(unsigned long long)p, (unsigned long long)pc);
			return;
		}
		if (v->mark[p]) {
			vreport(v, "tree %s: page %llu is %s and %s", v->tree, (unsigned long long)p,
				v->mark[p] == M_REACH ? "reachable" : "free",
				what == M_REACH ? "reachable again (INV-2)" : "free again (INV-2)");
			continue;
		}
		v->mark[p] = (uint8_t)what;
	}
}

static void walk(struct vctx *v, pgno_t pgno, txnid_t expect, unsigned level,
		 struct key_bound lo, struct key_bound hi, uint64_t *entries, uint64_t *pages)
{
	uint64_t pc = v->txn->meta.page_count;
	if (pgno < FIRST_DATA_PGNO || pgno >= pc) {
		vreport(v, "tree %s: child page %llu out of range (page_count %llu)", v->tree,
			(unsigned long long)pgno, (unsigned long long)pc);
		return;
	}
	if (v->mark[pgno]) {
		mark(v, pgno, 1, M_REACH); /* reports the double reference */
		return;
	}
	const uint8_t *p = v->txn->map->base + pgno * STORE_PAGE_SIZE;
	char buf[160];
	const char *why = pager_check_page(p, pgno, expect, level, true, buf, sizeof(buf));
	if (why) {
		vreport(v, "tree %s: page %llu: %s", v->tree, (unsigned long long)pgno, why);
		v->mark[pgno] = M_REACH; /* do not also call it leaked */
		return;
	}
	mark(v, pgno, 1, M_REACH);
	(*pages)++;
	unsigned n = page_nkeys(p);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *c = page_cell(p, i);
		if (level == 0) {
			if (!key_in_bounds(leaf_key(c), leaf_klen(c), &lo, &hi))
				vreport(v, "tree %s: page %llu: key %u outside its parent's "
					"separators", v->tree, (unsigned long long)pgno, i);
			(*entries)++;
			if (leaf_vtype(c) == VTYPE_OVERFLOW) {
				const uint8_t *o = leaf_val(c);
				pgno_t op = ld64(o + OVF_PGNO);
				uint32_t vlen = leaf_vlen(c);
				uint64_t np = ovf_pages(vlen);
				if (op < FIRST_DATA_PGNO || op >= pc || np > pc - op) {
					vreport(v, "tree %s: page %llu: overflow run %llu+%llu out of "
						"range", v->tree, (unsigned long long)pgno,
						(unsigned long long)op, (unsigned long long)np);
					continue;
				}
				mark(v, op, np, M_REACH);
				*pages += np;
				const uint8_t *data = v->txn->map->base + op * STORE_PAGE_SIZE;
				if (checksum64(data, vlen, op) != ld64(o + OVF_CHECKSUM))
					vreport(v, "tree %s: overflow run at page %llu (%u bytes): "
						"checksum mismatch", v->tree, (unsigned long long)op,
						vlen);
			}
			continue;
		}
		struct key_bound clo = lo, chi = hi;
		if (i > 0) {
			clo.key = branch_key(c);
			clo.len = branch_klen(c);
			clo.set = true;
			if (!key_in_bounds(clo.key, clo.len, &lo, &hi))
				vreport(v, "tree %s: page %llu: separator %u outside its parent's "
					"separators", v->tree, (unsigned long long)pgno, i);
		}
		if (i + 1 < n) {
			const uint8_t *nc = page_cell(p, i + 1);
			chi.key = branch_key(nc);
			chi.len = branch_klen(nc);
			chi.set = true;
		}
		walk(v, branch_child(c), branch_child_txnid(c), level - 1, clo, chi, entries,
		     pages);
	}
}

/* Walk one tree; `key` (key_len bytes) is its catalog key, NULL for the catalog itself and
 * the free list. */
static void walk_tree(struct vctx *v, const char *name, const void *key, size_t key_len,
		      const struct tree_rec *rec)
{
	v->tree = name;
	uint64_t entries = 0, pages = 0, before = v->problems;
	struct key_bound none = { NULL, 0, false };
	if (rec->root)
		walk(v, rec->root, rec->root_txnid, rec->depth - 1, none, none, &entries, &pages);
	if (v->rec_fix && (entries != rec->entries || pages != rec->pages)) {
		if (v->problems != before)
			return; /* the walk was incomplete: its counts mean nothing */
		struct tree_rec found = *rec;
		found.entries = entries;
		found.pages = pages;
		int r = v->rec_fix(v->fix_ctx, key, key_len, &found);
		if (r < 0 && !v->fix_err)
			v->fix_err = r;
		return;
	}
	if (entries != rec->entries)
		vreport(v, "tree %s: record says %llu entries, found %llu", name,
			(unsigned long long)rec->entries, (unsigned long long)entries);
	if (pages != rec->pages)
		vreport(v, "tree %s: record says %llu pages, found %llu", name,
			(unsigned long long)rec->pages, (unsigned long long)pages);
}

static int mark_free(void *ctx, txnid_t key, pgno_t pgno, uint64_t count)
{
	struct vctx *v = ctx;
	mark(v, pgno, count, M_FREE);
	v->free_seen += count;
	return 0;
}

/* The catalog and every named tree in it.  0, or -ENOMEM from the cursor. */
static int walk_catalog(struct vctx *v)
{
	struct store_txn *txn = v->txn;
	walk_tree(v, "(catalog)", NULL, 0, &txn->meta.catalog);
	struct store_cursor *c;
	int r;
	if ((r = store_cursor_open(&txn->catalog, &c)) < 0)
		return r;
	for (r = store_cursor_first(c); r == 0; r = store_cursor_next(c)) {
		struct store_val k, val;
		if ((r = store_cursor_get(c, &k, &val)) < 0)
			break;
		char name[STORE_MAX_TREE_NAME + 1];
		memcpy(name, k.data, k.len < sizeof(name) - 1 ? k.len : sizeof(name) - 1);
		name[k.len < sizeof(name) - 1 ? k.len : sizeof(name) - 1] = 0;
		if (val.len != TREC_SIZE) {
			vreport(v, "catalog: entry %s has %zu bytes, expected %d", name, val.len,
				TREC_SIZE);
			continue;
		}
		struct tree_rec rec;
		trec_decode(val.data, &rec);
		if ((rec.root == 0) != (rec.depth == 0) || rec.depth > MAX_DEPTH) {
			vreport(v, "catalog: entry %s: root/depth out of range", name);
			continue;
		}
		walk_tree(v, name, k.data, k.len, &rec);
	}
	store_cursor_close(c);
	if (r != -ENOENT)
		vreport(v, "catalog: walk failed: %s", strerror(-r));
	return 0;
}

int64_t verify_trees(struct store_txn *txn, uint8_t *mark,
		     void (*report)(void *ctx, const char *line), void *ctx,
		     int (*rec_fix)(void *ctx, const void *name, size_t name_len,
				    const struct tree_rec *rec), void *fix_ctx)
{
	struct vctx v = { .st = txn->st, .txn = txn, .mark = mark, .report = report, .ctx = ctx,
			  .rec_fix = rec_fix, .fix_ctx = fix_ctx };
	int r = walk_catalog(&v);
	if (r == 0)
		r = v.fix_err;
	return r < 0 ? r : (int64_t)v.problems;
}

int store_verify(struct store *st, void (*report)(void *ctx, const char *line), void *ctx)
{
	struct store_txn *txn;
	int r = store_txn_begin(st, STORE_TXN_RDONLY, &txn);
	if (r < 0)
		return r;
	struct vctx v = { .st = st, .txn = txn, .report = report, .ctx = ctx };
	v.mark = calloc(txn->meta.page_count, 1);
	if (!v.mark) {
		store_txn_abort(txn);
		return -ENOMEM;
	}
	if ((r = walk_catalog(&v)) < 0)
		goto out;
	walk_tree(&v, "(free list)", NULL, 0, &txn->meta.freedb);
	v.tree = "(free list)";
	r = freelist_walk(txn, mark_free, &v);
	if (r < 0)
		vreport(&v, "free list: walk failed: %s", strerror(-r));
	if (v.free_seen != txn->meta.free_pages)
		vreport(&v, "meta page says %llu free pages, the free list holds %llu",
			(unsigned long long)txn->meta.free_pages,
			(unsigned long long)v.free_seen);
	for (pgno_t p = FIRST_DATA_PGNO; p < txn->meta.page_count; p++) {
		if (v.mark[p])
			continue;
		pgno_t e = p;
		while (e + 1 < txn->meta.page_count && !v.mark[e + 1])
			e++;
		vreport(&v, "pages %llu..%llu are neither reachable nor free (leaked, INV-2)",
			(unsigned long long)p, (unsigned long long)e);
		p = e;
	}
	r = 0;
out:
	free(v.mark);
	store_txn_abort(txn);
	if (r < 0)
		return r;
	return v.problems ? -EUCLEAN : 0;
}
