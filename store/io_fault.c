/*
 * store/io_fault.c — an in-memory, fault-injecting io_env for tests (see store/io_fault.h).
 *
 * What it does: simulates one machine's disk and page cache.  A machine (struct io_fault)
 * holds files keyed by their exact path string.  Each file (struct node) has
 *
 *   - a current image: one anonymous MAP_NORESERVE mapping of fixed capacity
 *     (IO_FAULT_CAPACITY), reserved when the file is created and never moved, so map() can
 *     hand out a pointer into it that shows every pwrite at once, as a MAP_SHARED mapping of a
 *     real file shows the page cache;
 *   - a durable image: a heap buffer, what the disk holds;
 *   - a list of pending operations (write with its bytes, truncate, allocate) made since the
 *     file's last sync, in the order they were made.
 *
 * sync() applies the pending operations to the durable image in order.  A power cut applies
 * each pending operation of every file per the cut mode — kept, dropped, or (writes only) torn
 * at 512-byte sectors aligned to file offsets, each sector kept or dropped on its own — and
 * leaves the machine dead.  io_fault_reboot() starts a new machine from the durable images.
 *
 * What it does not do: directories (a path is just a key: "a/b" needs no "a"), permissions
 * (the mode is ignored), or crash effects on the namespace — create and unlink are durable at
 * once; only a file's bytes and size have pending state.  It does not model a failed
 * fdatasync dropping dirty pages: an injected sync failure leaves the pending operations
 * pending.
 *
 * Call counting and failures (io_fault_fail_at): a pwrite, sync, truncate or allocate made on
 * a live machine (not a writeback, a hint that does nothing here) is counted before anything
 * else is checked, whether or not it then fails
 * (-EBADF, -EFBIG, ...).  Argument errors are reported before an injected failure, as a kernel
 * rejects bad arguments before it reaches the disk.  Calls on a dead machine return -EIO
 * uncounted.  A sync is counted in both io_fault_calls and io_fault_syncs; when it is the sync
 * chosen by io_fault_cut_at_sync the cut wins and an armed failure on the same call does not
 * fire.
 *
 * Invariants:
 *   INV-1  For every file, applying its pending operations in order to its durable image gives
 *          its current image, byte for byte and in size (io_fault_poke keeps this by making
 *          pending operations durable first).
 *   INV-2  Every byte of a current image at or past its size, up to the capacity, is zero, so
 *          growing the file (truncate, allocate, a write past the end) exposes zeros as a hole
 *          would, without writing them.
 *   INV-3  A current image never moves and is unmapped only when its node is freed (at the
 *          last close of an unlinked file, or at io_fault_free), so a pointer from map() stays
 *          valid while its io_file is open.
 *   INV-4  Once dead, a machine changes no current image (other threads may still read them
 *          through map pointers) and no file method succeeds.
 *   INV-5  Random choices come only from the machine's splitmix64 PRNG, seeded by
 *          io_fault_new/io_fault_reboot and consumed only by a cut, which visits files in
 *          path order and their operations in order: same seed, same operations, same result.
 *   INV-6  m->mu protects every field of the machine, its nodes, handles and images, except
 *          the current images' bytes read through map pointers: the writer changes those
 *          only under m->mu, and store/io.h's callers never read bytes being written.
 *   INV-7  Space (io_fault_set_space_limit): no pwrite or allocate makes the sum of the
 *          current sizes of the machine's files (linked and orphans) exceed the limit; a
 *          pwrite that would writes the prefix that fits and returns -ENOSPC, an allocate
 *          changes nothing.  Truncate is never refused (a hole costs nothing), so the sum may
 *          exceed a limit set or lowered later; only growth is refused.
 *
 * Cut copies (io_fault_cut_copy) settle the pending operations exactly as power_cut would,
 * but into a new machine, with their own PRNG: the source machine, its images and its PRNG
 * are untouched, so a test can take a cut image at every sync point of one run instead of
 * replaying the run up to each.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "store/io_fault.h"

#define SECTOR_BYTES 512
/* Smallest capacity tried when IO_FAULT_CAPACITY cannot be reserved (strict overcommit, or a
 * sanitizer's narrower address space). */
#define MIN_CAPACITY ((size_t)1 << 30)

enum op_kind { OP_WRITE, OP_TRUNCATE, OP_ALLOCATE };

/* One pending operation. */
struct op {
	struct op *next;
	enum op_kind kind;
	uint64_t off;   /* write, allocate: offset; truncate: the new size */
	uint64_t len;   /* write, allocate: length in bytes */
	uint8_t data[]; /* write: the bytes written */
};

