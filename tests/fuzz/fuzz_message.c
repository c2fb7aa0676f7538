/*
 * libFuzzer target: any byte string as a message, as `mxguard check`
 * reads it. Every header also goes through the Authentication-Results
 * id test, and the result through the JSON writer.
 */
#include <stddef.h>
#include <stdint.h>

#include "../../lib/authres.h"
#include "../../lib/message.h"
#include "../../lib/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message *msg = message_new(4096, 65536);
	struct strbuf sb = STRBUF_INIT;

	message_parse(msg, (const char *)data, size);
	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct header *h = &msg->headers[i];

		(void)authres_claims_id(h->value, h->value_len, "mx.example.org");
		strbuf_json_string(&sb, h->value, h->value_len);
	}
	strbuf_json_string(&sb, msg->body ? msg->body : "", msg->body_len);
	strbuf_free(&sb);
	message_free(msg);
	return 0;
}
