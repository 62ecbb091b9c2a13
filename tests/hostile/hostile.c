/* nvme-drv-hostile: a vhost-user front-end that misbehaves on purpose, one
 * attack per run, to prove that a virtio-blk back-end (nvme-drv) refuses
 * it and goes on serving.
 *
 *   nvme-drv-hostile [-v] ATTACK SOCKET
 *
 * Each attack connects to SOCKET (again for each of its variants), does
 * what no driver may do, and judges the reaction: an error status where
 * the request can be answered, a stopped device (NEEDS_RESET, no used
 * entry) where the ring itself is broken, a refusal (REPLY_ACK) or a
 * closed connection for bad messages. Then a fresh connection must read a
 * block: the server still serves. One line, "ok ATTACK: ..." or
 * "FAIL ATTACK: ...", exit 0 or 1; 2 for a usage error. --list names the
 * attacks. Nothing here writes to the device: every write sent must be
 * refused, so the disk is unchanged wherever the attacks went. The one
 * exception is clone-table FILE, which writes FILE at sector 0 as a
 * client of a whole disk may: a partition table copied from another
 * disk, whose names the server must then refuse as ambiguous. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/vhu_client.h"
#include "util/log.h"

#define SECTOR VIRTIO_BLK_SECTOR_SIZE
#define PAGE 4096u
#define QSIZE 128
#define DATA_SIZE (1u << 20)	/* per connection: buffers and indirect tables */
#define BUF_SIZE (64u << 10)
#define REPLY_MS 3000
/* virtio 1.2, 2.1: "the device has experienced an error from which it
 * can't recover" */
#define STATUS_NEEDS_RESET 0x40u
#define TABLE_MAX 512

struct env {
	const char *path;
	const char *file;	/* clone-table: what to write */
	struct vhu_client *c;
	const struct vhu_info *in;
	uint32_t blk;		/* logical block size */
	uint64_t capacity;	/* in 512-byte sectors */
	bool ro;
	struct vhu_buf hdr, status, buf, table, pages;
	char why[400];
};

/* One descriptor of a hand-made chain; `next` indexes the same array. */
struct rd {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
	int next;		/* -1: the chain ends */
};

static int failf(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int failf(struct env *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->why, sizeof(e->why), fmt, ap);
	va_end(ap);
	return 1;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void dev_close(struct env *e)
{
	vhu_free(e->c);
	e->c = NULL;
}

/* Connects and negotiates, then (with `queue_size`) starts one queue and
 * carves the buffers. The server takes one front end per device and may
 * not have seen the previous one go yet: a refused connection is retried
 * for a while. */
static int dev_open(struct env *e, unsigned queue_size, uint64_t protocol_off)
{
	struct vhu_opts o = { .protocol_off = protocol_off, .timeout_ms = REPLY_MS };
	int rc = -ECONNRESET;

	dev_close(e);	/* the server serves one front end at a time */
	for (int tries = 0; tries < 50; tries++) {
		if (tries)
			sleep_ms(100);
		rc = vhu_connect(e->path, &e->c);
		if (rc)
			continue;
		rc = vhu_negotiate(e->c, &o);
		if (!rc)
			break;
		dev_close(e);
		if (rc != -ECONNRESET && rc != -EPIPE)
			break;
	}
	if (rc)
		return failf(e, "cannot connect and negotiate: %s", strerror(-rc));
	e->in = vhu_info(e->c);
	if (!e->in->have_config)
		return failf(e, "the back-end offers no configuration space");
	e->capacity = e->in->config.capacity;
	e->blk = e->in->features & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) ? e->in->config.blk_size : SECTOR;
	e->ro = e->in->features & VIRTIO_BIT(VIRTIO_BLK_F_RO);
	if (e->blk < SECTOR || e->blk > BUF_SIZE / 4 || (e->blk & (e->blk - 1)))
		return failf(e, "blk_size %u is not a power of 2 from 512 to 16k", e->blk);
	if (!queue_size)
		return 0;
	rc = vhu_start(e->c, 1, queue_size, DATA_SIZE);
	if (!rc)
		rc = vhu_alloc(e->c, 0, sizeof(struct virtio_blk_outhdr), 16, &e->hdr);
	if (!rc)
		rc = vhu_alloc(e->c, 0, 1, 16, &e->status);
	if (!rc)
		rc = vhu_alloc(e->c, 0, BUF_SIZE, PAGE, &e->buf);
	if (!rc)
		rc = vhu_alloc(e->c, 0, TABLE_MAX * sizeof(struct vring_desc), PAGE, &e->table);
	if (!rc)
		rc = vhu_alloc(e->c, 0, 256 * SECTOR, PAGE, &e->pages);
	if (rc)
		return failf(e, "cannot start the device: %s", strerror(-rc));
	*(uint8_t *)e->status.va = 0xff;	/* what no status is */
	return 0;
}

/* A well-formed request on the library's path; returns the status. */
static int do_io(struct env *e, uint32_t type, uint64_t sector, const struct vhu_buf *data,
		 unsigned ndata)
{
	return vhu_run_one(e->c, 0, type, sector, data, ndata, NULL);
}

static const char *status_name(int st)
{
	switch (st) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case 0xff: return "never written";
	default: return st < 0 ? strerror(-st) : "invalid";
	}
}

/* Reads the first block: the device still serves this connection. */
static int read_ok(struct env *e, const char *after)
{
	struct vhu_buf b = { e->buf.va, e->buf.gpa, e->blk };
	int st = do_io(e, VIRTIO_BLK_T_IN, 0, &b, 1);

	if (st != VIRTIO_BLK_S_OK)
		return failf(e, "after %s, a read of block 0 got %s", after, status_name(st));
	return 0;
}

/* A fresh connection reads a block: the server survived the attack. */
static int probe(struct env *e, const char *after)
{
	int rc;

	if (dev_open(e, QSIZE, 0)) {
		char inner[sizeof(e->why)];

		memcpy(inner, e->why, sizeof(inner));
		return failf(e, "after %s, a fresh connection failed: %s", after, inner);
	}
	rc = read_ok(e, after);
	dev_close(e);
	return rc;
}

/* Expects request `type` to be answered with `want`, leaving the data
 * buffer as it was when the device must not write it. */
