/*
 * tests/damage.c — the damaged-store generator (contract in tests/damage.h).
 *
 * Base stores are written through kvfs.h; the layout walk and the log walk read the files
 * with pread from store/format.h and wal/log.h alone, so a bug in the store's own readers
 * cannot hide a case.  A damage case changes the fewest bytes that make its problem:
 *   - byte flips (checksums left wrong);
 *   - rewritten pages with the checksum recomputed (a page that is sound as bytes but wrong
 *     in its place: stale, misdirected, shared, out of range, bad structure);
 *   - meta pages re-encoded with meta_encode after a field change (leak, free count);
 *   - log records rewritten with their checksum recomputed (a record that decodes badly);
 *   - namespace records put or deleted through the raw engine API (engine_open, a batch,
 *     engine_close: every page and record checksummed, the namespace inconsistent);
 *   - embedded inodes (format version 4, store/ns_format.h) written raw as namespace.c
 *     writes them (ns_embed: the record in the dirent, an INODE REF in T_INODE), a dozen
 *     sound ones in every such case, then one broken against a rule EI-1..EI-4; some only
 *     in the log, by a child that dies without closing (in_log).
 * Every case checks that its target exists in the base store (a branch page, an overflow
 * run, a live log record) and fails with -ENOENT and a message when it does not, so a
 * change in the base store's shape cannot silently turn a case into a no-op.
 */
#define _GNU_SOURCE
#include "tests/damage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include "store/checksum.h" /* xxhash.h, inline (XXH3_state_t) */

#include "store/format.h"
#include "store/kvfs.h"
#include "store/ns_format.h"
#include "store/page.h"

#define PS STORE_PAGE_SIZE

static int fail(char *msg, size_t len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *msg, size_t len, int rc, const char *fmt, ...)
{
	if (msg && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}
#define say(...) ((void)fail(msg, len, 0, __VA_ARGS__))

/* ---- files ---- */

int dmg_read_file(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat s;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &s) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	uint8_t *b = malloc(s.st_size ? (size_t)s.st_size : 1);
	size_t got = 0;
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)s.st_size) {
		ssize_t n = pread(fd, b + got, (size_t)s.st_size - got, (off_t)got);
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			free(b);
			close(fd);
			return e;
		}
		got += (size_t)n;
	}
	close(fd);
	*buf = b;
	*len = got;
	return 0;
}

int dmg_write_at(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = pwrite(fd, buf, len, (off_t)off);
	int e = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
	close(fd);
	return e;
}

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			close(fd);
			return e;
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

bool dmg_hash_file(const char *path, uint64_t *h)
{
	uint8_t *b;
	size_t n;
	if (dmg_read_file(path, &b, &n) < 0)
		return false;
	*h = XXH3_64bits(b, n);
	free(b);
	return true;
}

static void wal_of(const char *path, char *out)
{
	snprintf(out, PATH_MAX, "%s-wal", path);
}

int dmg_copy_store(const char *src, const char *dst)
{
	char sw[PATH_MAX], dw[PATH_MAX];
	uint8_t *b;
	size_t n;
	int rc = dmg_read_file(src, &b, &n);
	if (rc < 0)
		return rc;
	rc = write_file(dst, b, n);
	free(b);
	if (rc < 0)
		return rc;
	wal_of(src, sw);
	wal_of(dst, dw);
	rc = dmg_read_file(sw, &b, &n);
	if (rc == -ENOENT) {
		unlink(dw);
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = write_file(dw, b, n);
	free(b);
	return rc;
}

/* ---- base stores ---- */

void dmg_content(const char *key, uint8_t *buf, size_t n)
{
	uint64_t x = XXH3_64bits(key, strlen(key)) | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)(x >> 24);
	}
}

static int put_content(struct kvfs *fs, const char *key, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		return -ENOMEM;
	dmg_content(key, b, n);
	int rc = kvfs_put(fs, key, b, n);
	free(b);
	return rc;
}

static int lookup_path(struct kvfs *fs, const char *path, uint64_t *ino);

/* A file larger than a log record may be (half the ring): a put, then writes of 128 KiB. */
static int put_big(struct kvfs *fs, const char *key, size_t n)
{
	const size_t piece = 128u << 10;
	uint8_t *b = malloc(n);
	uint64_t ino;
	if (!b)
		return -ENOMEM;
	dmg_content(key, b, n);
	int rc = kvfs_put(fs, key, b, piece);
	if (rc == 0)
		rc = lookup_path(fs, key, &ino);
	for (size_t off = piece; off < n && rc == 0; off += piece) {
		size_t k = n - off < piece ? n - off : piece;
		ssize_t w = kvfs_write(fs, ino, b + off, k, off);
		rc = w == (ssize_t)k ? 0 : w < 0 ? (int)w : -EIO;
	}
	free(b);
	return rc;
}

static int lookup_path(struct kvfs *fs, const char *path, uint64_t *ino)
{
	char buf[PATH_MAX];
	uint64_t cur = KVFS_ROOT_INO;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		struct kvfs_stat st;
		int rc = kvfs_lookup(fs, cur, c, &st);
		if (rc < 0)
			return rc;
		cur = st.ino;
	}
	*ino = cur;
	return 0;
}

/* Sizes of the f/NNN files, by NNN % 6: empty, inline, the largest inline, one block, three
 * blocks, two blocks. */
static const size_t f_sizes[6] = { 0, 100, INLINE_MAX, 3000, 9000, 5000 };
#define N_FILES 300

/*
 * Move every embedded inode's record back into T_INODE and make its dirent plain (a valid
 * version 4 store: a file with one name may be in either form, store/ns_format.h).  The cases
 * below were written for inodes in T_INODE (they edit, cut or orphan records there); the
 * embedded cases (dmg_make_embedded) embed the inodes they need themselves.  The store is
 * closed on entry and on return, its log empty.
 */
static int unembed_all(const char *path, char *msg, size_t len)
{
	struct engine_options eo = { .no_checkpoint_thread = true };
	struct engine *e;
	struct engine_iter *it;
	struct engine_batch *b = engine_batch_new();
	uint8_t k[8], dk[8 + KVFS_NAME_MAX], v[NS_REF_MAX];
	uint8_t dv[DIRENT_VALUE + NS_INODE_HDR_ANY + SYMLINK_MAX + INLINE_MAX];
	size_t klen, vlen, dvlen;
	int rc = b ? engine_open(path, &eo, &e) : -ENOMEM;
	if (rc < 0) {
		engine_batch_free(b);
		return fail(msg, len, rc, "unembed: engine_open = %d", rc);
	}
	if ((rc = engine_iter_new(e, T_INODE, NULL, 0, NULL, 0, &it)) == 0) {
		while ((rc = engine_iter_next(it, k, sizeof(k), &klen, v, sizeof(v), &vlen)) == 0) {
			uint64_t parent;
			const uint8_t *name;
			size_t nlen;
			if (klen != 8 || vlen > sizeof(v) || !ns_is_ref(v, vlen))
				continue;
			if ((rc = ns_ref_decode(v, vlen, &parent, &name, &nlen)) < 0)
				break;
			size_t dkl = dirent_key(dk, parent, (const char *)name, nlen);
			if ((rc = engine_get(e, T_DIRENT, dk, dkl, dv, sizeof(dv), &dvlen)) < 0)
				break;
			if (dvlen <= DIRENT_VALUE || dvlen > sizeof(dv)) {
				rc = -EUCLEAN;
				break;
			}
			if ((rc = engine_batch_put(b, T_INODE, k, 8, dv + DIRENT_VALUE,
						   dvlen - DIRENT_VALUE)) < 0 ||
			    (rc = engine_batch_put(b, T_DIRENT, dk, dkl, dv, DIRENT_VALUE)) < 0)
				break;
		}
		engine_iter_free(it);
	}
	if (rc == -ENOENT)
		rc = engine_commit(e, b, NULL);
	engine_batch_free(b);
	int rc2 = engine_close(e);
	if (rc == 0)
		rc = rc2;
	return rc < 0 ? fail(msg, len, rc, "unembed: %d", rc) : 0;
}

int dmg_make_store(const char *path, char *msg, size_t len)
{
	struct engine *e;
	struct engine_options eo = { .flags = STORE_CREATE, .log_ring_bytes = WAL_MIN_RING,
				     .no_checkpoint_thread = true };
	struct kvfs *fs;
	/* checkpoints well before the 1 MiB log ring fills */
	struct kvfs_options ko = { .checkpoint_bytes = 192u << 10 };
	struct kvfs_stat st;
	uint64_t ino, dir;
	char key[64];
	int rc;

	/* Created by the engine first: a 1 MiB log ring instead of kvfs.h's 64 MiB default,
	 * so that copying a store per trial is cheap.  kvfs_open then adds the root. */
	rc = engine_open(path, &eo, &e);
	if (rc < 0)
		return fail(msg, len, rc, "engine_open(create %s) = %d", path, rc);
	rc = engine_close(e);
	if (rc < 0)
		return fail(msg, len, rc, "engine_close = %d", rc);

	for (int session = 0; session < 3; session++) {
		rc = kvfs_open(path, &ko, &fs);
		if (rc < 0)
			return fail(msg, len, rc, "kvfs_open(%s) = %d", path, rc);
		switch (session) {
		case 0:
			for (int i = 0; i < N_FILES && rc == 0; i++) {
				snprintf(key, sizeof(key), "f/%03d", i);
				rc = put_content(fs, key, f_sizes[i % 6]);
			}
			for (int i = 0; i < 20 && rc == 0; i++) {
				snprintf(key, sizeof(key), "d%02d", i);
				rc = kvfs_mkdir(fs, KVFS_ROOT_INO, key, 0755, 0, 0, &st);
			}
			if (rc == 0)
				rc = put_content(fs, "docs/a/b/c/deep.txt", 500);
			if (rc == 0)
				rc = put_content(fs, "docs/a/x.txt", 7000);
			if (rc == 0)
				rc = put_content(fs, "docs/readme", 1500);
			if (rc == 0)
				rc = put_big(fs, "big/one-mib", 1u << 20);
			if (rc == 0)
				rc = put_content(fs, "f/gone", 5000);
			break;
		case 1: {
			uint8_t blk[BLOCK];
			/* holes: blocks 0 and 10 of an 11-block file */
			rc = put_content(fs, "sparse/holes", BLOCK);
			if (rc == 0)
				rc = lookup_path(fs, "sparse/holes", &ino);
			dmg_content("sparse/holes#10", blk, sizeof(blk));
			if (rc == 0)
				rc = kvfs_write(fs, ino, blk, sizeof(blk), 10 * BLOCK) ==
						     (ssize_t)sizeof(blk) ? 0 : -EIO;
			if (rc == 0)
				rc = kvfs_mkdir(fs, KVFS_ROOT_INO, "links", 0755, 0, 0, &st);
			dir = st.ino;
			if (rc == 0)
				rc = lookup_path(fs, "f/001", &ino);
			if (rc == 0)
				rc = kvfs_link(fs, ino, dir, "hard1", &st);
			if (rc == 0)
				rc = kvfs_link(fs, ino, dir, "hard2", &st);
			if (rc == 0)
				rc = kvfs_symlink(fs, dir, "sym", "../f/001", 0, 0, &st);
			if (rc == 0) {
				char target[1001];
				memset(target, 'x', 1000);
				target[1000] = 0;
				rc = kvfs_symlink(fs, dir, "longsym", target, 0, 0, &st);
			}
			if (rc == 0)
				rc = kvfs_mknod(fs, dir, "fifo", S_IFIFO | 0644, 0, 0, 0, &st);
			if (rc == 0)
				rc = lookup_path(fs, "f/002", &ino);
			if (rc == 0)
				rc = kvfs_setxattr(fs, ino, "user.a", "alpha", 5, 0);
			if (rc == 0)
				rc = lookup_path(fs, "f/003", &ino);
			if (rc == 0) {
				dmg_content("f/003#user.big", blk, 3000);
				rc = kvfs_setxattr(fs, ino, "user.big", blk, 3000, 0);
			}
			if (rc == 0)
				rc = lookup_path(fs, "d00", &ino);
			if (rc == 0)
				rc = kvfs_setxattr(fs, ino, "user.dir", "d", 1, 0);
			break;
		}
		case 2:
			/* frees pages and an inode number; replaces a file */
			rc = kvfs_delete(fs, "f/gone");
			if (rc == 0)
				rc = put_content(fs, "f/004", 12000);
			if (rc == 0)
				rc = kvfs_rename(fs, KVFS_ROOT_INO, "d19", KVFS_ROOT_INO, "d19-renamed",
						 0);
			break;
		}
		if (rc < 0) {
			kvfs_close(fs);
			return fail(msg, len, rc, "building session %d: %d", session, rc);
		}
		rc = kvfs_close(fs);
		if (rc < 0)
			return fail(msg, len, rc, "kvfs_close = %d", rc);
	}
	if ((rc = unembed_all(path, msg, len)) < 0)
		return rc;

	struct dmg_layout L;
	rc = dmg_layout_load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	const int need[] = { T_INODE, T_DIRENT, T_DATA };
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!dmg_layout_count(&L, DK_BRANCH, need[i], -1))
			rc = fail(msg, len, -ENOENT, "base store: tree t%d has no branch page",
				  need[i]);
	if (rc == 0 && !dmg_layout_count(&L, DK_LEAF, DMG_FREEDB, -1))
		rc = fail(msg, len, -ENOENT, "base store: the free list is empty");
	if (rc == 0 && !L.valid[0] && !L.valid[1])
		rc = fail(msg, len, -ENOENT, "base store: meta pages");
	dmg_layout_free(&L);
	return rc;
}

