/*
 * tools/check/phase4_log.c — phase 4: the log STORE-wal (man/kvfs.5 "LOG") and the records
 * the next open will replay over the checked state.
 *
 * Checks, through wal/'s read-only inspection call (wal_inspect: the same record validation
 * as wal_recover, so this phase sees exactly what the next open will):
 *   - the log exists (LOG_MISSING).  A file shorter than a header, or whose header and every
 *     other byte are zero, is a creation that a crash interrupted (log.c create_log writes
 *     the header last): it never held a record and the next open creates it again, so it is
 *     LOG_MISSING too;
 *   - its header: magic, checksum, version, reserved fields, ring_bytes range (LOG_HEADER).
 *     A header of zeros over a file holding other bytes is a destroyed header (LOG_HEADER):
 *     not what an interrupted creation leaves;
 *   - the file holds the whole ring (LOG_SHORT).  A file longer than its header and ring is
 *     what a resize of the ring leaves when a crash interrupts it (wal_resize, log.c INV-7:
 *     the bytes past the ring mean nothing, and the next writable open trims them): only a
 *     note, never a problem;
 *   - the records from the meta page's LSN on — those the next open replays, in log order —
 *     each a sound engine batch (engine_record_decode: record type, op count, lengths, tree
 *     numbers, key and value sizes; LOG_RECORD_BAD).  The ops of the sound records before
 *     the first bad one go to phase 5 (chk_ns_log_op), which applies them over the trees;
 *   - the end of the log: a torn record there, whose header carries its place's LSN but
 *     whose size or checksum fails (LOG_TORN_TAIL), and, past it in the rest of the lap,
 *     every stale header carrying its place's LSN, which a later append of the right size
 *     could make valid again (LOG_STALE_RECORD; log.c INV-5).
 * When the store is in use (mounted), the log is being appended to while it is read: the
 * tail is then only described in a note (a record being written looks torn, and the records
 * appended after it look stale), never reported as a problem.  Records before the meta
 * page's LSN (already checkpointed) are not walked: the log has no way back to them.
 *
 * Repairs (after chk_gate and chk_release_lock; the next open would make the same ones, so
 * each is safe and preen), through wal/, never by writing the file here:
 *   - LOG_TORN_TAIL, LOG_STALE_RECORD: wal_open for writing, then wal_recover from the meta
 *     page's LSN with a callback that keeps nothing: it erases exactly the headers reported
 *     (stale_scan in log.c) and syncs.  It cannot erase some and not others, so one
 *     question (chk_gate on the torn record, else on the first stale header) covers them
 *     all;
 *   - LOG_SHORT: wal_open for writing allocates the ring again (and syncs);
 *   - LOG_MISSING: wal_open with create, with the ring of a closed store's log, at rest
 *     (WAL_MIN_RING: engine.c ring_rest); the next open sizes it.  A new log starts empty;
 *     the next open's wal_recover from the data file's LSN finds nothing and appends from
 *     there, so a data file with an LSN above 0 opens normally.  Whatever records the lost
 *     log held are lost either way (the next open creates the log the same way).
 * After a repair the log is inspected again and only what is gone is marked fixed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/engine.h"
#include "tools/check/check.h"
#include "wal/log.h"

static const struct chk_def defs[] = {
#define LOG_MISSING (&defs[0])
	{ "LOG_MISSING", SEV_WARNING, true, true,
	  "the log is missing (or its creation was interrupted): records after the checkpoint, "
	  "if there were any, are lost",
	  "create an empty log" },
#define LOG_HEADER (&defs[1])
	{ "LOG_HEADER", SEV_ERROR, false, false,
	  "the log's header fails its magic, checksum, version or field checks: no record can "
	  "be read and the store does not open", NULL },
#define LOG_SHORT (&defs[2])
	{ "LOG_SHORT", SEV_WARNING, true, true,
	  "the log file is shorter than its ring (the ring's allocation was lost)",
	  "allocate the ring again" },
#define LOG_TORN_TAIL (&defs[3])
	{ "LOG_TORN_TAIL", SEV_WARNING, true, true,
	  "the record at the end of the log carries its place's LSN but fails its size or "
	  "checksum: a torn write (normal after a crash); the next open ends the log there",
	  "erase its header" },
#define LOG_STALE_RECORD (&defs[4])
	{ "LOG_STALE_RECORD", SEV_WARNING, true, true,
	  "past the end of the log, a record header carrying its place's LSN, which a later "
	  "append could make valid again (out of order)",
	  "erase its header" },
#define LOG_RECORD_BAD (&defs[5])
	{ "LOG_RECORD_BAD", SEV_ERROR, false, false,
	  "a log record whose checksum holds but whose payload is not a sound engine batch: "
	  "the next open fails", NULL },
};

/* Bad records reported one by one; more are counted in a note. */
#define MAX_BAD_REPORTS 32

