/* Parking a data thread (util/park.h): a hold returns only once the owner
 * stands still at the top of its loop, whether it sleeps in epoll_wait or
 * polls without pause; what it owns does not change while held and the
 * holder's changes are seen once released; holds nest; an owner that has
 * left its loop does not keep a holder waiting. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "util/evloop.h"
#include "util/park.h"

struct owner {
	struct evloop *l;
	struct park park;
	struct evloop_poller poller;
	pthread_t tid;
	atomic_bool stop;
	bool poll;		/* a poller that always finds work: never sleeps */
	unsigned long work;	/* owned: only the owner touches it unparked */
	atomic_ulong seen;	/* the holder's write, as the owner saw it */
	unsigned long poke;	/* written by the holder while parked */
	int kick;		/* one early event opens the poll window */
};

static void on_kick(void *arg, uint32_t events)
{
	struct owner *o = arg;
	uint64_t v;

	(void)events;
	if (read(o->kick, &v, sizeof(v)) < 0) {
		/* EAGAIN */
	}
}

static bool always(void *arg)
{
	struct owner *o = arg;

	o->work++;
	atomic_store(&o->seen, o->poke);
	return true;
}

static bool notify(void *arg, bool on)
{
	(void)arg;
	(void)on;
	return false;
}

static void *owner_main(void *arg)
{
	struct owner *o = arg;

	while (!atomic_load(&o->stop)) {
		if (!o->poll) {
			o->work++;
			atomic_store(&o->seen, o->poke);
		}
		evloop_once(o->l, o->poll ? 1000 : 5);
	}
	park_leave(&o->park);
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

static void owner_start(struct owner *o, bool poll)
{
	*o = (struct owner){ .poll = poll };
	CHECK_EQ_INT(evloop_new(&o->l), 0);
	CHECK_EQ_INT(park_init(&o->park), 0);
	CHECK_EQ_INT(park_watch(&o->park, o->l), 0);
	if (poll) {
		o->poller = (struct evloop_poller){ .poll = always, .notify = notify, .arg = o };
		evloop_poller_add(o->l, &o->poller);
		evloop_set_poll_max(o->l, 1000);
		o->kick = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK(o->kick >= 0);
		CHECK_EQ_INT(evloop_add(o->l, o->kick, EPOLLIN, on_kick, o), 0);
	}
	CHECK_EQ_INT(pthread_create(&o->tid, NULL, owner_main, o), 0);
}

static void owner_join(struct owner *o)
{
	atomic_store(&o->stop, true);
	pthread_join(o->tid, NULL);
}

static void owner_stop(struct owner *o)
{
	/* Gone: a hold returns at once and the owner is not waited for. */
	park_hold(&o->park);
	park_release(&o->park);
	park_destroy(&o->park);
	evloop_free(o->l);
	if (o->poll)
		close(o->kick);
}

static void test_hold(bool poll)
{
	struct owner o;
	unsigned long w;

	owner_start(&o, poll);
	sleep_ms(20);
	for (unsigned round = 1; round <= 50; round++) {
		park_hold(&o.park);
		CHECK(o.park.parked);
		w = o.work;
		o.poke = round;
		if (round % 10 == 0)
			sleep_ms(10);	/* long enough for a running owner to move */
		/* Nested: still held after the inner release. */
		park_hold(&o.park);
		park_release(&o.park);
		CHECK_EQ_INT(o.work, w);
		park_release(&o.park);
		/* Released: it goes on, and sees what the holder wrote. */
		for (unsigned i = 0; i < 1000 && atomic_load(&o.seen) != round; i++)
			sleep_ms(1);
		CHECK_EQ_INT(atomic_load(&o.seen), round);
	}
	CHECK(o.park.parks >= 50);
	owner_join(&o);
	if (poll) {
		struct evloop_poll_stats st;

		/* It polled all along: found work in almost every round. */
		evloop_poll_stats(o.l, &st);
		CHECK(st.hits > 1000);
		CHECK(st.sleeps < 10);
	}
	owner_stop(&o);
}

int main(void)
{
	test_hold(false);
	test_hold(true);
	return check_report("park");
}
