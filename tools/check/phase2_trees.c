/*
 * tools/check/phase2_trees.c — phase 2: each tree as a whole, across its pages (man/kvfs.5
 * "TREE RECORD", "BRANCH CELL").
 *
 * Walks the catalog, every named tree and the free-list tree again, descending only into
 * pages phase 1 reached and found sound (PG_REACHED without PG_BAD; each page is re-checked
 * with pager_check_page, since a store in use may change under us), each page once.  Checks:
 *   - separator bounds: every key of child i, and every separator below it, lies in
 *     [separator i, separator i+1) of every ancestor                  TREE_SEPARATOR
 *   - the tree record (the meta page's for the catalog and the free list, the catalog value
 *     for a named tree): entries and pages (branch + leaf + overflow) agree with the walk,
 *     when the walk was complete                                       TREE_RECORD
 * In-page key order, levels and depth were checked by phase 1 (page_check, expected level).
 * Notes, per tree: levels, pages, entries and fill (bytes of header, slots and cells over the
 * page bytes of its branch and leaf pages).
 *
 * It also feeds phase 5: every leaf entry of an engine tree ("t0".."t7", engine.c) goes to
 * chk_ns_tree_entry in key order, with its value when chk_ns_wants_value (inline bytes, or
 * the overflow run read and checked again; NULL when unreadable).  Entries below a damaged
 * or unreached page are missing: c->ns_incomplete is set.
 *
 * TREE_RECORD's fix is phase 3's free-list rebuild, which rewrites records from a walk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"
#include "store/page.h"
#include "tools/check/check.h"

static const struct chk_def defs[] = {
#define TREE_SEPARATOR (&defs[0])
	{ "TREE_SEPARATOR", SEV_ERROR, false, false,
	  "a key or separator outside its parent's separators", NULL },
#define TREE_RECORD (&defs[1])
	{ "TREE_RECORD", SEV_WARNING, true, true,
	  "a tree record's entries or pages disagree with the tree",
	  "rewrite the record (with the free-list rebuild)" },
};

#define MAX_LEVELS 64
#define VALUE_MAX (256u << 20) /* larger values are not handed to phase 5 */

struct walk {
	struct chk *c;
	uint8_t (*buf)[STORE_PAGE_SIZE];
	uint8_t *seen;          /* bitmap: descended into by this phase */
	const char *tree;
	int engine;             /* engine tree number, -1 for others */
	bool catalog, complete;
	uint64_t entries, pages, node_pages, used_bytes, done;
	uint8_t *vbuf;          /* overflow values for phase 5 */
	size_t vcap;
};

/* Hand one engine-tree entry to phase 5.  0 or -errno (read failure). */
static int ns_entry(struct walk *w, const uint8_t *cell)
{
	struct chk *c = w->c;
	unsigned tree = (unsigned)w->engine;
	uint32_t vlen = leaf_vlen(cell);
	const void *val = NULL;
	if (chk_ns_wants_value(tree)) {
		if (leaf_vtype(cell) == VTYPE_INLINE) {
			val = leaf_val(cell);
		} else {
			const uint8_t *o = leaf_val(cell);
			pgno_t op = ld64(o + OVF_PGNO);
			uint64_t np = ovf_pages(vlen);
			if (vlen <= VALUE_MAX && op >= FIRST_DATA_PGNO && op < c->page_count &&
			    np <= c->page_count - op) {
				size_t need = np * STORE_PAGE_SIZE;
				if (need > w->vcap) {
					uint8_t *b = realloc(w->vbuf, need);
					if (!b)
						return -ENOMEM;
					w->vbuf = b;
					w->vcap = need;
				}
				int r = need ? chk_read_pages(c, op, np, w->vbuf) : 0;
				if (r < 0)
					return r;
				if (checksum64(w->vbuf, vlen, op) == ld64(o + OVF_CHECKSUM))
					val = w->vbuf;
			}
			if (!val)
				c->ns_incomplete = true;
		}
	}
	chk_ns_tree_entry(c, tree, leaf_key(cell), leaf_klen(cell), val, vlen);
	return 0;
}

