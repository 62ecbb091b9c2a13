/* qpair.c against a fake controller in this process: BAR memory is a heap
 * buffer, DMA addresses are process addresses (the vfio_* functions
 * qpair.c needs are stubbed below, at link time), and the fake fetches
 * SQEs up to the tail doorbell, moves data by walking PRPs on its own
 * (an independent reading of 4.1.1), and posts CQEs when the test says. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "nvme/nvme_priv.h"

#define PS 4096u

/* ---- link-time stubs for the platform and the rest of the NVMe layer ---- */

int nvme_ctrl_vector_fd(const struct nvme_ctrl *c, unsigned vec)
{
	(void)c;
	(void)vec;
	return -1;
}

void nvme_ctrl_service_vector(struct nvme_ctrl *c, unsigned vec)
{
	(void)c;
	(void)vec;
}

bool nvme_ctrl_vector_edge(const struct nvme_ctrl *c, unsigned vec)
{
	(void)c;
	(void)vec;
	return false;
}

/* ---- the fake controller ---- */

#define DISK_BYTES (1u << 20)
#define MAX_HELD 64

struct fake {
	struct nvme_ctrl c;
	struct nvme_ns ns;
	struct nvme_qpair *qp;
	uint8_t *bar;
	uint8_t disk[DISK_BYTES];
	uint16_t sq_head, cq_tail;
	uint8_t phase;
	/* fetched, not yet completed: CID and the status to post */
	struct { uint16_t cid; uint16_t status; } held[MAX_HELD];
	unsigned nheld;
	unsigned fetched;		/* commands seen, retries included */
	unsigned reads, writes;
	uint64_t bad_lba;		/* a command covering it fails ... */
	uint16_t bad_status;		/* ... with this status (0: none) */
	unsigned bad_times;		/* ... this many times (0: always) */
	/* every Write Zeroes / DSM command seen: opcode, NLB or range count,
	 * CDW12; the DSM ranges in order */
	struct { uint8_t opc; uint32_t n; uint32_t cdw12; } cmds[64];
	unsigned ncmds;
	struct nvme_dsm_range ranges[256];
	unsigned nranges;
	/* shadow doorbells (fake_shadow): the fake takes the SQ tail from the
	 * Shadow Doorbell page, as QEMU does once they are configured */
	struct dma_buf dbs, eis;
	bool shadow;
};

static struct fake *fk;

/* Copies `len` bytes between the disk at `pos` and the PRP-described
 * memory: PRP1 may carry an offset; PRP2 is the second page or, when more
 * than two pages are touched, a list whose last slot chains onward. */
static int prp_xfer(struct fake *f, const struct nvme_sqe *sqe, size_t pos, size_t len, bool to_mem)
{
	uint64_t e = sqe->dptr.prp.prp1;
	size_t pages = ((e & (PS - 1)) + len + PS - 1) / PS;
	const uint64_t *list = NULL;
	unsigned slot = 0;

	if (e & 3)
		return -1;
	for (size_t p = 0; p < pages; p++) {
		size_t n = PS - (e & (PS - 1));
		if (n > len)
			n = len;
		if (p > 0 && (e & (PS - 1)))
			return -1;
		if (to_mem)
			memcpy((void *)(uintptr_t)e, f->disk + pos, n);
		else
			memcpy(f->disk + pos, (void *)(uintptr_t)e, n);
		pos += n;
		len -= n;
		if (p + 1 == pages)
			break;
		if (pages == 2) {
			e = sqe->dptr.prp.prp2;
			continue;
		}
		if (!list)
			list = (const uint64_t *)(uintptr_t)sqe->dptr.prp.prp2;
		if (slot == PS / 8 - 1 && p + 2 < pages) {
			list = (const uint64_t *)(uintptr_t)list[slot];
			slot = 0;
		}
		e = list[slot++];
	}
	return 0;
}

/* Takes every SQE up to the tail doorbell and executes it; the completion
 * waits in `held` until fake_post. */
/* Queue 1's entries in the shadow doorbell pages, at stride 4: SQ 1 tail
 * at byte 8, CQ 1 head at byte 12 (as its registers at DBS + 8, + 12). */
static volatile uint32_t *shadow_at(struct dma_buf *b, unsigned off)
{
	return (volatile uint32_t *)((uint8_t *)b->va + off);
}

static void fake_fetch(struct fake *f)
{
	uint16_t tail = (uint16_t)(f->shadow ? *shadow_at(&f->dbs, 8) : *f->qp->sq_db);

	while (f->sq_head != tail) {
		const struct nvme_sqe *sqe = &f->qp->sq[f->sq_head];
		uint64_t slba = sqe->cdw10 | ((uint64_t)sqe->cdw11 << 32);
		uint32_t nlb = (sqe->cdw12 & NVME_RW_NLB_MASK) + 1;
		uint32_t lbs = f->ns.info.lba_size;
		uint16_t st = 0;

		if (++f->sq_head == f->qp->depth)
			f->sq_head = 0;
		f->fetched++;
		if ((sqe->opc == NVME_CMD_DSM || sqe->opc == NVME_CMD_WRITE_ZEROES) && f->ncmds < 64) {
			uint32_t n = sqe->opc == NVME_CMD_DSM ? (sqe->cdw10 & NVME_DSM_NR_MASK) + 1 : nlb;

			f->cmds[f->ncmds].opc = sqe->opc;
			f->cmds[f->ncmds].n = n;
			f->cmds[f->ncmds].cdw12 = sqe->cdw12;
			f->ncmds++;
			if (sqe->opc == NVME_CMD_DSM) {
				const struct nvme_dsm_range *rg = (const void *)(uintptr_t)sqe->dptr.prp.prp1;

				CHECK_EQ_INT(sqe->cdw11, NVME_DSM_AD);
				for (uint32_t i = 0; i < n && f->nranges < 256; i++)
					f->ranges[f->nranges++] = rg[i];
			}
			CHECK(f->nheld < MAX_HELD);
			f->held[f->nheld].cid = sqe->cid;
			f->held[f->nheld].status = 0;
			f->nheld++;
			continue;
		}
		if ((sqe->opc == NVME_CMD_READ || sqe->opc == NVME_CMD_WRITE) &&
		    (slba + nlb) * lbs > DISK_BYTES) {
			st = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_LBA_RANGE);
		} else if (f->bad_status && sqe->opc != NVME_CMD_FLUSH && slba <= f->bad_lba &&
			   f->bad_lba < slba + nlb) {
			st = f->bad_status;
			if (f->bad_times && !--f->bad_times)
				f->bad_status = 0;
		} else if (sqe->opc == NVME_CMD_READ || sqe->opc == NVME_CMD_WRITE) {
			if (prp_xfer(f, sqe, slba * lbs, (size_t)nlb * lbs, sqe->opc == NVME_CMD_READ))
				st = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			if (sqe->opc == NVME_CMD_READ)
				f->reads++;
			else
				f->writes++;
		}
		CHECK(f->nheld < MAX_HELD);
		f->held[f->nheld].cid = sqe->cid;
		f->held[f->nheld].status = st;
		f->nheld++;
	}
}

/* Posts the first `n` held completions (all of them for n == 0). */
static void fake_post(struct fake *f, unsigned n)
{
	if (!n || n > f->nheld)
		n = f->nheld;
	for (unsigned i = 0; i < n; i++) {
		volatile struct nvme_cqe *e = &f->qp->cq[f->cq_tail];

		e->cid = f->held[i].cid;
		e->sqid = f->qp->qid;
		e->sqhd = f->sq_head;
		e->dw0 = 0;
		e->status = (uint16_t)(f->held[i].status << 1) | f->phase;
		if (++f->cq_tail == f->qp->depth) {
			f->cq_tail = 0;
			f->phase ^= 1;
		}
	}
	memmove(f->held, f->held + n, (f->nheld - n) * sizeof(f->held[0]));
	f->nheld -= n;
}

