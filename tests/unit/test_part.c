/* Partition table parser: GPT and MBR images built in memory, one field
 * broken at a time; and, with an argument, real images made by sgdisk or
 * sfdisk in a temporary file. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <uchar.h>
#include <unistd.h>
#include <zlib.h>

#include "blk/part.h"
#include "spec/gpt.h"
#include "spec/mbr.h"

#include "check.h"

/* An in-memory disk. Blocks past `stored` read as zeros, so a disk can be
 * "grown" after its table was written. Reads off the disk are parser bugs. */
struct disk {
	uint8_t *buf;
	uint32_t lba_size;
	uint64_t nlba;
	uint64_t stored;
	bool fail;		/* reads covering fail_lba return fail_rc */
	uint64_t fail_lba;
	int fail_rc;
};

static int disk_read(void *ctx, uint64_t lba, uint32_t nlb, void *buf)
{
	struct disk *d = ctx;
	uint8_t *out = buf;

	CHECK(nlb > 0 && lba < d->nlba && nlb <= d->nlba - lba);
	if (nlb == 0 || lba >= d->nlba || nlb > d->nlba - lba)
		return -EINVAL;
	if (d->fail && d->fail_lba >= lba && d->fail_lba - lba < nlb)
		return d->fail_rc;
	for (uint32_t i = 0; i < nlb; i++, out += d->lba_size) {
		if (lba + i < d->stored)
			memcpy(out, d->buf + (lba + i) * d->lba_size, d->lba_size);
		else
			memset(out, 0, d->lba_size);
	}
	return 0;
}

static struct disk *disk_new(uint32_t lba_size, uint64_t nlba)
{
	struct disk *d = calloc(1, sizeof(*d));

	d->buf = calloc(nlba, lba_size);
	d->lba_size = lba_size;
	d->nlba = d->stored = nlba;
	return d;
}

static void disk_free(struct disk *d)
{
	free(d->buf);
	free(d);
}

static uint8_t *blk(struct disk *d, uint64_t lba)
{
	return d->buf + lba * d->lba_size;
}

static int parse(struct disk *d, struct part_table *t)
{
	struct part_reader r = {
		.read = disk_read, .ctx = d, .lba_size = d->lba_size, .nlba = d->nlba,
	};

	return part_read_table(&r, t);
}

struct want {
	unsigned number;
	const char *uuid, *type, *label;
	uint64_t first, nlba;
};

/* Compares the table with `w`; on a mismatch also says which call it was. */
static void check_parts_at(const struct part_table *t, const struct want *w, unsigned n,
			   int line)
{
	unsigned failed = check_failed;

	CHECK_EQ_INT(t->count, n);
	for (unsigned i = 0; i < n && i < t->count; i++) {
		const struct part_entry *p = &t->parts[i];

		CHECK_EQ_INT(p->number, w[i].number);
		CHECK_STREQ(p->uuid, w[i].uuid);
		CHECK_STREQ(p->type, w[i].type);
		CHECK_STREQ(p->label, w[i].label);
		CHECK_EQ_INT(p->first_lba, w[i].first);
		CHECK_EQ_INT(p->nlba, w[i].nlba);
	}
	if (check_failed != failed)
		printf("  (in check_parts called from line %d)\n", line);
}
#define check_parts(t, w, n) check_parts_at(t, w, n, __LINE__)

/* GPT images. */

#define LINUX_FS "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
/* The Linux filesystem type GUID as it sits on disk: a known vector for
 * the mixed-endian text form, independent of this file's own encoder. */
static const uint8_t linux_fs_raw[16] = {
	0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
	0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
};
#define DISK_GUID "11111111-2222-3333-4444-555555555555"
#define UUID_A "0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9"
#define UUID_B "DEADBEEF-0001-0002-0304-050607080910"
#define UUID_C "CAFEF00D-FFFF-EEEE-DDDD-CCCCCCCCCCCC"

