/* nvme-drv: the NVMe server. Brings up the NVMe controllers bound to
 * vfio-pci and serves their namespaces and partitions. */
#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "nvd_version.h"
#include "blk/devname.h"
#include "blk/host.h"
#include "ctl/args.h"
#include "daemon/clients.h"
#include "daemon/inventory.h"
#include "daemon/workers.h"
#include "transport/vduse.h"
#include "util/cpuload.h"
#include "util/evloop.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/parse.h"

#define MAX_STATIC 64
#define MAX_TRUSTED 64
/* How long a stopping server waits for the kernel to let go of its VDUSE
 * devices: VDUSE's own bound on one answer (VDUSE_MSG_DEFAULT_TIMEOUT). */
#define VDUSE_STOP_TIMEOUT_MS 30000
#define VDUSE_PREFIX "vduse:"
#define STATE_DIR_DEFAULT "/run/nvme-drv"
#define STATE_DIR_MAX 200

/* One --client context: the options after it, until the next --client. */
struct static_client {
	const char *arg;	/* as given: SOCKET or vduse:NAME */
	const char *socket;
	const char *vduse;
	const char *device;
	unsigned ds_max;
	bool readonly;
	struct ctl_qos qos;
};

#define STR_(x) #x
#define STR(x) STR_(x)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: nvme-drv [OPTIONS]\n"
		"The NVMe server: drives NVMe controllers bound to vfio-pci and serves\n"
		"their namespaces (SERIAL:nNSID) and partitions (by UUID).\n"
		"\n"
		"  --list             print every controller, namespace and partition, then exit\n"
		"  --json             --list prints one JSON document (schema: nvme-drv(8))\n"
		"\n"
		"Static clients (as the L4Re server's; repeat the group per client):\n"
		"  --client SOCKET    start a client: a vhost-user socket nvme-drv listens on\n"
		"                     (removed at exit); the options below belong to it\n"
		"  --client vduse:NAME\n"
		"                     start a client that is this machine's kernel: the VDUSE\n"
		"                     block device NAME (1-31 of A-Z a-z 0-9 . _ -), a /dev/vdX\n"
		"                     once virtio_vdpa and virtio_blk have it (modprobe vduse\n"
		"                     virtio_vdpa virtio_blk); removed at exit\n"
		"  --device DEV       what it gets: SERIAL:nNSID, SERIAL:nNSID:N, a partition\n"
		"                     UUID, partuuid:UUID or partlabel:NAME\n"
		"  --ds-max N         memory regions (dataspaces) it may register, 1-256 (default 2);\n"
		"                     a VDUSE device uses one for its bounce buffer and one per\n"
		"                     queue, so it offers N-1 queues (at most 4) and needs N >= 2\n"
		"  --readonly, --read-only\n"
		"                     read-only access (create()'s read-only)\n"
		"  --qos LIMIT[,LIMIT...]\n"
		"                     I/O limits per second (create()'s words): iops=N, riops=N,\n"
		"                     wiops=N (requests: all, reads, writes), bps=N, rbps=N,\n"
		"                     wbps=N (bytes; K, M, G, T suffixes); 0: none. Writes\n"
		"                     include flushes, discards and write-zeroes. nvme-drv-ctl\n"
		"                     qos changes them at run time\n"
		"Dynamic clients:\n"
		"  --svr PATH         control socket for create()/destroy/list (see nvme-drv-ctl),\n"
		"                     made with mode 0600: whoever may connect (chmod, chgrp it\n"
		"                     to share it) may create and list clients, and destroy\n"
		"                     those it created; root may destroy any dynamic client\n"
		"  --socket-dir DIR   the only directory a create's socket=PATH may name\n"
		"                     (PATH must be DIR/NAME; default: the directory of --svr);\n"
		"                     it must be writable by its owner only, or sticky (/tmp)\n"
		"  --socket-owner USER[:GROUP]\n"
		"                     owner and group (or :GROUP alone) of every socket the\n"
		"                     command line makes: the static clients' and --svr's (a\n"
		"                     dynamic client's socket belongs to its creator)\n"
		"  --socket-mode MODE their mode, octal (e.g. 0660: owner and group may connect;\n"
		"                     default: the umask's, and 0600 for --svr). Whoever may\n"
		"                     connect to --svr may create clients of any disk\n"
		"  --state-dir DIR    where what outlives a crash is kept (default\n"
		"                     " STATE_DIR_DEFAULT "; a tmpfs): VDUSE inflight logs, so\n"
		"                     that a restarted server takes its VDUSE devices over\n"
		"  --poll-max-us N    poll completion and virtqueues for up to N microseconds\n"
		"                     before sleeping, adapting the window to the load (0-10000;\n"
		"                     0: never poll; default " STR(EVLOOP_POLL_MAX_US_DEFAULT) "); idle, the\n"
		"                     server does not poll at all\n"
		"  --poll-idle-us N   the same cap while no command is at a controller, when the\n"
		"                     loop waits for clients (0-10000, at most --poll-max-us;\n"
		"                     default " STR(EVLOOP_POLL_IDLE_US_DEFAULT) ")\n"
		"  --threads N        data threads (1-" STR(WORKERS_MAX) ", default 1): each owns its share of\n"
		"                     every controller's I/O queues and serves the clients given\n"
		"                     to it; needs MSI-X with a vector per queue\n"
		"  --cpus LIST        a data thread on each of these CPUs (e.g. 2,3 or 2-5), each\n"
		"                     pinned to its own; instead of --threads\n"
		"  --coalesce-us N    while polling, hold a queue's completion notification\n"
		"                     up to N microseconds when more than " STR(VBLK_COALESCE_MIN) " of its requests\n"
		"                     stay in flight (0-" STR(VBLK_COALESCE_US_LIMIT) "; default 0: notify at\n"
		"                     once)\n"
		"  -d, --register-ds FILE\n"
		"                     trusted shared-memory file (repeatable); once given, only\n"
		"                     memory backed by these files may be used for DMA (by\n"
		"                     vhost-user clients: VDUSE memory is the kernel's own)\n"
		"\n"
		"Driver:\n"
		HOST_OPTIONS_HELP
		"  -v                 more output (repeat up to three times: info, debug, trace)\n"
		"  -q                 quiet: no output at all\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"Signals: SIGTERM, SIGINT, SIGHUP and SIGQUIT stop the server cleanly: VDUSE\n"
		"devices taken off the vdpa bus (serving their I/O in flight), clients ended,\n"
		"sockets removed, controllers shut down. SIGPIPE is ignored. SIGUSR2 hands\n"
		"over to the next server (an upgrade in place): no more requests are taken,\n"
		"those in flight are served, and VDUSE devices stay for the next nvme-drv\n"
		"started with the same --state-dir and clients to take over; vhost-user front\n"
		"ends reconnect to it (QEMU: reconnect=1). After kill -9 the same holds, and\n"
		"the next server also serves again what was in flight.\n"
		"\n"
		"Exit status: 0 on success (or a clean stop on a signal), 1 on any error.\n");
}

