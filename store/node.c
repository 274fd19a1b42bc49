/*
 * store/node.c — materializing pages into nodes, and writing nodes back as pages at commit:
 * rebalance (merge underfull nodes), pack (merge runs of changed leaves, so that they are cut
 * into pages together), spill (split and write bottom-up).  See node.h.
 *
 * Invariants kept here:
 *   N-1  a materialized node's ancestors are all materialized, so a search that reaches a
 *        page never meets a node below it;
 *   N-2  a branch node's entry 0 carries its parent's separator for it (minus infinity at the
 *        left edge), so a node can be merged into its left sibling with correct separators;
 *   N-3  a node's source page is freed exactly once, when it is materialized (INV-2);
 *   N-4  a page written by spill carries the committing txnid, and its parent entry records
 *        that txnid and the page number (the parent's expectation of its child).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"
#include "store/page.h"
#include "store/txn.h"

size_t ent_size(const struct node *nd, const struct ent *e, unsigned index)
{
	if (node_is_leaf(nd))
		return 2 + LC_HDR + e->klen + (e->vtype == VTYPE_INLINE ? e->vlen : OVF_SIZE);
	return 2 + BC_HDR + (index == 0 ? 0 : e->klen);
}

size_t node_size(const struct node *nd)
{
	size_t s = 0;
	for (unsigned i = 0; i < nd->n; i++)
		s += ent_size(nd, &nd->e[i], i);
	return s;
}

static int node_reserve(struct node *nd, uint32_t need)
{
	if (need <= nd->cap)
		return 0;
	uint32_t cap = nd->cap ? nd->cap * 2 : 16;
	while (cap < need)
		cap *= 2;
	struct ent *e = realloc(nd->e, cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	nd->e = e;
	nd->cap = cap;
	return 0;
}

struct node *node_new(struct store_tree *t, unsigned level)
{
	struct node *nd = calloc(1, sizeof(*nd));
	if (!nd)
		return NULL;
	nd->level = level;
	nd->tree = t;
	nd->all_next = t->txn->nodes;
	t->txn->nodes = nd;
	t->txn->n_pages++;
	return nd;
}

int node_insert(struct node *nd, unsigned idx, const struct ent *e)
{
	int r = node_reserve(nd, nd->n + 1);
	if (r < 0)
		return r;
	memmove(&nd->e[idx + 1], &nd->e[idx], (nd->n - idx) * sizeof(*e));
	nd->e[idx] = *e;
	nd->n++;
	if (!node_is_leaf(nd) && e->child_node)
		e->child_node->parent = nd;
	return 0;
}

void node_remove(struct node *nd, unsigned idx)
{
	memmove(&nd->e[idx], &nd->e[idx + 1], (nd->n - idx - 1) * sizeof(nd->e[0]));
	nd->n--;
	nd->unbalanced = true;
}

unsigned node_search(const struct node *nd, const void *key, size_t klen, bool *exact)
{
	struct key_probe kp;
	key_probe_init(&kp, key, klen);
	*exact = false;
	if (node_is_leaf(nd)) {
		unsigned lo = 0, hi = nd->n;
		while (lo < hi) {
			unsigned mid = (lo + hi) / 2;
			int r = key_probe_cmp(nd->e[mid].key, nd->e[mid].klen, &kp);
			if (r < 0) {
				lo = mid + 1;
			} else {
				*exact |= r == 0;
				hi = mid;
			}
		}
		return lo;
	}
	unsigned lo = 1, hi = nd->n;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		int r = key_probe_cmp(nd->e[mid].key, nd->e[mid].klen, &kp);
		if (r <= 0) {
			*exact |= r == 0;
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo - 1;
}

/*
 * Materialize child `idx` of `parent` (or the tree's root when parent is NULL) from its page.
 * N-1 holds because callers descend from the root.
 */
