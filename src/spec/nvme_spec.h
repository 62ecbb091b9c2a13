/* NVM Express Base Specification 2.0 (and the NVM Command Set spec 1.0):
 * the registers, queue entries and data structures nvme-drv uses.
 *
 * Wire layout only: every struct is little-endian as on the wire (the
 * driver runs on little-endian hosts only, asserted below), sized and
 * asserted; registers are offsets with _SHIFT/_MASK field pairs. */
#ifndef NVD_SPEC_NVME_SPEC_H
#define NVD_SPEC_NVME_SPEC_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nvme-drv reads NVMe structures in place and needs a little-endian host"
#endif

/* 3.1.4 Controller registers (offsets into BAR0). */
enum {
	NVME_REG_CAP = 0x00,	/* 64-bit */
	NVME_REG_VS = 0x08,
	NVME_REG_INTMS = 0x0c,
	NVME_REG_INTMC = 0x10,
	NVME_REG_CC = 0x14,
	NVME_REG_CSTS = 0x1c,
	NVME_REG_NSSR = 0x20,
	NVME_REG_AQA = 0x24,
	NVME_REG_ASQ = 0x28,	/* 64-bit */
	NVME_REG_ACQ = 0x30,	/* 64-bit */
	NVME_REG_DBS = 0x1000,	/* doorbells start here, stride 4 << CAP.DSTRD */
};

/* Doorbells: SQ y's tail doorbell is at DBS + 2y * stride, CQ y's head
 * doorbell at DBS + (2y + 1) * stride, stride = 4 << CAP.DSTRD (3.1.4.21).
 * The buffers of Doorbell Buffer Config (5.8) mirror that layout from their
 * start: the Shadow Doorbell buffer (PRP1, written by the host) and the
 * EventIdx buffer (PRP2, written by the controller), each one memory page,
 * page aligned; the value is in bits 15:0 of each 32-bit entry. */
#define NVME_DB_SQ_OFF(qid, stride) (2u * (qid) * (stride))
#define NVME_DB_CQ_OFF(qid, stride) ((2u * (qid) + 1u) * (stride))
_Static_assert(NVME_DB_CQ_OFF(1, 4) == 12 && NVME_DB_SQ_OFF(2, 8) == 32,
	       "doorbell offsets: SQ y at 2y strides, CQ y at 2y + 1");

/* CAP: Controller Capabilities. MQES is 0-based; TO is in 500 ms units. */
#define NVME_CAP_MQES_SHIFT 0
#define NVME_CAP_MQES_MASK 0xffffull
#define NVME_CAP_CQR_SHIFT 16
#define NVME_CAP_CQR_MASK 0x1ull
#define NVME_CAP_TO_SHIFT 24
#define NVME_CAP_TO_MASK 0xffull
#define NVME_CAP_DSTRD_SHIFT 32
#define NVME_CAP_DSTRD_MASK 0xfull
#define NVME_CAP_CSS_SHIFT 37
#define NVME_CAP_CSS_MASK 0xffull
#define NVME_CAP_CSS_NVM 0x1ull
#define NVME_CAP_MPSMIN_SHIFT 48
#define NVME_CAP_MPSMIN_MASK 0xfull
#define NVME_CAP_MPSMAX_SHIFT 52
#define NVME_CAP_MPSMAX_MASK 0xfull
#define NVME_CAP_FIELD(cap, f) (((cap) >> NVME_CAP_##f##_SHIFT) & NVME_CAP_##f##_MASK)

/* CC: Controller Configuration. */
#define NVME_CC_EN (1u << 0)
#define NVME_CC_CSS_SHIFT 4
#define NVME_CC_CSS_NVM (0u << NVME_CC_CSS_SHIFT)
#define NVME_CC_MPS_SHIFT 7	/* page size = 2^(12 + MPS) */
#define NVME_CC_MPS_MASK 0xfu
#define NVME_CC_AMS_SHIFT 11
#define NVME_CC_SHN_SHIFT 14
#define NVME_CC_SHN_MASK 0x3u
#define NVME_CC_SHN_NORMAL 0x1u
#define NVME_CC_IOSQES_SHIFT 16	/* log2 of the SQ entry size */
#define NVME_CC_IOCQES_SHIFT 20	/* log2 of the CQ entry size */

