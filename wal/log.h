/*
 * wal/log.h — the write-ahead log STORE-wal: a ring of checksummed records, appended with
 * pwrite (so an append that returned survives the process being killed) and made durable by
 * group commit (one thread runs fdatasync for every waiter).
 *
 * The log knows records, LSNs and durability — nothing of trees, files or the store.  The
 * engine appends a record per mutation batch, waits for durability on fsync, replays the
 * records after the data file's meta LSN at open, and releases the log up to an LSN once a
 * checkpoint has made everything before it durable in the data file.
 *
 * LSNs.  An LSN is a byte position in an unbounded stream; the record starting at LSN x lies at
 * file offset WAL_HDR_SIZE + (x mod ring_bytes).  LSN 0 is the start of a new store's log.
 * Record LSNs increase by the record's padded size; a record never wraps past the end of the
 * ring (a pad record, or a gap smaller than a record header, fills the rest of the lap and the
 * next record starts at the next multiple of ring_bytes).  LSNs are multiples of 8.
 *
 * On-disk format (man/kvfs.5 "LOG"):
 *   header, 4096 bytes at offset 0:
 *      0  8  checksum   XXH3-64 of bytes 8..4095, seed 0
 *      8  8  magic      "KVFSWAL\0"
 *     16  4  version    WAL_FORMAT_VERSION
 *     20  4  zero
 *     24  8  ring_bytes size of the record ring, a multiple of 4096 (changed only by
 *                       wal_resize of an empty log)
 *     32  8  salt       random; renewed whenever the log is reset or resized while empty
 *     40  ... zero
 *   record, 8-byte aligned, at WAL_HDR_SIZE + (lsn mod ring_bytes):
 *      0  4  size       header + payload, before padding to 8
 *      4  4  type       WAL_PAD (0: skip to the next lap) or the engine's record type (>= 1)
 *      8  8  lsn        the record's own LSN (a record left from an earlier lap fails this)
 *     16  8  checksum   XXH3-64 of bytes 0..15 followed by the payload, seed = salt
 *     24  payload, then zeros up to the next multiple of 8
 *   Integers are little-endian.  A pad record is a bare header (size WAL_REC_HDR, no payload);
 *   the bytes after it up to the end of the lap mean nothing.  A record's padded size is at
 *   most ring_bytes / 2 and never crosses the end of the ring.
 *
 * Recovery (wal_recover) replays the records from a given LSN and stops at the first whose
 * size, LSN or checksum does not hold: a torn tail after a power cut is normal, not corruption.
 * It never reads more than one lap (ring_bytes) past its start, whatever the bytes say.
 * wal_inspect makes the same walk read-only and reports what it found (kvfs-check).
 *
 * File size.  The file is 4096 + ring_bytes bytes, allocated on disk.  A crash during a
 * resize (wal_resize) may leave it longer than that; the bytes past the ring mean nothing:
 * wal_open for writing trims them, wal_inspect reports them (long_file), neither calls them
 * corrupt.  A file shorter than that has lost its ring's allocation (short_file): wal_open
 * for writing allocates it again.
 *
 * Thread safety: every call may be made from any thread, concurrently, except wal_open,
 * wal_recover (once, before any append) and wal_close.  Appends are serialized; a group
 * commit's fdatasync runs while other threads append (so the io_file sees pwrite and sync
 * from two threads at once, which io_posix and io_fault both allow).
 */
#ifndef KVFS_WAL_LOG_H
#define KVFS_WAL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "store/io.h"

typedef uint64_t lsn_t;

#define WAL_HDR_SIZE 4096u
#define WAL_REC_HDR 24u
#define WAL_FORMAT_VERSION 1u
#define WAL_PAD 0u
#define WAL_DEFAULT_RING (64ull << 20)
#define WAL_MIN_RING (1ull << 20)
#define WAL_MAX_RING (1ull << 40)     /* a header with more is corrupt */
#define WAL_LSN_MAX (1ull << 62)      /* wal_recover refuses a larger `from` */

struct wal;

