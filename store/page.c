/*
 * store/page.c — search within a page, and the structural check (see page.h).
 *
 * page_search() compares through a key_probe (page.h): the search key's first words loaded once.
 * page_search_hint() finds the same index with interpolation first: the key's position between
 * the page's bounds (the parent's separators around it, else its own first and last keys),
 * read as numbers, guesses its slot; that cell and the neighbour its comparison points to are
 * probed, and a binary search finishes whatever they did not settle.  Keys are strictly
 * increasing, so an equal key found by any probe is the answer; otherwise the answer is known
 * only once the probes have pinned the boundary between a key below and a key above (both
 * sides of the guess are compared: a guess is never taken on trust).  btree_get uses it for
 * keys of at most 8 bytes: an inode tree's leaves hold consecutive inode numbers, where the
 * guess is the slot, so a lookup touches one or two cells of a cold leaf instead of log2(n)
 * (kvfs_get of 100-byte values among 100,000, callgrind with a 1 MiB last-level cache: 41.7
 * -> 32.3 D1 and 20.8 -> 16.6 LL misses, 3,441 -> 3,483 instructions per get).  Measured and
 * left out: dirents (parent + hex name: one miss less per get for ~450 instructions more)
 * and data blocks (inode + block: no fewer misses, 3,250 instructions more per 64 KiB get);
 * prefetching the next probes' cells during a binary search (no gain above the noise, ~240
 * instructions more per get).
 * page_check() is what lets every accessor in page.h trust a page: after it, every slot points
 * inside the page, every cell (header, key, inline value or overflow ref) lies within
 * [upper, 4096), leaf keys are 1..STORE_MAX_KEY bytes, branch cell 0 has an empty key, and
 * keys are strictly increasing.  pager_get() runs it once per page (the verified bitmap).
 */
#include "store/page.h"

/* The key of cell i (a leaf's or a branch's). */
static inline const uint8_t *cell_key(const uint8_t *p, bool leaf, unsigned i, size_t *len)
{
	const uint8_t *c = page_cell(p, i);
	if (leaf) {
		*len = leaf_klen(c);
		return leaf_key(c);
	}
	*len = branch_klen(c);
	return branch_key(c);
}

/* The slot in [s0, s1] that a key would take if the keys between a (at s0) and b (at s1) were
 * spread evenly: interpolation on the 8 bytes after the whole words that a and b share. */
static inline unsigned interp_slot(const uint8_t *a, size_t alen, const uint8_t *b,
				   size_t blen, const struct key_probe *kp, unsigned s0,
				   unsigned s1)
{
	size_t c = 0;
	while (c + 8 <= alen && c + 8 <= blen && key_word(a + c) == key_word(b + c))
		c += 8;
	uint64_t x0 = key_num(a, alen, c), x1 = key_num(b, blen, c);
	uint64_t x = c == 0 ? kp->w0 : c == 8 ? kp->w1 : key_num(kp->key, kp->len, c);
	if (x <= x0 || x1 <= x0)
		return s0;
	if (x >= x1)
		return s1;
	/* (x - x0) * (s1 - s0) / (x1 - x0) in 64 bits: keep 48 significant bits of the range
	 * (s1 - s0 < 2^15, a page's slots) */
	uint64_t d = x1 - x0, v = x - x0;
	int sh = 64 - __builtin_clzll(d) - 48;
	if (sh > 0) {
		d >>= sh;
		v >>= sh;
	}
	return s0 + (unsigned)(v * (s1 - s0) / d);
}

/*
 * The boundary both searches look for: the first index j in [L, H) whose key is >= the
 * probe (leaf) or > it (branch), H when none; the caller knows that j lies in [L, H].  A leaf's
 * answer is j, a branch's j - 1.  An equal key ends the search at once (keys are strictly
 * increasing: a leaf's equal key is j, a branch's is j - 1).  *exact: an equal key was met,
 * which is then the answer's.
 */
static inline int probe_cell(const uint8_t *p, bool leaf, unsigned i, const struct key_probe *kp)
{
	size_t len;
	const uint8_t *k = cell_key(p, leaf, i, &len);
	return key_probe_cmp(k, len, kp);
}

static unsigned bound_search(const uint8_t *p, bool leaf, unsigned L, unsigned H,
			     const struct key_probe *kp, bool *exact)
{
	while (L < H) {
		unsigned m = (L + H) / 2;
		int r = probe_cell(p, leaf, m, kp);
		if (r == 0) {
			*exact = true;
			return leaf ? m : m + 1;
		}
		if (r > 0)
			H = m;
		else
			L = m + 1;
	}
	return L;
}

