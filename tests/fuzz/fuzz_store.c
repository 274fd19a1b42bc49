/*
 * tests/fuzz/fuzz_store.c — fuzz harness: arbitrary bytes as a data file (STORE), opened
 * read-only by the B+tree store (store/store.h) on an in-memory io_fault machine.
 *
 * Input: a flags byte (FUZZ_FIXUP: recompute page checksums first), then the file, padded with
 * zeros to whole pages and cut at FUZZ_STORE_MAX_PAGES.  When store_open accepts it: verify
 * it, walk the engine's trees t0..t7 and one tree named by the input's last bytes with cursors
 * forward and backward, store_get every key walked, seek and prefix-bound, store_stat.
 *
 * Promises checked (abort when broken): every call returns (no hang, no crash) and frees what
 * it took; when store_verify says the store is clean, the walks agree with it — forward and
 * backward see the same keys in strictly increasing order, as many as store_tree_count, and
 * store_get finds each key with the value the cursor showed.  Error returns are not judged.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tests/fuzz/fuzz.h"

/* A corrupt tree might send a cursor round a cycle; a 64-page store holds far fewer keys. */
#define WALK_MAX 100000

static int key_cmp(const struct store_val *a, const struct store_val *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->data, b->data, n);
	if (c)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

struct walked {
	uint8_t **keys;
	size_t *klens;
	size_t n, cap;
};

static void walked_add(struct walked *w, const struct store_val *k)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		w->keys = realloc(w->keys, cap * sizeof(*w->keys));
		w->klens = realloc(w->klens, cap * sizeof(*w->klens));
		if (!w->keys || !w->klens)
			fuzz_fail("out of memory");
		w->cap = cap;
	}
	w->keys[w->n] = malloc(k->len ? k->len : 1);
	if (!w->keys[w->n])
		fuzz_fail("out of memory");
	memcpy(w->keys[w->n], k->data, k->len);
	w->klens[w->n++] = k->len;
}

static void walked_free(struct walked *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->keys[i]);
	free(w->keys);
	free(w->klens);
}

/* Walk one tree.  `clean`: store_verify found nothing wrong, so every promise must hold. */
static void walk_tree(struct store_tree *t, const char *name, bool clean, const uint8_t *probe,
		      size_t plen)
{
	struct store_cursor *c;
	struct walked fw = { 0 };
	struct store_val k, v, prev = { 0 };
	int r;

	if (store_cursor_open(t, &c) < 0)
		return;
	/* Forward. */
	for (r = store_cursor_first(c); r == 0 && fw.n < WALK_MAX; r = store_cursor_next(c)) {
		/* -EUCLEAN for a damaged overflow value (store_cursor_get's ent_value) */
		if ((r = store_cursor_get(c, &k, &v)) != 0) {
			if (clean || r != -EUCLEAN)
				fuzz_fail("%s: cursor positioned but get: %d", name, r);
			break;
		}
		if (clean && fw.n && key_cmp(&prev, &k) >= 0)
			fuzz_fail("%s: clean store, keys out of order at %zu", name, fw.n);
		walked_add(&fw, &k);
		prev.data = fw.keys[fw.n - 1];
		prev.len = fw.klens[fw.n - 1];
		/* The value is readable in full (a bad overflow reference would fault here). */
		volatile uint8_t sink = 0;
		for (size_t i = 0; i < v.len; i += 512)
			sink ^= ((const uint8_t *)v.data)[i];
		if (v.len)
			sink ^= ((const uint8_t *)v.data)[v.len - 1];
		(void)sink;
	}
	if (fw.n >= WALK_MAX)
		fuzz_fail("%s: cursor walked %d keys in a store of at most %d pages (a cycle?)",
			  name, WALK_MAX, FUZZ_STORE_MAX_PAGES);
	if (clean && r != -ENOENT)
		fuzz_fail("%s: clean store, forward walk ended with %d", name, r);
	if (clean && fw.n != store_tree_count(t))
		fuzz_fail("%s: clean store, walked %zu keys, count says %llu", name, fw.n,
			  (unsigned long long)store_tree_count(t));

	/* Backward: the same keys in reverse. */
	size_t nb = 0;
	for (r = store_cursor_last(c); r == 0 && nb < WALK_MAX; r = store_cursor_prev(c), nb++) {
		if ((r = store_cursor_get(c, &k, NULL)) != 0)
			fuzz_fail("%s: cursor positioned but key get: %d", name, r);
		if (clean) {
			if (nb >= fw.n)
				fuzz_fail("%s: clean store, backward walk longer than forward", name);
			struct store_val want = { fw.keys[fw.n - 1 - nb], fw.klens[fw.n - 1 - nb] };
			if (key_cmp(&want, &k) != 0)
				fuzz_fail("%s: clean store, backward walk differs at %zu", name, nb);
		}
	}
	if (nb >= WALK_MAX)
		fuzz_fail("%s: backward walk of %d keys (a cycle?)", name, WALK_MAX);
	if (clean && (r != -ENOENT || nb != fw.n))
		fuzz_fail("%s: clean store, backward walk %zu keys (end %d), forward %zu", name, nb,
			  r, fw.n);

	/* Point lookups of what was walked. */
	for (size_t i = 0; i < fw.n; i++) {
		struct store_val gv;
		r = store_get(t, fw.keys[i], fw.klens[i], &gv);
		if (clean && r != 0)
			fuzz_fail("%s: clean store, walked key %zu not found (%d)", name, i, r);
		if (clean && store_cursor_seek(c, fw.keys[i], fw.klens[i]) == 0) {
			store_cursor_get(c, &k, &v);
			struct store_val want = { fw.keys[i], fw.klens[i] };
			if (key_cmp(&want, &k) != 0 || v.len != gv.len ||
			    (v.len && memcmp(v.data, gv.data, v.len) != 0))
				fuzz_fail("%s: clean store, seek and get disagree on key %zu", name,
					  i);
		} else if (clean) {
			fuzz_fail("%s: clean store, seek to walked key %zu failed", name, i);
		}
	}

	/* Probes from the input: a seek, a bounded and a prefix walk. */
	if (plen) {
		store_cursor_seek(c, probe, plen);
		if (store_cursor_set_prefix(c, probe, plen > 4 ? 4 : plen) == 0)
			for (size_t i = 0, ok = store_cursor_first(c) == 0; ok && i < WALK_MAX; i++)
				ok = store_cursor_next(c) == 0;
		if (store_cursor_set_range(c, probe, plen / 2, probe + plen / 2, plen - plen / 2) ==
		    0)
			for (size_t i = 0, ok = store_cursor_last(c) == 0; ok && i < WALK_MAX; i++)
				ok = store_cursor_prev(c) == 0;
		struct store_val gv;
		store_get(t, probe, plen, &gv);
	}
	store_cursor_close(c);
	walked_free(&fw);
}

