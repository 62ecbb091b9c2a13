#include "vblk/vblk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "nvme/nvme.h"
#include "spec/vhost_user.h"
#include "util/evloop.h"
#include "util/log.h"
#include "util/memguard.h"
#include "virtio/blk_req.h"
#include "virtio/vring.h"

#define PAGE 4096ull
/* Descriptors per request: header + data + status. Advertised as seg_max
 * (data segments), so a conforming driver never sends more. At most 128:
 * a chain may be no longer than the queue (2.7.5.3.1, enforced by the
 * ring), yet Linux's virtio_blk sends seg_max + 2 descriptors in one
 * indirect table whatever the queue size, and QEMU's vhost-user-blk-pci
 * has queues of 128 by default (its own virtio-blk keeps seg_max at the
 * queue size - 2 for the same reason). */
#define VBLK_MAX_SEGS 128
#define VBLK_SEG_MAX (VBLK_MAX_SEGS - 2)
#define VBLK_SIZE_MAX (4u << 20)
#define VBLK_DISCARD_SEG 16
#define VBLK_MAX_RANGE_SECTORS (1u << 22)

/* A client memory region, mapped into this process and the IOMMU. A
 * region the table dropped while I/O in flight still uses it for DMA is
 * "retired": it stays mapped until the last such I/O has ended (the
 * controller may write into it until then). Retired regions count against
 * a bound, or a client holding one request in flight could pile up
 * mappings by adding and removing regions (issue 7.4). */
struct region {
	struct vblk_mem m;
	void *map;		/* our mmap, page-aligned */
	size_t map_len;
	uint8_t *va;		/* the region's first byte */
	uint64_t iova;		/* the mapping's first byte */
	uint64_t iova_off;	/* va - map */
	unsigned refs;		/* I/Os in flight with DMA into it */
	struct region *next_retired;
};

/* Live plus retired regions at most, per allowed live region. */
#define VBLK_RETIRED_FACTOR 2

struct vqueue {
	struct vq vq;
	unsigned num;
	uint64_t desc, avail, used;	/* front-end addresses */
	uint16_t base;
	bool started;
	bool enabled;
	bool stopping;		/* taking no more; stops when inflight is 0 */
	bool fair_wait;		/* holds its part of a shared queue pair (nvme_share_full) */
	bool start_pending;	/* started, taking nothing until old I/O ends */
	/* Its turn among the other queues on its NVMe queue pair when that is
	 * full: a virtqueue maps to one queue pair (pick_qp). */
	struct nvme_share share;
	unsigned inflight;	/* requests with NVMe commands outstanding */
	unsigned taken;		/* popped and not yet in the used ring */
	/* Inflight tracking (vblk_vq_set_inflight): the log, the order
	 * counter of the next head taken, and the heads an earlier process
	 * left in flight, to be taken again first, oldest first. */
	struct vhost_user_inflight_split *log;
	size_t log_len;
	uint64_t counter;
	uint16_t *resubmit;
	unsigned nresubmit, resubmit_pos;
	/* Taken and held back by a QoS limit (the end of this file): the
	 * queue takes nothing more until it has gone to the controller. */
	struct vblk_io *held;
	/* Completions in the used ring whose notification waits (while the
	 * loop polls and many are in flight), since notify_since (ns). */
	bool notify_held;
	uint64_t notify_since;
};

struct vblk_io {
	struct vblk *d;
	unsigned q;
	unsigned gen;		/* the session it belongs to (vblk.gen) */
	struct region *refs[VBLK_MAX_SEGS];	/* distinct regions its buffers lie in */
	unsigned nrefs;
	struct vq_elem elem;
	struct vblk_req req;
	struct vq_seg segs[VBLK_MAX_SEGS];
	struct nvme_seg nsegs[VBLK_MAX_SEGS];
	struct nvme_req nreq[1];	/* one NVMe request a virtio request */
	struct nvme_range ranges[VBLK_RANGES_MAX];
	unsigned pending;
	bool failed;
	struct vblk_io *next_free;
};

struct vblk {
	struct vblk_conf conf;
	char name[128];
	struct vblk_trusted *trusted;
	const struct vblk_ops *ops;
	void *ctx;
	struct nvme_ctrl *ctrl;
	struct vfio_dev *vdev;
	struct vblk_target vt;
	char id[VIRTIO_BLK_ID_BYTES + 1];
	uint64_t features;
	struct region **regions;
	unsigned nregions;
	struct region *retired;
	unsigned nretired;
	struct vqueue vqs[VBLK_MAX_QUEUES];
	struct vblk_io *free_ios;
	unsigned inflight;
	/* A session ends at every reset: requests of an earlier one complete
	 * into no ring (the driver that posted them is gone; issue 7.5). */
	unsigned gen;
	/* Requests of earlier sessions still with the controller. A queue of
	 * the new session takes nothing before they are done: one taken again
	 * from an inflight log would run beside its first copy, and the old
	 * one's DMA could land in memory the driver has reused since. */
	unsigned old_inflight;
	/* Calls into this object on the stack: an ops callback may destroy it
	 * (a transport ending a connection), which then waits until they
	 * have returned (issue 7.1). */
	unsigned busy;
	bool destroying;
	/* Queues (bit q) that stopped at their budget with requests left,
	 * and the turn that goes on with them (evloop_yield). */
	uint32_t over_budget;
	struct evloop_defer more;
	bool quiesced;		/* vblk_quiesce(): a successor takes the rest */
	bool broken;
	struct vblk_stats stats;
	/* QoS (the end of this file): the buckets, the timer that lets held
	 * requests go (armed only while one is held, so that an idle server
	 * sleeps), and which queue's turn is first. */
	struct qos qos;
	int qos_fd;
	uint64_t qos_deadline;	/* CLOCK_MONOTONIC ns the timer is armed for; 0: not */
	unsigned nheld;
	unsigned qos_next;
};

static bool qos_hold(struct vblk *d, struct vqueue *v, struct vblk_io *io);
static void qos_flush(struct vblk *d, unsigned q);
static void qos_drop(struct vblk *d);
static void qos_close(struct vblk *d);

/* ---- memory ---- */

static void rings_refresh(struct vblk *d);

static void region_free(struct vblk *d, struct region *r)
{
	if (r->map) {
		vfio_dma_unmap(d->vdev, r->iova, r->map_len);
		munmap(r->map, r->map_len);
	}
	free(r);
}

/* The table no longer has r: unmap it now, or once no I/O uses it. */
static void region_retire(struct vblk *d, struct region *r)
{
	if (r->refs == 0) {
		region_free(d, r);
		return;
	}
	r->next_retired = d->retired;
	d->retired = r;
	d->nretired++;
}

static void region_put(struct vblk *d, struct region *r)
{
	if (--r->refs || d->nretired == 0)
		return;
	for (struct region **p = &d->retired; *p; p = &(*p)->next_retired)
		if (*p == r) {
			*p = r->next_retired;
			d->nretired--;
			region_free(d, r);
			return;
		}
}

/* Live regions still in use by I/O: each would be retired by a new table. */
static unsigned busy_regions(const struct vblk *d)
{
	unsigned n = 0;

	for (unsigned i = 0; i < d->nregions; i++)
		n += d->regions[i]->refs != 0;
	return n;
}

