/*
 * store/pager.c — the data file as pages: one read-only shared mapping for every read, pwrite
 * for every write, the file's size, and the check a page passes before anyone trusts it.
 *
 * Mapping.  The file is mapped once with a large reservation (PAGER_MIN_RESERVE, or four times
 * the file), so growing the file never moves the mapping.  When the file outgrows the
 * reservation a larger mapping is made and published; the old one stays mapped until close,
 * because a snapshot that began before may still read through it.  So there is no fixed map
 * size and no "map full" while the disk has room.
 *
 * Checks.  pager_get() checks a page against what its parent expects (page number within the
 * snapshot's page_count, header pgno, header txnid == the parent's child_txnid, level) on every
 * visit — a few compares — and its checksum and structure (page_check) once: pages are never
 * modified while reachable (INV-1), so a verified bit per page (vbits) saves rehashing hot
 * pages.  The writer clears a page's bit when it reuses the page and sets it when it writes
 * one.  Any failure is -EUCLEAN with a log line naming the page.
 *
 * Growth.  The file grows in chunks (grow_chunk: 1/32 of its size, 1 MiB to 16 MiB) by
 * fallocate, so most commits do not change its size; pager_trim() gives a free tail longer
 * than one such chunk (at least 4 MiB) back.  The chunk is what the file may carry beyond the
 * live pages for good, so it is kept small: at 1/8 (up to 64 MiB) the soak's data file stayed
 * 1.29 x its live data, at 1/32 1.19 x (tools/soak.sh, 240 s); the price is more fallocate
 * calls while a store grows (one per 1/32 of its size).
 *
 * Writeback.  After every PAGER_WRITEBACK bytes of pages written, the pager asks the kernel to
 * start writing them back (io_writeback: sync_file_range(2) WRITE, no wait), so that the disk
 * works while a checkpoint goes on copying, and the commit's fdatasync finds little left to
 * write.  Without it a checkpoint copied everything, then waited for the disk to take it all,
 * and writers waited for the log it releases (a fill left both cores idle 60 % of the time):
 * kvfs-bench fillrandom, 3 alternating runs, 4 KiB values 214-226 k puts/s without, 282-293 k
 * with (LMDB 205-267 k); 64 KiB values 16.9-17.8 k without, 20.6-22.1 k with (LMDB 17-29 k);
 * 100-byte values unchanged.  A hint: its error is ignored
 * (the sync reports any write error), and it makes nothing durable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/checksum.h"
#include "store/page.h"
#include "store/store_int.h"

#define PAGER_MIN_RESERVE (16ull << 30)
#define PAGER_WRITEBACK (2ull << 20)

int pager_init(struct store *st, struct io_file *file, uint64_t file_size)
{
	struct pager *pg = &st->pager;
	pg->file = file;
	pg->file_size = file_size;
	atomic_init(&pg->map, NULL);
	for (int i = 0; i < VBITS_CHUNKS; i++)
		atomic_init(&pg->vbits[i], NULL);
	return pager_ensure_map(st, file_size / STORE_PAGE_SIZE);
}

void pager_destroy(struct pager *pg)
{
	struct mapping *m = atomic_load(&pg->map);
	while (m) {
		struct mapping *older = m->older;
		io_unmap(pg->file, m->base, m->reserve);
		free(m);
		m = older;
	}
	atomic_store(&pg->map, NULL);
	for (int i = 0; i < VBITS_CHUNKS; i++)
		free((void *)atomic_load(&pg->vbits[i]));
}

int pager_ensure_map(struct store *st, uint64_t pages)
{
	struct pager *pg = &st->pager;
	struct mapping *cur = atomic_load_explicit(&pg->map, memory_order_relaxed);
	uint64_t need = pages * STORE_PAGE_SIZE;
	if (cur && cur->reserve >= need)
		return 0;
	size_t reserve = PAGER_MIN_RESERVE;
	while (reserve < need * 4)
		reserve *= 2;
	struct mapping *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	const void *base;
	int r = io_map(pg->file, reserve, &base);
	if (r < 0) {
		free(m);
		return r;
	}
	m->base = base;
	m->reserve = reserve;
	m->older = cur;
	atomic_store_explicit(&pg->map, m, memory_order_release);
	return 0;
}

/* The growth step for a file of file_size bytes (see the top of the file). */
static uint64_t grow_chunk(uint64_t file_size)
{
	uint64_t chunk = file_size / 32;
	if (chunk < (1u << 20))
		chunk = 1u << 20;
	if (chunk > (16u << 20))
		chunk = 16u << 20;
	return chunk - chunk % STORE_PAGE_SIZE;
}

