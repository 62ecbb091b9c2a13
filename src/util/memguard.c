#include "util/memguard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

_Thread_local struct memguard *memguard_top;

static struct sigaction old_action;
static int install_rc;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct memguard *g = memguard_top;

	(void)uc;
	/* Sent by a process, not raised by an access: nothing faulted, and
	 * the old action is kept for faults outside the sections. */
	if (si->si_code <= 0)
		return;
	if (g) {
		memguard_top = g->prev;
		siglongjmp(g->env, 1);
	}
	/* Not a peer's memory: a bug of ours. Returning re-runs the access
	 * under the old action (the default kills with a core dump). */
	sigaction(sig, &old_action, NULL);
}

static void install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	install_rc = sigaction(SIGBUS, &sa, &old_action) == 0 ? 0 : -errno;
}

int memguard_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install);
	return install_rc;
}
