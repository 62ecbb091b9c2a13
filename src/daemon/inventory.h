/* What the server drives: controllers, their namespaces and partitions,
 * as records (util/rec.h). nvme-drv --list writes them before serving;
 * the control socket's "disks" while serving, with who holds what. */
#ifndef NVD_DAEMON_INVENTORY_H
#define NVD_DAEMON_INVENTORY_H

#include "blk/host.h"
#include "blk/part.h"
#include "util/rec.h"

/* The name of the client holding the whole disk d (pe NULL) or its
 * partition pe, or NULL when nobody does. */
typedef const char *inventory_holder_fn(void *ctx, const struct blk_disk *d,
					const struct part_entry *pe);

/* Writes the list "controllers" into o. holder may be NULL (no claims:
 * no "held-by" members). */
void inventory_write(const struct host *h, struct rec_out *o, inventory_holder_fn *holder,
		     void *ctx);

#endif
