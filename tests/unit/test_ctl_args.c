/* The control socket's framing and create()'s arguments: every accepted
 * form, each rejection with its reason, and garbage bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/args.h"

#include "check.h"

#define NW(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))

static char why[CTL_WHY_MAX];

/* A create that must fail, with `part` somewhere in its reason; *out is
 * left alone. */
static void create_bad(unsigned n, const char *const *w, const char *part, int line)
{
	struct create_args a;
	int rc;

	memset(&a, 0x5a, sizeof(a));
	why[0] = '\0';
	rc = ctl_parse_create(n, w, &a, why, sizeof(why));
	check_count++;
	if (rc != -EINVAL || !strstr(why, part) || ((unsigned char *)&a)[0] != 0x5a ||
	    strchr(why, '\n')) {
		check_failed++;
		printf("test_ctl_args.c:%d: create_bad: rc %d, why \"%s\", wanted \"%s\"\n",
		       line, rc, why, part);
		fflush(stdout);
	}
}
#define BAD(part, ...)							\
	do {								\
		const char *const w_[] = { __VA_ARGS__ };		\
		create_bad(NW(w_), w_, part, __LINE__);			\
	} while (0)

static void test_manual_examples(void)
{
	/* create(0, "ds-max=5", "device=88E59675-4DC8-469A-98E4-B7B021DC7FBE") */
	const char *const ex1[] = { "create", "0", "ds-max=5",
				    "device=88E59675-4DC8-469A-98E4-B7B021DC7FBE" };
	/* create(0, "ds-max=4", "device=1234:n1") */
	const char *const ex2[] = { "create", "0", "ds-max=4", "device=1234:n1" };
	struct create_args a;

	CHECK_EQ_INT(ctl_parse_create(NW(ex1), ex1, &a, why, sizeof(why)), 0);
	CHECK_EQ_INT(a.obj_type, CTL_OBJ_VIRTIO_BLK);
	CHECK_STREQ(a.device, "88E59675-4DC8-469A-98E4-B7B021DC7FBE");
	CHECK_EQ_INT(a.ds_max, 5);
	CHECK(!a.read_only);
	CHECK_EQ_INT(a.transport, CTL_TRANSPORT_FD);
	CHECK_STREQ(a.socket, "");
	CHECK_STREQ(a.vduse, "");

	CHECK_EQ_INT(ctl_parse_create(NW(ex2), ex2, &a, why, sizeof(why)), 0);
	CHECK_STREQ(a.device, "1234:n1");
	CHECK_EQ_INT(a.ds_max, 4);
}

static void test_create_valid(void)
{
	struct create_args a;
	const char *const min[] = { "create", "0", "device=SN1:n1" };
	const char *const all[] = { "create", "0", "read-only", "socket=/run/nvd/vda.sock",
				    "ds-max=256", "device=partlabel:root fs" };
	const char *const vd[] = { "vduse=vda-1.x_Y", "create" };
	const char *const vduse[] = { "create", "0", "device=SN1:n1:2", vd[0], "ds-max=1" };
	char dev[CTL_DEVICE_MAX + 8] = "device=", sock[CTL_SOCKET_PATH_SIZE + 8] = "socket=/";
	char name[CTL_VDUSE_NAME_MAX + 8] = "vduse=";
	const char *const longest[] = { "create", "0", dev, sock };
	const char *const longname[] = { "create", "0", "device=x", name };

	CHECK_EQ_INT(ctl_parse_create(NW(min), min, &a, why, sizeof(why)), 0);
	CHECK_EQ_INT(a.ds_max, CTL_DS_MAX_DEFAULT);
	CHECK_EQ_INT(a.ds_max, 2);
	CHECK(!a.read_only);
	CHECK_EQ_INT(a.transport, CTL_TRANSPORT_FD);

	CHECK_EQ_INT(ctl_parse_create(NW(all), all, &a, why, sizeof(why)), 0);
	CHECK(a.read_only);
	CHECK_EQ_INT(a.ds_max, 256);
	CHECK_STREQ(a.device, "partlabel:root fs");
	CHECK_EQ_INT(a.transport, CTL_TRANSPORT_SOCKET);
	CHECK_STREQ(a.socket, "/run/nvd/vda.sock");
	CHECK_STREQ(a.vduse, "");

	/* "readonly", as nvme-drv's --readonly spells it, is read-only. */
	{
		const char *const ro[] = { "create", "0", "readonly", "device=SN1:n1" };

		CHECK_EQ_INT(ctl_parse_create(NW(ro), ro, &a, why, sizeof(why)), 0);
		CHECK(a.read_only);
	}

	CHECK_EQ_INT(ctl_parse_create(NW(vduse), vduse, &a, why, sizeof(why)), 0);
	CHECK_EQ_INT(a.transport, CTL_TRANSPORT_VDUSE);
	CHECK_STREQ(a.vduse, "vda-1.x_Y");
	CHECK_STREQ(a.socket, "");
	CHECK_EQ_INT(a.ds_max, 1);

	/* Exactly at the limits: 255-byte device, 107-byte path, 31-char name. */
	memset(dev + 7, 'd', CTL_DEVICE_MAX);
	dev[7 + CTL_DEVICE_MAX] = '\0';
	memset(sock + 8, 's', CTL_SOCKET_PATH_SIZE - 2);
	sock[7 + CTL_SOCKET_PATH_SIZE - 1] = '\0';
	CHECK_EQ_INT(ctl_parse_create(NW(longest), longest, &a, why, sizeof(why)), 0);
	CHECK_EQ_INT(strlen(a.device), CTL_DEVICE_MAX);
	CHECK_EQ_INT(strlen(a.socket), CTL_SOCKET_PATH_SIZE - 1);
	memset(name + 6, 'n', CTL_VDUSE_NAME_MAX);
	name[6 + CTL_VDUSE_NAME_MAX] = '\0';
	CHECK_EQ_INT(ctl_parse_create(NW(longname), longname, &a, why, sizeof(why)), 0);
	CHECK_EQ_INT(strlen(a.vduse), CTL_VDUSE_NAME_MAX);

	/* UTF-8 in a device name is the block layer's to judge. */
	{
		const char *const utf8[] = { "create", "0", "device=partlabel:\xc3\xa9t\xc3\xa9" };
		CHECK_EQ_INT(ctl_parse_create(NW(utf8), utf8, &a, why, sizeof(why)), 0);
	}
}

