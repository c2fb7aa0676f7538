/*
 * mime.c - a message's content, decoded for content rules. See mime.h.
 *
 * GMime 3 finds the MIME structure and undoes the transfer encodings;
 * everything else is ours, so that it is bounded and does not depend on
 * the process locale: charset conversion (iconv, with a windows-1252 guess
 * for bytes that are not what the label says), RFC 2047 words in
 * mime_decode_header, the HTML renderer and the URI finder.
 *
 * GMime is not given the message as it came. Measured on 3.2.13, a
 * 2 MiB message costs GMime up to 250 times its size in memory when it
 * is made of tiny header lines (":\n" is a header), of tiny parts
 * ("--b\n\n"), of parameters or of addresses; and GMime keeps, for the
 * life of the process, every charset name it has looked up
 * (g_mime_charset_iconv_name's table), so made-up names in
 * encoded-words or RFC 2231 parameters grow the milter for good. So
 * mime_parse() parses a copy where, in place and at the same length,
 * header_guard() has defused what could cost that (see there), then
 * puts the original bytes back before any part is decoded: GMime reads
 * part contents from the stream only when asked, so bodies come out
 * exactly as they came.
 */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "mxg.h"
#include "strbuf.h"

/* header_guard() limits; far above what real mail needs. */
#define GUARD_CONTENT_LINES 16	/* Content-* fields per header block */
#define GUARD_PARAMS 64		/* ';' in one Content-* field */
#define GUARD_FIELD_BYTES 16384	/* bytes of one Content-* field */
#define GUARD_MERGE_BYTES 4096	/* bytes of other fields merged into one */
#define GUARD_DASH_SLACK 64	/* "--" lines beyond 2 * max_parts */

#define CHARSET_NAME_MAX 40

/* ASCII only: <ctype.h> answers by the process locale. */
static bool
ascii_alpha(unsigned char c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static bool
ascii_alnum(unsigned char c)
{
	return ascii_alpha(c) || (c >= '0' && c <= '9');
}

static bool
ascii_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	    c == '\v';
}

static char
ascii_lower(unsigned char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *mime_options;

static struct mime_content *parse(const char *data, size_t len,
    const struct mime_limits *limits);

/* GObject initialises a class when its first object is made; done here,
 * once, no two threads ever race to do it. */
static const char warm_up[] =
    "Content-Type: multipart/mixed; boundary=b\n\n"
    "--b\nContent-Type: text/plain; charset=iso-8859-15\n"
    "Content-Transfer-Encoding: quoted-printable\n\n=A4\n"
    "--b\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n"
    "PHA+aGk8L3A+\n"
    "--b\nContent-Type: application/octet-stream; name*=utf-8''a\n"
    "Content-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n!80``\n`\nend\n"
    "--b\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
    "Content-Type: multipart/signed; boundary=s\n\n--s\n\nx\n"
    "--s\nContent-Type: application/pgp-signature\n\ny\n--s--\n"
    "--b\nContent-Type: multipart/encrypted; boundary=e\n\n--e\n\nz\n--e--\n"
    "--b\nContent-Type: application/pkcs7-mime\n\nq\n"
    "--b\nContent-Type: message/partial; id=x; number=1\n\nr\n"
    "--b--\n";

static void
mime_init_once(void)
{
	static const char *fallback[] = {"UTF-8", "windows-1252", NULL};
	static const struct mime_limits limits = {1 << 16, 100, 20, 100};

	g_mime_init();
	mime_options = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(mime_options, fallback);
	g_mime_parser_options_set_rfc2047_compliance_mode(mime_options,
	    GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(mime_options,
	    GMIME_RFC_COMPLIANCE_LOOSE);
	mime_content_free(parse(warm_up, sizeof(warm_up) - 1, &limits));
}

void
mime_init(void)
{
	pthread_once(&mime_once, mime_init_once);
}

/* ---- UTF-8 ---- */

/* windows-1252 0x80-0x9f; the five holes keep their Latin-1 (C1) value. */
static const uint16_t cp1252_high[32] = {
	0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d, 0x017d, 0x008f,
	0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
};

static uint32_t
cp1252_codepoint(unsigned char c)
{
	return c >= 0x80 && c < 0xa0 ? cp1252_high[c - 0x80] : c;
}

/* Length of the valid UTF-8 sequence at s (left bytes available), 0 if
 * s does not start one. */
static size_t
utf8_valid_length(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return left >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (left < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
			return 0;	/* overlong, surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (left < 4 || (s[1] & 0xc0) != 0x80 ||
		    (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
			return 0;	/* overlong, over U+10FFFF */
		return 4;
	}
	return 0;
}

static void
utf8_put(struct strbuf *sb, uint32_t cp)
{
	char b[4];

	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x80) {
		b[0] = (char)cp;
		strbuf_append(sb, b, 1);
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		strbuf_append(sb, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		strbuf_append(sb, b, 3);
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		strbuf_append(sb, b, 4);
	}
}

/* Appends in as UTF-8: valid sequences as they are, every other byte
 * read as windows-1252 (the usual truth behind a wrong label). */
static void
utf8_append_repaired(struct strbuf *out, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, run = 0;

	while (i < len) {
		size_t n = utf8_valid_length(s + i, len - i);

		if (n > 0) {
			i += n;
			continue;
		}
		strbuf_append(out, in + run, i - run);
		utf8_put(out, cp1252_codepoint(s[i]));
		run = ++i;
	}
	strbuf_append(out, in + run, i - run);
}

static void
cp1252_append(struct strbuf *out, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x80)
			continue;
		strbuf_append(out, in + run, i - run);
		utf8_put(out, cp1252_codepoint(s[i]));
		run = i + 1;
	}
	strbuf_append(out, in + run, len - run);
}

/* ---- charsets ---- */

enum charset_kind {
	CHARSET_UTF8,		/* also: none, ASCII, unknown */
	CHARSET_CP1252,		/* ISO-8859-1 and windows-1252 */
	CHARSET_UTF16,		/* byte order from BOM, label or guess */
	CHARSET_ICONV,
};

