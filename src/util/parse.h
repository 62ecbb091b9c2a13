/* Strict number parsing for options and create() arguments.
 * Every function returns 0 or -EINVAL/-ERANGE; no partial parses. All
 * are pure but parse_opt_range, which also says what was wrong. */
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
/* A numeric option of a command line, parse_u64 in [lo, hi], that on a bad
 * one logs "NAME: 'ARG' is not a number from LO to HI": the same words in
 * every program, so that a user who mistypes one option knows the next. */
int parse_opt_range(const char *name, const char *arg, uint64_t lo, uint64_t hi, uint64_t *out);

#endif
