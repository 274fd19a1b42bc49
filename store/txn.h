/*
 * store/txn.h — transactions and tree handles, shared by txn.c, btree.c, node.c,
 * freelist.c and verify.c.
 *
 * A read transaction is a snapshot: a copy of one published meta page, the mapping current at
 * that moment, and a reader slot holding its txnid so that the writer keeps its pages.  A
 * write transaction additionally owns the in-memory nodes of the trees it changes, an arena
 * for copied keys and values, and the free-list state of freelist.c.
 */
#ifndef KVFS_STORE_TXN_H
#define KVFS_STORE_TXN_H

#include "store/node.h"
#include "store/store_int.h"

#define MAX_DEPTH 48

struct run {
	pgno_t pgno;
	uint64_t count;
};
struct runvec {
	struct run *v;
	size_t n, cap;
};

/* freelist.c's per-writer state. */
struct freelist {
	struct runvec pool;   /* reusable now; allocation takes the lowest page that fits */
	struct runvec freed;  /* freed by this transaction: reusable after the gate passes it */
	txnid_t gate;         /* chunks keyed <= gate are reusable */
	bool exhausted;       /* no reusable chunk left in the freedb */
	uint64_t loaded;      /* pages moved from the free list into pool */
	bool finalizing;      /* freedb being written: allocate from the reserve only */
	struct runvec reserve; /* pages set aside for the freedb's own pages, used in order */
	size_t reserve_next;  /* first reserve run not used up */
};

struct store_tree {
	struct store_txn *txn;
	struct store_tree *next;
	uint8_t name[STORE_MAX_TREE_NAME];
	size_t name_len;
	bool internal;  /* the catalog or the freedb */
	bool dirty;     /* changed in this transaction */
	bool dropped;
	struct tree_rec rec; /* current record: root, depth, counts */
	struct node *root;   /* materialized root, or NULL */
};

struct arena_chunk;

struct store_txn {
	struct store *st;
	bool rdonly;
	txnid_t txnid;       /* snapshot (read) or the commit's (write) */
	struct meta meta;    /* snapshot meta; for a writer, the state being built */
	struct mapping *map; /* read transactions: the mapping at begin */
	struct reader_slot *slot;
	struct store_tree *trees;
	struct store_cursor *cursors;
	int err;             /* writer: a failure that makes commit impossible */
	/* writer only */
	struct store_tree catalog, freedb;
	struct freelist fl;
	struct node *nodes;  /* every node, for freeing */
	uint64_t n_pages;    /* nodes made + overflow pages allocated */
	uint64_t n_ovf_new;  /* overflow pages allocated (store_txn_pages leaves them out) */
	uint64_t n_ovf_freed; /* pages of runs freed that an earlier transaction wrote */
	struct arena_chunk *arena;
	/* Overflow pages written since the last flush, in st->staging (txn_write_run): ovf_n
	 * pages from ovf_pgno, written in one pwrite by txn_flush_pages at the latest */
	pgno_t ovf_pgno;
	size_t ovf_n;
	struct pending_write *wb; /* tree pages written at commit, flushed sorted */
	size_t n_wb, cap_wb;
	void **spare_pages;       /* page buffers already flushed, for reuse */
	size_t n_spare;
	uint64_t mod_seq;    /* bumped by every change; cursors re-seek when it moved */
};

/* The mapping to read through: a writer may grow the map mid-transaction. */
static inline const struct mapping *txn_map(struct store_txn *txn)
{
	return txn->rdonly ? txn->map : pager_map(&txn->st->pager);
}

struct pending_write {
	pgno_t pgno;
	uint8_t *page;
};

void *txn_alloc(struct store_txn *txn, size_t len);
/* A page-sized buffer for a tree page to be written by txn_write_page. */
uint8_t *txn_page_buffer(struct store_txn *txn);
/* Queue a finished tree page (from txn_page_buffer) for writing; written in page order, in
 * runs, by txn_flush_pages (at the latest at commit, before the sync).  0 or -errno. */
int txn_write_page(struct store_txn *txn, pgno_t pgno, uint8_t *page);
int txn_flush_pages(struct store_txn *txn);
/* Write the new overflow run at pgno (ovf_pages(vlen) pages: val, zero-padded).  A short run
 * that continues the ones written before it is copied into st->staging and written with
 * them in one pwrite, by txn_flush_overflow (at the latest txn_flush_pages, at commit): a
 * checkpoint writes each 4 KiB data block as a run of its own, and a pwrite each was most of
 * its system time.  Until then the pages are not in the file: a reader of the run in this
 * transaction calls txn_flush_overflow first (txn_run_staged).  0 or -errno (the store is
 * failed after a failed write). */
