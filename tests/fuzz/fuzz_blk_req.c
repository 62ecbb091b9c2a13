/* libFuzzer entry for virtio-blk requests: the input is one popped chain
 * (as vq_pop hands it to vblk) and the bytes in its buffers.
 *
 *   byte 0      the target: bit 0 read-only, bit 1 DISCARD and bit 2
 *               WRITE_ZEROES offered (with vblk's limits), bits 3-4 the
 *               logical block size 512 << n
 *   bytes 1-4   first_lba; bytes 5-9 nlba (40 bits)
 *   byte 10     readable buffers (bits 0-3) and writable ones (bits 4-7)
 *   2 bytes per buffer: its length - 1, little-endian
 *   rest        the buffers' contents, in chain order (zeros when short)
 *
 * Each buffer is an exact-size heap block, so ASan reports any access
 * outside the chain. Beyond that, what vblk relies on is checked: blocks
 * within the target, data inside the right buffers adding up to data_len,
 * nothing written to a read-only target, the status byte at the end. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "virtio/blk_req.h"

/* vblk.c's limits for the DISCARD and WRITE_ZEROES it offers. */
#define RANGES 16
#define RANGE_SECTORS (1u << 22)
#define MAX_BUFS 30

/* Whether [va, va + len) lies in one of buffers [from, to). */
static int inside(const struct vq_seg *orig, unsigned from, unsigned to, const void *va,
		  uint32_t len)
{
	for (unsigned i = from; i < to; i++) {
		const uint8_t *b = orig[i].va, *p = va;

		if (p >= b && p < b + orig[i].len && len <= orig[i].len - (uint32_t)(p - b))
			return 1;
	}
	return 0;
}

static void check_blocks(const struct vblk_target *t, uint64_t lba, uint64_t nlb)
{
	FUZZ_ASSERT(nlb >= 1);
	FUZZ_ASSERT(lba >= t->first_lba && lba - t->first_lba < t->nlba);
	FUZZ_ASSERT(nlb <= t->nlba - (lba - t->first_lba));
}

