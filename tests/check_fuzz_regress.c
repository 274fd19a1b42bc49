/*
 * tests/check_fuzz_regress.c — the fuzz harnesses of tests/fuzz/ (store, wal, keys, check) run
 * in the ordinary build, without clang or libFuzzer, so that whatever fuzzing found stays
 * fixed in CI.  A harness aborts when the library breaks a promise (tests/fuzz/fuzz.h); in
 * the sanitizer build a memory error aborts too, so each case fails by signal.
 *
 * Test cases:
 *   seeds    (core)    every seed input (tests/fuzz/seeds.c: real stores and logs made through
 *                      the library, and keys), through its harness; one loop iteration per
 *                      harness.  Also checks that each harness got seeds.
 *   regress  (corrupt) every input of tests/fuzz/regress.c (inputs that once crashed a
 *                      harness, and edge cases), through its harness.
 *   mutate   (corrupt) each store, wal and check seed mutated KVFS_FUZZ_MUTATIONS times
 *                      (default 12): 1 to 8 random bytes overwritten, half the time with the
 *                      checksum fix-up flag, and keys seeds with random bytes; a tiny
 *                      deterministic fuzzer (KVFS_SEED replays, printed on failure).
 * The keys harness keeps a store per process; each case resets it (fuzz_keys_reset).
 * kvfs-check's stdout (its report) is sent to /dev/null in the check cases.
 *
 * Cost (measured on the 2-core machine): about 1 s in the Debug build, 3 s under ASan+UBSan
 * (8 s with the other core busy); KVFS_FUZZ_MUTATIONS scales the mutate case.  Not a
 * concurrency test: nothing for the TSan build.
 * Limitation: gcc's UBSan does not flag pointer arithmetic that wraps with an offset of 2^63
 * or more (clang's does), so the store_pgno_overflow entry of regress.c fails only in a clang
 * UBSan build; the others fail in gcc's sanitizer build too.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/regress.h"
#include "tests/fuzz/seeds.h"
#include "tests/testutil.h"

#define DEFAULT_SEED 0x66757a7au /* "fuzz" */
#define DEFAULT_MUTATIONS 12

static const char *const harness_names[] = { "store", "wal", "keys", "check" };

static int run_harness(const char *harness, const uint8_t *buf, size_t len)
{
	if (strcmp(harness, "store") == 0)
		return fuzz_store_one(buf, len);
	if (strcmp(harness, "wal") == 0)
		return fuzz_wal_one(buf, len);
	if (strcmp(harness, "keys") == 0)
		return fuzz_keys_one(buf, len);
	if (strcmp(harness, "check") == 0)
		return fuzz_check_one(buf, len);
	ck_abort_msg("unknown harness %s", harness);
	return -1;
}

static void quiet_stdout(void)
{
	if (!freopen("/dev/null", "w", stdout))
		ck_abort_msg("cannot redirect stdout");
}

/* ---- seeds -------------------------------------------------------------------------------- */

struct seed_run {
	const char *harness;
	unsigned n;
	struct tu_rng *rng;   /* mutate: not NULL */
	unsigned mutations;
};

static void mutate_run(struct seed_run *sr, const char *name, const uint8_t *buf, size_t len)
{
	uint8_t *m = malloc(len);
	ck_assert_ptr_nonnull(m);
	for (unsigned i = 0; i < sr->mutations; i++) {
		memcpy(m, buf, len);
		if (strcmp(sr->harness, "keys") != 0 && len)
			m[0] = (uint8_t)((m[0] & ~FUZZ_FIXUP) | (tu_rng_chance(sr->rng, 1, 2) ?
								  FUZZ_FIXUP : 0));
		unsigned nb = (unsigned)tu_rng_range(sr->rng, 1, 8);
		for (unsigned b = 0; b < nb && len > 1; b++) {
			size_t at = 1 + (size_t)tu_rng_below(sr->rng, len - 1);
			m[at] = (uint8_t)tu_rng_next(sr->rng);
		}
		run_harness(sr->harness, m, len);
	}
	free(m);
	(void)name;
}

