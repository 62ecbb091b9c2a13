/* A minimal epoll loop: callbacks on readable fds, and signals as events
 * (SIGINT, SIGTERM, SIGHUP and SIGQUIT go through a signalfd so handlers
 * never run in the middle of driver code). */
#ifndef NVD_UTIL_EVLOOP_H
#define NVD_UTIL_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;
typedef void (*evloop_cb)(void *arg, uint32_t events);

/* Work deferred to the end of the current round, when no callback of
 * this loop is on the stack: how an object that a callback must not free
 * in place (its caller still holds it) ends. The owner embeds the node;
 * queueing a queued node does nothing; cancel before freeing it. */
struct evloop_defer {
	void (*cb)(void *arg);
	void *arg;
	struct evloop_defer *next;
	bool queued;
};

/* Adaptive bounded polling (as QEMU's AioContext): before the loop
 * sleeps, it asks every poller for work, again and again, for a window of
 * time; a poller looks without system calls (an NVMe completion queue's
 * phase tag, a virtqueue's avail index) and does what it finds. The window
 * starts at EVLOOP_POLL_START_NS once events come sooner than the cap,
 * doubles while they keep coming within the cap and polling did not find
 * them, and drops to 0 as soon as the loop waits longer than the cap: an
 * idle loop does not poll at all. Two windows adapt so, one for waits
 * for a device and one for waits for clients (evloop_poller.busy).
 *
 * While the loop polls, pollers keep their peers' notifications off
 * (notify(arg, false): a driver is asked not to kick); before the loop
 * sleeps, notify(arg, true) asks for them again and, fenced against the
 * peer, does what arrived meanwhile (no wake-up is lost: the peer either
 * sees notifications on or its work is seen here). */
struct evloop_poller {
	/* Does what work it finds; returns true if it found some. */
	bool (*poll)(void *arg);
	/* Notifications off or on; turning them on, returns true if it found
	 * (and did) work that came while they were off. */
	bool (*notify)(void *arg, bool on);
	/* Optional: true while it has work under way that raises no event
	 * (commands on queues without interrupts). Then rounds whose window
	 * ends go on polling, window after window with a look at the fds in
	 * between, up to EVLOOP_PENDING_POLL_MS in all, and a loop that
	 * sleeps all the same wakes every EVLOOP_PENDING_MS to look (a
	 * command that hangs costs ticks, not a spinning CPU). */
	bool (*pending)(void *arg);
	/* Optional: true while it has work under way at a device (commands
	 * in flight, with or without interrupts). A round with no poller
	 * busy waits for clients, and polls within its own window, capped by
	 * evloop_set_poll_idle_max: a device answers within microseconds, a
	 * client's next request may be a whole round trip through its kernel
	 * away, and where a wake-up is cheap, spinning through that buys
	 * little latency for a lot of CPU. Each window adapts to its own
	 * waits: a client's long pause does not close the device's. */
	bool (*busy)(void *arg);
	void *arg;
	/* private */
	struct evloop_poller *next, *prev;
	bool added;
};

#define EVLOOP_POLL_START_NS 4000u
#define EVLOOP_PENDING_MS 1
#define EVLOOP_PENDING_POLL_MS 20
/* While polling keeps finding work, the fds are looked at no more often
 * than this (a system call a round costs the data path more than any
 * event of theirs loses by waiting this long). */
#define EVLOOP_FD_LOOK_US 200
/* --poll-max-us of nvme-drv and nvme-drv-perf: the default, measured on
 * the test bed (README "Polling"), and the most that is still a window
 * rather than a busy CPU by another name. */
#define EVLOOP_POLL_MAX_US_DEFAULT 1000
#define EVLOOP_POLL_MAX_US_LIMIT 10000
/* --poll-idle-us: the cap while the loop waits for clients (no poller
 * busy). */
#define EVLOOP_POLL_IDLE_US_DEFAULT 1000