/* --list: what the controllers hold, as text or JSON (util/rec.h; the
 * schema is in nvme-drv(8)). Returns 0 or -1 (said). */
static int list_all(const struct host *h, bool json)
{
	/* Room for the largest inventory: HOST_MAX_CTRLS controllers of a few
	 * namespaces with 128 GPT entries each is far below this. */
	static char out[4 << 20];
	struct rec_out o;
	int n;

	rec_init(&o, out, sizeof(out), json);
	inventory_write(h, &o, NULL, NULL);
	n = rec_finish(&o);
	if (n < 0) {
		log_err(NULL, "--list: more than %zu bytes of output", sizeof(out));
		return -1;
	}
	fwrite(out, 1, (size_t)n, stdout);
	return fflush(stdout) ? -1 : 0;
}

/* SIGUSR2 asks for a hand-over (an upgrade in place): leave the devices
 * to the next server instead of taking them away. */
static bool handover;

static void on_signal(void *arg, uint32_t signo)
{
	if (signo == SIGUSR2) {
		log_info(NULL, "SIGUSR2: handing over to the next server");
		handover = true;
	} else if (handover) {
		/* The hand-over has begun: its devices take no requests now, so
		 * they could not be taken off the bus in order. */
		log_warn(NULL, "signal %u during the hand-over: it goes on; the VDUSE devices stay "
			 "for the next server ('vdpa dev del NAME' removes one)", signo);
	} else {
		log_info(NULL, "signal %u: shutting down", signo);
	}
	evloop_stop(arg);
}

