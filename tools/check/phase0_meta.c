/*
 * tools/check/phase0_meta.c — phase 0: the meta pages (man/kvfs.5 "META PAGE").
 *
 * Checks:
 *   - both slots (pages 0 and 1), each with meta_decode: magic, checksum (seed = slot),
 *     format version, page size, plausible fields (page_count, tree records, free_pages,
 *     deferred runs);
 *   - chooses the state to check: the valid slot with the higher txnid, as store_open does;
 *     with --previous-meta the other (older) slot, which must then be valid;
 *   - the file holds the chosen state's page_count pages.
 * Not a store (both slots fail the magic) and a format this build cannot read (neither slot
 * valid, one of them with a sound checksum but an unknown version or page size) are
 * operational errors, as store_open sees them: a one-line message, and the check stops
 * (exit 8).  One such slot next to a valid one is META_SLOT_CORRUPT, as store_open falls back
 * to the valid one and its next commit overwrites the other.  Neither slot valid:
 * META_BOTH_CORRUPT, and nothing further can be checked (have_meta stays false).
 *
 * Repairs (through store/repair.c, after chk_release_lock):
 *   - META_SLOT_CORRUPT: store_repair_meta rewrites the bad slot from the valid one, so both
 *     slots hold the current state (the next commit then writes slot 0; see repair.c);
 *   - META_ROLLBACK (only with --previous-meta, not read-only): store_repair_meta rewrites the
 *     newer slot with the older meta page, so that the older state becomes current (sound by
 *     INV-1: nothing the older meta page reaches was overwritten while the newer one
 *     existed).  Without a fix mode, checking the older state is only a note.  The rollback
 *     is done here, before the other phases, so that every later repair works on the state
 *     that was checked.  The log (phase 4) may hold records past the older LSN, which the
 *     next open replays.
 * When the wanted state is unavailable (--previous-meta and the older slot is invalid) the
 * check stops with a message: -EUCLEAN (exit 8).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "tools/check/check.h"

static const struct chk_def defs[] = {
#define META_SLOT_CORRUPT (&defs[0])
	{ "META_SLOT_CORRUPT", SEV_WARNING, true, true,
	  "one meta slot fails its magic, checksum or field checks while the other is valid",
	  "rewrite it from the valid slot" },
#define META_BOTH_CORRUPT (&defs[1])
	{ "META_BOTH_CORRUPT", SEV_ERROR, false, false,
	  "neither meta slot is valid: there is no committed state to check", NULL },
#define META_FILE_SHORT (&defs[2])
	{ "META_FILE_SHORT", SEV_ERROR, false, false,
	  "the file is shorter than the meta page's page_count pages", NULL },
#define META_ROLLBACK (&defs[3])
	{ "META_ROLLBACK", SEV_WARNING, true, false,
	  "--previous-meta: the older committed state was checked instead of the current one",
	  "roll back: rewrite the newer slot with the older meta page" },
};

static int read_slots(struct chk *c, const char *why[2])
{
	uint8_t page[STORE_PAGE_SIZE];
	for (unsigned s = 0; s < 2; s++) {
		int r = chk_read_page(c, s, page);
		if (r < 0)
			return r; /* main.c checked that the file holds two pages */
		why[s] = NULL;
		c->meta_err[s] = meta_decode(page, s, &c->metas[s], &why[s]);
	}
	return 0;
}

static int fix_slot(struct chk *c, unsigned good, size_t id, const char *action)
{
	if (!chk_gate(c, id, action))
		return 0;
	chk_release_lock(c);
	int r = store_repair_meta(c->path, NULL, good);
	if (r < 0) {
		fprintf(stderr, "kvfs-check: %s: rewriting meta slot %u: %s\n", c->path, good ^ 1,
			strerror(-r));
		return 0; /* stays not fixed */
	}
	c->metas[good ^ 1] = c->metas[good];
	c->meta_err[good ^ 1] = 0;
	chk_fixed(c, id);
	return 1;
}

