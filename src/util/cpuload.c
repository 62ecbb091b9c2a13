#include "util/cpuload.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Big enough for 1024 CPUs' lines (about 80 bytes each) and the rest. */
#define STAT_BUF (128 * 1024)

unsigned cpuload_parse(const char *s, bool (*allowed)(unsigned cpu, void *arg), void *arg,
		       uint64_t *busy, uint64_t *total)
{
	unsigned found = 0;

	*busy = *total = 0;
	while (s && *s) {
		const char *eol = strchr(s, '\n');

		if (!strncmp(s, "cpu", 3) && s[3] >= '0' && s[3] <= '9') {
			char *p;
			unsigned long cpu = strtoul(s + 3, &p, 10);
			uint64_t v[8] = { 0 };	/* user nice system idle iowait irq softirq steal */

			if (*p != ' ') {
				s = eol ? eol + 1 : NULL;
				continue;
			}
			for (unsigned i = 0; i < 8 && p && (!eol || p < eol); i++) {
				char *q;

				v[i] = strtoull(p, &q, 10);
				if (q == p)
					break;
				p = q;
			}
			if (cpu < CPULOAD_MAX_CPUS && (!allowed || allowed((unsigned)cpu, arg))) {
				uint64_t b = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];

				*busy += b;
				*total += b + v[3] + v[4];
				found++;
			}
		}
		s = eol ? eol + 1 : NULL;
	}
	return found;
}

static bool in_mask(unsigned cpu, void *arg)
{
	return CPU_ISSET_S(cpu, CPU_ALLOC_SIZE(CPULOAD_MAX_CPUS), (cpu_set_t *)arg);
}

static uint64_t self_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int cpuload_open(struct cpuload *c)
{
	memset(c, 0, sizeof(*c));
	c->spare = true;
	c->buf = malloc(STAT_BUF);
	c->mask = CPU_ALLOC(CPULOAD_MAX_CPUS);
	if (!c->buf || !c->mask) {
		c->fd = -1;
		cpuload_close(c);
		return -ENOMEM;
	}
	c->fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
	return c->fd < 0 ? -errno : 0;
}

void cpuload_close(struct cpuload *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	if (c->mask)
		CPU_FREE(c->mask);
	c->mask = NULL;
}

int cpuload_sample(struct cpuload *c, unsigned *others_milli)
{
	size_t setsz = CPU_ALLOC_SIZE(CPULOAD_MAX_CPUS);
	cpu_set_t *mask = c->mask;
	char *buf = c->buf;
	ssize_t n;
	size_t len = 0;
	uint64_t busy, total, self;
	unsigned ncpu;
	int rc;

	if (c->fd < 0)
		return -EBADF;
	if (sched_getaffinity(0, setsz, mask) != 0)
		return -errno;
	while (len < STAT_BUF - 1 && (n = pread(c->fd, buf + len, STAT_BUF - 1 - len, (off_t)len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	self = self_ns();
	ncpu = cpuload_parse(buf, in_mask, mask, &busy, &total);
	rc = -EAGAIN;
	if (ncpu && c->primed && ncpu == c->ncpu && total > c->total && busy >= c->busy) {
		/* The allowed CPUs' ticks over the sample, less the process's
		 * own time in ticks (USER_HZ): what the others used. */
		uint64_t dt = total - c->total;
		uint64_t mine = (self - c->self_ns) / (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
		uint64_t others = busy - c->busy > mine ? busy - c->busy - mine : 0;

		*others_milli = (unsigned)(others * 1000u * ncpu / dt);
		c->busy_milli = (unsigned)((busy - c->busy) * 1000u * ncpu / dt);
		rc = 0;
	}
	c->primed = ncpu > 0;
	c->ncpu = ncpu;
	c->busy = busy;
	c->total = total;
	c->self_ns = self;
	return rc;
}

unsigned cpuload_limit(unsigned ncpu)
{
	unsigned l = ncpu > 1 ? CPULOAD_BUSY_PERMILLE * (ncpu - 1) : 0;

	return l > 200 ? l : 200;
}

bool cpuload_spare(void *arg)
{
	struct cpuload *c = arg;
	unsigned others, extra;

	if (cpuload_sample(c, &others) != 0)
		return c->spare;
	c->others_milli = others;
	/* Every poller of the process spins a CPU of its own: the others'
	 * budget is what is left beside them all. */
	extra = c->pollers > 1 ? c->pollers - 1 : 0;
	c->spare = cpuload_gate(c->spare, others, c->ncpu > extra ? c->ncpu - extra : 1);
	return c->spare;
}

bool cpuload_gate(bool spare, unsigned others_milli, unsigned ncpu)
{
	unsigned limit = cpuload_limit(ncpu);

	if (spare)
		return others_milli <= limit;
	return others_milli < limit * 3 / 4;
}

void cpuload_set_pollers(struct cpuload *c, unsigned n)
{
	c->pollers = n;
}
