/*
 * store/namespace.c — the file namespace on the engine: keys as paths, inodes, directories,
 * file data, symlinks, hard links, xattrs, orphans.  Implements kvfs.h.
 *
 * Trees and records: store/ns_format.h (man/kvfs.5 "NAMESPACE"), TableFS-style: inodes,
 * dirents, data blocks, xattrs, orphans and the next inode number, each in its own tree.
 *
 * A file of at most INLINE_MAX bytes keeps its bytes in its inode record (one B+tree value of
 * ~20 bytes of metadata + the data); a larger one keeps them in whole blocks, so that a 4 KiB
 * write into a 10 GiB file rewrites one block.  A symlink's target is always inline.
 *
 * Every change is one engine batch (engine.c): atomic, logged, in order.  Changes are
 * serialized by ns_lock (a read-modify-write of several keys must not interleave); reads take
 * no lock of ours — each key they read is consistent, and a read of a file's blocks reads them
 * in runs, each inside one engine_read (one committed state: "Reads of several blocks").
 *
 * A kvfs_batch is one engine batch too, built under ns_lock from operations in key order.  The
 * engine shows only the committed state, so what the batch's earlier operations changed is
 * kept aside for its later ones, which may reach the same inode through another name (a hard
 * link): the inodes (fs->pending, written once at the end) and the data blocks put or deleted
 * (fs->bnotes: a later truncation deletes the blocks the batch put, and does not count again
 * the blocks it deleted).  Only the building thread sees them (tl_batch); readers see the
 * committed state.  A batch's size is bounded as it is built (batch_add, kvfs.h "Size").
 *
 * Invariants:
 *   NS-1  every dirent names a live inode of the type it records;
 *   NS-2  an inode's nlink equals the dirents naming it (+1 for a directory's own ".", + one per
 *         subdirectory's ".."), except while it is an orphan (nlink 0, open);
 *   NS-3  a directory's `parent` field names the one directory holding its dirent;
 *   NS-4  data blocks and xattrs exist only for live inodes (purge removes them with the
 *         inode, in the same batch, or in steps under an orphan entry: below).
 *   NS-5  no data block lies at or past ceil(size / BLOCK) of its inode, except while a
 *         truncation of that inode is on the orphan list (below).
 *
 * Bounded changes (the orphan list, as ext4's).  A log record holds at most half the log's
 * ring, so no change may delete an unbounded number of blocks.  A batch deletes at most
 * purge_step blocks (PURGE_STEP_BLOCKS, ~0.4 MiB of record; a kvfs_batch shares one such
 * budget among its operations).  When a purge or a truncation has more to delete:
 *   - purge (the last name of a file removed, not open): the operation's batch carries the
 *     visible change (dirent gone, nlink 0) with the inode record, its first blocks' deletes
 *     and an empty orphan entry; the caller's commit_op then deletes the rest in steps of at
 *     most purge_step blocks (orphan_finish), the last step deleting the xattrs, the inode and
 *     the orphan entry;
 *   - truncation (set_size shrinking; kvfs_put replacing a file, which overwrites the blocks
 *     below its new size and so truncates to it): the batch sets the size (readers never look
 *     past it, so the blocks beyond are invisible at once) and, for an inode with links, puts
 *     an orphan entry whose value is the new size (LE u64); steps then delete the blocks past
 *     the size, and the last one deletes the orphan entry (an inode with nlink 0 keeps its
 *     empty entry: it is still an orphan);
 *   - a punched hole (kvfs_fallocate): the batch sets mtime and ctime, zeroes the partial
 *     blocks at the edges, deletes the range's first blocks and puts an orphan entry in its
 *     range form, [first, last) whole blocks (16 bytes: ns_format.h); steps delete the rest
 *     of the range, the last one deleting the entry (for an unlinked open inode: making it
 *     empty again).  Unlike a truncation, the blocks waiting are inside the size: readers
 *     would see them, so the call returns only when the steps are done (a failed step is
 *     returned: the entry stays, and the hole is finished as a failed truncation is).  An
 *     unlink of the open inode keeps a range entry (drop_inode); a purge's empty entry
 *     replaces it (the purge deletes every block).  A read-only open, which runs no step,
 *     hides the ranges of the entries it finds (fs->holes).
 * All steps run under ns_lock before the call returns, so nothing else touches the inode
 * between them, and a change after the call (a write into a punched range) is never undone by
 * a step; after a crash, kvfs_open finishes every orphan (purge_orphans) before it returns.
 * Steps that failed are finished by unfinished_check before any change that could write into
 * the file or extend it, so one inode has at most one truncation or range pending.  The steps
 * make no change visible once the call returned, so a crash between them changes nothing a
 * caller can see: each operation stays wholly present or wholly absent.  An inode's blocks
 * field counts the blocks still stored, including those waiting for a step (st_blocks is
 * right when the call returns, its steps done).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "store/engine.h"
#include "store/format.h"
#include "store/kvfs.h"
#include "store/kvfs_env.h"
#include "store/ns_format.h"
#include "store/dcache.h"

/* Block deletes in one batch, at most (top of file): 64 MiB of file data, ~0.4 MiB of log
 * record (a delete of a block takes 24 bytes of it). */
#define PURGE_STEP_BLOCKS 16384u

struct inode {
	uint64_t ino;
	uint32_t mode, nlink, uid, gid;
	uint64_t size;
	int64_t atime, mtime, ctime;
	uint64_t gen, rdev, blocks, parent;
	uint32_t flags;
	/* Where the record lives (ns_format.h "Embedded inodes"): in T_INODE (embedded false),
	 * or in the one dirent (dparent, dname[0..dlen)), T_INODE holding an INODE REF to it.
	 * ref_stale: the REF in the store does not name that dirent yet (a create, a rename):
	 * inode_write writes it.  An embedded inode has nlink 1 and is not a directory; whoever
	 * removes or repoints its dirent calls inode_unembed before the next inode_put. */
	bool embedded, ref_stale;
	uint16_t dlen;
	uint64_t dparent;
	char dname[KVFS_NAME_MAX];
	uint8_t data[SYMLINK_MAX + 1 > INLINE_MAX ? SYMLINK_MAX + 1 : INLINE_MAX];
};

struct open_ref {
	uint64_t ino;
	uint32_t count;
	struct open_ref *next;
};

