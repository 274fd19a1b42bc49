/*
 * tools/bench_util.h — what kvfs's benchmark programs share: the random generator (so every
 * engine sees the same keys), the clock, paths, and the pipe I/O between a benchmark and the
 * child process that runs one engine.  Header-only (static functions): each benchmark is one
 * program of one .c file plus this.  Define PROG (the program's name, for messages) first.
 */
#ifndef KVFS_TOOLS_BENCH_UTIL_H
#define KVFS_TOOLS_BENCH_UTIL_H

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* xoshiro256** (Blackman & Vigna), seeded through splitmix64. */
struct rng {
	uint64_t s[4];
};

static inline uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void rng_seed_raw(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform in [0, n) by Lemire's multiply-shift (bias at most n / 2^64). */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* dir/name into out, or exit(1) with a message when it does not fit. */
static inline void path_join(char *out, size_t size, const char *dir, const char *name)
{
	int len = snprintf(out, size, "%s/%s", dir, name);
	if (len < 0 || (size_t)len >= size) {
		fprintf(stderr, PROG ": %s/%s: path too long\n", dir, name);
		exit(1);
	}
}

/* Write all of buf to a pipe: 0, or -1. */
static inline int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Read up to len bytes from a pipe, until end of file: the count read. */
static inline size_t read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, p + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/*
 * Run job(arg, out) in a child process, so that each engine has its own peak RSS and a crash
 * in one engine is a failed row, not a dead benchmark.  The child sends out (out_size bytes)
 * back through a pipe.  Returns 0 with *out and *maxrss_kb when the job returned 0, else -1
 * (the reason is on stderr, naming `what`).
 */
static inline int bench_in_child(const char *what, int (*job)(void *arg, void *out), void *arg,
				 void *out, size_t out_size, long *maxrss_kb)
{
	struct rusage ru;
	int fds[2], status;
	if (pipe(fds) != 0) {
		fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		memset(out, 0, out_size);
		int rc = job(arg, out);
		fflush(NULL);
		_exit(write_all(fds[1], out, out_size) == 0 && rc == 0 ? 0 : 1);
	}
	close(fds[1]);
	size_t got = read_all(fds[0], out, out_size);
	close(fds[0]);
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, PROG ": wait4: %s\n", strerror(errno));
			return -1;
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, PROG ": %s: killed by signal %d (%s)\n", what, WTERMSIG(status),
			strsignal(WTERMSIG(status)));
		return -1;
	}
	if (got != out_size || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	*maxrss_kb = ru.ru_maxrss;
	return 0;
}

#endif
