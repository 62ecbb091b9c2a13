#include "util/evloop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* Watches grow as needed, so that the number of clients is bounded by
 * the descriptor limit and epoll's, not by a table of ours. A slot's index
 * is its epoll cookie; a freed slot is reused, never moved. */
#define WATCH_CHUNK 256

/* A slot's generation goes with its events (epoll data: slot and
 * generation): an event fetched for a watch that was deleted before it
 * was dispatched (by a callback of the same round, or by a control thread
 * while this one was parked) is dropped, not given to whichever watch took
 * the slot since. */
struct watch {
	int fd;
	evloop_cb cb;
	void *arg;
	bool used;
	uint32_t gen;
};

static uint64_t ev_data(const struct watch *w, unsigned i)
{
	return (uint64_t)w->gen << 32 | i;
}

struct evloop {
	int epfd;
	int sigfd;
	evloop_cb sig_cb;
	void *sig_arg;
	bool stop;
	struct evloop_defer *deferred;	/* in queueing order */
	struct evloop_defer *yielded;	/* evloop_yield(): for the end of a round */
	struct evloop_defer *batch;	/* the yielded ones running now (run_yielded) */
	struct watch *w;
	unsigned nw;		/* slots allocated */
	unsigned free_hint;	/* no free slot below it */
	/* polling (evloop.h) */
	struct evloop_poller *pollers;
	struct evloop_poller *cursor;	/* the next poller of a walk under way */
	uint64_t poll_max_ns;
	uint64_t idle_max_ns;	/* UINT64_MAX: as poll_max_ns */
	bool polling;		/* the pollers' notifications are off */
	uint64_t pending_since;	/* polling past windows for pending work since */
	uint64_t fds_at;	/* when a polling round last looked at the fds */
	evloop_gate_fn gate;
	void *gate_arg;
	uint64_t gate_at;	/* when it was last asked */
	bool gate_shut;		/* its last answer was no */
	struct evloop_poll_stats st;
	void (*hook_before)(void *arg), (*hook_after)(void *arg);
	void *hook_arg;
};

int evloop_new(struct evloop **out)
{
	struct evloop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->sigfd = -1;
	l->idle_max_ns = UINT64_MAX;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int rc = -errno;
		free(l);
		return rc;
	}
	*out = l;
	return 0;
}

void evloop_free(struct evloop *l)
{
	if (!l)
		return;
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	free(l->w);
	free(l);
}

int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_cb cb, void *arg)
{
	struct epoll_event ev = { .events = events };
	unsigned i = l->free_hint;

	while (i < l->nw && l->w[i].used)
		i++;
	if (i == l->nw) {
		struct watch *w = realloc(l->w, (l->nw + WATCH_CHUNK) * sizeof(*w));

		if (!w)
			return -ENOMEM;
		memset(w + l->nw, 0, WATCH_CHUNK * sizeof(*w));
		l->w = w;
		l->nw += WATCH_CHUNK;
	}
	ev.data.u64 = (uint64_t)(l->w[i].gen + 1) << 32 | i;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -errno;
	l->w[i] = (struct watch){ .fd = fd, .cb = cb, .arg = arg, .used = true, .gen = l->w[i].gen + 1 };
	l->free_hint = i + 1;
	return 0;
}

int evloop_del(struct evloop *l, int fd)
{
	for (unsigned i = 0; i < l->nw; i++) {
		if (l->w[i].used && l->w[i].fd == fd) {
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
			l->w[i].used = false;
			if (i < l->free_hint)
				l->free_hint = i;
			return 0;
		}
	}
	return -ENOENT;
}

int evloop_mod(struct evloop *l, int fd, uint32_t events)
{
	for (unsigned i = 0; i < l->nw; i++) {
		if (l->w[i].used && l->w[i].fd == fd) {
			struct epoll_event ev = { .events = events, .data.u64 = ev_data(&l->w[i], i) };

			return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
		}
	}
	return -ENOENT;
}

static void on_signal(void *arg, uint32_t events)
{
	struct evloop *l = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(l->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		l->sig_cb(l->sig_arg, si.ssi_signo);
}

/* SIGHUP (the terminal went away) and SIGQUIT (the quit key) stop as
 * cleanly as SIGTERM: their default actions would leave sockets and VDUSE
 * devices behind. */
static void loop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	sigaddset(set, SIGUSR2);
}

