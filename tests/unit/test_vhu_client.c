/* The vhost-user front-end: request chains and event-index arithmetic as
 * pure functions; then the client against a scripted back-end on a
 * socketpair (replies queued before each call, what the client sent read
 * back after), one broken reply or used ring entry at a time; with the
 * argument "qsd", against a real qemu-storage-daemon: memory regions added
 * and removed both ways (ADD/REM_MEM_REG and SET_MEM_TABLE), I/O through
 * them, and raw messages and descriptors a back-end must survive. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/vhu_client.h"
#include "util/log.h"

#include "check.h"

extern char **environ;

#define F(b) VIRTIO_BIT(b)

static void check_desc(const struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		       uint16_t next)
{
	CHECK_EQ_INT(le64toh(d->addr), addr);
	CHECK_EQ_INT(le32toh(d->len), len);
	CHECK_EQ_INT(le16toh(d->flags), flags);
	CHECK_EQ_INT(le16toh(d->next), next);
}

static void test_chain(void)
{
	struct vring_desc t[16];
	const uint16_t ids[] = { 5, 2, 9, 0, 7 };
	const struct vhu_buf data[3] = {
		{ NULL, 0x1000, 512 }, { NULL, 0x3000, 4096 }, { NULL, 0x9000, 7 },
	};

	memset(t, 0xee, sizeof(t));
	CHECK_EQ_INT(vhu_blk_chain(t, ids, 0x100, 0x110, VIRTIO_BLK_T_IN, data, 3), 5);
	check_desc(&t[5], 0x100, 16, VRING_DESC_F_NEXT, 2);
	check_desc(&t[2], 0x1000, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 9);
	check_desc(&t[9], 0x3000, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0);
	check_desc(&t[0], 0x9000, 7, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 7);
	check_desc(&t[7], 0x110, 1, VRING_DESC_F_WRITE, 0);
	CHECK_EQ_INT(t[1].addr, 0xeeeeeeeeeeeeeeeeull);	/* nothing else written */

	CHECK_EQ_INT(vhu_blk_chain(t, ids, 0x100, 0x110, VIRTIO_BLK_T_OUT, data, 1), 3);
	check_desc(&t[2], 0x1000, 512, VRING_DESC_F_NEXT, 9);
	check_desc(&t[9], 0x110, 1, VRING_DESC_F_WRITE, 0);

	CHECK_EQ_INT(vhu_blk_chain(t, ids, 0x200, 0x210, VIRTIO_BLK_T_FLUSH, NULL, 0), 2);
	check_desc(&t[5], 0x200, 16, VRING_DESC_F_NEXT, 2);
	check_desc(&t[2], 0x210, 1, VRING_DESC_F_WRITE, 0);

	CHECK_EQ_INT(vhu_blk_chain(t, ids, 0, 0, VIRTIO_BLK_T_IN, data, VHU_SEGS_MAX + 1), -E2BIG);
	CHECK(vhu_blk_data_is_in(VIRTIO_BLK_T_IN));
	CHECK(vhu_blk_data_is_in(VIRTIO_BLK_T_GET_ID));
	CHECK(!vhu_blk_data_is_in(VIRTIO_BLK_T_OUT));
	CHECK(!vhu_blk_data_is_in(VIRTIO_BLK_T_DISCARD));
	CHECK(!vhu_blk_data_is_in(VIRTIO_BLK_T_WRITE_ZEROES));
}

static void test_need_event(void)
{
	CHECK(vhu_need_event(0, 1, 0));		/* passed event 0 */
	CHECK(!vhu_need_event(5, 3, 0));	/* not yet at 5 */
	CHECK(vhu_need_event(5, 6, 3));		/* 3 -> 6 passes 5 */
	CHECK(!vhu_need_event(5, 5, 3));	/* reaching 5 is not passing it */
	CHECK(!vhu_need_event(2, 6, 3));	/* 2 was passed before */
	CHECK(vhu_need_event(0xffff, 1, 0xfffe));	/* across the wrap */
	CHECK(!vhu_need_event(7, 7, 7));	/* nothing moved */
}

/* The scripted back-end: its end of the socketpair. */
static int peer = -1;

static void put(uint32_t req, uint32_t flags, const void *payload, uint32_t size)
{
	struct vhost_user_msg m = { .hdr = { req, flags, size } };

	if (size)
		memcpy(&m.payload, payload, size);
	CHECK(write(peer, &m, sizeof(m.hdr) + size) == (ssize_t)(sizeof(m.hdr) + size));
}

static void put_u64(uint32_t req, uint64_t v)
{
	put(req, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, &v, sizeof(v));
}

/* Reads what the client sent next: returns its request code (0 if none),
 * fills *m, counts the fds that came with it and closes them. */
