#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nvme/nvme_priv.h"
#include "util/log.h"

#define MAX_NAMESPACES 1024

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits until (CSTS & mask) == want, bounded by timeout_ms. A controller
 * fatal status ends the wait early, except while shutting down, where CFS
 * may legitimately come with the shutdown. */
static int wait_csts(struct nvme_ctrl *c, uint32_t mask, uint32_t want, unsigned timeout_ms,
		     bool cfs_fatal, const char *what)
{
	uint64_t deadline = mono_ms() + timeout_ms;

	for (;;) {
		uint32_t csts = nvme_reg_read32(c, NVME_REG_CSTS);

		if (csts == 0xffffffffu) {
			log_err(c->info.bdf, "controller gone (CSTS reads all ones) while %s", what);
			return -ENODEV;
		}
		if (cfs_fatal && (csts & NVME_CSTS_CFS)) {
			log_err(c->info.bdf, "controller fatal status while %s", what);
			return -EIO;
		}
		if ((csts & mask) == want)
			return 0;
		if (mono_ms() >= deadline) {
			log_err(c->info.bdf, "timed out after %u ms %s (CSTS %#x)", timeout_ms, what, csts);
			return -ETIMEDOUT;
		}
		sleep_ms(1);
	}
}

static void ctrl_fail(struct nvme_ctrl *c, const char *why);

static int ctrl_disable(struct nvme_ctrl *c)
{
	uint32_t cc = nvme_reg_read32(c, NVME_REG_CC);
	uint32_t csts = nvme_reg_read32(c, NVME_REG_CSTS);

	/* 3.5.1: clearing EN while RDY is still 0 after setting it is undefined;
	 * let a controller that is coming up finish first. */
	if ((cc & NVME_CC_EN) && !(csts & NVME_CSTS_RDY))
		(void)wait_csts(c, NVME_CSTS_RDY, NVME_CSTS_RDY, c->timeout_ms, true, "waiting for ready before reset");
	if (cc & NVME_CC_EN)
		nvme_reg_write32(c, NVME_REG_CC, cc & ~NVME_CC_EN);
	return wait_csts(c, NVME_CSTS_RDY, 0, c->timeout_ms, false, "disabling the controller");
}

static int admin_identify(struct nvme_ctrl *c, uint8_t cns, uint32_t nsid, struct dma_buf *buf)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_IDENTIFY, .nsid = nsid };

	memset(buf->va, 0, NVME_IDENTIFY_SIZE);
	cmd.dptr.prp.prp1 = buf->iova;
	cmd.cdw10 = cns;
	return nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL);
}

static int identify_ctrl(struct nvme_ctrl *c, struct dma_buf *buf)
{
	const struct nvme_id_ctrl *id = buf->va;
	struct nvme_ctrl_info *ci = &c->info;
	uint32_t mpsmin = 1u << (12 + NVME_CAP_FIELD(c->cap, MPSMIN));
	int rc = admin_identify(c, NVME_ID_CNS_CTRL, 0, buf);

	if (rc) {
		log_err(ci->bdf, "Identify Controller failed: %s", strerror(-rc));
		return rc;
	}
	nvme_trim_string(ci->serial, id->sn, sizeof(id->sn));
	nvme_trim_string(ci->model, id->mn, sizeof(id->mn));
	nvme_trim_string(ci->firmware, id->fr, sizeof(id->fr));
	if (!ci->serial[0]) {
		log_err(ci->bdf, "controller reports an empty serial number; it cannot be named");
		return -EINVAL;
	}
	/* The entry sizes we use must lie within what the controller allows. */
	if ((id->sqes & 0xf) > NVME_SQE_SIZE_LOG2 || (id->sqes >> 4) < NVME_SQE_SIZE_LOG2 ||
	    (id->cqes & 0xf) > NVME_CQE_SIZE_LOG2 || (id->cqes >> 4) < NVME_CQE_SIZE_LOG2) {
		log_err(ci->bdf, "unsupported queue entry sizes (SQES %#x, CQES %#x)", id->sqes, id->cqes);
		return -ENOTSUP;
	}
	ci->max_xfer = NVME_MAX_XFER;
	ci->mdts_bytes = 0;
	if (id->mdts) {
		/* MDTS is a power of two in units of CAP.MPSMIN. */
		uint64_t m = id->mdts >= 32 ? UINT64_MAX : (uint64_t)mpsmin << id->mdts;
		ci->mdts_bytes = m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
		if (m < ci->max_xfer)
			ci->max_xfer = (uint32_t)m;
	}
	ci->nn = id->nn;
	for (unsigned i = 0; i < 3; i++)
		ci->crdt[i] = id->crdt[i];
	c->shutdown_ms = id->rtd3e / 1000;
	ci->vwc = id->vwc & NVME_VWC_PRESENT;
	ci->dsm = id->oncs & NVME_ONCS_DSM;
	ci->write_zeroes = id->oncs & NVME_ONCS_WRITE_ZEROES;
	ci->shadow_db_supported = id->oacs & NVME_OACS_DBBUF;
	switch (id->sgls & NVME_SGLS_SUPPORT_MASK) {
	case NVME_SGLS_SUPPORTED:
		ci->sgl_supported = true;
		break;
	case NVME_SGLS_DWORD_ALIGNED:
		ci->sgl_supported = true;
		ci->sgl_dword = true;
		break;
	default:
		break;
	}
	ci->sgl = ci->sgl_supported && !c->opts.nosgl;
	return 0;
}

/* Write Zeroes and Dataset Management limits (NVM Command Set spec
 * 4.1.5.2). Controllers before 1.4 know no CNS 06h and may misbehave on
 * it (Linux asks only from 1.4 on too); then, and when it fails, DSM has
 * no limits beyond the command's own, and Write Zeroes is held to MDTS as
 * Linux holds it. Every value is the controller's: each is bounded before
 * use. */