struct kvfs {
	struct engine *e;
	bool rdonly, sync_writes;
	pthread_mutex_t ns_lock;
	uint64_t next_ino;          /* protected by ns_lock */
	struct open_ref *open_refs; /* protected by ns_lock */
	/* While a kvfs_batch is being built (ns_lock held): inodes changed by its earlier
	 * operations, which the engine does not show until the batch commits.  Their records
	 * (and next_ino) are written into the engine batch once, at its end (pending_flush):
	 * a batch of 1,000 files in one directory logs the directory's inode once, not 1,000
	 * times. */
	struct inode **pending;     /* open addressing by ino; cap_pending a power of 2 */
	size_t n_pending, cap_pending;
	struct pend_chunk *pend_arena; /* what the pending inodes are carved from (pending_note) */
	bool batching;
	/* Directory dirents for key-path walks (store/dcache.h).  Dirents deleted or replaced by
	 * the batch being built are noted in dc_pend and invalidated after its commit;
	 * dc_pend_lost: a note could not be kept (out of memory), so the commit clears the
	 * cache.  Protected by ns_lock. */
	struct dcache *dc;
	struct dc_note { uint64_t parent; size_t len; char name[DCACHE_NAME_MAX]; } *dc_pend;
	size_t n_dc_pend, cap_dc_pend;
	bool dc_pend_lost;
	/* Bounded changes (top of file).  deferred: inodes whose purge or truncation the batch
	 * being built leaves to steps after its commit (commit_op); batch_dels_left: block
	 * deletes a kvfs_batch may still add; unfinished: steps failed (logged), so that a
	 * write extending a file first finishes them (unfinished_check).  Protected by
	 * ns_lock; purge_step is set at open. */
	uint64_t purge_step;
	uint64_t *deferred;
	size_t n_deferred, cap_deferred;
	uint64_t batch_dels_left;
	bool unfinished;
	/* While a kvfs_batch is being built: the data blocks its earlier operations put or
	 * deleted (struct bnote), which the engine does not show until the batch commits, so
	 * that a later operation on the same inode (through another name: a hard link) sees
	 * them (del_blocks, count_blocks).  Open addressing by (ino, blk); cap_bnotes a power of
	 * 2 (0: none).  Protected by ns_lock. */
	struct bnote *bnotes;
	size_t n_bnotes, cap_bnotes;
	/* Opened read-only only: the ranges of punches a crash cut short (range orphan
	 * entries, which no step can finish without writing), shown as holes by get_block and
	 * kvfs_lseek.  Set at open, never changed after: read without a lock. */
	struct hole { uint64_t ino, first, last; } *holes;
	size_t n_holes;
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int name_check(const char *name, size_t *len)
{
	size_t n = strnlen(name, KVFS_NAME_MAX + 1);
	if (n == 0 || memchr(name, '/', n) || (n == 1 && name[0] == '.') ||
	    (n == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	if (n > KVFS_NAME_MAX)
		return -ENAMETOOLONG;
	*len = n;
	return 0;
}

static unsigned mode_dt(uint32_t mode)
{
	return (mode & S_IFMT) >> 12; /* DT_* == S_IFMT >> 12 on Linux */
}

/* ---- inode records ---- */

/* The record of `in` into buf (NS_INODE_HDR_MAX + sizeof(in->data) bytes): the v2 header
 * (store/ns_inode.c), then the inline bytes or symlink target.  Returns its length. */
static size_t inode_encode(const struct inode *in, uint8_t *buf)
{
	const struct ns_inode h = {
		.mode = in->mode, .nlink = in->nlink, .uid = in->uid, .gid = in->gid,
		.size = in->size, .atime = in->atime, .mtime = in->mtime, .ctime = in->ctime,
		.gen = in->gen, .rdev = in->rdev, .blocks = in->blocks, .parent = in->parent,
		.flags = in->flags,
	};
	size_t hl = ns_inode_encode(&h, buf);
	size_t n = (in->flags & INODE_INLINE) ? in->size : 0;
	memcpy(buf + hl, in->data, n);
	return hl + n;
}

/*
 * The pending inodes of a kvfs_batch live in an arena freed whole by pending_clear: a malloc of
 * a whole struct inode (4 KiB of it the data buffer) per inode changed cost ~400 instructions,
 * 5 % of a batched put.  An entry holds its capacity, then the inode's header and the inline
 * bytes in use (never the whole data buffer: no code copies a pending inode whole, only
 * offsetof(struct inode, data) + its inline bytes).  Chunks of PEND_CHUNK bytes; an entry is
 * at most ~4.2 KiB.
 */
#define PEND_CHUNK (65536u - 16u)
struct pend_chunk {
	struct pend_chunk *next;
	size_t used; /* bytes of data[] handed out */
	max_align_t data[];
};
struct pend_ent {
	size_t cap; /* bytes of `in` usable */
	struct inode in; /* only the first cap bytes exist */
};
#define PEND_DATA (PEND_CHUNK - offsetof(struct pend_chunk, data))
_Static_assert(offsetof(struct pend_ent, in) + sizeof(struct inode) <= PEND_DATA,
	       "the largest pending inode fits a chunk");

/* An entry for an inode of n used bytes (header and inline bytes), or NULL (out of memory). */
static struct inode *pend_alloc(struct kvfs *fs, size_t n)
{
	size_t size = (offsetof(struct pend_ent, in) + n + 15) & ~(size_t)15;
	struct pend_chunk *c = fs->pend_arena;
	if (!c || PEND_DATA - c->used < size) {
		if (!(c = malloc(PEND_CHUNK)))
			return NULL;
		c->next = fs->pend_arena;
		c->used = 0;
		fs->pend_arena = c;
	}
	struct pend_ent *e = (struct pend_ent *)((uint8_t *)c->data + c->used);
	c->used += size;
	e->cap = size - offsetof(struct pend_ent, in);
	return &e->in;
}

static size_t pend_cap(const struct inode *in)
{
	return ((const struct pend_ent *)((const uint8_t *)in - offsetof(struct pend_ent, in)))->cap;
}

static struct inode **pending_slot(struct kvfs *fs, uint64_t ino)
{
	size_t mask = fs->cap_pending - 1, i = (size_t)(ino * 0x9e3779b97f4a7c15ull) & mask;
	while (fs->pending[i] && fs->pending[i]->ino != ino)
		i = (i + 1) & mask;
	return &fs->pending[i];
}

static struct inode *pending_find(struct kvfs *fs, uint64_t ino)
{
	return fs->cap_pending ? *pending_slot(fs, ino) : NULL;
}

static void pending_clear(struct kvfs *fs)
{
	if (fs->n_pending)
		memset(fs->pending, 0, fs->cap_pending * sizeof(*fs->pending));
	fs->n_pending = 0;
	for (struct pend_chunk *c = fs->pend_arena, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	fs->pend_arena = NULL;
}

static int pending_note(struct kvfs *fs, const struct inode *in)
{
	if (2 * (fs->n_pending + 1) > fs->cap_pending) {
		size_t cap = fs->cap_pending ? fs->cap_pending * 2 : 64;
		struct inode **old = fs->pending;
		size_t oldcap = fs->cap_pending;
		fs->pending = calloc(cap, sizeof(*fs->pending));
		if (!fs->pending) {
			fs->pending = old;
			return -ENOMEM;
		}
		fs->cap_pending = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i])
				*pending_slot(fs, old[i]->ino) = old[i];
		free(old);
	}
	struct inode **slot = pending_slot(fs, in->ino);
	/* the header and the inline bytes in use: not the whole data buffer */
	size_t n = offsetof(struct inode, data) +
		   ((in->flags & INODE_INLINE) || S_ISLNK(in->mode) ? in->size : 0);
	if (!*slot || pend_cap(*slot) < n) { /* a grown entry is copied whole: the old one
						 stays in the arena until pending_clear */
		struct inode *p = pend_alloc(fs, n);
		if (!p)
			return -ENOMEM;
		if (!*slot)
			fs->n_pending++;
		*slot = p;
	}
	memcpy(*slot, in, n);
	return 0;
}

/* The kvfs whose kvfs_batch this thread is building (kvfs_batch_commit, ns_lock held), or
 * NULL.  Readers take no lock and run on other threads: they must see the committed state
 * only, never fs->pending (uncommitted, and rehashed under them). */
static _Thread_local const struct kvfs *tl_batch;

/* A point read: inside an engine_read (rd: of one committed state with the reads around it),
 * or on its own (rd NULL). */
static int ns_get(struct kvfs *fs, struct engine_read *rd, unsigned tree, const void *key,
		  size_t klen, void *buf, size_t cap, size_t *vlen)
{
	if (rd)
		return engine_read_get(rd, tree, key, klen, buf, cap, vlen);
	return engine_get(fs->e, tree, key, klen, buf, cap, vlen);
}

/* A buffer for any T_INODE value or dirent value (an embedded inode's: ino, type, record). */
#define NS_VALUE_MAX (DIRENT_VALUE + NS_INODE_HDR_ANY + sizeof(((struct inode *)0)->data))

/* Decode the INODE RECORD rec[0..len) of inode `ino` into *in (as stored in T_INODE: not
 * embedded).  0 or -EUCLEAN. */
static int inode_from_record(struct inode *in, uint64_t ino, const uint8_t *rec, size_t len)
{
	struct ns_inode h;
	int hl = len > NS_VALUE_MAX ? -EUCLEAN : ns_inode_decode(rec, len, &h, NULL);
	if (hl < 0)
		return -EUCLEAN;
	in->ino = ino;
	in->mode = h.mode;
	in->nlink = h.nlink;
	in->uid = h.uid;
	in->gid = h.gid;
	in->size = h.size;
	in->atime = h.atime;
	in->mtime = h.mtime;
	in->ctime = h.ctime;
	in->gen = h.gen;
	in->rdev = h.rdev;
	in->blocks = h.blocks;
	in->parent = h.parent;
	in->flags = h.flags;
	in->embedded = in->ref_stale = false;
	size_t n = len - (size_t)hl;
	if (((in->flags & INODE_INLINE) && n != in->size) || n > sizeof(in->data))
		return -EUCLEAN;
	memcpy(in->data, rec + hl, n);
	return 0;
}

static void inode_embed(struct inode *in, uint64_t parent, const char *name, size_t len)
{
	in->embedded = in->ref_stale = true;
	in->dparent = parent;
	in->dlen = (uint16_t)len;
	memcpy(in->dname, name, len);
}

/* The dirent holding `in` is going away or will name something else: the next inode_put
 * writes the whole record into T_INODE (over the REF). */
static void inode_unembed(struct inode *in)
{
	in->embedded = in->ref_stale = false;
}

/* The inode embedded in the dirent (parent, name[0..len)) whose value is v[0..vlen) (vlen >
 * DIRENT_VALUE) into *in.  EI-1: a record that decodes, not a directory, one link.  0 or
 * -EUCLEAN. */
static int inode_from_dirent(struct inode *in, uint64_t parent, const char *name, size_t len,
			     const uint8_t *v, size_t vlen)
{
	int r = inode_from_record(in, ld64(v), v + DIRENT_VALUE, vlen - DIRENT_VALUE);
	if (r < 0)
		return r;
	if (S_ISDIR(in->mode) || in->nlink != 1 || mode_dt(in->mode) != v[8])
		return -EUCLEAN;
	inode_embed(in, parent, name, len);
	in->ref_stale = false;
	return 0;
}

/*
 * Read inode `ino`: the batch's pending copy, else its T_INODE record, or through its INODE
 * REF the dirent embedding it.  The REF and the dirent are read inside one engine_read (rd, or
 * one made here), so they come from one committed state: a REF whose dirent does not embed
 * `ino` there is corrupt (EI-3).  (Two reads of the latest state, with the REF read again
 * when a rename moved the dirent between them, failed check_concurrency "moves": a writer
 * waiting on the read lock committed between the two reads of every retry, 100 times in a
 * row.)  0, -ENOENT, -EUCLEAN, -errno.
 */
struct ino_read {
	struct kvfs *fs;
	uint64_t ino;
	struct inode *in;
};

static int inode_read(struct kvfs *fs, struct engine_read *rd, uint64_t ino, struct inode *in);

static int inode_read_fn(struct engine_read *rd, void *ctx)
{
	struct ino_read *ir = ctx;
	return inode_read(ir->fs, rd, ir->ino, ir->in);
}

static int inode_read(struct kvfs *fs, struct engine_read *rd, uint64_t ino, struct inode *in)
{
	struct ino_read ir = { fs, ino, in };
	if (!rd && tl_batch != fs) /* the REF and its dirent from one state: two lookups */
		return engine_read(fs->e, inode_read_fn, &ir);
	struct inode *p = tl_batch == fs ? pending_find(fs, ino) : NULL;
	if (p) {
		if (p->mode == 0)
			return -ENOENT; /* purged earlier in the batch */
		memcpy(in, p, offsetof(struct inode, data) +
		       ((p->flags & INODE_INLINE) || S_ISLNK(p->mode) ? p->size : 0));
		return 0;
	}
	uint8_t k[8 + KVFS_NAME_MAX], buf[NS_VALUE_MAX];
	size_t len;
	ino_key(k, ino);
	int r = ns_get(fs, rd, T_INODE, k, 8, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	if (!ns_is_ref(buf, len))
		return inode_from_record(in, ino, buf, len);
	if (!rd) /* building a batch: the pending copies first (above), then one state */
		return engine_read(fs->e, inode_read_fn, &ir);
	uint64_t parent;
	const uint8_t *nm;
	size_t nlen;
	char name[KVFS_NAME_MAX];
	if (len > sizeof(buf) || ns_ref_decode(buf, len, &parent, &nm, &nlen) < 0)
		return -EUCLEAN;
	memcpy(name, nm, nlen);
	r = ns_get(fs, rd, T_DIRENT, k, dirent_key(k, parent, name, nlen), buf, sizeof(buf), &len);
	if (r == -ENOENT || (r == 0 && (len <= DIRENT_VALUE || len > sizeof(buf) ||
					ld64(buf) != ino)))
		return -EUCLEAN; /* EI-3 broken */
	return r < 0 ? r : inode_from_dirent(in, parent, name, nlen, buf, len);
}

static int inode_get(struct kvfs *fs, uint64_t ino, struct inode *in)
{
	return inode_read(fs, NULL, ino, in);
}

/* Put the dirent embedding `in` (in->embedded), its record in it. */
static int inode_write_dirent(struct engine_batch *b, const struct inode *in)
{
	uint8_t k[8 + KVFS_NAME_MAX], buf[DIRENT_VALUE + NS_INODE_HDR_MAX + sizeof(in->data)];
	assert(in->nlink == 1 && !S_ISDIR(in->mode));
	st64(buf, in->ino);
	buf[8] = (uint8_t)mode_dt(in->mode);
	size_t n = DIRENT_VALUE + inode_encode(in, buf + DIRENT_VALUE);
	return engine_batch_put(b, T_DIRENT, k, dirent_key(k, in->dparent, in->dname, in->dlen),
				buf, n);
}

/* Put the record of `in` where it lives: T_INODE, or its dirent (the REF too when stale). */
static int inode_write(struct engine_batch *b, const struct inode *in)
{
	uint8_t k[8], buf[NS_INODE_HDR_MAX + sizeof(in->data)];
	_Static_assert(sizeof(buf) >= NS_REF_MAX, "a REF fits");
	ino_key(k, in->ino);
	if (!in->embedded)
		return engine_batch_put(b, T_INODE, k, 8, buf, inode_encode(in, buf));
	int r = inode_write_dirent(b, in);
	if (r == 0 && in->ref_stale)
		r = engine_batch_put(b, T_INODE, k, 8, buf,
				     ns_ref_encode(buf, in->dparent, in->dname, in->dlen));
	return r;
}

/* Write `in` into the batch; while batching, only note it (pending_flush writes it). */
static int inode_put(struct kvfs *fs, struct engine_batch *b, const struct inode *in)
{
	if (fs->batching)
		return pending_note(fs, in);
	return inode_write(b, in);
}

/* The end of a kvfs_batch: the last state of every inode it changed, and next_ino.  An inode
 * purged in the batch (mode 0) has its delete in the batch already.  A truncation the batch
 * left to steps (fs->deferred, an inode with links) gets its orphan entry again with the
 * inode's last size: a later operation of the batch (through another name) may have changed
 * it, and the entry must hold the size past which blocks wait for the steps (man/kvfs.5). */
static int pend_ino_cmp(const void *a, const void *b)
{
	const struct inode *x = *(const struct inode *const *)a, *y = *(const struct inode *const *)b;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* dirent key order: parent, then the name's bytes, a proper prefix first */
static int pend_dirent_cmp(const void *a, const void *b)
{
	const struct inode *x = *(const struct inode *const *)a, *y = *(const struct inode *const *)b;
	if (x->embedded != y->embedded)
		return x->embedded ? 1 : -1;
	if (!x->embedded)
		return 0;
	if (x->dparent != y->dparent)
		return x->dparent < y->dparent ? -1 : 1;
	int c = memcmp(x->dname, y->dname, x->dlen < y->dlen ? x->dlen : y->dlen);
	return c ? c : (int)x->dlen - (int)y->dlen;
}

static int pending_flush(struct kvfs *fs, struct engine_batch *b)
{
	/* Each tree's records in key order: the overlay inserts a key after the last one it
	 * inserted without a search from its head (overlay.c "Finger"); in the hash table's
	 * order the embedded dirents of a fill of 1,000 files came at random, and the fill
	 * ran at half the speed.  T_INODE first (records and INODE REFs, by ino), then the
	 * embedded records in their dirents. */
	const struct inode **v = malloc((fs->n_pending ? fs->n_pending : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < fs->cap_pending; i++)
		if (fs->pending[i] && fs->pending[i]->mode)
			v[n++] = fs->pending[i];
	qsort(v, n, sizeof(*v), pend_ino_cmp);
	int r = 0;
	uint8_t k[8], rec[NS_INODE_HDR_MAX + sizeof(v[0]->data)];
	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct inode *in = v[i];
		if (in->embedded && !in->ref_stale)
			continue;
		ino_key(k, in->ino);
		size_t len = in->embedded ? ns_ref_encode(rec, in->dparent, in->dname, in->dlen)
					  : inode_encode(in, rec);
		r = engine_batch_put(b, T_INODE, k, 8, rec, len);
	}
	qsort(v, n, sizeof(*v), pend_dirent_cmp);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (v[i]->embedded)
			r = inode_write_dirent(b, v[i]);
	free(v);
	if (r < 0)
		return r;
	for (size_t i = 0; i < fs->n_deferred; i++) {
		const struct inode *in = pending_find(fs, fs->deferred[i]);
		if (!in || !in->mode || !in->nlink)
			continue; /* purged, or an orphan: its entry is empty */
		ino_key(k, in->ino);
		st64(rec, in->size);
		if ((r = engine_batch_put(b, T_ORPHAN, k, 8, rec, 8)) < 0)
			return r;
	}
	st64(rec, fs->next_ino);
	return engine_batch_put(b, T_SUPER, "next_ino", 8, rec, 8);
}

static void to_stat(const struct inode *in, struct kvfs_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->ino = in->ino;
	st->mode = in->mode;
	st->nlink = in->nlink;
	st->uid = in->uid;
	st->gid = in->gid;
	st->rdev = in->rdev;
	st->size = in->size;
	st->blocks = in->blocks * (BLOCK / 512);
	st->atime_ns = in->atime;
	st->mtime_ns = in->mtime;
	st->ctime_ns = in->ctime;
	st->generation = in->gen;
}

/* ---- commits ---- */

/* The dirent (parent, name) is deleted or replaced by the batch being built (ns_lock held). */
static void dc_note(struct kvfs *fs, uint64_t parent, const char *name, size_t len)
{
	if (len > DCACHE_NAME_MAX)
		return; /* never cached */
	if (fs->n_dc_pend == fs->cap_dc_pend) {
		size_t cap = fs->cap_dc_pend ? 2 * fs->cap_dc_pend : 16;
		struct dc_note *p = cap <= 4096 ? realloc(fs->dc_pend, cap * sizeof(*p)) : NULL;
		if (!p) {
			fs->dc_pend_lost = true;
			return;
		}
		fs->dc_pend = p;
		fs->cap_dc_pend = cap;
	}
	struct dc_note *n = &fs->dc_pend[fs->n_dc_pend++];
	n->parent = parent;
	n->len = len;
	memcpy(n->name, name, len);
}

/* After a commit (or its failure): drop the noted dirents from the cache (dcache.h's rule). */
static void dc_flush(struct kvfs *fs)
{
	if (fs->dc_pend_lost)
		dcache_clear(fs->dc);
	else
		for (size_t i = 0; i < fs->n_dc_pend; i++)
			dcache_invalidate(fs->dc, fs->dc_pend[i].parent, fs->dc_pend[i].name,
					  fs->dc_pend[i].len);
	fs->n_dc_pend = 0;
	fs->dc_pend_lost = false;
}

static int commit(struct kvfs *fs, struct engine_batch *b)
{
	uint64_t lsn;
	int r = engine_commit(fs->e, b, &lsn);
	dc_flush(fs);
	if (r == 0 && fs->sync_writes)
		r = engine_sync(fs->e, lsn);
	return r;
}

static int alloc_ino(struct kvfs *fs, struct engine_batch *b, uint64_t *ino)
{
	uint8_t v[8];
	*ino = fs->next_ino;
	if (fs->batching) { /* written once, by pending_flush */
		fs->next_ino++;
		return 0;
	}
	st64(v, fs->next_ino + 1);
	int r = engine_batch_put(b, T_SUPER, "next_ino", 8, v, 8);
	if (r == 0)
		fs->next_ino++;
	return r;
}

/* ---- data blocks ---- */

/* A data block put or deleted by the kvfs_batch being built (fs->bnotes).  The engine applies
 * a batch's operations in order, so the last note of a block is its state after the batch. */
struct bnote {
	uint64_t ino, blk;
	uint64_t v; /* BN_PUT, BN_GONE; for blk BN_END: 1 + the highest block put; 0: free slot */
};

#define BN_PUT 1u
#define BN_GONE 2u
#define BN_END UINT64_MAX /* blk of an inode's note of its highest block put */

static struct bnote *bnote_slot(struct kvfs *fs, uint64_t ino, uint64_t blk)
{
	size_t mask = fs->cap_bnotes - 1;
	size_t i = (size_t)((ino * 0x9e3779b97f4a7c15ull) ^ (blk * 0xc2b2ae3d27d4eb4full)) & mask;
	while (fs->bnotes[i].v && (fs->bnotes[i].ino != ino || fs->bnotes[i].blk != blk))
		i = (i + 1) & mask;
	return &fs->bnotes[i];
}

/* The note of block blk of ino (BN_PUT, BN_GONE), or 0: the batch has not touched it. */
static uint64_t bnote_get(struct kvfs *fs, uint64_t ino, uint64_t blk)
{
	return fs->n_bnotes ? bnote_slot(fs, ino, blk)->v : 0;
}

/* Note (ino, blk) as v; 0 or -ENOMEM. */
static int bnote_set(struct kvfs *fs, uint64_t ino, uint64_t blk, uint64_t v)
{
	if (2 * (fs->n_bnotes + 1) > fs->cap_bnotes) {
		size_t cap = fs->cap_bnotes ? fs->cap_bnotes * 2 : 256, oldcap = fs->cap_bnotes;
		struct bnote *old = fs->bnotes, *nw = calloc(cap, sizeof(*nw));
		if (!nw)
			return -ENOMEM;
		fs->bnotes = nw;
		fs->cap_bnotes = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].v)
				*bnote_slot(fs, old[i].ino, old[i].blk) = old[i];
		free(old);
	}
	struct bnote *n = bnote_slot(fs, ino, blk);
	if (!n->v)
		fs->n_bnotes++;
	n->ino = ino;
	n->blk = blk;
	n->v = v;
	return 0;
}

static void bnote_clear(struct kvfs *fs)
{
	if (fs->n_bnotes)
		memset(fs->bnotes, 0, fs->cap_bnotes * sizeof(*fs->bnotes));
	fs->n_bnotes = 0;
}

/* Put data block blk of ino (BLOCK bytes) into the batch, noting it while a kvfs_batch is
 * being built.  With `stable`, buf is not copied (engine_batch_put_ref): its bytes must stay
 * as they are until the batch is committed. */
static int data_put(struct kvfs *fs, struct engine_batch *b, uint64_t ino, uint64_t blk,
		    const uint8_t *buf, bool stable)
{
	uint8_t k[16];
	block_key(k, ino, blk);
	int r = stable ? engine_batch_put_ref(b, T_DATA, k, 16, buf, BLOCK)
		       : engine_batch_put(b, T_DATA, k, 16, buf, BLOCK);
	if (r < 0 || !fs->batching)
		return r;
	uint64_t end = bnote_get(fs, ino, BN_END);
	if ((r = bnote_set(fs, ino, blk, BN_PUT)) == 0 && blk + 1 > end)
		r = bnote_set(fs, ino, BN_END, blk + 1);
	return r;
}

/* The end of the blocks of ino the batch being built has put: the range [first, end) of a
 * scan for them, clipped ([first, first) when there are none). */
static uint64_t bnote_end(struct kvfs *fs, uint64_t ino, uint64_t first, uint64_t end)
{
	uint64_t e = fs->batching ? bnote_get(fs, ino, BN_END) : 0;
	e = e < end ? e : end;
	return e > first ? e : first;
}

/* Queue the deletion of the blocks of ino at index >= first (and < end; UINT64_MAX: to the
 * last), at most `limit` of them, lowest first; adds their count to *removed and sets *more
 * when blocks are left in the range, and then *next (when not NULL) to the index of the first
 * of them (where a next step of the same deletion starts).  The engine shows the committed state; while a
 * kvfs_batch is being built, the blocks its earlier operations deleted are skipped and the
 * ones they put are deleted too (fs->bnotes: a delete after a put of the same key in one
 * batch wins), outside `limit` (the batch's own puts bound them). */
static int del_blocks(struct kvfs *fs, struct engine_batch *b, uint64_t ino, uint64_t first,
		      uint64_t end, uint64_t limit, uint64_t *removed, bool *more, uint64_t *next)
{
	uint8_t lo[16], hi[16], k[16];
	block_key(lo, ino, first);
	if (end == UINT64_MAX) /* bound by the inode: keys of ino + 1 are not ours */
		block_key(hi, ino + 1, 0);
	else
		block_key(hi, ino, end);
	struct engine_iter *it;
	int r = engine_iter_new(fs->e, T_DATA, lo, 16, hi, 16, &it);
	if (r < 0)
		return r;
	size_t klen, vlen;
	uint64_t n = 0;
	*more = false;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen)) == 0) {
		if (klen != 16 || bnote_get(fs, ino, ldbe64(k + 8)))
			continue; /* deleted earlier in the batch, or put by it: below */
		if (n == limit) {
			*more = true;
			if (next)
				*next = ldbe64(k + 8);
			break;
		}
		if ((r = engine_batch_del(b, T_DATA, k, 16)) < 0 ||
		    (fs->batching && (r = bnote_set(fs, ino, ldbe64(k + 8), BN_GONE)) < 0))
			break;
		n++;
	}
	engine_iter_free(it);
	if (r != -ENOENT && r < 0)
		return r;
	for (uint64_t i = first, e = bnote_end(fs, ino, first, end); i < e; i++) {
		if (bnote_get(fs, ino, i) != BN_PUT)
			continue;
		block_key(k, ino, i);
		if ((r = engine_batch_del(b, T_DATA, k, 16)) < 0 ||
		    (r = bnote_set(fs, ino, i, BN_GONE)) < 0)
			return r;
		n++;
	}
	*removed += n;
	return 0;
}

/* Count the blocks of ino at index in [first, end): the committed state, and while a
 * kvfs_batch is being built, with its earlier operations' puts and deletes (fs->bnotes). */
static int count_blocks(struct kvfs *fs, uint64_t ino, uint64_t first, uint64_t end,
			uint64_t *n)
{
	uint8_t lo[16], hi[16], k[16];
	block_key(lo, ino, first);
	block_key(hi, ino, end);
	struct engine_iter *it;
	int r = engine_iter_new(fs->e, T_DATA, lo, 16, hi, 16, &it);
	if (r < 0)
		return r;
	size_t klen, vlen;
	*n = 0;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen)) == 0)
		*n += klen == 16 && !bnote_get(fs, ino, ldbe64(k + 8));
	engine_iter_free(it);
	for (uint64_t i = first, e = bnote_end(fs, ino, first, end); i < e; i++)
		*n += bnote_get(fs, ino, i) == BN_PUT;
	return r == -ENOENT ? 0 : r;
}

/* Block deletes the batch being built may still take: one step per operation, or what a
 * kvfs_batch has left of its one step. */
static uint64_t dels_left(const struct kvfs *fs)
{
	return fs->batching ? fs->batch_dels_left : fs->purge_step;
}

static void dels_spend(struct kvfs *fs, uint64_t n)
{
	if (fs->batching)
		fs->batch_dels_left -= n < fs->batch_dels_left ? n : fs->batch_dels_left;
}

