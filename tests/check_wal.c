/*
 * tests/check_wal.c — the write-ahead log (wal/log.h, wal/log.c): Check suite "wal".
 *
 * Test cases by kind:
 *   core         create/open/append/recover round trip (POSIX and io_fault) with the record
 *                bytes checked against the format by an encoder written here from log.h; LSN
 *                arithmetic against a model (pad records, gaps, several laps of random sizes);
 *                release lets appends continue; a full ring makes an append wait for release
 *                (and for a failure); -EFBIG/-EINVAL/-EROFS/-ENOENT; ring rounding; reset
 *                renews the salt (-EBUSY when not empty); resize grows and shrinks the ring
 *                (header, file size, salt, half-ring limit; records after it replay after a
 *                power cut, none from before; -EBUSY/-EINVAL/-EROFS).
 *   log          what recovery must refuse: a torn tail; a stale record of an earlier lap (LSN)
 *                and of before a reset (salt); a bad checksum in the middle, then appends
 *                overwrite from there without the old records after it coming back (INV-5 of
 *                log.c); bad headers (-EUCLEAN, -EINVAL, -EPROTONOSUPPORT) and interrupted
 *                creations; crafted records with valid checksums but impossible sizes; random
 *                garbage in the ring (no crash, a bounded replay, appends continue); a file
 *                longer than its ring (inspection says so, a writable open trims it).
 *   crash        on io_fault, power cut at every sync point of a writer, for several seeds and
 *                all three cut modes: every record whose wal_sync returned is recovered with
 *                its payload, the recovered records are exactly a prefix of the appended ones;
 *                then a second session appends records of the lost records' sizes (to realign
 *                with any stale record) and is cut again: still a prefix.  A resize (grow and
 *                shrink, over a ring full of released records) cut at each of its syncs and
 *                after it, in all three modes: wal_inspect sees the old or the new ring over a
 *                file holding it, nothing to replay, torn or stale; a writable open trims the
 *                file; records appended after it are exactly what the next recovery gives.
 *   fault        fail the Nth I/O call with EIO/ENOSPC/short write (N = 1, 2, ... until the
 *                operation succeeds) in creation, in a writer's appends and syncs, and in
 *                recovery's erasing writes: the error is returned, the log is failed after,
 *                it reopens, and recovery gives a prefix holding every synced record.  In a
 *                resize: a failed allocation keeps the old ring and the log usable, a failed
 *                truncate is only logged, any other failure fails the log; it reopens.
 *   groupcommit  16 threads append and wal_wait_durable 200 times each on a POSIX file:
 *                each wait returns with its record durable (no waiter is left asleep: a
 *                lost wake-up hangs the case into its timeout), everything is recovered,
 *                and fdatasync runs far fewer times than commits.
 *                A waiter arriving while a failed flush is being reported gets -EIO, and no
 *                second sync makes the lost records count as durable (fault_sync_no_retry).
 *   inspect      wal_inspect (kvfs-check's read-only walk): on a sound log it reports the
 *                records, end and header fields wal_recover sees (from 0, from the middle,
 *                across a lap), never writes a byte, stops with its callback's error; a torn
 *                last record, records kept behind a torn or never-written one (the stale
 *                headers are exactly what a writable wal_recover erases, and the tail is
 *                clean after it), the stale list's cap; every bad header (wal_open's errors),
 *                a header of zeros over an interrupted creation or over records, a missing
 *                file, a file shorter than its ring.
 *
 * Randomized tests print their seed on failure; KVFS_SEED=N replays it (and a test that loops
 * over seeds then runs only N).  Leaks are caught by the AddressSanitizer build.  The group
 * commit test is not named "concurrency" (the TSan CI step); it is TSan-clean all the same.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/checksum.h"
#include "store/io_fault.h"
#include "tests/testutil.h"
#include "tests/testutil_fault.h"
#include "wal/log.h"

#define DEFAULT_SEED 0x77616c31u /* "wal1" */
#define RING WAL_MIN_RING
#define LOGF "/kvfs-test/wal"
#define HDR WAL_HDR_SIZE

/* ---- records -------------------------------------------------------------------------- */

struct rec {
	lsn_t lsn, end; /* end: 0 when unknown (recovered) */
	unsigned type;
	size_t len;
	uint8_t *data;
};

struct recs {
	struct rec *v;
	size_t n, cap;
};

static void recs_add(struct recs *rs, lsn_t lsn, lsn_t end, unsigned type, const void *p,
		     size_t len)
{
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 64;
		rs->v = realloc(rs->v, rs->cap * sizeof(*rs->v));
		TU_ASSERT(rs->v != NULL, "%s", "out of memory");
	}
	struct rec *r = &rs->v[rs->n++];
	r->lsn = lsn;
	r->end = end;
	r->type = type;
	r->len = len;
	r->data = malloc(len ? len : 1);
	TU_ASSERT(r->data != NULL, "%s", "out of memory");
	if (len)
		memcpy(r->data, p, len);
}

static void recs_free(struct recs *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->v[i].data);
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

static int collect(void *ctx, lsn_t lsn, unsigned type, const void *p, size_t len)
{
	recs_add(ctx, lsn, 0, type, p, len);
	return 0;
}

/* wal_recover from `from` into a fresh list, which must succeed; returns the end. */
static lsn_t recover_ok(struct wal *w, lsn_t from, struct recs *got)
{
	lsn_t end = ~0ull;
	int rc;

	recs_free(got);
	rc = wal_recover(w, from, collect, got, &end);
	TU_ASSERT_EQ(rc, 0, "wal_recover from %" PRIu64, from);
	TU_ASSERT(end >= from && end <= from + RING * 64, "end %" PRIu64 " from %" PRIu64, end,
		  from);
	return end;
}

/* got[i] must equal want[first + i] for every i: LSN, type and payload bytes. */
static void expect_prefix(const struct recs *got, const struct recs *want, size_t first,
			  const char *what)
{
	TU_ASSERT(first + got->n <= want->n, "%s: %zu records recovered, only %zu appended", what,
		  got->n, want->n - first);
	for (size_t i = 0; i < got->n; i++) {
		const struct rec *g = &got->v[i], *e = &want->v[first + i];

		TU_ASSERT(g->lsn == e->lsn && g->type == e->type && g->len == e->len &&
			  memcmp(g->data, e->data, g->len) == 0,
			  "%s: recovered record %zu (lsn %" PRIu64 " type %u len %zu) is not "
			  "appended record %zu (lsn %" PRIu64 " type %u len %zu)",
			  what, i, g->lsn, g->type, g->len, first + i, e->lsn, e->type, e->len);
	}
}

/* The index of the first record of `rs` at or after `from`. */
static size_t first_at(const struct recs *rs, lsn_t from)
{
	size_t i = 0;

	while (i < rs->n && rs->v[i].lsn < from)
		i++;
	return i;
}

/* Where a record of `len` payload bytes goes when the log ends at `end` (log.h: a record
 * never crosses the end of the ring; a pad or a gap fills the rest of the lap). */
static lsn_t model_place(uint64_t ring, lsn_t end, size_t len, lsn_t *rec_end)
{
	uint64_t padded = (WAL_REC_HDR + len + 7) & ~(uint64_t)7, rem = ring - end % ring;
	lsn_t lsn = padded <= rem ? end : end + rem;

	*rec_end = lsn + padded;
	return lsn;
}

/* The end recovery must report after `got` (a prefix of want from `first`): the end of the
 * last recovered record (or `from`), or — when a pad or a gap followed it and survived — the
 * LSN of the next appended record. */
static void expect_end(lsn_t end, const struct recs *got, const struct recs *want, size_t first,
		       lsn_t from, const char *what)
{
	lsn_t last = got->n ? want->v[first + got->n - 1].end : from;
	size_t next = first + got->n;

	if (end == last)
		return;
	TU_ASSERT(next < want->n && end == want->v[next].lsn && end % RING == 0,
		  "%s: recovery ended at %" PRIu64 ", expected %" PRIu64, what, end, last);
}

/* Append with the payload cut into up to three iovecs (one maybe empty). */
static int append_split(struct wal *w, unsigned type, const uint8_t *p, size_t len,
			lsn_t *end)
{
	struct iovec iov[3];
	size_t a = len / 3;

	if (len == 0)
		return wal_append(w, type, NULL, 0, end);
	iov[0] = (struct iovec){ (void *)p, a };
	iov[1] = (struct iovec){ (void *)(p + a), 0 };
	iov[2] = (struct iovec){ (void *)(p + a), len - a };
	return wal_append(w, type, iov, 3, end);
}

/* Append a record, which must succeed at the LSN the model says; recorded in rs. */
static void append_ok(struct wal *w, struct recs *rs, lsn_t *model_end, unsigned type,
		      const uint8_t *p, size_t len)
{
	lsn_t rec_end, lsn = model_place(RING, *model_end, len, &rec_end), end = 0;
	int rc = append_split(w, type, p, len, &end);

	TU_ASSERT_EQ(rc, 0, "append of %zu bytes", len);
	TU_ASSERT_EQ(end, rec_end, "end of a %zu-byte record appended at %" PRIu64, len,
		     *model_end);
	recs_add(rs, lsn, rec_end, type, p, len);
	*model_end = rec_end;
}

/* ---- opening ---------------------------------------------------------------------------- */

static int wopen(struct io_env *io, const char *path, bool create, bool rdonly, uint64_t ring,
		 struct wal **w)
{
	struct wal_options o = {
		.io = io, .create = create, .rdonly = rdonly, .ring_bytes = ring, .log = tu_log_cb,
	};

	return wal_open(path, &o, w);
}

static struct wal *wopen_ok(struct io_env *io, const char *path, bool create)
{
	struct wal *w = NULL;
	int rc = wopen(io, path, create, false, RING, &w);

	TU_ASSERT_EQ(rc, 0, "wal_open %s create=%d", path, create);
	return w;
}

static struct io_fault *machine(uint64_t seed)
{
	struct io_fault *m = io_fault_new(seed);

	TU_ASSERT(m != NULL, "%s", "io_fault_new");
	return m;
}

/* Reboot m (freeing it) into a new machine holding its durable images. */
static struct io_fault *reboot(struct io_fault *m, uint64_t seed)
{
	struct io_fault *n = io_fault_reboot(m, seed);

	TU_ASSERT(n != NULL, "%s", "io_fault_reboot");
	io_fault_free(m);
	return n;
}

/* ---- the format, independently of wal/log.c ---------------------------------------------- */

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void st64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static void st32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

/* XXH3-64 of header bytes 0..15 followed by the payload, seed salt — by concatenation. */
static uint64_t t_rec_checksum(const uint8_t *hdr, const void *payload, size_t len,
			       uint64_t salt)
{
	uint8_t *b = malloc(16 + len);
	uint64_t c;

	TU_ASSERT(b != NULL, "%s", "out of memory");
	memcpy(b, hdr, 16);
	if (len)
		memcpy(b + 16, payload, len);
	c = checksum64(b, 16 + len, salt);
	free(b);
	return c;
}

/* Encode a record into buf (room for the padded size); returns the padded size.  `size` is
 * written as given (a crafted record may lie); the payload is `len` bytes. */
static size_t t_enc_rec(uint8_t *buf, uint32_t size, uint32_t type, lsn_t lsn,
			const void *payload, size_t len, uint64_t salt)
{
	size_t padded = (WAL_REC_HDR + len + 7) & ~(size_t)7;

	memset(buf, 0, padded);
	st32(buf, size);
	st32(buf + 4, type);
	st64(buf + 8, lsn);
	if (len)
		memcpy(buf + WAL_REC_HDR, payload, len);
	st64(buf + 16, t_rec_checksum(buf, payload, len, salt));
	return padded;
}

/* Poke a crafted record at its place in the ring. */
static void poke_rec(struct io_fault *m, lsn_t lsn, uint32_t size, uint32_t type, lsn_t lsn_field,
		     const void *payload, size_t len, uint64_t salt)
{
	uint8_t *b = malloc(len + 32);

	TU_ASSERT(b != NULL, "%s", "out of memory");
	size_t padded = t_enc_rec(b, size, type, lsn_field, payload, len, salt);
	TU_ASSERT_EQ(io_fault_poke(m, LOGF, HDR + lsn % RING, b, padded), 0, "%s", "poke");
	free(b);
}

static uint64_t header_salt(struct io_fault *m)
{
	uint8_t h[HDR];

	TU_ASSERT_EQ(io_fault_peek(m, LOGF, 0, h, HDR), 0, "%s", "peek header");
	return ld64(h + 32);
}

/* True when the bytes at `lsn`'s place form a record whose checksum holds with `salt` — the
 * LSN field aside: used to show that a test attacks the check it means to. */
static bool checksum_holds_at(struct io_fault *m, lsn_t lsn, uint64_t salt, lsn_t *lsn_field)
{
	uint8_t hdr[WAL_REC_HDR], *p;
	uint32_t size;
	bool ok;

	TU_ASSERT_EQ(io_fault_peek(m, LOGF, HDR + lsn % RING, hdr, sizeof(hdr)), 0, "%s", "peek");
	size = ld32(hdr);
	*lsn_field = ld64(hdr + 8);
	if (size < WAL_REC_HDR || size > RING / 2)
		return false;
	p = malloc(size);
	TU_ASSERT(p != NULL, "%s", "out of memory");
	TU_ASSERT_EQ(io_fault_peek(m, LOGF, HDR + lsn % RING, p, size), 0, "%s", "peek");
	ok = ld64(hdr + 16) == t_rec_checksum(p, p + WAL_REC_HDR, size - WAL_REC_HDR, salt);
	free(p);
	return ok;
}

/* ---- workloads (crash and fault tests) -------------------------------------------------- */

struct wl_op {
	unsigned type;
	size_t len;
	bool sync;        /* wal_sync after the append */
	unsigned release; /* when > 0: release up to the end of the record that many back */
};

struct workload {
	lsn_t base; /* where the log starts (wal_recover on the new log): near a lap's end */
	size_t n;
	struct wl_op ops[64];
	size_t n_syncs;
};

static void wl_make(struct workload *wl, uint64_t seed)
{
	struct tu_rng r;
	uint64_t total = 0;

	tu_rng_init(&r, seed);
	memset(wl, 0, sizeof(*wl));
	wl->base = tu_rng_below(&r, 3) * RING + RING - (tu_rng_below(&r, 200000) & ~7ull);
	for (size_t i = 0; i < 48; i++) {
		struct wl_op *o = &wl->ops[wl->n];
		uint64_t c = tu_rng_below(&r, 10);

		o->type = 1 + (unsigned)tu_rng_below(&r, 7);
		o->len = c < 6 ? tu_rng_below(&r, 300) : c < 9 ? tu_rng_range(&r, 300, 8000)
							  : tu_rng_range(&r, 8000, 60000);
		o->sync = tu_rng_chance(&r, 1, 2);
		o->release = tu_rng_chance(&r, 1, 12) ? 1 + (unsigned)tu_rng_below(&r, 4) : 0;
		total += o->len + WAL_REC_HDR + 8;
		if (total > RING / 3)
			break;
		wl->n++;
		wl->n_syncs += o->sync;
	}
}

/* Payload bytes of record i of a run tagged `tag`. */
static void wl_payload(uint8_t *buf, size_t len, uint64_t tag, size_t i)
{
	tf_value_fill(buf, len, tag * 1000003u + i);
}

struct run {
	struct recs app;  /* every record whose append returned 0 */
	size_t n_synced;  /* app[0..n_synced) are covered by a wal_sync that returned 0 */
	lsn_t released;   /* the last wal_release (recovery starts there) */
	int err;          /* the first error, or 0 */
};

/* Run the workload on w (recovered at wl->base), stopping at the first error. */
static void wl_run(struct wal *w, const struct workload *wl, uint64_t tag, struct run *r)
{
	static uint8_t buf[60000];
	lsn_t model_end = wl->base;

	memset(r, 0, sizeof(*r));
	r->released = wl->base;
	for (size_t i = 0; i < wl->n; i++) {
		const struct wl_op *o = &wl->ops[i];
		lsn_t rec_end, lsn = model_place(RING, model_end, o->len, &rec_end), end = 0;

		wl_payload(buf, o->len, tag, i);
		r->err = append_split(w, o->type, buf, o->len, &end);
		if (r->err)
			return;
		TU_ASSERT_EQ(end, rec_end, "record %zu", i);
		recs_add(&r->app, lsn, end, o->type, buf, o->len);
		model_end = end;
		if (o->sync) {
			r->err = wal_sync(w);
			if (r->err)
				return;
			r->n_synced = r->app.n;
		}
		if (o->release && o->release <= r->app.n) {
			r->released = r->app.v[r->app.n - o->release].end;
			wal_release(w, r->released);
		}
	}
}

/* ---- core --------------------------------------------------------------------------------- */

