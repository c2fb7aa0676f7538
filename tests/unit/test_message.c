/*
 * test_message.c - lib/message.h: the client address, the envelope
 * sender, and splitting a message into headers and body with its caps.
 */
#include "unit.h"

#include <arpa/inet.h>
#include <stdbool.h>

#include "../../lib/message.h"

#define KB 1024
#define MB (1024 * 1024)

/* The body as bytes: NULL and "" are both the empty body. */
static void
expect_body(const char *label, const struct message *msg, const char *want,
    size_t want_len)
{
	EXPECT_MEM(label, msg->body_len ? msg->body : "", msg->body_len, want,
	    want_len);
	if (msg->body != NULL)
		EXPECT_INT(label, msg->body[msg->body_len], '\0');
}

static void
test_message_set_client_parses_address_forms(void **state)
{
	static const struct {
		const char *label;
		const char *addr;
		int family;
		const char *want;	/* client_addr */
		bool loopback;
	} rows[] = {
		{"IPv4", "192.0.2.1", AF_INET, "192.0.2.1", false},
		{"IPv4 in brackets", "[192.0.2.1]", AF_INET, "192.0.2.1", false},
		{"IPv4 loopback", "127.0.0.1", AF_INET, "127.0.0.1", true},
		{"IPv4 loopback, whole /8", "127.255.3.4", AF_INET, "127.255.3.4", true},
		{"IPv4 next to loopback", "128.0.0.1", AF_INET, "128.0.0.1", false},
		{"IPv4 126/8", "126.255.255.255", AF_INET, "126.255.255.255", false},
		{"IPv4 0.0.0.0", "0.0.0.0", AF_INET, "0.0.0.0", false},
		{"IPv6", "2001:db8::1", AF_INET6, "2001:db8::1", false},
		{"IPv6 in brackets", "[2001:db8::1]", AF_INET6, "2001:db8::1", false},
		{"IPv6 with IPv6: prefix", "IPv6:2001:db8::1", AF_INET6, "2001:db8::1", false},
		{"IPv6 with ipv6: prefix, lower case", "ipv6:2001:db8::2", AF_INET6, "2001:db8::2", false},
		{"IPv6 loopback", "::1", AF_INET6, "::1", true},
		{"IPv6 loopback in brackets", "[::1]", AF_INET6, "::1", true},
		{"IPv6 unspecified", "::", AF_INET6, "::", false},
		{"IPv6 ::2 is not loopback", "::2", AF_INET6, "::2", false},
		{"IPv6 full length", "2001:0db8:0000:0000:0000:ff00:0042:8329", AF_INET6,
		    "2001:0db8:0000:0000:0000:ff00:0042:8329", false},
		{"v4-mapped IPv6 becomes IPv4", "::ffff:192.0.2.1", AF_INET, "192.0.2.1", false},
		{"v4-mapped IPv6, hex form", "::ffff:c000:201", AF_INET, "192.0.2.1", false},
		{"v4-mapped loopback", "::ffff:127.0.0.1", AF_INET, "127.0.0.1", true},
		{"v4-mapped with IPv6: prefix", "IPv6:::ffff:10.1.2.3", AF_INET, "10.1.2.3", false},
		{"v4-mapped in brackets", "[::ffff:127.0.0.2]", AF_INET, "127.0.0.2", true},
		{"v4-compatible stays IPv6", "::192.0.2.1", AF_INET6, "::192.0.2.1", false},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct message *msg = message_new(64 * KB, MB);
		char text[INET6_ADDRSTRLEN];

		EXPECT_INT(rows[i].label,
		    message_set_client(msg, rows[i].addr, "client.example"), 0);
		EXPECT_INT(rows[i].label, msg->client_family, rows[i].family);
		EXPECT_STR(rows[i].label, msg->client_addr, rows[i].want);
		EXPECT_STR(rows[i].label, msg->client_name, "client.example");
		EXPECT_INT(rows[i].label, message_client_is_loopback(msg),
		    rows[i].loopback);
		/* the binary address agrees with the text */
		if (rows[i].family == AF_INET) {
			inet_ntop(AF_INET, &msg->client_ip4, text, sizeof(text));
			EXPECT_STR(rows[i].label, text, rows[i].want);
		} else {
			struct in6_addr want6;

			assert_int_equal(inet_pton(AF_INET6, rows[i].want, &want6), 1);
			EXPECT_TRUE(rows[i].label, memcmp(&want6,
			    &msg->client_ip6, sizeof(want6)) == 0);
		}
		message_free(msg);
	}
}

