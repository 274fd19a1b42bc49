/*
 * tests/check_checker.c — kvfs-check's tests: the tool (KVFS_CHECK_BIN) run with fork/exec
 * on stores damaged by tests/damage.c.
 *
 * Test cases:
 *   codes    one per damage case (tests/damage.c dmg_cases[]): damage a fresh copy of a base
 *            store; `-n --json` must exit 4, report exactly the expected set of problem codes
 *            (table `expect` below: the case's code plus the extras its damage implies) and
 *            change no byte of the data file or the log; `-p` on a copy fixes exactly the
 *            rows marked preen, `-y` exactly the rows marked safe (exit: e2fsck's bit sum of
 *            1 corrected and 4 left); a second `-n` is then clean (exit 0) when everything
 *            was fixed, else still reports the unfixable codes.
 *   clean    the base stores (clean and crashed) check clean with -n, -y and -p; so does one
 *            with embedded inodes (test_embedded_clean, tests/damage.c dmg_make_embedded).
 *   random   random single-byte corruption (KVFS_CHECK_TRIALS, default 1000; KVFS_SEED):
 *            one byte of a reachable page (meta, tree, overflow value) of the data file or of
 *            a live log record of a crashed store; `-n` must exit non-zero with a problem,
 *            never die by a signal, and change nothing.  Seeds printed on failure.
 *            test_embedded_random: random damage to embedded inodes (dmg_embed_garbage),
 *            trials / 10: -n, -y never die, a -y that fixed everything leaves it clean.
 *   intact   -y never loses an intact file: for every damage case, every file that reads
 *            back right through kvfs.h (read-only) before the repair reads back the same
 *            after it.
 *   in_use   a store held open by kvfs_open: -n checks read-only and says the store is in
 *            use; -y refuses to repair; nothing changes.
 *   usage    exit statuses of the command line: 16, 0, 8.
 * KVFS_CHECK_CASE=NAME runs only that damage case of "codes" (CK_RUN_CASE=codes with it);
 * KVFS_CHECK_BIN=PATH runs another kvfs-check than the one built with the suite.
 *
 * The problem codes, their severity and their safe/preen flags come from the specification
 * (man/kvfs-check.8, "PROBLEMS"), not from the tool's table, so
 * a row that drifts from the specification fails here.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/checksum.h"
#include "store/format.h"
#include "store/kvfs.h"
#include "tests/damage.h"
#include "tests/testutil.h"

#ifndef KVFS_CHECK_BIN
#error "KVFS_CHECK_BIN (the kvfs-check binary) must be defined by tests/checker.cmake"
#endif

#define DEFAULT_SEED 0x63686b72u /* "chkr" */
#define DEFAULT_TRIALS 1000

/* ---- the specification (man/kvfs-check.8): safe (-y fixes), preen (-p fixes) ---- */

struct spec {
	const char *code;
	bool safe, preen;
};

static const struct spec spec[] = {
	{ "META_SLOT_CORRUPT", true, true },   { "META_BOTH_CORRUPT", false, false },
	{ "META_ROLLBACK", true, false },      /* --previous-meta only */
	{ "META_FILE_SHORT", false, false },   { "PAGE_CHECKSUM", false, false },
	{ "PAGE_MISDIRECTED", false, false },  { "PAGE_STALE", false, false },
	{ "PAGE_LEVEL", false, false },        { "PAGE_STRUCTURE", false, false },
	{ "PAGE_OUT_OF_RANGE", false, false }, { "OVERFLOW_RANGE", false, false },
	{ "OVERFLOW_CHECKSUM", false, false }, { "CATALOG_ENTRY", false, false },
	{ "FREELIST_PAGE", true, true },       { "TREE_SEPARATOR", false, false },
	{ "TREE_RECORD", true, true },         { "SPACE_LEAKED", true, true },
	{ "SPACE_FREE_AND_USED", true, false }, { "SPACE_DOUBLE_FREE", true, false },
	{ "SPACE_FREE_RANGE", true, false },   { "SPACE_FREE_COUNT", true, true },
	{ "FREELIST_CHUNK", true, false },     { "SPACE_SHARED", false, false },
	{ "LOG_MISSING", true, true },         { "LOG_HEADER", false, false },
	{ "LOG_SHORT", true, true },           { "LOG_TORN_TAIL", true, true },
	{ "LOG_STALE_RECORD", true, true },    { "LOG_RECORD_BAD", false, false },
	{ "NS_ROOT", false, false },           { "NS_INODE_RECORD", false, false },
	{ "NS_DIRENT_DANGLING", true, false }, { "NS_DIRENT_TYPE", true, false },
	{ "NS_DIRENT_BAD", true, false },      { "NS_NLINK", true, true },
	{ "NS_DIR_LINKS", true, false },       { "NS_PARENT", true, true },
	{ "NS_LOST_INODE", true, false },      { "NS_CYCLE", true, false },
	{ "NS_ORPHAN_PENDING", true, true },   { "NS_ORPHAN_STALE", true, true },
	{ "NS_BLOCK_ORPHAN", true, true },     { "NS_XATTR_ORPHAN", true, true },
	{ "NS_BLOCK_BAD", true, false },       { "NS_SIZE", true, false },
	{ "NS_BLOCKS_COUNT", true, true },     { "NS_NEXT_INO", true, true },
	{ "NS_EMBED_DIR", true, false },       { "NS_EMBED_REF", true, false },
	{ "NS_EMBED_LINKS", true, false },     { "NS_REF_DANGLING", true, false },
	{ "NS_ORPHAN_EMBED", true, false },
};

static const struct spec *spec_of(const char *code)
{
	for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++)
		if (strcmp(spec[i].code, code) == 0)
			return &spec[i];
	return NULL;
}

/*
 * The exact set of codes each damage case makes kvfs-check -n report: the case's own code
 * plus the ones listed here, each with the reason its damage implies it.  Anything else
 * reported fails the test.  "?CODE": may be reported (depends on what the base store, built
 * with a background checkpoint thread, happens to hold at the damaged place).
 */
struct expect {
	const char *name;   /* dmg_cases[].name */
	const char *extras; /* space-separated codes besides the case's own; "" for none */
};

/* What an incomplete namespace (a namespace tree page unreadable) may look like: phase 5
 * reports these with "(namespace incomplete)" and offers no fix (phase5_namespace.c); the
 * test checks both for every one of them in a case whose extras end with NS_FALLOUT. */
#define NS_FALLOUT                                                                           \
	"?NS_DIRENT_DANGLING ?NS_LOST_INODE ?NS_CYCLE ?NS_NLINK ?NS_PARENT ?NS_DIR_LINKS "  \
	"?NS_BLOCK_ORPHAN ?NS_XATTR_ORPHAN ?NS_BLOCKS_COUNT ~"

