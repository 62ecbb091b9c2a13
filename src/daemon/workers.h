/* nvme-drv's data threads (--threads N > 1), as SPDK's io_channels.
 *
 * Thread t owns, on every controller, the I/O queue pairs t, t + N, ...
 * (with their vectors and polled twins) and every client given to it
 * (workers_assign): its vhost-user socket or VDUSE device, its rings,
 * its memory and its QoS timer all live in t's event loop, and t alone
 * touches them. The control thread (main) keeps the control socket,
 * signals, the admin queues and the health check; every callback of its
 * loop runs with every data thread parked at the top of its loop
 * (util/park.h, evloop_set_hooks), so the control plane's code touches a
 * client or a controller as it did with one thread. What a data thread
 * must hand to the control plane (a client that ended) goes as a message
 * (workers_post), run on the control thread the same way.
 *
 * Threads: everything here on the control thread, except workers_post
 * (any thread). */
#ifndef NVD_DAEMON_WORKERS_H
#define NVD_DAEMON_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

#include "blk/host.h"
#include "util/evloop.h"

#define WORKERS_MAX 64

struct workers;

/* Sets up n data threads' loops on `h`'s controllers, polling up to
 * poll_max_us (poll_idle_us with no command in flight), and the control
 * loop `main_loop`'s share: the controllers' other vectors, the message
 * fd, the hooks that park the threads. With cpus (n of them, --cpus),
 * thread t runs on CPU cpus[t] alone. The threads start with workers_run.
 * Fails (why says why) if a queue pair a thread would own shares its
 * vector. */
int workers_new(struct host *h, struct evloop *main_loop, unsigned n, const unsigned *cpus,
		unsigned poll_max_us, unsigned poll_idle_us, struct workers **out, char *why,
		size_t whylen);
int workers_run(struct workers *w);
/* Stops and joins the threads (their loops stay until workers_free). */
void workers_stop(struct workers *w);
void workers_free(struct workers *w);

/* Parks every data thread (nests), for control-plane work outside the
 * control loop's callbacks (those are parked for already). NULL: none. */
void workers_hold(struct workers *w);
void workers_release(struct workers *w);

/* Where a client of controller `ctrl` goes, the n-th client overall:
 * its thread's loop and the queue pairs it may use (vblk_conf). */
struct evloop *workers_assign(struct workers *w, struct nvme_ctrl *ctrl, unsigned n,
			      unsigned *qp_base, unsigned *qp_step);

/* How many data threads there are, and thread i's loop (for its polling
 * statistics, read while it is parked). */
unsigned workers_nr(const struct workers *w);
const struct evloop *workers_loop(const struct workers *w, unsigned i);

/* A message to the control thread: its owner embeds it (so posting
 * cannot fail) and sets fn and arg once. */
struct workers_msg {
	void (*fn)(void *arg);
	void *arg;
	struct workers_msg *next;
	bool queued;
};
/* Runs m->fn(m->arg) on the control thread, with the data threads parked,
 * at its loop's next round; posting a queued message does nothing. From
 * any thread. workers_cancel takes it off the queue (its owner is freed). */
void workers_post(struct workers *w, struct workers_msg *m);
void workers_cancel(struct workers *w, struct workers_msg *m);

#endif