static void identify_ctrl_nvm(struct nvme_ctrl *c, struct dma_buf *buf)
{
	const struct nvme_id_ctrl_nvm *id = buf->va;
	struct nvme_ctrl_info *ci = &c->info;
	struct nvme_sqe cmd = { .opc = NVME_ADM_IDENTIFY };
	uint32_t vs = nvme_reg_read32(c, NVME_REG_VS);
	int rc;

	ci->wz_max_bytes = ci->mdts_bytes;
	if (vs < NVME_VS(1, 4))
		return;
	memset(buf->va, 0, NVME_IDENTIFY_SIZE);
	cmd.dptr.prp.prp1 = buf->iova;
	cmd.cdw10 = NVME_ID_CNS_CTRL_CSI;
	cmd.cdw11 = NVME_CSI_NVM << NVME_ID_CSI_SHIFT;
	rc = nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL);
	if (rc) {
		log_debug(ci->bdf, "Identify (CNS 06h, NVM) failed: %s; no DSM or Write Zeroes limits",
			  strerror(-rc));
		return;
	}
	if (id->wzsl) {
		/* 2^WZSL units of the minimum page size, 4 KiB here */
		uint64_t m = id->wzsl >= 20 ? UINT32_MAX : 4096ull << id->wzsl;
		ci->wz_max_bytes = m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
	}
	ci->dsm_max_ranges = id->dmrl;
	ci->dsm_max_range_nlb = id->dmrsl;
	ci->dsm_max_nlb = id->dmsl;
	log_debug(ci->bdf, "WZSL %u DMRL %u DMRSL %u DMSL %llu", id->wzsl, id->dmrl, id->dmrsl,
		  (unsigned long long)id->dmsl);
}

/* With retry delay times to offer, ask the controller to use them: it sets
 * CQE.CRD only once the host enables ACRE (Host Behavior Support). Older
 * controllers lack the feature; then retries simply carry no delay. */
static void enable_acre(struct nvme_ctrl *c, struct dma_buf *buf)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_SET_FEATURES };
	int rc;

	if (!c->info.crdt[0] && !c->info.crdt[1] && !c->info.crdt[2])
		return;
	memset(buf->va, 0, NVME_HOST_BEHAVIOR_SIZE);
	((uint8_t *)buf->va)[0] = NVME_HOST_BEHAVIOR_ACRE;
	cmd.dptr.prp.prp1 = buf->iova;
	cmd.cdw10 = NVME_FEAT_HOST_BEHAVIOR;
	rc = nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL);
	if (rc)
		log_debug(c->info.bdf, "Set Features (Host Behavior Support, ACRE) failed: %s", strerror(-rc));
}

static int set_num_queues(struct nvme_ctrl *c, unsigned want, unsigned *got)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_SET_FEATURES };
	uint32_t dw0 = 0;
	unsigned nsq, ncq;
	int rc;

	cmd.cdw10 = NVME_FEAT_NUM_QUEUES;
	cmd.cdw11 = (want - 1) | ((want - 1) << 16);	/* both 0-based */
	rc = nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, &dw0);
	if (rc) {
		log_err(c->info.bdf, "Set Features (Number of Queues) failed: %s", strerror(-rc));
		return rc;
	}
	nsq = (dw0 & 0xffff) + 1;
	ncq = (dw0 >> 16) + 1;
	*got = want;
	if (nsq < *got)
		*got = nsq;
	if (ncq < *got)
		*got = ncq;
	return 0;
}

/* Creates an allocated queue pair's CQ and SQ on the controller. A polled
 * twin's refusal is only an info line: its caller says what follows (at
 * open, a warning that it goes on without; after a reset, the failure). */
static int create_io_queue_hw(struct nvme_ctrl *c, struct nvme_qpair *qp)
{
	struct nvme_sqe cmd = { 0 };
	uint16_t qid = qp->qid, depth = qp->depth;
	unsigned vector = qp->vector;
	int lvl = qp->polled ? LOG_INFO : LOG_ERR;
	int rc;

	cmd.opc = NVME_ADM_CREATE_CQ;
	cmd.dptr.prp.prp1 = qp->cq_mem.iova;
	cmd.cdw10 = qid | ((uint32_t)(depth - 1) << 16);
	cmd.cdw11 = NVME_CREATE_Q_PC | (qp->polled ? 0 : NVME_CREATE_CQ_IEN) |
		    ((uint32_t)vector << NVME_CREATE_CQ_IV_SHIFT);
	rc = nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL);
	if (rc) {
		log_msg(lvl, c->info.bdf, "Create I/O CQ %u failed: %s", qid, strerror(-rc));
		return rc;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_CREATE_SQ;
	cmd.dptr.prp.prp1 = qp->sq_mem.iova;
	cmd.cdw10 = qid | ((uint32_t)(depth - 1) << 16);
	cmd.cdw11 = NVME_CREATE_Q_PC | ((uint32_t)qid << NVME_CREATE_SQ_CQID_SHIFT);
	rc = nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL);
	if (rc) {
		log_msg(lvl, c->info.bdf, "Create I/O SQ %u failed: %s", qid, strerror(-rc));
		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = NVME_ADM_DELETE_CQ;
		cmd.cdw10 = qid;
		nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL);
		return rc;
	}
	return 0;
}

static int create_io_queue(struct nvme_ctrl *c, uint16_t qid, uint16_t depth, unsigned vector,
			   unsigned list_pages, bool irq, struct nvme_qpair **out)
{
	struct nvme_qpair *qp;
	int rc = nvme_qpair_create(c, qid, depth, vector, list_pages, &qp);

	if (rc)
		return rc;
	qp->polled = !irq;
	rc = create_io_queue_hw(c, qp);
	if (rc) {
		nvme_qpair_destroy(qp);
		return rc;
	}
	*out = qp;
	return 0;
}

