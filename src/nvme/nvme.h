/* The NVMe layer: controllers, namespaces and I/O queue pairs over the
 * platform layer. Knows nothing of virtio or clients.
 *
 * Threads: every function of one controller is called from one thread,
 * its control thread, except that an I/O queue pair whose interrupt
 * vector is its own (nvme_qpair_vector_fd() >= 0) may be handed to a
 * thread of its own, its owner. The owner alone then calls the queue
 * pair's data path: nvme_submit, plug/unplug, nvme_qpair_poll,
 * nvme_qpair_set_polling, nvme_qpair_polled_busy, nvme_qpair_busy,
 * nvme_qpair_has_work and db_stats, and done() runs there. Every other function of the
 * controller (check, service_vector, poll, set_polling, rw_sync, close)
 * touches all its queue pairs and may run done() of any request, so the
 * control thread calls it only while every owner is parked (util/park.h).
 * Shares (nvme_share) are counted per controller with atomic counters:
 * their owners may submit from different threads. Errors are negative errno;
 * NVMe status values are kept as data (nvme_req.status) and judged in
 * status.c only. */
#ifndef NVD_NVME_NVME_H
#define NVD_NVME_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvme/prp.h"
#include "platform/vfio.h"

struct nvme_ctrl;
struct nvme_ns;
struct nvme_qpair;

struct nvme_ctrl_opts {
	bool nosgl;			/* --nosgl: PRPs only */
	unsigned irq_modes;		/* VFIO_IRQ_ALLOW bits: less --nomsix/--nomsi */
	unsigned io_queues;		/* wanted I/O queue pairs; 0: default */
	unsigned io_queue_depth;	/* entries per I/O queue; 0: default */
	unsigned admin_timeout_ms;	/* an admin command's deadline; 0: 60 s as Linux */
	unsigned io_timeout_ms;		/* an I/O command's deadline; 0: 30 s as Linux */
	bool no_shadow_db;		/* --no-shadow-doorbells: every doorbell an MMIO write */
	bool polled_queues;		/* a polled twin per I/O queue pair (nvme_ctrl_set_polling) */
};

struct nvme_ctrl_info {
	char bdf[16];
	char serial[21];	/* trailing spaces trimmed, inner ones kept */
	char model[41];
	char firmware[9];
	uint32_t page_size;	/* memory page size in use (CC.MPS) */
	uint32_t max_xfer;	/* bytes per command: MDTS, capped by the driver */
	uint32_t mdts_bytes;	/* MDTS as reported; 0 = no limit */
	bool sgl;		/* SGLs in use (supported and not --nosgl) */
	bool sgl_supported;
	bool sgl_dword;		/* SGLS says dword alignment is required */
	bool vwc;		/* volatile write cache: Flush is meaningful */
	bool dsm;		/* Dataset Management (deallocate) */
	bool write_zeroes;
	bool shadow_db_supported;	/* OACS: Doorbell Buffer Config */
	bool shadow_db;		/* shadow doorbells in use on the I/O queues */
	uint16_t crdt[3];	/* retry delays a CQE's CRD selects, 100 ms units */
	/* Limits of Write Zeroes and Dataset Management (Identify CNS 06h;
	 * 0: none). Write Zeroes without WZSL is held to MDTS, as Linux does. */
	uint32_t wz_max_bytes;
	unsigned dsm_max_ranges;	/* DMRL */
	uint32_t dsm_max_range_nlb;	/* DMRSL */
	uint64_t dsm_max_nlb;		/* DMSL */
	enum vfio_irq_mode irq_mode;
	unsigned nvec;
	unsigned nr_io_queues;
	unsigned nr_polled_queues;	/* twins created with interrupts off */
	unsigned io_depth;
	uint32_t nn;
};

struct nvme_ns_info {
	uint32_t nsid;
	char name[40];		/* "SERIAL:nNSID" */
	uint64_t nlba;
	uint32_t lba_size;
	bool readonly;		/* write protected (NSATTR) */
	bool usable;		/* false: skipped, see skip_reason */
	char skip_reason[80];
	bool deallocated_reads_zero;	/* DLFEAT read behaviour = zeroes */
	bool wz_deallocate;		/* Write Zeroes may set DEAC */
};

