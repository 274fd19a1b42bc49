/*
 * store/overlay.c — the write overlay (store/overlay.h): an in-memory ordered map from
 * (tree, key) to a value or a tombstone, kept as a skip list.
 *
 * What it does: ordered insert/replace and exact lookup in O(log n) expected; iterators over
 * one tree that position (first, last, seek, seek_le) in O(log n) and step both ways in O(1);
 * a walk over every entry in (tree, key) order; an honest account of the memory it holds.
 *
 * What it does not do: no removal of single entries (a delete is a tombstone; the engine drops
 * the whole overlay after a checkpoint), no locking (the engine's lock covers every call), no
 * bounds on memory (the engine reads overlay_bytes and applies backpressure), no I/O.
 *
 * Layout.  A node is the fixed fields, `height` forward pointers, then the key bytes, carved
 * from the overlay's arena: chunks of OV_CHUNK bytes taken from malloc and handed out by
 * bumping a pointer, all freed with the overlay (nodes are never freed one by one: see "does
 * not do").  A malloc and a free per node cost ~300 instructions of the ~2,000 of a put, and
 * the frees were most of overlay_free.  The value is a separate malloc of exactly vlen bytes
 * (none for an empty value or a tombstone), so replacing a value frees the old one and keeps
 * the node.  A value may instead point into memory the overlay does not own (INV-8): the
 * engine's log record, in the log's mapping, whose values then need no copy.  A sentinel head node
 * of OV_MAX_LEVEL pointers precedes every entry.  Level 0 also links backwards (`prev`),
 * which makes prev O(1); last and seek_le search from the head for the rightmost node <= a
 * bound.
 *
 * Finger.  The overlay remembers where its last insertion went (`finger`: on each level, the
 * rightmost node before the position just after the inserted node).  An insertion of a key
 * greater than the last one climbs from the finger only as many levels as there are nodes
 * between the two keys, instead of descending from the head: O(log d) for a distance d
 * instead of O(log n).  The engine applies a batch in its order: a kvfs_batch's dirents come
 * in key order (namespace.c sorts the batch), and its new inodes all land after the
 * overlay's older ones.  In kvfs-bench fillrandom (20,000 puts, 1,000 per batch) the search
 * of an insertion fell from ~1,070 instructions to ~300 (callgrind; issue 3).  An insertion
 * below the last key searches from the head as before.
 *
 * Exact lookups go through a hash index beside the list: an open-addressing table (linear
 * probing, at most half full, a power of two of slots) of (hash, node) pairs, where hash is
 * XXH3-64 of the key seeded with the tree.  A get is one hash and about one probe instead of a
 * descent of ~log4(n) levels whose every step is a cache miss; a put of a key already present
 * replaces its value without a descent; a put of a new key still descends once to splice the
 * node into every level.  Measured with kvfs-bench fillrandom (100-byte values, 100,000 keys,
 * 1,000 per batch), where each put looks up its dirent and inode first: see the closing note of
 * issue 3.  Entries are never removed (see "does not do"), so the table needs no tombstones.
 *
 * Node heights come from a per-overlay xorshift64* generator with a fixed seed (no global
 * state, no rand()): the same sequence of puts always builds the same list, so a failure
 * replays exactly.  P(height > h) = 4^-h.  The heights do not depend on the keys, so a caller
 * that knew the sequence and chose the key order adversarially could unbalance the list; the
 * engine's keys come from its own users, which do not see the overlay's generator state.
 *
 * Invariants:
 *   INV-1  On every level, the nodes linked from the head are in strictly increasing
 *          (tree, key) order (tree numerically, then key_cmp of store/page.h); level i's list
 *          is a sub-list of level i-1's.  Enforced by ov_find (one search, every level's
 *          predecessor recorded) and the splice in overlay_put.
 *   INV-2  Level 0 is doubly linked: n->next[0]->prev == n, and the first entry's prev is
 *          NULL (never the head).  Enforced in overlay_put.
 *   INV-3  A tombstone has val == NULL and vlen == 0; an empty value has val == NULL too and
 *          is reported with a non-NULL pointer to a static empty buffer.
 *   INV-4  ov->bytes == sum over arena chunks of ov_cost(chunk), less the unused tail of the
 *          newest chunk, + sum over entries of ov_cost(value allocation) + ov_cost(hash
 *          table), where ov_cost is the allocator's footprint for a request (see
 *          ov_alloc_cost): what the entries hold of the heap, up to the newest chunk's tail
 *          (less than OV_CHUNK), which is not theirs yet.  ov->count is the number of entries.
 *          Both change only together with the allocations, in overlay_put; a value put by
 *          reference (INV-8) counts nothing: it is not the overlay's memory.
 *   INV-6  Every entry has exactly one slot in the hash table, found from its hash by linear
 *          probing without crossing an empty slot; 2 * count <= cap.  Enforced in ov_index_add
 *          and ov_index_grow (the table only grows; nothing is removed).
 *   INV-5  Reads (get, iterators, walk, the accessors) never write the overlay, so a frozen
 *          overlay may be read by any number of threads at once.
 *   INV-7  finger[i] (i < OV_MAX_LEVEL) is a node of level i, or the head: after an insertion
 *          of node n of height h, n itself for i < h and, for i >= h, the rightmost node of
 *          level i before n (the head above the levels in use); `last` is n (NULL before the
 *          first insertion).  So finger[i]->next[i] is the first level-i node after n, and a
 *          level with a node between n and a greater key has one on every level below: the
 *          finger search (ov_find_after_finger) moves on levels 0..L-1 only.  Set only in
 *          overlay_put, at each insertion (replacing a value changes no link).
 *   INV-8  A node with `ref` set points its value at memory its caller keeps valid and
 *          unchanged until the overlay is freed (overlay_put_ref), which the overlay never
 *          frees; a node without it owns its malloc'd value.
 * tests/check_overlay.c attacks INV-1/2 by comparing every iteration forward and backward with
 * a reference model, INV-3 in "edge", INV-4 by the accounting tests.
 */