static uint32_t take(struct vhost_user_msg *m, unsigned *nfds)
{
	char ctl[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
	struct iovec iov = { &m->hdr, sizeof(m->hdr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(peer, &mh, MSG_DONTWAIT);

	*nfds = 0;
	if (n != (ssize_t)sizeof(m->hdr))
		return 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		unsigned k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

		for (unsigned i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
		*nfds += k;
	}
	CHECK(m->hdr.size <= sizeof(m->payload));
	if (m->hdr.size && read(peer, &m->payload, m->hdr.size) != (ssize_t)m->hdr.size)
		return 0;
	return m->hdr.request;
}

static struct vhu_client *open_pair(void)
{
	struct vhu_client *c = NULL;
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	if (peer >= 0)
		close(peer);
	peer = sv[1];
	CHECK_EQ_INT(vhu_adopt_fd(sv[0], &c), 0);
	return c;
}

static const struct vhu_opts fast = { .timeout_ms = 200 };

#define BASE_FEATURES (F(VIRTIO_F_VERSION_1) | F(VHOST_USER_F_PROTOCOL_FEATURES))

/* Queues the replies to a whole negotiation: REPLY_ACK decides whether
 * SET_OWNER is acknowledged. */
static void script_negotiate(uint64_t features, uint64_t proto, uint16_t num_queues)
{
	struct vhost_user_config cfg = { .size = sizeof(struct virtio_blk_config) };
	struct virtio_blk_config k = { .capacity = htole64(2048), .blk_size = htole32(4096),
				       .num_queues = htole16(num_queues),
				       .seg_max = htole32(32) };

	memcpy(cfg.payload, &k, sizeof(k));
	put_u64(VHOST_USER_GET_FEATURES, features);
	put_u64(VHOST_USER_GET_PROTOCOL_FEATURES, proto);
	if (proto & F(VHOST_USER_PROTOCOL_F_MQ))
		put_u64(VHOST_USER_GET_QUEUE_NUM, 4);
	if (proto & F(VHOST_USER_PROTOCOL_F_REPLY_ACK))
		put_u64(VHOST_USER_SET_OWNER, 0);
	put(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, &cfg,
	    VHOST_USER_CONFIG_HDR_SIZE + sizeof(k));
}

static void test_negotiate(void)
{
	const uint64_t features = BASE_FEATURES | F(VIRTIO_BLK_F_MQ) | F(VIRTIO_BLK_F_BLK_SIZE) |
				  F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_F_VERSION_1 + 1);
	const uint64_t proto = F(VHOST_USER_PROTOCOL_F_MQ) | F(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
			       F(VHOST_USER_PROTOCOL_F_CONFIG) | F(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
	static const uint32_t expect[] = {
		VHOST_USER_GET_FEATURES, VHOST_USER_GET_PROTOCOL_FEATURES,
		VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_GET_QUEUE_NUM, VHOST_USER_SET_OWNER,
		VHOST_USER_GET_CONFIG,
	};
	struct vhu_client *c = open_pair();
	const struct vhu_info *in;
	struct vhost_user_msg m;
	unsigned nfds;

	script_negotiate(features, proto, 2);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), 0);
	in = vhu_info(c);
	/* Unknown bits (33: ACCESS_PLATFORM) and LOG_SHMFD are not accepted. */
	CHECK_EQ_INT(in->features, features & ~F(VIRTIO_F_VERSION_1 + 1));
	CHECK_EQ_INT(in->protocol, proto & ~F(VHOST_USER_PROTOCOL_F_LOG_SHMFD));
	CHECK_EQ_INT(in->max_queues, 2);	/* config says 2, GET_QUEUE_NUM 4 */
	CHECK(in->have_config);
	CHECK_EQ_INT(in->config.capacity, 2048);
	CHECK_EQ_INT(in->config.blk_size, 4096);
	CHECK_EQ_INT(in->config.seg_max, 32);
	for (unsigned i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		CHECK_EQ_INT(take(&m, &nfds), expect[i]);
		CHECK_EQ_INT(m.hdr.flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
		CHECK(!(m.hdr.flags & VHOST_USER_REPLY_MASK));
		/* NEED_REPLY only where no reply exists, once REPLY_ACK is on. */
		CHECK_EQ_INT(!!(m.hdr.flags & VHOST_USER_NEED_REPLY_MASK),
			     expect[i] == VHOST_USER_SET_OWNER);
		if (expect[i] == VHOST_USER_SET_PROTOCOL_FEATURES)
			CHECK_EQ_INT(m.payload.u64, proto & ~F(VHOST_USER_PROTOCOL_F_LOG_SHMFD));
		if (expect[i] == VHOST_USER_GET_CONFIG) {
			CHECK_EQ_INT(m.hdr.size, VHOST_USER_CONFIG_HDR_SIZE + 60);
			CHECK_EQ_INT(m.payload.config.offset, 0);
			CHECK_EQ_INT(m.payload.config.size, 60);
		}
	}
	CHECK_EQ_INT(take(&m, &nfds), 0);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EINVAL);	/* only once */
	vhu_free(c);
}

/* One malformed reply to GET_FEATURES at a time. */
static void test_bad_replies(void)
{
	struct vhu_client *c;
	uint64_t v = BASE_FEATURES;

	c = open_pair();
	put_u64(VHOST_USER_GET_PROTOCOL_FEATURES, v);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EPROTO);	/* answers another request */
	vhu_free(c);
	c = open_pair();
	put(VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, &v, 8);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EPROTO);	/* no REPLY flag */
	vhu_free(c);
	c = open_pair();
	put(VHOST_USER_GET_FEATURES, 2 | VHOST_USER_REPLY_MASK, &v, 8);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EPROTO);	/* version 2 */
	vhu_free(c);
	c = open_pair();
	put(VHOST_USER_GET_FEATURES, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, &v, 4);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EPROTO);	/* 4 bytes for a u64 */
	vhu_free(c);
	c = open_pair();
	{
		struct vhost_user_hdr h = { VHOST_USER_GET_FEATURES,
					    VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, 100000 };
		CHECK(write(peer, &h, sizeof(h)) == sizeof(h));
	}
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EPROTO);	/* larger than any payload */
	vhu_free(c);
	c = open_pair();
	put_u64(VHOST_USER_GET_FEATURES, F(VHOST_USER_F_PROTOCOL_FEATURES));
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -ENOTSUP);	/* legacy only */
	vhu_free(c);
	c = open_pair();
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -ETIMEDOUT);	/* silence */
	vhu_free(c);
	c = open_pair();
	close(peer);
	peer = -1;
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EPIPE);	/* gone before we spoke */
	vhu_free(c);
	c = open_pair();
	shutdown(peer, SHUT_WR);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -ECONNRESET);	/* hangs up instead of answering */
	vhu_free(c);

	/* REPLY_ACK non-zero: the back-end refused SET_OWNER. */
	c = open_pair();
	put_u64(VHOST_USER_GET_FEATURES, BASE_FEATURES);
	put_u64(VHOST_USER_GET_PROTOCOL_FEATURES, F(VHOST_USER_PROTOCOL_F_REPLY_ACK));
	put_u64(VHOST_USER_SET_OWNER, 1);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EIO);
	vhu_free(c);
	/* GET_CONFIG's error is an empty reply; a reply for other bytes is wrong. */
	c = open_pair();
	put_u64(VHOST_USER_GET_FEATURES, BASE_FEATURES);
	put_u64(VHOST_USER_GET_PROTOCOL_FEATURES, F(VHOST_USER_PROTOCOL_F_CONFIG));
	put(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, NULL, 0);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EIO);
	vhu_free(c);
	c = open_pair();
	{
		struct vhost_user_config cfg = { .offset = 4, .size = 60 };

		put_u64(VHOST_USER_GET_FEATURES, BASE_FEATURES);
		put_u64(VHOST_USER_GET_PROTOCOL_FEATURES, F(VHOST_USER_PROTOCOL_F_CONFIG));
		put(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, &cfg, 72);
	}
	CHECK_EQ_INT(vhu_negotiate(c, &fast), -EPROTO);
	vhu_free(c);
}

