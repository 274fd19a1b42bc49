/*
 * wal/log.c — the write-ahead log (wal/log.h): a ring of checksummed records in STORE-wal,
 * appended under a mutex (one pwrite for a contiguous record; a pwritev of the payload's
 * pieces, then the header, for a gathered one), made durable by group commit, replayed by
 * wal_recover; the file mapped read-only so that appended payloads can be read in place.  The byte layout is in log.h and man/kvfs.5 "LOG".
 *
 * What it does: create (header, preallocated ring) and open the log; place each record at
 * WAL_HDR_SIZE + lsn % ring_bytes, skipping the rest of a lap with a pad record (or, when
 * fewer than WAL_REC_HDR bytes remain, with nothing: a gap); wait for room when the ring is
 * full; run one fdatasync for every waiter of a group commit; replay and validate records at
 * open; renew the salt when the empty log is reset, and change the ring's size when the empty
 * log is resized (wal_resize; a longer file left by an interrupted resize is trimmed at
 * open); inspect a log read-only for kvfs-check
 * (wal_inspect: the same record validation, rec_at, and the same stale-header scan,
 * stale_scan, as recovery — one parser, so the checker sees what the next open will).
 *
 * What it does not: interpret payloads or types (the engine's), decide when to checkpoint
 * (the engine calls wal_release), lock the file against a second process (the data file's
 * lock does), or make the directory entry of a new log durable (io_env has no directory
 * sync; the engine creates the log together with the data file).
 *
 * Locking.  w->mu protects every mutable field except the group commit's (the "protected by"
 * comments below).  Appends hold it across their writes, so appends are serialized and `end`
 * only moves past bytes that are written.  Group commit waiters never take mu: the leader
 * of a flush is the thread that sets `flushing` (compare-and-swap), syncs without mu
 * (appends go on meanwhile), then publishes `durable` under mu and wakes the waiters it made
 * durable, each sleeping on its own futex word in the wait queue (its own lock, wq_mu;
 * wal_wait_durable).  The flush uses one io_file from two threads at once (pwrite in an
 * appender, sync in the flusher), which both io_posix (plain system calls on one descriptor)
 * and io_fault (a machine mutex) allow although store/io.h only promises it for readers.
 *
 * Invariants:
 *   INV-1  Placement: a record of padded size P at LSN x lies wholly in one lap,
 *          x mod ring + P <= ring, and P <= ring / 2; the LSNs of consecutive records differ
 *          by P, or jump to the next multiple of ring_bytes after a pad record or a gap of
 *          fewer than WAL_REC_HDR bytes.  (wal_append, place(); checked by rec_at.)
 *   INV-2  No overwrite of live records: end - released <= ring_bytes; an append that does
 *          not fit waits on w->room until wal_release.  (wal_append)
 *   INV-3  durable <= end, and durable only advances to a `target` that was `end` before a
 *          sync that then returned 0: every byte below it was written before that sync began.
 *          (lead_flush, reset_ring, wal_recover)
 *   INV-4  Sticky failure: once a pwrite or sync failed, w->failed is set for good and every
 *          later append, wait and reset returns -EIO: a flush is never retried and then
 *          reported as success.  (fail_locked)
 *   INV-5  No stale resurrection: after a writable wal_recover, no 8-aligned position of the
 *          free part of the ring, LSNs [end, from + ring_bytes), holds a header whose lsn
 *          field equals that position's LSN; the erasing writes are durable before the first
 *          append.  Without this, after a power cut that tore record A but kept the records
 *          after it, a new record of A's size written at A's place would make the old records
 *          after it valid again, out of order.  Checksums cannot tell (same salt, same LSNs).
 *          (stale_scan; attacked by check_wal.c log_stale_ahead and the crash tests)
 *   INV-6  Salt: changes only in wal_reset or wal_resize of an empty log, to a new random
 *          value, and the header carrying it is durable before they return: a record written
 *          before the reset never validates after it.  (reset_ring)
 *   INV-7  Resize ordering: the file always holds the whole ring of the durable header.
 *          Growing allocates the bigger ring and syncs it before the header naming it is
 *          written and synced; shrinking makes the header durable before it truncates the
 *          file.  A crash between leaves the old header over a longer file, or the new one
 *          over a longer file: bytes past 4096 + ring_bytes mean nothing (no record can lie
 *          there), so wal_open trims them and wal_inspect reports them (long_file) without
 *          calling them corrupt.  Records of the old ring are never replayed under the new
 *          one: its salt is new (INV-6), and their lsn fields are all below the log's end, so
 *          none carries the LSN of a place in the free ring either (INV-5 holds).
 *          (reset_ring; attacked by check_wal.c crash_resize)
 *
 * Written ring.  The ring is allocated with fallocate(2) (io_allocate), which leaves unwritten
 * extents: ext4 converts one at the first fdatasync after a write reaches it, a journal
 * commit inside that sync.  In a ring's first lap (after creation, and after each growth: an
 * open after a clean close grows the ring at rest, 1 MiB, to the store's) a group commit
 * whose records reached a new 4 KiB block so paid a second disk flush: one in four syncs of
 * 100-byte puts from 16 threads, every sync of 4 KiB puts.  Writing the ring's zeros at
 * allocation would cost every open the ring's size in writes (a 36 MiB ring: open + close
 * 1.4 -> 43 ms).  So the ring is cut in chunks of ZERO_CHUNK bytes, and an append whose
 * record reaches a chunk allocated here and not written since writes zeros over that whole
 * chunk first (zero_ahead): one conversion, one journal commit, per 256 KiB of log instead
 * of one per block.  Such a chunk holds no record (none was written there since its
 * allocation, and the bytes of it behind the append are free: an append enters a chunk at
 * its start, or after a jump of the log's end, to a lap's start or at a reset, past nothing
 * live), so a crash that keeps or loses any of its zeros changes no record; a failed zero
 * write fails the log as any failed write does (INV-4).  Only chunks wholly inside what was
 * allocated are marked: a chunk across the old end of a grown ring, or of a file cut short,
 * goes on converting block by block (review H22: a cost, at most 256 KiB a growth; the
 * engine's automatic rings are whole MiB).  Measured (kvfs-bench syncwrite on a
 * new store's 36 MiB ring, 3 alternating runs, durable puts/s before -> after): 100-byte
 * puts, 1 thread 10.2-10.7 k -> 10.8-11.2 k, 16 threads 38.2-41.7 k -> 42.4-45.9 k; 4 KiB
 * puts, 1 thread 5.8-6.6 k -> 9.0-10.3 k, 16 threads 24.7-27.4 k -> 28.7-29.3 k.
 *
 * Recovery never trusts a length: a record's size is checked against WAL_REC_HDR, the rest
 * of its lap and half the ring before any byte of its payload is read; the walk stops after
 * one lap (from + ring_bytes), so arbitrary bytes in the ring end the replay, never the
 * process.
 */
#define _GNU_SOURCE
#include "wal/log.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "store/checksum.h"

/* Test hook: tests/check_wal_perturb.c builds this file with KVFS_WAL_PERTURB, and then
 * wal_perturb() (which it defines: a random yield or sleep) runs at the points where the
 * group commit's threads race, widening the windows a lost wake-up needs.  The library's
 * build compiles the hook away. */
#ifdef KVFS_WAL_PERTURB
void wal_perturb(void);
#define WAL_PERTURB() wal_perturb()
#else
#define WAL_PERTURB() ((void)0)
#endif

/* Header field offsets (log.h, man/kvfs.5 "LOG"). */
#define H_CHECKSUM 0
#define H_MAGIC 8
#define H_VERSION 16
#define H_ZERO 20
#define H_RING_BYTES 24
#define H_SALT 32
#define H_USED_END 40 /* bytes 40..4095 are zero */
#define WAL_MAGIC "KVFSWAL\0"

/* Record header field offsets. */
#define R_SIZE 0
#define R_TYPE 4
#define R_LSN 8
#define R_CHECKSUM 16

/* Largest size field: padded to 8 it still fits the u32. */
#define REC_SIZE_MAX 0xfffffff8u
/* Recovery reads the ring in windows of this many bytes. */
#define READ_WINDOW ((size_t)1 << 20)

struct wal {
	struct io_file *f;
	char *path;
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
	bool rdonly;
	/* ring_bytes: set at open; changed only by wal_resize, under mu, while the log is empty.
	 * Atomic so that wal_append may reject an oversized record before taking mu (it checks
	 * again under mu); every other reader holds mu or runs before the first append. */
	_Atomic uint64_t ring;

	pthread_mutex_t mu;
	pthread_cond_t room;    /* released advanced, or the log failed */

