#include "daemon/clients.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/args.h"
#include "ctl/reply.h"
#include "daemon/inventory.h"
#include "daemon/workers.h"
#include "transport/vduse.h"
#include "transport/vhost_user.h"
#include "util/log.h"
#include "util/scm.h"

#define CLIENT_QUEUES 4
/* Control connections: at most CTL_CONNS_MAX at once (each holds a
 * descriptor and one of the event loop's watches), and CTL_CONNS_PER_UID
 * of one peer user other than root and the server's own, so that one
 * user's flood leaves room for the others. A connection that sends no
 * request for CTL_IDLE_MS is closed (a call takes milliseconds);
 * SOCK_SEQPACKET delivers whole messages, so a request is never half
 * there. */
#define CTL_CONNS_MAX 64
#define CTL_CONNS_PER_UID 16
#define CTL_IDLE_MS 10000
/* Replies a connection's peer has not read yet wait in its queue
 * (util/sendq.h), which takes one reply however long and, beyond it, at
 * most CTL_QUEUED_MAX bytes: a peer that sends requests without reading
 * the replies is cut off there, and one that reads nothing of a pending
 * reply for CTL_IDLE_MS too. A report is made whole, as one snapshot, up
 * to CTL_REPORT_MAX bytes (some 500000 clients). */
#define CTL_QUEUED_MAX (1u << 20)
#define CTL_REPORT_MAX (256u << 20)

_Static_assert((int)CTL_QOS_NKEYS == (int)QOS_NKEYS && (int)CTL_QOS_IOPS == (int)QOS_IOPS &&
	       (int)CTL_QOS_BPS == (int)QOS_BPS && (int)CTL_QOS_WBPS == (int)QOS_WBPS &&
	       CTL_QOS_IOPS_MAX == QOS_IOPS_MAX && CTL_QOS_BPS_MIN == QOS_BPS_MIN &&
	       CTL_QOS_BPS_MAX == QOS_BPS_MAX,
	       "the control words' limits are vblk's, key for key");

struct client {
	struct clients *cs;
	char name[CTL_SOCKET_PATH_SIZE + 16];
	char device[CTL_DEVICE_MAX + 1];
	char vduse[CTL_VDUSE_NAME_MAX + 1];	/* "" unless a VDUSE client */
	bool is_static;
	bool by_fd;
	uid_t creator;		/* a dynamic client: who asked for it */
	gid_t creator_gid;
	/* A dynamic client's record in the state directory ("" if none): what
	 * makes it again after a restart. Removed when it is destroyed. */
	char record[CTL_VDUSE_NAME_MAX + CTL_SOCKET_PATH_SIZE + 16];
	bool readonly;
	bool stopping;		/* its VDUSE device is on the way off the bus */
	unsigned ds_max;
	struct qos_limits qos;	/* as now set (nvme-drv-ctl qos changes them) */
	struct blk_target tgt;
	struct vhu_ep *ep;	/* a vhost-user client, or */
	struct vduse_ep *vep;	/* a VDUSE client */
	/* A control connection owed the answer to this client's create
	 * (until the device is on the bus) or destroy (until it is off). */
	struct ctl_conn *waiter;
	bool waiter_created;
	/* With data threads: its callbacks as messages to the control thread
	 * (vduse_ended's arguments kept while it goes). */
	struct workers_msg msg_end, msg_attached;
	int end_err;
	char end_why[CTL_WHY_MAX];
	struct client *next;
};

struct ctl_conn {
	struct clients *cs;
	int fd;
	struct ucred peer;	/* SO_PEERCRED: who connected */
	long long idle_since;	/* ms: accepted, last asked, or last sent to */
	bool deferred;		/* an answer is owed: not idle */
	bool accepted;		/* in cs->conns (a refused one never is) */
	bool dropped;		/* closed at the end of the loop's round */
	bool eof;		/* the peer sends no more: flush the replies, then close */
	uint32_t watched;	/* the events the loop watches (0: not there) */
	struct sendq out;	/* replies the peer has not taken yet */
	struct evloop_defer drop;
	struct ctl_conn *next;
};

struct clients {
	struct host *host;
	struct evloop *loop;
	struct vblk_trusted *trusted;
	unsigned ntrusted;
	struct client *list;
	unsigned next_id;
	unsigned next_qp;
	int ctl_fd;
	char ctl_path[CTL_SOCKET_PATH_SIZE];
	char sock_dir[CTL_SOCKET_PATH_SIZE];	/* where peers' socket= paths go */
	struct ctl_conn *conns;
	const char *state_dir;	/* NULL: nothing survives us */
	unsigned nconns;
	int idle_fd;		/* timerfd: idle connections are looked for */
	/* Per controller (host->ctrls' order): the counters of its clients
	 * that have ended, so that a controller's totals do not drop when a
	 * client goes. */
	struct vblk_stats ended[HOST_MAX_CTRLS];
	struct sock_perm perm;		/* of the command line's sockets */
	/* Data threads (--threads; NULL: this loop serves every client). */
	struct workers *workers;
	unsigned nassigned;
};

int clients_new(struct host *host, struct evloop *loop, const struct vblk_trusted *trusted,
		unsigned ntrusted, struct clients **out)
{
	struct clients *cs = calloc(1, sizeof(*cs));

	if (!cs)
		return -ENOMEM;
	cs->host = host;
	cs->loop = loop;
	cs->ctl_fd = -1;
	cs->idle_fd = -1;
	cs->perm = (struct sock_perm){ (uid_t)-1, (gid_t)-1, -1 };
	if (ntrusted) {
		cs->trusted = calloc(ntrusted, sizeof(*cs->trusted));
		if (!cs->trusted) {
			free(cs);
			return -ENOMEM;
		}
		memcpy(cs->trusted, trusted, ntrusted * sizeof(*trusted));
		cs->ntrusted = ntrusted;
	}
	*out = cs;
	return 0;
}

void clients_set_socket_perm(struct clients *cs, const struct sock_perm *perm)
{
	cs->perm = *perm;
}

/* --socket-owner, --socket-mode on a socket just bound and listening.
 * Until then it had the server's owner and a mode no wider than asked
 * for (connect needs write permission, which the umask or 0600 grants
 * only the server's user), so nobody got in early. Returns 0 or a
 * negative errno with `why`. */
static int apply_perm(const struct clients *cs, const char *path, char *why, size_t whylen)
{
	const struct sock_perm *p = &cs->perm;

	if ((p->uid != (uid_t)-1 || p->gid != (gid_t)-1) && chown(path, p->uid, p->gid) != 0) {
		snprintf(why, whylen, "--socket-owner: chown %s to %d:%d: %s", path, (int)p->uid,
			 (int)p->gid, strerror(errno));
		return -errno;
	}
	if (p->mode >= 0 && chmod(path, (mode_t)p->mode) != 0) {
		snprintf(why, whylen, "--socket-mode: chmod %s to %04o: %s", path,
			 (unsigned)p->mode, strerror(errno));
		return -errno;
	}
	return 0;
}

