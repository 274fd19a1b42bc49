/*
 * tests/check_ns_format.c — the INODE RECORD codec (store/ns_inode.c, store/ns_format.h,
 * man/kvfs.5 "Inode record"): v2 encode/decode, v1 decode, and a store of v1 records; and
 * embedded inodes (format version 4, man/kvfs.5 "Embedded inodes") as the engine stores them.
 *
 * Test cases:
 *   core     round trip: random inodes and extremes (times at and near INT64_MIN/MAX and
 *            negative, size/gen/rdev/blocks/parent 2^64 - 1, uid/gid/nlink/flags 2^32 - 1,
 *            every file type) encode to a v2 header of at most NS_INODE_HDR_MAX bytes that
 *            decodes to the same fields, from an exact-size buffer (ASan sees an overread)
 *            and with trailing inline bytes; every proper prefix fails; a typical regular
 *            file's header is at most 24 bytes;
 *            v1: records hand-built with the v1 offsets (kept here, as the old code wrote
 *            them) decode to the same fields, header 88 bytes.
 *   corrupt  decode on garbage: random bytes of every length 0..128, valid headers with a
 *            byte flipped or cut short, and the named malformations (INO-1): -EUCLEAN or a
 *            header length within the input, never a read past it (run under ASan); what
 *            decodes as v2 encodes back to the same bytes.
 *   store    a store whose inode records are all rewritten as v1 (engine_batch_put, as
 *            tests/damage.c does; embedded ones moved to T_INODE, as before format version
 *            4) reads back right through kvfs.h and kvfs-check -n finds it clean; a changed
 *            inode is then v2, the others stay v1, and it is still clean;
 *            kvfs-check -y repairs a v1 record's nlink and writes it as v2;
 *            embedded inodes, read raw through the engine (a read-only engine on a copy of
 *            the io_fault machine: the log replayed, nothing purged) after each change made
 *            through kvfs.h: a new file (inline and in blocks) and symlink are embedded in
 *            their dirent with an INODE REF in T_INODE, a directory is not; kvfs_link moves
 *            the record to T_INODE (nlink 2) and leaves both dirents plain; kvfs_rename moves
 *            an embedded record with its dirent and rewrites the REF; an unlink while open
 *            moves it to T_INODE (nlink 0) with an empty orphan key, and a crash then is
 *            purged at the next open; links back to 1 leave the record in T_INODE; EI-1..EI-4
 *            hold over the whole store in every state, kvfs_getattr by inode number agrees
 *            with kvfs_lookup, and the same holds after a close and reopen.
 * Replay: KVFS_SEED=N ./check_ns_format.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/engine.h"
#include "store/format.h"
#include "store/io_fault.h"
#include "store/kvfs.h"
#include "store/kvfs_env.h"
#include "store/ns_format.h"
#include "store/store.h"
#include "tests/testutil.h"

#define DEFAULT_SEED 0x696e6f64u /* "inod" */

/* The v1 header as the code before v2 wrote it (man/kvfs.5 "Inode record", version 1). */
#define V1_MODE 0
#define V1_NLINK 4
#define V1_UID 8
#define V1_GID 12
#define V1_SIZE 16
#define V1_ATIME 24
#define V1_MTIME 32
#define V1_CTIME 40
#define V1_GEN 48
#define V1_RDEV 56
#define V1_BLOCKS 64
#define V1_PARENT 72
#define V1_FLAGS 80
#define V1_HDR 88

static size_t v1_encode(const struct ns_inode *in, uint8_t *buf)
{
	st32(buf + V1_MODE, in->mode);
	st32(buf + V1_NLINK, in->nlink);
	st32(buf + V1_UID, in->uid);
	st32(buf + V1_GID, in->gid);
	st64(buf + V1_SIZE, in->size);
	st64(buf + V1_ATIME, (uint64_t)in->atime);
	st64(buf + V1_MTIME, (uint64_t)in->mtime);
	st64(buf + V1_CTIME, (uint64_t)in->ctime);
	st64(buf + V1_GEN, in->gen);
	st64(buf + V1_RDEV, in->rdev);
	st64(buf + V1_BLOCKS, in->blocks);
	st64(buf + V1_PARENT, in->parent);
	st32(buf + V1_FLAGS, in->flags);
	st32(buf + V1_FLAGS + 4, 0);
	return V1_HDR;
}

static const uint32_t types[] = { S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO,
				  S_IFSOCK };

static void assert_same(const struct ns_inode *a, const struct ns_inode *b, const char *what)
{
	TU_ASSERT(a->mode == b->mode && a->nlink == b->nlink && a->uid == b->uid &&
		  a->gid == b->gid && a->size == b->size && a->atime == b->atime &&
		  a->mtime == b->mtime && a->ctime == b->ctime && a->gen == b->gen &&
		  a->rdev == b->rdev && a->blocks == b->blocks && a->parent == b->parent &&
		  a->flags == b->flags,
		  "%s: decoded fields differ (mode %o/%o nlink %u/%u size %llu/%llu atime %lld/%lld "
		  "mtime %lld/%lld ctime %lld/%lld gen %llu/%llu blocks %llu/%llu parent %llu/%llu "
		  "flags %u/%u)", what, a->mode, b->mode, a->nlink, b->nlink,
		  (unsigned long long)a->size, (unsigned long long)b->size, (long long)a->atime,
		  (long long)b->atime, (long long)a->mtime, (long long)b->mtime,
		  (long long)a->ctime, (long long)b->ctime, (unsigned long long)a->gen,
		  (unsigned long long)b->gen, (unsigned long long)a->blocks,
		  (unsigned long long)b->blocks, (unsigned long long)a->parent,
		  (unsigned long long)b->parent, a->flags, b->flags);
}

/* A value drawn from the extremes and around them, or at random, with `bits` bits. */
static uint64_t pick(struct tu_rng *r, unsigned bits)
{
	uint64_t max = bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
	switch (tu_rng_below(r, 8)) {
	case 0: return 0;
	case 1: return max;
	case 2: return max - tu_rng_below(r, 3);
	case 3: return tu_rng_below(r, 300);
	case 4: return (1ull << tu_rng_below(r, bits)) + tu_rng_below(r, 3) - 1;
	default: return tu_rng_next(r) & max;
	}
}

static int64_t pick_time(struct tu_rng *r, int64_t mtime)
{
	switch (tu_rng_below(r, 9)) {
	case 0: return INT64_MIN;
	case 1: return INT64_MAX;
	case 2: return INT64_MIN + (int64_t)tu_rng_below(r, 3);
	case 3: return INT64_MAX - (int64_t)tu_rng_below(r, 3);
	case 4: return -(int64_t)tu_rng_below(r, 1ull << 40);
	case 5: return mtime; /* equal: omitted */
	case 6: /* near mtime, wrapping at the limits as the codec's deltas do */
		return (int64_t)((uint64_t)mtime + tu_rng_below(r, 2000000000) - 1000000000);
	case 7: return 0;
	default: return (int64_t)tu_rng_next(r);
	}
}

static void random_inode(struct tu_rng *r, struct ns_inode *in)
{
	memset(in, 0, sizeof(*in));
	in->mode = types[tu_rng_below(r, 7)] | (uint32_t)tu_rng_below(r, 010000);
	in->nlink = (uint32_t)pick(r, 32);
	in->uid = (uint32_t)pick(r, 32);
	in->gid = (uint32_t)pick(r, 32);
	in->size = pick(r, 64);
	in->mtime = tu_rng_chance(r, 1, 2) ? 1700000000000000000ll + (int64_t)tu_rng_below(r,
		    1ull << 50) : pick_time(r, 0);
	in->atime = pick_time(r, in->mtime);
	in->ctime = pick_time(r, in->mtime);
	in->gen = pick(r, 64);
	in->rdev = pick(r, 64);
	in->blocks = pick(r, 64);
	in->parent = pick(r, 64);
	in->flags = (uint32_t)pick(r, 32);
}

/* Decode rec[0..len) from a buffer of exactly len bytes (an overread is an ASan error). */
static int decode_exact(const uint8_t *rec, size_t len, struct ns_inode *out, const char **why)
{
	uint8_t *copy = malloc(len ? len : 1);
	TU_ASSERT(copy != NULL, "%s", "malloc");
	memcpy(copy, rec, len);
	int r = ns_inode_decode(copy, len, out, why);
	free(copy);
	return r;
}

