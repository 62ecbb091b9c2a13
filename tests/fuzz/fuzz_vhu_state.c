/* Stateful fuzzing of the vhost-user server: the real vhost_user.c, vblk.c
 * and vring.c in process (as tests/unit/test_vhu_state.c runs them), with
 * the NVMe layer faked. The input is a program of operations, each a
 * byte of opcode and its operands: messages with any header, payload and
 * file descriptors (memfds, truncated memfds, eventfds full or blocking),
 * inflight regions and a server that dies and is replaced, QoS limits
 * set and changed (requests held back across all of the above),
 * writes into the shared memory, well-formed set-ups and requests (to get
 * deep quickly), kicks taken over several turns (a per-virtqueue budget
 * of 3), completions in any order with any result, and a
 * socket that closes. After each input every request is completed and
 * the endpoint destroyed: no DMA mapping may be left, and at no time may
 * more than 2 x ds-max be mapped. A crash, a sanitizer report, a leak or
 * a hang (a blocked server) is a finding. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../unit/fake_nvme.h"
#include "../unit/vhu_fe.h"
#include "transport/vhost_user.h"
#include "spec/virtio_blk.h"
#include "util/log.h"
#include "util/peerfd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
	const uint8_t *p;
	size_t n;
};

static unsigned u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static unsigned u16(struct in *in)
{
	return u8(in) | u8(in) << 8;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

static struct evloop *loop;
static int lowest_free;

/* A file descriptor of the kind the input picks, or -1. */
static int make_fd(struct fe *f, unsigned kind)
{
	uint64_t full = 0xfffffffffffffffeull;
	int fd;

	switch (kind % 6) {
	case 0:
		return dup(f->memfd);
	case 1:
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	case 2:	/* blocking and full: a write would block */
		fd = eventfd(0, EFD_CLOEXEC);
		if (fd >= 0 && write(fd, &full, sizeof(full)) < 0) {
			close(fd);
			fd = -1;
		}
		return fd;
	case 3:	/* a memfd that cannot be sealed, shorter than it claims */
		fd = memfd_create("fz", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, 4096) != 0) {
			close(fd);
			fd = -1;
		}
		return fd;
	case 4:
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	default:
		return -1;
	}
}

static void op_message(struct fe *f, struct in *in)
{
	uint8_t payload[sizeof(union vhost_user_payload)];
	unsigned request = u8(in) % 48, flags = u8(in) & 0xc, size = u8(in) + (u8(in) & 1) * 256;
	unsigned nfds = u8(in) % 3;
	int fds[2] = { -1, -1 };

	if (size > sizeof(payload))
		size = sizeof(payload);
	memset(payload, 0, sizeof(payload));
	for (unsigned i = 0; i < size && in->n; i++)
		payload[i] = (uint8_t)u8(in);
	for (unsigned i = 0; i < nfds; i++)
		fds[i] = make_fd(f, u8(in));
	if (f->sock >= 0)
		fe_send(f, request, flags, payload, size, fds, nfds);
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void op_poke(struct fe *f, struct in *in)
{
	uint8_t buf[64];
	unsigned off = (unsigned)(u64(in) % FE_MEM_SIZE), len = u8(in) % sizeof(buf);

	for (unsigned i = 0; i < len; i++)
		buf[i] = (uint8_t)u8(in);
	/* pwrite, not the mapping: the memory may have been cut short. */
	if (pwrite(f->memfd, buf, len, off) < 0) {
		/* sealed or truncated: the server must cope either way */
	}
}

static void op_post(struct fe *f, struct in *in, bool truncated)
{
	static const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
					  VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD,
					  VIRTIO_BLK_T_WRITE_ZEROES, 99 };
	unsigned q = u8(in) % FE_NQ;
	uint32_t type = types[u8(in) % (sizeof(types) / sizeof(types[0]))];
	uint64_t sector = u16(in) % (FAKE_NLBA + 8);
	uint32_t len = (u8(in) % 9) * 512;

	if (truncated)
		return;
	fe_post(f, q, type, sector, type == VIRTIO_BLK_T_FLUSH ? 0 : (len ? len : 512));
}