#include "store/overlay.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"
#include "store/page.h"

#define OV_MAX_LEVEL 20 /* 4^20 entries before the top level stops sufficing */
#define OV_SEED 0x6b76667320766c79ull /* any non-zero value: xorshift64* must not start at 0 */
/* Arena chunk request: a 32 KiB glibc chunk (below the mmap threshold), room for ~500 nodes of
 * a 33-byte key; the largest node (OV_MAX_LEVEL pointers and a STORE_MAX_KEY key, 1,224 bytes)
 * wastes at most 4 % of a chunk. */
#define OV_CHUNK (32768u - 16u)

struct ov_node {
	struct ov_node *prev; /* level 0 predecessor; NULL for the first entry (INV-2) */
	void *val;            /* vlen bytes; NULL for a tombstone or an empty value (INV-3) */
	uint32_t vlen;        /* <= STORE_MAX_VALUE */
	uint16_t klen;        /* 1..STORE_MAX_KEY */
	uint8_t height;       /* 1..OV_MAX_LEVEL: pointers in next[] */
	bool tombstone;
	bool ref;             /* val is the caller's (INV-8), not the overlay's own malloc */
	unsigned tree;
	struct ov_node *next[]; /* height pointers, then klen key bytes */
};

struct ov_slot {
	uint64_t hash;      /* ov_hash of the node's (tree, key) */
	struct ov_node *n;  /* NULL: empty */
};

/* An arena chunk: the nodes are carved from data[] (INV-4). */
struct ov_chunk {
	struct ov_chunk *next; /* the older chunks */
	size_t used;           /* bytes of data[] handed out */
	max_align_t data[];
};
#define OV_CHUNK_DATA (OV_CHUNK - offsetof(struct ov_chunk, data))
_Static_assert(sizeof(struct ov_node) + OV_MAX_LEVEL * sizeof(struct ov_node *) + STORE_MAX_KEY +
		       _Alignof(struct ov_node) <= OV_CHUNK_DATA,
	       "the largest node fits an arena chunk");

struct overlay {
	struct ov_node *head; /* sentinel: OV_MAX_LEVEL pointers, no key, never returned */
	struct ov_chunk *arena; /* newest chunk first; NULL until the first entry */
	struct ov_node *finger[OV_MAX_LEVEL]; /* INV-7 */
	struct ov_node *last;                 /* INV-7: the last node inserted */
	struct ov_slot *slots; /* INV-6; NULL until the first entry */
	size_t cap;            /* slots: 0 or a power of two */
	unsigned level;       /* levels in use: 1..OV_MAX_LEVEL */
	size_t bytes;         /* INV-4 */
	size_t count;
	uint64_t lsn;
	uint64_t rng; /* xorshift64* state for node heights; never 0 */
};

