/*
 * test_strbuf.c - lib/strbuf.h: a growing byte string that is always
 * NUL-terminated, and JSON strings that are always valid.
 */
#include "unit.h"

#include "../../lib/strbuf.h"

static void
test_strbuf_append_grows_and_stays_nul_terminated(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char want[10001];

	(void)state;
	EXPECT_STR("fresh cstr is empty", strbuf_cstr(&sb), "");
	EXPECT_INT("fresh len", sb.len, 0);
	for (size_t i = 0; i < 10000; i++) {
		want[i] = (char)('a' + i % 26);
		strbuf_putc(&sb, want[i]);
		if (sb.len != i + 1 || sb.data[sb.len] != '\0' || sb.cap <= sb.len)
			fail_msg("after %zu putc: len %zu cap %zu", i + 1,
			    sb.len, sb.cap);
	}
	want[10000] = '\0';
	EXPECT_MEM("10000 putc", sb.data, sb.len, want, 10000);
	strbuf_free(&sb);
	EXPECT_TRUE("free empties", sb.data == NULL && sb.len == 0 && sb.cap == 0);
	strbuf_free(&sb);	/* twice is fine */
}

static void
test_strbuf_append_keeps_nul_bytes(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	strbuf_append(&sb, "a\0b", 3);
	strbuf_append(&sb, "", 0);
	strbuf_append(&sb, NULL, 0);
	strbuf_puts(&sb, "cd");
	strbuf_putc(&sb, '\0');
	EXPECT_MEM("bytes", sb.data, sb.len, "a\0bcd\0", 6);
	EXPECT_INT("terminator", sb.data[sb.len], '\0');
	strbuf_free(&sb);
}

static void
test_strbuf_printf_appends_formatted_text(void **state)
{
	static const struct {
		const char *label;
		const char *prefix;
		int n;
		const char *s;
		const char *want;
	} rows[] = {
		{"into empty", "", 7, "x", "7 x"},
		{"after text", "score=", -1, "abc", "score=-1 abc"},
		{"empty string argument", "p", 0, "", "p0 "},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_puts(&sb, rows[i].prefix);
		strbuf_printf(&sb, "%d %s", rows[i].n, rows[i].s);
		EXPECT_STR(rows[i].label, strbuf_cstr(&sb), rows[i].want);
		EXPECT_INT(rows[i].label, sb.len, strlen(rows[i].want));
		strbuf_free(&sb);
	}

	/* growth through printf: 5000 bytes in one call, then more */
	struct strbuf sb = STRBUF_INIT;
	char big[5001];

	memset(big, 'z', 5000);
	big[5000] = '\0';
	strbuf_printf(&sb, "[%s]", big);
	strbuf_printf(&sb, "%s", "");	/* empty output appends nothing */
	strbuf_printf(&sb, "%05d", 42);
	EXPECT_INT("big printf", sb.len, 5007);
	EXPECT_INT("big printf", sb.data[0], '[');
	EXPECT_INT("big printf", sb.data[5001], ']');
	EXPECT_STR("big printf tail", sb.data + 5002, "00042");
	strbuf_free(&sb);
}

static void
test_strbuf_steal_and_reset(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	char *empty = strbuf_steal(&sb);
	EXPECT_STR("steal of nothing is an empty string", empty, "");
	free(empty);

	strbuf_puts(&sb, "hello");
	char *s = strbuf_steal(&sb);
	EXPECT_STR("stolen", s, "hello");
	EXPECT_TRUE("left empty", sb.data == NULL && sb.len == 0 && sb.cap == 0);
	free(s);

	strbuf_puts(&sb, "again");
	strbuf_reset(&sb);
	EXPECT_INT("reset len", sb.len, 0);
	EXPECT_STR("reset cstr", strbuf_cstr(&sb), "");
	strbuf_puts(&sb, "x");
	EXPECT_STR("after reset", strbuf_cstr(&sb), "x");
	strbuf_free(&sb);

	struct strbuf never = STRBUF_INIT;
	strbuf_reset(&never);	/* reset of a never-used buffer */
	EXPECT_INT("reset unused", never.len, 0);
	strbuf_free(&never);
}

#define J(label, in, want) {label, in, sizeof(in) - 1, want}