static int seed_emit(void *ctx, const char *harness, const char *name, const uint8_t *buf,
		     size_t len)
{
	struct seed_run *sr = ctx;
	if (strcmp(harness, sr->harness) != 0)
		return 0;
	sr->n++;
	if (sr->rng)
		mutate_run(sr, name, buf, len);
	else
		run_harness(harness, buf, len);
	return 0;
}

START_TEST(seeds)
{
	struct seed_run sr = { .harness = harness_names[_i] };
	if (strcmp(sr.harness, "check") == 0)
		quiet_stdout();
	int r = fuzz_seeds(seed_emit, &sr);
	ck_assert_msg(r == 0, "fuzz_seeds: %d", r);
	ck_assert_msg(sr.n >= 5, "harness %s got %u seeds", sr.harness, sr.n);
	fuzz_keys_reset();
}
END_TEST

START_TEST(mutate)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED + (uint64_t)_i);
	struct tu_rng rng;
	tu_rng_init(&rng, seed);
	struct seed_run sr = {
		.harness = harness_names[_i], .rng = &rng,
		.mutations = (unsigned)tu_seed("KVFS_FUZZ_MUTATIONS", DEFAULT_MUTATIONS),
	};
	if (strcmp(sr.harness, "check") == 0)
		quiet_stdout();
	tu_seed_begin("KVFS_SEED", seed);
	int r = fuzz_seeds(seed_emit, &sr);
	tu_seed_end();
	ck_assert_msg(r == 0, "fuzz_seeds: %d", r);
	fuzz_keys_reset();
}
END_TEST

/* ---- regression inputs ---------------------------------------------------------------- */

START_TEST(regress)
{
	quiet_stdout();
	ck_assert_uint_gt(fuzz_n_regress, 0);
	for (size_t i = 0; i < fuzz_n_regress; i++) {
		const struct fuzz_regress *e = &fuzz_regress[i];
		uint8_t *buf = malloc(e->len + 1);
		ck_assert_ptr_nonnull(buf);
		fuzz_regress_expand(e, buf);
		fprintf(stderr, "regress: %s: %s (%zu bytes)\n", e->harness, e->name, e->len);
		run_harness(e->harness, buf, e->len);
		free(buf);
	}
	fuzz_keys_reset();
}
END_TEST

/* The sparse tables are well formed (a typo would silently replay a different input). */
START_TEST(regress_tables)
{
	for (size_t i = 0; i < fuzz_n_regress; i++) {
		const struct fuzz_regress *e = &fuzz_regress[i];
		size_t j = 0;
		while (j + 6 <= e->runs_len) {
			const uint8_t *p = e->runs + j;
			size_t off = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
				     (size_t)p[3] << 24;
			size_t n = (size_t)p[4] | (size_t)p[5] << 8;
			j += 6;
			ck_assert_msg(n <= e->runs_len - j && off + n <= e->len,
				      "regress entry %s/%s: run at %zu out of range", e->harness,
				      e->name, j - 6);
			j += n;
		}
		ck_assert_msg(j == e->runs_len, "regress entry %s/%s: trailing bytes", e->harness,
			      e->name);
	}
}
END_TEST

static Suite *fuzz_suite(void)
{
	Suite *s = suite_create("fuzz_regress");
	TCase *core = tcase_create("core"), *corrupt = tcase_create("corrupt");

	tcase_set_timeout(core, 120);
	tcase_set_timeout(corrupt, 300);
	tcase_add_loop_test(core, seeds, 0, 4);
	tcase_add_test(corrupt, regress_tables);
	tcase_add_test(corrupt, regress);
	tcase_add_loop_test(corrupt, mutate, 0, 4);
	suite_add_tcase(s, core);
	suite_add_tcase(s, corrupt);
	return s;
}

int main(void)
{
	return tu_run_suite(fuzz_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