static void check_roundtrip(const struct ns_inode *in, const char *what)
{
	uint8_t buf[NS_INODE_HDR_MAX + 64];
	struct ns_inode out;
	const char *why;
	size_t n = ns_inode_encode(in, buf);

	TU_ASSERT(n >= NS_INODE_V2_FIXED && n <= NS_INODE_HDR_MAX, "%s: header of %zu bytes", what,
		  n);
	TU_ASSERT(buf[2] == NS_INODE_V2, "%s: version byte %u", what, buf[2]);
	int r = decode_exact(buf, n, &out, &why);
	TU_ASSERT(r == (int)n, "%s: decode = %d (%s), header %zu", what, r, why ? why : "", n);
	assert_same(&out, in, what);
	/* with inline bytes after it: the same header */
	memset(buf + n, 0xa5, 64);
	r = decode_exact(buf, n + 64, &out, &why);
	TU_ASSERT(r == (int)n, "%s: decode with 64 trailing bytes = %d", what, r);
	assert_same(&out, in, what);
	for (size_t cut = 0; cut < n; cut++) {
		r = decode_exact(buf, cut, &out, &why);
		TU_ASSERT(r == -EUCLEAN && why != NULL, "%s: a %zu-byte prefix of a %zu-byte header "
			  "decodes (%d)", what, cut, n, r);
	}
}

/* ---- core ---------------------------------------------------------------------------- */

START_TEST(test_roundtrip)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED);
	struct tu_rng r;
	struct ns_inode in;
	char what[64];

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	/* every field at its extreme alone, then all at once */
	for (unsigned t = 0; t < 7; t++) {
		memset(&in, 0, sizeof(in));
		in.mode = types[t] | 07777;
		check_roundtrip(&in, "zero");
		in = (struct ns_inode){ .mode = types[t] | 07777, .nlink = UINT32_MAX,
			.uid = UINT32_MAX, .gid = UINT32_MAX, .size = UINT64_MAX,
			.atime = INT64_MIN, .mtime = INT64_MAX, .ctime = INT64_MIN + 1,
			.gen = UINT64_MAX, .rdev = makedev(0xfffff, 0xfff00), .blocks = UINT64_MAX,
			.parent = UINT64_MAX, .flags = UINT32_MAX };
		check_roundtrip(&in, "max");
		uint8_t buf[NS_INODE_HDR_MAX];
		in.rdev = UINT64_MAX;
		in.atime = in.ctime = INT64_MIN; /* the longest deltas: 2^64 - 1 zig-zagged */
		in.mtime = INT64_MAX;
		check_roundtrip(&in, "longest");
		TU_ASSERT(ns_inode_encode(&in, buf) <= NS_INODE_HDR_MAX, "%s", "longest header");
		in.mtime = INT64_MIN;
		in.atime = INT64_MAX;
		in.ctime = -1;
		check_roundtrip(&in, "negative mtime");
	}
	for (int i = 0; i < 50000; i++) {
		random_inode(&r, &in);
		snprintf(what, sizeof(what), "random inode %d", i);
		check_roundtrip(&in, what);
	}
	/* a regular file created now: inline, 100 bytes, uid/gid 1000, all times equal */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	in = (struct ns_inode){ .mode = S_IFREG | 0644, .nlink = 1, .uid = 1000, .gid = 1000,
		.size = 100, .atime = now, .mtime = now, .ctime = now, .gen = 1,
		.flags = INODE_INLINE };
	uint8_t buf[NS_INODE_HDR_MAX];
	size_t n = ns_inode_encode(&in, buf);
	TU_ASSERT(n <= 24, "a new 100-byte file's header takes %zu bytes", n);
	in.uid = in.gid = 0;
	TU_ASSERT(ns_inode_encode(&in, buf) == 17, "%s", "root's new 100-byte file: 17 bytes");
	tu_seed_end();
}
END_TEST

START_TEST(test_v1_decode)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED);
	struct tu_rng r;
	struct ns_inode in, out;
	uint8_t buf[V1_HDR + 100];
	const char *why;

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	for (int i = 0; i < 50000; i++) {
		random_inode(&r, &in);
		if (i < 7)
			in.mode = types[i] | 07777;
		size_t n = v1_encode(&in, buf);
		size_t tail = tu_rng_below(&r, 101);
		tu_rng_bytes(&r, buf + n, tail);
		int rc = decode_exact(buf, n + tail, &out, &why);
		TU_ASSERT(rc == V1_HDR, "v1 record %d: decode = %d (%s)", i, rc, why ? why : "");
		assert_same(&out, &in, "v1 record");
		TU_ASSERT(why == NULL, "%s", "why set on success");
		rc = decode_exact(buf, V1_HDR - 1 - tu_rng_below(&r, V1_HDR - 3), &out, &why);
		TU_ASSERT(rc == -EUCLEAN && why, "a cut v1 header decodes (%d)", rc);
	}
	tu_seed_end();
}
END_TEST

/* ---- corrupt ------------------------------------------------------------------------- */

static void expect_bad(const uint8_t *rec, size_t len, const char *what)
{
	struct ns_inode out;
	const char *why = NULL;
	int r = decode_exact(rec, len, &out, &why);
	TU_ASSERT(r == -EUCLEAN && why != NULL, "%s: decode = %d", what, r);
}

/* Whatever rec holds: -EUCLEAN, or a header within it that is canonical (INO-1). */
static void decode_any(const uint8_t *rec, size_t len)
{
	struct ns_inode out;
	const char *why = NULL;
	uint8_t again[NS_INODE_HDR_MAX];
	int r = decode_exact(rec, len, &out, &why);
	if (r < 0) {
		TU_ASSERT(r == -EUCLEAN && why != NULL, "decode = %d", r);
		return;
	}
	TU_ASSERT(r >= (int)NS_INODE_V2_FIXED && (size_t)r <= len, "header of %d bytes in %zu", r,
		  len);
	if (rec[2] == NS_INODE_V2) {
		size_t n = ns_inode_encode(&out, again);
		TU_ASSERT(n == (size_t)r && memcmp(again, rec, n) == 0,
			  "a v2 header of %d bytes decodes, but encodes back to %zu other bytes", r,
			  n);
	} else {
		TU_ASSERT(r == V1_HDR && rec[2] == 0 && rec[3] == 0, "v1 header of %d bytes", r);
	}
}