static bool
name_in(const char *name, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/* Lowercases label into name (CHARSET_NAME_MAX + 1 bytes) and says how
 * to convert from it. Names that could not be a charset (too long,
 * odd bytes, iconv's "//" suffixes) are unknown: CHARSET_UTF8. */
static enum charset_kind
charset_classify(const char *label, char *name)
{
	static const char *const utf8[] = {
		"utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968",
		"iso646-us", "us", "unknown", "unknown-8bit", "x-unknown",
		"x-user-defined", "default", "7bit", "8bit", "binary", "none",
		NULL,
	};
	static const char *const cp1252[] = {
		"iso-8859-1", "iso8859-1", "iso_8859-1", "iso_8859-1:1987",
		"latin1", "latin-1", "l1", "cp819", "ibm819", "iso-ir-100",
		"csisolatin1", "windows-1252", "cp1252", "x-cp1252", "cp-1252",
		"windows1252", NULL,
	};
	static const char *const utf16[] = {
		"utf-16", "utf16", "ucs-2", "ucs2", "unicode", "utf-16le",
		"utf-16be", "ucs-2le", "ucs-2be", "utf16le", "utf16be", NULL,
	};
	static const struct {
		const char *label, *iconv;
	} alias[] = {
		{"ks_c_5601-1987", "EUC-KR"}, {"ks_c_5601", "EUC-KR"},
		{"gb2312", "GBK"}, {"gb_2312-80", "GBK"}, {"euc-cn", "GBK"},
		{"x-gbk", "GBK"}, {"x-sjis", "SHIFT_JIS"},
		{"shift-jis", "SHIFT_JIS"},
		{"x-euc-jp", "EUC-JP"}, {"x-mac-roman", "MACINTOSH"},
		{"windows-874", "CP874"}, {"x-cp1250", "CP1250"},
		{"x-cp1251", "CP1251"},
	};
	size_t len = 0;

	name[0] = '\0';
	if (label == NULL)
		return CHARSET_UTF8;
	while (*label == ' ' || *label == '\t' || *label == '"')
		label++;
	for (; label[len] != '\0'; len++) {
		unsigned char c = (unsigned char)label[len];

		if (len >= CHARSET_NAME_MAX)
			return CHARSET_UTF8;
		if (c == '"' || c == ' ' || c == '\t')
			break;
		if (!ascii_alnum(c) && c != '-' && c != '_' && c != '.' &&
		    c != ':' && c != '+')
			return CHARSET_UTF8;
		name[len] = ascii_lower(c);
	}
	name[len] = '\0';
	if (len == 0 || name_in(name, utf8))
		return CHARSET_UTF8;
	if (name_in(name, cp1252))
		return CHARSET_CP1252;
	if (name_in(name, utf16))
		return CHARSET_UTF16;
	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
		if (strcmp(name, alias[i].label) == 0) {
			strcpy(name, alias[i].iconv);
			break;
		}
	return CHARSET_ICONV;
}

/* iconv descriptors opened during one mime_parse or mime_decode_header
 * call. glibc loads and unloads a converter module around each
 * iconv_open/iconv_close (about 50 us), so a message that switches
 * charsets word after word would cost that each time: a charset is
 * opened once per call, and past ICONV_CACHE distinct ones the rest get
 * the UTF-8/windows-1252 guess. */
#define ICONV_CACHE 8

struct iconv_cache {
	int n;
	struct {
		char name[CHARSET_NAME_MAX + 1];
		iconv_t cd;	/* (iconv_t)-1: iconv does not know it */
	} entry[ICONV_CACHE];
};

static iconv_t
iconv_cache_get(struct iconv_cache *cache, const char *name)
{
	for (int i = 0; i < cache->n; i++) {
		iconv_t cd = cache->entry[i].cd;

		if (strcmp(cache->entry[i].name, name) != 0)
			continue;
		if (cd != (iconv_t)-1)
			iconv(cd, NULL, NULL, NULL, NULL);	/* reset */
		return cd;
	}
	if (cache->n == ICONV_CACHE)
		return (iconv_t)-1;
	strcpy(cache->entry[cache->n].name, name);
	cache->entry[cache->n].cd = iconv_open("UTF-8", name);
	return cache->entry[cache->n++].cd;
}

static void
iconv_cache_close(struct iconv_cache *cache)
{
	for (int i = 0; i < cache->n; i++)
		if (cache->entry[i].cd != (iconv_t)-1)
			iconv_close(cache->entry[i].cd);
	cache->n = 0;
}

/* iconv from `from` to UTF-8; a byte (unit bytes) that does not
 * convert becomes U+FFFD. False when iconv does not know `from`. */
static bool
iconv_append(struct strbuf *out, struct iconv_cache *cache, const char *from,
    const char *in, size_t len, size_t unit)
{
	iconv_t cd = iconv_cache_get(cache, from);
	struct strbuf tmp = STRBUF_INIT;
	char buf[4096], *inp = (char *)in, *outp;
	size_t inleft = len, outleft, r;

	if (cd == (iconv_t)-1)
		return false;
	while (inleft > 0) {
		int e;

		outp = buf;
		outleft = sizeof(buf);
		r = iconv(cd, &inp, &inleft, &outp, &outleft);
		e = errno;
		strbuf_append(&tmp, buf, (size_t)(outp - buf));
		if (r != (size_t)-1 || e == E2BIG)
			continue;
		utf8_put(&tmp, 0xfffd);
		if (e == EILSEQ) {
			size_t skip = unit < inleft ? unit : inleft;

			inp += skip;
			inleft -= skip;
		} else {
			break;	/* EINVAL: cut short at the end */
		}
	}
	outp = buf;
	outleft = sizeof(buf);
	iconv(cd, NULL, NULL, &outp, &outleft);
	strbuf_append(&tmp, buf, (size_t)(outp - buf));
	/* iconv's UTF-8 is valid; this only makes sure of it. */
	utf8_append_repaired(out, tmp.data ? tmp.data : "", tmp.len);
	strbuf_free(&tmp);
	return true;
}

/* Appends len bytes labelled `label` as valid UTF-8, never failing: a
 * byte order mark wins over the label, an unknown label means UTF-8
 * with a windows-1252 guess for what is not UTF-8. */
static void
charset_append_utf8(struct strbuf *out, struct iconv_cache *cache,
    const char *label, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	char name[CHARSET_NAME_MAX + 1];
	enum charset_kind kind = charset_classify(label, name);
	const char *utf16 = NULL;

	if (len >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) {
		in += 3, len -= 3;
		kind = CHARSET_UTF8;
	} else if (len >= 2 && s[0] == 0xff && s[1] == 0xfe) {
		in += 2, len -= 2;
		kind = CHARSET_UTF16, utf16 = "UTF-16LE";
	} else if (len >= 2 && s[0] == 0xfe && s[1] == 0xff) {
		in += 2, len -= 2;
		kind = CHARSET_UTF16, utf16 = "UTF-16BE";
	}
	switch (kind) {
	case CHARSET_CP1252:
		cp1252_append(out, in, len);
		return;
	case CHARSET_UTF16:
		if (utf16 == NULL && strstr(name, "be") != NULL)
			utf16 = "UTF-16BE";
		else if (utf16 == NULL && strstr(name, "le") != NULL)
			utf16 = "UTF-16LE";
		else if (utf16 == NULL) {
			/* No BOM, no order: ASCII-heavy text has its
			 * zero bytes second (LE) or first (BE). */
			size_t even = 0, odd = 0;

			for (size_t i = 0; i < len && i < 1024; i++)
				if (s[i] == 0 && i % 2)
					odd++;
				else if (s[i] == 0)
					even++;
			utf16 = even > odd ? "UTF-16BE" : "UTF-16LE";
		}
		if (iconv_append(out, cache, utf16, in, len, 2))
			return;
		break;
	case CHARSET_ICONV:
		if (iconv_append(out, cache, name, in, len, 1))
			return;
		break;
	case CHARSET_UTF8:
		break;
	}
	utf8_append_repaired(out, in, len);
}

/* Appends s with CRLF turned into LF. */
static void
append_unix_lines(struct strbuf *out, const char *s, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\r' || s[i + 1] != '\n')
			continue;
		strbuf_append(out, s + run, i - run);
		run = i + 1;
	}
	strbuf_append(out, s + run, len - run);
}

/* ---- RFC 2047 ---- */

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void
q_decode(struct strbuf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] == '_') {
			strbuf_putc(out, ' ');
		} else if (s[i] == '=' && i + 2 < len &&
		    (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
			strbuf_putc(out, (char)(hi * 16 + lo));
			i += 2;
		} else {
			strbuf_putc(out, s[i]);
		}
	}
}

/* Base64, skipping what is not in the alphabet, stopping at '=';
 * fed in pieces. The bits of a last, incomplete group still make what
 * bytes they can (GMime's decoder drops them). */
struct base64 {
	unsigned int acc;
	int bits;
	bool done;
};

static size_t
base64_step(struct base64 *st, const char *s, size_t len, struct strbuf *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len && !st->done; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else if (c == '=') {
			st->done = true;
			break;
		} else
			continue;
		st->acc = ((st->acc << 6) | (unsigned int)v) & 0xffffff;
		st->bits += 6;
		if (st->bits >= 8) {
			st->bits -= 8;
			if (out != NULL)
				strbuf_putc(out,
				    (char)((st->acc >> st->bits) & 0xff));
			n++;
		}
	}
	return n;
}

