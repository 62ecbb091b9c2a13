/* nvme-drv-io: a virtio-blk driver over vhost-user, as a VMM would be, for
 * testing back-ends (nvme-drv, qemu-storage-daemon): the device's
 * configuration, IOPS, bandwidth and latency percentiles, a write-then-
 * read-back verify of a seeded pattern, and single FLUSH, DISCARD,
 * WRITE_ZEROES and GET_ID requests. */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvd_version.h"
#include "client/vhu_client.h"
#include "runstats.h"
#include "util/log.h"
#include "util/parse.h"

enum rw_mode {
	RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE, RW_VERIFY,
	RW_FLUSH, RW_DISCARD, RW_WRITE_ZEROES, RW_COUNT
};
static const char *const rw_names[RW_COUNT] = {
	"read", "write", "randread", "randwrite", "verify", "flush", "discard", "write-zeroes",
};

#define SECTOR VIRTIO_BLK_SECTOR_SIZE
#define PAGE 4096u
#define REAP_BATCH 64

struct io {
	uint8_t *buf;
	struct vhu_buf segs[VHU_SEGS_MAX];
	unsigned nseg, q;
	uint64_t start_ns;
	uint64_t sector;
	bool write;
};

struct run {
	struct vhu_client *c;
	const char *name;
	enum rw_mode mode;
	uint32_t bs;
	unsigned qd, nq;
	unsigned nregions;	/* I/O buffers go round-robin over them */
	unsigned region[VHU_REGIONS_MAX];	/* their vhu_client indices */
	bool indirect;
	uint64_t seed;
	double time_s;
	uint64_t count;		/* I/Os to issue (0: by time) */
	uint64_t start_at_ns;	/* --start-at: CLOCK_REALTIME of the first I/O; 0: at once */
	uint64_t first;		/* device sector of block 0 */
	uint64_t blocks;	/* bs-sized slots from `first` on */
	int timeout_ms;
	/* run state */
	bool verify_write;
	uint64_t issued, completed, errors, mismatches;
	uint64_t seq, deadline_ns, rng;
	uint64_t end_ns;	/* its last completion of the phase */
	char label[48];		/* "client N: " with --clients, else empty */
	char fdname[32];	/* its name with --fd */
	char *owned_name;	/* its socket path with --clients */
	struct lat_log lat;
	struct io *ios;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int signo)
{
	(void)signo;
	g_stop = 1;
}

/* The verify pattern of one 512-byte sector (documented in --help, so the
 * host can check an image): its device sector number, then seeded noise,
 * all little-endian 64-bit words. nvme-drv-perf's pattern is the same per
 * LBA with the absolute LBA; here the unit is the virtio sector. */
static void pattern_fill(uint8_t *p, uint64_t sector, uint64_t seed)
{
	uint64_t x = seed ^ (sector * 0x9e3779b97f4a7c15ull);
	uint64_t w = htole64(sector);

	memcpy(p, &w, 8);
	for (unsigned i = 1; i < SECTOR / 8; i++) {
		w = htole64(splitmix64(&x));
		memcpy(p + 8 * i, &w, 8);
	}
}

static uint64_t pattern_check(const struct run *r, const uint8_t *buf, uint64_t sector)
{
	uint8_t expect[SECTOR];
	uint64_t bad = 0;

	for (uint32_t i = 0; i < r->bs / SECTOR; i++) {
		const uint8_t *got = buf + (size_t)i * SECTOR;
		uint64_t g, e;

		pattern_fill(expect, sector + i, r->seed);
		if (memcmp(got, expect, SECTOR) == 0)
			continue;
		if (r->mismatches + bad < 5) {
			memcpy(&g, got, 8);
			memcpy(&e, expect, 8);
			fprintf(stderr, "nvme-drv-io: %sMISMATCH at sector %" PRIu64 ": first word %#"
				PRIx64 ", expected %#" PRIx64 "\n", r->label, sector + i, le64toh(g),
				le64toh(e));
		}
		bad++;
	}
	return bad;
}

static const char *status_name(uint8_t s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case 0xff: return "never written";
	default: return "invalid";
	}
}

static bool more_to_issue(const struct run *r)
{
	if (g_stop || r->errors)
		return false;
	if (r->count)
		return r->issued < r->count;
	if (r->mode == RW_VERIFY)
		return r->seq < r->blocks;
	return now_ns() < r->deadline_ns;
}

