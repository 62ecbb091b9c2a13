#include "virtio/vring.h"

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

static int fail(struct vq_err *err, int rc, const char *why, int desc, bool indirect)
{
	if (err) {
		err->why = why;
		err->desc = desc;
		err->indirect = indirect;
	}
	return rc;
}

void vq_init(struct vq *vq, const struct vq_mem_ops *ops, void *ctx)
{
	memset(vq, 0, sizeof(*vq));
	vq->ops = ops;
	vq->ctx = ctx;
}

void vq_set_features(struct vq *vq, uint64_t features)
{
	vq->event_idx = features & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = features & VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	vq->signalled_used_valid = false;
}

/* Translates one ring part, checking the guest alignment 2.7 requires and
 * the host alignment our naturally aligned accesses need. */
static void *map_part(struct vq *vq, uint64_t gpa, uint64_t len, unsigned align, bool write,
		      struct vq_err *err, const char *unaligned, const char *outside, int *rc)
{
	void *p;

	if (gpa & (align - 1)) {
		*rc = fail(err, -EINVAL, unaligned, -1, false);
		return NULL;
	}
	p = vq->ops->translate(vq->ctx, gpa, len, write);
	if (!p) {
		*rc = fail(err, -EFAULT, outside, -1, false);
		return NULL;
	}
	if ((uintptr_t)p & (align - 1)) {
		*rc = fail(err, -EINVAL, "ring part not aligned in host memory", -1, false);
		return NULL;
	}
	return p;
}

int vq_set_addr(struct vq *vq, unsigned size, uint64_t desc, uint64_t avail, uint64_t used,
		struct vq_err *err)
{
	void *d, *a, *u;
	int rc = 0;

	vq->size = 0;
	if (size == 0 || size > VRING_SIZE_MAX || (size & (size - 1)))
		return fail(err, -EINVAL, "queue size not a power of 2 up to 32768", -1, false);
	d = map_part(vq, desc, VRING_DESC_SIZE(size), VRING_DESC_ALIGN, false, err,
		     "descriptor table not 16-byte aligned",
		     "descriptor table outside client memory", &rc);
	if (!d)
		return rc;
	a = map_part(vq, avail, VRING_AVAIL_SIZE(size), VRING_AVAIL_ALIGN, false, err,
		     "available ring not 2-byte aligned", "available ring outside client memory",
		     &rc);
	if (!a)
		return rc;
	u = map_part(vq, used, VRING_USED_SIZE(size), VRING_USED_ALIGN, true, err,
		     "used ring not 4-byte aligned", "used ring outside client memory", &rc);
	if (!u)
		return rc;
	vq->desc = d;
	vq->avail = a;
	vq->used = u;
	vq->used_event = &vq->avail->ring[size];
	vq->avail_event = (uint16_t *)((uint8_t *)u + VRING_USED_SIZE(size) - 2);
	vq->size = size;
	vq->shadow_avail_idx = vq->last_avail_idx;
	vq->signalled_used_valid = false;
	vq->broken = false;
	vq->notify_off = false;
	vq->flags_clean = false;
	return 0;
}

void vq_set_base(struct vq *vq, uint16_t last_avail_idx, uint16_t used_idx)
{
	vq->last_avail_idx = last_avail_idx;
	vq->shadow_avail_idx = last_avail_idx;
	vq->used_idx = used_idx;
	vq->signalled_used_valid = false;
}

uint16_t vq_get_base(const struct vq *vq)
{
	return vq->last_avail_idx;
}

/* Reads the driver's avail->idx. Returns 1 if entries are waiting, 0 if
 * not, -ERANGE if it claims more entries than the ring holds. */
static int avail_pending(struct vq *vq, struct vq_err *err)
{
	/* Acquire: the ring entries and descriptors the driver wrote before
	 * raising idx (2.7.13, steps 4-5) are read only after it. */
	uint16_t idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));

	if ((uint16_t)(idx - vq->last_avail_idx) > vq->size) {
		vq->broken = true;
		return fail(err, -ERANGE, "available index moved more than the queue size", -1,
			    false);
	}
	vq->shadow_avail_idx = idx;
	return idx != vq->last_avail_idx;
}