int txn_write_run(struct store_txn *txn, pgno_t pgno, const void *val, size_t vlen);
int txn_flush_overflow(struct store_txn *txn);
/* Whether pages [pgno, pgno + n) are staged and not yet in the file.  write_overflow marks a
 * new run's pages verified (their checksum is the value's) before they reach the file: a
 * reader of this transaction's runs must go through ent_value, which flushes first, or it
 * reads stale bytes with no checksum error. */
static inline bool txn_run_staged(const struct store_txn *txn, pgno_t pgno, uint64_t n)
{
	return txn->ovf_n && pgno < txn->ovf_pgno + txn->ovf_n && txn->ovf_pgno < pgno + n;
}
void *txn_memdup(struct store_txn *txn, const void *p, size_t len);

/* ---- node.c ---- */
int node_load(struct store_tree *t, struct node *parent, unsigned idx, struct node **out);
struct node *node_new(struct store_tree *t, unsigned level);
int node_insert(struct node *nd, unsigned idx, const struct ent *e);
void node_remove(struct node *nd, unsigned idx);
unsigned node_search(const struct node *nd, const void *key, size_t klen, bool *exact);
/* Entries past which a node is split in memory at once (node_split). */
#define NODE_SPLIT_ENTRIES 256
int node_split(struct store_tree *t, struct node *nd);
int node_rebalance_tree(struct store_tree *t);
/* Merge runs of neighbouring leaves changed in this transaction, so that spill cuts them into
 * pages together (node.c node_pack), then rebalance the parents that lost entries; after
 * node_rebalance_tree, before spill.  0 or -errno (node_rebalance_tree's: a page read, out
 * of memory; out of memory in the merge itself only leaves leaves apart). */
int node_pack_tree(struct store_tree *t);
int node_spill_tree(struct store_tree *t);
/* An upper bound on the pages node_spill_tree will allocate, with `extra` more bytes of
 * cells to be added to the materialized nodes. */
uint64_t node_spill_estimate(struct store_tree *t, uint64_t extra);

/* ---- btree.c (internal) ---- */
void btree_init(struct store_tree *t, struct store_txn *txn, const struct tree_rec *rec);
/* Materialize the path to where `key` belongs (the leaf) without changing anything. */
int btree_touch(struct store_tree *t, const void *key, size_t klen);
int btree_put(struct store_tree *t, const void *key, size_t klen, const void *val, size_t vlen);
int btree_del(struct store_tree *t, const void *key, size_t klen);
int btree_get(struct store_tree *t, const void *key, size_t klen, struct store_val *val);
/* btree_get through a finger (store_get_near; f NULL: none). */
int btree_get_near(struct store_tree *t, struct store_finger *f, const void *key, size_t klen,
		   struct store_val *val);
/* Free every page of the tree (for drop). */
int btree_free_all(struct store_tree *t);
void cursors_free(struct store_txn *txn);

/* ---- freelist.c ---- */
int freelist_begin(struct store_txn *txn);
void freelist_end(struct store_txn *txn);
/* Allocate a run of n contiguous pages.  0 and *pgno, or -errno. */
int freelist_alloc(struct store_txn *txn, uint64_t n, pgno_t *pgno);
/* Release a run of n pages that state `page_txnid` wrote. */
int freelist_free(struct store_txn *txn, pgno_t pgno, uint64_t n, txnid_t page_txnid);
/* Write the freedb for this commit (after every other tree is spilled). */
int freelist_commit(struct store_txn *txn);
/* For verify and stat: call fn for every free run of a snapshot (freedb + deferred). */
int freelist_walk(struct store_txn *txn, int (*fn)(void *ctx, txnid_t key, pgno_t pgno,
						   uint64_t count), void *ctx);

/* ---- verify.c ---- */
/*
 * Walk the catalog and every named tree of the read snapshot `txn` as store_verify does
 * (page checks, separators, depth, overflow runs, pages reached twice), setting mark[p] for
 * every page reached; mark holds txn->meta.page_count bytes, zeroed by the caller.  Each
 * problem goes to `report` (NULL: the store's log) and is counted.  With `rec_fix`, a tree
 * record (the catalog's: name NULL) whose entries or pages disagree with a complete walk is
 * passed to rec_fix with the walked counts instead of being reported.  Returns the number of
 * problems, or -ENOMEM, or rec_fix's first -errno.
 */
int64_t verify_trees(struct store_txn *txn, uint8_t *mark,
		     void (*report)(void *ctx, const char *line), void *ctx,
		     int (*rec_fix)(void *ctx, const void *name, size_t name_len,
				    const struct tree_rec *rec), void *fix_ctx);

#endif
