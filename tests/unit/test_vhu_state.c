/* The vhost-user server's state machine under hostile front ends: the real
 * vhost_user.c, vblk.c and vring.c in process, over socket pairs, with the
 * NVMe layer faked (fake_nvme.c) so that a test decides when and how each
 * command completes. Each case is a bug that once took the whole server
 * down (issue 7), named after it; each must fail on the code before its
 * fix. Run under ASan/UBSan: a use-after-free is a failure too. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fake_nvme.h"
#include "spec/nvme_spec.h"
#include "spec/virtio_blk.h"
#include "util/log.h"
#include "transport/vhost_user.h"
#include "util/peerfd.h"
#include "vhu_fe.h"

static struct evloop *loop;

static void reset_fake(void)
{
	fake_nvme_complete_all(-ECANCELED);
	memset(&fake_nvme, 0, sizeof(fake_nvme));
}

/* The server still serves a well-behaved front end: a read of 4 KiB gets
 * through to the controller and back into the used ring, status OK. */
static void check_serves(const char *who)
{
	struct fe g;
	uint32_t id = 0, len = 0;
	uint16_t head;
	unsigned before = fake_nvme.npending;

	CHECK_EQ_INT(fe_new(&g, loop, "good"), 0);
	CHECK_EQ_INT(fe_setup(&g, 1), 0);
	head = fe_post(&g, 0, VIRTIO_BLK_T_IN, 8, 4096);
	fe_kick(&g, 0);
	fe_run(&g, 5);
	CHECK_EQ_INT(fake_nvme.npending, before + 1);
	fake_nvme_complete(fake_nvme.npending - 1, 0);
	if (!fe_used(&g, 0, &id, &len)) {
		printf("%s: the good front end got no completion\n", who);
		CHECK(0);
	} else {
		CHECK_EQ_INT(id, head);
		CHECK_EQ_INT(fe_status(&g, 0, head, len), VIRTIO_BLK_S_OK);
	}
	fe_free(&g);
}

/* Issue 7.1: GET_VRING_BASE with a read in flight, then the front end
 * closes its socket. The read completes; the held reply cannot be sent;
 * the adopted endpoint ends and frees the device from inside the
 * completion, which then went on using (and freeing) it. */
static void test_get_vring_base_then_close(void)
{
	struct fe f;
	struct vhost_user_msg m;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "uaf"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	fe_send_state(&f, VHOST_USER_GET_VRING_BASE, 0, 0);
	CHECK_EQ_INT(fe_recv(&f, &m, 5), 0);	/* held: a read is in flight */
	close(f.sock);
	f.sock = -1;
	fake_nvme_complete(0, 0);
	fe_run(&f, 5);
	CHECK(f.ended);
	fe_free(&f);
	check_serves("get_vring_base_then_close");
}

/* Issue 7.2: the front end shrinks its memory after SET_MEM_TABLE. A
 * sealable memfd gets F_SEAL_SHRINK from the server, so the shrink fails;
 * one that cannot be sealed is truncated, and the next kick touches
 * memory that is gone: that front end is cut off, the server lives. */
static void test_truncated_memfd(void)
{
	struct fe f;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "seal"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK(ftruncate(f.memfd, 0) != 0 && errno == EPERM);
	fe_free(&f);

	CHECK_EQ_INT(fe_new(&f, loop, "sigbus"), 0);
	/* Swap in a memfd that cannot carry seals (F_SEAL_SEAL from birth). */
	munmap(f.mem, FE_MEM_SIZE);
	close(f.memfd);
	f.memfd = memfd_create("fe-nosealing", MFD_CLOEXEC);
	CHECK(f.memfd >= 0 && ftruncate(f.memfd, FE_MEM_SIZE) == 0);
	f.mem = mmap(NULL, FE_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f.memfd, 0);
	CHECK(f.mem != MAP_FAILED);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	CHECK_EQ_INT(ftruncate(f.memfd, 0), 0);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	munmap(f.mem, FE_MEM_SIZE);
	f.mem = NULL;
	fe_free(&f);
	check_serves("truncated_memfd");

	/* A region larger than its file is refused before it is mapped. */
	CHECK_EQ_INT(fe_new(&f, loop, "short"), 0);
	CHECK_EQ_INT(ftruncate(f.memfd, FE_MEM_SIZE / 2), 0);
	fe_setup(&f, 1);
	CHECK_EQ_INT(fake_nvme.maps, 0);
	fe_free(&f);
}

/* Issue 7.3: a call eventfd whose counter is one short of the maximum
 * blocks a write, and the server's only thread with it. First with the
 * fd as sent (blocking); then with O_NONBLOCK cleared again by the front
 * end after the server set it, which only the watchdog can end. */
static void test_blocking_call_fd(bool clear_nonblock)
{
	struct fe f;
	uint64_t max = 0xfffffffffffffffeull;
	uint64_t idx = 0;
	int call;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "callfd"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	call = eventfd(0, EFD_CLOEXEC);	/* blocking */
	CHECK(call >= 0 && write(call, &max, sizeof(max)) == sizeof(max));
	CHECK_EQ_INT(fe_send(&f, VHOST_USER_SET_VRING_CALL, 0, &idx, sizeof(idx), &call, 1), 0);
	fe_run(&f, 5);
	if (clear_nonblock)
		fcntl(call, F_SETFL, fcntl(call, F_GETFL) & ~O_NONBLOCK);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	alarm(20);	/* the old code never comes back from this */
	fake_nvme_complete(0, 0);
	alarm(0);
	fe_run(&f, 5);
	CHECK(f.ended);
	close(call);
	fe_free(&f);
	check_serves(clear_nonblock ? "blocking_call_fd (cleared)" : "blocking_call_fd");
}

