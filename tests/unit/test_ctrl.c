/* ctrl.c and qpair.c against a fake NVMe controller running in a thread
 * of this process: its registers are a heap "BAR", DMA addresses are
 * process addresses (the vfio_* functions are stubbed below, at link
 * time), and it serves the admin and I/O queues it is given the way the
 * spec says, with faults on demand: Controller Fatal Status, commands it
 * swallows, a refusal to become ready again, and reading all ones. What
 * is tested is the recovery: the reset on CFS and on a timeout, and the
 * end of a controller that cannot come back. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "nvme/nvme_priv.h"
#include "util/evloop.h"
#include "util/park.h"

#define PS 4096u
#define BAR_LEN 0x2000u
#define DISK_LBAS 2048u
#define MAXQ 6
#define MAXVEC 4

/* ---- the fake controller ---- */

struct fq {
	bool live;
	struct nvme_sqe *sq;
	volatile struct nvme_cqe *cq;
	uint16_t size, head, tail;
	uint8_t phase;
	bool ien;		/* its CQ raises interrupts */
	uint16_t iv;		/* on this vector */
	unsigned cmds;		/* I/O commands it carried */
};

static struct {
	uint8_t *bar;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool cfs;		/* raise CSTS.CFS and serve nothing */
	atomic_bool no_ready;		/* never set RDY again after a disable */
	atomic_bool gone;		/* every register reads all ones */
	atomic_uint swallow;		/* I/O commands to take and never answer */
	atomic_uint enables, aborts, io_cmds;
	/* Doorbell Buffer Config: offered unless no_dbbuf, refused with
	 * dbbuf_fail, taken and never answered while dbbuf_swallow counts
	 * down. Once configured, I/O SQ tails are read from the shadow page
	 * and the EventIdx is set to the tail reached, as QEMU does; a reset
	 * forgets it. */
	atomic_bool no_dbbuf, dbbuf_fail;
	atomic_uint dbbuf_configs, dbbuf_swallow;
	atomic_uint admin_delay_ms;	/* the next admin command waits this long */
	unsigned grant;		/* I/O queues Number of Queues grants; 0: 2 */
	/* Create I/O CQs without interrupts (IEN=0, polled twins) are
	 * counted from 0 in ien0_creates; the one numbered n is refused
	 * (Invalid Field) when bit n of refuse_ien0 is set. */
	unsigned refuse_ien0, ien0_creates;
	volatile uint32_t *dbs, *eis;
	struct fq q[MAXQ];
	uint8_t disk[DISK_LBAS * 512];
	/* Interrupts: nvec vectors (0: 1; MAXVEC at most) in mode irq_mode
	 * (0: MSI-X), an eventfd each, signalled by completions on the CQs
	 * created with IEN on that vector; irq_fd is vector 0's, the admin
	 * queue's. */
	unsigned nvec;
	enum vfio_irq_mode irq_mode;
	int vec_fd[MAXVEC];
	int irq_fd;
	bool ready;
} dev;

static volatile uint32_t *reg(uint32_t off)
{
	return (volatile uint32_t *)(dev.bar + off);
}

static uint64_t reg64(uint32_t off)
{
	return *reg(off) | ((uint64_t)*reg(off + 4) << 32);
}

static void post(unsigned qid, uint16_t cid, uint16_t status, uint32_t dw0)
{
	struct fq *q = &dev.q[qid];
	volatile struct nvme_cqe *e = &q->cq[q->tail];
	uint64_t one = 1;

	e->dw0 = dw0;
	e->sqhd = dev.q[qid].head;
	e->sqid = (uint16_t)qid;
	e->cid = cid;
	atomic_thread_fence(memory_order_release);
	e->status = (uint16_t)(status << 1) | q->phase;
	if (++q->tail == q->size) {
		q->tail = 0;
		q->phase ^= 1;
	}
	if ((qid == 0 || q->ien) && q->iv < MAXVEC && write(dev.vec_fd[q->iv], &one, sizeof(one)) < 0) {
		/* the eventfd counter cannot overflow here */
	}
}

static void xfer(const struct nvme_sqe *sqe, size_t pos, size_t len, bool to_mem)
{
	uint64_t e = sqe->dptr.prp.prp1;
	size_t pages = ((e & (PS - 1)) + len + PS - 1) / PS;
	const uint64_t *list = (const uint64_t *)(uintptr_t)sqe->dptr.prp.prp2;

	for (size_t p = 0; p < pages; p++) {
		size_t n = PS - (e & (PS - 1));
		if (n > len)
			n = len;
		if (to_mem)
			memcpy((void *)(uintptr_t)e, dev.disk + pos, n);
		else
			memcpy(dev.disk + pos, (void *)(uintptr_t)e, n);
		pos += n;
		len -= n;
		if (p + 1 < pages)
			e = pages == 2 ? sqe->dptr.prp.prp2 : list[p];
	}
}

static void admin_cmd(const struct nvme_sqe *c)
{
	void *buf = (void *)(uintptr_t)c->dptr.prp.prp1;
	uint16_t st = 0;
	uint32_t dw0 = 0;
	unsigned qid = c->cdw10 & 0xffff;

	switch (c->opc) {
	case NVME_ADM_IDENTIFY:
		memset(buf, 0, NVME_IDENTIFY_SIZE);
		if (c->cdw10 == NVME_ID_CNS_CTRL) {
			struct nvme_id_ctrl *id = buf;
			memset(id->sn, ' ', sizeof(id->sn));
			memcpy(id->sn, "FAKE", 4);
			memset(id->mn, ' ', sizeof(id->mn));
			memset(id->fr, ' ', sizeof(id->fr));
			id->mdts = 5;
			id->sqes = 0x66;
			id->cqes = 0x44;
			id->nn = 1;
			if (!atomic_load(&dev.no_dbbuf))
				id->oacs = NVME_OACS_DBBUF;
		} else if (c->cdw10 == NVME_ID_CNS_NS_ACTIVE_LIST) {
			((uint32_t *)buf)[0] = c->nsid < 1 ? 1 : 0;
		} else if (c->cdw10 == NVME_ID_CNS_NS && c->nsid == 1) {
			struct nvme_id_ns *id = buf;
			id->nsze = id->ncap = DISK_LBAS;
			id->lbaf[0].lbads = 9;
		} else {
			st = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		}
		break;
	case NVME_ADM_SET_FEATURES:
		if ((c->cdw10 & 0xff) == NVME_FEAT_NUM_QUEUES) {
			unsigned g = dev.grant ? dev.grant : 2;

			dw0 = (g - 1) | ((g - 1) << 16);	/* 0-based */
		}
		break;
	case NVME_ADM_CREATE_CQ:
		if (qid == 0 || qid >= MAXQ) {
			st = NVME_STATUS(NVME_SCT_CMD_SPECIFIC, 0x01);
			break;
		}
		if (!(c->cdw11 & NVME_CREATE_CQ_IEN) && dev.ien0_creates++ < 32 &&
		    ((dev.refuse_ien0 >> (dev.ien0_creates - 1)) & 1)) {
			st = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			break;
		}
		dev.q[qid].cq = (volatile struct nvme_cqe *)(uintptr_t)c->dptr.prp.prp1;
		dev.q[qid].size = (uint16_t)((c->cdw10 >> 16) + 1);
		dev.q[qid].tail = 0;
		dev.q[qid].phase = 1;
		dev.q[qid].ien = (c->cdw11 & NVME_CREATE_CQ_IEN) != 0;
		dev.q[qid].iv = (uint16_t)(c->cdw11 >> NVME_CREATE_CQ_IV_SHIFT);
		break;
	case NVME_ADM_CREATE_SQ:
		if (qid == 0 || qid >= MAXQ || !dev.q[qid].cq) {
			st = NVME_STATUS(NVME_SCT_CMD_SPECIFIC, 0x01);
			break;
		}
		dev.q[qid].sq = (struct nvme_sqe *)(uintptr_t)c->dptr.prp.prp1;
		dev.q[qid].head = 0;
		dev.q[qid].live = true;
		break;
	case NVME_ADM_DELETE_SQ:
		if (qid < MAXQ)
			dev.q[qid].live = false;
		break;
	case NVME_ADM_DELETE_CQ:
		if (qid < MAXQ)
			dev.q[qid].cq = NULL;
		break;
	case NVME_ADM_DBBUF_CONFIG:
		atomic_fetch_add(&dev.dbbuf_configs, 1);
		if (atomic_load(&dev.dbbuf_swallow)) {
			atomic_fetch_sub(&dev.dbbuf_swallow, 1);
			return;
		}
		if (atomic_load(&dev.no_dbbuf) || atomic_load(&dev.dbbuf_fail) ||
		    (c->dptr.prp.prp1 & (PS - 1)) || (c->dptr.prp.prp2 & (PS - 1))) {
			st = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			break;
		}
		dev.dbs = (volatile uint32_t *)(uintptr_t)c->dptr.prp.prp1;
		dev.eis = (volatile uint32_t *)(uintptr_t)c->dptr.prp.prp2;
		break;
	case NVME_ADM_ABORT:
		atomic_fetch_add(&dev.aborts, 1);
		dw0 = 1;	/* not aborted, as QEMU answers */
		break;
	default:
		st = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_OPCODE);
	}
	post(0, c->cid, st, dw0);
}