static int hexval(char c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static struct gpt_guid guid(const char *text)
{
	uint8_t b[16];
	struct gpt_guid g;

	for (unsigned i = 0; i < 16; i++) {
		if (*text == '-')
			text++;
		b[i] = (uint8_t)(hexval(text[0]) << 4 | hexval(text[1]));
		text += 2;
	}
	g.data1 = htole32((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
	g.data2 = htole16((uint16_t)(b[4] << 8 | b[5]));
	g.data3 = htole16((uint16_t)(b[6] << 8 | b[7]));
	memcpy(g.data4, b + 8, 8);
	return g;
}

struct tpart {
	unsigned slot;
	uint64_t first, last;
	const char *uuid;
	const char16_t *name;	/* up to 36 units; NUL-terminated if shorter */
};

struct layout {
	uint32_t entry_size, nentries;
	uint64_t array_nlb, first_usable, last_usable, bak_array, bak_hdr;
};

static struct layout layout_for(const struct disk *d, uint32_t entry_size, uint32_t nentries)
{
	struct layout l = { .entry_size = entry_size, .nentries = nentries };
	uint64_t bytes = (uint64_t)entry_size * nentries;

	l.array_nlb = (bytes + d->lba_size - 1) / d->lba_size;
	l.first_usable = 2 + l.array_nlb;
	l.bak_hdr = d->nlba - 1;
	l.bak_array = l.bak_hdr - l.array_nlb;
	l.last_usable = l.bak_array - 1;
	return l;
}

static struct gpt_header *hdr(struct disk *d, uint64_t lba)
{
	return (struct gpt_header *)blk(d, lba);
}

/* Recomputes a header's CRC, so a test can break one field on its own. */
static void hdr_fix_crc(struct disk *d, uint64_t lba)
{
	struct gpt_header *h = hdr(d, lba);
	uint32_t size = le32toh(h->header_size);

	if (size > d->lba_size)
		size = d->lba_size;
	h->header_crc32 = 0;
	h->header_crc32 = htole32((uint32_t)crc32(0, blk(d, lba), size));
}

static void write_header(struct disk *d, const struct layout *l, uint64_t my, uint64_t alt,
			 uint64_t entries, uint32_t array_crc)
{
	struct gpt_header h = { .revision = htole32(GPT_REVISION_1_0) };

	memcpy(h.signature, GPT_SIGNATURE, GPT_SIGNATURE_LEN);
	h.header_size = htole32(sizeof(h));
	h.my_lba = htole64(my);
	h.alternate_lba = htole64(alt);
	h.first_usable_lba = htole64(l->first_usable);
	h.last_usable_lba = htole64(l->last_usable);
	h.disk_guid = guid(DISK_GUID);
	h.partition_entry_lba = htole64(entries);
	h.number_of_partition_entries = htole32(l->nentries);
	h.size_of_partition_entry = htole32(l->entry_size);
	h.partition_entry_array_crc32 = htole32(array_crc);
	memset(blk(d, my), 0, d->lba_size);
	memcpy(blk(d, my), &h, sizeof(h));
	hdr_fix_crc(d, my);
}

static void mbr_record(struct disk *d, uint64_t lba, unsigned i, uint8_t boot, uint8_t type,
		       uint32_t start, uint32_t size)
{
	struct mbr_partition_record p = {
		.boot_indicator = boot,
		.os_type = type,
		.starting_lba = htole32(start),
		.size_in_lba = htole32(size),
	};
	uint8_t *b = blk(d, lba);

	memcpy(b + offsetof(struct mbr, partition_record) + i * sizeof(p), &p, sizeof(p));
	b[510] = 0x55;
	b[511] = 0xaa;
}

static void pmbr(struct disk *d)
{
	uint64_t size = d->nlba - 1;

	mbr_record(d, 0, 0, 0, MBR_TYPE_GPT_PROTECTIVE, 1,
		   size > UINT32_MAX ? UINT32_MAX : (uint32_t)size);
}

/* Writes a protective MBR and both GPT copies holding `parts`. */
static struct layout gpt_build(struct disk *d, uint32_t entry_size, uint32_t nentries,
			       const struct tpart *parts, unsigned n)
{
	struct layout l = layout_for(d, entry_size, nentries);
	uint8_t *array = calloc(l.array_nlb ? l.array_nlb : 1, d->lba_size);
	uint32_t crc;

	for (unsigned i = 0; i < n; i++) {
		struct gpt_entry e = {
			.unique_partition_guid = guid(parts[i].uuid),
			.starting_lba = htole64(parts[i].first),
			.ending_lba = htole64(parts[i].last),
		};

		memcpy(&e.partition_type_guid, linux_fs_raw, sizeof(linux_fs_raw));
		for (unsigned u = 0; u < GPT_NAME_UNITS && parts[i].name[u]; u++)
			e.partition_name[u] = htole16(parts[i].name[u]);
		memcpy(array + (size_t)parts[i].slot * entry_size, &e, sizeof(e));
	}
	crc = (uint32_t)crc32(0, array, (uInt)((uint64_t)entry_size * nentries));
	memcpy(blk(d, 2), array, l.array_nlb * d->lba_size);
	memcpy(blk(d, l.bak_array), array, l.array_nlb * d->lba_size);
	free(array);
	pmbr(d);
	write_header(d, &l, 1, l.bak_hdr, 2, crc);
	write_header(d, &l, l.bak_hdr, 1, l.bak_array, crc);
	return l;
}

/* The standard disk: three partitions in slots 1, 3 and 128, the last one
 * ending on LastUsableLBA (inclusive). */
static struct disk *std_disk(uint32_t lba_size, struct want w[3])
{
	struct disk *d = disk_new(lba_size, lba_size == 512 ? 2048 : 512);
	struct layout l = layout_for(d, GPT_ENTRY_SIZE_MIN, 128);
	const struct tpart p[3] = {
		{ 0, l.first_usable, l.first_usable + 99, UUID_A, u"alpha" },
		{ 2, l.first_usable + 100, l.first_usable + 100, UUID_B, u"beta" },
		{ 127, l.last_usable - 9, l.last_usable, UUID_C, u"gamma" },
	};

	gpt_build(d, GPT_ENTRY_SIZE_MIN, 128, p, 3);
	w[0] = (struct want){ 1, UUID_A, LINUX_FS, "alpha", l.first_usable, 100 };
	w[1] = (struct want){ 3, UUID_B, LINUX_FS, "beta", l.first_usable + 100, 1 };
	w[2] = (struct want){ 128, UUID_C, LINUX_FS, "gamma", l.last_usable - 9, 10 };
	return d;
}

static void test_gpt_valid(uint32_t lba_size)
{
	struct want w[3];
	struct disk *d = std_disk(lba_size, w);
	struct part_table t;

	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
	CHECK_EQ_INT(t.flags, 0);
	CHECK_STREQ(t.disk_id, DISK_GUID);
	check_parts(&t, w, 3);
	part_table_free(&t);
	CHECK(t.parts == NULL && t.count == 0);

	/* The MBR need not be protective, or there at all, to find a GPT. */
	memset(blk(d, 0), 0, lba_size);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
	CHECK_EQ_INT(t.flags, 0);
	check_parts(&t, w, 3);
	part_table_free(&t);
	disk_free(d);
}

/* Field breakers: each applies to the header at `lba` and keeps its CRC
 * right unless the CRC is the point, so only the one check can fire. */
static void m_signature(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->signature[0] = 'e';
	hdr_fix_crc(d, lba);
}
static void m_revision(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->revision = htole32(0x00020000);
	hdr_fix_crc(d, lba);
}
static void m_hsize_small(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->header_size = htole32(GPT_HEADER_SIZE_MIN - 1);
	hdr_fix_crc(d, lba);
}
static void m_hsize_big(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->header_size = htole32(d->lba_size + 1);
	hdr_fix_crc(d, lba);
}
/* Without the bound the CRC would run 4 GiB past the block. */
static void m_hsize_huge(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->header_size = htole32(0xffffffff);
	hdr_fix_crc(d, lba);
}
static void m_hcrc(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->header_crc32 ^= htole32(1);
}
static void m_hcrc_covers_field(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->rsvd20 = htole32(1);	/* CRC not fixed */
}
static void m_my_lba(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->my_lba = htole64(lba ^ 1);
	hdr_fix_crc(d, lba);
}
static void m_first_gt_last(struct disk *d, uint64_t lba)
{
	struct gpt_header *h = hdr(d, lba);

	h->first_usable_lba = htole64(le64toh(h->last_usable_lba) + 1);
	hdr_fix_crc(d, lba);
}
static void m_last_off_disk(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->last_usable_lba = htole64(d->nlba);
	hdr_fix_crc(d, lba);
}
/* The array is pointed at the other copy's (same contents, outside the
 * usable range), so that only the header itself lies in the usable range. */
static void m_usable_covers_header(struct disk *d, uint64_t lba)
{
	struct gpt_header *h = hdr(d, lba);
	uint64_t other = lba == GPT_PRIMARY_LBA ? d->nlba - 1 : GPT_PRIMARY_LBA;

	h->partition_entry_lba = hdr(d, other)->partition_entry_lba;
	if (lba == GPT_PRIMARY_LBA)
		h->first_usable_lba = htole64(1);
	else
		h->last_usable_lba = htole64(lba);
	hdr_fix_crc(d, lba);
}
static void m_entry_lba_zero(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->partition_entry_lba = 0;
	hdr_fix_crc(d, lba);
}
static void m_entry_lba_off_disk(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->partition_entry_lba = htole64(d->nlba - 1);
	hdr_fix_crc(d, lba);
}
static void m_entry_lba_on_header(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->partition_entry_lba = htole64(lba);
	hdr_fix_crc(d, lba);
}
/* The array is copied along, so only the overlap rule can reject it. */
static void m_array_in_usable(struct disk *d, uint64_t lba)
{
	struct gpt_header *h = hdr(d, lba);
	uint64_t to = le64toh(h->first_usable_lba) + 10;
	uint64_t bytes = (uint64_t)le32toh(h->number_of_partition_entries) *
			 le32toh(h->size_of_partition_entry);

	memmove(blk(d, to), blk(d, le64toh(h->partition_entry_lba)), bytes);
	h->partition_entry_lba = htole64(to);
	hdr_fix_crc(d, lba);
}
static void m_count_huge(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->number_of_partition_entries = htole32(0xffffffff);
	hdr_fix_crc(d, lba);
}
static void m_count_over_bound(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->number_of_partition_entries = htole32((1u << 20) / 128 + 1);
	hdr_fix_crc(d, lba);
}
static void m_count_plus_one(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->number_of_partition_entries = htole32(129);
	hdr_fix_crc(d, lba);
}
static void m_esize_zero(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->size_of_partition_entry = 0;
	hdr_fix_crc(d, lba);
}
static void m_esize_odd(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->size_of_partition_entry = htole32(129);
	hdr_fix_crc(d, lba);
}
static void m_esize_not_pow2(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->size_of_partition_entry = htole32(384);
	hdr_fix_crc(d, lba);
}
static void m_esize_small(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->size_of_partition_entry = htole32(64);
	hdr_fix_crc(d, lba);
}
static void m_esize_huge(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->size_of_partition_entry = htole32(0x80000000);
	hdr_fix_crc(d, lba);
}
static void m_array_crc(struct disk *d, uint64_t lba)
{
	hdr(d, lba)->partition_entry_array_crc32 ^= htole32(0x100);
	hdr_fix_crc(d, lba);
}
static void m_array_byte(struct disk *d, uint64_t lba)
{
	blk(d, le64toh(hdr(d, lba)->partition_entry_lba))[56] ^= 0x20;
}

static const struct mutation {
	const char *name;
	void (*apply)(struct disk *d, uint64_t lba);
} mutations[] = {
	{ "signature", m_signature },
	{ "revision", m_revision },
	{ "header size too small", m_hsize_small },
	{ "header size above lba size", m_hsize_big },
	{ "header size 0xffffffff", m_hsize_huge },
	{ "header crc", m_hcrc },
	{ "header crc covers rsvd20", m_hcrc_covers_field },
	{ "my lba", m_my_lba },
	{ "first usable > last usable", m_first_gt_last },
	{ "last usable off the disk", m_last_off_disk },
	{ "usable range covers header", m_usable_covers_header },
	{ "entry lba 0", m_entry_lba_zero },
	{ "entry array off the disk", m_entry_lba_off_disk },
	{ "entry array on the header", m_entry_lba_on_header },
	{ "entry array in usable range", m_array_in_usable },
	{ "entry count 0xffffffff", m_count_huge },
	{ "entry array over 1 MiB", m_count_over_bound },
	{ "entry count + 1", m_count_plus_one },
	{ "entry size 0", m_esize_zero },
	{ "entry size 129", m_esize_odd },
	{ "entry size 384", m_esize_not_pow2 },
	{ "entry size 64", m_esize_small },
	{ "entry size 2^31", m_esize_huge },
	{ "array crc field", m_array_crc },
	{ "array contents", m_array_byte },
};

enum where { PRIMARY = 1, BACKUP = 2, BOTH = 3 };

static void test_gpt_mutations(uint32_t lba_size)
{
	for (size_t i = 0; i < sizeof(mutations) / sizeof(mutations[0]); i++) {
		for (enum where at = PRIMARY; at <= BOTH; at++) {
			unsigned failed = check_failed;
			struct want w[3];
			struct disk *d = std_disk(lba_size, w);
			struct part_table t;

			if (at & PRIMARY)
				mutations[i].apply(d, GPT_PRIMARY_LBA);
			if (at & BACKUP)
				mutations[i].apply(d, d->nlba - 1);
			CHECK_EQ_INT(parse(d, &t), 0);
			switch (at) {
			case PRIMARY:
				CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
				CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_USED_BACKUP);
				CHECK_STREQ(t.disk_id, DISK_GUID);
				check_parts(&t, w, 3);
				break;
			case BACKUP:
				CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
				CHECK_EQ_INT(t.flags, PART_F_GPT_BACKUP_BAD);
				check_parts(&t, w, 3);
				break;
			case BOTH:
				/* The protective MBR must not be read as a table. */
				CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
				CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_BACKUP_BAD);
				CHECK_EQ_INT(t.count, 0);
				CHECK(t.parts == NULL);
				CHECK_STREQ(t.disk_id, "");
				break;
			}
			if (check_failed != failed)
				printf("  (mutation \"%s\", %s, lba size %u)\n", mutations[i].name,
				       at == PRIMARY ? "primary" : at == BACKUP ? "backup" : "both",
				       lba_size);
			part_table_free(&t);
			disk_free(d);
		}
	}
}

/* Entry sizes of 128 * 2^n are valid; the extra bytes are reserved. */
static void test_gpt_entry_size_256(void)
{
	struct disk *d = disk_new(512, 2048);
	struct layout l = layout_for(d, 256, 64);
	const struct tpart p[2] = {
		{ 0, l.first_usable, l.first_usable + 7, UUID_A, u"a" },
		{ 63, l.first_usable + 8, l.first_usable + 15, UUID_B, u"b" },
	};
	const struct want w[2] = {
		{ 1, UUID_A, LINUX_FS, "a", l.first_usable, 8 },
		{ 64, UUID_B, LINUX_FS, "b", l.first_usable + 8, 8 },
	};
	struct part_table t;

	gpt_build(d, 256, 64, p, 2);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, 0);
	check_parts(&t, w, 2);
	part_table_free(&t);
	disk_free(d);
}

