/*
 * store/store.h — the copy-on-write B+tree store: one data file of 4 KiB pages holding named
 * trees, transactions over them, and the verifier.
 *
 * This is the layer below the engine (kvfs.h): it knows pages, trees, keys and values, and
 * nothing of files, logs or FUSE.  The on-disk format is man/kvfs.5, section "DATA FILE";
 * store/format.h holds the same layout as C.
 *
 * Model
 *   - A store holds any number of named trees (names 1..STORE_MAX_TREE_NAME bytes), each an
 *     ordered map from keys (1..STORE_MAX_KEY bytes, compared as unsigned bytes, shorter
 *     prefix first) to values (0..STORE_MAX_VALUE bytes).
 *   - One write transaction at a time (store_txn_begin without STORE_TXN_RDONLY waits for the
 *     previous writer to commit or abort).  Any number of read transactions run concurrently
 *     with it and with each other; each sees the state committed when it began (a snapshot),
 *     never blocks and is never blocked.
 *   - store_txn_commit makes the writer's changes visible to later snapshots.  A durable
 *     commit writes the new pages, makes them durable, then writes the other meta page and
 *     makes it durable (INV-1 of DESIGN.md).  A STORE_COMMIT_NOSYNC commit writes the pages
 *     but keeps the meta page in memory: it is visible at once and becomes durable with the
 *     next durable commit or store_sync(); a crash before that returns the store to the last
 *     durable commit, consistent.
 *
 * Errors: 0 or a negative errno, never errno.  -EUCLEAN means bytes read from the file are
 * wrong (a checksum, a page number, a transaction id, a bound); a message naming the store,
 * page and problem goes to the log callback first.  After a failed write or sync the store is
 * failed: every later write transaction and commit returns -EIO until it is reopened (read
 * transactions go on seeing the last committed state).
 *
 * Thread safety: a struct store may be used from any number of threads.  A transaction, and
 * the tree handles and cursors opened in it, belong to one thread at a time.
 */
#ifndef KVFS_STORE_STORE_H
#define KVFS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/io.h"

typedef uint64_t pgno_t;  /* page number: byte offset / STORE_PAGE_SIZE */
typedef uint64_t txnid_t; /* transaction id: 1 for the first commit of a new store */
typedef uint64_t lsn_t;   /* log sequence number (the log's, opaque to the store) */

#define STORE_PAGE_SIZE     4096u
#define STORE_MAX_KEY       1024u       /* bytes; longer keys are -EINVAL */
#define STORE_MAX_VALUE     (1u << 30)  /* bytes (1 GiB); longer values are -EINVAL */
#define STORE_MAX_TREE_NAME 255u        /* bytes */

struct store;
struct store_txn;
struct store_tree;
struct store_cursor;

/* Open flags. */
#define STORE_CREATE 0x1 /* create the file (with a fresh empty store) when it is missing */
#define STORE_RDONLY 0x2 /* open read-only: no write transaction, nothing written, shared lock */