int pager_ensure_size(struct store *st, uint64_t pages)
{
	struct pager *pg = &st->pager;
	uint64_t need = pages * STORE_PAGE_SIZE;
	if (need <= pg->file_size)
		return 0;
	uint64_t chunk = grow_chunk(pg->file_size);
	uint64_t want = need + chunk - 1;
	want -= want % chunk;
	int r = io_allocate(pg->file, pg->file_size, want - pg->file_size);
	if (r == -ENOSPC && want > need) {
		want = need; /* a full disk: take exactly what is needed */
		r = io_allocate(pg->file, pg->file_size, want - pg->file_size);
	}
	if (r == -ENOSPC)
		return r; /* nothing was written: the transaction fails, the store does not */
	if (r < 0)
		return store_fail(st, r);
	pg->file_size = want;
	return pager_ensure_map(st, pages);
}

int pager_trim(struct store *st, uint64_t pages)
{
	struct pager *pg = &st->pager;
	uint64_t keep = pages * STORE_PAGE_SIZE;
	/* Hysteresis: a free tail of up to one growth chunk (grow_chunk), and at least 4 MiB,
	 * stays.  Right after a growth the tail is under the chunk, so a trim never undoes the
	 * growth it follows; a larger tail goes back whole (the file follows the live data within
	 * one chunk). */
	uint64_t slack = grow_chunk(pg->file_size);
	if (slack < (4u << 20))
		slack = 4u << 20;
	if (pg->file_size <= keep + slack)
		return 0;
	int r = io_truncate(pg->file, keep);
	if (r < 0)
		return r;
	pg->file_size = keep;
	return 0;
}

static _Atomic uint64_t *vbits_word(struct pager *pg, pgno_t pgno, bool create)
{
	uint64_t ci = pgno / VBITS_CHUNK_PAGES;
	if (ci >= VBITS_CHUNKS)
		return NULL;
	_Atomic uint64_t *c = atomic_load_explicit(&pg->vbits[ci], memory_order_acquire);
	if (!c && create) {
		_Atomic uint64_t *fresh = calloc(VBITS_CHUNK_PAGES / 64, sizeof(uint64_t));
		if (!fresh)
			return NULL;
		_Atomic uint64_t *expected = NULL;
		if (atomic_compare_exchange_strong(&pg->vbits[ci], &expected, fresh)) {
			c = fresh;
		} else {
			free((void *)fresh);
			c = expected;
		}
	}
	return c ? &c[(pgno % VBITS_CHUNK_PAGES) / 64] : NULL;
}

static bool vbits_test(struct pager *pg, pgno_t pgno)
{
	return pager_verified(pg, pgno);
}

void pager_mark_verified(struct store *st, pgno_t pgno)
{
	_Atomic uint64_t *w = vbits_word(&st->pager, pgno, true);
	if (w)
		atomic_fetch_or_explicit(w, 1ull << (pgno % 64), memory_order_relaxed);
}

void pager_forget(struct store *st, pgno_t pgno, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		_Atomic uint64_t *w = vbits_word(&st->pager, pgno + i, false);
		if (w)
			atomic_fetch_and_explicit(w, ~(1ull << ((pgno + i) % 64)),
						  memory_order_relaxed);
	}
}