struct walk {
	struct chk *c;
	lsn_t from;
	uint64_t ring;     /* the log's ring_bytes, once its header is read */
	bool feeding;      /* ops still go to phase 5 (no bad record yet) */
	uint64_t n_bad;
	uint64_t n_unfed;  /* sound records after a bad one, not fed */
};

static int feed_op(void *ctx, unsigned tree, bool del, const void *key, size_t klen,
		   const void *val, size_t vlen)
{
	chk_ns_log_op(ctx, tree, del, key, klen, val, vlen);
	return 0;
}

/* engine_record_decode without side effects: does it decode? */
static int no_op(void *ctx, unsigned tree, bool del, const void *key, size_t klen,
		 const void *val, size_t vlen)
{
	return 0;
}

/* The header validated: the walk covers at most one lap of this ring (for progress). */
static int on_header(void *ctx, const struct wal_inspect_result *res)
{
	struct walk *wk = ctx;

	wk->ring = res->ring_bytes;
	return 0;
}

static int on_record(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len)
{
	struct walk *wk = ctx;
	struct chk *c = wk->c;
	int r;

	chk_progress(c, lsn - wk->from, wk->ring);
	if (type != ENGINE_REC_BATCH)
		r = -EUCLEAN;
	else if (wk->feeding)
		r = engine_record_decode(payload, len, feed_op, c); /* all ops or none */
	else
		r = engine_record_decode(payload, len, no_op, NULL);
	if (r == 0) {
		if (!wk->feeding)
			wk->n_unfed++;
		return 0;
	}
	if (r != -EUCLEAN)
		return r;
	wk->n_bad++;
	if (wk->n_bad <= MAX_BAD_REPORTS)
		chk_report(c, LOG_RECORD_BAD, 0, 0,
			   "log record at LSN %llu (type %u, %zu payload bytes): its checksum "
			   "holds but %s; the next open fails (EUCLEAN)", (unsigned long long)lsn,
			   type, len, type != ENGINE_REC_BATCH ? "its type is not an engine batch" :
			   "its payload does not decode as an engine batch (op count, lengths, "
			   "tree number or key/value size)");
	wk->feeding = false;
	c->ns_incomplete = true;
	return 0;
}

/* wal's diagnostics during a repair become notes. */
static void wal_line(void *ctx, const char *line)
{
	chk_note(ctx, "%s", line);
}

static int keep_nothing(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len)
{
	return 0;
}

/*
 * The repair of LOG_SHORT, LOG_TORN_TAIL and LOG_STALE_RECORD: open the log for writing
 * (allocating a short ring again) and, when `recover`, run wal_recover from the meta page's
 * LSN, which erases the torn and stale headers (INV-5) and syncs.  0 or -errno.
 */
static int repair_log(struct chk *c, bool recover)
{
	struct wal_options wo = { .log = wal_line, .log_ctx = c };
	struct wal *w;
	lsn_t end;

	chk_release_lock(c);
	int r = wal_open(c->wal_path, &wo, &w);
	if (r < 0)
		return r;
	if (recover)
		r = wal_recover(w, c->meta.lsn, keep_nothing, NULL, &end);
	wal_close(w);
	return r;
}

/* LOG_MISSING's repair: a new, empty log at rest (a closed store's: engine.c ring_rest). */
static int create_log(struct chk *c)
{
	struct wal_options wo = {
		.create = true, .ring_bytes = WAL_MIN_RING,
		.log = wal_line, .log_ctx = c,
	};
	struct wal *w;

	chk_release_lock(c);
	int r = wal_open(c->wal_path, &wo, &w);
	if (r == 0)
		wal_close(w); /* created and durable (header and ring synced) */
	return r;
}

static void repair_failed(struct chk *c, const char *what, int r)
{
	fprintf(stderr, "kvfs-check: %s: %s: %s\n", c->wal_path, what, strerror(-r));
}

