/* A virtual block device: one client's view of one disk or partition,
 * served through virtio-blk. Transport-free: a transport (vhost-user,
 * VDUSE) hands it the client's memory regions, ring addresses and kicks;
 * it turns requests into NVMe commands whose data the controller moves
 * straight to and from the client's memory (zero copy), and reports used
 * buffers through ops->notify.
 *
 * The client's memory regions are its "dataspaces": each is mapped once,
 * into this process and into the controller's IOMMU at an IOVA of its own,
 * and unmapped only after every I/O that may use it has ended. */
#ifndef NVD_VBLK_VBLK_H
#define NVD_VBLK_VBLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blk/disk.h"
#include "vblk/qos.h"
#include "spec/virtio_blk.h"

#define VBLK_MAX_QUEUES 16
#define VBLK_MAX_QUEUE_SIZE 1024
#define VBLK_DS_MAX_LIMIT 256	/* ds-max range 1..256 */
#define VBLK_DS_MAX_DEFAULT 2	/* as in L4Re */
/* Requests a virtqueue takes in one go before the other clients and
 * queues of its loop get a turn (vblk_vq_kick): a client with hundreds in
 * its ring does not hold one at depth 1 behind all of them. Not tuned by
 * measurement: a batch of 32 already rings the doorbell once per 32
 * commands, and a queue at depth 32 or less never meets it. */
#define VBLK_VQ_BUDGET 32

struct vblk;
struct evloop;

/* A file whose memory may be used for DMA (-d/--register-ds). */
struct vblk_trusted {
	dev_t dev;
	ino_t ino;
};

struct vblk_conf {
	const char *name;		/* the client, for log lines */
	struct blk_target target;
	bool readonly;			/* the client's read-only flag */
	unsigned ds_max;		/* memory regions at most */
	const struct vblk_trusted *trusted;	/* NULL: any file */
	unsigned ntrusted;
	unsigned num_queues;		/* virtqueues offered (1..VBLK_MAX_QUEUES) */
	unsigned qp_first;		/* spreads clients over the I/O queues */
	/* With data threads: the queue pairs of the thread serving the
	 * client are qp_base, qp_base + qp_step, ... (0 and 1: all). */
	unsigned qp_base, qp_step;
	/* Limits (vblk/qos.h; all 0: none), and the loop whose timer lets
	 * requests held back by them go (NULL: no limits can be set). */
	struct qos_limits qos;
	struct evloop *loop;
	/* Requests taken per turn (0: VBLK_VQ_BUDGET); the rest waits for
	 * the end of the loop's round (evloop_yield). Without a loop a
	 * queue takes all it finds. */
	unsigned vq_budget;
};

struct vblk_ops {
	/* Used buffers are ready on queue q: signal the driver. */
	void (*notify)(void *ctx, unsigned q);
	/* The driver broke the ring rules: the device needs a reset. */
	void (*broken)(void *ctx);
	/* A queue vblk_vq_stop could not stop at once has drained: its last
	 * request in flight is in the used ring; vblk_vq_base() is final. */
	void (*drained)(void *ctx, unsigned q);
};

/* One memory region as the front end describes it; fd is the backing. */
struct vblk_mem {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;		/* the front end's own address (ring addresses use it) */
	uint64_t mmap_offset;
	int fd;
};

struct vblk_stats {
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t errors;	/* requests answered IOERR or UNSUPP */
	uint64_t throttled;	/* requests held back by a QoS limit */
	uint64_t yields;	/* turns a queue ended at its budget (VBLK_VQ_BUDGET) */
};

int vblk_new(const struct vblk_conf *conf, const struct vblk_ops *ops, void *ctx, struct vblk **out);
/* Stops every queue; the object is freed once no I/O is in flight (the
 * controller may still write into client memory until then). */
void vblk_destroy(struct vblk *d);
/* Takes no more requests from any queue (a hand-over to a successor): what
 * is in flight completes into the rings as usual; vblk_inflight() says
 * when nothing is left. */
void vblk_quiesce(struct vblk *d);
/* Stops every queue and drops the memory table (RESET_DEVICE, disconnect). */
void vblk_reset(struct vblk *d);