struct config {
	struct static_client sc[MAX_STATIC];
	unsigned nsc;
	struct vblk_trusted trusted[MAX_TRUSTED];
	unsigned ntrusted;
	const char *svr;
	const char *state_dir;
	const char *socket_dir;			/* as given, or NULL */
	struct sock_perm perm;			/* --socket-owner, --socket-mode */
	char sock_dir[CTL_SOCKET_PATH_SIZE];	/* resolved */
	unsigned poll_max_us;			/* --poll-max-us */
	unsigned poll_idle_us;			/* --poll-idle-us */
	unsigned coalesce_us;			/* --coalesce-us */
	unsigned threads;			/* --threads, or as many as --cpus */
	unsigned cpus[WORKERS_MAX];		/* --cpus */
	unsigned ncpus;
};

/* Every client holds descriptors (a connected 4-queue vhost-user client
 * 9 to 13): the soft limit (1024 by default) would stop them long before
 * the hard one. Nothing here uses select(). */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_debug(NULL, "cannot raise RLIMIT_NOFILE: %s", strerror(errno));
	}
}

/* The state directory, made if need be (mode 0700: what is in it says
 * which devices a successor may take over). Without --state-dir a default
 * that cannot be made only costs the take-over. Returns 0 or -1 (said). */
static int state_dir_make(struct config *cfg)
{
	const char *dir = cfg->state_dir ? cfg->state_dir : STATE_DIR_DEFAULT;
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		if (!cfg->state_dir) {
			log_warn(NULL, "%s: %s; a restarted server cannot take VDUSE devices over "
				 "(--state-dir)", dir, strerror(errno));
			return 0;
		}
		log_err(NULL, "--state-dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		log_err(NULL, "--state-dir %s: not a directory", dir);
		return -1;
	}
	/* Its records say which disks clients get and as whom: only the
	 * server's user (or root) may write there. */
	if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		log_err(NULL, "--state-dir %s: owned by uid %u with mode %o; it must belong to this "
			"user or root and be writable by its owner only", dir, (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 07777));
		return -1;
	}
	cfg->state_dir = dir;
	return 0;
}

/* Client set-up touches the data threads' loops: they are held meanwhile
 * (not while a failure's shutdown waits for them to drain). */
static void start_failed(struct clients *cs, struct workers *ws)
{
	clients_shutdown(cs, VDUSE_STOP_TIMEOUT_MS);
	workers_stop(ws);
	clients_free(cs);
}

static int start_clients(struct host *h, struct evloop *loop, const struct config *cfg,
			 struct workers *ws, struct clients **out)
{
	char why[CTL_WHY_MAX + 2 * CTL_SOCKET_PATH_SIZE];
	struct clients *cs;
	int rc = clients_new(h, loop, cfg->trusted, cfg->ntrusted, &cs);

	if (rc)
		return rc;
	clients_set_workers(cs, ws);
	clients_set_state_dir(cs, cfg->state_dir);
	clients_set_socket_perm(cs, &cfg->perm);
	/* Static clients claim their devices before anyone else can. */
	for (unsigned i = 0; i < cfg->nsc; i++) {
		const struct static_client *sc = &cfg->sc[i];
		struct client_spec spec = {
			.device = sc->device,
			.ds_max = sc->ds_max,
			.readonly = sc->readonly,
			.socket = sc->socket,
			.vduse = sc->vduse,
		};

		clients_qos_from_ctl(&sc->qos, &spec.qos);

		workers_hold(ws);
		rc = clients_create(cs, true, &spec, NULL, why, sizeof(why));
		workers_release(ws);
		if (rc) {
			log_err(NULL, "--client %s: %s", sc->arg, why);
			/* VDUSE devices of the clients before are on their way onto
			 * the vdpa bus: take them off again. */
			start_failed(cs, ws);
			return rc;
		}
	}
	if (cfg->svr) {
		rc = clients_listen_ctl(cs, cfg->svr, cfg->sock_dir, why, sizeof(why));
		if (rc) {
			log_err(NULL, "%s", why);
			start_failed(cs, ws);
			return rc;
		}
	}
	/* Dynamic clients made before a restart come back after the static
	 * ones, which the command line gives first claim. */
	workers_hold(ws);
	clients_restore(cs);
	workers_release(ws);
	*out = cs;
	return 0;
}

