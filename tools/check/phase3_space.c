/*
 * tools/check/phase3_space.c — phase 3: space accounting, INV-2 (every page after the meta
 * pages is, in the committed state, reachable from a tree exactly once or free exactly once),
 * and the free list (man/kvfs.5 "FREE LIST", META PAGE deferred runs).
 *
 * Reads the free list: every leaf entry of the free-list tree (pages phase 1 reached and found
 * sound; key 12 bytes, txnid BE + chunk BE; value 1..100 runs of 12 bytes, pgno u64 LE +
 * count u32 LE) and the meta page's deferred runs, marking PG_FREE (PG_FREE2 the second time)
 * in the page map.  Checks:
 *   - a chunk that does not decode (key size, value size, an overflow value)  FREELIST_CHUNK
 *   - a run outside [2, page_count), or of zero pages                      SPACE_FREE_RANGE
 *   - a page free twice                                                     SPACE_DOUBLE_FREE
 *   - a page free and reachable                                             SPACE_FREE_AND_USED
 *   - a page reachable twice (phase 1's PG_SHARED)                          SPACE_SHARED
 *   - pages neither reachable nor free, one problem per run of them          SPACE_LEAKED
 *   - the meta page's free_pages against the pages of the runs              SPACE_FREE_COUNT
 * Leaks are only looked for when the trees are sound (c->trees_damaged false): pages below a
 * damaged page would look leaked.  The count only when the free list could be read whole.
 *
 * Repair: the fix of every FREELIST_*, SPACE_* (but SPACE_SHARED) and TREE_RECORD problem is
 * one free-list rebuild, store_repair_rebuild (store/repair.c): a commit that recomputes the
 * free list and the tree records from a full walk of the trees.  It is done when the gate
 * says yes to each of those problems (e2fsck's way: a problem the mode may not fix stops the
 * rebuild), the trees are sound, the state checked is the current one (not an older one
 * --previous-meta chose without rolling back), and the file holds page_count pages; the
 * library refuses by itself (nothing written) if its own walk meets damage.  Afterwards
 * c->meta and c->metas hold the new commit (same LSN); the page map still describes the
 * checked state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/page.h"
#include "store/store.h"
#include "tools/check/check.h"

static const struct chk_def defs[] = {
#define SPACE_LEAKED (&defs[0])
	{ "SPACE_LEAKED", SEV_WARNING, true, true, "pages neither reachable nor free",
	  "rebuild the free list from reachability" },
#define SPACE_FREE_AND_USED (&defs[1])
	{ "SPACE_FREE_AND_USED", SEV_ERROR, true, false, "a page both free and reachable",
	  "rebuild the free list from reachability" },
#define SPACE_DOUBLE_FREE (&defs[2])
	{ "SPACE_DOUBLE_FREE", SEV_ERROR, true, false, "a page on the free list twice",
	  "rebuild the free list from reachability" },
#define SPACE_FREE_RANGE (&defs[3])
	{ "SPACE_FREE_RANGE", SEV_ERROR, true, false, "a free run outside [2, page_count)",
	  "rebuild the free list from reachability" },
#define SPACE_FREE_COUNT (&defs[4])
	{ "SPACE_FREE_COUNT", SEV_WARNING, true, true,
	  "the meta page's free_pages disagrees with the free list",
	  "rebuild the free list from reachability" },
#define FREELIST_CHUNK (&defs[5])
	{ "FREELIST_CHUNK", SEV_ERROR, true, false, "a free-list chunk that does not decode",
	  "rebuild the free list from reachability" },
#define SPACE_SHARED (&defs[6])
	{ "SPACE_SHARED", SEV_ERROR, false, false, "a page reachable twice from the trees",
	  NULL },
};

#define MAX_LEVELS 64
#define MAX_RUN_REPORTS 200 /* per kind; then one problem summing up the rest */

