/*
 * store/node.h — in-memory B+tree nodes of a write transaction (the bbolt model).
 *
 * A write transaction never edits a page.  The first change below a page "materializes" it
 * and every page above it into nodes: growable arrays of entries whose keys and inline values
 * point into the mapping (unchanged entries) or into the transaction's arena (new ones).
 * Changes go to the nodes, which may grow past a page or shrink below a quarter of one.  At
 * commit, node_rebalance() merges underfull nodes with a sibling, node_pack_tree() merges
 * runs of neighbouring changed leaves (so that a leaf just past a page does not become two
 * half-empty pages), then node_spill() writes
 * every node bottom-up, splitting it into as many pages as its entries need, allocating each
 * page from the free list, and gives the parent the new child numbers and separators.
 *
 * The page a node came from is freed when the node is materialized (it is no longer part of
 * the state being built), so the free list knows every freed page before commit finishes.
 */
#ifndef KVFS_STORE_NODE_H
#define KVFS_STORE_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store_int.h"

struct node;

struct ent {
	const uint8_t *key;
	uint32_t klen;
	uint32_t vlen;          /* leaf: value bytes */
	uint8_t vtype;          /* leaf: VTYPE_INLINE or VTYPE_OVERFLOW */
	union {
		const uint8_t *val; /* leaf, inline: the bytes */
		struct {            /* leaf, overflow: the OVERFLOW REF */
			pgno_t ovf_pgno;
			txnid_t ovf_txnid;
			uint64_t ovf_sum;
		};
		struct {            /* branch: the child and what it must carry */
			pgno_t child;
			txnid_t child_txnid;
			struct node *child_node; /* materialized child, or NULL */
		};
	};
};

struct node {
	struct store_tree *tree;
	struct node *parent;
	pgno_t pgno;     /* page it was read from; 0 for a new node */
	unsigned level;  /* 0 for leaves */
	bool unbalanced; /* lost entries: check at rebalance */
	uint32_t n, cap;
	struct ent *e;
	struct node *all_next; /* every node of the txn, for freeing */
};

static inline bool node_is_leaf(const struct node *nd) { return nd->level == 0; }

/* Bytes a serialized entry takes, slot included. */
size_t ent_size(const struct node *nd, const struct ent *e, unsigned index);
/* Bytes of the node's serialized cells (page header excluded). */
size_t node_size(const struct node *nd);

#endif
