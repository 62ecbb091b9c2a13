#include "transport/vhost_user.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "spec/vhost_user.h"
#include "transport/vhu_msg.h"
#include "util/log.h"
#include "util/peerfd.h"
#include "util/scm.h"

#define PROTOCOL_FEATURES                                                                  \
	(VIRTIO_BIT(VHOST_USER_PROTOCOL_F_MQ) | VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG) |                                         \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                                   \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                            \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS) |                                         \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))

struct kick {
	struct vhu_ep *ep;
	unsigned q;
	int fd;
};

struct vhu_ep {
	struct evloop *loop;
	char name[128];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	int conn_fd;
	bool adopted;
	const struct vhu_ep_ops *ops;
	void *ctx;
	struct vblk *dev;
	struct kick kicks[VBLK_MAX_QUEUES];
	int call_fd[VBLK_MAX_QUEUES];
	int err_fd[VBLK_MAX_QUEUES];
	uint64_t features;
	uint64_t protocol;
	bool features_set;
	uint8_t status;
	bool paused;		/* reading nothing until a queue drains */
	/* The connection failed inside a callback of the device (a reply or a
	 * notification that could not be sent): it ends from the loop, when
	 * nothing of the device is on the stack (issue 7.1). */
	struct evloop_defer fail;
	const char *fail_why;
	/* Queues with used buffers the driver wants to hear of: signalled
	 * once each at the end of the loop's round, however many completions
	 * the round brought (a system call each, and a VM exit in QEMU). */
	uint32_t notify_pending;
	struct evloop_defer notify_all;
	/* Polled while a front end is connected (evloop.h). */
	struct evloop_poller poller;
	/* The inflight region (GET/SET_INFLIGHT_FD): the front end keeps it
	 * across our restarts, so that a successor finishes what we took. */
	uint8_t *inflight;
	size_t inflight_len;
	unsigned inflight_nq;
	uint64_t inflight_qlen;	/* bytes per queue */
	/* receive state: one message, possibly in pieces */
	struct vhost_user_msg msg;
	size_t have;
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void drop_rx_fds(struct vhu_ep *ep)
{
	for (unsigned i = 0; i < ep->nfds; i++)
		close(ep->fds[i]);
	ep->nfds = 0;
}

static void queue_fds_close(struct vhu_ep *ep, unsigned q)
{
	if (ep->kicks[q].fd >= 0) {
		evloop_del(ep->loop, ep->kicks[q].fd);
		close_fd(&ep->kicks[q].fd);
	}
	close_fd(&ep->call_fd[q]);
	close_fd(&ep->err_fd[q]);
}

static void inflight_unmap(struct vhu_ep *ep)
{
	if (!ep->inflight)
		return;
	/* Running queues stop tracking into it; a new region takes effect
	 * when a queue starts. */
	for (unsigned q = 0; q < ep->inflight_nq; q++)
		vblk_vq_set_inflight(ep->dev, q, NULL, 0);
	munmap(ep->inflight, ep->inflight_len);
	ep->inflight = NULL;
	ep->inflight_len = 0;
	ep->inflight_nq = 0;
}

/* The front end is gone: stop the device, forget its memory and rings. */
static void disconnect(struct vhu_ep *ep, const char *why)
{
	evloop_defer_cancel(ep->loop, &ep->fail);
	evloop_defer_cancel(ep->loop, &ep->notify_all);
	ep->notify_pending = 0;
	if (ep->conn_fd < 0)
		return;
	if (why)
		log_warn(ep->name, "front end disconnected: %s", why);
	else
		log_info(ep->name, "front end disconnected");
	evloop_poller_del(ep->loop, &ep->poller);
	evloop_del(ep->loop, ep->conn_fd);
	close_fd(&ep->conn_fd);
	drop_rx_fds(ep);
	ep->have = 0;
	ep->paused = false;
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++)
		queue_fds_close(ep, q);
	vblk_reset(ep->dev);
	inflight_unmap(ep);
	ep->features = ep->protocol = 0;
	ep->features_set = false;
	ep->status = 0;
	if (ep->adopted && ep->ops && ep->ops->ended)
		ep->ops->ended(ep->ctx, ep);
}

