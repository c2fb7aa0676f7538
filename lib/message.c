#include "message.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mxg.h"
#include "strbuf.h"

struct message *
message_new(size_t header_limit, size_t body_limit)
{
	struct message *msg = mxg_calloc(1, sizeof(*msg));

	msg->header_limit = header_limit;
	msg->body_limit = body_limit;
	msg->started_ms = mxg_now_ms();
	return msg;
}

void
message_reset(struct message *msg)
{
	free(msg->queue_id);
	free(msg->mail_from);
	free(msg->auth_user);
	free(msg->instance);
	for (size_t i = 0; i < msg->nrcpts; i++)
		free(msg->rcpts[i]);
	free(msg->rcpts);
	for (size_t i = 0; i < msg->nheaders; i++) {
		free(msg->headers[i].name);
		free(msg->headers[i].value);
	}
	free(msg->headers);
	free(msg->body);
	msg->queue_id = msg->mail_from = msg->auth_user = NULL;
	msg->instance = NULL;
	msg->size = 0;
	msg->header_bytes = 0;
	msg->has_mail_from = false;
	msg->rcpts = NULL;
	msg->nrcpts = 0;
	msg->headers = NULL;
	msg->nheaders = 0;
	msg->headers_truncated = 0;
	msg->body = NULL;
	msg->body_len = msg->body_total = 0;
	msg->body_truncated = false;
	msg->started_ms = mxg_now_ms();
}

void
message_free(struct message *msg)
{
	if (msg == NULL)
		return;
	message_reset(msg);
	free(msg->client_addr);
	free(msg->client_name);
	free(msg->helo);
	free(msg->mta_name);
	free(msg);
}

static void
replace_string(char **slot, const char *value)
{
	free(*slot);
	*slot = value ? mxg_strdup(value) : NULL;
}

int
message_set_client(struct message *msg, const char *addr, const char *name)
{
	struct in_addr ip4;
	struct in6_addr ip6;
	int family = 0;

	if (addr != NULL) {
		/* Postfix and libmilter may bracket IPv6 or prefix "IPv6:". */
		char buf[INET6_ADDRSTRLEN + 8];
		const char *a = addr;
		size_t len;

		len = strlen(a);
		if (len >= sizeof(buf))
			return -1;
		/* "[IPv6:2001:db8::1]" (RFC 5321 4.1.3): brackets, then tag. */
		if (a[0] == '[' && len > 2 && a[len - 1] == ']') {
			a++;
			len -= 2;
		}
		if (len >= 5 && strncasecmp(a, "IPv6:", 5) == 0) {
			a += 5;
			len -= 5;
		}
		memcpy(buf, a, len);
		buf[len] = '\0';
		if (inet_pton(AF_INET, buf, &ip4) == 1)
			family = AF_INET;
		else if (inet_pton(AF_INET6, buf, &ip6) == 1)
			family = AF_INET6;
		else
			return -1;
		if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&ip6)) {
			memcpy(&ip4, &ip6.s6_addr[12], 4);
			family = AF_INET;
			inet_ntop(AF_INET, &ip4, buf, sizeof(buf));
		}
		replace_string(&msg->client_addr, buf);
		msg->client_family = family;
		if (family == AF_INET)
			msg->client_ip4 = ip4;
		else
			msg->client_ip6 = ip6;
	} else {
		replace_string(&msg->client_addr, NULL);
		msg->client_family = 0;
	}
	replace_string(&msg->client_name, name);
	return 0;
}

void
message_set_helo(struct message *msg, const char *helo)
{
	replace_string(&msg->helo, helo);
}

void
message_set_queue_id(struct message *msg, const char *queue_id)
{
	replace_string(&msg->queue_id, queue_id);
}

char *
message_strip_brackets(const char *addr)
{
	size_t len;

	while (isspace((unsigned char)*addr))
		addr++;
	len = strlen(addr);
	while (len > 0 && isspace((unsigned char)addr[len - 1]))
		len--;
	if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
		addr++;
		len -= 2;
	}
	return mxg_strndup(addr, len);
}

void
message_set_mail_from(struct message *msg, const char *addr)
{
	free(msg->mail_from);
	msg->mail_from = message_strip_brackets(addr ? addr : "");
	msg->has_mail_from = true;
}

void
message_add_rcpt(struct message *msg, const char *addr)
{
	msg->rcpts = mxg_realloc(msg->rcpts, (msg->nrcpts + 1) * sizeof(char *));
	msg->rcpts[msg->nrcpts++] = message_strip_brackets(addr);
}

void
message_remove_rcpt(struct message *msg, size_t i)
{
	if (i >= msg->nrcpts)
		return;
	free(msg->rcpts[i]);
	memmove(&msg->rcpts[i], &msg->rcpts[i + 1],
	    (msg->nrcpts - i - 1) * sizeof(char *));
	msg->nrcpts--;
}

