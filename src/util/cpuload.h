/* How busy other work keeps the CPUs this process may run on, from the
 * per-CPU lines of /proc/stat and the process's own CPU time. A poller
 * spins only on spare CPU: when the rest of the machine needs what it
 * would burn (clients, and under emulation the device itself), polling
 * stops (evloop_set_poll_gate). As the kernel's busy polling stops at
 * need_resched(), but measured over a sample, since user space cannot
 * see the run queue.
 *
 * One struct per polling thread; a sample reads /proc/stat once (pread,
 * no open). */
#ifndef NVD_UTIL_CPULOAD_H
#define NVD_UTIL_CPULOAD_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#define CPULOAD_MAX_CPUS 1024

struct cpuload {
	int fd;			/* /proc/stat, or -1: always spare */
	char *buf;		/* its text, read into one buffer kept open */
	cpu_set_t *mask;		/* the affinity mask, taken again each sample */
	unsigned ncpu;		/* CPUs this process may run on */
	uint64_t busy, total;	/* their ticks at the last sample */
	uint64_t self_ns;	/* the process's CPU time then */
	bool primed;
	bool spare;		/* the gate's last answer */
	unsigned others_milli;	/* others' use at the last sample, 1/1000 CPU */
	unsigned busy_milli;	/* everyone's, this process's included */
	unsigned pollers;	/* the process's polling threads (0 or 1: one) */
};

/* Opens /proc/stat and takes the affinity mask. Without /proc, every
 * answer is "spare" (polling as configured). Returns 0 or -errno. */
int cpuload_open(struct cpuload *c);
void cpuload_close(struct cpuload *c);
/* Others' use of the allowed CPUs since the last sample, in thousandths
 * of a CPU (the process's own time taken out); the first sample only
 * primes and returns -EAGAIN. -errno if /proc/stat cannot be read. */
int cpuload_sample(struct cpuload *c, unsigned *others_milli);
/* The gate: whether a poller may spin. Closed while others use more than
 * CPULOAD_BUSY_PERMILLE of every allowed CPU but one (at least 20 % of
 * one: a pinned poller's own CPU), open again below three quarters of
 * that. For evloop_set_poll_gate; arg is the struct cpuload. */
#define CPULOAD_BUSY_PERMILLE 800
bool cpuload_spare(void *arg);
/* With n polling threads (nvme-drv --threads), each may spin only where
 * the others keep less than CPULOAD_BUSY_PERMILLE of every CPU but n. */
void cpuload_set_pollers(struct cpuload *c, unsigned n);
/* The same decision from a sample: the gate's next answer after `spare`. */
bool cpuload_gate(bool spare, unsigned others_milli, unsigned ncpu);
/* The limit in thousandths of a CPU for n allowed CPUs (for tests). */
unsigned cpuload_limit(unsigned ncpu);
/* Parses the text of /proc/stat: sums the ticks of the CPUs whose
 * numbers `allowed` says yes to (NULL: all); returns how many it found.
 * For tests too. */
unsigned cpuload_parse(const char *text, bool (*allowed)(unsigned cpu, void *arg), void *arg,
		       uint64_t *busy, uint64_t *total);

#endif