static void
test_message_set_client_refuses_garbage_and_keeps_nothing(void **state)
{
	static const struct {
		const char *label;
		const char *addr;
	} rows[] = {
		{"empty", ""},
		{"words", "not an address"},
		{"host name", "mail.example.org"},
		{"three octets", "192.0.2"},
		{"octet over 255", "192.0.2.256"},
		{"trailing space", "192.0.2.1 "},
		{"leading space", " 192.0.2.1"},
		{"port attached", "192.0.2.1:25"},
		{"IPv6 zone id", "fe80::1%eth0"},
		{"IPv6 too many groups", "1:2:3:4:5:6:7:8:9"},
		{"two double colons", "2001::db8::1"},
		{"open bracket only", "["},
		{"empty brackets", "[]"},
		{"unclosed bracket", "[192.0.2.1"},
		{"doubled brackets", "[[192.0.2.1]]"},
		{"prefix only", "IPv6:"},
		{"IPv4: prefix", "IPv4:192.0.2.1"},
		{"control bytes", "192.0.2.1\r\n"},
		{"8-bit bytes", "\xc0\xa8\x00\x01"},
		{"very long", "2001:db8:2001:db8:2001:db8:2001:db8:2001:db8:2001:db8:2001:db8"},
		{"very long brackets", "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct message *msg = message_new(64 * KB, MB);

		/* on an unknown client */
		EXPECT_INT(rows[i].label,
		    message_set_client(msg, rows[i].addr, "bad.example"), -1);
		EXPECT_STR(rows[i].label, msg->client_addr, NULL);
		EXPECT_INT(rows[i].label, msg->client_family, 0);
		EXPECT_STR(rows[i].label, msg->client_name, NULL);
		EXPECT_INT(rows[i].label, message_client_is_loopback(msg), false);

		/* on a known client: it stays as it was */
		assert_int_equal(message_set_client(msg, "127.0.0.1", "localhost"), 0);
		EXPECT_INT(rows[i].label,
		    message_set_client(msg, rows[i].addr, "bad.example"), -1);
		EXPECT_STR(rows[i].label, msg->client_addr, "127.0.0.1");
		EXPECT_INT(rows[i].label, msg->client_family, AF_INET);
		EXPECT_STR(rows[i].label, msg->client_name, "localhost");
		EXPECT_INT(rows[i].label, message_client_is_loopback(msg), true);
		message_free(msg);
	}
}

static void
test_message_set_client_null_is_an_unknown_client(void **state)
{
	struct message *msg = message_new(64 * KB, MB);

	(void)state;
	EXPECT_INT("fresh message", message_client_is_loopback(msg), false);
	EXPECT_INT("fresh message", msg->client_family, 0);
	assert_int_equal(message_set_client(msg, "::1", "localhost"), 0);
	EXPECT_INT("NULL after ::1", message_set_client(msg, NULL, NULL), 0);
	EXPECT_STR("NULL after ::1", msg->client_addr, NULL);
	EXPECT_STR("NULL after ::1", msg->client_name, NULL);
	EXPECT_INT("NULL after ::1", msg->client_family, 0);
	EXPECT_INT("NULL after ::1", message_client_is_loopback(msg), false);
	EXPECT_INT("NULL with a name", message_set_client(msg, NULL, "[unknown]"), 0);
	EXPECT_STR("NULL with a name", msg->client_name, "[unknown]");
	message_free(msg);
}

/*
 * Regression (lib/message.c, message_set_client, fixed): the RFC 5321 address literal
 * "[IPv6:2001:db8::1]" (the form an EHLO or a Received header carries)
 * is refused: "IPv6:" is only stripped before the bracket check, so
 * inet_pton() sees "IPv6:2001:db8::1". Each half of the form is accepted
 * alone ("[2001:db8::1]", "IPv6:2001:db8::1"), and the code's comment
 * names both; strip the brackets first, then the prefix.
 */
static void
test_message_set_client_accepts_bracketed_ipv6_literal(void **state)
{
	static const struct {
		const char *label;
		const char *addr;
		int family;
		const char *want;
	} rows[] = {
		{"[IPv6:...]", "[IPv6:2001:db8::1]", AF_INET6, "2001:db8::1"},
		{"[IPv6:::1]", "[IPv6:::1]", AF_INET6, "::1"},
		{"[ipv6:...] lower case", "[ipv6:2001:db8::5]", AF_INET6, "2001:db8::5"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct message *msg = message_new(64 * KB, MB);
		char addr[64];

		/* read, free, then check: a failure leaks nothing */
		int rc = message_set_client(msg, rows[i].addr, NULL);
		int family = msg->client_family;
		snprintf(addr, sizeof(addr), "%s",
		    msg->client_addr ? msg->client_addr : "(null)");
		message_free(msg);
		EXPECT_INT(rows[i].label, rc, 0);
		EXPECT_INT(rows[i].label, family, rows[i].family);
		EXPECT_STR(rows[i].label, addr, rows[i].want);
	}
}

static void
test_message_mail_from_strips_brackets_and_finds_the_domain(void **state)
{
	static const struct {
		const char *label;
		const char *addr;
		const char *want;
		const char *domain;
	} rows[] = {
		{"null sender <>", "<>", "", NULL},
		{"null sender, empty", "", "", NULL},
		{"NULL is the null sender", NULL, "", NULL},
		{"null sender with spaces", "  <>  ", "", NULL},
		{"bracketed", "<a@b>", "a@b", "b"},
		{"bracketed with spaces around", " <a@b> ", "a@b", "b"},
		{"bracketed with tab and CRLF", "\t<a@b>\r\n", "a@b", "b"},
		{"bare", "a@b", "a@b", "b"},
		{"real address", "<user@mail.Example.ORG>", "user@mail.Example.ORG", "mail.Example.ORG"},
		{"no domain", "<postmaster>", "postmaster", NULL},
		{"empty domain", "<user@>", "user@", NULL},
		{"quoted local part with @", "<\"a@b\"@c.example>", "\"a@b\"@c.example", "c.example"},
		{"only an open bracket", "<", "<", NULL},
		{"unbalanced", "<a@b", "<a@b", "b"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct message *msg = message_new(64 * KB, MB);

		EXPECT_INT(rows[i].label, msg->has_mail_from, false);
		EXPECT_STR(rows[i].label, message_mail_from_domain(msg), NULL);
		message_set_mail_from(msg, rows[i].addr);
		EXPECT_INT(rows[i].label, msg->has_mail_from, true);
		EXPECT_STR(rows[i].label, msg->mail_from, rows[i].want);
		EXPECT_STR(rows[i].label, message_mail_from_domain(msg),
		    rows[i].domain);
		message_free(msg);
	}
}

static void
test_message_reset_keeps_the_connection_and_clears_the_transaction(void **state)
{
	struct message *msg = message_new(64 * KB, MB);
	static const char text[] = "Subject: x\n\nbody";

	(void)state;
	assert_int_equal(message_set_client(msg, "192.0.2.7", "c.example"), 0);
	message_set_helo(msg, "helo.example");
	message_set_queue_id(msg, "4ABC");
	message_set_mail_from(msg, "<a@b.example>");
	message_add_rcpt(msg, " <rcpt@c.example> ");
	message_add_rcpt(msg, "other@c.example");
	EXPECT_INT("rcpts", msg->nrcpts, 2);
	EXPECT_STR("rcpt 0", msg->rcpts[0], "rcpt@c.example");
	EXPECT_STR("rcpt 1", msg->rcpts[1], "other@c.example");
	assert_int_equal(message_parse(msg, text, sizeof(text) - 1), 1);

	message_reset(msg);
	EXPECT_STR("client kept", msg->client_addr, "192.0.2.7");
	EXPECT_INT("family kept", msg->client_family, AF_INET);
	EXPECT_STR("name kept", msg->client_name, "c.example");
	EXPECT_STR("helo kept", msg->helo, "helo.example");
	EXPECT_STR("queue id cleared", msg->queue_id, NULL);
	EXPECT_STR("mail from cleared", msg->mail_from, NULL);
	EXPECT_INT("has_mail_from cleared", msg->has_mail_from, false);
	EXPECT_INT("rcpts cleared", msg->nrcpts, 0);
	EXPECT_INT("headers cleared", msg->nheaders, 0);
	EXPECT_INT("headers_truncated cleared", msg->headers_truncated, 0);
	EXPECT_INT("body_len cleared", msg->body_len, 0);
	EXPECT_INT("body_total cleared", msg->body_total, 0);
	EXPECT_INT("body_truncated cleared", msg->body_truncated, false);
	EXPECT_INT("limits kept", msg->header_limit, 64 * KB);
	message_free(msg);
	message_free(NULL);
}

struct hv {
	const char *name;
	const char *value;
	size_t len;
};

#define IN(s) s, sizeof(s) - 1
#define HV(n, v) {n, v, sizeof(v) - 1}
#define BODY(s) s, sizeof(s) - 1

struct parse_row {
	const char *label;
	const char *input;
	size_t input_len;
	size_t header_limit, body_limit;
	size_t nheaders;
	struct hv headers[4];
	const char *body;
	size_t body_len;
	size_t body_total;
	size_t headers_truncated;
	bool body_truncated;
};

static const struct parse_row parse_rows[] = {
	{"LF line ends", IN("Subject: hi\nFrom: a@b\n\nbody\n"), 64 * KB, MB,
	    2, {HV("Subject", "hi"), HV("From", "a@b")}, BODY("body\n"), 5, 0, false},
	{"CRLF line ends", IN("Subject: hi\r\nFrom: a@b\r\n\r\nbody\r\n"), 64 * KB, MB,
	    2, {HV("Subject", "hi"), HV("From", "a@b")}, BODY("body\r\n"), 6, 0, false},
	{"mixed line ends", IN("A: 1\r\nB: 2\n\r\nx\ny\r\n"), 64 * KB, MB,
	    2, {HV("A", "1"), HV("B", "2")}, BODY("x\ny\r\n"), 5, 0, false},
	{"folded header, LF", IN("Subject: one\n two\n\tthree\nX: y\n\nb"), 64 * KB, MB,
	    2, {HV("Subject", "one\r\n two\r\n\tthree"), HV("X", "y")}, BODY("b"), 1, 0, false},
	{"folded header, CRLF", IN("Subject: one\r\n two\r\nX: y\r\n\r\n"), 64 * KB, MB,
	    2, {HV("Subject", "one\r\n two"), HV("X", "y")}, BODY(""), 0, 0, false},
	{"folded last header at end of input", IN("A: 1\n 2"), 64 * KB, MB,
	    1, {HV("A", "1\r\n 2")}, BODY(""), 0, 0, false},
	{"fold with only white space", IN("A: 1\n \nB: 2\n\n"), 64 * KB, MB,
	    2, {HV("A", "1\r\n "), HV("B", "2")}, BODY(""), 0, 0, false},
	{"no empty line: all headers", IN("A: 1\nB: 2\n"), 64 * KB, MB,
	    2, {HV("A", "1"), HV("B", "2")}, BODY(""), 0, 0, false},
	{"no final newline", IN("A: 1"), 64 * KB, MB,
	    1, {HV("A", "1")}, BODY(""), 0, 0, false},
	{"empty input", IN(""), 64 * KB, MB,
	    0, {{0}}, BODY(""), 0, 0, false},
	{"only the empty line", IN("\n"), 64 * KB, MB,
	    0, {{0}}, BODY(""), 0, 0, false},
	{"only the empty line, CRLF", IN("\r\nbody"), 64 * KB, MB,
	    0, {{0}}, BODY("body"), 4, 0, false},
	{"first line not a header: all body", IN("hello world\nA: 1\n\nx"), 64 * KB, MB,
	    0, {{0}}, BODY("hello world\nA: 1\n\nx"), 19, 0, false},
	{"continuation line first: all body", IN(" A: 1\n\nx"), 64 * KB, MB,
	    0, {{0}}, BODY(" A: 1\n\nx"), 8, 0, false},
	{"a non-header line ends the headers", IN("A: 1\nnot a header\nB: 2\n\nx"), 64 * KB, MB,
	    1, {HV("A", "1")}, BODY("not a header\nB: 2\n\nx"), 20, 0, false},
	{"mbox From line skipped", IN("From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody"), 64 * KB, MB,
	    1, {HV("Subject", "x")}, BODY("body"), 4, 0, false},
	{"mbox From line alone", IN("From a@b"), 64 * KB, MB,
	    0, {{0}}, BODY(""), 0, 0, false},
	{"From: header is not an mbox line", IN("From: a@b\n\n"), 64 * KB, MB,
	    1, {HV("From", "a@b")}, BODY(""), 0, 0, false},
	{"only the first From line is mbox", IN("From x\nFrom y\n\n"), 64 * KB, MB,
	    0, {{0}}, BODY("From y\n\n"), 8, 0, false},
	{"NUL inside a header value", IN("X-Bin: a\0b\nY: \0\n\nbody"), 64 * KB, MB,
	    2, {HV("X-Bin", "a\0b"), HV("Y", "\0")}, BODY("body"), 4, 0, false},
	{"NUL inside the body", IN("A: 1\n\nx\0y\0"), 64 * KB, MB,
	    1, {HV("A", "1")}, BODY("x\0y\0"), 4, 0, false},
	{"NUL in a header name starts the body", IN("A\0B: 1\n\nx"), 64 * KB, MB,
	    0, {{0}}, BODY("A\0B: 1\n\nx"), 9, 0, false},
	{"no space after the colon", IN("Subject:hi\n\n"), 64 * KB, MB,
	    1, {HV("Subject", "hi")}, BODY(""), 0, 0, false},
	{"two spaces after the colon: one kept", IN("Subject:  hi\n\n"), 64 * KB, MB,
	    1, {HV("Subject", " hi")}, BODY(""), 0, 0, false},
	{"tab after the colon is kept", IN("Subject:\thi\n\n"), 64 * KB, MB,
	    1, {HV("Subject", "\thi")}, BODY(""), 0, 0, false},
	{"empty value", IN("X-Empty:\nX-Space: \n\n"), 64 * KB, MB,
	    2, {HV("X-Empty", ""), HV("X-Space", "")}, BODY(""), 0, 0, false},
	{"colon inside the value", IN("X: a: b\n\n"), 64 * KB, MB,
	    1, {HV("X", "a: b")}, BODY(""), 0, 0, false},
	{"space in a header name starts the body", IN("Bad Name: x\n\nbody"), 64 * KB, MB,
	    0, {{0}}, BODY("Bad Name: x\n\nbody"), 17, 0, false},
	{"space before the colon starts the body", IN("Subject : x\n\n"), 64 * KB, MB,
	    0, {{0}}, BODY("Subject : x\n\n"), 13, 0, false},
	{"8-bit header name starts the body", IN("X-\xc3\xa9: x\n\n"), 64 * KB, MB,
	    0, {{0}}, BODY("X-\xc3\xa9: x\n\n"), 9, 0, false},
	{"control byte in a header name starts the body", IN("X\x01Y: x\n\n"), 64 * KB, MB,
	    0, {{0}}, BODY("X\x01Y: x\n\n"), 8, 0, false},
	{"empty header name starts the body", IN(": x\n\n"), 64 * KB, MB,
	    0, {{0}}, BODY(": x\n\n"), 5, 0, false},
	{"name without colon at end of input", IN("A: 1\nNoColon"), 64 * KB, MB,
	    1, {HV("A", "1")}, BODY("NoColon"), 7, 0, false},
	{"names keep their case", IN("x-MiXeD: 1\n\n"), 64 * KB, MB,
	    1, {HV("x-MiXeD", "1")}, BODY(""), 0, 0, false},
	{"header over header_limit", IN("A: 123456\nB: 12\n\n"), 4, MB,
	    2, {HV("A", "1234"), HV("B", "12")}, BODY(""), 0, 1, false},
	{"header exactly header_limit", IN("A: 1234\n\n"), 4, MB,
	    1, {HV("A", "1234")}, BODY(""), 0, 0, false},
	{"folded header over header_limit", IN("A: 12\n 34\n\n"), 5, MB,
	    1, {HV("A", "12\r\n ")}, BODY(""), 0, 1, false},
	{"two headers over header_limit", IN("A: 12345\nB: 67890\n\n"), 2, MB,
	    2, {HV("A", "12"), HV("B", "67")}, BODY(""), 0, 2, false},
	{"body over body_limit", IN("A: 1\n\n0123456789ABCDEF"), 64 * KB, 10,
	    1, {HV("A", "1")}, BODY("0123456789"), 16, 0, true},
	{"body exactly body_limit", IN("A: 1\n\n0123456789"), 64 * KB, 10,
	    1, {HV("A", "1")}, BODY("0123456789"), 10, 0, false},
	{"body_limit 0", IN("A: 1\n\nxyz"), 64 * KB, 0,
	    1, {HV("A", "1")}, BODY(""), 3, 0, true},
};

static void
test_message_parse_splits_headers_and_body(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(parse_rows); i++) {
		const struct parse_row *r = &parse_rows[i];
		struct message *msg = message_new(r->header_limit, r->body_limit);
		/* an exact-size heap copy, so that ASan sees any over-read */
		char *input = malloc(r->input_len ? r->input_len : 1);

		assert_non_null(input);
		memcpy(input, r->input, r->input_len);
		EXPECT_INT(r->label, message_parse(msg, input, r->input_len),
		    r->nheaders);
		free(input);
		EXPECT_INT(r->label, msg->nheaders, r->nheaders);
		for (size_t k = 0; k < r->nheaders && k < msg->nheaders; k++) {
			EXPECT_STR(r->label, msg->headers[k].name,
			    r->headers[k].name);
			EXPECT_MEM(r->label, msg->headers[k].value,
			    msg->headers[k].value_len, r->headers[k].value,
			    r->headers[k].len);
			EXPECT_INT(r->label,
			    msg->headers[k].value[msg->headers[k].value_len], '\0');
		}
		expect_body(r->label, msg, r->body, r->body_len);
		EXPECT_INT(r->label, msg->body_total, r->body_total);
		EXPECT_INT(r->label, msg->headers_truncated, r->headers_truncated);
		EXPECT_INT(r->label, msg->body_truncated, r->body_truncated);
		message_free(msg);
	}
}

static void
test_message_parse_headers_returns_where_the_body_starts(void **state)
{
	static const struct {
		const char *label;
		const char *input;
		size_t input_len;
		size_t nheaders;
		size_t body_at;
	} rows[] = {
		{"LF", IN("A: 1\nB: 2\n\nbody"), 2, 11},
		{"CRLF", IN("A: 1\r\n\r\nbody"), 1, 8},
		{"no empty line", IN("A: 1\nB: 2\n"), 2, 10},
		{"no final newline", IN("A: 1"), 1, 4},
		{"empty input", IN(""), 0, 0},
		{"first line not a header", IN("hello\n\n"), 0, 0},
		{"mbox From line", IN("From x\nA: 1\n\nb"), 1, 13},
		{"mbox From line then body", IN("From x\nnot a header\n"), 0, 7},
		{"folded header", IN("A: 1\n 2\n\nb"), 1, 9},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct message *msg = message_new(64 * KB, MB);

		EXPECT_INT(rows[i].label, message_parse_headers(msg,
		    rows[i].input, rows[i].input_len), rows[i].body_at);
		EXPECT_INT(rows[i].label, msg->nheaders, rows[i].nheaders);
		EXPECT_INT(rows[i].label, msg->body_len, 0);
		EXPECT_INT(rows[i].label, msg->body_total, 0);
		message_free(msg);
	}

	/* message_parse counts only the headers of its own call */
	struct message *msg = message_new(64 * KB, MB);
	EXPECT_INT("first parse", message_parse(msg, IN("A: 1\nB: 2\n")), 2);
	EXPECT_INT("second parse", message_parse(msg, IN("C: 3\n\nx")), 1);
	EXPECT_INT("both parses", msg->nheaders, 3);
	expect_body("both parses", msg, "x", 1);
	message_free(msg);
}

static void
test_message_parse_cuts_a_1mb_header_line_at_header_limit(void **state)
{
	size_t line = MB;
	size_t len = 3 + line + 12;	/* "X: " v... "\nB: two\n\nend" */
	char *data = malloc(len);
	struct message *msg = message_new(64 * KB, MB);
	size_t o = 0;

	(void)state;
	assert_non_null(data);
	memcpy(data, "X: ", 3), o = 3;
	memset(data + o, 'v', line), o += line;
	memcpy(data + o, "\nB: two\n\nend", 12), o += 12;
	assert_int_equal(o, len);
	EXPECT_INT("1 MB header", message_parse(msg, data, o), 2);
	EXPECT_INT("1 MB header", msg->nheaders, 2);
	EXPECT_STR("1 MB header", msg->headers[0].name, "X");
	EXPECT_INT("1 MB header", msg->headers[0].value_len, 64 * KB);
	EXPECT_INT("1 MB header", strspn(msg->headers[0].value, "v"), 64 * KB);
	EXPECT_INT("1 MB header", msg->headers[0].value[64 * KB], '\0');
	EXPECT_INT("1 MB header", msg->headers_truncated, 1);
	EXPECT_STR("header after it", msg->headers[1].name, "B");
	EXPECT_STR("header after it", msg->headers[1].value, "two");
	expect_body("body after it", msg, "end", 3);
	EXPECT_INT("body after it", msg->body_truncated, false);
	free(data);
	message_free(msg);
}

static void
test_message_parse_keeps_many_headers_in_order(void **state)
{
	struct message *msg = message_new(64 * KB, MB);
	char *data = malloc(1000 * 32);
	size_t o = 0;
	char want[32];

	(void)state;
	assert_non_null(data);
	for (int i = 0; i < 1000; i++)
		o += (size_t)sprintf(data + o, "%s: %d\n",
		    i % 2 ? "Received" : "X-N", i);
	EXPECT_INT("1000 headers", message_parse(msg, data, o), 1000);
	EXPECT_INT("1000 headers", msg->nheaders, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(want, sizeof(want), "%d", i);
		EXPECT_STR("1000 headers", msg->headers[i].value, want);
	}
	EXPECT_INT("count Received", message_header_count(msg, "received"), 500);
	EXPECT_INT("count X-N", message_header_count(msg, "X-N"), 500);
	EXPECT_STR("find received 0", message_header_find(msg, "RECEIVED", 0)->value, "1");
	EXPECT_STR("find received 499", message_header_find(msg, "Received", 499)->value, "999");
	EXPECT_TRUE("find received 500", message_header_find(msg, "Received", 500) == NULL);
	EXPECT_TRUE("find absent", message_header_find(msg, "Subject", 0) == NULL);
	EXPECT_INT("count absent", message_header_count(msg, "Subject"), 0);
	EXPECT_INT("count a prefix", message_header_count(msg, "Receive"), 0);
	free(data);
	message_free(msg);
}

static void
test_message_append_body_counts_what_it_cuts(void **state)
{
	static const struct {
		const char *label;
		size_t limit;
		size_t chunks[4];
		size_t nchunks;
		size_t kept, total;
		bool truncated;
	} rows[] = {
		{"one chunk under the limit", 10, {5}, 1, 5, 5, false},
		{"chunks reaching the limit", 10, {5, 5}, 2, 10, 10, false},
		{"chunk crossing the limit", 10, {6, 6}, 2, 10, 12, true},
		{"chunks after the limit", 10, {10, 3, 0, 7}, 4, 10, 20, true},
		{"empty chunks", 10, {0, 0}, 2, 0, 0, false},
		{"limit 0", 0, {1}, 1, 0, 1, true},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct message *msg = message_new(64 * KB, rows[i].limit);
		char want[64];
		size_t w = 0;
		char c = 'a';

		for (size_t k = 0; k < rows[i].nchunks; k++) {
			char chunk[16];

			memset(chunk, c, rows[i].chunks[k]);
			for (size_t n = 0; n < rows[i].chunks[k]; n++)
				want[w++] = c;
			message_append_body(msg, chunk, rows[i].chunks[k]);
			c++;
		}
		expect_body(rows[i].label, msg, want, rows[i].kept);
		EXPECT_INT(rows[i].label, msg->body_total, rows[i].total);
		EXPECT_INT(rows[i].label, msg->body_truncated, rows[i].truncated);
		message_free(msg);
	}
}

static void
test_message_add_header_keeps_value_bytes(void **state)
{
	struct message *msg = message_new(8, MB);

	(void)state;
	message_add_header(msg, "X-Bin", "a\0b\r\n\tc", 7);
	message_add_header(msg, "X-Long", "0123456789", 10);
	message_add_header(msg, "X-Empty", "", 0);
	assert_int_equal(msg->nheaders, 3);
	EXPECT_MEM("NUL and fold kept", msg->headers[0].value,
	    msg->headers[0].value_len, "a\0b\r\n\tc", 7);
	EXPECT_MEM("cut at header_limit", msg->headers[1].value,
	    msg->headers[1].value_len, "01234567", 8);
	EXPECT_MEM("empty", msg->headers[2].value, msg->headers[2].value_len, "", 0);
	EXPECT_INT("one cut", msg->headers_truncated, 1);
	message_free(msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_set_client_parses_address_forms),
		cmocka_unit_test(test_message_set_client_refuses_garbage_and_keeps_nothing),
		cmocka_unit_test(test_message_set_client_null_is_an_unknown_client),
		cmocka_unit_test(test_message_mail_from_strips_brackets_and_finds_the_domain),
		cmocka_unit_test(test_message_reset_keeps_the_connection_and_clears_the_transaction),
		cmocka_unit_test(test_message_parse_splits_headers_and_body),
		cmocka_unit_test(test_message_parse_headers_returns_where_the_body_starts),
		cmocka_unit_test(test_message_parse_cuts_a_1mb_header_line_at_header_limit),
		cmocka_unit_test(test_message_parse_keeps_many_headers_in_order),
		cmocka_unit_test(test_message_append_body_counts_what_it_cuts),
		cmocka_unit_test(test_message_add_header_keeps_value_bytes),
		/* Regression for the lib/message.c bug it describes (fixed). */
		cmocka_unit_test(test_message_set_client_accepts_bracketed_ipv6_literal),
	};

	return cmocka_run_group_tests_name("message", tests, NULL, NULL);
}
