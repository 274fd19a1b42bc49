/*
 * store/io.h — the I/O seam: every system call that touches a file descriptor.
 *
 * The store (and later the log) never calls pread/pwrite/fdatasync/fallocate/ftruncate/mmap/
 * flock itself; it goes through a `struct io_file` opened from a `struct io_env`.  Two
 * implementations exist:
 *
 *   - io_posix.c: the real one, and the only code in kvfs that touches a real descriptor.
 *   - io_fault.c: an in-memory one for tests (tests/ link it from libkvfs_testio), which keeps
 *     every write since the last sync pending so that a simulated power cut can keep, drop or
 *     tear each of them at 512-byte sectors, and which can fail the Nth call with EIO, ENOSPC
 *     or a short write.  See store/io_fault.h.
 *
 * Conventions: every call returns 0 (or a byte count) on success and a negative errno on
 * failure; errno is never left as the answer.  Offsets and lengths are in bytes.
 *
 * Thread safety: an io_file may be used from several threads at once for pread and for reading
 * through its mapping.  The data file's pwrite/truncate/allocate/map are called by one thread
 * at a time (the store's writer), concurrently with readers; the log (wal/log.c) also runs
 * sync on one thread while another pwrites (group commit), which both implementations allow.
 */
#ifndef KVFS_STORE_IO_H
#define KVFS_STORE_IO_H

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct io_file;
struct io_env;

/* Flags for io_env.open(). */
#define IO_OPEN_CREATE 0x1 /* create the file when missing (O_CREAT) */
#define IO_OPEN_RDONLY 0x2 /* open read-only; writes return -EBADF */
#define IO_OPEN_EXCL   0x4 /* with CREATE: fail with -EEXIST when it exists */

/* Lock modes for io_file.lock(). Locks never wait: a conflict is -EBUSY. */
#define IO_LOCK_SHARED 1
#define IO_LOCK_EXCL   2
#define IO_LOCK_NONE   0 /* release */

struct io_methods {
	/* Read up to `len` bytes at `off`.  Returns the count read (short only at end of file) or
	 * -errno (-EIO, ...).  Loops internally over short reads and EINTR. */
	ssize_t (*pread)(struct io_file *f, void *buf, size_t len, uint64_t off);
	/* Write exactly `len` bytes at `off` (looping over short writes and EINTR).  Returns `len`,
	 * or -errno (-EIO, -ENOSPC, -EFBIG, ...).  After an error some prefix may have been
	 * written. */
	ssize_t (*pwrite)(struct io_file *f, const void *buf, size_t len, uint64_t off);
	/* Write the iovcnt (>= 0) buffers of iov, in order, as one run of bytes from `off`
	 * (pwritev(2), in pieces of at most 256 buffers, looping over short writes and
	 * EINTR), as pwrite would their concatenation.  Returns the sum of their lengths, or
	 * -errno as pwrite (-EINVAL also for iovcnt < 0 or a sum over SSIZE_MAX); after an
	 * error some prefix may have been written. */
	ssize_t (*pwritev)(struct io_file *f, const struct iovec *iov, int iovcnt, uint64_t off);
	/* Make every completed write (and the file size) durable: fdatasync(2).  0 or -errno. */
	int (*sync)(struct io_file *f);
	/* Start writing [off, off+len) back to the disk without waiting for it
	 * (sync_file_range(2), SYNC_FILE_RANGE_WRITE): a hint, so that the next sync finds less
	 * to write and the disk works while the caller goes on.  Makes nothing durable, and
	 * leaves any write error to the sync that follows.  0 or -errno (callers may ignore
	 * it).  Models without a page cache (io_fault) do nothing. */
	int (*writeback)(struct io_file *f, uint64_t off, uint64_t len);
	/* Current file size in bytes through *size.  0 or -errno. */
	int (*size)(struct io_file *f, uint64_t *size);
	/* Set the file size (ftruncate(2)).  0 or -errno. */
	int (*truncate)(struct io_file *f, uint64_t size);
	/* Reserve disk blocks for [off, off+len) and grow the size to cover it (fallocate(2) mode
	 * 0); where the file system cannot, falls back to writing zeros.  0, -ENOSPC, -errno. */
	int (*allocate)(struct io_file *f, uint64_t off, uint64_t len);
	/* Map the file read-only and shared, reserving `reserve` bytes of address space (which may
	 * exceed the file size; only bytes below the size may be read).  The mapping shows every
	 * completed pwrite at once.  *addr receives the base.  0 or -errno (-ENOMEM). */
	int (*map)(struct io_file *f, size_t reserve, const void **addr);
	/* Release a mapping made by map().  Never fails. */
	void (*unmap)(struct io_file *f, const void *addr, size_t reserve);
	/* Take, change or drop an advisory whole-file lock (flock(2) semantics, never waiting).
	 * 0, -EBUSY when another open file description holds a conflicting lock, or -errno. */
	int (*lock)(struct io_file *f, int mode);
	/* Close the file (releasing its lock).  Never fails; any pending state is dropped. */
	void (*close)(struct io_file *f);
};