static void count_report(void *ctx, const char *line)
{
	(*(unsigned *)ctx)++;
	fuzz_log(NULL, line);
}

int fuzz_store_one(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	data++;
	size--;
	size_t pages = (size + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE;
	if (pages > FUZZ_STORE_MAX_PAGES)
		pages = FUZZ_STORE_MAX_PAGES;
	size_t len = pages * STORE_PAGE_SIZE;
	uint8_t *buf = calloc(1, len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size < len ? size : len);
	if (flags & FUZZ_FIXUP)
		fuzz_fixup_store(buf, len);
	/* Probe bytes for lookups: the input's tail (up to 16 bytes). */
	size_t plen = size < 16 ? size : 16;
	const uint8_t *probe = data + size - plen;

	struct io_fault *m = io_fault_new(1);
	if (!m || fuzz_put_file(m, "/s", buf, len) < 0)
		fuzz_fail("cannot set up the machine");
	free(buf);

	struct store_options so = {
		.flags = STORE_RDONLY, .io = io_fault_env(m), .log = fuzz_log,
	};
	struct store *st;
	if (store_open("/s", &so, &st) == 0) {
		unsigned problems = 0;
		int vr = store_verify(st, count_report, &problems);
		if (vr == 0 && problems)
			fuzz_fail("store_verify returned 0 after reporting %u problems", problems);
		if (vr == -EUCLEAN && !problems)
			fuzz_fail("store_verify returned -EUCLEAN without reporting a problem");
		bool clean = vr == 0;
		struct store_stat ss;
		int sr = store_stat(st, &ss);
		if (clean && sr != 0)
			fuzz_fail("clean store, store_stat %d", sr);
		struct store_txn *txn;
		if (store_txn_begin(st, STORE_TXN_RDONLY, &txn) == 0) {
			char name[8];
			for (unsigned i = 0; i <= 8; i++) {
				struct store_tree *t;
				const char *tn = name;
				size_t tl;
				if (i < 8) {
					tl = (size_t)snprintf(name, sizeof(name), "t%u", i);
				} else {
					tn = (const char *)probe;
					tl = plen;
				}
				if (tl && store_tree_open(txn, tn, tl, false, &t) == 0)
					walk_tree(t, i < 8 ? name : "probe", clean, probe, plen);
			}
			store_txn_abort(txn);
		} else if (clean) {
			fuzz_fail("clean store, read transaction refused");
		}
		store_close(st);
	}
	io_fault_free(m);
	return 0;
}

#ifdef KVFS_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_store_one(data, size);
}
#endif
