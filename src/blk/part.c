#include "blk/part.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "spec/gpt.h"
#include "spec/mbr.h"

/* Real tables hold 128 entries of 128 bytes (16 KiB). The bound leaves room
 * for unusual tools while keeping a hostile header from making us allocate
 * and read more than this. */
#define GPT_ARRAY_MAX (1u << 20)
/* Linux stops at DISK_MAX_PARTS (256); the bound also keeps the MBR id's
 * partition number within its two hex digits. */
#define MBR_PART_MAX 255
/* Hops through an extended chain, counting EBRs that hold no partition
 * (Linux tolerates 100 of those in a row). */
#define EBR_MAX 256
#define LBA_SIZE_MAX (1u << 16)

_Static_assert(PART_LABEL_MAX >= GPT_NAME_UNITS * 3 + 1,
	       "each UTF-16 unit becomes at most 3 UTF-8 bytes (a pair: 4 for 2)");
_Static_assert(MBR_PART_MAX <= 0xff, "MBR ids print the partition number as 2 hex digits");

static const char hexdig[] = "0123456789ABCDEF";

/* Writes `digits` upper-case hex digits of v; returns the end. */
static char *put_hex(char *p, uint64_t v, unsigned digits)
{
	for (unsigned i = digits; i-- > 0; v >>= 4)
		p[i] = hexdig[v & 0xf];
	return p + digits;
}

static void guid_to_text(const struct gpt_guid *g, char out[37])
{
	char *p = out;

	p = put_hex(p, le32toh(g->data1), 8);
	*p++ = '-';
	p = put_hex(p, le16toh(g->data2), 4);
	*p++ = '-';
	p = put_hex(p, le16toh(g->data3), 4);
	for (unsigned i = 0; i < sizeof(g->data4); i++) {
		if (i == 0 || i == 2)
			*p++ = '-';
		p = put_hex(p, g->data4[i], 2);
	}
	*p = '\0';
}

static bool guid_is_zero(const struct gpt_guid *g)
{
	static const struct gpt_guid zero;

	return memcmp(g, &zero, sizeof(zero)) == 0;
}

