/*
 * tests/testutil_fault.c — whole-store states, errno names, log matching, io_fault machine
 * copies and checkable values for the fault, corrupt and concurrency suites.  The contract of
 * every function is in tests/testutil_fault.h.
 *
 * Invariant: a tf_state's names[] never change after tf_state_init; present[i] is true
 * whenever m[i] is non-empty.
 */
#define _GNU_SOURCE
#include "tests/testutil_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. Whole-store states ------------------------------------------------------------ */

void tf_state_init(struct tf_state *s, const char *const *names, size_t n)
{
	TU_ASSERT(n <= TF_MAX_TREES, "%zu trees", n);
	memset(s, 0, sizeof(*s));
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		s->names[i] = names[i];
		tu_model_init(&s->m[i]);
	}
}

void tf_state_free(struct tf_state *s)
{
	for (size_t i = 0; i < s->n; i++)
		tu_model_free(&s->m[i]);
	s->n = 0;
}

void tf_state_copy(struct tf_state *dst, const struct tf_state *src)
{
	if (dst->n)
		tf_state_free(dst);
	memset(dst, 0, sizeof(*dst));
	dst->n = src->n;
	for (size_t i = 0; i < src->n; i++) {
		dst->names[i] = src->names[i];
		dst->present[i] = src->present[i];
		tu_model_init(&dst->m[i]);
		tu_model_copy(&dst->m[i], &src->m[i]);
	}
}

size_t tf_state_tree(const struct tf_state *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return i;
	tu_fail(__FILE__, __LINE__, "tree %s is not in the state", name);
}

void tf_state_put(struct tf_state *s, const char *tree, const void *key, size_t klen,
		  const void *val, size_t vlen)
{
	size_t i = tf_state_tree(s, tree);

	s->present[i] = true;
	tu_model_put(&s->m[i], key, klen, val, vlen);
}

void tf_state_del(struct tf_state *s, const char *tree, const void *key, size_t klen)
{
	(void)tu_model_del(&s->m[tf_state_tree(s, tree)], key, klen);
}

static int load_tree(struct store_tree *t, struct tu_model *m)
{
	struct store_cursor *c = NULL;
	uint64_t count = store_tree_count(t);
	int rc = store_cursor_open(t, &c);

	if (rc)
		return rc;
	for (rc = store_cursor_first(c); rc == 0; rc = store_cursor_next(c)) {
		struct store_val k, v;
		rc = store_cursor_get(c, &k, &v);
		if (rc)
			break;
		tu_model_put(m, k.data, k.len, v.data, v.len);
	}
	store_cursor_close(c);
	if (rc == -ENOENT)
		rc = count == m->n ? 0 : -EPROTO;
	return rc;
}

int tf_state_load(struct store *st, struct tf_state *s)
{
	struct store_txn *txn = NULL;
	int rc = store_txn_begin(st, STORE_TXN_RDONLY, &txn);

	if (rc)
		return rc;
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		struct store_tree *t = NULL;
		tu_model_clear(&s->m[i]);
		rc = store_tree_open(txn, s->names[i], strlen(s->names[i]), false, &t);
		s->present[i] = rc == 0;
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = load_tree(t, &s->m[i]);
	}
	store_txn_abort(txn);
	return rc;
}

int tf_state_cmp(const struct tf_state *a, const struct tf_state *b, char *msg, size_t len)
{
	char sub[512];

	if (a->n != b->n) {
		snprintf(msg, len, "states over %zu vs %zu trees", a->n, b->n);
		return -1;
	}
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->names[i], b->names[i]) != 0) {
			snprintf(msg, len, "tree %zu: %s vs %s", i, a->names[i], b->names[i]);
			return -1;
		}
		if (a->present[i] != b->present[i]) {
			snprintf(msg, len, "tree %s: %s vs %s", a->names[i],
				 a->present[i] ? "present" : "absent",
				 b->present[i] ? "present" : "absent");
			return -1;
		}
		if (tu_model_cmp(&a->m[i], &b->m[i], sub, sizeof(sub)) != 0) {
			snprintf(msg, len, "tree %s: %s", a->names[i], sub);
			return -1;
		}
	}
	if (len)
		msg[0] = 0;
	return 0;
}

int tf_state_expect_ok(struct store *st, const struct tf_state *a, const struct tf_state *b,
		       const char *what)
{
	struct tf_state got;
	char m1[600], m2[600], log[2048];
	int rc, which = -1;

	tf_state_init(&got, a->names, a->n);
	rc = tf_state_load(st, &got);
	if (rc)
		tu_fail(__FILE__, __LINE__, "%s: loading the store's contents = %d (%s); log: %s",
			what, rc, tf_errname(rc), tu_log_text(log, sizeof(log)));
	if (tf_state_cmp(&got, a, m1, sizeof(m1)) == 0)
		which = 0;
	else if (b && tf_state_cmp(&got, b, m2, sizeof(m2)) == 0)
		which = 1;
	tf_state_free(&got);
	if (which < 0)
		tu_fail(__FILE__, __LINE__, "%s: contents are neither state: vs before: %s%s%s",
			what, m1, b ? "; vs after: " : "", b ? m2 : "");
	return which;
}

