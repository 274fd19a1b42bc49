/*
 * store/txn.c — opening and closing a store, read snapshots, write transactions and commit,
 * the reader table, statistics.
 *
 * Commit protocol (INV-1: a page either meta page can reach is never overwritten):
 *   1. every changed tree is rebalanced and spilled to newly allocated pages (node.c), the
 *      catalog records the new roots, and the free list records what was freed (freelist.c)
 *      — all new pages, none reachable from either meta page on disk;
 *   2. durable commit: fdatasync the file (the new pages, and the file size), then write the
 *      meta page into the slot holding the older meta page, and fdatasync again;
 *      STORE_COMMIT_NOSYNC: skip this step — the meta stays in memory until a durable commit
 *      or store_sync(), and a crash returns to the last durable commit;
 *   3. publish the meta to readers.
 * A crash before the second fdatasync completes leaves the other meta page current; one during
 * the meta write leaves a torn meta page, which open() rejects by checksum, falling back.
 *
 * Readers (snapshots) never lock.  The published meta lives in two slots guarded by a seqlock
 * (pub_seq), indexed by txnid & 1; a reader registers its txnid in a reader slot, then checks
 * that it is still the published one (so that a writer computing its gate either sees the
 * slot, or the reader sees the newer commit and retries).  State machine of a reader slot:
 *   free (busy 0) → claimed (busy 1, txnid 0) → registered (txnid t) → free, by
 *   store_txn_begin → read_register → store_txn_abort/commit.
 *
 * After a failed write or sync (store_fail) every write transaction and commit returns -EIO
 * until the store is reopened.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/txn.h"

/* ---- logging ---- */

void store_logf(struct store *st, const char *fmt, ...)
{
	char msg[512], line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "store %s: %s", st->path, msg);
	if (st->log)
		st->log(st->log_ctx, line);
	else
		fprintf(stderr, "kvfs: %s\n", line);
}

int store_corrupt(struct store *st, pgno_t pgno, const char *file, int line, const char *fmt,
		  ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	store_logf(st, "page %llu: %s (%s:%d)", (unsigned long long)pgno, msg, file, line);
	return -EUCLEAN;
}

int store_fail(struct store *st, int err)
{
	int expected = 0;
	if (atomic_compare_exchange_strong(&st->failed, &expected, err))
		store_logf(st, "I/O error (%s): the store is failed until reopened", strerror(-err));
	return err;
}

const char *store_path(const struct store *st)
{
	return st->path;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- arena ---- */

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	_Alignas(16) uint8_t data[];
};

#define ARENA_CHUNK (256u << 10)
#define ARENA_CACHE_MAX (64u << 20)

void *txn_alloc(struct store_txn *txn, size_t len)
{
	struct store *st = txn->st;
	len = (len + 15) & ~(size_t)15;
	struct arena_chunk *c = txn->arena;
	if (!c || c->cap - c->used < len) {
		struct arena_chunk *n;
		if (len <= ARENA_CHUNK && st->arena_cache) { /* writer only: under write_lock */
			n = st->arena_cache;
			st->arena_cache = n->next;
			st->arena_cached -= ARENA_CHUNK;
		} else {
			size_t cap = len > ARENA_CHUNK ? len : ARENA_CHUNK;
			n = malloc(sizeof(*n) + cap);
			if (!n)
				return NULL;
			n->cap = cap;
		}
		n->used = 0;
		if (c && len > ARENA_CHUNK) { /* keep the current chunk on top */
			n->next = c->next;
			c->next = n;
		} else {
			n->next = c;
			txn->arena = n;
		}
		c = n;
	}
	void *p = c->data + c->used;
	c->used += len;
	return p;
}

/* Give a writer's arena back, keeping standard chunks for the next writer. */
static void arena_release(struct store_txn *txn)
{
	struct store *st = txn->st;
	while (txn->arena) {
		struct arena_chunk *c = txn->arena;
		txn->arena = c->next;
		if (!txn->rdonly && c->cap == ARENA_CHUNK && st->arena_cached < ARENA_CACHE_MAX) {
			c->next = st->arena_cache;
			st->arena_cache = c;
			st->arena_cached += ARENA_CHUNK;
		} else {
			free(c);
		}
	}
}