static void test_blocking_call_fd_sent(void) { test_blocking_call_fd(false); }
static void test_blocking_call_fd_cleared(void) { test_blocking_call_fd(true); }

/* Issue 7.4: with a request in flight, regions removed are kept mapped
 * until it ends; alternating ADD_MEM_REG and REM_MEM_REG piled up one DMA
 * mapping per round, far past ds-max. */
static void test_mem_reg_churn(void)
{
	struct fe f;
	int fd = memfd_create("churn", MFD_CLOEXEC);
	struct vhost_user_mem_region_msg r = {
		.region = { .guest_phys_addr = 0x10000000, .memory_size = 0x10000,
			    .userspace_addr = 0x7e0000000000ull },
	};

	reset_fake();
	CHECK(fd >= 0 && ftruncate(fd, 0x10000) == 0);
	CHECK_EQ_INT(fe_new(&f, loop, "churn"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	for (int i = 0; i < 100; i++) {
		fe_send(&f, VHOST_USER_ADD_MEM_REG, 0, &r, sizeof(r), &fd, 1);
		fe_send(&f, VHOST_USER_REM_MEM_REG, 0, &r, sizeof(r), NULL, 0);
		fe_run(&f, 3);
	}
	/* ds-max 2: two live regions, and as many retired ones held for I/O. */
	if (fake_nvme.max_maps > 4)
		printf("mem_reg_churn: %ld DMA mappings at once\n", fake_nvme.max_maps);
	CHECK(fake_nvme.max_maps <= 4);
	fake_nvme_complete(0, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.maps, 1);	/* the table's one region */

	/* Now each round leaves a read in flight INTO the region it removes:
	 * every retired region is pinned, and the bound must refuse more. */
	fake_nvme.max_maps = 0;
	for (int i = 0; i < 20; i++) {
		struct vring_desc *d = (struct vring_desc *)(f.mem + FE_RING(0));
		uint16_t head;

		fe_send(&f, VHOST_USER_ADD_MEM_REG, 0, &r, sizeof(r), &fd, 1);
		fe_run(&f, 3);
		head = fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
		d[head + 1].addr = r.region.guest_phys_addr;
		fe_kick(&f, 0);
		fe_run(&f, 3);
		fe_send(&f, VHOST_USER_REM_MEM_REG, 0, &r, sizeof(r), NULL, 0);
		fe_run(&f, 3);
		if (fake_nvme.npending >= 4)
			fake_nvme_complete(0, 0);	/* keep the ring from filling */
	}
	CHECK(fake_nvme.max_maps <= 4);
	fake_nvme_complete_all(0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.maps, 1);
	close(fd);
	fe_free(&f);
	CHECK_EQ_INT(fake_nvme.maps, 0);
}

/* SET_MEM_TABLE again with the same memory (what QEMU sends when a DIMM
 * elsewhere comes or goes): the server maps it anew. */
static void send_same_table(struct fe *f)
{
	struct vhost_user_mem_table t = { .nregions = 1 };

	t.regions[0] = (struct vhost_user_mem_region){
		.guest_phys_addr = 0, .memory_size = FE_MEM_SIZE, .userspace_addr = FE_UVA,
	};
	fe_send(f, VHOST_USER_SET_MEM_TABLE, 0, &t,
		(uint32_t)(offsetof(struct vhost_user_mem_table, regions) + sizeof(t.regions[0])),
		&f->memfd, 1);
}

/* A new memory table while a request is in flight: its status byte still
 * has to be written into the table it was posted in, which stays mapped
 * until then (found by fuzz_vhu_state: the region was unmapped as soon as
 * the data's DMA had ended, before the status write). */
static void test_table_change_in_flight(void)
{
	struct fe f;
	uint32_t id, len;
	uint16_t head;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "table"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	head = fe_post(&f, 0, VIRTIO_BLK_T_OUT, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	send_same_table(&f);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.maps, 2);	/* the old one is held by the request */
	fake_nvme_complete(0, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.maps, 1);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, head);
	CHECK_EQ_INT(fe_status(&f, 0, head, len), VIRTIO_BLK_S_OK);
	fe_free(&f);
}

/* Issue 7.5: a request in flight across RESET_DEVICE completed into the
 * next session's used ring: the new driver saw a head it never posted. */
static void test_completion_after_reset(void)
{
	struct fe f;
	uint32_t id, len;
	uint16_t head;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "reset"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 8, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	CHECK_EQ_INT(fake_nvme.npending, 2);
	fe_send(&f, VHOST_USER_RESET_DEVICE, 0, NULL, 0, NULL, 0);
	fe_run(&f, 3);
	/* A new session: fresh rings at the same place. */
	memset(f.mem, 0, 0x4000);
	f.avail_idx[0] = f.used_seen[0] = 0;
	for (unsigned q = 0; q < FE_NQ; q++) {
		if (f.kick[q] >= 0)
			close(f.kick[q]);
		if (f.call[q] >= 0)
			close(f.call[q]);
		f.kick[q] = f.call[q] = -1;
	}
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	head = fe_post(&f, 0, VIRTIO_BLK_T_IN, 16, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	/* The new session takes nothing while the old one's requests are
	 * with the controller (their DMA could still land in its memory). */
	CHECK_EQ_INT(fake_nvme.npending, 2);
	fake_nvme_complete(0, 0);	/* the old session's */
	fake_nvme_complete(0, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);
	CHECK_EQ_INT(fake_nvme.npending, 1);	/* now the new one went out */
	fake_nvme_complete(0, 0);	/* the new one */
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, head);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);
	fe_free(&f);
	check_serves("completion_after_reset");
}

