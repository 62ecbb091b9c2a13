#include "virtio/blk_req.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

static bool target_ok(const struct vblk_target *t)
{
	if (t->lba_size < VIRTIO_BLK_SECTOR_SIZE || (t->lba_size & (t->lba_size - 1)))
		return false;
	if (t->nlba > UINT64_MAX - t->first_lba)
		return false;	/* absolute LBAs below must not wrap */
	if (t->max_discard_seg > VBLK_RANGES_MAX || t->max_write_zeroes_seg > VBLK_RANGES_MAX)
		return false;
	if ((t->max_discard_seg && !t->max_discard_sectors) ||
	    (t->max_write_zeroes_seg && !t->max_write_zeroes_sectors))
		return false;
	return true;
}

/* Copies bytes [off, off + n) of a segment list; the caller has checked
 * that the list holds them. */
static void gather(const struct vq_seg *segs, uint64_t off, void *buf, size_t n)
{
	uint8_t *out = buf;

	for (; n; segs++) {
		size_t take;

		if (off >= segs->len) {
			off -= segs->len;
			continue;
		}
		take = segs->len - off;
		if (take > n)
			take = n;
		memcpy(out, (const uint8_t *)segs->va + off, take);
		out += take;
		n -= take;
		off = 0;
	}
}

/* Points req->data at bytes [skip, skip + len) of segs[0, n), trimming the
 * first and last segments in place; the caller has checked the bytes are
 * there. */
static void set_data(struct vblk_req *req, struct vq_seg *segs, uint32_t skip, uint32_t len)
{
	uint32_t left = len;
	unsigned k = 0;

	req->data_len = len;
	if (!len)
		return;
	while (skip >= segs->len) {
		skip -= segs->len;
		segs++;
	}
	segs->gpa += skip;
	segs->va = (uint8_t *)segs->va + skip;
	segs->len -= skip;
	req->data = segs;
	while (left > segs[k].len)
		left -= segs[k++].len;
	segs[k].len = left;
	req->ndata = k + 1;
}

static int refuse(struct vblk_req *req, uint8_t status, const char *why)
{
	req->status = status;
	req->why = why;
	return 0;
}

/* Converts `bytes` at 512-byte `sector` into target blocks, checked as
 * subtractions so that no peer value can wrap. */
static const char *to_blocks(const struct vblk_target *t, uint64_t sector, uint64_t bytes,
			     uint64_t *lba, uint32_t *nlb)
{
	uint64_t off, first, n;

	if (sector > UINT64_MAX / VIRTIO_BLK_SECTOR_SIZE)
		return "sector beyond any disk";
	off = sector * VIRTIO_BLK_SECTOR_SIZE;
	if (off % t->lba_size)
		return "sector not aligned to the logical block size";
	if (bytes % t->lba_size)
		return "length not a whole number of logical blocks";
	first = off / t->lba_size;
	n = bytes / t->lba_size;
	if (first >= t->nlba || n > t->nlba - first)
		return "beyond the end of the device";
	*lba = t->first_lba + first;
	*nlb = (uint32_t)n;	/* bytes < 2^32, or < 2^32 sectors of 512 */
	return NULL;
}