	uint64_t salt;    /* protected by mu */
	_Atomic lsn_t end; /* written under mu: next append; every byte below it is written (an
			      append updates it after its pwrite); read without mu by a flush */
	_Atomic lsn_t durable; /* written under mu; read without it by wal_wait_durable */
	lsn_t released;   /* protected by mu */
	bool ready;       /* protected by mu: appends allowed (created now, or recovered) */
	bool created;     /* set by wal_open: it created the log, whose ring is all zeros (no
			     stale record for wal_recover to erase) */
	bool appended;    /* protected by mu: an append happened (wal_recover is too late) */
	_Atomic int failed; /* written under mu: 0, or the sticky -EIO (INV-4); read without it
			       by wal_wait_durable */

	/* Group commit (wal_wait_durable).  No waiter takes mu: the leader of a flush is the
	 * thread that sets `flushing`; the others queue a struct durable_wait (their LSN and a
	 * futex word) on `waiters` and sleep.  The end of a flush (wake_waiters) wakes exactly the
	 * waiters whose LSN is now durable (all of them when the log failed), and one more, when
	 * no flush runs, to lead the next.  With a condition variable under mu every woken waiter
	 * reacquired mu in turn (a convoy behind the appends' pwrites); with one futex word for
	 * all, every end of a flush woke every waiter, and those whose records came after the
	 * flush's target (one per durable put with 16 syncwrite threads) slept again: two
	 * context switches for nothing. */
	_Atomic bool flushing;     /* a thread flushes: set (compare-and-swap) and cleared by it */
	pthread_mutex_t wq_mu;     /* protects `waiters`; taken after mu when both are held */
	struct durable_wait *waiters; /* protected by wq_mu: queued waiters, newest first */
	/* reset_ring, waiting for a flush to end to take the leader flag, sleeps on flush_seq */
	_Atomic uint32_t flush_seq; /* futex word: bumped at each end of a flush */
	_Atomic uint32_t sleepers; /* threads in futex_wait on flush_seq, or about to be */
	_Atomic uint64_t n_waits; /* wal_wait_durable calls that did not find their LSN durable */
	uint64_t n_appends, bytes_appended, n_syncs, n_full_waits; /* protected by mu */

	/* The file mapped read-only, header and ring (writable logs), so that
	 * wal_append_mapped can say where a record's payload lies: map NULL when mapping failed
	 * (appends go on; the caller copies).  Set at open, and again by reset_ring (under mu,
	 * the log empty: no one holds a pointer into it) when the ring changes. */
	const uint8_t *map;
	size_t map_len;
	bool no_map;      /* wal_options.no_map */

	/* "Written ring" (top of file): one bit per ZERO_CHUNK bytes of the ring, chunk i at
	 * file offsets WAL_HDR_SIZE + i * ZERO_CHUNK (the last one cut at the ring's end), set
	 * for a chunk that this process allocated (create_log, a growth in reset_ring, a
	 * re-allocation at open) and that no append has reached since: an unwritten extent for
	 * ext4.  unw_left: bits set; unw NULL (or none set) when there is nothing to do.
	 * Protected by mu. */
	uint8_t *unw;
	uint64_t unw_chunks, unw_left, bytes_zeroed;
};

/* ---- little helpers ------------------------------------------------------------------- */

/* Little-endian fields by one unaligned load or store each (the byte loops they replaced
 * were most of a stale scan's time: one ld64 per 8 bytes of ring at every open). */
static inline void st32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static inline void st64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static inline uint32_t ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}

static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static inline uint64_t round8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

static void wlog(const struct wal *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One diagnostic line "wal: PATH: ..." to the log callback (stderr when there is none). */
static void wlog(const struct wal *w, const char *fmt, ...)
{
	char line[512];
	int n;
	va_list ap;

	n = snprintf(line, sizeof(line), "wal: %s: ", w->path);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (w->log)
		w->log(w->log_ctx, line);
	else
		fprintf(stderr, "%s\n", line);
}

/* A new random salt, different from `old`.  getrandom(2), not waiting for the entropy pool
 * (a log created early at boot must not hang); should the kernel refuse, a hash of clocks, the
 * pid and an address: the salt needs to differ from every earlier one, not to be secret. */
static uint64_t new_salt(uint64_t old)
{
	uint64_t s = old;

	while (s == old) {
		ssize_t n = getrandom(&s, sizeof(s), GRND_NONBLOCK);

		if (n == (ssize_t)sizeof(s))
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		struct timespec a, b;
		clock_gettime(CLOCK_REALTIME, &a);
		clock_gettime(CLOCK_MONOTONIC, &b);
		uint64_t x = (uint64_t)a.tv_sec * 1000000007u ^ (uint64_t)a.tv_nsec ^
			     (uint64_t)b.tv_nsec << 32 ^ (uint64_t)getpid() << 40 ^
			     (uint64_t)(uintptr_t)&x ^ old;
		s = checksum64(&x, sizeof(x), (uint64_t)b.tv_sec);
	}
	return s;
}

/* Checksum of a record: XXH3-64 of header bytes 0..15 followed by the payload, seed salt. */
/* wal_record_checksum of a payload in pieces, iov[0..iovcnt). */
static uint64_t record_checksumv(const uint8_t *hdr, const struct iovec *iov, int iovcnt,
				 uint64_t salt)
{
	XXH3_state_t st;

	/* A state on the stack must be initialised: reset_withSeed reuses its derived secret when
	 * the old seed equals the new one (XXH3_INITSTATE in xxhash.h). */
	memset(&st, 0, sizeof(st));
	XXH3_64bits_reset_withSeed(&st, salt);
	XXH3_64bits_update(&st, hdr, 16);
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len)
			XXH3_64bits_update(&st, iov[i].iov_base, iov[i].iov_len);
	return XXH3_64bits_digest(&st);
}

uint64_t wal_record_checksum(const uint8_t *hdr, const void *payload, size_t len, uint64_t salt)
{
	struct iovec iov = { (void *)payload, len };
	return record_checksumv(hdr, &iov, 1, salt);
}

/* Fill a record header (24 bytes) for a record of `size` bytes (header + payload). */
static void rec_header(uint8_t *hdr, uint32_t size, uint32_t type, lsn_t lsn, const void *payload,
		       size_t len, uint64_t salt)
{
	st32(hdr + R_SIZE, size);
	st32(hdr + R_TYPE, type);
	st64(hdr + R_LSN, lsn);
	st64(hdr + R_CHECKSUM, wal_record_checksum(hdr, payload, len, salt));
}

static inline uint64_t file_off(const struct wal *w, lsn_t lsn)
{
	return WAL_HDR_SIZE + lsn % w->ring;
}

/* Map the file's header and ring, [0, WAL_HDR_SIZE + ring), in place of the old mapping
 * (w->map).  Under mu, or before the first append.  A failure leaves map NULL, said through
 * the log callback: wal_append_mapped then hands out no pointers, and its callers copy. */
static void ring_map(struct wal *w)
{
	const void *p;
	size_t len = (size_t)(WAL_HDR_SIZE + w->ring);

	if (w->map)
		io_unmap(w->f, w->map, w->map_len);
	w->map = NULL;
	w->map_len = 0;
	int rc = io_map(w->f, len, &p);
	if (rc < 0) {
		wlog(w, "cannot map the log (%s): values are copied out of it", strerror(-rc));
		return;
	}
	w->map = p;
	w->map_len = len;
}

/* A thread in wal_wait_durable, queued on w->waiters (on its stack). */
struct durable_wait {
	lsn_t lsn;                 /* it returns when durable >= lsn, or the log failed */
	_Atomic uint32_t woken;    /* futex word: set once it is taken off the queue */
	/* protected by wq_mu while queued; once wake_waiters took it off the queue, read by the
	 * waker alone, without wq_mu (the waiter touches nothing until it sees `woken`) */
	struct durable_wait *next;
};

static void futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Sleep while *word == val.  Returns at once when it differs; may return spuriously (EINTR, a
 * wake for another reason): callers look again. */
static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

/*
 * Wake the queued waiters that need not wait any more: those whose LSN is durable (all when
 * the log failed), and, when no flush runs and some remain, one of those to lead the next
 * flush.  Called, with or without mu, by whoever cleared flushing (after it published
 * durable or failed), and by fail_locked (a flush may still run then: every waiter is woken
 * anyway).  No waiter is left asleep: a waiter queues itself under wq_mu only after it saw
 * there a flush running and its LSN not durable; whatever ends that flush clears flushing
 * and then calls this, which takes wq_mu after the waiter released it and finds it.  A woken
 * waiter is off the queue and looks again (wal_wait_durable); the one woken to lead may find
 * that another thread leads already (it queues itself again), or that its LSN became durable
 * meanwhile (it returns: the thread that made it durable calls this after, and elects
 * another).  tests/check_wal_perturb.c attacks these races.
 */