struct overlay_iter {
	const struct overlay *ov;
	unsigned tree;
	const struct ov_node *cur; /* NULL: unpositioned */
};

/* What a value of length 0 points at: callers get a valid pointer, never NULL (INV-3). */
static const uint8_t ov_empty[1];

static inline const uint8_t *ov_key(const struct ov_node *n)
{
	return (const uint8_t *)&n->next[n->height];
}

static inline size_t ov_node_size(unsigned height, size_t klen)
{
	return sizeof(struct ov_node) + height * sizeof(struct ov_node *) + klen;
}

/*
 * The memory an allocation of n bytes takes, by glibc malloc's rules on 64-bit: a chunk of
 * n + 8 rounded up to 16, at least 32; requests of 128 KiB and more are mmapped whole pages
 * (n + 16 rounded up to 4 KiB).  An estimate for other allocators, but deterministic and close:
 * what the engine bounds is the heap, not the payload (a 1-byte key costs a 48-byte chunk).
 */
static size_t ov_alloc_cost(size_t n)
{
	if (n == 0)
		return 0;
	if (n >= 128u * 1024)
		return (n + 16 + 4095) & ~(size_t)4095;
	size_t c = (n + 8 + 15) & ~(size_t)15;
	return c < 32 ? 32 : c;
}

/* A node height (1..OV_MAX_LEVEL) from the generator state *s, which it advances. */
static unsigned ov_random_height(uint64_t *s)
{
	uint64_t x = *s;
	unsigned h = 1;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	/* The high bits of xorshift64* are its best: two bits per level, P(next level) = 1/4. */
	uint64_t r = x * 0x2545f4914f6cdd1dull;
	while (h < OV_MAX_LEVEL && (r >> 62) == 0) {
		h++;
		r <<= 2;
	}
	return h;
}

/* (tree, key) order of node n against the bound (tree, key, klen); `inf` makes the bound's key
 * greater than every key of its tree. */
static inline int ov_cmp(const struct ov_node *n, unsigned tree, const void *key, size_t klen,
			 bool inf)
{
	if (n->tree != tree)
		return n->tree < tree ? -1 : 1;
	if (inf)
		return -1;
	return key_cmp(ov_key(n), n->klen, key, klen);
}

/*
 * The rightmost node below the bound: with `incl`, the last node <= (tree, key), else the last
 * node < (tree, key); the head when there is none.  When `update` is given, update[i] receives
 * the rightmost such node on each level i < ov->level (the splice points of INV-1).
 */
static struct ov_node *ov_find(const struct overlay *ov, unsigned tree, const void *key,
			       size_t klen, bool inf, bool incl, struct ov_node **update)
{
	struct ov_node *x = ov->head, *stop = NULL;

	for (unsigned i = ov->level; i-- > 0;) {
		/* The node that ended the level above ends this one too: no second comparison. */
		for (struct ov_node *n = x->next[i]; n && n != stop; n = x->next[i]) {
			int c = ov_cmp(n, tree, key, klen, inf);
			if (c > 0 || (c == 0 && !incl)) {
				stop = n;
				break;
			}
			x = n;
		}
		if (update)
			update[i] = x;
	}
	return x;
}

/*
 * ov_find(..., false, false, update) for a key greater than ov->last's, from the finger
 * (INV-7): the levels whose finger already precedes the key take it as it is; the lower ones
 * step forward from the highest finger that has to move.  update[i] for i < ov->level;
 * returns how many levels moved (update[i] == finger[i] from there up).
 */
static unsigned ov_find_after_finger(const struct overlay *ov, unsigned tree, const void *key,
				 size_t klen, struct ov_node **update)
{
	unsigned lv = 0;
	while (lv < ov->level) {
		const struct ov_node *n = ov->finger[lv]->next[lv];
		if (!n || ov_cmp(n, tree, key, klen, false) >= 0)
			break;
		lv++;
	}
	for (unsigned i = lv; i < ov->level; i++)
		update[i] = ov->finger[i];
	if (lv == 0)
		return 0;
	struct ov_node *x = ov->finger[lv - 1], *stop = NULL;
	for (unsigned i = lv; i-- > 0;) {
		for (struct ov_node *n = x->next[i]; n && n != stop; n = x->next[i]) {
			if (ov_cmp(n, tree, key, klen, false) >= 0) {
				stop = n;
				break;
			}
			x = n;
		}
		update[i] = x;
	}
	return lv;
}

