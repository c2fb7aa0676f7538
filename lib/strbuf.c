#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxg.h"

static void
strbuf_reserve(struct strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;

	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap *= 2;
	sb->data = mxg_realloc(sb->data, cap);
	sb->cap = cap;
}

void
strbuf_append(struct strbuf *sb, const char *data, size_t len)
{
	strbuf_reserve(sb, len);
	if (len > 0)
		memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
}

void
strbuf_puts(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s));
}

void
strbuf_putc(struct strbuf *sb, char c)
{
	strbuf_append(sb, &c, 1);
}

void
strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	char probe[1];

	/* Measure first; a real one-byte buffer rather than NULL keeps
	 * GCC 12's format-truncation check quiet under UBSan. */
	va_start(ap, fmt);
	n = vsnprintf(probe, sizeof(probe), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	strbuf_reserve(sb, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most left bytes), or 0. */
static size_t
utf8_sequence_length(const unsigned char *s, size_t left)
{
	size_t n;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void
strbuf_json_string(struct strbuf *sb, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	strbuf_putc(sb, '"');
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n;

		if (c == '"' || c == '\\') {
			strbuf_putc(sb, '\\');
			strbuf_putc(sb, (char)c);
			i++;
		} else if (c == '\n') {
			strbuf_puts(sb, "\\n");
			i++;
		} else if (c == '\r') {
			strbuf_puts(sb, "\\r");
			i++;
		} else if (c == '\t') {
			strbuf_puts(sb, "\\t");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			strbuf_printf(sb, "\\u%04x", c);
			i++;
		} else if ((n = utf8_sequence_length(p + i, len - i)) > 0) {
			strbuf_append(sb, (const char *)p + i, n);
			i += n;
		} else {
			strbuf_puts(sb, "\\ufffd");
			i++;
		}
	}
	strbuf_putc(sb, '"');
}

void
strbuf_json_cstr(struct strbuf *sb, const char *s)
{
	if (s == NULL)
		strbuf_puts(sb, "null");
	else
		strbuf_json_string(sb, s, strlen(s));
}

void
strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->data != NULL)
		sb->data[0] = '\0';
}

const char *
strbuf_cstr(struct strbuf *sb)
{
	if (sb->data == NULL)
		strbuf_reserve(sb, 0), sb->data[0] = '\0';
	return sb->data;
}

char *
strbuf_steal(struct strbuf *sb)
{
	char *data = (char *)strbuf_cstr(sb);

	sb->data = NULL;
	sb->len = sb->cap = 0;
	return data;
}

void
strbuf_free(struct strbuf *sb)
{

	if (sb->data != NULL)
		free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}