int dmg_make_crashed(const char *path, bool orphan, char *msg, size_t len)
{
	pid_t pid = fork();
	if (pid < 0)
		return fail(msg, len, -errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct kvfs *fs;
		struct kvfs_options ko = { .checkpoint_bytes = 64u << 20,
					   .checkpoint_interval_ms = 3600000 };
		char key[64];
		uint64_t ino;
		int rc = kvfs_open(path, &ko, &fs);
		if (rc < 0)
			_exit(10);
		for (int i = 0; i < 8 && rc == 0; i++) {
			snprintf(key, sizeof(key), "crash/n%02d", i);
			rc = put_content(fs, key, (size_t)i * 1500);
		}
		if (rc == 0)
			rc = put_content(fs, "f/005", 700);
		if (rc == 0)
			rc = kvfs_delete(fs, "f/006");
		if (rc == 0)
			rc = kvfs_rename(fs, KVFS_ROOT_INO, "d18", KVFS_ROOT_INO, "d18-moved", 0);
		if (rc == 0 && orphan) {
			rc = lookup_path(fs, "f/010", &ino);
			if (rc == 0)
				rc = kvfs_open_ino(fs, ino);
			if (rc == 0) {
				struct kvfs_stat st;
				rc = kvfs_lookup(fs, KVFS_ROOT_INO, "f", &st);
				if (rc == 0)
					rc = kvfs_unlink(fs, st.ino, "010");
			}
		}
		if (rc == 0)
			rc = put_content(fs, "crash/last", 300);
		if (rc == 0)
			rc = kvfs_sync(fs);
		_exit(rc == 0 ? 0 : 11);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return fail(msg, len, -errno, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return fail(msg, len, -EIO, "crashing child: status %#x", status);
	return 0;
}

/* ---- the layout ---- */

static bool page_sound(const uint8_t *p, pgno_t pgno)
{
	return ld64(p + PH_CHECKSUM) == XXH3_64bits_withSeed(p + 8, PS - 8, pgno) &&
	       ld64(p + PH_PGNO) == pgno;
}

/* A meta page's checksum (store/format.h: XXH3-64 of bytes 8..4095, seed = slot). */
static bool page_sound_meta(const uint8_t *p, unsigned slot)
{
	return ld64(p) == XXH3_64bits_withSeed(p + 8, PS - 8, slot);
}

void dmg_page_reseal(uint8_t *p, pgno_t pgno)
{
	st64(p + PH_CHECKSUM, XXH3_64bits_withSeed(p + 8, PS - 8, pgno));
}

struct walk {
	struct dmg_layout *L;
	char *msg;
	size_t len;
};

static int walk(struct walk *w, pgno_t pg, txnid_t want, unsigned level, int tree,
		pgno_t parent, unsigned cell)
{
	struct dmg_layout *L = w->L;
	char *msg = w->msg;
	size_t len = w->len;

	if (pg < FIRST_DATA_PGNO || pg >= L->npages || pg >= L->meta.page_count)
		return fail(msg, len, -EUCLEAN, "page %" PRIu64 " out of range", pg);
	const uint8_t *p = L->img + pg * PS;
	struct dmg_page *d = &L->pg[pg];
	if (!page_sound(p, pg) || page_txnid(p) != want || page_level(p) != level || page_check(p))
		return fail(msg, len, -EUCLEAN, "page %" PRIu64 " unsound", pg);
	if (d->kind != DK_NONE)
		return fail(msg, len, -EUCLEAN, "page %" PRIu64 " reached twice", pg);
	d->kind = page_type(p) == PAGE_BRANCH ? DK_BRANCH : DK_LEAF;
	d->tree = (int8_t)tree;
	d->level = (uint8_t)level;
	d->parent = parent;
	d->cell = (uint16_t)cell;
	d->covered = PS;
	unsigned n = page_nkeys(p);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *c = page_cell(p, i);
		int rc;
		if (d->kind == DK_BRANCH) {
			if (level == 0)
				return fail(msg, len, -EUCLEAN, "branch at level 0");
			rc = walk(w, branch_child(c), branch_child_txnid(c), level - 1, tree, pg, i);
			if (rc < 0)
				return rc;
			continue;
		}
		if (leaf_vtype(c) == VTYPE_OVERFLOW) {
			const uint8_t *ref = leaf_val(c);
			pgno_t first = ld64(ref + OVF_PGNO);
			uint32_t vlen = leaf_vlen(c);
			uint64_t np = ovf_pages(vlen);
			if (first < FIRST_DATA_PGNO || first + np > L->meta.page_count)
				return fail(msg, len, -EUCLEAN, "overflow run out of range");
			for (uint64_t k = 0; k < np; k++) {
				struct dmg_page *o = &L->pg[first + k];
				if (o->kind != DK_NONE)
					return fail(msg, len, -EUCLEAN, "overflow page reached twice");
				o->kind = DK_OVF;
				o->tree = (int8_t)tree;
				o->parent = pg;
				o->cell = (uint16_t)i;
				o->run = first;
				o->covered = (uint32_t)(k + 1 < np ? PS : vlen - k * PS);
			}
		} else if (tree == DMG_CATALOG) {
			unsigned klen = leaf_klen(c);
			const uint8_t *k = leaf_key(c);
			if (klen == 2 && k[0] == 't' && k[1] >= '0' && k[1] < '0' + ENGINE_TREES &&
			    leaf_vlen(c) == TREC_SIZE) {
				unsigned t = (unsigned)(k[1] - '0');
				L->has_tree[t] = true;
				trec_decode(leaf_val(c), &L->trees[t]);
			}
		}
	}
	return 0;
}

static int walk_rec(struct walk *w, const struct tree_rec *r, int tree)
{
	if (!r->root)
		return 0;
	return walk(w, r->root, r->root_txnid, r->depth - 1, tree, 0, 0);
}

int dmg_layout_load(const char *path, struct dmg_layout *L, char *msg, size_t len)
{
	int rc;
	memset(L, 0, sizeof(*L));
	rc = dmg_read_file(path, &L->img, &L->len);
	if (rc < 0)
		return fail(msg, len, rc, "read %s: %d", path, rc);
	L->npages = L->len / PS;
	if (L->npages < 2) {
		dmg_layout_free(L);
		return fail(msg, len, -EINVAL, "%s: too short", path);
	}
	for (unsigned s = 0; s < 2; s++) {
		const char *why;
		L->valid[s] = meta_decode(L->img + s * PS, s, &L->metas[s], &why) == 0;
	}
	if (!L->valid[0] && !L->valid[1]) {
		dmg_layout_free(L);
		return fail(msg, len, -EUCLEAN, "%s: no valid meta page", path);
	}
	L->slot = !L->valid[0] ? 1 : !L->valid[1] ? 0 : L->metas[1].txnid > L->metas[0].txnid;
	L->meta = L->metas[L->slot];
	L->pg = calloc(L->npages, sizeof(*L->pg));
	if (!L->pg) {
		dmg_layout_free(L);
		return -ENOMEM;
	}
	for (unsigned s = 0; s < 2; s++) {
		L->pg[s].kind = DK_META;
		L->pg[s].covered = PS;
	}
	struct walk w = { L, msg, len };
	rc = walk_rec(&w, &L->meta.catalog, DMG_CATALOG);
	if (rc == 0)
		rc = walk_rec(&w, &L->meta.freedb, DMG_FREEDB);
	for (int t = 0; t < ENGINE_TREES && rc == 0; t++)
		if (L->has_tree[t])
			rc = walk_rec(&w, &L->trees[t], t);
	if (rc < 0)
		dmg_layout_free(L);
	return rc;
}

void dmg_layout_free(struct dmg_layout *L)
{
	free(L->img);
	free(L->pg);
	memset(L, 0, sizeof(*L));
}

static bool page_matches(const struct dmg_page *d, int kind, int tree, int level)
{
	return d->kind == kind && (tree == INT8_MIN || d->tree == tree) &&
	       (level < 0 || d->level == level);
}

uint64_t dmg_layout_count(const struct dmg_layout *L, int kind, int tree, int level)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < L->npages; i++)
		n += page_matches(&L->pg[i], kind, tree, level);
	return n;
}

pgno_t dmg_layout_find(const struct dmg_layout *L, int kind, int tree, int level, uint64_t nth)
{
	uint64_t n = dmg_layout_count(L, kind, tree, level);
	if (!n)
		return 0;
	nth %= n;
	for (uint64_t i = 0; i < L->npages; i++)
		if (page_matches(&L->pg[i], kind, tree, level) && nth-- == 0)
			return i;
	return 0;
}

/* ---- the log ---- */

static uint64_t rec_checksum(const uint8_t *rec, uint32_t size, uint64_t salt)
{
	XXH3_state_t st;
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset_withSeed(&st, salt);
	XXH3_64bits_update(&st, rec, 16);
	if (size > WAL_REC_HDR)
		XXH3_64bits_update(&st, rec + WAL_REC_HDR, size - WAL_REC_HDR);
	return XXH3_64bits_digest(&st);
}

int dmg_log_load(const char *wal, lsn_t from, struct dmg_log *g)
{
	uint8_t *b;
	size_t n;
	int rc = dmg_read_file(wal, &b, &n);
	memset(g, 0, sizeof(*g));
	if (rc < 0)
		return rc;
	if (n < WAL_HDR_SIZE || memcmp(b + 8, "KVFSWAL\0", 8) != 0) {
		free(b);
		return -EINVAL;
	}
	g->ring = ld64(b + 24);
	g->salt = ld64(b + 32);
	g->from = from;
	if (g->ring < WAL_MIN_RING || n < WAL_HDR_SIZE + g->ring) {
		free(b);
		return -EINVAL;
	}
	lsn_t lsn = from;
	size_t cap = 0;
	while (lsn - from < g->ring) {
		uint64_t pos = lsn % g->ring, rem = g->ring - pos;
		if (rem < WAL_REC_HDR) {
			lsn += rem;
			continue;
		}
		const uint8_t *h = b + WAL_HDR_SIZE + pos;
		uint32_t size = ld32(h);
		uint64_t padded = ((uint64_t)size + 7) & ~7ull;
		if (ld64(h + 8) != lsn || size < WAL_REC_HDR || padded > rem ||
		    ld64(h + 16) != rec_checksum(h, size, g->salt))
			break;
		if (g->n == cap) {
			cap = cap ? 2 * cap : 64;
			void *nr = realloc(g->r, cap * sizeof(*g->r));
			if (!nr) {
				free(b);
				dmg_log_free(g);
				return -ENOMEM;
			}
			g->r = nr;
		}
		g->r[g->n++] = (struct dmg_logrec){ lsn, WAL_HDR_SIZE + pos, size, ld32(h + 4) };
		lsn += ld32(h + 4) == WAL_PAD ? rem : padded;
	}
	g->end = lsn;
	free(b);
	return 0;
}

