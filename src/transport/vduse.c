#include "transport/vduse.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/vduse.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <signal.h>
#include <spawn.h>
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spec/vhost_user.h"
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

/* One vdpa netlink request (DEV_NEW or DEV_DEL), run in a child process:
 * `nvme-drv --vdpa-helper add|del NAME` (vduse_helper_main). The kernel's
 * virtio driver probes or removes the device inside that request and waits
 * for this process's answers meanwhile: the request cannot run on the
 * loop's thread. Nor on another of our threads: a process killed while one
 * of its threads waits there can never exit (the probe's partition scan
 * waits for a read only the dead loop could answer), and its VFIO group
 * stays busy until a reboot. A child that waits there keeps nothing of
 * ours (it execs: no mappings, no fds but its stdout) and finishes once a
 * successor serves the device. Its exit status is 0 or an errno; its
 * stdout, the kernel's reason. */
struct bus_job {
	pid_t pid;
	int pidfd;		/* readable once the child has exited */
	int out_fd;		/* its stdout */
	bool add;
	struct bus_job *next_orphan;
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
	/* The inflight log: one vhost-user split inflight region per queue
	 * (as libvduse keeps it), in a file of the state directory, so that
	 * a successor re-attaching to the device finishes what we took. */
	char log_path[256];
	uint8_t *log;
	size_t log_len;
	bool reattached;	/* took over a device a predecessor served */
	bool handover;		/* vduse_ep_quiesce(): left for a successor */
	/* Queues to interrupt at the end of the loop's round: one ioctl (and
	 * one interrupt in the driver) for all the completions of a round. */
	uint32_t notify_pending;
	struct evloop_defer notify_all;
	struct evloop_defer announce;	/* attached() of a re-attached device */
	struct evloop_poller poller;	/* for its lifetime (evloop.h) */
};

#define LOG_QUEUE_LEN VHOST_USER_INFLIGHT_QUEUE_SIZE(QUEUE_SIZE)

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void inject(struct vduse_ep *ep, unsigned q)
{
	uint32_t idx = q;

	/* VDUSE refuses while DRIVER_OK is not set (a reset under way): the
	 * driver no longer waits for that queue then. */
	if (ioctl(ep->dev_fd, VDUSE_VQ_INJECT_IRQ, &idx) != 0)
		log_debug(ep->label, "queue %u: VDUSE_VQ_INJECT_IRQ: %s", q, strerror(errno));
}

static void on_notify_all(void *arg)
{
	struct vduse_ep *ep = arg;
	uint32_t pending = ep->notify_pending;

	ep->notify_pending = 0;
	for (unsigned q = 0; pending; q++, pending >>= 1)
		if (pending & 1)
			inject(ep, q);
}

