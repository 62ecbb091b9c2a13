/* util/parse: CPU lists (--cpus) as taskset -c takes them; numeric
 * options with their bounds and the one message every program gives. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "util/log.h"
#include "util/parse.h"

static void ok(const char *s, unsigned n, const unsigned *want)
{
	unsigned cpus[8], got = 99;

	CHECK_EQ_INT(parse_cpulist(s, 64, cpus, 8, &got), 0);
	CHECK_EQ_INT(got, n);
	for (unsigned i = 0; i < n && i < got; i++)
		CHECK_EQ_INT(cpus[i], want[i]);
}

static void bad(const char *s, int err)
{
	unsigned cpus[8], n;

	CHECK_EQ_INT(parse_cpulist(s, 64, cpus, 8, &n), err);
}

static char errpath[] = "/tmp/nvd-test-parse.XXXXXX";
static char got[512];

/* What was written to stderr since the last call. */
static const char *read_err(void)
{
	return check_read_err(errpath, got, sizeof(got));
}

static void opt_ok(const char *arg, uint64_t lo, uint64_t hi, uint64_t want)
{
	uint64_t v = 12345;

	CHECK_EQ_INT(parse_opt_range("--n", arg, lo, hi, &v), 0);
	CHECK(v == want);
	CHECK_STREQ(read_err(), "");
}

/* A bad value: its error, *out untouched, and the one line. */
static void opt_bad(const char *name, const char *arg, uint64_t lo, uint64_t hi, int err,
		    const char *msg)
{
	uint64_t v = 12345;

	CHECK_EQ_INT(parse_opt_range(name, arg, lo, hi, &v), err);
	CHECK(v == 12345);
	CHECK_STREQ(read_err(), msg);
}

static void test_opt_range(void)
{
	int fd = mkstemp(errpath), saved = dup(STDERR_FILENO);

	CHECK(fd >= 0 && saved >= 0);
	if (fd < 0 || saved < 0)
		return;
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_set_prog("/usr/sbin/nvme-drv");

	opt_ok("0", 0, 10000, 0);
	opt_ok("10000", 0, 10000, 10000);	/* both bounds are in */
	opt_ok("1", 1, 64, 1);
	opt_ok("0x40", 1, 64, 64);
	opt_ok("010", 1, 64, 10);		/* never octal */
	opt_ok("18446744073709551615", 0, UINT64_MAX, UINT64_MAX);
	opt_bad("--coalesce-us", "10001", 0, 10000, -ERANGE,
		"nvme-drv: error: --coalesce-us: '10001' is not a number from 0 to 10000\n");
	opt_bad("--threads", "0", 1, 64, -ERANGE,
		"nvme-drv: error: --threads: '0' is not a number from 1 to 64\n");
	opt_bad("--qd", "8k", 1, 4096, -EINVAL,
		"nvme-drv: error: --qd: '8k' is not a number from 1 to 4096\n");
	opt_bad("--qd", "-1", 1, 4096, -EINVAL,
		"nvme-drv: error: --qd: '-1' is not a number from 1 to 4096\n");
	opt_bad("--qd", "", 1, 4096, -EINVAL,
		"nvme-drv: error: --qd: '' is not a number from 1 to 4096\n");
	opt_bad("--qd", " 4", 1, 4096, -EINVAL,
		"nvme-drv: error: --qd: ' 4' is not a number from 1 to 4096\n");
	opt_bad("--seed", "18446744073709551616", 0, UINT64_MAX, -ERANGE,
		"nvme-drv: error: --seed: '18446744073709551616' is not a number from 0 to "
		"18446744073709551615\n");

	dup2(saved, STDERR_FILENO);
	close(saved);
	unlink(errpath);
}

int main(void)
{
	ok("0", 1, (const unsigned[]){ 0 });
	ok("3,1", 2, (const unsigned[]){ 3, 1 });
	ok("0,2-4", 4, (const unsigned[]){ 0, 2, 3, 4 });
	ok("5-5", 1, (const unsigned[]){ 5 });
	ok("63", 1, (const unsigned[]){ 63 });
	bad("", -EINVAL);
	bad(",", -EINVAL);
	bad("1,", -EINVAL);
	bad("1,,2", -EINVAL);
	bad("-1", -EINVAL);
	bad("1-", -EINVAL);
	bad("3-1", -EINVAL);
	bad("1,1", -EINVAL);	/* named twice */
	bad("0-2,2", -EINVAL);
	bad("a", -EINVAL);
	bad("1 2", -EINVAL);
	bad("64", -ERANGE);	/* past the limit */
	bad("0-8", -ERANGE);	/* more than max */
	bad("99999999999999999999", -ERANGE);
	test_opt_range();
	return check_report("parse");
}
