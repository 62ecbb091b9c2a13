/* libFuzzer entry for vhost-user message validation: the input is what a
 * front end sends on the socket.
 *
 *   byte 0   how many file descriptors came with it (SCM_RIGHTS), modulo
 *            9: on_conn keeps up to VHOST_USER_MAX_FDS and closes the rest
 *   rest     the 12-byte header, then the payload; bytes the header's size
 *            claims but the input lacks are zeros
 *
 * The message sits in a heap block of exactly 12 + size bytes, so ASan
 * reports any field read before its length was checked: the server's own
 * buffer is larger and holds the previous message's bytes there. What the
 * handlers rely on after a 0 is checked too: region and fd counts agree,
 * sizes match the request. */
#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "transport/vhu_msg.h"

static void check_accepted(const struct vhost_user_msg *m, size_t len, unsigned nfds)
{
	uint32_t r = m->hdr.request;

	FUZZ_ASSERT(len == m->hdr.size && len <= sizeof(m->payload));
	FUZZ_ASSERT(nfds <= VHOST_USER_MAX_FDS);
	FUZZ_ASSERT(strcmp(vhu_request_name(r), "unknown request") != 0);
	switch (r) {
	case VHOST_USER_SET_MEM_TABLE:
		FUZZ_ASSERT(m->payload.memory.nregions <= VHOST_USER_MEM_REGIONS_MAX);
		FUZZ_ASSERT(nfds == m->payload.memory.nregions);
		FUZZ_ASSERT(len == offsetof(struct vhost_user_mem_table, regions) +
				   nfds * sizeof(struct vhost_user_mem_region));
		break;
	case VHOST_USER_ADD_MEM_REG:
		FUZZ_ASSERT(len == sizeof(struct vhost_user_mem_region_msg) && nfds == 1);
		break;
	case VHOST_USER_REM_MEM_REG:
		FUZZ_ASSERT(len == sizeof(struct vhost_user_mem_region_msg) && nfds <= 1);
		break;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		FUZZ_ASSERT(len == sizeof(uint64_t));
		FUZZ_ASSERT(nfds == ((m->payload.u64 & VHOST_USER_VRING_NOFD_MASK) ? 0u : 1u));
		break;
	case VHOST_USER_SET_VRING_ADDR:
		FUZZ_ASSERT(len == sizeof(struct vhost_user_vring_addr) && nfds == 0);
		break;
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
		FUZZ_ASSERT(len == sizeof(struct vhost_user_vring_state) && nfds == 0);
		break;
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		FUZZ_ASSERT(len >= VHOST_USER_CONFIG_HDR_SIZE && nfds == 0);
		FUZZ_ASSERT(m->payload.config.size <= VHOST_USER_CONFIG_SIZE_MAX);
		FUZZ_ASSERT(len == VHOST_USER_CONFIG_HDR_SIZE + m->payload.config.size);
		break;
	default:
		/* Requests with a u64 or nothing, and never a descriptor. */
		FUZZ_ASSERT(len <= sizeof(uint64_t) && nfds == 0);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_user_hdr h;
	struct vhost_user_msg *m;
	const char *why = "unset";
	unsigned nfds;
	size_t have;
	int rc;

	if (size < 1 + sizeof(h))
		return 0;
	nfds = data[0] % (VHOST_USER_MAX_FDS + 1);
	memcpy(&h, data + 1, sizeof(h));
	/* on_conn refuses a header claiming more before any validation. */
	if (h.size > sizeof(m->payload))
		return 0;
	m = calloc(1, sizeof(h) + h.size);
	if (!m)
		return 0;
	have = size - 1 < sizeof(h) + h.size ? size - 1 : sizeof(h) + h.size;
	memcpy(m, data + 1, have);
	rc = vhu_msg_validate(m, h.size, nfds, &why);
	if (rc == 0) {
		FUZZ_ASSERT(why == NULL);
		check_accepted(m, h.size, nfds);
	} else {
		FUZZ_ASSERT(rc == -EPROTO || rc == -ENOSYS);
		FUZZ_ASSERT(why != NULL && why[0] != '\0' && !fuzz_has_control(why));
	}
	FUZZ_ASSERT(vhu_request_name(h.request) != NULL);
	free(m);
	return 0;
}