static void ctl_reply(struct ctl_conn *cc, const char *text, int fd);

/* ", limits iops=N ..." for a log line: the limits set, or "". */
static const char *qos_text(const struct qos_limits *l, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int k = 0; k < QOS_NKEYS && o < len; k++)
		if (l->v[k])
			o += (size_t)snprintf(buf + o, len - o, "%s%s=%llu", o ? " " : ", limits ",
					      ctl_qos_names[k], (unsigned long long)l->v[k]);
	return buf;
}
static void ctl_error(struct ctl_conn *cc, int err, const char *msg);
static void ctl_ok(struct ctl_conn *cc, const char *body);
static void conn_watch(struct ctl_conn *cc);
static long long now_ms(void);

/* A create or destroy that waits for the kernel: the connection is not
 * read meanwhile, so that its replies stay in the order of its requests
 * (spec/ctl_proto.h). */
static void defer(struct client *c, struct ctl_conn *cc, bool created)
{
	c->waiter = cc;
	c->waiter_created = created;
	cc->deferred = true;
	conn_watch(cc);
}

/* The answer owed to a deferred request; the connection is read again. */
static void answer(struct client *c, int err, const char *msg)
{
	struct ctl_conn *cc = c->waiter;
	char body[sizeof(c->vduse) + 1];

	if (!cc)
		return;
	if (err) {
		ctl_error(cc, err, msg);
	} else {
		snprintf(body, sizeof(body), "%s\n", c->waiter_created ? c->vduse : "");
		ctl_ok(cc, c->waiter_created ? body : "");
	}
	c->waiter = NULL;
	cc->deferred = false;
	cc->idle_since = now_ms();
	conn_watch(cc);
}

