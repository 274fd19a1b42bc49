/*
 * tests/damage.h — a generator of damaged kvfs stores, for kvfs-check's tests
 * (tests/check_checker.c) and for humans reproducing a case (kvfs-damage STORE CASE [SEED]).
 *
 * What it offers:
 *   1. Base stores, built by code through kvfs.h (no binary image is ever committed):
 *      dmg_make_store() a cleanly closed store with a representative namespace (nested
 *      directories, files of every size class — empty, inline, a few blocks, with holes, one
 *      of 1 MiB —, hard links, symlinks, a FIFO, xattrs; enough entries that the inode, dirent
 *      and data trees have branch pages; a non-empty free list); dmg_make_crashed() writes
 *      more into such a store from a forked child that _exit()s without kvfs_close, so the log
 *      holds records after the meta page's LSN (optionally with a file unlinked while open).
 *   2. Raw views of the files, read with pread from format.h and wal/log.h alone: the page
 *      layout (every page reachable from the current meta page, its kind, tree, level and
 *      parent) and the live log records.
 *   3. Damage cases: one function per problem code of kvfs-check (tools/check/check.h, the
 *      problem table of man/kvfs-check.8) that can be produced, each making exactly that
 *      problem, by flipping bytes, by rewriting pages with their checksums recomputed, or
 *      through the raw engine API (a perfectly checksummed store with a namespace
 *      inconsistency).  dmg_cases[] lists them with the base store each starts from.
 *
 * What it does not do: no checking, no expectations about kvfs-check's output (the test
 * owns those).  Deterministic: same base store and seed, same bytes changed.
 *
 * Conventions: 0 or -errno; `msg` (may be NULL) receives what was done or what failed.
 * Not thread-safe (a case forks for the crashed variant; call from one thread).
 */
#ifndef KVFS_TESTS_DAMAGE_H
#define KVFS_TESTS_DAMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/engine.h"
#include "store/inspect.h"
#include "wal/log.h"

/* ---- 1. base stores ---- */

/* Build a new store at `path` (must not exist; its log is path + "-wal", with a 1 MiB ring). */
int dmg_make_store(const char *path, char *msg, size_t len);
/* Write more into the closed store at `path` from a forked child that dies without closing:
 * new files, a replaced file, a deletion, a rename; with `orphan`, also a file unlinked while
 * open (NS_ORPHAN_PENDING after the crash). */
int dmg_make_crashed(const char *path, bool orphan, char *msg, size_t len);
/* Embed, through the raw engine, the records of 15 inodes of the closed store at `path`
 * (made by dmg_make_store) in their dirents with their INODE REFs, as a format version 4
 * writer does (store/ns_format.h "Embedded inodes"): files of each size class, one with
 * blocks and an xattr, one with holes, symlinks, a FIFO.  With `log`, from a forked child
 * that dies without closing, so that the changes are only in the log.  The store checks
 * clean. */
int dmg_make_embedded(const char *path, bool log, char *msg, size_t len);
/* Change 1..3 of the embedded inodes that dmg_make_embedded made in the closed store at
 * `path`, at random from `seed`, through the raw engine: random bytes after a dirent's 9,
 * a byte of an embedded record changed, a record cut short, random bytes (mostly REF-like)
 * in T_INODE, a REF naming another embedding dirent, a dirent made plain, a random type
 * byte.  Not one problem code: for kvfs-check's robustness (its model and its repairs). */
int dmg_embed_garbage(const char *path, uint64_t seed, char *msg, size_t len);
/* Rewrite the format version of both meta pages of the closed store at `path` (checksums
 * recomputed), e.g. to 3: a store that a version 4 writer crashed in before its first
 * checkpoint (store/format.h). */
int dmg_set_format_version(const char *path, uint32_t version, char *msg, size_t len);
/* Copy the data file and the log (or remove dst's log when src has none). */
int dmg_copy_store(const char *src, const char *dst);
/* Deterministic content of the file `key` (what dmg_make_store wrote), n bytes. */
void dmg_content(const char *key, uint8_t *buf, size_t n);

/* ---- 2. raw views ---- */

int dmg_read_file(const char *path, uint8_t **buf, size_t *len);
int dmg_write_at(const char *path, uint64_t off, const void *buf, size_t len);
/* XXH3-64 of the whole file; false when it does not exist. */
bool dmg_hash_file(const char *path, uint64_t *h);

enum dmg_kind { DK_NONE, DK_META, DK_BRANCH, DK_LEAF, DK_OVF };
#define DMG_CATALOG (-2)
#define DMG_FREEDB (-1)

struct dmg_page {
	uint8_t kind;        /* DK_* */
	int8_t tree;         /* DMG_CATALOG, DMG_FREEDB, or the engine tree 0..ENGINE_TREES-1 */
	uint8_t level;       /* tree pages */
	uint16_t cell;       /* index of the cell in `parent` that refers to it */
	pgno_t parent;       /* 0 for a root (and meta pages) */
	pgno_t run;          /* overflow: first page of the run */
	uint32_t covered;    /* overflow: value bytes in this page; tree and meta pages: 4096 */
};

struct dmg_layout {
	uint8_t *img;        /* the whole data file */
	size_t len;
	uint64_t npages;     /* whole pages in the file */
	unsigned slot;       /* current meta slot */
	bool valid[2];
	struct meta metas[2];
	struct meta meta;    /* == metas[slot] */
	bool has_tree[ENGINE_TREES];
	struct tree_rec trees[ENGINE_TREES];
	struct dmg_page *pg; /* [npages] */
};

/* Read and walk the data file at `path` (every checksum must hold: a base store). */
int dmg_layout_load(const char *path, struct dmg_layout *L, char *msg, size_t len);
void dmg_layout_free(struct dmg_layout *L);
/* The nth (0-based, wrapping) page of `kind` in `tree` (any tree: tree == INT8_MIN) with
 * level `level` (any: -1); 0 when none. */
pgno_t dmg_layout_find(const struct dmg_layout *L, int kind, int tree, int level, uint64_t nth);
uint64_t dmg_layout_count(const struct dmg_layout *L, int kind, int tree, int level);

struct dmg_logrec {
	lsn_t lsn;
	uint64_t off;        /* file offset of the record header */
	uint32_t size;       /* header + payload, before padding */
	uint32_t type;
};
struct dmg_log {
	uint64_t ring, salt;
	lsn_t from, end;
	struct dmg_logrec *r; /* live records (pads included) from `from` */
	size_t n;
};
/* Walk the log at `wal` from LSN `from` as recovery would. */
int dmg_log_load(const char *wal, lsn_t from, struct dmg_log *out);
void dmg_log_free(struct dmg_log *g);
/* Recompute the checksum of the record at file offset `off` (size from its header). */
int dmg_log_reseal(const char *wal, uint64_t salt, uint64_t off);

/* Recompute a tree page's checksum (seed = pgno). */
void dmg_page_reseal(uint8_t *page, pgno_t pgno);

/* ---- 3. damage cases ---- */

enum dmg_base { DB_CLEAN, DB_CRASHED, DB_ORPHAN };

struct dmg_case {
	const char *name;   /* unique: the code, or code/variant */
	const char *code;   /* kvfs-check's problem code this makes */
	enum dmg_base base;
	int (*fn)(const char *path, uint64_t seed, char *msg, size_t len);
};

extern const struct dmg_case dmg_cases[];
extern const size_t dmg_n_cases;
/* The case named `name`, or NULL. */
const struct dmg_case *dmg_find(const char *name);

#endif
