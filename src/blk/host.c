#include "blk/host.h"

#include <sys/epoll.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "util/parse.h"

void host_opts_init(struct host_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->ctrl.irq_modes = VFIO_IRQ_ALLOW_ALL;
}

int host_opts_add_pci(struct host_opts *o, const char *bdf)
{
	char canon[16];

	if (pci_bdf_parse(bdf, canon) != 0)
		return -EINVAL;
	if (o->npci >= HOST_MAX_CTRLS)
		return -E2BIG;
	memcpy(o->pci[o->npci++], canon, sizeof(canon));
	return 0;
}

int host_opts_parse(struct host_opts *o, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case HOST_OPT_PCI:
		switch (host_opts_add_pci(o, arg)) {
		case 0:
			return 1;
		case -E2BIG:
			log_err(NULL, "--pci: at most %d controllers", HOST_MAX_CTRLS);
			return -EINVAL;
		default:
			log_err(NULL, "--pci: '%s' is not a PCI address (DDDD:BB:DD.F)", arg);
			return -EINVAL;
		}
	case HOST_OPT_NOSGL:
		o->ctrl.nosgl = true;
		return 1;
	case HOST_OPT_NO_SHADOW_DB:
		/* Shadow doorbells are used whenever the controller offers
		 * them (OACS bit 8); this turns them off, to compare. */
		o->ctrl.no_shadow_db = true;
		return 1;
	case HOST_OPT_POLLED_QUEUES:
	case HOST_OPT_NO_POLLED_QUEUES:
		/* Polled twins (IEN=0), used while the loop polls: on in
		 * nvme-drv-perf, off in nvme-drv (BENCHMARKS.md "Polled queue
		 * pairs": through a transport they did not pay on the bed). */
		o->ctrl.polled_queues = opt == HOST_OPT_POLLED_QUEUES;
		return 1;
	case HOST_OPT_NOMSIX:
		o->ctrl.irq_modes &= ~VFIO_IRQ_ALLOW(VFIO_IRQ_MSIX);
		return 1;
	case HOST_OPT_NOMSI:
		o->ctrl.irq_modes &= ~VFIO_IRQ_ALLOW(VFIO_IRQ_MSI);
		return 1;
	case HOST_OPT_IO_QUEUES:
		if (parse_opt_range("--io-queues", arg, 1, 64, &v))
			return -EINVAL;
		o->ctrl.io_queues = (unsigned)v;
		return 1;
	case HOST_OPT_QUEUE_DEPTH:
		if (parse_opt_range("--queue-depth", arg, 2, 65536, &v))
			return -EINVAL;
		o->ctrl.io_queue_depth = (unsigned)v;
		return 1;
	case HOST_OPT_IO_TIMEOUT:
	case HOST_OPT_ADMIN_TIMEOUT:
		/* Deadlines of commands, as Linux's nvme_core io_timeout and
		 * admin_timeout: past one, the command is aborted, then the
		 * controller reset. */
		if (parse_u64(arg, 1, 3600, &v)) {
			log_err(NULL, "--%s: '%s' is not a number of seconds from 1 to 3600",
				opt == HOST_OPT_IO_TIMEOUT ? "io-timeout" : "admin-timeout", arg);
			return -EINVAL;
		}
		if (opt == HOST_OPT_IO_TIMEOUT)
			o->ctrl.io_timeout_ms = (unsigned)v * 1000;
		else
			o->ctrl.admin_timeout_ms = (unsigned)v * 1000;
		return 1;
	default:
		return 0;
	}
}

static int open_one(struct host *h, const struct host_opts *o, const char *bdf)
{
	struct nvme_ctrl *c;
	int rc;

	if (h->nctrls >= HOST_MAX_CTRLS) {
		log_warn(bdf, "more than %d controllers; ignored", HOST_MAX_CTRLS);
		return 0;
	}
	rc = nvme_ctrl_open(bdf, &o->ctrl, &c);
	if (rc)
		return rc;
	for (unsigned i = 0; i < h->nctrls; i++) {
		if (strcmp(nvme_ctrl_info(h->ctrls[i])->serial, nvme_ctrl_info(c)->serial) == 0) {
			/* Names are SERIAL:nNSID; two controllers with one serial
			 * (a dual-ported drive, or a cloned VM) would be ambiguous. */
			log_err(bdf, "serial %s is already used by %s; controller ignored",
				nvme_ctrl_info(c)->serial, nvme_ctrl_info(h->ctrls[i])->bdf);
			nvme_ctrl_close(c);
			return -EEXIST;
		}
	}
	h->ctrls[h->nctrls++] = c;
	rc = blk_registry_add(&h->reg, c);
	if (rc)
		log_err(bdf, "cannot register its namespaces: %s", strerror(-rc));
	return rc;
}

