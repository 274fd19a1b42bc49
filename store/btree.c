/*
 * store/btree.c — named trees: the catalog, lookups, inserts, deletes, and cursors.
 *
 * Reads descend from the tree's root: through materialized nodes while there are any (write
 * transactions), then through pages of the snapshot (N-1 of node.c: no node below a page).
 * Writes materialize the path to the leaf they change (node.c) and change the node; the
 * pages are written at commit.  A value goes inline in its leaf cell when the cell stays
 * within CELL_MAX, else to an overflow run written at once (so a big value is not held in
 * memory until commit; short runs that follow each other go in one write: txn_write_run),
 * which takes ceil(vlen/4096) whole pages with no header: its checksum, page and txnid live
 * in the leaf cell (the parent's expectation).
 *
 * The catalog is a tree of name -> TREE RECORD; tree handles keep the record in memory while
 * the transaction runs and write it back to the catalog at commit (txn.c).
 *
 * Not here: allocation policy (freelist.c), splitting and merging (node.c), commit (txn.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"
#include "store/page.h"
#include "store/txn.h"

void btree_init(struct store_tree *t, struct store_txn *txn, const struct tree_rec *rec)
{
	memset(t, 0, sizeof(*t));
	t->txn = txn;
	t->internal = true;
	t->rec = *rec;
}

static inline uint64_t txn_page_count(const struct store_txn *txn)
{
	return txn->meta.page_count;
}

static int poison(struct store_txn *txn, int r)
{
	if (r < 0 && r != -ENOENT && r != -EINVAL && r != -EROFS && !txn->err)
		txn->err = r;
	return r;
}

/* A leaf entry's value, checking an overflow run on first use. */
static int ent_value(struct store_txn *txn, const struct ent *e, struct store_val *val)
{
	if (e->vtype == VTYPE_INLINE) {
		val->data = e->vlen ? (const void *)e->val : (const void *)"";
		val->len = e->vlen;
		return 0;
	}
	const uint8_t *p;
	int r;
	if (!txn->rdonly && txn_run_staged(txn, e->ovf_pgno, ovf_pages(e->vlen)) &&
	    (r = txn_flush_overflow(txn)) < 0)
		return r; /* a run this transaction wrote and has not flushed yet */
	r = pager_get_overflow(txn->st, txn_map(txn), txn_page_count(txn), e->ovf_pgno, e->vlen,
			       e->ovf_sum, &p);
	if (r < 0)
		return r;
	val->data = p;
	val->len = e->vlen;
	return 0;
}

/* Keys up to this many bytes are looked up with interpolation (btree_get): an inode tree's
 * inode numbers.  Not the data tree's 16-byte (inode, block) keys: within a leaf they run in
 * groups of blocks per inode, which a guess from the inode word misses by up to a group, and
 * 64 KiB values cost 3,250 more instructions per get that way, for no fewer misses. */
#define INTERP_KEY_MAX 8

static void cell_to_ent(const uint8_t *c, struct ent *e)
{
	e->key = leaf_key(c);
	e->klen = leaf_klen(c);
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
}

/* Read a page child of a page or node during a read-only descent. */
static int page_child(struct store_txn *txn, pgno_t pgno, txnid_t expect, unsigned level,
		      const uint8_t **out)
{
	return pager_get(txn->st, txn_map(txn), txn_page_count(txn), pgno, expect, level, out);
}

int btree_get(struct store_tree *t, const void *key, size_t klen, struct store_val *val)
{
	return btree_get_near(t, NULL, key, klen, val);
}

/*
 * Is key inside the span of the leaf the finger holds, [its first key, its last key]?  Such a
 * key, if present, is in that leaf and nowhere else (keys are ordered across leaves), and the
 * leaf, a page of a read snapshot, does not change while the transaction lives.  A key in a
 * gap between two leaves is not covered: it costs a descent, which moves the finger.
 */