/* Returns whether it submitted. */
static bool io_start(struct run *r, struct io *io)
{
	struct vhu_req req;
	uint64_t slot;
	int rc;

	if (!more_to_issue(r))
		return false;
	if (r->mode == RW_RANDREAD || r->mode == RW_RANDWRITE)
		slot = splitmix64(&r->rng) % r->blocks;
	else
		slot = r->seq++ % r->blocks;
	io->sector = r->first + slot * (r->bs / SECTOR);
	io->write = r->mode == RW_WRITE || r->mode == RW_RANDWRITE ||
		    (r->mode == RW_VERIFY && r->verify_write);
	if (io->write)
		for (uint32_t i = 0; i < r->bs / SECTOR; i++)
			pattern_fill(io->buf + (size_t)i * SECTOR, io->sector + i, r->seed);
	else if (r->mode == RW_VERIFY)
		memset(io->buf, 0xa5, r->bs);	/* stale data must not pass */
	req = (struct vhu_req){
		.type = io->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
		.sector = io->sector,
		.data = io->segs,
		.ndata = io->nseg,
		.indirect = r->indirect,
		.priv = io,
	};
	io->start_ns = now_ns();
	rc = vhu_submit(r->c, io->q, &req);
	if (rc) {
		r->errors++;
		fprintf(stderr, "nvme-drv-io: %scannot submit sector %" PRIu64 ": %s\n", r->label,
			io->sector,
			strerror(-rc));
		return false;
	}
	r->issued++;
	return true;
}

static void io_done(struct run *r, const struct vhu_done *d)
{
	struct io *io = d->priv;

	r->completed++;
	if (d->status != VIRTIO_BLK_S_OK) {
		r->errors++;
		fprintf(stderr, "nvme-drv-io: %s%s of sector %" PRIu64 " failed: virtio status %s (%u)\n",
			r->label, io->write ? "write" : "read", io->sector, status_name(d->status), d->status);
	} else if (r->mode == RW_VERIFY && !io->write) {
		r->mismatches += pattern_check(r, io->buf, io->sector);
	}
	lat_add(&r->lat, now_ns() - io->start_ns);
}

static int kick_all(struct run *r)
{
	for (unsigned q = 0; q < r->nq; q++) {
		int rc = vhu_kick(r->c, q);
		if (rc)
			return rc;
	}
	return 0;
}

static bool phase_open(const struct run *r)
{
	return r->completed < r->issued;
}

/* Keeps qd I/Os in flight on each of the n runs until the phase's count,
 * blocks or time run out, sleeping on all their call eventfds in between
 * (one thread drives every device: --clients). Returns 0 or a negative
 * errno (a device broke the ring, hung up, or stopped answering). */
static int run_phase(struct run *rs, unsigned n, const char *phase)
{
	struct vhu_done done[REAP_BATCH];
	struct vhu_client **cs = calloc(n, sizeof(*cs));
	uint64_t t0, idle_since;
	unsigned open = 0;
	int rc = 0;

	if (!cs)
		return -ENOMEM;
	if (rs[0].start_at_ns) {
		struct timespec at = { (time_t)(rs[0].start_at_ns / 1000000000ull),
				       (long)(rs[0].start_at_ns % 1000000000ull) }, now;

		/* Clients started one after another all measure one window. */
		clock_gettime(CLOCK_REALTIME, &now);
		if ((uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec > rs[0].start_at_ns)
			fprintf(stderr, "nvme-drv-io: warning: ready only after --start-at\n");
		while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) == EINTR && !g_stop)
			;
		for (unsigned k = 0; k < n; k++)
			rs[k].start_at_ns = 0;
	}
	t0 = idle_since = now_ns();
	for (unsigned k = 0; k < n && !rc; k++) {
		struct run *r = &rs[k];

		r->issued = r->completed = r->seq = 0;
		r->deadline_ns = t0 + (uint64_t)(r->time_s * 1e9);
		r->end_ns = t0;
		for (unsigned i = 0; i < r->qd; i++)
			io_start(r, &r->ios[i]);
		rc = kick_all(r);
	}
	for (unsigned first = 0; !rc; first = first + 1 < n ? first + 1 : 0) {
		unsigned got = 0;

		/* Each pass starts one device later: none is always served (and
		 * kicked) first. */
		open = 0;
		for (unsigned j = 0; j < n && !rc; j++) {
			struct run *r = &rs[(first + j) % n];

			if (!phase_open(r))
				continue;
			for (unsigned q = 0; q < r->nq && !rc; q++) {
				int m = vhu_reap(r->c, q, done, REAP_BATCH);

				if (m < 0) {
					rc = m;
					break;
				}
				for (int i = 0; i < m; i++) {
					io_done(r, &done[i]);
					io_start(r, done[i].priv);
				}
				got += (unsigned)m;
			}
			if (!rc)
				rc = kick_all(r);
			if (phase_open(r))
				cs[open++] = r->c;
			else
				r->end_ns = now_ns();
		}
		if (rc || !open)
			break;
		if (got) {
			idle_since = now_ns();
			continue;
		}
		rc = vhu_wait_many(cs, open, 1000);
		if (rc == -EINTR || rc > 0) {
			rc = 0;
		} else if (rc == 0 && rs[0].timeout_ms > 0 &&
			   now_ns() - idle_since > (uint64_t)rs[0].timeout_ms * 1000000ull) {
			uint64_t out = 0;

			for (unsigned k = 0; k < n; k++)
				out += rs[k].issued - rs[k].completed;
			fprintf(stderr, "nvme-drv-io: no completion for %d ms with %" PRIu64
				" I/Os in flight\n", rs[0].timeout_ms, out);
			rc = -ETIMEDOUT;
		}
	}
	free(cs);
	if (rc)
		return rc;
	for (unsigned k = 0; k < n; k++) {
		char name[80];

		snprintf(name, sizeof(name), "%s%s", rs[k].label, phase);
		report_phase(name, rs[k].completed, rs[k].bs, t0, rs[k].end_ns, &rs[k].lat);
	}
	return 0;
}

