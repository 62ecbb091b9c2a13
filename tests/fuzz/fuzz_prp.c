/* libFuzzer entry for PRP and SGL building: the input is a request's data
 * layout, the segments a client's descriptors became after translation to
 * IOVAs (their sizes and offsets are the client's choice).
 *
 *   byte 0      page size 512 << (n % 8); bits 3-5: PRP list pages, 0..7
 *               (none: no list); bit 6: SGL dword alignment (SGLS = 10b)
 *   byte 1      segments, 0..31
 *   byte 2      SGL list entries, 0..255
 *   bytes 3-5   off into segment 0; bytes 6-8 the length (up to 16 MiB)
 *   12 bytes per segment: IOVA (48 bits: 6 bytes), length (4 bytes),
 *               2 bytes ignored
 *
 * A model of the rules checks both builders: the PRP entries are the
 * pieces' page starts, in order, with list pages chained through their
 * last slot, and -EINVAL / -E2BIG exactly when a rule or the list size
 * says so; the SGL's data blocks are the pieces themselves. List pages are
 * exact-size heap blocks, so ASan reports a write past one. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "nvme/prp.h"

#define MAX_SEGS 32
#define MAX_PAGES 7
/* The most pieces a layout can have: one per segment. */
#define MAX_PIECES MAX_SEGS

struct piece {
	uint64_t iova;
	uint64_t len;
};

/* The pieces [off, off + len) covers, skipping empty segments; false when
 * the segments hold fewer bytes. */
static bool pieces_of(const struct nvme_seg *s, unsigned nseg, uint64_t off, uint64_t len,
		      struct piece *p, unsigned *np)
{
	*np = 0;
	for (unsigned i = 0; i < nseg && len; i++) {
		uint64_t take;

		if (off >= s[i].len) {
			off -= s[i].len;
			continue;
		}
		take = s[i].len - off < len ? s[i].len - off : len;
		p[(*np)++] = (struct piece){ s[i].iova + off, take };
		len -= take;
		off = 0;
	}
	return len == 0;
}

/* qpair.c splits a PRP-only request where nvme_prp_span says one PRP run
 * ends: that prefix must follow the rules, and one byte more must not
 * (the split is at the longest run, not merely at a safe one). */
static void check_prp_span(const struct nvme_seg *segs, unsigned nseg, uint64_t off, uint64_t len,
			   uint32_t ps)
{
	struct piece p[MAX_PIECES];
	unsigned np;
	uint64_t prp1, prp2, span;

	if (!len || !pieces_of(segs, nseg, off, len, p, &np))
		return;
	span = nvme_prp_span(segs, nseg, (size_t)off, (size_t)len, ps);
	FUZZ_ASSERT(span <= len);
	/* no list pages: -E2BIG says the rules held and only the list was short */
	if (span) {
		int rc = nvme_build_prp(segs, nseg, (size_t)off, (size_t)span, ps, NULL, &prp1, &prp2);
		FUZZ_ASSERT(rc == 0 || rc == -E2BIG);
	}
	if (span < len)
		FUZZ_ASSERT(nvme_build_prp(segs, nseg, (size_t)off, (size_t)span + 1, ps, NULL, &prp1,
					   &prp2) == -EINVAL);
}

static void check_prp(const struct nvme_seg *segs, unsigned nseg, uint64_t off, uint64_t len,
		      uint32_t ps, unsigned npages)
{
	uint64_t *pages[MAX_PAGES] = { 0 }, iova[MAX_PAGES];
	struct nvme_list_pages lp = { .va = pages, .iova = iova, .npages = npages };
	const uint64_t mask = ps - 1, per_page = ps / 8;
	struct piece p[MAX_PIECES];
	unsigned np;
	bool valid;
	uint64_t entries = 0, prp1 = 1, prp2 = 1, need = 0;
	int rc;

	for (unsigned i = 0; i < npages; i++)
		iova[i] = 0xf00000000000ull + (uint64_t)i * 0x100000;
	valid = len > 0 && pieces_of(segs, nseg, off, len, p, &np);
	for (unsigned i = 0; valid && i < np; i++) {
		if ((p[i].iova & 3) || (i > 0 && (p[i].iova & mask)) ||
		    (i + 1 < np && ((p[i].iova + p[i].len) & mask)))
			valid = false;
		/* one entry per page touched */
		entries += ((p[i].iova + p[i].len - 1) >> __builtin_ctz(ps)) -
			   (p[i].iova >> __builtin_ctz(ps)) + 1;
	}
	/* Entries 2.. go to the list; p pages hold p * (per_page - 1) + 1 of
	 * them, each page but the last giving a slot to the next's address. */
	if (valid && entries > 2)
		need = (entries - 1 - 1 + per_page - 2) / (per_page - 1);
	/* Only a list the builder may write is allocated (the rest stay NULL,
	 * a crash if touched): zeroing up to 7 pages of 64 KiB per input
	 * would cost most of the run. */
	for (unsigned i = 0; need && need <= npages && i < npages; i++) {
		pages[i] = calloc(1, ps);
		if (!pages[i])
			goto out;
	}
	rc = nvme_build_prp(segs, nseg, (size_t)off, (size_t)len, ps, npages ? &lp : NULL,
			    &prp1, &prp2);
	if (!valid) {
		FUZZ_ASSERT(rc == -EINVAL);
		goto out;
	}
	if (need > npages) {
		FUZZ_ASSERT(rc == -E2BIG);
		goto out;
	}
	FUZZ_ASSERT(rc == 0);

	/* Walk the entries as the controller would, against the pieces. */
	{
		uint64_t k = 0, page = 0, slot = 0;

		for (unsigned i = 0; i < np; i++) {
			for (uint64_t a = p[i].iova; a < p[i].iova + p[i].len;
			     a = (a & ~mask) + ps, k++) {
				uint64_t got;

				if (k == 0) {
					got = prp1;
				} else if (entries == 2) {
					got = prp2;
				} else {
					if (k == 1)
						FUZZ_ASSERT(prp2 == iova[0]);
					if (slot == per_page - 1 && entries - k > 1) {
						FUZZ_ASSERT(pages[page][slot] == iova[page + 1]);
						page++;
						slot = 0;
					}
					FUZZ_ASSERT(page < npages);
					got = pages[page][slot++];
				}
				FUZZ_ASSERT(got == a);
			}
		}
		FUZZ_ASSERT(k == entries);
		if (entries == 1)
			FUZZ_ASSERT(prp2 == 0);
	}
out:
	for (unsigned i = 0; i < npages; i++)
		free(pages[i]);
	check_prp_span(segs, nseg, off, len, ps);
}