int evloop_block_signals(void)
{
	sigset_t set;

	loop_signals(&set);
	return sigprocmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -errno;
}

int evloop_catch_signals(struct evloop *l, evloop_cb cb, void *arg)
{
	sigset_t set;
	int rc;

	loop_signals(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -errno;
	l->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (l->sigfd < 0)
		return -errno;
	l->sig_cb = cb;
	l->sig_arg = arg;
	rc = evloop_add(l, l->sigfd, EPOLLIN, on_signal, l);
	return rc;
}

static void queue_at_end(struct evloop_defer **p, struct evloop_defer *d)
{
	while (*p)
		p = &(*p)->next;
	d->next = NULL;
	d->queued = true;
	*p = d;
}

void evloop_defer(struct evloop *l, struct evloop_defer *d)
{
	struct evloop_defer **p = &l->deferred;

	if (!d->queued)
		queue_at_end(p, d);
}

void evloop_yield(struct evloop *l, struct evloop_defer *d)
{
	if (!d->queued)
		queue_at_end(&l->yielded, d);
}

static bool unlink_from(struct evloop_defer **p, struct evloop_defer *d)
{
	for (; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			return true;
		}
	return false;
}

void evloop_defer_cancel(struct evloop *l, struct evloop_defer *d)
{
	if (!unlink_from(&l->deferred, d) && !unlink_from(&l->yielded, d))
		unlink_from(&l->batch, d);
	d->queued = false;
}

static void hooks_before(struct evloop *l);
static void hooks_after(struct evloop *l);

static void run_deferred(struct evloop *l)
{
	if (!l->deferred)
		return;
	hooks_before(l);
	while (l->deferred) {
		struct evloop_defer *d = l->deferred;

		l->deferred = d->next;
		d->queued = false;
		d->cb(d->arg);
	}
	hooks_after(l);
}

/* What was yielded before this point, once each: what they yield again
 * waits for the next round. The batch stays the loop's while it runs, so
 * that a callback may cancel (and free) another's node. Called inside
 * the hooks. */
static void run_yielded(struct evloop *l)
{
	l->batch = l->yielded;
	l->yielded = NULL;
	while (l->batch) {
		struct evloop_defer *d = l->batch;

		l->batch = d->next;
		d->queued = false;
		d->cb(d->arg);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t idle_cap(const struct evloop *l)
{
	return l->idle_max_ns < l->poll_max_ns ? l->idle_max_ns : l->poll_max_ns;
}

static void clamp_windows(struct evloop *l)
{
	if (l->st.poll_ns > l->poll_max_ns)
		l->st.poll_ns = l->poll_max_ns;
	if (l->st.idle_poll_ns > idle_cap(l))
		l->st.idle_poll_ns = idle_cap(l);
}

void evloop_set_poll_max(struct evloop *l, unsigned us)
{
	l->poll_max_ns = (uint64_t)us * 1000u;
	clamp_windows(l);
}

void evloop_set_poll_idle_max(struct evloop *l, unsigned us)
{
	l->idle_max_ns = (uint64_t)us * 1000u;
	clamp_windows(l);
}

void evloop_set_poll_gate(struct evloop *l, evloop_gate_fn fn, void *arg)
{
	l->gate = fn;
	l->gate_arg = arg;
	l->gate_at = 0;
	l->gate_shut = false;
}

/* Whether the gate lets the loop poll; asks it at most every
 * EVLOOP_GATE_MS, and shuts the window while it says no. */
static bool gate_open(struct evloop *l)
{
	uint64_t now;

	if (!l->gate)
		return true;
	now = now_ns();
	if (!l->gate_at || now - l->gate_at >= (uint64_t)EVLOOP_GATE_MS * 1000000u) {
		l->gate_at = now;
		l->gate_shut = !l->gate(l->gate_arg);
		if (l->gate_shut)
			l->st.gated++;
	}
	if (l->gate_shut)
		l->st.poll_ns = l->st.idle_poll_ns = 0;
	return !l->gate_shut;
}

void evloop_poller_add(struct evloop *l, struct evloop_poller *p)
{
	if (p->added)
		return;
	p->prev = NULL;
	p->next = l->pollers;
	if (l->pollers)
		l->pollers->prev = p;
	l->pollers = p;
	p->added = true;
}

void evloop_poller_del(struct evloop *l, struct evloop_poller *p)
{
	if (!p->added)
		return;
	/* Its peers' notifications back on: a ring must not stay asking for
	 * no kicks after whoever polled it has stopped looking. */
	if (l->polling)
		p->notify(p->arg, true);
	if (l->cursor == p)
		l->cursor = p->next;
	if (p->prev)
		p->prev->next = p->next;
	else
		l->pollers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->next = p->prev = NULL;
	p->added = false;
}

void evloop_poll_stats(const struct evloop *l, struct evloop_poll_stats *out)
{
	*out = l->st;
}

/* One walk over the pollers, safe against any of them being removed on
 * the way (the cursor is moved past a removed one). */
static bool walk(struct evloop *l, bool poll, bool on)
{
	bool found = false;

	for (struct evloop_poller *p = l->pollers; p; p = l->cursor) {
		l->cursor = p->next;
		if (poll ? p->poll(p->arg) : p->notify(p->arg, on))
			found = true;
	}
	l->cursor = NULL;
	return found;
}

/* Whether a poller has work under way that raises no event. */
static bool pending(const struct evloop *l)
{
	for (const struct evloop_poller *p = l->pollers; p; p = p->next)
		if (p->pending && p->pending(p->arg))
			return true;
	return false;
}

/* Whether a poller has work under way at a device: the round then waits
 * for it, not for clients. A loop none of whose pollers can tell has one
 * window, poll_ns. */
static bool busy(const struct evloop *l)
{
	bool told = false;

	for (const struct evloop_poller *p = l->pollers; p; p = p->next) {
		if (!p->busy)
			continue;
		if (p->busy(p->arg))
			return true;
		told = true;
	}
	return !told;
}

/* The window after a round that waited `block_ns` for its first event
 * (polling included), as QEMU's aio_poll adjusts it: a wait that polling
 * covered changes nothing; one longer than the cap means polling could
 * not have helped, so it stops; a shorter one means a longer window would
 * have caught it. */
static void adjust_window(uint64_t *win, uint64_t cap, uint64_t block_ns)
{
	uint64_t w = *win;

	if (block_ns <= w)
		return;
	if (block_ns > cap)
		w = 0;
	else if (w < cap)
		w = w ? 2 * w : EVLOOP_POLL_START_NS;
	*win = w < cap ? w : cap;
}

/* Notifications back on when the loop stops looking (evloop_run returns,
 * polling switched off): the peers must be able to wake whoever runs
 * next, or this loop in a later round. */
static bool polling_end(struct evloop *l)
{
	if (!l->polling)
		return false;
	l->polling = false;
	return walk(l, false, true);
}

/* Polls for at most the window. Returns true if work was found (the
 * round then must not sleep; *hit says polling found it); leaves
 * notifications off while the loop keeps polling, on (with a last look)
 * before it sleeps. */
static bool poll_round(struct evloop *l, uint64_t t0, uint64_t window, bool *hit)
{
	if (window) {
		l->st.rounds++;
		if (!l->polling) {
			walk(l, false, false);
			l->polling = true;
		}
		uint64_t now;

		do {
			if (walk(l, true, false)) {
				l->st.hits++;
				l->pending_since = 0;
				*hit = true;
				return true;
			}
			now = now_ns();
		} while (now - t0 < window);
		/* Past the window, work that raises no event keeps the loop
		 * polling, up to EVLOOP_PENDING_POLL_MS in all: it would
		 * otherwise wait for a tick, and the window would collapse with
		 * it (on the TCG bed a command now and then takes several
		 * milliseconds). The round ends as if it had found work, so the
		 * fds are looked at between windows. */
		if (pending(l)) {
			if (!l->pending_since)
				l->pending_since = now;
			if (now - l->pending_since < EVLOOP_PENDING_POLL_MS * 1000000ull) {
				l->st.stretches++;
				return true;
			}
		}
	}
	l->pending_since = 0;
	return polling_end(l);
}

void evloop_set_hooks(struct evloop *l, void (*before)(void *arg), void (*after)(void *arg),
		      void *arg)
{
	l->hook_before = before;
	l->hook_after = after;
	l->hook_arg = arg;
}

static void hooks_before(struct evloop *l)
{
	if (l->hook_before)
		l->hook_before(l->hook_arg);
}

static void hooks_after(struct evloop *l)
{
	if (l->hook_after)
		l->hook_after(l->hook_arg);
}

int evloop_once(struct evloop *l, int timeout_ms)
{
	struct epoll_event ev[64];
	bool timed = l->poll_max_ns && l->pollers && timeout_ms != 0 && gate_open(l);
	uint64_t t0 = 0;
	bool pend, dev = false, hit = false, look = true;
	int n;

	run_deferred(l);
	/* Yielded work waits: the round looks at the fds without sleeping
	 * and, while the loop polls (its peers asked not to notify), walks
	 * the pollers once; their callbacks and the pollers go first, then
	 * the yielded work goes on. */
	if (l->yielded) {
		timeout_ms = 0;
		timed = false;
		if (l->polling) {
			l->st.rounds++;
			if (walk(l, true, false))
				l->st.hits++;
		}
	}
	if (timed) {
		dev = busy(l);
		t0 = now_ns();
		if (poll_round(l, t0, dev ? l->st.poll_ns : l->st.idle_poll_ns, &hit)) {
			/* Found by polling: the wait was within the window. The
			 * fds are still looked at, without waiting, but while
			 * polling keeps finding work only every
			 * EVLOOP_FD_LOOK_US: what they bring (the control
			 * plane, timers) waits that long at most, and the
			 * data path spares a system call a round. */
			look = !hit || now_ns() - l->fds_at >= EVLOOP_FD_LOOK_US * 1000ull;
			timeout_ms = 0;
			timed = false;
			run_deferred(l);
		}
	} else if (timeout_ms != 0 && polling_end(l)) {
		/* Polling was switched off while notifications were off. */
		timeout_ms = 0;
	}
	/* What the pollers left for the end of the round (a failed client,
	 * a notification) is not left waiting for the next wake-up. */
	if (timeout_ms != 0 && (l->deferred || l->yielded)) {
		run_deferred(l);
		timeout_ms = 0;
		timed = false;
	}
	/* Work that raises no event: sleep no longer than a tick, and look
	 * on waking whatever woke the loop. */
	pend = timeout_ms != 0 && pending(l);
	if (pend && (timeout_ms < 0 || timeout_ms > EVLOOP_PENDING_MS)) {
		timeout_ms = EVLOOP_PENDING_MS;
		l->st.ticks++;
	}
	if (timeout_ms != 0)
		l->st.sleeps++;
	if (look) {
		n = epoll_wait(l->epfd, ev, 64, timeout_ms);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		/* Only a loop that polls skips looks, and only it needs the
		 * time of this one. */
		if (l->poll_max_ns)
			l->fds_at = now_ns();
	} else {
		l->st.skips++;
		n = 0;
	}
	/* A tick is no event: it says nothing of how soon events come. */
	if (timed && !(pend && n == 0)) {
		if (dev)
			adjust_window(&l->st.poll_ns, l->poll_max_ns, now_ns() - t0);
		else
			adjust_window(&l->st.idle_poll_ns, idle_cap(l), now_ns() - t0);
	}
	if (pend)
		walk(l, true, false);
	if (n > 0 || l->deferred || l->yielded) {
		hooks_before(l);
		for (int i = 0; i < n; i++) {
			uint32_t slot = (uint32_t)ev[i].data.u64;
			struct watch *w = slot < l->nw ? &l->w[slot] : NULL;

			if (w && w->used && w->gen == (uint32_t)(ev[i].data.u64 >> 32))
				w->cb(w->arg, ev[i].events);
		}
		run_yielded(l);
		run_deferred(l);
		hooks_after(l);
	}
	return n;
}

int evloop_run(struct evloop *l)
{
	int rc = 0;

	while (!l->stop) {
		rc = evloop_once(l, -1);
		if (rc < 0)
			break;
	}
	polling_end(l);
	return rc < 0 ? rc : 0;
}

void evloop_stop(struct evloop *l)
{
	l->stop = true;
}

bool evloop_stopped(const struct evloop *l)
{
	return l->stop;
}
