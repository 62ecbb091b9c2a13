/* A minimal epoll loop: callbacks on readable fds, and signals as events
 * (SIGINT/SIGTERM go through a signalfd so handlers never run in the
 * middle of driver code). */
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

int evloop_new(struct evloop **out);
void evloop_free(struct evloop *l);
/* Watches fd for `events` (EPOLLIN, ...). Returns 0 or negative errno. */
int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_cb cb, void *arg);
int evloop_del(struct evloop *l, int fd);
/* Blocks SIGINT and SIGTERM and reports them through cb(arg, signo). */
int evloop_catch_signals(struct evloop *l, evloop_cb cb, void *arg);
/* Runs until evloop_stop(); timeout_ms < 0 waits forever per round.
 * Returns 0 or a negative errno from epoll. */
int evloop_run(struct evloop *l);
/* One round: waits at most timeout_ms, dispatches, returns events seen. */
int evloop_once(struct evloop *l, int timeout_ms);
void evloop_stop(struct evloop *l);
void evloop_defer(struct evloop *l, struct evloop_defer *d);
void evloop_defer_cancel(struct evloop *l, struct evloop_defer *d);
bool evloop_stopped(const struct evloop *l);

#endif