struct node {
	struct node *next; /* in m->files (sorted by path) or m->orphans */
	char *path;
	bool linked; /* in m->files; else an orphan */
	/* current image (INV-2, INV-3) */
	uint8_t *cur;
	size_t cur_cap;
	uint64_t cur_size;
	/* durable image: dur_size bytes valid in dur[0..dur_cap) */
	uint8_t *dur;
	size_t dur_cap;
	uint64_t dur_size;
	/* pending operations, oldest first */
	struct op *pending;
	struct op **pending_tail;
	struct fault_file *handles; /* open io_files of this node */
};

struct fault_file {
	struct io_file base; /* first: an io_file * is a fault_file * */
	struct io_fault *m;
	struct node *n;
	struct fault_file *next; /* in n->handles */
	int flags;               /* IO_OPEN_* */
	int lock;                /* IO_LOCK_* held */
};

struct io_fault {
	struct io_env env; /* first: an io_env * is an io_fault * */
	pthread_mutex_t mu;
	/* everything below: protected by mu (INV-6) */
	struct node *files;   /* linked files, sorted by path (INV-5) */
	struct node *orphans; /* unlinked files that are still open */
	size_t n_open;        /* open io_files */
	uint64_t rng;         /* splitmix64 state */
	uint64_t calls, fail_at;
	enum io_fault_kind fail_kind;
	bool fired;
	uint64_t syncs, cut_at;
	enum io_fault_cut_mode cut_mode;
	bool dead;
	uint64_t space_limit; /* bytes; 0: none (INV-7) */
	io_fault_sync_hook_fn sync_hook;
	void *sync_hook_ctx;
};

static const struct io_methods fault_methods;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t page_bytes(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	return pg > 0 ? (size_t)pg : 4096;
}

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

static struct fault_file *ff(struct io_file *f)
{
	return (struct fault_file *)f;
}

static void lock_m(const struct io_fault *m)
{
	/* The mutex is the one field a const accessor may change. */
	pthread_mutex_lock(&((struct io_fault *)m)->mu);
}

static void unlock_m(const struct io_fault *m)
{
	pthread_mutex_unlock(&((struct io_fault *)m)->mu);
}

/* ---- images ---------------------------------------------------------------------------- */

/* Reserve a current image, halving the capacity while the system refuses it. */
static int cur_reserve(struct node *n)
{
	size_t cap;

	for (cap = IO_FAULT_CAPACITY; cap >= MIN_CAPACITY; cap /= 2) {
		void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p != MAP_FAILED) {
			n->cur = p;
			n->cur_cap = cap;
			return 0;
		}
	}
	return -ENOMEM;
}

/* Zero [from, to) of a current image, returning whole pages to the system (INV-2). */
static void cur_zero(struct node *n, size_t from, size_t to)
{
	size_t pg = page_bytes(), a = round_up(from, pg), b;

	if (a >= to) {
		memset(n->cur + from, 0, to - from);
		return;
	}
	memset(n->cur + from, 0, a - from);
	b = round_up(to, pg); /* <= cur_cap: the capacity is a multiple of the page size */
	if (madvise(n->cur + a, b - a, MADV_DONTNEED) != 0)
		memset(n->cur + a, 0, to - a);
}

/* Fill a fresh current image (all zeros, INV-2) with img[0..size), skipping the pages of img
 * that are zero: they would only fault in pages of zeros. */
static void cur_fill(struct node *n, const uint8_t *img, uint64_t size)
{
	static const uint8_t zero[4096];
	size_t pos = 0, len = (size_t)size;

	while (pos < len) {
		size_t chunk = len - pos < sizeof(zero) ? len - pos : sizeof(zero);

		if (memcmp(img + pos, zero, chunk) != 0)
			memcpy(n->cur + pos, img + pos, chunk);
		pos += chunk;
	}
	n->cur_size = size;
}

static void cur_write(struct node *n, uint64_t off, const void *buf, size_t len)
{
	memcpy(n->cur + off, buf, len);
	if (off + len > n->cur_size)
		n->cur_size = off + len;
}

static void cur_truncate(struct node *n, uint64_t size)
{
	if (size < n->cur_size)
		cur_zero(n, (size_t)size, (size_t)n->cur_size);
	n->cur_size = size;
}

/* Make room for a durable image of `size` bytes.  0 or -ENOMEM. */
static int dur_reserve(struct node *n, uint64_t size)
{
	size_t cap;
	uint8_t *p;

	if (size <= n->dur_cap)
		return 0;
	cap = n->dur_cap ? n->dur_cap : 4096;
	while (cap < size)
		cap *= 2;
	p = realloc(n->dur, cap);
	if (!p)
		return -ENOMEM;
	n->dur = p;
	n->dur_cap = cap;
	return 0;
}