static void on_fail(void *arg)
{
	struct vhu_ep *ep = arg;

	disconnect(ep, ep->fail_why);
}

/* Ends the connection from the loop (see vhu_ep.fail). */
static void fail_later(struct vhu_ep *ep, const char *why)
{
	if (ep->conn_fd < 0 || ep->fail.queued)
		return;
	ep->fail_why = why;
	evloop_defer(ep->loop, &ep->fail);
}

/* Signals one of the front end's eventfds. A counter that cannot take
 * more (the front end never reads it) or a write that blocked (it made
 * the fd blocking again) is the front end's fault: it loses the
 * connection, nobody else waits (issue 7.3). */
static void signal_fd(struct vhu_ep *ep, unsigned q, int fd, const char *what)
{
	int rc = peerfd_signal(fd);

	if (rc == 0)
		return;
	log_err(ep->name, "queue %u: %s eventfd: %s", q, what,
		rc == -EAGAIN ? "counter full, the front end does not read it"
		: rc == -EINTR ? "write blocked (fd made blocking again); cut off" : strerror(-rc));
	fail_later(ep, "unusable eventfd");
}

static void on_notify_all(void *arg)
{
	struct vhu_ep *ep = arg;
	uint32_t pending = ep->notify_pending;

	ep->notify_pending = 0;
	for (unsigned q = 0; pending; q++, pending >>= 1)
		if ((pending & 1) && ep->call_fd[q] >= 0)
			signal_fd(ep, q, ep->call_fd[q], "call");
}

static void notify(void *ctx, unsigned q)
{
	struct vhu_ep *ep = ctx;

	_Static_assert(VBLK_MAX_QUEUES <= 32, "notify_pending holds a bit per queue");
	if (q >= VBLK_MAX_QUEUES)
		return;
	ep->notify_pending |= 1u << q;
	evloop_defer(ep->loop, &ep->notify_all);
}

static void broken(void *ctx)
{
	struct vhu_ep *ep = ctx;

	/* NEEDS_RESET is the driver's to notice (virtio 2.1.2); the status
	 * byte is what GET_STATUS reports. */
	ep->status |= 0x40;
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++)
		if (ep->err_fd[q] >= 0)
			signal_fd(ep, q, ep->err_fd[q], "error");
}

static void on_conn(void *arg, uint32_t events);
static int send_reply(struct vhu_ep *ep, uint32_t request, const void *payload, uint32_t size);

/* The GET_VRING_BASE reply was held until the queue's requests in flight
 * had landed in the used ring; send it and read messages again. */
static void drained(void *ctx, unsigned q)
{
	struct vhu_ep *ep = ctx;
	struct vhost_user_vring_state st = { .index = q, .num = vblk_vq_base(ep->dev, q) };

	if (!ep->paused || ep->conn_fd < 0)
		return;
	ep->paused = false;
	if (send_reply(ep, VHOST_USER_GET_VRING_BASE, &st, sizeof(st)) < 0 ||
	    evloop_add(ep->loop, ep->conn_fd, EPOLLIN | EPOLLRDHUP, on_conn, ep) != 0)
		fail_later(ep, "cannot send a reply");
}

static const struct vblk_ops vblk_ops = { .notify = notify, .broken = broken, .drained = drained };

/* Returns 1 (sent: handle() has answered) or -ECONNRESET. fd (or -1)
 * goes along. */