/* 384 is a multiple of 128 but not 128 * 2^n: refused, with CRCs right. */
static void test_gpt_entry_size_384(void)
{
	struct disk *d = disk_new(512, 2048);
	struct layout l = layout_for(d, 384, 32);
	const struct tpart p[1] = { { 0, l.first_usable, l.first_usable + 7, UUID_A, u"a" } };
	struct part_table t;

	gpt_build(d, 384, 32, p, 1);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_BACKUP_BAD);
	part_table_free(&t);
	disk_free(d);
}

/* An empty array (0 entries, CRC of nothing = 0) is a valid, empty table. */
static void test_gpt_no_entries(void)
{
	struct disk *d = disk_new(512, 2048);
	struct part_table t;

	gpt_build(d, GPT_ENTRY_SIZE_MIN, 0, NULL, 0);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
	CHECK_EQ_INT(t.flags, 0);
	CHECK_EQ_INT(t.count, 0);
	part_table_free(&t);
	disk_free(d);
}

static void test_gpt_bad_entries(uint32_t lba_size)
{
	struct disk *d = disk_new(lba_size, 1024);
	struct layout l = layout_for(d, GPT_ENTRY_SIZE_MIN, 128);
	uint64_t fu = l.first_usable, lu = l.last_usable;
	const struct tpart p[] = {
		{ 0, fu + 10, fu + 9, UUID_A, u"first > last" },
		{ 1, fu - 1, fu + 5, UUID_A, u"before first usable" },
		{ 2, lu, lu + 1, UUID_A, u"past last usable" },
		{ 3, UINT64_MAX, UINT64_MAX, UUID_A, u"far away" },
		{ 4, 0, UINT64_MAX, UUID_A, u"everything" },
		{ 5, fu, lu, UUID_B, u"whole" },
		{ 6, lu, lu, UUID_C, u"last block" },
	};
	const struct want w[] = {
		{ 6, UUID_B, LINUX_FS, "whole", fu, lu - fu + 1 },
		{ 7, UUID_C, LINUX_FS, "last block", lu, 1 },
	};
	struct part_table t;

	gpt_build(d, GPT_ENTRY_SIZE_MIN, 128, p, sizeof(p) / sizeof(p[0]));
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
	CHECK_EQ_INT(t.flags, PART_F_GPT_BAD_ENTRY);
	check_parts(&t, w, 2);
	part_table_free(&t);
	disk_free(d);
}