static void check_sgl(const struct nvme_seg *segs, unsigned nseg, uint64_t off, uint64_t len,
		      bool dword, unsigned list_max)
{
	struct nvme_sgl_desc *list = list_max ? calloc(list_max, sizeof(*list)) : NULL;
	struct nvme_sgl_desc sgl1;
	struct piece p[MAX_PIECES];
	unsigned np = 0;
	bool enough = len > 0 && pieces_of(segs, nseg, off, len, p, &np), aligned = true;
	size_t span;
	int rc;

	if (list_max && !list)
		return;
	for (unsigned i = 0; i < np; i++)
		if (dword && ((p[i].iova & 3) || (p[i].len & 3)))
			aligned = false;
	rc = nvme_build_sgl(segs, nseg, (size_t)off, (size_t)len, dword, list, 0xe000, list_max,
			    &sgl1);
	if (rc == 0) {
		FUZZ_ASSERT(enough && aligned);
		if (np == 1) {
			FUZZ_ASSERT(sgl1.type == NVME_SGL_TYPE_DATA_BLOCK);
			FUZZ_ASSERT(sgl1.addr == p[0].iova && sgl1.len == p[0].len);
		} else {
			FUZZ_ASSERT(sgl1.type == NVME_SGL_TYPE_LAST_SEGMENT);
			FUZZ_ASSERT(sgl1.addr == 0xe000 && sgl1.len == np * 16u && np <= list_max);
			for (unsigned i = 0; i < np; i++)
				FUZZ_ASSERT(list[i].type == NVME_SGL_TYPE_DATA_BLOCK &&
					    list[i].addr == p[i].iova && list[i].len == p[i].len);
		}
	} else if (rc == -E2BIG) {
		/* a piece that is not the last needs the list, even when no
		 * bytes follow it */
		FUZZ_ASSERT(np > list_max && (np > 1 || !enough));
	} else {
		FUZZ_ASSERT(rc == -EINVAL && (!enough || !aligned));
	}
	if (enough && aligned)
		FUZZ_ASSERT(rc == 0 || rc == -E2BIG);

	/* qpair.c splits a request at the span one list holds: that part
	 * must then build. */
	span = nvme_sgl_span(segs, nseg, (size_t)off, (size_t)len, list_max);
	FUZZ_ASSERT(span <= len);
	if (span && !dword)
		FUZZ_ASSERT(nvme_build_sgl(segs, nseg, (size_t)off, span, false, list, 0xe000,
					   list_max, &sgl1) == 0);
	free(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned cfg = (unsigned)fuzz_take(&in, 1);
	uint32_t ps = 512u << (cfg % 8);
	unsigned npages = (cfg >> 3) & 7;
	bool dword = cfg & 0x40;
	unsigned nseg = (unsigned)fuzz_take(&in, 1) % MAX_SEGS;
	unsigned list_max = (unsigned)fuzz_take(&in, 1);
	uint64_t off = fuzz_take(&in, 3), len = fuzz_take(&in, 3);
	struct nvme_seg segs[MAX_SEGS];

	for (unsigned i = 0; i < nseg; i++) {
		segs[i].iova = fuzz_take(&in, 6);
		segs[i].len = (uint32_t)fuzz_take(&in, 4);
		(void)fuzz_take(&in, 2);
	}
	check_prp(segs, nseg, off, len, ps, npages);
	check_sgl(segs, nseg, off, len, dword, list_max);
	return 0;
}