START_TEST(test_garbage)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED);
	struct tu_rng r;
	uint8_t buf[NS_INODE_HDR_MAX + 128];
	struct ns_inode in;

	tu_seed_begin("KVFS_SEED", seed);
	tu_rng_init(&r, seed);
	/* the named malformations */
	in = (struct ns_inode){ .mode = S_IFREG | 0644, .nlink = 1, .size = 5, .mtime = 7,
		.gen = 1, .flags = INODE_INLINE };
	size_t n = ns_inode_encode(&in, buf);
	decode_any(buf, n);
	for (unsigned v = 1; v < 256; v++) {
		if (v == NS_INODE_V2)
			continue;
		buf[2] = (uint8_t)v;
		expect_bad(buf, n, "an unknown version byte");
	}
	buf[2] = NS_INODE_V2;
	st16(buf + 3, (uint16_t)(ld16(buf + 3) | 0x1000));
	expect_bad(buf, n, "an unknown present bit");
	n = ns_inode_encode(&in, buf);
	memcpy(buf + n, "\x00", 1);
	st16(buf + 3, (uint16_t)(ld16(buf + 3) | 1u << NS_IN_RDEV));
	expect_bad(buf, n + 1, "a present field of zero"); /* rdev after gen, before flags */
	/* mode, version, present = size only, then a size varint */
	uint8_t v2[32] = { 0xa4, 0x81, NS_INODE_V2, 1u << NS_IN_SIZE, 0 };
	memcpy(v2 + 5, "\x85\x00", 2);
	expect_bad(v2, 7, "a varint with a redundant last byte");
	memcpy(v2 + 5, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
	expect_bad(v2, 15, "a varint of 65 bits");
	memcpy(v2 + 5, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
	expect_bad(v2, 16, "an 11-byte varint");
	memcpy(v2 + 5, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
	decode_any(v2, 15); /* 2^64 - 1: fine */
	v2[3] = 1u << NS_IN_NLINK;
	memcpy(v2 + 5, "\x80\x80\x80\x80\x10", 5);
	expect_bad(v2, 10, "a 32-bit field of 2^32");
	memcpy(v2 + 5, "\xff\xff\xff\xff\x0f", 5);
	decode_any(v2, 10); /* 2^32 - 1: fine */
	v2[3] = 1u << NS_IN_MTIME;
	expect_bad(v2, 12, "a 7-byte mtime");
	uint8_t v1[V1_HDR] = { 0xa4, 0x81, 0, 1 };
	expect_bad(v1, V1_HDR, "a v1 mode above 16 bits");
	v1[3] = 0;
	decode_any(v1, V1_HDR);
	expect_bad(v1, V1_HDR - 1, "an 87-byte v1 header");

	/* random bytes, every length */
	for (int i = 0; i < 200000; i++) {
		size_t len = tu_rng_below(&r, 129);
		tu_rng_bytes(&r, buf, len);
		if (len > 2 && tu_rng_chance(&r, 1, 2))
			buf[2] = tu_rng_chance(&r, 1, 4) ? 0 : NS_INODE_V2; /* get past the tag */
		if (len > 4 && tu_rng_chance(&r, 1, 2))
			buf[4] &= 0x0f;
		decode_any(buf, len);
	}
	/* valid headers, damaged: a byte flipped, cut or grown */
	for (int i = 0; i < 200000; i++) {
		random_inode(&r, &in);
		n = ns_inode_encode(&in, buf);
		size_t len = n;
		switch (tu_rng_below(&r, 3)) {
		case 0:
			buf[tu_rng_below(&r, n)] ^= (uint8_t)(1u << tu_rng_below(&r, 8));
			break;
		case 1:
			buf[tu_rng_below(&r, n)] = (uint8_t)tu_rng_next(&r);
			len = tu_rng_below(&r, n + 1);
			break;
		default:
			len = n + tu_rng_below(&r, 20);
			tu_rng_bytes(&r, buf + n, len - n);
			buf[tu_rng_below(&r, len)] = (uint8_t)tu_rng_next(&r);
			break;
		}
		decode_any(buf, len);
	}
	tu_seed_end();
}
END_TEST

/* ---- store --------------------------------------------------------------------------- */

static int run_check(const char *path, const char *opt, char *out, size_t cap)
{
	const char *bin = getenv("KVFS_CHECK_BIN");
	char cmd[2 * PATH_MAX + 64];

#ifdef KVFS_CHECK_BIN /* built with the suite (tests/checker.cmake) */
	if (!bin)
		bin = KVFS_CHECK_BIN;
#else
	if (!bin)
		bin = "./kvfs-check";
#endif
	TU_ASSERT(access(bin, X_OK) == 0, "kvfs-check %s is not there", bin);
	snprintf(cmd, sizeof(cmd), "'%s' %s '%s' 2>&1", bin, opt, path);
	FILE *f = popen(cmd, "r");
	TU_ASSERT(f != NULL, "popen %s", cmd);
	size_t got = fread(out, 1, cap - 1, f);
	out[got] = 0;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static struct kvfs *open_ok(const char *path, unsigned flags)
{
	struct kvfs_options o;
	struct kvfs *fs = NULL;

	memset(&o, 0, sizeof(o));
	o.flags = flags;
	o.log = tu_log_cb;
	TU_ASSERT_EQ(kvfs_open(path, &o, &fs), 0, "kvfs_open(%s)", path);
	return fs;
}

static struct engine *engine_ok(const char *path)
{
	struct engine_options eo;
	struct engine *e = NULL;

	memset(&eo, 0, sizeof(eo));
	eo.log = tu_log_cb;
	eo.no_checkpoint_thread = true;
	TU_ASSERT_EQ(engine_open(path, &eo, &e), 0, "engine_open(%s)", path);
	return e;
}

/* The version byte of inode `ino`'s record: 0 (v1) or NS_INODE_V2; its length in *len. */
static unsigned version_of(struct engine *e, uint64_t ino, size_t *len)
{
	uint8_t k[8], v[NS_INODE_HDR_ANY + SYMLINK_MAX + 1];
	size_t vlen;
	struct ns_inode h;
	ino_key(k, ino);
	TU_ASSERT_EQ(engine_get(e, T_INODE, k, 8, v, sizeof(v), &vlen), 0, "inode %llu",
		     (unsigned long long)ino);
	TU_ASSERT(vlen <= sizeof(v) && ns_inode_decode(v, vlen, &h, NULL) > 0,
		  "inode %llu: %zu bytes that do not decode", (unsigned long long)ino, vlen);
	if (len)
		*len = vlen;
	return v[2];
}

/*
 * Rewrite every inode record of the closed store as v1, its tail kept, as a store written
 * before v2 holds them; returns their count.  Such a store predates embedded inodes (format
 * version 4) too: an embedded record (an INODE REF in T_INODE) is moved to T_INODE and its
 * dirent rewritten plain.
 */
static size_t rewrite_v1(const char *path)
{
	struct engine *e = engine_ok(path);
	struct engine_batch *b = engine_batch_new();
	struct engine_iter *it;
	uint8_t k[8], v[DIRENT_VALUE + NS_INODE_HDR_ANY + SYMLINK_MAX + 1];
	uint8_t out[V1_HDR + SYMLINK_MAX + 1], dk[8 + KVFS_NAME_MAX];
	size_t klen, vlen, n = 0;
	struct ns_inode h;
	int r;

	TU_ASSERT(b != NULL, "%s", "engine_batch_new");
	TU_ASSERT_EQ(engine_iter_new(e, T_INODE, NULL, 0, NULL, 0, &it), 0, "%s", "iter");
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, v, sizeof(v), &vlen)) == 0) {
		TU_ASSERT(klen == 8 && vlen <= sizeof(v), "inode key %zu, value %zu", klen, vlen);
		const uint8_t *rec = v;
		if (ns_is_ref(v, vlen)) { /* embedded: the record is in the dirent it names */
			uint64_t parent;
			const uint8_t *name;
			size_t nlen, dkl;
			TU_ASSERT_EQ(ns_ref_decode(v, vlen, &parent, &name, &nlen), 0,
				     "inode %llu: a malformed REF", (unsigned long long)ldbe64(k));
			dkl = dirent_key(dk, parent, (const char *)name, nlen);
			TU_ASSERT_EQ(engine_get(e, T_DIRENT, dk, dkl, v, sizeof(v), &vlen), 0,
				     "inode %llu: its REF's dirent", (unsigned long long)ldbe64(k));
			TU_ASSERT(vlen > DIRENT_VALUE && vlen <= sizeof(v) && ld64(v) == ldbe64(k),
				  "inode %llu: its REF's dirent is not embedded (%zu bytes)",
				  (unsigned long long)ldbe64(k), vlen);
			TU_ASSERT_EQ(engine_batch_put(b, T_DIRENT, dk, dkl, v, DIRENT_VALUE), 0,
				     "%s", "put a plain dirent");
			rec = v + DIRENT_VALUE;
			vlen -= DIRENT_VALUE;
		}
		int hl = ns_inode_decode(rec, vlen, &h, NULL);
		TU_ASSERT(hl > 0 && rec[2] == NS_INODE_V2, "inode %llu: not a v2 record",
			  (unsigned long long)ldbe64(k));
		size_t ol = v1_encode(&h, out);
		memcpy(out + ol, rec + hl, vlen - (size_t)hl);
		TU_ASSERT_EQ(engine_batch_put(b, T_INODE, k, 8, out, ol + vlen - (size_t)hl), 0,
			     "%s", "put");
		n++;
	}
	TU_ASSERT_EQ(r, -ENOENT, "%s", "iter end");
	engine_iter_free(it);
	TU_ASSERT_EQ(engine_commit(e, b, NULL), 0, "%s", "commit");
	engine_batch_free(b);
	TU_ASSERT_EQ(engine_checkpoint(e), 0, "%s", "checkpoint");
	TU_ASSERT_EQ(engine_close(e), 0, "%s", "engine_close");
	return n;
}

#define N_NODES 7
static const char *const names[N_NODES] = { "small", "big", "dir", "link", "fifo", "dev",
					     "hard" };

static void stat_all(struct kvfs *fs, uint64_t dir, struct kvfs_stat st[N_NODES])
{
	struct kvfs_stat d;
	TU_ASSERT_EQ(kvfs_lookup(fs, KVFS_ROOT_INO, "d", &d), 0, "%s", "lookup d");
	TU_ASSERT_EQ(d.ino, dir, "%s", "d");
	for (int i = 0; i < N_NODES; i++)
		TU_ASSERT_EQ(kvfs_lookup(fs, dir, names[i], &st[i]), 0, "lookup %s", names[i]);
}

