/*
 * tools/check/phase5_namespace.c — phase 5: the file namespace (store/namespace.c's records,
 * store/ns_format.h, man/kvfs.5 "NAMESPACE") against its invariants NS-1..NS-4 and, from
 * format version 4, the embedded inodes' EI-1..EI-4.
 *
 * Collection.  Phase 2 hands every entry of the engine trees t0..t5 here in key order
 * (chk_ns_tree_entry; values only of T_INODE, T_DIRENT, T_ORPHAN and T_SUPER), phase 4 every
 * put and delete of the log records the next open would replay (chk_ns_log_op), which
 * override the trees' entries.  What is kept (struct chk_ns, freed when the phase ends):
 *   inodes    an array sorted by ino (after collection) + open-addressing index: the header
 *             fields, the record's length, and per ino the counts found in the other trees;
 *             for an INODE REF (format version 4) the (parent, name) it names, in the arena;
 *   dirents   an array + index by raw key; raw keys in one arena; an embedded inode's record
 *             (format version 4: a value longer than DIRENT_VALUE) decoded at once into
 *             `emb`, an array of inode entries, so that a later put or delete of the dirent
 *             overrides it as it does the dirent;
 *   blocks    the tree's (ino, block) pairs, 16 bytes each, plus the log's puts and deletes
 *             in a small map that overrides them; blocks of the wrong length in a list;
 *   xattrs    the tree's (ino, hash of the name) pairs, overridden the same way;
 *   orphans   flags on the inode entry (listed; with a truncation value or a punched range,
 *             and that value);
 *             next_ino; keys of the wrong length in a list.
 * Cost: 168 bytes per inode (twice for an embedded one), 48 + its key per dirent, 16 per
 * block, plus hash indexes at most half full (measured before format version 4, at 144 and
 * 40 bytes: 100,000 small files in 1,000 directories, 25 MiB; 100,000 blocks, 2.7 MiB).
 *
 * Embedded inodes (format version 4, store/ns_format.h EI-1..EI-4).  The format version is
 * read from the meta page checked: before version 4 a dirent value longer than DIRENT_VALUE
 * in the trees is NS_DIRENT_BAD and a T_INODE value whose byte 2 is NS_INODE_REF a record
 * that does not decode (NS_INODE_RECORD), exactly as before.  The log's records are read as
 * version 4 whatever the meta page says: a version 3 writer never wrote those forms, and a
 * version 4 writer may have logged them before the first checkpoint that raises the meta
 * page's version (store/format.h), so that a crash then leaves them in the log of a store
 * whose meta page still says 3.  From version 4, after collection (the log
 * applied), pair_embedded gives each inode that an embedded dirent names one embedding dirent
 * (the one its REF names, else the first in key order) and that dirent's record: the inode
 * entry takes its fields (S_EMB), so every check below sees an embedded inode as one whose
 * record is in T_INODE.  An inode exists when T_INODE holds its record, or its REF and a
 * dirent embeds it; a REF that no embedding dirent matches leaves the inode missing.
 *
 * Checks (problem table rows below):
 *   - the root: inode 1 a directory                                         NS_ROOT
 *   - each inode record decodes: a header that parses (ns_inode_decode: v1 or v2), a known
 *     S_IFMT type, no unknown flag, header + size bytes when INODE_INLINE (size <=
 *     INLINE_MAX for a regular file, 1..4095 for a symbolic link, which is always inline),
 *     the header alone without; an 8-byte key                              NS_INODE_RECORD
 *   - each dirent: a 9..263-byte key, a name without '/' or NUL, not "." or "..", a 9-byte
 *     value (from format version 4: or longer, an embedded inode)           NS_DIRENT_BAD
 *   - it lies in an existing directory and names an existing inode (NS-1)   NS_DIRENT_DANGLING
 *   - of the type it records (NS-1)                                         NS_DIRENT_TYPE
 *   - orphans: an unlinked inode (no dirent, nlink 0) still listed          NS_ORPHAN_PENDING
 *     a truncation still listed: an 8-byte value equal to the size of a linked regular
 *     file in blocks, whose blocks past that size the next open deletes   NS_ORPHAN_PENDING
 *     a hole punched in steps still listed: a 16-byte value, blocks [first, last) with
 *     first < last <= ceil(size / 4096), of a linked regular file in blocks, whose blocks
 *     in that range the next open deletes                                 NS_ORPHAN_PENDING
 *     an entry for a linked or missing inode (without a truncation value or range, or with
 *     one that does not match), a value neither empty, 8 nor 16 bytes, a bad key
 *                                                                           NS_ORPHAN_STALE
 *   - a directory is named by one dirent (the root by none)                 NS_DIR_LINKS
 *     and its parent field names the directory holding it (NS-3)            NS_PARENT
 *   - an inode that no dirent names and that is not a pending orphan        NS_LOST_INODE
 *   - directories not reachable from the root (a cycle), found by walking the directories
 *     from the root and then following, from each one not reached, its dirent's directory
 *     upwards until the walk comes back to itself                           NS_CYCLE
 *   - nlink (NS-2): a directory 2 + its subdirectories, another inode its dirents
 *                                                                           NS_NLINK
 *   - data blocks (NS-4): of a missing inode                                NS_BLOCK_ORPHAN
 *     longer than 4096 bytes (a shorter one reads as padded with zeros,    NS_BLOCK_BAD
 *     man/kvfs.5), with a malformed key, or of an inode that keeps no blocks
 *     at or past ceil(size / 4096), unless a pending truncation covers it   NS_SIZE
 *     as many as the inode's blocks field says                              NS_BLOCKS_COUNT
 *   - xattrs of a missing inode, or with a key that names none              NS_XATTR_ORPHAN
 *   - next_ino present, 8 bytes, above every inode                          NS_NEXT_INO
 *   - EI-1: an embedded record decodes as a record in T_INODE must (header, type, flags,
 *     tail)                                                                 NS_INODE_RECORD
 *     is not a directory's                                                  NS_EMBED_DIR
 *     agrees with its dirent's type byte                                    NS_DIRENT_TYPE
 *     has nlink 1 (with one name; with more, NS_EMBED_LINKS)                NS_NLINK
 *   - EI-2: T_INODE[ino] of an embedded inode is an INODE REF naming its dirent (not
 *     missing, malformed, naming another dirent, or a full record)          NS_EMBED_REF
 *     and no other dirent names ino                                         NS_EMBED_LINKS
 *   - EI-3: an INODE REF names a dirent that embeds its inode (not missing, plain or
 *     embedding another inode), and decodes                                 NS_REF_DANGLING
 *   - EI-4: an empty orphan entry (an unlinked inode) is not for an embedded inode or an
 *     inode that is only a REF (a truncation's or punch's entry may be)     NS_ORPHAN_EMBED
 * A damaged inode record (NS_INODE_RECORD, or a value phase 2 could not read) still counts
 * as an inode, but no check is made that would need its fields.
 *
 * Incomplete namespace (c->ns_incomplete: a tree page or log record could not be read).
 * Entries are then missing, so a dirent can dangle, an inode look lost, a link count look
 * wrong and blocks look orphaned because of the damage alone.  These problems are still
 * reported, with "(namespace incomplete)" in the message, but their fixes (removing dirents,
 * reconnecting, setting nlink, parent or blocks, deleting blocks and xattrs) are not offered.
 * Fixes that rely only on the entry itself are (NS_DIRENT_BAD, NS_DIRENT_TYPE, NS_BLOCK_BAD,
 * NS_SIZE, NS_ORPHAN_*, which the next open would do anyway, NS_NEXT_INO, which only raises).
 *
 * Repairs.  Each fix is decided through chk_gate and applied at once to the in-memory model
 * (dirents removed or added, link counts, parent fields, lost+found), so that later checks
 * see the store as it will be and the link counts written are those of the repaired tree: a
 * second run is clean.  The link counts a structural fix changes (a subdirectory moved to
 * lost+found, the root gaining lost+found) are part of that fix; NS_NLINK is reported only
 * for a count that agrees neither with the dirents as found nor with them as repaired.
 * Then, when any fix was approved: chk_release_lock, engine_open (replaying the log), engine
 * batches (committed every ~1 MiB), engine_close (a checkpoint), and chk_fixed for each.
 * An inode record is changed by reading it (engine_get), decoding it, patching the fields
 * (nlink, size, blocks, parent, ctime) and putting it back as v2 (ns_inode_encode), the
 * inline bytes after it unchanged.  lost+found (mode 040700, uid 0, gid 0) is created in
 * the root, with an inode number from next_ino, when the first reconnection is approved; an
 * inode is reconnected as "#<ino>" (or "#<ino>.<n>" when that name is taken).  A cycle is
 * broken at its lowest-numbered directory: the dirent naming it inside the cycle is removed
 * and the directory reconnected.  A pending orphan is purged as namespace.c's purge() does:
 * its blocks, xattrs, inode record and orphan entry in one batch.  A pending truncation is
 * finished as the next open would (namespace.c orphan_finish): the blocks past the size and
 * the orphan entry deleted, the blocks field lowered by their count; a pending punch the
 * same way, with the blocks of its range.
 *
 * Repairs of embedded inodes (format version 4): each keeps every record that is sound and
 * names what it can, and guesses nothing beyond "the later ctime is the later change".
 *   NS_EMBED_REF    a missing, malformed or wrong REF: write the REF naming the embedding
 *                   dirent (the record is there, only the pointer to it is wrong).  A full
 *                   record in T_INODE as well: keep the record with the later ctime (the
 *                   embedded one on a tie: the one a lookup by name reads): write the REF,
 *                   or rewrite the dirent plain.
 *   NS_EMBED_DIR    move the record to T_INODE (replacing the REF), the dirent plain.
 *   NS_EMBED_LINKS  the same, and every other embedding dirent plain; NS_NLINK then sets
 *                   the count to the dirents.
 *   NS_REF_DANGLING delete the REF: the record is gone, the inode missing; a plain dirent
 *                   naming it dangles (NS_DIRENT_DANGLING) and its blocks and xattrs are
 *                   orphans (NS_BLOCK_ORPHAN, NS_XATTR_ORPHAN), in the same run.
 *   NS_ORPHAN_EMBED delete the orphan entry: the inode is named (embedded), or has no record.
 *   NS_DIRENT_BAD   before version 4, a value longer than DIRENT_VALUE whose inode has its
 *                   record in T_INODE: rewrite the dirent plain (the file keeps its name:
 *                   kvfs reads such a dirent, so removing it would lose a readable file).
 * Every fix that patches an inode record (nlink, size, blocks, parent, ctime; NS_DIRENT_TYPE
 * of an embedding dirent) patches it where it lives, in the embedding dirent for an
 * embedded inode (ap_inode), and a dirent that a fix removes takes no record with it: the
 * record moves to T_INODE first (the inode is then reconnected, NS_LOST_INODE).  A purge of a
 * pending orphan deletes T_INODE[ino] whether it holds a record or a REF.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/engine.h"
#include "store/format.h"
#include "store/ns_format.h"
#include "tools/check/check.h"

#define NS_NAME_MAX 255u /* KVFS_NAME_MAX: a name is 1..255 bytes (man/kvfs.5) */
#define DT_DIR_TYPE 4u   /* S_IFDIR >> 12 */

static const struct chk_def defs[] = {
#define NS_ROOT (&defs[0])
	{ "NS_ROOT", SEV_ERROR, false, false,
	  "the root directory (inode 1) is missing or not a directory", NULL },
#define NS_INODE_RECORD (&defs[1])
	{ "NS_INODE_RECORD", SEV_ERROR, false, false, "an inode record that does not decode",
	  NULL },
#define NS_DIRENT_DANGLING (&defs[2])
	{ "NS_DIRENT_DANGLING", SEV_ERROR, true, false,
	  "a dirent names a missing inode, or lies in a missing directory", "remove the dirent" },
#define NS_DIRENT_TYPE (&defs[3])
	{ "NS_DIRENT_TYPE", SEV_ERROR, true, false,
	  "a dirent records another type than its inode's", "correct the dirent's type" },
#define NS_DIRENT_BAD (&defs[4])
	{ "NS_DIRENT_BAD", SEV_ERROR, true, false, "a dirent's key or value is malformed",
	  "remove the dirent (a too long value naming an inode kept in T_INODE: rewrite it "
	  "plain)" },
#define NS_NLINK (&defs[5])
	{ "NS_NLINK", SEV_WARNING, true, true, "an inode's link count disagrees with its dirents",
	  "set nlink" },
#define NS_DIR_LINKS (&defs[6])
	{ "NS_DIR_LINKS", SEV_ERROR, true, false,
	  "a directory is named by more than one dirent (the root: by any)",
	  "remove the dirents other than the one in its parent field" },
#define NS_PARENT (&defs[7])
	{ "NS_PARENT", SEV_WARNING, true, true,
	  "a directory's parent field does not name the directory holding it",
	  "set the parent field" },
#define NS_LOST_INODE (&defs[8])
	{ "NS_LOST_INODE", SEV_ERROR, true, false,
	  "an inode no dirent names and that is not an orphan",
	  "reconnect it as lost+found/#INO" },
#define NS_CYCLE (&defs[9])
	{ "NS_CYCLE", SEV_ERROR, true, false,
	  "directories not reachable from the root (a cycle)",
	  "break the cycle and reconnect it under lost+found" },
#define NS_ORPHAN_PENDING (&defs[10])
	{ "NS_ORPHAN_PENDING", SEV_WARNING, true, true,
	  "an orphan the next open would finish: an unlinked inode, or a truncation's blocks "
	  "past the size", "purge it, or delete those blocks, as the next open would" },
#define NS_ORPHAN_STALE (&defs[11])
	{ "NS_ORPHAN_STALE", SEV_WARNING, true, true,
	  "an orphan entry for a linked or missing inode", "delete the orphan entry" },
#define NS_BLOCK_ORPHAN (&defs[12])
	{ "NS_BLOCK_ORPHAN", SEV_WARNING, true, true, "data blocks of a missing inode",
	  "delete them" },
#define NS_XATTR_ORPHAN (&defs[13])
	{ "NS_XATTR_ORPHAN", SEV_WARNING, true, true, "xattrs of a missing inode",
	  "delete them" },
#define NS_BLOCK_BAD (&defs[14])
	{ "NS_BLOCK_BAD", SEV_ERROR, true, false,
	  "a data block longer than a block or with a malformed key, or of an inode that keeps "
	  "no blocks", "delete it" },
#define NS_SIZE (&defs[15])
	{ "NS_SIZE", SEV_WARNING, true, false, "a data block past the end of its file",
	  "set the size to cover it" },
#define NS_BLOCKS_COUNT (&defs[16])
	{ "NS_BLOCKS_COUNT", SEV_WARNING, true, true,
	  "an inode's blocks field disagrees with the blocks stored", "set the blocks field" },
#define NS_NEXT_INO (&defs[17])
	{ "NS_NEXT_INO", SEV_ERROR, true, true,
	  "next_ino is missing, malformed, or not above every inode", "set it" },
#define NS_EMBED_DIR (&defs[18])
	{ "NS_EMBED_DIR", SEV_ERROR, true, false,
	  "a directory's inode record embedded in its dirent (EI-1)",
	  "move the record to T_INODE and rewrite the dirent plain" },
#define NS_EMBED_REF (&defs[19])
	{ "NS_EMBED_REF", SEV_ERROR, true, false,
	  "an embedded inode whose T_INODE entry is not an INODE REF naming its dirent: missing, "
	  "malformed, naming another dirent, or a full record as well (EI-2)",
	  "write the INODE REF (of a full record as well: keep the record with the later ctime)" },
#define NS_EMBED_LINKS (&defs[20])
	{ "NS_EMBED_LINKS", SEV_ERROR, true, false,
	  "an embedded inode that other dirents name too (EI-2)",
	  "move the record to T_INODE and rewrite its dirents plain" },
#define NS_REF_DANGLING (&defs[21])
	{ "NS_REF_DANGLING", SEV_ERROR, true, false,
	  "an INODE REF whose dirent is missing, plain or embeds another inode, or a malformed "
	  "INODE REF: the inode's record is gone (EI-3)", "delete the INODE REF" },
#define NS_ORPHAN_EMBED (&defs[22])
	{ "NS_ORPHAN_EMBED", SEV_WARNING, true, false,
	  "an unlinked-inode orphan entry for an embedded inode or an INODE REF (EI-4)",
	  "delete the orphan entry" },
};

