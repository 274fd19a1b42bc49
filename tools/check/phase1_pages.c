/*
 * tools/check/phase1_pages.c — phase 1: every page the chosen meta page reaches, against what
 * its parent expects (man/kvfs.5 "PAGE HEADER", "LEAF CELL", "BRANCH CELL", "OVERFLOW REF").
 *
 * Walks, from their roots, the catalog (meta catalog record), every named tree in it (catalog
 * leaf: key = the name, value = a 40-byte TREE RECORD) and the free-list tree (meta freedb
 * record), reading each page with pread (chk_read_page), and checks, in this order (the
 * library's page_inspect, store/inspect.h, after the range):
 *   - the page number is inside [2, page_count)                       PAGE_OUT_OF_RANGE
 *   - the checksum (XXH3-64 of bytes 8..4095, seed = pgno)            PAGE_CHECKSUM
 *   - the header's page number (also when the checksum holds for the   PAGE_MISDIRECTED
 *     page number the header names: an intact page in the wrong place)
 *   - the header's txnid against the parent's child_txnid              PAGE_STALE
 *   - the level (parent level - 1) and type (leaf at level 0 only)     PAGE_LEVEL
 *   - offsets, lengths and key order in the page (page_check)          PAGE_STRUCTURE
 *   - overflow runs: inside page_count; checksum of the vlen bytes      OVERFLOW_RANGE,
 *     (seed = first page)                                               OVERFLOW_CHECKSUM
 *   - catalog values: a sound TREE RECORD (40 bytes, inline, root and   CATALOG_ENTRY
 *     depth agree, depth <= 64, flags zero)
 * Any damage inside the free-list tree is FREELIST_PAGE instead (its fix is phase 3's rebuild
 * of the free list); damage anywhere else sets c->trees_damaged (reachability is then
 * incomplete: no rebuild), and in an engine tree c->ns_incomplete.
 *
 * Page map (c->pg): PG_REACHED for each page reached, PG_SHARED when reached again (phase 3
 * reports SPACE_SHARED; a shared page also counts as tree damage, because rewriting either
 * parent would free it while the other still points at it), PG_BAD for a page that failed,
 * PG_OVERFLOW for overflow run pages, PG_FREEDB for pages of the free-list tree.
 *
 * Survives any bytes: every offset and length is checked before use (page_check runs before
 * any cell is read), the walk never goes deeper than 64 levels (a page must carry its
 * parent's level - 1, and the root level is below 64), and a page is descended into only the
 * first time it is reached, so a cycle of child pointers ends.  No repairs here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"
#include "store/page.h"
#include "tools/check/check.h"

static const struct chk_def defs[] = {
#define PAGE_CHECKSUM (&defs[0])
	{ "PAGE_CHECKSUM", SEV_ERROR, false, false, "a tree page fails its checksum", NULL },
#define PAGE_MISDIRECTED (&defs[1])
	{ "PAGE_MISDIRECTED", SEV_ERROR, false, false,
	  "a tree page's header names another page (misdirected write)", NULL },
#define PAGE_STALE (&defs[2])
	{ "PAGE_STALE", SEV_ERROR, false, false,
	  "a tree page carries another txnid than its parent expects (lost write)", NULL },
#define PAGE_LEVEL (&defs[3])
	{ "PAGE_LEVEL", SEV_ERROR, false, false,
	  "a tree page's level or type is not what its parent expects", NULL },
#define PAGE_STRUCTURE (&defs[4])
	{ "PAGE_STRUCTURE", SEV_ERROR, false, false,
	  "a tree page's offsets, lengths or in-page key order are wrong", NULL },
#define PAGE_OUT_OF_RANGE (&defs[5])
	{ "PAGE_OUT_OF_RANGE", SEV_ERROR, false, false,
	  "a child or root page number outside [2, page_count)", NULL },
#define OVERFLOW_RANGE (&defs[6])
	{ "OVERFLOW_RANGE", SEV_ERROR, false, false,
	  "an overflow run outside [2, page_count)", NULL },
#define OVERFLOW_CHECKSUM (&defs[7])
	{ "OVERFLOW_CHECKSUM", SEV_ERROR, false, false,
	  "an overflow run's bytes fail the checksum in their leaf cell", NULL },
#define CATALOG_ENTRY (&defs[8])
	{ "CATALOG_ENTRY", SEV_ERROR, false, false,
	  "a catalog value that is not a sound tree record", NULL },
#define FREELIST_PAGE (&defs[9])
	{ "FREELIST_PAGE", SEV_ERROR, true, true, "a page of the free-list tree is damaged",
	  "rebuild the free list from reachability" },
};

#define MAX_LEVELS 64
#define OVF_CHUNK_PAGES 256

struct walk {
	struct chk *c;
	uint8_t (*buf)[STORE_PAGE_SIZE]; /* one per level */
	uint8_t *obuf;                   /* OVF_CHUNK_PAGES pages for overflow runs */
	XXH3_state_t *xs;
	const char *tree;                /* for messages */
	bool freedb, catalog, engine;
	uint64_t done;                   /* pages read, for progress */
	size_t cap_trees;
};

