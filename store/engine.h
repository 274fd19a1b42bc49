/*
 * store/engine.h — the engine: the write-ahead log in front of the B+tree store.
 *
 * A mutation batch (puts and deletes over the engine's trees) is appended to the log as one
 * record and applied to the in-memory overlay, atomically with respect to readers; it returns
 * once the record is written (it survives a crash of the process) and is durable after
 * engine_sync() covers its LSN (group commit: concurrent syncs share one fdatasync).  Reads
 * consult the active overlay, then the frozen one, then a snapshot of the B+tree.  A background
 * checkpoint thread freezes the overlay (by size, log use, time, or on request), applies it to
 * the B+tree in one durable copy-on-write commit that records the overlay's LSN in the meta
 * page, then releases that much of the log.  Open replays the log after the meta page's LSN.
 *
 * Files: STORE (the data file, store.h) and STORE-wal (the log, wal/log.h).
 *
 * Trees: ENGINE_TREES small integers, each a named tree of the store ("t0", "t1", ...); the
 * file namespace (namespace.c) gives them meaning.  Keys 1..STORE_MAX_KEY bytes, values up to
 * ENGINE_MAX_VALUE bytes.
 *
 * Errors: 0 or -errno as store.h; after a failed log write or sync, or a failed checkpoint
 * commit, the engine is failed: every later mutation and sync returns -EIO until reopened.
 *
 * Thread safety: every call may be made from any thread concurrently, except open and close.
 */
#ifndef KVFS_STORE_ENGINE_H
#define KVFS_STORE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/io.h"
#include "store/store.h"

#define ENGINE_TREES 8
#define ENGINE_MAX_VALUE (1u << 20)
#define ENGINE_DEFAULT_CKPT_BYTES (16u << 20) /* ckpt_overlay_bytes when 0 */
#define ENGINE_DEFAULT_PIECE_PAGES 256u        /* ckpt_piece_pages when 0: 1 MiB */
/* The log record type (wal/log.h) of a mutation batch; its payload: engine_record_decode.
 * (man/kvfs.5 "LOG" leaves payloads to the engine and does not yet list this layout.) */
#define ENGINE_REC_BATCH 1u

struct engine;

