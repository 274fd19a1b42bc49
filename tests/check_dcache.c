/*
 * tests/check_dcache.c — Check suite "dcache": the directory-entry cache of store/dcache.h
 * against its header comment.
 *
 * Test cases, by kind:
 *   core    add, get, invalidate, clear; an add with a sequence number taken before an
 *           invalidation is refused; names longer than DCACHE_NAME_MAX and parent 0 are never
 *           cached; an add of an entry already cached replaces its inode in place.
 *   sets    kvfs-bench's 256 directories "00".."ff" under the root all stay cached (a
 *           direct-mapped table of the same size kept ~78 % of them), and a table filled far
 *           past its size answers every hit with the right inode.
 *   model   random adds (with the sequence rule), invalidations, clears and gets against a
 *           reference map of the "engine's" dirents; a hit must equal the reference; 50 seeds x
 *           20,000 operations (KVFS_SEED=N replays one).
 *   race    a writer thread changes a dirent, then invalidates it, then publishes the change;
 *           two reader threads look up, and on a miss read the dirent after taking the
 *           sequence number and add it (yielding the CPU in between, as a slow engine read
 *           would): no hit may ever answer older than the last change
 *           published before the lookup began (the rule of dcache.h).  Run under TSan in CI.
 *
 * No timing is measured here.  Replay: CK_RUN_CASE=model KVFS_SEED=7 ./check_dcache.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/dcache.h"
#include "tests/testutil.h"

#define MODEL_SEEDS 50
#define MODEL_OPS   20000

static bool get(struct dcache *dc, uint64_t parent, const char *name, uint64_t *ino)
{
	return dcache_get(dc, parent, name, strlen(name), ino);
}

static void add(struct dcache *dc, uint64_t parent, const char *name, uint64_t ino)
{
	dcache_add(dc, parent, name, strlen(name), ino, dcache_seq(dc));
}

START_TEST(test_core)
{
	struct dcache *dc = dcache_new();
	ck_assert_ptr_nonnull(dc);
	uint64_t ino = 0;
	ck_assert(!get(dc, 1, "a", &ino));
	add(dc, 1, "a", 10);
	ck_assert(get(dc, 1, "a", &ino));
	ck_assert_uint_eq(ino, 10);
	ck_assert(!get(dc, 2, "a", &ino)); /* another parent */
	ck_assert(!get(dc, 1, "ab", &ino)); /* another name */
	add(dc, 1, "a", 11); /* replaced in place */
	ck_assert(get(dc, 1, "a", &ino));
	ck_assert_uint_eq(ino, 11);

	/* the sequence rule: taken before an invalidation, refused after it */
	uint64_t seq = dcache_seq(dc);
	dcache_invalidate(dc, 1, "a", 1);
	ck_assert(!get(dc, 1, "a", &ino));
	dcache_add(dc, 1, "b", 1, 20, seq);
	ck_assert(!get(dc, 1, "b", &ino));
	dcache_add(dc, 1, "b", 1, 20, dcache_seq(dc));
	ck_assert(get(dc, 1, "b", &ino));
	ck_assert_uint_eq(ino, 20);

	/* invalidating another name of the same parent leaves this one */
	dcache_invalidate(dc, 1, "c", 1);
	ck_assert(get(dc, 1, "b", &ino));

	/* never cached: long names, parent 0 */
	char longname[DCACHE_NAME_MAX + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	add(dc, 1, longname, 30);
	ck_assert(!get(dc, 1, longname, &ino));
	longname[DCACHE_NAME_MAX] = 0; /* exactly DCACHE_NAME_MAX: cached */
	add(dc, 1, longname, 31);
	ck_assert(get(dc, 1, longname, &ino));
	ck_assert_uint_eq(ino, 31);
	add(dc, 0, "z", 40);
	ck_assert(!get(dc, 0, "z", &ino));

	seq = dcache_seq(dc);
	dcache_clear(dc);
	ck_assert(!get(dc, 1, "b", &ino));
	ck_assert(!get(dc, 1, longname, &ino));
	dcache_add(dc, 1, "b", 1, 20, seq); /* taken before the clear */
	ck_assert(!get(dc, 1, "b", &ino));
	dcache_free(dc);
	dcache_free(NULL);
}
END_TEST

START_TEST(test_sets)
{
	struct dcache *dc = dcache_new();
	ck_assert_ptr_nonnull(dc);
	char name[32];
	for (unsigned i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "%02x", i);
		add(dc, 1, name, 1000 + i);
	}
	unsigned kept = 0;
	uint64_t ino;
	for (unsigned i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "%02x", i);
		if (get(dc, 1, name, &ino)) {
			ck_assert_uint_eq(ino, 1000 + i);
			kept++;
		}
	}
	ck_assert_msg(kept == 256, "%u of kvfs-bench's 256 directories cached", kept);

	/* far past the table's size: entries are evicted, never confused */
	for (unsigned i = 0; i < 16 * DCACHE_SLOTS; i++) {
		snprintf(name, sizeof(name), "d%u", i);
		add(dc, 2 + i % 7, name, 5000 + i);
	}
	kept = 0;
	for (unsigned i = 0; i < 16 * DCACHE_SLOTS; i++) {
		snprintf(name, sizeof(name), "d%u", i);
		if (get(dc, 2 + i % 7, name, &ino)) {
			ck_assert_uint_eq(ino, 5000 + i);
			kept++;
		}
		ck_assert(!get(dc, 2 + (i + 1) % 7, name, &ino));
	}
	ck_assert_msg(kept > 0 && kept <= DCACHE_SLOTS, "%u entries kept", kept);
	dcache_free(dc);
}
END_TEST

/* ---- model ---- */