/* Inflight tracking: a server dies with requests in flight, one of them
 * completed out of order; its successor, given the front end's inflight
 * region, serves exactly the ones the driver still waits for, once each,
 * then goes on with new ones (issue 9). */
static void test_inflight_restart(void)
{
	struct fe f;
	uint16_t heads[4], fresh;
	uint32_t id, len;
	unsigned seen[FE_QSIZE] = { 0 };

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "inflight"), 0);
	CHECK_EQ_INT(fe_get_inflight(&f, 1), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	for (int i = 0; i < 4; i++)
		heads[i] = fe_post(&f, 0, VIRTIO_BLK_T_IN, 8 * (uint64_t)i, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 5);
	CHECK_EQ_INT(fake_nvme.npending, 4);
	fake_nvme_complete(1, 0);	/* heads[1], out of order */
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, heads[1]);

	/* The server dies: its endpoint goes, and what it had in flight
	 * never reaches the ring. */
	vhu_ep_destroy(f.ep);
	f.ep = NULL;
	fake_nvme_complete_all(0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);

	/* Its successor; the front end sets the base to the used index, as
	 * QEMU does when the back end could not report one. */
	CHECK_EQ_INT(fe_reconnect(&f, "inflight2"), 0);
	f.base[0] = 1;
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 3);
	fresh = fe_post(&f, 0, VIRTIO_BLK_T_IN, 64, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 4);
	fake_nvme_complete_all(0);
	fe_run(&f, 3);
	while (fe_used(&f, 0, &id, &len) == 1)
		if (id < FE_QSIZE)
			seen[id]++;
	CHECK_EQ_INT(seen[heads[0]], 1);
	CHECK_EQ_INT(seen[heads[1]], 0);
	CHECK_EQ_INT(seen[heads[2]], 1);
	CHECK_EQ_INT(seen[heads[3]], 1);
	CHECK_EQ_INT(seen[fresh], 1);
	fe_free(&f);
}

/* The same inflight region handed to a new session (a reconnect to a
 * server that lived on) while the old session's requests are still with
 * the controller: they must not be taken again beside themselves; once
 * they end (into nothing), the log's heads are served, once each. */
static void test_inflight_waits_for_old_io(void)
{
	struct fe f;
	uint32_t id, len;
	unsigned seen[FE_QSIZE] = { 0 }, n = 0;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "inflight-old"), 0);
	CHECK_EQ_INT(fe_get_inflight(&f, 1), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post_reads(&f, 4);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 4);
	fe_send(&f, VHOST_USER_RESET_DEVICE, 0, NULL, 0, NULL, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);	/* SET_INFLIGHT_FD: the same region */
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 4);	/* not 8 */
	for (int i = 0; i < 4; i++)
		fake_nvme_complete(0, 0);	/* the old four, into nothing */
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 4);	/* now the log's four */
	fake_nvme_complete_all(0);
	fe_run(&f, 3);
	while (fe_used(&f, 0, &id, &len) == 1 && id < FE_QSIZE) {
		seen[id]++;
		n++;
	}
	CHECK_EQ_INT(n, 4);
	for (unsigned i = 0; i < FE_QSIZE; i++)
		CHECK(seen[i] <= 1);
	fe_free(&f);
}

/* A second GET_INFLIGHT_FD while a queue runs with requests in flight:
 * the old region is unmapped, and the queue must stop logging into it
 * (found by fuzz_vhu_state: the completion wrote into the unmapped log). */
static void test_inflight_replaced(void)
{
	struct fe f;
	uint32_t id, len;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "inflight-replaced"), 0);
	CHECK_EQ_INT(fe_get_inflight(&f, 1), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	close(f.inflight_fd);
	f.inflight_fd = -1;
	CHECK_EQ_INT(fe_get_inflight(&f, 1), 0);
	fake_nvme_complete_all(0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	fe_free(&f);
}

/* A discard of three ranges is one request to the NVMe layer, which packs
 * the ranges into as few commands as the controller allows, and completes
 * once (it used to be one request a range, each completing the same
 * chain). */
static void test_discard_ranges(void)
{
	struct fe f;
	struct virtio_blk_discard_write_zeroes r[3] = {
		{ .sector = 0, .num_sectors = 8 },
		{ .sector = 64, .num_sectors = 16 },
		{ .sector = 512, .num_sectors = 8 },
	};
	uint32_t id, len;
	uint16_t head;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "discard"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	head = fe_post(&f, 0, VIRTIO_BLK_T_DISCARD, 0, sizeof(r));
	memcpy(f.mem + FE_BUF(0, head / 3) + 0x1000, r, sizeof(r));
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	if (fake_nvme.npending == 1) {
		CHECK_EQ_INT(fake_nvme.pending[0]->opc, NVME_CMD_DSM);
		CHECK_EQ_INT(fake_nvme.pending[0]->nranges, 3);
		CHECK_EQ_INT(fake_nvme.pending[0]->ranges[1].slba, 64);
		CHECK_EQ_INT(fake_nvme.pending[0]->ranges[1].nlb, 16);
	}
	fake_nvme_complete_all(0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, head);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);
	fe_free(&f);
}

