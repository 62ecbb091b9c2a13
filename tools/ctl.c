/* nvme-drv-ctl: calls create(), destroy and list on the NVMe server's
 * control socket (spec/ctl_proto.h), and for a create that hands back a
 * descriptor, runs the command that holds the new client's connection. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nvd_version.h"
#include "ctl/args.h"
#include "ctl/reply.h"
#include "util/parse.h"
#include "util/rec.h"

#define PROG "nvme-drv-ctl"
#define DEFAULT_TIMEOUT_S 10
#define MAX_TIMEOUT_S 86400
/* Where COMMAND finds the client's connection (and NVD_FD says so). */
#define CLIENT_FD 3
#define CLIENT_FD_STR "3"
/* The server sends one descriptor; room for a few more lets us see (and
 * close) extras rather than have the kernel cut them off silently. */
#define MAX_FDS 4

/* How COMMAND's status is passed on when it could not be started (as
 * env(1) does). */
#define EXIT_NOT_RUN 127
/* The longest reply taken (a report of its parts, spec/ctl_proto.h): far
 * more than the server makes (CTL_REPORT_MAX in daemon/clients.c). */
#define REPLY_MAX (1024u << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " --svr PATH [--timeout S] create 0 device=DEV [ds-max=N] [read-only]\n"
		"                    [socket=PATH | vduse=NAME] [LIMIT...] [-- COMMAND [ARGS...]]\n"
		"       " PROG " --svr PATH [--timeout S] destroy PATH-or-NAME\n"
		"       " PROG " --svr PATH [--timeout S] qos CLIENT LIMIT...\n"
		"       " PROG " --svr PATH [--timeout S] [--json] list | disks | stats\n"
		"Calls the NVMe server on its control socket (nvme-drv --svr PATH): the\n"
		"L4Re server's create(0, \"ds-max=4\", \"device=1234:n1\") is\n"
		"  " PROG " --svr PATH create 0 ds-max=4 device=1234:n1 ...\n"
		"\n"
		"create 0 ...     a new Virtio block client (object type 0, the only one)\n"
		"  device=DEV     what it sees: SN:nNSID (a namespace), SN:nNSID:N, a\n"
		"                 partition UUID, partuuid:UUID or partlabel:NAME (required)\n"
		"  ds-max=N       memory regions the client may register (1-256, default 2)\n"
		"  read-only      the client may only read (also: readonly)\n"
		"  socket=PATH    the server listens for the client's vhost-user connection\n"
		"                 on PATH, which must be DIR/NAME with DIR the server's socket\n"
		"                 directory (nvme-drv --socket-dir, by default that of --svr)\n"
		"                 and nothing there yet; the client lasts until destroy PATH\n"
		"  vduse=NAME     the server makes the VDUSE block device NAME (1-31 of\n"
		"                 A-Z a-z 0-9 . _ -); it lasts until destroy NAME\n"
		"  neither        the server hands over the client's connected vhost-user\n"
		"                 socket, and " PROG " runs COMMAND with it as fd 3 (and\n"
		"                 NVD_FD=3 in its environment), waits for COMMAND, then\n"
		"                 closes the descriptor, which ends the client. e.g.\n"
		"                   " PROG " --svr /run/nvd.ctl create 0 device=SN1:n1 \\\n"
		"                       -- nvme-drv-io --fd 3 --rw verify\n"
		"  LIMIT          iops=N, riops=N, wiops=N: requests per second (all, reads,\n"
		"                 writes; writes include flushes, discards, write-zeroes);\n"
		"                 bps=N, rbps=N, wbps=N: bytes per second (K, M, G, T\n"
		"                 suffixes, binary); 0 or absent: no limit\n"
		"destroy X        ends the client made with socket=X (X starts with '/')\n"
		"                 or vduse=X; only its creator's user or root may\n"
		"qos CLIENT LIMIT...\n"
		"                 changes the limits given of CLIENT (its name in list: a\n"
		"                 socket path, vduse:NAME or NAME, fd-client-N) at once; the\n"
		"                 others stay (iops=0 lifts one). A dynamic client's creator,\n"
		"                 root or the server's user may; a static client's, the last two\n"
		"list             the server's clients: device, target, transport, limits,\n"
		"                 counters\n"
		"disks            the controllers, namespaces and partitions the server\n"
		"                 drives (as nvme-drv --list), each with held-by=CLIENT\n"
		"                 when a client holds it\n"
		"stats            I/O counters per client and per controller (a controller's\n"
		"                 include its ended clients')\n"
		"\n"
		"Options:\n"
		"  --svr PATH     the server's control socket (required)\n"
		"  --json         print one JSON document (schemas: nvme-drv-ctl(8)): the\n"
		"                 report, {\"socket\": PATH} or {\"vduse\": NAME} for a\n"
		"                 create, {} for a destroy; text values are escaped either way\n"
		"  --timeout S    give up on a server that has not answered in S seconds\n"
		"                 (default %d; 0 waits for ever)\n"
		"  -h, --help     this text\n"
		"  -V, --version  print the version\n"
		"\n"
		"On success the server's reply goes to stdout and the exit status is 0. On\n"
		"an error \"" PROG ": error: NAME: message\" goes to stderr and the status\n"
		"is 1: NAME is the server's (ENODEV no such device, EBUSY in use, EINVAL, ...),\n"
		"or ETIMEDOUT for no answer, ENOENT or ECONNREFUSED for no server,\n"
		"EPROTOTYPE for a socket that is not a control socket, EPROTO for a reply\n"
		"that breaks the protocol. A usage error exits 1 too. With -- COMMAND the\n"
		"status is COMMAND's (128+N if signal N ended it, 127 if it could not be\n"
		"started).\n",
		DEFAULT_TIMEOUT_S);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	return 1;
}