/* Runs the controller and the driver until nothing is left to do. */
static void fake_run(struct fake *f)
{
	for (unsigned guard = 0; guard < 10000; guard++) {
		fake_fetch(f);
		if (!f->nheld)
			return;
		fake_post(f, 0);
		nvme_qpair_process(f->qp);
	}
	CHECK(!"fake_run did not settle");
}

static struct fake *fake_new_timeout(uint32_t lba_size, uint16_t depth, uint32_t max_xfer,
				     unsigned io_timeout_ms)
{
	struct fake *f = calloc(1, sizeof(*f));
	unsigned list_pages = 3;

	f->c.opts.io_timeout_ms = io_timeout_ms;
	f->c.opts.admin_timeout_ms = io_timeout_ms;
	f->bar = calloc(1, 0x2000);
	f->c.bar = f->bar;
	f->c.bar_len = 0x2000;
	f->c.db_stride = 4;
	f->c.info.page_size = PS;
	f->c.info.max_xfer = max_xfer;
	snprintf(f->c.info.bdf, sizeof(f->c.info.bdf), "fake");
	f->ns.ctrl = &f->c;
	f->ns.info.nsid = 1;
	f->ns.info.lba_size = lba_size;
	f->ns.info.nlba = DISK_BYTES / lba_size;
	f->ns.info.usable = true;
	snprintf(f->ns.info.name, sizeof(f->ns.info.name), "FAKE:n1");
	f->phase = 1;
	CHECK_EQ_INT(nvme_qpair_create(&f->c, 1, depth, 0, list_pages, &f->qp), 0);
	fk = f;
	return f;
}

static struct fake *fake_new(uint32_t lba_size, uint16_t depth, uint32_t max_xfer)
{
	return fake_new_timeout(lba_size, depth, max_xfer, 0);
}

/* What a controller reset does to the fake's side: CC.EN = 0 forgets
 * every command and starts the rings over. */
static void fake_disable(struct fake *f)
{
	f->sq_head = 0;
	f->cq_tail = 0;
	f->phase = 1;
	f->nheld = 0;
}

/* Doorbell Buffer Config, as ctrl.c does it once the queue exists. */
static void fake_shadow(struct fake *f)
{
	CHECK_EQ_INT(vfio_dma_alloc(NULL, PS, &f->dbs), 0);
	CHECK_EQ_INT(vfio_dma_alloc(NULL, PS, &f->eis), 0);
	CHECK_EQ_INT(nvme_qpair_dbbuf_attach(f->qp, f->dbs.va, f->eis.va, PS), 0);
	f->shadow = true;
}

static void fake_free(struct fake *f)
{
	if (f->shadow) {
		vfio_dma_free(NULL, &f->dbs);
		vfio_dma_free(NULL, &f->eis);
	}
	nvme_qpair_destroy(f->qp);
	free(f->bar);
	free(f);
	fk = NULL;
}

/* ---- requests ---- */

struct done_rec {
	unsigned calls;
	int result;
};

static void on_done(struct nvme_req *r)
{
	struct done_rec *d = r->priv;

	d->calls++;
	d->result = r->result;
}

static void req_init(struct nvme_req *r, struct fake *f, uint8_t opc, uint64_t slba, uint64_t nlb,
		     const struct nvme_seg *segs, unsigned nseg, struct done_rec *rec)
{
	memset(r, 0, sizeof(*r));
	memset(rec, 0, sizeof(*rec));
	r->opc = opc;
	r->ns = &f->ns;
	r->slba = slba;
	r->nlb = nlb;
	r->segs = segs;
	r->nseg = nseg;
	r->done = on_done;
	r->priv = rec;
}

