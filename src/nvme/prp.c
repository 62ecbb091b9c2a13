#include "nvme/prp.h"

#include <errno.h>
#include <string.h>

/* Walks `len` bytes of a segment list from (segs[0], off) and calls back
 * for each contiguous piece. Returns -EINVAL if the list runs out. */
struct piece {
	uint64_t iova;
	uint32_t len;
	bool last;
};

static int next_piece(const struct nvme_seg *segs, unsigned nseg, unsigned *i, size_t *off,
		      size_t *left, struct piece *p)
{
	while (*i < nseg && *off >= segs[*i].len) {
		*off -= segs[*i].len;
		(*i)++;
	}
	if (*i >= nseg)
		return -EINVAL;
	p->iova = segs[*i].iova + *off;
	p->len = (uint32_t)(segs[*i].len - *off);
	if (p->len > *left)
		p->len = (uint32_t)*left;
	*left -= p->len;
	*off += p->len;
	p->last = *left == 0;
	return 0;
}

/* Iterates the PRP entries (one per memory page touched) of a transfer,
 * validating the PRP rules as it goes. */
struct prp_iter {
	const struct nvme_seg *segs;
	unsigned nseg, i;
	size_t off, left;
	uint64_t mask, page_size;
	uint64_t addr, end;	/* the current piece, [addr, end) */
	bool first, last;
};

static int prp_next(struct prp_iter *it, uint64_t *entry)
{
	if (it->addr >= it->end) {
		struct piece p;

		if (!it->left)
			return 0;
		if (next_piece(it->segs, it->nseg, &it->i, &it->off, &it->left, &p))
			return -EINVAL;
		if (p.iova & 3)
			return -EINVAL;	/* PRP entries are dword aligned (4.1.1) */
		if (!it->first && (p.iova & it->mask))
			return -EINVAL;	/* only the first entry may have an offset */
		if (!p.last && ((p.iova + p.len) & it->mask))
			return -EINVAL;	/* every page but the last is whole */
		it->first = false;
		it->addr = p.iova;
		it->end = p.iova + p.len;
	}
	*entry = it->addr;
	it->addr = (it->addr & ~it->mask) + it->page_size;
	return 1;
}

int nvme_build_prp(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t len,
		   uint32_t page_size, const struct nvme_list_pages *list,
		   uint64_t *prp1, uint64_t *prp2)
{
	const unsigned per_page = page_size / sizeof(uint64_t);
	struct prp_iter it = {
		.segs = segs, .nseg = nseg, .off = off, .left = len,
		.mask = (uint64_t)page_size - 1, .page_size = page_size, .first = true,
	};
	struct prp_iter again;
	uint64_t e, total = 0, in_list, need_pages;
	unsigned page = 0, slot = 0;
	int rc;

	if (!len || page_size < 512 || (page_size & (page_size - 1)))
		return -EINVAL;
	again = it;
	/* Pass 1: validate and count. */
	while ((rc = prp_next(&it, &e)) > 0)
		total++;
	if (rc < 0)
		return rc;
	it = again;
	prp_next(&it, prp1);
	if (total == 1) {
		*prp2 = 0;
		return 0;
	}
	if (total == 2) {
		prp_next(&it, prp2);
		return 0;
	}
	/* Entries 2..total live in the list; a page that is not the last
	 * gives its final slot to the pointer to the next page (4.1.1.2). */
	in_list = total - 1;
	need_pages = in_list <= per_page ? 1 : 1 + (in_list - per_page + per_page - 2) / (per_page - 1);
	if (!list || need_pages > list->npages)
		return -E2BIG;
	while (prp_next(&it, &e) > 0) {
		if (slot == per_page - 1 && in_list > 1) {
			list->va[page][slot] = list->iova[page + 1];
			page++;
			slot = 0;
		}
		list->va[page][slot++] = e;
		in_list--;
	}
	*prp2 = list->iova[0];
	return 0;
}

size_t nvme_prp_span(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t want,
		     uint32_t page_size)
{
	const uint64_t mask = (uint64_t)page_size - 1;
	size_t got = 0;
	bool first = true;

	for (unsigned i = 0; i < nseg && got < want; i++) {
		uint64_t a;
		size_t l;

		if (off >= segs[i].len) {
			off -= segs[i].len;
			continue;
		}
		a = segs[i].iova + off;
		l = segs[i].len - off;
		off = 0;
		if (l > want - got)
			l = want - got;
		/* The same rules nvme_build_prp enforces (4.1.1), read as
		 * where the run must stop rather than as errors. */
		if ((a & 3) || (!first && (a & mask)))
			break;
		first = false;
		got += l;
		if ((a + l) & mask)
			break;
	}
	return got;
}

size_t nvme_sgl_span(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t want,
		     unsigned max_desc)
{
	size_t got = 0;

	for (unsigned i = 0; i < nseg && max_desc && got < want; i++) {
		if (off >= segs[i].len) {
			off -= segs[i].len;
			continue;
		}
		got += segs[i].len - off;
		off = 0;
		max_desc--;
	}
	return got < want ? got : want;
}

int nvme_build_sgl(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t len,
		   bool dword_align, struct nvme_sgl_desc *list, uint64_t list_iova,
		   unsigned list_max, struct nvme_sgl_desc *sgl1)
{
	size_t left = len;
	unsigned i = 0, n = 0;

	if (!len)
		return -EINVAL;
	while (left) {
		struct piece p;
		struct nvme_sgl_desc d;

		if (next_piece(segs, nseg, &i, &off, &left, &p))
			return -EINVAL;
		if (dword_align && ((p.iova & 3) || (p.len & 3)))
			return -EINVAL;
		memset(&d, 0, sizeof(d));
		d.addr = p.iova;
		d.len = p.len;
		d.type = NVME_SGL_TYPE_DATA_BLOCK;
		if (n == 0 && p.last) {
			*sgl1 = d;
			return 0;
		}
		if (n >= list_max || !list)
			return -E2BIG;
		list[n++] = d;
	}
	memset(sgl1, 0, sizeof(*sgl1));
	sgl1->addr = list_iova;
	sgl1->len = n * (uint32_t)sizeof(struct nvme_sgl_desc);
	sgl1->type = NVME_SGL_TYPE_LAST_SEGMENT;
	return 0;
}
