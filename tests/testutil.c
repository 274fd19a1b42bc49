/*
 * tests/testutil.c — seeds, PRNG, reference model and store helpers shared by the test
 * suites.  The contract of every function is in tests/testutil.h.
 *
 * Invariants kept here:
 *   - a tu_model's entries are sorted strictly by tu_key_cmp (no duplicate keys), and
 *     m->bytes is the sum of klen + vlen over them;
 *   - a model buffer is never written after creation, and is freed when its last reference
 *     (entry of any model copy) goes.
 */
#define _GNU_SOURCE
#include "tests/testutil.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/vfs.h>

/* ---- 1. Seeds ------------------------------------------------------------------------ */

static const char *tu_seed_env_name;
static uint64_t tu_seed_value;
static volatile sig_atomic_t tu_seed_active;
static bool tu_seed_hooks_installed;

static bool parse_seed(const char *s, uint64_t *out)
{
	char *end;
	int base = 10;

	if (!s || !*s)
		return false;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

bool tu_seed_given(const char *env_name, uint64_t *out)
{
	return parse_seed(getenv(env_name), out);
}

uint64_t tu_seed(const char *env_name, uint64_t dflt)
{
	uint64_t v;

	return tu_seed_given(env_name, &v) ? v : dflt;
}

/* Async-signal-safe: formats with no library call but write(2). */
void tu_seed_print(void)
{
	char buf[160], num[24];
	size_t n = 0, k = 0;
	uint64_t v = tu_seed_value;
	const char *env = tu_seed_env_name ? tu_seed_env_name : "KVFS_SEED";

	if (!tu_seed_active)
		return;
	do {
		num[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
#define PUTS(s)                                                          \
	for (const char *p_ = (s); *p_ && n < sizeof(buf) - 1; p_++)     \
		buf[n++] = *p_;
#define PUTNUM()                                                         \
	for (size_t i_ = k; i_ > 0 && n < sizeof(buf) - 1; i_--)         \
		buf[n++] = num[i_ - 1];
	PUTS("seed=");
	PUTNUM();
	PUTS(" (replay with ");
	PUTS(env);
	PUTS("=");
	PUTNUM();
	PUTS(")\n");
#undef PUTS
#undef PUTNUM
	ssize_t r = write(2, buf, n);
	(void)r;
}

static void tu_seed_atexit(void)
{
	tu_seed_print();
}

static void tu_seed_signal(int sig)
{
	tu_seed_print();
	signal(sig, SIG_DFL);
	raise(sig);
}

void tu_seed_begin(const char *env_name, uint64_t seed)
{
	tu_seed_env_name = env_name;
	tu_seed_value = seed;
	tu_seed_active = 1;
	if (!tu_seed_hooks_installed) {
		static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
		tu_seed_hooks_installed = true;
		atexit(tu_seed_atexit);
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
			struct sigaction sa;
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = tu_seed_signal;
			sa.sa_flags = SA_RESETHAND | SA_NODEFER;
			sigemptyset(&sa.sa_mask);
			sigaction(sigs[i], &sa, NULL);
		}
	}
}

void tu_seed_end(void)
{
	tu_seed_active = 0;
}

int tu_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	if (!getenv("CK_FORK"))
		srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

static void __attribute__((noreturn)) tu_fail_str(const char *file, int line, const char *what)
{
	char seedbuf[128] = "";

	if (tu_seed_active)
		snprintf(seedbuf, sizeof(seedbuf), "seed=%" PRIu64 " (replay with %s=%" PRIu64
			 "): ", tu_seed_value, tu_seed_env_name ? tu_seed_env_name : "KVFS_SEED",
			 tu_seed_value);
	fprintf(stderr, "%s:%d: %s%s\n", file, line, seedbuf, what);
	fflush(stderr);
	/* Printed already; the exit handler need not repeat it. */
	tu_seed_active = 0;
	_ck_assert_failed(file, line, "Failed", "%s%s", seedbuf, what);
	abort(); /* not reached */
}

void tu_fail(const char *file, int line, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tu_fail_str(file, line, buf);
}

void tu_fail_cond(const char *file, int line, const char *cond, const char *fmt, ...)
{
	char buf[4096];
	int n;
	va_list ap;

	n = snprintf(buf, sizeof(buf), "'%s' is false: ", cond);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	tu_fail_str(file, line, buf);
}

void tu_fail_eq(const char *file, int line, const char *expr, long long got, long long want,
		const char *fmt, ...)
{
	char buf[4096];
	int n;
	va_list ap;

	n = snprintf(buf, sizeof(buf), "%s == %lld, expected %lld: ", expr, got, want);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	tu_fail_str(file, line, buf);
}

/* ---- 2. PRNG ------------------------------------------------------------------------- */

uint64_t tu_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void tu_rng_init(struct tu_rng *r, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		r->s[i] = tu_splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t tu_rng_next(struct tu_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t tu_rng_below(struct tu_rng *r, uint64_t n)
{
	if (n == 0)
		return 0;
	/* Reject the top partial block to avoid modulo bias. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t v;
	do
		v = tu_rng_next(r);
	while (v >= limit);
	return v % n;
}

uint64_t tu_rng_range(struct tu_rng *r, uint64_t lo, uint64_t hi)
{
	if (hi - lo == UINT64_MAX)
		return tu_rng_next(r);
	return lo + tu_rng_below(r, hi - lo + 1);
}

bool tu_rng_chance(struct tu_rng *r, uint64_t num, uint64_t den)
{
	return tu_rng_below(r, den) < num;
}

void tu_rng_bytes(struct tu_rng *r, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t v = tu_rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = tu_rng_next(r);
		memcpy(p, &v, len);
	}
}

/* ---- 3. Reference model -------------------------------------------------------------- */

struct tu_buf {
	unsigned refs; /* atomic */
	size_t len;
	uint8_t data[];
};

static struct tu_buf *buf_new(const void *p, size_t len)
{
	struct tu_buf *b = malloc(sizeof(*b) + (len ? len : 1));

	if (!b)
		tu_fail(__FILE__, __LINE__, "out of memory (model buffer of %zu bytes)", len);
	b->refs = 1;
	b->len = len;
	if (len)
		memcpy(b->data, p, len);
	return b;
}

static void buf_ref(void *p)
{
	struct tu_buf *b = p;

	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

static void buf_unref(void *p)
{
	struct tu_buf *b = p;

	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

int tu_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

void tu_model_init(struct tu_model *m)
{
	memset(m, 0, sizeof(*m));
}

void tu_model_clear(struct tu_model *m)
{
	for (size_t i = 0; i < m->n; i++) {
		buf_unref(m->ents[i].kbuf_);
		buf_unref(m->ents[i].vbuf_);
	}
	m->n = 0;
	m->bytes = 0;
}

void tu_model_free(struct tu_model *m)
{
	tu_model_clear(m);
	free(m->ents);
	memset(m, 0, sizeof(*m));
}

size_t tu_model_lower_bound(const struct tu_model *m, const void *key, size_t klen)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (tu_key_cmp(m->ents[mid].key, m->ents[mid].klen, key, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct tu_ent *tu_model_get(const struct tu_model *m, const void *key, size_t klen)
{
	size_t i = tu_model_lower_bound(m, key, klen);

	if (i < m->n && tu_key_cmp(m->ents[i].key, m->ents[i].klen, key, klen) == 0)
		return &m->ents[i];
	return NULL;
}

static void model_reserve(struct tu_model *m, size_t n)
{
	if (n <= m->cap_)
		return;
	size_t cap = m->cap_ ? m->cap_ * 2 : 64;
	while (cap < n)
		cap *= 2;
	struct tu_ent *e = realloc(m->ents, cap * sizeof(*e));
	if (!e)
		tu_fail(__FILE__, __LINE__, "out of memory (model of %zu entries)", n);
	m->ents = e;
	m->cap_ = cap;
}

void tu_model_put(struct tu_model *m, const void *key, size_t klen, const void *val,
		  size_t vlen)
{
	size_t i = tu_model_lower_bound(m, key, klen);
	struct tu_buf *vb = buf_new(val, vlen);

	if (i < m->n && tu_key_cmp(m->ents[i].key, m->ents[i].klen, key, klen) == 0) {
		struct tu_ent *e = &m->ents[i];
		m->bytes -= e->vlen;
		buf_unref(e->vbuf_);
		e->vbuf_ = vb;
		e->val = vb->data;
		e->vlen = vlen;
		m->bytes += vlen;
		return;
	}
	model_reserve(m, m->n + 1);
	memmove(&m->ents[i + 1], &m->ents[i], (m->n - i) * sizeof(m->ents[0]));
	struct tu_buf *kb = buf_new(key, klen);
	struct tu_ent *e = &m->ents[i];
	e->kbuf_ = kb;
	e->key = kb->data;
	e->klen = klen;
	e->vbuf_ = vb;
	e->val = vb->data;
	e->vlen = vlen;
	m->n++;
	m->bytes += klen + vlen;
}

int tu_model_del(struct tu_model *m, const void *key, size_t klen)
{
	size_t i = tu_model_lower_bound(m, key, klen);

	if (i >= m->n || tu_key_cmp(m->ents[i].key, m->ents[i].klen, key, klen) != 0)
		return -ENOENT;
	m->bytes -= m->ents[i].klen + m->ents[i].vlen;
	buf_unref(m->ents[i].kbuf_);
	buf_unref(m->ents[i].vbuf_);
	memmove(&m->ents[i], &m->ents[i + 1], (m->n - i - 1) * sizeof(m->ents[0]));
	m->n--;
	return 0;
}

void tu_model_copy(struct tu_model *dst, const struct tu_model *src)
{
	if (dst == src)
		return;
	tu_model_clear(dst);
	model_reserve(dst, src->n);
	for (size_t i = 0; i < src->n; i++) {
		dst->ents[i] = src->ents[i];
		buf_ref(src->ents[i].kbuf_);
		buf_ref(src->ents[i].vbuf_);
	}
	dst->n = src->n;
	dst->bytes = src->bytes;
}

int tu_model_cmp(const struct tu_model *a, const struct tu_model *b, char *msg, size_t len)
{
	char k1[128], k2[128];
	size_t n = a->n < b->n ? a->n : b->n;

	for (size_t i = 0; i < n; i++) {
		const struct tu_ent *x = &a->ents[i], *y = &b->ents[i];
		if (tu_key_cmp(x->key, x->klen, y->key, y->klen) != 0) {
			snprintf(msg, len, "entry %zu: key %s vs %s", i,
				 tu_fmt_bytes(k1, sizeof(k1), x->key, x->klen, 40),
				 tu_fmt_bytes(k2, sizeof(k2), y->key, y->klen, 40));
			return -1;
		}
		if (x->vlen != y->vlen || (x->vlen && memcmp(x->val, y->val, x->vlen))) {
			snprintf(msg, len, "entry %zu key %s: value of %zu vs %zu bytes differ", i,
				 tu_fmt_bytes(k1, sizeof(k1), x->key, x->klen, 40), x->vlen,
				 y->vlen);
			return -1;
		}
	}
	if (a->n != b->n) {
		const struct tu_ent *x = a->n > b->n ? &a->ents[n] : &b->ents[n];
		snprintf(msg, len, "%zu vs %zu entries; first extra key %s (in the %s)", a->n,
			 b->n, tu_fmt_bytes(k1, sizeof(k1), x->key, x->klen, 40),
			 a->n > b->n ? "first" : "second");
		return -1;
	}
	if (len)
		msg[0] = 0;
	return 0;
}

bool tu_bounds_contain(const struct tu_bounds *b, const void *key, size_t klen)
{
	if (!b)
		return true;
	if (b->lo && tu_key_cmp(key, klen, b->lo, b->lolen) < 0)
		return false;
	if (b->hi && b->hilen && tu_key_cmp(key, klen, b->hi, b->hilen) >= 0)
		return false;
	if (b->prefix && b->plen && (klen < b->plen || memcmp(key, b->prefix, b->plen) != 0))
		return false;
	return true;
}

void tu_model_range(const struct tu_model *m, const struct tu_bounds *b, size_t *begin,
		    size_t *end)
{
	size_t i = 0;

	if (b && b->lo)
		i = tu_model_lower_bound(m, b->lo, b->lolen);
	if (b && b->prefix && b->plen) {
		size_t j = tu_model_lower_bound(m, b->prefix, b->plen);
		if (j > i)
			i = j;
	}
	size_t j = i;
	while (j < m->n && tu_bounds_contain(b, m->ents[j].key, m->ents[j].klen))
		j++;
	*begin = i;
	*end = j;
}

/* ---- 4. Store helpers ---------------------------------------------------------------- */

char *tu_fmt_bytes(char *buf, size_t buflen, const void *p, size_t n, size_t max)
{
	const uint8_t *s = p;
	size_t o = 0, lim = n < max ? n : max;

	if (!buflen)
		return buf;
	buf[0] = 0;
	if (o + 1 < buflen)
		buf[o++] = '"';
	for (size_t i = 0; i < lim && o + 5 < buflen; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
			buf[o++] = (char)s[i];
		else
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", s[i]);
	}
	if (o + 1 < buflen)
		buf[o++] = '"';
	buf[o < buflen ? o : buflen - 1] = 0;
	if (lim < n)
		snprintf(buf + o, buflen - o, "...(%zu bytes)", n);
	return buf;
}

int tu_tmpdir(char *buf, size_t buflen)
{
	const char *t = getenv("TMPDIR");
	int n;

	if (!t || !*t)
		t = "/tmp";
	n = snprintf(buf, buflen, "%s/kvfs-test-XXXXXX", t);
	if (n < 0 || (size_t)n >= buflen)
		return -ENAMETOOLONG;
	if (!mkdtemp(buf))
		return -errno;
	return 0;
}

bool tu_dir_in_memory(const char *dir)
{
	struct statfs sfs;
	return statfs(dir, &sfs) == 0 &&
	       (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path) ? -errno : 0;
	return unlink(path) ? -errno : 0;
}

int tu_rmtree(const char *path)
{
	if (access(path, F_OK) != 0)
		return errno == ENOENT ? 0 : -errno;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_env_fault(struct tu_env *e, uint64_t seed)
{
	memset(e, 0, sizeof(*e));
	e->fault = true;
	e->m = io_fault_new(seed);
	if (!e->m)
		tu_fail(__FILE__, __LINE__, "io_fault_new failed");
	snprintf(e->dir, sizeof(e->dir), "/kvfs-test");
	snprintf(e->path, sizeof(e->path), "/kvfs-test/store");
}

void tu_env_posix(struct tu_env *e)
{
	int rc;

	memset(e, 0, sizeof(*e));
	e->fault = false;
	rc = tu_tmpdir(e->dir, sizeof(e->dir) - 8);
	if (rc)
		tu_fail(__FILE__, __LINE__, "tu_tmpdir: %s", strerror(-rc));
	snprintf(e->path, sizeof(e->path), "%.4000s/store", e->dir);
}

void tu_env_fini(struct tu_env *e)
{
	if (e->fault) {
		if (e->m)
			io_fault_free(e->m);
		e->m = NULL;
	} else if (e->dir[0]) {
		tu_rmtree(e->dir);
		e->dir[0] = 0;
	}
}

/* ---- a forwarding io_env (tu_wrap_env) ---- */

struct wrap_file {
	struct io_file base;
	struct io_file *in;
	const struct tu_wrap_env *env;
};

static struct io_file *wr_in(struct io_file *f)
{
	return ((struct wrap_file *)f)->in;
}

static ssize_t wr_pread(struct io_file *f, void *b, size_t n, uint64_t off)
{
	return io_pread(wr_in(f), b, n, off);
}

static ssize_t wr_pwrite(struct io_file *f, const void *b, size_t n, uint64_t off)
{
	return io_pwrite(wr_in(f), b, n, off);
}

static ssize_t wr_pwritev(struct io_file *f, const struct iovec *iov, int n, uint64_t off)
{
	const struct tu_wrap_env *w = ((struct wrap_file *)f)->env;
	if (w->before_pwritev)
		w->before_pwritev(iov, n);
	return io_pwritev(wr_in(f), iov, n, off);
}

static int wr_sync(struct io_file *f)
{
	const struct tu_wrap_env *w = ((struct wrap_file *)f)->env;
	int rc = io_sync(wr_in(f));
	if (w->after_sync)
		w->after_sync();
	return rc;
}

static int wr_size(struct io_file *f, uint64_t *sz)
{
	return io_size(wr_in(f), sz);
}

static int wr_truncate(struct io_file *f, uint64_t sz)
{
	return io_truncate(wr_in(f), sz);
}

static int wr_allocate(struct io_file *f, uint64_t off, uint64_t len)
{
	return io_allocate(wr_in(f), off, len);
}

static int wr_writeback(struct io_file *f, uint64_t off, uint64_t len)
{
	return io_writeback(wr_in(f), off, len);
}

static int wr_map(struct io_file *f, size_t reserve, const void **addr)
{
	return io_map(wr_in(f), reserve, addr);
}

static void wr_unmap(struct io_file *f, const void *addr, size_t reserve)
{
	io_unmap(wr_in(f), addr, reserve);
}

static int wr_lock(struct io_file *f, int mode)
{
	return io_lock(wr_in(f), mode);
}

static void wr_close(struct io_file *f)
{
	io_close(wr_in(f));
	free(f);
}

static const struct io_methods wrap_methods = {
	.pread = wr_pread, .pwrite = wr_pwrite, .pwritev = wr_pwritev, .sync = wr_sync,
	.writeback = wr_writeback, .size = wr_size, .truncate = wr_truncate,
	.allocate = wr_allocate, .map = wr_map,
	.unmap = wr_unmap, .lock = wr_lock, .close = wr_close,
};

static int wrap_open(struct io_env *env, const char *path, int flags, mode_t mode,
		     struct io_file **out)
{
	struct tu_wrap_env *w = (struct tu_wrap_env *)env;
	struct wrap_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int rc = io_open(w->in, path, flags, mode, &f->in);
	if (rc < 0) {
		free(f);
		return rc;
	}
	f->base.m = &wrap_methods;
	f->env = w;
	*out = &f->base;
	return 0;
}

static int wrap_unlink(struct io_env *env, const char *path)
{
	struct io_env *in = ((struct tu_wrap_env *)env)->in;
	return in->unlink(in, path);
}

void tu_wrap_init(struct tu_wrap_env *w, struct io_env *in)
{
	memset(w, 0, sizeof(*w));
	w->base.open = wrap_open;
	w->base.unlink = wrap_unlink;
	w->in = in;
}

struct io_env *tu_env_io(struct tu_env *e)
{
	return e->fault ? io_fault_env(e->m) : io_posix_env();
}

void tu_env_reboot(struct tu_env *e, uint64_t seed)
{
	if (!e->fault)
		tu_fail(__FILE__, __LINE__, "tu_env_reboot on a POSIX environment");
	struct io_fault *n = io_fault_reboot(e->m, seed);
	if (!n)
		tu_fail(__FILE__, __LINE__, "io_fault_reboot failed");
	io_fault_free(e->m);
	e->m = n;
}

int tu_open_path(struct tu_env *e, const char *path, unsigned flags, struct store **out)
{
	struct store_options o;

	memset(&o, 0, sizeof(o));
	o.flags = flags;
	o.mode = 0;
	o.io = tu_env_io(e);
	o.log = tu_log_cb;
	o.log_ctx = NULL;
	return store_open(path, &o, out);
}

int tu_open(struct tu_env *e, unsigned flags, struct store **out)
{
	return tu_open_path(e, e->path, flags, out);
}

struct store *tu_open_ok(struct tu_env *e, unsigned flags)
{
	struct store *st = NULL;
	char log[2048];
	int rc = tu_open(e, flags, &st);

	if (rc != 0 || !st)
		tu_fail(__FILE__, __LINE__, "store_open(%s, flags %#x) = %d (%s); log: %s", e->path,
			flags, rc, strerror(-rc), tu_log_text(log, sizeof(log)));
	tu_verify_ok(st);
	return st;
}

void tu_close_ok(struct store *st)
{
	char log[2048];
	int rc = store_close(st);

	if (rc != 0)
		tu_fail(__FILE__, __LINE__, "store_close = %d (%s); log: %s", rc, strerror(-rc),
			tu_log_text(log, sizeof(log)));
}

void tu_store_abandon(struct store *st)
{
	(void)store_close(st);
}

/* The captured log: a ring of the last TU_LOG_LINES lines. */
#define TU_LOG_LINES 256
static pthread_mutex_t tu_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *tu_log_ring[TU_LOG_LINES]; /* protected by tu_log_lock */
static size_t tu_log_next;              /* protected by tu_log_lock */

void tu_log_cb(void *ctx, const char *line)
{
	(void)ctx;
	if (getenv("KVFS_TEST_VERBOSE"))
		fprintf(stderr, "store log: %s\n", line);
	char *copy = strdup(line);
	pthread_mutex_lock(&tu_log_lock);
	size_t slot = tu_log_next++ % TU_LOG_LINES;
	free(tu_log_ring[slot]);
	tu_log_ring[slot] = copy;
	pthread_mutex_unlock(&tu_log_lock);
}

void tu_log_clear(void)
{
	pthread_mutex_lock(&tu_log_lock);
	for (size_t i = 0; i < TU_LOG_LINES; i++) {
		free(tu_log_ring[i]);
		tu_log_ring[i] = NULL;
	}
	tu_log_next = 0;
	pthread_mutex_unlock(&tu_log_lock);
}

bool tu_log_contains(const char *needle)
{
	bool found = false;

	pthread_mutex_lock(&tu_log_lock);
	for (size_t i = 0; i < TU_LOG_LINES && !found; i++)
		if (tu_log_ring[i] && strstr(tu_log_ring[i], needle))
			found = true;
	pthread_mutex_unlock(&tu_log_lock);
	return found;
}

char *tu_log_text(char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return buf;
	buf[0] = 0;
	pthread_mutex_lock(&tu_log_lock);
	size_t first = tu_log_next > TU_LOG_LINES ? tu_log_next - TU_LOG_LINES : 0;
	for (size_t i = first; i < tu_log_next && o + 1 < len; i++) {
		const char *l = tu_log_ring[i % TU_LOG_LINES];
		if (!l)
			continue;
		int n = snprintf(buf + o, len - o, "%s%s", o ? "\n" : "", l);
		if (n < 0)
			break;
		o += (size_t)n;
	}
	pthread_mutex_unlock(&tu_log_lock);
	return buf;
}

static int apply_bounds(struct store_cursor *c, const struct tu_bounds *b)
{
	if (b && b->prefix && b->plen)
		return store_cursor_set_prefix(c, b->prefix, b->plen);
	if (b)
		return store_cursor_set_range(c, b->lo, b->lolen, b->hi, b->hilen);
	return store_cursor_set_range(c, NULL, 0, NULL, 0);
}

int tu_cursor_cmp(struct store_cursor *c, const struct tu_model *m, const struct tu_bounds *b,
		  bool backward, char *msg, size_t len)
{
	char k1[128], k2[128];
	size_t begin, end;
	int rc;

	rc = apply_bounds(c, b);
	if (rc) {
		snprintf(msg, len, "setting cursor bounds: %d (%s)", rc, strerror(-rc));
		return -1;
	}
	tu_model_range(m, b, &begin, &end);
	size_t want = end - begin;
	const char *dir = backward ? "backward" : "forward";
	rc = backward ? store_cursor_last(c) : store_cursor_first(c);
	for (size_t step = 0; step < want; step++) {
		const struct tu_ent *e = &m->ents[backward ? end - 1 - step : begin + step];
		if (rc != 0) {
			snprintf(msg, len, "%s scan: step %zu of %zu returned %d (%s); "
				 "expected key %s", dir, step, want, rc, strerror(-rc),
				 tu_fmt_bytes(k1, sizeof(k1), e->key, e->klen, 40));
			return -1;
		}
		struct store_val k = { 0 }, v = { 0 };
		rc = store_cursor_get(c, &k, &v);
		if (rc != 0) {
			snprintf(msg, len, "%s scan: step %zu: store_cursor_get = %d (%s)", dir,
				 step, rc, strerror(-rc));
			return -1;
		}
		if (tu_key_cmp(k.data, k.len, e->key, e->klen) != 0) {
			snprintf(msg, len, "%s scan: step %zu of %zu: key %s, expected %s", dir,
				 step, want, tu_fmt_bytes(k1, sizeof(k1), k.data, k.len, 40),
				 tu_fmt_bytes(k2, sizeof(k2), e->key, e->klen, 40));
			return -1;
		}
		if (v.len != e->vlen || (e->vlen && memcmp(v.data, e->val, e->vlen) != 0)) {
			size_t d = 0;
			const uint8_t *got = v.data;
			while (d < v.len && d < e->vlen && got[d] == e->val[d])
				d++;
			snprintf(msg, len, "%s scan: key %s: value of %zu bytes, expected %zu "
				 "bytes (first difference at byte %zu)", dir,
				 tu_fmt_bytes(k1, sizeof(k1), e->key, e->klen, 40), v.len,
				 e->vlen, d);
			return -1;
		}
		rc = backward ? store_cursor_prev(c) : store_cursor_next(c);
	}
	if (rc != -ENOENT) {
		struct store_val k = { 0 };
		if (rc == 0 && store_cursor_get(c, &k, NULL) == 0)
			snprintf(msg, len, "%s scan: %zu keys expected, then key %s in addition",
				 dir, want, tu_fmt_bytes(k1, sizeof(k1), k.data, k.len, 40));
		else
			snprintf(msg, len, "%s scan: after %zu keys returned %d (%s), expected "
				 "-ENOENT", dir, want, rc, strerror(-rc));
		return -1;
	}
	struct store_val k = { 0 };
	rc = store_cursor_get(c, &k, NULL);
	if (rc != -ENOENT) {
		snprintf(msg, len, "%s scan: store_cursor_get after the end = %d, expected -ENOENT "
			 "(cursor should be unpositioned)", dir, rc);
		return -1;
	}
	return 0;
}

int tu_tree_cmp(struct store_tree *t, const struct tu_model *m, char *msg, size_t len)
{
	struct store_cursor *c = NULL;
	uint64_t n = store_tree_count(t);
	int rc;

	if (n != m->n) {
		snprintf(msg, len, "store_tree_count = %" PRIu64 ", expected %zu", n, m->n);
		return -1;
	}
	rc = store_cursor_open(t, &c);
	if (rc) {
		snprintf(msg, len, "store_cursor_open = %d (%s)", rc, strerror(-rc));
		return -1;
	}
	rc = tu_cursor_cmp(c, m, NULL, false, msg, len);
	if (!rc)
		rc = tu_cursor_cmp(c, m, NULL, true, msg, len);
	store_cursor_close(c);
	return rc;
}

int tu_store_cmp(struct store *st, const char *name, const struct tu_model *m, char *msg,
		 size_t len)
{
	struct store_txn *txn = NULL;
	struct store_tree *t = NULL;
	int rc;

	rc = store_txn_begin(st, STORE_TXN_RDONLY, &txn);
	if (rc) {
		snprintf(msg, len, "store_txn_begin(RDONLY) = %d (%s)", rc, strerror(-rc));
		return -1;
	}
	rc = store_tree_open(txn, name, strlen(name), false, &t);
	if (rc == -ENOENT && m->n == 0) {
		store_txn_abort(txn);
		return 0;
	}
	if (rc) {
		snprintf(msg, len, "store_tree_open(%s) = %d (%s) with %zu keys expected", name, rc,
			 strerror(-rc), m->n);
		store_txn_abort(txn);
		return -1;
	}
	rc = tu_tree_cmp(t, m, msg, len);
	store_txn_abort(txn);
	return rc;
}

int tu_store_load(struct store *st, const char *name, struct tu_model *out)
{
	struct store_txn *txn = NULL;
	struct store_tree *t = NULL;
	struct store_cursor *c = NULL;
	int rc;

	tu_model_clear(out);
	rc = store_txn_begin(st, STORE_TXN_RDONLY, &txn);
	if (rc)
		return rc;
	rc = store_tree_open(txn, name, strlen(name), false, &t);
	if (rc == -ENOENT) {
		store_txn_abort(txn);
		return 0;
	}
	if (!rc)
		rc = store_cursor_open(t, &c);
	if (!rc) {
		for (rc = store_cursor_first(c); rc == 0; rc = store_cursor_next(c)) {
			struct store_val k, v;
			rc = store_cursor_get(c, &k, &v);
			if (rc)
				break;
			tu_model_put(out, k.data, k.len, v.data, v.len);
		}
		if (rc == -ENOENT)
			rc = 0;
		store_cursor_close(c);
	}
	store_txn_abort(txn);
	return rc;
}

struct verify_buf {
	char *msg;
	size_t len, used;
	unsigned lines;
};

static void verify_report(void *ctx, const char *line)
{
	struct verify_buf *vb = ctx;

	vb->lines++;
	if (vb->used + 1 < vb->len) {
		int n = snprintf(vb->msg + vb->used, vb->len - vb->used, "%s%s",
				 vb->used ? "\n" : "", line);
		if (n > 0)
			vb->used += (size_t)n;
		if (vb->used >= vb->len)
			vb->used = vb->len - 1;
	}
}

int tu_verify(struct store *st, char *msg, size_t len)
{
	struct verify_buf vb = { msg, len, 0, 0 };

	if (len)
		msg[0] = 0;
	int rc = store_verify(st, verify_report, &vb);
	if (rc == 0 && vb.lines)
		rc = -EUCLEAN; /* reported a problem but returned 0: treat as unclean */
	return rc;
}

void tu_verify_ok(struct store *st)
{
	char msg[4096];
	int rc = tu_verify(st, msg, sizeof(msg));

	if (rc)
		tu_fail(__FILE__, __LINE__, "store_verify(%s) = %d: %s", store_path(st), rc, msg);
}