/* Negotiates (REPLY_ACK on) and starts `queues` queues of `qsize`. */
static struct vhu_client *started(uint64_t extra_features, unsigned queues, unsigned qsize)
{
	const uint64_t proto = F(VHOST_USER_PROTOCOL_F_MQ) | F(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
			       F(VHOST_USER_PROTOCOL_F_CONFIG);
	struct vhu_client *c = open_pair();
	struct vhost_user_msg m;
	unsigned nfds, q, n = 0, fds = 0;

	script_negotiate(BASE_FEATURES | F(VIRTIO_BLK_F_MQ) | extra_features, proto, 4);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), 0);
	while (take(&m, &nfds))
		;
	put_u64(VHOST_USER_SET_FEATURES, 0);
	put_u64(VHOST_USER_SET_MEM_TABLE, 0);
	for (q = 0; q < queues; q++) {
		put_u64(VHOST_USER_SET_VRING_NUM, 0);
		put_u64(VHOST_USER_SET_VRING_BASE, 0);
		put_u64(VHOST_USER_SET_VRING_ADDR, 0);
		put_u64(VHOST_USER_SET_VRING_CALL, 0);
		put_u64(VHOST_USER_SET_VRING_KICK, 0);
	}
	for (q = 0; q < queues; q++)
		put_u64(VHOST_USER_SET_VRING_ENABLE, 0);
	CHECK_EQ_INT(vhu_start(c, queues, qsize, 1 << 20), 0);
	while (take(&m, &nfds)) {
		n++;
		fds += nfds;
		if (m.hdr.request == VHOST_USER_SET_MEM_TABLE) {
			CHECK_EQ_INT(m.payload.memory.nregions, 1);
			CHECK_EQ_INT(m.hdr.size, 8 + 32);
			CHECK_EQ_INT(m.payload.memory.regions[0].guest_phys_addr, VHU_GPA_BASE);
			CHECK_EQ_INT(m.payload.memory.regions[0].mmap_offset, 0);
		}
		if (m.hdr.request == VHOST_USER_SET_VRING_NUM)
			CHECK_EQ_INT(m.payload.state.num, qsize);
		if (m.hdr.request == VHOST_USER_SET_VRING_ENABLE)
			CHECK_EQ_INT(m.payload.state.num, 1);
	}
	CHECK_EQ_INT(n, 2 + 6 * queues);
	CHECK_EQ_INT(fds, 1 + 2 * queues);	/* the memfd, kick and call per queue */
	return c;
}

