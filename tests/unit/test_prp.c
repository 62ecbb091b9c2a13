/* PRP and SGL building: page boundaries, offsets, chained PRP lists, the
 * rules that make a segment list unusable, and SGL alignment. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "nvme/prp.h"

#define PS 4096u
#define PER_PAGE (PS / 8)

static uint64_t pages_mem[4][PER_PAGE];
static uint64_t *const pages_va[4] = { pages_mem[0], pages_mem[1], pages_mem[2], pages_mem[3] };
static const uint64_t pages_iova[4] = { 0xa0000000, 0xa0001000, 0xa0002000, 0xa0003000 };

static struct nvme_list_pages lp(unsigned n)
{
	struct nvme_list_pages l = { .va = pages_va, .iova = pages_iova, .npages = n };
	return l;
}

static void test_single_page(void)
{
	struct nvme_seg s = { 0x10000, 4096 };
	struct nvme_list_pages l = lp(1);
	uint64_t p1, p2;

	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, 4096, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x10000);
	CHECK_EQ_INT(p2, 0);
	/* 512 bytes with an offset stay in one page */
	s.iova = 0x10200;
	s.len = 512;
	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, 512, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x10200);
	CHECK_EQ_INT(p2, 0);
}

static void test_two_pages(void)
{
	struct nvme_seg s = { 0x10000, 8192 };
	struct nvme_list_pages l = lp(1);
	uint64_t p1, p2;

	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, 8192, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x10000);
	CHECK_EQ_INT(p2, 0x11000);
	/* an offset start crossing one page boundary: two entries */
	s.iova = 0x10e00;
	s.len = 1024;
	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, 1024, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x10e00);
	CHECK_EQ_INT(p2, 0x11000);
}

static void test_list(void)
{
	struct nvme_seg s = { 0x100000, 16 * 4096 };
	struct nvme_list_pages l = lp(1);
	uint64_t p1, p2;

	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, 16 * 4096, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x100000);
	CHECK_EQ_INT(p2, pages_iova[0]);
	for (unsigned i = 0; i < 15; i++)
		CHECK_EQ_INT(pages_mem[0][i], 0x101000 + 0x1000ull * i);
}

static void test_list_from_offset_in_segments(void)
{
	/* three page segments, scattered; start 1 KiB into the first */
	struct nvme_seg s[3] = { { 0x5000, 4096 }, { 0x9000, 4096 }, { 0x2000, 4096 } };
	struct nvme_list_pages l = lp(1);
	uint64_t p1, p2;

	CHECK_EQ_INT(nvme_build_prp(s, 3, 1024, 3 * 4096 - 1024, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x5400);
	CHECK_EQ_INT(p2, pages_iova[0]);
	CHECK_EQ_INT(pages_mem[0][0], 0x9000);
	CHECK_EQ_INT(pages_mem[0][1], 0x2000);
	/* only part of the second segment: two entries, no list */
	CHECK_EQ_INT(nvme_build_prp(s, 3, 4096, 2048, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x9000);
	CHECK_EQ_INT(p2, 0);
}

static void test_chained(void)
{
	/* 4 MiB from a 512-byte offset: 1025 entries; 1024 in lists: 511 + 511 + 2 */
	size_t len = 4u << 20;
	struct nvme_seg s = { 0x40000200, (uint32_t)len };
	struct nvme_list_pages l3 = lp(3), l2 = lp(2);
	uint64_t p1, p2;

	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, len, PS, &l2, &p1, &p2), -E2BIG);
	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, len, PS, &l3, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x40000200);
	CHECK_EQ_INT(p2, pages_iova[0]);
	CHECK_EQ_INT(pages_mem[0][0], 0x40001000);
	CHECK_EQ_INT(pages_mem[0][510], 0x40000000 + 511ull * 4096);
	CHECK_EQ_INT(pages_mem[0][511], pages_iova[1]);	/* chain */
	CHECK_EQ_INT(pages_mem[1][0], 0x40000000 + 512ull * 4096);
	CHECK_EQ_INT(pages_mem[1][511], pages_iova[2]);
	CHECK_EQ_INT(pages_mem[1][510], 0x40000000 + 1022ull * 4096);
	CHECK_EQ_INT(pages_mem[2][0], 0x40000000 + 1023ull * 4096);
	CHECK_EQ_INT(pages_mem[2][1], 0x40000000 + 1024ull * 4096);
	/* the same length page-aligned needs one entry less: two pages */
	s.iova = 0x40000000;
	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, len, PS, &l2, &p1, &p2), 0);

	/* exactly 513 entries: 512 fit in one list page, no chain needed */
	s.len = 513 * 4096;
	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, s.len, PS, &l2, &p1, &p2), 0);
	CHECK_EQ_INT(pages_mem[0][511], 0x40000000 + 512ull * 4096);
	/* 514 entries need the chain */
	s.len = 514 * 4096;
	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, s.len, PS, &l2, &p1, &p2), 0);
	CHECK_EQ_INT(pages_mem[0][511], pages_iova[1]);
	CHECK_EQ_INT(pages_mem[1][0], 0x40000000 + 512ull * 4096);
	CHECK_EQ_INT(pages_mem[1][1], 0x40000000 + 513ull * 4096);
	CHECK_EQ_INT(nvme_build_prp(&s, 1, 0, s.len, PS, NULL, &p1, &p2), -E2BIG);
}

