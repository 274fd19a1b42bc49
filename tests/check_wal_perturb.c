/*
 * tests/check_wal_perturb.c — Check suite "wal_perturb": the group commit of wal/log.c under
 * forced interleavings.  This program is built with its own copy of wal/log.c compiled with
 * KVFS_WAL_PERTURB (CMakeLists.txt), whose WAL_PERTURB() hook calls wal_perturb() below — a
 * random sched_yield (1 in 8) or a sleep of 50-550 us (1 in 64) — at the points where a
 * waiter, a flush leader and a flush's wake-ups race (wake_waiters, lead_flush,
 * wal_wait_durable).  check_wal's groupcommit case runs the same code without the hook, where
 * such races are too narrow to be hit.
 *
 * Each round opens a log on the fault-injecting machine and runs 8 workers that append a
 * record and wait for it durable, over and over, for 0.25 s; a watchdog fails the test with
 * the log's state if no wait returns for 10 s (a lost wake-up: a waiter asleep while no flush
 * runs, or while no thread will ever elect a leader).  A wait that returns 0 must find its
 * record durable (wal_stat).  Test cases:
 *   queue   workers only, 40 rounds;
 *   resets  plus a thread that calls wal_reset / wal_resize whenever the log is empty (they
 *           take the flush leader flag and sleep on flush_seq), 40 rounds;
 *   faults  plus one failed pwrite or fdatasync (EIO or a short write) per round at a random
 *           call: every wait after it returns -EIO, none hangs, 40 rounds.
 * Shown to fail: with no leader elected by wake_waiters, and with the waiter testing
 * `flushing` before it takes wq_mu, a round hangs within the first dozen (the watchdog).
 * Run under ThreadSanitizer in CI (tests/run.sh).  Seeds: KVFS_SEED=N replays round seeds.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/io_fault.h"
#include "tests/testutil.h"
#include "wal/log.h"

#define ROUNDS 40
#define WORKERS 8
#define ROUND_NS 250000000ll   /* workers run this long per round */
#define HANG_NS 10000000000ll  /* no wait returned for this long: a lost wake-up */

static _Thread_local uint32_t pert_state;

/* The hook (see the top of wal/log.c). */
void wal_perturb(void);
void wal_perturb(void)
{
	if (!pert_state)
		pert_state = (uint32_t)(uintptr_t)&pert_state | 1;
	pert_state = pert_state * 1103515245u + 12345u;
	unsigned r = (pert_state >> 16) % 64;
	if (r < 8)
		sched_yield();
	else if (r == 8)
		usleep(50 + (pert_state >> 8) % 500);
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000ll + t.tv_nsec;
}