static int expect_status(struct env *e, const char *what, uint32_t type, uint64_t sector,
			 uint32_t len, uint8_t want)
{
	struct vhu_buf b = { e->buf.va, e->buf.gpa, len };
	int st;

	memset(e->buf.va, 0x5a, len);
	st = do_io(e, type, sector, &b, len ? 1 : 0);
	if (st != want)
		return failf(e, "%s: status %s, expected %s", what, status_name(st), status_name(want));
	if (want != VIRTIO_BLK_S_OK && type == VIRTIO_BLK_T_IN)
		for (uint32_t i = 0; i < len; i++)
			if (((uint8_t *)e->buf.va)[i] != 0x5a)
				return failf(e, "%s: refused, but the data buffer was written", what);
	return 0;
}

static void set_hdr(struct env *e, uint32_t type, uint64_t sector)
{
	*(struct virtio_blk_outhdr *)e->hdr.va = (struct virtio_blk_outhdr){
		.type = htole32(type), .sector = htole64(sector) };
	*(uint8_t *)e->status.va = 0xff;
}

static struct vring_desc mkdesc(const struct rd *d, uint16_t next)
{
	return (struct vring_desc){
		.addr = htole64(d->gpa),
		.len = htole32(d->len),
		.flags = htole16(d->flags | (d->next >= 0 ? VRING_DESC_F_NEXT : 0)),
		.next = htole16(d->next >= 0 ? next : 0),
	};
}

/* Writes a chain into an indirect table (links are table indices) and
 * returns the descriptor that points at it. */
static struct rd table_of(struct env *e, const struct rd *d, unsigned n)
{
	struct vring_desc *t = e->table.va;

	for (unsigned i = 0; i < n; i++)
		t[i] = mkdesc(&d[i], (uint16_t)d[i].next);
	return (struct rd){ e->table.gpa, n * (uint32_t)sizeof(*t), VRING_DESC_F_INDIRECT, -1 };
}

/* Puts a hand-made chain in the ring (links become descriptor ids) and
 * kicks. */
static int raw_submit(struct env *e, const struct rd *d, unsigned n)
{
	uint16_t ids[TABLE_MAX];
	struct vhu_ring_view v;
	int rc;

	if (n > TABLE_MAX || vhu_ring_view(e->c, 0, &v))
		return failf(e, "internal: chain of %u", n);
	rc = vhu_raw_take(e->c, 0, n, ids, NULL);
	if (rc)
		return failf(e, "internal: no %u free descriptors: %s", n, strerror(-rc));
	for (unsigned i = 0; i < n; i++)
		v.desc[ids[i]] = mkdesc(&d[i], d[i].next >= 0 ? ids[d[i].next] : 0);
	if ((rc = vhu_raw_avail(e->c, 0, ids[0])) || (rc = vhu_kick(e->c, 0)))
		return failf(e, "internal: cannot publish: %s", strerror(-rc));
	return 0;
}

/* The ring is broken: the device must stop (NEEDS_RESET, or the
 * connection closed) without putting anything in the used ring or
 * writing the status byte. */
static int expect_stopped(struct env *e, const char *what)
{
	const char *how = NULL;
	struct vhu_ring_view v;
	uint64_t st = 0;
	int rc;

	vhu_ring_view(e->c, 0, &v);
	if (!(e->in->protocol & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_STATUS))) {
		sleep_ms(500);	/* no NEEDS_RESET to see: give it time to misbehave */
		how = "no completion";
	}
	for (int i = 0; i < 150 && !how; i++) {
		rc = vhu_msg(e->c, VHOST_USER_GET_STATUS, NULL, 0, NULL, 0, &st, sizeof(st));
		if (rc == -ECONNRESET || rc == -EPIPE)
			how = "connection closed";
		else if (rc)
			return failf(e, "%s: GET_STATUS failed: %s", what, strerror(-rc));
		else if (st & STATUS_NEEDS_RESET)
			how = "NEEDS_RESET";
		else
			sleep_ms(20);
	}
	if (!how)
		return failf(e, "%s: the device went on (status %#" PRIx64 ", no NEEDS_RESET)", what,
			     st);
	if (le16toh(__atomic_load_n(&v.used->idx, __ATOMIC_ACQUIRE)) != 0)
		return failf(e, "%s: %s, but the device used the broken chain", what, how);
	if (*(volatile uint8_t *)e->status.va != 0xff)
		return failf(e, "%s: %s, but the device wrote the status byte", what, how);
	return 0;
}

/* One broken chain per fresh connection, then the fresh-connection read. */
typedef int (*chain_fn)(struct env *e, struct rd *d, unsigned *n);

static int broken_chain(struct env *e, const char *what, chain_fn build, unsigned qsize,
			uint64_t protocol_off)
{
	struct rd d[TABLE_MAX];
	unsigned n = 0;
	int rc;

	if (dev_open(e, qsize, protocol_off))
		return 1;
	rc = build(e, d, &n);
	if (!rc)
		rc = raw_submit(e, d, n);
	if (!rc)
		rc = expect_stopped(e, what);
	if (rc)
		return rc;
	return probe(e, what);
}

/* header, data, status: a read of one block at sector 0. */
static unsigned read_chain(struct env *e, struct rd *d, uint64_t data_gpa, uint32_t data_len)
{
	set_hdr(e, VIRTIO_BLK_T_IN, 0);
	d[0] = (struct rd){ e->hdr.gpa, sizeof(struct virtio_blk_outhdr), 0, 1 };
	d[1] = (struct rd){ data_gpa, data_len, VRING_DESC_F_WRITE, 2 };
	d[2] = (struct rd){ e->status.gpa, 1, VRING_DESC_F_WRITE, -1 };
	return 3;
}

static int ch_data_below(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, 0x1000, e->blk);
	return 0;
}

static int ch_data_above(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, VHU_GPA_BASE + (1ull << 40), e->blk);
	return 0;
}

static int ch_data_wraps(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, UINT64_MAX - 511, e->blk);
	return 0;
}

/* The last bytes of a region we know the end of, and past it. */
static int ch_data_straddles(struct env *e, struct rd *d, unsigned *n)
{
	struct vhu_buf b;
	unsigned idx;
	int rc = vhu_add_region(e->c, PAGE, 0, &idx);

	if (!rc)
		rc = vhu_alloc(e->c, idx, PAGE, PAGE, &b);
	if (rc)
		return failf(e, "cannot add a one-page region: %s", strerror(-rc));
	*n = read_chain(e, d, b.gpa + PAGE - SECTOR, e->blk < 2 * SECTOR ? 2 * SECTOR : e->blk);
	return 0;
}

