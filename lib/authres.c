#include "authres.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"

static void
append_comment(struct strbuf *sb, const char *text)
{
	strbuf_puts(sb, " (");
	for (const char *p = text; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '(' || c == ')' || c == '\\' || c < 32 || c >= 127)
			strbuf_putc(sb, ' ');
		else
			strbuf_putc(sb, (char)c);
	}
	strbuf_putc(sb, ')');
}

/* A pvalue that can stand bare: a token, a domain, local-part@domain. */
static bool
value_is_plain(const char *v, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)v[i]) &&
		    strchr(".-_@+=/:!#$%&'*^`{|}~", v[i]) == NULL)
			return false;
	return true;
}

/*
 * props is "name=value" pairs, one per line. Values come from the client
 * (a HELO name, a sender domain, later a DKIM d=), so one that is not
 * plain is written as a quoted-string: a ';' or line end inside it can
 * never start a resinfo of its own in our header. Control bytes and
 * non-ASCII are dropped; a line without '=' or with a bad name is too.
 */
static void
append_props(struct strbuf *sb, const char *props)
{
	const char *line = props;

	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		const char *eq = memchr(line, '=', end ? (size_t)(end - line) :
		    strlen(line));
		size_t linelen = end ? (size_t)(end - line) : strlen(line);

		if (eq != NULL && eq > line &&
		    strspn(line, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
		    (size_t)(eq - line)) {
			const char *v = eq + 1;
			size_t vlen = linelen - (size_t)(v - line);

			strbuf_putc(sb, ' ');
			strbuf_append(sb, line, (size_t)(v - line));
			if (value_is_plain(v, vlen)) {
				strbuf_append(sb, v, vlen);
			} else {
				strbuf_putc(sb, '"');
				for (size_t i = 0; i < vlen; i++) {
					unsigned char c = (unsigned char)v[i];

					if (c < 32 || c >= 127)
						continue;
					if (c == '"' || c == '\\')
						strbuf_putc(sb, '\\');
					strbuf_putc(sb, (char)c);
				}
				strbuf_putc(sb, '"');
			}
		}
		if (end == NULL)
			break;
		line = end + 1;
	}
}

char *
authres_format(const char *authserv_id, const struct verdict *v,
    const char *fold)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_puts(&sb, authserv_id);
	if (v->nauthres == 0)
		strbuf_puts(&sb, "; none");
	for (size_t i = 0; i < v->nauthres; i++) {
		const struct verdict_authres *ar = &v->authres[i];

		strbuf_putc(&sb, ';');
		strbuf_puts(&sb, fold);
		strbuf_printf(&sb, "%s=%s", ar->method, ar->result);
		if (ar->reason != NULL && *ar->reason != '\0')
			append_comment(&sb, ar->reason);
		if (ar->props != NULL)
			append_props(&sb, ar->props);
	}
	return strbuf_steal(&sb);
}

/* Skips white space and (nested) comments; returns the new position. */
static size_t
skip_cfws(const char *s, size_t len, size_t i)
{
	int depth = 0;

	while (i < len) {
		char c = s[i];

		if (depth > 0) {
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
		} else if (c == '(') {
			depth = 1;
		} else if (!isspace((unsigned char)c)) {
			break;
		}
		i++;
	}
	return i;
}

bool
authres_claims_id(const char *value, size_t len, const char *authserv_id)
{
	size_t i = skip_cfws(value, len, 0);
	size_t idlen = strlen(authserv_id);

	if (idlen == 0)
		return false;
	if (i < len && value[i] == '"') {
		/* A quoted-string (RFC 8601 2.2 via RFC 2045 "value"):
		 * compare its content, unescaped, byte by byte. */
		size_t k = 0;

		for (i++; i < len && value[i] != '"'; i++) {
			if (value[i] == '\\' && i + 1 < len)
				i++;
			if (k >= idlen || tolower((unsigned char)value[i]) !=
			    tolower((unsigned char)authserv_id[k]))
				return false;
			k++;
		}
		return i < len && k == idlen;
	}
	size_t start = i;
	while (i < len && value[i] != ';' && value[i] != '(' &&
	    !isspace((unsigned char)value[i]))
		i++;
	if (i - start != idlen)
		return false;
	return strncasecmp(value + start, authserv_id, idlen) == 0;
}
