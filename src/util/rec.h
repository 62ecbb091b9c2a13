/* Records: what nvme-drv reports (controllers, namespaces, partitions,
 * clients, counters), written either as escaped "kind NAME key=value"
 * text lines or as one JSON document, from the same calls. Because both
 * forms come from one sequence of calls, the JSON says exactly what the
 * text says.
 *
 *     struct rec_out o;
 *     rec_init(&o, buf, sizeof(buf), json);
 *     rec_list_begin(&o, "controllers");
 *     rec_begin(&o, "controller", "bdf", "0000:00:04.0");
 *     rec_text(&o, "serial", serial);
 *     rec_u64(&o, "mdts", 131072);
 *     rec_end(&o);
 *     rec_list_end(&o);
 *     if (rec_finish(&o) < 0) ... (it did not fit)
 *
 * Text: one line per record, indented two spaces per level of nesting:
 * the kind, the name, then key=value pairs. A value is written bare when
 * it is not empty and all of A-Z a-z 0-9 . _ : / @ + , -;
 * otherwise (and always for rec_text) in double quotes with \" \\ \n \t
 * and \xHH for the other control characters, so a value never runs into
 * the next key and a line is always one record. Bytes >= 0x80 force the
 * quotes; inside them valid UTF-8 is kept and any other byte is \xHH.
 * Booleans are yes/no.
 * JSON (RFC 8259): the document is an object; a list is a key whose value
 * is an array of objects; the record's name is its first member under
 * the key given. Strings are escaped as JSON requires; a byte sequence
 * that is not UTF-8 becomes U+FFFD, so the document is always valid.
 * Numbers are unsigned integers, booleans true/false. */
#ifndef NVD_UTIL_REC_H
#define NVD_UTIL_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_MAX_DEPTH 8

struct rec_out {
	char *buf;
	size_t cap, len;
	bool json;
	bool overflow;		/* something did not fit */
	bool line_open;		/* text: a record's line awaits its newline */
	unsigned depth;		/* records open */
	unsigned nest;		/* JSON: objects and arrays open */
	bool first[REC_MAX_DEPTH * 2 + 2];	/* JSON: no member yet at this level */
};

/* buf must stay valid until rec_finish; cap >= 1. */
void rec_init(struct rec_out *o, char *buf, size_t cap, bool json);
/* A list of records of one kind (JSON: "key":[ ... ]; text: nothing). */
void rec_list_begin(struct rec_out *o, const char *key);
void rec_list_end(struct rec_out *o);
/* A record, inside a list: kind and name start the text line; JSON has
 * the name under name_key. */
void rec_begin(struct rec_out *o, const char *kind, const char *name_key, const char *name);
void rec_end(struct rec_out *o);
/* Members of the open record (or of the document, outside any). */
void rec_str(struct rec_out *o, const char *key, const char *val);
void rec_text(struct rec_out *o, const char *key, const char *val);	/* always quoted */
void rec_u64(struct rec_out *o, const char *key, uint64_t val);
void rec_bool(struct rec_out *o, const char *key, bool val);
/* Closes the document (JSON: "}\n"). Returns its length, NUL-terminated
 * in buf, or -E2BIG when it did not fit (buf then holds a truncated,
 * still NUL-terminated prefix). */
int rec_finish(struct rec_out *o);

/* The escapes alone, for messages: writes val as rec_text would (quoted,
 * escaped) into buf, truncating; returns buf. */
const char *rec_quote(const char *val, char *buf, size_t cap);

#endif
