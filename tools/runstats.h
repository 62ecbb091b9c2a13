/* What nvme-drv-perf and nvme-drv-io share: the clock, the seeded
 * generator behind their patterns and random offsets, and the latency log
 * and its one-line report, so both print figures that compare. */
#ifndef NVD_TOOLS_RUNSTATS_H
#define NVD_TOOLS_RUNSTATS_H

#include <stddef.h>
#include <stdint.h>

struct lat_log {
	uint64_t *ns;
	size_t n, cap;
};

uint64_t now_ns(void);
uint64_t splitmix64(uint64_t *x);
/* Records one latency; past the memory it can get, stops recording. */
void lat_add(struct lat_log *l, uint64_t ns);
void lat_free(struct lat_log *l);
/* "PHASE: ios=N time=Xs iops=N bw=XMiB/s lat_us: min= avg= p50= p90= p99=
 * p99.9= max=", then empties the log. */
void report_phase(const char *phase, uint64_t ios, uint32_t bs, uint64_t t0, uint64_t t1,
		  struct lat_log *l);

/* The run options both tools take, checked the same way: each logs a
 * one-line error naming the option and returns -1, or 0 with *out set. */
int opt_bs(const char *arg, uint32_t *out);		/* --bs: 512..4M, multiple of 512 */
int opt_time(const char *arg, double *out);		/* --time: 1..86400 s */
int opt_count(const char *arg, uint64_t *out);		/* --count: positive */
int opt_seed(const char *arg, uint64_t *out);		/* --seed: any number */
/* Others take a plain range: parse_opt_range (util/parse.h). */

#endif
