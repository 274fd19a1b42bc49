/*
 * kvfs.h — the kvfs library: a key-value store whose keys are files.
 *
 * A store is two files: STORE (a copy-on-write B+tree, man/kvfs.5 "DATA FILE") and STORE-wal
 * (a write-ahead log, man/kvfs.5 "LOG").  A key is a path relative to the root, "a/b/c": the
 * same bytes a mounted kvfs shows as mnt/a/b/c.  Components are 1..255 bytes, contain no '/'
 * or NUL, and are not "." or "..".
 *
 * Durability: a call that changes the store returns after its change is in the log (it
 * survives a crash of the calling process); kvfs_sync() (or KVFS_SYNC_WRITES) makes every
 * change before it survive power loss.  After any crash the store opens consistent, with every
 * call wholly present or wholly absent, in the order they returned — except where a call says
 * it is applied in steps (kvfs_put creating parent directories, or larger than 16 MiB; writes
 * larger than 4 MiB): each step is then atomic, and a crash can leave a prefix of them.
 * Removing, truncating or replacing a file of more than 16384 blocks (64 MiB) is still one
 * visible change; the blocks past the new size (all of them for a removed file) are then freed
 * in further changes of at most 16384 block deletes each, before the call returns (the
 * orphan list, man/kvfs.5 "Orphans"): they change nothing a reader sees, and after a crash
 * between them kvfs_open finishes them before it returns.  Meanwhile st.blocks counts the
 * blocks still to free.
 *
 * Errors: every call returns 0 (or a count) on success and a negative errno on failure, never
 * sets errno as its answer:
 *   -ENOENT   no such key, or a missing directory on the way;
 *   -ENOTDIR  a component on the way is a file;  -EISDIR  the key is a directory;
 *   -EINVAL   an invalid key or argument;  -ENAMETOOLONG  a component over 255 bytes;
 *   -EEXIST, -ENOTEMPTY, -EXDEV (never: one store), -EFBIG, -ENOSPC, -ENOMEM;
 *   -EIO      an I/O error (the store is failed until reopened);
 *   -EUCLEAN  corruption detected (with a log line naming the page or record);
 *   -EROFS    a change on a read-only store;  -EBUSY  the store is open elsewhere.
 *
 * Thread safety: a struct kvfs may be used from any number of threads at once.
 *
 * Memory: the library never returns memory the caller must free, except where a call says.
 */
#ifndef KVFS_H
#define KVFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kvfs;

#define KVFS_NAME_MAX 255
#define KVFS_ROOT_INO 1

/* kvfs_options.flags */
#define KVFS_CREATE      0x1 /* create the store when missing */
#define KVFS_RDONLY      0x2 /* open read-only (shared lock; nothing written) */
#define KVFS_SYNC_WRITES 0x4 /* every change is durable before it returns */

