/*
 * tests/fuzz/seeds.c — the fuzzers' seed corpora, made through the library on io_fault
 * machines, so no binary file is committed: small stores and their logs (a clean one after
 * close, one with named raw trees, overflow values and a free list, one with a few hundred
 * files so its trees have branch pages, a crashed one whose log holds records after the last
 * checkpoint), and some keys.
 *
 * fuzz_seeds() hands each seed, already in its harness's input layout (tests/fuzz/fuzz.h and
 * each harness's header comment), to a callback: the replay suite runs the harnesses on them
 * directly.  Built with -DFUZZ_SEEDS_MAIN it is the program `kvfs-fuzz-seeds DIR`, which
 * writes DIR/<harness>/<name> for libFuzzer (tests/fuzz/run.sh).
 *
 * Deterministic: the same library makes the same seeds, except for the log's random salt.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/format.h"
#include "store/inspect.h"
#include "store/kvfs.h"
#include "store/kvfs_env.h"
#include "store/store.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/seeds.h"
#include "wal/log.h"

struct img {
	uint8_t *data, *log;
	size_t dlen, llen;
	uint64_t lsn; /* the current meta page's LSN: where recovery starts */
};

static void img_free(struct img *im)
{
	free(im->data);
	free(im->log);
	memset(im, 0, sizeof(*im));
}

static int read_file(struct io_fault *m, const char *path, uint8_t **out, size_t *len)
{
	int64_t sz = io_fault_file_size(m, path);
	if (sz < 0)
		return (int)sz;
	*out = malloc(sz ? (size_t)sz : 1);
	if (!*out)
		return -ENOMEM;
	*len = (size_t)sz;
	return sz ? io_fault_peek(m, path, 0, *out, (size_t)sz) : 0;
}

/* Both files of store `path` as they are now; the log cut after its last nonzero byte. */
static int snapshot(struct io_fault *m, const char *path, struct img *im)
{
	char wal[64];
	int r;

	memset(im, 0, sizeof(*im));
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if ((r = read_file(m, path, &im->data, &im->dlen)) < 0)
		return r;
	if (read_file(m, wal, &im->log, &im->llen) == 0) {
		while (im->llen > WAL_HDR_SIZE && im->log[im->llen - 1] == 0)
			im->llen--;
		im->llen = (im->llen + 7) & ~(size_t)7;
		if (im->llen > FUZZ_WAL_MAX_BYTES)
			im->llen = FUZZ_WAL_MAX_BYTES;
	}
	/* The data file grows in steps: cut it after the pages either meta page uses. */
	txnid_t best = 0;
	uint64_t pages = 0;
	for (unsigned s = 0; s < 2 && (s + 1) * STORE_PAGE_SIZE <= im->dlen; s++) {
		struct meta mt;
		const char *why;
		if (meta_decode(im->data + s * STORE_PAGE_SIZE, s, &mt, &why) != 0)
			continue;
		if (mt.page_count > pages)
			pages = mt.page_count;
		if (mt.txnid > best) {
			best = mt.txnid;
			im->lsn = mt.lsn;
		}
	}
	if (pages && pages * STORE_PAGE_SIZE < im->dlen)
		im->dlen = pages * STORE_PAGE_SIZE;
	return 0;
}

static const struct kvfs_engine_tuning tuning = {
	.log_ring_bytes = WAL_MIN_RING, .no_checkpoint_thread = true,
};

static int open_kvfs(struct io_fault *m, const char *path, struct kvfs **fs)
{
	struct kvfs_options o = { .flags = KVFS_CREATE, .log = fuzz_log };
	return kvfs_open_env(path, &o, io_fault_env(m), &tuning, fs);
}

static void fill(uint8_t *p, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(tag * 131 + i * 7 + (i >> 8));
}

/* A namespace with a bit of everything: nested files, an inline and a block file, a
 * directory, a symlink, a hard link, an xattr. */
static int populate(struct kvfs *fs, unsigned tag)
{
	static uint8_t big[9000];
	struct kvfs_stat st, d;
	int r;

	fill(big, sizeof(big), tag);
	if ((r = kvfs_put(fs, "a/b/small", "hello", 5)) < 0 ||
	    (r = kvfs_put(fs, "a/block", big, sizeof(big))) < 0 ||
	    (r = kvfs_put(fs, "a/b/c/d/deep", big, 700)) < 0 ||
	    (r = kvfs_put(fs, "empty", "", 0)) < 0)
		return r;
	if ((r = kvfs_mkdir(fs, KVFS_ROOT_INO, "dir", 0750, 1000, 1000, &d)) < 0 ||
	    (r = kvfs_symlink(fs, d.ino, "link", "../a/b/small", 0, 0, &st)) < 0 ||
	    (r = kvfs_lookup(fs, KVFS_ROOT_INO, "empty", &st)) < 0 ||
	    (r = kvfs_link(fs, st.ino, d.ino, "hard", &st)) < 0 ||
	    (r = kvfs_setxattr(fs, st.ino, "user.fuzz", "xattr value", 11, 0)) < 0)
		return r;
	return 0;
}

