/* The vhost-user protocol (QEMU docs/interop/vhost-user.rst): the message
 * header, the payloads, the request codes and the feature bits, as both a
 * front-end (the VMM, or tests) and a back-end (nvme-drv) put them on the
 * socket.
 *
 * Wire layout only. "All numbers are in the machine native byte order"
 * (Message Specification): unlike virtio rings, nothing here is
 * little-endian by definition. Section names below are vhost-user.rst's. */
#ifndef NVD_SPEC_VHOST_USER_H
#define NVD_SPEC_VHOST_USER_H

#include <stddef.h>
#include <stdint.h>

/* Header: flags bits 0-1 are the version (0x1), bit 2 marks every reply
 * from the back-end, bit 3 asks for a REPLY_ACK answer. */
struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;		/* payload bytes that follow */
} __attribute__((packed));

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY_MASK (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK (1u << 3)

_Static_assert(sizeof(struct vhost_user_hdr) == 12, "header is 12 bytes");
_Static_assert(offsetof(struct vhost_user_hdr, flags) == 4, "flags at 4");
_Static_assert(offsetof(struct vhost_user_hdr, size) == 8, "size at 8");

/* Payload "A vring state description": SET_VRING_NUM/BASE/ENABLE,
 * GET_VRING_BASE. */
struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

_Static_assert(sizeof(struct vhost_user_vring_state) == 8, "vring state is 8 bytes");

/* Payload "A vring address description". The table in vhost-user.rst
 * lists a `size` column that no implementation sends: the layout is
 * Linux's struct vhost_vring_addr, 40 bytes. Ring addresses are the
 * front-end's user addresses unless VIRTIO_F_IOMMU_PLATFORM is negotiated
 * (then IOVAs); log is a guest address. */
struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;		/* VHOST_VRING_F_LOG */
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
} __attribute__((packed));

#define VHOST_VRING_F_LOG 0	/* bit number: log used ring writes (Migration) */

_Static_assert(sizeof(struct vhost_user_vring_addr) == 40, "vring addr is 40 bytes");
_Static_assert(offsetof(struct vhost_user_vring_addr, desc_user_addr) == 8, "desc at 8");
_Static_assert(offsetof(struct vhost_user_vring_addr, used_user_addr) == 16, "used at 16");
_Static_assert(offsetof(struct vhost_user_vring_addr, avail_user_addr) == 24, "avail at 24");
_Static_assert(offsetof(struct vhost_user_vring_addr, log_guest_addr) == 32, "log at 32");

/* SET_VRING_KICK/CALL/ERR carry a u64: the vring index in bits 0-7 and,
 * in bit 8, "no file descriptor in the ancillary data" (poll instead). */
#define VHOST_USER_VRING_IDX_MASK 0xffull
#define VHOST_USER_VRING_NOFD_MASK (1ull << 8)

/* Payload "Memory regions description": one region per fd, in order. The
 * mmap offset is where the region starts in the fd passed with it. */
struct vhost_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));

/* SET_MEM_TABLE holds at most this many regions (QEMU's
 * VHOST_MEMORY_BASELINE_NREGIONS); more need CONFIGURE_MEM_SLOTS. */
#define VHOST_USER_MEM_REGIONS_MAX 8

struct vhost_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_USER_MEM_REGIONS_MAX];
} __attribute__((packed));

_Static_assert(sizeof(struct vhost_user_mem_region) == 32, "memory region is 32 bytes");
_Static_assert(offsetof(struct vhost_user_mem_region, memory_size) == 8, "memory_size at 8");
_Static_assert(offsetof(struct vhost_user_mem_region, userspace_addr) == 16,
	       "userspace_addr at 16");
_Static_assert(offsetof(struct vhost_user_mem_region, mmap_offset) == 24, "mmap_offset at 24");
_Static_assert(sizeof(struct vhost_user_mem_table) == 8 + 8 * 32, "memory table is 264 bytes");
_Static_assert(offsetof(struct vhost_user_mem_table, regions) == 8, "regions at 8");

/* Payload "Single memory region description": ADD_MEM_REG, REM_MEM_REG. */
struct vhost_user_mem_region_msg {
	uint64_t padding;
	struct vhost_user_mem_region region;
} __attribute__((packed));

_Static_assert(sizeof(struct vhost_user_mem_region_msg) == 40, "single region is 40 bytes");
_Static_assert(offsetof(struct vhost_user_mem_region_msg, region) == 8, "region at 8");

/* Payload "Log description": SET_LOG_BASE with LOG_SHMFD. */
struct vhost_user_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
} __attribute__((packed));

_Static_assert(sizeof(struct vhost_user_log) == 16, "log description is 16 bytes");

/* Payload "Virtio device config space": GET_CONFIG, SET_CONFIG. The
 * payload is `size` bytes of the device's configuration space from
 * `offset` on; a GET_CONFIG reply of size 0 reports an error. */
#define VHOST_USER_CONFIG_SIZE_MAX 256
#define VHOST_USER_CONFIG_HDR_SIZE 12

struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VHOST_USER_CONFIG_SIZE_MAX];
} __attribute__((packed));

#define VHOST_SET_CONFIG_TYPE_FRONTEND 0	/* a driver wrote a writable field */
#define VHOST_SET_CONFIG_TYPE_MIGRATION 1	/* live migration restores the space */

_Static_assert(sizeof(struct vhost_user_config) == VHOST_USER_CONFIG_HDR_SIZE + 256,
	       "config is 12 bytes + 256 of payload");
_Static_assert(offsetof(struct vhost_user_config, payload) == VHOST_USER_CONFIG_HDR_SIZE,
	       "payload at 12");