static void record_remove(struct client *c)
{
	char path[PATH_MAX];

	if (!c->record[0] || !c->cs->state_dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", c->cs->state_dir, c->record);
	if (unlink(path) != 0 && errno != ENOENT)
		log_warn(c->name, "cannot remove %s: %s", path, strerror(errno));
	c->record[0] = '\0';
}

static const struct vblk_stats *client_stats(const struct client *c)
{
	return c->vep ? vduse_ep_stats(c->vep) : vhu_ep_stats(c->ep);
}

/* The index of the controller a client's blocks are on, in host->ctrls. */
static unsigned client_ctrl(const struct client *c)
{
	const struct host *h = c->cs->host;
	unsigned i = 0;

	while (i < h->nctrls && h->ctrls[i] != nvme_ns_ctrl(c->tgt.ns))
		i++;
	return i;
}

static void stats_add(struct vblk_stats *sum, const struct vblk_stats *s)
{
	sum->reads += s->reads;
	sum->writes += s->writes;
	sum->flushes += s->flushes;
	sum->discards += s->discards;
	sum->write_zeroes += s->write_zeroes;
	sum->get_ids += s->get_ids;
	sum->bytes_read += s->bytes_read;
	sum->bytes_written += s->bytes_written;
	sum->errors += s->errors;
	sum->throttled += s->throttled;
	sum->yields += s->yields;
}

static void client_free(struct client *c)
{
	struct client **pp;
	unsigned ci = client_ctrl(c);

	if ((c->ep || c->vep) && ci < HOST_MAX_CTRLS)
		stats_add(&c->cs->ended[ci], client_stats(c));

	for (pp = &c->cs->list; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (c->cs->workers) {
		workers_cancel(c->cs->workers, &c->msg_end);
		workers_cancel(c->cs->workers, &c->msg_attached);
	}
	vhu_ep_destroy(c->ep);
	vduse_ep_destroy(c->vep);
	if (c->waiter_created)
		answer(c, -EIO, "the client ended before its device was ready");
	else
		answer(c, 0, NULL);
	log_info(c->name, "client ended; %s released", c->tgt.name);
	free(c);
}

static void ctl_conn_close(struct ctl_conn *cc)
{
	struct ctl_conn **pp;

	for (struct client *c = cc->cs->list; c; c = c->next)
		if (c->waiter == cc)
			c->waiter = NULL;
	for (pp = &cc->cs->conns; *pp; pp = &(*pp)->next)
		if (*pp == cc) {
			*pp = cc->next;
			cc->cs->nconns--;
			break;
		}
	evloop_defer_cancel(cc->cs->loop, &cc->drop);
	if (cc->watched)
		evloop_del(cc->cs->loop, cc->fd);
	sendq_clear(&cc->out);
	close(cc->fd);
	free(cc);
}

static void ctl_close(struct clients *cs)
{
	while (cs->conns)
		ctl_conn_close(cs->conns);
	if (cs->idle_fd >= 0) {
		evloop_del(cs->loop, cs->idle_fd);
		close(cs->idle_fd);
		cs->idle_fd = -1;
	}
	if (cs->ctl_fd >= 0) {
		evloop_del(cs->loop, cs->ctl_fd);
		close(cs->ctl_fd);
		unlink(cs->ctl_path);
		cs->ctl_fd = -1;
	}
}

void clients_free(struct clients *cs)
{
	if (!cs)
		return;
	ctl_close(cs);
	while (cs->list)
		client_free(cs->list);
	free(cs->trusted);
	free(cs);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static bool any_stopping(const struct clients *cs)
{
	for (const struct client *c = cs->list; c; c = c->next)
		if (c->stopping)
			return true;
	return false;
}

static unsigned quiesce_all(struct clients *cs)
{
	unsigned n = 0;

	/* Outside the loop's callbacks: the data threads are held here. */
	workers_hold(cs->workers);
	for (struct client *c = cs->list; c; c = c->next)
		n += c->vep ? vduse_ep_quiesce(c->vep) : vhu_ep_quiesce(c->ep);
	workers_release(cs->workers);
	return n;
}

void clients_handover(struct clients *cs, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	unsigned n;

	if (!cs)
		return;
	ctl_close(cs);
	/* A device already on its way off the bus (a destroy) finishes that:
	 * its record is gone, no successor would take it. */
	while (any_stopping(cs)) {
		long long left = deadline - now_ms();

		if (left <= 0 || evloop_once(cs->loop, (int)left) < 0)
			break;
	}
	while ((n = quiesce_all(cs)) != 0) {
		long long left = deadline - now_ms();

		if (left <= 0) {
			log_warn(NULL, "%u requests still in flight after %d s; the next server takes "
				 "them again", n, timeout_ms / 1000);
			return;
		}
		/* With data threads, the completions land there: nothing
		 * wakes this loop when the last one does, so it looks often. */
		if (cs->workers && left > 5)
			left = 5;
		if (evloop_once(cs->loop, (int)left) < 0)
			return;
	}
	log_info(NULL, "nothing in flight: handing over");
}

void clients_shutdown(struct clients *cs, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	if (!cs)
		return;
	/* No new clients, no more requests. */
	ctl_close(cs);
	workers_hold(cs->workers);
	for (struct client *c = cs->list; c; c = c->next)
		if (c->vep && !c->stopping && vduse_ep_stop(c->vep))
			c->stopping = true;
	workers_release(cs->workers);
	/* Taking a device off the bus makes the kernel's driver wait for its
	 * requests in flight and reset the device: all of it is served by
	 * this loop, NVMe completions included. */
	while (any_stopping(cs)) {
		long long left = deadline - now_ms();

		if (left <= 0) {
			log_warn(NULL, "VDUSE devices still on the vdpa bus after %d s; leaving them",
				 timeout_ms / 1000);
			return;
		}
		if (evloop_once(cs->loop, (int)left) < 0)
			return;
	}
}

static void ended_main(void *arg)
{
	client_free(arg);
}

/* From the loop serving the client: with data threads, its callbacks go
 * to the control thread (daemon/workers.h). */
static void ended(void *ctx, struct vhu_ep *ep)
{
	struct client *c = ctx;

	(void)ep;
	if (c->cs->workers) {
		workers_post(c->cs->workers, &c->msg_end);
		return;
	}
	client_free(c);
}

static const struct vhu_ep_ops ep_ops = { .ended = ended };

static void vduse_attached_main(void *arg)
{
	struct client *c = arg;

	if (vduse_ep_connected(c->vep))
		log_info(c->name, "block device ready");
	if (c->waiter_created) {
		answer(c, 0, NULL);
		c->waiter_created = false;
	}
}

static void vduse_attached(void *ctx, struct vduse_ep *ep)
{
	struct client *c = ctx;

	if (c->cs->workers) {
		workers_post(c->cs->workers, &c->msg_attached);
		return;
	}
	if (vduse_ep_connected(ep))
		log_info(c->name, "block device ready");
	if (c->waiter_created) {
		answer(c, 0, NULL);
		c->waiter_created = false;
	}
}

static void vduse_end(struct client *c, int err, const char *why)
{
	char msg[CTL_WHY_MAX];

	if (err) {
		snprintf(msg, sizeof(msg), "cannot %s %s %s the vdpa bus: %s",
			 c->stopping ? "take" : "put", c->vduse, c->stopping ? "off" : "on", why);
		log_err(c->name, "%s", msg);
		if (c->waiter_created)
			record_remove(c);	/* the create failed: nothing to remake */
		answer(c, err, msg);	/* the create or destroy waiting for it */
		c->waiter_created = false;
	}
	client_free(c);
}

static void vduse_ended_main(void *arg)
{
	struct client *c = arg;

	vduse_end(c, c->end_err, c->end_why);
}

static void vduse_ended(void *ctx, struct vduse_ep *ep, int err, const char *why)
{
	struct client *c = ctx;

	(void)ep;
	if (c->cs->workers) {
		c->end_err = err;
		snprintf(c->end_why, sizeof(c->end_why), "%s", why ? why : "");
		workers_post(c->cs->workers, &c->msg_end);
		return;
	}
	vduse_end(c, err, why);
}

static const struct vduse_ep_ops vduse_ops = { .attached = vduse_attached, .ended = vduse_ended };

/* A socket file left by a server that died: nothing accepts on it. */
static bool stale_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc != 0 && errno == ECONNREFUSED;
}

/* creator: the control-socket peer asking, NULL for a static client.
 * restoring: made again from its record after a restart; a socket left by
 * our predecessor may go. */
static int client_new(struct clients *cs, const struct ucred *creator, bool restoring,
		      const struct client_spec *spec, int *fd_out, struct client **out, char *why,
		      size_t whylen)
{
	const char *device = spec->device, *socket_path = spec->socket;
	struct vblk_conf conf;
	struct evloop *loop;
	struct client *c;
	char qtext[160];
	int sv[2] = { -1, -1 };
	int rc;

	c = calloc(1, sizeof(*c));
	if (c) {
		c->msg_end = (struct workers_msg){ .fn = spec->vduse ? vduse_ended_main : ended_main,
						   .arg = c };
		c->msg_attached = (struct workers_msg){ .fn = vduse_attached_main, .arg = c };
	}
	if (!c)
		return -ENOMEM;
	c->cs = cs;
	snprintf(c->device, sizeof(c->device), "%s", device);
	rc = blk_lookup(&cs->host->reg, device, &c->tgt, why, whylen);
	if (rc == -ENOTUNIQ)
		goto fail;
	if (rc == -EINVAL) {
		snprintf(why, whylen, "'%s' is not a device name (SERIAL:nNSID, SERIAL:nNSID:N, UUID, "
			 "partuuid:UUID or partlabel:NAME)", device);
		goto fail;
	}
	if (rc) {
		snprintf(why, whylen, "no disk or partition '%s' (nvme-drv --list shows them)", device);
		rc = -ENODEV;
		goto fail;
	}
	for (struct client *o = cs->list; o; o = o->next) {
		/* Claims are LBA ranges of one namespace: a disk overlaps all
		 * its partitions, partitions overlap only if their ranges do. */
		if (o->tgt.ns == c->tgt.ns && o->tgt.first_lba < c->tgt.first_lba + c->tgt.nlba &&
		    c->tgt.first_lba < o->tgt.first_lba + o->tgt.nlba) {
			/* The canonical name only where it says more than the
			 * name given; "overlaps" only for another target. */
			char given[sizeof(c->device) + sizeof(c->tgt.name) + 3];

			if (strcmp(device, c->tgt.name) == 0)
				snprintf(given, sizeof(given), "%s", device);
			else
				snprintf(given, sizeof(given), "%s (%s)", device, c->tgt.name);
			if (strcmp(o->tgt.name, c->tgt.name) == 0)
				snprintf(why, whylen, "%s is claimed by client %s", given, o->name);
			else
				snprintf(why, whylen, "%s overlaps %s, claimed by client %s", given,
					 o->tgt.name, o->name);
			rc = -EBUSY;
			goto fail;
		}
	}
	if (spec->vduse) {
		snprintf(c->name, sizeof(c->name), "vduse:%s", spec->vduse);
		snprintf(c->vduse, sizeof(c->vduse), "%s", spec->vduse);
		for (struct client *o = cs->list; o; o = o->next)
			if (o->vep && strcmp(o->vduse, c->vduse) == 0) {
				snprintf(why, whylen, "client %s exists", c->name);
				rc = -EEXIST;
				goto fail;
			}
	} else if (socket_path) {
		struct stat st;

		snprintf(c->name, sizeof(c->name), "%s", socket_path);
		/* The operator named a static client's path: a socket left by a
		 * server that died may go. A peer's path is never unlinked: only
		 * what this server made is removed. */
		if ((!creator || restoring) && stale_socket(socket_path)) {
			log_info(socket_path, "removing a stale socket");
			unlink(socket_path);
		}
		/* lstat: a dangling symlink is in the way too. */
		if (lstat(socket_path, &st) == 0) {
			snprintf(why, whylen, "socket path %s exists", socket_path);
			rc = -EEXIST;
			goto fail;
		}
	} else {
		snprintf(c->name, sizeof(c->name), "fd-client-%u", ++cs->next_id);
		c->by_fd = true;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
			rc = -errno;
			snprintf(why, whylen, "socketpair: %s", strerror(errno));
			goto fail;
		}
	}
	c->is_static = !creator;
	c->creator = creator ? creator->uid : 0;
	c->creator_gid = creator ? creator->gid : 0;
	c->readonly = spec->readonly;
	c->ds_max = spec->ds_max;
	c->qos = spec->qos;
	memset(&conf, 0, sizeof(conf));
	conf.name = c->name;
	conf.target = c->tgt;
	conf.readonly = spec->readonly;
	conf.ds_max = spec->ds_max;
	conf.trusted = cs->trusted;
	conf.ntrusted = cs->ntrusted;
	/* A VDUSE device offers fewer when ds-max is small (transport/vduse.h). */
	conf.num_queues = CLIENT_QUEUES;
	conf.qp_first = cs->next_qp++;
	conf.qos = spec->qos;
	/* With data threads, the client's whole life is in one of their
	 * loops, on its queue pairs. */
	loop = cs->workers ? workers_assign(cs->workers, nvme_ns_ctrl(c->tgt.ns), cs->nassigned++,
					    &conf.qp_base, &conf.qp_step)
			   : cs->loop;
	conf.loop = loop;
	if (spec->vduse) {
		rc = vduse_ep_create(loop, spec->vduse, &conf, cs->state_dir, &vduse_ops, c, &c->vep,
				     why, whylen);
		if (rc)
			goto fail;
	} else {
		if (socket_path) {
			rc = vhu_ep_listen(loop, socket_path, &conf, &ep_ops, c, &c->ep);
			/* A peer other than root gets a socket it can connect to
			 * (bound with the server's umask, owned by its user). The
			 * socket directory is writable by its owner only (or
			 * sticky), so the path is still the one just bound. */
			if (!rc && creator && creator->uid != 0 && creator->uid != geteuid() &&
			    chown(socket_path, creator->uid, creator->gid) != 0) {
				rc = -errno;
				vhu_ep_destroy(c->ep);
				c->ep = NULL;
			}
			if (!rc && !creator) {
				rc = apply_perm(cs, socket_path, why, whylen);
				if (rc) {
					vhu_ep_destroy(c->ep);
					c->ep = NULL;
					goto fail;
				}
			}
		} else {
			rc = vhu_ep_adopt(loop, sv[0], &conf, &ep_ops, c, &c->ep);
			sv[0] = -1;	/* the endpoint owns it, on failure too */
		}
		if (rc) {
			snprintf(why, whylen, "cannot serve %s: %s", c->name, strerror(-rc));
			goto fail;
		}
	}
	c->next = cs->list;
	cs->list = c;
	if (fd_out)
		*fd_out = sv[1];
	log_info(c->name, "client of %s (%s)%s, ds-max %u%s", device, c->tgt.name,
		 spec->readonly || c->tgt.readonly ? ", read-only" : "", spec->ds_max,
		 qos_text(&spec->qos, qtext, sizeof(qtext)));
	*out = c;
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(c);
	return rc;
}

int clients_create(struct clients *cs, bool is_static, const struct client_spec *spec, int *fd_out,
		   char *why, size_t whylen)
{
	struct client *c;

	/* A dynamic client made here belongs to the server's own user. */
	const struct ucred self = { .pid = getpid(), .uid = geteuid(), .gid = getegid() };

	return client_new(cs, is_static ? NULL : &self, false, spec, fd_out, &c, why, whylen);
}

/* The dynamic client a destroy names: by socket path or VDUSE name. */
static struct client *find_dynamic(struct clients *cs, const struct destroy_args *d, int *err,
				   char *why, size_t whylen)
{
	bool vduse = d->transport == CTL_TRANSPORT_VDUSE;

	for (struct client *c = cs->list; c; c = c->next) {
		if (vduse ? !c->vep || strcmp(c->vduse, d->name) != 0
			  : !c->ep || c->by_fd || strcmp(c->name, d->name) != 0)
			continue;
		if (c->is_static) {
			snprintf(why, whylen, "%s is a static client", c->name);
			*err = -EPERM;
			return NULL;
		}
		return c;
	}
	snprintf(why, whylen, "no dynamic client %s%s", vduse ? "vduse:" : "at ", d->name);
	*err = -ENOENT;
	return NULL;
}

void clients_qos_from_ctl(const struct ctl_qos *q, struct qos_limits *out)
{
	for (int k = 0; k < QOS_NKEYS; k++)
		out->v[k] = q->v[k];
}

/* The limits, each by its create() word (0: none). */
static void write_qos(struct rec_out *o, const struct qos_limits *l)
{
	for (int k = 0; k < QOS_NKEYS; k++)
		rec_u64(o, ctl_qos_names[k], l->v[k]);
}

static void write_counters(struct rec_out *o, const struct vblk_stats *s)
{
	rec_u64(o, "reads", s->reads);
	rec_u64(o, "writes", s->writes);
	rec_u64(o, "flushes", s->flushes);
	rec_u64(o, "discards", s->discards);
	rec_u64(o, "write-zeroes", s->write_zeroes);
	rec_u64(o, "errors", s->errors);
	rec_u64(o, "bytes-read", s->bytes_read);
	rec_u64(o, "bytes-written", s->bytes_written);
	rec_u64(o, "throttled", s->throttled);
	rec_u64(o, "yields", s->yields);
}

/* What a serving loop's polling did (evloop.h): whether polling pays is
 * hits against rounds, and what it costs in wake-ups is sleeps. */
static void write_loop(struct rec_out *o, const char *name, const struct evloop *l)
{
	struct evloop_poll_stats st;

	evloop_poll_stats(l, &st);
	rec_begin(o, "loop", "name", name);
	rec_u64(o, "poll-window-us", st.poll_ns / 1000);
	rec_u64(o, "idle-window-us", st.idle_poll_ns / 1000);
	rec_u64(o, "rounds", st.rounds);
	rec_u64(o, "hits", st.hits);
	rec_u64(o, "sleeps", st.sleeps);
	rec_u64(o, "skips", st.skips);
	rec_u64(o, "gated", st.gated);
	rec_end(o);
}

/* inventory_holder_fn: a whole disk and its partitions exclude each other,
 * so a client holds exactly the blocks its target names. */
static const char *holder(void *ctx, const struct blk_disk *d, const struct part_entry *pe)
{
	const struct clients *cs = ctx;

	for (const struct client *c = cs->list; c; c = c->next)
		if (c->tgt.disk == d && c->tgt.part == pe)
			return c->name;
	return NULL;
}

static const char *client_transport(const struct client *c)
{
	return c->vep ? "vduse" : c->by_fd ? "fd" : "socket";
}

unsigned clients_count(const struct clients *cs)
{
	unsigned n = 0;

	for (const struct client *c = cs->list; c; c = c->next)
		n++;
	return n;
}

void clients_report(const struct clients *cs, enum ctl_cmd what, struct rec_out *o)
{
	const struct host *h = cs->host;

	if (what == CTL_CMD_DISKS) {
		inventory_write(h, o, holder, (void *)cs);
		return;
	}
	rec_list_begin(o, "clients");
	for (const struct client *c = cs->list; c; c = c->next) {
		unsigned ci = client_ctrl(c);

		rec_begin(o, "client", "name", c->name);
		if (what == CTL_CMD_LIST) {
			rec_str(o, "device", c->device);
			rec_str(o, "target", c->tgt.name);
			rec_str(o, "type", c->is_static ? "static" : "dynamic");
			rec_str(o, "transport", client_transport(c));
			rec_bool(o, "read-only", c->readonly || c->tgt.readonly);
			rec_u64(o, "ds-max", c->ds_max);
			rec_bool(o, "connected", c->vep ? vduse_ep_connected(c->vep)
						       : vhu_ep_connected(c->ep));
		} else {
			rec_str(o, "target", c->tgt.name);
			rec_str(o, "controller", ci < h->nctrls ? nvme_ctrl_info(h->ctrls[ci])->bdf : "");
		}
		write_qos(o, &c->qos);
		write_counters(o, client_stats(c));
		rec_end(o);
	}
	rec_list_end(o);
	/* Each controller's state (one given up, removed or dead, fails every
	 * request of its clients) and, for stats, its totals: what its
	 * clients were served, the ended ones included. */
	rec_list_begin(o, "controllers");
	for (unsigned i = 0; i < h->nctrls; i++) {
		const struct nvme_ctrl_info *info = nvme_ctrl_info(h->ctrls[i]);

		rec_begin(o, "controller", "bdf", info->bdf);
		rec_text(o, "serial", info->serial);
		rec_str(o, "state", nvme_ctrl_is_failed(h->ctrls[i]) ? "gone" : "ok");
		if (what == CTL_CMD_STATS) {
			struct vblk_stats sum = cs->ended[i];

			struct nvme_io_stats io;

			for (const struct client *c = cs->list; c; c = c->next)
				if (client_ctrl(c) == i)
					stats_add(&sum, client_stats(c));
			write_counters(o, &sum);
			/* Where requests' time goes: at the device or not. */
			nvme_ctrl_io_stats(h->ctrls[i], &io);
			rec_u64(o, "commands", io.commands);
			rec_u64(o, "device-us", io.device_ns / 1000);
		}
		rec_end(o);
	}
	rec_list_end(o);
	if (what != CTL_CMD_STATS)
		return;
	/* The loops that serve clients: this one, or each data thread's
	 * (parked while this runs). */
	rec_list_begin(o, "loops");
	if (cs->workers) {
		for (unsigned i = 0; i < workers_nr(cs->workers); i++) {
			char name[16];

			snprintf(name, sizeof(name), "data-%u", i);
			write_loop(o, name, workers_loop(cs->workers, i));
		}
	} else {
		write_loop(o, "main", cs->loop);
	}
	rec_list_end(o);
}

/* ---- the control socket ---- */

static void on_ctl_conn(void *arg, uint32_t events);

static void conn_drop_now(void *arg)
{
	ctl_conn_close(arg);
}

/* Ends a connection that must go (said at level lvl): it is no longer
 * watched or sent to, and closed at the end of the loop's round, when no
 * caller holds it any more. */
static void conn_drop(struct ctl_conn *cc, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void conn_drop(struct ctl_conn *cc, enum log_level lvl, const char *fmt, ...)
{
	char why[CTL_WHY_MAX];
	va_list ap;

	if (cc->dropped)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_msg(lvl, "control", "uid %u: %s; connection closed", (unsigned)cc->peer.uid, why);
	cc->dropped = true;
	/* A connection being refused is freed by on_ctl_listen itself. */
	if (!cc->accepted)
		return;
	if (cc->watched)
		evloop_del(cc->cs->loop, cc->fd);
	cc->watched = 0;
	cc->drop = (struct evloop_defer){ .cb = conn_drop_now, .arg = cc };
	evloop_defer(cc->cs->loop, &cc->drop);
}

/* What the loop watches cc for: requests, unless an answer is owed (a
 * deferred create or destroy: replies stay in the order of the requests),
 * and room in the socket while replies wait in cc->out. */
static void conn_watch(struct ctl_conn *cc)
{
	uint32_t ev = (cc->deferred || cc->eof ? 0 : EPOLLIN) | (sendq_empty(&cc->out) ? 0 : EPOLLOUT);
	int rc;

	if (!cc->accepted || cc->dropped || ev == cc->watched)
		return;
	if (!cc->watched)
		rc = evloop_add(cc->cs->loop, cc->fd, ev, on_ctl_conn, cc);
	else if (!ev)
		rc = evloop_del(cc->cs->loop, cc->fd);
	else
		rc = evloop_mod(cc->cs->loop, cc->fd, ev);
	if (rc) {
		conn_drop(cc, LOG_WARN, "cannot watch the connection: %s", strerror(-rc));
		return;
	}
	cc->watched = ev;
}

/* Sends what the socket takes of cc's queue; the rest waits for EPOLLOUT.
 * A peer that hung up before its reply is no news. */
static void conn_flush(struct ctl_conn *cc)
{
	unsigned sent = 0;
	int rc = sendq_flush(&cc->out, cc->fd, &sent);

	if (sent)
		cc->idle_since = now_ms();
	if (rc && rc != -EAGAIN) {
		conn_drop(cc, rc == -EPIPE || rc == -ECONNRESET ? LOG_INFO : LOG_WARN,
			  "cannot send a reply: %s", strerror(-rc));
		return;
	}
	if (cc->eof && sendq_empty(&cc->out)) {
		conn_drop(cc, LOG_DEBUG, "every reply sent after the peer's end");
		return;
	}
	conn_watch(cc);
}

/* The peer reads its replies or is cut off (CTL_QUEUED_MAX). */
static void conn_no_room(struct ctl_conn *cc)
{
	conn_drop(cc, LOG_WARN, "requests sent without reading the replies: %zu bytes wait, "
		  "and at most %u KiB may", cc->out.bytes, CTL_QUEUED_MAX >> 10);
}

/* One reply message (with fd, if >= 0, as SCM_RIGHTS; the caller keeps
 * its copy). */
static void ctl_reply(struct ctl_conn *cc, const char *text, int fd)
{
	size_t len = strlen(text);
	int rc;

	if (cc->dropped)
		return;
	if (!sendq_room(&cc->out, len + (fd >= 0 ? SENDQ_FD_COST : 0), 1)) {
		conn_no_room(cc);
		return;
	}
	rc = sendq_push(&cc->out, text, len, fd);
	if (rc) {
		conn_drop(cc, LOG_WARN, "cannot queue a reply: %s", strerror(-rc));
		return;
	}
	conn_flush(cc);
}

static void ctl_error(struct ctl_conn *cc, int err, const char *msg)
{
	static char out[CTL_MSG_MAX];

	log_info("control", "refused: %s: %s", ctl_errno_name(err), msg);
	ctl_format_error(out, sizeof(out), err, msg);
	ctl_reply(cc, out, -1);
}

static void ctl_ok(struct ctl_conn *cc, const char *body)
{
	static char out[CTL_MSG_MAX];

	ctl_format_ok(out, sizeof(out), body);
	ctl_reply(cc, out, -1);
}

/* Dynamic clients made with socket= or vduse= are recorded in the state
 * directory, as the create() words that made them and who asked, so that
 * a restarted server makes them again (a client handed back as a
 * descriptor ends with its connection: nothing to remake). Written to a
 * temporary file and renamed: a record is whole or absent. */
#define RECORD_MAX 4096

static void record_write(struct client *c, unsigned nwords, const char *const *words,
			 const struct ucred *peer)
{
	struct clients *cs = c->cs;
	char path[PATH_MAX], tmp[PATH_MAX], buf[RECORD_MAX];
	int len, fd;
	bool ok;

	if (!cs->state_dir || c->by_fd)
		return;
	snprintf(c->record, sizeof(c->record), "client-%s-%s", c->vep ? "vduse" : "sock",
		 c->vep ? c->vduse : strrchr(c->name, '/') + 1);
	len = snprintf(buf, sizeof(buf), "creator %u %u\n", (unsigned)peer->uid, (unsigned)peer->gid);
	for (unsigned i = 0; i < nwords && len < (int)sizeof(buf); i++)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "%s\n", words[i]);
	snprintf(path, sizeof(path), "%s/%s", cs->state_dir, c->record);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", cs->state_dir, c->record);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (len >= (int)sizeof(buf))
		errno = ENAMETOOLONG;	/* its words do not fit a record */
	ok = len < (int)sizeof(buf) && fd >= 0 && write(fd, buf, (size_t)len) == len;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, path) != 0) {
		log_warn(c->name, "cannot record the client in %s (%s): it will not be made again "
			 "after a restart", cs->state_dir, strerror(errno));
		unlink(tmp);
		c->record[0] = '\0';
	}
}