typedef int (*emit_fn)(void *ctx, const char *harness, const char *name, const uint8_t *buf,
		       size_t len);

/* Emit a store image as inputs of the store, wal and check harnesses. */
static int emit_img(const struct img *im, const char *name, emit_fn emit, void *ctx)
{
	size_t cap = 1 + 8 + 4 + im->dlen + im->llen;
	uint8_t *buf = malloc(cap);
	char nm[96];
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (unsigned fl = 0; fl < 2 && r == 0; fl++) {
		size_t dl = im->dlen;
		if (dl > FUZZ_STORE_MAX_PAGES * STORE_PAGE_SIZE)
			dl = FUZZ_STORE_MAX_PAGES * STORE_PAGE_SIZE;
		buf[0] = (uint8_t)fl;
		memcpy(buf + 1, im->data, dl);
		snprintf(nm, sizeof(nm), "%s-%u", name, fl);
		r = emit(ctx, "store", nm, buf, 1 + dl);
		if (r || !im->log)
			continue;
		/* wal: from the meta LSN (what the engine replays) */
		buf[0] = (uint8_t)(fl ? FUZZ_FIXUP | 0x02 : 0);
		for (int i = 0; i < 8; i++)
			buf[1 + i] = (uint8_t)(im->lsn >> (8 * i));
		memcpy(buf + 9, im->log, im->llen);
		r = emit(ctx, "wal", nm, buf, 9 + im->llen);
		/* check: both files, with and without repair */
		buf[0] = (uint8_t)(fl ? FUZZ_FIXUP | 0x02 : 0);
		for (int i = 0; i < 4; i++)
			buf[1 + i] = (uint8_t)(dl >> (8 * i));
		memcpy(buf + 5, im->data, dl);
		memcpy(buf + 5 + dl, im->log, im->llen);
		if (r == 0)
			r = emit(ctx, "check", nm, buf, 5 + dl + im->llen);
	}
	free(buf);
	return r;
}

/* Raw B+tree store (store.h), no engine: named trees, overflow values, a free list. */
static int make_raw(struct io_fault *m, struct img *im)
{
	struct store_options so = { .flags = STORE_CREATE, .io = io_fault_env(m), .log = fuzz_log };
	struct store *st;
	struct store_txn *txn;
	struct store_tree *t;
	static uint8_t val[10000];
	char key[32];
	int r;

	if ((r = store_open("/raw", &so, &st)) < 0)
		return r;
	for (unsigned round = 0; round < 3; round++) {
		if ((r = store_txn_begin(st, 0, &txn)) < 0)
			goto out;
		static const char *const names[] = { "t0", "t3", "alpha" };
		for (unsigned n = 0; n < 3; n++) {
			if ((r = store_tree_open(txn, names[n], strlen(names[n]), true, &t)) < 0)
				goto abort;
			for (unsigned i = 0; i < 80; i++) {
				size_t kl = (size_t)snprintf(key, sizeof(key), "key-%03u-%u", i, n);
				size_t vl = i % 37 == 0 ? sizeof(val) : i % 9 == 0 ? 1500 : i % 40;
				fill(val, vl, i + round);
				if (round == 2 && i % 3 == 0)
					r = store_del(t, key, kl);
				else
					r = store_put(t, key, kl, val, vl);
				if (r < 0 && r != -ENOENT)
					goto abort;
			}
		}
		if ((r = store_txn_commit(txn, 0)) < 0)
			goto out;
	}
	r = store_close(st);
	st = NULL;
	if (r == 0)
		r = snapshot(m, "/raw", im);
	return r;
abort:
	store_txn_abort(txn);
out:
	store_close(st);
	return r;
}