static void test_gpt_labels(void)
{
	static const char16_t euros[GPT_NAME_UNITS] = {
		u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€',
		u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€',
		u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€', u'€',
	};
	static const char16_t full[GPT_NAME_UNITS] = {
		'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l',
		'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x',
		'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
	};
	char16_t high_last[GPT_NAME_UNITS];
	struct {
		const char16_t *name;
		const char *utf8;
	} cases[] = {
		{ u"café ünï 日本", "café ünï 日本" },
		{ u"😀x", "\xf0\x9f\x98\x80x" },
		{ (const char16_t[]){ 0xd800, 'a', 0 }, "\xef\xbf\xbd" "a" },
		{ (const char16_t[]){ 0xdc00, 0 }, "\xef\xbf\xbd" },
		{ (const char16_t[]){ 0xdc00, 0xd800, 0 }, "\xef\xbf\xbd\xef\xbf\xbd" },
		{ (const char16_t[]){ 0xd800, 0xd800, 0xdc00, 0 }, "\xef\xbf\xbd\xf0\x90\x80\x80" },
		{ (const char16_t[]){ 'a', 0, 'b', 0 }, "a" },
		{ euros, NULL },
		{ full, "abcdefghijklmnopqrstuvwxyz0123456789" },
		{ high_last, NULL },
	};
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	char euros8[GPT_NAME_UNITS * 3 + 1] = "", high8[64] = "";
	struct disk *d = disk_new(512, 2048);
	struct layout l = layout_for(d, GPT_ENTRY_SIZE_MIN, 128);
	struct tpart p[N];
	struct part_table t;

	for (unsigned i = 0; i < GPT_NAME_UNITS; i++)
		high_last[i] = i + 1 < GPT_NAME_UNITS ? 'z' : 0xd83d;
	for (unsigned i = 0; i < GPT_NAME_UNITS; i++) {
		strcat(euros8, "€");
		strcat(high8, i + 1 < GPT_NAME_UNITS ? "z" : "\xef\xbf\xbd");
	}
	cases[7].utf8 = euros8;
	cases[9].utf8 = high8;
	for (unsigned i = 0; i < N; i++)
		p[i] = (struct tpart){ i, l.first_usable + i, l.first_usable + i, UUID_A,
				       cases[i].name };
	gpt_build(d, GPT_ENTRY_SIZE_MIN, 128, p, N);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.count, N);
	for (unsigned i = 0; i < N && i < t.count; i++)
		CHECK_STREQ(t.parts[i].label, cases[i].utf8);
	CHECK_EQ_INT(strlen(euros8), PART_LABEL_MAX - 1);
	part_table_free(&t);
	disk_free(d);
}

