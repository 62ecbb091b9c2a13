/* virtio-blk request parsing: chains laid out by hand over a fake guest
 * memory, one rule broken at a time; the data segments, absolute LBAs and
 * status bytes that come out. */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/virtio_blk.h"
#include "virtio/blk_req.h"

#include "check.h"

#define MEM_SIZE 0x20000
#define GPA_BASE 0x7000000ull	/* guest address of mem[0] */

static uint8_t *mem;
static struct vq_seg segs[16];
static struct vq_elem elem;
static struct vblk_req req;

/* A 4 KiB-block partition of 100 blocks starting at absolute LBA 1000. */
static const struct vblk_target t4k = {
	.first_lba = 1000, .nlba = 100, .lba_size = 4096,
	.max_discard_seg = 4, .max_discard_sectors = 256,
	.max_write_zeroes_seg = 2, .max_write_zeroes_sectors = 1024,
};

static void chain(void)
{
	memset(&elem, 0, sizeof(elem));
	elem.segs = segs;
	elem.max_segs = 16;
}

/* Appends a buffer at mem + off, as vq_pop would have produced it. */
static void buf(uint32_t off, uint32_t len, bool write)
{
	CHECK(off + len <= MEM_SIZE);
	CHECK(write || elem.nin == 0);
	segs[elem.nout + elem.nin] = (struct vq_seg){ GPA_BASE + off, mem + off, len };
	if (write) {
		elem.nin++;
		elem.in_bytes += len;
	} else {
		elem.nout++;
		elem.out_bytes += len;
	}
}

static void hdr(uint32_t off, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { htole32(type), htole32(7), htole64(sector) };

	memcpy(mem + off, &h, sizeof(h));
}

static void range(uint32_t off, uint64_t sector, uint32_t nsect, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes r = { htole64(sector), htole32(nsect),
						     htole32(flags) };

	memcpy(mem + off, &r, sizeof(r));
}

static int parse(const struct vblk_target *t)
{
	return vblk_req_parse(t, &elem, &req);
}

/* A request of `type` at `sector` with `len` bytes of data in one buffer,
 * readable or writable, and a separate status byte. */
static void simple(uint32_t type, uint64_t sector, uint32_t len, bool write)
{
	chain();
	hdr(0, type, sector);
	buf(0, 16, false);
	if (len)
		buf(0x1000, len, write);
	buf(0xf000, 1, true);
}

static void expect(const struct vblk_target *t, uint8_t status, const char *why)
{
	CHECK_EQ_INT(parse(t), 0);
	CHECK_EQ_INT(req.status, status);
	if (why)
		CHECK_STREQ(req.why, why);
	else
		CHECK(req.why == NULL);
}

static void test_read(void)
{
	simple(VIRTIO_BLK_T_IN, 8, 8192, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.type, VIRTIO_BLK_T_IN);
	CHECK_EQ_INT(req.lba, 1001);
	CHECK_EQ_INT(req.nlb, 2);
	CHECK_EQ_INT(req.ndata, 1);
	CHECK_EQ_INT(req.data[0].gpa, GPA_BASE + 0x1000);
	CHECK(req.data[0].va == mem + 0x1000);
	CHECK_EQ_INT(req.data_len, 8192);
	CHECK(req.status_va == mem + 0xf000);
	mem[0xf000] = 0xff;
	CHECK_EQ_INT(vblk_req_complete(&req, VIRTIO_BLK_S_OK, 8192), 8193);
	CHECK_EQ_INT(mem[0xf000], VIRTIO_BLK_S_OK);

	/* data and status in one writable buffer, data over several */
	chain();
	hdr(0, VIRTIO_BLK_T_IN, 0);
	buf(0, 16, false);
	buf(0x1000, 4096, true);
	buf(0x3000, 4096 + 1, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.lba, 1000);
	CHECK_EQ_INT(req.nlb, 2);
	CHECK_EQ_INT(req.ndata, 2);
	CHECK_EQ_INT(req.data[1].len, 4096);
	CHECK(req.status_va == mem + 0x3000 + 4096);

	/* the last block of the target */
	simple(VIRTIO_BLK_T_IN, 99 * 8, 4096, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.lba, 1099);
}

