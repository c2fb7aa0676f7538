/*
 * policy_request.h - reads Postfix SMTPD access policy delegation requests
 * (SMTPD_POLICY_README) from an untrusted byte stream.
 *
 * PROTOCOL
 *	A request is `name=value` lines ended by LF (a CR before the LF is
 *	dropped), and an empty line ends it. The server answers each request
 *	with `action=...` and an empty line; many requests may follow on one
 *	connection, and a client may send the next before the last answer.
 *
 * LIMITS AND BAD INPUT
 *	A line longer than max_line bytes, a request longer than max_request
 *	bytes or with more than max_attributes lines, a NUL byte, a line
 *	without '=' or with an empty name: the request is marked bad (the
 *	first reason is kept in request->error), its remaining bytes are read
 *	and dropped up to its empty line, and it is still handed to the
 *	caller, who answers it (with DUNNO) so that client and server stay in
 *	step. Nothing over a limit is ever stored. When a bad request goes on
 *	for more than max_discard bytes without its empty line, the stream
 *	cannot be brought back in step: the reader says POLICY_CLOSE.
 *	Empty lines between requests are ignored (no request, no answer).
 *
 * CALLS
 *	policy_reader_new(limits)
 *		Caller frees with policy_reader_free (NULL is a no-op). limits
 *		is copied.
 *	policy_reader_feed(reader, data, len, &used)
 *		Consumes bytes from data up to the end of one request at most;
 *		*used says how many. POLICY_NEED_MORE: all of data was used and
 *		no request is complete. POLICY_REQUEST: a request is complete,
 *		read it with policy_reader_request, then call
 *		policy_reader_next before feeding the rest (data + *used).
 *		POLICY_CLOSE: give up on this connection.
 *	policy_reader_request(reader)
 *		The complete request: borrowed, valid until policy_reader_next.
 *	policy_reader_next(reader)
 *		Forgets the request; the reader waits for the next one.
 *	policy_reader_pending(reader)
 *		True while part of a request has been read: the connection is
 *		not between requests.
 *	policy_attr_name(attr)
 *		The attribute's protocol name ("client_address").
 *
 *	A reader belongs to one connection and one thread at a time.
 */
#ifndef MXG_POLICY_REQUEST_H
#define MXG_POLICY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* The attributes mxguard reads; every other one is accepted and ignored. */
enum policy_attr {
	POLICY_ATTR_REQUEST,		/* "smtpd_access_policy" */
	POLICY_ATTR_PROTOCOL_STATE,	/* CONNECT EHLO HELO MAIL RCPT DATA ... */
	POLICY_ATTR_CLIENT_ADDRESS,
	POLICY_ATTR_CLIENT_NAME,	/* verified name, or "unknown" */
	POLICY_ATTR_REVERSE_CLIENT_NAME,	/* PTR name, or "unknown" */
	POLICY_ATTR_HELO_NAME,
	POLICY_ATTR_SENDER,		/* "" for the null sender */
	POLICY_ATTR_RECIPIENT,
	POLICY_ATTR_SASL_USERNAME,
	POLICY_ATTR_QUEUE_ID,
	POLICY_ATTR_INSTANCE,		/* the same for every request of a message */
	POLICY_ATTR_SIZE,		/* bytes; the real size at END-OF-MESSAGE */
	POLICY_ATTR_COUNT,
};

struct policy_limits {
	size_t max_line;	/* bytes of one line, without its LF */
	size_t max_request;	/* bytes of one request, LFs included */
	size_t max_attributes;	/* lines of one request */
	size_t max_discard;	/* bytes of a bad request before giving up */
};

struct policy_request {
	char *attr[POLICY_ATTR_COUNT];	/* NULL when absent; a later line wins */
	size_t nattributes;		/* lines, known or not */
	size_t bytes;			/* LFs included */
	const char *error;		/* NULL: well-formed; else why (static) */
	size_t error_line;		/* 1-based line of the error */
};

enum policy_feed_status {
	POLICY_NEED_MORE,
	POLICY_REQUEST,
	POLICY_CLOSE,
};

struct policy_reader;

struct policy_reader *policy_reader_new(const struct policy_limits *limits);
void policy_reader_free(struct policy_reader *reader);
enum policy_feed_status policy_reader_feed(struct policy_reader *reader,
    const char *data, size_t len, size_t *used);
const struct policy_request *policy_reader_request(
    const struct policy_reader *reader);
void policy_reader_next(struct policy_reader *reader);
bool policy_reader_pending(const struct policy_reader *reader);
const char *policy_attr_name(enum policy_attr attr);

#endif