/* ---- 2. Errors ------------------------------------------------------------------------ */

const char *tf_errname(long long rc)
{
	static char buf[32];

	switch (rc) {
	case 0: return "0";
	case -EIO: return "EIO";
	case -ENOSPC: return "ENOSPC";
	case -EUCLEAN: return "EUCLEAN";
	case -EINVAL: return "EINVAL";
	case -ENOENT: return "ENOENT";
	case -ENOMEM: return "ENOMEM";
	case -EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case -EBUSY: return "EBUSY";
	case -EROFS: return "EROFS";
	case -EFBIG: return "EFBIG";
	case -EEXIST: return "EEXIST";
	case -EPROTO: return "EPROTO";
	default:
		snprintf(buf, sizeof(buf), "%lld", rc);
		return buf;
	}
}

/* ---- 3. Log matching ------------------------------------------------------------------ */

static bool text_names_page(const char *text, uint64_t pgno)
{
	char needle[40];
	int n = snprintf(needle, sizeof(needle), "page %" PRIu64, pgno);

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += n) {
		char next = p[n];
		if (next < '0' || next > '9')
			return true;
	}
	return false;
}

bool tf_log_names_any(const uint64_t *pages, size_t n)
{
	size_t len = 256 * 1024;
	char *text = malloc(len);
	bool found = false;

	TU_ASSERT(text != NULL, "%s", "out of memory");
	tu_log_text(text, len);
	for (size_t i = 0; i < n && !found; i++)
		found = text_names_page(text, pages[i]);
	free(text);
	return found;
}

bool tf_log_names_page(uint64_t pgno)
{
	return tf_log_names_any(&pgno, 1);
}

/* ---- 4. io_fault machines ------------------------------------------------------------- */

struct io_fault *tf_machine_copy(const struct io_fault *m, uint64_t seed)
{
	struct io_fault *c = io_fault_reboot(m, seed);

	TU_ASSERT(c != NULL, "%s", "io_fault_reboot failed");
	return c;
}

uint8_t *tf_image_read(struct io_fault *m, const char *path, size_t *len)
{
	int64_t size = io_fault_file_size(m, path);

	*len = 0;
	if (size == -ENOENT)
		return NULL;
	TU_ASSERT(size >= 0, "io_fault_file_size(%s) = %lld", path, (long long)size);
	uint8_t *img = malloc(size ? (size_t)size : 1);
	TU_ASSERT(img != NULL, "%s", "out of memory");
	if (size) {
		int rc = io_fault_peek(m, path, 0, img, (size_t)size);
		TU_ASSERT_EQ(rc, 0, "io_fault_peek(%s, 0, %lld)", path, (long long)size);
	}
	*len = (size_t)size;
	return img;
}

bool tf_image_equal(struct io_fault *m, const char *path, const uint8_t *img, size_t len)
{
	size_t now_len;
	uint8_t *now = tf_image_read(m, path, &now_len);
	bool same = (now == NULL) == (img == NULL) && now_len == len &&
		    (len == 0 || memcmp(now, img, len) == 0);

	free(now);
	return same;
}

void tf_flip(struct io_fault *m, const char *path, uint64_t off, uint8_t mask)
{
	uint8_t b;
	int rc = io_fault_peek(m, path, off, &b, 1);

	TU_ASSERT_EQ(rc, 0, "io_fault_peek(%s, %" PRIu64 ")", path, off);
	b ^= mask;
	rc = io_fault_poke(m, path, off, &b, 1);
	TU_ASSERT_EQ(rc, 0, "io_fault_poke(%s, %" PRIu64 ")", path, off);
}

/* ---- 5. Values ------------------------------------------------------------------------ */

static uint64_t value_word(uint64_t tag, size_t len, size_t i)
{
	uint64_t x = tag * 0x9e3779b97f4a7c15ULL ^ (uint64_t)len << 32 ^ (uint64_t)i;

	return tu_splitmix64(&x);
}

void tf_value_fill(uint8_t *buf, size_t len, uint64_t tag)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = value_word(tag, len, i / 8);
		size_t n = len - i < 8 ? len - i : 8;
		memcpy(buf + i, &w, n);
	}
}

bool tf_value_check(const uint8_t *buf, size_t len, uint64_t tag)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = value_word(tag, len, i / 8);
		size_t n = len - i < 8 ? len - i : 8;
		if (memcmp(buf + i, &w, n) != 0)
			return false;
	}
	return true;
}

void tf_distinct_cuts(struct io_fault *m, int n, const enum io_fault_cut_mode *modes,
		      const uint64_t *seeds, struct io_fault **out, uint64_t *dups)
{
	uint64_t sig[n];

	for (int v = 0; v < n; v++) {
		out[v] = io_fault_cut_copy(m, modes[v], seeds[v], &sig[v]);
		TU_ASSERT(out[v] != NULL, "%s", "io_fault_cut_copy");
		for (int w = 0; w < v; w++) {
			if (out[w] && sig[w] == sig[v]) {
				io_fault_free(out[v]);
				out[v] = NULL;
				(*dups)++;
				break;
			}
		}
	}
}
