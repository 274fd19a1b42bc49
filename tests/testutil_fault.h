/*
 * tests/testutil_fault.h — helpers shared by the fault, corrupt and concurrency suites
 * (check_fault.c, check_corrupt.c, check_concurrency.c), on top of tests/testutil.h.
 *
 * What it offers:
 *   1. Whole-store states: the contents of a fixed list of named trees (which exist, and a
 *      reference model of each), loaded from one read snapshot and compared, so a test can
 *      say "the store now holds exactly the state before or the state after the operation".
 *   2. Error classification: "a negative errno" as a predicate, and errno names for messages.
 *   3. Log matching: did a captured diagnostic line name page N ("page 812", not "page 8120").
 *   4. io_fault machines: copy a prepared machine (its durable images), read a file's whole
 *      current image, compare it with an earlier one.
 *   5. Deterministic value bytes derived from a tag, checkable without a model.
 *
 * What it does not do: no test policy; nothing here is thread-safe unless stated.
 * Conventions as in testutil.h: 0 or a negative errno; comparisons return 0 or -1 with a
 * message; *_ok functions fail the current Check test instead of returning an error.
 */
#ifndef KVFS_TESTS_TESTUTIL_FAULT_H
#define KVFS_TESTS_TESTUTIL_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/io_fault.h"
#include "store/store.h"
#include "tests/testutil.h"

/* ---- 1. Whole-store states ------------------------------------------------------------ */

#define TF_MAX_TREES 8

/* The contents of trees names[0..n) (string literals or otherwise outliving the state):
 * whether each exists, and its entries. */
struct tf_state {
	size_t n;
	const char *names[TF_MAX_TREES];
	bool present[TF_MAX_TREES];
	struct tu_model m[TF_MAX_TREES];
};

/* An empty state over `names` (every tree absent). */
void tf_state_init(struct tf_state *s, const char *const *names, size_t n);
void tf_state_free(struct tf_state *s);
/* dst (initialised or zeroed) becomes an independent copy of src. */
void tf_state_copy(struct tf_state *dst, const struct tf_state *src);
/* Index of tree `name` in the state; aborts the test when it is not one of its names. */
size_t tf_state_tree(const struct tf_state *s, const char *name);
/* Record a put / delete in the model (the tree becomes present on put). */
void tf_state_put(struct tf_state *s, const char *tree, const void *key, size_t klen,
		  const void *val, size_t vlen);
void tf_state_del(struct tf_state *s, const char *tree, const void *key, size_t klen);
/* Load s's trees from one read snapshot of `st` (the names are kept, the contents
 * replaced).  Also checks store_tree_count against the scan.  0 or the store's -errno
 * (-EPROTO when the count disagrees with the scan). */
int tf_state_load(struct store *st, struct tf_state *s);
/* 0 when both name the same trees with the same presence and contents, else -1 and msg. */
int tf_state_cmp(const struct tf_state *a, const struct tf_state *b, char *msg, size_t len);
/* The store's contents must equal `a` or (when b is not NULL) `b`; returns 0 for a, 1 for b;
 * fails the test otherwise, with `what` in the message. */
int tf_state_expect_ok(struct store *st, const struct tf_state *a, const struct tf_state *b,
		       const char *what);

/* ---- 2. Errors ------------------------------------------------------------------------ */

/* True when rc is a negative errno (in -4095..-1). */
/*
 * At a sync point of machine m (from its sync hook): the distinct disks a power cut there
 * could leave.  Variant v in [0, n) is io_fault_cut_copy(m, modes[v], seeds[v]); out[v] gets
 * the copy (owned by the caller: io_fault_free), or NULL when it equals an earlier variant's
 * (the same choices for every pending write: the same image), which is freed and counted in
 * *dups.  Fails the test when a copy cannot be made.
 */
void tf_distinct_cuts(struct io_fault *m, int n, const enum io_fault_cut_mode *modes,
		      const uint64_t *seeds, struct io_fault **out, uint64_t *dups);

static inline bool tf_is_errno(long long rc)
{
	return rc < 0 && rc > -4096;
}
/* "EIO", "EUCLEAN", ... for -EIO, ...; "0" for 0; a number otherwise (static buffer for
 * unknown values: not thread-safe for those). */
const char *tf_errname(long long rc);

/* ---- 3. Log matching ------------------------------------------------------------------ */

/* True when some captured log line (tu_log_cb) names page `pgno`: contains "page N" not
 * followed by another digit. */
bool tf_log_names_page(uint64_t pgno);
/* True when some captured line names one of pages[0..n). */
bool tf_log_names_any(const uint64_t *pages, size_t n);

/* ---- 4. io_fault machines ------------------------------------------------------------- */

/* A new machine holding `m`'s durable images (io_fault_reboot): a fresh copy of a prepared
 * machine whose stores were closed.  Aborts the test on failure. */
struct io_fault *tf_machine_copy(const struct io_fault *m, uint64_t seed);
/* The whole current image of `path` (malloc'd, *len bytes; NULL with *len 0 when the file
 * is missing).  Aborts the test on other failures. */
uint8_t *tf_image_read(struct io_fault *m, const char *path, size_t *len);
/* True when the current image of `path` is exactly img[0..len) (missing equals len 0 with
 * img NULL). */
bool tf_image_equal(struct io_fault *m, const char *path, const uint8_t *img, size_t len);
/* Flip bits `mask` of the byte at `off` of `path` (both images). Aborts on failure. */
void tf_flip(struct io_fault *m, const char *path, uint64_t off, uint8_t mask);

/* ---- 5. Values ------------------------------------------------------------------------ */

/* Fill buf[0..len) with bytes determined by (tag, len). */
void tf_value_fill(uint8_t *buf, size_t len, uint64_t tag);
/* True when buf[0..len) is what tf_value_fill(…, len, tag) writes. */
bool tf_value_check(const uint8_t *buf, size_t len, uint64_t tag);

#endif