static uint8_t *va_of(const struct vhu_ring_view *v, uint64_t gpa)
{
	/* Region 0 is one mapping: guest and host offsets agree. */
	return (uint8_t *)v->desc + (gpa - v->desc_gpa);
}

/* Plays the device: completes avail entry `i` with the status byte `st`. */
static uint16_t complete(const struct vhu_ring_view *v, uint16_t i, uint16_t used_slot,
			 uint8_t st, uint32_t len)
{
	uint16_t head = le16toh(v->avail->ring[i & (v->size - 1)]), d = head;
	const struct vring_desc *t = v->desc;
	uint64_t one = 1;

	if (le16toh(t[d].flags) & VRING_DESC_F_INDIRECT) {
		t = (const void *)va_of(v, le64toh(t[d].addr));
		d = 0;
	}
	while (le16toh(t[d].flags) & VRING_DESC_F_NEXT)
		d = le16toh(t[d].next);
	*va_of(v, le64toh(t[d].addr)) = st;
	v->used->ring[used_slot & (v->size - 1)] = (struct vring_used_elem){ htole32(head),
									      htole32(len) };
	v->used->idx = htole16((uint16_t)(used_slot + 1));
	CHECK(write(v->call_fd, &one, sizeof(one)) == sizeof(one));
	return head;
}

static bool kicked(const struct vhu_ring_view *v)
{
	uint64_t n = 0;

	return read(v->kick_fd, &n, sizeof(n)) == sizeof(n) && n > 0;
}