static void same_stat(const struct kvfs_stat *a, const struct kvfs_stat *b, const char *what)
{
	TU_ASSERT(a->ino == b->ino && a->mode == b->mode && a->nlink == b->nlink &&
		  a->uid == b->uid && a->gid == b->gid && a->rdev == b->rdev &&
		  a->size == b->size && a->blocks == b->blocks && a->atime_ns == b->atime_ns &&
		  a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
		  a->generation == b->generation, "%s: attributes differ after the v1 rewrite",
		  what);
}

START_TEST(test_v1_store)
{
	struct tu_env env;
	struct kvfs_stat st[N_NODES], again[N_NODES], d;
	static uint8_t big[3 * BLOCK + 100];
	static char out[16384];
	uint8_t small[100];
	char rd[sizeof(big)];

	tu_env_posix(&env);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + 1);
	memset(small, 's', sizeof(small));
	struct kvfs *fs = open_ok(env.path, KVFS_CREATE);
	TU_ASSERT_EQ(kvfs_mkdir(fs, KVFS_ROOT_INO, "d", 0750, 1000, 100, &d), 0, "%s", "mkdir");
	TU_ASSERT_EQ(kvfs_put(fs, "d/small", small, sizeof(small)), 0, "%s", "put small");
	TU_ASSERT_EQ(kvfs_put(fs, "d/big", big, sizeof(big)), 0, "%s", "put big");
	TU_ASSERT_EQ(kvfs_mkdir(fs, d.ino, "dir", 0700, 7, 8, &st[2]), 0, "%s", "mkdir dir");
	TU_ASSERT_EQ(kvfs_symlink(fs, d.ino, "link", "../somewhere/else", 0, 0, &st[3]), 0, "%s",
		     "symlink");
	TU_ASSERT_EQ(kvfs_mknod(fs, d.ino, "fifo", S_IFIFO | 0600, 0, 5, 6, &st[4]), 0, "%s",
		     "fifo");
	TU_ASSERT_EQ(kvfs_mknod(fs, d.ino, "dev", S_IFCHR | 0600, makedev(4, 64), 0, 0, &st[5]),
		     0, "%s", "mknod");
	TU_ASSERT_EQ(kvfs_lookup(fs, d.ino, "small", &st[0]), 0, "%s", "lookup small");
	TU_ASSERT_EQ(kvfs_link(fs, st[0].ino, d.ino, "hard", &st[6]), 0, "%s", "link");
	struct kvfs_stat sa = { .atime_ns = -5, .mtime_ns = INT64_MAX - 1 };
	TU_ASSERT_EQ(kvfs_setattr(fs, st[5].ino, &sa, KVFS_SET_ATIME | KVFS_SET_MTIME, &st[5]), 0,
		     "%s", "setattr");
	stat_all(fs, d.ino, st);
	TU_ASSERT_EQ(kvfs_close(fs), 0, "%s", "close");

	size_t n = rewrite_v1(env.path);
	TU_ASSERT(n == N_NODES + 1, "%zu inode records rewritten", n); /* + root + d - hard */
	struct engine *e = engine_ok(env.path);
	TU_ASSERT_EQ(version_of(e, KVFS_ROOT_INO, NULL), 0, "%s", "the root is v1");
	TU_ASSERT_EQ(version_of(e, st[1].ino, NULL), 0, "%s", "big is v1");
	TU_ASSERT_EQ(engine_close(e), 0, "%s", "engine_close");
	TU_ASSERT_EQ(run_check(env.path, "-n", out, sizeof(out)), 0, "kvfs-check -n on v1:\n%s",
		     out);

	/* read through kvfs.h: the same attributes, data, target */
	fs = open_ok(env.path, 0);
	stat_all(fs, d.ino, again);
	for (int i = 0; i < N_NODES; i++)
		same_stat(&again[i], &st[i], names[i]);
	TU_ASSERT_EQ(kvfs_read(fs, st[0].ino, rd, sizeof(rd), 0), (ssize_t)sizeof(small), "%s",
		     "read small");
	TU_ASSERT(memcmp(rd, small, sizeof(small)) == 0, "%s", "small's bytes");
	TU_ASSERT_EQ(kvfs_read(fs, st[1].ino, rd, sizeof(rd), 0), (ssize_t)sizeof(big), "%s",
		     "read big");
	TU_ASSERT(memcmp(rd, big, sizeof(big)) == 0, "%s", "big's bytes");
	ssize_t tl = kvfs_readlink(fs, st[3].ino, rd, sizeof(rd));
	TU_ASSERT(tl == 17 && memcmp(rd, "../somewhere/else", 17) == 0, "readlink = %zd", tl);
	struct kvfs_stat fst;
	struct kvfs_stats ks;
	TU_ASSERT_EQ(kvfs_stats(fs, &ks), 0, "%s", "kvfs_stats"); /* a walk of the inode tree */
	TU_ASSERT(ks.files == 5 && ks.dirs == 3 && ks.bytes == sizeof(small) + sizeof(big),
		  "kvfs_stats: %llu files, %llu dirs, %llu bytes", (unsigned long long)ks.files,
		  (unsigned long long)ks.dirs, (unsigned long long)ks.bytes);

	/* a change: that inode (and the directory changed with it) becomes v2 */
	TU_ASSERT_EQ(kvfs_write(fs, st[0].ino, "XY", 2, 10), 2, "%s", "write small");
	TU_ASSERT_EQ(kvfs_close(fs), 0, "%s", "close");
	e = engine_ok(env.path);
	size_t len;
	TU_ASSERT_EQ(version_of(e, st[0].ino, &len), NS_INODE_V2, "%s", "small is now v2");
	TU_ASSERT(len < V1_HDR + sizeof(small) - 60, "small's v2 record is %zu bytes", len);
	TU_ASSERT_EQ(version_of(e, st[1].ino, NULL), 0, "%s", "big is still v1");
	TU_ASSERT_EQ(version_of(e, st[3].ino, NULL), 0, "%s", "link is still v1");
	TU_ASSERT_EQ(engine_close(e), 0, "%s", "engine_close");
	TU_ASSERT_EQ(run_check(env.path, "-n", out, sizeof(out)), 0, "kvfs-check -n, v1 + v2:\n%s",
		     out);
	fs = open_ok(env.path, 0);
	TU_ASSERT_EQ(kvfs_read(fs, st[0].ino, rd, sizeof(rd), 0), (ssize_t)sizeof(small), "%s",
		     "read small");
	TU_ASSERT(memcmp(rd, "ssssssssssXYsss", 15) == 0, "%s", "small's new bytes");
	TU_ASSERT_EQ(kvfs_close(fs), 0, "%s", "close");

	/* kvfs-check -y fixes a v1 record's nlink and writes it as v2, inline bytes kept */
	e = engine_ok(env.path);
	struct engine_batch *b = engine_batch_new();
	uint8_t k[8], rec[V1_HDR + SYMLINK_MAX + 1];
	size_t vlen;
	ino_key(k, st[3].ino);
	TU_ASSERT_EQ(engine_get(e, T_INODE, k, 8, rec, sizeof(rec), &vlen), 0, "%s", "get link");
	TU_ASSERT(vlen == V1_HDR + 17 && rec[2] == 0, "link's record: %zu bytes", vlen);
	st32(rec + V1_NLINK, 3);
	TU_ASSERT_EQ(engine_batch_put(b, T_INODE, k, 8, rec, vlen), 0, "%s", "put");
	TU_ASSERT_EQ(engine_commit(e, b, NULL), 0, "%s", "commit");
	engine_batch_free(b);
	TU_ASSERT_EQ(engine_close(e), 0, "%s", "engine_close");
	TU_ASSERT_EQ(run_check(env.path, "-n", out, sizeof(out)), 4, "kvfs-check -n:\n%s", out);
	TU_ASSERT(strstr(out, "NS_NLINK") != NULL, "no NS_NLINK:\n%s", out);
	TU_ASSERT_EQ(run_check(env.path, "-y", out, sizeof(out)), 1, "kvfs-check -y:\n%s", out);
	TU_ASSERT_EQ(run_check(env.path, "-n", out, sizeof(out)), 0, "after -y:\n%s", out);
	e = engine_ok(env.path);
	TU_ASSERT_EQ(version_of(e, st[3].ino, &len), NS_INODE_V2, "%s", "link is now v2");
	TU_ASSERT_EQ(engine_close(e), 0, "%s", "engine_close");
	fs = open_ok(env.path, 0);
	TU_ASSERT_EQ(kvfs_getattr(fs, st[3].ino, &fst), 0, "%s", "getattr link");
	TU_ASSERT(fst.nlink == 1 && fst.size == 17, "link: nlink %u size %llu", fst.nlink,
		  (unsigned long long)fst.size);
	tl = kvfs_readlink(fs, st[3].ino, rd, sizeof(rd));
	TU_ASSERT(tl == 17 && memcmp(rd, "../somewhere/else", 17) == 0, "readlink = %zd", tl);
	TU_ASSERT_EQ(kvfs_close(fs), 0, "%s", "close");
	tu_env_fini(&env);
}
END_TEST

