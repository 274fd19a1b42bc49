/*
 * tests/check_overlay.c — Check suite "overlay": the write overlay of store/overlay.h (a skip
 * list of (tree, key) -> value or tombstone) against its header comments.
 *
 * Test cases, by kind:
 *   core    put/get/replace/tombstone/-ENOENT; trees isolated from each other; iterators
 *           (first, last, next, prev, seek, seek_le) that stay inside their tree; the walk's
 *           (tree, key) order and early stop; bytes and count accounting up and down; the LSN;
 *           adopted buffers (values by reference, counted once, recycled as spares: INV-8).
 *   edge    key lengths 1 and STORE_MAX_KEY (and the -EINVAL lengths around them), empty
 *           values, a 1 MiB value, keys that are prefixes of each other, trees 0, 255 and
 *           UINT_MAX; -ENOMEM leaves the overlay unchanged (plain builds only: under ASan the
 *           address-space limit it needs is not available).
 *   model   random puts, tombstones, gets, seeks and steps against the reference model of
 *           tests/testutil.h (one model per tree, values tagged 'V', tombstones 'T'); every
 *           return compared, every tree scanned forward and backward every 500 operations and
 *           at the end, plus the walk; 200 seeds x 5,000 operations (KVFS_SEED=N replays one
 *           seed, KVFS_MODEL_OPS=n changes the count); runs of ascending puts between keys
 *           already present (the finger of INV-7), every seek and seek_le checked after each.
 *   memory  100,000 entries (with replacements and tombstones) and an iterator, freed: run
 *           under ASan/LeakSanitizer nothing may leak; in plain builds overlay_bytes is also
 *           compared with what glibc's malloc reports (it must be honest within 10%).
 *
 * INV-1/INV-2 of store/overlay.c (order, back links) are attacked by the forward and backward
 * scans, INV-3 (empty values, tombstones) by "edge", INV-4 (accounting) by core/model/memory.
 *
 * Replay: CK_RUN_CASE=model KVFS_SEED=1042 ./check_overlay (CK_FORK=no for a debugger).
 * No timing is measured here.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "store/overlay.h"
#include "tests/testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define OV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OV_ASAN 1
#endif
#endif

#define MODEL_SEEDS 200
#define MODEL_OPS   5000

#define OK(expr) TU_ASSERT_EQ((expr), 0, "%s", "")
#define EXPECT(expr, want) TU_ASSERT_EQ((expr), (want), "%s", "")

/* ---- helpers ------------------------------------------------------------------------- */

static struct overlay *ov_new_ok(void)
{
	struct overlay *ov = overlay_new();

	TU_ASSERT(ov != NULL, "%s", "overlay_new");
	return ov;
}

static struct overlay_iter *iter_ok(struct overlay *ov, unsigned tree)
{
	struct overlay_iter *it = NULL;

	OK(overlay_iter_new(ov, tree, &it));
	TU_ASSERT(it != NULL, "%s", "iterator");
	return it;
}

static void put_s(struct overlay *ov, unsigned tree, const char *key, const char *val)
{
	int rc = overlay_put(ov, tree, key, strlen(key), val, val ? strlen(val) : 0, !val);

	TU_ASSERT_EQ(rc, 0, "put tree %u key %s", tree, key);
}

/* get must return `want` (1, 0, -ENOENT) and, for 1, the value `val`. */
static void get_s(struct overlay *ov, unsigned tree, const char *key, int want, const char *val)
{
	struct store_val v = { (void *)1, 12345 };
	int rc = overlay_get(ov, tree, key, strlen(key), &v);

	TU_ASSERT_EQ(rc, want, "get tree %u key %s", tree, key);
	if (want == 1) {
		TU_ASSERT(v.data != NULL, "tree %u key %s: NULL data", tree, key);
		TU_ASSERT(v.len == strlen(val) && memcmp(v.data, val, v.len) == 0,
			  "tree %u key %s: value %.*s, expected %s", tree, key, (int)v.len,
			  (const char *)v.data, val);
	} else if (want == 0) {
		TU_ASSERT(v.data == NULL && v.len == 0, "tree %u key %s: tombstone value set",
			  tree, key);
	}
}

/* The iterator must be on `key` (a tombstone when val is NULL). */
static void at_s(struct overlay_iter *it, const char *key, const char *val)
{
	struct store_val k, v;
	bool tomb = !val;

	overlay_iter_get(it, &k, &v, &tomb);
	TU_ASSERT(k.len == strlen(key) && memcmp(k.data, key, k.len) == 0,
		  "iterator at %.*s, expected %s", (int)k.len, (const char *)k.data, key);
	TU_ASSERT_EQ(tomb, !val, "key %s tombstone flag", key);
	if (val)
		TU_ASSERT(v.len == strlen(val) && memcmp(v.data, val, v.len) == 0,
			  "key %s: value %.*s, expected %s", key, (int)v.len,
			  (const char *)v.data, val);
	else
		TU_ASSERT(v.data == NULL && v.len == 0, "key %s: tombstone has a value", key);
}

/* Collects the walk into a string "tree:key=val,tree:key!," (! for a tombstone). */
struct walk_buf {
	char s[4096];
	size_t n;
	unsigned calls, stop_after;
};

static int walk_collect(void *ctx, unsigned tree, const void *key, size_t klen, const void *val,
			size_t vlen, bool tombstone)
{
	struct walk_buf *w = ctx;
	int n;

	if (tombstone)
		TU_ASSERT(val == NULL && vlen == 0, "%s", "walk: tombstone with a value");
	else
		TU_ASSERT(val != NULL, "%s", "walk: NULL value");
	n = snprintf(w->s + w->n, sizeof(w->s) - w->n, "%u:%.*s%s%.*s,", tree, (int)klen,
		     (const char *)key, tombstone ? "!" : "=", (int)vlen,
		     tombstone ? "" : (const char *)val);
	TU_ASSERT(n > 0 && (size_t)n < sizeof(w->s) - w->n, "%s", "walk buffer");
	w->n += (size_t)n;
	if (++w->calls == w->stop_after)
		return -42;
	return 0;
}

/* ---- core ---------------------------------------------------------------------------- */

START_TEST(test_put_get)
{
	struct overlay *ov = ov_new_ok();

	EXPECT(overlay_count(ov), 0);
	EXPECT(overlay_bytes(ov), 0);
	get_s(ov, 0, "a", -ENOENT, NULL);

	put_s(ov, 0, "a", "one");
	get_s(ov, 0, "a", 1, "one");
	get_s(ov, 0, "b", -ENOENT, NULL);
	get_s(ov, 0, "aa", -ENOENT, NULL);
	EXPECT(overlay_count(ov), 1);

	put_s(ov, 0, "a", "two"); /* replace */
	get_s(ov, 0, "a", 1, "two");
	EXPECT(overlay_count(ov), 1);

	put_s(ov, 0, "a", NULL); /* tombstone */
	get_s(ov, 0, "a", 0, NULL);
	EXPECT(overlay_count(ov), 1);
	put_s(ov, 0, "a", NULL); /* tombstone over tombstone */
	get_s(ov, 0, "a", 0, NULL);

	/* A tombstone for a key never written is an entry too. */
	put_s(ov, 0, "z", NULL);
	get_s(ov, 0, "z", 0, NULL);
	EXPECT(overlay_count(ov), 2);

	put_s(ov, 0, "a", "three"); /* value over tombstone */
	get_s(ov, 0, "a", 1, "three");
	EXPECT(overlay_count(ov), 2);

	/* val is ignored with tombstone; NULL val out-pointer is allowed. */
	EXPECT(overlay_put(ov, 0, "m", 1, "ignored", 7, true), 0);
	get_s(ov, 0, "m", 0, NULL);
	EXPECT(overlay_get(ov, 0, "a", 1, NULL), 1);
	EXPECT(overlay_get(ov, 0, "m", 1, NULL), 0);
	EXPECT(overlay_get(ov, 0, "n", 1, NULL), -ENOENT);
	overlay_free(ov);
	overlay_free(NULL);
}
END_TEST