static bool trusted(const struct vblk *d, int fd)
{
	struct stat st;

	if (!d->conf.ntrusted)
		return true;
	if (fstat(fd, &st) != 0)
		return false;
	for (unsigned i = 0; i < d->conf.ntrusted; i++)
		if (d->trusted[i].dev == st.st_dev && d->trusted[i].ino == st.st_ino)
			return true;
	return false;
}

/* Memory backed by a file must exist for as long as it is mapped: a
 * region reaching past the end of its file is refused, and a file that
 * can still take seals gets F_SEAL_SHRINK, so that the client cannot cut
 * it short later. A file that cannot take seals (a memfd created without
 * MFD_ALLOW_SEALING, a tmpfs file) can still shrink: every access to
 * client memory is guarded (memguard.h), so that costs the client its
 * session, not the server. */
static int region_check_file(struct vblk *d, const struct vblk_mem *m)
{
	struct stat st;
	int seals;

	if (fstat(m->fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;	/* a device's memory (VDUSE's bounce buffer) */
	if (st.st_size < 0 || m->mmap_offset > (uint64_t)st.st_size ||
	    m->size > (uint64_t)st.st_size - m->mmap_offset) {
		log_err(d->name, "memory region gpa %#llx: %#llx bytes at offset %#llx, but its file has %#llx",
			(unsigned long long)m->gpa, (unsigned long long)m->size,
			(unsigned long long)m->mmap_offset, (unsigned long long)st.st_size);
		return -EINVAL;
	}
	seals = fcntl(m->fd, F_GET_SEALS);
	if (seals >= 0 && !(seals & F_SEAL_SHRINK) && !(seals & F_SEAL_SEAL) &&
	    fcntl(m->fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)
		log_debug(d->name, "memory region gpa %#llx: cannot seal against shrinking: %s",
			  (unsigned long long)m->gpa, strerror(errno));
	return 0;
}

/* Maps one region into this process and into the controller's IOMMU. A
 * read-only client's memory is only ever written by the device (reads
 * from the disk), so the IOMMU is asked for device-write access alone. */
static int region_map(struct vblk *d, const struct vblk_mem *m, struct region **out)
{
	uint64_t off_al, lead, len;
	struct region *r;
	int prot;
	int rc;

	if (!m->size || m->size > (1ull << 46) || m->mmap_offset > (1ull << 52) ||
	    m->gpa > UINT64_MAX - m->size || m->uva > UINT64_MAX - m->size) {
		log_err(d->name, "memory region gpa %#llx size %#llx: bad size or address",
			(unsigned long long)m->gpa, (unsigned long long)m->size);
		return -EINVAL;
	}
	if (!trusted(d, m->fd)) {
		log_err(d->name, "memory region gpa %#llx: not backed by a registered dataspace (-d)",
			(unsigned long long)m->gpa);
		return -EPERM;
	}
	rc = region_check_file(d, m);
	if (rc)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	off_al = m->mmap_offset & ~(PAGE - 1);
	lead = m->mmap_offset - off_al;
	len = (lead + m->size + PAGE - 1) & ~(PAGE - 1);
	r->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, (off_t)off_al);
	if (r->map == MAP_FAILED) {
		rc = -errno;
		r->map = NULL;
		log_err(d->name, "cannot map memory region gpa %#llx size %#llx: %s",
			(unsigned long long)m->gpa, (unsigned long long)m->size, strerror(errno));
		free(r);
		return rc;
	}
	r->map_len = len;
	prot = d->conf.readonly ? VFIO_DMA_WRITE : VFIO_DMA_READ | VFIO_DMA_WRITE;
	rc = vfio_dma_map(d->vdev, r->map, len, prot, &r->iova);
	if (rc == -EINVAL && prot == VFIO_DMA_WRITE) {
		log_info(d->name, "IOMMU refuses write-only DMA mappings; mapping read-write");
		rc = vfio_dma_map(d->vdev, r->map, len, VFIO_DMA_READ | VFIO_DMA_WRITE, &r->iova);
	}
	if (rc) {
		munmap(r->map, len);
		free(r);
		return rc;
	}
	r->m = *m;
	r->m.fd = -1;
	r->va = (uint8_t *)r->map + lead;
	r->iova_off = lead;
	log_debug(d->name, "region gpa %#llx size %#llx mapped at IOVA %#llx%s",
		  (unsigned long long)m->gpa, (unsigned long long)m->size,
		  (unsigned long long)(r->iova + lead), prot == VFIO_DMA_WRITE ? " (device write-only)" : "");
	*out = r;
	return 0;
}

static void close_fds(const struct vblk_mem *regs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (regs[i].fd >= 0)
			close(regs[i].fd);
}

static void drop_table(struct vblk *d)
{
	for (unsigned i = 0; i < d->nregions; i++)
		region_retire(d, d->regions[i]);
	free(d->regions);
	d->regions = NULL;
	d->nregions = 0;
}

static bool overlaps(const struct vblk_mem *a, const struct vblk_mem *b)
{
	return a->gpa < b->gpa + b->size && b->gpa < a->gpa + a->size;
}

/* n live regions, with `retired` regions held by I/O in flight beside
 * them. Errors: -E2BIG (over ds-max), -EBUSY (too many still in use). */
static int check_count(struct vblk *d, unsigned n, unsigned retired)
{
	if (n > d->conf.ds_max) {
		log_err(d->name, "refused: %u memory regions, ds-max is %u", n, d->conf.ds_max);
		return -E2BIG;
	}
	if (n + retired > VBLK_RETIRED_FACTOR * d->conf.ds_max) {
		log_err(d->name, "refused: %u removed memory regions are still in use by I/O in flight "
			"(at most %u mapped at once with ds-max %u); retry once it has completed",
			retired, VBLK_RETIRED_FACTOR * d->conf.ds_max, d->conf.ds_max);
		return -EBUSY;
	}
	return 0;
}

int vblk_mem_set(struct vblk *d, const struct vblk_mem *regs, unsigned n)
{
	struct region **nr;
	int rc = check_count(d, n, d->nretired + busy_regions(d));

	if (rc) {
		close_fds(regs, n);
		return rc;
	}
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			if (overlaps(&regs[i], &regs[j])) {
				log_err(d->name, "refused: memory regions %u and %u overlap", j, i);
				close_fds(regs, n);
				return -EINVAL;
			}
	nr = calloc(n ? n : 1, sizeof(*nr));
	if (!nr) {
		close_fds(regs, n);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		rc = region_map(d, &regs[i], &nr[i]);
		if (rc) {
			while (i-- > 0)
				region_free(d, nr[i]);
			free(nr);
			close_fds(regs, n);
			return rc;
		}
	}
	close_fds(regs, n);
	drop_table(d);
	d->regions = nr;
	d->nregions = n;
	rings_refresh(d);
	return 0;
}

int vblk_mem_add(struct vblk *d, const struct vblk_mem *reg)
{
	struct region *r, **nr;
	int rc = check_count(d, d->nregions + 1, d->nretired);

	for (unsigned i = 0; !rc && i < d->nregions; i++)
		if (overlaps(reg, &d->regions[i]->m)) {
			log_err(d->name, "refused: memory region gpa %#llx overlaps another",
				(unsigned long long)reg->gpa);
			rc = -EINVAL;
		}
	if (!rc)
		rc = region_map(d, reg, &r);
	close(reg->fd);
	if (rc)
		return rc;
	nr = realloc(d->regions, (d->nregions + 1) * sizeof(*nr));
	if (!nr) {
		region_free(d, r);
		return -ENOMEM;
	}
	d->regions = nr;
	d->regions[d->nregions++] = r;
	rings_refresh(d);
	return 0;
}

int vblk_mem_remove(struct vblk *d, const struct vblk_mem *reg)
{
	if (reg->fd >= 0)
		close(reg->fd);
	for (unsigned i = 0; i < d->nregions; i++) {
		struct region *r = d->regions[i];
		if (r->m.gpa == reg->gpa && r->m.size == reg->size) {
			region_retire(d, r);
			d->regions[i] = d->regions[--d->nregions];
			rings_refresh(d);
			return 0;
		}
	}
	log_err(d->name, "cannot remove memory region gpa %#llx: not registered",
		(unsigned long long)reg->gpa);
	return -ENOENT;
}

static struct region *find_gpa(struct vblk *d, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < d->nregions; i++) {
		struct region *r = d->regions[i];
		if (gpa >= r->m.gpa && len <= r->m.size && gpa - r->m.gpa <= r->m.size - len)
			return r;
	}
	return NULL;
}

static void *translate(void *ctx, uint64_t gpa, uint64_t len, bool write)
{
	struct region *r = find_gpa(ctx, gpa, len);

	(void)write;
	return r ? r->va + (gpa - r->m.gpa) : NULL;
}

static const struct vq_mem_ops mem_ops = { .translate = translate };

/* Ring addresses come as the front end's virtual addresses. */
static int uva_to_gpa(struct vblk *d, uint64_t uva, uint64_t *gpa)
{
	for (unsigned i = 0; i < d->nregions; i++) {
		struct region *r = d->regions[i];
		if (uva >= r->m.uva && uva - r->m.uva < r->m.size) {
			*gpa = r->m.gpa + (uva - r->m.uva);
			return 0;
		}
	}
	return -EFAULT;
}

/* The rings live in client memory: after the table changed, find them
 * again (the indices stay). A ring no longer inside it breaks the device. */
static void rings_refresh(struct vblk *d)
{
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++) {
		struct vqueue *v = &d->vqs[q];
		uint64_t dg, ag, ug;
		struct vq_err err = { 0 };
		bool notify_off = v->vq.notify_off;

		if (!v->started)
			continue;
		if (uva_to_gpa(d, v->desc, &dg) || uva_to_gpa(d, v->avail, &ag) ||
		    uva_to_gpa(d, v->used, &ug) || vq_set_addr(&v->vq, v->num, dg, ag, ug, &err)) {
			log_err(d->name, "queue %u: ring no longer inside client memory; device needs reset", q);
			v->started = false;
			d->broken = true;
			d->ops->broken(d->ctx);
			continue;
		}
		/* The same ring, mapped anew: kicks the loop turned off while it
		 * polls are still off in it (NO_NOTIFY, or avail_event left
		 * behind), and vblk_set_notify(on) must still ask for them
		 * again before the loop sleeps (vq_set_notify skips a ring it
		 * thinks is on). */
		v->vq.notify_off = notify_off;
	}
}