/* Brings the controller at `bdf` up (7.6.1 / 3.5.1), identifies it and its
 * namespaces, and creates the I/O queues. Logs why on failure. */
int nvme_ctrl_open(const char *bdf, const struct nvme_ctrl_opts *opts, struct nvme_ctrl **out);
/* Deletes the I/O queues, shuts down (CC.SHN, SHST bounded) and releases
 * the function. Outstanding requests complete with -ECANCELED first. */
void nvme_ctrl_close(struct nvme_ctrl *ctrl);

const struct nvme_ctrl_info *nvme_ctrl_info(const struct nvme_ctrl *ctrl);
struct vfio_dev *nvme_ctrl_vfio(struct nvme_ctrl *ctrl);
unsigned nvme_ctrl_ns_count(const struct nvme_ctrl *ctrl);
struct nvme_ns *nvme_ctrl_ns(struct nvme_ctrl *ctrl, unsigned i);
unsigned nvme_ctrl_nr_qpairs(const struct nvme_ctrl *ctrl);
struct nvme_qpair *nvme_ctrl_qpair(struct nvme_ctrl *ctrl, unsigned i);

const struct nvme_ns_info *nvme_ns_info(const struct nvme_ns *ns);
struct nvme_ctrl *nvme_ns_ctrl(struct nvme_ns *ns);

/* Health and deadlines; call it every second or so: a dead controller
 * raises no interrupt to say so, and nothing else times commands out.
 * Reads CSTS: Controller Fatal Status resets the controller; all ones
 * (gone from the bus) fails it. Sends delayed retries that are due. A
 * command past its deadline (io_timeout_ms / admin_timeout_ms) is reaped,
 * then aborted, then the controller reset (see ctrl.c). A controller that
 * cannot be brought back has every request on every queue failed once
 * with -EIO and takes no more. Returns 0, or -EIO once it has failed. */
int nvme_ctrl_check(struct nvme_ctrl *ctrl);
/* True once the controller has been given up (gone, removed, or not
 * recoverable by a reset): every request on it fails; for listings. */
bool nvme_ctrl_is_failed(const struct nvme_ctrl *ctrl);

/* Interrupts: each vector is an fd to poll for readability; service it
 * when readable. Where the kernel offers it, the last "vector" is the
 * device request notification: serviced, it fails the controller's I/O
 * and releases the function (removal or unbind is under way). */
unsigned nvme_ctrl_nr_vectors(const struct nvme_ctrl *ctrl);
int nvme_ctrl_vector_fd(const struct nvme_ctrl *ctrl, unsigned vec);
void nvme_ctrl_service_vector(struct nvme_ctrl *ctrl, unsigned vec);
/* Whether vector fd `vec` may be watched edge-triggered: an MSI or MSI-X
 * eventfd, which service_vector then never reads (each interrupt is an
 * edge; the read would be a system call per interrupt). INTx must be read
 * and unmasked. */
bool nvme_ctrl_vector_edge(const struct nvme_ctrl *ctrl, unsigned vec);
/* Reaps every I/O queue's completions without waiting or a system call
 * (phase tags), for a poller. Returns how many commands ended. */
unsigned nvme_ctrl_poll(struct nvme_ctrl *ctrl);
/* Polled queue pairs (opts.polled_queues), as SPDK's and Linux's poll
 * queues: each I/O queue pair gets a twin whose CQ raises no interrupt
 * (IEN=0), where the controller grants the queues. While polling is on,
 * requests submitted to a queue pair go to its twin: a completion there
 * costs the controller no interrupt and this process no wake-up, which
 * on an emulated controller is most of an I/O's cost. Whoever turns it
 * on must reap with nvme_ctrl_poll; after turning it off, until
 * nvme_ctrl_polled_busy() says none is left, the twins' commands are
 * found only by polling (the event loop looks every millisecond). */
void nvme_ctrl_set_polling(struct nvme_ctrl *ctrl, bool on);
bool nvme_ctrl_polled_busy(const struct nvme_ctrl *ctrl);
/* The same for one queue pair and its twin, for the thread that owns it:
 * reaps both (no system call); routes its requests to the twin or not;
 * says whether the twin has commands out. */
