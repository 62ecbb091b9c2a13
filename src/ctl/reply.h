/* Replies longer than one message (spec/ctl_proto.h): the server queues
 * a report as its "more" parts and the final "ok" part; a peer joins the
 * parts it receives into the whole reply again. */
#ifndef NVD_CTL_REPLY_H
#define NVD_CTL_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/sendq.h"

/* Queues the report's len bytes (the "ok" reply's body) as one message,
 * or as several parts when they do not fit one, for sendq_flush to send.
 * Returns 0, -ENOBUFS when q has no room for them (sendq_room: a peer
 * that does not read its replies; nothing is queued, and the connection
 * should go), -ENOMEM, or -E2BIG for a report that could not be split
 * (never, for len < SIZE_MAX / 2). */
int ctl_queue_report(struct sendq *q, const char *report, size_t len);

/* One reply as a peer receives it, message by message. */
struct ctl_reply {
	int err;		/* 0 for "ok", else the "error" reply's negative errno */
	char *body;		/* the parts' pieces joined, NUL-terminated (malloc) */
	size_t len, cap;
	unsigned parts;		/* messages taken */
	bool done;		/* the last part ("ok" or "error") has come */
};

void ctl_reply_init(struct ctl_reply *r);
void ctl_reply_free(struct ctl_reply *r);
/* Takes the next received message of the reply. Returns 0 (r->done says
 * whether it was the last), -EPROTO for a message that is not a reply
 * (ctl_parse_reply_part), one after the last part, or an "error" after a
 * "more" part, -EMSGSIZE when the body would pass max bytes, or -ENOMEM. */
int ctl_reply_add(struct ctl_reply *r, const char *msg, size_t len, size_t max);

#endif