/* Shadow doorbells (Doorbell Buffer Config, 5.8), as Linux's nvme_dbbuf_*
 * use them: the I/O queues' doorbell values go to a page of host memory
 * and reach the registers only when the controller's EventIdx page asks,
 * which saves a trap to the hypervisor per doorbell on an emulated
 * controller. One page each, as the spec has them (the queues whose
 * entries do not fit keep register writes). Sent once the I/O queues
 * exist and before they carry a command, at bring-up and after every
 * reset (the controller forgets the buffers with CC.EN = 0; Linux sends it
 * again before it restarts I/O too). A controller that refuses it gets
 * register writes only from then on. One that does not answer may still
 * carry it out and then read doorbells from zeroed pages: as after any
 * admin command that timed out, the controller is not used (-ETIMEDOUT). */
static int dbbuf_start(struct nvme_ctrl *c)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_DBBUF_CONFIG };
	const size_t len = c->info.page_size;
	unsigned attached = 0;
	int rc;

	c->info.shadow_db = false;
	if (!c->info.shadow_db_supported || c->opts.no_shadow_db || c->dbbuf_failed || !c->nr_hw)
		return 0;
	if (!c->dbbuf_dbs.va) {
		rc = vfio_dma_alloc(c->vdev, len, &c->dbbuf_dbs);
		if (!rc)
			rc = vfio_dma_alloc(c->vdev, len, &c->dbbuf_eis);
		if (rc) {
			log_warn(c->info.bdf, "no memory for shadow doorbells: %s; using register writes",
				 strerror(-rc));
			c->dbbuf_failed = true;
			return 0;
		}
	}
	/* Zero, whatever a controller wrote there before it was reset: the
	 * queues start over at 0. */
	memset(c->dbbuf_dbs.va, 0, len);
	memset(c->dbbuf_eis.va, 0, len);
	cmd.dptr.prp.prp1 = c->dbbuf_dbs.iova;
	cmd.dptr.prp.prp2 = c->dbbuf_eis.iova;
	rc = nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL);
	if (rc == -ETIMEDOUT)
		return rc;
	if (rc) {
		log_warn(c->info.bdf, "Doorbell Buffer Config failed: %s; using register writes",
			 strerror(-rc));
		c->dbbuf_failed = true;
		for (unsigned i = 0; i < c->nr_hw; i++)
			nvme_qpair_dbbuf_detach(c->io[i]);
		return 0;
	}
	for (unsigned i = 0; i < c->nr_hw; i++) {
		if (nvme_qpair_dbbuf_attach(c->io[i], c->dbbuf_dbs.va, c->dbbuf_eis.va, len) == 0)
			attached++;
		else
			log_debug(c->info.bdf, "queue %u: shadow doorbells lie beyond the page (stride %u)",
				  c->io[i]->qid, c->db_stride);
	}
	c->info.shadow_db = attached > 0;
	return 0;
}

static void ns_setup(struct nvme_ctrl *c, struct nvme_ns *ns, uint32_t nsid,
		     const struct nvme_id_ns *id)
{
	struct nvme_ns_info *ni = &ns->info;
	unsigned fmt = id->flbas & NVME_NS_FLBAS_LO_MASK;
	const struct nvme_lbaf *lbaf;

	ns->ctrl = c;
	ni->nsid = nsid;
	snprintf(ni->name, sizeof(ni->name), "%s:n%u", c->info.serial, nsid);
	if (id->nlbaf >= 16)
		fmt |= ((id->flbas >> NVME_NS_FLBAS_HI_SHIFT) & NVME_NS_FLBAS_HI_MASK) << 4;
	if (fmt > id->nlbaf || fmt >= 64) {
		snprintf(ni->skip_reason, sizeof(ni->skip_reason), "LBA format %u not among %u formats",
			 fmt, id->nlbaf + 1u);
		return;
	}
	lbaf = &id->lbaf[fmt];
	ni->nlba = id->nsze;
	ni->readonly = id->nsattr & NVME_NS_NSATTR_WP;
	ni->deallocated_reads_zero = (id->dlfeat & NVME_NS_DLFEAT_READ_MASK) == NVME_NS_DLFEAT_READ_ZEROES;
	ni->wz_deallocate = id->dlfeat & NVME_NS_DLFEAT_WZ_DEAC;
	if (lbaf->ms) {
		snprintf(ni->skip_reason, sizeof(ni->skip_reason),
			 "formatted with %u bytes of metadata per block (unsupported)", lbaf->ms);
		return;
	}
	if (id->dps & NVME_NS_DPS_PIT_MASK) {
		snprintf(ni->skip_reason, sizeof(ni->skip_reason), "protection information enabled (unsupported)");
		return;
	}
	if (lbaf->lbads < 9 || lbaf->lbads > 12) {
		snprintf(ni->skip_reason, sizeof(ni->skip_reason), "LBA size 2^%u unsupported (512..4096)",
			 lbaf->lbads);
		return;
	}
	ni->lba_size = 1u << lbaf->lbads;
	if (!ni->nlba) {
		snprintf(ni->skip_reason, sizeof(ni->skip_reason), "size 0");
		return;
	}
	if (ni->nlba > UINT64_MAX / ni->lba_size) {
		snprintf(ni->skip_reason, sizeof(ni->skip_reason), "size overflows");
		return;
	}
	ni->usable = true;
}

/* Active namespace list (CNS 02h): 1024 NSIDs a page, each page starting
 * after the last NSID of the one before, until a short page. Controllers
 * older than 1.1 lack it; then every NSID up to NN is tried. */