/* The record of a client whose limits changed, written again from what
 * it is now (the create() words that would make it so). */
static void record_rewrite(struct client *c)
{
	const struct ucred peer = { .uid = c->creator, .gid = c->creator_gid };
	char buf[CTL_MAX_WORDS][CTL_SOCKET_PATH_SIZE + 32];
	const char *words[CTL_MAX_WORDS];
	unsigned n = 0;

	if (!c->record[0])
		return;
	snprintf(buf[n++], sizeof(buf[0]), "create");
	snprintf(buf[n++], sizeof(buf[0]), "%d", CTL_OBJ_VIRTIO_BLK);
	snprintf(buf[n++], sizeof(buf[0]), "ds-max=%u", c->ds_max);
	if (c->readonly)
		snprintf(buf[n++], sizeof(buf[0]), "read-only");
	if (c->vep)
		snprintf(buf[n++], sizeof(buf[0]), "vduse=%s", c->vduse);
	else
		snprintf(buf[n++], sizeof(buf[0]), "socket=%s", c->name);
	for (int k = 0; k < QOS_NKEYS; k++)
		if (c->qos.v[k])
			snprintf(buf[n++], sizeof(buf[0]), "%s=%llu", ctl_qos_names[k],
				 (unsigned long long)c->qos.v[k]);
	for (unsigned i = 0; i < n; i++)
		words[i] = buf[i];
	/* device= last: the one word that may be longer than the others. */
	{
		char dev[sizeof(c->device) + 8];

		snprintf(dev, sizeof(dev), "device=%s", c->device);
		words[n++] = dev;
		record_write(c, n, words, &peer);
	}
}

