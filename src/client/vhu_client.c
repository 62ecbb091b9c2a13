#include "client/vhu_client.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport/vhu_msg.h"
#include "util/log.h"

/* virtio 1.2, 2.1 Device Status Field (sent with SET_STATUS). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u

#define BLK_FEATURES                                                                          \
	(VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |                 \
	 VIRTIO_BIT(VIRTIO_BLK_F_GEOMETRY) | VIRTIO_BIT(VIRTIO_BLK_F_RO) |                      \
	 VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |                   \
	 VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) | VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |              \
	 VIRTIO_BIT(VIRTIO_BLK_F_MQ) | VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |                       \
	 VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES))
#define WANT_FEATURES                                                                         \
	(BLK_FEATURES | VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) | \
	 VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) | VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES))
#define WANT_PROTOCOL                                                                         \
	(VIRTIO_BIT(VHOST_USER_PROTOCOL_F_MQ) | VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |     \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG) |                                              \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                                 \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS))

#define PAGE 4096ull
#define QUEUES_MAX 256		/* SET_VRING_KICK/CALL carry the index in 8 bits */

/* The client-owned part of a request, one per descriptor index so that a
 * chain's head finds its header, status and indirect table at once. */
struct req_area {
	struct virtio_blk_outhdr hdr;
	uint8_t status;
	uint8_t pad[15];
	struct vring_desc table[VHU_SEGS_MAX + 2];
};

_Static_assert(sizeof(struct req_area) % 16 == 0,
	       "indirect tables stay 16-byte aligned like a descriptor table (2.7.5)");

struct slot {
	void *priv;
	uint16_t ndesc;
	bool busy;
	bool raw;		/* vhu_raw_take: the status byte is not ours */
};

struct queue {
	unsigned size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t *used_event;	/* avail->ring[size] */
	uint16_t *avail_event;	/* after used->ring[size] */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct req_area *area;
	uint64_t area_gpa;
	uint16_t avail_idx;	/* next avail entry to fill, free-running */
	uint16_t kicked_idx;	/* avail_idx at the last vhu_kick */
	uint16_t last_used;	/* next used entry to read */
	uint16_t free_head;
	unsigned nfree, inflight;
	/* Private links: the free list, and each taken chain in order (the
	 * shared table may hold anything a raw test wrote). */
	uint16_t *link;
	struct slot *slots;
	int kick_fd, call_fd;
	bool broken;
};

struct region {
	int fd;			/* -1: slot unused */
	uint8_t *va;
	uint64_t gpa;
	uint64_t offset;	/* in the fd: 0 for a memfd, else where in mem_file */
	size_t size, used;
};

struct vhu_client {
	int sock;
	char name[112];
	struct vhu_opts o;
	unsigned queue_size;
	struct vhu_info info;
	bool negotiated, started, reply_ack;
	uint8_t status;
	uint64_t file_end;	/* mem_file bytes handed to regions so far */
	struct region regions[VHU_REGIONS_MAX];
	struct queue *queues;
	unsigned nqueues;
};

/* "Communication": the requests answered whether or not REPLY_ACK is on. */
static bool has_reply(uint32_t r)
{
	switch (r) {
	case VHOST_USER_GET_FEATURES:
	case VHOST_USER_GET_PROTOCOL_FEATURES:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_GET_QUEUE_NUM:
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_GET_MAX_MEM_SLOTS:
	case VHOST_USER_GET_STATUS:
		return true;
	default:
		return false;
	}
}

static uint64_t page_up(uint64_t n)
{
	return (n + PAGE - 1) & ~(PAGE - 1);
}

