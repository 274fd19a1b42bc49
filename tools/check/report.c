/*
 * tools/check/report.c — kvfs-check's problems and what becomes of them: the problem list,
 * the gate every repair passes (the only code that knows -n, -y, -p and the terminal
 * question), notes, the progress bar, and the two outputs: text lines on stdout as each phase
 * ends plus a summary, or one JSON document (schema in man/kvfs-check.8, "JSON OUTPUT").
 *
 * Text line of a problem (stable; scripts may grep the bracket), all printed after the last
 * phase so that each shows its final fate:
 *     phase 3 space: page 812: pages 812..815 are neither reachable nor free [SPACE_LEAKED, fixed]
 * the fate being "fixed", "not fixed" (a fix exists but was declined or failed) or "no fix".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/check/check.h"

static char **notes;
static size_t n_notes, cap_notes;
static size_t n_printed;     /* problems already printed (text mode) */
static int progress_shown = -1; /* last percentage drawn, -1: none on screen */

static void oom(void)
{
	fprintf(stderr, "kvfs-check: out of memory\n");
	exit(8);
}

static char *vfmt(const char *fmt, va_list ap)
{
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	return s;
}

size_t chk_report(struct chk *c, const struct chk_def *def, uint64_t page, uint64_t ino,
		  const char *fmt, ...)
{
	if (c->n_problems == c->cap_problems) {
		size_t cap = c->cap_problems ? 2 * c->cap_problems : 64;
		struct chk_problem *p = realloc(c->problems, cap * sizeof(*p));
		if (!p)
			oom();
		c->problems = p;
		c->cap_problems = cap;
	}
	va_list ap;
	va_start(ap, fmt);
	char *msg = vfmt(fmt, ap);
	va_end(ap);
	c->problems[c->n_problems] = (struct chk_problem){
		.phase = c->cur_phase, .def = def, .page = page, .ino = ino, .msg = msg,
	};
	return c->n_problems++;
}

static void clear_progress(struct chk *c)
{
	if (progress_shown >= 0) {
		fprintf(stderr, "\r%70s\r", "");
		progress_shown = -1;
	}
	(void)c;
}

static const char *fate(const struct chk_problem *p)
{
	if (p->fixed)
		return "fixed";
	return p->def->fix ? "not fixed" : "no fix";
}

static void print_problem(const struct chk_problem *p)
{
	printf("phase %u %s: ", p->phase->num, p->phase->name);
	if (p->page)
		printf("page %llu: ", (unsigned long long)p->page);
	if (p->ino)
		printf("inode %llu: ", (unsigned long long)p->ino);
	printf("%s [%s, %s]\n", p->msg, p->def->code, fate(p));
}

/* Ask on the terminal.  'a' answers yes to this and every later safe fix. */
static bool ask(struct chk *c, const struct chk_problem *p, const char *action)
{
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty)
		return false;
	clear_progress(c);
	fflush(stdout);
	fprintf(tty, "phase %u %s: %s [%s]\n  Fix: %s? [y/N/a(ll)] ", p->phase->num,
		p->phase->name, p->msg, p->def->code, action);
	fflush(tty);
	char line[32];
	bool yes = false;
	if (fgets(line, sizeof(line), tty)) {
		if (line[0] == 'a' || line[0] == 'A') {
			c->o.mode = MODE_YES;
			yes = true;
		} else {
			yes = line[0] == 'y' || line[0] == 'Y';
		}
	}
	fclose(tty);
	return yes;
}

bool chk_gate(struct chk *c, size_t id, const char *action)
{
	const struct chk_problem *p = &c->problems[id];
	if (c->readonly || !p->def->fix)
		return false;
	switch (c->o.mode) {
	case MODE_YES:
		return p->def->safe;
	case MODE_PREEN:
		return p->def->preen;
	case MODE_ASK:
		return p->def->safe && ask(c, p, action);
	case MODE_NO:
		break;
	}
	return false;
}

