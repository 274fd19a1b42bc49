/*
 * store/engine.c — the log in front of the tree: commits, reads through the overlays,
 * checkpoints, recovery.  See engine.h for the contract.
 *
 * Locks (in this order when nested):
 *   commit_lock  one commit at a time, so that log order == overlay order (a frozen overlay is
 *                always a prefix of the log: INV-E1);
 *   ck_run_lock  one checkpoint at a time (the thread, engine_checkpoint, close, and a commit
 *                of an engine without the thread that finds the log full: wait_room);
 *   ov_lock      (rwlock) the active/frozen pointers and the active overlay's contents;
 *                readers hold it shared across a whole lookup, so a checkpoint cannot drop the
 *                frozen overlay between a reader's look at it and its look at the tree (INV-E2);
 *                engine_read holds it across several lookups, which so see one committed
 *                state (a commit changes the overlay under it exclusively);
 *   ck_lock      the checkpoint thread's wake-ups and the backpressure waits.
 *
 * Checkpoint (ck_run): freeze (active becomes frozen, a new active starts; ov_lock exclusive),
 * apply the frozen overlay to the store in key order, in pieces (below; the log made durable
 * up to the frozen overlay's LSN before the first piece), commit the last piece durably with
 * the frozen overlay's LSN, drop the frozen overlay (ov_lock exclusive), release the log up to
 * that LSN.  A crash at any
 * point leaves either the old meta page (replay from the old LSN) or the new one (replay from
 * the new LSN): every batch whole or absent, in log order.
 *
 * Pieces.  A copy-on-write commit frees the pages it copied, but they are reusable only two
 * commits later (store/freelist.c), so one transaction that rewrites every leaf of a tree (a
 * checkpoint of random keys does) needs a second copy of the tree on disk, and the data file
 * keeps that size.  So the checkpoint commits whenever its transaction has copied about
 * ckpt_piece_pages pages (ENGINE_DEFAULT_PIECE_PAGES), moves the shared snapshot to that commit
 * (the frozen overlay, read first, still shadows the partly applied tree: INV-E2) and goes on
 * in a new transaction: the pages of piece k are reused by piece k + 2, and the file grows by
 * about two pieces, not by a tree.  Measured with kvfs-bench (100-byte values, 100,000 keys):
 * see the closing note of issue 3.  What counts is what waits for reuse (store_txn_pages):
 * copied nodes and replaced or deleted overflow runs, not the new runs of new values, which
 * free nothing (each piece costs a durable commit: with 4 KiB and 64 KiB values, one flush
 * per MiB of values slowed the checkpoint, and so the writers, by 10-25 %).  These pieces
 * keep the old LSN in the meta page: after a crash the log is replayed from it over a tree
 * that already holds part of the overlay, which ends in the same state because every record
 * sets whole values (replay is idempotent).  That
 * is only true of records the log still has: hence the log is made durable up to the frozen
 * LSN before the first commit that keeps the old LSN (the WAL rule: no page a durable meta
 * page reaches is ahead of the log from that meta page's LSN).  Without it, a power cut after
 * a piece would keep, for a key written by a record that was still in the page cache, a value
 * newer than the replay reaches: not a prefix of the batches.  A checkpoint that commits once,
 * with the frozen LSN, needs no log flush at all: its meta page says the tree holds every
 * record up to that LSN, so those records are never read again, durable or not, and a crash
 * before that meta page is durable leaves the old state and the log as they were.  So the
 * flush waits for the first piece (wal_rule): a fill of big values, whose new overflow runs
 * do not count towards a piece, writes each value to the disk once, at the checkpoint, and
 * its log stays in the page cache, rewritten lap after lap (64 KiB fillrandom: half the bytes
 * flushed; measured in the closing note of issue 3).
 *
 * A full disk (INV-E3).  The log's ring is allocated when it is created, so a commit never
 * needs disk space; a checkpoint does (new pages for the copy-on-write commit, the data file
 * growing).  When its transaction fails with -ENOSPC (the store itself not failed: nothing was
 * written that a meta page can reach), the engine is not failed: it is "short of space"
 * (e->nospc).  The frozen overlay stays frozen and readable and the log keeps it, so nothing
 * that returned is lost; commits that would add data get -ENOSPC; a batch that deletes and
 * puts little (an unlink, rmdir, truncate, hole punch, removexattr: at least one delete and
 * at most NOSPC_PUT_BYTES of values put) is still admitted, so a user can make room, and it wakes the
 * checkpoint thread.  The next checkpoint first folds the active overlay into the frozen one
 * (newest entry per key wins, LSN the active one's), so the retry writes the deleted files'
 * tombstones in place of their puts, then applies it as usual; the first success ends the
 * state.  That checkpoint commits twice (ck_second_commit), so that the pages its deletions
 * freed are reusable by the next one.  While short of space the checkpoint thread retries when
 * woken and once per interval; close leaves the log as it is (the next open replays it).  A
 * commit whose record the ring has no room for (only a checkpoint can make room) gets -ENOSPC
 * too, once a checkpoint asked for after it failed so (wait_room), whatever the batch: it
 * would wait for ever, holding commit_lock.  What
 * this cannot do: deleting files that a checkpoint had already written needs a commit of their
 * deletion, which needs a few new pages of its own (copies of the changed tree pages): with
 * not even those left in the file or on the disk, room has to come from outside the store.
 *
 * Log record: type ENGINE_REC_BATCH, payload = u32 op count, then per op:
 *   u8 tree, u8 op (1 put, 2 delete), u16 klen, u32 vlen, key, value.
 * One decoder (ops_decode) reads it: at open (replay), at commit (the batch's own bytes) and
 * in kvfs-check (engine_record_decode).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "store/engine.h"
#include "store/format.h"
#include "store/overlay.h"
#include "wal/log.h"

#define OP_PUT 1
#define OP_DEL 2
#define OP_HDR 8
/* While short of space (INV-E3), the most value bytes a batch with a delete may put: two data
 * blocks and an inode record, for a hole punch whose two ends fall inside blocks (both edge
 * blocks are rewritten zeroed) or a truncation inside a block.  With one block (4096, before),
 * punching a hole to make room got -ENOSPC (review H15); a batch this small adds next to
 * nothing to the overlay, and the log's ring needs no disk space. */
#define NOSPC_PUT_BYTES (2u * 4096u + 512u)

/* A batch's buffer is its log record being built, so that engine_commit logs it without a copy
 * (wal_append_mapped): BATCH_HEAD bytes (room for the record header, then the u32 op count),
 * the `len` bytes of encoded ops, and BATCH_TAIL bytes of room for the record's padding. */
#define BATCH_HEAD (WAL_REC_HDR + 4u)
#define BATCH_TAIL 8u

/*
 * Values stay in the log.  Once a batch's record is written, the overlay's entries point at
 * its values where they lie in the log's read-only mapping of its file (wal_append_mapped,
 * overlay_put_ref), instead of holding copies: the log keeps a record's bytes until a
 * checkpoint has written them into the tree and released them (wal_release), and the engine
 * drops the overlay that points into a record (the frozen one) before it releases it (ck_run;
 * INV-E2 keeps readers out of a dropped overlay).  So a commit copies no value into memory
 * of its own, and the batch keeps its buffer, warm, for the next commit.  Before, small
 * batches copied each value into a malloc of its own, and big ones handed their whole buffer
 * to the overlay and took a fresh one: with 64 KiB values the kernel zeroed 2 MiB pages for
 * most of the puts (kvfs-bench fillrandom: clear_page was a third of a run in perf).  The
 * values live in the page cache instead, which the log's pwrite filled anyway; the overlay's
 * bytes are its nodes and keys.  Without a mapping (the log could not map its file) values are
 * copied as before.  And a big value need not be copied into the batch either: put by
 * reference (engine_batch_put_ref: the namespace's whole data blocks, from the caller's value
 * or a kvfs_batch's chunk), it goes from where it lies into the log, the record gathered from
 * the batch's buffer and those values (batch_log_gather, wal_append_gather).  A 64 KiB put
 * then costs one copy into the page cache where it cost three, and the batch's buffer holds
 * only headers and keys.  Measured: see the closing note of issue 3.
 */

/* A value of engine_batch_put_ref, not copied into the buffer: it goes into the record at
 * `at` bytes into the buffer's ops (engine_commit gathers the pieces). */
struct batch_ext {
	size_t at;
	const void *p;
	size_t n;
};

/* Values put by reference shorter than this are copied all the same: an iovec and a piece of
 * the gathered write cost more than the copy. */
#define EXT_MIN 1024u

struct engine_batch {
	uint8_t *buf;        /* NULL, or BATCH_HEAD + blen + BATCH_TAIL <= cap bytes */
	size_t len;          /* bytes of encoded ops in the record, values by reference included */
	size_t blen, cap;    /* blen: bytes of encoded ops in buf, from buf + BATCH_HEAD */
	uint32_t nops;
	uint32_t ndel;       /* delete ops */
	size_t put_bytes;    /* value bytes of the put ops */
	struct batch_ext *ext; /* values by reference, in op order */
	size_t n_ext, ext_cap;
	struct iovec *iov;   /* engine_commit's list of pieces: 2 * n_ext + 1 */
	size_t iov_cap;
};