/* Segments of the data buffer: page-sized like a guest's scattered pages,
 * fewer and larger when seg_max demands, never above size_max. */
static int plan_segments(const struct vhu_info *in, uint32_t bs, uint32_t *seg_len)
{
	bool has_seg_max = in->features & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX);
	bool has_size_max = in->features & VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX);
	uint32_t max_segs = VHU_SEGS_MAX, len = PAGE;

	if (has_seg_max && in->config.seg_max && in->config.seg_max < max_segs)
		max_segs = in->config.seg_max;
	if (has_size_max && in->config.size_max && in->config.size_max < len)
		len = in->config.size_max & ~(SECTOR - 1);
	if (!len)
		return -EINVAL;
	while ((bs + len - 1) / len > max_segs) {
		len *= 2;
		if (has_size_max && in->config.size_max && len > in->config.size_max)
			return -EINVAL;
	}
	*seg_len = len;
	return 0;
}

static void print_config(const char *name, const struct vhu_info *in, bool features)
{
	const struct virtio_blk_config *k = &in->config;
	uint64_t f = in->features;

	printf("config: capacity=%" PRIu64 " blk_size=%u num_queues=%u ro=%s seg_max=%u size_max=%u"
	       " flush=%s discard=%s write_zeroes=%s\n", k->capacity,
	       f & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) ? k->blk_size : SECTOR, in->max_queues,
	       f & VIRTIO_BIT(VIRTIO_BLK_F_RO) ? "yes" : "no",
	       f & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) ? k->seg_max : 0,
	       f & VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) ? k->size_max : 0,
	       f & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) ? "yes" : "no",
	       f & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) ? "yes" : "no",
	       f & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) ? "yes" : "no");
	if (features)
		printf("features: %s offered=%#" PRIx64 " accepted=%#" PRIx64 " protocol=%#" PRIx64
		       " indirect=%s event_idx=%s max_mem_slots=%" PRIu64 "\n", name, in->offered, f,
		       in->protocol, f & VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) ? "yes" : "no",
		       f & VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) ? "yes" : "no", in->max_mem_slots);
	fflush(stdout);
}

static int get_id(struct vhu_client *c)
{
	struct vhu_buf b;
	char id[VHU_ID_BUF_SIZE] = { 0 };
	int st;

	if (vhu_alloc(c, 0, VIRTIO_BLK_ID_BYTES, 16, &b))
		return 1;
	st = vhu_run_one(c, 0, VIRTIO_BLK_T_GET_ID, 0, &b, 1, NULL);
	if (st < 0)
		return 1;
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "nvme-drv-io: GET_ID failed: virtio status %s (%d)\n",
			status_name((uint8_t)st), st);
		return 1;
	}
	memcpy(id, b.va, VIRTIO_BLK_ID_BYTES);
	printf("id: \"");
	for (size_t i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++) {
		unsigned char ch = (unsigned char)id[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			putchar(ch);
		else
			printf("\\x%02x", ch);
	}
	printf("\"\n");
	return 0;
}

/* DISCARD / WRITE_ZEROES over [first, first + n) sectors: ranges of at
 * most max_*_sectors (cut on discard_sector_alignment), packed up to
 * max_*_seg per request, as 5.2.6.2 asks of a driver. */
#define RANGES_MAX 64