static const struct expect expect[] = {
	/* the fall-back state's LSN is older than the log's reset (clean close renews the salt):
	 * records of the previous salt lie where the log would continue from */
	{ "META_SLOT_CORRUPT", "?LOG_TORN_TAIL ?LOG_STALE_RECORD" },
	{ "META_SLOT_CORRUPT/older", "" },
	{ "META_BOTH_CORRUPT", NS_FALLOUT },
	/* the cut page is whatever the last page held: a free-list page (whose runs then look
	 * leaked), a tree page, an overflow page, or a free one */
	{ "META_FILE_SHORT", "?FREELIST_PAGE ?SPACE_LEAKED ?PAGE_OUT_OF_RANGE ?PAGE_CHECKSUM "
			     "?OVERFLOW_RANGE ?OVERFLOW_CHECKSUM ?SPACE_FREE_RANGE" },
	{ "PAGE_CHECKSUM/leaf", NS_FALLOUT },
	{ "PAGE_CHECKSUM/branch", NS_FALLOUT },
	{ "PAGE_CHECKSUM/inode-leaf", NS_FALLOUT },
	{ "PAGE_CHECKSUM/dirent-leaf", NS_FALLOUT },
	{ "PAGE_CHECKSUM/catalog", NS_FALLOUT },
	{ "OVERFLOW_CHECKSUM", NS_FALLOUT },
	{ "PAGE_MISDIRECTED", NS_FALLOUT },
	{ "PAGE_STALE", NS_FALLOUT },
	{ "PAGE_LEVEL", NS_FALLOUT },
	{ "PAGE_STRUCTURE", NS_FALLOUT },
	{ "PAGE_OUT_OF_RANGE", NS_FALLOUT },
	{ "OVERFLOW_RANGE", NS_FALLOUT },
	{ "CATALOG_ENTRY", NS_FALLOUT },
	/* the runs the damaged free-list page held: neither reachable nor (readably) free */
	{ "FREELIST_PAGE", "SPACE_LEAKED" },
	{ "TREE_SEPARATOR", NS_FALLOUT },
	{ "TREE_RECORD", "" },
	/* the subtree that lost its pointer is leaked, but phase 3 looks for leaks only when the
	 * trees are sound (tools/check/phase3_space.c), and a shared page is tree damage */
	{ "SPACE_SHARED", NS_FALLOUT },
	{ "SPACE_LEAKED", "" },
	{ "SPACE_FREE_COUNT", "" },
	{ "SPACE_FREE_AND_USED", "" },
	{ "SPACE_DOUBLE_FREE", "" },
	/* the run's own pages are no longer free: leaked */
	{ "SPACE_FREE_RANGE", "SPACE_LEAKED ?SPACE_FREE_COUNT" },
	/* the chunk's runs cannot be read: their pages look leaked */
	{ "FREELIST_CHUNK", "?SPACE_LEAKED ?SPACE_FREE_COUNT ?PAGE_STRUCTURE" },
	{ "LOG_TORN_TAIL", "" },
	{ "LOG_STALE_RECORD", "" },
	{ "LOG_HEADER", NS_FALLOUT },
	{ "LOG_MISSING", "" },
	{ "LOG_SHORT", "" },
	{ "LOG_RECORD_BAD", NS_FALLOUT },
	{ "NS_NLINK", "" },
	{ "NS_DIRENT_DANGLING", "" },
	{ "NS_DIRENT_TYPE", "" },
	{ "NS_LOST_INODE", "" },
	{ "NS_CYCLE", "" },
	{ "NS_DIR_LINKS", "" },
	{ "NS_PARENT", "" },
	{ "NS_ORPHAN_PENDING", "" },
	{ "NS_ORPHAN_PENDING/punch", "" },
	{ "NS_ORPHAN_STALE", "" },
	{ "NS_ORPHAN_STALE/range", "" },
	{ "NS_BLOCK_ORPHAN", "" },
	{ "NS_XATTR_ORPHAN", "" },
	{ "NS_BLOCK_BAD", "" },
	{ "NS_SIZE", "" },
	{ "NS_BLOCKS_COUNT", "" },
	{ "NS_NEXT_INO", "" },
	{ "NS_DIRENT_BAD", "" },
	{ "NS_INODE_RECORD", "" },
	/* the root's children are then named only by dirents of a missing directory */
	{ "NS_ROOT", "?NS_LOST_INODE" },
	/* embedded inodes (format version 4): every case starts from a dozen sound ones */
	{ "NS_EMBED_DIR", "" },
	{ "NS_EMBED_REF", "" },
	{ "NS_EMBED_REF/full", "" },
	{ "NS_EMBED_REF/other", "" },
	/* one embedded record, two names: its nlink 1 is wrong as well */
	{ "NS_EMBED_LINKS", "NS_NLINK" },
	{ "NS_REF_DANGLING", "" },
	/* the record is gone: the dirent naming the inode plainly dangles */
	{ "NS_REF_DANGLING/plain", "NS_DIRENT_DANGLING" },
	{ "NS_REF_DANGLING/other", "NS_DIRENT_DANGLING" },
	{ "NS_ORPHAN_EMBED", "" },
	{ "NS_ORPHAN_EMBED/ref", "NS_REF_DANGLING" },
	{ "NS_INODE_RECORD/embedded", "" },
	{ "NS_DIRENT_TYPE/embedded", "" },
	{ "NS_NLINK/embedded", "" },
	{ "NS_ORPHAN_PENDING/embedded", "" },
	/* format version 3: the dirent is malformed, so its inode is named by none */
	{ "NS_DIRENT_BAD/v3", "NS_LOST_INODE" },
	{ "NS_EMBED_REF/malformed", "" },
	/* the full record in T_INODE is kept, the embedding dirent rewritten plain */
	{ "NS_EMBED_REF/newer", "" },
	{ "NS_EMBED_LINKS/two", "NS_NLINK" },
	/* removing the dirent moves the record to T_INODE; the inode, named by none, is
	 * reconnected */
	{ "NS_DIRENT_BAD/embedded", "NS_LOST_INODE" },
	/* the same, made by a child that died with them in the log only */
	{ "NS_REF_DANGLING/log", "" },
	{ "NS_EMBED_REF/log", "" },
	{ "NS_NLINK/embedded-log", "" },
};

static const struct expect *expect_of(const char *name)
{
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		if (strcmp(expect[i].name, name) == 0)
			return &expect[i];
	return NULL;
}

/* ---- base stores, built once by main() before the tests fork ---- */

static char g_dir[PATH_MAX / 4];
static char g_base[3][PATH_MAX / 2]; /* by enum dmg_base */