static void io_cmd(unsigned qid, const struct nvme_sqe *c)
{
	uint64_t slba = c->cdw10 | ((uint64_t)c->cdw11 << 32);
	uint32_t nlb = (c->cdw12 & 0xffff) + 1;
	uint16_t st = 0;

	atomic_fetch_add(&dev.io_cmds, 1);
	dev.q[qid].cmds++;
	if (atomic_load(&dev.swallow)) {
		atomic_fetch_sub(&dev.swallow, 1);
		return;
	}
	if ((c->opc == NVME_CMD_READ || c->opc == NVME_CMD_WRITE) && slba + nlb <= DISK_LBAS)
		xfer(c, slba * 512, (size_t)nlb * 512, c->opc == NVME_CMD_READ);
	else if (c->opc != NVME_CMD_FLUSH)
		st = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_LBA_RANGE);
	post(qid, c->cid, st, 0);
}

/* A controller reset forgets the queues and their doorbells (3.7.2). */
static void dev_reset(void)
{
	memset(dev.q, 0, sizeof(dev.q));
	memset(dev.bar + NVME_REG_DBS, 0, BAR_LEN - NVME_REG_DBS);
	dev.dbs = dev.eis = NULL;
	dev.ready = false;
}

static void *dev_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&dev.stop)) {
		uint32_t cc = *reg(NVME_REG_CC);

		if (atomic_load(&dev.gone)) {
			memset(dev.bar, 0xff, BAR_LEN);
			usleep(200);
			continue;
		}
		if (!(cc & NVME_CC_EN)) {
			if (dev.ready || (*reg(NVME_REG_CSTS) & NVME_CSTS_CFS)) {
				dev_reset();
				atomic_store(&dev.cfs, false);
			}
			*reg(NVME_REG_CSTS) = 0;
		} else if (!dev.ready && !atomic_load(&dev.no_ready)) {
			uint32_t aqa = *reg(NVME_REG_AQA);

			dev.q[0].sq = (struct nvme_sqe *)(uintptr_t)reg64(NVME_REG_ASQ);
			dev.q[0].cq = (volatile struct nvme_cqe *)(uintptr_t)reg64(NVME_REG_ACQ);
			dev.q[0].size = (uint16_t)((aqa & 0xfff) + 1);
			dev.q[0].phase = 1;
			dev.q[0].live = true;
			dev.ready = true;
			atomic_fetch_add(&dev.enables, 1);
			*reg(NVME_REG_CSTS) = NVME_CSTS_RDY;
		}
		if (dev.ready && ((cc >> NVME_CC_SHN_SHIFT) & NVME_CC_SHN_MASK))
			*reg(NVME_REG_CSTS) |= NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT;
		if (atomic_load(&dev.cfs)) {
			*reg(NVME_REG_CSTS) |= NVME_CSTS_CFS;
		} else if (dev.ready) {
			for (unsigned qid = 0; qid < MAXQ; qid++) {
				struct fq *q = &dev.q[qid];
				uint16_t tail;

				if (!q->live)
					continue;
				/* stride 4: SQ y's tail at 8y, in the registers
				 * from DBS and in the shadow page alike */
				if (qid && dev.dbs)
					tail = (uint16_t)dev.dbs[2 * qid];
				else
					tail = (uint16_t)*reg(NVME_REG_DBS + 8 * qid);
				while (q->head != tail && tail < q->size) {
					struct nvme_sqe c = q->sq[q->head];

					if (++q->head == q->size)
						q->head = 0;
					if (qid == 0) {
						unsigned d = atomic_exchange(&dev.admin_delay_ms, 0);

						if (d)
							usleep(d * 1000);
						admin_cmd(&c);
					}
					else
						io_cmd(qid, &c);
				}
				if (qid && dev.eis)
					dev.eis[2 * qid] = q->head;
			}
		}
		usleep(100);
	}
	return NULL;
}

static void dev_start(void)
{
	memset(&dev, 0, sizeof(dev));
	dev.bar = aligned_alloc(PS, BAR_LEN);
	memset(dev.bar, 0, BAR_LEN);
	/* CAP: MQES 255, TO 2 (1 s), DSTRD 0, CSS NVM, MPSMIN 0 */
	*reg(NVME_REG_CAP) = 255 | (2u << 24);
	*reg(NVME_REG_CAP + 4) = (uint32_t)(NVME_CAP_CSS_NVM << (NVME_CAP_CSS_SHIFT - 32));
	*reg(NVME_REG_VS) = NVME_VS(1, 4);
	for (unsigned v = 0; v < MAXVEC; v++)
		dev.vec_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	dev.irq_fd = dev.vec_fd[0];
	pthread_create(&dev.thread, NULL, dev_main, NULL);
}

static void dev_stop(void)
{
	atomic_store(&dev.stop, true);
	pthread_join(dev.thread, NULL);
	for (unsigned v = 0; v < MAXVEC; v++)
		close(dev.vec_fd[v]);
	free(dev.bar);
}

/* ---- link-time stubs for the platform layer ---- */

struct vfio_dev {
	int unused;
};
static struct vfio_dev the_vdev;
static unsigned bm_off, released;
static atomic_uint irq_fd_calls;	/* service_vector asks once a call */

int vfio_open(const char *bdf, struct vfio_dev **out)
{
	(void)bdf;
	*out = &the_vdev;
	return 0;
}
void vfio_close(struct vfio_dev *d) { (void)d; }
int vfio_map_bar(struct vfio_dev *d, unsigned bar, volatile void **addr, size_t *len)
{
	(void)d;
	(void)bar;
	*addr = dev.bar;
	*len = BAR_LEN;
	return 0;
}
int vfio_enable_bus_master(struct vfio_dev *d) { (void)d; return 0; }
int vfio_disable_bus_master(struct vfio_dev *d) { (void)d; bm_off++; return 0; }
const char *vfio_irq_mode_name(enum vfio_irq_mode m)
{
	return m == VFIO_IRQ_MSIX ? "MSI-X" : m == VFIO_IRQ_MSI ? "MSI" : m == VFIO_IRQ_INTX ? "INTx" : "none";
}
int vfio_irq_enable(struct vfio_dev *d, unsigned allowed, unsigned want, enum vfio_irq_mode *mode,
		    unsigned *nvec)
{
	(void)d;
	(void)allowed;
	(void)want;
	*mode = dev.irq_mode ? dev.irq_mode : VFIO_IRQ_MSIX;
	*nvec = dev.nvec ? dev.nvec : 1;
	return 0;
}
void vfio_irq_disable(struct vfio_dev *d) { (void)d; }
int vfio_irq_fd(const struct vfio_dev *d, unsigned vec)
{
	(void)d;
	atomic_fetch_add(&irq_fd_calls, 1);
	return vec < (dev.nvec ? dev.nvec : 1) ? dev.vec_fd[vec] : -1;
}
int vfio_irq_unmask(struct vfio_dev *d) { (void)d; return 0; }
int vfio_req_enable(struct vfio_dev *d) { (void)d; return -ENOTSUP; }
int vfio_req_fd(const struct vfio_dev *d) { (void)d; return -1; }
void vfio_release(struct vfio_dev *d) { (void)d; released++; }

