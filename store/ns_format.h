/*
 * store/ns_format.h — the file namespace's records on the engine's trees, as C: tree numbers,
 * key layouts and the INODE RECORD (man/kvfs.5 "NAMESPACE").  namespace.c writes and reads
 * them; kvfs-check (tools/check/phase5_namespace.c) checks them.  Integers in keys are
 * big-endian (they sort numerically), in values little-endian (store/format.h helpers).
 *
 *   T_INODE      ino (BE u64)                  -> INODE RECORD (+ inline data or symlink
 *                                                target), or an INODE REF (format version 4,
 *                                                below): the record is in the inode's dirent
 *   T_DIRENT     parent ino (BE u64) + name    -> ino (LE u64) + type (u8, DT_* = S_IFMT >> 12),
 *                                                optionally followed (format version 4) by
 *                                                the inode's whole INODE RECORD: an embedded
 *                                                inode (below)
 *   T_DATA       ino (BE u64) + block (BE u64) -> one block of BLOCK bytes (a missing block
 *                                                is a hole)
 *   T_XATTR      ino (BE u64) + name           -> value (0..XATTR_VALUE_MAX bytes)
 *   T_ORPHAN     ino (BE u64)                  -> empty: unlinked while open (or purged in
 *                                                steps), purged at its last release or the
 *                                                next open; or LE u64 size: a truncation in
 *                                                steps, blocks at or past ceil(size / BLOCK)
 *                                                still to delete; or LE u64 first + LE u64
 *                                                last (ORPHAN_RANGE_LEN, format version 3): a
 *                                                hole punched in steps, blocks [first, last)
 *                                                still to delete (namespace.c "Bounded
 *                                                changes", man/kvfs.5 "Orphans")
 *   T_SUPER      "next_ino"                    -> LE u64, the next inode number to hand out
 *
 * Embedded inodes (format version 4; man/kvfs.5 "Embedded inodes").  A get by path reads one
 * B+tree leaf instead of two when the inode's record sits in its dirent's value.  An inode may
 * be embedded only when it is not a directory, has exactly one name (nlink 1) and is not an
 * orphan with no name: its one dirent's value is DIRENT_VALUE bytes (ino, type) followed by
 * the INODE RECORD, and its T_INODE value is an INODE REF naming that dirent, so that a read
 * by inode number (FUSE, kvfs_getattr) still finds it, in two reads.  Every other inode
 * (directories, files with hard links, unlinked open files) has its record in T_INODE, and
 * its dirents are plain (DIRENT_VALUE bytes).  namespace.c moves an inode between the two
 * forms: creating a non-directory embeds it; so do a put (kvfs_put, a batch) of a regular
 * file with one name and a rename of a non-directory with one name (a version 3 store's
 * files move into their dirents that way); link() moves the record to T_INODE and rewrites
 * the old dirent plain; an unlink that leaves an orphan (open, or purged in steps) moves it
 * to T_INODE; rename moves the embedded record with its dirent and rewrites the REF.  A file
 * whose links drop back to one stays in T_INODE until one of those embeds it (both forms
 * are valid for nlink 1).  Rules (kvfs-check phase 5):
 *   EI-1  a dirent value is exactly DIRENT_VALUE bytes (plain), or longer (embedded): then
 *         the bytes after DIRENT_VALUE decode as an INODE RECORD (v2; ns_inode_decode) whose
 *         mode is not a directory, whose nlink is 1, whose type agrees with the dirent's type
 *         byte, and whose tail is the inline data or symlink target as in T_INODE;
 *   EI-2  an embedded dirent (parent, name) -> ino has T_INODE[ino] an INODE REF naming
 *         exactly (parent, name), and no other dirent names ino;
 *   EI-3  an INODE REF T_INODE[ino] -> (parent, name) has T_DIRENT[(parent, name)] embedded,
 *         naming ino;
 *   EI-4  an orphan with no name (an empty T_ORPHAN value) has a full record in T_INODE; a
 *         truncation's or punch's entry (8 or 16 bytes) may be an embedded inode's.
 * (kvfs-check's repair, when T_INODE holds a full record beside an embedded one: the later
 * ctime wins, the embedded one on a tie: tools/check/phase5_namespace.c.)
 * Data blocks, xattrs and orphan entries are keyed by the inode number as before; an inode
 * exists when T_INODE holds its record or its REF.
 *
 * INODE REF (T_INODE value, format version 4): told from an INODE RECORD by byte 2, as the
 * record's versions are (below):
 *   off  size  field
 *     0     2  zero
 *     2     1  NS_INODE_REF (3)
 *     3     1  zero
 *     4     8  parent    LE u64: the directory holding the embedding dirent
 *    12     -  name      1..255 bytes (the rest of the value): that dirent's name
 *
 * Inode 1 (NS_ROOT_INO) is the root directory.  INODE RECORD: a header (below; its length
 * comes from parsing it), then for a file with INODE_INLINE exactly `size` bytes of data, for
 * a symlink its target (`size` bytes), else nothing.  A file of at most INLINE_MAX bytes is
 * inline.  The header is read and written only through ns_inode_decode / ns_inode_encode
 * (store/ns_inode.c).
 */