/* The rest of ino's purge or truncation goes in steps after the commit (top of file). */
static int defer_note(struct kvfs *fs, uint64_t ino)
{
	for (size_t i = 0; i < fs->n_deferred; i++)
		if (fs->deferred[i] == ino)
			return 0;
	if (fs->n_deferred == fs->cap_deferred) {
		size_t cap = fs->cap_deferred ? 2 * fs->cap_deferred : 8;
		uint64_t *d = realloc(fs->deferred, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		fs->deferred = d;
		fs->cap_deferred = cap;
	}
	fs->deferred[fs->n_deferred++] = ino;
	return 0;
}

/* Put the range form of ino's orphan entry (ns_format.h, man/kvfs.5 "Orphans"): a hole
 * punched in steps, blocks [first, last) still to delete.  Value: LE u64 first, last. */
static int orphan_range_put(struct engine_batch *b, uint64_t ino, uint64_t first, uint64_t last)
{
	uint8_t k[8], v[ORPHAN_RANGE_LEN];
	ino_key(k, ino);
	st64(v, first);
	st64(v + 8, last);
	return engine_batch_put(b, T_ORPHAN, k, 8, v, sizeof(v));
}

/* The committed orphan entry of ino: *range set to whether it is a punch's range (and then
 * [*first, *last)).  0 (also when there is none), or the -errno of the read. */
static int orphan_range_get(struct kvfs *fs, uint64_t ino, bool *range, uint64_t *first,
			    uint64_t *last)
{
	uint8_t k[8], v[ORPHAN_RANGE_LEN];
	size_t vlen;
	ino_key(k, ino);
	int r = engine_get(fs->e, T_ORPHAN, k, 8, v, sizeof(v), &vlen);
	*range = r == 0 && vlen == ORPHAN_RANGE_LEN;
	if (*range) {
		*first = ld64(v);
		*last = ld64(v + 8);
	}
	return r == -ENOENT ? 0 : r;
}

/* Is block blk of ino in a punched range a read-only open must hide (fs->holes)? */
static bool hole_hides(const struct kvfs *fs, uint64_t ino, uint64_t blk)
{
	for (size_t i = 0; i < fs->n_holes; i++)
		if (fs->holes[i].ino == ino && blk >= fs->holes[i].first && blk < fs->holes[i].last)
			return true;
	return false;
}

/* Read-only open: note the range orphan entries (fs->holes).  0 or -errno. */
static int holes_load(struct kvfs *fs)
{
	struct engine_iter *it;
	int r = engine_iter_new(fs->e, T_ORPHAN, NULL, 0, NULL, 0, &it);
	if (r < 0)
		return r;
	uint8_t k[8], v[ORPHAN_RANGE_LEN];
	size_t klen, vlen, cap = 0;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, v, sizeof(v), &vlen)) == 0) {
		struct inode in;
		if (klen != 8 || vlen != ORPHAN_RANGE_LEN || ld64(v) >= ld64(v + 8))
			continue;
		if ((r = inode_get(fs, ldbe64(k), &in)) == -ENOENT)
			continue;
		if (r < 0)
			break;
		if (ld64(v + 8) > (in.size + BLOCK - 1) / BLOCK)
			continue; /* not a range a punch makes: as orphan_finish, ignored */
		if (fs->n_holes == cap) {
			cap = cap ? 2 * cap : 4;
			struct hole *h = realloc(fs->holes, cap * sizeof(*h));
			if (!h) {
				r = -ENOMEM;
				break;
			}
			fs->holes = h;
		}
		fs->holes[fs->n_holes++] = (struct hole){ ldbe64(k), ld64(v), ld64(v + 8) };
	}
	engine_iter_free(it);
	return r == -ENOENT ? 0 : r;
}

/* Read block blk of ino into buf (BLOCK bytes; a hole, or a block that fs->holes hides, as
 * zeros: *exists false), inside the engine_read rd or on its own (rd NULL).  0 or -errno. */
static int get_block(struct kvfs *fs, struct engine_read *rd, uint64_t ino, uint64_t blk,
		     uint8_t *buf, bool *exists)
{
	uint8_t k[16];
	size_t len;
	block_key(k, ino, blk);
	int r = fs->n_holes && hole_hides(fs, ino, blk) ? -ENOENT
							 : ns_get(fs, rd, T_DATA, k, 16, buf,
								  BLOCK, &len);
	if (r == -ENOENT) {
		memset(buf, 0, BLOCK);
		*exists = false;
		return 0;
	}
	if (r < 0)
		return r;
	if (len > BLOCK)
		return -EUCLEAN;
	if (len < BLOCK)
		memset(buf + len, 0, BLOCK - len);
	*exists = true;
	return 0;
}

/* Zero [from, to) inside one block (a partial block at the edge of a truncate or punch).
 * Reads the committed block: not while a kvfs_batch is being built (its puts are not seen). */
static int zero_in_block(struct kvfs *fs, struct engine_batch *b, struct inode *in, uint64_t from,
			 uint64_t to)
{
	assert(!fs->batching);
	uint64_t blk = from / BLOCK;
	uint8_t buf[BLOCK];
	bool exists;
	int r = get_block(fs, NULL, in->ino, blk, buf, &exists);
	if (r < 0 || !exists)
		return r;
	memset(buf + from % BLOCK, 0, to - from);
	return data_put(fs, b, in->ino, blk, buf, false);
}

/* Move an inline file's bytes into block 0. */
static int uninline(struct kvfs *fs, struct engine_batch *b, struct inode *in)
{
	if (!(in->flags & INODE_INLINE))
		return 0;
	in->flags &= ~INODE_INLINE;
	if (in->size == 0)
		return 0;
	uint8_t buf[BLOCK];
	memset(buf, 0, BLOCK);
	memcpy(buf, in->data, in->size);
	in->blocks = 1;
	return data_put(fs, b, in->ino, 0, buf, false);
}

static int set_size_z(struct kvfs *fs, struct engine_batch *b, struct inode *in, uint64_t size,
		      bool zero_tail);

/* Set the size of a regular file: drop blocks past it (in steps after the commit when there
 * are more than the batch may delete: top of file), zero the tail of the last one. */
static int set_size(struct kvfs *fs, struct engine_batch *b, struct inode *in, uint64_t size)
{
	return set_size_z(fs, b, in, size, true);
}

/* set_size; without zero_tail, the block holding the new end is left as it is (the caller
 * rewrites it: put_file_b). */
static int set_size_z(struct kvfs *fs, struct engine_batch *b, struct inode *in, uint64_t size,
		      bool zero_tail)
{
	if (size > KVFS_MAX_FILE)
		return -EFBIG;
	int r;
	if (in->flags & INODE_INLINE) {
		if (size <= INLINE_MAX) {
			if (size > in->size)
				memset(in->data + in->size, 0, size - in->size);
			in->size = size;
			return 0;
		}
		if ((r = uninline(fs, b, in)) < 0)
			return r;
	}
	if (size < in->size) {
		uint64_t removed = 0;
		bool more;
		if ((r = del_blocks(fs, b, in->ino, (size + BLOCK - 1) / BLOCK, UINT64_MAX,
				    dels_left(fs), &removed, &more, NULL)) < 0)
			return r;
		dels_spend(fs, removed);
		in->blocks -= removed < in->blocks ? removed : in->blocks;
		if (zero_tail && size % BLOCK &&
		    (r = zero_in_block(fs, b, in, size, (size / BLOCK + 1) * BLOCK)) < 0)
			return r;
		if (more) {
			/* a truncation on the orphan list (an unlinked inode is there already:
			 * its entry stays empty); the file stays in blocks until the last step */
			uint8_t k[8], v[8];
			ino_key(k, in->ino);
			st64(v, size);
			if (in->nlink && (r = engine_batch_put(b, T_ORPHAN, k, 8, v, 8)) < 0)
				return r;
			if ((r = defer_note(fs, in->ino)) < 0)
				return r;
		} else if (size == 0) { /* back to inline: a small file again costs no block */
			in->flags |= INODE_INLINE;
			in->blocks = 0;
		}
	}
	in->size = size;
	return 0;
}

/* The end of a purge: xattrs, the inode record and its orphan entry (NS-4). */
static int purge_rest(struct kvfs *fs, struct engine_batch *b, struct inode *in)
{
	uint8_t k[8], lo[8], hi[8], xk[8 + KVFS_NAME_MAX];
	int r;
	ino_key(lo, in->ino);
	ino_key(hi, in->ino + 1);
	struct engine_iter *it;
	if ((r = engine_iter_new(fs->e, T_XATTR, lo, 8, hi, 8, &it)) < 0)
		return r;
	size_t klen, vlen;
	while ((r = engine_iter_next(it, xk, sizeof(xk), &klen, NULL, 0, &vlen)) == 0)
		if (klen <= sizeof(xk) && (r = engine_batch_del(b, T_XATTR, xk, klen)) < 0)
			break;
	engine_iter_free(it);
	if (r != -ENOENT && r < 0)
		return r;
	ino_key(k, in->ino);
	if ((r = engine_batch_del(b, T_INODE, k, 8)) < 0)
		return r;
	if (fs->batching) {
		struct inode *gone = calloc(1, sizeof(*gone)); /* whole: -Warray-bounds */
		if (!gone)
			return -ENOMEM;
		gone->ino = in->ino;
		gone->flags = INODE_INLINE;
		r = pending_note(fs, gone);
		free(gone);
		if (r < 0)
			return r;
	}
	return engine_batch_del(b, T_ORPHAN, k, 8);
}

/* Delete an inode and everything it owns (NS-4): in this batch, or, when it has more blocks
 * than the batch may delete, as an orphan (nlink 0, an empty orphan entry) whose remaining
 * blocks go in steps after the commit (top of file). */
static int purge(struct kvfs *fs, struct engine_batch *b, struct inode *in)
{
	if (S_ISREG(in->mode) && !(in->flags & INODE_INLINE)) {
		uint64_t removed = 0;
		bool more;
		int r = del_blocks(fs, b, in->ino, 0, UINT64_MAX, dels_left(fs), &removed, &more,
				   NULL);
		if (r < 0)
			return r;
		dels_spend(fs, removed);
		if (more) {
			uint8_t k[8];
			ino_key(k, in->ino);
			in->blocks -= removed < in->blocks ? removed : in->blocks;
			in->nlink = 0;
			if ((r = engine_batch_put(b, T_ORPHAN, k, 8, NULL, 0)) < 0 ||
			    (r = inode_put(fs, b, in)) < 0)
				return r;
			return defer_note(fs, in->ino);
		}
	}
	return purge_rest(fs, b, in);
}

static struct open_ref *open_ref_find(struct kvfs *fs, uint64_t ino)
{
	for (struct open_ref *o = fs->open_refs; o; o = o->next)
		if (o->ino == ino)
			return o;
	return NULL;
}

/* The last name of `in` went away: purge it, or keep it as an orphan while open. */
static int drop_inode(struct kvfs *fs, struct engine_batch *b, struct inode *in)
{
	inode_unembed(in); /* its dirent is gone: an orphan's record is in T_INODE (EI-4) */
	if (open_ref_find(fs, in->ino)) {
		/* A punched range whose steps failed (fs->unfinished) keeps its entry: the
		 * steps delete the range, then leave the entry empty (orphan_finish). */
		uint8_t k[8];
		bool range;
		uint64_t first, last;
		ino_key(k, in->ino);
		int r = orphan_range_get(fs, in->ino, &range, &first, &last);
		if (r == 0 && !range)
			r = engine_batch_put(b, T_ORPHAN, k, 8, NULL, 0);
		return r ? r : inode_put(fs, b, in);
	}
	return purge(fs, b, in);
}

/* ---- orphans: steps ---- */

/*
 * Finish the orphan entry of `ino` in steps of at most purge_step block deletes, each its own
 * commit (top of file): an inode with nlink 0 that is not open is purged, the xattrs, record
 * and entry going with the last step; any other loses the blocks of a punched range (the
 * entry's range form) and the blocks past its size, and the last step makes a file of size 0
 * inline again and deletes the entry, or for an orphan (nlink 0, open) leaves it empty.  A
 * missing inode's entry is deleted.  Works from the committed state only (not while a
 * kvfs_batch is being built); ns_lock held, or no other thread.  The steps are not synced:
 * none changes what a reader sees once the call that made the entry returned, and after a
 * crash the next open does them again.  0 or the -errno of a read or commit (the entry then
 * stays).
 */
static int orphan_finish(struct kvfs *fs, uint64_t ino)
{
	struct engine_batch *b = engine_batch_new();
	if (!b)
		return -ENOMEM;
	uint8_t k[8];
	ino_key(k, ino);
	bool range = false;
	uint64_t rfirst = 0, rlast = 0;
	int r = orphan_range_get(fs, ino, &range, &rfirst, &rlast);
	/* Where each kind of deletion goes on at the next step: the blocks before it are deleted
	 * by the steps before (no one else changes this inode's blocks meanwhile), and an
	 * iterator started from the range's beginning again would pass over all of their
	 * tombstones, each step more: quadratic in the steps of a multi-GiB purge. */
	uint64_t at_purge = 0, at_range = rfirst, at_tail = 0;
	while (r == 0) {
		struct inode in;
		engine_batch_clear(b);
		if ((r = inode_get(fs, ino, &in)) == -ENOENT) {
			if ((r = engine_batch_del(b, T_ORPHAN, k, 8)) == 0)
				r = engine_commit(fs->e, b, NULL);
			break;
		}
		if (r < 0)
			break;
		bool purge_it = in.nlink == 0 && !open_ref_find(fs, ino);
		uint64_t removed = 0;
		bool more = false;
		if (range && !(rfirst < rlast && rlast <= (in.size + BLOCK - 1) / BLOCK))
			rlast = rfirst; /* not a range a punch makes: no block of it is deleted
					 * (kvfs-check reports it, NS_ORPHAN_STALE) */
		if (S_ISREG(in.mode) && !(in.flags & INODE_INLINE)) {
			if (purge_it) {
				r = del_blocks(fs, b, ino, at_purge, UINT64_MAX, fs->purge_step,
					       &removed, &more, &at_purge);
			} else if (range && at_range < rlast) {
				r = del_blocks(fs, b, ino, at_range, rlast, fs->purge_step, &removed,
					       &more, &at_range);
				if (r == 0 && !more)
					at_range = rlast;
			}
			uint64_t tail = (in.size + BLOCK - 1) / BLOCK;
			if (r == 0 && !purge_it && !more)
				r = del_blocks(fs, b, ino, at_tail > tail ? at_tail : tail,
					       UINT64_MAX, fs->purge_step - removed, &removed,
					       &more, &at_tail);
			if (r < 0)
				break;
		}
		in.blocks -= removed < in.blocks ? removed : in.blocks;
		if (more) {
			if ((r = inode_write(b, &in)) < 0 ||
			    (r = engine_commit(fs->e, b, NULL)) < 0)
				break;
			continue;
		}
		if (purge_it) {
			r = purge_rest(fs, b, &in);
		} else {
			if (S_ISREG(in.mode) && !(in.flags & INODE_INLINE) && in.size == 0) {
				in.flags |= INODE_INLINE; /* as set_size to 0 */
				in.blocks = 0;
			}
			r = inode_write(b, &in);
			if (r == 0 && in.nlink)
				r = engine_batch_del(b, T_ORPHAN, k, 8);
			else if (r == 0 && range) /* still an orphan: its entry empty again */
				r = engine_batch_put(b, T_ORPHAN, k, 8, NULL, 0);
		}
		if (r == 0)
			r = engine_commit(fs->e, b, NULL);
		break;
	}
	engine_batch_free(b);
	return r;
}

/* Finish every orphan entry (orphan_finish): at open and close, and to retry failed steps. */
static int purge_orphans(struct kvfs *fs)
{
	struct engine_iter *it;
	int r = engine_iter_new(fs->e, T_ORPHAN, NULL, 0, NULL, 0, &it);
	if (r < 0)
		return r;
	uint8_t k[8];
	size_t klen, vlen;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen)) == 0) {
		if (klen != 8)
			continue;
		if ((r = orphan_finish(fs, ldbe64(k))) < 0)
			break;
	}
	engine_iter_free(it);
	return r == -ENOENT ? 0 : r;
}

/* After the commit of an operation's batch: the steps it left (fs->deferred).  A failure is
 * logged, not returned (the operation itself is done and stays so); its orphan entry stays,
 * finished at the next open or before a write that could extend a file (unfinished_check). */
static void deferred_run(struct kvfs *fs)
{
	for (size_t i = 0; i < fs->n_deferred; i++) {
		int r = orphan_finish(fs, fs->deferred[i]);
		if (r < 0) {
			fs->unfinished = true;
			if (fs->log) {
				char line[160];
				snprintf(line, sizeof(line), "freeing the blocks of inode %llu: %s "
					 "(retried before the next write, or at the next open)",
					 (unsigned long long)fs->deferred[i], strerror(-r));
				fs->log(fs->log_ctx, line);
			}
		}
	}
	fs->n_deferred = 0;
}

/* Commit an operation's batch, then the steps it left (ns_lock held; not while a kvfs_batch
 * is being built). */
static int commit_op(struct kvfs *fs, struct engine_batch *b)
{
	int r = commit(fs, b);
	if (r < 0)
		fs->n_deferred = 0; /* nothing of it is in the store */
	else
		deferred_run(fs);
	return r;
}

/* Steps that failed earlier leave blocks past some file's size: finish them before a change
 * that could extend a file over them.  ns_lock held, no batch being built. */
static int unfinished_check(struct kvfs *fs)
{
	if (!fs->unfinished)
		return 0;
	int r = purge_orphans(fs);
	fs->unfinished = r < 0;
	return r;
}

/* ---- open / close ---- */

int kvfs_open(const char *path, const struct kvfs_options *opt, struct kvfs **out)
{
	return kvfs_open_env(path, opt, NULL, NULL, out);
}

