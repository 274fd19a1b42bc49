/*
 * store/checksum.h — the one checksum of the data file: XXH3-64 from Debian's libxxhash.
 * Seeds bind a checksum to its place (a page number or meta slot), so a valid page copied to
 * the wrong place fails.  See man/kvfs.5 "CHECKSUMS".
 */
#ifndef KVFS_STORE_CHECKSUM_H
#define KVFS_STORE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t checksum64(const void *p, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, len, seed);
}

#endif