/* The header could not be read as a log: LOG_MISSING (a fix) or LOG_HEADER (none). */
static void header_problem(struct chk *c, int r, const struct wal_inspect_result *res)
{
	if (r == -ENOENT || (res->zero_header && !res->nonzero_after)) {
		size_t id;
		if (r == -ENOENT)
			id = chk_report(c, LOG_MISSING, 0, 0, "the log %s is missing; records "
					"after the checkpoint at LSN %llu, if there were any, "
					"are lost", c->wal_path, (unsigned long long)c->meta.lsn);
		else
			id = chk_report(c, LOG_MISSING, 0, 0, "the log %s %s (%llu bytes, all "
					"zero): its creation was interrupted, it never held a "
					"record", c->wal_path, res->file_bytes < WAL_HDR_SIZE ?
					"is shorter than its header" : "has a header of zeros",
					(unsigned long long)res->file_bytes);
		if (!chk_gate(c, id, "create an empty log"))
			return;
		int cr = create_log(c);
		if (cr < 0) {
			repair_failed(c, "creating the log", cr);
			return;
		}
		struct wal_inspect_result again;
		if (wal_inspect(c->wal_path, NULL, c->meta.lsn, NULL, NULL, &again) == 0) {
			chk_fixed(c, id);
			chk_note(c, "created the log, ring_bytes %llu",
				 (unsigned long long)again.ring_bytes);
		}
		return;
	}
	if (res->zero_header)
		chk_report(c, LOG_HEADER, 0, 0, "the log's header is zero but the file holds other "
			   "bytes (%llu bytes): a destroyed header, not an interrupted creation; "
			   "its records cannot be read", (unsigned long long)res->file_bytes);
	else if (r == -EPROTONOSUPPORT)
		chk_report(c, LOG_HEADER, 0, 0, "the log's header: %s (version %u, this build "
			   "reads %u)", res->why, res->version, WAL_FORMAT_VERSION);
	else
		chk_report(c, LOG_HEADER, 0, 0, "the log's header: %s (ring_bytes %llu, file %llu "
			   "bytes)", !res->why ? strerror(-r) :
			   strncmp(res->why, "header: ", 8) == 0 ? res->why + 8 : res->why,
			   (unsigned long long)res->ring_bytes,
			   (unsigned long long)res->file_bytes);
	c->ns_incomplete = true; /* the records the next open would replay are unknown */
}

