#include "daemon/workers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/cpuload.h"
#include "util/log.h"
#include "util/park.h"

struct worker {
	struct workers *ws;
	unsigned idx;
	struct evloop *loop;
	struct park park;
	bool park_ok;
	struct cpuload load;
	bool load_ok;
	struct evloop_poller poller;
	struct nvme_qpair *qps[HOST_MAX_CTRLS * HOST_MAX_VECS];
	unsigned nqps;
	pthread_t tid;
	bool started;
	int cpu;		/* --cpus: the one it runs on; -1: any */
	struct workers_msg failed;	/* its loop failed: the server stops */
};

struct workers {
	struct host *h;
	struct evloop *main_loop;
	unsigned n;
	struct worker w[WORKERS_MAX];
	struct host_vec vecs[HOST_MAX_CTRLS * HOST_MAX_VECS];	/* the control loop's */
	unsigned nvecs;
	/* Messages to the control thread, in order. */
	pthread_mutex_t mu;
	struct workers_msg *head, **tail;
	int msg_fd;
	bool running;
};

unsigned workers_nr(const struct workers *ws)
{
	return ws->n;
}

const struct evloop *workers_loop(const struct workers *ws, unsigned i)
{
	return i < ws->n ? ws->w[i].loop : NULL;
}

/* ---- the data threads ---- */

static bool w_poll(void *arg)
{
	struct worker *w = arg;
	unsigned n = 0;

	for (unsigned i = 0; i < w->nqps; i++)
		n += nvme_qpair_poll(w->qps[i]);
	return n > 0;
}

/* While the loop polls, requests go to the polled twins. */
static bool w_notify(void *arg, bool on)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->nqps; i++)
		nvme_qpair_set_polling(w->qps[i], !on);
	return on && w_poll(w);
}

static bool w_pending(void *arg)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->nqps; i++)
		if (nvme_qpair_polled_busy(w->qps[i]))
			return true;
	return false;
}

static bool w_busy(void *arg)
{
	struct worker *w = arg;

	for (unsigned i = 0; i < w->nqps; i++)
		if (nvme_qpair_has_work(w->qps[i]))
			return true;
	return false;
}

static void w_vector(void *arg, uint32_t events)
{
	(void)events;
	nvme_qpair_poll(arg);
}

static void *w_main(void *arg)
{
	struct worker *w = arg;
	int rc;

	if (w->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
		if (rc)
			log_warn(NULL, "data thread %u: cannot run on CPU %d alone: %s", w->idx, w->cpu,
				 strerror(rc));
		else
			log_info(NULL, "data thread %u on CPU %d", w->idx, w->cpu);
	}
	rc = evloop_run(w->loop);

	if (rc) {
		log_err(NULL, "data thread %u: event loop failed: %s; stopping", w->idx, strerror(-rc));
		workers_post(w->ws, &w->failed);
	}
	park_leave(&w->park);
	return NULL;
}

/* On the control thread: a server with a thread that serves nothing more
 * stops (its clients would hang). */
static void on_failed(void *arg)
{
	struct worker *w = arg;

	evloop_stop(w->ws->main_loop);
}

/* ---- the control thread's side ---- */

static void hold_all(void *arg)
{
	struct workers *ws = arg;

	if (!ws->running)
		return;
	/* All asked first, then waited for: their windows overlap. */
	for (unsigned i = 0; i < ws->n; i++)
		park_ask(&ws->w[i].park);
	for (unsigned i = 0; i < ws->n; i++)
		park_wait(&ws->w[i].park);
}

static void release_all(void *arg)
{
	struct workers *ws = arg;

	if (!ws->running)
		return;
	for (unsigned i = 0; i < ws->n; i++)
		park_release(&ws->w[i].park);
}

void workers_hold(struct workers *ws)
{
	if (ws)
		hold_all(ws);
}

void workers_release(struct workers *ws)
{
	if (ws)
		release_all(ws);
}

static void on_main_vector(void *arg, uint32_t events)
{
	struct host_vec *v = arg;

	(void)events;
	nvme_ctrl_service_vector(v->ctrl, v->vec);
}

