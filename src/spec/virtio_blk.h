/* Virtual I/O Device (VIRTIO) Version 1.2: the split virtqueue (2.7), the
 * feature bits nvme-drv offers (5.2.3, 6) and the block device's
 * configuration and requests (5.2.4, 5.2.6).
 *
 * Wire layout only: every multi-byte field is little-endian (virtio 1.x
 * drops the legacy guest-endian layout) and is converted by whoever reads
 * it. Field names follow the spec's structs. */
#ifndef NVD_SPEC_VIRTIO_BLK_H
#define NVD_SPEC_VIRTIO_BLK_H

#include <stddef.h>
#include <stdint.h>

/* 6 Reserved Feature Bits (bit numbers, not masks). */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* 5.2.3 Block device feature bits. */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BIT(b) (1ull << (b))

/* 2.7.5 The Virtqueue Descriptor Table. */
struct vring_desc {
	uint64_t addr;		/* guest address of the buffer */
	uint32_t len;
	uint16_t flags;
	uint16_t next;		/* valid when flags has VRING_DESC_F_NEXT */
};

#define VRING_DESC_F_NEXT 1u	/* the chain continues at `next` */
#define VRING_DESC_F_WRITE 2u	/* device-writable (else device-readable) */
#define VRING_DESC_F_INDIRECT 4u	/* the buffer is a table of descriptors (2.7.5.3) */

_Static_assert(sizeof(struct vring_desc) == 16, "virtq_desc is 16 bytes");
_Static_assert(offsetof(struct vring_desc, len) == 8, "len at 8");
_Static_assert(offsetof(struct vring_desc, flags) == 12, "flags at 12");
_Static_assert(offsetof(struct vring_desc, next) == 14, "next at 14");

/* 2.7.6 The Virtqueue Available Ring: ring[queue size] is followed by
 * used_event (2.7.7), meaningful only with VIRTIO_RING_F_EVENT_IDX. */
struct vring_avail {
	uint16_t flags;
	uint16_t idx;		/* where the driver puts the next entry, free-running */
	uint16_t ring[];
};

#define VRING_AVAIL_F_NO_INTERRUPT 1u

_Static_assert(sizeof(struct vring_avail) == 4, "avail ring header is 4 bytes");

/* 2.7.8 The Virtqueue Used Ring: ring[queue size] is followed by
 * avail_event (2.7.10), meaningful only with VIRTIO_RING_F_EVENT_IDX. */
struct vring_used_elem {
	uint32_t id;		/* head of the completed chain (u32 for padding reasons) */
	uint32_t len;		/* bytes written into the device-writable buffers */
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];
};

#define VRING_USED_F_NO_NOTIFY 1u

_Static_assert(sizeof(struct vring_used_elem) == 8, "virtq_used_elem is 8 bytes");
_Static_assert(sizeof(struct vring_used) == 4, "used ring header is 4 bytes");

/* 2.7 Split Virtqueues: alignment and size of each part for queue size n. */
#define VRING_DESC_ALIGN 16
#define VRING_AVAIL_ALIGN 2
#define VRING_USED_ALIGN 4
#define VRING_DESC_SIZE(n) (16ull * (n))
#define VRING_AVAIL_SIZE(n) (6ull + 2ull * (n))
#define VRING_USED_SIZE(n) (6ull + 8ull * (n))
#define VRING_SIZE_MAX 32768	/* Queue Size is a power of 2, at most 32768 */

/* 5.2.4 Device configuration layout, up to the write-zeroes fields (the
 * secure-erase and zoned fields that follow are not offered). */
struct virtio_blk_config {
	uint64_t capacity;		/* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	struct virtio_blk_geometry {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	struct virtio_blk_topology {
		uint8_t physical_block_exp;	/* log2 logical blocks per physical */
		uint8_t alignment_offset;
		uint16_t min_io_size;		/* in logical blocks */
		uint32_t opt_io_size;		/* in logical blocks */
	} topology;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

_Static_assert(sizeof(struct virtio_blk_config) == 60, "blk config up to unused1 is 60 bytes");
_Static_assert(offsetof(struct virtio_blk_config, size_max) == 8, "size_max at 8");
_Static_assert(offsetof(struct virtio_blk_config, seg_max) == 12, "seg_max at 12");
_Static_assert(offsetof(struct virtio_blk_config, geometry) == 16, "geometry at 16");
_Static_assert(offsetof(struct virtio_blk_config, blk_size) == 20, "blk_size at 20");
_Static_assert(offsetof(struct virtio_blk_config, topology) == 24, "topology at 24");
_Static_assert(offsetof(struct virtio_blk_config, writeback) == 32, "writeback at 32");
_Static_assert(offsetof(struct virtio_blk_config, num_queues) == 34, "num_queues at 34");
_Static_assert(offsetof(struct virtio_blk_config, max_discard_sectors) == 36,
	       "max_discard_sectors at 36");
_Static_assert(offsetof(struct virtio_blk_config, max_discard_seg) == 40, "max_discard_seg at 40");
_Static_assert(offsetof(struct virtio_blk_config, discard_sector_alignment) == 44,
	       "discard_sector_alignment at 44");
_Static_assert(offsetof(struct virtio_blk_config, max_write_zeroes_sectors) == 48,
	       "max_write_zeroes_sectors at 48");
_Static_assert(offsetof(struct virtio_blk_config, max_write_zeroes_seg) == 52,
	       "max_write_zeroes_seg at 52");
_Static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56,
	       "write_zeroes_may_unmap at 56");

/* 5.2.6 Device Operation: every request starts with this device-readable
 * header (the spec's `reserved` was `ioprio` in the legacy interface) and
 * ends with one device-writable status byte. */
struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;	/* in 512-byte units whatever blk_size says */
};

_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "request header is 16 bytes");
_Static_assert(offsetof(struct virtio_blk_outhdr, sector) == 8, "sector at 8");

#define VIRTIO_BLK_SECTOR_SIZE 512

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* The data of DISCARD and WRITE_ZEROES: an array of these. */
struct virtio_blk_discard_write_zeroes {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP (1u << 0)	/* WRITE_ZEROES may deallocate */
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_RESERVED (~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)

_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == 16,
	       "discard/write-zeroes segment is 16 bytes");
_Static_assert(offsetof(struct virtio_blk_discard_write_zeroes, num_sectors) == 8,
	       "num_sectors at 8");
_Static_assert(offsetof(struct virtio_blk_discard_write_zeroes, flags) == 12, "flags at 12");

/* GET_ID: NUL-padded ASCII, no terminator when all 20 bytes are used. */
#define VIRTIO_BLK_ID_BYTES 20

#endif
