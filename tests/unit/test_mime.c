/*
 * test_mime.c - lib/mime.h: walking MIME parts, transfer encodings,
 * charsets, HTML rendering, URIs, attachments, RFC 2047 headers, the
 * limits, and broken or hostile input.
 */
#include "unit.h"

#include <stdbool.h>

#include "../../lib/mime.h"
#include "../../lib/mxg.h"
#include "../../lib/strbuf.h"
#include "utf8_check.h"

#define KB 1024
#define MB (1024 * 1024)

#define IN(s) s, sizeof(s) - 1
#define WANT(s) s, sizeof(s) - 1
#define SAME NULL, 0

static const struct mime_limits default_limits = {2 * MB, 100, 20, 500};

/* An exact-size heap copy, so that ASan sees any over-read. */
static struct mime_content *
parse_with(const char *input, size_t len, const struct mime_limits *limits)
{
	char *copy = malloc(len ? len : 1);
	struct mime_content *c;

	assert_non_null(copy);
	memcpy(copy, input, len);
	c = mime_parse(copy, len, limits);
	free(copy);
	assert_non_null(c);
	return c;
}

static struct mime_content *
parse(const char *input, size_t len)
{
	return parse_with(input, len, &default_limits);
}

/* What every result must be, whatever the input. */
static void
expect_sane(const char *label, const struct mime_content *c,
    const struct mime_limits *limits)
{
	assert_non_null(c->text);
	assert_non_null(c->raw_text);
	EXPECT_INT(label, c->text[c->text_len], '\0');
	EXPECT_INT(label, c->raw_text[c->raw_text_len], '\0');
	EXPECT_TRUE(label, valid_utf8(c->text, c->text_len));
	EXPECT_TRUE(label, valid_utf8(c->raw_text, c->raw_text_len));
	EXPECT_TRUE(label, c->nparts <= limits->max_parts);
	EXPECT_TRUE(label, c->nuris <= (size_t)limits->max_uris);
	for (size_t i = 0; i < c->nuris; i++) {
		assert_non_null(c->uris[i].uri);
		EXPECT_TRUE(label, c->uris[i].uri[0] != '\0');
		EXPECT_TRUE(label, valid_utf8(c->uris[i].uri, strlen(c->uris[i].uri)));
		for (size_t k = 0; k < i; k++)
			EXPECT_TRUE(label, strcmp(c->uris[i].uri, c->uris[k].uri) != 0);
	}
	for (size_t i = 0; i < c->nattachments; i++) {
		assert_non_null(c->attachments[i].content_type);
		if (c->attachments[i].filename != NULL)
			EXPECT_TRUE(label, valid_utf8(c->attachments[i].filename,
			    strlen(c->attachments[i].filename)));
	}
}

/* ---- bodies: encodings, charsets, structure ---- */

struct body_row {
	const char *label;
	const char *input;
	size_t input_len;
	const char *text;
	size_t text_len;
	const char *raw;	/* NULL: the same as text */
	size_t raw_len;
	int nparts;
	bool plain, html, parse_error;
};

