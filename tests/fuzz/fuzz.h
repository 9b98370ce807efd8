/* Shared by the libFuzzer harnesses (tests/fuzz/README.md).
 *
 * FUZZ_CHECK states an invariant beyond what the sanitizers see; a
 * violation prints what was got and aborts, which libFuzzer reports as a
 * crash and saves as a reproducer. Not assert(): NDEBUG must not turn
 * the checks off. */
#ifndef AUTHRELAY_FUZZ_H
#define AUTHRELAY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define FUZZ_CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(fuzz_report(), "%s:%d: invariant: ", __FILE__, \
			__LINE__); \
		fprintf(fuzz_report(), __VA_ARGS__); \
		fputc('\n', fuzz_report()); \
		fflush(fuzz_report()); \
		abort(); \
	} \
} while (0)

/* Where FUZZ_CHECK reports: stderr, or the copy of it that
 * fuzz_keep_stderr() made, for a harness whose code logs on stderr and
 * that runs with -close_fd_mask=2 (libFuzzer then closes the stderr the
 * code writes to, and keeps its own and the sanitizers' output). Call it
 * from LLVMFuzzerInitialize, which runs before the flags act. */
static FILE *fuzz_report_file;

static inline FILE *fuzz_report(void)
{
	return fuzz_report_file != NULL ? fuzz_report_file : stderr;
}

static inline void fuzz_keep_stderr(void)
{
	int fd = dup(2);

	if (fd >= 0)
		fuzz_report_file = fdopen(fd, "w");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Splits chosen by the fuzzer: the first octet of the input (taken off
 * it) seeds the chunk sizes 1..16 in which the rest is fed, so one input
 * is fed whole and in those pieces. */
struct fuzz_splits {
	uint32_t state;
};

static inline void fuzz_splits_init(struct fuzz_splits *s, uint8_t seed)
{
	s->state = 0x9e3779b9u ^ seed;
}

static inline size_t fuzz_splits_next(struct fuzz_splits *s, size_t left)
{
	size_t n;

	s->state = s->state * 1103515245u + 12345u;
	n = 1 + ((s->state >> 16) & 15);
	return n < left ? n : left;
}

/* A control octet (C0 or DEL) anywhere in s[0..len)? */
static inline int fuzz_has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

/* Wiped: every octet of p[0..n) zero? */
static inline int fuzz_all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i] != 0)
			return 0;
	return 1;
}

#endif