struct kvfs_options {
	unsigned flags;
	mode_t mode;                   /* permissions of created store files; 0: 0644 */
	uint64_t checkpoint_bytes;     /* checkpoint when the overlay holds this much; 0: 16 MiB.
					  also bounds the log's ring, sized to the data file:
					  from 2 x this (at least 36 MiB) to 4 x this */
	uint64_t checkpoint_interval_ms; /* and at least this often; 0: 30 s */
	uint64_t memory_limit;         /* overlay bytes at which writers wait; 0: 4 x checkpoint */
	/* diagnostics, one line each (no newline); NULL: stderr */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/*
 * Open (with KVFS_CREATE: create) the store at `path`.  On a new store the root directory
 * (inode KVFS_ROOT_INO) is created with mode 0755 owned by the caller.  Replays the log and
 * purges files unlinked while open when the store was last closed uncleanly.
 * Returns 0 and *out (owned by the caller until kvfs_close), or -ENOENT, -EINVAL (not a kvfs
 * store), -EPROTONOSUPPORT, -EUCLEAN, -EBUSY, -EACCES, -ENOMEM, -EIO.
 */
int kvfs_open(const char *path, const struct kvfs_options *opt, struct kvfs **out);

/* Checkpoint, close and free.  0 or the -errno of the final checkpoint (nothing that returned
 * is lost either way: the log still holds it). */
int kvfs_close(struct kvfs *fs);

/* ---- keys ---- */

/*
 * Read the file at `key`: copies min(cap, size) bytes into buf and returns the file's size.
 * The name's dirent, the inode (the size returned) and the first 16 MiB copied are read from
 * one committed state: a get racing a kvfs_put (atomic up to 16 MiB) returns the old or the
 * new contents whole, never blocks of both; a copy of more than 16 MiB reads the rest in
 * 1 MiB pieces, each from one state (man/kvfs.3 "Readers and writers").  Changes wait while
 * a get copies its one-state part (about 3-5 ms for 16 MiB in the page cache).
 * -ENOENT, -EISDIR, -ENOTDIR, -EINVAL, -ENAMETOOLONG, -EIO, -EUCLEAN.
 */
ssize_t kvfs_get(struct kvfs *fs, const char *key, void *buf, size_t cap);

/*
 * Create or replace the file at `key` with `len` bytes, atomically for crashes (after a crash
 * the file holds the old or the new contents) up to 16 MiB, whatever the size of the file it
 * replaces (its blocks past `len` are freed afterwards, in steps: Durability above); a larger
 * put first empties the file (a crash may leave it empty) and is applied in 16 MiB pieces.
 * An existing regular file keeps its inode: its other names see the new contents.  A
 * concurrent kvfs_get sees the old or the new contents whole (up to 16 MiB: kvfs_get), a
 * kvfs_read each of its 1 MiB pieces whole (kvfs_read).  Missing parent directories
 * are created (mode 0755), each in its own step before the file: a crash can leave them
 * without the file.  A new file gets mode 0644 and the caller's uid/gid.
 * -EISDIR (key is a directory), -ENOTDIR (a parent is a file), -EINVAL, -ENAMETOOLONG, -EFBIG,
 * -ENOSPC, -EIO, -EROFS.
 */
int kvfs_put(struct kvfs *fs, const char *key, const void *val, size_t len);

/* Remove the file (or empty directory) at `key`.  -ENOENT, -ENOTEMPTY, -ENOTDIR, -EINVAL. */
int kvfs_delete(struct kvfs *fs, const char *key);

/* 1 when `key` exists (file or directory), 0 when not, or -errno. */
int kvfs_exists(struct kvfs *fs, const char *key);

/*
 * Atomic batches: puts and deletes applied all or none, in one log record (a crash leaves all
 * or none of them).  Operations on the same key: the last one counts.  Missing parent
 * directories of puts are created first (and stay, like kvfs_put's, even when the batch then
 * fails).  A batch deletes files only (-EISDIR for a directory).  Operations on several names
 * of one file (hard links) apply in key order, as separate calls would.  kvfs_batch_commit
 * returns the first operation's error (nothing applied) or 0; the batch keeps its operations
 * either way (kvfs_batch_clear empties it).  A batch is used by one thread at a time.
 *
 * Size: a batch is one log record, which must fit in half the log's ring (18 MiB for the
 * smallest ring).  kvfs_batch_put and kvfs_batch_delete return -EFBIG (the operation not
 * added, the batch unchanged and still usable) when the batch would hold more than 16 MiB of
 * values, or when its record, estimated as below, would pass KVFS_BATCH_RECORD_MAX; a batch
 * they accepted does not fail with -EFBIG at commit, except as the last paragraph says.  In
 * bytes, NAME being the length of a key's last component and the value LEN bytes:
 *   each put     NAME + 168, plus LEN when LEN <= 2048, else 4120 per 4 KiB block of it;
 *   each delete  NAME + 135;
 *   each distinct parent directory of the keys (the root included): 119.
 * So about 92,000 puts of 16-byte values under 10-byte names in one directory, 4,096 of 4 KiB
 * values (16 MiB), or 123,000 deletes.  Operations on one key count each time, though only the
 * last is applied.  The remaining 1 MiB of the half ring covers the deletes of the blocks of
 * files the batch removes or shrinks (at most 16,384 blocks, 384 KiB; more are freed after the
 * commit, Durability above) and these rarer costs: a value of at most 2048 bytes replacing a
 * file whose blocks the batch cannot all free keeps a 4 KiB block (4,120 bytes more); a
 * delete of one name of a file with others rewrites its inode with its bytes (up to 2,048
 * bytes more); a put replacing a symlink or special file, and the extended attributes of the
 * files a batch deletes (8 + 8 + attribute name each).  A batch heavy in those may still get
 * -EFBIG from kvfs_batch_commit (nothing applied), never a partial commit.
 */
#define KVFS_BATCH_RECORD_MAX (17u << 20) /* estimated record bytes of one batch, at most */

struct kvfs_batch;
struct kvfs_batch *kvfs_batch_new(void); /* NULL on out of memory */
/* Free the batch and all its memory.  NULL is ignored. */
void kvfs_batch_free(struct kvfs_batch *b);
/* Empty the batch for reuse.  It keeps up to 32 MiB of the memory its operations' keys and
 * values took, for the next ones (a stream of big batches does not fault in fresh pages for
 * each); kvfs_batch_free gives it back. */
void kvfs_batch_clear(struct kvfs_batch *b);
/* Add a put of `len` bytes (copied) or a delete to `b`: 0, -EINVAL or -ENAMETOOLONG (a bad
 * key), -EFBIG (Size above), -ENOMEM; on an error the batch is as before the call. */
int kvfs_batch_put(struct kvfs_batch *b, const char *key, const void *val, size_t len);
int kvfs_batch_delete(struct kvfs_batch *b, const char *key);
int kvfs_batch_commit(struct kvfs *fs, struct kvfs_batch *b);

/* Make every change that returned before this call durable (group commit).  0 or -EIO. */
int kvfs_sync(struct kvfs *fs);

/*
 * Ordered listing.  kvfs_list calls fn for every entry of the directory `dir` ("" is the root)
 * in name order (bytes, shorter prefix first).  kvfs_scan calls fn for every non-directory
 * whose key is in [lo, hi) (NULL: open), in key order across directories, with the key
 * relative to the root.  Key order is byte order with '/' below every other byte, which is
 * the order of a depth-first walk in name order: "a/b" < "a/b/c" < "a/c" < "a!" < "ab".
 * fn returning non-zero stops the walk and is returned.  Entries changed during the walk may
 * or may not be seen.  -ENOENT, -ENOTDIR, -EINVAL, -EIO, -EUCLEAN.
 */
struct kvfs_stat;
int kvfs_list(struct kvfs *fs, const char *dir,
	      int (*fn)(void *ctx, const char *name, const struct kvfs_stat *st), void *ctx);
int kvfs_scan(struct kvfs *fs, const char *lo, const char *hi,
	      int (*fn)(void *ctx, const char *key, const struct kvfs_stat *st), void *ctx);

/* ---- inodes: what a file system layer (FUSE) needs ---- */

/* Attributes of an inode.  Times in nanoseconds since the epoch. */
struct kvfs_stat {
	uint64_t ino;
	uint32_t mode;     /* type and permission bits, as st_mode */
	uint32_t nlink;
	uint32_t uid, gid;
	uint64_t rdev;
	uint64_t size;     /* bytes; for a symlink the target's length */
	uint64_t blocks;   /* 512-byte units allocated (data blocks only; inline files 0) */
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint64_t generation;
};

/* Look `name` up in directory `parent`.  0 and *st, -ENOENT, -ENOTDIR, -ENAMETOOLONG. */
int kvfs_lookup(struct kvfs *fs, uint64_t parent, const char *name, struct kvfs_stat *st);
/* Attributes of `ino`.  0, -ENOENT. */
int kvfs_getattr(struct kvfs *fs, uint64_t ino, struct kvfs_stat *st);

/* kvfs_setattr mask bits */
#define KVFS_SET_MODE  0x01 /* permission bits of sa->mode (type bits ignored) */
#define KVFS_SET_UID   0x02
#define KVFS_SET_GID   0x04
#define KVFS_SET_SIZE  0x08 /* truncate or extend (a hole) to sa->size; regular files only */
#define KVFS_SET_ATIME 0x10
#define KVFS_SET_MTIME 0x20
#define KVFS_SET_CTIME 0x40 /* ctime is otherwise set to now by every change */
/* Change attributes; *st receives the new ones.  -ENOENT, -EISDIR (size of a directory),
 * -EINVAL, -EFBIG. */
int kvfs_setattr(struct kvfs *fs, uint64_t ino, const struct kvfs_stat *sa, unsigned mask,
		 struct kvfs_stat *st);

/* Create a node (regular file, FIFO, socket, character or block device by `mode`'s type;
 * S_IFREG when the type bits are 0) or a directory or symlink, owned by uid:gid.  A directory
 * with the set-group-ID bit passes its gid (and, to directories, the bit) down.
 * 0 and *st, -EEXIST, -ENOENT (parent), -ENOTDIR, -ENAMETOOLONG, -EINVAL, -EMLINK. */
int kvfs_mknod(struct kvfs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
	       uint32_t uid, uint32_t gid, struct kvfs_stat *st);
int kvfs_mkdir(struct kvfs *fs, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct kvfs_stat *st);
int kvfs_symlink(struct kvfs *fs, uint64_t parent, const char *name, const char *target,
		 uint32_t uid, uint32_t gid, struct kvfs_stat *st);
/* Copy a symlink's target (not NUL-terminated) into buf; returns its length.  -EINVAL (not a
 * symlink), -ENOENT. */
ssize_t kvfs_readlink(struct kvfs *fs, uint64_t ino, char *buf, size_t cap);
/* A new name for `ino` (not a directory): -EPERM for a directory, -EEXIST, -EMLINK. */
int kvfs_link(struct kvfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	      struct kvfs_stat *st);
/* Remove a name of a non-directory; the inode lives on while open (kvfs_open_ino) and is
 * purged at its last release (a big file's blocks in steps: Durability above).
 * -ENOENT, -EISDIR. */
int kvfs_unlink(struct kvfs *fs, uint64_t parent, const char *name);
/* Remove an empty directory.  -ENOENT, -ENOTDIR, -ENOTEMPTY, -EBUSY (the root). */
int kvfs_rmdir(struct kvfs *fs, uint64_t parent, const char *name);

#define KVFS_RENAME_NOREPLACE 0x1 /* as RENAME_NOREPLACE: -EEXIST when newname exists */
#define KVFS_RENAME_EXCHANGE  0x2 /* as RENAME_EXCHANGE: swap the two names */
/* Rename atomically, in O(1) for files and whole directories alike, with rename(2)'s rules:
 * replacing a directory only by a directory and only when empty (-ENOTEMPTY, -EISDIR,
 * -ENOTDIR); -EINVAL when a directory would move into its own subtree or both flags are given;
 * renaming a name onto a hard link of the same inode does nothing. */
int kvfs_rename(struct kvfs *fs, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, unsigned flags);

/* Read up to len bytes at off (short at end of file; holes read as zeros).  Returns the count.
 * Reads in pieces that end at multiples of 1 MiB of the file, each from one committed state
 * (no change lands between its blocks), the first together with the inode (the size that
 * clips the read): a read of at most 1 MiB that stays within one aligned MiB, as a FUSE read
 * does, is one state's bytes; a longer read may mix states at the piece boundaries.
 * -EISDIR, -EINVAL (not a regular file), -ENOENT, -EIO, -EUCLEAN. */
ssize_t kvfs_read(struct kvfs *fs, uint64_t ino, void *buf, size_t len, uint64_t off);
/* Write len bytes at off, extending the file (a gap becomes a hole).  Returns len, or a short
 * count when a piece after the first failed (writes over 4 MiB are applied in 4 MiB pieces,
 * each atomic).  -EFBIG past KVFS_MAX_FILE, -EISDIR, -EINVAL, -ENOSPC, -EIO. */
ssize_t kvfs_write(struct kvfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off);
#define KVFS_MAX_FILE (1ull << 44) /* 16 TiB */
/* fallocate: mode 0 reserves nothing but extends the size like a write would (kvfs allocates
 * lazily); KVFS_FALLOC_PUNCH_HOLE (with KEEP_SIZE) turns [off, off+len) into a hole, of any
 * size: more than one step of whole blocks (16384) is dropped in steps before the call
 * returns, the range on the orphan list meanwhile (man/kvfs.3 "Durability", man/kvfs.5
 * "Orphans"); a crash between them is finished at the next open.  Once it returned, the hole
 * reads as zeros and st_blocks counts what is left.  A failed step returns its -ENOSPC or -EIO
 * with the hole partly punched (finished before the next change to a file's data or size, or at
 * the next open).  -EOPNOTSUPP for other modes or PUNCH_HOLE without KEEP_SIZE, -EINVAL (len
 * 0), -EFBIG (past KVFS_MAX_FILE), -EISDIR, -ENODEV (not a regular file), -ENOENT, -EROFS,
 * -ENOSPC, -EIO, -ENOMEM, -EUCLEAN.  Serialized with other changes (the namespace lock). */
#define KVFS_FALLOC_KEEP_SIZE  0x1
#define KVFS_FALLOC_PUNCH_HOLE 0x2
int kvfs_fallocate(struct kvfs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len);

/*
 * lseek(2)'s SEEK_DATA and SEEK_HOLE on a regular file: *out receives the offset of the first
 * byte at or after `off` that is data (KVFS_SEEK_DATA) or in a hole (KVFS_SEEK_HOLE).  Data is
 * a 4 KiB block that was written (also with zeros) and not punched or truncated away; a hole
 * is a block that never was; an inline file (man/kvfs.5 "NAMESPACE") is all data; the end of
 * the file counts as a hole, so SEEK_HOLE always finds one (at most the size).  The values of
 * the two constants are Linux's SEEK_DATA and SEEK_HOLE.  Reads only; a concurrent write may
 * or may not be seen, as with lseek(2).
 * -ENXIO when off < 0 or off >= the size, or (SEEK_DATA) when only a hole follows `off`, as
 * Linux's native file systems; -EINVAL for another `whence` or a file that is not regular;
 * -EISDIR for a directory; -ENOENT, -EIO, -EUCLEAN.
 */
#define KVFS_SEEK_DATA 3
#define KVFS_SEEK_HOLE 4
int kvfs_lseek(struct kvfs *fs, uint64_t ino, int64_t off, int whence, uint64_t *out);

/* Open references: an unlinked inode stays readable until its last release.  kvfs_open_ino
 * -ENOENT; kvfs_release_ino never fails (a purge error is logged). */
int kvfs_open_ino(struct kvfs *fs, uint64_t ino);
void kvfs_release_ino(struct kvfs *fs, uint64_t ino);

/*
 * Directory listing in name order, resuming strictly after the name `after` (NULL or "" to
 * start): fn(ctx, name, ino, type (DT_*)) for each entry; fn returning non-zero stops (and is
 * not an error).  "." and ".." are not listed.  0, -ENOTDIR, -ENOENT.  Resuming by name is
 * stable across changes: an entry neither removed nor added during the listing is returned
 * exactly once, in order, even when the entry last returned has been removed meanwhile.  (A
 * FUSE layer keeps the last name per open directory to turn readdir offsets into `after`.)
 */
int kvfs_readdir(struct kvfs *fs, uint64_t ino, const char *after,
		 int (*fn)(void *ctx, const char *name, uint64_t ino, unsigned type), void *ctx);

/* Extended attributes (names 1..255 bytes in the namespaces user., trusted., security. or
 * system.; values up to 64 KiB).  getxattr/listxattr with cap 0 return the size needed.
 * -ENODATA (no such attribute), -ERANGE (buffer too small), -EEXIST/-ENODATA with the
 * create/replace flags (XATTR_CREATE 1, XATTR_REPLACE 2), -E2BIG, -EOPNOTSUPP (a name without
 * one of those namespaces, or system.posix_acl_*: POSIX ACLs are not kept). */
int kvfs_setxattr(struct kvfs *fs, uint64_t ino, const char *name, const void *val, size_t len,
		  int flags);
ssize_t kvfs_getxattr(struct kvfs *fs, uint64_t ino, const char *name, void *buf, size_t cap);
/* NUL-separated names, as listxattr(2). */
ssize_t kvfs_listxattr(struct kvfs *fs, uint64_t ino, char *buf, size_t cap);
int kvfs_removexattr(struct kvfs *fs, uint64_t ino, const char *name);

/* Make changes to `ino` durable (all changes before it, in fact: one log). */
int kvfs_fsync(struct kvfs *fs, uint64_t ino);

struct kvfs_stats {
	uint64_t files, dirs, bytes;       /* inodes of each kind; sum of file sizes */
	uint64_t pages_used, pages_free, pages_pinned, page_size;
	double space_amplification;        /* data file bytes / (bytes + metadata estimate) */
	uint64_t log_bytes, checkpoints, fdatasync_calls, sync_calls;
	double mean_group_size;            /* sync calls per fdatasync */
	uint64_t oldest_snapshot_age_ns;
	uint64_t statfs_blocks, statfs_bfree; /* 4 KiB blocks of the data file's file system */
};
int kvfs_stats(struct kvfs *fs, struct kvfs_stats *out);

#endif