struct io_file {
	const struct io_methods *m;
};

struct io_env {
	/* Open `path` with IO_OPEN_* flags; `mode` applies when it is created.  *out receives a new
	 * file, owned by the caller until io_close().  0, or -ENOENT, -EEXIST, -EACCES, -EISDIR,
	 * -errno. */
	int (*open)(struct io_env *env, const char *path, int flags, mode_t mode,
		    struct io_file **out);
	/* Remove a file (unlink(2)).  0 or -errno. */
	int (*unlink)(struct io_env *env, const char *path);
};

/* The process-wide POSIX environment (store/io_posix.c).  Never NULL; never freed. */
struct io_env *io_posix_env(void);

/* Thin inline wrappers so call sites read like the system calls they stand for. */
static inline ssize_t io_pread(struct io_file *f, void *b, size_t n, uint64_t off)
{ return f->m->pread(f, b, n, off); }
static inline ssize_t io_pwrite(struct io_file *f, const void *b, size_t n, uint64_t off)
{ return f->m->pwrite(f, b, n, off); }
static inline int io_sync(struct io_file *f) { return f->m->sync(f); }
static inline int io_writeback(struct io_file *f, uint64_t off, uint64_t len)
{ return f->m->writeback(f, off, len); }
/* For the implementations of pwritev: the sum of iov's lengths, or -EINVAL (iovcnt < 0, iov
 * NULL with buffers, or a sum over SSIZE_MAX). */
static inline ssize_t io_iov_total(const struct iovec *iov, int iovcnt)
{
	size_t sum = 0;

	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SSIZE_MAX - sum)
			return -EINVAL;
		sum += iov[i].iov_len;
	}
	return (ssize_t)sum;
}

static inline ssize_t io_pwritev(struct io_file *f, const struct iovec *iov, int iovcnt,
				 uint64_t off)
{ return f->m->pwritev(f, iov, iovcnt, off); }
static inline int io_size(struct io_file *f, uint64_t *s) { return f->m->size(f, s); }
static inline int io_truncate(struct io_file *f, uint64_t s) { return f->m->truncate(f, s); }
static inline int io_allocate(struct io_file *f, uint64_t off, uint64_t len)
{ return f->m->allocate(f, off, len); }
static inline int io_map(struct io_file *f, size_t reserve, const void **addr)
{ return f->m->map(f, reserve, addr); }
static inline void io_unmap(struct io_file *f, const void *addr, size_t reserve)
{ f->m->unmap(f, addr, reserve); }
static inline int io_lock(struct io_file *f, int mode) { return f->m->lock(f, mode); }
static inline void io_close(struct io_file *f) { f->m->close(f); }
static inline int io_open(struct io_env *e, const char *path, int flags, mode_t mode,
			  struct io_file **out)
{ return e->open(e, path, flags, mode, out); }

#endif
