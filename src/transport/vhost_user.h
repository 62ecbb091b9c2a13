/* The vhost-user transport: a virtio-blk device (src/vblk) served to a
 * front end (QEMU, cloud-hypervisor, nvme-drv-io) over a Unix socket.
 *
 * An endpoint either listens on a path (one front end at a time; after a
 * disconnect the next may connect) or adopts a connected socket (the
 * endpoint ends with that connection). Everything runs on the caller's
 * event loop; a misbehaving front end loses its connection, never the
 * process. */
#ifndef NVD_TRANSPORT_VHOST_USER_H
#define NVD_TRANSPORT_VHOST_USER_H

#include "util/evloop.h"
#include "vblk/vblk.h"

struct vhu_ep;

struct vhu_ep_ops {
	/* An adopted connection closed: the owner destroys the endpoint. */
	void (*ended)(void *ctx, struct vhu_ep *ep);
};

/* Listens on `path` (which must not exist). Errors: negative errno. */
int vhu_ep_listen(struct evloop *loop, const char *path, const struct vblk_conf *conf,
		  const struct vhu_ep_ops *ops, void *ctx, struct vhu_ep **out);
/* Serves an already connected socket; takes ownership of fd (closed on
 * failure too). */
int vhu_ep_adopt(struct evloop *loop, int fd, const struct vblk_conf *conf,
		 const struct vhu_ep_ops *ops, void *ctx, struct vhu_ep **out);
/* Closes the connection and the listening socket (removing its path);
 * client memory stays mapped until I/O in flight has ended. */
void vhu_ep_destroy(struct vhu_ep *ep);
const struct vblk_stats *vhu_ep_stats(const struct vhu_ep *ep);
/* vblk_set_qos() of the device. */
int vhu_ep_set_qos(struct vhu_ep *ep, const struct qos_limits *l);
/* Hand-over: takes no more requests (vblk_quiesce); returns how many are
 * still in flight. Destroy the endpoint once none is: the front end sees
 * a disconnect and reconnects to the successor, which finds nothing of
 * ours left in its inflight region. */
unsigned vhu_ep_quiesce(struct vhu_ep *ep);
bool vhu_ep_connected(const struct vhu_ep *ep);

#endif