void chk_fixed(struct chk *c, size_t id)
{
	if (id < c->n_problems)
		c->problems[id].fixed = true;
}

void chk_note(struct chk *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = vfmt(fmt, ap);
	va_end(ap);
	if (!c->o.json) {
		if (c->o.verbose) {
			clear_progress(c);
			if (c->cur_phase)
				printf("phase %u %s: %s\n", c->cur_phase->num, c->cur_phase->name, msg);
			else
				printf("%s\n", msg);
		}
		free(msg);
		return;
	}
	if (n_notes == cap_notes) {
		size_t cap = cap_notes ? 2 * cap_notes : 32;
		char **n = realloc(notes, cap * sizeof(*n));
		if (!n)
			oom();
		notes = n;
		cap_notes = cap;
	}
	notes[n_notes++] = msg;
}

void chk_progress(struct chk *c, uint64_t done, uint64_t total)
{
	if (!c->progress || !total || !c->cur_phase)
		return;
	int pct = (int)(done >= total ? 100 : done * 100 / total);
	if (pct == progress_shown)
		return;
	progress_shown = pct;
	char bar[41];
	int n = pct * 40 / 100;
	memset(bar, '#', (size_t)n);
	memset(bar + n, '.', (size_t)(40 - n));
	bar[40] = 0;
	fprintf(stderr, "\rphase %u %-9s [%s] %3d%%", c->cur_phase->num, c->cur_phase->name, bar,
		pct);
	fflush(stderr);
}

void chk_phase_done(struct chk *c)
{
	clear_progress(c);
}

/* Problems are printed once every phase has run, in the order found: a problem of one phase
 * may be fixed by a later one (a damaged free-list page, found in phase 1, is fixed by phase
 * 3's rebuild), and its line must show its final fate. */
static void print_problems(struct chk *c)
{
	for (; n_printed < c->n_problems; n_printed++)
		print_problem(&c->problems[n_printed]);
	fflush(stdout);
}

void chk_printable(char *out, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			*out++ = (char)p[i];
		} else {
			*out++ = '\\';
			*out++ = 'x';
			*out++ = hex[p[i] >> 4];
			*out++ = hex[p[i] & 15];
		}
	}
	*out = 0;
}

/* ---- JSON ---- */

static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p < 0x20 || *p >= 0x7f)
			printf("\\u%04x", *p); /* bytes, not code points: names may be any bytes */
		else
			putchar(*p);
	}
	putchar('"');
}

static void json_u64_or_null(uint64_t v)
{
	if (v)
		printf("%llu", (unsigned long long)v);
	else
		fputs("null", stdout);
}

static const char *mode_name(enum chk_mode m)
{
	switch (m) {
	case MODE_YES: return "yes";
	case MODE_PREEN: return "preen";
	case MODE_ASK: return "ask";
	case MODE_NO: break;
	}
	return "no";
}