static int scan_namespaces(struct nvme_ctrl *c, struct dma_buf *buf, struct dma_buf *nsbuf)
{
	uint32_t *ids = NULL, nids = 0, cap = 0, prev = 0;
	bool have_list = true;
	int rc = 0;

	for (;;) {
		const uint32_t *page = buf->va;
		unsigned i;

		if (admin_identify(c, NVME_ID_CNS_NS_ACTIVE_LIST, prev, buf) != 0) {
			have_list = false;
			break;
		}
		for (i = 0; i < NVME_NS_LIST_MAX && page[i]; i++) {
			if (page[i] <= prev || page[i] == NVME_NSID_BROADCAST) {
				log_warn(c->info.bdf, "active namespace list out of order at %u; stopping", page[i]);
				i = NVME_NS_LIST_MAX + 1;
				break;
			}
			if (nids == cap) {
				uint32_t *n = realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof(*ids));
				if (!n) {
					free(ids);
					return -ENOMEM;
				}
				ids = n;
			}
			ids[nids++] = prev = page[i];
			if (nids >= MAX_NAMESPACES)
				break;
		}
		if (i != NVME_NS_LIST_MAX || nids >= MAX_NAMESPACES)
			break;
	}
	if (!have_list) {
		uint32_t nn = c->info.nn < MAX_NAMESPACES ? c->info.nn : MAX_NAMESPACES;
		free(ids);
		ids = calloc(nn ? nn : 1, sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		for (nids = 0; nids < nn; nids++)
			ids[nids] = nids + 1;
	}
	c->ns = calloc(nids ? nids : 1, sizeof(*c->ns));
	if (!c->ns) {
		free(ids);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < nids; k++) {
		struct nvme_ns *ns = &c->ns[c->nr_ns];

		rc = admin_identify(c, NVME_ID_CNS_NS, ids[k], nsbuf);
		if (rc) {
			log_warn(c->info.bdf, "Identify Namespace %u failed: %s; skipped", ids[k], strerror(-rc));
			rc = 0;
			continue;
		}
		if (((struct nvme_id_ns *)nsbuf->va)->nsze == 0 && !have_list)
			continue;	/* inactive */
		ns_setup(c, ns, ids[k], nsbuf->va);
		if (!ns->info.usable)
			log_warn(ns->info.name, "skipped: %s", ns->info.skip_reason);
		else
			log_info(ns->info.name, "%llu blocks of %u bytes%s",
				 (unsigned long long)ns->info.nlba, ns->info.lba_size,
				 ns->info.readonly ? ", write protected" : "");
		c->nr_ns++;
	}
	free(ids);
	return rc;
}

/* Programs the admin queue and sets CC.EN (7.6.1 steps 3-5); the
 * controller must be disabled. Used at bring-up and after a reset. */
static int ctrl_start(struct nvme_ctrl *c)
{
	uint32_t cc, aqa;

	aqa = (NVME_ADMIN_DEPTH - 1) << NVME_AQA_ASQS_SHIFT | (NVME_ADMIN_DEPTH - 1) << NVME_AQA_ACQS_SHIFT;
	nvme_reg_write32(c, NVME_REG_AQA, aqa);
	nvme_reg_write64(c, NVME_REG_ASQ, c->admin->sq_mem.iova);
	nvme_reg_write64(c, NVME_REG_ACQ, c->admin->cq_mem.iova);
	cc = NVME_CC_CSS_NVM | (0u << NVME_CC_MPS_SHIFT) | (NVME_SQE_SIZE_LOG2 << NVME_CC_IOSQES_SHIFT) |
	     (NVME_CQE_SIZE_LOG2 << NVME_CC_IOCQES_SHIFT);
	nvme_reg_write32(c, NVME_REG_CC, cc);
	nvme_reg_write32(c, NVME_REG_CC, cc | NVME_CC_EN);
	return wait_csts(c, NVME_CSTS_RDY, NVME_CSTS_RDY, c->timeout_ms, true, "enabling the controller");
}

static int ctrl_enable(struct nvme_ctrl *c)
{
	struct nvme_qpair *aq;
	int rc;

	rc = nvme_qpair_create(c, 0, NVME_ADMIN_DEPTH, 0, 1, &aq);
	if (rc)
		return rc;
	c->admin = aq;
	/* Interrupts must be on before CC.EN: QEMU's NVMe model (7.2) marks a
	 * CQ's MSI-X vector in use only if MSI-X was enabled when the CQ was
	 * created, and the admin CQ is created by CC.EN. They stay on across
	 * resets for the same reason. */
	rc = vfio_irq_enable(c->vdev, c->opts.irq_modes, 1 + c->opts.io_queues, &c->info.irq_mode,
			     &c->info.nvec);
	if (rc)
		return rc;
	/* Without it, unbinding or hot-removing the function blocks in the
	 * kernel until the process exits. */
	rc = vfio_req_enable(c->vdev);
	if (rc)
		log_info(c->info.bdf, "no device request notification (%s): removing the device "
			 "waits for nvme-drv to exit", strerror(-rc));
	return ctrl_start(c);
}