/* ---- tests ---- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Waits (1 s at most) until the fake shows `bits` in CSTS: its thread
 * may be slow to notice a fault switched on, on a loaded machine. */
static void await_csts(uint32_t bits)
{
	for (unsigned i = 0; i < 1000 && (*reg(NVME_REG_CSTS) & bits) != bits; i++)
		sleep_ms(1);
	CHECK_EQ_INT(*reg(NVME_REG_CSTS) & bits, bits);
}

struct rec {
	unsigned calls;
	int result;
};

static void on_done(struct nvme_req *r)
{
	struct rec *x = r->priv;

	x->calls++;
	x->result = r->result;
}

/* Runs the controller's vectors and periodic check until `x` is done or
 * `ms` pass; the check runs every `check_ms`, as the daemon's timer. */
static void drive(struct nvme_ctrl *c, struct rec *x, unsigned ms, unsigned check_ms)
{
	uint64_t end = nvme_now_ms() + ms, next = nvme_now_ms() + check_ms;

	while (!x->calls && nvme_now_ms() < end) {
		nvme_ctrl_service_vector(c, 0);
		if (nvme_now_ms() >= next) {
			nvme_ctrl_check(c);
			next = nvme_now_ms() + check_ms;
		}
		sleep_ms(1);
	}
}

static struct nvme_ctrl *open_ctrl_opts(unsigned io_timeout_ms, bool no_shadow_db)
{
	struct nvme_ctrl_opts o = { .io_queues = 2, .io_queue_depth = 16, .io_timeout_ms = io_timeout_ms,
				    .admin_timeout_ms = 2000, .no_shadow_db = no_shadow_db };
	struct nvme_ctrl *c = NULL;

	CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", &o, &c), 0);
	return c;
}

static struct nvme_ctrl *open_ctrl(unsigned io_timeout_ms)
{
	return open_ctrl_opts(io_timeout_ms, false);
}

static void rw_req(struct nvme_req *r, struct nvme_ctrl *c, uint8_t opc, uint64_t lba, struct nvme_seg *s,
		   struct rec *x)
{
	memset(r, 0, sizeof(*r));
	memset(x, 0, sizeof(*x));
	r->opc = opc;
	r->ns = nvme_ctrl_ns(c, 0);
	r->slba = lba;
	r->nlb = 8;
	r->segs = s;
	r->nseg = 1;
	r->done = on_done;
	r->priv = x;
}

/* Bring-up against the fake, and a round trip through the disk. */
static void test_open_and_io(void)
{
	struct nvme_ctrl *c;
	uint8_t buf[4096], back[4096];

	dev_start();
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 2);
	CHECK_EQ_INT(nvme_ctrl_ns_count(c), 1);
	CHECK_EQ_INT(nvme_ns_info(nvme_ctrl_ns(c, 0))->nlba, DISK_LBAS);
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	CHECK_EQ_INT(nvme_ns_rw_sync(nvme_ctrl_ns(c, 0), true, 16, 8, buf), 0);
	CHECK_EQ_INT(nvme_ns_rw_sync(nvme_ctrl_ns(c, 0), false, 16, 8, back), 0);
	CHECK(memcmp(buf, back, sizeof(buf)) == 0);
	CHECK_EQ_INT(nvme_ctrl_check(c), 0);
	nvme_ctrl_close(c);
	dev_stop();
}

/* Controller Fatal Status with a command outstanding: the check resets
 * the controller (it is disabled, then enabled again), the command goes
 * out again on the re-created queue and completes once, successfully. */
static void test_cfs_reset(void)
{
	struct nvme_ctrl *c;
	struct dma_buf b;
	struct nvme_seg s;
	struct nvme_req r;
	struct rec x;

	dev_start();
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	vfio_dma_alloc(NULL, 4096, &b);
	s.iova = b.iova;
	s.len = 4096;
	memset(dev.disk + 40 * 512, 0x5a, 4096);
	atomic_store(&dev.cfs, true);
	await_csts(NVME_CSTS_CFS);
	rw_req(&r, c, NVME_CMD_READ, 40, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r), 0);
	sleep_ms(5);
	CHECK_EQ_INT(x.calls, 0);
	CHECK_EQ_INT(atomic_load(&dev.enables), 1);
	CHECK_EQ_INT(nvme_ctrl_info(c)->shadow_db, true);
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 1);
	CHECK_EQ_INT(nvme_ctrl_check(c), 0);
	CHECK_EQ_INT(atomic_load(&dev.enables), 2);
	/* the reset forgot the buffers: configured again, the queues from 0 */
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 2);
	CHECK_EQ_INT(nvme_ctrl_info(c)->shadow_db, true);
	drive(c, &x, 2000, 1000);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, 0);
	CHECK_EQ_INT(((uint8_t *)b.va)[100], 0x5a);
	CHECK(!nvme_ctrl_is_failed(c));
	/* I/O goes on on both queues */
	rw_req(&r, c, NVME_CMD_WRITE, 48, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 1), &r), 0);
	drive(c, &x, 2000, 1000);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, 0);
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();
}

/* A command the controller takes and never answers: the check aborts it
 * past its deadline, resets the controller past the grace, and the
 * command, sent again, completes once. */
static void test_timeout_reset(void)
{
	struct nvme_ctrl *c;
	struct dma_buf b;
	struct nvme_seg s;
	struct nvme_req r;
	struct rec x;

	dev_start();
	c = open_ctrl(200);
	if (!c) {
		dev_stop();
		return;
	}
	vfio_dma_alloc(NULL, 4096, &b);
	s.iova = b.iova;
	s.len = 4096;
	atomic_store(&dev.swallow, 1);
	rw_req(&r, c, NVME_CMD_WRITE, 8, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r), 0);
	drive(c, &x, 3000, 50);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, 0);
	CHECK_EQ_INT(atomic_load(&dev.aborts), 1);
	CHECK_EQ_INT(atomic_load(&dev.enables), 2);
	CHECK_EQ_INT(atomic_load(&dev.io_cmds), 2);
	CHECK(!nvme_ctrl_is_failed(c));
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();
}

/* A controller that does not come back from the reset: it is cut off the
 * bus, every request on every queue fails once with -EIO, new ones are
 * refused, and the check keeps saying -EIO. */
static void test_unrecoverable(void)
{
	struct nvme_ctrl *c;
	struct dma_buf b;
	struct nvme_seg s[2];
	struct nvme_req r[2];
	struct rec x[2];

	dev_start();
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	bm_off = 0;
	vfio_dma_alloc(NULL, 8192, &b);
	s[0].iova = b.iova;
	s[1].iova = b.iova + 4096;
	s[0].len = s[1].len = 4096;
	atomic_store(&dev.no_ready, true);
	atomic_store(&dev.cfs, true);
	await_csts(NVME_CSTS_CFS);
	for (unsigned i = 0; i < 2; i++) {
		rw_req(&r[i], c, NVME_CMD_READ, 8 * i, &s[i], &x[i]);
		CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, i), &r[i]), 0);
	}
	CHECK_EQ_INT(nvme_ctrl_check(c), -EIO);
	for (unsigned i = 0; i < 2; i++) {
		CHECK_EQ_INT(x[i].calls, 1);
		CHECK_EQ_INT(x[i].result, -EIO);
	}
	CHECK(nvme_ctrl_is_failed(c));
	CHECK_EQ_INT(bm_off, 1);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r[0]), -ENODEV);
	CHECK_EQ_INT(nvme_ctrl_check(c), -EIO);
	CHECK_EQ_INT(x[0].calls, 1);
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();
}