static void bases_build(void)
{
	char msg[512];
	int rc = tu_tmpdir(g_dir, sizeof(g_dir));
	if (rc < 0) {
		fprintf(stderr, "check_checker: tmpdir: %d\n", rc);
		exit(2);
	}
	for (int b = 0; b < 3; b++)
		snprintf(g_base[b], sizeof(g_base[b]), "%s/base%d", g_dir, b);
	rc = dmg_make_store(g_base[DB_CLEAN], msg, sizeof(msg));
	for (int b = DB_CRASHED; b <= DB_ORPHAN && rc == 0; b++) {
		rc = dmg_copy_store(g_base[DB_CLEAN], g_base[b]);
		if (rc == 0)
			rc = dmg_make_crashed(g_base[b], b == DB_ORPHAN, msg, sizeof(msg));
	}
	if (rc < 0) {
		fprintf(stderr, "check_checker: building the base stores: %s (%d)\n", msg, rc);
		exit(2);
	}
}

/* ---- running kvfs-check ---- */

struct run {
	int status;   /* exit status */
	char *out;    /* stdout, NUL-terminated (owned) */
	char *err;    /* stderr */
};

static char *slurp(const char *path)
{
	uint8_t *b;
	size_t n;
	if (dmg_read_file(path, &b, &n) < 0)
		return strdup("");
	char *s = realloc(b, n + 1);
	s[n] = 0;
	return s;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Run kvfs-check with argv[] (NULL-terminated, without the program name); `dir` holds the
 * captured output files.  A death by signal fails the test. */
static void run_check(struct run *r, const char *dir, const char *const *args)
{
	char out[PATH_MAX], err[PATH_MAX];
	const char *argv[16], *bin = getenv("KVFS_CHECK_BIN");
	size_t n = 0;
	if (!bin || !*bin)
		bin = KVFS_CHECK_BIN;
	argv[n++] = bin;
	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	snprintf(err, sizeof(err), "%s/err.txt", dir);
	pid_t pid = fork();
	TU_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int i = open("/dev/null", O_RDONLY);
		if (o < 0 || e < 0 || i < 0)
			_exit(127);
		dup2(i, 0);
		dup2(o, 1);
		dup2(e, 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	int st;
	TU_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	r->out = slurp(out);
	r->err = slurp(err);
	if (WIFSIGNALED(st))
		tu_fail(__FILE__, __LINE__, "kvfs-check %s %s died by signal %d; stderr:\n%s",
			argv[1], argv[n - 1], WTERMSIG(st), r->err);
	TU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) != 127, "kvfs-check did not run: %s", bin);
	/* under -DKVFS_SANITIZE the tool is built with ASan and UBSan: any report fails */
	TU_ASSERT(!strstr(r->err, "ERROR: AddressSanitizer") && !strstr(r->err, "runtime error:") &&
			  !strstr(r->err, "ERROR: LeakSanitizer"),
		  "kvfs-check %s %s: sanitizer report:\n%s", argv[1], argv[n - 1], r->err);
	r->status = WEXITSTATUS(st);
}

/* The problems of a --json report: codes and fixed flags, in order. */
struct probs {
	size_t n;
	char code[256][32];
	bool fixed[256];
	bool incomplete[256]; /* the message says "(namespace incomplete)" */
	long exit_field; /* "exit" of the document, -1 when missing */
};

static const char *json_value(const char *p, const char *key)
{
	char k[40];
	snprintf(k, sizeof(k), "\"%s\"", key);
	p = strstr(p, k);
	if (!p)
		return NULL;
	p += strlen(k);
	while (*p == ' ' || *p == '\n' || *p == '\t')
		p++;
	if (*p++ != ':')
		return NULL;
	while (*p == ' ' || *p == '\n' || *p == '\t')
		p++;
	return p;
}

static void parse_json(const char *out, struct probs *pr)
{
	memset(pr, 0, sizeof(*pr));
	pr->exit_field = -1;
	const char *p = strstr(out, "\"problems\"");
	TU_ASSERT(strstr(out, "\"kvfs_check\"") && p, "not a kvfs-check JSON report:\n%.2000s", out);
	const char *end = strstr(p, "\"notes\"");
	const char *sum = strstr(p, "\"summary\"");
	if (!end || (sum && sum < end))
		end = sum;
	for (;;) {
		const char *v = json_value(p, "code");
		if (!v || (end && v > end))
			break;
		TU_ASSERT(*v == '"', "code is not a string: %.100s", v);
		size_t k = strcspn(v + 1, "\"");
		if (pr->n < 256) {
			snprintf(pr->code[pr->n], sizeof(pr->code[0]), "%.*s", (int)k, v + 1);
			const char *f = json_value(v, "fixed");
			const char *nextc = json_value(v + 1 + k, "code");
			pr->fixed[pr->n] = f && (!nextc || f < nextc) && strncmp(f, "true", 4) == 0;
			const char *m = json_value(v, "message");
			const char *inc = m ? strstr(m, "(namespace incomplete)") : NULL;
			pr->incomplete[pr->n] = inc && (!nextc || inc < nextc);
			pr->n++;
		}
		p = v + 1 + k;
	}
	const char *x = json_value(sum ? sum : out, "exit");
	if (x)
		pr->exit_field = strtol(x, NULL, 10);
}

static bool probs_have(const struct probs *pr, const char *code)
{
	for (size_t i = 0; i < pr->n; i++)
		if (strcmp(pr->code[i], code) == 0)
			return true;
	return false;
}

static char *probs_str(const struct probs *pr, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = 0;
	for (size_t i = 0; i < pr->n && used + 1 < len; i++) {
		int k = snprintf(buf + used, len - used, "%s%s%s", i ? " " : "", pr->code[i],
				 pr->fixed[i] ? "(fixed)" : "");
		if (k > 0)
			used += (size_t)k;
	}
	return buf;
}

/* The distinct codes of a report, with their counts: "CODE" or "CODE x N". */
static void distinct_codes(const struct probs *pr, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = 0;
	for (size_t i = 0; i < pr->n; i++) {
		size_t k, cnt = 0;
		for (k = 0; k < i && strcmp(pr->code[k], pr->code[i]); k++)
			;
		if (k < i)
			continue;
		for (k = i; k < pr->n; k++)
			cnt += strcmp(pr->code[k], pr->code[i]) == 0;
		int w = cnt > 1 ? snprintf(buf + used, len - used, "%s%s x%zu", used ? " " : "",
					   pr->code[i], cnt)
				: snprintf(buf + used, len - used, "%s%s", used ? " " : "", pr->code[i]);
		if (w < 0 || (size_t)w >= len - used)
			break;
		used += (size_t)w;
	}
}

struct hashes {
	bool have[2];
	uint64_t h[2];
};