START_TEST(test_trees_isolated)
{
	struct overlay *ov = ov_new_ok();

	put_s(ov, 1, "k", "one");
	put_s(ov, 2, "k", "two");
	put_s(ov, 3, "k", "three");
	get_s(ov, 1, "k", 1, "one");
	get_s(ov, 2, "k", 1, "two");
	get_s(ov, 3, "k", 1, "three");
	get_s(ov, 0, "k", -ENOENT, NULL);
	get_s(ov, 4, "k", -ENOENT, NULL);
	EXPECT(overlay_count(ov), 3);

	put_s(ov, 2, "k", NULL);
	get_s(ov, 1, "k", 1, "one");
	get_s(ov, 2, "k", 0, NULL);
	get_s(ov, 3, "k", 1, "three");

	put_s(ov, 1, "j", "j1");
	put_s(ov, 3, "l", "l3");
	get_s(ov, 2, "j", -ENOENT, NULL);
	get_s(ov, 2, "l", -ENOENT, NULL);
	get_s(ov, 3, "j", -ENOENT, NULL);
	get_s(ov, 1, "l", -ENOENT, NULL);
	overlay_free(ov);
}
END_TEST

START_TEST(test_iteration)
{
	struct overlay *ov = ov_new_ok();
	struct overlay_iter *it;

	/* Neighbouring trees with keys below and above tree 2's, so that a walk off either end of
	 * tree 2 would meet them. */
	put_s(ov, 1, "a", "1a");
	put_s(ov, 1, "zz", "1zz");
	put_s(ov, 2, "c", "2c");
	put_s(ov, 2, "e", NULL);
	put_s(ov, 2, "g", "2g");
	put_s(ov, 3, "a", "3a");
	put_s(ov, 3, "zz", "3zz");
	put_s(ov, 5, "m", "5m");

	it = iter_ok(ov, 2);
	/* Unpositioned at first: next and prev cannot move it. */
	EXPECT(overlay_iter_next(it), -ENOENT);
	EXPECT(overlay_iter_prev(it), -ENOENT);

	OK(overlay_iter_first(it));
	at_s(it, "c", "2c");
	OK(overlay_iter_next(it));
	at_s(it, "e", NULL);
	OK(overlay_iter_next(it));
	at_s(it, "g", "2g");
	EXPECT(overlay_iter_next(it), -ENOENT); /* not into tree 3 */
	EXPECT(overlay_iter_next(it), -ENOENT);
	EXPECT(overlay_iter_prev(it), -ENOENT); /* unpositioned stays so */

	OK(overlay_iter_last(it));
	at_s(it, "g", "2g");
	OK(overlay_iter_prev(it));
	at_s(it, "e", NULL);
	OK(overlay_iter_prev(it));
	at_s(it, "c", "2c");
	EXPECT(overlay_iter_prev(it), -ENOENT); /* not into tree 1 */
	EXPECT(overlay_iter_next(it), -ENOENT);

	/* seek: first key >= */
	OK(overlay_iter_seek(it, "a", 1));
	at_s(it, "c", "2c");
	OK(overlay_iter_seek(it, "c", 1));
	at_s(it, "c", "2c");
	OK(overlay_iter_seek(it, "c\0", 2));
	at_s(it, "e", NULL);
	OK(overlay_iter_seek(it, "f", 1));
	at_s(it, "g", "2g");
	OK(overlay_iter_seek(it, "g", 1));
	at_s(it, "g", "2g");
	EXPECT(overlay_iter_seek(it, "g\0", 2), -ENOENT);
	EXPECT(overlay_iter_seek(it, "zzz", 3), -ENOENT);
	OK(overlay_iter_seek(it, NULL, 0));
	at_s(it, "c", "2c");

	/* seek_le: last key <= */
	EXPECT(overlay_iter_seek_le(it, "b", 1), -ENOENT);
	EXPECT(overlay_iter_seek_le(it, NULL, 0), -ENOENT);
	OK(overlay_iter_seek_le(it, "c", 1));
	at_s(it, "c", "2c");
	OK(overlay_iter_seek_le(it, "d", 1));
	at_s(it, "c", "2c");
	OK(overlay_iter_seek_le(it, "e", 1));
	at_s(it, "e", NULL);
	OK(overlay_iter_seek_le(it, "f\xff\xff", 3));
	at_s(it, "e", NULL);
	OK(overlay_iter_seek_le(it, "zzz", 3));
	at_s(it, "g", "2g");
	OK(overlay_iter_prev(it));
	at_s(it, "e", NULL);
	overlay_iter_free(it);

	/* Empty trees between, below and above populated ones. */
	unsigned empty[] = { 0, 4, 6, UINT_MAX };
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		it = iter_ok(ov, empty[i]);
		EXPECT(overlay_iter_first(it), -ENOENT);
		EXPECT(overlay_iter_last(it), -ENOENT);
		EXPECT(overlay_iter_seek(it, "a", 1), -ENOENT);
		EXPECT(overlay_iter_seek_le(it, "zzz", 3), -ENOENT);
		EXPECT(overlay_iter_next(it), -ENOENT);
		EXPECT(overlay_iter_prev(it), -ENOENT);
		overlay_iter_free(it);
	}

	/* Single-entry tree: first == last, both ends stop. */
	it = iter_ok(ov, 5);
	OK(overlay_iter_last(it));
	at_s(it, "m", "5m");
	EXPECT(overlay_iter_prev(it), -ENOENT);
	OK(overlay_iter_first(it));
	at_s(it, "m", "5m");
	EXPECT(overlay_iter_next(it), -ENOENT);
	overlay_iter_free(it);

	/* Re-seek after a change sees it. */
	it = iter_ok(ov, 2);
	put_s(ov, 2, "d", "2d");
	OK(overlay_iter_seek(it, "c\0", 2));
	at_s(it, "d", "2d");
	OK(overlay_iter_prev(it));
	at_s(it, "c", "2c");
	OK(overlay_iter_next(it));
	OK(overlay_iter_next(it));
	at_s(it, "e", NULL);
	overlay_iter_free(it);
	overlay_iter_free(NULL);
	overlay_free(ov);
}
END_TEST

START_TEST(test_walk)
{
	struct overlay *ov = ov_new_ok();
	struct walk_buf w;

	memset(&w, 0, sizeof(w));
	OK(overlay_walk(ov, walk_collect, &w));
	EXPECT(w.calls, 0);

	/* Inserted out of order, across trees. */
	put_s(ov, 7, "b", "7b");
	put_s(ov, 0, "zz", "0zz");
	put_s(ov, 7, "a", NULL);
	put_s(ov, 3, "q", "3q");
	put_s(ov, 0, "a", "0a");
	put_s(ov, 3, "p", NULL);
	put_s(ov, 0, "z", "0z");

	memset(&w, 0, sizeof(w));
	OK(overlay_walk(ov, walk_collect, &w));
	TU_ASSERT(strcmp(w.s, "0:a=0a,0:z=0z,0:zz=0zz,3:p!,3:q=3q,7:a!,7:b=7b,") == 0, "walk %s",
		  w.s);

	memset(&w, 0, sizeof(w));
	w.stop_after = 3;
	EXPECT(overlay_walk(ov, walk_collect, &w), -42);
	EXPECT(w.calls, 3);
	TU_ASSERT(strcmp(w.s, "0:a=0a,0:z=0z,0:zz=0zz,") == 0, "walk %s", w.s);
	overlay_free(ov);
}
END_TEST

