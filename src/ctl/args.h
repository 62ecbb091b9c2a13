/* The control socket's words and replies (spec/ctl_proto.h), and the
 * create() arguments they carry: pure functions over byte buffers, shared
 * by the server's handler, nvme-drv-ctl and the static client options.
 *
 * A server handles one request like this:
 *
 *     const char *w[CTL_MAX_WORDS];
 *     struct ctl_request req;
 *     char why[CTL_WHY_MAX], reply[CTL_MSG_MAX];
 *     int n = ctl_unpack_words(msg, len, w, CTL_MAX_WORDS, why, sizeof(why));
 *     int rc = n < 0 ? n : ctl_parse_request((unsigned)n, w, &req, why, sizeof(why));
 *     ... act on req, or on rc < 0 ...
 *     len = rc < 0 ? ctl_format_error(reply, sizeof(reply), rc, why)
 *                  : ctl_format_ok(reply, sizeof(reply), result);
 *
 * words[0 .. nwords-1] are NUL-terminated strings. Every parser accepts
 * any bytes in them, writes its outputs only on success, and on
 * failure leaves one line in `why` (when whylen > 0): no newline, no
 * control characters, peer-supplied words quoted and escaped, so it can go
 * straight into an error reply or a log. */
#ifndef NVD_CTL_ARGS_H
#define NVD_CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/ctl_proto.h"

/* Enough for any message the parsers write. */
#define CTL_WHY_MAX 256

/* "ds-max=N": the number of memory regions (L4Re: dataspaces) a client
 * may register. The default is L4Re's. */
#define CTL_DS_MAX_DEFAULT 2
#define CTL_DS_MAX_LIMIT 256
/* "device=DEV": bytes, without the NUL. */
#define CTL_DEVICE_MAX 255
/* "socket=PATH": a struct sockaddr_un's sun_path, with its NUL. */
#define CTL_SOCKET_PATH_SIZE 108
/* "vduse=NAME": VDUSE_NAME_MAX (linux/vduse.h) is 256, but the name also
 * names the block device and its sysfs entries; keep it short. */
#define CTL_VDUSE_NAME_MAX 31

/* QoS limits, per second, 0 for none: "iops=N", "riops=N", "wiops=N" (requests:
 * all, reads, writes), "bps=N", "rbps=N", "wbps=N" (bytes; a K, M, G or T
 * suffix multiplies by 1024 to the 1st..4th power). Writes include
 * flushes, discards and write-zeroes. The order is vblk/qos.h's. */
enum ctl_qos_key { CTL_QOS_IOPS, CTL_QOS_RIOPS, CTL_QOS_WIOPS, CTL_QOS_BPS, CTL_QOS_RBPS,
		   CTL_QOS_WBPS, CTL_QOS_NKEYS };
#define CTL_QOS_IOPS_MAX 100000000ull	/* 100 M requests/s */
#define CTL_QOS_BPS_MIN 4096ull		/* one block a second */
#define CTL_QOS_BPS_MAX (1ull << 40)	/* 1 TiB/s */

struct ctl_qos {
	uint64_t v[CTL_QOS_NKEYS];
	unsigned set;		/* bit k: key k was given */
};

/* "iops", "riops", ...: the key names, without '='. */
extern const char *const ctl_qos_names[CTL_QOS_NKEYS];

/* How the new client's vhost-user (or VDUSE) connection is made. */
enum ctl_transport {
	CTL_TRANSPORT_FD,	/* neither given: reply "fd" + SCM_RIGHTS */
	CTL_TRANSPORT_SOCKET,	/* socket=PATH: the server listens on PATH */
	CTL_TRANSPORT_VDUSE,	/* vduse=NAME: a VDUSE device NAME */
};

struct create_args {
	unsigned obj_type;			/* CTL_OBJ_VIRTIO_BLK */
	char device[CTL_DEVICE_MAX + 1];	/* not yet parsed: blk/devname.h */
	unsigned ds_max;			/* 1 .. CTL_DS_MAX_LIMIT */
	bool read_only;
	enum ctl_transport transport;
	char socket[CTL_SOCKET_PATH_SIZE];	/* "" unless CTL_TRANSPORT_SOCKET */
	char vduse[CTL_VDUSE_NAME_MAX + 1];	/* "" unless CTL_TRANSPORT_VDUSE */
	struct ctl_qos qos;			/* limits given (ctl_qos.set) */
};

/* "destroy" names a client by where it was created: a word starting with
 * '/' is a socket= path, anything else a vduse= name. Clients made with a
 * descriptor have no name; closing the descriptor ends them. */
struct destroy_args {
	enum ctl_transport transport;	/* CTL_TRANSPORT_SOCKET or _VDUSE */
	char name[CTL_SOCKET_PATH_SIZE];
};