int kvfs_open_env(const char *path, const struct kvfs_options *opt, struct io_env *io,
		  const struct kvfs_engine_tuning *tune, struct kvfs **out)
{
	struct kvfs_options dflt;
	if (!opt) {
		memset(&dflt, 0, sizeof(dflt));
		opt = &dflt;
	}
	struct kvfs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->dc = dcache_new();
	if (!fs->dc) {
		free(fs);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->ns_lock, NULL);
	fs->rdonly = opt->flags & KVFS_RDONLY;
	fs->sync_writes = opt->flags & KVFS_SYNC_WRITES;
	fs->log = opt->log;
	fs->log_ctx = opt->log_ctx;
	struct engine_options eo = {
		.flags = (opt->flags & KVFS_CREATE ? STORE_CREATE : 0) |
			 (fs->rdonly ? STORE_RDONLY : 0),
		.mode = opt->mode,
		.ckpt_overlay_bytes = opt->checkpoint_bytes,
		.ckpt_interval_ms = opt->checkpoint_interval_ms,
		.mem_limit = opt->memory_limit,
		.io = io,
		.log = opt->log,
		.log_ctx = opt->log_ctx,
	};
	fs->purge_step = PURGE_STEP_BLOCKS;
	if (tune) {
		if (tune->purge_step_blocks)
			fs->purge_step = tune->purge_step_blocks;
		eo.log_ring_bytes = tune->log_ring_bytes;
		eo.no_checkpoint_thread = tune->no_checkpoint_thread;
		eo.ckpt_piece_pages = tune->ckpt_piece_pages;
	}
	int r = engine_open(path, &eo, &fs->e);
	if (r < 0) {
		pthread_mutex_destroy(&fs->ns_lock);
		dcache_free(fs->dc);
		free(fs);
		return r;
	}
	uint8_t v[8];
	size_t len;
	r = engine_get(fs->e, T_SUPER, "next_ino", 8, v, sizeof(v), &len);
	if (r == 0 && len == 8) {
		fs->next_ino = ld64(v);
	} else if (r == -ENOENT && !fs->rdonly) {
		/* a new store: the root directory */
		struct inode root;
		memset(&root, 0, sizeof(root));
		root.ino = KVFS_ROOT_INO;
		root.mode = S_IFDIR | 0755;
		root.nlink = 2;
		root.uid = getuid();
		root.gid = getgid();
		root.atime = root.mtime = root.ctime = now_ns();
		root.parent = KVFS_ROOT_INO;
		fs->next_ino = KVFS_ROOT_INO + 1;
		struct engine_batch *b = engine_batch_new();
		st64(v, fs->next_ino);
		r = b ? 0 : -ENOMEM;
		if (r == 0)
			r = inode_put(fs, b, &root);
		if (r == 0)
			r = engine_batch_put(b, T_SUPER, "next_ino", 8, v, 8);
		if (r == 0)
			r = commit(fs, b);
		if (r == 0)
			r = engine_sync(fs->e, 0);
		engine_batch_free(b);
	} else if (r == 0 || r == -ENOENT) {
		r = -EUCLEAN; /* read-only and no root: not a file-system store */
	}
	if (r == 0)
		r = fs->rdonly ? holes_load(fs) : purge_orphans(fs);
	if (r < 0) {
		engine_close(fs->e);
		pthread_mutex_destroy(&fs->ns_lock);
		dcache_free(fs->dc);
		free(fs->dc_pend);
		free(fs->deferred);
		free(fs->holes);
		free(fs);
		return r;
	}
	*out = fs;
	return 0;
}

int kvfs_close(struct kvfs *fs)
{
	if (!fs)
		return 0;
	/* Orphans still open are purged now (their handles die with us) or at the next open. */
	pthread_mutex_lock(&fs->ns_lock);
	struct open_ref *o = fs->open_refs;
	fs->open_refs = NULL;
	pthread_mutex_unlock(&fs->ns_lock);
	while (o) {
		struct open_ref *next = o->next;
		free(o);
		o = next;
	}
	int r = 0;
	if (!fs->rdonly)
		r = purge_orphans(fs);
	int r2 = engine_close(fs->e);
	pthread_mutex_destroy(&fs->ns_lock);
	pending_clear(fs);
	free(fs->pending);
	free(fs->bnotes);
	dcache_free(fs->dc);
	free(fs->dc_pend);
	free(fs->deferred);
	free(fs->holes);
	free(fs);
	return r ? r : r2;
}

int kvfs_sync(struct kvfs *fs)
{
	return engine_sync(fs->e, 0);
}

int kvfs_fsync(struct kvfs *fs, uint64_t ino)
{
	(void)ino; /* one log: syncing it covers every inode */
	return engine_sync(fs->e, 0);
}

/* ---- lookups ---- */

static int dirent_read(struct kvfs *fs, struct engine_read *rd, uint64_t parent,
		       const char *name, size_t len, uint64_t *ino, unsigned *type)
{
	uint8_t k[8 + KVFS_NAME_MAX], v[DIRENT_VALUE];
	size_t vlen;
	int r = ns_get(fs, rd, T_DIRENT, k, dirent_key(k, parent, name, len), v, sizeof(v), &vlen);
	if (r < 0)
		return r;
	if (vlen < DIRENT_VALUE) /* longer: an embedded inode follows */
		return -EUCLEAN;
	*ino = ld64(v);
	*type = v[8];
	return 0;
}

static int dirent_get(struct kvfs *fs, uint64_t parent, const char *name, size_t len,
		      uint64_t *ino, unsigned *type)
{
	return dirent_read(fs, NULL, parent, name, len, ino, type);
}

static int dir_inode(struct kvfs *fs, uint64_t ino, struct inode *in)
{
	int r = inode_get(fs, ino, in);
	if (r < 0)
		return r;
	return S_ISDIR(in->mode) ? 0 : -ENOTDIR;
}

/*
 * The inode that (parent, name) names: one read when the dirent embeds it (ns_format.h
 * "Embedded inodes"), else the dirent then the inode.  Reads take no namespace lock; the
 * dirent and the inode are read in one engine_read, so they come from one committed state (a
 * rename or removal commits whole, before or after both reads): a dirent whose inode is
 * missing there breaks NS-1 (-EUCLEAN).  While this thread builds a kvfs_batch (ns_lock held:
 * nothing commits meanwhile), the reads are made apart, and the batch's own copy of the inode
 * (fs->pending) wins over the committed one.  -ENOENT, -EUCLEAN, -errno.
 */
struct name_read {
	struct kvfs *fs;
	uint64_t parent;
	const char *name;
	size_t len;
	struct inode *in;
};

static int name_inode_read(struct engine_read *rd, void *ctx)
{
	struct name_read *nr = ctx;
	struct kvfs *fs = nr->fs;
	uint8_t k[8 + KVFS_NAME_MAX], v[NS_VALUE_MAX];
	size_t vlen;
	int r = ns_get(fs, rd, T_DIRENT, k, dirent_key(k, nr->parent, nr->name, nr->len), v,
		       sizeof(v), &vlen);
	if (r < 0)
		return r;
	if (vlen < DIRENT_VALUE || vlen > sizeof(v))
		return -EUCLEAN;
	uint64_t ino = ld64(v);
	/* embedded: one read for the name and the inode (unless the batch being built has a
	 * newer copy of it) */
	if (vlen > DIRENT_VALUE && !(tl_batch == fs && pending_find(fs, ino)))
		return inode_from_dirent(nr->in, nr->parent, nr->name, nr->len, v, vlen);
	if ((r = inode_read(fs, rd, ino, nr->in)) == -ENOENT)
		r = -EUCLEAN; /* NS-1 broken */
	return r;
}

static int name_inode(struct kvfs *fs, uint64_t parent, const char *name, size_t len,
		      struct inode *in)
{
	struct name_read nr = { fs, parent, name, len, in };
	if (tl_batch == fs) /* ns_lock held: nothing commits between the reads */
		return name_inode_read(NULL, &nr);
	return engine_read(fs->e, name_inode_read, &nr);
}

int kvfs_lookup(struct kvfs *fs, uint64_t parent, const char *name, struct kvfs_stat *st)
{
	size_t len;
	struct inode in;
	int r = name_check(name, &len);
	if (r < 0)
		return r;
	if ((r = dir_inode(fs, parent, &in)) < 0)
		return r;
	if ((r = name_inode(fs, parent, name, len, &in)) < 0)
		return r;
	to_stat(&in, st);
	return 0;
}

int kvfs_getattr(struct kvfs *fs, uint64_t ino, struct kvfs_stat *st)
{
	struct inode in;
	int r = inode_get(fs, ino, &in);
	if (r == 0)
		to_stat(&in, st);
	return r;
}

/* ---- creating names ---- */

static int touch_dir(struct kvfs *fs, struct engine_batch *b, struct inode *dir, int64_t now,
		     int nlink_delta)
{
	dir->mtime = dir->ctime = now;
	dir->nlink = (uint32_t)((int64_t)dir->nlink + nlink_delta);
	return inode_put(fs, b, dir);
}

/* Name `in` (parent, name): a plain dirent; none when `in` is embedded there (its inode_put,
 * which the caller makes in the same batch, writes the dirent with the record). */
static int put_dirent(struct engine_batch *b, uint64_t parent, const char *name, size_t len,
		      const struct inode *in)
{
	if (in->embedded && in->dparent == parent && in->dlen == len &&
	    memcmp(in->dname, name, len) == 0)
		return 0;
	uint8_t k[8 + KVFS_NAME_MAX], v[DIRENT_VALUE];
	st64(v, in->ino);
	v[8] = (uint8_t)mode_dt(in->mode);
	return engine_batch_put(b, T_DIRENT, k, dirent_key(k, parent, name, len), v, DIRENT_VALUE);
}

static int del_dirent(struct kvfs *fs, struct engine_batch *b, uint64_t parent, const char *name,
		      size_t len)
{
	uint8_t k[8 + KVFS_NAME_MAX];
	dc_note(fs, parent, name, len);
	return engine_batch_del(b, T_DIRENT, k, dirent_key(k, parent, name, len));
}

static int create_node(struct kvfs *fs, uint64_t parent, const char *name, uint32_t mode,
		       uint64_t rdev, uint32_t uid, uint32_t gid, const char *target,
		       struct kvfs_stat *st)
{
	size_t len, tlen = 0;
	int r = name_check(name, &len);
	if (r < 0)
		return r;
	if (fs->rdonly)
		return -EROFS;
	if (target) {
		tlen = strlen(target);
		if (tlen == 0)
			return -ENOENT;
		if (tlen > SYMLINK_MAX)
			return -ENAMETOOLONG;
	}
	pthread_mutex_lock(&fs->ns_lock);
	struct inode dir, in;
	struct engine_batch *b = engine_batch_new();
	uint64_t ino;
	unsigned type;
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = dir_inode(fs, parent, &dir)) < 0)
		goto out;
	if (dir.nlink == 0) { /* a removed directory still open */
		r = -ENOENT;
		goto out;
	}
	r = dirent_get(fs, parent, name, len, &ino, &type);
	if (r == 0) {
		r = -EEXIST;
		goto out;
	}
	if (r != -ENOENT)
		goto out;
	if (S_ISDIR(mode) && dir.nlink >= UINT32_MAX - 1) {
		r = -EMLINK;
		goto out;
	}
	memset(&in, 0, sizeof(in));
	if ((r = alloc_ino(fs, b, &in.ino)) < 0)
		goto out;
	int64_t now = now_ns();
	in.mode = mode;
	in.nlink = S_ISDIR(mode) ? 2 : 1;
	in.uid = uid;
	in.gid = gid;
	if (dir.mode & S_ISGID) { /* the setgid-directory rule */
		in.gid = dir.gid;
		if (S_ISDIR(mode))
			in.mode |= S_ISGID;
	}
	in.rdev = rdev;
	in.atime = in.mtime = in.ctime = now;
	in.gen = 1;
	in.parent = S_ISDIR(mode) ? parent : 0;
	in.flags = INODE_INLINE;
	if (target) {
		memcpy(in.data, target, tlen);
		in.size = tlen;
	}
	if (!S_ISDIR(mode))
		inode_embed(&in, parent, name, len);
	if ((r = inode_put(fs, b, &in)) < 0 || (r = put_dirent(b, parent, name, len, &in)) < 0 ||
	    (r = touch_dir(fs, b, &dir, now, S_ISDIR(mode) ? 1 : 0)) < 0)
		goto out;
	if ((r = commit(fs, b)) < 0)
		goto out;
	if (st)
		to_stat(&in, st);
out:
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

int kvfs_mknod(struct kvfs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
	       uint32_t uid, uint32_t gid, struct kvfs_stat *st)
{
	if ((mode & S_IFMT) == 0)
		mode |= S_IFREG;
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) &&
	    !S_ISBLK(mode))
		return -EINVAL;
	return create_node(fs, parent, name, mode & (S_IFMT | 07777), rdev, uid, gid, NULL, st);
}

int kvfs_mkdir(struct kvfs *fs, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
	       uint32_t gid, struct kvfs_stat *st)
{
	return create_node(fs, parent, name, S_IFDIR | (mode & 07777), 0, uid, gid, NULL, st);
}

int kvfs_symlink(struct kvfs *fs, uint64_t parent, const char *name, const char *target,
		 uint32_t uid, uint32_t gid, struct kvfs_stat *st)
{
	return create_node(fs, parent, name, S_IFLNK | 0777, 0, uid, gid, target, st);
}

ssize_t kvfs_readlink(struct kvfs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct inode in;
	int r = inode_get(fs, ino, &in);
	if (r < 0)
		return r;
	if (!S_ISLNK(in.mode))
		return -EINVAL;
	size_t n = in.size < cap ? in.size : cap;
	memcpy(buf, in.data, n);
	return (ssize_t)n;
}

int kvfs_link(struct kvfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	      struct kvfs_stat *st)
{
	size_t len;
	int r = name_check(newname, &len);
	if (r < 0)
		return r;
	if (fs->rdonly)
		return -EROFS;
	pthread_mutex_lock(&fs->ns_lock);
	struct inode in, dir;
	uint64_t other;
	unsigned type;
	struct engine_batch *b = engine_batch_new();
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = inode_get(fs, ino, &in)) < 0)
		goto out;
	if (S_ISDIR(in.mode)) {
		r = -EPERM;
		goto out;
	}
	if (in.nlink == 0) {
		r = -ENOENT;
		goto out;
	}
	if (in.nlink >= UINT32_MAX - 1) {
		r = -EMLINK;
		goto out;
	}
	if ((r = dir_inode(fs, newparent, &dir)) < 0)
		goto out;
	if (dir.nlink == 0) { /* removed while open: no new names in it */
		r = -ENOENT;
		goto out;
	}
	r = dirent_get(fs, newparent, newname, len, &other, &type);
	if (r == 0)
		r = -EEXIST;
	if (r != -ENOENT)
		goto out;
	int64_t now = now_ns();
	if (in.embedded) { /* two names: the record goes to T_INODE, the first dirent plain */
		inode_unembed(&in);
		if ((r = put_dirent(b, in.dparent, in.dname, in.dlen, &in)) < 0)
			goto out;
	}
	in.nlink++;
	in.ctime = now;
	if ((r = inode_put(fs, b, &in)) < 0 || (r = put_dirent(b, newparent, newname, len, &in)) < 0 ||
	    (r = touch_dir(fs, b, &dir, now, 0)) < 0 || (r = commit(fs, b)) < 0)
		goto out;
	if (st)
		to_stat(&in, st);
out:
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

/* ---- removing names ---- */

static int dir_empty(struct kvfs *fs, uint64_t ino)
{
	uint8_t lo[8], hi[8], k[8 + KVFS_NAME_MAX];
	ino_key(lo, ino);
	ino_key(hi, ino + 1);
	struct engine_iter *it;
	int r = engine_iter_new(fs->e, T_DIRENT, lo, 8, hi, 8, &it);
	if (r < 0)
		return r;
	size_t klen, vlen;
	r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen);
	engine_iter_free(it);
	if (r == 0)
		return -ENOTEMPTY;
	return r == -ENOENT ? 0 : r;
}

/* Add to `b` the removal of `name` (len bytes) from `parent`; ns_lock held.  want_dir: rmdir
 * rules, else unlink rules; -1 for either (kvfs_delete). */
static int remove_name_b(struct kvfs *fs, struct engine_batch *b, uint64_t parent,
			 const char *name, size_t len, int want_dir)
{
	struct inode dir, in;
	uint64_t ino;
	unsigned type;
	int r;
	if ((r = dir_inode(fs, parent, &dir)) < 0 ||
	    (r = dirent_get(fs, parent, name, len, &ino, &type)) < 0 ||
	    (r = inode_get(fs, ino, &in)) < 0)
		return r;
	int64_t now = now_ns();
	bool isdir = S_ISDIR(in.mode);
	if (want_dir == 1 && !isdir)
		return -ENOTDIR;
	if (want_dir == 0 && isdir)
		return -EISDIR;
	if (isdir) {
		if (ino == KVFS_ROOT_INO)
			return -EBUSY;
		if ((r = dir_empty(fs, ino)) < 0)
			return r;
		in.nlink = 0;
	} else {
		in.nlink--;
	}
	inode_unembed(&in); /* its dirent goes */
	in.ctime = now;
	if ((r = del_dirent(fs, b, parent, name, len)) < 0 ||
	    (r = touch_dir(fs, b, &dir, now, isdir ? -1 : 0)) < 0)
		return r;
	return in.nlink ? inode_put(fs, b, &in) : drop_inode(fs, b, &in);
}

static int remove_name(struct kvfs *fs, uint64_t parent, const char *name, int want_dir)
{
	size_t len;
	int r = name_check(name, &len);
	if (r < 0)
		return r;
	if (fs->rdonly)
		return -EROFS;
	struct engine_batch *b = engine_batch_new();
	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&fs->ns_lock);
	fs->n_deferred = 0;
	r = remove_name_b(fs, b, parent, name, len, want_dir);
	if (r == 0)
		r = commit_op(fs, b);
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

int kvfs_unlink(struct kvfs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, 0);
}

int kvfs_rmdir(struct kvfs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, 1);
}

/* ---- rename ---- */

/* -EINVAL when directory `dir` is `anc` or lies below it (NS-3 walks up). */
static int not_below(struct kvfs *fs, uint64_t dir, uint64_t anc)
{
	for (int depth = 0; depth < 4096; depth++) {
		if (dir == anc)
			return -EINVAL;
		if (dir == KVFS_ROOT_INO)
			return 0;
		struct inode in;
		int r = inode_get(fs, dir, &in);
		if (r < 0)
			return r;
		dir = in.parent;
	}
	return -EUCLEAN; /* a cycle: NS-3 broken */
}

