/* One file descriptor in a message's ancillary data (SCM_RIGHTS), as the
 * vhost-user and control socket replies send it. */
#ifndef NVD_UTIL_SCM_H
#define NVD_UTIL_SCM_H

#include <string.h>
#include <sys/socket.h>

union scm_one_fd {
	char buf[CMSG_SPACE(sizeof(int))];
	struct cmsghdr align;
};

/* Makes mh carry fd, with ctl as its control buffer (kept alive until
 * sendmsg). */
static inline void scm_attach_fd(struct msghdr *mh, union scm_one_fd *ctl, int fd)
{
	struct cmsghdr *c;

	memset(ctl, 0, sizeof(*ctl));
	mh->msg_control = ctl->buf;
	mh->msg_controllen = sizeof(ctl->buf);
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
}

#endif
