/* State shared between the NVMe layer's own files; not for other layers. */
#ifndef NVD_NVME_PRIV_H
#define NVD_NVME_PRIV_H

#include <stdatomic.h>

#include "nvme/nvme.h"
#include "spec/nvme_spec.h"

#define NVME_MAX_RETRIES 3
/* Namespace Not Ready without a Command Retry Delay: wait this long
 * rather than spin on a namespace that is, say, still formatting. */
#define NVME_NNR_RETRY_DELAY_MS 1000
/* A controller may ask (CRDT) for delays of up to 6553 s; a retry that
 * far off would outlive any command deadline, so it is capped. */
#define NVME_MAX_RETRY_DELAY_MS 10000
/* After an Abort for a command past its deadline, how long the command
 * gets to come back before the controller is reset (Linux waits a whole
 * timeout; a hung command should not cost the client twice that). */
#define NVME_ABORT_GRACE_MS 5000
#define NVME_ADMIN_DEPTH 32
#define NVME_DEFAULT_IO_QUEUES 2
#define NVME_DEFAULT_IO_DEPTH 256
#define NVME_DEFAULT_ADMIN_TIMEOUT_MS 60000
#define NVME_DEFAULT_IO_TIMEOUT_MS 30000
/* Largest transfer per command the driver builds, whatever MDTS allows;
 * it sizes the preallocated PRP list pages of every tracker. */
#define NVME_MAX_XFER (4u << 20)

/* A sync command's waiter: the tracker points here instead of at a req. */
struct nvme_waiter {
	bool done;
	uint16_t status;
	uint32_t dw0;
};

/* One command slot; its index is the command identifier. */
struct nvme_tracker {
	struct nvme_req *req;
	struct nvme_waiter *wait;
	struct nvme_sqe sqe;	/* kept for a retry */
	uint8_t retries;
	bool busy;
	uint64_t retry_at;	/* monotonic ms of a delayed retry; 0: none */
	uint64_t deadline;	/* monotonic ms by which the controller must answer */
	uint64_t sent_ns;	/* monotonic ns of the doorbell that last sent it */
	bool aborted;		/* past its deadline once; an Abort was sent */
	bool expired;		/* past its deadline for good: the reset is due */
	/* Bytes of the request's data this command moves through the bounce
	 * page (list page 0) instead of in place, and where in the request's
	 * segments they start; 0: no bounce. A read copies them out on
	 * success. */
	uint32_t bounce_len;
	unsigned bounce_seg;
	size_t bounce_off;
	/* preallocated list memory (PRP lists, SGL segments, DSM ranges) */
	uint64_t **list_va;
	uint64_t *list_iova;
};

struct nvme_qpair {
	struct nvme_ctrl *ctrl;
	uint16_t qid;
	uint16_t depth;		/* entries in each of the SQ and CQ */
	unsigned vector;
	struct dma_buf sq_mem, cq_mem, list_mem;
	struct nvme_sqe *sq;
	volatile struct nvme_cqe *cq;
	volatile uint32_t *sq_db, *cq_db;
	uint16_t sq_tail, cq_head;
	uint16_t db_tail;	/* the tail the SQ doorbell was last given */
	uint16_t db_head;	/* the head the CQ doorbell was last given */
	/* Shadow doorbells (Doorbell Buffer Config), I/O queues only; NULL:
	 * every doorbell update is an MMIO write. The shadow entries are
	 * ours to write; the EventIdx entries are the controller's, read
	 * only as values to compare (nvme_dbbuf_need_event). */
	volatile uint32_t *sq_shadow, *cq_shadow;
	volatile uint32_t *sq_ei, *cq_ei;
	struct nvme_db_stats dbstats;
	struct nvme_io_stats iostats;
	unsigned plugged;	/* nvme_qpair_plug() depth: doorbell writes wait */
	uint8_t phase;
	struct nvme_tracker *trk;	/* depth - 1 of them: a full SQ keeps one slot empty */
	uint16_t *free_ids;
	unsigned nfree;
	unsigned list_pages;	/* per tracker */
	uint64_t **list_va_all;
	uint64_t *list_iova_all;
	/* Requests waiting for a command slot, in the order of their turns
	 * (nvme_share); the head may be partly issued. */
	struct nvme_req *pend_head, *pend_tail;
	uint64_t round;		/* the turn last taken off the list */
	unsigned inflight;
	unsigned ndelayed;	/* trackers waiting for retry_at */
	unsigned timeout_ms;	/* a command's deadline after it is sent */
	bool issuing;
	bool resetting;		/* controller being reset: issue nothing */
	bool dead;
	/* A polled queue pair: its CQ raises no interrupt (IEN=0); never
	 * handed to other layers. `twin` of an interrupt-driven one is the
	 * polled one its requests go to while the controller polls. */
	bool polled;
	struct nvme_qpair *twin;
	bool polling;		/* requests go to the twin (nvme_qpair_set_polling) */
};

struct nvme_ns {
	struct nvme_ctrl *ctrl;
	struct nvme_ns_info info;
};

