/* nvme-drv-perf: drives one disk or partition through the driver itself
 * (no clients, no copies): IOPS, bandwidth, latency percentiles, and a
 * write-then-read-back verify of a seeded pattern. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "nvd_version.h"
#include "blk/host.h"
#include "util/evloop.h"
#include "runstats.h"
#include "util/log.h"
#include "util/park.h"
#include "util/parse.h"

enum rw_mode { RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE, RW_VERIFY };
static const char *const rw_names[] = { "read", "write", "randread", "randwrite", "verify" };

struct perf;
struct worker;

struct io {
	struct nvme_req req;
	struct worker *w;
	uint8_t *buf;
	struct nvme_seg *segs;
	uint64_t start_ns;
	uint64_t lba;		/* target-relative */
	bool write;
};

/* One data thread (--threads; the main thread when there is one): it
 * owns its queue pairs, its I/Os and its counters; the main thread reads
 * them only after joining it or while it is parked. */
struct worker {
	struct perf *p;
	unsigned idx;
	struct nvme_qpair **qps;
	unsigned nqps, next_qp;
	struct io *ios;
	unsigned nios;
	uint64_t count;		/* its part of --count (0: by time) */
	uint64_t issued, completed, errors, mismatches;
	uint64_t seq;		/* next sequential slot of its own */
	uint64_t end_ns;	/* when its phase ended (--threads) */
	uint64_t rng;
	struct lat_log lat;
	struct evloop *loop;
	struct evloop_poller poller;
	struct park park;
	pthread_t tid;
	struct evloop_poll_stats poll_last;	/* polling counts when the phase began */
};

struct perf {
	struct blk_target tgt;
	struct nvme_qpair **qps;	/* all it uses, dealt round the threads */
	unsigned nqps;
	struct worker *ws;
	unsigned nthreads;
	unsigned parks;		/* data threads whose park is set up */
	atomic_uint running;	/* data threads still in the phase */
	enum rw_mode mode;
	uint32_t bs, nlb;	/* bytes and LBAs per I/O */
	unsigned qd;
	uint64_t seed;
	double time_s;
	uint64_t count;		/* I/Os to issue (0: by time) */
	uint64_t blocks;	/* I/O-sized slots in the target */
	/* run state */
	bool verify_write;	/* verify phase: writing (true) or reading */
	uint64_t deadline_ns;
	atomic_bool stop;
	struct evloop *loop;	/* the main thread's */
	struct nvme_db_stats db_last;	/* doorbell counts when the phase began */
};

/* The verify pattern of one LBA: its absolute LBA in the first word (so a
 * misplaced write names where it belongs), seeded noise after that. */
static void pattern_fill(uint64_t *w, uint64_t abs_lba, uint32_t lba_size, uint64_t seed)
{
	uint64_t x = seed ^ (abs_lba * 0x9e3779b97f4a7c15ull);

	w[0] = abs_lba;
	for (uint32_t i = 1; i < lba_size / 8; i++)
		w[i] = splitmix64(&x);
}

static int pattern_check(struct perf *p, const uint8_t *buf, uint64_t lba, uint32_t nlb)
{
	uint64_t *expect = malloc(p->tgt.lba_size);
	int bad = 0;

	if (!expect)
		return -ENOMEM;
	for (uint32_t i = 0; i < nlb && bad < 5; i++) {
		uint64_t abs_lba = p->tgt.first_lba + lba + i;
		const uint64_t *got = (const uint64_t *)(buf + (size_t)i * p->tgt.lba_size);

		pattern_fill(expect, abs_lba, p->tgt.lba_size, p->seed);
		if (memcmp(got, expect, p->tgt.lba_size) != 0) {
			fprintf(stderr, "nvme-drv-perf: MISMATCH at LBA %" PRIu64 " (target block %" PRIu64
				"): first word %#" PRIx64 ", expected %#" PRIx64 "\n",
				abs_lba, lba + i, got[0], expect[0]);
			bad++;
		}
	}
	free(expect);
	return bad;
}

