/* The event loop's adaptive polling (evloop.h): the window grows while
 * events come sooner than the cap, drops to 0 after a longer wait, never
 * polls without a cap; notifications go off while it polls and on again
 * (with a last look that can keep it awake) before it sleeps; pollers may
 * remove themselves and each other during a walk. */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "util/evloop.h"

struct tp {
	struct evloop_poller p;
	struct evloop *l;
	unsigned polls, offs, ons;
	int find_at;		/* poll() returns true on this call (1-based) */
	bool work_on_notify;	/* notify(on) reports work once */
	struct tp *del_other;	/* removed from inside poll() */
	bool del_self;
	bool off;		/* notifications are off now */
	bool pending;		/* pending() says so */
	uint64_t find_after_ms;	/* poll() returns true once this time has come */
	uint64_t find_after_ns;	/* the same, to the nanosecond (ns_now) */
	bool busy;		/* poll() always finds work */
	bool dev;		/* busy() (commands at a device) says so */
};

static uint64_t ms_now(void);
static uint64_t ns_now(void);
static bool tp_pending(void *arg)
{
	return ((struct tp *)arg)->pending;
}

static bool tp_dev(void *arg)
{
	return ((struct tp *)arg)->dev;
}

static bool tp_poll(void *arg)
{
	struct tp *t = arg;

	t->polls++;
	if (t->del_other) {
		evloop_poller_del(t->l, &t->del_other->p);
		t->del_other = NULL;
	}
	if (t->del_self)
		evloop_poller_del(t->l, &t->p);
	if (t->find_after_ms && ms_now() >= t->find_after_ms) {
		t->find_after_ms = 0;
		t->pending = false;
		return true;
	}
	if (t->find_after_ns && ns_now() >= t->find_after_ns) {
		t->find_after_ns = 0;
		return true;
	}
	return t->busy || (t->find_at && (int)t->polls == t->find_at);
}

static bool tp_notify(void *arg, bool on)
{
	struct tp *t = arg;

	if (on) {
		t->ons++;
		t->off = false;
		if (t->work_on_notify) {
			t->work_on_notify = false;
			return true;
		}
	} else {
		t->offs++;
		t->off = true;
	}
	return false;
}

static void tp_init(struct tp *t, struct evloop *l)
{
	*t = (struct tp){ .l = l };
	t->p = (struct evloop_poller){ .poll = tp_poll, .notify = tp_notify, .pending = tp_pending,
				       .arg = t };
}

static unsigned gate_calls;
static bool gate_answer;

static bool gate(void *arg)
{
	(void)arg;
	gate_calls++;
	return gate_answer;
}

static void on_ready(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct evloop_poll_stats stats(struct evloop *l)
{
	struct evloop_poll_stats st;

	evloop_poll_stats(l, &st);
	return st;
}

/* Hooks (evloop_set_hooks): before and after every round's callbacks and
 * deferred work, never around the pollers' walks nor a round without any. */
struct hk {
	unsigned before, after, depth, cb_inside, cb_outside, polls_inside;
};

static void hk_before(void *arg)
{
	struct hk *h = arg;

	h->before++;
	h->depth++;
}

static void hk_after(void *arg)
{
	struct hk *h = arg;

	h->after++;
	h->depth--;
}

static struct hk *hk_seen;

static void hk_cb(void *arg, uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(*(int *)arg, &v, sizeof(v)) < 0) {
		/* EAGAIN */
	}
	if (hk_seen->depth)
		hk_seen->cb_inside++;
	else
		hk_seen->cb_outside++;
}

static void hk_deferred(void *arg)
{
	struct hk *h = arg;

	if (h->depth)
		h->cb_inside++;
	else
		h->cb_outside++;
}

static bool hk_poll(void *arg)
{
	struct hk *h = arg;

	if (h->depth)
		h->polls_inside++;
	return false;
}

static bool hk_notify(void *arg, bool on)
{
	(void)arg;
	(void)on;
	return false;
}