static void wake_waiters(struct wal *w)
{
	struct durable_wait *wake = NULL;
	pthread_mutex_lock(&w->wq_mu);
	bool failed = atomic_load(&w->failed) != 0;
	lsn_t durable = atomic_load(&w->durable);
	WAL_PERTURB();
	for (struct durable_wait **pp = &w->waiters; *pp;) {
		struct durable_wait *d = *pp;
		if (failed || d->lsn <= durable) {
			*pp = d->next;
			d->next = wake;
			wake = d;
		} else {
			pp = &d->next;
		}
	}
	if (w->waiters && !atomic_load(&w->flushing)) { /* one leads the next flush */
		struct durable_wait *d = w->waiters;
		w->waiters = d->next;
		d->next = wake;
		wake = d;
	}
	pthread_mutex_unlock(&w->wq_mu);
	WAL_PERTURB();
	while (wake) {
		struct durable_wait *next = wake->next; /* the waiter may return once woken */
		atomic_store(&wake->woken, 1);
		WAL_PERTURB();
		futex_wake(&wake->woken, 1); /* on a word that may be gone: wakes nobody then */
		wake = next;
	}
}

/* Wake reset_ring if it waits for the leader flag (flush_seq).  No wake-up is lost: it reads
 * flush_seq before it tries the flag, then counts itself in sleepers before FUTEX_WAIT
 * re-reads flush_seq in the kernel; this bumps flush_seq, then reads sleepers (all
 * sequentially consistent).  Caller holds mu. */
static void wake_reset(struct wal *w)
{
	atomic_fetch_add(&w->flush_seq, 1);
	if (atomic_load(&w->sleepers))
		futex_wake(&w->flush_seq, INT_MAX);
}

/* A flush (or a reset) ended, or the log failed: wake reset_ring and the queued waiters it
 * concerns.  Caller holds mu (lead_flush does the same in two steps, the second after it
 * released mu). */
static void flush_ended(struct wal *w)
{
	wake_reset(w);
	wake_waiters(w);
}

/* Make the log failed (INV-4) after `what` returned `rc`; returns rc.  Caller holds mu. */
static int fail_locked(struct wal *w, int rc, const char *what)
{
	if (!w->failed)
		wlog(w, "%s failed: %s; the log is failed until reopened", what, strerror(-rc));
	w->failed = -EIO;
	flush_ended(w);
	pthread_cond_broadcast(&w->room);
	return rc;
}