static int ranges_op(struct vhu_client *c, enum rw_mode mode, uint64_t first, uint64_t n,
		     bool unmap)
{
	const struct vhu_info *in = vhu_info(c);
	const struct virtio_blk_config *k = &in->config;
	bool discard = mode == RW_DISCARD;
	uint32_t type = discard ? VIRTIO_BLK_T_DISCARD : VIRTIO_BLK_T_WRITE_ZEROES;
	uint32_t max_seg = 1, max_sect = UINT32_MAX, align = 1;
	uint64_t done = 0, reqs = 0;
	struct vhu_buf b;

	if (in->features & VIRTIO_BIT(discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
		max_seg = discard ? k->max_discard_seg : k->max_write_zeroes_seg;
		max_sect = discard ? k->max_discard_sectors : k->max_write_zeroes_sectors;
		align = discard ? k->discard_sector_alignment : 1;
	} else {
		log_warn(NULL, "the device does not offer %s; sending it anyway",
			 discard ? "VIRTIO_BLK_F_DISCARD" : "VIRTIO_BLK_F_WRITE_ZEROES");
	}
	if (!max_seg)
		max_seg = 1;
	if (max_seg > RANGES_MAX)
		max_seg = RANGES_MAX;
	if (!max_sect)
		max_sect = UINT32_MAX;
	if (align > 1 && max_sect >= align)
		max_sect -= max_sect % align;
	if (vhu_alloc(c, 0, RANGES_MAX * sizeof(struct virtio_blk_discard_write_zeroes), 16, &b))
		return 1;
	while (done < n) {
		struct virtio_blk_discard_write_zeroes *seg = b.va;
		uint64_t from = first + done;
		unsigned nseg = 0;
		struct vhu_buf d;
		int st;

		while (nseg < max_seg && done < n) {
			uint32_t len = n - done > max_sect ? max_sect : (uint32_t)(n - done);

			seg[nseg++] = (struct virtio_blk_discard_write_zeroes){
				.sector = htole64(first + done),
				.num_sectors = htole32(len),
				.flags = htole32(unmap ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0),
			};
			done += len;
		}
		d = (struct vhu_buf){ b.va, b.gpa, nseg * (uint32_t)sizeof(*seg) };
		st = vhu_run_one(c, 0, type, 0, &d, 1, NULL);
		reqs++;
		if (st < 0)
			return 1;
		if (st != VIRTIO_BLK_S_OK) {
			fprintf(stderr, "nvme-drv-io: %s of sectors [%" PRIu64 ", %" PRIu64
				") failed: virtio status %s (%d)\n", rw_names[mode], from, first + done,
				status_name((uint8_t)st), st);
			return 1;
		}
	}
	printf("%s: sectors=%" PRIu64 " requests=%" PRIu64 " OK\n", rw_names[mode], n, reqs);
	return 0;
}

static int flush(struct vhu_client *c)
{
	int st;

	if (!(vhu_info(c)->features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)))
		log_warn(NULL, "the device does not offer VIRTIO_BLK_F_FLUSH; sending FLUSH anyway");
	st = vhu_run_one(c, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL);
	if (st < 0)
		return 1;
	if (st != VIRTIO_BLK_S_OK) {
		fprintf(stderr, "nvme-drv-io: flush failed: virtio status %s (%d)\n",
			status_name((uint8_t)st), st);
		return 1;
	}
	printf("flush: OK\n");
	return 0;
}

/* Starts `queues` queues of `qs` descriptors in region 0, then shares
 * regions 1..nregions-1 one by one: each region has `size` bytes for
 * buffers. Returns 0 or 1 (reported). */
static int start_device(struct run *r, unsigned queues, unsigned qs, size_t size)
{
	uint64_t slots = vhu_info(r->c)->max_mem_slots;

	if (slots && r->nregions > slots) {
		log_err(r->name, "--regions %u: the back-end takes at most %" PRIu64
			" memory regions (GET_MAX_MEM_SLOTS)", r->nregions, slots);
		return 1;
	}
	if (vhu_start(r->c, queues, qs, size))
		return 1;
	for (unsigned k = 1; k < r->nregions; k++)
		if (vhu_add_region(r->c, size, 0, &r->region[k]))
			return 1;
	return 0;
}

/* Sizes queues and buffers for a read/write/verify run and starts the
 * device. Returns 0 or 1 (reported). */