int kvfs_rename(struct kvfs *fs, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname, unsigned flags)
{
	size_t len, nlen;
	int r;
	if ((flags & ~(unsigned)(KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE)) ||
	    (flags == (KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE)))
		return -EINVAL;
	if ((r = name_check(name, &len)) < 0 || (r = name_check(newname, &nlen)) < 0)
		return r;
	if (fs->rdonly)
		return -EROFS;
	pthread_mutex_lock(&fs->ns_lock);
	fs->n_deferred = 0;
	struct inode sdir, ddir, src, dst;
	uint64_t sino, dino = 0;
	unsigned stype, dtype;
	bool have_dst;
	struct engine_batch *b = engine_batch_new();
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = dir_inode(fs, parent, &sdir)) < 0 || (r = dir_inode(fs, newparent, &ddir)) < 0 ||
	    (r = dirent_get(fs, parent, name, len, &sino, &stype)) < 0 ||
	    (r = inode_get(fs, sino, &src)) < 0)
		goto out;
	if (ddir.nlink == 0) { /* removed while open: no new names in it */
		r = -ENOENT;
		goto out;
	}
	r = dirent_get(fs, newparent, newname, nlen, &dino, &dtype);
	if (r < 0 && r != -ENOENT)
		goto out;
	have_dst = r == 0;
	if (have_dst && (r = inode_get(fs, dino, &dst)) < 0)
		goto out;
	r = 0;
	if ((flags & KVFS_RENAME_EXCHANGE) && !have_dst) {
		r = -ENOENT;
		goto out;
	}
	if ((flags & KVFS_RENAME_NOREPLACE) && have_dst) {
		r = -EEXIST;
		goto out;
	}
	bool sdirp = S_ISDIR(src.mode), ddirp = have_dst && S_ISDIR(dst.mode);
	/* Linux's order: the source an ancestor of the new parent (-EINVAL), then the target an
	 * ancestor of the old parent (-ENOTEMPTY; -EINVAL for an exchange), then the types */
	if (sdirp && newparent != parent && (r = not_below(fs, newparent, sino)) < 0)
		goto out;
	if (ddirp && newparent != parent && (r = not_below(fs, parent, dino)) < 0) {
		if (r == -EINVAL && !(flags & KVFS_RENAME_EXCHANGE))
			r = -ENOTEMPTY;
		goto out;
	}
	if (have_dst && dino == sino) /* the same inode under both names: nothing to do */
		goto out;
	int64_t now = now_ns();
	bool same_dir = parent == newparent;
	if (flags & KVFS_RENAME_EXCHANGE) {
		dc_note(fs, parent, name, len); /* both names now lead elsewhere */
		dc_note(fs, newparent, newname, nlen);
		/* an embedded inode moves with its dirent (inode_put below writes it there); a
		 * non-directory with one name in T_INODE moves into its dirent */
		if (!sdirp && src.nlink == 1)
			inode_embed(&src, newparent, newname, nlen);
		if (!ddirp && dst.nlink == 1)
			inode_embed(&dst, parent, name, len);
		if ((r = put_dirent(b, parent, name, len, &dst)) < 0 ||
		    (r = put_dirent(b, newparent, newname, nlen, &src)) < 0)
			goto out;
		src.ctime = dst.ctime = now;
		if (sdirp)
			src.parent = newparent;
		if (ddirp)
			dst.parent = parent;
		if (!same_dir && sdirp != ddirp) {
			int delta = sdirp ? 1 : -1; /* a directory moves to newparent */
			ddir.nlink = (uint32_t)((int64_t)ddir.nlink + delta);
			sdir.nlink = (uint32_t)((int64_t)sdir.nlink - delta);
		}
		if ((r = inode_put(fs, b, &src)) < 0 || (r = inode_put(fs, b, &dst)) < 0)
			goto out;
	} else {
		if (have_dst) {
			if (sdirp && !ddirp) {
				r = -ENOTDIR;
				goto out;
			}
			if (!sdirp && ddirp) {
				r = -EISDIR;
				goto out;
			}
			if (ddirp) {
				if ((r = dir_empty(fs, dino)) < 0)
					goto out;
				dst.nlink = 0;
				ddir.nlink--; /* its ".." goes */
			} else {
				dst.nlink--;
			}
			if (dst.embedded) /* its dirent is the source's now */
				inode_unembed(&dst);
			dst.ctime = now;
			r = dst.nlink ? inode_put(fs, b, &dst) : drop_inode(fs, b, &dst);
			if (r < 0)
				goto out;
		}
		dc_note(fs, newparent, newname, nlen); /* the target, replaced when it existed */
		if (!sdirp && src.nlink == 1) /* (again) embedded in its new dirent */
			inode_embed(&src, newparent, newname, nlen);
		if ((r = del_dirent(fs, b, parent, name, len)) < 0 ||
		    (r = put_dirent(b, newparent, newname, nlen, &src)) < 0)
			goto out;
		src.ctime = now;
		if (sdirp && !same_dir) {
			src.parent = newparent;
			sdir.nlink--;
			ddir.nlink++;
		}
		if ((r = inode_put(fs, b, &src)) < 0)
			goto out;
	}
	sdir.mtime = sdir.ctime = now;
	if (same_dir) {
		/* one directory: the counts above were made on two copies; merge them */
		sdir.nlink = ddir.nlink;
		if ((r = inode_put(fs, b, &sdir)) < 0)
			goto out;
	} else {
		ddir.mtime = ddir.ctime = now;
		if ((r = inode_put(fs, b, &sdir)) < 0 || (r = inode_put(fs, b, &ddir)) < 0)
			goto out;
	}
	r = commit_op(fs, b);
out:
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

/* ---- attributes ---- */

int kvfs_setattr(struct kvfs *fs, uint64_t ino, const struct kvfs_stat *sa, unsigned mask,
		 struct kvfs_stat *st)
{
	if (fs->rdonly)
		return -EROFS;
	pthread_mutex_lock(&fs->ns_lock);
	fs->n_deferred = 0;
	struct inode in;
	struct engine_batch *b = engine_batch_new();
	int r = b ? unfinished_check(fs) : -ENOMEM;
	if (r == 0)
		r = inode_get(fs, ino, &in);
	if (r < 0)
		goto out;
	int64_t now = now_ns();
	if (mask & KVFS_SET_SIZE) {
		if (S_ISDIR(in.mode)) {
			r = -EISDIR;
			goto out;
		}
		if (!S_ISREG(in.mode)) {
			r = -EINVAL;
			goto out;
		}
		if (sa->size != in.size && (r = set_size(fs, b, &in, sa->size)) < 0)
			goto out;
		in.mtime = now; /* even at the same size, as truncate(2) and O_TRUNC on Linux */
	}
	if (mask & KVFS_SET_MODE)
		in.mode = (in.mode & S_IFMT) | (sa->mode & 07777);
	if (mask & KVFS_SET_UID)
		in.uid = sa->uid;
	if (mask & KVFS_SET_GID)
		in.gid = sa->gid;
	if (mask & KVFS_SET_ATIME)
		in.atime = sa->atime_ns;
	if (mask & KVFS_SET_MTIME)
		in.mtime = sa->mtime_ns;
	in.ctime = (mask & KVFS_SET_CTIME) ? sa->ctime_ns : now;
	if ((r = inode_put(fs, b, &in)) < 0 || (r = commit_op(fs, b)) < 0)
		goto out;
	if (st && (mask & KVFS_SET_SIZE)) {
		struct inode now_in; /* the steps after the commit lowered the blocks count */
		if (inode_get(fs, ino, &now_in) == 0)
			in.blocks = now_in.blocks;
	}
	if (st)
		to_stat(&in, st);
out:
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

/* ---- file data ---- */

/* The data calls (read, write, seek) take regular files: -EISDIR for a directory (as
 * read(2) of one), -EINVAL for anything else. */
static int file_type_check(const struct inode *in)
{
	if (S_ISDIR(in->mode))
		return -EISDIR;
	return S_ISREG(in->mode) ? 0 : -EINVAL;
}

/* inode_get of a regular file. */
static int file_inode_get(struct kvfs *fs, uint64_t ino, struct inode *in)
{
	int r = inode_get(fs, ino, in);
	return r < 0 ? r : file_type_check(in);
}

/*
 * Reads of several blocks (issue 3).  A run of a file's blocks is read inside one engine_read:
 * one committed state (no commit lands between its blocks), one take of the engine's read
 * lock, and B+tree lookups through a finger (store_get_near: one descent per leaf, not per
 * block).  Commits wait while a read holds the lock, so a run is bounded: kvfs_get reads a
 * value of up to GET_STATE_MAX bytes (what it copies: min(cap, size)) in one state with its
 * inode, the whole of any atomic put (PUT_ATOMIC_MAX); larger ones, and kvfs_read, go in
 * chunks of READ_CHUNK bytes, each one state (kvfs_read's first with the inode).
 * A commit waits for at most the gets and reads under way (the lock prefers writers).
 * Measured (2 cores, RelWithDebInfo): a 16 MiB get holds it 2-3 ms with the data in the page
 * cache, 10-12 ms with it on disk (1 MiB: 0.03-0.06 ms, 0.25 ms); 3-byte puts made while two
 * threads looped 16 MiB gets took 0.4 ms at the median, 1.2 ms at p99 (0.015 / 0.85 ms when
 * every block was a read of its own), 0.05 / 0.13 ms beside 1 MiB gets.  Chosen: a put's
 * atomicity reaches its readers (a get of any value kvfs_put wrote atomically is one put's
 * value), at that price for writers beside very large gets only.
 */
#define GET_STATE_MAX (16u << 20)
#define READ_CHUNK (1u << 20)

/* Copy [off, off + len) of a file's bytes, `in` in hand, clipped to its size, into buf, holes
 * as zeros, inside the engine_read rd (NULL: each block on its own).  Bytes copied or -errno. */
static ssize_t read_span(struct kvfs *fs, struct engine_read *rd, const struct inode *in,
			 void *buf, size_t len, uint64_t off)
{
	int r = file_type_check(in);
	if (r < 0)
		return r;
	if (off >= in->size || len == 0)
		return 0;
	if (len > in->size - off)
		len = (size_t)(in->size - off);
	if (in->flags & INODE_INLINE) {
		memcpy(buf, in->data + off, len);
		return (ssize_t)len;
	}
	uint8_t *out = buf;
	size_t done = 0;
	uint8_t block[BLOCK];
	while (done < len) {
		uint64_t pos = off + done, blk = pos / BLOCK;
		size_t in_blk = (size_t)(pos % BLOCK), n = BLOCK - in_blk;
		if (n > len - done)
			n = len - done;
		bool exists;
		/* a whole aligned block goes straight to the caller's buffer */
		uint8_t *dst = (in_blk == 0 && n == BLOCK) ? out + done : block;
		if ((r = get_block(fs, rd, in->ino, blk, dst, &exists)) < 0)
			return r;
		if (dst == block)
			memcpy(out + done, block + in_blk, n);
		done += n;
	}
	return (ssize_t)len;
}

/* One run of a read (engine_read's callback): the inode first when `want_inode` (by ino, or
 * by (parent, name) when nr is set), then `len` bytes from `off` (at most `max` of them, the
 * rest left to read_rest; cut at a chunk's end). */
struct span_read {
	struct kvfs *fs;
	struct name_read *nr; /* kvfs_get: the name to resolve with the inode */
	uint64_t ino;         /* kvfs_read: the inode to read */
	bool want_inode;
	struct inode *in;
	uint8_t *buf;
	size_t len, max;
	uint64_t off;
	ssize_t n;            /* bytes copied */
};

static int span_read_fn(struct engine_read *rd, void *ctx)
{
	struct span_read *sr = ctx;
	int r = 0;
	if (sr->want_inode)
		r = sr->nr ? name_inode_read(rd, sr->nr) : inode_read(sr->fs, rd, sr->ino, sr->in);
	if (r < 0)
		return r;
	if (sr->want_inode && (r = file_type_check(sr->in)) < 0)
		return r;
	size_t len = sr->len;
	if (sr->off < sr->in->size && len > sr->in->size - sr->off)
		len = (size_t)(sr->in->size - sr->off);
	if (len > sr->max)
		len = sr->max;
	sr->n = read_span(sr->fs, rd, sr->in, sr->buf, len, sr->off);
	return sr->n < 0 ? (int)sr->n : 0;
}

/* Read [off, off + len) of `in` after `done` bytes already read, in chunks of READ_CHUNK
 * bytes, each in one engine_read.  Bytes read in all (done included, up to the size) or
 * -errno. */
static ssize_t read_rest(struct kvfs *fs, struct inode *in, uint8_t *buf, size_t len,
			 uint64_t off, size_t done)
{
	if (off >= in->size)
		return 0;
	if (len > in->size - off)
		len = (size_t)(in->size - off);
	while (done < len) {
		uint64_t pos = off + done;
		struct span_read sr = { .fs = fs, .in = in, .buf = buf + done, .len = len - done,
					.max = READ_CHUNK - (size_t)(pos % READ_CHUNK), .off = pos };
		int r = engine_read(fs->e, span_read_fn, &sr);
		if (r < 0)
			return r;
		if (sr.n == 0)
			break;
		done += (size_t)sr.n;
	}
	return (ssize_t)done;
}

ssize_t kvfs_read(struct kvfs *fs, uint64_t ino, void *buf, size_t len, uint64_t off)
{
	struct inode in;
	if (tl_batch == fs) { /* the batch's own inodes (fs->pending): blocks one by one */
		int r = inode_get(fs, ino, &in);
		return r < 0 ? r : read_span(fs, NULL, &in, buf, len, off);
	}
	struct span_read sr = { .fs = fs, .ino = ino, .want_inode = true, .in = &in, .buf = buf,
				.len = len, .max = READ_CHUNK - (size_t)(off % READ_CHUNK),
				.off = off };
	int r = engine_read(fs->e, span_read_fn, &sr);
	if (r < 0)
		return r;
	return read_rest(fs, &in, buf, len, off, (size_t)sr.n);
}

/* Largest write made as one batch (atomic); larger writes are split. */
#define WRITE_BATCH_MAX (4u << 20)

static ssize_t write_locked(struct kvfs *fs, struct engine_batch *b, uint64_t ino,
			    const uint8_t *buf, size_t len, uint64_t off)
{
	struct inode in;
	int r = file_inode_get(fs, ino, &in);
	if (r < 0)
		return r;
	if (off > KVFS_MAX_FILE || len > KVFS_MAX_FILE - off)
		return -EFBIG;
	uint64_t end = off + len;
	int64_t now = now_ns();
	if ((in.flags & INODE_INLINE) && end <= INLINE_MAX) {
		if (off > in.size)
			memset(in.data + in.size, 0, off - in.size);
		memcpy(in.data + off, buf, len);
		if (end > in.size)
			in.size = end;
	} else {
		/* An inline file moving to blocks: block 0 is in this batch, not yet readable
		 * through the engine, so keep it at hand. */
		uint8_t block0[BLOCK];
		bool have_b0 = false, b0_exists = false;
		if (in.flags & INODE_INLINE) {
			memset(block0, 0, BLOCK);
			memcpy(block0, in.data, in.size);
			have_b0 = true;
			b0_exists = in.size > 0;
			if ((r = uninline(fs, b, &in)) < 0)
				return r;
		}
		uint8_t block[BLOCK], k[16];
		size_t done = 0;
		while (done < len) {
			uint64_t pos = off + done, blk = pos / BLOCK;
			size_t in_blk = (size_t)(pos % BLOCK), n = BLOCK - in_blk;
			if (n > len - done)
				n = len - done;
			bool exists = false;
			block_key(k, ino, blk);
			if (blk == 0 && have_b0) {
				memcpy(block, block0, BLOCK);
				exists = b0_exists;
			} else if (n < BLOCK) {
				if ((r = get_block(fs, NULL, ino, blk, block, &exists)) < 0)
					return r;
			} else {
				size_t vl;
				r = engine_get(fs->e, T_DATA, k, 16, NULL, 0, &vl);
				if (r < 0 && r != -ENOENT)
					return r;
				exists = r == 0;
			}
			if (n == BLOCK && !(blk == 0 && have_b0)) {
				/* a whole block of the caller's, which outlives the commit
				 * below: logged from where it lies (engine_batch_put_ref) */
				r = engine_batch_put_ref(b, T_DATA, k, 16, buf + done, BLOCK);
			} else {
				memcpy(block + in_blk, buf + done, n);
				r = engine_batch_put(b, T_DATA, k, 16, block, BLOCK);
			}
			if (r < 0)
				return r;
			if (!exists)
				in.blocks++;
			done += n;
		}
		if (end > in.size)
			in.size = end;
	}
	in.mtime = in.ctime = now;
	if ((r = inode_put(fs, b, &in)) < 0 || (r = commit(fs, b)) < 0)
		return r;
	return (ssize_t)len;
}

ssize_t kvfs_write(struct kvfs *fs, uint64_t ino, const void *buf, size_t len, uint64_t off)
{
	if (fs->rdonly)
		return -EROFS;
	if (len == 0) { /* changes nothing, not even the size (as write(2)) */
		struct inode in;
		int r0 = inode_get(fs, ino, &in);
		if (r0 < 0)
			return r0;
		return S_ISDIR(in.mode) ? -EISDIR : S_ISREG(in.mode) ? 0 : -EINVAL;
	}
	struct engine_batch *b = engine_batch_new();
	if (!b)
		return -ENOMEM;
	const uint8_t *p = buf;
	size_t done = 0;
	pthread_mutex_lock(&fs->ns_lock);
	ssize_t r = unfinished_check(fs);
	while (r == 0 && done < len) {
		size_t n = len - done > WRITE_BATCH_MAX ? WRITE_BATCH_MAX : len - done;
		engine_batch_clear(b);
		r = write_locked(fs, b, ino, p + done, n, off + done);
		if (r < 0)
			break;
		done += n;
		r = 0;
	}
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	if (r < 0 && done == 0)
		return r;
	return (ssize_t)done;
}

int kvfs_fallocate(struct kvfs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	if (fs->rdonly)
		return -EROFS;
	if (mode & ~(KVFS_FALLOC_KEEP_SIZE | KVFS_FALLOC_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if ((mode & KVFS_FALLOC_PUNCH_HOLE) && !(mode & KVFS_FALLOC_KEEP_SIZE))
		return -EOPNOTSUPP; /* as Linux's vfs_fallocate */
	if (len == 0)
		return -EINVAL;
	if (off > KVFS_MAX_FILE || len > KVFS_MAX_FILE - off)
		return -EFBIG;
	pthread_mutex_lock(&fs->ns_lock);
	fs->n_deferred = 0;
	struct inode in;
	struct engine_batch *b = engine_batch_new();
	int r = b ? unfinished_check(fs) : -ENOMEM;
	if (r == 0)
		r = inode_get(fs, ino, &in);
	if (r < 0)
		goto out;
	if (S_ISDIR(in.mode)) {
		r = -EISDIR;
		goto out;
	}
	if (!S_ISREG(in.mode)) {
		r = -ENODEV;
		goto out;
	}
	uint64_t end = off + len;
	int64_t now = now_ns();
	if (mode & KVFS_FALLOC_PUNCH_HOLE) {
		if (end > in.size)
			end = in.size;
		if (off < end) {
			if (in.flags & INODE_INLINE) {
				memset(in.data + off, 0, end - off);
			} else {
				uint64_t first = (off + BLOCK - 1) / BLOCK, last = end / BLOCK;
				uint64_t removed = 0;
				bool more = false;
				/* at most a step's deletes here; the rest of [first, last) in
				 * steps under a range orphan entry (top of file) */
				if (first < last &&
				    (r = del_blocks(fs, b, ino, first, last, dels_left(fs), &removed,
						    &more, NULL)) < 0)
					goto out;
				in.blocks -= removed < in.blocks ? removed : in.blocks;
				if (more && ((r = orphan_range_put(b, ino, first, last)) < 0 ||
					     (r = defer_note(fs, ino)) < 0))
					goto out;
				if (off / BLOCK == (end - 1) / BLOCK && (off % BLOCK || end % BLOCK)) {
					r = zero_in_block(fs, b, &in, off, end);
				} else {
					if (off % BLOCK)
						r = zero_in_block(fs, b, &in, off,
								  (off / BLOCK + 1) * BLOCK);
					if (r == 0 && end % BLOCK)
						r = zero_in_block(fs, b, &in, end / BLOCK * BLOCK,
								  end);
				}
				if (r < 0)
					goto out;
			}
			in.mtime = now;
		}
	} else if (!(mode & KVFS_FALLOC_KEEP_SIZE) && end > in.size) {
		/* kvfs allocates lazily: reserving space is extending the size */
		if ((r = set_size(fs, b, &in, end)) < 0)
			goto out;
	}
	in.ctime = now;
	if ((r = inode_put(fs, b, &in)) < 0 || (r = commit(fs, b)) < 0)
		goto out;
	if (fs->n_deferred) {
		/* the punch's steps, before returning: until they are done, the range's
		 * blocks still read as they were, so a failure is returned (the entry stays:
		 * retried before the next change that could read them back into a file, or
		 * at the next open) */
		r = orphan_finish(fs, ino);
		if (r < 0) {
			fs->unfinished = true;
			if (fs->log) {
				char line[160];
				snprintf(line, sizeof(line), "punching a hole in inode %llu: %s "
					 "(retried before the next write, or at the next open)",
					 (unsigned long long)ino, strerror(-r));
				fs->log(fs->log_ctx, line);
			}
		}
	}
out:
	fs->n_deferred = 0;
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

/* ---- open references and orphans ---- */

int kvfs_open_ino(struct kvfs *fs, uint64_t ino)
{
	struct inode in;
	pthread_mutex_lock(&fs->ns_lock);
	int r = inode_get(fs, ino, &in);
	if (r == 0) {
		struct open_ref *o = open_ref_find(fs, ino);
		if (o) {
			o->count++;
		} else if ((o = calloc(1, sizeof(*o)))) {
			o->ino = ino;
			o->count = 1;
			o->next = fs->open_refs;
			fs->open_refs = o;
		} else {
			r = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&fs->ns_lock);
	return r;
}

void kvfs_release_ino(struct kvfs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->ns_lock);
	struct open_ref **pp = &fs->open_refs;
	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	struct open_ref *o = *pp;
	if (o && --o->count == 0) {
		*pp = o->next;
		free(o);
		struct inode in;
		if (!fs->rdonly && inode_get(fs, ino, &in) == 0 && in.nlink == 0) {
			int r = orphan_finish(fs, ino); /* in steps when big */
			if (r < 0 && fs->log) {
				char line[128];
				snprintf(line, sizeof(line), "purging inode %llu: %s (retried at the "
					 "next open)", (unsigned long long)ino, strerror(-r));
				fs->log(fs->log_ctx, line);
			}
		}
	}
	pthread_mutex_unlock(&fs->ns_lock);
}

/* ---- directories ---- */

/* A directory entry as readdir_each hands it out: v[0..vlen) its whole value with an
 * embedded inode's record (want_value), else the first DIRENT_VALUE bytes. */
struct dirent_seen {
	const char *name;
	size_t nlen;
	uint64_t ino;
	unsigned type;
	const uint8_t *v;
	size_t vlen;
};

/* kvfs_readdir's walk, with the values when want_value (scans: the embedded inodes). */
static int readdir_each(struct kvfs *fs, uint64_t ino, const char *after, bool want_value,
			int (*fn)(void *ctx, const struct dirent_seen *de), void *ctx)
{
	struct inode *dir = malloc(sizeof(*dir));
	if (!dir)
		return -ENOMEM;
	int r = dir_inode(fs, ino, dir);
	free(dir);
	if (r < 0)
		return r;
	uint8_t lo[8 + KVFS_NAME_MAX + 1], hi[8], k[8 + KVFS_NAME_MAX];
	uint8_t *v = malloc(want_value ? NS_VALUE_MAX : DIRENT_VALUE);
	if (!v)
		return -ENOMEM;
	size_t lolen = 8;
	ino_key(lo, ino);
	if (after && *after) {
		size_t alen = strnlen(after, KVFS_NAME_MAX + 1);
		if (alen > KVFS_NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(lo + 8, after, alen);
		lo[8 + alen] = 0; /* the smallest key after `after` */
		lolen = 8 + alen + 1;
	}
	ino_key(hi, ino + 1);
	struct engine_iter *it;
	if ((r = engine_iter_new(fs->e, T_DIRENT, lo, lolen, hi, 8, &it)) < 0) {
		free(v);
		return r;
	}
	size_t klen, vlen, cap = want_value ? NS_VALUE_MAX : DIRENT_VALUE;
	char name[KVFS_NAME_MAX + 1];
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, v, cap, &vlen)) == 0) {
		if (klen <= 8 || klen > sizeof(k) || vlen < DIRENT_VALUE ||
		    (want_value && vlen > cap)) {
			r = -EUCLEAN;
			break;
		}
		memcpy(name, k + 8, klen - 8);
		name[klen - 8] = 0;
		struct dirent_seen de = { name, klen - 8, ld64(v), v[8], v,
					  want_value ? vlen : DIRENT_VALUE };
		if (fn(ctx, &de))
			break;
	}
	engine_iter_free(it);
	free(v);
	return r == -ENOENT || r > 0 ? 0 : r;
}

struct readdir_ctx {
	int (*fn)(void *ctx, const char *name, uint64_t ino, unsigned type);
	void *ctx;
};

static int readdir_one(void *ctx, const struct dirent_seen *de)
{
	struct readdir_ctx *rc = ctx;
	return rc->fn(rc->ctx, de->name, de->ino, de->type);
}

int kvfs_readdir(struct kvfs *fs, uint64_t ino, const char *after,
		 int (*fn)(void *ctx, const char *name, uint64_t ino, unsigned type), void *ctx)
{
	struct readdir_ctx rc = { fn, ctx };
	return readdir_each(fs, ino, after, false, readdir_one, &rc);
}

/* The attributes of a directory entry seen by a scan: from its embedded inode (no read), or
 * by its inode number.  `in` is scratch. */
static int dirent_stat(struct kvfs *fs, uint64_t dir, const struct dirent_seen *de,
		       struct inode *in, struct kvfs_stat *st)
{
	if (de->vlen > DIRENT_VALUE) {
		int r = inode_from_dirent(in, dir, de->name, de->nlen, de->v, de->vlen);
		if (r == 0)
			to_stat(in, st);
		return r;
	}
	return kvfs_getattr(fs, de->ino, st);
}

/* ---- xattrs ---- */

static int xattr_key(uint8_t *k, uint64_t ino, const char *name, size_t *klen)
{
	size_t n = strnlen(name, KVFS_NAME_MAX + 1);
	if (n == 0)
		return -EINVAL;
	if (n > KVFS_NAME_MAX)
		return -ERANGE;
	/* the namespaces a native file system knows; POSIX ACLs are not kept (tools such as cp
	 * then fall back to chmod), and a name without a namespace is refused, as by ext4 */
	if (strncmp(name, "system.posix_acl_", 17) == 0)
		return -EOPNOTSUPP;
	if (strncmp(name, "user.", 5) && strncmp(name, "trusted.", 8) &&
	    strncmp(name, "security.", 9) && strncmp(name, "system.", 7))
		return -EOPNOTSUPP;
	ino_key(k, ino);
	memcpy(k + 8, name, n);
	*klen = 8 + n;
	return 0;
}

int kvfs_setxattr(struct kvfs *fs, uint64_t ino, const char *name, const void *val, size_t len,
		  int flags)
{
	uint8_t k[8 + KVFS_NAME_MAX];
	size_t klen, vl;
	int r = xattr_key(k, ino, name, &klen);
	if (r < 0)
		return r;
	if (len > XATTR_VALUE_MAX)
		return -E2BIG;
	if (fs->rdonly)
		return -EROFS;
	pthread_mutex_lock(&fs->ns_lock);
	struct inode in;
	struct engine_batch *b = engine_batch_new();
	r = b ? inode_get(fs, ino, &in) : -ENOMEM;
	if (r < 0)
		goto out;
	r = engine_get(fs->e, T_XATTR, k, klen, NULL, 0, &vl);
	if (r < 0 && r != -ENOENT)
		goto out;
	if (r == 0 && (flags & 1)) { /* XATTR_CREATE */
		r = -EEXIST;
		goto out;
	}
	if (r == -ENOENT && (flags & 2)) { /* XATTR_REPLACE */
		r = -ENODATA;
		goto out;
	}
	in.ctime = now_ns();
	if ((r = engine_batch_put(b, T_XATTR, k, klen, val, len)) < 0 ||
	    (r = inode_put(fs, b, &in)) < 0)
		goto out;
	r = commit(fs, b);
out:
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

ssize_t kvfs_getxattr(struct kvfs *fs, uint64_t ino, const char *name, void *buf, size_t cap)
{
	uint8_t k[8 + KVFS_NAME_MAX];
	size_t klen, vlen;
	struct inode in;
	int r = xattr_key(k, ino, name, &klen);
	if (r < 0)
		return r;
	if ((r = inode_get(fs, ino, &in)) < 0)
		return r;
	r = engine_get(fs->e, T_XATTR, k, klen, buf, cap, &vlen);
	if (r == -ENOENT)
		return -ENODATA;
	if (r < 0)
		return r;
	if (cap && vlen > cap)
		return -ERANGE;
	return (ssize_t)vlen;
}

ssize_t kvfs_listxattr(struct kvfs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct inode in;
	int r = inode_get(fs, ino, &in);
	if (r < 0)
		return r;
	uint8_t lo[8], hi[8], k[8 + KVFS_NAME_MAX];
	ino_key(lo, ino);
	ino_key(hi, ino + 1);
	struct engine_iter *it;
	if ((r = engine_iter_new(fs->e, T_XATTR, lo, 8, hi, 8, &it)) < 0)
		return r;
	size_t klen, vlen, total = 0;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen)) == 0) {
		if (klen <= 8 || klen > sizeof(k)) {
			r = -EUCLEAN;
			break;
		}
		size_t n = klen - 8;
		if (cap) {
			if (total + n + 1 > cap) {
				r = -ERANGE;
				break;
			}
			memcpy(buf + total, k + 8, n);
			buf[total + n] = 0;
		}
		total += n + 1;
	}
	engine_iter_free(it);
	if (r != -ENOENT)
		return r;
	return (ssize_t)total;
}