static void hash_store(const char *path, struct hashes *h)
{
	char wal[PATH_MAX];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	h->have[0] = dmg_hash_file(path, &h->h[0]);
	h->have[1] = dmg_hash_file(wal, &h->h[1]);
	if (!h->have[0])
		h->h[0] = 0;
	if (!h->have[1])
		h->h[1] = 0;
}

static bool hashes_eq(const struct hashes *a, const struct hashes *b)
{
	return a->have[0] == b->have[0] && a->have[1] == b->have[1] && a->h[0] == b->h[0] &&
	       a->h[1] == b->h[1];
}

/* ---- codes ---- */

static void make_case(const struct dmg_case *dc, const char *path, char *msg, size_t len)
{
	int rc = dmg_copy_store(g_base[dc->base], path);
	TU_ASSERT_EQ(rc, 0, "copy base store %d", (int)dc->base);
	rc = dc->fn(path, 0, msg, len);
	TU_ASSERT_EQ(rc, 0, "damage %s: %s", dc->name, msg);
}

/* Mode letter: 'n', 'y' or 'p'. */
static void run_mode(struct run *r, struct probs *pr, const char *dir, const char *path,
		     char mode)
{
	char flag[3] = { '-', mode, 0 };
	const char *args[] = { flag, "--json", path, NULL };
	run_check(r, dir, args);
	parse_json(r->out, pr);
}

/*
 * The fixed flags against the specification in `mode`: a row the mode may not fix is never
 * fixed; when every problem found is one the mode may fix, each is fixed (when some are not,
 * a fix the mode allows may have been held back by them — a free-list rebuild needs sound
 * trees and a whole file).  Returns the exit status the flags imply: e2fsck's bit sum.
 */
static int expect_fixes(const struct dmg_case *dc, const struct probs *pr, char mode,
			const char *what)
{
	bool any_fixed = false, any_left = false, all_allowed = true;
	char buf[2048];
	for (size_t i = 0; i < pr->n; i++) {
		const struct spec *s = spec_of(pr->code[i]);
		TU_ASSERT(s, "%s: unknown code %s", dc->name, pr->code[i]);
		all_allowed &= mode == 'y' ? s->safe : mode == 'p' ? s->preen : false;
	}
	for (size_t i = 0; i < pr->n; i++) {
		const struct spec *s = spec_of(pr->code[i]);
		bool may = mode == 'y' ? s->safe : mode == 'p' ? s->preen : false;
		TU_ASSERT(may || !pr->fixed[i], "%s: %s: %s was fixed, which the mode may not (%s)",
			  dc->name, what, pr->code[i], probs_str(pr, buf, sizeof(buf)));
		TU_ASSERT(!all_allowed || pr->fixed[i], "%s: %s: %s was not fixed, though every "
			  "problem found may be (%s)", dc->name, what, pr->code[i],
			  probs_str(pr, buf, sizeof(buf)));
		any_fixed |= pr->fixed[i];
		any_left |= !pr->fixed[i];
	}
	return (any_fixed ? 1 : 0) | (any_left ? 4 : 0);
}

static void check_code_case(const struct dmg_case *dc)
{
	char dir[PATH_MAX / 2], path[PATH_MAX], preen[PATH_MAX], msg[512], buf[2048];
	struct run r = { 0 };
	struct probs pr;
	struct hashes h0, h1;
	const struct expect *ex = expect_of(dc->name);

	TU_ASSERT(ex, "no expectation for case %s", dc->name);
	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(preen, sizeof(preen), "%s/preen", dir);
	make_case(dc, path, msg, sizeof(msg));
	TU_ASSERT_EQ(dmg_copy_store(path, preen), 0, "%s", "copy for -p");

	/* 1. -n: the code, exactly the expected set, exit 4, nothing written */
	hash_store(path, &h0);
	run_mode(&r, &pr, dir, path, 'n');
	hash_store(path, &h1);
	TU_ASSERT(hashes_eq(&h0, &h1), "%s: -n changed the store (%s)", dc->name, msg);
	TU_ASSERT(probs_have(&pr, dc->code), "%s: -n did not report %s (damage: %s); exit %d; "
		  "reported: %s; stderr: %s", dc->name, dc->code, msg, r.status,
		  probs_str(&pr, buf, sizeof(buf)), r.err);
	for (size_t i = 0; i < pr.n; i++) {
		char pat[40], opt[40], set[256];
		snprintf(pat, sizeof(pat), " %s ", pr.code[i]);
		snprintf(opt, sizeof(opt), " ?%s ", pr.code[i]);
		snprintf(set, sizeof(set), " %s %s ", dc->code, ex->extras);
		TU_ASSERT(strstr(set, pat) || strstr(set, opt), "%s: -n reported %s, not implied by "
			  "the damage (%s); reported: %s", dc->name, pr.code[i], msg,
			  probs_str(&pr, buf, sizeof(buf)));
	}
	for (const char *e = ex->extras; *e;) {
		size_t k = strcspn(e, " ");
		char code[32];
		snprintf(code, sizeof(code), "%.*s", (int)k, e);
		TU_ASSERT(code[0] == '?' || code[0] == '~' || probs_have(&pr, code), "%s: -n did "
			  "not report %s; "
			  "reported: %s", dc->name, code, probs_str(&pr, buf, sizeof(buf)));
		e += k;
		e += strspn(e, " ");
	}
	/* "~": the NS_* problems beyond the case's own are consequences of unreadable pages */
	if (strchr(ex->extras, '~'))
		for (size_t i = 0; i < pr.n; i++)
			TU_ASSERT(strncmp(pr.code[i], "NS_", 3) != 0 ||
					  strcmp(pr.code[i], dc->code) == 0 || pr.incomplete[i],
				  "%s: %s reported without \"(namespace incomplete)\" (%s)",
				  dc->name, pr.code[i], msg);
	expect_fixes(dc, &pr, 'n', "-n");
	TU_ASSERT_EQ(r.status, 4, "%s: -n exit status; reported: %s; stderr: %s", dc->name,
		     probs_str(&pr, buf, sizeof(buf)), r.err);
	TU_ASSERT_EQ(pr.exit_field, r.status, "%s: JSON \"exit\"", dc->name);
	run_free(&r);

	char set_n[512];
	distinct_codes(&pr, set_n, sizeof(set_n));
	int st_y, st_n2, st_p = -1;
	size_t fixed_y = 0, n_y;

	/* 2. -y: fixes exactly the safe rows */
	run_mode(&r, &pr, dir, path, 'y');
	st_y = r.status;
	n_y = pr.n;
	for (size_t i = 0; i < pr.n; i++)
		fixed_y += pr.fixed[i];
	TU_ASSERT(probs_have(&pr, dc->code), "%s: -y did not report %s; reported: %s", dc->name,
		  dc->code, probs_str(&pr, buf, sizeof(buf)));
	int want = expect_fixes(dc, &pr, 'y', "-y");
	TU_ASSERT_EQ(r.status, want, "%s: -y exit status; reported: %s; stderr: %s", dc->name,
		     probs_str(&pr, buf, sizeof(buf)), r.err);
	/* damage that has no fix: whatever else it makes look wrong is a consequence, and
	 * "fixing" a consequence is a guess (removing the dirents of a missing root, say) */
	TU_ASSERT(spec_of(dc->code)->safe || fixed_y == 0, "%s: -y fixed %zu consequences of "
		  "damage it cannot fix: %s", dc->name, fixed_y, probs_str(&pr, buf, sizeof(buf)));
	run_free(&r);

	/* 3. -n again: clean when -y fixed everything, else the unfixable codes remain */
	struct probs before = pr;
	run_mode(&r, &pr, dir, path, 'n');
	st_n2 = r.status;
	if (want == 1) {
		TU_ASSERT(r.status == 0 && pr.n == 0, "%s: second -n after -y: exit %d, reported: "
			  "%s; stderr: %s", dc->name, r.status, probs_str(&pr, buf, sizeof(buf)),
			  r.err);
	} else {
		TU_ASSERT_EQ(r.status, 4, "%s: second -n after -y; reported: %s", dc->name,
			     probs_str(&pr, buf, sizeof(buf)));
		for (size_t i = 0; i < before.n; i++)
			if (!before.fixed[i])
				TU_ASSERT(probs_have(&pr, before.code[i]), "%s: %s gone after -y "
					  "without a fix; now: %s", dc->name, before.code[i],
					  probs_str(&pr, buf, sizeof(buf)));
	}
	run_free(&r);

	/* 4. -p on the copy: fixes exactly the preen rows */
	run_mode(&r, &pr, dir, preen, 'p');
	TU_ASSERT(probs_have(&pr, dc->code), "%s: -p did not report %s", dc->name, dc->code);
	want = expect_fixes(dc, &pr, 'p', "-p");
	st_p = r.status;
	TU_ASSERT_EQ(r.status, want, "%s: -p exit status; reported: %s; stderr: %s", dc->name,
		     probs_str(&pr, buf, sizeof(buf)), r.err);
	run_free(&r);
	if (want == 1) {
		run_mode(&r, &pr, dir, preen, 'n');
		TU_ASSERT(r.status == 0 && pr.n == 0, "%s: -n after -p: exit %d, reported: %s",
			  dc->name, r.status, probs_str(&pr, buf, sizeof(buf)));
		run_free(&r);
	}
	fprintf(stderr, "codes %-26s -n 4 {%s}; -y %d (%zu of %zu fixed); -n again %d; -p %d\n",
		dc->name, set_n, st_y, fixed_y, n_y, st_n2, st_p);
	tu_rmtree(dir);
}