uint64_t vblk_features(const struct vblk *d);
int vblk_set_features(struct vblk *d, uint64_t features);
void vblk_get_config(const struct vblk *d, struct virtio_blk_config *cfg);
unsigned vblk_num_queues(const struct vblk *d);
unsigned vblk_ds_max(const struct vblk *d);
const struct vblk_stats *vblk_stats(const struct vblk *d);
/* Changes the limits at once: requests held back are judged again now.
 * Errors: -EINVAL (a value outside qos_check's bounds, or limits without
 * conf->loop), or timerfd's. */
int vblk_set_qos(struct vblk *d, const struct qos_limits *l);
unsigned vblk_inflight(const struct vblk *d);

/* Memory. Each takes ownership of the fds it is given (closes them, on
 * error too). Errors: -E2BIG (more than ds-max regions), -EPERM (not a
 * registered dataspace), -EINVAL (bad region), -ENOMEM, or the mapping's. */
int vblk_mem_set(struct vblk *d, const struct vblk_mem *regs, unsigned n);
int vblk_mem_add(struct vblk *d, const struct vblk_mem *reg);
int vblk_mem_remove(struct vblk *d, const struct vblk_mem *reg);

/* Virtqueues (q < num_queues). Addresses are the front end's (uva). */
int vblk_vq_set_num(struct vblk *d, unsigned q, unsigned num);
int vblk_vq_set_addr(struct vblk *d, unsigned q, uint64_t desc, uint64_t avail, uint64_t used);
int vblk_vq_set_base(struct vblk *d, unsigned q, uint16_t base);
/* Inflight tracking for queue q (vhost-user.rst "Inflight I/O tracking",
 * split layout): `log` is `len` bytes the transport keeps mapped for the
 * session, set before vblk_vq_start(), which then takes again what an
 * earlier process left in flight there (each answered once) and goes on
 * from the used index plus those. A fresh log (version 0) is initialised.
 * The log is client memory: accessed under memguard. NULL: no tracking.
 * Errors: -EINVAL (no such queue, or too small for any queue). */
int vblk_vq_set_inflight(struct vblk *d, unsigned q, void *log, size_t len);
/* Starts processing (the kick fd is set and the ring enabled). */
int vblk_vq_start(struct vblk *d, unsigned q);
/* Stops taking requests from queue q (GET_VRING_BASE). Returns 1 when
 * nothing is in flight (vblk_vq_base() is final now), 0 when requests
 * still are: ops->drained(q) follows once they are all in the used ring. */
int vblk_vq_stop(struct vblk *d, unsigned q);
/* The next available index to take: what GET_VRING_BASE reports. */
uint16_t vblk_vq_base(const struct vblk *d, unsigned q);
void vblk_vq_enable(struct vblk *d, unsigned q, bool on);
/* Takes and starts the available requests of queue q: at most the
 * budget (vblk_conf.vq_budget) now, the rest at the end of the round. */
void vblk_vq_kick(struct vblk *d, unsigned q);
/* For a transport's poller (evloop_poller): takes what the running rings
 * hold without a kick; returns true if it took any. */
bool vblk_poll(struct vblk *d);
/* Kicks off (the loop polls) or on again; turning them on takes what came
 * meanwhile and returns true if it took any. Turning them on also sends
 * every notification held back (below). */
bool vblk_set_notify(struct vblk *d, bool on);

/* Notification coalescing while the loop polls. A polling loop finds
 * completions one or two at a time, and notifying the driver for each
 * costs it an interrupt (through VDUSE, a kernel work item and a wake-up
 * of the submitter: tens of microseconds under TCG each). So while a
 * queue is polled and more than VBLK_COALESCE_MIN of its requests stay in
 * flight, a completion's notification waits until the oldest waiting one
 * is `us` old or fewer are left in flight, and at the latest until the
 * loop stops polling (vblk_set_notify(on)). A queue at low depth, or one
 * not polled, is notified at once as before. 0 turns it off, the default:
 * in interleaved runs on the test bed it gained nothing beyond the noise
 * through VDUSE or vhost-user. Process-wide (nvme-drv --coalesce-us);
 * BENCHMARKS.md "Notification coalescing". */
#define VBLK_COALESCE_US_DEFAULT 0
#define VBLK_COALESCE_US_LIMIT 10000
#define VBLK_COALESCE_MIN 4
void vblk_set_coalesce_us(unsigned us);

#endif