struct store_options {
	unsigned flags;    /* STORE_CREATE | STORE_RDONLY */
	mode_t mode;       /* permission bits for a created file; 0 means 0644 */
	struct io_env *io; /* NULL: the POSIX environment; tests pass io_fault_env() */
	/* Where diagnostics go (one line each, without newline, e.g.
	 * "store /x/default.kvfs: page 812: checksum mismatch").  NULL: stderr.  Called from
	 * any thread; must not call back into the store. */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/*
 * Open the store at `path` (the data file).  With STORE_CREATE a missing file is created and
 * initialised (two meta pages, empty trees; made durable).  Takes an exclusive lock on the
 * file (shared with STORE_RDONLY), so a second open of the same store fails.
 *
 * Picks the valid meta page with the higher transaction id and falls back to the other when
 * one is torn or corrupt.
 *
 * Returns 0 and *out, owned by the caller until store_close(); or
 *   -ENOENT   the file is missing and STORE_CREATE was not given;
 *   -EINVAL   the file is not a kvfs store (bad magic; too short to hold two meta pages);
 *   -EPROTONOSUPPORT  a kvfs store of a format version or page size this build cannot read;
 *   -EUCLEAN  both meta pages are corrupt, or the file is shorter than the meta page says;
 *   -EBUSY    another open holds the lock;
 *   -EACCES, -EROFS, -ENOMEM, -EIO, -ENOSPC: from the system.
 * Nothing is written to an existing file by open.
 */
int store_open(const char *path, const struct store_options *opt, struct store **out);

/*
 * Close the store.  Pending STORE_COMMIT_NOSYNC commits are made durable first.  No
 * transaction may be open.  Always frees `st`; returns 0, or the -errno of that final sync
 * (the data then stands as of the last durable commit).
 */
int store_close(struct store *st);

/* Make every NOSYNC commit durable (write and sync the meta page).  Waits for the writer.
 * 0, -EIO (failed store), -ENOSPC, -errno. */
int store_sync(struct store *st);

/* Transaction flags. */
#define STORE_TXN_RDONLY    0x1 /* a read snapshot */
#define STORE_COMMIT_NOSYNC 0x2 /* store_txn_commit: do not write the meta page durably */

/*
 * Begin a transaction.  A read transaction (STORE_TXN_RDONLY) takes a snapshot of the last
 * commit and never waits.  A write transaction waits until no other write transaction is
 * open.
 *
 * Returns 0 and *out (owned by the caller until commit or abort), or -EROFS (write on a
 * read-only store), -EIO (the store is failed), -ENOMEM.
 */
int store_txn_begin(struct store *st, unsigned flags, struct store_txn **out);

/*
 * Commit a write transaction (flags: 0 or STORE_COMMIT_NOSYNC); for a read transaction the
 * same as abort.  Always ends and frees `txn` and its trees and cursors.  On error nothing of
 * the transaction is visible and the store is failed when the error came from I/O.
 *   -EIO, -ENOSPC, -EFBIG: writing or syncing failed;
 *   -EUCLEAN: a page needed to finish the commit (the free list) is corrupt;
 *   -ENOMEM.
 */
int store_txn_commit(struct store_txn *txn, unsigned flags);

/* End a transaction without committing; frees it.  Never fails. */
void store_txn_abort(struct store_txn *txn);

/* For a write transaction: the pages it has made that hold space until two commits later:
 * tree nodes copied into memory (each written as at least one new page at commit, freeing
 * the page it came from) and the pages of overflow runs it freed that an earlier transaction
 * wrote (a new run is not counted: it frees nothing).  A transaction's size, for callers that
 * commit in pieces to bound the file's growth; 0 for a read transaction.  Thread safety: the
 * transaction's owner only. */
uint64_t store_txn_pages(const struct store_txn *txn);

/* The transaction id: for a read transaction the snapshot's, for a write transaction the id
 * its commit will carry. */
txnid_t store_txn_id(const struct store_txn *txn);

/* The log position stored with the snapshot's meta page (0 in a new store), and for a write
 * transaction, set the one its commit will store.  See man/kvfs.5 "META PAGE". */
lsn_t store_txn_lsn(const struct store_txn *txn);
void store_txn_set_lsn(struct store_txn *txn, lsn_t lsn);

/*
 * Open the named tree in `txn`.  With `create` (write transactions only) a missing tree is
 * created empty.  The handle belongs to the transaction and is valid until it ends; opening
 * the same name twice returns the same handle.
 *   -ENOENT  no such tree (and !create);
 *   -EINVAL  name empty or longer than STORE_MAX_TREE_NAME;
 *   -EROFS   create in a read transaction;
 *   -EUCLEAN, -ENOMEM.
 */
int store_tree_open(struct store_txn *txn, const char *name, size_t name_len, bool create,
		    struct store_tree **out);

/* Delete the named tree and every key in it (its pages are freed at commit).
 * 0, -ENOENT, -EINVAL, -EROFS, -EUCLEAN, -ENOMEM.  Handles to it become invalid. */
int store_tree_drop(struct store_txn *txn, const char *name, size_t name_len);

/* A borrowed byte string. */
struct store_val {
	const void *data;
	size_t len;
};

/*
 * Look up `key`.  On success *val points at the value: in a read transaction into the
 * read-only mapping, valid until the transaction ends; in a write transaction valid until the
 * next change in that transaction or its end.  Never write through it.
 *   -ENOENT  no such key;  -EINVAL  klen 0 or > STORE_MAX_KEY;  -EUCLEAN.
 */
int store_get(struct store_tree *t, const void *key, size_t klen, struct store_val *val);

/*
 * A finger: where the last lookup through it ended (a leaf page of a read transaction's
 * snapshot), so that a lookup of a key within that leaf's span (its first to its last key)
 * searches the leaf without descending from the root; and the next key after the one found
 * last is tried first, so a run of consecutive keys (a file's data blocks) costs one descent
 * per leaf, not per key.  Initialise with STORE_FINGER_INIT; owned by the caller; valid with
 * the transaction it was used in and no longer (it points into that snapshot's pages); one
 * finger per thread (the transaction may be shared by readers, each with its own finger).
 */
struct store_finger {
	const struct store_tree *t; /* the tree the leaf belongs to; NULL: none yet */
	const uint8_t *leaf;        /* in the read-only mapping */
	unsigned idx;               /* the leaf's cell found last (or just before the key) */
};
#define STORE_FINGER_INIT ((struct store_finger){ NULL, NULL, 0 })

/*
 * store_get through a finger f (results, errors and *val's lifetime as store_get).  In a read
 * transaction f is used and moved to the leaf this lookup ends in (a missing key's leaf too);
 * in a write transaction it is ignored (its nodes change).  Reads nothing shared but the
 * snapshot's pages: several threads may look up through one read transaction at once, each
 * with its own finger (store/engine.c does).
 */
int store_get_near(struct store_tree *t, struct store_finger *f, const void *key, size_t klen,
		   struct store_val *val);

/*
 * Insert `key` or replace its value (write transactions).  The bytes are copied.
 *   -EINVAL  klen 0 or > STORE_MAX_KEY, or vlen > STORE_MAX_VALUE;
 *   -EROFS   read transaction;  -EIO (failed store), -ENOSPC, -EUCLEAN, -ENOMEM.
 */
int store_put(struct store_tree *t, const void *key, size_t klen, const void *val,
	      size_t vlen);

/* Delete `key` (write transactions).  Underfull pages are merged or rebalanced at commit.
 *   -ENOENT, -EINVAL, -EROFS, -EIO, -EUCLEAN, -ENOMEM. */
int store_del(struct store_tree *t, const void *key, size_t klen);

/* Number of keys in the tree (as of this transaction). */
uint64_t store_tree_count(const struct store_tree *t);

/*
 * Cursors: an ordered walk of one tree inside one transaction, optionally bounded.  A cursor
 * stays usable across changes made in its write transaction: its next step continues from
 * the key it was on.  Freed with the transaction at the latest.
 *
 * Positioning calls return 0 when the cursor is on a key within the bounds, -ENOENT when there
 * is none (the cursor is then unpositioned), or -EUCLEAN / -ENOMEM.
 */
int store_cursor_open(struct store_tree *t, struct store_cursor **out);
void store_cursor_close(struct store_cursor *c);
/* Restrict the cursor to keys k with lo <= k < hi.  A NULL bound (or length 0 for hi) is
 * open.  The bytes are copied.  Unpositions the cursor.  0, -EINVAL, -ENOMEM. */
int store_cursor_set_range(struct store_cursor *c, const void *lo, size_t lolen,
			   const void *hi, size_t hilen);
/* Restrict the cursor to keys starting with `prefix` (plen >= 1).  0, -EINVAL, -ENOMEM. */
int store_cursor_set_prefix(struct store_cursor *c, const void *prefix, size_t plen);
int store_cursor_first(struct store_cursor *c);
int store_cursor_last(struct store_cursor *c);
/* First key >= key within the bounds. */
int store_cursor_seek(struct store_cursor *c, const void *key, size_t klen);
int store_cursor_next(struct store_cursor *c);
int store_cursor_prev(struct store_cursor *c);
/* The current key and value (either pointer may be NULL), valid as for store_get.
 * 0, -ENOENT when unpositioned, or -EUCLEAN when the value's overflow run is damaged. */
int store_cursor_get(struct store_cursor *c, struct store_val *key, struct store_val *val);

struct store_stat {
	uint64_t page_size;     /* bytes */
	uint64_t page_count;    /* pages in the last commit's state, meta pages included */
	uint64_t file_bytes;    /* size of the data file */
	uint64_t pages_used;    /* reachable from a tree, the catalog or the free list */
	uint64_t pages_free;    /* on the free list (reusable or not) */
	uint64_t pages_pinned;  /* of pages_free: not yet reusable because an older snapshot or
				   the older meta page can still reach them */
	uint64_t n_trees;       /* named trees */
	uint64_t n_readers;     /* read transactions open now */
	txnid_t txnid;          /* last commit */
	txnid_t durable_txnid;  /* last durable commit */
	txnid_t oldest_reader;  /* snapshot id of the oldest open read transaction, 0 if none */
	uint64_t oldest_reader_age_ns; /* how long it has been open */
	uint64_t n_commits;     /* since open */
	uint64_t n_syncs;       /* fdatasync calls since open */
};

/* Statistics as of now.  Takes a snapshot internally; never blocks.  0, -EUCLEAN, -ENOMEM. */
int store_stat(struct store *st, struct store_stat *out);

/*
 * Verify the last committed state in full: every page's checksum, page number and transaction
 * id against its parent's expectation, key order, separator bounds, uniform depth, overflow
 * runs, the free list, and INV-2 (every page after the meta pages is reachable exactly once
 * or on the free list).  Each problem is reported as one line through `report` (NULL: the
 * store's log).  Returns 0 when clean, -EUCLEAN when a problem was found, or -ENOMEM.
 * Runs on a snapshot: never blocks the writer.
 */
int store_verify(struct store *st, void (*report)(void *ctx, const char *line), void *ctx);

/* The path the store was opened with (owned by the store). */
const char *store_path(const struct store *st);

/* ---- repair (store/repair.c; for kvfs-check, man/kvfs-check.8) ---- */

/*
 * Rewrite the META PAGE of the slot other than `good_slot` (0 or 1) with the meta page of
 * `good_slot`, so that both slots describe the same committed state, and make it durable
 * (fdatasync).  The store at `path` must not be open (the file's lock is taken for the
 * duration).  Used to fix a corrupt meta slot, and, with the older slot as `good_slot`, to
 * roll a store back to its previous commit (sound by INV-1: nothing the older meta page
 * reaches was overwritten while the newer one existed).  Afterwards both slots carry the
 * same txnid; the next commit writes slot 0 and the free list's gate (the older meta page)
 * is that txnid, as it must be.  Only opt->io and opt->log are used (opt may be NULL).
 *   -EINVAL   good_slot is not 0 or 1, or the file is not a kvfs store;
 *   -EUCLEAN  the meta page of good_slot is not valid (nothing is written), or the file is
 *             shorter than its page_count;
 *   -EPROTONOSUPPORT  a format this build cannot read;
 *   -EBUSY    the store is open (locked) elsewhere;
 *   -ENOENT, -EACCES, -EROFS, -EIO, -ENOSPC: from the system.
 * Not thread-safe with respect to other opens of the same store (it locks the file).
 */
int store_repair_meta(const char *path, const struct store_options *opt, unsigned good_slot);

/* What store_repair_rebuild did. */
struct store_repair_result {
	uint64_t pages_freed;   /* pages in [2, page_count) no tree reaches, now on the free list */
	uint64_t records_fixed; /* tree records (the catalog's included) whose counts were
				   rewritten */
	txnid_t txnid;          /* the repair's commit */
};

/*
 * Rebuild the free list of the store at `path` from reachability: open it, ignore the free
 * list on disk (the freedb tree, the meta page's free_pages and deferred runs), walk the
 * catalog and every named tree in full (as store_verify), and in one durable commit record
 * every page of [2, page_count) that no tree reaches as free (under the commit's txnid, so
 * that it is reused only once both meta pages are at least this commit: INV-1) and rewrite
 * the tree records whose entries or pages disagree with the walk.  The meta page's LSN is
 * kept.  Then store_verify must pass.  The store must not be open elsewhere (-EBUSY).
 * opt: io, log (flags must be 0; NULL for defaults).  *res (may be NULL) says what was done.
 *   -EUCLEAN  a tree page (or an overflow run, or the catalog) is damaged, or a page is
 *             reached twice: reachability is not known, nothing was written; or the repaired
 *             store does not verify clean (reported through opt->log);
 *   -EINVAL, -EPROTONOSUPPORT, -EBUSY, -ENOMEM, -EIO, -ENOSPC: as store_open / commit.
 */
int store_repair_rebuild(const char *path, const struct store_options *opt,
			 struct store_repair_result *res);

#endif
