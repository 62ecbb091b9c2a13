/* libFuzzer entry for split virtqueues: the input is a driver's guest
 * memory (rings, descriptor tables, buffers), and the device pops every
 * chain it offers, as vblk does on a kick.
 *
 *   byte 0      bits 0-3: queue size 2^(n % 9), 1..256
 *               bit 4: EVENT_IDX, bit 5: INDIRECT_DESC negotiated
 *               bit 6: ring addresses from bytes 4-27, else the rings lie
 *                      back to back at the start of region 0
 *               bit 7: push each chain back and ask vq_should_notify
 *   byte 1      elem.max_segs - 1 (vblk gives 128)
 *   bytes 2-3   the base (last avail and used index), little-endian
 *   [bytes 4-27 desc, avail and used guest addresses, with bit 6]
 *   rest        region 0, at guest address R0 (zeros up to the rings' end)
 *
 * Region 1 follows region 0 directly in guest addresses but is its own
 * allocation, so only translate's one-region rule stops a buffer that
 * crosses; region 2 is read-only. Each is an exact-size heap block: ASan
 * reports any access past what translate handed out. */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "virtio/vring.h"

#define R0 0x10000ull
#define R1_SIZE 4096
#define R2 0x100000000ull
#define R2_SIZE 4096

struct region {
	uint64_t gpa, size;
	bool ro;
	uint8_t *host;
};

struct mem {
	struct region r[3];
};

/* As vblk's translate: the whole range in one region, and writable when
 * asked. */
static void *translate(void *ctx, uint64_t gpa, uint64_t len, bool write)
{
	struct mem *m = ctx;

	FUZZ_ASSERT(len > 0);
	for (unsigned i = 0; i < 3; i++) {
		struct region *r = &m->r[i];

		if (gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa))
			continue;
		if (write && r->ro)
			return NULL;
		return r->host + (gpa - r->gpa);
	}
	return NULL;
}

static const struct vq_mem_ops ops = { .translate = translate };

/* A popped chain is what vq_pop documents: readable buffers first, each
 * non-empty and where translate put it, byte counts that add up. */
static void check_elem(const struct mem *m, const struct vq *vq, const struct vq_elem *e)
{
	uint64_t out = 0, in = 0;

	FUZZ_ASSERT(e->head < vq->size);
	FUZZ_ASSERT(e->nout + e->nin >= 1 && e->nout + e->nin <= e->max_segs);
	FUZZ_ASSERT(e->nout + e->nin <= vq->size);
	for (unsigned i = 0; i < e->nout + e->nin; i++) {
		const struct vq_seg *s = &e->segs[i];
		bool write = i >= e->nout, found = false;

		FUZZ_ASSERT(s->len > 0);
		for (unsigned k = 0; k < 3; k++) {
			const struct region *r = &m->r[k];

			if (s->gpa < r->gpa || s->gpa - r->gpa >= r->size)
				continue;
			FUZZ_ASSERT(s->len <= r->size - (s->gpa - r->gpa));
			FUZZ_ASSERT((uint8_t *)s->va == r->host + (s->gpa - r->gpa));
			FUZZ_ASSERT(!(write && r->ro));
			found = true;
		}
		FUZZ_ASSERT(found);
		if (write)
			in += s->len;
		else
			out += s->len;
	}
	FUZZ_ASSERT(out == e->out_bytes && in == e->in_bytes);
	FUZZ_ASSERT(out + in <= UINT32_MAX);
}

static bool pop_error_ok(int rc)
{
	switch (rc) {
	case -ERANGE: case -EINVAL: case -EFAULT: case -ELOOP:
	case -E2BIG: case -EBADMSG: case -ENODATA: case -EPROTO:
		return true;
	}
	return false;
}

static void run(struct mem *m, struct vq *vq, struct vq_elem *e, bool push)
{
	struct vq_err err;

	/* More pops than the ring holds: a driver cannot make the device
	 * take more chains than it offered. */
	for (unsigned n = 0; n <= vq->size + 1; n++) {
		int rc;

		err = (struct vq_err){ .why = NULL };
		rc = vq_pop(vq, e, &err);
		if (rc == 0)
			break;
		if (rc < 0) {
			FUZZ_ASSERT(pop_error_ok(rc));
			FUZZ_ASSERT(err.why != NULL);
			FUZZ_ASSERT(vq->broken);
			/* broken until vq_set_addr: nothing more is taken */
			FUZZ_ASSERT(vq_pop(vq, e, &err) == -EIO);
			return;
		}
		FUZZ_ASSERT(rc == 1 && n < vq->size);
		check_elem(m, vq, e);
		if (push) {
			FUZZ_ASSERT(vq_push(vq, e->head, e->in_bytes) == 0);
			(void)vq_should_notify(vq);
		}
	}
	if (push)
		FUZZ_ASSERT(vq_push(vq, 0, 0) == -EOVERFLOW);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned cfg = (unsigned)fuzz_take(&in, 1);
	unsigned qsz = 1u << ((cfg & 15) % 9);
	unsigned max_segs = (unsigned)fuzz_take(&in, 1) + 1;
	uint16_t base = (uint16_t)fuzz_take(&in, 2);
	uint64_t desc = R0, avail = R0 + VRING_DESC_SIZE(qsz);
	uint64_t used = (avail + VRING_AVAIL_SIZE(qsz) + 3) & ~3ull;
	uint64_t rings_end = used + VRING_USED_SIZE(qsz) - R0;
	struct mem m = { 0 };
	struct vq vq;
	struct vq_elem e = { .max_segs = max_segs };
	struct vq_err err = { .why = NULL };
	uint64_t features = 0;

	if (cfg & 0x40) {
		desc = fuzz_take(&in, 8);
		avail = fuzz_take(&in, 8);
		used = fuzz_take(&in, 8);
	}
	m.r[0].gpa = R0;
	m.r[0].size = in.n > rings_end ? in.n : rings_end;
	m.r[1].gpa = R0 + m.r[0].size;
	m.r[1].size = R1_SIZE;
	m.r[2] = (struct region){ .gpa = R2, .size = R2_SIZE, .ro = true };
	for (unsigned i = 0; i < 3; i++)
		m.r[i].host = calloc(1, m.r[i].size);
	e.segs = calloc(max_segs, sizeof(*e.segs));
	if (!m.r[0].host || !m.r[1].host || !m.r[2].host || !e.segs)
		goto out;
	memcpy(m.r[0].host, in.p, in.n);

	if (cfg & 0x10)
		features |= VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	if (cfg & 0x20)
		features |= VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	vq_init(&vq, &ops, &m);
	vq_set_features(&vq, features);
	vq_set_base(&vq, base, base);
	if (vq_set_addr(&vq, qsz, desc, avail, used, &err) != 0) {
		FUZZ_ASSERT(err.why != NULL && vq.size == 0);
		FUZZ_ASSERT(vq_pop(&vq, &e, &err) == -EIO);
		goto out;
	}
	FUZZ_ASSERT(vq_get_base(&vq) == base);
	run(&m, &vq, &e, cfg & 0x80);
out:
	free(e.segs);
	for (unsigned i = 0; i < 3; i++)
		free(m.r[i].host);
	return 0;
}
