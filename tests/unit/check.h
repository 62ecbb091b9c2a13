/* Minimal assertions for unit tests. A failed check prints one line with
 * file:line and the test goes on; check_report() prints the tally and gives
 * the exit status. One translation unit per test binary. Output is flushed
 * as it goes: a sanitizer that ends the process must not swallow it. */
#ifndef NVD_TESTS_CHECK_H
#define NVD_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* For a test whose stderr is the file at `path` (dup2 of a mkstemp file):
 * what was written to it since the last call, in buf (size bytes, NUL
 * ended; "" if it cannot be read); the file is emptied and stderr
 * rewound, so the next call sees only what comes after. */
static inline const char *check_read_err(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, size - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
	if (truncate(path, 0) != 0 || lseek(STDERR_FILENO, 0, SEEK_SET) != 0)
		buf[0] = '\0';
	return buf;
}

/* Prints "name: N checks, M failed"; returns the exit status. */
static inline int check_report(const char *name)
{
	printf("%s: %u checks, %u failed\n", name, check_count, check_failed);
	fflush(stdout);
	return check_failed ? 1 : 0;
}

#endif
