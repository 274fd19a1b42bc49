/*
 * store/page.h — reading branch and leaf pages (PAGE HEADER, LEAF CELL, BRANCH CELL of
 * man/kvfs.5): accessors, binary search, and the structural check run once per page before
 * any accessor trusts its offsets.  Writing pages is node.c's (pages are built whole from an
 * in-memory node, never edited in place).
 */
#ifndef KVFS_STORE_PAGE_H
#define KVFS_STORE_PAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "store/format.h"

static inline unsigned page_type(const uint8_t *p) { return p[PH_TYPE]; }
static inline unsigned page_level(const uint8_t *p) { return p[PH_LEVEL]; }
static inline unsigned page_nkeys(const uint8_t *p) { return ld16(p + PH_NKEYS); }
static inline txnid_t page_txnid(const uint8_t *p) { return ld64(p + PH_TXNID); }
static inline const uint8_t *page_cell(const uint8_t *p, unsigned i)
{
	return p + ld16(p + PH_SIZE + 2 * i);
}

/* Leaf cells. */
static inline unsigned leaf_klen(const uint8_t *c) { return ld16(c + LC_KLEN); }
static inline const uint8_t *leaf_key(const uint8_t *c) { return c + LC_KEY; }
static inline unsigned leaf_vtype(const uint8_t *c) { return c[LC_VTYPE]; }
static inline uint32_t leaf_vlen(const uint8_t *c) { return ld32(c + LC_VLEN); }
static inline const uint8_t *leaf_val(const uint8_t *c) { return c + LC_KEY + leaf_klen(c); }

/* Branch cells. */
static inline pgno_t branch_child(const uint8_t *c) { return ld64(c + BC_CHILD_PGNO); }
static inline txnid_t branch_child_txnid(const uint8_t *c) { return ld64(c + BC_CHILD_TXNID); }
static inline unsigned branch_klen(const uint8_t *c) { return ld16(c + BC_KLEN); }
static inline const uint8_t *branch_key(const uint8_t *c) { return c + BC_KEY; }

/* Key order: unsigned bytes, a proper prefix first. */
static inline int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* A separator bound of a subtree: keys k with lo <= k < hi (an unset bound is open). */
struct key_bound {
	const uint8_t *key;
	size_t len;
	bool set;
};

static inline bool key_in_bounds(const uint8_t *k, size_t klen, const struct key_bound *lo,
				 const struct key_bound *hi)
{
	if (lo->set && key_cmp(k, klen, lo->key, lo->len) < 0)
		return false;
	if (hi->set && key_cmp(k, klen, hi->key, hi->len) >= 0)
		return false;
	return true;
}

/* Pages a value of vlen bytes takes in an overflow run. */
static inline uint64_t ovf_pages(uint64_t vlen) { return (vlen + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE; }

/*
 * Leaf: index of the first cell whose key is >= key (nkeys when none); *exact when equal.
 * Branch: index of the child whose range holds key (the last cell with key <= key; cell 0's
 * key is minus infinity).
 */
unsigned page_search(const uint8_t *p, const void *key, size_t klen, bool *exact);

/* Check offsets, lengths and key order of a branch or leaf page whose checksum held.
 * NULL when sound, else what is wrong. */
const char *page_check(const uint8_t *p);

#endif