/* ---- embedded inodes (format version 4) ---------------------------------------------- */

/* The largest T_DIRENT or T_INODE value: a plain entry's bytes, a header, a symlink's target. */
#define EI_VALUE_MAX (DIRENT_VALUE + NS_INODE_HDR_ANY + SYMLINK_MAX + 1)
#define EI_MAX_INOS 64 /* the test's stores are small */

/*
 * The store at env->path as a crash of the process would leave it now (a copy of the machine,
 * every pending write kept: io_fault_cut_copy), opened by the engine read-only: the log
 * replayed, no orphan purged, nothing written.  The copy is *copy; raw_close frees both.
 */
static struct engine *raw_open(struct tu_env *env, struct io_fault **copy)
{
	struct engine_options eo;
	struct engine *e = NULL;

	*copy = io_fault_cut_copy(env->m, IO_CUT_KEEP_ALL, 1, NULL);
	TU_ASSERT(*copy != NULL, "%s", "io_fault_cut_copy");
	memset(&eo, 0, sizeof(eo));
	eo.flags = STORE_RDONLY;
	eo.io = io_fault_env(*copy);
	eo.no_checkpoint_thread = true;
	eo.log = tu_log_cb;
	TU_ASSERT_EQ(engine_open(env->path, &eo, &e), 0, "engine_open(%s) read-only", env->path);
	return e;
}

static void raw_close(struct engine *e, struct io_fault *copy)
{
	TU_ASSERT_EQ(engine_close(e), 0, "%s", "engine_close (read-only)");
	io_fault_free(copy);
}

/* T_DIRENT[(parent, name)] into v (EI_VALUE_MAX bytes): 0 or engine_get's error. */
static int dirent_raw(struct engine *e, uint64_t parent, const char *name, uint8_t *v,
		      size_t *vlen)
{
	uint8_t k[8 + KVFS_NAME_MAX];
	size_t kl = dirent_key(k, parent, name, strlen(name));
	int rc = engine_get(e, T_DIRENT, k, kl, v, EI_VALUE_MAX, vlen);
	TU_ASSERT(rc != 0 || *vlen <= EI_VALUE_MAX, "dirent %s: a %zu-byte value", name, *vlen);
	return rc;
}

/* T_INODE[ino] into v (EI_VALUE_MAX bytes): 0 or engine_get's error. */
static int inode_raw(struct engine *e, uint64_t ino, uint8_t *v, size_t *vlen)
{
	uint8_t k[8];
	ino_key(k, ino);
	int rc = engine_get(e, T_INODE, k, 8, v, EI_VALUE_MAX, vlen);
	TU_ASSERT(rc != 0 || *vlen <= EI_VALUE_MAX, "inode %llu: a %zu-byte value",
		  (unsigned long long)ino, *vlen);
	return rc;
}

/*
 * A record (v[0..len), a v1 or v2 header and its tail) as man/kvfs.5 "Inode record" wants it:
 * it decodes and its tail is `size` bytes for a symlink or an inline file, else empty.  The
 * header in *in.
 */
static void record_ok(const uint8_t *v, size_t len, struct ns_inode *in, const char *what)
{
	const char *why = NULL;
	int hl = ns_inode_decode(v, len, in, &why);
	TU_ASSERT(hl > 0, "%s: the record does not decode (%s)", what, why ? why : "");
	size_t tail = len - (size_t)hl;
	if (S_ISLNK(in->mode) || (S_ISREG(in->mode) && (in->flags & INODE_INLINE)))
		TU_ASSERT(tail == in->size, "%s: %zu bytes after the header, size %llu", what,
			  tail, (unsigned long long)in->size);
	else
		TU_ASSERT(tail == 0, "%s: %zu bytes after the header of a non-inline inode", what,
			  tail);
}

/* EI-1 for an embedded dirent's value v[0..len) (len > DIRENT_VALUE); the header in *in. */
static void embedded_value_ok(const uint8_t *v, size_t len, struct ns_inode *in,
			      const char *what)
{
	record_ok(v + DIRENT_VALUE, len - DIRENT_VALUE, in, what);
	TU_ASSERT(v[DIRENT_VALUE + 2] == NS_INODE_V2, "%s: the embedded record is version %u",
		  what, v[DIRENT_VALUE + 2]);
	TU_ASSERT(!S_ISDIR(in->mode), "%s: a directory is embedded", what);
	TU_ASSERT(in->nlink == 1, "%s: an embedded record with nlink %u", what, in->nlink);
	TU_ASSERT(v[8] == (in->mode & S_IFMT) >> 12, "%s: dirent type %u, embedded mode %o",
		  what, v[8], in->mode);
}

/* Does the INODE REF v[0..len) name exactly (parent, name[0..nlen))? */
static bool ref_names(const uint8_t *v, size_t len, uint64_t parent, const void *name,
		      size_t nlen)
{
	uint64_t p;
	const uint8_t *n;
	size_t nl;
	return ns_is_ref(v, len) && ns_ref_decode(v, len, &p, &n, &nl) == 0 && p == parent &&
	       nl == nlen && memcmp(n, name, nlen) == 0;
}

/*
 * EI-1..EI-4 (man/kvfs.5 "Embedded inodes") over the whole store: every dirent is plain or a
 * well-formed embedded one (EI-1) whose inode's T_INODE value is a REF naming it, and no other
 * dirent names that inode (EI-2); a plain dirent's inode has a record in T_INODE; every REF
 * names an embedded dirent naming its inode (EI-3); every empty orphan key has a record in
 * T_INODE (EI-4).  Returns the number of embedded dirents (= the number of REFs).
 */