int node_load(struct store_tree *t, struct node *parent, unsigned idx, struct node **out)
{
	struct store_txn *txn = t->txn;
	pgno_t pgno;
	txnid_t expect;
	unsigned level;
	if (parent) {
		if (parent->e[idx].child_node) {
			*out = parent->e[idx].child_node;
			return 0;
		}
		pgno = parent->e[idx].child;
		expect = parent->e[idx].child_txnid;
		level = parent->level - 1;
	} else {
		if (t->root) {
			*out = t->root;
			return 0;
		}
		pgno = t->rec.root;
		expect = t->rec.root_txnid;
		level = t->rec.depth - 1;
	}
	const uint8_t *p;
	int r = pager_get(txn->st, txn_map(txn), txn->meta.page_count, pgno, expect, level, &p);
	if (r < 0)
		return r;
	struct node *nd = node_new(t, level);
	if (!nd)
		return -ENOMEM;
	unsigned n = page_nkeys(p);
	if ((r = node_reserve(nd, n)) < 0)
		return r;
	nd->pgno = pgno;
	nd->parent = parent;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *c = page_cell(p, i);
		struct ent *e = &nd->e[i];
		memset(e, 0, sizeof(*e));
		if (level == 0) {
			e->klen = leaf_klen(c);
			e->key = leaf_key(c);
			e->vtype = (uint8_t)leaf_vtype(c);
			e->vlen = leaf_vlen(c);
			if (e->vtype == VTYPE_INLINE) {
				e->val = leaf_val(c);
			} else {
				const uint8_t *o = leaf_val(c);
				e->ovf_pgno = ld64(o + OVF_PGNO);
				e->ovf_txnid = ld64(o + OVF_TXNID);
				e->ovf_sum = ld64(o + OVF_CHECKSUM);
			}
		} else {
			e->klen = branch_klen(c);
			e->key = branch_key(c);
			e->child = branch_child(c);
			e->child_txnid = branch_child_txnid(c);
		}
	}
	nd->n = n;
	if (level > 0) { /* N-2 */
		if (parent) {
			nd->e[0].key = parent->e[idx].key;
			nd->e[0].klen = parent->e[idx].klen;
		} else {
			nd->e[0].key = NULL;
			nd->e[0].klen = 0;
		}
	}
	if (parent)
		parent->e[idx].child_node = nd;
	else
		t->root = nd;
	t->rec.pages--;
	r = freelist_free(txn, pgno, 1, expect); /* N-3 */
	if (r < 0)
		return r;
	*out = nd;
	return 0;
}

static unsigned child_index(const struct node *parent, const struct node *child)
{
	for (unsigned i = 0; i < parent->n; i++)
		if (parent->e[i].child_node == child)
			return i;
	abort(); /* N-1 broken: a program bug, not bad input */
}

/*
 * Split a node that grew past NODE_SPLIT_ENTRIES into two nodes in memory, so that inserts stay
 * cheap in a transaction that adds many keys below one page (spill still cuts nodes to pages
 * at commit).  The right half is a new node (no source page); the parent gets an entry for it,
 * splitting in turn, and a root that splits gets a new root above it.
 */
int node_split(struct store_tree *t, struct node *nd)
{
	while (nd->n > NODE_SPLIT_ENTRIES) {
		struct node *right = node_new(t, nd->level);
		if (!right)
			return -ENOMEM;
		unsigned half = nd->n / 2, moved = nd->n - half;
		int r = node_reserve(right, moved);
		if (r < 0)
			return r;
		memcpy(right->e, nd->e + half, moved * sizeof(nd->e[0]));
		right->n = moved;
		nd->n = half;
		if (!node_is_leaf(nd))
			for (unsigned i = 0; i < moved; i++)
				if (right->e[i].child_node)
					right->e[i].child_node->parent = right;
		struct ent sep;
		memset(&sep, 0, sizeof(sep));
		sep.key = right->e[0].key; /* N-2: right's entry 0 keeps this key */
		sep.klen = right->e[0].klen;
		sep.child_node = right;
		struct node *parent = nd->parent;
		if (!parent) {
			if (nd->level + 2 > MAX_DEPTH)
				return -EFBIG;
			parent = node_new(t, nd->level + 1);
			if (!parent)
				return -ENOMEM;
			struct ent left;
			memset(&left, 0, sizeof(left));
			left.child_node = nd;
			if ((r = node_insert(parent, 0, &left)) < 0)
				return r;
			t->root = parent;
			t->rec.depth++;
		}
		if ((r = node_insert(parent, child_index(parent, nd) + 1, &sep)) < 0)
			return r;
		nd = parent;
	}
	return 0;
}

static void node_kill(struct node *nd)
{
	nd->n = 0;
	nd->unbalanced = false;
	nd->parent = NULL;
	nd->level = ~0u; /* marks a dead node: skipped by rebalance */
}