static void test_io(void)
{
	struct vhu_client *c = started(F(VIRTIO_RING_F_INDIRECT_DESC), 2, 8);
	struct vhu_ring_view v, v1;
	struct vhu_buf b[2];
	struct vhu_done d[4];
	int tag[4];
	struct vhu_req r = { .type = VIRTIO_BLK_T_IN, .sector = 8, .data = b, .ndata = 2,
			     .priv = &tag[0] };
	uint16_t ids[3];

	CHECK_EQ_INT(vhu_ring_view(c, 0, &v), 0);
	CHECK_EQ_INT(vhu_ring_view(c, 1, &v1), 0);
	CHECK_EQ_INT(vhu_ring_view(c, 2, &v1) == -EINVAL, 1);
	CHECK_EQ_INT(vhu_ring_view(c, 1, &v1), 0);
	CHECK_EQ_INT(v.size, 8);
	CHECK_EQ_INT(v.desc_gpa >= VHU_GPA_BASE, 1);
	CHECK_EQ_INT(vhu_alloc(c, 0, 4096, 4096, &b[0]), 0);
	CHECK_EQ_INT(vhu_alloc(c, 0, 512, 512, &b[1]), 0);
	CHECK_EQ_INT(b[0].gpa & 4095, 0);
	CHECK(b[1].gpa >= b[0].gpa + 4096);
	CHECK_EQ_INT(vhu_alloc(c, 0, 2 << 20, 1, &b[1]), -ENOMEM);
	CHECK_EQ_INT(vhu_alloc(c, 1, 16, 1, &b[1]), -EINVAL);	/* no region 1 */
	CHECK_EQ_INT(vhu_alloc(c, 0, 512, 512, &b[1]), 0);

	/* Two chains of 4 fill a ring of 8. */
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	r.priv = &tag[1];
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	r.priv = &tag[2];
	CHECK_EQ_INT(vhu_submit(c, 0, &r), -ENOSPC);
	CHECK_EQ_INT(vhu_inflight(c, 0), 2);
	CHECK_EQ_INT(le16toh(v.avail->idx), 2);
	CHECK(!kicked(&v));
	CHECK_EQ_INT(vhu_kick(c, 0), 0);
	CHECK(kicked(&v));
	CHECK_EQ_INT(vhu_kick(c, 0), 0);	/* nothing new: no kick */
	CHECK(!kicked(&v));
	{
		uint16_t h = le16toh(v.avail->ring[0]);
		const struct virtio_blk_outhdr *hdr = (const void *)va_of(&v, le64toh(v.desc[h].addr));

		CHECK_EQ_INT(le32toh(hdr->type), VIRTIO_BLK_T_IN);
		CHECK_EQ_INT(le64toh(hdr->sector), 8);
		CHECK_EQ_INT(le32toh(v.desc[h].len), 16);
	}

	/* Nothing used yet: wait times out; EVENT_IDX not negotiated here. */
	CHECK_EQ_INT(vhu_wait(c, 10), 0);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), 0);
	/* Out of order: the second chain completes first. */
	complete(&v, 1, 0, VIRTIO_BLK_S_IOERR, 4097);
	CHECK_EQ_INT(vhu_wait(c, 1000), 1);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), 1);
	CHECK(d[0].priv == &tag[1]);
	CHECK_EQ_INT(d[0].status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ_INT(d[0].used_len, 4097);
	/* Its 4 descriptors are free again. */
	r.priv = &tag[2];
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	CHECK_EQ_INT(vhu_kick(c, 0), 0);
	CHECK(kicked(&v));
	complete(&v, 0, 1, VIRTIO_BLK_S_OK, 0);
	complete(&v, 2, 2, VIRTIO_BLK_S_OK, 1);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 1), 1);	/* max respected */
	CHECK(d[0].priv == &tag[0]);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), 1);
	CHECK(d[0].priv == &tag[2]);
	CHECK_EQ_INT(vhu_inflight(c, 0), 0);

	/* The device suppressed kicks (no EVENT_IDX: VRING_USED_F_NO_NOTIFY). */
	v.used->flags = htole16(VRING_USED_F_NO_NOTIFY);
	r.priv = &tag[0];
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	CHECK_EQ_INT(vhu_kick(c, 0), 0);
	CHECK(!kicked(&v));
	v.used->flags = 0;
	/* A status byte the device never wrote reads 0xff. */
	{
		uint16_t h = le16toh(v.avail->ring[3 & 7]);

		v.used->ring[3] = (struct vring_used_elem){ htole32(h), 0 };
		v.used->idx = htole16(4);
	}
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), 1);
	CHECK_EQ_INT(d[0].status, 0xff);

	/* Indirect: one descriptor pointing at a table of 4. */
	r.indirect = true;
	r.priv = &tag[3];
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	{
		uint16_t h = le16toh(v.avail->ring[4 & 7]);
		const struct vring_desc *t = (const void *)va_of(&v, le64toh(v.desc[h].addr));

		CHECK_EQ_INT(le16toh(v.desc[h].flags), VRING_DESC_F_INDIRECT);
		CHECK_EQ_INT(le32toh(v.desc[h].len), 4 * 16);
		CHECK_EQ_INT(le64toh(v.desc[h].addr) & 15, 0);
		check_desc(&t[1], b[0].gpa, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
		check_desc(&t[2], b[1].gpa, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
		CHECK_EQ_INT(le16toh(t[3].flags), VRING_DESC_F_WRITE);
	}
	complete(&v, 4, 4, VIRTIO_BLK_S_OK, 4609);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), 1);
	CHECK(d[0].priv == &tag[3]);
	CHECK_EQ_INT(d[0].status, VIRTIO_BLK_S_OK);
	r.indirect = false;

	/* Raw: any descriptors, reaped under ids[0]. */
	CHECK_EQ_INT(vhu_raw_take(c, 0, 3, ids, &tag[2]), 0);
	CHECK_EQ_INT(vhu_raw_avail(c, 0, ids[0]), 0);
	v.used->ring[5] = (struct vring_used_elem){ htole32(ids[0]), 0 };
	v.used->idx = htole16(6);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), 1);
	CHECK(d[0].priv == &tag[2]);
	CHECK_EQ_INT(d[0].status, 0xff);
	CHECK_EQ_INT(vhu_raw_take(c, 0, 9, ids, NULL), -ENOSPC);

	/* The device names a chain not in flight: the queue is finished. */
	v.used->ring[6] = (struct vring_used_elem){ htole32(ids[0]), 0 };
	v.used->idx = htole16(7);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), -EPROTO);
	CHECK_EQ_INT(vhu_submit(c, 0, &r), -EPROTO);
	CHECK_EQ_INT(vhu_reap(c, 0, d, 4), -EPROTO);

	/* Queue 1 still works; its device moves used->idx past what is in
	 * flight. */
	CHECK_EQ_INT(vhu_submit(c, 1, &r), 0);
	v1.used->idx = htole16(2);
	CHECK_EQ_INT(vhu_reap(c, 1, d, 4), -EPROTO);
	CHECK_EQ_INT(vhu_submit(c, 2, &r), -EINVAL);	/* no such queue */

	/* The back-end sends something unasked, then hangs up. */
	put_u64(VHOST_USER_GET_FEATURES, 0);
	CHECK_EQ_INT(vhu_wait(c, 1000), -EPROTO);
	close(peer);
	peer = -1;
	vhu_free(c);
	c = started(0, 1, 8);
	close(peer);
	peer = -1;
	CHECK_EQ_INT(vhu_wait(c, 1000), -ECONNRESET);
	vhu_free(c);
}