/* The status byte outside: a device that wrote it would write anywhere. */
static int ch_status_outside(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, e->buf.gpa, e->blk);
	d[2].gpa = 0x2000;
	return 0;
}

static int ch_header_outside(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, e->buf.gpa, e->blk);
	d[0].gpa = VHU_GPA_BASE - 16;
	return 0;
}

static int ch_table_outside(struct env *e, struct rd *d, unsigned *n)
{
	d[0] = (struct rd){ 0x3000, 3 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, -1 };
	*n = 1;
	return 0;
}

static int atk_desc_outside(struct env *e)
{
	static const struct {
		const char *what;
		chain_fn fn;
	} v[] = {
		{ "data buffer below memory", ch_data_below },
		{ "data buffer far above memory", ch_data_above },
		{ "data buffer wrapping 2^64", ch_data_wraps },
		{ "data buffer straddling a region's end", ch_data_straddles },
		{ "status byte outside memory", ch_status_outside },
		{ "header outside memory", ch_header_outside },
		{ "indirect table outside memory", ch_table_outside },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (broken_chain(e, v[i].what, v[i].fn, QSIZE, 0))
			return 1;
	snprintf(e->why, sizeof(e->why), "%zu chains: device stopped each time, fresh connection reads",
		 sizeof(v) / sizeof(v[0]));
	return 0;
}

static int ch_loop_self(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, e->buf.gpa, e->blk);
	d[1].next = 1;
	return 0;
}

/* header -> data -> header: every buffer device-readable, so only the
 * loop is wrong. */
static int ch_loop_two(struct env *e, struct rd *d, unsigned *n)
{
	set_hdr(e, VIRTIO_BLK_T_OUT, 0);
	d[0] = (struct rd){ e->hdr.gpa, sizeof(struct virtio_blk_outhdr), 0, 1 };
	d[1] = (struct rd){ e->buf.gpa, e->blk, 0, 0 };
	*n = 2;
	return 0;
}

static int ch_loop_indirect(struct env *e, struct rd *d, unsigned *n)
{
	struct rd t[3];

	read_chain(e, t, e->buf.gpa, e->blk);
	t[2].next = 1;	/* status back to data: writable to writable, legal but for the loop */
	d[0] = table_of(e, t, 3);
	*n = 1;
	return 0;
}

static int atk_desc_loop(struct env *e)
{
	if (broken_chain(e, "a descriptor linked to itself", ch_loop_self, QSIZE, 0) ||
	    broken_chain(e, "a two-descriptor cycle", ch_loop_two, QSIZE, 0) ||
	    broken_chain(e, "a cycle in an indirect table", ch_loop_indirect, QSIZE, 0))
		return 1;
	snprintf(e->why, sizeof(e->why), "direct and indirect loops: device stopped, fresh connection reads");
	return 0;
}

/* header, `ndata` 512-byte writable buffers, status. */
static unsigned long_read(struct env *e, struct rd *d, unsigned ndata)
{
	set_hdr(e, VIRTIO_BLK_T_IN, 0);
	d[0] = (struct rd){ e->hdr.gpa, sizeof(struct virtio_blk_outhdr), 0, 1 };
	for (unsigned i = 1; i <= ndata; i++)
		d[i] = (struct rd){ e->pages.gpa + (uint64_t)(i - 1) % 256 * SECTOR, SECTOR,
				    VRING_DESC_F_WRITE, (int)i + 1 };
	d[ndata + 1] = (struct rd){ e->status.gpa, 1, VRING_DESC_F_WRITE, -1 };
	return ndata + 2;
}

/* One data buffer more than seg_max, in a queue big enough to hold it. */
static int ch_over_seg_max(struct env *e, struct rd *d, unsigned *n)
{
	uint32_t seg_max = e->in->config.seg_max;

	if (!(e->in->features & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX)) || !seg_max ||
	    seg_max + 3 > TABLE_MAX)
		return failf(e, "seg_max %u not offered or too large to exceed here", seg_max);
	*n = long_read(e, d, seg_max + 1);
	return 0;
}

/* An indirect table longer than the queue (2.7.5.3.1). */
static int ch_over_qsize(struct env *e, struct rd *d, unsigned *n)
{
	struct rd t[TABLE_MAX];

	d[0] = table_of(e, t, long_read(e, t, 64));
	*n = 1;
	return 0;
}

static int atk_long_chain(struct env *e)
{
	if (broken_chain(e, "chain of seg_max + 1 data buffers", ch_over_seg_max, 512, 0) ||
	    broken_chain(e, "indirect table of 66 descriptors in a queue of 64", ch_over_qsize, 64, 0))
		return 1;
	snprintf(e->why, sizeof(e->why), "seg_max + 3 descriptors and an indirect table longer than "
		 "the queue: device stopped, fresh connection reads");
	return 0;
}

/* A write whose every buffer, the status byte's too, is device-readable. */
static int ch_status_readable_out(struct env *e, struct rd *d, unsigned *n)
{
	memset(e->buf.va, 0xee, e->blk);
	set_hdr(e, VIRTIO_BLK_T_OUT, 0);
	d[0] = (struct rd){ e->hdr.gpa, sizeof(struct virtio_blk_outhdr), 0, 1 };
	d[1] = (struct rd){ e->buf.gpa, e->blk, 0, 2 };
	d[2] = (struct rd){ e->status.gpa, 1, 0, -1 };
	*n = 3;
	return 0;
}

/* A read whose status byte follows the writable data as readable. */
static int ch_status_readable_in(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, e->buf.gpa, e->blk);
	d[2].flags = 0;
	return 0;
}

static int atk_status_readable(struct env *e)
{
	if (broken_chain(e, "write with a readable status byte", ch_status_readable_out, QSIZE, 0) ||
	    broken_chain(e, "read with a readable status byte after the data", ch_status_readable_in,
			 QSIZE, 0))
		return 1;
	snprintf(e->why, sizeof(e->why), "status byte in a device-readable buffer: device stopped, "
		 "nothing written, fresh connection reads");
	return 0;
}