static const struct body_row body_rows[] = {
	{"plain text",
	    IN("From: a@example.org\nSubject: hi\n\nHello world\n"),
	    WANT("Hello world\n"), SAME, 1, true, false, false},
	{"no Content-Type is text/plain",
	    IN("Subject: x\n\nline one\nline two"),
	    WANT("line one\nline two"), SAME, 1, true, false, false},
	{"CRLF line ends become LF",
	    IN("Subject: x\r\n\r\nline1\r\nline2\r\n"),
	    WANT("line1\nline2\n"), SAME, 1, true, false, false},
	{"quoted-printable, soft line break, =3D",
	    IN("Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: quoted-printable\n\n"
	    "caf=C3=A9 =\nsoft break=3D ok\n"),
	    WANT("caf\xc3\xa9 soft break= ok\n"), SAME, 1, true, false, false},
	{"quoted-printable, encoding name in capitals",
	    IN("Content-Transfer-Encoding: Quoted-Printable\n\na=20b=\n"),
	    WANT("a b"), SAME, 1, true, false, false},
	{"base64",
	    IN("Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQK\n"),
	    WANT("hello world\n"), SAME, 1, true, false, false},
	{"base64 with junk characters: skipped",
	    IN("Content-Transfer-Encoding: base64\n\naGVs!!bG8g*d29y\nbGQK\n"),
	    WANT("hello world\n"), SAME, 1, true, false, false},
	{"base64 truncated: what decodes is kept",
	    IN("Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybG"),
	    WANT("hello worl"), SAME, 1, true, false, false},
	{"base64 stops at the padding",
	    IN("Content-Transfer-Encoding: base64\n\naGk=\naGk=\n"),
	    WANT("hi"), SAME, 1, true, false, false},
	{"unknown transfer encoding: as it is",
	    IN("Content-Transfer-Encoding: x-rot13\n\nuryyb\n"),
	    WANT("uryyb\n"), SAME, 1, true, false, false},
	{"ISO-8859-1",
	    IN("Content-Type: text/plain; charset=ISO-8859-1\n\ncaf\xe9 cr\xe8me\n"),
	    WANT("caf\xc3\xa9 cr\xc3\xa8me\n"), SAME, 1, true, false, false},
	{"ISO-8859-1 label read as windows-1252, as browsers do",
	    IN("Content-Type: text/plain; charset=\"iso-8859-1\"\n\n\x80 5\n"),
	    WANT("\xe2\x82\xac 5\n"), SAME, 1, true, false, false},
	{"windows-1252 quotes and euro",
	    IN("Content-Type: text/plain; charset=windows-1252\n\n\x93q\x94 \x80\x85\n"),
	    WANT("\xe2\x80\x9cq\xe2\x80\x9d \xe2\x82\xac\xe2\x80\xa6\n"), SAME,
	    1, true, false, false},
	{"windows-1252 hole 0x81 stays U+0081",
	    IN("Content-Type: text/plain; charset=cp1252\n\na\x81z"),
	    WANT("a\xc2\x81z"), SAME, 1, true, false, false},
	{"ISO-8859-15 through iconv",
	    IN("Content-Type: text/plain; charset=iso-8859-15\n\n\xa4 10\n"),
	    WANT("\xe2\x82\xac 10\n"), SAME, 1, true, false, false},
	{"KOI8-R through iconv",
	    IN("Content-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4"),
	    WANT("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"), SAME,
	    1, true, false, false},
	{"ks_c_5601-1987 is EUC-KR",
	    IN("Content-Type: text/plain; charset=ks_c_5601-1987\n\n\xc7\xd1"),
	    WANT("\xed\x95\x9c"), SAME, 1, true, false, false},
	{"UTF-16LE part with BOM, base64",
	    IN("Content-Type: text/plain; charset=utf-16le\n"
	    "Content-Transfer-Encoding: base64\n\n//5oAGkAIADpAAoA\n"),
	    WANT("hi \xc3\xa9\n"), SAME, 1, true, false, false},
	{"UTF-16 part, big-endian BOM",
	    IN("Content-Type: text/plain; charset=utf-16\n"
	    "Content-Transfer-Encoding: base64\n\n/v8AaABpACAA6Q==\n"),
	    WANT("hi \xc3\xa9"), SAME, 1, true, false, false},
	{"UTF-16 without BOM: byte order guessed",
	    IN("Content-Type: text/plain; charset=utf-16\n"
	    "Content-Transfer-Encoding: base64\n\naADpAA==\n"),
	    WANT("h\xc3\xa9"), SAME, 1, true, false, false},
	{"UTF-16 BOM under a wrong label wins",
	    IN("Content-Type: text/plain; charset=us-ascii\n"
	    "Content-Transfer-Encoding: base64\n\n//5oAGkAIADpAAoA\n"),
	    WANT("hi \xc3\xa9\n"), SAME, 1, true, false, false},
	{"UTF-16 with an odd byte at the end",
	    IN("Content-Type: text/plain; charset=utf-16le\n"
	    "Content-Transfer-Encoding: base64\n\naABpAA0=\n"),
	    WANT("hi\xef\xbf\xbd"), SAME, 1, true, false, false},
	{"UTF-8 BOM dropped",
	    IN("Content-Type: text/plain; charset=utf-8\n\n\xef\xbb\xbfhi\n"),
	    WANT("hi\n"), SAME, 1, true, false, false},
	{"utf-8 label on Latin-1 bytes",
	    IN("Content-Type: text/plain; charset=\"utf-8\"\n\ncaf\xe9 na\xefve\n"),
	    WANT("caf\xc3\xa9 na\xc3\xafve\n"), SAME, 1, true, false, false},
	{"utf-8 label, UTF-8 and Latin-1 mixed",
	    IN("Content-Type: text/plain; charset=utf-8\n\n\xc3\xa9\xe9\n"),
	    WANT("\xc3\xa9\xc3\xa9\n"), SAME, 1, true, false, false},
	{"utf-8 label, truncated sequence and surrogate",
	    IN("Content-Type: text/plain; charset=utf-8\n\na\xe2\x82 \xed\xa0\x80z"),
	    WANT("a\xc3\xa2\xe2\x80\x9a \xc3\xad\xc2\xa0\xe2\x82\xacz"), SAME,
	    1, true, false, false},
	{"unknown charset label: UTF-8, else windows-1252",
	    IN("Content-Type: text/plain; charset=x-bogus\n\ncaf\xc3\xa9 \xff\n"),
	    WANT("caf\xc3\xa9 \xc3\xbf\n"), SAME, 1, true, false, false},
	{"charset label with iconv suffix is refused",
	    IN("Content-Type: text/plain; charset=\"latin2//TRANSLIT\"\n\n\xb1"),
	    WANT("\xc2\xb1"), SAME, 1, true, false, false},
	{"us-ascii label holding UTF-8",
	    IN("Content-Type: text/plain; charset=us-ascii\n\n\xe2\x82\xac\n"),
	    WANT("\xe2\x82\xac\n"), SAME, 1, true, false, false},
	{"no charset, 8-bit Latin-1",
	    IN("Subject: x\n\nfa\xe7""ade\n"),
	    WANT("fa\xc3\xa7""ade\n"), SAME, 1, true, false, false},
	{"invalid bytes in an iconv charset become U+FFFD",
	    IN("Content-Type: text/plain; charset=shift_jis\n\na\x81\x20z"),
	    WANT("a\xef\xbf\xbd z"), SAME, 1, true, false, false},
	{"HTML only",
	    IN("Content-Type: text/html\n\n<html><head><title>T</title>"
	    "<style>p{}</style></head><body><p>Hello <b>world</b></p>"
	    "<script>var hidden='secret';</script>"
	    "<div>Buy&nbsp;now &amp; save</div></body></html>\n"),
	    WANT("\n\nT\n\n\n\nHello world\n\n\nBuy now & save\n"),
	    WANT("<html><head><title>T</title>"
	    "<style>p{}</style></head><body><p>Hello <b>world</b></p>"
	    "<script>var hidden='secret';</script>"
	    "<div>Buy&nbsp;now &amp; save</div></body></html>\n"),
	    1, false, true, false},
	{"HTML in windows-1252",
	    IN("Content-Type: text/html; charset=windows-1252\n\n<p>\x93hi\x94</p>"),
	    WANT("\n\n\xe2\x80\x9chi\xe2\x80\x9d\n\n"), WANT("<p>\xe2\x80\x9chi\xe2\x80\x9d</p>"),
	    1, false, true, false},
	{"multipart/alternative: both renderings",
	    IN("MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n"
	    "This is a multi-part message in MIME format.\n"
	    "--b1\nContent-Type: text/plain; charset=us-ascii\n\nHello plain\n"
	    "--b1\nContent-Type: text/html; charset=us-ascii\n\n<p>Hello <i>html</i></p>\n"
	    "--b1--\nepilogue\n"),
	    WANT("Hello plain\n\n\nHello html\n\n"),
	    WANT("Hello plain\n<p>Hello <i>html</i></p>"), 3, true, true, false},
	{"nested multipart: mixed > alternative > related",
	    IN("Content-Type: multipart/mixed; boundary=m\n\n"
	    "--m\nContent-Type: multipart/alternative; boundary=a\n\n"
	    "--a\nContent-Type: text/plain\n\nplain text\n"
	    "--a\nContent-Type: multipart/related; boundary=r\n\n"
	    "--r\nContent-Type: text/html\n\n<p>html <img src=\"cid:i1\"> text</p>\n"
	    "--r\nContent-Type: image/png\nContent-ID: <i1>\n"
	    "Content-Transfer-Encoding: base64\n\niVBORw0K\n"
	    "--r--\n--a--\n"
	    "--m\nContent-Type: application/pdf; name=doc.pdf\n"
	    "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
	    "--m--\n"),
	    WANT("plain text\n\n\nhtml  text\n\n"),
	    WANT("plain text\n<p>html <img src=\"cid:i1\"> text</p>"),
	    7, true, true, false},
	{"message/rfc822 is walked",
	    IN("Content-Type: multipart/mixed; boundary=x\n\n"
	    "--x\nContent-Type: text/plain\n\nouter\n"
	    "--x\nContent-Type: message/rfc822\n\n"
	    "From: b@example.org\nSubject: inner\n"
	    "Content-Type: text/html\n\n<p>inner &amp; more</p>\n"
	    "--x--\n"),
	    WANT("outer\n\n\ninner & more\n\n"), WANT("outer\n<p>inner &amp; more</p>"),
	    4, true, true, false},
	{"boundary declared but never used: the body is the text",
	    IN("Content-Type: multipart/mixed; boundary=zz\n\nhello there\nno boundary\n"),
	    WANT("hello there\nno boundary\n"), SAME, 1, false, false, false},
	{"boundary declared but never used, CRLF",
	    IN("Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
	    "hello\r\nworld\r\n"),
	    WANT("hello\nworld\n"), SAME, 1, false, false, false},
	{"boundary used but not the declared one",
	    IN("Content-Type: multipart/mixed; boundary=yy\n\n--zz\n"
	    "Content-Type: text/plain\n\nhidden\n--zz--\n"),
	    WANT("--zz\nContent-Type: text/plain\n\nhidden\n--zz--\n"), SAME,
	    1, false, false, false},
	{"inner multipart without its boundary: its prologue",
	    IN("Content-Type: multipart/mixed; boundary=o\n\n"
	    "--o\nContent-Type: multipart/alternative; boundary=i\n\ninner words\n"
	    "--o--\n"),
	    WANT("inner words"), SAME, 2, false, false, false},
	{"missing closing boundary",
	    IN("Content-Type: multipart/mixed; boundary=zz\n\n"
	    "--zz\nContent-Type: text/plain\n\npart one\n"
	    "--zz\nContent-Type: text/html\n\n<p>two\n"),
	    WANT("part one\n\n\ntwo "), WANT("part one\n<p>two\n"), 3, true, true, false},
	{"boundary without parameter value",
	    IN("Content-Type: multipart/mixed; boundary=\n\n--\n\nx\n"),
	    WANT("--\n\nx\n"), SAME, 1, false, false, false},
	{"multipart with no body at all",
	    IN("Content-Type: multipart/mixed; boundary=b\n"),
	    WANT(""), SAME, 1, false, false, false},
	{"8-bit raw headers",
	    IN("Subject: caf\xe9 \xe2\x82\xac\nFrom: J\xf6rg <j@example.org>\n"
	    "Content-Type: text/plain; charset=utf-8\n\nbody\n"),
	    WANT("body\n"), SAME, 1, true, false, false},
	{"empty input",
	    IN(""), WANT(""), SAME, 0, false, false, true},
	{"headers, no body",
	    IN("Subject: x\n"), WANT(""), SAME, 1, true, false, false},
	{"headers, empty body",
	    IN("Subject: x\n\n"), WANT(""), SAME, 1, true, false, false},
	{"binary garbage is not a message: its bytes are the text",
	    IN("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff"),
	    WANT("\xe2\x80\xb0PNG\n\x1a\n\0\0\0\rIHDR\xc3\xbf"), SAME,
	    0, false, false, true},
	{"text that is not a message",
	    IN("hello, this has no header\nat all\n"),
	    WANT("hello, this has no header\nat all\n"), SAME, 0, false, false, true},
	{"NUL bytes in headers and body",
	    IN("Subject: a\0b\n\nx\0y\n"),
	    WANT("x\0y\n"), SAME, 1, true, false, false},
	{"NUL bytes in a base64 body",
	    IN("Content-Transfer-Encoding: base64\n\nYQBi\n"),
	    WANT("a\0b"), SAME, 1, true, false, false},
	{"other text/* types are not body text",
	    IN("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\n"),
	    WANT(""), SAME, 1, false, false, false},
	{"uuencode",
	    IN("Content-Transfer-Encoding: x-uuencode\n\n"
	    "begin 644 a.txt\n&:&5L;&\\*\n`\nend\n"),
	    WANT("hello\n"), SAME, 1, true, false, false},
};

