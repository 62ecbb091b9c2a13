/* Data pointers for NVMe commands: PRP entries and lists (NVMe 2.0,
 * 4.1.1) and SGL descriptors (4.3). Pure functions over segment lists. */
#ifndef NVD_NVME_PRP_H
#define NVD_NVME_PRP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/nvme_spec.h"

/* One piece of a request's data, already an address the device can use. */
struct nvme_seg {
	uint64_t iova;
	uint32_t len;
};

/* PRP list memory: `npages` pages of `page_size` bytes. Entries are written
 * through va[i]; the device finds page i at iova[i]. When one page does not
 * hold every entry, its last entry points at the next page (4.1.1.2). */
struct nvme_list_pages {
	uint64_t *const *va;
	const uint64_t *iova;
	unsigned npages;
};

/* Fills PRP1/PRP2 for `len` bytes starting `off` bytes into segs[0].
 * Errors: -EINVAL when the segments break PRP rules (an entry not dword
 * aligned, a segment after the first not starting on a page, a segment
 * before the last not ending on one, or too few bytes in segs), -E2BIG
 * when the list pages are too few. */
int nvme_build_prp(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t len,
		   uint32_t page_size, const struct nvme_list_pages *list,
		   uint64_t *prp1, uint64_t *prp2);

/* How many bytes (at most `want`) starting `off` into segs[0] one PRP
 * data pointer can describe: the first piece dword aligned, every later
 * piece starting on a page, every piece but the last ending on one. The
 * caller splits a request where the run ends; 0 means even the first
 * piece is unusable (not dword aligned) and only a bounce buffer helps.
 * List capacity is not checked: bound `want` by the transfer the list
 * pages were sized for. */
size_t nvme_prp_span(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t want,
		     uint32_t page_size);

/* How many bytes (at most `want`) starting `off` into segs[0] fit in at
 * most `max_desc` SGL data block descriptors. */
size_t nvme_sgl_span(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t want,
		     unsigned max_desc);

/* Builds the SGL for `len` bytes starting `off` into segs[0]: a single data
 * block goes into *sgl1 itself; more become a Last Segment descriptor
 * pointing at `list` (device address list_iova, room for list_max). With
 * dword_align (SGLS = 10b) every block's address and length must be
 * multiples of 4. Errors: -EINVAL (alignment, too few bytes), -E2BIG. */
int nvme_build_sgl(const struct nvme_seg *segs, unsigned nseg, size_t off, size_t len,
		   bool dword_align, struct nvme_sgl_desc *list, uint64_t list_iova,
		   unsigned list_max, struct nvme_sgl_desc *sgl1);

#endif
