/*
 * tests/fuzz/fuzz_wal.c — fuzz harness: arbitrary bytes as a log file (STORE-wal), read by
 * wal_inspect and wal_recover (wal/log.h) on an in-memory io_fault machine, every replayed
 * batch record decoded by engine_record_decode (store/engine.h).
 *
 * Input: a flags byte, a little-endian u64 `from` (made 8-aligned and below WAL_LSN_MAX), then
 * the file (cut at FUZZ_WAL_MAX_BYTES; a file shorter than its ring reads as zeros beyond).
 * Flags: FUZZ_FIXUP recomputes the header's and every record-shaped header's checksum;
 * FUZZ_WAL_DECODE (0x02) also feeds the file bytes straight to engine_record_decode as one
 * payload.
 *
 * Promises checked (abort when broken): no crash, hang or leak whatever the bytes; wal_inspect
 * reports exactly what a read-only wal_recover replays (the same record count and end); a
 * writable wal_recover replays the same records again; and after it, a record appended and
 * synced is replayed by the next recovery from the same `from`, after the same records.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "store/engine.h"
#include "tests/fuzz/fuzz.h"
#include "wal/log.h"

#define FUZZ_WAL_DECODE 0x02

static const char appended[] = "fuzz: appended after recovery";

struct replay {
	uint64_t n;          /* records replayed (pads excluded) */
	uint64_t n_decoded;  /* batch records that decoded */
	uint64_t sum;        /* touches every decoded byte (ASan sees a bad bound) */
	bool last_is_ours;   /* the last record is the one this harness appended */
};

static int decode_op(void *ctx, unsigned tree, bool del, const void *key, size_t klen,
		     const void *val, size_t vlen)
{
	struct replay *rp = ctx;
	if (tree >= ENGINE_TREES || klen < 1 || klen > STORE_MAX_KEY || vlen > ENGINE_MAX_VALUE ||
	    (del && vlen))
		fuzz_fail("engine_record_decode passed an op it promised to refuse");
	for (size_t i = 0; i < klen; i++)
		rp->sum += ((const uint8_t *)key)[i];
	for (size_t i = 0; i < vlen; i++)
		rp->sum += ((const uint8_t *)val)[i];
	return 0;
}

static int replay_rec(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len)
{
	struct replay *rp = ctx;
	if (type == WAL_PAD)
		fuzz_fail("a pad record reached the replay callback at lsn %llu",
			  (unsigned long long)lsn);
	if (lsn % 8)
		fuzz_fail("record at unaligned lsn %llu", (unsigned long long)lsn);
	rp->n++;
	rp->last_is_ours = type == 7 && len == sizeof(appended) &&
			   memcmp(payload, appended, len) == 0;
	if (type == ENGINE_REC_BATCH && engine_record_decode(payload, len, decode_op, rp) == 0)
		rp->n_decoded++;
	return 0;
}

static int inspect_header(void *ctx, const struct wal_inspect_result *res)
{
	(void)ctx;
	(void)res;
	return 0;
}