struct wal_options {
	struct io_env *io;   /* NULL: POSIX */
	bool create;         /* create the log when missing (with ring_bytes and a random salt) */
	bool rdonly;         /* read-only: wal_recover only, appends return -EROFS */
	uint64_t ring_bytes; /* for a new log; 0: WAL_DEFAULT_RING; rounded up to a multiple of
				4096 and to at least WAL_MIN_RING; at most WAL_MAX_RING */
	bool no_map;         /* do not map the file (wal_append_mapped then hands out NULL) */
	/* diagnostics, one line each; NULL: stderr */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/*
 * Open (or with create, create) the log at `path`.  A new log is written (header) and made
 * durable; its ring is allocated on disk so that appends never fail for space.  The ring is
 * allocated and synced before the header is written and synced, so a crash during creation
 * leaves a file shorter than the header or with a header of zeros over a ring of zeros: with
 * create, such a file is created again (it never held a record); without, it is -EINVAL.  A
 * header of zeros over bytes that are not zero is a destroyed header: -EUCLEAN, nothing
 * written.  A valid header whose file
 * is shorter than the ring gets its ring allocated again (when writable); one whose file is
 * longer (a resize that a crash interrupted, wal_resize) has it trimmed to 4096 + ring_bytes
 * (when writable; not synced, and a failure to trim is only logged).  opt->ring_bytes is
 * ignored for an existing log (wal_resize changes it).  A new log may be appended to at once
 * (from LSN 0), or after wal_recover (from its `from`); an existing one only after
 * wal_recover.  opt NULL: defaults.
 *   -ENOENT (missing, !create); -EINVAL (not a kvfs log: magic, size; create with rdonly;
 *   ring_bytes over WAL_MAX_RING); -EPROTONOSUPPORT (version); -EUCLEAN (header checksum, a
 *   checksummed header whose fields are out of range, or a zero header over records);
 *   -ENOSPC, -EIO, -ENOMEM, -errno.
 * *out is owned by the caller until wal_close.
 */
int wal_open(const char *path, const struct wal_options *opt, struct wal **out);

/* Close; appended records are not synced (call wal_sync first for that).  Never fails. */
void wal_close(struct wal *w);

/*
 * Replay every valid record from LSN `from` on, in order, calling fn(ctx, lsn, type, payload,
 * len) for each record that is not a pad; stop at the first record that is torn, has the wrong
 * LSN or fails its checksum (logged at debug level only: that is the normal end of a log).
 * Afterwards appends continue at *end, the LSN just past the last valid record (== from when
 * none).  Records before `from` count as released.  fn returning < 0 stops the replay with that
 * error.  Call exactly once, before the first append.  `payload` is valid only during fn.
 * `from` must be 8-aligned and at least every LSN released before (the engine passes the data
 * file's meta LSN, and releases only what a durable checkpoint covers).
 * Unless the log is read-only, recovery then erases (zeroes the header of) every record left
 * in the free part of the ring, [*end, from + ring_bytes), that carries the LSN of its place
 * — records that survived a power cut behind a torn one, and that a new record of the torn
 * one's size would otherwise make valid again — and syncs when it erased any.  Records from
 * `from` to *end count as durable only after that sync or a later one.
 *   0, fn's error, -EINVAL (`from` misaligned or over WAL_LSN_MAX, fn NULL, after an append),
 *   -EIO (a read, or an erasing write or sync: then the log is failed), -ENOMEM.
 */
int wal_recover(struct wal *w, lsn_t from,
		int (*fn)(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len),
		void *ctx, lsn_t *end);

/*
 * Append one record of `type` (>= 1) whose payload is the concatenation of iov[0..iovcnt).
 * Written with pwrite before returning (it survives a crash of this process, not of the
 * machine, until wal_wait_durable covers it).  *end receives the LSN just past the record —
 * the value to pass to wal_wait_durable.  When the ring has no room (records not yet released
 * by a checkpoint), waits for wal_release — up to the engine to checkpoint before that.
 *   -EFBIG  the record (header, payload, padding) is larger than half the ring;
 *   -EINVAL type 0, iovcnt < 0, or an existing log not yet recovered;
 *   -EROFS, -EIO (the log is failed: a write or sync failed earlier), -ENOMEM, -errno (the
 *   failed write's own error, -EIO or -ENOSPC; the log is failed from then on).
 */
int wal_append(struct wal *w, unsigned type, const struct iovec *iov, int iovcnt, lsn_t *end);

/*
 * wal_append of one contiguous payload: rec[0..WAL_REC_HDR) is room for the record's header,
 * rec[WAL_REC_HDR..WAL_REC_HDR + len) the payload.  The header is written into rec (the
 * payload is not changed; the padding comes from elsewhere); the caller owns rec before and
 * after, and must not touch it during the call.  Errors as wal_append (-EINVAL also for rec
 * NULL).  WAL_APPEND_ROOM(len) is the record's size in the ring: header, payload, padding.
 */
#define WAL_APPEND_ROOM(len) ((((uint64_t)(len) + WAL_REC_HDR) + 7) & ~(uint64_t)7)
int wal_append_inplace(struct wal *w, unsigned type, uint8_t *rec, uint64_t len, lsn_t *end);

/*
 * wal_append_inplace, and on success *mapped (when not NULL) receives where the record's
 * payload now lies in the log's read-only mapping of its file (the len bytes as written), or
 * NULL when the log is not mapped (read-only, or the mapping failed: said once through the
 * log callback).  The pointer stays valid, and its bytes unchanged, until a wal_release past
 * the record's end LSN (*end) lets the ring's space be written again, and never past
 * wal_close.  Reading it may fault the page in from the file (a file read error is SIGBUS, as
 * for any mapped file).  On error *mapped is not set.  Errors as wal_append_inplace.
 */
int wal_append_mapped(struct wal *w, unsigned type, uint8_t *rec, uint64_t len, lsn_t *end,
		      const void **mapped);

/*
 * wal_append of a payload in pieces, iov[0..iovcnt), written from where they lie (no copy):
 * the payload and padding in one pwritev, then the header, built in hdr (WAL_REC_HDR bytes of
 * the caller's), so that a failed or killed write of the payload leaves no valid record.  On
 * a mapped log the checksum is taken from the payload as written (read back through the
 * mapping), so buffers changed by a racing caller during the call make a record of whatever
 * bytes the write took, never one that fails its checksum; on a log without a mapping
 * (wal_mapped false) it is taken from iov, whose buffers must then not change during the
 * call.  *end and *mapped (each may be NULL) as wal_append_mapped: *mapped is the payload's
 * bytes, contiguous, in the log's mapping.  Errors as wal_append (-EINVAL also for hdr NULL;
 * -ENOMEM for more than 7 buffers when no memory is left to list them with the padding).
 */
int wal_append_gather(struct wal *w, unsigned type, uint8_t *hdr, const struct iovec *iov,
		      int iovcnt, lsn_t *end, const void **mapped);

/* Is the log's file mapped (wal_append_mapped hands out pointers)?  Never fails. */
bool wal_mapped(struct wal *w);

/*
 * Would an append of a record of `len` bytes of payload find room in the ring now, without
 * waiting for a wal_release (its padding and any pad record before it counted, as the append
 * places it)?  Room only grows until the next append, so a caller that is the only appender
 * may rely on a yes; a no is its cue to get a checkpoint going (the engine).  Never fails.
 */
bool wal_has_room(struct wal *w, uint64_t len);

/*
 * Wait until every record ending at or before `lsn` is durable (fdatasync).  Group commit: one
 * waiter runs fdatasync for everything appended so far while the others sleep; N concurrent
 * waiters cost about one flush.  0, or -EIO when a sync failed (then every later append and
 * wait fails too: a flush is never retried and reported as success).
 */
int wal_wait_durable(struct wal *w, lsn_t lsn);

/* wal_wait_durable(w, end of the log). */
int wal_sync(struct wal *w);

/* Records ending at or before `lsn` are in the data file (a checkpoint committed them): their
 * space may be reused.  Wakes appenders waiting for room.  An `lsn` past the end counts as the
 * end; one before an earlier release changes nothing.  Never fails. */
void wal_release(struct wal *w, lsn_t lsn);

/* Bytes of the ring holding unreleased records (end - released). */
uint64_t wal_used(struct wal *w);

struct wal_stat {
	uint64_t ring_bytes;
	lsn_t end;            /* next append */
	lsn_t durable;        /* everything before this is durable */
	lsn_t released;       /* everything before this is checkpointed */
	uint64_t n_appends;
	uint64_t bytes_appended; /* LSN bytes the appends took: records padded, pads, gaps */
	uint64_t n_syncs;     /* fdatasync calls (open, recover and reset included) */
	uint64_t n_waits;     /* wal_wait_durable calls that did not find their LSN durable */
	uint64_t n_full_waits; /* appends that waited for room */
	uint64_t bytes_zeroed; /* zeros written ahead of appends into chunks of the ring this
				  handle allocated and had not written (log.c "Written ring") */
};
void wal_stat(struct wal *w, struct wal_stat *out);

/*
 * When the log is empty (every record released), start it afresh: a new salt, so that no
 * record written before can ever validate again.  LSNs continue.  Used at clean close after
 * the final checkpoint.  The new header is durable when it returns 0; appends wait meanwhile.
 * wal_reset(w) is wal_resize(w, its current ring_bytes).
 *   0, -EBUSY (not empty), -EINVAL (an existing log not yet recovered), -EROFS, -EIO (the
 *   log is failed, or the write or sync failed: then the log is failed), -ENOMEM.
 */
int wal_reset(struct wal *w);

/*
 * When the log is empty (every record released), start it afresh as wal_reset does (a new
 * salt; LSNs continue) with a ring of `ring_bytes` bytes, rounded up to a multiple of 4096
 * and to at least WAL_MIN_RING.  The record at LSN x then lies at 4096 + (x mod the new
 * ring_bytes); records appended before never validate again (the salt), whatever their place.
 * Later appends must fit in half the new ring (-EFBIG).  The engine sizes the ring to the
 * store this way (store/engine.c engine_close, engine_open).
 * Crash ordering (log.c INV-7; man/kvfs.5 "LOG"): growing allocates the bigger ring on disk
 * and syncs it, then writes and syncs the new header; shrinking writes and syncs the new
 * header, then truncates the file (not synced).  A crash at any point leaves the old header or
 * the new one, each over a file holding its whole ring, possibly longer (wal_open trims it);
 * recovery from the log's end then finds no record either way.  Appends wait meanwhile; the
 * new header is durable when it returns 0.
 *   0;  -EBUSY (not empty);  -EINVAL (ring_bytes 0 or over WAL_MAX_RING; an existing log not
 *   yet recovered);  -EROFS;  -ENOSPC or another -errno of the allocation when growing (the
 *   header is untouched and the log goes on with its old ring, not failed);  -EIO (the log
 *   is failed, or the sync of the grown ring or the header's write or sync failed: then the
 *   log is failed);  -ENOMEM.  A failure to truncate after a shrink is only logged (0 is
 *   returned: the file is longer than its ring until the next writable open trims it).
 * Thread safety: as wal_reset; may run while other threads append (they wait for it).
 */
int wal_resize(struct wal *w, uint64_t ring_bytes);

/*
 * The checksum field of a record (man/kvfs.5 "LOG"): XXH3-64 of the record header's bytes
 * 0..15 (size, type, LSN) followed by the `len` payload bytes, seeded with the log's salt.
 * `hdr` holds at least 16 bytes; `payload` may be NULL when len is 0.  Pure; thread safe.
 * For tools that write or repair records outside a struct wal (the fuzzers' fix-ups).
 */
uint64_t wal_record_checksum(const uint8_t *hdr, const void *payload, size_t len, uint64_t salt);

/* ---- inspection (kvfs-check) ---- */

#define WAL_INSPECT_MAX_STALE 32 /* stale LSNs listed in a wal_inspect_result */

struct wal_inspect_result;

struct wal_inspect_ops {
	/* Once the header has validated, before the walk: *res holds the file and header
	 * fields (file_bytes, version, ring_bytes, salt, short_file, long_file).  Return 0 to go on, or a
	 * -errno that stops the inspection and is returned.  NULL: not called. */
	int (*header)(void *ctx, const struct wal_inspect_result *res);
	/* Each valid record that is not a pad, in log order from `from` on — exactly those that
	 * wal_recover would replay.  `payload` is valid only during the call.  Return 0 to go on,
	 * or a -errno that stops the inspection and is returned by wal_inspect.  NULL: records
	 * are only counted. */
	int (*record)(void *ctx, lsn_t lsn, unsigned type, const void *payload, size_t len);
};

/* What lies at the end of the valid records (wal_inspect_result.end). */
enum wal_tail {
	WAL_TAIL_END,  /* the normal end: that place was never written in this lap (zeros, or a
			  record of an earlier lap or with another LSN, or a size below a header) */
	WAL_TAIL_TORN, /* a header carrying the place's own LSN and a size of at least a header,
			  but not a valid record (size out of range for its lap, or checksum): a
			  torn write, or a corrupted record; wal_recover erases its header */
	WAL_TAIL_FULL, /* valid records fill the whole lap from `from`: the ring is full */
};

struct wal_inspect_result {
	/* The file and its header, as read (ring_bytes, salt, version are the raw fields, set
	 * once the header is read even when it does not validate). */
	uint64_t file_bytes;
	uint32_t version;
	uint64_t ring_bytes;
	uint64_t salt;
	/* -EINVAL, -EUCLEAN, -EPROTONOSUPPORT, -ENOENT: what is wrong, a static string.  Set
	 * after a successful walk too: tail_why. */
	const char *why;
	/* -EINVAL because the file is shorter than a header or its header is all zeros, which
	 * is what a creation that a crash interrupted leaves (wal_open with create makes such a
	 * file a new log).  nonzero_after: some byte of the file is not zero, which an
	 * interrupted creation never leaves (its ring is allocated as zeros before the header
	 * is written): the header of a log that held records was destroyed. */
	bool zero_header;
	bool nonzero_after;
	/* The file is shorter than WAL_HDR_SIZE + ring_bytes (its ring's allocation was lost;
	 * wal_open for writing allocates it again).  The walk reads the missing bytes as zero. */
	bool short_file;
	/* The file is longer than WAL_HDR_SIZE + ring_bytes: a resize that a crash interrupted
	 * (wal_resize), or a shrink whose truncation failed.  The bytes past the ring mean
	 * nothing and are not read; wal_open for writing trims them.  Not a problem. */
	bool long_file;