static const struct {
	const char *label;
	const char *in;
	size_t len;
	const char *want;
} json_rows[] = {
	J("empty", "", "\"\""),
	J("plain ASCII", "hello world", "\"hello world\""),
	J("double quote", "say \"hi\"", "\"say \\\"hi\\\"\""),
	J("backslash", "a\\b", "\"a\\\\b\""),
	J("quote and backslash together", "\\\"", "\"\\\\\\\"\""),
	J("slash is not escaped", "a/b", "\"a/b\""),
	J("newline, CR, tab", "a\nb\rc\td", "\"a\\nb\\rc\\td\""),
	J("NUL", "a\0b", "\"a\\u0000b\""),
	J("other control bytes", "\x01\x08\x0c\x1b\x1f", "\"\\u0001\\u0008\\u000c\\u001b\\u001f\""),
	J("DEL", "\x7f", "\"\\u007f\""),
	J("space and tilde kept", " ~", "\" ~\""),
	J("2-byte UTF-8 kept", "caf\xc3\xa9", "\"caf\xc3\xa9\""),
	J("3-byte UTF-8 kept", "\xe2\x82\xac", "\"\xe2\x82\xac\""),
	J("4-byte UTF-8 kept", "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""),
	J("largest code point kept", "\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""),
	J("lone continuation byte", "a\x80z", "\"a\\ufffdz\""),
	J("lone lead byte at the end", "a\xc3", "\"a\\ufffd\""),
	J("lead byte then ASCII", "\xc3(", "\"\\ufffd(\""),
	J("truncated 3-byte sequence", "\xe2\x82", "\"\\ufffd\\ufffd\""),
	J("overlong 2-byte (C0 80)", "\xc0\x80", "\"\\ufffd\\ufffd\""),
	J("overlong 3-byte", "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""),
	J("UTF-16 surrogate", "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""),
	J("above U+10FFFF", "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""),
	J("F5 lead byte", "\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""),
	J("FF byte", "\xff", "\"\\ufffd\""),
	J("Latin-1 text", "na\xefve", "\"na\\ufffdve\""),
	J("valid after invalid", "\xff\xc3\xa9", "\"\\ufffd\xc3\xa9\""),
};

static void
test_strbuf_json_string_escapes_and_replaces_invalid_utf8(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(json_rows); i++) {
		struct strbuf sb = STRBUF_INIT;
		/* an exact-size copy: a read past len shows under ASan */
		char *in = malloc(json_rows[i].len ? json_rows[i].len : 1);

		assert_non_null(in);
		memcpy(in, json_rows[i].in, json_rows[i].len);
		strbuf_json_string(&sb, in, json_rows[i].len);
		EXPECT_STR(json_rows[i].label, strbuf_cstr(&sb), json_rows[i].want);
		EXPECT_INT(json_rows[i].label, sb.len, strlen(json_rows[i].want));
		free(in);
		strbuf_free(&sb);
	}
}

static void
test_strbuf_json_cstr_writes_null_for_null(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	strbuf_json_cstr(&sb, NULL);
	EXPECT_STR("NULL", strbuf_cstr(&sb), "null");
	strbuf_reset(&sb);
	strbuf_json_cstr(&sb, "");
	EXPECT_STR("empty", strbuf_cstr(&sb), "\"\"");
	strbuf_reset(&sb);
	strbuf_json_cstr(&sb, "a\"b");
	EXPECT_STR("quote", strbuf_cstr(&sb), "\"a\\\"b\"");
	strbuf_reset(&sb);
	strbuf_puts(&sb, "{\"k\":");
	strbuf_json_cstr(&sb, NULL);
	strbuf_putc(&sb, '}');
	EXPECT_STR("inside an object", strbuf_cstr(&sb), "{\"k\":null}");
	strbuf_free(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strbuf_append_grows_and_stays_nul_terminated),
		cmocka_unit_test(test_strbuf_append_keeps_nul_bytes),
		cmocka_unit_test(test_strbuf_printf_appends_formatted_text),
		cmocka_unit_test(test_strbuf_steal_and_reset),
		cmocka_unit_test(test_strbuf_json_string_escapes_and_replaces_invalid_utf8),
		cmocka_unit_test(test_strbuf_json_cstr_writes_null_for_null),
	};

	return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