unsigned nvme_qpair_poll(struct nvme_qpair *qp);
void nvme_qpair_set_polling(struct nvme_qpair *qp, bool on);
bool nvme_qpair_polled_busy(const struct nvme_qpair *qp);
/* The eventfd of the queue pair's interrupt vector when the vector is its
 * own (MSI-X, shared with no other queue pair and not the admin queue's):
 * edge-triggered, never read; when it fires, nvme_qpair_poll. -1 when the
 * vector is shared: then the queue pair cannot leave the control thread.
 * nvme_qpair_vector: its index among the controller's vectors. */
int nvme_qpair_vector_fd(const struct nvme_qpair *qp);
unsigned nvme_qpair_vector(const struct nvme_qpair *qp);

enum {
	NVME_REQ_FUA = 1u << 0,		/* Read/Write: force unit access */
	NVME_REQ_DEALLOCATE = 1u << 1,	/* Write Zeroes: deallocate too */
};

/* One LBA range of a Dataset Management or Write Zeroes request. flags:
 * NVME_REQ_DEALLOCATE for Write Zeroes. */
struct nvme_range {
	uint64_t slba;
	uint64_t nlb;
	uint32_t flags;
};

/* A share of a queue pair's command slots. When the queue is full,
 * requests wait; those of owners (clients) with a share of their own are
 * then issued in turn, each owner's oldest first (start-time fair
 * queueing), not first come, first served: an owner with hundreds waiting
 * does not hold back one with a single request. Zeroed by its owner; one
 * per owner, used on one queue pair at a time. */
struct nvme_share {
	uint64_t last_round;	/* the turn of the owner's newest waiting request */
	unsigned waiting;	/* its requests on a pending list */
	unsigned held;		/* its requests the queue pair has (waiting or sent) */
	struct nvme_qpair *qp;	/* the queue pair that has them (where they wait) */
};

/* Turns for waiting requests are not enough: a request waits for a slot
 * only while its queue is full, and then goes behind every command sent
 * before it, on any queue of the controller (a QD1 owner next to a QD256
 * one waited behind 255 commands in the controller, 20 times as long as
 * alone, whether on the same queue pair or another). So while a
 * controller is shared (two or more owners have requests there, or had in
 * the last NVME_SHARE_GRACE_MS), an owner should hold no more than
 * NVME_SHARE_RATIO times what the others hold on average, and at least
 * NVME_SHARE_MIN: the rest of its requests it keeps itself (a virtqueue
 * leaves them in its ring) until one of its own completes.
 * nvme_share_full() says when it holds that many. Owners of like demand
 * are never held back (16 at QD8 hold 8 each); an owner alone never is.
 * The price: a QD256 owner beside a QD1 one gets 4 commands at a time,
 * and on QEMU's NVMe about half its throughput alone (t-qos.sh). 2 instead of
 * 4 changed neither its throughput nor the other's latency there. */
#define NVME_SHARE_MIN 4
#define NVME_SHARE_RATIO 4
#define NVME_SHARE_GRACE_MS 20
bool nvme_share_full(const struct nvme_qpair *qp, const struct nvme_share *s);

/* One block request. The driver splits it into as many commands as MDTS,
 * NLB widths, list sizes and the DSM/Write Zeroes limits require; `done`
 * runs once, after the last.
 *
 * Dataset Management (deallocate) and Write Zeroes take either one range
 * (slba, nlb; ranges NULL) or `nranges` ranges (slba and nlb ignored):
 * Dataset Management packs as many ranges into each command as DMRL,
 * DMRSL and DMSL allow (one command for a typical multi-range discard);
 * Write Zeroes issues one command per range piece. Either way the request
 * is one done() with the first failure's result. */