/* Loop 0: POSIX files in a temp dir; 1: io_fault. */
START_TEST(core_roundtrip)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED);
	struct io_fault *m = NULL;
	struct io_env *io;
	char dir[PATH_MAX], path[PATH_MAX + 8];
	struct recs app = { 0 }, got = { 0 };
	struct tu_rng r;
	struct wal *w;
	struct wal_stat s;
	lsn_t end = 0, e;
	uint8_t buf[5000];

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	if (_i == 0) {
		TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
		snprintf(path, sizeof(path), "%s/wal", dir);
		io = NULL;
	} else {
		m = machine(seed);
		io = io_fault_env(m);
		snprintf(path, sizeof(path), "%s", LOGF);
	}
	TU_ASSERT_EQ(wopen(io, path, false, false, RING, &w), -ENOENT, "%s", "missing log");
	w = wopen_ok(io, path, true);
	wal_stat(w, &s);
	TU_ASSERT_EQ(s.ring_bytes, RING, "%s", "ring");
	TU_ASSERT_EQ(s.end, 0, "%s", "a new log starts at LSN 0");
	for (int i = 0; i < 300; i++) {
		size_t len = tu_rng_below(&r, 8) == 0 ? 0 : tu_rng_below(&r, sizeof(buf));

		tu_rng_bytes(&r, buf, len);
		append_ok(w, &app, &end, 1 + (unsigned)tu_rng_below(&r, 1000), buf, len);
		if (i % 100 == 99)
			wal_release(w, end); /* keep room: 300 records of ~2.5 KiB > 1 MiB */
	}
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_stat(w, &s);
	TU_ASSERT(s.end == end && s.durable == end && s.n_appends == 300, "end %" PRIu64, s.end);
	lsn_t released = s.released;
	wal_close(w);

	/* an existing log: appends wait for wal_recover */
	w = wopen_ok(io, path, false);
	TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &e), -EINVAL, "%s", "append before recover");
	e = recover_ok(w, released, &got);
	TU_ASSERT_EQ(e, end, "%s", "recovered end");
	expect_prefix(&got, &app, first_at(&app, released), "round trip");
	TU_ASSERT_EQ(got.n, app.n - first_at(&app, released), "%s", "every record");
	append_ok(w, &app, &end, 42, (const uint8_t *)"after", 5);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);

	/* read-only: recovery works, appends do not */
	TU_ASSERT_EQ(wopen(io, path, false, true, 0, &w), 0, "%s", "rdonly open");
	e = recover_ok(w, released, &got);
	TU_ASSERT_EQ(e, end, "%s", "rdonly end");
	TU_ASSERT_EQ(got.n, app.n - first_at(&app, released), "%s", "rdonly records");
	TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &e), -EROFS, "%s", "rdonly append");
	TU_ASSERT_EQ(wal_reset(w), -EROFS, "%s", "rdonly reset");
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "rdonly sync: nothing to do");
	wal_close(w);
	TU_ASSERT_EQ(wopen(io, path, true, true, 0, &w), -EINVAL, "%s", "create + rdonly");

	if (m) {
		/* the bytes on disk, against the format in log.h read here independently */
		uint8_t h[HDR], rb[5000 + 32];
		const struct rec *x = &app.v[app.n - 1];
		size_t padded = (WAL_REC_HDR + x->len + 7) & ~(size_t)7;

		TU_ASSERT_EQ(io_fault_peek(m, LOGF, 0, h, HDR), 0, "%s", "peek");
		TU_ASSERT(memcmp(h + 8, "KVFSWAL\0", 8) == 0, "%s", "magic");
		TU_ASSERT_EQ(ld32(h + 16), WAL_FORMAT_VERSION, "%s", "version");
		TU_ASSERT_EQ(ld32(h + 20), 0, "%s", "zero");
		TU_ASSERT_EQ(ld64(h + 24), RING, "%s", "ring_bytes");
		TU_ASSERT_EQ(ld64(h), checksum64(h + 8, HDR - 8, 0), "%s", "header checksum");
		for (size_t i = 40; i < HDR; i++)
			TU_ASSERT_EQ(h[i], 0, "header byte %zu", i);
		TU_ASSERT_EQ(io_fault_file_size(m, LOGF), HDR + RING, "%s", "preallocated ring");
		TU_ASSERT_EQ(io_fault_peek(m, LOGF, HDR + x->lsn % RING, rb, padded), 0, "%s",
			     "peek record");
		TU_ASSERT_EQ(ld32(rb), WAL_REC_HDR + x->len, "%s", "size");
		TU_ASSERT_EQ(ld32(rb + 4), 42, "%s", "type");
		TU_ASSERT_EQ(ld64(rb + 8), x->lsn, "%s", "lsn");
		TU_ASSERT_EQ(ld64(rb + 16), t_rec_checksum(rb, x->data, x->len, ld64(h + 32)), "%s",
			     "record checksum");
		TU_ASSERT(memcmp(rb + 24, "after\0\0\0", 8) == 0, "%s", "payload, zero padding");
		io_fault_free(m);
	} else {
		tu_rmtree(dir);
	}
	recs_free(&app);
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/* LSN arithmetic: a gap, a pad record, then several laps of random sizes against the model;
 * recovery from the released point gives every record at its LSN. */
START_TEST(core_lsn_laps)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 1);
	struct io_fault *m = machine(seed);
	struct recs app = { 0 }, got = { 0 };
	struct tu_rng r;
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	struct wal_stat s;
	lsn_t end = 0, released = 0;
	size_t n_pads = 0, n_gaps = 0;
	uint8_t *buf = malloc(RING / 2);
	uint8_t ph[WAL_REC_HDR];

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	TU_ASSERT(buf != NULL, "%s", "out of memory");
	memset(buf, 0xab, RING / 2);
	/* the largest record (half the ring), then one ending 16 bytes before the lap end: a
	 * gap, so the next record starts at LSN RING */
	append_ok(w, &app, &end, 1, buf, RING / 2 - WAL_REC_HDR);
	TU_ASSERT_EQ(end, RING / 2, "%s", "max record");
	append_ok(w, &app, &end, 2, buf, RING / 2 - 16 - WAL_REC_HDR);
	TU_ASSERT_EQ(end, RING - 16, "%s", "before the gap");
	wal_release(w, end);
	append_ok(w, &app, &end, 3, buf, 10);
	TU_ASSERT_EQ(app.v[2].lsn, RING, "%s", "after a gap: the next lap");
	TU_ASSERT_EQ(end, RING + 40, "%s", "34 bytes padded to 40");
	/* end at 2 RING - 104: the next 200-byte record needs a pad record */
	append_ok(w, &app, &end, 4, buf, RING / 2 - WAL_REC_HDR);
	append_ok(w, &app, &end, 4, buf, RING / 2 - 144 - WAL_REC_HDR);
	TU_ASSERT_EQ(end, 2 * RING - 104, "%s", "before the pad");
	released = end;
	wal_release(w, released);
	append_ok(w, &app, &end, 5, buf, 200);
	TU_ASSERT_EQ(app.v[5].lsn, 2 * RING, "%s", "after a pad: the next lap");
	TU_ASSERT_EQ(io_fault_peek(m, LOGF, HDR + RING - 104, ph, sizeof(ph)), 0, "%s", "peek");
	TU_ASSERT(ld32(ph) == WAL_REC_HDR && ld32(ph + 4) == WAL_PAD &&
		  ld64(ph + 8) == 2 * RING - 104, "%s", "the pad record");

	/* six laps of random sizes, releasing all but the last few records when room runs out */
	while (end < 8 * RING) {
		uint64_t c = tu_rng_below(&r, 20);
		size_t len = c < 10 ? tu_rng_below(&r, 200) : c < 18 ? tu_rng_below(&r, 20000)
						: tu_rng_below(&r, RING / 2 - WAL_REC_HDR + 1);
		lsn_t rec_end, lsn = model_place(RING, end, len, &rec_end);

		if (rec_end - released > RING) {
			/* release all but the last `keep` records, fewer if that is not room */
			for (size_t keep = 1 + tu_rng_below(&r, 3);; keep--) {
				lsn_t rel = keep ? app.v[app.n - keep].end : end;

				if (rel < released)
					rel = released;
				if (rec_end - rel <= RING) {
					released = rel;
					break;
				}
			}
			wal_release(w, released);
			TU_ASSERT_EQ(wal_used(w), end - released, "%s", "used");
		}
		if (lsn != end) {
			if (RING - end % RING >= WAL_REC_HDR)
				n_pads++;
			else
				n_gaps++;
		}
		tu_rng_bytes(&r, buf, len);
		append_ok(w, &app, &end, 1 + (unsigned)tu_rng_below(&r, 9), buf, len);
	}
	TU_ASSERT(n_pads > 3, "only %zu pad records", n_pads);
	wal_stat(w, &s);
	TU_ASSERT(s.end == end && s.n_appends == app.n && s.bytes_appended == end &&
		  s.n_full_waits == 0, "stat end %" PRIu64, s.end);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, released, &got), end, "%s", "end after laps");
	expect_prefix(&got, &app, first_at(&app, released), "laps");
	TU_ASSERT_EQ(got.n, app.n - first_at(&app, released), "%s", "every record");
	wal_close(w);
	fprintf(stderr, "wal core_lsn_laps: %zu records over %.1f laps, %zu pads, %zu gaps\n",
		app.n, (double)end / RING, n_pads, n_gaps + 1);
	io_fault_free(m);
	free(buf);
	recs_free(&app);
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/* Fill the ring with 64 KiB records until the next would not fit; returns the model end. */
static lsn_t fill_ring(struct wal *w, struct recs *app, const uint8_t *buf, size_t len)
{
	lsn_t end = 0, rec_end;

	while (model_place(RING, end, len, &rec_end), rec_end <= RING)
		append_ok(w, app, &end, 1, buf, len);
	return end;
}

START_TEST(core_release)
{
	struct io_fault *m = machine(1);
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	struct recs app = { 0 };
	static uint8_t buf[65536];
	struct wal_stat s;
	lsn_t end = fill_ring(w, &app, buf, sizeof(buf));

	TU_ASSERT_EQ(wal_used(w), end, "%s", "used");
	wal_release(w, app.v[1].end); /* two records' worth of room */
	append_ok(w, &app, &end, 1, buf, sizeof(buf));
	append_ok(w, &app, &end, 1, buf, sizeof(buf));
	wal_release(w, 5); /* an LSN before the last release changes nothing */
	wal_release(w, ~0ull); /* past the end: the end */
	TU_ASSERT_EQ(wal_used(w), 0, "%s", "all released");
	wal_stat(w, &s);
	TU_ASSERT(s.released == end && s.n_full_waits == 0, "released %" PRIu64, s.released);
	append_ok(w, &app, &end, 1, buf, 10);
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
}
END_TEST

struct full_arg {
	struct wal *w;
	const uint8_t *buf;
	size_t len;
	atomic_int done;
	int rc;
	lsn_t end;
};

static void *full_thread(void *p)
{
	struct full_arg *a = p;
	struct iovec iov = { (void *)a->buf, a->len };

	a->rc = wal_append(a->w, 9, &iov, 1, &a->end);
	atomic_store(&a->done, 1);
	return NULL;
}

static void wait_for_full_waits(struct wal *w, uint64_t n)
{
	struct wal_stat s;

	for (int i = 0; i < 2000; i++) {
		wal_stat(w, &s);
		if (s.n_full_waits >= n)
			return;
		usleep(1000);
	}
	TU_ASSERT(0, "no append waited for room (%" PRIu64 ")", s.n_full_waits);
}

/* A full ring: the append waits until wal_release — or until the log fails. */
START_TEST(core_full_wait)
{
	struct io_fault *m = machine(2);
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	struct recs app = { 0 };
	static uint8_t buf[65536];
	struct full_arg a = { .w = w, .buf = buf, .len = sizeof(buf) };
	pthread_t t;
	lsn_t end = fill_ring(w, &app, buf, sizeof(buf)), rec_end, lsn;

	lsn = model_place(RING, end, sizeof(buf), &rec_end);
	TU_ASSERT_EQ(pthread_create(&t, NULL, full_thread, &a), 0, "%s", "thread");
	wait_for_full_waits(w, 1);
	usleep(50 * 1000);
	TU_ASSERT(!atomic_load(&a.done), "%s", "the append did not wait for room");
	wal_release(w, app.v[0].end); /* not enough room for a 64 KiB record at `lsn`? */
	if (rec_end - app.v[0].end > RING) {
		usleep(50 * 1000);
		TU_ASSERT(!atomic_load(&a.done), "%s", "appended without room");
	}
	wal_release(w, app.v[2].end);
	TU_ASSERT_EQ(pthread_join(t, NULL), 0, "%s", "join");
	TU_ASSERT_EQ(a.rc, 0, "%s", "append after release");
	TU_ASSERT_EQ(a.end, rec_end, "%s", "its end");
	(void)lsn;

	/* fill again; a waiting append returns -EIO when the log fails meanwhile */
	end = rec_end;
	while (model_place(RING, end, sizeof(buf), &rec_end), rec_end - app.v[2].end <= RING)
		append_ok(w, &app, &end, 1, buf, sizeof(buf));
	atomic_store(&a.done, 0);
	TU_ASSERT_EQ(pthread_create(&t, NULL, full_thread, &a), 0, "%s", "thread");
	wait_for_full_waits(w, 2);
	io_fault_fail_at(m, 1, IO_FAULT_EIO);
	TU_ASSERT_EQ(wal_sync(w), -EIO, "%s", "failed sync");
	TU_ASSERT_EQ(pthread_join(t, NULL), 0, "%s", "join");
	TU_ASSERT_EQ(a.rc, -EIO, "%s", "the waiting append sees the failure");
	TU_ASSERT(tu_log_contains("fdatasync failed"), "%s", "the failure is logged");
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
}
END_TEST

START_TEST(core_limits)
{
	struct io_fault *m = machine(3);
	struct io_env *io = io_fault_env(m);
	struct wal *w;
	struct wal_stat s;
	uint8_t *buf = calloc(1, RING);
	struct iovec iov[2];
	lsn_t end;

	TU_ASSERT(buf != NULL, "%s", "out of memory");
	/* ring sizes: rounded up to 4096 and to WAL_MIN_RING */
	TU_ASSERT_EQ(wopen(io, "/r1", true, false, RING + 1, &w), 0, "%s", "open");
	wal_stat(w, &s);
	TU_ASSERT_EQ(s.ring_bytes, RING + 4096, "%s", "rounded up");
	TU_ASSERT_EQ(io_fault_file_size(m, "/r1"), HDR + RING + 4096, "%s", "allocated");
	wal_close(w);
	TU_ASSERT_EQ(wopen(io, "/r2", true, false, 1000, &w), 0, "%s", "open");
	wal_stat(w, &s);
	TU_ASSERT_EQ(s.ring_bytes, WAL_MIN_RING, "%s", "at least the minimum");
	wal_close(w);
	TU_ASSERT_EQ(wopen(io, "/r3", true, false, WAL_MAX_RING + 1, &w), -EINVAL, "%s", "max");
	/* an existing log keeps its ring whatever ring_bytes says */
	TU_ASSERT_EQ(wopen(io, "/r1", true, false, 4 * RING, &w), 0, "%s", "reopen");
	wal_stat(w, &s);
	TU_ASSERT_EQ(s.ring_bytes, RING + 4096, "%s", "kept");
	wal_close(w);

	w = wopen_ok(io, LOGF, true);
	/* -EFBIG past half the ring (header, payload and padding counted), across iovecs */
	iov[0] = (struct iovec){ buf, RING / 4 };
	iov[1] = (struct iovec){ buf, RING / 4 - WAL_REC_HDR + 1 };
	TU_ASSERT_EQ(wal_append(w, 1, iov, 2, &end), -EFBIG, "%s", "half the ring + 1");
	iov[1].iov_len = RING;
	TU_ASSERT_EQ(wal_append(w, 1, iov, 2, &end), -EFBIG, "%s", "larger than the ring");
	iov[1].iov_len = SIZE_MAX - 10;
	TU_ASSERT_EQ(wal_append(w, 1, iov, 2, &end), -EFBIG, "%s", "overflowing length");
	iov[1].iov_len = RING / 4 - WAL_REC_HDR;
	TU_ASSERT_EQ(wal_append(w, 1, iov, 2, &end), 0, "%s", "exactly half the ring");
	TU_ASSERT_EQ(end, RING / 2, "%s", "its end");
	TU_ASSERT_EQ(wal_append(w, WAL_PAD, iov, 1, &end), -EINVAL, "%s", "type 0");
	TU_ASSERT_EQ(wal_append(w, 1, iov, -1, &end), -EINVAL, "%s", "iovcnt < 0");
	TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &end), 0, "%s", "an empty record");
	TU_ASSERT_EQ(end, RING / 2 + WAL_REC_HDR, "%s", "a bare header");
	TU_ASSERT_EQ(wal_wait_durable(w, ~0ull), 0, "%s", "wait past the end: the end");
	wal_stat(w, &s);
	TU_ASSERT_EQ(s.durable, end, "%s", "durable");
	/* wal_recover: argument checks, and too late after an append */
	TU_ASSERT_EQ(wal_recover(w, 0, collect, NULL, &end), -EINVAL, "%s", "after an append");
	wal_close(w);
	w = wopen_ok(io, LOGF, false);
	TU_ASSERT_EQ(wal_recover(w, 4, collect, NULL, &end), -EINVAL, "%s", "misaligned");
	TU_ASSERT_EQ(wal_recover(w, WAL_LSN_MAX + 8, collect, NULL, &end), -EINVAL, "%s", "big");
	wal_close(w);
	io_fault_free(m);
	free(buf);
}
END_TEST

