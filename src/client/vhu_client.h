/* A vhost-user front-end (the VMM's side) for virtio-blk, small enough to
 * drive a back-end from a tool or a test: it connects, negotiates, shares
 * memory (memfds or a file), sets up split virtqueues in that memory and
 * submits virtio-blk requests as descriptor chains, waiting for completions
 * on the call eventfds.
 *
 * Errors are negative errno with one log line (subject: the socket path or
 * "fd N"); nothing here exits the process or raises SIGPIPE. The back-end
 * is a peer: every reply and every used ring entry is checked.
 *
 * Besides the well-behaved path there are raw hooks (vhu_send_raw,
 * vhu_ring_view, vhu_raw_take, ...) through which a test can send a
 * back-end malformed messages and descriptor chains. One thread owns a
 * client. */
#ifndef NVD_CLIENT_VHU_CLIENT_H
#define NVD_CLIENT_VHU_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/vhost_user.h"
#include "spec/virtio_blk.h"

struct vhu_client;

/* Guest physical address of region 0: deliberately unlike any host
 * address, so a back-end that confuses the two fails at once. */
#define VHU_GPA_BASE 0x100000000ull
/* Data buffers one request may carry (besides its header and status). */
#define VHU_SEGS_MAX 64
/* Memory regions a client shares at most: ADD_MEM_REG goes past
 * SET_MEM_TABLE's VHOST_USER_MEM_REGIONS_MAX. */
#define VHU_REGIONS_MAX 16
/* GET_ID's buffer, and the ID with a terminating NUL. */
#define VHU_ID_BUF_SIZE (VIRTIO_BLK_ID_BYTES + 1)

struct vhu_opts {
	uint64_t features_off;	/* virtio feature bits not to accept even if offered */
	uint64_t protocol_off;	/* protocol feature bits likewise */
	int timeout_ms;		/* wait for any reply at most this long (0: 10 s, < 0: for ever) */
	/* Back the regions with this file (e.g. in /dev/shm), one after the
	 * other from offset 0, instead of memfds: a back-end may accept only
	 * memory it knows. Created if missing, grown, never shrunk; the
	 * string must outlive the client. NULL: memfds. */
	const char *mem_file;
};

/* What negotiation settled, valid after vhu_negotiate. */
struct vhu_info {
	uint64_t offered;	/* GET_FEATURES */
	uint64_t features;	/* accepted: sent with SET_FEATURES */
	uint64_t protocol;	/* protocol features accepted (0 without the bit) */
	unsigned max_queues;	/* the most queues vhu_start may start */
	uint64_t max_mem_slots;	/* GET_MAX_MEM_SLOTS, 0 without CONFIGURE_MEM_SLOTS */
	bool have_config;	/* PROTOCOL_F_CONFIG: config below is the device's */
	/* The device's configuration, converted to host byte order. Fields
	 * are meaningful only with their feature (blk_size: BLK_SIZE, ...). */
	struct virtio_blk_config config;
};

/* A piece of shared memory: where we see it and where the device does. */
struct vhu_buf {
	void *va;
	uint64_t gpa;
	uint32_t len;
};

/* A virtio-blk request (virtio 1.2, 5.2.6). The header and the status byte
 * live in memory the client owns; `data` are the buffers between them,
 * device-writable for IN and GET_ID, device-readable otherwise. */
struct vhu_req {
	uint32_t type;		/* VIRTIO_BLK_T_* */
	uint64_t sector;	/* 512-byte units */
	const struct vhu_buf *data;
	unsigned ndata;		/* 0..VHU_SEGS_MAX */
	bool indirect;		/* one descriptor pointing at a table (2.7.5.3) */
	void *priv;		/* handed back in vhu_done */
};

struct vhu_done {
	void *priv;
	uint8_t status;		/* VIRTIO_BLK_S_*, 0xff if the device never wrote it,
				 * always 0xff for vhu_raw_take chains */
	uint32_t used_len;	/* what the device put in the used ring */
};