int host_open(const struct host_opts *o, struct host *h)
{
	struct pci_fn fns[HOST_MAX_CTRLS];
	size_t n = 0;
	int rc, first_err = 0;

	memset(h, 0, sizeof(*h));
	if (o->npci) {
		/* Named functions: each must work, or start-up fails. */
		for (unsigned i = 0; i < o->npci; i++) {
			struct pci_fn f;
			rc = pci_fn_read(o->pci[i], &f);
			if (rc == -ENOENT) {
				log_err(o->pci[i], "no such PCI function");
				rc = -ENODEV;
			} else if (rc == 0 && f.class_code != PCI_CLASS_NVME) {
				log_err(o->pci[i], "not an NVMe controller (class %06x)", f.class_code);
				rc = -ENODEV;
			} else if (rc == 0) {
				rc = open_one(h, o, o->pci[i]);
			}
			if (rc) {
				host_close(h);
				return rc;
			}
		}
		return 0;
	}
	rc = pci_scan_nvme(fns, HOST_MAX_CTRLS, &n);
	if (rc) {
		log_err(NULL, "cannot scan PCI devices in /sys/bus/pci: %s", strerror(-rc));
		return rc;
	}
	if (n > HOST_MAX_CTRLS)
		n = HOST_MAX_CTRLS;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(fns[i].driver, "vfio-pci") != 0) {
			/* Not ours: say why only if nothing else works (below). */
			log_info(fns[i].bdf, "NVMe controller bound to %s, not vfio-pci; skipped",
				 fns[i].driver[0] ? fns[i].driver : "no driver");
			continue;
		}
		rc = open_one(h, o, fns[i].bdf);
		if (rc && !first_err)
			first_err = rc;
	}
	if (h->nctrls)
		return 0;
	if (first_err)
		return first_err;
	if (n == 0) {
		log_err(NULL, "no NVMe controller (PCI class 010802) found");
		return -ENODEV;
	}
	/* None bound to vfio-pci: explain for the first one. */
	for (size_t i = 0; i < n; i++) {
		if (!fns[i].has_iommu_group) {
			log_err(fns[i].bdf, "no IOMMU group: the kernel sees no IOMMU for this device. "
				"Enable VT-d/AMD-Vi (intel_iommu=on); Debian's kernels lack VFIO's "
				"no-IOMMU mode, so an IOMMU is required");
			return -ENODEV;
		}
	}
	log_err(NULL, "no NVMe controller is bound to vfio-pci (%zu found, e.g. %s bound to %s); "
		"bind one: echo vfio-pci > /sys/bus/pci/devices/%s/driver_override && "
		"echo %s > /sys/bus/pci/drivers/%s/unbind && echo %s > /sys/bus/pci/drivers_probe",
		n, fns[0].bdf, fns[0].driver[0] ? fns[0].driver : "no driver", fns[0].bdf, fns[0].bdf,
		fns[0].driver[0] ? fns[0].driver : "nvme", fns[0].bdf);
	return -ENODEV;
}

static void on_vector(void *arg, uint32_t events)
{
	struct host_vec *w = arg;

	(void)events;
	nvme_ctrl_service_vector(w->ctrl, w->vec);
}

static bool poll_ctrl(void *arg)
{
	return nvme_ctrl_poll(arg) > 0;
}

/* While the loop polls, commands go to the polled twins (no interrupt);
 * when it stops, new ones go back to interrupt-driven queues and a last
 * look reaps what came meanwhile. */
static bool notify_ctrl(void *arg, bool on)
{
	nvme_ctrl_set_polling(arg, !on);
	return on && nvme_ctrl_poll(arg) > 0;
}

/* Commands on polled twins raise no interrupt: the loop must look. */
static bool pending_ctrl(void *arg)
{
	return nvme_ctrl_polled_busy(arg);
}

/* Commands at the controller: the loop waits for the device. */
static bool busy_ctrl(void *arg)
{
	return nvme_ctrl_busy(arg);
}

int host_watch(struct host *h, struct evloop *loop)
{
	unsigned nw = 0;

	for (unsigned i = 0; i < h->nctrls; i++) {
		struct nvme_ctrl *c = h->ctrls[i];

		for (unsigned v = 0; v < nvme_ctrl_nr_vectors(c) && v < HOST_MAX_VECS; v++) {
			int rc;

			h->vecs[nw] = (struct host_vec){ c, v };
			rc = evloop_add(loop, nvme_ctrl_vector_fd(c, v),
					EPOLLIN | (nvme_ctrl_vector_edge(c, v) ? EPOLLET : 0), on_vector,
					&h->vecs[nw]);
			if (rc)
				return rc;
			nw++;
		}
		h->pollers[i] = (struct evloop_poller){ .poll = poll_ctrl, .notify = notify_ctrl,
							.pending = pending_ctrl, .busy = busy_ctrl,
							.arg = c };
		evloop_poller_add(loop, &h->pollers[i]);
	}
	return 0;
}

void host_close(struct host *h)
{
	blk_registry_free(&h->reg);
	for (unsigned i = 0; i < h->nctrls; i++)
		nvme_ctrl_close(h->ctrls[i]);
	h->nctrls = 0;
}
