/*
 * tests/fuzz/seeds.h — the fuzzers' seed corpora, made through the library (tests/fuzz/seeds.c).
 */
#ifndef KVFS_TESTS_FUZZ_SEEDS_H
#define KVFS_TESTS_FUZZ_SEEDS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Make every seed and call emit(ctx, harness, name, buf, len) for each: harness is "store",
 * "wal", "keys" or "check", name a short unique word within the harness, buf[len] the input in
 * that harness's layout (valid only during the call).  emit returning nonzero stops and is
 * returned.  0, emit's return, or -errno when the library failed to make a seed store.
 */
int fuzz_seeds(int (*emit)(void *ctx, const char *harness, const char *name,
			   const uint8_t *buf, size_t len),
	       void *ctx);

#endif
