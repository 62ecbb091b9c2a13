/* virtio-blk requests (virtio 1.2, 5.2.6) parsed and checked from a popped
 * chain, before anything reaches a disk: pure functions over the chain's
 * buffers. A request is either accepted (status VIRTIO_BLK_S_OK: the
 * caller carries it out) or refused with the status byte to return. */
#ifndef NVD_VIRTIO_BLK_REQ_H
#define NVD_VIRTIO_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "spec/virtio_blk.h"
#include "virtio/vring.h"

/* The most DISCARD/WRITE_ZEROES ranges one request may carry: the largest
 * max_discard_seg / max_write_zeroes_seg a target may advertise. */
#define VBLK_RANGES_MAX 16

/* What a client may touch, in the target's logical blocks, and the limits
 * advertised in virtio_blk_config. */
struct vblk_target {
	uint64_t first_lba;	/* absolute LBA of the target's block 0 */
	uint64_t nlba;
	uint32_t lba_size;	/* a power of 2, at least 512 */
	bool readonly;		/* VIRTIO_BLK_F_RO offered */
	uint32_t max_discard_seg;	/* 0: DISCARD not offered */
	uint32_t max_discard_sectors;	/* per range, in 512-byte sectors */
	uint32_t max_write_zeroes_seg;	/* 0: WRITE_ZEROES not offered */
	uint32_t max_write_zeroes_sectors;
};

/* One DISCARD/WRITE_ZEROES range, copied out of guest memory and checked. */
struct vblk_range {
	uint64_t lba;		/* absolute */
	uint32_t nlb;		/* at least 1 */
	bool unmap;		/* WRITE_ZEROES may deallocate */
};

struct vblk_req {
	uint32_t type;		/* VIRTIO_BLK_T_* as sent */
	uint8_t status;		/* VIRTIO_BLK_S_OK, or the refusal to return */
	const char *why;	/* why it was refused, a fixed string */
	uint64_t lba;		/* IN/OUT: absolute first block */
	uint32_t nlb;		/* IN/OUT: blocks */
	/* The data alone (IN, OUT, GET_ID, the DISCARD/WRITE_ZEROES array),
	 * header and status trimmed off; points into the elem's segs. */
	struct vq_seg *data;
	unsigned ndata;
	uint32_t data_len;
	uint32_t in_data_len;	/* device-writable bytes before the status */
	uint8_t *status_va;	/* the last byte of the last writable buffer */
	struct vblk_range ranges[VBLK_RANGES_MAX];
	unsigned nranges;
};

/* Parses the chain in `elem` for target `t`. Returns 0 when *req can be
 * answered: req->status says whether to carry it out (OK) or to reply at
 * once (IOERR for a request this target must not or cannot serve,
 * UNSUPP for an unknown type, an unoffered feature, reserved flags).
 * Trims elem->segs in place so that req->data covers the data alone.
 * Errors: -EINVAL (`t` is inconsistent), -EBADMSG (no device-writable
 * buffer for the status byte: the chain cannot be answered, see
 * req->why). */
int vblk_req_parse(const struct vblk_target *t, struct vq_elem *elem, struct vblk_req *req);

/* Copies min(20, data length) bytes of the NUL-padded device ID `serial`
 * into a GET_ID request's data; returns the bytes written. */
uint32_t vblk_req_fill_id(const struct vblk_req *req, const char *serial);

/* For a request vblk_req_parse returned 0 for: writes the status byte and
 * returns the used length for vq_push, the bytes written from the start of
 * the writable buffers: `data_written` bytes of data, plus the status byte
 * when the data filled everything before it (2.7.8.2 counts only that
 * prefix). */
uint32_t vblk_req_complete(const struct vblk_req *req, uint8_t status, uint32_t data_written);

#endif
