/* The driver host: finds the NVMe functions bound to vfio-pci (all, or
 * those named with --pci), brings each controller up and registers its
 * disks and partitions. Shared by nvme-drv and its tools. */
#ifndef NVD_BLK_HOST_H
#define NVD_BLK_HOST_H

#include <stdbool.h>

#include "blk/disk.h"
#include "nvme/nvme.h"
#include "util/evloop.h"

#define HOST_MAX_CTRLS 32
/* Interrupt vectors watched per controller: 64 queues' and the device
 * request notification. */
#define HOST_MAX_VECS 65

struct host_opts {
	char pci[HOST_MAX_CTRLS][16];	/* --pci BDF, canonical form */
	unsigned npci;
	struct nvme_ctrl_opts ctrl;
};

struct host_vec {
	struct nvme_ctrl *ctrl;
	unsigned vec;
};

struct host {
	struct nvme_ctrl *ctrls[HOST_MAX_CTRLS];
	unsigned nctrls;
	struct blk_registry reg;
	/* host_watch() */
	struct host_vec vecs[HOST_MAX_CTRLS * HOST_MAX_VECS];
	struct evloop_poller pollers[HOST_MAX_CTRLS];
};

/* The driver options every program shares, as getopt_long entries. */
enum {
	HOST_OPT_PCI = 0x100,
	HOST_OPT_NOSGL,
	HOST_OPT_NOMSI,
	HOST_OPT_NOMSIX,
	HOST_OPT_IO_QUEUES,
	HOST_OPT_QUEUE_DEPTH,
	HOST_OPT_IO_TIMEOUT,
	HOST_OPT_ADMIN_TIMEOUT,
	HOST_OPT_NO_SHADOW_DB,
	HOST_OPT_POLLED_QUEUES,
	HOST_OPT_NO_POLLED_QUEUES,
};
#define HOST_LONG_OPTIONS \
	{ "pci", required_argument, NULL, HOST_OPT_PCI }, \
	{ "nosgl", no_argument, NULL, HOST_OPT_NOSGL }, \
	{ "nomsi", no_argument, NULL, HOST_OPT_NOMSI }, \
	{ "nomsix", no_argument, NULL, HOST_OPT_NOMSIX }, \
	{ "io-queues", required_argument, NULL, HOST_OPT_IO_QUEUES }, \
	{ "queue-depth", required_argument, NULL, HOST_OPT_QUEUE_DEPTH }, \
	{ "io-timeout", required_argument, NULL, HOST_OPT_IO_TIMEOUT }, \
	{ "admin-timeout", required_argument, NULL, HOST_OPT_ADMIN_TIMEOUT }, \
	{ "no-shadow-doorbells", no_argument, NULL, HOST_OPT_NO_SHADOW_DB }, \
	{ "polled-queues", no_argument, NULL, HOST_OPT_POLLED_QUEUES }, \
	{ "no-polled-queues", no_argument, NULL, HOST_OPT_NO_POLLED_QUEUES }

#define HOST_OPTIONS_HELP \
	"  --pci BDF          use this NVMe function (repeatable; default: every\n" \
	"                     NVMe function bound to vfio-pci)\n" \
	"  --nosgl            do not use SGLs, only PRPs\n" \
	"  --nomsix           do not use MSI-X interrupts\n" \
	"  --nomsi            do not use MSI interrupts (with --nomsix: INTx)\n" \
	"  --io-queues N      I/O queue pairs per controller (1-64, default 2)\n" \
	"  --queue-depth N    entries per I/O queue (2-65536, default 256,\n" \
	"                     capped by the controller's CAP.MQES)\n" \
	"  --io-timeout S     seconds an I/O command may take before it is aborted\n" \
	"                     and then the controller reset (1-3600, default 30)\n" \
	"  --admin-timeout S  seconds an admin command may take (1-3600, default 60)\n" \
	"  --no-shadow-doorbells\n" \
	"                     write every doorbell to the controller's register, even\n" \
	"                     when it offers Doorbell Buffer Config\n" \
	"  --polled-queues, --no-polled-queues\n" \
	"                     while polling, send commands to twin queue pairs that\n" \
	"                     raise no interrupt, or not (nvme-drv: not by default;\n" \
	"                     nvme-drv-perf: by default)\n"

void host_opts_init(struct host_opts *o);
/* Handles one getopt_long result if it is a HOST_OPT_*: returns 1 when
 * handled, 0 when not ours, -EINVAL after logging a bad argument. */
int host_opts_parse(struct host_opts *o, int opt, const char *arg);
/* Adds one --pci argument. Returns 0, -EINVAL (bad address) or -E2BIG. */
int host_opts_add_pci(struct host_opts *o, const char *bdf);

/* Opens every controller. Returns 0 with at least one controller, or a
 * negative errno after logging why none could be used. */
int host_open(const struct host_opts *o, struct host *h);
/* Serves every controller from `loop`: its interrupt vectors (MSI and
 * MSI-X edge-triggered, never read: nvme_ctrl_vector_edge) and a poller
 * of its completion queues (evloop.h; their interrupts stay on while the
 * loop polls, VFIO cannot mask MSI-X vectors). Returns 0 or a negative
 * errno from evloop_add. */
int host_watch(struct host *h, struct evloop *loop);
void host_close(struct host *h);

#endif
