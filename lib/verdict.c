#include "verdict.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxg.h"
#include "strbuf.h"

struct verdict *
verdict_new(void)
{
	return mxg_calloc(1, sizeof(struct verdict));
}

void
verdict_reset(struct verdict *v)
{
	for (size_t i = 0; i < v->nsymbols; i++)
		free(v->symbols[i].detail);
	free(v->symbols);
	for (size_t i = 0; i < v->nauthres; i++) {
		free(v->authres[i].method);
		free(v->authres[i].result);
		free(v->authres[i].reason);
		free(v->authres[i].props);
	}
	free(v->authres);
	for (size_t i = 0; i < v->nheaders; i++) {
		free(v->headers[i].name);
		free(v->headers[i].value);
	}
	free(v->headers);
	free(v->quarantine);
	free(v->new_subject);
	free(v->forced_code);
	free(v->forced_enhanced);
	free(v->forced_text);
	free(v->reply);
	free(v->reply_code);
	free(v->reply_enhanced);
	free(v->reply_text);
	memset(v, 0, sizeof(*v));
}

void
verdict_free(struct verdict *v)
{
	if (v == NULL)
		return;
	verdict_reset(v);
	free(v);
}

static char *
dup_or_null(const char *s)
{
	return s ? mxg_strdup(s) : NULL;
}

void
verdict_add_symbol(struct verdict *v, const char *name, double score,
    const char *detail)
{
	v->symbols = mxg_realloc(v->symbols,
	    (v->nsymbols + 1) * sizeof(*v->symbols));
	v->symbols[v->nsymbols].name = name;
	v->symbols[v->nsymbols].score = score;
	v->symbols[v->nsymbols].detail = dup_or_null(detail);
	v->nsymbols++;
}

const struct verdict_symbol *
verdict_find_symbol(const struct verdict *v, const char *name)
{
	for (size_t i = 0; i < v->nsymbols; i++)
		if (strcmp(v->symbols[i].name, name) == 0)
			return &v->symbols[i];
	return NULL;
}

/* verdict_force and verdict_force_code; code NULL: the default. */
static void
force(struct verdict *v, enum verdict_action action, const char *code,
    const char *enhanced, const char *fmt, va_list ap)
{
	struct strbuf text = STRBUF_INIT;
	/* An SMTP reply line is at most 512 octets (RFC 5321 4.5.3.1.5);
	 * with code and enhanced code in front, 400 of text is plenty. */
	char buf[400];

	if (v->forced)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* A reply line must stay printable ASCII: anything else (a hostile
	 * SPF explanation, say) becomes '?'. */
	for (const char *p = buf; *p; p++)
		strbuf_putc(&text, (*p >= 32 && *p < 127) ? *p : '?');
	v->forced = true;
	v->forced_action = action;
	v->forced_code = code ? mxg_strdup(code) : NULL;
	v->forced_enhanced = mxg_strdup(enhanced);
	v->forced_text = strbuf_steal(&text);
}

void
verdict_force(struct verdict *v, enum verdict_action action,
    const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	force(v, action, NULL, enhanced, fmt, ap);
	va_end(ap);
}

void
verdict_force_code(struct verdict *v, enum verdict_action action,
    const char *code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	force(v, action, code, enhanced, fmt, ap);
	va_end(ap);
}

void
verdict_add_authres(struct verdict *v, const char *method, const char *result,
    const char *reason, const char *props)
{
	struct verdict_authres *ar;

	v->authres = mxg_realloc(v->authres,
	    (v->nauthres + 1) * sizeof(*v->authres));
	ar = &v->authres[v->nauthres++];
	ar->method = mxg_strdup(method);
	ar->result = mxg_strdup(result);
	ar->reason = dup_or_null(reason);
	ar->props = dup_or_null(props);
}

void
verdict_add_header(struct verdict *v, const char *name, const char *value)
{
	v->headers = mxg_realloc(v->headers,
	    (v->nheaders + 1) * sizeof(*v->headers));
	v->headers[v->nheaders].name = mxg_strdup(name);
	v->headers[v->nheaders].value = mxg_strdup(value);
	v->nheaders++;
}

void
verdict_quarantine(struct verdict *v, const char *reason)
{
	if (v->quarantine == NULL)
		v->quarantine = mxg_strdup(reason);
}

static bool
reached(double score, double threshold)
{
	return threshold != CONFIG_THRESHOLD_OFF && score >= threshold;
}

static void
set_reply(struct verdict *v, const char *code, const char *enhanced,
    const char *text)
{
	char line[1200];

	free(v->reply);
	free(v->reply_code);
	free(v->reply_enhanced);
	free(v->reply_text);
	if (code == NULL) {
		v->reply = v->reply_code = v->reply_enhanced = NULL;
		v->reply_text = NULL;
		return;
	}
	snprintf(line, sizeof(line), "%s %s %s", code, enhanced, text);
	v->reply = mxg_strdup(line);
	v->reply_code = mxg_strdup(code);
	v->reply_enhanced = mxg_strdup(enhanced);
	v->reply_text = mxg_strdup(text);
}

void
verdict_decide(struct verdict *v, const struct config *cfg)
{
	double score = 0;

	for (size_t i = 0; i < v->nsymbols; i++)
		score += v->symbols[i].score;
	v->score = score;
	set_reply(v, NULL, NULL, NULL);

	if (v->forced) {
		v->action = v->forced_action;
		set_reply(v, v->forced_code ? v->forced_code :
		    v->action == VERDICT_REJECT ? "550" : "451",
		    v->forced_enhanced, v->forced_text);
		return;
	}
	if (reached(score, cfg->actions.reject)) {
		char text[128];

		v->action = VERDICT_REJECT;
		snprintf(text, sizeof(text),
		    "Message rejected as spam (score %.1f)", score);
		set_reply(v, "550", "5.7.1", text);
	} else if (reached(score, cfg->actions.tempfail)) {
		char text[128];

		v->action = VERDICT_TEMPFAIL;
		snprintf(text, sizeof(text),
		    "Message looks like spam (score %.1f), try again later",
		    score);
		set_reply(v, "451", "4.7.1", text);
	} else if (reached(score, cfg->actions.rewrite_subject)) {
		v->action = VERDICT_REWRITE_SUBJECT;
	} else if (reached(score, cfg->actions.add_header)) {
		v->action = VERDICT_ADD_HEADER;
	} else {
		v->action = VERDICT_ACCEPT;
	}
}

const char *
verdict_action_name(enum verdict_action action)
{
	switch (action) {
	case VERDICT_ACCEPT:
		return "accept";
	case VERDICT_ADD_HEADER:
		return "add_header";
	case VERDICT_REWRITE_SUBJECT:
		return "rewrite_subject";
	case VERDICT_TEMPFAIL:
		return "tempfail";
	case VERDICT_REJECT:
		return "reject";
	}
	return "accept";
}