static void
b_decode(struct strbuf *out, const char *s, size_t len)
{
	struct base64 st = {0, 0, false};

	base64_step(&st, s, len, out);
}

struct encoded_word {
	const char *charset;
	size_t charset_len;
	char encoding;		/* 'b' or 'q' */
	const char *text;
	size_t text_len;
};

/* Length of the encoded-word "=?charset?E?text?=" at s, 0 if none. */
static size_t
encoded_word_parse(const char *s, size_t n, struct encoded_word *ew)
{
	size_t i = 2;

	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	while (i < n && s[i] != '?' && s[i] != ' ' && s[i] != '\t')
		i++;
	if (i + 2 >= n || s[i] != '?' || i == 2 || i - 2 > CHARSET_NAME_MAX)
		return 0;
	ew->charset = s + 2;
	ew->charset_len = i - 2;
	for (size_t k = 2; k < i; k++)	/* RFC 2231 language: "utf-8*en" */
		if (s[k] == '*') {
			ew->charset_len = k - 2;
			break;
		}
	ew->encoding = (char)(s[i + 1] | 0x20);
	if ((ew->encoding != 'b' && ew->encoding != 'q') || s[i + 2] != '?')
		return 0;
	i += 3;
	ew->text = s + i;
	while (i < n && s[i] != '?' && s[i] != ' ' && s[i] != '\t')
		i++;
	if (i + 1 >= n || s[i] != '?' || s[i + 1] != '=')
		return 0;
	ew->text_len = (size_t)(s + i - ew->text);
	return i + 2;
}

/* Decoded bytes of adjacent encoded-words in one charset, converted
 * together so that a character split across two words survives. */
struct word_run {
	char charset[CHARSET_NAME_MAX + 1];
	struct strbuf bytes;
	bool active;
	struct iconv_cache iconv;
};

static void
word_run_flush(struct word_run *run, struct strbuf *out)
{
	if (!run->active)
		return;
	charset_append_utf8(out, &run->iconv, run->charset,
	    run->bytes.data ? run->bytes.data : "", run->bytes.len);
	strbuf_reset(&run->bytes);
	run->active = false;
}

char *
mime_decode_header(const char *value, size_t len)
{
	struct strbuf unfolded = STRBUF_INIT, out = STRBUF_INIT;
	struct strbuf clean = STRBUF_INIT;
	struct word_run run = {{0}, STRBUF_INIT, false, {0}};
	const char *s;
	size_t n, i = 0, literal = 0;
	bool after_word = false;

	if (value == NULL)
		len = 0;
	/* unfold: line breaks go, the white space after them stays */
	for (size_t k = 0; k < len; k++)
		if (value[k] != '\r' && value[k] != '\n')
			strbuf_putc(&unfolded, value[k]);
	s = strbuf_cstr(&unfolded);
	n = unfolded.len;

	while (i < n) {
		struct encoded_word ew;
		size_t wlen;

		if (s[i] != '=' || (wlen = encoded_word_parse(s + i, n - i,
		    &ew)) == 0) {
			i++;
			continue;
		}
		/* white space between two encoded-words is dropped */
		bool blank = after_word;
		for (size_t k = literal; k < i && blank; k++)
			blank = s[k] == ' ' || s[k] == '\t';
		if (!blank) {
			word_run_flush(&run, &out);
			utf8_append_repaired(&out, s + literal, i - literal);
		}
		if (run.active && (ew.charset_len != strlen(run.charset) ||
		    strncasecmp(run.charset, ew.charset, ew.charset_len) != 0))
			word_run_flush(&run, &out);
		if (!run.active) {
			memcpy(run.charset, ew.charset, ew.charset_len);
			run.charset[ew.charset_len] = '\0';
			run.active = true;
		}
		if (ew.encoding == 'q')
			q_decode(&run.bytes, ew.text, ew.text_len);
		else
			b_decode(&run.bytes, ew.text, ew.text_len);
		i += wlen;
		literal = i;
		after_word = true;
	}
	word_run_flush(&run, &out);
	utf8_append_repaired(&out, s + literal, n - literal);
	strbuf_free(&run.bytes);
	iconv_cache_close(&run.iconv);
	strbuf_free(&unfolded);

	/* a C string: NUL (from =00) becomes U+FFFD */
	for (size_t k = 0; k < out.len; k++) {
		if (out.data[k] == '\0')
			strbuf_puts(&clean, "\xef\xbf\xbd");
		else
			strbuf_putc(&clean, out.data[k]);
	}
	strbuf_free(&out);
	return strbuf_steal(&clean);
}

char *
mime_header_utf8(const char *value, size_t len)
{
	struct strbuf out = STRBUF_INIT, clean = STRBUF_INIT;
	size_t start = 0;

	if (value == NULL)
		len = 0;
	for (size_t k = 0; k <= len; k++) {
		if (k < len && value[k] != '\r' && value[k] != '\n')
			continue;
		utf8_append_repaired(&out, value + start, k - start);
		start = k + 1;
	}
	for (size_t k = 0; k < out.len; k++) {
		if (out.data[k] == '\0')
			strbuf_puts(&clean, "\xef\xbf\xbd");
		else
			strbuf_putc(&clean, out.data[k]);
	}
	strbuf_free(&out);
	return strbuf_steal(&clean);
}

/* ---- URIs ---- */

struct walk {
	const struct mime_limits *limits;
	struct mime_content *content;
	struct strbuf text;
	struct strbuf raw;
	struct mime_span *text_parts;
	size_t ntext_parts;
	struct mime_span *raw_parts;
	size_t nraw_parts;
	GHashTable *seen_uris;	/* borrowed from content->uris */
	size_t uris_cap;
	size_t attachments_cap;
	struct iconv_cache iconv;
};

/* The lowercased host of an http, https, ftp, protocol-relative or
 * www. URI; NULL for other schemes and when there is none. */
static char *
uri_host(const char *uri)
{
	const char *p, *at, *end;
	size_t alen, hlen;
	char *host;

	if (strncasecmp(uri, "http://", 7) == 0)
		p = uri + 7;
	else if (strncasecmp(uri, "https://", 8) == 0)
		p = uri + 8;
	else if (strncasecmp(uri, "ftp://", 6) == 0)
		p = uri + 6;
	else if (uri[0] == '/' && uri[1] == '/')
		p = uri + 2;
	else if (strncasecmp(uri, "www.", 4) == 0)
		p = uri;
	else
		return NULL;
	alen = strcspn(p, "/?#\\");
	at = memrchr(p, '@', alen);
	if (at != NULL) {
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (*p == '[') {
		end = memchr(p, ']', alen);
		hlen = end ? (size_t)(end + 1 - p) : alen;
	} else {
		end = memchr(p, ':', alen);
		hlen = end ? (size_t)(end - p) : alen;
	}
	if (hlen == 0)
		return NULL;
	host = mxg_strndup(p, hlen);
	for (char *c = host; *c != '\0'; c++)
		*c = ascii_lower((unsigned char)*c);
	return host;
}

/* Adds uri (len bytes, no NUL inside) unless seen or over max_uris.
 * need_host: a URI from text, dropped when it has no host. */
static void
uri_add(struct walk *w, const char *uri, size_t len, bool need_host,
    bool html)
{
	struct mime_content *c = w->content;
	char *copy, *host;

	if (len == 0 || w->limits->max_uris <= 0 ||
	    c->nuris >= (size_t)w->limits->max_uris)
		return;
	copy = mxg_strndup(uri, len);
	if (g_hash_table_contains(w->seen_uris, copy)) {
		free(copy);
		return;
	}
	host = uri_host(copy);
	if (host == NULL && need_host) {
		free(copy);
		return;
	}
	if (c->nuris == w->uris_cap) {
		w->uris_cap = w->uris_cap ? 2 * w->uris_cap : 16;
		c->uris = mxg_realloc(c->uris, w->uris_cap * sizeof(*c->uris));
	}
	c->uris[c->nuris].uri = copy;
	c->uris[c->nuris].host = host;
	c->uris[c->nuris].html = html;
	c->nuris++;
	g_hash_table_add(w->seen_uris, copy);
}

static bool
uri_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && strchr("<>\"`{}|\\^", c) == NULL;
}

