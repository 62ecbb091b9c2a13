/* util/parse: CPU lists (--cpus) as taskset -c takes them. */
#include <errno.h>

#include "check.h"
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
	return check_report("parse");
}
