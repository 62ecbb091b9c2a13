/* The QoS buckets (src/vblk/qos.c) against a fake clock: the rate over a
 * long run, the burst, requests larger than a burst, reads and writes
 * apart, a limit changed midway, and the bounds. */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "vblk/qos.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* A client that always has a request waiting: submits whenever the
 * bucket admits one, sleeping exactly as long as qos_admit says. Returns
 * how many went in [t0, t0 + len), and leaves *t at the end. */
static uint64_t run(struct qos *q, enum qos_dir dir, uint64_t bytes, uint64_t *t, uint64_t len)
{
	uint64_t end = *t + len, n = 0;

	while (*t < end) {
		uint64_t w = qos_admit(q, dir, bytes, *t);

		if (w == 0)
			n++;
		else
			*t += w;
	}
	*t = end;
	return n;
}

static void test_rate(void)
{
	struct qos q = { 0 };
	struct qos_limits l = { { [QOS_IOPS] = 500 } };
	uint64_t t = 5 * SEC, n;

	qos_set(&q, &l, t);
	CHECK(qos_active(&q));
	/* A new limit starts empty: the first request waits 2 ms. */
	CHECK_EQ_INT(qos_admit(&q, QOS_READ, 4096, t), 2 * MS);
	n = run(&q, QOS_READ, 4096, &t, 10 * SEC);
	CHECK(n >= 4999 && n <= 5001);
	/* Idle for a second: a burst of a tenth of a second (50) goes at
	 * once, then 2 ms each again. */
	t += SEC;
	n = 0;
	while (qos_admit(&q, QOS_WRITE, 0, t) == 0)
		n++;
	CHECK_EQ_INT(n, 50);
	CHECK_EQ_INT(qos_admit(&q, QOS_WRITE, 0, t), 2 * MS);
}

/* 3 requests a second: 333333333.3 ns each; the remainder is carried, so
 * 3000 seconds admit 9000, not 9000 + drift. */
static void test_exact_over_time(void)
{
	struct qos q = { 0 };
	struct qos_limits l = { { [QOS_IOPS] = 3 } };
	uint64_t t = 0, n;

	qos_set(&q, &l, t);
	n = run(&q, QOS_READ, 0, &t, 3000 * SEC);
	CHECK(n >= 8999 && n <= 9000);
}

static void test_bytes_and_large_requests(void)
{
	struct qos q = { 0 };
	struct qos_limits l = { { [QOS_BPS] = 1 << 20 } };	/* 1 MiB/s: a 100 KiB burst */
	uint64_t t = SEC, n;

	qos_set(&q, &l, t);
	/* 4 MiB requests, 40 bursts each, still go: one every 4 s. */
	n = run(&q, QOS_WRITE, 4 << 20, &t, 40 * SEC);
	CHECK(n >= 9 && n <= 11);
	/* 4 KiB ones: 256 a second. */
	t += 10 * SEC;
	n = run(&q, QOS_READ, 4096, &t, 10 * SEC);
	CHECK(n >= 2560 - 26 && n <= 2560 + 26);
	/* A request of no bytes (a flush) is not held by a byte limit. */
	CHECK_EQ_INT(qos_admit(&q, QOS_WRITE, 0, t), 0);
}

static void test_directions(void)
{
	struct qos q = { 0 };
	struct qos_limits l = { { [QOS_RIOPS] = 100, [QOS_WIOPS] = 1000 } };
	uint64_t t = SEC, n;

	qos_set(&q, &l, t);
	n = run(&q, QOS_READ, 512, &t, 10 * SEC);
	CHECK(n >= 999 && n <= 1001);
	n = run(&q, QOS_WRITE, 512, &t, 10 * SEC);
	CHECK(n >= 9990 && n <= 10101);
	/* Reads use up their bucket, writes keep theirs. */
	while (qos_admit(&q, QOS_READ, 512, t) == 0)
		;
	t += MS;
	CHECK(qos_admit(&q, QOS_READ, 512, t) != 0);
	CHECK_EQ_INT(qos_admit(&q, QOS_WRITE, 512, t), 0);
}

