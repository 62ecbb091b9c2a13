#include "daemon/clients.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/args.h"
#include "transport/vhost_user.h"
#include "util/log.h"

#define CLIENT_QUEUES 4

struct client {
	struct clients *cs;
	char name[CTL_SOCKET_PATH_SIZE + 16];
	char device[CTL_DEVICE_MAX + 1];
	bool is_static;
	bool by_fd;
	bool readonly;
	unsigned ds_max;
	struct blk_target tgt;
	struct vhu_ep *ep;
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

static void client_free(struct client *c)
{
	struct client **pp;

	for (pp = &c->cs->list; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	vhu_ep_destroy(c->ep);
	log_info(c->name, "client ended; %s released", c->tgt.name);
	free(c);
}

static void ctl_conn_close(struct ctl_conn *cc)
{
	struct ctl_conn **pp;

	for (pp = &cc->cs->conns; *pp; pp = &(*pp)->next)
		if (*pp == cc) {
			*pp = cc->next;
			break;
		}
	evloop_del(cc->cs->loop, cc->fd);
	close(cc->fd);
	free(cc);
}

void clients_free(struct clients *cs)
{
	if (!cs)
		return;
	while (cs->list)
		client_free(cs->list);
	while (cs->conns)
		ctl_conn_close(cs->conns);
	if (cs->ctl_fd >= 0) {
		evloop_del(cs->loop, cs->ctl_fd);
		close(cs->ctl_fd);
		unlink(cs->ctl_path);
	}
	free(cs->trusted);
	free(cs);
}

static void ended(void *ctx, struct vhu_ep *ep)
{
	struct client *c = ctx;

	(void)ep;
	client_free(c);
}

static const struct vhu_ep_ops ep_ops = { .ended = ended };

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

int clients_create(struct clients *cs, bool is_static, const char *device, unsigned ds_max,
		   bool readonly, const char *socket_path, int *fd_out, char *why, size_t whylen)
{
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
	if (socket_path) {
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
	c->readonly = readonly;
	c->ds_max = ds_max;
	memset(&conf, 0, sizeof(conf));
	conf.name = c->name;
	conf.target = c->tgt;
	conf.readonly = readonly;
	conf.ds_max = ds_max;
	conf.trusted = cs->trusted;
	conf.ntrusted = cs->ntrusted;
	conf.num_queues = CLIENT_QUEUES;
	conf.qp_first = cs->next_qp++;
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
	c->next = cs->list;
	cs->list = c;
	if (fd_out)
		*fd_out = sv[1];
	log_info(c->name, "client of %s (%s)%s, ds-max %u", device, c->tgt.name,
		 readonly || c->tgt.readonly ? ", read-only" : "", ds_max);
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	free(c);
	return rc;
}

int clients_destroy(struct clients *cs, const char *path, char *why, size_t whylen)
{
	for (struct client *c = cs->list; c; c = c->next) {
		if (c->by_fd || strcmp(c->name, path) != 0)
			continue;
		if (c->is_static) {
			snprintf(why, whylen, "%s is a static client", path);
			return -EPERM;
		}
		client_free(c);
		return 0;
	}
	snprintf(why, whylen, "no dynamic client at %s", path);
	return -ENOENT;
}

void clients_list(const struct clients *cs, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (const struct client *c = cs->list; c && n < cap; c = c->next) {
		const struct vblk_stats *s = vhu_ep_stats(c->ep);
		int k = snprintf(buf + n, cap - n,
				 "client %s device=%s target=%s %s read-only=%s ds-max=%u connected=%s "
				 "reads=%llu writes=%llu flushes=%llu discards=%llu write-zeroes=%llu "
				 "errors=%llu bytes-read=%llu bytes-written=%llu\n",
				 c->name, c->device, c->tgt.name, c->is_static ? "static" : "dynamic",
				 c->readonly || c->tgt.readonly ? "yes" : "no", c->ds_max,
				 vhu_ep_connected(c->ep) ? "yes" : "no",
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
	case CTL_CMD_CREATE:
		if (rq.create.transport == CTL_TRANSPORT_VDUSE) {
			ctl_error(cc, -EOPNOTSUPP, "VDUSE clients are not supported yet");
			return;
		}
		rc = clients_create(cc->cs, false, rq.create.device, rq.create.ds_max, rq.create.read_only,
				    rq.create.transport == CTL_TRANSPORT_SOCKET ? rq.create.socket : NULL,
				    &fd, why, sizeof(why));
		if (rc) {
			ctl_error(cc, rc, why);
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
	case CTL_CMD_DESTROY:
		rc = clients_destroy(cc->cs, rq.destroy.name, why, sizeof(why));
		if (rc) {
			ctl_error(cc, rc, why);
			return;
		}
		ctl_format_ok(out, sizeof(out), "");
		ctl_reply(cc, out, -1);
		return;
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
