/*
 * fs/kvfs.c — the kvfs daemon: mounts a kvfs store with FUSE (libfuse3's low-level API).
 *
 *   kvfs [OPTIONS] [STORE] MOUNTPOINT
 *
 * Each handler `fs_<op>` decodes the request, calls one kvfs.h function (which returns 0 or
 * -errno) and replies exactly once: with the result, or fuse_reply_err(req, -r).  Inode numbers
 * are kvfs's own (the root is 1 = FUSE_ROOT_ID), so no table maps them.  Open files hold a
 * reference (kvfs_open_ino/kvfs_release_ino) so that an unlinked file stays readable until its
 * last close.  fsync and fsyncdir are the log's group-commit barrier (kvfs_fsync).
 *
 * lseek SEEK_DATA/SEEK_HOLE is kvfs_lseek; copy_file_range reads and writes through the store
 * in 1 MiB pieces (no reflink).  Locks: no getlk/setlk/flock handlers on purpose.  Without
 * them libfuse does not offer FUSE_CAP_POSIX_LOCKS or FUSE_CAP_FLOCK_LOCKS, and the kernel
 * keeps flock(2) and fcntl(2) locks itself, with local semantics (man/kvfs.1 "Locks"); a
 * handler here could do no better, since no other host shares the store
 * (tests/fs_ops.sh checks that they exclude).
 *
 * Link removals and the kernel's nlink (unl_*).  After a successful unlink, and after a rename
 * that replaced a file, the kernel does not ask for the victim's attributes again: it
 * decrements its cached i_nlink itself (fuse_entry_unlinked).  An attribute reply for the
 * same inode that the daemon made after the store's change (nlink already one lower) but that
 * the kernel applies before that decrement — a getattr, a lookup of another name, a
 * readdirplus entry, from another process — is counted twice: the cached nlink of a file with
 * one name left drops to 0, and link(2) of that name fails with ENOENT in the VFS without a
 * request reaching us (vfs_link refuses an inode with i_nlink 0), until the entry times out.
 * The kernel drops a reply's attributes when the inode's attr_version moved since the request
 * was sent; so while a link removal of inode I is in flight, and for UNL_GRACE_NS after its
 * reply, an attribute reply for I is preceded by fuse_lowlevel_notify_inval_inode(I, -1): the
 * kernel keeps its own count (which the decrement then makes right) and marks the attributes
 * stale, to be asked again.  The marks are per bucket of a small table (unl_mark), so an
 * unrelated inode may share one: that costs it an uncached reply, nothing more.  Directories
 * are exempt (the kernel clears their nlink, an absolute value), and so are victims whose
 * last name goes (their nlink is 0 on both sides).  tests/fs_ops.sh "hard links beside
 * readers" fails without this.
 *
 * Statistics on demand: SIGUSR1 makes the daemon write one line of kvfs_stats (kvfs.h),
 * "kvfs: stats: files=N dirs=N bytes=N pages_used=N pages_free=N pages_pinned=N log_bytes=N
 * checkpoints=N fdatasync=N syncs=N", to standard error (to syslog in the background, where
 * there is no standard error; man/kvfs.1 "Statistics").  The signal handler only write()s a
 * byte to a pipe (async-signal-safe); a thread (stats_thread) reads the pipe, calls kvfs_stats
 * and prints.  Signals that arrive while a line is being made are merged into the next one.
 *
 * Not here: anything about storage; everything is kvfs.h.
 */
/* 3.12 (Debian 12 has 3.14): fuse_loop_cfg_* for the multi-threaded loop; older libfuse: 34 */
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "store/kvfs.h"

#define KVFS_VERSION "0.1.0"

struct fsopts {
	double entry_timeout, attr_timeout;
	int sync;
	int writeback;
	unsigned long checkpoint_ms, checkpoint_mib, memory_mib;
};

static struct kvfs *g_fs;
static struct fsopts g_opt = { .entry_timeout = 1.0, .attr_timeout = 1.0 };
static bool g_writeback; /* the kernel's writeback cache is on (set once, in fs_init) */

/* ns since the epoch to a timespec: floor division, so that times before 1970 keep a
 * tv_nsec in [0, 1e9) */
static struct timespec ns_ts(int64_t ns)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

