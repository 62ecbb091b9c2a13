#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nvme/nvme_priv.h"
#include "platform/dma_barrier.h"
#include "util/log.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t nvme_now_ms(void)
{
	return now_ns() / 1000000;
}

int nvme_qpair_create(struct nvme_ctrl *c, uint16_t qid, uint16_t depth, unsigned vector,
		      unsigned list_pages, struct nvme_qpair **out)
{
	struct vfio_dev *v = c->vdev;
	const uint32_t ps = c->info.page_size;
	unsigned ntrk = depth - 1u;
	struct nvme_qpair *qp;
	int rc = -ENOMEM;

	if (depth < 2)
		return -EINVAL;
	/* Both doorbells of the queue must lie inside the mapped BAR: with a
	 * large CAP.DSTRD or many queues they may not (3.1.4.21). */
	if ((uint64_t)NVME_REG_DBS + (2ull * qid + 1) * c->db_stride + 4 > c->bar_len) {
		log_err(c->info.bdf, "queue %u: doorbells (stride %u) lie beyond BAR0's %zu bytes", qid,
			c->db_stride, c->bar_len);
		return -EINVAL;
	}
	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return -ENOMEM;
	qp->ctrl = c;
	qp->qid = qid;
	qp->depth = depth;
	qp->vector = vector;
	qp->phase = 1;
	qp->list_pages = list_pages;
	qp->timeout_ms = qid ? c->opts.io_timeout_ms : c->opts.admin_timeout_ms;
	if (!qp->timeout_ms)
		qp->timeout_ms = qid ? NVME_DEFAULT_IO_TIMEOUT_MS : NVME_DEFAULT_ADMIN_TIMEOUT_MS;
	qp->trk = calloc(ntrk, sizeof(*qp->trk));
	qp->free_ids = calloc(ntrk, sizeof(*qp->free_ids));
	qp->list_va_all = calloc((size_t)ntrk * list_pages, sizeof(*qp->list_va_all));
	qp->list_iova_all = calloc((size_t)ntrk * list_pages, sizeof(*qp->list_iova_all));
	if (!qp->trk || !qp->free_ids || !qp->list_va_all || !qp->list_iova_all)
		goto fail;
	rc = vfio_dma_alloc(v, (size_t)depth * sizeof(struct nvme_sqe), &qp->sq_mem);
	if (rc)
		goto fail;
	rc = vfio_dma_alloc(v, (size_t)depth * sizeof(struct nvme_cqe), &qp->cq_mem);
	if (rc)
		goto fail;
	rc = vfio_dma_alloc(v, (size_t)ntrk * list_pages * ps, &qp->list_mem);
	if (rc)
		goto fail;
	qp->sq = qp->sq_mem.va;
	qp->cq = qp->cq_mem.va;
	qp->sq_db = (volatile uint32_t *)(c->bar + NVME_REG_DBS + (2u * qid) * c->db_stride);
	qp->cq_db = (volatile uint32_t *)(c->bar + NVME_REG_DBS + (2u * qid + 1) * c->db_stride);
	for (unsigned i = 0; i < ntrk; i++) {
		struct nvme_tracker *t = &qp->trk[i];
		t->list_va = &qp->list_va_all[(size_t)i * list_pages];
		t->list_iova = &qp->list_iova_all[(size_t)i * list_pages];
		for (unsigned p = 0; p < list_pages; p++) {
			size_t off = ((size_t)i * list_pages + p) * ps;
			t->list_va[p] = (uint64_t *)((char *)qp->list_mem.va + off);
			t->list_iova[p] = qp->list_mem.iova + off;
		}
		/* Hand out low CIDs first: a LIFO of descending ids. */
		qp->free_ids[i] = (uint16_t)(ntrk - 1 - i);
	}
	qp->nfree = ntrk;
	*out = qp;
	return 0;
fail:
	nvme_qpair_destroy(qp);
	return rc;
}

void nvme_qpair_destroy(struct nvme_qpair *qp)
{
	if (!qp)
		return;
	vfio_dma_free(qp->ctrl->vdev, &qp->list_mem);
	vfio_dma_free(qp->ctrl->vdev, &qp->cq_mem);
	vfio_dma_free(qp->ctrl->vdev, &qp->sq_mem);
	free(qp->list_iova_all);
	free(qp->list_va_all);
	free(qp->free_ids);
	free(qp->trk);
	free(qp);
}

static struct nvme_tracker *trk_get(struct nvme_qpair *qp, uint16_t *cid)
{
	struct nvme_tracker *t;

	if (!qp->nfree)
		return NULL;
	*cid = qp->free_ids[--qp->nfree];
	t = &qp->trk[*cid];
	t->busy = true;
	t->retries = 0;
	t->retry_at = 0;
	t->aborted = false;
	t->expired = false;
	t->bounce_len = 0;
	t->req = NULL;
	t->wait = NULL;
	return t;
}

static void trk_put(struct nvme_qpair *qp, uint16_t cid)
{
	if (qp->trk[cid].retry_at) {
		qp->trk[cid].retry_at = 0;
		qp->ndelayed--;
	}
	qp->trk[cid].busy = false;
	qp->trk[cid].req = NULL;
	qp->trk[cid].wait = NULL;
	qp->free_ids[qp->nfree++] = cid;
}

static bool shadow_db_update(const struct nvme_qpair *qp, volatile uint32_t *shadow,
			     volatile uint32_t *ei, uint16_t old, uint16_t val);