uint8_t *txn_page_buffer(struct store_txn *txn)
{
	if (txn->n_spare)
		return txn->spare_pages[--txn->n_spare];
	return txn_alloc(txn, STORE_PAGE_SIZE);
}

#define WRITEBACK_MAX_PAGES 4096 /* flush early past 16 MiB of pending pages */

int txn_write_page(struct store_txn *txn, pgno_t pgno, uint8_t *page)
{
	if (txn->n_wb == txn->cap_wb) {
		size_t cap = txn->cap_wb ? txn->cap_wb * 2 : 256;
		struct pending_write *wb = realloc(txn->wb, cap * sizeof(*wb));
		if (!wb)
			return -ENOMEM;
		txn->wb = wb;
		txn->cap_wb = cap;
	}
	txn->wb[txn->n_wb].pgno = pgno;
	txn->wb[txn->n_wb].page = page;
	txn->n_wb++;
	pager_mark_verified(txn->st, pgno);
	if (txn->n_wb >= WRITEBACK_MAX_PAGES)
		return txn_flush_pages(txn);
	return 0;
}

/* Runs up to this many pages are staged (txn_write_run); longer ones are written at once. */
#define RUN_STAGE_MAX 16u

int txn_flush_overflow(struct store_txn *txn)
{
	if (txn->ovf_n == 0)
		return 0;
	size_t n = txn->ovf_n;
	txn->ovf_n = 0;
	return pager_write(txn->st, txn->ovf_pgno, txn->st->staging, n);
}