void dmg_log_free(struct dmg_log *g)
{
	free(g->r);
	memset(g, 0, sizeof(*g));
}

int dmg_log_reseal(const char *wal, uint64_t salt, uint64_t off)
{
	uint8_t *b;
	size_t n;
	int rc = dmg_read_file(wal, &b, &n);
	if (rc < 0)
		return rc;
	uint32_t size = off + WAL_REC_HDR <= n ? ld32(b + off) : 0;
	if (size < WAL_REC_HDR || off + size > n) {
		free(b);
		return -EINVAL;
	}
	uint8_t ck[8];
	st64(ck, rec_checksum(b + off, size, salt));
	free(b);
	return dmg_write_at(wal, off + 16, ck, 8);
}

/* ---- damage helpers ---- */

static int flip_byte(const char *path, uint64_t off, uint8_t mask)
{
	uint8_t *b;
	size_t n;
	int rc = dmg_read_file(path, &b, &n);
	if (rc < 0)
		return rc;
	if (off >= n) {
		free(b);
		return -EINVAL;
	}
	uint8_t v = b[off] ^ mask;
	free(b);
	return dmg_write_at(path, off, &v, 1);
}

static int load(const char *path, struct dmg_layout *L, char *msg, size_t len)
{
	return dmg_layout_load(path, L, msg, len);
}

/* Find a page or fail the case. */
#define FIND(var, L, kind, tree, level, nth, what)                                           \
	do {                                                                                 \
		var = dmg_layout_find(L, kind, tree, level, nth);                            \
		if (!var) {                                                                  \
			dmg_layout_free(L);                                                  \
			return fail(msg, len, -ENOENT, "base store has no %s", what);        \
		}                                                                            \
	} while (0)

static int write_page(const char *path, pgno_t pg, const uint8_t *p)
{
	return dmg_write_at(path, pg * PS, p, PS);
}

/* Flip a byte in the middle of a page of `kind` in `tree`, checksum left wrong. */
static int flip_page(const char *path, uint64_t seed, int kind, int tree, int level,
		     const char *what, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(pg, &L, kind, tree, level, seed, what);
	uint32_t off = kind == DK_OVF ? L.pg[pg].covered / 2 : PS / 2 + 17;
	dmg_layout_free(&L);
	say("flipped byte %u of %s page %" PRIu64, off, what, pg);
	return flip_byte(path, pg * PS + off, 0x40);
}

/* ---- phase 0: meta ---- */

static int d_meta_slot(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	(void)seed;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	unsigned slot = L.slot;
	bool both = L.valid[0] && L.valid[1];
	dmg_layout_free(&L);
	if (!both)
		return fail(msg, len, -ENOENT, "base store: one meta slot invalid already");
	say("flipped byte 64 of meta slot %u (the current one)", slot);
	return flip_byte(path, (uint64_t)slot * PS + 64, 0x01);
}

static int d_meta_older(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	(void)seed;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	unsigned slot = !L.slot;
	bool both = L.valid[0] && L.valid[1];
	dmg_layout_free(&L);
	if (!both)
		return fail(msg, len, -ENOENT, "base store: one meta slot invalid already");
	say("flipped byte 64 of meta slot %u (the older one)", slot);
	return flip_byte(path, (uint64_t)slot * PS + 64, 0x01);
}

static int d_meta_both(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	int rc = flip_byte(path, 64, 0x01);
	if (rc == 0)
		rc = flip_byte(path, PS + 64, 0x01);
	say("flipped byte 64 of both meta slots");
	return rc;
}

static int d_meta_short(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	(void)seed;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	uint64_t pc = L.meta.page_count;
	dmg_layout_free(&L);
	say("truncated to %" PRIu64 " pages (page_count %" PRIu64 ")", pc - 1, pc);
	return truncate(path, (off_t)((pc - 1) * PS)) < 0 ? -errno : 0;
}

/* ---- phase 1: pages ---- */

static int d_leaf_flip(const char *path, uint64_t seed, char *msg, size_t len)
{
	return flip_page(path, seed + 1, DK_LEAF, T_DATA, -1, "T_DATA leaf", msg, len);
}

static int d_inode_leaf_flip(const char *path, uint64_t seed, char *msg, size_t len)
{
	return flip_page(path, seed + 1, DK_LEAF, T_INODE, -1, "T_INODE leaf", msg, len);
}

static int d_dirent_leaf_flip(const char *path, uint64_t seed, char *msg, size_t len)
{
	return flip_page(path, seed + 1, DK_LEAF, T_DIRENT, -1, "T_DIRENT leaf", msg, len);
}

static int d_branch_flip(const char *path, uint64_t seed, char *msg, size_t len)
{
	return flip_page(path, seed, DK_BRANCH, T_DATA, -1, "T_DATA branch", msg, len);
}

static int d_catalog_flip(const char *path, uint64_t seed, char *msg, size_t len)
{
	return flip_page(path, seed, DK_LEAF, DMG_CATALOG, -1, "catalog", msg, len);
}

static int d_overflow_flip(const char *path, uint64_t seed, char *msg, size_t len)
{
	return flip_page(path, seed + 7, DK_OVF, T_DATA, -1, "T_DATA overflow", msg, len);
}

static int d_freelist_flip(const char *path, uint64_t seed, char *msg, size_t len)
{
	return flip_page(path, seed, DK_LEAF, DMG_FREEDB, -1, "free-list tree", msg, len);
}

/* Read page `pg` of L's image into a copy, let `edit` change it, reseal at `at`, write. */
static int rewrite(const char *path, struct dmg_layout *L, pgno_t pg, pgno_t at,
		   void (*edit)(uint8_t *p, void *ctx), void *ctx, bool reseal)
{
	uint8_t p[PS];
	memcpy(p, L->img + pg * PS, PS);
	if (edit)
		edit(p, ctx);
	if (reseal)
		dmg_page_reseal(p, at);
	return write_page(path, at, p);
}

static int d_misdirected(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t a, b;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(a, &L, DK_LEAF, T_DATA, 0, seed, "T_DATA leaf");
	FIND(b, &L, DK_LEAF, T_DATA, 0, seed + 1, "second T_DATA leaf");
	if (a == b) {
		dmg_layout_free(&L);
		return fail(msg, len, -ENOENT, "base store: one T_DATA leaf");
	}
	rc = rewrite(path, &L, a, b, NULL, NULL, false);
	say("copied T_DATA leaf %" PRIu64 " (txnid %" PRIu64 ") over leaf %" PRIu64
	    " (txnid %" PRIu64 ")", a, page_txnid(L.img + a * PS), b, page_txnid(L.img + b * PS));
	dmg_layout_free(&L);
	return rc;
}

static void edit_txnid_older(uint8_t *p, void *ctx)
{
	(void)ctx;
	st64(p + PH_TXNID, page_txnid(p) - 1);
}

static int d_stale(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(pg, &L, DK_LEAF, T_DATA, 0, seed + 2, "T_DATA leaf");
	rc = rewrite(path, &L, pg, pg, edit_txnid_older, NULL, true);
	say("T_DATA leaf %" PRIu64 ": header txnid %" PRIu64 " -> %" PRIu64 ", resealed", pg,
	    page_txnid(L.img + pg * PS), page_txnid(L.img + pg * PS) - 1);
	dmg_layout_free(&L);
	return rc;
}

static void edit_level(uint8_t *p, void *ctx)
{
	(void)ctx;
	p[PH_LEVEL] = 1;
}

static int d_level(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(pg, &L, DK_LEAF, T_DATA, 0, seed + 3, "T_DATA leaf");
	rc = rewrite(path, &L, pg, pg, edit_level, NULL, true);
	say("T_DATA leaf %" PRIu64 ": level 0 -> 1, resealed", pg);
	dmg_layout_free(&L);
	return rc;
}

static void edit_swap_slots(uint8_t *p, void *ctx)
{
	(void)ctx;
	uint16_t a = ld16(p + PH_SIZE), b = ld16(p + PH_SIZE + 2);
	st16(p + PH_SIZE, b);
	st16(p + PH_SIZE + 2, a);
}

static int d_structure(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(pg, &L, DK_LEAF, T_DATA, 0, seed + 4, "T_DATA leaf");
	rc = rewrite(path, &L, pg, pg, edit_swap_slots, NULL, true);
	say("T_DATA leaf %" PRIu64 ": slots 0 and 1 swapped (keys out of order), resealed", pg);
	dmg_layout_free(&L);
	return rc;
}

struct cell_edit {
	unsigned cell;
	pgno_t pgno;
	txnid_t txnid;
	bool set_txnid;
};

static void edit_branch_child(uint8_t *p, void *ctx)
{
	struct cell_edit *ce = ctx;
	uint8_t *c = p + ld16(p + PH_SIZE + 2 * ce->cell);
	st64(c + BC_CHILD_PGNO, ce->pgno);
	if (ce->set_txnid)
		st64(c + BC_CHILD_TXNID, ce->txnid);
}

static int d_out_of_range(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(pg, &L, DK_BRANCH, T_DATA, -1, seed, "T_DATA branch");
	struct cell_edit ce = { page_nkeys(L.img + pg * PS) - 1, L.meta.page_count + 1000, 0,
				false };
	rc = rewrite(path, &L, pg, pg, edit_branch_child, &ce, true);
	say("T_DATA branch %" PRIu64 ": cell %u child -> %" PRIu64 " (page_count %" PRIu64 ")",
	    pg, ce.cell, ce.pgno, L.meta.page_count);
	dmg_layout_free(&L);
	return rc;
}

static int d_shared(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(pg, &L, DK_BRANCH, T_DATA, 1, seed, "T_DATA branch of level 1");
	const uint8_t *p = L.img + pg * PS;
	unsigned n = page_nkeys(p);
	if (n < 2) {
		dmg_layout_free(&L);
		return fail(msg, len, -ENOENT, "branch with one child");
	}
	const uint8_t *sib = page_cell(p, n - 2);
	struct cell_edit ce = { n - 1, branch_child(sib), branch_child_txnid(sib), true };
	rc = rewrite(path, &L, pg, pg, edit_branch_child, &ce, true);
	say("T_DATA branch %" PRIu64 ": cell %u -> child %" PRIu64 " of cell %u (was %" PRIu64
	    ")", pg, n - 1, ce.pgno, n - 2, branch_child(page_cell(p, n - 1)));
	dmg_layout_free(&L);
	return rc;
}

/* The first leaf cell of page p with an overflow value. */
static int ovf_cell(const uint8_t *p)
{
	for (unsigned i = 0; i < page_nkeys(p); i++)
		if (leaf_vtype(page_cell(p, i)) == VTYPE_OVERFLOW)
			return (int)i;
	return -1;
}

static void edit_ovf_pgno(uint8_t *p, void *ctx)
{
	uint8_t *c = p + ld16(p + PH_SIZE + 2 * (unsigned)ovf_cell(p));
	st64(c + LC_KEY + ld16(c + LC_KLEN) + OVF_PGNO, *(pgno_t *)ctx);
}

static int d_overflow_range(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	FIND(pg, &L, DK_LEAF, T_DATA, 0, seed + 5, "T_DATA leaf");
	if (ovf_cell(L.img + pg * PS) < 0) {
		dmg_layout_free(&L);
		return fail(msg, len, -ENOENT, "T_DATA leaf without overflow value");
	}
	pgno_t bad = L.meta.page_count + 50;
	rc = rewrite(path, &L, pg, pg, edit_ovf_pgno, &bad, true);
	say("T_DATA leaf %" PRIu64 ": overflow ref of cell %d -> page %" PRIu64, pg,
	    ovf_cell(L.img + pg * PS), bad);
	dmg_layout_free(&L);
	return rc;
}

struct trec_edit {
	unsigned tree;
	int field; /* TREC_* offset */
	uint64_t delta;
	bool set32;
	uint32_t v32;
};

static void edit_catalog(uint8_t *p, void *ctx)
{
	struct trec_edit *te = ctx;
	for (unsigned i = 0; i < page_nkeys(p); i++) {
		uint8_t *c = p + ld16(p + PH_SIZE + 2 * i);
		if (ld16(c + LC_KLEN) == 2 && c[LC_KEY] == 't' &&
		    c[LC_KEY + 1] == '0' + te->tree) {
			uint8_t *v = c + LC_KEY + 2;
			if (te->set32)
				st32(v + te->field, te->v32);
			else
				st64(v + te->field, ld64(v + te->field) + te->delta);
		}
	}
}