/* Tells the controller the new tail, once for every command pushed since
 * the last time: each doorbell write is a trap to the hypervisor on a
 * virtual controller, and a posted write over PCIe on a real one. With
 * shadow doorbells, the register is written only when the controller's
 * EventIdx asks for it. */
static void sq_ring(struct nvme_qpair *qp)
{
	uint16_t old = qp->db_tail;
	uint64_t now;

	if (old == qp->sq_tail)
		return;
	qp->db_tail = qp->sq_tail;
	/* From here the commands are the controller's: their time at the
	 * device starts (nvme_io_stats), one clock reading a batch. */
	now = now_ns();
	for (uint16_t i = old; i != qp->sq_tail; i = (uint16_t)(i + 1u == qp->depth ? 0 : i + 1u))
		if (qp->sq[i].cid < qp->depth - 1u)
			qp->trk[qp->sq[i].cid].sent_ns = now;
	if (qp->sq_shadow && !shadow_db_update(qp, qp->sq_shadow, qp->sq_ei, old, qp->sq_tail)) {
		qp->dbstats.sq_shadow_only++;
		return;
	}
	/* The SQEs (and any PRP list or bounced data written before them)
	 * must be visible to the device before the doorbell lets it fetch. */
	mmio_wmb();
	*qp->sq_db = qp->sq_tail;
	qp->dbstats.sq_mmio++;
}

/* Tells the controller how far the CQ has been consumed, once per pass. */
static void cq_ring(struct nvme_qpair *qp)
{
	uint16_t old = qp->db_head;

	if (old == qp->cq_head)
		return;
	qp->db_head = qp->cq_head;
	if (qp->cq_shadow && !shadow_db_update(qp, qp->cq_shadow, qp->cq_ei, old, qp->cq_head)) {
		qp->dbstats.cq_shadow_only++;
		return;
	}
	/* Every entry consumed was copied out before this store lets the
	 * controller reuse its slot. */
	mmio_wmb();
	*qp->cq_db = qp->cq_head;
	qp->dbstats.cq_mmio++;
}

/* Copies the command into the SQ and rings the tail doorbell, unless the
 * queue is plugged (unplugging rings it). */
static void sq_push(struct nvme_qpair *qp, const struct nvme_sqe *cmd)
{
	qp->sq[qp->sq_tail] = *cmd;
	if (++qp->sq_tail == qp->depth)
		qp->sq_tail = 0;
	if (!qp->plugged)
		sq_ring(qp);
}

/* A twin is plugged with its queue pair: submissions may go to either. */
void nvme_qpair_plug(struct nvme_qpair *qp)
{
	qp->plugged++;
	if (qp->twin)
		qp->twin->plugged++;
}

void nvme_qpair_unplug(struct nvme_qpair *qp)
{
	if (qp->twin)
		nvme_qpair_unplug(qp->twin);
	if (qp->plugged && !--qp->plugged)
		sq_ring(qp);
}

/* Sends a tracker's command (again) and starts its deadline. */
static void trk_push(struct nvme_qpair *qp, struct nvme_tracker *t)
{
	t->deadline = nvme_now_ms() + qp->timeout_ms;
	sq_push(qp, &t->sqe);
}

/* ---- building commands for a request ---- */

static void seg_advance(struct nvme_req *r, size_t bytes)
{
	while (bytes && r->seg_idx < r->nseg) {
		size_t room = r->segs[r->seg_idx].len - r->seg_off;
		if (bytes < room) {
			r->seg_off += bytes;
			return;
		}
		bytes -= room;
		r->seg_idx++;
		r->seg_off = 0;
	}
}

/* Copies `len` bytes between `buf` and the request's data starting at
 * (segs[idx], off), reaching the data through the platform's record of
 * what is mapped where. -EFAULT when a piece is not mapped (it was: the
 * caller translated it; only a mapping torn down under I/O gets here). */
static int bounce_copy(struct nvme_qpair *qp, const struct nvme_req *r, unsigned idx, size_t off,
		       void *buf, size_t len, bool to_buf)
{
	char *b = buf;

	while (len) {
		size_t n;
		void *va;

		if (idx >= r->nseg)
			return -EFAULT;
		if (off >= r->segs[idx].len) {
			off -= r->segs[idx].len;
			idx++;
			continue;
		}
		n = r->segs[idx].len - off;
		if (n > len)
			n = len;
		va = vfio_iova_to_va(qp->ctrl->vdev, r->segs[idx].iova + off, n);
		if (!va)
			return -EFAULT;
		if (to_buf)
			memcpy(b, va, n);
		else
			memcpy(va, b, n);
		b += n;
		len -= n;
		off += n;
	}
	return 0;
}

/* The last resort for data a PRP cannot describe even one block of (a
 * block spread over pieces that break mid-page, or a piece not dword
 * aligned): up to one page of whole blocks goes through the tracker's
 * first list page, which a command of at most one page does not need for
 * a list. Returns the bytes bounced, or a negative errno. */
static long bounce_start(struct nvme_qpair *qp, struct nvme_req *r, struct nvme_tracker *t,
			 struct nvme_sqe *cmd, size_t bytes, uint32_t lbs)
{
	size_t n = bytes < qp->ctrl->info.page_size ? bytes : qp->ctrl->info.page_size;
	int rc;