START_TEST(test_codes)
{
	const struct dmg_case *dc = &dmg_cases[_i];
	const char *only = getenv("KVFS_CHECK_CASE");
	if (only && strcmp(only, dc->name) != 0)
		return;
	check_code_case(dc);
}
END_TEST

START_TEST(test_codes_table)
{
	/* every damage case has an expectation, every expectation a case, every code a row */
	for (size_t i = 0; i < dmg_n_cases; i++) {
		TU_ASSERT(expect_of(dmg_cases[i].name), "no expectation for %s", dmg_cases[i].name);
		TU_ASSERT(spec_of(dmg_cases[i].code), "no spec row for %s", dmg_cases[i].code);
	}
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		TU_ASSERT(dmg_find(expect[i].name), "no case %s", expect[i].name);
}
END_TEST

/* ---- clean ---- */

START_TEST(test_clean)
{
	char dir[PATH_MAX / 2], path[PATH_MAX], buf[2048];
	struct run r = { 0 };
	struct probs pr;
	struct hashes h0, h1;

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	for (int b = DB_CLEAN; b <= DB_CRASHED; b++) {
		for (const char *m = "nyp"; *m; m++) {
			TU_ASSERT_EQ(dmg_copy_store(g_base[b], path), 0, "%s", "copy");
			hash_store(path, &h0);
			run_mode(&r, &pr, dir, path, *m);
			hash_store(path, &h1);
			TU_ASSERT(r.status == 0 && pr.n == 0, "base %d -%c: exit %d, reported %s; "
				  "stderr: %s", b, *m, r.status, probs_str(&pr, buf, sizeof(buf)),
				  r.err);
			TU_ASSERT(hashes_eq(&h0, &h1), "base %d -%c changed a clean store", b, *m);
			run_free(&r);
		}
	}
	tu_rmtree(dir);
}
END_TEST

/* A store with embedded inodes (format version 4, tests/damage.c dmg_make_embedded) checks
 * clean with -n, -y and -p and is left unchanged: with them in the trees, in the log only,
 * and in the log of a store whose meta pages still say version 3. */
START_TEST(test_embedded_clean)
{
	char dir[PATH_MAX / 2], path[PATH_MAX], emb[PATH_MAX], msg[512], buf[2048];
	struct run r = { 0 };
	struct probs pr;
	struct hashes h0, h1;

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(emb, sizeof(emb), "%s/embedded", dir);
	/* log 0: in the trees; 1: in the log only; 2: in the log only, the meta pages still
	 * at format version 3 (a crash before the first checkpoint of a version 4 writer) */
	for (int log = 0; log < 3; log++) {
		TU_ASSERT_EQ(dmg_copy_store(g_base[DB_CLEAN], emb), 0, "%s", "copy");
		TU_ASSERT_EQ(dmg_make_embedded(emb, log > 0, msg, sizeof(msg)), 0, "embed: %s",
			     msg);
		if (log == 2)
			TU_ASSERT_EQ(dmg_set_format_version(emb, 3, msg, sizeof(msg)), 0, "v3: %s",
				     msg);
		for (const char *m = "nyp"; *m; m++) {
			TU_ASSERT_EQ(dmg_copy_store(emb, path), 0, "%s", "copy");
			hash_store(path, &h0);
			run_mode(&r, &pr, dir, path, *m);
			hash_store(path, &h1);
			TU_ASSERT(r.status == 0 && pr.n == 0, "embedded (log %d) -%c: exit %d, "
				  "reported %s; stderr: %s", log, *m, r.status,
				  probs_str(&pr, buf, sizeof(buf)), r.err);
			TU_ASSERT(hashes_eq(&h0, &h1), "embedded (log %d) -%c changed a clean store",
				  log, *m);
			if (log && *m == 'n')
				TU_ASSERT(strstr(r.out, "\"log_records\": 0,") == NULL,
					  "%s", "the embedding is not in the log");
			run_free(&r);
		}
		fprintf(stderr, "embedded: %s: clean with -n, -y, -p\n", msg);
	}
	tu_rmtree(dir);
}
END_TEST