static void on_msg(void *arg, uint32_t events)
{
	struct workers *ws = arg;
	uint64_t cnt;

	(void)events;
	if (read(ws->msg_fd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: taken with an earlier wake-up */
	}
	for (;;) {
		struct workers_msg *m;

		pthread_mutex_lock(&ws->mu);
		m = ws->head;
		if (m) {
			ws->head = m->next;
			if (!ws->head)
				ws->tail = &ws->head;
			m->next = NULL;
			m->queued = false;
		}
		pthread_mutex_unlock(&ws->mu);
		if (!m)
			break;
		m->fn(m->arg);	/* may free m's owner */
	}
}

void workers_post(struct workers *ws, struct workers_msg *m)
{
	uint64_t one = 1;

	pthread_mutex_lock(&ws->mu);
	if (m->queued) {
		pthread_mutex_unlock(&ws->mu);
		return;
	}
	m->queued = true;
	m->next = NULL;
	*ws->tail = m;
	ws->tail = &m->next;
	pthread_mutex_unlock(&ws->mu);
	if (write(ws->msg_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, a wake-up is due anyway */
	}
}

void workers_cancel(struct workers *ws, struct workers_msg *m)
{
	pthread_mutex_lock(&ws->mu);
	if (m->queued) {
		for (struct workers_msg **p = &ws->head; *p; p = &(*p)->next)
			if (*p == m) {
				*p = m->next;
				break;
			}
		ws->tail = &ws->head;
		while (*ws->tail)
			ws->tail = &(*ws->tail)->next;
		m->queued = false;
		m->next = NULL;
	}
	pthread_mutex_unlock(&ws->mu);
}

struct evloop *workers_assign(struct workers *ws, struct nvme_ctrl *ctrl, unsigned n,
			      unsigned *qp_base, unsigned *qp_step)
{
	unsigned nq = nvme_ctrl_nr_qpairs(ctrl);
	unsigned t = n % (nq < ws->n ? nq : ws->n);

	*qp_base = t;
	*qp_step = ws->n;
	return ws->w[t].loop;
}

int workers_new(struct host *h, struct evloop *main_loop, unsigned n, const unsigned *cpus,
		unsigned poll_max_us, unsigned poll_idle_us, struct workers **out, char *why,
		size_t whylen)
{
	struct workers *ws = calloc(1, sizeof(*ws));
	int rc = 0;

	if (!ws) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	ws->h = h;
	ws->main_loop = main_loop;
	ws->n = n;
	ws->tail = &ws->head;
	pthread_mutex_init(&ws->mu, NULL);
	ws->msg_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ws->msg_fd < 0) {
		rc = -errno;
		goto fail;
	}
	for (unsigned t = 0; t < n; t++) {
		struct worker *w = &ws->w[t];

		w->ws = ws;
		w->idx = t;
		w->cpu = cpus ? (int)cpus[t] : -1;
		w->failed = (struct workers_msg){ .fn = on_failed, .arg = w };
		rc = evloop_new(&w->loop);
		if (!rc)
			rc = park_init(&w->park);
		if (rc)
			goto fail;
		w->park_ok = true;
		rc = park_watch(&w->park, w->loop);
		if (rc)
			goto fail;
		evloop_set_poll_max(w->loop, poll_max_us);
		evloop_set_poll_idle_max(w->loop, poll_idle_us);
		/* Polling spins only on spare CPU (util/cpuload.h). */
		if (cpuload_open(&w->load) == 0) {
			w->load_ok = true;
			cpuload_set_pollers(&w->load, n);
			evloop_set_poll_gate(w->loop, cpuload_spare, &w->load);
		}
		w->poller = (struct evloop_poller){ .poll = w_poll, .notify = w_notify,
						    .pending = w_pending, .busy = w_busy,
						    .arg = w };
		evloop_poller_add(w->loop, &w->poller);
	}
	for (unsigned i = 0; i < h->nctrls; i++) {
		struct nvme_ctrl *c = h->ctrls[i];
		unsigned nq = nvme_ctrl_nr_qpairs(c);

		if (nq < n)
			log_warn(nvme_ctrl_info(c)->bdf, "%u I/O queues for %u data threads: its clients "
				 "are served by the first %u", nq, n, nq);
		for (unsigned q = 0; q < nq; q++) {
			struct nvme_qpair *qp = nvme_ctrl_qpair(c, q);
			struct worker *w = &ws->w[q % n];
			int fd = nvme_qpair_vector_fd(qp);

			if (fd < 0) {
				snprintf(why, whylen, "%s: I/O queue %u shares its interrupt vector (%s); "
					 "--threads needs MSI-X with a vector per queue",
					 nvme_ctrl_info(c)->bdf, q,
					 vfio_irq_mode_name(nvme_ctrl_info(c)->irq_mode));
				rc = -EINVAL;
				goto fail;
			}
			rc = evloop_add(w->loop, fd, EPOLLIN | EPOLLET, w_vector, qp);
			if (rc)
				goto fail;
			w->qps[w->nqps++] = qp;
		}
		for (unsigned v = 0; v < nvme_ctrl_nr_vectors(c) && v < HOST_MAX_VECS; v++) {
			bool owned = false;

			for (unsigned q = 0; q < nq; q++)
				owned |= nvme_qpair_vector(nvme_ctrl_qpair(c, q)) == v;
			if (owned)
				continue;
			ws->vecs[ws->nvecs] = (struct host_vec){ c, v };
			rc = evloop_add(main_loop, nvme_ctrl_vector_fd(c, v),
					EPOLLIN | (nvme_ctrl_vector_edge(c, v) ? EPOLLET : 0), on_main_vector,
					&ws->vecs[ws->nvecs]);
			if (rc)
				goto fail;
			ws->nvecs++;
		}
	}
	rc = evloop_add(main_loop, ws->msg_fd, EPOLLIN, on_msg, ws);
	if (rc)
		goto fail;
	evloop_set_hooks(main_loop, hold_all, release_all, ws);
	*out = ws;
	return 0;
fail:
	if (!why[0])
		snprintf(why, whylen, "cannot set up the data threads: %s", strerror(-rc));
	workers_free(ws);
	return rc;
}

int workers_run(struct workers *ws)
{
	for (unsigned t = 0; t < ws->n; t++) {
		struct worker *w = &ws->w[t];
		int rc = -pthread_create(&w->tid, NULL, w_main, w);

		if (rc) {
			log_err(NULL, "cannot start data thread %u: %s", t, strerror(-rc));
			/* Those not started never park: a hold must not wait. */
			for (unsigned u = t; u < ws->n; u++)
				park_leave(&ws->w[u].park);
			workers_stop(ws);
			return rc;
		}
		w->started = true;
		ws->running = true;
	}
	return 0;
}

void workers_stop(struct workers *ws)
{
	if (!ws || !ws->running)
		return;
	hold_all(ws);
	for (unsigned t = 0; t < ws->n; t++)
		evloop_stop(ws->w[t].loop);
	release_all(ws);
	for (unsigned t = 0; t < ws->n; t++)
		if (ws->w[t].started) {
			pthread_join(ws->w[t].tid, NULL);
			ws->w[t].started = false;
		}
	ws->running = false;
}

void workers_free(struct workers *ws)
{
	if (!ws)
		return;
	workers_stop(ws);
	if (ws->main_loop) {
		evloop_set_hooks(ws->main_loop, NULL, NULL, NULL);
		for (unsigned i = 0; i < ws->nvecs; i++)
			evloop_del(ws->main_loop, nvme_ctrl_vector_fd(ws->vecs[i].ctrl, ws->vecs[i].vec));
		if (ws->msg_fd >= 0)
			evloop_del(ws->main_loop, ws->msg_fd);
	}
	for (unsigned t = 0; t < ws->n; t++) {
		struct worker *w = &ws->w[t];

		evloop_free(w->loop);
		if (w->park_ok)
			park_destroy(&w->park);
		if (w->load_ok)
			cpuload_close(&w->load);
	}
	if (ws->msg_fd >= 0)
		close(ws->msg_fd);
	pthread_mutex_destroy(&ws->mu);
	free(ws);
}