/* A controller gone from the bus (all ones): failed at once, no reset. */
static void test_gone(void)
{
	struct nvme_ctrl *c;
	struct dma_buf b;
	struct nvme_seg s;
	struct nvme_req r;
	struct rec x;

	dev_start();
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	vfio_dma_alloc(NULL, 4096, &b);
	s.iova = b.iova;
	s.len = 4096;
	atomic_store(&dev.swallow, 1);
	rw_req(&r, c, NVME_CMD_READ, 0, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 1), &r), 0);
	sleep_ms(5);
	atomic_store(&dev.gone, true);
	await_csts(0xffffffffu);
	CHECK_EQ_INT(nvme_ctrl_check(c), -EIO);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, -EIO);
	CHECK_EQ_INT(atomic_load(&dev.enables), 1);
	CHECK(nvme_ctrl_is_failed(c));
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();
}

/* Sums the doorbell counts of the controller's I/O queues. */
static struct nvme_db_stats ctrl_db_stats(struct nvme_ctrl *c)
{
	struct nvme_db_stats sum = { 0 };

	for (unsigned i = 0; i < nvme_ctrl_nr_qpairs(c); i++) {
		struct nvme_db_stats st;

		nvme_qpair_db_stats(nvme_ctrl_qpair(c, i), &st);
		sum.sq_mmio += st.sq_mmio;
		sum.sq_shadow_only += st.sq_shadow_only;
		sum.cq_mmio += st.cq_mmio;
		sum.cq_shadow_only += st.cq_shadow_only;
	}
	return sum;
}

static void rw_round_trip(struct nvme_ctrl *c, uint64_t lba)
{
	uint8_t buf[4096], back[4096];

	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 3 + lba);
	CHECK_EQ_INT(nvme_ns_rw_sync(nvme_ctrl_ns(c, 0), true, lba, 8, buf), 0);
	CHECK_EQ_INT(nvme_ns_rw_sync(nvme_ctrl_ns(c, 0), false, lba, 8, back), 0);
	CHECK(memcmp(buf, back, sizeof(buf)) == 0);
}

/* Offered, shadow doorbells are configured once the I/O queues exist,
 * used by the I/O queues (the fake reads their tails from the shadow
 * page only) and not by the admin queue. */
static void test_shadow_doorbells(void)
{
	struct nvme_ctrl *c;
	struct nvme_db_stats st;

	dev_start();
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	CHECK(nvme_ctrl_info(c)->shadow_db_supported);
	CHECK(nvme_ctrl_info(c)->shadow_db);
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 1);
	CHECK(c->io[0]->sq_shadow != NULL && c->io[1]->sq_shadow != NULL);
	CHECK(c->admin->sq_shadow == NULL);
	rw_round_trip(c, 64);
	st = ctrl_db_stats(c);
	CHECK_EQ_INT(st.sq_mmio + st.sq_shadow_only, 2);
	CHECK_EQ_INT(c->io[0]->sq_shadow[0], 2);
	nvme_ctrl_close(c);
	dev_stop();
}

/* --no-shadow-doorbells: never configured, register writes only. */
static void test_shadow_doorbells_off(void)
{
	struct nvme_ctrl *c;
	struct nvme_db_stats st;

	dev_start();
	c = open_ctrl_opts(0, true);
	if (!c) {
		dev_stop();
		return;
	}
	CHECK(nvme_ctrl_info(c)->shadow_db_supported);
	CHECK(!nvme_ctrl_info(c)->shadow_db);
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 0);
	CHECK(c->io[0]->sq_shadow == NULL);
	rw_round_trip(c, 72);
	st = ctrl_db_stats(c);
	CHECK_EQ_INT(st.sq_mmio, 2);
	CHECK_EQ_INT(st.sq_shadow_only, 0);
	nvme_ctrl_close(c);
	dev_stop();
}

/* A controller that refuses Doorbell Buffer Config: bring-up goes on with
 * register writes (the fake, unconfigured, reads only the registers, so
 * I/O works only if they are written), and a reset does not ask again. */
static void test_shadow_config_fails(void)
{
	struct nvme_ctrl *c;
	struct dma_buf b;
	struct nvme_seg s;
	struct nvme_req r;
	struct rec x;

	dev_start();
	atomic_store(&dev.dbbuf_fail, true);
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	CHECK(nvme_ctrl_info(c)->shadow_db_supported);
	CHECK(!nvme_ctrl_info(c)->shadow_db);
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 1);
	CHECK(c->io[0]->sq_shadow == NULL && c->io[1]->sq_shadow == NULL);
	rw_round_trip(c, 80);
	vfio_dma_alloc(NULL, 4096, &b);
	s.iova = b.iova;
	s.len = 4096;
	atomic_store(&dev.cfs, true);
	await_csts(NVME_CSTS_CFS);
	CHECK_EQ_INT(nvme_ctrl_check(c), 0);
	CHECK_EQ_INT(atomic_load(&dev.enables), 2);
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 1);
	rw_req(&r, c, NVME_CMD_READ, 80, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 1), &r), 0);
	drive(c, &x, 2000, 1000);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, 0);
	CHECK_EQ_INT(((uint8_t *)b.va)[5], (uint8_t)(5 * 3 + 80));
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();
}

/* A Doorbell Buffer Config that is never answered: the controller may
 * still carry it out late and then read its doorbells from pages nobody
 * writes, so it is not used, as after any admin command that timed out.
 * At bring-up nvme_ctrl_open fails (and frees all it made: ASan); at a
 * reset the controller is failed, its requests end with -EIO. */
static void test_shadow_config_timeout(void)
{
	struct nvme_ctrl_opts o = { .io_queues = 2, .io_queue_depth = 16, .admin_timeout_ms = 500 };
	struct nvme_ctrl *c = NULL;
	struct dma_buf b;
	struct nvme_seg s;
	struct nvme_req r;
	struct rec x;

	dev_start();
	atomic_store(&dev.dbbuf_swallow, 1);
	CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", &o, &c), -ETIMEDOUT);
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 1);
	if (c)
		nvme_ctrl_close(c);	/* the old code went on with it */
	dev_stop();

	dev_start();
	c = NULL;
	CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", &o, &c), 0);
	if (!c) {
		dev_stop();
		return;
	}
	CHECK(nvme_ctrl_info(c)->shadow_db);
	vfio_dma_alloc(NULL, 4096, &b);
	s.iova = b.iova;
	s.len = 4096;
	atomic_store(&dev.dbbuf_swallow, 1);
	atomic_store(&dev.cfs, true);
	await_csts(NVME_CSTS_CFS);
	rw_req(&r, c, NVME_CMD_READ, 8, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r), 0);
	CHECK_EQ_INT(nvme_ctrl_check(c), -EIO);
	CHECK_EQ_INT(atomic_load(&dev.enables), 2);
	CHECK_EQ_INT(atomic_load(&dev.dbbuf_configs), 2);
	CHECK(nvme_ctrl_is_failed(c));
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, -EIO);
	if (!x.calls)
		drive(c, &x, 2000, 1000);	/* the old code: let the read land first */
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();
}

/* The synchronous admin wait poll()s the admin vector's eventfd, which
 * is level-triggered, while an MSI-X vector is watched edge-triggered and
 * never read by nvme_ctrl_service_vector. The interrupts of I/O completed
 * before leave the counter above 0; unless the wait drains it, its poll()
 * returns at once, again and again, and the wait spins on the CPU
 * servicing the vector until the command ends. Here an Identify the
 * controller answers after 300 ms must be waited for with a few wake-ups
 * (every 100 ms, and the interrupt), and leaves the eventfd drained. */