struct nvme_ctrl {
	struct vfio_dev *vdev;
	struct nvme_ctrl_info info;
	struct nvme_ctrl_opts opts;
	volatile uint8_t *bar;
	size_t bar_len;
	uint64_t cap;
	uint32_t db_stride;	/* bytes between doorbells */
	unsigned timeout_ms;	/* CAP.TO: how long enabling or disabling may take */
	unsigned admin_timeout_ms;	/* how long one admin command may take */
	unsigned shutdown_ms;	/* RTD3E */
	struct nvme_qpair *admin;
	/* I/O queue pairs: nr_io interrupt-driven ones (the ones other
	 * layers see), then nr_polled polled twins of the first nr_polled;
	 * nr_hw of them in all. */
	struct nvme_qpair **io;
	unsigned nr_io, nr_polled, nr_hw;
	struct nvme_ns *ns;
	unsigned nr_ns;
	struct dma_buf scratch;	/* one page for Set Features data after a reset */
	/* The Shadow Doorbell and EventIdx pages while Doorbell Buffer
	 * Config is wanted; kept until close even after it failed, since a
	 * command that timed out may still be carried out. */
	struct dma_buf dbbuf_dbs, dbbuf_eis;
	bool dbbuf_failed;
	unsigned resets;
	bool failed;
	/* Owners (nvme_share) with requests on any queue pair, the requests
	 * they hold in all, and until when the controller counts as shared
	 * (nvme_share_full); 0: it never was. */
	/* Atomic: owners on different threads (nvme.h "Threads") count
	 * here; a read that is a moment stale costs a turn, nothing else. */
	_Atomic unsigned share_owners;
	_Atomic unsigned share_held;
	_Atomic uint64_t shared_until_ms;
};

uint64_t nvme_now_ms(void);

/* Whether a doorbell moved from `old` to `val` must also be written to the
 * register, given the controller's EventIdx `ei`: when ei lies in [old,
 * val) as 16-bit values wrap (virtio's vring_need_event; Linux's
 * nvme_dbbuf_need_event). For indexes below a queue's depth that is the
 * ring's interval, across its wrap too; any ei is safe to compare. */
static inline bool nvme_dbbuf_need_event(uint16_t ei, uint16_t val, uint16_t old)
{
	return (uint16_t)(val - ei - 1) < (uint16_t)(val - old);
}

/* qpair.c */
int nvme_qpair_create(struct nvme_ctrl *c, uint16_t qid, uint16_t depth, unsigned vector,
		      unsigned list_pages, struct nvme_qpair **out);
void nvme_qpair_destroy(struct nvme_qpair *qp);
/* Resubmits delayed retries whose time has come. Called from
 * nvme_qpair_process and from the controller's periodic check, so a retry
 * goes out even when no completion wakes the queue. */
void nvme_qpair_retry_due(struct nvme_qpair *qp);
/* Deadlines, from the periodic check. Reaps the CQ first (a lost
 * interrupt costs time, not the command); then an I/O command past its
 * deadline gets an Abort on `admin` and NVME_ABORT_GRACE_MS more, and one
 * past that (or any admin command, or one no Abort could be sent for) is
 * marked expired. Returns true when the controller needs a reset. */
bool nvme_qpair_check_deadlines(struct nvme_qpair *qp, struct nvme_qpair *admin, uint64_t now);
/* A controller reset, in two steps around re-creating the queue. Call
 * begin only once the controller can touch nothing it was given (CC.EN=0
 * and CSTS.RDY=0, or bus mastering off): sync waiters end with an abort
 * status, commands that have used their retries fail their requests with
 * `err` (done() may run), the rest stay in their trackers to be sent
 * again; with `keep` false none stays. The queue issues nothing until end, which
 * starts the rings over, sends the kept commands again and then what is
 * pending. begin returns how many commands it kept. */
unsigned nvme_qpair_reset_begin(struct nvme_qpair *qp, bool keep, int err);
void nvme_qpair_reset_end(struct nvme_qpair *qp);
/* Fails every queued and in-flight request with `err` (controller gone).
 * The caller must have made sure the controller no longer touches their
 * memory (disabled, or bus mastering off). */
void nvme_qpair_abort_all(struct nvme_qpair *qp, int err);
/* Shadow doorbells for an I/O queue pair, in the pages given to Doorbell
 * Buffer Config (each `len` bytes): its entries are set to the queue's
 * doorbell values, and from then on a doorbell update goes to the shadow
 * and to the register only when the EventIdx asks for it. -EINVAL for the
 * admin queue (QEMU 7.x copies its register writes into the shadow, for
 * drivers that, like Linux and SPDK, use shadows for I/O queues only),
 * -ERANGE when the queue's entries lie beyond the page. Detach goes back
 * to register writes only. */
int nvme_qpair_dbbuf_attach(struct nvme_qpair *qp, void *dbs, void *eis, size_t len);
void nvme_qpair_dbbuf_detach(struct nvme_qpair *qp);
/* Submits one prepared command (CID filled in here) and waits for it,
 * bounded by timeout_ms. Returns 0, -ETIMEDOUT, -EBUSY, or the status
 * as negative errno; *status and *dw0 are set when it completed. */
int nvme_qpair_exec_sync(struct nvme_qpair *qp, struct nvme_sqe *cmd, unsigned timeout_ms,
			 uint16_t *status, uint32_t *dw0);

static inline uint32_t nvme_reg_read32(const struct nvme_ctrl *c, uint32_t off)
{
	return *(volatile const uint32_t *)(c->bar + off);
}

static inline uint64_t nvme_reg_read64(const struct nvme_ctrl *c, uint32_t off)
{
	/* Two dword reads, low first: some controllers reject 8-byte access. */
	uint64_t lo = nvme_reg_read32(c, off);
	uint64_t hi = nvme_reg_read32(c, off + 4);
	return lo | (hi << 32);
}

static inline void nvme_reg_write32(struct nvme_ctrl *c, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(c->bar + off) = v;
}

static inline void nvme_reg_write64(struct nvme_ctrl *c, uint32_t off, uint64_t v)
{
	nvme_reg_write32(c, off, (uint32_t)v);
	nvme_reg_write32(c, off + 4, (uint32_t)(v >> 32));
}

#endif