/* "qos CLIENT LIMIT...": CLIENT as list names it (a socket path,
 * vduse:NAME or fd-client-N; a bare VDUSE NAME too). */
#define CTL_CLIENT_NAME_MAX (CTL_SOCKET_PATH_SIZE + 15)
struct qos_args {
	char name[CTL_CLIENT_NAME_MAX + 1];
	struct ctl_qos qos;	/* the limits given change; the others stay */
};

enum ctl_cmd {
	CTL_CMD_CREATE,
	CTL_CMD_DESTROY,
	CTL_CMD_LIST,
	CTL_CMD_DISKS,
	CTL_CMD_STATS,
	CTL_CMD_QOS,
};

struct ctl_request {
	enum ctl_cmd cmd;
	bool json;	/* list, disks, stats: the reply is a JSON document */
	union {
		struct create_args create;	/* CTL_CMD_CREATE */
		struct destroy_args destroy;	/* CTL_CMD_DESTROY */
		struct qos_args qos;		/* CTL_CMD_QOS */
	};
};

/* Values, as both create() words and the static client options carry
 * them (--device, --ds-max, --socket, --vduse). Each returns 0 or -EINVAL.
 *
 * device: 1..CTL_DEVICE_MAX bytes, none a control character (below 0x20,
 *   or 0x7f); other bytes, UTF-8 included, are left to the block layer.
 * ds-max: plain decimal (no sign, no leading zero, no hex),
 *   1..CTL_DS_MAX_LIMIT.
 * socket: an absolute path shorter than CTL_SOCKET_PATH_SIZE, without
 *   control characters (so `list` stays one line per client).
 * vduse: 1..CTL_VDUSE_NAME_MAX characters of [A-Za-z0-9._-], not "." or
 *   ".." (it becomes /dev/vduse/NAME). */
int ctl_check_device(const char *s, char *why, size_t whylen);
int ctl_parse_ds_max(const char *s, unsigned *out, char *why, size_t whylen);
int ctl_check_socket_path(const char *s, char *why, size_t whylen);
int ctl_check_vduse_name(const char *s, char *why, size_t whylen);

/* --socket-mode MODE: octal digits only (a leading 0 is allowed, "0660" or
 * "660"), at most 0777: the permission bits, never setuid, setgid or
 * sticky. Returns 0 or -EINVAL. */
int ctl_parse_socket_mode(const char *s, unsigned *out, char *why, size_t whylen);

/* A socket= path that a control-socket peer asks for: it must be
 * DIR/NAME, DIR the server's socket directory exactly as given (absolute,
 * canonical, no trailing '/' unless it is "/"), NAME one path component:
 * not empty, no '/', not "." or "..". So the server binds only where its
 * operator said, never through a subdirectory or ".." a peer could bend.
 * Returns 0, -EINVAL for a path ctl_check_socket_path refuses, or -EACCES
 * for one outside DIR. Pure: symlinks are the caller's to rule out (the
 * directory is resolved once at start, and bind() never follows a symlink
 * in the last component). */
int ctl_check_socket_in_dir(const char *dir, const char *path, char *why, size_t whylen);

/* One QoS word, "KEY=N" (see enum ctl_qos_key), into q. Returns 0,
 * -ENOENT for a word that is not a QoS key (q untouched, why empty), or
 * -EINVAL for a key already in q->set, a value that is not plain decimal
 * (with a suffix for bytes), or one outside 1..CTL_QOS_IOPS_MAX
 * (requests) or CTL_QOS_BPS_MIN..CTL_QOS_BPS_MAX (bytes) other than 0. */
int ctl_parse_qos_word(const char *w, struct ctl_qos *q, char *why, size_t whylen);
/* --qos LIST: QoS words separated by commas ("iops=500,bps=10M"). Returns
 * 0 or -EINVAL (an empty list or word, or what ctl_parse_qos_word
 * refuses, an unknown key included). */
int ctl_parse_qos_list(const char *s, struct ctl_qos *out, char *why, size_t whylen);

/* words[0] is "create", words[1] the object type (plain decimal; only
 * CTL_OBJ_VIRTIO_BLK is served), then in any order: "device=DEV"
 * (required), "ds-max=N", "read-only" (or "readonly", as the command
 * line's --readonly), "socket=PATH" or "vduse=NAME", and QoS words
 * (ctl_parse_qos_word).
 * Returns 0, or -EINVAL for: a missing or malformed object type, an
 * unsupported one, a missing device=, any key given twice, socket= with
 * vduse=, a bad value (see above), a value on read-only, or an unknown
 * word. *out is written only on success. */
int ctl_parse_create(unsigned nwords, const char *const *words, struct create_args *out,
		     char *why, size_t whylen);