int nvme_ctrl_open(const char *bdf, const struct nvme_ctrl_opts *opts, struct nvme_ctrl **out)
{
	struct dma_buf idbuf = { 0 }, nsbuf = { 0 };
	struct nvme_ctrl *c;
	volatile void *bar;
	unsigned want, got, nirq, twins = 0, depth, list_pages, per_page, entries;
	char twins_said[32];
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->opts = *opts;
	if (!c->opts.io_queues)
		c->opts.io_queues = NVME_DEFAULT_IO_QUEUES;
	if (!c->opts.io_queue_depth)
		c->opts.io_queue_depth = NVME_DEFAULT_IO_DEPTH;
	/* CAP.TO bounds how long CSTS.RDY may take to follow CC.EN; it says
	 * nothing of commands, which get deadlines of their own (Linux's
	 * admin_timeout and io_timeout). */
	if (!c->opts.admin_timeout_ms)
		c->opts.admin_timeout_ms = NVME_DEFAULT_ADMIN_TIMEOUT_MS;
	if (!c->opts.io_timeout_ms)
		c->opts.io_timeout_ms = NVME_DEFAULT_IO_TIMEOUT_MS;
	c->admin_timeout_ms = c->opts.admin_timeout_ms;
	snprintf(c->info.bdf, sizeof(c->info.bdf), "%s", bdf);

	rc = vfio_open(bdf, &c->vdev);
	if (rc) {
		free(c);
		return rc;
	}
	rc = vfio_map_bar(c->vdev, 0, &bar, &c->bar_len);
	if (rc)
		goto fail;
	c->bar = bar;
	if (c->bar_len < NVME_REG_DBS + 8) {
		log_err(bdf, "BAR0 too small (%zu bytes) for an NVMe controller", c->bar_len);
		rc = -EINVAL;
		goto fail;
	}
	rc = vfio_enable_bus_master(c->vdev);
	if (rc) {
		log_err(bdf, "cannot enable bus mastering: %s", strerror(-rc));
		goto fail;
	}
	c->cap = nvme_reg_read64(c, NVME_REG_CAP);
	if (c->cap == UINT64_MAX) {
		log_err(bdf, "CAP reads all ones: the device does not respond");
		rc = -ENODEV;
		goto fail;
	}
	if (!(NVME_CAP_FIELD(c->cap, CSS) & NVME_CAP_CSS_NVM)) {
		log_err(bdf, "controller does not support the NVM command set");
		rc = -ENOTSUP;
		goto fail;
	}
	if (NVME_CAP_FIELD(c->cap, MPSMIN) != 0) {
		log_err(bdf, "controller's minimum page size %u exceeds 4096",
			1u << (12 + NVME_CAP_FIELD(c->cap, MPSMIN)));
		rc = -ENOTSUP;
		goto fail;
	}
	c->info.page_size = 4096;
	c->db_stride = 4u << NVME_CAP_FIELD(c->cap, DSTRD);
	/* The admin queue's doorbells, at least, must be inside the BAR; I/O
	 * queues whose doorbells are not are never created (below). */
	if ((c->bar_len - NVME_REG_DBS - 4) / c->db_stride < 1) {
		log_err(bdf, "BAR0 (%zu bytes) too small for doorbells of stride %u", c->bar_len,
			c->db_stride);
		rc = -EINVAL;
		goto fail;
	}
	c->timeout_ms = (unsigned)NVME_CAP_FIELD(c->cap, TO) * 500;
	if (c->timeout_ms < 500)
		c->timeout_ms = 500;

	rc = ctrl_disable(c);
	if (rc)
		goto fail;
	rc = ctrl_enable(c);
	if (rc)
		goto fail;
	rc = vfio_dma_alloc(c->vdev, NVME_IDENTIFY_SIZE, &idbuf);
	if (rc)
		goto fail;
	rc = vfio_dma_alloc(c->vdev, NVME_IDENTIFY_SIZE, &nsbuf);
	if (rc)
		goto fail;
	rc = identify_ctrl(c, &idbuf);
	if (rc)
		goto fail;
	rc = vfio_dma_alloc(c->vdev, NVME_IDENTIFY_SIZE, &c->scratch);
	if (rc)
		goto fail;
	enable_acre(c, &c->scratch);
	identify_ctrl_nvm(c, &idbuf);

	/* One I/O queue per vector beyond the admin one where vectors allow,
	 * and no more than BAR0 holds doorbells for: queue q's CQ doorbell is
	 * at DBS + (2q + 1) * stride. */
	want = c->opts.io_queues;
	if (c->info.nvec > 1 && want > c->info.nvec - 1)
		want = c->info.nvec - 1;
	{
		size_t by_bar = ((c->bar_len - NVME_REG_DBS - 4) / c->db_stride - 1) / 2;

		if (by_bar < 1) {
			log_err(bdf, "BAR0 (%zu bytes) has no room for an I/O queue's doorbells", c->bar_len);
			rc = -EINVAL;
			goto fail;
		}
		if (want > by_bar) {
			log_info(bdf, "%zu I/O queues at most: BAR0 holds no more doorbells", by_bar);
			want = (unsigned)by_bar;
		}
		/* Polled twins need no vector, only doorbells and the
		 * controller's consent: as many as it grants beyond the rest. */
		if (c->opts.polled_queues)
			twins = want <= by_bar - want ? want : (unsigned)(by_bar - want);
	}
	rc = set_num_queues(c, want + twins, &got);
	if (rc)
		goto fail;
	nirq = got < want ? got : want;
	twins = got - nirq < twins ? got - nirq : twins;
	depth = c->opts.io_queue_depth;
	if (depth > NVME_CAP_FIELD(c->cap, MQES) + 1)
		depth = (unsigned)NVME_CAP_FIELD(c->cap, MQES) + 1;	/* MQES is 0-based */
	if (depth > 65536)
		depth = 65536;
	if (depth < 2) {
		log_err(bdf, "CAP.MQES allows no usable I/O queue");
		rc = -ENOTSUP;
		goto fail;
	}
	/* PRP list pages per command: one entry per page of the largest
	 * transfer plus one for an unaligned start, the last slot of each
	 * non-final page chaining to the next. */
	per_page = c->info.page_size / 8;
	entries = c->info.max_xfer / c->info.page_size + 1;
	list_pages = entries - 1 <= per_page ? 1 : 1 + (entries - 1 - per_page + per_page - 2) / (per_page - 1);
	c->io = calloc(nirq + twins, sizeof(*c->io));
	if (!c->io) {
		rc = -ENOMEM;
		goto fail;
	}
	/* Queue ID i + 1; c->io holds the queues made, in order (a refused
	 * twin leaves no hole: a twin is found through its queue pair). */
	for (unsigned i = 0; i < nirq + twins; i++) {
		unsigned k = i < nirq ? i : i - nirq;	/* the twin of queue pair k */
		unsigned vec = c->info.nvec > 1 ? 1 + k % (c->info.nvec - 1) : 0;
		struct nvme_qpair **slot = &c->io[c->nr_hw];

		rc = create_io_queue(c, (uint16_t)(i + 1), (uint16_t)(depth == 65536 ? 65535 : depth), vec,
				     list_pages, i < nirq, slot);
		if (rc && i >= nirq && rc != -ETIMEDOUT) {
			/* Twins are an optimisation: go on without this one. */
			log_warn(bdf, "polled queue %u not created (%s): queue pair %u goes on without",
				 i + 1, strerror(-rc), k);
			rc = 0;
			continue;
		}
		if (rc)
			goto fail;
		c->nr_hw++;
		if (i < nirq) {
			c->nr_io++;
		} else {
			c->io[k]->twin = *slot;
			c->nr_polled++;
		}
	}
	c->info.nr_io_queues = c->nr_io;
	c->info.nr_polled_queues = c->nr_polled;
	c->info.io_depth = depth;
	rc = dbbuf_start(c);
	if (rc)
		goto fail;
	rc = scan_namespaces(c, &idbuf, &nsbuf);
	if (rc)
		goto fail;
	vfio_dma_free(c->vdev, &nsbuf);
	vfio_dma_free(c->vdev, &idbuf);
	/* "N I/O queues of D, " as before when there are no twins. */
	snprintf(twins_said, sizeof(twins_said), " and %u polled", c->nr_polled);
	log_info(bdf, "%s (%s, firmware %s): %u I/O queue%s of %u%s, %s x%u, %s, "
		 "max transfer %u bytes, %s doorbells",
		 c->info.serial, c->info.model, c->info.firmware, c->nr_io, c->nr_io == 1 ? "" : "s",
		 depth, c->nr_polled ? twins_said : "",
		 vfio_irq_mode_name(c->info.irq_mode), c->info.nvec, c->info.sgl ? "SGL" : "PRP",
		 c->info.max_xfer, c->info.shadow_db ? "shadow" : "register");
	*out = c;
	return 0;
fail:
	if (c->vdev) {
		vfio_dma_free(c->vdev, &nsbuf);
		vfio_dma_free(c->vdev, &idbuf);
	}
	nvme_ctrl_close(c);
	return rc;
}

