#include "transport/vdpa_nl.h"

#include <errno.h>
#include <limits.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/vdpa.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The kernel answers a family lookup at once; only a wedged kernel would
 * make us wait this long. */
#define FAMILY_TIMEOUT_S 5

_Static_assert(NLMSG_HDRLEN == 16 && GENL_HDRLEN == 4 && NLA_HDRLEN == 4,
	       "netlink header sizes (linux/netlink.h, linux/genetlink.h)");
_Static_assert(sizeof(struct nlmsgerr) == 20, "struct nlmsgerr: error + the request's header");

static atomic_uint next_seq = 1;

int vdpa_nl_build(void *buf, size_t cap, uint16_t family, uint8_t cmd, uint8_t version,
		  uint32_t seq, const struct vdpa_nl_attr *attrs, unsigned nattrs)
{
	uint8_t *p = buf;
	size_t len = NLMSG_HDRLEN + GENL_HDRLEN;
	struct nlmsghdr nh = { 0 };
	struct genlmsghdr gh = { .cmd = cmd, .version = version };

	if (cap > INT_MAX)
		cap = INT_MAX;
	if (cap < len)
		return -EMSGSIZE;
	memset(p, 0, len);
	for (unsigned i = 0; i < nattrs; i++) {
		size_t slen = strlen(attrs[i].str) + 1;
		struct nlattr na;

		if (slen > UINT16_MAX - NLA_HDRLEN || NLA_ALIGN(NLA_HDRLEN + slen) > cap - len)
			return -EMSGSIZE;
		na.nla_len = (uint16_t)(NLA_HDRLEN + slen);
		na.nla_type = attrs[i].type;
		memcpy(p + len, &na, sizeof(na));
		memcpy(p + len + NLA_HDRLEN, attrs[i].str, slen);
		memset(p + len + na.nla_len, 0, NLA_ALIGN(na.nla_len) - na.nla_len);
		len += NLA_ALIGN(na.nla_len);
	}
	nh.nlmsg_len = (uint32_t)len;
	nh.nlmsg_type = family;
	nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nh.nlmsg_seq = seq;
	memcpy(p, &nh, sizeof(nh));
	memcpy(p + NLMSG_HDRLEN, &gh, sizeof(gh));
	return (int)len;
}

/* The next attribute of [p, p + len) at *off. Returns 1 (one taken), 0
 * (none left) or -EPROTO (its length runs past the container). */
static int attr_next(const uint8_t *p, size_t len, size_t *off, uint16_t *type,
		     const uint8_t **data, size_t *dlen)
{
	struct nlattr na;
	size_t step;

	if (len - *off < NLA_HDRLEN)
		return 0;	/* the end, or alignment padding */
	memcpy(&na, p + *off, sizeof(na));
	if (na.nla_len < NLA_HDRLEN || na.nla_len > len - *off)
		return -EPROTO;
	*type = na.nla_type & NLA_TYPE_MASK;
	*data = p + *off + NLA_HDRLEN;
	*dlen = na.nla_len - NLA_HDRLEN;
	step = NLA_ALIGN(na.nla_len);
	*off = step > len - *off ? len : *off + step;
	return 1;
}

/* The kernel's message goes into log lines: printable ASCII only. */
static void take_msg(struct vdpa_nl_reply *r, const uint8_t *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && s[i] && o < sizeof(r->msg) - 1; i++)
		r->msg[o++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	r->msg[o] = '\0';
}

/* NLMSG_ERROR: an int error code, the request's header (its payload too
 * unless NLM_F_CAPPED), then with NLM_F_ACK_TLVS the extended ack
 * attributes (Documentation/userspace-api/netlink/intro.rst). */
static int parse_error(const uint8_t *pl, size_t plen, uint16_t flags, struct vdpa_nl_reply *r)
{
	struct nlmsgerr e;
	size_t off;
	uint16_t type;
	const uint8_t *data;
	size_t dlen;
	int rc;

	if (plen < sizeof(e.error))
		return -EPROTO;
	memcpy(&e.error, pl, sizeof(e.error));
	if (e.error > 0 || e.error < -4095)
		return -EPROTO;
	r->acked = true;
	r->error = e.error;
	if (!(flags & NLM_F_ACK_TLVS))
		return 0;
	if (plen < sizeof(e))
		return -EPROTO;
	memcpy(&e, pl, sizeof(e));
	off = sizeof(e);
	if (!(flags & NLM_F_CAPPED)) {
		if (e.msg.nlmsg_len < NLMSG_HDRLEN || e.msg.nlmsg_len - NLMSG_HDRLEN > plen - off)
			return -EPROTO;
		off += e.msg.nlmsg_len - NLMSG_HDRLEN;
	}
	off = NLMSG_ALIGN(off);
	if (off > plen)
		return -EPROTO;
	while ((rc = attr_next(pl, plen, &off, &type, &data, &dlen)) == 1)
		if (type == NLMSGERR_ATTR_MSG)
			take_msg(r, data, dlen);
	return rc;
}

