#include "util/evloop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* Watches grow as needed, so that the number of clients is bounded by
 * the descriptor limit and epoll's, not by a table of ours. A slot's index
 * is its epoll cookie; a freed slot is reused, never moved. */
#define WATCH_CHUNK 256

struct watch {
	int fd;
	evloop_cb cb;
	void *arg;
	bool used;
};

struct evloop {
	int epfd;
	int sigfd;
	evloop_cb sig_cb;
	void *sig_arg;
	bool stop;
	struct evloop_defer *deferred;	/* in queueing order */
	struct watch *w;
	unsigned nw;		/* slots allocated */
	unsigned free_hint;	/* no free slot below it */
};

int evloop_new(struct evloop **out)
{
	struct evloop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->sigfd = -1;
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
	ev.data.u32 = i;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -errno;
	l->w[i] = (struct watch){ .fd = fd, .cb = cb, .arg = arg, .used = true };
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

void evloop_defer(struct evloop *l, struct evloop_defer *d)
{
	struct evloop_defer **p = &l->deferred;

	if (d->queued)
		return;
	while (*p)
		p = &(*p)->next;
	d->next = NULL;
	d->queued = true;
	*p = d;
}

void evloop_defer_cancel(struct evloop *l, struct evloop_defer *d)
{
	for (struct evloop_defer **p = &l->deferred; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	d->queued = false;
}

static void run_deferred(struct evloop *l)
{
	while (l->deferred) {
		struct evloop_defer *d = l->deferred;

		l->deferred = d->next;
		d->queued = false;
		d->cb(d->arg);
	}
}

int evloop_once(struct evloop *l, int timeout_ms)
{
	struct epoll_event ev[64];
	int n;

	run_deferred(l);
	n = epoll_wait(l->epfd, ev, 64, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct watch *w = &l->w[ev[i].data.u32];
		if (w->used)
			w->cb(w->arg, ev[i].events);
	}
	run_deferred(l);
	return n;
}

int evloop_run(struct evloop *l)
{
	while (!l->stop) {
		int rc = evloop_once(l, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void evloop_stop(struct evloop *l)
{
	l->stop = true;
}

bool evloop_stopped(const struct evloop *l)
{
	return l->stop;
}
