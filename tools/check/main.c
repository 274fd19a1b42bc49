/*
 * tools/check/main.c — kvfs-check's command line: options (getopt_long), opening and locking
 * the data file, reading its pages for the phases, running the phases in order, and the exit
 * status (e2fsck's bit sum: 0 clean, 1 errors corrected, 4 errors left uncorrected,
 * 8 operational error, 16 usage error).  man/kvfs-check.8 is the user's view.
 *
 * Locking.  The store library and the kvfs daemon hold a flock(2) on the data file: exclusive
 * while open for writing (mounted), shared while read-only.  kvfs-check takes a shared lock
 * with -n and an exclusive one to repair.  When another process holds a conflicting lock the
 * store is in use: kvfs-check then checks the last committed state read-only, refuses every
 * repair, and says so.  A check of a store in use reads pages that the daemon may free and
 * reuse two checkpoints later; at the end kvfs-check compares the meta pages again and, when
 * the state moved that far, warns that problems found in phases 1-3 may be artifacts.
 *
 * Reading.  Pages are read with pread into the caller's buffer — never mapped: a file cut
 * short under a mapping would kill the tool with SIGBUS, and every byte is checked before it
 * is trusted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/check/check.h"

#ifndef KVFS_VERSION
#define KVFS_VERSION "unknown"
#endif

#define PROGRESS_MIN_BYTES (64ull << 20) /* draw a progress bar for stores from 64 MiB */

static const struct chk_phase *const phases[] = {
	&chk_phase_meta, &chk_phase_pages, &chk_phase_trees,
	&chk_phase_space, &chk_phase_log, &chk_phase_namespace,
};
#define NPHASES (sizeof(phases) / sizeof(phases[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvfs-check [-n | -y | -p] [-v] [-f] [--json] [--previous-meta] STORE\n"
		"Verify (and repair) a kvfs store: its data file STORE and its log STORE-wal.\n"
		"\n"
		"  -n, --no            open read-only, change nothing, answer no to every fix\n"
		"  -y, --yes           repair everything that is safe to repair\n"
		"  -p, --preen         repair only what is safe without a human (after a crash)\n"
		"  -v, --verbose       say what is checked (notes), not only the problems\n"
		"  -f, --force         accepted for fsck compatibility (kvfs always checks fully)\n"
		"      --json          print the report as one JSON document\n"
		"      --previous-meta check the older committed state (with -y: roll back to it)\n"
		"      --list-problems print the problem table and exit\n"
		"  -h, --help          this text\n"
		"  -V, --version       the version\n"
		"\n"
		"Without -n, -y or -p: ask for each fix on a terminal, else as -n.\n"
		"Exit status (a sum): 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"
		"8 operational error, 16 usage error.  See kvfs-check(8).\n");
}

static void list_problems(void)
{
	printf("%-20s %-5s %-9s %-4s %-5s %s\n", "CODE", "PHASE", "SEVERITY", "SAFE", "PREEN",
	       "WHAT (FIX)");
	for (size_t i = 0; i < NPHASES; i++) {
		const struct chk_phase *ph = phases[i];
		for (size_t j = 0; j < ph->ndefs; j++) {
			const struct chk_def *d = &ph->defs[j];
			printf("%-20s %u %-3s %-9s %-4s %-5s %s (%s)\n", d->code, ph->num,
			       ph->name, d->sev == SEV_ERROR ? "error" : "warning",
			       d->safe ? "yes" : "no", d->preen ? "yes" : "no", d->what,
			       d->fix ? d->fix : "no fix");
		}
	}
}

/* ---- reading the data file ---- */

int chk_read_pages(struct chk *c, pgno_t pgno, uint64_t n, uint8_t *buf)
{
	uint64_t pages = c->file_bytes / STORE_PAGE_SIZE;
	if (pgno >= pages || n > pages - pgno)
		return -ERANGE;
	size_t len = (size_t)n * STORE_PAGE_SIZE;
	off_t off = (off_t)(pgno * STORE_PAGE_SIZE);
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(c->fd, buf + done, len - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ERANGE; /* the file shrank (a store in use) */
		done += (size_t)r;
	}
	return 0;
}

int chk_read_page(struct chk *c, pgno_t pgno, uint8_t *buf)
{
	return chk_read_pages(c, pgno, 1, buf);
}

int chk_read_value(struct chk *c, const struct chk_value *v, void *buf, size_t cap)
{
	size_t n = v->vlen < cap ? v->vlen : cap;
	if (v->inline_bytes) {
		memcpy(buf, v->inline_bytes, n);
		return 0;
	}
	uint8_t page[STORE_PAGE_SIZE];
	for (size_t done = 0; done < n;) {
		pgno_t p = v->ovf_pgno + done / STORE_PAGE_SIZE;
		int r = chk_read_page(c, p, page);
		if (r < 0)
			return r;
		size_t take = n - done < STORE_PAGE_SIZE ? n - done : STORE_PAGE_SIZE;
		memcpy((uint8_t *)buf + done, page, take);
		done += take;
	}
	return 0;
}

void chk_release_lock(struct chk *c)
{
	if (c->fd >= 0)
		flock(c->fd, LOCK_UN);
}

/* ---- main ---- */

