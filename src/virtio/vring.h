/* Split virtqueues (virtio 1.2, 2.7) seen from the device: take descriptor
 * chains off the available ring, put completions on the used ring, decide
 * when the driver wants a notification.
 *
 * Guest memory is reached only through vq_mem_ops.translate, and every
 * number read from it is checked before use: a driver is a peer. The code
 * knows nothing of sockets or of what the buffers mean. One thread owns a
 * queue; nothing here locks. */
#ifndef NVD_VIRTIO_VRING_H
#define NVD_VIRTIO_VRING_H

#include <stdbool.h>
#include <stdint.h>

#include "spec/virtio_blk.h"

struct vq_mem_ops {
	/* The host address of guest bytes [gpa, gpa + len) (len > 0), or
	 * NULL unless they all lie in ONE registered region, writable when
	 * `write` is set. The queue touches no memory but what this returns. */
	void *(*translate)(void *ctx, uint64_t gpa, uint64_t len, bool write);
};

/* One buffer of a chain: both addresses are kept so that a later layer
 * can turn the guest address into an IOVA for zero-copy DMA. */
struct vq_seg {
	uint64_t gpa;
	void *va;
	uint32_t len;		/* never 0 */
};

/* A popped chain. The caller provides `segs` with room for `max_segs`
 * entries; segs[0, nout) are device-readable, segs[nout, nout + nin)
 * device-writable (2.7.4.2: all readable buffers come first). */
struct vq_elem {
	struct vq_seg *segs;
	unsigned max_segs;
	uint16_t head;		/* what vq_push takes back */
	unsigned nout, nin;
	uint32_t out_bytes, in_bytes;	/* 2.7.5.2: a chain is under 4 GiB */
};

/* Why the queue refused something: a fixed string, and the descriptor it
 * concerns (its index in the indirect table when `indirect`), or -1. */
struct vq_err {
	const char *why;
	int desc;
	bool indirect;
};

struct vq {
	const struct vq_mem_ops *ops;
	void *ctx;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t *used_event;	/* avail->ring[size] */
	uint16_t *avail_event;	/* after used->ring[size] */
	unsigned size;		/* 0 until vq_set_addr succeeds */
	uint16_t last_avail_idx;	/* next avail entry to take */
	uint16_t shadow_avail_idx;	/* avail->idx when last read */
	uint16_t used_idx;		/* next used entry to fill */
	uint16_t signalled_used;	/* used_idx at the last vq_should_notify */
	bool signalled_used_valid;
	bool event_idx;		/* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;		/* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool broken;		/* the driver broke the ring rules; see vq_pop */
	bool notify_off;	/* vq_set_notify(false): the device polls */
	bool flags_clean;	/* used->flags known to be 0 (no NO_NOTIFY left) */
};

/* An idle queue with no ring, base 0 and no features. */
void vq_init(struct vq *vq, const struct vq_mem_ops *ops, void *ctx);

/* Takes the ring features (EVENT_IDX, INDIRECT_DESC) from the negotiated
 * feature bits. */
void vq_set_features(struct vq *vq, uint64_t features);

/* Points the queue at its rings: guest addresses in the space translate()
 * understands (a vhost-user transport converts its ring user addresses
 * first), size a power of 2 no larger than VRING_SIZE_MAX. Keeps the base
 * and clears `broken`. Errors: -EINVAL (bad size, a part not aligned as
 * 2.7 requires, in guest or host memory), -EFAULT (a part outside client
 * memory). On error the
 * queue is left without a ring. */
int vq_set_addr(struct vq *vq, unsigned size, uint64_t desc, uint64_t avail, uint64_t used,
		struct vq_err *err);

/* The base is the avail entry the device takes next (vhost-user
 * GET/SET_VRING_BASE); the used index is where the next completion goes,
 * normally the same once nothing is in flight. */
void vq_set_base(struct vq *vq, uint16_t last_avail_idx, uint16_t used_idx);
uint16_t vq_get_base(const struct vq *vq);

/* Takes the next available chain into *elem. Returns 1 when it did, 0 when
 * the ring is empty, or a negative errno when the driver broke the rules:
 * then the chain is not consumed, the queue is marked broken and later
 * calls fail with -EIO until vq_set_addr. Errors:
 *   -EIO      queue not set up, or broken
 *   -ERANGE   avail->idx moved more than the queue size past the base
 *   -EINVAL   a head or next index beyond its table
 *   -EFAULT   a buffer or indirect table outside client memory
 *   -ELOOP    more descriptors than the table holds (a loop)
 *   -E2BIG    more buffers than elem->max_segs or the queue size, or 4 GiB
 *             or more in total
 *   -EBADMSG  a bad indirect descriptor (feature not negotiated, nested,
 *             with NEXT, length not a non-zero multiple of 16)
 *   -ENODATA  a zero-length buffer
 *   -EPROTO   a device-readable buffer after a device-writable one
 * With EVENT_IDX, an empty ring asks the driver for a notification on the
 * next buffer (avail_event), so a caller pops until 0 before it waits. */
int vq_pop(struct vq *vq, struct vq_elem *elem, struct vq_err *err);

/* Takes chain `head` again without consuming an available entry: one a
 * previous process took and did not complete (inflight tracking). Returns
 * 1, or vq_pop's errors for the chain (-EINVAL: head beyond the table). */
int vq_pop_head(struct vq *vq, uint16_t head, struct vq_elem *elem, struct vq_err *err);

/* Whether the driver has made buffers available that vq_pop has not
 * taken: one load of avail->idx, no state changed (vq_pop judges a bad
 * index). Returns false for a queue not set up or broken. */
bool vq_avail(const struct vq *vq);

/* Available buffer notifications (2.7.10), for a
 * device that polls. Off: the driver is asked for no kicks (with
 * EVENT_IDX avail_event is simply not moved on, so at most one more kick
 * comes; without, VRING_USED_F_NO_NOTIFY). On: asked for a kick at the
 * next buffer, fenced as vq_pop is; returns true if buffers came while
 * they were off (no kick will come for them: the caller takes them). A
 * queue's first empty vq_pop with notifications on clears a NO_NOTIFY an
 * earlier process may have left in the ring. */
bool vq_set_notify(struct vq *vq, bool on);

/* The used index as the ring shows it to the driver (0 before set-up). */
uint16_t vq_ring_used_idx(const struct vq *vq);

/* Returns chain `head` with `len` bytes written to its device-writable
 * buffers (2.7.8.2: a prefix of them, starting at the first). Errors:
 * -EIO (not set up), -EINVAL (head beyond the table), -EOVERFLOW (more
 * completions than chains popped). */
int vq_push(struct vq *vq, uint16_t head, uint32_t len);

/* Whether the driver wants a used buffer notification for what was pushed
 * since the last call (2.7.7.2). Call it once after a batch of pushes. */
bool vq_should_notify(struct vq *vq);

#endif