double chk_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void json_doc(struct chk *c, size_t fixed, int status, double secs)
{
	printf("{\n  \"kvfs_check\": 1,\n  \"store\": ");
	json_str(c->path);
	printf(",\n  \"mode\": \"%s\",\n  \"in_use\": %s,\n  \"meta\": ", mode_name(c->o.mode),
	       c->in_use ? "true" : "false");
	if (c->have_meta)
		printf("{\"slot\": %u, \"txnid\": %llu, \"page_count\": %llu, \"lsn\": %llu, "
		       "\"previous\": %s}", c->slot, (unsigned long long)c->meta.txnid,
		       (unsigned long long)c->meta.page_count, (unsigned long long)c->meta.lsn,
		       c->o.previous_meta ? "true" : "false");
	else
		fputs("null", stdout);
	printf(",\n  \"problems\": [");
	for (size_t i = 0; i < c->n_problems; i++) {
		const struct chk_problem *p = &c->problems[i];
		printf("%s\n    {\"phase\": %u, \"phase_name\": \"%s\", \"code\": \"%s\", "
		       "\"severity\": \"%s\", \"page\": ", i ? "," : "", p->phase->num,
		       p->phase->name, p->def->code, p->def->sev == SEV_ERROR ? "error" : "warning");
		json_u64_or_null(p->page);
		fputs(", \"inode\": ", stdout);
		json_u64_or_null(p->ino);
		fputs(", \"message\": ", stdout);
		json_str(p->msg);
		printf(", \"fixed\": %s}", p->fixed ? "true" : "false");
	}
	printf("%s],\n  \"notes\": [", c->n_problems ? "\n  " : "");
	for (size_t i = 0; i < n_notes; i++) {
		printf("%s\n    ", i ? "," : "");
		json_str(notes[i]);
	}
	printf("%s],\n", n_notes ? "\n  " : "");
	printf("  \"summary\": {\"pages\": %llu, \"pages_used\": %llu, \"pages_free\": %llu, "
	       "\"trees\": %llu, \"files\": %llu, \"directories\": %llu, \"bytes\": %llu, "
	       "\"log_records\": %llu, \"problems_found\": %zu, \"problems_fixed\": %zu, "
	       "\"seconds\": %.3f},\n  \"exit\": %d\n}\n",
	       (unsigned long long)c->page_count, (unsigned long long)c->n_pages_used,
	       (unsigned long long)c->n_pages_free, (unsigned long long)c->n_trees,
	       (unsigned long long)c->n_files, (unsigned long long)c->n_dirs,
	       (unsigned long long)c->n_bytes, (unsigned long long)c->log_records, c->n_problems,
	       fixed, secs, status);
}

static void human_bytes(char *buf, size_t len, uint64_t b)
{
	const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	unsigned u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

int chk_finish(struct chk *c, int extra_status)
{
	clear_progress(c);
	size_t fixed = 0;
	for (size_t i = 0; i < c->n_problems; i++)
		fixed += c->problems[i].fixed;
	int status = extra_status;
	if (fixed)
		status |= 1;
	if (fixed < c->n_problems)
		status |= 4;
	double secs = chk_now() - c->t_start;
	if (c->o.json) {
		json_doc(c, fixed, status, secs);
	} else {
		print_problems(c);
		if (c->have_meta) {
			char sz[32], fb[32];
			human_bytes(sz, sizeof(sz), c->page_count * STORE_PAGE_SIZE);
			human_bytes(fb, sizeof(fb), c->n_bytes);
			printf("%s: %llu pages (%s): %llu used, %llu free; %llu trees; %llu files, "
			       "%llu directories, %s in files; %llu log records to replay\n", c->path,
			       (unsigned long long)c->page_count, sz,
			       (unsigned long long)c->n_pages_used,
			       (unsigned long long)c->n_pages_free, (unsigned long long)c->n_trees,
			       (unsigned long long)c->n_files, (unsigned long long)c->n_dirs, fb,
			       (unsigned long long)c->log_records);
		}
		if ((extra_status & 8) && !c->have_meta && !c->n_problems)
			; /* not a store it can read: stderr said so, nothing to summarize */
		else if (extra_status & 8)
			printf("%s: check stopped by an operational error (%.2f s): %zu problems "
			       "found, %zu fixed\n", c->path, secs, c->n_problems, fixed);
		else if (!c->n_problems)
			printf("%s: clean (%.2f s)\n", c->path, secs);
		else
			printf("%s: %zu problems found, %zu fixed, %zu left (%.2f s)\n", c->path,
			       c->n_problems, fixed, c->n_problems - fixed, secs);
	}
	fflush(stdout);
	return status;
}

void chk_report_free(struct chk *c)
{
	for (size_t i = 0; i < c->n_problems; i++)
		free(c->problems[i].msg);
	free(c->problems);
	c->problems = NULL;
	c->n_problems = c->cap_problems = 0;
	for (size_t i = 0; i < n_notes; i++)
		free(notes[i]);
	free(notes);
	notes = NULL;
	n_notes = cap_notes = 0;
	n_printed = 0;
}