/* err: a negative errno. Returns the exit status for it. */
static int fail(int err, const char *msg)
{
	fprintf(stderr, PROG ": error: %s: %s\n", ctl_errno_name(err), msg);
	return 1;
}

struct reply {
	struct ctl_reply r;	/* the status and the whole body */
	int fd;		/* the descriptor that came with it, or -1 */
};

/* Returns a connected socket, or a negative errno with `why`. Both
 * timeouts also bound connect(), which waits while the server's backlog
 * is full. */
static int connect_svr(const char *path, unsigned timeout_s, char *why, size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	int s, err;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0) {
		err = -errno;
		snprintf(why, whylen, "socket: %s", strerror(-err));
		return err;
	}
	if (setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		err = errno == EAGAIN ? -ETIMEDOUT : -errno;
		/* The control socket is SOCK_SEQPACKET; a client's vhost-user
		 * socket, the likeliest mistake, is a stream socket. */
		if (err == -EPROTOTYPE)
			snprintf(why, whylen, "%s is not nvme-drv's control socket (a stream socket: a "
				 "client's vhost-user socket?); give the path of nvme-drv --svr", path);
		/* A socket file that no socket of this kernel is bound to: a
		 * server that is gone, or one on a network or 9p file system,
		 * bound by another machine (or a VM's host), which never
		 * connects; the kernel answers ECONNREFUSED or ENXIO. */
		else if (err == -ECONNREFUSED || err == -ENXIO)
			snprintf(why, whylen, "cannot connect to %s: no server of this machine is bound "
				 "there (nvme-drv stopped, or a socket file on a shared file system such "
				 "as 9p or NFS, which never connects: use a local path, e.g. /run)",
				 path);
		else
			snprintf(why, whylen, "cannot connect to %s: %s", path, strerror(-err));
		close(s);
		return err;
	}
	return s;
}

static void close_fds(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* Receives one message of a reply and at most one descriptor into r.
 * Returns 0 or a negative errno with `why`. */
static int recv_part(int s, unsigned timeout_s, struct reply *r, char *why, size_t whylen)
{
	static char buf[CTL_MSG_MAX];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * MAX_FDS)];
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	int fds[MAX_FDS];
	unsigned nfds = 0;
	ssize_t n;
	int rc;

	do {
		n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN) {
		snprintf(why, whylen, "no reply in %u s", timeout_s);
		return -ETIMEDOUT;
	}
	if (n < 0) {
		snprintf(why, whylen, "receiving the reply: %s", strerror(errno));
		return -errno;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		unsigned k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned i = 0; i < k && nfds < MAX_FDS; i++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (n == 0) {
		close_fds(fds, nfds);
		snprintf(why, whylen, "the server closed the connection without a reply");
		return -ECONNRESET;
	}
	/* A descriptor comes only with a reply of one message. */
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || nfds > 1 || (nfds && r->r.parts)) {
		close_fds(fds, nfds);
		snprintf(why, whylen, "%s", mh.msg_flags & MSG_TRUNC ?
			 "the reply is longer than the protocol allows" :
			 "the reply carries more than one descriptor");
		return -EPROTO;
	}
	rc = ctl_reply_add(&r->r, buf, (size_t)n, REPLY_MAX);
	if (rc) {
		close_fds(fds, nfds);
		snprintf(why, whylen, "%s", rc == -EPROTO ? "malformed reply" :
			 rc == -EMSGSIZE ? "the reply is longer than " PROG " takes" : strerror(-rc));
		return rc == -ENOMEM ? rc : -EPROTO;
	}
	if (nfds && !r->r.done) {
		close_fds(fds, nfds);
		snprintf(why, whylen, "the reply carries a descriptor in a part");
		return -EPROTO;
	}
	if (nfds)
		r->fd = fds[0];
	return 0;
}