START_TEST(core_reset)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 2);
	struct io_fault *m = machine(seed);
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	struct recs app = { 0 }, got = { 0 };
	struct wal_stat s0, s;
	lsn_t end = 0;
	uint64_t salt0 = header_salt(m), salt1;

	tu_seed_begin("KVFS_SEED", seed);
	TU_ASSERT(salt0 != 0, "%s", "a salt");
	TU_ASSERT_EQ(wal_reset(w), 0, "%s", "reset of a new log");
	salt1 = header_salt(m);
	TU_ASSERT(salt1 != salt0, "%s", "renewed");
	append_ok(w, &app, &end, 1, (const uint8_t *)"one", 3);
	append_ok(w, &app, &end, 1, (const uint8_t *)"two", 3);
	TU_ASSERT_EQ(wal_reset(w), -EBUSY, "%s", "not empty");
	wal_release(w, app.v[0].end);
	TU_ASSERT_EQ(wal_reset(w), -EBUSY, "%s", "still not empty");
	wal_release(w, end);
	wal_stat(w, &s0);
	TU_ASSERT_EQ(wal_reset(w), 0, "%s", "reset");
	wal_stat(w, &s);
	TU_ASSERT(header_salt(m) != salt1 && header_salt(m) != salt0, "%s", "renewed again");
	TU_ASSERT(s.end == end && s.durable == end && s.n_syncs == s0.n_syncs + 1,
		  "end %" PRIu64 " durable %" PRIu64, s.end, s.durable);
	/* LSNs continue */
	append_ok(w, &app, &end, 7, (const uint8_t *)"three", 5);
	TU_ASSERT_EQ(app.v[2].lsn, app.v[1].end, "%s", "LSNs continue after a reset");
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	/* the reset is durable: after a power cut the new salt holds */
	m = reboot(m, seed + 1);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, app.v[2].lsn, &got), end, "%s", "end");
	expect_prefix(&got, &app, 2, "after reset");
	TU_ASSERT_EQ(got.n, 1, "%s", "the new record");
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/* ---- log: what recovery must refuse ------------------------------------------------------- */

/* A new log on m with `n` records of random sizes appended and synced; returns the list. */
static struct wal *log_with(struct io_fault *m, struct tu_rng *r, size_t n, size_t maxlen,
			    struct recs *app, lsn_t *end)
{
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	uint8_t *buf = malloc(maxlen + 1);

	TU_ASSERT(buf != NULL, "%s", "out of memory");
	*end = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = tu_rng_below(r, maxlen + 1);

		tu_rng_bytes(r, buf, len);
		append_ok(w, app, end, 1 + (unsigned)tu_rng_below(r, 5), buf, len);
	}
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	free(buf);
	return w;
}

START_TEST(log_torn_tail)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 3);
	struct recs app = { 0 }, got = { 0 };
	struct tu_rng r;
	static uint8_t big[10000], zero[4096];

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	/* 0: the tail of the last record's payload lost; 1: its header half written; 2: its
	 * last sector only; 3: a real power cut with every unsynced write dropped */
	for (int v = 0; v < 4; v++) {
		struct io_fault *m = machine(seed + (uint64_t)v);
		lsn_t end, e;
		struct wal *w = log_with(m, &r, 20, 3000, &app, &end);
		const struct rec *x;

		tu_rng_bytes(&r, big, sizeof(big));
		append_ok(w, &app, &end, 3, big, sizeof(big));
		x = &app.v[app.n - 1];
		if (v == 0)
			io_fault_poke(m, LOGF, HDR + x->lsn % RING + 6000, zero, 4096);
		else if (v == 1)
			io_fault_poke(m, LOGF, HDR + x->lsn % RING, zero, 12);
		else if (v == 2)
			io_fault_poke(m, LOGF, HDR + x->lsn % RING, zero, 512);
		else
			io_fault_set_cut_mode(m, IO_CUT_DROP_ALL);
		io_fault_power_cut(m);
		wal_close(w);
		m = reboot(m, seed);
		w = wopen_ok(io_fault_env(m), LOGF, false);
		e = recover_ok(w, 0, &got);
		expect_prefix(&got, &app, 0, "torn tail");
		TU_ASSERT_EQ(got.n, 20, "variant %d: recovery stops before the torn record", v);
		TU_ASSERT_EQ(e, x->lsn, "variant %d: end", v);
		/* appends continue there */
		app.n--;
		free(x->data);
		end = e;
		append_ok(w, &app, &end, 4, (const uint8_t *)"next", 4);
		TU_ASSERT_EQ(app.v[20].lsn, e, "%s", "overwrites the torn record");
		wal_close(w);
		io_fault_free(m);
		recs_free(&app);
	}
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/* A record left from the previous lap at the end of the log: valid checksum, wrong LSN. */
START_TEST(log_stale_lap)
{
	struct io_fault *m = machine(5);
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	struct recs app = { 0 }, got = { 0 };
	static uint8_t buf[4096 - WAL_REC_HDR];
	lsn_t end = 0, lsn_field, released = 0;

	/* 4096-byte records: 256 a lap, so the next lap's records sit on the last lap's */
	for (int i = 0; i < 300; i++) {
		memset(buf, i, sizeof(buf));
		if (end + 4096 - released > RING)
			wal_release(w, released = end - 64 * 4096);
		append_ok(w, &app, &end, 1, buf, sizeof(buf));
	}
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	TU_ASSERT(checksum_holds_at(m, end, header_salt(m), &lsn_field), "%s",
		  "a valid old record follows the end");
	TU_ASSERT_EQ(lsn_field, end - RING, "%s", "from the previous lap");
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, released, &got), end, "%s", "stops at the stale record");
	expect_prefix(&got, &app, first_at(&app, released), "stale lap");
	TU_ASSERT_EQ(got.n, app.n - first_at(&app, released), "%s", "every record");
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&got);
}
END_TEST

/* Records from before a reset have the right LSN for their place but the old salt. */
START_TEST(log_stale_reset)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 4);
	struct io_fault *m = machine(seed);
	struct recs app = { 0 }, got = { 0 };
	struct tu_rng r;
	lsn_t end, lsn_field;
	struct wal *w;
	uint64_t old_salt;

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	w = log_with(m, &r, 10, 500, &app, &end);
	old_salt = header_salt(m);
	wal_release(w, end);
	TU_ASSERT_EQ(wal_reset(w), 0, "%s", "reset");
	wal_close(w);
	TU_ASSERT(checksum_holds_at(m, 0, old_salt, &lsn_field) && lsn_field == 0, "%s",
		  "the old record is intact, LSN and all");
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, 0, &got), 0, "%s", "nothing after a reset");
	TU_ASSERT_EQ(got.n, 0, "%s", "no record");
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/* A bad checksum in the middle: recovery stops there; new records overwrite from there, and
 * the valid old records after it never come back, even when a new record has exactly the
 * size of the one it replaces (INV-5).  Variant 1 loses the record to a power cut instead. */
START_TEST(log_stale_ahead)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 5);
	struct recs app = { 0 }, got = { 0 };
	struct tu_rng r;
	struct wal_stat s;
	static uint8_t buf[3000];
	uint8_t hdr[WAL_REC_HDR];

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	for (int v = 0; v < 2; v++) {
		struct io_fault *m = machine(seed + (uint64_t)v);
		lsn_t end, lsn_field;
		struct wal *w = log_with(m, &r, v == 0 ? 10 : 5, sizeof(buf), &app, &end);
		const struct rec *x;
		uint8_t flip;

		if (v == 0) {
			/* flip one payload byte of record 5 */
			x = &app.v[5];
			TU_ASSERT_EQ(io_fault_peek(m, LOGF, HDR + x->lsn % RING + 30, &flip, 1), 0,
				     "%s", "peek");
			flip ^= 0x10;
			io_fault_poke(m, LOGF, HDR + x->lsn % RING + 30, &flip, 1);
			wal_close(w);
		} else {
			/* records 5..9 appended unsynced, kept by the cut, 5 then torn */
			for (int i = 0; i < 5; i++) {
				tu_rng_bytes(&r, buf, sizeof(buf));
				append_ok(w, &app, &end, 2, buf, tu_rng_below(&r, sizeof(buf)));
			}
			x = &app.v[5];
			io_fault_set_cut_mode(m, IO_CUT_KEEP_ALL);
			io_fault_power_cut(m);
			wal_close(w);
			memset(hdr, 0, sizeof(hdr));
			io_fault_poke(m, LOGF, HDR + x->lsn % RING + 8, hdr, 8); /* torn lsn */
			m = reboot(m, seed);
		}
		TU_ASSERT(checksum_holds_at(m, app.v[6].lsn, header_salt(m), &lsn_field) &&
			  lsn_field == app.v[6].lsn, "%s", "record 6 is valid where it is");
		w = wopen_ok(io_fault_env(m), LOGF, false);
		TU_ASSERT_EQ(recover_ok(w, 0, &got), x->lsn, "variant %d: stops at record 5", v);
		expect_prefix(&got, &app, 0, "bad checksum");
		TU_ASSERT_EQ(got.n, 5, "%s", "records 0..4");
		wal_stat(w, &s);
		TU_ASSERT(s.durable == x->lsn && s.n_syncs == 1, "%s", "erased, synced");
		TU_ASSERT(!checksum_holds_at(m, app.v[6].lsn, header_salt(m), &lsn_field), "%s",
			  "record 6 is erased");
		/* a new record of record 5's size: realigns with the old record 6 */
		struct recs app2 = { 0 };
		lsn_t end2 = x->lsn;

		for (size_t i = 0; i < 5; i++)
			recs_add(&app2, app.v[i].lsn, app.v[i].end, app.v[i].type, app.v[i].data,
				 app.v[i].len);
		memset(buf, 0x5a, sizeof(buf));
		append_ok(w, &app2, &end2, 6, buf, x->len);
		TU_ASSERT_EQ(end2, app.v[6].lsn, "%s", "the new record ends where 6 began");
		TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
		wal_close(w);
		m = reboot(m, seed + 7);
		w = wopen_ok(io_fault_env(m), LOGF, false);
		TU_ASSERT_EQ(recover_ok(w, 0, &got), end2, "variant %d: no old record after", v);
		expect_prefix(&got, &app2, 0, "after overwrite");
		TU_ASSERT_EQ(got.n, 6, "%s", "0..4 and the new one");
		wal_close(w);
		io_fault_free(m);
		recs_free(&app);
		recs_free(&app2);
	}
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/* Rewrite the header's checksum after changing it. */
static void reseal_header(uint8_t *h)
{
	st64(h, checksum64(h + 8, HDR - 8, 0));
}

START_TEST(log_header)
{
	struct io_fault *m0 = machine(6), *m;
	struct wal *w = wopen_ok(io_fault_env(m0), LOGF, true);
	struct recs got = { 0 };
	uint8_t h0[HDR], h[HDR];
	lsn_t end = 0;
	struct io_file *f;
	/* each case XORs one header byte, then maybe recomputes the checksum */
	static const struct {
		const char *what;
		size_t off;
		uint8_t xor;
		bool reseal;
		int want;
	} cases[] = {
		{ "checksum", 0, 1, false, -EUCLEAN },
		{ "salt", 32, 1, false, -EUCLEAN },
		{ "magic", 8, 0x20, false, -EINVAL },
		{ "magic, resealed", 14, 0x20, true, -EINVAL },
		{ "version 2", 16, 3, true, -EPROTONOSUPPORT },
		{ "version 2, not resealed", 16, 3, false, -EUCLEAN },
		{ "zero field", 21, 1, true, -EUCLEAN },
		{ "ring_bytes not a multiple of 4096", 24, 0x10, true, -EUCLEAN },
		{ "ring_bytes below the minimum", 26, 0x18, true, -EUCLEAN },
		{ "ring_bytes huge", 31, 0x40, true, -EUCLEAN },
		{ "a reserved byte", 4000, 1, true, -EUCLEAN },
	};

	append_ok(w, &got, &end, 1, (const uint8_t *)"x", 1);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	recs_free(&got);
	TU_ASSERT_EQ(io_fault_peek(m0, LOGF, 0, h0, HDR), 0, "%s", "peek");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = tf_machine_copy(m0, i);
		memcpy(h, h0, HDR);
		h[cases[i].off] ^= cases[i].xor;
		if (cases[i].reseal)
			reseal_header(h);
		io_fault_poke(m, LOGF, 0, h, HDR);
		tu_log_clear();
		TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, false, false, 0, &w), cases[i].want, "%s",
			     cases[i].what);
		TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, true, false, 0, &w), cases[i].want,
			     "%s (create)", cases[i].what);
		TU_ASSERT(tu_log_contains("wal: " LOGF ": "), "%s: logged", cases[i].what);
		io_fault_free(m);
	}

	/* a destroyed header (zeros) over a ring that holds a record: never created again */
	m = tf_machine_copy(m0, 100);
	memset(h, 0, HDR);
	io_fault_poke(m, LOGF, 0, h, HDR);
	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, false, false, 0, &w), -EINVAL, "%s", "zero");
	tu_log_clear();
	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, true, false, RING, &w), -EUCLEAN, "%s",
		     "zero header over a record");
	TU_ASSERT(tu_log_contains("holds records"), "%s", "zero header over a record: logged");
	/* a creation interrupted before the header: zero header over a zero ring, short file */
	io_fault_poke(m, LOGF, HDR, h, HDR); /* the record's page (the ring's first) */
	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, true, false, RING, &w), 0, "%s", "recreated");
	TU_ASSERT_EQ(recover_ok(w, 0, &got), 0, "%s", "empty");
	wal_close(w);
	TU_ASSERT_EQ(io_open(io_fault_env(m), "/short", IO_OPEN_CREATE, 0644, &f), 0, "%s", "f");
	TU_ASSERT_EQ(io_pwrite(f, h, 100, 0), 100, "%s", "write");
	io_close(f);
	TU_ASSERT_EQ(wopen(io_fault_env(m), "/short", false, false, 0, &w), -EINVAL, "%s", "short");
	TU_ASSERT_EQ(wopen(io_fault_env(m), "/short", true, false, 0, &w), 0, "%s", "created");
	wal_close(w);
	io_fault_free(m);

	/* the header durable, the ring's allocation lost: allocated again, records kept */
	m = tf_machine_copy(m0, 101);
	TU_ASSERT_EQ(io_open(io_fault_env(m), LOGF, 0, 0644, &f), 0, "%s", "f");
	TU_ASSERT_EQ(io_truncate(f, HDR + 4096), 0, "%s", "truncate");
	TU_ASSERT_EQ(io_sync(f), 0, "%s", "sync");
	io_close(f);
	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, false, true, 0, &w), 0, "%s", "rdonly");
	TU_ASSERT_EQ(recover_ok(w, 0, &got), end, "%s", "rdonly, short ring");
	TU_ASSERT_EQ(got.n, 1, "%s", "the record");
	TU_ASSERT_EQ(recover_ok(w, 8192, &got), 8192, "%s", "past the end of the file: zeros");
	wal_close(w);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(io_fault_file_size(m, LOGF), HDR + RING, "%s", "allocated again");
	TU_ASSERT_EQ(recover_ok(w, 0, &got), end, "%s", "the record is kept");
	/* appends after it: only the chunks wholly past the cut file's end count as allocated
	 * here (log.c "Written ring"), so no zeros land on the record */
	for (int i = 0; i < 3; i++) {
		lsn_t e2;
		struct iovec iov = { (void *)"after", 5 };
		TU_ASSERT_EQ(wal_append(w, 1, &iov, 1, &e2), 0, "%s", "append after the record");
	}
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	io_fault_power_cut(m);
	wal_close(w);
	m = reboot(m, 102);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	recover_ok(w, 0, &got);
	TU_ASSERT_EQ(got.n, 4, "%s", "the record and the three after it");
	wal_close(w);
	io_fault_free(m);
	io_fault_free(m0);
	recs_free(&got);
}
END_TEST

static int fail_fn(void *c, lsn_t l, unsigned t, const void *p, size_t n)
{
	return -ENOTRECOVERABLE;
}