/* Requests taken by one kick reach the controller with one doorbell
 * write, and their completions in one round with one call eventfd write
 * (issue 11). */
static void test_batched_kick(void)
{
	struct fe f;
	uint64_t calls = 0;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "batch"), 0);
	/* Without EVENT_IDX the driver wants a notification for every used
	 * buffer: four completions would be four eventfd writes. */
	f.features_off = VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post_reads(&f, 4);
	fake_nvme.doorbells = 0;
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 4);
	CHECK_EQ_INT(fake_nvme.doorbells, 1);
	if (read(f.call[0], &calls, sizeof(calls)) < 0)
		calls = 0;
	fake_nvme_complete_all(0);
	fe_run(&f, 1);
	CHECK(read(f.call[0], &calls, sizeof(calls)) == sizeof(calls));
	CHECK_EQ_INT(calls, 1);
	fe_free(&f);
}

/* Per-virtqueue budget (issue 11): a front end with many requests in its
 * ring takes its budget's worth, then a front end kicked after it gets its
 * one request to the controller, then the rest is taken without another
 * kick (the kick eventfd is edge-triggered: nothing would come again). */
static void test_vq_budget(void)
{
	struct fe f, g;
	int g_pos = -1;

	reset_fake();
	fe_vq_budget = 4;
	CHECK_EQ_INT(fe_new(&f, loop, "deep"), 0);
	CHECK_EQ_INT(fe_new(&g, loop, "shallow"), 0);
	fe_vq_budget = 0;
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(fe_setup(&g, 1), 0);
	fe_post_reads(&f, 12);
	fe_post(&g, 0, VIRTIO_BLK_T_IN, 1024, 4096);
	fe_kick(&f, 0);
	fe_kick(&g, 0);
	fe_run(&f, 6);
	CHECK_EQ_INT(fake_nvme.npending, 13);
	CHECK(vhu_ep_stats(f.ep)->yields >= 2);
	CHECK_EQ_INT(vhu_ep_stats(g.ep)->yields, 0);
	for (unsigned i = 0; i < fake_nvme.npending; i++)
		if (fake_nvme.pending[i]->slba == 1024)
			g_pos = (int)i;
	/* Without a budget the deep ring went first, whole: position 12. */
	CHECK(g_pos >= 0 && g_pos <= 4);
	fake_nvme_complete_all(0);
	fe_run(&f, 2);
	for (int i = 0; i < 12; i++) {
		uint32_t id, len;

		CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	}
	fe_free(&g);
	fe_free(&f);
	/* The default budget takes a whole small ring in one turn. */
	CHECK_EQ_INT(fe_new(&f, loop, "default"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	fe_post_reads(&f, 12);
	fake_nvme.doorbells = 0;
	fe_kick(&f, 0);
	fe_run(&f, 1);
	CHECK_EQ_INT(fake_nvme.npending, 12);
	CHECK_EQ_INT(fake_nvme.doorbells, 1);
	fake_nvme_complete_all(0);
	fe_run(&f, 2);
	fe_free(&f);
}

/* A device destroyed with its next turn queued (evloop_yield): with I/O
 * still in flight (freed later, the turn finds it destroying) and with
 * none (freed at once, the turn cancelled). Under ASan a turn run on a
 * freed device is a failure. */
static void test_vq_budget_destroy(void)
{
	struct fe f;

	for (int in_flight = 1; in_flight >= 0; in_flight--) {
		reset_fake();
		fe_vq_budget = 4;
		CHECK_EQ_INT(fe_new(&f, loop, "yielded"), 0);
		fe_vq_budget = 0;
		CHECK_EQ_INT(fe_setup(&f, 1), 0);
		fe_post_reads(&f, 12);
		fe_kick(&f, 0);
		fe_run(&f, 1);
		/* The kick's turn and one yielded turn: the next is queued. */
		CHECK_EQ_INT(fake_nvme.npending, 8);
		if (!in_flight)
			fake_nvme_complete_all(0);
		fe_free(&f);
		fe_run(&f, 3);
		CHECK_EQ_INT(fake_nvme.npending, in_flight ? 8 : 0);
		fake_nvme_complete_all(0);
		fe_run(&f, 2);
	}
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int set_iops(struct fe *f, uint64_t iops)
{
	struct qos_limits l = { { [QOS_IOPS] = iops } };

	return vhu_ep_set_qos(f->ep, &l);
}

/* QoS: a client limited to 50 requests a second has 5 reads (all the
 * test ring holds) held back and let go by the timer, in about a tenth
 * of a second (a new limit starts with an empty bucket), each answered
 * once. */
static void test_qos_held_and_released(void)
{
	struct fe f;
	uint32_t id, len;
	unsigned done = 0, seen[FE_QSIZE] = { 0 };
	long long t0, t1;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "qos"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 50), 0);
	t0 = mono_ms();
	fe_post_reads(&f, 5);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);	/* the first waits 20 ms */
	CHECK(vhu_ep_stats(f.ep)->throttled >= 1);
	while (done < 5 && mono_ms() - t0 < 2000) {
		evloop_once(loop, 50);
		fake_nvme_complete_all(0);
		fe_run(&f, 1);
		while (fe_used(&f, 0, &id, &len) == 1 && id < FE_QSIZE) {
			CHECK_EQ_INT(fe_status(&f, 0, (uint16_t)id, len), VIRTIO_BLK_S_OK);
			seen[id]++;
			done++;
		}
	}
	t1 = mono_ms();
	CHECK_EQ_INT(done, 5);
	for (unsigned i = 0; i < FE_QSIZE; i++)
		CHECK(seen[i] <= 1);
	if (t1 - t0 < 90 || t1 - t0 > 600) {
		printf("qos_held_and_released: 5 requests at 50/s took %lld ms\n", t1 - t0);
		CHECK(0);
	}
	/* Nothing held: the timer is disarmed, an idle round sees nothing. */
	CHECK_EQ_INT(evloop_once(loop, 30), 0);
	fe_free(&f);
}