START_TEST(test_accounting)
{
	struct overlay *ov = ov_new_ok();
	char big[1000];
	size_t b0, b1, b2, b3;

	memset(big, 'x', sizeof(big));
	EXPECT(overlay_bytes(ov), 0);
	OK(overlay_put(ov, 0, "key", 3, big, 100, false));
	b0 = overlay_bytes(ov);
	/* At least the payload and a node (two pointers, lengths, a level pointer). */
	TU_ASSERT(b0 >= 3 + 100 + 32, "bytes %zu after one entry", b0);
	TU_ASSERT(b0 < 3 + 100 + 512, "bytes %zu after one entry", b0);

	/* Larger value: up by the difference (less at most 16 bytes of allocator rounding); back
	 * to the same size: the same bytes. */
	OK(overlay_put(ov, 0, "key", 3, big, 1000, false));
	b1 = overlay_bytes(ov);
	TU_ASSERT(b1 + 16 >= b0 + 900, "bytes %zu -> %zu", b0, b1);
	OK(overlay_put(ov, 0, "key", 3, big, 100, false));
	EXPECT(overlay_bytes(ov), b0);

	/* Tombstone: the value's memory goes; then a value of the old size again. */
	OK(overlay_put(ov, 0, "key", 3, NULL, 0, true));
	b2 = overlay_bytes(ov);
	TU_ASSERT(b2 + 100 <= b0, "bytes %zu -> %zu after a tombstone", b0, b2);
	TU_ASSERT(b2 >= 3 + 32, "tombstone entry bytes %zu", b2);
	OK(overlay_put(ov, 0, "key", 3, big, 0, false)); /* empty value: no value allocation */
	EXPECT(overlay_bytes(ov), b2);
	OK(overlay_put(ov, 0, "key", 3, big, 100, false));
	EXPECT(overlay_bytes(ov), b0);
	EXPECT(overlay_count(ov), 1);

	/* A second entry (other tree, same key) adds its own node. */
	OK(overlay_put(ov, 1, "key", 3, big, 100, false));
	b3 = overlay_bytes(ov);
	TU_ASSERT(b3 >= b0 + 3 + 100 + 32, "bytes %zu -> %zu", b0, b3);
	EXPECT(overlay_count(ov), 2);
	/* A longer key costs more (ignoring the node's random height: at most 20 pointers). */
	OK(overlay_put(ov, 1, big, 900, NULL, 0, true));
	TU_ASSERT(overlay_bytes(ov) >= b3 + 900 + 32, "bytes %zu -> %zu", b3, overlay_bytes(ov));
	EXPECT(overlay_count(ov), 3);
	/* Reads change nothing. */
	b3 = overlay_bytes(ov);
	EXPECT(overlay_get(ov, 1, "key", 3, NULL), 1);
	EXPECT(overlay_bytes(ov), b3);
	overlay_free(ov);
}
END_TEST

/*
 * Values by reference (INV-8 of store/overlay.c): overlay_put_ref does not copy (get returns
 * the very address) and counts nothing for the value; replacing a copied value by a
 * referenced one frees the copy (bytes fall); replacing a referenced one by a copy, a
 * tombstone or another reference frees nothing of the caller's memory, and neither does
 * overlay_free (under ASan a free of the caller's block, or of an interior pointer, is
 * reported; the caller frees it after the overlay, which LeakSanitizer checks).
 */
START_TEST(test_put_ref)
{
	struct overlay *ov = ov_new_ok();
	const size_t big = 200u << 10;
	uint8_t *buf = malloc(big);
	struct store_val v;

	TU_ASSERT(buf != NULL, "%s", "malloc");
	memset(buf, 'a', big);
	OK(overlay_put(ov, 0, "copied", 6, "xyz", 3, false));
	size_t b1 = overlay_bytes(ov);
	OK(overlay_put_ref(ov, 0, "ref", 3, buf + 1000, 50000, false));
	TU_ASSERT(overlay_bytes(ov) - b1 < 512, "a referenced value cost %zu bytes",
		  overlay_bytes(ov) - b1);
	EXPECT(overlay_get(ov, 0, "ref", 3, &v), 1);
	TU_ASSERT(v.data == buf + 1000 && v.len == 50000, "%s", "put_ref copied the value");
	/* A copied value replaced by a referenced one: the copy goes (bytes fall). */
	size_t b2 = overlay_bytes(ov);
	OK(overlay_put_ref(ov, 0, "copied", 6, buf + 60000, 4096, false));
	TU_ASSERT(overlay_bytes(ov) < b2, "bytes %zu -> %zu", b2, overlay_bytes(ov));
	EXPECT(overlay_get(ov, 0, "copied", 6, &v), 1);
	TU_ASSERT(v.data == buf + 60000, "%s", "replacement by reference");
	/* A referenced value replaced by a copy, by a tombstone, by another reference: nothing
	 * of the caller's block is freed. */
	size_t b3 = overlay_bytes(ov);
	OK(overlay_put(ov, 0, "ref", 3, "q", 1, false));
	EXPECT(overlay_bytes(ov), b3 + 32);
	OK(overlay_put(ov, 0, "ref", 3, NULL, 0, true));
	EXPECT(overlay_bytes(ov), b3);
	OK(overlay_put_ref(ov, 1, "two", 3, buf + 64, 1000, false));
	OK(overlay_put_ref(ov, 0, "ref", 3, buf + 2000, 10, false));
	EXPECT(overlay_get(ov, 0, "ref", 3, &v), 1);
	TU_ASSERT(v.data == buf + 2000 && v.len == 10 && ((const uint8_t *)v.data)[0] == 'a',
		  "%s", "re-reference");
	EXPECT(overlay_count(ov), 3);
	overlay_free(ov);
	memset(buf, 0, big); /* still the caller's, whole (ASan: freed by the overlay) */
	free(buf);
}
END_TEST

START_TEST(test_lsn)
{
	struct overlay *ov = ov_new_ok();

	EXPECT(overlay_lsn(ov), 0);
	overlay_set_lsn(ov, 4096);
	EXPECT(overlay_lsn(ov), 4096);
	put_s(ov, 0, "a", "b"); /* puts do not touch it */
	EXPECT(overlay_lsn(ov), 4096);
	overlay_set_lsn(ov, 100); /* lower: ignored (the highest is kept) */
	EXPECT(overlay_lsn(ov), 4096);
	overlay_set_lsn(ov, UINT64_MAX - 1);
	TU_ASSERT(overlay_lsn(ov) == UINT64_MAX - 1, "%s", "large LSN");
	overlay_free(ov);
}
END_TEST

/* ---- edge ---------------------------------------------------------------------------- */

