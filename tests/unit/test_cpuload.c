/* util/cpuload: /proc/stat parsed per allowed CPU, the limit, the gate's
 * hysteresis against a real /proc/stat with a busy child beside. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "util/cpuload.h"

static const char stat_text[] =
	"cpu  100 0 50 1000 10 5 5 0 0 0\n"
	"cpu0 10 1 2 300 4 1 1 1 0 0\n"
	"cpu1 20 0 8 200 0 0 2 0 0 0\n"
	"cpu12 7 0 0 3 0 0 0 0 0 0\n"
	"intr 12345 0 0\n"
	"ctxt 99\n"
	"cpu3x 1 1 1\n";

static bool odd_out(unsigned cpu, void *arg)
{
	(void)arg;
	return cpu % 2 == 0;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int main(void)
{
	uint64_t busy, total;
	struct cpuload c;
	unsigned others = 0, mine;
	uint64_t wall0, cpu0;
	pid_t kid;

	/* The aggregate "cpu" line is not a CPU; busy = user nice system irq
	 * softirq steal, total adds idle and iowait. */
	CHECK_EQ_INT(cpuload_parse(stat_text, NULL, NULL, &busy, &total), 3);
	CHECK_EQ_INT(busy, (10 + 1 + 2 + 1 + 1 + 1) + (20 + 8 + 2) + 7);
	CHECK_EQ_INT(total, busy + 300 + 4 + 200 + 3);
	CHECK_EQ_INT(cpuload_parse(stat_text, odd_out, NULL, &busy, &total), 2);	/* cpu0, cpu12 */
	CHECK_EQ_INT(busy, 16 + 7);
	CHECK_EQ_INT(cpuload_parse("", NULL, NULL, &busy, &total), 0);
	CHECK_EQ_INT(cpuload_parse("cpu0 1 2\n", NULL, NULL, &busy, &total), 1);	/* short line */
	CHECK_EQ_INT(busy, 3);

	/* The limit: 80 % of every CPU but the poller's own, at least 20 %
	 * of one (a poller pinned to its CPU). */
	CHECK_EQ_INT(cpuload_limit(1), 200);
	CHECK_EQ_INT(cpuload_limit(2), 800);
	CHECK_EQ_INT(cpuload_limit(8), 5600);
	/* Hysteresis: shut above the limit, open again below 3/4 of it. */
	CHECK(cpuload_gate(true, 800, 2));
	CHECK(!cpuload_gate(true, 801, 2));
	CHECK(!cpuload_gate(false, 700, 2));
	CHECK(!cpuload_gate(false, 600, 2));
	CHECK(cpuload_gate(false, 599, 2));
	CHECK(cpuload_gate(true, 150, 1));
	CHECK(!cpuload_gate(true, 250, 1));

	/* The real thing: the first sample primes; later ones count what
	 * others used, not this process's own time. */
	CHECK_EQ_INT(cpuload_open(&c), 0);
	wall0 = mono_ns();
	cpu0 = cpu_ns();
	CHECK_EQ_INT(cpuload_sample(&c, &others), -EAGAIN);
	/* Our own spinning is not "others". A whole second of this
	 * process's CPU time (not of the clock's: on a busy machine a
	 * second's spin may get half a CPU): until time() ticks over was
	 * anything from 0 to 1 s, and a spin of a few ticks fails the check
	 * below for tick rounding alone. */
	while (cpu_ns() - cpu0 < 1000000000u && mono_ns() - wall0 < 10000000000u)
		;
	CHECK_EQ_INT(cpuload_sample(&c, &others), 0);
	mine = (unsigned)((cpu_ns() - cpu0) * 1000u / (mono_ns() - wall0));
	CHECK(c.ncpu >= 1);
	CHECK(others <= 1000 * c.ncpu);
	/* What this process used (about a CPU on an idle machine) was taken
	 * out of what all used: 30 % slack for the 10 ms ticks. */
	CHECK(c.busy_milli >= others + mine * 7 / 10);
	/* ... and no more than it (a wrong tick rate would take out too much). */
	CHECK(c.busy_milli <= others + mine * 13 / 10 + 20);
	printf("cpuload: %u CPUs, all %u/1000, others %u/1000 while this process spun (%u/1000)\n",
	       c.ncpu, c.busy_milli, others, mine);

	/* Children spinning on every allowed CPU: the gate shuts (whatever
	 * else the machine was doing). */
	kid = fork();
	if (kid == 0) {
		/* One process group to kill; and each dies on its own in 5 s
		 * should this test be killed first. */
		setpgid(0, 0);
		for (unsigned i = 1; i < c.ncpu; i++)
			if (fork() == 0)
				break;
		alarm(5);
		for (;;)
			;
	}
	setpgid(kid, kid);
	sleep_ms(400);
	(void)cpuload_spare(&c);
	sleep_ms(400);
	CHECK(!cpuload_spare(&c));
	printf("cpuload: others %u/1000 with %u spinning children\n", c.others_milli, c.ncpu);
	CHECK_EQ_INT(kill(-kid, SIGKILL), 0);
	waitpid(kid, NULL, 0);
	cpuload_close(&c);
	return check_report("cpuload");
}