/* Grow the durable image to `end` bytes with zeros; room was reserved. */
static void dur_grow(struct node *n, uint64_t end)
{
	assert(end <= n->dur_cap);
	if (end > n->dur_size) {
		memset(n->dur + n->dur_size, 0, (size_t)(end - n->dur_size));
		n->dur_size = end;
	}
}

static void dur_write(struct node *n, uint64_t off, const void *buf, size_t len)
{
	dur_grow(n, off + len);
	memcpy(n->dur + off, buf, len);
}

/* The largest size the durable image reaches while `n`'s pending operations are applied. */
static uint64_t pending_peak(const struct node *n)
{
	uint64_t peak = n->dur_size;
	const struct op *o;

	for (o = n->pending; o; o = o->next) {
		uint64_t end = o->kind == OP_TRUNCATE ? o->off : o->off + o->len;

		if (end > peak)
			peak = end;
	}
	return peak;
}

static void dur_apply(struct node *n, const struct op *o)
{
	switch (o->kind) {
	case OP_WRITE:
		dur_write(n, o->off, o->data, (size_t)o->len);
		break;
	case OP_TRUNCATE:
		if (o->off > n->dur_size)
			dur_grow(n, o->off);
		else
			n->dur_size = o->off;
		break;
	case OP_ALLOCATE:
		dur_grow(n, o->off + o->len);
		break;
	}
}

/* Fold one decision into a cut's signature (io_fault_cut_copy). */
static void sig_add(uint64_t *sig, uint64_t v)
{
	if (sig)
		*sig = (*sig ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
}

/* The sectors of a write (aligned to file offsets), for its signature: kept all or none. */
static void sig_sectors(uint64_t *sig, const struct op *o, bool kept)
{
	uint64_t first = o->off / SECTOR_BYTES, last = (o->off + o->len - 1) / SECTOR_BYTES;

	if (!sig)
		return;
	for (uint64_t s = first; s <= last; s++)
		sig_add(sig, kept);
}

/* Apply a write sector by sector (sectors aligned to file offsets), each kept at random. */
static void dur_apply_torn(struct node *n, const struct op *o, uint64_t *rng, uint64_t *sig)
{
	uint64_t pos = o->off, end = o->off + o->len, bits = 0;
	unsigned nbits = 0;

	while (pos < end) {
		uint64_t sec_end = (pos / SECTOR_BYTES + 1) * SECTOR_BYTES;

		if (sec_end > end)
			sec_end = end;
		if (nbits == 0) {
			bits = rng_next(rng);
			nbits = 64;
		}
		if (bits & 1)
			dur_write(n, pos, o->data + (pos - o->off), (size_t)(sec_end - pos));
		sig_add(sig, bits & 1);
		bits >>= 1;
		nbits--;
		pos = sec_end;
	}
}

static void pending_free(struct node *n)
{
	struct op *o, *next;

	for (o = n->pending; o; o = next) {
		next = o->next;
		free(o);
	}
	n->pending = NULL;
	n->pending_tail = &n->pending;
}

/* Make every pending operation durable (a successful fdatasync).  0 or -ENOMEM. */
static int node_flush(struct node *n)
{
	const struct op *o;
	int rc = dur_reserve(n, pending_peak(n));

	if (rc < 0)
		return rc;
	for (o = n->pending; o; o = o->next)
		dur_apply(n, o);
	pending_free(n);
	return 0;
}

/* A pending operation with room for `data_bytes` bytes of data, which the caller fills. */
static struct op *op_new(enum op_kind kind, uint64_t off, uint64_t len, size_t data_bytes)
{
	struct op *o = malloc(sizeof(*o) + data_bytes);

	if (!o)
		return NULL;
	o->next = NULL;
	o->kind = kind;
	o->off = off;
	o->len = len;
	return o;
}

static void op_append(struct node *n, struct op *o)
{
	*n->pending_tail = o;
	n->pending_tail = &o->next;
}

/* ---- nodes ----------------------------------------------------------------------------- */

static struct node *node_new(const char *path)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path || cur_reserve(n) < 0) {
		free(n->path);
		free(n);
		return NULL;
	}
	n->pending_tail = &n->pending;
	n->linked = true;
	return n;
}

static void node_free(struct node *n)
{
	struct fault_file *h, *next;

	for (h = n->handles; h; h = next) {
		next = h->next;
		free(h);
	}
	pending_free(n);
	munmap(n->cur, n->cur_cap);
	free(n->dur);
	free(n->path);
	free(n);
}

