/*
 * message.h - the SMTP transaction being judged.
 *
 * The milter, the policy server and `mxguard check` fill one of these as
 * the dialogue goes on; the checks read it. Connection facts (client,
 * HELO) live as long as the connection; message_reset() clears the
 * per-transaction part (envelope, headers, body) between messages.
 *
 * All strings are owned by the message and freed with it. Wire data is
 * capped: a header value is kept up to header_limit bytes, the body up to
 * body_limit bytes; what is cut is counted (headers_truncated,
 * body_truncated), never silent. Bytes are kept as they came, NUL
 * included (lengths are explicit).
 *
 * message_new(header_limit, body_limit)
 *	Caller frees with message_free (NULL is a no-op).
 * message_set_client(msg, addr, name)
 *	addr is a textual IPv4/IPv6 address or NULL (unknown); returns -1
 *	and keeps nothing when addr is not an address.
 * message_add_header(msg, name, value, value_len)
 *	Appends one header (value without the trailing CRLF, folded lines
 *	kept as they are).
 * message_append_body(msg, data, len)
 *	Keeps what fits under body_limit; body_total counts every byte.
 * message_header_count(msg, name) / message_header_find(msg, name, n)
 *	Case-insensitive lookup of the n-th (0-based) header of that name.
 * message_size(msg)
 *	The message's size in bytes: the size the MTA declared (size, set
 *	by the policy server from its request) when there is one, else the
 *	headers ("Name: value" and CRLF each, counted before any cut), the
 *	empty line and every body byte seen.
 *
 * A message is used by one thread at a time.
 */
#ifndef MXG_MESSAGE_H
#define MXG_MESSAGE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

struct header {
	char *name;
	char *value;
	size_t value_len;
};

struct message {
	/* connection */
	char *client_addr;		/* textual address, NULL unknown */
	int client_family;		/* AF_INET, AF_INET6 or 0 */
	struct in6_addr client_ip6;	/* valid when family is AF_INET6 */
	struct in_addr client_ip4;	/* valid when family is AF_INET */
	char *client_name;		/* reverse name as the MTA saw it */
	char *helo;
	char *mta_name;			/* the MTA's j macro: our host name */

	/* transaction */
	char *queue_id;			/* NULL until the MTA tells us */
	char *mail_from;		/* without <>; "" is the null sender */
	bool has_mail_from;
	char **rcpts;
	size_t nrcpts;
	char *auth_user;		/* SASL login, NULL: unauthenticated */
	char *instance;			/* the MTA's id of this transaction
					 * (policy protocol), NULL unknown */
	size_t size;			/* declared by the MTA, 0 unknown */

	struct header *headers;
	size_t nheaders;
	size_t headers_truncated;	/* header values cut at header_limit */
	size_t header_bytes;		/* as received, before any cut */

	char *body;
	size_t body_len;		/* bytes kept */
	size_t body_total;		/* bytes seen */
	bool body_truncated;

	size_t header_limit;
	size_t body_limit;
	long long started_ms;		/* for the time-taken log field */
};

struct message *message_new(size_t header_limit, size_t body_limit);
void message_free(struct message *msg);
void message_reset(struct message *msg);

int message_set_client(struct message *msg, const char *addr, const char *name);
void message_set_helo(struct message *msg, const char *helo);
void message_set_queue_id(struct message *msg, const char *queue_id);
/* addr with or without angle brackets; "<>" and "" are the null sender. */
void message_set_mail_from(struct message *msg, const char *addr);
void message_add_rcpt(struct message *msg, const char *addr);
/* Takes recipient i off the message (refused at RCPT TO). */
void message_remove_rcpt(struct message *msg, size_t i);
void message_add_header(struct message *msg, const char *name,
    const char *value, size_t value_len);
void message_append_body(struct message *msg, const char *data, size_t len);

size_t message_header_count(const struct message *msg, const char *name);
size_t message_size(const struct message *msg);
const struct header *message_header_find(const struct message *msg,
    const char *name, size_t n);

/* The domain part of the envelope sender (borrowed, valid while the
 * message is), or NULL for the null sender or an address without one. */
const char *message_mail_from_domain(const struct message *msg);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool message_client_is_loopback(const struct message *msg);

/*
 * message_parse(msg, data, len, err)
 *	Splits an RFC 5322 message (CRLF or LF line ends) into headers and
 *	body, as the MTA would hand them to a milter: unfolds nothing, keeps
 *	continuation lines inside the value. A message with no empty line
 *	is all headers; a line that is not a header before the empty line
 *	starts the body (as Postfix's cleanup does). Never fails on content;
 *	returns the number of headers.
 */
size_t message_parse(struct message *msg, const char *data, size_t len);
/* The header part of message_parse alone: adds the headers and returns
 * the offset where the body starts (len when there is none), so that the
 * caller can stream the body as an MTA would. */
size_t message_parse_headers(struct message *msg, const char *data, size_t len);

/* Strips <> and white space; returns a new string. */
char *message_strip_brackets(const char *addr);

#endif