static void io_start(struct worker *w, struct io *io);

static void io_done(struct nvme_req *r)
{
	struct io *io = r->priv;
	struct worker *w = io->w;
	struct perf *p = w->p;
	uint64_t lat = now_ns() - io->start_ns;

	w->completed++;
	if (r->result) {
		w->errors++;
		atomic_store(&p->stop, true);	/* every thread stops issuing */
		fprintf(stderr, "nvme-drv-perf: %s of block %" PRIu64 " failed: %s (NVMe status %#x: %s)\n",
			io->write ? "write" : "read", io->lba, strerror(-r->result), r->status,
			nvme_status_str(r->status));
	} else if (p->mode == RW_VERIFY && !io->write) {
		int bad = pattern_check(p, io->buf, io->lba, p->nlb);
		if (bad)
			w->mismatches += (uint64_t)bad;
	}
	lat_add(&w->lat, lat);
	io_start(w, io);
}

/* Sequential slots are dealt round the threads: thread i of n takes i,
 * i + n, i + 2n, ... */
static uint64_t seq_slot(const struct worker *w)
{
	return w->seq * w->p->nthreads + w->idx;
}

static bool more_to_issue(struct worker *w)
{
	struct perf *p = w->p;

	if (atomic_load_explicit(&p->stop, memory_order_relaxed) || w->errors)
		return false;
	/* --count dealt round the threads: a thread's part may be 0. */
	if (p->count)
		return w->issued < w->count;
	if (p->mode == RW_VERIFY)
		return seq_slot(w) < p->blocks;
	return now_ns() < p->deadline_ns;
}

static void io_start(struct worker *w, struct io *io)
{
	struct perf *p = w->p;
	uint64_t slot;
	int rc;

	if (!more_to_issue(w))
		return;
	switch (p->mode) {
	case RW_RANDREAD:
	case RW_RANDWRITE:
		slot = splitmix64(&w->rng) % p->blocks;
		break;
	default:
		slot = seq_slot(w) % p->blocks;
		w->seq++;
		break;
	}
	io->lba = slot * p->nlb;
	io->write = p->mode == RW_WRITE || p->mode == RW_RANDWRITE ||
		    (p->mode == RW_VERIFY && p->verify_write);
	if (io->write) {
		for (uint32_t i = 0; i < p->nlb; i++)
			pattern_fill((uint64_t *)(io->buf + (size_t)i * p->tgt.lba_size),
				     p->tgt.first_lba + io->lba + i, p->tgt.lba_size, p->seed);
	} else if (p->mode == RW_VERIFY) {
		memset(io->buf, 0xa5, p->bs);	/* stale data must not pass */
	}
	memset(&io->req, 0, sizeof(io->req));
	io->req.opc = io->write ? NVME_CMD_WRITE : NVME_CMD_READ;
	io->req.ns = p->tgt.ns;
	io->req.slba = p->tgt.first_lba + io->lba;
	io->req.nlb = p->nlb;
	io->req.segs = io->segs;
	io->req.nseg = (p->bs + 4095) / 4096;
	io->req.done = io_done;
	io->req.priv = io;
	io->start_ns = now_ns();
	w->issued++;
	rc = nvme_submit(w->qps[w->next_qp++ % w->nqps], &io->req);
	if (rc) {
		w->errors++;
		atomic_store(&p->stop, true);
		fprintf(stderr, "nvme-drv-perf: cannot submit block %" PRIu64 ": %s\n", io->lba,
			strerror(-rc));
	}
}

static void on_signal(void *arg, uint32_t signo)
{
	struct perf *p = arg;

	(void)signo;
	atomic_store(&p->stop, true);
}

/* Doorbell register writes against updates that stayed in the shadow
 * doorbells, since the last phase: a register write is a trap to the
 * hypervisor on an emulated controller. */