static void test_prp_rules(void)
{
	struct nvme_list_pages l = lp(1);
	uint64_t p1, p2;
	/* second segment not page-aligned */
	struct nvme_seg a[2] = { { 0x1000, 4096 }, { 0x3200, 4096 } };
	/* first segment ends mid-page, a second follows */
	struct nvme_seg b[2] = { { 0x1000, 2048 }, { 0x3000, 4096 } };
	/* not dword aligned */
	struct nvme_seg c = { 0x1002, 512 };
	/* too few bytes */
	struct nvme_seg d = { 0x1000, 512 };

	CHECK_EQ_INT(nvme_build_prp(a, 2, 0, 8192, PS, &l, &p1, &p2), -EINVAL);
	CHECK_EQ_INT(nvme_build_prp(b, 2, 0, 6144, PS, &l, &p1, &p2), -EINVAL);
	CHECK_EQ_INT(nvme_build_prp(&c, 1, 0, 512, PS, &l, &p1, &p2), -EINVAL);
	CHECK_EQ_INT(nvme_build_prp(&d, 1, 0, 1024, PS, &l, &p1, &p2), -EINVAL);
	CHECK_EQ_INT(nvme_build_prp(&d, 1, 0, 0, PS, &l, &p1, &p2), -EINVAL);
	CHECK_EQ_INT(nvme_build_prp(&d, 1, 0, 512, 3000, &l, &p1, &p2), -EINVAL);
	/* a mid-page end is fine when it is the last */
	CHECK_EQ_INT(nvme_build_prp(b, 1, 0, 2048, PS, &l, &p1, &p2), 0);
}

/* Where a PRP run must end: the split points of a request on a PRP-only
 * controller (issue 8: 512-byte iovecs in different pages got EIO). */
