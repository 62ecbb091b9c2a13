/* Parking a thread at a safe point, so that another thread may touch
 * what it owns.
 *
 * A data thread owns its state (queue pairs, clients) and is the only one
 * to touch it. The rare work that needs another thread's state as well (a
 * controller reset, a health check, a listing) runs on the control thread
 * while that owner is parked: the owner, asked through an eventfd its
 * event loop watches, stops at the top of its loop (no callback of its
 * own on the stack) and waits until released. Holding a park is a
 * hand-over of ownership, not a lock the data path takes: the owner's
 * fast path never touches the mutex.
 *
 * Threads: park_init, park_hold, park_release and park_destroy on the
 * control thread (destroy once the owner is joined); park_watch on the
 * owner, or before the owner's thread starts; park_leave on the owner. */
#ifndef NVD_UTIL_PARK_H
#define NVD_UTIL_PARK_H

#include <pthread.h>
#include <stdbool.h>

struct evloop;

struct park {
	int efd;		/* the owner's loop watches it */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned want;		/* holds outstanding */
	bool parked;		/* the owner waits in its callback */
	bool gone;		/* the owner left its loop for good */
	unsigned long parks;	/* times it parked, for tests */
};

/* Returns 0 or negative errno. */
int park_init(struct park *p);
void park_destroy(struct park *p);
/* On the owner, in the loop it runs: watch for requests to park. */
int park_watch(struct park *p, struct evloop *l);
/* On the owner, when it leaves its loop for good (or before it runs it at
 * all): holds return at once from then on. */
void park_leave(struct park *p);
/* Returns once the owner is parked (or gone). Holds nest. */
void park_hold(struct park *p);
/* park_hold in two steps, to park several owners at once: ask each, then
 * wait for each (a hold then as park_hold's). */
void park_ask(struct park *p);
void park_wait(struct park *p);
void park_release(struct park *p);

#endif