static void db_sum(const struct perf *p, struct nvme_db_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < p->nqps; i++) {
		struct nvme_db_stats s;

		nvme_qpair_db_stats(p->qps[i], &s);
		sum->sq_mmio += s.sq_mmio;
		sum->sq_shadow_only += s.sq_shadow_only;
		sum->cq_mmio += s.cq_mmio;
		sum->cq_shadow_only += s.cq_shadow_only;
	}
}

static void report_doorbells(struct perf *p, uint64_t completed)
{
	struct nvme_db_stats sum;

	db_sum(p, &sum);
	printf("doorbells: sq-mmio=%" PRIu64 " sq-shadow-only=%" PRIu64 " cq-mmio=%" PRIu64
	       " cq-shadow-only=%" PRIu64 " mmio-per-io=%.2f\n",
	       sum.sq_mmio - p->db_last.sq_mmio, sum.sq_shadow_only - p->db_last.sq_shadow_only,
	       sum.cq_mmio - p->db_last.cq_mmio, sum.cq_shadow_only - p->db_last.cq_shadow_only,
	       completed ? (double)(sum.sq_mmio - p->db_last.sq_mmio + sum.cq_mmio -
				    p->db_last.cq_mmio) / (double)completed : 0.0);
	fflush(stdout);
	p->db_last = sum;
}

/* What the event loop's polling did in the phase: rounds that polled,
 * of them those that found work, sleeps, and sleeps cut short to look at
 * polled queues (a polled command the window did not see). */
static void report_polling(struct perf *p)
{
	struct evloop_poll_stats d = { 0 };

	for (unsigned i = 0; i < p->nthreads; i++) {
		struct worker *w = &p->ws[i];
		struct evloop_poll_stats s;

		evloop_poll_stats(w->loop, &s);
		d.rounds += s.rounds - w->poll_last.rounds;
		d.hits += s.hits - w->poll_last.hits;
		d.sleeps += s.sleeps - w->poll_last.sleeps;
		d.ticks += s.ticks - w->poll_last.ticks;
		if (s.poll_ns > d.poll_ns)
			d.poll_ns = s.poll_ns;
		w->poll_last = s;
	}
	printf("polling: rounds=%" PRIu64 " hits=%" PRIu64 " sleeps=%" PRIu64 " ticks=%" PRIu64
	       " window-us=%" PRIu64 "\n",
	       d.rounds, d.hits, d.sleeps, d.ticks, d.poll_ns / 1000);
	fflush(stdout);
}

static void worker_begin(struct worker *w)
{
	w->issued = w->completed = 0;
	w->seq = 0;
	for (unsigned i = 0; i < w->nios; i++)
		io_start(w, &w->ios[i]);
}

/* ---- data threads (--threads N > 1) ---- */

/* The main thread's way to the controller: every call but a queue pair's
 * data path runs with every data thread parked (nvme.h). */
static void hold_all(struct perf *p)
{
	for (unsigned i = 0; i < p->parks; i++)
		park_hold(&p->ws[i].park);
}

static void release_all(struct perf *p)
{
	for (unsigned i = 0; i < p->parks; i++)
		park_release(&p->ws[i].park);
}

static void check_ctrl(struct perf *p)
{
	if (p->nthreads > 1)
		hold_all(p);
	nvme_ctrl_check(nvme_ns_ctrl(p->tgt.ns));
	if (p->nthreads > 1)
		release_all(p);
}

static bool worker_poll(void *arg)
{
	struct worker *w = arg;
	unsigned n = 0;

	for (unsigned i = 0; i < w->nqps; i++)
		n += nvme_qpair_poll(w->qps[i]);
	return n > 0;
}

static bool worker_notify(void *arg, bool on)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->nqps; i++)
		nvme_qpair_set_polling(w->qps[i], !on);
	return on && worker_poll(w);
}

static bool worker_pending(void *arg)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->nqps; i++)
		if (nvme_qpair_polled_busy(w->qps[i]))
			return true;
	return false;
}

static void worker_vector(void *arg, uint32_t events)
{
	(void)events;
	worker_poll(arg);
}