static void test_write(void)
{
	/* header and data sharing the first readable buffer */
	chain();
	hdr(0x100, VIRTIO_BLK_T_OUT, 16);
	buf(0x100, 16 + 4096, false);
	buf(0x2000, 4096, false);
	buf(0xf000, 1, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.lba, 1002);
	CHECK_EQ_INT(req.nlb, 2);
	CHECK_EQ_INT(req.ndata, 2);
	CHECK_EQ_INT(req.data[0].gpa, GPA_BASE + 0x110);
	CHECK(req.data[0].va == mem + 0x110);
	CHECK_EQ_INT(req.data[0].len, 4096);
	CHECK_EQ_INT(req.data[1].gpa, GPA_BASE + 0x2000);
	/* nothing of the data is written back: the status byte only */
	CHECK_EQ_INT(vblk_req_complete(&req, VIRTIO_BLK_S_OK, 0), 1);
}

/* 2.7.4: the header may arrive in pieces, and share a buffer with data. */
static void test_split_header(void)
{
	chain();
	hdr(0x100, VIRTIO_BLK_T_OUT, 24);
	buf(0x100, 8, false);
	memmove(mem + 0x200, mem + 0x108, 8);
	buf(0x200, 8, false);
	buf(0x1000, 4096, false);
	buf(0xf000, 1, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.type, VIRTIO_BLK_T_OUT);
	CHECK_EQ_INT(req.lba, 1003);
	CHECK_EQ_INT(req.ndata, 1);
	CHECK_EQ_INT(req.data[0].gpa, GPA_BASE + 0x1000);

	/* 5 + 11 bytes of header, the second piece followed by data */
	chain();
	hdr(0x100, VIRTIO_BLK_T_OUT, 32);
	memmove(mem + 0x200, mem + 0x105, 11);
	buf(0x100, 5, false);
	buf(0x200, 11 + 4096, false);
	buf(0xf000, 1, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.lba, 1004);
	CHECK_EQ_INT(req.ndata, 1);
	CHECK_EQ_INT(req.data[0].gpa, GPA_BASE + 0x200 + 11);
	CHECK_EQ_INT(req.data[0].len, 4096);

	/* a header one byte short */
	chain();
	hdr(0, VIRTIO_BLK_T_IN, 0);
	buf(0, 15, false);
	buf(0x1000, 4097, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "header shorter than 16 bytes");
	/* refused: the data was not written, so used len is 0 */
	CHECK_EQ_INT(vblk_req_complete(&req, req.status, 0), 0);
	CHECK_EQ_INT(mem[0x1000 + 4096], VIRTIO_BLK_S_IOERR);
}

static void test_status_byte(void)
{
	/* the last buffer is device-readable: nowhere to put a status */
	chain();
	hdr(0, VIRTIO_BLK_T_OUT, 0);
	buf(0, 16, false);
	buf(0x1000, 4096 + 1, false);
	CHECK_EQ_INT(parse(&t4k), -EBADMSG);
	CHECK_STREQ(req.why, "status byte not in a device-writable buffer");
	CHECK(req.status_va == NULL);

	chain();
	hdr(0, VIRTIO_BLK_T_FLUSH, 0);
	buf(0, 17, false);
	CHECK_EQ_INT(parse(&t4k), -EBADMSG);
}