/* CSTS: Controller Status. */
#define NVME_CSTS_RDY (1u << 0)
#define NVME_CSTS_CFS (1u << 1)
#define NVME_CSTS_SHST_SHIFT 2
#define NVME_CSTS_SHST_MASK 0x3u
#define NVME_CSTS_SHST_NORMAL 0x0u
#define NVME_CSTS_SHST_OCCURRING 0x1u
#define NVME_CSTS_SHST_COMPLETE 0x2u

/* AQA: Admin Queue Attributes; both sizes 0-based, 12 bits. */
#define NVME_AQA_ASQS_SHIFT 0
#define NVME_AQA_ACQS_SHIFT 16
#define NVME_AQA_SIZE_MASK 0xfffu

#define NVME_SQE_SIZE_LOG2 6
#define NVME_CQE_SIZE_LOG2 4

/* 4.2 Submission Queue Entry. */
struct nvme_sqe {
	uint8_t opc;
	uint8_t flags;		/* FUSE [1:0], PSDT [7:6] */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	union {
		struct {
			uint64_t prp1;
			uint64_t prp2;
		} prp;
		uint8_t sgl1[16];
	} dptr;
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};
_Static_assert(sizeof(struct nvme_sqe) == 1u << NVME_SQE_SIZE_LOG2, "SQE is 64 bytes");
_Static_assert(offsetof(struct nvme_sqe, dptr) == 24, "DPTR at byte 24");
_Static_assert(offsetof(struct nvme_sqe, cdw10) == 40, "CDW10 at byte 40");

#define NVME_SQE_PSDT_SHIFT 6
#define NVME_SQE_PSDT_PRP 0x0u
#define NVME_SQE_PSDT_SGL_MPTR_CONTIG 0x1u

/* 4.6 Completion Queue Entry. */
struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;	/* P [0], SC [8:1], SCT [11:9], CRD [13:12], M [14], DNR [15] */
};
_Static_assert(sizeof(struct nvme_cqe) == 1u << NVME_CQE_SIZE_LOG2, "CQE is 16 bytes");
_Static_assert(offsetof(struct nvme_cqe, status) == 14, "status at byte 14");

#define NVME_CQE_PHASE 0x1u
/* Status as nvme-drv keeps it: the CQE status field shifted right by one,
 * so SC is bits [7:0], SCT [10:8], DNR bit 14. */
#define NVME_STATUS_SC(s) ((s) & 0xffu)
#define NVME_STATUS_SCT(s) (((s) >> 8) & 0x7u)
#define NVME_STATUS_CRD(s) (((s) >> 11) & 0x3u)	/* 0, or which CRDT to wait */
#define NVME_STATUS_DNR(s) (((s) >> 14) & 0x1u)
#define NVME_STATUS(sct, sc) ((uint16_t)(((sct) << 8) | (sc)))

enum nvme_sct {
	NVME_SCT_GENERIC = 0x0,
	NVME_SCT_CMD_SPECIFIC = 0x1,
	NVME_SCT_MEDIA = 0x2,
	NVME_SCT_PATH = 0x3,
	NVME_SCT_VENDOR = 0x7,
};

/* Generic command status values (SCT 0) nvme-drv distinguishes. */
enum nvme_sc_generic {
	NVME_SC_SUCCESS = 0x00,
	NVME_SC_INVALID_OPCODE = 0x01,
	NVME_SC_INVALID_FIELD = 0x02,
	NVME_SC_DATA_XFER_ERROR = 0x04,
	NVME_SC_INTERNAL = 0x06,
	NVME_SC_ABORT_REQ = 0x07,
	NVME_SC_ABORT_SQ_DELETED = 0x08,
	NVME_SC_INVALID_NS = 0x0b,
	NVME_SC_NS_WRITE_PROTECTED = 0x20,
	NVME_SC_LBA_RANGE = 0x80,
	NVME_SC_CAP_EXCEEDED = 0x81,
	NVME_SC_NS_NOT_READY = 0x82,
};

