#include "ctl/reply.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/args.h"

int ctl_queue_report(struct sendq *q, const char *report, size_t len)
{
	static char msg[CTL_MSG_MAX + 1];
	size_t off = 0, total = 0, nparts = 0, n;
	bool last;
	int rc;

	if (len >= SIZE_MAX / 2)
		return -E2BIG;
	/* The bound is for the whole reply: all of it is queued, or none. */
	do {
		n = ctl_part_len(report + off, len - off, &last);
		total += n + (last ? 3 : 5);
		nparts++;
		off += n;
	} while (!last);
	if (!sendq_room(q, total, nparts))
		return -ENOBUFS;
	off = 0;
	do {
		n = ctl_part_len(report + off, len - off, &last);
		rc = ctl_format_part(msg, sizeof(msg), report + off, n, last);
		if (rc >= 0)
			rc = sendq_push(q, msg, (size_t)rc, -1);
		if (rc < 0)
			return rc;
		off += n;
	} while (!last);
	return 0;
}

void ctl_reply_init(struct ctl_reply *r)
{
	*r = (struct ctl_reply){ 0 };
}

void ctl_reply_free(struct ctl_reply *r)
{
	free(r->body);
	ctl_reply_init(r);
}

int ctl_reply_add(struct ctl_reply *r, const char *msg, size_t len, size_t max)
{
	const char *body;
	size_t bodylen;
	bool more;
	int err;

	if (r->done || ctl_parse_reply_part(msg, len, &err, &body, &bodylen, &more))
		return -EPROTO;
	/* Only a report comes in parts, and it is whole before the first. */
	if (err && r->parts)
		return -EPROTO;
	if (bodylen > max || r->len > max - bodylen)
		return -EMSGSIZE;
	if (r->len + bodylen + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *b;

		while (cap < r->len + bodylen + 1)
			cap *= 2;
		b = realloc(r->body, cap);
		if (!b)
			return -ENOMEM;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, body, bodylen);
	r->len += bodylen;
	r->body[r->len] = '\0';
	r->err = err;
	r->parts++;
	r->done = !more;
	return 0;
}