static void test_event_idx(void)
{
	struct vhu_client *c = started(F(VIRTIO_RING_F_EVENT_IDX), 1, 16);
	struct vhu_ring_view v;
	struct vhu_buf b;
	struct vhu_done d;
	struct vhu_req r = { .type = VIRTIO_BLK_T_OUT, .data = &b, .ndata = 1 };
	uint16_t *used_event, *avail_event;

	CHECK_EQ_INT(vhu_ring_view(c, 0, &v), 0);
	used_event = &v.avail->ring[16];
	avail_event = (uint16_t *)&v.used->ring[16];
	CHECK_EQ_INT(vhu_alloc(c, 0, 512, 512, &b), 0);
	/* avail_event 0: the first entry passes it; the next two do not
	 * reach 5; the third passes it. */
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	CHECK_EQ_INT(vhu_kick(c, 0), 0);
	CHECK(kicked(&v));
	*avail_event = htole16(3);
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	CHECK_EQ_INT(vhu_kick(c, 0), 0);	/* 1 -> 3 does not pass 3 */
	CHECK(!kicked(&v));
	CHECK_EQ_INT(vhu_submit(c, 0, &r), 0);
	CHECK_EQ_INT(vhu_kick(c, 0), 0);	/* 3 -> 4 passes 3 */
	CHECK(kicked(&v));
	/* Before sleeping the client asks for a call on the next used entry. */
	complete(&v, 0, 0, VIRTIO_BLK_S_OK, 1);
	CHECK_EQ_INT(vhu_reap(c, 0, &d, 1), 1);
	CHECK_EQ_INT(vhu_wait(c, 10), 1);	/* the call from complete() */
	CHECK_EQ_INT(vhu_wait(c, 10), 0);
	CHECK_EQ_INT(le16toh(*used_event), 1);
	/* An entry used without a call is still found: wait looks first. */
	v.used->ring[1] = (struct vring_used_elem){ v.avail->ring[1], htole32(1) };
	v.used->idx = htole16(2);
	CHECK_EQ_INT(vhu_wait(c, 10000), 1);
	CHECK_EQ_INT(vhu_reap(c, 0, &d, 1), 1);
	vhu_free(c);
}

/* vhu_wait_many: one thread waiting on several clients (nvme-drv-io
 * --clients): a call on any wakes it, an entry used on any is found
 * without one, a hang-up of any is reported. */
static void test_wait_many(void)
{
	struct vhu_client *cs[2];
	struct vhu_ring_view v;
	struct vhu_buf b;
	struct vhu_done d;
	struct vhu_req r = { .type = VIRTIO_BLK_T_IN, .data = &b, .ndata = 1 };
	int peer_a;

	cs[0] = started(0, 1, 8);
	peer_a = dup(peer);	/* open_pair closes the old peer */
	cs[1] = started(0, 2, 8);
	CHECK_EQ_INT(vhu_wait_many(cs, 2, 10), 0);
	CHECK_EQ_INT(vhu_ring_view(cs[1], 1, &v), 0);
	CHECK_EQ_INT(vhu_alloc(cs[1], 0, 512, 512, &b), 0);
	CHECK_EQ_INT(vhu_submit(cs[1], 1, &r), 0);
	complete(&v, 0, 0, VIRTIO_BLK_S_OK, 1);
	CHECK_EQ_INT(vhu_wait_many(cs, 2, 1000), 1);
	CHECK_EQ_INT(vhu_wait_many(cs, 2, 10), 1);	/* not reaped yet: seen, no call needed */
	CHECK_EQ_INT(vhu_reap(cs[1], 1, &d, 1), 1);
	CHECK_EQ_INT(vhu_wait_many(cs, 2, 10), 1);	/* the call from complete(), read now */
	CHECK_EQ_INT(vhu_wait_many(cs, 2, 10), 0);
	close(peer_a);
	CHECK_EQ_INT(vhu_wait_many(cs, 2, 1000), -ECONNRESET);
	vhu_free(cs[0]);
	close(peer);
	peer = -1;
	vhu_free(cs[1]);
}

static void test_args(void)
{
	struct vhu_client *c;

	CHECK_EQ_INT(vhu_connect("/nonexistent/socket", &c), -ENOENT);
	CHECK_EQ_INT(vhu_adopt_fd(1000, &c), -EBADF);
	CHECK_EQ_INT(vhu_adopt_fd(open("/dev/null", O_RDONLY | O_CLOEXEC), &c), -ENOTSOCK);
	{
		char longp[200];

		memset(longp, 'a', sizeof(longp) - 1);
		longp[sizeof(longp) - 1] = 0;
		CHECK_EQ_INT(vhu_connect(longp, &c), -ENAMETOOLONG);
	}
	c = open_pair();
	CHECK_EQ_INT(vhu_start(c, 1, 8, 0), -EINVAL);	/* not negotiated */
	CHECK_EQ_INT(vhu_submit(c, 0, &(struct vhu_req){ 0 }), -EINVAL);	/* not started */
	CHECK_EQ_INT(vhu_wait(c, 0), -EINVAL);
	script_negotiate(BASE_FEATURES | F(VIRTIO_BLK_F_MQ),
			 F(VHOST_USER_PROTOCOL_F_MQ) | F(VHOST_USER_PROTOCOL_F_CONFIG), 2);
	CHECK_EQ_INT(vhu_negotiate(c, &fast), 0);
	CHECK_EQ_INT(vhu_start(c, 3, 8, 0), -EINVAL);	/* more than max_queues */
	CHECK_EQ_INT(vhu_start(c, 0, 8, 0), -EINVAL);
	CHECK_EQ_INT(vhu_start(c, 1, 12, 0), -EINVAL);	/* not a power of 2 */
	vhu_free(c);
}