static size_t ei_rules_ok(struct engine *e, const char *ctx)
{
	struct engine_iter *it;
	uint8_t k[8 + KVFS_NAME_MAX], v[EI_VALUE_MAX], iv[EI_VALUE_MAX];
	size_t klen, vlen, ivlen, n_dirents = 0, n_embedded = 0, n_refs = 0;
	uint64_t named[EI_MAX_INOS];
	bool emb[EI_MAX_INOS];
	struct ns_inode in;
	char what[128];
	int r;

	TU_ASSERT_EQ(engine_iter_new(e, T_DIRENT, NULL, 0, NULL, 0, &it), 0, "%s", "iter");
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, v, sizeof(v), &vlen)) == 0) {
		TU_ASSERT(klen > 8 && klen <= sizeof(k) && vlen >= DIRENT_VALUE &&
			  vlen <= sizeof(v), "%s: a dirent of key %zu, value %zu bytes", ctx, klen,
			  vlen);
		uint64_t parent = ldbe64(k), ino = ld64(v);
		snprintf(what, sizeof(what), "%s: dirent %llu/%.*s -> %llu", ctx,
			 (unsigned long long)parent, (int)(klen - 8), (const char *)k + 8,
			 (unsigned long long)ino);
		TU_ASSERT(n_dirents < EI_MAX_INOS, "%s: too many dirents", ctx);
		named[n_dirents] = ino;
		emb[n_dirents++] = vlen > DIRENT_VALUE;
		TU_ASSERT_EQ(inode_raw(e, ino, iv, &ivlen), 0, "%s: no T_INODE value", what);
		if (vlen > DIRENT_VALUE) { /* EI-1, EI-2 */
			embedded_value_ok(v, vlen, &in, what);
			TU_ASSERT(ref_names(iv, ivlen, parent, k + 8, klen - 8),
				  "%s: embedded, but T_INODE holds no REF naming it (%zu bytes, "
				  "byte 2 = %u)", what, ivlen, ivlen > 2 ? iv[2] : 0);
			n_embedded++;
		} else {
			TU_ASSERT(!ns_is_ref(iv, ivlen), "%s: plain, but T_INODE holds a REF", what);
			record_ok(iv, ivlen, &in, what);
			TU_ASSERT(v[8] == (in.mode & S_IFMT) >> 12, "%s: type %u, mode %o", what,
				  v[8], in.mode);
		}
	}
	TU_ASSERT_EQ(r, -ENOENT, "%s: dirent iteration", ctx);
	engine_iter_free(it);
	for (size_t i = 0; i < n_dirents; i++) /* EI-2: an embedded inode has one name */
		for (size_t j = 0; j < n_dirents; j++)
			TU_ASSERT(i == j || named[i] != named[j] || (!emb[i] && !emb[j]),
				  "%s: inode %llu is embedded in one of its several dirents", ctx,
				  (unsigned long long)named[i]);

	TU_ASSERT_EQ(engine_iter_new(e, T_INODE, NULL, 0, NULL, 0, &it), 0, "%s", "iter");
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, iv, sizeof(iv), &ivlen)) == 0) {
		TU_ASSERT(klen == 8 && ivlen <= sizeof(iv), "%s: inode key %zu, value %zu", ctx,
			  klen, ivlen);
		if (!ns_is_ref(iv, ivlen))
			continue;
		uint64_t ino = ldbe64(k), parent;
		const uint8_t *name;
		size_t nlen;
		TU_ASSERT_EQ(ns_ref_decode(iv, ivlen, &parent, &name, &nlen), 0,
			     "%s: inode %llu: a malformed REF", ctx, (unsigned long long)ino);
		char nm[KVFS_NAME_MAX + 1];
		memcpy(nm, name, nlen);
		nm[nlen] = 0;
		TU_ASSERT_EQ(dirent_raw(e, parent, nm, v, &vlen), 0, /* EI-3 */
			     "%s: inode %llu: REF to %llu/%s, no such dirent", ctx,
			     (unsigned long long)ino, (unsigned long long)parent, nm);
		TU_ASSERT(vlen > DIRENT_VALUE && ld64(v) == ino, "%s: inode %llu: REF to %llu/%s, "
			  "a dirent of %zu bytes naming %llu", ctx, (unsigned long long)ino,
			  (unsigned long long)parent, nm, vlen, (unsigned long long)ld64(v));
		n_refs++;
	}
	TU_ASSERT_EQ(r, -ENOENT, "%s: inode iteration", ctx);
	engine_iter_free(it);
	TU_ASSERT_EQ(n_refs, n_embedded, "%s: REFs vs embedded dirents", ctx);

	TU_ASSERT_EQ(engine_iter_new(e, T_ORPHAN, NULL, 0, NULL, 0, &it), 0, "%s", "iter");
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, v, sizeof(v), &vlen)) == 0) {
		TU_ASSERT(klen == 8, "%s: orphan key of %zu bytes", ctx, klen);
		if (vlen != 0)
			continue;
		uint64_t ino = ldbe64(k); /* EI-4 */
		TU_ASSERT_EQ(inode_raw(e, ino, iv, &ivlen), 0, "%s: orphan %llu has no T_INODE "
			     "value", ctx, (unsigned long long)ino);
		TU_ASSERT(!ns_is_ref(iv, ivlen), "%s: orphan %llu has a REF, not its record", ctx,
			  (unsigned long long)ino);
	}
	TU_ASSERT_EQ(r, -ENOENT, "%s: orphan iteration", ctx);
	engine_iter_free(it);
	return n_embedded;
}

/* (parent, name) is embedded, names ino of type `type` (S_IFMT bits), and T_INODE[ino] is a
 * REF to it; the embedded header in *in, its tail (inline data or target) in tail[0..*tlen)
 * when tail is not NULL. */
static void expect_embedded(struct engine *e, uint64_t parent, const char *name, uint64_t ino,
			    uint32_t type, struct ns_inode *in, uint8_t *tail, size_t *tlen,
			    const char *ctx)
{
	uint8_t v[EI_VALUE_MAX], iv[EI_VALUE_MAX];
	size_t vlen, ivlen;
	char what[128];

	snprintf(what, sizeof(what), "%s: dirent %llu/%s", ctx, (unsigned long long)parent, name);
	TU_ASSERT_EQ(dirent_raw(e, parent, name, v, &vlen), 0, "%s", what);
	TU_ASSERT(vlen > DIRENT_VALUE, "%s: a %zu-byte value, not an embedded inode", what, vlen);
	TU_ASSERT(ld64(v) == ino, "%s: names inode %llu, not %llu", what,
		  (unsigned long long)ld64(v), (unsigned long long)ino);
	embedded_value_ok(v, vlen, in, what);
	TU_ASSERT((in->mode & S_IFMT) == type, "%s: mode %o", what, in->mode);
	if (tail) {
		int hl = ns_inode_decode(v + DIRENT_VALUE, vlen - DIRENT_VALUE, in, NULL);
		*tlen = vlen - DIRENT_VALUE - (size_t)hl;
		memcpy(tail, v + DIRENT_VALUE + hl, *tlen);
	}
	TU_ASSERT_EQ(inode_raw(e, ino, iv, &ivlen), 0, "%s: no T_INODE value", what);
	TU_ASSERT(ref_names(iv, ivlen, parent, name, strlen(name)),
		  "%s: T_INODE[%llu] is not a REF naming it (%zu bytes, byte 2 = %u)", what,
		  (unsigned long long)ino, ivlen, ivlen > 2 ? iv[2] : 0);
}

/* (parent, name) is plain (DIRENT_VALUE bytes) and names ino. */
static void expect_plain(struct engine *e, uint64_t parent, const char *name, uint64_t ino,
			 const char *ctx)
{
	uint8_t v[EI_VALUE_MAX];
	size_t vlen;
	TU_ASSERT_EQ(dirent_raw(e, parent, name, v, &vlen), 0, "%s: dirent %s", ctx, name);
	TU_ASSERT(vlen == DIRENT_VALUE && ld64(v) == ino, "%s: dirent %s: %zu bytes naming %llu, "
		  "not a plain one naming %llu", ctx, name, vlen, (unsigned long long)ld64(v),
		  (unsigned long long)ino);
}

static void expect_no_dirent(struct engine *e, uint64_t parent, const char *name,
			     const char *ctx)
{
	uint8_t v[EI_VALUE_MAX];
	size_t vlen;
	TU_ASSERT_EQ(dirent_raw(e, parent, name, v, &vlen), -ENOENT, "%s: dirent %s is still "
		     "there", ctx, name);
}

/* T_INODE[ino] is a full record (not a REF) with `nlink`; the header in *in. */
static void expect_record(struct engine *e, uint64_t ino, uint32_t nlink, struct ns_inode *in,
			  const char *ctx)
{
	uint8_t iv[EI_VALUE_MAX];
	size_t ivlen;
	char what[96];
	snprintf(what, sizeof(what), "%s: T_INODE[%llu]", ctx, (unsigned long long)ino);
	TU_ASSERT_EQ(inode_raw(e, ino, iv, &ivlen), 0, "%s", what);
	TU_ASSERT(!ns_is_ref(iv, ivlen), "%s: a REF, not the record", what);
	record_ok(iv, ivlen, in, what);
	TU_ASSERT_EQ(in->nlink, nlink, "%s: nlink", what);
}

/* The orphan key of ino: -ENOENT, or 0 with its value's length in *vlen. */
static int orphan_raw(struct engine *e, uint64_t ino, size_t *vlen)
{
	uint8_t k[8], v[ORPHAN_RANGE_LEN];
	ino_key(k, ino);
	return engine_get(e, T_ORPHAN, k, 8, v, sizeof(v), vlen);
}

/* kvfs_getattr(ino) works and says what a lookup of (parent, name) says (when name is not
 * NULL), with type, nlink and size as given. */
