/*
 * store/kvfs_env.h — kvfs_open with the engine's test seams: an I/O environment (store/io.h:
 * the fault-injecting one of store/io_fault.h cuts power and fails calls) and engine tuning
 * that the public options do not offer.  For tests and fuzzers; not installed, not part of
 * the library's stable API.
 */
#ifndef KVFS_STORE_KVFS_ENV_H
#define KVFS_STORE_KVFS_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "store/engine.h"
#include "store/io.h"
#include "store/kvfs.h"

struct kvfs_engine_tuning {
	uint64_t log_ring_bytes;   /* ring of a new log (nonzero: never resized); 0: sized to
				      the data file (store/engine.h) */
	bool no_checkpoint_thread; /* checkpoints only at close, and when a change finds no room
				      left in the log (deterministic tests); the overlay's
				      memory_limit is not enforced then */
	uint64_t ckpt_piece_pages; /* a checkpoint commits every this many pages copied (engine.c
				      "Pieces"); 0: the engine's default */
	uint64_t purge_step_blocks; /* data blocks a change deletes at most: a bigger purge or
				       truncation goes in steps (namespace.c "Bounded changes");
				       0: PURGE_STEP_BLOCKS (16384).  Small values make tests
				       cross many steps with small files */
};

/*
 * kvfs_open (kvfs.h) on the I/O environment `io` (NULL: POSIX) with `tune` (NULL: defaults).
 * Same returns, ownership and thread safety as kvfs_open; `io` must outlive the kvfs.
 */
int kvfs_open_env(const char *path, const struct kvfs_options *opt, struct io_env *io,
		  const struct kvfs_engine_tuning *tune, struct kvfs **out);

/* The engine's counters under `fs` (store/engine.h engine_stat), for tests that count work
 * rather than time it.  0 or engine_stat's error.  Any thread. */
int kvfs_env_engine_stat(struct kvfs *fs, struct engine_stat *out);

#endif