/* The codes whose fix is the rebuild. */
static const char *const rebuild_codes[] = {
	"FREELIST_PAGE", "FREELIST_CHUNK", "SPACE_LEAKED", "SPACE_FREE_AND_USED",
	"SPACE_DOUBLE_FREE", "SPACE_FREE_RANGE", "SPACE_FREE_COUNT", "TREE_RECORD",
};

struct space {
	struct chk *c;
	uint8_t (*buf)[STORE_PAGE_SIZE];
	uint8_t *seen;         /* bitmap: free-list pages read (a page shared within the free
				  list is read once, so no walk can grow exponentially) */
	uint64_t free_pages;   /* pages of the runs read (in range) */
	bool incomplete;       /* some of the free list could not be read */
	uint64_t n_dup, n_used; /* problems reported, per kind */
};

/* Mark one free run, reporting double frees and pages also reached (one problem per kind
 * per run). */
static void mark_run(struct space *s, pgno_t where, txnid_t key, pgno_t pgno, uint64_t count,
		     const char *source)
{
	struct chk *c = s->c;
	if (count == 0 || pgno < FIRST_DATA_PGNO || pgno >= c->page_count ||
	    count > c->page_count - pgno) {
		chk_report(c, SPACE_FREE_RANGE, where, 0, "%s: run %llu+%llu (txn %llu) outside "
			   "[2, %llu)", source, (unsigned long long)pgno, (unsigned long long)count,
			   (unsigned long long)key, (unsigned long long)c->page_count);
		return;
	}
	uint64_t dup = 0, used = 0;
	pgno_t first_dup = 0, first_used = 0;
	for (uint64_t i = 0; i < count; i++) {
		uint8_t *m = &c->pg[pgno + i];
		if (*m & PG_FREE) {
			*m |= PG_FREE2;
			if (!dup++)
				first_dup = pgno + i;
		}
		if (*m & PG_REACHED && !used++)
			first_used = pgno + i;
		*m |= PG_FREE;
	}
	s->free_pages += count;
	if (dup && s->n_dup++ < MAX_RUN_REPORTS)
		chk_report(c, SPACE_DOUBLE_FREE, first_dup, 0, "%s: run %llu+%llu (txn %llu): %llu "
			   "of its pages are already free", source, (unsigned long long)pgno,
			   (unsigned long long)count, (unsigned long long)key,
			   (unsigned long long)dup);
	if (used && s->n_used++ < MAX_RUN_REPORTS)
		chk_report(c, SPACE_FREE_AND_USED, first_used, 0, "%s: run %llu+%llu (txn %llu): "
			   "%llu of its pages are reachable from a tree", source,
			   (unsigned long long)pgno, (unsigned long long)count,
			   (unsigned long long)key, (unsigned long long)used);
}

static void chunk(struct space *s, pgno_t leaf, const uint8_t *cell)
{
	struct chk *c = s->c;
	unsigned klen = leaf_klen(cell);
	uint32_t vlen = leaf_vlen(cell);
	if (klen != FREE_KEY_SIZE || leaf_vtype(cell) != VTYPE_INLINE || vlen == 0 ||
	    vlen % FREE_RUN_SIZE || vlen / FREE_RUN_SIZE > STORE_FREE_CHUNK_RUNS) {
		chk_report(c, FREELIST_CHUNK, leaf, 0, "free-list chunk with a %u-byte key and a "
			   "%u-byte %s value", klen, vlen,
			   leaf_vtype(cell) == VTYPE_INLINE ? "inline" : "overflow");
		s->incomplete = true;
		return;
	}
	const uint8_t *k = leaf_key(cell), *v = leaf_val(cell);
	txnid_t key = ldbe64(k);
	char source[64];
	snprintf(source, sizeof(source), "free list chunk (%llu, %u)", (unsigned long long)key,
		 ldbe32(k + 8));
	for (uint32_t i = 0; i < vlen / FREE_RUN_SIZE; i++, v += FREE_RUN_SIZE)
		mark_run(s, leaf, key, ld64(v), ld32(v + 8), source);
}

