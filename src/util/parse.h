/* Strict number parsing for options and create() arguments.
 * Every function returns 0 or -EINVAL/-ERANGE; no partial parses. */
#ifndef NVD_UTIL_PARSE_H
#define NVD_UTIL_PARSE_H

#include <stdint.h>

/* Decimal (or 0x-prefixed hex) unsigned integer in [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Like parse_u64 but accepts a binary suffix k/K, m/M, g/G (x1024^n). */
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A CPU list as taskset -c and cpuset take it: "0,2-3" gives 0, 2, 3 in
 * that order. Each CPU below `limit` and named once; at most `max` of
 * them. -EINVAL for bad syntax or a repeat, -ERANGE past limit or max. */
int parse_cpulist(const char *s, unsigned limit, unsigned *cpus, unsigned max, unsigned *n);

#endif