static void test_hooks(void)
{
	struct evloop *l;
	struct hk h = { 0 };
	struct evloop_poller p = { .poll = hk_poll, .notify = hk_notify, .arg = &h };
	struct evloop_defer d = { .cb = hk_deferred, .arg = &h };
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t one = 1;

	hk_seen = &h;
	CHECK_EQ_INT(evloop_new(&l), 0);
	evloop_set_hooks(l, hk_before, hk_after, &h);
	evloop_poller_add(l, &p);
	evloop_set_poll_max(l, 1000);
	CHECK_EQ_INT(evloop_add(l, fd, EPOLLIN, hk_cb, &fd), 0);
	/* A round with nothing: no hooks. */
	CHECK_EQ_INT(evloop_once(l, 0), 0);
	CHECK_EQ_INT(h.before, 0);
	/* An event: its callback inside one pair. */
	CHECK_EQ_INT(write(fd, &one, sizeof(one)), (long)sizeof(one));
	CHECK_EQ_INT(evloop_once(l, 100), 1);
	CHECK_EQ_INT(h.before, 1);
	CHECK_EQ_INT(h.after, 1);
	CHECK_EQ_INT(h.cb_inside, 1);
	/* Deferred work alone: inside a pair too. */
	evloop_defer(l, &d);
	evloop_once(l, 0);
	CHECK_EQ_INT(h.cb_inside, 2);
	CHECK_EQ_INT(h.before, h.after);
	/* Polling rounds (events coming at once open the window): the
	 * pollers' walks run outside the hooks. */
	for (int i = 0; i < 20; i++) {
		CHECK_EQ_INT(write(fd, &one, sizeof(one)), (long)sizeof(one));
		evloop_once(l, 100);
	}
	CHECK(stats(l).rounds > 0);
	CHECK_EQ_INT(h.polls_inside, 0);
	CHECK_EQ_INT(h.cb_outside, 0);
	CHECK_EQ_INT(h.before, h.after);
	CHECK_EQ_INT(h.depth, 0);
	evloop_poller_del(l, &p);
	evloop_free(l);
	close(fd);
}

/* An event fetched for a watch that a callback of the same round deleted
 * (or a control thread, while this one was parked) is dropped, not given
 * to the watch that took its slot since. */
struct slot_t {
	struct evloop *l;
	int fd_a, fd_b, fd_c;
	unsigned a_calls, b_calls, c_calls;
};

static void slot_b(void *arg, uint32_t events)
{
	(void)events;
	((struct slot_t *)arg)->b_calls++;
}

static void slot_c(void *arg, uint32_t events)
{
	(void)events;
	((struct slot_t *)arg)->c_calls++;
}

static void slot_a(void *arg, uint32_t events)
{
	struct slot_t *t = arg;

	(void)events;
	t->a_calls++;
	/* b goes; c takes the free slot (b's or a later one). */
	evloop_del(t->l, t->fd_b);
	CHECK_EQ_INT(evloop_add(t->l, t->fd_c, EPOLLIN, slot_c, t), 0);
}

static void test_stale_slot(void)
{
	struct slot_t t = { 0 };

	CHECK_EQ_INT(evloop_new(&t.l), 0);
	t.fd_a = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	t.fd_b = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	t.fd_c = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);	/* never ready */
	/* a (slot 0) and b (slot 1) are ready when added: epoll reports
	 * them in that order, in one batch. a deletes b, and c takes slot 1. */
	CHECK_EQ_INT(evloop_add(t.l, t.fd_a, EPOLLIN | EPOLLONESHOT, slot_a, &t), 0);
	CHECK_EQ_INT(evloop_add(t.l, t.fd_b, EPOLLIN, slot_b, &t), 0);
	evloop_once(t.l, 100);
	CHECK_EQ_INT(t.a_calls, 1);
	/* b's event is dropped; c, never ready, is never called. */
	CHECK_EQ_INT(t.b_calls, 0);
	CHECK_EQ_INT(t.c_calls, 0);
	evloop_free(t.l);
	close(t.fd_a);
	close(t.fd_b);
	close(t.fd_c);
}

/* evloop_yield: yielded work runs at the end of a round, after the fd
 * callbacks ready in it; what yields again waits a round; the loop does
 * not sleep while any waits; a callback may cancel a node yielded beside
 * its own. */
struct yield_t {
	struct evloop *l;
	struct evloop_defer a, b;
	int fd;
	unsigned a_runs, b_runs, fd_calls;
	unsigned a_again;	/* times a yields itself again */
	unsigned fd_at_a;	/* fd_calls when a last ran */
	bool a_cancels_b;
};

static void y_fd(void *arg, uint32_t events)
{
	struct yield_t *t = arg;

	(void)events;
	t->fd_calls++;
}