/* A page of the current tree failed: FREELIST_PAGE in the free list, else the given row. */
static void damage(struct walk *w, const struct chk_def *def, pgno_t pgno, const char *what)
{
	struct chk *c = w->c;
	if (w->freedb) {
		chk_report(c, FREELIST_PAGE, pgno, 0, "free list: %s", what);
		return;
	}
	chk_report(c, def, pgno, 0, "tree %s: %s", w->tree, what);
	c->trees_damaged = true;
	if (w->engine)
		c->ns_incomplete = true;
}

/* Mark n pages from pgno reached; a page reached before becomes PG_SHARED. */
static void reach(struct walk *w, pgno_t pgno, uint64_t n, uint8_t flags)
{
	struct chk *c = w->c;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *m = &c->pg[pgno + i];
		if (*m & PG_REACHED) {
			*m |= PG_SHARED;
			if (!w->freedb)
				c->trees_damaged = true;
		}
		*m |= PG_REACHED | flags;
	}
}

/* The problem row of a page fault. */
static const struct chk_def *fault_def(enum page_fault f)
{
	switch (f) {
	case PAGE_FAULT_CHECKSUM: return PAGE_CHECKSUM;
	case PAGE_FAULT_MISDIRECTED: return PAGE_MISDIRECTED;
	case PAGE_FAULT_STALE: return PAGE_STALE;
	case PAGE_FAULT_LEVEL: return PAGE_LEVEL;
	case PAGE_FAULT_STRUCTURE:
	case PAGE_FAULT_NONE: break;
	}
	return PAGE_STRUCTURE;
}

/* Check an overflow run's range and checksum.  0 or -errno (read failure). */
static int check_overflow(struct walk *w, pgno_t leaf, const uint8_t *cell)
{
	struct chk *c = w->c;
	const uint8_t *o = leaf_val(cell);
	pgno_t op = ld64(o + OVF_PGNO);
	uint32_t vlen = leaf_vlen(cell);
	uint64_t np = ovf_pages(vlen);
	char msg[160];
	if (op < FIRST_DATA_PGNO || op >= c->page_count || np > c->page_count - op) {
		snprintf(msg, sizeof(msg), "overflow run %llu+%llu (%u bytes) outside [2, %llu)",
			 (unsigned long long)op, (unsigned long long)np, vlen,
			 (unsigned long long)c->page_count);
		damage(w, OVERFLOW_RANGE, leaf, msg);
		return 0;
	}
	reach(w, op, np, PG_OVERFLOW);
	XXH3_64bits_reset_withSeed(w->xs, op);
	uint64_t left = vlen;
	for (pgno_t p = op; left;) {
		uint64_t n = ovf_pages(left) < OVF_CHUNK_PAGES ? ovf_pages(left) : OVF_CHUNK_PAGES;
		int r = chk_read_pages(c, p, n, w->obuf);
		if (r < 0)
			return r;
		uint64_t bytes = n * STORE_PAGE_SIZE < left ? n * STORE_PAGE_SIZE : left;
		XXH3_64bits_update(w->xs, w->obuf, bytes);
		left -= bytes;
		p += n;
		w->done += n;
	}
	if (XXH3_64bits_digest(w->xs) != ld64(o + OVF_CHECKSUM)) {
		snprintf(msg, sizeof(msg), "overflow run %llu+%llu (%u bytes, leaf page %llu): "
			 "checksum mismatch", (unsigned long long)op, (unsigned long long)np, vlen,
			 (unsigned long long)leaf);
		damage(w, OVERFLOW_CHECKSUM, op, msg);
	}
	return 0;
}

