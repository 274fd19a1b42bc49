/*
 * tests/fuzz/regress.h — inputs that the fuzz harnesses must keep surviving: every input that
 * once crashed a harness or broke a promise (with the fix it needed), and a few hand-made edge
 * cases.  Replayed by tests/check_fuzz_regress.c; defined in tests/fuzz/regress.c.
 */
#ifndef KVFS_TESTS_FUZZ_REGRESS_H
#define KVFS_TESTS_FUZZ_REGRESS_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_regress {
	const char *harness; /* "store", "wal", "keys" or "check" */
	const char *name;    /* what it once broke, and the fix */
	size_t len;          /* the input's length in bytes */
	/* The input's bytes, sparse (the inputs are mostly zeros): records of a u32 offset, a
	 * u16 count and that many bytes, little-endian; bytes no record gives are zero. */
	const uint8_t *runs;
	size_t runs_len;
};

/* Expand entry `r` into buf[r->len]. */
void fuzz_regress_expand(const struct fuzz_regress *r, uint8_t *buf);

extern const struct fuzz_regress fuzz_regress[];
extern const size_t fuzz_n_regress;

#endif