/* nvme-drv-ctl qos CLIENT LIMIT...: the limits given change now, the
 * others stay. A static client's are the operator's (root or the server's
 * user); a dynamic one's also its creator's, as destroy. */
static int client_set_qos(struct ctl_conn *cc, const struct qos_args *a, char *why,
			  size_t whylen)
{
	struct client *c;
	struct qos_limits l;
	char qtext[160];
	uid_t uid = cc->peer.uid;
	int rc;

	for (c = cc->cs->list; c; c = c->next)
		if (strcmp(c->name, a->name) == 0 || (c->vep && strcmp(c->vduse, a->name) == 0))
			break;
	if (!c) {
		snprintf(why, whylen, "no client %s (nvme-drv-ctl list names them)", a->name);
		return -ENOENT;
	}
	if (uid != 0 && uid != geteuid() && (c->is_static || uid != c->creator)) {
		snprintf(why, whylen, "uid %u may not change the limits of client %s", (unsigned)uid,
			 c->name);
		return -EPERM;
	}
	l = c->qos;
	for (int k = 0; k < QOS_NKEYS; k++)
		if (a->qos.set & (1u << k))
			l.v[k] = a->qos.v[k];
	rc = c->vep ? vduse_ep_set_qos(c->vep, &l) : vhu_ep_set_qos(c->ep, &l);
	if (rc) {
		snprintf(why, whylen, "cannot set the limits of %s: %s", c->name, strerror(-rc));
		return rc;
	}
	c->qos = l;
	log_info(c->name, "limits changed%s", qos_text(&l, qtext, sizeof(qtext))[0] ? qtext
										 : ": none");
	record_rewrite(c);
	return 0;
}