int txn_write_run(struct store_txn *txn, pgno_t pgno, const void *val, size_t vlen)
{
	struct store *st = txn->st;
	size_t n = (vlen + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE, whole = vlen / STORE_PAGE_SIZE;
	int r;
	bool joins = pgno == txn->ovf_pgno + txn->ovf_n && n <= RUN_STAGE_MAX &&
		     (txn->ovf_n + n) * STORE_PAGE_SIZE <= STAGING_BYTES;
	if (txn->ovf_n && !joins && (r = txn_flush_overflow(txn)) < 0)
		return r;
	if (n > RUN_STAGE_MAX) { /* in place, as a whole; the tail through a zero-padded page */
		if (whole && (r = pager_write(st, pgno, val, whole)) < 0)
			return r;
		if (vlen % STORE_PAGE_SIZE) {
			uint8_t *last = txn_alloc(txn, STORE_PAGE_SIZE);
			if (!last)
				return -ENOMEM;
			memset(last, 0, STORE_PAGE_SIZE);
			memcpy(last, (const uint8_t *)val + whole * STORE_PAGE_SIZE,
			       vlen % STORE_PAGE_SIZE);
			if ((r = pager_write(st, pgno + whole, last, 1)) < 0)
				return r;
		}
		return 0;
	}
	if (!st->staging && !(st->staging = malloc(STAGING_BYTES)))
		return -ENOMEM;
	if (txn->ovf_n == 0)
		txn->ovf_pgno = pgno;
	uint8_t *d = st->staging + txn->ovf_n * STORE_PAGE_SIZE;
	memcpy(d, val, vlen);
	memset(d + vlen, 0, n * STORE_PAGE_SIZE - vlen);
	txn->ovf_n += n;
	return 0;
}

static int wb_cmp(const void *a, const void *b)
{
	const struct pending_write *x = a, *y = b;
	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

int txn_flush_pages(struct store_txn *txn)
{
	struct store *st = txn->st;
	/* first: a page of a staged run freed and reused for a node in this transaction gets
	 * the node's bytes last; and st->staging is free for the runs below */
	int r = txn_flush_overflow(txn);
	if (r < 0 || txn->n_wb == 0)
		return r;
	if (!st->staging && !(st->staging = malloc(STAGING_BYTES)))
		return -ENOMEM;
	qsort(txn->wb, txn->n_wb, sizeof(txn->wb[0]), wb_cmp);
	void **spare = realloc(txn->spare_pages, (txn->n_spare + txn->n_wb) * sizeof(void *));
	if (!spare)
		return -ENOMEM;
	txn->spare_pages = spare;
	for (size_t i = 0; i < txn->n_wb && r == 0;) {
		size_t n = 1;
		while (i + n < txn->n_wb && txn->wb[i + n].pgno == txn->wb[i].pgno + n &&
		       n < STAGING_BYTES / STORE_PAGE_SIZE)
			n++;
		const void *src = txn->wb[i].page;
		if (n > 1) {
			for (size_t k = 0; k < n; k++)
				memcpy(st->staging + k * STORE_PAGE_SIZE, txn->wb[i + k].page,
				       STORE_PAGE_SIZE);
			src = st->staging;
		}
		r = pager_write(st, txn->wb[i].pgno, src, n);
		i += n;
	}
	for (size_t i = 0; i < txn->n_wb; i++)
		txn->spare_pages[txn->n_spare++] = txn->wb[i].page;
	txn->n_wb = 0;
	return r;
}

void *txn_memdup(struct store_txn *txn, const void *p, size_t len)
{
	void *d = txn_alloc(txn, len ? len : 1);
	if (d && len)
		memcpy(d, p, len);
	return d;
}

/* ---- publication (seqlock) ---- */

static void publish(struct store *st, const struct meta *m)
{
	uint64_t w[META_WORDS];
	meta_to_words(m, w);
	unsigned s = m->txnid & 1;
	uint64_t q = atomic_load_explicit(&st->pub_seq[s], memory_order_relaxed);
	atomic_store_explicit(&st->pub_seq[s], q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (int i = 0; i < META_WORDS; i++)
		atomic_store_explicit(&st->pub[s][i], w[i], memory_order_relaxed);
	atomic_store_explicit(&st->pub_seq[s], q + 2, memory_order_release);
	atomic_store(&st->pub_txnid, m->txnid);
}

/* ---- readers ---- */

static struct reader_slot *reader_claim(struct store *st)
{
	struct reader_chunk *c = &st->readers;
	for (;;) {
		for (int i = 0; i < READER_CHUNK; i++) {
			int expected = 0;
			if (atomic_load_explicit(&c->slot[i].busy, memory_order_relaxed) == 0 &&
			    atomic_compare_exchange_strong(&c->slot[i].busy, &expected, 1))
				return &c->slot[i];
		}
		struct reader_chunk *next = atomic_load(&c->next);
		if (!next) {
			struct reader_chunk *fresh = calloc(1, sizeof(*fresh));
			if (!fresh)
				return NULL;
			struct reader_chunk *expected = NULL;
			if (atomic_compare_exchange_strong(&c->next, &expected, fresh))
				next = fresh;
			else {
				free(fresh);
				next = expected;
			}
		}
		c = next;
	}
}

static void reader_release(struct reader_slot *s)
{
	atomic_store(&s->txnid, 0);
	atomic_store(&s->busy, 0);
}

txnid_t store_oldest_reader(struct store *st, uint64_t *since_ns, uint64_t *n_readers)
{
	txnid_t oldest = UINT64_MAX;
	uint64_t since = 0, n = 0;
	for (struct reader_chunk *c = &st->readers; c; c = atomic_load(&c->next)) {
		for (int i = 0; i < READER_CHUNK; i++) {
			txnid_t t = atomic_load(&c->slot[i].txnid);
			if (!t)
				continue;
			n++;
			if (t < oldest) {
				oldest = t;
				since = atomic_load_explicit(&c->slot[i].since_ns,
							     memory_order_relaxed);
			}
		}
	}
	if (since_ns)
		*since_ns = since;
	if (n_readers)
		*n_readers = n;
	return oldest;
}

/* Take a consistent copy of the published meta and register it in `slot`. */
static void read_register(struct store *st, struct reader_slot *slot, struct meta *m)
{
	uint64_t w[META_WORDS];
	atomic_store_explicit(&slot->since_ns, now_ns(), memory_order_relaxed);
	for (;;) {
		uint64_t t = atomic_load(&st->pub_txnid);
		atomic_store(&slot->txnid, t);
		if (atomic_load(&st->pub_txnid) != t)
			continue;
		unsigned s = t & 1;
		uint64_t q = atomic_load_explicit(&st->pub_seq[s], memory_order_acquire);
		if (q & 1)
			continue;
		for (int i = 0; i < META_WORDS; i++)
			w[i] = atomic_load_explicit(&st->pub[s][i], memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&st->pub_seq[s], memory_order_relaxed) != q || w[0] != t)
			continue;
		meta_from_words(w, m);
		return;
	}
}

/* ---- open / create / close ---- */

static int write_meta_durable(struct store *st, const struct meta *m)
{
	int r = io_sync(st->file);
	atomic_fetch_add(&st->n_syncs, 1);
	if (r < 0)
		return store_fail(st, r);
	uint64_t d0 = atomic_load(&st->disk_txnid[0]), d1 = atomic_load(&st->disk_txnid[1]);
	unsigned slot = d0 <= d1 ? 0 : 1; /* the older (or invalid) one */
	uint8_t page[STORE_PAGE_SIZE];
	meta_encode(m, slot, page);
	atomic_store(&st->disk_txnid[slot], 0); /* unknown until synced */
	ssize_t w = io_pwrite(st->file, page, STORE_PAGE_SIZE, (uint64_t)slot * STORE_PAGE_SIZE);
	if (w < 0)
		return store_fail(st, (int)w);
	r = io_sync(st->file);
	atomic_fetch_add(&st->n_syncs, 1);
	if (r < 0)
		return store_fail(st, r);
	atomic_store(&st->disk_txnid[slot], m->txnid);
	st->disk_pages[slot] = m->page_count;
	st->unsynced = false;
	return 0;
}

static int store_create_file(struct store *st)
{
	struct meta m;
	memset(&m, 0, sizeof(m));
	m.txnid = 1;
	m.page_count = FIRST_DATA_PGNO;
	uint8_t pages[META_SLOTS * STORE_PAGE_SIZE];
	for (unsigned slot = 0; slot < META_SLOTS; slot++)
		meta_encode(&m, slot, pages + slot * STORE_PAGE_SIZE);
	ssize_t w = io_pwrite(st->file, pages, sizeof(pages), 0);
	if (w < 0)
		return (int)w;
	return io_sync(st->file);
}

/* 1 when a file shorter than two meta pages is an empty file or a creation that a crash or
 * an I/O error cut short (zeros, or our magic first): it is then safe to initialise.  0 for
 * any other short file, which open refuses untouched. */
static int unfinished_create(struct store *st, uint64_t size)
{
	uint8_t buf[META_SLOTS * STORE_PAGE_SIZE];
	if (size == 0)
		return 1;
	ssize_t n = io_pread(st->file, buf, size, 0);
	if (n < 0)
		return (int)n;
	if ((uint64_t)n != size)
		return -EIO;
	if (size >= 8 + 8 && memcmp(buf + META_MAGIC, STORE_MAGIC, 8) == 0)
		return 1;
	for (uint64_t i = 0; i < size; i++)
		if (buf[i])
			return 0;
	return 1;
}

static void store_free(struct store *st)
{
	if (st->file) {
		pager_destroy(&st->pager);
		io_close(st->file);
	}
	struct reader_chunk *c = atomic_load(&st->readers.next);
	while (c) {
		struct reader_chunk *next = atomic_load(&c->next);
		free(c);
		c = next;
	}
	while (st->arena_cache) {
		struct arena_chunk *a = st->arena_cache;
		st->arena_cache = a->next;
		free(a);
	}
	free(st->staging);
	pthread_mutex_destroy(&st->write_lock);
	free(st->path);
	free(st);
}

/* Read both meta pages and choose the current one.  Nothing is written. */
static int load_meta(struct store *st, uint64_t file_size)
{
	if (file_size < (uint64_t)META_SLOTS * STORE_PAGE_SIZE) {
		store_logf(st, "file of %llu bytes is too short to be a kvfs store",
			   (unsigned long long)file_size);
		return -EINVAL;
	}
	struct meta m[META_SLOTS];
	int err[META_SLOTS];
	uint8_t page[STORE_PAGE_SIZE];
	for (unsigned s = 0; s < META_SLOTS; s++) {
		ssize_t n = io_pread(st->file, page, STORE_PAGE_SIZE, (uint64_t)s * STORE_PAGE_SIZE);
		if (n < 0)
			return (int)n;
		if (n != STORE_PAGE_SIZE)
			return -EINVAL;
		const char *why = NULL;
		err[s] = meta_decode(page, s, &m[s], &why);
		if (err[s])
			store_logf(st, "meta page %u: %s", s, why);
	}
	if (err[0] && err[1]) {
		if (err[0] == -EINVAL && err[1] == -EINVAL)
			return -EINVAL;
		if (err[0] == -EPROTONOSUPPORT || err[1] == -EPROTONOSUPPORT)
			return -EPROTONOSUPPORT;
		store_logf(st, "no valid meta page: the store cannot be opened");
		return -EUCLEAN;
	}
	unsigned cur = err[0] ? 1 : err[1] ? 0 : m[1].txnid > m[0].txnid ? 1 : 0;
	/* A commit never leaves the file shorter than either meta page's page_count (the file
	 * grows before the meta page is written, and shrinks only below both): a short file was
	 * truncated behind our back.  Refuse rather than fall back to older data. */
	if (file_size < m[cur].page_count * STORE_PAGE_SIZE) {
		store_logf(st, "file is %llu bytes, meta page %u says %llu pages: truncated",
			   (unsigned long long)file_size, cur,
			   (unsigned long long)m[cur].page_count);
		return -EUCLEAN;
	}
	if (err[cur ^ 1])
		store_logf(st, "opening from meta page %u (txn %llu)", cur,
			   (unsigned long long)m[cur].txnid);
	for (unsigned s = 0; s < META_SLOTS; s++) {
		atomic_store(&st->disk_txnid[s], err[s] ? 0 : m[s].txnid);
		st->disk_pages[s] = err[s] ? 0 : m[s].page_count;
	}
	st->meta = m[cur];
	return 0;
}

int store_open(const char *path, const struct store_options *opt, struct store **out)
{
	struct store_options dflt;
	if (!opt) {
		memset(&dflt, 0, sizeof(dflt));
		opt = &dflt;
	}
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->path = strdup(path);
	pthread_mutex_init(&st->write_lock, NULL);
	if (!st->path) {
		store_free(st);
		return -ENOMEM;
	}
	st->flags = opt->flags;
	st->env = opt->io ? opt->io : io_posix_env();
	st->log = opt->log;
	st->log_ctx = opt->log_ctx;
	bool rdonly = opt->flags & STORE_RDONLY;
	int r = io_open(st->env, path, rdonly ? IO_OPEN_RDONLY : 0, 0, &st->file);
	if (r == -ENOENT && (opt->flags & STORE_CREATE) && !rdonly)
		r = io_open(st->env, path, IO_OPEN_CREATE, opt->mode ? opt->mode : 0644,
			    &st->file);
	if (r < 0) {
		st->file = NULL;
		store_free(st);
		return r;
	}
	if ((r = io_lock(st->file, rdonly ? IO_LOCK_SHARED : IO_LOCK_EXCL)) < 0) {
		if (r == -EBUSY)
			store_logf(st, "the store is in use by another process (locked)");
		io_close(st->file);
		st->file = NULL;
		store_free(st);
		return r;
	}
	uint64_t size;
	if ((r = io_size(st->file, &size)) < 0)
		goto fail_file;
	if ((opt->flags & STORE_CREATE) && !rdonly && size < META_SLOTS * STORE_PAGE_SIZE &&
	    (r = unfinished_create(st, size)) != 0) {
		if (r < 0)
			goto fail_file;
		if ((r = store_create_file(st)) < 0)
			goto fail_file;
		size = (uint64_t)META_SLOTS * STORE_PAGE_SIZE;
	}
	if ((r = load_meta(st, size)) < 0)
		goto fail_file;
	if ((r = pager_init(st, st->file, size)) < 0) {
		pager_destroy(&st->pager);
		goto fail_file;
	}
	publish(st, &st->meta);
	*out = st;
	return 0;
fail_file:
	io_close(st->file);
	st->file = NULL;
	store_free(st);
	return r;
}

int store_sync(struct store *st)
{
	if (st->flags & STORE_RDONLY)
		return 0;
	pthread_mutex_lock(&st->write_lock);
	int r = atomic_load(&st->failed) ? -EIO : 0;
	if (r == 0 && st->unsynced)
		r = write_meta_durable(st, &st->meta);
	pthread_mutex_unlock(&st->write_lock);
	return r;
}

int store_close(struct store *st)
{
	if (!st)
		return 0;
	int r = 0;
	if (!(st->flags & STORE_RDONLY) && st->unsynced)
		r = atomic_load(&st->failed) ? -EIO : store_sync(st); /* NOSYNC commits lost */
	store_free(st);
	return r;
}

/* ---- transactions ---- */

int store_txn_begin(struct store *st, unsigned flags, struct store_txn **out)
{
	bool rdonly = flags & STORE_TXN_RDONLY;
	if (!rdonly && (st->flags & STORE_RDONLY))
		return -EROFS;
	struct store_txn *txn = calloc(1, sizeof(*txn));
	if (!txn)
		return -ENOMEM;
	txn->st = st;
	txn->rdonly = rdonly;
	if (rdonly) {
		txn->slot = reader_claim(st);
		if (!txn->slot) {
			free(txn);
			return -ENOMEM;
		}
		read_register(st, txn->slot, &txn->meta);
		txn->map = pager_map(&st->pager);
		txn->txnid = txn->meta.txnid;
	} else {
		if (atomic_load(&st->failed)) {
			free(txn);
			return -EIO;
		}
		pthread_mutex_lock(&st->write_lock);
		if (atomic_load(&st->failed)) {
			pthread_mutex_unlock(&st->write_lock);
			free(txn);
			return -EIO;
		}
		txn->meta = st->meta;
		txn->txnid = st->meta.txnid + 1;
		int r = freelist_begin(txn);
		if (r < 0) {
			freelist_end(txn);
			pthread_mutex_unlock(&st->write_lock);
			free(txn);
			return r;
		}
	}
	btree_init(&txn->catalog, txn, &txn->meta.catalog);
	btree_init(&txn->freedb, txn, &txn->meta.freedb);
	*out = txn;
	return 0;
}

uint64_t store_txn_pages(const struct store_txn *txn)
{
	return txn->rdonly ? 0 : txn->n_pages - txn->n_ovf_new + txn->n_ovf_freed;
}

txnid_t store_txn_id(const struct store_txn *txn)
{
	return txn->txnid;
}

lsn_t store_txn_lsn(const struct store_txn *txn)
{
	return txn->meta.lsn;
}

void store_txn_set_lsn(struct store_txn *txn, lsn_t lsn)
{
	if (!txn->rdonly && txn->meta.lsn != lsn) {
		txn->meta.lsn = lsn;
		txn->mod_seq++;
	}
}

static void txn_free(struct store_txn *txn)
{
	cursors_free(txn);
	while (txn->trees) {
		struct store_tree *t = txn->trees;
		txn->trees = t->next;
		free(t);
	}
	while (txn->nodes) {
		struct node *nd = txn->nodes;
		txn->nodes = nd->all_next;
		free(nd->e);
		free(nd);
	}
	arena_release(txn);
	free(txn->wb);
	free(txn->spare_pages);
	if (txn->rdonly) {
		reader_release(txn->slot);
	} else {
		freelist_end(txn);
		pthread_mutex_unlock(&txn->st->write_lock);
	}
	free(txn);
}

void store_txn_abort(struct store_txn *txn)
{
	if (txn)
		txn_free(txn);
}

static int commit_trees(struct store_txn *txn)
{
	int r;
	for (struct store_tree *t = txn->trees; t; t = t->next) {
		if (!t->dirty || t->dropped)
			continue;
		if ((r = node_rebalance_tree(t)) < 0 || (r = node_pack_tree(t)) < 0 ||
		    (r = node_spill_tree(t)) < 0)
			return r;
		uint8_t rec[TREC_SIZE];
		trec_encode(&t->rec, rec);
		if ((r = btree_put(&txn->catalog, t->name, t->name_len, rec, sizeof(rec))) < 0)
			return r;
	}
	if ((r = node_rebalance_tree(&txn->catalog)) < 0 ||
	    (r = node_spill_tree(&txn->catalog)) < 0)
		return r;
	txn->meta.catalog = txn->catalog.rec;
	if ((r = freelist_commit(txn)) < 0)
		return r;
	return txn_flush_pages(txn);
}

int store_txn_commit(struct store_txn *txn, unsigned flags)
{
	struct store *st = txn->st;
	if (txn->rdonly) {
		txn_free(txn);
		return 0;
	}
	int r = txn->err;
	if (!r && atomic_load(&st->failed))
		r = -EIO;
	if (r) {
		txn_free(txn);
		return r;
	}
	if (txn->mod_seq == 0) { /* nothing changed: nothing to write */
		if (!(flags & STORE_COMMIT_NOSYNC) && st->unsynced)
			r = write_meta_durable(st, &st->meta);
		txn_free(txn);
		return r;
	}
	r = commit_trees(txn);
	txn->meta.txnid = txn->txnid;
	if (r == 0)
		r = pager_ensure_size(st, txn->meta.page_count);
	if (r == 0 && !(flags & STORE_COMMIT_NOSYNC))
		r = write_meta_durable(st, &txn->meta);
	if (r < 0) {
		txn_free(txn);
		return r;
	}
	if (flags & STORE_COMMIT_NOSYNC)
		st->unsynced = true;
	publish(st, &txn->meta);
	st->meta = txn->meta;
	atomic_fetch_add(&st->n_commits, 1);
	if (!(flags & STORE_COMMIT_NOSYNC)) {
		/* Keep every page either meta page on disk may need; trim beyond. */
		uint64_t keep = st->disk_pages[0] > st->disk_pages[1] ? st->disk_pages[0] :
				st->disk_pages[1];
		if (pager_trim(st, keep) < 0)
			store_logf(st, "could not shrink the file (ignored)");
	}
	txn_free(txn);
	return 0;
}

/* ---- statistics ---- */

struct pin_ctx {
	txnid_t gate;
	uint64_t pinned;
};

static int count_pinned(void *ctx, txnid_t key, pgno_t pgno, uint64_t count)
{
	struct pin_ctx *pc = ctx;
	if (key > pc->gate)
		pc->pinned += count;
	return 0;
}

int store_stat(struct store *st, struct store_stat *out)
{
	memset(out, 0, sizeof(*out));
	struct store_txn *txn;
	uint64_t since, n;
	txnid_t oldest = store_oldest_reader(st, &since, &n);
	int r = store_txn_begin(st, STORE_TXN_RDONLY, &txn);
	if (r < 0)
		return r;
	out->page_size = STORE_PAGE_SIZE;
	out->page_count = txn->meta.page_count;
	out->pages_free = txn->meta.free_pages;
	out->pages_used = txn->meta.page_count - FIRST_DATA_PGNO - txn->meta.free_pages;
	out->n_trees = txn->meta.catalog.entries;
	out->n_readers = n;
	out->txnid = txn->meta.txnid;
	uint64_t d0 = atomic_load(&st->disk_txnid[0]), d1 = atomic_load(&st->disk_txnid[1]);
	out->durable_txnid = d0 > d1 ? d0 : d1;
	out->oldest_reader = oldest == UINT64_MAX ? 0 : oldest;
	out->oldest_reader_age_ns = oldest == UINT64_MAX ? 0 : now_ns() - since;
	out->n_commits = atomic_load(&st->n_commits);
	out->n_syncs = atomic_load(&st->n_syncs);
	uint64_t size = 0;
	if (io_size(st->file, &size) == 0)
		out->file_bytes = size;
	struct pin_ctx pc = { .gate = txn->meta.txnid, .pinned = 0 };
	txnid_t dmin = d0 < d1 ? d0 : d1;
	if (dmin < pc.gate)
		pc.gate = dmin;
	if (oldest < pc.gate)
		pc.gate = oldest;
	r = freelist_walk(txn, count_pinned, &pc);
	out->pages_pinned = pc.pinned;
	store_txn_abort(txn);
	return r;
}