static void test_create_invalid(void)
{
	char dev[CTL_DEVICE_MAX + 9] = "device=", sock[CTL_SOCKET_PATH_SIZE + 9] = "socket=/";
	char name[CTL_VDUSE_NAME_MAX + 9] = "vduse=";
	const char *const only_create[] = { "create" };

	/* The request and the object type. */
	create_bad(0, only_create, "not a create request", __LINE__);
	BAD("not a create request", "destroy", "0", "device=x");
	BAD("needs an object type", "create");
	BAD("unsupported object type 1", "create", "1", "device=x");
	BAD("unsupported object type 4294967295", "create", "4294967295", "device=x");
	BAD("object type 4294967296 is out of range", "create", "4294967296", "device=x");
	BAD("out of range", "create", "99999999999999999999999", "device=x");
	BAD("not a plain decimal", "create", "-1", "device=x");
	BAD("not a plain decimal", "create", "+0", "device=x");
	BAD("not a plain decimal", "create", "00", "device=x");
	BAD("not a plain decimal", "create", "0x0", "device=x");
	BAD("not a plain decimal", "create", " 0", "device=x");
	BAD("not a plain decimal", "create", "0 ", "device=x");
	BAD("not a plain decimal", "create", "", "device=x");
	BAD("not a plain decimal", "create", "device=x", "0");

	/* device= */
	BAD("device= is required", "create", "0");
	BAD("device= is required", "create", "0", "ds-max=3", "read-only");
	BAD("device name is empty", "create", "0", "device=");
	BAD("control character (byte 3)", "create", "0", "device=SN1\n:n1");
	BAD("control character (byte 0)", "create", "0", "device=\x7f");
	BAD("control character", "create", "0", "device=a\tb");
	memset(dev + 7, 'd', CTL_DEVICE_MAX + 1);
	dev[7 + CTL_DEVICE_MAX + 1] = '\0';
	BAD("longer than 255 bytes", "create", "0", dev);

	/* ds-max= */
	BAD("ds-max 0 is out of range 1..256", "create", "0", "device=x", "ds-max=0");
	BAD("ds-max 257 is out of range", "create", "0", "device=x", "ds-max=257");
	BAD("out of range", "create", "0", "device=x", "ds-max=18446744073709551616");
	BAD("ds-max '' is not a plain decimal", "create", "0", "device=x", "ds-max=");
	BAD("not a plain decimal", "create", "0", "device=x", "ds-max=-1");
	BAD("not a plain decimal", "create", "0", "device=x", "ds-max=05");
	BAD("not a plain decimal", "create", "0", "device=x", "ds-max=0x10");
	BAD("not a plain decimal", "create", "0", "device=x", "ds-max=4k");
	BAD("not a plain decimal", "create", "0", "device=x", "ds-max= 4");

	/* socket= */
	BAD("not absolute", "create", "0", "device=x", "socket=run/x.sock");
	BAD("not absolute", "create", "0", "device=x", "socket=");
	BAD("control character", "create", "0", "device=x", "socket=/run/a\nb");
	memset(sock + 8, 's', CTL_SOCKET_PATH_SIZE - 1);
	sock[8 + CTL_SOCKET_PATH_SIZE - 1] = '\0';	/* "/" + 107 = 108 bytes */
	BAD("longer than 107 bytes", "create", "0", "device=x", sock);

	/* vduse= */
	BAD("vduse name is empty", "create", "0", "device=x", "vduse=");
	BAD("other than A-Z", "create", "0", "device=x", "vduse=a/b");
	BAD("other than A-Z", "create", "0", "device=x", "vduse=a b");
	BAD("other than A-Z", "create", "0", "device=x", "vduse=caf\xc3\xa9");
	BAD("'.' or '..'", "create", "0", "device=x", "vduse=.");
	BAD("'.' or '..'", "create", "0", "device=x", "vduse=..");
	memset(name + 6, 'n', CTL_VDUSE_NAME_MAX + 1);
	name[6 + CTL_VDUSE_NAME_MAX + 1] = '\0';
	BAD("longer than 31 characters", "create", "0", "device=x", name);

	/* Together, twice, and unknown. */
	BAD("socket= and vduse= exclude each other", "create", "0", "device=x",
	    "socket=/a", "vduse=a");
	BAD("device= given twice", "create", "0", "device=x", "device=x");
	BAD("device= given twice", "create", "0", "device=x", "ds-max=2", "device=y");
	BAD("ds-max= given twice", "create", "0", "ds-max=2", "device=x", "ds-max=2");
	BAD("read-only given twice", "create", "0", "read-only", "device=x", "read-only");
	BAD("read-only given twice", "create", "0", "readonly", "device=x", "read-only");
	BAD("unknown word 'readonly=1'", "create", "0", "device=x", "readonly=1");
	BAD("socket= given twice", "create", "0", "device=x", "socket=/a", "socket=/b");
	BAD("vduse= given twice", "create", "0", "device=x", "vduse=a", "vduse=b");
	BAD("unknown word 'read-only=1'", "create", "0", "device=x", "read-only=1");
	BAD("unknown word 'device'", "create", "0", "device");
	BAD("unknown word 'DEVICE=x'", "create", "0", "DEVICE=x");
	BAD("unknown word ''", "create", "0", "device=x", "");
	BAD("unknown word 'ds_max=2'", "create", "0", "device=x", "ds_max=2");
	/* A peer's bytes come back escaped, so the reason stays one line. */
	BAD("unknown word 'a\\x0ab\\x1b[2J\\xff'", "create", "0", "device=x", "a\nb\x1b[2J\xff");
	/* The first problem wins, in word order. */
	BAD("unknown word 'bogus'", "create", "0", "bogus", "device=");
}