/* Makes one recorded client again. Returns 0 or -errno (why says). */
static int record_restore(struct clients *cs, const char *name, char *why, size_t whylen)
{
	char path[PATH_MAX], buf[RECORD_MAX];
	const char *words[CTL_MAX_WORDS];
	struct create_args a;
	struct ucred cred = { 0 };
	unsigned nwords = 0, uid, gid;
	struct client *c;
	ssize_t n;
	char *line, *save;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", cs->state_dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -errno;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || (size_t)n == sizeof(buf) - 1) {
		snprintf(why, whylen, "unreadable or too long");
		return -EINVAL;
	}
	buf[n] = '\0';
	line = strtok_r(buf, "\n", &save);
	if (!line || sscanf(line, "creator %u %u", &uid, &gid) != 2) {
		snprintf(why, whylen, "no creator line");
		return -EINVAL;
	}
	while ((line = strtok_r(NULL, "\n", &save)) && nwords < CTL_MAX_WORDS)
		words[nwords++] = line;
	rc = ctl_parse_create(nwords, words, &a, why, whylen);
	if (rc)
		return rc;
	if (a.transport == CTL_TRANSPORT_FD) {
		snprintf(why, whylen, "a client without socket= or vduse=");
		return -EINVAL;
	}
	if (a.transport == CTL_TRANSPORT_SOCKET) {
		if (!cs->sock_dir[0]) {
			snprintf(why, whylen, "a socket= client, and no --svr gives a socket directory");
			return -EACCES;
		}
		rc = ctl_check_socket_in_dir(cs->sock_dir, a.socket, why, whylen);
		if (rc)
			return rc;
	}
	cred.uid = uid;
	cred.gid = gid;
	{
		struct client_spec spec = {
			.device = a.device,
			.ds_max = a.ds_max,
			.readonly = a.read_only,
			.socket = a.transport == CTL_TRANSPORT_SOCKET ? a.socket : NULL,
			.vduse = a.transport == CTL_TRANSPORT_VDUSE ? a.vduse : NULL,
		};

		clients_qos_from_ctl(&a.qos, &spec.qos);
		rc = client_new(cs, &cred, true, &spec, NULL, &c, why, whylen);
	}
	if (rc)
		return rc;
	snprintf(c->record, sizeof(c->record), "%s", name);
	log_info(c->name, "dynamic client made again from %s", path);
	return 0;
}