START_TEST(test_key_lengths)
{
	struct overlay *ov = ov_new_ok();
	struct overlay_iter *it = iter_ok(ov, 9);
	uint8_t kmax[STORE_MAX_KEY + 1], kmax2[STORE_MAX_KEY];
	struct store_val k, v;

	memset(kmax, 0xff, sizeof(kmax));
	memset(kmax2, 0xff, sizeof(kmax2));
	kmax2[STORE_MAX_KEY - 1] = 0xfe;

	/* Out of range: -EINVAL, nothing changes. */
	EXPECT(overlay_put(ov, 9, "a", 0, "v", 1, false), -EINVAL);
	EXPECT(overlay_put(ov, 9, kmax, STORE_MAX_KEY + 1, "v", 1, false), -EINVAL);
	EXPECT(overlay_put(ov, 9, NULL, 1, "v", 1, false), -EINVAL);
	EXPECT(overlay_put(ov, 9, "a", 1, NULL, 1, false), -EINVAL);
	EXPECT(overlay_put(ov, 9, "a", 1, "v", (size_t)STORE_MAX_VALUE + 1, false), -EINVAL);
	EXPECT(overlay_count(ov), 0);
	EXPECT(overlay_bytes(ov), 0);
	EXPECT(overlay_get(ov, 9, "a", 0, NULL), -ENOENT);
	EXPECT(overlay_get(ov, 9, kmax, STORE_MAX_KEY + 1, NULL), -ENOENT);

	/* Length 1 (smallest and largest byte) and STORE_MAX_KEY. */
	OK(overlay_put(ov, 9, "\x00", 1, "lo", 2, false));
	OK(overlay_put(ov, 9, "\xff", 1, "hi", 2, false));
	OK(overlay_put(ov, 9, kmax, STORE_MAX_KEY, "max", 3, false));
	OK(overlay_put(ov, 9, kmax2, STORE_MAX_KEY, NULL, 0, true));
	EXPECT(overlay_count(ov), 4);
	EXPECT(overlay_get(ov, 9, kmax, STORE_MAX_KEY, &v), 1);
	TU_ASSERT(v.len == 3 && memcmp(v.data, "max", 3) == 0, "%s", "max key value");
	EXPECT(overlay_get(ov, 9, kmax2, STORE_MAX_KEY, &v), 0);
	EXPECT(overlay_get(ov, 9, kmax, STORE_MAX_KEY - 1, &v), -ENOENT);
	/* The longest key is a seek bound too, beyond it nothing. */
	EXPECT(overlay_get(ov, 9, kmax, STORE_MAX_KEY + 1, NULL), -ENOENT);

	/* Order: \x00 < \xff < kmax2 (\xff... \xfe) < kmax (\xff... \xff). */
	OK(overlay_iter_first(it));
	overlay_iter_get(it, &k, NULL, NULL);
	TU_ASSERT(k.len == 1 && ((const uint8_t *)k.data)[0] == 0x00, "%s", "first");
	OK(overlay_iter_next(it));
	overlay_iter_get(it, &k, NULL, NULL);
	TU_ASSERT(k.len == 1 && ((const uint8_t *)k.data)[0] == 0xff, "%s", "second");
	OK(overlay_iter_next(it));
	overlay_iter_get(it, &k, &v, NULL);
	TU_ASSERT(k.len == STORE_MAX_KEY && memcmp(k.data, kmax2, k.len) == 0, "%s", "third");
	OK(overlay_iter_next(it));
	overlay_iter_get(it, &k, &v, NULL);
	TU_ASSERT(k.len == STORE_MAX_KEY && memcmp(k.data, kmax, k.len) == 0, "%s", "last");
	EXPECT(overlay_iter_next(it), -ENOENT);
	OK(overlay_iter_seek_le(it, kmax, STORE_MAX_KEY + 1));
	overlay_iter_get(it, &k, NULL, NULL);
	TU_ASSERT(k.len == STORE_MAX_KEY && memcmp(k.data, kmax, k.len) == 0, "%s", "seek_le");
	EXPECT(overlay_iter_seek(it, kmax, STORE_MAX_KEY + 1), -ENOENT);
	overlay_iter_free(it);
	overlay_free(ov);
}
END_TEST

START_TEST(test_empty_values)
{
	struct overlay *ov = ov_new_ok();
	struct overlay_iter *it = iter_ok(ov, 0);
	struct store_val v;
	bool tomb = true;
	struct walk_buf w;

	OK(overlay_put(ov, 0, "e", 1, NULL, 0, false));  /* NULL is fine with vlen 0 */
	OK(overlay_put(ov, 0, "f", 1, "xyz", 0, false));
	EXPECT(overlay_get(ov, 0, "e", 1, &v), 1); /* a value, not a tombstone */
	TU_ASSERT(v.data != NULL && v.len == 0, "%s", "empty value: non-NULL data, length 0");
	EXPECT(overlay_get(ov, 0, "f", 1, &v), 1);
	TU_ASSERT(v.data != NULL && v.len == 0, "%s", "empty value");
	OK(overlay_iter_first(it));
	overlay_iter_get(it, NULL, &v, &tomb);
	TU_ASSERT(v.data != NULL && v.len == 0 && !tomb, "%s", "iterator: empty value");
	overlay_iter_get(it, NULL, NULL, NULL); /* all outputs optional */
	memset(&w, 0, sizeof(w));
	OK(overlay_walk(ov, walk_collect, &w));
	TU_ASSERT(strcmp(w.s, "0:e=,0:f=,") == 0, "walk %s", w.s);

	/* Non-empty -> empty -> tombstone -> empty. */
	OK(overlay_put(ov, 0, "e", 1, "abc", 3, false));
	OK(overlay_put(ov, 0, "e", 1, "", 0, false));
	EXPECT(overlay_get(ov, 0, "e", 1, &v), 1);
	EXPECT(v.len, 0);
	OK(overlay_put(ov, 0, "e", 1, NULL, 0, true));
	EXPECT(overlay_get(ov, 0, "e", 1, &v), 0);
	OK(overlay_put(ov, 0, "e", 1, NULL, 0, false));
	EXPECT(overlay_get(ov, 0, "e", 1, &v), 1);
	overlay_iter_free(it);
	overlay_free(ov);
}
END_TEST

START_TEST(test_big_value)
{
	struct overlay *ov = ov_new_ok();
	size_t len = 1u << 20;
	uint8_t *buf = malloc(len);
	struct tu_rng r;
	struct store_val v;
	size_t b_small, b_big;

	TU_ASSERT(buf != NULL, "%s", "malloc");
	tu_rng_init(&r, 77);
	tu_rng_bytes(&r, buf, len);
	OK(overlay_put(ov, 4, "big", 3, "s", 1, false));
	b_small = overlay_bytes(ov);
	OK(overlay_put(ov, 4, "big", 3, buf, len, false));
	b_big = overlay_bytes(ov);
	TU_ASSERT(b_big >= b_small + len - 1, "bytes %zu -> %zu", b_small, b_big);
	TU_ASSERT(b_big <= b_small + len + 8192, "bytes %zu -> %zu", b_small, b_big);
	buf[0] ^= 1; /* the overlay holds a copy */
	EXPECT(overlay_get(ov, 4, "big", 3, &v), 1);
	buf[0] ^= 1;
	TU_ASSERT(v.len == len && memcmp(v.data, buf, len) == 0, "%s", "1 MiB value");
	OK(overlay_put(ov, 4, "big2", 4, buf, len, false));
	OK(overlay_put(ov, 4, "big", 3, "s", 1, false));
	EXPECT(overlay_get(ov, 4, "big2", 4, &v), 1);
	TU_ASSERT(v.len == len && memcmp(v.data, buf, len) == 0, "%s", "second 1 MiB value");
	OK(overlay_put(ov, 4, "big2", 4, NULL, 0, true));
	TU_ASSERT(overlay_bytes(ov) < b_small * 2 + 4096, "bytes %zu after dropping 1 MiB values",
		  overlay_bytes(ov));
	free(buf);
	overlay_free(ov);
}
END_TEST