static void check_ok(const struct vblk_target *t, const struct vq_elem *e,
		     const struct vq_seg *orig, const struct vblk_req *r)
{
	bool writes = r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_GET_ID;
	unsigned from = writes ? e->nout : 0, to = writes ? e->nout + e->nin : e->nout;
	uint64_t sum = 0;

	FUZZ_ASSERT(r->why == NULL);
	if (r->type == VIRTIO_BLK_T_FLUSH) {
		FUZZ_ASSERT(r->data_len == 0);
		return;
	}
	FUZZ_ASSERT(r->type != VIRTIO_BLK_T_OUT || !t->readonly);
	FUZZ_ASSERT(r->ndata >= 1 && r->data_len >= 1);
	for (unsigned i = 0; i < r->ndata; i++) {
		const uint8_t *va = r->data[i].va;

		FUZZ_ASSERT(r->data[i].len > 0);
		FUZZ_ASSERT(inside(orig, from, to, va, r->data[i].len));
		FUZZ_ASSERT(!(r->status_va >= va && r->status_va < va + r->data[i].len));
		sum += r->data[i].len;
	}
	FUZZ_ASSERT(sum == r->data_len);
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		FUZZ_ASSERT((uint64_t)r->nlb * t->lba_size == r->data_len);
		check_blocks(t, r->lba, r->nlb);
		break;
	case VIRTIO_BLK_T_GET_ID:
		FUZZ_ASSERT(vblk_req_fill_id(r, "SERIAL-01234567890123") ==
			    (r->data_len < VIRTIO_BLK_ID_BYTES ? r->data_len : VIRTIO_BLK_ID_BYTES));
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		FUZZ_ASSERT(!t->readonly);
		FUZZ_ASSERT(r->nranges >= 1 && r->nranges <= RANGES);
		FUZZ_ASSERT(r->nranges * 16u == r->data_len);
		for (unsigned i = 0; i < r->nranges; i++) {
			check_blocks(t, r->ranges[i].lba, r->ranges[i].nlb);
			FUZZ_ASSERT((uint64_t)r->ranges[i].nlb * t->lba_size <=
				    (uint64_t)RANGE_SECTORS * VIRTIO_BLK_SECTOR_SIZE);
			FUZZ_ASSERT(!(r->type == VIRTIO_BLK_T_DISCARD && r->ranges[i].unmap));
		}
		break;
	default:
		FUZZ_ASSERT(!"accepted an unknown type");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned cfg = (unsigned)fuzz_take(&in, 1);
	struct vblk_target t = {
		.readonly = cfg & 1,
		.max_discard_seg = cfg & 2 ? RANGES : 0,
		.max_discard_sectors = cfg & 2 ? RANGE_SECTORS : 0,
		.max_write_zeroes_seg = cfg & 4 ? RANGES : 0,
		.max_write_zeroes_sectors = cfg & 4 ? RANGE_SECTORS : 0,
		.lba_size = 512u << ((cfg >> 3) & 3),
	};
	struct vq_seg segs[MAX_BUFS], orig[MAX_BUFS];
	uint8_t *bufs[MAX_BUFS];
	struct vq_elem e = { .segs = segs, .max_segs = MAX_BUFS };
	struct vblk_req r;
	unsigned counts, n;
	int rc;

	t.first_lba = fuzz_take(&in, 4);
	t.nlba = fuzz_take(&in, 5);
	counts = (unsigned)fuzz_take(&in, 1);
	e.nout = counts & 15;
	e.nin = counts >> 4;
	n = e.nout + e.nin;
	for (unsigned i = 0; i < n; i++) {
		segs[i].len = (uint32_t)fuzz_take(&in, 2) + 1;
		segs[i].gpa = 0x100000000ull * (i + 1);
		if (i < e.nout)
			e.out_bytes += segs[i].len;
		else
			e.in_bytes += segs[i].len;
	}
	for (unsigned i = 0; i < n; i++) {
		size_t take = in.n < segs[i].len ? in.n : segs[i].len;

		segs[i].va = bufs[i] = calloc(1, segs[i].len);
		if (!bufs[i]) {
			n = i;
			goto out;
		}
		memcpy(segs[i].va, in.p, take);
		in.p += take;
		in.n -= take;
	}
	memcpy(orig, segs, sizeof(segs[0]) * n);

	rc = vblk_req_parse(&t, &e, &r);
	FUZZ_ASSERT(rc != -EINVAL);
	if (rc) {
		FUZZ_ASSERT(rc == -EBADMSG && e.nin == 0 && r.why != NULL);
		goto out;
	}
	FUZZ_ASSERT(e.nin > 0);
	FUZZ_ASSERT(r.status_va == (uint8_t *)orig[n - 1].va + orig[n - 1].len - 1);
	FUZZ_ASSERT(r.in_data_len == e.in_bytes - 1);
	if (r.status == VIRTIO_BLK_S_OK)
		check_ok(&t, &e, orig, &r);
	else
		FUZZ_ASSERT((r.status == VIRTIO_BLK_S_IOERR || r.status == VIRTIO_BLK_S_UNSUPP) &&
			    r.why != NULL);
	/* The used length counts the writable bytes before the status byte
	 * only when all of them were written (2.7.8.2). */
	FUZZ_ASSERT(vblk_req_complete(&r, VIRTIO_BLK_S_IOERR, 0) ==
		    (r.in_data_len == 0 ? 1u : 0u));
	FUZZ_ASSERT(vblk_req_complete(&r, r.status, r.in_data_len) == e.in_bytes);
	FUZZ_ASSERT(*r.status_va == r.status);
out:
	for (unsigned i = 0; i < n; i++)
		free(bufs[i]);	/* parsing moved segs[].va */
	return 0;
}
