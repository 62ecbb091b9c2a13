/* Access to memory a peer shares and may take away at any moment (a
 * client truncates its memfd under our mapping): a fault there must end
 * that peer's session, not the process.
 *
 * A guarded section:
 *
 *	struct memguard g;
 *
 *	memguard_push(&g);
 *	if (sigsetjmp(g.env, 0))
 *		return -EFAULT;		(the memory vanished; g is popped)
 *	... access ...
 *	memguard_pop(&g);
 *
 * (sigsetjmp only in such a place: C11 7.13.1.1 allows it as the whole
 * controlling expression of an if, not inside a larger expression.) A
 * SIGBUS raised while the section runs returns from sigsetjmp a second
 * time, with the section left where it faulted. Keep sections short,
 * touch only peer memory and the structures that are abandoned on a
 * fault, and keep no locals across the jump (or make them volatile).
 * Sections nest. A SIGBUS outside every section is not ours: it takes the
 * action it had before memguard_install(); one sent by a process (kill)
 * is ignored. Per thread: each thread's sections are its own.
 *
 * The signal mask is not saved (sigsetjmp(env, 0)): the handler runs with
 * SA_NODEFER, so SIGBUS is not blocked when it jumps (no system call per
 * section). */
#ifndef NVD_UTIL_MEMGUARD_H
#define NVD_UTIL_MEMGUARD_H

#include <setjmp.h>
#include <stdbool.h>

struct memguard {
	sigjmp_buf env;
	struct memguard *prev;
};

extern _Thread_local struct memguard *memguard_top;

/* Installs the process-wide SIGBUS handler once. Returns 0 or -errno. */
int memguard_install(void);

static inline void memguard_push(struct memguard *g)
{
	g->prev = memguard_top;
	memguard_top = g;
}

/* Ends the section (not after a fault: the handler has popped it). */
static inline void memguard_pop(struct memguard *g)
{
	memguard_top = g->prev;
}

#endif
