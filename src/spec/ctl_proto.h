/* nvme-drv's control socket: how dynamic clients call the seed's
 * create(obj_type, "device=...", "ds-max=...", "read-only").
 *
 * Transport: a Unix SOCK_SEQPACKET socket (nvme-drv --svr PATH). One
 * request message, one reply message, per call; a connection may carry
 * several calls.
 *
 * Request: the words of the call, each NUL-terminated, in one message of
 * at most CTL_MSG_MAX bytes:
 *     "create" "0" "device=DEV" ["ds-max=N"] ["read-only"] ["socket=PATH"] ["vduse=NAME"]
 *              [LIMIT...]
 *     "destroy" "PATH-or-NAME"
 *     "qos" "CLIENT" LIMIT...   changes the client's limits named, at once
 *   LIMIT: "iops=N" "riops=N" "wiops=N" (requests per second: all, reads,
 *   writes) or "bps=N" "rbps=N" "wbps=N" (bytes per second, N with an
 *   optional K, M, G or T); 0 is no limit (ctl/args.h gives the bounds).
 *     "list" ["json"]     the clients
 *     "disks" ["json"]    controllers, namespaces, partitions and who holds each
 *     "stats" ["json"]    I/O counters per client and per controller
 * Reply: text, one message of at most CTL_MSG_MAX bytes:
 *     "ok\n" followed by the result (a report: escaped "kind NAME key=value"
 *     lines, or with "json" one JSON document; nvme-drv-ctl(8) gives both
 *     schemas), or
 *     "error NAME ERRNO\n" followed by a one-line message,
 *   NAME being the errno's symbolic name (ENODEV, EBUSY, EINVAL, ...).
 * A create without socket= (or vduse=) succeeds with "ok\nfd\n" and one
 * SCM_RIGHTS file descriptor: the connected vhost-user socket of the new
 * client. The client ends when that descriptor's last copy is closed. */
#ifndef NVD_SPEC_CTL_PROTO_H
#define NVD_SPEC_CTL_PROTO_H

#define CTL_MSG_MAX 65536
#define CTL_MAX_WORDS 16
#define CTL_OBJ_VIRTIO_BLK 0	/* "Virtio block host", the only type */

#endif
