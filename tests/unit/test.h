/* Minimal table-driven test support: each failed check prints
 * "file:line: what: got X, want Y"; main returns test_done(). */
#ifndef AUTHRELAY_TEST_H
#define AUTHRELAY_TEST_H

#include <stdio.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond, ...) do { \
	test_checks++; \
	if (!(cond)) { \
		test_failures++; \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} \
} while (0)

#define CHECK_INT(got, want, what) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	CHECK(g_ == w_, "%s: got %lld, want %lld", (what), g_, w_); \
} while (0)

#define CHECK_STR(got, want, what) do { \
	const char *g_ = (got), *w_ = (want); \
	CHECK((g_ == NULL && w_ == NULL) || \
	      (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0), \
	      "%s: got \"%s\", want \"%s\"", (what), g_ ? g_ : "(null)", \
	      w_ ? w_ : "(null)"); \
} while (0)

static inline int test_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
	return test_failures == 0 ? 0 : 1;
}

#endif