static int catalog_edit(const char *path, struct trec_edit *te, const char *what, char *msg,
			size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	if (!L.has_tree[te->tree]) {
		dmg_layout_free(&L);
		return fail(msg, len, -ENOENT, "no tree t%u", te->tree);
	}
	FIND(pg, &L, DK_LEAF, DMG_CATALOG, -1, 0, "catalog leaf");
	rc = rewrite(path, &L, pg, pg, edit_catalog, te, true);
	say("catalog page %" PRIu64 ": tree record of t%u: %s, resealed", pg, te->tree, what);
	dmg_layout_free(&L);
	return rc;
}

static int d_catalog_entry(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	struct trec_edit te = { T_XATTR, TREC_DEPTH, 0, true, 200 };
	return catalog_edit(path, &te, "depth 200", msg, len);
}

static int d_tree_record(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	struct trec_edit te = { T_XATTR, TREC_ENTRIES, 1, false, 0 };
	return catalog_edit(path, &te, "entries + 1", msg, len);
}

/* A separator raised above the first key of its child: key order within the branch holds. */
static int d_separator(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	uint64_t n = dmg_layout_count(&L, DK_BRANCH, INT8_MIN, 1);
	for (uint64_t k = 0; k < n; k++) {
		pgno_t pg = dmg_layout_find(&L, DK_BRANCH, INT8_MIN, 1, seed + k);
		const uint8_t *p = L.img + pg * PS;
		for (unsigned i = 1; i + 1 < page_nkeys(p); i++) {
			const uint8_t *c = page_cell(p, i), *next = page_cell(p, i + 1);
			const uint8_t *child = L.img + branch_child(c) * PS;
			const uint8_t *lc = page_cell(child, 0);
			unsigned klen = branch_klen(c);
			if (page_type(child) != PAGE_LEAF || leaf_klen(lc) != klen ||
			    memcmp(leaf_key(lc), branch_key(c), klen) != 0 || klen == 0 ||
			    page_nkeys(child) < 2)
				continue;
			/* new separator: the child's second key, if it has this key's length
			 * and stays below the next separator */
			const uint8_t *lc2 = page_cell(child, 1);
			if (leaf_klen(lc2) != klen ||
			    key_cmp(leaf_key(lc2), klen, branch_key(next), branch_klen(next)) >= 0)
				continue;
			uint8_t q[PS];
			memcpy(q, p, PS);
			memcpy(q + ld16(q + PH_SIZE + 2 * i) + BC_KEY, leaf_key(lc2), klen);
			dmg_page_reseal(q, pg);
			rc = write_page(path, pg, q);
			say("branch %" PRIu64 " (t%d) cell %u: separator raised to its child %" PRIu64
			    "'s second key", pg, L.pg[pg].tree, i, branch_child(c));
			dmg_layout_free(&L);
			return rc;
		}
	}
	dmg_layout_free(&L);
	return fail(msg, len, -ENOENT, "no branch cell fit for a raised separator");
}

/* ---- phase 3: space ---- */

static int meta_rewrite(const char *path, struct dmg_layout *L, const struct meta *m)
{
	uint8_t p[PS];
	meta_encode(m, L->slot, p);
	return write_page(path, L->slot, p);
}

static int d_leaked(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	(void)seed;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	struct meta m = L.meta;
	m.page_count++;
	if (L.npages < m.page_count) {
		uint8_t z[PS] = { 0 };
		rc = dmg_write_at(path, (m.page_count - 1) * PS, z, PS);
	}
	if (rc == 0)
		rc = meta_rewrite(path, &L, &m);
	say("meta slot %u: page_count %" PRIu64 " -> %" PRIu64, L.slot, L.meta.page_count,
	    m.page_count);
	dmg_layout_free(&L);
	return rc;
}

static int d_free_count(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_layout L;
	(void)seed;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	struct meta m = L.meta;
	m.free_pages++;
	rc = meta_rewrite(path, &L, &m);
	say("meta slot %u: free_pages %" PRIu64 " -> %" PRIu64, L.slot, L.meta.free_pages,
	    m.free_pages);
	dmg_layout_free(&L);
	return rc;
}

/* The first page of the first run in the free-list tree. */
static pgno_t first_free(const struct dmg_layout *L)
{
	for (uint64_t i = 0; i < L->npages; i++) {
		if (L->pg[i].kind != DK_LEAF || L->pg[i].tree != DMG_FREEDB)
			continue;
		const uint8_t *p = L->img + i * PS;
		for (unsigned k = 0; k < page_nkeys(p); k++) {
			const uint8_t *c = page_cell(p, k);
			if (leaf_vtype(c) == VTYPE_INLINE && leaf_vlen(c) >= FREE_RUN_SIZE)
				return ld64(leaf_val(c));
		}
	}
	return 0;
}

static int add_deferred(const char *path, bool used, char *msg, size_t len)
{
	struct dmg_layout L;
	pgno_t pg;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	if (used)
		FIND(pg, &L, DK_LEAF, T_INODE, 0, 1, "T_INODE leaf");
	else
		pg = first_free(&L);
	struct meta m = L.meta;
	if (!pg || m.n_deferred >= META_DEFERRED_MAX) {
		dmg_layout_free(&L);
		return fail(msg, len, -ENOENT, "no page or no deferred slot");
	}
	m.deferred[m.n_deferred].pgno = pg;
	m.deferred[m.n_deferred].count = 1;
	m.n_deferred++;
	m.free_pages++;
	rc = meta_rewrite(path, &L, &m);
	say("meta slot %u: deferred run %" PRIu64 "+1 added (%s), free_pages + 1", L.slot, pg,
	    used ? "a T_INODE leaf" : "already on the free list");
	dmg_layout_free(&L);
	return rc;
}

/* Edit the first free-list chunk (an inline value of whole runs) and reseal its page. */
static int freelist_edit(const char *path, bool range, char *msg, size_t len)
{
	struct dmg_layout L;
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	for (uint64_t i = 0; i < L.npages; i++) {
		if (L.pg[i].kind != DK_LEAF || L.pg[i].tree != DMG_FREEDB)
			continue;
		uint8_t p[PS];
		memcpy(p, L.img + i * PS, PS);
		for (unsigned k = 0; k < page_nkeys(p); k++) {
			uint8_t *c = p + ld16(p + PH_SIZE + 2 * k);
			uint32_t vlen = leaf_vlen(c);
			if (leaf_vtype(c) != VTYPE_INLINE || vlen < FREE_RUN_SIZE ||
			    vlen % FREE_RUN_SIZE)
				continue;
			uint8_t *run = c + LC_KEY + leaf_klen(c);
			if (range) {
				/* the first run moved past the end of the file's pages */
				say("free-list page %" PRIu64 ": run %" PRIu64 "+%u moved to %"
				    PRIu64 ", resealed", i, ld64(run), ld32(run + 8),
				    L.meta.page_count + 10);
				st64(run, L.meta.page_count + 10);
			} else {
				/* the chunk one byte short of whole runs */
				say("free-list page %" PRIu64 ": chunk %u value %u -> %u bytes, "
				    "resealed", i, k, vlen, vlen - 1);
				st32(c + LC_VLEN, vlen - 1);
			}
			dmg_page_reseal(p, i);
			rc = write_page(path, i, p);
			dmg_layout_free(&L);
			return rc;
		}
	}
	dmg_layout_free(&L);
	return fail(msg, len, -ENOENT, "no free-list chunk");
}

static int d_free_range(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	return freelist_edit(path, true, msg, len);
}

static int d_freelist_chunk(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	return freelist_edit(path, false, msg, len);
}

static int d_free_and_used(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	return add_deferred(path, true, msg, len);
}

static int d_double_free(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	return add_deferred(path, false, msg, len);
}

/* ---- phase 4: log ---- */

static int log_load(const char *path, struct dmg_log *g, char *msg, size_t len)
{
	struct dmg_layout L;
	char wal[PATH_MAX];
	int rc = load(path, &L, msg, len);
	if (rc < 0)
		return rc;
	lsn_t from = L.meta.lsn;
	dmg_layout_free(&L);
	wal_of(path, wal);
	rc = dmg_log_load(wal, from, g);
	if (rc < 0)
		return fail(msg, len, rc, "log: %d", rc);
	size_t real = 0;
	for (size_t i = 0; i < g->n; i++)
		real += g->r[i].type != WAL_PAD;
	if (real < 3) {
		dmg_log_free(g);
		return fail(msg, len, -ENOENT, "log: %zu live records (want >= 3)", real);
	}
	return 0;
}

/* The last live record that is not a pad. */
static const struct dmg_logrec *last_rec(const struct dmg_log *g)
{
	for (size_t i = g->n; i-- > 0;)
		if (g->r[i].type != WAL_PAD)
			return &g->r[i];
	return NULL;
}

static int d_torn_tail(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_log g;
	char wal[PATH_MAX];
	(void)seed;
	int rc = log_load(path, &g, msg, len);
	if (rc < 0)
		return rc;
	const struct dmg_logrec *r = last_rec(&g);
	uint64_t off = r->off + WAL_REC_HDR + (r->size - WAL_REC_HDR) / 2;
	wal_of(path, wal);
	rc = flip_byte(wal, off, 0x08);
	say("log: flipped a payload byte of the last record (LSN %" PRIu64 ", %u bytes)", r->lsn,
	    r->size);
	dmg_log_free(&g);
	return rc;
}

static int d_stale_record(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_log g;
	char wal[PATH_MAX];
	(void)seed;
	int rc = log_load(path, &g, msg, len);
	if (rc < 0)
		return rc;
	/* a record in the middle, torn in its LSN field (as a power cut leaves it): the log
	 * ends there, and the valid records after it are stale */
	const struct dmg_logrec *r = &g.r[g.n / 2];
	uint8_t z[8] = { 0 };
	wal_of(path, wal);
	rc = dmg_write_at(wal, r->off + 8, z, 8);
	say("log: zeroed the LSN field of record %zu of %zu (LSN %" PRIu64 ")", g.n / 2, g.n,
	    r->lsn);
	dmg_log_free(&g);
	return rc;
}

static int d_log_header(const char *path, uint64_t seed, char *msg, size_t len)
{
	char wal[PATH_MAX];
	(void)seed;
	wal_of(path, wal);
	say("log: flipped byte 100 of the header");
	return flip_byte(wal, 100, 0x01);
}

static int d_log_missing(const char *path, uint64_t seed, char *msg, size_t len)
{
	char wal[PATH_MAX];
	(void)seed;
	wal_of(path, wal);
	say("log: deleted");
	return unlink(wal) < 0 ? -errno : 0;
}

static int d_log_short(const char *path, uint64_t seed, char *msg, size_t len)
{
	char wal[PATH_MAX];
	struct stat s;
	(void)seed;
	wal_of(path, wal);
	if (stat(wal, &s) < 0)
		return -errno;
	off_t to = (off_t)WAL_HDR_SIZE + (s.st_size - (off_t)WAL_HDR_SIZE) / 2;
	say("log: truncated from %lld to %lld bytes", (long long)s.st_size, (long long)to);
	return truncate(wal, to) < 0 ? -errno : 0;
}

static int d_record_bad(const char *path, uint64_t seed, char *msg, size_t len)
{
	struct dmg_log g;
	char wal[PATH_MAX];
	(void)seed;
	int rc = log_load(path, &g, msg, len);
	if (rc < 0)
		return rc;
	const struct dmg_logrec *r = last_rec(&g);
	/* the op count (u32, first payload bytes) far beyond what the payload holds */
	uint8_t cnt[4];
	st32(cnt, 0x7fffffffu);
	wal_of(path, wal);
	rc = dmg_write_at(wal, r->off + WAL_REC_HDR, cnt, 4);
	if (rc == 0)
		rc = dmg_log_reseal(wal, g.salt, r->off);
	say("log: last record (LSN %" PRIu64 "): op count 0x7fffffff, checksum recomputed",
	    r->lsn);
	dmg_log_free(&g);
	return rc;
}

/* ---- phase 5: the namespace, through the raw engine ---- */