/* ---- device ---- */

static void more_turn(void *arg);

int vblk_new(const struct vblk_conf *conf, const struct vblk_ops *ops, void *ctx, struct vblk **out)
{
	const struct nvme_ctrl_info *ci;
	struct vblk *d;
	int rc;

	if (!conf->num_queues || conf->num_queues > VBLK_MAX_QUEUES || !conf->ds_max ||
	    conf->ds_max > VBLK_DS_MAX_LIMIT)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->conf = *conf;
	snprintf(d->name, sizeof(d->name), "%s", conf->name);
	d->conf.name = d->name;
	if (conf->ntrusted) {
		d->trusted = calloc(conf->ntrusted, sizeof(*d->trusted));
		if (!d->trusted) {
			free(d);
			return -ENOMEM;
		}
		memcpy(d->trusted, conf->trusted, conf->ntrusted * sizeof(*d->trusted));
		d->conf.trusted = d->trusted;
	}
	d->ops = ops;
	d->ctx = ctx;
	d->ctrl = nvme_ns_ctrl(conf->target.ns);
	d->vdev = nvme_ctrl_vfio(d->ctrl);
	ci = nvme_ctrl_info(d->ctrl);
	d->conf.readonly = conf->readonly || conf->target.readonly;
	d->vt.first_lba = conf->target.first_lba;
	d->vt.nlba = conf->target.nlba;
	d->vt.lba_size = conf->target.lba_size;
	d->vt.readonly = d->conf.readonly;
	if (ci->dsm && !d->conf.readonly) {
		d->vt.max_discard_seg = VBLK_DISCARD_SEG;
		d->vt.max_discard_sectors = VBLK_MAX_RANGE_SECTORS;
	}
	if (ci->write_zeroes && !d->conf.readonly) {
		d->vt.max_write_zeroes_seg = VBLK_DISCARD_SEG;
		d->vt.max_write_zeroes_sectors = VBLK_MAX_RANGE_SECTORS;
	}
	/* GET_ID: the device name, as much as fits in 20 bytes. */
	memcpy(d->id, conf->target.name, strnlen(conf->target.name, VIRTIO_BLK_ID_BYTES));
	d->features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
		      VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
		      VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
		      VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
		      VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) | VIRTIO_BIT(VIRTIO_BLK_F_MQ);
	if (d->conf.readonly)
		d->features |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	if (d->vt.max_discard_seg)
		d->features |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	if (d->vt.max_write_zeroes_seg)
		d->features |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++)
		vq_init(&d->vqs[q].vq, &mem_ops, d);
	if (!d->conf.vq_budget)
		d->conf.vq_budget = VBLK_VQ_BUDGET;
	d->more = (struct evloop_defer){ .cb = more_turn, .arg = d };
	d->qos_fd = -1;
	rc = vblk_set_qos(d, &conf->qos);
	if (rc) {
		free(d->trusted);
		free(d);
		return rc;
	}
	memguard_install();
	*out = d;
	return 0;
}

/* Called with nothing in flight: every retired region is gone already. */
static void vblk_free(struct vblk *d)
{
	if (d->conf.loop)
		evloop_defer_cancel(d->conf.loop, &d->more);
	drop_table(d);
	qos_close(d);
	while (d->free_ios) {
		struct vblk_io *io = d->free_ios;
		d->free_ios = io->next_free;
		free(io);
	}
	free(d->trusted);
	free(d);
}

/* A call into this object that may run ops callbacks holds it; the last
 * one out frees an object destroyed meanwhile, once no I/O is in flight. */
static void hold(struct vblk *d)
{
	d->busy++;
}

static void release(struct vblk *d)
{
	if (!--d->busy && d->destroying && d->inflight == 0)
		vblk_free(d);
}

/* The next turn of the queues that stopped at their budget (vblk_vq_kick),
 * at the end of a loop round: every peer ready in it went first. Straight
 * into the queue, as a completion's re-kick of a waiting queue is (no
 * transport step: VDUSE's IOTLB entry was there for the turn before). */
static void more_turn(void *arg)
{
	struct vblk *d = arg;
	uint32_t over = d->over_budget;

	hold(d);
	for (unsigned q = 0; q < d->conf.num_queues && !d->destroying; q++)
		if (over & (1u << q))
			vblk_vq_kick(d, q);
	release(d);
}

