/* libFuzzer entry for device names: the input is the string a client puts
 * in "device=" or --device (up to its first NUL).
 *
 * The grammar is strict (no leading zeros, no spaces at a serial's ends),
 * so an accepted name has one spelling: printing the result back must give
 * the input, up to the case of a UUID and its optional "partuuid:". A
 * refusal must leave *out as it was. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <strings.h>

#include "blk/devname.h"
#include "fuzz.h"

static void check_accepted(const char *s, const struct devname *d)
{
	char again[512];

	switch (d->kind) {
	case DEVNAME_NS:
	case DEVNAME_NS_PART: {
		size_t n = strnlen(d->serial, sizeof(d->serial));

		FUZZ_ASSERT(n >= 1 && n < sizeof(d->serial));
		FUZZ_ASSERT(d->serial[0] != ' ' && d->serial[n - 1] != ' ');
		for (size_t i = 0; i < n; i++)
			FUZZ_ASSERT(d->serial[i] >= 0x20 && d->serial[i] <= 0x7e);
		FUZZ_ASSERT(d->nsid >= 1 && d->nsid <= 0xfffffffe);
		if (d->kind == DEVNAME_NS) {
			snprintf(again, sizeof(again), "%s:n%u", d->serial, d->nsid);
		} else {
			FUZZ_ASSERT(d->partno >= 1);
			snprintf(again, sizeof(again), "%s:n%u:%u", d->serial, d->nsid,
				 d->partno);
		}
		FUZZ_ASSERT(strcmp(again, s) == 0);
		break;
	}
	case DEVNAME_UUID: {
		size_t n = strnlen(d->uuid, sizeof(d->uuid));
		const char *bare = strncmp(s, "partuuid:", 9) == 0 ? s + 9 : s;

		FUZZ_ASSERT(n == 36 || n == 11);
		for (size_t i = 0; i < n; i++)
			FUZZ_ASSERT(!islower((unsigned char)d->uuid[i]));
		FUZZ_ASSERT(strcasecmp(d->uuid, bare) == 0);
		break;
	}
	case DEVNAME_PARTLABEL:
		FUZZ_ASSERT(strnlen(d->label, sizeof(d->label)) < sizeof(d->label));
		FUZZ_ASSERT(d->label[0] != '\0');
		FUZZ_ASSERT(strncmp(s, "partlabel:", 10) == 0 && strcmp(d->label, s + 10) == 0);
		break;
	default:
		FUZZ_ASSERT(!"kind out of range");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devname d, before;
	char *s = malloc(size + 1);
	int rc;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	memset(&d, 0xa5, sizeof(d));
	memcpy(&before, &d, sizeof(d));
	rc = devname_parse(s, &d);
	if (rc == 0)
		check_accepted(s, &d);
	else
		FUZZ_ASSERT((rc == -EINVAL || rc == -ERANGE) && memcmp(&d, &before, sizeof(d)) == 0);
	free(s);
	return 0;
}