	n = n / lbs * lbs;
	if (!n)
		return -EINVAL;
	if (r->opc == NVME_CMD_WRITE) {
		rc = bounce_copy(qp, r, r->seg_idx, r->seg_off, t->list_va[0], n, true);
		if (rc)
			return rc;
	}
	t->bounce_len = (uint32_t)n;
	t->bounce_seg = r->seg_idx;
	t->bounce_off = r->seg_off;
	cmd->dptr.prp.prp1 = t->list_iova[0];
	cmd->dptr.prp.prp2 = 0;
	return (long)n;
}

/* Moves a range request's cursor `n` blocks on, to the next range when
 * the current one is done. */
static void range_advance(struct nvme_req *r, uint64_t n)
{
	r->next_lba += n;
	if (r->next_lba >= r->rg[r->seg_idx].slba + r->rg[r->seg_idx].nlb && ++r->seg_idx < r->nrg)
		r->next_lba = r->rg[r->seg_idx].slba;
}

/* Fills `cmd` with the next command of `r` and advances the request's
 * cursor. Returns 0 or a negative errno for a request that cannot be
 * expressed. */
static int build_next(struct nvme_qpair *qp, struct nvme_req *r, struct nvme_tracker *t,
		      struct nvme_sqe *cmd)
{
	const struct nvme_ctrl_info *ci = &qp->ctrl->info;
	const struct nvme_ns_info *ni = &r->ns->info;
	const uint32_t lbs = ni->lba_size;
	uint64_t left = r->slba + r->nlb - r->next_lba;
	uint64_t n;

	memset(cmd, 0, sizeof(*cmd));
	cmd->opc = r->opc;
	cmd->nsid = ni->nsid;
	switch (r->opc) {
	case NVME_CMD_FLUSH:
		r->next_lba = r->slba + r->nlb;
		return 0;
	case NVME_CMD_WRITE_ZEROES: {
		const struct nvme_range *x = &r->rg[r->seg_idx];

		left = x->slba + x->nlb - r->next_lba;
		n = left < 0x10000 ? left : 0x10000;
		if (ci->wz_max_bytes && n > ci->wz_max_bytes / lbs)
			n = ci->wz_max_bytes / lbs ? ci->wz_max_bytes / lbs : 1;
		cmd->cdw10 = (uint32_t)r->next_lba;
		cmd->cdw11 = (uint32_t)(r->next_lba >> 32);
		cmd->cdw12 = (uint32_t)(n - 1);
		if ((x->flags & NVME_REQ_DEALLOCATE) && ni->wz_deallocate)
			cmd->cdw12 |= NVME_WZ_DEAC;
		range_advance(r, n);
		return 0;
	}
	case NVME_CMD_DSM: {
		/* Ranges go into the tracker's first list page (256 fit in 4 KiB),
		 * as many per command as DMRL allows, each at most DMRSL blocks
		 * and all together at most DMSL. */
		struct nvme_dsm_range *rg = (struct nvme_dsm_range *)t->list_va[0];
		unsigned nr = 0, max_nr = ci->page_size / sizeof(*rg);
		uint64_t total = 0, max_total = ci->dsm_max_nlb ? ci->dsm_max_nlb : UINT64_MAX;
		uint64_t max_rl = ci->dsm_max_range_nlb ? ci->dsm_max_range_nlb : 0xffffffffu;

		if (max_nr > NVME_DSM_MAX_RANGES)
			max_nr = NVME_DSM_MAX_RANGES;
		if (ci->dsm_max_ranges && max_nr > ci->dsm_max_ranges)
			max_nr = ci->dsm_max_ranges;
		while (r->seg_idx < r->nrg && nr < max_nr && total < max_total) {
			const struct nvme_range *x = &r->rg[r->seg_idx];

			left = x->slba + x->nlb - r->next_lba;
			n = left < max_rl ? left : max_rl;
			if (n > max_total - total)
				n = max_total - total;
			rg[nr].cattr = 0;
			rg[nr].nlb = (uint32_t)n;
			rg[nr].slba = r->next_lba;
			nr++;
			total += n;
			range_advance(r, n);
		}
		cmd->dptr.prp.prp1 = t->list_iova[0];
		cmd->cdw10 = nr - 1;
		cmd->cdw11 = NVME_DSM_AD;
		return 0;
	}
	case NVME_CMD_READ:
	case NVME_CMD_WRITE: {
		const struct nvme_seg *segs = r->segs + r->seg_idx;
		unsigned nseg = r->nseg - r->seg_idx;
		size_t bytes;
		int rc = -EINVAL;

		n = ci->max_xfer / lbs;
		if (n > 0x10000)
			n = 0x10000;
		if (n > left)
			n = left;
		bytes = (size_t)n * lbs;
		if (ci->sgl) {
			unsigned max_desc = qp->list_pages * ci->page_size / sizeof(struct nvme_sgl_desc);
			size_t span = nvme_sgl_span(segs, nseg, r->seg_off, bytes, max_desc);
			size_t sbytes = span / lbs * lbs;

			if (sbytes) {
				rc = nvme_build_sgl(segs, nseg, r->seg_off, sbytes, ci->sgl_dword,
						    (struct nvme_sgl_desc *)t->list_va[0], t->list_iova[0],
						    ci->page_size / sizeof(struct nvme_sgl_desc),
						    (struct nvme_sgl_desc *)cmd->dptr.sgl1);
				if (rc == 0) {
					cmd->flags = NVME_SQE_PSDT_SGL_MPTR_CONTIG << NVME_SQE_PSDT_SHIFT;
					bytes = sbytes;
				}
			}
		}
		if (rc) {
			struct nvme_list_pages lp = {
				.va = t->list_va, .iova = t->list_iova, .npages = qp->list_pages,
			};
			/* A PRP describes only runs of whole pages; a request
			 * whose pieces break mid-page (512-byte iovecs in
			 * different pages) becomes one command per run, cut on
			 * a block boundary, as Linux's virt_boundary_mask and
			 * SPDK's PRP splitting do. */
			size_t pbytes = nvme_prp_span(segs, nseg, r->seg_off, bytes, ci->page_size) / lbs * lbs;

			if (pbytes) {
				rc = nvme_build_prp(segs, nseg, r->seg_off, pbytes, ci->page_size, &lp,
						    &cmd->dptr.prp.prp1, &cmd->dptr.prp.prp2);
				if (rc)
					return rc;
				bytes = pbytes;
			} else {
				long b = bounce_start(qp, r, t, cmd, bytes, lbs);

				if (b < 0)
					return (int)b;
				bytes = (size_t)b;
			}
		}
		n = bytes / lbs;
		cmd->cdw10 = (uint32_t)r->next_lba;
		cmd->cdw11 = (uint32_t)(r->next_lba >> 32);
		cmd->cdw12 = (uint32_t)(n - 1) | ((r->flags & NVME_REQ_FUA) ? NVME_RW_FUA : 0);
		r->next_lba += n;
		seg_advance(r, bytes);
		return 0;
	}
	default:
		return -EOPNOTSUPP;
	}
}