/* ---- the model ---- */

/* chk_inode.st */
enum {
	S_PRESENT = 0x001, /* the inode record exists */
	S_BAD = 0x002,     /* ... but does not decode (NS_INODE_RECORD) */
	S_UNREAD = 0x004,  /* ... but phase 2 could not read its value */
	S_SHORT = 0x008,   /* ... whose header does not parse (ns_inode_decode): no fields */
	S_ORPHAN = 0x010,  /* T_ORPHAN holds its ino */
	S_REACHED = 0x020, /* a directory reached from the root */
	S_PURGED = 0x040,  /* purged by an approved fix */
	S_TOUCHED = 0x080, /* an approved fix changed its dirents or subdirectories */
	S_NEW = 0x100,     /* created by a fix (lost+found) */
	S_PATH = 0x200,    /* cycle search: on the current path */
	S_DONE = 0x400,    /* cycle search: finished */
	S_TRUNC = 0x800,   /* ... its orphan entry holds a truncation (8 bytes: `trunc`) */
	S_OVAL = 0x1000,   /* ... its orphan entry's value is neither empty, 8 nor 16 bytes */
	S_TRUNC_OK = 0x2000, /* a pending truncation: its blocks past the size are expected */
	S_PUNCH = 0x4000,  /* ... its orphan entry holds a punched range (16 bytes: `trunc` is
			    * its first block, `punch_end` one past its last) */
	S_REF = 0x8000,    /* T_INODE holds an INODE REF (key in ref_off/ref_klen unless S_REF_BAD) */
	S_REF_BAD = 0x10000, /* ... that does not decode (ns_ref_decode) */
	S_EMB = 0x20000,   /* the fields come from the record embedded in dirent emb_de */
	S_REF_OK = 0x40000,/* ... and the REF names exactly that dirent (EI-2) */
	S_FULL2 = 0x80000, /* T_INODE holds a full record and a dirent embeds one as well */
};

/* chk_inode.dirty: fields an approved fix changed, written at the repair */
enum { F_NLINK = 1, F_PARENT = 2, F_SIZE = 4, F_BLOCKS = 8,
	F_TYPE = 16,    /* S_EMB: rewrite the embedding dirent's type byte from the mode */
	F_UNEMBED = 32, /* move the record to T_INODE; the embedding dirent (if kept) plain */
	F_REF = 64,     /* S_EMB: write the INODE REF naming the embedding dirent */
};

struct chk_inode {
	uint64_t ino, size, blocks, parent;
	int64_t ctime;             /* ns: picks the later of two records (NS_EMBED_REF) */
	uint64_t trunc;            /* the orphan entry's truncation value (S_TRUNC), or its
				    * range's first block (S_PUNCH) */
	uint64_t punch_end;        /* S_PUNCH: one past the range's last block */
	uint64_t n_punch;          /* T_DATA entries in the S_PUNCH range */
	uint64_t n_blk, n_badblk;  /* T_DATA entries; those of the wrong length */
	uint64_t n_past;           /* ... at or past ceil(size / 4096) */
	uint64_t max_blk, max_good;/* highest block number of all / of the right length */
	uint32_t mode, nlink, flags, rec_len;
	uint32_t n_xattr;
	uint32_t n_names;          /* counted dirents naming it (the model) */
	uint32_t n_subdirs;        /* counted dirents in it naming directories */
	uint32_t nl_before;        /* the link count its dirents imply as found */
	uint32_t first_name, first_child; /* dirent lists: index + 1, 0 = end */
	uint32_t emb_de;           /* the dirent embedding its record (index + 1; 0 none) */
	uint32_t ref_off;          /* S_REF: the REF's (parent, name) as a dirent key in arena */
	uint16_t ref_klen;
	uint32_t st;
	uint8_t dirty;
	uint8_t hdr_len;           /* the header's bytes (v1 88, v2 5..103) */
	uint8_t why;               /* S_SHORT: why_text index + 1 (0: unknown) */
};

/* ns_dirent.st: the entry's state in the store; fl: what the check made of it */
enum { E_LIVE = 1, E_GONE = 2, E_UNREAD = 3 };
enum { E_BAD = 1, E_DANGLING = 2, E_REMOVED = 4, E_COUNTED = 8, E_NEW = 16,
	E_EXTRA = 32 /* a directory's second name: not one of its parent's subdirectories */ };

struct ns_dirent {
	uint64_t parent, ino;
	uint32_t key_off, vlen;    /* raw key in ns->arena */
	uint32_t next_name, next_child; /* index + 1 */
	uint32_t emb;              /* an embedded inode: its record, decoded, in ns->emb
				    * (index + 1; 0: a plain dirent) */
	uint16_t klen;
	uint8_t type, st, fl;
};

struct ns_pair {
	uint64_t ino, sub; /* block number, or the hash of an xattr's name */
};

/* A log put or delete of a block or xattr: overrides the tree's entry for the key. */
struct ns_over {
	uint64_t ino, sub;
	uint32_t vlen;
	uint8_t tree, del;
};

struct ns_badblk {
	uint64_t ino, blk;
	uint32_t vlen;
};

/* A key of the wrong length in T_INODE, T_DATA, T_XATTR or T_ORPHAN. */
struct ns_odd {
	uint8_t *key;
	uint32_t vlen;
	uint16_t klen;
	uint8_t tree, gone;
};

struct idx {
	uint32_t *slot; /* entry index + 1; 0 empty */
	size_t cap, n;
};

/* A repair step, applied through the engine after the check. */
enum { OP_DEL, OP_PUT, OP_DEL_INO, OP_PURGE, OP_TRUNC, OP_PUNCH };
struct ns_op {
	uint8_t kind, tree;
	uint16_t klen;
	uint32_t vlen;
	uint64_t ino;   /* OP_DEL_INO (every key of ino in tree), OP_PURGE, OP_TRUNC, OP_PUNCH */
	uint64_t first; /* OP_TRUNC, OP_PUNCH: the first block deleted */
	uint64_t end;   /* OP_PUNCH: one past the last block deleted */
	uint8_t *key, *val;
};

struct chk_ns {
	bool oom;
	bool v4;                   /* format version 4 or later: embedded inodes, INODE REFs */
	struct chk_inode *emb;     /* embedded records (only the decoded fields are used) */
	size_t n_emb, cap_emb;
	struct chk_inode *in;
	size_t n_in, cap_in;
	struct idx ix_in;
	struct ns_dirent *de;
	size_t n_de, cap_de;
	struct idx ix_de;
	uint8_t *arena;
	size_t n_arena, cap_arena;
	struct ns_pair *blk, *xat;
	size_t n_blk, cap_blk, n_xat, cap_xat;
	struct ns_over *over;
	size_t n_over, cap_over;
	struct idx ix_over;
	struct ns_badblk *bad;
	size_t n_bad, cap_bad;
	struct ns_odd *odd;
	size_t n_odd, cap_odd;
	bool have_next, next_unread;
	uint64_t next_ino;
	uint32_t next_vlen;
	uint64_t n_tree[NS_TREES], n_log_ops, max_ref; /* max_ref: highest ino seen anywhere */

	/* the check */
	uint64_t max_ino;          /* highest ino with an inode record */
	uint64_t next_model;       /* next_ino as it will be written (0: unchanged) */
	bool next_dirty;
	uint64_t lf_ino;           /* lost+found: 0 unknown / none */
	int lf_state;              /* 0 not looked up, 1 usable, -1 unusable */
	struct ns_op *ops;
	size_t n_ops, cap_ops;
	size_t *ids;               /* approved problems */
	size_t n_ids, cap_ids;
	size_t mem_peak;
};

static bool ns_alloc_failed; /* c->ns could not be allocated: the phase fails with -ENOMEM */

static int grow(void *pp, size_t *cap, size_t need, size_t elsz)
{
	void **p = pp;
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elsz);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return mix64(h);
}

static uint64_t over_hash(uint8_t tree, uint64_t ino, uint64_t sub)
{
	return mix64(ino * 0x9e3779b97f4a7c15ull ^ sub ^ ((uint64_t)tree << 56));
}

static uint64_t hash_in(const struct chk_ns *ns, uint32_t e) { return mix64(ns->in[e].ino); }

static uint64_t hash_de(const struct chk_ns *ns, uint32_t e)
{
	return hash_bytes(ns->arena + ns->de[e].key_off, ns->de[e].klen);
}

static uint64_t hash_over(const struct chk_ns *ns, uint32_t e)
{
	const struct ns_over *o = &ns->over[e];
	return over_hash(o->tree, o->ino, o->sub);
}

/* Make room for one more entry (load at most 1/2). */
static int idx_reserve(struct idx *x, const struct chk_ns *ns,
		       uint64_t (*hash)(const struct chk_ns *, uint32_t))
{
	if (2 * (x->n + 1) <= x->cap)
		return 0;
	size_t cap = x->cap ? 2 * x->cap : 1024;
	uint32_t *s = calloc(cap, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < x->cap; i++) {
		if (!x->slot[i])
			continue;
		size_t j = hash(ns, x->slot[i] - 1) & (cap - 1);
		while (s[j])
			j = (j + 1) & (cap - 1);
		s[j] = x->slot[i];
	}
	free(x->slot);
	x->slot = s;
	x->cap = cap;
	return 0;
}

/* ---- inodes ---- */

static uint32_t *in_slot(struct chk_ns *ns, uint64_t ino)
{
	size_t mask = ns->ix_in.cap - 1, i = mix64(ino) & mask;
	while (ns->ix_in.slot[i] && ns->in[ns->ix_in.slot[i] - 1].ino != ino)
		i = (i + 1) & mask;
	return &ns->ix_in.slot[i];
}

static struct chk_inode *in_find(struct chk_ns *ns, uint64_t ino)
{
	if (!ns->ix_in.cap)
		return NULL;
	uint32_t s = *in_slot(ns, ino);
	return s ? &ns->in[s - 1] : NULL;
}

/* Find or add the entry of `ino`; NULL when out of memory.  Moves the array. */
static struct chk_inode *in_get(struct chk_ns *ns, uint64_t ino)
{
	struct chk_inode *p = in_find(ns, ino);
	if (p)
		return p;
	if (idx_reserve(&ns->ix_in, ns, hash_in) < 0 ||
	    grow(&ns->in, &ns->cap_in, ns->n_in + 1, sizeof(*ns->in)) < 0)
		return NULL;
	p = &ns->in[ns->n_in];
	memset(p, 0, sizeof(*p));
	p->ino = ino;
	*in_slot(ns, ino) = (uint32_t)++ns->n_in;
	ns->ix_in.n++;
	if (ino > ns->max_ref)
		ns->max_ref = ino;
	return p;
}

_Static_assert(NS_INODE_HDR_ANY <= UINT8_MAX, "chk_inode.hdr_len holds a header's length");

/* ns_inode_decode's reasons (static strings, a handful), kept as a byte per inode. */
static const char *why_text[15];

static uint8_t why_id(const char *why)
{
	for (unsigned i = 0; why && i < sizeof(why_text) / sizeof(why_text[0]); i++) {
		if (!why_text[i])
			why_text[i] = why;
		if (why_text[i] == why)
			return (uint8_t)(i + 1);
	}
	return 0;
}

static void inode_decode(struct chk_inode *p, const uint8_t *v, size_t vlen)
{
	p->st &= ~(uint32_t)(S_PRESENT | S_BAD | S_UNREAD | S_SHORT);
	p->st |= S_PRESENT;
	p->rec_len = vlen > UINT32_MAX ? UINT32_MAX : (uint32_t)vlen;
	p->mode = p->nlink = p->flags = 0;
	p->size = p->blocks = p->parent = 0;
	p->hdr_len = p->why = 0;
	if (!v) {
		p->st |= S_UNREAD;
		return;
	}
	struct ns_inode h;
	const char *why;
	int hl = ns_inode_decode(v, vlen, &h, &why);
	if (hl < 0) {
		p->st |= S_SHORT;
		p->why = why_id(why);
		return;
	}
	p->hdr_len = (uint8_t)hl;
	p->mode = h.mode;
	p->ctime = h.ctime;
	p->nlink = h.nlink;
	p->size = h.size;
	p->blocks = h.blocks;
	p->parent = h.parent;
	p->flags = h.flags;
}