static size_t
prefix_ci(const char *s, size_t n, const char *prefix)
{
	size_t len = strlen(prefix);

	return n >= len && strncasecmp(s, prefix, len) == 0 ? len : 0;
}

/* www.label.tld: two dots at least and a top-level label of letters. */
static bool
www_host_plausible(const char *s, size_t len)
{
	size_t hlen = 0, dots = 0, last = 0;

	while (hlen < len && strchr("/?#:", s[hlen]) == NULL)
		hlen++;
	if (hlen < 5 || !ascii_alnum((unsigned char)s[4]))
		return false;	/* "www." then a label */
	for (size_t i = 0; i < hlen; i++)
		if (s[i] == '.')
			dots++, last = i + 1;
	if (dots < 2 || hlen - last < 2)
		return false;
	for (size_t i = last; i < hlen; i++)
		if (!ascii_alpha((unsigned char)s[i]))
			return false;
	return true;
}

/* Finds http://, https://, ftp://, mailto: and www. URIs in text. */
static void
uris_from_text(struct walk *w, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = u[i] | 0x20;
		size_t plen = 0, end, e;
		int open = 0, close = 0;
		bool www = false;

		if (c != 'h' && c != 'f' && c != 'm' && c != 'w')
			continue;
		if (i > 0 && ascii_alnum(u[i - 1]))
			continue;
		if ((plen = prefix_ci(s + i, n - i, "http://")) == 0 &&
		    (plen = prefix_ci(s + i, n - i, "https://")) == 0 &&
		    (plen = prefix_ci(s + i, n - i, "ftp://")) == 0 &&
		    (plen = prefix_ci(s + i, n - i, "mailto:")) == 0) {
			if (i > 0 && s[i - 1] != '\0' &&
			    strchr(".-@/_", s[i - 1]) != NULL)
				continue;
			if ((plen = prefix_ci(s + i, n - i, "www.")) == 0)
				continue;
			www = true;
		}
		for (e = i + plen; e < n && uri_char(u[e]); e++) {
			if (u[e] == '(')
				open++;
			else if (u[e] == ')')
				close++;
		}
		/* trailing punctuation is the sentence's, not the URI's */
		for (end = e; end > i + plen; end--) {
			unsigned char t = u[end - 1];

			if (t == ')' && close > open)
				close--;
			else if (t == ')' || strchr(".,;:!?'\"", t) == NULL)
				break;
		}
		if (end > i + plen &&
		    (!www || www_host_plausible(s + i, end - i)))
			uri_add(w, s + i, end - i, c != 'm', false);
		i = e - 1;
	}
}

/* ---- HTML ---- */

/* U+00A0 .. U+00FF, in order */
static const char *const latin1_entities[96] = {
	"nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar",
	"sect", "uml", "copy", "ordf", "laquo", "not", "shy", "reg", "macr",
	"deg", "plusmn", "sup2", "sup3", "acute", "micro", "para",
	"middot", "cedil", "sup1", "ordm", "raquo", "frac14", "frac12",
	"frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml",
	"Aring", "AElig", "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml",
	"Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve",
	"Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave",
	"Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave",
	"aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
	"egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc",
	"iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde",
	"ouml", "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml",
	"yacute", "thorn", "yuml",
};

static const struct {
	const char *name;
	uint32_t cp;
} other_entities[] = {
	{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
	{"euro", 0x20ac}, {"trade", 0x2122}, {"ndash", 0x2013},
	{"mdash", 0x2014}, {"lsquo", 0x2018}, {"rsquo", 0x2019},
	{"sbquo", 0x201a}, {"ldquo", 0x201c}, {"rdquo", 0x201d},
	{"bdquo", 0x201e}, {"hellip", 0x2026}, {"bull", 0x2022},
	{"dagger", 0x2020}, {"Dagger", 0x2021}, {"permil", 0x2030},
	{"lsaquo", 0x2039}, {"rsaquo", 0x203a}, {"OElig", 0x152},
	{"oelig", 0x153}, {"Scaron", 0x160}, {"scaron", 0x161},
	{"Yuml", 0x178}, {"fnof", 0x192}, {"circ", 0x2c6}, {"tilde", 0x2dc},
	{"ensp", 0x2002}, {"emsp", 0x2003}, {"thinsp", 0x2009},
	{"zwnj", 0x200c}, {"zwj", 0x200d}, {"lrm", 0x200e}, {"rlm", 0x200f},
};
#define NOTHER_ENTITIES (sizeof(other_entities) / sizeof(other_entities[0]))

static bool
entity_lookup(const char *name, size_t len, uint32_t *cp)
{
	for (size_t i = 0; i < 96; i++)
		if (strlen(latin1_entities[i]) == len &&
		    memcmp(latin1_entities[i], name, len) == 0) {
			*cp = 0xa0 + (uint32_t)i;
			return true;
		}
	for (size_t i = 0; i < NOTHER_ENTITIES; i++)
		if (strlen(other_entities[i].name) == len &&
		    memcmp(other_entities[i].name, name, len) == 0) {
			*cp = other_entities[i].cp;
			return true;
		}
	return false;
}

/* HTML reads these without the ';' too: the Latin-1 names and the
 * first four others (amp, lt, gt, quot). Returns the length of the
 * longest one that starts name[0, len), 0 if none. */
static size_t
entity_legacy_prefix(const char *name, size_t len, uint32_t *cp)
{
	size_t best = 0;

	for (size_t i = 0; i < 96 + 4; i++) {
		const char *l = i < 96 ? latin1_entities[i] :
		    other_entities[i - 96].name;
		size_t llen = strlen(l);

		if (llen > best && llen <= len && memcmp(l, name, llen) == 0) {
			best = llen;
			*cp = i < 96 ? 0xa0 + (uint32_t)i :
			    other_entities[i - 96].cp;
		}
	}
	return best;
}

/* The character reference at s ("&..."), in_attr as HTML reads
 * attribute values. Returns the bytes it takes, 0 if it is not one. */
static size_t
entity_decode(const char *s, size_t n, bool in_attr, uint32_t *cp)
{
	size_t i = 1, start, used;

	if (i < n && s[i] == '#') {
		bool hex = false;
		uint32_t v = 0;

		i++;
		if (i < n && (s[i] | 0x20) == 'x')
			hex = true, i++;
		start = i;
		for (; i < n; i++) {
			int d = hex ? hex_value((unsigned char)s[i]) :
			    (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);

			if (d < 0)
				break;
			if (v <= 0x10ffff)
				v = v * (hex ? 16 : 10) + (uint32_t)d;
		}
		if (i == start)
			return 0;
		if (i < n && s[i] == ';')
			i++;
		if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			v = 0xfffd;
		else if (v >= 0x80 && v < 0xa0)
			v = cp1252_high[v - 0x80];	/* as browsers do */
		*cp = v;
		return i;
	}
	start = i;
	while (i < n && i - start < 32 && ascii_alnum((unsigned char)s[i]))
		i++;
	if (i == start)
		return 0;
	if (i < n && s[i] == ';' && entity_lookup(s + start, i - start, cp))
		return i + 1;
	/* without ';': "&amp", "&eacute"; in text also "&copy2024" */
	used = entity_legacy_prefix(s + start, i - start, cp);
	if (used == 0)
		return 0;
	if (in_attr && (start + used < i ||
	    (start + used < n && s[start + used] == '=')))
		return 0;
	return start + used;
}

/*
 * HTML is rendered as SpamAssassin's HTML.pm renders it: the text between
 * two tags is one chunk with its white-space runs made one space; br and
 * div (start or end tag) give a line break, li, td, th, dd, dt, embed and
 * h1-h6 a space, p, hr, blockquote, pre, listing, plaintext, xmp and
 * title a blank line (a paragraph break for body rules); a chunk that
 * follows one of those loses its leading space, and the chunk before one
 * loses its trailing space. Other tags give nothing.
 */
struct html {
	struct walk *walk;
	struct strbuf *out;
	struct strbuf chunk;	/* text since the last tag */
	bool in_chunk;		/* some text (maybe blank) since the tag */
	bool prev_ws;		/* the last element was white space */
	size_t prev_start;	/* where the last element starts in out */
};

/* Ends the current text chunk: it becomes an element of its own. */
static void
html_flush_chunk(struct html *h)
{
	const char *t = h->chunk.data ? h->chunk.data : "";
	size_t n = h->chunk.len;

	if (!h->in_chunk)
		return;
	if (h->prev_ws && n > 0 && t[0] == ' ') {
		t++;
		n--;
	}
	h->prev_start = h->out->len;
	strbuf_append(h->out, t, n);
	h->prev_ws = false;
	h->in_chunk = false;
	strbuf_reset(&h->chunk);
}

/* A white-space element: text, "\n" or "\n\n". */
static void
html_white(struct html *h, const char *ws)
{
	html_flush_chunk(h);
	if (!h->prev_ws && h->out->len > h->prev_start &&
	    h->out->data[h->out->len - 1] == ' ')
		h->out->data[--h->out->len] = '\0';
	h->prev_start = h->out->len;
	strbuf_puts(h->out, ws);
	h->prev_ws = true;
}

static void
html_put_byte(struct html *h, char c)
{
	h->in_chunk = true;
	if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	    c == '\v') {
		if (h->chunk.len == 0 || h->chunk.data[h->chunk.len - 1] != ' ')
			strbuf_putc(&h->chunk, ' ');
		return;
	}
	strbuf_putc(&h->chunk, c);
}

