/*
 * store/page.c — search within a page, and the structural check (see page.h).
 *
 * page_search() compares through a key_probe (page.h): the search key's first words loaded once.
 * page_check() is what lets every accessor in page.h trust a page: after it, every slot points
 * inside the page, every cell (header, key, inline value or overflow ref) lies within
 * [upper, 4096), leaf keys are 1..STORE_MAX_KEY bytes, branch cell 0 has an empty key, and
 * keys are strictly increasing.  pager_get() runs it once per page (the verified bitmap).
 */
#include "store/page.h"

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