static void test_range(void)
{
	/* past the end, and straddling it */
	simple(VIRTIO_BLK_T_IN, 100 * 8, 4096, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "beyond the end of the device");
	simple(VIRTIO_BLK_T_OUT, 99 * 8, 8192, false);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "beyond the end of the device");
	/* sectors so large that sector * 512 or lba + n would wrap */
	simple(VIRTIO_BLK_T_IN, UINT64_MAX, 4096, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "sector beyond any disk");
	simple(VIRTIO_BLK_T_IN, UINT64_MAX / 512 / 8 * 8, 4096, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "beyond the end of the device");
	/* not whole 4 KiB blocks, or not starting on one */
	simple(VIRTIO_BLK_T_IN, 8, 4096 + 512, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "length not a whole number of logical blocks");
	simple(VIRTIO_BLK_T_OUT, 1, 4096, false);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "sector not aligned to the logical block size");
	/* zero-length transfers */
	simple(VIRTIO_BLK_T_IN, 8, 0, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "read of zero bytes");
	simple(VIRTIO_BLK_T_OUT, 8, 0, false);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "write of zero bytes");

	/* 512-byte blocks: sectors are blocks */
	struct vblk_target t512 = { .first_lba = 34, .nlba = 2048, .lba_size = 512 };

	simple(VIRTIO_BLK_T_IN, 2047, 512, true);
	expect(&t512, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.lba, 34 + 2047);
	CHECK_EQ_INT(req.nlb, 1);
	simple(VIRTIO_BLK_T_IN, 2047, 1024, true);
	expect(&t512, VIRTIO_BLK_S_IOERR, "beyond the end of the device");
	/* a target at the very top of the LBA space */
	t512.first_lba = UINT64_MAX - 2048;
	simple(VIRTIO_BLK_T_OUT, 2047, 512, false);
	expect(&t512, VIRTIO_BLK_S_OK, NULL);
	CHECK(req.lba == UINT64_MAX - 1);
}

static void test_direction(void)
{
	chain();
	hdr(0, VIRTIO_BLK_T_IN, 8);
	buf(0, 16 + 4096, false);
	buf(0xf000, 4097, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "device-readable data in a read");
	simple(VIRTIO_BLK_T_OUT, 8, 4096, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "device-writable data in a write");
}

static void test_readonly(void)
{
	struct vblk_target ro = t4k;

	ro.readonly = true;
	simple(VIRTIO_BLK_T_OUT, 8, 4096, false);
	expect(&ro, VIRTIO_BLK_S_IOERR, "write to a read-only device");
	simple(VIRTIO_BLK_T_IN, 8, 4096, true);
	expect(&ro, VIRTIO_BLK_S_OK, NULL);
	simple(VIRTIO_BLK_T_FLUSH, 0, 0, false);
	expect(&ro, VIRTIO_BLK_S_OK, NULL);
	chain();
	hdr(0, VIRTIO_BLK_T_DISCARD, 0);
	range(16, 0, 8, 0);
	buf(0, 32, false);
	buf(0xf000, 1, true);
	expect(&ro, VIRTIO_BLK_S_IOERR, "write to a read-only device");
	hdr(0, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	expect(&ro, VIRTIO_BLK_S_IOERR, "write to a read-only device");
}

static void test_flush(void)
{
	/* sector is unused for a flush */
	simple(VIRTIO_BLK_T_FLUSH, 12345, 0, false);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.data_len, 0);
	CHECK_EQ_INT(vblk_req_complete(&req, VIRTIO_BLK_S_OK, 0), 1);
	simple(VIRTIO_BLK_T_FLUSH, 0, 512, false);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "data in a flush");
	simple(VIRTIO_BLK_T_FLUSH, 0, 512, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "data in a flush");
}