/* The link that points at the first file whose path is >= `path` (files are sorted). */
static struct node **files_seek(struct io_fault *m, const char *path)
{
	struct node **pp = &m->files;

	while (*pp && strcmp((*pp)->path, path) < 0)
		pp = &(*pp)->next;
	return pp;
}

static struct node *files_find(struct io_fault *m, const char *path)
{
	struct node *n = *files_seek(m, path);

	return n && strcmp(n->path, path) == 0 ? n : NULL;
}

/* ---- power cut ------------------------------------------------------------------------- */

/*
 * Settle the pending operations `ops` (of a node whose durable image `n` holds, room reserved
 * for their peak) per `mode`, drawing from `rng` (INV-5); fold every decision into *sig when
 * sig is not NULL: a write as its sectors kept or not, a truncate or allocate as kept or not.
 */
static void settle(struct node *n, const struct op *ops, enum io_fault_cut_mode mode,
		   uint64_t *rng, uint64_t *sig)
{
	const struct op *o;

	if (mode == IO_CUT_DROP_ALL) {
		for (o = ops; o; o = o->next)
			if (o->kind == OP_WRITE)
				sig_sectors(sig, o, false);
			else
				sig_add(sig, 0);
		return;
	}
	for (o = ops; o; o = o->next) {
		uint64_t r = 0;

		if (mode == IO_CUT_RANDOM)
			r = rng_next(rng) % (o->kind == OP_WRITE ? 3 : 2);
		if (r == 2) {
			dur_apply_torn(n, o, rng, sig);
			continue;
		}
		if (r == 0)
			dur_apply(n, o);
		if (o->kind == OP_WRITE)
			sig_sectors(sig, o, r == 0);
		else
			sig_add(sig, r == 0);
	}
}

/* Cut power: settle every linked file's pending operations per the cut mode (INV-5) and kill
 * the machine.  Current images are left alone (INV-4). */
static void power_cut(struct io_fault *m)
{
	struct node *n;

	if (m->dead)
		return;
	for (n = m->files; n; n = n->next) {
		if (m->cut_mode != IO_CUT_DROP_ALL) {
			/* Growth beyond the peak is impossible; failing to reserve it is not
			 * survivable in a test harness. */
			if (dur_reserve(n, pending_peak(n)) < 0)
				abort();
			settle(n, n->pending, m->cut_mode, &m->rng, NULL);
		}
		pending_free(n);
	}
	for (n = m->orphans; n; n = n->next)
		pending_free(n);
	m->dead = true;
}

/* ---- counting and injection ------------------------------------------------------------ */

/* Count a call; the failure it must suffer, or 0. */
static enum io_fault_kind count_call(struct io_fault *m)
{
	m->calls++;
	if (m->fail_at && !m->fired && m->calls == m->fail_at) {
		m->fired = true;
		return m->fail_kind;
	}
	return 0;
}

static int injected_errno(enum io_fault_kind k)
{
	return k == IO_FAULT_ENOSPC ? -ENOSPC : -EIO;
}

/* ---- space (INV-7) --------------------------------------------------------------------- */

static uint64_t space_used(const struct io_fault *m)
{
	uint64_t used = 0;
	const struct node *n;

	for (n = m->files; n; n = n->next)
		used += n->cur_size;
	for (n = m->orphans; n; n = n->next)
		used += n->cur_size;
	return used;
}

/* How many of the bytes that would grow `n` to `end` fit under the limit (INV-7). */
static uint64_t space_room(const struct io_fault *m, const struct node *n, uint64_t end)
{
	uint64_t used, grow;

	if (!m->space_limit || end <= n->cur_size)
		return UINT64_MAX;
	used = space_used(m);
	grow = end - n->cur_size;
	if (used >= m->space_limit)
		return 0;
	return m->space_limit - used < grow ? m->space_limit - used : UINT64_MAX;
}

/* ---- io_methods ------------------------------------------------------------------------ */

static ssize_t fault_pread(struct io_file *f, void *buf, size_t len, uint64_t off)
{
	struct fault_file *h = ff(f);
	struct node *n = h->n;
	ssize_t rc;

	if (len > SSIZE_MAX)
		return -EINVAL;
	lock_m(h->m);
	if (h->m->dead) {
		rc = -EIO;
	} else if (off >= n->cur_size || len == 0) {
		rc = 0;
	} else {
		size_t got = n->cur_size - off < len ? (size_t)(n->cur_size - off) : len;

		memcpy(buf, n->cur + off, got);
		rc = (ssize_t)got;
	}
	unlock_m(h->m);
	return rc;
}