static bool req_fully_issued(const struct nvme_req *r)
{
	if (r->result != 0)
		return true;
	if (r->opc == NVME_CMD_DSM || r->opc == NVME_CMD_WRITE_ZEROES)
		return r->seg_idx >= r->nrg;
	return r->next_lba >= r->slba + r->nlb;
}

static void pend_pop(struct nvme_qpair *qp)
{
	struct nvme_req *r = qp->pend_head;

	r->queued = false;
	if (r->round > qp->round)
		qp->round = r->round;
	if (r->share && r->share->waiting)
		r->share->waiting--;
	qp->pend_head = r->next;
	if (!qp->pend_head)
		qp->pend_tail = NULL;
}

/* Puts r on the pending list at its turn: an owner with nothing waiting
 * goes next after the current turn; one with requests waiting, after its
 * newest. Equal turns keep their arrival order. */
static void pend_push(struct nvme_qpair *qp, struct nvme_req *r)
{
	struct nvme_req **p;

	r->round = qp->round;
	if (r->share) {
		if (r->share->waiting && r->share->last_round + 1 > r->round)
			r->round = r->share->last_round + 1;
		r->share->last_round = r->round;
		r->share->waiting++;
	}
	r->next = NULL;
	if (!qp->pend_tail || qp->pend_tail->round <= r->round) {
		if (qp->pend_tail)
			qp->pend_tail->next = r;
		else
			qp->pend_head = r;
		qp->pend_tail = r;
		return;
	}
	/* Behind every request of the same or an earlier turn; never before
	 * the head, which may be partly issued. */
	for (p = &qp->pend_head->next; *p && (*p)->round <= r->round; p = &(*p)->next)
		;
	r->next = *p;
	*p = r;
	if (!r->next)
		qp->pend_tail = r;
}

/* The one place a request completes: nothing of it in flight, nothing
 * left to issue, and off the pending list. A request that failed while
 * parts of it still waited for a slot stays queued until the issue path
 * pops it, so the completion path and the issue path cannot both see it
 * finished (issue 8: a split request completed twice when its error came
 * back while the SQ was full). */
static void req_maybe_done(struct nvme_req *r)
{
	struct nvme_share *s = r->share;

	if (r->inflight == 0 && !r->queued && req_fully_issued(r)) {
		if (s && s->held && s->qp) {
			struct nvme_ctrl *c = s->qp->ctrl;

			atomic_fetch_sub_explicit(&c->share_held, 1, memory_order_relaxed);
			if (!--s->held)
				atomic_fetch_sub_explicit(&c->share_owners, 1, memory_order_relaxed);
		}
		r->done(r);
	}
}

bool nvme_share_full(const struct nvme_qpair *qp, const struct nvme_share *s)
{
	const struct nvme_ctrl *c = qp->ctrl;
	unsigned others, cap, owners, held;
	uint64_t until;

	if (s->held < NVME_SHARE_MIN)
		return false;
	owners = atomic_load_explicit(&c->share_owners, memory_order_relaxed);
	until = atomic_load_explicit(&c->shared_until_ms, memory_order_relaxed);
	if (owners < 2 && (!until || nvme_now_ms() >= until))
		return false;
	others = owners > 1 ? owners - 1u : 0;	/* s holds some: it is one of them */
	held = atomic_load_explicit(&c->share_held, memory_order_relaxed);
	cap = others && held > s->held ? NVME_SHARE_RATIO * ((held - s->held) / others) : 0;
	return s->held >= (cap > NVME_SHARE_MIN ? cap : NVME_SHARE_MIN);
}

/* Issues commands for queued requests while trackers are free, and
 * retires requests at the head that need no more commands (a failure
 * ended them early) even when none is free. */
