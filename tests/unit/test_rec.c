/* Records (util/rec.h): text escaping that keeps one value one token and
 * one record one line, JSON that is valid whatever bytes a disk or a peer
 * put into a label, and the two forms of one document side by side. */
#include <errno.h>
#include <string.h>

#include "util/rec.h"

#include "check.h"

static char buf[4096];

static const char *text1(const char *key, const char *val, bool quoted)
{
	struct rec_out o;

	rec_init(&o, buf, sizeof(buf), false);
	if (quoted)
		rec_text(&o, key, val);
	else
		rec_str(&o, key, val);
	CHECK(rec_finish(&o) > 0);
	return buf;
}

static const char *json1(const char *val)
{
	struct rec_out o;

	rec_init(&o, buf, sizeof(buf), true);
	rec_str(&o, "v", val);
	CHECK(rec_finish(&o) > 0);
	return buf;
}

static void test_text_escapes(void)
{
	/* The two values of issue 10 that could be read two ways. */
	CHECK_STREQ(text1("label", "vm\"1", true), "label=\"vm\\\"1\"\n");
	CHECK_STREQ(text1("device", "partlabel:scratch disk", false),
		    "device=\"partlabel:scratch disk\"\n");
	CHECK_STREQ(text1("device", "SN1:n1:2", false), "device=SN1:n1:2\n");
	CHECK_STREQ(text1("socket", "/run/nvd/a-b_c.sock", false), "socket=/run/nvd/a-b_c.sock\n");
	CHECK_STREQ(text1("k", "", false), "k=\"\"\n");
	CHECK_STREQ(text1("k", "a=b", false), "k=\"a=b\"\n");
	CHECK_STREQ(text1("k", "back\\slash", false), "k=\"back\\\\slash\"\n");
	CHECK_STREQ(text1("k", "two\nlines\tand\x01\x7f", false),
		    "k=\"two\\nlines\\tand\\x01\\x7f\"\n");
	/* UTF-8 is kept (quoted), a broken sequence is not. */
	CHECK_STREQ(text1("k", "caf\xc3\xa9", false), "k=\"caf\xc3\xa9\"\n");
	CHECK_STREQ(text1("k", "bad\xc3(", false), "k=\"bad\\xc3(\"\n");
	CHECK_STREQ(text1("k", "\xc0\xaf", false), "k=\"\\xc0\\xaf\"\n");	/* overlong '/' */
}

static void test_json_escapes(void)
{
	CHECK_STREQ(json1("vm\"1"), "{\"v\":\"vm\\\"1\"}\n");
	CHECK_STREQ(json1("a\\b/c"), "{\"v\":\"a\\\\b/c\"}\n");
	CHECK_STREQ(json1("\n\r\t\x01\x1f"), "{\"v\":\"\\n\\r\\t\\u0001\\u001f\"}\n");
	CHECK_STREQ(json1("\x7f"), "{\"v\":\"\x7f\"}\n");	/* legal in JSON */
	CHECK_STREQ(json1("caf\xc3\xa9 \xf0\x9f\x92\xbe"), "{\"v\":\"caf\xc3\xa9 \xf0\x9f\x92\xbe\"}\n");
	/* Not UTF-8: stray continuation, cut short, surrogate, too large. */
	CHECK_STREQ(json1("\x80"), "{\"v\":\"\\ufffd\"}\n");
	CHECK_STREQ(json1("\xe2\x82"), "{\"v\":\"\\ufffd\\ufffd\"}\n");
	CHECK_STREQ(json1("\xed\xa0\x80"), "{\"v\":\"\\ufffd\\ufffd\\ufffd\"}\n");
	CHECK_STREQ(json1("\xf4\x90\x80\x80"), "{\"v\":\"\\ufffd\\ufffd\\ufffd\\ufffd\"}\n");
}

/* One nested document in both forms. */
static void doc(bool json)
{
	struct rec_out o;

	rec_init(&o, buf, sizeof(buf), json);
	rec_list_begin(&o, "controllers");
	rec_begin(&o, "controller", "bdf", "0000:00:04.0");
	rec_text(&o, "serial", "SN 1");
	rec_u64(&o, "queues", 2);
	rec_list_begin(&o, "namespaces");
	rec_begin(&o, "namespace", "name", "SN 1:n1");
	rec_bool(&o, "readonly", false);
	rec_list_begin(&o, "partitions");
	rec_begin(&o, "partition", "uuid", "u1");
	rec_end(&o);
	rec_begin(&o, "partition", "uuid", "u2");
	rec_u64(&o, "size", 18446744073709551615ull);
	rec_end(&o);
	rec_list_end(&o);
	rec_end(&o);
	rec_list_end(&o);
	rec_end(&o);
	rec_begin(&o, "controller", "bdf", "0000:00:05.0");
	rec_list_begin(&o, "namespaces");
	rec_list_end(&o);
	rec_end(&o);
	rec_list_end(&o);
	CHECK(rec_finish(&o) > 0);
}

static void test_document(void)
{
	doc(false);
	CHECK_STREQ(buf, "controller 0000:00:04.0 serial=\"SN 1\" queues=2\n"
			 "  namespace \"SN 1:n1\" readonly=no\n"
			 "    partition u1\n"
			 "    partition u2 size=18446744073709551615\n"
			 "controller 0000:00:05.0\n");
	doc(true);
	CHECK_STREQ(buf, "{\"controllers\":[{\"bdf\":\"0000:00:04.0\",\"serial\":\"SN 1\","
			 "\"queues\":2,\"namespaces\":[{\"name\":\"SN 1:n1\",\"readonly\":false,"
			 "\"partitions\":[{\"uuid\":\"u1\"},{\"uuid\":\"u2\","
			 "\"size\":18446744073709551615}]}]},{\"bdf\":\"0000:00:05.0\","
			 "\"namespaces\":[]}]}\n");
	/* An empty document. */
	{
		struct rec_out o;

		rec_init(&o, buf, sizeof(buf), true);
		CHECK_EQ_INT(rec_finish(&o), 3);
		CHECK_STREQ(buf, "{}\n");
		rec_init(&o, buf, sizeof(buf), false);
		CHECK_EQ_INT(rec_finish(&o), 0);
	}
}

static void test_overflow(void)
{
	char small[16];
	struct rec_out o;

	rec_init(&o, small, sizeof(small), true);
	rec_str(&o, "key", "a value too long for sixteen bytes");
	CHECK_EQ_INT(rec_finish(&o), -E2BIG);
	CHECK(strlen(small) < sizeof(small));
	CHECK(strncmp(small, "{\"key\":", 7) == 0);	/* a prefix of what was meant */
	CHECK_STREQ(rec_quote("a\"b", small, sizeof(small)), "\"a\\\"b\"");
	CHECK(strlen(rec_quote("0123456789abcdefghij", small, sizeof(small))) < sizeof(small));
}

int main(void)
{
	test_text_escapes();
	test_json_escapes();
	test_document();
	test_overflow();
	return check_report("rec");
}
