/*
 * store/io_posix.c — the POSIX io_env: the one place in kvfs that calls open, pread, pwrite,
 * fdatasync, sync_file_range, fallocate, ftruncate, mmap, flock, fstat and unlink on a real
 * descriptor.
 *
 * What it does: translates each io_methods call (store/io.h) into the system call it stands
 * for, hiding the two ways a system call can do less than asked without failing:
 *
 *   - EINTR: the call is restarted (every call here is idempotent or positional, so a restart
 *     is safe);
 *   - short transfers: pread/pwrite continue from where the kernel stopped, so a caller sees
 *     either the whole transfer, a short read that ends exactly at end of file, or -errno.
 *
 * What it does not do: no caching, no retries of a failed fdatasync (after EIO the kernel may
 * already have dropped the dirty pages, so a retry that succeeds would be a lie — the store
 * fails itself instead, see DESIGN.md "Write path" 5), no interpretation of file contents, no
 * directory fsync (the store's files are created once and their names never change).
 *
 * Invariants:
 *   INV-1  Every return is 0, a byte count, or a negative errno; errno is never the answer.
 *   INV-2  Every descriptor is opened with O_CLOEXEC, so a fork+exec elsewhere in the process
 *          (FUSE's mount helper, a test harness) never inherits the store's file or its lock.
 *   INV-3  A file opened IO_OPEN_RDONLY refuses pwrite/truncate/allocate/writeback with
 *          -EBADF before any system call, so both io_envs answer alike (Linux's ftruncate
 *          would say EINVAL).
 *   INV-4  allocate() never changes a byte that is already in the file: its fallback (for file
 *          systems without fallocate(2)) writes zeros only past the current end of file.
 *
 * Locks are flock(2) locks: they belong to the open file description, so two io_posix opens of
 * one path in one process conflict with each other exactly as two processes would.
 *
 * Thread safety: as store/io.h says; this file keeps no mutable state besides the descriptor.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/io.h"

struct posix_file {
	struct io_file base; /* first: an io_file * is a posix_file * */
	int fd;
	int flags; /* IO_OPEN_* as opened */
};

/* A block of zeros for the allocate() fallback. */
static const uint8_t zeros[64 * 1024];

static struct posix_file *pf(struct io_file *f)
{
	return (struct posix_file *)f;
}

/* Offsets reach the kernel as off_t (signed 64-bit); anything past INT64_MAX is refused before
 * the cast could wrap it negative. */