static void test_sync_wait_drains_vector(void)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_IDENTIFY, .cdw10 = NVME_ID_CNS_CTRL };
	struct pollfd pfd = { .events = POLLIN };
	struct nvme_ctrl *c;
	struct dma_buf b;
	struct nvme_seg s;
	struct nvme_req r;
	struct rec x;
	unsigned calls;

	dev_start();
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	CHECK(nvme_ctrl_vector_edge(c, 0));
	vfio_dma_alloc(NULL, 4096, &b);
	s.iova = b.iova;
	s.len = 4096;
	/* I/O served as the daemon serves it: the vector's interrupt is
	 * serviced, its eventfd not read. */
	rw_req(&r, c, NVME_CMD_READ, 0, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r), 0);
	drive(c, &x, 2000, 1000);
	CHECK_EQ_INT(x.calls, 1);
	pfd.fd = dev.irq_fd;
	CHECK_EQ_INT(poll(&pfd, 1, 0), 1);	/* left above 0 */

	memset(b.va, 0, 4096);
	cmd.dptr.prp.prp1 = b.iova;
	atomic_store(&dev.admin_delay_ms, 300);
	atomic_store(&irq_fd_calls, 0);
	CHECK_EQ_INT(nvme_qpair_exec_sync(c->admin, &cmd, 2000, NULL, NULL), 0);
	calls = atomic_load(&irq_fd_calls);
	if (calls > 10)
		printf("sync_wait_drains_vector: the vector serviced %u times in one wait\n", calls);
	CHECK(calls <= 10);
	CHECK(memcmp(((struct nvme_id_ctrl *)b.va)->sn, "FAKE", 4) == 0);
	CHECK_EQ_INT(poll(&pfd, 1, 0), 0);	/* drained */
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();
}

/* Polls the controller, as the daemon's poller does, until x is done. */
static void poll_until(struct nvme_ctrl *c, struct rec *x, unsigned ms)
{
	uint64_t end = nvme_now_ms() + ms;

	while (!x->calls && nvme_now_ms() < end) {
		nvme_ctrl_poll(c);
		sleep_ms(1);
	}
}

/* A fake that grants `grant` I/O queues, a controller opened on it with
 * opts o, and one 4 KiB buffer b as segment s; NULL if it did not open
 * (the fake is running either way: dev_stop() ends it). */
static struct nvme_ctrl *open_granted(const struct nvme_ctrl_opts *o, unsigned grant,
				      struct dma_buf *b, struct nvme_seg *s)
{
	struct nvme_ctrl *c = NULL;

	dev_start();
	dev.grant = grant;
	CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", o, &c), 0);
	if (c) {
		vfio_dma_alloc(NULL, 4096, b);
		s->iova = b->iova;
		s->len = 4096;
	}
	return c;
}

/* Polled twins (issue 11): each I/O queue pair gets one whose CQ raises
 * no interrupt; while the controller is polled, requests go there and
 * complete by polling alone; otherwise to the interrupt-driven queue. A
 * reset re-creates the twins without interrupts and sends their commands
 * again. A controller that grants no more queues gets no twins. */
static void test_polled_queues(void)
{
	struct nvme_ctrl_opts o = { .io_queues = 2, .io_queue_depth = 16, .admin_timeout_ms = 2000,
				    .polled_queues = true };
	struct nvme_ctrl *c = NULL;
	struct dma_buf b;
	struct nvme_seg s;
	struct nvme_req r;
	struct rec x;
	uint64_t cnt;

	c = open_granted(&o, 4, &b, &s);
	if (!c) {
		dev_stop();
		return;
	}
	CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 2);
	CHECK_EQ_INT(nvme_ctrl_info(c)->nr_polled_queues, 2);
	CHECK(dev.q[1].ien && dev.q[2].ien);
	CHECK(!dev.q[3].ien && !dev.q[4].ien);

	/* not polled: queue 1, with an interrupt */
	rw_req(&r, c, NVME_CMD_READ, 8, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r), 0);
	drive(c, &x, 2000, 1000);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(dev.q[1].cmds, 1);
	CHECK_EQ_INT(dev.q[3].cmds, 0);

	/* polled: queue 3 (the twin of queue pair 0), no interrupt, found
	 * by nvme_ctrl_poll; busy until then */
	while (read(dev.irq_fd, &cnt, sizeof(cnt)) > 0)
		;
	nvme_ctrl_set_polling(c, true);
	memset(dev.disk + 24 * 512, 0x6b, 4096);
	rw_req(&r, c, NVME_CMD_READ, 24, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r), 0);
	CHECK(nvme_ctrl_polled_busy(c));
	poll_until(c, &x, 2000);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, 0);
	CHECK_EQ_INT(((uint8_t *)b.va)[7], 0x6b);
	CHECK_EQ_INT(dev.q[3].cmds, 1);
	CHECK_EQ_INT(dev.q[1].cmds, 1);
	CHECK(!nvme_ctrl_polled_busy(c));
	CHECK(read(dev.irq_fd, &cnt, sizeof(cnt)) < 0);	/* no interrupt came */

	/* a reset with a command on the twin: sent again there, completes */
	atomic_store(&dev.cfs, true);
	await_csts(NVME_CSTS_CFS);
	rw_req(&r, c, NVME_CMD_READ, 24, &s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 1), &r), 0);
	CHECK(nvme_ctrl_polled_busy(c));
	CHECK_EQ_INT(nvme_ctrl_check(c), 0);
	CHECK_EQ_INT(atomic_load(&dev.enables), 2);
	CHECK(dev.q[1].ien && !dev.q[3].ien && !dev.q[4].ien);
	poll_until(c, &x, 2000);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, 0);
	CHECK_EQ_INT(dev.q[4].cmds, 1);
	CHECK(!nvme_ctrl_polled_busy(c));
	nvme_ctrl_set_polling(c, false);
	vfio_dma_free(NULL, &b);
	nvme_ctrl_close(c);
	dev_stop();

	/* An owner whose requests wait for a slot on queue pair 0 (full:
	 * the controller takes its 15 commands and answers none) keeps
	 * them there once polling starts: its next request joins them on
	 * the same list, in turn, not the twin's. */
	c = open_granted(&o, 4, &b, &s);
	if (c) {
		struct nvme_share sh = { 0 };
		struct nvme_req rq[17];
		struct rec rx[17];

		atomic_store(&dev.swallow, 15);
		for (int i = 0; i < 16; i++) {
			rw_req(&rq[i], c, NVME_CMD_READ, 8, &s, &rx[i]);
			rq[i].share = &sh;
			CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &rq[i]), 0);
		}
		CHECK_EQ_INT(sh.waiting, 1);
		nvme_ctrl_set_polling(c, true);
		rw_req(&rq[16], c, NVME_CMD_READ, 8, &s, &rx[16]);
		rq[16].share = &sh;
		CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &rq[16]), 0);
		CHECK_EQ_INT(sh.waiting, 2);
		CHECK(!nvme_ctrl_polled_busy(c));	/* nothing went to the twin */
		for (int i = 0; i < 50 && dev.q[3].cmds == 0; i++)
			sleep_ms(1);
		CHECK_EQ_INT(dev.q[3].cmds, 0);
		nvme_ctrl_set_polling(c, false);
		nvme_ctrl_close(c);	/* ends all 17 */
		for (int i = 0; i < 17; i++)
			CHECK_EQ_INT(rx[i].calls, 1);
		vfio_dma_free(NULL, &b);
	}
	dev_stop();

	/* three granted: one twin, for queue pair 0 only */
	c = open_granted(&o, 3, &b, &s);
	if (c) {
		CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 2);
		CHECK_EQ_INT(nvme_ctrl_info(c)->nr_polled_queues, 1);
		CHECK(!dev.q[3].ien);
		nvme_ctrl_set_polling(c, true);
		rw_req(&r, c, NVME_CMD_READ, 8, &s, &x);
		CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 1), &r), 0);
		CHECK(!nvme_ctrl_polled_busy(c));
		drive(c, &x, 2000, 1000);
		CHECK_EQ_INT(x.calls, 1);
		CHECK_EQ_INT(dev.q[2].cmds, 1);
		rw_req(&r, c, NVME_CMD_READ, 8, &s, &x);
		CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, 0), &r), 0);
		CHECK(nvme_ctrl_polled_busy(c));
		poll_until(c, &x, 2000);
		CHECK_EQ_INT(x.calls, 1);
		CHECK_EQ_INT(dev.q[3].cmds, 1);
		vfio_dma_free(NULL, &b);
		nvme_ctrl_close(c);
	}
	dev_stop();

	/* two queues granted: no twins, polling changes nothing */
	dev_start();
	c = NULL;
	CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", &o, &c), 0);
	if (c) {
		CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 2);
		CHECK_EQ_INT(nvme_ctrl_info(c)->nr_polled_queues, 0);
		nvme_ctrl_close(c);
	}
	dev_stop();
}