static void delete_io_queue(struct nvme_ctrl *c, struct nvme_qpair *qp)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_DELETE_SQ, .cdw10 = qp->qid };

	if (!c->failed && nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL) == -ETIMEDOUT)
		ctrl_fail(c, "Delete I/O SQ timed out");
	/* Commands the SQ deletion aborted have posted their completions. */
	nvme_qpair_process(qp);
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_DELETE_CQ;
	cmd.cdw10 = qp->qid;
	if (!c->failed && nvme_qpair_exec_sync(c->admin, &cmd, c->admin_timeout_ms, NULL, NULL) == -ETIMEDOUT)
		ctrl_fail(c, "Delete I/O CQ timed out");
	nvme_qpair_abort_all(qp, -ECANCELED);
}

static void ctrl_shutdown(struct nvme_ctrl *c)
{
	uint32_t cc = nvme_reg_read32(c, NVME_REG_CC);
	unsigned timeout = c->timeout_ms;

	if (!(cc & NVME_CC_EN))
		return;
	/* RTD3E is the controller's own estimate; honour the largest of it,
	 * CAP.TO and 5 s, but never wait more than a minute. */
	if (timeout < c->shutdown_ms)
		timeout = c->shutdown_ms;
	if (timeout < 5000)
		timeout = 5000;
	if (timeout > 60000)
		timeout = 60000;
	cc &= ~(NVME_CC_SHN_MASK << NVME_CC_SHN_SHIFT);
	cc |= NVME_CC_SHN_NORMAL << NVME_CC_SHN_SHIFT;
	nvme_reg_write32(c, NVME_REG_CC, cc);
	if (wait_csts(c, NVME_CSTS_SHST_MASK << NVME_CSTS_SHST_SHIFT,
		      NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT, timeout, false,
		      "shutting down") == 0)
		log_info(c->info.bdf, "shut down cleanly");
}

void nvme_ctrl_close(struct nvme_ctrl *c)
{
	if (!c)
		return;
	if (c->bar && c->admin) {
		for (unsigned i = c->nr_hw; i-- > 0;)
			delete_io_queue(c, c->io[i]);
		if (!c->failed)
			ctrl_shutdown(c);
		nvme_qpair_abort_all(c->admin, -ECANCELED);
	}
	if (c->vdev)
		vfio_irq_disable(c->vdev);
	for (unsigned i = 0; i < c->nr_hw; i++)
		nvme_qpair_destroy(c->io[i]);
	nvme_qpair_destroy(c->admin);
	if (c->vdev) {
		vfio_dma_free(c->vdev, &c->scratch);
		vfio_dma_free(c->vdev, &c->dbbuf_eis);
		vfio_dma_free(c->vdev, &c->dbbuf_dbs);
	}
	free(c->io);
	free(c->ns);
	vfio_close(c->vdev);
	free(c);
}

const struct nvme_ctrl_info *nvme_ctrl_info(const struct nvme_ctrl *c) { return &c->info; }
struct vfio_dev *nvme_ctrl_vfio(struct nvme_ctrl *c) { return c->vdev; }
unsigned nvme_ctrl_ns_count(const struct nvme_ctrl *c) { return c->nr_ns; }
struct nvme_ns *nvme_ctrl_ns(struct nvme_ctrl *c, unsigned i) { return i < c->nr_ns ? &c->ns[i] : NULL; }
unsigned nvme_ctrl_nr_qpairs(const struct nvme_ctrl *c) { return c->nr_io; }
struct nvme_qpair *nvme_ctrl_qpair(struct nvme_ctrl *c, unsigned i) { return i < c->nr_io ? c->io[i] : NULL; }
const struct nvme_ns_info *nvme_ns_info(const struct nvme_ns *ns) { return &ns->info; }
struct nvme_ctrl *nvme_ns_ctrl(struct nvme_ns *ns) { return ns->ctrl; }
unsigned nvme_ctrl_nr_vectors(const struct nvme_ctrl *c)
{
	return c->info.nvec + (c->vdev && vfio_req_fd(c->vdev) >= 0);
}