/* The controller's vectors the data threads do not own (admin, device
 * request, other controllers'): serviced by the main thread. */
struct main_vec {
	struct perf *p;
	struct nvme_ctrl *ctrl;
	unsigned vec;
};

static void main_vector(void *arg, uint32_t events)
{
	struct main_vec *m = arg;

	(void)events;
	hold_all(m->p);
	nvme_ctrl_service_vector(m->ctrl, m->vec);
	release_all(m->p);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int rc = 0;

	worker_begin(w);
	while (w->completed < w->issued) {
		rc = evloop_once(w->loop, 1000);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		fprintf(stderr, "nvme-drv-perf: thread %u: event loop: %s\n", w->idx, strerror(-rc));
		w->errors++;
	}
	/* Nothing is in flight; its loop and queue pairs keep their polling
	 * state for the next phase. */
	w->end_ns = now_ns();
	park_leave(&w->park);
	atomic_fetch_sub(&w->p->running, 1);
	return NULL;
}

/* Runs a phase on the data threads; the main thread meanwhile serves
 * signals, the vectors they do not own and the periodic check. */
static int run_threads(struct perf *p)
{
	uint64_t next_check = now_ns() + 1000000000ull;
	unsigned started = 0;
	int rc = 0;

	atomic_store(&p->running, p->nthreads);
	for (; started < p->nthreads; started++) {
		struct worker *w = &p->ws[started];

		rc = park_init(&w->park);
		if (!rc)
			rc = park_watch(&w->park, w->loop);
		if (!rc)
			rc = -pthread_create(&w->tid, NULL, worker_main, w);
		if (rc) {
			fprintf(stderr, "nvme-drv-perf: cannot start thread %u: %s\n", started,
				strerror(-rc));
			evloop_del(w->loop, w->park.efd);
			park_destroy(&w->park);
			atomic_store(&p->stop, true);
			atomic_fetch_sub(&p->running, p->nthreads - started);
			break;
		}
		p->parks = started + 1;
	}
	while (atomic_load(&p->running)) {
		int n = evloop_once(p->loop, 100);

		if (n < 0) {
			atomic_store(&p->stop, true);
			rc = n;
		}
		if (now_ns() >= next_check) {
			check_ctrl(p);
			next_check = now_ns() + 1000000000ull;
		}
	}
	p->parks = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(p->ws[i].tid, NULL);
		evloop_del(p->ws[i].loop, p->ws[i].park.efd);
		park_destroy(&p->ws[i].park);
	}
	return rc;
}

static int run_phase(struct perf *p, const char *phase)
{
	uint64_t t0, t1, next_check, completed = 0;
	struct worker *w0 = &p->ws[0];
	int rc = 0;

	t0 = now_ns();
	p->deadline_ns = t0 + (uint64_t)(p->time_s * 1e9);
	if (p->nthreads > 1) {
		rc = run_threads(p);
		/* The main thread notices the end only at its next look. */
		t1 = t0;
		for (unsigned i = 0; i < p->nthreads; i++)
			if (p->ws[i].end_ns > t1)
				t1 = p->ws[i].end_ns;
	} else {
		worker_begin(w0);
		next_check = now_ns() + 1000000000ull;
		while (w0->completed < w0->issued) {
			rc = evloop_once(p->loop, 1000);
			if (rc < 0)
				return rc;
			/* Command deadlines (--io-timeout), delayed retries
			 * and a dead controller are noticed only by the
			 * periodic check. */
			if (now_ns() >= next_check) {
				check_ctrl(p);
				next_check = now_ns() + 1000000000ull;
			}
		}
		t1 = now_ns();
	}
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct worker *w = &p->ws[i];

		completed += w->completed;
		if (i) {
			for (size_t k = 0; k < w->lat.n; k++)
				lat_add(&w0->lat, w->lat.ns[k]);
			w->lat.n = 0;
		}
	}
	report_phase(phase, completed, p->bs, t0, t1, &w0->lat);
	report_doorbells(p, completed);
	report_polling(p);
	return rc < 0 ? rc : 0;
}

