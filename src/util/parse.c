#include "util/parse.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "util/log.h"

static int parse_base(const char *s, uint64_t *out, const char **end)
{
	char *e;
	unsigned long long v;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	/* Decimal, or hex with 0x; never octal: "010" is ten. */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if (!isxdigit((unsigned char)s[2]))
			return -EINVAL;
		v = strtoull(s + 2, &e, 16);
	} else {
		v = strtoull(s, &e, 10);
	}
	if (e == s)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	*end = e;
	return 0;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	const char *end;
	int rc = parse_base(s, &v, &end);

	if (rc)
		return rc;
	if (*end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v, mult = 1;
	const char *end;
	int rc = parse_base(s, &v, &end);

	if (rc)
		return rc;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1ull << 10; end++; break;
	case 'm': case 'M': mult = 1ull << 20; end++; break;
	case 'g': case 'G': mult = 1ull << 30; end++; break;
	default: return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	v *= mult;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_cpulist(const char *s, unsigned limit, unsigned *cpus, unsigned max, unsigned *n)
{
	const char *p = s;

	*n = 0;
	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		uint64_t lo, hi;
		const char *end;
		int rc = parse_base(p, &lo, &end);

		if (rc)
			return rc;
		hi = lo;
		if (*end == '-') {
			rc = parse_base(end + 1, &hi, &end);
			if (rc)
				return rc;
			if (hi < lo)
				return -EINVAL;
		}
		if (hi >= limit)
			return -ERANGE;
		for (uint64_t c = lo; c <= hi; c++) {
			for (unsigned i = 0; i < *n; i++)
				if (cpus[i] == c)
					return -EINVAL;
			if (*n >= max)
				return -ERANGE;
			cpus[(*n)++] = (unsigned)c;
		}
		if (*end == '\0')
			return 0;
		if (*end != ',')
			return -EINVAL;
		p = end + 1;
	}
}

int parse_opt_range(const char *name, const char *arg, uint64_t lo, uint64_t hi, uint64_t *out)
{
	int rc = parse_u64(arg, lo, hi, out);

	if (rc)
		log_err(NULL, "%s: '%s' is not a number from %" PRIu64 " to %" PRIu64, name, arg, lo,
			hi);
	return rc;
}
