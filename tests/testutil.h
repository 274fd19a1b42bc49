/*
 * tests/testutil.h — support shared by every Check suite in tests/ (CMake compiles
 * tests/testutil*.c into each test executable).
 *
 * What it offers:
 *   1. Seeds: read a seed from the environment for replay (tu_seed), remember the seed a
 *      randomized test is running (tu_seed_begin/tu_seed_end) so that every failure — a
 *      TU_ASSERT, a Check assertion that exits the forked child, or a fatal signal — prints
 *      "seed=N (replay with KVFS_SEED=N)" on stderr.
 *   2. A deterministic PRNG (xoshiro256**, seeded through splitmix64): same seed, same run,
 *      on every platform.
 *   3. A reference model: an in-memory ordered map of byte strings to byte strings, keys
 *      compared as the store compares them (unsigned bytes, a proper prefix first).  Keys and
 *      values are immutable, reference-counted buffers, so copying a model (a snapshot at a
 *      commit) costs one pointer per entry, not the bytes.
 *   4. Store helpers: a temporary directory, an environment that opens a store either on an
 *      in-memory io_fault machine or on POSIX files, a captured diagnostic log, comparison of
 *      a tree (full or bounded, either direction) with a model that returns a message naming
 *      the first difference, and store_verify expected clean.
 *
 * What it does not do: no test policy (operation mixes, sizes) lives here; that belongs to
 * the suites.
 *
 * Conventions: functions that can fail return 0 or a negative errno; comparison functions
 * return 0 when equal and -1 with a message (NUL-terminated, truncated to the buffer) on the
 * first difference.  Functions named *_ok fail the current Check test instead of returning an
 * error.  Nothing here is thread-safe unless its comment says so; the model's buffer
 * reference counts are atomic, so copies of one model may be used by different threads.
 *
 * The API is stable: other suites (check_fault.c, check_corrupt.c, check_concurrency.c, ...)
 * depend on it.  Add; do not change.
 */
#ifndef KVFS_TESTS_TESTUTIL_H
#define KVFS_TESTS_TESTUTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/io_fault.h"
#include "store/store.h"

/* ---- 1. Seeds ------------------------------------------------------------------------ */

/* The seed to use: the value of environment variable `env_name` (decimal, or 0x-prefixed
 * hex) when it is set and parses, else `dflt`.  env_name is typically "KVFS_SEED". */
uint64_t tu_seed(const char *env_name, uint64_t dflt);

/* True and *out set when `env_name` is set to a valid seed: a suite that loops over many
 * seeds then runs only that one. */
bool tu_seed_given(const char *env_name, uint64_t *out);

/* Declare that a randomized run with `seed` is starting; until tu_seed_end(), any failure
 * reported through tu_fail/TU_ASSERT, any exit of the process (a failed Check assertion
 * exits the forked test child) and SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGABRT print
 * "seed=N (replay with ENV=N)" on stderr.  `env_name` must be a string literal (or outlive
 * the run).  Not nested: a second begin replaces the first. */
void tu_seed_begin(const char *env_name, uint64_t seed);
/* The run ended without failure: stop reporting its seed. */
void tu_seed_end(void);

/* A test program's main(): run suite s (taking it; it is freed with the runner) with every
 * test in a forked child unless the environment sets CK_FORK (CK_FORK=no runs them in this
 * process, for a debugger), with Check's normal output.  Returns the number of tests that
 * failed. */
struct Suite;
int tu_run_suite(struct Suite *s);
/* Print "seed=N (replay with ENV=N)" for the current run to stderr now (no-op without one).
 * Async-signal-safe. */
void tu_seed_print(void);

/* Fail the current Check test: the message is "file:line: <formatted>" prefixed with the
 * current seed (if any), also printed to stderr.  Never returns. */
void tu_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* Assert `cond`; on failure fail the test with the condition text and a printf-style
 * message (which must be given; use "%s", "" for none). */
