/*
 * store/store_int.h — the store's internal structures, shared by its modules (pager, meta,
 * node, btree, freelist, txn, verify).  Nothing outside store/ includes this file.
 *
 * Locks and ownership:
 *   - st->write_lock is held by the one write transaction from begin to commit/abort; every
 *     field marked "writer" is protected by it.
 *   - Readers never lock: they read the published meta (st->pub[], st->pub_txnid) and the
 *     mapping (st->pager.map) through atomics, and register their snapshot in a reader slot
 *     so that the writer does not reuse pages they can still reach (see txn.c).
 */
#ifndef KVFS_STORE_INT_H
#define KVFS_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/format.h"
#include "store/inspect.h"
#include "store/store.h"

/* u64 words of a struct meta, for atomic publication */
#define META_WORDS (14 + 2 * META_DEFERRED_MAX)

/* ---- corruption and logging ---- */

void store_logf(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int store_corrupt(struct store *st, pgno_t pgno, const char *file, int line, const char *fmt,
		  ...) __attribute__((format(printf, 5, 6)));
/* Log "store PATH: page N: what (file:line)" and evaluate to -EUCLEAN. */
#define CORRUPT(st, pgno, ...) store_corrupt((st), (pgno), __FILE__, __LINE__, __VA_ARGS__)

/* ---- pager.c: the mapping, page checks, page writes, file size ---- */

struct mapping {
	const uint8_t *base;
	size_t reserve; /* bytes of address space */
	struct mapping *older; /* kept until close: old snapshots may still read through it */
};

#define VBITS_CHUNK_PAGES (1u << 23) /* pages covered by one bitmap chunk (32 GiB) */
#define VBITS_CHUNKS 4096            /* up to 128 TiB of file */

struct pager {
	struct io_file *file;
	_Atomic(struct mapping *) map;
	uint64_t file_size; /* writer: bytes, as last set by us */
	/* writer: what pager_write wrote since its last writeback hint, in bytes, and the span
	 * of file offsets [wb_lo, wb_hi) it lies in ("Writeback" in pager.c) */
	uint64_t wb_bytes, wb_lo, wb_hi;
	/* One bit per page: the page's checksum and structure were verified (or the page was
	 * written by this process).  Pages are immutable while reachable, so a bit stays true
	 * until the page is freed and reused, when the writer clears it. */
	_Atomic(_Atomic uint64_t *) vbits[VBITS_CHUNKS];
};

int pager_init(struct store *st, struct io_file *file, uint64_t file_size);
void pager_destroy(struct pager *pg);
/* Make sure the mapping covers `pages` pages (grows it by remapping; old mappings stay). */
int pager_ensure_map(struct store *st, uint64_t pages);
/* Make the file at least `pages` pages long (allocating in chunks). */
int pager_ensure_size(struct store *st, uint64_t pages);
/* Shrink the file when its tail beyond `pages` pages is large. */
int pager_trim(struct store *st, uint64_t pages);
/*
 * Return the page `pgno` of a snapshot after checking it: within page_count, checksum,
 * header pgno and txnid (== expect_txnid), level (== expect_level), structure.  *out points
 * into the mapping.  0 or -EUCLEAN.
 */
int pager_get_slow(struct store *st, const struct mapping *map, uint64_t page_count,
		   pgno_t pgno, txnid_t expect_txnid, unsigned expect_level, const uint8_t **out);

/* Check and return an overflow run (pgno, ceil(vlen/4096) pages) holding `vlen` bytes. */
int pager_get_overflow(struct store *st, const struct mapping *map, uint64_t page_count,
		       pgno_t pgno, uint32_t vlen, uint64_t sum, const uint8_t **out);
/* Write `n` whole pages at pgno (a finished tree page, or an overflow run). 0 or -errno. */
int pager_write(struct store *st, pgno_t pgno, const void *buf, size_t n);
/* Forget that a page (run) was verified: it is being reused. */
void pager_forget(struct store *st, pgno_t pgno, uint64_t n);
void pager_mark_verified(struct store *st, pgno_t pgno);
/* The current mapping. */
static inline struct mapping *pager_map(struct pager *pg)
{
	return atomic_load_explicit(&pg->map, memory_order_acquire);
}

/* ---- meta.c ---- */

void meta_to_words(const struct meta *m, uint64_t w[META_WORDS]);
void meta_from_words(const uint64_t w[META_WORDS], struct meta *m);

/* ---- readers (txn.c) ---- */

#define READER_CHUNK 64
struct reader_slot {
	_Atomic uint64_t txnid;    /* 0: free; else the snapshot's txnid */
	_Atomic uint64_t since_ns; /* CLOCK_MONOTONIC at begin */
	_Atomic int busy;          /* claimed by a transaction */
};
struct reader_chunk {
	struct reader_slot slot[READER_CHUNK];
	_Atomic(struct reader_chunk *) next;
};

/* ---- the store ---- */

struct store {
	char *path;
	unsigned flags;
	struct io_env *env;
	struct io_file *file;
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
	struct pager pager;

	pthread_mutex_t write_lock;
	/* Published state: the last commit.  pub[t & 1] holds commit t's meta; pub_txnid is t. */
	_Atomic uint64_t pub[2][META_WORDS];
	_Atomic uint64_t pub_seq[2]; /* seqlock of pub[i]: odd while it is being written */
	_Atomic uint64_t pub_txnid;

	struct meta meta;        /* writer: last commit (== published) */
	/* txnid in each meta slot on disk (0: invalid or unknown); written by the writer */
	_Atomic uint64_t disk_txnid[2];
	uint64_t disk_pages[2];  /* writer: page_count in each meta slot on disk */
	bool unsynced;           /* writer: commits since the last durable one */
	uint64_t compact_at;     /* writer: free pages at which the next commit loads every
				    reusable chunk to cut the file's free tail (freelist.c) */
	_Atomic int failed;      /* sticky -errno after a failed write or sync */

	struct reader_chunk readers; /* first chunk inline; more appended, never freed */

	_Atomic uint64_t n_commits, n_syncs;

	struct arena_chunk *arena_cache; /* writer: chunks kept between transactions */
	size_t arena_cached;             /* writer: their bytes */
	uint8_t *staging;                /* writer: STAGING_BYTES for coalesced page writes */
};

#define STAGING_BYTES (1u << 20)

static inline bool pager_verified(struct pager *pg, pgno_t pgno)
{
	uint64_t ci = pgno / VBITS_CHUNK_PAGES;
	if (ci >= VBITS_CHUNKS)
		return false;
	_Atomic uint64_t *c = atomic_load_explicit(&pg->vbits[ci], memory_order_acquire);
	return c && (atomic_load_explicit(&c[(pgno % VBITS_CHUNK_PAGES) / 64],
					  memory_order_relaxed) >> (pgno % 64) & 1);
}
/* The hot path of pager_get: a verified page that meets its parent's expectation. */
static inline int pager_get(struct store *st, const struct mapping *map, uint64_t page_count,
			    pgno_t pgno, txnid_t expect_txnid, unsigned expect_level,
			    const uint8_t **out)
{
	/* the address only once pgno is known in range: base + a corrupt pgno can overflow */
	if (pgno >= FIRST_DATA_PGNO && pgno < page_count && pager_verified(&st->pager, pgno)) {
		const uint8_t *p = map->base + pgno * STORE_PAGE_SIZE;
		if (ld64(p + PH_TXNID) == expect_txnid && p[PH_LEVEL] == expect_level) {
			*out = p;
			return 0;
		}
	}
	return pager_get_slow(st, map, page_count, pgno, expect_txnid, expect_level, out);
}

/* Oldest snapshot txnid among live readers, or UINT64_MAX. */
txnid_t store_oldest_reader(struct store *st, uint64_t *since_ns, uint64_t *n_readers);
/* Mark the store failed with `err` (first error wins); returns err. */
int store_fail(struct store *st, int err);

#endif