/* A record with every field sound (not S_BAD, S_UNREAD, S_SHORT). */
static bool known(const struct chk_inode *p)
{
	return p && (p->st & (S_PRESENT | S_BAD | S_UNREAD | S_SHORT)) == S_PRESENT;
}

static bool present(const struct chk_inode *p) { return p && (p->st & S_PRESENT); }

/* Why the record does not decode, or NULL (man/kvfs.5 "Inode record"). */
static const char *record_why(const struct chk_inode *p, char *buf, size_t cap)
{
	uint32_t n = p->rec_len, hl = p->hdr_len;
	unsigned fmt = p->mode & S_IFMT;
	bool inl = p->flags & INODE_INLINE;
	if (p->st & S_SHORT)
		snprintf(buf, cap, "record of %" PRIu32 " bytes whose header does not parse: %s", n,
			 p->why ? why_text[p->why - 1] : "not a v1 or v2 inode record");
	else if (n > hl + SYMLINK_MAX + 1)
		snprintf(buf, cap, "record of %" PRIu32 " bytes, longer than its %" PRIu32
			 "-byte header + %u", n, hl, SYMLINK_MAX + 1);
	else if (fmt != S_IFREG && fmt != S_IFDIR && fmt != S_IFLNK && fmt != S_IFCHR &&
		 fmt != S_IFBLK && fmt != S_IFIFO && fmt != S_IFSOCK)
		snprintf(buf, cap, "mode %06o: not a file type", p->mode);
	else if (p->flags & ~INODE_INLINE)
		snprintf(buf, cap, "unknown flags 0x%" PRIx32, p->flags);
	else if (inl && n - hl != p->size)
		snprintf(buf, cap, "%" PRIu32 " bytes of inline data for size %" PRIu64,
			 n - hl, p->size);
	else if (!inl && n != hl)
		snprintf(buf, cap, "%" PRIu32 " bytes after the header without INODE_INLINE",
			 n - hl);
	else if (fmt == S_IFREG && inl && p->size > INLINE_MAX)
		snprintf(buf, cap, "an inline file of %" PRIu64 " bytes (at most %u)", p->size,
			 INLINE_MAX);
	else if (fmt == S_IFLNK && !inl)
		snprintf(buf, cap, "a symbolic link without INODE_INLINE");
	else if (fmt == S_IFLNK && (p->size == 0 || p->size > SYMLINK_MAX))
		snprintf(buf, cap, "a symbolic link target of %" PRIu64 " bytes", p->size);
	else
		return NULL;
	return buf;
}

/* ---- dirents ---- */

static uint8_t *de_key(const struct chk_ns *ns, const struct ns_dirent *e)
{
	return ns->arena + e->key_off;
}

static uint32_t *de_slot(struct chk_ns *ns, const uint8_t *key, size_t klen)
{
	size_t mask = ns->ix_de.cap - 1, i = hash_bytes(key, klen) & mask;
	for (;; i = (i + 1) & mask) {
		uint32_t s = ns->ix_de.slot[i];
		if (!s)
			return &ns->ix_de.slot[i];
		const struct ns_dirent *e = &ns->de[s - 1];
		if (e->klen == klen && memcmp(de_key(ns, e), key, klen) == 0)
			return &ns->ix_de.slot[i];
	}
}

static uint32_t de_find(struct chk_ns *ns, const uint8_t *key, size_t klen)
{
	return ns->ix_de.cap ? *de_slot(ns, key, klen) : 0;
}

/* Add an entry for `key` (not yet present); its index + 1, or 0 when out of memory. */
static uint32_t de_add(struct chk_ns *ns, const uint8_t *key, size_t klen)
{
	if (idx_reserve(&ns->ix_de, ns, hash_de) < 0 ||
	    grow(&ns->de, &ns->cap_de, ns->n_de + 1, sizeof(*ns->de)) < 0 ||
	    grow(&ns->arena, &ns->cap_arena, ns->n_arena + klen, 1) < 0 ||
	    ns->n_arena + klen > UINT32_MAX)
		return 0;
	struct ns_dirent *e = &ns->de[ns->n_de];
	memset(e, 0, sizeof(*e));
	e->key_off = (uint32_t)ns->n_arena;
	e->klen = (uint16_t)klen;
	memcpy(ns->arena + ns->n_arena, key, klen);
	ns->n_arena += klen;
	*de_slot(ns, key, klen) = (uint32_t)++ns->n_de;
	ns->ix_de.n++;
	return (uint32_t)ns->n_de;
}

static void de_apply(struct chk_ns *ns, const uint8_t *key, size_t klen, bool del,
		     const uint8_t *v, size_t vlen, bool v4)
{
	if (klen > STORE_MAX_KEY)
		return; /* the engine holds no such key */
	uint32_t i = de_find(ns, key, klen);
	if (!i) {
		if (del)
			return;
		if (!(i = de_add(ns, key, klen))) {
			ns->oom = true;
			return;
		}
	}
	struct ns_dirent *e = &ns->de[i - 1];
	if (del) {
		e->st = E_GONE;
		return;
	}
	e->st = v ? E_LIVE : E_UNREAD;
	e->vlen = vlen > UINT32_MAX ? UINT32_MAX : (uint32_t)vlen;
	e->parent = klen >= 8 ? ldbe64(key) : 0;
	e->ino = v && vlen >= 8 ? ld64(v) : 0;
	e->type = v && vlen >= DIRENT_VALUE ? v[8] : 0;
	if (v && vlen > DIRENT_VALUE && v4) { /* an embedded inode: decode its record now */
		if (!e->emb) {
			if (grow(&ns->emb, &ns->cap_emb, ns->n_emb + 1, sizeof(*ns->emb)) < 0) {
				ns->oom = true;
				return;
			}
			memset(&ns->emb[ns->n_emb], 0, sizeof(*ns->emb));
			e->emb = (uint32_t)++ns->n_emb;
		}
		inode_decode(&ns->emb[e->emb - 1], v + DIRENT_VALUE, vlen - DIRENT_VALUE);
	} else {
		e->emb = 0; /* a slot left behind by an overridden put is not looked at */
	}
	if (v && (vlen == DIRENT_VALUE || e->emb) && e->ino > ns->max_ref)
		ns->max_ref = e->ino;
}

/* Why a dirent is malformed, or NULL (man/kvfs.5 "Directory entries"). */
static const char *dirent_why(const struct chk_ns *ns, const struct ns_dirent *e, char *buf,
			      size_t cap)
{
	const uint8_t *k = de_key(ns, e), *name = k + 8;
	size_t n = e->klen >= 8 ? e->klen - 8u : 0;
	if (e->klen < 9)
		snprintf(buf, cap, "key of %u bytes: no name", e->klen);
	else if (n > NS_NAME_MAX)
		snprintf(buf, cap, "name of %zu bytes (at most %u)", n, NS_NAME_MAX);
	else if (memchr(name, '/', n))
		snprintf(buf, cap, "name holds '/'");
	else if (memchr(name, 0, n))
		snprintf(buf, cap, "name holds a NUL byte");
	else if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		snprintf(buf, cap, "name \"%.*s\"", (int)n, (const char *)name);
	else if (e->vlen != DIRENT_VALUE && !e->emb)
		snprintf(buf, cap, "value of %" PRIu32 " bytes, not %u%s", e->vlen, DIRENT_VALUE,
			 e->vlen > DIRENT_VALUE ? " (an embedded inode in a store of format "
			 "version 3 or older)" : "");
	else
		return NULL;
	return buf;
}

/* A dirent's name for messages: printable bytes as they are, others as \xNN. */
static const char *de_name(const struct chk_ns *ns, const struct ns_dirent *e, char *buf,
			   size_t cap)
{
	const uint8_t *k = de_key(ns, e);
	size_t n = e->klen > 8 ? e->klen - 8u : 0, o = 0;
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		uint8_t ch = k[8 + i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			buf[o++] = (char)ch;
		else
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
	}
	buf[o] = 0;
	return buf;
}

#define NAME_BUF (4 * NS_NAME_MAX + 8)

/* ---- blocks and xattrs ---- */

static struct ns_over *over_find(struct chk_ns *ns, uint8_t tree, uint64_t ino, uint64_t sub)
{
	if (!ns->ix_over.cap)
		return NULL;
	size_t mask = ns->ix_over.cap - 1, i = over_hash(tree, ino, sub) & mask;
	for (;; i = (i + 1) & mask) {
		uint32_t s = ns->ix_over.slot[i];
		if (!s)
			return NULL;
		struct ns_over *o = &ns->over[s - 1];
		if (o->tree == tree && o->ino == ino && o->sub == sub)
			return o;
	}
}

static void over_apply(struct chk_ns *ns, uint8_t tree, uint64_t ino, uint64_t sub, bool del,
		       size_t vlen)
{
	struct ns_over *o = over_find(ns, tree, ino, sub);
	if (!o) {
		if (idx_reserve(&ns->ix_over, ns, hash_over) < 0 ||
		    grow(&ns->over, &ns->cap_over, ns->n_over + 1, sizeof(*ns->over)) < 0) {
			ns->oom = true;
			return;
		}
		o = &ns->over[ns->n_over++];
		o->tree = tree;
		o->ino = ino;
		o->sub = sub;
		size_t mask = ns->ix_over.cap - 1, i = over_hash(tree, ino, sub) & mask;
		while (ns->ix_over.slot[i])
			i = (i + 1) & mask;
		ns->ix_over.slot[i] = (uint32_t)ns->n_over;
		ns->ix_over.n++;
	}
	o->del = del;
	o->vlen = vlen > UINT32_MAX ? UINT32_MAX : (uint32_t)vlen;
}

static void odd_apply(struct chk_ns *ns, uint8_t tree, bool log, bool del, const uint8_t *key,
		      size_t klen, size_t vlen)
{
	struct ns_odd *o = NULL;
	if (log) /* the trees hold each key once: only a log op can meet an earlier entry */
		for (size_t i = 0; i < ns->n_odd && !o; i++)
			if (ns->odd[i].tree == tree && ns->odd[i].klen == klen &&
			    memcmp(ns->odd[i].key, key, klen) == 0)
				o = &ns->odd[i];
	if (!o) {
		if (del)
			return;
		if (grow(&ns->odd, &ns->cap_odd, ns->n_odd + 1, sizeof(*ns->odd)) < 0) {
			ns->oom = true;
			return;
		}
		o = &ns->odd[ns->n_odd];
		if (!(o->key = malloc(klen ? klen : 1))) {
			ns->oom = true;
			return;
		}
		memcpy(o->key, key, klen);
		o->klen = (uint16_t)klen;
		o->tree = tree;
		ns->n_odd++;
	}
	o->gone = del;
	o->vlen = vlen > UINT32_MAX ? UINT32_MAX : (uint32_t)vlen;
}

/* ---- the collector ---- */

/* T_INODE[p->ino] is an INODE REF: no record (the inode exists only if the dirent it names
 * embeds it: pair_embedded); its (parent, name) kept as a dirent key in the arena. */
static void ref_apply(struct chk_ns *ns, struct chk_inode *p, const uint8_t *v, size_t vlen)
{
	uint64_t parent;
	const uint8_t *name;
	size_t n;
	p->st &= ~(uint32_t)(S_PRESENT | S_BAD | S_UNREAD | S_SHORT);
	p->st |= S_REF;
	if (ns_ref_decode(v, vlen, &parent, &name, &n) < 0) {
		p->st |= S_REF_BAD;
		return;
	}
	if (grow(&ns->arena, &ns->cap_arena, ns->n_arena + 8 + n, 1) < 0 ||
	    ns->n_arena + 8 + n > UINT32_MAX) {
		ns->oom = true;
		return;
	}
	p->ref_off = (uint32_t)ns->n_arena;
	p->ref_klen = (uint16_t)(8 + n);
	stbe64(ns->arena + ns->n_arena, parent);
	memcpy(ns->arena + ns->n_arena + 8, name, n);
	ns->n_arena += 8 + n;
}

static struct chk_ns *ns_of(struct chk *c)
{
	if (!c->ns && !ns_alloc_failed) {
		if (!(c->ns = calloc(1, sizeof(*c->ns)))) {
			ns_alloc_failed = true;
			return NULL;
		}
		/* the format version of the meta page checked (store/format.h): embedded inodes
		 * and INODE REFs exist from version 4 on, before it they are corruption */
		uint8_t pg[STORE_PAGE_SIZE];
		c->ns->v4 = chk_read_page(c, c->slot, pg) == 0 && ld32(pg + 16) >= 4;
	}
	return c->ns && !c->ns->oom ? c->ns : NULL;
}

