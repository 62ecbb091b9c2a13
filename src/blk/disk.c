#include "blk/disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blk/devname.h"
#include "util/log.h"

static int ns_read(void *ctx, uint64_t lba, uint32_t nlb, void *buf)
{
	return nvme_ns_rw_sync(ctx, false, lba, nlb, buf);
}

static void report_table(const struct blk_disk *d)
{
	const char *name = d->info->name;
	const struct part_table *t = &d->parts;

	if (t->flags & PART_F_GPT_USED_BACKUP)
		log_warn(name, "primary GPT is corrupt; using the backup GPT");
	else if (t->flags & PART_F_GPT_BACKUP_BAD && t->scheme == PART_SCHEME_GPT)
		log_warn(name, "backup GPT is corrupt");
	if (t->flags & (PART_F_GPT_BAD_ENTRY | PART_F_MBR_BAD_ENTRY))
		log_warn(name, "partition entries outside the disk were skipped");
	if (t->flags & PART_F_MBR_EBR_LOOP)
		log_warn(name, "extended partition chain loops or is too long; cut short");
	log_info(name, "%s partition table, %u partitions", part_scheme_name(t->scheme), t->count);
}

int blk_registry_add(struct blk_registry *reg, struct nvme_ctrl *ctrl)
{
	unsigned n = nvme_ctrl_ns_count(ctrl);
	struct blk_disk *nd;

	nd = realloc(reg->disks, (reg->ndisks + n) * sizeof(*nd) + 1);
	if (!nd)
		return -ENOMEM;
	reg->disks = nd;
	for (unsigned i = 0; i < n; i++) {
		struct nvme_ns *ns = nvme_ctrl_ns(ctrl, i);
		struct blk_disk *d = &reg->disks[reg->ndisks];
		struct part_reader rd;
		int rc;

		if (!nvme_ns_info(ns)->usable)
			continue;
		memset(d, 0, sizeof(*d));
		d->ns = ns;
		d->info = nvme_ns_info(ns);
		d->serial = nvme_ctrl_info(ctrl)->serial;
		rd.read = ns_read;
		rd.ctx = ns;
		rd.lba_size = d->info->lba_size;
		rd.nlba = d->info->nlba;
		rc = part_read_table(&rd, &d->parts);
		if (rc) {
			/* The disk stays usable as a whole; only its partitions are lost. */
			log_warn(d->info->name, "cannot read the partition table: %s", strerror(-rc));
			memset(&d->parts, 0, sizeof(d->parts));
		} else {
			report_table(d);
		}
		reg->ndisks++;
	}
	return 0;
}

void blk_registry_free(struct blk_registry *reg)
{
	for (unsigned i = 0; i < reg->ndisks; i++)
		part_table_free(&reg->disks[i].parts);
	free(reg->disks);
	reg->disks = NULL;
	reg->ndisks = 0;
}

static void fill_target(struct blk_disk *d, const struct part_entry *p, struct blk_target *t)
{
	memset(t, 0, sizeof(*t));
	t->disk = d;
	t->ns = d->ns;
	t->part = p;
	t->lba_size = d->info->lba_size;
	t->readonly = d->info->readonly;
	if (p) {
		t->first_lba = p->first_lba;
		t->nlba = p->nlba;
		snprintf(t->name, sizeof(t->name), "%s:%u", d->info->name, p->number);
	} else {
		t->first_lba = 0;
		t->nlba = d->info->nlba;
		snprintf(t->name, sizeof(t->name), "%s", d->info->name);
	}
}

int blk_lookup(const struct blk_registry *reg, const char *name, struct blk_target *out)
{
	struct devname dn;
	int rc = devname_parse(name, &dn);

	if (rc)
		return -EINVAL;
	for (unsigned i = 0; i < reg->ndisks; i++) {
		struct blk_disk *d = &reg->disks[i];

		switch (dn.kind) {
		case DEVNAME_NS:
			if (d->info->nsid == dn.nsid && strcmp(d->serial, dn.serial) == 0) {
				fill_target(d, NULL, out);
				return 0;
			}
			break;
		case DEVNAME_NS_PART:
			if (d->info->nsid != dn.nsid || strcmp(d->serial, dn.serial) != 0)
				break;
			for (unsigned k = 0; k < d->parts.count; k++)
				if (d->parts.parts[k].number == dn.partno) {
					fill_target(d, &d->parts.parts[k], out);
					return 0;
				}
			return -ENODEV;
		case DEVNAME_UUID:
			for (unsigned k = 0; k < d->parts.count; k++)
				if (strcasecmp(d->parts.parts[k].uuid, dn.uuid) == 0) {
					fill_target(d, &d->parts.parts[k], out);
					return 0;
				}
			break;
		case DEVNAME_PARTLABEL:
			for (unsigned k = 0; k < d->parts.count; k++)
				if (d->parts.scheme == PART_SCHEME_GPT &&
				    strcmp(d->parts.parts[k].label, dn.label) == 0) {
					fill_target(d, &d->parts.parts[k], out);
					return 0;
				}
			break;
		}
	}
	return -ENODEV;
}
