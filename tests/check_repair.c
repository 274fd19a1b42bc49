/*
 * tests/check_repair.c — the data-file repairs of store/repair.c (test cases "core" and
 * "corrupt"), which kvfs-check uses.
 *
 * A prepared store (POSIX files) holds two trees — "a" with small values, "b" with overflow
 * values — after several durable commits with deletes, so that its free list is not empty;
 * a model holds the contents of every commit.  Each test damages the file the way a crash, a
 * bug or a bad disk would, from store/format.h alone, runs a repair, and then requires: the
 * store opens, store_verify is clean, every key and value of the expected commit reads back
 * exactly, more commits work, and after a reopen the store is still clean and exact.
 *
 *   meta:     one meta slot corrupt (the older, then the newer): store_repair_meta rewrites it
 *             from the other; both slots then decode to the same state (the newer one, or the
 *             older one when the newer was lost);
 *   rollback: store_repair_meta with the older slot: the store is at the previous commit;
 *   rebuild:  the free list rebuilt after: meta free_pages wrong; a run shortened in a
 *             free-list chunk (a leak, page checksum fixed); a free-list page's checksum
 *             broken; a chunk naming a reachable page (free and used); the meta page's
 *             deferred runs dropped; a tree record's entries wrong (catalog value and the
 *             catalog's own record in the meta page); a clean store (a no-op commit);
 *   refusal:  a damaged tree page: store_repair_rebuild returns -EUCLEAN and the file's
 *             bytes are unchanged; a bad slot number or an invalid good slot: nothing written.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/checksum.h"
#include "store/format.h"
#include "store/inspect.h"
#include "store/page.h"
#include "store/store.h"
#include "tests/testutil.h"

#define PS STORE_PAGE_SIZE
#define N_COMMITS 5

static const char *const trees[] = { "a", "b" };

struct fixture {
	struct tu_env env;
	struct tu_model m[2];      /* the last commit */
	struct tu_model prev[2];   /* the commit before */
};

/* ---- file access, from format.h alone ---- */

