/* Long replies on the control socket (spec/ctl_proto.h): a report queued
 * as its parts (ctl/reply.h) in a bounded send queue (util/sendq.h), sent
 * over a real non-blocking SOCK_SEQPACKET pair with small buffers, and
 * joined again as nvme-drv-ctl joins it. A reader that reads slowly gets
 * every byte; one that does not read leaves the queue full, and a second
 * reply finds no room (the server then drops the connection). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/args.h"
#include "ctl/reply.h"
#include "util/scm.h"
#include "util/sendq.h"

#include "check.h"

#define BOUND (256u << 10)

static char msg[CTL_MSG_MAX + 1];

/* A non-blocking pair: [0] the server's end, [1] the peer's, with small
 * buffers so that the queue has to hold most of a long report (the
 * kernel doubles the size given, and a message must fit the send buffer
 * whole: two of the longest fit). */
static void pair(int sv[2])
{
	int small = CTL_MSG_MAX;

	CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
}

/* A text report of n client lines, each different (as `list` writes). */
static char *text_report(unsigned n, size_t *len)
{
	size_t cap = (size_t)n * 320 + 1, o = 0;
	char *r = malloc(cap);

	for (unsigned i = 0; r && i < n; i++)
		o += (size_t)snprintf(r + o, cap - o, "client /run/nvd/c%u.sock device=SN:n%u "
				      "target=SN:n%u type=dynamic transport=socket read-only=no "
				      "ds-max=2 connected=yes iops=0 riops=0 wiops=0 bps=0 rbps=0 "
				      "wbps=0 reads=%u writes=0 flushes=0 discards=0 "
				      "write-zeroes=0 errors=0 bytes-read=0 bytes-written=0 "
				      "throttled=0\n", i, i % 7 + 1, i % 7 + 1, i * 13);
	*len = o;
	return r;
}

/* One line of JSON (as `list json` writes), len bytes. */
static char *json_report(size_t len)
{
	char *r = malloc(len + 1);
	size_t o = 0;

	if (!r)
		return NULL;
	o += (size_t)snprintf(r, len + 1, "{\"clients\":[");
	while (o < len - 40)
		o += (size_t)snprintf(r + o, len + 1 - o, "{\"name\":\"c%zu \\u00e9\"},", o);
	memset(r + o, ' ', len - 3 - o);
	memcpy(r + len - 3, "]}\n", 3);
	r[len] = '\0';
	return r;
}

/* The peer's side: takes what has arrived into r, one message at a time,
 * at most `most` of them. Returns how many, or -1 on a protocol error. */
static int take(int s, struct ctl_reply *r, int most, size_t *longest, bool *whole_lines)
{
	int got = 0;

	while (got < most && !r->done) {
		ssize_t n = recv(s, msg, sizeof(msg), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0)
			break;
		if ((size_t)n > *longest)
			*longest = (size_t)n;
		if (n > 5 && memcmp(msg, "more\n", 5) == 0 && msg[n - 1] != '\n')
			*whole_lines = false;
		if ((size_t)n > CTL_MSG_MAX || ctl_reply_add(r, msg, (size_t)n, 64u << 20) != 0)
			return -1;
		got++;
	}
	return got;
}

/* Queues the report, then sends and reads alternately: the reader takes
 * at most `pace` messages a turn, so the queue fills and drains many times.
 * Checks that the joined reply is the report, byte for byte. */