static bool finger_covers(const struct store_finger *f, const struct store_tree *t,
			  const void *key, size_t klen)
{
	if (f->t != t || !f->leaf)
		return false;
	unsigned n = page_nkeys(f->leaf);
	if (n == 0)
		return false;
	const uint8_t *lo = page_cell(f->leaf, 0), *hi = page_cell(f->leaf, n - 1);
	return key_cmp(key, klen, leaf_key(lo), leaf_klen(lo)) >= 0 &&
	       key_cmp(key, klen, leaf_key(hi), leaf_klen(hi)) <= 0;
}

/* Look key up in the finger's leaf (finger_covers holds): the cell after the last one found
 * first (a run of consecutive keys: a file's blocks), else a search of the leaf. */
static int finger_get(struct store_tree *t, struct store_finger *f, const void *key,
		      size_t klen, struct store_val *val)
{
	unsigned n = page_nkeys(f->leaf), i = f->idx + 1;
	bool exact = false;
	if (i < n) {
		const uint8_t *c = page_cell(f->leaf, i);
		exact = key_cmp(key, klen, leaf_key(c), leaf_klen(c)) == 0;
	}
	if (!exact)
		i = page_search(f->leaf, key, klen, &exact);
	if (!exact)
		return -ENOENT;
	f->idx = i;
	struct ent e;
	cell_to_ent(page_cell(f->leaf, i), &e);
	return ent_value(t->txn, &e, val);
}

int btree_get_near(struct store_tree *t, struct store_finger *f, const void *key, size_t klen,
		   struct store_val *val)
{
	struct store_txn *txn = t->txn;
	if (f && !txn->rdonly)
		f = NULL; /* a write transaction's pages change under a finger */
	if (f && finger_covers(f, t, key, klen))
		return finger_get(t, f, key, klen, val);
	const uint8_t *p = NULL;
	int r;
	if (t->root) {
		struct node *nd = t->root;
		bool exact;
		while (!node_is_leaf(nd)) {
			if (nd->n == 0)
				return -ENOENT;
			unsigned i = node_search(nd, key, klen, &exact);
			if (nd->e[i].child_node) {
				nd = nd->e[i].child_node;
				continue;
			}
			r = page_child(txn, nd->e[i].child, nd->e[i].child_txnid, nd->level - 1, &p);
			if (r < 0)
				return r;
			break;
		}
		if (!p) {
			unsigned i = node_search(nd, key, klen, &exact);
			if (!exact)
				return -ENOENT;
			return ent_value(txn, &nd->e[i], val);
		}
	} else {
		if (t->rec.root == 0)
			return -ENOENT;
		r = page_child(txn, t->rec.root, t->rec.root_txnid, t->rec.depth - 1, &p);
		if (r < 0)
			return r;
	}
	/* Short keys (an inode tree's 8-byte inode numbers) are mostly dense: the separators
	 * around the path taken bound each page's keys and steer page_search_hint's first probe,
	 * so that such a page costs one or two cells touched instead of a binary search's
	 * log2(n) cache lines.  Longer keys (a dirent's parent + name, a data block's inode +
	 * block) are not spread evenly enough for the guess to pay (measured: see page.c). */
	bool interp = klen <= INTERP_KEY_MAX;
	struct key_bound lo = { NULL, 0, false }, hi = { NULL, 0, false };
	bool exact;
	while (page_type(p) == PAGE_BRANCH) {
		unsigned i;
		const uint8_t *c;
		if (interp) {
			unsigned n = page_nkeys(p);
			i = page_search_hint(p, key, klen, &lo, &hi, &exact);
			c = page_cell(p, i);
			if (i > 0)
				lo = (struct key_bound){ branch_key(c), branch_klen(c), true };
			if (i + 1 < n) {
				const uint8_t *d = page_cell(p, i + 1);
				hi = (struct key_bound){ branch_key(d), branch_klen(d), true };
			}
		} else {
			i = page_search(p, key, klen, &exact);
			c = page_cell(p, i);
		}
		r = page_child(txn, branch_child(c), branch_child_txnid(c), page_level(p) - 1, &p);
		if (r < 0)
			return r;
	}
	unsigned i = interp ? page_search_hint(p, key, klen, &lo, &hi, &exact)
			    : page_search(p, key, klen, &exact);
	if (f)
		*f = (struct store_finger){ t, p, exact ? i : i - (i > 0) };
	if (!exact)
		return -ENOENT;
	struct ent e;
	cell_to_ent(page_cell(p, i), &e);
	return ent_value(txn, &e, val);
}

