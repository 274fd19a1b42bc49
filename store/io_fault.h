/*
 * store/io_fault.h — a fault-injecting, in-memory io_env for tests (libkvfs_testio).
 *
 * Files live in memory, keyed by path, and survive io_file close/reopen within one io_fault
 * (a "machine").  A path is an exact key: no directories, no normalisation, no permissions
 * (open's mode is ignored).  Each file has two images:
 *
 *   - the current image: what pread and the mapping see (the page cache), updated by every
 *     pwrite/truncate/allocate at once.  It lives in an address range of IO_FAULT_CAPACITY
 *     bytes reserved when the file is created, which never moves: map() returns a pointer into
 *     it, valid until the io_file is closed (-ENOMEM when `reserve` exceeds the capacity), and
 *     pwrite/truncate/allocate past the capacity return -EFBIG.  Where the system refuses to
 *     reserve IO_FAULT_CAPACITY (strict overcommit), the capacity is halved until it can, down
 *     to 1 GiB;
 *   - the durable image: what survives a power cut, updated only by sync() (fdatasync), which
 *     applies the file's pending operations (writes, truncates, allocates) in order.  A sync
 *     makes durable only its own file's operations, whichever io_file of the file made them.
 *
 * The namespace has no pending state: creating a file (open with IO_OPEN_CREATE) and unlink
 * are durable at once.  An unlinked file stays usable through its open io_files, as in POSIX,
 * and is freed at the last close.  Locks follow flock(2) between the io_files of one machine:
 * IO_LOCK_EXCL conflicts with any lock held through another io_file of the same file,
 * IO_LOCK_SHARED with an exclusive one (-EBUSY); close releases it.  A lock can be converted,
 * and as with flock(2) on Linux a conversion is not atomic: one that fails with -EBUSY leaves
 * the io_file holding no lock.
 *
 * Power cut (io_fault_power_cut, or automatically at the Kth sync with io_fault_cut_at_sync):
 * every pending operation of every file since its last sync is, per the cut mode, kept,
 * dropped, or (for writes) torn — each 512-byte sector of the write independently kept or
 * dropped, sectors being aligned to file offsets (a write at offset 100 of 1000 bytes touches
 * the sectors [100,512), [512,1024) and [1024,1100)) — using a PRNG seeded by io_fault_new's
 * seed, so a run is reproducible: same seed, same operations, same images.  In IO_CUT_RANDOM
 * a write is kept, dropped or torn with probability 1/3 each, a truncate or allocate kept or
 * dropped with 1/2.  After the cut the machine is dead: every call on every file (and open,
 * unlink) returns -EIO (the process "died"), close and unmap still work, pointers from map()
 * stay readable and unchanged, and io_fault_reboot() returns a new machine whose files are the
 * post-cut images.
 *
 * Error injection (io_fault_fail_at): the Nth counted call (pwrite, sync, truncate, allocate;
 * 1-based, counted from io_fault_new or the last io_fault_fail_at) fails once with -EIO,
 * -ENOSPC, or — for pwrite — a short write (half the bytes written, the rest then fails with
 * -ENOSPC as a real disk-full would).  Calls that are not of a counted kind are not numbered.
 * A counted call is numbered as soon as it is made on a live machine, whether or not it then
 * fails; argument errors (-EBADF on a read-only file, -EFBIG past the capacity, -EINVAL) are
 * reported before an injected failure.  An injected failure changes nothing: a failed sync
 * leaves the pending operations pending.  Calls on a dead machine are not numbered.  A sync
 * counts in both io_fault_calls and io_fault_syncs; when it is the sync chosen by
 * io_fault_cut_at_sync, the cut wins and an armed failure on the same call does not fire.
 *
 * Space (io_fault_set_space_limit): the machine's disk holds at most `limit` bytes, counted as
 * the sum of its files' current sizes (holes included; unlinked files still open included).
 * A pwrite that would grow that sum past the limit writes the prefix that fits and returns
 * -ENOSPC (as a real write that fills the disk, then fails); an allocate that would changes
 * nothing and returns -ENOSPC; truncate is never refused (shrinking frees space; growing makes
 * a hole).  Writes inside a file's size never need space.  The limit is checked after
 * argument errors and injected failures, and is not carried over by io_fault_reboot or
 * io_fault_cut_copy (set it again on the new machine).
 *
 * Cut copies (io_fault_cut_copy): the images that a power cut in a given mode would leave if
 * it fell now, as a new live machine, leaving the source machine (images, pending operations,
 * PRNG) untouched: a test can take one at each sync point of a single run (from a sync hook,
 * io_fault_set_sync_hook) rather than replaying the run up to each sync point.  The copy has
 * its own PRNG seeded by `seed`, so with the same seed and the same pending operations it is
 * the same as io_fault_power_cut followed by io_fault_reboot on a machine seeded that way.
 *
 * Thread safety: each machine has a mutex that every file method and every control call
 * takes, so control calls may be made while other threads use the machine's files; file
 * methods follow store/io.h's rules.  io_fault_free must not race with anything.
 */
#ifndef KVFS_STORE_IO_FAULT_H
#define KVFS_STORE_IO_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/io.h"