void
message_add_header(struct message *msg, const char *name, const char *value,
    size_t value_len)
{
	struct header *h;

	/* "Name: value" CRLF, as on the wire. */
	msg->header_bytes += strlen(name) + 2 + value_len + 2;
	if (value_len > msg->header_limit) {
		value_len = msg->header_limit;
		msg->headers_truncated++;
	}
	if ((msg->nheaders & (msg->nheaders - 1)) == 0 || msg->nheaders == 0)
		msg->headers = mxg_realloc(msg->headers,
		    (msg->nheaders ? msg->nheaders * 2 : 8) * sizeof(*h));
	h = &msg->headers[msg->nheaders++];
	h->name = mxg_strdup(name);
	h->value = mxg_strndup(value, value_len);
	h->value_len = value_len;
}

void
message_append_body(struct message *msg, const char *data, size_t len)
{
	size_t room = msg->body_limit - msg->body_len;
	size_t keep = len < room ? len : room;

	msg->body_total += len;
	if (keep < len)
		msg->body_truncated = true;
	if (keep == 0)
		return;
	msg->body = mxg_realloc(msg->body, msg->body_len + keep + 1);
	memcpy(msg->body + msg->body_len, data, keep);
	msg->body_len += keep;
	msg->body[msg->body_len] = '\0';
}

size_t
message_header_count(const struct message *msg, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < msg->nheaders; i++)
		if (strcasecmp(msg->headers[i].name, name) == 0)
			n++;
	return n;
}

size_t
message_size(const struct message *msg)
{
	if (msg->size > 0)
		return msg->size;
	if (msg->nheaders == 0 && msg->body_total == 0)
		return 0;
	return msg->header_bytes + 2 + msg->body_total;
}

const struct header *
message_header_find(const struct message *msg, const char *name, size_t n)
{
	for (size_t i = 0; i < msg->nheaders; i++)
		if (strcasecmp(msg->headers[i].name, name) == 0 && n-- == 0)
			return &msg->headers[i];
	return NULL;
}

const char *
message_mail_from_domain(const struct message *msg)
{
	const char *at;

	if (msg->mail_from == NULL || *msg->mail_from == '\0')
		return NULL;
	at = strrchr(msg->mail_from, '@');
	if (at == NULL || at[1] == '\0')
		return NULL;
	return at + 1;
}

bool
message_client_is_loopback(const struct message *msg)
{
	if (msg->client_family == AF_INET)
		return (ntohl(msg->client_ip4.s_addr) >> 24) == 127;
	if (msg->client_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&msg->client_ip6);
	return false;
}

/* A header field name: printable ASCII except colon (RFC 5322 2.2). */
static size_t
header_name_length(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && line[i] > 32 && line[i] < 127 && line[i] != ':')
		i++;
	return (i > 0 && i < len && line[i] == ':') ? i : 0;
}

/* Length of the line at p including its end (LF or CRLF). */
static size_t
line_length(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
}

static size_t
content_length(const char *p, size_t linelen)
{
	if (linelen > 0 && p[linelen - 1] == '\n')
		linelen--;
	if (linelen > 0 && p[linelen - 1] == '\r')
		linelen--;
	return linelen;
}

size_t
message_parse(struct message *msg, const char *data, size_t len)
{
	size_t before = msg->nheaders;
	size_t body = message_parse_headers(msg, data, len);

	message_append_body(msg, data + body, len - body);
	return msg->nheaders - before;
}

size_t
message_parse_headers(struct message *msg, const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	/* An mbox "From " line is not a header: skip it, as tools do. */
	if (len >= 5 && memcmp(p, "From ", 5) == 0)
		p += line_length(p, end);

	while (p < end) {
		size_t linelen = line_length(p, end);
		size_t content = content_length(p, linelen);
		size_t namelen;

		if (content == 0) {		/* the empty line: body follows */
			p += linelen;
			break;
		}
		namelen = header_name_length(p, content);
		if (namelen == 0)		/* not a header: body starts */
			break;

		/* The value runs from after the colon (and one space) to the
		 * end of the last continuation line; inner line ends become
		 * CRLF, as a milter receives them. */
		char *name = mxg_strndup(p, namelen);
		const char *vstart = p + namelen + 1;
		if (vstart < p + content && *vstart == ' ')
			vstart++;
		struct strbuf value = STRBUF_INIT;
		strbuf_append(&value, vstart, (size_t)(p + content - vstart));
		p += linelen;
		while (p < end && (*p == ' ' || *p == '\t')) {
			linelen = line_length(p, end);
			content = content_length(p, linelen);
			strbuf_append(&value, "\r\n", 2);
			strbuf_append(&value, p, content);
			p += linelen;
		}
		message_add_header(msg, name, strbuf_cstr(&value), value.len);
		strbuf_free(&value);
		free(name);
	}
	return (size_t)(p - data);
}
