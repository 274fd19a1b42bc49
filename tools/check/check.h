/*
 * tools/check/check.h — kvfs-check's shared state: the store being checked, the problem
 * table's shape, the one gate every repair passes, and what the phases hand each other.
 *
 * kvfs-check (man/kvfs-check.8) reads the data file page by page with pread — never through
 * the store library's mapping, never trusting a length before checking it — and the log
 * through wal/'s inspection call.  It repairs through the library (store/repair.c for the
 * data file, wal_recover for the log, engine batches for the namespace), never by writing
 * pages itself.  Layering: tools/check -> store/inspect.h, store/store.h, store/engine.h,
 * wal/log.h, store/ns_format.h.
 *
 * Phases, in order, each in its own file (phaseN_*.c), each opening with the list of what it
 * checks and its rows of the problem table:
 *   0 meta       phase0_meta.c       meta pages: magic, version, checksums, current, fall-back
 *   1 pages      phase1_pages.c      every reachable page against its parent's expectation
 *   2 trees      phase2_trees.c      key order, separators, depth, fill, overflow runs, records
 *   3 space      phase3_space.c      INV-2: reachable once or free once; leaks; the free list
 *   4 log        phase4_log.c        header, salt, records, LSN sequence, torn tail, stale
 *   5 namespace  phase5_namespace.c  dirents, inodes, nlink, blocks, xattrs, tree shape, orphans
 * A phase reads what earlier phases left in struct chk (the chosen meta page, the page map,
 * the namespace entries) and may skip work a failed earlier phase makes meaningless, saying so
 * in a note.
 *
 * Repairs.  A phase reports each problem with chk_report(); when the problem's fix is wanted
 * it asks chk_gate() (the only place that knows -n/-y/-p and the terminal question), and
 * after doing the fix (usually once for many problems, e.g. one free-list rebuild) marks the
 * problems it fixed with chk_fixed().  Exit status: e2fsck's bit sum (main.c).
 *
 * Single-threaded: one struct chk, used by one thread.
 */
#ifndef KVFS_TOOLS_CHECK_H
#define KVFS_TOOLS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/inspect.h"

/* ---- the problem table ---- */

enum chk_severity {
	SEV_ERROR,   /* corruption: bytes that a sound store never holds */
	SEV_WARNING, /* an inconsistency a crash or a bug leaves (a leak, a wrong count, a torn
			log tail, a pending orphan): counted as a problem like an error */
};

/*
 * One row of the problem table.  `code` is stable (tests, --json, man page); `what` is the
 * general description printed by --list-problems; `fix` says what the repair does, NULL when
 * there is none.  `safe`: -y does the fix (it loses nothing that the store still holds
 * intact and guesses nothing); `preen`: -p does it too (safe and expected after a crash, so
 * no human needs to see it).  preen implies safe.
 */
struct chk_def {
	const char *code;
	enum chk_severity sev;
	bool safe, preen;
	const char *what;
	const char *fix;
};

/* A phase: its number and name (in every message), its rows, and how to run it. */
struct chk;
struct chk_phase {
	unsigned num;
	const char *name;
	const struct chk_def *defs;
	size_t ndefs;
	/* Check, then repair what the gate allowed.  Returns 0, or -errno for an operational
	 * failure (cannot read a file, out of memory) after which the check cannot go on
	 * (exit 8).  Problems found are not failures. */
	int (*run)(struct chk *c);
};

extern const struct chk_phase chk_phase_meta, chk_phase_pages, chk_phase_trees,
	chk_phase_space, chk_phase_log, chk_phase_namespace;

/* ---- options ---- */

enum chk_mode {
	MODE_NO,    /* -n: read-only, answer no to every fix (also the default without a terminal) */
	MODE_YES,   /* -y: do every fix the table marks safe */
	MODE_PREEN, /* -p: do every fix the table marks preen */
	MODE_ASK,   /* no flag, on a terminal: ask for each fix the table marks safe */
};

