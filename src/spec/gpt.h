/* GUID Partition Table, UEFI Specification 2.10 §5.3.
 *
 * Wire layout only: every multi-byte field is little-endian on disk and is
 * converted by whoever reads it. Field names follow the spec's tables. */
#ifndef NVD_SPEC_GPT_H
#define NVD_SPEC_GPT_H

#include <stddef.h>
#include <stdint.h>

/* EFI_GUID (Appendix A): data1..data3 are little-endian integers and data4
 * is a byte string, hence the "mixed-endian" text form
 * data1-data2-data3-data4[0..1]-data4[2..7]. */
struct gpt_guid {
	uint32_t data1;
	uint16_t data2;
	uint16_t data3;
	uint8_t data4[8];
} __attribute__((packed));

_Static_assert(sizeof(struct gpt_guid) == 16, "EFI_GUID is 16 bytes");

#define GPT_SIGNATURE "EFI PART"	/* 8 bytes on disk, no NUL */
#define GPT_SIGNATURE_LEN 8
#define GPT_REVISION_1_0 0x00010000u	/* major in the upper 16 bits */
#define GPT_PRIMARY_LBA 1		/* §5.3.1: primary header is at LBA 1 */
#define GPT_ENTRY_SIZE_MIN 128		/* SizeOfPartitionEntry is 128 * 2^n */
#define GPT_NAME_UNITS 36		/* PartitionName: 36 CHAR16 (UTF-16LE) */

/* Table 5-5. The header is HeaderSize bytes (at least 92, at most the
 * logical block size); bytes 92.. of the block are reserved, zero. */
struct gpt_header {
	char signature[GPT_SIGNATURE_LEN];
	uint32_t revision;
	uint32_t header_size;
	uint32_t header_crc32;		/* over HeaderSize bytes, this field zero */
	uint32_t rsvd20;
	uint64_t my_lba;
	uint64_t alternate_lba;
	uint64_t first_usable_lba;
	uint64_t last_usable_lba;	/* inclusive */
	struct gpt_guid disk_guid;
	uint64_t partition_entry_lba;
	uint32_t number_of_partition_entries;
	uint32_t size_of_partition_entry;
	uint32_t partition_entry_array_crc32; /* over count * size bytes */
} __attribute__((packed));

#define GPT_HEADER_SIZE_MIN 92
_Static_assert(sizeof(struct gpt_header) == GPT_HEADER_SIZE_MIN, "GPT header is 92 bytes");
_Static_assert(offsetof(struct gpt_header, revision) == 8, "Revision at 8");
_Static_assert(offsetof(struct gpt_header, header_size) == 12, "HeaderSize at 12");
_Static_assert(offsetof(struct gpt_header, header_crc32) == 16, "HeaderCRC32 at 16");
_Static_assert(offsetof(struct gpt_header, my_lba) == 24, "MyLBA at 24");
_Static_assert(offsetof(struct gpt_header, alternate_lba) == 32, "AlternateLBA at 32");
_Static_assert(offsetof(struct gpt_header, first_usable_lba) == 40, "FirstUsableLBA at 40");
_Static_assert(offsetof(struct gpt_header, last_usable_lba) == 48, "LastUsableLBA at 48");
_Static_assert(offsetof(struct gpt_header, disk_guid) == 56, "DiskGUID at 56");
_Static_assert(offsetof(struct gpt_header, partition_entry_lba) == 72, "PartitionEntryLBA at 72");
_Static_assert(offsetof(struct gpt_header, number_of_partition_entries) == 80,
	       "NumberOfPartitionEntries at 80");
_Static_assert(offsetof(struct gpt_header, size_of_partition_entry) == 84,
	       "SizeOfPartitionEntry at 84");
_Static_assert(offsetof(struct gpt_header, partition_entry_array_crc32) == 88,
	       "PartitionEntryArrayCRC32 at 88");

/* Table 5-6. An entry whose type GUID is all zero is unused (§5.3.3);
 * bytes 128..SizeOfPartitionEntry-1 are reserved. */
struct gpt_entry {
	struct gpt_guid partition_type_guid;
	struct gpt_guid unique_partition_guid;
	uint64_t starting_lba;
	uint64_t ending_lba;		/* inclusive */
	uint64_t attributes;
	uint16_t partition_name[GPT_NAME_UNITS]; /* UTF-16LE, NUL-padded */
} __attribute__((packed));

_Static_assert(sizeof(struct gpt_entry) == GPT_ENTRY_SIZE_MIN, "GPT entry is 128 bytes");
_Static_assert(offsetof(struct gpt_entry, unique_partition_guid) == 16,
	       "UniquePartitionGUID at 16");
_Static_assert(offsetof(struct gpt_entry, starting_lba) == 32, "StartingLBA at 32");
_Static_assert(offsetof(struct gpt_entry, ending_lba) == 40, "EndingLBA at 40");
_Static_assert(offsetof(struct gpt_entry, attributes) == 48, "Attributes at 48");
_Static_assert(offsetof(struct gpt_entry, partition_name) == 56, "PartitionName at 56");

/* Table 5-7, Attributes bits; 48..63 belong to the partition type. */
#define GPT_ATTR_REQUIRED_PARTITION	(1ull << 0)
#define GPT_ATTR_NO_BLOCK_IO_PROTOCOL	(1ull << 1)
#define GPT_ATTR_LEGACY_BIOS_BOOTABLE	(1ull << 2)

#endif