	/* The walk (when 0 is returned). */
	lsn_t from;             /* as passed */
	lsn_t end;              /* past the last valid record: where wal_recover would append */
	uint64_t n_records;     /* valid records that are not pads, in [from, end) */
	uint64_t payload_bytes; /* their payloads' total */
	enum wal_tail tail;
	const char *tail_why;   /* which check the place at `end` fails (static string) */
	uint32_t end_size;      /* the size and type fields at `end` (tail END and TORN) */
	uint32_t end_type;
	/* Stale headers past the end: places in (end, from + ring_bytes) whose header carries
	 * the place's own LSN and a size of at least a header — what a writable wal_recover
	 * erases (log.c INV-5), the torn record at `end` excluded.  n_stale counts all of them;
	 * stale[] lists the first min(n_stale, WAL_INSPECT_MAX_STALE), in LSN order. */
	uint64_t n_stale;
	lsn_t stale[WAL_INSPECT_MAX_STALE];
};

/*
 * Inspect the log at `path` read-only, for kvfs-check: no lock is taken and nothing is
 * written (the file is opened IO_OPEN_RDONLY), so it may run while the store is in use (a
 * concurrent append may then look torn).  Reads and validates the header (magic, checksum,
 * version, reserved fields, ring_bytes range) and the file size against the ring, then walks
 * the records from LSN `from` exactly as wal_recover does — the same validation code, at most
 * one lap — calling ops->record for each valid record that is not a pad, then classifies the
 * place at the end (*out->tail) and lists the stale headers in the rest of the lap that a
 * writable wal_recover would erase.  `ops` (NULL: count only) and its calls: wal_inspect_ops.
 * `io` NULL: POSIX.  *out is filled in on every return (as
 * far as the inspection got); it holds no pointer into the file.
 *   0;  -ENOENT (no such file);
 *   -EINVAL (`from` not 8-aligned or over WAL_LSN_MAX; path NULL; not a kvfs log: bad magic,
 *   or out->zero_header);  -EUCLEAN (the header's checksum fails, or a checksummed header
 *   has a nonzero reserved field or ring_bytes out of range);  -EPROTONOSUPPORT (another
 *   format version, in out->version);  the reason in out->why for these three;
 *   -EIO (or a read's -errno), -ENOMEM;  ops->header's or ops->record's error.
 * Thread safety: independent of every struct wal; any number may run at once.
 * On-disk format: man/kvfs.5 "LOG".
 */
int wal_inspect(const char *path, struct io_env *io, lsn_t from,
		const struct wal_inspect_ops *ops, void *ctx, struct wal_inspect_result *out);

#endif