static void expect_attr(struct kvfs *fs, uint64_t ino, uint64_t parent, const char *name,
			uint32_t type, uint32_t nlink, uint64_t size, const char *ctx)
{
	struct kvfs_stat st, lk;
	TU_ASSERT_EQ(kvfs_getattr(fs, ino, &st), 0, "%s: kvfs_getattr(%llu)", ctx,
		     (unsigned long long)ino);
	TU_ASSERT(st.ino == ino && (st.mode & S_IFMT) == type && st.nlink == nlink &&
		  st.size == size, "%s: getattr(%llu): ino %llu mode %o nlink %u size %llu; want "
		  "type %o nlink %u size %llu", ctx, (unsigned long long)ino,
		  (unsigned long long)st.ino, st.mode, st.nlink, (unsigned long long)st.size, type,
		  nlink, (unsigned long long)size);
	if (!name)
		return;
	TU_ASSERT_EQ(kvfs_lookup(fs, parent, name, &lk), 0, "%s: lookup %s", ctx, name);
	TU_ASSERT(lk.ino == st.ino && lk.mode == st.mode && lk.nlink == st.nlink &&
		  lk.uid == st.uid && lk.gid == st.gid && lk.size == st.size &&
		  lk.blocks == st.blocks && lk.mtime_ns == st.mtime_ns &&
		  lk.ctime_ns == st.ctime_ns && lk.generation == st.generation,
		  "%s: lookup %s and getattr(%llu) disagree", ctx, name, (unsigned long long)ino);
}

static struct kvfs *open_fault(struct tu_env *env, struct io_fault *m, unsigned flags)
{
	struct kvfs_options o;
	struct kvfs_engine_tuning t;
	struct kvfs *fs = NULL;

	memset(&o, 0, sizeof(o));
	memset(&t, 0, sizeof(t));
	o.flags = flags;
	o.log = tu_log_cb;
	t.no_checkpoint_thread = true; /* the log holds the changes until close: both paths */
	TU_ASSERT_EQ(kvfs_open_env(env->path, &o, io_fault_env(m), &t, &fs), 0,
		     "kvfs_open_env(%s)", env->path);
	return fs;
}

/*
 * Format version 4 as man/kvfs.5 "Embedded inodes" states it, read back raw through the
 * engine (the log replayed, then the checkpointed trees), in every state a file goes through:
 * created (a file inline, a file in blocks and a symlink embedded, a directory in T_INODE),
 * linked (both dirents plain, the record in T_INODE with nlink 2), renamed (the record moved
 * with its dirent, the REF rewritten), unlinked while open (the record in T_INODE with nlink
 * 0 and an empty orphan key; a crash then: the next open purges it), released, and with its
 * links back to 1 (it stays in T_INODE).  kvfs_getattr by inode number works in each.
 */
