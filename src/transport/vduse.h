/* The VDUSE transport: a virtio-blk device (src/vblk) served to the local
 * kernel as a block device (/dev/vdX), through VDUSE ("vDPA Device in
 * Userspace", Documentation/userspace-api/vduse.rst) and the virtio_vdpa
 * driver.
 *
 * An endpoint creates the VDUSE device NAME (/dev/vduse/NAME), puts it on
 * the vdpa bus as the vdpa device NAME (what `vdpa dev add name NAME
 * mgmtdev vduse` does), and answers the kernel on the caller's event loop.
 * Putting it on the bus and taking it off again run in a child process
 * (this program again, with VDUSE_HELPER_ARG): the kernel's virtio driver
 * probes (or removes) the device inside that netlink request and waits
 * for this process's answers meanwhile, so that no thread of ours may
 * wait there (a process killed then could never exit).
 *
 * Memory. The kernel's virtio driver reaches the device through VDUSE's
 * DMA layer: each ring is a coherent allocation of its own, and every data
 * buffer and indirect table is bounced through one bounce buffer at IOVA
 * 0 .. bounce size - 1 (64 MiB by default). The endpoint registers a
 * memfd of its own as that bounce buffer (VDUSE_IOTLB_REG_UMEM), so the
 * NVMe controller moves data straight to and from the pages the kernel
 * copies from and to: VDUSE's one copy, none of ours. Each IOTLB entry
 * becomes one vblk memory region (gpa = uva = its IOVA), so a device
 * needs 1 + (queues the driver uses) regions: ds-max counts them as it
 * counts a vhost-user front end's, and a device offers at most
 * ds_max - 1 queues (VDUSE_EP_MIN_DS_MAX: the bounce buffer and one ring).
 *
 * VDUSE memory comes from the kernel, never from a client: the -d
 * (registered dataspace) check does not apply to it (conf->ntrusted is
 * ignored). */
#ifndef NVD_TRANSPORT_VDUSE_H
#define NVD_TRANSPORT_VDUSE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/evloop.h"
#include "vblk/vblk.h"

#define VDUSE_EP_MIN_DS_MAX 2

/* argv[1] of the child that runs a vdpa bus request: a program that
 * serves VDUSE devices returns vduse_helper_main(argc, argv) first thing
 * when it sees it. */
#define VDUSE_HELPER_ARG "--vdpa-helper"
int vduse_helper_main(int argc, char **argv);

struct vduse_ep;

struct vduse_ep_ops {
	/* The device is on the vdpa bus and the kernel's driver has probed
	 * it: the block device exists (if virtio_vdpa and virtio_blk are
	 * loaded). */
	void (*attached)(void *ctx, struct vduse_ep *ep);
	/* After vduse_ep_stop(): the device left the vdpa bus (err 0), or
	 * could not be taken off (err < 0). Or it never got on the bus (err <
	 * 0). why says why. The owner destroys the endpoint. */
	void (*ended)(void *ctx, struct vduse_ep *ep, int err, const char *why);
};

/* Creates the VDUSE device `name` (1..31 of [A-Za-z0-9._-]) serving
 * conf->target with min(conf->num_queues, conf->ds_max - 1) queues, and
 * starts putting it on the vdpa bus (ops->attached or ops->ended follows).
 *
 * With a state_dir, the device's inflight log lives there
 * (vduse-NAME.inflight). A device of that name still on the vdpa bus
 * with a log there was left by a server of ours that died: it is taken
 * over instead (re-attached), every request the kernel still waits for is
 * answered once, and ops->attached follows from the loop. A device on the
 * bus without our log is refused (-EEXIST).
 * Errors, with a one-line reason in why: -ENOENT (no VDUSE: the module is
 * not loaded), -EEXIST (a VDUSE device of that name is in use), -EINVAL
 * (ds-max below VDUSE_EP_MIN_DS_MAX, or the kernel refused the device),
 * others from the kernel or vblk. */
int vduse_ep_create(struct evloop *loop, const char *name, const struct vblk_conf *conf,
		    const char *state_dir, const struct vduse_ep_ops *ops, void *ctx,
		    struct vduse_ep **out, char *why, size_t whylen);
/* Starts taking the device off the vdpa bus: the kernel's driver removes
 * the block device, waiting for the I/O in flight, which keeps being
 * served. Returns true when ops->ended will follow, false when the device
 * is not on the bus (destroy it now). */
bool vduse_ep_stop(struct vduse_ep *ep);
/* Releases the device now. One still on the vdpa bus (never stopped, or
 * not yet off it) stays there, broken, until `vdpa dev del NAME`: stop
 * first. Client memory stays mapped until the I/O in flight has ended. */
void vduse_ep_destroy(struct vduse_ep *ep);
const struct vblk_stats *vduse_ep_stats(const struct vduse_ep *ep);
/* vblk_set_qos() of the device. */
int vduse_ep_set_qos(struct vduse_ep *ep, const struct qos_limits *l);
/* Hand-over: takes no more requests; returns how many are still in
 * flight. Once none is, vduse_ep_destroy() leaves the device on the vdpa
 * bus with its inflight log, for a successor to take over: the kernel's
 * requests wait for it meanwhile. */
unsigned vduse_ep_quiesce(struct vduse_ep *ep);
/* The kernel's driver has set DRIVER_OK: the device is in use. */
bool vduse_ep_connected(const struct vduse_ep *ep);

#endif
