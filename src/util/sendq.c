#include "util/sendq.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/scm.h"

struct sendq_msg {
	struct sendq_msg *next;
	int fd;			/* to send with it, or -1 */
	size_t len;
	char data[];
};

void sendq_init(struct sendq *q, size_t max)
{
	*q = (struct sendq){ .max = max };
}

static void msg_free(struct sendq_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}

void sendq_clear(struct sendq *q)
{
	while (q->head) {
		struct sendq_msg *m = q->head;

		q->head = m->next;
		msg_free(m);
	}
	q->tail = NULL;
	q->bytes = 0;
}

bool sendq_room(const struct sendq *q, size_t len, size_t nmsgs)
{
	size_t cost;

	if (sendq_empty(q))
		return true;
	if (nmsgs > (SIZE_MAX - len) / SENDQ_MSG_OVERHEAD)
		return false;
	cost = len + nmsgs * SENDQ_MSG_OVERHEAD;
	return q->bytes <= q->max && cost <= q->max - q->bytes;
}

int sendq_push(struct sendq *q, const void *msg, size_t len, int fd)
{
	struct sendq_msg *m = malloc(sizeof(*m) + len);

	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = len;
	m->fd = -1;
	if (fd >= 0) {
		m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (m->fd < 0) {
			int rc = -errno;

			free(m);
			return rc;
		}
	}
	memcpy(m->data, msg, len);
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->bytes += len + SENDQ_MSG_OVERHEAD + (m->fd >= 0 ? SENDQ_FD_COST : 0);
	return 0;
}

int sendq_flush(struct sendq *q, int sock, unsigned *sent)
{
	unsigned n = 0;
	int rc = 0;

	while (q->head) {
		struct sendq_msg *m = q->head;
		struct iovec iov = { m->data, m->len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		union scm_one_fd ctl;

		if (m->fd >= 0)
			scm_attach_fd(&mh, &ctl, m->fd);
		if (sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			if (errno == EINTR)
				continue;
			rc = errno == EWOULDBLOCK ? -EAGAIN : -errno;
			break;
		}
		q->head = m->next;
		if (!q->head)
			q->tail = NULL;
		q->bytes -= m->len + SENDQ_MSG_OVERHEAD + (m->fd >= 0 ? SENDQ_FD_COST : 0);
		msg_free(m);
		n++;
	}
	if (sent)
		*sent = n;
	return rc;
}