static void ns_entry(struct chk *c, unsigned tree, bool log, bool del, const uint8_t *key,
		     size_t klen, const uint8_t *val, size_t vlen)
{
	struct chk_ns *ns;
	if (tree >= NS_TREES || !(ns = ns_of(c)))
		return;
	if (log)
		ns->n_log_ops++;
	else
		ns->n_tree[tree]++;
	if (!del && !val && chk_ns_wants_value(tree))
		c->ns_incomplete = true; /* phase 2 could not read it */
	struct chk_inode *p;
	switch (tree) {
	case T_INODE:
		if (klen != 8) {
			odd_apply(ns, T_INODE, log, del, key, klen, vlen);
			break;
		}
		if (!(p = in_get(ns, ldbe64(key)))) {
			ns->oom = true;
			break;
		}
		p->st &= ~(uint32_t)(S_REF | S_REF_BAD);
		if (del)
			p->st &= ~(uint32_t)(S_PRESENT | S_BAD | S_UNREAD | S_SHORT);
		else if (val && (ns->v4 || log) && ns_is_ref(val, vlen))
			ref_apply(ns, p, val, vlen);
		else
			inode_decode(p, val, vlen);
		break;
	case T_DIRENT:
		de_apply(ns, key, klen, del, val, vlen, ns->v4 || log);
		break;
	case T_DATA:
		if (klen != 16) {
			odd_apply(ns, T_DATA, log, del, key, klen, vlen);
			break;
		}
		if (log) {
			over_apply(ns, T_DATA, ldbe64(key), ldbe64(key + 8), del, vlen);
			break;
		}
		if (grow(&ns->blk, &ns->cap_blk, ns->n_blk + 1, sizeof(*ns->blk)) < 0) {
			ns->oom = true;
			break;
		}
		ns->blk[ns->n_blk++] = (struct ns_pair){ ldbe64(key), ldbe64(key + 8) };
		if (vlen > BLOCK) { /* a shorter block reads as padded with zeros (kvfs.5) */
			if (grow(&ns->bad, &ns->cap_bad, ns->n_bad + 1, sizeof(*ns->bad)) < 0) {
				ns->oom = true;
				break;
			}
			ns->bad[ns->n_bad++] = (struct ns_badblk){ ldbe64(key), ldbe64(key + 8),
								    (uint32_t)vlen };
		}
		break;
	case T_XATTR:
		if (klen < 9) {
			odd_apply(ns, T_XATTR, log, del, key, klen, vlen);
			break;
		}
		if (log) {
			over_apply(ns, T_XATTR, ldbe64(key), hash_bytes(key + 8, klen - 8), del,
				   vlen);
			break;
		}
		if (grow(&ns->xat, &ns->cap_xat, ns->n_xat + 1, sizeof(*ns->xat)) < 0) {
			ns->oom = true;
			break;
		}
		ns->xat[ns->n_xat++] = (struct ns_pair){ ldbe64(key), hash_bytes(key + 8, klen - 8) };
		break;
	case T_ORPHAN:
		if (klen != 8) {
			odd_apply(ns, T_ORPHAN, log, del, key, klen, vlen);
			break;
		}
		if (!(p = in_get(ns, ldbe64(key)))) {
			ns->oom = true;
			break;
		}
		p->st &= ~(uint32_t)(S_ORPHAN | S_TRUNC | S_OVAL | S_PUNCH);
		if (del)
			break;
		p->st |= S_ORPHAN;
		if (vlen == ORPHAN_TRUNC_LEN && val) { /* a truncation (man/kvfs.5 "Orphans") */
			p->st |= S_TRUNC;
			p->trunc = ld64(val);
		} else if (vlen == ORPHAN_RANGE_LEN && val) { /* a punched range (idem) */
			p->st |= S_PUNCH;
			p->trunc = ld64(val);
			p->punch_end = ld64((const uint8_t *)val + 8);
		} else if (vlen) { /* an unreadable value of 8 or 16 bytes is left unjudged */
			p->st |= vlen != ORPHAN_TRUNC_LEN && vlen != ORPHAN_RANGE_LEN ? S_OVAL : 0;
		}
		break;
	case T_SUPER:
		if (klen != 8 || memcmp(key, NS_SUPER_NEXT_INO, 8) != 0)
			break; /* no other key is defined; not the namespace's concern */
		ns->have_next = !del;
		ns->next_unread = !del && !val;
		ns->next_vlen = (uint32_t)(vlen > UINT32_MAX ? UINT32_MAX : vlen);
		ns->next_ino = !del && val && vlen == 8 ? ld64(val) : 0;
		break;
	}
}

bool chk_ns_wants_value(unsigned tree)
{
	return tree == T_INODE || tree == T_DIRENT || tree == T_ORPHAN || tree == T_SUPER;
}

void chk_ns_tree_entry(struct chk *c, unsigned tree, const void *key, size_t klen,
		       const void *val, size_t vlen)
{
	ns_entry(c, tree, false, false, key, klen, val, vlen);
}

void chk_ns_log_op(struct chk *c, unsigned tree, bool del, const void *key, size_t klen,
		   const void *val, size_t vlen)
{
	ns_entry(c, tree, true, del, key, klen, del ? NULL : val, del ? 0 : vlen);
}

static void ns_free(struct chk_ns *ns)
{
	if (!ns)
		return;
	for (size_t i = 0; i < ns->n_odd; i++)
		free(ns->odd[i].key);
	for (size_t i = 0; i < ns->n_ops; i++) {
		free(ns->ops[i].key);
		free(ns->ops[i].val);
	}
	free(ns->in);
	free(ns->emb);
	free(ns->ix_in.slot);
	free(ns->de);
	free(ns->ix_de.slot);
	free(ns->arena);
	free(ns->blk);
	free(ns->xat);
	free(ns->over);
	free(ns->ix_over.slot);
	free(ns->bad);
	free(ns->odd);
	free(ns->ops);
	free(ns->ids);
	free(ns);
}

static size_t ns_mem(const struct chk_ns *ns)
{
	return ns->cap_in * sizeof(*ns->in) + ns->ix_in.cap * 4 + ns->cap_de * sizeof(*ns->de) +
	       ns->ix_de.cap * 4 + ns->cap_arena + ns->cap_blk * sizeof(*ns->blk) +
	       ns->cap_xat * sizeof(*ns->xat) + ns->cap_over * sizeof(*ns->over) +
	       ns->ix_over.cap * 4 + ns->cap_bad * sizeof(*ns->bad) +
	       ns->cap_odd * sizeof(*ns->odd) + ns->cap_emb * sizeof(*ns->emb) + sizeof(*ns);
}

/* ---- after collection: the final view ---- */

static int cmp_inode(const void *a, const void *b)
{
	uint64_t x = ((const struct chk_inode *)a)->ino, y = ((const struct chk_inode *)b)->ino;
	return x < y ? -1 : x > y;
}

static void count_block(struct chk_inode *p, uint64_t blk, bool good)
{
	if (blk >= (p->size + BLOCK - 1) / BLOCK) /* p->size: 0 unless a record was read */
		p->n_past++;
	if ((p->st & S_PUNCH) && blk >= p->trunc && blk < p->punch_end)
		p->n_punch++;
	if (p->n_blk == 0 || blk > p->max_blk)
		p->max_blk = blk;
	if (good && (p->n_blk == p->n_badblk || blk > p->max_good))
		p->max_good = blk;
	p->n_blk++;
	if (!good)
		p->n_badblk++;
}

static bool ref_names(const struct chk_ns *ns, const struct chk_inode *p,
		      const struct ns_dirent *e)
{
	return (p->st & (S_REF | S_REF_BAD)) == S_REF && p->ref_klen == e->klen &&
	       memcmp(ns->arena + p->ref_off, de_key(ns, e), e->klen) == 0;
}

/* The inode entry takes the fields of the record embedded in dirent i. */
static void adopt(struct chk_ns *ns, struct chk_inode *p, uint32_t i)
{
	const struct chk_inode *r = &ns->emb[ns->de[i].emb - 1];
	const uint32_t rec = S_PRESENT | S_BAD | S_UNREAD | S_SHORT;
	p->st = (p->st & ~rec) | (r->st & rec) | S_EMB;
	p->mode = r->mode;
	p->nlink = r->nlink;
	p->size = r->size;
	p->blocks = r->blocks;
	p->parent = r->parent;
	p->flags = r->flags;
	p->ctime = r->ctime;
	p->rec_len = r->rec_len;
	p->hdr_len = r->hdr_len;
	p->why = r->why;
}

/*
 * Pair embedded dirents with T_INODE (the log applied): each inode an embedded dirent names
 * gets one embedding dirent (emb_de: the one its REF names, else the first in key order) and,
 * unless T_INODE holds a sound full record with a later ctime, that dirent's record (S_EMB),
 * so that every later check sees the inode as the store will hold it after NS_EMBED_REF's
 * fix.  An INODE REF no embedding dirent matches leaves the inode missing (NS_REF_DANGLING).
 */
static void pair_embedded(struct chk_ns *ns)
{
	for (uint32_t i = 0; i < ns->n_de; i++) {
		const struct ns_dirent *e = &ns->de[i];
		if (e->st != E_LIVE || !e->emb)
			continue;
		struct chk_inode *p = in_find(ns, e->ino);
		if (!p->emb_de || (ref_names(ns, p, e) && !ref_names(ns, p, &ns->de[p->emb_de - 1])))
			p->emb_de = i + 1;
	}
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		if (!p->emb_de)
			continue;
		const struct ns_dirent *e = &ns->de[p->emb_de - 1];
		const struct chk_inode *r = &ns->emb[e->emb - 1];
		if (p->st & S_UNREAD) { /* phase 2 could not read T_INODE's value: a REF or not */
			adopt(ns, p, p->emb_de - 1);
			p->st |= S_REF_OK;
			continue;
		}
		if (present(p)) {
			p->st |= S_FULL2;
			if (known(p) && !(known(r) && r->ctime >= p->ctime))
				continue; /* T_INODE's record is kept */
		}
		adopt(ns, p, p->emb_de - 1);
		if (ref_names(ns, p, e))
			p->st |= S_REF_OK;
	}
}

/* Sort the inodes by ino, fold the blocks and xattrs (tree overridden by log) into them, and
 * leave in ns->bad the blocks of the wrong length that are there at the end. */
static int finalize(struct chk_ns *ns)
{
	/* the entries the blocks and xattrs need, before the sort */
	for (size_t i = 0; i < ns->n_blk; i++)
		if (!in_get(ns, ns->blk[i].ino))
			return -ENOMEM;
	for (size_t i = 0; i < ns->n_xat; i++)
		if (!in_get(ns, ns->xat[i].ino))
			return -ENOMEM;
	for (size_t i = 0; i < ns->n_over; i++)
		if (!ns->over[i].del && !in_get(ns, ns->over[i].ino))
			return -ENOMEM;
	for (size_t i = 0; i < ns->n_de; i++)
		if (ns->de[i].st == E_LIVE && ns->de[i].emb && !in_get(ns, ns->de[i].ino))
			return -ENOMEM;
	/* room for lost+found, so that creating it later moves nothing */
	if (grow(&ns->in, &ns->cap_in, ns->n_in + 1, sizeof(*ns->in)) < 0 ||
	    idx_reserve(&ns->ix_in, ns, hash_in) < 0)
		return -ENOMEM;
	qsort(ns->in, ns->n_in, sizeof(*ns->in), cmp_inode);
	memset(ns->ix_in.slot, 0, ns->ix_in.cap * sizeof(*ns->ix_in.slot));
	for (size_t i = 0; i < ns->n_in; i++)
		*in_slot(ns, ns->in[i].ino) = (uint32_t)(i + 1);
	ns->mem_peak = ns_mem(ns);
	pair_embedded(ns); /* before the blocks are counted against the sizes */

	size_t nb = 0;
	for (size_t i = 0; i < ns->n_bad; i++) /* the tree's short blocks the log left */
		if (!over_find(ns, T_DATA, ns->bad[i].ino, ns->bad[i].blk))
			ns->bad[nb++] = ns->bad[i];
	ns->n_bad = nb;
	for (size_t i = 0, j = 0; i < ns->n_blk; i++) {
		const struct ns_pair *b = &ns->blk[i];
		if (over_find(ns, T_DATA, b->ino, b->sub))
			continue;
		bool good = true;
		/* ns->bad is in key order, as ns->blk: walk both */
		while (j < nb && (ns->bad[j].ino < b->ino ||
				  (ns->bad[j].ino == b->ino && ns->bad[j].blk < b->sub)))
			j++;
		if (j < nb && ns->bad[j].ino == b->ino && ns->bad[j].blk == b->sub)
			good = false;
		count_block(in_find(ns, b->ino), b->sub, good);
	}
	for (size_t i = 0; i < ns->n_xat; i++)
		if (!over_find(ns, T_XATTR, ns->xat[i].ino, ns->xat[i].sub))
			in_find(ns, ns->xat[i].ino)->n_xattr++;
	for (size_t i = 0; i < ns->n_over; i++) {
		const struct ns_over *o = &ns->over[i];
		if (o->del)
			continue;
		if (o->tree == T_XATTR) {
			in_find(ns, o->ino)->n_xattr++;
			continue;
		}
		count_block(in_find(ns, o->ino), o->sub, o->vlen <= BLOCK);
		if (o->vlen > BLOCK) {
			if (grow(&ns->bad, &ns->cap_bad, ns->n_bad + 1, sizeof(*ns->bad)) < 0)
				return -ENOMEM;
			ns->bad[ns->n_bad++] = (struct ns_badblk){ o->ino, o->sub, o->vlen };
		}
	}
	free(ns->blk);
	free(ns->xat);
	ns->blk = ns->xat = NULL;
	ns->cap_blk = ns->cap_xat = 0;
	for (size_t i = 0; i < ns->n_in; i++)
		if (present(&ns->in[i]) && ns->in[i].ino > ns->max_ino)
			ns->max_ino = ns->in[i].ino;
	return 0;
}

/* ---- repairs: recording ---- */

static int op_add(struct chk_ns *ns, uint8_t kind, uint8_t tree, uint64_t ino,
		  const void *key, size_t klen, const void *val, size_t vlen)
{
	if (grow(&ns->ops, &ns->cap_ops, ns->n_ops + 1, sizeof(*ns->ops)) < 0)
		return -ENOMEM;
	struct ns_op *o = &ns->ops[ns->n_ops];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->tree = tree;
	o->ino = ino;
	if (klen && !(o->key = malloc(klen)))
		return -ENOMEM;
	if (vlen && !(o->val = malloc(vlen))) {
		free(o->key);
		return -ENOMEM;
	}
	if (klen)
		memcpy(o->key, key, klen);
	if (vlen)
		memcpy(o->val, val, vlen);
	o->klen = (uint16_t)klen;
	o->vlen = (uint32_t)vlen;
	ns->n_ops++;
	return 0;
}

/* Ask the gate for problem `id`; true when the fix is to be made.  `needs_complete`: the
 * fix relies on the absence of entries, which an incomplete namespace makes unreliable. */
static bool fix_ok(struct chk *c, size_t id, bool needs_complete, const char *action)
{
	struct chk_ns *ns = c->ns;
	if (ns->oom || (needs_complete && c->ns_incomplete))
		return false;
	if (!chk_gate(c, id, action))
		return false;
	if (grow(&ns->ids, &ns->cap_ids, ns->n_ids + 1, sizeof(*ns->ids)) < 0) {
		ns->oom = true;
		return false;
	}
	ns->ids[ns->n_ids++] = id;
	return true;
}

static const char *inc(const struct chk *c)
{
	return c->ns_incomplete ? " (namespace incomplete)" : "";
}

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symbolic link";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	case S_IFIFO: return "FIFO";
	case S_IFSOCK: return "socket";
	}
	return "inode";
}

/* Is the inode a directory (or, for a damaged record, may it be one)? */
static bool is_dir(const struct chk_inode *p, const struct ns_dirent *e)
{
	if (known(p) || (present(p) && !(p->st & (S_SHORT | S_UNREAD))))
		return S_ISDIR(p->mode);
	return e && e->type == DT_DIR_TYPE;
}