/* Both iops and bps: the tighter one rules. */
static void test_both(void)
{
	struct qos q = { 0 };
	struct qos_limits l = { { [QOS_IOPS] = 1000, [QOS_BPS] = 1 << 20 } };
	uint64_t t = SEC, n;

	qos_set(&q, &l, t);
	n = run(&q, QOS_READ, 64 << 10, &t, 10 * SEC);	/* 16/s by bytes */
	CHECK(n >= 158 && n <= 162);
}

static void test_change(void)
{
	struct qos q = { 0 };
	struct qos_limits l = { { [QOS_IOPS] = 1000 } };
	uint64_t t = SEC, n;

	qos_set(&q, &l, t);
	n = run(&q, QOS_READ, 0, &t, SEC);
	CHECK(n >= 999 && n <= 1001);
	/* Down to 100: deep in the old bucket's terms or not, the new rate
	 * holds from now on. */
	l.v[QOS_IOPS] = 100;
	qos_set(&q, &l, t);
	n = run(&q, QOS_READ, 0, &t, SEC);
	CHECK(n >= 99 && n <= 101);
	l.v[QOS_IOPS] = 5000;
	qos_set(&q, &l, t);
	n = run(&q, QOS_READ, 0, &t, SEC);
	CHECK(n >= 4999 && n <= 5001);
	/* Lifted: everything goes. */
	l.v[QOS_IOPS] = 0;
	qos_set(&q, &l, t);
	CHECK(!qos_active(&q));
	for (int i = 0; i < 100000; i++)
		CHECK_EQ_INT(qos_admit(&q, QOS_READ, 1 << 20, t), 0);
	/* The same limit set again keeps the bucket as it is. */
	l.v[QOS_IOPS] = 10;
	qos_set(&q, &l, t);
	CHECK(qos_admit(&q, QOS_READ, 0, t) != 0);
	t += SEC;
	qos_set(&q, &l, t);	/* a changed one would start empty */
	CHECK_EQ_INT(qos_admit(&q, QOS_READ, 0, t), 0);
}

/* Clock values near the top of 64 bits and requests of absurd size do
 * not overflow into admitting everything. */
static void test_extremes(void)
{
	struct qos q = { 0 };
	struct qos_limits l = { { [QOS_BPS] = QOS_BPS_MIN, [QOS_IOPS] = 1 } };
	uint64_t t = UINT64_MAX / 4;

	qos_set(&q, &l, t);
	t += 10 * SEC;
	CHECK_EQ_INT(qos_admit(&q, QOS_READ, UINT64_MAX, t), 0);	/* a burst's worth */
	CHECK(qos_admit(&q, QOS_READ, 4096, t) > 1000 * SEC);	/* 8 GiB of debt at 4 KiB/s */
	l = (struct qos_limits){ { [QOS_BPS] = QOS_BPS_MAX, [QOS_IOPS] = QOS_IOPS_MAX } };
	qos_set(&q, &l, t);
	t += SEC;
	CHECK_EQ_INT(qos_admit(&q, QOS_READ, 1ull << 33, t), 0);
}

static void test_bounds(void)
{
	struct qos_limits l = { { 0 } };

	CHECK_EQ_INT(qos_check(&l), 0);
	l.v[QOS_IOPS] = QOS_IOPS_MAX;
	l.v[QOS_WBPS] = QOS_BPS_MAX;
	l.v[QOS_RBPS] = QOS_BPS_MIN;
	CHECK_EQ_INT(qos_check(&l), 0);
	l.v[QOS_IOPS] = QOS_IOPS_MAX + 1;
	CHECK_EQ_INT(qos_check(&l), -EINVAL);
	l.v[QOS_IOPS] = 1;
	l.v[QOS_BPS] = QOS_BPS_MIN - 1;
	CHECK_EQ_INT(qos_check(&l), -EINVAL);
	l.v[QOS_BPS] = QOS_BPS_MAX + 1;
	CHECK_EQ_INT(qos_check(&l), -EINVAL);
}

int main(void)
{
	test_rate();
	test_exact_over_time();
	test_bytes_and_large_requests();
	test_directions();
	test_both();
	test_change();
	test_extremes();
	test_bounds();
	return check_report("qos");
}