static void test_prp_span(void)
{
	/* 512-byte pieces at odd offsets of different pages: one run each */
	struct nvme_seg odd[3] = { { 0x10200, 512 }, { 0x20600, 512 }, { 0x30e00, 512 } };
	/* a tail ending on a page, whole pages, then a head: one run */
	struct nvme_seg ok[3] = { { 0x10e00, 512 }, { 0x20000, 8192 }, { 0x40000, 1024 } };
	/* the second piece starts mid-page: the run ends before it */
	struct nvme_seg late[2] = { { 0x10000, 4096 }, { 0x20200, 4096 } };
	/* not dword aligned: nothing */
	struct nvme_seg bad = { 0x10002, 512 };
	uint64_t p1, p2;
	struct nvme_list_pages l = lp(1);

	CHECK_EQ_INT(nvme_prp_span(odd, 3, 0, 1536, PS), 512);
	CHECK_EQ_INT(nvme_prp_span(odd, 3, 512, 1024, PS), 512);
	CHECK_EQ_INT(nvme_prp_span(odd, 3, 1024, 512, PS), 512);
	/* from inside a piece */
	CHECK_EQ_INT(nvme_prp_span(odd, 3, 100, 1436, PS), 412);
	CHECK_EQ_INT(nvme_prp_span(ok, 3, 0, 512 + 8192 + 1024, PS), 512 + 8192 + 1024);
	CHECK_EQ_INT(nvme_prp_span(ok, 3, 0, 600, PS), 600);	/* bounded by want */
	CHECK_EQ_INT(nvme_prp_span(late, 2, 0, 8192, PS), 4096);
	CHECK_EQ_INT(nvme_prp_span(late, 2, 4096, 4096, PS), 4096);
	CHECK_EQ_INT(nvme_prp_span(&bad, 1, 0, 512, PS), 0);
	CHECK_EQ_INT(nvme_prp_span(&bad, 1, 2, 508, PS), 508);
	CHECK_EQ_INT(nvme_prp_span(odd, 3, 1536, 512, PS), 0);	/* past the data */
	/* every span it reports, nvme_build_prp accepts */
	CHECK_EQ_INT(nvme_build_prp(ok, 3, 0, 512 + 8192 + 1024, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(nvme_build_prp(odd, 3, 512, 512, PS, &l, &p1, &p2), 0);
	CHECK_EQ_INT(p1, 0x20600);
	CHECK_EQ_INT(nvme_build_prp(late, 2, 0, 4096, PS, &l, &p1, &p2), 0);
}

static void test_sgl(void)
{
	struct nvme_sgl_desc list[4], sgl1;
	struct nvme_seg s[3] = { { 0x1000, 4096 }, { 0x8002, 510 }, { 0x9000, 1024 } };

	/* one block: inline data block descriptor */
	CHECK_EQ_INT(nvme_build_sgl(s, 3, 0, 4096, false, list, 0xb000, 4, &sgl1), 0);
	CHECK_EQ_INT(sgl1.type, NVME_SGL_TYPE_DATA_BLOCK);
	CHECK_EQ_INT(sgl1.addr, 0x1000);
	CHECK_EQ_INT(sgl1.len, 4096);
	/* three blocks through a last-segment list */
	CHECK_EQ_INT(nvme_build_sgl(s, 3, 0, 4096 + 510 + 1024, false, list, 0xb000, 4, &sgl1), 0);
	CHECK_EQ_INT(sgl1.type, NVME_SGL_TYPE_LAST_SEGMENT);
	CHECK_EQ_INT(sgl1.addr, 0xb000);
	CHECK_EQ_INT(sgl1.len, 3 * 16);
	CHECK_EQ_INT(list[1].addr, 0x8002);
	CHECK_EQ_INT(list[1].len, 510);
	CHECK_EQ_INT(list[2].type, NVME_SGL_TYPE_DATA_BLOCK);
	/* starting inside the first segment, ending inside the last */
	CHECK_EQ_INT(nvme_build_sgl(s, 3, 100, 4096 - 100 + 510 + 10, false, list, 0xb000, 4, &sgl1), 0);
	CHECK_EQ_INT(list[0].addr, 0x1000 + 100);
	CHECK_EQ_INT(list[0].len, 4096 - 100);
	CHECK_EQ_INT(list[2].len, 10);
	/* dword variant refuses the odd block */
	CHECK_EQ_INT(nvme_build_sgl(s, 3, 0, 4096 + 510, true, list, 0xb000, 4, &sgl1), -EINVAL);
	/* too few descriptors */
	CHECK_EQ_INT(nvme_build_sgl(s, 3, 0, 4096 + 510 + 1024, false, list, 0xb000, 2, &sgl1), -E2BIG);
	/* span: what fits in 2 descriptors */
	CHECK_EQ_INT(nvme_sgl_span(s, 3, 0, 100000, 2), 4096 + 510);
	CHECK_EQ_INT(nvme_sgl_span(s, 3, 4000, 100000, 1), 96);
	CHECK_EQ_INT(nvme_sgl_span(s, 3, 0, 1000, 3), 1000);
	/* too few bytes */
	CHECK_EQ_INT(nvme_build_sgl(s, 3, 0, 8192, false, list, 0xb000, 4, &sgl1), -EINVAL);
}

int main(void)
{
	test_single_page();
	test_two_pages();
	test_list();
	test_list_from_offset_in_segments();
	test_chained();
	test_prp_rules();
	test_prp_span();
	test_sgl();
	return check_report("test_prp");
}