static int check_range(uint64_t off, uint64_t len)
{
	if (off > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (len > (uint64_t)INT64_MAX - off)
		return -EFBIG;
	return 0;
}

static ssize_t posix_pread(struct io_file *f, void *buf, size_t len, uint64_t off)
{
	int fd = pf(f)->fd;
	size_t done = 0;
	int rc;

	if (len > SSIZE_MAX)
		return -EINVAL;
	rc = check_range(off, len);
	if (rc < 0)
		return rc;
	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break; /* end of file */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Write all of [buf, buf+len) at off.  Shared by pwrite and the allocate fallback. */
static ssize_t write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done,
				   (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* a regular file never accepts nothing; do not spin */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t posix_pwrite(struct io_file *f, const void *buf, size_t len, uint64_t off)
{
	int rc;

	if (pf(f)->flags & IO_OPEN_RDONLY)
		return -EBADF; /* INV-3 */
	if (len > SSIZE_MAX)
		return -EINVAL;
	rc = check_range(off, len);
	if (rc < 0)
		return rc;
	return write_all(pf(f)->fd, buf, len, off);
}

static ssize_t posix_pwritev(struct io_file *f, const struct iovec *iov, int iovcnt, uint64_t off)
{
	int fd = pf(f)->fd;
	struct iovec cur[256]; /* the piece being written (256 < IOV_MAX), its first buffer
				* advanced past what was written */
	ssize_t total = io_iov_total(iov, iovcnt);
	size_t done = 0;
	int i = 0, rc;

	if (pf(f)->flags & IO_OPEN_RDONLY)
		return -EBADF; /* INV-3 */
	if (total < 0)
		return total;
	rc = check_range(off, (uint64_t)total);
	if (rc < 0)
		return rc;
	size_t skip = 0; /* bytes of iov[i] already written */
	while (i < iovcnt) {
		int n = 0;
		for (int j = i; j < iovcnt && n < (int)(sizeof(cur) / sizeof(cur[0])); j++) {
			cur[n] = iov[j];
			if (j == i) {
				cur[n].iov_base = (uint8_t *)cur[n].iov_base + skip;
				cur[n].iov_len -= skip;
			}
			n++;
		}
		ssize_t w = pwritev(fd, cur, n, (off_t)(off + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0 && total > 0)
			return -EIO; /* a regular file never accepts nothing; do not spin */
		done += (size_t)w;
		/* step over what was written */
		size_t left = (size_t)w;
		while (i < iovcnt && left >= iov[i].iov_len - skip) {
			left -= iov[i].iov_len - skip;
			skip = 0;
			i++;
		}
		skip += left;
	}
	return (ssize_t)done;
}

static int posix_sync(struct io_file *f)
{
	/* Restart only on EINTR, which reports that nothing was decided; any other error is
	 * returned and never retried (see the file comment). */
	while (fdatasync(pf(f)->fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int posix_size(struct io_file *f, uint64_t *size)
{
	struct stat st;

	if (fstat(pf(f)->fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int posix_truncate(struct io_file *f, uint64_t size)
{
	if (pf(f)->flags & IO_OPEN_RDONLY)
		return -EBADF; /* INV-3 */
	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	while (ftruncate(pf(f)->fd, (off_t)size) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* allocate() where fallocate(2) is not supported: extend the file with written zeros.  Only
 * bytes past the current end of file are written (INV-4); holes below it stay holes. */
static int allocate_by_writing(int fd, uint64_t off, uint64_t len)
{
	struct stat st;
	uint64_t end = off + len, pos;

	if (fstat(fd, &st) < 0)
		return -errno;
	pos = (uint64_t)st.st_size > off ? (uint64_t)st.st_size : off;
	while (pos < end) {
		size_t n = end - pos < sizeof(zeros) ? (size_t)(end - pos) : sizeof(zeros);
		ssize_t w = write_all(fd, zeros, n, pos);

		if (w < 0)
			return (int)w;
		pos += n;
	}
	return 0;
}

static int posix_allocate(struct io_file *f, uint64_t off, uint64_t len)
{
	int fd = pf(f)->fd, rc;

	if (pf(f)->flags & IO_OPEN_RDONLY)
		return -EBADF; /* INV-3 */
	rc = check_range(off, len);
	if (rc < 0)
		return rc;
	if (len == 0)
		return 0; /* an empty range: nothing to reserve (fallocate would say EINVAL) */
	while (fallocate(fd, 0, (off_t)off, (off_t)len) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			return allocate_by_writing(fd, off, len);
		return -errno;
	}
	return 0;
}

static int posix_map(struct io_file *f, size_t reserve, const void **addr)
{
	void *p;

	if (reserve == 0)
		return -EINVAL;
	p = mmap(NULL, reserve, PROT_READ, MAP_SHARED, pf(f)->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

static void posix_unmap(struct io_file *f, const void *addr, size_t reserve)
{
	/* munmap fails only for arguments that map() could not have returned. */
	int rc = munmap((void *)addr, reserve);

	assert(rc == 0);
	(void)rc;
}

static int posix_lock(struct io_file *f, int mode)
{
	int op;

	switch (mode) {
	case IO_LOCK_SHARED:
		op = LOCK_SH | LOCK_NB;
		break;
	case IO_LOCK_EXCL:
		op = LOCK_EX | LOCK_NB;
		break;
	case IO_LOCK_NONE:
		op = LOCK_UN;
		break;
	default:
		return -EINVAL;
	}
	while (flock(pf(f)->fd, op) < 0) {
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	}
	return 0;
}

static void posix_close(struct io_file *f)
{
	/* Not retried on EINTR: on Linux the descriptor is released even then, and a retry
	 * could close a descriptor another thread has just been given. */
	close(pf(f)->fd);
	free(f);
}

static int posix_writeback(struct io_file *f, uint64_t off, uint64_t len)
{
	if (pf(f)->flags & IO_OPEN_RDONLY)
		return -EBADF; /* INV-3 */
	int rc = check_range(off, len);
	if (rc < 0)
		return rc;
	while (sync_file_range(pf(f)->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static const struct io_methods posix_methods = {
	.pread = posix_pread,
	.pwrite = posix_pwrite,
	.pwritev = posix_pwritev,
	.sync = posix_sync,
	.writeback = posix_writeback,
	.size = posix_size,
	.truncate = posix_truncate,
	.allocate = posix_allocate,
	.map = posix_map,
	.unmap = posix_unmap,
	.lock = posix_lock,
	.close = posix_close,
};

static int posix_open(struct io_env *env, const char *path, int flags, mode_t mode,
		      struct io_file **out)
{
	struct posix_file *f;
	struct stat st;
	int oflags = O_CLOEXEC, fd; /* INV-2 */

	oflags |= (flags & IO_OPEN_RDONLY) ? O_RDONLY : O_RDWR;
	if (flags & IO_OPEN_CREATE)
		oflags |= O_CREAT;
	if ((flags & IO_OPEN_CREATE) && (flags & IO_OPEN_EXCL))
		oflags |= O_EXCL;
	f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	do {
		fd = open(path, oflags, mode);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		int err = -errno;

		free(f);
		return err;
	}
	/* A read-only open of a directory succeeds in the kernel; the store wants a file. */
	if (fstat(fd, &st) < 0) {
		int err = -errno;

		close(fd);
		free(f);
		return err;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		free(f);
		return -EISDIR;
	}
	f->base.m = &posix_methods;
	f->fd = fd;
	f->flags = flags;
	*out = &f->base;
	return 0;
}

static int posix_unlink(struct io_env *env, const char *path)
{
	return unlink(path) < 0 ? -errno : 0;
}

static struct io_env posix_env = {
	.open = posix_open,
	.unlink = posix_unlink,
};

struct io_env *io_posix_env(void)
{
	return &posix_env;
}
