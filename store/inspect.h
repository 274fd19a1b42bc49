/*
 * store/inspect.h — the store's read-only inspection API: decoding meta pages and tree
 * records, and checking one tree page, on bytes the caller read itself.  For kvfs-check
 * (tools/check/), which must look at a damaged file page by page without opening it as a
 * store; the library's own modules use the same functions (one decoder, one page check).
 *
 * Layout: store/format.h and man/kvfs.5 "DATA FILE" (META PAGE, TREE RECORD, PAGE HEADER);
 * page accessors are store/page.h.  Nothing here touches a file or keeps state: every call
 * is a pure function of its arguments and safe from any thread.  Not installed.
 */
#ifndef KVFS_STORE_INSPECT_H
#define KVFS_STORE_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/format.h"
#include "store/store.h"

/* A decoded TREE RECORD. */
struct tree_rec {
	pgno_t root;         /* 0 for an empty tree */
	txnid_t root_txnid;  /* the txnid the root page's header must carry */
	uint32_t depth;      /* 0 empty, 1 the root is a leaf, at most 64 */
	uint32_t flags;      /* zero */
	uint64_t entries;    /* keys */
	uint64_t pages;      /* branch + leaf + overflow pages */
};

/* A decoded META PAGE. */
struct meta {
	txnid_t txnid;
	uint64_t page_count; /* pages of this state, meta pages included */
	lsn_t lsn;           /* log position the state includes */
	struct tree_rec catalog;
	struct tree_rec freedb;
	uint64_t free_pages; /* on the free list, deferred runs included */
	uint32_t n_deferred; /* 0..META_DEFERRED_MAX */
	struct { pgno_t pgno; uint64_t count; } deferred[META_DEFERRED_MAX];
};

/* Encode `m` as the meta page of `slot` (0 or 1; the checksum's seed) into page[4096]. */
void meta_encode(const struct meta *m, unsigned slot, uint8_t *page);

/*
 * Decode and check the meta page bytes page[4096] read from `slot` (0 or 1).  Returns 0 and
 * *m; or -EINVAL (not a kvfs store: magic), -EPROTONOSUPPORT (format version or page size
 * this build cannot read), -EUCLEAN (checksum, or fields out of range); *why (static text)
 * then says what failed.
 */
int meta_decode(const uint8_t *page, unsigned slot, struct meta *m, const char **why);

void trec_encode(const struct tree_rec *r, uint8_t *p);
/* Decode a TREE RECORD (TREC_SIZE bytes); no check (meta_decode checks its own two). */
void trec_decode(const uint8_t *p, struct tree_rec *r);

/* What is wrong with a tree page, in the order page_inspect tests it. */
enum page_fault {
	PAGE_FAULT_NONE = 0,
	PAGE_FAULT_CHECKSUM,    /* the bytes do not match the checksum (a torn or rotten page) */
	PAGE_FAULT_MISDIRECTED, /* the header names another page: a write meant for that page
				   landed here (also when the checksum holds only for that one) */
	PAGE_FAULT_STALE,       /* another txnid than the parent expects: a lost write */
	PAGE_FAULT_LEVEL,       /* another level, or a type that does not fit the level */
	PAGE_FAULT_STRUCTURE,   /* offsets, lengths, in-page key order (page_check) */
};

/*
 * Check the page bytes p[4096] read from page `pgno` against its parent's expectation: with
 * `full`, checksum and the header's page number; always the header's txnid (==
 * expect_txnid), level (== expect_level) and type (leaf at level 0, else branch); with `full`
 * last the page's structure (page_check).  Returns PAGE_FAULT_NONE, or the first fault found
 * with a message in buf[len] (len >= 1).
 */
enum page_fault page_inspect(const uint8_t *p, pgno_t pgno, txnid_t expect_txnid,
			     unsigned expect_level, bool full, char *buf, size_t len);

/* page_inspect as text: NULL when sound, else buf. */
const char *pager_check_page(const uint8_t *p, pgno_t pgno, txnid_t expect_txnid,
			     unsigned expect_level, bool full, char *buf, size_t len);

#endif