/* ---- the model: dirent lists and counts ---- */

static bool counted(const struct ns_dirent *e)
{
	return (e->fl & (E_COUNTED | E_REMOVED)) == E_COUNTED;
}

/* Link dirent i into its directory's and its inode's lists and count it. */
static void de_count(struct chk_ns *ns, uint32_t i)
{
	struct ns_dirent *e = &ns->de[i];
	struct chk_inode *par = in_find(ns, e->parent), *t = in_find(ns, e->ino);
	e->fl |= E_COUNTED;
	e->next_child = par->first_child;
	par->first_child = i + 1;
	e->next_name = t->first_name;
	t->first_name = i + 1;
	t->n_names++;
	if (is_dir(t, e))
		par->n_subdirs++;
}

/* An approved fix removes dirent i. */
static int de_remove(struct chk_ns *ns, uint32_t i)
{
	struct ns_dirent *e = &ns->de[i];
	if (e->fl & E_REMOVED)
		return 0;
	e->fl |= E_REMOVED;
	struct chk_inode *emb = e->emb ? in_find(ns, e->ino) : NULL;
	if (emb && emb->emb_de == i + 1 && (emb->st & S_EMB))
		emb->dirty |= F_UNEMBED; /* its record must not go with the dirent */
	if (e->fl & E_COUNTED) {
		struct chk_inode *par = in_find(ns, e->parent), *t = in_find(ns, e->ino);
		t->n_names--;
		t->st |= S_TOUCHED;
		if (is_dir(t, e)) {
			/* an extra one was never counted as a subdirectory, but the link
			 * count as found may have counted it */
			if (!(e->fl & E_EXTRA))
				par->n_subdirs--;
			par->st |= S_TOUCHED;
		}
	}
	if (e->fl & E_NEW)
		return 0;
	return op_add(ns, OP_DEL, T_DIRENT, 0, de_key(ns, e), e->klen, NULL, 0);
}

/* An approved fix adds the dirent (parent, name) -> ino of type `type`. */
static int de_new(struct chk_ns *ns, uint64_t parent, const char *name, size_t n,
		  uint64_t ino, uint8_t type)
{
	uint8_t k[8 + NS_NAME_MAX], v[DIRENT_VALUE];
	size_t klen = dirent_key(k, parent, name, n);
	uint32_t i = de_add(ns, k, klen);
	if (!i)
		return -ENOMEM;
	struct ns_dirent *e = &ns->de[i - 1];
	e->st = E_LIVE;
	e->fl = E_NEW;
	e->parent = parent;
	e->ino = ino;
	e->type = type;
	e->vlen = DIRENT_VALUE;
	de_count(ns, i - 1);
	in_find(ns, ino)->st |= S_TOUCHED;
	in_find(ns, parent)->st |= S_TOUCHED;
	st64(v, ino);
	v[8] = type;
	return op_add(ns, OP_PUT, T_DIRENT, 0, k, klen, v, sizeof(v));
}

/* The counted dirent of a directory to follow upwards: the one in its parent field, else the
 * first; 0 when none (index + 1). */
static uint32_t dir_up(struct chk_ns *ns, const struct chk_inode *d)
{
	uint32_t first = 0;
	for (uint32_t i = d->first_name; i; i = ns->de[i - 1].next_name) {
		const struct ns_dirent *e = &ns->de[i - 1];
		if (!counted(e))
			continue;
		if (e->parent == d->parent)
			return i;
		if (!first)
			first = i;
	}
	return first;
}

/* ---- the checks ---- */

static void check_next_ino(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	uint64_t want = (ns->max_ref > ns->max_ino ? ns->max_ref : ns->max_ino) + 1;
	if (want < NS_ROOT_INO + 1)
		want = NS_ROOT_INO + 1;
	if (ns->have_next && ns->next_unread)
		return; /* phase 2 could not read it: reported there */
	size_t id;
	if (!ns->have_next)
		id = chk_report(c, NS_NEXT_INO, 0, 0, "next_ino is missing (highest inode %" PRIu64
				")%s", ns->max_ino, inc(c));
	else if (ns->next_vlen != 8)
		id = chk_report(c, NS_NEXT_INO, 0, 0, "next_ino's value is %" PRIu32
				" bytes, not 8", ns->next_vlen);
	else if (ns->next_ino <= ns->max_ino || ns->next_ino <= NS_ROOT_INO)
		id = chk_report(c, NS_NEXT_INO, 0, 0, "next_ino %" PRIu64 " is not above inode %"
				PRIu64, ns->next_ino, ns->max_ino);
	else
		return;
	if (ns->have_next && ns->next_vlen == 8 && ns->next_ino > want)
		want = ns->next_ino;
	char act[64];
	snprintf(act, sizeof(act), "set next_ino to %" PRIu64, want);
	if (fix_ok(c, id, false, act)) {
		ns->next_model = want;
		ns->next_dirty = true;
	}
}

static void check_records(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	char why[160];
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		if (!present(p) || (p->st & S_UNREAD))
			continue;
		if (record_why(p, why, sizeof(why))) {
			p->st |= S_BAD;
			char nm[NAME_BUF];
			if (p->st & S_EMB) /* EI-1: the same rules as a record in T_INODE */
				chk_report(c, NS_INODE_RECORD, 0, p->ino, "embedded in dirent \"%s\" "
					   "in directory %" PRIu64 ": %s",
					   de_name(ns, &ns->de[p->emb_de - 1], nm, sizeof(nm)),
					   ns->de[p->emb_de - 1].parent, why);
			else
				chk_report(c, NS_INODE_RECORD, 0, p->ino, "%s", why);
		}
	}
	for (size_t i = 0; i < ns->n_odd; i++)
		if (!ns->odd[i].gone && ns->odd[i].tree == T_INODE)
			chk_report(c, NS_INODE_RECORD, 0, 0, "an inode key of %u bytes, not 8",
				   ns->odd[i].klen);
}

/* NS_ROOT: false when the root is not a sound directory (no walk, no lost+found). */
static bool check_root(struct chk *c)
{
	struct chk_inode *r = in_find(c->ns, NS_ROOT_INO);
	if (!present(r)) {
		chk_report(c, NS_ROOT, 0, NS_ROOT_INO, "the root directory (inode 1) is missing%s",
			   inc(c));
		return false;
	}
	if (!known(r))
		return false; /* NS_INODE_RECORD, or unread */
	if (!S_ISDIR(r->mode)) {
		chk_report(c, NS_ROOT, 0, NS_ROOT_INO, "the root (inode 1) is a %s, not a "
			   "directory", type_name(r->mode));
		return false;
	}
	return true;
}

/* Malformed and dangling dirents, types; then count the rest (the model as found). */
static int check_dirents(struct chk *c, bool root_ok)
{
	struct chk_ns *ns = c->ns;
	char why[160], nm[NAME_BUF], act[96];
	int r;
	for (uint32_t i = 0; i < ns->n_de; i++) {
		struct ns_dirent *e = &ns->de[i];
		if (e->st != E_LIVE)
			continue;
		if (dirent_why(ns, e, why, sizeof(why))) {
			/* Before version 4, a value longer than DIRENT_VALUE whose inode has its
			 * record in T_INODE still names that inode in its first bytes (an
			 * embedded inode written into an older store, whose record was kept):
			 * the dirent is rewritten plain, and the file keeps its name.  Any
			 * other malformed dirent is removed (its inode, if any, is then lost
			 * and reconnected). */
			struct chk_inode *named = in_find(ns, e->ino);
			bool keep = e->klen > 8 && e->klen - 8u <= NS_NAME_MAX &&
				    !memchr(de_key(ns, e) + 8, '/', e->klen - 8u) &&
				    !memchr(de_key(ns, e) + 8, 0, e->klen - 8u) &&
				    e->vlen > DIRENT_VALUE && !e->emb && known(named) &&
				    !(named->st & S_REF);
			size_t id = chk_report(c, NS_DIRENT_BAD, 0, 0, "dirent \"%s\" in directory %"
					       PRIu64 ": %s", de_name(ns, e, nm, sizeof(nm)),
					       e->parent, why);
			if (keep) {
				if (fix_ok(c, id, false, "rewrite the dirent plain (its inode's "
					   "record is in T_INODE)")) {
					uint8_t v[DIRENT_VALUE];
					st64(v, e->ino);
					v[8] = e->type;
					e->vlen = DIRENT_VALUE;
					if ((r = op_add(ns, OP_PUT, T_DIRENT, 0, de_key(ns, e),
							e->klen, v, sizeof(v))) < 0)
						return r;
				} else {
					e->fl |= E_BAD;
					continue;
				}
			} else {
				e->fl |= E_BAD;
				if (fix_ok(c, id, false, "remove the dirent") &&
				    (r = de_remove(ns, i)) < 0)
					return r;
				continue;
			}
		}
		struct chk_inode *par = in_find(ns, e->parent), *t = in_find(ns, e->ino);
		char dang[96];
		dang[0] = 0;
		if (!present(par))
			snprintf(dang, sizeof(dang), ": directory %" PRIu64 " is missing", e->parent);
		else if (known(par) && !S_ISDIR(par->mode))
			snprintf(dang, sizeof(dang), ": inode %" PRIu64 " is a %s, not a directory",
				 e->parent, type_name(par->mode));
		else if (!present(t))
			snprintf(dang, sizeof(dang), " names missing inode %" PRIu64, e->ino);
		if (dang[0] && e->parent == NS_ROOT_INO && !root_ok) {
			e->fl |= E_DANGLING; /* NS_ROOT says it: removing the tree's top is no fix */
			continue;
		}
		if (dang[0]) {
			e->fl |= E_DANGLING;
			size_t id = chk_report(c, NS_DIRENT_DANGLING, 0, e->ino,
					       "dirent \"%s\" in directory %" PRIu64 "%s%s",
					       de_name(ns, e, nm, sizeof(nm)), e->parent, dang, inc(c));
			if (fix_ok(c, id, true, "remove the dirent") && (r = de_remove(ns, i)) < 0)
				return r;
			continue;
		}
		if (known(t) && e->type != (t->mode & S_IFMT) >> 12) {
			unsigned want = (t->mode & S_IFMT) >> 12;
			size_t id = chk_report(c, NS_DIRENT_TYPE, 0, e->ino,
					       "dirent \"%s\" in directory %" PRIu64 " records type %u"
					       " for inode %" PRIu64 ", a %s (type %u)",
					       de_name(ns, e, nm, sizeof(nm)), e->parent, e->type,
					       e->ino, type_name(t->mode), want);
			snprintf(act, sizeof(act), "set the dirent's type to %u", want);
			if (!fix_ok(c, id, false, act))
				continue;
			e->type = (uint8_t)want;
			if ((t->st & S_EMB) && t->emb_de == i + 1) {
				t->dirty |= F_TYPE; /* ap_inode rewrites the embedding dirent */
			} else {
				/* a plain dirent (or an embedded one not chosen: plain, as the
				 * other fixes leave it) */
				uint8_t v[DIRENT_VALUE];
				st64(v, e->ino);
				v[8] = (uint8_t)want;
				if ((r = op_add(ns, OP_PUT, T_DIRENT, 0, de_key(ns, e), e->klen, v,
						sizeof(v))) < 0)
					return r;
			}
		}
	}
	for (uint32_t i = 0; i < ns->n_de; i++) {
		struct ns_dirent *e = &ns->de[i];
		if (e->st == E_LIVE && !(e->fl & (E_BAD | E_DANGLING)))
			de_count(ns, i);
	}
	/* the link count the dirents imply as found: every directory dirent a subdirectory */
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		p->nl_before = is_dir(p, NULL) ? 2 + p->n_subdirs : p->n_names;
	}
	/* a directory links only the directory of its one dirent (NS_DIR_LINKS removes the
	 * others), so only that one counts as a subdirectory of the repaired tree */
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *d = &ns->in[i];
		if (!known(d) || !S_ISDIR(d->mode) ||
		    d->n_names <= (d->ino == NS_ROOT_INO ? 0u : 1u))
			continue;
		uint32_t keep = d->ino == NS_ROOT_INO ? 0 : dir_up(ns, d);
		for (uint32_t j = d->first_name; j; j = ns->de[j - 1].next_name) {
			struct ns_dirent *e = &ns->de[j - 1];
			if (!counted(e) || j == keep)
				continue;
			e->fl |= E_EXTRA;
			in_find(ns, e->parent)->n_subdirs--;
		}
	}
	return 0;
}

/* What the dirent a dangling REF names holds, for the message. */
static void ref_target(struct chk_ns *ns, const struct chk_inode *p, char *buf, size_t cap)
{
	char nm[NAME_BUF];
	if (p->st & S_REF_BAD) {
		snprintf(buf, cap, "a malformed INODE REF");
		return;
	}
	uint32_t j = de_find(ns, ns->arena + p->ref_off, p->ref_klen);
	const struct ns_dirent *e = j ? &ns->de[j - 1] : NULL;
	const struct ns_dirent ref = { .key_off = p->ref_off, .klen = p->ref_klen };
	int n = snprintf(buf, cap, "an INODE REF to dirent \"");
	de_name(ns, &ref, nm, sizeof(nm));
	n += snprintf(buf + n, cap - (size_t)n, "%s\" in directory %" PRIu64 ", which ", nm,
		      ldbe64(ns->arena + p->ref_off));
	if (!e || e->st == E_GONE)
		snprintf(buf + n, cap - (size_t)n, "does not exist");
	else if (e->st == E_UNREAD)
		snprintf(buf + n, cap - (size_t)n, "could not be read");
	else if (e->ino != p->ino)
		snprintf(buf + n, cap - (size_t)n, "%s inode %" PRIu64,
			 e->emb ? "embeds" : "names", e->ino);
	else
		snprintf(buf + n, cap - (size_t)n, "names it plainly");
}

/* EI-1 (a directory embedded), EI-2 and EI-3, after the dirents are counted (n_names).
 * The records that do not decode are NS_INODE_RECORD's (check_records), a type byte that
 * disagrees NS_DIRENT_TYPE's, an nlink other than 1 with one name NS_NLINK's. */