struct chk_opts {
	enum chk_mode mode;
	bool verbose;       /* -v: notes too (what was checked, counts per tree, log records) */
	bool force;         /* -f: accepted for fsck(8) compatibility; kvfs always checks fully */
	bool json;          /* --json: the report as one JSON document on stdout (report.c) */
	bool previous_meta; /* --previous-meta: check (and with -y roll back to) the older state */
	const char *store;  /* the data file's path */
};

/* ---- page map: what phases 1-3 learn about each page in [0, page_count) ---- */

enum {
	PG_REACHED = 0x01, /* reached from a tree (phase 1), at least once */
	PG_SHARED = 0x02,  /* reached more than once (INV-2) */
	PG_BAD = 0x04,     /* failed its checks (phase 1): not descended into, no structure check */
	PG_FREE = 0x08,    /* on the free list or a deferred run (phase 3) */
	PG_FREE2 = 0x10,   /* on the free list more than once */
	PG_OVERFLOW = 0x20,/* part of an overflow run (no header) */
	PG_FREEDB = 0x40,  /* a page of the free-list tree itself */
};

/* A value as found in a leaf cell: inline bytes, or an overflow run to read. */
struct chk_value {
	const uint8_t *inline_bytes; /* NULL for an overflow value */
	pgno_t ovf_pgno;             /* overflow run start (when inline_bytes is NULL) */
	uint32_t vlen;               /* bytes */
};

/* ---- the checker's state ---- */

struct chk_problem {
	const struct chk_phase *phase;
	const struct chk_def *def;
	uint64_t page;  /* 0: none */
	uint64_t ino;   /* 0: none */
	char *msg;      /* owned */
	bool fixed;
};

struct chk_ns; /* phase5_namespace.c: the namespace collected from the trees and the log */

/* A named tree of the catalog whose TREE RECORD is sound (phase 1 reports the others). */
struct chk_tree {
	char name[4 * STORE_MAX_TREE_NAME + 1]; /* printable (chk_printable) */
	struct tree_rec rec;
	pgno_t leaf;   /* the catalog leaf holding it, for messages */
	int engine;    /* engine tree number for "t0".."t7", else -1 */
};

struct chk {
	struct chk_opts o;
	const char *path;        /* data file */
	char *wal_path;          /* path + "-wal" */
	int fd;                  /* data file, O_RDONLY (-n, or in use) or O_RDWR */
	uint64_t file_bytes;     /* size of the data file at open */
	bool in_use;             /* another process holds the store's lock (mounted): read-only,
				    last committed state, no repairs */
	bool readonly;           /* no fix may be made (-n, or in_use) */

	/* phase 0 */
	struct meta metas[2];    /* decoded slots */
	int meta_err[2];         /* 0, or meta_decode's -errno for that slot */
	unsigned slot;           /* the slot being checked (current, or older with
				    --previous-meta) */
	struct meta meta;        /* == metas[slot] */
	bool have_meta;          /* false: nothing further can be checked */
	uint64_t page_count;     /* pages to check: min(meta.page_count, pages in the file) */

	/* phases 1-3 */
	uint8_t *pg;             /* page map, page_count bytes of PG_* */
	bool trees_damaged;      /* a tree page (not the free list's) failed: reachability is
				    incomplete, so the free list cannot be rebuilt */
	uint64_t n_trees;        /* named trees in the catalog */
	struct chk_tree *trees;  /* phase 1: the catalog's sound tree records, in key order */
	size_t n_sound_trees;
	uint64_t n_pages_used;   /* reachable pages */
	uint64_t n_pages_free;   /* on the free list */

	/* phases 2, 4 -> 5: the namespace (phase 5 owns it) */
	struct chk_ns *ns;
	bool ns_incomplete;      /* some namespace tree pages or log records were unreadable */

	/* phase 4 */
	uint64_t log_records;    /* records after the meta page's LSN (replayed at open) */

	/* phase 5 summary */
	uint64_t n_files, n_dirs, n_bytes;

	/* problems, in the order found */
	struct chk_problem *problems;
	size_t n_problems, cap_problems;
	const struct chk_phase *cur_phase;

	double t_start;          /* CLOCK_MONOTONIC seconds */
	bool progress;           /* stderr is a terminal and the store is large */
};