/* The "qsd" half: a real back-end. */

static char dir[] = "/tmp/test_vhu_client.XXXXXX";
static char sock_path[128], img_path[128];
static pid_t qsd_pid = -1;

static bool qsd_start(void)
{
	char blockdev[256], export[320];
	char *argv[] = { "/usr/bin/qemu-storage-daemon", "--blockdev", blockdev, "--export",
			 export, NULL };
	int fd;

	if (access(argv[0], X_OK)) {
		printf("SKIP: %s is not installed\n", argv[0]);
		return false;
	}
	if (!mkdtemp(dir))
		return false;
	snprintf(sock_path, sizeof(sock_path), "%s/vub.sock", dir);
	snprintf(img_path, sizeof(img_path), "%s/disk.img", dir);
	fd = open(img_path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 8 << 20) == 0);
	close(fd);
	snprintf(blockdev, sizeof(blockdev), "driver=file,node-name=f,filename=%s", img_path);
	snprintf(export, sizeof(export), "type=vhost-user-blk,id=e0,node-name=f,addr.type=unix,"
		 "addr.path=%s,writable=on,num-queues=2", sock_path);
	if (posix_spawn(&qsd_pid, argv[0], NULL, NULL, argv, environ)) {
		qsd_pid = -1;
		return false;
	}
	for (int i = 0; i < 100; i++) {
		if (access(sock_path, F_OK) == 0)
			return true;
		usleep(50000);
	}
	printf("qemu-storage-daemon made no socket in 5 s\n");
	return false;
}

static void qsd_stop(void)
{
	if (qsd_pid > 0) {
		kill(qsd_pid, SIGTERM);
		waitpid(qsd_pid, NULL, 0);
	}
	unlink(sock_path);
	unlink(img_path);
	rmdir(dir);
}

static struct vhu_client *qsd_client(uint64_t protocol_off)
{
	struct vhu_client *c = NULL;
	struct vhu_opts o = { .protocol_off = protocol_off, .timeout_ms = 5000 };

	CHECK_EQ_INT(vhu_connect(sock_path, &c), 0);
	if (!c)
		return NULL;
	CHECK_EQ_INT(vhu_negotiate(c, &o), 0);
	CHECK_EQ_INT(vhu_info(c)->max_queues, 2);
	CHECK_EQ_INT(vhu_info(c)->config.capacity, (8 << 20) / 512);
	CHECK_EQ_INT(vhu_start(c, 2, 64, 64 << 10), 0);
	return c;
}

/* Writes then reads back 8 KiB at `sector` through buffers in `region`. */
static void io_through(struct vhu_client *c, unsigned region, unsigned q, uint64_t sector,
		       uint8_t fill)
{
	struct vhu_buf b[2];
	uint8_t *p;

	if (vhu_alloc(c, region, 4096, 4096, &b[0]) || vhu_alloc(c, region, 4096, 4096, &b[1])) {
		CHECK(0);
		return;
	}
	memset(b[0].va, fill, 4096);
	memset(b[1].va, fill + 1, 4096);
	CHECK_EQ_INT(vhu_run_one(c, q, VIRTIO_BLK_T_OUT, sector, b, 2, NULL), VIRTIO_BLK_S_OK);
	memset(b[0].va, 0, 4096);
	memset(b[1].va, 0, 4096);
	CHECK_EQ_INT(vhu_run_one(c, q, VIRTIO_BLK_T_IN, sector, b, 2, NULL), VIRTIO_BLK_S_OK);
	p = b[0].va;
	CHECK(p[0] == fill && p[4095] == fill);
	p = b[1].va;
	CHECK(p[0] == (uint8_t)(fill + 1) && p[4095] == (uint8_t)(fill + 1));
}