static void
html_put_codepoint(struct html *h, uint32_t cp)
{
	if (cp == 0xa0 || (cp < 0x80 && strchr(" \t\r\n\f\v", (int)cp) &&
	    cp != 0)) {
		html_put_byte(h, ' ');
		return;
	}
	h->in_chunk = true;
	utf8_put(&h->chunk, cp);
}

static bool
tag_is(const char *tag, const char *const *list)
{
	return name_in(tag, list);
}

static bool
html_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

/* An href/src/action value: entities decoded, tabs and line breaks
 * dropped (as browsers do), white space trimmed. */
static void
html_attr_uri(struct html *h, const char *v, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	size_t a = 0, b;

	for (size_t i = 0; i < n; i++) {
		uint32_t cp;
		size_t used;

		if (v[i] == '&' &&
		    (used = entity_decode(v + i, n - i, true, &cp)) > 0) {
			utf8_put(&sb, cp);
			i += used - 1;
		} else if (v[i] != '\t' && v[i] != '\r' && v[i] != '\n' &&
		    v[i] != '\0') {
			strbuf_putc(&sb, v[i]);
		}
	}
	b = sb.len;
	while (a < b && (sb.data[a] == ' ' || sb.data[a] == '\f'))
		a++;
	while (b > a && (sb.data[b - 1] == ' ' || sb.data[b - 1] == '\f'))
		b--;
	/* an entity could have put a NUL back: the URI stops there */
	if (b > a) {
		const char *nul = memchr(sb.data + a, '\0', b - a);

		if (nul != NULL)
			b = (size_t)(nul - sb.data);
		uri_add(h->walk, sb.data + a, b - a, false, true);
	}
	strbuf_free(&sb);
}

/* Position after the end of the raw-text element `tag` (script,
 * style, title) whose content starts at i: the "</tag" that closes it,
 * or n when it never closes. */
static size_t
html_skip_raw(const char *s, size_t i, size_t n, const char *tag)
{
	size_t tlen = strlen(tag);

	while (i < n) {
		const char *lt = memchr(s + i, '<', n - i);

		if (lt == NULL)
			return n;
		i = (size_t)(lt - s);
		size_t after = i + 2 + tlen;

		if (after <= n && s[i + 1] == '/' &&
		    strncasecmp(s + i + 2, tag, tlen) == 0 &&
		    (after == n || !ascii_alnum((unsigned char)s[after])))
			return i;
		i++;
	}
	return n;
}

static const char *const line_tags[] = {"br", "div", NULL};
static const char *const space_tags[] = {"li", "td", "th", "dd", "dt",
	"embed", "h1", "h2", "h3", "h4", "h5", "h6", NULL};
static const char *const para_tags[] = {"p", "hr", "blockquote", "pre",
	"listing", "plaintext", "xmp", "title", NULL};
static const char *const raw_tags[] = {"script", "style", NULL};

/* The white space a tag (start or end) gives, NULL for none. */
static const char *
tag_white(const char *tag)
{
	if (tag_is(tag, line_tags))
		return "\n";
	if (tag_is(tag, space_tags))
		return " ";
	if (tag_is(tag, para_tags))
		return "\n\n";
	return NULL;
}

static bool
uri_attribute(const char *name, size_t len)
{
	return (len == 4 && strncasecmp(name, "href", 4) == 0) ||
	    (len == 3 && strncasecmp(name, "src", 3) == 0) ||
	    (len == 6 && strncasecmp(name, "action", 6) == 0);
}

/* A start tag's attributes from s[j] on: href, src and action values to
 * the URIs. Returns the position after the tag's '>', 0 when the tag
 * (or a quoted value) never ends. */
static size_t
html_attributes(struct html *h, const char *s, size_t j, size_t n)
{
	for (;;) {
		size_t an, alen, vs, ve;

		while (j < n && (html_space((unsigned char)s[j]) || s[j] == '/'))
			j++;
		if (j >= n)
			return 0;
		if (s[j] == '>')
			return j + 1;
		an = j;
		do	/* a name may start with '=' */
			j++;
		while (j < n && !html_space((unsigned char)s[j]) &&
		    s[j] != '/' && s[j] != '>' && s[j] != '=');
		alen = j - an;
		while (j < n && html_space((unsigned char)s[j]))
			j++;
		if (j >= n || s[j] != '=')
			continue;
		j++;
		while (j < n && html_space((unsigned char)s[j]))
			j++;
		if (j < n && (s[j] == '"' || s[j] == '\'')) {
			const char *q = memchr(s + j + 1, s[j], n - j - 1);

			if (q == NULL)
				return 0;
			vs = j + 1;
			ve = (size_t)(q - s);
			j = ve + 1;
		} else {
			vs = j;
			while (j < n && !html_space((unsigned char)s[j]) &&
			    s[j] != '>')
				j++;
			ve = j;
		}
		if (uri_attribute(s + an, alen))
			html_attr_uri(h, s + vs, ve - vs);
	}
}