/* A gate asked, at most every EVLOOP_GATE_MS while the loop would poll,
 * whether it may (cpuload_spare: only on spare CPU). While it says no,
 * the window stays 0: the loop sleeps as it would without a cap. */
#define EVLOOP_GATE_MS 200
typedef bool (*evloop_gate_fn)(void *arg);
void evloop_set_poll_gate(struct evloop *l, evloop_gate_fn fn, void *arg);

/* What polling did, for tests and statistics. */
struct evloop_poll_stats {
	uint64_t poll_ns;	/* the current window, waiting for a device */
	uint64_t idle_poll_ns;	/* and waiting for clients (no poller busy) */
	uint64_t rounds;	/* rounds that polled */
	uint64_t hits;		/* of them, rounds whose polling found work */
	uint64_t sleeps;	/* rounds that slept in epoll_wait */
	uint64_t ticks;		/* of them, cut to EVLOOP_PENDING_MS for pending work */
	uint64_t stretches;	/* windows that ended with work pending, polled on */
	uint64_t gated;		/* gate samples that kept polling off */
	uint64_t skips;		/* rounds whose polling found work, fds not looked at */
};

int evloop_new(struct evloop **out);
void evloop_free(struct evloop *l);
/* Watches fd for `events` (EPOLLIN, ...). Returns 0 or negative errno. */
int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_cb cb, void *arg);
int evloop_del(struct evloop *l, int fd);
/* Changes the events an added fd is watched for (same callback). Returns
 * 0, -ENOENT for an fd not added, or a negative errno from epoll. */
int evloop_mod(struct evloop *l, int fd, uint32_t events);
/* Blocks SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGUSR2 and reports them through
 * cb(arg, signo). */
int evloop_catch_signals(struct evloop *l, evloop_cb cb, void *arg);
/* Blocks the same signals now, before any loop exists: one that comes
 * during start-up waits for evloop_catch_signals() instead of killing the
 * process half set up (the loop then stops at once). */
int evloop_block_signals(void);
/* Runs until evloop_stop(); timeout_ms < 0 waits forever per round.
 * Returns 0 or a negative errno from epoll. */
int evloop_run(struct evloop *l);
/* One round: waits at most timeout_ms, dispatches, returns events seen. */
int evloop_once(struct evloop *l, int timeout_ms);
/* Called before the loop runs callbacks (fd events, deferred work) and
 * after, in every round that has any: how a control thread takes its data
 * threads' state for the time its callbacks run (util/park.h). The
 * pollers' walks are not enclosed. */
void evloop_set_hooks(struct evloop *l, void (*before)(void *arg), void (*after)(void *arg),
		      void *arg);
void evloop_stop(struct evloop *l);
/* The poll window's cap in microseconds; 0 (the default) never polls.
 * It also caps the window of rounds that wait for clients, until
 * evloop_set_poll_idle_max sets that one's own (at most this one). */
void evloop_set_poll_max(struct evloop *l, unsigned us);
void evloop_set_poll_idle_max(struct evloop *l, unsigned us);
/* Adds or removes a poller (the caller owns it; remove before freeing,
 * from anywhere, also from a poller's own callback). */
void evloop_poller_add(struct evloop *l, struct evloop_poller *p);
void evloop_poller_del(struct evloop *l, struct evloop_poller *p);
void evloop_poll_stats(const struct evloop *l, struct evloop_poll_stats *out);
void evloop_defer(struct evloop *l, struct evloop_defer *d);
/* Work yielded to the end of the round, after the fd callbacks that are
 * ready: how a callback with more to do than its budget lets every other
 * peer go first (vblk's per-virtqueue budget). The loop does not sleep
 * while any waits; what yields again from there runs a round later.
 * Queueing a queued node does nothing; evloop_defer_cancel() cancels it
 * too. */
void evloop_yield(struct evloop *l, struct evloop_defer *d);
void evloop_defer_cancel(struct evloop *l, struct evloop_defer *d);
bool evloop_stopped(const struct evloop *l);

#endif