void vblk_reset(struct vblk *d)
{
	/* Requests still with the controller belong to the session that ends
	 * here: they complete into nothing (the regions they use stay mapped
	 * until then). The counters below are the new session's. */
	d->gen++;
	d->old_inflight = d->inflight;
	qos_drop(d);	/* never sent: nothing of them reaches the controller */
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++) {
		struct vqueue *v = &d->vqs[q];
		v->started = v->enabled = v->stopping = v->start_pending = v->fair_wait = false;
		v->inflight = 0;
		v->taken = 0;
		v->num = 0;
		v->base = 0;
		v->log = NULL;
		free(v->resubmit);
		v->resubmit = NULL;
		v->nresubmit = v->resubmit_pos = 0;
		vq_init(&v->vq, &mem_ops, d);
	}
	drop_table(d);
	d->broken = false;
}

void vblk_quiesce(struct vblk *d)
{
	d->quiesced = true;
	/* Requests held back by a limit were taken: they go now, so that they
	 * are in the used ring before the successor takes over. */
	for (unsigned q = 0; q < d->conf.num_queues; q++)
		qos_flush(d, q);
}

void vblk_destroy(struct vblk *d)
{
	if (!d)
		return;
	vblk_reset(d);
	d->destroying = true;
	qos_close(d);
	if (d->inflight == 0 && d->busy == 0)
		vblk_free(d);
}

uint64_t vblk_features(const struct vblk *d) { return d->features; }
unsigned vblk_num_queues(const struct vblk *d) { return d->conf.num_queues; }
unsigned vblk_ds_max(const struct vblk *d) { return d->conf.ds_max; }
const struct vblk_stats *vblk_stats(const struct vblk *d) { return &d->stats; }
unsigned vblk_inflight(const struct vblk *d) { return d->inflight; }

int vblk_set_features(struct vblk *d, uint64_t f)
{
	if (f & ~d->features) {
		log_err(d->name, "driver accepted features %#llx that were not offered",
			(unsigned long long)(f & ~d->features));
		return -EINVAL;
	}
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++)
		vq_set_features(&d->vqs[q].vq, f);
	return 0;
}

void vblk_get_config(const struct vblk *d, struct virtio_blk_config *c)
{
	const struct nvme_ctrl_info *ci = nvme_ctrl_info(d->ctrl);
	uint32_t lbs = d->vt.lba_size;

	memset(c, 0, sizeof(*c));
	c->capacity = d->vt.nlba * (lbs / VIRTIO_BLK_SECTOR_SIZE);
	c->size_max = VBLK_SIZE_MAX;
	c->seg_max = VBLK_SEG_MAX;
	c->blk_size = lbs;
	c->topology.min_io_size = 1;
	c->topology.opt_io_size = ci->max_xfer / lbs;
	c->writeback = ci->vwc ? 1 : 0;
	c->num_queues = (uint16_t)d->conf.num_queues;
	c->max_discard_sectors = d->vt.max_discard_sectors;
	c->max_discard_seg = d->vt.max_discard_seg;
	c->discard_sector_alignment = lbs / VIRTIO_BLK_SECTOR_SIZE;
	c->max_write_zeroes_sectors = d->vt.max_write_zeroes_sectors;
	c->max_write_zeroes_seg = d->vt.max_write_zeroes_seg;
	c->write_zeroes_may_unmap = nvme_ns_info(d->conf.target.ns)->wz_deallocate;
}

/* ---- queues ---- */

static struct vqueue *vqueue(struct vblk *d, unsigned q)
{
	return q < d->conf.num_queues ? &d->vqs[q] : NULL;
}

int vblk_vq_set_num(struct vblk *d, unsigned q, unsigned num)
{
	struct vqueue *v = vqueue(d, q);

	if (!v || !num || num > VBLK_MAX_QUEUE_SIZE || (num & (num - 1)))
		return -EINVAL;
	v->num = num;
	return 0;
}

int vblk_vq_set_addr(struct vblk *d, unsigned q, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vqueue *v = vqueue(d, q);

	if (!v)
		return -EINVAL;
	v->desc = desc;
	v->avail = avail;
	v->used = used;
	return 0;
}

int vblk_vq_set_base(struct vblk *d, unsigned q, uint16_t base)
{
	struct vqueue *v = vqueue(d, q);

	if (!v)
		return -EINVAL;
	v->base = base;
	return 0;
}

/* A head the log says is in flight, with its place in the order taken. */
struct logged_head {
	uint16_t head;
	uint64_t counter;
};

static int cmp_counter(const void *a, const void *b)
{
	uint64_t ca = ((const struct logged_head *)a)->counter;
	uint64_t cb = ((const struct logged_head *)b)->counter;

	return ca < cb ? -1 : ca > cb;
}

/* Reads the inflight log and the used ring (under a memguard: the log and
 * the ring are the client's) into hs. A log of another geometry, or a
 * fresh one, is (re)initialised: nothing to recover. */
static int inflight_read(struct vqueue *v, uint16_t *used_out, struct logged_head *hs,
			 unsigned *nheads)
{
	struct vhost_user_inflight_split *log = v->log;
	struct memguard g;
	uint16_t used;
	unsigned n = 0;

	memguard_push(&g);
	if (sigsetjmp(g.env, 0))
		return -EFAULT;
	used = vq_ring_used_idx(&v->vq);
	if (log->version != VHOST_USER_INFLIGHT_VERSION || log->desc_num != v->num) {
		memset(log->desc, 0, v->num * sizeof(log->desc[0]));
		log->desc_num = (uint16_t)v->num;
		log->last_batch_head = 0;
		log->used_idx = v->base;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		log->version = VHOST_USER_INFLIGHT_VERSION;
		used = v->base;
	} else {
		/* The last completion reached the used ring, its log entry not:
		 * it is done. */
		if (log->used_idx != used) {
			if (log->last_batch_head < v->num)
				log->desc[log->last_batch_head].inflight = 0;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			log->used_idx = used;
		}
		/* Copied out: the client may rewrite its log while we sort. */
		for (unsigned i = 0; i < v->num; i++)
			if (log->desc[i].inflight == 1)
				hs[n++] = (struct logged_head){ (uint16_t)i, log->desc[i].counter };
	}
	memguard_pop(&g);
	*used_out = used;
	*nheads = n;
	return 0;
}

/* Picks up where an earlier process (or session) left queue v: every head
 * taken and not in the used ring is taken again (and answered exactly
 * once), and the next available entry to take is the used index plus
 * those, as every head taken is either used or still in flight. */
static int inflight_recover(struct vblk *d, struct vqueue *v)
{
	struct logged_head *hs;
	uint16_t *heads, used;
	unsigned n;
	int rc;

	if (v->log_len < VHOST_USER_INFLIGHT_QUEUE_SIZE(v->num)) {
		log_err(d->name, "inflight log of %zu bytes is too small for %u entries", v->log_len,
			v->num);
		return -EINVAL;
	}
	hs = calloc(v->num, sizeof(*hs));
	heads = calloc(v->num, sizeof(*heads));
	if (!hs || !heads) {
		free(hs);
		free(heads);
		return -ENOMEM;
	}
	rc = inflight_read(v, &used, hs, &n);
	if (rc < 0) {
		free(hs);
		free(heads);
		return rc;
	}
	qsort(hs, n, sizeof(*hs), cmp_counter);
	for (unsigned i = 0; i < n; i++)
		heads[i] = hs[i].head;
	v->counter = n ? hs[n - 1].counter + 1 : 0;
	free(hs);
	free(v->resubmit);
	v->resubmit = heads;
	v->nresubmit = n;
	v->resubmit_pos = 0;
	vq_set_base(&v->vq, (uint16_t)(used + n), used);
	if (n)
		log_info(d->name, "%u request%s left in flight by an earlier server: serving them again",
			 n, n == 1 ? "" : "s");
	return 0;
}