/* Admin command opcodes (5.x). */
enum nvme_admin_opc {
	NVME_ADM_DELETE_SQ = 0x00,
	NVME_ADM_CREATE_SQ = 0x01,
	NVME_ADM_GET_LOG_PAGE = 0x02,
	NVME_ADM_DELETE_CQ = 0x04,
	NVME_ADM_CREATE_CQ = 0x05,
	NVME_ADM_IDENTIFY = 0x06,
	NVME_ADM_ABORT = 0x08,
	NVME_ADM_SET_FEATURES = 0x09,
	NVME_ADM_GET_FEATURES = 0x0a,
	NVME_ADM_DBBUF_CONFIG = 0x7c,	/* Doorbell Buffer Config (5.8): PRP1, PRP2 */
};

/* NVM command set opcodes (NVM Command Set spec, 3.3). */
enum nvme_nvm_opc {
	NVME_CMD_FLUSH = 0x00,
	NVME_CMD_WRITE = 0x01,
	NVME_CMD_READ = 0x02,
	NVME_CMD_WRITE_ZEROES = 0x08,
	NVME_CMD_DSM = 0x09,
};

/* Read/Write/Write Zeroes CDW12. NLB is 0-based. */
#define NVME_RW_NLB_MASK 0xffffu
#define NVME_RW_FUA (1u << 30)
#define NVME_WZ_DEAC (1u << 25)

/* Dataset Management: CDW10 NR (0-based), CDW11 attributes. */
#define NVME_DSM_NR_MASK 0xffu
#define NVME_DSM_AD (1u << 2)
#define NVME_DSM_MAX_RANGES 256
struct nvme_dsm_range {
	uint32_t cattr;
	uint32_t nlb;		/* NOT 0-based */
	uint64_t slba;
};
_Static_assert(sizeof(struct nvme_dsm_range) == 16, "DSM range is 16 bytes");

/* Identify (5.17): CDW10 CNS. */
enum nvme_identify_cns {
	NVME_ID_CNS_NS = 0x00,
	NVME_ID_CNS_CTRL = 0x01,
	NVME_ID_CNS_NS_ACTIVE_LIST = 0x02,
	NVME_ID_CNS_CTRL_CSI = 0x06,	/* I/O Command Set specific, CDW11 CSI */
};
#define NVME_ID_CSI_SHIFT 24
#define NVME_CSI_NVM 0x0u
#define NVME_IDENTIFY_SIZE 4096
#define NVME_NS_LIST_MAX 1024	/* NSIDs per active namespace list */
#define NVME_NSID_BROADCAST 0xffffffffu

/* Feature identifiers. */
enum {
	NVME_FEAT_NUM_QUEUES = 0x07,
	NVME_FEAT_HOST_BEHAVIOR = 0x16,
};
/* Host Behavior Support (5.27.1.18): a 512-byte structure; byte 0 ACRE
 * lets the controller ask for retry delays through CQE.CRD. */
#define NVME_HOST_BEHAVIOR_SIZE 512
#define NVME_HOST_BEHAVIOR_ACRE 0x1u

/* Create I/O CQ / SQ: CDW10 QID [15:0], QSIZE [31:16] (0-based). */
#define NVME_CREATE_Q_PC (1u << 0)
#define NVME_CREATE_CQ_IEN (1u << 1)
#define NVME_CREATE_CQ_IV_SHIFT 16
#define NVME_CREATE_SQ_CQID_SHIFT 16

