#include "policy_request.h"

#include <stdlib.h>
#include <string.h>

#include "../lib/mxg.h"
#include "../lib/strbuf.h"

static const char *const attr_names[POLICY_ATTR_COUNT] = {
	[POLICY_ATTR_REQUEST] = "request",
	[POLICY_ATTR_PROTOCOL_STATE] = "protocol_state",
	[POLICY_ATTR_CLIENT_ADDRESS] = "client_address",
	[POLICY_ATTR_CLIENT_NAME] = "client_name",
	[POLICY_ATTR_REVERSE_CLIENT_NAME] = "reverse_client_name",
	[POLICY_ATTR_HELO_NAME] = "helo_name",
	[POLICY_ATTR_SENDER] = "sender",
	[POLICY_ATTR_RECIPIENT] = "recipient",
	[POLICY_ATTR_SASL_USERNAME] = "sasl_username",
	[POLICY_ATTR_QUEUE_ID] = "queue_id",
	[POLICY_ATTR_INSTANCE] = "instance",
	[POLICY_ATTR_SIZE] = "size",
};

struct policy_reader {
	struct policy_limits limits;
	struct policy_request req;
	struct strbuf line;	/* the current line, while it can still be used */
	size_t line_len;	/* bytes of the current line seen, all of them */
	char line_last;		/* its last byte, to drop a CR before the LF */
	bool in_request;	/* a line of the request has begun */
	bool complete;		/* req is ready for the caller */
	size_t discarded;	/* bytes read since the request went bad */
};

const char *
policy_attr_name(enum policy_attr attr)
{
	return (unsigned)attr < POLICY_ATTR_COUNT ? attr_names[attr] : "?";
}

struct policy_reader *
policy_reader_new(const struct policy_limits *limits)
{
	struct policy_reader *reader = mxg_calloc(1, sizeof(*reader));

	reader->limits = *limits;
	return reader;
}

static void
request_clear(struct policy_request *req)
{
	for (int a = 0; a < POLICY_ATTR_COUNT; a++)
		free(req->attr[a]);
	memset(req, 0, sizeof(*req));
}

void
policy_reader_free(struct policy_reader *reader)
{
	if (reader == NULL)
		return;
	request_clear(&reader->req);
	strbuf_free(&reader->line);
	free(reader);
}

const struct policy_request *
policy_reader_request(const struct policy_reader *reader)
{
	return &reader->req;
}

static void
line_clear(struct policy_reader *reader)
{
	strbuf_reset(&reader->line);
	reader->line_len = 0;
	reader->line_last = '\0';
}

void
policy_reader_next(struct policy_reader *reader)
{
	request_clear(&reader->req);
	line_clear(reader);
	reader->in_request = false;
	reader->complete = false;
	reader->discarded = 0;
}

bool
policy_reader_pending(const struct policy_reader *reader)
{
	return reader->in_request || reader->line_len > 0;
}

/* The first reason wins; from now on the request's bytes are dropped. */
static void
mark_bad(struct policy_reader *reader, const char *why)
{
	if (reader->req.error != NULL)
		return;
	reader->req.error = why;
	reader->req.error_line = reader->req.nattributes + 1;
	strbuf_free(&reader->line);
}

/* Counts n bytes of the request against max_request. */
static void
count_bytes(struct policy_reader *reader, size_t n)
{
	reader->req.bytes += n;
	if (reader->req.error != NULL)
		reader->discarded += n;
	else if (reader->req.bytes > reader->limits.max_request)
		mark_bad(reader, "request longer than [policy] max_request");
}

/* Bytes of a line before its LF. */
static void
add_line_bytes(struct policy_reader *reader, const char *data, size_t n)
{
	reader->in_request = true;
	count_bytes(reader, n);
	reader->line_len += n;
	reader->line_last = data[n - 1];
	if (reader->req.error != NULL)
		return;
	if (memchr(data, '\0', n) != NULL) {
		mark_bad(reader, "NUL byte");
		return;
	}
	/* One byte more than max_line may be the CR of a CRLF. */
	if (reader->line_len > reader->limits.max_line + 1) {
		mark_bad(reader, "line longer than [policy] max_line");
		return;
	}
	strbuf_append(&reader->line, data, n);
}

static void
store_attribute(struct policy_reader *reader, const char *line, size_t len)
{
	const char *eq = memchr(line, '=', len);

	if (eq == NULL) {
		mark_bad(reader, "line without '='");
		return;
	}
	if (eq == line) {
		mark_bad(reader, "empty attribute name");
		return;
	}
	size_t name_len = (size_t)(eq - line);
	for (int a = 0; a < POLICY_ATTR_COUNT; a++)
		if (strlen(attr_names[a]) == name_len &&
		    memcmp(attr_names[a], line, name_len) == 0) {
			free(reader->req.attr[a]);
			reader->req.attr[a] = mxg_strndup(eq + 1,
			    len - name_len - 1);
			return;
		}
}

/* At an LF: true when it ended a request. */
static bool
end_line(struct policy_reader *reader)
{
	size_t len = reader->line_len;

	if (len > 0 && reader->line_last == '\r')
		len--;
	if (len == 0) {
		if (reader->req.nattributes == 0 && reader->req.error == NULL) {
			/* An empty line between requests: nothing to answer. */
			policy_reader_next(reader);
			return false;
		}
		reader->complete = true;
		return true;
	}
	if (reader->req.error == NULL) {
		if (len > reader->limits.max_line)
			mark_bad(reader, "line longer than [policy] max_line");
		else if (reader->req.nattributes + 1 >
		    reader->limits.max_attributes)
			mark_bad(reader, "more attributes than [policy] "
			    "max_attributes");
		else
			store_attribute(reader, reader->line.data, len);
	}
	reader->req.nattributes++;
	line_clear(reader);
	return false;
}

enum policy_feed_status
policy_reader_feed(struct policy_reader *reader, const char *data, size_t len,
    size_t *used)
{
	size_t i = 0;

	*used = 0;
	if (reader->complete)
		return POLICY_REQUEST;
	while (i < len) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t seg = nl ? (size_t)(nl - (data + i)) : len - i;

		if (seg > 0)
			add_line_bytes(reader, data + i, seg);
		i += seg;
		if (nl == NULL)
			break;
		i++;
		if (reader->in_request)
			count_bytes(reader, 1);
		if (end_line(reader)) {
			*used = i;
			return POLICY_REQUEST;
		}
		if (reader->req.error != NULL &&
		    reader->discarded > reader->limits.max_discard)
			break;
	}
	*used = i;
	if (reader->req.error != NULL &&
	    reader->discarded > reader->limits.max_discard)
		return POLICY_CLOSE;
	return POLICY_NEED_MORE;
}