static int rw_setup(struct run *r, bool force_indirect, unsigned queue_size)
{
	const struct vhu_info *in = vhu_info(r->c);
	bool can_indirect = in->features & VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	uint32_t seg_len;
	unsigned nseg, per_q, need, qs = queue_size;
	size_t per_region;

	if (plan_segments(in, r->bs, &seg_len)) {
		log_err(NULL, "--bs %u needs more than seg_max=%u buffers of at most size_max=%u bytes",
			r->bs, in->config.seg_max, in->config.size_max);
		return 1;
	}
	nseg = (r->bs + seg_len - 1) / seg_len;
	per_q = (r->qd + r->nq - 1) / r->nq;
	need = per_q * (nseg + 2);
	r->indirect = force_indirect;
	if (!qs)
		for (qs = 128; qs < (r->indirect ? per_q : need) && qs < 1024; qs *= 2)
			;
	if (!r->indirect && need > qs && can_indirect) {
		log_info(NULL, "%u descriptors per queue do not fit %u: using indirect tables", need,
			 qs);
		r->indirect = true;
	}
	if (r->indirect && !can_indirect) {
		log_err(NULL, "--indirect: the device does not offer VIRTIO_RING_F_INDIRECT_DESC");
		return 1;
	}
	if ((r->indirect ? per_q : need) > qs) {
		log_err(NULL, "--qd %u needs %u descriptors per queue, more than --queue-size %u",
			r->qd, r->indirect ? per_q : need, qs);
		return 1;
	}
	per_region = (r->qd + r->nregions - 1) / r->nregions;
	if (start_device(r, r->nq, qs, per_region * ((r->bs + PAGE - 1) & ~(PAGE - 1)) + PAGE))
		return 1;
	r->ios = calloc(r->qd, sizeof(*r->ios));
	if (!r->ios)
		return 1;
	for (unsigned i = 0; i < r->qd; i++) {
		struct io *io = &r->ios[i];
		struct vhu_buf b;

		if (vhu_alloc(r->c, r->region[i % r->nregions], r->bs, PAGE, &b))
			return 1;
		io->buf = b.va;
		io->q = i % r->nq;
		io->nseg = nseg;
		for (unsigned s = 0; s < nseg; s++) {
			uint32_t off = s * seg_len;

			io->segs[s] = (struct vhu_buf){ io->buf + off, b.gpa + off,
							r->bs - off < seg_len ? r->bs - off : seg_len };
		}
	}
	printf("nvme-drv-io: %s rw=%s bs=%u qd=%u queues=%u queue-size=%u first-sector=%" PRIu64
	       " blocks=%" PRIu64 " segs=%ux%u", r->name, rw_names[r->mode], r->bs, r->qd, r->nq,
	       qs, r->first, r->blocks, nseg, seg_len);
	if (r->nregions > 1)
		printf(" regions=%u", r->nregions);
	printf("%s\n", r->indirect ? " indirect" : "");
	fflush(stdout);
	return 0;
}

static uint64_t errors_of(const struct run *rs, unsigned n)
{
	uint64_t e = 0;

	for (unsigned k = 0; k < n; k++)
		e += rs[k].errors;
	return e;
}

static int rw_run(struct run *rs, unsigned n)
{
	uint64_t mismatches = 0;
	int rc;

	for (unsigned k = 0; k < n; k++) {
		rs[k].rng = rs[k].seed;
		rs[k].verify_write = rs[k].mode == RW_VERIFY;
	}
	if (rs[0].mode != RW_VERIFY) {
		rc = run_phase(rs, n, rw_names[rs[0].mode]);
		return rc || errors_of(rs, n) || g_stop;
	}
	if (run_phase(rs, n, "write") || errors_of(rs, n) || g_stop)
		return 1;
	for (unsigned k = 0; k < n; k++)
		rs[k].verify_write = false;
	if (run_phase(rs, n, "read") || errors_of(rs, n) || g_stop)
		return 1;
	for (unsigned k = 0; k < n; k++) {
		mismatches += rs[k].mismatches;
		if (rs[k].mismatches)
			fprintf(stderr, "nvme-drv-io: %sVERIFY FAILED: %" PRIu64 " mismatching sectors\n",
				rs[k].label, rs[k].mismatches);
	}
	if (mismatches)
		return 1;
	for (unsigned k = 0; k < n; k++)
		printf("%sverify: OK, %" PRIu64 " blocks of %u bytes\n", rs[k].label, rs[k].blocks,
		       rs[k].bs);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: nvme-drv-io --socket PATH | --fd N [OPTIONS]\n"
		"A virtio-blk driver over vhost-user: connects to a back-end (nvme-drv,\n"
		"qemu-storage-daemon) as a VMM would and drives its device.\n"
		"\n"
		"  --socket PATH      connect to the back-end's unix socket\n"
		"  --fd N             use the connected socket inherited as fd N\n"
		"  --info             print the configuration and negotiated features, and exit\n"
		"  --get-id           print the device ID (GET_ID) and exit\n"
		"  --rw MODE          read, write, randread, randwrite, verify (default randread),\n"
		"                     or one request over the range: flush, discard, write-zeroes;\n"
		"                     verify writes a seeded pattern across the range (or --count\n"
		"                     blocks), reads it back and fails on any mismatch\n"
		"  --bs SIZE          bytes per I/O, a multiple of 512 (default 4k)\n"
		"  --qd N             I/Os in flight (1-1024, default 1)\n"
		"  --queues N         virtqueues to spread them over (default 1; more needs MQ)\n"
		"  --time SECONDS     run time for read/write modes (default 10)\n"
		"  --count N          number of I/Os instead of a time\n"
		"  --start-at T       connect and set up now, start the I/O at T (seconds since\n"
		"                     the epoch, as date +%%s.%%N prints): clients started one\n"
		"                     after another measure the same window\n"
		"  --clients N        drive N devices from this one process (one thread), the\n"
		"                     same run on each: PATH holds %%i for 1..N; each result\n"
		"                     line starts \"client K:\" (read/write modes and verify)\n"
		"  --seed N           pattern and random seed (default 1)\n"
		"  --offset-sectors N start of the range, in 512-byte sectors (default 0)\n"
		"  --size SIZE        length of the range in bytes (default: to the end)\n"
		"  --unmap            write-zeroes may deallocate (VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)\n"
		"  --indirect         put each request in an indirect descriptor table\n"
		"  --queue-size N     descriptors per virtqueue (default: enough for --qd, >= 128)\n"
		"  --regions N        share the memory as N regions (1-%u, default 1; above 8\n"
		"                     only with CONFIGURE_MEM_SLOTS), the I/O buffers spread\n"
		"                     round-robin over them\n"
		"  --mem-file PATH    back the memory with this file (e.g. in /dev/shm; created,\n"
		"                     grown if short, never shrunk), regions one after the other,\n"
		"                     instead of memfds: for a back-end that trusts only it\n"
		"  --timeout SECONDS  give up on a silent back-end after this long (default 30;\n"
		"                     0 waits for ever)\n"
		"  -v, -q             more output (-vv: every message) / only errors\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"The pattern, per 512-byte sector S of the device (S counted from sector 0 of\n"
		"the virtio device, not of the range): 64 little-endian 64-bit words\n"
		"w[0] = S, then w[i] = splitmix64(x) for i = 1..63 with x starting at\n"
		"SEED ^ (S * 0x9e3779b97f4a7c15) and splitmix64(x) { x += 0x9e3779b97f4a7c15;\n"
		"z = x; z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9; z = (z ^ z >> 27) *\n"
		"0x94d049bb133111eb; return z ^ z >> 31; }.\n"
		"\n"
		"Writes to a read-only device, unaligned I/O or ranges past the end are sent\n"
		"anyway (with a warning): the device's answer is what a test wants to see.\n"
		"Exit status: 0 on success, 1 on a usage error, a failed request (the virtio\n"
		"status is printed: IOERR, UNSUPP), a protocol error or a verify mismatch.\n",
		VHU_REGIONS_MAX);
}

