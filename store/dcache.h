/*
 * store/dcache.h — the directory-entry cache of the key API: (parent inode, name) -> inode of
 * a directory, so that resolving the key "a/b/c" does not look up the dirents "a" and "a/b" in
 * the engine each time (namespace.c walk()).  Only directories are cached; a file's dirent is
 * read from the engine as before.
 *
 * Shape: a table of DCACHE_SLOTS slots in sets of 4, the set chosen by a hash of (parent,
 * name); a new entry takes a free slot of its set, else replaces the set's slots in turn
 * (round robin).  Names longer than
 * DCACHE_NAME_MAX bytes are not cached.  Memory: about 72 bytes per slot (288 KiB in all,
 * touched as used).
 *
 * Correctness rule (the cache never answers with a dirent that a returned change removed):
 *   - A namespace change that deletes or replaces a dirent calls dcache_invalidate for it
 *     AFTER the change is committed to the engine (and before the call that made the change
 *     returns).  Invalidating clears the slot and advances the cache's sequence number.
 *   - A reader that missed takes dcache_seq() BEFORE it reads the dirent from the engine, and
 *     passes it to dcache_add, which adds nothing when the sequence number moved meanwhile.
 *   So an entry read before a change committed either went in before the change's
 *   invalidation (which then clears it) or is refused.
 *
 * Thread safety: every call may be made from any thread at any time (a reader-writer lock
 * inside; lookups share it).
 */
#ifndef KVFS_STORE_DCACHE_H
#define KVFS_STORE_DCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DCACHE_SLOTS 4096u   /* a power of two */
#define DCACHE_NAME_MAX 54u  /* bytes; longer names are never cached */

struct dcache;

/* A new empty cache, or NULL on out of memory.  Free with dcache_free (NULL is ignored). */
struct dcache *dcache_new(void);
void dcache_free(struct dcache *dc);

/* The sequence number to pass to dcache_add: take it before reading the dirent. */
uint64_t dcache_seq(struct dcache *dc);

/* The cached directory inode of (parent, name[0..len)) into *ino: true when cached. */
bool dcache_get(struct dcache *dc, uint64_t parent, const char *name, size_t len,
		uint64_t *ino);

/* Remember that (parent, name) is the directory `ino`, read from the engine after `seq` was
 * taken; ignored when an invalidation happened since, or when len > DCACHE_NAME_MAX. */
void dcache_add(struct dcache *dc, uint64_t parent, const char *name, size_t len, uint64_t ino,
		uint64_t seq);

/* (parent, name)'s dirent was deleted or replaced, and the change is committed. */
void dcache_invalidate(struct dcache *dc, uint64_t parent, const char *name, size_t len);

/* Forget everything (for example after a change whose dirents are not listed). */
void dcache_clear(struct dcache *dc);

#endif