/* Records with valid checksums and LSNs whose sizes or types are impossible. */
START_TEST(log_crafted)
{
	struct io_fault *m0 = machine(7), *m;
	struct wal *w = wopen_ok(io_fault_env(m0), LOGF, true);
	struct recs got = { 0 };
	uint64_t salt;
	static uint8_t pay[RING / 2];
	const lsn_t L = 3 * RING; /* a lap start: recover from L - 4096 */
	const lsn_t F = L - 4096;

	wal_close(w);
	salt = header_salt(m0);
	/* 0: a record crossing the end of the ring */
	m = tf_machine_copy(m0, 0);
	poke_rec(m, F, 4096 + 8, 1, F, pay, 4096 + 8 - WAL_REC_HDR, salt);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, F, &got), F, "%s", "crossing the lap end");
	wal_close(w);
	io_fault_free(m);
	/* 1: a pad record with a payload */
	m = tf_machine_copy(m0, 1);
	poke_rec(m, F, 32, WAL_PAD, F, pay, 8, salt);
	poke_rec(m, L, 30, 1, L, pay, 6, salt);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, F, &got), F, "%s", "pad with payload");
	wal_close(w);
	io_fault_free(m);
	/* 2: a proper pad, then a record on the next lap: both followed */
	m = tf_machine_copy(m0, 2);
	poke_rec(m, F, WAL_REC_HDR, WAL_PAD, F, pay, 0, salt);
	poke_rec(m, L, 30, 9, L, "abcdef", 6, salt);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, F, &got), L + 32, "%s", "pad then record");
	TU_ASSERT(got.n == 1 && got.v[0].lsn == L && got.v[0].type == 9 && got.v[0].len == 6,
		  "%s", "the record after the pad");
	/* and from inside a gap (fewer than 24 bytes before the lap end) */
	TU_ASSERT_EQ(recover_ok(w, L - 16, &got), L + 32, "%s", "from a gap");
	TU_ASSERT_EQ(got.n, 1, "%s", "the record after the gap");
	wal_close(w);
	io_fault_free(m);
	/* 3: sizes: below the header; over the u32 bound; over half the ring; wrong salt */
	for (int v = 0; v < 4; v++) {
		m = tf_machine_copy(m0, 3 + (uint64_t)v);
		if (v == 0)
			poke_rec(m, L, 16, 1, L, pay, 0, salt);
		else if (v == 1)
			poke_rec(m, L, 0xfffffffcu, 1, L, pay, 0, salt);
		else if (v == 2)
			poke_rec(m, L, RING / 2 + 8, 1, L, pay, RING / 2 + 8 - WAL_REC_HDR, salt);
		else
			poke_rec(m, L, 30, 1, L, pay, 6, salt + 1);
		w = wopen_ok(io_fault_env(m), LOGF, false);
		TU_ASSERT_EQ(recover_ok(w, L, &got), L, "size variant %d", v);
		TU_ASSERT_EQ(got.n, 0, "size variant %d", v);
		wal_close(w);
		io_fault_free(m);
	}
	/* 4: fn's error stops the replay and is returned; the log is not recovered */
	m = tf_machine_copy(m0, 10);
	poke_rec(m, L, 30, 1, L, pay, 6, salt);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	lsn_t e;
	TU_ASSERT_EQ(wal_recover(w, L, NULL, NULL, &e), -EINVAL, "%s", "no fn");
	TU_ASSERT_EQ(wal_recover(w, L, fail_fn, NULL, &e), -ENOTRECOVERABLE, "%s", "fn's error");
	TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &e), -EINVAL, "%s", "still not recovered");
	TU_ASSERT_EQ(recover_ok(w, L, &got), L + 32, "%s", "again");
	wal_close(w);
	io_fault_free(m);
	io_fault_free(m0);
	recs_free(&got);
}
END_TEST

/* Random garbage in the ring: recovery returns, replays a bounded, well-formed sequence, and
 * appends then continue so that a second recovery gives the same records plus the new one. */
START_TEST(log_garbage)
{
	uint64_t seed0 = tu_seed("KVFS_SEED", DEFAULT_SEED + 6), seed, x = seed0;
	bool one = tu_seed_given("KVFS_SEED", &seed);
	uint8_t *ring = malloc(RING), *buf = malloc(RING / 2);
	struct recs got = { 0 }, got2 = { 0 };

	TU_ASSERT(ring && buf, "%s", "out of memory");
	for (int iter = 0; iter < (one ? 1 : 60); iter++) {
		struct tu_rng r;
		struct io_fault *m;
		struct wal *w;
		uint64_t salt, style;
		lsn_t base, from, end, e;

		seed = one ? seed : tu_splitmix64(&x);
		tu_seed_begin("KVFS_SEED", seed);
		tu_rng_init(&r, seed);
		m = machine(seed);
		w = wopen_ok(io_fault_env(m), LOGF, true);
		salt = header_salt(m);
		base = tu_rng_below(&r, 4) * RING;
		from = base + (tu_rng_below(&r, RING) & ~7ull);
		style = tu_rng_below(&r, 5);
		if (style < 4) {
			wal_close(w);
			tu_rng_bytes(&r, ring, RING);
			if (style == 1)
				memset(ring, 0xff, RING);
			for (uint64_t o = 0; style >= 2 && o + WAL_REC_HDR <= RING; o += 8) {
				/* headers with the right LSN for their place and random sizes; in
				 * style 3 also right checksums when the size allows */
				if (!tu_rng_chance(&r, 1, style == 2 ? 4 : 64))
					continue;
				lsn_t l = o >= from % RING ? from - from % RING + o
							   : from - from % RING + RING + o;
				uint32_t sz = tu_rng_chance(&r, 1, 2)
						      ? (uint32_t)tu_rng_next(&r)
						      : (uint32_t)tu_rng_below(&r, 5000);
				st32(ring + o, sz);
				st32(ring + o + 4, (uint32_t)tu_rng_below(&r, 3));
				st64(ring + o + 8, l);
				if (style == 3 && sz >= WAL_REC_HDR && o + sz <= RING)
					st64(ring + o + 16, t_rec_checksum(ring + o, ring + o + 24,
									   sz - WAL_REC_HDR, salt));
			}
			io_fault_poke(m, LOGF, HDR, ring, RING);
		} else {
			/* a valid chain from `from`, then garbage spans over it */
			struct recs app = { 0 };
			lsn_t me = from;

			TU_ASSERT_EQ(wal_recover(w, from, collect, &got, &e), 0, "%s", "new log");
			for (int i = 0; i < 25; i++) {
				size_t len = tu_rng_below(&r, 30000);

				unsigned type = 1 + (unsigned)tu_rng_below(&r, 3);

				tu_rng_bytes(&r, buf, len);
				append_ok(w, &app, &me, type, buf, len);
			}
			wal_close(w);
			for (int i = 0; i < 5; i++) {
				size_t len = 1 + tu_rng_below(&r, 64);
				uint64_t off = tu_rng_below(&r, RING - len);

				tu_rng_bytes(&r, buf, len);
				io_fault_poke(m, LOGF, HDR + off, buf, len);
			}
			recs_free(&app);
			recs_free(&got);
		}
		w = wopen_ok(io_fault_env(m), LOGF, false);
		end = recover_ok(w, from, &got);
		TU_ASSERT(end <= from + RING, "end %" PRIu64 " past one lap from %" PRIu64, end,
			  from);
		for (size_t i = 0; i < got.n; i++) {
			TU_ASSERT(got.v[i].lsn >= from && got.v[i].lsn < end &&
				  got.v[i].len <= RING / 2 && got.v[i].type != WAL_PAD &&
				  (i == 0 || got.v[i].lsn > got.v[i - 1].lsn), "record %zu", i);
		}
		/* appends continue after the garbage (when the ring has room) */
		lsn_t me = end, rec_end;

		model_place(RING, end, 100, &rec_end);
		if (rec_end - from <= RING) {
			struct recs app = { 0 };

			for (size_t i = 0; i < got.n; i++)
				recs_add(&app, got.v[i].lsn, 0, got.v[i].type, got.v[i].data,
					 got.v[i].len);
			memset(buf, 0x33, 100);
			append_ok(w, &app, &me, 77, buf, 100);
			TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
			wal_close(w);
			w = wopen_ok(io_fault_env(m), LOGF, false);
			TU_ASSERT_EQ(recover_ok(w, from, &got2), me, "%s", "second recovery");
			expect_prefix(&got2, &app, 0, "garbage, then an append");
			TU_ASSERT_EQ(got2.n, app.n, "%s", "every record");
			recs_free(&app);
		}
		wal_close(w);
		io_fault_free(m);
		tu_seed_end();
	}
	free(ring);
	free(buf);
	recs_free(&got);
	recs_free(&got2);
}
END_TEST

/* ---- crash --------------------------------------------------------------------------------- */

static const char *mode_name(enum io_fault_cut_mode mode)
{
	return mode == IO_CUT_RANDOM ? "random" : mode == IO_CUT_KEEP_ALL ? "keep" : "drop";
}

/* One cut: run the workload with power cut at the kth sync from the first append (k past
 * the last sync: cut after the workload), recover, check; then a second session that appends
 * records of the lost records' sizes, syncs two, and is cut at random; check again.  Returns
 * true when the cut fell inside the workload. */
static bool crash_one(uint64_t seed, enum io_fault_cut_mode mode, uint64_t k,
		      const struct workload *wl)
{
	struct io_fault *m = machine(seed ^ k << 20);
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	struct recs got = { 0 }, all = { 0 };
	struct run run;
	char what[96];
	static uint8_t buf[60000];
	lsn_t e, from;
	size_t first, n1;
	bool cut;

	snprintf(what, sizeof(what), "mode %s, cut at sync %" PRIu64, mode_name(mode), k);
	TU_ASSERT_EQ(wal_recover(w, wl->base, collect, &got, &e), 0, "%s", "new log");
	TU_ASSERT_EQ(e, wl->base, "%s", "new log end");
	io_fault_set_cut_mode(m, mode);
	io_fault_cut_at_sync(m, k);
	wl_run(w, wl, seed, &run);
	cut = io_fault_dead(m);
	if (run.err)
		TU_ASSERT(run.err == -EIO && cut, "%s: error %s without a cut", what,
			  tf_errname(run.err));
	if (!cut)
		io_fault_power_cut(m);
	TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &e), -EIO, "%s: dead machine", what);
	wal_close(w);
	m = reboot(m, seed + k);

	/* session 1 recovered */
	from = run.released;
	w = wopen_ok(io_fault_env(m), LOGF, false);
	e = recover_ok(w, from, &got);
	first = first_at(&run.app, from);
	expect_prefix(&got, &run.app, first, what);
	TU_ASSERT(first + got.n >= run.n_synced, "%s: %zu records recovered, %zu synced", what,
		  got.n, run.n_synced - first);
	if (mode == IO_CUT_KEEP_ALL)
		TU_ASSERT_EQ(got.n, run.app.n - first, "%s: everything kept", what);
	if (mode == IO_CUT_DROP_ALL)
		TU_ASSERT_EQ(first + got.n, run.n_synced > first ? run.n_synced : first,
			     "%s: nothing unsynced", what);
	expect_end(e, &got, &run.app, first, from, what);
	n1 = got.n;

	/* session 2: records of the sizes of those lost, then a random cut */
	for (size_t i = 0; i < n1; i++) {
		const struct rec *a = &run.app.v[first + i];

		recs_add(&all, a->lsn, a->end, a->type, a->data, a->len);
	}
	lsn_t me = e;
	size_t n2 = 0, synced2 = n1;

	for (size_t j = first + n1; j < run.app.n + 2 && n2 < 6; j++, n2++) {
		size_t len = j < run.app.n ? run.app.v[j].len : 100 * j;

		wl_payload(buf, len, seed + 1, j);
		append_ok(w, &all, &me, 8, buf, len);
		if (n2 == 1) {
			TU_ASSERT_EQ(wal_sync(w), 0, "%s: session 2 sync", what);
			synced2 = all.n;
		}
	}
	io_fault_set_cut_mode(m, IO_CUT_RANDOM);
	io_fault_power_cut(m);
	wal_close(w);
	m = reboot(m, seed + k + 1);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	strncat(what, ", session 2", sizeof(what) - strlen(what) - 1);
	e = recover_ok(w, from, &got);
	expect_prefix(&got, &all, 0, what);
	TU_ASSERT(got.n >= synced2, "%s: %zu recovered, %zu synced", what, got.n, synced2);
	expect_end(e, &got, &all, 0, from, what);
	wal_close(w);
	io_fault_free(m);
	recs_free(&got);
	recs_free(&all);
	recs_free(&run.app);
	return cut;
}

START_TEST(crash_cut_every_sync)
{
	uint64_t seed, x = DEFAULT_SEED + 7;
	bool one = tu_seed_given("KVFS_SEED", &seed);
	static const enum io_fault_cut_mode modes[] = { IO_CUT_RANDOM, IO_CUT_KEEP_ALL,
							IO_CUT_DROP_ALL };
	size_t cuts = 0, in_workload = 0;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int s = 0; s < (one ? 1 : 8); s++) {
		struct workload wl;

		seed = one ? seed : tu_splitmix64(&x);
		tu_seed_begin("KVFS_SEED", seed);
		wl_make(&wl, seed);
		for (size_t mi = 0; mi < 3; mi++) {
			for (uint64_t k = 1; k <= wl.n_syncs + 1; k++) {
				in_workload += crash_one(seed, modes[mi], k, &wl);
				cuts++;
			}
		}
		tu_seed_end();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "wal crash: %zu power cuts (%zu at a sync of the writer), %.2f s\n", cuts,
		in_workload, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (!one)
		TU_ASSERT(cuts >= 500, "only %zu cuts", cuts);
}
END_TEST

/* A slow sync (tu_wrap_env's after_sync): sleep after each sync has taken effect, as a real
 * fdatasync returns some time after its flush point — the window in which a flusher must not
 * count records appended after its sync began. */
static void slow_after_sync(void)
{
	usleep(200);
}

/* Group commit under power cuts: 8 threads append and wal_wait_durable; cut at the kth sync;
 * every record whose wait returned 0 is recovered, and every recovered record is one that was
 * appended at that LSN (INV-3: a flush covers only what was written before it began). */
#define CG_THREADS 8
#define CG_COMMITS 40

struct cg_arg {
	struct wal *w;
	pthread_barrier_t *go;
	uint32_t id;
	size_t n_app, n_acked; /* records appended; of those, the first n_acked are durable */
	lsn_t lsn[CG_COMMITS];
};

static void *cg_thread(void *p)
{
	struct cg_arg *a = p;
	uint8_t buf[40];

	pthread_barrier_wait(a->go);
	for (uint32_t i = 0; i < CG_COMMITS; i++) {
		struct iovec iov = { buf, sizeof(buf) };
		lsn_t end = 0;

		st32(buf, a->id);
		st32(buf + 4, i);
		tf_value_fill(buf + 8, sizeof(buf) - 8, (uint64_t)a->id << 32 | i);
		if (wal_append(a->w, 1, &iov, 1, &end) != 0)
			break;
		a->lsn[i] = end - sizeof(buf) - WAL_REC_HDR;
		a->n_app = i + 1;
		if (wal_wait_durable(a->w, end) != 0)
			break;
		a->n_acked = i + 1;
	}
	return NULL;
}

START_TEST(crash_group_commit)
{
	uint64_t seed0 = tu_seed("KVFS_SEED", DEFAULT_SEED + 10);
	size_t runs = 0;

	tu_seed_begin("KVFS_SEED", seed0);
	for (int mi = 0; mi < 2; mi++) {
		for (uint64_t k = 1;; k += 1 + k / 4, runs++) {
			static struct cg_arg args[CG_THREADS];
			struct io_fault *m = machine(seed0 + k);
			struct tu_wrap_env slow;
			tu_wrap_init(&slow, io_fault_env(m));
			slow.after_sync = slow_after_sync;
			struct wal *w = wopen_ok(&slow.base, LOGF, true);
			pthread_t t[CG_THREADS];
			pthread_barrier_t go;
			struct recs got = { 0 };
			lsn_t e;
			bool cut;

			io_fault_set_cut_mode(m, mi ? IO_CUT_RANDOM : IO_CUT_DROP_ALL);
			io_fault_cut_at_sync(m, k);
			pthread_barrier_init(&go, NULL, CG_THREADS);
			for (uint32_t i = 0; i < CG_THREADS; i++) {
				args[i] = (struct cg_arg){ .w = w, .go = &go, .id = i };
				TU_ASSERT_EQ(pthread_create(&t[i], NULL, cg_thread, &args[i]), 0,
					     "%s", "thread");
			}
			for (int i = 0; i < CG_THREADS; i++)
				pthread_join(t[i], NULL);
			pthread_barrier_destroy(&go);
			cut = io_fault_dead(m);
			if (!cut)
				io_fault_power_cut(m);
			wal_close(w);
			m = reboot(m, seed0 + k);
			w = wopen_ok(io_fault_env(m), LOGF, false);
			e = recover_ok(w, 0, &got);
			for (size_t i = 0; i < got.n; i++) {
				const struct rec *g = &got.v[i];
				uint32_t id = ld32(g->data), seq = ld32(g->data + 4);

				TU_ASSERT(g->len == 40 && id < CG_THREADS && seq < args[id].n_app &&
					  args[id].lsn[seq] == g->lsn &&
					  tf_value_check(g->data + 8, 32, (uint64_t)id << 32 | seq),
					  "cut at sync %" PRIu64 ": record %zu at %" PRIu64
					  " was not appended there", k, i, g->lsn);
			}
			for (uint32_t id = 0; id < CG_THREADS; id++)
				for (size_t j = 0; j < args[id].n_acked; j++)
					TU_ASSERT(args[id].lsn[j] < e, "cut at sync %" PRIu64 ": "
						  "durable record %u/%zu lost", k, id, j);
			wal_close(w);
			io_fault_free(m);
			recs_free(&got);
			if (!cut)
				break;
		}
	}
	fprintf(stderr, "wal crash_group_commit: %zu cuts\n", runs + 2);
	tu_seed_end();
}
END_TEST