/* 4.3 SGL descriptors. */
struct nvme_sgl_desc {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd12[3];
	uint8_t type;		/* descriptor type [7:4], subtype [3:0] */
};
_Static_assert(sizeof(struct nvme_sgl_desc) == 16, "SGL descriptor is 16 bytes");
#define NVME_SGL_TYPE_DATA_BLOCK (0x0u << 4)
#define NVME_SGL_TYPE_SEGMENT (0x2u << 4)
#define NVME_SGL_TYPE_LAST_SEGMENT (0x3u << 4)

/* 5.17.2.1 Identify Controller data structure (fields nvme-drv reads). */
struct nvme_id_ctrl {
	uint16_t vid;
	uint16_t ssvid;
	char sn[20];
	char mn[40];
	char fr[8];
	uint8_t rab;
	uint8_t ieee[3];
	uint8_t cmic;
	uint8_t mdts;		/* 2^MDTS units of CAP.MPSMIN; 0 = no limit */
	uint16_t cntlid;
	uint32_t ver;
	uint32_t rtd3r;
	uint32_t rtd3e;		/* microseconds; bounds the shutdown wait */
	uint32_t oaes;
	uint32_t ctratt;
	uint16_t rrls;
	uint8_t rsvd102[9];
	uint8_t cntrltype;
	uint8_t fguid[16];
	uint16_t crdt[3];	/* Command Retry Delay Times 1-3, 100 ms units */
	uint8_t rsvd134[122];
	uint16_t oacs;
	uint8_t acl;
	uint8_t aerl;
	uint8_t frmw;
	uint8_t lpa;
	uint8_t elpe;
	uint8_t npss;
	uint8_t rsvd264[248];
	uint8_t sqes;		/* max [7:4], required [3:0], log2 */
	uint8_t cqes;
	uint16_t maxcmd;
	uint32_t nn;
	uint16_t oncs;
	uint16_t fuses;
	uint8_t fna;
	uint8_t vwc;
	uint16_t awun;
	uint16_t awupf;
	uint8_t icsvscc;
	uint8_t nwpc;
	uint16_t acwu;
	uint16_t ocfs;
	uint32_t sgls;
	uint8_t rsvd540[3556];
};
_Static_assert(sizeof(struct nvme_id_ctrl) == NVME_IDENTIFY_SIZE, "Identify Controller is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ctrl, sn) == 4, "SN at byte 4");
_Static_assert(offsetof(struct nvme_id_ctrl, mn) == 24, "MN at byte 24");
_Static_assert(offsetof(struct nvme_id_ctrl, fr) == 64, "FR at byte 64");
_Static_assert(offsetof(struct nvme_id_ctrl, mdts) == 77, "MDTS at byte 77");
_Static_assert(offsetof(struct nvme_id_ctrl, rtd3e) == 88, "RTD3E at byte 88");
_Static_assert(offsetof(struct nvme_id_ctrl, crdt) == 128, "CRDT1 at byte 128");
_Static_assert(offsetof(struct nvme_id_ctrl, oacs) == 256, "OACS at byte 256");
_Static_assert(offsetof(struct nvme_id_ctrl, sqes) == 512, "SQES at byte 512");
_Static_assert(offsetof(struct nvme_id_ctrl, nn) == 516, "NN at byte 516");
_Static_assert(offsetof(struct nvme_id_ctrl, oncs) == 520, "ONCS at byte 520");
_Static_assert(offsetof(struct nvme_id_ctrl, vwc) == 525, "VWC at byte 525");
_Static_assert(offsetof(struct nvme_id_ctrl, sgls) == 536, "SGLS at byte 536");

/* NVM Command Set specific Identify Controller (NVM Command Set spec
 * 4.1.5.2, CNS 06h CSI 00h). */
struct nvme_id_ctrl_nvm {
	uint8_t vsl;
	uint8_t wzsl;		/* Write Zeroes size limit: 2^n units of CAP.MPSMIN; 0: none reported */
	uint8_t wusl;
	uint8_t dmrl;		/* DSM ranges per command; 0: no limit */
	uint32_t dmrsl;		/* LBAs per DSM range; 0: no limit */
	uint64_t dmsl;		/* LBAs per DSM command, all ranges; 0: no limit */
	uint8_t rsvd16[4080];
};
_Static_assert(sizeof(struct nvme_id_ctrl_nvm) == NVME_IDENTIFY_SIZE, "NVM Identify Controller is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ctrl_nvm, dmrl) == 3, "DMRL at byte 3");
_Static_assert(offsetof(struct nvme_id_ctrl_nvm, dmrsl) == 4, "DMRSL at byte 4");
_Static_assert(offsetof(struct nvme_id_ctrl_nvm, dmsl) == 8, "DMSL at byte 8");

/* VS: major [31:16], minor [15:8]. */
#define NVME_VS(major, minor) (((uint32_t)(major) << 16) | ((uint32_t)(minor) << 8))

/* OACS: Doorbell Buffer Config supported. */
#define NVME_OACS_DBBUF (1u << 8)
#define NVME_ONCS_DSM (1u << 2)
#define NVME_ONCS_WRITE_ZEROES (1u << 3)
#define NVME_VWC_PRESENT (1u << 0)
#define NVME_SGLS_SUPPORT_MASK 0x3u
#define NVME_SGLS_SUPPORTED 0x1u	/* no alignment requirement */
#define NVME_SGLS_DWORD_ALIGNED 0x2u	/* data blocks dword-aligned and sized */

/* LBA Format (NVM Command Set spec, 4.1.5.1). */
struct nvme_lbaf {
	uint16_t ms;		/* metadata bytes per LBA */
	uint8_t lbads;		/* log2 of the LBA data size */
	uint8_t rp;
};
_Static_assert(sizeof(struct nvme_lbaf) == 4, "LBA format is 4 bytes");

/* Identify Namespace data structure (NVM Command Set spec, 4.1.5.1). */
struct nvme_id_ns {
	uint64_t nsze;
	uint64_t ncap;
	uint64_t nuse;
	uint8_t nsfeat;
	uint8_t nlbaf;		/* 0-based */
	uint8_t flbas;		/* format index [3:0] and [6:5], extended LBA [4] */
	uint8_t mc;
	uint8_t dpc;
	uint8_t dps;		/* protection information type [2:0] */
	uint8_t nmic;
	uint8_t rescap;
	uint8_t fpi;
	uint8_t dlfeat;
	uint8_t rsvd34[65];
	uint8_t nsattr;		/* bit 0: write protected */
	uint8_t rsvd100[4];
	uint8_t nguid[16];
	uint8_t eui64[8];
	struct nvme_lbaf lbaf[64];
	uint8_t rsvd384[3712];
};
_Static_assert(sizeof(struct nvme_id_ns) == NVME_IDENTIFY_SIZE, "Identify Namespace is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ns, flbas) == 26, "FLBAS at byte 26");
_Static_assert(offsetof(struct nvme_id_ns, dlfeat) == 33, "DLFEAT at byte 33");
_Static_assert(offsetof(struct nvme_id_ns, nsattr) == 99, "NSATTR at byte 99");
_Static_assert(offsetof(struct nvme_id_ns, nguid) == 104, "NGUID at byte 104");
_Static_assert(offsetof(struct nvme_id_ns, lbaf) == 128, "LBAF0 at byte 128");

#define NVME_NS_FLBAS_LO_MASK 0xfu
#define NVME_NS_FLBAS_EXTENDED (1u << 4)
#define NVME_NS_FLBAS_HI_SHIFT 5
#define NVME_NS_FLBAS_HI_MASK 0x3u
#define NVME_NS_NSATTR_WP (1u << 0)
#define NVME_NS_DPS_PIT_MASK 0x7u
/* DLFEAT: [2:0] what a read of deallocated blocks returns (1 = zeroes);
 * bit 3: Write Zeroes honours the Deallocate bit. */
#define NVME_NS_DLFEAT_READ_MASK 0x7u
#define NVME_NS_DLFEAT_READ_ZEROES 0x1u
#define NVME_NS_DLFEAT_WZ_DEAC (1u << 3)

#endif
