/* Clients: who may use which disk or partition, and through which
 * endpoint. Static clients come from the command line (--client ...),
 * dynamic ones from create() on the control socket (--svr). A whole disk
 * and its partitions exclude each other: no two clients ever hold
 * overlapping blocks. */
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

/* Creates a client of `device`. With socket_path, it listens there; else
 * *fd_out receives the front end's end of a connected socket pair.
 * Errors (with a one-line reason in why): -EINVAL bad name or argument,
 * -ENODEV no such disk or partition, -EBUSY it or an overlapping one is
 * claimed, -EEXIST the socket path is in use, others from the transport. */
int clients_create(struct clients *cs, bool is_static, const char *device, unsigned ds_max,
		   bool readonly, const char *socket_path, int *fd_out, char *why, size_t whylen);
/* Ends the dynamic client created with socket=PATH. -ENOENT if none;
 * -EPERM for a static client. */
int clients_destroy(struct clients *cs, const char *path, char *why, size_t whylen);
/* One line per client into buf (NUL-terminated, truncated to cap). */
void clients_list(const struct clients *cs, char *buf, size_t cap);

/* Opens the control socket at path (removed again by clients_free). */
int clients_listen_ctl(struct clients *cs, const char *path);

#endif
