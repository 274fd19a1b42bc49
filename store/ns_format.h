/*
 * store/ns_format.h — the file namespace's records on the engine's trees, as C: tree numbers,
 * key layouts and the INODE RECORD (man/kvfs.5 "NAMESPACE").  namespace.c writes and reads
 * them; kvfs-check (tools/check/phase5_namespace.c) checks them.  Integers in keys are
 * big-endian (they sort numerically), in values little-endian (store/format.h helpers).
 *
*   T_INODE   ino (BE u64)                  -> INODE RECORD (+ inline data or symlink target)
 *   T_DIRENT     parent ino (BE u64) + name    -> ino (LE u64) + type (u8, DT_* = S_IFMT >> 12)
 *   T_DATA       ino (BE u64) + block (BE u64) -> one block of BLOCK bytes (a missing block
 *                                                is a hole)
 *   T_XATTR      ino (BE u64) + name           -> value (0..XATTR_VALUE_MAX bytes)
 *   T_ORPHAN     ino (BE u64)                  -> empty: unlinked while open (or purged in
 *                                                steps), purged at its last release or the
 *                                                next open; or LE u64 size: a truncation in
 *                                                steps, blocks at or past ceil(size / BLOCK)
 *                                                still to delete (namespace.c "Bounded
 *                                                changes", man/kvfs.5 "Orphans")
 *   T_SUPER      "next_ino"                    -> LE u64, the next inode number to hand out
 *
 * Inode 1 (NS_ROOT_INO) is the root directory.  INODE RECORD: the IN_HDR-byte header
 * below, then for a file with INODE_INLINE exactly `size` bytes of data, for a symlink its
 * target (`size` bytes), else nothing.  A file of at most INLINE_MAX bytes is inline.
 */
#ifndef KVFS_STORE_NS_FORMAT_H
#define KVFS_STORE_NS_FORMAT_H

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
#define DIRENT_VALUE 9u  /* ino (8) + type (1) */

/* INODE RECORD header */
#define IN_MODE 0    /* u32 st_mode */
#define IN_NLINK 4   /* u32 */
#define IN_UID 8     /* u32 */
#define IN_GID 12    /* u32 */
#define IN_SIZE 16   /* u64 bytes */
#define IN_ATIME 24  /* s64 ns since the epoch */
#define IN_MTIME 32  /* s64 ns */
#define IN_CTIME 40  /* s64 ns */
#define IN_GEN 48    /* u64 generation */
#define IN_RDEV 56   /* u64 device number (character and block devices) */
#define IN_BLOCKS 64 /* u64 data blocks stored */
#define IN_PARENT 72 /* u64 a directory's parent directory (the one holding its dirent) */
#define IN_FLAGS 80  /* u32 INODE_*; then u32 zero */
#define IN_HDR 88
#define INODE_INLINE 1u

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