struct ns {
	struct engine *e;
	struct engine_batch *b;
	char *msg;
	size_t len;
};

static int ns_open(struct ns *n, const char *path, char *msg, size_t len)
{
	struct engine_options eo = { .no_checkpoint_thread = true };
	n->msg = msg;
	n->len = len;
	int rc = engine_open(path, &eo, &n->e);
	if (rc < 0)
		return fail(msg, len, rc, "engine_open = %d", rc);
	n->b = engine_batch_new();
	if (!n->b) {
		engine_close(n->e);
		return -ENOMEM;
	}
	return 0;
}

/* Commit the batch (unless rc < 0) and close. */
static int ns_close(struct ns *n, int rc)
{
	if (rc == 0)
		rc = engine_commit(n->e, n->b, NULL);
	engine_batch_free(n->b);
	int rc2 = engine_close(n->e);
	return rc < 0 ? rc : rc2;
}

static int ns_lookup(struct ns *n, uint64_t parent, const char *name, uint64_t *ino,
		     unsigned *type)
{
	uint8_t k[8 + KVFS_NAME_MAX], v[DIRENT_VALUE];
	size_t klen = dirent_key(k, parent, name, strlen(name)), vlen;
	int rc = engine_get(n->e, T_DIRENT, k, klen, v, sizeof(v), &vlen);
	if (rc < 0)
		return fail(n->msg, n->len, rc, "lookup %" PRIu64 "/%s: %d", parent, name, rc);
	*ino = ld64(v);
	if (type)
		*type = v[8];
	return 0;
}

static int ns_path(struct ns *n, const char *path, uint64_t *ino)
{
	char buf[PATH_MAX];
	uint64_t cur = NS_ROOT_INO;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int rc = ns_lookup(n, cur, c, &cur, NULL);
		if (rc < 0)
			return rc;
	}
	*ino = cur;
	return 0;
}

static int ns_get_inode(struct ns *n, uint64_t ino, uint8_t *rec, size_t cap, size_t *rlen)
{
	uint8_t k[8];
	ino_key(k, ino);
	int rc = engine_get(n->e, T_INODE, k, 8, rec, cap, rlen);
	if (rc == 0 && *rlen > cap)
		rc = -ERANGE;
	return rc < 0 ? fail(n->msg, n->len, rc, "inode %" PRIu64 ": %d", ino, rc) : 0;
}

static int ns_put_inode(struct ns *n, uint64_t ino, const uint8_t *rec, size_t rlen)
{
	uint8_t k[8];
	ino_key(k, ino);
	return engine_batch_put(n->b, T_INODE, k, 8, rec, rlen);
}

/* Change one field of an inode record (NS_IN_NLINK, NS_IN_BLOCKS or NS_IN_PARENT) by `delta`
 * (or set it); the record is written back as v2 (ns_inode_encode), its inline bytes kept. */
static int ns_inode_field(struct ns *n, uint64_t ino, unsigned field, int64_t delta, bool set,
			  uint64_t v)
{
	uint8_t rec[NS_INODE_HDR_ANY + SYMLINK_MAX + INLINE_MAX];
	uint8_t out[NS_INODE_HDR_MAX + SYMLINK_MAX + INLINE_MAX];
	struct ns_inode h;
	size_t rlen;
	int rc = ns_get_inode(n, ino, rec, sizeof(rec), &rlen);
	if (rc < 0)
		return rc;
	int hl = ns_inode_decode(rec, rlen, &h, NULL);
	if (hl < 0)
		return fail(n->msg, n->len, hl, "inode %" PRIu64 ": record does not parse", ino);
	switch (field) {
	case NS_IN_NLINK:
		h.nlink = (uint32_t)(set ? v : h.nlink + (uint64_t)delta);
		break;
	case NS_IN_BLOCKS:
		h.blocks = set ? v : h.blocks + (uint64_t)delta;
		break;
	case NS_IN_PARENT:
		h.parent = set ? v : h.parent + (uint64_t)delta;
		break;
	default:
		return fail(n->msg, n->len, -EINVAL, "field %u", field);
	}
	size_t ol = ns_inode_encode(&h, out);
	memcpy(out + ol, rec + hl, rlen - (size_t)hl);
	return ns_put_inode(n, ino, out, ol + rlen - (size_t)hl);
}

static int ns_put_dirent(struct ns *n, uint64_t parent, const char *name, uint64_t ino,
			 unsigned type)
{
	uint8_t k[8 + KVFS_NAME_MAX], v[DIRENT_VALUE];
	size_t klen = dirent_key(k, parent, name, strlen(name));
	st64(v, ino);
	v[8] = (uint8_t)type;
	return engine_batch_put(n->b, T_DIRENT, k, klen, v, sizeof(v));
}

static int ns_del_dirent(struct ns *n, uint64_t parent, const char *name)
{
	uint8_t k[8 + KVFS_NAME_MAX];
	size_t klen = dirent_key(k, parent, name, strlen(name));
	return engine_batch_del(n->b, T_DIRENT, k, klen);
}

/* An inode number below next_ino with no inode. */
static int ns_free_ino(struct ns *n, uint64_t *out)
{
	uint8_t k[8], v[8], rec[8];
	size_t vlen;
	int rc = engine_get(n->e, T_SUPER, NS_SUPER_NEXT_INO, 8, v, sizeof(v), &vlen);
	if (rc < 0)
		return fail(n->msg, n->len, rc, "next_ino: %d", rc);
	uint64_t next = ld64(v);
	for (uint64_t ino = next - 1; ino > NS_ROOT_INO; ino--) {
		ino_key(k, ino);
		rc = engine_get(n->e, T_INODE, k, 8, rec, sizeof(rec), &vlen);
		if (rc == -ENOENT) {
			*out = ino;
			return 0;
		}
	}
	return fail(n->msg, n->len, -ENOENT, "no free inode number below %" PRIu64, next);
}

#define NS_BEGIN(path)                                                                       \
	struct ns n;                                                                         \
	int rc = ns_open(&n, path, msg, len);                                                \
	(void)seed;                                                                          \
	if (rc < 0)                                                                          \
		return rc

static int d_nlink(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	NS_BEGIN(path);
	rc = ns_path(&n, "f/020", &ino);
	if (rc == 0)
		rc = ns_inode_field(&n, ino, NS_IN_NLINK, 1, false, 0);
	say("f/020 (inode %" PRIu64 "): nlink 1 -> 2", ino);
	return ns_close(&n, rc);
}

static int d_dangling(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	NS_BEGIN(path);
	rc = ns_free_ino(&n, &ino);
	if (rc == 0)
		rc = ns_put_dirent(&n, NS_ROOT_INO, "dangling", ino, S_IFREG >> 12);
	say("dirent /dangling -> inode %" PRIu64 " (no such inode)", ino);
	return ns_close(&n, rc);
}

static int d_dirent_type(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t f, ino;
	NS_BEGIN(path);
	rc = ns_path(&n, "f", &f);
	if (rc == 0)
		rc = ns_lookup(&n, f, "021", &ino, NULL);
	if (rc == 0)
		rc = ns_put_dirent(&n, f, "021", ino, S_IFIFO >> 12);
	say("dirent f/021 (inode %" PRIu64 ", regular file): type DT_FIFO", ino);
	return ns_close(&n, rc);
}

static int d_lost_inode(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t f, ino;
	NS_BEGIN(path);
	rc = ns_path(&n, "f", &f);
	if (rc == 0)
		rc = ns_lookup(&n, f, "022", &ino, NULL);
	if (rc == 0)
		rc = ns_del_dirent(&n, f, "022");
	/* the inode keeps nlink 1: the one name it should have is the one lost+found gives */
	say("dirent f/022 deleted; inode %" PRIu64 " kept (nlink 1)", ino);
	return ns_close(&n, rc);
}

static int d_cycle(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t a, b, c;
	NS_BEGIN(path);
	rc = ns_path(&n, "docs/a", &a);
	if (rc == 0)
		rc = ns_path(&n, "docs/a/b", &b);
	if (rc == 0)
		rc = ns_path(&n, "docs/a/b/c", &c);
	/* b leaves a and becomes c's child: b -> c -> b, detached; nlinks and the parent field
	 * kept consistent so that only the cycle is wrong */
	if (rc == 0)
		rc = ns_del_dirent(&n, a, "b");
	if (rc == 0)
		rc = ns_put_dirent(&n, c, "loop", b, S_IFDIR >> 12);
	if (rc == 0)
		rc = ns_inode_field(&n, a, NS_IN_NLINK, -1, false, 0);
	if (rc == 0)
		rc = ns_inode_field(&n, c, NS_IN_NLINK, 1, false, 0);
	if (rc == 0)
		rc = ns_inode_field(&n, b, NS_IN_PARENT, 0, true, c);
	say("docs/a/b (inode %" PRIu64 ") moved under its child c (inode %" PRIu64 ") as 'loop'",
	    b, c);
	return ns_close(&n, rc);
}

static int d_dir_links(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t a;
	NS_BEGIN(path);
	rc = ns_path(&n, "docs/a", &a);
	if (rc == 0)
		rc = ns_put_dirent(&n, NS_ROOT_INO, "alias", a, S_IFDIR >> 12);
	/* the root's nlink counts the new subdirectory name, so only the double name is wrong */
	if (rc == 0)
		rc = ns_inode_field(&n, NS_ROOT_INO, NS_IN_NLINK, 1, false, 0);
	say("dirent /alias -> docs/a (inode %" PRIu64 "), root nlink + 1", a);
	return ns_close(&n, rc);
}

static int d_parent(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t a;
	NS_BEGIN(path);
	rc = ns_path(&n, "docs/a", &a);
	if (rc == 0)
		rc = ns_inode_field(&n, a, NS_IN_PARENT, 0, true, NS_ROOT_INO);
	say("docs/a (inode %" PRIu64 "): parent field -> 1 (is docs)", a);
	return ns_close(&n, rc);
}

static int d_orphan_stale(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	uint8_t k[8];
	NS_BEGIN(path);
	rc = ns_path(&n, "f/023", &ino);
	ino_key(k, ino);
	if (rc == 0)
		rc = engine_batch_put(n.b, T_ORPHAN, k, 8, "", 0);
	say("orphan entry for f/023 (inode %" PRIu64 ", linked)", ino);
	return ns_close(&n, rc);
}

/* A punched range on the orphan list (namespace.c "Bounded changes"), value [first, last). */
static int put_range(struct ns *n, uint64_t ino, uint64_t first, uint64_t last)
{
	uint8_t k[8], v[ORPHAN_RANGE_LEN];
	ino_key(k, ino);
	st64(v, first);
	st64(v + 8, last);
	return engine_batch_put(n->b, T_ORPHAN, k, 8, v, sizeof(v));
}

static int d_orphan_punch(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	uint8_t k[16];
	NS_BEGIN(path);
	rc = ns_path(&n, "f/034", &ino); /* 3 blocks (9000 bytes) */
	/* a punch of blocks 1 and 2 whose first step deleted block 1 only */
	block_key(k, ino, 1);
	if (rc == 0)
		rc = engine_batch_del(n.b, T_DATA, k, 16);
	if (rc == 0)
		rc = ns_inode_field(&n, ino, NS_IN_BLOCKS, -1, false, 0);
	if (rc == 0)
		rc = put_range(&n, ino, 1, 3);
	say("f/034 (inode %" PRIu64 ", 3 blocks): a hole punched in blocks [1, 3) cut short, "
	    "block 2 left", ino);
	return ns_close(&n, rc);
}

static int d_orphan_range_bad(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	NS_BEGIN(path);
	rc = ns_path(&n, "f/035", &ino); /* 2 blocks (5000 bytes) */
	if (rc == 0)
		rc = put_range(&n, ino, 1, 9);
	say("f/035 (inode %" PRIu64 ", 2 blocks): orphan entry, a punched range [1, 9) past "
	    "its blocks", ino);
	return ns_close(&n, rc);
}

static int d_block_orphan(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	uint8_t k[16], blk[BLOCK];
	NS_BEGIN(path);
	rc = ns_free_ino(&n, &ino);
	block_key(k, ino, 0);
	dmg_content("orphan block", blk, sizeof(blk));
	if (rc == 0)
		rc = engine_batch_put(n.b, T_DATA, k, 16, blk, sizeof(blk));
	say("data block 0 of inode %" PRIu64 " (no such inode)", ino);
	return ns_close(&n, rc);
}