static void notify(void *ctx, unsigned q)
{
	struct vduse_ep *ep = ctx;

	_Static_assert(VBLK_MAX_QUEUES <= 32, "notify_pending holds a bit per queue");
	if (q >= VBLK_MAX_QUEUES)
		return;
	ep->notify_pending |= 1u << q;
	evloop_defer(ep->loop, &ep->notify_all);
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

/* Kick eventfds (ours) are watched edge-triggered and never read: each
 * signal from VDUSE is an edge, and the read would be a system call per
 * kick. */
static void on_kick(void *arg, uint32_t events)
{
	struct kick *k = arg;
	struct vduse_ep *ep = k->ep;

	(void)events;
	/* The bounce buffer's IOTLB entry appears with the driver's first
	 * streaming DMA mapping, after DRIVER_OK: the first request that uses
	 * it brings it here. */
	if (!tlb_covers(ep, 0) && !ep->tlb_failed && tlb_sync(ep, 0, 0) != 0)
		ep->tlb_failed = true;	/* the request breaks the device: said once */
	vblk_vq_kick(ep->dev, k->q);
}

/* Polling begins once the bounce buffer's IOTLB entry is in (the first
 * request brings it, by a kick: until then kicks stay on). */
static bool ep_poll(void *arg)
{
	struct vduse_ep *ep = arg;

	return tlb_covers(ep, 0) && vblk_poll(ep->dev);
}

static bool ep_notify(void *arg, bool on)
{
	struct vduse_ep *ep = arg;

	if (!on && !tlb_covers(ep, 0))
		return false;
	return vblk_set_notify(ep->dev, on);
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
	if (ep->log)
		vblk_vq_set_inflight(ep->dev, q, ep->log + q * LOG_QUEUE_LEN, LOG_QUEUE_LEN);
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
		rc = evloop_add(ep->loop, k->fd, EPOLLIN | EPOLLET, on_kick, k);
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
	/* A reset driver waits for nothing: nothing to finish after us. */
	if (ep->log)
		memset(ep->log, 0, ep->log_len);
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

/* Jobs whose endpoint went first: reaped when their child exits. Kept
 * in a list so that nothing of them is lost to a leak checker. */
static struct bus_job *orphans;
/* Loops of several threads (nvme-drv --threads) reap orphans. */
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;

static void job_free(struct bus_job *j)
{
	close(j->pidfd);
	close(j->out_fd);
	free(j);
}

/* The child's exit status as 0 or a negative errno, its reason in why;
 * 1 while it still runs. */
static int job_result(struct bus_job *j, char *why, size_t whylen)
{
	siginfo_t si = { 0 };
	ssize_t n;

	if (waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG) != 0)
		return -errno;
	if (si.si_pid == 0)
		return 1;
	n = read(j->out_fd, why, whylen - 1);
	why[n > 0 ? n : 0] = '\0';
	why[strcspn(why, "\n")] = '\0';
	if (si.si_code != CLD_EXITED) {
		snprintf(why, whylen, "the vdpa helper was killed (signal %d)", si.si_status);
		return -EINTR;
	}
	if (si.si_status && !why[0])
		snprintf(why, whylen, "vdpa: %s", strerror(si.si_status));
	return -si.si_status;
}

static void on_orphan(void *arg, uint32_t events)
{
	struct bus_job *j = arg;
	char why[128];

	(void)events;
	if (job_result(j, why, sizeof(why)) == 1)
		return;
	pthread_mutex_lock(&orphans_lock);
	for (struct bus_job **p = &orphans; *p; p = &(*p)->next_orphan)
		if (*p == j) {
			*p = j->next_orphan;
			break;
		}
	pthread_mutex_unlock(&orphans_lock);
	job_free(j);
}

static bool job_start(struct vduse_ep *ep, bool add);
static bool name_ok(const char *name);

/* A bus request finished: the device is on the bus, off it, or stays
 * where it was. */
static void on_job(void *arg, uint32_t events)
{
	struct vduse_ep *ep = arg;
	struct bus_job *j = ep->job;
	char why[128];
	int rc;

	(void)events;
	rc = job_result(j, why, sizeof(why));
	if (rc == 1)
		return;
	evloop_del(ep->loop, j->pidfd);
	ep->job = NULL;
	job_free(j);
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
	char *argv[] = { "nvme-drv", VDUSE_HELPER_ARG, add ? "add" : "del", ep->name, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct bus_job *j = calloc(1, sizeof(*j));
	sigset_t none, dfl;
	int out[2] = { -1, -1 };
	int rc;

	if (!j)
		return false;
	j->pidfd = j->out_fd = -1;
	j->add = add;
	if (pipe2(out, O_CLOEXEC) != 0) {
		log_err(ep->label, "cannot start the vdpa helper: %s", strerror(errno));
		free(j);
		return false;
	}
	/* The child starts with no signal blocked and the usual actions: the
	 * loop blocks its stop signals for its signalfd. */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGQUIT);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	rc = posix_spawn(&j->pid, "/proc/self/exe", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(out[1]);
	j->out_fd = out[0];
	if (rc) {
		log_err(ep->label, "cannot start the vdpa helper: %s", strerror(rc));
		close(j->out_fd);
		free(j);
		return false;
	}
	j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
	if (j->pidfd < 0 || evloop_add(ep->loop, j->pidfd, EPOLLIN, on_job, ep) != 0) {
		log_err(ep->label, "cannot watch the vdpa helper: %s", strerror(errno));
		if (j->pidfd >= 0)
			close(j->pidfd);
		close(j->out_fd);
		free(j);	/* the child is left to init once we exit */
		return false;
	}
	ep->job = j;
	return true;
}

int vduse_helper_main(int argc, char **argv)
{
	char why[128] = "";
	uint16_t family;
	int fd, rc;
	bool add = argc == 4 && strcmp(argv[2], "add") == 0;

	if (argc != 4 || (!add && strcmp(argv[2], "del") != 0) || !name_ok(argv[3])) {
		printf("usage: nvme-drv %s add|del NAME (run by nvme-drv itself)\n", VDUSE_HELPER_ARG);
		return EINVAL;
	}
	fd = vdpa_nl_socket();
	if (fd < 0) {
		printf("vdpa netlink socket: %s\n", strerror(-fd));
		return -fd;
	}
	rc = vdpa_nl_family(fd, &family, why, sizeof(why));
	if (!rc)
		rc = vdpa_nl_dev(fd, family, argv[3], add ? VDUSE_MGMTDEV : NULL, why, sizeof(why));
	close(fd);
	if (rc)
		printf("%s\n", why[0] ? why : strerror(-rc));
	return rc ? -rc : 0;
}

static bool on_bus(const char *name);

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	/* It becomes /dev/vduse/NAME: one path component. */
	return n && n < VDUSE_NAME_MAX && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* VDUSE_CREATE_DEV with the block device's features and configuration
 * space. A device of that name that nobody holds open and that is off the
 * bus was left by a server that died: it is removed and made again. */
static int create_dev(struct vduse_ep *ep, bool onbus, char *why, size_t whylen)
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
		/* On the vdpa bus, the kernel uses it: a server of ours left it
		 * (log_open() checked its log and what it serves): take it over. */
		if (onbus)
			return 1;
		/* Off the bus and not open: a leftover nobody serves. */
		memcpy(n, ep->name, strlen(ep->name));
		if (attempt || ioctl(ep->ctl_fd, VDUSE_DESTROY_DEV, n) != 0) {
			snprintf(why, whylen, "a VDUSE device named %s exists and is in use by another "
				 "process", ep->name);
			return -EEXIST;
		}
		log_info(ep->label, "removed a stale VDUSE device %s", ep->name);
	}
}