static void to_stat(const struct kvfs_stat *k, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = k->ino;
	st->st_mode = k->mode;
	st->st_nlink = k->nlink;
	st->st_uid = k->uid;
	st->st_gid = k->gid;
	st->st_rdev = k->rdev;
	st->st_size = (off_t)k->size;
	st->st_blocks = (blkcnt_t)k->blocks;
	st->st_blksize = 4096;
	st->st_atim = ns_ts(k->atime_ns);
	st->st_mtim = ns_ts(k->mtime_ns);
	st->st_ctim = ns_ts(k->ctime_ns);
}

/* ---- link removals in flight (see the header: "Link removals and the kernel's nlink") ---- */

#define UNL_BUCKETS 1024
/* how long after an unlink's reply the kernel may still be about to decrement its nlink: the
 * unlinking task does it as soon as it runs again, so this only has to outlast a stall of
 * that task on a loaded machine */
#define UNL_GRACE_NS (5 * 1000000000LL)

struct unl_mark {
	uint32_t n_inflight; /* link removals of an inode of this bucket not yet replied to */
	int64_t until_ns;    /* CLOCK_MONOTONIC: marked until then after the last reply */
};

static struct fuse_session *g_se; /* set once before the session loop starts */
static pthread_mutex_t g_unl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct unl_mark g_unl[UNL_BUCKETS]; /* protected by g_unl_lock */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static unsigned unl_bucket(uint64_t ino)
{
	return (unsigned)((ino * 0x9E3779B97F4A7C15ull) >> 54) % UNL_BUCKETS;
}

/* Before removing the name `name` of `parent` (unlink, or the target of a rename): when it
 * names a non-directory with other names, mark its inode so that attribute replies made from
 * now on cannot undo the kernel's coming decrement.  Returns the bucket + 1 to hand to
 * unl_end after the reply, or 0 when nothing was marked. */
static unsigned unl_begin(fuse_ino_t parent, const char *name)
{
	struct kvfs_stat k;
	if (kvfs_lookup(g_fs, parent, name, &k) < 0 || S_ISDIR(k.mode) || k.nlink < 2)
		return 0;
	unsigned b = unl_bucket(k.ino);
	pthread_mutex_lock(&g_unl_lock);
	g_unl[b].n_inflight++;
	pthread_mutex_unlock(&g_unl_lock);
	return b + 1;
}

/* After the reply to the removal that unl_begin marked (mark = its return value). */
static void unl_end(unsigned mark)
{
	if (mark == 0)
		return;
	int64_t until = mono_ns() + UNL_GRACE_NS;
	pthread_mutex_lock(&g_unl_lock);
	struct unl_mark *m = &g_unl[mark - 1];
	m->n_inflight--;
	if (m->until_ns < until)
		m->until_ns = until;
	pthread_mutex_unlock(&g_unl_lock);
}

/* Before replying with attributes of `ino` read from the store: when a link removal of it may
 * not have reached the kernel's nlink yet, make the kernel drop this reply's attributes.  Called
 * after the store was read, so that a removal whose change the read saw is marked already. */
static void unl_fence(uint64_t ino)
{
	pthread_mutex_lock(&g_unl_lock);
	struct unl_mark *m = &g_unl[unl_bucket(ino)];
	bool marked = m->n_inflight > 0 || (m->until_ns != 0 && mono_ns() < m->until_ns);
	pthread_mutex_unlock(&g_unl_lock);
	/* -ENOENT: the kernel has no such inode cached, so nothing to protect */
	if (marked && g_se)
		fuse_lowlevel_notify_inval_inode(g_se, (fuse_ino_t)ino, -1, 0);
}