static int atk_past_end(struct env *e)
{
	uint64_t end;
	uint32_t spb;

	if (dev_open(e, QSIZE, 0))
		return 1;
	end = e->capacity;
	spb = e->blk / SECTOR;
	if (expect_status(e, "read at the end", VIRTIO_BLK_T_IN, end, e->blk, VIRTIO_BLK_S_IOERR) ||
	    expect_status(e, "read across the end", VIRTIO_BLK_T_IN, end - spb, 2 * e->blk,
			  VIRTIO_BLK_S_IOERR) ||
	    expect_status(e, "read far beyond the end", VIRTIO_BLK_T_IN, UINT64_MAX / SECTOR - spb + 1,
			  e->blk, VIRTIO_BLK_S_IOERR) ||
	    expect_status(e, "read at sector 2^64 - 1", VIRTIO_BLK_T_IN, UINT64_MAX, e->blk,
			  VIRTIO_BLK_S_IOERR))
		return 1;
	/* On a writable device the block after the end is someone else's. */
	if (!e->ro &&
	    (expect_status(e, "write at the end", VIRTIO_BLK_T_OUT, end, e->blk, VIRTIO_BLK_S_IOERR) ||
	     expect_status(e, "write across the end", VIRTIO_BLK_T_OUT, end - spb, 2 * e->blk,
			   VIRTIO_BLK_S_IOERR)))
		return 1;
	if (read_ok(e, "I/O past the end") || probe(e, "I/O past the end"))
		return 1;
	snprintf(e->why, sizeof(e->why), "%s past the end (capacity %" PRIu64 "): IOERR, "
		 "nothing read into the buffer, the device goes on", e->ro ? "reads" : "reads and writes",
		 e->capacity);
	return 0;
}

static int atk_partial_lba(struct env *e)
{
	if (dev_open(e, QSIZE, 0))
		return 1;
	if (e->blk == SECTOR)
		return failf(e, "blk_size is 512: needs a device with larger logical blocks");
	if (expect_status(e, "read of 512 bytes", VIRTIO_BLK_T_IN, 0, SECTOR, VIRTIO_BLK_S_IOERR) ||
	    expect_status(e, "read of a block and 512 bytes", VIRTIO_BLK_T_IN, 0, e->blk + SECTOR,
			  VIRTIO_BLK_S_IOERR) ||
	    expect_status(e, "read of a block at sector 1", VIRTIO_BLK_T_IN, 1, e->blk,
			  VIRTIO_BLK_S_IOERR) ||
	    expect_status(e, "write of 512 bytes", VIRTIO_BLK_T_OUT, 0, SECTOR, VIRTIO_BLK_S_IOERR) ||
	    read_ok(e, "partial blocks") || probe(e, "partial blocks"))
		return 1;
	snprintf(e->why, sizeof(e->why), "I/O not a whole number of %u-byte blocks or not aligned "
		 "to one: IOERR, the device goes on", e->blk);
	return 0;
}

static int ch_zero_len(struct env *e, struct rd *d, unsigned *n)
{
	*n = read_chain(e, d, e->buf.gpa, 0);
	return 0;
}

static int atk_zero_length(struct env *e)
{
	if (dev_open(e, QSIZE, 0))
		return 1;
	if (expect_status(e, "read without data", VIRTIO_BLK_T_IN, 0, 0, VIRTIO_BLK_S_IOERR) ||
	    read_ok(e, "a read without data"))
		return 1;
	if (broken_chain(e, "a zero-length data buffer", ch_zero_len, QSIZE, 0))
		return 1;
	snprintf(e->why, sizeof(e->why), "read without data: IOERR, the device goes on; "
		 "zero-length buffer: device stopped, fresh connection reads");
	return 0;
}

static int atk_avail_jump(struct env *e)
{
	int rc;

	if (dev_open(e, QSIZE, 0))
		return 1;
	rc = vhu_raw_set_avail_idx(e->c, 0, QSIZE + 1);
	if (!rc)
		rc = vhu_kick(e->c, 0);
	if (rc)
		return failf(e, "internal: %s", strerror(-rc));
	if (expect_stopped(e, "avail->idx moved by the queue size + 1") ||
	    probe(e, "an avail index jump"))
		return 1;
	snprintf(e->why, sizeof(e->why), "avail->idx %u entries ahead in a queue of %u: device "
		 "stopped, fresh connection reads", QSIZE + 1, QSIZE);
	return 0;
}

static int ch_indirect_next(struct env *e, struct rd *d, unsigned *n)
{
	struct rd t[3];

	read_chain(e, t, e->buf.gpa, e->blk);
	t[1].next = -1;
	d[0] = table_of(e, t, 2);	/* header and data */
	d[0].next = 1;
	d[1] = t[2];			/* status, chained after the table */
	*n = 2;
	return 0;
}

static int atk_indirect_next(struct env *e)
{
	if (broken_chain(e, "indirect descriptor with NEXT", ch_indirect_next, QSIZE, 0))
		return 1;
	snprintf(e->why, sizeof(e->why), "INDIRECT with NEXT: device stopped, fresh connection reads");
	return 0;
}

static int atk_ro_write(struct env *e)
{
	struct virtio_blk_discard_write_zeroes *r;
	struct vhu_buf b;
	static const uint32_t types[] = { VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES };

	if (dev_open(e, QSIZE, 0))
		return 1;
	if (!e->ro)
		return failf(e, "the device does not offer VIRTIO_BLK_F_RO: needs a read-only client");
	if (expect_status(e, "OUT", VIRTIO_BLK_T_OUT, 0, e->blk, VIRTIO_BLK_S_IOERR))
		return 1;
	r = e->table.va;
	b = (struct vhu_buf){ e->table.va, e->table.gpa, sizeof(*r) };
	for (size_t i = 0; i < 2; i++) {
		int st;

		*r = (struct virtio_blk_discard_write_zeroes){ .sector = 0,
			.num_sectors = htole32(e->blk / SECTOR) };
		st = do_io(e, types[i], 0, &b, 1);
		if (st != VIRTIO_BLK_S_IOERR)
			return failf(e, "%s: status %s, expected IOERR",
				     i ? "WRITE_ZEROES" : "DISCARD", status_name(st));
	}
	if (read_ok(e, "writes to a read-only device"))
		return 1;
	snprintf(e->why, sizeof(e->why), "OUT, DISCARD and WRITE_ZEROES on a read-only device: "
		 "IOERR, reads go on");
	return 0;
}