/* A limit changed at run time applies to the requests already held: at
 * one a second three reads wait; lifted, they go at once; a request held
 * by a new limit of 1 goes as soon as the limit is raised. */
static void test_qos_change_applies_at_once(void)
{
	struct fe f;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "qos-change"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 1), 0);
	fe_post_reads(&f, 3);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	CHECK_EQ_INT(set_iops(&f, 0), 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 3);
	fake_nvme_complete_all(0);
	CHECK_EQ_INT(set_iops(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_OUT, 64, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	CHECK_EQ_INT(set_iops(&f, 100000), 0);
	evloop_once(loop, 20);	/* 10 us of an empty bucket */
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	fake_nvme_complete_all(0);
	/* Out of bounds: refused, the limit stays. */
	CHECK_EQ_INT(set_iops(&f, QOS_IOPS_MAX + 1), -EINVAL);
	fe_free(&f);
}

/* Held requests across the ends of a session: GET_VRING_BASE sends the
 * held one (it was taken: it must reach the used ring before the reply,
 * once); RESET_DEVICE drops it unanswered and the next session is not
 * held back by it; a close with one held frees it (ASan: no leak). */
static void test_qos_session_change(void)
{
	struct vhost_user_msg m;
	struct fe f;
	uint32_t id, len;
	uint16_t head;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "qos-stop"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 1), 0);
	head = fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 8, 4096);	/* stays in the ring */
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	fe_send_state(&f, VHOST_USER_GET_VRING_BASE, 0, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 1);	/* sent, limit or not */
	CHECK_EQ_INT(fe_recv(&f, &m, 3), 0);	/* the reply waits for it */
	fake_nvme_complete(0, 0);
	CHECK_EQ_INT(fe_recv(&f, &m, 5), 1);
	CHECK_EQ_INT(m.payload.state.num, 1);	/* the second is not taken */
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, head);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	fe_free(&f);

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "qos-reset"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	fe_send(&f, VHOST_USER_RESET_DEVICE, 0, NULL, 0, NULL, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);	/* dropped, never sent */
	memset(f.mem, 0, 0x4000);
	f.avail_idx[0] = f.used_seen[0] = 0;
	for (unsigned q = 0; q < FE_NQ; q++) {
		if (f.kick[q] >= 0)
			close(f.kick[q]);
		if (f.call[q] >= 0)
			close(f.call[q]);
		f.kick[q] = f.call[q] = -1;
	}
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 0), 0);
	head = fe_post(&f, 0, VIRTIO_BLK_T_IN, 16, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 1);	/* not held back by the old one */
	fake_nvme_complete(0, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, head);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);
	fe_free(&f);

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "qos-close"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 1), 0);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	close(f.sock);
	f.sock = -1;
	fe_run(&f, 5);
	CHECK(f.ended);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	fe_free(&f);
	check_serves("qos_session_change");
}

/* A hand-over (vhu_ep_quiesce) with a request held back: it was taken, so
 * it goes to the controller at once, limit or not, and is counted in
 * flight until it lands in the used ring; nothing more is taken. */
static void test_qos_quiesce(void)
{
	struct fe f;
	uint32_t id, len;
	uint16_t head;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "qos-quiesce"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 1), 0);
	head = fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 8, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	CHECK_EQ_INT(vhu_ep_quiesce(f.ep), 1);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	fake_nvme_complete(0, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(vhu_ep_quiesce(f.ep), 0);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, head);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);
	CHECK_EQ_INT(fake_nvme.npending, 0);	/* the second stays for the successor */
	fe_free(&f);
}

/* A held request across SET_MEM_TABLE (the same memory, sent again as on
 * memory hot-plug): let go, its data goes into the new mapping, which it
 * pins, and its status into the old one, which it still pins (found by
 * fuzz_vhu_state: the status went into a mapping already gone). */