/* A GPT for one block size is not found when read with the other: the
 * header sits at LBA 1, byte 512 or byte 4096. */
static void test_gpt_block_size_mismatch(void)
{
	struct want w[3];
	struct disk *d = std_disk(512, w);
	struct part_table t;

	d->lba_size = 4096;
	d->nlba = d->stored = d->nlba / 8;
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	part_table_free(&t);
	disk_free(d);

	d = std_disk(4096, w);
	d->lba_size = 512;
	d->nlba = d->stored = d->nlba * 8;
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	part_table_free(&t);
	disk_free(d);
}

/* The backup is looked for at the primary's AlternateLBA when the primary
 * header is sound (a disk grown after partitioning keeps it there), else
 * at the last LBA. */
static void test_gpt_alternate_lba(void)
{
	struct want w[3];
	struct disk *d;
	struct part_table t;

	/* Grown disk, good primary: the backup at AlternateLBA is fine. */
	d = std_disk(512, w);
	d->nlba += 1000;
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, 0);
	check_parts(&t, w, 3);
	part_table_free(&t);

	/* Grown disk, primary array broken: the backup at AlternateLBA. */
	m_array_byte(d, GPT_PRIMARY_LBA);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_USED_BACKUP);
	check_parts(&t, w, 3);
	part_table_free(&t);

	/* Grown disk, primary header broken: its AlternateLBA is not trusted
	 * and the last LBA holds nothing. */
	m_hcrc(d, GPT_PRIMARY_LBA);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_BACKUP_BAD);
	part_table_free(&t);
	disk_free(d);

	/* Primary array broken and AlternateLBA wrong: the last LBA. */
	d = std_disk(512, w);
	m_array_byte(d, GPT_PRIMARY_LBA);
	hdr(d, GPT_PRIMARY_LBA)->alternate_lba = htole64(100);
	hdr_fix_crc(d, GPT_PRIMARY_LBA);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_USED_BACKUP);
	check_parts(&t, w, 3);
	part_table_free(&t);

	/* Good primary whose AlternateLBA points at itself or off the disk:
	 * the backup is reported bad, the primary still used. */
	hdr(d, GPT_PRIMARY_LBA)->alternate_lba = htole64(GPT_PRIMARY_LBA);
	hdr_fix_crc(d, GPT_PRIMARY_LBA);
	m_array_byte(d, GPT_PRIMARY_LBA);	/* flips the byte back */
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_GPT_BACKUP_BAD);
	check_parts(&t, w, 3);
	part_table_free(&t);
	hdr(d, GPT_PRIMARY_LBA)->alternate_lba = htole64(UINT64_MAX);
	hdr_fix_crc(d, GPT_PRIMARY_LBA);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_GPT_BACKUP_BAD);
	check_parts(&t, w, 3);
	part_table_free(&t);
	disk_free(d);
}

/* MBR images. */

#define SIG 0x1a2b3c4du

static void mbr_sig(struct disk *d)
{
	uint32_t sig = htole32(SIG);

	memcpy(blk(d, 0) + offsetof(struct mbr, unique_mbr_disk_signature), &sig, sizeof(sig));
}

/* Primaries 1 (Linux), 2 (extended, 1000..3999), 4 (NTFS); three EBRs at
 * 1000, 1500 and 2000, each with one logical partition. */
static struct disk *std_mbr(uint32_t lba_size)
{
	struct disk *d = disk_new(lba_size, 8192);

	mbr_sig(d);
	mbr_record(d, 0, 0, MBR_BOOT_ACTIVE, 0x83, 64, 100);
	mbr_record(d, 0, 1, 0, MBR_TYPE_EXTENDED_LBA, 1000, 3000);
	mbr_record(d, 0, 3, 0, 0x07, 5000, 100);
	mbr_record(d, 1000, 0, 0, 0x83, 10, 100);
	mbr_record(d, 1000, 1, 0, MBR_TYPE_EXTENDED, 500, 300);
	mbr_record(d, 1500, 0, 0, 0x82, 20, 50);
	mbr_record(d, 1500, 1, 0, MBR_TYPE_LINUX_EXTENDED, 1000, 100);
	mbr_record(d, 2000, 0, 0, 0x0c, 1, 10);
	return d;
}

static const struct want std_mbr_want[] = {
	{ 1, "1A2B3C4D-01", "0x83", "", 64, 100 },
	{ 4, "1A2B3C4D-04", "0x07", "", 5000, 100 },
	{ 5, "1A2B3C4D-05", "0x83", "", 1010, 100 },
	{ 6, "1A2B3C4D-06", "0x82", "", 1520, 50 },
	{ 7, "1A2B3C4D-07", "0x0C", "", 2001, 10 },
};

static void test_mbr_valid(uint32_t lba_size)
{
	struct disk *d = std_mbr(lba_size);
	struct part_table t;

	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_MBR);
	CHECK_EQ_INT(t.flags, 0);
	CHECK_STREQ(t.disk_id, "1A2B3C4D");
	check_parts(&t, std_mbr_want, 5);
	part_table_free(&t);
	disk_free(d);
}