bool vhu_blk_data_is_in(uint32_t type)
{
	return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

int vhu_blk_chain(struct vring_desc *table, const uint16_t *ids, uint64_t hdr_gpa,
		  uint64_t status_gpa, uint32_t type, const struct vhu_buf *data, unsigned ndata)
{
	uint16_t data_flags = vhu_blk_data_is_in(type) ? VRING_DESC_F_WRITE : 0;
	unsigned n = ndata + 2;

	if (ndata > VHU_SEGS_MAX)
		return -E2BIG;
	/* 2.7.4.2: every device-readable buffer before any writable one;
	 * 5.2.6: the header first, the status byte last. */
	for (unsigned i = 0; i < n; i++) {
		uint64_t addr = status_gpa;
		uint32_t len = 1;
		uint16_t flags = VRING_DESC_F_WRITE;

		if (i == 0) {
			addr = hdr_gpa;
			len = sizeof(struct virtio_blk_outhdr);
			flags = 0;
		} else if (i < n - 1) {
			addr = data[i - 1].gpa;
			len = data[i - 1].len;
			flags = data_flags;
		}
		if (i + 1 < n)
			flags |= VRING_DESC_F_NEXT;
		table[ids[i]] = (struct vring_desc){
			.addr = htole64(addr),
			.len = htole32(len),
			.flags = htole16(flags),
			.next = htole16(i + 1 < n ? ids[i + 1] : 0),
		};
	}
	return (int)n;
}

bool vhu_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

static void set_timeouts(struct vhu_client *c)
{
	/* A zero timeval is SO_RCVTIMEO's "for ever". */
	struct timeval tv = { 0, 0 };

	if (c->o.timeout_ms > 0)
		tv = (struct timeval){ c->o.timeout_ms / 1000, (c->o.timeout_ms % 1000) * 1000 };

	/* A back-end that stalls mid-message must not hang us for good. */
	if (setsockopt(c->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(c->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		log_warn(c->name, "cannot set socket timeouts: %s", strerror(errno));
}

static int client_new(int sock, const char *name, struct vhu_client **out)
{
	struct vhu_client *c = calloc(1, sizeof(*c));

	if (!c) {
		close(sock);
		return -ENOMEM;
	}
	c->sock = sock;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->o.timeout_ms = 10000;
	for (unsigned i = 0; i < VHU_REGIONS_MAX; i++)
		c->regions[i].fd = -1;
	set_timeouts(c);
	*out = c;
	return 0;
}

int vhu_connect(const char *path, struct vhu_client **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err(path, "socket path longer than %zu bytes", sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		log_err(path, "socket: %s", strerror(-rc));
		return rc;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		log_err(path, "cannot connect: %s", strerror(-rc));
		close(fd);
		return rc;
	}
	return client_new(fd, path, out);
}

int vhu_adopt_fd(int fd, struct vhu_client **out)
{
	char name[32];
	struct stat st;

	snprintf(name, sizeof(name), "fd %d", fd);
	if (fstat(fd, &st)) {
		log_err(name, "not an open file descriptor");
		return -EBADF;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_err(name, "not a socket");
		close(fd);
		return -ENOTSOCK;
	}
	return client_new(fd, name, out);
}

static void region_destroy(struct region *r)
{
	if (r->va)
		munmap(r->va, r->size);
	if (r->fd >= 0)
		close(r->fd);
	*r = (struct region){ .fd = -1 };
}

void vhu_free(struct vhu_client *c)
{
	if (!c)
		return;
	for (unsigned q = 0; q < c->nqueues; q++) {
		struct queue *vq = &c->queues[q];

		if (vq->kick_fd >= 0)
			close(vq->kick_fd);
		if (vq->call_fd >= 0)
			close(vq->call_fd);
		free(vq->link);
		free(vq->slots);
	}
	free(c->queues);
	for (unsigned i = 0; i < VHU_REGIONS_MAX; i++)
		region_destroy(&c->regions[i]);
	if (c->sock >= 0)
		close(c->sock);
	free(c);
}

int vhu_sock_fd(const struct vhu_client *c)
{
	return c->sock;
}

const struct vhu_info *vhu_info(const struct vhu_client *c)
{
	return &c->info;
}

int vhu_send_raw(struct vhu_client *c, const struct vhost_user_hdr *hdr, const void *payload,
		 size_t len, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { (void *)hdr, sizeof(*hdr) }, { (void *)payload, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	while (mh.msg_iovlen) {
		/* MSG_NOSIGNAL: a back-end that hangs up must give us -EPIPE,
		 * not kill the process with SIGPIPE. */
		ssize_t n = sendmsg(c->sock, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		/* The fds went with the first byte. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (mh.msg_iovlen && (size_t)n >= mh.msg_iov->iov_len) {
			n -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + n;
			mh.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Reads exactly len bytes (the socket's receive timeout bounds each wait). */
static int recv_all(struct vhu_client *c, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(c->sock, (char *)buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int vhu_recv_raw(struct vhu_client *c, struct vhost_user_msg *msg, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { &msg->hdr, sizeof(msg->hdr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct pollfd p = { c->sock, POLLIN, 0 };
	ssize_t n;
	int rc;

	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	if (rc == 0)
		return -ETIMEDOUT;
	do
		n = recvmsg(c->sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -ECONNRESET;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			close(fd);
		}
		log_warn(c->name, "back-end sent %zu file descriptors with a reply; closed them", nfd);
	}
	if ((size_t)n < sizeof(msg->hdr)) {
		rc = recv_all(c, (char *)&msg->hdr + n, sizeof(msg->hdr) - (size_t)n);
		if (rc)
			return rc;
	}
	if (msg->hdr.size > sizeof(msg->payload))
		return -EPROTO;
	rc = recv_all(c, &msg->payload, msg->hdr.size);
	return rc ? rc : (int)msg->hdr.size;
}

int vhu_msg(struct vhu_client *c, uint32_t request, const void *payload, uint32_t size,
	    const int *fds, unsigned nfds, void *reply, uint32_t reply_size)
{
	struct vhost_user_hdr h = { request, VHOST_USER_VERSION, size };
	bool ack = !has_reply(request) && c->reply_ack;
	const char *what = vhu_request_name(request);
	struct vhost_user_msg m;
	int rc;

	if (size > sizeof(m.payload))
		return -EINVAL;
	/* REPLY_ACK: for requests without a reply of their own, the answer
	 * tells us the back-end has acted, not merely read the message. */
	if (ack)
		h.flags |= VHOST_USER_NEED_REPLY_MASK;
	rc = vhu_send_raw(c, &h, payload, size, fds, nfds);
	if (rc) {
		log_err(c->name, "cannot send %s: %s", what, strerror(-rc));
		return rc;
	}
	log_trace(c->name, "sent %s, %" PRIu32 " bytes, %u fds%s", what, size, nfds,
		  ack ? ", reply asked" : "");
	if (!has_reply(request) && !ack)
		return 0;
	rc = vhu_recv_raw(c, &m, c->o.timeout_ms);
	if (rc == -ETIMEDOUT) {
		log_err(c->name, "no reply to %s within %d ms", what, c->o.timeout_ms);
		return rc;
	}
	if (rc == -ECONNRESET) {
		log_err(c->name, "back-end closed the connection instead of answering %s", what);
		return rc;
	}
	if (rc == -EPROTO) {
		log_err(c->name, "reply to %s claims %" PRIu32 " bytes of payload, more than any",
			what, m.hdr.size);
		return rc;
	}
	if (rc < 0) {
		log_err(c->name, "cannot receive the reply to %s: %s", what, strerror(-rc));
		return rc;
	}
	if (m.hdr.request != request) {
		log_err(c->name, "reply to %s names request %" PRIu32, what, m.hdr.request);
		return -EPROTO;
	}
	if ((m.hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
		log_err(c->name, "reply to %s has version %" PRIu32, what,
			m.hdr.flags & VHOST_USER_VERSION_MASK);
		return -EPROTO;
	}
	if (!(m.hdr.flags & VHOST_USER_REPLY_MASK)) {
		log_err(c->name, "reply to %s lacks the reply flag", what);
		return -EPROTO;
	}
	if (ack) {
		if (m.hdr.size != sizeof(uint64_t)) {
			log_err(c->name, "REPLY_ACK to %s has %" PRIu32 " bytes, not 8", what,
				m.hdr.size);
			return -EPROTO;
		}
		if (m.payload.u64) {
			log_err(c->name, "back-end refused %s (REPLY_ACK %" PRIu64 ")", what,
				m.payload.u64);
			return -EIO;
		}
		return 0;
	}
	/* GET_CONFIG: "zero length of payload to indicate an error". */
	if (request == VHOST_USER_GET_CONFIG && m.hdr.size == 0) {
		log_err(c->name, "back-end refused GET_CONFIG (empty reply)");
		return -EIO;
	}
	if (m.hdr.size != reply_size) {
		log_err(c->name, "reply to %s has %" PRIu32 " bytes, expected %" PRIu32, what,
			m.hdr.size, reply_size);
		return -EPROTO;
	}
	if (reply_size)
		memcpy(reply, &m.payload, reply_size);
	return 0;
}

static int msg_u64(struct vhu_client *c, uint32_t request, uint64_t v)
{
	return vhu_msg(c, request, &v, sizeof(v), NULL, 0, NULL, 0);
}

static int get_u64(struct vhu_client *c, uint32_t request, uint64_t *v)
{
	return vhu_msg(c, request, NULL, 0, NULL, 0, v, sizeof(*v));
}

static int msg_state(struct vhu_client *c, uint32_t request, unsigned index, unsigned num)
{
	struct vhost_user_vring_state s = { index, num };

	return vhu_msg(c, request, &s, sizeof(s), NULL, 0, NULL, 0);
}

/* Without REPLY_ACK nothing says when a message has been acted on, but a
 * back-end reads its socket in order: once a GET_FEATURES is answered,
 * every earlier message was handled (memory mapped, rings set), and only
 * then may we kick or place buffers in a new region. */
static int sync_backend(struct vhu_client *c)
{
	uint64_t f;

	return c->reply_ack ? 0 : get_u64(c, VHOST_USER_GET_FEATURES, &f);
}

static void config_to_host(struct virtio_blk_config *k)
{
	k->capacity = le64toh(k->capacity);
	k->size_max = le32toh(k->size_max);
	k->seg_max = le32toh(k->seg_max);
	k->geometry.cylinders = le16toh(k->geometry.cylinders);
	k->blk_size = le32toh(k->blk_size);
	k->topology.min_io_size = le16toh(k->topology.min_io_size);
	k->topology.opt_io_size = le32toh(k->topology.opt_io_size);
	k->num_queues = le16toh(k->num_queues);
	k->max_discard_sectors = le32toh(k->max_discard_sectors);
	k->max_discard_seg = le32toh(k->max_discard_seg);
	k->discard_sector_alignment = le32toh(k->discard_sector_alignment);
	k->max_write_zeroes_sectors = le32toh(k->max_write_zeroes_sectors);
	k->max_write_zeroes_seg = le32toh(k->max_write_zeroes_seg);
}

static int get_config(struct vhu_client *c)
{
	struct vhost_user_config req = { .offset = 0, .size = sizeof(struct virtio_blk_config) };
	struct vhost_user_config rep;
	uint32_t len = VHOST_USER_CONFIG_HDR_SIZE + (uint32_t)sizeof(struct virtio_blk_config);
	int rc;

	rc = vhu_msg(c, VHOST_USER_GET_CONFIG, &req, len, NULL, 0, &rep, len);
	if (rc)
		return rc;
	if (rep.offset != req.offset || rep.size != req.size) {
		log_err(c->name, "GET_CONFIG reply is for offset %" PRIu32 " size %" PRIu32
			", asked offset 0 size %" PRIu32, rep.offset, rep.size, req.size);
		return -EPROTO;
	}
	memcpy(&c->info.config, rep.payload, sizeof(c->info.config));
	config_to_host(&c->info.config);
	c->info.have_config = true;
	return 0;
}

int vhu_negotiate(struct vhu_client *c, const struct vhu_opts *o)
{
	struct vhu_info *in = &c->info;
	uint64_t proto = 0, qnum = 0;
	int rc;

	if (c->negotiated) {
		log_err(c->name, "already negotiated");
		return -EINVAL;
	}
	if (o)
		c->o = *o;
	if (c->o.timeout_ms == 0)
		c->o.timeout_ms = 10000;
	set_timeouts(c);

	rc = get_u64(c, VHOST_USER_GET_FEATURES, &in->offered);
	if (rc)
		return rc;
	/* Virtio 1.x layout (little-endian rings and config) is all we
	 * speak; a legacy-only back-end is refused. */
	if (!(in->offered & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
		log_err(c->name, "back-end does not offer VIRTIO_F_VERSION_1 (features %#" PRIx64 ")",
			in->offered);
		return -ENOTSUP;
	}
	in->features = (in->offered & WANT_FEATURES & ~c->o.features_off) |
		       VIRTIO_BIT(VIRTIO_F_VERSION_1);
	if (in->features & VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)) {
		uint64_t offered;

		rc = get_u64(c, VHOST_USER_GET_PROTOCOL_FEATURES, &offered);
		if (rc)
			return rc;
		proto = offered & WANT_PROTOCOL & ~c->o.protocol_off;
		rc = msg_u64(c, VHOST_USER_SET_PROTOCOL_FEATURES, proto);
		if (rc)
			return rc;
		c->reply_ack = proto & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK);
		if (proto & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_MQ)) {
			rc = get_u64(c, VHOST_USER_GET_QUEUE_NUM, &qnum);
			if (rc)
				return rc;
		}
		if (proto & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
			rc = get_u64(c, VHOST_USER_GET_MAX_MEM_SLOTS, &in->max_mem_slots);
			if (rc)
				return rc;
		}
	}
	in->protocol = proto;
	rc = vhu_msg(c, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
	if (rc)
		return rc;
	if (proto & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG)) {
		rc = get_config(c);
		if (rc)
			return rc;
	}
	/* 5.2.5: num_queues is valid only with VIRTIO_BLK_F_MQ; "Multiple
	 * queue support": never start more than GET_QUEUE_NUM allows. */
	in->max_queues = 1;
	if ((in->features & VIRTIO_BIT(VIRTIO_BLK_F_MQ)) && in->have_config) {
		in->max_queues = in->config.num_queues;
		if (!in->max_queues) {
			log_warn(c->name, "VIRTIO_BLK_F_MQ with num_queues 0; using one queue");
			in->max_queues = 1;
		}
	}
	if (qnum && qnum < in->max_queues)
		in->max_queues = (unsigned)qnum;
	if (in->max_queues > QUEUES_MAX)
		in->max_queues = QUEUES_MAX;
	log_debug(c->name, "features %#" PRIx64 " of %#" PRIx64 ", protocol %#" PRIx64
		  ", queues %u", in->features, in->offered, proto, in->max_queues);
	c->negotiated = true;
	return 0;
}

static int region_create(struct vhu_client *c, unsigned idx, size_t size, uint64_t gpa)
{
	struct region *r = &c->regions[idx];
	const char *file = c->o.mem_file;
	uint64_t off = file ? c->file_end : 0;
	struct stat st;
	int rc;

	r->fd = file ? open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600)
		     : memfd_create("vhu-client", MFD_CLOEXEC);
	if (r->fd < 0) {
		rc = -errno;
		log_err(c->name, "%s: %s", file ? file : "memfd_create", strerror(-rc));
		return rc;
	}
	/* Only ever grown: whatever else maps the file keeps its pages. */
	if (fstat(r->fd, &st) || ((uint64_t)st.st_size < off + size &&
				  ftruncate(r->fd, (off_t)(off + size)))) {
		rc = -errno;
		log_err(c->name, "cannot size a %zu-byte region: %s", size, strerror(-rc));
		region_destroy(r);
		return rc;
	}
	r->va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, (off_t)off);
	if (r->va == MAP_FAILED) {
		rc = -errno;
		r->va = NULL;
		log_err(c->name, "cannot map a %zu-byte region: %s", size, strerror(-rc));
		region_destroy(r);
		return rc;
	}
	r->size = size;
	r->gpa = gpa;
	r->offset = off;
	r->used = 0;
	if (file)
		c->file_end = off + size;
	return 0;
}

static struct vhost_user_mem_region region_desc(const struct region *r)
{
	return (struct vhost_user_mem_region){
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = (uintptr_t)r->va,
		.mmap_offset = r->offset,
	};
}

/* SET_MEM_TABLE with every region but `skip`; the payload is as long as
 * the regions it holds, as QEMU sends it. */
static int send_mem_table(struct vhu_client *c, int skip)
{
	struct vhost_user_mem_table t = { 0 };
	int fds[VHU_REGIONS_MAX];

	for (unsigned i = 0; i < VHU_REGIONS_MAX; i++) {
		if (c->regions[i].fd < 0 || (int)i == skip)
			continue;
		/* vhu_add_region keeps to this without CONFIGURE_MEM_SLOTS */
		if (t.nregions == VHOST_USER_MEM_REGIONS_MAX)
			return -ENOSPC;
		t.regions[t.nregions] = region_desc(&c->regions[i]);
		fds[t.nregions++] = c->regions[i].fd;
	}
	return vhu_msg(c, VHOST_USER_SET_MEM_TABLE, &t,
		       (uint32_t)(offsetof(struct vhost_user_mem_table, regions) +
				  t.nregions * sizeof(t.regions[0])),
		       fds, t.nregions, NULL, 0);
}

int vhu_alloc(struct vhu_client *c, unsigned region, size_t len, size_t align,
	      struct vhu_buf *out)
{
	struct region *r = region < VHU_REGIONS_MAX ? &c->regions[region] : NULL;
	size_t off;

	if (!r || r->fd < 0 || !len || len > UINT32_MAX || !align || (align & (align - 1))) {
		log_err(c->name, "vhu_alloc: bad region %u, length %zu or alignment %zu", region,
			len, align);
		return -EINVAL;
	}
	off = (r->used + align - 1) & ~(align - 1);
	if (off > r->size || len > r->size - off) {
		log_err(c->name, "region %u: no room for %zu more bytes (%zu of %zu used)", region,
			len, r->used, r->size);
		return -ENOMEM;
	}
	r->used = off + len;
	memset(r->va + off, 0, len);
	*out = (struct vhu_buf){ r->va + off, r->gpa + off, (uint32_t)len };
	return 0;
}

static int queue_init(struct vhu_client *c, struct queue *vq)
{
	unsigned n = c->queue_size;
	struct vhu_buf d, a, u, area;
	int rc;

	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->kick_fd < 0 || vq->call_fd < 0) {
		rc = -errno;
		log_err(c->name, "eventfd: %s", strerror(-rc));
		return rc;
	}
	/* Each part on its own page, as QEMU lays rings out; the event
	 * words (2.7.6, 2.7.8) are the 2 bytes after each ring. */
	if ((rc = vhu_alloc(c, 0, VRING_DESC_SIZE(n), PAGE, &d)) ||
	    (rc = vhu_alloc(c, 0, VRING_AVAIL_SIZE(n), PAGE, &a)) ||
	    (rc = vhu_alloc(c, 0, VRING_USED_SIZE(n), PAGE, &u)) ||
	    (rc = vhu_alloc(c, 0, sizeof(struct req_area) * n, PAGE, &area)))
		return rc;
	vq->size = n;
	vq->desc = d.va;
	vq->avail = a.va;
	vq->used = u.va;
	vq->used_event = &vq->avail->ring[n];
	vq->avail_event = (uint16_t *)&vq->used->ring[n];
	vq->desc_gpa = d.gpa;
	vq->avail_gpa = a.gpa;
	vq->used_gpa = u.gpa;
	vq->area = area.va;
	vq->area_gpa = area.gpa;
	vq->link = calloc(n, sizeof(*vq->link));
	vq->slots = calloc(n, sizeof(*vq->slots));
	if (!vq->link || !vq->slots)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		vq->link[i] = (uint16_t)(i + 1);
	vq->nfree = n;
	return 0;
}

static int start_queue(struct vhu_client *c, unsigned q)
{
	struct queue *vq = &c->queues[q];
	struct vhost_user_vring_addr addr = {
		.index = q,
		.desc_user_addr = (uintptr_t)vq->desc,
		.used_user_addr = (uintptr_t)vq->used,
		.avail_user_addr = (uintptr_t)vq->avail,
	};
	uint64_t idx = q;
	int rc;

	/* Ring addresses are our user addresses ("A vring address
	 * description": no IOMMU_PLATFORM), found through the regions'
	 * userspace_addr; descriptors carry guest addresses. */
	if ((rc = msg_state(c, VHOST_USER_SET_VRING_NUM, q, vq->size)) ||
	    (rc = msg_state(c, VHOST_USER_SET_VRING_BASE, q, 0)) ||
	    (rc = vhu_msg(c, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0, NULL, 0)))
		return rc;
	/* The call fd first: the ring starts on SET_VRING_KICK ("Ring
	 * states") and must have somewhere to signal by then. */
	if ((rc = vhu_msg(c, VHOST_USER_SET_VRING_CALL, &idx, sizeof(idx), &vq->call_fd, 1, NULL,
			  0)) ||
	    (rc = vhu_msg(c, VHOST_USER_SET_VRING_KICK, &idx, sizeof(idx), &vq->kick_fd, 1, NULL,
			  0)))
		return rc;
	return 0;
}

static int set_status(struct vhu_client *c, uint8_t add)
{
	c->status |= add;
	return msg_u64(c, VHOST_USER_SET_STATUS, c->status);
}

int vhu_start(struct vhu_client *c, unsigned queues, unsigned queue_size, size_t data_size)
{
	const struct vhu_info *in = &c->info;
	bool status = in->protocol & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS);
	uint64_t n = queue_size ? queue_size : 128, size = page_up(data_size);
	int rc;

	if (!c->negotiated || c->started || c->queues) {
		log_err(c->name, "vhu_start: %s", c->negotiated ? "already started" : "not negotiated");
		return -EINVAL;
	}
	if (!queues || queues > in->max_queues) {
		log_err(c->name, "%u queues asked, the device has %u", queues, in->max_queues);
		return -EINVAL;
	}
	if (n > VRING_SIZE_MAX || (n & (n - 1))) {
		log_err(c->name, "queue size %" PRIu64 " is not a power of 2 up to %u", n,
			VRING_SIZE_MAX);
		return -EINVAL;
	}
	c->queue_size = (unsigned)n;
	size += queues * (page_up(VRING_DESC_SIZE(n)) + page_up(VRING_AVAIL_SIZE(n)) +
			       page_up(VRING_USED_SIZE(n)) + page_up(n * sizeof(struct req_area)));
	rc = region_create(c, 0, size, VHU_GPA_BASE);
	if (rc)
		return rc;
	c->queues = calloc(queues, sizeof(*c->queues));
	if (!c->queues)
		return -ENOMEM;
	for (unsigned q = 0; q < queues; q++) {
		c->queues[q].kick_fd = c->queues[q].call_fd = -1;
		c->nqueues++;
		rc = queue_init(c, &c->queues[q]);
		if (rc)
			return rc;
	}
	rc = msg_u64(c, VHOST_USER_SET_FEATURES, in->features);
	if (rc)
		return rc;
	/* virtio 1.2, 3.1.1 steps 1-6, through SET/GET_STATUS: the device
	 * may refuse the features by leaving FEATURES_OK clear. */
	if (status) {
		uint64_t got;

		rc = set_status(c, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				       VIRTIO_STATUS_FEATURES_OK);
		if (rc || (rc = get_u64(c, VHOST_USER_GET_STATUS, &got)))
			return rc;
		if (!(got & VIRTIO_STATUS_FEATURES_OK)) {
			log_err(c->name, "device did not accept features %#" PRIx64 " (status %#"
				PRIx64 ")", in->features, got);
			return -ENOTSUP;
		}
	}
	rc = send_mem_table(c, -1);
	if (rc)
		return rc;
	for (unsigned q = 0; q < c->nqueues; q++) {
		rc = start_queue(c, q);
		if (rc)
			return rc;
	}
	/* "Ring states": with PROTOCOL_FEATURES a ring starts disabled. */
	if (in->features & VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES))
		for (unsigned q = 0; q < c->nqueues; q++)
			if ((rc = msg_state(c, VHOST_USER_SET_VRING_ENABLE, q, 1)))
				return rc;
	if (status && (rc = set_status(c, VIRTIO_STATUS_DRIVER_OK)))
		return rc;
	rc = sync_backend(c);
	if (rc)
		return rc;
	c->started = true;
	return 0;
}

int vhu_add_region(struct vhu_client *c, size_t size, uint64_t gpa, unsigned *idx)
{
	bool slots = c->info.protocol & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	unsigned i, used = 0, free_idx = VHU_REGIONS_MAX;
	uint64_t top = 0;
	int rc;

	if (!c->started) {
		log_err(c->name, "vhu_add_region: not started");
		return -EINVAL;
	}
	size = page_up(size);
	for (i = 0; i < VHU_REGIONS_MAX; i++) {
		const struct region *r = &c->regions[i];

		if (r->fd < 0) {
			if (free_idx == VHU_REGIONS_MAX)
				free_idx = i;
			continue;
		}
		used++;
		if (r->gpa + r->size > top)
			top = r->gpa + r->size;
	}
	if (free_idx == VHU_REGIONS_MAX || (slots && used >= c->info.max_mem_slots) ||
	    (!slots && used >= VHOST_USER_MEM_REGIONS_MAX)) {
		log_err(c->name, "no memory slot left (%u in use)", used);
		return -ENOSPC;
	}
	if (!gpa)
		gpa = (top + (1ull << 30)) & ~((1ull << 30) - 1);
	if (!size || gpa + size < gpa) {
		log_err(c->name, "region of %zu bytes at %#" PRIx64 " wraps", size, gpa);
		return -EINVAL;
	}
	for (i = 0; i < VHU_REGIONS_MAX; i++) {
		const struct region *r = &c->regions[i];

		if (r->fd >= 0 && gpa < r->gpa + r->size && r->gpa < gpa + size) {
			log_err(c->name, "region at %#" PRIx64 " overlaps region %u", gpa, i);
			return -EINVAL;
		}
	}
	rc = region_create(c, free_idx, size, gpa);
	if (rc)
		return rc;
	if (slots) {
		struct vhost_user_mem_region_msg m = { .region = region_desc(&c->regions[free_idx]) };

		rc = vhu_msg(c, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &c->regions[free_idx].fd, 1,
			     NULL, 0);
	} else {
		rc = send_mem_table(c, -1);
	}
	if (!rc)
		rc = sync_backend(c);
	if (rc) {
		region_destroy(&c->regions[free_idx]);
		return rc;
	}
	*idx = free_idx;
	return 0;
}

int vhu_remove_region(struct vhu_client *c, unsigned idx)
{
	int rc;

	if (!idx || idx >= VHU_REGIONS_MAX || c->regions[idx].fd < 0) {
		log_err(c->name, "no region %u to remove (region 0 holds the rings)", idx);
		return -EINVAL;
	}
	if (c->info.protocol & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		struct vhost_user_mem_region_msg m = { .region = region_desc(&c->regions[idx]) };

		/* REM_MEM_REG: "No file descriptors SHOULD be passed". */
		rc = vhu_msg(c, VHOST_USER_REM_MEM_REG, &m, sizeof(m), NULL, 0, NULL, 0);
	} else {
		rc = send_mem_table(c, (int)idx);
	}
	/* Unmap only once the back-end no longer maps it. */
	if (!rc)
		rc = sync_backend(c);
	if (rc)
		return rc;
	region_destroy(&c->regions[idx]);
	return 0;
}

static struct queue *get_queue(struct vhu_client *c, unsigned q)
{
	if (!c->started || q >= c->nqueues) {
		log_err(c->name, "no started queue %u", q);
		return NULL;
	}
	return &c->queues[q];
}

/* The free list keeps taken entries linked in order, so link[] walks a
 * chain from its head when it is freed. */
static void take_descs(struct queue *vq, unsigned n, uint16_t *ids, void *priv, bool raw)
{
	for (unsigned i = 0; i < n; i++) {
		ids[i] = vq->free_head;
		vq->free_head = vq->link[vq->free_head];
	}
	vq->nfree -= n;
	vq->slots[ids[0]] = (struct slot){ .priv = priv, .ndesc = (uint16_t)n, .busy = true,
					   .raw = raw };
	vq->inflight++;
}

static void free_chain(struct queue *vq, uint16_t head)
{
	uint16_t last = head;

	for (unsigned i = 1; i < vq->slots[head].ndesc; i++)
		last = vq->link[last];
	vq->link[last] = vq->free_head;
	vq->free_head = head;
	vq->nfree += vq->slots[head].ndesc;
	vq->slots[head].busy = false;
	vq->inflight--;
}

static void publish(struct queue *vq, uint16_t head)
{
	vq->avail->ring[vq->avail_idx & (vq->size - 1)] = htole16(head);
	vq->avail_idx++;
	/* 2.7.13.3.1: the descriptors and the ring entry must be visible
	 * before the device can see the new idx. */
	__atomic_store_n(&vq->avail->idx, htole16(vq->avail_idx), __ATOMIC_RELEASE);
}

int vhu_submit(struct vhu_client *c, unsigned q, const struct vhu_req *r)
{
	struct queue *vq = get_queue(c, q);
	uint16_t ids[VHU_SEGS_MAX + 2], tids[VHU_SEGS_MAX + 2];
	struct req_area *a;
	uint64_t a_gpa;
	unsigned n;
	int m;

	if (!vq)
		return -EINVAL;
	if (vq->broken)
		return -EPROTO;
	if (r->ndata > VHU_SEGS_MAX) {
		log_err(c->name, "%u data buffers, at most %u", r->ndata, VHU_SEGS_MAX);
		return -EINVAL;
	}
	if (r->indirect && !(c->info.features & VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC))) {
		log_err(c->name, "indirect descriptors were not negotiated");
		return -ENOTSUP;
	}
	n = r->indirect ? 1 : r->ndata + 2;
	if (vq->nfree < n)
		return -ENOSPC;
	take_descs(vq, n, ids, r->priv, false);
	a = &vq->area[ids[0]];
	a_gpa = vq->area_gpa + (uint64_t)ids[0] * sizeof(*a);
	a->hdr = (struct virtio_blk_outhdr){ htole32(r->type), 0, htole64(r->sector) };
	a->status = 0xff;	/* a device that never writes it is caught */
	if (r->indirect) {
		for (unsigned i = 0; i < r->ndata + 2; i++)
			tids[i] = (uint16_t)i;
		m = vhu_blk_chain(a->table, tids, a_gpa + offsetof(struct req_area, hdr),
				  a_gpa + offsetof(struct req_area, status), r->type, r->data,
				  r->ndata);
		vq->desc[ids[0]] = (struct vring_desc){
			.addr = htole64(a_gpa + offsetof(struct req_area, table)),
			.len = htole32((uint32_t)m * sizeof(struct vring_desc)),
			.flags = htole16(VRING_DESC_F_INDIRECT),
		};
	} else {
		vhu_blk_chain(vq->desc, ids, a_gpa + offsetof(struct req_area, hdr),
			      a_gpa + offsetof(struct req_area, status), r->type, r->data, r->ndata);
	}
	publish(vq, ids[0]);
	return 0;
}

int vhu_kick(struct vhu_client *c, unsigned q)
{
	struct queue *vq = get_queue(c, q);
	uint64_t one = 1;
	bool need;

	if (!vq)
		return -EINVAL;
	if (vq->kicked_idx == vq->avail_idx)
		return 0;
	/* Our avail->idx store must be visible before we read the device's
	 * suppression fields, or both sides may decide the other will act
	 * (2.7.13.3.1, 2.7.13.4). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (c->info.features & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX))
		need = vhu_need_event(le16toh(__atomic_load_n(vq->avail_event, __ATOMIC_RELAXED)),
				      vq->avail_idx, vq->kicked_idx);
	else
		need = !(le16toh(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED)) &
			 VRING_USED_F_NO_NOTIFY);
	vq->kicked_idx = vq->avail_idx;
	if (need && write(vq->kick_fd, &one, sizeof(one)) != sizeof(one)) {
		int rc = -errno;

		log_err(c->name, "queue %u: cannot kick: %s", q, strerror(-rc));
		return rc;
	}
	return 0;
}

/* The device broke the ring rules: nothing it reports can be trusted. */
static int broken(struct queue *vq)
{
	vq->broken = true;
	return -EPROTO;
}

int vhu_reap(struct vhu_client *c, unsigned q, struct vhu_done *done, unsigned max)
{
	struct queue *vq = get_queue(c, q);
	uint16_t used_idx, pending;
	unsigned n = 0;

	if (!vq)
		return -EINVAL;
	if (vq->broken)
		return -EPROTO;
	/* Acquire: the entries and the status bytes the device wrote before
	 * it moved idx. */
	used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	pending = (uint16_t)(used_idx - vq->last_used);
	if (pending > vq->inflight) {
		log_err(c->name, "queue %u: used->idx moved %u entries with %u chains in flight", q,
			pending, vq->inflight);
		return broken(vq);
	}
	while (n < max && vq->last_used != used_idx) {
		const struct vring_used_elem *e = &vq->used->ring[vq->last_used & (vq->size - 1)];
		uint32_t id = le32toh(__atomic_load_n(&e->id, __ATOMIC_RELAXED));
		uint32_t len = le32toh(__atomic_load_n(&e->len, __ATOMIC_RELAXED));

		if (id >= vq->size || !vq->slots[id].busy) {
			log_err(c->name, "queue %u: used entry %u names descriptor %" PRIu32
				", which is not the head of a chain in flight", q, vq->last_used, id);
			return broken(vq);
		}
		done[n++] = (struct vhu_done){
			.priv = vq->slots[id].priv,
			.status = vq->slots[id].raw ? 0xff : vq->area[id].status,
			.used_len = len,
		};
		free_chain(vq, (uint16_t)id);
		vq->last_used++;
	}
	return (int)n;
}

unsigned vhu_inflight(const struct vhu_client *c, unsigned q)
{
	return c->started && q < c->nqueues ? c->queues[q].inflight : 0;
}

/* Before a sleep: asks for a notification on the very next used entry
 * of every queue (2.7.10), then looks again: an entry that landed before
 * used_event was visible may never be signalled. Returns 1 if there is
 * something to reap, else 0 with p[0..nqueues] (the call eventfds, then
 * the socket) to poll. */
static int wait_arm(struct vhu_client *c, struct pollfd *p)
{
	bool event_idx = c->info.features & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	unsigned n = c->nqueues;

	if (event_idx)
		for (unsigned q = 0; q < n; q++)
			__atomic_store_n(c->queues[q].used_event, htole16(c->queues[q].last_used),
					 __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (unsigned q = 0; q < n; q++) {
		const struct queue *vq = &c->queues[q];

		if (!vq->broken &&
		    le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE)) != vq->last_used)
			return 1;
		p[q] = (struct pollfd){ vq->call_fd, POLLIN, 0 };
	}
	/* The socket too: a back-end that hangs up must not leave us
	 * waiting for completions that will never come. */
	p[n] = (struct pollfd){ c->sock, POLLIN, 0 };
	return 0;
}

/* After the poll: empties the call eventfds that fired and checks the
 * socket. Returns 0 or -ECONNRESET, -EPROTO. */
static int wait_done(struct vhu_client *c, const struct pollfd *p)
{
	unsigned n = c->nqueues;

	for (unsigned q = 0; q < n; q++) {
		uint64_t v;

		if (p[q].revents & POLLIN && read(p[q].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_warn(c->name, "queue %u: reading the call eventfd: %s", q,
				 strerror(errno));
	}
	if (p[n].revents) {
		char b;
		ssize_t got = recv(c->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
			log_err(c->name, "back-end closed the connection");
			return -ECONNRESET;
		}
		if (got > 0) {
			log_err(c->name, "back-end sent a message nobody asked for");
			return -EPROTO;
		}
	}
	return 0;
}

int vhu_wait_many(struct vhu_client *const *cs, unsigned n, int timeout_ms)
{
	struct pollfd one[QUEUES_MAX + 1], *p = one;
	size_t total = 0, off = 0;
	int rc = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!cs[i]->started)
			return -EINVAL;
		total += cs[i]->nqueues + 1;
	}
	if (total > sizeof(one) / sizeof(one[0])) {
		p = calloc(total, sizeof(*p));
		if (!p)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < n && !rc; i++) {
		rc = wait_arm(cs[i], p + off);
		off += cs[i]->nqueues + 1;
	}
	if (!rc) {
		rc = poll(p, total, timeout_ms);
		if (rc < 0)
			rc = -errno;
		else if (rc > 0)
			rc = 1;
		off = 0;
		for (unsigned i = 0; i < n && rc > 0; i++) {
			int e = wait_done(cs[i], p + off);

			if (e)
				rc = e;
			off += cs[i]->nqueues + 1;
		}
	}
	if (p != one)
		free(p);
	return rc;
}

int vhu_wait(struct vhu_client *c, int timeout_ms)
{
	return vhu_wait_many(&c, 1, timeout_ms);
}

int vhu_run_one(struct vhu_client *c, unsigned q, uint32_t type, uint64_t sector,
		const struct vhu_buf *data, unsigned ndata, uint32_t *used_len)
{
	int token;
	struct vhu_req r = { .type = type, .sector = sector, .data = data, .ndata = ndata,
			     .priv = &token };
	struct vhu_done d;
	int rc;

	if (vhu_inflight(c, q)) {
		log_err(c->name, "queue %u is busy", q);
		return -EBUSY;
	}
	if ((rc = vhu_submit(c, q, &r)) || (rc = vhu_kick(c, q)))
		return rc;
	for (;;) {
		rc = vhu_reap(c, q, &d, 1);
		if (rc < 0)
			return rc;
		if (rc == 1)
			break;
		rc = vhu_wait(c, c->o.timeout_ms);
		if (rc == 0) {
			log_err(c->name, "queue %u: no completion within %d ms", q, c->o.timeout_ms);
			return -ETIMEDOUT;
		}
		if (rc < 0 && rc != -EINTR)
			return rc;
	}
	if (used_len)
		*used_len = d.used_len;
	return d.status;
}

int vhu_ring_view(const struct vhu_client *c, unsigned q, struct vhu_ring_view *out)
{
	const struct queue *vq;

	if (!c->started || q >= c->nqueues)
		return -EINVAL;
	vq = &c->queues[q];
	*out = (struct vhu_ring_view){
		.size = vq->size, .desc = vq->desc, .avail = vq->avail, .used = vq->used,
		.desc_gpa = vq->desc_gpa, .avail_gpa = vq->avail_gpa, .used_gpa = vq->used_gpa,
		.kick_fd = vq->kick_fd, .call_fd = vq->call_fd,
	};
	return 0;
}

int vhu_raw_take(struct vhu_client *c, unsigned q, unsigned n, uint16_t *ids, void *priv)
{
	struct queue *vq = get_queue(c, q);

	if (!vq || !n)
		return -EINVAL;
	if (vq->nfree < n)
		return -ENOSPC;
	take_descs(vq, n, ids, priv, true);
	return 0;
}

int vhu_raw_avail(struct vhu_client *c, unsigned q, uint16_t head)
{
	struct queue *vq = get_queue(c, q);

	if (!vq)
		return -EINVAL;
	publish(vq, head);
	return 0;
}

int vhu_raw_set_avail_idx(struct vhu_client *c, unsigned q, uint16_t idx)
{
	struct queue *vq = get_queue(c, q);

	if (!vq)
		return -EINVAL;
	vq->avail_idx = idx;
	__atomic_store_n(&vq->avail->idx, htole16(idx), __ATOMIC_RELEASE);
	return 0;
}
