/* Split virtqueue: chains built by hand in a fake guest memory of separate
 * regions (each its own allocation, so ASan sees any access outside what
 * translate handed out), one broken rule at a time. */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/virtio_blk.h"
#include "virtio/vring.h"

#include "check.h"

struct region {
	uint64_t gpa, size;
	bool ro;
	bool sparse;		/* every address maps to one byte: never read */
	uint8_t *host;
};

/* R0 holds the rings, R1 follows it directly in guest addresses (so only
 * translate's region check stops a buffer crossing 0x10000), R2 is
 * read-only, R3 holds a maximum-size queue, R4 is 16 GiB never touched. */
static struct region regions[] = {
	{ .gpa = 0x0, .size = 0x10000 },
	{ .gpa = 0x10000, .size = 0x10000 },
	{ .gpa = 0x100000000, .size = 0x10000, .ro = true },
	{ .gpa = 0x40000000, .size = 0x100000 },
	{ .gpa = 0x1000000000, .size = 0x400000000, .sparse = true },
};
#define NREGIONS (sizeof(regions) / sizeof(regions[0]))

static unsigned translations;

static void *translate(void *ctx, uint64_t gpa, uint64_t len, bool write)
{
	(void)ctx;
	translations++;
	CHECK(len > 0);
	for (unsigned i = 0; i < NREGIONS; i++) {
		struct region *r = &regions[i];

		if (gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa))
			continue;
		if (write && r->ro)
			return NULL;
		return r->sparse ? r->host : r->host + (gpa - r->gpa);
	}
	return NULL;
}

static const struct vq_mem_ops mem_ops = { .translate = translate };

/* Test-side view of guest memory. */
static void *gp(uint64_t gpa)
{
	for (unsigned i = 0; i < NREGIONS; i++)
		if (!regions[i].sparse && gpa >= regions[i].gpa &&
		    gpa - regions[i].gpa < regions[i].size)
			return regions[i].host + (gpa - regions[i].gpa);
	abort();
}

#define QSZ 16
#define DESC 0x0
#define AVAIL 0x1000
#define USED 0x2000
#define TABLE 0x3000		/* indirect tables */
#define BUF 0x4000		/* data buffers, 0x100 apart */

static struct vq vq;
static struct vq_seg segs[64];
static struct vq_elem elem;
static struct vq_err err;

static struct vring_avail *avail(void)
{
	return gp(AVAIL);
}

static struct vring_used *used(void)
{
	return gp(USED);
}

static void desc_at(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		    uint16_t next)
{
	struct vring_desc d = { htole64(addr), htole32(len), htole16(flags), htole16(next) };

	memcpy((uint8_t *)gp(table) + i * sizeof(d), &d, sizeof(d));
}

static void desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	desc_at(DESC, i, addr, len, flags, next);
}

static void offer(uint16_t head)
{
	uint16_t idx = le16toh(avail()->idx);

	avail()->ring[idx % QSZ] = htole16(head);
	avail()->idx = htole16(idx + 1);
}

/* A clean ring of QSZ entries with `features`, base 0. */
static void fresh(uint64_t features)
{
	memset(gp(0), 0, 0x10000);
	vq_init(&vq, &mem_ops, NULL);
	vq_set_features(&vq, features);
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC, AVAIL, USED, &err), 0);
	elem = (struct vq_elem){ .segs = segs, .max_segs = 64 };
	err = (struct vq_err){ 0 };
}

static int pop(void)
{
	return vq_pop(&vq, &elem, &err);
}

static const uint64_t ALL = VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
			    VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);

