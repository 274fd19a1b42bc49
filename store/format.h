/*
 * store/format.h — the data file's bytes, as C.  man/kvfs.5 ("DATA FILE") says the same in
 * prose; a field's name here is its name there.  All integers are little-endian except keys of
 * the internal trees, which are big-endian so that they sort numerically as bytes.  Every
 * layout below is checked by _Static_assert; every access goes through the load/store helpers
 * at the bottom (no struct is ever overlaid on mapped bytes, so alignment and endianness never
 * matter).
 *
 * The file is an array of STORE_PAGE_SIZE pages:
 *
 *   page 0, page 1   meta pages, written alternately (META PAGE)
 *   page 2 ...       tree pages (PAGE HEADER + slotted cells), overflow runs (raw value bytes,
 *                    no header: a 4 KiB value fills exactly one page), or free
 *
 * META PAGE (one per slot; the valid one with the higher txnid is current)
 *
 *   off  size  field
 *     0     8  checksum      XXH3-64 of bytes 8..4095, seed = slot number (0 or 1)
 *     8     8  magic         "KVFSDATA"
 *    16     4  version       STORE_FORMAT_VERSION
 *    20     4  page_size     4096
 *    24     8  txnid         transaction id of the commit this meta page describes
 *    32     8  page_count    pages in use by this state, meta pages included; the file is at
 *                            least page_count * page_size bytes long
 *    40     8  lsn           log position this state includes (written by the engine)
 *    48    40  catalog       TREE RECORD of the catalog tree (name -> TREE RECORD)
 *    88    40  freedb        TREE RECORD of the free-list tree (FREE LIST)
 *   128     8  free_pages    pages on the free list, deferred runs included
 *   136     4  deferred_runs number of deferred runs, 0..META_DEFERRED_MAX
 *   140     4  zero
 *   144   192  deferred      META_DEFERRED_MAX runs of 12 bytes, start pgno (u64) + count
 *                            (u32): free pages not in the free-list tree (the unused part of
 *                            the reserve taken for the free-list tree's own pages); unused
 *                            entries zero
 *   336  3760  zero
 *
 * TREE RECORD (40 bytes; in the meta page and as catalog values)
 *
 *     0     8  root_pgno     0 for an empty tree
 *     8     8  root_txnid    transaction id the root page must carry
 *    16     4  depth         levels: 0 empty, 1 root is a leaf
 *    20     4  flags         zero
 *    24     8  entries       keys in the tree
 *    32     8  pages         branch + leaf + overflow pages of the tree
 *
 * PAGE HEADER (32 bytes, at the start of every branch and leaf page)
 *
 *     0     8  checksum      XXH3-64 of bytes 8..4095, seed = pgno
 *     8     8  pgno          the page's own number (catches misdirected writes)
 *    16     8  txnid         transaction that wrote it; the parent holds the same value
 *                            (catches lost writes)
 *    24     1  type          1 branch, 2 leaf
 *    25     1  level         0 for leaves, parent level - 1 below a branch
 *    26     2  nkeys         cells on the page (>= 1)
 *    28     2  upper         offset of the lowest cell byte; cells fill [upper, 4096)
 *    30     2  zero
 *    32  2*nkeys slot array: u16 offset of cell i, cells in key order
 *
 * LEAF CELL                          BRANCH CELL
 *     0  2  klen                         0  8  child_pgno
 *     2  1  vtype (0 inline, 1 overflow) 8  8  child_txnid  (the child's header txnid)
 *     3  1  zero                        16  2  klen  (0 in cell 0: minus infinity)
 *     4  4  vlen (value bytes)          18  klen key: lower bound of child's keys
 *     8  klen key
 *     .  inline: vlen bytes; overflow: OVERFLOW REF
 *
 * OVERFLOW REF (24 bytes): ovf_pgno (first page of a run of ceil(vlen/4096) pages, 8),
 * ovf_txnid (transaction that wrote the run, 8), ovf_checksum (XXH3-64 of the vlen value bytes,
 * seed = ovf_pgno, 8).
 *
 * FREE LIST: the tree "freedb" (in the meta page, not the catalog).  Key: 12 bytes, txnid (BE
 * u64) + chunk (BE u32).  Value: up to STORE_FREE_CHUNK_RUNS runs of 12 bytes, start pgno (u64)
 * + count (u32).  A run under txnid T was freed by commit T: it is reachable from states < T
 * and reusable once every live snapshot and both meta pages are >= T.  Txnid 0 holds runs
 * already reusable when they were written.
 */
#ifndef KVFS_STORE_FORMAT_H
#define KVFS_STORE_FORMAT_H

#include <stdint.h>
#include <string.h>

#include "store/store.h"

