#include "daemon/clients.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/args.h"
#include "transport/vduse.h"
#include "transport/vhost_user.h"
#include "util/log.h"

#define CLIENT_QUEUES 4

struct client {
	struct clients *cs;
	char name[CTL_SOCKET_PATH_SIZE + 16];
	char device[CTL_DEVICE_MAX + 1];
	char vduse[CTL_VDUSE_NAME_MAX + 1];	/* "" unless a VDUSE client */
	bool is_static;
	bool by_fd;
	bool readonly;
	bool stopping;		/* its VDUSE device is on the way off the bus */
	unsigned ds_max;
	struct blk_target tgt;
	struct vhu_ep *ep;	/* a vhost-user client, or */
	struct vduse_ep *vep;	/* a VDUSE client */
	/* A control connection owed the answer to this client's create
	 * (until the device is on the bus) or destroy (until it is off). */
	struct ctl_conn *waiter;
	bool waiter_created;
	struct client *next;
};

struct ctl_conn {
	struct clients *cs;
	int fd;
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
	struct ctl_conn *conns;
	const char *state_dir;	/* NULL: nothing survives us */
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

static void ctl_reply(struct ctl_conn *cc, const char *text, int fd);
static void ctl_error(struct ctl_conn *cc, int err, const char *msg);
static void ctl_ok(struct ctl_conn *cc, const char *body);
static void on_ctl_conn(void *arg, uint32_t events);

/* A create or destroy that waits for the kernel: the connection is not
 * read meanwhile, so that its replies stay in the order of its requests
 * (spec/ctl_proto.h). */
static void defer(struct client *c, struct ctl_conn *cc, bool created)
{
	c->waiter = cc;
	c->waiter_created = created;
	evloop_del(cc->cs->loop, cc->fd);
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
	if (evloop_add(cc->cs->loop, cc->fd, EPOLLIN, on_ctl_conn, cc) != 0)
		log_warn("control", "cannot watch a connection again; it stays idle");
}

static void client_free(struct client *c)
{
	struct client **pp;

	for (pp = &c->cs->list; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
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
			break;
		}
	evloop_del(cc->cs->loop, cc->fd);
	close(cc->fd);
	free(cc);
}

static void ctl_close(struct clients *cs)
{
	while (cs->conns)
		ctl_conn_close(cs->conns);
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

void clients_shutdown(struct clients *cs, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	if (!cs)
		return;
	/* No new clients, no more requests. */
	ctl_close(cs);
	for (struct client *c = cs->list; c; c = c->next)
		if (c->vep && !c->stopping && vduse_ep_stop(c->vep))
			c->stopping = true;
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

static void ended(void *ctx, struct vhu_ep *ep)
{
	struct client *c = ctx;

	(void)ep;
	client_free(c);
}

static const struct vhu_ep_ops ep_ops = { .ended = ended };

static void vduse_attached(void *ctx, struct vduse_ep *ep)
{
	struct client *c = ctx;

	if (vduse_ep_connected(ep))
		log_info(c->name, "block device ready");
	if (c->waiter_created) {
		answer(c, 0, NULL);
		c->waiter_created = false;
	}
}

static void vduse_ended(void *ctx, struct vduse_ep *ep, int err, const char *why)
{
	struct client *c = ctx;
	char msg[CTL_WHY_MAX];

	(void)ep;
	if (err) {
		snprintf(msg, sizeof(msg), "cannot %s %s %s the vdpa bus: %s",
			 c->stopping ? "take" : "put", c->vduse, c->stopping ? "off" : "on", why);
		log_err(c->name, "%s", msg);
		answer(c, err, msg);	/* the create or destroy waiting for it */
		c->waiter_created = false;
	}
	client_free(c);
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

static int client_new(struct clients *cs, bool is_static, const struct client_spec *spec,
		      int *fd_out, struct client **out, char *why, size_t whylen)
{
	const char *device = spec->device, *socket_path = spec->socket;
	struct vblk_conf conf;
	struct client *c;
	int sv[2] = { -1, -1 };
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cs = cs;
	snprintf(c->device, sizeof(c->device), "%s", device);
	rc = blk_lookup(&cs->host->reg, device, &c->tgt);
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
			snprintf(why, whylen, "%s (%s) overlaps %s, claimed by client %s", device,
				 c->tgt.name, o->tgt.name, o->name);
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
		snprintf(c->name, sizeof(c->name), "%s", socket_path);
		if (stale_socket(socket_path)) {
			log_info(socket_path, "removing a stale socket");
			unlink(socket_path);
		}
		if (access(socket_path, F_OK) == 0) {
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
	c->is_static = is_static;
	c->readonly = spec->readonly;
	c->ds_max = spec->ds_max;
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
	if (spec->vduse) {
		rc = vduse_ep_create(cs->loop, spec->vduse, &conf, cs->state_dir, &vduse_ops, c, &c->vep,
				     why, whylen);
		if (rc)
			goto fail;
	} else {
		if (socket_path) {
			rc = vhu_ep_listen(cs->loop, socket_path, &conf, &ep_ops, c, &c->ep);
		} else {
			rc = vhu_ep_adopt(cs->loop, sv[0], &conf, &ep_ops, c, &c->ep);
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
	log_info(c->name, "client of %s (%s)%s, ds-max %u", device, c->tgt.name,
		 spec->readonly || c->tgt.readonly ? ", read-only" : "", spec->ds_max);
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

	return client_new(cs, is_static, spec, fd_out, &c, why, whylen);
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

void clients_list(const struct clients *cs, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (const struct client *c = cs->list; c && n < cap; c = c->next) {
		const struct vblk_stats *s = c->vep ? vduse_ep_stats(c->vep) : vhu_ep_stats(c->ep);
		bool connected = c->vep ? vduse_ep_connected(c->vep) : vhu_ep_connected(c->ep);
		int k = snprintf(buf + n, cap - n,
				 "client %s device=%s target=%s %s read-only=%s ds-max=%u connected=%s "
				 "reads=%llu writes=%llu flushes=%llu discards=%llu write-zeroes=%llu "
				 "errors=%llu bytes-read=%llu bytes-written=%llu\n",
				 c->name, c->device, c->tgt.name, c->is_static ? "static" : "dynamic",
				 c->readonly || c->tgt.readonly ? "yes" : "no", c->ds_max,
				 connected ? "yes" : "no",
				 (unsigned long long)s->reads, (unsigned long long)s->writes,
				 (unsigned long long)s->flushes, (unsigned long long)s->discards,
				 (unsigned long long)s->write_zeroes, (unsigned long long)s->errors,
				 (unsigned long long)s->bytes_read, (unsigned long long)s->bytes_written);
		if (k < 0)
			break;
		n += (size_t)k;
	}
}

/* ---- the control socket ---- */

static void ctl_reply(struct ctl_conn *cc, const char *text, int fd)
{
	struct iovec iov = { (void *)text, strlen(text) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(cc->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_warn("control", "cannot send a reply: %s", strerror(errno));
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
		const struct client_spec spec = {
			.device = rq.create.device,
			.ds_max = rq.create.ds_max,
			.readonly = rq.create.read_only,
			.socket = rq.create.transport == CTL_TRANSPORT_SOCKET ? rq.create.socket : NULL,
			.vduse = rq.create.transport == CTL_TRANSPORT_VDUSE ? rq.create.vduse : NULL,
		};

		rc = client_new(cc->cs, false, &spec, &fd, &c, why, sizeof(why));
		if (rc) {
			ctl_error(cc, rc, why);
			return;
		}
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
		if (c->stopping) {
			snprintf(why, sizeof(why), "%s is being removed", c->name);
			ctl_error(cc, -EBUSY, why);
			return;
		}
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
	case CTL_CMD_LIST:
		clients_list(cc->cs, body, sizeof(body));
		ctl_format_ok(out, sizeof(out), body);
		ctl_reply(cc, out, -1);
		return;
	}
}

static void on_ctl_conn(void *arg, uint32_t events)
{
	static char buf[CTL_MSG_MAX + 1];
	struct ctl_conn *cc = arg;
	ssize_t n = recv(cc->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

	(void)events;
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		ctl_conn_close(cc);
		return;
	}
	if ((size_t)n > CTL_MSG_MAX) {
		ctl_error(cc, -EMSGSIZE, "request larger than 64 KiB");
		return;
	}
	ctl_handle(cc, buf, (size_t)n);
}

static void on_ctl_listen(void *arg, uint32_t events)
{
	struct clients *cs = arg;
	struct ctl_conn *cc;
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
	if (evloop_add(cs->loop, fd, EPOLLIN, on_ctl_conn, cc) != 0) {
		free(cc);
		close(fd);
		return;
	}
	cc->next = cs->conns;
	cs->conns = cc;
}

int clients_listen_ctl(struct clients *cs, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (stale_socket(path))
		unlink(path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	cs->ctl_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (cs->ctl_fd < 0)
		return -errno;
	if (bind(cs->ctl_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(cs->ctl_fd, 16) != 0) {
		rc = -errno;
		close(cs->ctl_fd);
		cs->ctl_fd = -1;
		return rc;
	}
	memcpy(cs->ctl_path, path, strlen(path) + 1);
	rc = evloop_add(cs->loop, cs->ctl_fd, EPOLLIN, on_ctl_listen, cs);
	return rc;
}

void clients_set_state_dir(struct clients *cs, const char *dir)
{
	cs->state_dir = dir;
}