static uint64_t sum_errors(const struct perf *p)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < p->nthreads; i++)
		n += p->ws[i].errors;
	return n;
}

static uint64_t sum_mismatches(const struct perf *p)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < p->nthreads; i++)
		n += p->ws[i].mismatches;
	return n;
}

#define STR_(x) #x
#define STR(x) STR_(x)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: nvme-drv-perf --device DEV [OPTIONS]\n"
		"Drives a disk or partition through nvme-drv's own driver and reports\n"
		"IOPS, bandwidth and latency percentiles.\n"
		"\n"
		"  --device DEV       SERIAL:nNSID, SERIAL:nNSID:N, a partition UUID,\n"
		"                     partuuid:UUID or partlabel:NAME\n"
		"  --rw MODE          read, write, randread, randwrite or verify (default randread);\n"
		"                     verify writes a seeded pattern across the whole target (or\n"
		"                     --count blocks), reads it back and fails on any mismatch\n"
		"  --bs SIZE          bytes per I/O, a multiple of the LBA size (default 4k)\n"
		"  --qd N             I/Os in flight (1-4096, default 1)\n"
		"  --time SECONDS     run time for read/write modes (default 10)\n"
		"  --count N          number of I/Os instead of a time\n"
		"  --seed N           pattern and random seed (default 1)\n"
		"  --queues N         I/O queues to spread the I/Os over (default 1, or N threads)\n"
		"  --threads N        data threads (1-64, default 1), each with its own queues\n"
		"                     (dealt round them) and its own --qd I/Os; needs MSI-X\n"
		"                     with a vector per queue\n"
		"  --poll-max-us N    poll completions for up to N microseconds before sleeping\n"
		"                     on the interrupt, adapting to the load as nvme-drv does\n"
		"                     (0-" STR(EVLOOP_POLL_MAX_US_LIMIT) ", 0: never; default "
		STR(EVLOOP_POLL_MAX_US_DEFAULT) ")\n"
		HOST_OPTIONS_HELP
		"  -v, -q             more log lines (up to -vvv) / no log lines\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"Exit status: 0 on success, 1 on a usage error or any I/O error or mismatch.\n");
}