/* The end for a controller that cannot be brought back: it is stopped
 * from touching memory first (CC.EN = 0, and bus mastering off, since a
 * controller in this state may not honour EN), then every request of
 * every queue fails once with -EIO, and it says so once. */
static void ctrl_fail(struct nvme_ctrl *c, const char *why)
{
	uint32_t csts = nvme_reg_read32(c, NVME_REG_CSTS);

	if (c->failed)
		return;
	c->failed = true;
	log_err(c->info.bdf, "%s; failing all I/O on its %u queues", why, c->nr_io);
	if (csts != 0xffffffffu) {
		uint32_t cc = nvme_reg_read32(c, NVME_REG_CC);

		nvme_reg_write32(c, NVME_REG_CC, cc & ~NVME_CC_EN);
		(void)wait_csts(c, NVME_CSTS_RDY, 0, c->timeout_ms, false, "disabling a failed controller");
	}
	vfio_disable_bus_master(c->vdev);
	for (unsigned i = 0; i < c->nr_hw; i++)
		nvme_qpair_abort_all(c->io[i], -EIO);
	nvme_qpair_abort_all(c->admin, -EIO);
}

/* Controller reset (Linux's nvme_reset_work, SPDK's
 * nvme_ctrlr_reset): disable, and only then settle what was in flight,
 * since until CSTS.RDY reads 0 the controller may still DMA into request
 * memory; re-enable; re-create the I/O queues in their old memory; send
 * again what was caught in flight, fail what expired. Runs synchronously
 * from the periodic check: the loop serves nothing else meanwhile, which
 * is what a reset wants. */
static int ctrl_reset(struct nvme_ctrl *c, const char *why)
{
	unsigned kept = 0, got = 0;
	char failed_q[48] = "";
	int rc;

	if (nvme_reg_read32(c, NVME_REG_CSTS) == 0xffffffffu) {
		ctrl_fail(c, "controller gone (CSTS reads all ones)");
		return -ENODEV;
	}
	c->resets++;
	log_warn(c->info.bdf, "%s: resetting the controller (reset %u)", why, c->resets);
	/* Nothing may be sent from done() callbacks while queues are torn
	 * down, whichever queue they submit to. */
	c->admin->resetting = true;
	for (unsigned i = 0; i < c->nr_hw; i++)
		c->io[i]->resetting = true;
	rc = ctrl_disable(c);
	if (rc) {
		ctrl_fail(c, "controller does not disable");
		return rc;
	}
	nvme_qpair_reset_begin(c->admin, false, -EIO);
	for (unsigned i = 0; i < c->nr_hw; i++)
		kept += nvme_qpair_reset_begin(c->io[i], true, -EIO);
	rc = ctrl_start(c);
	if (!rc) {
		nvme_qpair_reset_end(c->admin);
		rc = set_num_queues(c, c->nr_hw, &got);
		if (!rc && got < c->nr_hw)
			rc = -ENOSPC;
	}
	if (!rc)
		enable_acre(c, &c->scratch);
	for (unsigned i = 0; !rc && i < c->nr_hw; i++) {
		rc = create_io_queue_hw(c, c->io[i]);
		if (rc)
			snprintf(failed_q, sizeof(failed_q), " (%s queue %u: %s)",
				 c->io[i]->polled ? "polled" : "I/O", c->io[i]->qid, strerror(-rc));
	}
	if (!rc)
		rc = dbbuf_start(c);
	if (rc) {
		char said[96];

		snprintf(said, sizeof(said), "controller did not come back after a reset%s", failed_q);
		ctrl_fail(c, said);
		return rc;
	}
	for (unsigned i = 0; i < c->nr_hw; i++)
		nvme_qpair_reset_end(c->io[i]);
	log_info(c->info.bdf, "controller reset done; %u commands sent again", kept);
	return 0;
}

bool nvme_ctrl_is_failed(const struct nvme_ctrl *c)
{
	return c->failed;
}

int nvme_ctrl_check(struct nvme_ctrl *c)
{
	uint32_t csts;
	uint64_t now;
	bool reset = false;

	if (c->failed)
		return -EIO;
	csts = nvme_reg_read32(c, NVME_REG_CSTS);
	if (csts == 0xffffffffu) {
		ctrl_fail(c, "controller gone (CSTS reads all ones)");
		return -EIO;
	}
	if (csts & NVME_CSTS_CFS)
		return ctrl_reset(c, "controller fatal status (CSTS.CFS)") ? -EIO : 0;
	/* A delayed retry must go out even if nothing else wakes its queue:
	 * this runs every second or so. */
	nvme_qpair_retry_due(c->admin);
	for (unsigned i = 0; i < c->nr_hw; i++)
		nvme_qpair_retry_due(c->io[i]);
	now = nvme_now_ms();
	reset = nvme_qpair_check_deadlines(c->admin, c->admin, now);
	for (unsigned i = 0; i < c->nr_hw; i++)
		reset |= nvme_qpair_check_deadlines(c->io[i], c->admin, now);
	if (reset)
		return ctrl_reset(c, "command timeout") ? -EIO : 0;
	return 0;
}

int nvme_ctrl_vector_fd(const struct nvme_ctrl *c, unsigned vec)
{
	if (vec == c->info.nvec)
		return vfio_req_fd(c->vdev);
	return vfio_irq_fd(c->vdev, vec);
}

bool nvme_ctrl_vector_edge(const struct nvme_ctrl *c, unsigned vec)
{
	return vec < c->info.nvec &&
	       (c->info.irq_mode == VFIO_IRQ_MSIX || c->info.irq_mode == VFIO_IRQ_MSI);
}

unsigned nvme_ctrl_poll(struct nvme_ctrl *c)
{
	unsigned n = 0;

	if (c->failed)
		return 0;
	for (unsigned i = 0; i < c->nr_hw; i++)
		if (c->io[i]->inflight)
			n += nvme_qpair_process(c->io[i]);
	return n;
}