static void round_trip(const char *what, const char *rep, size_t len, int pace,
		       bool expect_lines)
{
	struct sendq q;
	struct ctl_reply r;
	size_t longest = 0;
	bool whole_lines = true;
	unsigned turns = 0, blocked = 0;
	int sv[2], rc;

	pair(sv);
	sendq_init(&q, BOUND);
	ctl_reply_init(&r);
	CHECK_EQ_INT(ctl_queue_report(&q, rep, len), 0);
	while (!r.done && turns < 100000) {
		unsigned sent = 0;

		rc = sendq_flush(&q, sv[0], &sent);
		if (rc && rc != -EAGAIN) {
			printf("%s: sendq_flush: %s\n", what, strerror(-rc));
			check_failed++;
			break;
		}
		blocked += rc == -EAGAIN;
		if (take(sv[1], &r, pace, &longest, &whole_lines) < 0) {
			printf("%s: a message that is not a part of the reply\n", what);
			check_failed++;
			break;
		}
		turns++;
	}
	CHECK(r.done);
	CHECK(sendq_empty(&q));
	CHECK_EQ_INT(q.bytes, 0);
	CHECK_EQ_INT(r.err, 0);
	CHECK_EQ_INT(r.len, len);
	CHECK(r.body && memcmp(r.body, rep, len) == 0);
	CHECK(longest <= CTL_MSG_MAX);
	if (expect_lines) {
		CHECK(whole_lines);
	} else {
		/* Full parts, then the rest in the "ok" message. */
		size_t k = 1;

		while ((k - 1) * CTL_PART_MAX + CTL_MSG_MAX - 3 < len)
			k++;
		CHECK_EQ_INT(r.parts, k);
	}
	/* Long enough that the socket said "later" at least once. */
	if (len > 4 * CTL_MSG_MAX)
		CHECK(blocked > 0);
	printf("%s: %zu bytes in %u messages, %u turns, the socket full %u times\n", what, len,
	       r.parts, turns, blocked);
	ctl_reply_free(&r);
	sendq_clear(&q);
	close(sv[0]);
	close(sv[1]);
}

static void test_round_trips(void)
{
	size_t len;
	char *rep;

	/* Empty, small: one "ok" message exactly as ctl_format_ok's. */
	round_trip("empty", "", 0, 1, true);
	{
		struct sendq q;
		int sv[2];
		ssize_t n;

		pair(sv);
		sendq_init(&q, BOUND);
		CHECK_EQ_INT(ctl_queue_report(&q, "client a x=1\n", 13), 0);
		CHECK_EQ_INT(sendq_flush(&q, sv[0], NULL), 0);
		n = recv(sv[1], msg, sizeof(msg), MSG_DONTWAIT);
		CHECK_EQ_INT(n, 16);
		msg[n < 0 ? 0 : n] = '\0';
		CHECK_STREQ(msg, "ok\nclient a x=1\n");
		close(sv[0]);
		close(sv[1]);
	}
	/* The most one message holds, and one byte more. */
	rep = json_report(CTL_MSG_MAX - 3);
	round_trip("json, one message", rep, CTL_MSG_MAX - 3, 1, false);
	free(rep);
	rep = json_report(CTL_MSG_MAX - 2);
	round_trip("json, one byte more", rep, CTL_MSG_MAX - 2, 1, false);
	free(rep);
	/* Thousands of clients, text and JSON, read one message a turn. */
	rep = text_report(5000, &len);
	round_trip("text, 5000 clients", rep, len, 1, true);
	free(rep);
	rep = json_report(3u << 20);
	round_trip("json, 3 MiB", rep, 3u << 20, 1, false);
	free(rep);
}

/* A peer that never reads: the report waits in the queue (the socket
 * took what fits), a second one finds no room and nothing of it is
 * queued; a short reply past the bound neither. */
static void test_no_reader(void)
{
	struct sendq q;
	size_t len, before;
	unsigned sent;
	char *rep = text_report(5000, &len);
	int sv[2];

	pair(sv);
	sendq_init(&q, BOUND);
	CHECK(len > BOUND);
	/* Always room for one whole reply, however long. */
	CHECK(sendq_room(&q, len, len / CTL_PART_MAX + 1));
	CHECK_EQ_INT(ctl_queue_report(&q, rep, len), 0);
	CHECK_EQ_INT(sendq_flush(&q, sv[0], &sent), -EAGAIN);
	CHECK(sent > 0);
	CHECK(!sendq_empty(&q));
	CHECK_EQ_INT(sendq_flush(&q, sv[0], &sent), -EAGAIN);
	CHECK_EQ_INT(sent, 0);
	before = q.bytes;
	CHECK(before > BOUND);
	CHECK(!sendq_room(&q, 3, 1));
	CHECK_EQ_INT(ctl_queue_report(&q, rep, len), -ENOBUFS);
	CHECK_EQ_INT(ctl_queue_report(&q, "", 0), -ENOBUFS);
	CHECK_EQ_INT(q.bytes, before);
	/* The connection goes: what waited is freed (ASan's leak check). */
	sendq_clear(&q);
	CHECK(sendq_empty(&q));
	CHECK_EQ_INT(q.bytes, 0);
	close(sv[0]);
	close(sv[1]);

	/* Short replies: counted with their overhead, up to the bound. */
	pair(sv);
	sendq_init(&q, 10 * (3 + SENDQ_MSG_OVERHEAD));
	for (int i = 0; i < 10; i++) {
		CHECK(sendq_room(&q, 3, 1));
		CHECK_EQ_INT(sendq_push(&q, "ok\n", 3, -1), 0);
	}
	CHECK(!sendq_room(&q, 3, 1));
	CHECK(!sendq_room(&q, 0, SIZE_MAX / 2));
	CHECK_EQ_INT(sendq_flush(&q, sv[0], &sent), 0);
	CHECK_EQ_INT(sent, 10);
	CHECK(sendq_room(&q, 1u << 30, 1));
	/* A peer that is gone: not EAGAIN, the connection is broken. */
	CHECK_EQ_INT(sendq_push(&q, "ok\n", 3, -1), 0);
	close(sv[1]);
	{
		int rc = sendq_flush(&q, sv[0], &sent);

		CHECK(rc == -EPIPE || rc == -ECONNRESET);
		CHECK_EQ_INT(sent, 0);
	}
	sendq_clear(&q);
	close(sv[0]);
	free(rep);
}

