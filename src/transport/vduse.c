#include "transport/vduse.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vduse.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "transport/vdpa_nl.h"
#include "util/log.h"

#define VDUSE_CONTROL "/dev/vduse/control"
#define VDUSE_DEV_DIR "/dev/vduse/"
/* The management device the vduse module registers on the vdpa bus. */
#define VDUSE_MGMTDEV "vduse"
/* Ring entries offered per queue (VDUSE_VQ_SETUP max_size); the driver
 * picks the size it uses, which VDUSE_VQ_GET_INFO reports. */
#define QUEUE_SIZE 256
/* Alignment of the split ring's used ring (virtio 1.2 2.7); a page, as
 * QEMU's vduse-blk uses, also keeps each ring in pages of its own. */
#define VQ_ALIGN 4096
/* VDUSE_MAX_BOUNCE_SIZE of drivers/vdpa/vdpa_user/vduse_dev.c. */
#define BOUNCE_MAX (1ull << 30)

/* The wire formats of read(2)/write(2) on /dev/vduse/NAME and the ioctl
 * arguments, as the 6.x kernels define them (the sizes are also part of
 * the ioctl numbers). */
_Static_assert(sizeof(struct vduse_dev_request) == 152, "struct vduse_dev_request");
_Static_assert(sizeof(struct vduse_dev_response) == 152, "struct vduse_dev_response");
_Static_assert(sizeof(struct vduse_dev_config) == 336 &&
	       offsetof(struct vduse_dev_config, config) == 336, "struct vduse_dev_config");
_Static_assert(sizeof(struct vduse_vq_config) == 32, "struct vduse_vq_config");
_Static_assert(sizeof(struct vduse_vq_info) == 48, "struct vduse_vq_info");
_Static_assert(sizeof(struct vduse_iotlb_entry) == 32, "struct vduse_iotlb_entry");
_Static_assert(sizeof(struct vduse_iova_info) == 48, "struct vduse_iova_info");
_Static_assert(sizeof(struct vduse_iova_umem) == 48, "struct vduse_iova_umem");
_Static_assert(VIRTIO_ID_BLOCK == 2, "virtio 1.2 5: the block device is device id 2");

struct kick {
	struct vduse_ep *ep;
	unsigned q;
	int fd;
};

/* An IOTLB entry given to vblk as a memory region. */
struct tlb_region {
	uint64_t start, last;	/* IOVAs, inclusive, as VDUSE gives them */
};

/* One vdpa netlink request, run on a helper thread. Every generic netlink
 * request of this process goes there, the family lookup included: while
 * one device's DEV_NEW or DEV_DEL waits for the loop's answers it may hold
 * the kernel's genetlink lock, and a request from the loop's thread would
 * wait for that lock until VDUSE times the answers out.
 * The thread and the endpoint each hold a reference; the last one frees
 * the job, so an endpoint destroyed mid-request leaves the thread nothing
 * dangling. */
struct bus_job {
	atomic_int refs;
	atomic_bool done;	/* publishes result and why */
	int result;
	char why[128];
	int efd;		/* the thread writes to it when done */
	int nl_fd;
	bool add;
	char name[VDUSE_NAME_MAX];
};

enum bus_state { BUS_OFF, BUS_ATTACHING, BUS_ON, BUS_DETACHING };