static ssize_t fault_pwrite(struct io_file *f, const void *buf, size_t len, uint64_t off)
{
	struct fault_file *h = ff(f);
	struct io_fault *m = h->m;
	struct node *n = h->n;
	enum io_fault_kind k;
	size_t todo = len;
	ssize_t rc;
	struct op *o;

	lock_m(m);
	if (m->dead) {
		rc = -EIO;
		goto out;
	}
	k = count_call(m);
	if (h->flags & IO_OPEN_RDONLY) {
		rc = -EBADF;
		goto out;
	}
	if (len > SSIZE_MAX) {
		rc = -EINVAL;
		goto out;
	}
	if (off > n->cur_cap || len > n->cur_cap - off) {
		rc = -EFBIG;
		goto out;
	}
	if (k == IO_FAULT_EIO || k == IO_FAULT_ENOSPC) {
		rc = injected_errno(k);
		goto out;
	}
	if (k == IO_FAULT_SHORT)
		todo = len / 2;
	{
		uint64_t room = space_room(m, n, off + todo);

		if (room != UINT64_MAX) { /* the disk is full past off + cur_size + room */
			uint64_t fits = n->cur_size + room > off ? n->cur_size + room - off : 0;

			todo = fits < todo ? (size_t)fits : todo;
			k = IO_FAULT_SHORT; /* what was written stays; the call fails */
		}
	}
	rc = (ssize_t)len;
	if (todo > 0) {
		o = op_new(OP_WRITE, off, todo, todo);
		if (!o) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(o->data, buf, todo);
		cur_write(n, off, buf, todo);
		op_append(n, o);
	}
	if (k == IO_FAULT_SHORT)
		rc = -ENOSPC; /* the rest of the write found the disk full */
out:
	unlock_m(m);
	return rc;
}

/* Each buffer is a write of its own (a pending write op, a call for the fault counter): a
 * power cut keeps, drops or tears each of them on its own, as any other run of writes. */
static ssize_t fault_pwritev(struct io_file *f, const struct iovec *iov, int iovcnt, uint64_t off)
{
	ssize_t total = io_iov_total(iov, iovcnt);
	if (total < 0)
		return total;
	size_t done = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		ssize_t rc = fault_pwrite(f, iov[i].iov_base, iov[i].iov_len, off + done);
		if (rc < 0)
			return rc;
		done += (size_t)rc;
	}
	return (ssize_t)done;
}

static int fault_sync(struct io_file *f)
{
	struct fault_file *h = ff(f);
	struct io_fault *m = h->m;
	io_fault_sync_hook_fn hook;
	void *hook_ctx;
	enum io_fault_kind k;
	int rc;

	lock_m(m);
	hook = m->dead ? NULL : m->sync_hook;
	hook_ctx = m->sync_hook_ctx;
	if (hook) {
		/* Outside the lock, so that the hook may call the control functions. */
		unlock_m(m);
		hook(hook_ctx, m, h->n->path);
		lock_m(m);
	}
	if (m->dead) {
		rc = -EIO;
		goto out;
	}
	m->syncs++;
	if (m->cut_at && m->syncs == m->cut_at) {
		m->calls++; /* counted, but the cut wins over an armed failure */
		power_cut(m);
		rc = -EIO;
		goto out;
	}
	k = count_call(m);
	rc = k ? injected_errno(k) : node_flush(h->n);
out:
	unlock_m(m);
	return rc;
}

static int fault_size(struct io_file *f, uint64_t *size)
{
	struct fault_file *h = ff(f);
	int rc = 0;

	lock_m(h->m);
	if (h->m->dead)
		rc = -EIO;
	else
		*size = h->n->cur_size;
	unlock_m(h->m);
	return rc;
}

/* The common path of truncate and allocate: count, check, inject, queue, apply. */
static int size_op(struct io_file *f, enum op_kind kind, uint64_t off, uint64_t len)
{
	struct fault_file *h = ff(f);
	struct io_fault *m = h->m;
	struct node *n = h->n;
	enum io_fault_kind k;
	struct op *o;
	int rc = 0;

	lock_m(m);
	if (m->dead) {
		rc = -EIO;
		goto out;
	}
	k = count_call(m);
	if (h->flags & IO_OPEN_RDONLY) {
		rc = -EBADF;
		goto out;
	}
	if (off > n->cur_cap || len > n->cur_cap - off) {
		rc = -EFBIG;
		goto out;
	}
	if (k) {
		rc = injected_errno(k);
		goto out;
	}
	if (kind == OP_ALLOCATE && len == 0)
		goto out; /* an empty range changes nothing */
	if (kind == OP_ALLOCATE && space_room(m, n, off + len) != UINT64_MAX) {
		rc = -ENOSPC; /* INV-7: nothing allocated */
		goto out;
	}
	o = op_new(kind, off, len, 0);
	if (!o) {
		rc = -ENOMEM;
		goto out;
	}
	if (kind == OP_TRUNCATE)
		cur_truncate(n, off);
	else if (off + len > n->cur_size)
		n->cur_size = off + len; /* the new bytes are already zero (INV-2) */
	op_append(n, o);
out:
	unlock_m(m);
	return rc;
}