struct io_fault;

/* Address space reserved for each file's current image (see above): the largest size a file
 * can reach and the largest `reserve` map() accepts. */
#define IO_FAULT_CAPACITY ((size_t)64 << 30)

enum io_fault_kind {
	IO_FAULT_EIO = 1,    /* the call returns -EIO, nothing is written */
	IO_FAULT_ENOSPC = 2, /* the call returns -ENOSPC, nothing is written */
	IO_FAULT_SHORT = 3,  /* pwrite: writes half (rounded down), then reports -ENOSPC;
				other calls: as IO_FAULT_EIO */
};

enum io_fault_cut_mode {
	IO_CUT_RANDOM = 0,   /* each pending op: kept, dropped, or torn (writes), at random */
	IO_CUT_KEEP_ALL = 1, /* every pending op reaches the disk */
	IO_CUT_DROP_ALL = 2, /* no pending op reaches the disk */
};

/* A new empty machine.  `seed` drives every random choice.  NULL on out of memory. */
struct io_fault *io_fault_new(uint64_t seed);
/* Free the machine and every file image.  Files still open must have been closed (asserted;
 * without asserts their io_files are freed too).  NULL is ignored. */
void io_fault_free(struct io_fault *m);
/* The io_env to pass to the store; valid until io_fault_free. */
struct io_env *io_fault_env(struct io_fault *m);

/* Fail the `n`th counted call from now (n >= 1) with `kind`; n = 0 disarms.  Resets the call
 * counter. */
void io_fault_fail_at(struct io_fault *m, uint64_t n, enum io_fault_kind kind);
/* Counted calls (pwrite, sync, truncate, allocate) since the last reset. */
uint64_t io_fault_calls(const struct io_fault *m);
/* True once the armed failure has fired: the Nth counted call was made on a live machine (if
 * it had an argument error it returned that instead; the failure is spent either way). */
bool io_fault_fired(const struct io_fault *m);

/* Cut power at the `k`th sync call from now (k >= 1; 0 disarms); that sync does not happen
 * and returns -EIO.  Resets the sync counter. */
void io_fault_cut_at_sync(struct io_fault *m, uint64_t k);
/* Sync calls since the last reset. */
uint64_t io_fault_syncs(const struct io_fault *m);
/* How pending operations fare at a cut (default IO_CUT_RANDOM). */
void io_fault_set_cut_mode(struct io_fault *m, enum io_fault_cut_mode mode);
/* Cut power now. */
void io_fault_power_cut(struct io_fault *m);
/* True after a cut: every file call returns -EIO. */
bool io_fault_dead(const struct io_fault *m);
/* A new live machine holding the durable images of `m`'s files (after a cut, or as of now when
 * there was none: then pending operations are dropped as if power was cut with DROP_ALL).
 * `m` is untouched and must still be freed.  NULL on out of memory. */
struct io_fault *io_fault_reboot(const struct io_fault *m, uint64_t seed);

/* Called at each sync on a live machine, before the sync is counted or does anything, without
 * the machine's lock (it may call the control functions; it must not call the file methods of
 * `m`); `path` is the synced file's.  Other threads may use the machine meanwhile. */
typedef void (*io_fault_sync_hook_fn)(void *ctx, struct io_fault *m, const char *path);
/* Install (fn NULL: remove) the sync hook.  Not carried over by reboot or cut copies. */
void io_fault_set_sync_hook(struct io_fault *m, io_fault_sync_hook_fn fn, void *ctx);
/* A new live machine holding the images that a power cut in `mode` would leave if it fell
 * now, each random choice drawn from a PRNG seeded with `seed`; `m` is untouched (see above).
 * *sig (may be NULL) receives a signature of the choices made: two copies of one state with
 * the same signature hold the same images.  The orphans are not copied.  NULL on out of
 * memory. */
struct io_fault *io_fault_cut_copy(struct io_fault *m, enum io_fault_cut_mode mode,
				   uint64_t seed, uint64_t *sig);

/* Limit the machine's disk to `bytes` (0: no limit; see "Space" above).  Takes effect for
 * later calls. */
void io_fault_set_space_limit(struct io_fault *m, uint64_t bytes);
/* The sum of the current sizes of the machine's files, in bytes. */
uint64_t io_fault_space_used(const struct io_fault *m);

/* Test access to a file's bytes, bypassing counting and failures: read or overwrite both
 * images at once (overwriting may extend the file).  On a live machine peek reads the current
 * image, and poke first makes the file's pending operations durable (as an uncounted sync
 * would) so that no later sync replays an older write over the poked bytes.  On a dead machine
 * both see the durable image only (the post-cut state that io_fault_reboot will start from).
 * 0, -ENOENT, -ERANGE (peek past the end, poke past the capacity), or -ENOMEM. */
int io_fault_peek(struct io_fault *m, const char *path, uint64_t off, void *buf, size_t len);
int io_fault_poke(struct io_fault *m, const char *path, uint64_t off, const void *buf,
		  size_t len);
/* Current size of a file's image in bytes (on a dead machine: of its durable image), or
 * -ENOENT. */
int64_t io_fault_file_size(struct io_fault *m, const char *path);

#endif
