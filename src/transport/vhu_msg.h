/* Validation of vhost-user messages from a front end, before any field is
 * used: pure, over the header, the payload length and the fd count. */
#ifndef NVD_TRANSPORT_VHU_MSG_H
#define NVD_TRANSPORT_VHU_MSG_H

#include <stddef.h>

#include "spec/vhost_user.h"

/* Returns 0 when the message is well-formed for its request, else -EPROTO
 * (version, reply flag, sizes, region counts, fd counts) or -ENOSYS (a
 * request nvme-drv does not serve), with *why naming what is wrong. */
int vhu_msg_validate(const struct vhost_user_msg *m, size_t payload_len, unsigned nfds,
		     const char **why);
const char *vhu_request_name(uint32_t request);

#endif