/* Materialize the path to key's leaf; *leaf, *idx (first >= key), *exact. */
static int seek_write(struct store_tree *t, const void *key, size_t klen, struct node **leaf,
		      unsigned *idx, bool *exact)
{
	struct node *nd;
	int r;
	if (!t->root && t->rec.root == 0) {
		nd = node_new(t, 0);
		if (!nd)
			return -ENOMEM;
		t->root = nd;
		t->rec.depth = 1;
	}
	if ((r = node_load(t, NULL, 0, &nd)) < 0)
		return r;
	while (!node_is_leaf(nd)) {
		unsigned i = node_search(nd, key, klen, exact);
		if ((r = node_load(t, nd, i, &nd)) < 0)
			return r;
	}
	*idx = node_search(nd, key, klen, exact);
	*leaf = nd;
	return 0;
}

int btree_touch(struct store_tree *t, const void *key, size_t klen)
{
	struct node *leaf;
	unsigned idx;
	bool exact;
	return seek_write(t, key, klen, &leaf, &idx, &exact);
}

/* Free a value's overflow run.  A run an earlier transaction wrote counts in store_txn_pages:
 * it waits two commits before it can be reused, as a copied node's old page does; one this
 * transaction wrote goes back to its pool, reusable at once. */
static int free_value(struct store_tree *t, const struct ent *e)
{
	if (e->vtype != VTYPE_OVERFLOW)
		return 0;
	uint64_t n = ovf_pages(e->vlen);
	t->rec.pages -= n;
	if (e->ovf_txnid != t->txn->txnid)
		t->txn->n_ovf_freed += n;
	return freelist_free(t->txn, e->ovf_pgno, n, e->ovf_txnid);
}

/* Write a value too large for its leaf cell to a new overflow run. */
static int write_overflow(struct store_tree *t, const void *val, size_t vlen, struct ent *e)
{
	struct store_txn *txn = t->txn;
	uint64_t n = ovf_pages(vlen);
	pgno_t pgno;
	int r = freelist_alloc(txn, n, &pgno);
	if (r < 0)
		return r;
	txn->n_pages += n;
	/* not in store_txn_pages: a new run frees nothing that waits for reuse, and a checkpoint
	 * of new big values committed in pieces of it paid a flush per MiB for no space saved
	 * (the run it replaces counts, in free_value) */
	txn->n_ovf_new += n;
	if ((r = txn_write_run(txn, pgno, val, vlen)) < 0)
		return r;
	e->vtype = VTYPE_OVERFLOW;
	e->ovf_pgno = pgno;
	e->ovf_txnid = txn->txnid;
	e->ovf_sum = checksum64(val, vlen, pgno);
	pager_mark_verified(txn->st, pgno);
	t->rec.pages += n;
	return 0;
}

