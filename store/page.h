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

/*
 * Key order: unsigned bytes, a proper prefix first.  Returns <0, 0 or >0 (only the sign means
 * anything).  Every search (page_search, node_search, the overlay) runs through it, and the
 * engine's keys are short (8 bytes for an inode, 8 + a name for a dirent), where a call to
 * memcmp costs more than the comparison: so 8 bytes at a time, loaded as big-endian words (the
 * first differing word decides, as its first differing byte would), the tail bytewise, and
 * memcmp only for long keys.
 */
static inline int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	const uint8_t *x = a, *y = b;
	size_t n = alen < blen ? alen : blen, i = 0;
	if (n > 64) {
		int c = memcmp(x, y, n);
		if (c)
			return c;
		return alen < blen ? -1 : alen > blen;
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t u, v;
		memcpy(&u, x + i, 8);
		memcpy(&v, y + i, 8);
		if (u != v) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			u = __builtin_bswap64(u);
			v = __builtin_bswap64(v);
#endif
			return u < v ? -1 : 1;
		}
	}
	for (; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return alen < blen ? -1 : alen > blen;
}

/*
 * A search key prepared for the many comparisons of one search (page_search,
 * page_search_hint, node_search): its first two 8-byte words, big-endian and zero-padded past
 * the key's end, loaded once.  A probe compares a cell's words, padded the same way, with
 * them: padded words that differ order the keys as the bytes do (where one key has ended,
 * its zero padding is below the other's byte, or equal to a zero byte, which does not
 * differ); words that tie leave the rest, and the lengths, to decide.  The engine's keys
 * (8-byte inode numbers and a branch's shorter separators for them; a dirent's parent +
 * name) mostly differ within those 16 bytes.
 */
struct key_probe {
	const uint8_t *key;
	size_t len;
	uint64_t w0, w1; /* key_num(key, len, 0) and key_num(key, len, 8) */
};

static inline uint64_t key_word(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* Bytes off..off+7 of k (len bytes), big-endian, zero-padded past len: never reads k[len]. */
static inline uint64_t key_num(const uint8_t *k, size_t len, size_t off)
{
	if (off + 8 <= len)
		return key_word(k + off);
	if (off >= len)
		return 0;
	size_t m = len - off; /* 1..7 bytes: overlapping loads, no loop */
	k += off;
	if (m >= 4) {
		uint32_t h, t;
		memcpy(&h, k, 4);
		memcpy(&t, k + m - 4, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		h = __builtin_bswap32(h);
		t = __builtin_bswap32(t);
#endif
		return (uint64_t)h << 32 | (uint64_t)t << (64 - 8 * m);
	}
	return (uint64_t)k[0] << 56 | (uint64_t)k[m / 2] << (56 - 8 * (m / 2)) |
	       (uint64_t)k[m - 1] << (64 - 8 * m);
}

static inline void key_probe_init(struct key_probe *kp, const void *key, size_t len)
{
	kp->key = key;
	kp->len = len;
	kp->w0 = key_num(kp->key, len, 0);
	kp->w1 = key_num(kp->key, len, 8);
}

/* key_cmp(k, klen, kp->key, kp->len) (the sign). */
static inline int key_probe_cmp(const uint8_t *k, size_t klen, const struct key_probe *kp)
{
	uint64_t w = key_num(k, klen, 0);
	if (w != kp->w0)
		return w < kp->w0 ? -1 : 1;
	if (klen <= 8 || kp->len <= 8) /* the shorter is a prefix of the longer */
		return klen < kp->len ? -1 : klen > kp->len;
	w = key_num(k, klen, 8);
	if (w != kp->w1)
		return w < kp->w1 ? -1 : 1;
	if (klen <= 16 || kp->len <= 16)
		return klen < kp->len ? -1 : klen > kp->len;
	return key_cmp(k + 16, klen - 16, kp->key + 16, kp->len - 16);
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
static inline uint64_t ovf_pages(uint64_t vlen)
{
	return (vlen + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE;
}

/*
 * Leaf: index of the first cell whose key is >= key (nkeys when none); *exact when equal.
 * Branch: index of the child whose range holds key (the last cell with key <= key; cell 0's
 * key is minus infinity).
 */
unsigned page_search(const uint8_t *p, const void *key, size_t klen, bool *exact);

/*
 * page_search's answer (the same index and *exact, for any bounds), found with fewer cache
 * lines touched when the page's keys are spread evenly over its key range, as an inode
 * tree's dense 8-byte inode numbers are: the first probe is the slot that interpolation
 * guesses, the second its neighbour, and a binary search over what is left follows.
 * lo and hi are the bounds of the page's subtree that the descent met in the parent
 * (lo <= every key of the page < hi); an unset one is replaced by the page's own first or
 * last key.  They only steer the guess: wrong bounds (a corrupt parent) cost probes, never
 * a wrong answer.  The guess reads the keys as numbers: the 8 bytes after the whole
 * 8-byte words that the bounds share, big-endian, zero-padded (key_num).  btree_get uses it
 * for keys of at most 8 bytes (page.c: measured).  Pure; any thread.
 */
unsigned page_search_hint(const uint8_t *p, const void *key, size_t klen,
			  const struct key_bound *lo, const struct key_bound *hi, bool *exact);

/* Check offsets, lengths and key order of a branch or leaf page whose checksum held.
 * NULL when sound, else what is wrong. */
const char *page_check(const uint8_t *p);

#endif