static int check_embedded(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	char nm[NAME_BUF], why[NAME_BUF + 160];
	int r;
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		if ((p->st & S_REF) && !p->emb_de && !(p->st & S_PURGED)) {
			uint8_t k[8];
			ref_target(ns, p, why, sizeof(why));
			size_t id = chk_report(c, NS_REF_DANGLING, 0, p->ino, "T_INODE holds %s: "
					       "the inode's record is gone%s", why, inc(c));
			ino_key(k, p->ino);
			/* the model keeps S_REF: the inode is missing either way, and NS_ORPHAN_EMBED
			 * still names what its orphan entry was for */
			if (fix_ok(c, id, true, "delete the INODE REF") &&
			    (r = op_add(ns, OP_DEL, T_INODE, 0, k, 8, NULL, 0)) < 0)
				return r;
			continue;
		}
		if (!p->emb_de || !present(p))
			continue;
		struct ns_dirent *e = &ns->de[p->emb_de - 1];
		de_name(ns, e, nm, sizeof(nm));
		if ((p->st & S_EMB) && known(p) && S_ISDIR(p->mode)) {
			size_t id = chk_report(c, NS_EMBED_DIR, 0, p->ino, "a directory's record is "
					       "embedded in dirent \"%s\" in directory %" PRIu64, nm,
					       e->parent);
			if (fix_ok(c, id, false, "move the record to T_INODE"))
				p->dirty |= F_UNEMBED;
			continue;
		}
		if (p->n_names > 1) {
			size_t id = chk_report(c, NS_EMBED_LINKS, 0, p->ino, "embedded in dirent \"%s\" "
					       "in directory %" PRIu64 ", but %" PRIu32 " dirents name "
					       "it", nm, e->parent, p->n_names);
			if (!fix_ok(c, id, false, "move the record to T_INODE"))
				continue;
			p->dirty |= F_UNEMBED;
			for (uint32_t j = p->first_name; j; j = ns->de[j - 1].next_name) {
				struct ns_dirent *x = &ns->de[j - 1];
				uint8_t v[DIRENT_VALUE];
				if (!x->emb || j == p->emb_de || !counted(x))
					continue;
				st64(v, x->ino);
				v[8] = x->type;
				if ((r = op_add(ns, OP_PUT, T_DIRENT, 0, de_key(ns, x), x->klen, v,
						sizeof(v))) < 0)
					return r;
			}
			continue;
		}
		if (!(p->st & S_EMB)) {
			size_t id = chk_report(c, NS_EMBED_REF, 0, p->ino, "embedded in dirent \"%s\" "
					       "in directory %" PRIu64 ", but T_INODE holds a full "
					       "record as well, with a later ctime", nm, e->parent);
			if (fix_ok(c, id, false, "keep the record in T_INODE and rewrite the dirent "
				   "plain"))
				p->dirty |= F_UNEMBED;
			continue;
		}
		if (p->st & S_REF_OK)
			continue;
		if (p->st & S_FULL2)
			snprintf(why, sizeof(why), "T_INODE holds a full record as well, not later");
		else if (p->st & S_REF_BAD)
			snprintf(why, sizeof(why), "T_INODE holds a malformed INODE REF");
		else if (p->st & S_REF)
			ref_target(ns, p, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "T_INODE holds no INODE REF");
		size_t id = chk_report(c, NS_EMBED_REF, 0, p->ino, "embedded in dirent \"%s\" in "
				       "directory %" PRIu64 ", but %s%s", nm, e->parent, why, inc(c));
		/* a REF on an unreadable page may be there */
		if (fix_ok(c, id, true, "write the INODE REF"))
			p->dirty |= F_REF;
	}
	return 0;
}

/* Does directory d hold a counted dirent (a purge would leave it dangling)? */
static bool has_children(struct chk_ns *ns, const struct chk_inode *d)
{
	for (uint32_t i = d->first_child; i; i = ns->de[i - 1].next_child)
		if (counted(&ns->de[i - 1]))
			return true;
	return false;
}

/* The repair of a truncation or punch that a crash left in steps (as namespace.c's
 * orphan_finish): the entry goes (flag `what` and S_ORPHAN cleared), the *n_del blocks it
 * covers are counted out of the inode, and op (OP_TRUNC, OP_PUNCH) deletes blocks [first,
 * end).  0 or -ENOMEM. */
static int pending_fix(struct chk_ns *ns, struct chk_inode *p, uint16_t what, uint64_t *n_del,
		       uint8_t op, uint64_t first, uint64_t end)
{
	p->st &= ~(uint32_t)(S_ORPHAN | what);
	p->n_blk -= *n_del;
	p->blocks -= *n_del < p->blocks ? *n_del : p->blocks;
	p->dirty |= F_BLOCKS;
	*n_del = 0;
	int r = op_add(ns, op, 0, p->ino, NULL, 0, NULL, 0);
	if (r < 0)
		return r;
	ns->ops[ns->n_ops - 1].first = first;
	ns->ops[ns->n_ops - 1].end = end;
	return 0;
}

static int check_orphans(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	char act[96];
	int r;
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		if (!(p->st & S_ORPHAN))
			continue;
		uint8_t k[8];
		ino_key(k, p->ino);
		if (!(p->st & (S_TRUNC | S_PUNCH | S_OVAL)) &&
		    ((p->st & S_EMB) || ((p->st & S_REF) && !present(p)))) {
			/* EI-4: an unlinked inode has its record in T_INODE */
			size_t id;
			if (p->st & S_EMB)
				id = chk_report(c, NS_ORPHAN_EMBED, 0, p->ino, "an unlinked inode's "
						"orphan entry, but the inode is embedded in a dirent "
						"(nlink %" PRIu32 ")", p->nlink);
			else
				id = chk_report(c, NS_ORPHAN_EMBED, 0, p->ino, "an unlinked inode's "
						"orphan entry, but T_INODE holds only an INODE REF%s",
						inc(c));
			/* an embedding dirent on an unreadable page may be there */
			if (fix_ok(c, id, !(p->st & S_EMB), "delete the orphan entry")) {
				p->st &= ~(uint32_t)S_ORPHAN;
				if ((r = op_add(ns, OP_DEL, T_ORPHAN, 0, k, 8, NULL, 0)) < 0)
					return r;
			}
			continue;
		}
		if (present(p) && !known(p))
			continue; /* damaged record: nothing sure */
		if (present(p) && p->n_names == 0 && p->nlink == 0 && p->ino != NS_ROOT_INO) {
			size_t id = chk_report(c, NS_ORPHAN_PENDING, 0, p->ino, "a %s of %"
					       PRIu64 " bytes, unlinked and still on the orphan list",
					       type_name(p->mode),
					       p->size);
			if (S_ISDIR(p->mode) && has_children(ns, p))
				continue; /* its dirents would dangle: not purged */
			snprintf(act, sizeof(act), "purge inode %" PRIu64, p->ino);
			if (fix_ok(c, id, false, act)) {
				p->st &= ~(uint32_t)(S_PRESENT | S_ORPHAN);
				p->st |= S_PURGED;
				if ((r = op_add(ns, OP_PURGE, 0, p->ino, NULL, 0, NULL, 0)) < 0)
					return r;
			}
			continue;
		}
		if (present(p) && (p->st & S_TRUNC) && p->nlink && S_ISREG(p->mode) &&
		    !(p->flags & INODE_INLINE) && p->trunc == p->size) {
			/* a truncation in steps that a crash cut (namespace.c "Bounded changes") */
			p->st |= S_TRUNC_OK;
			size_t id = chk_report(c, NS_ORPHAN_PENDING, 0, p->ino, "a truncation to %"
					       PRIu64 " bytes still on the orphan list, %" PRIu64
					       " block(s) past the size to delete", p->size,
					       p->n_past);
			if (fix_ok(c, id, false, "delete the blocks past the size, as the next open "
				   "would") &&
			    (r = pending_fix(ns, p, S_TRUNC, &p->n_past, OP_TRUNC,
					     (p->size + BLOCK - 1) / BLOCK, UINT64_MAX)) < 0)
				return r;
			continue;
		}
		if (present(p) && (p->st & S_PUNCH) && p->nlink && S_ISREG(p->mode) &&
		    !(p->flags & INODE_INLINE) && p->trunc < p->punch_end &&
		    p->punch_end <= (p->size + BLOCK - 1) / BLOCK) {
			/* a hole punched in steps that a crash cut (namespace.c "Bounded
			 * changes") */
			size_t id = chk_report(c, NS_ORPHAN_PENDING, 0, p->ino, "a hole punched in "
					       "blocks [%" PRIu64 ", %" PRIu64 ") still on the orphan "
					       "list, %" PRIu64 " block(s) in it to delete", p->trunc,
					       p->punch_end, p->n_punch);
			if (fix_ok(c, id, false, "delete the blocks in the hole, as the next open "
				   "would") &&
			    (r = pending_fix(ns, p, S_PUNCH, &p->n_punch, OP_PUNCH, p->trunc,
					     p->punch_end)) < 0)
				return r;
			continue;
		}
		size_t id;
		if (!present(p))
			id = chk_report(c, NS_ORPHAN_STALE, 0, p->ino, "the orphan list names "
					"a missing inode");
		else if (p->st & S_OVAL)
			id = chk_report(c, NS_ORPHAN_STALE, 0, p->ino, "an orphan entry whose value "
					"is neither empty, 8 nor 16 bytes");
		else if (p->st & S_PUNCH)
			id = chk_report(c, NS_ORPHAN_STALE, 0, p->ino, "a hole punched in blocks [%"
					PRIu64 ", %" PRIu64 ") on the orphan list for a %s of %"
					PRIu64 " bytes%s, nlink %" PRIu32, p->trunc, p->punch_end,
					type_name(p->mode), p->size,
					(p->flags & INODE_INLINE) ? " (inline)" : "", p->nlink);
		else if (p->st & S_TRUNC)
			id = chk_report(c, NS_ORPHAN_STALE, 0, p->ino, "a truncation to %" PRIu64
					" bytes on the orphan list for a %s of %" PRIu64 " bytes%s, "
					"nlink %" PRIu32, p->trunc, type_name(p->mode), p->size,
					(p->flags & INODE_INLINE) ? " (inline)" : "", p->nlink);
		else if (p->n_names || p->ino == NS_ROOT_INO)
			id = chk_report(c, NS_ORPHAN_STALE, 0, p->ino, "on the orphan list, but "
					"named by %" PRIu32 " dirent(s)", p->n_names);
		else
			id = chk_report(c, NS_ORPHAN_STALE, 0, p->ino, "on the orphan list with "
					"nlink %" PRIu32 ": the next open would only drop the entry",
					p->nlink);
		if (fix_ok(c, id, false, "delete the orphan entry")) {
			p->st &= ~(uint32_t)(S_ORPHAN | S_TRUNC | S_OVAL | S_PUNCH);
			if ((r = op_add(ns, OP_DEL, T_ORPHAN, 0, k, 8, NULL, 0)) < 0)
				return r;
		}
	}
	for (size_t i = 0; i < ns->n_odd; i++) {
		struct ns_odd *o = &ns->odd[i];
		if (o->gone || o->tree != T_ORPHAN)
			continue;
		size_t id = chk_report(c, NS_ORPHAN_STALE, 0, 0, "an orphan key of %u bytes, not 8",
				       o->klen);
		if (fix_ok(c, id, false, "delete the orphan entry") &&
		    (r = op_add(ns, OP_DEL, T_ORPHAN, 0, o->key, o->klen, NULL, 0)) < 0)
			return r;
	}
	return 0;
}

/* NS_DIR_LINKS and NS_PARENT. */
static int check_dir_links(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	char nm[NAME_BUF], act[96];
	int r;
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *d = &ns->in[i];
		if (!known(d) || !S_ISDIR(d->mode))
			continue;
		bool root = d->ino == NS_ROOT_INO;
		if (root ? d->n_names > 0 : d->n_names > 1) {
			uint32_t keep = root ? 0 : dir_up(ns, d);
			for (uint32_t j = d->first_name; j; j = ns->de[j - 1].next_name) {
				struct ns_dirent *e = &ns->de[j - 1];
				if (!counted(e) || j == keep)
					continue;
				size_t id = chk_report(c, NS_DIR_LINKS, 0, d->ino,
						       "the directory is also named \"%s\" in "
						       "directory %" PRIu64 " (%s)%s",
						       de_name(ns, e, nm, sizeof(nm)), e->parent,
						       root ? "the root has no dirent" :
						       "a directory has one dirent", inc(c));
				if (fix_ok(c, id, true, "remove the dirent") &&
				    (r = de_remove(ns, j - 1)) < 0)
					return r;
			}
		}
		if (root) {
			if (d->parent != NS_ROOT_INO) {
				size_t id = chk_report(c, NS_PARENT, 0, d->ino, "the root's parent "
						       "field is %" PRIu64 ", not 1", d->parent);
				if (fix_ok(c, id, false, "set it to 1")) {
					d->parent = NS_ROOT_INO;
					d->dirty |= F_PARENT;
				}
			}
			continue;
		}
		uint32_t up = dir_up(ns, d);
		if (!up || ns->de[up - 1].parent == d->parent)
			continue;
		uint64_t want = ns->de[up - 1].parent;
		size_t id = chk_report(c, NS_PARENT, 0, d->ino, "the directory's parent field is %"
				       PRIu64 ", but its dirent is in directory %" PRIu64 "%s",
				       d->parent, want, inc(c));
		snprintf(act, sizeof(act), "set the parent field to %" PRIu64, want);
		if (fix_ok(c, id, true, act)) {
			d->parent = want;
			d->dirty |= F_PARENT;
		}
	}
	return 0;
}

/* Mark the directories reachable from `from` (already marked) over counted dirents. */
static int walk_from(struct chk_ns *ns, uint64_t from)
{
	size_t cap = 64, n = 0;
	uint64_t *stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	stack[n++] = from;
	while (n) {
		struct chk_inode *d = in_find(ns, stack[--n]);
		for (uint32_t i = d->first_child; i; i = ns->de[i - 1].next_child) {
			const struct ns_dirent *e = &ns->de[i - 1];
			struct chk_inode *t = in_find(ns, e->ino);
			if (!counted(e) || !is_dir(t, e) || (t->st & S_REACHED))
				continue;
			t->st |= S_REACHED;
			if (n == cap) {
				uint64_t *s2 = realloc(stack, 2 * cap * sizeof(*stack));
				if (!s2) {
					free(stack);
					return -ENOMEM;
				}
				stack = s2;
				cap *= 2;
			}
			stack[n++] = t->ino;
		}
	}
	free(stack);
	return 0;
}

