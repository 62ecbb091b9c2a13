/* Eventfds a peer handed over for us to signal (vhost-user call and error
 * fds). The peer shares the file description, so it can clear O_NONBLOCK
 * after we set it, and it sets the counter: a write that would push the
 * counter past its maximum blocks. No thread that serves other peers may
 * ever wait on one of them.
 *
 * peerfd_signal writes with O_NONBLOCK set (EAGAIN: the counter is stuck,
 * the peer is broken). Should the peer have cleared O_NONBLOCK and the
 * write block, a watchdog thread interrupts it within two periods (EINTR:
 * the peer is broken). The watchdog watches every thread that signals
 * peer fds (each event loop's; up to 128 in a process, -EMFILE past that:
 * the threads are few and live as long as the process, see --threads). */
#ifndef NVD_UTIL_PEERFD_H
#define NVD_UTIL_PEERFD_H

/* Checks that fd is an eventfd and makes it non-blocking. Returns 0,
 * -EINVAL (another kind of file) or -errno. */
int peerfd_prepare(int fd);
/* Adds 1 to the eventfd's counter. Returns 0, -EAGAIN (the counter is at
 * its maximum), -EINTR (blocked until the watchdog cut it) or -errno. */
int peerfd_signal(int fd);
/* Starts the watchdog (once per process) with a period of ms (0: keep the
 * current one, 1 s at first); later calls only change the period.
 * Returns 0 or -errno. */
int peerfd_watchdog_start(unsigned period_ms);

#endif