/* Reads 8 LBAs at `lba` through queue pair k with the controller polled,
 * reaped by nvme_ctrl_poll, and says which of the fake's queues carried
 * it: the twin (qid 3 + k) or the queue pair's own (qid 1 + k), or 0. */
static unsigned polled_read(struct nvme_ctrl *c, unsigned k, uint64_t lba, struct dma_buf *b,
			    struct nvme_seg *s)
{
	unsigned own = dev.q[1 + k].cmds, twin = dev.q[3 + k].cmds;
	struct nvme_req r;
	struct rec x;

	memset(dev.disk + lba * 512, (int)(0x30 + lba), 4096);
	memset(b->va, 0, 4096);
	rw_req(&r, c, NVME_CMD_READ, lba, s, &x);
	CHECK_EQ_INT(nvme_submit(nvme_ctrl_qpair(c, k), &r), 0);
	poll_until(c, &x, 2000);
	CHECK_EQ_INT(x.calls, 1);
	CHECK_EQ_INT(x.result, 0);
	CHECK_EQ_INT(((uint8_t *)b->va)[4095], (uint8_t)(0x30 + lba));
	if (dev.q[3 + k].cmds == twin + 1 && dev.q[1 + k].cmds == own)
		return 3 + k;
	if (dev.q[1 + k].cmds == own + 1 && dev.q[3 + k].cmds == twin)
		return 1 + k;
	return 0;
}

/* What the code under test logs (to stderr), caught in a file. */
struct caught {
	int saved;
	FILE *f;
	char text[4096];
};

static void catch_begin(struct caught *k)
{
	fflush(stderr);
	k->saved = dup(STDERR_FILENO);
	k->f = k->saved >= 0 ? tmpfile() : NULL;
	if (k->f)
		dup2(fileno(k->f), STDERR_FILENO);
	else
		printf("catch_begin: cannot catch stderr: %s\n", strerror(errno));
}

static const char *catch_end(struct caught *k)
{
	size_t n = 0;

	fflush(stderr);
	if (k->saved >= 0) {
		dup2(k->saved, STDERR_FILENO);
		close(k->saved);
	}
	if (k->f) {
		rewind(k->f);
		n = fread(k->text, 1, sizeof(k->text) - 1, k->f);
		fclose(k->f);
	}
	k->text[n] = 0;
	fputs(k->text, stderr);	/* still in the test's log */
	return k->text;
}

/* Polled twins the controller refuses (it fails a Create I/O CQ with
 * IEN=0): they are an optimisation, skipped at open, not fatal. Four
 * queues granted for two queue pairs; the fake refuses the twin of queue
 * pair 1, of queue pair 0, or both. The controller opens, counts the
 * twins the fake accepted, and while polled each queue pair's reads go to
 * its twin where it has one and to itself where the twin was refused,
 * completing by nvme_ctrl_poll alone; a refused twin does not stop the
 * next one; the refusal is a warning, not an error line. A reset
 * re-creates only the queues made. */
static void test_polled_twin_refused(void)
{
	/* refuse_ien0 bits: the Nth Create CQ with IEN=0, qid 3 first */
	static const unsigned refuse[] = { 1u << 1, 1u << 0, 3u };
	struct nvme_ctrl_opts o = { .io_queues = 2, .io_queue_depth = 16, .admin_timeout_ms = 2000,
				    .polled_queues = true };

	for (unsigned t = 0; t < sizeof(refuse) / sizeof(refuse[0]); t++) {
		struct nvme_ctrl *c = NULL;
		struct dma_buf b;
		struct nvme_seg s;
		unsigned accepted = 0;

		struct caught cap;
		const char *said;

		dev_start();
		dev.grant = 4;
		dev.refuse_ien0 = refuse[t];
		catch_begin(&cap);
		CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", &o, &c), 0);
		said = catch_end(&cap);
		/* an optimisation refused: a warning, no error line */
		CHECK(strstr(said, "warning: 0000:00:04.0: polled queue") != NULL);
		CHECK(strstr(said, ": error: ") == NULL);
		if (!c) {
			printf("polled_twin_refused: refusing %#x: did not open\n", refuse[t]);
			dev_stop();
			continue;
		}
		vfio_dma_alloc(NULL, 4096, &b);
		s.iova = b.iova;
		s.len = 4096;
		CHECK(dev.ien0_creates >= 1);
		CHECK(dev.q[1].live && dev.q[1].ien && dev.q[2].live && dev.q[2].ien);
		for (unsigned qid = 3; qid <= 4; qid++)
			accepted += dev.q[qid].live && !dev.q[qid].ien;
		CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 2);
		CHECK_EQ_INT(nvme_ctrl_info(c)->nr_io_queues, 2);
		CHECK_EQ_INT(nvme_ctrl_info(c)->nr_polled_queues, accepted);
		/* one twin refused, the other made, whichever comes first */
		if (refuse[t] != 3u)
			CHECK_EQ_INT(accepted, 1);
		nvme_ctrl_set_polling(c, true);
		for (unsigned k = 0; k < 2; k++) {
			bool twin = dev.q[3 + k].live && !dev.q[3 + k].ien;

			if (refuse[t] & (1u << k))
				CHECK(!twin);
			CHECK_EQ_INT(polled_read(c, k, 8 + 8 * k, &b, &s), twin ? 3 + k : 1 + k);
			CHECK_EQ_INT(nvme_qpair_polled_busy(nvme_ctrl_qpair(c, k)), false);
		}
		CHECK(!nvme_ctrl_polled_busy(c));
		if (t < 2) {
			/* a reset: the queues made again, the refused twin not
			 * asked for (t 0: 1-3, 4 refused; t 1: 1, 2 and 4, 3
			 * refused, the twin after a refused one) */
			unsigned made = t == 0 ? 3 : 4, gone = t == 0 ? 4 : 3;

			atomic_store(&dev.cfs, true);
			await_csts(NVME_CSTS_CFS);
			CHECK_EQ_INT(nvme_ctrl_check(c), 0);
			CHECK_EQ_INT(atomic_load(&dev.enables), 2);
			CHECK(!nvme_ctrl_is_failed(c));
			CHECK(dev.q[made].live && !dev.q[made].ien && !dev.q[gone].live);
			CHECK_EQ_INT(polled_read(c, 0, 32, &b, &s), t == 0 ? 3 : 1);
			CHECK_EQ_INT(polled_read(c, 1, 40, &b, &s), t == 0 ? 2 : 4);
		}
		nvme_ctrl_set_polling(c, false);
		vfio_dma_free(NULL, &b);
		nvme_ctrl_close(c);
		dev_stop();
	}

	/* A twin made at open and refused after a reset: the controller is
	 * failed (its commands had been kept for the twin), and the error
	 * says which queue did not come back. */
	{
		struct nvme_ctrl *c = NULL;
		struct caught cap;
		const char *said;
		int rc;

		dev_start();
		dev.grant = 4;
		CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", &o, &c), 0);
		if (c) {
			CHECK_EQ_INT(nvme_ctrl_info(c)->nr_polled_queues, 2);
			dev.refuse_ien0 = 1u << 2;	/* the first IEN=0 create after open */
			atomic_store(&dev.cfs, true);
			await_csts(NVME_CSTS_CFS);
			catch_begin(&cap);
			rc = nvme_ctrl_check(c);
			said = catch_end(&cap);
			CHECK_EQ_INT(rc, -EIO);
			CHECK(nvme_ctrl_is_failed(c));
			CHECK(strstr(said, "did not come back after a reset (polled queue 3: ") != NULL);
			nvme_ctrl_close(c);
		}
		dev_stop();
	}
}

