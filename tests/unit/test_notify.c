/* sd_notify's datagram, to a path and to an abstract name; nothing and
 * no error without $NOTIFY_SOCKET; bad names refused. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/notify.h"

#include "check.h"

/* A datagram socket bound to name (a path, or '@' abstract). */
static int listener(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (s < 0 || bind(s, (struct sockaddr *)&sa,
			  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) != 0) {
		printf("cannot bind %s\n", name);
		return -1;
	}
	return s;
}

static void expect_datagram(int s, const char *want)
{
	char buf[256];
	ssize_t n = recv(s, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	CHECK_STREQ(buf, want);
}

int main(void)
{
	char path[64], abs[64];
	int s;

	unsetenv("NOTIFY_SOCKET");
	CHECK_EQ_INT(notify_send("READY=1"), 0);

	snprintf(path, sizeof(path), "/tmp/nvd-test-notify.%d", (int)getpid());
	unlink(path);
	s = listener(path);
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK_EQ_INT(notify_send("READY=1\nSTATUS=serving 1 disk to 0 clients"), 0);
	expect_datagram(s, "READY=1\nSTATUS=serving 1 disk to 0 clients");
	close(s);
	unlink(path);
	CHECK_EQ_INT(notify_send("STOPPING=1"), -ENOENT);	/* nobody there */

	snprintf(abs, sizeof(abs), "@nvd-test-notify/%d", (int)getpid());
	s = listener(abs);
	setenv("NOTIFY_SOCKET", abs, 1);
	CHECK_EQ_INT(notify_send("STOPPING=1"), 0);
	expect_datagram(s, "STOPPING=1");
	close(s);

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	CHECK_EQ_INT(notify_send("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "@", 1);
	CHECK_EQ_INT(notify_send("READY=1"), -EINVAL);
	return check_report("notify");
}