static int parse_family(const uint8_t *pl, size_t plen, struct vdpa_nl_reply *r)
{
	struct genlmsghdr gh;
	size_t off = GENL_HDRLEN;
	uint16_t type, id;
	const uint8_t *data;
	size_t dlen;
	int rc;

	if (plen < GENL_HDRLEN)
		return -EPROTO;
	memcpy(&gh, pl, sizeof(gh));
	if (gh.cmd != CTRL_CMD_NEWFAMILY)
		return 0;
	while ((rc = attr_next(pl, plen, &off, &type, &data, &dlen)) == 1) {
		if (type != CTRL_ATTR_FAMILY_ID)
			continue;
		if (dlen < sizeof(id))
			return -EPROTO;
		memcpy(&id, data, sizeof(id));
		r->family = id;
	}
	return rc;
}

int vdpa_nl_parse(const void *buf, size_t len, uint32_t seq, struct vdpa_nl_reply *r)
{
	const uint8_t *p = buf;
	size_t off = 0;

	while (len - off >= NLMSG_HDRLEN) {
		struct nlmsghdr nh;
		const uint8_t *pl;
		size_t plen, step;
		int rc = 0;

		memcpy(&nh, p + off, sizeof(nh));
		if (nh.nlmsg_len < NLMSG_HDRLEN || nh.nlmsg_len > len - off)
			return -EPROTO;
		pl = p + off + NLMSG_HDRLEN;
		plen = nh.nlmsg_len - NLMSG_HDRLEN;
		if (nh.nlmsg_seq == seq) {
			if (nh.nlmsg_type == NLMSG_ERROR)
				rc = parse_error(pl, plen, nh.nlmsg_flags, r);
			else if (nh.nlmsg_type == GENL_ID_CTRL)
				rc = parse_family(pl, plen, r);
		}
		if (rc)
			return rc;
		step = NLMSG_ALIGN(nh.nlmsg_len);
		if (step >= len - off)
			break;
		off += step;
	}
	return 0;
}

int vdpa_nl_socket(void)
{
	int one = 1;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);

	if (fd < 0)
		return -errno;
	/* Best effort: they only add the kernel's reason to an error and keep
	 * acks short. */
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	return fd;
}

/* Sends one request and reads replies until its ack. Returns 0 (r holds
 * the outcome) or a negative errno of the socket or -EPROTO. */
static int transact(int fd, const void *req, size_t len, uint32_t seq, struct vdpa_nl_reply *r)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	uint8_t buf[VDPA_NL_BUF];

	memset(r, 0, sizeof(*r));
	if (sendto(fd, req, len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) != (ssize_t)len)
		return -errno;
	while (!r->acked) {
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &fl);
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if ((size_t)n > sizeof(buf))
			return -EMSGSIZE;
		/* Only the kernel (port 0) speaks for the family. */
		if (fl != sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0)
			continue;
		rc = vdpa_nl_parse(buf, (size_t)n, seq, r);
		if (rc)
			return rc;
	}
	return 0;
}

/* Runs on a helper thread too: strerror_r (GNU), not strerror. */
static void say(char *why, size_t whylen, const struct vdpa_nl_reply *r, int err)
{
	char buf[64];

	if (whylen)
		snprintf(why, whylen, "%s", r && r->msg[0] ? r->msg : strerror_r(-err, buf, sizeof(buf)));
}

int vdpa_nl_family(int fd, uint16_t *family, char *why, size_t whylen)
{
	const struct vdpa_nl_attr a = { CTRL_ATTR_FAMILY_NAME, VDPA_GENL_NAME };
	struct timeval tv = { .tv_sec = FAMILY_TIMEOUT_S };
	uint32_t seq = atomic_fetch_add(&next_seq, 1);
	struct vdpa_nl_reply r;
	uint8_t req[256];
	int len = vdpa_nl_build(req, sizeof(req), GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, seq, &a, 1);
	int rc;

	if (len < 0) {
		say(why, whylen, NULL, len);
		return len;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = transact(fd, req, (size_t)len, seq, &r);
	if (!rc && r.error)
		rc = r.error;
	if (!rc && !r.family)
		rc = -EPROTO;	/* acked without saying which id */
	if (rc) {
		if (rc == -ENOENT)
			snprintf(why, whylen, "no \"vdpa\" generic netlink family (modprobe vdpa)");
		else
			say(why, whylen, &r, rc);
		return rc;
	}
	*family = r.family;
	return 0;
}

int vdpa_nl_dev(int fd, uint16_t family, const char *name, const char *mgmtdev, char *why,
		size_t whylen)
{
	const struct vdpa_nl_attr a[2] = {
		{ VDPA_ATTR_DEV_NAME, name },
		{ VDPA_ATTR_MGMTDEV_DEV_NAME, mgmtdev },
	};
	uint32_t seq = atomic_fetch_add(&next_seq, 1);
	struct vdpa_nl_reply r;
	uint8_t req[512];
	int len = vdpa_nl_build(req, sizeof(req), family, mgmtdev ? VDPA_CMD_DEV_NEW : VDPA_CMD_DEV_DEL,
				VDPA_GENL_VERSION, seq, a, mgmtdev ? 2 : 1);
	int rc;

	if (len < 0) {
		say(why, whylen, NULL, len);
		return len;
	}
	rc = transact(fd, req, (size_t)len, seq, &r);
	if (!rc)
		rc = r.error;
	if (rc)
		say(why, whylen, &r, rc);
	return rc;
}