void clients_restore(struct clients *cs)
{
	char why[CTL_WHY_MAX];
	struct dirent *e;
	DIR *d;

	if (!cs->state_dir || !(d = opendir(cs->state_dir)))
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "client-", 7) != 0)
			continue;
		if (record_restore(cs, e->d_name, why, sizeof(why)) != 0)
			log_warn(NULL, "dynamic client of %s/%s not made again: %s (remove the file to "
				 "forget it)", cs->state_dir, e->d_name, why);
	}
	closedir(d);
}

/* A report, whole: one snapshot of the clients, however many there are
 * and however slowly the peer reads it. Returns it (malloc) with its
 * length, or NULL with -ENOMEM or -E2BIG (past CTL_REPORT_MAX). */
static char *report_make(const struct clients *cs, enum ctl_cmd what, bool json, size_t *len,
			 int *err)
{
	/* Room for a few hundred bytes a client at once, for most. */
	size_t cap = 65536 + (size_t)clients_count(cs) * 512;

	for (;;) {
		char *buf = malloc(cap);
		struct rec_out o;
		int n;

		if (!buf) {
			*err = -ENOMEM;
			return NULL;
		}
		rec_init(&o, buf, cap, json);
		clients_report(cs, what, &o);
		n = rec_finish(&o);
		if (n >= 0) {
			*len = (size_t)n;
			return buf;
		}
		free(buf);
		if (cap >= CTL_REPORT_MAX) {
			*err = -E2BIG;
			return NULL;
		}
		cap = cap * 2 < CTL_REPORT_MAX ? cap * 2 : CTL_REPORT_MAX;
	}
}

/* list, disks, stats: the report as one reply, in parts when it is
 * longer than a message (spec/ctl_proto.h). */
static void ctl_report(struct ctl_conn *cc, enum ctl_cmd what, bool json)
{
	char why[CTL_WHY_MAX];
	size_t len;
	int rc;
	char *rep = report_make(cc->cs, what, json, &len, &rc);

	if (!rep) {
		snprintf(why, sizeof(why), rc == -E2BIG ? "the report is longer than %u MiB"
			 : "no memory for the report (of %u MiB at most)", CTL_REPORT_MAX >> 20);
		ctl_error(cc, rc, why);
		return;
	}
	rc = cc->dropped ? 0 : ctl_queue_report(&cc->out, rep, len);
	free(rep);
	if (rc == -ENOBUFS)
		conn_no_room(cc);
	else if (rc)
		conn_drop(cc, LOG_WARN, "cannot queue a report: %s", strerror(-rc));
	else
		conn_flush(cc);
}

static void ctl_handle(struct ctl_conn *cc, const char *msg, size_t len)
{
	static char out[CTL_MSG_MAX], body[CTL_MSG_MAX - 64];
	const char *words[CTL_MAX_WORDS];
	char why[CTL_WHY_MAX] = "";
	struct ctl_request rq;
	int n, rc, fd = -1;

	n = ctl_unpack_words(msg, len, words, CTL_MAX_WORDS, why, sizeof(why));
	if (n < 0) {
		ctl_error(cc, n, why);
		return;
	}
	rc = ctl_parse_request((unsigned)n, words, &rq, why, sizeof(why));
	if (rc) {
		ctl_error(cc, rc, why);
		return;
	}
	switch (rq.cmd) {
	case CTL_CMD_CREATE: {
		struct client *c;
		struct client_spec spec = {
			.device = rq.create.device,
			.ds_max = rq.create.ds_max,
			.readonly = rq.create.read_only,
			.socket = rq.create.transport == CTL_TRANSPORT_SOCKET ? rq.create.socket : NULL,
			.vduse = rq.create.transport == CTL_TRANSPORT_VDUSE ? rq.create.vduse : NULL,
		};

		clients_qos_from_ctl(&rq.create.qos, &spec.qos);
		if (spec.socket) {
			rc = ctl_check_socket_in_dir(cc->cs->sock_dir, spec.socket, why, sizeof(why));
			if (rc) {
				ctl_error(cc, rc, why);
				return;
			}
		}
		rc = client_new(cc->cs, &cc->peer, false, &spec, &fd, &c, why, sizeof(why));
		if (rc) {
			ctl_error(cc, rc, why);
			return;
		}
		record_write(c, (unsigned)n, words, &cc->peer);
		if (spec.vduse) {
			/* Answered once the kernel's driver has the device, so that
			 * the block device exists when the caller goes on. */
			defer(c, cc, true);
			return;
		}
		if (rq.create.transport == CTL_TRANSPORT_SOCKET) {
			snprintf(body, sizeof(body), "%s\n", rq.create.socket);
			fd = -1;
		} else {
			snprintf(body, sizeof(body), "fd\n");
		}
		ctl_format_ok(out, sizeof(out), body);
		ctl_reply(cc, out, fd);
		if (fd >= 0)
			close(fd);	/* the front end holds the only copy now */
		return;
	}
	case CTL_CMD_DESTROY: {
		struct client *c = find_dynamic(cc->cs, &rq.destroy, &rc, why, sizeof(why));

		if (!c) {
			ctl_error(cc, rc, why);
			return;
		}
		/* Any peer may create and list; a client is destroyed only by
		 * the user who created it, root, or the server's own user. */
		if (cc->peer.uid != 0 && cc->peer.uid != geteuid() && cc->peer.uid != c->creator) {
			snprintf(why, sizeof(why), "client %s was created by uid %u; uid %u may destroy "
				 "only its own clients", c->name, (unsigned)c->creator,
				 (unsigned)cc->peer.uid);
			ctl_error(cc, -EPERM, why);
			return;
		}
		if (c->stopping) {
			snprintf(why, sizeof(why), "%s is being removed", c->name);
			ctl_error(cc, -EBUSY, why);
			return;
		}
		record_remove(c);
		if (c->vep && vduse_ep_stop(c->vep)) {
			/* Answered once the kernel has let go of the device. */
			if (c->waiter_created)
				answer(c, -EBUSY, "destroyed before its device was ready");
			defer(c, cc, false);
			c->stopping = true;
			return;
		}
		client_free(c);
		ctl_ok(cc, "");
		return;
	}
	case CTL_CMD_QOS:
		rc = client_set_qos(cc, &rq.qos, why, sizeof(why));
		if (rc)
			ctl_error(cc, rc, why);
		else
			ctl_ok(cc, "");
		return;
	case CTL_CMD_LIST:
	case CTL_CMD_DISKS:
	case CTL_CMD_STATS:
		ctl_report(cc, rq.cmd, rq.json);
		return;
	}
}