static void test_qos_table_change(void)
{
	struct fe f;
	uint32_t id, len;
	uint16_t head;

	reset_fake();
	CHECK_EQ_INT(fe_new(&f, loop, "qos-table"), 0);
	CHECK_EQ_INT(fe_setup(&f, 1), 0);
	CHECK_EQ_INT(set_iops(&f, 1), 0);
	head = fe_post(&f, 0, VIRTIO_BLK_T_OUT, 0, 4096);
	fe_kick(&f, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	send_same_table(&f);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.maps, 2);	/* the old one is held by the request */
	CHECK_EQ_INT(set_iops(&f, 0), 0);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	fake_nvme_complete(0, 0);
	fe_run(&f, 3);
	CHECK_EQ_INT(fake_nvme.maps, 1);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(id, head);
	CHECK_EQ_INT(fe_status(&f, 0, head, len), VIRTIO_BLK_S_OK);
	fe_free(&f);
}

/* Adaptive polling over the real server (issue 11): while the loop polls,
 * the ring asks the driver for no kicks (VRING_USED_F_NO_NOTIFY) and a
 * request posted then is taken without one; before the loop sleeps, kicks
 * are asked for again, and a request posted in between is taken then, not
 * left for a kick the driver will never send. */
struct poll_probe {
	struct evloop_poller p;
	struct fe *f;
	bool post;		/* post one request (no kick) at the next poll */
	bool post_on;		/* ... at the next notify(on), before the server's */
	uint16_t flags_seen;	/* the used ring's flags when it posted */
	bool busy;		/* says it found work: the loop keeps polling */
};

static bool probe_poll(void *arg)
{
	struct poll_probe *pp = arg;

	if (pp->post) {
		pp->post = false;
		pp->flags_seen = ((struct vring_used *)(pp->f->mem + FE_RING(0) + 0x2000))->flags;
		fe_post(pp->f, 0, VIRTIO_BLK_T_IN, 8, 4096);
	}
	return pp->busy;
}

static bool probe_notify(void *arg, bool on)
{
	struct poll_probe *pp = arg;

	if (on && pp->post_on) {
		pp->post_on = false;
		fe_post(pp->f, 0, VIRTIO_BLK_T_IN, 16, 4096);
	}
	return false;
}

static void on_ready(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
}

/* A front end (EVENT_IDX as asked) with the probe, and a loop that polls:
 * `efd`, always ready, makes events come at once, so the window grows. */
static void poll_start(struct fe *f, struct poll_probe *pp, const char *name, bool event_idx,
		       int efd)
{
	struct evloop_poll_stats st;

	reset_fake();
	CHECK_EQ_INT(fe_new(f, loop, name), 0);
	f->features_off = event_idx ? 0 : VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	CHECK_EQ_INT(fe_setup(f, 1), 0);
	/* The probe is walked before the server's endpoint (newest first). */
	pp->p = (struct evloop_poller){ .poll = probe_poll, .notify = probe_notify, .arg = pp };
	evloop_poller_add(loop, &pp->p);
	evloop_set_poll_max(loop, 100000);
	CHECK_EQ_INT(evloop_add(loop, efd, EPOLLIN, on_ready, NULL), 0);
	for (int i = 0; i < 8; i++)
		evloop_once(loop, 100);
	evloop_poll_stats(loop, &st);
	CHECK(st.poll_ns >= 64000);
}

static void poll_finish(struct fe *f, struct poll_probe *pp, int efd)
{
	fake_nvme_complete_all(0);
	fe_run(f, 2);
	evloop_poller_del(loop, &pp->p);
	evloop_set_poll_max(loop, 0);
	fe_free(f);
	close(efd);
}

static void test_poll(void)
{
	struct fe f;
	struct poll_probe pp = { .f = &f };
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always ready */

	poll_start(&f, &pp, "poll", false, efd);
	CHECK_EQ_INT(fake_nvme.npending, 0);
	/* (fe_kick is never called below: what is taken is polled.) */
	/* Posted while the loop polls: the ring asks for no kicks then, and
	 * the request is taken without one. */
	pp.post = true;
	evloop_once(loop, 100);
	CHECK(!pp.post);
	CHECK_EQ_INT(le16toh(pp.flags_seen), VRING_USED_F_NO_NOTIFY);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	/* Posted as the loop turns kicks back on before sleeping: taken at
	 * once (the last look), and kicks are on again. */
	CHECK_EQ_INT(evloop_del(loop, efd), 0);
	pp.post_on = true;
	evloop_once(loop, 100);
	evloop_once(loop, 100);
	CHECK(!pp.post_on);
	CHECK_EQ_INT(fake_nvme.npending, 2);
	CHECK_EQ_INT(((struct vring_used *)(f.mem + FE_RING(0) + 0x2000))->flags, 0);
	poll_finish(&f, &pp, efd);
}

/* A memory table that changes while the loop polls (memory hot-plug in the
 * guest): the rings are mapped again (rings_refresh) with kicks still off
 * in the ring. Before the loop sleeps they must be asked for again, or the
 * driver, seeing VRING_USED_F_NO_NOTIFY, never kicks for its next request
 * and the queue hangs. */
