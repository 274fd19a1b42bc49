/*
 * store/overlay.h — the write overlay: an in-memory ordered map of the mutations logged since
 * the last checkpoint, which reads consult before the B+tree ("log-first lookups").
 *
 * Keys are (tree, key bytes): `tree` is a small integer naming one of the engine's trees (the
 * engine maps it to a named store tree), so one overlay covers all of them and a checkpoint
 * applies it in one transaction.  Each entry is a value or a tombstone (a delete that hides
 * the tree's value).  The overlay remembers the highest LSN applied to it.
 *
 * Implementation: a skip list (ordered, O(log n) insert and seek, forward and backward
 * iteration; an insertion just after the previous one is O(log distance)); entries own copies
 * of their keys, and of their values unless put with overlay_put_ref, which points at memory
 * the caller keeps (the engine: the value where it lies in the log's mapping, so that a
 * commit copies no value).
 *
 * Thread safety: none inside; the engine holds its own lock (readers shared, writers
 * exclusive) around every call.  A frozen overlay (no more writers) may be read without a lock
 * by any number of threads.
 */
#ifndef KVFS_STORE_OVERLAY_H
#define KVFS_STORE_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct overlay;
struct overlay_iter;

/* A new empty overlay, or NULL on out of memory. */
struct overlay *overlay_new(void);
/* Free the overlay and everything it owns (not the values put by reference).  NULL is
 * ignored. */
void overlay_free(struct overlay *ov);

/*
 * Set (tree, key) to `val` (vlen bytes, copied), or with `tombstone` to deleted (val ignored).
 * Replaces any earlier entry for the key (freeing its value).  klen 1..STORE_MAX_KEY,
 * vlen <= STORE_MAX_VALUE.  0, -ENOMEM (the overlay is unchanged then), or -EINVAL when klen or
 * vlen is out of range or key (or val, with vlen > 0) is NULL — a caller bug, nothing changed.
 */
int overlay_put(struct overlay *ov, unsigned tree, const void *key, size_t klen,
		const void *val, size_t vlen, bool tombstone);

/*
 * overlay_put without the copy: the entry points at val, whose vlen bytes the caller keeps
 * valid and unchanged until the overlay is freed (replacing the entry does not end that: the
 * overlay does not know when the last reader of it is gone).  Nothing is added to
 * overlay_bytes for the value (it is not the overlay's memory).  Errors as overlay_put.
 */
int overlay_put_ref(struct overlay *ov, unsigned tree, const void *key, size_t klen,
		    const void *val, size_t vlen, bool tombstone);

/*
 * Look (tree, key) up.  Returns 1 with *val pointing at the value (owned by the overlay, valid
 * until the entry is replaced or the overlay freed; for a value put by reference, the
 * caller's memory, valid as long as the caller keeps it), 0 for a tombstone (*val = {NULL, 0}),
 * -ENOENT when the overlay has no entry for the key (also for klen 0 or > STORE_MAX_KEY).  An
 * empty value has a non-NULL data pointer.  val may be NULL (existence only).
 */
int overlay_get(const struct overlay *ov, unsigned tree, const void *key, size_t klen,
		struct store_val *val);

/* Bytes of memory the entries take (keys, values, node overhead, the allocator's per-chunk
 * overhead and rounding as glibc malloc does it; nodes are carved from 32 KiB chunks, counted
 * as they are handed out; nothing for values put by reference): what the engine bounds.  0 when empty; excludes the fixed overlay header and iterators. */
size_t overlay_bytes(const struct overlay *ov);
/* Entries (values and tombstones). */
size_t overlay_count(const struct overlay *ov);

/* The highest LSN recorded with overlay_set_lsn (0 for a new overlay); a set_lsn lower than
 * the current one is ignored. */
uint64_t overlay_lsn(const struct overlay *ov);
void overlay_set_lsn(struct overlay *ov, uint64_t lsn);

/*
 * Iteration over one tree's entries in key order.  An iterator is valid until the next change
 * of the overlay (then it must be re-seeked).  Positioning calls return 0 when positioned on an
 * entry of `tree`, -ENOENT when there is none (unpositioned).  A new iterator is unpositioned;
 * next and prev on an unpositioned iterator return -ENOENT.  overlay_iter_new: 0 or -ENOMEM
 * (*out = NULL).  overlay_iter_free(NULL) is ignored.  Positioning is O(log n), next/prev O(1).
 */
int overlay_iter_new(const struct overlay *ov, unsigned tree, struct overlay_iter **out);
void overlay_iter_free(struct overlay_iter *it);
int overlay_iter_first(struct overlay_iter *it);
int overlay_iter_last(struct overlay_iter *it);
/* First entry with key >= key (klen 0: the first entry). */
int overlay_iter_seek(struct overlay_iter *it, const void *key, size_t klen);
/* Last entry with key <= key. */
int overlay_iter_seek_le(struct overlay_iter *it, const void *key, size_t klen);
int overlay_iter_next(struct overlay_iter *it);
int overlay_iter_prev(struct overlay_iter *it);
/* Current entry: key, value ({NULL, 0} for a tombstone), and whether it is a tombstone.  The
 * iterator must be positioned.  Any output may be NULL.  The bytes are the overlay's, valid
 * until the entry is replaced or the overlay freed. */
void overlay_iter_get(const struct overlay_iter *it, struct store_val *key, struct store_val *val,
		      bool *tombstone);

/* Call fn for every entry of every tree in (tree, key) order (the checkpoint's walk); stops
 * at and returns fn's first non-zero result, else 0.  val is NULL (vlen 0) for a tombstone;
 * fn must not change the overlay. */
int overlay_walk(const struct overlay *ov,
		 int (*fn)(void *ctx, unsigned tree, const void *key, size_t klen, const void *val,
			   size_t vlen, bool tombstone),
		 void *ctx);

#endif