int fuzz_seeds(emit_fn emit, void *ctx)
{
	struct io_fault *m = io_fault_new(7);
	struct kvfs *fs;
	struct img im;
	int r;

	if (!m)
		return -ENOMEM;
	/* 1. A new empty store, closed cleanly. */
	if ((r = open_kvfs(m, "/empty", &fs)) < 0 || (r = kvfs_close(fs)) < 0 ||
	    (r = snapshot(m, "/empty", &im)) < 0)
		goto out;
	r = emit_img(&im, "empty", emit, ctx);
	img_free(&im);
	if (r)
		goto out;

	/* 2. A populated store, closed cleanly (log reset, nothing to replay). */
	if ((r = open_kvfs(m, "/clean", &fs)) < 0)
		goto out;
	if ((r = populate(fs, 1)) < 0) {
		kvfs_close(fs);
		goto out;
	}
	if ((r = kvfs_close(fs)) < 0 || (r = snapshot(m, "/clean", &im)) < 0)
		goto out;
	r = emit_img(&im, "clean", emit, ctx);
	img_free(&im);
	if (r)
		goto out;

	/* 3. Crashed: reopen the clean store, change it, sync, and take the files as they are
	 *    (the log holds records after the checkpoint; nothing was closed). */
	if ((r = open_kvfs(m, "/clean", &fs)) < 0)
		goto out;
	uint8_t v[3000];
	fill(v, sizeof(v), 3);
	if ((r = kvfs_put(fs, "a/b/small", "changed", 7)) < 0 ||
	    (r = kvfs_put(fs, "new/file", v, sizeof(v))) < 0 ||
	    (r = kvfs_delete(fs, "a/block")) < 0 || (r = kvfs_sync(fs)) < 0 ||
	    (r = snapshot(m, "/clean", &im)) < 0) {
		kvfs_close(fs);
		goto out;
	}
	r = emit_img(&im, "crashed", emit, ctx);
	img_free(&im);
	kvfs_close(fs);
	if (r)
		goto out;

	/* 4. Many small files: trees with branch pages. */
	if ((r = open_kvfs(m, "/many", &fs)) < 0)
		goto out;
	for (unsigned i = 0; i < 300 && r == 0; i++) {
		char key[64];
		snprintf(key, sizeof(key), "d%u/file-%04u", i % 7, i * 37 % 1000);
		r = kvfs_put(fs, key, v, i % 50);
	}
	int cr = kvfs_close(fs);
	if (r < 0 || (r = cr) < 0 || (r = snapshot(m, "/many", &im)) < 0)
		goto out;
	r = emit_img(&im, "many", emit, ctx);
	img_free(&im);
	if (r)
		goto out;

	/* 5. A raw store with named trees, overflow values and a free list. */
	if ((r = make_raw(m, &im)) < 0)
		goto out;
	r = emit_img(&im, "raw", emit, ctx);
	img_free(&im);
	if (r)
		goto out;

	/* 6. Keys: ops byte, key, NUL, value. */
	static const struct { const char *name; uint8_t ops; const char *key; size_t vlen; } keys[] = {
		{ "plain", 0x00, "a/b/c", 5 },
		{ "keep", 0x01, "dir/file", 100 },
		{ "batch", 0x02, "x", 0 },
		{ "scan", 0x05, "s/t/u", 4100 },
		{ "dot", 0x00, "a/./b", 3 },
		{ "dotdot", 0x00, "../x", 3 },
		{ "slashes", 0x00, "a//b/", 3 },
		{ "root", 0x00, "", 3 },
		{ "bigblock", 0x07, "f", 70000 },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && r == 0; i++) {
		size_t kl = strlen(keys[i].key);
		size_t len = 1 + kl + 1 + keys[i].vlen;
		uint8_t *buf = malloc(len);
		if (!buf) {
			r = -ENOMEM;
			break;
		}
		buf[0] = keys[i].ops;
		memcpy(buf + 1, keys[i].key, kl + 1);
		fill(buf + 2 + kl, keys[i].vlen, (unsigned)i);
		r = emit(ctx, "keys", keys[i].name, buf, len);
		free(buf);
	}
	if (r == 0) {
		/* a component of 256 bytes, and one of 255 */
		uint8_t buf[1 + 300 + 1 + 2];
		buf[0] = 0;
		memset(buf + 1, 'n', 300);
		buf[1 + 256] = 0;
		buf[1 + 256 + 1] = 'v';
		r = emit(ctx, "keys", "long256", buf, 1 + 256 + 2);
		buf[1 + 255] = 0;
		if (r == 0)
			r = emit(ctx, "keys", "long255", buf, 1 + 255 + 2);
	}
out:
	io_fault_free(m);
	return r;
}

#ifdef FUZZ_SEEDS_MAIN
static int write_seed(void *ctx, const char *harness, const char *name, const uint8_t *buf,
		      size_t len)
{
	const char *dir = ctx;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, harness);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s/seed-%s", dir, harness, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -errno;
	size_t w = fwrite(buf, 1, len, f);
	if (fclose(f) != 0 || w != len)
		return -EIO;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: kvfs-fuzz-seeds DIR\n"
			"Write the fuzzers' seed corpora to DIR/{store,wal,keys,check}/.\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST) {
		perror(argv[1]);
		return 1;
	}
	int r = fuzz_seeds(write_seed, argv[1]);
	if (r < 0) {
		fprintf(stderr, "kvfs-fuzz-seeds: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
#endif
