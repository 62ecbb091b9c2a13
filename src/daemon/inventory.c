#include "daemon/inventory.h"

#include <stdio.h>

#include "blk/disk.h"
#include "nvme/nvme.h"

static void held_by(struct rec_out *o, inventory_holder_fn *holder, void *ctx,
		    const struct blk_disk *d, const struct part_entry *pe)
{
	const char *who = holder ? holder(ctx, d, pe) : NULL;

	if (who)
		rec_str(o, "held-by", who);
}

static void write_ns(const struct host *h, struct rec_out *o, const struct nvme_ns_info *ni,
		     inventory_holder_fn *holder, void *ctx)
{
	const struct blk_disk *d = NULL;

	rec_begin(o, "namespace", "name", ni->name);
	if (!ni->usable) {
		rec_text(o, "skipped", ni->skip_reason);
		rec_end(o);
		return;
	}
	for (unsigned j = 0; j < h->reg.ndisks; j++)
		if (h->reg.disks[j].info == ni)
			d = &h->reg.disks[j];
	rec_u64(o, "size", ni->nlba * ni->lba_size);
	rec_u64(o, "lba", ni->lba_size);
	rec_bool(o, "readonly", ni->readonly);
	rec_str(o, "table", d ? part_scheme_name(d->parts.scheme) : "none");
	if (d)
		held_by(o, holder, ctx, d, NULL);
	rec_list_begin(o, "partitions");
	for (unsigned p = 0; d && p < d->parts.count; p++) {
		const struct part_entry *pe = &d->parts.parts[p];
		char name[64];

		snprintf(name, sizeof(name), "%s:%u", ni->name, pe->number);
		rec_begin(o, "partition", "uuid", pe->uuid);
		rec_text(o, "label", pe->label);
		rec_str(o, "name", name);
		rec_u64(o, "first-lba", pe->first_lba);
		rec_u64(o, "size", pe->nlba * ni->lba_size);
		held_by(o, holder, ctx, d, pe);
		rec_end(o);
	}
	rec_list_end(o);
	rec_end(o);
}

void inventory_write(const struct host *h, struct rec_out *o, inventory_holder_fn *holder,
		     void *ctx)
{
	rec_list_begin(o, "controllers");
	for (unsigned i = 0; i < h->nctrls; i++) {
		struct nvme_ctrl *c = h->ctrls[i];
		const struct nvme_ctrl_info *ci = nvme_ctrl_info(c);

		rec_begin(o, "controller", "bdf", ci->bdf);
		rec_text(o, "serial", ci->serial);
		rec_text(o, "model", ci->model);
		rec_text(o, "firmware", ci->firmware);
		rec_u64(o, "mdts", ci->mdts_bytes);
		rec_str(o, "sgl", ci->sgl ? "yes" : (ci->sgl_supported ? "off" : "no"));
		rec_str(o, "shadow-doorbells",
			ci->shadow_db ? "yes" : (ci->shadow_db_supported ? "off" : "no"));
		rec_str(o, "interrupts", vfio_irq_mode_name(ci->irq_mode));
		rec_u64(o, "vectors", ci->nvec);
		rec_u64(o, "queues", ci->nr_io_queues);
		rec_u64(o, "polled-queues", ci->nr_polled_queues);
		rec_u64(o, "depth", ci->io_depth);
		rec_list_begin(o, "namespaces");
		for (unsigned k = 0; k < nvme_ctrl_ns_count(c); k++)
			write_ns(h, o, nvme_ns_info(nvme_ctrl_ns(c, k)), holder, ctx);
		rec_list_end(o);
		rec_end(o);
	}
	rec_list_end(o);
}
