#include "vhu_fe.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_nvme.h"
#include "spec/virtio_blk.h"

#define SLOTS (FE_QSIZE / 3)	/* three descriptors a request */

static void ended(void *ctx, struct vhu_ep *ep)
{
	struct fe *f = ctx;

	vhu_ep_destroy(ep);
	f->ep = NULL;
	f->ended = true;
}

static const struct vhu_ep_ops ep_ops = { .ended = ended };

unsigned fe_vq_budget;

static int connect_ep(struct fe *f, const char *name)
{
	struct vblk_conf conf = {
		.name = name,
		.target = { .ns = fake_nvme_ns(), .first_lba = 0, .nlba = FAKE_NLBA, .lba_size = 512 },
		.ds_max = 2,
		.num_queues = FE_NQ,
		.loop = f->loop,
		.vq_budget = fe_vq_budget,
	};
	int sv[2];

	snprintf(conf.target.name, sizeof(conf.target.name), "FAKE:n1");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -errno;
	f->sock = sv[1];
	f->ended = false;
	return vhu_ep_adopt(f->loop, sv[0], &conf, &ep_ops, f, &f->ep);
}

int fe_reconnect(struct fe *f, const char *name)
{
	if (f->sock >= 0)
		close(f->sock);
	f->sock = -1;
	for (unsigned q = 0; q < FE_NQ; q++) {
		if (f->kick[q] >= 0)
			close(f->kick[q]);
		if (f->call[q] >= 0)
			close(f->call[q]);
		f->kick[q] = f->call[q] = -1;
	}
	return connect_ep(f, name);
}

int fe_get_inflight(struct fe *f, unsigned nq)
{
	struct vhost_user_inflight in = { .num_queues = (uint16_t)nq, .queue_size = FE_QSIZE };
	struct vhost_user_msg m;
	int rc = fe_send(f, VHOST_USER_GET_INFLIGHT_FD, 0, &in, sizeof(in), NULL, 0);

	if (rc)
		return rc;
	if (fe_recv(f, &m, 10) != 1 || m.hdr.size != sizeof(in) || f->rx_fd < 0)
		return -EIO;
	f->inflight = m.payload.inflight;
	f->inflight_fd = f->rx_fd;
	f->rx_fd = -1;
	return 0;
}

int fe_new(struct fe *f, struct evloop *loop, const char *name)
{
	int rc;

	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->sock = f->memfd = f->inflight_fd = f->rx_fd = -1;
	for (unsigned q = 0; q < FE_NQ; q++)
		f->kick[q] = f->call[q] = -1;
	rc = connect_ep(f, name);
	if (rc)
		return rc;
	f->memfd = memfd_create("fe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (f->memfd < 0 || ftruncate(f->memfd, FE_MEM_SIZE) != 0)
		return -errno;
	f->mem = mmap(NULL, FE_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->mem == MAP_FAILED) {
		f->mem = NULL;
		return -errno;
	}
	return 0;
}

void fe_free(struct fe *f)
{
	if (f->ep)
		vhu_ep_destroy(f->ep);
	f->ep = NULL;
	if (f->sock >= 0)
		close(f->sock);
	if (f->mem)
		munmap(f->mem, FE_MEM_SIZE);
	if (f->memfd >= 0)
		close(f->memfd);
	if (f->inflight_fd >= 0)
		close(f->inflight_fd);
	if (f->rx_fd >= 0)
		close(f->rx_fd);
	f->inflight_fd = f->rx_fd = -1;
	for (unsigned q = 0; q < FE_NQ; q++) {
		if (f->kick[q] >= 0)
			close(f->kick[q]);
		if (f->call[q] >= 0)
			close(f->call[q]);
	}
	f->sock = f->memfd = -1;
	f->mem = NULL;
}

int fe_send(struct fe *f, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
	    const int *fds, unsigned nfds)
{
	struct vhost_user_msg m;
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { &m, sizeof(m.hdr) + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (size > sizeof(m.payload) || nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;
	memset(&m, 0, sizeof(m));
	m.hdr.request = request;
	m.hdr.flags = VHOST_USER_VERSION | flags;
	m.hdr.size = size;
	if (size)
		memcpy(&m.payload, payload, size);
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(f->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)iov.iov_len)
		return -errno ? -errno : -EIO;
	return 0;
}

int fe_send_u64(struct fe *f, uint32_t request, uint64_t v)
{
	return fe_send(f, request, 0, &v, sizeof(v), NULL, 0);
}

int fe_send_state(struct fe *f, uint32_t request, uint32_t index, uint32_t num)
{
	struct vhost_user_vring_state s = { .index = index, .num = num };

	return fe_send(f, request, 0, &s, sizeof(s), NULL, 0);
}

void fe_run(struct fe *f, int rounds)
{
	while (rounds-- > 0)
		evloop_once(f->loop, 0);
}

int fe_recv(struct fe *f, struct vhost_user_msg *m, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		ssize_t n = recv(f->sock, m, sizeof(m->hdr), MSG_DONTWAIT | MSG_PEEK);

		if (n == (ssize_t)sizeof(m->hdr)) {
			union {
				char buf[CMSG_SPACE(sizeof(int))];
				struct cmsghdr align;
			} ctl;
			struct iovec iov = { m, sizeof(m->hdr) + m->hdr.size };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
					     .msg_controllen = sizeof(ctl.buf) };
			struct cmsghdr *c;

			n = recvmsg(f->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
			c = CMSG_FIRSTHDR(&mh);
			if (c && c->cmsg_type == SCM_RIGHTS) {
				if (f->rx_fd >= 0)
					close(f->rx_fd);
				memcpy(&f->rx_fd, CMSG_DATA(c), sizeof(int));
			}
			return n > 0 ? 1 : -EIO;
		}
		if (n == 0)
			return -ECONNRESET;
		evloop_once(f->loop, 0);
	}
	return 0;
}

int fe_setup(struct fe *f, unsigned nq)
{
	struct vhost_user_msg m;
	struct vhost_user_mem_table t = { .nregions = 1 };
	int rc;

	rc = fe_send(f, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0);
	if (rc || fe_recv(f, &m, 10) != 1)
		return rc ? rc : -EIO;
	rc = fe_send_u64(f, VHOST_USER_SET_FEATURES,
			 m.payload.u64 & ~VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES) & ~f->features_off);
	t.regions[0] = (struct vhost_user_mem_region){
		.guest_phys_addr = 0, .memory_size = FE_MEM_SIZE, .userspace_addr = FE_UVA,
	};
	if (!rc && f->inflight_fd >= 0)
		rc = fe_send(f, VHOST_USER_SET_INFLIGHT_FD, 0, &f->inflight, sizeof(f->inflight),
			     &f->inflight_fd, 1);
	if (!rc)
		rc = fe_send(f, VHOST_USER_SET_MEM_TABLE, 0, &t,
			     (uint32_t)(offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0])),
			     &f->memfd, 1);
	for (unsigned q = 0; !rc && q < nq; q++) {
		struct vhost_user_vring_addr a = {
			.index = q, .desc_user_addr = FE_UVA + FE_RING(q),
			.avail_user_addr = FE_UVA + FE_RING(q) + 0x1000,
			.used_user_addr = FE_UVA + FE_RING(q) + 0x2000,
		};
		uint64_t idx = q;

		if (f->kick[q] >= 0)
			close(f->kick[q]);
		if (f->call[q] >= 0)
			close(f->call[q]);
		f->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		f->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		rc = fe_send_state(f, VHOST_USER_SET_VRING_NUM, q, FE_QSIZE);
		if (!rc)
			rc = fe_send(f, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0);
		if (!rc)
			rc = fe_send_state(f, VHOST_USER_SET_VRING_BASE, q, f->base[q]);
		if (!rc)
			rc = fe_send(f, VHOST_USER_SET_VRING_CALL, 0, &idx, sizeof(idx), &f->call[q], 1);
		if (!rc)
			rc = fe_send(f, VHOST_USER_SET_VRING_KICK, 0, &idx, sizeof(idx), &f->kick[q], 1);
	}
	fe_run(f, 20);
	return rc;
}

