#include "util/park.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/evloop.h"

int park_init(struct park *p)
{
	*p = (struct park){ .efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	if (p->efd < 0)
		return -errno;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	return 0;
}

void park_destroy(struct park *p)
{
	if (p->efd < 0)
		return;
	close(p->efd);
	p->efd = -1;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}

/* The owner's side: called from its loop, so nothing of its own is on the
 * stack. It stays here while anyone holds the park. */
static void on_park(void *arg, uint32_t events)
{
	struct park *p = arg;
	uint64_t cnt;

	(void)events;
	if (read(p->efd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: asked and released before it looked */
	}
	pthread_mutex_lock(&p->mu);
	if (p->want) {
		p->parked = true;
		p->parks++;
		pthread_cond_broadcast(&p->cv);
		while (p->want)
			pthread_cond_wait(&p->cv, &p->mu);
		p->parked = false;
	}
	pthread_mutex_unlock(&p->mu);
}

int park_watch(struct park *p, struct evloop *l)
{
	return evloop_add(l, p->efd, EPOLLIN, on_park, p);
}

void park_leave(struct park *p)
{
	pthread_mutex_lock(&p->mu);
	p->gone = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void park_ask(struct park *p)
{
	uint64_t one = 1;

	pthread_mutex_lock(&p->mu);
	if (p->want++ == 0 && !p->gone && write(p->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, so the owner has a wake-up due */
	}
	pthread_mutex_unlock(&p->mu);
}

void park_wait(struct park *p)
{
	pthread_mutex_lock(&p->mu);
	while (!p->parked && !p->gone)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void park_hold(struct park *p)
{
	park_ask(p);
	park_wait(p);
}

void park_release(struct park *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->want && --p->want == 0)
		pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}