/* Random damage to embedded inodes (tests/damage.c dmg_embed_garbage; KVFS_CHECK_TRIALS / 10
 * trials, KVFS_SEED): -n exits 0 or 4 and changes nothing, -y exits 0, 1, 4 or 5, never by
 * a signal, and when -y fixed everything (exit 1) a second -n is clean. */
START_TEST(test_embedded_random)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED);
	uint64_t trials = tu_seed("KVFS_CHECK_TRIALS", DEFAULT_TRIALS) / 10, by_y[6] = { 0 };
	char dir[PATH_MAX / 2], path[PATH_MAX], emb[PATH_MAX], msg[512], buf[2048];
	struct run r = { 0 };
	struct probs pr;
	struct hashes h0, h1;

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(emb, sizeof(emb), "%s/embedded", dir);
	TU_ASSERT_EQ(dmg_copy_store(g_base[DB_CLEAN], emb), 0, "%s", "copy");
	TU_ASSERT_EQ(dmg_make_embedded(emb, false, msg, sizeof(msg)), 0, "embed: %s", msg);
	for (uint64_t t = 0; t < trials; t++) {
		uint64_t s = seed + t * 0x9e3779b97f4a7c15ull;
		tu_seed_begin("KVFS_SEED", seed);
		TU_ASSERT_EQ(dmg_copy_store(emb, path), 0, "%s", "copy");
		TU_ASSERT_EQ(dmg_embed_garbage(path, s, msg, sizeof(msg)), 0, "trial %" PRIu64
			     ": %s", t, msg);
		hash_store(path, &h0);
		run_mode(&r, &pr, dir, path, 'n');
		hash_store(path, &h1);
		TU_ASSERT(r.status == 0 || r.status == 4, "trial %" PRIu64 " (%s): -n exit %d: %s",
			  t, msg, r.status, r.err);
		TU_ASSERT(hashes_eq(&h0, &h1), "trial %" PRIu64 ": -n changed the store", t);
		run_free(&r);
		run_mode(&r, &pr, dir, path, 'y');
		int st = r.status;
		TU_ASSERT(st == 0 || st == 1 || st == 4 || st == 5, "trial %" PRIu64 " (%s): -y "
			  "exit %d: %s", t, msg, st, r.err);
		bool all_safe = true, all_fixed = true;
		for (size_t i = 0; i < pr.n; i++) {
			const struct spec *sp = spec_of(pr.code[i]);
			TU_ASSERT(sp, "unknown code %s", pr.code[i]);
			all_safe &= sp->safe;
			all_fixed &= pr.fixed[i];
		}
		TU_ASSERT(!all_safe || all_fixed, "trial %" PRIu64 " (%s): -y left a safe fix "
			  "undone: %s", t, msg, probs_str(&pr, buf, sizeof(buf)));
		by_y[st]++;
		run_free(&r);
		run_mode(&r, &pr, dir, path, 'n');
		TU_ASSERT(st != 1 || (r.status == 0 && pr.n == 0), "trial %" PRIu64 " (%s): -n "
			  "after -y: exit %d, reported %s", t, msg, r.status,
			  probs_str(&pr, buf, sizeof(buf)));
		TU_ASSERT(r.status == 0 || r.status == 4, "trial %" PRIu64 ": second -n exit %d",
			  t, r.status);
		run_free(&r);
		tu_seed_end();
	}
	fprintf(stderr, "embedded random: %" PRIu64 " trials; -y exit 0: %" PRIu64 ", 1: %"
		PRIu64 ", 4: %" PRIu64 ", 5: %" PRIu64 "\n", trials, by_y[0], by_y[1], by_y[4],
		by_y[5]);
	tu_rmtree(dir);
}
END_TEST

/* ---- random single-byte corruption ---- */

/* True when the file at `path` holds exactly buf[len]. */
static bool file_is(const char *path, const uint8_t *buf, size_t len)
{
	uint8_t *b;
	size_t n;
	if (dmg_read_file(path, &b, &n) < 0)
		return false;
	bool same = n == len && memcmp(b, buf, len) == 0;
	free(b);
	return same;
}

struct target {
	bool log;       /* in the log, else the data file */
	uint64_t off;   /* first byte */
	uint32_t len;   /* bytes that may be flipped */
};

struct targets {
	struct target *v;
	size_t n, cap;
};

static void targets_add(struct targets *t, bool log, uint64_t off, uint32_t len)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 1024;
		t->v = realloc(t->v, t->cap * sizeof(*t->v));
		TU_ASSERT(t->v, "%s", "out of memory");
	}
	t->v[t->n++] = (struct target){ log, off, len };
}