struct vduse_ep {
	struct evloop *loop;
	char name[VDUSE_NAME_MAX];	/* the VDUSE device and the vdpa device */
	char label[128];		/* log subject: the client */
	const struct vduse_ep_ops *ops;
	void *ctx;
	struct vblk *dev;
	unsigned nq;
	int ctl_fd;			/* /dev/vduse/control */
	int dev_fd;			/* /dev/vduse/NAME */
	bool dev_watched;
	bool created;
	enum bus_state bus;
	bool stop_wanted;		/* stop asked while attaching */
	struct bus_job *job;
	uint8_t status;			/* as last accepted */
	bool tlb_failed;		/* an IOTLB entry was refused: no retry per kick */
	struct kick kicks[VBLK_MAX_QUEUES];
	struct tlb_region *regs;	/* ds_max entries */
	unsigned nregs;
	/* Our bounce buffer, once registered (VDUSE keeps it until dev_fd
	 * closes, across device resets). */
	int bounce_fd;
	void *bounce_va;
	uint64_t bounce_size;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void notify(void *ctx, unsigned q)
{
	struct vduse_ep *ep = ctx;
	uint32_t idx = q;

	/* VDUSE refuses while DRIVER_OK is not set (a reset under way): the
	 * driver no longer waits for that queue then. */
	if (ioctl(ep->dev_fd, VDUSE_VQ_INJECT_IRQ, &idx) != 0)
		log_debug(ep->label, "queue %u: VDUSE_VQ_INJECT_IRQ: %s", q, strerror(errno));
}

static void broken(void *ctx)
{
	struct vduse_ep *ep = ctx;

	/* VDUSE has no way for a device to set DEVICE_NEEDS_RESET (virtio 1.2
	 * 2.1.2): the status is the driver's to write. The queue stays
	 * stopped; its requests never complete. */
	log_err(ep->label, "device stopped; VDUSE cannot ask the driver for a reset");
}

static void drained(void *ctx, unsigned q)
{
	/* Only vblk_vq_stop() leads here, and this transport never stops a
	 * queue that runs: a reset drops it whole. */
	(void)ctx;
	(void)q;
}

static const struct vblk_ops vblk_ops = { .notify = notify, .broken = broken, .drained = drained };

static bool tlb_known(const struct vduse_ep *ep, uint64_t start, uint64_t last)
{
	for (unsigned i = 0; i < ep->nregs; i++)
		if (ep->regs[i].start == start && ep->regs[i].last == last)
			return true;
	return false;
}

static bool tlb_covers(const struct vduse_ep *ep, uint64_t iova)
{
	for (unsigned i = 0; i < ep->nregs; i++)
		if (ep->regs[i].start <= iova && iova <= ep->regs[i].last)
			return true;
	return false;
}

/* gpa = uva = the IOVA: the driver's ring and buffer addresses are IOVAs. */
static struct vblk_mem tlb_mem(uint64_t start, uint64_t last, uint64_t offset, int fd)
{
	return (struct vblk_mem){ .gpa = start, .size = last - start + 1, .uva = start,
				  .mmap_offset = offset, .fd = fd };
}

/* VDUSE pins the bounce buffer against RLIMIT_MEMLOCK (pinned_vm) without
 * the CAP_IPC_LOCK exemption VFIO has (vduse_dev_reg_umem), and the default
 * limit (8 MiB) is below the default bounce size: make room for it. */
static void raise_memlock(const struct vduse_ep *ep, uint64_t bytes)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	rl.rlim_cur = rl.rlim_cur > RLIM_INFINITY - bytes ? RLIM_INFINITY : rl.rlim_cur + bytes;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		log_debug(ep->label, "cannot raise RLIMIT_MEMLOCK: %s", strerror(errno));
}

/* Makes a memfd of ours the bounce buffer (VDUSE_IOTLB_REG_UMEM). VDUSE
 * takes only the whole buffer, and only once the driver's first streaming
 * DMA mapping has created its IOTLB entry; it copies what the driver had
 * already bounced into our pages. */
