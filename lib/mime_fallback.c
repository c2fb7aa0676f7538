/* TEMPORARY: weak stand-ins until lib/mime.c lands (same session). */
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "mxg.h"

__attribute__((weak)) void
mime_init(void)
{
}

__attribute__((weak)) struct mime_content *
mime_parse(const char *data, size_t len, const struct mime_limits *limits)
{
	struct mime_content *c = mxg_calloc(1, sizeof(*c));

	(void)limits;
	c->text = mxg_strndup(data, len);
	c->text_len = len;
	return c;
}

__attribute__((weak)) void
mime_content_free(struct mime_content *c)
{
	if (c == NULL)
		return;
	free(c->text);
	free(c);
}

__attribute__((weak)) char *
mime_decode_header(const char *value, size_t len)
{
	return mxg_strndup(value, len);
}