static int fault_truncate(struct io_file *f, uint64_t size)
{
	return size_op(f, OP_TRUNCATE, size, 0);
}

static int fault_allocate(struct io_file *f, uint64_t off, uint64_t len)
{
	return size_op(f, OP_ALLOCATE, off, len);
}

/* writeback (store/io.h): a hint with nothing to do where the page cache is the pending list;
 * not counted (a failure cannot be injected into it: the sync after it reports any). */
static int fault_writeback(struct io_file *f, uint64_t off, uint64_t len)
{
	struct fault_file *h = ff(f);
	int rc = 0;

	lock_m(h->m);
	if (h->m->dead)
		rc = -EIO;
	else if (h->flags & IO_OPEN_RDONLY)
		rc = -EBADF;
	else if (off > (uint64_t)INT64_MAX)
		rc = -EINVAL; /* as io_posix */
	else if (len > (uint64_t)INT64_MAX - off)
		rc = -EFBIG;
	unlock_m(h->m);
	return rc;
}

static int fault_map(struct io_file *f, size_t reserve, const void **addr)
{
	struct fault_file *h = ff(f);
	int rc = 0;

	lock_m(h->m);
	if (h->m->dead)
		rc = -EIO;
	else if (reserve == 0)
		rc = -EINVAL;
	else if (reserve > h->n->cur_cap)
		rc = -ENOMEM;
	else
		*addr = h->n->cur;
	unlock_m(h->m);
	return rc;
}

static void fault_unmap(struct io_file *f, const void *addr, size_t reserve)
{
	/* The image stays reserved until its node is freed (INV-3): nothing to do. */
	assert(addr == ff(f)->n->cur);
	assert(reserve <= ff(f)->n->cur_cap);
}

static int fault_lock(struct io_file *f, int mode)
{
	struct fault_file *h = ff(f), *o;
	int rc = 0;

	if (mode != IO_LOCK_NONE && mode != IO_LOCK_SHARED && mode != IO_LOCK_EXCL)
		return -EINVAL;
	lock_m(h->m);
	if (h->m->dead) {
		rc = -EIO;
		goto out;
	}
	if (h->lock == mode)
		goto out;
	/* As flock(2) converts: the lock held is dropped first, and stays dropped when the
	 * new one conflicts. */
	h->lock = IO_LOCK_NONE;
	for (o = h->n->handles; o && mode != IO_LOCK_NONE; o = o->next) {
		if (o == h || o->lock == IO_LOCK_NONE)
			continue;
		if (mode == IO_LOCK_EXCL || o->lock == IO_LOCK_EXCL) {
			rc = -EBUSY;
			goto out;
		}
	}
	h->lock = mode;
out:
	unlock_m(h->m);
	return rc;
}

static void fault_close(struct io_file *f)
{
	struct fault_file *h = ff(f), **pp;
	struct io_fault *m = h->m;
	struct node *n = h->n;

	lock_m(m);
	for (pp = &n->handles; *pp != h; pp = &(*pp)->next)
		assert(*pp);
	*pp = h->next;
	m->n_open--;
	if (!n->handles && !n->linked) {
		struct node **np;

		for (np = &m->orphans; *np != n; np = &(*np)->next)
			assert(*np);
		*np = n->next;
		node_free(n);
	}
	unlock_m(m);
	free(h);
}

static const struct io_methods fault_methods = {
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.pwritev = fault_pwritev,
	.sync = fault_sync,
	.writeback = fault_writeback,
	.size = fault_size,
	.truncate = fault_truncate,
	.allocate = fault_allocate,
	.map = fault_map,
	.unmap = fault_unmap,
	.lock = fault_lock,
	.close = fault_close,
};

/* ---- io_env ---------------------------------------------------------------------------- */

static int fault_open(struct io_env *env, const char *path, int flags, mode_t mode,
		      struct io_file **out)
{
	struct io_fault *m = (struct io_fault *)env;
	struct fault_file *h;
	struct node *n;
	int rc = 0;