static int send_reply_fd(struct vhu_ep *ep, uint32_t request, const void *payload, uint32_t size,
			 int fd)
{
	struct vhost_user_msg r;
	union scm_one_fd ctl;
	struct iovec iov = { &r, sizeof(r.hdr) + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	memset(&r, 0, sizeof(r));
	r.hdr.request = request;
	r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	r.hdr.size = size;
	if (size)
		memcpy(&r.payload, payload, size);
	if (fd >= 0)
		scm_attach_fd(&mh, &ctl, fd);
	/* A front end that does not read its replies loses the connection
	 * rather than block the server. */
	n = sendmsg(ep->conn_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n == (ssize_t)iov.iov_len ? 1 : -ECONNRESET;
}

static int send_reply(struct vhu_ep *ep, uint32_t request, const void *payload, uint32_t size)
{
	return send_reply_fd(ep, request, payload, size, -1);
}

/* Maps an inflight region of nq queues of qsize entries from fd at
 * offset, `len` bytes, replacing the one we had. Takes fd. Errors:
 * -EINVAL (sizes that do not fit), or the mapping's. */
static int inflight_map(struct vhu_ep *ep, int fd, uint64_t offset, uint64_t len, unsigned nq,
			unsigned qsize)
{
	uint64_t qlen = VHOST_USER_INFLIGHT_QUEUE_SIZE(qsize);
	struct stat st;
	void *p;

	if (!nq || nq > VBLK_MAX_QUEUES || !qsize || qsize > VBLK_MAX_QUEUE_SIZE ||
	    len < nq * qlen || len > VBLK_MAX_QUEUES * VHOST_USER_INFLIGHT_QUEUE_SIZE(VBLK_MAX_QUEUE_SIZE) ||
	    offset & 4095 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
	    offset > (uint64_t)st.st_size || len > (uint64_t)st.st_size - offset) {
		log_err(ep->name, "inflight region: %u queues of %u, %llu bytes at %llu: does not fit",
			nq, qsize, (unsigned long long)len, (unsigned long long)offset);
		close(fd);
		return -EINVAL;
	}
	/* As with client memory: no shrinking under us where seals allow. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)
		log_debug(ep->name, "inflight region: not sealed against shrinking");
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	inflight_unmap(ep);
	ep->inflight = p;
	ep->inflight_len = len;
	ep->inflight_nq = nq;
	ep->inflight_qlen = qlen;
	return 0;
}

/* GET_INFLIGHT_FD: a fresh, zeroed region for the front end to keep. */
static int get_inflight(struct vhu_ep *ep, const struct vhost_user_inflight *in)
{
	struct vhost_user_inflight out = *in;
	uint64_t len;
	int fd, fd2, rc;

	if (!in->num_queues || in->num_queues > VBLK_MAX_QUEUES || !in->queue_size ||
	    in->queue_size > VBLK_MAX_QUEUE_SIZE)
		return send_reply(ep, VHOST_USER_GET_INFLIGHT_FD, NULL, 0) < 0 ? -ECONNRESET : 1;
	len = in->num_queues * VHOST_USER_INFLIGHT_QUEUE_SIZE(in->queue_size);
	fd = memfd_create("nvme-drv-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)len) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		log_err(ep->name, "inflight region: %s", strerror(-rc));
		return send_reply(ep, VHOST_USER_GET_INFLIGHT_FD, NULL, 0) < 0 ? -ECONNRESET : 1;
	}
	fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (fd2 < 0 || inflight_map(ep, fd2, 0, len, in->num_queues, in->queue_size) != 0) {
		close(fd);
		return send_reply(ep, VHOST_USER_GET_INFLIGHT_FD, NULL, 0) < 0 ? -ECONNRESET : 1;
	}
	out.mmap_size = len;
	out.mmap_offset = 0;
	rc = send_reply_fd(ep, VHOST_USER_GET_INFLIGHT_FD, &out, sizeof(out), fd);
	close(fd);
	return rc;
}

static int reply_u64(struct vhu_ep *ep, uint32_t request, uint64_t v)
{
	return send_reply(ep, request, &v, sizeof(v));
}

/* Kick eventfds are watched edge-triggered and never read: every write
 * of the front end is an edge, and a read is a system call per kick that
 * could block, should the front end clear O_NONBLOCK on the description
 * it shares with us and race us to the counter. */
static void on_kick(void *arg, uint32_t events)
{
	struct kick *k = arg;

	(void)events;
	vblk_vq_kick(k->ep->dev, k->q);
}

static bool ep_poll(void *arg)
{
	struct vhu_ep *ep = arg;

	return vblk_poll(ep->dev);
}

static bool ep_notify(void *arg, bool on)
{
	struct vhu_ep *ep = arg;

	return vblk_set_notify(ep->dev, on);
}

static void vq_maybe_run(struct vhu_ep *ep, unsigned q)
{
	/* A ring runs once it has a kick fd and is enabled; requests already
	 * in it are taken at once. */
	if (ep->kicks[q].fd >= 0)
		vblk_vq_kick(ep->dev, q);
}

static int to_vblk_mem(const struct vhost_user_mem_region *r, int fd, struct vblk_mem *m)
{
	m->gpa = r->guest_phys_addr;
	m->size = r->memory_size;
	m->uva = r->userspace_addr;
	m->mmap_offset = r->mmap_offset;
	m->fd = fd;
	return 0;
}

static bool check_queue(struct vhu_ep *ep, uint32_t q)
{
	if (q < vblk_num_queues(ep->dev))
		return true;
	log_warn(ep->name, "%s for queue %u, the device has %u", vhu_request_name(ep->msg.hdr.request),
		 q, vblk_num_queues(ep->dev));
	return false;
}

/* Handles one validated message. Returns 0 (success), a negative errno
 * for a request that failed (answered through REPLY_ACK), or 1 when the
 * reply was already sent. -ECONNRESET drops the connection. */
static int handle(struct vhu_ep *ep)
{
	struct vhost_user_msg *m = &ep->msg;
	union vhost_user_payload *p = &m->payload;
	struct vblk *d = ep->dev;
	int rc;

	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		return reply_u64(ep, m->hdr.request,
				 vblk_features(d) | VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	case VHOST_USER_SET_FEATURES:
		rc = vblk_set_features(d, p->u64 & ~VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES));
		if (!rc) {
			ep->features = p->u64;
			ep->features_set = true;
		}
		return rc;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return reply_u64(ep, m->hdr.request, PROTOCOL_FEATURES);
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		ep->protocol = p->u64 & PROTOCOL_FEATURES;
		return 0;
	case VHOST_USER_SET_OWNER:
		return 0;
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_RESET_DEVICE:
		for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++)
			queue_fds_close(ep, q);
		vblk_reset(d);
		inflight_unmap(ep);
		ep->status = 0;
		return 0;
	case VHOST_USER_GET_QUEUE_NUM:
		return reply_u64(ep, m->hdr.request, vblk_num_queues(d));
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		return reply_u64(ep, m->hdr.request, vblk_ds_max(d));
	case VHOST_USER_SET_MEM_TABLE: {
		struct vblk_mem regs[VHOST_USER_MEM_REGIONS_MAX];
		unsigned n = p->memory.nregions;

		for (unsigned i = 0; i < n; i++)
			to_vblk_mem(&p->memory.regions[i], ep->fds[i], &regs[i]);
		ep->nfds = 0;	/* ownership passed */
		return vblk_mem_set(d, regs, n);
	}
	case VHOST_USER_ADD_MEM_REG: {
		struct vblk_mem r;

		to_vblk_mem(&p->mem_reg.region, ep->fds[0], &r);
		ep->nfds = 0;
		return vblk_mem_add(d, &r);
	}
	case VHOST_USER_REM_MEM_REG: {
		struct vblk_mem r;

		to_vblk_mem(&p->mem_reg.region, -1, &r);
		return vblk_mem_remove(d, &r);
	}
	case VHOST_USER_SET_VRING_NUM:
		if (!check_queue(ep, p->state.index))
			return -EINVAL;
		return vblk_vq_set_num(d, p->state.index, p->state.num);
	case VHOST_USER_SET_VRING_ADDR:
		if (!check_queue(ep, p->addr.index))
			return -EINVAL;
		if (p->addr.flags & VIRTIO_BIT(VHOST_VRING_F_LOG))
			return -ENOTSUP;
		return vblk_vq_set_addr(d, p->addr.index, p->addr.desc_user_addr, p->addr.avail_user_addr,
					p->addr.used_user_addr);
	case VHOST_USER_SET_VRING_BASE:
		if (!check_queue(ep, p->state.index))
			return -EINVAL;
		return vblk_vq_set_base(d, p->state.index, (uint16_t)p->state.num);
	case VHOST_USER_GET_VRING_BASE: {
		struct vhost_user_vring_state st = { .index = p->state.index };
		unsigned q = p->state.index;

		if (!check_queue(ep, q))
			return -ECONNRESET;	/* a reply is owed and there is none */
		/* "Ring stop": the back end stops taking requests and hands back
		 * the next index it would take, once what it took is answered. */
		if (ep->kicks[q].fd >= 0) {
			evloop_del(ep->loop, ep->kicks[q].fd);
			close_fd(&ep->kicks[q].fd);
		}
		if (!vblk_vq_stop(d, q)) {
			ep->paused = true;
			evloop_del(ep->loop, ep->conn_fd);
			return 1;	/* drained() replies */
		}
		st.num = vblk_vq_base(d, q);
		return send_reply(ep, m->hdr.request, &st, sizeof(st));
	}
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR: {
		unsigned q = (unsigned)(p->u64 & VHOST_USER_VRING_IDX_MASK);
		int fd = ep->nfds ? ep->fds[0] : -1;

		if (!check_queue(ep, q))
			return -EINVAL;
		ep->nfds = 0;
		if (m->hdr.request != VHOST_USER_SET_VRING_KICK && fd >= 0) {
			rc = peerfd_prepare(fd);
			if (rc) {
				log_err(ep->name, "queue %u: %s: %s", q, vhu_request_name(m->hdr.request),
					rc == -EINVAL ? "not an eventfd" : strerror(-rc));
				close(fd);
				return rc;
			}
		}
		if (m->hdr.request == VHOST_USER_SET_VRING_CALL) {
			close_fd(&ep->call_fd[q]);
			ep->call_fd[q] = fd;
			return 0;
		}
		if (m->hdr.request == VHOST_USER_SET_VRING_ERR) {
			close_fd(&ep->err_fd[q]);
			ep->err_fd[q] = fd;
			return 0;
		}
		/* A ring runs until GET_VRING_BASE stops it: starting it again
		 * would take what is in flight a second time (from the log) or
		 * rewind to the old base, and new addresses would move it under
		 * requests in flight. */
		if (ep->kicks[q].fd >= 0) {
			log_err(ep->name, "queue %u: SET_VRING_KICK for a running ring; stop it first "
				"(GET_VRING_BASE)", q);
			if (fd >= 0)
				close(fd);
			return -EBUSY;
		}
		if (fd < 0) {
			log_err(ep->name, "queue %u: polling mode (no kick fd) is not supported", q);
			return -ENOTSUP;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		ep->kicks[q].fd = fd;
		if (ep->inflight && q < ep->inflight_nq)
			vblk_vq_set_inflight(d, q, ep->inflight + q * ep->inflight_qlen, ep->inflight_qlen);
		else
			vblk_vq_set_inflight(d, q, NULL, 0);
		rc = vblk_vq_start(d, q);
		if (rc) {
			close_fd(&ep->kicks[q].fd);	/* not running: the next one starts it */
			return rc;
		}
		/* Without protocol features a ring starts enabled. */
		if (!(ep->features & VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
			vblk_vq_enable(d, q, true);
		rc = evloop_add(ep->loop, fd, EPOLLIN | EPOLLET, on_kick, &ep->kicks[q]);
		if (rc)
			return rc;
		vq_maybe_run(ep, q);
		return 0;
	}
	case VHOST_USER_SET_VRING_ENABLE:
		if (!check_queue(ep, p->state.index))
			return -EINVAL;
		vblk_vq_enable(d, p->state.index, p->state.num != 0);
		if (p->state.num)
			vq_maybe_run(ep, p->state.index);
		return 0;
	case VHOST_USER_GET_CONFIG: {
		struct vhost_user_config c = p->config;
		struct virtio_blk_config cfg;

		vblk_get_config(d, &cfg);
		/* The spec's error: "zero length of payload", no config header
		 * either (as libvhost-user and our front-end read it). */
		if (c.offset > sizeof(cfg) || c.size > sizeof(cfg) - c.offset)
			return send_reply(ep, m->hdr.request, NULL, 0);
		memcpy(c.payload, (uint8_t *)&cfg + c.offset, c.size);
		return send_reply(ep, m->hdr.request, &c, VHOST_USER_CONFIG_HDR_SIZE + c.size);
	}
	case VHOST_USER_SET_CONFIG:
		/* Only the writeback field is driver-writable, and nvme-drv keeps
		 * the controller's cache mode; accept the write, change nothing. */
		return 0;
	case VHOST_USER_SET_STATUS:
		ep->status = (uint8_t)p->u64;
		return 0;
	case VHOST_USER_GET_STATUS:
		return reply_u64(ep, m->hdr.request, ep->status);
	case VHOST_USER_GET_INFLIGHT_FD:
		return get_inflight(ep, &p->inflight);
	case VHOST_USER_SET_INFLIGHT_FD: {
		int fd = ep->fds[0];

		ep->nfds = 0;
		return inflight_map(ep, fd, p->inflight.mmap_offset, p->inflight.mmap_size,
				    p->inflight.num_queues, p->inflight.queue_size);
	}
	default:
		return -ENOSYS;
	}
}

/* Returns false when the connection is gone (and with an adopted one,
 * perhaps the endpoint too: touch nothing then). */
static bool dispatch(struct vhu_ep *ep)
{
	struct vhost_user_msg *m = &ep->msg;
	bool need_reply = (m->hdr.flags & VHOST_USER_NEED_REPLY_MASK) &&
			  (ep->protocol & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK));
	const char *why;
	int rc = vhu_msg_validate(m, m->hdr.size, ep->nfds, &why);

	if (rc == -EPROTO) {
		drop_rx_fds(ep);
		log_err(ep->name, "malformed %s (%u): %s", vhu_request_name(m->hdr.request),
			m->hdr.request, why);
		disconnect(ep, "protocol error");
		return false;
	}
	if (rc == -ENOSYS) {
		log_warn(ep->name, "%s (%u) not supported", vhu_request_name(m->hdr.request), m->hdr.request);
	} else {
		log_trace(ep->name, "%s", vhu_request_name(m->hdr.request));
		rc = handle(ep);
	}
	drop_rx_fds(ep);	/* any the handler did not take */
	if (rc == -ECONNRESET) {
		disconnect(ep, "protocol error");
		return false;
	}
	if (rc < 0 && rc != -ENOSYS)
		log_warn(ep->name, "%s failed: %s", vhu_request_name(m->hdr.request), strerror(-rc));
	if (rc != 1 && need_reply && reply_u64(ep, m->hdr.request, rc ? 1 : 0) < 0) {
		disconnect(ep, "cannot send a reply");
		return false;
	}
	return true;
}

/* Reads what the socket has; dispatches each complete message. The socket
 * is non-blocking: a front end that sends half a message stalls only
 * itself. File descriptors arrive with the header's first byte. */
static void on_conn(void *arg, uint32_t events)
{
	struct vhu_ep *ep = arg;

	for (;;) {
		size_t need = ep->have < sizeof(ep->msg.hdr) ? sizeof(ep->msg.hdr)
							   : sizeof(ep->msg.hdr) + ep->msg.hdr.size;
		union {
			char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { (char *)&ep->msg + ep->have, need - ep->have };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(ep->conn_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			disconnect(ep, n < 0 ? strerror(errno) : (ep->have ? "closed mid-message" : NULL));
			return;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			unsigned k;
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (unsigned i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (ep->nfds < VHOST_USER_MAX_FDS)
					ep->fds[ep->nfds++] = fd;
				else
					close(fd);
			}
		}
		if (mh.msg_flags & MSG_CTRUNC) {
			disconnect(ep, "too many file descriptors in one message");
			return;
		}
		ep->have += (size_t)n;
		if (ep->have == sizeof(ep->msg.hdr) && ep->msg.hdr.size > sizeof(ep->msg.payload)) {
			log_err(ep->name, "message %u claims %u payload bytes", ep->msg.hdr.request,
				ep->msg.hdr.size);
			disconnect(ep, "protocol error");
			return;
		}
		if (ep->have >= sizeof(ep->msg.hdr) && ep->have == sizeof(ep->msg.hdr) + ep->msg.hdr.size) {
			if (!dispatch(ep))
				return;
			ep->have = 0;
			if (ep->paused)
				return;
		}
	}
	(void)events;
}

static int attach(struct vhu_ep *ep, int fd)
{
	int rc;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ep->conn_fd = fd;
	ep->have = 0;
	rc = evloop_add(ep->loop, fd, EPOLLIN | EPOLLRDHUP, on_conn, ep);
	if (rc) {
		close_fd(&ep->conn_fd);
		return rc;
	}
	evloop_poller_add(ep->loop, &ep->poller);
	log_info(ep->name, "front end connected");
	return 0;
}

static void on_listen(void *arg, uint32_t events)
{
	struct vhu_ep *ep = arg;
	int fd = accept4(ep->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	(void)events;
	if (fd < 0)
		return;
	if (ep->conn_fd >= 0) {
		/* One front end per device, as a disk has one owner. */
		log_warn(ep->name, "second front end refused: one is connected");
		close(fd);
		return;
	}
	attach(ep, fd);
}

static int ep_new(struct evloop *loop, const struct vblk_conf *conf, const struct vhu_ep_ops *ops,
		  void *ctx, struct vhu_ep **out)
{
	struct vhu_ep *ep = calloc(1, sizeof(*ep));
	struct vblk_conf c = *conf;
	int rc;

	if (!ep)
		return -ENOMEM;
	ep->loop = loop;
	ep->listen_fd = ep->conn_fd = -1;
	ep->fail = (struct evloop_defer){ .cb = on_fail, .arg = ep };
	ep->notify_all = (struct evloop_defer){ .cb = on_notify_all, .arg = ep };
	ep->poller = (struct evloop_poller){ .poll = ep_poll, .notify = ep_notify, .arg = ep };
	ep->ops = ops;
	ep->ctx = ctx;
	snprintf(ep->name, sizeof(ep->name), "%s", conf->name);
	for (unsigned q = 0; q < VBLK_MAX_QUEUES; q++) {
		ep->kicks[q] = (struct kick){ .ep = ep, .q = q, .fd = -1 };
		ep->call_fd[q] = ep->err_fd[q] = -1;
	}
	c.name = ep->name;
	rc = peerfd_watchdog_start(0);
	if (!rc)
		rc = vblk_new(&c, &vblk_ops, ep, &ep->dev);
	if (rc) {
		free(ep);
		return rc;
	}
	*out = ep;
	return 0;
}

int vhu_ep_listen(struct evloop *loop, const char *path, const struct vblk_conf *conf,
		  const struct vhu_ep_ops *ops, void *ctx, struct vhu_ep **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vhu_ep *ep;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	rc = ep_new(loop, conf, ops, ctx, &ep);
	if (rc)
		return rc;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	memcpy(ep->path, path, strlen(path) + 1);
	ep->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ep->listen_fd < 0 || bind(ep->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = -errno;
		ep->path[0] = '\0';	/* not ours to unlink */
		goto fail;
	}
	if (listen(ep->listen_fd, 4) != 0) {
		rc = -errno;
		goto fail;
	}
	rc = evloop_add(loop, ep->listen_fd, EPOLLIN, on_listen, ep);
	if (rc)
		goto fail;
	*out = ep;
	return 0;
fail:
	vhu_ep_destroy(ep);
	return rc;
}

int vhu_ep_adopt(struct evloop *loop, int fd, const struct vblk_conf *conf,
		 const struct vhu_ep_ops *ops, void *ctx, struct vhu_ep **out)
{
	struct vhu_ep *ep;
	int rc = ep_new(loop, conf, ops, ctx, &ep);

	if (rc) {
		close(fd);
		return rc;
	}
	ep->adopted = true;
	rc = attach(ep, fd);
	if (rc) {
		vhu_ep_destroy(ep);
		return rc;
	}
	*out = ep;
	return 0;
}

void vhu_ep_destroy(struct vhu_ep *ep)
{
	if (!ep)
		return;
	ep->adopted = false;	/* no "ended" callback from here */
	disconnect(ep, NULL);
	if (ep->listen_fd >= 0) {
		evloop_del(ep->loop, ep->listen_fd);
		close_fd(&ep->listen_fd);
	}
	if (ep->path[0])
		unlink(ep->path);
	vblk_destroy(ep->dev);
	free(ep);
}

const struct vblk_stats *vhu_ep_stats(const struct vhu_ep *ep)
{
	return vblk_stats(ep->dev);
}

int vhu_ep_set_qos(struct vhu_ep *ep, const struct qos_limits *l)
{
	return vblk_set_qos(ep->dev, l);
}

unsigned vhu_ep_quiesce(struct vhu_ep *ep)
{
	vblk_quiesce(ep->dev);
	return vblk_inflight(ep->dev);
}

bool vhu_ep_connected(const struct vhu_ep *ep)
{
	return ep->conn_fd >= 0;
}