static void reply_entry(fuse_req_t req, int r, const struct kvfs_stat *k)
{
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = k->ino;
	e.generation = k->generation;
	e.attr_timeout = g_opt.attr_timeout;
	e.entry_timeout = g_opt.entry_timeout;
	to_stat(k, &e.attr);
	fuse_reply_entry(req, &e);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kvfs_stat k;
	int r = kvfs_lookup(g_fs, parent, name, &k);
	if (r == -ENOENT) { /* a negative entry, cached like a positive one */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = g_opt.entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (r == 0)
		unl_fence(k.ino);
	reply_entry(req, r, &k);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvfs_stat k;
	int r = kvfs_getattr(g_fs, ino, &k);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	unl_fence(ino);
	struct stat st;
	to_stat(&k, &st);
	fuse_reply_attr(req, &st, g_opt.attr_timeout);
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct kvfs_stat sa, k;
	memset(&sa, 0, sizeof(sa));
	unsigned mask = 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (to_set & FUSE_SET_ATTR_MODE) {
		mask |= KVFS_SET_MODE;
		sa.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		mask |= KVFS_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		mask |= KVFS_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		mask |= KVFS_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME) {
		mask |= KVFS_SET_ATIME;
		sa.atime_ns = ts_ns(&attr->st_atim);
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		mask |= KVFS_SET_ATIME;
		sa.atime_ns = ts_ns(&now);
	}
	if (to_set & FUSE_SET_ATTR_MTIME) {
		mask |= KVFS_SET_MTIME;
		sa.mtime_ns = ts_ns(&attr->st_mtim);
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		mask |= KVFS_SET_MTIME;
		sa.mtime_ns = ts_ns(&now);
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		mask |= KVFS_SET_CTIME;
		sa.ctime_ns = ts_ns(&attr->st_ctim);
	}
	/* chown by a non-root caller clears set-user-ID and set-group-ID, as on a native file
	 * system; the kernel sends the resulting mode for that with default_permissions only */
	int r = kvfs_setattr(g_fs, ino, &sa, mask, &k);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct stat st;
	to_stat(&k, &st);
	fuse_reply_attr(req, &st, g_opt.attr_timeout);
}

static void caller(fuse_req_t req, fuse_ino_t parent, uint32_t *uid, uint32_t *gid)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	*uid = c->uid;
	*gid = c->gid;
	(void)parent; /* the setgid-directory rule is kvfs_mknod's */
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	uint32_t uid, gid;
	struct kvfs_stat k;
	caller(req, parent, &uid, &gid);
	mode &= ~fuse_req_ctx(req)->umask | S_IFMT;
	reply_entry(req, kvfs_mknod(g_fs, parent, name, mode, rdev, uid, gid, &k), &k);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	uint32_t uid, gid;
	struct kvfs_stat k;
	caller(req, parent, &uid, &gid);
	mode &= ~fuse_req_ctx(req)->umask;
	reply_entry(req, kvfs_mkdir(g_fs, parent, name, mode, uid, gid, &k), &k);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	uint32_t uid, gid;
	struct kvfs_stat k;
	caller(req, parent, &uid, &gid);
	reply_entry(req, kvfs_symlink(g_fs, parent, name, link, uid, gid, &k), &k);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kvfs_stat k;
	reply_entry(req, kvfs_link(g_fs, ino, newparent, newname, &k), &k);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = kvfs_readlink(g_fs, ino, buf, sizeof(buf) - 1);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	buf[n] = 0;
	fuse_reply_readlink(req, buf);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	unsigned mark = unl_begin(parent, name);
	fuse_reply_err(req, -kvfs_unlink(g_fs, parent, name));
	unl_end(mark);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -kvfs_rmdir(g_fs, parent, name));
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	unsigned kf = 0;
	if (flags & RENAME_NOREPLACE)
		kf |= KVFS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		kf |= KVFS_RENAME_EXCHANGE;
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* a replaced target loses a link (RENAME_EXCHANGE replaces nothing) */
	unsigned mark = kf & KVFS_RENAME_EXCHANGE ? 0 : unl_begin(newparent, newname);
	fuse_reply_err(req, -kvfs_rename(g_fs, parent, name, newparent, newname, kf));
	unl_end(mark);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int r = kvfs_open_ino(g_fs, ino);
	if (r == 0 && (fi->flags & O_TRUNC)) {
		struct kvfs_stat sa, k;
		memset(&sa, 0, sizeof(sa));
		r = kvfs_setattr(g_fs, ino, &sa, KVFS_SET_SIZE, &k);
		if (r < 0)
			kvfs_release_ino(g_fs, ino);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	uint32_t uid, gid;
	struct kvfs_stat k;
	caller(req, parent, &uid, &gid);
	mode &= ~fuse_req_ctx(req)->umask;
	int r = kvfs_mknod(g_fs, parent, name, S_IFREG | (mode & 07777), 0, uid, gid, &k);
	if (r == 0)
		r = kvfs_open_ino(g_fs, k.ino);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = k.ino;
	e.generation = k.generation;
	e.attr_timeout = g_opt.attr_timeout;
	e.entry_timeout = g_opt.entry_timeout;
	to_stat(&k, &e.attr);
	fuse_reply_create(req, &e, fi);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	kvfs_release_ino(g_fs, ino);
	fuse_reply_err(req, 0);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = kvfs_read(g_fs, ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n = kvfs_write(g_fs, ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* writes are in the log already: nothing to push at close */
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -kvfs_fsync(g_fs, ino));
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	int km = 0;
	if (mode & FALLOC_FL_KEEP_SIZE)
		km |= KVFS_FALLOC_KEEP_SIZE;
	if (mode & FALLOC_FL_PUNCH_HOLE)
		km |= KVFS_FALLOC_PUNCH_HOLE;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fuse_reply_err(req, -kvfs_fallocate(g_fs, ino, km, (uint64_t)off, (uint64_t)len));
}

static void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	/* With the writeback cache, written bytes may still be in the kernel, which does not
	 * flush them before FUSE_LSEEK: an answer from the store could call them a hole (and cp
	 * would skip them).  ENOSYS makes the kernel answer from then on, all data up to its
	 * size: safe, not sparse. */
	if (g_writeback) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* the kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself; only these two come here */
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	uint64_t at;
	int r = kvfs_lseek(g_fs, ino, (int64_t)off,
			   whence == SEEK_DATA ? KVFS_SEEK_DATA : KVFS_SEEK_HOLE, &at);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_lseek(req, (off_t)at);
}