/* ---- interrupt vectors of their own (nvme_qpair_vector_fd) ---- */

static void drain_vectors(void)
{
	uint64_t cnt;

	for (unsigned v = 0; v < MAXVEC; v++)
		while (read(dev.vec_fd[v], &cnt, sizeof(cnt)) > 0)
			;
}

static bool fd_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* A fake with nvec vectors in mode m that grants `grant` I/O queues (0:
 * 2), and a controller opened on it for `queues` I/O queue pairs; NULL if
 * it did not open (the fake is running either way). */
static struct nvme_ctrl *open_vectors(unsigned nvec, enum vfio_irq_mode m, unsigned grant, unsigned queues,
				      bool polled)
{
	struct nvme_ctrl_opts o = { .io_queues = queues, .io_queue_depth = 16, .admin_timeout_ms = 2000,
				    .polled_queues = polled };
	struct nvme_ctrl *c = NULL;

	dev_start();
	dev.nvec = nvec;
	dev.irq_mode = m;
	dev.grant = grant;
	CHECK_EQ_INT(nvme_ctrl_open("0000:00:04.0", &o, &c), 0);
	return c;
}

/* Each queue pair's fd is its own vector's eventfd, and the vectors of
 * the queue pairs differ from each other and from the admin queue's. */
static void check_own_vectors(struct nvme_ctrl *c)
{
	int fd[2];

	CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 2);
	for (unsigned k = 0; k < 2; k++) {
		const struct nvme_qpair *qp = nvme_ctrl_qpair(c, k);
		unsigned v = nvme_qpair_vector(qp);

		fd[k] = nvme_qpair_vector_fd(qp);
		CHECK(v > 0 && v < dev.nvec);
		CHECK_EQ_INT(dev.q[1 + k].iv, v);	/* its CQ interrupts there */
		CHECK(fd[k] >= 0);
		CHECK_EQ_INT(fd[k], v < MAXVEC ? dev.vec_fd[v] : -2);
		CHECK_EQ_INT(fd[k], nvme_ctrl_vector_fd(c, v));
		CHECK(fd[k] != dev.irq_fd);
		CHECK(fd[k] != nvme_ctrl_vector_fd(c, 0));
	}
	CHECK(nvme_qpair_vector(nvme_ctrl_qpair(c, 0)) != nvme_qpair_vector(nvme_ctrl_qpair(c, 1)));
	CHECK(fd[0] != fd[1]);
}

/* nvme_qpair_vector_fd (nvme.h "Threads"): a queue pair may leave the
 * control thread only with an MSI-X vector of its own. With one vector
 * every queue pair shares the admin queue's, alone or with another: -1. With three and two I/O
 * queue pairs each has its own fd, also when polled twins (no interrupt,
 * same vector) are made. MSI and INTx: -1, whatever the vectors. And a
 * completion signals its queue pair's fd alone and is reaped by
 * nvme_qpair_poll on that queue pair, not the other. */
static void test_qpair_vector_fd(void)
{
	struct nvme_ctrl *c;
	struct dma_buf b[2];
	struct nvme_seg s[2];
	struct nvme_req r[2];
	struct rec x[2];

	/* one vector: shared with the admin queue */
	for (unsigned queues = 1; queues <= 2; queues++) {
		c = open_vectors(1, VFIO_IRQ_MSIX, 0, queues, false);
		if (c) {
			CHECK_EQ_INT(nvme_ctrl_info(c)->nvec, 1);
			CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), queues);
			for (unsigned k = 0; k < queues; k++) {
				CHECK_EQ_INT(nvme_qpair_vector(nvme_ctrl_qpair(c, k)), 0);
				CHECK_EQ_INT(nvme_qpair_vector_fd(nvme_ctrl_qpair(c, k)), -1);
			}
			nvme_ctrl_close(c);
		}
		dev_stop();
	}

	/* three vectors, two I/O queue pairs: one each */
	c = open_vectors(3, VFIO_IRQ_MSIX, 0, 2, false);
	if (c) {
		check_own_vectors(c);
		for (unsigned k = 0; k < 2; k++) {
			vfio_dma_alloc(NULL, 4096, &b[k]);
			s[k].iova = b[k].iova;
			s[k].len = 4096;
		}
		/* a read on queue pair k: its fd fires, no other; the other
		 * queue pair's poll leaves it, its own reaps it */
		for (unsigned k = 0; k < 2; k++) {
			struct nvme_qpair *qp = nvme_ctrl_qpair(c, k), *other = nvme_ctrl_qpair(c, 1 - k);
			int fd = nvme_qpair_vector_fd(qp);

			drain_vectors();
			memset(dev.disk + (64 + 8 * k) * 512, 0x41 + (int)k, 4096);
			rw_req(&r[k], c, NVME_CMD_READ, 64 + 8 * k, &s[k], &x[k]);
			CHECK_EQ_INT(nvme_submit(qp, &r[k]), 0);
			CHECK(fd_readable(fd, 2000));
			CHECK(!fd_readable(nvme_qpair_vector_fd(other), 0));
			CHECK(!fd_readable(dev.irq_fd, 0));
			CHECK_EQ_INT(x[k].calls, 0);
			CHECK_EQ_INT(nvme_qpair_poll(other), 0);
			CHECK_EQ_INT(x[k].calls, 0);
			CHECK_EQ_INT(nvme_qpair_poll(qp), 1);
			CHECK_EQ_INT(x[k].calls, 1);
			CHECK_EQ_INT(x[k].result, 0);
			CHECK_EQ_INT(((uint8_t *)b[k].va)[0], 0x41 + k);
			CHECK_EQ_INT(dev.q[1 + k].cmds, 1);
		}
		for (unsigned k = 0; k < 2; k++)
			vfio_dma_free(NULL, &b[k]);
		nvme_ctrl_close(c);
	}
	dev_stop();

	/* with polled twins, on the same vectors without interrupts: the
	 * interrupt-driven queue pairs keep their fds */
	c = open_vectors(3, VFIO_IRQ_MSIX, 4, 2, true);
	if (c) {
		CHECK_EQ_INT(nvme_ctrl_info(c)->nr_polled_queues, 2);
		CHECK(!dev.q[3].ien && !dev.q[4].ien);
		CHECK(dev.q[3].iv == dev.q[1].iv && dev.q[4].iv == dev.q[2].iv);
		check_own_vectors(c);
		nvme_ctrl_close(c);
	}
	dev_stop();

	/* MSI (vectors in powers of two): one I/O queue pair, alone on
	 * vector 1, but only MSI-X vectors are handed out */
	c = open_vectors(2, VFIO_IRQ_MSI, 0, 2, false);
	if (c) {
		CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 1);
		CHECK_EQ_INT(nvme_qpair_vector(nvme_ctrl_qpair(c, 0)), 1);
		CHECK(nvme_ctrl_vector_fd(c, 1) >= 0);
		CHECK_EQ_INT(nvme_qpair_vector_fd(nvme_ctrl_qpair(c, 0)), -1);
		nvme_ctrl_close(c);
	}
	dev_stop();

	/* INTx: the one line */
	c = open_vectors(1, VFIO_IRQ_INTX, 0, 2, false);
	if (c) {
		CHECK_EQ_INT(nvme_ctrl_nr_qpairs(c), 2);
		for (unsigned k = 0; k < 2; k++)
			CHECK_EQ_INT(nvme_qpair_vector_fd(nvme_ctrl_qpair(c, k)), -1);
		nvme_ctrl_close(c);
	}
	dev_stop();
}

