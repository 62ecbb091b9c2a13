/* The service manager's readiness protocol (sd_notify(3)), written down
 * rather than linked: one datagram of "KEY=VALUE" lines to the Unix
 * socket $NOTIFY_SOCKET names, an abstract one when the name starts with
 * '@'. READY=1 says the service accepts work, STOPPING=1 that it is
 * going, STATUS= a line for systemctl status. */
#ifndef NVD_UTIL_NOTIFY_H
#define NVD_UTIL_NOTIFY_H

/* Sends state ("READY=1\nSTATUS=..."). Returns 0 when sent or when no
 * manager listens ($NOTIFY_SOCKET unset), -EINVAL for a name that is not
 * an absolute path or '@' name of at most 107 bytes, or the errno of
 * socket() or sendto(). */
int notify_send(const char *state);

#endif