/* What main() parsed beyond the run itself. */
struct setup {
	const char *mem_file;
	bool info, want_id, unmap, indirect, have_size;
	uint64_t size;
	unsigned queue_size;
};

/* Connects r to its back-end (path, or the inherited fd), negotiates and
 * checks the device, then either does the one-shot job (--info, --get-id,
 * flush, discard, write-zeroes: returns 2 on success) or sets up the
 * read/write run (returns 0). 1: failed (reported). */
static int open_run(struct run *r, const char *path, int fd, const struct setup *su)
{
	const struct vhu_info *in;
	uint64_t total, capacity, blk_size;

	if (path) {
		r->name = path;
		if (vhu_connect(path, &r->c))
			return 1;
	} else {
		snprintf(r->fdname, sizeof(r->fdname), "fd %d", fd);
		r->name = r->fdname;
		if (vhu_adopt_fd(fd, &r->c))
			return 1;
	}
	if (vhu_negotiate(r->c, &(struct vhu_opts){ .timeout_ms = r->timeout_ms,
						    .mem_file = su->mem_file }))
		return 1;
	in = vhu_info(r->c);
	if (!in->have_config) {
		log_err(r->name, "the back-end does not offer VHOST_USER_PROTOCOL_F_CONFIG: "
			"the capacity is unknown");
		return 1;
	}
	print_config(r->name, in, su->info);
	if (su->info && !su->want_id)
		return 2;
	if (r->nq > in->max_queues) {
		log_err(r->name, "--queues %u: the device has %u", r->nq, in->max_queues);
		return 1;
	}
	capacity = in->config.capacity;
	blk_size = in->features & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) ? in->config.blk_size : SECTOR;
	total = su->have_size ? su->size / SECTOR : r->first < capacity ? capacity - r->first : 0;
	if (r->first > capacity || total > capacity - r->first)
		log_warn(r->name, "sectors [%" PRIu64 ", %" PRIu64 ") reach past the end (%" PRIu64
			 "); sending anyway", r->first, r->first + total, capacity);

	if (su->want_id || r->mode == RW_FLUSH || r->mode == RW_DISCARD ||
	    r->mode == RW_WRITE_ZEROES) {
		int rc = 1;

		if (start_device(r, 1, su->queue_size, 2 * PAGE))
			return 1;
		if (su->want_id)
			rc = get_id(r->c);
		else if (r->mode == RW_FLUSH)
			rc = flush(r->c);
		else if (!total)
			log_err(r->name, "empty range: nothing to %s", rw_names[r->mode]);
		else
			rc = ranges_op(r->c, r->mode, r->first, total, su->unmap);
		return rc ? 1 : 2;
	}

	if (r->bs % blk_size || (r->first * SECTOR) % blk_size)
		log_warn(r->name, "--bs %u or sector %" PRIu64 " is not a multiple of blk_size %"
			 PRIu64 "; sending anyway", r->bs, r->first, blk_size);
	if ((in->features & VIRTIO_BIT(VIRTIO_BLK_F_RO)) &&
	    (r->mode == RW_WRITE || r->mode == RW_RANDWRITE || r->mode == RW_VERIFY))
		log_warn(r->name, "the device is read-only; writing anyway");
	r->blocks = total / (r->bs / SECTOR);
	if (!r->blocks) {
		log_err(r->name, "the range of %" PRIu64 " sectors is smaller than one I/O of %u bytes",
			total, r->bs);
		return 1;
	}
	if (r->mode == RW_VERIFY && r->count && r->count < r->blocks)
		r->blocks = r->count;
	return rw_setup(r, su->indirect, su->queue_size) ? 1 : 0;
}

