/* Clients: who may use which disk or partition, and through which
 * endpoint: a vhost-user socket, or a VDUSE block device of this machine's
 * kernel. Static clients come from the command line (--client ...),
 * dynamic ones from create() on the control socket (--svr), which destroy
 * ends (a VDUSE one is answered once the kernel has let go of the device).
 * Whoever can connect to the control socket may create and list clients;
 * only a client's creator (by SO_PEERCRED uid), root or the server's own
 * user may destroy it.
 * A whole disk and its partitions exclude each other: no two clients ever
 * hold overlapping blocks. */
#ifndef NVD_DAEMON_CLIENTS_H
#define NVD_DAEMON_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "blk/host.h"
#include "ctl/args.h"
#include "util/rec.h"
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
	struct qos_limits qos;	/* all 0: no limits */
};

/* The limits a --qos list or create()'s words gave (ctl_qos.set aside). */
void clients_qos_from_ctl(const struct ctl_qos *q, struct qos_limits *out);

/* Creates a client of spec->device. A VDUSE client's block device appears
 * a moment later (once the kernel's driver has probed it).
 * Errors (with a one-line reason in why): -EINVAL bad name or argument,
 * -ENODEV no such disk or partition, -ENOTUNIQ a partition UUID, label
 * or MBR id found on two partitions, -EBUSY it or an overlapping one is
 * claimed, -EEXIST the socket path or VDUSE name is in use, -ENOENT no
 * VDUSE in the kernel, others from the transport. */
int clients_create(struct clients *cs, bool is_static, const struct client_spec *spec, int *fd_out,
		   char *why, size_t whylen);
/* The server stops: takes every VDUSE device off the vdpa bus, serving
 * their I/O in flight on the loop until they are off or timeout_ms has
 * passed, and closes the control socket. clients_free() follows. */
void clients_shutdown(struct clients *cs, int timeout_ms);
/* The server hands over to a successor (SIGUSR2, an upgrade in place):
 * closes the control socket, takes no more requests, and serves what is
 * in flight on the loop until none is or timeout_ms has passed. VDUSE
 * devices stay on the vdpa bus for the successor to take over; vhost-user
 * front ends reconnect to it. clients_free() follows. */
void clients_handover(struct clients *cs, int timeout_ms);
unsigned clients_count(const struct clients *cs);
/* The control socket's reports into o (util/rec.h; schemas in
 * nvme-drv-ctl(8)): CTL_CMD_LIST the clients, CTL_CMD_DISKS the
 * inventory with who holds what, CTL_CMD_STATS counters per client and
 * per controller. */
void clients_report(const struct clients *cs, enum ctl_cmd what, struct rec_out *o);

/* What --socket-owner and --socket-mode ask of the sockets the command
 * line makes: the static clients' and the control socket. (uid_t)-1 and
 * (gid_t)-1 leave owner or group as bound (the server's), mode -1 the
 * mode (the umask's; 0600 for the control socket). Dynamic clients'
 * sockets belong to their creator instead. Set before clients_create. */
struct sock_perm {
	uid_t uid;
	gid_t gid;
	int mode;
};
void clients_set_socket_perm(struct clients *cs, const struct sock_perm *perm);

/* Data threads (daemon/workers.h): clients made from now on are served
 * by them, their callbacks come back to this loop as messages. */
struct workers;
void clients_set_workers(struct clients *cs, struct workers *ws);
/* Where state that outlives the process is kept (VDUSE inflight logs);
 * dir must stay valid. */
void clients_set_state_dir(struct clients *cs, const char *dir);

/* Makes the dynamic clients recorded in the state directory again (a
 * restart): after the static clients and the control socket. Each that
 * cannot be made is said, and its record kept. */
void clients_restore(struct clients *cs);

/* Opens the control socket at path, mode 0600 (removed again by
 * clients_free). A peer's socket= paths must be files directly in
 * sock_dir (ctl_check_socket_in_dir), which the caller has resolved and
 * checked: canonical, writable by its owner only or sticky, so that a
 * socket bound there stays the server's until it removes it. Then
 * --socket-owner and --socket-mode (clients_set_socket_perm). Errors:
 * a negative errno, with one line in why naming the option. */
int clients_listen_ctl(struct clients *cs, const char *path, const char *sock_dir, char *why,
		       size_t whylen);

#endif