/* The connection must end: reads until EOF, at most REPLY_MS. */
static int expect_closed(struct env *e, const char *what)
{
	struct vhost_user_msg m;
	int rc;

	do
		rc = vhu_recv_raw(e->c, &m, REPLY_MS);
	while (rc >= 0);
	if (rc == -ECONNRESET || rc == -EPIPE)
		return 0;
	return failf(e, "%s: the connection stayed open (%s)", what, strerror(-rc));
}

static int send_hdr(struct env *e, uint32_t request, uint32_t flags, uint32_t size,
		    const void *payload, size_t len, const int *fds, unsigned nfds)
{
	struct vhost_user_hdr h = { request, VHOST_USER_VERSION | flags, size };
	int rc = vhu_send_raw(e->c, &h, payload, len, fds, nfds);

	/* A back-end that hangs up mid-message is judged by expect_closed. */
	return rc == -EPIPE || rc == -ECONNRESET ? 0 : rc;
}

static int atk_msg_unknown(struct env *e)
{
	struct vhost_user_msg m;
	uint64_t zero = 0, f;
	int rc;

	if (dev_open(e, QSIZE, 0))
		return 1;
	if (!(e->in->protocol & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK)))
		return failf(e, "REPLY_ACK not negotiated");
	rc = send_hdr(e, 999, VHOST_USER_NEED_REPLY_MASK, 0, NULL, 0, NULL, 0);
	if (!rc)
		rc = vhu_recv_raw(e->c, &m, REPLY_MS);
	if (rc < 0)
		return failf(e, "request 999 with NEED_REPLY: no reply (%s)", strerror(-rc));
	if (m.hdr.request != 999 || !(m.hdr.flags & VHOST_USER_REPLY_MASK) ||
	    m.hdr.size != sizeof(uint64_t))
		return failf(e, "request 999: malformed reply (request %u flags %#x size %u)",
			     m.hdr.request, m.hdr.flags, m.hdr.size);
	if (!m.payload.u64)
		return failf(e, "request 999: REPLY_ACK says success");
	/* Without NEED_REPLY, and with a payload: ignored, nothing owed. */
	if (send_hdr(e, 777, 0, sizeof(zero), &zero, sizeof(zero), NULL, 0))
		return failf(e, "cannot send request 777");
	rc = vhu_msg(e->c, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0, &f, sizeof(f));
	if (rc)
		return failf(e, "GET_FEATURES after unknown requests: %s", strerror(-rc));
	if (read_ok(e, "unknown requests"))
		return 1;
	snprintf(e->why, sizeof(e->why), "unknown request with NEED_REPLY: REPLY_ACK %" PRIu64
		 "; without: ignored; the connection goes on", m.payload.u64);
	return 0;
}

static int atk_msg_oversize(struct env *e)
{
	static const uint32_t sizes[] = { UINT32_MAX, sizeof(union vhost_user_payload) + 1 };
	static uint8_t junk[sizeof(union vhost_user_payload) + 1];

	for (size_t i = 0; i < 2; i++) {
		size_t len = sizes[i] <= sizeof(junk) ? sizes[i] : 0;

		if (dev_open(e, 0, 0))
			return 1;
		if (send_hdr(e, VHOST_USER_SET_FEATURES, 0, sizes[i], junk, len, NULL, 0))
			return failf(e, "cannot send");
		if (expect_closed(e, sizes[i] == UINT32_MAX ? "payload size 2^32 - 1"
							    : "payload one byte over the largest"))
			return 1;
		dev_close(e);
	}
	if (probe(e, "oversize messages"))
		return 1;
	snprintf(e->why, sizeof(e->why), "payload sizes 2^32 - 1 and %zu: connection closed, "
		 "fresh connection reads", sizeof(union vhost_user_payload) + 1);
	return 0;
}

/* Returns a one-page memfd, or -1 (reported). */
static int memfd_page(struct env *e)
{
	int fd = memfd_create("hostile", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, PAGE)) {
		if (fd >= 0)
			close(fd);
		return -failf(e, "memfd: %s", strerror(errno));
	}
	return fd;
}

static int atk_msg_truncated(struct env *e)
{
	struct vhost_user_hdr h = { VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8 };
	struct vhost_user_mem_table t = { .nregions = 1 };
	uint8_t part[sizeof(h) + 4] = { 0 };
	int fd;

	/* Half a header; a header and half its payload; a memory table cut
	 * short with its fd attached. Each then hangs up. */
	if (dev_open(e, 0, 0))
		return 1;
	memcpy(part, &h, sizeof(h));
	if (send(vhu_sock_fd(e->c), part, 6, MSG_NOSIGNAL) != 6)
		return failf(e, "cannot send: %s", strerror(errno));
	dev_close(e);
	if (dev_open(e, 0, 0))
		return 1;
	if (send(vhu_sock_fd(e->c), part, sizeof(part), MSG_NOSIGNAL) != (ssize_t)sizeof(part))
		return failf(e, "cannot send: %s", strerror(errno));
	dev_close(e);
	if (dev_open(e, 0, 0) || (fd = memfd_page(e)) < 0)
		return 1;
	t.regions[0] = (struct vhost_user_mem_region){ VHU_GPA_BASE, PAGE, 0x10000000, 0 };
	if (send_hdr(e, VHOST_USER_SET_MEM_TABLE, 0, 8 + sizeof(t.regions[0]), &t, 20, &fd, 1)) {
		close(fd);
		return failf(e, "cannot send");
	}
	close(fd);
	if (probe(e, "truncated messages"))
		return 1;
	snprintf(e->why, sizeof(e->why), "6-byte header, half a payload, half a memory table with "
		 "its fd, each then closed: fresh connection reads");
	return 0;
}

/* SET_MEM_TABLE claiming `nregions` with `nfds` fds: refused (REPLY_ACK
 * error) or the connection closed. */