static void
test_mime_parse_decodes_bodies(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(body_rows); i++) {
		const struct body_row *r = &body_rows[i];
		struct mime_content *c = parse(r->input, r->input_len);

		expect_sane(r->label, c, &default_limits);
		EXPECT_MEM(r->label, c->text, c->text_len, r->text, r->text_len);
		if (r->raw != NULL)
			EXPECT_MEM(r->label, c->raw_text, c->raw_text_len, r->raw,
			    r->raw_len);
		else
			EXPECT_MEM(r->label, c->raw_text, c->raw_text_len, r->text,
			    r->text_len);
		EXPECT_INT(r->label, c->nparts, r->nparts);
		EXPECT_INT(r->label, c->has_text_plain, r->plain);
		EXPECT_INT(r->label, c->has_html, r->html);
		EXPECT_INT(r->label, c->parse_error, r->parse_error);
		EXPECT_INT(r->label, c->truncated, false);
		EXPECT_INT(r->label, c->too_many_parts, false);
		EXPECT_INT(r->label, c->too_deep, false);
		mime_content_free(c);
	}
}

static void
test_mime_parse_html_only_hides_script_text(void **state)
{
	const struct body_row *r = &body_rows[0];
	struct mime_content *c;

	(void)state;
	for (size_t i = 0; i < NELEM(body_rows); i++)
		if (strcmp(body_rows[i].label, "HTML only") == 0)
			r = &body_rows[i];
	c = parse(r->input, r->input_len);
	EXPECT_TRUE("script text not in text", strstr(c->text, "secret") == NULL);
	EXPECT_TRUE("title in text, as SpamAssassin shows it",
	    strstr(c->text, "T\n") != NULL);
	EXPECT_TRUE("script text in raw_text", strstr(c->raw_text, "secret") != NULL);
	EXPECT_INT("HTML only", c->has_html, true);
	EXPECT_INT("HTML only", c->has_text_plain, false);
	mime_content_free(c);
}

/* ---- HTML rendering ----
 *
 * As SpamAssassin's HTML.pm renders it (checked against it): text
 * chunks with white-space runs made one space; br and div give "\n",
 * li, td, th, dd, dt, embed and h1-h6 a space, p, hr, blockquote, pre and
 * title "\n\n" (start or end tag); the chunk after such an element loses
 * its leading space, the one before it its trailing space; script and
 * style text is not shown, title text is. Numeric references that are no
 * character become U+FFFD (HTML.pm keeps them as written), &#150; the
 * windows-1252 character, as browsers show them.
 */

static const struct {
	const char *label;
	const char *html;
	const char *text;
} html_rows[] = {
	{"paragraphs", "<p>One</p><p>Two</p>", "\n\nOne\n\n\n\nTwo\n\n"},
	{"line breaks", "a<br>b<br/><br />c", "a\nb\n\nc"},
	{"end tag br", "a</br>b", "a\nb"},
	{"comment dropped", "x<!-- hidden -->y", "xy"},
	{"comment never closed", "x<!-- never closed y", "x"},
	{"blocks and white space", "<div>a</div>   <div>b</div>", "\na\n\nb\n"},
	{"white space collapses", "Multi\n\n  line \t  text\n", "Multi line text "},
	{"basic entities", "a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;", "a <b> & \"c\" 'd'"},
	{"Latin-1 and other names", "caf&eacute; &Eacute;t&eacute; &copy; &euro;5 &trade;", "caf\xc3\xa9 \xc3\x89t\xc3\xa9 \xc2\xa9 \xe2\x82\xac""5 \xe2\x84\xa2"},
	{"numeric references", "&#65;&#x42;&#X43;&#0;&#x110000;&#150;&#xD800;", "ABC\xef\xbf\xbd\xef\xbf\xbd\xe2\x80\x93\xef\xbf\xbd"},
	{"numeric without semicolon", "&#72&#105!", "Hi!"},
	{"astral character", "&#x1F600;", "\xf0\x9f\x98\x80"},
	{"huge numeric reference", "&#99999999999999999999;x", "\xef\xbf\xbdx"},
	{"unknown and legacy names", "&bogus; &amp &ampx &lt3 &copy2024 &eacute", "&bogus; & &x <3 \xc2\xa9""2024 \xc3\xa9"},
	{"name needing its semicolon", "&euro &hellip;", "&euro \xe2\x80\xa6"},
	{"lone ampersands", "a & b && &# &#x; &", "a & b && &# &#x; &"},
	{"non-breaking spaces are spaces", "a&nbsp;&nbsp;b", "a b"},
	{"soft hyphen kept", "soft&shy;ware", "soft\xc2\xadware"},
	{"script dropped", "<script>document.write('<p>no</p>')</script>yes", "yes"},
	{"script in capitals, odd end tag", "<SCRIPT type=x>bad</SCRIPT >ok", "ok"},
	{"script end tag must end its name", "<script>a</scripts>b</script>c", "c"},
	{"script never closed", "<p>a</p><script>never closed", "\n\na\n\n"},
	{"style dropped", "<style>p{color:red}</style>text", "text"},
	{"head: style and script dropped, title shown", "<head>\n<title>t</title>\n<meta x=y><style>s</style><script>j</script>\n"
	    "</head><body>b</body>", "\n\nt\n\n b"},
	{"text in head is shown, as browsers do", "<head><title>t</title><meta x=y>head text</head><body>b</body>", "\n\nt\n\nhead textb"},
	{"head never closed", "<head>no end<body>shown", "no endshown"},
	{"title text shown, a paragraph of its own", "<title>t</title>x", "\n\nt\n\nx"},
	{"attribute value never closed", "<a href=\"never closed>link text", ""},
	{"tag never closed", "x<div unterminated", "x"},
	{"tag at the very end", "x<b", "x"},
	{"'<' that is not a tag", "a < b and c > d, 1<2", "a < b and c > d, 1<2"},
	{"bogus end tags", "</ >x</>y", "xy"},
	{"declarations", "<!DOCTYPE html><?xml x?>t", "t"},
	{"pre: white space collapses as anywhere", "<pre>  two  spaces\n  kept</pre>after", "\n\ntwo spaces kept\n\nafter"},
	{"table cells and rows", "<table><tr><td>a</td><td>b</td></tr>"
	    "<tr><td>c</td></tr></table>", " a  b  c "},
	{"list items", "<ul><li>one<li>two</ul>", " one two"},
	{"headings", "<h1>Title</h1>Body", " Title Body"},
	{"unclosed paragraphs", "<p>a<p>b", "\n\na\n\nb"},
	{"'>' inside a quoted attribute", "<img alt=\"a>b\" src=\"i.png\">T", "T"},
	{"attribute name starting with '='", "<a =x href=y>z", "z"},
	{"tag name too long to know", "<abcdefghijklmnopqrstuvwxyz>t", "t"},
	{"inline tags join words", "<b>bo</b><i>ld</i> <span>x</span>", "bold x"},
	{"empty", "", ""},
};