static uint8_t *page_buf(size_t pages)
{
	uint8_t *b = aligned_alloc(PS, pages * PS);

	memset(b, 0, pages * PS);
	return b;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* issue 8, item 1: 512-byte iovecs at odd offsets of different pages on a
 * PRP-only controller. Every one is its own PRP run, so the request is
 * split into one command per piece; the bytes land where they belong. */
static void test_prp_split_odd_iovecs(void)
{
	struct fake *f = fake_new(512, 64, 4u << 20);
	uint8_t *mem = page_buf(16), *back = page_buf(16), *want = malloc(8 * 512);
	struct nvme_seg w[8], rd[8];
	struct nvme_req r;
	struct done_rec rec;

	fill(want, 8 * 512, 1);
	for (unsigned i = 0; i < 8; i++) {
		w[i].iova = (uintptr_t)(mem + i * 2 * PS + 512 * (1 + i % 7));
		w[i].len = 512;
		memcpy((void *)(uintptr_t)w[i].iova, want + i * 512, 512);
		/* read back through a different odd layout */
		rd[i].iova = (uintptr_t)(back + (15 - i) * PS + 512 * (7 - i % 7));
		rd[i].len = 512;
	}
	req_init(&r, f, NVME_CMD_WRITE, 100, 8, w, 8, &rec);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(rec.calls, 1);
	CHECK_EQ_INT(rec.result, 0);
	CHECK_EQ_INT(f->writes, 8);
	CHECK(memcmp(f->disk + 100 * 512, want, 8 * 512) == 0);

	req_init(&r, f, NVME_CMD_READ, 100, 8, rd, 8, &rec);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(rec.calls, 1);
	CHECK_EQ_INT(rec.result, 0);
	CHECK_EQ_INT(f->reads, 8);
	for (unsigned i = 0; i < 8; i++)
		CHECK(memcmp((void *)(uintptr_t)rd[i].iova, want + i * 512, 512) == 0);

	/* pieces that join into runs: a tail, whole pages, a head: one command */
	{
		struct nvme_seg s[3] = {
			{ (uintptr_t)(mem + PS - 1024), 1024 },
			{ (uintptr_t)(mem + 4 * PS), 2 * PS },
			{ (uintptr_t)(mem + 8 * PS), 1024 },
		};
		unsigned before = f->writes;

		req_init(&r, f, NVME_CMD_WRITE, 0, (1024 + 2 * PS + 1024) / 512, s, 3, &rec);
		CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
		fake_run(f);
		CHECK_EQ_INT(rec.result, 0);
		CHECK_EQ_INT(f->writes - before, 1);
	}
	free(want);
	free(back);
	free(mem);
	fake_free(f);
}

/* A block no PRP can describe: 4 KiB blocks made of 512-byte pieces in
 * different pages, and pieces not dword aligned. They go through the
 * bounce page; reads are copied out on completion. */
static void test_prp_bounce(void)
{
	struct fake *f = fake_new(4096, 64, 4u << 20);
	uint8_t *mem = page_buf(32), *want = malloc(2 * 4096);
	struct nvme_seg s[16];
	struct nvme_req r;
	struct done_rec rec;

	fill(want, 2 * 4096, 2);
	for (unsigned i = 0; i < 16; i++) {
		s[i].iova = (uintptr_t)(mem + i * 2 * PS + 512 * (i % 8));
		s[i].len = 512;
		memcpy((void *)(uintptr_t)s[i].iova, want + i * 512, 512);
	}
	req_init(&r, f, NVME_CMD_WRITE, 3, 2, s, 16, &rec);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(rec.calls, 1);
	CHECK_EQ_INT(rec.result, 0);
	CHECK_EQ_INT(f->writes, 2);
	CHECK(memcmp(f->disk + 3 * 4096, want, 2 * 4096) == 0);

	for (unsigned i = 0; i < 16; i++)
		memset((void *)(uintptr_t)s[i].iova, 0xee, 512);
	req_init(&r, f, NVME_CMD_READ, 3, 2, s, 16, &rec);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(rec.calls, 1);
	CHECK_EQ_INT(rec.result, 0);
	for (unsigned i = 0; i < 16; i++)
		CHECK(memcmp((void *)(uintptr_t)s[i].iova, want + i * 512, 512) == 0);
	fake_free(f);

	/* 512-byte blocks at an odd byte address: not dword aligned */
	f = fake_new(512, 64, 4u << 20);
	{
		struct nvme_seg odd = { (uintptr_t)(mem + 1), 3 * 512 };

		memcpy(mem + 1, want, 3 * 512);
		req_init(&r, f, NVME_CMD_WRITE, 7, 3, &odd, 1, &rec);
		CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
		fake_run(f);
		CHECK_EQ_INT(rec.result, 0);
		CHECK(memcmp(f->disk + 7 * 512, want, 3 * 512) == 0);
		odd.iova = (uintptr_t)(mem + 4 * PS + 3);
		req_init(&r, f, NVME_CMD_READ, 7, 3, &odd, 1, &rec);
		CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
		fake_run(f);
		CHECK_EQ_INT(rec.result, 0);
		CHECK(memcmp(mem + 4 * PS + 3, want, 3 * 512) == 0);
	}
	free(want);
	free(mem);
	fake_free(f);
}

/* issue 8, item 2: a request split into more commands than the queue has
 * slots; one issued part fails with Do Not Retry while the rest wait for a
 * slot. The request must complete once, failed, after its last issued
 * command, never again from the issue path; the request queued behind it
 * must run and succeed; no slot may leak. */
static void test_split_full_queue_dnr_once(void)
{
	struct fake *f = fake_new(512, 4, 4u << 20);	/* 3 command slots */
	uint8_t *mem = page_buf(32);
	struct nvme_seg a[8], b = { (uintptr_t)(mem + 20 * PS), 4096 };
	struct nvme_req ra, rb;
	struct done_rec da, db;

	for (unsigned i = 0; i < 8; i++) {
		a[i].iova = (uintptr_t)(mem + i * 2 * PS + 1536);
		a[i].len = 512;
	}
	/* A: 8 commands of one block each, LBAs 200..207; B: one command */
	req_init(&ra, f, NVME_CMD_WRITE, 200, 8, a, 8, &da);
	req_init(&rb, f, NVME_CMD_WRITE, 300, 8, &b, 1, &db);
	CHECK_EQ_INT(nvme_submit(f->qp, &ra), 0);
	CHECK_EQ_INT(nvme_submit(f->qp, &rb), 0);
	fake_fetch(f);
	CHECK_EQ_INT(f->nheld, 3);
	CHECK_EQ_INT(nvme_qpair_busy(f->qp), 3 + 2);
	/* the first issued part hits a media error the controller says not
	 * to retry; the other two succeed */
	f->held[0].status = NVME_STATUS(NVME_SCT_MEDIA, 0x81) | (1u << 14);
	fake_post(f, 1);
	nvme_qpair_process(f->qp);
	CHECK_EQ_INT(da.calls, 0);	/* two parts still in flight */
	fake_run(f);
	CHECK_EQ_INT(da.calls, 1);
	CHECK_EQ_INT(da.result, -EIO);
	CHECK_EQ_INT(ra.status, NVME_STATUS(NVME_SCT_MEDIA, 0x81));	/* DNR is not kept */
	CHECK_EQ_INT(db.calls, 1);
	CHECK_EQ_INT(db.result, 0);
	CHECK_EQ_INT(nvme_qpair_busy(f->qp), 0);
	CHECK_EQ_INT(f->qp->nfree, 3);
	/* no more commands of A went out after its failure was known */
	CHECK_EQ_INT(f->fetched, 3 + 1);

	/* the same with the failure on the last issued part and a full queue
	 * at the moment it completes: nothing is freed before the post */
	memset(&f->held, 0, sizeof(f->held));
	f->fetched = 0;
	req_init(&ra, f, NVME_CMD_READ, 200, 8, a, 8, &da);
	req_init(&rb, f, NVME_CMD_READ, 300, 8, &b, 1, &db);
	CHECK_EQ_INT(nvme_submit(f->qp, &ra), 0);
	CHECK_EQ_INT(nvme_submit(f->qp, &rb), 0);
	fake_fetch(f);
	CHECK_EQ_INT(f->nheld, 3);
	for (unsigned i = 0; i < 3; i++)
		f->held[i].status = NVME_STATUS(NVME_SCT_MEDIA, 0x81) | (1u << 14);
	fake_post(f, 0);
	nvme_qpair_process(f->qp);
	fake_run(f);
	CHECK_EQ_INT(da.calls, 1);
	CHECK_EQ_INT(da.result, -EIO);
	CHECK_EQ_INT(db.calls, 1);
	CHECK_EQ_INT(db.result, 0);
	CHECK_EQ_INT(nvme_qpair_busy(f->qp), 0);
	CHECK_EQ_INT(f->qp->nfree, 3);
	free(mem);
	fake_free(f);
}

/* Plugged, the SQ fills and the doorbell stays; the last unplug writes it
 * once with the tail of every command (issue 11: one doorbell a batch). */
static void test_plug_one_doorbell(void)
{
	struct fake *f = fake_new(512, 16, 4u << 20);
	uint8_t *mem = page_buf(4);
	struct nvme_seg s[3];
	struct nvme_req r[3];
	struct done_rec d[3] = { 0 };

	nvme_qpair_plug(f->qp);
	nvme_qpair_plug(f->qp);
	for (unsigned i = 0; i < 3; i++) {
		s[i] = (struct nvme_seg){ (uintptr_t)(mem + i * PS), 4096 };
		req_init(&r[i], f, NVME_CMD_READ, 8 * i, 8, &s[i], 1, &d[i]);
		CHECK_EQ_INT(nvme_submit(f->qp, &r[i]), 0);
	}
	CHECK_EQ_INT(*f->qp->sq_db, 0);		/* nothing rung yet */
	nvme_qpair_unplug(f->qp);
	CHECK_EQ_INT(*f->qp->sq_db, 0);		/* still one plug deep */
	nvme_qpair_unplug(f->qp);
	CHECK_EQ_INT(*f->qp->sq_db, 3);		/* one write, all three */
	fake_run(f);
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ_INT(d[i].calls, 1);
	free(mem);
	fake_free(f);
}

static unsigned done_seq;

static void on_done_seq(struct nvme_req *r)
{
	*(unsigned *)r->priv = ++done_seq;
}

/* Issue 12: a client with one request waiting is not held back by one
 * with many: with the queue full, the freed slots go to owners in turn. */
static void test_fair_share(void)
{
	struct fake *f = fake_new(512, 4, 4u << 20);	/* 3 command slots */
	uint8_t *mem = page_buf(2);
	struct nvme_seg seg = { (uintptr_t)mem, 4096 };
	struct nvme_share a = { 0 }, b = { 0 };
	struct nvme_req ra[12], rb;
	unsigned oa[12] = { 0 }, ob = 0;

	done_seq = 0;
	for (unsigned i = 0; i < 12; i++) {
		memset(&ra[i], 0, sizeof(ra[i]));
		ra[i] = (struct nvme_req){ .opc = NVME_CMD_READ, .ns = &f->ns, .slba = 8 * i, .nlb = 8,
					   .segs = &seg, .nseg = 1, .done = on_done_seq,
					   .priv = &oa[i], .share = &a };
		CHECK_EQ_INT(nvme_submit(f->qp, &ra[i]), 0);
	}
	rb = (struct nvme_req){ .opc = NVME_CMD_READ, .ns = &f->ns, .slba = 800, .nlb = 8,
				.segs = &seg, .nseg = 1, .done = on_done_seq, .priv = &ob, .share = &b };
	CHECK_EQ_INT(nvme_submit(f->qp, &rb), 0);
	/* One completion at a time: each frees one slot. */
	for (unsigned guard = 0; guard < 100 && done_seq < 13; guard++) {
		fake_fetch(f);
		fake_post(f, 1);
		nvme_qpair_process(f->qp);
	}
	CHECK_EQ_INT(done_seq, 13);
	/* Three of A's were in flight and one was first in line: B's is the
	 * fifth to end, not the thirteenth. */
	CHECK(ob >= 1 && ob <= 5);
	if (ob > 5)
		printf("fair_share: B ended %u-th\n", ob);
	for (unsigned i = 1; i < 12; i++)
		CHECK(oa[i] > oa[i - 1]);	/* A's own stay in order */
	CHECK_EQ_INT(a.waiting, 0);
	CHECK_EQ_INT(b.waiting, 0);
	free(mem);
	fake_free(f);
}

/* Issue 12: a deep owner beside a shallow one is full at NVME_SHARE_MIN
 * requests (the shallow one's wait behind those, not the whole queue),
 * stays so for the grace period after the shallow one's last request,
 * and is never held back alone or beside owners of like demand. */
static void test_share_full(void)
{
	struct fake *f = fake_new(512, 64, 4u << 20);
	uint8_t *mem = page_buf(2);
	struct nvme_seg seg = { (uintptr_t)mem, 4096 };
	struct nvme_share a = { 0 }, b = { 0 };
	struct nvme_req ra[32], rb[8];
	unsigned oa[32] = { 0 }, ob[8] = { 0 };
	uint64_t t;

	done_seq = 0;
	for (unsigned i = 0; i < 32; i++) {
		ra[i] = (struct nvme_req){ .opc = NVME_CMD_READ, .ns = &f->ns, .slba = 8 * i, .nlb = 8,
					   .segs = &seg, .nseg = 1, .done = on_done_seq,
					   .priv = &oa[i], .share = &a };
		CHECK(!nvme_share_full(f->qp, &a));	/* alone: never */
		CHECK_EQ_INT(nvme_submit(f->qp, &ra[i]), 0);
	}
	rb[0] = (struct nvme_req){ .opc = NVME_CMD_READ, .ns = &f->ns, .slba = 800, .nlb = 8,
				   .segs = &seg, .nseg = 1, .done = on_done_seq, .priv = &ob[0],
				   .share = &b };
	CHECK_EQ_INT(nvme_submit(f->qp, &rb[0]), 0);
	CHECK_EQ_INT(a.held, 32);
	CHECK_EQ_INT(b.held, 1);
	CHECK(nvme_share_full(f->qp, &a));	/* 32 > max(4, 4 x 1) */
	CHECK(!nvme_share_full(f->qp, &b));
	/* Everything ends. B's last request just ended: for the grace
	 * period A is full again at NVME_SHARE_MIN, not below. */
	for (unsigned guard = 0; guard < 100 && done_seq < 33; guard++) {
		fake_fetch(f);
		fake_post(f, 64);
		nvme_qpair_process(f->qp);
	}
	CHECK_EQ_INT(done_seq, 33);
	CHECK_EQ_INT(a.held + b.held, 0);
	CHECK_EQ_INT(f->c.share_owners, 0);
	CHECK_EQ_INT(f->c.share_held, 0);
	for (unsigned i = 0; i < NVME_SHARE_MIN; i++)
		CHECK_EQ_INT(nvme_submit(f->qp, &ra[i]), 0);
	CHECK(nvme_share_full(f->qp, &a));
	a.held--;	/* under the least an owner may hold */
	CHECK(!nvme_share_full(f->qp, &a));
	a.held++;
	t = nvme_now_ms();
	while (nvme_now_ms() < t + NVME_SHARE_GRACE_MS + 2)
		;
	CHECK(!nvme_share_full(f->qp, &a));	/* grace over: alone again */
	/* Like demand: B with 8, A with 8: neither is full. */
	for (unsigned i = NVME_SHARE_MIN; i < 8; i++)
		CHECK_EQ_INT(nvme_submit(f->qp, &ra[i]), 0);
	for (unsigned i = 0; i < 8; i++) {
		rb[i] = (struct nvme_req){ .opc = NVME_CMD_READ, .ns = &f->ns, .slba = 800 + 8 * i,
					   .nlb = 8, .segs = &seg, .nseg = 1, .done = on_done_seq,
					   .priv = &ob[i], .share = &b };
		CHECK_EQ_INT(nvme_submit(f->qp, &rb[i]), 0);
	}
	CHECK(!nvme_share_full(f->qp, &a));
	CHECK(!nvme_share_full(f->qp, &b));
	for (unsigned guard = 0; guard < 100 && f->c.share_held; guard++) {
		fake_fetch(f);
		fake_post(f, 64);
		nvme_qpair_process(f->qp);
	}
	CHECK_EQ_INT(f->c.share_owners, 0);
	free(mem);
	fake_free(f);
}

/* A retriable status without DNR is retried (same command again); with
 * DNR it is final at once. */
static void test_retry_and_dnr(void)
{
	struct fake *f = fake_new(512, 8, 4u << 20);
	uint8_t *mem = page_buf(2);
	struct nvme_seg s = { (uintptr_t)mem, 4096 };
	struct nvme_req r;
	struct done_rec d;

	f->bad_lba = 10;
	f->bad_status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL);
	f->bad_times = 2;
	req_init(&r, f, NVME_CMD_READ, 8, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(d.result, 0);
	CHECK_EQ_INT(f->fetched, 3);

	f->fetched = 0;
	f->bad_status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL) | (1u << 14);
	f->bad_times = 0;
	req_init(&r, f, NVME_CMD_READ, 8, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(d.result, -EIO);
	CHECK_EQ_INT(f->fetched, 1);
	free(mem);
	fake_free(f);
}

/* Each request command that ends counts once, with the time from its
 * (last) queueing in the SQ to the reap of its completion: a command the
 * controller holds 5 ms shows at least that; a retried one counts once. */
static void test_io_stats(void)
{
	struct fake *f = fake_new(512, 8, 4u << 20);
	uint8_t *mem = page_buf(2);
	struct nvme_seg s = { (uintptr_t)mem, 4096 };
	struct timespec held = { 0, 5000000 };
	struct nvme_io_stats st;
	uint64_t before;
	struct nvme_req r;
	struct done_rec d;

	nvme_qpair_io_stats(f->qp, &st);
	CHECK_EQ_INT(st.commands, 0);
	CHECK_EQ_INT(st.device_ns, 0);
	req_init(&r, f, NVME_CMD_READ, 8, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_fetch(f);
	nanosleep(&held, NULL);
	fake_post(f, 0);
	nvme_qpair_process(f->qp);
	CHECK_EQ_INT(d.calls, 1);
	nvme_qpair_io_stats(f->qp, &st);
	CHECK_EQ_INT(st.commands, 1);
	CHECK(st.device_ns >= 5000000u);
	CHECK(st.device_ns < 5000000000u);

	/* The time starts at the doorbell: a command held 20 ms in a plugged
	 * queue (the server building the rest of a batch) and answered at
	 * once adds far less than that. */
	held.tv_nsec = 20000000;
	nvme_qpair_plug(f->qp);
	req_init(&r, f, NVME_CMD_READ, 8, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	nanosleep(&held, NULL);
	nvme_qpair_unplug(f->qp);
	fake_fetch(f);
	fake_post(f, 0);
	before = st.device_ns;
	nvme_qpair_process(f->qp);
	nvme_qpair_io_stats(f->qp, &st);
	CHECK_EQ_INT(st.commands, 2);
	CHECK(st.device_ns - before < 20000000u);

	/* Failed twice with a retriable status, then served: one command. */
	f->fetched = 0;
	f->bad_lba = 10;
	f->bad_status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL);
	f->bad_times = 2;
	req_init(&r, f, NVME_CMD_READ, 8, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(f->fetched, 3);
	nvme_qpair_io_stats(f->qp, &st);
	CHECK_EQ_INT(st.commands, 3);
	free(mem);
	fake_free(f);
}

/* Doorbells beyond the mapped BAR (a large CAP.DSTRD, many queues) are
 * refused before anything is written there. */
static void test_doorbells_inside_bar(void)
{
	struct fake *f = fake_new(512, 8, 4u << 20);
	struct nvme_qpair *qp = NULL;

	/* 0x2000 bytes of BAR, doorbells from 0x1000, stride 4 << 6 = 256:
	 * queue 7's CQ doorbell ends at 0x1000 + 15 * 256 + 4 > 0x2000 */
	f->c.db_stride = 256;
	CHECK_EQ_INT(nvme_qpair_create(&f->c, 7, 8, 0, 1, &qp), 0);
	nvme_qpair_destroy(qp);
	qp = NULL;
	CHECK_EQ_INT(nvme_qpair_create(&f->c, 8, 8, 0, 1, &qp), -EINVAL);
	CHECK(qp == NULL);
	/* stride 4: 1024 doorbells, 512 queue pairs (0..511) */
	f->c.db_stride = 4;
	CHECK_EQ_INT(nvme_qpair_create(&f->c, 511, 8, 0, 1, &qp), 0);
	nvme_qpair_destroy(qp);
	qp = NULL;
	CHECK_EQ_INT(nvme_qpair_create(&f->c, 512, 8, 0, 1, &qp), -EINVAL);
	CHECK(qp == NULL);
	fake_free(f);
}

/* A completion that names another SQ is not taken for ours. */
static void test_cqe_sqid_checked(void)
{
	struct fake *f = fake_new(512, 8, 4u << 20);
	uint8_t *mem = page_buf(1);
	struct nvme_seg s = { (uintptr_t)mem, 4096 };
	struct nvme_req r;
	struct done_rec d;

	req_init(&r, f, NVME_CMD_READ, 0, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_fetch(f);
	f->held[1] = f->held[0];
	f->nheld = 2;
	fake_post(f, 1);
	f->qp->cq[0].sqid = 5;
	CHECK_EQ_INT(nvme_qpair_process(f->qp), 1);
	CHECK_EQ_INT(d.calls, 0);
	fake_post(f, 1);
	CHECK_EQ_INT(nvme_qpair_process(f->qp), 1);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(d.result, 0);
	free(mem);
	fake_free(f);
}

static void ranges_req(struct nvme_req *r, struct fake *f, uint8_t opc, const struct nvme_range *rg,
		       unsigned n, struct done_rec *rec)
{
	req_init(r, f, opc, 0, 0, NULL, 0, rec);
	r->ranges = rg;
	r->nranges = n;
}

/* Discard ranges share DSM commands up to DMRL ranges, each range cut at
 * DMRSL blocks and each command at DMSL; Write Zeroes is cut at WZSL. */
static void test_dsm_and_wz_limits(void)
{
	struct fake *f = fake_new(512, 16, 4u << 20);
	struct nvme_range five[5] = { { 10, 5, 0 }, { 100, 1, 0 }, { 200, 30, 0 }, { 300, 7, 0 }, { 400, 2, 0 } };
	struct nvme_range big[2] = { { 1000, 250, 0 }, { 1500, 100, 0 } };
	struct nvme_req r;
	struct done_rec d;

	/* no limits: five ranges, one command */
	ranges_req(&r, f, NVME_CMD_DSM, five, 5, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(d.result, 0);
	CHECK_EQ_INT(f->ncmds, 1);
	CHECK_EQ_INT(f->cmds[0].n, 5);
	for (unsigned i = 0; i < 5; i++) {
		CHECK_EQ_INT(f->ranges[i].slba, five[i].slba);
		CHECK_EQ_INT(f->ranges[i].nlb, five[i].nlb);
	}

	/* DMRL 2: 2 + 2 + 1 */
	f->ncmds = f->nranges = 0;
	f->c.info.dsm_max_ranges = 2;
	ranges_req(&r, f, NVME_CMD_DSM, five, 5, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(f->ncmds, 3);
	CHECK_EQ_INT(f->cmds[0].n, 2);
	CHECK_EQ_INT(f->cmds[2].n, 1);
	CHECK_EQ_INT(f->ranges[4].slba, 400);

	/* DMRSL 100: 250 becomes 100 + 100 + 50; DMSL 320 per command */
	f->ncmds = f->nranges = 0;
	f->c.info.dsm_max_ranges = 0;
	f->c.info.dsm_max_range_nlb = 100;
	f->c.info.dsm_max_nlb = 320;
	ranges_req(&r, f, NVME_CMD_DSM, big, 2, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(f->ncmds, 2);
	CHECK_EQ_INT(f->cmds[0].n, 4);	/* 100 + 100 + 50 + 70 = 320 */
	CHECK_EQ_INT(f->ranges[2].nlb, 50);
	CHECK_EQ_INT(f->ranges[3].slba, 1500);
	CHECK_EQ_INT(f->ranges[3].nlb, 70);
	CHECK_EQ_INT(f->cmds[1].n, 1);
	CHECK_EQ_INT(f->ranges[4].slba, 1570);
	CHECK_EQ_INT(f->ranges[4].nlb, 30);

	/* one range the old way still works */
	f->ncmds = f->nranges = 0;
	f->c.info.dsm_max_range_nlb = 0;
	f->c.info.dsm_max_nlb = 0;
	req_init(&r, f, NVME_CMD_DSM, 50, 9, NULL, 0, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(f->ncmds, 1);
	CHECK_EQ_INT(f->ranges[0].slba, 50);
	CHECK_EQ_INT(f->ranges[0].nlb, 9);

	/* Write Zeroes, WZSL of 8 KiB: 16 blocks per command; DEAC per range
	 * where the namespace supports it */
	f->ncmds = 0;
	f->c.info.wz_max_bytes = 8192;
	f->ns.info.wz_deallocate = true;
	big[0].nlb = 40;
	big[1].flags = NVME_REQ_DEALLOCATE;
	big[1].nlb = 3;
	ranges_req(&r, f, NVME_CMD_WRITE_ZEROES, big, 2, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_run(f);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(d.result, 0);
	CHECK_EQ_INT(f->ncmds, 4);
	CHECK_EQ_INT(f->cmds[0].n, 16);
	CHECK_EQ_INT(f->cmds[2].n, 8);
	CHECK_EQ_INT(f->cmds[0].cdw12 & NVME_WZ_DEAC, 0);
	CHECK_EQ_INT(f->cmds[3].n, 3);
	CHECK_EQ_INT(f->cmds[3].cdw12 & NVME_WZ_DEAC, NVME_WZ_DEAC);

	/* refused: an empty range, one past the end, an empty list */
	big[1].nlb = 0;
	ranges_req(&r, f, NVME_CMD_DSM, big, 2, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), -EINVAL);
	big[1].nlb = 1;
	big[1].slba = f->ns.info.nlba;
	CHECK_EQ_INT(nvme_submit(f->qp, &r), -EINVAL);
	ranges_req(&r, f, NVME_CMD_WRITE_ZEROES, big, 0, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), -EINVAL);
	CHECK_EQ_INT(d.calls, 0);
	fake_free(f);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A retriable status with CRD = 1 waits CRDT1 (100 ms units) before the
 * retry goes out; Namespace Not Ready without CRD waits too, and a queue
 * torn down meanwhile fails the request once. */
static void test_retry_delays(void)
{
	struct fake *f = fake_new(512, 8, 4u << 20);
	uint8_t *mem = page_buf(1);
	struct nvme_seg s = { (uintptr_t)mem, 4096 };
	struct nvme_req r;
	struct done_rec d;

	f->c.info.crdt[0] = 2;	/* 200 ms */
	req_init(&r, f, NVME_CMD_READ, 0, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_fetch(f);
	f->held[0].status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL) | (1u << 11);
	fake_post(f, 0);
	nvme_qpair_process(f->qp);
	fake_fetch(f);
	CHECK_EQ_INT(f->fetched, 1);	/* not yet */
	CHECK_EQ_INT(f->qp->ndelayed, 1);
	sleep_ms(100);
	nvme_qpair_retry_due(f->qp);
	fake_fetch(f);
	CHECK_EQ_INT(f->fetched, 1);	/* still not */
	sleep_ms(120);
	nvme_qpair_retry_due(f->qp);
	fake_run(f);
	CHECK_EQ_INT(f->fetched, 2);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(d.result, 0);
	CHECK_EQ_INT(f->qp->ndelayed, 0);

	/* Namespace Not Ready, no CRD: not retried at once */
	f->fetched = 0;
	req_init(&r, f, NVME_CMD_READ, 0, 8, &s, 1, &d);
	CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
	fake_fetch(f);
	f->held[0].status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_NS_NOT_READY);
	fake_post(f, 0);
	nvme_qpair_process(f->qp);
	nvme_qpair_process(f->qp);
	fake_fetch(f);
	CHECK_EQ_INT(f->fetched, 1);
	CHECK_EQ_INT(d.calls, 0);
	nvme_qpair_abort_all(f->qp, -EIO);
	CHECK_EQ_INT(d.calls, 1);
	CHECK_EQ_INT(d.result, -EIO);
	CHECK_EQ_INT(f->qp->ndelayed, 0);
	CHECK_EQ_INT(nvme_qpair_busy(f->qp), 0);
	free(mem);
	fake_free(f);
}

/* issue 8, item 3: a command that never completes. Past its deadline it
 * gets an Abort (on the admin queue, naming its SQ and CID); past the
 * grace after that, a reset. Nothing completes before the controller is
 * disabled; then the commands caught in flight, the expired one included,
 * are sent again (as Linux retries them), and a request submitted
 * meanwhile waits for the queue to come back. A completion whose interrupt was lost is reaped by
 * the check instead of being aborted. */
static void test_timeout_abort_reset(void)
{
	struct fake *f = fake_new_timeout(512, 8, 4u << 20, 100);
	struct nvme_qpair *admin = NULL;
	uint8_t *mem = page_buf(4);
	struct nvme_seg s[4] = {
		{ (uintptr_t)mem, 4096 }, { (uintptr_t)(mem + PS), 4096 },
		{ (uintptr_t)(mem + 2 * PS), 4096 }, { (uintptr_t)(mem + 3 * PS), 4096 },
	};
	struct nvme_req a, b, c, d;
	struct done_rec da, db, dc, dd;
	uint16_t cid_a;

	CHECK_EQ_INT(nvme_qpair_create(&f->c, 0, 8, 0, 1, &admin), 0);
	req_init(&a, f, NVME_CMD_WRITE, 0, 8, &s[0], 1, &da);
	req_init(&b, f, NVME_CMD_WRITE, 8, 8, &s[1], 1, &db);
	CHECK_EQ_INT(nvme_submit(f->qp, &a), 0);
	CHECK_EQ_INT(nvme_submit(f->qp, &b), 0);
	fake_fetch(f);
	cid_a = f->held[0].cid;
	/* B completes, its interrupt lost: nobody calls process */
	f->held[0] = f->held[1];
	f->nheld = 1;
	f->held[1].cid = cid_a;
	fake_post(f, 1);
	f->held[0].cid = cid_a;
	f->nheld = 1;
	CHECK(!nvme_qpair_check_deadlines(f->qp, admin, nvme_now_ms()));
	CHECK_EQ_INT(db.calls, 1);	/* reaped by the check */
	CHECK_EQ_INT(admin->sq_tail, 0);
	sleep_ms(110);
	CHECK(!nvme_qpair_check_deadlines(f->qp, admin, nvme_now_ms()));
	CHECK_EQ_INT(admin->sq_tail, 1);
	CHECK_EQ_INT(admin->sq[0].opc, NVME_ADM_ABORT);
	CHECK_EQ_INT(admin->sq[0].cdw10, 1u | ((uint32_t)cid_a << 16));
	CHECK_EQ_INT(da.calls, 0);
	/* C goes out now and is in flight when the reset comes */
	req_init(&c, f, NVME_CMD_WRITE, 16, 8, &s[2], 1, &dc);
	CHECK_EQ_INT(nvme_submit(f->qp, &c), 0);
	fake_fetch(f);
	sleep_ms(110);
	CHECK(nvme_qpair_check_deadlines(f->qp, admin, nvme_now_ms()));
	CHECK_EQ_INT(da.calls, 0);	/* nothing ends before the disable */

	/* the reset, as ctrl_reset runs it */
	admin->resetting = f->qp->resetting = true;
	fake_disable(f);
	CHECK_EQ_INT(nvme_qpair_reset_begin(admin, false, -EIO), 0);
	CHECK_EQ_INT(admin->nfree, 7);
	CHECK_EQ_INT(nvme_qpair_reset_begin(f->qp, true, -EIO), 2);
	CHECK_EQ_INT(da.calls, 0);
	CHECK_EQ_INT(dc.calls, 0);
	req_init(&d, f, NVME_CMD_WRITE, 24, 8, &s[3], 1, &dd);
	CHECK_EQ_INT(nvme_submit(f->qp, &d), 0);
	CHECK_EQ_INT(f->qp->sq_tail, 0);	/* waits */
	nvme_qpair_reset_end(admin);
	nvme_qpair_reset_end(f->qp);
	CHECK_EQ_INT(f->qp->sq_tail, 3);	/* A and C again, then D */
	fake_run(f);
	CHECK_EQ_INT(da.calls, 1);
	CHECK_EQ_INT(da.result, 0);
	CHECK_EQ_INT(db.calls, 1);
	CHECK_EQ_INT(db.result, 0);
	CHECK_EQ_INT(dc.calls, 1);
	CHECK_EQ_INT(dc.result, 0);
	CHECK_EQ_INT(dd.calls, 1);
	CHECK_EQ_INT(dd.result, 0);
	CHECK_EQ_INT(nvme_qpair_busy(f->qp), 0);
	CHECK_EQ_INT(f->qp->nfree, 7);

	/* a command caught by one reset after another uses up its retries
	 * and then fails instead of going round for ever */
	req_init(&c, f, NVME_CMD_READ, 16, 8, &s[2], 1, &dc);
	CHECK_EQ_INT(nvme_submit(f->qp, &c), 0);
	for (unsigned i = 0; i <= NVME_MAX_RETRIES; i++) {
		fake_fetch(f);
		f->qp->resetting = true;
		fake_disable(f);
		CHECK_EQ_INT(nvme_qpair_reset_begin(f->qp, true, -EIO), i < NVME_MAX_RETRIES ? 1 : 0);
		nvme_qpair_reset_end(f->qp);
	}
	CHECK_EQ_INT(dc.calls, 1);
	CHECK_EQ_INT(dc.result, -EIO);
	CHECK_EQ_INT(nvme_qpair_busy(f->qp), 0);
	nvme_qpair_destroy(admin);
	free(mem);
	fake_free(f);
}

/* ---- shadow doorbells (issue 11, item 1) ---- */

static struct nvme_db_stats db_stats(struct fake *f)
{
	struct nvme_db_stats st;

	nvme_qpair_db_stats(f->qp, &st);
	return st;
}

/* Submits and completes `n` reads, one at a time: moves the rings on. */
static void advance(struct fake *f, unsigned n, struct nvme_seg *s)
{
	for (unsigned i = 0; i < n; i++) {
		struct nvme_req r;
		struct done_rec d;

		req_init(&r, f, NVME_CMD_READ, 0, 8, s, 1, &d);
		CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
		fake_run(f);
		CHECK_EQ_INT(d.calls, 1);
	}
}

/* The event index test itself, against the cases worked by hand: the
 * register is written when the EventIdx lies in [old, new), 16-bit
 * wrap-around included. */
static void test_need_event(void)
{
	CHECK(nvme_dbbuf_need_event(0, 1, 0));
	CHECK(nvme_dbbuf_need_event(4, 6, 4));
	CHECK(nvme_dbbuf_need_event(5, 6, 4));
	CHECK(!nvme_dbbuf_need_event(6, 6, 4));	/* it asked for beyond the new value */
	CHECK(!nvme_dbbuf_need_event(3, 6, 4));	/* it is behind: still working, will look */
	CHECK(nvme_dbbuf_need_event(65535, 1, 65534));
	CHECK(nvme_dbbuf_need_event(0, 1, 65534));
	CHECK(!nvme_dbbuf_need_event(1, 1, 65534));
	CHECK(!nvme_dbbuf_need_event(65533, 1, 65534));
}

/* The SQ tail goes to the shadow on every update and to the register only
 * when the EventIdx asks; a batch is one update; the fake, reading the
 * shadow as QEMU does, sees every command. */
static void test_shadow_sq(void)
{
	struct fake *f = fake_new(512, 16, 4u << 20);
	uint8_t *mem = page_buf(6);
	volatile uint32_t *sh, *ei;
	struct nvme_seg s[6];
	struct nvme_req r[6];
	struct done_rec d[6];

	fake_shadow(f);
	sh = shadow_at(&f->dbs, 8);
	ei = shadow_at(&f->eis, 8);
	for (unsigned i = 0; i < 6; i++) {
		s[i] = (struct nvme_seg){ (uintptr_t)(mem + i * PS), 4096 };
		req_init(&r[i], f, NVME_CMD_READ, 8 * i, 8, &s[i], 1, &d[i]);
	}
	/* EventIdx 0 = the old tail: the controller wants to hear */
	CHECK_EQ_INT(nvme_submit(f->qp, &r[0]), 0);
	CHECK_EQ_INT(*sh, 1);
	CHECK_EQ_INT(*f->qp->sq_db, 1);
	/* still at 0: the controller is busy and will read the shadow */
	CHECK_EQ_INT(nvme_submit(f->qp, &r[1]), 0);
	CHECK_EQ_INT(*sh, 2);
	CHECK_EQ_INT(*f->qp->sq_db, 1);
	/* caught up to 2: the next one rings the register */
	*ei = 2;
	CHECK_EQ_INT(nvme_submit(f->qp, &r[2]), 0);
	CHECK_EQ_INT(*sh, 3);
	CHECK_EQ_INT(*f->qp->sq_db, 3);
	/* three commands plugged: one update, here a shadow-only one */
	*ei = 1;
	nvme_qpair_plug(f->qp);
	for (unsigned i = 3; i < 6; i++)
		CHECK_EQ_INT(nvme_submit(f->qp, &r[i]), 0);
	CHECK_EQ_INT(*sh, 3);
	nvme_qpair_unplug(f->qp);
	CHECK_EQ_INT(*sh, 6);
	CHECK_EQ_INT(*f->qp->sq_db, 3);
	CHECK_EQ_INT(db_stats(f).sq_mmio, 2);
	CHECK_EQ_INT(db_stats(f).sq_shadow_only, 2);
	fake_run(f);
	for (unsigned i = 0; i < 6; i++) {
		CHECK_EQ_INT(d[i].calls, 1);
		CHECK_EQ_INT(d[i].result, 0);
	}
	CHECK_EQ_INT(f->reads, 6);
	free(mem);
	fake_free(f);
}

/* The CQ head likewise, once per completion pass. */
static void test_shadow_cq(void)
{
	struct fake *f = fake_new(512, 16, 4u << 20);
	uint8_t *mem = page_buf(3);
	volatile uint32_t *sh, *ei;
	struct nvme_seg s[3];
	struct nvme_req r[3];
	struct done_rec d[3];

	fake_shadow(f);
	sh = shadow_at(&f->dbs, 12);
	ei = shadow_at(&f->eis, 12);
	for (unsigned i = 0; i < 3; i++) {
		s[i] = (struct nvme_seg){ (uintptr_t)(mem + i * PS), 4096 };
		req_init(&r[i], f, NVME_CMD_READ, 8 * i, 8, &s[i], 1, &d[i]);
		CHECK_EQ_INT(nvme_submit(f->qp, &r[i]), 0);
	}
	fake_fetch(f);
	fake_post(f, 1);
	CHECK_EQ_INT(nvme_qpair_process(f->qp), 1);
	CHECK_EQ_INT(*sh, 1);
	CHECK_EQ_INT(*f->qp->cq_db, 1);
	fake_post(f, 1);
	CHECK_EQ_INT(nvme_qpair_process(f->qp), 1);
	CHECK_EQ_INT(*sh, 2);
	CHECK_EQ_INT(*f->qp->cq_db, 1);	/* EventIdx 0: not asked for */
	*ei = 2;
	fake_post(f, 1);
	CHECK_EQ_INT(nvme_qpair_process(f->qp), 1);
	CHECK_EQ_INT(*sh, 3);
	CHECK_EQ_INT(*f->qp->cq_db, 3);
	CHECK_EQ_INT(db_stats(f).cq_mmio, 2);
	CHECK_EQ_INT(db_stats(f).cq_shadow_only, 1);
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ_INT(d[i].calls, 1);
	free(mem);
	fake_free(f);
}

/* Across the ring's wrap (depth 16: the tail goes 15 -> 1) the EventIdx
 * is judged on the ring, and one that is no index of the queue (>= its
 * depth, or with bits above 15 set) costs a register write, never a
 * doorbell skipped. */
static void test_shadow_wrap_and_bogus(void)
{
	struct fake *f = fake_new(512, 16, 4u << 20);
	uint8_t *mem = page_buf(2);
	struct nvme_seg s[2] = { { (uintptr_t)mem, 4096 }, { (uintptr_t)(mem + PS), 4096 } };
	volatile uint32_t *sh, *ei;
	const struct { uint32_t ei; bool mmio; } wrap[] = {
		{ 3, false },	/* behind: busy with the last lap */
		{ 15, true },	/* at the old tail */
		{ 0, true },	/* between old and new, across the wrap */
		{ 1, false },	/* at the new tail: beyond what it asked */
		{ 16, true },	/* no index of a 16-deep queue */
		{ 0x10003, true },	/* 3 with high bits: not an index either */
	};

	fake_shadow(f);
	sh = shadow_at(&f->dbs, 8);
	ei = shadow_at(&f->eis, 8);
	for (unsigned k = 0; k < sizeof(wrap) / sizeof(wrap[0]); k++) {
		struct nvme_req r[2];
		struct done_rec d[2];
		uint32_t before;

		*ei = 0;
		advance(f, (16 + 15 - f->qp->sq_tail) % 16, s);
		CHECK_EQ_INT(f->qp->sq_tail, 15);
		before = *f->qp->sq_db;
		*f->qp->sq_db = 0xdead;	/* so that a write shows */
		*ei = wrap[k].ei;
		nvme_qpair_plug(f->qp);
		for (unsigned i = 0; i < 2; i++) {
			req_init(&r[i], f, NVME_CMD_READ, 8 * i, 8, &s[i], 1, &d[i]);
			CHECK_EQ_INT(nvme_submit(f->qp, &r[i]), 0);
		}
		nvme_qpair_unplug(f->qp);
		CHECK_EQ_INT(*sh, 1);
		if (wrap[k].mmio)
			CHECK_EQ_INT(*f->qp->sq_db, 1);
		else
			CHECK_EQ_INT(*f->qp->sq_db, 0xdead);
		*f->qp->sq_db = before;
		fake_run(f);
		CHECK_EQ_INT(d[0].calls + d[1].calls, 2);
	}
	/* the same bogus values away from the wrap: 4 -> 5 */
	*ei = 0;
	advance(f, 4 - f->qp->sq_tail, s);
	for (unsigned k = 0; k < 2; k++) {
		struct nvme_req r;
		struct done_rec d;

		*ei = k ? 0x10003u : 40u;
		*f->qp->sq_db = 0xdead;
		req_init(&r, f, NVME_CMD_READ, 0, 8, &s[0], 1, &d);
		CHECK_EQ_INT(nvme_submit(f->qp, &r), 0);
		CHECK_EQ_INT(*f->qp->sq_db, f->qp->sq_tail);
		fake_run(f);
		CHECK_EQ_INT(d.calls, 1);
	}
	free(mem);
	fake_free(f);
}

/* A reset zeroes the queue's shadow and EventIdx entries (the controller
 * forgot them; a stale EventIdx would skip the new queue's first doorbell,
 * a stale shadow would be read as its tail); configured again, the
 * commands kept go out through them from 0. */
static void test_shadow_reset(void)
{
	struct fake *f = fake_new(512, 16, 4u << 20);
	uint8_t *mem = page_buf(2);
	struct nvme_seg s[2] = { { (uintptr_t)mem, 4096 }, { (uintptr_t)(mem + PS), 4096 } };
	struct nvme_req a, b;
	struct done_rec da, db;

	fake_shadow(f);
	advance(f, 5, s);
	*shadow_at(&f->eis, 8) = 5;
	*shadow_at(&f->eis, 12) = 5;
	req_init(&a, f, NVME_CMD_READ, 0, 8, &s[0], 1, &da);
	CHECK_EQ_INT(nvme_submit(f->qp, &a), 0);
	fake_fetch(f);		/* in flight when the reset comes */
	CHECK_EQ_INT(*shadow_at(&f->dbs, 8), 6);
	f->qp->resetting = true;
	fake_disable(f);
	CHECK_EQ_INT(nvme_qpair_reset_begin(f->qp, true, -EIO), 1);
	CHECK_EQ_INT(*shadow_at(&f->dbs, 8), 0);
	CHECK_EQ_INT(*shadow_at(&f->dbs, 12), 0);
	CHECK_EQ_INT(*shadow_at(&f->eis, 8), 0);
	CHECK_EQ_INT(*shadow_at(&f->eis, 12), 0);
	req_init(&b, f, NVME_CMD_READ, 8, 8, &s[1], 1, &db);
	CHECK_EQ_INT(nvme_submit(f->qp, &b), 0);
	CHECK_EQ_INT(*shadow_at(&f->dbs, 8), 0);	/* waits for the reset */
	/* the queue re-created and the config sent again, as ctrl_reset does */
	CHECK_EQ_INT(nvme_qpair_dbbuf_attach(f->qp, f->dbs.va, f->eis.va, PS), 0);
	*f->qp->sq_db = 0xdead;
	nvme_qpair_reset_end(f->qp);
	CHECK_EQ_INT(*shadow_at(&f->dbs, 8), 2);	/* A again, then B */
	CHECK_EQ_INT(*f->qp->sq_db, 2);		/* EventIdx 0 = old 0: asked for */
	fake_run(f);
	CHECK_EQ_INT(da.calls, 1);
	CHECK_EQ_INT(da.result, 0);
	CHECK_EQ_INT(db.calls, 1);
	CHECK_EQ_INT(db.result, 0);
	CHECK_EQ_INT(*shadow_at(&f->dbs, 12), 2);
	free(mem);
	fake_free(f);
}

/* The admin queue keeps register writes (Linux does too; QEMU copies them
 * into the shadow); a queue whose entries lie beyond the page keeps them
 * too; detached, a queue writes the register every time. A command late
 * past its deadline gets both registers written once by the check, so a
 * shadow update the controller missed costs time, not the command. */
static void test_shadow_admin_and_kick(void)
{
	struct fake *f = fake_new_timeout(512, 8, 4u << 20, 100);
	struct nvme_qpair *admin = NULL;
	uint8_t *mem = page_buf(2);
	struct nvme_seg s[2] = { { (uintptr_t)mem, 4096 }, { (uintptr_t)(mem + PS), 4096 } };
	struct dma_buf dbs, eis;
	struct nvme_req a, b;
	struct done_rec da, db;

	CHECK_EQ_INT(nvme_qpair_create(&f->c, 0, 8, 0, 1, &admin), 0);
	CHECK_EQ_INT(vfio_dma_alloc(NULL, PS, &dbs), 0);
	CHECK_EQ_INT(vfio_dma_alloc(NULL, PS, &eis), 0);
	CHECK_EQ_INT(nvme_qpair_dbbuf_attach(admin, dbs.va, eis.va, PS), -EINVAL);
	CHECK(admin->sq_shadow == NULL);
	CHECK_EQ_INT(nvme_qpair_dbbuf_attach(f->qp, dbs.va, eis.va, 12), -ERANGE);
	CHECK(f->qp->sq_shadow == NULL);
	vfio_dma_free(NULL, &dbs);
	vfio_dma_free(NULL, &eis);

	fake_shadow(f);
	req_init(&a, f, NVME_CMD_WRITE, 0, 8, &s[0], 1, &da);
	req_init(&b, f, NVME_CMD_WRITE, 8, 8, &s[1], 1, &db);
	CHECK_EQ_INT(nvme_submit(f->qp, &a), 0);
	CHECK_EQ_INT(nvme_submit(f->qp, &b), 0);
	CHECK_EQ_INT(*f->qp->sq_db, 1);		/* B only in the shadow */
	CHECK_EQ_INT(*shadow_at(&f->dbs, 8), 2);
	CHECK(!nvme_qpair_check_deadlines(f->qp, admin, nvme_now_ms()));
	CHECK_EQ_INT(*f->qp->sq_db, 1);		/* not late yet: no kick */
	sleep_ms(110);
	CHECK(!nvme_qpair_check_deadlines(f->qp, admin, nvme_now_ms()));
	CHECK_EQ_INT(*f->qp->sq_db, 2);		/* kicked */
	CHECK_EQ_INT(admin->sq_tail, 2);	/* an Abort for each */
	CHECK_EQ_INT(*admin->sq_db, 2);		/* the admin queue rings its register */
	CHECK_EQ_INT(*shadow_at(&f->dbs, 0), 0);	/* and leaves its shadow alone */
	fake_run(f);
	CHECK_EQ_INT(da.calls, 1);
	CHECK_EQ_INT(db.calls, 1);

	/* detached: register writes only */
	nvme_qpair_dbbuf_detach(f->qp);
	f->shadow = false;
	vfio_dma_free(NULL, &f->dbs);
	vfio_dma_free(NULL, &f->eis);
	req_init(&a, f, NVME_CMD_READ, 0, 8, &s[0], 1, &da);
	CHECK_EQ_INT(nvme_submit(f->qp, &a), 0);
	CHECK_EQ_INT(*f->qp->sq_db, 3);
	fake_run(f);
	CHECK_EQ_INT(da.calls, 1);
	nvme_qpair_destroy(admin);
	free(mem);
	fake_free(f);
}

int main(void)
{
	test_prp_split_odd_iovecs();
	test_prp_bounce();
	test_split_full_queue_dnr_once();
	test_retry_and_dnr();
	test_io_stats();
	test_doorbells_inside_bar();
	test_plug_one_doorbell();
	test_fair_share();
	test_share_full();
	test_cqe_sqid_checked();
	test_retry_delays();
	test_dsm_and_wz_limits();
	test_timeout_abort_reset();
	test_need_event();
	test_shadow_sq();
	test_shadow_cq();
	test_shadow_wrap_and_bogus();
	test_shadow_reset();
	test_shadow_admin_and_kick();
	return check_report("test_qpair");
}