/* copy_file_range(2): read and write through the store in pieces of COPY_CHUNK bytes.  kvfs
 * shares no blocks between files (no reflink), so the copy costs what read + write cost, but
 * the bytes do not cross into the kernel and back.  The checks are the VFS's
 * (generic_copy_file_checks), repeated because a cached size in the kernel may be stale:
 * the length is cut at the source's end, then overlapping ranges of one file are -EINVAL. */
#define COPY_CHUNK (1u << 20)

static ssize_t copy_range(fuse_ino_t ino_in, uint64_t off_in, fuse_ino_t ino_out,
			  uint64_t off_out, size_t len)
{
	struct kvfs_stat k;
	int r = kvfs_getattr(g_fs, ino_in, &k);
	if (r < 0)
		return r;
	if (S_ISDIR(k.mode))
		return -EISDIR;
	if (!S_ISREG(k.mode))
		return -EINVAL;
	len = off_in >= k.size ? 0 : (size_t)(len < k.size - off_in ? len : k.size - off_in);
	/* the reply's count is 32 bits (struct fuse_write_out): a longer copy is a short one, as
	 * copy_file_range(2) allows; the kernel caps it the same way */
	if (len > (UINT32_MAX & ~(size_t)4095))
		len = UINT32_MAX & ~(size_t)4095;
	if (ino_in == ino_out && off_out < off_in + len && off_in < off_out + len)
		return -EINVAL;
	if (len == 0)
		return 0;
	char *buf = malloc(len < COPY_CHUNK ? len : COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	size_t done = 0;
	ssize_t n = 0;
	while (done < len) {
		size_t want = len - done < COPY_CHUNK ? len - done : COPY_CHUNK;
		n = kvfs_read(g_fs, ino_in, buf, want, off_in + done);
		if (n <= 0)
			break; /* an error, or the source shrank meanwhile */
		ssize_t w = kvfs_write(g_fs, ino_out, buf, (size_t)n, off_out + done);
		if (w < 0) {
			n = w;
			break;
		}
		done += (size_t)w;
		if ((size_t)w < want)
			break;
	}
	free(buf);
	/* as write(2): bytes copied before an error are reported, the error is not */
	return done > 0 || n >= 0 ? (ssize_t)done : n;
}

static void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	if (flags != 0 || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	ssize_t n = copy_range(ino_in, (uint64_t)off_in, ino_out, (uint64_t)off_out, len);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* Directory handles: readdir offsets are positions in one listing; the handle remembers the
 * name at the last offset so that the next call resumes by name (kvfs_readdir). */
struct dirh {
	off_t last_off;
	char last[KVFS_NAME_MAX + 1];
};

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvfs_stat k;
	int r = kvfs_getattr(g_fs, ino, &k);
	if (r == 0 && !S_ISDIR(k.mode))
		r = -ENOTDIR;
	struct dirh *d = r == 0 ? calloc(1, sizeof(*d)) : NULL;
	if (r == 0 && !d)
		r = -ENOMEM;
	/* an open directory, like an open file, outlives its removal (an empty listing) */
	if (r == 0 && (r = kvfs_open_ino(g_fs, ino)) < 0)
		free(d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fuse_reply_open(req, fi);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	free((void *)(uintptr_t)fi->fh);
	kvfs_release_ino(g_fs, ino);
	fuse_reply_err(req, 0);
}

struct fill {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	off_t off;        /* offset of the last entry added */
	off_t skip;       /* entries still to skip (a seek back) */
	struct dirh *d;
	int plus;
	bool full;
};

static bool fill_add(struct fill *f, const char *name, uint64_t ino, unsigned type)
{
	size_t room = f->size - f->used;
	size_t need;
	if (f->plus) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		if (ino && strcmp(name, ".") && strcmp(name, "..")) {
			struct kvfs_stat k;
			if (kvfs_getattr(g_fs, ino, &k) < 0)
				return true; /* removed meanwhile: skip it */
			unl_fence(ino);
			e.ino = k.ino;
			e.generation = k.generation;
			e.attr_timeout = g_opt.attr_timeout;
			e.entry_timeout = g_opt.entry_timeout;
			to_stat(&k, &e.attr);
		} else {
			e.attr.st_ino = ino;
			e.attr.st_mode = type << 12;
		}
		need = fuse_add_direntry_plus(f->req, f->buf + f->used, room, name, &e, f->off + 1);
	} else {
		struct stat st;
		memset(&st, 0, sizeof(st));
		st.st_ino = ino;
		st.st_mode = type << 12;
		need = fuse_add_direntry(f->req, f->buf + f->used, room, name, &st, f->off + 1);
	}
	if (need > room) {
		f->full = true;
		return false;
	}
	/* readdirplus entries take a lookup reference in the kernel: fine, forget is a no-op */
	f->used += need;
	f->off++;
	if (strcmp(name, ".") && strcmp(name, "..")) {
		strncpy(f->d->last, name, KVFS_NAME_MAX);
		f->d->last[KVFS_NAME_MAX] = 0;
	}
	f->d->last_off = f->off;
	return true;
}

static int fill_one(void *ctx, const char *name, uint64_t ino, unsigned type)
{
	struct fill *f = ctx;
	if (f->skip > 0) {
		f->skip--;
		f->off++;
		strncpy(f->d->last, name, KVFS_NAME_MAX);
		return 0;
	}
	return fill_add(f, name, ino, type) ? 0 : 1;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	struct fill f = { .req = req, .size = size, .d = d, .plus = plus };
	f.buf = malloc(size);
	if (!f.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int r = 0;
	f.off = off;
	const char *after = NULL;
	if (off == 0) {
		d->last[0] = 0;
		d->last_off = 0;
		struct kvfs_stat k;
		uint64_t pino = ino;
		if (kvfs_getattr(g_fs, ino, &k) == 0 && ino != KVFS_ROOT_INO) {
			/* ".." : the kernel replaces the inode number; any directory will do */
			pino = KVFS_ROOT_INO;
		}
		if (!fill_add(&f, ".", ino, DT_DIR) || !fill_add(&f, "..", pino, DT_DIR))
			goto out;
	} else if (off == d->last_off) {
		after = d->last[0] ? d->last : NULL;
	} else { /* a seek: restart the listing and skip to the offset */
		d->last[0] = 0;
		f.off = 2;
		f.skip = off - 2;
		after = NULL;
		if (off == 1) {
			f.off = 1;
			f.skip = 0;
			if (!fill_add(&f, "..", KVFS_ROOT_INO, DT_DIR))
				goto out;
		}
	}
	r = kvfs_readdir(g_fs, ino, after, fill_one, &f);
out:
	if (r < 0 && f.used == 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, f.buf, f.used);
	free(f.buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -kvfs_fsync(g_fs, ino));
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct kvfs_stats s;
	struct statvfs v;
	memset(&v, 0, sizeof(v));
	int r = kvfs_stats(g_fs, &s);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	v.f_bsize = 4096;
	v.f_frsize = 4096;
	v.f_blocks = s.statfs_blocks;
	v.f_bfree = s.statfs_bfree;
	v.f_bavail = s.statfs_bfree;
	v.f_files = s.files + s.dirs + v.f_bfree; /* an inode costs no fixed space */
	v.f_ffree = v.f_bfree;
	v.f_favail = v.f_bfree;
	v.f_namemax = KVFS_NAME_MAX;
	fuse_reply_statfs(req, &v);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	fuse_reply_err(req, -kvfs_setxattr(g_fs, ino, name, value, size, flags));
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = kvfs_getxattr(g_fs, ino, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = kvfs_listxattr(g_fs, ino, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -kvfs_removexattr(g_fs, ino, name));
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	if (g_opt.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		g_writeback = true;
	} else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
	.fallocate = fs_fallocate,
	.lseek = fs_lseek,
	.copy_file_range = fs_copy_file_range,
};

/* ---- command line ---- */

static const struct fuse_opt kvfs_opts[] = {
	{ "sync", offsetof(struct fsopts, sync), 1 },
	{ "writeback", offsetof(struct fsopts, writeback), 1 },
	{ "nowriteback", offsetof(struct fsopts, writeback), 0 },
	{ "entry_timeout=%lf", offsetof(struct fsopts, entry_timeout), 0 },
	{ "attr_timeout=%lf", offsetof(struct fsopts, attr_timeout), 0 },
	{ "checkpoint_ms=%lu", offsetof(struct fsopts, checkpoint_ms), 0 },
	{ "checkpoint_mib=%lu", offsetof(struct fsopts, checkpoint_mib), 0 },
	{ "memory_mib=%lu", offsetof(struct fsopts, memory_mib), 0 },
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s [OPTIONS] [STORE] MOUNTPOINT\n"
	       "Mount the kvfs store STORE (default: $XDG_DATA_HOME/kvfs/default.kvfs, i.e.\n"
	       "~/.local/share/kvfs/default.kvfs, created with its directories) at MOUNTPOINT.\n\n"
	       "kvfs options (-o):\n"
	       "    -o sync              every write is durable before it returns\n"
	       "    -o writeback         use the kernel's writeback cache (default: off)\n"
	       "    -o entry_timeout=S   seconds the kernel caches names (default 1.0)\n"
	       "    -o attr_timeout=S    seconds the kernel caches attributes (default 1.0)\n"
	       "    -o checkpoint_ms=N   checkpoint at least every N ms (default 30000)\n"
	       "    -o checkpoint_mib=N  checkpoint when N MiB are logged (default 16)\n"
	       "    -o memory_mib=N      memory for logged changes before writers wait\n"
	       "                         (default 4 x checkpoint_mib)\n"
	       "    -o ro                mount read-only\n\n"
	       "FUSE options:\n", prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
	printf("\nSee kvfs(1).\n");
}

static int default_store(char *out, size_t cap)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	char base[PATH_MAX];
	if (xdg && *xdg) {
		snprintf(base, sizeof(base), "%s", xdg);
	} else {
		const char *home = getenv("HOME");
		if (!home || !*home) {
			struct passwd *pw = getpwuid(getuid());
			home = pw ? pw->pw_dir : NULL;
		}
		if (!home)
			return -ENOENT;
		snprintf(base, sizeof(base), "%s/.local/share", home);
	}
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/kvfs", base);
	/* mkdir -p */
	for (char *p = dir + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(out, cap, "%s/default.kvfs", dir) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

static bool g_daemon;   /* stderr is gone: diagnostics go to syslog */
static bool g_opening;  /* the first open: hold the library's lines for the one-line error */
static char g_first_line[512];

static void log_line(void *ctx, const char *line)
{
	if (g_opening) {
		if (!g_first_line[0])
			snprintf(g_first_line, sizeof(g_first_line), "%s", line);
		return;
	}
	if (g_daemon)
		syslog(LOG_ERR, "%s", line);
	else
		fprintf(stderr, "kvfs: %s\n", line);
}

/* ---- statistics on SIGUSR1 ---- */

static int g_stats_pipe[2] = { -1, -1 }; /* [0] read by stats_thread, [1] written by the handler */

static void on_sigusr1(int sig)
{
	int saved = errno;
	char c = 's';
	(void)sig;
	/* a full pipe means a line is already due: dropping this byte merges the requests */
	ssize_t n = write(g_stats_pipe[1], &c, 1);
	(void)n;
	errno = saved;
}

static void *stats_thread(void *arg)
{
	char c[64];
	(void)arg;
	for (;;) {
		ssize_t n = read(g_stats_pipe[0], c, sizeof(c));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || memchr(c, 'q', (size_t)n)) /* 'q': stats_stop */
			return NULL;
		struct kvfs_stats s;
		char line[512];
		int r = kvfs_stats(g_fs, &s);
		if (r < 0)
			snprintf(line, sizeof(line), "stats: %s", strerror(-r));
		else
			snprintf(line, sizeof(line),
				 "stats: files=%llu dirs=%llu bytes=%llu pages_used=%llu "
				 "pages_free=%llu pages_pinned=%llu log_bytes=%llu checkpoints=%llu "
				 "fdatasync=%llu syncs=%llu",
				 (unsigned long long)s.files, (unsigned long long)s.dirs,
				 (unsigned long long)s.bytes, (unsigned long long)s.pages_used,
				 (unsigned long long)s.pages_free,
				 (unsigned long long)s.pages_pinned,
				 (unsigned long long)s.log_bytes,
				 (unsigned long long)s.checkpoints,
				 (unsigned long long)s.fdatasync_calls,
				 (unsigned long long)s.sync_calls);
		if (g_daemon) {
			syslog(LOG_INFO, "%s", line);
		} else {
			fprintf(stderr, "kvfs: %s\n", line);
			fflush(stderr);
		}
	}
}

static pthread_t g_stats_tid;
static bool g_stats_on;

/* Start the statistics thread and install the SIGUSR1 handler; after the store is open (in
 * the process that serves: threads do not survive the daemonizing fork).  0 or -errno. */
static int stats_start(void)
{
	sigset_t all, old;
	struct sigaction sa;
	int fl, r;

	if (pipe2(g_stats_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	/* the reader blocks; only the handler's end must never block */
	fl = fcntl(g_stats_pipe[0], F_GETFL);
	if (fl < 0 || fcntl(g_stats_pipe[0], F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto fail_pipe;
	}
	/* the thread takes no signals, so a read in it is never what SIGUSR1 interrupts */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&g_stats_tid, NULL, stats_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail_pipe;
	g_stats_on = true;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0) {
		r = -errno; /* stats_stop still joins the thread */
		goto fail;
	}
	return 0;
fail_pipe:
	close(g_stats_pipe[0]);
	close(g_stats_pipe[1]);
	g_stats_pipe[0] = g_stats_pipe[1] = -1;
fail:
	signal(SIGUSR1, SIG_IGN); /* without the handler, a stray SIGUSR1 must not kill the mount */
	return r;
}

/* Ignore SIGUSR1 from here on, then stop and join the thread (before the store closes). */
static void stats_stop(void)
{
	if (!g_stats_on)
		return;
	signal(SIGUSR1, SIG_IGN);
	char q = 'q';
	while (write(g_stats_pipe[1], &q, 1) < 0 && errno == EAGAIN) /* full: let it drain */
		sched_yield();
	pthread_join(g_stats_tid, NULL);
	close(g_stats_pipe[0]);
	close(g_stats_pipe[1]);
	g_stats_pipe[0] = g_stats_pipe[1] = -1;
	g_stats_on = false;
}

static int store_open(const char *store, bool rdonly, struct kvfs **out)
{
	struct kvfs_options o;
	memset(&o, 0, sizeof(o));
	o.flags = (rdonly ? KVFS_RDONLY : KVFS_CREATE) | (g_opt.sync ? KVFS_SYNC_WRITES : 0);
	o.checkpoint_interval_ms = g_opt.checkpoint_ms;
	o.checkpoint_bytes = (uint64_t)g_opt.checkpoint_mib << 20;
	o.memory_limit = (uint64_t)g_opt.memory_mib << 20;
	o.log = log_line;
	return kvfs_open(store, &o, out);
}

static const char *open_error(int r)
{
	switch (r) {
	case -EBUSY:
		return "the store is in use (mounted or opened by another process)";
	case -EINVAL:
		return "not a kvfs store";
	case -EUCLEAN:
		return "the store is corrupt (see the messages above; kvfs-check can tell more)";
	case -EPROTONOSUPPORT:
		return "a kvfs store of a format this version cannot read";
	default:
		return strerror(-r);
	}
}

int main(int argc, char *argv[])
{
	/* [STORE] MOUNTPOINT: take STORE out before libfuse parses the rest */
	int nonopt[3], n_nonopt = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] != '-' && n_nonopt < 3)
			nonopt[n_nonopt++] = i;
	}
	if (n_nonopt > 2) {
		fprintf(stderr, "kvfs: too many arguments (see kvfs --help)\n");
		return 16;
	}
	if (n_nonopt >= 1) {
		const char *mp = argv[nonopt[n_nonopt - 1]];
		struct stat mst;
		if (stat(mp, &mst) < 0 || !S_ISDIR(mst.st_mode)) {
			fprintf(stderr, "kvfs: %s: the mountpoint %s\n", mp,
				errno == ENOENT ? "does not exist" : "is not a directory");
			return 1;
		}
	}
	char store[PATH_MAX];
	store[0] = 0;
	if (n_nonopt == 2) {
		snprintf(store, sizeof(store), "%s", argv[nonopt[0]]);
		for (int i = nonopt[0]; i < argc - 1; i++)
			argv[i] = argv[i + 1];
		argc--;
	}
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 16;
	int ret = 1;
	if (opts.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (opts.show_version) {
		printf("kvfs %s (FUSE library %s)\n", KVFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (fuse_opt_parse(&args, &g_opt, kvfs_opts, NULL) == -1) {
		ret = 16;
		goto out_args;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "kvfs: no mountpoint (usage: kvfs [OPTIONS] [STORE] MOUNTPOINT)\n");
		ret = 16;
		goto out_args;
	}
	struct stat mst;
	if (stat(opts.mountpoint, &mst) < 0 || !S_ISDIR(mst.st_mode)) {
		fprintf(stderr, "kvfs: %s: the mountpoint is not a directory\n", opts.mountpoint);
		goto out_args;
	}
	if (!store[0]) {
		int r = default_store(store, sizeof(store));
		if (r < 0) {
			fprintf(stderr, "kvfs: cannot make the default store's directory: %s\n",
				strerror(-r));
			goto out_args;
		}
	}
	if (store[0] != '/') { /* the daemon runs in "/": make the path absolute */
		char cwd[PATH_MAX], abs[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) ||
		    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, store) >= sizeof(abs)) {
			fprintf(stderr, "kvfs: %s: path too long\n", store);
			goto out_args;
		}
		memcpy(store, abs, strlen(abs) + 1);
	}
	bool rdonly = false;
	for (int i = 0; i < args.argc; i++)
		if (strstr(args.argv[i], "ro") &&
		    (strcmp(args.argv[i], "ro") == 0 || strstr(args.argv[i], ",ro") ||
		     strncmp(args.argv[i], "ro,", 3) == 0))
			rdonly = true;
	/* Open the store first: a missing, foreign, corrupt or busy store fails here, with a
	 * message, before anything is mounted. */
	g_opening = true;
	int r = store_open(store, rdonly, &g_fs);
	g_opening = false;
	if (r < 0) {
		if (r == -EUCLEAN && g_first_line[0]) /* where: the library's line names the page */
			fprintf(stderr, "kvfs: %s: %s: %s\n", store, open_error(r), g_first_line);
		else
			fprintf(stderr, "kvfs: %s: %s\n", store, open_error(r));
		goto out_args;
	}
	/* libfuse daemonizes by fork(): the store's checkpoint thread would not survive it, so
	 * the store is closed here and opened again in the daemon. */
	if (!opts.foreground) {
		kvfs_close(g_fs);
		g_fs = NULL;
	}
	struct fuse_session *se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), NULL);
	if (!se)
		goto out_fs;
	g_se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_se;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_sig;
	fuse_daemonize(opts.foreground);
	if (!g_fs) {
		g_daemon = true;
		openlog("kvfs", LOG_PID, LOG_DAEMON);
		r = store_open(store, rdonly, &g_fs);
		if (r < 0) {
			syslog(LOG_ERR, "%s: %s", store, open_error(r));
			goto out_mount;
		}
	}
	r = stats_start();
	if (r < 0) /* not fatal: the mount works without it */
		log_line(NULL, "cannot start the statistics thread: SIGUSR1 is ignored");
	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
#if FUSE_USE_VERSION >= 312
		/* libfuse's own defaults for what the options do not set (a v1 config made
		 * libfuse 3.12+ print "Ignoring invalid max threads value" at every mount) */
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		if (!cfg) {
			ret = 1;
			goto out_stats;
		}
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)opts.clone_fd);
		fuse_loop_cfg_set_idle_threads(cfg, opts.max_idle_threads);
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
#else
		struct fuse_loop_config cfg = { .clone_fd = opts.clone_fd,
						.max_idle_threads = opts.max_idle_threads };
		ret = fuse_session_loop_mt(se, &cfg);
#endif
	}
	ret = ret ? 1 : 0;
#if FUSE_USE_VERSION >= 312
out_stats:
#endif
	stats_stop();
out_mount:
	fuse_session_unmount(se);
out_sig:
	fuse_remove_signal_handlers(se);
out_se:
	fuse_session_destroy(se);
out_fs:
	if (g_fs) {
		r = kvfs_close(g_fs); /* checkpoints: a clean unmount leaves no log to replay */
		if (r < 0) {
			fprintf(stderr, "kvfs: %s: closing: %s\n", store, strerror(-r));
			ret = 1;
		}
	}
out_args:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