static int d_xattr_orphan(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	uint8_t k[8 + 16];
	NS_BEGIN(path);
	rc = ns_free_ino(&n, &ino);
	ino_key(k, ino);
	memcpy(k + 8, "user.orphan", 11);
	if (rc == 0)
		rc = engine_batch_put(n.b, T_XATTR, k, 8 + 11, "v", 1);
	say("xattr user.orphan of inode %" PRIu64 " (no such inode)", ino);
	return ns_close(&n, rc);
}

static int d_size(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	uint8_t k[16], blk[BLOCK];
	NS_BEGIN(path);
	rc = ns_path(&n, "f/027", &ino); /* one block (3000 bytes) */
	block_key(k, ino, 10);
	dmg_content("past eof", blk, sizeof(blk));
	if (rc == 0)
		rc = engine_batch_put(n.b, T_DATA, k, 16, blk, sizeof(blk));
	if (rc == 0)
		rc = ns_inode_field(&n, ino, NS_IN_BLOCKS, 1, false, 0);
	say("f/027 (inode %" PRIu64 ", 3000 bytes): block 10 added, blocks + 1", ino);
	return ns_close(&n, rc);
}

static int d_blocks_count(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	NS_BEGIN(path);
	rc = ns_path(&n, "f/028", &ino); /* 3 blocks */
	if (rc == 0)
		rc = ns_inode_field(&n, ino, NS_IN_BLOCKS, 1, false, 0);
	say("f/028 (inode %" PRIu64 "): blocks field + 1", ino);
	return ns_close(&n, rc);
}

static int d_block_bad(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	uint8_t k[16];
	NS_BEGIN(path);
	static uint8_t big[BLOCK + 904]; /* a shorter value is legal: it reads as zero-padded */
	rc = ns_path(&n, "f/029", &ino); /* 2 blocks (5000 bytes) */
	block_key(k, ino, 1);
	if (rc == 0)
		rc = engine_batch_put(n.b, T_DATA, k, 16, big, sizeof(big));
	say("f/029 (inode %" PRIu64 "): block 1 replaced by a %zu-byte value", ino, sizeof(big));
	return ns_close(&n, rc);
}

static int d_next_ino(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint8_t v[8];
	NS_BEGIN(path);
	st64(v, 2);
	rc = engine_batch_put(n.b, T_SUPER, NS_SUPER_NEXT_INO, 8, v, 8);
	say("next_ino -> 2");
	return ns_close(&n, rc);
}

static int d_dirent_bad(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint8_t k[8 + 3];
	NS_BEGIN(path);
	dirent_key(k, NS_ROOT_INO, "bad", 3);
	rc = engine_batch_put(n.b, T_DIRENT, k, sizeof(k), "xyz", 3);
	say("dirent /bad with a 3-byte value");
	return ns_close(&n, rc);
}

static int d_inode_record(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino;
	uint8_t rec[NS_INODE_HDR_ANY + INLINE_MAX];
	size_t rlen;
	NS_BEGIN(path);
	rc = ns_path(&n, "f/030", &ino);
	if (rc == 0)
		rc = ns_get_inode(&n, ino, rec, sizeof(rec), &rlen);
	if (rc == 0)
		rc = ns_put_inode(&n, ino, rec, 10);
	say("f/030 (inode %" PRIu64 "): inode record cut to 10 bytes", ino);
	return ns_close(&n, rc);
}

static int d_root(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint8_t k[8];
	NS_BEGIN(path);
	ino_key(k, NS_ROOT_INO);
	rc = engine_batch_del(n.b, T_INODE, k, 8);
	say("inode 1 (the root) deleted");
	return ns_close(&n, rc);
}

static int d_orphan_pending(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)path;
	(void)seed;
	say("crashed with f/010 unlinked while open (made by the base store)");
	return 0;
}

/* ---- embedded inodes (format version 4, store/ns_format.h "Embedded inodes") ---- */

/* ns_embed's variants: how the embedded inode departs from the rules EI-1..EI-4 */
enum {
	EMB_NO_REF = 1,     /* T_INODE left as it is (a full record as well) */
	EMB_DEL_INODE = 2,  /* T_INODE[ino] deleted: no REF */
	EMB_NLINK2 = 4,     /* the embedded record says nlink 2 */
	EMB_TYPE_FIFO = 8,  /* the dirent's type byte says DT_FIFO */
	EMB_CUT = 16,       /* the embedded record cut to 10 bytes */
	EMB_DEL_DIRENT = 32,/* the dirent deleted after all: only the REF is left */
	EMB_SIZE_4K = 64,   /* the embedded record says size 4096 (a truncation in steps) */
	EMB_OLDER = 128,    /* the embedded record's ctime 1 s before T_INODE's (with EMB_NO_REF) */
	EMB_ALIAS = 256,    /* the same embedded value under links/emb2 too */
	EMB_BAD_NAME = 512, /* the dirent renamed "a/b" (a name with '/'), its REF naming that */
	EMB_REF_BAD = 1024, /* the REF's byte 3 (zero) set: a malformed REF */
};

static int ns_put_ref(struct ns *n, uint64_t ino, uint64_t parent, const char *name)
{
	uint8_t k[8], v[NS_REF_MAX];
	ino_key(k, ino);
	return engine_batch_put(n->b, T_INODE, k, 8, v, ns_ref_encode(v, parent, name,
								       strlen(name)));
}

/*
 * Embed the inode that the dirent `path` names, as namespace.c does for a non-directory with
 * one name (format version 4): the dirent's value becomes ino + type + the inode's record
 * (read from T_INODE), and T_INODE[ino] its INODE REF; `how` (EMB_*) departs from that.
 * Reads the committed state: call it once per inode in a batch.  *ino_out (may be NULL).
 */
static int ns_embed(struct ns *n, const char *path, unsigned how, uint64_t *ino_out)
{
	uint8_t rec[NS_INODE_HDR_ANY + SYMLINK_MAX + 1];
	uint8_t v[DIRENT_VALUE + NS_INODE_HDR_MAX + SYMLINK_MAX + 1];
	char dir[PATH_MAX];
	const char *name = strrchr(path, '/');
	uint64_t parent = NS_ROOT_INO, ino;
	unsigned type;
	size_t rlen, vlen;
	struct ns_inode h;
	int rc = 0;
	if (name) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(name - path), path);
		rc = ns_path(n, dir, &parent);
		name++;
	} else {
		name = path;
	}
	if (rc == 0)
		rc = ns_lookup(n, parent, name, &ino, &type);
	if (rc == 0)
		rc = ns_get_inode(n, ino, rec, sizeof(rec), &rlen);
	if (rc < 0)
		return rc;
	int hl = ns_inode_decode(rec, rlen, &h, NULL);
	if (hl < 0 || (!(how & EMB_NLINK2) && h.nlink != 1 && !S_ISDIR(h.mode)))
		return fail(n->msg, n->len, -EINVAL, "%s: not a record with nlink 1", path);
	if (how & EMB_NLINK2)
		h.nlink = 2;
	if (how & EMB_SIZE_4K)
		h.size = BLOCK;
	if (how & EMB_OLDER)
		h.ctime -= 1000000000;
	st64(v, ino);
	v[8] = (uint8_t)((how & EMB_TYPE_FIFO) ? S_IFIFO >> 12 : type);
	vlen = DIRENT_VALUE + ns_inode_encode(&h, v + DIRENT_VALUE);
	memcpy(v + vlen, rec + hl, rlen - (size_t)hl);
	vlen += rlen - (size_t)hl;
	if (how & EMB_CUT)
		vlen = DIRENT_VALUE + 10;
	uint8_t k[8 + KVFS_NAME_MAX];
	size_t klen = dirent_key(k, parent, name, strlen(name));
	if (how & EMB_BAD_NAME) {
		rc = engine_batch_del(n->b, T_DIRENT, k, klen);
		name = "a/b";
		klen = dirent_key(k, parent, name, strlen(name));
	}
	if (rc == 0)
		rc = engine_batch_put(n->b, T_DIRENT, k, klen, v, vlen);
	if (rc == 0 && (how & EMB_DEL_DIRENT))
		rc = engine_batch_del(n->b, T_DIRENT, k, klen);
	if (rc == 0 && (how & EMB_ALIAS)) {
		uint64_t links;
		rc = ns_path(n, "links", &links);
		if (rc == 0)
			rc = engine_batch_put(n->b, T_DIRENT, k, dirent_key(k, links, "emb2", 4), v,
					      vlen);
	}
	ino_key(k, ino);
	if (rc == 0 && (how & EMB_DEL_INODE)) {
		rc = engine_batch_del(n->b, T_INODE, k, 8);
	} else if (rc == 0 && (how & EMB_REF_BAD)) {
		uint8_t ref[NS_REF_MAX];
		size_t rl = ns_ref_encode(ref, parent, name, strlen(name));
		ref[3] = 1;
		rc = engine_batch_put(n->b, T_INODE, k, 8, ref, rl);
	} else if (rc == 0 && !(how & EMB_NO_REF)) {
		rc = ns_put_ref(n, ino, parent, name);
	}
	if (ino_out)
		*ino_out = ino;
	return rc;
}

/* The sound embedded inodes every embedded case starts from (dmg_make_embedded): files of
 * each size class, in the root's subdirectories and deeper, a file with blocks and xattrs,
 * symlinks, a FIFO, a file with holes. */
static const char *const emb_sound[] = {
	"f/060", "f/061", "f/062", "f/063", "f/064", "f/065", "f/002", "f/003",
	"links/sym", "links/longsym", "links/fifo", "docs/readme", "docs/a/b/c/deep.txt",
	"sparse/holes", "big/one-mib",
};

static int embed_sound(struct ns *n)
{
	int rc = 0;
	for (size_t i = 0; i < sizeof(emb_sound) / sizeof(emb_sound[0]) && rc == 0; i++)
		rc = ns_embed(n, emb_sound[i], 0, NULL);
	return rc;
}

/*
 * Run fn (the sound embedded inodes, then a case's damage: one batch) in a forked child that
 * commits and syncs the batch and dies without engine_close: the changes are only in the
 * log's records, which kvfs-check replays in its model (phase 4 -> phase 5) and a repair's
 * engine_open replays for real.
 */
static int in_log(const char *path, int (*fn)(struct ns *n), char *msg, size_t len)
{
	pid_t pid = fork();
	if (pid < 0)
		return fail(msg, len, -errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct ns n;
		uint64_t lsn = 0;
		int rc = ns_open(&n, path, NULL, 0);
		if (rc == 0)
			rc = embed_sound(&n);
		if (rc == 0 && fn)
			rc = fn(&n);
		if (rc == 0)
			rc = engine_commit(n.e, n.b, &lsn);
		if (rc == 0)
			rc = engine_sync(n.e, lsn);
		_exit(rc == 0 ? 0 : 11);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return fail(msg, len, -errno, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return fail(msg, len, -EIO, "embedding child: status %#x", status);
	return 0;
}

int dmg_make_embedded(const char *path, bool log, char *msg, size_t len)
{
	uint64_t seed = 0;
	if (log) {
		int rc = in_log(path, NULL, msg, len);
		say("%zu inodes embedded in their dirents, in the log only",
		    sizeof(emb_sound) / sizeof(emb_sound[0]));
		return rc;
	}
	NS_BEGIN(path);
	rc = embed_sound(&n);
	say("%zu inodes embedded in their dirents", sizeof(emb_sound) / sizeof(emb_sound[0]));
	return ns_close(&n, rc);
}

/* The dirent key of path (its parent's inode + the last component), and the ino it names. */
static int ns_dirent_of(struct ns *n, const char *path, uint8_t *k, size_t *klen,
			uint64_t *ino)
{
	char dir[PATH_MAX];
	const char *name = strrchr(path, '/');
	uint64_t parent = NS_ROOT_INO;
	int rc = 0;
	if (name) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(name - path), path);
		rc = ns_path(n, dir, &parent);
		name++;
	} else {
		name = path;
	}
	if (rc == 0)
		rc = ns_lookup(n, parent, name, ino, NULL);
	*klen = dirent_key(k, parent, name, strlen(name));
	return rc;
}