static void test_mbr_loops(void)
{
	struct disk *d = std_mbr(512);
	struct part_table t;

	/* The last EBR links back to the first. */
	mbr_record(d, 2000, 1, 0, MBR_TYPE_EXTENDED, 0, 100);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_MBR_EBR_LOOP);
	check_parts(&t, std_mbr_want, 5);
	part_table_free(&t);

	/* The first EBR links to itself. */
	mbr_record(d, 1000, 1, 0, MBR_TYPE_EXTENDED, 0, 100);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_MBR_EBR_LOOP);
	check_parts(&t, std_mbr_want, 3);
	part_table_free(&t);
	disk_free(d);
}

/* 400 EBRs, one every other block. With a logical partition each, the
 * chain is cut at number 255; without, after 256 EBRs. Never a hang. */
static void test_mbr_long_chain(void)
{
	for (int with_parts = 0; with_parts < 2; with_parts++) {
		struct disk *d = disk_new(512, 8192);
		struct part_table t;

		mbr_sig(d);
		mbr_record(d, 0, 0, 0, MBR_TYPE_EXTENDED, 1000, 1000);
		for (uint32_t k = 0; k < 400; k++) {
			if (with_parts)
				mbr_record(d, 1000 + 2 * k, 0, 0, 0x83, 1, 1);
			mbr_record(d, 1000 + 2 * k, 1, 0, MBR_TYPE_EXTENDED, 2 * (k + 1), 2);
		}
		CHECK_EQ_INT(parse(d, &t), 0);
		CHECK_EQ_INT(t.scheme, PART_SCHEME_MBR);
		CHECK_EQ_INT(t.flags, PART_F_MBR_EBR_LOOP);
		CHECK_EQ_INT(t.count, with_parts ? 255 - 4 : 0);
		if (with_parts && t.count == 251) {
			CHECK_EQ_INT(t.parts[250].number, 255);
			CHECK_STREQ(t.parts[250].uuid, "1A2B3C4D-FF");
			CHECK_EQ_INT(t.parts[250].first_lba, 1000 + 2 * 250 + 1);
		}
		part_table_free(&t);
		disk_free(d);
	}
}

static void test_mbr_out_of_range(void)
{
	struct disk *d = std_mbr(512);
	struct part_table t;
	const struct want w[] = {
		{ 1, "1A2B3C4D-01", "0x83", "", 64, 100 },
		{ 5, "1A2B3C4D-05", "0x83", "", 1010, 100 },
		{ 7, "1A2B3C4D-07", "0x0C", "", 2001, 10 },
	};

	mbr_record(d, 0, 2, 0, 0x83, 8190, 3);			/* one block too long */
	mbr_record(d, 0, 3, 0, 0x07, 0xffffffff, 0xffffffff);	/* far off */
	mbr_record(d, 1500, 0, 0, 0x82, 20, 0xffffffff);	/* logical 6 too long */
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_MBR_BAD_ENTRY);
	check_parts(&t, w, 3);
	part_table_free(&t);

	/* Ends exactly on the last block: fine. */
	mbr_record(d, 0, 2, 0, 0x83, 8190, 2);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.count, 4);
	if (t.count == 4)
		CHECK_EQ_INT(t.parts[1].number, 3);
	part_table_free(&t);

	/* A partition covering the MBR, or a logical covering its EBR. */
	mbr_record(d, 0, 2, 0, 0x83, 0, 10);
	mbr_record(d, 1500, 0, 0, 0x82, 0, 10);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_MBR_BAD_ENTRY);
	check_parts(&t, w, 3);
	part_table_free(&t);
	disk_free(d);

	/* Extended container off the disk: nothing is read there. */
	d = std_mbr(512);
	mbr_record(d, 0, 1, 0, MBR_TYPE_EXTENDED_LBA, 9000, 100);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_MBR_BAD_ENTRY);
	check_parts(&t, std_mbr_want, 2);
	part_table_free(&t);

	/* A link off the disk cuts the chain there. */
	mbr_record(d, 0, 1, 0, MBR_TYPE_EXTENDED_LBA, 1000, 3000);
	mbr_record(d, 1500, 1, 0, MBR_TYPE_EXTENDED, 0xfffffff0, 100);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_MBR_BAD_ENTRY);
	check_parts(&t, std_mbr_want, 4);
	part_table_free(&t);
	disk_free(d);

	/* An EBR without 0x55AA ends the chain, quietly as in Linux. */
	d = std_mbr(512);
	blk(d, 1500)[510] = 0;
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, 0);
	check_parts(&t, std_mbr_want, 3);
	part_table_free(&t);
	disk_free(d);
}

/* Records 3 and 4 of an EBR count only inside the EBR's span and the
 * container, as Linux reads them; outside they get no number. */
static void test_mbr_ebr_garbage(void)
{
	struct disk *d = std_mbr(512);
	struct part_table t;
	const struct want w[] = {
		{ 1, "1A2B3C4D-01", "0x83", "", 64, 100 },
		{ 4, "1A2B3C4D-04", "0x07", "", 5000, 100 },
		{ 5, "1A2B3C4D-05", "0x83", "", 1010, 100 },
		{ 6, "1A2B3C4D-06", "0xDA", "", 1200, 10 },
		{ 7, "1A2B3C4D-07", "0x82", "", 1520, 50 },
		{ 8, "1A2B3C4D-08", "0x0C", "", 2001, 10 },
	};

	mbr_record(d, 1000, 2, 0, 0x99, 5000, 10);	/* past the container */
	mbr_record(d, 1000, 3, 0, 0xda, 200, 10);	/* inside: kept */
	mbr_record(d, 1500, 2, 0, 0x99, 200, 200);	/* past the EBR's span (300) */
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.flags, PART_F_MBR_BAD_ENTRY);
	check_parts(&t, w, 6);
	part_table_free(&t);
	disk_free(d);
}