/* A descriptor queued with its reply arrives with it; the queue holds a
 * copy of its own, so the caller may close its copy at once. */
static void test_fd(void)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov = { msg, sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
			     .msg_controllen = sizeof(cbuf.b) };
	struct cmsghdr *c;
	struct stat a, b;
	struct sendq q;
	int sv[2], p[2], fd = -1;

	pair(sv);
	CHECK_EQ_INT(pipe(p), 0);
	sendq_init(&q, BOUND);
	CHECK_EQ_INT(sendq_push(&q, "ok\nfd\n", 6, p[0]), 0);
	CHECK_EQ_INT(fstat(p[0], &a), 0);
	close(p[0]);
	CHECK_EQ_INT(sendq_flush(&q, sv[0], NULL), 0);
	CHECK_EQ_INT(recvmsg(sv[1], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), 6);
	c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_type == SCM_RIGHTS);
	if (c)
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	CHECK(fd >= 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino);
	if (fd >= 0)
		close(fd);
	/* Cleared unsent: its copy is closed (the pipe's read end is gone). */
	CHECK_EQ_INT(sendq_push(&q, "ok\nfd\n", 6, p[1]), 0);
	close(p[1]);
	sendq_clear(&q);
	close(sv[0]);
	close(sv[1]);
}

/* What the joining refuses. */
static void test_join_invalid(void)
{
	struct ctl_reply r;

	ctl_reply_init(&r);
	CHECK_EQ_INT(ctl_reply_add(&r, "more\nab", 7, 100), 0);
	CHECK(!r.done);
	CHECK_EQ_INT(ctl_reply_add(&r, "error EIO 5\nx\n", 14, 100), -EPROTO);
	CHECK_EQ_INT(ctl_reply_add(&r, "more\ncd", 7, 100), 0);
	CHECK_EQ_INT(ctl_reply_add(&r, "ok\nef", 5, 100), 0);
	CHECK(r.done);
	CHECK_STREQ(r.body, "abcdef");
	CHECK_EQ_INT(ctl_reply_add(&r, "ok\n", 3, 100), -EPROTO);
	ctl_reply_free(&r);

	CHECK_EQ_INT(ctl_reply_add(&r, "error ENODEV 19\nno such\n", 24, 100), 0);
	CHECK(r.done);
	CHECK_EQ_INT(r.err, -ENODEV);
	CHECK_STREQ(r.body, "no such\n");
	ctl_reply_free(&r);

	CHECK_EQ_INT(ctl_reply_add(&r, "more\nabcd", 9, 6), 0);
	CHECK_EQ_INT(ctl_reply_add(&r, "more\nabc", 8, 6), -EMSGSIZE);
	CHECK_EQ_INT(ctl_reply_add(&r, "ok\nab", 5, 6), 0);
	CHECK_EQ_INT(r.len, 6);
	ctl_reply_free(&r);
	CHECK_EQ_INT(ctl_reply_add(&r, "bogus\n", 6, 100), -EPROTO);
	CHECK_EQ_INT(ctl_reply_add(&r, "ok\n", 3, 100), 0);
	CHECK_STREQ(r.body, "");
	ctl_reply_free(&r);
}

int main(void)
{
	test_round_trips();
	test_no_reader();
	test_fd();
	test_join_invalid();
	return check_report("ctl_stream");
}
