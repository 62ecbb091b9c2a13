/* libFuzzer entry for the control socket: the input is one message as a
 * peer sends it, taken as a request (as the server's ctl_handle does:
 * words, then the command and its create() words) and, independently, as a
 * reply (as nvme-drv-ctl reads the server's answer).
 *
 * Beyond "no sanitizer report", it checks what the server relies on:
 * unpacked words pack back to the same bytes, an accepted create() is
 * within its documented bounds, every refusal leaves one printable line in
 * `why`, and the reply the server would send parses back to the same
 * errno and body. A third reading takes the input as a report (repeated,
 * so that it spans several messages): cut into parts as the server cuts
 * it and joined as nvme-drv-ctl joins them, it is the same bytes again. */
#include <errno.h>
#include <stdlib.h>

#include "blk/devname.h"
#include "ctl/args.h"
#include "ctl/reply.h"
#include "fuzz.h"

static void check_why(const char *why)
{
	FUZZ_ASSERT(strnlen(why, CTL_WHY_MAX) < CTL_WHY_MAX);
	FUZZ_ASSERT(why[0] != '\0');
	FUZZ_ASSERT(!fuzz_has_control(why));
}

/* Limits: only keys given are set, each 0 or inside its bounds. */
static void check_qos(const struct ctl_qos *q)
{
	FUZZ_ASSERT(q->set < (1u << CTL_QOS_NKEYS));
	for (int k = 0; k < CTL_QOS_NKEYS; k++) {
		bool bytes = k == CTL_QOS_BPS || k == CTL_QOS_RBPS || k == CTL_QOS_WBPS;
		uint64_t v = q->v[k];

		FUZZ_ASSERT((q->set & (1u << k)) || v == 0);
		FUZZ_ASSERT(v == 0 || (bytes ? v >= CTL_QOS_BPS_MIN && v <= CTL_QOS_BPS_MAX
					     : v <= CTL_QOS_IOPS_MAX));
	}
}

static void check_create(const struct create_args *a)
{
	char why[CTL_WHY_MAX];
	struct devname dn;

	FUZZ_ASSERT(a->obj_type == CTL_OBJ_VIRTIO_BLK);
	FUZZ_ASSERT(a->ds_max >= 1 && a->ds_max <= CTL_DS_MAX_LIMIT);
	FUZZ_ASSERT(ctl_check_device(a->device, why, sizeof(why)) == 0);
	switch (a->transport) {
	case CTL_TRANSPORT_FD:
		FUZZ_ASSERT(a->socket[0] == '\0' && a->vduse[0] == '\0');
		break;
	case CTL_TRANSPORT_SOCKET:
		FUZZ_ASSERT(ctl_check_socket_path(a->socket, why, sizeof(why)) == 0);
		FUZZ_ASSERT(a->vduse[0] == '\0');
		break;
	case CTL_TRANSPORT_VDUSE:
		FUZZ_ASSERT(ctl_check_vduse_name(a->vduse, why, sizeof(why)) == 0);
		FUZZ_ASSERT(a->socket[0] == '\0');
		break;
	default:
		FUZZ_ASSERT(!"transport out of range");
	}
	check_qos(&a->qos);
	/* client_new's next step; only the sanitizers judge it here (the
	 * devname target checks its results). */
	(void)devname_parse(a->device, &dn);
}

/* The reply ctl_handle would send for this request, read back as
 * nvme-drv-ctl reads it. */