static int walk(struct space *s, pgno_t pgno, txnid_t expect, unsigned level)
{
	struct chk *c = s->c;
	if (pgno < FIRST_DATA_PGNO || pgno >= c->page_count || level >= MAX_LEVELS ||
	    !(c->pg[pgno] & PG_FREEDB) || (c->pg[pgno] & PG_BAD) ||
	    (s->seen[pgno / 8] >> (pgno % 8) & 1)) {
		s->incomplete = true; /* phase 1 reported it */
		return 0;
	}
	s->seen[pgno / 8] |= (uint8_t)(1u << (pgno % 8));
	uint8_t *p = s->buf[level];
	int r = chk_read_page(c, pgno, p);
	if (r < 0)
		return r;
	char tmp[160];
	if (pager_check_page(p, pgno, expect, level, true, tmp, sizeof(tmp))) {
		s->incomplete = true;
		return 0;
	}
	unsigned n = page_nkeys(p);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *cell = page_cell(p, i);
		if (level == 0)
			chunk(s, pgno, cell);
		else if ((r = walk(s, branch_child(cell), branch_child_txnid(cell), level - 1)) < 0)
			return r;
	}
	return 0;
}

/* Report each run of pages with some bit of `flag` set (want_set) or none of them set
 * (!want_set) in the map as one problem. */
static void report_runs(struct chk *c, uint8_t flag, bool want_set, const struct chk_def *def,
			const char *what)
{
	uint64_t runs = 0, pages = 0;
	for (pgno_t p = FIRST_DATA_PGNO; p < c->page_count; p++) {
		if (((c->pg[p] & flag) != 0) != want_set)
			continue;
		pgno_t e = p;
		while (e + 1 < c->page_count && ((c->pg[e + 1] & flag) != 0) == want_set)
			e++;
		if (runs++ < MAX_RUN_REPORTS)
			chk_report(c, def, p, 0, "pages %llu..%llu %s", (unsigned long long)p,
				   (unsigned long long)e, what);
		else
			pages += e - p + 1;
		p = e;
	}
	if (runs > MAX_RUN_REPORTS)
		chk_report(c, def, 0, 0, "%llu more runs (%llu pages) %s",
			   (unsigned long long)(runs - MAX_RUN_REPORTS), (unsigned long long)pages,
			   what);
}

static void store_log(void *ctx, const char *line)
{
	struct chk *c = ctx;
	fprintf(stderr, "kvfs-check: %s: %s\n", c->path, line);
}

/* Re-read both meta slots after a repair commit (the page map stays as checked). */
static void reload_meta(struct chk *c)
{
	uint8_t page[STORE_PAGE_SIZE];
	for (unsigned s = 0; s < 2; s++) {
		const char *why;
		if (chk_read_page(c, s, page) == 0)
			c->meta_err[s] = meta_decode(page, s, &c->metas[s], &why);
	}
	unsigned cur = c->meta_err[0] ? 1 : c->meta_err[1] ? 0 :
		       c->metas[1].txnid > c->metas[0].txnid ? 1 : 0;
	if (!c->meta_err[cur]) {
		c->slot = cur;
		c->meta = c->metas[cur];
	}
}