	assert(path);
	if (!*path)
		return -ENOENT;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	lock_m(m);
	if (m->dead) {
		rc = -EIO;
		goto out;
	}
	n = files_find(m, path);
	if (n && (flags & IO_OPEN_CREATE) && (flags & IO_OPEN_EXCL)) {
		rc = -EEXIST;
		goto out;
	}
	if (!n) {
		struct node **pp;

		if (!(flags & IO_OPEN_CREATE)) {
			rc = -ENOENT;
			goto out;
		}
		n = node_new(path);
		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		pp = files_seek(m, path);
		n->next = *pp;
		*pp = n;
	}
	h->base.m = &fault_methods;
	h->m = m;
	h->n = n;
	h->flags = flags;
	h->lock = IO_LOCK_NONE;
	h->next = n->handles;
	n->handles = h;
	m->n_open++;
	*out = &h->base;
out:
	unlock_m(m);
	if (rc < 0)
		free(h);
	return rc;
}

static int fault_unlink(struct io_env *env, const char *path)
{
	struct io_fault *m = (struct io_fault *)env;
	struct node **pp, *n;
	int rc = 0;

	lock_m(m);
	if (m->dead) {
		rc = -EIO;
		goto out;
	}
	pp = files_seek(m, path);
	n = *pp;
	if (!n || strcmp(n->path, path) != 0) {
		rc = -ENOENT;
		goto out;
	}
	*pp = n->next;
	n->linked = false;
	if (n->handles) {
		/* Open descriptors keep an unlinked file alive, as in POSIX. */
		n->next = m->orphans;
		m->orphans = n;
	} else {
		node_free(n);
	}
out:
	unlock_m(m);
	return rc;
}

/* ---- control --------------------------------------------------------------------------- */

struct io_fault *io_fault_new(uint64_t seed)
{
	struct io_fault *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	m->env.open = fault_open;
	m->env.unlink = fault_unlink;
	m->rng = seed;
	m->cut_mode = IO_CUT_RANDOM;
	return m;
}

static void free_list(struct node *n)
{
	struct node *next;

	for (; n; n = next) {
		next = n->next;
		node_free(n);
	}
}

