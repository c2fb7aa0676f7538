#include "authres.h"

#include <ctype.h>
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
		if (ar->props != NULL && *ar->props != '\0') {
			strbuf_putc(&sb, ' ');
			strbuf_puts(&sb, ar->props);
		}
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
	size_t start = i;
	size_t idlen = strlen(authserv_id);

	while (i < len && value[i] != ';' && value[i] != '(' &&
	    !isspace((unsigned char)value[i]))
		i++;
	if (i - start != idlen || idlen == 0)
		return false;
	return strncasecmp(value + start, authserv_id, idlen) == 0;
}