static void op_complete(struct in *in)
{
	static const int results[] = { 0, 0, 0, -EIO, -ECANCELED, -ENODATA };
	unsigned i = u8(in);
	int result = results[u8(in) % (sizeof(results) / sizeof(results[0]))];

	if (fake_nvme.npending)
		fake_nvme_complete(i % fake_nvme.npending, result);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct fe f;
	bool truncated = false;
	unsigned restarts = 0;
	int rc;

	if (!loop) {
		log_set_level(getenv("NVD_FUZZ_VERBOSE") ? LOG_DEBUG : LOG_QUIET);
		signal(SIGPIPE, SIG_IGN);
		peerfd_watchdog_start(20);
		if (evloop_new(&loop))
			abort();
		/* A budget below the ring size (FE_QSIZE): a kick's requests
		 * are taken over several turns (evloop_yield), with everything
		 * above happening in between. */
		fe_vq_budget = 3;
	}
	memset(&fake_nvme, 0, sizeof(fake_nvme));
	lowest_free = dup(0);
	close(lowest_free);
	rc = fe_new(&f, loop, "fuzz");
	if (rc) {
		fprintf(stderr, "fe_new: %s\n", strerror(-rc));
		abort();
	}
	for (unsigned steps = 0; in.n && steps < 256; steps++) {
		switch (u8(&in) % 10) {
		case 0:
		case 1:
			op_message(&f, &in);
			break;
		case 2:
			if (!truncated && f.sock >= 0 && fe_setup(&f, 1 + u8(&in) % FE_NQ) != 0) {
				/* the server may refuse; go on */
			}
			break;
		case 3:
			op_post(&f, &in, truncated);
			break;
		case 4:
			fe_kick(&f, u8(&in) % FE_NQ);
			break;
		case 5:
			op_complete(&in);
			break;
		case 6:
			op_poke(&f, &in);
			break;
		case 7:
			if (u8(&in) == 0x5a && ftruncate(f.memfd, 0) == 0) {
				/* the server's seal refuses this unless the fd is unsealable */
				truncated = true;
			}
			break;
		case 8:
			if (u8(&in) == 0xa5 && f.sock >= 0) {
				close(f.sock);
				f.sock = -1;
			}
			break;
		default:
			switch (u8(&in) % 8) {
			case 0:	/* inflight tracking on */
				if (f.sock >= 0 && f.inflight_fd < 0)
					fe_get_inflight(&f, 1 + u8(&in) % FE_NQ);
				break;
			case 1:	/* the server dies; a successor takes over */
				if (f.ep)
					vhu_ep_destroy(f.ep);
				f.ep = NULL;
				if (fe_reconnect(&f, "fuzz2"))
					abort();
				restarts++;
				f.base[0] = (uint16_t)u16(&in);
				break;
			case 2: {	/* limits: none, tight, loose; by requests or bytes */
				static const uint64_t iops[] = { 0, 1, 100, 100000 };
				static const uint64_t bps[] = { 0, 4096, 1 << 20, 1ull << 30 };
				struct qos_limits l = { { 0 } };
				unsigned k = u8(&in);

				l.v[k % QOS_NKEYS] = (k % QOS_NKEYS) >= QOS_BPS ? bps[(k >> 4) % 4]
										  : iops[(k >> 4) % 4];
				if (f.ep && vhu_ep_set_qos(f.ep, &l) != 0)
					abort();
				break;
			}
			default:
				break;
			}
			break;
		}
		fe_run(&f, 1 + (int)(u8(&in) % 3));
		/* ds-max 2: live + retired <= 4 a device, and a device that
		 * died keeps what its requests in flight use. */
		if (fake_nvme.maps > 4 * (long)(1 + restarts))
			abort();
	}
	fake_nvme_complete_all(0);
	fe_run(&f, 3);
	if (truncated) {
		/* our own mapping would fault now */
		munmap(f.mem, FE_MEM_SIZE);
		f.mem = NULL;
	}
	fe_free(&f);
	fe_run(&f, 2);
	fake_nvme_complete_all(0);
	if (fake_nvme.maps != 0)
		abort();
	/* No file descriptor may outlive the session: the lowest free one
	 * is where it was before. */
	rc = dup(0);
	close(rc);
	if (rc > lowest_free) {
		fprintf(stderr, "file descriptors leaked: lowest free %d, was %d\n", rc, lowest_free);
		abort();
	}
	return 0;
}