static void break_device(struct vblk *d);

/* The queue's first request to take: from the inflight log, if any. */
static int vq_begin(struct vblk *d, struct vqueue *v, unsigned q)
{
	int rc;

	if (!v->log)
		return 0;
	rc = inflight_recover(d, v);
	if (rc)
		log_err(d->name, "queue %u: %s", q,
			rc == -EFAULT ? "client memory vanished" : "cannot recover the inflight log");
	return rc;
}

/* The last request of the earlier sessions has ended: the queues started
 * meanwhile begin now. */
static void start_pending_queues(struct vblk *d)
{
	for (unsigned q = 0; q < d->conf.num_queues; q++) {
		struct vqueue *v = &d->vqs[q];

		if (!v->start_pending)
			continue;
		v->start_pending = false;
		if (vq_begin(d, v, q) != 0) {
			v->started = false;
			break_device(d);
			continue;
		}
		vblk_vq_kick(d, q);
	}
}

int vblk_vq_start(struct vblk *d, unsigned q)
{
	struct vqueue *v = vqueue(d, q);
	uint64_t dg, ag, ug;
	struct vq_err err = { 0 };
	int rc;

	if (!v || !v->num)
		return -EINVAL;
	if (uva_to_gpa(d, v->desc, &dg) || uva_to_gpa(d, v->avail, &ag) || uva_to_gpa(d, v->used, &ug)) {
		log_err(d->name, "queue %u: ring addresses outside the client's memory", q);
		return -EFAULT;
	}
	rc = vq_set_addr(&v->vq, v->num, dg, ag, ug, &err);
	if (rc) {
		log_err(d->name, "queue %u: %s", q, err.why ? err.why : strerror(-rc));
		return rc;
	}
	/* Completions of requests still in flight land in the new ring at
	 * the index the front end handed back (GET_VRING_BASE only stops
	 * taking); an inflight log may say otherwise (vq_begin). */
	vq_set_base(&v->vq, v->base, v->base);
	v->started = true;
	if (d->old_inflight) {
		v->start_pending = true;
		log_info(d->name, "queue %u: waiting for %u requests of the previous session to end", q,
			 d->old_inflight);
		return 0;
	}
	rc = vq_begin(d, v, q);
	if (rc)
		v->started = false;
	return rc;
}

int vblk_vq_set_inflight(struct vblk *d, unsigned q, void *log, size_t len)
{
	struct vqueue *v = vqueue(d, q);

	if (!v || (log && len < VHOST_USER_INFLIGHT_QUEUE_SIZE(1)))
		return -EINVAL;
	v->log = log;
	v->log_len = log ? len : 0;
	return 0;
}

/* A ring handed back to the front end (stopped) asks for kicks again,
 * whatever the loop's polling left in it: whoever runs it next (another
 * back end, an older nvme-drv) may not know to clear NO_NOTIFY. */
static void ring_kicks_on(struct vblk *d, struct vqueue *v)
{
	struct memguard g;

	(void)d;
	memguard_push(&g);
	if (sigsetjmp(g.env, 0))
		return;	/* memory gone: nothing to hand back */
	vq_set_notify(&v->vq, true);
	memguard_pop(&g);
}

int vblk_vq_stop(struct vblk *d, unsigned q)
{
	struct vqueue *v = vqueue(d, q);

	if (!v || !v->started)
		return 1;
	/* "Ring stop": take nothing more, but let what is in flight land in
	 * the used ring first, or the driver would wait for it forever. */
	v->base = vq_get_base(&v->vq);
	v->start_pending = false;
	qos_flush(d, q);	/* taken before base: it must reach the used ring */
	if (v->inflight) {
		v->stopping = true;
		return 0;
	}
	ring_kicks_on(d, v);
	v->started = false;
	return 1;
}

uint16_t vblk_vq_base(const struct vblk *d, unsigned q)
{
	return q < d->conf.num_queues ? d->vqs[q].base : 0;
}

void vblk_vq_enable(struct vblk *d, unsigned q, bool on)
{
	struct vqueue *v = vqueue(d, q);

	if (v)
		v->enabled = on;
}

/* ---- requests ---- */

static struct vblk_io *io_get(struct vblk *d)
{
	struct vblk_io *io = d->free_ios;

	if (io)
		d->free_ios = io->next_free;
	else
		io = malloc(sizeof(*io));
	return io;
}

static void io_put(struct vblk *d, struct vblk_io *io)
{
	io->next_free = d->free_ios;
	d->free_ios = io;
}

/* Pins the regions of every buffer of the request (header, data, status)
 * until it ends: the controller writes into the data, and we write the
 * status, into memory that a new table may have dropped meanwhile. */
static void io_ref(struct vblk *d, struct vblk_io *io)
{
	for (unsigned i = 0; i < io->elem.nout + io->elem.nin; i++) {
		struct region *r = find_gpa(d, io->segs[i].gpa, io->segs[i].len);
		bool have = false;

		for (unsigned k = io->nrefs; k-- > 0 && !have;)
			have = io->refs[k] == r;
		if (r && !have) {
			r->refs++;
			io->refs[io->nrefs++] = r;
		}
	}
}

static void io_unref(struct vblk *d, struct vblk_io *io)
{
	for (unsigned i = 0; i < io->nrefs; i++)
		region_put(d, io->refs[i]);
	io->nrefs = 0;
}

/* The driver's memory is gone under us (its file was cut short): the
 * device is broken, the front end must reset it. */
/* Whether queue q takes requests now. */
static bool runnable(const struct vblk *d, const struct vqueue *v)
{
	return v->started && v->enabled && !v->stopping && !v->start_pending && !d->broken &&
	       !d->destroying && !d->quiesced && !v->held;
}

static void vanished(struct vblk *d, unsigned q)
{
	log_err(d->name, "queue %u: client memory vanished (file truncated?); device needs reset", q);
	d->vqs[q].started = false;
	if (!d->broken) {
		d->broken = true;
		d->ops->broken(d->ctx);
	}
}

/* Writes the status and puts the chain in the used ring. Returns 1 when
 * the driver wants a notification, 0 when not, -EFAULT when its memory
 * vanished. */
/* vblk_set_coalesce_us: process-wide, set before any device exists. */
static uint64_t coalesce_ns = VBLK_COALESCE_US_DEFAULT * 1000ull;

