/* The control socket of the real server code (daemon/clients.c) on an
 * event loop in this process, with no disks: its mode, socket= confined to
 * the socket directory, the connection limits (64 in all, 16 for a user
 * other than root, with a child process as nobody) and the idle timeout.
 * Creating real clients needs a controller: t-clients-hostile.sh does. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/args.h"
#include "daemon/clients.h"

#include "check.h"

#define NOBODY 65534
#define PER_UID 16
#define ALL 64

static struct evloop *loop;
static char dir[64], path[CTL_SOCKET_PATH_SIZE];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Runs the server's loop for ms milliseconds. */
static void pump(int ms)
{
	long long end = now_ms() + ms;

	while (now_ms() < end)
		evloop_once(loop, 10);
}

static int conn(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		printf("connect %s: %s\n", path, strerror(errno));
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

/* What the server sent on s so far ("" for nothing, "EOF" for a hang-up). */
static const char *pending(int s)
{
	static char buf[CTL_MSG_MAX + 1];
	ssize_t n = recv(s, buf, CTL_MSG_MAX, MSG_DONTWAIT);

	if (n < 0)
		return "";
	if (n == 0)
		return "EOF";
	buf[n] = '\0';
	return buf;
}

/* One call on a fresh connection, its words ending in NULL: the reply. */
static const char *call(const char *first, ...)
{
	static char msg[CTL_MSG_MAX], out[1024];
	const char *w[CTL_MAX_WORDS];
	unsigned n = 0;
	va_list ap;
	int len, s;

	va_start(ap, first);
	for (const char *a = first; a && n < CTL_MAX_WORDS; a = va_arg(ap, const char *))
		w[n++] = a;
	va_end(ap);
	len = ctl_pack_words(w, n, msg, sizeof(msg));
	s = conn();

	snprintf(out, sizeof(out), "(no reply)");
	if (s < 0 || len < 0 || send(s, msg, (size_t)len, MSG_NOSIGNAL) != len) {
		if (s >= 0)
			close(s);
		return out;
	}
	pump(50);
	snprintf(out, sizeof(out), "%s", pending(s));
	close(s);
	pump(20);
	return out;
}

#define CALL(...) call(__VA_ARGS__, (const char *)NULL)

#define CHECK_PREFIX(s, p)						\
	do {								\
		const char *s_ = (s);					\
		check_count++;						\
		if (strncmp(s_, p, strlen(p)) != 0) {			\
			check_failed++;					\
			printf("%s:%d: \"%s\" does not start with \"%s\"\n", \
			       __FILE__, __LINE__, s_, p);		\
			fflush(stdout);					\
		}							\
	} while (0)
#define CHECK_HAS(s, p)							\
	do {								\
		const char *s_ = (s);					\
		check_count++;						\
		if (!strstr(s_, p)) {					\
			check_failed++;					\
			printf("%s:%d: \"%s\" does not hold \"%s\"\n",	\
			       __FILE__, __LINE__, s_, p);		\
			fflush(stdout);					\
		}							\
	} while (0)

static void test_mode_and_dir(void)
{
	char out[CTL_SOCKET_PATH_SIZE + 16], sub[CTL_SOCKET_PATH_SIZE + 16];

	CHECK_PREFIX(CALL("list"), "ok\n");
	/* The reports of a server with no disks and no clients, in both
	 * forms: empty text, JSON with every list present. */
	CHECK_STREQ(CALL("list", "json"), "ok\n{\"clients\":[],\"controllers\":[]}\n");
	CHECK_STREQ(CALL("disks"), "ok\n");
	CHECK_STREQ(CALL("disks", "json"), "ok\n{\"controllers\":[]}\n");
	/* The serving loop's polling counters (no cap here: it never polls,
	 * it sleeps). */
	CHECK_HAS(CALL("stats", "json"), "ok\n{\"clients\":[],\"controllers\":[],\"loops\":[{\"name\":"
		  "\"main\",\"poll-window-us\":0,\"idle-window-us\":0,\"rounds\":0,\"hits\":0,"
		  "\"sleeps\":");
	CHECK_HAS(CALL("stats"), "\nloop main poll-window-us=0 idle-window-us=0 rounds=0 hits=0 sleeps=");
	CHECK_HAS(CALL("stats", "yaml"), "error EINVAL");

	CHECK_HAS(CALL("create", "0", "device=SN:n1", "socket=/etc/nvd-test.sock"),
		  "error EACCES");
	snprintf(out, sizeof(out), "socket=%s/../nvd-test.sock", dir);
	CHECK_HAS(CALL("create", "0", "device=SN:n1", out), "socket directory");
	snprintf(sub, sizeof(sub), "socket=%s/sub/x.sock", dir);
	CHECK_HAS(CALL("create", "0", "device=SN:n1", sub), "error EACCES");
	/* Inside: past the directory check, on to the device (there is none). */
	snprintf(out, sizeof(out), "socket=%s/x.sock", dir);
	CHECK_PREFIX(CALL("create", "0", "device=SN:n1", out), "error ENODEV");
	snprintf(out, sizeof(out), "%s/x.sock", dir);
	CHECK_PREFIX(CALL("destroy", out), "error ENOENT");
	/* Limits: checked before the device is looked for; qos names a
	 * client that must exist. */
	snprintf(out, sizeof(out), "socket=%s/x.sock", dir);
	CHECK_HAS(CALL("create", "0", "device=SN:n1", out, "iops=100000001"), "error EINVAL");
	CHECK_PREFIX(CALL("create", "0", "device=SN:n1", out, "iops=500", "wbps=1M"), "error ENODEV");
	CHECK_HAS(CALL("qos", "/run/nothing.sock", "iops=5"), "error ENOENT");
	CHECK_HAS(CALL("qos", "/run/nothing.sock", "bps=1"), "error EINVAL");
	CHECK_HAS(CALL("qos", "/run/nothing.sock"), "error EINVAL");
}

/* ALL connections at once, then one more: refused with a reason. */
static void test_all(void)
{
	int s[ALL + 1];

	for (int i = 0; i <= ALL; i++) {
		s[i] = conn();
		pump(5);
	}
	pump(100);
	CHECK_STREQ(pending(s[0]), "");
	CHECK_STREQ(pending(s[ALL - 1]), "");
	CHECK_HAS(pending(s[ALL]), "error EAGAIN");
	CHECK_PREFIX(pending(s[ALL]), "EOF");
	for (int i = 0; i <= ALL; i++)
		if (s[i] >= 0)
			close(s[i]);
	pump(100);
	CHECK_PREFIX(CALL("list"), "ok\n");
}

static int send_lists(int s, int most);
static int read_replies(int s, bool *eof);

/* With every slot taken, a peer that connects and hangs up at once: its
 * refusal cannot be sent (the peer is gone) and the connection, never
 * accepted, is freed once, by the refusing code (a use-after-free and a
 * double close under ASan before). */
static void test_refused_gone(void)
{
	int s[ALL + 1];

	for (int i = 0; i < ALL; i++) {
		s[i] = conn();
		pump(5);
	}
	s[ALL] = conn();
	CHECK(s[ALL] >= 0);
	if (s[ALL] >= 0) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(s[ALL], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(s[ALL]);
	}
	pump(100);
	for (int i = 0; i < ALL; i++)
		if (s[i] >= 0)
			close(s[i]);
	pump(100);
	CHECK_PREFIX(CALL("list"), "ok\n");
}

/* A peer that sends its requests, shuts down its sending side and then
 * reads: every reply comes before the server hangs up. */
static void test_shut_wr(void)
{
	int s = conn(), sent = 0, got = 0;
	bool eof = false;

	/* More replies than the peer's socket holds: most wait in the
	 * server's queue when the peer shuts down. */
	for (int round = 0; round < 60000 && sent < 6000; round++) {
		int n = send_lists(s, 6000 - sent);

		CHECK(n >= 0);
		sent += n > 0 ? n : 0;
		evloop_once(loop, 1);
	}
	CHECK_EQ_INT(sent, 6000);
	/* Every request taken, most replies waiting in the server, then the
	 * end of the requests, seen before anything is read. */
	pump(200);
	CHECK_EQ_INT(shutdown(s, SHUT_WR), 0);
	pump(50);
	for (int round = 0; round < 60000 && !eof; round++) {
		evloop_once(loop, 1);
		got += read_replies(s, &eof);
	}
	CHECK_EQ_INT(got, sent);
	CHECK(eof);
	printf("test_ctl_server: %d requests, then SHUT_WR: %d replies read\n", sent, got);
	close(s);
	pump(20);
}

/* A child as nobody opens 20: 16 are taken, 4 refused; root's call goes
 * on while nobody holds its 16. */
static void test_per_uid(void)
{
	int ready[2], go[2], status = 0;
	char res[2] = "";
	pid_t pid;

	if (geteuid() != 0) {
		printf("test_ctl_server: per-uid limit not tested: needs root to become nobody\n");
		return;
	}
	if (pipe(ready) || pipe(go))
		return;
	pid = fork();
	if (pid == 0) {
		int s[PER_UID + 4], refused = 0, held = 0;

		if (setgid(NOBODY) || setuid(NOBODY))
			_exit(2);
		for (int i = 0; i < PER_UID + 4; i++)
			s[i] = conn();
		if (write(ready[1], "r", 1) != 1 || read(go[0], res, 1) != 1)
			_exit(3);
		for (int i = 0; i < PER_UID + 4; i++) {
			const char *p = s[i] < 0 ? "EOF" : pending(s[i]);

			if (strstr(p, "uid 65534 has 16 control connections open"))
				refused++;
			else if (!p[0])
				held++;
		}
		_exit(refused == 4 && held == PER_UID ? 0 : 10 + refused);
	}
	/* The server runs here, while the child connects. */
	for (;;) {
		struct timeval tv = { 0, 0 };
		fd_set fds;

		pump(20);
		FD_ZERO(&fds);
		FD_SET(ready[0], &fds);
		if (select(ready[0] + 1, &fds, NULL, NULL, &tv) > 0)
			break;
	}
	CHECK_EQ_INT(read(ready[0], res, 1), 1);
	pump(200);
	CHECK_PREFIX(CALL("list"), "ok\n");
	CHECK_EQ_INT(write(go[1], "g", 1), 1);
	while (waitpid(pid, &status, WNOHANG) == 0)
		pump(20);
	CHECK(WIFEXITED(status));
	CHECK_EQ_INT(WEXITSTATUS(status), 0);
	pump(100);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

/* Sends up to most "list" requests on s, as many as the socket takes now;
 * returns how many, or -1 when the server has hung up. */
static int send_lists(int s, int most)
{
	int n = 0;

	while (n < most && send(s, "list", 5, MSG_DONTWAIT | MSG_NOSIGNAL) == 5)
		n++;
	return n == most || errno == EAGAIN ? n : -1;
}

/* Reads the replies waiting on s: how many, each "ok\n" (else -1000);
 * *eof when the server has hung up. */
static int read_replies(int s, bool *eof)
{
	int n = 0;

	for (;;) {
		const char *p = pending(s);

		if (!p[0])
			return n;
		if (strcmp(p, "EOF") == 0) {
			*eof = true;
			return n;
		}
		n += strcmp(p, "ok\n") == 0 ? 1 : -1000;
	}
}

/* Requests sent one after the other without waiting: every reply comes,
 * in order, to a peer that reads them slowly, though most of them had to
 * wait in the server's queue (its socket holds a few hundred). */
static void test_pipelined_slow_reader(void)
{
	int s = conn(), sent = 0, got = 0;
	bool eof = false;

	for (int round = 0; round < 20000 && got < 3000; round++) {
		int n = send_lists(s, 3000 - sent);

		CHECK(n >= 0);
		sent += n > 0 ? n : 0;
		evloop_once(loop, 1);
		/* One reply read every other round, slower than they come,
		 * until all are asked for. */
		if (sent < 3000 && round % 2 == 0 && pending(s)[0])
			got++;
		if (sent == 3000)
			got += read_replies(s, &eof);
	}
	pump(50);
	got += read_replies(s, &eof);
	CHECK_EQ_INT(sent, 3000);
	CHECK_EQ_INT(got, sent);
	CHECK(!eof);
	printf("test_ctl_server: %d requests sent at once, %d replies read slowly\n", sent, got);
	close(s);
	pump(20);
}

/* A peer that sends requests and never reads: once more than the bound
 * (1 MiB, with each reply's overhead) waits for it, the server closes the
 * connection, frees what waited, and goes on serving others. */
static void test_pipelined_no_reader(void)
{
	int s = conn(), sent = 0, got;
	bool eof = false;
	long long end = now_ms() + 30000;

	while (now_ms() < end) {
		int n = send_lists(s, 1 << 20);

		if (n < 0)
			break;
		sent += n;
		for (int i = 0; i < 64; i++)
			evloop_once(loop, 0);
	}
	pump(50);
	/* 1 MiB of replies of 3 + 64 bytes each: some 15650, and a few
	 * hundred more in the socket. */
	CHECK(sent > 15000);
	got = read_replies(s, &eof);
	CHECK(eof);
	CHECK(got > 100 && got < sent);
	printf("test_ctl_server: a peer that does not read: %d requests sent, %d replies "
	       "had reached it when it was cut off\n", sent, got);
	close(s);
	CHECK_STREQ(CALL("list", "json"), "ok\n{\"clients\":[],\"controllers\":[]}\n");
}

/* A connection that sends nothing is closed after 10 s, and says so. One
 * that asked for replies and reads none of them for 10 s goes too. */
static void test_idle(void)
{
	int s = conn(), t, u = conn(), sent = 0;
	bool eof = false;

	/* Past what the socket holds: replies wait in the server's queue. */
	for (int i = 0; i < 100 && sent < 1000; i++) {
		int n = send_lists(u, 1000 - sent);

		sent += n > 0 ? n : 0;
		pump(5);
	}
	CHECK(sent >= 1000);
	pump(9000);
	t = conn();
	CHECK_STREQ(pending(s), "");
	pump(2500);
	CHECK_HAS(pending(s), "error ETIMEDOUT");
	CHECK_PREFIX(pending(s), "EOF");
	/* Younger: still open. */
	CHECK_STREQ(pending(t), "");
	CHECK(read_replies(u, &eof) > 0);
	CHECK(eof);
	close(s);
	close(t);
	close(u);
}

int main(void)
{
	char why[CTL_WHY_MAX + 256];
	struct host host;
	struct clients *cs;

	signal(SIGPIPE, SIG_IGN);
	memset(&host, 0, sizeof(host));
	snprintf(dir, sizeof(dir), "/tmp/nvd-ctl-test.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	CHECK_EQ_INT(evloop_new(&loop), 0);
	CHECK_EQ_INT(clients_new(&host, loop, NULL, 0, &cs), 0);
	CHECK_EQ_INT(clients_listen_ctl(cs, path, dir, why, sizeof(why)), 0);
	{
		struct stat st;

		CHECK_EQ_INT(stat(path, &st), 0);
		CHECK_EQ_INT(st.st_mode & 0777, 0600);
	}
	/* nobody must reach the socket for the per-uid test. */
	chmod(dir, 0755);
	chmod(path, 0666);

	test_mode_and_dir();
	test_all();
	test_refused_gone();
	test_per_uid();
	test_shut_wr();
	test_pipelined_slow_reader();
	test_pipelined_no_reader();
	test_idle();

	clients_free(cs);
	CHECK_EQ_INT(access(path, F_OK), -1);

	/* --socket-owner :GROUP --socket-mode 0660 on the control socket (our
	 * own group: changing to another needs root). */
	CHECK_EQ_INT(clients_new(&host, loop, NULL, 0, &cs), 0);
	clients_set_socket_perm(cs, &(struct sock_perm){ (uid_t)-1, getegid(), 0660 });
	CHECK_EQ_INT(clients_listen_ctl(cs, path, dir, why, sizeof(why)), 0);
	{
		struct stat st;

		CHECK_EQ_INT(stat(path, &st), 0);
		CHECK_EQ_INT(st.st_mode & 0777, 0660);
		CHECK_EQ_INT(st.st_gid, getegid());
	}
	clients_free(cs);
	/* A group we may not give it: one clear reason naming the option. */
	if (geteuid() != 0) {
		CHECK_EQ_INT(clients_new(&host, loop, NULL, 0, &cs), 0);
		clients_set_socket_perm(cs, &(struct sock_perm){ 0, (gid_t)-1, -1 });
		CHECK_EQ_INT(clients_listen_ctl(cs, path, dir, why, sizeof(why)), -EPERM);
		CHECK(strstr(why, "--socket-owner: chown ") != NULL);
		clients_free(cs);
	}
	evloop_free(loop);
	CHECK_EQ_INT(access(path, F_OK), -1);
	rmdir(dir);
	return check_report("ctl_server");
}
