/* nvme-drv: the NVMe server. Brings up the NVMe controllers bound to
 * vfio-pci and serves their namespaces and partitions. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "blk/host.h"
#include "util/evloop.h"
#include "util/log.h"

#define VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: nvme-drv [OPTIONS]\n"
		"The NVMe server: drives NVMe controllers bound to vfio-pci and serves\n"
		"their namespaces (SERIAL:nNSID) and partitions (by UUID).\n"
		"\n"
		"  --list             print every controller, namespace and partition, then exit\n"
		HOST_OPTIONS_HELP
		"  -v                 more output (repeat up to three times: info, debug, trace)\n"
		"  -q                 quiet: no output at all\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"Exit status: 0 on success (or a clean stop on SIGTERM/SIGINT), 1 on any error.\n");
}

static const char *yesno(bool b)
{
	return b ? "yes" : "no";
}

static void list_all(const struct host *h)
{
	for (unsigned i = 0; i < h->nctrls; i++) {
		struct nvme_ctrl *c = h->ctrls[i];
		const struct nvme_ctrl_info *ci = nvme_ctrl_info(c);

		printf("controller %s serial=\"%s\" model=\"%s\" firmware=\"%s\" mdts=%u "
		       "sgl=%s interrupts=%s vectors=%u queues=%u depth=%u\n",
		       ci->bdf, ci->serial, ci->model, ci->firmware, ci->mdts_bytes,
		       ci->sgl ? "yes" : (ci->sgl_supported ? "off" : "no"),
		       vfio_irq_mode_name(ci->irq_mode), ci->nvec, ci->nr_io_queues, ci->io_depth);
		for (unsigned k = 0; k < nvme_ctrl_ns_count(c); k++) {
			const struct nvme_ns_info *ni = nvme_ns_info(nvme_ctrl_ns(c, k));
			const struct blk_disk *d = NULL;

			if (!ni->usable) {
				printf("  namespace %s skipped=\"%s\"\n", ni->name, ni->skip_reason);
				continue;
			}
			for (unsigned j = 0; j < h->reg.ndisks; j++)
				if (h->reg.disks[j].info == ni)
					d = &h->reg.disks[j];
			printf("  namespace %s size=%llu lba=%u readonly=%s table=%s\n", ni->name,
			       (unsigned long long)(ni->nlba * ni->lba_size), ni->lba_size,
			       yesno(ni->readonly), d ? part_scheme_name(d->parts.scheme) : "none");
			for (unsigned p = 0; d && p < d->parts.count; p++) {
				const struct part_entry *pe = &d->parts.parts[p];
				printf("    partition %s label=\"%s\" name=%s:%u first-lba=%llu size=%llu\n",
				       pe->uuid, pe->label, ni->name, pe->number,
				       (unsigned long long)pe->first_lba,
				       (unsigned long long)(pe->nlba * ni->lba_size));
			}
		}
	}
}

static void on_signal(void *arg, uint32_t signo)
{
	log_info(NULL, "signal %u: shutting down", signo);
	evloop_stop(arg);
}

struct vec_watch {
	struct nvme_ctrl *ctrl;
	unsigned vec;
};

static void on_vector(void *arg, uint32_t events)
{
	struct vec_watch *w = arg;

	(void)events;
	nvme_ctrl_service_vector(w->ctrl, w->vec);
}

static int serve(struct host *h)
{
	struct vec_watch watches[HOST_MAX_CTRLS * 65];
	unsigned nw = 0;
	struct evloop *loop;
	int rc = evloop_new(&loop);

	if (rc)
		return rc;
	rc = evloop_catch_signals(loop, on_signal, loop);
	for (unsigned i = 0; !rc && i < h->nctrls; i++) {
		for (unsigned v = 0; !rc && v < nvme_ctrl_nr_vectors(h->ctrls[i]); v++) {
			if (nw >= sizeof(watches) / sizeof(watches[0]))
				break;
			watches[nw] = (struct vec_watch){ h->ctrls[i], v };
			rc = evloop_add(loop, nvme_ctrl_vector_fd(h->ctrls[i], v), EPOLLIN, on_vector,
					&watches[nw]);
			nw++;
		}
	}
	if (!rc) {
		log_info(NULL, "serving %u disks; SIGTERM or SIGINT stops", h->reg.ndisks);
		rc = evloop_run(loop);
	}
	evloop_free(loop);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		HOST_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct host_opts opts;
	struct host host;
	bool do_list = false;
	int verbose = 0, quiet = 0, opt, rc;

	log_set_prog(argv[0]);
	host_opts_init(&opts);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'v': verbose++; break;
		case 'q': quiet = 1; break;
		case 'l': do_list = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("nvme-drv " VERSION "\n"); return 0;
		case ':':
			log_err(NULL, "option '%s' needs an argument (see --help)", argv[optind - 1]);
			return 1;
		case '?':
			log_err(NULL, "unknown option '%s' (see --help)", argv[optind - 1]);
			return 1;
		default:
			if (host_opts_parse(&opts, opt, optarg) <= 0)
				return 1;
		}
	}
	if (optind < argc) {
		log_err(NULL, "unexpected argument '%s' (see --help)", argv[optind]);
		return 1;
	}
	if (verbose > 3)
		verbose = 3;
	log_set_level(quiet ? LOG_QUIET : LOG_WARN + verbose);

	rc = host_open(&opts, &host);
	if (rc)
		return 1;
	if (do_list)
		list_all(&host);
	else
		rc = serve(&host);
	host_close(&host);
	return rc ? 1 : 0;
}