int main(int argc, char **argv)
{
	enum { OPT_DEVICE = 0x200, OPT_RW, OPT_BS, OPT_QD, OPT_TIME, OPT_COUNT, OPT_SEED, OPT_QUEUES,
	       OPT_POLL_MAX_US, OPT_THREADS };
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "rw", required_argument, NULL, OPT_RW },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "qd", required_argument, NULL, OPT_QD },
		{ "time", required_argument, NULL, OPT_TIME },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "queues", required_argument, NULL, OPT_QUEUES },
		{ "poll-max-us", required_argument, NULL, OPT_POLL_MAX_US },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		HOST_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct perf p = { .mode = RW_RANDREAD, .bs = 4096, .qd = 1, .seed = 1, .time_s = 10,
			  .nthreads = 1 };
	const char *device = NULL;
	char why[256], thread_word[24] = "";
	unsigned want_queues = 0, poll_max_us = EVLOOP_POLL_MAX_US_DEFAULT;
	struct host_opts opts;
	struct host host;
	struct dma_buf mem = { 0 };
	struct io *ios = NULL;
	struct main_vec *mvecs = NULL;
	struct nvme_ctrl *ctrl;
	int verbose = 0, quiet = 0, opt, rc, ret = 1;
	uint64_t v;

	log_set_prog(argv[0]);
	host_opts_init(&opts);
	/* The driver's own ceiling: polled queues, as spdk_nvme_perf. */
	opts.ctrl.polled_queues = true;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'v': verbose++; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("nvme-drv-perf " NVD_VERSION "\n"); return 0;
		case OPT_DEVICE: device = optarg; break;
		case OPT_RW:
			for (v = 0; v < 5 && strcmp(optarg, rw_names[v]) != 0; v++)
				;
			if (v == 5) {
				log_err(NULL, "--rw: '%s' is not read, write, randread, randwrite or verify", optarg);
				return 1;
			}
			p.mode = (enum rw_mode)v;
			break;
		case OPT_BS:
			if (opt_bs(optarg, &p.bs))
				return 1;
			break;
		case OPT_QD:
			if (parse_opt_range("--qd", optarg, 1, 4096, &v))
				return 1;
			p.qd = (unsigned)v;
			break;
		case OPT_TIME:
			if (opt_time(optarg, &p.time_s))
				return 1;
			break;
		case OPT_COUNT:
			if (opt_count(optarg, &p.count))
				return 1;
			break;
		case OPT_SEED:
			if (opt_seed(optarg, &p.seed))
				return 1;
			break;
		case OPT_QUEUES:
			if (parse_opt_range("--queues", optarg, 1, 64, &v))
				return 1;
			want_queues = (unsigned)v;
			break;
		case OPT_THREADS:
			if (parse_opt_range("--threads", optarg, 1, 64, &v))
				return 1;
			p.nthreads = (unsigned)v;
			break;
		case OPT_POLL_MAX_US:
			if (parse_opt_range("--poll-max-us", optarg, 0, EVLOOP_POLL_MAX_US_LIMIT, &v))
				return 1;
			poll_max_us = (unsigned)v;
			break;
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
	if (!device) {
		log_err(NULL, "--device is required (see --help)");
		return 1;
	}
	if (verbose > 3)
		verbose = 3;
	log_set_level(quiet ? LOG_QUIET : LOG_WARN + verbose);
	if (!want_queues)
		want_queues = p.nthreads;
	if (want_queues < p.nthreads) {
		log_err(NULL, "--queues %u: each of the %u threads needs a queue of its own", want_queues,
			p.nthreads);
		return 1;
	}
	if (!opts.ctrl.io_queues && want_queues > 2)
		opts.ctrl.io_queues = want_queues;

	if (!poll_max_us)
		opts.ctrl.polled_queues = false;
	if (host_open(&opts, &host))
		return 1;
	rc = blk_lookup(&host.reg, device, &p.tgt, why, sizeof(why));
	if (rc == -ENOTUNIQ) {
		log_err(NULL, "--device: %s", why);
		goto out;
	}
	if (rc == -EINVAL) {
		log_err(NULL, "--device: '%s' is not a device name (SERIAL:nNSID, SERIAL:nNSID:N, "
			"UUID, partuuid:UUID or partlabel:NAME)", device);
		goto out;
	}
	if (rc) {
		log_err(NULL, "--device: no disk or partition '%s' (nvme-drv --list shows them)", device);
		goto out;
	}
	if (p.bs % p.tgt.lba_size) {
		log_err(p.tgt.name, "--bs %u is not a multiple of the LBA size %u", p.bs, p.tgt.lba_size);
		goto out;
	}
	if ((p.mode == RW_WRITE || p.mode == RW_RANDWRITE || p.mode == RW_VERIFY) && p.tgt.readonly) {
		log_err(p.tgt.name, "is read-only; --rw %s would write", rw_names[p.mode]);
		goto out;
	}
	p.nlb = p.bs / p.tgt.lba_size;
	p.blocks = p.tgt.nlba / p.nlb;
	if (!p.blocks) {
		log_err(p.tgt.name, "smaller than one I/O of %u bytes", p.bs);
		goto out;
	}
	if (p.mode == RW_VERIFY && p.count && p.count < p.blocks)
		p.blocks = p.count;
	ctrl = nvme_ns_ctrl(p.tgt.ns);
	p.nqps = nvme_ctrl_nr_qpairs(ctrl) < want_queues ? nvme_ctrl_nr_qpairs(ctrl) : want_queues;
	if (p.nqps < p.nthreads) {
		log_err(p.tgt.name, "--threads %u: the controller gave %u I/O queues", p.nthreads, p.nqps);
		goto out;
	}
	p.qps = calloc(p.nqps, sizeof(*p.qps));
	p.ws = calloc(p.nthreads, sizeof(*p.ws));
	ios = calloc((size_t)p.qd * p.nthreads, sizeof(*ios));
	if (!p.qps || !p.ws || !ios)
		goto out;
	for (unsigned i = 0; i < p.nqps; i++) {
		p.qps[i] = nvme_ctrl_qpair(ctrl, i);
		if (p.nthreads > 1 && nvme_qpair_vector_fd(p.qps[i]) < 0) {
			log_err(p.tgt.name, "--threads: I/O queue %u shares its interrupt vector (%s); "
				"a thread needs queues whose vector is their own", i,
				vfio_irq_mode_name(nvme_ctrl_info(ctrl)->irq_mode));
			goto out;
		}
	}
	for (unsigned t = 0; t < p.nthreads; t++) {
		struct worker *w = &p.ws[t];

		w->p = &p;
		w->idx = t;
		w->nqps = p.nqps / p.nthreads + (t < p.nqps % p.nthreads);
		w->qps = calloc(w->nqps, sizeof(*w->qps));
		if (!w->qps)
			goto out;
		for (unsigned i = 0; i < w->nqps; i++)
			w->qps[i] = p.qps[t + i * p.nthreads];
		w->ios = ios + (size_t)p.qd * t;
		w->nios = p.qd;
		w->count = p.count / p.nthreads + (t < p.count % p.nthreads);
		/* Thread 0 draws what a single thread would; the others from
		 * a mixed seed (seed + t * splitmix's step would be thread
		 * 0's sequence a few draws later). */
		if (t) {
			uint64_t x = p.seed ^ ((uint64_t)t << 32);

			w->rng = splitmix64(&x);
		} else {
			w->rng = p.seed;
		}
	}
	db_sum(&p, &p.db_last);
	/* Buffers are page-aligned and described page by page, so that PRP
	 * lists and multi-descriptor SGLs are both exercised. */
	{
		size_t per = ((size_t)p.bs + 4095) & ~(size_t)4095;
		unsigned nseg = (unsigned)(per / 4096);

		if (vfio_dma_alloc(nvme_ctrl_vfio(ctrl), per * p.qd * p.nthreads, &mem))
			goto out;
		for (unsigned i = 0; i < p.qd * p.nthreads; i++) {
			ios[i].w = &p.ws[i / p.qd];
			ios[i].buf = (uint8_t *)mem.va + per * i;
			ios[i].segs = calloc(nseg, sizeof(struct nvme_seg));
			if (!ios[i].segs)
				goto out;
			for (unsigned s = 0; s < nseg; s++) {
				uint32_t left = p.bs - s * 4096u;
				ios[i].segs[s].iova = mem.iova + per * i + (uint64_t)s * 4096;
				ios[i].segs[s].len = left < 4096 ? left : 4096;
			}
		}
	}
	if (evloop_new(&p.loop) || evloop_catch_signals(p.loop, on_signal, &p))
		goto out;
	if (p.nthreads == 1) {
		/* As the server does (--poll-max-us): completions are polled
		 * for a bounded, adaptive window before the loop sleeps on the
		 * interrupt. */
		if (host_watch(&host, p.loop))
			goto out;
		evloop_set_poll_max(p.loop, poll_max_us);
		p.ws[0].loop = p.loop;
	} else {
		/* Each thread polls and watches its own queues; the main
		 * thread the rest, with the threads parked. */
		unsigned nv = 0, k = 0;

		for (unsigned i = 0; i < host.nctrls; i++)
			nv += nvme_ctrl_nr_vectors(host.ctrls[i]);
		mvecs = calloc(nv ? nv : 1, sizeof(*mvecs));
		if (!mvecs)
			goto out;
		for (unsigned i = 0; i < host.nctrls; i++) {
			struct nvme_ctrl *c = host.ctrls[i];

			for (unsigned vec = 0; vec < nvme_ctrl_nr_vectors(c); vec++) {
				bool owned = false;

				for (unsigned q = 0; c == ctrl && q < p.nqps; q++)
					owned |= nvme_qpair_vector(p.qps[q]) == vec;
				if (owned)
					continue;
				mvecs[k] = (struct main_vec){ &p, c, vec };
				if (evloop_add(p.loop, nvme_ctrl_vector_fd(c, vec),
					       EPOLLIN | (nvme_ctrl_vector_edge(c, vec) ? EPOLLET : 0),
					       main_vector, &mvecs[k]))
					goto out;
				k++;
			}
		}
		for (unsigned t = 0; t < p.nthreads; t++) {
			struct worker *w = &p.ws[t];

			if (evloop_new(&w->loop))
				goto out;
			evloop_set_poll_max(w->loop, poll_max_us);
			w->poller = (struct evloop_poller){ .poll = worker_poll, .notify = worker_notify,
							    .pending = worker_pending, .arg = w };
			evloop_poller_add(w->loop, &w->poller);
			for (unsigned i = 0; i < w->nqps; i++)
				if (evloop_add(w->loop, nvme_qpair_vector_fd(w->qps[i]), EPOLLIN | EPOLLET,
					       worker_vector, w))
					goto out;
		}
	}
	if (p.nthreads > 1)
		snprintf(thread_word, sizeof(thread_word), " threads=%u", p.nthreads);
	printf("nvme-drv-perf: %s (%s) rw=%s bs=%u qd=%u queues=%u polled-queues=%u lba=%u first-lba=%" PRIu64
	       " blocks=%" PRIu64 " %s %s %s-doorbells%s\n",
	       device, p.tgt.name, rw_names[p.mode], p.bs, p.qd, p.nqps,
	       nvme_ctrl_info(ctrl)->nr_polled_queues, p.tgt.lba_size,
	       p.tgt.first_lba, p.tgt.nlba, nvme_ctrl_info(ctrl)->sgl ? "SGL" : "PRP",
	       vfio_irq_mode_name(nvme_ctrl_info(ctrl)->irq_mode),
	       nvme_ctrl_info(ctrl)->shadow_db ? "shadow" : "register", thread_word);
	fflush(stdout);
	if (p.mode == RW_VERIFY) {
		p.verify_write = true;
		if (run_phase(&p, "write") || sum_errors(&p))
			goto out;
		p.verify_write = false;
		if (run_phase(&p, "read") || sum_errors(&p))
			goto out;
		if (sum_mismatches(&p)) {
			fprintf(stderr, "nvme-drv-perf: VERIFY FAILED: %" PRIu64 " mismatching blocks\n",
				sum_mismatches(&p));
			goto out;
		}
		if (atomic_load(&p.stop))
			goto out;
		printf("verify: OK, %" PRIu64 " blocks of %u bytes\n", p.blocks, p.bs);
	} else {
		if (run_phase(&p, rw_names[p.mode]) || sum_errors(&p))
			goto out;
	}
	ret = 0;
out:
	if (ret && p.ws && sum_errors(&p))
		fprintf(stderr, "nvme-drv-perf: %" PRIu64 " I/O errors\n", sum_errors(&p));
	for (unsigned t = 0; p.ws && t < p.nthreads; t++) {
		if (p.ws[t].loop != p.loop)
			evloop_free(p.ws[t].loop);
		free(p.ws[t].qps);
		lat_free(&p.ws[t].lat);
	}
	evloop_free(p.loop);
	if (ios)
		for (unsigned i = 0; i < p.qd * p.nthreads; i++)
			free(ios[i].segs);
	free(ios);
	free(mvecs);
	free(p.ws);
	free(p.qps);
	if (mem.va)
		vfio_dma_free(nvme_ctrl_vfio(nvme_ns_ctrl(p.tgt.ns)), &mem);
	host_close(&host);
	return ret;
}