int kvfs_removexattr(struct kvfs *fs, uint64_t ino, const char *name)
{
	uint8_t k[8 + KVFS_NAME_MAX];
	size_t klen, vl;
	int r = xattr_key(k, ino, name, &klen);
	if (r < 0)
		return r;
	if (fs->rdonly)
		return -EROFS;
	pthread_mutex_lock(&fs->ns_lock);
	struct inode in;
	struct engine_batch *b = engine_batch_new();
	r = b ? inode_get(fs, ino, &in) : -ENOMEM;
	if (r == 0) {
		r = engine_get(fs->e, T_XATTR, k, klen, NULL, 0, &vl);
		if (r == -ENOENT)
			r = -ENODATA;
	}
	if (r == 0) {
		in.ctime = now_ns();
		r = engine_batch_del(b, T_XATTR, k, klen);
		if (r == 0)
			r = inode_put(fs, b, &in);
		if (r == 0)
			r = commit(fs, b);
	}
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

/* ---- keys as paths ---- */

/* Split key into components; *n receives their count.  Each is checked like a name.  With comp
 * and clen NULL, only checks and counts (kvfs_batch_put: no 4 KiB struct keypath to fill). */
static int key_split(const char *key, const char *comp[], size_t clen[], int max, int *n)
{
	*n = 0;
	if (!key || !*key)
		return -EINVAL;
	const char *p = key;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 0)
			return -EINVAL; /* "/a", "a//b", "a/" */
		if (len > KVFS_NAME_MAX)
			return -ENAMETOOLONG;
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (*n == max)
			return -ENAMETOOLONG;
		if (comp) {
			comp[*n] = p;
			clen[*n] = len;
		}
		(*n)++;
		if (!slash)
			break;
		p = slash + 1;
		if (!*p)
			return -EINVAL;
	}
	return 0;
}

#define KEY_DEPTH_MAX 256 /* components of a key: deeper keys are -ENAMETOOLONG */

/* Resolve the first `upto` components of a key to a directory inode. */
static int walk(struct kvfs *fs, const char *comp[], const size_t clen[], int upto,
		uint64_t *dir)
{
	uint64_t cur = KVFS_ROOT_INO;
	for (int i = 0; i < upto; i++) {
		uint64_t ino;
		unsigned type;
		if (dcache_get(fs->dc, cur, comp[i], clen[i], &ino)) {
			cur = ino;
			continue;
		}
		uint64_t seq = dcache_seq(fs->dc);
		int r = dirent_get(fs, cur, comp[i], clen[i], &ino, &type);
		if (r < 0)
			return r;
		if (type != DT_DIR)
			return -ENOTDIR;
		dcache_add(fs->dc, cur, comp[i], clen[i], ino, seq);
		cur = ino;
	}
	*dir = cur;
	return 0;
}

struct keypath {
	const char *comp[KEY_DEPTH_MAX];
	size_t clen[KEY_DEPTH_MAX];
	int n;
	char last[KVFS_NAME_MAX + 1];
};

static int keypath_parse(const char *key, struct keypath *kp)
{
	int r = key_split(key, kp->comp, kp->clen, KEY_DEPTH_MAX, &kp->n);
	if (r < 0)
		return r;
	memcpy(kp->last, kp->comp[kp->n - 1], kp->clen[kp->n - 1]);
	kp->last[kp->clen[kp->n - 1]] = 0;
	return 0;
}

/* Resolve a key: its parent directory into *dir, its last component into last (may be NULL),
 * and with `in`, the key's own inode.  -ENOENT, -ENOTDIR, -EINVAL, -ENAMETOOLONG. */
static int key_resolve(struct kvfs *fs, const char *key, uint64_t *dir, char *last,
		       struct inode *in)
{
	struct keypath kp;
	int r = keypath_parse(key, &kp);
	if (r == 0)
		r = walk(fs, kp.comp, kp.clen, kp.n - 1, dir);
	if (r == 0 && in)
		r = name_inode(fs, *dir, kp.last, kp.clen[kp.n - 1], in);
	if (r == 0 && last)
		memcpy(last, kp.last, strlen(kp.last) + 1);
	return r;
}

ssize_t kvfs_get(struct kvfs *fs, const char *key, void *buf, size_t cap)
{
	uint64_t dir;
	struct inode in; /* on the stack (~4 KiB, as put_file_b's): a malloc cost ~11 % of a get */
	struct keypath kp;
	int r = keypath_parse(key, &kp);
	if (r == 0)
		r = walk(fs, kp.comp, kp.clen, kp.n - 1, &dir);
	if (r < 0)
		return r;
	ssize_t n;
	if (tl_batch == fs) { /* the batch's own inodes (fs->pending): blocks one by one */
		if ((r = name_inode(fs, dir, kp.last, kp.clen[kp.n - 1], &in)) < 0)
			return r;
		n = read_span(fs, NULL, &in, buf, cap, 0);
	} else {
		/* the name, the inode and (up to GET_STATE_MAX) the blocks: one committed state */
		struct name_read nr = { fs, dir, kp.last, kp.clen[kp.n - 1], &in };
		struct span_read sr = { .fs = fs, .nr = &nr, .want_inode = true, .in = &in,
					.buf = buf, .len = cap, .max = GET_STATE_MAX };
		if ((r = engine_read(fs->e, span_read_fn, &sr)) < 0)
			return r;
		n = read_rest(fs, &in, buf, cap, 0, (size_t)sr.n);
	}
	return n < 0 ? n : (ssize_t)in.size;
}