/* ---- report.c ---- */

/*
 * Record a problem of the current phase (c->cur_phase) from row `def` about `page` and/or
 * `ino` (0: none) with a printf message saying what exactly is wrong (no phase prefix, no
 * newline).  Returns the problem's index for chk_fixed().  Printed (text mode) after the last
 * phase, as "phase N name: page P: inode I: msg [CODE, fate]".  Out of memory: prints and
 * exits 8.
 */
size_t chk_report(struct chk *c, const struct chk_def *def, uint64_t page, uint64_t ino,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * The gate: may the fix of problem `id` (`action`: what will be done, e.g. "rebuild the free
 * list") be made?  False in read-only mode and for rows without a fix; -y: the row's `safe`;
 * -p: its `preen`; ask mode: the row is safe and the user answers y on the terminal.  Every
 * repair in kvfs-check is preceded by a true answer from here.
 */
bool chk_gate(struct chk *c, size_t id, const char *action);

/* The fix of problem `id` was made (and is durable). */
void chk_fixed(struct chk *c, size_t id);

/* A note: printed only with -v (text) and in --json's "notes"; not a problem. */
void chk_note(struct chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Progress of the current phase: `done` of `total` units (pages, records).  Draws a bar on
 * stderr when c->progress; cheap to call often. */
void chk_progress(struct chk *c, uint64_t done, uint64_t total);

/* The current phase has ended (clears the progress bar). */
void chk_phase_done(struct chk *c);

/* The summary (text) or the whole JSON document; returns the exit status: `extra` (8 after an
 * operational error) plus 1 when problems were fixed, 4 when some were not. */
int chk_finish(struct chk *c, int extra);

/* Free the problem list and notes. */
void chk_report_free(struct chk *c);

/* Bytes p[0..n) as text for a message: printable ASCII as is, others (and '\\') as \xNN.
 * out must hold 4 * n + 1 bytes. */
void chk_printable(char *out, const uint8_t *p, size_t n);

/* CLOCK_MONOTONIC, seconds. */
double chk_now(void);

/* ---- main.c: reading the data file ---- */

/* Read page `pgno` (any page number below the file's size) into buf[4096].
 * 0, -ERANGE (beyond the end of the file), -EIO (or the pread's -errno). */
int chk_read_page(struct chk *c, pgno_t pgno, uint8_t *buf);

/* Read `n` consecutive pages from `pgno` into buf (n * 4096 bytes).  Same errors. */
int chk_read_pages(struct chk *c, pgno_t pgno, uint64_t n, uint8_t *buf);

/* Read a leaf value: inline bytes are copied, an overflow run is read (not re-checked: phase
 * 2 checked it).  Copies min(cap, vlen) bytes; 0 or -errno. */
int chk_read_value(struct chk *c, const struct chk_value *v, void *buf, size_t cap);

/* The transaction id of the newer valid meta page as the file holds it now (0: none). */
txnid_t chk_newest_txnid(struct chk *c);

/* Drop kvfs-check's own lock on the data file, so that a repair can open the store (its lock
 * would conflict with ours).  Call right before store_open / engine_open / wal_open for
 * writing.  Idempotent. */
void chk_release_lock(struct chk *c);

/* ---- phase 5's collector (phase5_namespace.c), fed by phase 2 and phase 4 ---- */

/* Does phase 5 need the value bytes of entries of engine tree `tree` (else only vlen)? */
bool chk_ns_wants_value(unsigned tree);
/* An entry of engine tree `tree` (0..ENGINE_TREES-1, named "t<N>") found in the B+tree, in
 * key order per tree.  `val` is NULL when !chk_ns_wants_value(tree) or the value could not be
 * read; vlen is always the value's length. */
void chk_ns_tree_entry(struct chk *c, unsigned tree, const void *key, size_t klen,
		       const void *val, size_t vlen);
/* A put (del false) or delete from a log record after the meta page's LSN, in log order,
 * after every tree entry. */
void chk_ns_log_op(struct chk *c, unsigned tree, bool del, const void *key, size_t klen,
		   const void *val, size_t vlen);

#endif