static void test_get_id(void)
{
	memset(mem + 0x1000, 0xaa, 512);
	simple(VIRTIO_BLK_T_GET_ID, 0, 512, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(vblk_req_fill_id(&req, "SN123:n1"), 20);
	CHECK(memcmp(mem + 0x1000, "SN123:n1\0\0\0\0\0\0\0\0\0\0\0\0", 20) == 0);
	CHECK_EQ_INT(mem[0x1000 + 20], 0xaa);
	/* only a prefix of the writable buffers was written */
	CHECK_EQ_INT(vblk_req_complete(&req, VIRTIO_BLK_S_OK, 20), 20);

	/* exactly 20 bytes: no terminator, and the status is contiguous */
	simple(VIRTIO_BLK_T_GET_ID, 0, 20, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(vblk_req_fill_id(&req, "0123456789abcdefghijKLMN"), 20);
	CHECK(memcmp(mem + 0x1000, "0123456789abcdefghij", 20) == 0);
	CHECK_EQ_INT(vblk_req_complete(&req, VIRTIO_BLK_S_OK, 20), 21);

	/* a short buffer, split in two */
	memset(mem + 0x1000, 0xaa, 512);
	chain();
	hdr(0, VIRTIO_BLK_T_GET_ID, 0);
	buf(0, 16, false);
	buf(0x1000, 3, true);
	buf(0x1100, 5 + 1, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(vblk_req_fill_id(&req, "SN123:n1"), 8);
	CHECK(memcmp(mem + 0x1000, "SN1", 3) == 0);
	CHECK(memcmp(mem + 0x1100, "23:n1", 5) == 0);
	CHECK_EQ_INT(mem[0x1105], 0xaa);

	simple(VIRTIO_BLK_T_GET_ID, 0, 0, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "read of zero bytes");

	/* never into another request's buffers */
	memset(mem + 0x1000, 0xaa, 512);
	simple(VIRTIO_BLK_T_OUT, 8, 4096, false);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(vblk_req_fill_id(&req, "SN"), 0);
	CHECK_EQ_INT(mem[0x1000], 0xaa);
}

/* A DISCARD or WRITE_ZEROES request with n ranges at 0x1000. */
static void dwz(uint32_t type, unsigned n)
{
	chain();
	hdr(0, type, 0);
	buf(0, 16, false);
	buf(0x1000, n * 16, false);
	buf(0xf000, 1, true);
}

static void test_discard(void)
{
	range(0x1000, 8, 16, 0);
	range(0x1010, 800 - 8, 8, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 2);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.nranges, 2);
	CHECK_EQ_INT(req.ranges[0].lba, 1001);
	CHECK_EQ_INT(req.ranges[0].nlb, 2);
	CHECK_EQ_INT(req.ranges[1].lba, 1099);
	CHECK_EQ_INT(req.ranges[1].nlb, 1);
	CHECK(!req.ranges[0].unmap);

	/* a range straddling two buffers, after a header in pieces */
	chain();
	hdr(0x100, VIRTIO_BLK_T_DISCARD, 0);
	range(0x110, 0, 8, 0);
	range(0x120, 16, 8, 0);
	buf(0x100, 10, false);
	buf(0x10a, 14, false);
	buf(0x118, 24, false);
	buf(0xf000, 1, true);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.nranges, 2);
	CHECK_EQ_INT(req.ranges[1].lba, 1002);

	range(0x1000, 800, 8, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "beyond the end of the device");
	range(0x1000, 792, 16, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "beyond the end of the device");
	range(0x1000, 4, 8, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "sector not aligned to the logical block size");
	range(0x1000, 8, 12, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "length not a whole number of logical blocks");
	range(0x1000, 8, 0, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "empty range");
	range(0x1000, 0, 264, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "range longer than advertised");
	range(0x1000, UINT64_MAX - 7, 8, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "sector beyond any disk");

	/* 5.2.6.2: unknown flags and unmap on a discard are UNSUPP, even
	 * when another range is wrong too */
	range(0x1000, 800, 8, 0);
	range(0x1010, 8, 8, 1u << 5);
	dwz(VIRTIO_BLK_T_DISCARD, 2);
	expect(&t4k, VIRTIO_BLK_S_UNSUPP, "reserved range flag set");
	range(0x1010, 8, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	dwz(VIRTIO_BLK_T_DISCARD, 2);
	expect(&t4k, VIRTIO_BLK_S_UNSUPP, "unmap flag on a discard");

	/* the array itself */
	for (unsigned i = 0; i < 5; i++)
		range(0x1000 + i * 16, i * 8, 8, 0);
	dwz(VIRTIO_BLK_T_DISCARD, 4);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.nranges, 4);
	dwz(VIRTIO_BLK_T_DISCARD, 5);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "more ranges than advertised");
	dwz(VIRTIO_BLK_T_DISCARD, 0);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "range array not a multiple of 16 bytes");
	chain();
	hdr(0, VIRTIO_BLK_T_DISCARD, 0);
	buf(0, 16 + 24, false);
	buf(0xf000, 1, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "range array not a multiple of 16 bytes");
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	buf(0xf100, 8, true);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "device-writable data in a write");

	/* not offered */
	struct vblk_target none = t4k;

	none.max_discard_seg = 0;
	none.max_write_zeroes_seg = 0;
	dwz(VIRTIO_BLK_T_DISCARD, 1);
	expect(&none, VIRTIO_BLK_S_UNSUPP, "request type not offered");
	dwz(VIRTIO_BLK_T_WRITE_ZEROES, 1);
	expect(&none, VIRTIO_BLK_S_UNSUPP, "request type not offered");
}

