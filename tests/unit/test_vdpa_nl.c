/* The vdpa generic netlink builder and reply parser (transport/vdpa_nl.h):
 * requests byte by byte, and replies as the kernel writes them, then
 * broken one field at a time. */
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/vdpa.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "transport/vdpa_nl.h"

#define SEQ 77

struct msgbuf {
	uint8_t b[1024];
	size_t len;
};

static void put(struct msgbuf *m, const void *p, size_t n)
{
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

static void pad(struct msgbuf *m)
{
	while (m->len % 4)
		m->b[m->len++] = 0;
}

static void put_attr(struct msgbuf *m, uint16_t type, const void *data, size_t n)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + n), .nla_type = type };

	put(m, &a, sizeof(a));
	put(m, data, n);
	pad(m);
}

/* Starts a message; end_msg() fills in its length. Returns its offset. */
static size_t begin_msg(struct msgbuf *m, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq };
	size_t at = m->len;

	put(m, &h, sizeof(h));
	return at;
}

static void end_msg(struct msgbuf *m, size_t at)
{
	uint32_t len = (uint32_t)(m->len - at);

	memcpy(m->b + at, &len, sizeof(len));
}

/* An NLMSG_ERROR as the kernel writes it with NETLINK_CAP_ACK and
 * NETLINK_EXT_ACK: the error, the request's header, a message TLV. */
static void put_error(struct msgbuf *m, uint32_t seq, int err, const char *msg, bool capped)
{
	uint16_t flags = (capped ? NLM_F_CAPPED : 0) | (msg ? NLM_F_ACK_TLVS : 0);
	size_t at = begin_msg(m, NLMSG_ERROR, flags, seq);
	struct nlmsghdr req = { .nlmsg_len = NLMSG_HDRLEN + (capped ? 0 : 12), .nlmsg_seq = seq };
	uint8_t payload[12] = { 1, 2, 3 };

	put(m, &err, sizeof(err));
	put(m, &req, sizeof(req));
	if (!capped)
		put(m, payload, sizeof(payload));
	if (msg)
		put_attr(m, NLMSGERR_ATTR_MSG, msg, strlen(msg) + 1);
	end_msg(m, at);
}

static void test_build(void)
{
	const struct vdpa_nl_attr a[2] = {
		{ VDPA_ATTR_DEV_NAME, "vd0" },
		{ VDPA_ATTR_MGMTDEV_DEV_NAME, "vduse" },
	};
	uint8_t buf[128], small[40];
	struct nlmsghdr h;
	struct genlmsghdr g;
	struct nlattr na;
	int len = vdpa_nl_build(buf, sizeof(buf), 0x1d, VDPA_CMD_DEV_NEW, VDPA_GENL_VERSION, SEQ, a, 2);

	/* 16 + 4 + (4 + "vd0\0") + (4 + "vduse\0" + 2 padding) */
	CHECK_EQ_INT(len, 16 + 4 + 8 + 12);
	memcpy(&h, buf, sizeof(h));
	CHECK_EQ_INT(h.nlmsg_len, len);
	CHECK_EQ_INT(h.nlmsg_type, 0x1d);
	CHECK_EQ_INT(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
	CHECK_EQ_INT(h.nlmsg_seq, SEQ);
	CHECK_EQ_INT(h.nlmsg_pid, 0);
	memcpy(&g, buf + 16, sizeof(g));
	CHECK_EQ_INT(g.cmd, VDPA_CMD_DEV_NEW);
	CHECK_EQ_INT(g.version, VDPA_GENL_VERSION);
	CHECK_EQ_INT(g.reserved, 0);
	memcpy(&na, buf + 20, sizeof(na));
	CHECK_EQ_INT(na.nla_len, 8);
	CHECK_EQ_INT(na.nla_type, VDPA_ATTR_DEV_NAME);
	CHECK(memcmp(buf + 24, "vd0", 4) == 0);	/* with its NUL: vdpa reads nla_data */
	memcpy(&na, buf + 28, sizeof(na));
	CHECK_EQ_INT(na.nla_len, 10);
	CHECK_EQ_INT(na.nla_type, VDPA_ATTR_MGMTDEV_DEV_NAME);
	CHECK(memcmp(buf + 32, "vduse\0\0\0", 8) == 0);	/* padding is zero */

	CHECK_EQ_INT(vdpa_nl_build(small, 39, 0x1d, VDPA_CMD_DEV_NEW, 1, SEQ, a, 2), -EMSGSIZE);
	CHECK_EQ_INT(vdpa_nl_build(small, 40, 0x1d, VDPA_CMD_DEV_NEW, 1, SEQ, a, 2), 40);
	CHECK_EQ_INT(vdpa_nl_build(small, 19, 0x1d, VDPA_CMD_DEV_DEL, 1, SEQ, NULL, 0), -EMSGSIZE);
	CHECK_EQ_INT(vdpa_nl_build(small, 20, 0x1d, VDPA_CMD_DEV_DEL, 1, SEQ, NULL, 0), 20);
}

static void test_ack_and_errors(void)
{
	struct vdpa_nl_reply r;
	struct msgbuf m;

	memset(&m, 0, sizeof(m));
	put_error(&m, SEQ, 0, NULL, true);
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), 0);
	CHECK(r.acked);
	CHECK_EQ_INT(r.error, 0);
	CHECK_STREQ(r.msg, "");

	/* An ack of another request is not ours. */
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ + 1, &r), 0);
	CHECK(!r.acked);

	memset(&m, 0, sizeof(m));
	put_error(&m, SEQ, -EEXIST, "vdpa: Device name already exists", true);
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), 0);
	CHECK(r.acked);
	CHECK_EQ_INT(r.error, -EEXIST);
	CHECK_STREQ(r.msg, "vdpa: Device name already exists");

	/* Without NETLINK_CAP_ACK the request's payload comes back first. */
	memset(&m, 0, sizeof(m));
	put_error(&m, SEQ, -ENODEV, "Fail to find the specified mgmt device", false);
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), 0);
	CHECK_EQ_INT(r.error, -ENODEV);
	CHECK_STREQ(r.msg, "Fail to find the specified mgmt device");

	/* The kernel's message goes into logs: no control characters. */
	memset(&m, 0, sizeof(m));
	put_error(&m, SEQ, -EINVAL, "bad\nname\x1b", true);
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), 0);
	CHECK_STREQ(r.msg, "bad?name?");
}

