/* A raw vhost-user front end for in-process tests of the real server code
 * (src/transport/vhost_user.c over src/vblk over the fake NVMe layer): it
 * speaks the protocol byte by byte over a socket pair, lays out split rings
 * in a memfd it shares, and runs the server's event loop in the same
 * thread. Nothing here is polite on purpose: a test may send anything in
 * any order. */
#ifndef NVD_TESTS_VHU_FE_H
#define NVD_TESTS_VHU_FE_H

#include <stdbool.h>
#include <stdint.h>

#include "spec/vhost_user.h"
#include "transport/vhost_user.h"
#include "util/evloop.h"

#define FE_MEM_SIZE (1u << 20)
#define FE_QSIZE 16u
#define FE_NQ 2u
/* Where things live in the shared memory (guest addresses; the front
 * end's "user addresses" are these plus FE_UVA). */
#define FE_RING(q) (0x4000ull * (q))	/* desc; avail at +0x1000, used at +0x2000 */
#define FE_BUF(q, slot) (0x10000ull + 0x8000ull * (FE_QSIZE * (q) + (slot)))
#define FE_UVA 0x7f0000000000ull

struct fe {
	struct evloop *loop;
	struct vhu_ep *ep;	/* the server's endpoint (NULL once ended) */
	int sock;		/* our end; -1 once closed */
	int memfd;
	uint8_t *mem;
	int kick[FE_NQ], call[FE_NQ];
	uint16_t avail_idx[FE_NQ];
	uint16_t used_seen[FE_NQ];
	bool ended;		/* the server reported the adopted connection ended */
	uint16_t base[FE_NQ];	/* SET_VRING_BASE that fe_setup sends */
	int inflight_fd;	/* >= 0: fe_setup sends SET_INFLIGHT_FD with it */
	struct vhost_user_inflight inflight;
	int rx_fd;		/* a file descriptor the last reply carried, or -1 */
	uint64_t features_off;	/* feature bits fe_setup does not accept */
};

/* vblk_conf.vq_budget of the endpoints made from now on (0: the default). */
extern unsigned fe_vq_budget;

/* Creates the server endpoint on a socket pair (adopted, as a client made
 * by create() without socket=) and our memory. Returns 0 or -errno. */
int fe_new(struct fe *f, struct evloop *loop, const char *name);
/* A new connection (and server endpoint) for the same memory, as a front
 * end reconnecting to a restarted server; the old endpoint must be gone. */
int fe_reconnect(struct fe *f, const char *name);
/* GET_INFLIGHT_FD for nq queues of FE_QSIZE: keeps the region's fd in
 * f->inflight_fd. Returns 0 or -errno. */
int fe_get_inflight(struct fe *f, unsigned nq);
/* Destroys the endpoint if it still exists and frees our side. */
void fe_free(struct fe *f);

/* Sends one message; fds go with it. Returns 0 or -errno. */
int fe_send(struct fe *f, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
	    const int *fds, unsigned nfds);
int fe_send_u64(struct fe *f, uint32_t request, uint64_t v);
int fe_send_state(struct fe *f, uint32_t request, uint32_t index, uint32_t num);
/* Runs the server's loop until a message arrives for us (or `rounds` rounds
 * passed). Returns 1 with *m filled, 0 if none came, -errno. */
int fe_recv(struct fe *f, struct vhost_user_msg *m, int rounds);
/* Runs the server's loop for `rounds` non-blocking rounds. */
void fe_run(struct fe *f, int rounds);

/* Features (no protocol features), the memory table and queues 0..nq-1
 * set up and running. Returns 0 or -errno. */
int fe_setup(struct fe *f, unsigned nq);
/* Posts a request on queue q: header (type, sector), `len` bytes of data
 * (device-writable for reads), status. Returns the head used. */
uint16_t fe_post(struct fe *f, unsigned q, uint32_t type, uint64_t sector, uint32_t len);
/* Posts n 4 KiB reads on queue 0, the i-th at sector 8 * i. */
void fe_post_reads(struct fe *f, unsigned n);
int fe_kick(struct fe *f, unsigned q);
/* Takes the next used entry of queue q: 1 with id/len, 0 if none. */
int fe_used(struct fe *f, unsigned q, uint32_t *id, uint32_t *len);
/* The status byte of the request whose head is `head` on queue q. */
uint8_t fe_status(struct fe *f, unsigned q, uint16_t head, uint32_t len);

#endif