static void qpair_issue(struct nvme_qpair *qp)
{
	/* done() may submit again; the outer call picks that up. While the
	 * controller is reset, requests wait here. */
	if (qp->issuing || qp->resetting)
		return;
	qp->issuing = true;
	while (qp->pend_head) {
		struct nvme_req *r = qp->pend_head;
		struct nvme_tracker *t;
		uint16_t cid;
		int rc;

		if (req_fully_issued(r)) {
			pend_pop(qp);
			req_maybe_done(r);
			continue;
		}
		if (!qp->nfree)
			break;
		t = trk_get(qp, &cid);
		rc = build_next(qp, r, t, &t->sqe);
		if (rc) {
			trk_put(qp, cid);
			log_debug(r->ns->info.name, "cannot build command at LBA %llu: %s",
				  (unsigned long long)r->next_lba, strerror(-rc));
			r->result = rc;
			pend_pop(qp);
			req_maybe_done(r);
			continue;
		}
		t->req = r;
		t->sqe.cid = cid;
		r->inflight++;
		qp->inflight++;
		if (req_fully_issued(r))
			pend_pop(qp);
		trk_push(qp, t);
	}
	qp->issuing = false;
}

int nvme_submit(struct nvme_qpair *qp, struct nvme_req *r)
{
	const struct nvme_ns_info *ni;
	uint64_t bytes = 0, need;

	if (!r || !r->ns || !r->done)
		return -EINVAL;
	ni = &r->ns->info;
	switch (r->opc) {
	case NVME_CMD_FLUSH:
		r->nlb = 0;
		r->slba = 0;
		break;
	case NVME_CMD_READ:
	case NVME_CMD_WRITE:
		if (r->nlb > UINT64_MAX / ni->lba_size)
			return -EINVAL;
		need = r->nlb * ni->lba_size;
		for (unsigned i = 0; i < r->nseg && bytes < need; i++)
			bytes += r->segs[i].len;
		if (bytes < need)
			return -EINVAL;
		if (!r->nlb || r->slba > ni->nlba || r->nlb > ni->nlba - r->slba)
			return -EINVAL;
		break;
	case NVME_CMD_WRITE_ZEROES:
	case NVME_CMD_DSM:
		if (r->ranges) {
			if (!r->nranges)
				return -EINVAL;
			r->rg = r->ranges;
			r->nrg = r->nranges;
		} else {
			r->one = (struct nvme_range){ .slba = r->slba, .nlb = r->nlb, .flags = r->flags };
			r->rg = &r->one;
			r->nrg = 1;
		}
		for (unsigned i = 0; i < r->nrg; i++) {
			const struct nvme_range *x = &r->rg[i];

			if (!x->nlb || x->slba > ni->nlba || x->nlb > ni->nlba - x->slba)
				return -EINVAL;
		}
		break;
	default:
		return -EOPNOTSUPP;
	}
	/* While the controller is polled, the polled twin takes it; but an
	 * owner with requests waiting for a slot stays on the list that has
	 * them: turns are kept per list (pend_push). */
	if (r->share && r->share->waiting && r->share->qp &&
	    (r->share->qp == qp || r->share->qp == qp->twin))
		qp = r->share->qp;
	else if (qp->twin && qp->polling && !qp->twin->dead)
		qp = qp->twin;
	if (qp->dead)
		return -ENODEV;
	r->result = 0;
	r->status = 0;
	r->next = NULL;
	r->next_lba = r->slba;
	r->seg_idx = 0;
	r->seg_off = 0;
	if (r->opc == NVME_CMD_DSM || r->opc == NVME_CMD_WRITE_ZEROES)
		r->next_lba = r->rg[0].slba;
	r->inflight = 0;
	r->queued = true;
	/* Flush covers nothing, so mark it by one pseudo-LBA to issue. */
	if (r->opc == NVME_CMD_FLUSH)
		r->nlb = 1;
	if (r->share) {
		struct nvme_ctrl *c = qp->ctrl;

		if (r->share->held++ == 0)
			atomic_fetch_add_explicit(&c->share_owners, 1, memory_order_relaxed);
		/* Where its requests wait from now on (the twin or not). */
		if (!r->share->waiting)
			r->share->qp = qp;
		atomic_fetch_add_explicit(&c->share_held, 1, memory_order_relaxed);
		if (atomic_load_explicit(&c->share_owners, memory_order_relaxed) > 1)
			atomic_store_explicit(&c->shared_until_ms, nvme_now_ms() + NVME_SHARE_GRACE_MS,
					      memory_order_relaxed);
	}
	pend_push(qp, r);
	qpair_issue(qp);
	return 0;
}

/* ---- completions ---- */

/* How long to wait before retrying a command that ended with `status`:
 * the Command Retry Delay the controller chose (CRD selects one of the
 * CRDT values from Identify), else a pause for Namespace Not Ready, else
 * none. */
static unsigned retry_delay_ms(const struct nvme_qpair *qp, uint16_t status)
{
	unsigned crd = NVME_STATUS_CRD(status), ms = 0;

	if (crd)
		ms = qp->ctrl->info.crdt[crd - 1] * 100u;
	else if (NVME_STATUS_SCT(status) == NVME_SCT_GENERIC &&
		 NVME_STATUS_SC(status) == NVME_SC_NS_NOT_READY)
		ms = NVME_NNR_RETRY_DELAY_MS;
	return ms < NVME_MAX_RETRY_DELAY_MS ? ms : NVME_MAX_RETRY_DELAY_MS;
}

void nvme_qpair_retry_due(struct nvme_qpair *qp)
{
	uint64_t now;

	if (!qp->ndelayed || qp->dead || qp->resetting)
		return;
	now = nvme_now_ms();
	for (unsigned cid = 0; cid + 1u < qp->depth && qp->ndelayed; cid++) {
		struct nvme_tracker *t = &qp->trk[cid];

		if (t->busy && t->retry_at && now >= t->retry_at) {
			t->retry_at = 0;
			qp->ndelayed--;
			trk_push(qp, t);
		}
	}
}