/* Receives a whole reply: one message, or the parts of a long report
 * (spec/ctl_proto.h), each within the timeout. Returns 0 or a negative
 * errno with `why`. */
static int recv_reply(int s, unsigned timeout_s, struct reply *r, char *why, size_t whylen)
{
	int rc;

	r->fd = -1;
	do
		rc = recv_part(s, timeout_s, r, why, whylen);
	while (!rc && !r->r.done);
	return rc;
}

/* One call: connect, send the words, receive the reply, hang up. */
static int call(const char *svr, unsigned timeout_s, char **words, unsigned n,
		struct reply *r, char *why, size_t whylen)
{
	static char msg[CTL_MSG_MAX];
	int len = ctl_pack_words((const char *const *)words, n, msg, sizeof(msg));
	int s, rc = 0;
	ssize_t sent;

	if (len < 0) {
		snprintf(why, whylen, "the request is longer than %d bytes", CTL_MSG_MAX);
		return len;
	}
	s = connect_svr(svr, timeout_s, why, whylen);
	if (s < 0)
		return s;
	do {
		sent = send(s, msg, (size_t)len, MSG_NOSIGNAL);
	} while (sent < 0 && errno == EINTR);
	if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) {
		/* A server that refuses the connection (too many) answers
		 * before our request and hangs up: its reply is waiting. */
		rc = -errno;
		if (recv_reply(s, timeout_s, r, why, whylen) == 0)
			rc = 0;
		else
			snprintf(why, whylen, "sending to %s: %s", svr, strerror(-rc));
	} else if (sent < 0) {
		rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
		snprintf(why, whylen, "sending to %s: %s", svr, strerror(-rc));
	} else {
		rc = recv_reply(s, timeout_s, r, why, whylen);
	}
	close(s);
	return rc;
}

/* Runs cmd with *fd as CLIENT_FD and waits for it. Returns 0 with *code
 * its exit status (128+N for signal N), or a negative errno with `why`
 * when it could not be started. *fd may be moved. */
static int run_command(char **cmd, int *fd, int *code, char *why, size_t whylen)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t dfl;
	pid_t pid;
	int rc, st = 0;

	/* dup2(3, 3) keeps FD_CLOEXEC (older C libraries do just that in
	 * posix_spawn), so the child would lose it: move it out of the way. */
	if (*fd == CLIENT_FD) {
		int moved = fcntl(*fd, F_DUPFD_CLOEXEC, CLIENT_FD + 1);

		if (moved < 0) {
			snprintf(why, whylen, "fcntl: %s", strerror(errno));
			return -errno;
		}
		close(*fd);
		*fd = moved;
	}
	if (setenv("NVD_FD", CLIENT_FD_STR, 1)) {
		snprintf(why, whylen, "setenv: %s", strerror(errno));
		return -errno;
	}
	/* As system() does: ^C and ^\ reach COMMAND, which decides; we stay to
	 * pass its status on and to close the descriptor. */
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	sigemptyset(&dfl);
	if (old_int.sa_handler != SIG_IGN)
		sigaddset(&dfl, SIGINT);
	if (old_quit.sa_handler != SIG_IGN)
		sigaddset(&dfl, SIGQUIT);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	rc = posix_spawn_file_actions_adddup2(&fa, *fd, CLIENT_FD);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&attr, &dfl);
	if (!rc)
		rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawnp(&pid, cmd[0], &fa, &attr, cmd, environ);
	if (!rc)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (rc) {
		snprintf(why, whylen, "cannot run %s: %s", cmd[0], strerror(rc));
		return -rc;
	}
	*code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

/* --json for create (socket= or vduse=) and destroy, whose replies are a
 * line of text: what was made, or nothing. */