/* lost+found in the root: find it, or create it (with the first approved reconnection).
 * 0 and ns->lf_ino set, or -ENOENT when it cannot be used, or -ENOMEM. */
static int lost_found(struct chk *c, bool create)
{
	struct chk_ns *ns = c->ns;
	static const char name[] = "lost+found";
	if (ns->lf_state < 0 || (ns->lf_state > 0 && ns->lf_ino))
		return ns->lf_state < 0 ? -ENOENT : 0;
	uint8_t k[8 + sizeof(name)];
	size_t klen = dirent_key(k, NS_ROOT_INO, name, sizeof(name) - 1);
	uint32_t i = de_find(ns, k, klen);
	if (i && ns->de[i - 1].st == E_GONE)
		i = 0; /* deleted by the log: there is none */
	if (i && counted(&ns->de[i - 1])) {
		struct chk_inode *t = in_find(ns, ns->de[i - 1].ino);
		if (!known(t) || !S_ISDIR(t->mode)) {
			chk_note(c, "namespace: /lost+found is not a directory: nothing can be "
				 "reconnected");
			ns->lf_state = -1;
			return -ENOENT;
		}
		ns->lf_state = 1;
		ns->lf_ino = t->ino;
		return 0;
	}
	if (i) { /* a removed, malformed or dangling entry of that name: do not reuse it */
		ns->lf_state = -1;
		chk_note(c, "namespace: /lost+found's dirent is damaged: nothing can be "
			 "reconnected");
		return -ENOENT;
	}
	ns->lf_state = 1;
	if (!create)
		return 0;
	uint64_t ino = ns->max_ref + 1;
	if (ns->next_dirty && ns->next_model > ino)
		ino = ns->next_model;
	else if (!ns->next_dirty && ns->have_next && ns->next_vlen == 8 && ns->next_ino > ino)
		ino = ns->next_ino;
	struct chk_inode *p = in_get(ns, ino); /* room reserved by finalize: nothing moves */
	if (!p)
		return -ENOMEM;
	p->st = S_PRESENT | S_NEW | S_TOUCHED;
	p->mode = S_IFDIR | 0700;
	p->nlink = p->nl_before = 2;
	p->parent = NS_ROOT_INO;
	p->flags = INODE_INLINE;
	p->rec_len = p->hdr_len = 0; /* written by ap_inode */
	ns->lf_ino = ino;
	ns->max_ino = ns->max_ref = ino;
	ns->next_model = ino + 1;
	ns->next_dirty = true;
	return de_new(ns, NS_ROOT_INO, name, sizeof(name) - 1, ino, DT_DIR_TYPE);
}

/* Reconnect inode t under lost+found as "#<ino>" (lost_found() succeeded). */
static int reconnect(struct chk_ns *ns, uint64_t ino)
{
	char name[48];
	uint8_t k[8 + sizeof(name)];
	int n = snprintf(name, sizeof(name), "#%" PRIu64, ino);
	for (unsigned s = 1; de_find(ns, k, dirent_key(k, ns->lf_ino, name, (size_t)n)); s++)
		n = snprintf(name, sizeof(name), "#%" PRIu64 ".%u", ino, s);
	struct chk_inode *t = in_find(ns, ino);
	if (S_ISDIR(t->mode)) {
		t->parent = ns->lf_ino;
		t->dirty |= F_PARENT;
	}
	return de_new(ns, ns->lf_ino, name, (size_t)n, ino, (uint8_t)((t->mode & S_IFMT) >> 12));
}

/* NS_LOST_INODE and NS_CYCLE; root_ok: the root is a sound directory. */
static int check_reach(struct chk *c, bool root_ok)
{
	struct chk_ns *ns = c->ns;
	char act[96];
	int r;
	if (root_ok && (r = lost_found(c, false)) < 0 && r != -ENOENT)
		return r;
	bool can = root_ok && ns->lf_state > 0;
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		if (!known(p) || p->ino == NS_ROOT_INO || p->n_names ||
		    ((p->st & S_ORPHAN) && p->nlink == 0))
			continue;
		size_t id = chk_report(c, NS_LOST_INODE, 0, p->ino, "a %s (nlink %" PRIu32 ") "
				       "named by no dirent%s%s", type_name(p->mode), p->nlink, inc(c),
				       root_ok && !can ? " (no usable lost+found)" : "");
		snprintf(act, sizeof(act), "reconnect it as lost+found/#%" PRIu64, p->ino);
		if (!can || !fix_ok(c, id, true, act))
			continue;
		if ((r = lost_found(c, true)) < 0) {
			if (r != -ENOENT)
				return r;
			can = false;
			continue;
		}
		p = in_find(ns, ns->in[i].ino);
		if ((r = reconnect(ns, p->ino)) < 0)
			return r;
	}
	if (!root_ok) {
		chk_note(c, "namespace: no sound root directory: reachability not checked");
		return 0;
	}
	struct chk_inode *root = in_find(ns, NS_ROOT_INO);
	root->st |= S_REACHED;
	if ((r = walk_from(ns, NS_ROOT_INO)) < 0)
		return r;
	/* Directories not reached: follow each one's dirent upwards; coming back to the path
	 * is a cycle (a chain that ends at a lost directory or a damaged one is not). */
	size_t cap = 64, n;
	uint64_t *path = malloc(cap * sizeof(*path));
	if (!path)
		return -ENOMEM;
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *d = &ns->in[i];
		if (!known(d) || !S_ISDIR(d->mode) || (d->st & (S_REACHED | S_DONE)) ||
		    !d->n_names)
			continue;
		n = 0;
		struct chk_inode *cur = d;
		while (cur && !(cur->st & (S_REACHED | S_DONE | S_PATH))) {
			uint32_t up = dir_up(ns, cur);
			if (n == cap) {
				uint64_t *p2 = realloc(path, 2 * cap * sizeof(*path));
				if (!p2) {
					free(path);
					return -ENOMEM;
				}
				path = p2;
				cap *= 2;
			}
			path[n++] = cur->ino;
			cur->st |= S_PATH;
			cur = up ? in_find(ns, ns->de[up - 1].parent) : NULL;
		}
		if (cur && (cur->st & S_PATH)) {
			/* the cycle: path[s..n) where path[s] == cur */
			size_t s = 0;
			while (path[s] != cur->ino)
				s++;
			uint64_t low = 0;
			char list[160];
			size_t o = 0;
			for (size_t j = s; j < n; j++) {
				if (known(in_find(ns, path[j])) && (!low || path[j] < low))
					low = path[j];
				if (o < sizeof(list) - 32)
					o += (size_t)snprintf(list + o, sizeof(list) - o, "%" PRIu64
							      " in ", path[j]);
				else if (j + 1 == n)
					o += (size_t)snprintf(list + o, sizeof(list) - o, "... in ");
			}
			snprintf(list + o, sizeof(list) - o, "%" PRIu64, path[s]);
			size_t id = chk_report(c, NS_CYCLE, 0, low ? low : path[s], "directories %s "
					       "form a cycle not reachable from the root%s", list, inc(c));
			snprintf(act, sizeof(act), "move directory %" PRIu64 " to lost+found/#%"
				 PRIu64, low, low);
			if (low && ns->lf_state > 0 && fix_ok(c, id, true, act)) {
				if ((r = lost_found(c, true)) < 0 && r != -ENOENT) {
					free(path);
					return r;
				}
				struct chk_inode *x = in_find(ns, low);
				uint32_t up = r == 0 ? dir_up(ns, x) : 0;
				if (up && ((r = de_remove(ns, up - 1)) < 0 ||
					   (r = reconnect(ns, low)) < 0 ||
					   (x->st |= S_REACHED, (r = walk_from(ns, low)) < 0))) {
					free(path);
					return r;
				}
			}
		}
		for (size_t j = 0; j < n; j++) {
			struct chk_inode *q = in_find(ns, path[j]);
			q->st = (q->st & ~(uint32_t)S_PATH) | S_DONE;
		}
	}
	free(path);
	return 0;
}

static int check_nlink(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	char act[64];
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		if (!known(p) || (p->ino != NS_ROOT_INO && p->n_names == 0))
			continue; /* an orphan or a lost inode: reported as such */
		bool dir = S_ISDIR(p->mode);
		uint32_t want = dir ? 2 + p->n_subdirs : p->n_names;
		if (p->nlink == want)
			continue;
		/* a count that matches the dirents as found was right: the fixes that changed
		 * them set it (S_TOUCHED); only one that matches neither is a problem */
		if (p->nlink == p->nl_before) {
			if (p->st & S_TOUCHED) {
				p->nlink = want;
				p->dirty |= F_NLINK;
			}
			continue;
		}
		size_t id;
		if (dir)
			id = chk_report(c, NS_NLINK, 0, p->ino, "a directory with nlink %" PRIu32
					" and %" PRIu32 " subdirectories (expected %" PRIu32 ")%s",
					p->nlink, p->n_subdirs, want, inc(c));
		else
			id = chk_report(c, NS_NLINK, 0, p->ino, "nlink %" PRIu32 ", but %" PRIu32
					" dirent(s) name it%s", p->nlink, p->n_names, inc(c));
		snprintf(act, sizeof(act), "set nlink to %" PRIu32, want);
		if (fix_ok(c, id, true, act) || (p->st & S_TOUCHED)) {
			p->nlink = want;
			p->dirty |= F_NLINK;
		}
	}
	return 0;
}

static int check_blocks(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	char act[96];
	int r;
	for (size_t i = 0; i < ns->n_in; i++) {
		struct chk_inode *p = &ns->in[i];
		if (p->st & S_PURGED)
			continue; /* the purge deletes them */
		if (!present(p)) {
			if (p->n_blk) {
				size_t id = chk_report(c, NS_BLOCK_ORPHAN, 0, p->ino, "%" PRIu64
						       " data block(s) of a missing inode%s",
						       p->n_blk, inc(c));
				if (fix_ok(c, id, true, "delete them") &&
				    (r = op_add(ns, OP_DEL_INO, T_DATA, p->ino, NULL, 0, NULL, 0)) < 0)
					return r;
			}
			if (p->n_xattr) {
				size_t id = chk_report(c, NS_XATTR_ORPHAN, 0, p->ino, "%" PRIu32
						       " xattr(s) of a missing inode%s",
						       p->n_xattr, inc(c));
				if (fix_ok(c, id, true, "delete them") &&
				    (r = op_add(ns, OP_DEL_INO, T_XATTR, p->ino, NULL, 0, NULL, 0)) < 0)
					return r;
			}
			continue;
		}
		if (!known(p))
			continue;
		uint64_t n_blk = p->n_blk;
		if (n_blk && (!S_ISREG(p->mode) || (p->flags & INODE_INLINE))) {
			size_t id = chk_report(c, NS_BLOCK_BAD, 0, p->ino, "%" PRIu64 " data block(s) "
					       "of a%s %s, which keeps none",
					       n_blk, S_ISREG(p->mode) ? "n inline" : "",
					       type_name(p->mode));
			if (fix_ok(c, id, false, "delete them")) {
				if ((r = op_add(ns, OP_DEL_INO, T_DATA, p->ino, NULL, 0, NULL, 0)) < 0)
					return r;
				n_blk = 0;
			}
		} else if (p->n_badblk) {
			uint64_t deleted = 0;
			for (size_t j = 0; j < ns->n_bad; j++) {
				const struct ns_badblk *bb = &ns->bad[j];
				if (bb->ino != p->ino)
					continue;
				size_t id = chk_report(c, NS_BLOCK_BAD, 0, p->ino, "block %" PRIu64
						       " is %" PRIu32 " bytes, more than %u", bb->blk,
						       bb->vlen, BLOCK);
				if (fix_ok(c, id, false, "delete the block")) {
					uint8_t k[16];
					block_key(k, bb->ino, bb->blk);
					if ((r = op_add(ns, OP_DEL, T_DATA, 0, k, 16, NULL, 0)) < 0)
						return r;
					deleted++;
				}
			}
			n_blk -= deleted;
			if (deleted == p->n_badblk)
				p->max_blk = p->max_good;
		}
		if (n_blk && S_ISREG(p->mode) && !(p->flags & INODE_INLINE) &&
		    !(p->st & S_TRUNC_OK) && p->max_blk >= (p->size + BLOCK - 1) / BLOCK) {
			uint64_t want = (p->max_blk + 1) * BLOCK;
			size_t id = chk_report(c, NS_SIZE, 0, p->ino, "block %" PRIu64 " lies past "
					       "the size, %" PRIu64 " bytes", p->max_blk, p->size);
			snprintf(act, sizeof(act), "set the size to %" PRIu64, want);
			if (fix_ok(c, id, false, act)) {
				p->size = want;
				p->dirty |= F_SIZE;
			}
		}
		if (!S_ISREG(p->mode) || (p->flags & INODE_INLINE))
			n_blk = 0; /* it keeps none: 0 is right, whether or not they are deleted */
		if (p->blocks != n_blk) {
			size_t id = chk_report(c, NS_BLOCKS_COUNT, 0, p->ino, "blocks field %" PRIu64
					       ", but %" PRIu64 " block(s) stored%s", p->blocks, n_blk,
					       inc(c));
			snprintf(act, sizeof(act), "set blocks to %" PRIu64, n_blk);
			if (fix_ok(c, id, true, act)) {
				p->blocks = n_blk;
				p->dirty |= F_BLOCKS;
			}
		}
	}
	for (size_t i = 0; i < ns->n_odd; i++) {
		struct ns_odd *o = &ns->odd[i];
		if (o->gone || (o->tree != T_DATA && o->tree != T_XATTR))
			continue;
		size_t id;
		if (o->tree == T_DATA)
			id = chk_report(c, NS_BLOCK_BAD, 0, 0, "a data block key of %u bytes, not 16",
					o->klen);
		else
			id = chk_report(c, NS_XATTR_ORPHAN, 0, 0, "an xattr key of %u bytes names "
					"no inode and attribute", o->klen);
		if (fix_ok(c, id, false, "delete it") &&
		    (r = op_add(ns, OP_DEL, o->tree, 0, o->key, o->klen, NULL, 0)) < 0)
			return r;
	}
	return 0;
}

/* ---- repairs: applying ---- */

struct applier {
	struct engine *e;
	struct engine_batch *b;
	size_t bytes;
};