/* The tag at s[i] == '<'; returns where rendering goes on. */
static size_t
html_tag(struct html *h, const char *s, size_t i, size_t n)
{
	char tag[16];
	size_t t = 0, j = i + 1;
	bool end_tag = false;

	if (j < n && s[j] == '!') {
		if (j + 2 < n && s[j + 1] == '-' && s[j + 2] == '-') {
			const char *e = memmem(s + j + 3, n - j - 3, "-->", 3);

			return e ? (size_t)(e - s) + 3 : n;
		}
		const char *gt = memchr(s + j, '>', n - j);
		return gt ? (size_t)(gt - s) + 1 : n;
	}
	if (j < n && s[j] == '?') {
		const char *gt = memchr(s + j, '>', n - j);
		return gt ? (size_t)(gt - s) + 1 : n;
	}
	if (j < n && s[j] == '/') {
		end_tag = true;
		j++;
	}
	if (j >= n || !ascii_alpha((unsigned char)s[j])) {
		if (end_tag) {	/* "</ ...>": a bogus comment */
			const char *gt = memchr(s + j, '>', n - j);
			return gt ? (size_t)(gt - s) + 1 : n;
		}
		html_put_byte(h, '<');	/* "a < b" */
		return i + 1;
	}
	while (j < n && !html_space((unsigned char)s[j]) && s[j] != '/' &&
	    s[j] != '>') {
		if (t < sizeof(tag) - 1)
			tag[t++] = ascii_lower((unsigned char)s[j]);
		else
			t = sizeof(tag);	/* too long: no tag we know */
		j++;
	}
	tag[t < sizeof(tag) ? t : 0] = '\0';

	if (end_tag) {
		const char *gt = memchr(s + j, '>', n - j);
		const char *ws = tag_white(tag);

		j = gt ? (size_t)(gt - s) + 1 : n;
		html_flush_chunk(h);
		if (ws != NULL)
			html_white(h, ws);
		return j;
	}

	if ((j = html_attributes(h, s, j, n)) == 0)
		return n;	/* cut short: the rest is the tag's */

	const char *ws = tag_white(tag);
	html_flush_chunk(h);
	if (ws != NULL)
		html_white(h, ws);
	if (tag_is(tag, raw_tags))
		j = html_skip_raw(s, j, n, tag);
	return j;
}

/* Renders UTF-8 HTML as text into out; href/src/action to the URIs. */
static void
html_render(struct walk *w, const char *s, size_t n, struct strbuf *out)
{
	struct html h = {w, out, STRBUF_INIT, false, false, 0};
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t used;

		if (s[i] == '<') {
			i = html_tag(&h, s, i, n);
		} else if (s[i] == '&' &&
		    (used = entity_decode(s + i, n - i, false, &cp)) > 0) {
			html_put_codepoint(&h, cp);
			i += used;
		} else {
			html_put_byte(&h, s[i]);
			i++;
		}
	}
	html_flush_chunk(&h);
	strbuf_free(&h.chunk);
}

/* ---- the walk ---- */

static void
append_part(struct strbuf *sb, struct mime_span **spans, size_t *nspans,
    const char *s, size_t len)
{
	if (len == 0)
		return;
	if (sb->len > 0)
		strbuf_putc(sb, '\n');
	if ((*nspans & (*nspans - 1)) == 0)	/* grow by doubling */
		*spans = mxg_realloc(*spans, (*nspans ? *nspans * 2 : 4) *
		    sizeof(**spans));
	(*spans)[*nspans].off = sb->len;
	(*spans)[*nspans].len = len;
	(*nspans)++;
	strbuf_append(sb, s, len);
}

/* A text part's decoded bytes: to UTF-8, CRLF to LF, into text and
 * raw_text, URIs collected. */
static void
walk_text(struct walk *w, const char *charset, const char *data, size_t len,
    bool html)
{
	struct strbuf utf8 = STRBUF_INIT, unix_lines = STRBUF_INIT;

	charset_append_utf8(&utf8, &w->iconv, charset, data, len);
	append_unix_lines(&unix_lines, utf8.data ? utf8.data : "", utf8.len);
	strbuf_free(&utf8);
	append_part(&w->raw, &w->raw_parts, &w->nraw_parts, unix_lines.data,
	    unix_lines.len);
	if (html) {
		struct strbuf rendered = STRBUF_INIT;

		html_render(w, unix_lines.data ? unix_lines.data : "",
		    unix_lines.len, &rendered);
		append_part(&w->text, &w->text_parts, &w->ntext_parts,
		    rendered.data, rendered.len);
		uris_from_text(w, rendered.data ? rendered.data : "",
		    rendered.len);
		strbuf_free(&rendered);
	} else {
		append_part(&w->text, &w->text_parts, &w->ntext_parts,
		    unix_lines.data, unix_lines.len);
		uris_from_text(w, unix_lines.data ? unix_lines.data : "",
		    unix_lines.len);
	}
	strbuf_free(&unix_lines);
}

static void
attachment_add(struct walk *w, const char *filename, GMimeContentType *ct,
    size_t size)
{
	struct mime_content *c = w->content;
	struct mime_attachment *a;
	char *type = ct ? g_mime_content_type_get_mime_type(ct) : NULL;

	if (c->nattachments == w->attachments_cap) {
		w->attachments_cap = w->attachments_cap ?
		    2 * w->attachments_cap : 8;
		c->attachments = mxg_realloc(c->attachments,
		    w->attachments_cap * sizeof(*c->attachments));
	}
	a = &c->attachments[c->nattachments++];
	a->filename = NULL;
	if (filename != NULL) {
		struct strbuf sb = STRBUF_INIT;

		utf8_append_repaired(&sb, filename, strlen(filename));
		a->filename = strbuf_steal(&sb);
	}
	a->content_type = mxg_strdup(type ? type : "application/octet-stream");
	for (char *p = a->content_type; *p != '\0'; p++)
		*p = ascii_lower((unsigned char)*p);
	a->size = size;
	g_free(type);
}

/* A part's content with its transfer encoding undone, into out (NULL:
 * only counted); returns its size. Base64 is ours (see base64_step),
 * the rest GMime's. */
static size_t
part_content(GMimeDataWrapper *content, struct strbuf *out)
{
	GMimeStream *stream;
	size_t size;

	if (content == NULL)
		return 0;
	if (g_mime_data_wrapper_get_encoding(content) ==
	    GMIME_CONTENT_ENCODING_BASE64 &&
	    (stream = g_mime_data_wrapper_get_stream(content)) != NULL) {
		struct base64 st = {0, 0, false};
		char buf[4096];
		ssize_t r;

		size = 0;
		g_mime_stream_reset(stream);
		while ((r = g_mime_stream_read(stream, buf, sizeof(buf))) > 0)
			size += base64_step(&st, buf, (size_t)r, out);
		return size;
	}
	if (out == NULL) {
		stream = g_mime_stream_null_new();
		g_mime_data_wrapper_write_to_stream(content, stream);
		size = GMIME_STREAM_NULL(stream)->written;
	} else {
		GByteArray *bytes;

		stream = g_mime_stream_mem_new();
		g_mime_data_wrapper_write_to_stream(content, stream);
		bytes = g_mime_stream_mem_get_byte_array(
		    GMIME_STREAM_MEM(stream));
		strbuf_append(out, (const char *)bytes->data, bytes->len);
		size = bytes->len;
	}
	g_object_unref(stream);
	return size;
}

static void
walk_leaf(struct walk *w, GMimeObject *obj)
{
	GMimePart *part = GMIME_PART(obj);
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	const char *disposition = g_mime_object_get_disposition(obj);
	const char *filename = g_mime_part_get_filename(part);
	GMimeDataWrapper *content = g_mime_part_get_content(part);
	bool plain = ct && g_mime_content_type_is_type(ct, "text", "plain");
	bool html = ct && g_mime_content_type_is_type(ct, "text", "html");
	bool text = ct && g_mime_content_type_is_type(ct, "text", "*");
	bool attachment = filename != NULL || !text ||
	    (disposition && g_ascii_strcasecmp(disposition, "attachment") == 0);
	size_t size = 0;

	if (plain)
		w->content->has_text_plain = true;
	if (html)
		w->content->has_html = true;
	if (plain || html) {
		struct strbuf bytes = STRBUF_INIT;

		size = part_content(content, &bytes);
		walk_text(w, g_mime_content_type_get_parameter(ct, "charset"),
		    bytes.data ? bytes.data : "", bytes.len, html);
		strbuf_free(&bytes);
	} else if (attachment) {
		size = part_content(content, NULL);
	}
	if (attachment)
		attachment_add(w, filename, ct, size);
}

