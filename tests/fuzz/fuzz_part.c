/* libFuzzer entry for the partition parser: the input is a disk image.
 *
 *   byte 0   bit 0: 4096-byte blocks (else 512)
 *            bit 1: fix up the GPT CRCs at LBA 1 and the last LBA first, so
 *                   mutations reach the checks that come after the CRCs
 *   byte 1   extra zero blocks past the image (x16), to move the last LBA
 *   rest     the image; blocks past it read as zeros
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "blk/part.h"
#include "fuzz.h"
#include "spec/gpt.h"

struct image {
	uint8_t *buf;
	size_t len;
	uint32_t lba_size;
	uint64_t nlba;
};

static int image_read(void *ctx, uint64_t lba, uint32_t nlb, void *buf)
{
	struct image *im = ctx;
	uint8_t *out = buf;

	/* The parser must never read off the disk. */
	FUZZ_ASSERT(nlb != 0 && lba < im->nlba && nlb <= im->nlba - lba);
	for (uint32_t i = 0; i < nlb; i++, out += im->lba_size) {
		uint64_t off = (lba + i) * im->lba_size;

		memset(out, 0, im->lba_size);
		if (off < im->len)
			memcpy(out, im->buf + off,
			       im->len - off < im->lba_size ? im->len - off : im->lba_size);
	}
	return 0;
}

static void fix_crcs(struct image *im, uint64_t lba)
{
	uint64_t off = lba * im->lba_size, entries;
	struct gpt_header h;
	uint32_t hsize, crc;
	uint64_t bytes, aoff;

	if (lba == 0 || off > im->len || im->len - off < im->lba_size)
		return;
	memcpy(&h, im->buf + off, sizeof(h));
	hsize = le32toh(h.header_size);
	if (hsize < sizeof(h) || hsize > im->lba_size)
		return;
	entries = le64toh(h.partition_entry_lba);
	bytes = (uint64_t)le32toh(h.number_of_partition_entries) *
		le32toh(h.size_of_partition_entry);
	if (entries < im->len / im->lba_size && bytes <= im->len &&
	    (aoff = entries * im->lba_size) <= im->len - bytes) {
		crc = (uint32_t)crc32(0, im->buf + aoff, (uInt)bytes);
		h.partition_entry_array_crc32 = htole32(crc);
	}
	h.header_crc32 = 0;
	memcpy(im->buf + off, &h, sizeof(h));
	crc = (uint32_t)crc32(0, im->buf + off, hsize);
	h.header_crc32 = htole32(crc);
	memcpy(im->buf + off, &h, sizeof(h));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image im;
	struct part_reader r = { .read = image_read, .ctx = &im };
	struct part_table t;
	int rc;

	if (size < 2)
		return 0;
	im.lba_size = data[0] & 1 ? 4096 : 512;
	im.len = size - 2;
	im.buf = malloc(im.len ? im.len : 1);
	if (!im.buf)
		return 0;
	memcpy(im.buf, data + 2, im.len);
	im.nlba = (im.len + im.lba_size - 1) / im.lba_size + (uint64_t)data[1] * 16;
	if (data[0] & 2) {
		fix_crcs(&im, GPT_PRIMARY_LBA);
		if (im.nlba > 0)
			fix_crcs(&im, im.nlba - 1);
	}
	r.lba_size = im.lba_size;
	r.nlba = im.nlba;

	rc = part_read_table(&r, &t);
	FUZZ_ASSERT(rc == 0 || (t.count == 0 && t.parts == NULL));
	for (unsigned i = 0; i < t.count; i++) {
		const struct part_entry *p = &t.parts[i];

		/* Every partition lies on the disk, and the table is sorted. */
		FUZZ_ASSERT(p->nlba != 0 && p->first_lba < im.nlba &&
			    p->nlba <= im.nlba - p->first_lba);
		FUZZ_ASSERT(i == 0 || p->number > t.parts[i - 1].number);
		FUZZ_ASSERT(strnlen(p->label, PART_LABEL_MAX) < PART_LABEL_MAX);
		FUZZ_ASSERT(strnlen(p->uuid, sizeof(p->uuid)) < sizeof(p->uuid));
		FUZZ_ASSERT(strnlen(p->type, sizeof(p->type)) < sizeof(p->type));
	}
	part_table_free(&t);
	free(im.buf);
	return 0;
}
