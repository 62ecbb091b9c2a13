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
	if (t->scheme == PART_SCHEME_NONE)
		log_info(name, "no partition table");
	else
		log_info(name, "%s partition table, %u partition%s", part_scheme_name(t->scheme),
			 t->count, t->count == 1 ? "" : "s");
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

/* Whether partition p of disk d carries the name dn (a UUID or label). */
static bool part_matches(const struct blk_disk *d, const struct part_entry *p,
			 const struct devname *dn)
{
	if (dn->kind == DEVNAME_UUID)
		return strcasecmp(p->uuid, dn->uuid) == 0;
	return d->parts.scheme == PART_SCHEME_GPT && strcmp(p->label, dn->label) == 0;
}

/* How many names an ambiguity message lists before it says "...". */
#define AMBIGUOUS_SHOWN 4

/* A partition UUID or label: every partition of every disk is looked at,
 * so that a name found twice is refused rather than resolved to
 * whichever disk was scanned first. */
static int lookup_unique(const struct blk_registry *reg, const char *name,
			 const struct devname *dn, struct blk_target *out, char *why,
			 size_t whylen)
{
	struct blk_target first, t;
	unsigned found = 0;
	size_t n = 0;

	for (unsigned i = 0; i < reg->ndisks; i++) {
		struct blk_disk *d = &reg->disks[i];

		for (unsigned k = 0; k < d->parts.count; k++) {
			if (!part_matches(d, &d->parts.parts[k], dn))
				continue;
			fill_target(d, &d->parts.parts[k], found ? &t : &first);
			found++;
			if (found == 1 || !whylen)
				continue;
			if (found == 2)
				n = (size_t)snprintf(why, whylen, "'%.60s' names more than one "
						     "partition (a copied partition table?): %s",
						     name, first.name);
			if (n < whylen && found <= AMBIGUOUS_SHOWN)
				n += (size_t)snprintf(why + n, whylen - n, ", %s", t.name);
			else if (n < whylen && found == AMBIGUOUS_SHOWN + 1)
				n += (size_t)snprintf(why + n, whylen - n, ", ...");
		}
	}
	if (found == 0)
		return -ENODEV;
	if (found > 1) {
		if (n < whylen)
			snprintf(why + n, whylen - n, "; name the partition as SN:nNSID:N");
		return -ENOTUNIQ;
	}
	*out = first;
	return 0;
}

int blk_lookup(const struct blk_registry *reg, const char *name, struct blk_target *out,
	       char *why, size_t whylen)
{
	struct devname dn;
	int rc = devname_parse(name, &dn);

	if (rc)
		return -EINVAL;
	if (dn.kind == DEVNAME_UUID || dn.kind == DEVNAME_PARTLABEL)
		return lookup_unique(reg, name, &dn, out, why, whylen);
	for (unsigned i = 0; i < reg->ndisks; i++) {
		struct blk_disk *d = &reg->disks[i];

		if (d->info->nsid != dn.nsid || strcmp(d->serial, dn.serial) != 0)
			continue;
		if (dn.kind == DEVNAME_NS) {
			fill_target(d, NULL, out);
			return 0;
		}
		for (unsigned k = 0; k < d->parts.count; k++)
			if (d->parts.parts[k].number == dn.partno) {
				fill_target(d, &d->parts.parts[k], out);
				return 0;
			}
		return -ENODEV;
	}
	return -ENODEV;
}