struct engine {
	char *path;
	struct engine_options opt;
	struct store *st;
	struct wal *wal;
	bool rdonly;

	pthread_mutex_t ck_run_lock;
	pthread_mutex_t commit_lock;
	pthread_rwlock_t ov_lock;
	struct overlay *active; /* protected by ov_lock */
	struct overlay *frozen; /* protected by ov_lock */
	/* The tree's last checkpoint, as a read snapshot with every tree opened, shared by all
	 * point reads (store_get on a read transaction changes nothing in it); replaced after each
	 * checkpoint.  protected by ov_lock: readers use it under the shared lock, the swap takes
	 * the exclusive one, so no reader can hold the one being freed. */
	struct store_txn *snap;
	struct store_tree *snap_tree[ENGINE_TREES];

	pthread_mutex_t ck_lock;
	pthread_cond_t ck_wake;  /* the checkpoint thread waits here */
	pthread_cond_t ck_done;  /* backpressure waits here */
	bool ck_request;         /* protected by ck_lock */
	bool stopping;           /* protected by ck_lock */
	uint64_t ck_rounds;      /* protected by ck_lock: the thread's wake-ups that asked for a
				    checkpoint, each counted (and ck_done broadcast) after its
				    ck_run returned (wait_room) */
	pthread_t thread;
	bool has_thread;

	_Atomic int failed;
	_Atomic bool nospc;  /* a checkpoint found the disk full: INV-E3 */
	/* The ring could not be grown from its size at rest at open (ring_fit: the disk was
	 * full): 0, or the ring wanted.  A record that would fit half of that ring but not half
	 * of this one is refused with -ENOSPC, not -EFBIG (engine_commit). */
	_Atomic uint64_t ring_short;
	_Atomic uint64_t last_lsn;
	_Atomic uint64_t n_checkpoints, n_sync_calls, n_commits, n_backpressure,
		n_iter_tombstones;
};

static void eng_logf(struct engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void eng_logf(struct engine *e, const char *fmt, ...)
{
	char msg[400], line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "engine %s: %s", e->path, msg);
	if (e->opt.log)
		e->opt.log(e->opt.log_ctx, line);
	else
		fprintf(stderr, "kvfs: %s\n", line);
}

static int eng_fail(struct engine *e, int err)
{
	int expected = 0;
	if (atomic_compare_exchange_strong(&e->failed, &expected, err))
		eng_logf(e, "failed (%s): every write returns EIO until reopened", strerror(-err));
	return err;
}

/* ---- batches ---- */

struct engine_batch *engine_batch_new(void)
{
	return calloc(1, sizeof(struct engine_batch));
}

void engine_batch_free(struct engine_batch *b)
{
	if (b) {
		free(b->buf);
		free(b->ext);
		free(b->iov);
		free(b);
	}
}

void engine_batch_clear(struct engine_batch *b)
{
	b->len = b->blen = 0;
	b->n_ext = 0;
	b->nops = 0;
	b->ndel = 0;
	b->put_bytes = 0;
}

/*
 * Huge pages for big buffers (engine_alloc_huge, a big batch's buffer).  The kernel faulted
 * such a buffer in 4 KiB at a time when it was fresh: with 64 KiB values, 16,000 faults for
 * 62.5 MiB, about a fifth of the writer's time (kvfs-bench fillrandom, perf).  With the range advised
 * MADV_HUGEPAGE (transparent huge pages in "madvise" mode, the usual default), each 2 MiB of it
 * is one fault.  Only whole 2 MiB pages inside the buffer are advised, so nothing outside it
 * is touched or counted; only buffers the engine and the batches allocate themselves are
 * advised, never the process's other memory (no malloc option is set).  Such a buffer is
 * normally mmap'd by glibc and unmapped when freed; one carved from the heap leaves the
 * advice on its whole pages, which later small allocations may then fault in 2 MiB at a time
 * (a heap that had held them once already).
 */
static void buf_huge(void *p, size_t size)
{
	uintptr_t a = ((uintptr_t)p + ENGINE_HUGE_PAGE - 1) & ~(uintptr_t)(ENGINE_HUGE_PAGE - 1);
	uintptr_t end = ((uintptr_t)p + size) & ~(uintptr_t)(ENGINE_HUGE_PAGE - 1);
	if (p && size >= ENGINE_HUGE_PAGE && end > a)
		(void)madvise((void *)a, end - a, MADV_HUGEPAGE); /* a hint: EINVAL is harmless */
}

void *engine_alloc_huge(size_t size)
{
	void *p;
	if (posix_memalign(&p, ENGINE_HUGE_PAGE, size ? size : 1) != 0)
		return NULL;
	buf_huge(p, size);
	return p;
}

/* Make *buf (*cap bytes) hold at least `need` bytes, doubling from `first`.  0 or -ENOMEM (the
 * buffer is unchanged then). */
static int buf_reserve(uint8_t **buf, size_t *cap, size_t need, size_t first)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : first;
	while (c < need)
		c *= 2;
	uint8_t *p = realloc(*buf, c);
	if (!p)
		return -ENOMEM;
	buf_huge(p, c);
	*buf = p;
	*cap = c;
	return 0;
}

static int batch_add(struct engine_batch *b, unsigned tree, int op, const void *key,
		     size_t klen, const void *val, size_t vlen, bool ref)
{
	if (tree >= ENGINE_TREES || klen < 1 || klen > STORE_MAX_KEY || vlen > ENGINE_MAX_VALUE ||
	    (vlen && !val))
		return -EINVAL;
	ref = ref && vlen >= EXT_MIN;
	if (ref && b->n_ext == b->ext_cap) {
		size_t cap = b->ext_cap ? 2 * b->ext_cap : 64;
		struct batch_ext *x = realloc(b->ext, cap * sizeof(*x));
		if (!x)
			return -ENOMEM;
		b->ext = x;
		b->ext_cap = cap;
	}
	size_t need = b->blen + OP_HDR + klen + (ref ? 0 : vlen);
	if (buf_reserve(&b->buf, &b->cap, BATCH_HEAD + need + BATCH_TAIL, 256) < 0)
		return -ENOMEM;
	uint8_t *p = b->buf + BATCH_HEAD + b->blen;
	p[0] = (uint8_t)tree;
	p[1] = (uint8_t)op;
	st16(p + 2, (uint16_t)klen);
	st32(p + 4, (uint32_t)vlen);
	memcpy(p + OP_HDR, key, klen);
	if (ref)
		b->ext[b->n_ext++] = (struct batch_ext){ need, val, vlen };
	else if (vlen)
		memcpy(p + OP_HDR + klen, val, vlen);
	b->blen = need;
	b->len += OP_HDR + klen + vlen;
	b->nops++;
	if (op == OP_DEL)
		b->ndel++;
	else
		b->put_bytes += vlen;
	return 0;
}

int engine_batch_put(struct engine_batch *b, unsigned tree, const void *key, size_t klen,
		     const void *val, size_t vlen)
{
	return batch_add(b, tree, OP_PUT, key, klen, val, vlen, false);
}

int engine_batch_put_ref(struct engine_batch *b, unsigned tree, const void *key, size_t klen,
			 const void *val, size_t vlen)
{
	return batch_add(b, tree, OP_PUT, key, klen, val, vlen, true);
}

int engine_batch_del(struct engine_batch *b, unsigned tree, const void *key, size_t klen)
{
	return batch_add(b, tree, OP_DEL, key, klen, NULL, 0, false);
}

/*
 * Decode `nops` encoded ops in buf[0..len) (the record format above), then call op for each in
 * order.  The whole buffer is checked before the first call, so op sees every op of a batch or
 * none.  0, -EUCLEAN (does not decode: only possible for a log record whose checksum held,
 * i.e. corruption or a bug), or op's error (which stops the calls).
 */
static int ops_decode(uint32_t nops, const uint8_t *buf, size_t len,
		      int (*op)(void *ctx, unsigned tree, bool del, const void *key, size_t klen,
				const void *val, size_t vlen),
		      void *ctx)
{
	size_t off = 0;
	for (uint32_t i = 0; i < nops; i++) {
		if (len - off < OP_HDR)
			return -EUCLEAN;
		const uint8_t *p = buf + off;
		unsigned tree = p[0], kind = p[1];
		size_t klen = ld16(p + 2), vlen = ld32(p + 4);
		if (tree >= ENGINE_TREES || (kind != OP_PUT && kind != OP_DEL) || klen < 1 ||
		    klen > STORE_MAX_KEY || vlen > ENGINE_MAX_VALUE ||
		    len - off - OP_HDR < klen + vlen || (kind == OP_DEL && vlen))
			return -EUCLEAN;
		off += OP_HDR + klen + vlen;
	}
	if (off != len)
		return -EUCLEAN;
	off = 0;
	for (uint32_t i = 0; i < nops; i++) {
		const uint8_t *p = buf + off;
		size_t klen = ld16(p + 2), vlen = ld32(p + 4);
		int r = op(ctx, p[0], p[1] == OP_DEL, p + OP_HDR, klen, p + OP_HDR + klen, vlen);
		if (r < 0)
			return r;
		off += OP_HDR + klen + vlen;
	}
	return 0;
}

