/*
 * libFuzzer target: any byte string as a message through the MIME walk
 * (small limits, so that depth, part and URI caps are reached), and its
 * first bytes as a header value through mime_decode_header. Whatever
 * comes in, the text must be valid UTF-8 and NUL-terminated, the caps
 * kept, and nothing may crash or leak.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/mime.h"
#include "../unit/utf8_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mime_limits limits = {100000, 20, 8, 50};
	struct mime_content *c;
	char *h;

	c = mime_parse((const char *)data, size, &limits);
	CHECK(c->text != NULL && c->text[c->text_len] == '\0');
	CHECK(c->raw_text != NULL && c->raw_text[c->raw_text_len] == '\0');
	CHECK(valid_utf8(c->text, c->text_len));
	CHECK(valid_utf8(c->raw_text, c->raw_text_len));
	CHECK(c->nparts <= limits.max_parts);
	CHECK(c->nuris <= (size_t)limits.max_uris);
	CHECK(c->truncated == (size > limits.max_scan_size));
	for (size_t i = 0; i < c->nuris; i++) {
		CHECK(c->uris[i].uri[0] != '\0');
		CHECK(valid_utf8(c->uris[i].uri, strlen(c->uris[i].uri)));
	}
	for (size_t i = 0; i < c->nattachments; i++) {
		CHECK(c->attachments[i].content_type != NULL);
		if (c->attachments[i].filename != NULL)
			CHECK(valid_utf8(c->attachments[i].filename,
			    strlen(c->attachments[i].filename)));
	}
	mime_content_free(c);

	h = mime_decode_header((const char *)data, size < 4096 ? size : 4096);
	CHECK(valid_utf8(h, strlen(h)));
	free(h);
	return 0;
}