START_TEST(test_prefix_keys)
{
	/* In store order (unsigned bytes, a proper prefix first). */
	static const struct {
		const char *k;
		size_t len;
	} keys[] = {
		{ "\x00", 1 },     { "\x00\x00", 2 }, { "a", 1 },     { "a\x00", 2 },
		{ "a\x00\x00", 3 }, { "a\x01", 2 },    { "aa", 2 },    { "aaa", 3 },
		{ "ab", 2 },        { "b", 1 },        { "\x7f", 1 },  { "\x80", 1 },
		{ "\xff", 1 },      { "\xff\x00", 2 }, { "\xff\xff", 2 },
	};
	size_t n = sizeof(keys) / sizeof(keys[0]);
	struct overlay *ov = ov_new_ok();
	struct overlay_iter *it = iter_ok(ov, 1);
	struct store_val k, v;

	/* Inserted in a scrambled order, in trees 0, 1 and 2 (tree 1 is iterated). */
	for (size_t i = 0; i < n; i++) {
		size_t j = (i * 7) % n;
		for (unsigned t = 0; t < 3; t++)
			OK(overlay_put(ov, t, keys[j].k, keys[j].len, &j, sizeof(j), false));
	}
	for (size_t i = 0; i + 1 < n; i++)
		TU_ASSERT(tu_key_cmp(keys[i].k, keys[i].len, keys[i + 1].k, keys[i + 1].len) < 0,
			  "table order at %zu", i);
	OK(overlay_iter_first(it));
	for (size_t i = 0; i < n; i++) {
		if (i)
			OK(overlay_iter_next(it));
		overlay_iter_get(it, &k, &v, NULL);
		TU_ASSERT(k.len == keys[i].len && memcmp(k.data, keys[i].k, k.len) == 0,
			  "forward entry %zu", i);
		TU_ASSERT(v.len == sizeof(size_t) && *(const size_t *)v.data == i, "value %zu", i);
	}
	EXPECT(overlay_iter_next(it), -ENOENT);
	OK(overlay_iter_last(it));
	for (size_t i = n; i-- > 0;) {
		if (i != n - 1)
			OK(overlay_iter_prev(it));
		overlay_iter_get(it, &k, NULL, NULL);
		TU_ASSERT(k.len == keys[i].len && memcmp(k.data, keys[i].k, k.len) == 0,
			  "backward entry %zu", i);
	}
	EXPECT(overlay_iter_prev(it), -ENOENT);
	/* Exact seeks and seeks between prefix neighbours. */
	for (size_t i = 0; i < n; i++) {
		OK(overlay_iter_seek(it, keys[i].k, keys[i].len));
		overlay_iter_get(it, &k, NULL, NULL);
		TU_ASSERT(k.len == keys[i].len && memcmp(k.data, keys[i].k, k.len) == 0,
			  "seek %zu", i);
		OK(overlay_iter_seek_le(it, keys[i].k, keys[i].len));
		overlay_iter_get(it, &k, NULL, NULL);
		TU_ASSERT(k.len == keys[i].len && memcmp(k.data, keys[i].k, k.len) == 0,
			  "seek_le %zu", i);
		/* key + "\0": just above key, at or below the next one. */
		char ext[8];
		memcpy(ext, keys[i].k, keys[i].len);
		ext[keys[i].len] = 0;
		OK(overlay_iter_seek_le(it, ext, keys[i].len + 1));
		overlay_iter_get(it, &k, NULL, NULL);
		size_t want = i + 1 < n && tu_key_cmp(keys[i + 1].k, keys[i + 1].len, ext,
						      keys[i].len + 1) == 0 ? i + 1 : i;
		TU_ASSERT(k.len == keys[want].len && memcmp(k.data, keys[want].k, k.len) == 0,
			  "seek_le past %zu", i);
		int rc = overlay_iter_seek(it, ext, keys[i].len + 1);
		if (i + 1 < n) {
			EXPECT(rc, 0);
			overlay_iter_get(it, &k, NULL, NULL);
			TU_ASSERT(k.len == keys[i + 1].len &&
					  memcmp(k.data, keys[i + 1].k, k.len) == 0,
				  "seek past %zu", i);
		} else {
			EXPECT(rc, -ENOENT);
		}
		EXPECT(overlay_get(ov, 1, ext, keys[i].len + 1, NULL),
		       want == i ? -ENOENT : 1);
	}
	overlay_iter_free(it);
	overlay_free(ov);
}
END_TEST

START_TEST(test_tree_numbers)
{
	struct overlay *ov = ov_new_ok();
	struct overlay_iter *it;
	struct walk_buf w;

	put_s(ov, 255, "a", "255a");
	put_s(ov, UINT_MAX, "a", "maxa");
	put_s(ov, 0, "z", "0z");
	put_s(ov, 255, "m", "255m");
	put_s(ov, 0, "a", "0a");
	put_s(ov, UINT_MAX, "z", "maxz");
	put_s(ov, 256, "b", "256b");
	get_s(ov, 0, "a", 1, "0a");
	get_s(ov, 255, "a", 1, "255a");
	get_s(ov, UINT_MAX, "z", 1, "maxz");
	get_s(ov, 0, "m", -ENOENT, NULL);
	get_s(ov, 255, "z", -ENOENT, NULL);

	it = iter_ok(ov, 0);
	OK(overlay_iter_last(it));
	at_s(it, "z", "0z");
	EXPECT(overlay_iter_next(it), -ENOENT);
	OK(overlay_iter_first(it));
	at_s(it, "a", "0a");
	EXPECT(overlay_iter_prev(it), -ENOENT);
	overlay_iter_free(it);

	it = iter_ok(ov, 255);
	OK(overlay_iter_first(it));
	at_s(it, "a", "255a");
	EXPECT(overlay_iter_prev(it), -ENOENT);
	OK(overlay_iter_last(it));
	at_s(it, "m", "255m");
	EXPECT(overlay_iter_next(it), -ENOENT); /* not into 256 */
	EXPECT(overlay_iter_seek(it, "n", 1), -ENOENT);
	OK(overlay_iter_seek_le(it, "\xff", 1));
	at_s(it, "m", "255m");
	overlay_iter_free(it);

	it = iter_ok(ov, UINT_MAX);
	OK(overlay_iter_last(it));
	at_s(it, "z", "maxz");
	EXPECT(overlay_iter_next(it), -ENOENT);
	OK(overlay_iter_first(it));
	at_s(it, "a", "maxa");
	EXPECT(overlay_iter_prev(it), -ENOENT);
	overlay_iter_free(it);

	memset(&w, 0, sizeof(w));
	OK(overlay_walk(ov, walk_collect, &w));
	TU_ASSERT(strcmp(w.s, "0:a=0a,0:z=0z,255:a=255a,255:m=255m,256:b=256b,4294967295:a=maxa,"
			      "4294967295:z=maxz,") == 0, "walk %s", w.s);
	overlay_free(ov);
}
END_TEST

/* -ENOMEM leaves the overlay unchanged: an address-space limit makes a 1 GiB value's
 * allocation fail.  Skipped under ASan, whose shadow memory needs the address space. */
START_TEST(test_enomem)
{
#ifdef OV_ASAN
	fprintf(stderr, "check_overlay: test_enomem skipped under AddressSanitizer\n");
#else
	struct overlay *ov = ov_new_ok();
	size_t len = STORE_MAX_VALUE;
	struct rlimit old, lim;
	struct store_val v;
	long pages = 0, page = sysconf(_SC_PAGESIZE);
	FILE *f;

	put_s(ov, 0, "a", "old");
	put_s(ov, 0, "b", NULL);
	size_t bytes = overlay_bytes(ov), count = overlay_count(ov);
	/* The source: 1 GiB of zero pages, never touched unless the put succeeds. */
	void *src = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TU_ASSERT(src != MAP_FAILED, "%s", "mmap 1 GiB");
	f = fopen("/proc/self/statm", "r");
	TU_ASSERT(f && fscanf(f, "%ld", &pages) == 1, "%s", "/proc/self/statm");
	fclose(f);
	OK(getrlimit(RLIMIT_AS, &old));
	lim = old;
	lim.rlim_cur = (rlim_t)pages * (rlim_t)page + (64u << 20);
	if (old.rlim_cur != RLIM_INFINITY && lim.rlim_cur > old.rlim_cur)
		lim.rlim_cur = old.rlim_cur;
	OK(setrlimit(RLIMIT_AS, &lim));

	int r1 = overlay_put(ov, 0, "a", 1, src, len, false); /* replace */
	int r2 = overlay_put(ov, 0, "c", 1, src, len, false); /* insert */
	int r3 = overlay_put(ov, 0, "b", 1, src, len, false); /* over a tombstone */
	OK(setrlimit(RLIMIT_AS, &old));
	munmap(src, len);
	EXPECT(r1, -ENOMEM);
	EXPECT(r2, -ENOMEM);
	EXPECT(r3, -ENOMEM);
	EXPECT(overlay_bytes(ov), bytes);
	EXPECT(overlay_count(ov), count);
	get_s(ov, 0, "a", 1, "old");
	get_s(ov, 0, "b", 0, NULL);
	get_s(ov, 0, "c", -ENOENT, NULL);
	EXPECT(overlay_get(ov, 0, "a", 1, &v), 1);
	/* Still usable. */
	put_s(ov, 0, "c", "new");
	get_s(ov, 0, "c", 1, "new");
	overlay_free(ov);
#endif
}
END_TEST