int engine_record_decode(const void *payload, size_t len,
			 int (*op)(void *ctx, unsigned tree, bool del, const void *key,
				   size_t klen, const void *val, size_t vlen),
			 void *ctx)
{
	const uint8_t *p = payload;
	if (len < 4)
		return -EUCLEAN;
	return ops_decode(ld32(p), p + 4, len - 4, op, ctx);
}

static int overlay_op(void *ctx, unsigned tree, bool del, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	return overlay_put(ctx, tree, key, klen, val, vlen, del);
}

static int overlay_ref_op(void *ctx, unsigned tree, bool del, const void *key, size_t klen,
			  const void *val, size_t vlen)
{
	return overlay_put_ref(ctx, tree, key, klen, val, vlen, del);
}

/* Apply an encoded batch (nops ops in buf[0..len)) to an overlay: 0, -EUCLEAN, -ENOMEM.  With
 * `ref`, the values are not copied: buf is the record in the log's mapping ("Values stay in
 * the log"). */
static int batch_apply(struct overlay *ov, uint32_t nops, const uint8_t *buf, size_t len,
		       bool ref)
{
	return ops_decode(nops, buf, len, ref ? overlay_ref_op : overlay_op, ov);
}

int engine_batch_reserve(struct engine_batch *b, size_t bytes)
{
	size_t need = BATCH_HEAD + b->blen + bytes + BATCH_TAIL;
	if (need < bytes)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	if (b->blen && need < 2 * b->cap)
		need = 2 * b->cap; /* reserved op by op: linear, not quadratic */
	uint8_t *p = realloc(b->buf, need); /* else exactly: the caller knows its size */
	if (!p)
		return -ENOMEM;
	buf_huge(p, need);
	b->buf = p;
	b->cap = need;
	return 0;
}

/* ---- checkpoints ---- */

static void tree_name(unsigned tree, char name[4])
{
	name[0] = 't';
	name[1] = (char)('0' + tree);
	name[2] = 0;
}

struct apply_ctx {
	struct engine *e;
	struct store_txn *txn;
	struct store_tree *trees[ENGINE_TREES];
	lsn_t lsn;        /* the frozen overlay's */
	bool log_durable; /* the log is durable up to lsn (wal_rule) */
	unsigned pieces;  /* committed before the last one */
};

static int snap_refresh(struct engine *e);

/* The WAL rule (see "Pieces"), before a commit that keeps the old LSN in the meta page: the
 * log durable up to the frozen LSN, once per checkpoint, in one flush shared with the group
 * commits of any writers syncing meanwhile.  0 or -EIO. */
static int wal_rule(struct apply_ctx *a)
{
	if (a->log_durable)
		return 0;
	if (wal_wait_durable(a->e->wal, a->lsn) < 0)
		return -EIO;
	a->log_durable = true;
	return 0;
}

/* Commit the piece applied so far without an LSN, move the shared snapshot to it, and begin
 * the next one (see "Pieces" above).  On error a->txn is NULL. */
static int ck_piece(struct apply_ctx *a)
{
	int r = wal_rule(a);
	if (r < 0) {
		store_txn_abort(a->txn);
		a->txn = NULL;
		return r;
	}
	r = store_txn_commit(a->txn, 0);
	a->txn = NULL;
	memset(a->trees, 0, sizeof(a->trees));
	if (r < 0)
		return r;
	a->pieces++;
	pthread_rwlock_wrlock(&a->e->ov_lock); /* the frozen overlay still shadows the tree */
	r = snap_refresh(a->e);
	pthread_rwlock_unlock(&a->e->ov_lock);
	if (r == 0)
		r = store_txn_begin(a->e->st, 0, &a->txn);
	return r;
}

static int apply_entry(void *ctx, unsigned tree, const void *key, size_t klen, const void *val,
		       size_t vlen, bool tombstone)
{
	struct apply_ctx *a = ctx;
	if (store_txn_pages(a->txn) >= a->e->opt.ckpt_piece_pages) {
		int r = ck_piece(a);
		if (r < 0)
			return r;
	}
	if (!a->trees[tree]) {
		char name[4];
		tree_name(tree, name);
		int r = store_tree_open(a->txn, name, 2, true, &a->trees[tree]);
		if (r < 0)
			return r;
	}
	if (tombstone) {
		int r = store_del(a->trees[tree], key, klen);
		return r == -ENOENT ? 0 : r;
	}
	return store_put(a->trees[tree], key, klen, val, vlen);
}

static uint64_t overlays_bytes(struct engine *e)
{
	pthread_rwlock_rdlock(&e->ov_lock);
	uint64_t b = overlay_bytes(e->active) + (e->frozen ? overlay_bytes(e->frozen) : 0);
	pthread_rwlock_unlock(&e->ov_lock);
	return b;
}

/* Replace the shared snapshot by one of the last commit; ov_lock held exclusively. */
static int snap_refresh(struct engine *e)
{
	struct store_txn *txn;
	int r = store_txn_begin(e->st, STORE_TXN_RDONLY, &txn);
	if (r < 0)
		return r;
	struct store_tree *t[ENGINE_TREES];
	for (unsigned i = 0; i < ENGINE_TREES; i++) {
		char name[4];
		tree_name(i, name);
		r = store_tree_open(txn, name, 2, false, &t[i]);
		if (r == -ENOENT) {
			t[i] = NULL;
			r = 0;
		}
		if (r < 0) {
			store_txn_abort(txn);
			return r;
		}
	}
	if (e->snap)
		store_txn_abort(e->snap);
	e->snap = txn;
	memcpy(e->snap_tree, t, sizeof(t));
	return 0;
}

/* overlay_walk callback: copy one entry of the active overlay into the frozen one (ctx). */
static int fold_entry(void *ctx, unsigned tree, const void *key, size_t klen, const void *val,
		      size_t vlen, bool tombstone)
{
	return overlay_put(ctx, tree, key, klen, val, vlen, tombstone);
}

/* Is the store failed (a write or sync of it failed)?  A write transaction says so at begin. */
static bool store_failed(struct store *st)
{
	struct store_txn *t;
	int r = store_txn_begin(st, 0, &t);
	if (r == 0)
		store_txn_abort(t);
	return r == -EIO;
}

/*
 * The end of a checkpoint that found the disk full before (INV-E3).  The pages that its
 * deletions freed are reusable only by a commit after one that neither meta page before it
 * can reach them from, and while no snapshot older than it is alive (INV-1, store/freelist.c);
 * so the overlay went in without its LSN (the meta page keeps the old one: a crash now replays
 * the log from there onto a tree that already holds all of it, which ends in the same state,
 * as every record sets whole values), the shared snapshot moves to it, and this second commit
 * records the LSN alone.  After it, the next checkpoint can use the freed pages.
 */
static int ck_second_commit(struct engine *e, lsn_t lsn)
{
	pthread_rwlock_wrlock(&e->ov_lock); /* the frozen overlay still shadows the tree */
	int r = snap_refresh(e);
	pthread_rwlock_unlock(&e->ov_lock);
	struct store_txn *txn;
	if (r == 0 && (r = store_txn_begin(e->st, 0, &txn)) == 0) {
		store_txn_set_lsn(txn, lsn);
		r = store_txn_commit(txn, 0);
	}
	return r;
}