static void poll_table_change(bool event_idx)
{
	struct fe f;
	struct poll_probe pp = { .f = &f };
	struct vring_used *used;
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always ready */

	poll_start(&f, &pp, "polltable", event_idx, efd);
	used = (struct vring_used *)(f.mem + FE_RING(0) + 0x2000);
	/* The new table (same memory) waits on the socket; polling finds a
	 * request, and the same round reads the table with kicks off. */
	send_same_table(&f);
	pp.post = true;
	evloop_once(loop, 100);
	if (!event_idx)
		CHECK_EQ_INT(le16toh(pp.flags_seen), VRING_USED_F_NO_NOTIFY);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	/* Idle now: the loop polls out its window and sleeps. */
	CHECK_EQ_INT(evloop_del(loop, efd), 0);
	evloop_once(loop, 100);
	/* The driver kicks only as the ring asks (2.7.10.1): a queue that
	 * never asks again hangs with the request untaken. */
	{
		uint16_t old = f.avail_idx[0];
		uint16_t ev = le16toh(*(uint16_t *)(f.mem + FE_RING(0) + 0x2000 + 4 + 8 * FE_QSIZE));
		bool kick;

		fe_post(&f, 0, VIRTIO_BLK_T_IN, 16, 4096);
		kick = event_idx ? (uint16_t)(old + 1 - ev - 1) < (uint16_t)1
				 : !(le16toh(used->flags) & VRING_USED_F_NO_NOTIFY);
		CHECK(kick);
		if (kick)
			fe_kick(&f, 0);
	}
	for (int i = 0; i < 3; i++)
		evloop_once(loop, 100);
	CHECK_EQ_INT(fake_nvme.npending, 2);
	poll_finish(&f, &pp, efd);
}

/* Whether the front end's call eventfd of queue 0 was written; drains it. */
static bool called(struct fe *f)
{
	uint64_t v;

	return read(f->call[0], &v, sizeof(v)) == sizeof(v);
}

/* Notification coalescing (vblk.h): while the loop polls and more than
 * VBLK_COALESCE_MIN requests stay in flight, completions land in the used
 * ring without a notification; it comes once few are left in flight, once
 * the oldest waited long enough, or when the loop stops polling, and
 * never gets lost. Without EVENT_IDX, so that every completion wants one. */
static void test_poll_coalesce(void)
{
	struct fe f;
	struct poll_probe pp = { .f = &f };
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always ready */
	uint32_t id, len;

	vblk_set_coalesce_us(VBLK_COALESCE_US_LIMIT);
	poll_start(&f, &pp, "pollco", false, efd);
	/* Other work keeps the loop polling round after round (a window
	 * that finds nothing ends polling, and with it the holding). */
	pp.busy = true;
	for (unsigned i = 0; i < 8; i++)
		fe_post(&f, 0, VIRTIO_BLK_T_IN, 8 * i, 4096);
	evloop_once(loop, 100);
	CHECK_EQ_INT(fake_nvme.npending, 8);
	(void)called(&f);
	/* 8 -> 5 in flight: in the ring, no notification. */
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ_INT(fake_nvme_complete(0, 0), 0);
	evloop_once(loop, 100);
	evloop_once(loop, 100);
	CHECK(!called(&f));
	for (unsigned i = 0; i < 3; i++)
		CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 0);
	/* Down to VBLK_COALESCE_MIN in flight: notified, for all of them. */
	CHECK_EQ_INT(fake_nvme_complete(0, 0), 0);
	CHECK_EQ_INT(fake_nvme_complete(0, 0), 0);
	evloop_once(loop, 100);
	CHECK(called(&f));
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	/* Held again (8 in flight), then the loop stops polling: the
	 * notification goes out before it sleeps. */
	for (unsigned i = 0; i < 5; i++)
		fe_post(&f, 0, VIRTIO_BLK_T_IN, 8 * i, 4096);
	evloop_once(loop, 100);
	CHECK_EQ_INT(fake_nvme.npending, 8);
	CHECK_EQ_INT(fake_nvme_complete(0, 0), 0);
	evloop_once(loop, 100);
	CHECK(!called(&f));
	pp.busy = false;
	CHECK_EQ_INT(evloop_del(loop, efd), 0);
	evloop_once(loop, 100);
	evloop_once(loop, 100);
	CHECK(called(&f));
	CHECK_EQ_INT(fe_used(&f, 0, &id, &len), 1);
	/* Held with a short limit: the oldest waiting one's age sends it
	 * while the loop still polls. */
	vblk_set_coalesce_us(1000);
	CHECK_EQ_INT(evloop_add(loop, efd, EPOLLIN, on_ready, NULL), 0);
	for (int i = 0; i < 8; i++)
		evloop_once(loop, 100);
	pp.busy = true;
	CHECK_EQ_INT(fake_nvme.npending, 7);
	fe_post(&f, 0, VIRTIO_BLK_T_IN, 0, 4096);
	evloop_once(loop, 100);
	CHECK_EQ_INT(fake_nvme.npending, 8);
	(void)called(&f);
	CHECK_EQ_INT(fake_nvme_complete(0, 0), 0);
	evloop_once(loop, 100);
	CHECK(!called(&f));
	{
		struct timespec ts = { 0, 3000000 };

		nanosleep(&ts, NULL);
	}
	evloop_once(loop, 100);
	evloop_once(loop, 100);
	CHECK(called(&f));
	/* Off: every completion notified at once. */
	vblk_set_coalesce_us(0);
	CHECK_EQ_INT(fake_nvme_complete(0, 0), 0);
	evloop_once(loop, 100);
	CHECK(called(&f));
	vblk_set_coalesce_us(VBLK_COALESCE_US_DEFAULT);
	poll_finish(&f, &pp, efd);
}

static void test_poll_table_change(void) { poll_table_change(false); }
static void test_poll_table_change_event_idx(void) { poll_table_change(true); }