unsigned page_search_hint(const uint8_t *p, const void *key, size_t klen,
			  const struct key_bound *lo, const struct key_bound *hi, bool *exact)
{
	unsigned n = page_nkeys(p);
	bool leaf = page_type(p) == PAGE_LEAF;
	unsigned first = leaf ? 0 : 1; /* the first cell with a key */
	if (n < first + 4)
		return page_search(p, key, klen, exact);
	struct key_probe kp;
	key_probe_init(&kp, key, klen);
	*exact = false;
	const uint8_t *a, *b;
	size_t alen, blen;
	unsigned s0 = 0, s1 = n;
	if (lo->set && lo->len) {
		a = lo->key;
		alen = lo->len;
	} else {
		a = cell_key(p, leaf, first, &alen);
		s0 = first;
	}
	if (hi->set && hi->len) {
		b = hi->key;
		blen = hi->len;
	} else {
		b = cell_key(p, leaf, n - 1, &blen);
		s1 = n - 1;
	}
	/* the guessed answer; probe its cell first, then the neighbour the result points to */
	unsigned g = interp_slot(a, alen, b, blen, &kp, s0, s1);
	if (g < first)
		g = first;
	if (g > n - 1)
		g = n - 1;
	/* two probes: the guess, then the neighbour its result points to (the guess is often one
	 * off: an absent key, or keys not quite evenly spread) */
	unsigned L = first, H = n, j, i = g;
	for (int t = 0; t < 2 && L < H; t++) {
		int r = probe_cell(p, leaf, i, &kp);
		if (r == 0) {
			*exact = true;
			j = leaf ? i : i + 1;
			goto out;
		}
		if (r > 0) {
			H = i;
			if (i == L)
				break;
			i--;
		} else {
			L = i + 1;
			if (L == H)
				break;
			i++;
		}
	}
	j = bound_search(p, leaf, L, H, &kp, exact);
out:
	return leaf ? j : j - 1;
}

unsigned page_search(const uint8_t *p, const void *key, size_t klen, bool *exact)
{
	unsigned n = page_nkeys(p);
	struct key_probe kp;
	key_probe_init(&kp, key, klen);
	*exact = false;
	if (page_type(p) == PAGE_LEAF) {
		unsigned lo = 0, hi = n;
		while (lo < hi) {
			unsigned mid = (lo + hi) / 2;
			const uint8_t *c = page_cell(p, mid);
			int r = key_probe_cmp(leaf_key(c), leaf_klen(c), &kp);
			if (r < 0) {
				lo = mid + 1;
			} else {
				if (r == 0)
					*exact = true;
				hi = mid;
			}
		}
		return lo;
	}
	/* Branch: last i in [1, n) with key_i <= key, else 0. */
	unsigned lo = 1, hi = n;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const uint8_t *c = page_cell(p, mid);
		int r = key_probe_cmp(branch_key(c), branch_klen(c), &kp);
		if (r <= 0) {
			if (r == 0)
				*exact = true;
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo - 1;
}

const char *page_check(const uint8_t *p)
{
	unsigned type = page_type(p), n = page_nkeys(p), upper = ld16(p + PH_UPPER);
	if (type != PAGE_LEAF && type != PAGE_BRANCH)
		return "bad page type";
	if (n == 0)
		return "page has no cells";
	if (type == PAGE_LEAF && page_level(p) != 0)
		return "leaf page with nonzero level";
	if (type == PAGE_BRANCH && page_level(p) == 0)
		return "branch page with level 0";
	if (ld16(p + 30) != 0)
		return "reserved header bytes not zero";
	if (upper > STORE_PAGE_SIZE || upper < PH_SIZE + 2 * n)
		return "cell area bound (upper) out of range";
	const uint8_t *pk = NULL;
	size_t pklen = 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned off = ld16(p + PH_SIZE + 2 * i);
		if (off < upper || off >= STORE_PAGE_SIZE)
			return "cell offset out of range";
		size_t room = STORE_PAGE_SIZE - off;
		const uint8_t *c = p + off;
		const uint8_t *k;
		size_t klen;
		if (type == PAGE_LEAF) {
			if (room < LC_HDR)
				return "leaf cell header past end of page";
			klen = leaf_klen(c);
			if (klen == 0 || klen > STORE_MAX_KEY)
				return "leaf key length out of range";
			if (c[3] != 0)
				return "leaf cell reserved byte not zero";
			size_t body;
			if (leaf_vtype(c) == VTYPE_INLINE)
				body = leaf_vlen(c);
			else if (leaf_vtype(c) == VTYPE_OVERFLOW)
				body = OVF_SIZE;
			else
				return "bad value type";
			if (leaf_vtype(c) == VTYPE_OVERFLOW && leaf_vlen(c) > STORE_MAX_VALUE)
				return "overflow value length out of range";
			if (LC_HDR + klen + body > room)
				return "leaf cell past end of page";
			k = leaf_key(c);
		} else {
			if (room < BC_HDR)
				return "branch cell header past end of page";
			klen = branch_klen(c);
			if (klen > STORE_MAX_KEY || (i == 0) != (klen == 0))
				return "branch key length out of range";
			if (BC_HDR + klen > room)
				return "branch cell past end of page";
			k = branch_key(c);
		}
		if (i > 0 && pk && key_cmp(pk, pklen, k, klen) >= 0)
			return "keys out of order";
		if (klen) {
			pk = k;
			pklen = klen;
		}
	}
	return NULL;
}