/* A catalog leaf cell: remember a sound tree record, report an unsound one. */
static int catalog_entry(struct walk *w, pgno_t leaf, const uint8_t *cell)
{
	struct chk *c = w->c;
	struct chk_tree e;
	memset(&e, 0, sizeof(e));
	chk_printable(e.name, leaf_key(cell), leaf_klen(cell));
	e.leaf = leaf;
	const uint8_t *k = leaf_key(cell);
	e.engine = leaf_klen(cell) == 2 && k[0] == 't' && k[1] >= '0' && k[1] <= '7' ? k[1] - '0'
										   : -1;
	const char *why = NULL;
	if (leaf_vtype(cell) != VTYPE_INLINE)
		why = "value stored in an overflow run";
	else if (leaf_vlen(cell) != TREC_SIZE)
		why = "value is not a 40-byte tree record";
	if (!why) {
		trec_decode(leaf_val(cell), &e.rec);
		if ((e.rec.root == 0) != (e.rec.depth == 0) || e.rec.depth > MAX_LEVELS)
			why = "root and depth disagree, or depth above 64";
		else if (e.rec.flags)
			why = "flags not zero";
		else if (e.rec.root == 0 && (e.rec.entries || e.rec.pages))
			why = "empty tree with entries or pages";
	}
	if (why) {
		chk_report(c, CATALOG_ENTRY, leaf, 0, "catalog: tree %s: %s", e.name, why);
		c->trees_damaged = true;
		if (e.engine >= 0)
			c->ns_incomplete = true;
		return 0;
	}
	if (c->n_sound_trees == w->cap_trees) {
		size_t cap = w->cap_trees ? 2 * w->cap_trees : 16;
		struct chk_tree *v = realloc(c->trees, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->trees = v;
		w->cap_trees = cap;
	}
	c->trees[c->n_sound_trees++] = e;
	return 0;
}

/* Check page pgno, which its parent (page `parent`, 0 for a tree record) expects to carry
 * txnid `expect` at `level`, and everything below it.  0 or -errno. */
static int walk(struct walk *w, pgno_t parent, pgno_t pgno, txnid_t expect, unsigned level)
{
	struct chk *c = w->c;
	char msg[200];
	if (pgno < FIRST_DATA_PGNO || pgno >= c->page_count) {
		if (parent)
			snprintf(msg, sizeof(msg), "child page %llu outside [2, %llu)",
				 (unsigned long long)pgno, (unsigned long long)c->page_count);
		else
			snprintf(msg, sizeof(msg), "root page %llu outside [2, %llu)",
				 (unsigned long long)pgno, (unsigned long long)c->page_count);
		damage(w, PAGE_OUT_OF_RANGE, parent, msg);
		return 0;
	}
	if (level >= MAX_LEVELS)
		return 0; /* not reachable: levels only go down from a root below 64 */
	if (c->pg[pgno] & PG_REACHED) {
		reach(w, pgno, 1, 0); /* shared: phase 3 reports it; not descended again */
		return 0;
	}
	reach(w, pgno, 1, w->freedb ? PG_FREEDB : 0);
	uint8_t *p = w->buf[level];
	int r = chk_read_page(c, pgno, p);
	if (r < 0)
		return r;
	if (++w->done % 1024 == 0)
		chk_progress(c, w->done, c->page_count);
	enum page_fault f = page_inspect(p, pgno, expect, level, true, msg, sizeof(msg));
	if (f != PAGE_FAULT_NONE) {
		c->pg[pgno] |= PG_BAD;
		damage(w, fault_def(f), pgno, msg);
		return 0;
	}
	unsigned n = page_nkeys(p);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *cell = page_cell(p, i);
		if (level == 0) {
			if (w->catalog)
				r = catalog_entry(w, pgno, cell);
			else if (leaf_vtype(cell) != VTYPE_OVERFLOW)
				r = 0;
			else if (w->freedb)
				damage(w, FREELIST_PAGE, pgno, "free-list chunk in an overflow run");
			else
				r = check_overflow(w, pgno, cell);
		} else {
			r = walk(w, pgno, branch_child(cell), branch_child_txnid(cell), level - 1);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int walk_tree(struct walk *w, const char *name, const struct tree_rec *rec)
{
	w->tree = name;
	if (!rec->root)
		return 0;
	if (rec->depth == 0 || rec->depth > MAX_LEVELS)
		return 0; /* meta_decode and catalog_entry refuse these */
	return walk(w, 0, rec->root, rec->root_txnid, rec->depth - 1);
}

static int run(struct chk *c)
{
	free(c->pg);
	c->pg = calloc(c->page_count ? c->page_count : 1, 1);
	struct walk w = { .c = c };
	w.buf = malloc(MAX_LEVELS * sizeof(*w.buf));
	w.obuf = malloc(OVF_CHUNK_PAGES * STORE_PAGE_SIZE);
	w.xs = XXH3_createState();
	int r = -ENOMEM;
	if (!c->pg || !w.buf || !w.obuf || !w.xs)
		goto out;
	c->pg[0] = c->pg[1] = PG_REACHED; /* the meta pages */
	w.catalog = true;
	if ((r = walk_tree(&w, "(catalog)", &c->meta.catalog)) < 0)
		goto out;
	w.catalog = false;
	c->n_trees = c->n_sound_trees;
	for (size_t i = 0; i < c->n_sound_trees; i++) {
		w.engine = c->trees[i].engine >= 0;
		if (c->trees[i].rec.root && (c->trees[i].rec.root < FIRST_DATA_PGNO ||
					  c->trees[i].rec.root >= c->page_count)) {
			char msg[160];
			w.tree = c->trees[i].name;
			snprintf(msg, sizeof(msg), "catalog record: root page %llu outside "
				 "[2, %llu)", (unsigned long long)c->trees[i].rec.root,
				 (unsigned long long)c->page_count);
			damage(&w, PAGE_OUT_OF_RANGE, c->trees[i].leaf, msg);
			continue;
		}
		if ((r = walk_tree(&w, c->trees[i].name, &c->trees[i].rec)) < 0)
			goto out;
	}
	w.engine = false;
	w.freedb = true;
	if ((r = walk_tree(&w, "(free list)", &c->meta.freedb)) < 0)
		goto out;
	uint64_t used = 0;
	for (pgno_t p = FIRST_DATA_PGNO; p < c->page_count; p++)
		used += c->pg[p] & PG_REACHED ? 1 : 0;
	c->n_pages_used = used;
	chk_progress(c, c->page_count, c->page_count);
	chk_note(c, "%llu named trees; %llu of %llu pages reached from the trees",
		 (unsigned long long)c->n_trees, (unsigned long long)used,
		 (unsigned long long)c->page_count);
	r = 0;
out:
	free(w.buf);
	free(w.obuf);
	if (w.xs)
		XXH3_freeState(w.xs);
	return r;
}

const struct chk_phase chk_phase_pages = {
	.num = 1,
	.name = "pages",
	.defs = defs,
	.ndefs = sizeof(defs) / sizeof(defs[0]),
	.run = run,
};
