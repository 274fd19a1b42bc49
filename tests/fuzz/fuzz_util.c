/*
 * tests/fuzz/fuzz_util.c — helpers the fuzz harnesses share (tests/fuzz/fuzz.h): the quiet
 * log sink, putting input bytes into an io_fault machine, and the checksum fix-ups that let
 * mutated bytes past the checksums.  It knows the data file and log layouts (store/format.h,
 * wal/log.h) only as far as where their checksums are; it never decides what is valid.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/checksum.h"
#include "store/format.h"
#include "tests/fuzz/fuzz.h"
#include "wal/log.h"

void fuzz_log(void *ctx, const char *line)
{
	static int verbose = -1;

	(void)ctx;
	if (verbose < 0)
		verbose = getenv("KVFS_FUZZ_LOG") != NULL;
	if (verbose)
		fprintf(stderr, "fuzz log: %s\n", line);
}

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: broken promise: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

uint64_t fuzz_ld(const uint8_t *p, size_t avail, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && i < 8; i++)
		v |= (uint64_t)(i < avail ? p[i] : 0) << (8 * i);
	return v;
}

int fuzz_put_file(struct io_fault *m, const char *path, const void *buf, size_t len)
{
	struct io_file *f;
	int r = io_open(io_fault_env(m), path, IO_OPEN_CREATE, 0644, &f);

	if (r < 0)
		return r;
	io_close(f);
	return io_fault_poke(m, path, 0, buf, len);
}

void fuzz_fixup_store(uint8_t *buf, size_t len)
{
	for (size_t pg = 0; pg < len / STORE_PAGE_SIZE; pg++) {
		uint8_t *p = buf + pg * STORE_PAGE_SIZE;
		if (pg < META_SLOTS) {
			if (memcmp(p + META_MAGIC, STORE_MAGIC, 8) == 0)
				st64(p + META_CHECKSUM, checksum64(p + 8, STORE_PAGE_SIZE - 8, pg));
		} else if (p[PH_TYPE] == PAGE_BRANCH || p[PH_TYPE] == PAGE_LEAF) {
			st64(p + PH_CHECKSUM, checksum64(p + 8, STORE_PAGE_SIZE - 8, pg));
		}
	}
}

void fuzz_fixup_wal(uint8_t *buf, size_t len)
{
	if (len < WAL_HDR_SIZE || memcmp(buf + 8, "KVFSWAL\0", 8) != 0)
		return;
	uint64_t ring = ld64(buf + 24);
	if (ring < WAL_MIN_RING || ring > FUZZ_WAL_MAX_RING)
		ring = WAL_MIN_RING;
	ring &= ~(uint64_t)4095;
	st64(buf + 24, ring);
	st64(buf + 0, checksum64(buf + 8, WAL_HDR_SIZE - 8, 0));
	uint64_t salt = ld64(buf + 32);
	for (size_t off = WAL_HDR_SIZE; off + WAL_REC_HDR <= len; off += 8) {
		uint8_t *h = buf + off;
		uint32_t size = ld32(h);
		uint64_t lsn = ld64(h + 8);
		if (size < WAL_REC_HDR || size > len - off || lsn % ring != off - WAL_HDR_SIZE)
			continue;
		st64(h + 16, wal_record_checksum(h, h + WAL_REC_HDR, size - WAL_REC_HDR, salt));
	}
}