/* ---- fault ---------------------------------------------------------------------------------- */

static const enum io_fault_kind kinds[] = { IO_FAULT_EIO, IO_FAULT_ENOSPC, IO_FAULT_SHORT };
static const char *const kind_names[] = { "EIO", "ENOSPC", "short write" };

static void expect_injected(int rc, size_t ki, const char *what)
{
	if (kinds[ki] == IO_FAULT_EIO)
		TU_ASSERT_EQ(rc, -EIO, "%s", what);
	else
		TU_ASSERT(rc == -EIO || rc == -ENOSPC, "%s: %s", what, tf_errname(rc));
}

/* After a failed creation on m: creating again works, and the log then holds a record
 * across a power cut.  Frees m. */
static void create_again(struct io_fault *m, uint64_t n)
{
	struct recs got = { 0 };
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	lsn_t end = 0;

	TU_ASSERT_EQ(recover_ok(w, 0, &got), 0, "%s", "empty");
	append_ok(w, &got, &end, 1, (const uint8_t *)"x", 1);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	m = reboot(m, n + 1);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, 0, &got), 32, "%s", "the record");
	TU_ASSERT_EQ(got.n, 1, "%s", "the record");
	wal_close(w);
	io_fault_free(m);
	recs_free(&got);
}

/* Creation: the error is returned; creating again works, on the same machine and after a
 * power cut (a file with a zero header or no ring is created again). */
START_TEST(fault_create)
{
	for (size_t ki = 0; ki < 3; ki++) {
		for (uint64_t n = 1;; n++) {
			struct io_fault *m = machine(n);
			struct wal *w = NULL;
			int rc;

			TU_ASSERT(n < 50, "%s", "creation never succeeds");
			io_fault_fail_at(m, n, kinds[ki]);
			rc = wopen(io_fault_env(m), LOGF, true, false, RING, &w);
			if (!io_fault_fired(m)) {
				TU_ASSERT_EQ(rc, 0, "%s n=%" PRIu64, kind_names[ki], n);
				wal_close(w);
				io_fault_free(m);
				break;
			}
			expect_injected(rc, ki, kind_names[ki]);
			create_again(tf_machine_copy(m, n), n);
			io_fault_fail_at(m, 0, IO_FAULT_EIO);
			create_again(m, n);
		}
	}
}
END_TEST

/* A writer's appends and syncs, failing the Nth call until the workload succeeds. */
START_TEST(fault_writer)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 8);
	struct workload wl;
	size_t runs = 0;

	tu_seed_begin("KVFS_SEED", seed);
	wl_make(&wl, seed);
	for (size_t ki = 0; ki < 3; ki++) {
		for (uint64_t n = 1;; n++, runs++) {
			struct io_fault *m = machine(seed + n), *m2;
			struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
			struct recs got = { 0 };
			struct run run;
			char what[64];
			lsn_t e;
			size_t first;

			TU_ASSERT(n < 1000, "%s", "the workload never succeeds");
			snprintf(what, sizeof(what), "%s at call %" PRIu64, kind_names[ki], n);
			TU_ASSERT_EQ(wal_recover(w, wl.base, collect, &got, &e), 0, "%s", "new");
			io_fault_fail_at(m, n, kinds[ki]);
			wl_run(w, &wl, seed, &run);
			if (!io_fault_fired(m)) {
				TU_ASSERT_EQ(run.err, 0, "%s", what);
				TU_ASSERT_EQ(run.app.n, wl.n, "%s", what);
				wal_close(w);
				io_fault_free(m);
				recs_free(&run.app);
				break;
			}
			expect_injected(run.err, ki, what);
			/* failed from now on, without another I/O call */
			uint64_t calls = io_fault_calls(m);

			TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &e), -EIO, "%s: append after", what);
			TU_ASSERT_EQ(wal_sync(w), -EIO, "%s: sync after", what);
			TU_ASSERT_EQ(wal_wait_durable(w, 0), -EIO, "%s: wait after", what);
			TU_ASSERT_EQ(wal_reset(w), -EIO, "%s: reset after", what);
			TU_ASSERT_EQ(io_fault_calls(m), calls, "%s: no I/O once failed", what);
			wal_close(w);

			/* after a power cut: a prefix holding every synced record */
			first = first_at(&run.app, run.released);
			m2 = io_fault_reboot(m, n);
			TU_ASSERT(m2 != NULL, "%s", "reboot");
			w = wopen_ok(io_fault_env(m2), LOGF, false);
			e = recover_ok(w, run.released, &got);
			expect_prefix(&got, &run.app, first, what);
			TU_ASSERT(first + got.n >= run.n_synced, "%s: synced records lost", what);
			wal_close(w);
			io_fault_free(m2);
			/* reopened on the same machine: every record whose append returned */
			io_fault_fail_at(m, 0, IO_FAULT_EIO);
			w = wopen_ok(io_fault_env(m), LOGF, false);
			e = recover_ok(w, run.released, &got);
			expect_prefix(&got, &run.app, first, what);
			TU_ASSERT_EQ(got.n, run.app.n - first, "%s: every returned append", what);
			lsn_t me = e;
			append_ok(w, &run.app, &me, 5, (const uint8_t *)"again", 5);
			TU_ASSERT_EQ(wal_sync(w), 0, "%s: the reopened log works", what);
			wal_close(w);
			m = reboot(m, n + 1);
			w = wopen_ok(io_fault_env(m), LOGF, false);
			recover_ok(w, run.released, &got);
			expect_prefix(&got, &run.app, first, what);
			TU_ASSERT_EQ(got.n, run.app.n - first, "%s: all durable now", what);
			wal_close(w);
			io_fault_free(m);
			recs_free(&got);
			recs_free(&run.app);
		}
	}
	fprintf(stderr, "wal fault_writer: %zu failed runs\n", runs);
	tu_seed_end();
}
END_TEST

/* Recovery's erasing writes and sync fail: -EIO, the log failed, a reopen finishes. */
START_TEST(fault_recover)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 9);
	struct io_fault *m0 = machine(seed);
	struct recs app = { 0 }, got = { 0 };
	struct tu_rng r;
	lsn_t end, e;
	struct wal *w;
	uint8_t zero[8] = { 0 };

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	/* 1000 records (a few windows of the reader), record 3's LSN field torn: 996 to erase */
	w = log_with(m0, &r, 1000, 900, &app, &end);
	wal_close(w);
	io_fault_poke(m0, LOGF, HDR + app.v[3].lsn % RING + 8, zero, 8);
	for (size_t ki = 0; ki < 3; ki++) {
		for (uint64_t n = 1;; n++) {
			struct io_fault *m = tf_machine_copy(m0, n);
			int rc;

			TU_ASSERT(n < 100, "%s", "recovery never succeeds");
			w = wopen_ok(io_fault_env(m), LOGF, false);
			io_fault_fail_at(m, n, kinds[ki]);
			recs_free(&got);
			rc = wal_recover(w, 0, collect, &got, &e);
			if (!io_fault_fired(m)) {
				TU_ASSERT_EQ(rc, 0, "%s", kind_names[ki]);
				wal_close(w);
				io_fault_free(m);
				break;
			}
			TU_ASSERT_EQ(rc, -EIO, "%s at call %" PRIu64, kind_names[ki], n);
			TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &e), -EIO, "%s", "failed");
			wal_close(w);
			for (int pass = 0; pass < 2; pass++) {
				if (pass == 1)
					m = reboot(m, n);
				io_fault_fail_at(m, 0, IO_FAULT_EIO);
				w = wopen_ok(io_fault_env(m), LOGF, false);
				TU_ASSERT_EQ(recover_ok(w, 0, &got), app.v[3].lsn, "%s", "end");
				expect_prefix(&got, &app, 0, "after a failed recovery");
				TU_ASSERT_EQ(got.n, 3, "%s", "records 0..2");
				wal_close(w);
			}
			/* erased for good: a record of record 3's size does not bring 4.. back */
			w = wopen_ok(io_fault_env(m), LOGF, false);
			recover_ok(w, 0, &got);
			TU_ASSERT_EQ(wal_append(w, 1, (struct iovec[]){ { app.v[3].data,
				     app.v[3].len } }, 1, &e), 0, "%s", "append");
			TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
			wal_close(w);
			m = reboot(m, n + 2);
			w = wopen_ok(io_fault_env(m), LOGF, false);
			TU_ASSERT_EQ(recover_ok(w, 0, &got), app.v[3].end, "%s", "no stale record");
			TU_ASSERT_EQ(got.n, 4, "%s", "0..2 and the new one");
			wal_close(w);
			io_fault_free(m);
		}
	}
	io_fault_free(m0);
	recs_free(&app);
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/*
 * A failed fdatasync is never followed by another that reports the records durable (INV-4).
 * Thread A leads a flush whose sync fails; while A reports the failure (the log callback,
 * which sleeps here to widen the window), thread B waits for the same record.  B must get
 * -EIO without a second sync: on Linux a sync after a failed one returns 0 for pages that were
 * lost, so a retry would publish a durable LSN that is not.  (A flush once cleared its leader
 * flag before it set the log failed: B then led a second sync, which io_fault let succeed, and
 * durable advanced.)
 */
static _Atomic int g_fail_reported;

static void sleepy_log_cb(void *ctx, const char *line)
{
	tu_log_cb(ctx, line);
	if (strstr(line, "fdatasync failed")) {
		atomic_store(&g_fail_reported, 1);
		usleep(200 * 1000);
	}
}

struct retry_arg {
	struct wal *w;
	lsn_t lsn;
	int rc;
};

static void *retry_thread(void *p)
{
	struct retry_arg *a = p;

	while (!atomic_load(&g_fail_reported))
		usleep(100);
	a->rc = wal_wait_durable(a->w, a->lsn);
	return NULL;
}

START_TEST(fault_sync_no_retry)
{
	struct io_fault *m = machine(DEFAULT_SEED + 11);
	struct wal_options o = { .io = io_fault_env(m), .create = true, .ring_bytes = RING,
				 .log = sleepy_log_cb };
	struct retry_arg b = { .rc = 1 };
	struct wal_stat st;
	pthread_t t;

	atomic_store(&g_fail_reported, 0);
	TU_ASSERT_EQ(wal_open(LOGF, &o, &b.w), 0, "%s", "open");
	TU_ASSERT_EQ(wal_append(b.w, 1, (struct iovec[]){ { "hello", 5 } }, 1, &b.lsn), 0, "%s",
		     "append");
	uint64_t s0 = io_fault_syncs(m);
	io_fault_fail_at(m, 1, IO_FAULT_EIO); /* the next counted call: the leader's sync */
	TU_ASSERT_EQ(pthread_create(&t, NULL, retry_thread, &b), 0, "%s", "thread");
	int rca = wal_wait_durable(b.w, b.lsn);
	pthread_join(t, NULL);
	wal_stat(b.w, &st);
	TU_ASSERT_EQ(rca, -EIO, "%s", "the leader");
	TU_ASSERT_EQ(b.rc, -EIO, "%s", "the waiter during the failure's report");
	TU_ASSERT_EQ(io_fault_syncs(m) - s0, 1, "%s", "syncs after the failed one");
	TU_ASSERT(st.durable < b.lsn, "durable %" PRIu64 " advanced to the record (%" PRIu64
		  ") after a failed fdatasync", st.durable, b.lsn);
	wal_close(b.w);
	io_fault_free(m);
}
END_TEST

/* ---- group commit ---------------------------------------------------------------------------- */

#define GC_THREADS 16
#define GC_COMMITS 200

struct gc_arg {
	struct wal *w;
	pthread_barrier_t *go;
	int id;
	int rc;
	lsn_t lsn[GC_COMMITS];
};

static void *gc_thread(void *p)
{
	struct gc_arg *a = p;
	uint8_t buf[64];

	pthread_barrier_wait(a->go);
	for (int i = 0; i < GC_COMMITS && a->rc == 0; i++) {
		struct iovec iov = { buf, sizeof(buf) };
		lsn_t end = 0;

		memset(buf, 0, sizeof(buf));
		st32(buf, (uint32_t)a->id);
		st32(buf + 4, (uint32_t)i);
		tf_value_fill(buf + 8, sizeof(buf) - 8, (uint64_t)a->id << 32 | (uint64_t)i);
		a->rc = wal_append(a->w, 1 + (unsigned)a->id, &iov, 1, &end);
		if (a->rc == 0)
			a->rc = wal_wait_durable(a->w, end);
		if (a->rc == 0) { /* returned: its record is durable */
			struct wal_stat st;
			wal_stat(a->w, &st);
			if (st.durable < end)
				a->rc = -EPROTO;
		}
		a->lsn[i] = end - sizeof(buf) - WAL_REC_HDR;
	}
	return NULL;
}

START_TEST(groupcommit_threads)
{
	char dir[PATH_MAX], path[PATH_MAX + 8];
	static struct gc_arg args[GC_THREADS];
	pthread_t t[GC_THREADS];
	pthread_barrier_t go;
	struct recs got = { 0 };
	struct wal_stat s0, s;
	struct wal *w;
	int next[GC_THREADS] = { 0 };
	struct timespec t0, t1;

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/wal", dir);
	TU_ASSERT_EQ(wopen(NULL, path, true, false, 4 * RING, &w), 0, "%s", "open");
	wal_stat(w, &s0);
	pthread_barrier_init(&go, NULL, GC_THREADS);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < GC_THREADS; i++) {
		args[i] = (struct gc_arg){ .w = w, .go = &go, .id = i };
		TU_ASSERT_EQ(pthread_create(&t[i], NULL, gc_thread, &args[i]), 0, "%s", "thread");
	}
	for (int i = 0; i < GC_THREADS; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < GC_THREADS; i++)
		TU_ASSERT_EQ(args[i].rc, 0, "thread %d", i);
	wal_stat(w, &s);
	uint64_t syncs = s.n_syncs - s0.n_syncs;
	fprintf(stderr, "wal groupcommit: %d threads x %d commits = %d, %" PRIu64 " fdatasyncs "
		"(%.1f commits per fdatasync, %" PRIu64 " waits), %.2f s\n", GC_THREADS,
		GC_COMMITS, GC_THREADS * GC_COMMITS, syncs,
		(double)(GC_THREADS * GC_COMMITS) / (double)(syncs ? syncs : 1), s.n_waits,
		(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	/* free-running after one barrier: on tmpfs a flush costs nothing, and threads that never
	 * wait for one rarely share it (check_engine groupcommit says the same) */
	TU_ASSERT(tu_dir_in_memory(dir) || syncs <= GC_THREADS * GC_COMMITS / 2,
		  "%" PRIu64 " syncs for %d commits", syncs, GC_THREADS * GC_COMMITS);
	TU_ASSERT(s.durable == s.end && s.n_appends == GC_THREADS * GC_COMMITS, "%s", "stat");
	wal_close(w);

	TU_ASSERT_EQ(wopen(NULL, path, false, false, 0, &w), 0, "%s", "reopen");
	recover_ok(w, 0, &got);
	TU_ASSERT_EQ(got.n, GC_THREADS * GC_COMMITS, "%s", "every commit recovered");
	for (size_t i = 0; i < got.n; i++) {
		const struct rec *g = &got.v[i];
		uint32_t id = ld32(g->data), seq = ld32(g->data + 4);

		TU_ASSERT(g->len == 64 && id < GC_THREADS && g->type == 1 + id, "record %zu", i);
		TU_ASSERT_EQ(seq, next[id], "thread %u's records in order", id);
		TU_ASSERT_EQ(g->lsn, args[id].lsn[seq], "record %zu's LSN", i);
		TU_ASSERT(tf_value_check(g->data + 8, 56, (uint64_t)id << 32 | seq), "payload %zu",
			  i);
		next[id]++;
	}
	wal_close(w);
	recs_free(&got);
	tu_rmtree(dir);
}
END_TEST

/* ---- inspect: wal_inspect, the read-only walk for kvfs-check -------------------------------- */

/* wal_inspect's record callback: collect, or (ctx->stop_at) fail at the n-th record. */
struct icoll {
	struct recs got;
	size_t stop_at; /* 0: never */
	bool saw_header;
	uint64_t header_ring;
};

static int icoll_header(void *ctx, const struct wal_inspect_result *res)
{
	struct icoll *ic = ctx;

	ic->saw_header = true;
	ic->header_ring = res->ring_bytes;
	return 0;
}

static int icoll_record(void *ctx, lsn_t lsn, unsigned type, const void *p, size_t len)
{
	struct icoll *ic = ctx;

	if (ic->stop_at && ic->got.n + 1 == ic->stop_at)
		return -ECANCELED;
	recs_add(&ic->got, lsn, 0, type, p, len);
	return 0;
}

static const struct wal_inspect_ops icoll_ops = { .header = icoll_header,
						  .record = icoll_record };

/* A copy of the whole log file (header and ring), to show that inspection writes nothing. */
static uint8_t *log_image(struct io_fault *m, const char *path)
{
	int64_t size = io_fault_file_size(m, path);
	uint8_t *b;

	TU_ASSERT(size > 0, "%s", "size");
	b = malloc((size_t)size);
	TU_ASSERT(b != NULL, "%s", "out of memory");
	TU_ASSERT_EQ(io_fault_peek(m, path, 0, b, (size_t)size), 0, "%s", "peek");
	return b;
}

static void expect_image(struct io_fault *m, const char *path, const uint8_t *before,
			 const char *what)
{
	uint8_t *now = log_image(m, path);

	TU_ASSERT(memcmp(now, before, (size_t)io_fault_file_size(m, path)) == 0,
		  "%s: the log's bytes changed", what);
	free(now);
}

/* Inspect `from`, which must succeed; the records go to ic->got (cleared first). */
static void inspect_ok(struct io_fault *m, lsn_t from, struct icoll *ic,
		       struct wal_inspect_result *res)
{
	recs_free(&ic->got);
	ic->saw_header = false;
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), from, &icoll_ops, ic, res), 0,
		     "wal_inspect from %" PRIu64, from);
	TU_ASSERT(ic->saw_header && ic->header_ring == res->ring_bytes, "%s", "header callback");
	TU_ASSERT_EQ(res->from, from, "%s", "from");
	TU_ASSERT_EQ(res->n_records, ic->got.n, "%s", "n_records counts the records called");
}

