#include "util/peerfd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Each writing thread (an event loop) has a slot: `busy` holds the number
 * of its write in progress (from `seq`, never 0) while it runs, 0
 * otherwise. The watchdog interrupts a write whose number it saw a whole
 * period ago already: the same write, still blocked. */
#define PEERFD_MAX_WRITERS 128
struct writer {
	atomic_ulong busy;
	atomic_int set;		/* thread is filled in */
	pthread_t thread;
	unsigned long last;	/* the watchdog's */
};
static struct writer writers[PEERFD_MAX_WRITERS];
static atomic_uint nwriters;
static _Thread_local struct writer *my_slot;
static atomic_ulong seq;
static atomic_uint period_ms = 1000;
static int wake_signal;

int peerfd_prepare(int fd)
{
	char path[64], buf[512];
	ssize_t n;
	int fl, info;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	info = open(path, O_RDONLY | O_CLOEXEC);
	if (info < 0)
		return -errno;
	n = read(info, buf, sizeof(buf) - 1);
	close(info);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	if (!strstr(buf, "eventfd-count:"))
		return -EINVAL;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -errno;
	return 0;
}

int peerfd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n;
	int rc = 0;

	if (!my_slot) {
		/* Watched once the thread id is in place. */
		unsigned i = atomic_fetch_add(&nwriters, 1);

		if (i >= PEERFD_MAX_WRITERS)
			return -EMFILE;
		writers[i].thread = pthread_self();
		atomic_store(&writers[i].set, 1);
		my_slot = &writers[i];
	}
	atomic_store_explicit(&my_slot->busy,
			      atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed) + 1,
			      memory_order_release);
	n = write(fd, &one, sizeof(one));
	if (n != (ssize_t)sizeof(one))
		rc = n < 0 ? -errno : -EIO;
	atomic_store_explicit(&my_slot->busy, 0, memory_order_release);
	return rc;
}

static void on_wake(int sig)
{
	(void)sig;	/* only there to interrupt the blocked write */
}

static void *watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		unsigned ms = atomic_load(&period_ms);
		struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
		unsigned n;

		nanosleep(&ts, NULL);
		n = atomic_load(&nwriters);
		for (unsigned i = 0; i < n && i < PEERFD_MAX_WRITERS; i++) {
			struct writer *w = &writers[i];
			unsigned long now;

			if (!atomic_load(&w->set))
				continue;
			now = atomic_load_explicit(&w->busy, memory_order_acquire);
			if (now && now == w->last)
				pthread_kill(w->thread, wake_signal);
			w->last = now;
		}
	}
	return NULL;
}

int peerfd_watchdog_start(unsigned ms)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int started;
	struct sigaction sa;
	pthread_t t;
	sigset_t all, old;
	int rc = 0;

	if (ms)
		atomic_store(&period_ms, ms);
	pthread_mutex_lock(&lock);
	if (started)
		goto out;
	/* No SA_RESTART: the interrupted write must return EINTR. */
	wake_signal = SIGRTMIN + 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;
	sigemptyset(&sa.sa_mask);
	if (sigaction(wake_signal, &sa, NULL) != 0) {
		rc = -errno;
		goto out;
	}
	/* The watchdog takes no signal meant for the process. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&t, NULL, watchdog, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0) {
		pthread_detach(t);
		started = 1;
	}
out:
	pthread_mutex_unlock(&lock);
	return rc;
}