/* size bytes (<= OV_CHUNK_DATA) of the arena for a node, or NULL on out of memory (nothing
 * changed then).  INV-4: a new chunk adds its overhead, each node its (aligned) size, and the
 * chunk a new one replaces its unused tail. */
static struct ov_node *ov_arena_alloc(struct overlay *ov, size_t size)
{
	size = (size + _Alignof(struct ov_node) - 1) & ~(size_t)(_Alignof(struct ov_node) - 1);
	struct ov_chunk *c = ov->arena;
	if (!c || OV_CHUNK_DATA - c->used < size) {
		c = malloc(OV_CHUNK);
		if (!c)
			return NULL;
		if (ov->arena) /* its tail is spent now: counted */
			ov->bytes += OV_CHUNK_DATA - ov->arena->used;
		c->next = ov->arena;
		c->used = 0;
		ov->arena = c;
		ov->bytes += ov_alloc_cost(OV_CHUNK) - OV_CHUNK_DATA;
	}
	struct ov_node *n = (struct ov_node *)((uint8_t *)c->data + c->used);
	c->used += size;
	ov->bytes += size;
	return n;
}

static inline uint64_t ov_hash(unsigned tree, const void *key, size_t klen)
{
	return checksum64(key, klen, tree);
}

/* The node holding (tree, key), found through the hash index; NULL when there is none. */
static struct ov_node *ov_lookup(const struct overlay *ov, uint64_t h, unsigned tree,
				 const void *key, size_t klen)
{
	if (!ov->cap)
		return NULL;
	size_t mask = ov->cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		const struct ov_slot *s = &ov->slots[i];
		if (!s->n)
			return NULL;
		if (s->hash == h && s->n->tree == tree &&
		    key_cmp(ov_key(s->n), s->n->klen, key, klen) == 0)
			return s->n;
	}
}

static void ov_index_place(struct ov_slot *slots, size_t cap, uint64_t h, struct ov_node *n)
{
	size_t mask = cap - 1, i = (size_t)h & mask;
	while (slots[i].n)
		i = (i + 1) & mask;
	slots[i] = (struct ov_slot){ h, n };
}

/* Make room in the index for one more entry (INV-6); -ENOMEM leaves the overlay unchanged. */
static int ov_index_reserve(struct overlay *ov)
{
	if (2 * (ov->count + 1) <= ov->cap)
		return 0;
	size_t cap = ov->cap ? 2 * ov->cap : 8;
	struct ov_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < ov->cap; i++)
		if (ov->slots[i].n)
			ov_index_place(slots, cap, ov->slots[i].hash, ov->slots[i].n);
	ov->bytes -= ov_alloc_cost(ov->cap * sizeof(*slots));
	ov->bytes += ov_alloc_cost(cap * sizeof(*slots));
	free(ov->slots);
	ov->slots = slots;
	ov->cap = cap;
	return 0;
}

struct overlay *overlay_new(void)
{
	struct overlay *ov = calloc(1, sizeof(*ov));

	if (!ov)
		return NULL;
	ov->head = calloc(1, ov_node_size(OV_MAX_LEVEL, 0));
	if (!ov->head) {
		free(ov);
		return NULL;
	}
	ov->head->height = OV_MAX_LEVEL;
	ov->level = 1;
	for (unsigned i = 0; i < OV_MAX_LEVEL; i++)
		ov->finger[i] = ov->head; /* INV-7 */
	ov->rng = OV_SEED;
	return ov;
}