static int mem_table_mismatch(struct env *e, uint32_t nregions, unsigned nfds)
{
	struct vhost_user_mem_table t = { .nregions = nregions };
	struct vhost_user_msg m;
	int fds[VHOST_USER_MAX_FDS];
	uint32_t n = nregions < VHOST_USER_MEM_REGIONS_MAX ? nregions : VHOST_USER_MEM_REGIONS_MAX;
	char what[64];
	int rc;

	snprintf(what, sizeof(what), "SET_MEM_TABLE of %u regions with %u fds", nregions, nfds);
	if (dev_open(e, 0, 0))
		return 1;
	for (unsigned i = 0; i < nfds; i++) {
		if ((fds[i] = memfd_page(e)) < 0) {
			while (i-- > 0)
				close(fds[i]);
			return 1;
		}
	}
	for (uint32_t i = 0; i < n; i++)
		t.regions[i] = (struct vhost_user_mem_region){ VHU_GPA_BASE + i * PAGE, PAGE,
							       0x10000000 + i * PAGE, 0 };
	rc = send_hdr(e, VHOST_USER_SET_MEM_TABLE, VHOST_USER_NEED_REPLY_MASK, 8 + n * sizeof(t.regions[0]),
		      &t, 8 + n * sizeof(t.regions[0]), fds, nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (rc)
		return failf(e, "%s: cannot send: %s", what, strerror(-rc));
	rc = vhu_recv_raw(e->c, &m, REPLY_MS);
	if (rc == -ECONNRESET || rc == -EPIPE) {
		dev_close(e);
		return 0;
	}
	if (rc < 0)
		return failf(e, "%s: neither refused nor closed (%s)", what, strerror(-rc));
	if (m.hdr.request == VHOST_USER_SET_MEM_TABLE && m.hdr.size == 8 && m.payload.u64) {
		dev_close(e);
		return 0;
	}
	return failf(e, "%s: accepted", what);
}

static int atk_msg_mem_table(struct env *e)
{
	if (mem_table_mismatch(e, 2, 1) || mem_table_mismatch(e, 1, 2) ||
	    mem_table_mismatch(e, 1, 0) || mem_table_mismatch(e, 9, 8) ||
	    probe(e, "mismatched memory tables"))
		return 1;
	snprintf(e->why, sizeof(e->why), "nregions 2/1/1/9 with 1/2/0/8 fds: refused, "
		 "fresh connection reads");
	return 0;
}

/* Moves queue 0's rings with SET_VRING_ADDR and restarts it with a new
 * kick fd: the back-end must refuse one of the two (REPLY_ACK) or close. */
static int ring_move(struct env *e, const char *what, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vhost_user_vring_addr a = { .index = 0, .desc_user_addr = desc,
					   .used_user_addr = used, .avail_user_addr = avail };
	struct vhu_ring_view v;
	uint64_t idx = 0;
	int rc;

	vhu_ring_view(e->c, 0, &v);
	rc = vhu_msg(e->c, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0);
	if (!rc)
		rc = vhu_msg(e->c, VHOST_USER_SET_VRING_KICK, &idx, sizeof(idx), &v.kick_fd, 1, NULL, 0);
	if (rc == -EIO || rc == -ECONNRESET || rc == -EPIPE)
		return 0;
	return failf(e, "%s: %s", what, rc ? strerror(-rc) : "accepted");
}

static int atk_msg_ring_outside(struct env *e)
{
	struct vhu_ring_view v;
	struct vhu_buf b;
	unsigned idx;
	int rc;

	if (dev_open(e, QSIZE, 0))
		return 1;
	vhu_ring_view(e->c, 0, &v);
	if (ring_move(e, "descriptor table outside memory", 0x1000, (uintptr_t)v.avail,
		      (uintptr_t)v.used) ||
	    probe(e, "a descriptor table outside memory"))
		return 1;
	if (dev_open(e, QSIZE, 0))
		return 1;
	vhu_ring_view(e->c, 0, &v);
	if (ring_move(e, "used ring outside memory", (uintptr_t)v.desc, (uintptr_t)v.avail,
		      UINT64_MAX - 64) ||
	    probe(e, "a used ring outside memory"))
		return 1;
	/* Starts in a one-page region, ends past it. */
	if (dev_open(e, QSIZE, 0))
		return 1;
	rc = vhu_add_region(e->c, PAGE, 0, &idx);
	if (!rc)
		rc = vhu_alloc(e->c, idx, PAGE, PAGE, &b);
	if (rc)
		return failf(e, "cannot add a one-page region: %s", strerror(-rc));
	vhu_ring_view(e->c, 0, &v);
	if (ring_move(e, "descriptor table running past its region", (uintptr_t)b.va + PAGE - 64,
		      (uintptr_t)v.avail, (uintptr_t)v.used) ||
	    probe(e, "a descriptor table running past its region"))
		return 1;
	snprintf(e->why, sizeof(e->why), "rings outside memory or running past a region: refused, "
		 "fresh connection reads");
	return 0;
}

/* GET_CONFIG for bytes the space does not have: the reply must be the
 * spec's error, an empty payload ("zero length of payload"). */
static int config_refused(struct env *e, uint32_t offset, uint32_t size)
{
	struct vhost_user_config q = { .offset = offset, .size = size };
	struct vhost_user_msg m;
	int rc;

	rc = send_hdr(e, VHOST_USER_GET_CONFIG, 0, VHOST_USER_CONFIG_HDR_SIZE + size, &q,
		      VHOST_USER_CONFIG_HDR_SIZE + size, NULL, 0);
	if (!rc)
		rc = vhu_recv_raw(e->c, &m, REPLY_MS);
	if (rc < 0)
		return failf(e, "GET_CONFIG offset %u size %u: no reply (%s)", offset, size,
			     strerror(-rc));
	if (m.hdr.request != VHOST_USER_GET_CONFIG || m.hdr.size != 0)
		return failf(e, "GET_CONFIG offset %u size %u: reply of %u bytes, not the empty "
			     "error reply", offset, size, m.hdr.size);
	return 0;
}

static int atk_msg_config(struct env *e)
{
	struct vhost_user_config q = { .offset = 0, .size = 100 };
	uint64_t f;
	int rc;

	if (dev_open(e, QSIZE, 0))
		return 1;
	if (config_refused(e, UINT32_MAX - 15, 16) || config_refused(e, 0x10000, 4) ||
	    config_refused(e, sizeof(struct virtio_blk_config) - 4, 8))
		return 1;
	rc = vhu_msg(e->c, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0, &f, sizeof(f));
	if (rc)
		return failf(e, "GET_FEATURES after bad GET_CONFIGs: %s", strerror(-rc));
	if (read_ok(e, "bad GET_CONFIGs"))
		return 1;
	/* A size field that disagrees with the message length: malformed. */
	if (send_hdr(e, VHOST_USER_GET_CONFIG, 0, VHOST_USER_CONFIG_HDR_SIZE + 16, &q,
		     VHOST_USER_CONFIG_HDR_SIZE + 16, NULL, 0) ||
	    expect_closed(e, "GET_CONFIG whose size field disagrees with its length") ||
	    probe(e, "bad GET_CONFIGs"))
		return 1;
	snprintf(e->why, sizeof(e->why), "offsets past the config space: empty error reply, the "
		 "connection goes on; inconsistent sizes: closed; fresh connection reads");
	return 0;
}

/* Past GET_MAX_MEM_SLOTS, by ADD_MEM_REG and by SET_MEM_TABLE. */
static int atk_ds_max(struct env *e)
{
	struct vhost_user_mem_region_msg one = { 0 };
	struct vhost_user_mem_table t = { 0 };
	int fds[VHOST_USER_MAX_FDS];
	uint64_t slots;
	unsigned idx, n;
	int rc;

	if (dev_open(e, QSIZE, 0))
		return 1;
	slots = e->in->max_mem_slots;
	if (!slots || slots >= VHOST_USER_MEM_REGIONS_MAX)
		return failf(e, "GET_MAX_MEM_SLOTS is %" PRIu64 ": needs a client with --ds-max 1..7",
			     slots);
	for (unsigned k = 1; k < slots; k++)
		if ((rc = vhu_add_region(e->c, PAGE, 0, &idx)))
			return failf(e, "region %u of %" PRIu64 " refused: %s", k + 1, slots,
				     strerror(-rc));
	if ((fds[0] = memfd_page(e)) < 0)
		return 1;
	one.region = (struct vhost_user_mem_region){ 1ull << 44, PAGE, 0x10000000, 0 };
	rc = vhu_msg(e->c, VHOST_USER_ADD_MEM_REG, &one, sizeof(one), fds, 1, NULL, 0);
	close(fds[0]);
	if (rc != -EIO)
		return failf(e, "ADD_MEM_REG of region %" PRIu64 " with %" PRIu64 " slots: %s",
			     slots + 1, slots, rc ? strerror(-rc) : "accepted");
	n = (unsigned)slots + 1;
	for (unsigned i = 0; i < n; i++) {
		if ((fds[i] = memfd_page(e)) < 0) {
			while (i-- > 0)
				close(fds[i]);
			return 1;
		}
		t.regions[i] = (struct vhost_user_mem_region){ (1ull << 44) + i * PAGE, PAGE,
							       0x10000000 + i * PAGE, 0 };
	}
	t.nregions = n;
	rc = vhu_msg(e->c, VHOST_USER_SET_MEM_TABLE, &t, 8 + n * (uint32_t)sizeof(t.regions[0]), fds,
		     n, NULL, 0);
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	if (rc != -EIO)
		return failf(e, "SET_MEM_TABLE of %u regions with %" PRIu64 " slots: %s", n, slots,
			     rc ? strerror(-rc) : "accepted");
	if (read_ok(e, "regions past ds-max") || probe(e, "regions past ds-max"))
		return 1;
	snprintf(e->why, sizeof(e->why), "%" PRIu64 " regions taken; ADD_MEM_REG and SET_MEM_TABLE "
		 "past them: REPLY_ACK error, the memory as before, reads go on", slots);
	return 0;
}

/* Without CONFIGURE_MEM_SLOTS a second region comes as a whole new
 * SET_MEM_TABLE while the ring runs: the back-end must find its rings in
 * the new mappings (it crashed on the old ones before). */
static int atk_mem_table_live(struct env *e)
{
	unsigned idx;
	int rc;

	if (dev_open(e, QSIZE, VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)))
		return 1;
	if (read_ok(e, "start"))
		return 1;
	rc = vhu_add_region(e->c, PAGE, 0, &idx);
	if (rc)
		return failf(e, "SET_MEM_TABLE with a second region: %s", strerror(-rc));
	if (read_ok(e, "a new memory table under running rings") ||
	    probe(e, "a new memory table under running rings"))
		return 1;
	snprintf(e->why, sizeof(e->why), "a new SET_MEM_TABLE under running rings: reads go on");
	return 0;
}