START_TEST(test_embedded)
{
	struct tu_env env;
	struct io_fault *cp;
	struct engine *e;
	struct kvfs_stat d, x, sub, g, s, st;
	struct ns_inode in;
	static uint8_t big[3 * BLOCK + 5];
	uint8_t small[100], tail[EI_VALUE_MAX];
	char rd[sizeof(big)];
	size_t tlen, vlen;
	static const char target[] = "../some/where/else";
	const size_t tgt_len = sizeof(target) - 1;

	tu_env_fault(&env, DEFAULT_SEED);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	memset(small, 'f', sizeof(small));
	struct kvfs *fs = open_fault(&env, env.m, KVFS_CREATE);

	/* 1. created: f (kvfs_put, inline), g (mknod + write, in blocks), s (symlink) embedded;
	 * the directories d, x and d/sub in T_INODE with plain dirents */
	TU_ASSERT_EQ(kvfs_mkdir(fs, KVFS_ROOT_INO, "d", 0755, 0, 0, &d), 0, "%s", "mkdir d");
	TU_ASSERT_EQ(kvfs_mkdir(fs, KVFS_ROOT_INO, "x", 0755, 0, 0, &x), 0, "%s", "mkdir x");
	TU_ASSERT_EQ(kvfs_put(fs, "d/f", small, sizeof(small)), 0, "%s", "put d/f");
	struct kvfs_stat f;
	TU_ASSERT_EQ(kvfs_lookup(fs, d.ino, "f", &f), 0, "%s", "lookup f");
	TU_ASSERT_EQ(kvfs_mknod(fs, d.ino, "g", S_IFREG | 0640, 0, 1000, 100, &g), 0, "%s",
		     "mknod g");
	TU_ASSERT_EQ(kvfs_write(fs, g.ino, big, sizeof(big), 0), (ssize_t)sizeof(big), "%s",
		     "write g");
	TU_ASSERT_EQ(kvfs_symlink(fs, d.ino, "s", target, 0, 0, &s), 0, "%s", "symlink s");
	TU_ASSERT_EQ(kvfs_mkdir(fs, d.ino, "sub", 0700, 0, 0, &sub), 0, "%s", "mkdir sub");

	e = raw_open(&env, &cp);
	expect_embedded(e, d.ino, "f", f.ino, S_IFREG, &in, tail, &tlen, "created");
	TU_ASSERT(in.size == sizeof(small) && (in.flags & INODE_INLINE) && tlen == sizeof(small) &&
		  memcmp(tail, small, sizeof(small)) == 0, "created: f's embedded bytes (%zu)",
		  tlen);
	expect_embedded(e, d.ino, "g", g.ino, S_IFREG, &in, NULL, NULL, "created");
	TU_ASSERT(in.size == sizeof(big) && !(in.flags & INODE_INLINE) && in.blocks == 4 &&
		  in.uid == 1000 && in.gid == 100, "created: g's embedded record (size %llu, "
		  "blocks %llu, flags %u)", (unsigned long long)in.size,
		  (unsigned long long)in.blocks, in.flags);
	expect_embedded(e, d.ino, "s", s.ino, S_IFLNK, &in, tail, &tlen, "created");
	TU_ASSERT(tlen == tgt_len && memcmp(tail, target, tgt_len) == 0, "%s",
		  "created: s's embedded target");
	expect_plain(e, KVFS_ROOT_INO, "d", d.ino, "created");
	expect_plain(e, KVFS_ROOT_INO, "x", x.ino, "created");
	expect_plain(e, d.ino, "sub", sub.ino, "created");
	expect_record(e, sub.ino, 2, &in, "created");
	TU_ASSERT(S_ISDIR(in.mode) && in.parent == d.ino, "created: sub's record: mode %o, "
		  "parent %llu", in.mode, (unsigned long long)in.parent);
	expect_record(e, d.ino, 3, &in, "created");
	TU_ASSERT_EQ(ei_rules_ok(e, "created"), 3, "%s", "created: embedded dirents");
	raw_close(e, cp);
	expect_attr(fs, f.ino, d.ino, "f", S_IFREG, 1, sizeof(small), "created");
	expect_attr(fs, g.ino, d.ino, "g", S_IFREG, 1, sizeof(big), "created");
	expect_attr(fs, s.ino, d.ino, "s", S_IFLNK, 1, tgt_len, "created");
	expect_attr(fs, sub.ino, d.ino, "sub", S_IFDIR, 2, 0, "created");
	TU_ASSERT_EQ(kvfs_get(fs, "d/f", rd, sizeof(rd)), (ssize_t)sizeof(small), "%s", "get d/f");
	TU_ASSERT(memcmp(rd, small, sizeof(small)) == 0, "%s", "d/f's bytes");
	TU_ASSERT_EQ(kvfs_readlink(fs, s.ino, rd, sizeof(rd)), (ssize_t)tgt_len, "%s", "readlink");
	TU_ASSERT(memcmp(rd, target, tgt_len) == 0, "%s", "s's target");

	/* 2. kvfs_link(f, x/f2): both dirents plain, the record in T_INODE with nlink 2 */
	TU_ASSERT_EQ(kvfs_link(fs, f.ino, x.ino, "f2", &st), 0, "%s", "link x/f2");
	e = raw_open(&env, &cp);
	expect_plain(e, d.ino, "f", f.ino, "linked");
	expect_plain(e, x.ino, "f2", f.ino, "linked");
	expect_record(e, f.ino, 2, &in, "linked");
	TU_ASSERT(in.size == sizeof(small) && (in.flags & INODE_INLINE), "%s",
		  "linked: f's record is inline");
	TU_ASSERT_EQ(ei_rules_ok(e, "linked"), 2, "%s", "linked: embedded dirents");
	raw_close(e, cp);
	expect_attr(fs, f.ino, d.ino, "f", S_IFREG, 2, sizeof(small), "linked");
	expect_attr(fs, f.ino, x.ino, "f2", S_IFREG, 2, sizeof(small), "linked");
	TU_ASSERT_EQ(kvfs_get(fs, "x/f2", rd, sizeof(rd)), (ssize_t)sizeof(small), "%s",
		     "get x/f2");

	/* 3. rename d/g -> x/g2 (another directory) and d/s -> d/s2 (the same one): the old
	 * dirents gone, the new ones embedded, the REFs naming them */
	TU_ASSERT_EQ(kvfs_rename(fs, d.ino, "g", x.ino, "g2", 0), 0, "%s", "rename g");
	TU_ASSERT_EQ(kvfs_rename(fs, d.ino, "s", d.ino, "s2", 0), 0, "%s", "rename s");
	e = raw_open(&env, &cp);
	expect_no_dirent(e, d.ino, "g", "renamed");
	expect_no_dirent(e, d.ino, "s", "renamed");
	expect_embedded(e, x.ino, "g2", g.ino, S_IFREG, &in, NULL, NULL, "renamed");
	TU_ASSERT(in.size == sizeof(big) && in.blocks == 4, "%s", "renamed: g's record");
	expect_embedded(e, d.ino, "s2", s.ino, S_IFLNK, &in, tail, &tlen, "renamed");
	TU_ASSERT(tlen == tgt_len && memcmp(tail, target, tgt_len) == 0, "%s",
		  "renamed: s2's target");
	TU_ASSERT_EQ(ei_rules_ok(e, "renamed"), 2, "%s", "renamed: embedded dirents");
	raw_close(e, cp);
	expect_attr(fs, g.ino, x.ino, "g2", S_IFREG, 1, sizeof(big), "renamed");
	expect_attr(fs, s.ino, d.ino, "s2", S_IFLNK, 1, tgt_len, "renamed");
	TU_ASSERT_EQ(kvfs_read(fs, g.ino, rd, sizeof(rd), 0), (ssize_t)sizeof(big), "%s",
		     "read g");
	TU_ASSERT(memcmp(rd, big, sizeof(big)) == 0, "%s", "g's bytes");

	/* 4. unlink x/g2 while g is open: the record in T_INODE, nlink 0, an empty orphan key */
	TU_ASSERT_EQ(kvfs_open_ino(fs, g.ino), 0, "%s", "open g");
	TU_ASSERT_EQ(kvfs_unlink(fs, x.ino, "g2"), 0, "%s", "unlink g2");
	e = raw_open(&env, &cp);
	expect_no_dirent(e, x.ino, "g2", "orphan");
	expect_record(e, g.ino, 0, &in, "orphan");
	TU_ASSERT(in.size == sizeof(big) && in.blocks == 4 && !(in.flags & INODE_INLINE), "%s",
		  "orphan: g's record");
	TU_ASSERT_EQ(orphan_raw(e, g.ino, &vlen), 0, "%s", "orphan: g's orphan key");
	TU_ASSERT_EQ(vlen, 0, "%s", "orphan: g's orphan key is empty");
	TU_ASSERT_EQ(ei_rules_ok(e, "orphan"), 1, "%s", "orphan: embedded dirents");
	raw_close(e, cp);
	expect_attr(fs, g.ino, 0, NULL, S_IFREG, 0, sizeof(big), "orphan");
	TU_ASSERT_EQ(kvfs_read(fs, g.ino, rd, sizeof(rd), 0), (ssize_t)sizeof(big), "%s",
		     "read the orphan g");
	TU_ASSERT(memcmp(rd, big, sizeof(big)) == 0, "%s", "the orphan's bytes");
	/* a crash now: the next open purges g (from its record in T_INODE) */
	cp = io_fault_cut_copy(env.m, IO_CUT_KEEP_ALL, 2, NULL);
	TU_ASSERT(cp != NULL, "%s", "io_fault_cut_copy");
	struct kvfs *fs2 = open_fault(&env, cp, 0);
	TU_ASSERT_EQ(kvfs_getattr(fs2, g.ino, &st), -ENOENT, "%s", "crash: g purged at open");
	expect_attr(fs2, f.ino, x.ino, "f2", S_IFREG, 2, sizeof(small), "crash");
	expect_attr(fs2, s.ino, d.ino, "s2", S_IFLNK, 1, tgt_len, "crash");
	TU_ASSERT_EQ(kvfs_close(fs2), 0, "%s", "close after the crash");
	struct engine_options eo;
	memset(&eo, 0, sizeof(eo));
	eo.flags = STORE_RDONLY;
	eo.io = io_fault_env(cp);
	eo.no_checkpoint_thread = true;
	eo.log = tu_log_cb;
	TU_ASSERT_EQ(engine_open(env.path, &eo, &e), 0, "%s", "engine_open after the crash");
	uint8_t iv[EI_VALUE_MAX];
	size_t ivlen;
	TU_ASSERT_EQ(inode_raw(e, g.ino, iv, &ivlen), -ENOENT, "%s", "crash: g's record");
	TU_ASSERT_EQ(orphan_raw(e, g.ino, &vlen), -ENOENT, "%s", "crash: g's orphan key");
	TU_ASSERT_EQ(ei_rules_ok(e, "crash"), 1, "%s", "crash: embedded dirents");
	raw_close(e, cp);

	/* 5. released: purged */
	kvfs_release_ino(fs, g.ino);
	TU_ASSERT_EQ(kvfs_getattr(fs, g.ino, &st), -ENOENT, "%s", "released: g purged");
	e = raw_open(&env, &cp);
	TU_ASSERT_EQ(inode_raw(e, g.ino, iv, &ivlen), -ENOENT, "%s", "released: g's record");
	TU_ASSERT_EQ(orphan_raw(e, g.ino, &vlen), -ENOENT, "%s", "released: g's orphan key");
	ei_rules_ok(e, "released");
	raw_close(e, cp);

	/* 6. close and reopen: the same, now from the checkpointed trees */
	TU_ASSERT_EQ(kvfs_close(fs), 0, "%s", "close");
	fs = open_fault(&env, env.m, 0);
	e = raw_open(&env, &cp);
	expect_plain(e, d.ino, "f", f.ino, "reopened");
	expect_plain(e, x.ino, "f2", f.ino, "reopened");
	expect_record(e, f.ino, 2, &in, "reopened");
	expect_embedded(e, d.ino, "s2", s.ino, S_IFLNK, &in, tail, &tlen, "reopened");
	TU_ASSERT(tlen == tgt_len && memcmp(tail, target, tgt_len) == 0, "%s",
		  "reopened: s2's target");
	expect_plain(e, d.ino, "sub", sub.ino, "reopened");
	expect_record(e, sub.ino, 2, &in, "reopened");
	TU_ASSERT_EQ(ei_rules_ok(e, "reopened"), 1, "%s", "reopened: embedded dirents");
	raw_close(e, cp);
	expect_attr(fs, f.ino, d.ino, "f", S_IFREG, 2, sizeof(small), "reopened");
	expect_attr(fs, s.ino, d.ino, "s2", S_IFLNK, 1, tgt_len, "reopened");
	expect_attr(fs, sub.ino, d.ino, "sub", S_IFDIR, 2, 0, "reopened");
	TU_ASSERT_EQ(kvfs_get(fs, "d/f", rd, sizeof(rd)), (ssize_t)sizeof(small), "%s",
		     "reopened: get d/f");
	TU_ASSERT_EQ(kvfs_readlink(fs, s.ino, rd, sizeof(rd)), (ssize_t)tgt_len, "%s",
		     "reopened: readlink");

	/* 7. f's links back to 1: it stays in T_INODE, its dirent plain (both forms are valid) */
	TU_ASSERT_EQ(kvfs_unlink(fs, x.ino, "f2"), 0, "%s", "unlink f2");
	e = raw_open(&env, &cp);
	expect_no_dirent(e, x.ino, "f2", "one link");
	expect_plain(e, d.ino, "f", f.ino, "one link");
	expect_record(e, f.ino, 1, &in, "one link");
	TU_ASSERT_EQ(ei_rules_ok(e, "one link"), 1, "%s", "one link: embedded dirents");
	raw_close(e, cp);
	expect_attr(fs, f.ino, d.ino, "f", S_IFREG, 1, sizeof(small), "one link");
	TU_ASSERT_EQ(kvfs_close(fs), 0, "%s", "close");
	tu_env_fini(&env);
}
END_TEST

static Suite *ns_format_suite(void)
{
	Suite *s = suite_create("ns_format");
	TCase *tc;

	tc = tcase_create("core");
	tcase_set_timeout(tc, 300); /* ~1 s plain, ~10 s under ASan */
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_v1_decode);
	suite_add_tcase(s, tc);
	tc = tcase_create("corrupt");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_garbage);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_v1_store);
	tcase_add_test(tc, test_embedded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(ns_format_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