static void check_reply_round_trip(int rc, const char *why, const struct ctl_request *rq)
{
	static char out[CTL_MSG_MAX + 1];
	char body[CTL_SOCKET_PATH_SIZE + 1] = "";
	const char *rbody;
	size_t rlen;
	int n, err = 1;

	if (rc < 0) {
		n = ctl_format_error(out, sizeof(out), rc, why);
	} else {
		if (rq->cmd == CTL_CMD_CREATE && rq->create.transport == CTL_TRANSPORT_SOCKET)
			snprintf(body, sizeof(body), "%s\n", rq->create.socket);
		else if (rq->cmd == CTL_CMD_CREATE && rq->create.transport == CTL_TRANSPORT_FD)
			snprintf(body, sizeof(body), "fd\n");
		n = ctl_format_ok(out, sizeof(out), body);
	}
	FUZZ_ASSERT(n > 0);
	FUZZ_ASSERT(ctl_parse_reply(out, (size_t)n, &err, &rbody, &rlen) == 0);
	FUZZ_ASSERT(err == (rc < 0 ? rc : 0));
	if (rc == 0)
		FUZZ_ASSERT(rlen == strlen(body) && memcmp(rbody, body, rlen) == 0);
	else
		FUZZ_ASSERT(rlen == strlen(why) + 1 && memcmp(rbody, why, rlen - 1) == 0);
}

static void as_request(const uint8_t *data, size_t size)
{
	static char packed[CTL_MSG_MAX];
	const char *w[CTL_MAX_WORDS];
	char why[CTL_WHY_MAX] = "";
	struct ctl_request rq;
	int n, rc;

	n = ctl_unpack_words((const char *)data, size, w, CTL_MAX_WORDS, why, sizeof(why));
	if (n < 0) {
		FUZZ_ASSERT(n == -EINVAL);
		check_why(why);
		check_reply_round_trip(n, why, NULL);
		return;
	}
	FUZZ_ASSERT(n >= 1 && n <= CTL_MAX_WORDS);
	for (int i = 0; i < n; i++)
		FUZZ_ASSERT(w[i] >= (const char *)data && w[i] < (const char *)data + size);
	/* The client side's packer is the inverse of the server's unpacker. */
	FUZZ_ASSERT(ctl_pack_words(w, (unsigned)n, packed, sizeof(packed)) == (int)size);
	FUZZ_ASSERT(memcmp(packed, data, size) == 0);

	why[0] = '\0';
	rc = ctl_parse_request((unsigned)n, w, &rq, why, sizeof(why));
	if (rc) {
		FUZZ_ASSERT(rc == -EINVAL);
		check_why(why);
	} else if (rq.cmd == CTL_CMD_CREATE) {
		check_create(&rq.create);
	} else if (rq.cmd == CTL_CMD_DESTROY) {
		if (rq.destroy.transport == CTL_TRANSPORT_SOCKET)
			FUZZ_ASSERT(ctl_check_socket_path(rq.destroy.name, why, sizeof(why)) == 0);
		else
			FUZZ_ASSERT(rq.destroy.transport == CTL_TRANSPORT_VDUSE &&
				    ctl_check_vduse_name(rq.destroy.name, why, sizeof(why)) == 0);
	} else if (rq.cmd == CTL_CMD_QOS) {
		FUZZ_ASSERT(n >= 3 && rq.qos.qos.set != 0);
		FUZZ_ASSERT(rq.qos.name[0] && strlen(rq.qos.name) <= CTL_CLIENT_NAME_MAX);
		for (const char *p = rq.qos.name; *p; p++)
			FUZZ_ASSERT((unsigned char)*p >= 0x20 && *p != 0x7f);
		check_qos(&rq.qos.qos);
	} else {
		/* A report: its word, and "json" exactly when asked for. */
		FUZZ_ASSERT(rq.cmd == CTL_CMD_LIST || rq.cmd == CTL_CMD_DISKS ||
			    rq.cmd == CTL_CMD_STATS);
		FUZZ_ASSERT(rq.json == (n == 2 && strcmp(w[1], "json") == 0));
		FUZZ_ASSERT(n == 1 || rq.json);
	}
	check_reply_round_trip(rc, why, &rq);
}