/* The call fd a front end hands over may be anything it can send: a pipe
 * whose read end it closed makes the server's next call signal raise
 * SIGPIPE, whose default action would end the server for every client.
 * The read must complete (the used ring is watched here, as no call will
 * come) and a fresh connection be served. */
static int atk_call_pipe(struct env *e)
{
	struct vhu_buf b;
	struct vhu_done d = { 0 };
	uint64_t idx = 0;
	int p[2], rc, token;

	if (dev_open(e, QSIZE, 0))
		return 1;
	if (pipe(p) != 0)
		return failf(e, "pipe: %s", strerror(errno));
	close(p[0]);
	rc = vhu_msg(e->c, VHOST_USER_SET_VRING_CALL, &idx, sizeof(idx), &p[1], 1, NULL, 0);
	close(p[1]);
	if (rc == -EIO) {
		/* Refusing such a call fd is as good as surviving it. */
		if (probe(e, "a pipe refused as call fd"))
			return 1;
		snprintf(e->why, sizeof(e->why), "a pipe as call fd refused; the server serves");
		return 0;
	}
	if (rc)
		return failf(e, "SET_VRING_CALL with a pipe: %s", strerror(-rc));
	b = (struct vhu_buf){ e->buf.va, e->buf.gpa, e->blk };	/* carved by dev_open */
	{
		const struct vhu_req r = { .type = VIRTIO_BLK_T_IN, .data = &b, .ndata = 1,
					   .priv = &token };

		if ((rc = vhu_submit(e->c, 0, &r)) || (rc = vhu_kick(e->c, 0)))
			return failf(e, "submitting a read: %s", strerror(-rc));
	}
	for (unsigned ms = 0; ms < REPLY_MS && (rc = vhu_reap(e->c, 0, &d, 1)) == 0; ms += 10)
		sleep_ms(10);
	if (rc != 1 || d.status != VIRTIO_BLK_S_OK) {
		struct vhu_ring_view v = { 0 };

		vhu_ring_view(e->c, 0, &v);
		return failf(e, "a read signalled through a pipe with no reader: %s (avail idx %u, "
			     "used idx %u, %u in flight)",
			     rc == 1 ? status_name(d.status) : rc ? strerror(-rc) : "no completion",
			     v.avail ? le16toh(v.avail->idx) : 0, v.used ? le16toh(v.used->idx) : 0,
			     vhu_inflight(e->c, 0));
	}
	if (probe(e, "a call fd that is a pipe with no reader"))
		return 1;
	snprintf(e->why, sizeof(e->why), "a call fd that is a pipe with no reader: the read "
		 "completes, the server goes on (SIGPIPE ignored)");
	return 0;
}