int btree_put(struct store_tree *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct store_txn *txn = t->txn;
	struct node *leaf;
	unsigned idx;
	bool exact;
	int r = seek_write(t, key, klen, &leaf, &idx, &exact);
	if (r < 0)
		return r;
	struct ent e;
	memset(&e, 0, sizeof(e));
	e.vlen = (uint32_t)vlen;
	if (LC_HDR + klen + vlen <= CELL_MAX) {
		e.vtype = VTYPE_INLINE;
		e.val = vlen ? txn_memdup(txn, val, vlen) : NULL;
		if (vlen && !e.val)
			return -ENOMEM;
	} else if ((r = write_overflow(t, val, vlen, &e)) < 0) {
		return r;
	}
	if (exact) {
		struct ent *old = &leaf->e[idx];
		if ((r = free_value(t, old)) < 0)
			return r;
		e.key = old->key;
		e.klen = old->klen;
		*old = e;
	} else {
		e.key = txn_memdup(txn, key, klen);
		e.klen = (uint32_t)klen;
		if (!e.key)
			return -ENOMEM;
		if ((r = node_insert(leaf, idx, &e)) < 0)
			return r;
		t->rec.entries++;
		if (leaf->n > NODE_SPLIT_ENTRIES && (r = node_split(t, leaf)) < 0)
			return r;
	}
	t->dirty = true;
	txn->mod_seq++;
	return 0;
}

int btree_del(struct store_tree *t, const void *key, size_t klen)
{
	struct store_val v;
	int r = btree_get(t, key, klen, &v); /* do not materialize for a missing key */
	if (r < 0)
		return r;
	struct node *leaf;
	unsigned idx;
	bool exact;
	if ((r = seek_write(t, key, klen, &leaf, &idx, &exact)) < 0)
		return r;
	if (!exact)
		return -ENOENT;
	if ((r = free_value(t, &leaf->e[idx])) < 0)
		return r;
	node_remove(leaf, idx);
	t->rec.entries--;
	t->dirty = true;
	t->txn->mod_seq++;
	return 0;
}

/* Free every page of a subtree rooted at a page. */
static int free_page_tree(struct store_tree *t, pgno_t pgno, txnid_t expect, unsigned level,
			  unsigned depth)
{
	struct store_txn *txn = t->txn;
	const uint8_t *p;
	int r = page_child(txn, pgno, expect, level, &p);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < page_nkeys(p); i++) {
		const uint8_t *c = page_cell(p, i);
		if (level > 0) {
			r = free_page_tree(t, branch_child(c), branch_child_txnid(c), level - 1,
					   depth + 1);
		} else if (leaf_vtype(c) == VTYPE_OVERFLOW) {
			struct ent e;
			cell_to_ent(c, &e);
			r = free_value(t, &e);
		}
		if (r < 0)
			return r;
	}
	t->rec.pages--;
	return freelist_free(txn, pgno, 1, expect);
}

static int free_node_tree(struct store_tree *t, struct node *nd)
{
	int r = 0;
	for (unsigned i = 0; i < nd->n && r >= 0; i++) {
		struct ent *e = &nd->e[i];
		if (node_is_leaf(nd))
			r = free_value(t, e);
		else if (e->child_node)
			r = free_node_tree(t, e->child_node);
		else
			r = free_page_tree(t, e->child, e->child_txnid, nd->level - 1, 0);
	}
	return r;
}

int btree_free_all(struct store_tree *t)
{
	int r = 0;
	if (t->root)
		r = free_node_tree(t, t->root);
	else if (t->rec.root)
		r = free_page_tree(t, t->rec.root, t->rec.root_txnid, t->rec.depth - 1, 0);
	t->root = NULL;
	memset(&t->rec, 0, sizeof(t->rec));
	return r;
}

/* ---- the public calls ---- */

static bool key_ok(size_t klen) { return klen >= 1 && klen <= STORE_MAX_KEY; }

int store_get(struct store_tree *t, const void *key, size_t klen, struct store_val *val)
{
	if (!key_ok(klen))
		return -EINVAL;
	if (t->dropped)
		return -ENOENT;
	return btree_get(t, key, klen, val);
}

int store_get_near(struct store_tree *t, struct store_finger *f, const void *key, size_t klen,
		   struct store_val *val)
{
	if (!key_ok(klen))
		return -EINVAL;
	if (t->dropped)
		return -ENOENT;
	return btree_get_near(t, f, key, klen, val);
}