struct nvme_req {
	/* set by the caller */
	uint8_t opc;		/* NVME_CMD_READ/WRITE/FLUSH/WRITE_ZEROES/DSM (deallocate) */
	uint32_t flags;
	struct nvme_ns *ns;
	uint64_t slba;
	uint64_t nlb;		/* LBAs; ignored for Flush */
	const struct nvme_seg *segs;	/* Read/Write data: nlb * lba_size bytes */
	unsigned nseg;
	const struct nvme_range *ranges;	/* DSM / Write Zeroes: see above */
	unsigned nranges;
	void (*done)(struct nvme_req *req);
	void *priv;
	struct nvme_share *share;	/* the owner's, or NULL (its own turn) */
	/* set by the driver before done(): 0 or negative errno, and the NVMe
	 * status of the first command that failed (0 if none did) */
	int result;
	uint16_t status;
	/* private to the driver */
	struct nvme_req *next;
	uint64_t next_lba;	/* first LBA not yet issued */
	unsigned seg_idx;	/* data cursor of next_lba; for ranges, the range */
	size_t seg_off;
	const struct nvme_range *rg;	/* the ranges in use: `ranges` or `one` */
	unsigned nrg;
	struct nvme_range one;
	unsigned inflight;
	bool queued;		/* on the queue pair's pending list */
	uint64_t round;		/* its turn there (struct nvme_share) */
};

/* Queues the request. Returns 0 (done() will run) or -EINVAL for a request
 * the driver cannot express (done() will not run): out-of-range LBAs (of
 * any range), an empty range, unsupported opcode, data that does not cover
 * nlb blocks; -ENODEV once the queue is dead. */
int nvme_submit(struct nvme_qpair *qp, struct nvme_req *req);
/* Batches doorbell writes: commands submitted while the queue is plugged
 * are in the SQ, and the controller learns of them all with the one
 * doorbell write of the last unplug. Plugs nest; always unplug. */
void nvme_qpair_plug(struct nvme_qpair *qp);
void nvme_qpair_unplug(struct nvme_qpair *qp);
/* Doorbell updates of a queue pair since it was created: those written to
 * the controller's register, and those that stayed in its shadow doorbell
 * because the controller's EventIdx said it would look there anyway. */
struct nvme_db_stats {
	uint64_t sq_mmio, sq_shadow_only;
	uint64_t cq_mmio, cq_shadow_only;
};
void nvme_qpair_db_stats(const struct nvme_qpair *qp, struct nvme_db_stats *out);
/* A queue pair's request commands (its twin's included) completed since it
 * was created, and the time they spent at the controller: from the
 * doorbell (or shadow doorbell) write that last sent them to the reap pass
 * that found their completion (so how soon the owner reaps counts too). Over an interval, device_ns / commands is their
 * mean time there and device_ns / wall time the mean number there (Little's
 * law): where a request's time goes, device or not. For the owner, or the
 * control thread with the owner parked; nvme_ctrl_io_stats sums a
 * controller's I/O queue pairs. */
struct nvme_io_stats {
	uint64_t commands, device_ns;
};
void nvme_qpair_io_stats(const struct nvme_qpair *qp, struct nvme_io_stats *out);
void nvme_ctrl_io_stats(const struct nvme_ctrl *ctrl, struct nvme_io_stats *out);
/* Reaps completions without waiting; returns how many commands ended. */
unsigned nvme_qpair_process(struct nvme_qpair *qp);
/* Commands in flight and requests waiting for a free slot. */
unsigned nvme_qpair_busy(const struct nvme_qpair *qp);
/* Whether there are any (the queue pair's or its twin's; none on a failed
 * controller): what the event loop waits for is then the device. For the
 * owner; nvme_ctrl_busy is the same over every queue pair, for the control
 * thread. */
bool nvme_qpair_has_work(const struct nvme_qpair *qp);
bool nvme_ctrl_busy(const struct nvme_ctrl *ctrl);

/* Synchronous I/O for start-up work (partition tables): runs on I/O queue
 * 0 through a bounce buffer and waits, bounded. */
int nvme_ns_rw_sync(struct nvme_ns *ns, bool write, uint64_t slba, uint32_t nlb, void *buf);

/* status.c: the one place that judges NVMe status. */
bool nvme_status_is_retry(uint16_t status);
int nvme_status_to_errno(uint16_t status);
const char *nvme_status_str(uint16_t status);

/* "SERIAL" from the 20 space-padded bytes of Identify: trailing spaces and
 * NULs trimmed, inner spaces kept; non-printable bytes become '?'. */
void nvme_trim_string(char *dst, const char *src, size_t srclen);

#endif
