/* Legacy Master Boot Record, UEFI Specification 2.10 §5.2.1 (Tables 5-1,
 * 5-2) and protective MBR §5.2.3; extended boot records (EBR) use the same
 * layout, chained as IBM PC DOS did and Linux block/partitions/msdos.c reads.
 *
 * Wire layout only: multi-byte fields are little-endian. The record is the
 * first 512 bytes of LBA 0 whatever the logical block size, while its LBA
 * fields count logical blocks. */
#ifndef NVD_SPEC_MBR_H
#define NVD_SPEC_MBR_H

#include <stddef.h>
#include <stdint.h>

struct mbr_partition_record {
	uint8_t boot_indicator;		/* 0x00 or 0x80 */
	uint8_t starting_chs[3];
	uint8_t os_type;
	uint8_t ending_chs[3];
	uint32_t starting_lba;
	uint32_t size_in_lba;
} __attribute__((packed));

_Static_assert(sizeof(struct mbr_partition_record) == 16, "MBR partition record is 16 bytes");
_Static_assert(offsetof(struct mbr_partition_record, os_type) == 4, "OSType at 4");
_Static_assert(offsetof(struct mbr_partition_record, starting_lba) == 8, "StartingLBA at 8");
_Static_assert(offsetof(struct mbr_partition_record, size_in_lba) == 12, "SizeInLBA at 12");

#define MBR_NR_RECORDS 4

struct mbr {
	uint8_t boot_code[440];
	uint32_t unique_mbr_disk_signature;
	uint8_t rsvd444[2];		/* "Unknown" in Table 5-1 */
	struct mbr_partition_record partition_record[MBR_NR_RECORDS];
	uint16_t signature;
} __attribute__((packed));

#define MBR_SIZE 512
_Static_assert(sizeof(struct mbr) == MBR_SIZE, "MBR is 512 bytes");
_Static_assert(offsetof(struct mbr, unique_mbr_disk_signature) == 440,
	       "UniqueMBRDiskSignature at 440");
_Static_assert(offsetof(struct mbr, partition_record) == 446, "PartitionRecord at 446");
_Static_assert(offsetof(struct mbr, signature) == 510, "Signature at 510");

#define MBR_SIGNATURE 0xaa55		/* bytes 0x55 0xaa */
#define MBR_BOOT_INACTIVE 0x00
#define MBR_BOOT_ACTIVE 0x80

#define MBR_TYPE_EMPTY 0x00
#define MBR_TYPE_EXTENDED 0x05		/* CHS-addressed extended */
#define MBR_TYPE_EXTENDED_LBA 0x0f	/* Windows 95 LBA extended */
#define MBR_TYPE_LINUX_EXTENDED 0x85
#define MBR_TYPE_GPT_PROTECTIVE 0xee	/* §5.2.3 */

#endif