static void test_write_zeroes(void)
{
	/* the whole target in one range, and an overlapping one */
	range(0x1000, 0, 800, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	range(0x1010, 0, 8, 0);
	dwz(VIRTIO_BLK_T_WRITE_ZEROES, 2);
	expect(&t4k, VIRTIO_BLK_S_OK, NULL);
	CHECK_EQ_INT(req.nranges, 2);
	CHECK_EQ_INT(req.ranges[0].lba, 1000);
	CHECK_EQ_INT(req.ranges[0].nlb, 100);
	CHECK(req.ranges[0].unmap);
	CHECK(!req.ranges[1].unmap);
	range(0x1000, 0, 1032, 0);
	dwz(VIRTIO_BLK_T_WRITE_ZEROES, 2);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "range longer than advertised");
	range(0x1000, 0, 8, 0x80000000u);
	dwz(VIRTIO_BLK_T_WRITE_ZEROES, 2);
	expect(&t4k, VIRTIO_BLK_S_UNSUPP, "reserved range flag set");
	dwz(VIRTIO_BLK_T_WRITE_ZEROES, 3);
	expect(&t4k, VIRTIO_BLK_S_IOERR, "more ranges than advertised");
}

static void test_unknown(void)
{
	static const uint32_t types[] = { 2, 3, 5, 10, 14, 15, 16, 0x80000000u, UINT32_MAX };

	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		simple(types[i], 0, 0, false);
		expect(&t4k, VIRTIO_BLK_S_UNSUPP, "unknown request type");
		CHECK_EQ_INT(req.type, types[i]);
		CHECK(req.status_va == mem + 0xf000);
	}
}

static void test_bad_target(void)
{
	struct vblk_target t = t4k;

	simple(VIRTIO_BLK_T_IN, 8, 4096, true);
	t.lba_size = 1000;
	CHECK_EQ_INT(parse(&t), -EINVAL);
	t.lba_size = 256;
	CHECK_EQ_INT(parse(&t), -EINVAL);
	t = t4k;
	t.first_lba = UINT64_MAX - 50;
	CHECK_EQ_INT(parse(&t), -EINVAL);
	t = t4k;
	t.max_discard_seg = VBLK_RANGES_MAX + 1;
	CHECK_EQ_INT(parse(&t), -EINVAL);
	t = t4k;
	t.max_write_zeroes_sectors = 0;
	CHECK_EQ_INT(parse(&t), -EINVAL);
	CHECK_EQ_INT(parse(&t4k), 0);
}

int main(void)
{
	mem = calloc(1, MEM_SIZE);
	if (!mem)
		return 1;
	test_read();
	test_write();
	test_split_header();
	test_status_byte();
	test_range();
	test_direction();
	test_readonly();
	test_flush();
	test_get_id();
	test_discard();
	test_write_zeroes();
	test_unknown();
	test_bad_target();
	free(mem);
	return check_report("blk_req");
}