static void test_mbr_not_a_table(void)
{
	struct disk *d = disk_new(512, 4096);
	struct part_table t;

	/* 0x55AA with no records: nothing. */
	mbr_record(d, 0, 0, 0, 0, 0, 0);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	CHECK_EQ_INT(t.flags, 0);
	part_table_free(&t);

	/* A boot indicator other than 0/0x80: a FAT boot sector. */
	mbr_record(d, 0, 0, 0, 0x83, 64, 100);
	mbr_record(d, 0, 2, 0x29, 0x83, 200, 100);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	part_table_free(&t);

	/* No signature. */
	mbr_record(d, 0, 2, 0, 0x83, 200, 100);
	blk(d, 0)[510] = 0;
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	part_table_free(&t);
	disk_free(d);
}

/* MBR and GPT together: a protective (or hybrid) MBR defers to the GPT and
 * is never read as a table; a legacy MBR makes any GPT stale. */
static void test_mbr_and_gpt(void)
{
	struct want w[3];
	struct disk *d = std_disk(512, w);
	struct part_table t;

	mbr_record(d, 0, 1, 0, 0x83, 2000, 10);		/* hybrid */
	m_hcrc(d, GPT_PRIMARY_LBA);
	m_hcrc(d, d->nlba - 1);
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
	CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_BACKUP_BAD);
	part_table_free(&t);
	disk_free(d);

	d = std_disk(512, w);
	mbr_record(d, 0, 0, 0, 0x83, 2000, 10);		/* no 0xEE left */
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_MBR);
	CHECK_EQ_INT(t.count, 1);
	part_table_free(&t);
	disk_free(d);
}

static void test_reader_errors(void)
{
	struct want w[3];
	struct disk *d = std_disk(512, w);
	const uint64_t gpt_fail[] = { 0, 1, 2, 33, d->nlba - 1, d->nlba - 33 };
	struct part_table t;

	for (size_t i = 0; i < sizeof(gpt_fail) / sizeof(gpt_fail[0]); i++) {
		d->fail = true;
		d->fail_lba = gpt_fail[i];
		d->fail_rc = -EIO;
		CHECK_EQ_INT(parse(d, &t), -EIO);
		CHECK(t.scheme == PART_SCHEME_NONE && t.count == 0 && t.parts == NULL);
	}
	/* A reader breaking its contract with a positive value still fails. */
	d->fail_lba = 1;
	d->fail_rc = 5;
	CHECK_EQ_INT(parse(d, &t), -EIO);
	/* The data area is never read. */
	d->fail_lba = 100;
	CHECK_EQ_INT(parse(d, &t), 0);
	CHECK_EQ_INT(t.count, 3);
	part_table_free(&t);
	disk_free(d);

	d = std_mbr(512);
	d->fail = true;
	d->fail_lba = 1500;
	d->fail_rc = -EIO;
	CHECK_EQ_INT(parse(d, &t), -EIO);
	CHECK(t.scheme == PART_SCHEME_NONE && t.count == 0 && t.parts == NULL);
	disk_free(d);
}

static void test_reader_geometry(void)
{
	static const uint32_t bad_sizes[] = { 0, 256, 511, 1000, 4095, 1u << 17 };
	struct disk *d = disk_new(512, 4);
	struct part_table t;

	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		struct part_reader r = {
			.read = disk_read, .ctx = d, .lba_size = bad_sizes[i], .nlba = 4,
		};
		CHECK_EQ_INT(part_read_table(&r, &t), -EINVAL);
	}
	struct part_reader r = { .read = NULL, .lba_size = 512, .nlba = 4 };
	CHECK_EQ_INT(part_read_table(&r, &t), -EINVAL);

	/* Tiny disks, with a protective MBR to make the parser look for a GPT:
	 * disk_read fails a check on any read past the end. */
	for (uint64_t n = 0; n < 4; n++) {
		d->nlba = d->stored = n;
		if (n > 0)
			pmbr(d);
		CHECK_EQ_INT(parse(d, &t), 0);
		CHECK_EQ_INT(t.scheme, PART_SCHEME_NONE);
		part_table_free(&t);
	}
	disk_free(d);
	CHECK_STREQ(part_scheme_name(PART_SCHEME_GPT), "gpt");
	CHECK_STREQ(part_scheme_name(PART_SCHEME_MBR), "mbr");
	CHECK_STREQ(part_scheme_name(PART_SCHEME_NONE), "none");
}

/* Real images. */

struct file_disk {
	int fd;
	uint32_t lba_size;
};

