/* The vdpa bus's generic netlink family (include/uapi/linux/vdpa.h, the
 * "vdpa" family iproute2's `vdpa dev add/del` speaks): just enough to put a
 * VDUSE device on the bus and take it off again.
 *
 * The message builder and the reply parser are pure functions over byte
 * buffers; vdpa_nl_family() and vdpa_nl_dev() do blocking socket I/O. A
 * DEV_NEW or DEV_DEL does not return before the kernel's virtio driver has
 * probed or removed the device, and probing talks to the device's user
 * space back end: a back end must not call vdpa_nl_dev() for its own device
 * from the thread that answers the device (see transport/vduse.c). */
#ifndef NVD_TRANSPORT_VDPA_NL_H
#define NVD_TRANSPORT_VDPA_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Big enough for any request built here and any reply we read. */
#define VDPA_NL_BUF 8192

/* A string attribute (sent with its NUL, as vdpa reads it with nla_data). */
struct vdpa_nl_attr {
	uint16_t type;
	const char *str;
};

/* What one transaction's replies said. */
struct vdpa_nl_reply {
	bool acked;		/* an NLMSG_ERROR: `error` is its code */
	int error;		/* 0 or a negative errno */
	char msg[128];		/* the kernel's extended ack message, or "" */
	uint16_t family;	/* CTRL_ATTR_FAMILY_ID of a NEWFAMILY reply, or 0 */
};

/* Writes a generic netlink request (NLM_F_REQUEST | NLM_F_ACK) into buf.
 * Returns its length, or -EMSGSIZE when it does not fit cap. */
int vdpa_nl_build(void *buf, size_t cap, uint16_t family, uint8_t cmd, uint8_t version,
		  uint32_t seq, const struct vdpa_nl_attr *attrs, unsigned nattrs);

/* Takes the messages of one received datagram into *r, ignoring those of
 * other sequence numbers. Returns 0, or -EPROTO for a message or
 * attribute whose length runs past its container. */
int vdpa_nl_parse(const void *buf, size_t len, uint32_t seq, struct vdpa_nl_reply *r);

/* A generic netlink socket that asks for extended acks. Returns the fd or
 * a negative errno. */
int vdpa_nl_socket(void);
/* Looks the "vdpa" family up. Returns 0 with *family set, or a negative
 * errno (-ENOENT: the vdpa module is not loaded) with a reason in why. */
int vdpa_nl_family(int fd, uint16_t *family, char *why, size_t whylen);
/* VDPA_CMD_DEV_NEW (mgmtdev given) or VDPA_CMD_DEV_DEL (mgmtdev NULL) for
 * the device `name`. Blocks until the kernel acknowledges. Returns 0 or the
 * kernel's negative errno, with its message (if any) in why. */
int vdpa_nl_dev(int fd, uint16_t family, const char *name, const char *mgmtdev, char *why,
		size_t whylen);

#endif
