/* Device names as clients give them (the seed's `--device` / "device="):
 *
 *   SN:nNSID            whole namespace NSID of the controller with serial SN
 *   SN:nNSID:N          partition N of that namespace
 *   UUID                a partition by its GPT unique GUID (case-insensitive)
 *                       or its MBR id "SSSSSSSS-NN" as Linux names it
 *   partuuid:UUID       the same
 *   partlabel:NAME      a GPT partition by its name
 *
 * Serial numbers may contain spaces and colons; the ":nNSID" suffix is
 * found from the right. The prefixes are matched first (lower-case), so a
 * serial "partuuid" or "partlabel" cannot be named. Pure logic.
 *
 * Strict: a serial is 1..20 printable ASCII characters with no space at
 * either end; numbers are plain decimal without leading zeros; a label is
 * non-empty valid UTF-8 that fits a GPT name (36 UTF-16 code units). */
#ifndef NVD_BLK_DEVNAME_H
#define NVD_BLK_DEVNAME_H

#include <stdint.h>

#include "blk/part.h"

enum devname_kind {
	DEVNAME_NS,		/* serial + nsid */
	DEVNAME_NS_PART,	/* serial + nsid + partno */
	DEVNAME_UUID,		/* uuid (normalised upper-case) */
	DEVNAME_PARTLABEL,	/* label */
};

struct devname {
	enum devname_kind kind;
	char serial[21];	/* trimmed, as nvme_serial_trim() gives it */
	uint32_t nsid;		/* 1 .. 0xfffffffe */
	uint32_t partno;	/* >= 1 */
	char uuid[37];
	char label[PART_LABEL_MAX];
};

/* Returns 0 or -EINVAL (malformed) / -ERANGE (number out of range: nsid
 * 0 or >= 0xffffffff, partition 0 or > UINT32_MAX). On error *out is
 * unchanged. */
int devname_parse(const char *s, struct devname *out);

#endif
