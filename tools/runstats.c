#include "runstats.h"

#include "util/log.h"
#include "util/parse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void lat_add(struct lat_log *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		uint64_t *v = realloc(l->ns, cap * sizeof(*v));

		if (!v)
			return;
		l->ns = v;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
}

void lat_free(struct lat_log *l)
{
	free(l->ns);
	l->ns = NULL;
	l->n = l->cap = 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_us(const struct lat_log *l, double q)
{
	size_t i = (size_t)(q * (double)(l->n - 1) + 0.5);
	return (double)l->ns[i < l->n ? i : l->n - 1] / 1000.0;
}

void report_phase(const char *phase, uint64_t ios, uint32_t bs, uint64_t t0, uint64_t t1,
		  struct lat_log *l)
{
	double secs = (double)(t1 - t0) / 1e9;
	double sum = 0;

	if (secs <= 0)
		secs = 1e-9;
	printf("%s: ios=%" PRIu64 " time=%.2fs iops=%.0f bw=%.2fMiB/s", phase, ios, secs,
	       (double)ios / secs, (double)ios * bs / secs / 1048576.0);
	if (l->n) {
		qsort(l->ns, l->n, sizeof(*l->ns), cmp_u64);
		for (size_t i = 0; i < l->n; i++)
			sum += (double)l->ns[i];
		printf(" lat_us: min=%.1f avg=%.1f p50=%.1f p90=%.1f p99=%.1f p99.9=%.1f max=%.1f",
		       (double)l->ns[0] / 1000.0, sum / (double)l->n / 1000.0, pct_us(l, 0.5),
		       pct_us(l, 0.9), pct_us(l, 0.99), pct_us(l, 0.999), (double)l->ns[l->n - 1] / 1000.0);
	}
	printf("\n");
	fflush(stdout);
	l->n = 0;
}

int opt_bs(const char *arg, uint32_t *out)
{
	uint64_t v;

	if (parse_size(arg, 512, 4u << 20, &v) || (v & 511)) {
		log_err(NULL, "--bs: '%s' is not a multiple of 512 from 512 to 4M", arg);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int opt_time(const char *arg, double *out)
{
	uint64_t v;

	if (parse_u64(arg, 1, 86400, &v)) {
		log_err(NULL, "--time: '%s' is not a number of seconds from 1 to 86400", arg);
		return -1;
	}
	*out = (double)v;
	return 0;
}

int opt_count(const char *arg, uint64_t *out)
{
	if (parse_u64(arg, 1, UINT64_MAX / 2, out)) {
		log_err(NULL, "--count: '%s' is not a positive number", arg);
		return -1;
	}
	return 0;
}

int opt_seed(const char *arg, uint64_t *out)
{
	if (parse_u64(arg, 0, UINT64_MAX, out)) {
		log_err(NULL, "--seed: '%s' is not a number", arg);
		return -1;
	}
	return 0;
}