static void y_a(void *arg)
{
	struct yield_t *t = arg;

	t->a_runs++;
	t->fd_at_a = t->fd_calls;
	if (t->a_again) {
		t->a_again--;
		evloop_yield(t->l, &t->a);
	}
	if (t->a_cancels_b)
		evloop_defer_cancel(t->l, &t->b);
}

static void y_b(void *arg)
{
	struct yield_t *t = arg;

	t->b_runs++;
}

static void test_yield(void)
{
	struct yield_t t = { 0 };
	uint64_t t0;

	CHECK_EQ_INT(evloop_new(&t.l), 0);
	t.a = (struct evloop_defer){ .cb = y_a, .arg = &t };
	t.b = (struct evloop_defer){ .cb = y_b, .arg = &t };
	t.fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always readable */
	CHECK_EQ_INT(evloop_add(t.l, t.fd, EPOLLIN, y_fd, &t), 0);
	/* After the round's fd callback; yielded again: once per round, and
	 * no round sleeps (a wait of -1 would hang without an fd ready). */
	t.a_again = 2;
	evloop_yield(t.l, &t.a);
	evloop_yield(t.l, &t.a);	/* queued once */
	evloop_once(t.l, 100);
	CHECK_EQ_INT(t.a_runs, 1);
	CHECK_EQ_INT(t.fd_at_a, 1);
	evloop_once(t.l, 100);
	CHECK_EQ_INT(t.a_runs, 2);
	CHECK_EQ_INT(t.fd_at_a, 2);
	evloop_del(t.l, t.fd);
	t0 = ms_now();
	evloop_once(t.l, -1);
	CHECK_EQ_INT(t.a_runs, 3);
	CHECK(ms_now() - t0 < 50);
	evloop_once(t.l, 0);
	CHECK_EQ_INT(t.a_runs, 3);
	/* a cancels b, yielded after it in the same round: b never runs. */
	t.a_cancels_b = true;
	evloop_yield(t.l, &t.a);
	evloop_yield(t.l, &t.b);
	evloop_once(t.l, 100);
	CHECK_EQ_INT(t.a_runs, 4);
	CHECK_EQ_INT(t.b_runs, 0);
	CHECK(!t.b.queued);
	/* Cancelled before its round: it does not run, nor keep the loop awake. */
	t.a_cancels_b = false;
	evloop_yield(t.l, &t.b);
	evloop_defer_cancel(t.l, &t.b);
	t0 = ms_now();
	evloop_once(t.l, 20);
	CHECK_EQ_INT(t.b_runs, 0);
	CHECK(ms_now() - t0 >= 15);
	evloop_free(t.l);
	close(t.fd);
}

/* While the loop polls (its peers asked not to notify), a round with
 * yielded work still walks the pollers: one peer's long turn does not
 * leave the others unlooked at. */
static void test_yield_polling(void)
{
	struct yield_t t = { 0 };
	struct tp p;
	unsigned before;

	CHECK_EQ_INT(evloop_new(&t.l), 0);
	tp_init(&p, t.l);
	evloop_poller_add(t.l, &p.p);
	t.a = (struct evloop_defer){ .cb = y_a, .arg = &t };
	t.fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always readable */
	CHECK_EQ_INT(evloop_add(t.l, t.fd, EPOLLIN, y_fd, &t), 0);
	evloop_set_poll_max(t.l, 1000);
	for (int i = 0; i < 8; i++)
		evloop_once(t.l, 100);
	CHECK(stats(t.l).poll_ns > 0);
	/* A poller that always finds work keeps the loop polling. */
	p.busy = true;
	evloop_once(t.l, 100);
	CHECK(p.off);
	/* Five rounds start with it yielded: each walks the pollers once. */
	t.a_again = 4;
	evloop_yield(t.l, &t.a);
	before = p.polls;
	for (int i = 0; i < 5; i++)
		evloop_once(t.l, 100);
	CHECK_EQ_INT(t.a_runs, 5);
	CHECK_EQ_INT(p.polls - before, 5);
	evloop_poller_del(t.l, &p.p);
	evloop_free(t.l);
	close(t.fd);
}

/* Two windows (evloop_poller.busy): rounds with commands at a device
 * poll up to --poll-max-us, rounds that wait for clients up to their own
 * cap; each adapts to its own waits and leaves the other alone. */
