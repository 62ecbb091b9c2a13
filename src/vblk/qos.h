/* Per-client I/O limits (QoS), as qemu-storage-daemon's throttle groups
 * and SPDK's bdev QoS offer them: operations and bytes per second, in all
 * or per direction. Pure arithmetic over a clock the caller reads, so
 * that a test can drive it with a fake one.
 *
 * Each limit is a token bucket holding at most QOS_BURST_NS worth of its
 * rate (a tenth of a second), kept as the time at which it would be
 * empty ("theoretical arrival time", GCRA): no floating point, and the
 * rate stays exact over any length of time (the remainder of each
 * division is carried). A request is admitted when every bucket it counts
 * against holds its cost, or a full burst for a request costing more than
 * a burst (a request larger than the burst still goes, and the bucket
 * goes into debt that later requests wait for); it is then charged to
 * each. */
#ifndef NVD_VBLK_QOS_H
#define NVD_VBLK_QOS_H

#include <stdbool.h>
#include <stdint.h>

#define QOS_BURST_NS 100000000ull	/* a tenth of a second worth */
/* Bounds of a limit other than 0 (unlimited): beyond them a value is a
 * mistake, not a limit (no controller does 100 M IOPS or 1 TiB/s; a byte
 * limit below one block a second would take an hour a request). */
#define QOS_IOPS_MAX 100000000ull
#define QOS_BPS_MIN 4096ull
#define QOS_BPS_MAX (1ull << 40)

enum qos_key { QOS_IOPS, QOS_RIOPS, QOS_WIOPS, QOS_BPS, QOS_RBPS, QOS_WBPS, QOS_NKEYS };

/* Per second; 0: unlimited. */
struct qos_limits {
	uint64_t v[QOS_NKEYS];
};

/* What a request counts as: reads, or writes (flushes, discards and
 * write-zeroes too); bytes: its data (0 for all but reads and writes). */
enum qos_dir { QOS_READ, QOS_WRITE };

struct qos_bucket {
	uint64_t rate;		/* per second, 0: not limited */
	uint64_t tat;		/* ns: when the bucket is full again */
	uint64_t rem;		/* carried remainder of cost * 1e9 / rate */
};

struct qos {
	struct qos_bucket b[QOS_NKEYS];
	bool active;		/* any limit set */
};

/* 0, or -EINVAL for a value outside its bounds (limits untouched). */
int qos_check(const struct qos_limits *l);
/* Sets the limits (checked: qos_check). A bucket whose rate changes starts
 * empty at `now` (no burst: a new limit shows at once); the others keep
 * their state. */
void qos_set(struct qos *q, const struct qos_limits *l, uint64_t now);
static inline bool qos_active(const struct qos *q) { return q->active; }
/* Admits a request at `now`: returns 0 and charges it, or returns how
 * many ns from now it could be admitted (charging nothing). */
uint64_t qos_admit(struct qos *q, enum qos_dir dir, uint64_t bytes, uint64_t now);

#endif
