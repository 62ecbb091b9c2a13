/* Block devices: every usable namespace is a disk named "SERIAL:nNSID";
 * its partitions (GPT or MBR, read through the driver) are named by UUID,
 * partlabel:NAME and SERIAL:nNSID:N. A lookup gives the LBA range a
 * client may touch, so that the layer above can check every request. */
#ifndef NVD_BLK_DISK_H
#define NVD_BLK_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk/part.h"
#include "nvme/nvme.h"

struct blk_disk {
	struct nvme_ns *ns;
	const struct nvme_ns_info *info;
	const char *serial;
	struct part_table parts;
};

struct blk_registry {
	struct blk_disk *disks;
	unsigned ndisks;
};

/* What a device name resolves to. */
struct blk_target {
	struct blk_disk *disk;
	struct nvme_ns *ns;
	const struct part_entry *part;	/* NULL: the whole namespace */
	uint64_t first_lba;
	uint64_t nlba;
	uint32_t lba_size;
	bool readonly;
	char name[64];			/* canonical "SN:nNSID" or "SN:nNSID:N" */
};

/* Adds the usable namespaces of `ctrl` and reads their partition tables. */
int blk_registry_add(struct blk_registry *reg, struct nvme_ctrl *ctrl);
void blk_registry_free(struct blk_registry *reg);
/* Resolves a device name (see devname.h). Returns 0, -EINVAL (malformed
 * name), -ENODEV (no such disk or partition) or -ENOTUNIQ: the partition
 * UUID, label or MBR id is on more than one partition, of one disk or of
 * several. A disk's contents are written by whoever holds it, so a client
 * of a whole disk can copy another disk's partition table; a name both
 * tables carry must not land on the copy after a restart. For -ENOTUNIQ
 * `why` (if whylen > 0) gets one line naming every match as SN:nNSID:N,
 * the names that stay unique. */
int blk_lookup(const struct blk_registry *reg, const char *name, struct blk_target *out,
	       char *why, size_t whylen);

#endif