static void
test_mime_parse_renders_html(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(html_rows); i++) {
		struct strbuf in = STRBUF_INIT;
		struct mime_content *c;

		strbuf_puts(&in, "Content-Type: text/html; charset=utf-8\n\n");
		strbuf_puts(&in, html_rows[i].html);
		c = parse(in.data, in.len);
		expect_sane(html_rows[i].label, c, &default_limits);
		EXPECT_STR(html_rows[i].label, c->text, html_rows[i].text);
		EXPECT_INT(html_rows[i].label, c->text_len, strlen(html_rows[i].text));
		EXPECT_INT(html_rows[i].label, c->has_html, true);
		mime_content_free(c);
		strbuf_free(&in);
	}
}

/* ---- URIs ---- */

struct uri_want {
	const char *uri;
	const char *host;
};

static const struct {
	const char *label;
	const char *input;	/* a whole message */
	size_t nuris;
	struct uri_want uris[6];
} uri_rows[] = {
	{"http, uppercase host, trailing dot",
	    "Subject: x\n\nVisit http://Example.COM/Path?q=1.\n", 1,
	    {{"http://Example.COM/Path?q=1", "example.com"}}},
	{"https in parentheses",
	    "\n\n(see https://a.example/x)\n", 1,
	    {{"https://a.example/x", "a.example"}}},
	{"balanced parentheses kept",
	    "\n\nwiki https://en.wikipedia.org/wiki/Foo_(bar), ok\n", 1,
	    {{"https://en.wikipedia.org/wiki/Foo_(bar)", "en.wikipedia.org"}}},
	{"trailing punctuation",
	    "\n\nhttp://p.example/a!? http://q.example/b;: \"http://r.example/c\"\n", 3,
	    {{"http://p.example/a", "p.example"}, {"http://q.example/b", "q.example"},
	    {"http://r.example/c", "r.example"}}},
	{"angle brackets and quotes",
	    "\n\n<http://x.example/> 'http://y.example/'\n", 2,
	    {{"http://x.example/", "x.example"}, {"http://y.example/", "y.example"}}},
	{"mailto has no host",
	    "\n\nmail mailto:Bob@Example.com!\n", 1,
	    {{"mailto:Bob@Example.com", NULL}}},
	{"bare www.",
	    "\n\ngo to www.Example.co.uk/offer! or WWW.Shop.Example\n", 2,
	    {{"www.Example.co.uk/offer", "www.example.co.uk"},
	    {"WWW.Shop.Example", "www.shop.example"}}},
	{"www. that is not a host",
	    "\n\nnot www.x or www.example or www.1.2 or www..com or a.www.b.com\n", 0, {{0}}},
	{"ftp with user, password and port",
	    "\n\nftp://user:pw@Files.Example.net:21/a\n", 1,
	    {{"ftp://user:pw@Files.Example.net:21/a", "files.example.net"}}},
	{"IPv6 literal host",
	    "\n\nhttp://[2001:DB8::1]:8080/x\n", 1,
	    {{"http://[2001:DB8::1]:8080/x", "[2001:db8::1]"}}},
	{"scheme in capitals",
	    "\n\nHTTPS://UP.EXAMPLE\n", 1, {{"HTTPS://UP.EXAMPLE", "up.example"}}},
	{"scheme without host is not a URI",
	    "\n\nhttp:// and http:///x and https://?q\n", 0, {{0}}},
	{"glued to a word is not a URI",
	    "\n\nxhttp://no.example\n", 0, {{0}}},
	{"duplicates listed once",
	    "\n\nhttp://d.example http://d.example, http://d.example.\n", 1,
	    {{"http://d.example", "d.example"}}},
	{"different case is another URI",
	    "\n\nhttp://d.example/A http://d.example/a\n", 2,
	    {{"http://d.example/A", "d.example"}, {"http://d.example/a", "d.example"}}},
	{"HTML: entities in href, uppercase host",
	    "Content-Type: text/html\n\n<a HREF='HTTP://UPPER.Example/?a=1&amp;b=2'>x</a>", 1,
	    {{"HTTP://UPPER.Example/?a=1&b=2", "upper.example"}}},
	{"HTML: src unquoted, action relative",
	    "Content-Type: text/html\n\n<img src=http://img.example/p.png>"
	    "<form action=\"/submit\"></form>", 2,
	    {{"http://img.example/p.png", "img.example"}, {"/submit", NULL}}},
	{"HTML: scheme spelled with entities",
	    "Content-Type: text/html\n\n<a href=\"&#104;ttp&#x3a;//ent.example/\">y</a>", 1,
	    {{"http://ent.example/", "ent.example"}}},
	{"HTML: line breaks and padding in href",
	    "Content-Type: text/html\n\n<a href=\"  http://spl\nit.exa\tmple/  \">z</a>", 1,
	    {{"http://split.example/", "split.example"}}},
	{"HTML: legacy entity before '=' in a query is not decoded",
	    "Content-Type: text/html\n\n<a href=\"http://l.example/?a=1&copy=2&amp=3\">c</a>", 1,
	    {{"http://l.example/?a=1&copy=2&amp=3", "l.example"}}},
	{"HTML: mailto, javascript, protocol-relative",
	    "Content-Type: text/html\n\n<a href=\"mailto:a@b.example\">m</a>"
	    "<a href=\"javascript:void(0)\">j</a><img src=\"//cdn.Example/i\">", 3,
	    {{"mailto:a@b.example", NULL}, {"javascript:void(0)", NULL},
	    {"//cdn.Example/i", "cdn.example"}}},
	{"HTML: visible URL text and href, once each",
	    "Content-Type: text/html\n\n<a href=\"http://real.example/\">"
	    "http://real.example/</a> <p>see www.text.example.com</p>", 2,
	    {{"http://real.example/", "real.example"},
	    {"www.text.example.com", "www.text.example.com"}}},
	{"HTML: empty and blank attributes ignored",
	    "Content-Type: text/html\n\n<a href=\"\">x</a><a href=\"   \">y</a><a href>z</a>", 0, {{0}}},
	{"HTML: URIs in comments and scripts are not listed",
	    "Content-Type: text/html\n\n<!-- http://c.example/ --><script>x='http://s.example/'</script>", 0,
	    {{0}}},
	{"URIs from every part",
	    "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhttp://one.example\n"
	    "--b\nContent-Type: message/rfc822\n\nSubject: y\n\nhttp://two.example\n--b--\n", 2,
	    {{"http://one.example", "one.example"}, {"http://two.example", "two.example"}}},
	{"quoted-printable URL",
	    "Content-Transfer-Encoding: quoted-printable\n\nhttp://q=\np.example/a=3Db\n", 1,
	    {{"http://qp.example/a=b", "qp.example"}}},
};

static void
test_mime_parse_collects_uris(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(uri_rows); i++) {
		struct mime_content *c = parse(uri_rows[i].input,
		    strlen(uri_rows[i].input));

		expect_sane(uri_rows[i].label, c, &default_limits);
		EXPECT_INT(uri_rows[i].label, c->nuris, uri_rows[i].nuris);
		for (size_t k = 0; k < c->nuris && k < uri_rows[i].nuris; k++) {
			EXPECT_STR(uri_rows[i].label, c->uris[k].uri, uri_rows[i].uris[k].uri);
			EXPECT_STR(uri_rows[i].label, c->uris[k].host, uri_rows[i].uris[k].host);
		}
		mime_content_free(c);
	}
}

