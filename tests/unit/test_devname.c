/* Device names: every accepted form, and a clear rejection of the rest. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "blk/devname.h"

#include "check.h"

static void test_ns(void)
{
	struct devname d;

	CHECK_EQ_INT(devname_parse("SN123:n1", &d), 0);
	CHECK_EQ_INT(d.kind, DEVNAME_NS);
	CHECK_STREQ(d.serial, "SN123");
	CHECK_EQ_INT(d.nsid, 1);

	CHECK_EQ_INT(devname_parse("SN123:n4294967294", &d), 0);
	CHECK_EQ_INT(d.nsid, 0xfffffffe);

	/* Serials may hold spaces and colons; the suffix is taken from the right. */
	CHECK_EQ_INT(devname_parse("QEMU SN:01:n2", &d), 0);
	CHECK_EQ_INT(d.kind, DEVNAME_NS);
	CHECK_STREQ(d.serial, "QEMU SN:01");
	CHECK_EQ_INT(d.nsid, 2);
	CHECK_EQ_INT(devname_parse("A:n1:n2", &d), 0);
	CHECK_STREQ(d.serial, "A:n1");
	CHECK_EQ_INT(d.nsid, 2);

	/* 20 characters, the size of the SN field. */
	CHECK_EQ_INT(devname_parse("12345678901234567890:n7", &d), 0);
	CHECK_STREQ(d.serial, "12345678901234567890");
}

static void test_ns_part(void)
{
	struct devname d;

	CHECK_EQ_INT(devname_parse("SN123:n1:2", &d), 0);
	CHECK_EQ_INT(d.kind, DEVNAME_NS_PART);
	CHECK_STREQ(d.serial, "SN123");
	CHECK_EQ_INT(d.nsid, 1);
	CHECK_EQ_INT(d.partno, 2);

	CHECK_EQ_INT(devname_parse("a:b:n3:4294967295", &d), 0);
	CHECK_STREQ(d.serial, "a:b");
	CHECK_EQ_INT(d.nsid, 3);
	CHECK_EQ_INT(d.partno, 4294967295u);
}

static void test_uuid(void)
{
	struct devname d;

	CHECK_EQ_INT(devname_parse("0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", &d), 0);
	CHECK_EQ_INT(d.kind, DEVNAME_UUID);
	CHECK_STREQ(d.uuid, "0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9");

	CHECK_EQ_INT(devname_parse("partuuid:0A1B2C3D-4e5f-6071-8293-A4B5C6D7E8F9", &d), 0);
	CHECK_EQ_INT(d.kind, DEVNAME_UUID);
	CHECK_STREQ(d.uuid, "0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9");

	/* The MBR form, as Linux prints it. */
	CHECK_EQ_INT(devname_parse("1a2b3c4d-05", &d), 0);
	CHECK_STREQ(d.uuid, "1A2B3C4D-05");
	CHECK_EQ_INT(devname_parse("partuuid:1A2B3C4D-ff", &d), 0);
	CHECK_STREQ(d.uuid, "1A2B3C4D-FF");
}

static void test_label(void)
{
	struct devname d;

	CHECK_EQ_INT(devname_parse("partlabel:root", &d), 0);
	CHECK_EQ_INT(d.kind, DEVNAME_PARTLABEL);
	CHECK_STREQ(d.label, "root");

	/* Anything after the prefix is the label, colons included. */
	CHECK_EQ_INT(devname_parse("partlabel:a:n1", &d), 0);
	CHECK_STREQ(d.label, "a:n1");

	CHECK_EQ_INT(devname_parse("partlabel:café ünï 日本", &d), 0);
	CHECK_STREQ(d.label, "café ünï 日本");

	/* 36 UTF-16 units: 36 BMP characters (108 bytes), or 18 that need a
	 * surrogate pair each. */
	char buf[200] = "partlabel:";
	for (int i = 0; i < 36; i++)
		strcat(buf, "€");
	CHECK_EQ_INT(devname_parse(buf, &d), 0);
	CHECK_EQ_INT(strlen(d.label), 108);
	strcat(buf, "x");
	CHECK_EQ_INT(devname_parse(buf, &d), -EINVAL);

	buf[strlen("partlabel:")] = '\0';
	for (int i = 0; i < 18; i++)
		strcat(buf, "😀");
	CHECK_EQ_INT(devname_parse(buf, &d), 0);
	strcat(buf, "x");
	CHECK_EQ_INT(devname_parse(buf, &d), -EINVAL);

	CHECK_EQ_INT(devname_parse("partlabel:abcdefghijklmnopqrstuvwxyz0123456789", &d), 0);
	CHECK_EQ_INT(devname_parse("partlabel:abcdefghijklmnopqrstuvwxyz0123456789a", &d),
		     -EINVAL);
}