/* ---- queue pairs owned by data threads (nvme.h "Threads") ---- */

#define OWNERS 2
#define OWNER_REQS 4

struct owner_io {
	struct nvme_req r;
	struct nvme_seg s;
	struct dma_buf b;
	struct owner *o;
	unsigned next;		/* which of the owner's blocks it reads next */
};

struct owner {
	struct nvme_ctrl *c;
	struct nvme_qpair *qp;
	unsigned idx;
	struct evloop *l;
	struct evloop_poller poller;
	struct park park;
	pthread_t tid;
	atomic_bool stop;
	struct owner_io io[OWNER_REQS];
	/* owned: touched by the owner, or by the main thread while parked */
	unsigned long sent, done, bad, failed;
};

static uint8_t owner_byte(uint64_t lba, unsigned off)
{
	return (uint8_t)(lba * 13 + off / 64);
}

static void owner_send(struct owner_io *io);

static void owner_done(struct nvme_req *r)
{
	struct owner_io *io = r->priv;
	struct owner *o = io->o;
	const uint8_t *d = io->b.va;

	o->done++;
	if (r->result)
		o->failed++;
	else
		for (unsigned off = 0; off < 4096; off += 64)
			if (d[off] != owner_byte(r->slba + off / 512, off % 512))
				o->bad++;
	if (!atomic_load(&o->stop))
		owner_send(io);
}

static void owner_send(struct owner_io *io)
{
	struct owner *o = io->o;

	memset(io->b.va, 0, 4096);
	memset(&io->r, 0, sizeof(io->r));
	io->r.opc = NVME_CMD_READ;
	io->r.ns = nvme_ctrl_ns(o->c, 0);
	/* Each owner reads its own half of the disk, 8 LBAs at a time. */
	io->r.slba = (uint64_t)o->idx * (DISK_LBAS / OWNERS) + (io->next++ % (DISK_LBAS / OWNERS / 8)) * 8;
	io->r.nlb = 8;
	io->r.segs = &io->s;
	io->r.nseg = 1;
	io->r.done = owner_done;
	io->r.priv = io;
	if (nvme_submit(o->qp, &io->r) == 0)
		o->sent++;
	else
		o->failed++;
}

static bool owner_poll(void *arg)
{
	return nvme_qpair_poll(((struct owner *)arg)->qp) > 0;
}

static bool owner_notify(void *arg, bool on)
{
	(void)arg;
	(void)on;
	return false;
}

static bool owner_pending(void *arg)
{
	return nvme_qpair_busy(((struct owner *)arg)->qp) > 0;
}

static void *owner_main(void *arg)
{
	struct owner *o = arg;

	for (unsigned i = 0; i < OWNER_REQS; i++)
		owner_send(&o->io[i]);
	/* The pending hook makes the loop look every millisecond. */
	while (o->done < o->sent || !atomic_load(&o->stop))
		evloop_once(o->l, 100);
	park_leave(&o->park);
	return NULL;
}

/* Two threads each own an I/O queue pair and keep reads going on it; the
 * main thread runs the periodic check with both parked, as nvme-drv-perf's
 * main thread does. Controller Fatal Status comes six times: each reset
 * (on the main thread, the owners parked) re-creates both queues and
 * sends again what was in flight, and the owners go on. Every read ends
 * once, with the right bytes, none fails, and the shadow doorbells are
 * configured again each time (without the parking an owner's doorbell
 * write in the middle of a reset made the fake refuse them). */
static void test_owner_threads(void)
{
	struct nvme_ctrl *c;
	struct owner o[OWNERS];
	unsigned long before[OWNERS];

	dev_start();
	c = open_ctrl(0);
	if (!c) {
		dev_stop();
		return;
	}
	for (unsigned lba = 0; lba < DISK_LBAS; lba++)
		for (unsigned off = 0; off < 512; off++)
			dev.disk[lba * 512 + off] = owner_byte(lba, off);
	for (unsigned t = 0; t < OWNERS; t++) {
		o[t] = (struct owner){ .c = c, .qp = nvme_ctrl_qpair(c, t), .idx = t };
		CHECK_EQ_INT(evloop_new(&o[t].l), 0);
		CHECK_EQ_INT(park_init(&o[t].park), 0);
		CHECK_EQ_INT(park_watch(&o[t].park, o[t].l), 0);
		o[t].poller = (struct evloop_poller){ .poll = owner_poll, .notify = owner_notify,
						      .pending = owner_pending, .arg = &o[t] };
		evloop_poller_add(o[t].l, &o[t].poller);
		for (unsigned i = 0; i < OWNER_REQS; i++) {
			vfio_dma_alloc(NULL, 4096, &o[t].io[i].b);
			o[t].io[i].s = (struct nvme_seg){ .iova = o[t].io[i].b.iova, .len = 4096 };
			o[t].io[i].o = &o[t];
			o[t].io[i].next = i;
		}
	}
	for (unsigned t = 0; t < OWNERS; t++)
		CHECK_EQ_INT(pthread_create(&o[t].tid, NULL, owner_main, &o[t]), 0);
	for (unsigned round = 0; round < 60; round++) {
		sleep_ms(5);
		if (round % 10 == 5)
			atomic_store(&dev.cfs, true);
		for (unsigned t = 0; t < OWNERS; t++)
			park_hold(&o[t].park);
		if (round % 10 == 5) {
			await_csts(NVME_CSTS_CFS);
			for (unsigned t = 0; t < OWNERS; t++)
				before[t] = o[t].done;
		}
		CHECK_EQ_INT(nvme_ctrl_check(c), 0);
		for (unsigned t = 0; t < OWNERS; t++)
			park_release(&o[t].park);
	}
	for (unsigned t = 0; t < OWNERS; t++) {
		atomic_store(&o[t].stop, true);
		pthread_join(o[t].tid, NULL);
	}
	CHECK_EQ_INT(atomic_load(&dev.enables), 7);
	CHECK(!nvme_ctrl_is_failed(c));
	/* An owner's doorbell write in the middle of a reset made the
	 * controller refuse the shadow doorbells' configuration. */
	CHECK(nvme_ctrl_info(c)->shadow_db);
	for (unsigned t = 0; t < OWNERS; t++) {
		printf("owner_threads: owner %u: %lu reads, %lu after the last reset\n", t, o[t].done,
		       o[t].done - before[t]);
		CHECK(o[t].done - before[t] > 10);
		CHECK_EQ_INT(o[t].done, o[t].sent);
		CHECK_EQ_INT(o[t].bad, 0);
		CHECK_EQ_INT(o[t].failed, 0);
		CHECK(o[t].park.parks >= 50);
		for (unsigned i = 0; i < OWNER_REQS; i++)
			vfio_dma_free(NULL, &o[t].io[i].b);
		park_destroy(&o[t].park);
		evloop_free(o[t].l);
	}
	nvme_ctrl_close(c);
	dev_stop();
}

int main(void)
{
	test_open_and_io();
	test_cfs_reset();
	test_timeout_reset();
	test_unrecoverable();
	test_gone();
	test_shadow_doorbells();
	test_shadow_doorbells_off();
	test_shadow_config_fails();
	test_shadow_config_timeout();
	test_sync_wait_drains_vector();
	test_polled_queues();
	test_polled_twin_refused();
	test_qpair_vector_fd();
	test_owner_threads();
	return check_report("test_ctrl");
}