/* Tells the service manager, if one listens (util/notify.h). A manager
 * that cannot be told is worth one warning, not a failed start: the
 * service then simply times out there. */
static void notify(bool warn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void notify(bool warn, const char *fmt, ...)
{
	char state[256];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
	rc = notify_send(state);
	if (rc && warn)
		log_warn(NULL, "cannot notify the service manager at $NOTIFY_SOCKET: %s",
			 strerror(-rc));
}

struct health {
	struct host *h;
	int fd;
};

/* Once a second: a controller that died raises no interrupt to say so. */
static void on_health(void *arg, uint32_t events)
{
	struct health *hl = arg;
	uint64_t n;

	(void)events;
	if (read(hl->fd, &n, sizeof(n)) < 0)
		return;
	for (unsigned i = 0; i < hl->h->nctrls; i++)
		nvme_ctrl_check(hl->h->ctrls[i]);
}

static int serve(struct host *h, const struct config *cfg)
{
	struct itimerspec every_second = { { 1, 0 }, { 1, 0 } };
	struct health hl = { .h = h, .fd = -1 };
	struct workers *ws = NULL;
	struct clients *cs = NULL;
	struct cpuload load;
	bool load_ok = false;
	struct evloop *loop;
	int rc = evloop_new(&loop);

	if (rc)
		return rc;
	rc = evloop_catch_signals(loop, on_signal, loop);
	hl.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (!rc && (hl.fd < 0 || timerfd_settime(hl.fd, 0, &every_second, NULL) != 0))
		rc = -errno;
	if (!rc)
		rc = evloop_add(loop, hl.fd, EPOLLIN, on_health, &hl);
	vblk_set_coalesce_us(cfg->coalesce_us);
	if (cfg->threads > 1 || cfg->ncpus) {
		/* Data threads serve the clients and their queue pairs; this
		 * loop the control plane (daemon/workers.h). */
		char why[256] = "";

		if (!rc) {
			rc = workers_new(h, loop, cfg->threads, cfg->ncpus ? cfg->cpus : NULL,
					 cfg->poll_max_us, cfg->poll_idle_us, &ws, why, sizeof(why));
			if (rc)
				log_err(NULL, "--threads %u: %s", cfg->threads, why);
		}
		if (!rc)
			rc = workers_run(ws);
	} else {
		/* Completion queues are polled with the virtqueues: a
		 * request's completion is often what the loop waits for
		 * next. */
		if (!rc)
			rc = host_watch(h, loop);
		evloop_set_poll_max(loop, cfg->poll_max_us);
		evloop_set_poll_idle_max(loop, cfg->poll_idle_us);
		/* Polling spins only on spare CPU (util/cpuload.h). */
		if (cpuload_open(&load) == 0) {
			load_ok = true;
			evloop_set_poll_gate(loop, cpuload_spare, &load);
		}
	}
	if (!rc)
		rc = start_clients(h, loop, cfg, ws, &cs);
	if (!rc) {
		unsigned n = clients_count(cs);

		/* At the default level too: a service manager's log (and
		 * whoever waits on it) learns that every socket accepts. */
		char status[160];

		snprintf(status, sizeof(status), "serving %u disk%s to %u client%s", h->reg.ndisks,
			 h->reg.ndisks == 1 ? "" : "s", n, n == 1 ? "" : "s");
		log_status("%s%s%s", status, cfg->svr ? "; control socket " : "",
			   cfg->svr ? cfg->svr : "");
		/* Every socket is bound and listening by now (start_clients): a
		 * unit ordered after us may connect at once. */
		notify(true, "READY=1\nSTATUS=%s", status);
		log_info(NULL, "SIGTERM, SIGINT, SIGHUP or SIGQUIT stops; SIGUSR2 hands over");
		rc = evloop_run(loop);
	}
	if (cs)
		notify(false, "STOPPING=1\nSTATUS=%s", handover ? "handing over to the next server"
								: "stopping");
	if (handover)
		clients_handover(cs, VDUSE_STOP_TIMEOUT_MS);
	else
		clients_shutdown(cs, VDUSE_STOP_TIMEOUT_MS);
	if (cs)
		log_status(handover ? "stopped; VDUSE devices left to the next server"
				    : "stopped");
	workers_stop(ws);
	clients_free(cs);
	workers_free(ws);
	evloop_free(loop);
	if (load_ok)
		cpuload_close(&load);
	if (hl.fd >= 0)
		close(hl.fd);
	return rc;
}

/* --socket-owner USER[:GROUP] or :GROUP, names or numbers, as chown(1)
 * takes them; USER alone leaves the group. Returns 0 or -1 with why. */
static int parse_owner(const char *arg, uid_t *uid, gid_t *gid, char *why, size_t whylen)
{
	char user[256];
	const char *colon = strchr(arg, ':'), *group = colon ? colon + 1 : NULL;
	size_t ulen = colon ? (size_t)(colon - arg) : strlen(arg);
	uint64_t n;

	if (ulen >= sizeof(user) || (ulen == 0 && (!group || !*group))) {
		snprintf(why, whylen, "give USER, USER:GROUP or :GROUP");
		return -1;
	}
	memcpy(user, arg, ulen);
	user[ulen] = '\0';
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (ulen) {
		struct passwd *pw = getpwnam(user);

		if (pw)
			*uid = pw->pw_uid;
		else if (parse_u64(user, 0, (uid_t)-2, &n) == 0)
			*uid = (uid_t)n;
		else {
			snprintf(why, whylen, "no user '%s'", user);
			return -1;
		}
	}
	if (group) {
		struct group *gr = *group ? getgrnam(group) : NULL;

		if (gr)
			*gid = gr->gr_gid;
		else if (*group && parse_u64(group, 0, (gid_t)-2, &n) == 0)
			*gid = (gid_t)n;
		else {
			snprintf(why, whylen, "no group '%s'", group);
			return -1;
		}
	}
	return 0;
}

/* The directory of peers' socket= paths: --socket-dir, else that of the
 * control socket, whose directory the operator trusts already (whoever
 * can replace the control socket can pose as the server). Resolved once,
 * so that a peer's DIR/NAME is compared with its canonical spelling, and
 * refused where another user could replace a socket once it is bound
 * (the server would later remove what it did not create). Logs why. */
static int resolve_socket_dir(struct config *cfg)
{
	const char *given = cfg->socket_dir, *opt = given ? "--socket-dir" : "--svr";
	char dir[PATH_MAX], real[PATH_MAX];
	struct stat st;

	if (!given) {
		const char *slash = strrchr(cfg->svr, '/');	/* absolute: found */
		size_t n = slash == cfg->svr ? 1 : (size_t)(slash - cfg->svr);

		memcpy(dir, cfg->svr, n);
		dir[n] = '\0';
		given = dir;
	}
	if (!realpath(given, real) || stat(real, &st) != 0) {
		log_err(NULL, "%s: socket directory %s: %s", opt, given, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err(NULL, "%s: socket directory %s is not a directory", opt, given);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		log_err(NULL, "%s: socket directory %s is writable by others and not sticky: they "
			"could replace the server's sockets; give one only its owner may write "
			"(e.g. --socket-dir /run/nvme-drv-sockets)", opt, real);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		log_err(NULL, "%s: socket directory %s belongs to uid %u, who could replace the "
			"server's sockets", opt, real, (unsigned)st.st_uid);
		return -1;
	}
	/* Room for "/" and a name of at least one byte. */
	if (strlen(real) + 2 >= sizeof(cfg->sock_dir)) {
		log_err(NULL, "%s: socket directory %s leaves no room for a socket name (%d bytes "
			"at most)", opt, real, CTL_SOCKET_PATH_SIZE - 1);
		return -1;
	}
	memcpy(cfg->sock_dir, real, strlen(real) + 1);
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_CLIENT = 0x200, OPT_DEVICE, OPT_DS_MAX, OPT_READONLY, OPT_SVR, OPT_SOCKET_DIR,
	       OPT_STATE_DIR, OPT_JSON, OPT_SOCKET_OWNER, OPT_SOCKET_MODE, OPT_POLL_MAX_US, OPT_COALESCE_US, OPT_THREADS, OPT_CPUS,
	       OPT_QOS, OPT_POLL_IDLE_US };
	static const struct option longopts[] = {
		{ "list", no_argument, NULL, 'l' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "client", required_argument, NULL, OPT_CLIENT },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "ds-max", required_argument, NULL, OPT_DS_MAX },
		{ "readonly", no_argument, NULL, OPT_READONLY },
		{ "read-only", no_argument, NULL, OPT_READONLY },
		{ "qos", required_argument, NULL, OPT_QOS },
		{ "svr", required_argument, NULL, OPT_SVR },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "socket-dir", required_argument, NULL, OPT_SOCKET_DIR },
		{ "socket-owner", required_argument, NULL, OPT_SOCKET_OWNER },
		{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
		{ "register-ds", required_argument, NULL, 'd' },
		{ "poll-max-us", required_argument, NULL, OPT_POLL_MAX_US },
		{ "poll-idle-us", required_argument, NULL, OPT_POLL_IDLE_US },
		{ "coalesce-us", required_argument, NULL, OPT_COALESCE_US },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		HOST_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	static struct config cfg;
	struct static_client *cur = NULL;
	struct host_opts opts;
	struct host host;
	bool do_list = false, json = false, vduse;
	struct devname dn;
	char why[CTL_WHY_MAX];
	struct stat st;
	int verbose = 0, quiet = 0, opt, rc;

	/* A child of ours that puts a VDUSE device on the vdpa bus (vduse.h). */
	if (argc > 1 && strcmp(argv[1], VDUSE_HELPER_ARG) == 0)
		return vduse_helper_main(argc, argv);
	log_set_prog(argv[0]);
	/* Clients hand us descriptors we write to (vring call and error fds
	 * may be pipes whose reader is gone): a write there is the client's
	 * error, never a reason for the whole server to die. */
	signal(SIGPIPE, SIG_IGN);
	host_opts_init(&opts);
	cfg.perm = (struct sock_perm){ (uid_t)-1, (gid_t)-1, -1 };
	cfg.poll_max_us = EVLOOP_POLL_MAX_US_DEFAULT;
	cfg.poll_idle_us = EVLOOP_POLL_IDLE_US_DEFAULT;
	cfg.coalesce_us = VBLK_COALESCE_US_DEFAULT;
	cfg.threads = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vqhVd:", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_CLIENT:
			if (cfg.nsc == MAX_STATIC) {
				log_err(NULL, "--client: at most %d static clients", MAX_STATIC);
				return 1;
			}
			/* vduse:NAME names a VDUSE device; anything else is a path. */
			vduse = strncmp(optarg, VDUSE_PREFIX, strlen(VDUSE_PREFIX)) == 0;
			if (vduse && !optarg[strlen(VDUSE_PREFIX)]) {
				log_err(NULL, "--client vduse: needs a device NAME after 'vduse:' (1-%d of "
					"A-Z a-z 0-9 . _ -), e.g. --client vduse:vd0", CTL_VDUSE_NAME_MAX);
				return 1;
			}
			if (vduse ? ctl_check_vduse_name(optarg + strlen(VDUSE_PREFIX), why, sizeof(why))
				  : ctl_check_socket_path(optarg, why, sizeof(why))) {
				log_err(NULL, "--client %s: %s", optarg, why);
				return 1;
			}
			for (unsigned i = 0; i < cfg.nsc; i++)
				if (strcmp(cfg.sc[i].arg, optarg) == 0) {
					log_err(NULL, "--client %s: given twice", optarg);
					return 1;
				}
			cur = &cfg.sc[cfg.nsc++];
			*cur = (struct static_client){ .arg = optarg, .ds_max = CTL_DS_MAX_DEFAULT };
			if (vduse)
				cur->vduse = optarg + strlen(VDUSE_PREFIX);
			else
				cur->socket = optarg;
			break;
		case OPT_DEVICE:
		case OPT_DS_MAX:
		case OPT_READONLY:
		case OPT_QOS:
			if (!cur) {
				/* By name: argv[optind - 1] is the value when it came
				 * as a separate word (--ds-max 4). */
				log_err(NULL, "%s belongs to a client: give --client SOCKET (or "
					"vduse:NAME) first",
					opt == OPT_DEVICE ? "--device" : opt == OPT_DS_MAX ? "--ds-max"
					: opt == OPT_QOS ? "--qos" : "--readonly");
				return 1;
			}
			if (opt == OPT_READONLY) {
				cur->readonly = true;
			} else if (opt == OPT_QOS) {
				if (cur->qos.set) {
					log_err(NULL, "--client %s: --qos given twice", cur->arg);
					return 1;
				}
				if (ctl_parse_qos_list(optarg, &cur->qos, why, sizeof(why))) {
					log_err(NULL, "--qos %s: %s", optarg, why);
					return 1;
				}
			} else if (opt == OPT_DS_MAX) {
				if (ctl_parse_ds_max(optarg, &cur->ds_max, why, sizeof(why))) {
					log_err(NULL, "--ds-max %s: %s", optarg, why);
					return 1;
				}
			} else {
				if (cur->device) {
					log_err(NULL, "--client %s: --device given twice", cur->arg);
					return 1;
				}
				/* The whole name now, not after every controller is up:
				 * a typo costs nothing. */
				if (ctl_check_device(optarg, why, sizeof(why))) {
					log_err(NULL, "--device %s: %s", optarg, why);
					return 1;
				}
				if (devname_parse(optarg, &dn)) {
					log_err(NULL, "--device %s: not a device name (SERIAL:nNSID, "
						"SERIAL:nNSID:N, UUID, partuuid:UUID or partlabel:NAME)",
						optarg);
					return 1;
				}
				cur->device = optarg;
			}
			break;
		case OPT_SVR:
			if (ctl_check_socket_path(optarg, why, sizeof(why))) {
				log_err(NULL, "--svr %s: %s", optarg, why);
				return 1;
			}
			cfg.svr = optarg;
			break;
		case OPT_STATE_DIR:
			if (optarg[0] != '/' || strlen(optarg) > STATE_DIR_MAX) {
				log_err(NULL, "--state-dir %s: an absolute path of at most %d bytes is needed",
					optarg, STATE_DIR_MAX);
				return 1;
			}
			cfg.state_dir = optarg;
			break;
		case OPT_SOCKET_DIR:
			cfg.socket_dir = optarg;
			break;
		case OPT_SOCKET_OWNER:
			if (parse_owner(optarg, &cfg.perm.uid, &cfg.perm.gid, why, sizeof(why))) {
				log_err(NULL, "--socket-owner %s: %s", optarg, why);
				return 1;
			}
			break;
		case OPT_SOCKET_MODE: {
			unsigned mode;

			if (ctl_parse_socket_mode(optarg, &mode, why, sizeof(why))) {
				log_err(NULL, "--socket-mode: %s", why);
				return 1;
			}
			cfg.perm.mode = (int)mode;
			break;
		}
		case 'd':
			if (cfg.ntrusted == MAX_TRUSTED) {
				log_err(NULL, "--register-ds: at most %d files", MAX_TRUSTED);
				return 1;
			}
			if (stat(optarg, &st) != 0) {
				log_err(NULL, "--register-ds %s: %s", optarg, strerror(errno));
				return 1;
			}
			cfg.trusted[cfg.ntrusted++] = (struct vblk_trusted){ st.st_dev, st.st_ino };
			break;
		case OPT_POLL_MAX_US: {
			uint64_t v;

			if (parse_opt_range("--poll-max-us", optarg, 0, EVLOOP_POLL_MAX_US_LIMIT, &v))
				return 1;
			cfg.poll_max_us = (unsigned)v;
			break;
		}
		case OPT_POLL_IDLE_US: {
			uint64_t v;

			if (parse_opt_range("--poll-idle-us", optarg, 0, EVLOOP_POLL_MAX_US_LIMIT, &v))
				return 1;
			cfg.poll_idle_us = (unsigned)v;
			break;
		}
		case OPT_COALESCE_US: {
			uint64_t v;

			if (parse_opt_range("--coalesce-us", optarg, 0, VBLK_COALESCE_US_LIMIT, &v))
				return 1;
			cfg.coalesce_us = (unsigned)v;
			break;
		}
		case OPT_THREADS: {
			uint64_t v;

			if (parse_opt_range("--threads", optarg, 1, WORKERS_MAX, &v))
				return 1;
			cfg.threads = (unsigned)v;
			break;
		}
		case OPT_CPUS: {
			int prc = parse_cpulist(optarg, CPU_SETSIZE, cfg.cpus, WORKERS_MAX, &cfg.ncpus);

			if (prc) {
				log_err(NULL, "--cpus: '%s' is not a list of CPUs such as 2,3 or 2-5 (each "
					"below %d, named once, at most %u)", optarg, CPU_SETSIZE, WORKERS_MAX);
				return 1;
			}
			break;
		}
		case 'v': verbose++; break;
		case 'q': quiet = 1; break;
		case 'l': do_list = true; break;
		case OPT_JSON: json = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("nvme-drv " NVD_VERSION "\n"); return 0;
		case ':':
			log_err(NULL, "option '%s' needs an argument (see --help)", argv[optind - 1]);
			return 1;
		case '?':
			log_err(NULL, "unknown option '%s' (see --help)", argv[optind - 1]);
			return 1;
		default:
			if (host_opts_parse(&opts, opt, optarg) <= 0)
				return 1;
		}
	}
	if (optind < argc) {
		log_err(NULL, "unexpected argument '%s' (see --help)", argv[optind]);
		return 1;
	}
	for (unsigned i = 0; i < cfg.nsc; i++)
		if (!cfg.sc[i].device) {
			log_err(NULL, "--client %s: no --device given", cfg.sc[i].arg);
			return 1;
		}
	if (json && !do_list) {
		log_err(NULL, "--json goes with --list (a running server's disks: nvme-drv-ctl "
			"--json disks)");
		return 1;
	}
	if (cfg.socket_dir && !cfg.svr) {
		log_err(NULL, "--socket-dir goes with --svr: without a control socket nobody names "
			"sockets");
		return 1;
	}
	if (verbose > 3)
		verbose = 3;
	log_set_level(quiet ? LOG_QUIET : LOG_WARN + verbose);
	/* A server's log is read later, or by journald: time-stamp it or
	 * give journald each line's priority. --list is a command. */
	if (!do_list)
		log_set_style(log_style_for_service());
	if (!do_list && state_dir_make(&cfg))
		return 1;
	/* A stop asked for while the controllers come up is acted on once
	 * everything can be taken down in order. */
	if (!do_list) {
		evloop_block_signals();
		raise_nofile();
	}
	if (cfg.svr && resolve_socket_dir(&cfg))
		return 1;

	/* Polled queues serve only a loop that polls. */
	if (!cfg.poll_max_us)
		opts.ctrl.polled_queues = false;
	if (cfg.ncpus && cfg.threads > 1) {
		log_err(NULL, "--cpus and --threads: give one (--cpus makes a thread per CPU)");
		return 1;
	}
	if (cfg.ncpus)
		cfg.threads = cfg.ncpus;
	/* A queue pair for every data thread, unless told otherwise. */
	if (!opts.ctrl.io_queues && cfg.threads > 2)	/* the driver's default: 2 */
		opts.ctrl.io_queues = cfg.threads;
	rc = host_open(&opts, &host);
	if (rc)
		return 1;
	if (do_list)
		rc = list_all(&host, json);
	else
		rc = serve(&host, &cfg);
	host_close(&host);
	return rc ? 1 : 0;
}