static int node_rebalance(struct store_tree *t, struct node *nd)
{
	if (!nd->unbalanced || nd->level == ~0u)
		return 0;
	nd->unbalanced = false;
	bool leaf = node_is_leaf(nd);
	if (node_size(nd) > PAGE_USABLE / 4 && nd->n > (leaf ? 1u : 2u))
		return 0;
	struct node *parent = nd->parent;
	if (!parent) {
		if (!leaf && nd->n == 1) { /* collapse a root with one child */
			struct node *child;
			int r = node_load(t, nd, 0, &child);
			if (r < 0)
				return r;
			child->parent = NULL;
			t->root = child;
			t->rec.depth--;
			node_kill(nd);
			child->unbalanced = true;
			return node_rebalance(t, child);
		}
		if (nd->n == 0) { /* the tree is empty */
			t->root = NULL;
			t->rec.depth = 0;
			t->rec.root = 0;
			t->rec.root_txnid = 0;
			node_kill(nd);
		}
		return 0;
	}
	unsigned i = child_index(parent, nd);
	if (nd->n == 0) {
		node_remove(parent, i);
		node_kill(nd);
		return node_rebalance(t, parent);
	}
	/* Merge with a sibling: nd's right sibling into nd when nd is leftmost, else nd into its
	 * left sibling.  A merged node past a page is split again at spill, which makes this a
	 * redistribution. */
	struct node *left, *right;
	unsigned ri;
	if (i == 0) {
		if (parent->n < 2)
			return node_rebalance(t, parent);
		int r = node_load(t, parent, 1, &right);
		if (r < 0)
			return r;
		left = nd;
		ri = 1;
	} else {
		int r = node_load(t, parent, i - 1, &left);
		if (r < 0)
			return r;
		right = nd;
		ri = i;
	}
	int r = node_reserve(left, left->n + right->n);
	if (r < 0)
		return r;
	for (unsigned k = 0; k < right->n; k++) {
		left->e[left->n + k] = right->e[k];
		if (!leaf && right->e[k].child_node)
			right->e[k].child_node->parent = left;
	}
	left->n += right->n;
	node_remove(parent, ri);
	node_kill(right);
	return node_rebalance(t, parent);
}

