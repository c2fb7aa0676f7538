/*
 * strbuf.h - a growing, always NUL-terminated byte string.
 *
 * For building header values, replies and JSON. Never fails (allocation
 * failure aborts, see mxg.h). Bytes may include NUL; len counts them.
 *
 * struct strbuf sb = STRBUF_INIT;  ...  strbuf_free(&sb);
 * strbuf_steal(&sb) hands the buffer to the caller (caller frees) and
 * leaves sb empty.
 * strbuf_json_string(sb, s, len) appends s as a quoted JSON string,
 * escaping control bytes, quotes and backslashes; bytes that are not
 * valid UTF-8 become U+FFFD so the output is always valid JSON.
 */
#ifndef MXG_STRBUF_H
#define MXG_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *data;
	size_t len;
	size_t cap;
};

#define STRBUF_INIT {NULL, 0, 0}

void strbuf_append(struct strbuf *sb, const char *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void strbuf_json_string(struct strbuf *sb, const char *s, size_t len);
/* NULL-safe: a NULL s appends the JSON literal null. */
void strbuf_json_cstr(struct strbuf *sb, const char *s);
void strbuf_reset(struct strbuf *sb);
const char *strbuf_cstr(struct strbuf *sb);
char *strbuf_steal(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);

#endif