/* `now` is the reap's time (monotonic ns), taken once a pass. */
static void complete_one(struct nvme_qpair *qp, const struct nvme_cqe *cqe, uint64_t now)
{
	uint16_t status = (uint16_t)(cqe->status >> 1);
	uint16_t cid = cqe->cid;
	struct nvme_tracker *t;
	struct nvme_req *r;

	/* The controller is a peer too: a completion for another SQ, or for
	 * a CID we did not hand out, is dropped. */
	if (cqe->sqid != qp->qid) {
		log_warn(qp->ctrl->info.bdf, "queue %u: completion naming SQ %u ignored", qp->qid,
			 cqe->sqid);
		return;
	}
	if (cid >= qp->depth - 1u || !qp->trk[cid].busy) {
		log_warn(qp->ctrl->info.bdf, "queue %u: completion for unknown command id %u ignored",
			 qp->qid, cid);
		return;
	}
	t = &qp->trk[cid];
	if ((status & 0x7ff) && nvme_status_is_retry(status) && t->retries < NVME_MAX_RETRIES) {
		unsigned delay = retry_delay_ms(qp, status);

		t->retries++;
		log_debug(qp->ctrl->info.bdf, "queue %u cid %u: %s, retry %u in %u ms", qp->qid, cid,
			  nvme_status_str(status), t->retries, delay);
		if (!delay) {
			trk_push(qp, t);
			return;
		}
		t->retry_at = nvme_now_ms() + delay;
		qp->ndelayed++;
		return;
	}
	if (t->wait) {
		t->wait->done = true;
		t->wait->status = status & 0x7ff;
		t->wait->dw0 = cqe->dw0;
		trk_put(qp, cid);
		qp->inflight--;
		return;
	}
	r = t->req;
	if (r && t->bounce_len && r->opc == NVME_CMD_READ && !(status & 0x7ff)) {
		int rc = bounce_copy(qp, r, t->bounce_seg, t->bounce_off, t->list_va[0], t->bounce_len,
				     false);
		if (rc && r->result == 0)
			r->result = rc;
	}
	if (r) {
		qp->iostats.commands++;
		qp->iostats.device_ns += now > t->sent_ns ? now - t->sent_ns : 0;
	}
	trk_put(qp, cid);
	qp->inflight--;
	if (!r) /* an Abort, or a sync command that timed out earlier */
		return;
	r->inflight--;
	if ((status & 0x7ff) && r->result == 0) {
		r->status = status & 0x7ff;
		r->result = nvme_status_to_errno(status);
		log_debug(r->ns->info.name, "command %#x failed: %s (status %#x)", t->sqe.opc,
			  nvme_status_str(status), status);
	}
	req_maybe_done(r);
}

unsigned nvme_qpair_process(struct nvme_qpair *qp)
{
	unsigned n = 0;
	uint64_t now = 0;

	/* What completions make room for (and retries) goes out with one
	 * doorbell write. */
	nvme_qpair_plug(qp);
	nvme_qpair_retry_due(qp);
	for (;;) {
		volatile struct nvme_cqe *e = &qp->cq[qp->cq_head];
		struct nvme_cqe cqe;

		if ((e->status & NVME_CQE_PHASE) != qp->phase)
			break;
		/* Read the entry, and the data the command moved, only after
		 * its phase bit says it is new. */
		dma_rmb();
		cqe = *(struct nvme_cqe *)e;
		if (++qp->cq_head == qp->depth) {
			qp->cq_head = 0;
			qp->phase ^= 1;
		}
		if (!n)
			now = now_ns();
		complete_one(qp, &cqe, now);
		n++;
	}
	if (n) {
		cq_ring(qp);
		qpair_issue(qp);
	}
	nvme_qpair_unplug(qp);
	return n;
}

unsigned nvme_qpair_busy(const struct nvme_qpair *qp)
{
	unsigned n = qp->inflight;

	for (const struct nvme_req *r = qp->pend_head; r; r = r->next)
		n++;
	return n + (qp->twin ? nvme_qpair_busy(qp->twin) : 0);
}

bool nvme_qpair_has_work(const struct nvme_qpair *qp)
{
	if (qp->ctrl->failed)
		return false;
	return qp->inflight || qp->pend_head || (qp->twin && (qp->twin->inflight || qp->twin->pend_head));
}

static int send_abort(struct nvme_qpair *admin, uint16_t sqid, uint16_t cid)
{
	struct nvme_tracker *t;
	uint16_t acid;

	if (admin->dead || admin->resetting)
		return -ENODEV;
	t = trk_get(admin, &acid);
	if (!t)
		return -EBUSY;
	/* No req and no waiter: the completion only frees the tracker. The
	 * Abort's own answer does not matter; the aborted command's does. */
	memset(&t->sqe, 0, sizeof(t->sqe));
	t->sqe.opc = NVME_ADM_ABORT;
	t->sqe.cid = acid;
	t->sqe.cdw10 = sqid | ((uint32_t)cid << 16);
	admin->inflight++;
	trk_push(admin, t);
	return 0;
}

/* Writes both doorbell registers with the values the shadows hold, from a
 * deadline check that finds a late command: if the controller missed
 * a shadow update (it set a wrong EventIdx, or read the shadow before our
 * store), this costs two register writes and the command is not lost. */