int main(int argc, char **argv)
{
	enum {
		OPT_SOCKET = 0x200, OPT_FD, OPT_INFO, OPT_GET_ID, OPT_RW, OPT_BS, OPT_QD, OPT_QUEUES,
		OPT_TIME, OPT_COUNT, OPT_SEED, OPT_OFFSET, OPT_SIZE, OPT_UNMAP, OPT_INDIRECT,
		OPT_QSIZE, OPT_TIMEOUT, OPT_REGIONS, OPT_MEM_FILE, OPT_START_AT, OPT_CLIENTS,
	};
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "info", no_argument, NULL, OPT_INFO },
		{ "get-id", no_argument, NULL, OPT_GET_ID },
		{ "rw", required_argument, NULL, OPT_RW },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "qd", required_argument, NULL, OPT_QD },
		{ "queues", required_argument, NULL, OPT_QUEUES },
		{ "time", required_argument, NULL, OPT_TIME },
		{ "start-at", required_argument, NULL, OPT_START_AT },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "offset-sectors", required_argument, NULL, OPT_OFFSET },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "unmap", no_argument, NULL, OPT_UNMAP },
		{ "indirect", no_argument, NULL, OPT_INDIRECT },
		{ "queue-size", required_argument, NULL, OPT_QSIZE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "regions", required_argument, NULL, OPT_REGIONS },
		{ "mem-file", required_argument, NULL, OPT_MEM_FILE },
		{ "clients", required_argument, NULL, OPT_CLIENTS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct run r = { .mode = RW_RANDREAD, .bs = 4096, .qd = 1, .nq = 1, .nregions = 1, .seed = 1,
			 .time_s = 10, .timeout_ms = 30000 };
	struct setup su = { 0 };
	struct run *rs;
	const char *path = NULL;
	int fd = -1, verbose = 0, quiet = 0, opt, ret;
	unsigned nclients = 1;
	bool clients_given = false;
	uint64_t v;
	struct sigaction sa = { .sa_handler = on_signal };

	log_set_prog(argv[0]);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'v': verbose++; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("nvme-drv-io " NVD_VERSION "\n"); return 0;
		case OPT_SOCKET: path = optarg; break;
		case OPT_FD:
			if (parse_u64(optarg, 0, 65535, &v)) {
				log_err(NULL, "--fd: '%s' is not a file descriptor number", optarg);
				return 1;
			}
			fd = (int)v;
			break;
		case OPT_INFO: su.info = true; break;
		case OPT_GET_ID: su.want_id = true; break;
		case OPT_UNMAP: su.unmap = true; break;
		case OPT_INDIRECT: su.indirect = true; break;
		case OPT_RW:
			for (v = 0; v < RW_COUNT && strcmp(optarg, rw_names[v]) != 0; v++)
				;
			if (v == RW_COUNT) {
				log_err(NULL, "--rw: '%s' is not read, write, randread, randwrite, verify, "
					"flush, discard or write-zeroes", optarg);
				return 1;
			}
			r.mode = (enum rw_mode)v;
			break;
		case OPT_BS:
			if (opt_bs(optarg, &r.bs))
				return 1;
			break;
		case OPT_QD:
			if (parse_opt_range("--qd", optarg, 1, 1024, &v))
				return 1;
			r.qd = (unsigned)v;
			break;
		case OPT_QUEUES:
			if (parse_opt_range("--queues", optarg, 1, 256, &v))
				return 1;
			r.nq = (unsigned)v;
			break;
		case OPT_TIME:
			if (opt_time(optarg, &r.time_s))
				return 1;
			break;
		case OPT_COUNT:
			if (opt_count(optarg, &r.count))
				return 1;
			break;
		case OPT_START_AT: {
			char *end;
			double t;

			errno = 0;
			t = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(t > 0 && t < 1e11) ||
			    optarg[0] < '0' || optarg[0] > '9') {
				log_err(NULL, "--start-at: '%s' is not a time in seconds since the epoch "
					"(date +%%s.%%N)", optarg);
				return 1;
			}
			r.start_at_ns = (uint64_t)(t * 1e9);
			break;
		}
		case OPT_SEED:
			if (opt_seed(optarg, &r.seed))
				return 1;
			break;
		case OPT_OFFSET:
			if (parse_u64(optarg, 0, UINT64_MAX / SECTOR, &r.first)) {
				log_err(NULL, "--offset-sectors: '%s' is not a sector number", optarg);
				return 1;
			}
			break;
		case OPT_SIZE:
			if (parse_size(optarg, SECTOR, UINT64_MAX / 2, &su.size) ||
			    (su.size & (SECTOR - 1))) {
				log_err(NULL, "--size: '%s' is not a positive multiple of 512", optarg);
				return 1;
			}
			su.have_size = true;
			break;
		case OPT_QSIZE:
			if (parse_u64(optarg, 1, 32768, &v) || (v & (v - 1))) {
				log_err(NULL, "--queue-size: '%s' is not a power of 2 up to 32768", optarg);
				return 1;
			}
			su.queue_size = (unsigned)v;
			break;
		case OPT_TIMEOUT:
			/* 0 waits for ever, as nvme-drv-ctl's --timeout 0. */
			if (parse_u64(optarg, 0, 3600, &v)) {
				log_err(NULL, "--timeout: '%s' is not a number of seconds from 0 (for ever) "
					"to 3600", optarg);
				return 1;
			}
			r.timeout_ms = v ? (int)v * 1000 : -1;
			break;
		case OPT_REGIONS:
			if (parse_opt_range("--regions", optarg, 1, VHU_REGIONS_MAX, &v))
				return 1;
			r.nregions = (unsigned)v;
			break;
		case OPT_MEM_FILE:
			su.mem_file = optarg;
			break;
		case OPT_CLIENTS:
			if (parse_opt_range("--clients", optarg, 1, 1024, &v))
				return 1;
			nclients = (unsigned)v;
			clients_given = true;
			break;
		case ':':
			log_err(NULL, "option '%s' needs an argument (see --help)", argv[optind - 1]);
			return 1;
		default:
			log_err(NULL, "unknown option '%s' (see --help)", argv[optind - 1]);
			return 1;
		}
	}
	if (optind < argc) {
		log_err(NULL, "unexpected argument '%s' (see --help)", argv[optind]);
		return 1;
	}
	if (!path == (fd < 0)) {
		log_err(NULL, "give exactly one of --socket and --fd (see --help)");
		return 1;
	}
	if (su.unmap && r.mode != RW_WRITE_ZEROES) {
		log_err(NULL, "--unmap is for --rw write-zeroes only");
		return 1;
	}
	if (verbose > 3)
		verbose = 3;
	log_set_level(quiet ? LOG_QUIET : LOG_WARN + verbose);
	/* No SA_RESTART: the wait in poll must end so that the run stops. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (clients_given) {
		if (!path || !strstr(path, "%i")) {
			log_err(NULL, "--clients %u: --socket PATH must contain %%i (1..N)", nclients);
			return 1;
		}
		if (su.info || su.want_id || r.mode == RW_FLUSH || r.mode == RW_DISCARD ||
		    r.mode == RW_WRITE_ZEROES) {
			log_err(NULL, "--clients is for read, write, randread, randwrite and verify");
			return 1;
		}
		if (su.mem_file && nclients > 1) {
			/* Each client lays its memory out from the file's start. */
			log_err(NULL, "--clients %u: --mem-file would share one file's memory", nclients);
			return 1;
		}
	}
	rs = calloc(nclients, sizeof(*rs));
	if (!rs)
		return 1;
	ret = 0;
	for (unsigned k = 0; k < nclients && !ret; k++) {
		rs[k] = r;
		if (clients_given) {
			char *at = strstr(path, "%i");

			if (asprintf(&rs[k].owned_name, "%.*s%u%s", (int)(at - path), path, k + 1,
				     at + 2) < 0) {
				rs[k].owned_name = NULL;
				ret = 1;
				break;
			}
			snprintf(rs[k].label, sizeof(rs[k].label), "client %u: ", k + 1);
			ret = open_run(&rs[k], rs[k].owned_name, -1, &su);
		} else {
			ret = open_run(&rs[k], path, fd, &su);
		}
	}
	if (ret == 0)
		ret = rw_run(rs, nclients);
	else if (ret == 2)
		ret = 0;	/* done by open_run (--info, --get-id, one request) */
	for (unsigned k = 0; k < nclients; k++) {
		if (ret && rs[k].errors)
			fprintf(stderr, "nvme-drv-io: %s%" PRIu64 " I/O errors\n", rs[k].label,
				rs[k].errors);
		vhu_free(rs[k].c);
		free(rs[k].ios);
		free(rs[k].owned_name);
		lat_free(&rs[k].lat);
	}
	free(rs);
	return ret;
}