/* Payload "Vring area description": the back-end's HOST_NOTIFIER_MSG. */
struct vhost_user_vring_area {
	uint64_t u64;		/* vring index and flags, as for SET_VRING_KICK */
	uint64_t size;
	uint64_t offset;
} __attribute__((packed));

_Static_assert(sizeof(struct vhost_user_vring_area) == 24, "vring area is 24 bytes");

/* Payload "Inflight description": GET/SET_INFLIGHT_FD. */
struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
} __attribute__((packed));

_Static_assert(sizeof(struct vhost_user_inflight) == 20, "inflight description is 20 bytes");

/* "Inflight I/O tracking", split virtqueues: the shared region
 * GET_INFLIGHT_FD hands out holds one of these per queue, each padded to
 * VHOST_USER_INFLIGHT_ALIGN. A back end marks a head in flight when it
 * takes it (counter: the order taken) and clears it once it is in the
 * used ring; last_batch_head and used_idx let a successor tell whether
 * the last completion reached the ring before the crash. (libvduse keeps
 * the same layout in a file for VDUSE devices.) */
struct vhost_user_inflight_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
} __attribute__((packed));

struct vhost_user_inflight_split {
	uint64_t features;
	uint16_t version;		/* 1 once initialised */
	uint16_t desc_num;		/* the queue size */
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct vhost_user_inflight_desc desc[];
} __attribute__((packed));

#define VHOST_USER_INFLIGHT_VERSION 1
#define VHOST_USER_INFLIGHT_ALIGN 64
#define VHOST_USER_INFLIGHT_QUEUE_SIZE(n)                                                   \
	(((uint64_t)sizeof(struct vhost_user_inflight_split) +                                 \
	  (uint64_t)sizeof(struct vhost_user_inflight_desc) * (n) + VHOST_USER_INFLIGHT_ALIGN - 1) & \
	 ~(uint64_t)(VHOST_USER_INFLIGHT_ALIGN - 1))

_Static_assert(sizeof(struct vhost_user_inflight_desc) == 16, "inflight desc is 16 bytes");
_Static_assert(offsetof(struct vhost_user_inflight_desc, next) == 6, "next at 6");
_Static_assert(offsetof(struct vhost_user_inflight_desc, counter) == 8, "counter at 8");
_Static_assert(sizeof(struct vhost_user_inflight_split) == 16, "inflight queue header is 16 bytes");
_Static_assert(offsetof(struct vhost_user_inflight_split, version) == 8, "version at 8");
_Static_assert(offsetof(struct vhost_user_inflight_split, used_idx) == 14, "used_idx at 14");
_Static_assert(VHOST_USER_INFLIGHT_QUEUE_SIZE(128) == 2112, "QEMU's size for 128 entries");

/* "C structure": the header and the largest payload in one buffer. The
 * IOTLB payload (only with VIRTIO_F_IOMMU_PLATFORM) is not modelled. */
union vhost_user_payload {
	uint64_t u64;
	struct vhost_user_vring_state state;
	struct vhost_user_vring_addr addr;
	struct vhost_user_mem_table memory;
	struct vhost_user_mem_region_msg mem_reg;
	struct vhost_user_log log;
	struct vhost_user_config config;
	struct vhost_user_vring_area area;
	struct vhost_user_inflight inflight;
} __attribute__((packed));

struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union vhost_user_payload payload;
} __attribute__((packed));

_Static_assert(sizeof(union vhost_user_payload) == sizeof(struct vhost_user_config),
	       "the config payload is the largest");
_Static_assert(sizeof(struct vhost_user_msg) == 12 + 268, "message buffer is 280 bytes");

/* File descriptors one message carries at most (SCM_RIGHTS): one per
 * SET_MEM_TABLE region. */
#define VHOST_USER_MAX_FDS 8

/* "Communication": the bit in GET/SET_FEATURES (a virtio feature number,
 * unused by virtio 1.x) that gates protocol feature negotiation. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
/* "Migration": the back-end logs dirty pages. */
#define VHOST_F_LOG_ALL 26

/* "Protocol features" (bit numbers). */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD 1
#define VHOST_USER_PROTOCOL_F_RARP 2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_MTU 4
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ 5	/* SLAVE_REQ before QEMU 8.1 */
#define VHOST_USER_PROTOCOL_F_CROSS_ENDIAN 6
#define VHOST_USER_PROTOCOL_F_CRYPTO_SESSION 7
#define VHOST_USER_PROTOCOL_F_PAGEFAULT 8
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD 10
#define VHOST_USER_PROTOCOL_F_HOST_NOTIFIER 11
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD 12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13
#define VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS 14
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define VHOST_USER_PROTOCOL_F_STATUS 16

/* "Front-end message types": what the front-end sends. The replies that
 * exist without REPLY_ACK are GET_FEATURES, GET_PROTOCOL_FEATURES,
 * GET_VRING_BASE, GET_QUEUE_NUM, GET_CONFIG, GET_MAX_MEM_SLOTS and
 * GET_STATUS (plus the log and inflight ones, not used here). */
enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,	/* deprecated */
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,	/* SET_SLAVE_REQ_FD before QEMU 8.1 */
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_SET_VRING_ENDIAN = 23,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_CREATE_CRYPTO_SESSION = 26,
	VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GPU_SET_SOCKET = 33,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_VRING_KICK = 35,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_MAX,		/* first code this header does not know */
};

/* "Back-end message types": sent by the back-end on the channel given
 * with SET_BACKEND_REQ_FD (never on the main socket). */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_NONE = 0,
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
	VHOST_USER_BACKEND_VRING_CALL = 4,
	VHOST_USER_BACKEND_VRING_ERR = 5,
};

#endif