#ifndef KVFS_STORE_NS_FORMAT_H
#define KVFS_STORE_NS_FORMAT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/format.h"

enum { T_INODE = 0, T_DIRENT = 1, T_DATA = 2, T_XATTR = 3, T_ORPHAN = 4, T_SUPER = 5 };
#define NS_TREES 6
#define NS_ROOT_INO 1u
#define NS_SUPER_NEXT_INO "next_ino" /* key of T_SUPER, 8 bytes */

#define BLOCK 4096u
#define INLINE_MAX 2048u /* see kvfs_write: a file up to this size lives in its inode */
#define XATTR_VALUE_MAX (64u << 10)
#define SYMLINK_MAX 4095u
#define DIRENT_VALUE 9u  /* ino (8) + type (1); an embedded inode's record follows */
/* INODE REF (above) */
#define NS_INODE_REF 3u
#define NS_REF_PARENT 4u
#define NS_REF_NAME 12u
#define NS_REF_MAX (NS_REF_NAME + 255u)
/* T_ORPHAN values, by length: empty (an orphan inode), a truncation's size, a punch's range */
#define ORPHAN_TRUNC_LEN 8u
#define ORPHAN_RANGE_LEN 16u

/*
 * INODE RECORD header (man/kvfs.5 "Inode record").  Two versions, told apart by byte 2:
 *
 * v2, "compact" (what every writer writes):
 *   off  size  field
 *     0     2  mode      LE u16: S_IFMT bits | 07777
 *     2     1  version   NS_INODE_V2 (2)
 *     3     2  present   LE u16: bit i set = field i below follows; bits 12..15 zero
 *     5     -  the fields whose bit is set, in this order, each omitted when zero:
 *              bit  0 nlink   varint (at most 2^32 - 1)
 *              bit  1 uid     varint (at most 2^32 - 1)
 *              bit  2 gid     varint (at most 2^32 - 1)
 *              bit  3 size    varint
 *              bit  4 mtime   LE s64, 8 bytes (ns since the epoch)
 *              bit  5 atime   zig-zag varint of atime - mtime (mod 2^64); omitted when equal
 *              bit  6 ctime   zig-zag varint of ctime - mtime (mod 2^64); omitted when equal
 *              bit  7 gen     varint
 *              bit  8 rdev    varint
 *              bit  9 blocks  varint
 *              bit 10 parent  varint
 *              bit 11 flags   varint (at most 2^32 - 1)
 *   varint: unsigned LEB128 (7 bits a byte, least significant first, high bit = more), at
 *   most 10 bytes, canonical (no redundant last byte 0x00); zig-zag maps d to
 *   (d << 1) ^ (d >> 63 arithmetic), so small deltas of either sign are short.  A present
 *   field is never zero (one encoding per inode: ns_inode.c INO-1).  An inline regular file
 *   created now (equal times) costs 5 + nlink 1 + uid, gid 0-3 each + size 1-2 + mtime 8 +
 *   gen 1 + flags 1 = 17 (root's) to 24 bytes; the longest header is NS_INODE_HDR_MAX.
 *
 * v1 (stores written before v2; still read, rewritten as v2 when next changed): 88 bytes,
 *   u32 mode, nlink, uid, gid; u64 size; s64 atime, mtime, ctime; u64 gen, rdev, blocks,
 *   parent; u32 flags; u32 zero (LE, at 0, 4, 8, 12, 16, 24, ..., 72, 80, 84).  Its mode's
 *   upper 16 bits are always zero, so bytes 2 and 3 are 0: a record whose byte 2 is 0 is v1
 *   (and must then have byte 3 zero and be at least 88 bytes long), one whose byte 2 is 2 is
 *   v2, and any other is corrupt, except that a T_INODE value whose byte 2 is NS_INODE_REF (3)
 *   is not a record but an INODE REF (format version 4, above): test ns_is_ref first.
 */
#define NS_INODE_V2 2u
#define NS_INODE_V1_HDR 88u
#define NS_INODE_V2_FIXED 5u /* mode, version, present */
#define NS_INODE_HDR_MAX 103u /* v2: 5 + 4 * 5 (u32 varints) + 8 (mtime) + 7 * 10 (u64) */
/* The most bytes a header can take, v1 or v2 (a buffer for any record's header). */
#define NS_INODE_HDR_ANY (NS_INODE_HDR_MAX > NS_INODE_V1_HDR ? NS_INODE_HDR_MAX : NS_INODE_V1_HDR)
#define INODE_INLINE 1u /* flags bit 0: the bytes are in the record, not in T_DATA */