static int print_json_result(const struct ctl_request *req, const char *body, size_t bodylen)
{
	char val[CTL_SOCKET_PATH_SIZE + CTL_VDUSE_NAME_MAX], out[4 * sizeof(val) + 64];
	struct rec_out o;
	int n;

	if (bodylen && body[bodylen - 1] == '\n')
		bodylen--;
	if (bodylen >= sizeof(val) || memchr(body, '\n', bodylen))
		return fail(-EPROTO, "the reply to a create is not one name");
	memcpy(val, body, bodylen);
	val[bodylen] = '\0';
	rec_init(&o, out, sizeof(out), true);
	if (req->cmd == CTL_CMD_CREATE)
		rec_str(&o, req->create.transport == CTL_TRANSPORT_VDUSE ? "vduse" : "socket", val);
	n = rec_finish(&o);
	if (n < 0)
		return fail(-EPROTO, "the reply to a create is too long");
	fwrite(out, 1, (size_t)n, stdout);
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "svr", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct reply r = { .fd = -1 };
	struct ctl_request req;
	const char *svr = NULL, *body;
	char why[CTL_WHY_MAX + 128];
	char **words, **cmd = NULL;
	unsigned nwords = 0;
	uint64_t timeout_s = DEFAULT_TIMEOUT_S;
	size_t bodylen;
	bool want_fd, json = false;
	int opt, rc, err, code = 0;

	opterr = 0;
	/* '+': stop at the first word, so create's words are never options. */
	while ((opt = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			svr = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 0, MAX_TIMEOUT_S, &timeout_s))
				return usage_error("--timeout takes seconds, 0-%d", MAX_TIMEOUT_S);
			break;
		case 'j':
			json = true;
			break;
		case 'V':
			printf(PROG " " NVD_VERSION "\n");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	words = argv + optind;
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			cmd = argv + i + 1;
			break;
		}
		nwords++;
	}

	if (!svr)
		return usage_error("--svr PATH is required");
	if (!*svr || strlen(svr) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return usage_error("--svr PATH must have 1-%zu bytes",
				   sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (nwords == 0)
		return usage_error("no command: give create, destroy or list");
	if (nwords > CTL_MAX_WORDS)
		return usage_error("more than %d words", CTL_MAX_WORDS);
	/* The server checks again; checking here makes a typo a usage error
	 * and tells us whether a descriptor will come back. */
	if (ctl_parse_request(nwords, (const char *const *)words, &req, why, sizeof(why)))
		return usage_error("%s", why);
	want_fd = req.cmd == CTL_CMD_CREATE && req.create.transport == CTL_TRANSPORT_FD;
	if (cmd && !*cmd)
		return usage_error("'--' needs a COMMAND after it");
	if (want_fd && !cmd)
		return usage_error("nothing would hold the client's connection; "
				   "give socket=PATH or -- COMMAND");
	if (!want_fd && cmd)
		return usage_error("-- COMMAND goes only with a create without socket= or vduse=");
	if (want_fd && json)
		return usage_error("--json: a create with -- COMMAND prints nothing of its own");
	/* A report comes as JSON from the server itself: one word more. */
	if (json && (req.cmd == CTL_CMD_LIST || req.cmd == CTL_CMD_DISKS ||
		     req.cmd == CTL_CMD_STATS)) {
		if (nwords == 1) {
			static char *report[2];

			report[0] = words[0];
			report[1] = "json";
			words = report;
			nwords = 2;
		}
	}

	rc = call(svr, (unsigned)timeout_s, words, nwords, &r, why, sizeof(why));
	if (rc) {
		if (r.fd >= 0)
			close(r.fd);
		return fail(rc, why);
	}
	err = r.r.err;
	body = r.r.body ? r.r.body : "";
	bodylen = r.r.len;
	if (err) {
		if (r.fd >= 0)
			close(r.fd);
		if (bodylen && body[bodylen - 1] == '\n')
			bodylen--;
		fprintf(stderr, PROG ": error: %s: %.*s\n", ctl_errno_name(err), (int)bodylen, body);
		return 1;
	}
	if (!want_fd) {
		if (r.fd >= 0) {
			close(r.fd);
			return fail(-EPROTO, "the reply carries a descriptor nobody asked for");
		}
		if (json && (req.cmd == CTL_CMD_CREATE || req.cmd == CTL_CMD_DESTROY ||
			     req.cmd == CTL_CMD_QOS))
			return print_json_result(&req, body, bodylen);
		fwrite(body, 1, bodylen, stdout);
		return fflush(stdout) ? 1 : 0;
	}
	if (r.fd < 0 || bodylen != 3 || memcmp(body, "fd\n", 3) != 0) {
		if (r.fd >= 0)
			close(r.fd);
		return fail(-EPROTO, "create answered without a descriptor");
	}
	fflush(stdout);
	rc = run_command(cmd, &r.fd, &code, why, sizeof(why));
	/* The last copy of the connection: closing it ends the client. */
	close(r.fd);
	if (rc) {
		fail(rc, why);
		return EXIT_NOT_RUN;
	}
	return code;
}