/* ---- model --------------------------------------------------------------------------- */

/* Trees the model uses; MODEL_EMPTY_TREE lies between them and stays empty. */
static const unsigned model_trees[] = { 0, 7, 255 };
#define MODEL_NTREES     3
#define MODEL_EMPTY_TREE 8
#define MODEL_SCAN_EVERY 500

struct model_state {
	struct overlay *ov;
	struct tu_model m[MODEL_NTREES]; /* value: 'V' + bytes, or "T" for a tombstone */
	struct tu_rng r;
	struct overlay_iter *it[MODEL_NTREES];
	uint8_t *vbuf;
	size_t step;
};

static const uint8_t key_alphabet[] = { 0x00, 0x01, 'a', 'b', 0x7f, 0x80, 0xfe, 0xff };

static size_t model_key(struct model_state *s, uint8_t *key)
{
	struct tu_rng *r = &s->r;

	/* Half the time a key some tree already has (maybe another tree's: isolation). */
	if (tu_rng_chance(r, 1, 2)) {
		const struct tu_model *m = &s->m[tu_rng_below(r, MODEL_NTREES)];
		if (m->n) {
			const struct tu_ent *e = &m->ents[tu_rng_below(r, m->n)];
			memcpy(key, e->key, e->klen);
			size_t klen = e->klen;
			/* Sometimes a neighbour: one byte longer or shorter. */
			if (tu_rng_chance(r, 1, 8) && klen < STORE_MAX_KEY)
				key[klen++] = key_alphabet[tu_rng_below(r, sizeof(key_alphabet))];
			else if (tu_rng_chance(r, 1, 8) && klen > 1)
				klen--;
			return klen;
		}
	}
	size_t klen = tu_rng_chance(r, 1, 50) ? tu_rng_range(r, 100, STORE_MAX_KEY)
					      : tu_rng_range(r, 1, 6);
	for (size_t i = 0; i < klen; i++)
		key[i] = key_alphabet[tu_rng_below(r, sizeof(key_alphabet))];
	return klen;
}

static char *fmtk(char *buf, size_t len, const void *k, size_t klen)
{
	return tu_fmt_bytes(buf, len, k, klen, 40);
}

/* The iterator must be on model entry e (or unpositioned, rc -ENOENT, when e is NULL). */
static void model_check_at(struct overlay_iter *it, int rc, const struct tu_ent *e,
			   const char *what)
{
	char b1[128], b2[128];
	struct store_val k, v;
	bool tomb;

	if (!e) {
		TU_ASSERT_EQ(rc, -ENOENT, "%s: expected the end", what);
		return;
	}
	TU_ASSERT_EQ(rc, 0, "%s: expected key %s", what, fmtk(b1, sizeof(b1), e->key, e->klen));
	overlay_iter_get(it, &k, &v, &tomb);
	TU_ASSERT(tu_key_cmp(k.data, k.len, e->key, e->klen) == 0, "%s: key %s, expected %s", what,
		  fmtk(b1, sizeof(b1), k.data, k.len), fmtk(b2, sizeof(b2), e->key, e->klen));
	TU_ASSERT_EQ(tomb, e->val[0] == 'T', "%s: key %s tombstone", what,
		     fmtk(b1, sizeof(b1), e->key, e->klen));
	if (tomb) {
		TU_ASSERT(v.data == NULL && v.len == 0, "%s: tombstone with a value", what);
	} else {
		TU_ASSERT(v.data != NULL && v.len == e->vlen - 1 &&
				  memcmp(v.data, e->val + 1, v.len) == 0,
			  "%s: key %s: value of %zu bytes differs (expected %zu)", what,
			  fmtk(b1, sizeof(b1), e->key, e->klen), v.len, e->vlen - 1);
	}
}

/* Scan tree t fully in one direction; then next/prev past the end stay -ENOENT. */
static void model_scan(struct model_state *s, size_t t, bool backward)
{
	struct overlay_iter *it = s->it[t];
	const struct tu_model *m = &s->m[t];
	char what[96];
	int rc = backward ? overlay_iter_last(it) : overlay_iter_first(it);

	for (size_t i = 0; i < m->n; i++) {
		snprintf(what, sizeof(what), "step %zu: tree %u %s scan, entry %zu of %zu", s->step,
			 model_trees[t], backward ? "backward" : "forward", i, m->n);
		model_check_at(it, rc, &m->ents[backward ? m->n - 1 - i : i], what);
		rc = backward ? overlay_iter_prev(it) : overlay_iter_next(it);
	}
	snprintf(what, sizeof(what), "step %zu: tree %u %s scan end", s->step, model_trees[t],
		 backward ? "backward" : "forward");
	model_check_at(it, rc, NULL, what);
	model_check_at(it, backward ? overlay_iter_prev(it) : overlay_iter_next(it), NULL, what);
}

struct walk_cmp {
	struct model_state *s;
	size_t t, i, calls;
};

static int walk_cmp_fn(void *ctx, unsigned tree, const void *key, size_t klen, const void *val,
		       size_t vlen, bool tombstone)
{
	struct walk_cmp *w = ctx;
	char b1[128];

	while (w->t < MODEL_NTREES && w->i == w->s->m[w->t].n) {
		w->t++;
		w->i = 0;
	}
	TU_ASSERT(w->t < MODEL_NTREES, "walk: extra entry tree %u key %s", tree,
		  fmtk(b1, sizeof(b1), key, klen));
	const struct tu_ent *e = &w->s->m[w->t].ents[w->i++];
	TU_ASSERT_EQ(tree, model_trees[w->t], "walk entry %zu: tree", w->calls);
	TU_ASSERT(tu_key_cmp(key, klen, e->key, e->klen) == 0, "walk entry %zu: key %s", w->calls,
		  fmtk(b1, sizeof(b1), key, klen));
	TU_ASSERT_EQ(tombstone, e->val[0] == 'T', "walk entry %zu: tombstone", w->calls);
	if (!tombstone)
		TU_ASSERT(val && vlen == e->vlen - 1 && memcmp(val, e->val + 1, vlen) == 0,
			  "walk entry %zu: value", w->calls);
	w->calls++;
	return 0;
}

static void model_full_check(struct model_state *s)
{
	size_t total = 0;

	for (size_t t = 0; t < MODEL_NTREES; t++) {
		model_scan(s, t, false);
		model_scan(s, t, true);
		total += s->m[t].n;
	}
	struct walk_cmp w = { s, 0, 0, 0 };
	OK(overlay_walk(s->ov, walk_cmp_fn, &w));
	TU_ASSERT_EQ(w.calls, total, "step %zu: walk length", s->step);

	struct overlay_iter *it = iter_ok(s->ov, MODEL_EMPTY_TREE);
	EXPECT(overlay_iter_first(it), -ENOENT);
	EXPECT(overlay_iter_last(it), -ENOENT);
	overlay_iter_free(it);
}

/* Position with seek or seek_le (or first/last) at a random key, then a random walk of a few
 * steps; every position compared with the model. */