/* The format version a writer puts in every meta page it writes, and the oldest one read.
 * 4: a non-directory inode with one name may keep its record in its dirent (an embedded
 * inode, store/ns_format.h, kvfs.5 "Embedded inodes"), which a version 3 reader would take for
 * a corrupt dirent; 3: the orphan list may hold a punched range (a 16-byte T_ORPHAN value, store/ns_format.h,
 * kvfs.5 "Orphans"), which a version 2 reader would drop without deleting its blocks (the
 * punched bytes would come back); 2: the namespace's inode records may be compact (kvfs.5
 * "Inode record"); 1: they are all 88-byte version 1 records.  An older store opened for
 * writing becomes version 4 at its first checkpoint (each meta page as it is next written),
 * so that a kvfs that knows only an older version refuses it (EPROTONOSUPPORT) instead of
 * misreading it. */
#define STORE_FORMAT_VERSION 4u
#define STORE_FORMAT_VERSION_MIN 1u
#define STORE_MAGIC "KVFSDATA"

/* Meta page. */
#define META_CHECKSUM 0
#define META_MAGIC 8
#define META_VERSION 16
#define META_PAGE_SIZE 20
#define META_TXNID 24
#define META_PAGE_COUNT 32
#define META_LSN 40
#define META_CATALOG 48
#define META_FREEDB 88
#define META_FREE_PAGES 128
#define META_DEFERRED_RUNS 136
#define META_DEFERRED 144
#define META_DEFERRED_MAX 16
#define META_END (META_DEFERRED + META_DEFERRED_MAX * 12)

/* Tree record. */
#define TREC_ROOT_PGNO 0
#define TREC_ROOT_TXNID 8
#define TREC_DEPTH 16
#define TREC_FLAGS 20
#define TREC_ENTRIES 24
#define TREC_PAGES 32
#define TREC_SIZE 40

/* Page header. */
#define PH_CHECKSUM 0
#define PH_PGNO 8
#define PH_TXNID 16
#define PH_TYPE 24
#define PH_LEVEL 25
#define PH_NKEYS 26
#define PH_UPPER 28
#define PH_SIZE 32

#define PAGE_BRANCH 1
#define PAGE_LEAF 2

/* Bytes available for slots and cells. */
#define PAGE_USABLE (STORE_PAGE_SIZE - PH_SIZE)

/* Leaf cell. */
#define LC_KLEN 0
#define LC_VTYPE 2
#define LC_VLEN 4
#define LC_KEY 8
#define LC_HDR 8
#define VTYPE_INLINE 0
#define VTYPE_OVERFLOW 1
#define OVF_PGNO 0
#define OVF_TXNID 8
#define OVF_CHECKSUM 16
#define OVF_SIZE 24

/* Branch cell. */
#define BC_CHILD_PGNO 0
#define BC_CHILD_TXNID 8
#define BC_KLEN 16
#define BC_KEY 18
#define BC_HDR 18

/* A cell plus its slot never exceeds half of the usable space, so any two cells share a
 * page and a split always succeeds.  A leaf value is stored inline when the cell then fits
 * this bound, else in an overflow run. */
#define CELL_MAX ((PAGE_USABLE / 2) - 2)

/* Free list. */
#define FREE_KEY_SIZE 12
#define FREE_RUN_SIZE 12
_Static_assert(FREE_RUN_SIZE == 12, "deferred runs and chunk runs share one layout");
#define STORE_FREE_CHUNK_RUNS 100

#define META_SLOTS 2
#define FIRST_DATA_PGNO 2

_Static_assert(STORE_PAGE_SIZE == 4096, "the format is defined for 4 KiB pages");
_Static_assert(META_CATALOG + TREC_SIZE == META_FREEDB, "meta: catalog record size");
_Static_assert(META_FREEDB + TREC_SIZE == META_FREE_PAGES, "meta: freedb record size");
_Static_assert(META_END == 336, "meta page layout");
_Static_assert(TREC_PAGES + 8 == TREC_SIZE, "tree record size");
_Static_assert(PH_UPPER + 4 == PH_SIZE, "page header size");
_Static_assert(OVF_CHECKSUM + 8 == OVF_SIZE, "overflow ref size");
_Static_assert(LC_HDR + STORE_MAX_KEY + OVF_SIZE + 2 <= CELL_MAX,
	       "a maximal key with an overflow ref must fit a leaf cell");
_Static_assert(BC_HDR + STORE_MAX_KEY + 2 <= CELL_MAX, "a maximal key must fit a branch cell");
_Static_assert(LC_HDR + FREE_KEY_SIZE + STORE_FREE_CHUNK_RUNS * FREE_RUN_SIZE + 2 <= CELL_MAX,
	       "a free-list chunk is always stored inline");
_Static_assert(STORE_MAX_TREE_NAME + LC_HDR + TREC_SIZE + 2 <= CELL_MAX,
	       "a catalog entry is always stored inline");

/* Little-endian loads and stores. */
static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ld64(const uint8_t *p) { return ld32(p) | (uint64_t)ld32(p + 4) << 32; }
static inline void st16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void st64(uint8_t *p, uint64_t v)
{
	st32(p, (uint32_t)v);
	st32(p + 4, (uint32_t)(v >> 32));
}
/* Big-endian, for keys of internal trees. */
static inline uint64_t ldbe64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}
static inline void stbe64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}
static inline uint32_t ldbe32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void stbe32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

#endif