static void as_reply(const uint8_t *data, size_t size)
{
	const char *body = NULL, *pbody = NULL;
	size_t bodylen = 0, pbodylen = 0;
	bool more = true;
	int err = 1, perr = 1, rc, prc;
	struct ctl_reply r;

	/* One message ("ok", "error") reads the same either way; a "more"
	 * part only as a part. */
	prc = ctl_parse_reply_part((const char *)data, size, &perr, &pbody, &pbodylen, &more);
	rc = ctl_parse_reply((const char *)data, size, &err, &body, &bodylen);
	FUZZ_ASSERT(rc == 0 || rc == -EPROTO);
	FUZZ_ASSERT(prc == 0 || prc == -EPROTO);
	FUZZ_ASSERT(rc == 0 ? prc == 0 && !more && perr == err && pbody == body &&
			      pbodylen == bodylen
			    : prc != 0 || more);
	if (prc == 0 && more)
		FUZZ_ASSERT(perr == 0 && pbodylen > 0 && pbody == (const char *)data + 5);
	/* The same message joined: the body, once; nothing after the end. */
	ctl_reply_init(&r);
	FUZZ_ASSERT(ctl_reply_add(&r, (const char *)data, size, CTL_MSG_MAX) == prc);
	if (prc == 0) {
		FUZZ_ASSERT(r.done == !more && r.len == pbodylen);
		FUZZ_ASSERT(memcmp(r.body, pbody, pbodylen) == 0 && r.body[r.len] == '\0');
		if (r.done)
			FUZZ_ASSERT(ctl_reply_add(&r, "ok\n", 3, CTL_MSG_MAX) == -EPROTO);
	}
	ctl_reply_free(&r);
	if (rc != 0)
		return;
	FUZZ_ASSERT(err <= 0 && err >= -4095);
	FUZZ_ASSERT(body >= (const char *)data && bodylen <= size &&
		    (size_t)(body - (const char *)data) == size - bodylen);
}

/* The input, without its NULs (a report has none), repeated to n bytes:
 * sent as parts and joined again. */
static void as_report(const uint8_t *data, size_t size)
{
	static char rep[4 * CTL_MSG_MAX], msg[CTL_MSG_MAX + 1];
	size_t len = 0, off = 0, n, parts = 0, want;
	struct ctl_reply r;
	bool last;
	int m;

	if (size == 0)
		return;
	/* Its first byte picks the length: one message, or up to four. */
	want = (size_t)data[0] * (sizeof(rep) / 256) + size % 256;
	if (want > sizeof(rep))
		want = sizeof(rep);
	while (len < want) {
		n = want - len < size ? want - len : size;
		memcpy(rep + len, data, n);
		len += n;
	}
	for (char *p = memchr(rep, '\0', len); p; p = memchr(p, '\0', len - (size_t)(p - rep)))
		*p = '\n';
	ctl_reply_init(&r);
	do {
		n = ctl_part_len(rep + off, len - off, &last);
		FUZZ_ASSERT(n <= len - off && (n > 0 || last));
		FUZZ_ASSERT(last ? n <= CTL_MSG_MAX - 3 : n <= CTL_PART_MAX);
		m = ctl_format_part(msg, sizeof(msg), rep + off, n, last);
		FUZZ_ASSERT(m > 0 && m <= CTL_MSG_MAX);
		FUZZ_ASSERT(ctl_reply_add(&r, msg, (size_t)m, sizeof(rep)) == 0);
		FUZZ_ASSERT(r.done == last);
		off += n;
		parts++;
	} while (!last);
	FUZZ_ASSERT(off == len && r.len == len && r.err == 0 && r.parts == parts);
	FUZZ_ASSERT(len == 0 || memcmp(r.body, rep, len) == 0);
	/* Fits one message: one, exactly as ctl_format_ok. */
	FUZZ_ASSERT((parts == 1) == (len <= CTL_MSG_MAX - 3));
	ctl_reply_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* libFuzzer hands over an exact-size heap copy: ASan sees a read
	 * one byte past the message. */
	as_request(data, size);
	as_reply(data, size);
	as_report(data, size);
	return 0;
}
