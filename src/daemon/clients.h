/* Clients: who may use which disk or partition, and through which
 * endpoint: a vhost-user socket, or a VDUSE block device of this machine's
 * kernel. Static clients come from the command line (--client ...),
 * dynamic ones from create() on the control socket (--svr), which destroy
 * ends (a VDUSE one is answered once the kernel has let go of the device).
 * A whole disk and its partitions exclude each other: no two clients ever
 * hold overlapping blocks. */
#ifndef NVD_DAEMON_CLIENTS_H
#define NVD_DAEMON_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "blk/host.h"
#include "util/evloop.h"
#include "vblk/vblk.h"

struct clients;

int clients_new(struct host *host, struct evloop *loop, const struct vblk_trusted *trusted,
		unsigned ntrusted, struct clients **out);
/* Destroys every client (removing their sockets) and the control socket. */
void clients_free(struct clients *cs);

/* What a new client gets, and how it is reached. */
struct client_spec {
	const char *device;	/* a device name (blk/devname.h) */
	unsigned ds_max;	/* memory regions at most (a VDUSE device counts its own) */
	bool readonly;
	const char *socket;	/* vhost-user: listen on this path; or */
	const char *vduse;	/* VDUSE: make the kernel block device of this name; */
	/* neither: *fd_out receives the front end's end of a socket pair. */
};

/* Creates a client of spec->device. A VDUSE client's block device appears
 * a moment later (once the kernel's driver has probed it).
 * Errors (with a one-line reason in why): -EINVAL bad name or argument,
 * -ENODEV no such disk or partition, -EBUSY it or an overlapping one is
 * claimed, -EEXIST the socket path or VDUSE name is in use, -ENOENT no
 * VDUSE in the kernel, others from the transport. */
int clients_create(struct clients *cs, bool is_static, const struct client_spec *spec, int *fd_out,
		   char *why, size_t whylen);
/* The server stops: takes every VDUSE device off the vdpa bus, serving
 * their I/O in flight on the loop until they are off or timeout_ms has
 * passed, and closes the control socket. clients_free() follows. */
void clients_shutdown(struct clients *cs, int timeout_ms);
/* One line per client into buf (NUL-terminated, truncated to cap). */
void clients_list(const struct clients *cs, char *buf, size_t cap);

/* Where state that outlives the process is kept (VDUSE inflight logs);
 * dir must stay valid. */
void clients_set_state_dir(struct clients *cs, const char *dir);

/* Opens the control socket at path (removed again by clients_free). */
int clients_listen_ctl(struct clients *cs, const char *path);

#endif