/* A whole-disk client writes another disk's partition table (FILE, from
 * sector 0) onto its own disk, so that a partition UUID or label is on two
 * disks. The write is allowed; what must fail comes after a restart: the
 * copied names are refused as ambiguous (t-clients-hostile.sh). */
static int atk_clone_table(struct env *e)
{
	uint64_t sector = 0;
	FILE *f;
	size_t n;
	int st;

	if (!e->file)
		return failf(e, "clone-table needs FILE, the table to write");
	f = fopen(e->file, "rb");
	if (!f)
		return failf(e, "%s: %s", e->file, strerror(errno));
	if (dev_open(e, QSIZE, 0)) {
		fclose(f);
		return 1;
	}
	while ((n = fread(e->buf.va, 1, BUF_SIZE, f)) > 0) {
		struct vhu_buf b = { e->buf.va, e->buf.gpa, 0 };

		/* A short tail is padded with zeroes to a whole block. */
		b.len = (uint32_t)((n + e->blk - 1) / e->blk * e->blk);
		memset((char *)e->buf.va + n, 0, b.len - n);
		st = do_io(e, VIRTIO_BLK_T_OUT, sector, &b, 1);
		if (st != VIRTIO_BLK_S_OK) {
			fclose(f);
			return failf(e, "write at sector %" PRIu64 ": %s", sector, status_name(st));
		}
		sector += b.len / SECTOR;
	}
	fclose(f);
	snprintf(e->why, sizeof(e->why), "wrote %" PRIu64 " sectors of %s from sector 0", sector,
		 e->file);
	return 0;
}

static const struct attack {
	const char *name;
	int (*run)(struct env *e);
	const char *what;
} attacks[] = {
	{ "desc-outside", atk_desc_outside,
	  "buffers, status byte, header, indirect table outside the memory regions" },
	{ "desc-loop", atk_desc_loop, "descriptor loops, direct and in an indirect table" },
	{ "long-chain", atk_long_chain, "more buffers than seg_max, an indirect table longer than the queue" },
	{ "status-readable", atk_status_readable, "the status byte in a device-readable buffer" },
	{ "past-end", atk_past_end, "reads (and writes, if writable) at and across the end" },
	{ "partial-lba", atk_partial_lba, "I/O not a whole logical block (needs blk_size > 512)" },
	{ "zero-length", atk_zero_length, "a read without data; a zero-length buffer" },
	{ "avail-jump", atk_avail_jump, "avail->idx jumping more than the queue size" },
	{ "indirect-next", atk_indirect_next, "an indirect descriptor with NEXT" },
	{ "ro-write", atk_ro_write, "OUT, DISCARD, WRITE_ZEROES to a read-only device" },
	{ "msg-unknown", atk_msg_unknown, "unknown request codes, with and without NEED_REPLY" },
	{ "msg-oversize", atk_msg_oversize, "payload size fields larger than any message" },
	{ "msg-truncated", atk_msg_truncated, "messages cut short, then the connection closed" },
	{ "msg-mem-table", atk_msg_mem_table, "SET_MEM_TABLE whose region count and fds disagree" },
	{ "msg-ring-outside", atk_msg_ring_outside, "SET_VRING_ADDR outside the memory" },
	{ "msg-config", atk_msg_config, "GET_CONFIG past the config space, inconsistent sizes" },
	{ "ds-max", atk_ds_max, "memory regions past GET_MAX_MEM_SLOTS (ds-max)" },
	{ "mem-table-live", atk_mem_table_live, "a new SET_MEM_TABLE while the rings run" },
	{ "call-pipe", atk_call_pipe, "a call fd that is a pipe with no reader (SIGPIPE)" },
	{ "clone-table", atk_clone_table, "write FILE (another disk's partition table) at sector 0" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: nvme-drv-hostile [-v] ATTACK SOCKET\n"
		   "       nvme-drv-hostile [-v] clone-table SOCKET FILE\n"
		   "       nvme-drv-hostile --list\n"
		   "Attacks a vhost-user-blk back-end on SOCKET; prints \"ok ATTACK: ...\" and exits 0\n"
		   "when it reacted correctly and still serves, else \"FAIL ATTACK: ...\" and 1.\n");
}

int main(int argc, char **argv)
{
	struct env e = { 0 };
	const struct attack *a = NULL;
	int verbose = 0, argi = 1, rc;

	log_set_prog("nvme-drv-hostile");
	while (argi < argc && strcmp(argv[argi], "-v") == 0) {
		verbose++;
		argi++;
	}
	if (argi < argc && strcmp(argv[argi], "--list") == 0) {
		for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++)
			printf("%-17s %s\n", attacks[i].name, attacks[i].what);
		return 0;
	}
	if (argi < argc && (strcmp(argv[argi], "-h") == 0 || strcmp(argv[argi], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc - argi != 2 && !(argc - argi == 3 && strcmp(argv[argi], "clone-table") == 0)) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++)
		if (strcmp(argv[argi], attacks[i].name) == 0)
			a = &attacks[i];
	if (!a) {
		fprintf(stderr, "nvme-drv-hostile: unknown attack '%s' (see --list)\n", argv[argi]);
		return 2;
	}
	/* The library's own complaints are expected here; -v shows them. */
	log_set_level(verbose ? LOG_WARN + verbose - 1 : LOG_QUIET);
	e.path = argv[argi + 1];
	e.file = argc - argi == 3 ? argv[argi + 2] : NULL;
	rc = a->run(&e);
	dev_close(&e);
	printf("%s %s: %s\n", rc ? "FAIL" : "ok", a->name, e.why);
	return rc ? 1 : 0;
}