/* v2 present bits, in field order */
enum {
	NS_IN_NLINK, NS_IN_UID, NS_IN_GID, NS_IN_SIZE, NS_IN_MTIME, NS_IN_ATIME, NS_IN_CTIME,
	NS_IN_GEN, NS_IN_RDEV, NS_IN_BLOCKS, NS_IN_PARENT, NS_IN_FLAGS, NS_INODE_NFIELDS
};

/* An inode record's header, decoded (field names as in man/kvfs.5). */
struct ns_inode {
	uint32_t mode;                 /* S_IFMT | 07777: at most 0xffff */
	uint32_t nlink, uid, gid;
	uint64_t size;                 /* bytes */
	int64_t atime, mtime, ctime;   /* ns since the epoch */
	uint64_t gen, rdev, blocks, parent;
	uint32_t flags;                /* INODE_* */
};

/*
 * Write the v2 header of `in` into buf, which must hold NS_INODE_HDR_MAX bytes; the caller
 * appends the inline data or symlink target.  Returns the header's length in bytes, 5 to
 * NS_INODE_HDR_MAX.  Precondition (asserted): in->mode <= 0xffff.  Any values of the other
 * fields round-trip exactly through ns_inode_decode.  Pure; thread-safe.
 */
size_t ns_inode_encode(const struct ns_inode *in, uint8_t *buf);

/*
 * Parse the header at the start of rec[0..len) (a v1 or v2 record, possibly followed by
 * inline data) into *out.  Safe on arbitrary bytes: never reads at or past rec + len.
 * Returns the header's length in bytes (the inline data is rec[ret..len)), or -EUCLEAN when
 * the bytes are not a header: too short, byte 2 neither 0 nor 2, a v1 header under 88
 * bytes, a v2 field that runs past len, an unknown present bit, a varint over 10 bytes or
 * its field's width, or not in canonical form (ns_inode.c INO-1).  On -EUCLEAN *out may be
 * partly written, and *why (unless NULL) points to a static string saying what was wrong;
 * on success *why is NULL.  It does not check the fields' meaning (mode type, flags, the
 * tail's length): callers do.  Pure; thread-safe.
 */
int ns_inode_decode(const uint8_t *rec, size_t len, struct ns_inode *out, const char **why);


/* Is the T_INODE value v[0..len) an INODE REF (not a record)?  A REF shorter than
 * NS_REF_NAME + 1 or longer than NS_REF_MAX, or with bytes 0, 1 or 3 non-zero, is corrupt:
 * ns_ref_decode says so. */
static inline bool ns_is_ref(const uint8_t *v, size_t len)
{
	return len > 2 && v[2] == NS_INODE_REF;
}

/* Parse an INODE REF: 0 with *parent, *name (pointing into v) and *nlen set, or -EUCLEAN.
 * Pure; never reads at or past v + len. */
static inline int ns_ref_decode(const uint8_t *v, size_t len, uint64_t *parent,
				const uint8_t **name, size_t *nlen)
{
	if (len <= NS_REF_NAME || len > NS_REF_MAX || v[0] || v[1] || v[2] != NS_INODE_REF || v[3])
		return -EUCLEAN;
	*parent = ld64(v + NS_REF_PARENT);
	*name = v + NS_REF_NAME;
	*nlen = len - NS_REF_NAME;
	return 0;
}

/* Write the INODE REF to (parent, name[0..nlen)) into v (NS_REF_MAX bytes); returns its
 * length.  nlen is 1..255. */
static inline size_t ns_ref_encode(uint8_t *v, uint64_t parent, const char *name, size_t nlen)
{
	memset(v, 0, NS_REF_NAME);
	v[2] = NS_INODE_REF;
	st64(v + NS_REF_PARENT, parent);
	memcpy(v + NS_REF_NAME, name, nlen);
	return NS_REF_NAME + nlen;
}

static inline void ino_key(uint8_t k[8], uint64_t ino) { stbe64(k, ino); }

static inline void block_key(uint8_t k[16], uint64_t ino, uint64_t blk)
{
	stbe64(k, ino);
	stbe64(k + 8, blk);
}

/* k must hold 8 + len bytes. */
static inline size_t dirent_key(uint8_t *k, uint64_t parent, const char *name, size_t len)
{
	stbe64(k, parent);
	memcpy(k + 8, name, len);
	return 8 + len;
}

#endif