static int write_ok(struct store_tree *t)
{
	struct store_txn *txn = t->txn;
	if (txn->rdonly)
		return -EROFS;
	if (txn->err)
		return txn->err;
	int f = atomic_load(&txn->st->failed);
	if (f)
		return -EIO;
	if (t->dropped)
		return -ENOENT;
	return 0;
}

int store_put(struct store_tree *t, const void *key, size_t klen, const void *val,
	      size_t vlen)
{
	if (!key_ok(klen) || vlen > STORE_MAX_VALUE || (vlen && !val))
		return -EINVAL;
	int r = write_ok(t);
	if (r < 0)
		return r;
	return poison(t->txn, btree_put(t, key, klen, val, vlen));
}

int store_del(struct store_tree *t, const void *key, size_t klen)
{
	if (!key_ok(klen))
		return -EINVAL;
	int r = write_ok(t);
	if (r < 0)
		return r;
	return poison(t->txn, btree_del(t, key, klen));
}

uint64_t store_tree_count(const struct store_tree *t)
{
	return t->rec.entries;
}

static struct store_tree *find_handle(struct store_txn *txn, const char *name, size_t len)
{
	for (struct store_tree *t = txn->trees; t; t = t->next)
		if (!t->dropped && t->name_len == len && memcmp(t->name, name, len) == 0)
			return t;
	return NULL;
}

