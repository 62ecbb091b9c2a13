/* libFuzzer entry for the control socket: the input is one message as a
 * peer sends it, taken as a request (as the server's ctl_handle does:
 * words, then the command and its create() words) and, independently, as a
 * reply (as nvme-drv-ctl reads the server's answer).
 *
 * Beyond "no sanitizer report", it checks what the server relies on:
 * unpacked words pack back to the same bytes, an accepted create() is
 * within its documented bounds, every refusal leaves one printable line in
 * `why`, and the reply the server would send parses back to the same
 * errno and body. */
#include <errno.h>

#include "blk/devname.h"
#include "ctl/args.h"
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
	const char *body = NULL;
	size_t bodylen = 0;
	int err = 1;

	if (ctl_parse_reply((const char *)data, size, &err, &body, &bodylen) != 0)
		return;
	FUZZ_ASSERT(err <= 0 && err >= -4095);
	FUZZ_ASSERT(body >= (const char *)data && bodylen <= size &&
		    (size_t)(body - (const char *)data) == size - bodylen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* libFuzzer hands over an exact-size heap copy: ASan sees a read
	 * one byte past the message. */
	as_request(data, size);
	as_reply(data, size);
	return 0;
}