enum page_fault page_inspect(const uint8_t *p, pgno_t pgno, txnid_t expect_txnid,
			     unsigned expect_level, bool full, char *buf, size_t len)
{
	pgno_t named = ld64(p + PH_PGNO);
	if (full) {
		uint64_t sum = ld64(p + PH_CHECKSUM);
		if (sum != checksum64(p + 8, STORE_PAGE_SIZE - 8, pgno)) {
			/* a sound page written to the wrong place carries its own number's sum */
			if (named != pgno && sum == checksum64(p + 8, STORE_PAGE_SIZE - 8, named)) {
				snprintf(buf, len, "holds page %llu, intact (misdirected write)",
					 (unsigned long long)named);
				return PAGE_FAULT_MISDIRECTED;
			}
			snprintf(buf, len, "page checksum mismatch");
			return PAGE_FAULT_CHECKSUM;
		}
		if (named != pgno) {
			snprintf(buf, len, "page header names page %llu (misdirected write)",
				 (unsigned long long)named);
			return PAGE_FAULT_MISDIRECTED;
		}
	}
	if (page_txnid(p) != expect_txnid) {
		snprintf(buf, len, "page written by txn %llu, parent expects txn %llu "
			 "(lost or stale write)", (unsigned long long)page_txnid(p),
			 (unsigned long long)expect_txnid);
		return PAGE_FAULT_STALE;
	}
	unsigned want_type = expect_level ? PAGE_BRANCH : PAGE_LEAF;
	if (page_level(p) != expect_level || page_type(p) != want_type) {
		snprintf(buf, len, "page of type %u at level %u, parent expects a %s at level %u",
			 page_type(p), page_level(p), expect_level ? "branch" : "leaf",
			 expect_level);
		return PAGE_FAULT_LEVEL;
	}
	/* last: the header fields above say more about a page that is also malformed */
	const char *why = full ? page_check(p) : NULL;
	if (why) {
		snprintf(buf, len, "%s", why);
		return PAGE_FAULT_STRUCTURE;
	}
	return PAGE_FAULT_NONE;
}

const char *pager_check_page(const uint8_t *p, pgno_t pgno, txnid_t expect_txnid,
			     unsigned expect_level, bool full, char *buf, size_t len)
{
	return page_inspect(p, pgno, expect_txnid, expect_level, full, buf, len) ? buf : NULL;
}

int pager_get_slow(struct store *st, const struct mapping *map, uint64_t page_count,
		   pgno_t pgno, txnid_t expect_txnid, unsigned expect_level, const uint8_t **out)
{
	if (pgno < FIRST_DATA_PGNO || pgno >= page_count)
		return CORRUPT(st, pgno, "page number out of range (page_count %llu)",
			       (unsigned long long)page_count);
	const uint8_t *p = map->base + pgno * STORE_PAGE_SIZE;
	bool full = !vbits_test(&st->pager, pgno);
	char buf[160];
	const char *why = pager_check_page(p, pgno, expect_txnid, expect_level, full, buf,
					   sizeof(buf));
	if (why)
		return CORRUPT(st, pgno, "%s", why);
	if (full)
		pager_mark_verified(st, pgno);
	*out = p;
	return 0;
}

int pager_get_overflow(struct store *st, const struct mapping *map, uint64_t page_count,
		       pgno_t pgno, uint32_t vlen, uint64_t sum, const uint8_t **out)
{
	uint64_t n = ovf_pages(vlen);
	if (pgno < FIRST_DATA_PGNO || pgno >= page_count || n > page_count - pgno)
		return CORRUPT(st, pgno, "overflow run of %llu pages out of range (page_count "
			       "%llu)", (unsigned long long)n, (unsigned long long)page_count);
	const uint8_t *p = map->base + pgno * STORE_PAGE_SIZE;
	if (!vbits_test(&st->pager, pgno)) {
		if (checksum64(p, vlen, pgno) != sum)
			return CORRUPT(st, pgno, "overflow run checksum mismatch (%u bytes)", vlen);
		pager_mark_verified(st, pgno);
	}
	*out = p;
	return 0;
}

int pager_write(struct store *st, pgno_t pgno, const void *buf, size_t n)
{
	ssize_t r = io_pwrite(st->pager.file, buf, n * STORE_PAGE_SIZE, pgno * STORE_PAGE_SIZE);
	if (r < 0)
		return store_fail(st, (int)r);
	struct pager *pg = &st->pager;
	uint64_t off = pgno * STORE_PAGE_SIZE, end = off + n * STORE_PAGE_SIZE;
	if (end > pg->file_size)
		pg->file_size = end;
	if (pg->wb_bytes == 0 || off < pg->wb_lo)
		pg->wb_lo = off;
	if (pg->wb_bytes == 0 || end > pg->wb_hi)
		pg->wb_hi = end;
	pg->wb_bytes += end - off;
	if (pg->wb_bytes >= PAGER_WRITEBACK) {
		(void)io_writeback(pg->file, pg->wb_lo, pg->wb_hi - pg->wb_lo); /* a hint */
		pg->wb_bytes = 0;
	}
	return 0;
}