static void test_family(void)
{
	struct genlmsghdr g = { .cmd = CTRL_CMD_NEWFAMILY, .version = 2 };
	uint16_t id = 0x23;
	struct vdpa_nl_reply r;
	struct msgbuf m;
	size_t at;

	/* NEWFAMILY then the ack, in one datagram. */
	memset(&m, 0, sizeof(m));
	at = begin_msg(&m, GENL_ID_CTRL, 0, SEQ);
	put(&m, &g, sizeof(g));
	put_attr(&m, CTRL_ATTR_FAMILY_NAME, "vdpa", 5);
	put_attr(&m, CTRL_ATTR_FAMILY_ID, &id, sizeof(id));
	end_msg(&m, at);
	put_error(&m, SEQ, 0, NULL, true);
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), 0);
	CHECK(r.acked);
	CHECK_EQ_INT(r.error, 0);
	CHECK_EQ_INT(r.family, 0x23);

	/* A family id attribute too short to hold one. */
	memset(&m, 0, sizeof(m));
	at = begin_msg(&m, GENL_ID_CTRL, 0, SEQ);
	put(&m, &g, sizeof(g));
	put_attr(&m, CTRL_ATTR_FAMILY_ID, &id, 1);
	end_msg(&m, at);
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);
}

static void test_malformed(void)
{
	struct vdpa_nl_reply r;
	struct msgbuf m, good;
	uint32_t len;
	int err;

	memset(&good, 0, sizeof(good));
	put_error(&good, SEQ, -EEXIST, "exists", true);

	/* A message longer than the datagram. */
	m = good;
	len = (uint32_t)m.len + 4;
	memcpy(m.b, &len, sizeof(len));
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);

	/* Shorter than its own header. */
	m = good;
	len = 8;
	memcpy(m.b, &len, sizeof(len));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);

	/* An error code that is no errno. */
	m = good;
	err = 5;
	memcpy(m.b + NLMSG_HDRLEN, &err, sizeof(err));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);
	err = -5000;
	memcpy(m.b + NLMSG_HDRLEN, &err, sizeof(err));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);

	/* An error without room for its code. */
	memset(&m, 0, sizeof(m));
	end_msg(&m, begin_msg(&m, NLMSG_ERROR, 0, SEQ));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);

	/* The message TLV claims more than the message holds. */
	m = good;
	{
		size_t tlv = NLMSG_HDRLEN + sizeof(struct nlmsgerr);
		uint16_t big = 200;

		memcpy(m.b + tlv, &big, sizeof(big));
	}
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);

	/* Uncapped, but the echoed request claims more than there is. */
	memset(&m, 0, sizeof(m));
	put_error(&m, SEQ, -EINVAL, "x", false);
	len = 4000;
	memcpy(m.b + NLMSG_HDRLEN + sizeof(int), &len, sizeof(len));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), -EPROTO);

	/* Trailing bytes too few for a header are not a message. */
	m = good;
	m.len += 8;
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(vdpa_nl_parse(m.b, m.len, SEQ, &r), 0);
	CHECK_EQ_INT(r.error, -EEXIST);

	/* Every truncation of a good reply is refused or not yet an ack. */
	for (size_t n = 0; n < good.len; n++) {
		memset(&r, 0, sizeof(r));
		err = vdpa_nl_parse(good.b, n, SEQ, &r);
		CHECK(err == -EPROTO || (err == 0 && !r.acked));
	}
}

int main(void)
{
	test_build();
	test_ack_and_errors();
	test_family();
	test_malformed();
	return check_report("vdpa_nl");
}