static uint64_t xs64(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int dmg_embed_garbage(const char *path, uint64_t seed, char *msg, size_t len)
{
	const size_t n_sound = sizeof(emb_sound) / sizeof(emb_sound[0]);
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x1234567;
	uint8_t k[8 + KVFS_NAME_MAX], k2[8 + KVFS_NAME_MAX], ik[8];
	uint8_t v[DIRENT_VALUE + NS_INODE_HDR_MAX + SYMLINK_MAX + 1];
	char done[256] = "";
	size_t klen, k2len, vlen, o = 0;
	uint64_t ino, ino2;
	NS_BEGIN(path);
	unsigned n_mut = 1 + (unsigned)(xs64(&x) % 3);
	for (unsigned m = 0; m < n_mut && rc == 0; m++) {
		const char *victim = emb_sound[xs64(&x) % n_sound];
		unsigned kind = (unsigned)(xs64(&x) % 7);
		rc = ns_dirent_of(&n, victim, k, &klen, &ino);
		if (rc == 0)
			rc = engine_get(n.e, T_DIRENT, k, klen, v, sizeof(v), &vlen);
		if (rc == 0 && (vlen <= DIRENT_VALUE || vlen > sizeof(v)))
			rc = fail(msg, len, -ENOENT, "%s: not embedded", victim);
		if (rc < 0)
			break;
		ino_key(ik, ino);
		switch (kind) {
		case 0: /* a random record after the dirent's 9 bytes */
			vlen = DIRENT_VALUE + 1 + xs64(&x) % 120;
			for (size_t i = DIRENT_VALUE; i < vlen; i++)
				v[i] = (uint8_t)xs64(&x);
			if (xs64(&x) & 1)
				v[DIRENT_VALUE + 2] = NS_INODE_V2;
			rc = engine_batch_put(n.b, T_DIRENT, k, klen, v, vlen);
			break;
		case 1: /* one byte of the embedded record changed */
			v[DIRENT_VALUE + xs64(&x) % (vlen - DIRENT_VALUE)] ^=
				(uint8_t)(1 + xs64(&x) % 255);
			rc = engine_batch_put(n.b, T_DIRENT, k, klen, v, vlen);
			break;
		case 2: /* the embedded record cut short */
			if (vlen - DIRENT_VALUE > 1)
				vlen = DIRENT_VALUE + 1 + xs64(&x) % (vlen - DIRENT_VALUE - 1);
			rc = engine_batch_put(n.b, T_DIRENT, k, klen, v, vlen);
			break;
		case 3: { /* T_INODE[ino]: random bytes, mostly looking like a REF */
			uint8_t g[NS_REF_MAX + 40];
			size_t gl = xs64(&x) % sizeof(g);
			for (size_t i = 0; i < gl; i++)
				g[i] = (uint8_t)xs64(&x);
			if (gl > 3 && (xs64(&x) & 3)) {
				g[2] = NS_INODE_REF;
				if (xs64(&x) & 1)
					g[0] = g[1] = g[3] = 0;
			}
			rc = engine_batch_put(n.b, T_INODE, ik, 8, g, gl);
			break;
		}
		case 4: /* the REF names another embedding dirent */
			rc = ns_dirent_of(&n, emb_sound[xs64(&x) % n_sound], k2, &k2len, &ino2);
			if (rc == 0) {
				uint8_t ref[NS_REF_MAX];
				size_t rl = ns_ref_encode(ref, ldbe64(k2), (const char *)k2 + 8,
							  k2len - 8);
				rc = engine_batch_put(n.b, T_INODE, ik, 8, ref, rl);
			}
			break;
		case 5: /* the dirent plain: the record gone */
			rc = engine_batch_put(n.b, T_DIRENT, k, klen, v, DIRENT_VALUE);
			break;
		case 6: /* the dirent's type byte */
			v[8] = (uint8_t)(xs64(&x) % 16);
			rc = engine_batch_put(n.b, T_DIRENT, k, klen, v, vlen);
			break;
		}
		o += (size_t)snprintf(done + o, sizeof(done) - o, "%s%s:%u", m ? " " : "", victim,
				      kind);
		if (o >= sizeof(done))
			o = sizeof(done) - 1;
	}
	if (rc == 0)
		say("garbage in embedded inodes (path:kind): %s", done);
	return ns_close(&n, rc);
}

#define EMB_BEGIN(path)                                                                      \
	NS_BEGIN(path);                                                                      \
	rc = embed_sound(&n)

/* The sound embedded inodes, then `file` embedded with the damage `how` (EMB_*); its inode
 * number in *ino. */
static int embed_case(const char *path, char *msg, size_t len, const char *file, unsigned how,
		      uint64_t *ino)
{
	uint64_t seed = 0;
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_embed(&n, file, how, ino);
	return ns_close(&n, rc);
}

static int d_embed_dir(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "d05", 0, &ino);
	(void)seed;
	say("directory d05 (inode %" PRIu64 ") embedded in its dirent, with its REF", ino);
	return rc;
}

static int d_embed_ref(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/041", EMB_DEL_INODE, &ino);
	(void)seed;
	say("f/041 (inode %" PRIu64 ", 2 blocks) embedded, T_INODE entry deleted (no REF)", ino);
	return rc;
}

static int d_embed_ref_full(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/042", EMB_NO_REF, &ino);
	(void)seed;
	say("f/042 (inode %" PRIu64 ") embedded, its full record left in T_INODE", ino);
	return rc;
}

static int d_embed_ref_other(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0, f;
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_embed(&n, "f/043", EMB_NO_REF, &ino);
	if (rc == 0)
		rc = ns_embed(&n, "f/044", 0, NULL);
	if (rc == 0)
		rc = ns_path(&n, "f", &f);
	if (rc == 0)
		rc = ns_put_ref(&n, ino, f, "044");
	say("f/043 (inode %" PRIu64 ") embedded, its REF naming f/044 (embedded too)", ino);
	return ns_close(&n, rc);
}

static int d_embed_links(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0, links;
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_embed(&n, "f/045", 0, &ino);
	if (rc == 0)
		rc = ns_path(&n, "links", &links);
	if (rc == 0)
		rc = ns_put_dirent(&n, links, "hard3", ino, S_IFREG >> 12);
	say("f/045 (inode %" PRIu64 ", 1 block) embedded, and named by links/hard3 too", ino);
	return ns_close(&n, rc);
}

static int d_ref_dangling(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/048", EMB_DEL_DIRENT, &ino);
	(void)seed;
	say("f/048 (inode %" PRIu64 ", empty) embedded, then its dirent deleted: only its REF "
	    "is left", ino);
	return rc;
}

static int d_ref_dangling_plain(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0, f;
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_path(&n, "f", &f);
	if (rc == 0)
		rc = ns_lookup(&n, f, "049", &ino, NULL);
	if (rc == 0)
		rc = ns_put_ref(&n, ino, f, "049");
	say("f/049 (inode %" PRIu64 ", inline): record replaced by a REF, its dirent plain", ino);
	return ns_close(&n, rc);
}

static int d_ref_dangling_other(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0, f;
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_path(&n, "f", &f);
	if (rc == 0)
		rc = ns_lookup(&n, f, "050", &ino, NULL);
	if (rc == 0)
		rc = ns_embed(&n, "f/051", 0, NULL);
	if (rc == 0)
		rc = ns_put_ref(&n, ino, f, "051");
	say("f/050 (inode %" PRIu64 ", inline): record replaced by a REF to f/051, which embeds "
	    "its own inode", ino);
	return ns_close(&n, rc);
}

static int put_orphan(struct ns *n, uint64_t ino, const void *v, size_t vlen)
{
	uint8_t k[8];
	ino_key(k, ino);
	return engine_batch_put(n->b, T_ORPHAN, k, 8, v, vlen);
}

static int d_orphan_embed(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_embed(&n, "f/052", 0, &ino);
	if (rc == 0)
		rc = put_orphan(&n, ino, "", 0);
	say("f/052 (inode %" PRIu64 ", 3 blocks) embedded, with an empty orphan entry", ino);
	return ns_close(&n, rc);
}

static int d_orphan_embed_ref(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_embed(&n, "f/054", EMB_DEL_DIRENT, &ino);
	if (rc == 0)
		rc = put_orphan(&n, ino, "", 0);
	say("f/054 (inode %" PRIu64 ", empty): only its REF left, with an empty orphan entry",
	    ino);
	return ns_close(&n, rc);
}

static int d_embed_record(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/055", EMB_CUT, &ino);
	(void)seed;
	say("f/055 (inode %" PRIu64 ") embedded, the record cut to 10 bytes", ino);
	return rc;
}

static int d_embed_type(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/056", EMB_TYPE_FIFO, &ino);
	(void)seed;
	say("f/056 (inode %" PRIu64 ", inline) embedded, the dirent's type byte DT_FIFO", ino);
	return rc;
}

static int d_embed_nlink(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/057", EMB_NLINK2, &ino);
	(void)seed;
	say("f/057 (inode %" PRIu64 ", 1 block) embedded, the record saying nlink 2", ino);
	return rc;
}

static int d_embed_trunc(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	uint8_t k[8 + 7], v[8];
	EMB_BEGIN(path);
	if (rc == 0)
		rc = ns_embed(&n, "f/070", EMB_SIZE_4K, &ino);
	ino_key(k, ino);
	memcpy(k + 8, "user.tr", 7);
	if (rc == 0)
		rc = engine_batch_put(n.b, T_XATTR, k, sizeof(k), "x", 1);
	st64(v, BLOCK);
	if (rc == 0)
		rc = put_orphan(&n, ino, v, sizeof(v));
	say("f/070 (inode %" PRIu64 ", 3 blocks, an xattr) embedded, truncated to 4096 bytes in "
	    "steps: blocks 1 and 2 left, the truncation on the orphan list", ino);
	return ns_close(&n, rc);
}

static int d_embed_ref_bad(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/071", EMB_REF_BAD, &ino);
	(void)seed;
	say("f/071 (inode %" PRIu64 ", inline) embedded, its REF malformed (byte 3 set)", ino);
	return rc;
}

static int d_embed_ref_newer(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/072", EMB_NO_REF | EMB_OLDER, &ino);
	(void)seed;
	say("f/072 (inode %" PRIu64 ", empty) embedded with a ctime 1 s older than the full "
	    "record left in T_INODE", ino);
	return rc;
}

static int d_embed_links_two(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/073", EMB_ALIAS, &ino);
	(void)seed;
	say("f/073 (inode %" PRIu64 ", inline) embedded in two dirents, f/073 (its REF) and "
	    "links/emb2", ino);
	return rc;
}

static int d_embed_bad_name(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	int rc = embed_case(path, msg, len, "f/074", EMB_BAD_NAME, &ino);
	(void)seed;
	say("f/074 (inode %" PRIu64 ", 3 blocks) embedded in a dirent renamed f/\"a/b\", its "
	    "REF naming that", ino);
	return rc;
}

static int log_ref_dangling(struct ns *n) { return ns_embed(n, "f/066", EMB_DEL_DIRENT, NULL); }
static int log_embed_ref(struct ns *n) { return ns_embed(n, "f/067", EMB_DEL_INODE, NULL); }
static int log_embed_nlink(struct ns *n) { return ns_embed(n, "f/069", EMB_NLINK2, NULL); }

static int d_log_ref_dangling(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	int rc = in_log(path, log_ref_dangling, msg, len);
	say("in the log only: f/066 (empty) embedded, then its dirent deleted: only its REF left");
	return rc;
}

static int d_log_embed_ref(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	int rc = in_log(path, log_embed_ref, msg, len);
	say("in the log only: f/067 (inline) embedded, its T_INODE entry deleted (no REF)");
	return rc;
}

static int d_log_embed_nlink(const char *path, uint64_t seed, char *msg, size_t len)
{
	(void)seed;
	int rc = in_log(path, log_embed_nlink, msg, len);
	say("in the log only: f/069 (1 block) embedded, the record saying nlink 2");
	return rc;
}