START_TEST(test_random)
{
	uint64_t seed = tu_seed("KVFS_SEED", DEFAULT_SEED), one;
	bool only = tu_seed_given("KVFS_CHECK_TRIAL", &one);
	uint64_t trials = tu_seed("KVFS_CHECK_TRIALS", DEFAULT_TRIALS);
	char dir[PATH_MAX / 2], path[PATH_MAX], wal[PATH_MAX], bwal[PATH_MAX], msg[512], buf[2048];
	struct dmg_layout L;
	struct dmg_log g;
	struct targets data = { 0 }, log = { 0 };
	uint8_t *img, *limg;
	size_t ilen, llen;
	uint64_t found = 0, tried = 0, by_status[17] = { 0 }, log_tried = 0;
	struct timespec t0, t1;

	/* targets: from the clean base's data file and the crashed base's log */
	TU_ASSERT_EQ(dmg_layout_load(g_base[DB_CRASHED], &L, msg, sizeof(msg)), 0, "layout: %s",
		     msg);
	for (uint64_t p = 0; p < L.npages; p++)
		if (L.pg[p].kind != DK_NONE)
			targets_add(&data, false, p * STORE_PAGE_SIZE, L.pg[p].covered);
	snprintf(bwal, sizeof(bwal), "%s-wal", g_base[DB_CRASHED]);
	TU_ASSERT_EQ(dmg_log_load(bwal, L.meta.lsn, &g), 0, "%s", "log");
	dmg_layout_free(&L);
	TU_ASSERT(g.n >= 3, "crashed base: %zu live log records", g.n);
	for (size_t i = 0; i < g.n; i++) {
		/* the last record's LSN field is left alone: a record that does not carry its
		 * place's LSN is, by the log's format, a record never written (the log ends
		 * before it), so a flip there is undetectable by design */
		if (i + 1 == g.n) {
			targets_add(&log, true, g.r[i].off, 8);
			targets_add(&log, true, g.r[i].off + 16, g.r[i].size - 16);
		} else {
			targets_add(&log, true, g.r[i].off, g.r[i].size);
		}
	}
	dmg_log_free(&g);
	TU_ASSERT_EQ(dmg_read_file(g_base[DB_CRASHED], &img, &ilen), 0, "%s", "read");
	TU_ASSERT_EQ(dmg_read_file(bwal, &limg, &llen), 0, "%s", "read");

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(wal, sizeof(wal), "%s/store-wal", dir);
	TU_ASSERT_EQ(dmg_copy_store(g_base[DB_CRASHED], path), 0, "%s", "copy");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t t = only ? one : 0; t < (only ? one + 1 : trials); t++) {
		uint64_t s = seed + t * 0x9e3779b97f4a7c15ull;
		struct tu_rng rng;
		tu_seed_begin("KVFS_SEED", seed);
		tu_rng_init(&rng, s);
		/* a quarter of the trials in the log */
		bool in_log = tu_rng_chance(&rng, 1, 4);
		struct targets *ts = in_log ? &log : &data;
		const struct target *tg = &ts->v[tu_rng_below(&rng, ts->n)];
		uint64_t off = tg->off + tu_rng_below(&rng, tg->len);
		uint8_t mask = (uint8_t)(1u << tu_rng_below(&rng, 8));
		if (tu_rng_chance(&rng, 1, 4))
			mask = (uint8_t)tu_rng_range(&rng, 1, 255);
		/* the trial files hold the base images; flip one byte in place */
		const char *file = in_log ? wal : path;
		uint8_t *im = in_log ? limg : img;
		uint8_t flipped = im[off] ^ mask;
		TU_ASSERT_EQ(dmg_write_at(file, off, &flipped, 1), 0, "%s", "flip");
		struct run r = { 0 };
		struct probs pr;
		const char *args[] = { "-n", "--json", path, NULL };
		snprintf(msg, sizeof(msg), "trial %" PRIu64 " (KVFS_CHECK_TRIAL=%" PRIu64
			 " KVFS_SEED=%" PRIu64 "): %s byte %" PRIu64 " ^= 0x%02x", t, t, seed,
			 in_log ? "log" : "data file", off, mask);
		run_check(&r, dir, args);
		parse_json(r.out, &pr);
		tried++;
		log_tried += in_log;
		by_status[r.status < 17 ? r.status : 16]++;
		/* every byte unchanged: both files equal the base images but for the flip */
		im[off] = flipped;
		bool same = file_is(path, img, ilen) && file_is(wal, limg, llen);
		im[off] ^= mask;
		TU_ASSERT(same, "%s: -n changed the store", msg);
		TU_ASSERT_EQ(dmg_write_at(file, off, &im[off], 1), 0, "%s", "unflip");
		if (r.status != 0 && pr.n > 0) {
			found++;
		} else {
			fprintf(stderr, "check_checker random: NOT FOUND: %s: exit %d, %s\n", msg,
				r.status, probs_str(&pr, buf, sizeof(buf)));
		}
		run_free(&r);
		tu_seed_end();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "check_checker random: %" PRIu64 " trials (%" PRIu64 " in the log), %"
		PRIu64 " found (%.1f%%), exit 4: %" PRIu64 ", exit 8: %" PRIu64 ", exit 0: %"
		PRIu64 ", %.1f s\n", tried, log_tried, found, 100.0 * (double)found /
		(double)tried, by_status[4], by_status[8], by_status[0], secs);
	TU_ASSERT_EQ(found, tried, "%s", "every flip found (see the NOT FOUND lines)");
	free(img);
	free(limg);
	free(data.v);
	free(log.v);
	tu_rmtree(dir);
}
END_TEST

/* ---- -y never loses an intact file ---- */

struct file {
	char key[128];
	size_t size;
	uint64_t hash;
};

struct files {
	struct file *v;
	size_t n, cap;
	struct kvfs *fs;
};

static int scan_cb(void *ctx, const char *key, const struct kvfs_stat *st)
{
	struct files *fl = ctx;
	if (!S_ISREG(st->mode))
		return 0;
	if (fl->n == fl->cap) {
		fl->cap = fl->cap ? 2 * fl->cap : 512;
		fl->v = realloc(fl->v, fl->cap * sizeof(*fl->v));
	}
	struct file *f = &fl->v[fl->n++];
	snprintf(f->key, sizeof(f->key), "%s", key);
	f->size = st->size;
	return 0;
}

/* Read `f` through fs: true when it reads back whole and identical to `f->hash` (with
 * `longer`, its first f->size bytes, the file being at least that long).  With `record`,
 * store the hash instead. */
static bool read_file(struct kvfs *fs, struct file *f, bool record, bool longer)
{
	size_t cap = f->size + (longer ? (64u << 10) : 1);
	uint8_t *b = malloc(cap);
	ssize_t n = kvfs_get(fs, f->key, b, cap);
	bool ok = longer ? n >= (ssize_t)f->size : n == (ssize_t)f->size;
	uint64_t h = ok ? XXH3_64bits(b, f->size) : 0;
	free(b);
	if (record) {
		f->hash = h;
		return ok;
	}
	return ok && h == f->hash;
}

START_TEST(test_intact)
{
	struct kvfs_options ro = { .flags = KVFS_RDONLY, .log = tu_log_cb };
	struct files all = { 0 };
	struct kvfs *fs;
	char dir[PATH_MAX / 2], path[PATH_MAX], msg[512];

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	for (size_t c = 0; c < dmg_n_cases; c++) {
		const struct dmg_case *dc = &dmg_cases[c];
		/* NS_SIZE's fix extends the file to cover its block past the end: the bytes it
		 * had must still be there, followed by the hole and the block */
		bool grows = strcmp(dc->code, "NS_SIZE") == 0;
		/* the files of the undamaged base and their contents */
		all.n = 0;
		TU_ASSERT_EQ(kvfs_open(g_base[dc->base], &ro, &fs), 0, "%s", "open base");
		TU_ASSERT_EQ(kvfs_scan(fs, NULL, NULL, scan_cb, &all), 0, "%s", "scan");
		TU_ASSERT(all.n >= 200, "base: %zu files", all.n);
		for (size_t i = 0; i < all.n; i++)
			TU_ASSERT(read_file(fs, &all.v[i], true, false), "base: %s", all.v[i].key);
		kvfs_close(fs);

		make_case(dc, path, msg, sizeof(msg));
		bool *intact = calloc(all.n, sizeof(bool));
		size_t n_intact = 0;
		if (kvfs_open(path, &ro, &fs) == 0) {
			for (size_t i = 0; i < all.n; i++)
				n_intact += intact[i] = read_file(fs, &all.v[i], false, false);
			kvfs_close(fs);
		}
		struct run r = { 0 };
		const char *args[] = { "-y", path, NULL };
		run_check(&r, dir, args);
		TU_ASSERT(r.status == 1 || r.status == 4 || r.status == 5, "%s: -y exit %d: %s",
			  dc->name, r.status, r.err);
		run_free(&r);
		size_t lost = 0;
		char first[160] = "";
		int orc = kvfs_open(path, &ro, &fs);
		TU_ASSERT(orc == 0 || n_intact == 0, "%s: the store opened before -y, not after "
			  "(%d)", dc->name, orc);
		if (orc == 0) {
			for (size_t i = 0; i < all.n; i++)
				if (intact[i] && !read_file(fs, &all.v[i], false, grows) && !lost++)
					snprintf(first, sizeof(first), "%s", all.v[i].key);
			kvfs_close(fs);
		}
		fprintf(stderr, "intact %s: %zu of %zu files intact before -y, %zu lost after\n",
			dc->name, n_intact, all.n, lost);
		TU_ASSERT_EQ(lost, 0, "%s (%s): -y lost intact files, first %s", dc->name, msg,
			     first);
		free(intact);
	}
	free(all.v);
	tu_rmtree(dir);
}
END_TEST