static size_t put_utf8(char *p, uint32_t c)
{
	if (c < 0x80) {
		p[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		p[0] = (char)(0xc0 | c >> 6);
		p[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		p[0] = (char)(0xe0 | c >> 12);
		p[1] = (char)(0x80 | (c >> 6 & 0x3f));
		p[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | c >> 18);
	p[1] = (char)(0x80 | (c >> 12 & 0x3f));
	p[2] = (char)(0x80 | (c >> 6 & 0x3f));
	p[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* PartitionName is UTF-16LE, NUL-terminated unless all 36 units are used.
 * Unpaired surrogates become U+FFFD, as a UTF-8 string cannot hold them. */
static void name_to_utf8(const struct gpt_entry *e, char out[PART_LABEL_MAX])
{
	size_t n = 0;

	for (unsigned i = 0; i < GPT_NAME_UNITS; i++) {
		uint32_t c = le16toh(e->partition_name[i]);
		uint32_t lo = i + 1 < GPT_NAME_UNITS ? le16toh(e->partition_name[i + 1]) : 0;

		if (c == 0)
			break;
		if (c >= 0xd800 && c <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
			c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
			i++;
		} else if (c >= 0xd800 && c <= 0xdfff) {
			c = 0xfffd;
		}
		n += put_utf8(out + n, c);
	}
	out[n] = '\0';
}

/* Appends a zeroed entry, growing the array as needed. */
static struct part_entry *part_new(struct part_table *t, unsigned *cap)
{
	struct part_entry *e;

	if (t->count == *cap) {
		unsigned ncap = *cap ? *cap * 2 : 8;

		e = realloc(t->parts, ncap * sizeof(*e));
		if (!e)
			return NULL;
		t->parts = e;
		*cap = ncap;
	}
	e = &t->parts[t->count++];
	memset(e, 0, sizeof(*e));
	return e;
}

static int read_blocks(const struct part_reader *r, uint64_t lba, uint32_t nlb, void *buf)
{
	int rc = r->read(r->ctx, lba, nlb, buf);

	/* The contract is 0 or -errno; anything else is still a failure. */
	return rc > 0 ? -EIO : rc;
}

/* One GPT copy (header and entry array), header fields in host order. */
struct gpt {
	bool seen;		/* the signature was there */
	bool hdr_ok;		/* the header passed its checks */
	bool ok;		/* ...and so did the entry array */
	uint64_t alternate_lba, first_usable, last_usable, entry_lba;
	uint32_t nentries, entry_size, array_crc;
	struct gpt_guid disk_guid;
	uint8_t *array;
};

/* Checks the header read from `lba` (§5.3.2, "validity of the GPT"). `blk`
 * is one logical block; its CRC field is cleared in place. */
static void gpt_check_header(const struct part_reader *r, uint64_t lba, uint8_t *blk,
			     struct gpt *g)
{
	struct gpt_header h;
	uint32_t hsize, crc;
	uint64_t array_bytes, array_nlb;

	memcpy(&h, blk, sizeof(h));
	if (memcmp(h.signature, GPT_SIGNATURE, GPT_SIGNATURE_LEN) != 0)
		return;
	g->seen = true;
	hsize = le32toh(h.header_size);
	if (hsize < GPT_HEADER_SIZE_MIN || hsize > r->lba_size)
		return;
	crc = le32toh(h.header_crc32);
	memset(blk + offsetof(struct gpt_header, header_crc32), 0, sizeof(h.header_crc32));
	if (crc32(0, blk, hsize) != crc)
		return;
	/* Minor revisions stay compatible; a new major would not be. */
	if (le32toh(h.revision) >> 16 != GPT_REVISION_1_0 >> 16)
		return;
	if (le64toh(h.my_lba) != lba)
		return;

	g->alternate_lba = le64toh(h.alternate_lba);
	g->first_usable = le64toh(h.first_usable_lba);
	g->last_usable = le64toh(h.last_usable_lba);
	g->entry_lba = le64toh(h.partition_entry_lba);
	g->nentries = le32toh(h.number_of_partition_entries);
	g->entry_size = le32toh(h.size_of_partition_entry);
	g->array_crc = le32toh(h.partition_entry_array_crc32);
	g->disk_guid = h.disk_guid;

	/* The usable range lies on the disk and excludes this header. */
	if (g->first_usable > g->last_usable || g->last_usable >= r->nlba)
		return;
	if (lba >= g->first_usable && lba <= g->last_usable)
		return;
	/* SizeOfPartitionEntry must be 128 * 2^n. */
	if (g->entry_size < GPT_ENTRY_SIZE_MIN || (g->entry_size & (g->entry_size - 1)))
		return;
	array_bytes = (uint64_t)g->nentries * g->entry_size;
	if (array_bytes > GPT_ARRAY_MAX)
		return;
	array_nlb = (array_bytes + r->lba_size - 1) / r->lba_size;
	/* The array lies on the disk, past the MBR, and overlaps neither this
	 * header nor the usable range (§5.3.1 places it between the two). */
	if (g->entry_lba == 0 || g->entry_lba >= r->nlba || array_nlb > r->nlba - g->entry_lba)
		return;
	if (lba >= g->entry_lba && lba - g->entry_lba < array_nlb)
		return;
	if (g->entry_lba + array_nlb > g->first_usable && g->entry_lba <= g->last_usable)
		return;
	g->hdr_ok = true;
}

/* Loads and checks the GPT whose header is at `lba`. A copy that fails a
 * check is not an error: g->ok stays false. Returns 0, -ENOMEM or a read
 * error. */
static int gpt_load(const struct part_reader *r, uint64_t lba, struct gpt *g)
{
	uint64_t array_bytes;
	uint32_t array_nlb;
	uint8_t *blk;
	int rc;

	memset(g, 0, sizeof(*g));
	if (lba == 0 || lba >= r->nlba)
		return 0;
	blk = malloc(r->lba_size);
	if (!blk)
		return -ENOMEM;
	rc = read_blocks(r, lba, 1, blk);
	if (rc == 0)
		gpt_check_header(r, lba, blk, g);
	free(blk);
	if (rc || !g->hdr_ok)
		return rc;

	/* Bounded by GPT_ARRAY_MAX in gpt_check_header. */
	array_bytes = (uint64_t)g->nentries * g->entry_size;
	array_nlb = (uint32_t)((array_bytes + r->lba_size - 1) / r->lba_size);
	if (array_nlb > 0) {
		g->array = malloc((size_t)array_nlb * r->lba_size);
		if (!g->array)
			return -ENOMEM;
		rc = read_blocks(r, g->entry_lba, array_nlb, g->array);
		if (rc)
			return rc;
	}
	g->ok = crc32(0, g->array, (uInt)array_bytes) == g->array_crc;
	return 0;
}

static void gpt_release(struct gpt *g)
{
	free(g->array);
	g->array = NULL;
}

static int gpt_emit(const struct gpt *g, struct part_table *t)
{
	unsigned cap = 0;

	t->scheme = PART_SCHEME_GPT;
	guid_to_text(&g->disk_guid, t->disk_id);
	for (uint32_t i = 0; i < g->nentries; i++) {
		struct gpt_entry e;
		struct part_entry *p;
		uint64_t first, last;

		memcpy(&e, g->array + (size_t)i * g->entry_size, sizeof(e));
		if (guid_is_zero(&e.partition_type_guid))
			continue;
		first = le64toh(e.starting_lba);
		last = le64toh(e.ending_lba);
		if (first > last || first < g->first_usable || last > g->last_usable) {
			t->flags |= PART_F_GPT_BAD_ENTRY;
			continue;
		}
		p = part_new(t, &cap);
		if (!p)
			return -ENOMEM;
		p->number = i + 1;
		guid_to_text(&e.unique_partition_guid, p->uuid);
		guid_to_text(&e.partition_type_guid, p->type);
		name_to_utf8(&e, p->label);
		p->first_lba = first;
		p->nlba = last - first + 1;
	}
	return 0;
}

/* Primary at LBA 1; if it is bad, the backup at the primary's AlternateLBA
 * when the primary header itself was sound, else at the last LBA (§5.3.1).
 * With a good primary the backup is still checked, to report it. */
static int gpt_parse(const struct part_reader *r, bool protective, struct part_table *t)
{
	struct gpt pri, bak = { 0 };
	uint64_t cand[2];
	unsigned ncand = 0;
	int rc;

	rc = gpt_load(r, GPT_PRIMARY_LBA, &pri);
	if (rc)
		goto out;
	if (pri.hdr_ok)
		cand[ncand++] = pri.alternate_lba;
	if (!pri.ok && (ncand == 0 || cand[0] != r->nlba - 1))
		cand[ncand++] = r->nlba - 1;
	for (unsigned i = 0; i < ncand && !bak.ok; i++) {
		if (cand[i] == GPT_PRIMARY_LBA)
			continue;
		gpt_release(&bak);
		rc = gpt_load(r, cand[i], &bak);
		if (rc)
			goto out;
	}

	if (pri.seen || bak.seen || protective) {
		if (!pri.ok)
			t->flags |= PART_F_GPT_PRIMARY_BAD;
		if (!bak.ok)
			t->flags |= PART_F_GPT_BACKUP_BAD;
	}
	if (pri.ok) {
		rc = gpt_emit(&pri, t);
	} else if (bak.ok) {
		t->flags |= PART_F_GPT_USED_BACKUP;
		rc = gpt_emit(&bak, t);
	}
out:
	gpt_release(&pri);
	gpt_release(&bak);
	return rc;
}

enum mbr_kind { MBR_ABSENT, MBR_PROTECTIVE, MBR_LEGACY };

static enum mbr_kind mbr_classify(const struct mbr *m)
{
	bool used = false;

	if (le16toh(m->signature) != MBR_SIGNATURE)
		return MBR_ABSENT;
	/* Any 0xEE record, as Linux checks: hybrid MBRs list others beside it. */
	for (unsigned i = 0; i < MBR_NR_RECORDS; i++)
		if (m->partition_record[i].os_type == MBR_TYPE_GPT_PROTECTIVE)
			return MBR_PROTECTIVE;
	for (unsigned i = 0; i < MBR_NR_RECORDS; i++) {
		const struct mbr_partition_record *p = &m->partition_record[i];

		/* Another boot indicator means a FAT boot sector, not a table
		 * (Linux msdos_partition() rejects it the same way). */
		if (p->boot_indicator != MBR_BOOT_INACTIVE && p->boot_indicator != MBR_BOOT_ACTIVE)
			return MBR_ABSENT;
		if (le32toh(p->size_in_lba) != 0)
			used = true;
	}
	return used ? MBR_LEGACY : MBR_ABSENT;
}

static bool mbr_is_extended(uint8_t type)
{
	return type == MBR_TYPE_EXTENDED || type == MBR_TYPE_EXTENDED_LBA ||
	       type == MBR_TYPE_LINUX_EXTENDED;
}

struct mbr_state {
	const struct part_reader *r;
	struct part_table *t;
	unsigned cap;
	uint32_t disk_sig;
	unsigned next;		/* number of the next logical partition */
};

/* True if [offs, offs + size) fits in a span of `len` blocks. */
static bool in_span(uint64_t offs, uint64_t size, uint64_t len)
{
	return offs <= len && size <= len - offs;
}

/* Adds partition `number` at `offs` blocks past `base`: LBA 0 for a primary,
 * its EBR for a logical partition (offs 0 would cover that sector). Skips it
 * if it runs off the disk, which Linux would truncate. base < nlba. */
static int mbr_add(struct mbr_state *s, unsigned number, uint8_t type, uint64_t base,
		   uint64_t offs, uint64_t size)
{
	struct part_entry *p;
	uint64_t start = base + offs;

	if (offs == 0 || !in_span(offs, size, s->r->nlba - base)) {
		s->t->flags |= PART_F_MBR_BAD_ENTRY;
		return 0;
	}
	p = part_new(s->t, &s->cap);
	if (!p)
		return -ENOMEM;
	p->number = number;
	/* "SSSSSSSS-NN" as Linux prints PARTUUID, but upper-case. */
	put_hex(p->uuid, s->disk_sig, 8);
	p->uuid[8] = '-';
	put_hex(p->uuid + 9, number, 2);
	memcpy(p->type, "0x", 2);
	put_hex(p->type + 2, type, 2);
	p->first_lba = start;
	p->nlba = size;
	return 0;
}

/* Walks the EBR chain of the extended partition [first, first + first_size).
 * Each EBR gives logical partitions relative to itself and a link to the
 * next EBR relative to `first`; this follows Linux parse_extended(). */
static int mbr_walk_extended(struct mbr_state *s, uint64_t first, uint64_t first_size)
{
	const struct part_reader *r = s->r;
	uint64_t seen[EBR_MAX];
	unsigned nseen = 0;
	uint64_t ebr = first, ebr_size = first_size;
	uint8_t *blk;
	int rc = 0;

	blk = malloc(r->lba_size);
	if (!blk)
		return -ENOMEM;
	for (;;) {
		const struct mbr_partition_record *link = NULL;
		struct mbr m;
		unsigned i;

		for (i = 0; i < nseen && seen[i] != ebr; i++)
			;
		if (i < nseen || nseen == EBR_MAX) {
			s->t->flags |= PART_F_MBR_EBR_LOOP;
			break;
		}
		seen[nseen++] = ebr;
		rc = read_blocks(r, ebr, 1, blk);
		if (rc)
			break;
		memcpy(&m, blk, sizeof(m));
		if (le16toh(m.signature) != MBR_SIGNATURE)
			break;

		for (i = 0; i < MBR_NR_RECORDS; i++) {
			const struct mbr_partition_record *p = &m.partition_record[i];
			uint64_t offs = le32toh(p->starting_lba), size = le32toh(p->size_in_lba);
			uint64_t rel = ebr - first; /* the EBR's offset in the container */

			if (size == 0 || mbr_is_extended(p->os_type))
				continue;
			/* Records 3 and 4 often hold garbage: Linux takes them only
			 * inside this EBR's span and the container, and does not
			 * give them a number otherwise. */
			if (i >= 2 && (!in_span(offs, size, ebr_size) || rel > first_size ||
				       !in_span(offs, size, first_size - rel))) {
				s->t->flags |= PART_F_MBR_BAD_ENTRY;
				continue;
			}
			if (s->next > MBR_PART_MAX) {
				s->t->flags |= PART_F_MBR_EBR_LOOP;
				goto out;
			}
			rc = mbr_add(s, s->next++, p->os_type, ebr, offs, size);
			if (rc)
				goto out;
		}
		for (i = 0; i < MBR_NR_RECORDS && !link; i++) {
			const struct mbr_partition_record *p = &m.partition_record[i];

			if (le32toh(p->size_in_lba) != 0 && mbr_is_extended(p->os_type))
				link = p;
		}
		if (!link)
			break;
		if (le32toh(link->starting_lba) >= r->nlba - first) {
			s->t->flags |= PART_F_MBR_BAD_ENTRY;
			break;
		}
		ebr = first + le32toh(link->starting_lba);
		ebr_size = le32toh(link->size_in_lba);
	}
out:
	free(blk);
	return rc;
}

static int mbr_parse(const struct part_reader *r, const struct mbr *m, struct part_table *t)
{
	struct mbr_state s = {
		.r = r,
		.t = t,
		.disk_sig = le32toh(m->unique_mbr_disk_signature),
		.next = MBR_NR_RECORDS + 1,
	};
	int rc = 0;

	t->scheme = PART_SCHEME_MBR;
	put_hex(t->disk_id, s.disk_sig, 8);
	t->disk_id[8] = '\0';
	/* Primaries first, then logicals, so the table comes out sorted by
	 * number; Linux numbers them the same way. */
	for (unsigned i = 0; i < MBR_NR_RECORDS && rc == 0; i++) {
		const struct mbr_partition_record *p = &m->partition_record[i];

		if (le32toh(p->size_in_lba) != 0 && !mbr_is_extended(p->os_type))
			rc = mbr_add(&s, i + 1, p->os_type, 0, le32toh(p->starting_lba),
				     le32toh(p->size_in_lba));
	}
	for (unsigned i = 0; i < MBR_NR_RECORDS && rc == 0; i++) {
		const struct mbr_partition_record *p = &m->partition_record[i];
		uint64_t start = le32toh(p->starting_lba), size = le32toh(p->size_in_lba);

		if (size == 0 || !mbr_is_extended(p->os_type))
			continue;
		if (start == 0 || !in_span(start, size, r->nlba)) {
			t->flags |= PART_F_MBR_BAD_ENTRY;
			continue;
		}
		rc = mbr_walk_extended(&s, start, size);
	}
	return rc;
}

int part_read_table(const struct part_reader *r, struct part_table *out)
{
	enum mbr_kind kind;
	struct mbr m;
	uint8_t *blk;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!r || !r->read || r->lba_size < MBR_SIZE || r->lba_size > LBA_SIZE_MAX ||
	    (r->lba_size & (r->lba_size - 1)))
		return -EINVAL;
	if (r->nlba == 0)
		return 0;
	blk = malloc(r->lba_size);
	if (!blk)
		return -ENOMEM;
	rc = read_blocks(r, 0, 1, blk);
	if (rc == 0) {
		memcpy(&m, blk, sizeof(m));
		kind = mbr_classify(&m);
		if (kind == MBR_LEGACY)
			rc = mbr_parse(r, &m, out);
		else
			rc = gpt_parse(r, kind == MBR_PROTECTIVE, out);
	}
	free(blk);
	if (rc)
		part_table_free(out);
	return rc;
}

void part_table_free(struct part_table *t)
{
	free(t->parts);
	memset(t, 0, sizeof(*t));
}

const char *part_scheme_name(enum part_scheme s)
{
	switch (s) {
	case PART_SCHEME_NONE: return "none";
	case PART_SCHEME_GPT: return "gpt";
	case PART_SCHEME_MBR: return "mbr";
	}
	return "?";
}
