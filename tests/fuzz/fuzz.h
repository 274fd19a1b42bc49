/*
 * tests/fuzz/fuzz.h — what the four libFuzzer harnesses of tests/fuzz/ share, and their entry
 * points.
 *
 * Each harness is one file with one entry point, fuzz_<name>_one(data, size), that takes
 * arbitrary bytes, drives the library with them and returns 0.  It never judges an error
 * return (a corrupt input is expected to be refused); it aborts only when the library breaks
 * a promise that holds whatever the bytes (a store that verifies clean must read back what it
 * lists, a put must read back).  The sanitizers catch the rest: a crash, an out-of-bounds
 * access, undefined behaviour, a leak.  Built with -DKVFS_LIBFUZZER, a harness file also
 * defines LLVMFuzzerTestOneInput calling its entry point (tests/fuzz/fuzz.cmake); without it
 * the entry points are plain functions that tests/check_fuzz_regress.c calls on the seed
 * corpus and on every input that once crashed (tests/fuzz/regress.c), so a bug found by
 * fuzzing stays fixed in the ordinary gcc build.
 *
 *   store   the input is a data file (STORE): store_open read-only, walk and verify.
 *   wal     the input is a log file (STORE-wal) and an LSN: wal_inspect, wal_recover (read-only
 *           and writable, then an append that must replay), engine_record_decode.
 *   keys    the input is a key and a value: kvfs_put/get/exists/list/delete on a live store.
 *   check   the input is a data file and a log: kvfs-check -n, then -y on a copy.
 *
 * Checksums.  Every page and log record carries a checksum that a mutated input almost never
 * matches, which would stop the fuzzer at the first check.  The store, wal and check inputs
 * therefore start with a flags byte; with FUZZ_FIXUP set the harness recomputes the checksums
 * (fuzz_fixup_store, fuzz_fixup_wal) before the library sees the bytes, so the mutations reach
 * the parsers behind the checksums.  Without it the bytes are used as they are, and the
 * checksum checks themselves are exercised.
 *
 * Not thread-safe; one input at a time, as libFuzzer calls them.
 */
#ifndef KVFS_TESTS_FUZZ_H
#define KVFS_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/io_fault.h"

/* Flags byte (the first byte of a store, wal or check input). */
#define FUZZ_FIXUP 0x01 /* recompute checksums before use */

/* Size caps: bigger inputs are cut (data files to whole pages). */
#define FUZZ_STORE_MAX_PAGES 64
#define FUZZ_WAL_MAX_BYTES (4096 + (256u << 10))
/* A log header whose ring_bytes exceeds this is clamped by fuzz_fixup_wal (recovery scans the
 * whole ring; a 1 TiB ring of zeros is a slow input, not a bug). */
#define FUZZ_WAL_MAX_RING (4ull << 20)

/* The harnesses' entry points: 0 always (a broken promise aborts). */
int fuzz_store_one(const uint8_t *data, size_t size);
int fuzz_wal_one(const uint8_t *data, size_t size);
int fuzz_keys_one(const uint8_t *data, size_t size);
int fuzz_check_one(const uint8_t *data, size_t size);

/* Close and free the keys harness's store (it keeps one per process); the next input opens
 * a new empty one.  For the replay suite, between its cases. */
void fuzz_keys_reset(void);

/* A diagnostic sink for the library's log callbacks: drops every line (set KVFS_FUZZ_LOG in
 * the environment to print them on stderr). */
void fuzz_log(void *ctx, const char *line);

/* Create `path` on machine `m` holding exactly buf[len].  0 or -errno. */
int fuzz_put_file(struct io_fault *m, const char *path, const void *buf, size_t len);

/* Recompute the checksums of a data file image buf[len] (len a multiple of 4096): each meta
 * page whose magic holds, and each later page whose type byte says branch or leaf. */
void fuzz_fixup_store(uint8_t *buf, size_t len);

/* Recompute the checksums of a log image buf[len]: the header's when its magic holds (after
 * clamping ring_bytes to [WAL_MIN_RING, FUZZ_WAL_MAX_RING]), and every record-shaped header in
 * the ring: an 8-aligned place whose lsn field is the place's own LSN modulo the ring and
 * whose size fits the image. */
void fuzz_fixup_wal(uint8_t *buf, size_t len);

/* Abort with a message on stderr: a promise the library made was broken. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Little-endian load of up to 8 bytes from a possibly short input (missing bytes read 0). */
uint64_t fuzz_ld(const uint8_t *p, size_t avail, size_t n);

#endif