static void test_set_addr(void)
{
	vq_init(&vq, &mem_ops, NULL);
	CHECK_EQ_INT(vq_pop(&vq, &elem, &err), -EIO);
	CHECK_EQ_INT(vq_push(&vq, 0, 0), -EIO);
	CHECK(!vq_should_notify(&vq));
	CHECK_EQ_INT(vq_set_addr(&vq, 0, DESC, AVAIL, USED, &err), -EINVAL);
	CHECK_EQ_INT(vq_set_addr(&vq, 3, DESC, AVAIL, USED, &err), -EINVAL);
	CHECK_EQ_INT(vq_set_addr(&vq, 65536, DESC, AVAIL, USED, &err), -EINVAL);
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC + 8, AVAIL, USED, &err), -EINVAL);
	CHECK_STREQ(err.why, "descriptor table not 16-byte aligned");
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC, AVAIL + 1, USED, &err), -EINVAL);
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC, AVAIL, USED + 2, &err), -EINVAL);
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, 0x50000000, AVAIL, USED, &err), -EFAULT);
	CHECK_STREQ(err.why, "descriptor table outside client memory");
	/* the used ring is written: a read-only region will not do */
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC, AVAIL, 0x100000000, &err), -EFAULT);
	CHECK_STREQ(err.why, "used ring outside client memory");
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC, 0x100000000, USED, &err), 0);
	/* rings whose ends run past a region, even into the next one */
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, 0x10000 - 0x80, AVAIL, USED, &err), -EFAULT);
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC, AVAIL, 0x10000 - 0x40, &err), -EFAULT);
	CHECK_EQ_INT(vq.size, 0);
	/* the largest queue: 512 KiB of descriptors */
	CHECK_EQ_INT(vq_set_addr(&vq, 32768, 0x40000000, 0x40080000, 0x400a0000, &err), 0);
	CHECK_EQ_INT(vq.size, 32768);
}