void overlay_free(struct overlay *ov)
{
	if (!ov)
		return;
	for (struct ov_node *n = ov->head->next[0]; n; n = n->next[0])
		if (!n->ref)
			free(n->val);
	for (struct ov_chunk *c = ov->arena, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(ov->slots);
	free(ov->head);
	free(ov);
}

/* overlay_put (ref false: the value is copied) and overlay_put_ref (ref true). */
static int ov_put(struct overlay *ov, unsigned tree, const void *key, size_t klen,
		  const void *val, size_t vlen, bool tombstone, bool ref)
{
	struct ov_node *update[OV_MAX_LEVEL];
	void *nv = NULL;

	assert(ov);
	if (klen < 1 || klen > STORE_MAX_KEY || !key)
		return -EINVAL;
	if (tombstone)
		vlen = 0;
	if (vlen > STORE_MAX_VALUE || (vlen && !val))
		return -EINVAL;
	if (!vlen)
		ref = false; /* INV-3: no value pointer at all */
	/* Every allocation first: on -ENOMEM nothing has changed. */
	if (ref) {
		nv = (void *)val;
	} else if (vlen) {
		nv = malloc(vlen);
		if (!nv)
			return -ENOMEM;
		memcpy(nv, val, vlen);
	}
	/* INV-4: an owned value counts its allocation; a referenced one is not ours (INV-8) */
	size_t cost = ref ? 0 : ov_alloc_cost(vlen);

	uint64_t hash = ov_hash(tree, key, klen);
	struct ov_node *x = ov_lookup(ov, hash, tree, key, klen);
	if (x) {
		/* Replace: the node and key stay, the old value goes (INV-3, INV-4, INV-8). */
		if (!x->ref) {
			ov->bytes -= ov_alloc_cost(x->vlen);
			free(x->val);
		}
		x->val = nv;
		x->vlen = (uint32_t)vlen;
		x->tombstone = tombstone;
		x->ref = ref;
		ov->bytes += cost;
		return 0;
	}
	if (ov_index_reserve(ov) < 0) {
		if (!ref)
			free(nv);
		return -ENOMEM;
	}
	unsigned moved = ov->level; /* levels whose update[] may differ from the finger */
	if (ov->last && ov_cmp(ov->last, tree, key, klen, false) < 0)
		moved = ov_find_after_finger(ov, tree, key, klen, update);
	else
		ov_find(ov, tree, key, klen, false, false, update);

	/* The generator advances only when the node is made (the overlay is unchanged on error). */
	uint64_t rng = ov->rng;
	unsigned h = ov_random_height(&rng);
	size_t nsize = ov_node_size(h, klen);
	struct ov_node *n = ov_arena_alloc(ov, nsize); /* INV-4: counted there */
	if (!n) {
		if (!ref)
			free(nv);
		return -ENOMEM;
	}
	ov->rng = rng;
	n->vlen = (uint32_t)vlen;
	n->klen = (uint16_t)klen;
	n->height = (uint8_t)h;
	n->tombstone = tombstone;
	n->ref = ref;
	n->tree = tree;
	memcpy((uint8_t *)&n->next[h], key, klen);
	n->val = nv;

	/* Levels above the current top have only the head before them. */
	for (unsigned i = ov->level; i < h; i++)
		update[i] = ov->head;
	if (h > ov->level)
		ov->level = h;
	/* INV-1: splice after the rightmost smaller node of every level. */
	for (unsigned i = 0; i < h; i++) {
		n->next[i] = update[i]->next[i];
		update[i]->next[i] = n;
	}
	/* INV-2 */
	n->prev = update[0] == ov->head ? NULL : update[0];
	if (n->next[0])
		n->next[0]->prev = n;
	ov_index_place(ov->slots, ov->cap, hash, n); /* INV-6 */
	/* INV-7 (above max(h, moved), update[i] is finger[i] already) */
	for (unsigned i = 0; i < (h > moved ? h : moved); i++)
		ov->finger[i] = i < h ? n : update[i];
	ov->last = n;

	ov->bytes += cost;
	ov->count++;
	return 0;
}

int overlay_put(struct overlay *ov, unsigned tree, const void *key, size_t klen,
		const void *val, size_t vlen, bool tombstone)
{
	return ov_put(ov, tree, key, klen, val, vlen, tombstone, false);
}

int overlay_put_ref(struct overlay *ov, unsigned tree, const void *key, size_t klen,
		    const void *val, size_t vlen, bool tombstone)
{
	return ov_put(ov, tree, key, klen, val, vlen, tombstone, true);
}

int overlay_get(const struct overlay *ov, unsigned tree, const void *key, size_t klen,
		struct store_val *val)
{
	assert(ov);
	if (klen < 1 || klen > STORE_MAX_KEY || !key || ov->count == 0)
		return -ENOENT; /* no entry can have such a key (or none at all: no hashing) */
	const struct ov_node *x = ov_lookup(ov, ov_hash(tree, key, klen), tree, key, klen);
	if (!x)
		return -ENOENT;
	if (x->tombstone) {
		if (val)
			*val = (struct store_val){ NULL, 0 };
		return 0;
	}
	if (val)
		*val = (struct store_val){ x->val ? x->val : ov_empty, x->vlen };
	return 1;
}

size_t overlay_bytes(const struct overlay *ov)
{
	return ov->bytes;
}

size_t overlay_count(const struct overlay *ov)
{
	return ov->count;
}

uint64_t overlay_lsn(const struct overlay *ov)
{
	return ov->lsn;
}

void overlay_set_lsn(struct overlay *ov, uint64_t lsn)
{
	if (lsn > ov->lsn)
		ov->lsn = lsn;
}

/* ---- iteration ----------------------------------------------------------------------- */

int overlay_iter_new(const struct overlay *ov, unsigned tree, struct overlay_iter **out)
{
	struct overlay_iter *it = malloc(sizeof(*it));

	assert(ov && out);
	*out = NULL;
	if (!it)
		return -ENOMEM;
	it->ov = ov;
	it->tree = tree;
	it->cur = NULL;
	*out = it;
	return 0;
}

void overlay_iter_free(struct overlay_iter *it)
{
	free(it);
}

/* Position on n when it is an entry of the iterator's tree, else unposition. */
static int ov_iter_land(struct overlay_iter *it, const struct ov_node *n)
{
	if (!n || n == it->ov->head || n->tree != it->tree) {
		it->cur = NULL;
		return -ENOENT;
	}
	it->cur = n;
	return 0;
}

int overlay_iter_first(struct overlay_iter *it)
{
	/* The empty key is below every key (keys have at least one byte). */
	return overlay_iter_seek(it, NULL, 0);
}

int overlay_iter_last(struct overlay_iter *it)
{
	return ov_iter_land(it, ov_find(it->ov, it->tree, NULL, 0, true, true, NULL));
}

int overlay_iter_seek(struct overlay_iter *it, const void *key, size_t klen)
{
	return ov_iter_land(it, ov_find(it->ov, it->tree, key, klen, false, false, NULL)->next[0]);
}

int overlay_iter_seek_le(struct overlay_iter *it, const void *key, size_t klen)
{
	return ov_iter_land(it, ov_find(it->ov, it->tree, key, klen, false, true, NULL));
}

int overlay_iter_next(struct overlay_iter *it)
{
	if (!it->cur)
		return -ENOENT;
	return ov_iter_land(it, it->cur->next[0]);
}

int overlay_iter_prev(struct overlay_iter *it)
{
	if (!it->cur)
		return -ENOENT;
	return ov_iter_land(it, it->cur->prev);
}

void overlay_iter_get(const struct overlay_iter *it, struct store_val *key, struct store_val *val,
		      bool *tombstone)
{
	const struct ov_node *n = it->cur;

	assert(n); /* precondition: positioned */
	if (!n) {
		if (key)
			*key = (struct store_val){ NULL, 0 };
		if (val)
			*val = (struct store_val){ NULL, 0 };
		if (tombstone)
			*tombstone = false;
		return;
	}
	if (key)
		*key = (struct store_val){ ov_key(n), n->klen };
	if (val)
		*val = n->tombstone ? (struct store_val){ NULL, 0 }
				    : (struct store_val){ n->val ? n->val : ov_empty, n->vlen };
	if (tombstone)
		*tombstone = n->tombstone;
}

int overlay_walk(const struct overlay *ov,
		 int (*fn)(void *ctx, unsigned tree, const void *key, size_t klen, const void *val,
			   size_t vlen, bool tombstone),
		 void *ctx)
{
	for (const struct ov_node *n = ov->head->next[0]; n; n = n->next[0]) {
		const void *v = n->tombstone ? NULL : n->val ? n->val : ov_empty;
		int rc = fn(ctx, n->tree, ov_key(n), n->klen, v, n->vlen, n->tombstone);
		if (rc)
			return rc;
	}
	return 0;
}
