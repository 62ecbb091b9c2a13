/* A bounded queue of outgoing messages for a non-blocking SOCK_SEQPACKET
 * socket (the control socket's connections): what the peer's socket
 * buffer cannot take now waits here, in order, and goes out when the
 * socket is writable again (EPOLLOUT), so that a slow reader never blocks
 * the event loop.
 *
 * The bound keeps a peer that sends requests but never reads the replies
 * from growing the server's memory: sendq_room says whether a reply of a
 * given size may still be queued, and the caller drops the connection
 * when it may not. An empty queue always takes one reply, however long:
 * its size is bounded by what it reports (the server's own state), and so
 * every reply can be delivered to a peer that reads. Each message counts
 * with SENDQ_MSG_OVERHEAD bytes more than its text, so that many short
 * replies cannot hide their cost.
 *
 *     sendq_init(&q, 1 << 20);
 *     if (!sendq_room(&q, bytes, nmsgs)) ... drop the connection
 *     sendq_push(&q, msg, len, -1); ...
 *     rc = sendq_flush(&q, fd, &sent);   -EAGAIN: wait for EPOLLOUT
 *     ...
 *     sendq_clear(&q); */
#ifndef NVD_UTIL_SENDQ_H
#define NVD_UTIL_SENDQ_H

#include <stdbool.h>
#include <stddef.h>

#define SENDQ_MSG_OVERHEAD 64
/* What a queued descriptor counts for besides its message: each is a
 * live object (a client's socket) and a slot of the server's fd limit,
 * so a peer that never reads may hold only a few hundred of them. */
#define SENDQ_FD_COST 4096

struct sendq_msg;

struct sendq {
	struct sendq_msg *head, *tail;
	size_t bytes;		/* queued, each message with its overhead */
	size_t max;		/* the bound beyond one reply */
};

void sendq_init(struct sendq *q, size_t max);
/* Frees every queued message and closes their descriptors. */
void sendq_clear(struct sendq *q);
static inline bool sendq_empty(const struct sendq *q)
{
	return !q->head;
}
/* Whether nmsgs messages of len bytes in all may be queued: always into
 * an empty queue, else while the total stays within the bound (a message
 * with a descriptor counts SENDQ_FD_COST more in len). */
bool sendq_room(const struct sendq *q, size_t len, size_t nmsgs);
/* Queues a copy of len bytes of msg and, when fd >= 0, a duplicate of fd
 * to go with it (SCM_RIGHTS; the caller keeps fd). Does not look at the
 * bound (sendq_room). Returns 0 or -ENOMEM, or -errno from the dup. */
int sendq_push(struct sendq *q, const void *msg, size_t len, int fd);
/* Sends queued messages, in order, until none is left (0) or the socket
 * takes no more now (-EAGAIN: try again on EPOLLOUT); any other negative
 * errno means the connection is broken (EPIPE: the peer is gone). *sent
 * (may be NULL) is set to the number of messages sent. */
int sendq_flush(struct sendq *q, int sock, unsigned *sent);

#endif