static void test_chain(void)
{
	fresh(0);
	CHECK_EQ_INT(pop(), 0);
	desc(0, BUF, 16, VRING_DESC_F_NEXT, 5);
	desc(5, BUF + 0x100, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(2, 0x10000, 1, VRING_DESC_F_WRITE, 0);
	offer(0);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(elem.head, 0);
	CHECK_EQ_INT(elem.nout, 1);
	CHECK_EQ_INT(elem.nin, 2);
	CHECK_EQ_INT(elem.out_bytes, 16);
	CHECK_EQ_INT(elem.in_bytes, 513);
	CHECK_EQ_INT(segs[0].gpa, BUF);
	CHECK(segs[0].va == gp(BUF));
	CHECK_EQ_INT(segs[1].len, 512);
	CHECK_EQ_INT(segs[2].gpa, 0x10000);
	CHECK(segs[2].va == gp(0x10000));
	CHECK_EQ_INT(vq_get_base(&vq), 1);
	CHECK_EQ_INT(pop(), 0);

	CHECK_EQ_INT(vq_push(&vq, 0, 513), 0);
	CHECK_EQ_INT(le16toh(used()->idx), 1);
	CHECK_EQ_INT(le32toh(used()->ring[0].id), 0);
	CHECK_EQ_INT(le32toh(used()->ring[0].len), 513);
	/* one completion per chain, and heads within the table */
	CHECK_EQ_INT(vq_push(&vq, 0, 0), -EOVERFLOW);
	offer(0);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(vq_push(&vq, QSZ, 0), -EINVAL);
	CHECK_EQ_INT(vq_push(&vq, 0, 1), 0);

	/* readable-only and writable-only chains are both fine */
	desc(7, BUF, 100, 0, 0);
	desc(8, BUF, 100, VRING_DESC_F_WRITE, 0);
	offer(7);
	offer(8);
	CHECK_EQ_INT(pop(), 1);
	CHECK(elem.head == 7 && elem.nout == 1 && elem.nin == 0);
	CHECK_EQ_INT(pop(), 1);
	CHECK(elem.head == 8 && elem.nout == 0 && elem.nin == 1);
}

/* The avail and used indexes run freely through 0xffff to 0. */
static void test_index_wrap(void)
{
	fresh(0);
	vq_set_base(&vq, 0xfffe, 0xfffe);
	avail()->idx = htole16(0xfffe);
	for (unsigned i = 0; i < 4; i++) {
		desc(i, BUF + i * 0x100, 8, VRING_DESC_F_WRITE, 0);
		offer((uint16_t)i);
	}
	CHECK_EQ_INT(le16toh(avail()->idx), 2);
	for (unsigned i = 0; i < 4; i++) {
		CHECK_EQ_INT(pop(), 1);
		CHECK_EQ_INT(elem.head, i);
		CHECK_EQ_INT(vq_push(&vq, elem.head, 8), 0);
	}
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(vq_get_base(&vq), 2);
	CHECK_EQ_INT(le16toh(used()->idx), 2);
	CHECK_EQ_INT(le32toh(used()->ring[0xfffe % QSZ].id), 0);
	CHECK_EQ_INT(le32toh(used()->ring[1].id), 3);
}

static void test_avail_jump(void)
{
	fresh(0);
	for (unsigned i = 0; i < QSZ; i++)
		desc(i, BUF, 8, 0, 0);
	/* a full ring is fine */
	for (unsigned i = 0; i < QSZ; i++)
		offer((uint16_t)i);
	for (unsigned i = 0; i < QSZ; i++)
		CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(pop(), 0);

	fresh(0);
	desc(0, BUF, 8, 0, 0);
	avail()->idx = htole16(QSZ + 1);
	CHECK_EQ_INT(pop(), -ERANGE);
	CHECK_STREQ(err.why, "available index moved more than the queue size");
	CHECK_EQ_INT(vq_get_base(&vq), 0);
	/* going backwards is a jump of nearly 2^16 */
	fresh(0);
	vq_set_base(&vq, 5, 5);
	avail()->idx = htole16(4);
	CHECK_EQ_INT(pop(), -ERANGE);
}

static void test_indirect(void)
{
	fresh(ALL);
	desc_at(TABLE, 0, BUF, 16, VRING_DESC_F_NEXT, 2);
	desc_at(TABLE, 2, BUF + 0x100, 4096, VRING_DESC_F_NEXT, 1);
	desc_at(TABLE, 1, BUF + 0x2000, 1, VRING_DESC_F_WRITE, 0);
	/* 2.7.5.3.2: the WRITE flag on the table's descriptor is ignored */
	desc(3, TABLE, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	offer(3);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(elem.head, 3);
	CHECK_EQ_INT(elem.nout, 2);
	CHECK_EQ_INT(elem.nin, 1);
	CHECK_EQ_INT(elem.out_bytes, 16 + 4096);
	CHECK_EQ_INT(segs[1].gpa, BUF + 0x100);
	CHECK_EQ_INT(segs[2].gpa, BUF + 0x2000);

	/* direct descriptors, then one indirect table ending the chain */
	desc(4, BUF, 16, VRING_DESC_F_NEXT, 6);
	desc(6, TABLE + 0x100, 32, VRING_DESC_F_INDIRECT, 0);
	desc_at(TABLE + 0x100, 0, BUF + 0x100, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc_at(TABLE + 0x100, 1, BUF + 0x300, 1, VRING_DESC_F_WRITE, 0);
	offer(4);
	CHECK_EQ_INT(pop(), 1);
	CHECK(elem.head == 4 && elem.nout == 1 && elem.nin == 2);
	CHECK_EQ_INT(elem.in_bytes, 513);

	/* an indirect table need not be 16-byte aligned */
	desc_at(TABLE + 0x208, 0, BUF, 8, 0, 0);
	desc(7, TABLE + 0x208, 16, VRING_DESC_F_INDIRECT, 0);
	offer(7);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(elem.nout, 1);
}

static void expect_bad(uint64_t features, int rc, const char *why, int at, bool in_table)
{
	offer(0);
	CHECK_EQ_INT(pop(), rc);
	CHECK_STREQ(err.why, why);
	CHECK_EQ_INT(err.desc, at);
	CHECK_EQ_INT(err.indirect, in_table);
	/* the chain stays unconsumed and the queue stays broken */
	CHECK_EQ_INT(vq_get_base(&vq), 0);
	CHECK_EQ_INT(pop(), -EIO);
	CHECK_STREQ(err.why, "queue broken by an earlier error");
	fresh(features);
}

static void test_indirect_errors(void)
{
	fresh(0);
	desc_at(TABLE, 0, BUF, 8, 0, 0);
	desc(0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EBADMSG, "indirect descriptor not negotiated", 0, false);

	desc_at(TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	desc_at(TABLE, 1, TABLE + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	desc_at(TABLE + 0x100, 0, BUF, 8, 0, 0);
	desc(0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EBADMSG, "indirect descriptor in an indirect table", 1, true);

	desc_at(TABLE, 0, BUF, 8, 0, 0);
	desc(0, TABLE, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	desc(1, BUF, 8, 0, 0);
	expect_bad(ALL, -EBADMSG, "indirect descriptor with NEXT", 0, false);

	desc(0, TABLE, 0, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EBADMSG, "indirect table length not a multiple of 16", 0, false);
	desc(0, TABLE, 24, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EBADMSG, "indirect table length not a multiple of 16", 0, false);

	desc(0, 0x50000000, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EFAULT, "indirect table outside client memory", 0, false);
	/* the table's last entry would lie in the next region */
	desc(0, 0x10000 - 16, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EFAULT, "indirect table outside client memory", 0, false);

	desc_at(TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 2);
	desc(0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EINVAL, "next index beyond the table", 0, true);

	/* more entries than the queue size (2.7.5.3.1) */
	for (unsigned i = 0; i < QSZ + 1; i++)
		desc_at(TABLE, i, BUF, 8, i < QSZ ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	desc(0, TABLE, (QSZ + 1) * 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -E2BIG, "chain has too many buffers", QSZ, true);
}

static void test_loops(void)
{
	fresh(ALL);
	desc(0, BUF, 8, VRING_DESC_F_NEXT, 0);
	expect_bad(ALL, -ELOOP, "descriptor chain loops", 0, false);

	desc(0, BUF, 8, VRING_DESC_F_NEXT, 1);
	desc(1, BUF, 8, VRING_DESC_F_NEXT, 2);
	desc(2, BUF, 8, VRING_DESC_F_NEXT, 1);
	expect_bad(ALL, -ELOOP, "descriptor chain loops", 2, false);

	desc_at(TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	desc_at(TABLE, 1, BUF, 8, VRING_DESC_F_NEXT, 2);
	desc_at(TABLE, 2, BUF, 8, VRING_DESC_F_NEXT, 0);
	desc(0, TABLE, 48, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -ELOOP, "descriptor chain loops", 0, true);

	/* a loop through the whole table is caught too */
	for (unsigned i = 0; i < QSZ; i++)
		desc((uint16_t)i, BUF, 8, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % QSZ));
	expect_bad(ALL, -ELOOP, "descriptor chain loops", 0, false);
}

static void test_memory(void)
{
	fresh(0);
	desc(0, BUF, 8, VRING_DESC_F_NEXT, 1);
	desc(1, 0x50000000, 8, VRING_DESC_F_WRITE, 0);
	expect_bad(0, -EFAULT, "buffer outside client memory", 1, false);

	/* R0 and R1 are adjacent in guest addresses, not in the host */
	desc(0, 0x10000 - 0x100, 0x200, 0, 0);
	expect_bad(0, -EFAULT, "buffer outside client memory", 0, false);

	/* a read-only region may be read, not written */
	desc(0, 0x100000000, 0x100, VRING_DESC_F_NEXT, 1);
	desc(1, 0x100000100, 0x100, VRING_DESC_F_WRITE, 0);
	expect_bad(0, -EFAULT, "buffer outside client memory", 1, false);
	desc(0, 0x100000000, 0x100, VRING_DESC_F_NEXT, 1);
	desc(1, 0x10000, 0x100, VRING_DESC_F_WRITE, 0);
	offer(0);
	CHECK_EQ_INT(pop(), 1);
	CHECK(segs[0].va == gp(0x100000000));

	/* address + length wrapping around 2^64 */
	fresh(0);
	desc(0, UINT64_MAX - 0xff, 0x200, 0, 0);
	expect_bad(0, -EFAULT, "buffer outside client memory", 0, false);

	desc(0, BUF, 0, 0, 0);
	expect_bad(0, -ENODATA, "zero-length buffer", 0, false);

	/* heads and next indexes outside the table */
	offer(QSZ);
	CHECK_EQ_INT(pop(), -EINVAL);
	CHECK_STREQ(err.why, "head index beyond the descriptor table");
	CHECK_EQ_INT(err.desc, QSZ);
	fresh(0);
	desc(0, BUF, 8, VRING_DESC_F_NEXT, QSZ);
	expect_bad(0, -EINVAL, "next index beyond the table", 0, false);
}

static void test_limits(void)
{
	fresh(0);
	for (unsigned i = 0; i < 5; i++)
		desc(i, BUF, 8, i < 4 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	elem.max_segs = 5;
	offer(0);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(vq_push(&vq, 0, 0), 0);
	elem.max_segs = 4;
	offer(0);
	CHECK_EQ_INT(pop(), -E2BIG);
	CHECK_STREQ(err.why, "chain has too many buffers");
	CHECK_EQ_INT(err.desc, 4);

	/* 2.7.5.2: a chain is less than 2^32 bytes */
	fresh(0);
	desc(0, 0x1000000000, 0x80000000, VRING_DESC_F_NEXT, 1);
	desc(1, 0x1080000000, 0x7fffffff, 0, 0);
	offer(0);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(elem.out_bytes, UINT32_MAX);
	fresh(0);
	desc(0, 0x1000000000, 0x80000000, VRING_DESC_F_NEXT, 1);
	desc(1, 0x1080000000, 0x80000000, 0, 0);
	expect_bad(0, -E2BIG, "chain is 4 GiB or more", 1, false);
}

static void test_order(void)
{
	fresh(ALL);
	desc(0, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(1, BUF, 8, 0, 0);
	expect_bad(ALL, -EPROTO, "device-readable buffer after a writable one", 1, false);

	desc_at(TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	desc_at(TABLE, 1, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	desc_at(TABLE, 2, BUF, 8, 0, 0);
	desc(0, TABLE, 48, VRING_DESC_F_INDIRECT, 0);
	expect_bad(ALL, -EPROTO, "device-readable buffer after a writable one", 2, true);

	/* writable direct descriptors, then a table starting readable */
	desc(0, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(1, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	desc_at(TABLE, 0, BUF, 8, 0, 0);
	expect_bad(ALL, -EPROTO, "device-readable buffer after a writable one", 0, true);

	/* a fresh ring serves again after vq_set_addr */
	desc(0, BUF, 8, 0, 0);
	offer(0);
	CHECK_EQ_INT(pop(), 1);
}

/* Offers, pops and pushes n one-buffer chains. */
static void cycle(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		desc(0, BUF, 8, VRING_DESC_F_WRITE, 0);
		offer(0);
		CHECK_EQ_INT(pop(), 1);
		CHECK_EQ_INT(vq_push(&vq, 0, 8), 0);
	}
}

static void set_used_event(uint16_t v)
{
	avail()->ring[QSZ] = htole16(v);
}

static uint16_t avail_event(void)
{
	return le16toh(*(uint16_t *)gp(USED + 4 + 8 * QSZ));
}

static void test_notify_flags(void)
{
	fresh(0);
	*(uint16_t *)gp(USED + 4 + 8 * QSZ) = htole16(0xabcd);
	cycle(1);
	CHECK(vq_should_notify(&vq));
	avail()->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	cycle(1);
	CHECK(!vq_should_notify(&vq));
	/* used_event means nothing without EVENT_IDX */
	set_used_event(1);
	CHECK(!vq_should_notify(&vq));
	avail()->flags = 0;
	CHECK(vq_should_notify(&vq));
	/* nor does the device write avail_event */
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(avail_event(), 0xabcd);
}

static void test_event_idx(void)
{
	fresh(ALL);
	/* nothing known of the driver yet: notify */
	cycle(1);
	CHECK(vq_should_notify(&vq));
	/* "notify me once entry 1 is written" */
	set_used_event(1);
	cycle(1);
	CHECK(vq_should_notify(&vq));
	cycle(1);
	CHECK(!vq_should_notify(&vq));
	/* no push since the last call */
	CHECK(!vq_should_notify(&vq));
	/* a batch that passes used_event: entries 3, 4, 5 cover 4 */
	set_used_event(4);
	cycle(3);
	CHECK(vq_should_notify(&vq));
	/* a batch that stops short of it */
	set_used_event(8);
	cycle(2);
	CHECK(!vq_should_notify(&vq));
	/* 2.7.7.2: with EVENT_IDX the NO_INTERRUPT bit is ignored */
	avail()->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	cycle(1);
	CHECK(vq_should_notify(&vq));
	avail()->flags = 0;

	/* after a rebase nothing is known either: notify even if used_event
	 * says otherwise */
	fresh(ALL);
	set_used_event(5);
	vq_set_base(&vq, 0, 0);
	cycle(1);
	CHECK(vq_should_notify(&vq));
	cycle(1);
	CHECK(!vq_should_notify(&vq));

	/* wraparound of the 16-bit indexes */
	fresh(ALL);
	vq_set_base(&vq, 0xfffd, 0xfffd);
	avail()->idx = htole16(0xfffd);
	CHECK(vq_should_notify(&vq));
	set_used_event(0xffff);
	cycle(3);			/* entries fffd, fffe, ffff */
	CHECK_EQ_INT(vq.used_idx, 0);
	CHECK(vq_should_notify(&vq));
	set_used_event(2);
	cycle(2);			/* entries 0, 1 */
	CHECK(!vq_should_notify(&vq));
	cycle(1);			/* entry 2 */
	CHECK(vq_should_notify(&vq));
	/* an old used_event from before the wrap does not fire */
	set_used_event(0xfffe);
	cycle(4);
	CHECK(!vq_should_notify(&vq));

	fresh(ALL);
	vq_set_base(&vq, 0xfffe, 0xfffe);
	avail()->idx = htole16(0xfffe);
	CHECK(vq_should_notify(&vq));
	set_used_event(0xffff);
	cycle(4);			/* fffe .. 1, wrapping over the event */
	CHECK(vq_should_notify(&vq));
}

/* An empty ring asks for a kick when the next entry is filled. */
static void test_avail_event(void)
{
	fresh(ALL);
	*(uint16_t *)gp(USED + 4 + 8 * QSZ) = htole16(0xabcd);
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(avail_event(), 0);
	desc(0, BUF, 8, 0, 0);
	offer(0);
	offer(0);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(avail_event(), 2);
	vq_set_base(&vq, 0x1234, 0x1234);
	avail()->idx = htole16(0x1234);
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(avail_event(), 0x1234);
}

/* A polling device (vq_set_notify): kicks off while it polls, on again
 * with a last look before it sleeps; with and without EVENT_IDX. */
static void test_poll_notify(void)
{
	/* EVENT_IDX: off leaves avail_event behind; an empty pop while
	 * polling does not move it on (that would ask for a kick). */
	fresh(ALL);
	desc(0, BUF, 8, 0, 0);
	CHECK(!vq_avail(&vq));
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(avail_event(), 0);
	CHECK(!vq_set_notify(&vq, false));
	offer(0);
	CHECK(vq_avail(&vq));
	CHECK_EQ_INT(pop(), 1);
	CHECK(!vq_avail(&vq));
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(avail_event(), 0);	/* not 1: no kick wanted */
	/* A buffer comes while kicks are off: turning them on says so (the
	 * driver saw avail_event behind it and will not kick). */
	offer(0);
	CHECK(vq_set_notify(&vq, true));
	CHECK_EQ_INT(avail_event(), 1);
	CHECK_EQ_INT(pop(), 1);
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(avail_event(), 2);
	CHECK(!vq_set_notify(&vq, true));	/* already on: nothing to do */

	/* Without EVENT_IDX: VRING_USED_F_NO_NOTIFY while off, cleared on. */
	fresh(0);
	desc(0, BUF, 8, 0, 0);
	CHECK(!vq_set_notify(&vq, false));
	CHECK_EQ_INT(le16toh(used()->flags), VRING_USED_F_NO_NOTIFY);
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(le16toh(used()->flags), VRING_USED_F_NO_NOTIFY);
	CHECK(!vq_set_notify(&vq, true));
	CHECK_EQ_INT(le16toh(used()->flags), 0);
	CHECK(!vq_set_notify(&vq, false));
	offer(0);
	CHECK(vq_set_notify(&vq, true));
	CHECK_EQ_INT(le16toh(used()->flags), 0);

	/* A NO_NOTIFY left in the ring by an earlier process (killed while
	 * it polled) is cleared by the first empty pop of a new set-up. */
	fresh(0);
	used()->flags = htole16(VRING_USED_F_NO_NOTIFY);
	CHECK_EQ_INT(vq_set_addr(&vq, QSZ, DESC, AVAIL, USED, &err), 0);
	CHECK_EQ_INT(pop(), 0);
	CHECK_EQ_INT(le16toh(used()->flags), 0);

	/* Not set up, or broken: nothing is available, nothing is written. */
	vq_init(&vq, &mem_ops, NULL);
	CHECK(!vq_avail(&vq));
	CHECK(!vq_set_notify(&vq, false));
	CHECK(!vq_set_notify(&vq, true));
}

int main(void)
{
	static uint8_t sparse_byte;

	for (unsigned i = 0; i < NREGIONS; i++) {
		regions[i].host = regions[i].sparse ? &sparse_byte : calloc(1, regions[i].size);
		if (!regions[i].host)
			return 1;
	}
	test_set_addr();
	test_chain();
	test_index_wrap();
	test_avail_jump();
	test_indirect();
	test_indirect_errors();
	test_loops();
	test_memory();
	test_limits();
	test_order();
	test_notify_flags();
	test_event_idx();
	test_avail_event();
	test_poll_notify();
	CHECK(translations > 0);
	for (unsigned i = 0; i < NREGIONS; i++)
		if (!regions[i].sparse)
			free(regions[i].host);
	return check_report("vring");
}