#define TU_ASSERT(cond, ...)                                                                 \
	do {                                                                                 \
		if (!(cond))                                                                 \
			tu_fail_cond(__FILE__, __LINE__, #cond, __VA_ARGS__);                \
	} while (0)
/* Assert that integer expression `got` equals `want` (both evaluated once, as long long). */
#define TU_ASSERT_EQ(got, want, ...)                                                         \
	do {                                                                                 \
		long long tu_g_ = (long long)(got), tu_w_ = (long long)(want);               \
		if (tu_g_ != tu_w_)                                                          \
			tu_fail_eq(__FILE__, __LINE__, #got, tu_g_, tu_w_, __VA_ARGS__);     \
	} while (0)

/* Implementation of TU_ASSERT/TU_ASSERT_EQ. */
void tu_fail_cond(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));
void tu_fail_eq(const char *file, int line, const char *expr, long long got, long long want,
		const char *fmt, ...) __attribute__((format(printf, 6, 7), noreturn));

/* ---- 2. PRNG ------------------------------------------------------------------------- */

/* xoshiro256** state.  Plain data: copy it to fork a stream. */
struct tu_rng {
	uint64_t s[4];
};

/* One splitmix64 step: advances *x and returns the next output.  Good for deriving seeds. */
uint64_t tu_splitmix64(uint64_t *x);
/* Seed the generator (any seed, 0 included, gives a valid state). */
void tu_rng_init(struct tu_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t tu_rng_next(struct tu_rng *r);
/* Uniform in [0, n) without modulo bias; 0 when n == 0. */
uint64_t tu_rng_below(struct tu_rng *r, uint64_t n);
/* Uniform in [lo, hi] (inclusive; lo <= hi). */
uint64_t tu_rng_range(struct tu_rng *r, uint64_t lo, uint64_t hi);
/* True with probability num/den. */
bool tu_rng_chance(struct tu_rng *r, uint64_t num, uint64_t den);
/* Fill `buf` with `len` random bytes. */
void tu_rng_bytes(struct tu_rng *r, void *buf, size_t len);

/* ---- 3. Reference model -------------------------------------------------------------- */

/* Compare two keys as the store does: memcmp over the common length, then the shorter first.
 * <0, 0, >0. */
int tu_key_cmp(const void *a, size_t alen, const void *b, size_t blen);

/* One entry.  key/val point into reference-counted immutable buffers owned by the model;
 * valid until the entry is replaced or deleted, or the model freed.  val may be NULL only
 * when vlen is 0.  Fields ending in '_' are private. */
struct tu_ent {
	const uint8_t *key;
	size_t klen;
	const uint8_t *val;
	size_t vlen;
	void *kbuf_, *vbuf_;
};

/* The model: entries sorted by key (tu_key_cmp), no duplicates.  Read ents[0..n) directly
 * to iterate (in order).  Zero-initialised ({0}) is a valid empty model. */
struct tu_model {
	struct tu_ent *ents;
	size_t n, cap_;
	uint64_t bytes; /* sum of klen + vlen over the entries */
};

void tu_model_init(struct tu_model *m);
/* Free every entry (dropping buffer references) and the array; the model is then empty and
 * may be reused. */
void tu_model_free(struct tu_model *m);
/* Insert or replace; the bytes are copied.  Aborts the test on out of memory. */
void tu_model_put(struct tu_model *m, const void *key, size_t klen, const void *val,
		  size_t vlen);
/* Delete: 0, or -ENOENT when absent. */
int tu_model_del(struct tu_model *m, const void *key, size_t klen);
/* The entry for `key`, or NULL. */
const struct tu_ent *tu_model_get(const struct tu_model *m, const void *key, size_t klen);
/* Index of the first entry with key >= `key` (m->n when none). */
size_t tu_model_lower_bound(const struct tu_model *m, const void *key, size_t klen);
/* Make `dst` (initialised or zeroed; its old contents are freed) an independent copy of
 * `src`.  Shares the buffers (cheap); later changes to either do not affect the other. */
void tu_model_copy(struct tu_model *dst, const struct tu_model *src);
/* 0 when both hold exactly the same keys and values, else -1 and a message. */
int tu_model_cmp(const struct tu_model *a, const struct tu_model *b, char *msg, size_t len);
/* Drop every entry (keeps the array). */
void tu_model_clear(struct tu_model *m);

/* Cursor bounds as the store takes them: keys k with lo <= k < hi and starting with prefix.
 * A NULL lo, a NULL or 0-length hi, and a NULL or 0-length prefix are open.  With a prefix,
 * set_prefix semantics apply (the store's set_range and set_prefix each replace the other's
 * bounds; a bounds struct describes one call: give either lo/hi or prefix, not both). */
struct tu_bounds {
	const void *lo;
	size_t lolen;
	const void *hi;
	size_t hilen;
	const void *prefix;
	size_t plen;
};

/* True when `key` is within `b` (NULL b: unbounded). */
bool tu_bounds_contain(const struct tu_bounds *b, const void *key, size_t klen);
/* The model's entries within `b` form the index range [*begin, *end). */
void tu_model_range(const struct tu_model *m, const struct tu_bounds *b, size_t *begin,
		    size_t *end);

/* ---- 4. Store helpers ---------------------------------------------------------------- */

/* Format `n` bytes for a message: printable ASCII as is, others as \xNN, at most `max`
 * input bytes then "...(N bytes)".  Returns `buf` (always NUL-terminated). */
char *tu_fmt_bytes(char *buf, size_t buflen, const void *p, size_t n, size_t max);

/* Create a fresh directory "$TMPDIR/kvfs-test-XXXXXX" (TMPDIR defaults to /tmp) and write
 * its path into `buf`.  0 or -errno. */
int tu_tmpdir(char *buf, size_t buflen);
/* Remove `path` and everything under it (like rm -rf); missing is fine.  0 or -errno. */
int tu_rmtree(const char *path);
/* Is `dir` on tmpfs or ramfs, where fdatasync costs nothing?  Group-commit ratios are not
 * asserted there: threads that never wait for a flush rarely overlap.  false on any error. */
bool tu_dir_in_memory(const char *dir);

/* Where stores live for one test: an in-memory io_fault machine, or a temp directory on the
 * POSIX environment.  `path` is the data file's path in either. */
struct tu_env {
	bool fault;            /* true: io_fault machine `m`; false: POSIX files in `dir` */
	struct io_fault *m;    /* the machine (fault only) */
	char dir[PATH_MAX];    /* the temp directory (POSIX), or "/kvfs-test" (fault) */
	char path[PATH_MAX];   /* dir + "/store" */
};

/* Set up an environment on a new io_fault machine seeded with `seed`.  Aborts the test on
 * failure. */
void tu_env_fault(struct tu_env *e, uint64_t seed);
/* Set up an environment in a new temporary directory.  Aborts the test on failure. */
void tu_env_posix(struct tu_env *e);
/* Tear down: free the machine, or remove the directory.  Stores must be closed first. */
void tu_env_fini(struct tu_env *e);
/* The io_env to put in store_options.io. */
struct io_env *tu_env_io(struct tu_env *e);

/*
 * An io_env that passes every call on to another (`in`), with two hooks for tests that need
 * a call to misbehave: before_pwritev (may change the buffers before they are written: a
 * caller racing its own write) and after_sync (runs once a sync returned: a slow disk).  Set
 * the hooks (NULL: none) after tu_wrap_init; the struct must outlive every file opened
 * through it.  Thread safe as `in` is.
 */
struct tu_wrap_env {
	struct io_env base;
	struct io_env *in;
	void (*before_pwritev)(const struct iovec *iov, int iovcnt);
	void (*after_sync)(void);
};
void tu_wrap_init(struct tu_wrap_env *w, struct io_env *in);
/* After a power cut (or at any time: pending writes are then dropped), replace the machine
 * with io_fault_reboot(m, seed) and free the old one.  Fault environments only; every store
 * on it must already be closed or abandoned (see tu_store_abandon).  Aborts on failure. */
void tu_env_reboot(struct tu_env *e, uint64_t seed);

/* Open the store at e->path with STORE_* `flags` on e's environment; diagnostics go to the
 * captured log (tu_log_*).  Returns store_open's result. */
int tu_open(struct tu_env *e, unsigned flags, struct store **out);
/* As tu_open, at another path (for several stores in one environment). */
int tu_open_path(struct tu_env *e, const char *path, unsigned flags, struct store **out);
/* tu_open that must succeed (and the store must verify clean).  Aborts the test otherwise. */
struct store *tu_open_ok(struct tu_env *e, unsigned flags);
/* store_close that must return 0. */
void tu_close_ok(struct store *st);
/* Give up a store whose machine lost power: store_close on a dead io_fault machine can only
 * fail, and that failure is expected; this calls it and ignores the result. */
void tu_store_abandon(struct store *st);

/* The captured diagnostic log: every line the store passes to tu_log_cb is kept (up to a
 * bound; older lines are dropped) and, when KVFS_TEST_VERBOSE is set, echoed to stderr.
 * Thread-safe. */
void tu_log_cb(void *ctx, const char *line);
/* Forget the captured lines. */
void tu_log_clear(void);
/* True when some captured line contains `needle`. */
bool tu_log_contains(const char *needle);
/* The captured lines joined by '\n' into `buf` (truncated); returns buf. */
char *tu_log_text(char *buf, size_t len);

/* Compare what cursor `c` yields under bounds `b` (NULL: unbounded; the bounds are applied to
 * the cursor here) walking first->next (or last->prev when `backward`) with the model's
 * entries in those bounds, key and value bytes exactly, and that the walk ends with -ENOENT.
 * 0 when equal, else -1 with a message. */
int tu_cursor_cmp(struct store_cursor *c, const struct tu_model *m, const struct tu_bounds *b,
		  bool backward, char *msg, size_t len);
/* Compare tree `t` (store_tree_count and a full forward scan, then a full backward scan) with
 * the model.  0 or -1 with a message. */
int tu_tree_cmp(struct store_tree *t, const struct tu_model *m, char *msg, size_t len);
/* Compare the tree named `name` in a new read transaction on `st` with the model.  A missing
 * tree equals an empty model.  0 or -1 with a message. */
int tu_store_cmp(struct store *st, const char *name, const struct tu_model *m, char *msg,
		 size_t len);
/* Read the whole tree `name` (in a new read transaction) into `out` (freed first).  A
 * missing tree reads as empty.  0 or a negative errno from the store. */
int tu_store_load(struct store *st, const char *name, struct tu_model *out);

/* Run store_verify; 0 when clean, else its result with the reported lines in `msg`. */
int tu_verify(struct store *st, char *msg, size_t len);
/* store_verify must be clean; otherwise the test fails with the reported lines. */
void tu_verify_ok(struct store *st);

#endif