static int walk(struct walk *w, pgno_t pgno, txnid_t expect, unsigned level,
		struct key_bound lo, struct key_bound hi)
{
	struct chk *c = w->c;
	if (pgno < FIRST_DATA_PGNO || pgno >= c->page_count || level >= MAX_LEVELS ||
	    !(c->pg[pgno] & PG_REACHED) || (c->pg[pgno] & PG_BAD) ||
	    (w->seen[pgno / 8] >> (pgno % 8) & 1)) {
		w->complete = false; /* phase 1 reported why */
		return 0;
	}
	w->seen[pgno / 8] |= (uint8_t)(1u << (pgno % 8));
	uint8_t *p = w->buf[level];
	int r = chk_read_page(c, pgno, p);
	if (r < 0)
		return r;
	char tmp[160];
	if (pager_check_page(p, pgno, expect, level, true, tmp, sizeof(tmp))) {
		w->complete = false; /* changed since phase 1: a store in use */
		return 0;
	}
	if (++w->done % 1024 == 0)
		chk_progress(c, w->done, c->n_pages_used);
	unsigned n = page_nkeys(p);
	w->pages++;
	w->node_pages++;
	w->used_bytes += PH_SIZE + 2u * n + (STORE_PAGE_SIZE - ld16(p + PH_UPPER));
	if (level == 0) {
		unsigned outside = 0, first = 0;
		for (unsigned i = 0; i < n; i++) {
			const uint8_t *cell = page_cell(p, i);
			if (!key_in_bounds(leaf_key(cell), leaf_klen(cell), &lo, &hi) && !outside++)
				first = i;
			w->entries++;
			if (leaf_vtype(cell) == VTYPE_OVERFLOW)
				w->pages += ovf_pages(leaf_vlen(cell));
			if (!w->catalog && w->engine >= 0)
				r = ns_entry(w, cell);
			if (r < 0)
				return r;
		}
		if (outside)
			chk_report(c, TREE_SEPARATOR, pgno, 0, "tree %s: %u of %u keys (the first: "
				   "key %u) outside the separators of its parent", w->tree, outside,
				   n, first);
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *cell = page_cell(p, i);
		struct key_bound clo = lo, chi = hi;
		if (i > 0) {
			clo.key = branch_key(cell);
			clo.len = branch_klen(cell);
			clo.set = true;
			if (!key_in_bounds(clo.key, clo.len, &lo, &hi))
				chk_report(c, TREE_SEPARATOR, pgno, 0, "tree %s: separator %u outside "
					   "the separators of its parent", w->tree, i);
		}
		if (i + 1 < n) {
			const uint8_t *nc = page_cell(p, i + 1);
			chi.key = branch_key(nc);
			chi.len = branch_klen(nc);
			chi.set = true;
		}
		if ((r = walk(w, branch_child(cell), branch_child_txnid(cell), level - 1, clo,
			      chi)) < 0)
			return r;
	}
	return 0;
}

/* Walk one tree; `where` is the page holding its record (0: the meta page). */
static int walk_tree(struct walk *w, const char *name, const struct tree_rec *rec,
		     int engine)
{
	struct chk *c = w->c;
	w->tree = name;
	w->engine = engine;
	w->complete = true;
	w->entries = w->pages = w->node_pages = w->used_bytes = 0;
	struct key_bound none = { NULL, 0, false };
	if (rec->root && rec->depth >= 1 && rec->depth <= MAX_LEVELS) {
		int r = walk(w, rec->root, rec->root_txnid, rec->depth - 1, none, none);
		if (r < 0)
			return r;
	}
	if (!w->complete) {
		if (engine >= 0)
			c->ns_incomplete = true;
		chk_note(c, "tree %s: damaged, not counted", name);
		return 0;
	}
	if (w->entries != rec->entries || w->pages != rec->pages)
		chk_report(c, TREE_RECORD, 0, 0, "tree %s: its record says %llu entries and %llu "
			   "pages; the tree holds %llu entries in %llu pages", name,
			   (unsigned long long)rec->entries, (unsigned long long)rec->pages,
			   (unsigned long long)w->entries, (unsigned long long)w->pages);
	unsigned fill = w->node_pages ?
		(unsigned)(w->used_bytes * 100 / (w->node_pages * STORE_PAGE_SIZE)) : 0;
	chk_note(c, "tree %s: %u levels, %llu pages, %llu entries, fill %u%%", name, rec->depth,
		 (unsigned long long)w->pages, (unsigned long long)w->entries, fill);
	return 0;
}

static int run(struct chk *c)
{
	struct walk w = { .c = c, .engine = -1 };
	w.buf = malloc(MAX_LEVELS * sizeof(*w.buf));
	w.seen = calloc(c->page_count / 8 + 1, 1);
	int r = -ENOMEM;
	if (!w.buf || !w.seen || !c->pg)
		goto out;
	w.catalog = true;
	if ((r = walk_tree(&w, "(catalog)", &c->meta.catalog, -1)) < 0)
		goto out;
	w.catalog = false;
	for (size_t i = 0; i < c->n_sound_trees; i++) /* phase 1 decoded the records */
		if ((r = walk_tree(&w, c->trees[i].name, &c->trees[i].rec, c->trees[i].engine)) < 0)
			goto out;
	if ((r = walk_tree(&w, "(free list)", &c->meta.freedb, -1)) < 0)
		goto out;
	chk_progress(c, 1, 1);
	r = 0;
out:
	free(w.buf);
	free(w.seen);
	free(w.vbuf);
	return r;
}

const struct chk_phase chk_phase_trees = {
	.num = 2,
	.name = "trees",
	.defs = defs,
	.ndefs = sizeof(defs) / sizeof(defs[0]),
	.run = run,
};