/* Connects to a back-end listening on the unix socket `path`. Errors:
 * -ENAMETOOLONG, and connect(2)'s (-ENOENT, -ECONNREFUSED, ...). */
int vhu_connect(const char *path, struct vhu_client **out);
/* Takes over an already connected socket (closed by vhu_free, also on
 * error). Errors: -EBADF (not an open fd), -ENOTSOCK. */
int vhu_adopt_fd(int fd, struct vhu_client **out);
/* Closes the socket, the eventfds and the memory. NULL is fine. */
void vhu_free(struct vhu_client *c);

/* GET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK, CONFIG,
 * CONFIGURE_MEM_SLOTS, STATUS when offered), GET_QUEUE_NUM,
 * GET_MAX_MEM_SLOTS, SET_OWNER, GET_CONFIG. Accepts VERSION_1 (required),
 * INDIRECT_DESC, EVENT_IDX and the block features this client
 * understands. `o` may be NULL (defaults). Errors: -ENOTSUP (no
 * VERSION_1), -EPROTO (a malformed reply), -EIO (the back-end refused),
 * -ETIMEDOUT, -ECONNRESET, -EPIPE, -EINVAL (called twice). */
int vhu_negotiate(struct vhu_client *c, const struct vhu_opts *o);
const struct vhu_info *vhu_info(const struct vhu_client *c);

/* Starts `queues` virtqueues of `queue_size` descriptors (a power of 2;
 * 0: 128) in a new region 0 that also has `data_size` bytes for
 * vhu_alloc: SET_FEATURES, SET_MEM_TABLE, then per queue
 * SET_VRING_NUM/BASE/ADDR/CALL/KICK and SET_VRING_ENABLE; with STATUS,
 * FEATURES_OK and DRIVER_OK. Returns once the back-end has taken it all
 * in (a REPLY_ACK or a GET_FEATURES round trip). Errors: as
 * vhu_negotiate, -EINVAL (0 or more queues than max_queues, a bad queue
 * size, called twice), -ENOMEM. After an error, only vhu_free. */
int vhu_start(struct vhu_client *c, unsigned queues, unsigned queue_size, size_t data_size);

/* Carves `len` bytes aligned to `align` (a power of 2) out of region
 * `region`, zeroed. Errors: -EINVAL, -ENOMEM (region full). */
int vhu_alloc(struct vhu_client *c, unsigned region, size_t len, size_t align,
	      struct vhu_buf *out);
/* Shares one more region of `size` bytes at guest address `gpa`
 * (0: above every region so far): ADD_MEM_REG with CONFIGURE_MEM_SLOTS,
 * else SET_MEM_TABLE with every region. Errors: -ENOSPC (no slot left:
 * GET_MAX_MEM_SLOTS, or 8 for SET_MEM_TABLE),
 * -EINVAL (gpa overlaps), and as vhu_start. */
int vhu_add_region(struct vhu_client *c, size_t size, uint64_t gpa, unsigned *idx);
/* Withdraws region `idx` (not 0, which holds the rings): REM_MEM_REG, or
 * SET_MEM_TABLE with the rest; then unmaps it. */
int vhu_remove_region(struct vhu_client *c, unsigned idx);

/* Puts a request on queue q's avail ring; vhu_kick makes it known.
 * Errors: -EINVAL (bad queue, too many buffers), -ENOTSUP (indirect
 * without INDIRECT_DESC), -ENOSPC (too few free descriptors: reap). */
int vhu_submit(struct vhu_client *c, unsigned q, const struct vhu_req *r);
/* Notifies the device of what was submitted since the last kick, unless
 * it asked not to be (VRING_USED_F_NO_NOTIFY, or avail_event). */
int vhu_kick(struct vhu_client *c, unsigned q);
/* Takes up to `max` completions off queue q's used ring. Returns how many.
 * Errors: -EPROTO (the device named a chain not in flight, or moved
 * used->idx too far: the queue is unusable from then on). */