static void on_ctl_conn(void *arg, uint32_t events)
{
	static char buf[CTL_MSG_MAX + 1];
	struct ctl_conn *cc = arg;
	ssize_t n;

	if (events & EPOLLOUT) {
		conn_flush(cc);
		if (cc->dropped)
			return;
	}
	/* Gone altogether while replies still waited. */
	if (cc->eof) {
		if (events & (EPOLLHUP | EPOLLERR))
			ctl_conn_close(cc);
		return;
	}
	/* A hang-up or error shows as a failed recv too. */
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || cc->deferred)
		return;
	n = recv(cc->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		/* The peer asks no more (it may have shut down only its
		 * sending side): what it asked for still goes out, then the
		 * connection ends. */
		if (n == 0 && !(events & (EPOLLHUP | EPOLLERR)) && !sendq_empty(&cc->out)) {
			cc->eof = true;
			conn_watch(cc);
			return;
		}
		ctl_conn_close(cc);
		return;
	}
	cc->idle_since = now_ms();
	if ((size_t)n > CTL_MSG_MAX) {
		ctl_error(cc, -EMSGSIZE, "request larger than 64 KiB");
		return;
	}
	ctl_handle(cc, buf, (size_t)n);
}

/* Whether a new connection cc would be one too many (see CTL_CONNS_MAX). */
static bool too_many(const struct clients *cs, const struct ctl_conn *cc, char *why,
		     size_t whylen)
{
	uid_t uid = cc->peer.uid;
	unsigned mine = 0;

	if (cs->nconns >= CTL_CONNS_MAX) {
		snprintf(why, whylen, "too many control connections (%d open); try again later",
			 CTL_CONNS_MAX);
		return true;
	}
	if (uid == 0 || uid == geteuid())
		return false;
	for (const struct ctl_conn *o = cs->conns; o; o = o->next)
		mine += o->peer.uid == uid;
	if (mine >= CTL_CONNS_PER_UID) {
		snprintf(why, whylen, "uid %u has %d control connections open, the most one user "
			 "may; close one first", (unsigned)uid, CTL_CONNS_PER_UID);
		return true;
	}
	return false;
}

/* Once a second: connections that sent nothing for CTL_IDLE_MS go. */
static void on_idle_timer(void *arg, uint32_t events)
{
	struct clients *cs = arg;
	long long now = now_ms();
	char why[CTL_WHY_MAX];
	struct ctl_conn *cc, *next;
	uint64_t ticks;

	(void)events;
	if (read(cs->idle_fd, &ticks, sizeof(ticks)) < 0)
		return;
	for (cc = cs->conns; cc; cc = next) {
		next = cc->next;
		if (cc->dropped || now - cc->idle_since < CTL_IDLE_MS)
			continue;
		/* Replies waiting for a peer that takes none of them, an
		 * answer owed or not. */
		if (!sendq_empty(&cc->out)) {
			conn_drop(cc, LOG_WARN, "%zu bytes of replies not read in %d s",
				  cc->out.bytes, CTL_IDLE_MS / 1000);
			continue;
		}
		if (cc->deferred)
			continue;
		snprintf(why, sizeof(why), "no request in %d s; connection closed",
			 CTL_IDLE_MS / 1000);
		ctl_error(cc, -ETIMEDOUT, why);
		ctl_conn_close(cc);
	}
}

static void on_ctl_listen(void *arg, uint32_t events)
{
	struct clients *cs = arg;
	char why[CTL_WHY_MAX];
	struct ctl_conn *cc;
	socklen_t len;
	int fd = accept4(cs->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	(void)events;
	if (fd < 0)
		return;
	cc = calloc(1, sizeof(*cc));
	if (!cc) {
		close(fd);
		return;
	}
	cc->cs = cs;
	cc->fd = fd;
	cc->idle_since = now_ms();
	sendq_init(&cc->out, CTL_QUEUED_MAX);
	len = sizeof(cc->peer);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cc->peer, &len) != 0) {
		log_warn("control", "SO_PEERCRED: %s; connection closed", strerror(errno));
		goto refuse;
	}
	if (too_many(cs, cc, why, sizeof(why))) {
		/* The refusal is the one reply on this connection. */
		ctl_error(cc, -EAGAIN, why);
		goto refuse;
	}
	if (evloop_add(cs->loop, fd, EPOLLIN, on_ctl_conn, cc) != 0)
		goto refuse;
	cc->watched = EPOLLIN;
	cc->accepted = true;
	cc->next = cs->conns;
	cs->conns = cc;
	cs->nconns++;
	return;
refuse:
	/* Whatever of the refusal the socket did not take is lost with it. */
	sendq_clear(&cc->out);
	free(cc);
	close(fd);
}

int clients_listen_ctl(struct clients *cs, const char *path, const char *sock_dir, char *why,
		       size_t whylen)
{
	const struct itimerspec every_second = { { 1, 0 }, { 1, 0 } };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path) || strlen(sock_dir) >= sizeof(cs->sock_dir)) {
		snprintf(why, whylen, "--svr %s: %s", path, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	memcpy(cs->sock_dir, sock_dir, strlen(sock_dir) + 1);
	if (stale_socket(path))
		unlink(path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	cs->ctl_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (cs->ctl_fd < 0) {
		snprintf(why, whylen, "--svr %s: %s", path, strerror(errno));
		return -errno;
	}
	/* Mode 0600 from the start, whatever the umask: whoever can connect
	 * may create clients, so the operator widens it (chmod, chgrp), not
	 * the umask. Nothing else creates files while the mask is changed. */
	old_mask = umask(0177);
	rc = bind(cs->ctl_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (rc != 0 || listen(cs->ctl_fd, 16) != 0) {
		rc = -errno;
		snprintf(why, whylen, "--svr %s: %s", path, strerror(errno));
		close(cs->ctl_fd);
		cs->ctl_fd = -1;
		return rc;
	}
	memcpy(cs->ctl_path, path, strlen(path) + 1);
	rc = apply_perm(cs, path, why, whylen);
	if (rc)
		return rc;
	cs->idle_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (cs->idle_fd < 0 || timerfd_settime(cs->idle_fd, 0, &every_second, NULL) != 0) {
		snprintf(why, whylen, "--svr %s: timerfd: %s", path, strerror(errno));
		return -errno;
	}
	rc = evloop_add(cs->loop, cs->idle_fd, EPOLLIN, on_idle_timer, cs);
	if (!rc)
		rc = evloop_add(cs->loop, cs->ctl_fd, EPOLLIN, on_ctl_listen, cs);
	if (rc)
		snprintf(why, whylen, "--svr %s: %s", path, strerror(-rc));
	return rc;
}

void clients_set_workers(struct clients *cs, struct workers *ws)
{
	cs->workers = ws;
}

void clients_set_state_dir(struct clients *cs, const char *dir)
{
	cs->state_dir = dir;
}