static void
test_mime_parse_stops_at_max_uris(void **state)
{
	static const char input[] = "Subject: u\n\nhttp://1.example http://2.example "
	    "http://1.example http://3.example http://4.example\n";
	struct mime_limits limits = default_limits;
	struct mime_content *c;

	(void)state;
	limits.max_uris = 2;
	c = parse_with(input, sizeof(input) - 1, &limits);
	EXPECT_INT("max_uris 2", c->nuris, 2);
	EXPECT_STR("max_uris 2", c->uris[0].uri, "http://1.example");
	EXPECT_STR("max_uris 2", c->uris[1].uri, "http://2.example");
	mime_content_free(c);

	limits.max_uris = 0;
	c = parse_with(input, sizeof(input) - 1, &limits);
	EXPECT_INT("max_uris 0", c->nuris, 0);
	EXPECT_STR("max_uris 0: text still there", c->text,
	    "http://1.example http://2.example http://1.example "
	    "http://3.example http://4.example\n");
	mime_content_free(c);
}

/* ---- attachments ---- */

struct attachment_want {
	const char *filename;
	const char *type;
	size_t size;
};

static const struct {
	const char *label;
	const char *input;
	size_t n;
	struct attachment_want want[3];
	const char *text;
} attachment_rows[] = {
	{"RFC 2231 filename*=, base64 size",
	    "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nsee attached\n"
	    "--b\nContent-Type: application/pdf\n"
	    "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\n"
	    "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n", 1,
	    {{"r\xc3\xa9sum\xc3\xa9.pdf", "application/pdf", 9}}, "see attached"},
	{"RFC 2231 continuations",
	    "Content-Type: application/zip\nContent-Disposition: attachment;\n"
	    " filename*0*=UTF-8''long%20; filename*1=name.zip\n\nPK\n", 1,
	    {{"long name.zip", "application/zip", 3}}, ""},
	{"RFC 2231 in ISO-8859-1",
	    "Content-Type: application/octet-stream;\n name*=iso-8859-1'fr'caf%E9.bin\n\nx", 1,
	    {{"caf\xc3\xa9.bin", "application/octet-stream", 1}}, ""},
	{"RFC 2047 in a quoted filename",
	    "Content-Type: application/pdf\nContent-Disposition: attachment;"
	    " filename=\"=?iso-8859-1?q?r=E9sum=E9=2Epdf?=\"\n\n%PDF", 1,
	    {{"r\xc3\xa9sum\xc3\xa9.pdf", "application/pdf", 4}}, ""},
	{"name from Content-Type, type lowercased",
	    "Content-Type: image/GIF; name=\"Pic.GIF\"\n\nGIF89a", 1,
	    {{"Pic.GIF", "image/gif", 6}}, ""},
	{"filename with an apostrophe",
	    "Content-Type: text/plain; name=\"John's notes.txt\"\n\nnotes\n", 1,
	    {{"John's notes.txt", "text/plain", 6}}, "notes\n"},
	{"8-bit raw filename read as Latin-1",
	    "Content-Type: application/pdf; name=\"r\xe9sum\xe9.pdf\"\n\n%PDF", 1,
	    {{"r\xc3\xa9sum\xc3\xa9.pdf", "application/pdf", 4}}, ""},
	{"no file name",
	    "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1"
	    "Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiYw==\n", 1,
	    {{NULL, "application/octet-stream", 100}}, ""},
	{"text with disposition attachment is also body text",
	    "Content-Disposition: attachment\n\nlog line\n", 1,
	    {{NULL, "text/plain", 9}}, "log line\n"},
	{"inline text without a name is not an attachment",
	    "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Disposition: inline\n\n"
	    "hello\n--b\nContent-Type: text/calendar\n\nBEGIN\n--b--\n", 0, {{0}}, "hello"},
	{"forwarded message as attachment, walked",
	    "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfwd\n"
	    "--b\nContent-Type: message/rfc822; name=fwd.eml\n"
	    "Content-Disposition: attachment\n\n"
	    "Subject: in\n\ninner body\n"
	    "--b--\n", 1, {{"fwd.eml", "message/rfc822", 23}}, "fwd\ninner body"},
	{"attachments inside a forwarded message",
	    "Content-Type: message/rfc822\n\n"
	    "Content-Type: multipart/mixed; boundary=i\n\n"
	    "--i\nContent-Type: application/x-msdownload; name=\"a.exe\"\n\nMZ\n"
	    "--i\nContent-Type: image/jpeg\n\n\xff\xd8\n--i--\n", 2,
	    {{"a.exe", "application/x-msdownload", 2}, {NULL, "image/jpeg", 2}}, ""},
};

static void
test_mime_parse_notes_attachments(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(attachment_rows); i++) {
		struct mime_content *c = parse(attachment_rows[i].input,
		    strlen(attachment_rows[i].input));

		expect_sane(attachment_rows[i].label, c, &default_limits);
		EXPECT_INT(attachment_rows[i].label, c->nattachments, attachment_rows[i].n);
		for (size_t k = 0; k < c->nattachments && k < attachment_rows[i].n; k++) {
			const struct attachment_want *w = &attachment_rows[i].want[k];

			EXPECT_STR(attachment_rows[i].label, c->attachments[k].filename,
			    w->filename);
			EXPECT_STR(attachment_rows[i].label,
			    c->attachments[k].content_type, w->type);
			EXPECT_INT(attachment_rows[i].label, c->attachments[k].size, w->size);
		}
		EXPECT_STR(attachment_rows[i].label, c->text, attachment_rows[i].text);
		mime_content_free(c);
	}
}

/* ---- limits ---- */

static void
test_mime_parse_stops_at_max_parts(void **state)
{
	static const char input[] = "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\n\none\n--b\n\ntwo\n--b\n\nthree\n--b\n\nfour\n--b--\n";
	struct mime_limits limits = default_limits;
	struct mime_content *c;

	(void)state;
	limits.max_parts = 3;
	c = parse_with(input, sizeof(input) - 1, &limits);
	expect_sane("max_parts 3", c, &limits);
	EXPECT_INT("max_parts 3", c->nparts, 3);
	EXPECT_INT("max_parts 3", c->too_many_parts, true);
	EXPECT_STR("max_parts 3", c->text, "one\ntwo");
	mime_content_free(c);

	limits.max_parts = 5;
	c = parse_with(input, sizeof(input) - 1, &limits);
	EXPECT_INT("max_parts 5: exactly enough", c->nparts, 5);
	EXPECT_INT("max_parts 5: exactly enough", c->too_many_parts, false);
	EXPECT_STR("max_parts 5: exactly enough", c->text, "one\ntwo\nthree\nfour");
	mime_content_free(c);

	limits.max_parts = 0;
	c = parse_with(input, sizeof(input) - 1, &limits);
	EXPECT_INT("max_parts 0", c->nparts, 0);
	EXPECT_INT("max_parts 0", c->too_many_parts, true);
	EXPECT_STR("max_parts 0", c->text, "");
	mime_content_free(c);
}

/* levels multiparts, each inside the last, a text part in the middle. */
static char *
nested_multiparts(int levels, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_puts(&sb, "Subject: deep\n");
	for (int i = 0; i < levels; i++)
		strbuf_printf(&sb, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n"
		    "--b%d\n", i, i);
	strbuf_puts(&sb, "Content-Type: text/plain\n\ndeepest\n");
	for (int i = levels - 1; i >= 0; i--)
		strbuf_printf(&sb, "--b%d--\n", i);
	*len = sb.len;
	return strbuf_steal(&sb);
}

