#include <errno.h>
#include <string.h>

#include "nvme/nvme.h"
#include "spec/nvme_spec.h"

/* Transient conditions worth another try, and only when the controller
 * did not set Do Not Retry. Everything else is final. */
bool nvme_status_is_retry(uint16_t s)
{
	if (NVME_STATUS_DNR(s))
		return false;
	switch (NVME_STATUS_SCT(s)) {
	case NVME_SCT_GENERIC:
		switch (NVME_STATUS_SC(s)) {
		case NVME_SC_DATA_XFER_ERROR:
		case NVME_SC_INTERNAL:
		case NVME_SC_NS_NOT_READY:
			return true;
		default:
			return false;
		}
	case NVME_SCT_PATH:
		return true;
	default:
		return false;
	}
}

int nvme_status_to_errno(uint16_t s)
{
	if ((s & 0x7ff) == 0)
		return 0;
	if (NVME_STATUS_SCT(s) == NVME_SCT_GENERIC) {
		switch (NVME_STATUS_SC(s)) {
		case NVME_SC_INVALID_OPCODE:
			return -EOPNOTSUPP;
		case NVME_SC_INVALID_FIELD:
		case NVME_SC_INVALID_NS:
		case NVME_SC_LBA_RANGE:
			return -EINVAL;
		case NVME_SC_NS_WRITE_PROTECTED:
			return -EROFS;
		case NVME_SC_CAP_EXCEEDED:
			return -ENOSPC;
		case NVME_SC_ABORT_REQ:
		case NVME_SC_ABORT_SQ_DELETED:
			return -ECANCELED;
		default:
			return -EIO;
		}
	}
	return -EIO;
}

const char *nvme_status_str(uint16_t s)
{
	if (NVME_STATUS_SCT(s) == NVME_SCT_GENERIC) {
		switch (NVME_STATUS_SC(s)) {
		case NVME_SC_SUCCESS: return "success";
		case NVME_SC_INVALID_OPCODE: return "invalid opcode";
		case NVME_SC_INVALID_FIELD: return "invalid field";
		case NVME_SC_DATA_XFER_ERROR: return "data transfer error";
		case NVME_SC_INTERNAL: return "internal error";
		case NVME_SC_ABORT_REQ: return "aborted by request";
		case NVME_SC_ABORT_SQ_DELETED: return "aborted: SQ deleted";
		case NVME_SC_INVALID_NS: return "invalid namespace";
		case NVME_SC_NS_WRITE_PROTECTED: return "namespace write protected";
		case NVME_SC_LBA_RANGE: return "LBA out of range";
		case NVME_SC_CAP_EXCEEDED: return "capacity exceeded";
		case NVME_SC_NS_NOT_READY: return "namespace not ready";
		default: return "generic error";
		}
	}
	switch (NVME_STATUS_SCT(s)) {
	case NVME_SCT_CMD_SPECIFIC: return "command-specific error";
	case NVME_SCT_MEDIA: return "media or data integrity error";
	case NVME_SCT_PATH: return "path error";
	default: return "vendor-specific error";
	}
}

void nvme_trim_string(char *dst, const char *src, size_t srclen)
{
	size_t n = srclen;

	while (n && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[n] = '\0';
}