static void page_rw(const char *path, pgno_t pgno, uint8_t *buf, bool write)
{
	int fd = open(path, write ? O_RDWR : O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ssize_t n = write ? pwrite(fd, buf, PS, (off_t)(pgno * PS)) :
			    pread(fd, buf, PS, (off_t)(pgno * PS));
	ck_assert_int_eq(n, PS);
	if (write)
		ck_assert_int_eq(fdatasync(fd), 0);
	close(fd);
}

static void page_fix_checksum(uint8_t *p, pgno_t pgno)
{
	st64(p + PH_CHECKSUM, checksum64(p + 8, PS - 8, pgno));
}

static int meta_read(const char *path, unsigned slot, struct meta *m)
{
	uint8_t page[PS];
	const char *why;
	page_rw(path, slot, page, false);
	return meta_decode(page, slot, m, &why);
}

/* The current slot (valid, higher txnid). */
static unsigned meta_current(const char *path, struct meta *m)
{
	struct meta m0, m1;
	int e0 = meta_read(path, 0, &m0), e1 = meta_read(path, 1, &m1);
	ck_assert(!e0 || !e1);
	unsigned s = e0 ? 1 : e1 ? 0 : m1.txnid > m0.txnid ? 1 : 0;
	*m = s ? m1 : m0;
	return s;
}

static void meta_write(const char *path, unsigned slot, const struct meta *m)
{
	uint8_t page[PS];
	meta_encode(m, slot, page);
	page_rw(path, slot, page, true);
}

static void *file_bytes(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	void *b = malloc((size_t)sb.st_size + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(pread(fd, b, (size_t)sb.st_size, 0), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return b;
}

/* ---- the prepared store ---- */

static void put(struct store_tree *t, struct tu_model *m, const char *key, size_t vlen,
		uint64_t salt)
{
	uint8_t *v = malloc(vlen + 1);
	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < vlen; i++)
		v[i] = (uint8_t)(i * 31 + salt);
	ck_assert_int_eq(store_put(t, key, strlen(key), v, vlen), 0);
	tu_model_put(m, key, strlen(key), v, vlen);
	free(v);
}

/* One durable commit: puts keys [from, to) into both trees, deletes every 5th key below
 * `to`.  `salt` varies the values. */
static void commit_batch(struct store *st, struct tu_model m[2], int from, int to, uint64_t salt)
{
	struct store_txn *txn;
	ck_assert_int_eq(store_txn_begin(st, 0, &txn), 0);
	struct store_tree *t[2];
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(store_tree_open(txn, trees[k], 1, true, &t[k]), 0);
	char key[32];
	for (int i = from; i < to; i++) {
		snprintf(key, sizeof(key), "key%06d", i);
		put(t[0], &m[0], key, 10 + (size_t)(i % 90), salt + (uint64_t)i);
		put(t[1], &m[1], key, 3000 + (size_t)(i % 7) * 1000, salt + (uint64_t)i);
	}
	for (int i = (int)(salt % 5); i < to; i += 5) {
		snprintf(key, sizeof(key), "key%06d", i);
		for (int k = 0; k < 2; k++) {
			int r = store_del(t[k], key, strlen(key));
			ck_assert(r == 0 || r == -ENOENT);
			tu_model_del(&m[k], key, strlen(key));
		}
	}
	ck_assert_int_eq(store_txn_commit(txn, 0), 0);
}

static void prepare(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	tu_env_posix(&f->env);
	struct store *st = tu_open_ok(&f->env, STORE_CREATE);
	for (int c = 0; c < N_COMMITS; c++) {
		for (int k = 0; k < 2; k++)
			tu_model_copy(&f->prev[k], &f->m[k]);
		commit_batch(st, f->m, c * 150, (c + 1) * 150, (uint64_t)c * 11);
	}
	tu_verify_ok(st);
	tu_close_ok(st);
}

static void finish(struct fixture *f)
{
	for (int k = 0; k < 2; k++) {
		tu_model_free(&f->m[k]);
		tu_model_free(&f->prev[k]);
	}
	tu_env_fini(&f->env);
}

/* The store must open, verify clean, equal `m`, take two more commits, reopen clean and
 * equal. */
static void expect_sound(struct fixture *f, struct tu_model m[2])
{
	char msg[2048];
	struct store *st;
	ck_assert_int_eq(tu_open(&f->env, 0, &st), 0);
	if (tu_verify(st, msg, sizeof(msg)) != 0)
		ck_abort_msg("not clean after repair: %s", msg);
	for (int k = 0; k < 2; k++)
		if (tu_store_cmp(st, trees[k], &m[k], msg, sizeof(msg)) != 0)
			ck_abort_msg("tree %s after repair: %s", trees[k], msg);
	commit_batch(st, m, 900, 960, 7);
	tu_verify_ok(st);
	commit_batch(st, m, 960, 1000, 8);
	tu_verify_ok(st);
	tu_close_ok(st);
	st = tu_open_ok(&f->env, 0);
	for (int k = 0; k < 2; k++)
		if (tu_store_cmp(st, trees[k], &m[k], msg, sizeof(msg)) != 0)
			ck_abort_msg("tree %s after reopen: %s", trees[k], msg);
	tu_close_ok(st);
}

/* store_verify must find a problem now (the damage is real). */
static void expect_unclean(struct fixture *f)
{
	char msg[2048];
	struct store *st;
	ck_assert_int_eq(tu_open(&f->env, 0, &st), 0);
	ck_assert_int_eq(tu_verify(st, msg, sizeof(msg)), -EUCLEAN);
	tu_close_ok(st);
}

static void rebuild_ok(struct fixture *f, uint64_t min_freed, uint64_t min_records)
{
	struct store_options o = { .log = tu_log_cb };
	struct store_repair_result res;
	ck_assert_int_eq(store_repair_rebuild(f->env.path, &o, &res), 0);
	ck_assert_uint_ge(res.pages_freed, min_freed);
	ck_assert_uint_ge(res.records_fixed, min_records);
	ck_assert_uint_gt(res.txnid, 0);
}

/* The first leaf of the current free-list tree (depth 1 or more), read into page. */
static pgno_t freedb_leaf(const char *path, uint8_t *page)
{
	struct meta m;
	meta_current(path, &m);
	ck_assert_uint_ne(m.freedb.root, 0);
	pgno_t p = m.freedb.root;
	page_rw(path, p, page, false);
	while (page_type(page) == PAGE_BRANCH) {
		p = branch_child(page_cell(page, 0));
		page_rw(path, p, page, false);
	}
	return p;
}

/* ---- meta ---- */

static void meta_case(bool newer)
{
	struct fixture f;
	prepare(&f);
	struct meta cur, other;
	unsigned s = meta_current(f.env.path, &cur);
	ck_assert_int_eq(meta_read(f.env.path, s ^ 1, &other), 0);
	ck_assert_uint_eq(other.txnid + 1, cur.txnid);
	unsigned bad = newer ? s : s ^ 1;
	uint8_t page[PS];
	page_rw(f.env.path, bad, page, false);
	page[200] ^= 0x40;
	page_rw(f.env.path, bad, page, true);
	ck_assert_int_ne(meta_read(f.env.path, bad, &other), 0);
	ck_assert_int_eq(store_repair_meta(f.env.path, NULL, bad ^ 1), 0);
	struct meta m0, m1;
	ck_assert_int_eq(meta_read(f.env.path, 0, &m0), 0);
	ck_assert_int_eq(meta_read(f.env.path, 1, &m1), 0);
	ck_assert_mem_eq(&m0, &m1, sizeof(m0));
	ck_assert_uint_eq(m0.txnid, newer ? cur.txnid - 1 : cur.txnid);
	expect_sound(&f, newer ? f.prev : f.m);
	finish(&f);
}

START_TEST(test_meta_older_slot_corrupt)
{
	meta_case(false);
}
END_TEST

START_TEST(test_meta_newer_slot_corrupt)
{
	meta_case(true);
}
END_TEST

START_TEST(test_meta_rollback)
{
	struct fixture f;
	prepare(&f);
	struct meta cur;
	unsigned s = meta_current(f.env.path, &cur);
	ck_assert_int_eq(store_repair_meta(f.env.path, NULL, s ^ 1), 0);
	struct meta now;
	meta_current(f.env.path, &now);
	ck_assert_uint_eq(now.txnid, cur.txnid - 1);
	expect_sound(&f, f.prev);
	finish(&f);
}
END_TEST

START_TEST(test_meta_refusals)
{
	struct fixture f;
	prepare(&f);
	ck_assert_int_eq(store_repair_meta(f.env.path, NULL, 2), -EINVAL);
	struct meta cur;
	unsigned s = meta_current(f.env.path, &cur);
	uint8_t page[PS];
	page_rw(f.env.path, s ^ 1, page, false);
	page[100] ^= 1;
	page_rw(f.env.path, s ^ 1, page, true);
	size_t n0, n1;
	void *before = file_bytes(f.env.path, &n0);
	/* the invalid slot is not a source */
	ck_assert_int_eq(store_repair_meta(f.env.path, NULL, s ^ 1), -EUCLEAN);
	void *after = file_bytes(f.env.path, &n1);
	ck_assert_uint_eq(n0, n1);
	ck_assert(memcmp(before, after, n0) == 0);
	free(before);
	free(after);
	/* locked by an open store */
	struct store *st;
	ck_assert_int_eq(tu_open(&f.env, 0, &st), 0);
	ck_assert_int_eq(store_repair_meta(f.env.path, NULL, s), -EBUSY);
	ck_assert_int_eq(store_repair_rebuild(f.env.path, NULL, NULL), -EBUSY);
	tu_close_ok(st);
	finish(&f);
}
END_TEST

/* ---- rebuild ---- */

START_TEST(test_rebuild_free_count)
{
	struct fixture f;
	prepare(&f);
	struct meta m;
	unsigned s = meta_current(f.env.path, &m);
	m.free_pages += 3;
	meta_write(f.env.path, s, &m);
	expect_unclean(&f);
	rebuild_ok(&f, 0, 0);
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_leak)
{
	struct fixture f;
	prepare(&f);
	uint8_t page[PS];
	pgno_t leaf = freedb_leaf(f.env.path, page);
	/* shorten the first run of the first chunk that has a run of >= 2 pages */
	bool done = false;
	for (unsigned i = 0; i < page_nkeys(page) && !done; i++) {
		const uint8_t *c = page_cell(page, i);
		uint8_t *v = (uint8_t *)leaf_val(c);
		for (uint32_t r = 0; r < leaf_vlen(c) / FREE_RUN_SIZE && !done; r++) {
			uint32_t cnt = ld32(v + r * FREE_RUN_SIZE + 8);
			if (cnt >= 2) {
				st32(v + r * FREE_RUN_SIZE + 8, cnt - 1);
				done = true;
			}
		}
	}
	ck_assert_msg(done, "no free run of 2 pages to shorten");
	page_fix_checksum(page, leaf);
	page_rw(f.env.path, leaf, page, true);
	expect_unclean(&f);
	rebuild_ok(&f, 1, 0);
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_freedb_checksum)
{
	struct fixture f;
	prepare(&f);
	uint8_t page[PS];
	pgno_t leaf = freedb_leaf(f.env.path, page);
	page[PS - 1] ^= 0x10;
	page_rw(f.env.path, leaf, page, true);
	expect_unclean(&f);
	rebuild_ok(&f, 1, 0);
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_free_and_used)
{
	struct fixture f;
	prepare(&f);
	struct meta m;
	meta_current(f.env.path, &m);
	uint8_t page[PS];
	pgno_t leaf = freedb_leaf(f.env.path, page);
	/* the first run now names the catalog's root page, which is reachable */
	uint8_t *v = (uint8_t *)leaf_val(page_cell(page, 0));
	st64(v, m.catalog.root);
	st32(v + 8, 1);
	page_fix_checksum(page, leaf);
	page_rw(f.env.path, leaf, page, true);
	expect_unclean(&f);
	rebuild_ok(&f, 0, 0);
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_deferred)
{
	struct fixture f;
	prepare(&f);
	struct meta m;
	unsigned s = meta_current(f.env.path, &m);
	if (m.n_deferred == 0) {
		/* no deferred run in this store: make one that overlaps a free-list run */
		uint8_t page[PS];
		freedb_leaf(f.env.path, page);
		const uint8_t *v = leaf_val(page_cell(page, 0));
		m.deferred[0].pgno = ld64(v);
		m.deferred[0].count = 1;
		m.n_deferred = 1;
		m.free_pages += 1;
	} else {
		m.n_deferred = 0; /* its pages leak */
		memset(m.deferred, 0, sizeof(m.deferred));
	}
	meta_write(f.env.path, s, &m);
	expect_unclean(&f);
	rebuild_ok(&f, 0, 0);
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_records)
{
	struct fixture f;
	prepare(&f);
	struct meta m;
	unsigned s = meta_current(f.env.path, &m);
	ck_assert_uint_eq(m.catalog.depth, 1); /* two trees: the catalog is one leaf */
	uint8_t page[PS];
	page_rw(f.env.path, m.catalog.root, page, false);
	for (unsigned i = 0; i < page_nkeys(page); i++) {
		uint8_t *v = (uint8_t *)leaf_val(page_cell(page, i));
		st64(v + TREC_ENTRIES, ld64(v + TREC_ENTRIES) + 5 + i);
		st64(v + TREC_PAGES, ld64(v + TREC_PAGES) - 1);
	}
	page_fix_checksum(page, m.catalog.root);
	page_rw(f.env.path, m.catalog.root, page, true);
	m.catalog.entries += 2;
	meta_write(f.env.path, s, &m);
	expect_unclean(&f);
	rebuild_ok(&f, 0, 3);
	/* the rewritten records hold the true counts: store_tree_count agrees with the model */
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_clean_store)
{
	struct fixture f;
	prepare(&f);
	struct meta before, after;
	meta_current(f.env.path, &before);
	rebuild_ok(&f, 0, 0);
	meta_current(f.env.path, &after);
	ck_assert_uint_eq(after.txnid, before.txnid + 1);
	ck_assert_uint_eq(after.lsn, before.lsn);
	expect_sound(&f, f.m);
	/* twice in a row: the pages freed by the first rebuild are free, nothing leaks */
	rebuild_ok(&f, 0, 0);
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_keeps_lsn)
{
	struct fixture f;
	prepare(&f);
	struct store *st = tu_open_ok(&f.env, 0);
	struct store_txn *txn;
	ck_assert_int_eq(store_txn_begin(st, 0, &txn), 0);
	store_txn_set_lsn(txn, 123456789);
	ck_assert_int_eq(store_txn_commit(txn, 0), 0);
	tu_close_ok(st);
	struct meta m;
	unsigned s = meta_current(f.env.path, &m);
	ck_assert_uint_eq(m.lsn, 123456789);
	m.free_pages += 1;
	meta_write(f.env.path, s, &m);
	rebuild_ok(&f, 0, 0);
	meta_current(f.env.path, &m);
	ck_assert_uint_eq(m.lsn, 123456789);
	expect_sound(&f, f.m);
	finish(&f);
}
END_TEST

START_TEST(test_rebuild_refuses_damaged_tree)
{
	struct fixture f;
	prepare(&f);
	struct meta m;
	unsigned s = meta_current(f.env.path, &m);
	m.free_pages += 1; /* something the rebuild would fix */
	meta_write(f.env.path, s, &m);
	/* a page of tree "b" (the catalog's second entry's root) */
	uint8_t page[PS];
	page_rw(f.env.path, m.catalog.root, page, false);
	const uint8_t *v = leaf_val(page_cell(page, 1));
	pgno_t root = ld64(v + TREC_ROOT_PGNO);
	page_rw(f.env.path, root, page, false);
	page[PS / 2] ^= 0x01;
	page_rw(f.env.path, root, page, true);
	size_t n0, n1;
	void *before = file_bytes(f.env.path, &n0);
	tu_log_clear();
	struct store_options o = { .log = tu_log_cb };
	ck_assert_int_eq(store_repair_rebuild(f.env.path, &o, NULL), -EUCLEAN);
	ck_assert(tu_log_contains("cannot be rebuilt"));
	void *after = file_bytes(f.env.path, &n1);
	ck_assert_uint_eq(n0, n1);
	ck_assert(memcmp(before, after, n0) == 0);
	free(before);
	free(after);
	finish(&f);
}
END_TEST

static Suite *repair_suite(void)
{
	Suite *s = suite_create("repair");
	TCase *core = tcase_create("core");
	tcase_set_timeout(core, 120);
	tcase_add_test(core, test_meta_rollback);
	tcase_add_test(core, test_meta_refusals);
	tcase_add_test(core, test_rebuild_clean_store);
	tcase_add_test(core, test_rebuild_keeps_lsn);
	suite_add_tcase(s, core);
	TCase *corrupt = tcase_create("corrupt");
	tcase_set_timeout(corrupt, 120);
	tcase_add_test(corrupt, test_meta_older_slot_corrupt);
	tcase_add_test(corrupt, test_meta_newer_slot_corrupt);
	tcase_add_test(corrupt, test_rebuild_free_count);
	tcase_add_test(corrupt, test_rebuild_leak);
	tcase_add_test(corrupt, test_rebuild_freedb_checksum);
	tcase_add_test(corrupt, test_rebuild_free_and_used);
	tcase_add_test(corrupt, test_rebuild_deferred);
	tcase_add_test(corrupt, test_rebuild_records);
	tcase_add_test(corrupt, test_rebuild_refuses_damaged_tree);
	suite_add_tcase(s, corrupt);
	return s;
}

int main(void)
{
	return tu_run_suite(repair_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