static int run(struct chk *c)
{
	struct wal_inspect_ops ops = { .header = on_header, .record = on_record };
	struct wal_inspect_result res;
	struct walk wk = { .c = c, .feeding = true, .ring = WAL_MAX_RING };

	if (!c->have_meta) {
		chk_note(c, "the log is not checked: no valid meta page gives the LSN to replay "
			 "from");
		return 0;
	}
	wk.from = c->meta.lsn;
	if (c->meta.lsn % 8 != 0 || c->meta.lsn > WAL_LSN_MAX) {
		/* meta_decode should refuse it; the log cannot be walked from there */
		chk_note(c, "the log is not checked: the meta page's LSN %llu is not a log "
			 "position", (unsigned long long)c->meta.lsn);
		c->ns_incomplete = true;
		return 0;
	}
	int r = wal_inspect(c->wal_path, NULL, c->meta.lsn, &ops, &wk, &res);
	if (r == -ENOENT || r == -EINVAL || r == -EUCLEAN || r == -EPROTONOSUPPORT) {
		/* -EINVAL: `from` was checked above, so the magic or a zero header */
		header_problem(c, r, &res);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "kvfs-check: %s: reading the log: %s\n", c->wal_path, strerror(-r));
		return r;
	}
	chk_progress(c, 1, 1);
	c->log_records = res.n_records;
	chk_note(c, "log header: version %u, ring_bytes %llu, salt %016llx; file %llu bytes",
		 res.version, (unsigned long long)res.ring_bytes, (unsigned long long)res.salt,
		 (unsigned long long)res.file_bytes);
	chk_note(c, "%llu log records (%llu bytes) after the checkpoint at LSN %llu will be "
		 "replayed at the next open (the log ends at LSN %llu)",
		 (unsigned long long)res.n_records, (unsigned long long)(res.end - res.from),
		 (unsigned long long)res.from, (unsigned long long)res.end);
	if (wk.n_bad > MAX_BAD_REPORTS)
		chk_note(c, "%llu bad log records in all; the first %d are reported",
			 (unsigned long long)wk.n_bad, MAX_BAD_REPORTS);
	if (wk.n_bad)
		chk_note(c, "the ops of the %llu sound log records after the first bad one are "
			 "not applied to the namespace check", (unsigned long long)wk.n_unfed);
	if (res.tail == WAL_TAIL_FULL)
		chk_note(c, "valid log records fill the whole ring from LSN %llu",
			 (unsigned long long)res.from);
	if (res.long_file)
		chk_note(c, "the log file is %llu bytes longer than its header and ring: left by a "
			 "resize of the ring that a crash interrupted; those bytes hold no record "
			 "and the next open trims them",
			 (unsigned long long)(res.file_bytes - WAL_HDR_SIZE - res.ring_bytes));

	/* ---- problems ---- */
	size_t id_short = SIZE_MAX, id_torn = SIZE_MAX, id_stale[WAL_INSPECT_MAX_STALE];
	size_t shown = 0;
	if (res.short_file)
		id_short = chk_report(c, LOG_SHORT, 0, 0, "the log file is %llu bytes, shorter "
				      "than its header and ring (%llu bytes); the missing bytes "
				      "read as zero", (unsigned long long)res.file_bytes,
				      (unsigned long long)(WAL_HDR_SIZE + res.ring_bytes));
	if (c->in_use) {
		if (res.tail == WAL_TAIL_TORN || res.n_stale)
			chk_note(c, "the store is in use: at the end of the log (LSN %llu) %s, "
				 "and %llu headers past it carry their place's LSN; not judged "
				 "while it is appended to",
				 (unsigned long long)res.end,
				 res.tail == WAL_TAIL_TORN ? "a record being written or torn" :
				 "no record", (unsigned long long)res.n_stale);
	} else {
		if (res.tail == WAL_TAIL_TORN)
			id_torn = chk_report(c, LOG_TORN_TAIL, 0, 0, "the record at the end of the "
					     "log, LSN %llu (offset %llu, size field %u, type %u): "
					     "%s", (unsigned long long)res.end,
					     (unsigned long long)(WAL_HDR_SIZE +
								  res.end % res.ring_bytes),
					     res.end_size, res.end_type, res.tail_why);
		shown = res.n_stale < WAL_INSPECT_MAX_STALE ? (size_t)res.n_stale :
			WAL_INSPECT_MAX_STALE;
		for (size_t i = 0; i < shown; i++)
			id_stale[i] = chk_report(
				c, LOG_STALE_RECORD, 0, 0, "a record header at LSN %llu (offset "
				"%llu), past the end of the log at LSN %llu, carries its place's "
				"LSN",
				(unsigned long long)res.stale[i],
				(unsigned long long)(WAL_HDR_SIZE + res.stale[i] % res.ring_bytes),
				(unsigned long long)res.end);
		if (res.n_stale > shown)
			chk_note(c, "%llu stale log record headers in all; the first %zu are "
				 "reported", (unsigned long long)res.n_stale, shown);
	}

	/* ---- repairs: one wal_open (and wal_recover) for all of them ---- */
	bool fix_short = id_short != SIZE_MAX && chk_gate(c, id_short, "allocate the ring again");
	/* wal_recover erases the torn header and every stale one together: one question,
	 * asked about the first of them, covers them all. */
	char action[128];
	if (id_torn != SIZE_MAX && shown)
		snprintf(action, sizeof(action), "erase the torn record's header and %llu stale "
			 "record headers (wal_recover)", (unsigned long long)res.n_stale);
	else if (id_torn != SIZE_MAX)
		snprintf(action, sizeof(action), "erase the torn record's header (wal_recover)");
	else
		snprintf(action, sizeof(action), "erase %llu stale record headers (wal_recover)",
			 (unsigned long long)res.n_stale);
	bool fix_tail = (id_torn != SIZE_MAX || shown) &&
			chk_gate(c, id_torn != SIZE_MAX ? id_torn : id_stale[0], action);
	if (!fix_short && !fix_tail)
		return 0;
	r = repair_log(c, fix_tail);
	if (r < 0) {
		repair_failed(c, "repairing the log", r);
		return 0;
	}
	struct wal_inspect_result after;
	r = wal_inspect(c->wal_path, NULL, c->meta.lsn, NULL, NULL, &after);
	if (r < 0) {
		repair_failed(c, "reading the log after the repair", r);
		return 0;
	}
	if (fix_short && !after.short_file)
		chk_fixed(c, id_short);
	if (fix_tail && id_torn != SIZE_MAX && after.tail != WAL_TAIL_TORN)
		chk_fixed(c, id_torn);
	if (fix_tail && after.n_stale == 0)
		for (size_t i = 0; i < shown; i++)
			chk_fixed(c, id_stale[i]);
	if (after.n_records != res.n_records || after.end != res.end)
		fprintf(stderr, "kvfs-check: %s: after the repair the log holds %llu records to "
			"LSN %llu (before: %llu to LSN %llu)\n", c->wal_path,
			(unsigned long long)after.n_records, (unsigned long long)after.end,
			(unsigned long long)res.n_records, (unsigned long long)res.end);
	return 0;
}

const struct chk_phase chk_phase_log = {
	.num = 4,
	.name = "log",
	.defs = defs,
	.ndefs = sizeof(defs) / sizeof(defs[0]),
	.run = run,
};