/* A pwrite that must write everything: 0 or -errno (-EIO for a short count). */
static int write_full(struct wal *w, const void *buf, size_t len, uint64_t off)
{
	ssize_t n = io_pwrite(w->f, buf, len, off);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

/* ---- header ----------------------------------------------------------------------------- */

static void header_encode(uint8_t *h, uint64_t ring, uint64_t salt)
{
	memset(h, 0, WAL_HDR_SIZE);
	memcpy(h + H_MAGIC, WAL_MAGIC, 8);
	st32(h + H_VERSION, WAL_FORMAT_VERSION);
	st64(h + H_RING_BYTES, ring);
	st64(h + H_SALT, salt);
	st64(h + H_CHECKSUM, checksum64(h + 8, WAL_HDR_SIZE - 8, 0));
}

/* Decode and check a header: 0, -EINVAL (magic), -EUCLEAN (checksum, fields),
 * -EPROTONOSUPPORT (version).  *why names the problem. */
static int header_decode(const uint8_t *h, uint64_t *ring, uint64_t *salt, const char **why)
{
	if (memcmp(h + H_MAGIC, WAL_MAGIC, 8) != 0) {
		*why = "bad magic (not a kvfs log)";
		return -EINVAL;
	}
	if (ld64(h + H_CHECKSUM) != checksum64(h + 8, WAL_HDR_SIZE - 8, 0)) {
		*why = "header checksum mismatch";
		return -EUCLEAN;
	}
	if (ld32(h + H_VERSION) != WAL_FORMAT_VERSION) {
		*why = "unknown log format version";
		return -EPROTONOSUPPORT;
	}
	*ring = ld64(h + H_RING_BYTES);
	*salt = ld64(h + H_SALT);
	if (ld32(h + H_ZERO) != 0) {
		*why = "header: nonzero reserved field";
		return -EUCLEAN;
	}
	if (*ring % 4096 != 0 || *ring < WAL_MIN_RING || *ring > WAL_MAX_RING) {
		*why = "header: ring_bytes out of range";
		return -EUCLEAN;
	}
	for (size_t i = H_USED_END; i < WAL_HDR_SIZE; i++) {
		if (h[i] != 0) {
			*why = "header: nonzero reserved bytes";
			return -EUCLEAN;
		}
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* The ring's chunks for its zeros ("Written ring"). */
#define ZERO_CHUNK ((uint64_t)256 << 10)
static const uint8_t zero_block[64 << 10];

/* Chunk c of the ring: file offsets [*lo, *hi). */
static void chunk_span(const struct wal *w, uint64_t c, uint64_t *lo, uint64_t *hi)
{
	*lo = WAL_HDR_SIZE + c * ZERO_CHUNK;
	*hi = *lo + ZERO_CHUNK < WAL_HDR_SIZE + w->ring ? *lo + ZERO_CHUNK : WAL_HDR_SIZE + w->ring;
}

/*
 * The ring is `ring` bytes now, and this process allocated file offsets [from, WAL_HDR_SIZE +
 * ring) of it: mark the chunks wholly inside as unwritten, those past the ring forgotten.
 * Caller holds mu or owns w (open).  Without memory for the bits, nothing is marked.
 */
static void mark_unwritten(struct wal *w, uint64_t ring, uint64_t from)
{
	uint64_t n = (ring + ZERO_CHUNK - 1) / ZERO_CHUNK;
	size_t bytes = (size_t)((n + 7) / 8);
	uint8_t *u = calloc(bytes ? bytes : 1, 1);
	if (!u)
		return;
	uint64_t left = 0;
	for (uint64_t c = 0; c < n; c++) {
		uint64_t lo = WAL_HDR_SIZE + c * ZERO_CHUNK;
		bool old = w->unw && c < w->unw_chunks && (w->unw[c / 8] >> (c % 8) & 1);
		if (old || lo >= from) {
			u[c / 8] |= (uint8_t)(1u << (c % 8));
			left++;
		}
	}
	free(w->unw);
	w->unw = u;
	w->unw_chunks = n;
	w->unw_left = left;
}

/* Create the log in an empty (or never finished) file: the ring preallocated and durable
 * first, then the header, then durable again — so that a crash leaves either a complete log
 * or a header of zeros, which the next create starts over (wal_open). */
static int create_log(struct wal *w, uint64_t ring)
{
	uint8_t *h = malloc(WAL_HDR_SIZE);
	int rc;

	if (!h)
		return -ENOMEM;
	w->ring = ring;
	w->salt = new_salt(0);
	header_encode(h, ring, w->salt);
	rc = io_allocate(w->f, 0, WAL_HDR_SIZE + ring);
	if (rc == 0) {
		rc = io_sync(w->f);
		w->n_syncs++;
	}
	mark_unwritten(w, ring, WAL_HDR_SIZE);
	if (rc == 0)
		rc = write_full(w, h, WAL_HDR_SIZE, 0);
	if (rc == 0) {
		rc = io_sync(w->f);
		w->n_syncs++;
	}
	free(h);
	if (rc < 0)
		wlog(w, "cannot create the log: %s", strerror(-rc));
	return rc;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void wal_free(struct wal *w)
{
	if (w->map)
		io_unmap(w->f, w->map, w->map_len);
	if (w->f)
		io_close(w->f);
	free(w->unw);
	free(w->path);
	free(w);
}

/* A header of zeros, or a file shorter than one: is any byte of the file not zero?  Then it
 * is not a creation that a crash interrupted (which leaves the ring zero: create_log). */
static int any_nonzero(struct io_file *f, uint64_t size, bool *nonzero)
{
	uint8_t *b = malloc(READ_WINDOW);
	int rc = 0;

	*nonzero = false;
	if (!b)
		return -ENOMEM;
	for (uint64_t off = 0; off < size && !*nonzero;) {
		size_t want = size - off < READ_WINDOW ? (size_t)(size - off) : READ_WINDOW;
		ssize_t got = io_pread(f, b, want, off);

		if (got < 0) {
			rc = (int)got;
			break;
		}
		if (got == 0)
			break;
		*nonzero = !all_zero(b, (size_t)got);
		off += (uint64_t)got;
	}
	free(b);
	return rc;
}

int wal_open(const char *path, const struct wal_options *opt, struct wal **out)
{
	static const struct wal_options dflt;
	struct io_env *io;
	struct wal *w;
	uint8_t *h = NULL;
	uint64_t size = 0, ring = 0, salt = 0;
	const char *why = NULL;
	ssize_t n;
	int rc, flags;

	*out = NULL;
	if (!opt)
		opt = &dflt;
	if (!path || (opt->create && opt->rdonly))
		return -EINVAL;
	io = opt->io ? opt->io : io_posix_env();
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->path = strdup(path);
	w->log = opt->log;
	w->log_ctx = opt->log_ctx;
	w->rdonly = opt->rdonly;
	h = malloc(WAL_HDR_SIZE);
	if (!w->path || !h) {
		rc = -ENOMEM;
		goto fail;
	}
	flags = (opt->rdonly ? IO_OPEN_RDONLY : 0) | (opt->create ? IO_OPEN_CREATE : 0);
	rc = io_open(io, path, flags, 0644, &w->f);
	if (rc < 0) {
		w->f = NULL;
		goto fail;
	}
	rc = io_size(w->f, &size);
	if (rc < 0)
		goto fail;
	n = size >= WAL_HDR_SIZE ? io_pread(w->f, h, WAL_HDR_SIZE, 0) : 0;
	if (n < 0) {
		rc = (int)n;
		goto fail;
	}
	if ((size_t)n < WAL_HDR_SIZE || all_zero(h, WAL_HDR_SIZE)) {
		/* A new file, or a creation that a crash interrupted before its header was
		 * durable (create_log writes the header last): no record was ever appended. */
		if (!opt->create) {
			rc = -EINVAL;
			wlog(w, "not a kvfs log (%s)", size < WAL_HDR_SIZE ? "too short" :
			     "header is zero");
			goto fail;
		}
		if (size > 0) {
			/* An interrupted creation leaves every byte zero (create_log syncs the
			 * zeroed ring before it writes the header).  A zero header over bytes
			 * that are not is a destroyed header: creating the log again would drop
			 * its records without a word. */
			bool nonzero;
			rc = any_nonzero(w->f, size, &nonzero);
			if (rc < 0)
				goto fail;
			if (nonzero) {
				rc = -EUCLEAN;
				wlog(w, "the log header is zero but the log holds records: not "
				     "creating it again (kvfs-check tells more)");
				goto fail;
			}
		}
		ring = opt->ring_bytes ? opt->ring_bytes : WAL_DEFAULT_RING;
		if (ring > WAL_MAX_RING) {
			rc = -EINVAL;
			goto fail;
		}
		ring = (ring + 4095) & ~(uint64_t)4095;
		if (ring < WAL_MIN_RING)
			ring = WAL_MIN_RING;
		if (size > 0)
			wlog(w, "header is zero: creation was interrupted; creating the log again");
		rc = create_log(w, ring);
		if (rc < 0)
			goto fail;
		w->ready = true; /* a new log: appends start at LSN 0 (or wal_recover's from) */
		w->created = true;
	} else {
		rc = header_decode(h, &ring, &salt, &why);
		if (rc < 0) {
			wlog(w, "%s", why);
			goto fail;
		}
		w->ring = ring;
		w->salt = salt;
		if (size > WAL_HDR_SIZE + ring && !opt->rdonly) {
			/* A resize that a crash interrupted (INV-7): the bytes past the ring mean
			 * nothing.  Trimmed without a sync: a crash may keep either length. */
			rc = io_truncate(w->f, WAL_HDR_SIZE + ring);
			if (rc < 0)
				wlog(w, "cannot trim the file to its ring (%llu bytes, ring %llu): "
				     "%s; going on", (unsigned long long)size,
				     (unsigned long long)ring, strerror(-rc));
			rc = 0;
		}
		if (size < WAL_HDR_SIZE + ring && !opt->rdonly) {
			/* The header is durable but the ring's allocation is not (or the file was
			 * cut): reserve it again; it changes no byte that is there. */
			rc = io_allocate(w->f, 0, WAL_HDR_SIZE + ring);
			if (rc == 0) {
				rc = io_sync(w->f);
				w->n_syncs++;
			}
			mark_unwritten(w, ring, size);
			if (rc < 0) {
				wlog(w, "cannot allocate the ring: %s", strerror(-rc));
				goto fail;
			}
		}
	}
	free(h);
	w->no_map = opt->no_map;
	if (!opt->rdonly && !w->no_map)
		ring_map(w);
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->wq_mu, NULL);
	pthread_cond_init(&w->room, NULL);
	*out = w;
	return 0;
fail:
	free(h);
	wal_free(w);
	return rc;
}

void wal_close(struct wal *w)
{
	if (!w)
		return;
	pthread_cond_destroy(&w->room);
	pthread_mutex_destroy(&w->mu);
	pthread_mutex_destroy(&w->wq_mu);
	wal_free(w);
}

/* ---- recovery ---------------------------------------------------------------------------- */

/* A read window over the ring: bytes past the end of the file read as zero. */
struct rd {
	struct wal *w;
	uint8_t *buf;
	size_t cap;
	uint64_t off; /* file offset of buf[0] */
	size_t len;   /* valid bytes in buf */
};

/* Point *p at file bytes [off, off + n), which lie within one lap of the ring. 0 or -errno. */
static int rd_get(struct rd *r, uint64_t off, size_t n, const uint8_t **p)
{
	uint64_t lap_end = WAL_HDR_SIZE + r->w->ring;
	size_t want;
	ssize_t got;

	if (off >= r->off && off + n <= r->off + r->len) {
		*p = r->buf + (off - r->off);
		return 0;
	}
	want = n > READ_WINDOW ? n : READ_WINDOW;
	if (want > lap_end - off)
		want = (size_t)(lap_end - off);
	if (want > r->cap) {
		uint8_t *b = realloc(r->buf, want);

		if (!b)
			return -ENOMEM;
		r->buf = b;
		r->cap = want;
	}
	r->len = 0;
	got = io_pread(r->w->f, r->buf, want, off);
	if (got < 0)
		return (int)got;
	memset(r->buf + got, 0, want - (size_t)got);
	r->off = off;
	r->len = want;
	*p = r->buf;
	return 0;
}

/*
 * What the bytes at `lsn`'s place are (man/kvfs.5 "LOG": when a record is valid) — the one
 * record validator, used by recovery (recover_scan) and by inspection (wal_inspect).
 */
enum rec_kind {
	REC_VALID, /* a valid record that is not a pad: rec, size, type */
	REC_SKIP,  /* a valid pad record or a gap: the next record starts at `next` */
	REC_END,   /* not a valid record (or one that would pass `limit`): the end of the log */
};

struct rec_view {
	enum rec_kind kind;
	const uint8_t *rec; /* REC_VALID: header and payload, in the read window */
	uint32_t size, type;
	lsn_t next;         /* REC_VALID, REC_SKIP: the LSN after it */
	const char *why;    /* REC_END: what does not hold */
};

/* A header that stale_scan zeroes (INV-5): its lsn field is its place's LSN and its size at
 * least a header (a smaller size can never validate, whatever is written after it).  At the
 * end of the log, the same test tells a torn record from a place never written or left by
 * another lap (wal_inspect). */
static bool hdr_own_lsn(const uint8_t *hdr, lsn_t lsn)
{
	return ld64(hdr + R_LSN) == lsn && ld32(hdr + R_SIZE) >= WAL_REC_HDR;
}

/* Look at the record place `lsn` (8-aligned, below `limit`, the walk's one-lap bound).
 * 0 with *v filled in, or -errno of a read. */
static int rec_at(const struct wal *w, struct rd *r, lsn_t lsn, lsn_t limit,
		  struct rec_view *v)
{
	const uint64_t ring = w->ring, pos = lsn % ring, rem = ring - pos;
	const uint8_t *hdr, *rec;
	uint64_t padded;
	int rc;

	memset(v, 0, sizeof(*v));
	v->kind = REC_END;
	if (rem < WAL_REC_HDR) { /* a gap: the next record starts the next lap */
		if (lsn + rem > limit) {
			v->why = "one lap walked";
			return 0; /* no writer could have gone past from + ring (INV-2) */
		}
		v->kind = REC_SKIP;
		v->next = lsn + rem;
		return 0;
	}
	rc = rd_get(r, WAL_HDR_SIZE + pos, WAL_REC_HDR, &hdr);
	if (rc < 0)
		return rc;
	v->size = ld32(hdr + R_SIZE);
	v->type = ld32(hdr + R_TYPE);
	if (ld64(hdr + R_LSN) != lsn) {
		v->why = "lsn field is not its place's (never written, or another lap)";
		return 0; /* the normal end */
	}
	if (v->size < WAL_REC_HDR || v->size > REC_SIZE_MAX) {
		v->why = "size out of range";
		return 0; /* torn (or, below a header, never a record) */
	}
	padded = round8(v->size);
	if (v->type == WAL_PAD && v->size != WAL_REC_HDR) {
		v->why = "a pad record with a payload";
		return 0; /* a pad record is a bare header */
	}
	if (padded > rem || padded > ring / 2) {
		v->why = "size crosses the end of the lap or exceeds half the ring";
		return 0; /* INV-1 */
	}
	if (lsn + padded > limit) {
		v->why = "the record would end more than one lap past the walk's start";
		return 0; /* INV-2 */
	}
	rc = rd_get(r, WAL_HDR_SIZE + pos, (size_t)padded, &rec);
	if (rc < 0)
		return rc;
	if (ld64(rec + R_CHECKSUM) !=
	    wal_record_checksum(rec, rec + WAL_REC_HDR, v->size - WAL_REC_HDR, w->salt)) {
		v->why = "checksum mismatch";
		return 0;
	}
	if (v->type == WAL_PAD) {
		if (lsn + rem > limit) {
			v->why = "one lap walked";
			return 0; /* as for a gap */
		}
		v->kind = REC_SKIP;
		v->next = lsn + rem;
		return 0;
	}
	v->kind = REC_VALID;
	v->rec = rec;
	v->next = lsn + padded;
	return 0;
}

/* Walk the records from `from`, calling fn for each valid non-pad record; *end receives the
 * LSN past the last valid one, and *stop (may be NULL) what is at *end.  0, fn's error, or
 * -errno of a read. */
static int recover_scan(struct wal *w, struct rd *r, lsn_t from,
			int (*fn)(void *, lsn_t, unsigned, const void *, size_t), void *ctx,
			lsn_t *end, struct rec_view *stop)
{
	const lsn_t limit = from + w->ring;
	struct rec_view v = { .kind = REC_END, .why = "one lap walked" };
	lsn_t lsn = from;
	int rc = 0;

	while (lsn < limit) {
		rc = rec_at(w, r, lsn, limit, &v);
		if (rc < 0 || v.kind == REC_END)
			break;
		if (v.kind == REC_VALID) {
			/* The payload lives in r's buffer, which fn must not keep (log.h). */
			rc = fn(ctx, lsn, v.type, v.rec + WAL_REC_HDR, v.size - WAL_REC_HDR);
			if (rc < 0)
				break;
			rc = 0;
		}
		lsn = v.next;
	}
	if (lsn >= limit)
		v = (struct rec_view){ .kind = REC_END, .why = "one lap walked" };
	if (stop)
		*stop = v;
	*end = lsn; /* <= limit: nothing valid is longer than one lap */
	return rc;
}

/*
 * The stale headers of the free ring, LSNs [end, limit): every 8-aligned position whose
 * header carries its own LSN and a size of at least a header (hdr_own_lsn).  Reads the free
 * part of the ring once.  Calls seen(ctx, lsn) for each (when seen is not NULL; its error
 * stops the scan).  With `erase` (INV-5, wal_recover): zeroes each such header, then makes
 * that durable — writing only where it found one (rarely: after a power cut that kept records
 * behind a torn one); *wrote tells whether it wrote.  Without (wal_inspect): writes nothing.
 * 0, seen's error, or -errno.
 */
static int stale_scan(struct wal *w, struct rd *r, lsn_t end, lsn_t limit, bool erase,
		      int (*seen)(void *ctx, lsn_t lsn), void *ctx, bool *wrote)
{
	const uint64_t ring = w->ring;
	lsn_t x = end;
	int rc;

	*wrote = false;
	while (x < limit) {
		uint64_t pos = x % ring, lap_rem = ring - pos;
		uint64_t seg = limit - x < lap_rem ? limit - x : lap_rem;
		size_t chunk = seg < READ_WINDOW ? (size_t)seg : READ_WINDOW;
		/* Read 16 bytes more (within the lap) so that the last positions' lsn fields are
		 * in the buffer too. */
		size_t extra = lap_rem - chunk < 16 ? (size_t)(lap_rem - chunk) : 16;
		const uint8_t *p;
		uint8_t *b;
		size_t first = SIZE_MAX, last = 0;

		rc = rd_get(r, WAL_HDR_SIZE + pos, chunk + extra, &p);
		if (rc < 0)
			return rc;
		b = (uint8_t *)p; /* r's own buffer */
		for (size_t o = 0; o < chunk; o += 8) {
			if (lap_rem - o < WAL_REC_HDR)
				break; /* the gap at the end of a lap holds no header */
			/* A header whose size is invalid can never validate: no later write
			 * changes it without rewriting the whole header. */
			if (!hdr_own_lsn(b + o, x + o))
				continue;
			if (seen && (rc = seen(ctx, x + o)) < 0)
				return rc;
			if (!erase)
				continue;
			memset(b + o, 0, WAL_REC_HDR);
			if (first == SIZE_MAX)
				first = o;
			last = o + WAL_REC_HDR;
		}
		if (first != SIZE_MAX) {
			rc = write_full(w, b + first, last - first, WAL_HDR_SIZE + pos + first);
			if (rc < 0)
				return rc;
			*wrote = true;
		}
		if (erase)
			r->len = 0; /* the window no longer matches the file: drop it */
		x += chunk;
	}
	if (*wrote) {
		rc = io_sync(w->f);
		pthread_mutex_lock(&w->mu);
		w->n_syncs++;
		pthread_mutex_unlock(&w->mu);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int wal_recover(struct wal *w, lsn_t from,
		int (*fn)(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len),
		void *ctx, lsn_t *end)
{
	struct rd r = { .w = w, .off = 0, .len = 0 };
	lsn_t e = from;
	bool wrote = false;
	int rc;

	if (from % 8 != 0 || from > WAL_LSN_MAX || !fn)
		return -EINVAL;
	pthread_mutex_lock(&w->mu);
	rc = w->failed ? -EIO : w->appended ? -EINVAL : 0;
	pthread_mutex_unlock(&w->mu);
	if (rc < 0)
		return rc;

	rc = recover_scan(w, &r, from, fn, ctx, &e, NULL);
	/* A log wal_open has just created is zeros: nothing stale to find (a new store's open
	 * would otherwise read its whole ring). */
	if (rc == 0 && !w->rdonly && !w->created) {
		rc = stale_scan(w, &r, e, from + w->ring, true, NULL, NULL, &wrote);
		if (rc < 0) {
			pthread_mutex_lock(&w->mu);
			fail_locked(w, rc, "erasing stale records");
			pthread_mutex_unlock(&w->mu);
			rc = -EIO;
		}
	}
	free(r.buf);
	if (rc < 0)
		return rc;

	pthread_mutex_lock(&w->mu);
	w->end = e;
	w->released = from;
	w->durable = wrote ? e : from; /* INV-3: only a sync after the records makes them so */
	w->ready = true;
	pthread_mutex_unlock(&w->mu);
	if (end)
		*end = e;
	return 0;
}

/* ---- inspection (kvfs-check) ------------------------------------------------------------ */

struct insp {
	const struct wal_inspect_ops *ops;
	void *ctx;
	struct wal_inspect_result *out;
};

static int insp_record(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len)
{
	struct insp *in = ctx;

	in->out->n_records++;
	in->out->payload_bytes += len;
	if (in->ops && in->ops->record)
		return in->ops->record(in->ctx, lsn, type, payload, len);
	return 0;
}

static int insp_stale(void *ctx, lsn_t lsn)
{
	struct wal_inspect_result *out = ctx;

	if (lsn == out->end && out->tail == WAL_TAIL_TORN)
		return 0; /* the torn record itself, reported as such */
	if (out->n_stale < WAL_INSPECT_MAX_STALE)
		out->stale[out->n_stale] = lsn;
	out->n_stale++;
	return 0;
}

int wal_inspect(const char *path, struct io_env *io, lsn_t from,
		const struct wal_inspect_ops *ops, void *ctx, struct wal_inspect_result *out)
{
	struct wal w;
	struct rd r = { .w = &w };
	struct rec_view stop;
	struct insp in = { .ops = ops, .ctx = ctx, .out = out };
	uint8_t *h = NULL;
	uint64_t ring = 0, salt = 0;
	const uint8_t *hdr;
	bool wrote;
	ssize_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	out->from = out->end = from;
	if (!path || from % 8 != 0 || from > WAL_LSN_MAX) {
		out->why = "the starting LSN is not a log position";
		return -EINVAL;
	}
	memset(&w, 0, sizeof(w)); /* only f, ring, salt and path are used by the walk */
	w.rdonly = true;
	w.path = (char *)path;
	rc = io_open(io ? io : io_posix_env(), path, IO_OPEN_RDONLY, 0, &w.f);
	if (rc < 0) {
		out->why = rc == -ENOENT ? "missing" : "cannot open";
		return rc;
	}
	rc = io_size(w.f, &out->file_bytes);
	if (rc < 0)
		goto done;
	h = malloc(WAL_HDR_SIZE);
	if (!h) {
		rc = -ENOMEM;
		goto done;
	}
	n = out->file_bytes >= WAL_HDR_SIZE ? io_pread(w.f, h, WAL_HDR_SIZE, 0) : 0;
	if (n < 0) {
		rc = (int)n;
		goto done;
	}
	if ((size_t)n < WAL_HDR_SIZE || all_zero(h, WAL_HDR_SIZE)) {
		out->zero_header = true;
		out->why = (size_t)n < WAL_HDR_SIZE ? "shorter than a header" : "header is zero";
		rc = any_nonzero(w.f, out->file_bytes, &out->nonzero_after);
		if (rc == 0)
			rc = -EINVAL;
		goto done;
	}
	out->version = ld32(h + H_VERSION);
	out->ring_bytes = ld64(h + H_RING_BYTES);
	out->salt = ld64(h + H_SALT);
	rc = header_decode(h, &ring, &salt, &out->why);
	if (rc < 0)
		goto done;
	w.ring = ring;
	w.salt = salt;
	out->short_file = out->file_bytes < WAL_HDR_SIZE + ring;
	out->long_file = out->file_bytes > WAL_HDR_SIZE + ring;
	if (ops && ops->header && (rc = ops->header(ctx, out)) < 0)
		goto done;

	/* The walk wal_recover makes (bytes past the end of the file read as zero). */
	rc = recover_scan(&w, &r, from, insp_record, &in, &out->end, &stop);
	if (rc < 0)
		goto done;
	out->tail_why = stop.why;
	if (out->end >= from + ring) {
		out->tail = WAL_TAIL_FULL;
	} else if (ring - out->end % ring < WAL_REC_HDR) {
		out->tail = WAL_TAIL_END; /* a gap whose lap ends past from + ring: no header */
	} else {
		rc = rd_get(&r, WAL_HDR_SIZE + out->end % ring, WAL_REC_HDR, &hdr);
		if (rc < 0)
			goto done;
		/* The end's own LSN with a size that could be a record: written at this place
		 * in this lap, then torn (or corrupted); else never written here since the last
		 * lap (or ever): the normal end. */
		out->tail = hdr_own_lsn(hdr, out->end) ? WAL_TAIL_TORN : WAL_TAIL_END;
		out->end_size = ld32(hdr + R_SIZE);
		out->end_type = ld32(hdr + R_TYPE);
	}
	/* What wal_recover would erase past the end (INV-5), without erasing it. */
	rc = stale_scan(&w, &r, out->end, from + ring, false, insp_stale, out, &wrote);
done:
	free(r.buf);
	free(h);
	io_close(w.f);
	return rc;
}

/* ---- append ---------------------------------------------------------------------------- */

/* Where a record of padded size `padded` goes when the log ends at `end`: its LSN, and
 * whether a pad record must fill the rest of the lap first (INV-1). */
static lsn_t place(uint64_t ring, lsn_t end, uint64_t padded, bool *pad)
{
	uint64_t rem = ring - end % ring;

	*pad = false;
	if (padded <= rem)
		return end;
	*pad = rem >= WAL_REC_HDR;
	return end + rem;
}

bool wal_mapped(struct wal *w)
{
	pthread_mutex_lock(&w->mu);
	bool m = w->map != NULL;
	pthread_mutex_unlock(&w->mu);
	return m;
}

bool wal_has_room(struct wal *w, uint64_t len)
{
	uint64_t padded = round8(WAL_REC_HDR + len);
	bool pad;

	pthread_mutex_lock(&w->mu);
	lsn_t lsn = place(w->ring, w->end, padded, &pad);
	bool room = lsn + padded - w->released <= w->ring;
	pthread_mutex_unlock(&w->mu);
	return room;
}

/* write_full of the run iov[0..iovcnt), len bytes in all. */
static int write_fullv(struct wal *w, const struct iovec *iov, int iovcnt, size_t len,
		       uint64_t off)
{
	ssize_t n = io_pwritev(w->f, iov, iovcnt, off);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

/*
 * Write a record of `len` bytes at file offset `off` so that a process killed during the write
 * leaves the whole record or none of its first page.  Linux stops a write to a file between
 * two pages when the writer gets a fatal signal (SIGKILL, the OOM killer): a record written in
 * one call across a page boundary could then keep its header and lose the rest, a torn tail
 * that a kill of the daemon should never leave (a power cut may: recovery and kvfs-check
 * handle those).  So a record that crosses a 4 KiB boundary is written from the first boundary
 * past its header to its end first, then its head, header included: until that second write
 * the place's LSN field still holds what it held (zeros, or an earlier lap's LSN, not this
 * one), and the log ends cleanly before it.  The head is one page, or when the header itself
 * crosses a boundary (a record starting less than WAL_REC_HDR bytes before it) the header's
 * first bytes and the next page: written in page order, a kill after its first page leaves the
 * old LSN field.  A record that fits the head is one write.  Both writes come before any sync
 * that covers the record, so durability is as with one write.
 */
static int write_record(struct wal *w, const uint8_t *rec, size_t len, uint64_t off)
{
	size_t head = 4096 - (size_t)(off % 4096);

	if (head < WAL_REC_HDR)
		head += 4096; /* the whole header in the last write */
	if (len <= head)
		return write_full(w, rec, len, off);
	int rc = write_full(w, rec + head, len - head, off + head);
	return rc < 0 ? rc : write_full(w, rec, head, off);
}

/*
 * A record in pieces (wal_append_gather): its body, payload and padding, in one pwritev, then
 * its header alone.  Until the header's write the place holds no valid record (INV-5: no stale
 * header there carries this LSN), so a failed or killed write of the body leaves the log
 * ending cleanly before it, and the header (24 bytes; a kill may tear it only where it
 * crosses a page, and then its checksum cannot match) is all or nothing as well.  A single
 * write of a record's pieces could not promise that: io_fault fails or cuts a run of buffers
 * between any two of them, and a header followed by a failed write of bytes already there
 * (zeros of a fresh ring under zero padding) made a record valid whose append had failed.
 */
static int write_record_gather(struct wal *w, uint8_t *hdr, const struct iovec *body, int n,
			       size_t plen, size_t len, uint64_t off)
{
	int rc = write_fullv(w, body, n, len, off + WAL_REC_HDR);
	if (rc < 0)
		return rc;
	/* The checksum of the payload as written: read back through the mapping (the page
	 * cache the pwritev filled), not from the caller's buffers, which a racing caller may
	 * have changed since (review H21: a record whose checksum did not hold ended the
	 * replay there after a kill, and the stale scan then erased the synced records after
	 * it).  Without a mapping, from the buffers, which must then not change (log.h). */
	bool mapped = w->map && off + WAL_REC_HDR + plen <= w->map_len;
	struct iovec wr = { mapped ? (void *)(w->map + off + WAL_REC_HDR) : NULL, plen };
	st64(hdr + R_CHECKSUM, record_checksumv(hdr, mapped ? &wr : body, mapped ? 1 : n - 1,
						w->salt));
	return write_full(w, hdr, WAL_REC_HDR, off);
}

/* Is a record of `len` bytes of payload refused by a ring of `ring` bytes (-EFBIG)? */
static bool too_big(uint64_t len, uint64_t ring)
{
	return len > ring || round8(WAL_REC_HDR + len) > ring / 2 ||
	       WAL_REC_HDR + len > REC_SIZE_MAX;
}

int wal_append_inplace(struct wal *w, unsigned type, uint8_t *rec, uint64_t len, lsn_t *end)
{
	return wal_append_mapped(w, type, rec, len, end, NULL);
}

/* Zeros for a record's padding (up to 7 bytes). */
static const uint8_t zero_pad[8];

/*
 * Before any write into the ring at file offsets [off, off + len) (a record, a pad record),
 * caller holding mu: each chunk it reaches that is still unwritten ("Written ring") is
 * written now: with zeros, when the write covers only part of it, or by the write itself when
 * it covers all of it.  Every write into the ring comes here first (but the stale scan's
 * erasures at open, which find nothing to erase in a chunk allocated by that open: it reads
 * as zeros), so a chunk whose bit is set holds nothing written since its allocation.  0 or
 * the write's -errno (the caller fails the log, as for any write: INV-4).
 */
static int zero_ahead(struct wal *w, uint64_t off, uint64_t len)
{
	if (!w->unw_left)
		return 0;
	for (uint64_t c = (off - WAL_HDR_SIZE) / ZERO_CHUNK;
	     c < w->unw_chunks && WAL_HDR_SIZE + c * ZERO_CHUNK < off + len; c++) {
		if (!(w->unw[c / 8] >> (c % 8) & 1))
			continue;
		w->unw[c / 8] &= (uint8_t)~(1u << (c % 8));
		w->unw_left--;
		uint64_t lo, hi;
		chunk_span(w, c, &lo, &hi);
		if (off <= lo && off + len >= hi)
			continue; /* the record writes all of it */
		struct iovec iov[ZERO_CHUNK / sizeof(zero_block)];
		int n = 0;
		for (uint64_t p = lo; p < hi; p += sizeof(zero_block))
			iov[n++] = (struct iovec){ (void *)zero_block,
						   (size_t)(hi - p < sizeof(zero_block) ? hi - p
										: sizeof(zero_block)) };
		int rc = write_fullv(w, iov, n, (size_t)(hi - lo), lo);
		if (rc < 0)
			return rc;
		w->bytes_zeroed += hi - lo;
	}
	return 0;
}

/*
 * The append behind all the others: the payload is iov[0..iovcnt) (len bytes); with `rec`
 * it is contiguous in rec after the header's room, with WAL_APPEND_ROOM(len) bytes there
 * (padding included), and the record goes out in one write (two across a page: write_record);
 * else the header is built in hdr and the record goes out in pieces (write_record_gather).
 */
static int append(struct wal *w, unsigned type, uint8_t *rec, uint8_t *hdr,
		  const struct iovec *iov, int iovcnt, lsn_t *end, const void **mapped)
{
	uint64_t len = 0, padded;
	bool pad, waited = false;
	lsn_t lsn;
	int rc;

	if (type == WAL_PAD || !hdr || iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	if (w->rdonly)
		return -EROFS;
	/* An early check against the ring as it is now; the one that counts is made again
	 * under mu, since wal_resize may change the ring meanwhile. */
	uint64_t ring_now = w->ring;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > ring_now || (len += iov[i].iov_len) > ring_now)
			return -EFBIG;
	}
	if (too_big(len, ring_now))
		return -EFBIG;
	padded = round8(WAL_REC_HDR + len);
	/* the body as written by pieces: payload, then padding */
	struct iovec small[8], *body = small;
	if (rec) {
		memset(rec + WAL_REC_HDR + len, 0, (size_t)(padded - WAL_REC_HDR - len));
	} else {
		if (iovcnt + 1 > 8 && !(body = malloc(((size_t)iovcnt + 1) * sizeof(*body))))
			return -ENOMEM;
		if (iovcnt)
			memcpy(body, iov, (size_t)iovcnt * sizeof(*iov));
		body[iovcnt] = (struct iovec){ (void *)zero_pad, (size_t)(padded - WAL_REC_HDR - len) };
	}

	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (w->failed) {
			rc = -EIO;
			goto out;
		}
		if (!w->ready) {
			rc = -EINVAL; /* an existing log: wal_recover first */
			goto out;
		}
		if (too_big(len, w->ring)) {
			rc = -EFBIG; /* the ring shrank since the early check */
			goto out;
		}
		lsn = place(w->ring, w->end, padded, &pad);
		if (lsn + padded - w->released <= w->ring)
			break;
		if (!waited)
			w->n_full_waits++;
		waited = true;
		pthread_cond_wait(&w->room, &w->mu); /* INV-2 */
	}
	if (pad) {
		uint8_t ph[WAL_REC_HDR];

		rec_header(ph, WAL_REC_HDR, WAL_PAD, w->end, NULL, 0, w->salt);
		rc = zero_ahead(w, file_off(w, w->end), WAL_REC_HDR);
		if (rc == 0)
			rc = write_full(w, ph, sizeof(ph), file_off(w, w->end));
		if (rc < 0) {
			fail_locked(w, rc, "writing a pad record");
			goto out;
		}
	}
	rc = zero_ahead(w, file_off(w, lsn), padded);
	if (rc < 0) {
		fail_locked(w, rc, "writing zeros ahead of a record");
		goto out;
	}
	st32(hdr + R_SIZE, (uint32_t)(WAL_REC_HDR + len));
	st32(hdr + R_TYPE, type);
	st64(hdr + R_LSN, lsn);
	if (rec) {
		st64(hdr + R_CHECKSUM, record_checksumv(hdr, iov, iovcnt, w->salt));
		rc = write_record(w, rec, (size_t)padded, file_off(w, lsn));
	} else {
		rc = write_record_gather(w, hdr, body, iovcnt + 1, (size_t)len,
					 (size_t)(padded - WAL_REC_HDR), file_off(w, lsn));
	}
	if (rc < 0) {
		fail_locked(w, rc, "writing a record");
		goto out;
	}
	w->bytes_appended += lsn + padded - w->end;
	w->end = lsn + padded;
	w->appended = true;
	w->n_appends++;
	if (end)
		*end = w->end;
	if (mapped)
		*mapped = w->map && file_off(w, lsn) + padded <= w->map_len
				  ? w->map + file_off(w, lsn) + WAL_REC_HDR : NULL;
out:
	pthread_mutex_unlock(&w->mu);
	if (body != small)
		free(body);
	return rc;
}

int wal_append_mapped(struct wal *w, unsigned type, uint8_t *rec, uint64_t len, lsn_t *end,
		      const void **mapped)
{
	if (!rec)
		return -EINVAL;
	struct iovec iov = { rec + WAL_REC_HDR, (size_t)len };
	return append(w, type, rec, rec, &iov, 1, end, mapped);
}

int wal_append(struct wal *w, unsigned type, const struct iovec *iov, int iovcnt, lsn_t *end)
{
	uint8_t hdr[WAL_REC_HDR];
	return append(w, type, NULL, hdr, iov, iovcnt, end, NULL);
}

int wal_append_gather(struct wal *w, unsigned type, uint8_t *hdr, const struct iovec *iov,
		      int iovcnt, lsn_t *end, const void **mapped)
{
	return append(w, type, NULL, hdr, iov, iovcnt, end, mapped);
}

/* ---- durability ---------------------------------------------------------------------- */

/*
 * Lead one flush (the caller set w->flushing): sync everything written so far (appends go on
 * meanwhile), then publish the new durable LSN and wake the group.  0 or -EIO (the log is
 * failed: INV-4).
 *
 * The leader does not wait for more waiters before it syncs.  An earlier version did (until
 * as many waited as in the last group, or half a flush's mean duration: the idea of MySQL's
 * binlog_group_commit_sync_delay), which raised the mean group of 16 syncwrite threads from
 * about 6 to 8.5, but cost throughput once waiters no longer queued on mu: 30,299-31,700
 * durable puts/s with it against 34,939-36,807 without (kvfs-bench syncwrite, 3 alternating
 * runs each).  Back-to-back flushes keep the disk busy; threads that arrive during a flush
 * form the next group by themselves.
 */
static int lead_flush(struct wal *w)
{
	lsn_t target = atomic_load(&w->end); /* every byte below it is written */
	int rc = io_sync(w->f);
	WAL_PERTURB();

	pthread_mutex_lock(&w->mu);
	w->n_syncs++;
	if (rc < 0) {
		/* `failed` is set before `flushing` is cleared: a thread that wins the next
		 * compare-and-swap sees it and syncs no more (INV-4: after a failed fdatasync
		 * Linux reports the lost pages' error once and marks them clean, so a second
		 * sync would return 0 for records that are gone). */
		fail_locked(w, rc, "fdatasync"); /* wakes the group: it fails too */
		rc = -EIO;
	} else if (!w->failed && target > w->durable) {
		w->durable = target; /* INV-3 */
	}
	atomic_store(&w->flushing, false); /* before the wakes: a woken waiter may lead next */
	wake_reset(w);
	pthread_mutex_unlock(&w->mu);
	WAL_PERTURB();
	wake_waiters(w); /* without mu: appends need not wait for the wakes */
	return rc;
}

/*
 * The wait of a group commit, without mu: return at once when the LSN is durable already;
 * else lead the next flush when none runs, or queue on w->waiters and sleep until a flush's
 * end takes it off the queue (its LSN durable, the log failed, or chosen to lead the next
 * flush: wake_waiters), and look again.  Measured with kvfs-bench syncwrite: see the closing
 * notes of issue 3.
 */
int wal_wait_durable(struct wal *w, lsn_t lsn)
{
	if (!atomic_load(&w->failed) && atomic_load(&w->durable) >= lsn)
		return 0;
	lsn_t end = atomic_load(&w->end);
	if (lsn > end)
		lsn = end; /* every record ends at or before it: wait for all of them */
	atomic_fetch_add(&w->n_waits, 1);
	struct durable_wait me = {.lsn = lsn};
	int rc;
	for (;;) {
		if (atomic_load(&w->failed)) {
			rc = -EIO;
			break;
		}
		if (atomic_load(&w->durable) >= lsn) {
			rc = 0;
			break;
		}
		WAL_PERTURB();
		bool idle = false;
		if (atomic_compare_exchange_strong(&w->flushing, &idle, true)) {
			if (atomic_load(&w->failed)) { /* failed while it looked: no sync (INV-4) */
				pthread_mutex_lock(&w->mu);
				atomic_store(&w->flushing, false);
				flush_ended(w); /* for reset_ring, which may wait for the flag */
				pthread_mutex_unlock(&w->mu);
				continue;
			}
			lead_flush(w); /* its failure is seen at the top of the loop */
			continue;
		}
		WAL_PERTURB();
		pthread_mutex_lock(&w->wq_mu);
		bool wait = atomic_load(&w->flushing) && !atomic_load(&w->failed) &&
			    atomic_load(&w->durable) < lsn;
		if (wait) {
			atomic_store(&me.woken, 0);
			me.next = w->waiters;
			w->waiters = &me;
		}
		pthread_mutex_unlock(&w->wq_mu);
		WAL_PERTURB();
		while (wait && !atomic_load(&me.woken))
			futex_wait(&me.woken, 0);
	}
	return rc;
}

int wal_sync(struct wal *w)
{
	return wal_wait_durable(w, atomic_load(&w->end));
}

/* ---- release, reset, statistics ---------------------------------------------------------- */

void wal_release(struct wal *w, lsn_t lsn)
{
	pthread_mutex_lock(&w->mu);
	if (lsn > w->end)
		lsn = w->end;
	if (lsn > w->released) {
		w->released = lsn;
		pthread_cond_broadcast(&w->room);
	}
	pthread_mutex_unlock(&w->mu);
}

uint64_t wal_used(struct wal *w)
{
	uint64_t u;

	pthread_mutex_lock(&w->mu);
	u = w->end - w->released;
	pthread_mutex_unlock(&w->mu);
	return u;
}

void wal_stat(struct wal *w, struct wal_stat *out)
{
	pthread_mutex_lock(&w->mu);
	*out = (struct wal_stat){
		.ring_bytes = w->ring,
		.end = w->end,
		.durable = w->durable,
		.released = w->released,
		.n_appends = w->n_appends,
		.bytes_appended = w->bytes_appended,
		.n_syncs = w->n_syncs,
		.n_waits = w->n_waits,
		.n_full_waits = w->n_full_waits,
		.bytes_zeroed = w->bytes_zeroed,
	};
	pthread_mutex_unlock(&w->mu);
}

/*
 * Start the empty log afresh with a ring of `ring` bytes (already rounded and in range; 0:
 * the current ring, read under mu): a new
 * salt, the header rewritten and durable (INV-6), the file grown first or shrunk after
 * (INV-7).  wal_reset is this with the current ring.  0 or -errno (log.h wal_resize).
 */
static int reset_ring(struct wal *w, uint64_t ring)
{
	uint8_t *h;
	uint64_t salt, old;
	int rc;

	if (w->rdonly)
		return -EROFS;
	h = malloc(WAL_HDR_SIZE);
	if (!h)
		return -ENOMEM;
	/* Under mu throughout (from the leader flag on): no append may write with the new salt
	 * (or at a place of the new ring) before the header holding it is durable (INV-6).
	 * Resets are rare; appends wait. */
	pthread_mutex_lock(&w->mu);
	/* And no flush runs beside its syncs: of two concurrent fdatasyncs of one file, the
	 * kernel may report a writeback error to one only, and this one must not return 0 for a
	 * header that never reached the disk.  It takes the leader flag as a flush does, waiting
	 * (without mu) for a running flush to end: lead_flush clears the flag and bumps
	 * flush_seq together under mu, so flush_seq read under mu after a failed
	 * compare-and-swap has not moved yet. */
	for (bool idle = false; !atomic_compare_exchange_strong(&w->flushing, &idle, true);
	     idle = false) {
		uint32_t seq = atomic_load(&w->flush_seq);
		pthread_mutex_unlock(&w->mu);
		atomic_fetch_add(&w->sleepers, 1);
		futex_wait(&w->flush_seq, seq);
		atomic_fetch_sub(&w->sleepers, 1);
		pthread_mutex_lock(&w->mu);
	}
	if (w->failed) {
		rc = -EIO;
		goto out;
	}
	if (!w->ready) {
		rc = -EINVAL; /* an existing log not yet recovered: its records are unknown */
		goto out;
	}
	if (w->end != w->released) {
		rc = -EBUSY;
		goto out;
	}
	old = w->ring;
	if (ring == 0)
		ring = old;
	if (ring > old) {
		/* INV-7: the bigger ring is allocated and durable before a header names it.  A
		 * failed allocation changes no byte of the ring (the file may have grown: that is
		 * trimmed at open), so the log goes on with its old ring, not failed. */
		rc = io_allocate(w->f, 0, WAL_HDR_SIZE + ring);
		if (rc < 0) {
			wlog(w, "cannot allocate a ring of %llu bytes: %s; the ring stays %llu "
			     "bytes", (unsigned long long)ring, strerror(-rc),
			     (unsigned long long)old);
			/* Give back what the failed allocation took (the file may have grown,
			 * and on a full disk that room is what checkpoints need); the header
			 * names the old ring, so the bytes past it mean nothing (INV-7). */
			int tr = io_truncate(w->f, WAL_HDR_SIZE + old);
			if (tr < 0)
				wlog(w, "cannot trim the file to its ring (%llu bytes): %s; the next "
				     "open trims it", (unsigned long long)old, strerror(-tr));
			goto out;
		}
		rc = io_sync(w->f);
		w->n_syncs++;
		if (rc < 0) {
			fail_locked(w, rc, "syncing the grown ring");
			rc = -EIO;
			goto out;
		}
	}
	salt = new_salt(w->salt);
	header_encode(h, ring, salt);
	rc = write_full(w, h, WAL_HDR_SIZE, 0);
	if (rc == 0) {
		rc = io_sync(w->f);
		w->n_syncs++;
	}
	if (rc < 0) {
		fail_locked(w, rc, "rewriting the header");
		rc = -EIO;
		goto out;
	}
	if (ring != old)
		mark_unwritten(w, ring, ring > old ? WAL_HDR_SIZE + old : WAL_HDR_SIZE + ring);
	w->ring = ring;
	w->salt = salt;
	w->durable = w->end; /* the sync covered every record written before it */
	if (ring != old && !w->no_map)
		ring_map(w); /* the log is empty: no pointer into the old mapping is held */
	if (ring < old) {
		/* INV-7: after the header.  Not synced: a crash may keep either length, and a
		 * file longer than its ring is trimmed at open. */
		int tr = io_truncate(w->f, WAL_HDR_SIZE + ring);
		if (tr < 0)
			wlog(w, "cannot trim the file to the new ring (%llu bytes): %s; the next "
			     "open trims it", (unsigned long long)ring, strerror(-tr));
	}
out:
	atomic_store(&w->flushing, false);
	flush_ended(w);
	pthread_mutex_unlock(&w->mu);
	free(h);
	return rc;
}

int wal_reset(struct wal *w)
{
	return reset_ring(w, 0);
}

int wal_resize(struct wal *w, uint64_t ring_bytes)
{
	if (ring_bytes == 0 || ring_bytes > WAL_MAX_RING)
		return -EINVAL;
	ring_bytes = (ring_bytes + 4095) & ~(uint64_t)4095;
	if (ring_bytes < WAL_MIN_RING)
		ring_bytes = WAL_MIN_RING;
	return reset_ring(w, ring_bytes);
}
