#include "transport/vhu_msg.h"

#include <errno.h>
#include <stdbool.h>

const char *vhu_request_name(uint32_t r)
{
	static const char *const names[] = {
		[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
		[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
		[VHOST_USER_SET_OWNER] = "SET_OWNER",
		[VHOST_USER_RESET_OWNER] = "RESET_OWNER",
		[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
		[VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
		[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
		[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
		[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
		[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
		[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
		[VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
		[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
		[VHOST_USER_GET_CONFIG] = "GET_CONFIG",
		[VHOST_USER_SET_CONFIG] = "SET_CONFIG",
		[VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
		[VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
		[VHOST_USER_ADD_MEM_REG] = "ADD_MEM_REG",
		[VHOST_USER_REM_MEM_REG] = "REM_MEM_REG",
		[VHOST_USER_SET_STATUS] = "SET_STATUS",
		[VHOST_USER_GET_STATUS] = "GET_STATUS",
	};
	if (r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "unknown request";
}

static int bad(const char **why, const char *msg)
{
	*why = msg;
	return -EPROTO;
}

int vhu_msg_validate(const struct vhost_user_msg *m, size_t len, unsigned nfds, const char **why)
{
	const struct vhost_user_hdr *h = &m->hdr;
	size_t want = 0;
	unsigned want_fds = 0;
	bool fds_optional = false;

	*why = NULL;
	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return bad(why, "protocol version is not 1");
	if (h->flags & VHOST_USER_REPLY_MASK)
		return bad(why, "a front-end message marked as a reply");
	if (h->size != len || len > sizeof(m->payload))
		return bad(why, "payload size does not match the header");
	switch (h->request) {
	case VHOST_USER_GET_FEATURES:
	case VHOST_USER_SET_OWNER:
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_GET_PROTOCOL_FEATURES:
	case VHOST_USER_GET_QUEUE_NUM:
	case VHOST_USER_RESET_DEVICE:
	case VHOST_USER_GET_MAX_MEM_SLOTS:
	case VHOST_USER_GET_STATUS:
		/* No payload; some front ends send a zero u64 anyway. */
		if (len != 0 && len != sizeof(uint64_t))
			return bad(why, "unexpected payload");
		want = len;
		break;
	case VHOST_USER_SET_FEATURES:
	case VHOST_USER_SET_PROTOCOL_FEATURES:
	case VHOST_USER_SET_STATUS:
		want = sizeof(uint64_t);
		break;
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
		want = sizeof(struct vhost_user_vring_state);
		break;
	case VHOST_USER_SET_VRING_ADDR:
		want = sizeof(struct vhost_user_vring_addr);
		break;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		want = sizeof(uint64_t);
		if (len == want)
			want_fds = (m->payload.u64 & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
		break;
	case VHOST_USER_SET_MEM_TABLE:
		if (len < offsetof(struct vhost_user_mem_table, regions))
			return bad(why, "memory table too short");
		if (m->payload.memory.nregions > VHOST_USER_MEM_REGIONS_MAX)
			return bad(why, "more than 8 memory regions in SET_MEM_TABLE");
		want = offsetof(struct vhost_user_mem_table, regions) +
		       m->payload.memory.nregions * sizeof(struct vhost_user_mem_region);
		want_fds = m->payload.memory.nregions;
		break;
	case VHOST_USER_ADD_MEM_REG:
		want = sizeof(struct vhost_user_mem_region_msg);
		want_fds = 1;
		break;
	case VHOST_USER_REM_MEM_REG:
		want = sizeof(struct vhost_user_mem_region_msg);
		fds_optional = true;	/* QEMU sends the region's fd along */
		break;
	case VHOST_USER_GET_INFLIGHT_FD:
		want = sizeof(struct vhost_user_inflight);
		break;
	case VHOST_USER_SET_INFLIGHT_FD:
		want = sizeof(struct vhost_user_inflight);
		want_fds = 1;
		break;
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		if (len < VHOST_USER_CONFIG_HDR_SIZE)
			return bad(why, "config message too short");
		if (m->payload.config.size > VHOST_USER_CONFIG_SIZE_MAX ||
		    len != VHOST_USER_CONFIG_HDR_SIZE + m->payload.config.size)
			return bad(why, "config size does not match the payload");
		want = len;
		break;
	default:
		*why = "request not supported";
		return -ENOSYS;
	}
	if (len != want)
		return bad(why, "payload size wrong for the request");
	if (nfds != want_fds && !(fds_optional && nfds <= 1))
		return bad(why, "wrong number of file descriptors for the request");
	return 0;
}
