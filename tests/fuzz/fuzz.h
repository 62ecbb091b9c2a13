/* What every libFuzzer target here shares: the entry point's prototype,
 * an invariant check that libFuzzer records as a crash, and a reader that
 * takes numbers off the front of the input for the harness's own choices
 * (sizes, flags), so the rest can be the peer's bytes as sent. */
#ifndef NVD_TESTS_FUZZ_H
#define NVD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding like a sanitizer report: say which, then
 * trap, so libFuzzer keeps the input and the run fails. */
#define FUZZ_ASSERT(cond)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant broken: %s\n", \
				__FILE__, __LINE__, #cond);		\
			__builtin_trap();				\
		}							\
	} while (0)

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/* Little-endian, and 0 for bytes the input does not have: a short input
 * is still a valid one, so libFuzzer's shrinking keeps working. */
static inline uint64_t fuzz_take(struct fuzz_in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

/* Control characters (below 0x20 and 0x7f) in s, which must stay one
 * printable line. */
static inline int fuzz_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

#endif