/* A ring stopped by GET_VRING_BASE while the loop polls (kicks off in it:
 * VRING_USED_F_NO_NOTIFY, or avail_event left behind the requests polled
 * since) is handed back asking for kicks: whoever runs it next (another
 * back end, an older nvme-drv) may not know to turn them on, and a driver
 * that sees kicks off never kicks. The loop's own "kicks on before
 * sleeping" skips a stopped ring. Without EVENT_IDX and with it; the ring
 * stopped with nothing in flight (vblk_vq_stop) and with a request in
 * flight, stopped when it lands (nvme_done). */
static void poll_get_vring_base(bool event_idx, bool in_flight)
{
	struct fe f;
	struct poll_probe pp = { .f = &f };
	struct vhost_user_msg m;
	struct vring_used *used;
	uint16_t *avail_event;
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always ready */

	poll_start(&f, &pp, "pollstop", event_idx, efd);
	used = (struct vring_used *)(f.mem + FE_RING(0) + 0x2000);
	avail_event = (uint16_t *)(f.mem + FE_RING(0) + 0x2000 + 4 + 8 * FE_QSIZE);
	/* Polling takes a request: kicks are off, and the round that found it
	 * does not turn them on. */
	if (in_flight)
		fe_send_state(&f, VHOST_USER_GET_VRING_BASE, 0, 0);
	pp.post = true;
	evloop_once(loop, 100);
	CHECK(!pp.post);
	CHECK_EQ_INT(fake_nvme.npending, 1);
	if (!event_idx)
		CHECK_EQ_INT(le16toh(used->flags), VRING_USED_F_NO_NOTIFY);
	else
		CHECK(le16toh(*avail_event) != f.avail_idx[0]);	/* left behind */
	if (in_flight) {
		/* The reply waits for the request; it lands with kicks off. */
		CHECK_EQ_INT(fe_recv(&f, &m, 3), 0);
		fake_nvme_complete(0, 0);
	} else {
		/* Answered with kicks still off; the stop is read in rounds
		 * that do not wait, so the loop does not turn them on first. */
		fake_nvme_complete(0, 0);
		fe_send_state(&f, VHOST_USER_GET_VRING_BASE, 0, 0);
	}
	CHECK_EQ_INT(fe_recv(&f, &m, 5), 1);
	CHECK_EQ_INT(m.hdr.request, VHOST_USER_GET_VRING_BASE);
	CHECK_EQ_INT(m.payload.state.num, f.avail_idx[0]);
	/* The ring as handed back: the driver's next buffer is kicked. */
	if (!event_idx)
		CHECK_EQ_INT(le16toh(used->flags), 0);
	else
		CHECK_EQ_INT(le16toh(*avail_event), f.avail_idx[0]);
	poll_finish(&f, &pp, efd);
}

static void test_poll_get_vring_base(void) { poll_get_vring_base(false, false); }
static void test_poll_get_vring_base_event_idx(void) { poll_get_vring_base(true, false); }
static void test_poll_get_vring_base_in_flight(void) { poll_get_vring_base(false, true); }
static void test_poll_get_vring_base_in_flight_event_idx(void) { poll_get_vring_base(true, true); }

/* With an argument, runs only the cases whose name contains it. */
int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} cases[] = {
		{ "get_vring_base_then_close", test_get_vring_base_then_close },
		{ "truncated_memfd", test_truncated_memfd },
		{ "blocking_call_fd_sent", test_blocking_call_fd_sent },
		{ "blocking_call_fd_cleared", test_blocking_call_fd_cleared },
		{ "mem_reg_churn", test_mem_reg_churn },
		{ "completion_after_reset", test_completion_after_reset },
		{ "table_change_in_flight", test_table_change_in_flight },
		{ "inflight_restart", test_inflight_restart },
		{ "inflight_replaced", test_inflight_replaced },
		{ "inflight_waits_for_old_io", test_inflight_waits_for_old_io },
		{ "discard_ranges", test_discard_ranges },
		{ "batched_kick", test_batched_kick },
		{ "vq_budget", test_vq_budget },
		{ "vq_budget_destroy", test_vq_budget_destroy },
		{ "qos_held_and_released", test_qos_held_and_released },
		{ "qos_change_applies_at_once", test_qos_change_applies_at_once },
		{ "qos_session_change", test_qos_session_change },
		{ "qos_table_change", test_qos_table_change },
		{ "qos_quiesce", test_qos_quiesce },
		{ "poll", test_poll },
		{ "poll_table_change", test_poll_table_change },
		{ "poll_table_change_event_idx", test_poll_table_change_event_idx },
		{ "poll_coalesce", test_poll_coalesce },
		{ "poll_get_vring_base", test_poll_get_vring_base },
		{ "poll_get_vring_base_event_idx", test_poll_get_vring_base_event_idx },
		{ "poll_get_vring_base_in_flight", test_poll_get_vring_base_in_flight },
		{ "poll_get_vring_base_in_flight_event_idx", test_poll_get_vring_base_in_flight_event_idx },
	};

	log_set_level(getenv("NVD_TEST_VERBOSE") ? LOG_DEBUG : LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	peerfd_watchdog_start(100);
	if (evloop_new(&loop))
		return 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (argc < 2 || strstr(cases[i].name, argv[1]))
			cases[i].fn();
	reset_fake();
	evloop_free(loop);
	return check_report("vhu_state");
}
