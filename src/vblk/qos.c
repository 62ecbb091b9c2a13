#include "vblk/qos.h"

#include <errno.h>

#define NS_PER_SEC 1000000000ull
/* A request's bytes are counted up to this (8 GiB, more than any virtio
 * request can carry): cost * NS_PER_SEC + a remainder below QOS_BPS_MAX
 * must fit 64 bits. */
#define QOS_COST_MAX (1ull << 33)

_Static_assert(QOS_COST_MAX * NS_PER_SEC <= UINT64_MAX - QOS_BPS_MAX,
	       "a request's cost in ns-units fits 64 bits with its remainder");
_Static_assert(QOS_IOPS_MAX <= QOS_BPS_MAX, "one bound for every rate");

static bool is_bytes(enum qos_key k)
{
	return k == QOS_BPS || k == QOS_RBPS || k == QOS_WBPS;
}

int qos_check(const struct qos_limits *l)
{
	for (int k = 0; k < QOS_NKEYS; k++) {
		uint64_t v = l->v[k];

		if (v == 0)
			continue;
		if (is_bytes((enum qos_key)k) ? v < QOS_BPS_MIN || v > QOS_BPS_MAX
					      : v > QOS_IOPS_MAX)
			return -EINVAL;
	}
	return 0;
}

void qos_set(struct qos *q, const struct qos_limits *l, uint64_t now)
{
	q->active = false;
	for (int k = 0; k < QOS_NKEYS; k++) {
		struct qos_bucket *b = &q->b[k];

		if (b->rate != l->v[k]) {
			b->rate = l->v[k];
			b->tat = now + QOS_BURST_NS;	/* empty */
			b->rem = 0;
		}
		q->active |= b->rate != 0;
	}
}

/* Whether bucket k counts a request of direction dir. */
static bool applies(enum qos_key k, enum qos_dir dir)
{
	switch (k) {
	case QOS_RIOPS:
	case QOS_RBPS:
		return dir == QOS_READ;
	case QOS_WIOPS:
	case QOS_WBPS:
		return dir == QOS_WRITE;
	default:
		return true;
	}
}

uint64_t qos_admit(struct qos *q, enum qos_dir dir, uint64_t bytes, uint64_t now)
{
	uint64_t cost_ns[QOS_NKEYS], wait = 0;

	if (!q->active)
		return 0;
	if (bytes > QOS_COST_MAX)
		bytes = QOS_COST_MAX;
	for (int k = 0; k < QOS_NKEYS; k++) {
		struct qos_bucket *b = &q->b[k];
		uint64_t cost = is_bytes((enum qos_key)k) ? bytes : 1;
		uint64_t start, need;

		cost_ns[k] = 0;
		if (!b->rate || !cost || !applies((enum qos_key)k, dir))
			continue;
		cost_ns[k] = (cost * NS_PER_SEC + b->rem) / b->rate;
		/* The bucket holds now + burst - start worth: enough for the
		 * cost, or for a whole burst when the cost is more. */
		start = b->tat > now ? b->tat : now;
		need = cost_ns[k] < QOS_BURST_NS ? cost_ns[k] : QOS_BURST_NS;
		if (start + need > now + QOS_BURST_NS && start + need - QOS_BURST_NS - now > wait)
			wait = start + need - QOS_BURST_NS - now;
	}
	if (wait)
		return wait;
	for (int k = 0; k < QOS_NKEYS; k++) {
		struct qos_bucket *b = &q->b[k];
		uint64_t cost = is_bytes((enum qos_key)k) ? bytes : 1;

		if (!b->rate || !cost || !applies((enum qos_key)k, dir))
			continue;
		b->rem = (cost * NS_PER_SEC + b->rem) % b->rate;
		b->tat = (b->tat > now ? b->tat : now) + cost_ns[k];
	}
	return 0;
}