/* A sound log: the records, end and header fields are what wal_recover sees; nothing is
 * written; a start in the middle, across a lap (pad record), and the callback's error. */
START_TEST(inspect_sound)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 20);
	struct recs app = { 0 }, got = { 0 };
	struct icoll ic = { 0 };
	struct wal_inspect_result res;
	struct tu_rng r;
	struct wal *w;
	lsn_t end;
	uint8_t *img;
	static uint8_t buf[5000];

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	struct io_fault *m = machine(seed);
	w = log_with(m, &r, 20, 3000, &app, &end);
	wal_close(w);
	img = log_image(m, LOGF);

	inspect_ok(m, 0, &ic, &res);
	expect_prefix(&ic.got, &app, 0, "inspect from 0");
	TU_ASSERT_EQ(ic.got.n, 20, "%s", "every record");
	TU_ASSERT(res.end == end && res.tail == WAL_TAIL_END && res.n_stale == 0, "end %" PRIu64
		  " tail %d stale %" PRIu64, res.end, res.tail, res.n_stale);
	TU_ASSERT(res.version == WAL_FORMAT_VERSION && res.ring_bytes == RING &&
		  res.salt == header_salt(m) && res.file_bytes == HDR + RING && !res.short_file,
		  "%s", "header fields");
	uint64_t pay = 0;
	for (size_t i = 0; i < app.n; i++)
		pay += app.v[i].len;
	TU_ASSERT_EQ(res.payload_bytes, pay, "%s", "payload bytes");

	inspect_ok(m, app.v[7].lsn, &ic, &res);
	expect_prefix(&ic.got, &app, 7, "inspect from record 7");
	TU_ASSERT(ic.got.n == 13 && res.end == end, "%s", "records 7..19");
	inspect_ok(m, end, &ic, &res);
	TU_ASSERT(ic.got.n == 0 && res.end == end && res.tail == WAL_TAIL_END, "%s",
		  "from the end");

	ic.stop_at = 4;
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), 0, &icoll_ops, &ic, &res), -ECANCELED,
		     "%s", "the callback's error stops the walk");
	TU_ASSERT_EQ(ic.got.n, 3, "%s", "three records before it");
	ic.stop_at = 0;
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), 4, NULL, NULL, &res), -EINVAL, "%s",
		     "misaligned from");
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), WAL_LSN_MAX + 8, NULL, NULL, &res),
		     -EINVAL, "%s", "from over WAL_LSN_MAX");
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), 0, NULL, NULL, &res), 0, "%s",
		     "no ops: count only");
	TU_ASSERT(res.n_records == 20 && res.end == end, "%s", "counted");
	expect_image(m, LOGF, img, "sound log");
	free(img);
	io_fault_free(m);
	recs_free(&app);

	/* across a lap: a new log recovered near the end of lap 2, then records past it */
	const lsn_t base = 3 * RING - 7000;
	m = machine(seed + 1);
	w = wopen_ok(io_fault_env(m), LOGF, true);
	TU_ASSERT_EQ(wal_recover(w, base, collect, &got, &end), 0, "%s", "recover the new log");
	for (int i = 0; i < 12; i++) {
		size_t len = tu_rng_range(&r, 500, sizeof(buf));

		tu_rng_bytes(&r, buf, len);
		TU_ASSERT_EQ(append_split(w, 2, buf, len, &end), 0, "append %d", i);
		recs_add(&app, end - ((WAL_REC_HDR + len + 7) & ~(lsn_t)7), end, 2, buf, len);
	}
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	TU_ASSERT(app.v[app.n - 1].lsn >= 3 * RING, "%s", "the records cross into lap 3");
	img = log_image(m, LOGF);
	inspect_ok(m, base, &ic, &res);
	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, false, true, 0, &w), 0, "%s", "rdonly");
	TU_ASSERT_EQ(recover_ok(w, base, &got), res.end, "%s", "the same end as recovery");
	wal_close(w);
	expect_prefix(&ic.got, &got, 0, "inspect == recover across a lap");
	TU_ASSERT_EQ(ic.got.n, got.n, "%s", "as many records");
	TU_ASSERT(ic.got.n == 12 && res.end == end && res.n_stale == 0, "%s", "all 12, no stale");
	expect_image(m, LOGF, img, "across a lap");
	free(img);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&got);
	recs_free(&ic.got);
	tu_seed_end();
}
END_TEST

/* The tail: a torn last record; records kept behind a torn or a never-written one (INV-5:
 * exactly what wal_recover then erases); the list's cap. */
START_TEST(inspect_tail)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 21);
	struct recs app = { 0 };
	struct icoll ic = { 0 };
	struct wal_inspect_result res;
	struct tu_rng r;
	uint8_t flip, zero[8] = { 0 }, *img;

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	/* 0: the last record's payload byte flipped; 1: record 5's payload byte flipped (torn,
	 * 6..9 stale); 2: record 5's lsn field zeroed (a normal end, 6..9 stale); 3: the last
	 * record's size made too large for its lap (torn) */
	for (int v = 0; v < 4; v++) {
		struct io_fault *m = machine(seed + (uint64_t)v);
		lsn_t end;
		struct wal *w = log_with(m, &r, 10, 3000, &app, &end);
		size_t k = v == 1 || v == 2 ? 5 : 9;
		const struct rec *x = &app.v[k];

		wal_close(w);
		if (v == 2) {
			io_fault_poke(m, LOGF, HDR + x->lsn % RING + 8, zero, 8);
		} else if (v == 3) {
			uint8_t sz[4];

			st32(sz, RING / 2 + 8);
			io_fault_poke(m, LOGF, HDR + x->lsn % RING, sz, 4);
		} else {
			TU_ASSERT_EQ(io_fault_peek(m, LOGF, HDR + x->lsn % RING + 20, &flip, 1), 0,
				     "%s", "peek");
			flip ^= 0x40; /* the checksum field's last byte */
			io_fault_poke(m, LOGF, HDR + x->lsn % RING + 20, &flip, 1);
		}
		img = log_image(m, LOGF);
		inspect_ok(m, 0, &ic, &res);
		expect_prefix(&ic.got, &app, 0, "before the tail");
		TU_ASSERT_EQ(ic.got.n, k, "variant %d: records before %zu", v, k);
		TU_ASSERT_EQ(res.end, x->lsn, "variant %d: the end", v);
		TU_ASSERT_EQ(res.tail, v == 2 ? WAL_TAIL_END : WAL_TAIL_TORN, "variant %d: tail",
			     v);
		TU_ASSERT(res.tail_why != NULL, "%s", "why");
		TU_ASSERT_EQ(res.n_stale, 9 - k, "variant %d: stale headers", v);
		for (size_t i = k + 1; i < 10; i++)
			TU_ASSERT_EQ(res.stale[i - k - 1], app.v[i].lsn, "variant %d: stale %zu", v,
				     i);
		expect_image(m, LOGF, img, "inspecting a tail");
		free(img);

		/* a writable recovery erases exactly that; then the tail is clean */
		w = wopen_ok(io_fault_env(m), LOGF, false);
		struct recs got = { 0 };
		TU_ASSERT_EQ(recover_ok(w, 0, &got), x->lsn, "%s", "recovery's end");
		wal_close(w);
		recs_free(&got);
		inspect_ok(m, 0, &ic, &res);
		TU_ASSERT(res.end == x->lsn && res.tail == WAL_TAIL_END && res.n_stale == 0,
			  "variant %d: after recovery: end %" PRIu64 " tail %d stale %" PRIu64, v,
			  res.end, res.tail, res.n_stale);
		io_fault_free(m);
		recs_free(&app);
	}

	/* more stale headers than the list holds: counted, the first listed in order */
	struct io_fault *m = machine(seed + 10);
	lsn_t end;
	struct wal *w = log_with(m, &r, 60, 100, &app, &end);

	wal_close(w);
	io_fault_poke(m, LOGF, HDR + app.v[3].lsn % RING + 8, zero, 8);
	inspect_ok(m, 0, &ic, &res);
	TU_ASSERT(res.end == app.v[3].lsn && res.n_stale == 56, "stale %" PRIu64, res.n_stale);
	for (size_t i = 0; i < WAL_INSPECT_MAX_STALE; i++)
		TU_ASSERT_EQ(res.stale[i], app.v[4 + i].lsn, "stale %zu", i);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&ic.got);
	tu_seed_end();
}
END_TEST

/* A process killed while appending a record that crosses a 4 KiB boundary (log.c
 * write_record: the part past the boundary is written first, the head last) leaves a clean end,
 * never a torn tail, wherever the record starts — also where its header itself crosses the
 * boundary.  The kill is the head's write failing; the place holds an old header with a size
 * (as a record of an earlier lap would), which with this record's LSN would look torn. */
START_TEST(log_kill_split)
{
	static const unsigned starts[] = { 32, 1000, 4064, 4072, 4080, 4088 };
	static uint8_t buf[9000];
	struct icoll ic = { 0 };
	struct wal_inspect_result res;

	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		struct io_fault *m = machine(70 + i);
		struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
		struct recs app = { 0 };
		lsn_t end = 0;
		uint8_t old[8];

		append_ok(w, &app, &end, 1, buf, starts[i] - WAL_REC_HDR); /* ends at starts[i] */
		TU_ASSERT_EQ(end, (lsn_t)starts[i], "%s", "first record's end");
		st32(old, 128); /* size */
		st32(old + 4, 1); /* type */
		TU_ASSERT_EQ(io_fault_poke(m, LOGF, HDR + end % RING, old, sizeof(old)), 0, "%s",
			     "poke an old header");
		io_fault_fail_at(m, 2, IO_FAULT_EIO); /* the second write: the record's head */
		lsn_t e2 = 0;
		int rc = append_split(w, 1, buf, 6000, &e2);
		TU_ASSERT_EQ(rc, -EIO, "start %u: the append whose head was not written", starts[i]);
		TU_ASSERT(io_fault_fired(m), "start %u: two writes", starts[i]);
		wal_close(w);
		inspect_ok(m, 0, &ic, &res);
		TU_ASSERT(res.end == end && res.tail == WAL_TAIL_END, "start %u: end %" PRIu64
			  " (want %" PRIu64 "), tail %d (%s)", starts[i], res.end, end, res.tail,
			  res.tail_why ? res.tail_why : "");
		TU_ASSERT_EQ(ic.got.n, 1, "start %u: the first record only", starts[i]);
		io_fault_free(m);
		recs_free(&app);
	}
	recs_free(&ic.got);
}
END_TEST

/* Headers: the errors of wal_open (nothing written), a header of zeros over an interrupted
 * creation or over records, a missing file, a file shorter than its ring. */
START_TEST(inspect_header)
{
	struct io_fault *m0 = machine(22), *m;
	struct wal *w = wopen_ok(io_fault_env(m0), LOGF, true);
	struct recs app = { 0 };
	struct icoll ic = { 0 };
	struct wal_inspect_result res;
	uint8_t h0[HDR], h[HDR], *img;
	lsn_t end = 0;
	struct io_file *f;
	static const struct {
		size_t off;
		uint8_t xor;
		bool reseal;
		int want;
	} cases[] = {
		{ 0, 1, false, -EUCLEAN },   { 32, 1, false, -EUCLEAN },
		{ 8, 0x20, false, -EINVAL }, { 16, 3, true, -EPROTONOSUPPORT },
		{ 21, 1, true, -EUCLEAN },   { 24, 0x10, true, -EUCLEAN },
		{ 26, 0x18, true, -EUCLEAN }, { 4000, 1, true, -EUCLEAN },
	};

	append_ok(w, &app, &end, 1, (const uint8_t *)"xyz", 3);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	TU_ASSERT_EQ(io_fault_peek(m0, LOGF, 0, h0, HDR), 0, "%s", "peek");
	TU_ASSERT_EQ(wal_inspect("/nonesuch", io_fault_env(m0), 0, NULL, NULL, &res), -ENOENT,
		     "%s", "missing");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = tf_machine_copy(m0, i);
		memcpy(h, h0, HDR);
		h[cases[i].off] ^= cases[i].xor;
		if (cases[i].reseal)
			reseal_header(h);
		io_fault_poke(m, LOGF, 0, h, HDR);
		img = log_image(m, LOGF);
		TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), 0, &icoll_ops, &ic, &res),
			     cases[i].want, "case %zu (byte %zu)", i, cases[i].off);
		TU_ASSERT(res.why != NULL && !res.zero_header, "case %zu: why", i);
		if (cases[i].want == -EPROTONOSUPPORT)
			TU_ASSERT_EQ(res.version, WAL_FORMAT_VERSION ^ 3, "%s", "version read");
		TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, false, true, 0, &w), cases[i].want,
			     "case %zu: wal_open agrees", i);
		expect_image(m, LOGF, img, "a bad header");
		free(img);
		io_fault_free(m);
	}
	TU_ASSERT(ic.got.n == 0 && !ic.saw_header, "%s", "no callback for a bad header");

	/* a header of zeros over a record: not an interrupted creation */
	m = tf_machine_copy(m0, 100);
	memset(h, 0, HDR);
	io_fault_poke(m, LOGF, 0, h, HDR);
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), 0, NULL, NULL, &res), -EINVAL, "%s",
		     "zero header");
	TU_ASSERT(res.zero_header && res.nonzero_after, "%s", "zero header over a record");
	/* and over nothing: an interrupted creation (the whole file zero, or short) */
	TU_ASSERT_EQ(io_open(io_fault_env(m), "/zero", IO_OPEN_CREATE, 0644, &f), 0, "%s", "f");
	TU_ASSERT_EQ(io_allocate(f, 0, HDR + RING), 0, "%s", "allocate");
	io_close(f);
	TU_ASSERT_EQ(wal_inspect("/zero", io_fault_env(m), 0, NULL, NULL, &res), -EINVAL, "%s",
		     "zero file");
	TU_ASSERT(res.zero_header && !res.nonzero_after, "%s", "all zero");
	TU_ASSERT_EQ(io_open(io_fault_env(m), "/short", IO_OPEN_CREATE, 0644, &f), 0, "%s", "f");
	TU_ASSERT_EQ(io_pwrite(f, h, 100, 0), 100, "%s", "write");
	io_close(f);
	TU_ASSERT_EQ(wal_inspect("/short", io_fault_env(m), 0, NULL, NULL, &res), -EINVAL, "%s",
		     "short file");
	TU_ASSERT(res.zero_header && !res.nonzero_after && res.file_bytes == 100, "%s", "short");
	io_fault_free(m);

	/* the ring's allocation lost: short_file, the record still read, nothing written */
	m = tf_machine_copy(m0, 101);
	TU_ASSERT_EQ(io_open(io_fault_env(m), LOGF, 0, 0644, &f), 0, "%s", "f");
	TU_ASSERT_EQ(io_truncate(f, HDR + 4096), 0, "%s", "truncate");
	io_close(f);
	inspect_ok(m, 0, &ic, &res);
	TU_ASSERT(res.short_file && res.file_bytes == HDR + 4096 && ic.got.n == 1 &&
		  res.end == end && res.tail == WAL_TAIL_END, "%s", "short ring");
	TU_ASSERT_EQ(io_fault_file_size(m, LOGF), HDR + 4096, "%s", "not allocated by inspect");
	w = wopen_ok(io_fault_env(m), LOGF, false);
	wal_close(w);
	inspect_ok(m, 0, &ic, &res);
	TU_ASSERT(!res.short_file && ic.got.n == 1, "%s", "allocated again by wal_open");
	io_fault_free(m);
	io_fault_free(m0);
	recs_free(&app);
	recs_free(&ic.got);
}
END_TEST