static void
test_mime_parse_stops_at_max_depth(void **state)
{
	struct mime_limits limits = default_limits;
	struct mime_content *c;
	size_t len;
	char *input = nested_multiparts(50, &len);

	(void)state;
	c = parse_with(input, len, &limits);
	expect_sane("50 levels, max_depth 20", c, &limits);
	EXPECT_INT("50 levels, max_depth 20", c->too_deep, true);
	EXPECT_INT("50 levels, max_depth 20", c->nparts, 21);
	EXPECT_INT("50 levels, max_depth 20", c->has_text_plain, false);
	EXPECT_STR("50 levels, max_depth 20", c->text, "");
	mime_content_free(c);

	limits.max_depth = 50;
	c = parse_with(input, len, &limits);
	EXPECT_INT("50 levels, max_depth 50", c->too_deep, false);
	EXPECT_INT("50 levels, max_depth 50", c->nparts, 51);
	EXPECT_STR("50 levels, max_depth 50", c->text, "deepest");
	mime_content_free(c);
	free(input);

	/* a message/rfc822 is one level deeper */
	static const char fwd[] = "Content-Type: message/rfc822\n\n"
	    "Content-Type: message/rfc822\n\n"
	    "Content-Type: text/plain\n\ninner\n";
	limits.max_depth = 1;
	c = parse_with(fwd, sizeof(fwd) - 1, &limits);
	EXPECT_INT("rfc822 twice, max_depth 1", c->too_deep, true);
	EXPECT_INT("rfc822 twice, max_depth 1", c->nparts, 2);
	EXPECT_STR("rfc822 twice, max_depth 1", c->text, "");
	mime_content_free(c);
	limits.max_depth = 2;
	c = parse_with(fwd, sizeof(fwd) - 1, &limits);
	EXPECT_INT("rfc822 twice, max_depth 2", c->too_deep, false);
	EXPECT_INT("rfc822 twice, max_depth 2", c->nparts, 3);
	EXPECT_STR("rfc822 twice, max_depth 2", c->text, "inner\n");
	mime_content_free(c);

	/* deeper than GMime itself goes: no crash, flagged */
	input = nested_multiparts(3000, &len);
	limits.max_depth = 20;
	c = parse_with(input, len, &limits);
	EXPECT_INT("3000 levels", c->too_deep, true);
	EXPECT_INT("3000 levels", c->nparts, 21);
	mime_content_free(c);
	free(input);
}

static void
test_mime_parse_truncates_at_max_scan_size(void **state)
{
	static const char input[] = "Subject: x\n\n0123456789abcdefghij";
	struct mime_limits limits = default_limits;
	struct mime_content *c;

	(void)state;
	limits.max_scan_size = sizeof(input) - 1 - 10;
	c = parse_with(input, sizeof(input) - 1, &limits);
	EXPECT_INT("cut in the body", c->truncated, true);
	EXPECT_STR("cut in the body", c->text, "0123456789");
	mime_content_free(c);

	limits.max_scan_size = sizeof(input) - 1;
	c = parse_with(input, sizeof(input) - 1, &limits);
	EXPECT_INT("exactly max_scan_size", c->truncated, false);
	EXPECT_STR("exactly max_scan_size", c->text, "0123456789abcdefghij");
	mime_content_free(c);

	limits.max_scan_size = 0;
	c = parse_with(input, sizeof(input) - 1, &limits);
	EXPECT_INT("max_scan_size 0", c->truncated, true);
	EXPECT_INT("max_scan_size 0", c->parse_error, true);
	EXPECT_STR("max_scan_size 0", c->text, "");
	mime_content_free(c);

	/* cut inside base64: what decodes is kept */
	static const char b64[] = "Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQK\n";
	limits.max_scan_size = sizeof(b64) - 1 - 6;
	c = parse_with(b64, sizeof(b64) - 1, &limits);
	EXPECT_INT("cut inside base64", c->truncated, true);
	EXPECT_STR("cut inside base64", c->text, "hello wo");
	mime_content_free(c);

	/* cut in the middle of a UTF-8 character */
	static const char utf8[] = "Content-Type: text/plain; charset=utf-8\n\nab\xe2\x82\xac";
	limits.max_scan_size = sizeof(utf8) - 1 - 1;
	c = parse_with(utf8, sizeof(utf8) - 1, &limits);
	EXPECT_INT("cut inside a character", c->truncated, true);
	EXPECT_STR("cut inside a character", c->text, "ab\xc3\xa2\xe2\x80\x9a");
	mime_content_free(c);
}

/* ---- what GMime is not shown (header_guard in mime.c) ---- */

static void
test_mime_parse_guard_leaves_bodies_as_they_came(void **state)
{
	static const char body[] =
	    "Note: a header-looking line\n"
	    "Subject: =?x-made-up?q?word?= and =?utf-8?q?fine?=\n"
	    "Content-Type: text/plain; name*=bogus'en'x; a=1;;;;\n"
	    ": empty name\n"
	    "--\n-- \nsignature\n";
	struct strbuf in = STRBUF_INIT;
	struct mime_content *c;

	(void)state;
	strbuf_puts(&in, "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n");
	strbuf_puts(&in, body);
	strbuf_puts(&in, "--b--\n");
	c = parse(in.data, in.len);
	EXPECT_MEM("text part", c->text, c->text_len, body, sizeof(body) - 2);
	mime_content_free(c);
	strbuf_free(&in);

	/* the same as the whole body of a multipart that never splits */
	strbuf_puts(&in, "Content-Type: multipart/mixed; boundary=zz\n\n");
	strbuf_puts(&in, body);
	c = parse(in.data, in.len);
	EXPECT_MEM("unsplit multipart", c->text, c->text_len, body, sizeof(body) - 1);
	mime_content_free(c);
	strbuf_free(&in);

	/* more "--" lines than a message of max_parts parts could need */
	strbuf_puts(&in, "Subject: lines\n\n");
	for (int i = 0; i < 1000; i++)
		strbuf_puts(&in, "-----\n");
	c = parse(in.data, in.len);
	EXPECT_INT("1000 dash lines", c->text_len, 6000);
	EXPECT_TRUE("1000 dash lines", c->text_len == 6000 &&
	    memcmp(c->text, in.data + 16, 6000) == 0);
	mime_content_free(c);
	strbuf_free(&in);
}

static void
test_mime_parse_guard_keeps_mime_headers_working(void **state)
{
	struct strbuf in = STRBUF_INIT;
	struct mime_content *c;

	(void)state;
	/* many other headers around the Content-* ones */
	for (int i = 0; i < 300; i++)
		strbuf_printf(&in, "X-Header-%d: value %d\n", i, i);
	strbuf_puts(&in, "Content-Type: multipart/mixed;\n boundary=\"b\"\n");
	strbuf_puts(&in, "Received: from x\n\tby y\nMIME-Version: 1.0\n\n");
	strbuf_puts(&in, "--b\nX-A: 1\nContent-Type: text/html\nX-B: 2\n"
	    "Content-Transfer-Encoding: base64\nX-C: 3\n\nPGI+aGk8L2I+\n");
	strbuf_puts(&in, "--b\nContent-Type: application/pdf; a=1; b=2; c=3; d=4;\n"
	    " name=\"x.pdf\"\nContent-Disposition: attachment\n\n%PDF\n--b--\n");
	c = parse(in.data, in.len);
	EXPECT_INT("many headers", c->nparts, 3);
	EXPECT_INT("many headers", c->has_html, true);
	EXPECT_STR("many headers", c->text, "hi");
	EXPECT_INT("many headers", c->nattachments, 1);
	if (c->nattachments == 1)
		EXPECT_STR("many headers", c->attachments[0].filename, "x.pdf");
	mime_content_free(c);
	strbuf_free(&in);

	/* two Content-Types: GMime takes the last, with or without guard */
	static const char dup[] = "Content-Type: text/plain\n"
	    "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: text/html\n\n<p>x\n--b--\n";
	c = parse(dup, sizeof(dup) - 1);
	EXPECT_INT("two Content-Types", c->nparts, 2);
	EXPECT_STR("two Content-Types", c->text, "\n\nx");
	mime_content_free(c);

	/* the parameters GMime keeps: the first 64 */
	strbuf_puts(&in, "Content-Type: text/plain; charset=iso-8859-1");
	for (int i = 0; i < 200; i++)
		strbuf_printf(&in, "; p%d=%d", i, i);
	strbuf_puts(&in, "\n\ncaf\xe9\n");
	c = parse(in.data, in.len);
	EXPECT_STR("200 parameters", c->text, "caf\xc3\xa9\n");
	mime_content_free(c);
	strbuf_free(&in);
}