static int ck_run(struct engine *e)
{
	pthread_mutex_lock(&e->ck_run_lock);
	int r = atomic_load(&e->failed) ? -EIO : 0;
	if (r || e->rdonly) {
		pthread_mutex_unlock(&e->ck_run_lock);
		return r;
	}
	pthread_rwlock_wrlock(&e->ov_lock);
	if (overlay_count(e->active) == 0 && !e->frozen) {
		pthread_rwlock_unlock(&e->ov_lock);
		pthread_mutex_unlock(&e->ck_run_lock);
		return 0;
	}
	struct overlay *fresh = overlay_new();
	if (!fresh) {
		pthread_rwlock_unlock(&e->ov_lock);
		pthread_mutex_unlock(&e->ck_run_lock);
		return -ENOMEM;
	}
	if (e->frozen) {
		/* A retry after -ENOSPC (INV-E3): fold the active overlay into the frozen one, which
		 * is then again a prefix of the log, up to the active one's LSN (INV-E1). */
		r = overlay_walk(e->active, fold_entry, e->frozen);
		if (r < 0) { /* -ENOMEM: the active overlay, read first, still shadows the rest */
			overlay_free(fresh);
			pthread_rwlock_unlock(&e->ov_lock);
			pthread_mutex_unlock(&e->ck_run_lock);
			return r;
		}
		overlay_set_lsn(e->frozen, overlay_lsn(e->active));
		overlay_free(e->active); /* its values are copied */
	} else {
		e->frozen = e->active;
	}
	e->active = fresh;
	pthread_rwlock_unlock(&e->ov_lock);

	/* The frozen overlay has no writer now: read it without the lock. */
	uint64_t lsn = overlay_lsn(e->frozen);
	bool short_of_space = atomic_load(&e->nospc);
	struct apply_ctx a;
	memset(&a, 0, sizeof(a));
	a.e = e;
	a.lsn = lsn;
	r = store_txn_begin(e->st, 0, &a.txn);
	if (r == 0) {
		r = overlay_walk(e->frozen, apply_entry, &a);
		if (r == 0 && short_of_space)
			r = wal_rule(&a); /* this commit keeps the old LSN too */
		if (r == 0) {
			if (!short_of_space)
				store_txn_set_lsn(a.txn, lsn);
			r = store_txn_commit(a.txn, 0);
		} else if (a.txn) {
			store_txn_abort(a.txn);
		}
	}
	if (r == 0 && short_of_space)
		r = ck_second_commit(e, lsn);
	if (r == -ENOSPC && !store_failed(e->st)) {
		/* Nothing reachable was written (the store is not failed): short of space, not
		 * failed (INV-E3).  The frozen overlay stays readable and frozen; the log holds it. */
		if (!atomic_exchange(&e->nospc, true))
			eng_logf(e, "checkpoint: no space left on the device: new data gets ENOSPC, "
				 "deletes go on, until a checkpoint succeeds");
	} else if (r < 0) {
		/* The frozen overlay stays readable; the log still holds it.  Nothing more may be
		 * committed: a later checkpoint would record an LSN past these batches. */
		eng_logf(e, "checkpoint failed: %s", strerror(-r));
		eng_fail(e, r);
	} else {
		if (atomic_exchange(&e->nospc, false))
			eng_logf(e, "checkpoint: space found again: writes go on");
		pthread_rwlock_wrlock(&e->ov_lock);
		int sr = snap_refresh(e);
		if (sr == 0) {
			/* No reader is in it (ov_lock exclusive), and the log's records that its
			 * entries point into are released only below ("Values stay in the log"). */
			overlay_free(e->frozen);
			e->frozen = NULL;
		}
		pthread_rwlock_unlock(&e->ov_lock);
		if (sr < 0) {
			/* The frozen overlay stays, read before the tree (reads stay right), and so
			 * do the log's records its entries point into: not released, or the ring
			 * would be written over under them (review H20: a lap later, reads and the
			 * next checkpoint took other records' bytes for its values).  The next
			 * checkpoint folds into it and applies it again (as after -ENOSPC), then
			 * releases. */
			r = sr;
			eng_logf(e, "after a checkpoint: cannot take a snapshot: %s", strerror(-sr));
		} else {
			wal_release(e->wal, lsn);
		}
		atomic_fetch_add(&e->n_checkpoints, 1);
	}
	pthread_mutex_unlock(&e->ck_run_lock);
	pthread_mutex_lock(&e->ck_lock);
	pthread_cond_broadcast(&e->ck_done);
	pthread_mutex_unlock(&e->ck_lock);
	return r;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Is a checkpoint due by size?  When what waits for it, the overlay's own bytes and the
 * values it reads from the log ("Values stay in the log": the log's unreleased bytes), reaches
 * ckpt_overlay_bytes, or the log is half full. */
static bool ck_due(struct engine *e)
{
	struct wal_stat ws;
	wal_stat(e->wal, &ws);
	uint64_t used = ws.end - ws.released;
	return overlays_bytes(e) + used >= e->opt.ckpt_overlay_bytes || used >= ws.ring_bytes / 2;
}

static void *ck_thread(void *arg)
{
	struct engine *e = arg;
	uint64_t last = now_ms();
	pthread_mutex_lock(&e->ck_lock);
	while (!e->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		uint64_t wait_ms = e->opt.ckpt_interval_ms < 1000 ? e->opt.ckpt_interval_ms : 1000;
		until.tv_sec += (time_t)(wait_ms / 1000);
		until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!e->ck_request)
			pthread_cond_timedwait(&e->ck_wake, &e->ck_lock, &until);
		if (e->stopping)
			break;
		bool go = e->ck_request;
		e->ck_request = false;
		pthread_mutex_unlock(&e->ck_lock);
		if (!go)
			go = ck_due(e) || now_ms() - last >= e->opt.ckpt_interval_ms;
		if (go && !atomic_load(&e->failed)) {
			ck_run(e);
			last = now_ms();
		}
		pthread_mutex_lock(&e->ck_lock);
		if (go) {
			e->ck_rounds++;
			pthread_cond_broadcast(&e->ck_done);
		}
	}
	pthread_mutex_unlock(&e->ck_lock);
	return NULL;
}

static void ck_kick(struct engine *e)
{
	pthread_mutex_lock(&e->ck_lock);
	e->ck_request = true;
	pthread_cond_signal(&e->ck_wake);
	pthread_mutex_unlock(&e->ck_lock);
}

int engine_checkpoint(struct engine *e)
{
	return ck_run(e);
}

/* ---- commit, sync, reads ---- */

/* Writers wait while the overlays are over the memory limit (a checkpoint will free one). */
static void backpressure(struct engine *e)
{
	if (!e->has_thread || atomic_load(&e->nospc) || overlays_bytes(e) < e->opt.mem_limit)
		return;
	atomic_fetch_add(&e->n_backpressure, 1);
	pthread_mutex_lock(&e->ck_lock);
	while (!atomic_load(&e->failed) && !atomic_load(&e->nospc) && !e->stopping) {
		e->ck_request = true;
		pthread_cond_signal(&e->ck_wake);
		pthread_mutex_unlock(&e->ck_lock);
		bool over = overlays_bytes(e) >= e->opt.mem_limit;
		pthread_mutex_lock(&e->ck_lock);
		if (!over)
			break;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&e->ck_done, &e->ck_lock, &until);
	}
	pthread_mutex_unlock(&e->ck_lock);
}

/*
 * Before an append (caller holds commit_lock, so no other append takes room meanwhile, and
 * room found stays): wait until the log's ring has room for a record of `len` payload bytes,
 * asking the checkpoint thread for the checkpoints that release it (without the thread:
 * running one).  ck_due need not have asked: a log under half full and under
 * ckpt_overlay_bytes may still lack room for a big record pushed to the next lap past a pad
 * (check_engine test_big_batch_stream).  0 when there is room; -EIO when the
 * engine failed; -ENOSPC when a checkpoint that ran after the request left the engine short
 * of space and the ring still full (INV-E3): only a checkpoint can make room, and none can
 * succeed on this disk, so waiting on in the log (wal_append's wait) would hold commit_lock
 * for ever, and the unlink that could make room would wait behind it (review H20;
 * check_engine test_nospc_ring_full).  Nothing is logged then.
 */
static int wait_room(struct engine *e, uint64_t len)
{
	if (wal_has_room(e->wal, len))
		return 0; /* the common case: no ck_lock on the commit path */
	if (!e->has_thread) {
		/* Nobody else would release the log (kvfs-check -y commits its repairs so: review
		 * H20): checkpoint here, which empties it.  Under commit_lock, so that no other
		 * commit takes the room between this look and the append (review H21).  Its error
		 * (-ENOSPC on a full disk) is the commit's. */
		int cr = ck_run(e);
		return cr < 0 ? cr : 0;
	}
	int r = 0;
	pthread_mutex_lock(&e->ck_lock);
	while (!e->stopping && !wal_has_room(e->wal, len)) {
		if (atomic_load(&e->failed)) {
			r = -EIO;
			break;
		}
		uint64_t seen = e->ck_rounds;
		e->ck_request = true;
		pthread_cond_signal(&e->ck_wake);
		while (e->ck_rounds == seen && !e->stopping && !atomic_load(&e->failed))
			pthread_cond_wait(&e->ck_done, &e->ck_lock);
		if (e->ck_rounds != seen && atomic_load(&e->nospc) &&
		    !wal_has_room(e->wal, len)) {
			r = -ENOSPC;
			break;
		}
	}
	pthread_mutex_unlock(&e->ck_lock);
	return r;
}

/* Log a batch with values by reference: the pieces of its record, the buffer's bytes between
 * those values and the values where they lie, in one gathered append (wal_append_gather; the
 * header is built in the buffer's room for it).  wal_append_gather's returns; -ENOMEM. */
