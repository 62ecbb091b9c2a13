/* nvme-drv's control socket: how dynamic clients call the seed's
 * create(obj_type, "device=...", "ds-max=...", "read-only").
 *
 * Transport: a Unix SOCK_SEQPACKET socket (nvme-drv --svr PATH). One
 * request message, one reply (one message, or for a long report several:
 * see below), per call; a connection may carry several calls, answered in
 * order.
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
 * Reply: text, messages of at most CTL_MSG_MAX bytes each:
 *     "ok\n" followed by the result (a report: escaped "kind NAME key=value"
 *     lines, or with "json" one JSON document; nvme-drv-ctl(8) gives both
 *     schemas), or
 *     "error NAME ERRNO\n" followed by a one-line message,
 *   NAME being the errno's symbolic name (ENODEV, EBUSY, EINVAL, ...).
 * A report longer than one message comes in parts: zero or more
 *     "more\n" followed by a piece of the result (at most CTL_PART_MAX bytes)
 *   and then the last part, an ordinary "ok\n" reply with the rest. The
 *   result is the pieces joined in order; a piece ends anywhere (often at
 *   a line's end, but inside a line, a JSON string or a UTF-8 sequence
 *   too). Nothing but the reply's own parts comes between them. A report
 *   that fits one message is sent as one "ok\n" message, as always, so a
 *   peer that knows no "more" reads every reply it could read before; to
 *   it a longer one is a reply of an unknown kind (the server used to
 *   refuse it with E2BIG). The report is taken whole when the request is
 *   handled: its parts are one snapshot, however slowly they are read.
 *   The server queues what the peer has not read yet, up to a bound per
 *   connection (always one whole reply), and closes a connection that
 *   goes past it (requests sent without reading the replies) or reads
 *   nothing of a pending reply for 10 s.
 * A create without socket= (or vduse=) succeeds with "ok\nfd\n" and one
 * SCM_RIGHTS file descriptor: the connected vhost-user socket of the new
 * client. The client ends when that descriptor's last copy is closed. */
#ifndef NVD_SPEC_CTL_PROTO_H
#define NVD_SPEC_CTL_PROTO_H

#define CTL_MSG_MAX 65536
/* The most of a report one "more\n" part carries. */
#define CTL_PART_MAX (CTL_MSG_MAX - 5)
#define CTL_MAX_WORDS 16
#define CTL_OBJ_VIRTIO_BLK 0	/* "Virtio block host", the only type */

#endif