static bool on_bus(const char *name)
{
	char path[64 + VDUSE_NAME_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/bus/vdpa/devices/%s", name);
	return stat(path, &st) == 0;
}

/* What a device serves, as recorded beside its inflight log: a take-over
 * serves exactly that, or nothing (a kernel with a file system of one
 * disk mounted must never be handed another). */
static void identity(const struct vduse_ep *ep, const struct vblk_conf *conf, char *buf,
		     size_t len)
{
	snprintf(buf, len, "%s first-lba=%llu blocks=%llu block-size=%u read-only=%d queues=%u\n",
		 conf->target.name, (unsigned long long)conf->target.first_lba,
		 (unsigned long long)conf->target.nlba, conf->target.lba_size,
		 conf->readonly || conf->target.readonly, ep->nq);
}

/* The device's inflight log and identity in state_dir. For a device on
 * the bus (takeover) both must be there and match this client: the log is
 * kept as the predecessor left it. Otherwise they are made afresh.
 * Returns 0, or -EEXIST (not ours, or not the same client) or -errno,
 * with why. */
static int log_open(struct vduse_ep *ep, const char *state_dir, const struct vblk_conf *conf,
		    bool takeover, char *why, size_t whylen)
{
	size_t len = (size_t)ep->nq * LOG_QUEUE_LEN;
	char id_path[sizeof(ep->log_path)], tmp[sizeof(ep->log_path) + 8], want[256], had[256] = "";
	struct stat st;
	ssize_t n;
	int fd, rc;

	if ((size_t)snprintf(ep->log_path, sizeof(ep->log_path), "%s/vduse-%s.inflight", state_dir,
			     ep->name) >= sizeof(ep->log_path)) {
		snprintf(why, whylen, "state directory path too long");
		ep->log_path[0] = '\0';
		return -ENAMETOOLONG;
	}
	/* Shorter than the log's path, which fitted. */
	if ((size_t)snprintf(id_path, sizeof(id_path), "%s/vduse-%s.id", state_dir, ep->name) >=
	    sizeof(id_path))
		return -ENAMETOOLONG;
	identity(ep, conf, want, sizeof(want));
	if (takeover) {
		fd = open(id_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		n = fd >= 0 ? read(fd, had, sizeof(had) - 1) : -1;
		if (fd >= 0)
			close(fd);
		had[n > 0 ? n : 0] = '\0';
		fd = open(ep->log_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || n <= 0) {
			snprintf(why, whylen, "a VDUSE device named %s is on the vdpa bus and was not made "
				 "with the state directory %s: remove it ('vdpa dev del %s') or choose "
				 "another name", ep->name, state_dir, ep->name);
			if (fd >= 0)
				close(fd);
			ep->log_path[0] = '\0';	/* not ours: never removed */
			return -EEXIST;
		}
		if (strcmp(had, want) != 0 || fstat(fd, &st) != 0 || st.st_size != (off_t)len) {
			had[strcspn(had, "\n")] = '\0';
			want[strcspn(want, "\n")] = '\0';
			snprintf(why, whylen, "VDUSE device %s serves %s; this client would serve %s: "
				 "give it the device and ds-max it was made with", ep->name, had, want);
			close(fd);
			ep->log_path[0] = '\0';
			return -EEXIST;
		}
	} else {
		snprintf(tmp, sizeof(tmp), "%s.tmp", id_path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		rc = fd >= 0 && write(fd, want, strlen(want)) == (ssize_t)strlen(want) ? 0 : -1;
		if (fd >= 0)
			close(fd);
		if (rc || rename(tmp, id_path) != 0) {
			rc = -errno;
			snprintf(why, whylen, "%s: %s", id_path, strerror(errno));
			unlink(tmp);
			ep->log_path[0] = '\0';
			return rc;
		}
		fd = open(ep->log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0 && ftruncate(fd, (off_t)len) != 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", ep->log_path, strerror(errno));
		return rc;
	}
	ep->log = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (ep->log == MAP_FAILED) {
		rc = -errno;
		ep->log = NULL;
		snprintf(why, whylen, "%s: %s", ep->log_path, strerror(-rc));
		return rc;
	}
	ep->log_len = len;
	return 0;
}

static void announce(void *arg)
{
	struct vduse_ep *ep = arg;

	if (ep->ops->attached)
		ep->ops->attached(ep->ctx, ep);
}

/* Serves a device a predecessor left on the bus: the driver set it up
 * long ago, and VDUSE says how (features, rings); requests it had taken
 * are taken again from the log. VDUSE re-sends what it had asked the
 * predecessor and got no answer to. */
static int reattach(struct vduse_ep *ep, char *why, size_t whylen)
{
	bool ready = false;
	uint64_t f;
	int rc;

	/* A driver that has not set the device up yet (the predecessor died
	 * during the probe) has its status messages sent again by VDUSE:
	 * those set it up here as on a first start. */
	for (unsigned q = 0; q < ep->nq && !ready; q++) {
		struct vduse_vq_info vi = { .index = q };

		ready = ioctl(ep->dev_fd, VDUSE_VQ_GET_INFO, &vi) == 0 && vi.ready;
	}
	if (!ready) {
		log_info(ep->label, "took over VDUSE device %s, not yet set up by its driver", ep->name);
		evloop_defer(ep->loop, &ep->announce);
		return 0;
	}
	if (ioctl(ep->dev_fd, VDUSE_DEV_GET_FEATURES, &f) != 0) {
		rc = -errno;
		snprintf(why, whylen, "VDUSE_DEV_GET_FEATURES: %s", strerror(errno));
		return rc;
	}
	rc = vblk_set_features(ep->dev, f & ~VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM));
	if (!rc)
		rc = device_start(ep);
	if (rc) {
		snprintf(why, whylen, "cannot take the device over: %s", strerror(-rc));
		return rc;
	}
	ep->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	/* A completion the predecessor put in the ring may not have been
	 * signalled, and a kick the driver gave while no server listened went
	 * to the predecessor's eventfd (VDUSE keeps it until replaced): take
	 * what the rings hold now. */
	for (unsigned q = 0; q < ep->nq; q++)
		if (ep->kicks[q].fd >= 0) {
			inject(ep, q);
			vblk_vq_kick(ep->dev, q);
		}
	log_info(ep->label, "took over VDUSE device %s from an earlier server", ep->name);
	evloop_defer(ep->loop, &ep->announce);
	return 0;
}

int vduse_ep_create(struct evloop *loop, const char *name, const struct vblk_conf *conf,
		    const char *state_dir, const struct vduse_ep_ops *ops, void *ctx,
		    struct vduse_ep **out, char *why, size_t whylen)
{
	char path[sizeof(VDUSE_DEV_DIR) + VDUSE_NAME_MAX];
	struct vblk_conf c = *conf;
	uint64_t api = VDUSE_API_VERSION;
	struct vduse_ep *ep;
	bool onbus;
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
	ep->announce = (struct evloop_defer){ .cb = announce, .arg = ep };
	ep->notify_all = (struct evloop_defer){ .cb = on_notify_all, .arg = ep };
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
	ep->poller = (struct evloop_poller){ .poll = ep_poll, .notify = ep_notify, .arg = ep };
	evloop_poller_add(ep->loop, &ep->poller);
	ep->ctl_fd = open(VDUSE_CONTROL, O_RDWR | O_CLOEXEC);
	if (ep->ctl_fd < 0) {
		rc = -errno;
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO) {
			/* vduse makes the device; virtio_vdpa and virtio_blk make
			 * it a block device. */
			snprintf(why, whylen, "VDUSE is not available (%s: %s): modprobe vduse "
				 "virtio_vdpa virtio_blk",
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
	onbus = on_bus(ep->name);
	if (onbus && !state_dir) {
		snprintf(why, whylen, "a VDUSE device named %s is on the vdpa bus: remove it ('vdpa dev "
			 "del %s') or choose another name", ep->name, ep->name);
		rc = -EEXIST;
		goto fail;
	}
	if (state_dir) {
		rc = log_open(ep, state_dir, conf, onbus, why, whylen);
		if (rc)
			goto fail;
	}
	rc = create_dev(ep, onbus, why, whylen);
	if (rc < 0)
		goto fail;
	ep->created = true;
	ep->reattached = rc == 1;
	if (ep->reattached)
		ep->bus = BUS_ON;	/* whatever happens next, it stays there */
	snprintf(path, sizeof(path), VDUSE_DEV_DIR "%s", ep->name);
	ep->dev_fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (ep->dev_fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path,
			 errno == EBUSY ? "in use by another process (is another nvme-drv serving it?)"
					: strerror(errno));
		if (ep->reattached)
			ep->created = false;	/* not ours to destroy */
		goto fail;
	}
	if (!ep->reattached && ep->log)
		memset(ep->log, 0, ep->log_len);
	/* Every queue must be set up before the device goes on the bus
	 * (vduse_dev_is_ready); one that is on it keeps its set-up. */
	for (unsigned q = 0; q < ep->nq && !ep->reattached; q++) {
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
	if (ep->reattached) {
		rc = reattach(ep, why, whylen);
		if (rc)
			goto fail;
		*out = ep;
		return 0;
	}
	if (!job_start(ep, true)) {
		rc = -EAGAIN;
		snprintf(why, whylen, "cannot start putting the device on the vdpa bus");
		goto fail;
	}
	ep->bus = BUS_ATTACHING;
	log_info(ep->label, "VDUSE device %s: %u queue%s of %u, putting it on the vdpa bus", ep->name,
		 ep->nq, ep->nq == 1 ? "" : "s", QUEUE_SIZE);
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
		/* The child finishes on its own; it is reaped from the loop. */
		struct bus_job *j = ep->job;

		evloop_del(ep->loop, j->pidfd);
		ep->job = NULL;
		pthread_mutex_lock(&orphans_lock);
		j->next_orphan = orphans;
		orphans = j;
		pthread_mutex_unlock(&orphans_lock);
		if (evloop_add(ep->loop, j->pidfd, EPOLLIN, on_orphan, j) != 0)
			log_debug(ep->label, "the vdpa helper %d is left to init", (int)j->pid);
	}
	evloop_poller_del(ep->loop, &ep->poller);
	if (ep->bus != BUS_OFF && ep->handover)
		log_info(ep->label, "%s stays on the vdpa bus for the next server", ep->name);
	else if (ep->bus != BUS_OFF)
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
	if (ep->created && ep->bus == BUS_OFF) {
		char n[VDUSE_NAME_MAX] = { 0 };

		memcpy(n, ep->name, strlen(ep->name));
		if (ioctl(ep->ctl_fd, VDUSE_DESTROY_DEV, n) != 0)
			log_warn(ep->label, "cannot destroy VDUSE device %s: %s", ep->name, strerror(errno));
	}
	close_fd(&ep->ctl_fd);
	evloop_defer_cancel(ep->loop, &ep->announce);
	evloop_defer_cancel(ep->loop, &ep->notify_all);
	if (ep->log)
		munmap(ep->log, ep->log_len);
	/* Off the bus (or never on it) the device is gone, and nothing is
	 * left to finish; still on it, a successor may take it over. */
	if (ep->log_path[0] && ep->bus == BUS_OFF) {
		char id_path[sizeof(ep->log_path)];
		size_t n = strlen(ep->log_path) - strlen(".inflight");

		unlink(ep->log_path);
		if ((size_t)snprintf(id_path, sizeof(id_path), "%.*s.id", (int)n, ep->log_path) <
		    sizeof(id_path))
			unlink(id_path);
	}
	free(ep->regs);
	free(ep);
}

const struct vblk_stats *vduse_ep_stats(const struct vduse_ep *ep)
{
	return vblk_stats(ep->dev);
}

int vduse_ep_set_qos(struct vduse_ep *ep, const struct qos_limits *l)
{
	return vblk_set_qos(ep->dev, l);
}

unsigned vduse_ep_quiesce(struct vduse_ep *ep)
{
	ep->handover = true;
	vblk_quiesce(ep->dev);
	return vblk_inflight(ep->dev);
}

bool vduse_ep_connected(const struct vduse_ep *ep)
{
	return ep->status & VIRTIO_CONFIG_S_DRIVER_OK;
}