int dmg_set_format_version(const char *path, uint32_t version, char *msg, size_t len)
{
	uint8_t pg[PS];
	int rc = 0;
	for (unsigned slot = 0; slot < 2 && rc == 0; slot++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || pread(fd, pg, PS, (off_t)slot * PS) != PS)
			rc = fail(msg, len, -EIO, "reading meta page %u", slot);
		if (fd >= 0)
			close(fd);
		if (rc == 0 && !page_sound_meta(pg, slot))
			rc = fail(msg, len, -ENOENT, "meta page %u: checksum", slot);
		if (rc == 0) {
			st32(pg + 16, version);
			dmg_page_reseal(pg, slot);
			rc = dmg_write_at(path, (uint64_t)slot * PS, pg, PS);
		}
	}
	return rc;
}

/* An embedded dirent in a store whose meta pages say format version 3: corrupt there. */
static int d_embed_v3(const char *path, uint64_t seed, char *msg, size_t len)
{
	uint64_t ino = 0;
	NS_BEGIN(path);
	rc = ns_embed(&n, "f/058", EMB_NO_REF, &ino);
	rc = ns_close(&n, rc);
	if (rc == 0)
		rc = dmg_set_format_version(path, 3, msg, len);
	if (rc == 0)
		say("f/058 (inode %" PRIu64 ") embedded (full record kept), meta pages set to "
		    "format version 3", ino);
	return rc;
}

const struct dmg_case dmg_cases[] = {
	{ "META_SLOT_CORRUPT", "META_SLOT_CORRUPT", DB_CLEAN, d_meta_slot },
	{ "META_SLOT_CORRUPT/older", "META_SLOT_CORRUPT", DB_CLEAN, d_meta_older },
	{ "META_BOTH_CORRUPT", "META_BOTH_CORRUPT", DB_CLEAN, d_meta_both },
	{ "META_FILE_SHORT", "META_FILE_SHORT", DB_CLEAN, d_meta_short },
	{ "PAGE_CHECKSUM/leaf", "PAGE_CHECKSUM", DB_CLEAN, d_leaf_flip },
	{ "PAGE_CHECKSUM/branch", "PAGE_CHECKSUM", DB_CLEAN, d_branch_flip },
	{ "PAGE_CHECKSUM/inode-leaf", "PAGE_CHECKSUM", DB_CLEAN, d_inode_leaf_flip },
	{ "PAGE_CHECKSUM/dirent-leaf", "PAGE_CHECKSUM", DB_CLEAN, d_dirent_leaf_flip },
	{ "PAGE_CHECKSUM/catalog", "PAGE_CHECKSUM", DB_CLEAN, d_catalog_flip },
	{ "OVERFLOW_CHECKSUM", "OVERFLOW_CHECKSUM", DB_CLEAN, d_overflow_flip },
	{ "PAGE_MISDIRECTED", "PAGE_MISDIRECTED", DB_CLEAN, d_misdirected },
	{ "PAGE_STALE", "PAGE_STALE", DB_CLEAN, d_stale },
	{ "PAGE_LEVEL", "PAGE_LEVEL", DB_CLEAN, d_level },
	{ "PAGE_STRUCTURE", "PAGE_STRUCTURE", DB_CLEAN, d_structure },
	{ "PAGE_OUT_OF_RANGE", "PAGE_OUT_OF_RANGE", DB_CLEAN, d_out_of_range },
	{ "OVERFLOW_RANGE", "OVERFLOW_RANGE", DB_CLEAN, d_overflow_range },
	{ "CATALOG_ENTRY", "CATALOG_ENTRY", DB_CLEAN, d_catalog_entry },
	{ "FREELIST_PAGE", "FREELIST_PAGE", DB_CLEAN, d_freelist_flip },
	{ "TREE_SEPARATOR", "TREE_SEPARATOR", DB_CLEAN, d_separator },
	{ "TREE_RECORD", "TREE_RECORD", DB_CLEAN, d_tree_record },
	{ "SPACE_SHARED", "SPACE_SHARED", DB_CLEAN, d_shared },
	{ "SPACE_LEAKED", "SPACE_LEAKED", DB_CLEAN, d_leaked },
	{ "SPACE_FREE_COUNT", "SPACE_FREE_COUNT", DB_CLEAN, d_free_count },
	{ "SPACE_FREE_AND_USED", "SPACE_FREE_AND_USED", DB_CLEAN, d_free_and_used },
	{ "SPACE_DOUBLE_FREE", "SPACE_DOUBLE_FREE", DB_CLEAN, d_double_free },
	{ "SPACE_FREE_RANGE", "SPACE_FREE_RANGE", DB_CLEAN, d_free_range },
	{ "FREELIST_CHUNK", "FREELIST_CHUNK", DB_CLEAN, d_freelist_chunk },
	{ "LOG_TORN_TAIL", "LOG_TORN_TAIL", DB_CRASHED, d_torn_tail },
	{ "LOG_STALE_RECORD", "LOG_STALE_RECORD", DB_CRASHED, d_stale_record },
	{ "LOG_HEADER", "LOG_HEADER", DB_CRASHED, d_log_header },
	{ "LOG_MISSING", "LOG_MISSING", DB_CLEAN, d_log_missing },
	{ "LOG_SHORT", "LOG_SHORT", DB_CLEAN, d_log_short },
	{ "LOG_RECORD_BAD", "LOG_RECORD_BAD", DB_CRASHED, d_record_bad },
	{ "NS_NLINK", "NS_NLINK", DB_CLEAN, d_nlink },
	{ "NS_DIRENT_DANGLING", "NS_DIRENT_DANGLING", DB_CLEAN, d_dangling },
	{ "NS_DIRENT_TYPE", "NS_DIRENT_TYPE", DB_CLEAN, d_dirent_type },
	{ "NS_LOST_INODE", "NS_LOST_INODE", DB_CLEAN, d_lost_inode },
	{ "NS_CYCLE", "NS_CYCLE", DB_CLEAN, d_cycle },
	{ "NS_DIR_LINKS", "NS_DIR_LINKS", DB_CLEAN, d_dir_links },
	{ "NS_PARENT", "NS_PARENT", DB_CLEAN, d_parent },
	{ "NS_ORPHAN_PENDING", "NS_ORPHAN_PENDING", DB_ORPHAN, d_orphan_pending },
	{ "NS_ORPHAN_PENDING/punch", "NS_ORPHAN_PENDING", DB_CLEAN, d_orphan_punch },
	{ "NS_ORPHAN_STALE", "NS_ORPHAN_STALE", DB_CLEAN, d_orphan_stale },
	{ "NS_ORPHAN_STALE/range", "NS_ORPHAN_STALE", DB_CLEAN, d_orphan_range_bad },
	{ "NS_BLOCK_ORPHAN", "NS_BLOCK_ORPHAN", DB_CLEAN, d_block_orphan },
	{ "NS_XATTR_ORPHAN", "NS_XATTR_ORPHAN", DB_CLEAN, d_xattr_orphan },
	{ "NS_BLOCK_BAD", "NS_BLOCK_BAD", DB_CLEAN, d_block_bad },
	{ "NS_SIZE", "NS_SIZE", DB_CLEAN, d_size },
	{ "NS_BLOCKS_COUNT", "NS_BLOCKS_COUNT", DB_CLEAN, d_blocks_count },
	{ "NS_NEXT_INO", "NS_NEXT_INO", DB_CLEAN, d_next_ino },
	{ "NS_DIRENT_BAD", "NS_DIRENT_BAD", DB_CLEAN, d_dirent_bad },
	{ "NS_INODE_RECORD", "NS_INODE_RECORD", DB_CLEAN, d_inode_record },
	{ "NS_ROOT", "NS_ROOT", DB_CLEAN, d_root },
	{ "NS_EMBED_DIR", "NS_EMBED_DIR", DB_CLEAN, d_embed_dir },
	{ "NS_EMBED_REF", "NS_EMBED_REF", DB_CLEAN, d_embed_ref },
	{ "NS_EMBED_REF/full", "NS_EMBED_REF", DB_CLEAN, d_embed_ref_full },
	{ "NS_EMBED_REF/other", "NS_EMBED_REF", DB_CLEAN, d_embed_ref_other },
	{ "NS_EMBED_LINKS", "NS_EMBED_LINKS", DB_CLEAN, d_embed_links },
	{ "NS_REF_DANGLING", "NS_REF_DANGLING", DB_CLEAN, d_ref_dangling },
	{ "NS_REF_DANGLING/plain", "NS_REF_DANGLING", DB_CLEAN, d_ref_dangling_plain },
	{ "NS_REF_DANGLING/other", "NS_REF_DANGLING", DB_CLEAN, d_ref_dangling_other },
	{ "NS_ORPHAN_EMBED", "NS_ORPHAN_EMBED", DB_CLEAN, d_orphan_embed },
	{ "NS_ORPHAN_EMBED/ref", "NS_ORPHAN_EMBED", DB_CLEAN, d_orphan_embed_ref },
	{ "NS_INODE_RECORD/embedded", "NS_INODE_RECORD", DB_CLEAN, d_embed_record },
	{ "NS_DIRENT_TYPE/embedded", "NS_DIRENT_TYPE", DB_CLEAN, d_embed_type },
	{ "NS_NLINK/embedded", "NS_NLINK", DB_CLEAN, d_embed_nlink },
	{ "NS_ORPHAN_PENDING/embedded", "NS_ORPHAN_PENDING", DB_CLEAN, d_embed_trunc },
	{ "NS_DIRENT_BAD/v3", "NS_DIRENT_BAD", DB_CLEAN, d_embed_v3 },
	{ "NS_EMBED_REF/malformed", "NS_EMBED_REF", DB_CLEAN, d_embed_ref_bad },
	{ "NS_EMBED_REF/newer", "NS_EMBED_REF", DB_CLEAN, d_embed_ref_newer },
	{ "NS_EMBED_LINKS/two", "NS_EMBED_LINKS", DB_CLEAN, d_embed_links_two },
	{ "NS_DIRENT_BAD/embedded", "NS_DIRENT_BAD", DB_CLEAN, d_embed_bad_name },
	{ "NS_REF_DANGLING/log", "NS_REF_DANGLING", DB_CLEAN, d_log_ref_dangling },
	{ "NS_EMBED_REF/log", "NS_EMBED_REF", DB_CLEAN, d_log_embed_ref },
	{ "NS_NLINK/embedded-log", "NS_NLINK", DB_CLEAN, d_log_embed_nlink },
};
const size_t dmg_n_cases = sizeof(dmg_cases) / sizeof(dmg_cases[0]);

const struct dmg_case *dmg_find(const char *name)
{
	for (size_t i = 0; i < dmg_n_cases; i++)
		if (strcmp(dmg_cases[i].name, name) == 0)
			return &dmg_cases[i];
	return NULL;
}

#ifdef KVFS_DAMAGE_MAIN
/*
 * kvfs-damage (tests/checker.cmake builds this file with KVFS_DAMAGE_MAIN): build a store
 * and damage it as one case, to reproduce a kvfs-check test case by hand.  Not installed.
 *   kvfs-damage STORE CASE [SEED]   make STORE (must not exist) and apply CASE
 *   kvfs-damage --list              the cases, with the problem code each makes
 */
int main(int argc, char **argv)
{
	char msg[512] = "";
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < dmg_n_cases; i++)
			printf("%-28s %s\n", dmg_cases[i].name, dmg_cases[i].code);
		return 0;
	}
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: kvfs-damage STORE CASE [SEED] | --list\n");
		return 16;
	}
	const struct dmg_case *c = dmg_find(argv[2]);
	if (!c) {
		fprintf(stderr, "kvfs-damage: no case %s (see --list)\n", argv[2]);
		return 16;
	}
	uint64_t seed = argc == 4 ? strtoull(argv[3], NULL, 0) : 0;
	int rc = dmg_make_store(argv[1], msg, sizeof(msg));
	if (rc == 0 && c->base != DB_CLEAN)
		rc = dmg_make_crashed(argv[1], c->base == DB_ORPHAN, msg, sizeof(msg));
	if (rc == 0)
		rc = c->fn(argv[1], seed, msg, sizeof(msg));
	if (rc < 0) {
		fprintf(stderr, "kvfs-damage: %s: %s (%s)\n", c->name, msg, strerror(-rc));
		return 8;
	}
	printf("%s: %s\n", c->name, msg);
	return 0;
}
#endif