/* Copies one descriptor out of guest memory exactly once: the compiler
 * barrier keeps later uses on the copy, so a driver rewriting the table
 * meanwhile cannot make a checked value differ from the used one. */
static void load_desc(const struct vring_desc *src, struct vring_desc *d)
{
	memcpy(d, src, sizeof(*d));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

static int walk_chain(struct vq *vq, uint16_t head, struct vq_elem *e, struct vq_err *err)
{
	const struct vring_desc *table = vq->desc;
	uint32_t tsize = vq->size, seen = 0, i = head;
	unsigned limit = e->max_segs < vq->size ? e->max_segs : vq->size;
	uint64_t total = 0;
	bool ind = false;

	e->head = head;
	e->nout = e->nin = 0;
	e->out_bytes = e->in_bytes = 0;
	if (head >= vq->size)
		return fail(err, -EINVAL, "head index beyond the descriptor table", head, false);
	for (;;) {
		struct vring_desc d;
		bool write;
		void *va;

		/* 2.7.5.2: no loops. A chain that visits more descriptors
		 * than its table holds has visited one twice. */
		if (++seen > tsize)
			return fail(err, -ELOOP, "descriptor chain loops", (int)i, ind);
		load_desc(&table[i], &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* 2.7.5.3.1: only with the feature, one level, never
			 * with NEXT; its WRITE flag is ignored (2.7.5.3.2). It
			 * may end a chain of direct descriptors. */
			if (!vq->indirect)
				return fail(err, -EBADMSG, "indirect descriptor not negotiated",
					    (int)i, ind);
			if (ind)
				return fail(err, -EBADMSG, "indirect descriptor in an indirect table",
					    (int)i, ind);
			if (d.flags & VRING_DESC_F_NEXT)
				return fail(err, -EBADMSG, "indirect descriptor with NEXT", (int)i,
					    ind);
			if (d.len == 0 || d.len % sizeof(struct vring_desc))
				return fail(err, -EBADMSG,
					    "indirect table length not a multiple of 16", (int)i, ind);
			/* memcpy in load_desc: the table needs no alignment */
			table = vq->ops->translate(vq->ctx, d.addr, d.len, false);
			if (!table)
				return fail(err, -EFAULT, "indirect table outside client memory",
					    (int)i, ind);
			tsize = d.len / sizeof(struct vring_desc);
			i = 0;
			seen = 0;
			ind = true;
			continue;
		}
		if (d.len == 0)
			return fail(err, -ENODATA, "zero-length buffer", (int)i, ind);
		write = d.flags & VRING_DESC_F_WRITE;
		/* 2.7.4.2: device-writable buffers follow all readable ones */
		if (!write && e->nin)
			return fail(err, -EPROTO, "device-readable buffer after a writable one",
				    (int)i, ind);
		/* 2.7.5.3.1: a chain is no longer than the queue size */
		if (e->nout + e->nin >= limit)
			return fail(err, -E2BIG, "chain has too many buffers", (int)i, ind);
		total += d.len;
		if (total > UINT32_MAX)
			return fail(err, -E2BIG, "chain is 4 GiB or more", (int)i, ind);
		va = vq->ops->translate(vq->ctx, d.addr, d.len, write);
		if (!va)
			return fail(err, -EFAULT, "buffer outside client memory", (int)i, ind);
		e->segs[e->nout + e->nin] = (struct vq_seg){ .gpa = d.addr, .va = va, .len = d.len };
		if (write) {
			e->nin++;
			e->in_bytes += d.len;
		} else {
			e->nout++;
			e->out_bytes += d.len;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= tsize)
			return fail(err, -EINVAL, "next index beyond the table", (int)i, ind);
		i = d.next;
	}
}

/* Asks the driver to kick for the next buffer (2.7.10.2): with EVENT_IDX,
 * when it fills entry last_avail_idx; without, by clearing NO_NOTIFY. The
 * driver stores avail->idx then loads our field; we store the field, then
 * (the caller) load avail->idx. With a full fence on each side one of us
 * sees the other's store, so no buffer is left without a kick. */
static void ask_kick(struct vq *vq)
{
	if (vq->event_idx) {
		__atomic_store_n(vq->avail_event, htole16(vq->last_avail_idx), __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&vq->used->flags, 0, __ATOMIC_RELAXED);
		vq->flags_clean = true;
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool vq_avail(const struct vq *vq)
{
	if (!vq->size || vq->broken)
		return false;
	return le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_RELAXED)) != vq->last_avail_idx;
}

bool vq_set_notify(struct vq *vq, bool on)
{
	if (!vq->size || vq->broken || vq->notify_off == !on)
		return false;
	vq->notify_off = !on;
	if (!on) {
		/* With EVENT_IDX nothing to write: avail_event stays where it
		 * was, behind the driver's index after its next buffer. */
		if (!vq->event_idx) {
			__atomic_store_n(&vq->used->flags, htole16(VRING_USED_F_NO_NOTIFY),
					 __ATOMIC_RELAXED);
			vq->flags_clean = false;
		}
		return false;
	}
	ask_kick(vq);
	return vq_avail(vq);
}

int vq_pop(struct vq *vq, struct vq_elem *elem, struct vq_err *err)
{
	uint16_t head;
	int rc;

	if (!vq->size)
		return fail(err, -EIO, "queue not set up", -1, false);
	if (vq->broken)
		return fail(err, -EIO, "queue broken by an earlier error", -1, false);
	if (vq->last_avail_idx == vq->shadow_avail_idx) {
		rc = avail_pending(vq, err);
		if (rc < 0)
			return rc;
		if (rc == 0 && !vq->notify_off && (vq->event_idx || !vq->flags_clean)) {
			ask_kick(vq);
			rc = avail_pending(vq, err);
			if (rc < 0)
				return rc;
		}
		if (rc == 0)
			return 0;
	}
	head = le16toh(__atomic_load_n(&vq->avail->ring[vq->last_avail_idx & (vq->size - 1)],
				       __ATOMIC_RELAXED));
	rc = walk_chain(vq, head, elem, err);
	if (rc) {
		vq->broken = true;
		return rc;
	}
	vq->last_avail_idx++;
	return 1;
}

int vq_pop_head(struct vq *vq, uint16_t head, struct vq_elem *elem, struct vq_err *err)
{
	int rc;

	if (!vq->size)
		return fail(err, -EIO, "queue not set up", -1, false);
	if (vq->broken)
		return fail(err, -EIO, "queue broken by an earlier error", -1, false);
	if (head >= vq->size)
		return fail(err, -EINVAL, "head index beyond the descriptor table", head, false);
	rc = walk_chain(vq, head, elem, err);
	if (rc) {
		vq->broken = true;
		return rc;
	}
	return 1;
}

uint16_t vq_ring_used_idx(const struct vq *vq)
{
	return vq->size ? le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE)) : 0;
}