static void model_seek(struct model_state *s, size_t t, const uint8_t *key, size_t klen)
{
	struct overlay_iter *it = s->it[t];
	const struct tu_model *m = &s->m[t];
	unsigned kind = (unsigned)tu_rng_below(&s->r, 4);
	size_t lb = tu_model_lower_bound(m, key, klen);
	ptrdiff_t pos; /* model index; -1 or n: off the end */
	char what[96];
	int rc;

	switch (kind) {
	case 0:
		rc = overlay_iter_seek(it, key, klen);
		pos = (ptrdiff_t)lb;
		break;
	case 1:
		rc = overlay_iter_seek_le(it, key, klen);
		pos = lb < m->n && tu_key_cmp(m->ents[lb].key, m->ents[lb].klen, key, klen) == 0
			      ? (ptrdiff_t)lb
			      : (ptrdiff_t)lb - 1;
		break;
	case 2:
		rc = overlay_iter_first(it);
		pos = 0;
		break;
	default:
		rc = overlay_iter_last(it);
		pos = (ptrdiff_t)m->n - 1;
		break;
	}
	static const char *const names[] = { "seek", "seek_le", "first", "last" };
	unsigned steps = (unsigned)tu_rng_below(&s->r, 9);
	for (unsigned i = 0;; i++) {
		bool on = pos >= 0 && (size_t)pos < m->n;
		snprintf(what, sizeof(what), "step %zu: tree %u %s then %u moves", s->step,
			 model_trees[t], names[kind], i);
		model_check_at(it, rc, on ? &m->ents[pos] : NULL, what);
		if (!on || i == steps)
			break;
		if (tu_rng_chance(&s->r, 1, 2)) {
			rc = overlay_iter_next(it);
			pos++;
		} else {
			rc = overlay_iter_prev(it);
			pos--;
		}
	}
}

static void model_run(uint64_t seed, unsigned ops)
{
	struct model_state *s = calloc(1, sizeof(*s));
	uint8_t key[STORE_MAX_KEY + 1];
	char b1[128];

	TU_ASSERT(s != NULL, "%s", "calloc");
	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&s->r, seed);
	s->ov = ov_new_ok();
	s->vbuf = malloc(4097);
	TU_ASSERT(s->vbuf != NULL, "%s", "malloc");
	for (size_t t = 0; t < MODEL_NTREES; t++) {
		tu_model_init(&s->m[t]);
		s->it[t] = iter_ok(s->ov, model_trees[t]);
	}

	for (s->step = 0; s->step < ops; s->step++) {
		size_t t = tu_rng_below(&s->r, MODEL_NTREES);
		unsigned tree = model_trees[t];
		struct tu_model *m = &s->m[t];
		size_t klen = model_key(s, key);
		const struct tu_ent *e = tu_model_get(m, key, klen);
		unsigned op = (unsigned)tu_rng_below(&s->r, 100);
		size_t bytes0 = overlay_bytes(s->ov);
		struct store_val v;
		int rc;

		if (op < 40) { /* put a value */
			size_t vlen = tu_rng_chance(&s->r, 1, 10)   ? 0
				      : tu_rng_chance(&s->r, 1, 6) ? tu_rng_range(&s->r, 33, 4096)
								   : tu_rng_range(&s->r, 1, 32);
			if (e && e->val[0] == 'V' && tu_rng_chance(&s->r, 1, 4))
				vlen = e->vlen - 1; /* same size: bytes must not move */
			s->vbuf[0] = 'V';
			tu_rng_bytes(&s->r, s->vbuf + 1, vlen);
			rc = overlay_put(s->ov, tree, key, klen, s->vbuf + 1, vlen, false);
			TU_ASSERT_EQ(rc, 0, "step %zu: put tree %u key %s", s->step, tree,
				     fmtk(b1, sizeof(b1), key, klen));
			bool same = e && e->val[0] == 'V' && e->vlen == vlen + 1;
			tu_model_put(m, key, klen, s->vbuf, vlen + 1);
			if (same)
				TU_ASSERT_EQ(overlay_bytes(s->ov), bytes0,
					     "step %zu: same-size replace moved bytes", s->step);
			else if (!e)
				TU_ASSERT(overlay_bytes(s->ov) >= bytes0 + klen + vlen + 32,
					  "step %zu: insert added too few bytes", s->step);
		} else if (op < 55) { /* tombstone */
			bool was_tomb = e && e->val[0] == 'T';
			size_t old_vlen = e ? e->vlen - 1 : 0;
			rc = overlay_put(s->ov, tree, key, klen, NULL, 0, true);
			TU_ASSERT_EQ(rc, 0, "step %zu: tombstone tree %u key %s", s->step, tree,
				     fmtk(b1, sizeof(b1), key, klen));
			tu_model_put(m, key, klen, "T", 1);
			if (was_tomb)
				TU_ASSERT_EQ(overlay_bytes(s->ov), bytes0,
					     "step %zu: tombstone over tombstone moved bytes", s->step);
			else if (e)
				TU_ASSERT(overlay_bytes(s->ov) + old_vlen <= bytes0,
					  "step %zu: tombstone freed too few bytes", s->step);
		} else if (op < 75) { /* get */
			rc = overlay_get(s->ov, tree, key, klen, &v);
			int want = !e ? -ENOENT : e->val[0] == 'T' ? 0 : 1;
			TU_ASSERT_EQ(rc, want, "step %zu: get tree %u key %s", s->step, tree,
				     fmtk(b1, sizeof(b1), key, klen));
			if (want == 1)
				TU_ASSERT(v.data && v.len == e->vlen - 1 &&
						  memcmp(v.data, e->val + 1, v.len) == 0,
					  "step %zu: get tree %u key %s: value differs", s->step,
					  tree, fmtk(b1, sizeof(b1), key, klen));
			EXPECT(overlay_get(s->ov, MODEL_EMPTY_TREE, key, klen, NULL), -ENOENT);
			TU_ASSERT_EQ(overlay_bytes(s->ov), bytes0, "step %zu: get moved bytes",
				     s->step);
		} else if (op < 99) {
			model_seek(s, t, key, klen);
		} else {
			model_scan(s, t, tu_rng_chance(&s->r, 1, 2));
		}

		size_t total = 0, payload = 0;
		for (size_t i = 0; i < MODEL_NTREES; i++) {
			total += s->m[i].n;
			payload += s->m[i].bytes - s->m[i].n; /* minus the tag bytes */
		}
		TU_ASSERT_EQ(overlay_count(s->ov), total, "step %zu: count", s->step);
		TU_ASSERT(overlay_bytes(s->ov) >= payload + 32 * total &&
				  overlay_bytes(s->ov) <= 2 * payload + 256 * total,
			  "step %zu: bytes %zu for %zu entries of %zu payload bytes", s->step,
			  overlay_bytes(s->ov), total, payload);
		if (s->step % MODEL_SCAN_EVERY == MODEL_SCAN_EVERY - 1)
			model_full_check(s);
	}
	model_full_check(s);

	for (size_t t = 0; t < MODEL_NTREES; t++) {
		overlay_iter_free(s->it[t]);
		tu_model_free(&s->m[t]);
	}
	overlay_free(s->ov);
	free(s->vbuf);
	free(s);
	tu_seed_end();
}

/* Loop test: iteration i runs seed 1000 + i; KVFS_SEED=N runs only N (in iteration 0). */
/* A key of test_finger_runs: u as 4 big-endian bytes. */
static void fr_key(uint8_t k[4], uint32_t u)
{
	k[0] = (uint8_t)(u >> 24);
	k[1] = (uint8_t)(u >> 16);
	k[2] = (uint8_t)(u >> 8);
	k[3] = (uint8_t)u;
}

/*
 * The finger (INV-7 of store/overlay.c): runs of puts in ascending key order, as the engine
 * applies a kvfs_batch, into an overlay that already holds keys between them (an insertion
 * whose neighbours are all on other levels, and one right after the last with none between,
 * both occur).  After every run, every seek and seek_le over the whole key range (they
 * descend through every level, so a link spliced at the wrong place on any level shows) and
 * the walk are compared with a bitmap of the keys present.  Keys of tree 1 go in too, between
 * runs of tree 0, so the finger also crosses trees.
 */
