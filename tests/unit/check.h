/* Minimal assertions for unit tests. A failed check prints one line with
 * file:line and the test goes on; check_report() prints the tally and gives
 * the exit status. One translation unit per test binary. Output is flushed
 * as it goes: a sanitizer that ends the process must not swallow it. */
#ifndef NVD_TESTS_CHECK_H
#define NVD_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

/* The exit status meson reads as "skipped". */
#define CHECK_SKIP 77

static unsigned check_count, check_failed;

#define CHECK(cond)							\
	do {								\
		check_count++;						\
		if (!(cond)) {						\
			check_failed++;					\
			printf("%s:%d: CHECK(%s) failed\n",		\
			       __FILE__, __LINE__, #cond);		\
			fflush(stdout);					\
		}							\
	} while (0)

#define CHECK_EQ_INT(a, b)						\
	do {								\
		long long a_ = (long long)(a), b_ = (long long)(b);	\
		check_count++;						\
		if (a_ != b_) {						\
			check_failed++;					\
			printf("%s:%d: %s == %s failed: %lld != %lld\n", \
			       __FILE__, __LINE__, #a, #b, a_, b_);	\
			fflush(stdout);					\
		}							\
	} while (0)

#define CHECK_STREQ(a, b)						\
	do {								\
		const char *a_ = (a), *b_ = (b);			\
		check_count++;						\
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {		\
			check_failed++;					\
			printf("%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", \
			       __FILE__, __LINE__, #a, #b,		\
			       a_ ? a_ : "(null)", b_ ? b_ : "(null)");	\
			fflush(stdout);					\
		}							\
	} while (0)

/* Prints "name: N checks, M failed"; returns the exit status. */
static inline int check_report(const char *name)
{
	printf("%s: %u checks, %u failed\n", name, check_count, check_failed);
	fflush(stdout);
	return check_failed ? 1 : 0;
}

#endif