/* DISCARD and WRITE_ZEROES: an array of 16-byte ranges in req->data. */
static int parse_ranges(const struct vblk_target *t, struct vblk_req *req)
{
	bool discard = req->type == VIRTIO_BLK_T_DISCARD;
	uint32_t max_seg = discard ? t->max_discard_seg : t->max_write_zeroes_seg;
	uint32_t max_sect = discard ? t->max_discard_sectors : t->max_write_zeroes_sectors;
	struct virtio_blk_discard_write_zeroes dwz[VBLK_RANGES_MAX];
	unsigned n = req->data_len / sizeof(dwz[0]);

	if (req->data_len == 0 || req->data_len % sizeof(dwz[0]))
		return refuse(req, VIRTIO_BLK_S_IOERR, "range array not a multiple of 16 bytes");
	/* 5.2.6.1: no more than max_discard_seg / max_write_zeroes_seg */
	if (n > max_seg)
		return refuse(req, VIRTIO_BLK_S_IOERR, "more ranges than advertised");
	/* One copy, then checks on the copy: the driver may rewrite its
	 * buffer meanwhile. */
	gather(req->data, 0, dwz, n * sizeof(dwz[0]));
	/* 5.2.6.2: UNSUPP if any range has an unknown flag, or unmap on a
	 * discard, whatever else is wrong with the request. */
	for (unsigned i = 0; i < n; i++) {
		uint32_t flags = le32toh(dwz[i].flags);

		if (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_RESERVED)
			return refuse(req, VIRTIO_BLK_S_UNSUPP, "reserved range flag set");
		if (discard && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
			return refuse(req, VIRTIO_BLK_S_UNSUPP, "unmap flag on a discard");
	}
	for (unsigned i = 0; i < n; i++) {
		struct vblk_range *r = &req->ranges[i];
		uint32_t nsect = le32toh(dwz[i].num_sectors);
		const char *why;

		if (nsect == 0)
			return refuse(req, VIRTIO_BLK_S_IOERR, "empty range");
		if (nsect > max_sect)
			return refuse(req, VIRTIO_BLK_S_IOERR, "range longer than advertised");
		why = to_blocks(t, le64toh(dwz[i].sector), (uint64_t)nsect * VIRTIO_BLK_SECTOR_SIZE,
				&r->lba, &r->nlb);
		if (why)
			return refuse(req, VIRTIO_BLK_S_IOERR, why);
		r->unmap = le32toh(dwz[i].flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	}
	req->nranges = n;
	return 0;
}

int vblk_req_parse(const struct vblk_target *t, struct vq_elem *e, struct vblk_req *req)
{
	struct vq_seg *last;
	struct virtio_blk_outhdr hdr;
	uint32_t out_data, in_data;
	const char *why;

	memset(req, 0, sizeof(*req));
	if (!target_ok(t))
		return -EINVAL;
	/* 5.2.6: the status is the last byte of the request, and the device
	 * only writes device-writable buffers (2.7.5.1). vq_pop put every
	 * writable buffer last, so the last one is writable iff nin > 0. */
	if (e->nin == 0 || e->segs[e->nout + e->nin - 1].len == 0) {
		req->why = "status byte not in a device-writable buffer";
		return -EBADMSG;
	}
	last = &e->segs[e->nout + e->nin - 1];
	req->status_va = (uint8_t *)last->va + last->len - 1;
	in_data = e->in_bytes - 1;
	req->in_data_len = in_data;
	req->status = VIRTIO_BLK_S_OK;
	/* 2.7.4: the header may be split across buffers or share one with
	 * data; copy it out whole. */
	if (e->out_bytes < sizeof(hdr))
		return refuse(req, VIRTIO_BLK_S_IOERR, "header shorter than 16 bytes");
	gather(e->segs, 0, &hdr, sizeof(hdr));
	out_data = e->out_bytes - (uint32_t)sizeof(hdr);
	req->type = le32toh(hdr.type);

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_GET_ID:
		if (out_data)
			return refuse(req, VIRTIO_BLK_S_IOERR, "device-readable data in a read");
		if (!in_data)
			return refuse(req, VIRTIO_BLK_S_IOERR, "read of zero bytes");
		set_data(req, e->segs + e->nout, 0, in_data);
		if (req->type == VIRTIO_BLK_T_GET_ID)
			return 0;
		break;
	case VIRTIO_BLK_T_OUT:
		/* 5.2.6.2: a read-only device fails writes, writing nothing */
		if (t->readonly)
			return refuse(req, VIRTIO_BLK_S_IOERR, "write to a read-only device");
		if (in_data)
			return refuse(req, VIRTIO_BLK_S_IOERR, "device-writable data in a write");
		if (!out_data)
			return refuse(req, VIRTIO_BLK_S_IOERR, "write of zero bytes");
		set_data(req, e->segs, sizeof(hdr), out_data);
		break;
	case VIRTIO_BLK_T_FLUSH:
		/* `sector` is unused here (5.2.6) and not checked */
		if (out_data || in_data)
			return refuse(req, VIRTIO_BLK_S_IOERR, "data in a flush");
		return 0;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		/* A read-only device offers neither, yet a write it refuses is
		 * an I/O error, whatever its kind (as OUT above). */
		if (t->readonly)
			return refuse(req, VIRTIO_BLK_S_IOERR, "write to a read-only device");
		if (!(req->type == VIRTIO_BLK_T_DISCARD ? t->max_discard_seg
							: t->max_write_zeroes_seg))
			return refuse(req, VIRTIO_BLK_S_UNSUPP, "request type not offered");
		if (in_data)
			return refuse(req, VIRTIO_BLK_S_IOERR, "device-writable data in a write");
		set_data(req, e->segs, sizeof(hdr), out_data);
		return parse_ranges(t, req);
	default:
		return refuse(req, VIRTIO_BLK_S_UNSUPP, "unknown request type");
	}
	why = to_blocks(t, le64toh(hdr.sector), req->data_len, &req->lba, &req->nlb);
	if (why)
		return refuse(req, VIRTIO_BLK_S_IOERR, why);
	return 0;
}

uint32_t vblk_req_fill_id(const struct vblk_req *req, const char *serial)
{
	uint8_t id[VIRTIO_BLK_ID_BYTES] = { 0 };
	uint32_t n = req->data_len < sizeof(id) ? req->data_len : (uint32_t)sizeof(id);
	uint32_t done = 0;

	/* only a GET_ID's data is device-writable (2.7.5.1) */
	if (req->type != VIRTIO_BLK_T_GET_ID || req->status != VIRTIO_BLK_S_OK)
		return 0;
	memcpy(id, serial, strnlen(serial, sizeof(id)));
	for (unsigned i = 0; done < n; i++) {
		uint32_t take = req->data[i].len < n - done ? req->data[i].len : n - done;

		memcpy(req->data[i].va, id + done, take);
		done += take;
	}
	return done;
}

uint32_t vblk_req_complete(const struct vblk_req *req, uint8_t status, uint32_t data_written)
{
	*req->status_va = status;
	if (data_written >= req->in_data_len)
		return req->in_data_len + 1;
	return data_written;
}