/* ---- resize: wal_resize (log.c INV-7) ------------------------------------------------------ */

#define BIG_RING (4 * RING)

/* append_ok for a log whose ring is `ring` bytes (the model places records in it). */
static void append_ring_ok(struct wal *w, uint64_t ring, struct recs *rs, lsn_t *model_end,
			   unsigned type, const uint8_t *p, size_t len)
{
	lsn_t rec_end, lsn = model_place(ring, *model_end, len, &rec_end), end = 0;
	int rc = append_split(w, type, p, len, &end);

	TU_ASSERT_EQ(rc, 0, "append of %zu bytes (ring %" PRIu64 ")", len, ring);
	TU_ASSERT_EQ(end, rec_end, "end of a %zu-byte record appended at %" PRIu64 " (ring %"
		     PRIu64 ")", len, *model_end, ring);
	recs_add(rs, lsn, rec_end, type, p, len);
	*model_end = rec_end;
}

static uint64_t header_ring(struct io_fault *m)
{
	uint8_t h[HDR];

	TU_ASSERT_EQ(io_fault_peek(m, LOGF, 0, h, HDR), 0, "%s", "peek header");
	return ld64(h + 24);
}

/* A new log of `ring` bytes on m holding random records over 1.3 laps, every one released
 * (the state in which the engine resizes: old records of the right salt all over the ring);
 * each released as soon as appended.  *end: the log's end. */
static struct wal *log_released(struct io_fault *m, struct tu_rng *r, uint64_t ring,
				struct recs *app, lsn_t *end)
{
	struct wal *w = NULL;
	static uint8_t buf[3000];

	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, true, false, ring, &w), 0, "%s", "create");
	*end = 0;
	while (*end < ring + ring * 3 / 10) {
		size_t len = tu_rng_below(r, sizeof(buf) + 1);

		tu_rng_bytes(r, buf, len);
		append_ring_ok(w, ring, app, end, 1 + (unsigned)tu_rng_below(r, 5), buf, len);
		wal_release(w, *end);
	}
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	return w;
}

/* Grow and shrink: the header, the file's size, the salt; records over half the old ring fit
 * after growing and not after shrinking; appends after each resize replay after a power cut,
 * none from before; the errors. */
START_TEST(core_resize)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 30);
	struct io_fault *m = machine(seed);
	struct recs app = { 0 }, app2 = { 0 }, got = { 0 };
	struct wal_inspect_result res;
	struct wal_stat st;
	struct tu_rng r;
	struct wal *w;
	lsn_t e0, e, e1;
	uint64_t salt0;
	uint8_t *big = malloc(RING);
	static uint8_t buf[3000];

	TU_ASSERT(big != NULL, "%s", "out of memory");
	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	w = log_released(m, &r, RING, &app, &e0);
	salt0 = header_salt(m);
	TU_ASSERT_EQ(wal_resize(w, 0), -EINVAL, "%s", "0 bytes");
	TU_ASSERT_EQ(wal_resize(w, WAL_MAX_RING + 1), -EINVAL, "%s", "over WAL_MAX_RING");
	e = e0;
	append_ok(w, &app, &e, 2, (const uint8_t *)"busy", 4);
	TU_ASSERT_EQ(wal_resize(w, BIG_RING), -EBUSY, "%s", "not empty");
	wal_release(w, e);

	/* grow (rounded up to 4096) */
	TU_ASSERT_EQ(wal_resize(w, BIG_RING - 100), 0, "%s", "grow");
	e1 = e;
	wal_stat(w, &st);
	TU_ASSERT(st.ring_bytes == BIG_RING && st.end == e1 && st.durable == e1 &&
		  st.released == e1, "ring %" PRIu64 " end %" PRIu64 " durable %" PRIu64,
		  st.ring_bytes, st.end, st.durable);
	TU_ASSERT_EQ(header_ring(m), BIG_RING, "%s", "header ring_bytes");
	TU_ASSERT(header_salt(m) != salt0, "%s", "a new salt");
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF), HDR + BIG_RING, "%s", "file size");
	/* a record of half the old ring fits now, across the new ring's first lap end too */
	tu_rng_bytes(&r, big, RING);
	append_ring_ok(w, BIG_RING, &app2, &e, 3, big, RING - WAL_REC_HDR);
	while (e < e1 + BIG_RING + 5000) {
		size_t len = tu_rng_below(&r, sizeof(buf) + 1);

		tu_rng_bytes(&r, buf, len);
		append_ring_ok(w, BIG_RING, &app2, &e, 4, buf, len);
		if (e - e1 > BIG_RING / 2)
			wal_release(w, app2.v[app2.n / 2].lsn);
	}
	wal_stat(w, &st);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	io_fault_power_cut(m);
	wal_close(w);
	m = reboot(m, seed + 1);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, st.released, &got), e, "%s", "end after growing");
	expect_prefix(&got, &app2, first_at(&app2, st.released), "after growing");
	TU_ASSERT_EQ(got.n, app2.n - first_at(&app2, st.released), "%s", "every record");
	wal_release(w, e);

	/* nothing from before the resize validates: an old record's place, read-only */
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), app.v[app.n - 2].lsn, NULL, NULL, &res), 0,
		     "%s", "inspect at an old record");
	TU_ASSERT(res.n_records == 0 && !res.long_file && !res.short_file, "%" PRIu64
		  " records from an LSN before the resize", res.n_records);

	/* shrink */
	salt0 = header_salt(m);
	TU_ASSERT_EQ(wal_resize(w, RING), 0, "%s", "shrink");
	e1 = e;
	TU_ASSERT_EQ(header_ring(m), RING, "%s", "header ring_bytes");
	TU_ASSERT(header_salt(m) != salt0, "%s", "a new salt");
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF), HDR + RING, "%s", "truncated");
	TU_ASSERT_EQ(wal_append(w, 1, &(struct iovec){ big, RING / 2 }, 1, NULL), -EFBIG, "%s",
		     "over half the new ring");
	recs_free(&app2);
	while (e < e1 + 2 * RING) {
		size_t len = tu_rng_below(&r, sizeof(buf) + 1);

		tu_rng_bytes(&r, buf, len);
		append_ring_ok(w, RING, &app2, &e, 5, buf, len);
		if (e - e1 > RING / 2)
			wal_release(w, app2.v[app2.n - 20].lsn);
	}
	wal_stat(w, &st);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	io_fault_set_cut_mode(m, IO_CUT_RANDOM);
	io_fault_power_cut(m);
	wal_close(w);
	m = reboot(m, seed + 2);
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF), HDR + RING, "%s", "after a cut");
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, st.released, &got), e, "%s", "end after shrinking");
	expect_prefix(&got, &app2, first_at(&app2, st.released), "after shrinking");
	TU_ASSERT_EQ(got.n, app2.n - first_at(&app2, st.released), "%s", "every record");
	wal_close(w);

	/* read-only; not recovered */
	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, false, true, 0, &w), 0, "%s", "read-only");
	TU_ASSERT_EQ(wal_resize(w, BIG_RING), -EROFS, "%s", "read-only");
	wal_close(w);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(wal_resize(w, BIG_RING), -EINVAL, "%s", "before wal_recover");
	TU_ASSERT_EQ(wal_reset(w), -EINVAL, "%s", "reset before wal_recover");
	TU_ASSERT_EQ(header_ring(m), RING, "%s", "untouched");
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&app2);
	recs_free(&got);
	free(big);
	tu_seed_end();
}
END_TEST

/*
 * Written ring (log.c): an append that reaches a 256 KiB chunk of the ring that this handle
 * allocated and has not written writes zeros over the whole chunk first, once; a record that
 * covers a chunk wholly writes it itself; nothing is zeroed in later laps, in a ring opened
 * as it was (not allocated by the handle), or in the part of a grown ring that was there
 * before.  Every record reads back after a power cut (zeros only where no record is).
 */
#define ZC (256u << 10)
static uint64_t zeroed(struct wal *w)
{
	struct wal_stat st;
	wal_stat(w, &st);
	return st.bytes_zeroed;
}

START_TEST(core_written_ring)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + 34);
	struct io_fault *m = machine(seed);
	struct recs app = { 0 }, got = { 0 };
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true); /* RING: 4 chunks */
	uint8_t *big = malloc(RING / 2);
	static uint8_t buf[100];
	lsn_t e;

	TU_ASSERT(big != NULL, "%s", "out of memory");
	tu_seed_begin("KVFS_SEED", seed);
	TU_ASSERT_EQ(wal_recover(w, 0, collect, &got, &e), 0, "%s", "recover a new log");
	TU_ASSERT_EQ(zeroed(w), 0, "%s", "before any append");
	append_ok(w, &app, &e, 1, buf, sizeof(buf));
	TU_ASSERT_EQ(zeroed(w), ZC, "%s", "the first append: chunk 0");
	while (e + 128 <= ZC)
		append_ok(w, &app, &e, 1, buf, sizeof(buf));
	TU_ASSERT_EQ(zeroed(w), ZC, "%s", "appends inside chunk 0");
	append_ok(w, &app, &e, 1, buf, sizeof(buf));
	TU_ASSERT_EQ(zeroed(w), 2 * ZC, "%s", "an append into chunk 1");
	while (e + 128 <= 2 * ZC)
		append_ok(w, &app, &e, 1, buf, sizeof(buf));
	/* from inside chunk 1 over all of chunk 2 into chunk 3: 1 and 3 zeroed, 2 written */
	size_t len = (size_t)(3 * ZC - e) + 1000 - WAL_REC_HDR;
	tf_value_fill(big, len, 7);
	append_ok(w, &app, &e, 2, big, len);
	TU_ASSERT_EQ(zeroed(w), 3 * ZC, "%s", "a record over chunk 2 (3 zeroed)");
	/* later laps: nothing more */
	for (int i = 0; i < 200; i++) {
		append_ok(w, &app, &e, 1, buf, sizeof(buf));
		tf_value_fill(big, 20000, (uint64_t)i);
		append_ok(w, &app, &e, 3, big, 20000);
		wal_release(w, app.v[app.n - 2].lsn);
	}
	TU_ASSERT(e > 2 * RING, "%s", "two laps");
	TU_ASSERT_EQ(zeroed(w), 3 * ZC, "%s", "later laps");
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	lsn_t released = app.v[app.n - 2].lsn;
	io_fault_power_cut(m);
	wal_close(w);
	m = reboot(m, seed + 1);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, released, &got), e, "%s", "end after the cut");
	TU_ASSERT_EQ(got.n, app.n - first_at(&app, released), "%s", "every record");
	append_ok(w, &app, &e, 1, buf, sizeof(buf));
	TU_ASSERT_EQ(zeroed(w), 0, "%s", "a ring opened as it was");
	wal_release(w, e);
	/* grown: each new chunk (4..15) is zeroed when the appends of a lap first reach it (the
	 * one the log's end lands in at its first), the old ones not */
	TU_ASSERT_EQ(wal_resize(w, 4 * RING), 0, "%s", "grow");
	lsn_t e0 = e;
	while (e < e0 + 4 * RING) {
		append_ring_ok(w, 4 * RING, &app, &e, 1, buf, sizeof(buf));
		wal_release(w, e);
	}
	TU_ASSERT_EQ(zeroed(w), 12 * (uint64_t)ZC, "%s", "a lap of the grown ring");
	wal_close(w);
	io_fault_free(m);
	free(big);
	recs_free(&app);
	recs_free(&got);
	tu_seed_end();
}
END_TEST

/* A file longer than its ring (what a crash in a resize leaves): inspection says so and finds
 * the log sound; a read-only open leaves it; a writable open trims it. */
START_TEST(log_long_file)
{
	struct io_fault *m = machine(33);
	struct wal_inspect_result res;
	struct recs app = { 0 }, got = { 0 };
	struct wal *w = wopen_ok(io_fault_env(m), LOGF, true);
	static const uint8_t junk[4096] = { 1, 2, 3 };
	lsn_t end = 0;

	append_ok(w, &app, &end, 1, (const uint8_t *)"kept", 4);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s", "sync");
	wal_close(w);
	TU_ASSERT_EQ(io_fault_poke(m, LOGF, HDR + RING + 8192, junk, sizeof(junk)), 0, "%s",
		     "extend");
	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), 0, NULL, NULL, &res), 0, "%s", "inspect");
	TU_ASSERT(res.long_file && !res.short_file && res.n_records == 1 &&
		  res.tail == WAL_TAIL_END && res.n_stale == 0, "long %d short %d records %"
		  PRIu64, res.long_file, res.short_file, res.n_records);
	TU_ASSERT_EQ(wopen(io_fault_env(m), LOGF, false, true, 0, &w), 0, "%s", "read-only");
	wal_close(w);
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF), HDR + RING + 8192 + 4096, "%s",
		     "read-only: untouched");
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF), HDR + RING, "%s", "trimmed");
	TU_ASSERT_EQ(recover_ok(w, 0, &got), end, "%s", "end");
	expect_prefix(&got, &app, 0, "long file");
	TU_ASSERT_EQ(got.n, 1, "%s", "the record");
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&got);
}
END_TEST

/* One cut during a resize from `from_ring` to `to_ring`: power cut at the kth sync from the
 * resize on (k past the resize's syncs: after it returned, its truncate maybe pending).  Then
 * the checker's view (wal_inspect: the old or the new ring, a file holding all of it, nothing
 * to replay, nothing torn or stale), a writable open (trims), recovery from the end at the
 * resize (nothing), and a session whose synced records are exactly what the next recovery
 * gives.  Returns true when the cut fell inside the resize. */
static bool resize_cut(uint64_t seed, uint64_t from_ring, uint64_t to_ring,
		       enum io_fault_cut_mode mode, uint64_t k)
{
	struct io_fault *m = machine(seed ^ k << 24);
	struct recs app = { 0 }, app2 = { 0 }, got = { 0 };
	struct wal_inspect_result res;
	struct tu_rng r;
	struct wal *w;
	lsn_t e0, e;
	char what[128];
	static uint8_t buf[3000];
	bool cut;
	int rc;

	snprintf(what, sizeof(what), "resize %" PRIu64 " -> %" PRIu64 ", mode %s, cut at sync %"
		 PRIu64, from_ring, to_ring, mode_name(mode), k);
	tu_rng_init(&r, seed);
	w = log_released(m, &r, from_ring, &app, &e0);
	io_fault_set_cut_mode(m, mode);
	io_fault_cut_at_sync(m, k);
	rc = wal_resize(w, to_ring);
	cut = io_fault_dead(m);
	if (cut) {
		TU_ASSERT_EQ(rc, -EIO, "%s: the cut sync's error", what);
	} else {
		TU_ASSERT_EQ(rc, 0, "%s: resize", what);
		io_fault_power_cut(m);
	}
	wal_close(w);
	m = reboot(m, seed + k);

	TU_ASSERT_EQ(wal_inspect(LOGF, io_fault_env(m), e0, NULL, NULL, &res), 0, "%s: inspect",
		     what);
	TU_ASSERT(res.ring_bytes == to_ring || (cut && res.ring_bytes == from_ring),
		  "%s: ring_bytes %" PRIu64, what, res.ring_bytes);
	TU_ASSERT(!res.short_file && res.long_file == (res.file_bytes > HDR + res.ring_bytes),
		  "%s: file %" PRIu64 " bytes, ring %" PRIu64 ", short %d long %d", what,
		  res.file_bytes, res.ring_bytes, res.short_file, res.long_file);
	TU_ASSERT(res.n_records == 0 && res.end == e0 && res.tail == WAL_TAIL_END &&
		  res.n_stale == 0, "%s: %" PRIu64 " records to %" PRIu64 " (from %" PRIu64
		  "), tail %d, %" PRIu64 " stale", what, res.n_records, res.end, e0, res.tail,
		  res.n_stale);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF), HDR + res.ring_bytes, "%s: trimmed",
		     what);
	TU_ASSERT_EQ(recover_ok(w, e0, &got), e0, "%s: recovery's end", what);
	TU_ASSERT_EQ(got.n, 0, "%s: nothing from before the resize", what);

	/* records of the sizes of the old ones after e0, over a lap of the ring in use */
	e = e0;
	for (size_t i = first_at(&app, e0 - from_ring / 2), j = 0;
	     e < e0 + res.ring_bytes + 4096; i++, j++) {
		size_t len = i < app.n ? app.v[i].len : tu_rng_below(&r, sizeof(buf) + 1);

		tu_rng_bytes(&r, buf, len);
		append_ring_ok(w, res.ring_bytes, &app2, &e, 7, buf, len);
		if (e - e0 > res.ring_bytes / 2)
			wal_release(w, app2.v[j / 2].lsn);
	}
	struct wal_stat st;
	wal_stat(w, &st);
	TU_ASSERT_EQ(wal_sync(w), 0, "%s: sync", what);
	io_fault_set_cut_mode(m, IO_CUT_RANDOM);
	io_fault_power_cut(m);
	wal_close(w);
	m = reboot(m, seed + k + 1);
	w = wopen_ok(io_fault_env(m), LOGF, false);
	TU_ASSERT_EQ(recover_ok(w, st.released, &got), e, "%s: end of the new records", what);
	expect_prefix(&got, &app2, first_at(&app2, st.released), what);
	TU_ASSERT_EQ(got.n, app2.n - first_at(&app2, st.released), "%s: every synced record",
		     what);
	wal_close(w);
	io_fault_free(m);
	recs_free(&app);
	recs_free(&app2);
	recs_free(&got);
	return cut;
}