int vq_push(struct vq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *u;

	if (!vq->size)
		return -EIO;
	if (head >= vq->size)
		return -EINVAL;
	if (vq->used_idx == vq->last_avail_idx)
		return -EOVERFLOW;
	u = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&u->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&u->len, htole32(len), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: 2.7.8.2, the element (and the data written to the buffers)
	 * lands before the driver can see the new idx. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
	return 0;
}

/* 2.7.7.2 with EVENT_IDX: notify iff used_event lies in [old, new), the
 * entries written since the last notification, modulo 2^16. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool vq_should_notify(struct vq *vq)
{
	uint16_t old = vq->signalled_used;
	bool valid = vq->signalled_used_valid;

	if (!vq->size)
		return false;
	/* The used idx store must be visible before we read the driver's
	 * suppression fields: the driver writes those, then rereads used
	 * idx (the mirror of the fence in vq_pop). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(le16toh(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED)) &
			 VRING_AVAIL_F_NO_INTERRUPT);
	vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	/* Unknown history (just set up or rebased): a spurious notification
	 * is harmless (2.7.7.1), a missed one hangs the driver. */
	if (!valid)
		return true;
	return need_event(le16toh(__atomic_load_n(vq->used_event, __ATOMIC_RELAXED)),
			  vq->used_idx, old);
}
