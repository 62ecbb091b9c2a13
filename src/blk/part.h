/* Partition tables (GPT and MBR), parsed from a disk through a read callback.
 *
 * Pure logic: no I/O of its own, no logging. Everything read from the disk
 * image is untrusted and checked before use. */
#ifndef NVD_BLK_PART_H
#define NVD_BLK_PART_H

#include <stdbool.h>
#include <stdint.h>

/* Reads `nlb` logical blocks at `lba` into buf (nlb * lba_size bytes).
 * Returns 0 or a negative errno. */
struct part_reader {
	int (*read)(void *ctx, uint64_t lba, uint32_t nlb, void *buf);
	void *ctx;
	uint32_t lba_size;	/* 512 or 4096 (any power of two, 512..65536) */
	uint64_t nlba;		/* size of the disk in logical blocks */
};

enum part_scheme { PART_SCHEME_NONE, PART_SCHEME_GPT, PART_SCHEME_MBR };

/* Set in part_table.flags: what the parser noticed and worked around. The
 * GPT_*_BAD flags are only set when a GPT was there to be found (a header
 * signature or a protective MBR), not on a disk without one. */
enum {
	PART_F_GPT_PRIMARY_BAD = 1u << 0, /* primary header or array invalid */
	PART_F_GPT_BACKUP_BAD = 1u << 1,  /* backup header or array invalid */
	PART_F_GPT_USED_BACKUP = 1u << 2, /* entries taken from the backup */
	PART_F_MBR_BAD_ENTRY = 1u << 3,   /* an MBR entry was out of range; skipped */
	PART_F_MBR_EBR_LOOP = 1u << 4,    /* extended chain looped/too long; cut */
	PART_F_GPT_BAD_ENTRY = 1u << 5,   /* a GPT entry was out of range; skipped */
};

/* 36 UTF-16 code units as UTF-8, plus NUL: a unit (or a lone surrogate,
 * replaced by U+FFFD) takes up to 3 bytes, a surrogate pair 4 for 2 units. */
#define PART_LABEL_MAX 109

struct part_entry {
	unsigned number;	/* Linux numbering: GPT slot+1; MBR 1-4, logical 5.. */
	char uuid[37];		/* canonical upper-case: GPT unique GUID, MBR "SSSSSSSS-NN" */
	char type[37];		/* GPT type GUID (upper-case) or MBR "0xNN" (upper-case hex) */
	char label[PART_LABEL_MAX]; /* GPT name as UTF-8; empty for MBR */
	uint64_t first_lba;
	uint64_t nlba;		/* ending LBA is inclusive in GPT: nlba = last - first + 1 */
};

struct part_table {
	enum part_scheme scheme;
	char disk_id[37];	/* GPT disk GUID or MBR signature "SSSSSSSS"; "" if none */
	unsigned flags;
	unsigned count;
	struct part_entry *parts; /* malloc'ed, `count` entries, sorted by number */
};

/* Reads and validates the partition table. A disk with no (valid) table
 * yields scheme NONE and 0.
 *
 * A valid legacy MBR (0x55AA, no 0xEE record) wins over any GPT, which is
 * then stale (Linux and libblkid agree). Otherwise the GPT is used if its
 * primary or backup is valid; a protective MBR is never read as a table,
 * and a missing one does not hide a valid GPT. MBR extended containers are
 * not listed; logical partitions are.
 *
 * Returns 0, -EINVAL (lba_size not a power of two in 512..65536, or no
 * read callback), -ENOMEM, or the first error the reader returned (any
 * read failure aborts the parse). On error *out is empty. */
int part_read_table(const struct part_reader *r, struct part_table *out);
void part_table_free(struct part_table *t);

const char *part_scheme_name(enum part_scheme s);

#endif