static int ap_flush(struct applier *a, bool force)
{
	if (!force && a->bytes < (1u << 20))
		return 0;
	int r = engine_commit(a->e, a->b, NULL);
	engine_batch_clear(a->b);
	a->bytes = 0;
	return r;
}

static int ap_del(struct applier *a, unsigned tree, const void *k, size_t klen)
{
	int r = engine_batch_del(a->b, tree, k, klen);
	a->bytes += klen + 16;
	return r < 0 ? r : ap_flush(a, false);
}

static int ap_put(struct applier *a, unsigned tree, const void *k, size_t klen, const void *v,
		  size_t vlen)
{
	int r = engine_batch_put(a->b, tree, k, klen, v, vlen);
	a->bytes += klen + vlen + 16;
	return r < 0 ? r : ap_flush(a, false);
}

/* Delete the data blocks of ino from block `first` on (a pending truncation, OP_TRUNC), and
 * before block `end` (UINT64_MAX: to the last; a pending punch, OP_PUNCH). */
static int ap_del_blocks_from(struct applier *a, uint64_t ino, uint64_t first, uint64_t end)
{
	uint8_t lo[16], hi[16], k[16];
	block_key(lo, ino, first);
	if (end == UINT64_MAX)
		block_key(hi, ino + 1, 0);
	else
		block_key(hi, ino, end);
	bool bounded = end != UINT64_MAX || ino + 1 != 0;
	struct engine_iter *it;
	int r = engine_iter_new(a->e, T_DATA, lo, 16, bounded ? hi : NULL, bounded ? 16 : 0,
				&it);
	if (r < 0)
		return r;
	size_t klen, vlen;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen)) == 0)
		if (klen == 16 && (r = ap_del(a, T_DATA, k, 16)) < 0)
			break;
	engine_iter_free(it);
	return r == -ENOENT ? 0 : r;
}

/* Delete every key of `tree` that starts with ino (8 bytes, big-endian). */
static int ap_del_ino(struct applier *a, unsigned tree, uint64_t ino)
{
	uint8_t lo[8], hi[8], k[STORE_MAX_KEY];
	ino_key(lo, ino);
	ino_key(hi, ino + 1);
	struct engine_iter *it;
	int r = engine_iter_new(a->e, tree, lo, 8, ino + 1 ? hi : NULL, ino + 1 ? 8 : 0, &it);
	if (r < 0)
		return r;
	size_t klen, vlen;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen)) == 0)
		if (klen <= sizeof(k) && (r = ap_del(a, tree, k, klen)) < 0)
			break;
	engine_iter_free(it);
	return r == -ENOENT ? 0 : r;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Write the changed fields of inode p (or create it, S_NEW), as a v2 record, where it is to
 * live: in T_INODE, or (S_EMB, not F_UNEMBED) in its embedding dirent after DIRENT_VALUE
 * bytes, with the INODE REF written when F_REF asks.  The record is read from where it is
 * (T_INODE, or the embedding dirent for S_EMB); it is re-encoded only when a header field
 * changed (then ctime is now), else its bytes are moved as they are.  F_UNEMBED rewrites the
 * embedding dirent plain unless a fix removed it.
 */
static int ap_inode(struct applier *a, struct chk_ns *ns, const struct chk_inode *p)
{
	enum { CAP = DIRENT_VALUE + NS_INODE_HDR_ANY + SYMLINK_MAX + 1 };
	uint8_t k[8], *buf = malloc(CAP), *out = malloc(DIRENT_VALUE + NS_INODE_HDR_MAX +
							SYMLINK_MAX + 1);
	size_t len = 0, tail = 0, off = 0, ol = 0;
	const struct ns_dirent *e = p->emb_de ? &ns->de[p->emb_de - 1] : NULL;
	bool from_de = (p->st & S_EMB) && e, to_de = from_de && !(p->dirty & F_UNEMBED);
	bool hdr = (p->st & S_NEW) || (p->dirty & (F_NLINK | F_PARENT | F_SIZE | F_BLOCKS));
	uint8_t type = known(p) || !e ? (uint8_t)((p->mode & S_IFMT) >> 12) : e->type;
	int hl = 0;
	struct ns_inode h;
	if (!buf || !out) {
		free(buf);
		free(out);
		return -ENOMEM;
	}
	ino_key(k, p->ino);
	int r = 0;
	if (p->st & S_NEW) {
		int64_t now = now_ns();
		h = (struct ns_inode){ .mode = p->mode, .nlink = p->nlink, .atime = now,
				       .mtime = now, .ctime = now, .gen = 1, .parent = p->parent,
				       .flags = p->flags };
	} else {
		if (from_de) {
			off = DIRENT_VALUE;
			r = engine_get(a->e, T_DIRENT, de_key(ns, e), e->klen, buf, CAP, &len);
			if (r == 0 && (len <= DIRENT_VALUE || len > CAP || ld64(buf) != p->ino))
				r = -EUCLEAN; /* not the dirent checked */
		} else {
			r = engine_get(a->e, T_INODE, k, 8, buf, CAP, &len);
			if (r == 0 && (len > CAP - DIRENT_VALUE || ns_is_ref(buf, len)))
				r = -EUCLEAN;
		}
		/* moved as it is unless a field changes (a damaged record moves too) */
		if (r == 0 && hdr && ((hl = ns_inode_decode(buf + off, len - off, &h, NULL)) < 0 ||
				      len - off - (size_t)hl > SYMLINK_MAX + 1))
			r = -EUCLEAN; /* not the record checked */
		if (r == 0 && hdr) {
			tail = len - off - (size_t)hl;
			if (p->dirty & F_NLINK)
				h.nlink = p->nlink;
			if (p->dirty & F_PARENT)
				h.parent = p->parent;
			if (p->dirty & F_SIZE)
				h.size = p->size;
			if (p->dirty & F_BLOCKS)
				h.blocks = p->blocks;
			h.ctime = now_ns();
		}
	}
	if (r == 0) { /* out: ino + type (room kept in any case), then the record */
		st64(out, p->ino);
		out[8] = type;
		if (hdr) {
			ol = ns_inode_encode(&h, out + DIRENT_VALUE);
			memcpy(out + DIRENT_VALUE + ol, buf + off + hl, tail);
			ol += tail;
		} else {
			ol = len - off;
			memcpy(out + DIRENT_VALUE, buf + off, ol);
		}
	}
	if (r == 0 && to_de) {
		r = ap_put(a, T_DIRENT, de_key(ns, e), e->klen, out, DIRENT_VALUE + ol);
		if (r == 0 && (p->dirty & F_REF)) {
			uint8_t ref[NS_REF_MAX];
			size_t rl = ns_ref_encode(ref, e->parent, (const char *)de_key(ns, e) + 8,
						  e->klen - 8u);
			r = ap_put(a, T_INODE, k, 8, ref, rl);
		}
	} else if (r == 0) {
		if (hdr || from_de)
			r = ap_put(a, T_INODE, k, 8, out + DIRENT_VALUE, ol);
		if (r == 0 && e && (p->dirty & F_UNEMBED) && !(e->fl & E_REMOVED))
			r = ap_put(a, T_DIRENT, de_key(ns, e), e->klen, out, DIRENT_VALUE);
	}
	free(buf);
	free(out);
	return r;
}

static int apply(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	struct engine_options eo = { .no_checkpoint_thread = true };
	struct applier a = { 0 };
	/* The fixes were computed for the state checked (c->meta, as phases 0 and 3 left it):
	 * the store must still open to that one (not after a refused --previous-meta
	 * roll-back). */
	/* Writing through the library relies on sound pages and a sound free list (a commit
	 * could otherwise hand out a page in use): not while an earlier phase's error stands. */
	for (size_t i = 0; i < c->n_problems; i++) {
		const struct chk_problem *q = &c->problems[i];
		if (q->phase->num < 5 && q->def->sev == SEV_ERROR && !q->fixed) {
			fprintf(stderr, "kvfs-check: %s: namespace repairs not made: %s (phase %u) "
				"is not repaired\n", c->path, q->def->code, q->phase->num);
			return 0;
		}
	}
	txnid_t now = chk_newest_txnid(c);
	if (now != c->meta.txnid) {
		fprintf(stderr, "kvfs-check: %s: namespace repairs not made: the store's current "
			"state (txn %llu) is not the one checked (txn %llu)\n", c->path,
			(unsigned long long)now, (unsigned long long)c->meta.txnid);
		return 0;
	}
	chk_release_lock(c);
	int r = engine_open(c->path, &eo, &a.e);
	if (r < 0) {
		fprintf(stderr, "kvfs-check: %s: namespace repairs not made: opening the store: "
			"%s\n", c->path, strerror(-r));
		return r;
	}
	if (!(a.b = engine_batch_new())) {
		engine_close(a.e);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ns->n_ops && r == 0; i++) {
		const struct ns_op *o = &ns->ops[i];
		uint8_t k[8];
		switch (o->kind) {
		case OP_DEL:
			r = ap_del(&a, o->tree, o->key, o->klen);
			break;
		case OP_PUT:
			r = ap_put(&a, o->tree, o->key, o->klen, o->val, o->vlen);
			break;
		case OP_DEL_INO:
			r = ap_del_ino(&a, o->tree, o->ino);
			break;
		case OP_PURGE: /* namespace.c's purge(): blocks, xattrs, inode, orphan entry */
			ino_key(k, o->ino);
			if ((r = ap_del_ino(&a, T_DATA, o->ino)) == 0 &&
			    (r = ap_del_ino(&a, T_XATTR, o->ino)) == 0 &&
			    (r = ap_del(&a, T_INODE, k, 8)) == 0)
				r = ap_del(&a, T_ORPHAN, k, 8);
			break;
		case OP_TRUNC: /* namespace.c's orphan_finish of a truncation */
			ino_key(k, o->ino);
			if ((r = ap_del_blocks_from(&a, o->ino, o->first, UINT64_MAX)) == 0)
				r = ap_del(&a, T_ORPHAN, k, 8);
			break;
		case OP_PUNCH: /* namespace.c's orphan_finish of a punched range */
			ino_key(k, o->ino);
			if ((r = ap_del_blocks_from(&a, o->ino, o->first, o->end)) == 0)
				r = ap_del(&a, T_ORPHAN, k, 8);
			break;
		}
	}
	for (size_t i = 0; i < ns->n_in && r == 0; i++) {
		const struct chk_inode *p = &ns->in[i];
		if (present(p) && ((p->st & S_NEW) || p->dirty))
			r = ap_inode(&a, ns, p);
	}
	if (r == 0 && ns->next_dirty) {
		uint8_t v[8];
		st64(v, ns->next_model);
		r = ap_put(&a, T_SUPER, NS_SUPER_NEXT_INO, 8, v, 8);
	}
	if (r == 0)
		r = ap_flush(&a, true);
	engine_batch_free(a.b);
	int r2 = engine_close(a.e);
	if (r == 0)
		r = r2;
	if (r < 0) {
		fprintf(stderr, "kvfs-check: %s: namespace repairs failed: %s\n", c->path,
			strerror(-r));
		return r;
	}
	for (size_t i = 0; i < ns->n_ids; i++)
		chk_fixed(c, ns->ids[i]);
	return 0;
}

/* ---- the phase ---- */

static int run(struct chk *c)
{
	struct chk_ns *ns = c->ns;
	int r = 0;
	if (ns_alloc_failed || (ns && ns->oom)) {
		r = -ENOMEM;
		goto out;
	}
	if (!ns || (!ns->n_tree[T_INODE] && !ns->n_tree[T_DIRENT] && !ns->n_tree[T_SUPER] &&
		    !ns->n_log_ops)) {
		chk_note(c, c->ns_incomplete ? "namespace: no namespace entry could be read: "
			 "nothing to check" : "namespace: the store holds no inode, dirent or "
			 "next_ino: not a file-system store, nothing to check");
		goto out;
	}
	if ((r = finalize(ns)) < 0)
		goto out;
	if (c->ns_incomplete)
		chk_note(c, "namespace incomplete (unreadable tree pages or log records): dangling "
			 "dirents, lost inodes, link counts and orphaned blocks may come from that "
			 "damage and are not repaired");
	check_records(c);
	check_next_ino(c);
	bool root_ok = check_root(c);
	if ((r = check_dirents(c, root_ok)) < 0 || (r = check_embedded(c)) < 0 ||
	    (r = check_orphans(c)) < 0 ||
	    (r = check_dir_links(c)) < 0 || (r = check_reach(c, root_ok)) < 0 ||
	    (r = check_nlink(c)) < 0 || (r = check_blocks(c)) < 0)
		goto out;
	if (ns->oom) {
		r = -ENOMEM;
		goto out;
	}
	uint64_t n_dirents = 0, n_blocks = 0, n_xattrs = 0, n_orphans = 0;
	for (size_t i = 0; i < ns->n_de; i++)
		n_dirents += ns->de[i].st == E_LIVE && !(ns->de[i].fl & E_NEW);
	for (size_t i = 0; i < ns->n_in; i++) {
		const struct chk_inode *p = &ns->in[i];
		n_blocks += p->n_blk;
		n_xattrs += p->n_xattr;
		n_orphans += (p->st & S_ORPHAN) != 0;
		if (!present(p) || (p->st & (S_NEW | S_UNREAD | S_SHORT)))
			continue;
		if (S_ISDIR(p->mode)) {
			c->n_dirs++;
		} else {
			c->n_files++;
			if (S_ISREG(p->mode))
				c->n_bytes += p->size;
		}
	}
	chk_note(c, "namespace: %" PRIu64 " files, %" PRIu64 " directories, %" PRIu64
		 " dirents, %" PRIu64 " data blocks, %" PRIu64 " xattrs, %" PRIu64 " orphans, "
		 "next_ino %" PRIu64 "; %" PRIu64 " log operations applied; %zu KiB of memory",
		 c->n_files, c->n_dirs, n_dirents, n_blocks, n_xattrs, n_orphans, ns->next_ino,
		 ns->n_log_ops, ns->mem_peak >> 10);
	if (ns->n_ids)
		r = apply(c);
out:
	ns_free(c->ns);
	c->ns = NULL;
	return r;
}

const struct chk_phase chk_phase_namespace = {
	.num = 5,
	.name = "namespace",
	.defs = defs,
	.ndefs = sizeof(defs) / sizeof(defs[0]),
	.run = run,
};