int node_rebalance_tree(struct store_tree *t)
{
	for (struct node *nd = t->txn->nodes; nd; nd = nd->all_next) {
		if (nd->tree != t || nd->level == ~0u)
			continue;
		int r = node_rebalance(t, nd);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Cut runs of changed neighbouring leaves into pages together (at commit, before spill).
 * Spill cuts each node into ceil(size / page) equal pieces: a leaf that random inserts took
 * to 1.1 pages became two pages 55 % full, and a tree of random keys stayed about 68 % full
 * (kvfs-check: 100,000 dirents with embedded inodes, where the last checkpoint of a fill adds
 * a few entries to nearly every leaf).  Leaves that are nodes in this transaction are all
 * written anyway, so merging a leaf with the changed leaves to its right (their entries are
 * in key order, the parent's separators between them dropped) costs no write: the run's
 * bytes are cut into ceil(total / page) pieces instead of the sum of each leaf's.  A run is
 * at most PACK_RUN_MAX bytes, so that a merged node stays a few pages.  A leaf still a page
 * (not changed) is never loaded for this: that would cost its rewrite.  A parent that lost
 * entries is rebalanced again afterwards (node_pack_tree): two leaves merged into one page
 * could otherwise leave a root branch with one child, a level that no later transaction
 * removes (review H19).  The free-list tree, whose spill node_spill_estimate bounds, is not
 * packed (freelist.c commits it itself).
 */
#define PACK_RUN_MAX (8u * PAGE_USABLE)

static void node_pack(struct node *nd)
{
	struct node *parent = nd->parent;
	if (nd->level != 0 || !parent)
		return;
	unsigned i = child_index(parent, nd);
	size_t size = node_size(nd);
	while (i + 1 < parent->n) {
		struct node *right = parent->e[i + 1].child_node;
		if (!right || right->level != 0)
			break;
		size_t rs = node_size(right);
		if (size + rs > PACK_RUN_MAX || node_reserve(nd, nd->n + right->n) < 0)
			break; /* out of memory: the leaves are cut one by one, as before */
		memcpy(nd->e + nd->n, right->e, right->n * sizeof(right->e[0]));
		nd->n += right->n;
		size += rs;
		node_remove(parent, i + 1);
		node_kill(right);
	}
}

int node_pack_tree(struct store_tree *t)
{
	for (struct node *nd = t->txn->nodes; nd; nd = nd->all_next)
		if (nd->tree == t && nd->level != ~0u)
			node_pack(nd);
	/* node_remove marked the parents that lost entries unbalanced */
	return node_rebalance_tree(t);
}

/* Serialize ents [from, to) of nd as page pgno. */
static void node_write_page(const struct node *nd, unsigned from, unsigned to, pgno_t pgno,
			    txnid_t txnid, uint8_t *p)
{
	memset(p, 0, STORE_PAGE_SIZE);
	st64(p + PH_PGNO, pgno);
	st64(p + PH_TXNID, txnid);
	p[PH_TYPE] = node_is_leaf(nd) ? PAGE_LEAF : PAGE_BRANCH;
	p[PH_LEVEL] = (uint8_t)nd->level;
	st16(p + PH_NKEYS, (uint16_t)(to - from));
	unsigned upper = STORE_PAGE_SIZE;
	for (unsigned i = from; i < to; i++) {
		const struct ent *e = &nd->e[i];
		unsigned sz = (unsigned)ent_size(nd, e, i - from) - 2;
		upper -= sz;
		uint8_t *c = p + upper;
		if (node_is_leaf(nd)) {
			st16(c + LC_KLEN, (uint16_t)e->klen);
			c[LC_VTYPE] = e->vtype;
			st32(c + LC_VLEN, e->vlen);
			memcpy(c + LC_KEY, e->key, e->klen);
			uint8_t *v = c + LC_KEY + e->klen;
			if (e->vtype == VTYPE_INLINE) {
				if (e->vlen)
					memcpy(v, e->val, e->vlen);
			} else {
				st64(v + OVF_PGNO, e->ovf_pgno);
				st64(v + OVF_TXNID, e->ovf_txnid);
				st64(v + OVF_CHECKSUM, e->ovf_sum);
			}
		} else {
			unsigned klen = i == from ? 0 : e->klen;
			st64(c + BC_CHILD_PGNO, e->child);
			st64(c + BC_CHILD_TXNID, e->child_txnid);
			st16(c + BC_KLEN, (uint16_t)klen);
			if (klen)
				memcpy(c + BC_KEY, e->key, klen);
		}
		st16(p + PH_SIZE + 2 * (i - from), (uint16_t)upper);
	}
	st16(p + PH_UPPER, (uint16_t)upper);
	st64(p + PH_CHECKSUM, checksum64(p + 8, STORE_PAGE_SIZE - 8, pgno));
}

/* Where to cut nd's entries into pages: fills cut[] with piece ends, returns the count. */
static unsigned node_split_points(const struct node *nd, unsigned *cut, unsigned max)
{
	size_t total = 0;
	for (unsigned i = 0; i < nd->n; i++)
		total += ent_size(nd, &nd->e[i], i == 0 ? 0 : 1);
	size_t pieces = (total + PAGE_USABLE - 1) / PAGE_USABLE;
	if (pieces < 1)
		pieces = 1;
	size_t target = (total + pieces - 1) / pieces;
	unsigned np = 0;
	size_t cur = 0;
	unsigned start = 0;
	for (unsigned i = 0; i < nd->n; i++) {
		size_t sz = ent_size(nd, &nd->e[i], i == start ? 0 : 1);
		if (i > start && (cur + sz > PAGE_USABLE || cur >= target)) {
			if (np + 1 >= max)
				break;
			cut[np++] = i;
			start = i;
			cur = ent_size(nd, &nd->e[i], 0);
			continue;
		}
		cur += sz;
	}
	cut[np++] = nd->n;
	return np;
}

/* The shortest prefix of `b` that is still > `a` (a < b): a leaf separator. */
static uint32_t separator_len(const struct ent *a, const struct ent *b)
{
	uint32_t n = a->klen < b->klen ? a->klen : b->klen, i = 0;
	while (i < n && a->key[i] == b->key[i])
		i++;
	return i + 1 <= b->klen ? i + 1 : b->klen;
}

static int node_spill(struct store_tree *t, struct node *nd)
{
	struct store_txn *txn = t->txn;
	int r;
	if (!node_is_leaf(nd)) {
		/* Children first; each replaces its own entry in nd with its pieces. */
		for (unsigned i = 0; i < nd->n; i++) {
			struct node *c = nd->e[i].child_node;
			if (!c)
				continue;
			unsigned before = nd->n;
			if ((r = node_spill(t, c)) < 0)
				return r;
			i += nd->n - before; /* skip the pieces just inserted */
		}
	}
	unsigned *cuts = txn_alloc(txn, (nd->n + 1) * sizeof(*cuts));
	struct ent *pieces = txn_alloc(txn, (nd->n + 1) * sizeof(*pieces));
	if (!cuts || !pieces)
		return -ENOMEM;
	unsigned np = node_split_points(nd, cuts, nd->n + 1);
	unsigned from = 0;
	for (unsigned k = 0; k < np; k++) {
		pgno_t pgno;
		if ((r = freelist_alloc(txn, 1, &pgno)) < 0)
			return r;
		uint8_t *buf = txn_page_buffer(txn);
		if (!buf)
			return -ENOMEM;
		node_write_page(nd, from, cuts[k], pgno, txn->txnid, buf);
		if ((r = txn_write_page(txn, pgno, buf)) < 0)
			return r;
		t->rec.pages++;
		struct ent *pe = &pieces[k];
		memset(pe, 0, sizeof(*pe));
		pe->child = pgno;
		pe->child_txnid = txn->txnid; /* N-4 */
		pe->key = nd->e[from].key;
		pe->klen = nd->e[from].klen;
		if (k > 0 && node_is_leaf(nd))
			pe->klen = separator_len(&nd->e[from - 1], &nd->e[from]);
		from = cuts[k];
	}
	struct node *parent = nd->parent;
	if (parent) {
		unsigned i = child_index(parent, nd);
		parent->e[i].child = pieces[0].child;
		parent->e[i].child_txnid = pieces[0].child_txnid;
		parent->e[i].child_node = NULL;
		for (unsigned k = 1; k < np; k++) {
			pieces[k].key = txn_memdup(txn, pieces[k].key, pieces[k].klen);
			if (!pieces[k].key && pieces[k].klen)
				return -ENOMEM;
			if ((r = node_insert(parent, i + k, &pieces[k])) < 0)
				return r;
		}
		return 0;
	}
	if (np == 1) {
		t->rec.root = pieces[0].child;
		t->rec.root_txnid = pieces[0].child_txnid;
		t->rec.depth = nd->level + 1;
		t->root = NULL;
		return 0;
	}
	/* The root split: a new root above the pieces, spilled in turn. */
	if (nd->level + 2 > MAX_DEPTH)
		return -EFBIG;
	struct node *root = node_new(t, nd->level + 1);
	if (!root)
		return -ENOMEM;
	for (unsigned k = 0; k < np; k++) {
		if (k > 0) {
			pieces[k].key = txn_memdup(txn, pieces[k].key, pieces[k].klen);
			if (!pieces[k].key && pieces[k].klen)
				return -ENOMEM;
		} else {
			pieces[k].key = NULL;
			pieces[k].klen = 0;
		}
		if ((r = node_insert(root, k, &pieces[k])) < 0)
			return r;
	}
	t->root = root;
	return node_spill(t, root);
}

int node_spill_tree(struct store_tree *t)
{
	if (!t->root)
		return 0;
	if (t->root->n == 0) { /* emptied and not rebalanced: nothing to write */
		t->root = NULL;
		t->rec.root = 0;
		t->rec.root_txnid = 0;
		t->rec.depth = 0;
		return 0;
	}
	return node_spill(t, t->root);
}

/* Pages a node's spill can take, its subtree's included: spill cuts a node of `size` bytes
 * into at most ceil(size / PAGE_USABLE) + 1 pieces (node_split_points aims at equal pieces
 * under a page), and each extra piece of a child adds at most one maximal branch cell to the
 * node. */
static uint64_t estimate(const struct node *nd, uint64_t *pieces)
{
	uint64_t pages = 0, size = node_size(nd);
	if (!node_is_leaf(nd)) {
		for (unsigned i = 0; i < nd->n; i++) {
			if (!nd->e[i].child_node)
				continue;
			uint64_t cp;
			pages += estimate(nd->e[i].child_node, &cp);
			size += (cp - 1) * (2 + BC_HDR + STORE_MAX_KEY);
		}
	}
	*pieces = (size + PAGE_USABLE - 1) / PAGE_USABLE + 1;
	return pages + *pieces;
}

uint64_t node_spill_estimate(struct store_tree *t, uint64_t extra)
{
	/* `extra` bytes of new cells: as many more leaf pages, and their branch cells above */
	uint64_t more = (extra + PAGE_USABLE - 1) / PAGE_USABLE + 1;
	uint64_t pieces, pages = t->root ? estimate(t->root, &pieces) : 0;
	uint64_t levels = t->rec.depth + 1;
	return pages + more * levels + 1;
}