static void test_qsd_regions(uint64_t protocol_off)
{
	struct vhu_client *c = qsd_client(protocol_off);
	unsigned r1, r2;

	if (!c)
		return;
	io_through(c, 0, 0, 0, 0x10);
	CHECK_EQ_INT(vhu_add_region(c, 1 << 20, 0x40000000, &r2), 0);
	CHECK_EQ_INT(vhu_add_region(c, 1 << 20, 0, &r1), 0);
	CHECK_EQ_INT(vhu_add_region(c, 4096, 0x40000000 + 4096, &r1), -EINVAL);	/* overlaps */
	CHECK_EQ_INT(r2, 1);
	CHECK_EQ_INT(r1, 2);
	io_through(c, r1, 1, 64, 0x20);
	io_through(c, r2, 0, 128, 0x30);
	CHECK_EQ_INT(vhu_remove_region(c, r1), 0);
	CHECK_EQ_INT(vhu_remove_region(c, r1), -EINVAL);
	CHECK_EQ_INT(vhu_remove_region(c, 0), -EINVAL);
	io_through(c, r2, 1, 192, 0x40);
	io_through(c, 0, 0, 256, 0x50);
	vhu_free(c);
}

/* A chain whose data buffer lies outside every region: a back-end may
 * fail the request or drop the connection, but must answer one way. */
static void test_qsd_hostile(void)
{
	struct vhu_client *c = qsd_client(0);
	struct vhost_user_hdr h = { 99, VHOST_USER_VERSION, 0 };
	struct vhu_done d;
	struct vhu_ring_view v;
	struct vhu_buf hs;
	uint16_t ids[3];
	int rc;

	if (!c)
		return;
	CHECK_EQ_INT(vhu_ring_view(c, 0, &v), 0);
	CHECK_EQ_INT(vhu_alloc(c, 0, 32, 16, &hs), 0);
	((struct virtio_blk_outhdr *)hs.va)->type = htole32(VIRTIO_BLK_T_IN);
	CHECK_EQ_INT(vhu_raw_take(c, 0, 3, ids, &d), 0);
	v.desc[ids[0]] = (struct vring_desc){ htole64(hs.gpa), htole32(16),
					      htole16(VRING_DESC_F_NEXT), htole16(ids[1]) };
	v.desc[ids[1]] = (struct vring_desc){ htole64(0x7000000000ull), htole32(4096),
					      htole16(VRING_DESC_F_NEXT | VRING_DESC_F_WRITE),
					      htole16(ids[2]) };
	v.desc[ids[2]] = (struct vring_desc){ htole64(hs.gpa + 16), htole32(1),
					      htole16(VRING_DESC_F_WRITE), 0 };
	CHECK_EQ_INT(vhu_raw_avail(c, 0, ids[0]), 0);
	CHECK_EQ_INT(vhu_kick(c, 0), 0);
	rc = vhu_wait(c, 5000);
	if (rc == 1)
		rc = vhu_reap(c, 0, &d, 1);
	printf("qsd on a buffer outside memory: %d (%s)\n", rc, rc < 0 ? strerror(-rc) : "reaped");
	CHECK(rc == 1 || rc == -ECONNRESET || rc == 0);
	vhu_free(c);

	/* An unknown request code, then a SET_VRING_NUM whose size field
	 * lies: the client reports whatever comes back without crashing. */
	c = qsd_client(0);
	if (!c)
		return;
	CHECK_EQ_INT(vhu_send_raw(c, &h, NULL, 0, NULL, 0), 0);
	h = (struct vhost_user_hdr){ VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, 2 };
	/* qsd may already have hung up on the unknown request: a send that
	 * fails cleanly is as good an answer as one that goes through. */
	rc = vhu_send_raw(c, &h, "\x01\x00", 2, NULL, 0);
	CHECK(rc == 0 || rc == -ECONNRESET || rc == -EPIPE);
	{
		struct vhost_user_msg m;

		rc = vhu_recv_raw(c, &m, 1000);
		printf("qsd on unknown request 99 and a short SET_VRING_NUM: %d\n", rc);
		CHECK(rc == -ETIMEDOUT || rc == -ECONNRESET || rc >= 0);
	}
	vhu_free(c);
	/* The daemon still serves a new connection. */
	c = qsd_client(0);
	if (c)
		io_through(c, 0, 1, 512, 0x60);
	vhu_free(c);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);	/* only the peer's own writes could raise it */
	log_set_level(getenv("VHU_TEST_VERBOSE") ? LOG_TRACE : LOG_QUIET);
	if (argc > 1 && strcmp(argv[1], "qsd") == 0) {
		if (!qsd_start()) {
			qsd_stop();
			return CHECK_SKIP;
		}
		test_qsd_regions(0);	/* ADD_MEM_REG / REM_MEM_REG */
		test_qsd_regions(F(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
				 F(VHOST_USER_PROTOCOL_F_REPLY_ACK));	/* SET_MEM_TABLE, synced */
		test_qsd_hostile();
		qsd_stop();
		return check_report("vhu_client-qsd");
	}
	if (argc > 1) {
		printf("unknown argument %s\n", argv[1]);
		return 1;
	}
	test_chain();
	test_need_event();
	test_negotiate();
	test_bad_replies();
	test_args();
	test_io();
	test_event_idx();
	test_wait_many();
	if (peer >= 0)
		close(peer);
	return check_report("vhu_client");
}