static int open_store(struct chk *c)
{
	bool want_write = c->o.mode != MODE_NO;
	c->fd = open(c->path, (want_write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (c->fd < 0 && want_write && (errno == EACCES || errno == EROFS)) {
		fprintf(stderr, "kvfs-check: %s: %s: checking read-only, no repairs\n", c->path,
			strerror(errno));
		want_write = false;
		c->fd = open(c->path, O_RDONLY | O_CLOEXEC);
	}
	if (c->fd < 0) {
		fprintf(stderr, "kvfs-check: %s: %s\n", c->path, strerror(errno));
		return -errno;
	}
	struct stat sb;
	if (fstat(c->fd, &sb) < 0) {
		fprintf(stderr, "kvfs-check: %s: %s\n", c->path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "kvfs-check: %s: not a regular file\n", c->path);
		return -EINVAL;
	}
	c->file_bytes = (uint64_t)sb.st_size;
	if (c->file_bytes < 2 * STORE_PAGE_SIZE) {
		fprintf(stderr, "kvfs-check: %s: not a kvfs store (%llu bytes: too short for two "
			"meta pages)\n", c->path, (unsigned long long)c->file_bytes);
		return -EINVAL;
	}
	while (flock(c->fd, (want_write ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			fprintf(stderr, "kvfs-check: %s: lock: %s\n", c->path, strerror(errno));
			return -errno;
		}
		c->in_use = true;
		if (c->o.mode != MODE_NO)
			fprintf(stderr, "kvfs-check: %s is in use (mounted, or open by a program): "
				"refusing to repair; checking its last committed state read-only "
				"(unmount it to repair)\n", c->path);
		else
			fprintf(stderr, "kvfs-check: %s is in use (mounted, or open by a program): "
				"checking its last committed state read-only\n", c->path);
		break;
	}
	c->readonly = !want_write || c->in_use;
	return 0;
}

txnid_t chk_newest_txnid(struct chk *c)
{
	uint8_t page[STORE_PAGE_SIZE];
	txnid_t best = 0;
	for (unsigned s = 0; s < 2; s++) {
		struct meta m;
		const char *why;
		if (chk_read_page(c, s, page) == 0 && meta_decode(page, s, &m, &why) == 0 &&
		    m.txnid > best)
			best = m.txnid;
	}
	return best;
}

enum { OPT_JSON = 256, OPT_PREVIOUS_META, OPT_LIST_PROBLEMS }; /* long-only options */

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "no", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ "preen", no_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "previous-meta", no_argument, NULL, OPT_PREVIOUS_META },
		{ "list-problems", no_argument, NULL, OPT_LIST_PROBLEMS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct chk c = { .fd = -1 };
	int modes = 0, opt;
	bool mode_set = false;
	/* man: kvfs-check.8 */
	while ((opt = getopt_long(argc, argv, "nypvfhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': c.o.mode = MODE_NO; modes++; mode_set = true; break;
		case 'y': c.o.mode = MODE_YES; modes++; mode_set = true; break;
		case 'p': c.o.mode = MODE_PREEN; modes++; mode_set = true; break;
		case 'v': c.o.verbose = true; break;
		case 'f': c.o.force = true; break;
		case OPT_JSON: c.o.json = true; break;
		case OPT_PREVIOUS_META: c.o.previous_meta = true; break;
		case OPT_LIST_PROBLEMS: list_problems(); return 0;
		case 'h': usage(stdout); return 0;
		case 'V': printf("kvfs-check %s\n", KVFS_VERSION); return 0;
		default: usage(stderr); return 16;
		}
	}
	if (modes > 1) {
		fprintf(stderr, "kvfs-check: -n, -y and -p exclude each other\n");
		return 16;
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 16;
	}
	if (!mode_set)
		c.o.mode = (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && !c.o.json) ? MODE_ASK
											   : MODE_NO;
	c.o.store = c.path = argv[optind];
	c.t_start = chk_now();
	if (asprintf(&c.wal_path, "%s-wal", c.path) < 0) {
		fprintf(stderr, "kvfs-check: out of memory\n");
		return 8;
	}
	int status = 0;
	if (open_store(&c) < 0) {
		status = 8;
		goto out;
	}
	c.progress = isatty(STDERR_FILENO) && c.file_bytes >= PROGRESS_MIN_BYTES;
	txnid_t txnid_at_start = chk_newest_txnid(&c);
	for (size_t i = 0; i < NPHASES; i++) {
		c.cur_phase = phases[i];
		int r = phases[i]->run(&c);
		chk_phase_done(&c);
		if (r < 0) {
			/* phase 0 says itself why the file is not a store it can read */
			if (i > 0)
				fprintf(stderr, "kvfs-check: %s: phase %u %s: %s; check stopped\n",
					c.path, phases[i]->num, phases[i]->name, strerror(-r));
			status = 8;
			break;
		}
		if (i == 0 && !c.have_meta)
			break; /* no committed state to check */
	}
	c.cur_phase = NULL;
	if (c.in_use && c.n_problems && chk_newest_txnid(&c) >= txnid_at_start + 2)
		fprintf(stderr, "kvfs-check: %s changed during the check (transactions %llu to "
			"%llu): pages may have been reused meanwhile, so the problems of phases 1-3 "
			"may not be real; unmount the store and check again\n", c.path,
			(unsigned long long)txnid_at_start,
			(unsigned long long)chk_newest_txnid(&c));
	status = chk_finish(&c, status);
out:
	chk_report_free(&c);
	free(c.pg);
	free(c.trees);
	free(c.wal_path);
	if (c.fd >= 0)
		close(c.fd);
	return status;
}