int fuzz_wal_one(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	uint64_t from = fuzz_ld(data + 1, size - 1, 8) % WAL_LSN_MAX & ~(uint64_t)7;
	size_t skip = size < 9 ? size : 9;
	data += skip;
	size -= skip;
	if (size > FUZZ_WAL_MAX_BYTES)
		size = FUZZ_WAL_MAX_BYTES;
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (flags & FUZZ_FIXUP)
		fuzz_fixup_wal(buf, size);
	if (flags & FUZZ_WAL_DECODE) {
		struct replay rp = { 0 };
		engine_record_decode(buf, size, decode_op, &rp);
	}

	struct io_fault *m = io_fault_new(1);
	if (!m || fuzz_put_file(m, "/w", buf, size) < 0)
		fuzz_fail("cannot set up the machine");
	struct io_env *io = io_fault_env(m);

	/* 1. Inspection, read-only. */
	struct wal_inspect_ops ops = { .header = inspect_header, .record = replay_rec };
	struct replay ri = { 0 };
	struct wal_inspect_result res;
	int ir = wal_inspect("/w", io, from, &ops, &ri, &res);
	if (ir == 0 && ri.n != res.n_records)
		fuzz_fail("wal_inspect: %llu records called back, %llu counted",
			  (unsigned long long)ri.n, (unsigned long long)res.n_records);

	/* 2. Read-only recovery: exactly what inspection saw. */
	struct wal_options wo = { .io = io, .rdonly = true, .log = fuzz_log };
	struct wal *w;
	struct replay r1 = { 0 };
	lsn_t end1 = 0;
	int r = wal_open("/w", &wo, &w);
	if (r == 0) {
		int rr = wal_recover(w, from, replay_rec, &r1, &end1);
		wal_close(w);
		if (rr == 0 && ir == 0 && (r1.n != res.n_records || end1 != res.end))
			fuzz_fail("wal_inspect saw %llu records to %llu, wal_recover %llu to %llu",
				  (unsigned long long)res.n_records, (unsigned long long)res.end,
				  (unsigned long long)r1.n, (unsigned long long)end1);
		if (rr != 0)
			r = rr;
	}

	/* 3. Writable recovery (it erases stale headers and may reallocate the ring; only for
	 *    small rings, as a 1 TiB ring of zeros is slow, not wrong), then an append that the
	 *    next recovery must replay after the same records. */
	bool small_ring = ir == 0 && res.ring_bytes <= FUZZ_WAL_MAX_RING;
	if (r == 0 && small_ring) {
		wo.rdonly = false;
		struct replay r2 = { 0 };
		lsn_t end2 = 0;
		if (wal_open("/w", &wo, &w) != 0)
			goto out;
		if (wal_recover(w, from, replay_rec, &r2, &end2) != 0) {
			wal_close(w);
			goto out;
		}
		if (r2.n != r1.n || end2 != end1)
			fuzz_fail("writable recovery replayed %llu records to %llu, read-only %llu "
				  "to %llu", (unsigned long long)r2.n, (unsigned long long)end2,
				  (unsigned long long)r1.n, (unsigned long long)end1);
		wal_release(w, end2);
		struct iovec iov = { (void *)appended, sizeof(appended) };
		lsn_t aend;
		int ar = wal_append(w, 7, &iov, 1, &aend);
		if (ar == 0)
			ar = wal_sync(w);
		wal_close(w);
		/* Within half a lap of `from` the appended record cannot have overwritten a
		 * record that recovery from `from` replays first. */
		if (ar == 0 && end2 - from < res.ring_bytes / 2) {
			wo.rdonly = true;
			struct replay r3 = { 0 };
			lsn_t end3;
			if (wal_open("/w", &wo, &w) != 0)
				fuzz_fail("log does not reopen after an append");
			if (wal_recover(w, from, replay_rec, &r3, &end3) != 0)
				fuzz_fail("log does not recover after an append");
			wal_close(w);
			/* When fewer than a record header's bytes are left in the lap after the
			 * appended record, that rest is a gap (log.c INV-1) and recovery ends at
			 * the next lap's start, where the next append goes. */
			lsn_t want = aend;
			uint64_t rest = res.ring_bytes - aend % res.ring_bytes;
			if (rest < WAL_REC_HDR)
				want = aend + rest;
			if (r3.n != r2.n + 1 || !r3.last_is_ours || end3 != want)
				fuzz_fail("after an append at %llu: %llu records (want %llu), end %llu "
					  "(want %llu), last %s ours", (unsigned long long)end2,
					  (unsigned long long)r3.n, (unsigned long long)r2.n + 1,
					  (unsigned long long)end3, (unsigned long long)want,
					  r3.last_is_ours ? "is" : "is not");

			/* 4. Once every record is released, a resize (to a ring chosen by the
			 *    input: 1 to 4 x WAL_MIN_RING) starts the log afresh: recovery from
			 *    the end before it replays exactly one record appended after it. */
			uint64_t nring = WAL_MIN_RING * (1 + (size ? data[size - 1] % 4 : 0));
			wo.rdonly = false;
			if (wal_open("/w", &wo, &w) != 0)
				fuzz_fail("log does not reopen writable after an append");
			lsn_t end4, aend4;
			struct replay r4 = { 0 };
			if (wal_recover(w, from, replay_rec, &r4, &end4) != 0)
				fuzz_fail("log does not recover writable after an append");
			wal_release(w, end4);
			int zr = wal_resize(w, nring);
			if (zr == 0)
				zr = wal_append(w, 7, &iov, 1, &aend4);
			if (zr == 0)
				zr = wal_sync(w);
			wal_close(w);
			if (zr != 0)
				fuzz_fail("resize to %llu and append after it: %d",
					  (unsigned long long)nring, zr);
			wo.rdonly = true;
			struct replay r5 = { 0 };
			lsn_t end5;
			if (wal_open("/w", &wo, &w) != 0 ||
			    wal_recover(w, end4, replay_rec, &r5, &end5) != 0)
				fuzz_fail("log does not recover after a resize to %llu",
					  (unsigned long long)nring);
			wal_close(w);
			want = aend4;
			rest = nring - aend4 % nring;
			if (rest < WAL_REC_HDR)
				want = aend4 + rest;
			if (r5.n != 1 || !r5.last_is_ours || end5 != want)
				fuzz_fail("after a resize to %llu at %llu: %llu records (want 1), end "
					  "%llu (want %llu)", (unsigned long long)nring,
					  (unsigned long long)end4, (unsigned long long)r5.n,
					  (unsigned long long)end5, (unsigned long long)want);
		}
	}
out:
	io_fault_free(m);
	free(buf);
	return 0;
}

#ifdef KVFS_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_wal_one(data, size);
}
#endif