static void test_rejected(void)
{
	static const struct {
		const char *s;
		int rc;
	} cases[] = {
		{ "", -EINVAL },
		{ "nvme0n1", -EINVAL },
		{ ":n1", -EINVAL },			/* empty serial */
		{ ":n1:1", -EINVAL },
		{ " SN:n1", -EINVAL },			/* spaces the trimmed serial lacks */
		{ "SN :n1", -EINVAL },
		{ "   :n1", -EINVAL },
		{ "S\tN:n1", -EINVAL },			/* not printable ASCII */
		{ "S\xc3\xa9:n1", -EINVAL },
		{ "123456789012345678901:n1", -EINVAL },	/* 21 characters */
		{ "SN:n0", -ERANGE },
		{ "SN:n4294967295", -ERANGE },		/* broadcast */
		{ "SN:n4294967296", -ERANGE },
		{ "SN:n99999999999999999999999", -ERANGE },
		{ "SN:n", -EINVAL },
		{ "SN:", -EINVAL },
		{ "SN:1", -EINVAL },			/* no "n" */
		{ "SN:N1", -EINVAL },
		{ "SN:n1x", -EINVAL },			/* junk after numbers */
		{ "SN:n1 ", -EINVAL },
		{ "SN:n 1", -EINVAL },
		{ "SN:n+1", -EINVAL },
		{ "SN:n-1", -EINVAL },
		{ "SN:n0x1", -EINVAL },
		{ "SN:n01", -EINVAL },			/* leading zero */
		{ "SN:n99999999999999999999x", -EINVAL },
		{ "SN:n1:0", -ERANGE },			/* partition 0 */
		{ "SN:n1:4294967296", -ERANGE },
		{ "SN:n1:2x", -EINVAL },
		{ "SN:n1:", -EINVAL },
		{ "SN:n1:02", -EINVAL },
		{ "SN:n0:1", -ERANGE },
		{ "SN:x1:1", -EINVAL },
		{ "n1:1", -EINVAL },			/* no serial at all */
		{ "SN:n1:n", -EINVAL },
		{ "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f", -EINVAL },	/* short */
		{ "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9a", -EINVAL },
		{ "0a1b2c3d-4e5f-6071-8293a-4b5c6d7e8f9", -EINVAL },	/* dash moved */
		{ "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8fg", -EINVAL },
		{ "{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}", -EINVAL },
		{ "0a1b2c3d4e5f607182 93a4b5c6d7e8f9", -EINVAL },
		{ "1a2b3c4d-5", -EINVAL },
		{ "1a2b3c4d-005", -EINVAL },
		{ "1a2b3c4-005", -EINVAL },
		{ "1a2b3c4d_05", -EINVAL },
		{ "partuuid:", -EINVAL },
		{ "partuuid:SN:n1", -EINVAL },
		{ "PARTUUID:1a2b3c4d-05", -EINVAL },
		{ "partlabel:", -EINVAL },
		{ "partlabel:\xff", -EINVAL },		/* invalid UTF-8 */
		{ "partlabel:\xc0\xaf", -EINVAL },	/* overlong "/" */
		{ "partlabel:\xed\xa0\x80", -EINVAL },	/* encoded surrogate */
		{ "partlabel:\xf4\x90\x80\x80", -EINVAL },	/* past U+10FFFF */
		{ "partlabel:ab\xe2\x82", -EINVAL },	/* truncated */
	};
	struct devname d, before;

	memset(&d, 0x5a, sizeof(d));
	before = d;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = devname_parse(cases[i].s, &d);

		CHECK_EQ_INT(rc, cases[i].rc);
		if (rc != cases[i].rc)
			printf("  (for \"%s\")\n", cases[i].s);
	}
	CHECK(memcmp(&d, &before, sizeof(d)) == 0);	/* untouched on error */
	CHECK_EQ_INT(devname_parse(NULL, &d), -EINVAL);
}

int main(void)
{
	test_ns();
	test_ns_part();
	test_uuid();
	test_label();
	test_rejected();
	return check_report("test_devname");
}