/* ---- a store in use ---- */

START_TEST(test_in_use)
{
	char dir[PATH_MAX / 2], path[PATH_MAX], msg[512], buf[2048];
	struct kvfs *fs;
	struct run r = { 0 };
	struct probs pr;
	struct hashes h0, h1;

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/store", dir);
	for (int damaged = 0; damaged < 2; damaged++) {
		if (damaged)
			make_case(dmg_find("NS_NLINK"), path, msg, sizeof(msg));
		else
			TU_ASSERT_EQ(dmg_copy_store(g_base[DB_CLEAN], path), 0, "%s", "copy");
		TU_ASSERT_EQ(kvfs_open(path, NULL, &fs), 0, "%s", "kvfs_open");
		hash_store(path, &h0);
		run_mode(&r, &pr, dir, path, 'n');
		hash_store(path, &h1);
		TU_ASSERT(hashes_eq(&h0, &h1), "%s", "-n on a store in use changed it");
		TU_ASSERT(strcasestr(r.err, "in use"), "-n: no 'in use' message: %s", r.err);
		TU_ASSERT_EQ(r.status, damaged ? 4 : 0, "-n in use (%s)",
			     probs_str(&pr, buf, sizeof(buf)));
		TU_ASSERT(damaged ? probs_have(&pr, "NS_NLINK") : pr.n == 0, "-n in use: %s",
			  probs_str(&pr, buf, sizeof(buf)));
		TU_ASSERT(strstr(r.out, "\"in_use\":true") || strstr(r.out, "\"in_use\": true"),
			  "%s", "JSON in_use");
		run_free(&r);

		run_mode(&r, &pr, dir, path, 'y');
		hash_store(path, &h1);
		TU_ASSERT(hashes_eq(&h0, &h1), "%s", "-y on a store in use changed it");
		TU_ASSERT(strcasestr(r.err, "in use") && strcasestr(r.err, "refus"),
			  "-y: no refusal message: %s", r.err);
		for (size_t i = 0; i < pr.n; i++)
			TU_ASSERT(!pr.fixed[i], "-y in use fixed %s", pr.code[i]);
		if (damaged)
			TU_ASSERT(r.status == 4 || r.status == 8, "-y in use, damaged: exit %d",
				  r.status);
		else
			TU_ASSERT(r.status == 0 || r.status == 4 || r.status == 8,
				  "-y in use, clean: exit %d", r.status);
		fprintf(stderr, "in_use %s: -y exit %d\n", damaged ? "damaged" : "clean", r.status);
		run_free(&r);
		TU_ASSERT_EQ(kvfs_close(fs), 0, "%s", "kvfs_close");
	}
	tu_rmtree(dir);
}
END_TEST

/* ---- usage ---- */

START_TEST(test_usage)
{
	char dir[PATH_MAX / 2], path[PATH_MAX], junk[PATH_MAX];
	struct run r = { 0 };

	TU_ASSERT_EQ(tu_tmpdir(dir, sizeof(dir)), 0, "%s", "tmpdir");
	snprintf(path, sizeof(path), "%s/missing", dir);
	snprintf(junk, sizeof(junk), "%s/junk", dir);
	{
		uint8_t b[3 * STORE_PAGE_SIZE];
		dmg_content("junk", b, sizeof(b));
		FILE *f = fopen(junk, "w");
		TU_ASSERT(f && fwrite(b, 1, sizeof(b), f) == sizeof(b) && fclose(f) == 0, "%s",
			  "junk");
	}
	struct {
		const char *args[4];
		int status;
	} c[] = {
		{ { NULL }, 16 },
		{ { "--help", NULL }, 0 },
		{ { "--version", NULL }, 0 },
		{ { "-n", path, NULL }, 8 },
		{ { "-n", junk, NULL }, 8 },
		{ { "-y", junk, NULL }, 8 },
		{ { "-n", "-y", g_base[DB_CLEAN], NULL }, 16 },
		{ { "--no-such-option", g_base[DB_CLEAN], NULL }, 16 },
		{ { "-n", g_base[DB_CLEAN], g_base[DB_CLEAN], NULL }, 16 },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		run_check(&r, dir, c[i].args);
		TU_ASSERT_EQ(r.status, c[i].status, "kvfs-check %s %s: stderr %s",
			     c[i].args[0] ? c[i].args[0] : "", c[i].args[0] && c[i].args[1] ?
			     c[i].args[1] : "", r.err);
		if (c[i].status == 0)
			TU_ASSERT(strlen(r.out) > 0, "%s: nothing on stdout", c[i].args[0]);
		else
			TU_ASSERT(strlen(r.err) > 0, "%s: nothing on stderr",
				  c[i].args[0] ? c[i].args[0] : "(none)");
		run_free(&r);
	}
	tu_rmtree(dir);
}
END_TEST

static Suite *checker_suite(void)
{
	Suite *s = suite_create("checker");
	TCase *codes = tcase_create("codes"), *core = tcase_create("core"),
	      *random = tcase_create("random");

	tcase_set_timeout(codes, 120);
	tcase_add_test(codes, test_codes_table);
	tcase_add_loop_test(codes, test_codes, 0, (int)dmg_n_cases);
	tcase_set_timeout(core, 300);
	tcase_add_test(core, test_usage);
	tcase_add_test(core, test_clean);
	tcase_add_test(core, test_embedded_clean);
	tcase_add_test(core, test_in_use);
	tcase_add_test(core, test_intact);
	tcase_set_timeout(random, 600);
	tcase_add_test(random, test_random);
	tcase_add_test(random, test_embedded_random);
	suite_add_tcase(s, core);
	suite_add_tcase(s, codes);
	suite_add_tcase(s, random);
	return s;
}

int main(void)
{
	bases_build();
	int failed = tu_run_suite(checker_suite());
	tu_rmtree(g_dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
