#include "ctl/args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/parse.h"

/* Linux errnos stay below 4096 (MAX_ERRNO); a reply's ERRNO must too. */
#define ERRNO_MAX 4095
/* A quoted word in a message: at most this many bytes, escapes included. */
#define QUOTE_SIZE 48

_Static_assert(CTL_SOCKET_PATH_SIZE == sizeof(((struct destroy_args *)0)->name),
	       "a destroy name holds any socket path");
_Static_assert(CTL_VDUSE_NAME_MAX < CTL_SOCKET_PATH_SIZE,
	       "a destroy name holds any vduse name");
_Static_assert(CTL_MSG_MAX <= INT32_MAX, "message lengths are returned as int");

static int fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Every rejection here is a malformed argument: one errno, and the reason
 * in `why`. */
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A peer's word as it may appear in a one-line message: printable ASCII
 * kept, every other byte (newlines, UTF-8, escapes) as \xNN, long words
 * cut with "...". */
static const char *quote(char dst[QUOTE_SIZE], const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = c >= 0x20 && c < 0x7f && c != '\\';
		size_t need = plain ? 1 : 4;

		if (o + need > QUOTE_SIZE - 4) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (plain) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Offset of the first control character in s, or -1. */
static long find_control(const char *s)
{
	for (const char *p = s; *p; p++)
		if (is_control((unsigned char)*p))
			return p - s;
	return -1;
}

/* Plain decimal: no sign, no hex, no leading zero (read as octal
 * elsewhere). -EINVAL for anything else, -ERANGE outside [min, max]. */
static int parse_dec(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s[0] || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	return parse_u64(s, min, max, out);
}

int ctl_check_device(const char *s, char *why, size_t whylen)
{
	size_t len = strnlen(s, CTL_DEVICE_MAX + 1);
	long bad;

	if (len == 0)
		return fail(why, whylen, "device name is empty");
	if (len > CTL_DEVICE_MAX)
		return fail(why, whylen, "device name is longer than %d bytes", CTL_DEVICE_MAX);
	bad = find_control(s);
	if (bad >= 0)
		return fail(why, whylen, "device name holds a control character (byte %ld)", bad);
	return 0;
}

int ctl_parse_ds_max(const char *s, unsigned *out, char *why, size_t whylen)
{
	char q[QUOTE_SIZE];
	uint64_t v;
	int rc = parse_dec(s, 1, CTL_DS_MAX_LIMIT, &v);

	if (rc == -ERANGE)
		return fail(why, whylen, "ds-max %s is out of range 1..%d", quote(q, s),
			    CTL_DS_MAX_LIMIT);
	if (rc)
		return fail(why, whylen, "ds-max '%s' is not a plain decimal number", quote(q, s));
	*out = (unsigned)v;
	return 0;
}

int ctl_check_socket_path(const char *s, char *why, size_t whylen)
{
	char q[QUOTE_SIZE];

	if (s[0] != '/')
		return fail(why, whylen, "socket path '%s' is not absolute", quote(q, s));
	if (strnlen(s, CTL_SOCKET_PATH_SIZE) >= CTL_SOCKET_PATH_SIZE)
		return fail(why, whylen, "socket path is longer than %d bytes",
			    CTL_SOCKET_PATH_SIZE - 1);
	if (find_control(s) >= 0)
		return fail(why, whylen, "socket path '%s' holds a control character",
			    quote(q, s));
	return 0;
}

int ctl_parse_socket_mode(const char *s, unsigned *out, char *why, size_t whylen)
{
	char q[QUOTE_SIZE];
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 4)
		return fail(why, whylen, "'%s' is not a mode: 3 or 4 octal digits, e.g. 0660",
			    quote(q, s));
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return fail(why, whylen, "'%s' is not a mode: octal digits only, e.g. 0660",
				    quote(q, s));
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	if (v > 0777)
		return fail(why, whylen, "'%s': setuid, setgid and sticky bits mean nothing on a "
			    "socket; give at most 0777", quote(q, s));
	*out = v;
	return 0;
}