/* words: "destroy" "PATH-or-NAME". Returns 0, or -EINVAL for a missing
 * or extra word, or a name that ctl_check_socket_path (leading '/') or
 * ctl_check_vduse_name refuses. */
int ctl_parse_destroy(unsigned nwords, const char *const *words, struct destroy_args *out,
		      char *why, size_t whylen);
/* words: "qos" "CLIENT" and one or more QoS words. Returns 0, or -EINVAL
 * for a missing client or limit, a client name that is empty, longer than
 * CTL_CLIENT_NAME_MAX or holds a control character, or a word
 * ctl_parse_qos_word refuses (an unknown one included). */
int ctl_parse_qos_cmd(unsigned nwords, const char *const *words, struct qos_args *out,
		      char *why, size_t whylen);
/* Dispatches on words[0]: "create", "destroy", "qos", or one of the reports
 * "list", "disks" and "stats", each with nothing or "json" after it.
 * Returns 0, or -EINVAL for no words, an unknown command, a report with
 * another word, or what the command's parser refuses. */
int ctl_parse_request(unsigned nwords, const char *const *words, struct ctl_request *out,
		      char *why, size_t whylen);

/* A request message: the n words, each followed by its NUL. Returns the
 * message length, -E2BIG when n > CTL_MAX_WORDS or the message would not
 * fit min(cap, CTL_MSG_MAX), or -EINVAL when n == 0 or a word is empty. */
int ctl_pack_words(const char *const *words, unsigned n, char *buf, size_t cap);
/* Splits a received request: words[i] point into buf. Returns
 * the number of words, or -EINVAL for: an empty message, one longer than
 * CTL_MSG_MAX, one not ending in NUL, an empty word, or more than
 * min(max, CTL_MAX_WORDS) words. */
int ctl_unpack_words(const char *buf, size_t len, const char **words, unsigned max,
		     char *why, size_t whylen);

/* Replies. Both write the reply text plus a NUL (not part of the reply:
 * send the returned length) and return that length, or -E2BIG when it
 * would not fit min(cap, CTL_MSG_MAX + 1).
 * ok: "ok\n" + body; body (NULL for none) is sent as is.
 * error: "error NAME ERRNO\n" + msg + "\n", err being a negative (or
 *   positive) errno; control characters in msg become '?', so the message
 *   stays one line. Also -EINVAL for err == 0. */
int ctl_format_ok(char *buf, size_t cap, const char *body);
int ctl_format_error(char *buf, size_t cap, int err, const char *msg);
/* Parses a received reply (not NUL-terminated). On success returns 0 with
 * *err = 0 for "ok" or the negative errno of an "error" reply (from NAME
 * when this host knows it, else ERRNO, which differs between
 * architectures), and *body and *bodylen the text after the first line: the
 * result, or the message with its newline. Returns -EPROTO for a reply
 * that is empty, longer than CTL_MSG_MAX, holds a NUL, has neither
 * status line, a malformed NAME or ERRNO (1..4095), or a message of more
 * than one line. */
int ctl_parse_reply(const char *buf, size_t len, int *err, const char **body,
		    size_t *bodylen);
/* As ctl_parse_reply, and also takes a "more\n" part of a long report
 * (spec/ctl_proto.h): *more is then true, *err 0, and *body the piece,
 * which must not be empty. The parts' pieces joined, up to the final "ok"
 * reply's body, are the report. */
int ctl_parse_reply_part(const char *buf, size_t len, int *err, const char **body,
			 size_t *bodylen, bool *more);

/* A report of len bytes, sent as the parts of spec/ctl_proto.h: how many
 * of its first bytes the next part carries. *last is true when that is
 * all of them (it fits one "ok\n" message: CTL_MSG_MAX - 3 bytes); else
 * it is a "more\n" part of CTL_PART_MAX bytes, or fewer so that it ends
 * after the last newline among them, when there is one (text reports then
 * come in whole lines; JSON, which is one line, in full parts). */
size_t ctl_part_len(const char *body, size_t len, bool *last);
/* One part: "more\n" (or "ok\n" when last) and the n bytes of piece, plus
 * a NUL as ctl_format_ok. Returns the length, or -E2BIG when it would not
 * fit min(cap, CTL_MSG_MAX + 1). */
int ctl_format_part(char *buf, size_t cap, const char *piece, size_t n, bool last);

/* "ENODEV" for ENODEV or -ENODEV; "EUNKNOWN" for a value not in the
 * table. Never NULL. */
const char *ctl_errno_name(int err);
/* The positive errno for a name ctl_errno_name gives (also the aliases
 * ENOTSUP and EWOULDBLOCK), else 0. */
int ctl_errno_from_name(const char *name);

#endif