static int run(struct chk *c)
{
	const char *why[2];
	int r = read_slots(c, why);
	if (r < 0)
		return r;
	int *err = c->meta_err;
	if (err[0] && err[1] && (err[0] == -EPROTONOSUPPORT || err[1] == -EPROTONOSUPPORT)) {
		unsigned s = err[0] == -EPROTONOSUPPORT ? 0 : 1;
		fprintf(stderr, "kvfs-check: %s: meta slot %u: %s (not supported by this "
			"kvfs-check)\n", c->path, s, why[s]);
		return -EPROTONOSUPPORT;
	}
	if (err[0] == -EINVAL && err[1] == -EINVAL) {
		fprintf(stderr, "kvfs-check: %s: not a kvfs store\n", c->path);
		return -EINVAL;
	}
	if (err[0] && err[1]) {
		chk_report(c, META_BOTH_CORRUPT, 0, 0, "meta slot 0: %s; meta slot 1: %s", why[0],
			   why[1]);
		return 0;
	}
	unsigned cur = err[0] ? 1 : err[1] ? 0 : c->metas[1].txnid > c->metas[0].txnid ? 1 : 0;
	uint64_t file_pages = c->file_bytes / STORE_PAGE_SIZE;
	for (unsigned s = 0; s < 2; s++) {
		if (!err[s])
			continue;
		size_t id = chk_report(c, META_SLOT_CORRUPT, s, 0, "meta slot %u: %s (slot %u, txn "
				       "%llu, is current)", s, why[s], cur,
				       (unsigned long long)c->metas[cur].txnid);
		if (c->o.previous_meta) {
			fprintf(stderr, "kvfs-check: %s: --previous-meta: meta slot %u, which would "
				"hold the previous state, is not valid (%s); there is no older state "
				"to check\n", c->path, s, why[s]);
			return -EUCLEAN;
		}
		if (c->metas[cur].page_count > file_pages)
			continue; /* the store cannot be opened: repair refuses; META_FILE_SHORT */
		char action[64];
		snprintf(action, sizeof(action), "rewrite meta slot %u from slot %u", s, cur);
		fix_slot(c, cur, id, action);
	}
	unsigned slot = cur;
	if (c->o.previous_meta) {
		slot = cur ^ 1;
		chk_note(c, "--previous-meta: checking meta slot %u (txn %llu) instead of the "
			 "current slot %u (txn %llu)", slot, (unsigned long long)c->metas[slot].txnid,
			 cur, (unsigned long long)c->metas[cur].txnid);
		if (!c->readonly) {
			size_t id = chk_report(c, META_ROLLBACK, cur, 0, "meta slot %u (txn %llu) is "
					       "current; the older slot %u (txn %llu) was asked for",
					       cur, (unsigned long long)c->metas[cur].txnid, slot,
					       (unsigned long long)c->metas[slot].txnid);
			char action[96];
			snprintf(action, sizeof(action), "roll back to txn %llu (rewrite meta slot "
				 "%u)", (unsigned long long)c->metas[slot].txnid, cur);
			if (c->metas[slot].page_count <= file_pages)
				fix_slot(c, slot, id, action);
			if (!c->problems[id].fixed) {
				/* Repairs judged against an older state than the one the store
				 * opens as would destroy what the newer one still needs (e.g. the
				 * log records after the older LSN). */
				c->readonly = true;
				chk_note(c, "--previous-meta: the older state was not made current: "
					 "no repairs in any phase");
			}
		}
	}
	c->slot = slot;
	c->meta = c->metas[slot];
	c->have_meta = true;
	c->page_count = c->meta.page_count;
	if (c->page_count > file_pages) {
		chk_report(c, META_FILE_SHORT, 0, 0, "the file holds %llu pages (%llu bytes); meta "
			   "slot %u (txn %llu) says %llu", (unsigned long long)file_pages,
			   (unsigned long long)c->file_bytes, slot,
			   (unsigned long long)c->meta.txnid,
			   (unsigned long long)c->meta.page_count);
		c->page_count = file_pages;
	}
	chk_note(c, "meta slot %u: txn %llu, %llu pages, lsn %llu, %llu free pages", slot,
		 (unsigned long long)c->meta.txnid, (unsigned long long)c->meta.page_count,
		 (unsigned long long)c->meta.lsn, (unsigned long long)c->meta.free_pages);
	return 0;
}

const struct chk_phase chk_phase_meta = {
	.num = 0,
	.name = "meta",
	.defs = defs,
	.ndefs = sizeof(defs) / sizeof(defs[0]),
	.run = run,
};