void io_fault_free(struct io_fault *m)
{
	if (!m)
		return;
	assert(m->n_open == 0);
	free_list(m->files);
	free_list(m->orphans);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

struct io_env *io_fault_env(struct io_fault *m)
{
	return &m->env;
}

void io_fault_fail_at(struct io_fault *m, uint64_t n, enum io_fault_kind kind)
{
	assert(n == 0 || kind == IO_FAULT_EIO || kind == IO_FAULT_ENOSPC ||
	       kind == IO_FAULT_SHORT);
	lock_m(m);
	m->fail_at = n;
	m->fail_kind = kind;
	m->fired = false;
	m->calls = 0;
	unlock_m(m);
}

uint64_t io_fault_calls(const struct io_fault *m)
{
	uint64_t v;

	lock_m(m);
	v = m->calls;
	unlock_m(m);
	return v;
}

bool io_fault_fired(const struct io_fault *m)
{
	bool v;

	lock_m(m);
	v = m->fired;
	unlock_m(m);
	return v;
}

void io_fault_cut_at_sync(struct io_fault *m, uint64_t k)
{
	lock_m(m);
	m->cut_at = k;
	m->syncs = 0;
	unlock_m(m);
}

uint64_t io_fault_syncs(const struct io_fault *m)
{
	uint64_t v;

	lock_m(m);
	v = m->syncs;
	unlock_m(m);
	return v;
}

void io_fault_set_cut_mode(struct io_fault *m, enum io_fault_cut_mode mode)
{
	assert(mode == IO_CUT_RANDOM || mode == IO_CUT_KEEP_ALL || mode == IO_CUT_DROP_ALL);
	lock_m(m);
	m->cut_mode = mode;
	unlock_m(m);
}

void io_fault_power_cut(struct io_fault *m)
{
	lock_m(m);
	power_cut(m);
	unlock_m(m);
}

bool io_fault_dead(const struct io_fault *m)
{
	bool v;

	lock_m(m);
	v = m->dead;
	unlock_m(m);
	return v;
}

/* A node for the rebooted machine: both images are `old`'s durable image. */
static struct node *node_reboot(const struct node *old)
{
	struct node *n = node_new(old->path);

	if (!n)
		return NULL;
	if (old->dur_size > n->cur_cap || dur_reserve(n, old->dur_size) < 0) {
		node_free(n);
		return NULL;
	}
	if (old->dur_size > 0) { /* an empty image may have no buffer at all */
		cur_fill(n, old->dur, old->dur_size);
		memcpy(n->dur, old->dur, (size_t)old->dur_size);
	}
	n->cur_size = old->dur_size;
	n->dur_size = old->dur_size;
	return n;
}

struct io_fault *io_fault_reboot(const struct io_fault *m, uint64_t seed)
{
	struct io_fault *r = io_fault_new(seed);
	struct node **tail, *n;

	if (!r)
		return NULL;
	tail = &r->files;
	lock_m(m);
	for (n = m->files; n; n = n->next) {
		/* The durable image alone: pending operations are lost as with DROP_ALL. */
		struct node *c = node_reboot(n);

		if (!c) {
			unlock_m(m);
			io_fault_free(r);
			return NULL;
		}
		*tail = c; /* same (sorted) order */
		tail = &c->next;
	}
	unlock_m(m);
	return r;
}

struct io_fault *io_fault_cut_copy(struct io_fault *m, enum io_fault_cut_mode mode,
				   uint64_t seed, uint64_t *sig)
{
	struct io_fault *r = io_fault_new(seed);
	struct node **tail, *n;
	uint64_t rng = seed, s = 0xcbf29ce484222325ull;

	assert(mode == IO_CUT_RANDOM || mode == IO_CUT_KEEP_ALL || mode == IO_CUT_DROP_ALL);
	if (!r)
		return NULL;
	tail = &r->files;
	lock_m(m);
	for (n = m->files; n; n = n->next) {
		/* As power_cut settles n, but into a copy of its durable image (INV-5). */
		struct node *c = node_new(n->path);
		uint64_t peak = pending_peak(n);

		if (!c || peak > c->cur_cap || dur_reserve(c, peak) < 0) {
			if (c)
				node_free(c);
			goto fail;
		}
		if (n->dur_size > 0)
			memcpy(c->dur, n->dur, (size_t)n->dur_size);
		c->dur_size = n->dur_size;
		sig_add(&s, 0x5a5a); /* a file boundary */
		settle(c, n->pending, mode, &rng, &s);
		if (c->dur_size > 0)
			cur_fill(c, c->dur, c->dur_size);
		c->cur_size = c->dur_size;
		*tail = c; /* same (sorted) order */
		tail = &c->next;
	}
	unlock_m(m);
	if (sig)
		*sig = s;
	return r;
fail:
	unlock_m(m);
	io_fault_free(r);
	return NULL;
}

void io_fault_set_sync_hook(struct io_fault *m, io_fault_sync_hook_fn fn, void *ctx)
{
	lock_m(m);
	m->sync_hook = fn;
	m->sync_hook_ctx = ctx;
	unlock_m(m);
}

void io_fault_set_space_limit(struct io_fault *m, uint64_t bytes)
{
	lock_m(m);
	m->space_limit = bytes;
	unlock_m(m);
}

uint64_t io_fault_space_used(const struct io_fault *m)
{
	uint64_t v;

	lock_m(m);
	v = space_used(m);
	unlock_m(m);
	return v;
}

int io_fault_peek(struct io_fault *m, const char *path, uint64_t off, void *buf, size_t len)
{
	struct node *n;
	int rc = 0;

	lock_m(m);
	n = files_find(m, path);
	if (!n) {
		rc = -ENOENT;
	} else {
		/* A dead machine's page cache is gone: show what the disk holds. */
		const uint8_t *img = m->dead ? n->dur : n->cur;
		uint64_t size = m->dead ? n->dur_size : n->cur_size;

		if (off > size || len > size - off)
			rc = -ERANGE;
		else if (len > 0)
			memcpy(buf, img + off, len);
	}
	unlock_m(m);
	return rc;
}

int io_fault_poke(struct io_fault *m, const char *path, uint64_t off, const void *buf,
		  size_t len)
{
	struct node *n;
	int rc = 0;

	lock_m(m);
	n = files_find(m, path);
	if (!n) {
		rc = -ENOENT;
		goto out;
	}
	if (off > n->cur_cap || len > n->cur_cap - off) {
		rc = -ERANGE;
		goto out;
	}
	if (!m->dead) {
		/* Keep INV-1: what is pending becomes durable first, so a later sync cannot
		 * replay an older write over the poked bytes. */
		rc = node_flush(n);
		if (rc < 0)
			goto out;
	}
	rc = dur_reserve(n, off + len);
	if (rc < 0)
		goto out;
	if (len == 0)
		goto out;
	dur_write(n, off, buf, len);
	if (!m->dead)
		cur_write(n, off, buf, len); /* INV-4: a dead machine's images stay */
out:
	unlock_m(m);
	return rc;
}

int64_t io_fault_file_size(struct io_fault *m, const char *path)
{
	struct node *n;
	int64_t rc;

	lock_m(m);
	n = files_find(m, path);
	if (!n)
		rc = -ENOENT;
	else
		rc = (int64_t)(m->dead ? n->dur_size : n->cur_size);
	unlock_m(m);
	return rc;
}