static void test_idle_window(void)
{
	struct evloop *l;
	struct tp a, c;
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always readable */
	uint64_t most = 0;

	CHECK(efd >= 0);
	CHECK_EQ_INT(evloop_new(&l), 0);
	tp_init(&a, l);
	a.p.busy = tp_dev;
	evloop_poller_add(l, &a.p);
	/* A poller that cannot tell (a client's rings) beside one that can
	 * (a controller's queues), as in the server: the one that can
	 * decides. */
	tp_init(&c, l);
	evloop_poller_add(l, &c.p);
	CHECK_EQ_INT(evloop_add(l, efd, EPOLLIN, on_ready, NULL), 0);
	evloop_set_poll_max(l, 1000);
	evloop_set_poll_idle_max(l, 200);

	/* Waiting for clients: the window grows to the idle cap, not past. */
	for (int i = 0; i < 60; i++) {
		evloop_once(l, 100);
		if (stats(l).idle_poll_ns > most)
			most = stats(l).idle_poll_ns;
	}
	CHECK_EQ_INT(most, 200000);
	CHECK_EQ_INT(stats(l).poll_ns, 0);
	CHECK(a.polls > 0);
	CHECK(c.polls > 0);

	/* Commands at the device: that window grows to --poll-max-us. */
	a.dev = true;
	for (int i = 0; i < 40 && stats(l).poll_ns < 1000000; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(stats(l).poll_ns, 1000000);
	CHECK(stats(l).idle_poll_ns <= 200000);

	/* A client that waits longer than either cap closes the idle window
	 * only: the next command's wait is polled at once (with one window,
	 * every sparse client's command was slept through). */
	CHECK_EQ_INT(evloop_del(l, efd), 0);
	a.dev = false;
	evloop_once(l, 2);
	CHECK_EQ_INT(stats(l).idle_poll_ns, 0);
	CHECK_EQ_INT(stats(l).poll_ns, 1000000);
	CHECK_EQ_INT(evloop_add(l, efd, EPOLLIN, on_ready, NULL), 0);
	a.dev = true;
	a.polls = 0;
	evloop_once(l, 100);
	CHECK(a.polls > 0);

	/* An idle cap of 0: rounds that wait for clients never poll, and
	 * sleep with notifications on; the device's rounds still do. */
	evloop_set_poll_idle_max(l, 0);
	CHECK_EQ_INT(stats(l).idle_poll_ns, 0);
	a.dev = false;
	a.polls = 0;
	for (int i = 0; i < 10; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(a.polls, 0);
	CHECK(!a.off);
	a.dev = true;
	for (int i = 0; i < 3 && !a.polls; i++)
		evloop_once(l, 100);
	CHECK(a.polls > 0);

	/* The idle cap never exceeds --poll-max-us. */
	evloop_set_poll_idle_max(l, 5000);
	a.dev = false;
	most = 0;
	for (int i = 0; i < 60; i++) {
		evloop_once(l, 100);
		if (stats(l).idle_poll_ns > most)
			most = stats(l).idle_poll_ns;
	}
	CHECK_EQ_INT(most, 1000000);
	evloop_set_poll_max(l, 10);
	CHECK(stats(l).idle_poll_ns <= 10000);

	evloop_poller_del(l, &a.p);
	evloop_poller_del(l, &c.p);
	evloop_free(l);
	close(efd);
}

/* While polling keeps finding work, the fds are looked at every
 * EVLOOP_FD_LOOK_US, not every round (a system call spared), and never
 * starved. */
static unsigned ready_calls;

static void on_ready_count(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	ready_calls++;
}

static void test_fd_look(void)
{
	struct evloop *l;
	struct tp a;
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always readable */
	unsigned rounds = 0;
	uint64_t t0, ms;

	CHECK(efd >= 0);
	CHECK_EQ_INT(evloop_new(&l), 0);
	tp_init(&a, l);
	evloop_poller_add(l, &a.p);
	CHECK_EQ_INT(evloop_add(l, efd, EPOLLIN, on_ready_count, NULL), 0);
	evloop_set_poll_max(l, 1000);
	/* A window first (events sooner than the cap), then work found by
	 * every poll. */
	for (int i = 0; i < 5; i++)
		evloop_once(l, 100);
	CHECK(stats(l).poll_ns > 0);
	a.busy = true;
	ready_calls = 0;
	t0 = ms_now();
	while ((ms = ms_now() - t0) < 30) {
		evloop_once(l, 100);
		rounds++;
	}
	CHECK(stats(l).skips > 0);
	CHECK(ready_calls > 0);
	CHECK(ready_calls < rounds);
	CHECK(ready_calls <= 2 + (ms + 1) * 1000 / EVLOOP_FD_LOOK_US);
	/* ... and not starved: about every EVLOOP_FD_LOOK_US (an eighth of
	 * that, for a loaded machine). */
	CHECK(ready_calls >= ms * 1000 / EVLOOP_FD_LOOK_US / 8);
	/* Polling that finds nothing looks at them every round again. */
	a.busy = false;
	ready_calls = 0;
	for (int i = 0; i < 5; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(ready_calls, 5);

	evloop_poller_del(l, &a.p);
	evloop_free(l);
	close(efd);
}

/* Regression test for 456c682: the EVLOOP_FD_LOOK_US between fd looks
 * are counted to when polling found the work, not to when the round
 * began. A round that begins just after a look but polls 500 us before
 * its hit is past the 200 us when it has found the work, and looks: an fd
 * made readable as it begins is served in that round. Counted from the
 * round's start, it skipped the look, and the fd waited a round more
 * (up to a whole window, 1 ms, for the control plane). */
static unsigned drained;

static void on_drain(void *arg, uint32_t events)
{
	uint64_t n;

	(void)events;
	if (read(*(int *)arg, &n, sizeof(n)) == sizeof(n))
		drained++;
}

static void test_fd_look_long_poll(void)
{
	struct evloop *l;
	struct tp a;
	int grow = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always readable */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	const uint64_t one = 1;
	const unsigned trials = 10;
	unsigned served = 0, looked = 0;

	CHECK(grow >= 0 && efd >= 0);
	CHECK_EQ_INT(evloop_new(&l), 0);
	tp_init(&a, l);
	evloop_poller_add(l, &a.p);
	CHECK_EQ_INT(evloop_add(l, grow, EPOLLIN, on_ready, NULL), 0);
	CHECK_EQ_INT(evloop_add(l, efd, EPOLLIN, on_drain, &efd), 0);
	/* The whole 1 ms window, so that a hit 500 us into a round is still
	 * a hit. */
	evloop_set_poll_max(l, 1000);
	for (int i = 0; i < 40 && stats(l).poll_ns < 1000000; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(stats(l).poll_ns, 1000000);
	CHECK_EQ_INT(evloop_del(l, grow), 0);

	for (unsigned t = 0; t < trials; t++) {
		uint64_t skips, hits;

		/* Rounds whose polling finds work at once, until one looks
		 * (skips no more): the last look is now. */
		a.busy = true;
		for (int i = 0; i < 100000; i++) {
			skips = stats(l).skips;
			evloop_once(l, 100);
			if (stats(l).skips == skips) {
				looked++;
				break;
			}
		}
		a.busy = false;
		/* At once, the next round: its work comes 500 us into its
		 * window, the fd is readable from its start. */
		a.find_after_ns = ns_now() + 500000;
		drained = 0;
		CHECK(write(efd, &one, sizeof(one)) == sizeof(one));
		skips = stats(l).skips;
		hits = stats(l).hits;
		evloop_once(l, 100);
		/* The round must have polled and hit (a window that a long
		 * preemption closed would sleep, and look, proving nothing). */
		if (drained == 1 && stats(l).skips == skips && stats(l).hits == hits + 1)
			served++;
		evloop_once(l, 0);	/* one that a failure left readable */
	}
	CHECK_EQ_INT(looked, trials);
	CHECK_EQ_INT(served, trials);

	evloop_poller_del(l, &a.p);
	evloop_free(l);
	close(grow);
	close(efd);
}

int main(void)
{
	struct evloop *l;
	struct tp a, b;
	int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);	/* always readable */
	uint64_t t0, cnt;

	CHECK(efd >= 0);
	CHECK_EQ_INT(evloop_new(&l), 0);
	tp_init(&a, l);
	evloop_poller_add(l, &a.p);

	/* No cap: never polls, not even with events coming at once. */
	CHECK_EQ_INT(evloop_add(l, efd, EPOLLIN, on_ready, NULL), 0);
	for (int i = 0; i < 20; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(a.polls, 0);
	CHECK_EQ_INT(a.offs, 0);
	CHECK_EQ_INT(stats(l).poll_ns, 0);

	/* Events sooner than the cap: the window grows 4, 8, 16 ... us up
	 * to the cap (a poll of the whole window that finds nothing, then an
	 * event, is a wait longer than the cap: it drops to 0 after; polling
	 * does not look at fds); each polling round turns notifications off first and
	 * on again before it sleeps. */
	evloop_set_poll_max(l, 1000);
	evloop_once(l, 100);
	CHECK_EQ_INT(stats(l).poll_ns, EVLOOP_POLL_START_NS);
	for (int i = 0; i < 20 && stats(l).poll_ns < 1000000; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(stats(l).poll_ns, 1000000);
	CHECK(a.polls > 0);
	CHECK(a.offs > 0);
	CHECK_EQ_INT(a.offs, a.ons);
	CHECK(!a.off);

	/* A poller that finds work: the round ends without sleeping and
	 * notifications stay off (the loop goes on polling); the next round
	 * that finds nothing turns them on before it sleeps. */
	a.polls = 0;
	a.find_at = 3;
	unsigned ons = a.ons, hits = (unsigned)stats(l).hits;
	evloop_once(l, 100);
	CHECK_EQ_INT(a.polls, 3);
	CHECK(a.off);
	CHECK_EQ_INT(a.ons, ons);
	CHECK_EQ_INT(stats(l).hits, hits + 1);
	a.find_at = 0;
	evloop_once(l, 100);
	CHECK(!a.off);
	CHECK_EQ_INT(a.ons, ons + 1);

	/* The last look before sleeping finds work: no sleep. */
	for (int i = 0; i < 20 && (stats(l).poll_ns < 64000 || stats(l).poll_ns > 500000); i++)
		evloop_once(l, 100);
	CHECK(stats(l).poll_ns >= 64000);
	CHECK_EQ_INT(evloop_del(l, efd), 0);
	a.work_on_notify = true;
	t0 = ms_now();
	evloop_once(l, 2000);
	CHECK(ms_now() - t0 < 1000);
	CHECK(!a.work_on_notify);

	/* A wait longer than the cap: polling stops at once (window 0), and
	 * a sleeping loop calls no poller. */
	evloop_once(l, 20);
	CHECK_EQ_INT(stats(l).poll_ns, 0);
	a.polls = 0;
	evloop_once(l, 5);
	CHECK_EQ_INT(a.polls, 0);

	/* Removal during a walk: a poller removes the next one and itself;
	 * neither is called again, and the walk goes on safely. Pollers are
	 * walked newest first. */
	CHECK_EQ_INT(read(efd, &cnt, sizeof(cnt)), (int)sizeof(cnt));
	cnt = 1;
	CHECK_EQ_INT(write(efd, &cnt, sizeof(cnt)), (int)sizeof(cnt));
	CHECK_EQ_INT(evloop_add(l, efd, EPOLLIN, on_ready, NULL), 0);
	tp_init(&b, l);
	evloop_poller_add(l, &b.p);
	for (int i = 0; i < 20 && stats(l).poll_ns < 1000000; i++)
		evloop_once(l, 100);
	CHECK(stats(l).poll_ns > 0);
	CHECK(b.polls > 0);
	b.del_other = &a;
	b.del_self = true;
	a.polls = 0;
	b.polls = 0;
	evloop_once(l, 100);
	CHECK_EQ_INT(b.polls, 1);
	CHECK_EQ_INT(a.polls, 0);
	/* Removed while the loop polled: their notifications are back on
	 * (nobody would turn them on later). */
	CHECK(!a.off);
	CHECK(!b.off);
	evloop_once(l, 100);
	CHECK_EQ_INT(b.polls, 1);
	CHECK_EQ_INT(a.polls, 0);
	/* Removing twice, or what was never added, is harmless. */
	evloop_poller_del(l, &a.p);
	evloop_poller_del(l, &b.p);

	/* The cap lowered below the window clamps it. */
	evloop_poller_add(l, &a.p);
	for (int i = 0; i < 20 && stats(l).poll_ns < 1000000; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(stats(l).poll_ns, 1000000);
	evloop_set_poll_max(l, 10);
	CHECK(stats(l).poll_ns <= 10000);
	evloop_set_poll_max(l, 0);
	a.polls = 0;
	evloop_once(l, 100);
	CHECK_EQ_INT(a.polls, 0);

	/* evloop_run returning (stopped) while polling turns them on too. */
	evloop_set_poll_max(l, 1000);
	for (int i = 0; i < 20 && (stats(l).poll_ns < 64000 || stats(l).poll_ns > 500000); i++)
		evloop_once(l, 100);
	a.find_at = (int)a.polls + 1;
	evloop_stop(l);
	a.off = false;
	a.offs = 0;
	CHECK_EQ_INT(evloop_once(l, 100) >= 0, 1);
	CHECK(a.off);
	CHECK_EQ_INT(evloop_run(l), 0);
	CHECK(!a.off);

	/* A gate that says no (no spare CPU): the window drops to 0 and
	 * stays there, events coming sooner than the cap or not; nothing is
	 * polled; the gate is asked once per EVLOOP_GATE_MS at most. Once
	 * it says yes, polling comes back. */
	gate_answer = false;
	gate_calls = 0;
	evloop_set_poll_gate(l, gate, NULL);
	a.find_at = 0;
	a.polls = 0;
	t0 = ms_now();
	for (int i = 0; i < 50; i++)
		evloop_once(l, 100);
	CHECK_EQ_INT(stats(l).poll_ns, 0);
	CHECK_EQ_INT(a.polls, 0);
	CHECK(!a.off);
	CHECK(gate_calls >= 1);
	CHECK(gate_calls <= 1 + (ms_now() - t0) / EVLOOP_GATE_MS);
	CHECK(stats(l).gated >= 1);
	gate_answer = true;
	usleep(EVLOOP_GATE_MS * 1000 + 10000);
	for (int i = 0; i < 20 && stats(l).poll_ns < 64000; i++)
		evloop_once(l, 100);
	CHECK(stats(l).poll_ns >= 64000);
	CHECK(a.polls > 0);
	evloop_set_poll_gate(l, NULL, NULL);

	/* Work that raises no event (commands on polled queues): rounds
	 * whose window ends go on polling while it is pending, past the cap
	 * (here 1 ms), each ending as if it had found work so the fds are
	 * looked at in between, and find it without sleeping... */
	for (int i = 0; i < 20 && stats(l).poll_ns < 4000; i++)
		evloop_once(l, 100);
	CHECK(stats(l).poll_ns > 0);
	CHECK_EQ_INT(evloop_del(l, efd), 0);
	struct evloop_poll_stats st0 = stats(l);
	a.find_at = 0;
	a.pending = true;
	t0 = ms_now();
	a.find_after_ms = t0 + 5;
	for (int i = 0; i < 100000 && a.pending && ms_now() - t0 < 1000; i++)
		evloop_once(l, 2000);
	CHECK(ms_now() - t0 >= 5);
	CHECK(ms_now() - t0 < 1000);
	CHECK_EQ_INT(stats(l).hits, st0.hits + 1);
	CHECK_EQ_INT(stats(l).sleeps, st0.sleeps);
	CHECK(stats(l).stretches > st0.stretches);
	CHECK(!a.pending);
	/* ... for EVLOOP_PENDING_POLL_MS at most: then the loop sleeps (in
	 * ticks) */
	a.pending = true;
	st0 = stats(l);
	t0 = ms_now();
	for (int i = 0; i < 100000 && stats(l).sleeps == st0.sleeps && ms_now() - t0 < 1000; i++)
		evloop_once(l, 2000);
	CHECK(ms_now() - t0 >= EVLOOP_PENDING_POLL_MS);
	CHECK(ms_now() - t0 < 200);
	CHECK_EQ_INT(stats(l).sleeps, st0.sleeps + 1);
	CHECK_EQ_INT(stats(l).ticks, st0.ticks + 1);
	a.pending = false;
	/* ... and with no window, a loop that sleeps while work is pending
	 * wakes after a tick (not the 2 s asked for) and looks. */
	evloop_once(l, 20);
	evloop_once(l, 20);
	CHECK_EQ_INT(stats(l).poll_ns, 0);
	st0 = stats(l);
	a.pending = true;
	a.polls = 0;
	t0 = ms_now();
	evloop_once(l, 2000);
	CHECK(ms_now() - t0 < 1000);
	CHECK_EQ_INT(stats(l).ticks, st0.ticks + 1);
	CHECK(a.polls >= 1);
	a.pending = false;
	t0 = ms_now();
	evloop_once(l, 30);
	CHECK(ms_now() - t0 >= 20);
	CHECK_EQ_INT(stats(l).ticks, st0.ticks + 1);

	evloop_free(l);
	close(efd);
	test_hooks();
	test_stale_slot();
	test_yield();
	test_yield_polling();
	test_idle_window();
	test_fd_look();
	test_fd_look_long_poll();
	return check_report("evloop");
}