static void db_kick(struct nvme_qpair *qp)
{
	if (!qp->sq_shadow)
		return;
	mmio_wmb();
	*qp->sq_db = qp->db_tail;
	*qp->cq_db = qp->db_head;
	qp->dbstats.sq_mmio++;
	qp->dbstats.cq_mmio++;
}

bool nvme_qpair_check_deadlines(struct nvme_qpair *qp, struct nvme_qpair *admin, uint64_t now)
{
	bool reset = false, kicked = false;

	if (qp->dead || qp->resetting || !qp->inflight)
		return false;
	nvme_qpair_process(qp);
	for (unsigned cid = 0; cid + 1u < qp->depth; cid++) {
		struct nvme_tracker *t = &qp->trk[cid];
		const char *what;

		if (!t->busy || t->retry_at || now < t->deadline)
			continue;
		if (t->expired) {
			reset = true;
			continue;
		}
		if (!kicked) {
			db_kick(qp);
			kicked = true;
		}
		if (qp->qid && !t->aborted && send_abort(admin, qp->qid, (uint16_t)cid) == 0) {
			t->aborted = true;
			t->deadline = now + (qp->timeout_ms < NVME_ABORT_GRACE_MS ? qp->timeout_ms
										  : NVME_ABORT_GRACE_MS);
			log_warn(qp->ctrl->info.bdf, "queue %u: command %#x (cid %u) timed out after %u ms; aborting",
				 qp->qid, t->sqe.opc, cid, qp->timeout_ms);
			continue;
		}
		what = t->aborted ? "did not end after an Abort" : "timed out";
		log_warn(qp->ctrl->info.bdf, "queue %u: command %#x (cid %u) %s", qp->qid, t->sqe.opc, cid,
			 what);
		t->expired = true;
		reset = true;
	}
	return reset;
}

/* A synchronous command caught by a reset or a dead controller: its
 * waiter learns it was aborted; the slot is free again. */
static void end_waiter(struct nvme_qpair *qp, uint16_t cid)
{
	struct nvme_tracker *t = &qp->trk[cid];

	t->wait->done = true;
	t->wait->status = NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_ABORT_SQ_DELETED);
	trk_put(qp, cid);
	qp->inflight--;
}

unsigned nvme_qpair_reset_begin(struct nvme_qpair *qp, bool keep, int err)
{
	unsigned kept = 0;

	qp->resetting = true;
	/* The controller is disabled: the rings start over empty. */
	qp->sq_tail = 0;
	qp->db_tail = 0;
	qp->cq_head = 0;
	qp->db_head = 0;
	qp->phase = 1;
	memset(qp->cq_mem.va, 0, qp->cq_mem.len);
	if (qp->sq_shadow) {
		/* The controller forgot the buffers with CC.EN = 0 (5.8: not
		 * retained across a Controller Level Reset) and the queue
		 * starts over at 0: so do its entries. A stale EventIdx could
		 * skip the new queue's first doorbell write, and QEMU takes a
		 * stale shadow for the tail of a queue created after the
		 * config. Whoever re-creates the queue configures them again. */
		*qp->sq_shadow = 0;
		*qp->cq_shadow = 0;
		*qp->sq_ei = 0;
		*qp->cq_ei = 0;
	}
	for (unsigned cid = 0; cid + 1u < qp->depth; cid++) {
		struct nvme_tracker *t = &qp->trk[cid];
		struct nvme_req *r;

		if (!t->busy)
			continue;
		if (t->wait) {
			end_waiter(qp, (uint16_t)cid);
			continue;
		}
		r = t->req;
		/* Every request command the reset caught, the one that timed
		 * out included, is sent again within its retry budget, as
		 * Linux retries requests cancelled by a reset; a command that
		 * hangs the controller every time fails after its retries. */
		if (r && keep && t->retries < NVME_MAX_RETRIES) {
			if (!t->retry_at)
				t->retries++;
			t->aborted = false;
			t->expired = false;
			kept++;
			continue;
		}
		trk_put(qp, (uint16_t)cid);
		qp->inflight--;
		if (!r)
			continue;
		r->inflight--;
		if (!r->result)
			r->result = err;
		req_maybe_done(r);
	}
	return kept;
}

void nvme_qpair_reset_end(struct nvme_qpair *qp)
{
	qp->resetting = false;
	/* What is sent again and what waited go out with one doorbell. */
	nvme_qpair_plug(qp);
	for (unsigned cid = 0; cid + 1u < qp->depth; cid++) {
		struct nvme_tracker *t = &qp->trk[cid];

		if (t->busy && !t->retry_at)
			trk_push(qp, t);
	}
	qpair_issue(qp);
	nvme_qpair_unplug(qp);
}

void nvme_qpair_abort_all(struct nvme_qpair *qp, int err)
{
	qp->dead = true;
	while (qp->pend_head) {
		struct nvme_req *r = qp->pend_head;
		pend_pop(qp);
		if (!r->result)
			r->result = err;
		r->next_lba = r->slba + r->nlb;
		req_maybe_done(r);
	}
	for (unsigned cid = 0; cid + 1u < qp->depth; cid++) {
		struct nvme_tracker *t = &qp->trk[cid];
		struct nvme_req *r;

		if (!t->busy)
			continue;
		if (t->wait) {
			end_waiter(qp, (uint16_t)cid);
			continue;
		}
		r = t->req;
		trk_put(qp, (uint16_t)cid);
		qp->inflight--;
		if (!r)
			continue;
		r->inflight--;
		if (!r->result)
			r->result = err;
		req_maybe_done(r);
	}
}