void vblk_set_coalesce_us(unsigned us)
{
	coalesce_ns = (uint64_t)us * 1000u;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int push_used(struct vblk *d, struct vblk_io *io, uint8_t status, uint32_t data_written,
		     bool decide)
{
	struct vqueue *v = &d->vqs[io->q];
	struct memguard g;
	int rc;

	memguard_push(&g);
	if (sigsetjmp(g.env, 0))
		return -EFAULT;
	rc = 0;
	/* The log says which head may have reached the ring before its entry
	 * was cleared (inflight_read() settles it with the used index). */
	if (v->log)
		v->log->last_batch_head = io->elem.head;
	if (vq_push(&v->vq, io->elem.head, vblk_req_complete(&io->req, status, data_written)) == 0) {
		if (v->log) {
			v->log->desc[io->elem.head].inflight = 0;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			v->log->used_idx = v->vq.used_idx;
		}
		rc = decide ? vq_should_notify(&v->vq) : 0;
	}
	memguard_pop(&g);
	return rc;
}

static void io_finish(struct vblk_io *io, uint8_t status, uint32_t data_written)
{
	struct vblk *d = io->d;
	struct vqueue *v = &d->vqs[io->q];

	if (status != VIRTIO_BLK_S_OK)
		d->stats.errors++;
	/* A request of an earlier session, or of a queue stopped since: the
	 * driver that posted it has taken the ring back; the completion has
	 * nowhere to go. */
	if (io->gen == d->gen && v->started && !d->destroying) {
		bool hold_it;
		int rc;

		/* The loop polls and more than VBLK_COALESCE_MIN stay in
		 * flight: the notification waits (vblk.h). Deciding later
		 * loses nothing: vq_should_notify() judges every entry
		 * pushed since the last notification at once. */
		hold_it = coalesce_ns && v->vq.notify_off && v->taken > VBLK_COALESCE_MIN;
		rc = push_used(d, io, status, data_written, !hold_it);
		v->taken--;
		if (rc < 0) {
			vanished(d, io->q);
		} else if (hold_it) {
			if (!v->notify_held) {
				v->notify_held = true;
				v->notify_since = mono_ns();
			}
		} else {
			v->notify_held = false;
			if (rc)
				d->ops->notify(d->ctx, io->q);
		}
	}
	io_unref(d, io);	/* after the status byte is written */
	io_put(d, io);
}

static void nvme_done(struct nvme_req *r)
{
	struct vblk_io *io = r->priv;
	struct vblk *d = io->d;
	struct vqueue *v = &d->vqs[io->q];
	unsigned q = io->q;
	bool same_session = io->gen == d->gen;

	if (r->result) {
		io->failed = true;
		log_debug(d->name, "NVMe %s failed: %s (status %#x)",
			  io->req.type == VIRTIO_BLK_T_IN ? "read" : "command", strerror(-r->result), r->status);
	}
	if (--io->pending)
		return;
	hold(d);
	io_finish(io, io->failed ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
		  io->failed || io->req.type != VIRTIO_BLK_T_IN ? 0 : io->req.in_data_len);
	d->inflight--;
	if (!same_session && d->old_inflight && !--d->old_inflight)
		start_pending_queues(d);
	if (same_session && v->inflight && !--v->inflight && v->stopping) {
		v->stopping = false;
		ring_kicks_on(d, v);
		v->started = false;
		d->ops->drained(d->ctx, q);
	}
	/* One of its own ended: the queue may take again what it left. */
	if (same_session && v->fair_wait) {
		v->fair_wait = false;
		vblk_vq_kick(d, q);
	}
	release(d);
}

static struct nvme_qpair *pick_qp(struct vblk *d, unsigned q)
{
	unsigned n = nvme_ctrl_nr_qpairs(d->ctrl);
	unsigned step = d->conf.qp_step ? d->conf.qp_step : 1, base = d->conf.qp_base % n;
	unsigned mine = (n - base + step - 1) / step;	/* base, base + step, ... below n */

	return nvme_ctrl_qpair(d->ctrl, base + step * ((d->conf.qp_first + q) % mine));
}

/* Starts the NVMe command of an accepted request, or completes it at once
 * (nothing to send, or nothing could be sent). */
static void io_start(struct vblk *d, struct vblk_io *io)
{
	const struct nvme_ctrl_info *ci = nvme_ctrl_info(d->ctrl);
	struct vblk_req *rq = &io->req;
	struct nvme_qpair *qp = pick_qp(d, io->q);
	unsigned n = 0;

	switch (rq->type) {
	case VIRTIO_BLK_T_GET_ID: {
		struct memguard g;
		volatile uint32_t id_len = 0;	/* read after a fault jump */

		d->stats.get_ids++;
		memguard_push(&g);
		if (sigsetjmp(g.env, 0) == 0) {
			id_len = vblk_req_fill_id(rq, d->id);
			memguard_pop(&g);
		}
		/* Had the memory vanished, pushing the answer finds out too. */
		io_finish(io, VIRTIO_BLK_S_OK, id_len);
		return;
	}
	case VIRTIO_BLK_T_FLUSH:
		d->stats.flushes++;
		if (!ci->vwc) {	/* no volatile cache: every write is durable */
			io_finish(io, VIRTIO_BLK_S_OK, 0);
			return;
		}
		io->nreq[0] = (struct nvme_req){ .opc = NVME_CMD_FLUSH };
		n = 1;
		break;
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		for (unsigned i = 0; i < rq->ndata; i++) {
			struct region *r = find_gpa(d, rq->data[i].gpa, rq->data[i].len);
			if (!r) { /* translate found it a moment ago */
				io_finish(io, VIRTIO_BLK_S_IOERR, 0);
				return;
			}
			io->nsegs[i].iova = r->iova + r->iova_off + (rq->data[i].gpa - r->m.gpa);
			io->nsegs[i].len = rq->data[i].len;
		}
		io->nreq[0] = (struct nvme_req){
			.opc = rq->type == VIRTIO_BLK_T_IN ? NVME_CMD_READ : NVME_CMD_WRITE,
			.slba = rq->lba, .nlb = rq->nlb, .segs = io->nsegs, .nseg = rq->ndata,
		};
		if (rq->type == VIRTIO_BLK_T_IN) {
			d->stats.reads++;
			d->stats.bytes_read += (uint64_t)rq->nlb * d->vt.lba_size;
		} else {
			d->stats.writes++;
			d->stats.bytes_written += (uint64_t)rq->nlb * d->vt.lba_size;
		}
		n = 1;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		/* One request for all the ranges: the NVMe layer packs them into
		 * as few commands as the controller's DSM and Write Zeroes limits
		 * allow, and completes it once. */
		for (unsigned i = 0; i < rq->nranges; i++)
			io->ranges[i] = (struct nvme_range){
				.slba = rq->ranges[i].lba, .nlb = rq->ranges[i].nlb,
				.flags = rq->ranges[i].unmap ? NVME_REQ_DEALLOCATE : 0,
			};
		io->nreq[0] = (struct nvme_req){
			.opc = rq->type == VIRTIO_BLK_T_DISCARD ? NVME_CMD_DSM : NVME_CMD_WRITE_ZEROES,
			.ranges = io->ranges, .nranges = rq->nranges,
		};
		n = rq->nranges ? 1 : 0;
		if (rq->type == VIRTIO_BLK_T_DISCARD)
			d->stats.discards++;
		else
			d->stats.write_zeroes++;
		break;
	default:
		io_finish(io, VIRTIO_BLK_S_UNSUPP, 0);
		return;
	}
	if (!n) {
		io_finish(io, VIRTIO_BLK_S_OK, 0);
		return;
	}
	io->pending = n;
	io->failed = false;
	d->inflight++;
	d->vqs[io->q].inflight++;
	for (unsigned i = 0; i < n; i++) {
		int rc;

		io->nreq[i].ns = d->conf.target.ns;
		io->nreq[i].done = nvme_done;
		io->nreq[i].priv = io;
		io->nreq[i].share = &d->vqs[io->q].share;
		rc = nvme_submit(qp, &io->nreq[i]);
		if (rc) {
			/* Not queued: count it done here, failed. */
			log_debug(d->name, "cannot submit: %s", strerror(-rc));
			io->failed = true;
			io->nreq[i].result = rc;
			nvme_done(&io->nreq[i]);
		}
	}
}

/* Takes the next request off the ring and parses it. Returns 1 (a
 * request in io), 0 (the ring is empty), a negative errno for a driver
 * that broke the rules (why in *err or io->req.why), or -EFAULT when its
 * memory vanished. */
static int take(struct vblk *d, struct vqueue *v, struct vblk_io *io, struct vq_err *err)
{
	struct memguard g;
	int rc;

	memguard_push(&g);
	if (sigsetjmp(g.env, 0))
		return -EFAULT;
	if (v->resubmit_pos < v->nresubmit) {
		rc = vq_pop_head(&v->vq, v->resubmit[v->resubmit_pos++], &io->elem, err);
	} else {
		rc = vq_pop(&v->vq, &io->elem, err);
		/* In the log before anything of it happens: a successor takes
		 * it again. Counter first: an entry is whole once it is marked. */
		if (rc > 0 && v->log) {
			v->log->desc[io->elem.head].counter = v->counter++;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			v->log->desc[io->elem.head].inflight = 1;
		}
	}
	if (rc > 0) {
		v->taken++;
		rc = vblk_req_parse(&d->vt, &io->elem, &io->req);
		rc = rc ? rc : 1;
		if (rc < 0) {
			err->why = io->req.why;
			err->desc = -1;	/* the request, not a descriptor */
		}
	}
	memguard_pop(&g);
	return rc;
}

static void break_device(struct vblk *d)
{
	d->broken = true;
	d->ops->broken(d->ctx);
}


/* Polling (evloop.h): one load of each running ring's avail index; a
 * ring with buffers is served as a kick would. Found work means requests
 * taken, not merely seen (none may be takeable until I/O completes). */
static bool poll_queue(struct vblk *d, unsigned q, bool notify, bool on)
{
	struct vqueue *v = &d->vqs[q];
	struct memguard g;
	uint16_t before;
	bool avail;

	memguard_push(&g);
	if (sigsetjmp(g.env, 0)) {
		vanished(d, q);
		return true;
	}
	avail = notify ? vq_set_notify(&v->vq, on) : vq_avail(&v->vq);
	memguard_pop(&g);
	if (!avail || !runnable(d, v))
		return false;
	before = vq_get_base(&v->vq);
	vblk_vq_kick(d, q);
	return vq_get_base(&v->vq) != before;
}

/* Sends a notification io_finish() held back once it is due: forced (the
 * loop stops polling), its time has come, or few are left in flight. */
static void flush_notify(struct vblk *d, unsigned q, bool force)
{
	struct vqueue *v = &d->vqs[q];
	struct memguard g;
	bool rc;

	if (!v->notify_held || !v->started)
		return;
	if (!force && v->taken >= VBLK_COALESCE_MIN && mono_ns() - v->notify_since < coalesce_ns)
		return;
	v->notify_held = false;
	memguard_push(&g);
	if (sigsetjmp(g.env, 0)) {
		vanished(d, q);
		return;
	}
	rc = vq_should_notify(&v->vq);
	memguard_pop(&g);
	if (rc)
		d->ops->notify(d->ctx, q);
}

bool vblk_poll(struct vblk *d)
{
	bool found = false;

	hold(d);
	for (unsigned q = 0; q < d->conf.num_queues && !d->broken; q++)
		flush_notify(d, q, false);
	for (unsigned q = 0; q < d->conf.num_queues && !d->broken; q++)
		if (runnable(d, &d->vqs[q]) && poll_queue(d, q, false, false))
			found = true;
	release(d);
	return found;
}

bool vblk_set_notify(struct vblk *d, bool on)
{
	bool found = false;

	/* Every ring that has one, running or not: none is left asking for
	 * no kicks once polling ends. */
	hold(d);
	for (unsigned q = 0; on && q < d->conf.num_queues && !d->broken; q++)
		flush_notify(d, q, true);
	for (unsigned q = 0; q < d->conf.num_queues && !d->broken; q++)
		if (d->vqs[q].started && poll_queue(d, q, true, on))
			found = true;
	release(d);
	return found;
}

void vblk_vq_kick(struct vblk *d, unsigned q)
{
	struct vqueue *v = vqueue(d, q);
	unsigned turn = 0;

	if (!v)
		return;
	hold(d);
	d->over_budget &= ~(1u << q);
	/* Every request this kick brings goes to the controller with one
	 * doorbell write. */
	nvme_qpair_plug(pick_qp(d, q));
	while (runnable(d, v)) {
		struct vq_err err = { 0 };
		struct vblk_io *io;
		int rc;

		if (d->conf.loop && ++turn > d->conf.vq_budget) {
			/* Its turn is over; whether more is there is seen then. */
			d->over_budget |= 1u << q;
			d->stats.yields++;
			evloop_yield(d->conf.loop, &d->more);
			break;
		}
		io = io_get(d);
		if (!io)
			break;	/* retried on the next kick or completion */
		if (nvme_share_full(pick_qp(d, q), &v->share)) {
			/* The rest stays in the ring until one of ours ends. */
			io_put(d, io);
			v->fair_wait = true;
			break;
		}
		if (v->taken >= v->num) {
			/* More requests than the ring has room for: the driver made
			 * a head available again before it was used (2.7.13). */
			io_put(d, io);
			log_err(d->name, "queue %u: more requests outstanding than the queue size %u; "
				"device needs reset", q, v->num);
			break_device(d);
			break;
		}
		memset(&io->elem, 0, sizeof(io->elem));
		io->d = d;
		io->q = q;
		io->gen = d->gen;
		io->nrefs = 0;
		io->elem.segs = io->segs;
		io->elem.max_segs = VBLK_MAX_SEGS;
		rc = take(d, v, io, &err);
		if (rc <= 0) {
			io_put(d, io);
			if (rc == -EFAULT && !err.why) {
				vanished(d, q);
			} else if (rc < 0 && err.desc < 0) {
				log_err(d->name, "queue %u: %s; device needs reset", q,
					err.why ? err.why : strerror(-rc));
				break_device(d);
			} else if (rc < 0) {
				log_err(d->name, "queue %u: %s (descriptor %d%s); device needs reset", q,
					err.why ? err.why : strerror(-rc), err.desc, err.indirect ? ", indirect" : "");
				break_device(d);
			}
			break;
		}
		io_ref(d, io);
		if (io->req.status != VIRTIO_BLK_S_OK) {
			log_debug(d->name, "queue %u: request type %u refused: %s", q, io->req.type,
				  io->req.why ? io->req.why : "");
			io_finish(io, io->req.status, 0);
			continue;
		}
		if (qos_hold(d, v, io))
			break;
		io_start(d, io);
	}
	nvme_qpair_unplug(pick_qp(d, q));
	release(d);
}

/* ---- QoS ----
 *
 * A request a limit holds back (vblk/qos.h) has been taken from its ring
 * and parsed: it waits in vqueue.held, in order (its queue takes nothing
 * more meanwhile), until the timer lets it go. Until then it is a
 * request waiting to be issued: a queue stopped (GET_VRING_BASE) or
 * quiesced (hand-over) issues it at once, limit or not, so that it
 * reaches the used ring; a reset (a new session) drops it unanswered, as
 * the driver that posted it is gone. Only requests that reach the
 * controller count: reads, writes, flushes, discards, write-zeroes. */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool qos_counts(const struct vblk_io *io)
{
	switch (io->req.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
	case VIRTIO_BLK_T_FLUSH:
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return true;
	default:
		return false;
	}
}

static enum qos_dir qos_dir_of(const struct vblk_io *io)
{
	return io->req.type == VIRTIO_BLK_T_IN ? QOS_READ : QOS_WRITE;
}

static uint64_t qos_bytes(const struct vblk *d, const struct vblk_io *io)
{
	if (io->req.type != VIRTIO_BLK_T_IN && io->req.type != VIRTIO_BLK_T_OUT)
		return 0;
	return (uint64_t)io->req.nlb * d->vt.lba_size;
}

/* Arms the timer for the earliest moment a held request may go, or
 * disarms it when none is held (or none may go: a broken device waits
 * for its reset). */
static void qos_rearm(struct vblk *d)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	uint64_t now = now_ns(), wait = UINT64_MAX, at = 0;

	if (d->qos_fd < 0)
		return;
	for (unsigned q = 0; q < d->conf.num_queues && d->nheld && !d->broken; q++) {
		struct vblk_io *io = d->vqs[q].held;
		struct qos probe = d->qos;	/* qos_admit charges: ask a copy */
		uint64_t w;

		if (!io)
			continue;
		w = qos_admit(&probe, qos_dir_of(io), qos_bytes(d, io), now);
		if (w < wait)
			wait = w;
	}
	if (wait != UINT64_MAX)
		at = now + (wait ? wait : 1);
	if (at == d->qos_deadline)
		return;
	its.it_value.tv_sec = (time_t)(at / 1000000000ull);
	its.it_value.tv_nsec = (long)(at % 1000000000ull);
	if (timerfd_settime(d->qos_fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
		/* Cannot happen with a valid fd and time; were it to, the held
		 * requests go at the next kick of their queue's neighbours. */
		log_err(d->name, "QoS timer: %s", strerror(errno));
		return;
	}
	d->qos_deadline = at;
}

/* The request was taken while queue v's turn was not due, or while
 * another request waits: it waits too. Returns false when it may go. */
static bool qos_hold(struct vblk *d, struct vqueue *v, struct vblk_io *io)
{
	if (!qos_active(&d->qos) || !qos_counts(io))
		return false;
	if (!d->nheld && qos_admit(&d->qos, qos_dir_of(io), qos_bytes(d, io), now_ns()) == 0)
		return false;
	v->held = io;
	d->nheld++;
	d->stats.throttled++;
	qos_rearm(d);
	return true;
}

/* Pins the regions io's data buffers lie in now: the memory table may
 * have changed while it waited (a front end sends SET_MEM_TABLE again on
 * memory hot-plug), and the controller must move data only into memory
 * that stays mapped until io ends. The regions its header and status were
 * parsed in stay pinned too: they are written where they were read.
 * Returns false when a buffer is in no region now, or too many regions
 * would be held. */
static bool io_ref_data(struct vblk *d, struct vblk_io *io)
{
	for (unsigned i = 0; i < io->req.ndata; i++) {
		struct region *r = find_gpa(d, io->req.data[i].gpa, io->req.data[i].len);
		bool have = false;

		if (!r)
			return false;
		for (unsigned k = 0; k < io->nrefs && !have; k++)
			have = io->refs[k] == r;
		if (have)
			continue;
		if (io->nrefs == VBLK_MAX_SEGS)
			return false;
		r->refs++;
		io->refs[io->nrefs++] = r;
	}
	return true;
}

/* Sends queue q's held request; one whose data the client has taken out
 * of its memory meanwhile fails (IOERR), as at io_start(). */
static void qos_start(struct vblk *d, unsigned q)
{
	struct vblk_io *io = d->vqs[q].held;

	d->vqs[q].held = NULL;
	d->nheld--;
	if (!io_ref_data(d, io)) {
		log_debug(d->name, "queue %u: a held request's data left the memory table", q);
		io_finish(io, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	io_start(d, io);
}

/* Lets every held request go that the limits admit now, each queue in
 * turn (the first turn moves on each time), and takes more from the
 * queues that were let go. */
static void qos_release(struct vblk *d)
{
	unsigned n = d->conf.num_queues;
	uint64_t now = now_ns();

	hold(d);
	for (unsigned i = 0; i < n && d->nheld && !d->broken && !d->destroying; i++) {
		unsigned q = (d->qos_next + i) % n;
		struct vblk_io *io = d->vqs[q].held;

		if (!io || !d->vqs[q].started ||
		    qos_admit(&d->qos, qos_dir_of(io), qos_bytes(d, io), now) != 0)
			continue;
		qos_start(d, q);
		vblk_vq_kick(d, q);
	}
	d->qos_next = (d->qos_next + 1) % n;
	qos_rearm(d);
	release(d);
}

static void qos_on_timer(void *arg, uint32_t events)
{
	struct vblk *d = arg;
	uint64_t ticks;

	(void)events;
	if (read(d->qos_fd, &ticks, sizeof(ticks)) < 0)
		return;	/* re-armed since it fired */
	d->qos_deadline = 0;
	qos_release(d);
}

static void qos_flush(struct vblk *d, unsigned q)
{
	if (!d->vqs[q].held)
		return;
	hold(d);
	qos_start(d, q);
	qos_rearm(d);
	release(d);
}

static void qos_drop(struct vblk *d)
{
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++) {
		struct vblk_io *io = d->vqs[q].held;

		if (!io)
			continue;
		d->vqs[q].held = NULL;
		io_unref(d, io);
		io_put(d, io);
	}
	d->nheld = 0;
	qos_rearm(d);
}

static void qos_close(struct vblk *d)
{
	if (d->qos_fd < 0)
		return;
	evloop_del(d->conf.loop, d->qos_fd);
	close(d->qos_fd);
	d->qos_fd = -1;
}

int vblk_set_qos(struct vblk *d, const struct qos_limits *l)
{
	bool any = false;
	int rc;

	if (qos_check(l))
		return -EINVAL;
	for (int k = 0; k < QOS_NKEYS; k++)
		any |= l->v[k] != 0;
	if (any && !d->conf.loop)
		return -EINVAL;
	if (any && d->qos_fd < 0) {
		int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

		if (fd < 0)
			return -errno;
		rc = evloop_add(d->conf.loop, fd, EPOLLIN, qos_on_timer, d);
		if (rc) {
			close(fd);
			return rc;
		}
		d->qos_fd = fd;
		d->qos_deadline = 0;
	}
	qos_set(&d->qos, l, now_ns());
	d->conf.qos = *l;
	/* Held requests are judged again under the new limits now. */
	qos_release(d);
	return 0;
}
