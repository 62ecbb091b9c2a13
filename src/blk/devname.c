#include "blk/devname.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "spec/gpt.h"

/* Identify Controller SN: bytes 23:04, an ASCII string (NVMe Base spec). */
#define SERIAL_MAX 20
_Static_assert(sizeof(((struct devname *)0)->serial) == SERIAL_MAX + 1,
	       "serial holds the 20-byte SN field plus NUL");

#define PREFIX_UUID "partuuid:"
#define PREFIX_LABEL "partlabel:"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Plain decimal only: no sign, no hex, and no leading zero, which other
 * parsers read as octal. Junk is -EINVAL even when the digits overflow. */
static int parse_dec(const char *s, size_t len, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || (s[0] == '0' && len > 1))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!is_digit(s[i]))
			return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -ERANGE;
	}
	if (v < min)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

/* The controller's serial is trimmed before it is compared, so a name with
 * a space at either end could never match: reject it rather than guess.
 * An NVMe "ASCII string" holds only the printable characters 20h..7Eh. */
static int parse_serial(const char *s, size_t len, char out[SERIAL_MAX + 1])
{
	if (len == 0 || len > SERIAL_MAX || s[0] == ' ' || s[len - 1] == ' ')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return -EINVAL;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

/* "nNSID": 0 and 0xffffffff (broadcast) name no namespace. */
static int parse_nsid(const char *s, size_t len, uint32_t *out)
{
	if (len == 0 || s[0] != 'n')
		return -EINVAL;
	return parse_dec(s + 1, len - 1, 1, 0xfffffffe, out);
}

/* GPT GUID 8-4-4-4-12 or MBR id 8-2 (disk signature, partition number). */
static int parse_uuid(const char *s, char out[37])
{
	static const char gpt_shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	static const char mbr_shape[] = "xxxxxxxx-xx";
	size_t len = strlen(s);
	const char *shape;

	if (len == sizeof(gpt_shape) - 1)
		shape = gpt_shape;
	else if (len == sizeof(mbr_shape) - 1)
		shape = mbr_shape;
	else
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int v;

		if (shape[i] == '-') {
			if (s[i] != '-')
				return -EINVAL;
			out[i] = '-';
			continue;
		}
		v = hex_value(s[i]);
		if (v < 0)
			return -EINVAL;
		out[i] = "0123456789ABCDEF"[v];
	}
	out[len] = '\0';
	return 0;
}

/* Decodes one UTF-8 sequence strictly (no overlong forms, surrogates or
 * values past U+10FFFF). Returns its length, or 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2, c &= 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, c &= 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* A GPT name holds 36 UTF-16 code units; a longer label names nothing. */
static int parse_label(const char *s, char out[PART_LABEL_MAX])
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len = 0, units = 0;

	while (u[len]) {
		uint32_t c;
		size_t n = utf8_decode(u + len, &c);

		if (n == 0)
			return -EINVAL;
		units += c >= 0x10000 ? 2 : 1;
		if (units > GPT_NAME_UNITS)
			return -EINVAL;
		len += n;
	}
	if (len == 0)
		return -EINVAL;
	_Static_assert(PART_LABEL_MAX > GPT_NAME_UNITS * 3,
		       "36 units of valid UTF-8 take at most 108 bytes");
	memcpy(out, s, len + 1);
	return 0;
}

/* The prefixes win over the serial forms: a controller whose serial is
 * "partuuid" or "partlabel" cannot be named by serial. */
static int parse(const char *s, struct devname *d)
{
	const char *colon, *prev;
	int rc;

	if (strncmp(s, PREFIX_UUID, strlen(PREFIX_UUID)) == 0) {
		d->kind = DEVNAME_UUID;
		return parse_uuid(s + strlen(PREFIX_UUID), d->uuid);
	}
	if (strncmp(s, PREFIX_LABEL, strlen(PREFIX_LABEL)) == 0) {
		d->kind = DEVNAME_PARTLABEL;
		return parse_label(s + strlen(PREFIX_LABEL), d->label);
	}
	colon = strrchr(s, ':');
	if (!colon) {
		d->kind = DEVNAME_UUID;
		return parse_uuid(s, d->uuid);
	}

	/* Serials may hold colons: take the suffixes from the right. */
	if (colon[1] == 'n') {
		d->kind = DEVNAME_NS;
		rc = parse_nsid(colon + 1, strlen(colon + 1), &d->nsid);
		if (rc)
			return rc;
		return parse_serial(s, (size_t)(colon - s), d->serial);
	}
	d->kind = DEVNAME_NS_PART;
	prev = memrchr(s, ':', (size_t)(colon - s));
	if (!prev)
		return -EINVAL;
	rc = parse_nsid(prev + 1, (size_t)(colon - prev - 1), &d->nsid);
	if (rc)
		return rc;
	rc = parse_dec(colon + 1, strlen(colon + 1), 1, UINT32_MAX, &d->partno);
	if (rc)
		return rc;
	return parse_serial(s, (size_t)(prev - s), d->serial);
}

int devname_parse(const char *s, struct devname *out)
{
	struct devname d = { 0 };
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse(s, &d);
	if (rc == 0)
		*out = d;
	return rc;
}