static void walk_object(struct walk *w, GMimeObject *obj, int depth);

static void
walk_message_part(struct walk *w, GMimeObject *obj, int depth)
{
	GMimeMessage *msg =
	    g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
	const char *disposition = g_mime_object_get_disposition(obj);
	const char *filename =
	    g_mime_object_get_content_disposition_parameter(obj, "filename");

	if (filename == NULL)
		filename = g_mime_object_get_content_type_parameter(obj, "name");
	if (filename != NULL || (disposition != NULL &&
	    g_ascii_strcasecmp(disposition, "attachment") == 0)) {
		GMimeStream *null = g_mime_stream_null_new();

		if (msg != NULL)
			g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL,
			    null);
		attachment_add(w, filename, g_mime_object_get_content_type(obj),
		    GMIME_STREAM_NULL(null)->written);
		g_object_unref(null);
	}
	if (msg != NULL)
		walk_object(w, g_mime_message_get_mime_part(msg), depth + 1);
}

/* A multipart whose boundary never shows: its text is all prologue. */
static void
walk_empty_multipart(struct walk *w, GMimeMultipart *mp, const char *body,
    size_t body_len)
{
	const char *prologue = g_mime_multipart_get_prologue(mp);

	if (body != NULL)
		walk_text(w, NULL, body, body_len, false);
	else if (prologue != NULL)
		walk_text(w, NULL, prologue, strlen(prologue), false);
}

struct top_body {
	const char *data;	/* the original bytes after the top headers */
	size_t len;
};

static void
walk_object_top(struct walk *w, GMimeObject *obj, const struct top_body *top)
{
	if (obj != NULL && GMIME_IS_MULTIPART(obj) &&
	    g_mime_multipart_get_count(GMIME_MULTIPART(obj)) == 0 &&
	    w->limits->max_parts > 0 && w->limits->max_depth >= 0) {
		w->content->nparts++;
		walk_empty_multipart(w, GMIME_MULTIPART(obj), top->data,
		    top->len);
		return;
	}
	walk_object(w, obj, 0);
}

static void
walk_object(struct walk *w, GMimeObject *obj, int depth)
{
	struct mime_content *c = w->content;

	if (obj == NULL)
		return;
	if (depth > w->limits->max_depth) {
		c->too_deep = true;
		return;
	}
	if (c->nparts >= w->limits->max_parts) {
		c->too_many_parts = true;
		return;
	}
	c->nparts++;
	if (GMIME_IS_MESSAGE_PART(obj)) {
		walk_message_part(w, obj, depth);
	} else if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int count = g_mime_multipart_get_count(mp);

		if (count == 0)
			walk_empty_multipart(w, mp, NULL, 0);
		for (int i = 0; i < count; i++)
			walk_object(w, g_mime_multipart_get_part(mp, i),
			    depth + 1);
	} else if (GMIME_IS_PART(obj)) {
		walk_leaf(w, obj);
	}
}

/* ---- header guard ---- */

/* Charset names GMime may look up and remember (it keys its table by
 * the lowercased name): a fixed, finite set. */