static void quiet(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

struct round {
	struct wal *w;
	_Atomic bool stop;
	_Atomic uint64_t progress; /* waits returned */
	_Atomic uint64_t ok, eio, bad;
	uint32_t seed;
};

static void *worker(void *arg)
{
	struct round *rd = arg;
	uint8_t buf[48];
	memset(buf, 0x5a, sizeof(buf));
	pert_state = rd->seed ^ (uint32_t)(uintptr_t)&buf;
	while (!atomic_load(&rd->stop)) {
		struct iovec iov = { buf, sizeof(buf) };
		lsn_t end;
		int rc = wal_append(rd->w, 1, &iov, 1, &end);
		if (rc < 0)
			break; /* the log failed (faults): its waits were counted */
		rc = wal_wait_durable(rd->w, end);
		atomic_fetch_add(&rd->progress, 1);
		if (rc < 0) {
			atomic_fetch_add(rc == -EIO ? &rd->eio : &rd->bad, 1);
			break;
		}
		struct wal_stat st;
		wal_stat(rd->w, &st);
		if (st.durable < end)
			atomic_fetch_add(&rd->bad, 1);
		atomic_fetch_add(&rd->ok, 1);
		wal_release(rd->w, end);
	}
	return NULL;
}

static void *resetter(void *arg)
{
	struct round *rd = arg;
	pert_state = rd->seed * 7919u | 1;
	for (unsigned i = 0; !atomic_load(&rd->stop); i++) {
		int rc = (i & 1) ? wal_reset(rd->w)
				 : wal_resize(rd->w, (i & 2) ? WAL_MIN_RING : 2 * WAL_MIN_RING);
		if (rc == -EIO)
			break;
		usleep(200);
	}
	return NULL;
}

static void run_rounds(bool resets, bool faults)
{
	uint64_t base = tu_seed("KVFS_SEED", 1);
	uint64_t ok = 0, eio = 0;
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t seed = base + (uint64_t)r;
		tu_seed_begin("KVFS_SEED", seed);
		struct tu_rng rng;
		tu_rng_init(&rng, seed);
		struct io_fault *m = io_fault_new(seed);
		ck_assert_ptr_nonnull(m);
		struct wal_options o = { .io = io_fault_env(m), .create = true,
					 .ring_bytes = WAL_MIN_RING, .log = quiet };
		struct round rd = { .seed = (uint32_t)seed };
		TU_ASSERT_EQ(wal_open("/perturb-wal", &o, &rd.w), 0, "%s", "open");
		if (faults)
			io_fault_fail_at(m, 1 + tu_rng_below(&rng, 3000),
					 tu_rng_below(&rng, 2) ? IO_FAULT_EIO : IO_FAULT_SHORT);
		pthread_t t[WORKERS], rt;
		for (int i = 0; i < WORKERS; i++)
			ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &rd), 0);
		if (resets)
			ck_assert_int_eq(pthread_create(&rt, NULL, resetter, &rd), 0);
		int64_t t0 = now_ns(), last = t0;
		uint64_t seen = 0;
		for (int alive = WORKERS; alive;) {
			usleep(2000);
			uint64_t p = atomic_load(&rd.progress);
			if (p != seen) {
				seen = p;
				last = now_ns();
			}
			if (now_ns() - t0 > ROUND_NS)
				atomic_store(&rd.stop, true);
			alive = 0;
			for (int i = 0; i < WORKERS; i++) {
				if (t[i] && pthread_tryjoin_np(t[i], NULL) == EBUSY)
					alive++;
				else
					t[i] = 0;
			}
			if (alive && now_ns() - last > HANG_NS) {
				struct wal_stat st;
				wal_stat(rd.w, &st);
				tu_fail(__FILE__, __LINE__,
					"round %d: %d workers asleep for 10 s (durable %" PRIu64
					", end %" PRIu64 "): a lost wake-up", r, alive, st.durable,
					st.end);
			}
		}
		atomic_store(&rd.stop, true);
		if (resets)
			pthread_join(rt, NULL);
		TU_ASSERT_EQ(atomic_load(&rd.bad), 0, "round %d: waits that returned an error other "
			     "than -EIO, or 0 with their record not durable", r);
		ok += atomic_load(&rd.ok);
		eio += atomic_load(&rd.eio);
		wal_close(rd.w);
		io_fault_free(m);
		tu_seed_end();
	}
	fprintf(stderr, "wal_perturb%s%s: %d rounds, %" PRIu64 " waits returned durable, %" PRIu64
		" -EIO\n", resets ? " resets" : "", faults ? " faults" : "", ROUNDS, ok, eio);
	TU_ASSERT(ok > 0, "%s", "no wait returned");
	if (faults)
		TU_ASSERT(eio > 0, "%s", "no wait saw a fault");
}

START_TEST(test_queue)
{
	run_rounds(false, false);
}
END_TEST

START_TEST(test_resets)
{
	run_rounds(true, false);
}
END_TEST

START_TEST(test_faults)
{
	run_rounds(true, true);
}
END_TEST

static Suite *perturb_suite(void)
{
	Suite *s = suite_create("wal_perturb");
	const char *names[] = { "queue", "resets", "faults" };
	const TTest *tests[] = { test_queue, test_resets, test_faults };
	for (int i = 0; i < 3; i++) {
		TCase *tc = tcase_create(names[i]);
		tcase_set_timeout(tc, 300);
		tcase_add_test(tc, tests[i]);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	return tu_run_suite(perturb_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
