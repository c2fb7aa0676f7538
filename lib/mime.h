/*
 * mime.h - a message's content, decoded for content rules (GMime 3).
 *
 * mime_parse() walks every MIME part of an RFC 5322 message: it decodes
 * base64 and quoted-printable, converts every text part's charset to
 * UTF-8 (a wrong or unknown charset label falls back to a best guess,
 * never a failure), renders HTML to plain text for body rules as
 * SpamAssassin's HTML.pm does (tags dropped, entities decoded,
 * <script>/<style> content dropped, title text kept; white space in text
 * made single spaces; br and div give a line break, li, td, th, dd, dt,
 * embed and h1-h6 a space, p, hr, blockquote, pre and title a blank line,
 * start or end tag), collects URIs from text (http, https, ftp, mailto,
 * www.-prefixed) and from HTML attributes (href, src, action; `html`
 * says so), and notes attachments (file name, content type, decoded
 * size).
 *
 * Bounded by the limits: at most max_scan_size bytes of input are
 * parsed (the rest is not scanned and `truncated` says so), at most
 * max_parts parts and max_depth levels of nesting (the message's own
 * part is level 0; a part of a multipart, or the message inside a
 * message/rfc822, one level deeper; beyond: not walked,
 * `too_many_parts` / `too_deep`), at most max_uris URIs. Broken MIME
 * (bad or missing boundaries, bad base64, wrong charset labels, NUL
 * bytes, 8-bit headers) decodes what it can and never crashes.
 *
 * mime_parse(data, len, limits)
 *	Always returns a content (caller frees with mime_content_free;
 *	NULL is a no-op). data need not be NUL-terminated; limits must not
 *	be NULL.
 *	text and raw_text are never NULL, NUL-terminated, valid UTF-8, and
 *	may hold NUL bytes (their lengths count them): the text/plain and
 *	text/html parts in order, joined by "\n", CRLF made LF;
 *	text_parts and raw_parts say where each part's text is (a part
 *	with no text has no span). A
 *	multipart whose boundary never shows counts as text. When GMime
 *	cannot read the input as a message at all (`parse_error`), the
 *	input itself is the text.
 *	Charsets: a byte order mark wins over the label; ISO-8859-1 is read
 *	as windows-1252; bytes that are not what the label says are read
 *	as windows-1252 (UTF-8 and ASCII labels) or become U+FFFD; past 8
 *	other charsets in one message, the rest get that guess too.
 *	URIs: in order found, each once; from text, http(s)/ftp/mailto and
 *	www.label.tld, without trailing punctuation (a ')' only when
 *	unbalanced). Attachments: a part with a file name, with
 *	Content-Disposition attachment, or that is not text; content_type
 *	lowercased; size of a message/rfc822 attachment: the embedded
 *	message's bytes.
 * mime_header_utf8(value, len)
 *	A header value as UTF-8 without decoding encoded-words: line
 *	breaks removed, 8-bit bytes that are not UTF-8 read as
 *	windows-1252, a NUL as U+FFFD. Caller frees.
 * mime_decode_header(value, len)
 *	A header value with RFC 2047 encoded-words decoded and folding
 *	removed, in UTF-8 (8-bit bytes that are not UTF-8 are read as
 *	windows-1252, Latin-1's superset; a NUL becomes U+FFFD). Caller
 *	frees.
 *
 * Thread-safe (call mime_init() once before threads; it is idempotent).
 */
#ifndef MXG_MIME_H
#define MXG_MIME_H

#include <stdbool.h>
#include <stddef.h>

struct mime_limits {
	size_t max_scan_size;	/* bytes of the message parsed */
	int max_parts;
	int max_depth;
	int max_uris;
};

struct mime_uri {
	char *uri;		/* as found, entities decoded */
	char *host;		/* lowercased host, NULL for mailto: etc. */
	bool html;		/* from an HTML attribute, not from text */
};

struct mime_attachment {
	char *filename;		/* decoded (RFC 2231/2047), NULL if none */
	char *content_type;	/* "application/pdf" */
	size_t size;		/* decoded bytes */
};

struct mime_span {
	size_t off;		/* into text or raw_text */
	size_t len;
};

struct mime_content {
	char *text;		/* body rules: every text part, HTML rendered */
	size_t text_len;
	char *raw_text;		/* rawbody rules: decoded, HTML tags kept */
	size_t raw_text_len;
	struct mime_span *text_parts;	/* each part's text, in order */
	size_t ntext_parts;
	struct mime_span *raw_parts;	/* each part's raw_text, in order */
	size_t nraw_parts;
	struct mime_uri *uris;
	size_t nuris;
	struct mime_attachment *attachments;
	size_t nattachments;
	int nparts;		/* parts walked */
	bool has_text_plain;	/* some text/plain part */
	bool has_html;		/* some text/html part */
	bool truncated;		/* input over max_scan_size */
	bool too_many_parts;
	bool too_deep;
	bool parse_error;	/* GMime could not parse it as MIME at all */
};

void mime_init(void);
struct mime_content *mime_parse(const char *data, size_t len,
    const struct mime_limits *limits);
void mime_content_free(struct mime_content *content);
char *mime_decode_header(const char *value, size_t len);
char *mime_header_utf8(const char *value, size_t len);

#endif