START_TEST(crash_resize)
{
	uint64_t seed, x = DEFAULT_SEED + 31;
	bool one = tu_seed_given("KVFS_SEED", &seed);
	static const enum io_fault_cut_mode modes[] = { IO_CUT_RANDOM, IO_CUT_KEEP_ALL,
							IO_CUT_DROP_ALL };
	size_t cuts = 0, inside = 0;

	for (int s = 0; s < (one ? 1 : 4); s++) {
		seed = one ? seed : tu_splitmix64(&x);
		tu_seed_begin("KVFS_SEED", seed);
		for (size_t mi = 0; mi < 3; mi++) {
			/* growing syncs twice (the ring, the header), shrinking once */
			for (uint64_t k = 1; k <= 3; k++, cuts++)
				inside += resize_cut(seed, RING, BIG_RING, modes[mi], k);
			for (uint64_t k = 1; k <= 2; k++, cuts++)
				inside += resize_cut(seed, BIG_RING, RING, modes[mi], k);
		}
		tu_seed_end();
	}
	fprintf(stderr, "wal resize crash: %zu power cuts (%zu inside a resize)\n", cuts, inside);
	if (!one)
		TU_ASSERT_EQ(inside, 4 * 3 * 3, "%s", "cuts inside a resize (2 growing, 1 shrinking)");
}
END_TEST

/* Fail the Nth I/O call of a resize (N = 1, 2, ... until it succeeds), growing and shrinking:
 * a failed allocation leaves the log usable with its old ring; any other failure fails the
 * log (a failed truncate after the new header is only logged); the log reopens with the old
 * or the new ring, nothing to replay, and takes records. */
START_TEST(fault_resize)
{
	for (int grow = 0; grow < 2; grow++) {
		uint64_t from_ring = grow ? RING : BIG_RING, to_ring = grow ? BIG_RING : RING;

		for (size_t ki = 0; ki < 3; ki++) {
			for (uint64_t n = 1;; n++) {
				struct io_fault *m = machine(n + 40 * grow);
				struct recs app = { 0 }, got = { 0 };
				struct tu_rng r;
				struct wal_stat st;
				struct wal *w;
				lsn_t e0, e, end;
				char what[96];
				int rc;

				snprintf(what, sizeof(what), "%s, %s at call %" PRIu64,
					 grow ? "grow" : "shrink", kind_names[ki], n);
				TU_ASSERT(n < 10, "%s: the resize never succeeds", what);
				tu_rng_init(&r, n);
				w = log_released(m, &r, from_ring, &app, &e0);
				io_fault_fail_at(m, n, kinds[ki]);
				rc = wal_resize(w, to_ring);
				bool fired = io_fault_fired(m);
				io_fault_fail_at(m, 0, IO_FAULT_EIO);
				wal_stat(w, &st);
				bool alloc = grow && n == 1, trunc = !grow && n == 3;
				if (!fired || trunc) {
					TU_ASSERT_EQ(rc, 0, "%s", what);
					TU_ASSERT_EQ(st.ring_bytes, to_ring, "%s", what);
				} else if (alloc) {
					expect_injected(rc, ki, what);
					TU_ASSERT_EQ(st.ring_bytes, from_ring, "%s: old ring", what);
				} else {
					TU_ASSERT_EQ(rc, -EIO, "%s", what);
					TU_ASSERT_EQ(wal_append(w, 1, NULL, 0, &end), -EIO,
						     "%s: failed", what);
				}
				if (!fired || trunc || alloc) {
					e = e0;
					append_ring_ok(w, st.ring_bytes, &app, &e, 9,
						       (const uint8_t *)"after", 5);
					TU_ASSERT_EQ(wal_sync(w), 0, "%s: sync", what);
				} else {
					e = e0;
				}
				if (trunc)
					TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF),
						     HDR + from_ring, "%s: not truncated", what);
				wal_close(w);
				m = reboot(m, n);
				w = wopen_ok(io_fault_env(m), LOGF, false);
				TU_ASSERT_EQ(recover_ok(w, e0, &got), e, "%s: end", what);
				TU_ASSERT_EQ(got.n, e == e0 ? 0u : 1u, "%s: records", what);
				wal_stat(w, &st);
				TU_ASSERT(st.ring_bytes == from_ring || st.ring_bytes == to_ring,
					  "%s: ring %" PRIu64, what, st.ring_bytes);
				TU_ASSERT_EQ((uint64_t)io_fault_file_size(m, LOGF),
					     HDR + st.ring_bytes, "%s: file size", what);
				append_ring_ok(w, st.ring_bytes, &got, &e, 9,
					       (const uint8_t *)"more", 4);
				wal_close(w);
				io_fault_free(m);
				recs_free(&app);
				recs_free(&got);
				if (!fired)
					break;
			}
		}
	}
}
END_TEST

/* ---- model: random operations against a list of the live records ------------------------- */

/*
 * A random mix against a model of the log (written with review H22 of the "Written ring"
 * zeros, log.c): appends of 0-300 bytes, 1-40 KB and up to half the ring (more than a zero
 * chunk), releases, resets and resizes of the emptied log to random sizes of 1-3 MiB (LSNs
 * going on, the log's end landing anywhere in the new ring), and power cuts after a sync,
 * after which the file is sometimes cut short past the live records (wal_open allocates the
 * ring again) before the reopen and recovery.  After every step each live record is read
 * from the file image (header and payload); after every cut every synced record must be
 * recovered and every recovered one must be what was appended there.  It fails when zeros
 * land on a live record: with a chunk's bit never cleared (at step 1), with every chunk
 * marked at a re-allocation (at step 25).
 */
#define MODEL_RING_ROUNDS 12
#define MODEL_RING_STEPS 2500

struct mrec {
	lsn_t lsn, end;
	size_t len;
	uint64_t tag;
};

struct mring {
	struct tu_rng r;
	struct io_fault *m;
	struct wal *w;
	uint64_t ring, tag;
	struct mrec *v; /* every record appended, oldest first; the live ones from `released` */
	size_t n, cap;
	lsn_t end, released;
};

static uint8_t mr_buf[3u << 20], mr_chk[3u << 20];

/* Every live record of the model reads back from the file image. */
static void mr_check_live(const struct mring *mr, const char *what, int step)
{
	for (size_t i = 0; i < mr->n; i++) {
		const struct mrec *c = &mr->v[i];
		uint8_t h[WAL_REC_HDR];
		uint64_t off = HDR + c->lsn % mr->ring;
		if (c->lsn < mr->released)
			continue;
		TU_ASSERT_EQ(io_fault_peek(mr->m, LOGF, off, h, WAL_REC_HDR), 0, "%s", "peek");
		TU_ASSERT(ld64(h + 8) == c->lsn /* the header's lsn field */ && ld32(h) == WAL_REC_HDR + c->len,
			  "%s, step %d: live record %zu (lsn %" PRIu64 ", %zu bytes): header damaged",
			  what, step, i, c->lsn, c->len);
		TU_ASSERT_EQ(io_fault_peek(mr->m, LOGF, off + WAL_REC_HDR, mr_chk, c->len), 0, "%s",
			     "peek");
		TU_ASSERT(tf_value_check(mr_chk, c->len, c->tag), "%s, step %d: live record %zu "
			  "(lsn %" PRIu64 "): payload damaged", what, step, i, c->lsn);
	}
}

static void mr_append(struct mring *mr, int step)
{
	unsigned k = (unsigned)tu_rng_below(&mr->r, 100);
	size_t len = k < 65 ? tu_rng_below(&mr->r, 300)
		   : k < 90 ? tu_rng_range(&mr->r, 1000, 40000)
			    : tu_rng_below(&mr->r, mr->ring / 2 - 32);
	lsn_t rec_end, lsn = model_place(mr->ring, mr->end, len, &rec_end), got_end = 0;
	for (size_t i = 0; rec_end - mr->released > mr->ring;) { /* room: release (INV-2) */
		while (i < mr->n && mr->v[i].lsn < mr->released)
			i++;
		mr->released = i < mr->n ? mr->v[i].end : mr->end;
		wal_release(mr->w, mr->released);
	}
	tf_value_fill(mr_buf, len, ++mr->tag);
	TU_ASSERT_EQ(append_split(mr->w, 1, mr_buf, len, &got_end), 0, "append of %zu", len);
	TU_ASSERT_EQ(got_end, rec_end, "%s", "placement");
	if (mr->n == mr->cap) {
		mr->cap = mr->cap ? 2 * mr->cap : 1024;
		mr->v = realloc(mr->v, mr->cap * sizeof(*mr->v));
		TU_ASSERT(mr->v != NULL, "%s", "out of memory");
	}
	mr->v[mr->n++] = (struct mrec){ lsn, rec_end, len, mr->tag };
	mr->end = rec_end;
	mr_check_live(mr, "after an append", step);
}

/* Sync, cut the power, maybe cut the file short past the live records, reopen, recover. */
static void mr_cut(struct mring *mr, int round, int step)
{
	TU_ASSERT_EQ(wal_sync(mr->w), 0, "%s", "sync");
	lsn_t synced = mr->end;
	io_fault_power_cut(mr->m);
	wal_close(mr->w);
	mr->m = reboot(mr->m, tu_rng_next(&mr->r));
	if (tu_rng_chance(&mr->r, 1, 2) && mr->end % mr->ring != 0 &&
	    mr->released / mr->ring == (mr->end - 1) / mr->ring) {
		uint64_t lo = (HDR + mr->end % mr->ring + 4095) & ~(uint64_t)4095;
		uint64_t cut = lo + 4096 * tu_rng_below(&mr->r, (HDR + mr->ring - lo) / 4096 + 1);
		if (cut < HDR + mr->ring) {
			struct io_file *f;
			TU_ASSERT_EQ(io_open(io_fault_env(mr->m), LOGF, 0, 0644, &f), 0, "%s", "open");
			TU_ASSERT_EQ(io_truncate(f, cut), 0, "%s", "truncate");
			TU_ASSERT_EQ(io_sync(f), 0, "%s", "sync");
			io_close(f);
		}
	}
	mr->w = NULL;
	TU_ASSERT_EQ(wopen(io_fault_env(mr->m), LOGF, false, false, 0, &mr->w), 0, "%s", "reopen");
	struct recs got = { 0 };
	lsn_t e = recover_ok(mr->w, mr->released, &got);
	size_t first = 0, durable;
	while (first < mr->n && mr->v[first].lsn < mr->released)
		first++;
	for (durable = first; durable < mr->n && mr->v[durable].end <= synced;)
		durable++;
	TU_ASSERT(got.n >= durable - first, "round %d, step %d: %zu records recovered, %zu were "
		  "durable", round, step, got.n, durable - first);
	for (size_t i = 0; i < got.n; i++) {
		const struct mrec *c = &mr->v[first + i];
		TU_ASSERT(first + i < mr->n && got.v[i].lsn == c->lsn && got.v[i].len == c->len &&
			  tf_value_check(got.v[i].data, got.v[i].len, c->tag), "round %d, step %d: "
			  "recovered record %zu is not the one appended there", round, step, i);
	}
	mr->n = first + got.n;
	mr->end = e;
	recs_free(&got);
	mr_check_live(mr, "after a recovery", step);
}

START_TEST(model_ring)
{
	uint64_t seed0 = tu_seed("KVFS_SEED", DEFAULT_SEED + 40);

	tu_seed_begin("KVFS_SEED", seed0);
	for (int round = 0; round < MODEL_RING_ROUNDS; round++) {
		struct mring mr = { .ring = RING, .tag = (seed0 + (uint64_t)round) << 20 };
		struct recs none = { 0 };
		lsn_t e;
		tu_rng_init(&mr.r, seed0 + (uint64_t)round);
		mr.m = machine(seed0 + (uint64_t)round);
		mr.w = wopen_ok(io_fault_env(mr.m), LOGF, true);
		TU_ASSERT_EQ(wal_recover(mr.w, 0, collect, &none, &e), 0, "%s", "recover a new log");
		for (int step = 0; step < MODEL_RING_STEPS; step++) {
			unsigned op = (unsigned)tu_rng_below(&mr.r, 100);
			if (op < 75) {
				mr_append(&mr, step);
			} else if (op < 85) { /* release a random prefix of the live records */
				size_t i = 0;
				while (i < mr.n && mr.v[i].lsn < mr.released)
					i++;
				size_t j = i + tu_rng_below(&mr.r, mr.n - i + 1);
				mr.released = j < mr.n ? mr.v[j].lsn : mr.end;
				wal_release(mr.w, mr.released);
			} else if (op < 92) { /* empty the log, then reset or resize it */
				uint64_t nr = tu_rng_chance(&mr.r, 1, 3)
						      ? mr.ring
						      : RING + 4096 * tu_rng_below(&mr.r, (2u << 20) / 4096);
				mr.released = mr.end;
				wal_release(mr.w, mr.end);
				TU_ASSERT_EQ(nr == mr.ring ? wal_reset(mr.w) : wal_resize(mr.w, nr), 0,
					     "reset or resize to %" PRIu64, nr);
				mr.ring = nr;
				mr_check_live(&mr, "after a resize", step);
			} else if (op < 96) {
				mr_cut(&mr, round, step);
			}
		}
		wal_close(mr.w);
		io_fault_free(mr.m);
		free(mr.v);
		recs_free(&none);
	}
	tu_seed_end();
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

static Suite *wal_suite(void)
{
	Suite *s = suite_create("wal");
	TCase *core = tcase_create("core"), *log = tcase_create("log"),
	      *crash = tcase_create("crash"), *fault = tcase_create("fault"),
	      *gc = tcase_create("groupcommit"), *inspect = tcase_create("inspect");

	tcase_set_timeout(core, 60);
	tcase_set_timeout(log, 60);
	tcase_set_timeout(crash, 180);
	tcase_set_timeout(fault, 120);
	tcase_set_timeout(gc, 120);
	tcase_set_timeout(inspect, 60);

	tcase_add_loop_test(core, core_roundtrip, 0, 2);
	tcase_add_test(core, core_lsn_laps);
	tcase_add_test(core, core_release);
	tcase_add_test(core, core_full_wait);
	tcase_add_test(core, core_limits);
	tcase_add_test(core, core_reset);
	tcase_add_test(core, core_resize);
	tcase_add_test(core, core_written_ring);

	tcase_add_test(log, log_torn_tail);
	tcase_add_test(log, log_stale_lap);
	tcase_add_test(log, log_stale_reset);
	tcase_add_test(log, log_stale_ahead);
	tcase_add_test(log, log_header);
	tcase_add_test(log, log_crafted);
	tcase_add_test(log, log_garbage);
	tcase_add_test(log, log_long_file);

	tcase_add_test(crash, crash_cut_every_sync);
	tcase_add_test(crash, crash_group_commit);
	tcase_add_test(crash, crash_resize);

	tcase_add_test(fault, fault_create);
	tcase_add_test(fault, fault_writer);
	tcase_add_test(fault, fault_recover);
	tcase_add_test(fault, fault_resize);

	tcase_add_test(gc, groupcommit_threads);
	tcase_add_test(gc, fault_sync_no_retry);

	tcase_add_test(inspect, inspect_sound);
	tcase_add_test(inspect, inspect_tail);
	tcase_add_test(inspect, log_kill_split);
	tcase_add_test(inspect, inspect_header);

	suite_add_tcase(s, core);
	TCase *model = tcase_create("model");
	tcase_set_timeout(model, 300);
	tcase_add_test(model, model_ring);
	suite_add_tcase(s, model);
	suite_add_tcase(s, log);
	suite_add_tcase(s, crash);
	suite_add_tcase(s, fault);
	suite_add_tcase(s, gc);
	suite_add_tcase(s, inspect);
	return s;
}

int main(void)
{
	return tu_run_suite(wal_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