START_TEST(test_finger_runs)
{
	enum { U = 3000, ROUNDS = 30, RUN = 120 };
	struct overlay *ov = ov_new_ok();
	struct overlay_iter *it = iter_ok(ov, 0);
	static bool present[U];
	struct tu_rng r;
	uint64_t seed = tu_seed("KVFS_SEED", 7);
	uint8_t k[4];
	uint32_t run[RUN];

	memset(present, 0, sizeof(present));
	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < RUN; i++) /* sorted, with runs of neighbours */
			run[i] = i && tu_rng_chance(&r, 1, 3) ? run[i - 1] + 1 :
								     (uint32_t)tu_rng_below(&r, U);
		for (int i = 1; i < RUN; i++)
			for (int j = i; j > 0 && run[j] < run[j - 1]; j--) {
				uint32_t t = run[j];
				run[j] = run[j - 1];
				run[j - 1] = t;
			}
		for (int i = 0; i < RUN; i++) {
			if (run[i] >= U)
				continue;
			fr_key(k, run[i]);
			OK(overlay_put(ov, 0, k, 4, k, 4, false));
			present[run[i]] = true;
		}
		fr_key(k, (uint32_t)tu_rng_below(&r, U));
		OK(overlay_put(ov, 1, k, 4, NULL, 0, true));
		size_t n = 0;
		for (uint32_t u = 0; u < U; u++)
			n += present[u];
		TU_ASSERT(overlay_count(ov) >= n, "round %d: %zu entries, %zu keys", round,
			  overlay_count(ov), n);
		int next = -1, prev = -1; /* the first key >= u, the last <= u */
		for (int u = U - 1; u >= 0; u--) {
			if (present[u])
				next = u;
			fr_key(k, (uint32_t)u);
			struct store_val kv;
			int rc = overlay_iter_seek(it, k, 4);
			TU_ASSERT(next < 0 ? rc == -ENOENT : rc == 0, "round %d: seek %d: rc %d", round,
				  u, rc);
			if (rc == 0) {
				overlay_iter_get(it, &kv, NULL, NULL);
				fr_key(k, (uint32_t)next);
				TU_ASSERT(kv.len == 4 && memcmp(kv.data, k, 4) == 0,
					  "round %d: seek %d did not land on %d", round, u, next);
			}
		}
		for (int u = 0; u < U; u++) {
			if (present[u])
				prev = u;
			fr_key(k, (uint32_t)u);
			struct store_val kv;
			int rc = overlay_iter_seek_le(it, k, 4);
			TU_ASSERT(prev < 0 ? rc == -ENOENT : rc == 0, "round %d: seek_le %d: rc %d",
				  round, u, rc);
			if (rc == 0) {
				overlay_iter_get(it, &kv, NULL, NULL);
				fr_key(k, (uint32_t)prev);
				TU_ASSERT(kv.len == 4 && memcmp(kv.data, k, 4) == 0,
					  "round %d: seek_le %d did not land on %d", round, u, prev);
			}
		}
		size_t walked = 0;
		for (int rc = overlay_iter_first(it); rc == 0; rc = overlay_iter_next(it))
			walked++;
		EXPECT(walked, n);
	}
	tu_seed_end();
	overlay_iter_free(it);
	overlay_free(ov);
}
END_TEST

START_TEST(test_model)
{
	uint64_t seed;
	bool given = tu_seed_given("KVFS_SEED", &seed);
	unsigned ops = MODEL_OPS;

	if (given && _i != 0)
		return;
	if (!given)
		seed = 1000 + (uint64_t)_i;
	if (getenv("KVFS_MODEL_OPS"))
		ops = (unsigned)atoi(getenv("KVFS_MODEL_OPS"));
	model_run(seed, ops);
}
END_TEST

/* ---- memory -------------------------------------------------------------------------- */

#define MEM_ENTRIES 100000

START_TEST(test_memory)
{
	struct tu_rng r;
	uint8_t key[16], val[128];
	size_t payload = 0;
#if !defined(OV_ASAN) && defined(__GLIBC__)
	struct mallinfo2 before = mallinfo2();
#endif
	struct overlay *ov = ov_new_ok();
	struct overlay_iter *it = iter_ok(ov, 1);

	tu_rng_init(&r, 4242);
	for (uint32_t i = 0; i < MEM_ENTRIES; i++) {
		/* Distinct keys in a scrambled order: a byte-swapped counter plus random tail. */
		uint32_t be = __builtin_bswap32(i * 2654435761u);
		size_t klen = 4 + tu_rng_below(&r, 8);
		memcpy(key, &be, 4);
		tu_rng_bytes(&r, key + 4, klen - 4);
		size_t vlen = tu_rng_below(&r, sizeof(val));
		tu_rng_bytes(&r, val, vlen);
		bool tomb = tu_rng_chance(&r, 1, 10);
		OK(overlay_put(ov, i % 3, key, klen, val, vlen, tomb));
		payload += klen + (tomb ? 0 : vlen);
		if (tu_rng_chance(&r, 1, 5)) { /* replace: the old value must be freed */
			size_t v2 = tu_rng_below(&r, sizeof(val));
			OK(overlay_put(ov, i % 3, key, klen, val, v2, false));
			payload += v2 - (tomb ? 0 : vlen);
		}
	}
	EXPECT(overlay_count(ov), MEM_ENTRIES);
	TU_ASSERT(overlay_bytes(ov) >= payload + 32u * MEM_ENTRIES, "bytes %zu, payload %zu",
		  overlay_bytes(ov), payload);

	/* Forward and backward counts of one tree agree. */
	size_t fwd = 0, bwd = 0;
	for (int rc = overlay_iter_first(it); rc == 0; rc = overlay_iter_next(it))
		fwd++;
	for (int rc = overlay_iter_last(it); rc == 0; rc = overlay_iter_prev(it))
		bwd++;
	EXPECT(fwd, bwd);
	EXPECT(fwd, (MEM_ENTRIES + 1) / 3);

#if !defined(OV_ASAN) && defined(__GLIBC__)
	/* Honesty: what malloc holds for the entries, within 10% of what the overlay reports.
	 * (Only where the glibc allocator is the one in use.) */
	struct mallinfo2 after = mallinfo2();
	size_t used = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
	if (after.uordblks > before.uordblks) {
		double ratio = (double)overlay_bytes(ov) / (double)used;
		TU_ASSERT(ratio > 0.9 && ratio < 1.1, "overlay_bytes %zu, malloc reports %zu",
			  overlay_bytes(ov), used);
	}
#endif
	overlay_iter_free(it);
	overlay_free(ov); /* LeakSanitizer reports anything left */
}
END_TEST

/* ---- suite --------------------------------------------------------------------------- */

static Suite *overlay_suite(void)
{
	Suite *s = suite_create("overlay");
	TCase *tc;

	tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_put_get);
	tcase_add_test(tc, test_trees_isolated);
	tcase_add_test(tc, test_iteration);
	tcase_add_test(tc, test_walk);
	tcase_add_test(tc, test_accounting);
	tcase_add_test(tc, test_put_ref);
	tcase_add_test(tc, test_lsn);
	suite_add_tcase(s, tc);

	tc = tcase_create("edge");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_key_lengths);
	tcase_add_test(tc, test_empty_values);
	tcase_add_test(tc, test_big_value);
	tcase_add_test(tc, test_prefix_keys);
	tcase_add_test(tc, test_tree_numbers);
	tcase_add_test(tc, test_enomem);
	suite_add_tcase(s, tc);

	tc = tcase_create("model");
	tcase_set_timeout(tc, 60); /* per seed */
	tcase_add_loop_test(tc, test_model, 0, MODEL_SEEDS);
	tcase_add_test(tc, test_finger_runs);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_memory);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(overlay_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