static void test_quote_truncates(void)
{
	char w[1000];
	const char *const v[] = { "create", "0", w };
	struct create_args a;

	memset(w, '\n', sizeof(w) - 1);
	w[sizeof(w) - 1] = '\0';
	CHECK_EQ_INT(ctl_parse_create(NW(v), v, &a, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "...'") != NULL);
	CHECK(strlen(why) < 160);
	/* A short or absent why buffer is not overrun. */
	CHECK_EQ_INT(ctl_parse_create(NW(v), v, &a, why, 4), -EINVAL);
	CHECK_EQ_INT(strlen(why), 3);
	CHECK_EQ_INT(ctl_parse_create(NW(v), v, &a, NULL, 0), -EINVAL);
}

static void test_value_checks(void)
{
	unsigned v = 77;

	/* As the static client options (--device, --ds-max, ...) use them. */
	CHECK_EQ_INT(ctl_parse_ds_max("1", &v, why, sizeof(why)), 0);
	CHECK_EQ_INT(v, 1);
	CHECK_EQ_INT(ctl_parse_ds_max("256", &v, why, sizeof(why)), 0);
	CHECK_EQ_INT(v, 256);
	v = 77;
	CHECK_EQ_INT(ctl_parse_ds_max("0", &v, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_ds_max("", &v, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(v, 77);
	CHECK_EQ_INT(ctl_check_device("88E59675-4DC8-469A-98E4-B7B021DC7FBE", why, sizeof(why)), 0);
	CHECK_EQ_INT(ctl_check_device("", why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_check_socket_path("/x", why, sizeof(why)), 0);
	CHECK_EQ_INT(ctl_check_socket_path("x", why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_check_vduse_name("...", why, sizeof(why)), 0);
	CHECK_EQ_INT(ctl_check_vduse_name("-", why, sizeof(why)), 0);
	CHECK_EQ_INT(ctl_check_vduse_name("..", why, sizeof(why)), -EINVAL);
}

/* socket= from a peer: only DIR/NAME, NAME one component. */
static void in_dir(const char *dir, const char *path, int want, int line)
{
	int rc;

	why[0] = '\0';
	rc = ctl_check_socket_in_dir(dir, path, why, sizeof(why));
	check_count++;
	if (rc != want || (rc == -EACCES && (!strstr(why, "socket directory") || !strstr(why, dir))) ||
	    strchr(why, '\n')) {
		check_failed++;
		printf("test_ctl_args.c:%d: in_dir(%s, %s): rc %d, why \"%s\", wanted %d\n", line,
		       dir, path, rc, why, want);
		fflush(stdout);
	}
}
#define IN_DIR(dir, path, want) in_dir(dir, path, want, __LINE__)

static void test_socket_mode(void)
{
	unsigned m = 12345;

	CHECK_EQ_INT(ctl_parse_socket_mode("0660", &m, why, sizeof(why)), 0);
	CHECK_EQ_INT(m, 0660);
	CHECK_EQ_INT(ctl_parse_socket_mode("600", &m, why, sizeof(why)), 0);
	CHECK_EQ_INT(m, 0600);
	CHECK_EQ_INT(ctl_parse_socket_mode("0", &m, why, sizeof(why)), 0);
	CHECK_EQ_INT(m, 0);
	m = 12345;
	CHECK_EQ_INT(ctl_parse_socket_mode("", &m, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_socket_mode("0668", &m, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "'0668' is not a mode: octal digits only"));
	CHECK_EQ_INT(ctl_parse_socket_mode("1777", &m, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "give at most 0777"));
	CHECK_EQ_INT(ctl_parse_socket_mode("00660", &m, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_socket_mode("+660", &m, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_socket_mode("u+rw", &m, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(m, 12345);
}

static void test_socket_in_dir(void)
{
	IN_DIR("/run/nvd", "/run/nvd/vm1.sock", 0);
	IN_DIR("/run/nvd", "/run/nvd/...", 0);
	IN_DIR("/run/nvd", "/run/nvd/a b", 0);
	IN_DIR("/tmp", "/tmp/x.sock", 0);
	IN_DIR("/", "/x.sock", 0);
	/* Outside, or through a path a peer could bend. */
	IN_DIR("/run/nvd", "/run/nvd", -EACCES);
	IN_DIR("/run/nvd", "/run/nvd/", -EACCES);
	IN_DIR("/run/nvd", "/run/nvd/.", -EACCES);
	IN_DIR("/run/nvd", "/run/nvd/..", -EACCES);
	IN_DIR("/run/nvd", "/run/nvd/../etc/x", -EACCES);
	IN_DIR("/run/nvd", "/run/nvd/sub/x.sock", -EACCES);
	IN_DIR("/run/nvd", "/run/nvd//x.sock", -EACCES);
	IN_DIR("/run/nvd", "/run/nvdx/x.sock", -EACCES);
	IN_DIR("/run/nvd", "/run/nvdx", -EACCES);
	IN_DIR("/run/nvd", "/run/x.sock", -EACCES);
	IN_DIR("/run/nvd", "/etc/passwd", -EACCES);
	IN_DIR("/run/nvd", "/run/nvd.sock", -EACCES);
	IN_DIR("/", "/", -EACCES);
	IN_DIR("/", "/tmp/x", -EACCES);
	IN_DIR("/", "//x", -EACCES);
	/* Malformed paths keep their own errno. */
	IN_DIR("/run/nvd", "run/nvd/x", -EINVAL);
	IN_DIR("/run/nvd", "/run/nvd/x\ny", -EINVAL);
	IN_DIR("/run/nvd", "", -EINVAL);
}

static void test_destroy_and_request(void)
{
	struct destroy_args d;
	struct ctl_request r;
	const char *const ds[] = { "destroy", "/run/nvd/vda.sock" };
	const char *const dv[] = { "destroy", "vda" };
	const char *const d0[] = { "destroy" };
	const char *const d3[] = { "destroy", "vda", "vdb" };
	const char *const drel[] = { "destroy", "run/x" };
	const char *const dnot[] = { "list", "vda" };
	const char *const list[] = { "list" };
	const char *const list2[] = { "list", "all" };
	const char *const lj[] = { "list", "json" };
	const char *const dj[] = { "disks", "json" };
	const char *const sj[] = { "stats" };
	const char *const sjj[] = { "stats", "json", "json" };
	const char *const cr[] = { "create", "0", "device=SN1:n1", "vduse=vda" };
	const char *const crbad[] = { "create", "0" };
	const char *const unk[] = { "status" };

	CHECK_EQ_INT(ctl_parse_destroy(NW(ds), ds, &d, why, sizeof(why)), 0);
	CHECK_EQ_INT(d.transport, CTL_TRANSPORT_SOCKET);
	CHECK_STREQ(d.name, "/run/nvd/vda.sock");
	CHECK_EQ_INT(ctl_parse_destroy(NW(dv), dv, &d, why, sizeof(why)), 0);
	CHECK_EQ_INT(d.transport, CTL_TRANSPORT_VDUSE);
	CHECK_STREQ(d.name, "vda");
	CHECK_EQ_INT(ctl_parse_destroy(NW(d0), d0, &d, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "destroy takes one word"));
	CHECK_EQ_INT(ctl_parse_destroy(NW(d3), d3, &d, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_destroy(NW(drel), drel, &d, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "vduse name"));
	CHECK_EQ_INT(ctl_parse_destroy(NW(dnot), dnot, &d, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_destroy(0, dnot, &d, why, sizeof(why)), -EINVAL);

	CHECK_EQ_INT(ctl_parse_request(NW(list), list, &r, why, sizeof(why)), 0);
	CHECK_EQ_INT(r.cmd, CTL_CMD_LIST);
	CHECK_EQ_INT(ctl_parse_request(NW(list2), list2, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "list takes no arguments but 'json'"));
	CHECK_EQ_INT(ctl_parse_request(NW(lj), lj, &r, why, sizeof(why)), 0);
	CHECK(r.cmd == CTL_CMD_LIST && r.json);
	CHECK_EQ_INT(ctl_parse_request(NW(dj), dj, &r, why, sizeof(why)), 0);
	CHECK(r.cmd == CTL_CMD_DISKS && r.json);
	CHECK_EQ_INT(ctl_parse_request(NW(sj), sj, &r, why, sizeof(why)), 0);
	CHECK(r.cmd == CTL_CMD_STATS && !r.json);
	CHECK_EQ_INT(ctl_parse_request(NW(sjj), sjj, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "stats takes no arguments but 'json'"));
	CHECK_EQ_INT(ctl_parse_request(NW(cr), cr, &r, why, sizeof(why)), 0);
	CHECK_EQ_INT(r.cmd, CTL_CMD_CREATE);
	CHECK_STREQ(r.create.vduse, "vda");
	CHECK_EQ_INT(ctl_parse_request(NW(ds), ds, &r, why, sizeof(why)), 0);
	CHECK_EQ_INT(r.cmd, CTL_CMD_DESTROY);
	CHECK_STREQ(r.destroy.name, "/run/nvd/vda.sock");
	CHECK_EQ_INT(ctl_parse_request(NW(crbad), crbad, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "device= is required"));
	CHECK_EQ_INT(ctl_parse_request(NW(unk), unk, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "unknown command 'status'"));
	CHECK_EQ_INT(ctl_parse_request(0, unk, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "empty request"));
}

static void test_pack_unpack(void)
{
	static char buf[CTL_MSG_MAX + 16];
	const char *const w[] = { "create", "0", "ds-max=4", "device=1234:n1" };
	const char *got[CTL_MAX_WORDS + 4];
	const char *const empty[] = { "list", "" };
	const char *many[CTL_MAX_WORDS + 1];
	char *big;
	int n;

	n = ctl_pack_words(w, NW(w), buf, sizeof(buf));
	CHECK_EQ_INT(n, 7 + 2 + 9 + 15);
	CHECK(memcmp(buf, "create\0" "0\0" "ds-max=4\0" "device=1234:n1", (size_t)n) == 0);
	CHECK_EQ_INT(ctl_unpack_words(buf, (size_t)n, got, CTL_MAX_WORDS, why, sizeof(why)), 4);
	for (unsigned i = 0; i < NW(w); i++)
		CHECK_STREQ(got[i], w[i]);

	/* Exactly the room needed, then one byte less. */
	CHECK_EQ_INT(ctl_pack_words(w, NW(w), buf, (size_t)n), n);
	memset(buf, 0x77, sizeof(buf));
	CHECK_EQ_INT(ctl_pack_words(w, NW(w), buf, (size_t)n - 1), -E2BIG);
	CHECK_EQ_INT((unsigned char)buf[0], 0x77);
	CHECK_EQ_INT(ctl_pack_words(w, NW(w), buf, 0), -E2BIG);
	CHECK_EQ_INT(ctl_pack_words(w, 0, buf, sizeof(buf)), -EINVAL);
	CHECK_EQ_INT(ctl_pack_words(empty, NW(empty), buf, sizeof(buf)), -EINVAL);

	for (unsigned i = 0; i < NW(many); i++)
		many[i] = "w";
	CHECK_EQ_INT(ctl_pack_words(many, CTL_MAX_WORDS, buf, sizeof(buf)), 2 * CTL_MAX_WORDS);
	CHECK_EQ_INT(ctl_unpack_words(buf, 2 * CTL_MAX_WORDS, got, CTL_MAX_WORDS + 4, why,
				      sizeof(why)), CTL_MAX_WORDS);
	CHECK_EQ_INT(ctl_pack_words(many, CTL_MAX_WORDS + 1, buf, sizeof(buf)), -E2BIG);

	/* A word as long as the protocol allows, and one byte more. */
	big = malloc(CTL_MSG_MAX + 1);
	CHECK(big != NULL);
	if (big) {
		const char *const one[] = { big };

		memset(big, 'b', CTL_MSG_MAX);
		big[CTL_MSG_MAX - 1] = '\0';
		CHECK_EQ_INT(ctl_pack_words(one, 1, buf, sizeof(buf)), CTL_MSG_MAX);
		CHECK_EQ_INT(ctl_unpack_words(buf, CTL_MSG_MAX, got, CTL_MAX_WORDS, why,
					      sizeof(why)), 1);
		big[CTL_MSG_MAX - 1] = 'b';
		big[CTL_MSG_MAX] = '\0';
		CHECK_EQ_INT(ctl_pack_words(one, 1, buf, sizeof(buf)), -E2BIG);
		free(big);
	}
}

static void unpack_bad(const char *buf, size_t len, unsigned max, const char *part, int line)
{
	const char *got[CTL_MAX_WORDS] = { NULL };
	int rc = ctl_unpack_words(buf, len, got, max, why, sizeof(why));

	check_count++;
	if (rc != -EINVAL || !strstr(why, part) || got[0] != NULL) {
		check_failed++;
		printf("test_ctl_args.c:%d: unpack_bad: rc %d, why \"%s\", wanted \"%s\"\n",
		       line, rc, why, part);
		fflush(stdout);
	}
}
#define UNPACK_BAD(lit, max, part) unpack_bad(lit, sizeof(lit) - 1, max, part, __LINE__)

static void test_unpack_invalid(void)
{
	static char buf[CTL_MSG_MAX + 2];
	const char *got[CTL_MAX_WORDS];
	char words17[64];
	size_t len = 0;

	UNPACK_BAD("", CTL_MAX_WORDS, "empty message");
	UNPACK_BAD("list", CTL_MAX_WORDS, "does not end with NUL");
	UNPACK_BAD("create\0" "0\0" "device=x", CTL_MAX_WORDS, "does not end with NUL");
	UNPACK_BAD("\0", CTL_MAX_WORDS, "word 1 is empty");
	UNPACK_BAD("create\0\0" "0\0", CTL_MAX_WORDS, "word 2 is empty");
	UNPACK_BAD("list\0\0", CTL_MAX_WORDS, "word 2 is empty");
	UNPACK_BAD("a\0b\0c\0", 2, "more than 2 words");
	UNPACK_BAD("a\0b\0c\0", 0, "more than 0 words");

	for (unsigned i = 0; i < CTL_MAX_WORDS + 1; i++) {
		words17[len++] = (char)('a' + i);
		words17[len++] = '\0';
	}
	unpack_bad(words17, len, CTL_MAX_WORDS, "more than 16 words", __LINE__);
	/* The protocol's limit holds even when the caller has room for more. */
	{
		const char *room[CTL_MAX_WORDS + 8];
		CHECK_EQ_INT(ctl_unpack_words(words17, len, room, CTL_MAX_WORDS + 8, why,
					      sizeof(why)), -EINVAL);
		CHECK_EQ_INT(ctl_unpack_words(words17, len - 2, room, CTL_MAX_WORDS + 8, why,
					      sizeof(why)), CTL_MAX_WORDS);
	}

	memset(buf, 'x', sizeof(buf));
	buf[CTL_MSG_MAX] = '\0';
	unpack_bad(buf, CTL_MSG_MAX + 1, CTL_MAX_WORDS, "longer than 65536", __LINE__);
	buf[CTL_MSG_MAX - 1] = '\0';
	CHECK_EQ_INT(ctl_unpack_words(buf, CTL_MSG_MAX, got, CTL_MAX_WORDS, why, sizeof(why)), 1);
	CHECK_EQ_INT(strlen(got[0]), CTL_MSG_MAX - 1);
}

/* Garbage bytes: whatever unpacks must parse or fail cleanly, never crash
 * (ASan watches), and every reason stays one line. */
static void test_garbage(void)
{
	static const char alphabet[] = { '\0', '\0', '\0', '=', '/', '\n', '\xff', '0', '1',
					 'a', '.', '-' };
	static const char *const tokens[] = { "create", "destroy", "list", "disks", "stats",
					      "json", "0", "device=", "ds-max=", "read-only",
					      "socket=/", "vduse=" };
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char buf[96];
	unsigned ok = 0, failed = 0, line_broken = 0;

	for (unsigned iter = 0; iter < 200000; iter++) {
		const char *w[CTL_MAX_WORDS];
		struct ctl_request r;
		size_t len = 0, want;
		int n;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		want = x % sizeof(buf);
		while (len < want) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (x % 4 == 0) {
				const char *t = tokens[(x >> 8) % NW(tokens)];
				size_t tl = strlen(t);

				if (tl > want - len)
					break;
				memcpy(buf + len, t, tl);
				len += tl;
			} else {
				buf[len++] = alphabet[(x >> 8) % sizeof(alphabet)];
			}
		}
		n = ctl_unpack_words(buf, len, w, CTL_MAX_WORDS, why, sizeof(why));
		if (n > 0) {
			if (ctl_parse_request((unsigned)n, w, &r, why, sizeof(why)) == 0) {
				ok++;
				continue;
			}
		}
		failed++;
		if (strchr(why, '\n'))
			line_broken++;
	}
	CHECK(ok > 0);
	CHECK(failed > 0);
	CHECK_EQ_INT(line_broken, 0);
}

static void test_replies(void)
{
	char buf[256];
	const char *body;
	size_t bl;
	int err, n;

	n = ctl_format_ok(buf, sizeof(buf), "fd\n");
	CHECK_EQ_INT(n, 6);
	CHECK_STREQ(buf, "ok\nfd\n");
	CHECK_EQ_INT(ctl_parse_reply(buf, (size_t)n, &err, &body, &bl), 0);
	CHECK_EQ_INT(err, 0);
	CHECK_EQ_INT(bl, 3);
	CHECK(memcmp(body, "fd\n", 3) == 0);

	n = ctl_format_ok(buf, sizeof(buf), NULL);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(ctl_parse_reply(buf, (size_t)n, &err, &body, &bl), 0);
	CHECK_EQ_INT(bl, 0);
	CHECK_EQ_INT(ctl_format_ok(buf, 7, "fd\n"), 6);
	CHECK_EQ_INT(ctl_format_ok(buf, 6, "fd\n"), -E2BIG);
	CHECK_EQ_INT(ctl_format_ok(buf, 3, NULL), -E2BIG);

	n = ctl_format_error(buf, sizeof(buf), -ENODEV, "no device SN9:n1");
	CHECK_STREQ(buf, "error ENODEV 19\nno device SN9:n1\n");
	CHECK_EQ_INT(n, (int)strlen(buf));
	CHECK_EQ_INT(ctl_parse_reply(buf, (size_t)n, &err, &body, &bl), 0);
	CHECK_EQ_INT(err, -ENODEV);
	CHECK_EQ_INT(bl, strlen("no device SN9:n1\n"));

	/* Positive errnos too; control characters cannot split the line. */
	n = ctl_format_error(buf, sizeof(buf), EBUSY, "a\nb\rc");
	CHECK_STREQ(buf, "error EBUSY 16\na?b?c\n");
	CHECK_EQ_INT(ctl_parse_reply(buf, (size_t)n, &err, &body, &bl), 0);
	CHECK_EQ_INT(err, -EBUSY);
	n = ctl_format_error(buf, sizeof(buf), -4000, NULL);
	CHECK_STREQ(buf, "error EUNKNOWN 4000\n\n");
	CHECK_EQ_INT(ctl_parse_reply(buf, (size_t)n, &err, &body, &bl), 0);
	CHECK_EQ_INT(err, -4000);
	CHECK_EQ_INT(ctl_format_error(buf, sizeof(buf), 0, "x"), -EINVAL);
	CHECK_EQ_INT(ctl_format_error(buf, sizeof(buf), -4096, "x"), -EINVAL);
	CHECK_EQ_INT(ctl_format_error(buf, sizeof(buf), INT32_MIN, "x"), -EINVAL);
	/* "error EIO 5\nx\n" is 14 bytes, and the NUL needs one more. */
	CHECK_EQ_INT(ctl_format_error(buf, 15, -EIO, "x"), 14);
	CHECK_EQ_INT(ctl_format_error(buf, 14, -EIO, "x"), -E2BIG);
}

#define REPLY_BAD(lit)							\
	do {								\
		const char *rb_;					\
		size_t rl_;						\
		int e_ = 12345;						\
		CHECK_EQ_INT(ctl_parse_reply(lit, sizeof(lit) - 1, &e_, &rb_, &rl_), -EPROTO); \
		CHECK_EQ_INT(e_, 12345);				\
	} while (0)

static void test_reply_invalid(void)
{
	static char big[CTL_MSG_MAX + 1];
	const char *body;
	size_t bl;
	int err;

	REPLY_BAD("");
	REPLY_BAD("ok");
	REPLY_BAD("ok \n");
	REPLY_BAD("OK\n");
	REPLY_BAD("okay\n");
	REPLY_BAD("ok\n\0");
	REPLY_BAD("ok\nfd\0\n");
	REPLY_BAD("error\n");
	REPLY_BAD("error \n");
	REPLY_BAD("error ENODEV\n");
	REPLY_BAD("error ENODEV \n");
	REPLY_BAD("error ENODEV 0\n");
	REPLY_BAD("error ENODEV 4096\n");
	REPLY_BAD("error ENODEV 019\n");
	REPLY_BAD("error ENODEV -19\n");
	REPLY_BAD("error ENODEV 19 \n");
	REPLY_BAD("error ENODEV  19\n");
	REPLY_BAD("error enodev 19\n");
	REPLY_BAD("error E 19\n");
	REPLY_BAD("error XNODEV 19\n");
	REPLY_BAD("error ENODEV 1234567\n");
	REPLY_BAD("error EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 19\n");
	REPLY_BAD("error ENODEV 19\ntwo\nlines\n");
	REPLY_BAD("error ENODEV 19\n\n\n");
	REPLY_BAD("error ENODEV 19");

	/* The name wins over the number, which differs between architectures. */
	CHECK_EQ_INT(ctl_parse_reply("error ENODEV 99\nx", 17, &err, &body, &bl), 0);
	CHECK_EQ_INT(err, -ENODEV);
	CHECK_EQ_INT(bl, 1);
	CHECK_EQ_INT(ctl_parse_reply("error EFUTURE 99\n", 17, &err, &body, &bl), 0);
	CHECK_EQ_INT(err, -99);

	memcpy(big, "ok\n", 3);
	memset(big + 3, 'x', sizeof(big) - 3);
	CHECK_EQ_INT(ctl_parse_reply(big, CTL_MSG_MAX, &err, &body, &bl), 0);
	CHECK_EQ_INT(bl, CTL_MSG_MAX - 3);
	CHECK_EQ_INT(ctl_parse_reply(big, CTL_MSG_MAX + 1, &err, &body, &bl), -EPROTO);
}

/* The parts of a long report (spec/ctl_proto.h): "more\n" and a piece
 * that is not empty, then an ordinary reply; ctl_parse_reply, which knows
 * one message only, refuses a part. */
static void test_reply_parts(void)
{
	static char big[CTL_MSG_MAX + 1], out[CTL_MSG_MAX + 1];
	const char *body;
	size_t bl, n;
	bool more, last;
	int err;

	CHECK_EQ_INT(ctl_parse_reply_part("more\nab", 7, &err, &body, &bl, &more), 0);
	CHECK(more);
	CHECK_EQ_INT(err, 0);
	CHECK_EQ_INT(bl, 2);
	CHECK(memcmp(body, "ab", 2) == 0);
	CHECK_EQ_INT(ctl_parse_reply_part("ok\nab", 5, &err, &body, &bl, &more), 0);
	CHECK(!more);
	CHECK_EQ_INT(ctl_parse_reply_part("error EIO 5\nx\n", 14, &err, &body, &bl, &more), 0);
	CHECK(!more);
	CHECK_EQ_INT(err, -EIO);
	CHECK_EQ_INT(ctl_parse_reply_part("more\n", 5, &err, &body, &bl, &more), -EPROTO);
	CHECK_EQ_INT(ctl_parse_reply_part("more", 4, &err, &body, &bl, &more), -EPROTO);
	CHECK_EQ_INT(ctl_parse_reply_part("MORE\nx", 6, &err, &body, &bl, &more), -EPROTO);
	CHECK_EQ_INT(ctl_parse_reply_part("more \nx", 7, &err, &body, &bl, &more), -EPROTO);
	CHECK_EQ_INT(ctl_parse_reply_part("more\nx\0", 7, &err, &body, &bl, &more), -EPROTO);
	REPLY_BAD("more\nab");

	/* Short: one "ok" message, as before parts existed. */
	n = ctl_part_len("a\nb\n", 4, &last);
	CHECK_EQ_INT(n, 4);
	CHECK(last);
	memset(big, 'x', sizeof(big));
	CHECK_EQ_INT(ctl_part_len(big, CTL_MSG_MAX - 3, &last), CTL_MSG_MAX - 3);
	CHECK(last);
	/* One byte more: a full part (no newline to end at), then the rest. */
	CHECK_EQ_INT(ctl_part_len(big, CTL_MSG_MAX - 2, &last), CTL_PART_MAX);
	CHECK(!last);
	/* With lines: the part ends after the last newline it holds, and a
	 * newline just past it does not count. */
	big[99] = '\n';
	big[CTL_PART_MAX] = '\n';
	CHECK_EQ_INT(ctl_part_len(big, sizeof(big), &last), 100);
	CHECK(!last);
	big[CTL_PART_MAX - 1] = '\n';
	CHECK_EQ_INT(ctl_part_len(big, sizeof(big), &last), CTL_PART_MAX);

	CHECK_EQ_INT(ctl_format_part(out, sizeof(out), big, CTL_PART_MAX, false), CTL_MSG_MAX);
	CHECK(memcmp(out, "more\n", 5) == 0);
	CHECK_EQ_INT(ctl_parse_reply_part(out, CTL_MSG_MAX, &err, &body, &bl, &more), 0);
	CHECK(more && bl == CTL_PART_MAX && body == out + 5);
	CHECK_EQ_INT(ctl_format_part(out, sizeof(out), big, CTL_PART_MAX + 1, false), -E2BIG);
	CHECK_EQ_INT(ctl_format_part(out, sizeof(out), big, CTL_MSG_MAX - 3, true), CTL_MSG_MAX);
	CHECK_EQ_INT(ctl_format_part(out, sizeof(out), big, CTL_MSG_MAX - 2, true), -E2BIG);
	CHECK_EQ_INT(ctl_format_part(out, 9, "abc", 3, false), 8);
	CHECK_STREQ(out, "more\nabc");
	CHECK_EQ_INT(ctl_format_part(out, 8, "abc", 3, false), -E2BIG);
	/* The last part is the reply ctl_format_ok makes. */
	CHECK_EQ_INT(ctl_format_part(out, sizeof(out), "x\n", 2, true), 5);
	CHECK_STREQ(out, "ok\nx\n");
	CHECK_EQ_INT(ctl_format_part(out, sizeof(out), NULL, 0, true), 3);
	CHECK_STREQ(out, "ok\n");
}

static void test_errno_names(void)
{
	static const int table[] = { ENODEV, EBUSY, EINVAL, ENOSPC, EEXIST, ENOENT, EPERM,
				     EACCES, ENOMEM, EIO, ETIMEDOUT, EPROTO, E2BIG, EROFS };

	CHECK_STREQ(ctl_errno_name(-ENODEV), "ENODEV");
	CHECK_STREQ(ctl_errno_name(ENODEV), "ENODEV");
	CHECK_STREQ(ctl_errno_name(-EBUSY), "EBUSY");
	CHECK_STREQ(ctl_errno_name(-EINVAL), "EINVAL");
	CHECK_STREQ(ctl_errno_name(-ETIMEDOUT), "ETIMEDOUT");
	CHECK_STREQ(ctl_errno_name(EOPNOTSUPP), "EOPNOTSUPP");
	CHECK_STREQ(ctl_errno_name(EAGAIN), "EAGAIN");
	CHECK_STREQ(ctl_errno_name(0), "EUNKNOWN");
	CHECK_STREQ(ctl_errno_name(4000), "EUNKNOWN");
	CHECK_STREQ(ctl_errno_name(INT32_MIN), "EUNKNOWN");
	for (unsigned i = 0; i < NW(table); i++)
		CHECK_EQ_INT(ctl_errno_from_name(ctl_errno_name(-table[i])), table[i]);
	CHECK_EQ_INT(ctl_errno_from_name("ENOTSUP"), ENOTSUP);
	CHECK_EQ_INT(ctl_errno_from_name("EWOULDBLOCK"), EAGAIN);
	CHECK_EQ_INT(ctl_errno_from_name("EUNKNOWN"), 0);
	CHECK_EQ_INT(ctl_errno_from_name("enodev"), 0);
	CHECK_EQ_INT(ctl_errno_from_name(""), 0);
}

/* QoS words: in create, in --qos lists, and the qos command. */
static void test_qos(void)
{
	const char *const cr[] = { "create", "0", "device=SN1:n1", "iops=500", "wbps=10M",
				   "riops=0", "read-only" };
	const char *const q1[] = { "qos", "/run/nvd/vm1.sock", "iops=0", "bps=1G" };
	const char *const q2[] = { "qos", "vduse:vd0", "riops=100", "wiops=200", "rbps=4096",
				   "wbps=1T" };
	const char *const qnone[] = { "qos", "vd0" };
	const char *const qunk[] = { "qos", "vd0", "ops=5" };
	const char *const qctl[] = { "qos", "v\nd", "iops=5" };
	const char *const qtwice[] = { "qos", "vd0", "iops=5", "iops=6" };
	struct create_args a;
	struct ctl_request r;
	struct ctl_qos q;

	CHECK_EQ_INT(ctl_parse_create(NW(cr), cr, &a, why, sizeof(why)), 0);
	CHECK_EQ_INT(a.qos.set, (1u << CTL_QOS_IOPS) | (1u << CTL_QOS_WBPS) | (1u << CTL_QOS_RIOPS));
	CHECK_EQ_INT(a.qos.v[CTL_QOS_IOPS], 500);
	CHECK_EQ_INT(a.qos.v[CTL_QOS_WBPS], 10 << 20);
	CHECK_EQ_INT(a.qos.v[CTL_QOS_RIOPS], 0);
	CHECK_EQ_INT(a.qos.v[CTL_QOS_BPS], 0);
	CHECK(a.read_only);

	CHECK_EQ_INT(ctl_parse_request(NW(q1), q1, &r, why, sizeof(why)), 0);
	CHECK_EQ_INT(r.cmd, CTL_CMD_QOS);
	CHECK_STREQ(r.qos.name, "/run/nvd/vm1.sock");
	CHECK_EQ_INT(r.qos.qos.set, (1u << CTL_QOS_IOPS) | (1u << CTL_QOS_BPS));
	CHECK_EQ_INT(r.qos.qos.v[CTL_QOS_BPS], 1 << 30);
	CHECK_EQ_INT(ctl_parse_request(NW(q2), q2, &r, why, sizeof(why)), 0);
	CHECK_STREQ(r.qos.name, "vduse:vd0");
	CHECK_EQ_INT(r.qos.qos.v[CTL_QOS_RIOPS], 100);
	CHECK_EQ_INT(r.qos.qos.v[CTL_QOS_WIOPS], 200);
	CHECK_EQ_INT(r.qos.qos.v[CTL_QOS_RBPS], 4096);
	CHECK_EQ_INT(r.qos.qos.v[CTL_QOS_WBPS], 1ull << 40);
	CHECK_EQ_INT(ctl_parse_request(NW(qnone), qnone, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "at least one limit"));
	CHECK_EQ_INT(ctl_parse_request(NW(qunk), qunk, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "unknown word 'ops=5'"));
	CHECK_EQ_INT(ctl_parse_request(NW(qctl), qctl, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "control character"));
	CHECK_EQ_INT(ctl_parse_request(NW(qtwice), qtwice, &r, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "iops= given twice"));

	/* Bounds and forms: EINVAL with a reason for each. */
	BAD("iops 100000001 is out of range", "create", "0", "device=a", "iops=100000001");
	BAD("bps 4095 is out of range", "create", "0", "device=a", "bps=4095");
	BAD("wbps 2T is out of range", "create", "0", "device=a", "wbps=2T");
	BAD("rbps 99999999999999999999999 is out of range", "create", "0", "device=a",
	    "rbps=99999999999999999999999");
	BAD("bps 17179869184G is out of range", "create", "0", "device=a", "bps=17179869184G");
	BAD("iops '5K' is not a plain decimal", "create", "0", "device=a", "iops=5K");
	BAD("iops '-5' is not a plain decimal", "create", "0", "device=a", "iops=-5");
	BAD("iops '0x10' is not a plain decimal", "create", "0", "device=a", "iops=0x10");
	BAD("iops '' is not a plain decimal", "create", "0", "device=a", "iops=");
	BAD("bps 'K' is not a plain decimal", "create", "0", "device=a", "bps=K");
	BAD("bps '10k' is not a plain decimal", "create", "0", "device=a", "bps=10k");
	BAD("iops= given twice", "create", "0", "device=a", "iops=1", "iops=2");
	BAD("unknown word 'IOPS=1'", "create", "0", "device=a", "IOPS=1");

	CHECK_EQ_INT(ctl_parse_qos_list("iops=500,bps=10M", &q, why, sizeof(why)), 0);
	CHECK_EQ_INT(q.v[CTL_QOS_IOPS], 500);
	CHECK_EQ_INT(q.v[CTL_QOS_BPS], 10 << 20);
	CHECK_EQ_INT(ctl_parse_qos_list("wiops=1", &q, why, sizeof(why)), 0);
	CHECK_EQ_INT(q.set, 1u << CTL_QOS_WIOPS);
	CHECK_EQ_INT(ctl_parse_qos_list("", &q, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "no limits"));
	CHECK_EQ_INT(ctl_parse_qos_list("iops=5,,bps=8K", &q, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "empty limit"));
	CHECK_EQ_INT(ctl_parse_qos_list("iops=5,", &q, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_qos_list("iops=5,device=x", &q, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "unknown limit 'device=x'"));
	CHECK_EQ_INT(ctl_parse_qos_list("iops", &q, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(ctl_parse_qos_list("iops=1,iops=1", &q, why, sizeof(why)), -EINVAL);
	CHECK_EQ_INT(q.set, 1u << CTL_QOS_WIOPS);	/* untouched on failure */
}

int main(void)
{
	test_manual_examples();
	test_create_valid();
	test_create_invalid();
	test_quote_truncates();
	test_value_checks();
	test_socket_mode();
	test_socket_in_dir();
	test_destroy_and_request();
	test_pack_unpack();
	test_unpack_invalid();
	test_garbage();
	test_replies();
	test_reply_invalid();
	test_reply_parts();
	test_errno_names();
	test_qos();
	return check_report("ctl_args");
}