int store_tree_open(struct store_txn *txn, const char *name, size_t name_len, bool create,
		    struct store_tree **out)
{
	if (!name || name_len < 1 || name_len > STORE_MAX_TREE_NAME)
		return -EINVAL;
	struct store_tree *t = find_handle(txn, name, name_len);
	if (t) {
		*out = t;
		return 0;
	}
	struct tree_rec rec;
	memset(&rec, 0, sizeof(rec));
	struct store_val v;
	int r = btree_get(&txn->catalog, name, name_len, &v);
	bool created = r == -ENOENT;
	if (r == 0) {
		if (v.len != TREC_SIZE)
			return CORRUPT(txn->st, txn->catalog.rec.root,
				       "catalog entry of %zu bytes, expected %d", v.len, TREC_SIZE);
		trec_decode(v.data, &rec);
		if ((rec.root == 0) != (rec.depth == 0) || rec.depth > MAX_DEPTH ||
		    (rec.root && rec.root < FIRST_DATA_PGNO) || rec.flags)
			return CORRUPT(txn->st, txn->catalog.rec.root,
				       "catalog entry for a tree is out of range");
	} else if (r != -ENOENT) {
		return r;
	} else if (!create) {
		return -ENOENT;
	} else if (txn->rdonly) {
		return -EROFS;
	} else if ((r = write_ok(&txn->catalog)) < 0) {
		return r;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->txn = txn;
	memcpy(t->name, name, name_len);
	t->name_len = name_len;
	t->rec = rec;
	if (created) { /* a new tree is a change even while empty: its catalog entry */
		t->dirty = true;
		txn->mod_seq++;
	}
	t->next = txn->trees;
	txn->trees = t;
	*out = t;
	return 0;
}

int store_tree_drop(struct store_txn *txn, const char *name, size_t name_len)
{
	struct store_tree *t;
	int r = store_tree_open(txn, name, name_len, false, &t);
	if (r < 0)
		return r;
	if ((r = write_ok(t)) < 0)
		return r;
	r = btree_free_all(t);
	if (r == 0) {
		r = btree_del(&txn->catalog, name, name_len);
		if (r == -ENOENT) /* created in this transaction: not in the catalog yet */
			r = 0;
	}
	t->dropped = true;
	txn->mod_seq++;
	return poison(txn, r);
}

/* ---- cursors ---- */

struct frame {
	struct node *nd;     /* or NULL: */
	const uint8_t *pg;
	unsigned idx;
};

struct store_cursor {
	struct store_tree *t;
	struct store_cursor *next;
	struct frame f[MAX_DEPTH];
	int depth;           /* frames in use; 0: unpositioned */
	uint8_t *lo, *hi;
	size_t lolen, hilen;
	bool has_lo, has_hi;
	uint64_t seq;        /* txn->mod_seq when positioned (write transactions) */
	uint8_t key[STORE_MAX_KEY];
	size_t klen;
};

static unsigned frame_n(const struct frame *f)
{
	return f->nd ? f->nd->n : page_nkeys(f->pg);
}

static bool frame_leaf(const struct frame *f)
{
	return f->nd ? node_is_leaf(f->nd) : page_type(f->pg) == PAGE_LEAF;
}

static void frame_ent(const struct frame *f, unsigned i, struct ent *e)
{
	if (f->nd) {
		*e = f->nd->e[i];
	} else {
		memset(e, 0, sizeof(*e));
		cell_to_ent(page_cell(f->pg, i), e);
	}
}

static int cur_push_child(struct store_cursor *c, unsigned i)
{
	struct store_txn *txn = c->t->txn;
	struct frame *f = &c->f[c->depth - 1];
	if (c->depth >= MAX_DEPTH)
		return CORRUPT(txn->st, 0, "tree deeper than %d levels", MAX_DEPTH);
	f->idx = i;
	struct frame *nf = &c->f[c->depth];
	memset(nf, 0, sizeof(*nf));
	if (f->nd) {
		struct ent *e = &f->nd->e[i];
		if (e->child_node) {
			nf->nd = e->child_node;
		} else {
			int r = page_child(txn, e->child, e->child_txnid, f->nd->level - 1, &nf->pg);
			if (r < 0)
				return r;
		}
	} else {
		const uint8_t *cell = page_cell(f->pg, i);
		int r = page_child(txn, branch_child(cell), branch_child_txnid(cell),
				   page_level(f->pg) - 1, &nf->pg);
		if (r < 0)
			return r;
	}
	c->depth++;
	return 0;
}

static int cur_root(struct store_cursor *c)
{
	struct store_tree *t = c->t;
	c->depth = 0;
	if (t->dropped)
		return -ENOENT;
	memset(&c->f[0], 0, sizeof(c->f[0]));
	if (t->root) {
		c->f[0].nd = t->root;
	} else if (t->rec.root) {
		int r = page_child(t->txn, t->rec.root, t->rec.root_txnid, t->rec.depth - 1,
				   &c->f[0].pg);
		if (r < 0)
			return r;
	} else {
		return -ENOENT;
	}
	c->depth = 1;
	return 0;
}

enum { GO_FIRST, GO_LAST, GO_KEY };

/* Descend from the top frame to a leaf. */
static int cur_descend(struct store_cursor *c, int how, const void *key, size_t klen)
{
	for (;;) {
		struct frame *f = &c->f[c->depth - 1];
		unsigned n = frame_n(f);
		bool exact;
		if (frame_leaf(f)) {
			f->idx = how == GO_FIRST ? 0 : how == GO_LAST ? (n ? n - 1 : 0) :
				 f->nd ? node_search(f->nd, key, klen, &exact) :
				 page_search(f->pg, key, klen, &exact);
			return 0;
		}
		if (n == 0)
			return -ENOENT;
		unsigned i = how == GO_FIRST ? 0 : how == GO_LAST ? n - 1 :
			     f->nd ? node_search(f->nd, key, klen, &exact) :
			     page_search(f->pg, key, klen, &exact);
		int r = cur_push_child(c, i);
		if (r < 0)
			return r;
	}
}

/* Move to the next (dir 1) or previous (dir -1) leaf entry, skipping empty leaves; the top
 * frame's idx may be out of range on entry (== n, or "before 0" encoded as UINT_MAX). */
static int cur_settle(struct store_cursor *c, int dir)
{
	for (;;) {
		struct frame *f = &c->f[c->depth - 1];
		if (f->idx < frame_n(f))
			return 0;
		/* climb to a frame that has a sibling in that direction */
		for (;;) {
			c->depth--;
			if (c->depth == 0)
				return -ENOENT;
			f = &c->f[c->depth - 1];
			if (dir > 0 && f->idx + 1 < frame_n(f)) {
				f->idx++;
				break;
			}
			if (dir < 0 && f->idx > 0) {
				f->idx--;
				break;
			}
		}
		int r = cur_push_child(c, f->idx);
		if (r < 0)
			return r;
		r = cur_descend(c, dir > 0 ? GO_FIRST : GO_LAST, NULL, 0);
		if (r < 0)
			return r;
		struct frame *leaf = &c->f[c->depth - 1];
		if (frame_n(leaf) == 0)
			leaf->idx = dir > 0 ? 0 : ~0u;
	}
}

static void cur_current(const struct store_cursor *c, struct ent *e)
{
	const struct frame *f = &c->f[c->depth - 1];
	frame_ent(f, f->idx, e);
}

/* After positioning: unposition and -ENOENT when outside the bounds; remember the key. */
static int cur_check(struct store_cursor *c, int r)
{
	if (r < 0) {
		c->depth = 0;
		return r;
	}
	struct ent e;
	cur_current(c, &e);
	if ((c->has_lo && key_cmp(e.key, e.klen, c->lo, c->lolen) < 0) ||
	    (c->has_hi && key_cmp(e.key, e.klen, c->hi, c->hilen) >= 0)) {
		c->depth = 0;
		return -ENOENT;
	}
	if (!c->t->txn->rdonly) {
		memcpy(c->key, e.key, e.klen);
		c->klen = e.klen;
		c->seq = c->t->txn->mod_seq;
	}
	return 0;
}

static int cur_seek_raw(struct store_cursor *c, const void *key, size_t klen)
{
	int r = cur_root(c);
	if (r < 0)
		return r;
	if ((r = cur_descend(c, GO_KEY, key, klen)) < 0)
		return r;
	return cur_settle(c, 1);
}

static int cur_last_raw(struct store_cursor *c)
{
	int r;
	if (c->has_hi) {
		r = cur_seek_raw(c, c->hi, c->hilen);
		if (r == 0) {
			c->f[c->depth - 1].idx--; /* wraps to ~0u at 0 */
			return cur_settle(c, -1);
		}
		if (r != -ENOENT)
			return r;
	}
	if ((r = cur_root(c)) < 0)
		return r;
	if ((r = cur_descend(c, GO_LAST, NULL, 0)) < 0)
		return r;
	struct frame *f = &c->f[c->depth - 1];
	if (frame_n(f) == 0)
		f->idx = ~0u;
	return cur_settle(c, -1);
}

int store_cursor_open(struct store_tree *t, struct store_cursor **out)
{
	struct store_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->t = t;
	c->next = t->txn->cursors;
	t->txn->cursors = c;
	*out = c;
	return 0;
}

static void cursor_free(struct store_cursor *c)
{
	free(c->lo);
	free(c->hi);
	free(c);
}

void store_cursor_close(struct store_cursor *c)
{
	if (!c)
		return;
	struct store_cursor **pp = &c->t->txn->cursors;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	cursor_free(c);
}

void cursors_free(struct store_txn *txn)
{
	while (txn->cursors) {
		struct store_cursor *c = txn->cursors;
		txn->cursors = c->next;
		cursor_free(c);
	}
}

static int set_bound(uint8_t **dst, size_t *dlen, bool *has, const void *src, size_t len)
{
	free(*dst);
	*dst = NULL;
	*dlen = 0;
	*has = false;
	if (!src)
		return 0;
	*dst = malloc(len ? len : 1);
	if (!*dst)
		return -ENOMEM;
	if (len)
		memcpy(*dst, src, len);
	*dlen = len;
	*has = true;
	return 0;
}

int store_cursor_set_range(struct store_cursor *c, const void *lo, size_t lolen,
			   const void *hi, size_t hilen)
{
	if (lolen > STORE_MAX_KEY || hilen > STORE_MAX_KEY + 1)
		return -EINVAL;
	c->depth = 0;
	int r = set_bound(&c->lo, &c->lolen, &c->has_lo, lolen ? lo : NULL, lolen);
	if (r == 0)
		r = set_bound(&c->hi, &c->hilen, &c->has_hi, hilen ? hi : NULL, hilen);
	return r;
}

int store_cursor_set_prefix(struct store_cursor *c, const void *prefix, size_t plen)
{
	if (plen < 1 || plen > STORE_MAX_KEY || !prefix)
		return -EINVAL;
	/* hi: the prefix with its last byte below 0xff incremented, trailing 0xff dropped */
	uint8_t hi[STORE_MAX_KEY];
	size_t hilen = plen;
	memcpy(hi, prefix, plen);
	while (hilen > 0 && hi[hilen - 1] == 0xff)
		hilen--;
	if (hilen > 0)
		hi[hilen - 1]++;
	return store_cursor_set_range(c, prefix, plen, hilen ? hi : NULL, hilen);
}

int store_cursor_first(struct store_cursor *c)
{
	if (c->has_lo)
		return cur_check(c, cur_seek_raw(c, c->lo, c->lolen));
	int r = cur_root(c);
	if (r == 0)
		r = cur_descend(c, GO_FIRST, NULL, 0);
	if (r == 0)
		r = cur_settle(c, 1);
	return cur_check(c, r);
}

int store_cursor_last(struct store_cursor *c)
{
	return cur_check(c, cur_last_raw(c));
}

int store_cursor_seek(struct store_cursor *c, const void *key, size_t klen)
{
	if (!key_ok(klen))
		return -EINVAL;
	if (c->has_lo && key_cmp(key, klen, c->lo, c->lolen) < 0) {
		key = c->lo;
		klen = c->lolen;
	}
	return cur_check(c, cur_seek_raw(c, key, klen));
}

static bool cur_stale(const struct store_cursor *c)
{
	return !c->t->txn->rdonly && c->seq != c->t->txn->mod_seq;
}

int store_cursor_next(struct store_cursor *c)
{
	if (c->depth == 0)
		return -ENOENT;
	if (cur_stale(c)) {
		uint8_t key[STORE_MAX_KEY];
		size_t klen = c->klen;
		memcpy(key, c->key, klen);
		int r = cur_seek_raw(c, key, klen);
		if (r < 0)
			return cur_check(c, r);
		struct ent e;
		cur_current(c, &e);
		if (key_cmp(e.key, e.klen, key, klen) != 0)
			return cur_check(c, 0); /* the old key is gone: this is its successor */
	}
	c->f[c->depth - 1].idx++;
	return cur_check(c, cur_settle(c, 1));
}

int store_cursor_prev(struct store_cursor *c)
{
	if (c->depth == 0)
		return -ENOENT;
	if (cur_stale(c)) {
		uint8_t key[STORE_MAX_KEY];
		size_t klen = c->klen;
		memcpy(key, c->key, klen);
		int r = cur_seek_raw(c, key, klen);
		if (r == -ENOENT)
			return cur_check(c, cur_last_raw(c));
		if (r < 0)
			return cur_check(c, r);
	}
	c->f[c->depth - 1].idx--;
	return cur_check(c, cur_settle(c, -1));
}

int store_cursor_get(struct store_cursor *c, struct store_val *key, struct store_val *val)
{
	if (c->depth == 0)
		return -ENOENT;
	if (cur_stale(c)) {
		uint8_t k[STORE_MAX_KEY];
		size_t klen = c->klen;
		memcpy(k, c->key, klen);
		int r = cur_check(c, cur_seek_raw(c, k, klen));
		if (r < 0)
			return r;
	}
	struct ent e;
	cur_current(c, &e);
	if (key) {
		key->data = e.key;
		key->len = e.klen;
	}
	if (val)
		return ent_value(c->t->txn, &e, val);
	return 0;
}