static struct vring_desc *desc(struct fe *f, unsigned q)
{
	return (struct vring_desc *)(f->mem + FE_RING(q));
}

static struct vring_avail *avail(struct fe *f, unsigned q)
{
	return (struct vring_avail *)(f->mem + FE_RING(q) + 0x1000);
}

static struct vring_used *used(struct fe *f, unsigned q)
{
	return (struct vring_used *)(f->mem + FE_RING(q) + 0x2000);
}

uint16_t fe_post(struct fe *f, unsigned q, uint32_t type, uint64_t sector, uint32_t len)
{
	unsigned slot = f->avail_idx[q] % SLOTS;
	uint16_t head = (uint16_t)(slot * 3);
	uint64_t buf = FE_BUF(q, slot);
	struct virtio_blk_outhdr h = { .type = type, .sector = sector };
	struct vring_desc *d = desc(f, q);
	struct vring_avail *a = avail(f, q);
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

	memcpy(f->mem + buf, &h, sizeof(h));
	f->mem[buf + 0x7000] = 0xff;
	d[head] = (struct vring_desc){ .addr = buf, .len = sizeof(h), .flags = VRING_DESC_F_NEXT,
				       .next = (uint16_t)(head + 1) };
	if (len) {
		d[head + 1] = (struct vring_desc){ .addr = buf + 0x1000, .len = len,
						   .flags = (uint16_t)(VRING_DESC_F_NEXT |
								       (in ? VRING_DESC_F_WRITE : 0)),
						   .next = (uint16_t)(head + 2) };
		d[head + 2] = (struct vring_desc){ .addr = buf + 0x7000, .len = 1,
						   .flags = VRING_DESC_F_WRITE };
	} else {
		d[head].next = (uint16_t)(head + 2);
		d[head + 2] = (struct vring_desc){ .addr = buf + 0x7000, .len = 1,
						   .flags = VRING_DESC_F_WRITE };
	}
	a->ring[f->avail_idx[q] % FE_QSIZE] = head;
	__atomic_store_n(&a->idx, (uint16_t)(f->avail_idx[q] + 1), __ATOMIC_RELEASE);
	f->avail_idx[q]++;
	return head;
}

void fe_post_reads(struct fe *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fe_post(f, 0, VIRTIO_BLK_T_IN, 8 * (uint64_t)i, 4096);
}

int fe_kick(struct fe *f, unsigned q)
{
	uint64_t one = 1;

	return write(f->kick[q], &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

int fe_used(struct fe *f, unsigned q, uint32_t *id, uint32_t *len)
{
	struct vring_used *u = used(f, q);
	uint16_t idx = __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE);
	struct vring_used_elem e;

	if (idx == f->used_seen[q])
		return 0;
	e = u->ring[f->used_seen[q] % FE_QSIZE];
	f->used_seen[q]++;
	*id = e.id;
	*len = e.len;
	return 1;
}

uint8_t fe_status(struct fe *f, unsigned q, uint16_t head, uint32_t len)
{
	(void)len;
	return f->mem[FE_BUF(q, head / 3) + 0x7000];
}
