/*
 * store/dcache.c — the directory-entry cache of the key API (see dcache.h for the rule that
 * keeps it right).  A set-associative table under one reader-writer lock: lookups share the
 * lock, adds and invalidations take it alone; each is a hash and one set of DCACHE_WAYS slots.
 *
 * Why not direct-mapped (as before): kvfs-bench's 256 directories in 1,024 single slots
 * collided for ~1 lookup in 9 (H9, issue 3: ~140 instructions per readrandom get went to
 * dirent reads the cache missed); in sets of 4 the same table keeps all of them.
 */
#include "store/dcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"

#define DCACHE_WAYS 4u
#define DCACHE_SETS (DCACHE_SLOTS / DCACHE_WAYS)
_Static_assert(DCACHE_SETS * DCACHE_WAYS == DCACHE_SLOTS, "whole sets");

struct dc_slot {
	uint64_t parent; /* 0: empty (inode 0 is never a parent) */
	uint64_t ino;
	uint8_t len;
	char name[DCACHE_NAME_MAX];
};

struct dcache {
	pthread_rwlock_t lock;
	uint64_t seq; /* protected by lock; advanced by every invalidation */
	struct dc_slot slot[DCACHE_SETS][DCACHE_WAYS];
	uint8_t next[DCACHE_SETS]; /* protected by lock: the way the next add of a full set takes */
};

static unsigned dc_set(uint64_t parent, const char *name, size_t len)
{
	return (unsigned)checksum64(name, len, parent) & (DCACHE_SETS - 1);
}

static bool dc_match(const struct dc_slot *s, uint64_t parent, const char *name, size_t len)
{
	return s->parent == parent && s->len == len && memcmp(s->name, name, len) == 0;
}

/* The slot of (parent, name) in its set, or NULL; lock held. */
static struct dc_slot *dc_find(struct dcache *dc, unsigned set, uint64_t parent,
			       const char *name, size_t len)
{
	for (unsigned w = 0; w < DCACHE_WAYS; w++)
		if (dc_match(&dc->slot[set][w], parent, name, len))
			return &dc->slot[set][w];
	return NULL;
}

struct dcache *dcache_new(void)
{
	struct dcache *dc = calloc(1, sizeof(*dc));
	if (dc)
		pthread_rwlock_init(&dc->lock, NULL);
	return dc;
}

void dcache_free(struct dcache *dc)
{
	if (!dc)
		return;
	pthread_rwlock_destroy(&dc->lock);
	free(dc);
}

uint64_t dcache_seq(struct dcache *dc)
{
	pthread_rwlock_rdlock(&dc->lock);
	uint64_t s = dc->seq;
	pthread_rwlock_unlock(&dc->lock);
	return s;
}

bool dcache_get(struct dcache *dc, uint64_t parent, const char *name, size_t len,
		uint64_t *ino)
{
	if (len > DCACHE_NAME_MAX || parent == 0)
		return false;
	unsigned set = dc_set(parent, name, len);
	pthread_rwlock_rdlock(&dc->lock);
	const struct dc_slot *s = dc_find(dc, set, parent, name, len);
	if (s)
		*ino = s->ino;
	pthread_rwlock_unlock(&dc->lock);
	return s != NULL;
}

void dcache_add(struct dcache *dc, uint64_t parent, const char *name, size_t len, uint64_t ino,
		uint64_t seq)
{
	if (len > DCACHE_NAME_MAX || parent == 0)
		return;
	unsigned set = dc_set(parent, name, len);
	pthread_rwlock_wrlock(&dc->lock);
	if (dc->seq == seq) {
		/* the entry itself (added meanwhile by another reader), else a free way, else the
		 * ways in turn */
		struct dc_slot *s = dc_find(dc, set, parent, name, len);
		for (unsigned w = 0; !s && w < DCACHE_WAYS; w++)
			if (dc->slot[set][w].parent == 0)
				s = &dc->slot[set][w];
		if (!s) {
			s = &dc->slot[set][dc->next[set]];
			dc->next[set] = (uint8_t)((dc->next[set] + 1) % DCACHE_WAYS);
		}
		s->parent = parent;
		s->ino = ino;
		s->len = (uint8_t)len;
		memcpy(s->name, name, len);
	}
	pthread_rwlock_unlock(&dc->lock);
}

void dcache_invalidate(struct dcache *dc, uint64_t parent, const char *name, size_t len)
{
	if (len > DCACHE_NAME_MAX || parent == 0)
		return; /* never added */
	unsigned set = dc_set(parent, name, len);
	pthread_rwlock_wrlock(&dc->lock);
	dc->seq++;
	struct dc_slot *s = dc_find(dc, set, parent, name, len);
	if (s)
		s->parent = 0;
	pthread_rwlock_unlock(&dc->lock);
}

void dcache_clear(struct dcache *dc)
{
	pthread_rwlock_wrlock(&dc->lock);
	dc->seq++;
	for (unsigned i = 0; i < DCACHE_SETS; i++)
		for (unsigned w = 0; w < DCACHE_WAYS; w++)
			dc->slot[i][w].parent = 0;
	pthread_rwlock_unlock(&dc->lock);
}