#define M_PARENTS 4
#define M_NAMES 2048 /* per parent: 8,192 entries in all, twice the slots: evictions */

START_TEST(test_model)
{
	uint64_t seed = (uint64_t)_i + 1;
	if (tu_seed_given("KVFS_SEED", &seed) && _i > 0)
		return;
	tu_seed_begin("KVFS_SEED", seed);
	struct tu_rng rng;
	tu_rng_init(&rng, seed);
	struct dcache *dc = dcache_new();
	ck_assert_ptr_nonnull(dc);
	uint64_t truth[M_PARENTS][M_NAMES]; /* the "engine's" dirent: 0 = none */
	memset(truth, 0, sizeof(truth));
	uint64_t next_ino = 100;
	char name[16];
	for (int op = 0; op < MODEL_OPS; op++) {
		unsigned p = (unsigned)tu_rng_below(&rng, M_PARENTS);
		unsigned n = (unsigned)tu_rng_below(&rng, M_NAMES);
		uint64_t parent = 1 + p, ino;
		snprintf(name, sizeof(name), "n%u", n * 7919u);
		size_t len = strlen(name);
		switch (tu_rng_below(&rng, 10)) {
		case 0: /* a change commits, then invalidates */
		case 1:
			truth[p][n] = tu_rng_below(&rng, 3) ? next_ino++ : 0;
			dcache_invalidate(dc, parent, name, len);
			break;
		case 2: { /* a lookup that read the dirent while a change ran: refused */
			uint64_t seq = dcache_seq(dc);
			uint64_t old = truth[p][n];
			truth[p][n] = next_ino++;
			dcache_invalidate(dc, parent, name, len);
			if (old)
				dcache_add(dc, parent, name, len, old, seq);
			break;
		}
		case 3:
			if (tu_rng_below(&rng, 50) == 0)
				dcache_clear(dc);
			break;
		default: /* a lookup: a hit must be the truth; a miss reads and adds */
			if (dcache_get(dc, parent, name, len, &ino)) {
				TU_ASSERT(ino == truth[p][n], "op %d: (%llu, %s) cached %llu, dirent %llu",
					  op, (unsigned long long)parent, name,
					  (unsigned long long)ino, (unsigned long long)truth[p][n]);
			} else {
				uint64_t seq = dcache_seq(dc);
				if (truth[p][n])
					dcache_add(dc, parent, name, len, truth[p][n], seq);
			}
			break;
		}
	}
	dcache_free(dc);
	tu_seed_end();
}
END_TEST

/* ---- race ---- */

#define R_NAMES 2
#define R_CHANGES 200000

struct race {
	struct dcache *dc;
	_Atomic uint64_t dirent[R_NAMES];   /* the engine's state: version of each name */
	_Atomic uint64_t published[R_NAMES]; /* changes whose invalidation has returned */
	_Atomic bool stop;
	_Atomic uint64_t hits, stale;
};

static void *race_reader(void *arg)
{
	struct race *rc = arg;
	char name[8];
	unsigned i = 0;
	while (!atomic_load(&rc->stop)) {
		unsigned n = i++ % R_NAMES;
		snprintf(name, sizeof(name), "r%u", n);
		uint64_t floor = atomic_load(&rc->published[n]);
		uint64_t ino;
		if (dcache_get(rc->dc, 1, name, strlen(name), &ino)) {
			atomic_fetch_add(&rc->hits, 1);
			if (ino < floor)
				atomic_fetch_add(&rc->stale, 1);
		} else {
			uint64_t seq = dcache_seq(rc->dc);
			uint64_t v = atomic_load(&rc->dirent[n]);
			if (i % 2)
				sched_yield(); /* a slow engine read: the writer moves on meanwhile */
			dcache_add(rc->dc, 1, name, strlen(name), v, seq);
		}
	}
	return NULL;
}

START_TEST(test_race)
{
	struct race *rc = calloc(1, sizeof(*rc));
	ck_assert_ptr_nonnull(rc);
	rc->dc = dcache_new();
	ck_assert_ptr_nonnull(rc->dc);
	for (unsigned n = 0; n < R_NAMES; n++) {
		atomic_init(&rc->dirent[n], 1);
		atomic_init(&rc->published[n], 1);
	}
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, race_reader, rc), 0);
	char name[8];
	for (uint64_t v = 2; v < 2 + R_CHANGES; v++) {
		unsigned n = (unsigned)(v % R_NAMES);
		snprintf(name, sizeof(name), "r%u", n);
		atomic_store(&rc->dirent[n], v);               /* the change commits */
		dcache_invalidate(rc->dc, 1, name, strlen(name)); /* then invalidates */
		atomic_store(&rc->published[n], v);            /* then the call returns */
		for (int k = 0; k < 200; k++) /* let the readers look between changes */
			if (atomic_load(&rc->hits) % 64 == 0)
				sched_yield();
	}
	atomic_store(&rc->stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_msg(atomic_load(&rc->stale) == 0, "%llu of %llu hits older than a returned change",
		      (unsigned long long)atomic_load(&rc->stale),
		      (unsigned long long)atomic_load(&rc->hits));
	dcache_free(rc->dc);
	free(rc);
}
END_TEST

static Suite *dcache_suite(void)
{
	Suite *s = suite_create("dcache");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_core);
	suite_add_tcase(s, tc);
	tc = tcase_create("sets");
	tcase_add_test(tc, test_sets);
	suite_add_tcase(s, tc);
	tc = tcase_create("model");
	tcase_add_loop_test(tc, test_model, 0, MODEL_SEEDS);
	suite_add_tcase(s, tc);
	tc = tcase_create("race");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_race);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(dcache_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