/* Shapes that cost GMime hundreds of times their size, 2 MiB each:
 * they must parse quickly, bounded, and as the limits say. */
static void
test_mime_parse_hostile_shapes_stay_bounded(void **state)
{
	static const struct {
		const char *label, *head, *unit, *tail;
		int nparts;
		bool too_many_parts;
	} rows[] = {
		{"tiny parts", "Content-Type: multipart/mixed; boundary=b\n\n",
		    "--b\n\n", "", 100, true},
		{"empty header names", "From: a@example.org\n", ":\n", "\nbody\n", 1, false},
		{"short headers", "From: a@example.org\n", "X: y\n", "\nbody\n", 1, false},
		{"dash headers", "From: a@example.org\n", "--: y\n", "\nbody\n", 1, false},
		{"many Content-Type lines", "", "Content-Type: text/plain\n", "\nbody\n", 1, false},
		{"one huge address list", "To: ", "a@b.example,", "\n\nbody\n", 1, false},
		{"many parameters", "Content-Type: text/plain", "; a=b", "\n\nbody\n", 1, false},
		{"huge parameter value", "Content-Disposition: attachment; filename=",
		    "aaaaaaaa", "\n\nbody\n", 1, false},
		{"made-up charsets", "Subject:", " =?x-made-up?q?a?=", "\n\nbody\n", 1, false},
		{"RFC 2231 made-up charsets", "Content-Type: text/plain", "; a*=zz'en'b",
		    "\n\nbody\n", 1, false},
		{"nested messages", "", "Content-Type: message/rfc822\n\n", "body\n", 21, false},
		{"nested multiparts", "", "Content-Type: multipart/mixed; boundary=b\n\n--b\n",
		    "body\n", 21, false},
		{"HTML tags", "Content-Type: text/html\n\n", "<p a=b>", "", 1, false},
		{"HTML entities", "Content-Type: text/html\n\n", "&eacute;&#1;&bogusbogus;", "", 1, false},
		{"HTML unterminated attribute", "Content-Type: text/html\n\n<a href=\"",
		    "x", "", 1, false},
		{"HTML comment openers", "Content-Type: text/html\n\n", "<!--", "", 1, false},
		{"HTML script openers", "Content-Type: text/html\n\n", "<script></scrip", "", 1, false},
		{"URI-looking text", "\n", "http://a.example/ www.b.example.com ", "", 1, false},
		{"encoded-word openers", "Content-Type: text/plain; name=\"", "=?", "\"\n\nx", 1, false},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct strbuf in = STRBUF_INIT;
		struct mime_content *c;
		long long start;

		strbuf_puts(&in, rows[i].head);
		while (in.len < 2 * MB - 64)
			strbuf_puts(&in, rows[i].unit);
		strbuf_puts(&in, rows[i].tail);
		start = mxg_now_ms();
		c = parse(in.data, in.len);
		expect_sane(rows[i].label, c, &default_limits);
		EXPECT_INT(rows[i].label, c->nparts, rows[i].nparts);
		EXPECT_INT(rows[i].label, c->too_many_parts, rows[i].too_many_parts);
		/* generous: sanitizers make it slower tenfold */
		EXPECT_TRUE(rows[i].label, mxg_now_ms() - start < 20000);
		mime_content_free(c);
		strbuf_free(&in);
	}
}

/* ---- mime_decode_header ---- */

static const struct {
	const char *label;
	const char *in;
	size_t len;
	const char *want;
} header_rows[] = {
	{"plain ASCII", IN("Hello world"), "Hello world"},
	{"empty", IN(""), ""},
	{"Q, UTF-8", IN("=?UTF-8?Q?caf=C3=A9?="), "caf\xc3\xa9"},
	{"Q, underscore is a space", IN("=?utf-8?q?hello_world?="), "hello world"},
	{"B, ISO-8859-1", IN("=?ISO-8859-1?B?Y2Fm6Q==?="), "caf\xc3\xa9"},
	{"B, UTF-8, lower case b", IN("=?utf-8?b?w6k=?= x"), "\xc3\xa9 x"},
	{"adjacent words: the space between goes",
	    IN("=?utf-8?b?w6k=?= =?utf-8?b?w6k=?="), "\xc3\xa9\xc3\xa9"},
	{"adjacent words across a fold",
	    IN("Re: =?iso-8859-1?q?caf=E9?=\r\n =?iso-8859-1?q?_cr=E8me?="),
	    "Re: caf\xc3\xa9 cr\xc3\xa8me"},
	{"words around text keep their spaces",
	    IN("=?utf-8?q?a?= b =?utf-8?q?c?="), "a b c"},
	{"a character split across two words",
	    IN("=?utf-8?b?4oI=?= =?utf-8?b?rA==?="), "\xe2\x82\xac"},
	{"two charsets side by side",
	    IN("=?iso-8859-1?q?=E9?= =?utf-8?q?=C3=A9?="), "\xc3\xa9\xc3\xa9"},
	{"word glued to text", IN("a=?utf-8?q?b?=c"), "abc"},
	{"KOI8-R", IN("=?koi8-r?b?8NLJ18XU?="),
	    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"},
	{"windows-1252", IN("=?windows-1252?q?=93hi=94?="),
	    "\xe2\x80\x9chi\xe2\x80\x9d"},
	{"RFC 2231 language", IN("=?utf-8*en?q?x?="), "x"},
	{"utf-8 label on a Latin-1 byte", IN("=?utf-8?q?caf=E9?="), "caf\xc3\xa9"},
	{"unknown charset: best guess", IN("=?x-bogus?q?caf=E9?="), "caf\xc3\xa9"},
	{"NUL from =00", IN("=?utf-8?q?a=00b?="), "a\xef\xbf\xbd""b"},
	{"NUL in the raw value", IN("a\0b"), "a\xef\xbf\xbd""b"},
	{"bad Q escape kept", IN("=?utf-8?q?a=ZZb=?="), "a=ZZb="},
	{"bad base64 characters skipped", IN("=?utf-8?b?w6k*!?="), "\xc3\xa9"},
	{"unknown encoding: left as it is", IN("=?utf-8?x?abc?="), "=?utf-8?x?abc?="},
	{"never closed: left as it is", IN("=?utf-8?q?no end"), "=?utf-8?q?no end"},
	{"space inside: not a word", IN("=?utf-8?q?a b?="), "=?utf-8?q?a b?="},
	{"empty charset: not a word", IN("=??q?a?="), "=??q?a?="},
	{"empty text", IN("x =?utf-8?q?" "?= y"), "x  y"},
	{"raw Latin-1", IN("caf\xe9"), "caf\xc3\xa9"},
	{"raw UTF-8", IN("caf\xc3\xa9"), "caf\xc3\xa9"},
	{"raw windows-1252", IN("\x93quoted\x94"), "\xe2\x80\x9cquoted\xe2\x80\x9d"},
	{"folding removed", IN("Hello\r\n world\n\tagain"), "Hello world\tagain"},
	{"length counts, not NUL", "abcdef", 3, "abc"},
	{"KOI8-U alone", IN("=?koi8-u?q?=F0?="), "\xd0\x9f"},
	{"past 8 charsets in one call: the guess",
	    IN("=?koi8-r?q?a?= =?iso-8859-2?q?a?= =?iso-8859-5?q?a?= "
	    "=?iso-8859-7?q?a?= =?shift_jis?q?a?= =?euc-kr?q?a?= "
	    "=?big5?q?a?= =?gb2312?q?a?= =?koi8-u?q?=F0?= =?koi8-r?q?=F0?="),
	    "aaaaaaaa\xc3\xb0\xd0\x9f"},
	{"UTF-8 and Latin-1 take no charset slot",
	    IN("=?utf-8?q?a?= =?iso-8859-1?q?a?= =?windows-1252?q?a?= =?us-ascii?q?a?= "
	    "=?koi8-r?q?a?= =?iso-8859-2?q?a?= =?iso-8859-5?q?a?= "
	    "=?iso-8859-7?q?a?= =?shift_jis?q?a?= =?euc-kr?q?a?= "
	    "=?big5?q?a?= =?gb2312?q?a?= =?koi8-u?q?=F0?="),
	    "aaaaaaaaaaaa\xc3\xb0"},
};

static void
test_mime_decode_header_decodes_words(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(header_rows); i++) {
		char *got = mime_decode_header(header_rows[i].in, header_rows[i].len);

		EXPECT_STR(header_rows[i].label, got, header_rows[i].want);
		EXPECT_TRUE(header_rows[i].label, valid_utf8(got, strlen(got)));
		free(got);
	}
}