void nvme_ctrl_set_polling(struct nvme_ctrl *c, bool on)
{
	for (unsigned i = 0; i < c->nr_io; i++)
		nvme_qpair_set_polling(c->io[i], on);
}

void nvme_qpair_set_polling(struct nvme_qpair *qp, bool on)
{
	qp->polling = on && qp->twin;
}

unsigned nvme_qpair_poll(struct nvme_qpair *qp)
{
	unsigned n = 0;

	if (qp->ctrl->failed)
		return 0;
	if (qp->inflight)
		n += nvme_qpair_process(qp);
	if (qp->twin && qp->twin->inflight)
		n += nvme_qpair_process(qp->twin);
	return n;
}

bool nvme_qpair_polled_busy(const struct nvme_qpair *qp)
{
	const struct nvme_qpair *t = qp->twin;

	return t && !qp->ctrl->failed && (t->inflight || t->pend_head);
}

int nvme_qpair_vector_fd(const struct nvme_qpair *qp)
{
	const struct nvme_ctrl *c = qp->ctrl;

	if (c->info.irq_mode != VFIO_IRQ_MSIX || qp->vector >= c->info.nvec ||
	    (c->admin && c->admin->vector == qp->vector))
		return -1;
	for (unsigned i = 0; i < c->nr_hw; i++)
		if (c->io[i] != qp && c->io[i]->vector == qp->vector && !c->io[i]->polled)
			return -1;
	return vfio_irq_fd(c->vdev, qp->vector);
}

unsigned nvme_qpair_vector(const struct nvme_qpair *qp)
{
	return qp->vector;
}

bool nvme_ctrl_polled_busy(const struct nvme_ctrl *c)
{
	if (c->failed)
		return false;
	for (unsigned i = c->nr_io; i < c->nr_hw; i++)
		if (c->io[i]->inflight || c->io[i]->pend_head)
			return true;
	return false;
}

void nvme_ctrl_io_stats(const struct nvme_ctrl *c, struct nvme_io_stats *out)
{
	*out = (struct nvme_io_stats){ 0 };
	for (unsigned i = 0; i < c->nr_io; i++) {
		struct nvme_io_stats s;

		nvme_qpair_io_stats(c->io[i], &s);
		out->commands += s.commands;
		out->device_ns += s.device_ns;
	}
}

bool nvme_ctrl_busy(const struct nvme_ctrl *c)
{
	for (unsigned i = 0; i < c->nr_io; i++)
		if (nvme_qpair_has_work(c->io[i]))
			return true;
	return false;
}

void nvme_ctrl_service_vector(struct nvme_ctrl *c, unsigned vec)
{
	uint64_t cnt;
	int fd = vfio_irq_fd(c->vdev, vec);

	if (vec == c->info.nvec) {
		/* The kernel wants the function back (unbind, hot removal):
		 * stop it, fail its I/O, and let go of it, or the removal
		 * blocks in the kernel. */
		fd = vfio_req_fd(c->vdev);
		if (fd >= 0 && read(fd, &cnt, sizeof(cnt)) < 0) {
			/* EAGAIN: spurious wake */
		}
		ctrl_fail(c, "the kernel asks for the device back (removal or unbind)");
		vfio_release(c->vdev);
		log_warn(c->info.bdf, "device released to the kernel");
		return;
	}
	if (!nvme_ctrl_vector_edge(c, vec) && fd >= 0 && read(fd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: spurious wake; nothing to drain */
	}
	if (c->admin && c->admin->vector == vec)
		nvme_qpair_process(c->admin);
	for (unsigned i = 0; i < c->nr_hw; i++)
		if (c->io[i]->vector == vec)
			nvme_qpair_process(c->io[i]);
	if (c->info.irq_mode == VFIO_IRQ_INTX)
		vfio_irq_unmask(c->vdev);
}

/* ---- synchronous I/O for start-up ---- */

struct sync_ctx {
	bool done;
};

static void sync_done(struct nvme_req *r)
{
	((struct sync_ctx *)r->priv)->done = true;
}

int nvme_ns_rw_sync(struct nvme_ns *ns, bool write, uint64_t slba, uint32_t nlb, void *buf)
{
	struct nvme_ctrl *c = ns->ctrl;
	struct nvme_qpair *qp = c->nr_io ? c->io[0] : NULL;
	size_t len = (size_t)nlb * ns->info.lba_size;
	struct sync_ctx ctx = { 0 };
	struct dma_buf bounce;
	struct nvme_seg seg;
	struct nvme_req r;
	uint64_t deadline;
	int rc;

	if (!qp || !ns->info.usable)
		return -ENODEV;
	rc = vfio_dma_alloc(c->vdev, len, &bounce);
	if (rc)
		return rc;
	if (write)
		memcpy(bounce.va, buf, len);
	seg.iova = bounce.iova;
	seg.len = (uint32_t)len;
	memset(&r, 0, sizeof(r));
	r.opc = write ? NVME_CMD_WRITE : NVME_CMD_READ;
	r.ns = ns;
	r.slba = slba;
	r.nlb = nlb;
	r.segs = &seg;
	r.nseg = 1;
	r.done = sync_done;
	r.priv = &ctx;
	rc = nvme_submit(qp, &r);
	if (rc)
		goto out;
	deadline = mono_ms() + c->opts.io_timeout_ms;
	while (!ctx.done) {
		if (mono_ms() >= deadline) {
			log_err(ns->info.name, "synchronous %s of LBA %llu timed out", write ? "write" : "read",
				(unsigned long long)slba);
			/* Stop the controller before the bounce buffer is
			 * freed: it may still write there. */
			ctrl_fail(c, "a start-up read or write did not complete");
			break;
		}
		if (!nvme_qpair_process(qp) && !(qp->twin && nvme_qpair_process(qp->twin)))
			sleep_ms(1);
	}
	rc = r.result;
	if (!rc && !write)
		memcpy(buf, bounce.va, len);
out:
	vfio_dma_free(c->vdev, &bounce);
	return rc;
}