int vhu_reap(struct vhu_client *c, unsigned q, struct vhu_done *done, unsigned max);
/* Chains in flight on queue q. */
unsigned vhu_inflight(const struct vhu_client *c, unsigned q);
/* Sleeps until a call eventfd fires or a used ring has entries to reap
 * (re-arming EVENT_IDX first, so no completion is missed), at most
 * timeout_ms (< 0: forever). Returns 1 (something to reap), 0 (timeout).
 * Errors: -ECONNRESET (back-end hung up), -EPROTO (it sent an unasked
 * message), -EINTR (a signal). */
int vhu_wait(struct vhu_client *c, int timeout_ms);
/* vhu_wait over several clients at once (one thread driving many
 * devices); also -ENOMEM. */
int vhu_wait_many(struct vhu_client *const *cs, unsigned n, int timeout_ms);

/* One request submitted, kicked and waited for (at most the reply timeout)
 * on an idle queue: for single commands (flush, GET_ID, ...). Returns the
 * status byte (>= 0) or a negative errno: -EBUSY (chains in flight),
 * -ETIMEDOUT, and those of vhu_submit, vhu_reap and vhu_wait. */
int vhu_run_one(struct vhu_client *c, unsigned q, uint32_t type, uint64_t sector,
		const struct vhu_buf *data, unsigned ndata, uint32_t *used_len);

/* Pure helpers, for tests. Whether the device writes a request type's
 * data (IN, GET_ID). */
bool vhu_blk_data_is_in(uint32_t type);
/* Writes one request's descriptors into `table` at indices ids[0..n),
 * n = ndata + 2, linked in that order: header (readable), data, status
 * (writable). Returns n, or -E2BIG when ndata > VHU_SEGS_MAX. */
int vhu_blk_chain(struct vring_desc *table, const uint16_t *ids, uint64_t hdr_gpa,
		  uint64_t status_gpa, uint32_t type, const struct vhu_buf *data, unsigned ndata);
/* The virtio 1.2 2.7.7.2 / 2.7.10 test: whether moving an index from old
 * to new passed `event`. */
bool vhu_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx);

/* Raw hooks for hostile tests. */

/* Sends `hdr` as it is (its size need not match `len`) followed by `len`
 * payload bytes and `nfds` fds. Errors: send's (-EPIPE once the back-end
 * closed). */
int vhu_send_raw(struct vhu_client *c, const struct vhost_user_hdr *hdr, const void *payload,
		 size_t len, const int *fds, unsigned nfds);
/* Receives one message (payload up to sizeof(msg->payload); fds that come
 * with it are closed). Returns the payload bytes read. Errors:
 * -ETIMEDOUT, -ECONNRESET (EOF), -EPROTO (payload too large). */
int vhu_recv_raw(struct vhu_client *c, struct vhost_user_msg *msg, int timeout_ms);
/* A well-formed request: sends payload[0..size) with fds, with NEED_REPLY
 * when REPLY_ACK is negotiated and `request` has no reply of its own, and
 * reads the reply: into reply[0..reply_size) for requests that have one
 * (its size must match), or the REPLY_ACK u64 (non-zero: -EIO). */
int vhu_msg(struct vhu_client *c, uint32_t request, const void *payload, uint32_t size,
	    const int *fds, unsigned nfds, void *reply, uint32_t reply_size);
int vhu_sock_fd(const struct vhu_client *c);

struct vhu_ring_view {
	unsigned size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	int kick_fd, call_fd;
};
int vhu_ring_view(const struct vhu_client *c, unsigned q, struct vhu_ring_view *out);
/* Takes n descriptors off queue q's free list into ids[] for the caller to
 * fill as it likes; the chain is tracked under ids[0] with `priv`, so a
 * completion naming ids[0] is reaped (and frees all n) normally. */
int vhu_raw_take(struct vhu_client *c, unsigned q, unsigned n, uint16_t *ids, void *priv);
/* Appends any head (in range or not) to the avail ring and publishes it. */
int vhu_raw_avail(struct vhu_client *c, unsigned q, uint16_t head);
/* Stores any value in avail->idx; later submits continue from it. */
int vhu_raw_set_avail_idx(struct vhu_client *c, unsigned q, uint16_t idx);

#endif