static int bounce_register(struct vduse_ep *ep, uint64_t size)
{
	struct vduse_iova_umem um = { 0 };
	long page = sysconf(_SC_PAGESIZE);
	void *va;
	int fd, rc;

	if (ep->bounce_va) {
		if (size == ep->bounce_size)
			return 0;
		log_err(ep->label, "bounce buffer of %llu bytes, registered with %llu",
			(unsigned long long)size, (unsigned long long)ep->bounce_size);
		return -EINVAL;
	}
	if (!size || size > BOUNCE_MAX || page <= 0 || size % (uint64_t)page) {
		log_err(ep->label, "VDUSE bounce buffer of %llu bytes: not a page multiple up to 1 GiB",
			(unsigned long long)size);
		return -EINVAL;
	}
	fd = memfd_create("vduse-bounce", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
		rc = -errno;
		log_err(ep->label, "cannot make a %llu MiB bounce buffer: %s",
			(unsigned long long)(size >> 20), strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (va == MAP_FAILED) {
		rc = -errno;
		log_err(ep->label, "cannot map the bounce buffer: %s", strerror(errno));
		close(fd);
		return rc;
	}
	raise_memlock(ep, size);
	um.uaddr = (uintptr_t)va;
	um.iova = 0;
	um.size = size;
	if (ioctl(ep->dev_fd, VDUSE_IOTLB_REG_UMEM, &um) != 0) {
		rc = -errno;
		log_err(ep->label, "VDUSE_IOTLB_REG_UMEM (%llu MiB): %s", (unsigned long long)(size >> 20),
			rc == -ENOMEM ? "over RLIMIT_MEMLOCK (ulimit -l)" : strerror(errno));
		munmap(va, size);
		close(fd);
		return rc;
	}
	ep->bounce_fd = fd;
	ep->bounce_va = va;
	ep->bounce_size = size;
	log_info(ep->label, "bounce buffer of %llu MiB registered", (unsigned long long)(size >> 20));
	return 0;
}

/* Gives vblk the IOTLB entry [start, last]: the bounce buffer (umem) is
 * backed by our memfd; any other entry (a ring's coherent memory) by the
 * file VDUSE_IOTLB_GET_FD hands out, at the offset it says. */
static int tlb_add(struct vduse_ep *ep, uint64_t start, uint64_t last, bool umem)
{
	struct vblk_mem m;
	int fd, rc;

	if (start == 0 && umem) {
		rc = bounce_register(ep, last + 1);
		if (rc)
			return rc;
		fd = fcntl(ep->bounce_fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		m = tlb_mem(0, last, 0, fd);
	} else {
		struct vduse_iotlb_entry e = { .start = start, .last = start };

		fd = ioctl(ep->dev_fd, VDUSE_IOTLB_GET_FD, &e);
		if (fd < 0) {
			rc = -errno;
			log_err(ep->label, "VDUSE_IOTLB_GET_FD %#llx: %s", (unsigned long long)start,
				strerror(errno));
			return rc;
		}
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (e.start != start || e.last != last) {
			/* Replaced between the two ioctls; an UPDATE_IOTLB follows. */
			close(fd);
			return -EAGAIN;
		}
		m = tlb_mem(start, last, e.offset, fd);
	}
	rc = vblk_mem_add(ep->dev, &m);	/* takes fd */
	if (rc)
		return rc;
	ep->regs[ep->nregs++] = (struct tlb_region){ start, last };
	log_debug(ep->label, "IOTLB entry %#llx-%#llx is memory region %u%s", (unsigned long long)start,
		  (unsigned long long)last, ep->nregs, start == 0 && umem ? " (bounce buffer)" : "");
	return 0;
}

/* Gives vblk every IOTLB entry overlapping [lo, hi] it does not have. */
static int tlb_sync(struct vduse_ep *ep, uint64_t lo, uint64_t hi)
{
	uint64_t at = lo;

	for (;;) {
		struct vduse_iova_info info = { .start = at, .last = hi };
		int rc;

		if (ioctl(ep->dev_fd, VDUSE_IOTLB_GET_INFO, &info) != 0)
			return errno == EINVAL ? 0 : -errno;	/* EINVAL: none (left) */
		if (info.last < info.start || info.last < at || info.start > hi) {
			log_err(ep->label, "VDUSE_IOTLB_GET_INFO [%#llx, %#llx] answered [%#llx, %#llx]",
				(unsigned long long)at, (unsigned long long)hi,
				(unsigned long long)info.start, (unsigned long long)info.last);
			return -EPROTO;
		}
		if (!tlb_known(ep, info.start, info.last)) {
			rc = tlb_add(ep, info.start, info.last, info.capability & VDUSE_IOVA_CAP_UMEM);
			if (rc)
				return rc;
		}
		if (info.last >= hi)
			return 0;
		at = info.last + 1;
	}
}

/* Takes the regions overlapping [lo, hi] from vblk (which keeps them
 * mapped until the I/O that may use them has ended). */
static void tlb_drop(struct vduse_ep *ep, uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < ep->nregs;) {
		struct tlb_region *r = &ep->regs[i];

		if (r->start <= hi && lo <= r->last) {
			struct vblk_mem m = tlb_mem(r->start, r->last, 0, -1);

			vblk_mem_remove(ep->dev, &m);
			*r = ep->regs[--ep->nregs];
		} else {
			i++;
		}
	}
}

static void on_kick(void *arg, uint32_t events)
{
	struct kick *k = arg;
	struct vduse_ep *ep = k->ep;
	uint64_t cnt;

	(void)events;
	if (read(k->fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return;
	/* The bounce buffer's IOTLB entry appears with the driver's first
	 * streaming DMA mapping, after DRIVER_OK: the first request that uses
	 * it brings it here. */
	if (!tlb_covers(ep, 0) && !ep->tlb_failed && tlb_sync(ep, 0, 0) != 0)
		ep->tlb_failed = true;	/* the request breaks the device: said once */
	vblk_vq_kick(ep->dev, k->q);
}

static void queue_stop(struct vduse_ep *ep, unsigned q)
{
	struct kick *k = &ep->kicks[q];

	if (k->fd < 0)
		return;
	evloop_del(ep->loop, k->fd);
	close_fd(&k->fd);
}

static int queue_start(struct vduse_ep *ep, unsigned q)
{
	struct vduse_vq_info vi = { .index = q };
	struct vduse_vq_eventfd ev = { .index = q };
	struct kick *k = &ep->kicks[q];
	int rc;

	if (ioctl(ep->dev_fd, VDUSE_VQ_GET_INFO, &vi) != 0)
		return -errno;
	/* virtio_blk uses one queue per CPU at most; the others stay unready. */
	if (!vi.ready)
		return 0;
	rc = vblk_vq_set_num(ep->dev, q, vi.num);
	if (rc) {
		log_err(ep->label, "queue %u: size %u refused", q, vi.num);
		return rc;
	}
	vblk_vq_set_addr(ep->dev, q, vi.desc_addr, vi.driver_addr, vi.device_addr);
	vblk_vq_set_base(ep->dev, q, vi.split.avail_index);
	k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->fd < 0)
		return -errno;
	/* A kick before this one is remembered by VDUSE (vq->kicked) and
	 * signalled on the new eventfd: nothing is lost. */
	ev.fd = k->fd;
	if (ioctl(ep->dev_fd, VDUSE_VQ_SETUP_KICKFD, &ev) != 0) {
		rc = -errno;
		close_fd(&k->fd);
		return rc;
	}
	rc = vblk_vq_start(ep->dev, q);
	if (!rc)
		rc = evloop_add(ep->loop, k->fd, EPOLLIN, on_kick, k);
	if (rc) {
		close_fd(&k->fd);
		return rc;
	}
	vblk_vq_enable(ep->dev, q, true);
	log_debug(ep->label, "queue %u: %u entries, desc %#llx avail %#llx used %#llx", q, vi.num,
		  (unsigned long long)vi.desc_addr, (unsigned long long)vi.driver_addr,
		  (unsigned long long)vi.device_addr);
	return 0;
}

/* DRIVER_OK: the rings are in place (virtio 1.2 3.1.1). No request is
 * taken before the reply: VDUSE drops an interrupt injected before it has
 * recorded DRIVER_OK, and the driver makes none available before then. */
static int device_start(struct vduse_ep *ep)
{
	int rc = tlb_sync(ep, 0, UINT64_MAX);

	if (rc)
		return rc;
	for (unsigned q = 0; q < ep->nq; q++) {
		rc = queue_start(ep, q);
		if (rc) {
			log_err(ep->label, "queue %u cannot start: %s", q, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Status 0: VDUSE resets its side after our answer (dropping the kick
 * eventfds and the bounce buffer's IOTLB entry; our buffer stays
 * registered), so everything here starts over. */
static void device_reset(struct vduse_ep *ep)
{
	for (unsigned q = 0; q < ep->nq; q++)
		queue_stop(ep, q);
	vblk_reset(ep->dev);
	ep->nregs = 0;
	ep->status = 0;
	ep->tlb_failed = false;
}

static int set_status(struct vduse_ep *ep, uint8_t st)
{
	uint8_t was = ep->status;
	int rc;

	log_debug(ep->label, "status %#x", st);
	if (st == 0) {
		device_reset(ep);
		if (was & VIRTIO_CONFIG_S_DRIVER_OK)
			log_info(ep->label, "driver reset the device");
		return 0;
	}
	/* A failed answer keeps FEATURES_OK out of the status, which tells the
	 * driver its features were refused (virtio 1.2 3.1.1 step 6). */
	if ((st & VIRTIO_CONFIG_S_FEATURES_OK) && !(was & VIRTIO_CONFIG_S_FEATURES_OK)) {
		uint64_t f;

		if (ioctl(ep->dev_fd, VDUSE_DEV_GET_FEATURES, &f) != 0)
			return -errno;
		/* ACCESS_PLATFORM belongs to VDUSE's DMA layer, not to vblk. */
		rc = vblk_set_features(ep->dev, f & ~VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM));
		if (rc)
			return rc;
	}
	if ((st & VIRTIO_CONFIG_S_DRIVER_OK) && !(was & VIRTIO_CONFIG_S_DRIVER_OK)) {
		rc = device_start(ep);
		if (rc)
			return rc;
		log_info(ep->label, "driver ready");
	}
	ep->status = st;
	return 0;
}

/* One request from VDUSE. Returns 0 (answered OK) or a negative errno
 * (answered FAILED). */
static int handle(struct vduse_ep *ep, const struct vduse_dev_request *rq,
		  struct vduse_dev_response *rs)
{
	switch (rq->type) {
	case VDUSE_SET_STATUS:
		return set_status(ep, rq->s.status);
	case VDUSE_GET_VQ_STATE: {
		unsigned q = rq->vq_state.index;

		if (q >= ep->nq)
			return -EINVAL;
		/* Only vhost-vdpa asks (VHOST_GET_VRING_BASE), and QEMU only of a
		 * suspended device, which VDUSE cannot do: a running ring has no
		 * final index to give. */
		if (ep->kicks[q].fd >= 0) {
			log_warn(ep->label, "queue %u: state asked while it runs: refused", q);
			return -EBUSY;
		}
		rs->vq_state.index = q;
		rs->vq_state.split.avail_index = vblk_vq_base(ep->dev, q);
		return 0;
	}
	case VDUSE_UPDATE_IOTLB: {
		uint64_t lo = rq->iova.start, hi = rq->iova.last;

		/* Sent when vhost-vdpa replaces the map (vduse_vdpa_set_map);
		 * virtio_vdpa's own DMA mappings never change an entry in place.
		 * A ring that was in the range breaks the device (vblk). */
		if (lo > hi)
			return -EINVAL;
		tlb_drop(ep, lo, hi);
		ep->tlb_failed = false;
		return ep->status & VIRTIO_CONFIG_S_DRIVER_OK ? tlb_sync(ep, lo, hi) : 0;
	}
	default:
		log_warn(ep->label, "unknown VDUSE request %u", rq->type);
		return -ENOSYS;
	}
}

static void unwatch_dev(struct vduse_ep *ep)
{
	if (ep->dev_watched)
		evloop_del(ep->loop, ep->dev_fd);
	ep->dev_watched = false;
}

/* Requests from the kernel: each is answered before the next is read, as
 * the driver waits for each (vduse_dev_msg_sync). */
static void on_dev(void *arg, uint32_t events)
{
	struct vduse_ep *ep = arg;

	if (events & EPOLLERR) {
		/* VDUSE marks a device broken when an answer took longer than its
		 * msg_timeout (/sys/class/vduse/NAME/msg_timeout), and says no
		 * more. */
		log_err(ep->label, "VDUSE marked the device broken");
		unwatch_dev(ep);
		return;
	}
	for (;;) {
		struct vduse_dev_request rq;
		struct vduse_dev_response rs;
		ssize_t n = read(ep->dev_fd, &rq, sizeof(rq));
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n != (ssize_t)sizeof(rq)) {
			log_err(ep->label, "reading a VDUSE request: %s",
				n < 0 ? strerror(errno) : "short read");
			unwatch_dev(ep);
			return;
		}
		memset(&rs, 0, sizeof(rs));
		rc = handle(ep, &rq, &rs);
		if (rc)
			log_warn(ep->label, "VDUSE request %u failed: %s", rq.type, strerror(-rc));
		rs.request_id = rq.request_id;
		rs.result = rc ? VDUSE_REQ_RESULT_FAILED : VDUSE_REQ_RESULT_OK;
		if (write(ep->dev_fd, &rs, sizeof(rs)) != (ssize_t)sizeof(rs))
			log_err(ep->label, "answering VDUSE request %u: %s", rq.type, strerror(errno));
	}
}

static void job_put(struct bus_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	close(j->efd);
	close(j->nl_fd);
	free(j);
}

static void *job_main(void *arg)
{
	struct bus_job *j = arg;
	uint64_t one = 1;
	uint16_t family;

	j->result = vdpa_nl_family(j->nl_fd, &family, j->why, sizeof(j->why));
	if (!j->result)
		j->result = vdpa_nl_dev(j->nl_fd, family, j->name, j->add ? VDUSE_MGMTDEV : NULL,
					j->why, sizeof(j->why));
	atomic_store(&j->done, true);
	if (write(j->efd, &one, sizeof(one)) < 0) {
		/* an eventfd counter far from overflow: cannot fail */
	}
	job_put(j);
	return NULL;
}

static bool job_start(struct vduse_ep *ep, bool add);

/* A bus request finished: the device is on the bus, off it, or stays
 * where it was. */
static void on_job(void *arg, uint32_t events)
{
	struct vduse_ep *ep = arg;
	struct bus_job *j = ep->job;
	char why[sizeof(j->why)];
	uint64_t cnt;
	int rc;

	(void)events;
	if (read(j->efd, &cnt, sizeof(cnt)) < 0 || !atomic_load(&j->done))
		return;
	evloop_del(ep->loop, j->efd);
	rc = j->result;
	memcpy(why, j->why, sizeof(why));
	ep->job = NULL;
	job_put(j);
	if (ep->bus == BUS_ATTACHING) {
		if (rc) {
			ep->bus = BUS_OFF;
			ep->ops->ended(ep->ctx, ep, rc, why);
			return;
		}
		ep->bus = BUS_ON;
		log_info(ep->label, "on the vdpa bus as %s", ep->name);
		/* The bus probes synchronously: a driver that took the device has
		 * set DRIVER_OK by now. */
		if (!(ep->status & VIRTIO_CONFIG_S_DRIVER_OK))
			log_warn(ep->label, "no driver has set %s up yet (modprobe virtio_vdpa virtio_blk)",
				 ep->name);
		if (!ep->stop_wanted) {
			if (ep->ops->attached)
				ep->ops->attached(ep->ctx, ep);
		} else if (!job_start(ep, false)) {
			ep->ops->ended(ep->ctx, ep, -EIO, "cannot start taking it off the vdpa bus");
		} else {
			ep->bus = BUS_DETACHING;
		}
		return;
	}
	ep->bus = rc ? BUS_ON : BUS_OFF;
	if (!rc)
		log_info(ep->label, "off the vdpa bus");
	ep->ops->ended(ep->ctx, ep, rc, why);
}

static bool job_start(struct vduse_ep *ep, bool add)
{
	struct bus_job *j = calloc(1, sizeof(*j));
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	int rc;

	if (!j)
		return false;
	atomic_init(&j->refs, 2);
	atomic_init(&j->done, false);
	j->add = add;
	memcpy(j->name, ep->name, sizeof(j->name));
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	j->nl_fd = vdpa_nl_socket();
	if (j->efd < 0 || j->nl_fd < 0 || evloop_add(ep->loop, j->efd, EPOLLIN, on_job, ep) != 0)
		goto fail;
	/* SIGTERM and SIGINT stay blocked in the thread: they are the loop's
	 * (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_attr_init(&attr);
	if (!rc) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&t, &attr, job_main, j);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		log_err(ep->label, "cannot start a thread: %s", strerror(rc));
		evloop_del(ep->loop, j->efd);
		goto fail;
	}
	ep->job = j;
	return true;
fail:
	if (j->efd >= 0)
		close(j->efd);
	if (j->nl_fd >= 0)
		close(j->nl_fd);
	free(j);
	return false;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	/* It becomes /dev/vduse/NAME: one path component. */
	return n && n < VDUSE_NAME_MAX && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* VDUSE_CREATE_DEV with the block device's features and configuration
 * space. A device of that name that nobody holds open and that is off the
 * bus was left by a server that died: it is removed and made again. */
static int create_dev(struct vduse_ep *ep, char *why, size_t whylen)
{
	_Alignas(8) uint8_t buf[offsetof(struct vduse_dev_config, config) +
			       sizeof(struct virtio_blk_config)];
	struct vduse_dev_config dc = { 0 };
	struct virtio_blk_config cfg;

	snprintf(dc.name, sizeof(dc.name), "%s", ep->name);
	dc.device_id = VIRTIO_ID_BLOCK;
	/* VDUSE requires ACCESS_PLATFORM (the driver must use its DMA layer)
	 * and refuses CONFIG_WCE: its configuration space is read-only
	 * (features_is_valid). */
	dc.features = (vblk_features(ep->dev) & ~VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE)) |
		      VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM);
	dc.vq_num = ep->nq;
	dc.vq_align = VQ_ALIGN;
	dc.config_size = sizeof(cfg);
	vblk_get_config(ep->dev, &cfg);
	memcpy(buf, &dc, offsetof(struct vduse_dev_config, config));
	memcpy(buf + offsetof(struct vduse_dev_config, config), &cfg, sizeof(cfg));
	for (int attempt = 0;; attempt++) {
		char n[VDUSE_NAME_MAX] = { 0 };

		if (ioctl(ep->ctl_fd, VDUSE_CREATE_DEV, buf) == 0)
			return 0;
		if (errno != EEXIST) {
			int rc = -errno;
			snprintf(why, whylen, "VDUSE refused the device %s: %s", ep->name, strerror(errno));
			return rc;
		}
		memcpy(n, ep->name, strlen(ep->name));
		if (attempt || ioctl(ep->ctl_fd, VDUSE_DESTROY_DEV, n) != 0) {
			snprintf(why, whylen, "a VDUSE device named %s exists and is in use", ep->name);
			return -EEXIST;
		}
		log_info(ep->label, "removed a stale VDUSE device %s", ep->name);
	}
}

int vduse_ep_create(struct evloop *loop, const char *name, const struct vblk_conf *conf,
		    const struct vduse_ep_ops *ops, void *ctx, struct vduse_ep **out, char *why,
		    size_t whylen)
{
	char path[sizeof(VDUSE_DEV_DIR) + VDUSE_NAME_MAX];
	struct vblk_conf c = *conf;
	uint64_t api = VDUSE_API_VERSION;
	struct vduse_ep *ep;
	int rc;

	if (!name_ok(name)) {
		snprintf(why, whylen, "'%s' cannot name a VDUSE device", name);
		return -EINVAL;
	}
	if (conf->ds_max < VDUSE_EP_MIN_DS_MAX) {
		snprintf(why, whylen, "ds-max %u: a VDUSE device needs %d memory regions or more "
			 "(its bounce buffer and one per queue)", conf->ds_max, VDUSE_EP_MIN_DS_MAX);
		return -EINVAL;
	}
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->loop = loop;
	ep->ops = ops;
	ep->ctx = ctx;
	ep->ctl_fd = ep->dev_fd = ep->bounce_fd = -1;
	snprintf(ep->name, sizeof(ep->name), "%s", name);
	snprintf(ep->label, sizeof(ep->label), "%s", conf->name);
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++)
		ep->kicks[q] = (struct kick){ .ep = ep, .q = q, .fd = -1 };
	ep->nq = conf->num_queues < conf->ds_max - 1 ? conf->num_queues : conf->ds_max - 1;
	c.num_queues = ep->nq;
	c.name = ep->label;
	c.trusted = NULL;
	c.ntrusted = 0;
	ep->regs = calloc(conf->ds_max, sizeof(*ep->regs));
	if (!ep->regs) {
		free(ep);
		return -ENOMEM;
	}
	rc = vblk_new(&c, &vblk_ops, ep, &ep->dev);
	if (rc) {
		snprintf(why, whylen, "cannot make the block device: %s", strerror(-rc));
		goto fail;
	}
	ep->ctl_fd = open(VDUSE_CONTROL, O_RDWR | O_CLOEXEC);
	if (ep->ctl_fd < 0) {
		rc = -errno;
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO) {
			snprintf(why, whylen, "VDUSE is not available (%s: %s): modprobe vduse",
				 VDUSE_CONTROL, strerror(errno));
			rc = -ENOENT;
		} else {
			snprintf(why, whylen, "%s: %s", VDUSE_CONTROL, strerror(errno));
		}
		goto fail;
	}
	if (ioctl(ep->ctl_fd, VDUSE_SET_API_VERSION, &api) != 0) {
		rc = -errno;
		snprintf(why, whylen, "VDUSE refused API version %llu: %s", (unsigned long long)api,
			 strerror(errno));
		goto fail;
	}
	rc = create_dev(ep, why, whylen);
	if (rc)
		goto fail;
	ep->created = true;
	snprintf(path, sizeof(path), VDUSE_DEV_DIR "%s", ep->name);
	ep->dev_fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (ep->dev_fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	/* Every queue must be set up before the device goes on the bus
	 * (vduse_dev_is_ready). */
	for (unsigned q = 0; q < ep->nq; q++) {
		struct vduse_vq_config vc = { .index = q, .max_size = QUEUE_SIZE };

		if (ioctl(ep->dev_fd, VDUSE_VQ_SETUP, &vc) != 0) {
			rc = -errno;
			snprintf(why, whylen, "VDUSE_VQ_SETUP %u: %s", q, strerror(errno));
			goto fail;
		}
	}
	rc = evloop_add(loop, ep->dev_fd, EPOLLIN, on_dev, ep);
	if (rc) {
		snprintf(why, whylen, "event loop: %s", strerror(-rc));
		goto fail;
	}
	ep->dev_watched = true;
	if (!job_start(ep, true)) {
		rc = -EAGAIN;
		snprintf(why, whylen, "cannot start putting the device on the vdpa bus");
		goto fail;
	}
	ep->bus = BUS_ATTACHING;
	log_info(ep->label, "VDUSE device %s: %u queues of %u, putting it on the vdpa bus", ep->name,
		 ep->nq, QUEUE_SIZE);
	*out = ep;
	return 0;
fail:
	vduse_ep_destroy(ep);
	return rc;
}

bool vduse_ep_stop(struct vduse_ep *ep)
{
	switch (ep->bus) {
	case BUS_OFF:
		return false;
	case BUS_ATTACHING:
		ep->stop_wanted = true;
		return true;
	case BUS_DETACHING:
		return true;
	case BUS_ON:
		break;
	}
	if (!job_start(ep, false))
		return false;
	ep->bus = BUS_DETACHING;
	log_info(ep->label, "taking %s off the vdpa bus", ep->name);
	return true;
}

void vduse_ep_destroy(struct vduse_ep *ep)
{
	if (!ep)
		return;
	if (ep->job) {
		evloop_del(ep->loop, ep->job->efd);
		job_put(ep->job);
		ep->job = NULL;
	}
	if (ep->bus != BUS_OFF)
		log_warn(ep->label, "%s stays on the vdpa bus, without a back end: 'vdpa dev del %s' "
			 "removes it", ep->name, ep->name);
	for (unsigned q = 0; q < ep->nq; q++)
		queue_stop(ep, q);
	unwatch_dev(ep);
	vblk_destroy(ep->dev);
	/* Closing the device also takes our bounce buffer back from VDUSE. */
	close_fd(&ep->dev_fd);
	if (ep->bounce_va)
		munmap(ep->bounce_va, ep->bounce_size);
	close_fd(&ep->bounce_fd);
	if (ep->created) {
		char n[VDUSE_NAME_MAX] = { 0 };

		memcpy(n, ep->name, strlen(ep->name));
		if (ioctl(ep->ctl_fd, VDUSE_DESTROY_DEV, n) != 0)
			log_warn(ep->label, "cannot destroy VDUSE device %s: %s", ep->name, strerror(errno));
	}
	close_fd(&ep->ctl_fd);
	free(ep->regs);
	free(ep);
}

const struct vblk_stats *vduse_ep_stats(const struct vduse_ep *ep)
{
	return vblk_stats(ep->dev);
}

bool vduse_ep_connected(const struct vduse_ep *ep)
{
	return ep->status & VIRTIO_CONFIG_S_DRIVER_OK;
}