static int file_read(void *ctx, uint64_t lba, uint32_t nlb, void *buf)
{
	struct file_disk *f = ctx;
	size_t len = (size_t)nlb * f->lba_size, done = 0;

	while (done < len) {
		ssize_t n = pread(f->fd, (char *)buf + done, len - done,
				  (off_t)(lba * f->lba_size + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int parse_file(int fd, uint32_t lba_size, struct part_table *t)
{
	struct file_disk f = { fd, lba_size };
	struct stat st;
	struct part_reader r = { .read = file_read, .ctx = &f, .lba_size = lba_size };

	if (fstat(fd, &st) != 0)
		return -errno;
	r.nlba = (uint64_t)st.st_size / lba_size;
	return part_read_table(&r, t);
}

static bool find_tool(const char *name, char *path, size_t size)
{
	static const char *const dirs[] = {
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
	};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int n = snprintf(path, size, "%s/%s", dirs[i], name);

		if (n > 0 && (size_t)n < size && access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/* Runs argv (argv[0] a full path) with stdin from `in` (or /dev/null) and
 * stdout discarded; true if it exited 0. */
static bool run(char *const argv[], const char *in)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return false;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A 64 MiB sparse temporary file; `path` receives its name. */
static int temp_image(char *path, size_t size, const char *tag)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, size, "%s/test_part.%s.XXXXXX", dir && *dir ? dir : "/tmp", tag);
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, 64 << 20) != 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

#define ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define SWAP "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
#define LABEL36 "abcdefghijklmnopqrstuvwxyz0123456789"

/* sgdisk writes the table; its GUIDs, names and sizes must come back. */
static int test_sgdisk(void)
{
	char tool[256], img[256];
	struct part_table t;
	int fd;
	static const struct want w[] = {
		{ 1, UUID_A, LINUX_FS, "alpha", 2048, 16384 },
		{ 2, UUID_B, SWAP, LABEL36, 40960, 2048 },
		{ 4, UUID_C, ESP, "café ünï 日本", 20480, 8192 },
	};

	if (!find_tool("sgdisk", tool, sizeof(tool))) {
		printf("test_part sgdisk: skipped: sgdisk not found (gdisk package)\n");
		return CHECK_SKIP;
	}
	fd = temp_image(img, sizeof(img), "gpt");
	if (fd < 0) {
		printf("test_part sgdisk: cannot create a temporary image: %s\n", strerror(errno));
		return 1;
	}
	char *argv[] = {
		tool, "-U", DISK_GUID,
		"-n", "1:2048:+8M", "-c", "1:alpha", "-u", "1:" UUID_A, "-t", "1:8300",
		"-n", "2:40960:+1M", "-c", "2:" LABEL36, "-u", "2:" UUID_B, "-t", "2:8200",
		"-n", "4:20480:+4M", "-c", "4:café ünï 日本", "-u", "4:" UUID_C, "-t", "4:EF00",
		img, NULL,
	};
	CHECK(run(argv, NULL));
	CHECK_EQ_INT(parse_file(fd, 512, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
	CHECK_EQ_INT(t.flags, 0);
	CHECK_STREQ(t.disk_id, DISK_GUID);
	check_parts(&t, w, 3);
	part_table_free(&t);

	/* Wipe the primary header: sgdisk's backup must give the same table. */
	static const uint8_t zero[512];
	CHECK_EQ_INT(pwrite(fd, zero, sizeof(zero), 512), 512);
	CHECK_EQ_INT(parse_file(fd, 512, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_GPT);
	CHECK_EQ_INT(t.flags, PART_F_GPT_PRIMARY_BAD | PART_F_GPT_USED_BACKUP);
	CHECK_STREQ(t.disk_id, DISK_GUID);
	check_parts(&t, w, 3);
	part_table_free(&t);

	close(fd);
	unlink(img);
	return check_report("test_part sgdisk");
}

/* sfdisk writes a DOS table with logical partitions; the ids must be those
 * Linux gives (blkid/partx print "1a2b3c4d-05"). sfdisk always uses 512-byte
 * sectors on a file, so 4Kn MBRs are only tested in memory. */
static int test_sfdisk(void)
{
	static const char script[] =
		"label: dos\n"
		"label-id: 0x1a2b3c4d\n"
		"unit: sectors\n"
		"\n"
		"start=2048, size=16384, type=83, bootable\n"
		"start=18432, size=8192, type=7\n"
		"start=26624, size=65536, type=f\n"
		"start=28672, size=8192, type=83\n"
		"start=38912, size=4096, type=82\n"
		"start=45056, size=2048, type=c\n";
	static const struct want w[] = {
		{ 1, "1A2B3C4D-01", "0x83", "", 2048, 16384 },
		{ 2, "1A2B3C4D-02", "0x07", "", 18432, 8192 },
		{ 5, "1A2B3C4D-05", "0x83", "", 28672, 8192 },
		{ 6, "1A2B3C4D-06", "0x82", "", 38912, 4096 },
		{ 7, "1A2B3C4D-07", "0x0C", "", 45056, 2048 },
	};
	char tool[256], img[256], in[256];
	struct part_table t;
	int fd, sfd;

	if (!find_tool("sfdisk", tool, sizeof(tool))) {
		printf("test_part sfdisk: skipped: sfdisk not found (fdisk package)\n");
		return CHECK_SKIP;
	}
	fd = temp_image(img, sizeof(img), "mbr");
	sfd = temp_image(in, sizeof(in), "sfdisk-script");
	if (fd < 0 || sfd < 0 || ftruncate(sfd, 0) != 0 ||
	    write(sfd, script, strlen(script)) != (ssize_t)strlen(script)) {
		printf("test_part sfdisk: cannot create temporary files: %s\n", strerror(errno));
		return 1;
	}
	close(sfd);
	char *argv[] = { tool, "--quiet", "--no-reread", img, NULL };
	CHECK(run(argv, in));
	CHECK_EQ_INT(parse_file(fd, 512, &t), 0);
	CHECK_EQ_INT(t.scheme, PART_SCHEME_MBR);
	CHECK_EQ_INT(t.flags, 0);
	CHECK_STREQ(t.disk_id, "1A2B3C4D");
	check_parts(&t, w, 5);
	part_table_free(&t);
	close(fd);
	unlink(img);
	unlink(in);
	return check_report("test_part sfdisk");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "sgdisk") == 0)
		return test_sgdisk();
	if (argc > 1 && strcmp(argv[1], "sfdisk") == 0)
		return test_sfdisk();
	if (argc > 1) {
		printf("usage: test_part [sgdisk|sfdisk]\n");
		return 2;
	}

	for (uint32_t lba_size = 512; lba_size <= 4096; lba_size *= 8) {
		test_gpt_valid(lba_size);
		test_gpt_mutations(lba_size);
		test_gpt_bad_entries(lba_size);
		test_mbr_valid(lba_size);
	}
	test_gpt_entry_size_256();
	test_gpt_entry_size_384();
	test_gpt_no_entries();
	test_gpt_labels();
	test_gpt_block_size_mismatch();
	test_gpt_alternate_lba();
	test_mbr_loops();
	test_mbr_long_chain();
	test_mbr_out_of_range();
	test_mbr_ebr_garbage();
	test_mbr_not_a_table();
	test_mbr_and_gpt();
	test_reader_errors();
	test_reader_geometry();
	return check_report("test_part");
}