int kvfs_exists(struct kvfs *fs, const char *key)
{
	uint64_t dir;
	struct inode *in = malloc(sizeof(*in));
	if (!in)
		return -ENOMEM;
	int r = key_resolve(fs, key, &dir, NULL, in);
	free(in);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

/* Puts up to this size are one batch (atomic: a reader sees the old or the new contents);
 * larger ones are written in several and are not atomic. */
#define PUT_ATOMIC_MAX (16u << 20)
/* The bytes of the batch's buffer that `len` bytes of data blocks take (per block an op
 * header and its 16-byte key; the whole blocks' bytes go to the log from the value itself,
 * engine_batch_put_ref; a partial last block is copied), and 1 KiB for the file's dirent,
 * inode and directory. */
#define PUT_RESERVE(len) (((len) + BLOCK - 1) / BLOCK * (8 + 16) + BLOCK + 1024)

/*
 * Add to `b` the creation or replacement of the regular file `name` (nlen bytes) in `dir` with
 * `len` bytes; ns_lock held.  With `split`, a put larger than PUT_ATOMIC_MAX commits `b` in
 * pieces; without, it is -EFBIG.  The caller commits `b` (commit_op: a replaced file's old
 * blocks past the new size may be left to steps, top of file).
 *
 * Replacing a file keeps its inode (its other names and open handles see the new bytes) and,
 * up to PUT_ATOMIC_MAX, stays one change: the new blocks overwrite the old ones below the new
 * size, and the old file is truncated to the new size in the same batch (set_size), the
 * blocks past it going in steps when there are many.  A larger put first empties the file
 * (in steps when big) and is then written in pieces, as kvfs.h says.
 */
static int put_file_b(struct kvfs *fs, struct engine_batch *b, uint64_t dir, const char *name,
		      size_t nlen, const void *val, size_t len, uint32_t uid, uint32_t gid,
		      bool split)
{
	struct inode d, in;
	uint64_t ino;
	int64_t now = now_ns();
	if (!split && len > PUT_ATOMIC_MAX)
		return -EFBIG;
	int r = dir_inode(fs, dir, &d);
	if (r < 0)
		return r;
	r = name_inode(fs, dir, name, nlen, &in);
	if (r == 0) {
		ino = in.ino;
		if (S_ISDIR(in.mode)) {
			r = -EISDIR;
			return r;
		}
		if (S_ISREG(in.mode) && in.nlink == 1 && !in.embedded)
			inode_embed(&in, dir, name, nlen); /* one name (again, or a version 3
							    * store's file): into its dirent */
		if (!S_ISREG(in.mode)) { /* a symlink or special file: replaced, as rename would */
			inode_unembed(&in); /* the dirent names the new file */
			in.nlink--;
			in.ctime = now;
			if ((r = in.nlink ? inode_put(fs, b, &in) : drop_inode(fs, b, &in)) < 0)
				return r;
			r = -ENOENT;
		} else if (in.flags & INODE_INLINE) {
			in.size = 0; /* no blocks: its bytes are simply replaced below */
		} else if (len > PUT_ATOMIC_MAX) {
			/* written in pieces anyway: empty the file first (in steps when big) */
			if ((r = set_size(fs, b, &in, 0)) < 0)
				return r;
			if (fs->n_deferred) {
				if ((r = inode_put(fs, b, &in)) < 0 || (r = commit_op(fs, b)) < 0)
					return r;
				engine_batch_clear(b);
				if ((r = inode_get(fs, ino, &in)) < 0)
					return r;
				if (!(in.flags & INODE_INLINE)) /* the steps failed (logged), or
								   left blocks they did not see */
					return fs->unfinished ? -EIO : -EUCLEAN;
			}
		} else {
			/* one change: truncate to the new size (0 when the result fits inline and
			 * the old blocks all go in this batch), the new blocks overwrite the rest
			 * (the one holding the new end too: not zeroed first) */
			bool inl = len <= INLINE_MAX && in.blocks <= dels_left(fs);
			if ((r = set_size_z(fs, b, &in, inl ? 0 : len, false)) < 0)
				return r;
			if (inl && !(in.flags & INODE_INLINE))
				return -EUCLEAN; /* more blocks than the blocks field says */
		}
	}
	if (r == -ENOENT) {
		/* the header only: the data buffer (4 KiB, 7 % of a batched put to zero) is
		 * written below as far as it is used */
		memset(&in, 0, offsetof(struct inode, data));
		if ((r = alloc_ino(fs, b, &in.ino)) < 0)
			return r;
		in.mode = S_IFREG | 0644;
		in.nlink = 1;
		in.uid = uid;
		in.gid = (d.mode & S_ISGID) ? d.gid : gid;
		in.gen = 1;
		in.atime = now;
		in.flags = INODE_INLINE;
		inode_embed(&in, dir, name, nlen);
		if ((r = put_dirent(b, dir, name, nlen, &in)) < 0 ||
		    (r = touch_dir(fs, b, &d, now, 0)) < 0)
			return r;
	} else if (r < 0) {
		return r;
	}
	in.mtime = in.ctime = now;
	const uint8_t *p = val;
	if (len <= INLINE_MAX && (in.flags & INODE_INLINE)) {
		if (len) /* p is NULL for an empty value (a batch stores no bytes) */
			memcpy(in.data, p, len);
		in.size = len;
		return inode_put(fs, b, &in);
	}
	uint64_t nblk = (len + BLOCK - 1) / BLOCK;
	if (in.flags & INODE_INLINE) {
		in.flags &= ~INODE_INLINE; /* an empty inline file: no block to replace */
		in.blocks = 0;
	} else {
		/* truncated to len above: the blocks kept below nblk are overwritten below, the
		 * ones past it (deleted later, in steps) stay counted */
		uint64_t have;
		if ((r = count_blocks(fs, in.ino, 0, nblk, &have)) < 0)
			return r;
		in.blocks -= have < in.blocks ? have : in.blocks;
	}
	in.size = len;
	/* room for the blocks' ops at once (a hint), not a buffer grown by doubling (a
	 * kvfs_batch reserved its whole record already) */
	size_t piece = len < PUT_ATOMIC_MAX ? len : PUT_ATOMIC_MAX;
	if (!fs->batching)
		(void)engine_batch_reserve(b, PUT_RESERVE(piece));
	uint8_t block[BLOCK];
	for (size_t off = 0; off < len; off += BLOCK) {
		size_t n = len - off < BLOCK ? len - off : BLOCK;
		const uint8_t *src = p + off; /* a whole block goes from the value into the batch */
		if (n < BLOCK) {
			memcpy(block, p + off, n);
			memset(block + n, 0, BLOCK - n);
			src = block;
		}
		/* a whole block by reference (the value outlives the commit: the caller's, or
		 * in the kvfs_batch's chunks), the tail copied from the stack */
		if ((r = data_put(fs, b, in.ino, off / BLOCK, src, src != block)) < 0)
			return r;
		in.blocks++;
		if (off + n < len && (off + n) % PUT_ATOMIC_MAX == 0) {
			in.size = off + n; /* a piece: the file grows with each */
			if ((r = inode_put(fs, b, &in)) < 0 || (r = commit(fs, b)) < 0)
				return r;
			engine_batch_clear(b);
			piece = len - off - n < PUT_ATOMIC_MAX ? len - off - n : PUT_ATOMIC_MAX;
			(void)engine_batch_reserve(b, PUT_RESERVE(piece));
		}
	}
	in.size = len;
	return inode_put(fs, b, &in);
}

/* Create or replace the regular file `name` in `dir` with `len` bytes. */
static int put_file(struct kvfs *fs, uint64_t dir, const char *name, const void *val,
		    size_t len, uint32_t uid, uint32_t gid)
{
	size_t nlen;
	int r = name_check(name, &nlen);
	if (r < 0)
		return r;
	struct engine_batch *b = engine_batch_new();
	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&fs->ns_lock);
	fs->n_deferred = 0;
	r = unfinished_check(fs);
	if (r == 0)
		r = put_file_b(fs, b, dir, name, nlen, val, len, uid, gid, true);
	if (r == 0)
		r = commit_op(fs, b);
	pthread_mutex_unlock(&fs->ns_lock);
	engine_batch_free(b);
	return r;
}

/* Resolve a key's parent directory, creating missing ones (mode 0755, the caller's ids). */
static int make_parents(struct kvfs *fs, const struct keypath *kp, uint64_t *out)
{
	uint64_t dir = KVFS_ROOT_INO;
	int r = 0;
	for (int i = 0; r == 0 && i < kp->n - 1; i++) {
		char name[KVFS_NAME_MAX + 1];
		memcpy(name, kp->comp[i], kp->clen[i]);
		name[kp->clen[i]] = 0;
		struct kvfs_stat st;
		r = kvfs_lookup(fs, dir, name, &st);
		if (r == -ENOENT) {
			r = kvfs_mkdir(fs, dir, name, 0755, getuid(), getgid(), &st);
			if (r == -EEXIST) /* made meanwhile by another thread */
				r = kvfs_lookup(fs, dir, name, &st);
		}
		if (r == 0 && !S_ISDIR(st.mode))
			r = -ENOTDIR;
		dir = st.ino;
	}
	*out = dir;
	return r;
}

int kvfs_put(struct kvfs *fs, const char *key, const void *val, size_t len)
{
	if (fs->rdonly)
		return -EROFS;
	if (len > KVFS_MAX_FILE)
		return -EFBIG;
	struct keypath *kp = malloc(sizeof(*kp));
	if (!kp)
		return -ENOMEM;
	uint64_t dir;
	int r = keypath_parse(key, kp);
	if (r == 0)
		r = make_parents(fs, kp, &dir);
	if (r == 0)
		r = put_file(fs, dir, kp->last, val, len, getuid(), getgid());
	free(kp);
	return r;
}

/* ---- batches ---- */

/* One operation of a kvfs_batch (32 bytes: ops_sort moves them whole). */
struct batch_op {
	char *key;   /* NUL-terminated, then the value's len bytes (batch_alloc) */
	uint64_t k8; /* the key's first 8 bytes as a big-endian word, zero-padded (op_before) */
	uint32_t len; /* value bytes: <= PUT_ATOMIC_MAX (batch_add) */
	uint32_t seq; /* order of addition: fewer than 2^32 operations fit KVFS_BATCH_RECORD_MAX */
	bool del;
};
_Static_assert(PUT_ATOMIC_MAX <= UINT32_MAX, "a batch's value length fits batch_op.len");

/* The value of a put: after the key's NUL. */
static const void *op_val(const struct batch_op *op, size_t klen)
{
	return op->key + klen + 1;
}

/* Whether two operations are on the same key. */
static bool op_same_key(const struct batch_op *x, const struct batch_op *y)
{
	return x->k8 == y->k8 && strcmp(x->key, y->key) == 0;
}

/* A parent directory of the batch's keys (its key prefix, plen bytes, not NUL-terminated),
 * charged once (batch_add); h == 0: a free slot. */
struct batch_dir {
	uint64_t h;
	char *prefix;
	size_t plen;
};

/*
 * The size of a batch's log record (man/kvfs.5 "Batch records": per operation an 8-byte header,
 * the key, the value), estimated as it is built so that kvfs_batch_put, not kvfs_batch_commit,
 * says -EFBIG (kvfs.h KVFS_BATCH_RECORD_MAX).  Per operation, what kvfs_batch_commit writes
 * for it (put_file_b, remove_name_b, pending_flush), NAME the key's last component:
 *   put     dirent (8 + 8 + NAME + 9) + inode (8 + 8 + HDR, + the value when inline)
 *           + a truncation's orphan entry (8 + 8 + 8) + per block (8 + 16 + BLOCK);
 *   delete  dirent (8 + 8 + NAME) + the inode rewritten (8 + 8 + HDR) or deleted with its
 *           orphan entry (less);
 * and per parent directory, its inode (8 + 8 + HDR).  HDR is the longest inode record header,
 * NS_INODE_HDR_MAX (103 bytes; records are written as v2, a typical one 17-24 bytes), so that
 * the estimate stays an upper bound whatever the fields hold.  Not counted, and left to the
 * reserve between KVFS_BATCH_RECORD_MAX and half the smallest log ring (36 MiB: 18 MiB;
 * engine.c RING_FLOOR), 1 MiB: the batch's block deletes (at most PURGE_STEP_BLOCKS, 24
 * bytes each: 384 KiB), next_ino, and the rare costs kvfs.h lists.
 */
#define REC_OP 8u /* an operation's header in a batch record (engine.c OP_HDR) */
#define REC_INODE (REC_OP + 8 + NS_INODE_HDR_MAX)
#define REC_PUT(nlen, len)                                                                 \
	(REC_OP + 8 + (nlen) + DIRENT_VALUE + REC_INODE + REC_OP + 16 +                      \
	 ((len) <= INLINE_MAX ? (len) : ((len) + BLOCK - 1) / BLOCK * (REC_OP + 16 + BLOCK)))
#define REC_DEL(nlen) (REC_OP + 8 + (nlen) + REC_INODE)
_Static_assert(KVFS_BATCH_RECORD_MAX + (1u << 20) <= (36u << 20) / 2,
	       "a batch's record and its reserve fit half of the smallest log ring");
_Static_assert((uint64_t)PURGE_STEP_BLOCKS * (REC_OP + 16) + 4096 <= (1u << 20),
	       "the block deletes of a batch fit its reserve");

/* The bytes of a batch's operations (keys, values) and directory prefixes are carved from
 * chunks emptied whole by kvfs_batch_clear: a malloc and a free per operation cost ~340
 * instructions, 5 % of a batched put.  kvfs_batch_clear keeps up to BATCH_KEEP bytes of them
 * (b->spare) for the next operations: freed, a batch of big values went back to the kernel
 * (glibc trims the heap) and the next one faulted in and zeroed every page again.  A new
 * chunk is at least as big as the chunks allocated since the last clear, up to
 * BATCH_CHUNK_MAX, and a big one is backed by huge pages (engine_alloc_huge): the first
 * batch of big values faulted its memory in 4 KiB at a time (with 64 KiB values, a chunk per
 * value), half the faults of a kvfs-bench fillrandom run.  Kept chunks do not count, so that
 * a batch a little bigger than the last one adds a small chunk, not a big one. */
#define BATCH_CHUNK (65536u - 16u)
#define BATCH_CHUNK_MAX (4u << 20)
#define BATCH_KEEP (32u << 20)
struct batch_chunk {
	struct batch_chunk *next;
	size_t used, size; /* bytes of data[] handed out, and in all */
	char data[];
};

struct kvfs_batch {
	struct batch_op *ops;
	size_t n, cap, bytes;
	size_t rec;             /* the record's estimated bytes */
	size_t rec_ref;         /* of them, whole data blocks, logged from the values in place */
	struct batch_dir *dirs; /* open addressing; cap_dirs a power of 2 */
	size_t n_dirs, cap_dirs;
	struct batch_chunk *chunks; /* the newest first */
	struct batch_chunk *spare;  /* empty chunks kept by kvfs_batch_clear (BATCH_KEEP) */
	size_t new_bytes;           /* of the chunks allocated since the last clear */
};

/* n bytes for the batch, valid until kvfs_batch_clear; NULL on out of memory (the batch is
 * unchanged then, but for an empty chunk it may keep). */
static char *batch_alloc(struct kvfs_batch *b, size_t n)
{
	struct batch_chunk *c = b->chunks;
	if (!c || c->size - c->used < n) {
		size_t size = BATCH_CHUNK - sizeof(*c);
		if (b->new_bytes > size)
			size = b->new_bytes < BATCH_CHUNK_MAX ? b->new_bytes : BATCH_CHUNK_MAX;
		if (n > size)
			size = n;
		struct batch_chunk **sp = &b->spare;
		while (*sp && (*sp)->size < n)
			sp = &(*sp)->next;
		if (*sp) { /* a kept one (empty) */
			c = *sp;
			*sp = c->next;
		} else if ((c = size < ENGINE_HUGE_PAGE ? malloc(sizeof(*c) + size)
							: engine_alloc_huge(sizeof(*c) + size))) {
			c->size = size;
			b->new_bytes += size;
		} else {
			return NULL;
		}
		c->used = 0;
		c->next = b->chunks;
		b->chunks = c;
	}
	char *p = c->data + c->used;
	c->used += n;
	return p;
}

struct kvfs_batch *kvfs_batch_new(void)
{
	return calloc(1, sizeof(struct kvfs_batch));
}

void kvfs_batch_clear(struct kvfs_batch *b)
{
	size_t kept = 0;
	for (struct batch_chunk *c = b->spare; c; c = c->next)
		kept += c->size;
	for (struct batch_chunk *c = b->chunks, *next; c; c = next) {
		next = c->next;
		if (c->size <= BATCH_KEEP - kept) { /* its bytes are the keys, values, prefixes */
			kept += c->size;
			c->next = b->spare;
			b->spare = c;
		} else {
			free(c);
		}
	}
	b->chunks = NULL;
	b->new_bytes = 0;
	b->n = 0;
	b->bytes = 0;
	b->rec = b->rec_ref = 0;
	if (b->n_dirs)
		memset(b->dirs, 0, b->cap_dirs * sizeof(*b->dirs));
	b->n_dirs = 0;
}

void kvfs_batch_free(struct kvfs_batch *b)
{
	if (!b)
		return;
	kvfs_batch_clear(b);
	for (struct batch_chunk *c = b->spare, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(b->ops);
	free(b->dirs);
	free(b);
}

/* The slot of the directory `key`[0..plen) in b->dirs (cap_dirs > 0): its entry or a free one. */
static struct batch_dir *batch_dir_slot(struct kvfs_batch *b, const char *key, size_t plen,
					uint64_t h)
{
	size_t mask = b->cap_dirs - 1, i = (size_t)h & mask;
	for (; b->dirs[i].h; i = (i + 1) & mask) {
		const struct batch_dir *d = &b->dirs[i];
		if (d->h == h && d->plen == plen && memcmp(d->prefix, key, plen) == 0)
			break;
	}
	return &b->dirs[i];
}

/* Room for one more entry in b->dirs: 0 or -ENOMEM. */
static int batch_dir_reserve(struct kvfs_batch *b)
{
	if (2 * (b->n_dirs + 1) <= b->cap_dirs)
		return 0;
	size_t cap = b->cap_dirs ? 2 * b->cap_dirs : 64, oldcap = b->cap_dirs;
	struct batch_dir *old = b->dirs, *nw = calloc(cap, sizeof(*nw));
	if (!nw)
		return -ENOMEM;
	b->dirs = nw;
	b->cap_dirs = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].h)
			*batch_dir_slot(b, old[i].prefix, old[i].plen, old[i].h) = old[i];
	free(old);
	return 0;
}

static int batch_add(struct kvfs_batch *b, const char *key, const void *val, size_t len,
		     bool del)
{
	int ncomp;
	int r = key_split(key, NULL, NULL, KEY_DEPTH_MAX, &ncomp); /* checks, as keypath_parse */
	if (r < 0)
		return r;
	const char *slash = strrchr(key, '/');
	size_t plen = slash ? (size_t)(slash - key) : 0;
	size_t nlen = strlen(key + (slash ? plen + 1 : 0)), klen = plen + (slash ? 1 : 0) + nlen;
	/* the parent directory's inode is charged once per batch (FNV-1a of its prefix) */
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < plen; i++)
		h = (h ^ (uint8_t)key[i]) * 0x100000001b3ull;
	h |= 1; /* 0 marks a free slot */
	if ((r = batch_dir_reserve(b)) < 0)
		return r;
	struct batch_dir *dir = batch_dir_slot(b, key, plen, h);
	size_t rec = (del ? REC_DEL(nlen) : REC_PUT(nlen, len)) + (dir->h ? 0 : REC_INODE);
	if (b->bytes + len > PUT_ATOMIC_MAX || b->rec + rec > KVFS_BATCH_RECORD_MAX)
		return -EFBIG;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct batch_op *ops = realloc(b->ops, cap * sizeof(*ops));
		if (!ops)
			return -ENOMEM;
		b->ops = ops;
		b->cap = cap;
	}
	char *prefix = NULL;
	if (!dir->h && !(prefix = batch_alloc(b, plen ? plen : 1)))
		return -ENOMEM;
	struct batch_op *op = &b->ops[b->n];
	memset(op, 0, sizeof(*op));
	if (!(op->key = batch_alloc(b, klen + 1 + len)))
		return -ENOMEM; /* prefix stays in the chunk, unused, until the clear */
	memcpy(op->key, key, klen + 1);
	if (len)
		memcpy(op->key + klen + 1, val, len);
	for (size_t i = 0; i < 8; i++)
		op->k8 = op->k8 << 8 | (i < klen ? (uint8_t)key[i] : 0);
	op->len = (uint32_t)len;
	op->del = del;
	op->seq = (uint32_t)b->n;
	if (prefix) {
		memcpy(prefix, key, plen);
		dir->h = h;
		dir->prefix = prefix;
		dir->plen = plen;
		b->n_dirs++;
	}
	b->n++;
	b->bytes += len;
	b->rec += rec;
	if (!del && len > INLINE_MAX)
		b->rec_ref += len / BLOCK * BLOCK;
	return 0;
}

