#include "util/rec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void rec_init(struct rec_out *o, char *buf, size_t cap, bool json)
{
	*o = (struct rec_out){ .buf = buf, .cap = cap, .json = json };
	buf[0] = '\0';
	if (json) {
		o->nest = 1;
		o->first[1] = true;
		o->buf[o->len++] = '{';
		o->buf[o->len] = '\0';
	}
}

static void put(struct rec_out *o, const char *s, size_t n)
{
	/* Keep room for the NUL; once something is lost, nothing more is
	 * written, so the output is a clean prefix. */
	if (o->overflow || n >= o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void puts_(struct rec_out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes
 * there are not one (stray continuation byte, overlong form, surrogate,
 * beyond U+10FFFF, cut short). s[0] >= 0x80. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* also stops at the NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static bool bare_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("._:/@+,-", c) != NULL;
}

static void put_text_value(struct rec_out *o, const char *val, bool quote)
{
	const unsigned char *s = (const unsigned char *)val;
	char esc[8];

	if (!quote) {
		quote = !*s;
		for (const unsigned char *p = s; *p && !quote; p++)
			quote = !bare_char(*p);
	}
	if (!quote) {
		puts_(o, val);
		return;
	}
	put(o, "\"", 1);
	while (*s) {
		size_t n = *s >= 0x80 ? utf8_len(s) : 1;

		if (*s == '"' || *s == '\\') {
			esc[0] = '\\', esc[1] = (char)*s;
			put(o, esc, 2);
		} else if (*s == '\n') {
			put(o, "\\n", 2);
		} else if (*s == '\t') {
			put(o, "\\t", 2);
		} else if (*s < 0x20 || *s == 0x7f || n == 0) {
			snprintf(esc, sizeof(esc), "\\x%02x", *s);
			put(o, esc, 4);
			n = 1;
		} else {
			put(o, (const char *)s, n);
		}
		s += n;
	}
	put(o, "\"", 1);
}

static void put_json_string(struct rec_out *o, const char *val)
{
	const unsigned char *s = (const unsigned char *)val;
	char esc[8];

	put(o, "\"", 1);
	while (*s) {
		size_t n = *s >= 0x80 ? utf8_len(s) : 1;

		if (*s == '"' || *s == '\\') {
			esc[0] = '\\', esc[1] = (char)*s;
			put(o, esc, 2);
		} else if (*s == '\n') {
			put(o, "\\n", 2);
		} else if (*s == '\t') {
			put(o, "\\t", 2);
		} else if (*s == '\r') {
			put(o, "\\r", 2);
		} else if (*s < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", *s);
			put(o, esc, 6);
		} else if (n == 0) {
			put(o, "\\ufffd", 6);
			n = 1;
		} else {
			put(o, (const char *)s, n);
		}
		s += n;
	}
	put(o, "\"", 1);
}

/* JSON: the comma before all but the first member of the innermost
 * object or array. */
static void json_sep(struct rec_out *o)
{
	if (o->first[o->nest])
		o->first[o->nest] = false;
	else
		put(o, ",", 1);
}

static void json_key(struct rec_out *o, const char *key)
{
	json_sep(o);
	put_json_string(o, key);
	put(o, ":", 1);
}

static void json_open(struct rec_out *o, const char *bracket)
{
	puts_(o, bracket);
	if (o->nest + 1 >= sizeof(o->first) / sizeof(o->first[0])) {
		o->overflow = true;	/* deeper than any schema of ours */
		return;
	}
	o->first[++o->nest] = true;
}

static void json_close(struct rec_out *o, const char *bracket)
{
	puts_(o, bracket);
	if (o->nest > 1)
		o->nest--;
}

void rec_list_begin(struct rec_out *o, const char *key)
{
	if (!o->json)
		return;
	json_key(o, key);
	json_open(o, "[");
}

void rec_list_end(struct rec_out *o)
{
	if (o->json)
		json_close(o, "]");
}

void rec_begin(struct rec_out *o, const char *kind, const char *name_key, const char *name)
{
	if (o->json) {
		json_sep(o);
		json_open(o, "{");
		rec_str(o, name_key, name);
		return;
	}
	if (o->line_open)
		put(o, "\n", 1);
	for (unsigned i = 0; i < o->depth; i++)
		put(o, "  ", 2);
	puts_(o, kind);
	put(o, " ", 1);
	put_text_value(o, name, false);
	o->line_open = true;
	o->depth++;
}

void rec_end(struct rec_out *o)
{
	if (o->json) {
		json_close(o, "}");
		return;
	}
	if (o->depth)
		o->depth--;
	if (o->line_open)
		put(o, "\n", 1);
	o->line_open = false;
}

/* Text: " key=" after the record's name, or "key=" starting a line of
 * the document's own members. */
static void text_key(struct rec_out *o, const char *key)
{
	if (o->line_open)
		put(o, " ", 1);
	o->line_open = true;
	puts_(o, key);
	put(o, "=", 1);
}

static void member_str(struct rec_out *o, const char *key, const char *val, bool quote)
{
	if (o->json) {
		json_key(o, key);
		put_json_string(o, val);
	} else {
		text_key(o, key);
		put_text_value(o, val, quote);
	}
}

void rec_str(struct rec_out *o, const char *key, const char *val)
{
	member_str(o, key, val, false);
}

void rec_text(struct rec_out *o, const char *key, const char *val)
{
	member_str(o, key, val, true);
}

void rec_u64(struct rec_out *o, const char *key, uint64_t val)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, val);
	if (o->json)
		json_key(o, key);
	else
		text_key(o, key);
	puts_(o, num);
}

void rec_bool(struct rec_out *o, const char *key, bool val)
{
	if (o->json)
		json_key(o, key);
	else
		text_key(o, key);
	puts_(o, o->json ? (val ? "true" : "false") : (val ? "yes" : "no"));
}

int rec_finish(struct rec_out *o)
{
	if (o->json)
		puts_(o, "}\n");
	else if (o->line_open)
		put(o, "\n", 1);
	o->line_open = false;
	return o->overflow ? -E2BIG : (int)o->len;
}

const char *rec_quote(const char *val, char *buf, size_t cap)
{
	struct rec_out o;

	rec_init(&o, buf, cap, false);
	put_text_value(&o, val, true);
	return buf;
}
