/*
 * test_authres.c - lib/authres.h: the Authentication-Results value we
 * write, and spotting a forged one that claims our authserv-id.
 */
#include "unit.h"

#include <stdbool.h>

#include "../../lib/authres.h"
#include "../../lib/verdict.h"

struct entry {
	const char *method, *result, *reason, *props;
};

static void
test_authres_format_lists_every_entry(void **state)
{
	static const struct {
		const char *label;
		const char *id;
		const char *fold;
		struct entry e[3];
		size_t n;
		const char *want;
	} rows[] = {
		{"no entries is none", "mx.test", " ", {{0}}, 0,
		    "mx.test; none"},
		{"no entries ignores the fold", "mx.test", "\r\n\t", {{0}}, 0,
		    "mx.test; none"},
		{"one entry, result only", "mx.test", " ",
		    {{"spf", "pass", NULL, NULL}}, 1,
		    "mx.test; spf=pass"},
		{"one entry with comment and property", "mx.test", " ",
		    {{"spf", "fail", "sender not authorized", "smtp.mailfrom=example.org"}}, 1,
		    "mx.test; spf=fail (sender not authorized) smtp.mailfrom=example.org"},
		{"one entry, property without comment", "mx.test", " ",
		    {{"spf", "none", NULL, "smtp.helo=mail.example.org"}}, 1,
		    "mx.test; spf=none smtp.helo=mail.example.org"},
		{"empty comment and property are left out", "mx.test", " ",
		    {{"spf", "temperror", "", ""}}, 1,
		    "mx.test; spf=temperror"},
		{"two entries, folded", "mx.test", "\r\n\t",
		    {{"spf", "pass", NULL, "smtp.mailfrom=a.example"},
		     {"dkim", "none", "no signature", NULL}}, 2,
		    "mx.test;\r\n\tspf=pass smtp.mailfrom=a.example;\r\n\tdkim=none (no signature)"},
		{"three entries, space fold", "mx.example.org", " ",
		    {{"spf", "pass", NULL, NULL}, {"dkim", "pass", NULL, "header.d=a.example"},
		     {"dmarc", "pass", NULL, "header.from=a.example"}}, 3,
		    "mx.example.org; spf=pass; dkim=pass header.d=a.example; dmarc=pass header.from=a.example"},
		{"comment: parentheses and backslash become spaces", "mx.test", " ",
		    {{"spf", "fail", "a (nested) \\ b", NULL}}, 1,
		    "mx.test; spf=fail (a  nested    b)"},
		{"comment: CR LF cannot start a new header", "mx.test", " ",
		    {{"spf", "fail", "x\r\nX-Injected: yes", NULL}}, 1,
		    "mx.test; spf=fail (x  X-Injected: yes)"},
		{"comment: control and 8-bit bytes become spaces", "mx.test", " ",
		    {{"spf", "fail", "\x01\x1b\x7f" "caf\xc3\xa9", NULL}}, 1,
		    "mx.test; spf=fail (   caf  )"},
		{"comment: unbalanced parenthesis", "mx.test", " ",
		    {{"spf", "fail", "open ( only", NULL}}, 1,
		    "mx.test; spf=fail (open   only)"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct verdict *v = verdict_new();

		for (size_t k = 0; k < rows[i].n; k++)
			verdict_add_authres(v, rows[i].e[k].method,
			    rows[i].e[k].result, rows[i].e[k].reason,
			    rows[i].e[k].props);
		char *got = authres_format(rows[i].id, v, rows[i].fold);
		EXPECT_STR(rows[i].label, got, rows[i].want);
		free(got);
		verdict_free(v);
	}
}

struct claims_row {
	const char *label;
	const char *value;
	size_t len;		/* SIZE_MAX: strlen(value) */
	const char *id;
	bool want;
};

#define ROW(label, value, id, want) {label, value, SIZE_MAX, id, want}
/* a value with NUL bytes: its length is the literal's */
#define BYTES(label, value, id, want) {label, value, sizeof(value) - 1, id, want}

static const struct claims_row claims_rows[] = {
	ROW("exact id", "mx.test; spf=pass", "mx.test", true),
	ROW("id alone", "mx.test", "mx.test", true),
	ROW("id with none", "mx.test; none", "mx.test", true),
	ROW("upper-case value", "MX.TEST; spf=pass", "mx.test", true),
	ROW("upper-case id", "mx.test; spf=pass", "MX.Test", true),
	ROW("leading spaces", "   mx.test; spf=pass", "mx.test", true),
	ROW("leading tab and folding", "\r\n\tmx.test; spf=pass", "mx.test", true),
	ROW("leading comment", "(c) mx.test; spf=pass", "mx.test", true),
	ROW("leading comment without space", "(c)mx.test; spf=pass", "mx.test", true),
	ROW("nested comment", "(a (b) c) mx.test; spf=pass", "mx.test", true),
	ROW("comment with escaped parenthesis", "(a \\) b) mx.test;", "mx.test", true),
	ROW("two comments", "(a) (b) mx.test;", "mx.test", true),
	ROW("id followed by version", "mx.test 1; spf=pass", "mx.test", true),
	ROW("id followed by comment", "mx.test(ours); spf=pass", "mx.test", true),
	ROW("id followed by space and ;", "mx.test ; spf=pass", "mx.test", true),
	ROW("id then tab", "mx.test\t; spf=pass", "mx.test", true),

	ROW("different id", "other.example; spf=pass", "mx.test", false),
	ROW("value is a longer id", "mx.test.local; spf=pass", "mx.test", false),
	ROW("value is a prefix of the id", "mx.test; spf=pass", "mx.test.local", false),
	ROW("value is a suffix of the id", "test; spf=pass", "mx.test", false),
	ROW("value has the id as suffix", "evil-mx.test; spf=pass", "mx.test", false),
	ROW("id only inside a comment", "(mx.test) other.example; spf=pass", "mx.test", false),
	ROW("id only in a later resinfo", "other.example; spf=pass (mx.test)", "mx.test", false),
	ROW("id after an unclosed comment", "(never closed mx.test; spf=pass", "mx.test", false),
	ROW("escaped close keeps the comment open", "(\\) mx.test;", "mx.test", false),
	ROW("empty value", "", "mx.test", false),
	ROW("only spaces", "     ", "mx.test", false),
	ROW("only a comment", "(mx.test)", "mx.test", false),
	ROW("only a semicolon", ";", "mx.test", false),
	ROW("empty id never matches", "; spf=pass", "", false),
	ROW("empty id, empty value", "", "", false),
	BYTES("binary bytes", "\xff\xfe\x80\x01\x02", "mx.test", false),
	BYTES("binary bytes after the id", "mx.test\xff; spf=pass", "mx.test", false),
	BYTES("NUL inside the id", "mx.t\0est; spf=pass", "mx.test", false),
	BYTES("NUL right after the id", "mx.test\0; spf=pass", "mx.test", false),
	BYTES("NUL after the semicolon", "mx.test;\0\0\0", "mx.test", true),
	BYTES("NUL inside a leading comment", "(a\0b) mx.test;", "mx.test", true),
	BYTES("leading NUL", "\0mx.test;", "mx.test", false),
	/* len, not the NUL, ends the value */
	{"len cuts the value after the id", "mx.testing", 7, "mx.test", true},
	{"len cuts the value inside the id", "mx.test", 5, "mx.test", false},
	{"len 0", "mx.test", 0, "mx.test", false},
};

static void
test_authres_claims_id_only_for_our_exact_authserv_id(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(claims_rows); i++) {
		const struct claims_row *r = &claims_rows[i];
		size_t len = r->len == SIZE_MAX ? strlen(r->value) : r->len;

		/* a heap copy of exactly len bytes, so that ASan sees any
		 * read past the end */
		char *copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, r->value, len);
		bool got = authres_claims_id(copy, len, r->id);
		free(copy);
		EXPECT_INT(r->label, got, r->want);
	}
}