static int batch_log_gather(struct engine *e, struct engine_batch *b, lsn_t *end,
			    const void **mapped)
{
	size_t want = 2 * b->n_ext + 1;
	if (want > b->iov_cap) {
		struct iovec *v = realloc(b->iov, want * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->iov = v;
		b->iov_cap = want;
	}
	struct iovec *v = b->iov;
	size_t n = 0, from = 0; /* from: the next buffer byte, as an offset into the ops */
	/* the op count, then the ops up to the first value by reference */
	v[n++] = (struct iovec){ b->buf + WAL_REC_HDR, 4 + b->ext[0].at };
	for (size_t k = 0; k < b->n_ext; k++) {
		from = b->ext[k].at;
		v[n++] = (struct iovec){ (void *)b->ext[k].p, b->ext[k].n };
		size_t to = k + 1 < b->n_ext ? b->ext[k + 1].at : b->blen;
		v[n++] = (struct iovec){ b->buf + BATCH_HEAD + from, to - from };
	}
	return wal_append_gather(e->wal, ENGINE_REC_BATCH, b->buf, v, (int)n, end, mapped);
}

/* The batch as one record, values by reference copied in: BATCH_HEAD bytes of room (the
 * header and the op count), the ops, BATCH_TAIL bytes of room (for a log without a mapping,
 * whose gathered appends would take their checksum from the values, which a racing caller
 * may change: log.h wal_append_gather).  NULL on out of memory.  The caller frees it. */
static uint8_t *batch_flatten(const struct engine_batch *b)
{
	uint8_t *f = malloc(BATCH_HEAD + b->len + BATCH_TAIL), *q = f + BATCH_HEAD;
	if (!f)
		return NULL;
	st32(f + WAL_REC_HDR, b->nops);
	size_t from = 0;
	for (size_t k = 0; k < b->n_ext; k++) {
		memcpy(q, b->buf + BATCH_HEAD + from, b->ext[k].at - from);
		q += b->ext[k].at - from;
		memcpy(q, b->ext[k].p, b->ext[k].n);
		q += b->ext[k].n;
		from = b->ext[k].at;
	}
	memcpy(q, b->buf + BATCH_HEAD + from, b->blen - from);
	return f;
}

int engine_commit(struct engine *e, struct engine_batch *b, uint64_t *lsn)
{
	if (e->rdonly)
		return -EROFS;
	if (atomic_load(&e->failed))
		return -EIO;
	if (b->nops == 0) {
		if (lsn)
			*lsn = atomic_load(&e->last_lsn);
		return 0;
	}
	bool nospc = atomic_load(&e->nospc);
	if (nospc && (b->ndel == 0 || b->put_bytes > NOSPC_PUT_BYTES))
		return -ENOSPC; /* INV-E3: nothing logged, nothing changed */
	backpressure(e);
	st32(b->buf + WAL_REC_HDR, b->nops); /* the record's payload: op count, then the ops */
	pthread_mutex_lock(&e->commit_lock);
	if (atomic_load(&e->failed)) {
		pthread_mutex_unlock(&e->commit_lock);
		return -EIO;
	}
	int wr = wait_room(e, 4 + (uint64_t)b->len);
	if (wr < 0) {
		pthread_mutex_unlock(&e->commit_lock);
		return wr;
	}
	lsn_t end;
	const void *mapped = NULL;
	/* Values by reference go from where they lie on a mapped log; without a mapping the
	 * record is flattened first (batch_flatten), and its values are copied from there. */
	uint8_t *flat = NULL;
	if (b->n_ext && !wal_mapped(e->wal) && !(flat = batch_flatten(b))) {
		pthread_mutex_unlock(&e->commit_lock);
		return -ENOMEM;
	}
	int r = flat ? wal_append_mapped(e->wal, ENGINE_REC_BATCH, flat, 4 + (uint64_t)b->len,
					 &end, &mapped)
	      : b->n_ext ? batch_log_gather(e, b, &end, &mapped)
			 : wal_append_mapped(e->wal, ENGINE_REC_BATCH, b->buf, 4 + (uint64_t)b->len,
					     &end, &mapped);
	if (r < 0) {
		free(flat);
		pthread_mutex_unlock(&e->commit_lock);
		if (r == -EFBIG) {
			uint64_t want = atomic_load(&e->ring_short);
			return want && BATCH_HEAD + b->len <= want / 2 ? -ENOSPC : r;
		}
		return eng_fail(e, r == -ENOSPC ? r : -EIO);
	}
	/* The entries point into the record in the log's mapping ("Values stay in the log"): its
	 * ops after the op count, the bytes as written.  Without a mapping, values are copied
	 * from the record as built (the batch's buffer, or its flattened copy). */
	const uint8_t *ops = mapped ? (const uint8_t *)mapped + 4
			   : (flat ? flat : b->buf) + BATCH_HEAD;
	pthread_rwlock_wrlock(&e->ov_lock);
	r = batch_apply(e->active, b->nops, ops, b->len, mapped != NULL);
	if (r == 0)
		overlay_set_lsn(e->active, end);
	pthread_rwlock_unlock(&e->ov_lock);
	free(flat);
	if (r < 0) { /* logged but not applied: reads would not show it; stop here */
		pthread_mutex_unlock(&e->commit_lock);
		return eng_fail(e, r);
	}
	atomic_store(&e->last_lsn, end);
	atomic_fetch_add(&e->n_commits, 1); /* after the overlay changed: engine_iter relies on it */
	pthread_mutex_unlock(&e->commit_lock);
	if (lsn)
		*lsn = end;
	if (e->has_thread && (nospc || ck_due(e)))
		ck_kick(e); /* short of space: a delete may have made room */
	if (e->opt.sync_every_write)
		return engine_sync(e, end);
	return 0;
}

int engine_sync(struct engine *e, uint64_t lsn)
{
	if (e->rdonly)
		return 0;
	atomic_fetch_add(&e->n_sync_calls, 1);
	if (atomic_load(&e->failed))
		return -EIO;
	if (lsn == 0)
		lsn = atomic_load(&e->last_lsn);
	int r = wal_wait_durable(e->wal, lsn);
	if (r < 0)
		return eng_fail(e, -EIO);
	return 0;
}

static int copy_out(const struct store_val *v, void *buf, size_t cap, size_t *vlen)
{
	if (cap && v->len)
		memcpy(buf, v->data, v->len < cap ? v->len : cap);
	*vlen = v->len;
	return 0;
}

/* Look key up in the shared snapshot (ov_lock held shared), through the caller's finger f
 * (NULL: none): 0 (copied), -ENOENT, -errno. */
static int tree_get(struct engine *e, struct store_finger *f, unsigned tree, const void *key,
		    size_t klen, void *buf, size_t cap, size_t *vlen)
{
	struct store_val v;
	if (!e->snap_tree[tree])
		return -ENOENT;
	int r = f ? store_get_near(e->snap_tree[tree], f, key, klen, &v)
		  : store_get(e->snap_tree[tree], key, klen, &v);
	if (r == 0)
		copy_out(&v, buf, cap, vlen);
	return r;
}

/* engine_get's lookup, ov_lock held shared (INV-E2): the active overlay, the frozen one (when
 * a checkpoint is running), the snapshot (through finger f, which may be NULL). */
static int get_locked(struct engine *e, struct store_finger *f, unsigned tree, const void *key,
		      size_t klen, void *buf, size_t cap, size_t *vlen)
{
	struct store_val v;
	int r = overlay_get(e->active, tree, key, klen, &v);
	if (r == -ENOENT && e->frozen)
		r = overlay_get(e->frozen, tree, key, klen, &v);
	if (r == 1)
		r = copy_out(&v, buf, cap, vlen);
	else if (r == 0)
		r = -ENOENT;
	else
		r = tree_get(e, f, tree, key, klen, buf, cap, vlen);
	return r;
}

int engine_get(struct engine *e, unsigned tree, const void *key, size_t klen, void *buf,
	       size_t cap, size_t *vlen)
{
	if (tree >= ENGINE_TREES || klen < 1 || klen > STORE_MAX_KEY)
		return -EINVAL;
	pthread_rwlock_rdlock(&e->ov_lock); /* INV-E2 */
	int r = get_locked(e, NULL, tree, key, klen, buf, cap, vlen);
	pthread_rwlock_unlock(&e->ov_lock);
	return r;
}

/* A read of one committed state (engine_read): commits wait for its end, as they wait for
 * any reader (ov_lock held shared).  Neither the snapshot nor its pages change meanwhile (a
 * checkpoint swaps e->snap under ov_lock exclusive), so each tree's lookups go through a
 * finger (store_get_near): consecutive keys, as a file's blocks, cost one B+tree descent per
 * leaf, not one per key.  The fingers die with the read. */
struct engine_read {
	struct engine *e;
	struct store_finger fin[ENGINE_TREES];
};

int engine_read(struct engine *e, int (*fn)(struct engine_read *rd, void *ctx), void *ctx)
{
	struct engine_read rd = { .e = e }; /* fingers zeroed: STORE_FINGER_INIT */
	pthread_rwlock_rdlock(&e->ov_lock); /* INV-E2, and no commit until fn returns */
	int r = fn(&rd, ctx);
	pthread_rwlock_unlock(&e->ov_lock);
	return r;
}

int engine_read_get(struct engine_read *rd, unsigned tree, const void *key, size_t klen,
		    void *buf, size_t cap, size_t *vlen)
{
	if (tree >= ENGINE_TREES || klen < 1 || klen > STORE_MAX_KEY)
		return -EINVAL;
	return get_locked(rd->e, &rd->fin[tree], tree, key, klen, buf, cap, vlen);
}

/* ---- iteration ---- */

/*
 * An iterator reads ahead in runs: one read of the merged sources (a read transaction, one
 * seek of the B+tree cursor and of each overlay) yields up to `want` entries, which are copied
 * into `run` and handed out by the following steps.  Before runs, every step opened a
 * transaction and sought all three sources again: a scan cost a B+tree descent per key
 * (readseq was 0.01-0.08x LMDB).  Runs start small (a caller asking whether a directory is
 * empty wants one entry) and double up to ITER_RUN_MAX entries or about ITER_RUN_BYTES.
 *
 * A run stays exact as long as no commit has changed the merged view since it was read: the
 * view changes only by commits (a checkpoint moves entries from the overlays into the tree
 * without changing what the merge yields), and n_commits counts them.  A step that finds
 * n_commits moved on discards the rest of the run and reads a new one after the last key it
 * handed out, so each step still sees the latest committed state, as before runs.  n_commits
 * is bumped after the overlay is changed, so a run read at count N holds every commit up to
 * N (or more: then it is merely read again).
 */
#define ITER_RUN_FIRST 4
#define ITER_RUN_MAX 256
#define ITER_RUN_BYTES (64u << 10)

struct iter_ent {
	size_t off;  /* of the key in run; the value follows it */
	size_t klen, vlen;
};

struct engine_iter {
	struct engine *e;
	unsigned tree;
	uint8_t *lo, *hi;
	size_t lolen, hilen;
	uint8_t last[STORE_MAX_KEY]; /* the last key read into a run (or a tombstone's) */
	size_t lastlen;
	bool started;  /* last is set */
	bool at_end;   /* the last run reached the end of the range */
	int err;       /* an error met after the run's entries: returned once they are out */
	unsigned want; /* entries the next run reads */
	uint64_t gen;  /* n_commits when the run was read */
	uint8_t from[STORE_MAX_KEY]; /* the position before the run: last, lastlen, started */
	size_t fromlen;
	bool from_started;
	uint8_t *run;  /* keys and values of the current run */
	size_t run_len, run_cap;
	struct iter_ent *ents;
	unsigned n_ents, next_ent;
};

int engine_iter_new(struct engine *e, unsigned tree, const void *lo, size_t lolen,
		    const void *hi, size_t hilen, struct engine_iter **out)
{
	if (tree >= ENGINE_TREES || lolen > STORE_MAX_KEY || hilen > STORE_MAX_KEY + 1)
		return -EINVAL;
	struct engine_iter *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->e = e;
	it->tree = tree;
	it->want = ITER_RUN_FIRST;
	if (lo && lolen) {
		it->lo = malloc(lolen);
		if (!it->lo)
			goto nomem;
		memcpy(it->lo, lo, lolen);
		it->lolen = lolen;
	}
	if (hi && hilen) {
		it->hi = malloc(hilen);
		if (!it->hi)
			goto nomem;
		memcpy(it->hi, hi, hilen);
		it->hilen = hilen;
	}
	it->ents = malloc(ITER_RUN_MAX * sizeof(*it->ents));
	if (!it->ents)
		goto nomem;
	*out = it;
	return 0;
nomem:
	engine_iter_free(it);
	return -ENOMEM;
}

void engine_iter_free(struct engine_iter *it)
{
	if (!it)
		return;
	free(it->lo);
	free(it->hi);
	free(it->run);
	free(it->ents);
	free(it);
}

/* One source of a run: its current key and value, when it has one inside the range. */
struct cand {
	bool has;
	struct store_val key, val;
	bool tombstone;
};

static bool after_pos(const struct engine_iter *it, const struct store_val *k)
{
	if (!it->started)
		return true;
	const uint8_t *kk = k->data;
	size_t n = k->len < it->lastlen ? k->len : it->lastlen;
	int c = n ? memcmp(kk, it->last, n) : 0;
	return c > 0 || (c == 0 && k->len > it->lastlen);
}

static bool below_hi(const struct engine_iter *it, const struct store_val *k)
{
	if (!it->hi)
		return true;
	size_t n = k->len < it->hilen ? k->len : it->hilen;
	int c = n ? memcmp(k->data, it->hi, n) : 0;
	return c < 0 || (c == 0 && k->len < it->hilen);
}

static int key_order(const struct store_val *a, const struct store_val *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->data, b->data, n) : 0;
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Set c from an overlay iterator's position r (0: on a key, -ENOENT: past the end). */
static int ov_load(const struct engine_iter *it, struct overlay_iter *oi, int r, struct cand *c)
{
	c->has = false;
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	overlay_iter_get(oi, &c->key, &c->val, &c->tombstone);
	c->has = below_hi(it, &c->key);
	return 0;
}

/* Position an overlay's iterator on the first key after the iterator's position. */
static int ov_first(const struct engine_iter *it, const struct overlay *ov, struct cand *c,
		    struct overlay_iter **oi)
{
	c->has = false;
	if (!ov)
		return 0;
	int r = overlay_iter_new(ov, it->tree, oi);
	if (r < 0)
		return r;
	if (it->started)
		r = overlay_iter_seek(*oi, it->last, it->lastlen);
	else if (it->lo)
		r = overlay_iter_seek(*oi, it->lo, it->lolen);
	else
		r = overlay_iter_first(*oi);
	if (r == 0) {
		struct store_val k, v;
		bool tomb;
		overlay_iter_get(*oi, &k, &v, &tomb);
		if (!after_pos(it, &k)) /* seek lands on last itself */
			r = overlay_iter_next(*oi);
	}
	return ov_load(it, *oi, r, c);
}

/* Set c from the cursor's position r (the cursor's range bounds it). */
static int cur_load(struct store_cursor *cur, int r, struct cand *c)
{
	c->has = false;
	c->tombstone = false;
	if (r == 0)
		r = store_cursor_get(cur, &c->key, &c->val);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	c->has = true;
	return 0;
}

static int cur_first(const struct engine_iter *it, struct store_cursor *cur, struct cand *c)
{
	int r = it->started ? store_cursor_seek(cur, it->last, it->lastlen) :
		store_cursor_first(cur);
	if ((r = cur_load(cur, r, c)) < 0 || !c->has || after_pos(it, &c->key))
		return r;
	return cur_load(cur, store_cursor_next(cur), c);
}

/* Append an entry to the run.  0 or -ENOMEM. */
static int run_add(struct engine_iter *it, const struct store_val *k, const struct store_val *v)
{
	size_t need = it->run_len + k->len + v->len;
	if (buf_reserve(&it->run, &it->run_cap, need, 4096) < 0)
		return -ENOMEM;
	struct iter_ent *en = &it->ents[it->n_ents++];
	en->off = it->run_len;
	en->klen = k->len;
	en->vlen = v->len;
	memcpy(it->run + it->run_len, k->data, k->len);
	if (v->len)
		memcpy(it->run + it->run_len + k->len, v->data, v->len);
	it->run_len = need;
	return 0;
}

/*
 * Read the next run: merge the active overlay, the frozen one and the B+tree from the
 * iterator's position, the smallest key first, and on equal keys the active overlay over the
 * frozen one over the tree; tombstones hide what they shadow and are not entries.  An error
 * after some entries is kept in it->err for when they are out.
 */
static int iter_fill(struct engine_iter *it)
{
	struct engine *e = it->e;
	it->n_ents = it->next_ent = 0;
	it->run_len = 0;
	it->from_started = it->started;
	it->fromlen = it->lastlen;
	memcpy(it->from, it->last, it->lastlen);
	pthread_rwlock_rdlock(&e->ov_lock);
	it->gen = atomic_load(&e->n_commits);
	struct store_txn *txn = NULL;
	struct store_cursor *cur = NULL;
	struct overlay_iter *ai = NULL, *fi = NULL;
	struct cand ca, cf, ct = { 0 };
	char name[4];
	tree_name(it->tree, name);
	struct store_tree *t;
	int r = store_txn_begin(e->st, STORE_TXN_RDONLY, &txn);
	if (r == 0) {
		r = store_tree_open(txn, name, 2, false, &t);
		if (r == 0)
			r = store_cursor_open(t, &cur);
		if (r == 0)
			r = store_cursor_set_range(cur, it->lo, it->lolen, it->hi, it->hilen);
		else if (r == -ENOENT)
			r = 0; /* no tree yet: the overlays only */
	}
	if (r == 0)
		r = ov_first(it, e->active, &ca, &ai);
	if (r == 0)
		r = ov_first(it, e->frozen, &cf, &fi);
	if (r == 0 && cur)
		r = cur_first(it, cur, &ct);
	uint64_t tombstones = 0;
	while (r == 0 && it->n_ents < it->want && it->run_len < ITER_RUN_BYTES) {
		struct cand *best = NULL;
		struct cand *order[3] = { &ca, &cf, &ct };
		for (int i = 0; i < 3; i++)
			if (order[i]->has && (!best || key_order(&order[i]->key, &best->key) < 0))
				best = order[i];
		if (!best) {
			it->at_end = true;
			break;
		}
		tombstones += best->tombstone;
		if (!best->tombstone && (r = run_add(it, &best->key, &best->val)) < 0)
			break;
		memcpy(it->last, best->key.data, best->key.len);
		it->lastlen = best->key.len;
		it->started = true;
		/* step every source on this key (the shadowed ones too) */
		if (ca.has && !after_pos(it, &ca.key))
			r = ov_load(it, ai, overlay_iter_next(ai), &ca);
		if (r == 0 && cf.has && !after_pos(it, &cf.key))
			r = ov_load(it, fi, overlay_iter_next(fi), &cf);
		if (r == 0 && ct.has && !after_pos(it, &ct.key))
			r = cur_load(cur, store_cursor_next(cur), &ct);
	}
	overlay_iter_free(ai);
	overlay_iter_free(fi);
	if (txn)
		store_txn_abort(txn);
	pthread_rwlock_unlock(&e->ov_lock);
	if (tombstones)
		atomic_fetch_add(&e->n_iter_tombstones, tombstones);
	if (it->want < ITER_RUN_MAX)
		it->want *= 2;
	if (r < 0 && it->n_ents) {
		it->err = r;
		r = 0;
	}
	return r;
}

/* A commit since the run was read: forget what was not handed out yet, and go back to the
 * last key handed out (or to where the run began). */
static void iter_rewind(struct engine_iter *it)
{
	if (it->next_ent) {
		const struct iter_ent *en = &it->ents[it->next_ent - 1];
		memcpy(it->last, it->run + en->off, en->klen);
		it->lastlen = en->klen;
		it->started = true;
	} else {
		memcpy(it->last, it->from, it->fromlen);
		it->lastlen = it->fromlen;
		it->started = it->from_started;
	}
	it->n_ents = it->next_ent = 0;
	it->at_end = false;
	it->err = 0;
	it->want = ITER_RUN_FIRST; /* a walk that commits as it goes reads short runs */
}

int engine_iter_next(struct engine_iter *it, void *key, size_t kcap, size_t *klen, void *val,
		     size_t vcap, size_t *vlen)
{
	if ((it->n_ents || it->at_end) && atomic_load(&it->e->n_commits) != it->gen)
		iter_rewind(it);
	if (it->next_ent == it->n_ents) {
		if (it->err) {
			int r = it->err;
			it->err = 0;
			return r;
		}
		if (it->at_end)
			return -ENOENT;
		int r = iter_fill(it);
		if (r < 0)
			return r;
		if (it->n_ents == 0)
			return -ENOENT; /* at_end */
	}
	const struct iter_ent *en = &it->ents[it->next_ent++];
	const uint8_t *k = it->run + en->off;
	if (kcap && key)
		memcpy(key, k, en->klen < kcap ? en->klen : kcap);
	*klen = en->klen;
	struct store_val v = { k + en->klen, en->vlen };
	return copy_out(&v, val, vcap, vlen);
}

/* ---- open / close ---- */

static int replay(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len)
{
	struct engine *e = ctx;
	if (type != ENGINE_REC_BATCH || len < 4) {
		eng_logf(e, "log record at LSN %llu: unknown type %u or short payload",
			 (unsigned long long)lsn, type);
		return -EUCLEAN;
	}
	int r = engine_record_decode(payload, len, overlay_op, e->active);
	if (r == -EUCLEAN)
		eng_logf(e, "log record at LSN %llu does not decode", (unsigned long long)lsn);
	if (r < 0)
		return r;
	lsn_t end = lsn + ((WAL_REC_HDR + len + 7) & ~(uint64_t)7);
	overlay_set_lsn(e->active, end);
	atomic_store(&e->last_lsn, end);
	return 0;
}

static void engine_free(struct engine *e)
{
	if (e->snap)
		store_txn_abort(e->snap);
	if (e->wal)
		wal_close(e->wal);
	if (e->st)
		store_close(e->st);
	overlay_free(e->active);
	overlay_free(e->frozen);
	pthread_mutex_destroy(&e->ck_run_lock);
	pthread_mutex_destroy(&e->commit_lock);
	pthread_rwlock_destroy(&e->ov_lock);
	pthread_mutex_destroy(&e->ck_lock);
	pthread_cond_destroy(&e->ck_wake);
	pthread_cond_destroy(&e->ck_done);
	free(e->path);
	free(e);
}

/*
 * The log's ring, sized to the store (as mke2fs sizes ext4's journal to the file system).
 * The ring costs its whole size on disk from the start (it is preallocated), and what it buys
 * is room: a checkpoint starts when the log is half full (ck_due) or the overlay holds
 * ckpt_overlay_bytes, and writers go on appending into the other half while it runs; they
 * wait for room (wal_append) only if they fill it before the checkpoint ends.  A checkpoint
 * takes longer the larger the tree, so a small store needs little room and a large one more:
 *   target = data file bytes / 8, rounded up to a MiB, within [lo, hi], where
 *   lo = max(2 x ckpt_overlay_bytes, RING_FLOOR) and hi = max(4 x ckpt_overlay_bytes, lo)
 * (with the defaults 36 to 64 MiB; 64 MiB, the old fixed size, from a 512 MiB data file on).
 * RING_FLOOR: every record must fit in half the ring (wal_append, -EFBIG), and the largest
 * change the library makes as one record is a 16 MiB put (namespace.c PUT_ATOMIC_MAX):
 * 4096 blocks of 4096 bytes at 4120 bytes each in the record, 16.1 MiB, plus the deletes of
 * the blocks of a file it replaces (24 bytes per 4 KiB) and a few inode and dirent ops; a
 * 32 MiB ring (16 MiB halves) would refuse every 16 MiB put.  36 MiB leaves 1.9 MiB for those:
 * the replacement of a file of up to about 300 MiB in one put, and a kvfs-bench fill batch of
 * 16 MiB of values of 4 KiB or more.  Over data file / 8, the log never costs more than an
 * eighth of the data file, except under the floor; a checkpoint of a large store gets up to
 * 4 x ckpt_overlay_bytes of room, as before.  The ring changes only while the log is empty
 * (wal_resize): at clean close after the final checkpoint, and at open when recovery found
 * nothing to replay, and only when the target differs from the ring by more than a quarter
 * (so a store whose size hovers near a boundary does not rewrite its log at every open).  An
 * explicit opt->log_ring_bytes is the ring of a new log and is never changed.
 *
 * At rest (ring_rest), a closed store's log is only WAL_MIN_RING (1 MiB) + its header: the
 * clean close, after the final checkpoint has emptied the log, shrinks the ring, and the next
 * open grows it back (ring_fit finds it far from the target).  A closed store then costs its
 * data file and 1 MiB, not the data file and 36-64 MiB of ring (SQLite deletes its -wal file
 * at the last close for the same reason); and the open after a clean close scans 1 MiB for
 * stale records (wal_recover), not the whole ring.  The price: a header write and sync and a
 * truncation at close, an allocation and two syncs at open.  A store that was not closed
 * cleanly keeps its full ring, which holds what recovery replays.  If the disk has no room to
 * grow the ring at open, the store opens with the small ring (logged): a record over half of it
 * fails with -ENOSPC until a later open finds the room.
 */
#define RING_FLOOR (36ull << 20)

static uint64_t ring_target(const struct engine_options *opt, uint64_t data_bytes)
{
	uint64_t ck = opt && opt->ckpt_overlay_bytes ? opt->ckpt_overlay_bytes :
		      ENGINE_DEFAULT_CKPT_BYTES;
	uint64_t lo = 2 * ck > RING_FLOOR ? 2 * ck : RING_FLOOR;
	uint64_t hi = 4 * ck > lo ? 4 * ck : lo;
	uint64_t t = (data_bytes / 8 + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	t = t < lo ? lo : t > hi ? hi : t;
	return t > WAL_MAX_RING ? WAL_MAX_RING : t;
}

uint64_t engine_log_ring_bytes(const struct engine_options *opt)
{
	if (opt && opt->log_ring_bytes)
		return opt->log_ring_bytes;
	return ring_target(opt, 0); /* a new store's: the smallest */
}

/*
 * At open, the log empty and its size automatic: resize the ring to the store's target when
 * it is more than a quarter off (always, from the ring at rest).  0, or wal_resize's error;
 * -ENOSPC from growing is not one (the ring stays; ring_short).
 */
static int ring_fit(struct engine *e)
{
	struct store_stat ss;
	struct wal_stat ws;
	int r;

	if (!e->opt.log_ring_bytes && store_stat(e->st, &ss) == 0) {
		uint64_t t = ring_target(&e->opt, ss.file_bytes);
		wal_stat(e->wal, &ws);
		uint64_t d = t > ws.ring_bytes ? t - ws.ring_bytes : ws.ring_bytes - t;
		if (4 * d > ws.ring_bytes) {
			r = wal_resize(e->wal, t); /* a new salt too */
			atomic_store(&e->ring_short, r == -ENOSPC && t > ws.ring_bytes ? t : 0);
			if (r != -ENOSPC)
				return r;
			eng_logf(e, "the log ring stays %llu bytes (the disk has no room for %llu)",
				 (unsigned long long)ws.ring_bytes, (unsigned long long)t);
		}
	}
	return 0;
}

/* With records replayed (the ring cannot change now): an automatic ring below the smallest
 * automatic ring (a log at rest whose growth failed at an earlier open) sets ring_short, as a
 * failed growth in ring_fit does. */
static void ring_short_note(struct engine *e)
{
	struct store_stat ss;
	struct wal_stat ws;

	if (e->opt.log_ring_bytes || store_stat(e->st, &ss) < 0)
		return;
	uint64_t t = ring_target(&e->opt, ss.file_bytes);
	wal_stat(e->wal, &ws);
	atomic_store(&e->ring_short, ws.ring_bytes < ring_target(&e->opt, 0) ? t : 0);
}

/*
 * At a clean close, the log empty: shrink an automatic ring to its size at rest (top of
 * section), else renew the salt as wal_reset does.  0 or wal_resize's / wal_reset's error.
 */
static int ring_rest(struct engine *e)
{
	struct wal_stat ws;

	if (e->opt.log_ring_bytes)
		return wal_reset(e->wal); /* an explicit ring: a new salt only */
	wal_stat(e->wal, &ws);
	return ws.ring_bytes == WAL_MIN_RING ? wal_reset(e->wal) : wal_resize(e->wal, WAL_MIN_RING);
}

int engine_open(const char *path, const struct engine_options *opt, struct engine **out)
{
	struct engine_options dflt;
	if (!opt) {
		memset(&dflt, 0, sizeof(dflt));
		opt = &dflt;
	}
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->opt = *opt;
	if (!e->opt.ckpt_overlay_bytes)
		e->opt.ckpt_overlay_bytes = ENGINE_DEFAULT_CKPT_BYTES;
	if (!e->opt.ckpt_piece_pages)
		e->opt.ckpt_piece_pages = ENGINE_DEFAULT_PIECE_PAGES;
	if (!e->opt.ckpt_interval_ms)
		e->opt.ckpt_interval_ms = 30000;
	if (!e->opt.mem_limit)
		e->opt.mem_limit = 4 * e->opt.ckpt_overlay_bytes;
	/* e->opt.log_ring_bytes stays the caller's: 0 means sized to the store (ring_fit) */
	e->rdonly = opt->flags & STORE_RDONLY;
	pthread_mutex_init(&e->ck_run_lock, NULL);
	pthread_mutex_init(&e->commit_lock, NULL);
	/* Writers first: a commit waiting for ov_lock stops new readers, so that readers that
	 * keep the lock shared without a gap (several threads reading in a loop) cannot hold a
	 * commit off: with glibc's default (readers first), 3 threads reading one key on 2 cores
	 * stretched 20,000 puts from 0.5 s to 11-21 s.  No reader takes ov_lock twice (a nested
	 * read would deadlock behind a waiting writer): engine_read's callbacks read through
	 * engine_read_get, which does not lock. */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->ov_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&e->ck_lock, NULL);
	pthread_cond_init(&e->ck_wake, NULL);
	pthread_cond_init(&e->ck_done, NULL);
	size_t plen = strlen(path);
	e->path = malloc(plen + 5);
	e->active = overlay_new();
	if (!e->path || !e->active) {
		engine_free(e);
		return -ENOMEM;
	}
	memcpy(e->path, path, plen + 1);
	struct io_env *io = opt->io ? opt->io : io_posix_env();

	/* A data file about to be created must not meet an old log: remove any. */
	struct io_file *probe;
	int r = io_open(io, path, IO_OPEN_RDONLY, 0, &probe);
	bool exists = r == 0;
	if (exists)
		io_close(probe);
	char *wal_path = malloc(plen + 5);
	if (!wal_path) {
		engine_free(e);
		return -ENOMEM;
	}
	memcpy(wal_path, path, plen);
	memcpy(wal_path + plen, "-wal", 5);
	if (!exists && (opt->flags & STORE_CREATE) && !e->rdonly)
		io->unlink(io, wal_path);

	struct store_options so = {
		.flags = opt->flags, .mode = opt->mode, .io = opt->io,
		.log = opt->log, .log_ctx = opt->log_ctx,
	};
	r = store_open(path, &so, &e->st);
	if (r < 0) {
		e->st = NULL;
		goto fail;
	}
	struct wal_options wo = {
		.io = opt->io, .create = !e->rdonly, .rdonly = e->rdonly,
		.ring_bytes = engine_log_ring_bytes(&e->opt), .no_map = opt->no_log_map,
		.log = opt->log, .log_ctx = opt->log_ctx,
	};
	if (exists && !e->rdonly) {
		/* An existing store whose log is gone: the records after its last checkpoint (if
		 * any) are lost.  Say so; the new log starts where the data file left off. */
		struct io_file *lp;
		int lr = io_open(io, wal_path, IO_OPEN_RDONLY, 0, &lp);
		if (lr == -ENOENT)
			eng_logf(e, "the log %s is missing: creating an empty one (changes after the "
				 "last checkpoint, if there were any, are lost)", wal_path);
		else if (lr == 0)
			io_close(lp);
	}
	r = wal_open(wal_path, &wo, &e->wal);
	if (r == -ENOENT && e->rdonly) {
		e->wal = NULL; /* read-only without a log: the last checkpoint is the state */
		r = 0;
	}
	if (r < 0) {
		e->wal = NULL;
		goto fail;
	}
	if ((r = snap_refresh(e)) < 0)
		goto fail;
	lsn_t from = store_txn_lsn(e->snap);
	atomic_store(&e->last_lsn, from);
	if (e->wal) {
		lsn_t end;
		r = wal_recover(e->wal, from, replay, e, &end);
		if (r < 0)
			goto fail;
		atomic_store(&e->last_lsn, end);
		/* Nothing to replay: the log is empty, the time to size its ring to the store
		 * (a store that grew or shrank since, a log at rest, or a log of an older default
		 * size).  Records replayed: the ring stays; if it is still short of its target
		 * (a log at rest that could not grow at an earlier open), say so as ring_fit
		 * does, so that a record too big for it is -ENOSPC. */
		if (!e->rdonly && wal_used(e->wal) == 0 && (r = ring_fit(e)) < 0)
			goto fail;
		if (!e->rdonly && wal_used(e->wal) != 0)
			ring_short_note(e);
	}
	if (!e->rdonly && !opt->no_checkpoint_thread) {
		if (pthread_create(&e->thread, NULL, ck_thread, e) != 0) {
			r = -EAGAIN;
			goto fail;
		}
		e->has_thread = true;
	}
	free(wal_path);
	*out = e;
	return 0;
fail:
	free(wal_path);
	engine_free(e);
	return r;
}

int engine_close(struct engine *e)
{
	if (!e)
		return 0;
	if (e->has_thread) {
		pthread_mutex_lock(&e->ck_lock);
		e->stopping = true;
		pthread_cond_broadcast(&e->ck_wake);
		pthread_cond_broadcast(&e->ck_done);
		pthread_mutex_unlock(&e->ck_lock);
		pthread_join(e->thread, NULL);
	}
	int r = 0;
	if (!e->rdonly && e->wal) {
		r = ck_run(e);
		if (r == 0 && atomic_load(&e->failed))
			r = -EIO;
		if (r == 0 && wal_used(e->wal) == 0)
			r = ring_rest(e); /* a new salt (and the ring at rest) */
	}
	engine_free(e);
	return r;
}

/* ---- statistics ---- */

int engine_stat(struct engine *e, struct engine_stat *out)
{
	memset(out, 0, sizeof(*out));
	int r = store_stat(e->st, &out->store);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&e->ov_lock);
	out->overlay_bytes = overlay_bytes(e->active) + (e->frozen ? overlay_bytes(e->frozen) : 0);
	out->overlay_entries =
		overlay_count(e->active) + (e->frozen ? overlay_count(e->frozen) : 0);
	pthread_rwlock_unlock(&e->ov_lock);
	if (e->wal) {
		struct wal_stat ws;
		wal_stat(e->wal, &ws);
		out->log_bytes = ws.end - ws.released;
		out->log_ring_bytes = ws.ring_bytes;
		out->n_fdatasync = ws.n_syncs;
	}
	out->n_checkpoints = atomic_load(&e->n_checkpoints);
	out->n_sync_calls = atomic_load(&e->n_sync_calls);
	out->n_commits = atomic_load(&e->n_commits);
	out->n_backpressure = atomic_load(&e->n_backpressure);
	out->n_iter_tombstones = atomic_load(&e->n_iter_tombstones);
	out->short_of_space = atomic_load(&e->nospc);
	return 0;
}

struct store *engine_store(struct engine *e)
{
	return e->st;
}
