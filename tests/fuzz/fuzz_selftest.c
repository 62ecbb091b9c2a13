/* A target with one bug of the kind named by NVD_FUZZ_SELFTEST, hit by
 * every input: the meson tests fuzz_selftest_* expect tests/fuzz/run to
 * fail on each, so make check proves that a crash, a leak, a hang, UB or
 * a broken invariant in a real target would fail it too. */
#include <stdlib.h>

#include "fuzz.h"

static volatile int sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *mode = getenv("NVD_FUZZ_SELFTEST");
	volatile int big = 0x7fffffff;

	if (!mode)
		return 0;
	if (strcmp(mode, "crash") == 0)
		sink = data[size];	/* one byte past libFuzzer's exact copy */
	else if (strcmp(mode, "leak") == 0)
		sink = *(volatile char *)malloc(1) = 1;
	else if (strcmp(mode, "hang") == 0)
		while (!sink)
			;
	else if (strcmp(mode, "ub") == 0)
		sink = big + (int)(size | 1);
	else if (strcmp(mode, "invariant") == 0)
		FUZZ_ASSERT(size > SIZE_MAX / 2);
	return 0;
}