/* ---- shadow doorbells (Doorbell Buffer Config, 5.8) ---- */

/* Publishes a doorbell value in its shadow and says whether the register
 * must be written too. Linux's nvme_dbbuf_update_and_check_event, except
 * that the old value is our own record, not read back from memory the
 * controller may write, and that an EventIdx that is no index of the
 * queue asks for the register write: a bogus one costs a register write,
 * never a doorbell the controller does not see. */
static bool shadow_db_update(const struct nvme_qpair *qp, volatile uint32_t *shadow,
			     volatile uint32_t *ei, uint16_t old, uint16_t val)
{
	uint32_t e;

	/* The queue entries the value hands over (SQEs and their lists; for
	 * a CQ, the entries copied out) before the value itself. */
	dma_wmb();
	*shadow = val;
	/* The controller stores its EventIdx and then reads the shadow; we
	 * store the shadow and then read the EventIdx. With a full fence on
	 * both sides, at least one sees the other's store: the controller
	 * sees the new value, or we see an EventIdx that asks for the
	 * register write. */
	dma_mb();
	e = *ei;
	/* Doorbell values wrap at the queue's depth, not at 2^16; for
	 * values below the depth, the 16-bit test below is the ring's. */
	if (e >= qp->depth)
		return true;
	return nvme_dbbuf_need_event((uint16_t)e, val, old);
}

int nvme_qpair_dbbuf_attach(struct nvme_qpair *qp, void *dbs, void *eis, size_t len)
{
	uint32_t stride = qp->ctrl->db_stride;
	size_t sq = NVME_DB_SQ_OFF(qp->qid, stride), cq = NVME_DB_CQ_OFF(qp->qid, stride);

	if (!qp->qid)
		return -EINVAL;
	if (cq + sizeof(uint32_t) > len)
		return -ERANGE;
	qp->sq_shadow = (volatile uint32_t *)((char *)dbs + sq);
	qp->cq_shadow = (volatile uint32_t *)((char *)dbs + cq);
	qp->sq_ei = (volatile uint32_t *)((char *)eis + sq);
	qp->cq_ei = (volatile uint32_t *)((char *)eis + cq);
	*qp->sq_shadow = qp->db_tail;
	*qp->cq_shadow = qp->db_head;
	return 0;
}

void nvme_qpair_dbbuf_detach(struct nvme_qpair *qp)
{
	qp->sq_shadow = qp->cq_shadow = NULL;
	qp->sq_ei = qp->cq_ei = NULL;
}

void nvme_qpair_db_stats(const struct nvme_qpair *qp, struct nvme_db_stats *out)
{
	*out = qp->dbstats;
	if (qp->twin) {
		out->sq_mmio += qp->twin->dbstats.sq_mmio;
		out->sq_shadow_only += qp->twin->dbstats.sq_shadow_only;
		out->cq_mmio += qp->twin->dbstats.cq_mmio;
		out->cq_shadow_only += qp->twin->dbstats.cq_shadow_only;
	}
}

void nvme_qpair_io_stats(const struct nvme_qpair *qp, struct nvme_io_stats *out)
{
	*out = qp->iostats;
	if (qp->twin) {
		out->commands += qp->twin->iostats.commands;
		out->device_ns += qp->twin->iostats.device_ns;
	}
}

int nvme_qpair_exec_sync(struct nvme_qpair *qp, struct nvme_sqe *cmd, unsigned timeout_ms,
			 uint16_t *status, uint32_t *dw0)
{
	struct nvme_waiter w = { 0 };
	struct nvme_tracker *t;
	uint64_t deadline = nvme_now_ms() + timeout_ms;
	uint16_t cid;
	int fd;

	if (qp->dead)
		return -ENODEV;
	t = trk_get(qp, &cid);
	if (!t)
		return -EBUSY;
	t->wait = &w;
	cmd->cid = cid;
	t->sqe = *cmd;
	qp->inflight++;
	sq_push(qp, &t->sqe);
	/* Past this, a command left behind by a timeout gets the controller
	 * reset by the periodic check. */
	t->deadline = deadline;

	fd = nvme_ctrl_vector_fd(qp->ctrl, qp->vector);
	while (!w.done) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = nvme_now_ms();

		if (now >= deadline) {
			/* The tracker stays busy: the controller may still
			 * write; the caller treats the controller as failed. */
			t->wait = NULL;
			log_err(qp->ctrl->info.bdf, "queue %u: command %#x timed out after %u ms",
				qp->qid, cmd->opc, timeout_ms);
			return -ETIMEDOUT;
		}
		/* Wake at least every 100 ms and look at the CQ anyway, so a lost
		 * interrupt costs time, not the command. */
		if (fd >= 0 && poll(&pfd, 1, (int)(deadline - now < 100 ? deadline - now : 100)) > 0) {
			/* poll() is level-triggered: drain the eventfd that
			 * service_vector leaves alone for an edge-triggered
			 * loop, or the next poll() returns at once. */
			uint64_t cnt;

			if (nvme_ctrl_vector_edge(qp->ctrl, qp->vector) &&
			    read(fd, &cnt, sizeof(cnt)) < 0) {
				/* EAGAIN: another waiter drained it */
			}
			nvme_ctrl_service_vector(qp->ctrl, qp->vector);
		} else
			nvme_qpair_process(qp);
	}
	if (status)
		*status = w.status;
	if (dw0)
		*dw0 = w.dw0;
	return nvme_status_to_errno(w.status);
}