struct engine_options {
	unsigned flags;           /* STORE_CREATE | STORE_RDONLY */
	mode_t mode;              /* for created files; 0: 0644 */
	struct io_env *io;        /* NULL: POSIX */
	bool sync_every_write;    /* every mutation waits until durable */
	uint64_t ckpt_overlay_bytes; /* checkpoint when the overlay holds this much; 0: 16 MiB */
	uint64_t ckpt_interval_ms;   /* checkpoint at least this often when dirty; 0: 30 s */
	uint64_t mem_limit;       /* overlay bytes (active + frozen) at which writers wait;
				     0: 4 x ckpt_overlay_bytes */
	uint64_t log_ring_bytes;  /* ring of a new log, never resized; 0: sized to the data file
				     (an eighth, from max(2 x ckpt_overlay_bytes, 36 MiB) to
				     4 x ckpt_overlay_bytes; engine.c ring_target), resized
				     while the log is empty at open, and shrunk to WAL_MIN_RING
				     (at rest) at clean close */
	uint64_t ckpt_piece_pages; /* a checkpoint commits in pieces of about this many pages
				      copied or freed (store_txn_pages); 0:
				      ENGINE_DEFAULT_PIECE_PAGES (see engine.c) */
	bool no_checkpoint_thread; /* tests, kvfs-check: checkpoints only through
				      engine_checkpoint(), at close, and when a commit finds no
				      room left in the log */
	bool no_log_map;          /* tests: the log not mapped, values copied into the overlay
				     (the path of a log whose mapping failed; engine.c "Values
				     stay in the log") */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/*
 * Open the store at `path` and its log `path`-wal (created with STORE_CREATE when missing),
 * replay the log after the data file's LSN, and start the checkpoint thread.  When nothing was
 * replayed and the ring is more than 25 % off the size the data file calls for, the log is
 * resized first (wal_resize; a full disk keeps the old ring).
 * Errors: those of store_open and wal_open; -EUCLEAN for a log record that validates but does
 * not decode (corruption, not a torn tail); -EIO when a resize failed (the log is failed).
 */
int engine_open(const char *path, const struct engine_options *opt, struct engine **out);

/* Checkpoint everything, reset the log (or resize it to the data file: engine_open), close.
 * Always frees `e`; 0 or the -errno of the final checkpoint or sync (the data then stands as
 * the log and the last checkpoint left it: nothing acknowledged is lost). */
int engine_close(struct engine *e);

/* A batch of mutations applied atomically. */
struct engine_batch;
struct engine_batch *engine_batch_new(void);
void engine_batch_free(struct engine_batch *b);
/* Add a put or delete; bytes are copied.  0, -EINVAL (tree, key or value size), -ENOMEM. */
int engine_batch_put(struct engine_batch *b, unsigned tree, const void *key, size_t klen,
		     const void *val, size_t vlen);
int engine_batch_del(struct engine_batch *b, unsigned tree, const void *key, size_t klen);
/*
 * engine_batch_put without copying the value (when it is 1 KiB or more; a shorter one is
 * copied): its vlen bytes are read where they lie when engine_commit logs the batch, so they
 * must stay valid and unchanged until that engine_commit returns (or the batch is cleared or
 * freed).  engine_commit writes them to the log in the same record as the rest (one gathered
 * write), and the overlay then reads them from the log, never from val.  Errors as
 * engine_batch_put.
 */
int engine_batch_put_ref(struct engine_batch *b, unsigned tree, const void *key, size_t klen,
			 const void *val, size_t vlen);
/* Empty the batch for reuse. */
void engine_batch_clear(struct engine_batch *b);
/*
 * Make room in b for `bytes` more bytes of encoded ops (per op: 8 + klen + vlen) without a
 * reallocation while they are added.  The buffer grows to exactly that (at least twofold on
 * a batch that holds ops already, so that reserving op by op stays linear); 2 MiB or more of
 * it is advised onto huge pages (engine.c "Huge pages").  The batch keeps its buffer across
 * commits and clears ("Values stay in the log"), so a batch reused for big commits reserves
 * once.  0, or -ENOMEM (b unchanged).
 */
int engine_batch_reserve(struct engine_batch *b, size_t bytes);

/* A heap buffer of `size` bytes aligned on ENGINE_HUGE_PAGE and advised to be backed by
 * transparent huge pages (engine.c "Huge pages"), for big buffers (a kvfs_batch's chunks), so
 * that they fault in 2 MiB at a time (only a hint: nothing more when THP is off).  Freed with
 * free(); realloc keeps neither the alignment nor the advice.  NULL on out of memory.  Thread
 * safe. */
void *engine_alloc_huge(size_t size);
#define ENGINE_HUGE_PAGE (2u << 20) /* bytes */

/*
 * Log and apply the batch (an empty batch is a no-op).  Deleting a missing key is not an
 * error.  Returns 0 and *lsn (may be NULL): the LSN to pass to engine_sync for this batch.
 * Waits while the overlay is over mem_limit and a checkpoint is running (backpressure).
 *   -EIO (failed), -EROFS, -EFBIG (batch larger than half the log), -ENOMEM;
 *   -ENOSPC while a checkpoint cannot get disk space (engine.c INV-E3): then only a batch with
 *   a delete and at most 4 KiB of values is logged (so that files can be removed), nothing
 *   else is changed; the engine is not failed and takes writes again once a checkpoint
 *   succeeds.
 * The batch is left as it was (committed or not; after an error once it was logged the
 * engine is failed): clear it before adding the next batch's ops.  The overlay does not keep
 * pointers into it (its values are read from the log: engine.c "Values stay in the log").
 */
int engine_commit(struct engine *e, struct engine_batch *b, uint64_t *lsn);

/* Wait until everything up to `lsn` (0: everything committed so far) is durable.  0, -EIO. */
int engine_sync(struct engine *e, uint64_t lsn);

/*
 * Read a value: copies min(cap, length) bytes into buf and sets *vlen to its full length.
 * 0, -ENOENT, -EINVAL, -EUCLEAN, -ENOMEM.
 */
int engine_get(struct engine *e, unsigned tree, const void *key, size_t klen, void *buf,
	       size_t cap, size_t *vlen);

/*
 * Several point reads of one committed state.  engine_read calls fn(rd, ctx) once and returns
 * what fn returns; inside fn, engine_read_get(rd, ...) reads as engine_get does (same
 * arguments, returns and copying), and every such read sees the same committed state: no
 * commit is applied between them (so a value read first, say a name's inode number, and one
 * read after it with what the first said, the inode, belong together).  Commits (engine_commit)
 * and a checkpoint's swap of overlays wait while fn runs, so fn must be short and must not
 * call engine_commit, engine_checkpoint, engine_close, engine_read or engine_get (a nested
 * read lock may deadlock behind a waiting writer); rd is valid only inside fn, on its thread.
 * Lookups of one tree inside fn go through a finger (store_get_near): keys in increasing
 * order that share a B+tree leaf, as a file's consecutive blocks do, cost one descent per leaf.
 * engine_read_get: 0, -ENOENT, -EINVAL, -EUCLEAN, -ENOMEM.  Any thread; any number at once.
 */
struct engine_read;
int engine_read(struct engine *e, int (*fn)(struct engine_read *rd, void *ctx), void *ctx);
int engine_read_get(struct engine_read *rd, unsigned tree, const void *key, size_t klen,
		    void *buf, size_t cap, size_t *vlen);

/*
 * Ordered iteration of one tree over keys in [lo, hi) (NULL/0: open), merging the overlays and
 * the B+tree.  Each step sees the latest committed state after the previous key (not one
 * snapshot for the whole walk): keys added behind the iterator are not seen, keys added ahead
 * are.  (Steps are served from runs read ahead, up to 256 entries or about 64 KiB, which a
 * commit since their reading invalidates; no transaction or lock is held between steps.)
 * engine_iter_next copies the next key and value (up to the caps) and returns 0, or -ENOENT at
 * the end, -EUCLEAN, -ENOMEM (an error met after some entries is returned once they are
 * out); *klen and *vlen receive the full lengths.  One iterator belongs to one thread at a
 * time; any number may run at once.
 */
struct engine_iter;
int engine_iter_new(struct engine *e, unsigned tree, const void *lo, size_t lolen,
		    const void *hi, size_t hilen, struct engine_iter **out);
int engine_iter_next(struct engine_iter *it, void *key, size_t kcap, size_t *klen, void *val,
		     size_t vcap, size_t *vlen);
void engine_iter_free(struct engine_iter *it);

/* Run a checkpoint now and wait for it.  0, -EIO, -ENOSPC, -EUCLEAN. */
int engine_checkpoint(struct engine *e);

struct engine_stat {
	struct store_stat store;
	uint64_t overlay_bytes;   /* active + frozen */
	uint64_t overlay_entries;
	uint64_t log_bytes;       /* unreleased bytes in the log */
	uint64_t log_ring_bytes;
	uint64_t n_checkpoints;
	uint64_t n_fdatasync;     /* of the log */
	uint64_t n_sync_calls;    /* engine_sync calls */
	uint64_t n_commits;       /* engine_commit calls that logged a record */
	uint64_t n_backpressure;  /* commits that waited for a checkpoint */
	uint64_t n_iter_tombstones; /* deletions (overlay tombstones) iterators stepped over
				       without returning them: work a scan pays for deletes
				       not yet checkpointed */
	bool short_of_space;      /* a checkpoint failed with -ENOSPC and none succeeded
				     since: commits that add data get -ENOSPC (engine.c INV-E3) */
};
int engine_stat(struct engine *e, struct engine_stat *out);

/* The store underneath (for verification in tests and kvfs-check). */
struct store *engine_store(struct engine *e);

/*
 * The ring size engine_open gives a log it creates with these options (opt NULL: the
 * defaults): opt->log_ring_bytes, or the smallest automatic ring (2 x ckpt_overlay_bytes and
 * at least 36 MiB; it grows with the data file at later opens and closes).
 * (wal_open rounds it as log.h says.)  kvfs-check creates a missing log with it.  Never fails.
 */
uint64_t engine_log_ring_bytes(const struct engine_options *opt);

/*
 * Decode the payload of a log record of type ENGINE_REC_BATCH — the one decoder, used by
 * engine_open's replay too: u32 op count, then per op u8 tree, u8 op (1 put, 2 delete), u16
 * klen, u32 vlen, key, value (little-endian).  The whole payload is checked first: counts,
 * lengths against what remains, tree numbers below ENGINE_TREES, key sizes
 * 1..STORE_MAX_KEY, values up to ENGINE_MAX_VALUE and none on a delete, no trailing bytes;
 * only then is op(ctx, tree, del, key, klen, val, vlen) called for each op in order (so op
 * sees all of a record or none of it).  key/val point into `payload` (val is empty for a
 * delete).  Returns 0, -EUCLEAN (does not decode: a record whose checksum held but whose
 * bytes are not a sound batch), or op's negative return, which stops the calls.
 * Pure: no state, any thread.
 */
int engine_record_decode(const void *payload, size_t len,
			 int (*op)(void *ctx, unsigned tree, bool del, const void *key,
				   size_t klen, const void *val, size_t vlen),
			 void *ctx);

#endif
