/*
 * tests/fuzz/fuzz_keys.c — fuzz harness: arbitrary keys and values through the public key API
 * (store/kvfs.h) of a live store on an in-memory io_fault machine (kvfs_open_env).
 *
 * Input: an ops byte, then the key as a C string (cut at the first NUL, at most
 * FUZZ_KEY_MAX bytes), then the value (the rest).  The store is opened once per process and
 * reused, so inputs meet the files and directories earlier inputs left; every
 * FUZZ_KEYS_REOPEN inputs it is closed (checkpoint) and reopened (log replay), every
 * FUZZ_KEYS_FRESH inputs replaced by a new empty one, which bounds memory.
 * Ops bits: 0x01 keep the file (no delete at the end), 0x02 also put/delete through a batch,
 * 0x04 also scan from the key.
 *
 * Promises checked (abort when broken): no crash, hang or leak; when kvfs_put accepts a key,
 * kvfs_get returns exactly the value, kvfs_exists says 1, listing the parent directory shows
 * the last component, kvfs_delete removes it and kvfs_exists then says 0.  When put refuses a
 * key, errors are not judged.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kvfs.h"
#include "store/kvfs_env.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_KEY_MAX 4096
#define FUZZ_VALUE_MAX (256u << 10)
#define FUZZ_KEYS_REOPEN 64
#define FUZZ_KEYS_FRESH 4096

static struct io_fault *machine;
static struct kvfs *fs;
static unsigned long n_inputs;

static const struct kvfs_engine_tuning tuning = {
	.log_ring_bytes = 16u << 20, /* > FUZZ_KEYS_REOPEN full values: never waits for room */
	.no_checkpoint_thread = true, /* deterministic: checkpoints at close only */
};

static void keys_open(void)
{
	struct kvfs_options o = {
		.flags = KVFS_CREATE, .memory_limit = 256u << 20, .log = fuzz_log,
	};
	if (!machine && !(machine = io_fault_new(1)))
		fuzz_fail("out of memory");
	int r = kvfs_open_env("/k", &o, io_fault_env(machine), &tuning, &fs);
	if (r < 0)
		fuzz_fail("cannot open the store: %d", r);
}

static void keys_close(bool fresh)
{
	int r = kvfs_close(fs);
	fs = NULL;
	if (r < 0)
		fuzz_fail("kvfs_close: %d", r);
	if (fresh) {
		io_fault_free(machine);
		machine = NULL;
	}
}

struct find {
	const char *name;
	bool found;
	unsigned n;
};

static int list_fn(void *ctx, const char *name, const struct kvfs_stat *st)
{
	struct find *f = ctx;
	if (!name[0] || strlen(name) > KVFS_NAME_MAX || strchr(name, '/'))
		fuzz_fail("kvfs_list gave a bad name \"%s\"", name);
	if (f->name && strcmp(name, f->name) == 0)
		f->found = true;
	f->n++;
	return 0;
}

static int scan_fn(void *ctx, const char *key, const struct kvfs_stat *st)
{
	struct find *f = ctx;
	return ++f->n >= 64; /* stop after a few: the walk itself is what is tested */
}

int fuzz_keys_one(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ops = data[0];
	data++;
	size--;
	size_t klen = strnlen((const char *)data, size < FUZZ_KEY_MAX ? size : FUZZ_KEY_MAX);
	char *key = malloc(klen + 1);
	if (!key)
		return 0;
	memcpy(key, data, klen);
	key[klen] = 0;
	const uint8_t *val = data + klen + (klen < size);
	size_t vlen = size - klen - (klen < size);
	if (vlen > FUZZ_VALUE_MAX)
		vlen = FUZZ_VALUE_MAX;

	if (!fs)
		keys_open();

	int pr = kvfs_put(fs, key, val, vlen);
	if (pr == 0) {
		uint8_t *got = malloc(vlen + 1);
		if (!got)
			fuzz_fail("out of memory");
		ssize_t gr = kvfs_get(fs, key, got, vlen + 1);
		if (gr != (ssize_t)vlen || (vlen && memcmp(got, val, vlen) != 0))
			fuzz_fail("put \"%s\" (%zu bytes) then get: %zd", key, vlen, gr);
		free(got);
		if (kvfs_exists(fs, key) != 1)
			fuzz_fail("put \"%s\" then exists: not 1", key);
		/* The parent directory lists the last component. */
		char *slash = strrchr(key, '/');
		struct find f = { .name = slash ? slash + 1 : key };
		if (slash)
			*slash = 0;
		int lr = kvfs_list(fs, slash ? key : "", list_fn, &f);
		if (slash)
			*slash = '/';
		if (lr != 0 || !f.found)
			fuzz_fail("put \"%s\" then list of its directory: %d, %sfound", key, lr,
				  f.found ? "" : "not ");
	} else {
		/* A refused key: the read calls must refuse (or not find) it too, without harm. */
		uint8_t tiny[8];
		kvfs_get(fs, key, tiny, sizeof(tiny));
		kvfs_exists(fs, key);
		struct find f = { 0 };
		kvfs_list(fs, key, list_fn, &f);
	}
	if (ops & 0x04) {
		struct find f = { 0 };
		kvfs_scan(fs, key, NULL, scan_fn, &f);
	}
	if (ops & 0x02) {
		struct kvfs_batch *b = kvfs_batch_new();
		if (!b)
			fuzz_fail("out of memory");
		kvfs_batch_put(b, key, val, vlen / 2);
		kvfs_batch_delete(b, key);
		kvfs_batch_put(b, key, val, vlen);
		int br = kvfs_batch_commit(fs, b);
		kvfs_batch_free(b);
		if (pr == 0 && br == 0) {
			uint8_t *got = malloc(vlen + 1);
			if (!got)
				fuzz_fail("out of memory");
			ssize_t gr = kvfs_get(fs, key, got, vlen + 1);
			if (gr != (ssize_t)vlen || (vlen && memcmp(got, val, vlen) != 0))
				fuzz_fail("batch put \"%s\" (%zu bytes) then get: %zd", key, vlen, gr);
			free(got);
		}
	}
	if (!(ops & 0x01)) {
		int dr = kvfs_delete(fs, key);
		if (pr == 0 && dr != 0)
			fuzz_fail("put \"%s\" then delete: %d", key, dr);
		if (pr == 0 && kvfs_exists(fs, key) != 0)
			fuzz_fail("delete \"%s\" then exists: not 0", key);
	}
	free(key);

	n_inputs++;
	if (n_inputs % FUZZ_KEYS_FRESH == 0)
		keys_close(true);
	else if (n_inputs % FUZZ_KEYS_REOPEN == 0)
		keys_close(false);
	return 0;
}

void fuzz_keys_reset(void)
{
	if (fs)
		keys_close(true);
	else if (machine) {
		io_fault_free(machine);
		machine = NULL;
	}
	n_inputs = 0;
}

#ifdef KVFS_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_keys_one(data, size);
}
#endif