int ctl_check_socket_in_dir(const char *dir, const char *path, char *why, size_t whylen)
{
	/* "/" is the one directory whose name ends in '/'. */
	size_t dl = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
	const char *name = path + dl + 1;
	char q[QUOTE_SIZE];
	int rc = ctl_check_socket_path(path, why, whylen);

	if (rc)
		return rc;
	if (strncmp(path, dir, dl) != 0 || path[dl] != '/' || !name[0] || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		if (why && whylen)
			snprintf(why, whylen, "socket path '%s' is not a file directly in the socket "
				 "directory %s (give %s/NAME)", quote(q, path), dir, dl ? dir : "");
		return -EACCES;
	}
	return 0;
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int ctl_check_vduse_name(const char *s, char *why, size_t whylen)
{
	char q[QUOTE_SIZE];
	size_t len = strnlen(s, CTL_VDUSE_NAME_MAX + 1);

	if (len == 0)
		return fail(why, whylen, "vduse name is empty");
	if (len > CTL_VDUSE_NAME_MAX)
		return fail(why, whylen, "vduse name is longer than %d characters",
			    CTL_VDUSE_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(s[i]))
			return fail(why, whylen,
				    "vduse name '%s' holds a character other than A-Z a-z 0-9 . _ -",
				    quote(q, s));
	/* The kernel makes /dev/vduse/NAME: these two would name directories. */
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return fail(why, whylen, "vduse name may not be '.' or '..'");
	return 0;
}

const char *const ctl_qos_names[CTL_QOS_NKEYS] = {
	[CTL_QOS_IOPS] = "iops", [CTL_QOS_RIOPS] = "riops", [CTL_QOS_WIOPS] = "wiops",
	[CTL_QOS_BPS] = "bps", [CTL_QOS_RBPS] = "rbps", [CTL_QOS_WBPS] = "wbps",
};

static bool qos_is_bytes(int k)
{
	return k == CTL_QOS_BPS || k == CTL_QOS_RBPS || k == CTL_QOS_WBPS;
}

/* Plain decimal, then for bytes an optional K, M, G or T (binary). */
static int parse_qos_value(const char *s, bool bytes, uint64_t *out)
{
	static const char suffixes[] = "KMGT";
	char digits[24];
	size_t n = strlen(s);
	unsigned shift = 0;
	const char *suf;
	uint64_t v;
	int rc;

	if (bytes && n > 1 && (suf = strchr(suffixes, s[n - 1])) != NULL) {
		shift = 10 * (unsigned)(suf - suffixes + 1);
		n--;
	}
	if (n == 0 || n >= sizeof(digits))
		return n ? -ERANGE : -EINVAL;
	memcpy(digits, s, n);
	digits[n] = '\0';
	rc = parse_dec(digits, 0, UINT64_MAX >> shift, &v);
	if (rc)
		return rc;
	*out = v << shift;
	return 0;
}

int ctl_parse_qos_word(const char *w, struct ctl_qos *q, char *why, size_t whylen)
{
	char qw[QUOTE_SIZE];
	const char *eq = strchr(w, '=');
	uint64_t v, min, max;
	int k, rc;

	if (why && whylen)
		why[0] = '\0';
	if (!eq)
		return -ENOENT;
	for (k = 0; k < CTL_QOS_NKEYS; k++)
		if (strlen(ctl_qos_names[k]) == (size_t)(eq - w) &&
		    strncmp(w, ctl_qos_names[k], (size_t)(eq - w)) == 0)
			break;
	if (k == CTL_QOS_NKEYS)
		return -ENOENT;
	if (q->set & (1u << k))
		return fail(why, whylen, "%s= given twice", ctl_qos_names[k]);
	min = qos_is_bytes(k) ? CTL_QOS_BPS_MIN : 1;
	max = qos_is_bytes(k) ? CTL_QOS_BPS_MAX : CTL_QOS_IOPS_MAX;
	rc = parse_qos_value(eq + 1, qos_is_bytes(k), &v);
	if (rc == -EINVAL)
		return fail(why, whylen, "%s '%s' is not a plain decimal number%s", ctl_qos_names[k],
			    quote(qw, eq + 1), qos_is_bytes(k) ? " (with K, M, G or T)" : "");
	if (rc || (v && (v < min || v > max)))
		return fail(why, whylen, "%s %s is out of range: 0 (no limit) or %llu..%llu",
			    ctl_qos_names[k], quote(qw, eq + 1), (unsigned long long)min,
			    (unsigned long long)max);
	q->v[k] = v;
	q->set |= 1u << k;
	return 0;
}

int ctl_parse_qos_list(const char *s, struct ctl_qos *out, char *why, size_t whylen)
{
	struct ctl_qos q = { .set = 0 };
	char w[64], qw[QUOTE_SIZE];

	if (!*s)
		return fail(why, whylen, "no limits (e.g. iops=500,bps=10M)");
	for (const char *p = s;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int rc;

		if (n == 0)
			return fail(why, whylen, "empty limit in '%s'", quote(qw, s));
		if (n >= sizeof(w))
			return fail(why, whylen, "limit '%s' is too long", quote(qw, p));
		memcpy(w, p, n);
		w[n] = '\0';
		rc = ctl_parse_qos_word(w, &q, why, whylen);
		if (rc == -ENOENT)
			return fail(why, whylen, "unknown limit '%s' (expected iops=, riops=, wiops=, "
				    "bps=, rbps= or wbps=)", quote(qw, w));
		if (rc)
			return rc;
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = q;
	return 0;
}

int ctl_parse_qos_cmd(unsigned nwords, const char *const *words, struct qos_args *out,
		      char *why, size_t whylen)
{
	struct qos_args a = { .name = "" };
	char qw[QUOTE_SIZE];
	size_t len;
	long bad;

	if (nwords < 1 || strcmp(words[0], "qos") != 0)
		return fail(why, whylen, "not a qos request");
	if (nwords < 3)
		return fail(why, whylen, "qos needs a client and at least one limit (e.g. qos "
			    "/run/vm1.sock iops=500)");
	len = strnlen(words[1], CTL_CLIENT_NAME_MAX + 1);
	if (len > CTL_CLIENT_NAME_MAX)
		return fail(why, whylen, "client name is longer than %d bytes", CTL_CLIENT_NAME_MAX);
	bad = find_control(words[1]);
	if (bad >= 0)
		return fail(why, whylen, "client name holds a control character (byte %ld)", bad);
	memcpy(a.name, words[1], len + 1);
	for (unsigned i = 2; i < nwords; i++) {
		int rc = ctl_parse_qos_word(words[i], &a.qos, why, whylen);

		if (rc == -ENOENT)
			return fail(why, whylen, "unknown word '%s' (expected iops=N, riops=N, wiops=N, "
				    "bps=N, rbps=N or wbps=N)", quote(qw, words[i]));
		if (rc)
			return rc;
	}
	*out = a;
	return 0;
}

enum create_key { KEY_DEVICE, KEY_DS_MAX, KEY_READ_ONLY, KEY_SOCKET, KEY_VDUSE, KEY_COUNT };

/* A key ending in '=' takes a value; the others are flags. */
static const char *const create_keys[KEY_COUNT] = {
	[KEY_DEVICE] = "device=",
	[KEY_DS_MAX] = "ds-max=",
	[KEY_READ_ONLY] = "read-only",
	[KEY_SOCKET] = "socket=",
	[KEY_VDUSE] = "vduse=",
};

/* The key of word w and, for a key with '=', its value; -1 if none.
 * "readonly" is read-only as nvme-drv's --readonly spells it. */
static int match_key(const char *w, const char **value)
{
	if (strcmp(w, "readonly") == 0) {
		*value = w + strlen(w);
		return KEY_READ_ONLY;
	}
	for (int k = 0; k < KEY_COUNT; k++) {
		const char *key = create_keys[k];
		size_t kl = strlen(key);

		if (key[kl - 1] == '=' ? strncmp(w, key, kl) == 0 : strcmp(w, key) == 0) {
			*value = w + kl;
			return k;
		}
	}
	return -1;
}

int ctl_parse_create(unsigned nwords, const char *const *words, struct create_args *out,
		     char *why, size_t whylen)
{
	struct create_args a = { .ds_max = CTL_DS_MAX_DEFAULT, .transport = CTL_TRANSPORT_FD };
	bool seen[KEY_COUNT] = { false };
	char q[QUOTE_SIZE];
	uint64_t type;
	int rc;

	if (nwords < 1 || strcmp(words[0], "create") != 0)
		return fail(why, whylen, "not a create request");
	if (nwords < 2)
		return fail(why, whylen, "create needs an object type");
	rc = parse_dec(words[1], 0, UINT32_MAX, &type);
	if (rc == -ERANGE)
		return fail(why, whylen, "object type %s is out of range", quote(q, words[1]));
	if (rc)
		return fail(why, whylen, "object type '%s' is not a plain decimal number",
			    quote(q, words[1]));
	if (type != CTL_OBJ_VIRTIO_BLK)
		return fail(why, whylen, "unsupported object type %llu (%d is Virtio block host)",
			    (unsigned long long)type, CTL_OBJ_VIRTIO_BLK);
	a.obj_type = (unsigned)type;

	for (unsigned i = 2; i < nwords; i++) {
		const char *v = NULL;
		int k = match_key(words[i], &v);

		if (k < 0) {
			rc = ctl_parse_qos_word(words[i], &a.qos, why, whylen);
			if (rc == -ENOENT)
				return fail(why, whylen,
					    "unknown word '%s' (expected device=DEV, ds-max=N, "
					    "read-only, socket=PATH, vduse=NAME or a limit, e.g. iops=N)",
					    quote(q, words[i]));
			if (rc)
				return rc;
			continue;
		}
		if (seen[k])
			return fail(why, whylen, "%s given twice", create_keys[k]);
		seen[k] = true;
		switch (k) {
		case KEY_DEVICE:
			rc = ctl_check_device(v, why, whylen);
			if (!rc)
				memcpy(a.device, v, strlen(v) + 1);
			break;
		case KEY_DS_MAX:
			rc = ctl_parse_ds_max(v, &a.ds_max, why, whylen);
			break;
		case KEY_READ_ONLY:
			a.read_only = true;
			break;
		case KEY_SOCKET:
			rc = ctl_check_socket_path(v, why, whylen);
			if (!rc) {
				memcpy(a.socket, v, strlen(v) + 1);
				a.transport = CTL_TRANSPORT_SOCKET;
			}
			break;
		case KEY_VDUSE:
			rc = ctl_check_vduse_name(v, why, whylen);
			if (!rc) {
				memcpy(a.vduse, v, strlen(v) + 1);
				a.transport = CTL_TRANSPORT_VDUSE;
			}
			break;
		}
		if (rc)
			return rc;
	}
	if (!seen[KEY_DEVICE])
		return fail(why, whylen, "device= is required");
	if (seen[KEY_SOCKET] && seen[KEY_VDUSE])
		return fail(why, whylen, "socket= and vduse= exclude each other");
	*out = a;
	return 0;
}

int ctl_parse_destroy(unsigned nwords, const char *const *words, struct destroy_args *out,
		      char *why, size_t whylen)
{
	const char *name;
	int rc;

	if (nwords < 1 || strcmp(words[0], "destroy") != 0)
		return fail(why, whylen, "not a destroy request");
	if (nwords != 2)
		return fail(why, whylen, "destroy takes one word: a socket path or a vduse name");
	name = words[1];
	if (name[0] == '/')
		rc = ctl_check_socket_path(name, why, whylen);
	else
		rc = ctl_check_vduse_name(name, why, whylen);
	if (rc)
		return rc;
	out->transport = name[0] == '/' ? CTL_TRANSPORT_SOCKET : CTL_TRANSPORT_VDUSE;
	memcpy(out->name, name, strlen(name) + 1);
	return 0;
}

int ctl_parse_request(unsigned nwords, const char *const *words, struct ctl_request *out,
		      char *why, size_t whylen)
{
	char q[QUOTE_SIZE];
	int rc;

	if (nwords == 0)
		return fail(why, whylen, "empty request");
	if (strcmp(words[0], "create") == 0) {
		rc = ctl_parse_create(nwords, words, &out->create, why, whylen);
		if (!rc)
			out->cmd = CTL_CMD_CREATE;
		return rc;
	}
	if (strcmp(words[0], "destroy") == 0) {
		rc = ctl_parse_destroy(nwords, words, &out->destroy, why, whylen);
		if (!rc)
			out->cmd = CTL_CMD_DESTROY;
		return rc;
	}
	if (strcmp(words[0], "qos") == 0) {
		rc = ctl_parse_qos_cmd(nwords, words, &out->qos, why, whylen);
		if (!rc)
			out->cmd = CTL_CMD_QOS;
		return rc;
	}
	static const struct {
		const char *word;
		enum ctl_cmd cmd;
	} reports[] = {
		{ "list", CTL_CMD_LIST }, { "disks", CTL_CMD_DISKS }, { "stats", CTL_CMD_STATS },
	};
	for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
		if (strcmp(words[0], reports[i].word) != 0)
			continue;
		if (nwords > 2 || (nwords == 2 && strcmp(words[1], "json") != 0))
			return fail(why, whylen, "%s takes no arguments but 'json'", reports[i].word);
		out->cmd = reports[i].cmd;
		out->json = nwords == 2;
		return 0;
	}
	return fail(why, whylen, "unknown command '%s' (expected create, destroy, qos, list, disks "
		    "or stats)", quote(q, words[0]));
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

int ctl_pack_words(const char *const *words, unsigned n, char *buf, size_t cap)
{
	size_t limit = min_size(cap, CTL_MSG_MAX), len = 0;

	if (n == 0)
		return -EINVAL;
	if (n > CTL_MAX_WORDS)
		return -E2BIG;
	/* Measure first, so that buf is untouched on failure. */
	for (unsigned i = 0; i < n; i++) {
		size_t l = strlen(words[i]);

		if (l == 0)
			return -EINVAL;
		if (l >= limit - len)
			return -E2BIG;
		len += l + 1;
	}
	len = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t l = strlen(words[i]) + 1;

		memcpy(buf + len, words[i], l);
		len += l;
	}
	return (int)len;
}

int ctl_unpack_words(const char *buf, size_t len, const char **words, unsigned max,
		     char *why, size_t whylen)
{
	const char *w[CTL_MAX_WORDS];
	unsigned n = 0, limit = max < CTL_MAX_WORDS ? max : CTL_MAX_WORDS;
	size_t off = 0;

	if (len == 0)
		return fail(why, whylen, "empty message");
	if (len > CTL_MSG_MAX)
		return fail(why, whylen, "message of %zu bytes is longer than %d", len,
			    CTL_MSG_MAX);
	if (buf[len - 1] != '\0')
		return fail(why, whylen, "message does not end with NUL");
	while (off < len) {
		/* Found: the message ends in NUL. */
		size_t l = (size_t)((const char *)memchr(buf + off, '\0', len - off) - (buf + off));

		if (l == 0)
			return fail(why, whylen, "word %u is empty", n + 1);
		if (n == limit)
			return fail(why, whylen, "more than %u words", limit);
		w[n++] = buf + off;
		off += l + 1;
	}
	memcpy(words, w, n * sizeof(w[0]));
	return (int)n;
}

int ctl_format_ok(char *buf, size_t cap, const char *body)
{
	size_t limit = min_size(cap, CTL_MSG_MAX + 1);
	size_t bl = body ? strlen(body) : 0;

	if (limit < 4 || bl > limit - 4)
		return -E2BIG;
	memcpy(buf, "ok\n", 3);
	if (bl)
		memcpy(buf + 3, body, bl);
	buf[3 + bl] = '\0';
	return (int)(3 + bl);
}

int ctl_format_error(char *buf, size_t cap, int err, const char *msg)
{
	size_t limit = min_size(cap, CTL_MSG_MAX + 1), ml = msg ? strlen(msg) : 0, hl;
	int n;

	if (err == 0 || err < -ERRNO_MAX || err > ERRNO_MAX)
		return -EINVAL;
	if (err < 0)
		err = -err;
	n = snprintf(buf, limit, "error %s %d\n", ctl_errno_name(err), err);
	if (n < 0 || (size_t)n >= limit)
		return -E2BIG;
	hl = (size_t)n;
	if (ml > limit - hl - 2)
		return -E2BIG;
	for (size_t i = 0; i < ml; i++)
		buf[hl + i] = is_control((unsigned char)msg[i]) ? '?' : msg[i];
	buf[hl + ml] = '\n';
	buf[hl + ml + 1] = '\0';
	return (int)(hl + ml + 1);
}

/* "error NAME ERRNO": NAME an upper-case errno name, ERRNO plain decimal. */
static int parse_error_line(const char *s, size_t len, int *err)
{
	char name[32], num[8];
	const char *sp = memchr(s, ' ', len);
	size_t nl, dl;
	uint64_t v;
	int e;

	if (!sp)
		return -EPROTO;
	nl = (size_t)(sp - s);
	dl = len - nl - 1;
	if (nl < 2 || nl >= sizeof(name) || s[0] != 'E' || dl == 0 || dl >= sizeof(num))
		return -EPROTO;
	for (size_t i = 0; i < nl; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return -EPROTO;
	memcpy(name, s, nl);
	name[nl] = '\0';
	memcpy(num, sp + 1, dl);
	num[dl] = '\0';
	if (parse_dec(num, 1, ERRNO_MAX, &v))
		return -EPROTO;
	/* Numbers differ between architectures; names do not. */
	e = ctl_errno_from_name(name);
	*err = -(e ? e : (int)v);
	return 0;
}

int ctl_parse_reply(const char *buf, size_t len, int *err, const char **body,
		    size_t *bodylen)
{
	bool more;
	int e, rc;
	const char *b;
	size_t bl;

	rc = ctl_parse_reply_part(buf, len, &e, &b, &bl, &more);
	if (rc || more)
		return -EPROTO;
	*err = e;
	*body = b;
	*bodylen = bl;
	return 0;
}

int ctl_parse_reply_part(const char *buf, size_t len, int *err, const char **body,
			 size_t *bodylen, bool *more)
{
	const char *nl, *rest;
	size_t ll, rl;
	bool m = false;
	int e = 0;

	if (len == 0 || len > CTL_MSG_MAX || memchr(buf, '\0', len))
		return -EPROTO;
	nl = memchr(buf, '\n', len);
	if (!nl)
		return -EPROTO;
	ll = (size_t)(nl - buf);
	rest = nl + 1;
	rl = len - ll - 1;
	if (ll == 2 && memcmp(buf, "ok", 2) == 0) {
		e = 0;
	} else if (ll == 4 && memcmp(buf, "more", 4) == 0) {
		/* An empty piece would be a part that moves nothing along. */
		if (rl == 0)
			return -EPROTO;
		m = true;
	} else if (ll > 6 && memcmp(buf, "error ", 6) == 0) {
		const char *inner;

		if (parse_error_line(buf + 6, ll - 6, &e))
			return -EPROTO;
		inner = rl ? memchr(rest, '\n', rl) : NULL;
		if (inner && inner != rest + rl - 1)
			return -EPROTO;
	} else {
		return -EPROTO;
	}
	*err = e;
	*body = rest;
	*bodylen = rl;
	*more = m;
	return 0;
}

size_t ctl_part_len(const char *body, size_t len, bool *last)
{
	const char *nl;

	*last = len <= CTL_MSG_MAX - 3;
	if (*last)
		return len;
	nl = memrchr(body, '\n', CTL_PART_MAX);
	return nl ? (size_t)(nl - body) + 1 : CTL_PART_MAX;
}

int ctl_format_part(char *buf, size_t cap, const char *piece, size_t n, bool last)
{
	size_t limit = min_size(cap, CTL_MSG_MAX + 1), hl = last ? 3 : 5;

	if (limit <= hl || n > limit - hl - 1)
		return -E2BIG;
	memcpy(buf, last ? "ok\n" : "more\n", hl);
	if (n)
		memcpy(buf + hl, piece, n);
	buf[hl + n] = '\0';
	return (int)(hl + n);
}

#define E(x) { x, #x }
static const struct {
	int value;
	const char *name;
} errno_names[] = {
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(ENOEXEC),
	E(EBADF), E(ECHILD), E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY),
	E(EEXIST), E(EXDEV), E(ENODEV), E(ENOTDIR), E(EISDIR), E(EINVAL), E(ENFILE),
	E(EMFILE), E(ENOTTY), E(ETXTBSY), E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS),
	E(EMLINK), E(EPIPE), E(EDOM), E(ERANGE), E(EDEADLK), E(ENAMETOOLONG), E(ENOLCK),
	E(ENOSYS), E(ENOTEMPTY), E(ELOOP), E(ENOMSG), E(EIDRM), E(ENODATA), E(ETIME),
	E(EPROTO), E(EBADMSG), E(EOVERFLOW), E(EILSEQ), E(ENOTSOCK), E(EDESTADDRREQ),
	E(EMSGSIZE), E(EPROTOTYPE), E(ENOPROTOOPT), E(EPROTONOSUPPORT), E(EOPNOTSUPP),
	E(EAFNOSUPPORT), E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH),
	E(ECONNABORTED), E(ECONNRESET), E(ENOBUFS), E(EISCONN), E(ENOTCONN), E(ESHUTDOWN),
	E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTUNREACH), E(EALREADY), E(EINPROGRESS),
	E(ESTALE), E(EDQUOT), E(ECANCELED), E(ENOMEDIUM), E(EMEDIUMTYPE), E(EOWNERDEAD),
	E(ENOTRECOVERABLE), E(ENOTUNIQ),
	/* Aliases last: on Linux they share a value with a name above, which
	 * ctl_errno_name gives; ctl_errno_from_name still knows them. */
	E(ENOTSUP), E(EWOULDBLOCK),
};
#undef E

const char *ctl_errno_name(int err)
{
	if (err < 0 && err >= -ERRNO_MAX)
		err = -err;
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].value == err)
			return errno_names[i].name;
	return "EUNKNOWN";
}

int ctl_errno_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (strcmp(errno_names[i].name, name) == 0)
			return errno_names[i].value;
	return 0;
}