static int rebuild(struct chk *c)
{
	size_t *ids = NULL, n_ids = 0;
	for (size_t i = 0; i < c->n_problems; i++) {
		for (size_t k = 0; k < sizeof(rebuild_codes) / sizeof(rebuild_codes[0]); k++) {
			if (strcmp(c->problems[i].def->code, rebuild_codes[k]) != 0)
				continue;
			size_t *v = realloc(ids, (n_ids + 1) * sizeof(*ids));
			if (!v) {
				free(ids);
				return -ENOMEM;
			}
			ids = v;
			ids[n_ids++] = i;
		}
	}
	if (!n_ids || c->readonly)
		goto out;
	if (c->trees_damaged) {
		chk_note(c, "the free list is not rebuilt: tree pages are damaged, so what is "
			 "reachable is not known");
		goto out;
	}
	if (!c->meta_err[c->slot ^ 1] && c->metas[c->slot ^ 1].txnid > c->meta.txnid) {
		chk_note(c, "the free list is not rebuilt: the older state was checked and not "
			 "rolled back to (--previous-meta)");
		goto out;
	}
	if (c->page_count < c->meta.page_count) {
		chk_note(c, "the free list is not rebuilt: the file is short");
		goto out;
	}
	for (size_t i = 0; i < n_ids; i++)
		if (!chk_gate(c, ids[i], "rebuild the free list from reachability"))
			goto out;
	chk_release_lock(c);
	struct store_options opt = { .log = store_log, .log_ctx = c };
	struct store_repair_result res;
	int r = store_repair_rebuild(c->path, &opt, &res);
	if (r < 0) {
		fprintf(stderr, "kvfs-check: %s: free-list rebuild failed: %s\n", c->path,
			strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < n_ids; i++)
		chk_fixed(c, ids[i]);
	chk_note(c, "free list rebuilt in txn %llu: %llu unreachable pages freed, %llu tree "
		 "records rewritten", (unsigned long long)res.txnid,
		 (unsigned long long)res.pages_freed, (unsigned long long)res.records_fixed);
	reload_meta(c);
out:
	free(ids);
	return 0;
}

static int run(struct chk *c)
{
	if (!c->pg)
		return 0;
	struct space s = { .c = c };
	s.buf = malloc(MAX_LEVELS * sizeof(*s.buf));
	s.seen = calloc(c->page_count / 8 + 1, 1);
	int r = -ENOMEM;
	const struct tree_rec *fdb = &c->meta.freedb;
	if (s.buf && s.seen) {
		r = 0;
		if (fdb->root && fdb->depth >= 1 && fdb->depth <= MAX_LEVELS)
			r = walk(&s, fdb->root, fdb->root_txnid, fdb->depth - 1);
	}
	free(s.buf);
	free(s.seen);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < c->meta.n_deferred; i++)
		mark_run(&s, 0, 0, c->meta.deferred[i].pgno, c->meta.deferred[i].count,
			 "meta page deferred run");
	chk_progress(c, 1, 2);
	uint64_t n_free = 0;
	for (pgno_t p = FIRST_DATA_PGNO; p < c->page_count; p++)
		n_free += c->pg[p] & PG_FREE ? 1 : 0;
	c->n_pages_free = n_free;
	report_runs(c, PG_SHARED, true, SPACE_SHARED, "are reachable more than once from the "
		    "trees");
	if (!c->trees_damaged) {
		report_runs(c, PG_REACHED | PG_FREE, false, SPACE_LEAKED,
			    "are neither reachable nor free");
	} else {
		chk_note(c, "leaked pages not looked for: tree pages are damaged");
	}
	if (s.incomplete)
		chk_note(c, "the free list could not be read whole: its page count not compared");
	else if (s.free_pages != c->meta.free_pages)
		chk_report(c, SPACE_FREE_COUNT, 0, 0, "the meta page says %llu free pages; the free "
			   "list holds %llu", (unsigned long long)c->meta.free_pages,
			   (unsigned long long)s.free_pages);
	chk_note(c, "%llu pages: %llu reachable, %llu free", (unsigned long long)c->page_count,
		 (unsigned long long)c->n_pages_used, (unsigned long long)n_free);
	chk_progress(c, 2, 2);
	return rebuild(c);
}

const struct chk_phase chk_phase_space = {
	.num = 3,
	.name = "space",
	.defs = defs,
	.ndefs = sizeof(defs) / sizeof(defs[0]),
	.run = run,
};