int kvfs_batch_put(struct kvfs_batch *b, const char *key, const void *val, size_t len)
{
	return batch_add(b, key, val, len, false);
}

int kvfs_batch_delete(struct kvfs_batch *b, const char *key)
{
	return batch_add(b, key, NULL, 0, true);
}

/* Key order (strcmp's: unsigned bytes), then order of addition.  The first 8 bytes decide
 * most pairs without a call: as words they order as strcmp does (a key shorter than 8 bytes
 * is padded with zeros, which are its NUL and below every byte of a longer key). */
static inline bool op_before(const struct batch_op *x, const struct batch_op *y)
{
	if (x->k8 != y->k8)
		return x->k8 < y->k8;
	int c = strcmp(x->key, y->key);
	return c ? c < 0 : x->seq < y->seq;
}

/*
 * Sort ops[0..n) by op_before: a merge sort, tmp holding n / 2 + 1 operations, runs of up to
 * 16 by insertion.  glibc's qsort (a merge sort too) took ~600 instructions per operation of
 * a 1,000-put batch, most of it in its generic element moves and the indirect comparison
 * calls; this one, with the comparison inlined, ~250 (callgrind, kvfs-bench fillrandom).
 */
static void ops_sort(struct batch_op *ops, struct batch_op *tmp, size_t n)
{
	if (n <= 16) {
		for (size_t i = 1; i < n; i++) {
			struct batch_op x = ops[i];
			size_t j = i;
			for (; j > 0 && op_before(&x, &ops[j - 1]); j--)
				ops[j] = ops[j - 1];
			ops[j] = x;
		}
		return;
	}
	size_t h = n / 2;
	ops_sort(ops, tmp, h);
	ops_sort(ops + h, tmp, n - h);
	if (!op_before(&ops[h], &ops[h - 1]))
		return; /* already in order */
	memcpy(tmp, ops, h * sizeof(*ops));
	size_t i = 0, j = h, k = 0;
	while (i < h && j < n)
		ops[k++] = op_before(&ops[j], &tmp[i]) ? ops[j++] : tmp[i++];
	while (i < h)
		ops[k++] = tmp[i++];
}

int kvfs_batch_commit(struct kvfs *fs, struct kvfs_batch *b)
{
	if (fs->rdonly)
		return -EROFS;
	if (b->n == 0)
		return 0;
	/* the last operation on a key is the one that counts */
	struct batch_op *tmp = malloc((b->n / 2 + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	ops_sort(b->ops, tmp, b->n);
	free(tmp);
	struct keypath *kp = malloc(sizeof(*kp));
	uint64_t *dirs = calloc(b->n, sizeof(*dirs));
	struct engine_batch *eb = engine_batch_new();
	int r = kp && dirs && eb ? 0 : -ENOMEM;
	/* The buffer's size is known (b->rec, an upper bound, less the whole data blocks, which
	 * go to the log from the values in place: put_file_b): one buffer, not a doubling
	 * realloc.  Only a hint: a failure here is not one of the commit. */
	if (r == 0 && b->rec <= KVFS_BATCH_RECORD_MAX)
		(void)engine_batch_reserve(eb, b->rec - b->rec_ref);
	/*
	 * Parents first, each its own change (as kvfs_put: directories are prefixes).  A put's
	 * parent is walked first (through the dcache), and created (make_parents) only when
	 * missing; the keys are in order, so an operation whose parent is the previous one's
	 * takes its directory as resolved (no concurrent change is excluded by looking again:
	 * the lookups take no lock, and put_file_b checks the directory under ns_lock).
	 */
	const char *pkey = NULL;
	size_t pplen = 0;
	uint64_t pdir = 0;
	for (size_t i = 0; r == 0 && i < b->n; i++) {
		if (i + 1 < b->n && op_same_key(&b->ops[i], &b->ops[i + 1]))
			continue;
		const char *key = b->ops[i].key, *slash = strrchr(key, '/');
		size_t plen = slash ? (size_t)(slash - key) : 0;
		if (pkey && plen == pplen && memcmp(key, pkey, plen) == 0) {
			dirs[i] = pdir;
			continue;
		}
		r = keypath_parse(key, kp);
		if (r == 0)
			r = walk(fs, kp->comp, kp->clen, kp->n - 1, &dirs[i]);
		if (r == -ENOENT && !b->ops[i].del)
			r = make_parents(fs, kp, &dirs[i]);
		if (r == 0) {
			pkey = key;
			pplen = plen;
			pdir = dirs[i];
		}
	}
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (r == 0) {
		pthread_mutex_lock(&fs->ns_lock);
		fs->n_deferred = 0;
		r = unfinished_check(fs);
		fs->batching = true;
		tl_batch = fs;
		fs->batch_dels_left = fs->purge_step;
		for (size_t i = 0; r == 0 && i < b->n; i++) {
			const struct batch_op *op = &b->ops[i];
			if (i + 1 < b->n && op_same_key(op, &b->ops[i + 1]))
				continue;
			/* the key was checked by batch_add: its last component follows its
			 * last slash */
			const char *slash = strrchr(op->key, '/');
			const char *last = slash ? slash + 1 : op->key;
			size_t nlen = strlen(last);
			if (op->del)
				r = remove_name_b(fs, eb, dirs[i], last, nlen, 0);
			else
				r = put_file_b(fs, eb, dirs[i], last, nlen,
					       op_val(op, (size_t)(last - op->key) + nlen),
					       op->len, uid, gid, false);
		}
		if (r == 0)
			r = pending_flush(fs, eb);
		fs->batching = false;
		tl_batch = NULL;
		pending_clear(fs);
		bnote_clear(fs);
		if (r == 0)
			r = commit_op(fs, eb); /* then the steps of big files it deleted */
		else
			fs->n_deferred = 0;
		pthread_mutex_unlock(&fs->ns_lock);
	}
	engine_batch_free(eb);
	free(dirs);
	free(kp);
	return r;
}

int kvfs_delete(struct kvfs *fs, const char *key)
{
	uint64_t dir;
	char last[KVFS_NAME_MAX + 1];
	int r = key_resolve(fs, key, &dir, last, NULL);
	return r < 0 ? r : remove_name(fs, dir, last, -1);
}

struct list_ctx {
	struct kvfs *fs;
	int (*fn)(void *ctx, const char *name, const struct kvfs_stat *st);
	void *ctx;
	int ret;
	uint64_t dir;
	struct inode *in; /* scratch for dirent_stat */
};

static int list_one(void *ctx, const struct dirent_seen *de)
{
	struct list_ctx *lc = ctx;
	struct kvfs_stat st;
	int r = dirent_stat(lc->fs, lc->dir, de, lc->in, &st);
	if (r < 0) {
		lc->ret = r;
		return 1;
	}
	lc->ret = lc->fn(lc->ctx, de->name, &st);
	return lc->ret;
}

int kvfs_list(struct kvfs *fs, const char *dir,
	      int (*fn)(void *ctx, const char *name, const struct kvfs_stat *st), void *ctx)
{
	uint64_t ino = KVFS_ROOT_INO;
	int r = 0;
	if (dir && *dir) {
		struct keypath *kp = malloc(sizeof(*kp));
		if (!kp)
			return -ENOMEM;
		r = key_split(dir, kp->comp, kp->clen, KEY_DEPTH_MAX, &kp->n);
		if (r == 0)
			r = walk(fs, kp->comp, kp->clen, kp->n, &ino);
		free(kp);
		if (r < 0)
			return r;
	}
	struct list_ctx lc = { fs, fn, ctx, 0, ino, malloc(sizeof(struct inode)) };
	if (!lc.in)
		return -ENOMEM;
	r = readdir_each(fs, ino, NULL, true, list_one, &lc);
	free(lc.in);
	return r < 0 ? r : lc.ret;
}

struct scan_ctx {
	struct kvfs *fs;
	const char *lo, *hi;
	int (*fn)(void *ctx, const char *key, const struct kvfs_stat *st);
	void *ctx;
	char *path;   /* PATH_MAX-ish buffer holding the current directory's key prefix */
	size_t plen, cap;
	int ret;
	uint64_t dir;     /* the directory being walked */
	struct inode *in; /* scratch for dirent_stat */
};

static int scan_dir(struct scan_ctx *sc, uint64_t ino, int depth);

/* Key order: bytes, with '/' below every other byte (what a depth-first walk in name order
 * yields: "a/x" < "a!" because the directory "a" sorts before the name "a!"). */
static int key_order_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca == '/')
			ca = 1;
		if (cb == '/')
			cb = 1;
		if (ca != cb || !ca)
			return (int)ca - (int)cb;
	}
}

static int scan_one(void *ctx, const struct dirent_seen *de)
{
	struct scan_ctx *sc = ctx;
	const char *name = de->name;
	size_t nlen = de->nlen, save = sc->plen;
	if (sc->plen + nlen + 2 > sc->cap) {
		sc->ret = -ENAMETOOLONG;
		return 1;
	}
	if (sc->plen)
		sc->path[sc->plen++] = '/';
	memcpy(sc->path + sc->plen, name, nlen + 1);
	sc->plen += nlen;
	/* keys below this entry all start with path + "/": prune outside [lo, hi) */
	bool past_hi = sc->hi && key_order_cmp(sc->path, sc->hi) >= 0;
	if (past_hi) {
		sc->plen = save;
		sc->path[save] = 0;
		sc->ret = 0;
		return 1; /* names are in order: everything after is past hi too */
	}
	if (de->type == DT_DIR) {
		/* below lo entirely? "dir/..." keys are < lo only when path + "/\xff" < lo */
		uint64_t dir = sc->dir;
		sc->ret = scan_dir(sc, de->ino, 1);
		sc->dir = dir;
	} else if (!sc->lo || key_order_cmp(sc->path, sc->lo) >= 0) {
		struct kvfs_stat st;
		sc->ret = dirent_stat(sc->fs, sc->dir, de, sc->in, &st);
		if (sc->ret == 0)
			sc->ret = sc->fn(sc->ctx, sc->path, &st);
	}
	sc->plen = save;
	sc->path[save] = 0;
	return sc->ret != 0;
}

static int scan_dir(struct scan_ctx *sc, uint64_t ino, int depth)
{
	sc->dir = ino;
	int r = readdir_each(sc->fs, ino, NULL, true, scan_one, sc);
	return r < 0 ? r : sc->ret;
}

/*
 * The walk is depth-first in name order: each directory's entries in order, a subdirectory's
 * keys in place of its name.  That is kvfs.h's key order ("a/b" < "a/b/c" < "a/c" < "ab").
 * It equals plain byte order of the whole keys only when no component holds a byte below '/'
 * (0x2f): "a!" sorts before "a/x" as bytes but after it here.
 */
int kvfs_scan(struct kvfs *fs, const char *lo, const char *hi,
	      int (*fn)(void *ctx, const char *key, const struct kvfs_stat *st), void *ctx)
{
	struct scan_ctx sc = { .fs = fs, .lo = lo, .hi = hi, .fn = fn, .ctx = ctx };
	sc.cap = 1u << 16;
	sc.path = malloc(sc.cap);
	sc.in = malloc(sizeof(*sc.in));
	if (!sc.path || !sc.in) {
		free(sc.path);
		free(sc.in);
		return -ENOMEM;
	}
	sc.path[0] = 0;
	int r = scan_dir(&sc, KVFS_ROOT_INO, 0);
	free(sc.path);
	free(sc.in);
	return r;
}

/* ---- statistics ---- */

int kvfs_env_engine_stat(struct kvfs *fs, struct engine_stat *out)
{
	return engine_stat(fs->e, out);
}

int kvfs_stats(struct kvfs *fs, struct kvfs_stats *out)
{
	memset(out, 0, sizeof(*out));
	struct engine_stat es;
	int r = engine_stat(fs->e, &es);
	if (r < 0)
		return r;
	out->pages_used = es.store.pages_used;
	out->pages_free = es.store.pages_free;
	out->pages_pinned = es.store.pages_pinned;
	out->page_size = es.store.page_size;
	out->log_bytes = es.log_bytes;
	out->checkpoints = es.n_checkpoints;
	out->fdatasync_calls = es.n_fdatasync;
	out->sync_calls = es.n_sync_calls;
	out->mean_group_size = es.n_fdatasync ? (double)es.n_sync_calls / es.n_fdatasync : 0;
	out->oldest_snapshot_age_ns = es.store.oldest_reader_age_ns;
	/* files, dirs, bytes: walks of the inode tree (its records; an INODE REF is skipped)
	 * and of the dirent tree (the embedded records) */
	for (unsigned tree = T_INODE; tree <= T_DIRENT && r >= 0; tree++) {
		struct engine_iter *it;
		if ((r = engine_iter_new(fs->e, tree, NULL, 0, NULL, 0, &it)) < 0)
			return r;
		size_t off = tree == T_DIRENT ? DIRENT_VALUE : 0;
		uint8_t k[8 + KVFS_NAME_MAX], v[DIRENT_VALUE + NS_INODE_HDR_ANY];
		size_t klen, vlen;
		while ((r = engine_iter_next(it, k, sizeof(k), &klen, v, sizeof(v), &vlen)) == 0) {
			struct ns_inode h; /* the header only: v holds at most its first bytes */
			if (vlen <= off || (tree == T_INODE && ns_is_ref(v, vlen)) ||
			    ns_inode_decode(v + off, (vlen < sizeof(v) ? vlen : sizeof(v)) - off, &h,
					    NULL) < 0)
				continue;
			if (S_ISDIR(h.mode))
				out->dirs++;
			else
				out->files++;
			if (S_ISREG(h.mode))
				out->bytes += h.size;
		}
		engine_iter_free(it);
		if (r == -ENOENT)
			r = 0;
	}
	uint64_t used = es.store.file_bytes;
	out->space_amplification = out->bytes ? (double)used / (double)out->bytes : 0;
	struct statvfs vfs;
	if (statvfs(store_path(engine_store(fs->e)), &vfs) == 0 && vfs.f_frsize) {
		out->statfs_blocks = (uint64_t)vfs.f_blocks * vfs.f_frsize / BLOCK;
		out->statfs_bfree = (uint64_t)vfs.f_bavail * vfs.f_frsize / BLOCK;
	}
	return r == -ENOENT ? 0 : r;
}

/* ---- lseek SEEK_DATA / SEEK_HOLE ---- */

/*
 * The answer comes from the data tree: a block is data when its key exists (whatever its
 * bytes: a written block of zeros is data, as on ext4), a hole when it does not.  The walk
 * starts at the block of `off` and stops at the first block that answers, so SEEK_DATA over a
 * hole of any size is one B+tree descent and SEEK_HOLE reads the keys of one run of blocks.
 * An inline file is all data.  No lock: each step sees a committed state (engine_iter), which
 * is what a racing writer allows (lseek(2) gives no atomicity with respect to writes).
 */
int kvfs_lseek(struct kvfs *fs, uint64_t ino, int64_t off, int whence, uint64_t *out)
{
	if (whence != KVFS_SEEK_DATA && whence != KVFS_SEEK_HOLE)
		return -EINVAL;
	struct inode in;
	int r = file_inode_get(fs, ino, &in);
	if (r < 0)
		return r;
	/* Linux (iomap_seek_data/iomap_seek_hole): nothing before 0 or at or past the end */
	if (off < 0 || (uint64_t)off >= in.size)
		return -ENXIO;
	uint64_t pos = (uint64_t)off;
	if (in.flags & INODE_INLINE) {
		*out = whence == KVFS_SEEK_DATA ? pos : in.size;
		return 0;
	}
	uint8_t lo[16], hi[16], k[16];
	block_key(lo, ino, pos / BLOCK);
	block_key(hi, ino + 1, 0);
	struct engine_iter *it;
	if ((r = engine_iter_new(fs->e, T_DATA, lo, 16, hi, 16, &it)) < 0)
		return r;
	uint64_t want = pos / BLOCK; /* SEEK_HOLE: the next block of the current run */
	uint64_t last = (in.size - 1) / BLOCK;
	size_t klen, vlen;
	while ((r = engine_iter_next(it, k, sizeof(k), &klen, NULL, 0, &vlen)) == 0) {
		if (klen != 16)
			continue;
		uint64_t blk = ldbe64(k + 8);
		if (blk > last)
			break; /* beyond the end: no block of this file can be there (set_size) */
		if (fs->n_holes && hole_hides(fs, ino, blk)) {
			if (whence == KVFS_SEEK_HOLE)
				break; /* a hole at `want` (at blk, or before it) */
			continue;
		}
		if (whence == KVFS_SEEK_DATA) {
			engine_iter_free(it);
			uint64_t at = blk * BLOCK;
			*out = at > pos ? at : pos;
			return 0;
		}
		if (blk != want)
			break; /* a hole at `want` */
		want++;
		if (want > last)
			break;
	}
	engine_iter_free(it);
	if (r < 0 && r != -ENOENT)
		return r;
	if (whence == KVFS_SEEK_DATA)
		return -ENXIO; /* only a hole up to the end */
	uint64_t at = want * BLOCK;
	if (at < pos)
		at = pos;
	*out = at < in.size ? at : in.size; /* the end of the file is a hole too */
	return 0;
}
