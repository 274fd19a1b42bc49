/*
 * store/dcache.c — the directory-entry cache of the key API (see dcache.h for the rule that
 * keeps it right).  A direct-mapped table under one reader-writer lock: lookups share the
 * lock, adds and invalidations take it alone; both are a hash and one slot.
 */
#include "store/dcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"

struct dc_slot {
	uint64_t parent; /* 0: empty (inode 0 is never a parent) */
	uint64_t ino;
	uint8_t len;
	char name[DCACHE_NAME_MAX];
};

struct dcache {
	pthread_rwlock_t lock;
	uint64_t seq; /* protected by lock; advanced by every invalidation */
	struct dc_slot slot[DCACHE_SLOTS];
};

static unsigned dc_index(uint64_t parent, const char *name, size_t len)
{
	return (unsigned)checksum64(name, len, parent) & (DCACHE_SLOTS - 1);
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
	const struct dc_slot *s = &dc->slot[dc_index(parent, name, len)];
	pthread_rwlock_rdlock(&dc->lock);
	bool hit = s->parent == parent && s->len == len && memcmp(s->name, name, len) == 0;
	if (hit)
		*ino = s->ino;
	pthread_rwlock_unlock(&dc->lock);
	return hit;
}

void dcache_add(struct dcache *dc, uint64_t parent, const char *name, size_t len, uint64_t ino,
		uint64_t seq)
{
	if (len > DCACHE_NAME_MAX || parent == 0)
		return;
	struct dc_slot *s = &dc->slot[dc_index(parent, name, len)];
	pthread_rwlock_wrlock(&dc->lock);
	if (dc->seq == seq) {
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
	struct dc_slot *s = &dc->slot[dc_index(parent, name, len)];
	pthread_rwlock_wrlock(&dc->lock);
	dc->seq++;
	s->parent = 0;
	pthread_rwlock_unlock(&dc->lock);
}

void dcache_clear(struct dcache *dc)
{
	pthread_rwlock_wrlock(&dc->lock);
	dc->seq++;
	for (unsigned i = 0; i < DCACHE_SLOTS; i++)
		dc->slot[i].parent = 0;
	pthread_rwlock_unlock(&dc->lock);
}