static void
test_mime_decode_header_null_is_empty(void **state)
{
	char *got;

	(void)state;
	got = mime_decode_header(NULL, 0);
	EXPECT_STR("NULL", got, "");
	free(got);
}

/* ---- odds and ends ---- */

static void
test_mime_content_free_null_is_a_noop(void **state)
{
	(void)state;
	mime_content_free(NULL);
	mime_init();
	mime_init();
}

static void
test_mime_parse_every_byte_value(void **state)
{
	char input[256 + 32];
	struct mime_content *c;
	size_t n;

	(void)state;
	n = (size_t)snprintf(input, sizeof(input), "Subject: all\n\n");
	for (int i = 0; i < 256; i++)
		input[n++] = (char)i;
	c = parse(input, n);
	expect_sane("every byte", c, &default_limits);
	EXPECT_INT("every byte", c->parse_error, false);
	/* 0x80-0xff read as windows-1252: 128 + 273 bytes of UTF-8 */
	EXPECT_INT("every byte", c->text_len, 401);
	mime_content_free(c);
}

/* ---- part spans, the HTML flag, mime_header_utf8 ---- */

/* text_parts and raw_parts say where each text part is, in order; a part
 * with no text has no span; parts are joined by one newline. */
static void
test_mime_parse_spans_say_where_each_part_is(void **state)
{
	static const char in[] =
	    "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: text/plain\n\none\n"
	    "--b\nContent-Type: text/html\n\n<p>two</p>\n"
	    "--b\nContent-Type: text/plain\n\n\n"
	    "--b\nContent-Type: image/png\n\nPNG\n"
	    "--b\nContent-Type: text/plain\n\nthree\n"
	    "--b--\n";
	struct mime_content *c;

	(void)state;
	c = parse(in, sizeof(in) - 1);
	EXPECT_STR("spans: text", c->text, "one\n\n\ntwo\n\n\nthree");
	EXPECT_INT("spans: text parts", c->ntext_parts, 3);
	if (c->ntext_parts == 3) {
		EXPECT_MEM("text part 1", c->text + c->text_parts[0].off,
		    c->text_parts[0].len, "one", 3);
		EXPECT_MEM("text part 2", c->text + c->text_parts[1].off,
		    c->text_parts[1].len, "\n\ntwo\n\n", 7);
		EXPECT_MEM("text part 3", c->text + c->text_parts[2].off,
		    c->text_parts[2].len, "three", 5);
	}
	EXPECT_INT("spans: raw parts", c->nraw_parts, 3);
	if (c->nraw_parts == 3) {
		EXPECT_MEM("raw part 2", c->raw_text + c->raw_parts[1].off,
		    c->raw_parts[1].len, "<p>two</p>", 10);
		EXPECT_INT("raw part 3 at the end", c->raw_parts[2].off +
		    c->raw_parts[2].len, c->raw_text_len);
	}
	mime_content_free(c);

	/* no text at all: no spans */
	c = parse("Content-Type: image/png\n\nPNG\n", 28);
	EXPECT_INT("no text: spans", c->ntext_parts + c->nraw_parts, 0);
	mime_content_free(c);
}

/* URIs from HTML attributes say so; those found in text do not. */
static void
test_mime_parse_marks_uris_from_html(void **state)
{
	static const char in[] =
	    "Content-Type: text/html\n\n<a href=\"http://attr.example/\">"
	    "see http://text.example/</a>";
	struct mime_content *c;

	(void)state;
	c = parse(in, sizeof(in) - 1);
	EXPECT_INT("html flag: uris", c->nuris, 2);
	for (size_t i = 0; i < c->nuris; i++)
		EXPECT_INT(c->uris[i].uri, c->uris[i].html,
		    strcmp(c->uris[i].uri, "http://attr.example/") == 0);
	mime_content_free(c);
}

static void
test_mime_header_utf8_leaves_encoded_words(void **state)
{
	static const struct {
		const char *label;
		const char *in;
		size_t len;
		const char *want;
	} rows[] = {
		{"ASCII as it is", "<a@b.example>", 13, "<a@b.example>"},
		{"encoded-words stay", "<=?utf-8?q?x?=@b>", 17, "<=?utf-8?q?x?=@b>"},
		{"line breaks go", "a\r\n b", 5, "a b"},
		{"UTF-8 stays", "caf\xc3\xa9", 5, "caf\xc3\xa9"},
		{"Latin-1 byte read as windows-1252", "caf\xe9", 4, "caf\xc3\xa9"},
		{"NUL becomes U+FFFD", "a\0b", 3, "a\xef\xbf\xbd" "b"},
		{"empty", "", 0, ""},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		char *got = mime_header_utf8(rows[i].in, rows[i].len);

		EXPECT_STR(rows[i].label, got, rows[i].want);
		free(got);
	}
	char *got = mime_header_utf8(NULL, 5);
	EXPECT_STR("NULL", got, "");
	free(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mime_parse_decodes_bodies),
		cmocka_unit_test(test_mime_parse_html_only_hides_script_text),
		cmocka_unit_test(test_mime_parse_renders_html),
		cmocka_unit_test(test_mime_parse_collects_uris),
		cmocka_unit_test(test_mime_parse_stops_at_max_uris),
		cmocka_unit_test(test_mime_parse_notes_attachments),
		cmocka_unit_test(test_mime_parse_stops_at_max_parts),
		cmocka_unit_test(test_mime_parse_stops_at_max_depth),
		cmocka_unit_test(test_mime_parse_truncates_at_max_scan_size),
		cmocka_unit_test(test_mime_parse_guard_leaves_bodies_as_they_came),
		cmocka_unit_test(test_mime_parse_guard_keeps_mime_headers_working),
		cmocka_unit_test(test_mime_parse_hostile_shapes_stay_bounded),
		cmocka_unit_test(test_mime_decode_header_decodes_words),
		cmocka_unit_test(test_mime_decode_header_null_is_empty),
		cmocka_unit_test(test_mime_content_free_null_is_a_noop),
		cmocka_unit_test(test_mime_parse_every_byte_value),
		cmocka_unit_test(test_mime_parse_spans_say_where_each_part_is),
		cmocka_unit_test(test_mime_parse_marks_uris_from_html),
		cmocka_unit_test(test_mime_header_utf8_leaves_encoded_words),
	};

	mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