static bool
charset_name_known(const char *s, size_t len)
{
	static const char *const known[] = {
		"utf-8", "utf8", "us-ascii", "ascii", "latin1", "latin-1",
		"koi8-r", "koi8-u", "big5", "big5-hkscs", "gb2312", "gbk",
		"gb18030", "euc-jp", "euc-kr", "euc-tw", "shift_jis",
		"shift-jis", "sjis", "iso-2022-jp", "iso-2022-kr",
		"iso-2022-cn", "utf-16", "utf-16le", "utf-16be", "utf-7",
		"utf-32", "ucs-2", "tis-620", "windows-874", "cp874", "cp866",
		"ibm866", "cp850", "cp437", "cp852", "ks_c_5601-1987",
		"macintosh", "x-mac-roman", "ansi_x3.4-1968", "x-gbk",
		"x-sjis", "hz-gb-2312", "viscii", "x-unknown", "unknown-8bit",
		NULL,
	};
	static const char *const numbered[] = {
		"iso-8859-", "iso8859-", "iso_8859-", "windows-125", "cp125",
		NULL,
	};
	char name[CHARSET_NAME_MAX + 1];

	if (len == 0)
		return true;
	if (len > CHARSET_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		name[i] = ascii_lower((unsigned char)s[i]);
	name[len] = '\0';
	if (name_in(name, known))
		return true;
	for (const char *const *p = numbered; *p != NULL; p++) {
		size_t plen = strlen(*p);
		const char *d = name + plen;
		bool windows = (*p)[plen - 1] == '5';

		if (len <= plen || strncmp(name, *p, plen) != 0)
			continue;
		if (windows)	/* windows-1250 .. windows-1258 */
			return len == plen + 1 && *d >= '0' && *d <= '8';
		/* iso-8859-1 .. iso-8859-16, no leading zero */
		if (len == plen + 1)
			return *d >= '1' && *d <= '9';
		return len == plen + 2 && d[0] == '1' && d[1] >= '0' &&
		    d[1] <= '6';
	}
	return false;
}

/* One Content-* field's value, [i, end) with its folded lines: at most
 * GUARD_PARAMS parameters (';' past that become ' '); an encoded-word
 * with an unknown charset loses its "=?" ("= "); an RFC 2231 value
 * (name*=, name*N*=) with an unknown charset loses its quotes ('_'),
 * so GMime sees no charset in it. */
static bool
guard_field_value(char *b, size_t i, size_t end)
{
	bool changed = false;
	int semis = 0;

	for (; i < end; i++) {
		if (b[i] == ';' && ++semis > GUARD_PARAMS) {
			b[i] = ' ';
			changed = true;
		} else if (b[i] == '=' && i + 1 < end && b[i + 1] == '?') {
			size_t k = i + 2;

			while (k < end && b[k] != '?' &&
			    !ascii_space((unsigned char)b[k]))
				k++;
			if (k + 2 < end && b[k] == '?' &&
			    strchr("bBqQ", b[k + 1]) && b[k + 2] == '?' &&
			    (memchr(b + i + 2, '*', k - i - 2) != NULL ||
			    !charset_name_known(b + i + 2, k - i - 2))) {
				b[i + 1] = ' ';
				changed = true;
			}
		} else if (b[i] == '=') {
			size_t p = i, vs = i + 1, ve, q;

			while (p > 0 && (b[p - 1] == ' ' || b[p - 1] == '\t'))
				p--;
			if (p == 0 || b[p - 1] != '*')
				continue;
			while (vs < end && ascii_space((unsigned char)b[vs]))
				vs++;
			if (vs < end && b[vs] == '"') {
				vs++;
				const char *dq = memchr(b + vs, '"', end - vs);
				ve = dq ? (size_t)(dq - b) : end;
			} else {
				const char *sc = memchr(b + vs, ';', end - vs);
				ve = sc ? (size_t)(sc - b) : end;
			}
			const char *quote = memchr(b + vs, '\'', ve - vs);
			if (quote == NULL)
				continue;
			q = (size_t)(quote - b);
			if (charset_name_known(b + vs, q - vs))
				continue;
			for (size_t k = q; k < ve; k++)
				if (b[k] == '\'')
					b[k] = '_';
			changed = true;
		}
	}
	return changed;
}

/* If the line [ls, le) is a header field ("name:" or "name :", the
 * name without white space), the position of its ':'. */
static bool
field_colon(const char *b, size_t ls, size_t le, size_t *colon)
{
	size_t j = ls;

	while (j < le && b[j] != ':' && b[j] != ' ' && b[j] != '\t')
		j++;
	while (j < le && (b[j] == ' ' || b[j] == '\t') && j > ls)
		j++;
	if (j >= le || b[j] != ':')
		return false;
	*colon = j;
	return true;
}

/*
 * Defuses, in place and at the same length, every line that GMime
 * could read as a header, wherever it is (in a body the change is
 * undone before decoding, see the top of this file):
 *  - a field that is not Content-* is renamed ('X' first) when it
 *    starts a run of such fields and made a folded line (' ' first)
 *    after one: so GMime never parses addresses or subjects, and a
 *    header block is a handful of GMime headers however many lines it
 *    has;
 *  - at most GUARD_CONTENT_LINES Content-* fields per block (GMime uses
 *    the last Content-Type it sees), each checked by guard_field_value
 *    and cut (a NUL) after GUARD_FIELD_BYTES: GMime's parameter parser
 *    costs about 30 times a long value;
 *  - no GMime header grows past GUARD_MERGE_BYTES of other fields or
 *    GUARD_FIELD_BYTES of a Content-* one: the next folded line or field
 *    starts a new one (a folded line becomes a field named "", its ' '
 *    made ':'), since GMime grows a header's buffer a little at a time;
 *  - "--" lines beyond dash_limit are no boundary any more, so the parts
 *    GMime builds stay near max_parts.
 * A block starts at the top, after an empty line and after a "--" line.
 * Returns whether anything changed.
 */
static bool
header_guard(char *b, size_t n, long dash_limit)
{
	enum { PREV_NONE, PREV_CONTENT, PREV_OTHER } prev = PREV_NONE;
	int content_fields = 0;
	long dash_lines = 0;
	bool changed = false;
	size_t ls = 0;
	size_t merge_start = 0;	/* where the current other field starts */
	size_t content_end = 0;	/* where the current Content-* field ends */

	while (ls < n) {
		const char *nl = memchr(b + ls, '\n', n - ls);
		size_t next = nl ? (size_t)(nl - b) + 1 : n;
		size_t le = nl ? (size_t)(nl - b) : n;
		size_t colon;
		bool dash = false;

		if (le > ls && b[le - 1] == '\r')
			le--;
		if (le - ls >= 2 && b[ls] == '-' && b[ls + 1] == '-') {
			if (++dash_lines <= dash_limit) {
				prev = PREV_NONE;
				content_fields = 0;
				ls = next;
				continue;
			}
			dash = true;	/* one too many: a line like others */
		}
		if (le == ls) {
			prev = PREV_NONE;
			content_fields = 0;
		} else if (b[ls] == ' ' || b[ls] == '\t') {
			if ((prev == PREV_CONTENT && ls >= content_end) ||
			    (prev == PREV_OTHER &&
			    ls - merge_start > GUARD_MERGE_BYTES)) {
				b[ls] = ':';
				changed = true;
				prev = PREV_OTHER;
				merge_start = ls;
			}
		} else if (!dash && field_colon(b, ls, le, &colon) &&
		    colon - ls >= 8 && strncasecmp(b + ls, "content-", 8) == 0 &&
		    content_fields < GUARD_CONTENT_LINES) {
			size_t end = next;

			/* the field with its folded lines, up to the budget */
			while (end < n && (b[end] == ' ' || b[end] == '\t') &&
			    end - ls <= GUARD_FIELD_BYTES) {
				const char *e = memchr(b + end, '\n', n - end);
				end = e ? (size_t)(e - b) + 1 : n;
			}
			content_fields++;
			prev = PREV_CONTENT;
			content_end = end;
			changed |= guard_field_value(b, colon + 1, end);
			if (end - ls > GUARD_FIELD_BYTES) {
				/* GMime keeps a header value up to a NUL; not
				 * at a line's start nor on its line break */
				size_t k = ls + GUARD_FIELD_BYTES;

				while (k < end && (b[k] == '\r' || b[k] == '\n' ||
				    b[k - 1] == '\n'))
					k++;
				if (k < end) {
					b[k] = '\0';
					changed = true;
				}
			}
		} else if (!dash && !field_colon(b, ls, le, &colon)) {
			/* not a header: GMime ends the block here */
		} else if (prev != PREV_OTHER ||
		    ls - merge_start > GUARD_MERGE_BYTES) {
			if (b[ls] != 'X' && b[ls] != ':') {
				b[ls] = 'X';
				changed = true;
			}
			prev = PREV_OTHER;
			merge_start = ls;
		} else {
			b[ls] = ' ';
			changed = true;
		}
		ls = next;
	}
	return changed;
}

/* ---- mime_parse ---- */

struct mime_content *
mime_parse(const char *data, size_t len, const struct mime_limits *limits)
{
	mime_init();
	return parse(data, len, limits);
}

static struct mime_content *
parse(const char *data, size_t len, const struct mime_limits *limits)
{
	struct mime_content *c = mxg_calloc(1, sizeof(*c));
	struct walk w = {limits, c, STRBUF_INIT, STRBUF_INIT, NULL, 0, NULL, 0,
	    NULL, 0, 0, {0}};
	size_t scan = len;

	if (data == NULL)
		scan = len = 0;
	if (scan > limits->max_scan_size) {
		scan = limits->max_scan_size;
		c->truncated = true;
	}
	w.seen_uris = g_hash_table_new(g_str_hash, g_str_equal);

	GMimeMessage *msg = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	gint64 headers_end = -1;

	if (scan > 0) {
		long dash_limit = GUARD_DASH_SLACK +
		    2L * (limits->max_parts > 0 ? limits->max_parts : 0);
		GByteArray *bytes;
		bool guarded;

		stream = g_mime_stream_mem_new_with_buffer(data, scan);
		bytes = g_mime_stream_mem_get_byte_array(
		    GMIME_STREAM_MEM(stream));
		guarded = header_guard((char *)bytes->data, bytes->len,
		    dash_limit);
		parser = g_mime_parser_new_with_stream(stream);
		g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
		msg = g_mime_parser_construct_message(parser, mime_options);
		headers_end = g_mime_parser_get_headers_end(parser);
		g_object_unref(parser);
		/* bodies are read from here, as they came */
		if (guarded)
			memcpy(bytes->data, data, scan);
	}
	if (msg == NULL) {
		/* not a message at all: its bytes are the text */
		c->parse_error = true;
		if (scan > 0)
			walk_text(&w, NULL, data, scan, false);
	} else {
		struct top_body top = {NULL, 0};

		if (headers_end >= 0 && (size_t)headers_end <= scan) {
			size_t b = (size_t)headers_end;

			/* past the empty line that ends the headers */
			if (b < scan && data[b] == '\r')
				b++;
			if (b < scan && data[b] == '\n')
				b++;
			top.data = data + b;
			top.len = scan - b;
		}
		walk_object_top(&w, g_mime_message_get_mime_part(msg), &top);
		g_object_unref(msg);
	}
	if (stream != NULL)
		g_object_unref(stream);
	g_hash_table_destroy(w.seen_uris);
	iconv_cache_close(&w.iconv);

	c->text_len = w.text.len;
	c->text = strbuf_steal(&w.text);
	c->raw_text_len = w.raw.len;
	c->raw_text = strbuf_steal(&w.raw);
	c->text_parts = w.text_parts;
	c->ntext_parts = w.ntext_parts;
	c->raw_parts = w.raw_parts;
	c->nraw_parts = w.nraw_parts;
	return c;
}

void
mime_content_free(struct mime_content *c)
{
	if (c == NULL)
		return;
	free(c->text);
	free(c->raw_text);
	free(c->text_parts);
	free(c->raw_parts);
	for (size_t i = 0; i < c->nuris; i++) {
		free(c->uris[i].uri);
		free(c->uris[i].host);
	}
	free(c->uris);
	for (size_t i = 0; i < c->nattachments; i++) {
		free(c->attachments[i].filename);
		free(c->attachments[i].content_type);
	}
	free(c->attachments);
	free(c);
}