/*
 * Regression (lib/authres.c, authres_claims_id, fixed): RFC 8601 section 2.2 makes the
 * authserv-id a "value" (RFC 2045: token or quoted-string), so
 * `"mx.test"; spf=pass` names mx.test just as `mx.test; spf=pass` does.
 * The quoted form is returned false, so a forged header in that form is
 * not removed and reaches readers that unquote it.
 */
static void
test_authres_claims_id_in_a_quoted_string(void **state)
{
	static const struct claims_row rows[] = {
		ROW("quoted id", "\"mx.test\"; spf=pass", "mx.test", true),
		ROW("quoted id after a comment", "(c) \"MX.test\"; spf=pass", "mx.test", true),
		ROW("quoted other id", "\"other.example\"; spf=pass", "mx.test", false),
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT_INT(rows[i].label,
		    authres_claims_id(rows[i].value, strlen(rows[i].value),
		    rows[i].id), rows[i].want);
}

/* The number of ';' that separate resinfos: outside comments and
 * quoted-strings (RFC 8601 2.2). */
static size_t
count_separators(const char *s)
{
	size_t n = 0;
	int depth = 0;
	bool quoted = false;

	for (; *s; s++) {
		if ((depth > 0 || quoted) && *s == '\\' && s[1] != '\0')
			s++;
		else if (quoted)
			quoted = *s != '"';
		else if (*s == '(')
			depth++;
		else if (*s == ')' && depth > 0)
			depth--;
		else if (depth == 0 && *s == '"')
			quoted = true;
		else if (depth == 0 && *s == ';')
			n++;
	}
	return n;
}

/*
 * Regression (lib/authres.c, authres_format; fed by lib/spf.c, spf_run, fixed): props
 * are copied verbatim, and spf_run builds them from client data
 * ("smtp.helo=" + the HELO name, "smtp.mailfrom=" + the sender domain),
 * even when the HELO is not a domain (RFC 7208: result none, no DNS).
 * `HELO x;dkim=pass` therefore yields our own trusted header
 *	Authentication-Results: mx; spf=none (...) smtp.helo=x;dkim=pass
 * which every reader takes as a dkim=pass from us. A pvalue that is not
 * an RFC 2045 token must be written as a quoted-string (or dropped);
 * authres_format is where comments are already made safe, so that any
 * check (DKIM's header.d is signer-controlled too) is covered.
 */
static void
test_authres_property_value_cannot_add_a_resinfo(void **state)
{
	static const struct {
		const char *label;
		const char *props;
	} rows[] = {
		{"semicolon in smtp.helo", "smtp.helo=x;dkim=pass"},
		{"semicolon and space in smtp.mailfrom",
		    "smtp.mailfrom=b.example; dkim=pass header.d=b.example"},
		{"CR LF in a property", "smtp.helo=x\r\nX-Injected: yes"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct verdict *v = verdict_new();

		verdict_add_authres(v, "spf", "none", "HELO is not a domain name",
		    rows[i].props);
		char *got = authres_format("mx.test", v, " ");
		verdict_free(v);
		size_t seps = count_separators(got);
		bool crlf = strpbrk(got, "\r\n") != NULL;
		bool prefix = strncmp(got, "mx.test; spf=none ", 18) == 0;
		char shown[300];
		snprintf(shown, sizeof(shown), "%s", got);
		free(got);
		if (seps != 1 || crlf || !prefix)
			fail_msg("%s: one resinfo expected, got \"%s\"",
			    rows[i].label, shown);
	}
}

/* Every prefix of some values, as the milter may hand a cut header:
 * never a crash or a read past len (run under ASan). */
static void
test_authres_claims_id_is_safe_on_every_truncation(void **state)
{
	static const char *const values[] = {
		"(a (b \\) c) d) mx.test (x) 1; spf=pass",
		"\\\\\\((((((((",
		"(\\",
		"mx.test",
	};

	(void)state;
	for (size_t i = 0; i < NELEM(values); i++) {
		size_t n = strlen(values[i]);

		for (size_t len = 0; len <= n; len++) {
			char *copy = malloc(len ? len : 1);

			assert_non_null(copy);
			memcpy(copy, values[i], len);
			(void)authres_claims_id(copy, len, "mx.test");
			free(copy);
		}
	}
	EXPECT_INT("whole first value",
	    authres_claims_id(values[0], strlen(values[0]), "mx.test"), true);
	EXPECT_INT("first value cut inside the id",
	    authres_claims_id(values[0], 18, "mx.test"), false);
	EXPECT_INT("first value cut right after the id",
	    authres_claims_id(values[0], 22, "mx.test"), true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_authres_format_lists_every_entry),
		cmocka_unit_test(test_authres_claims_id_only_for_our_exact_authserv_id),
		cmocka_unit_test(test_authres_claims_id_is_safe_on_every_truncation),
		/* Regressions for the lib/authres.c bugs they describe (fixed). */
		cmocka_unit_test(test_authres_claims_id_in_a_quoted_string),
		cmocka_unit_test(test_authres_property_value_cannot_add_a_resinfo),
	};

	return cmocka_run_group_tests_name("authres", tests, NULL, NULL);
}
