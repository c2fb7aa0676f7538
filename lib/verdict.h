/*
 * verdict.h - evidence in, one decision out.
 *
 * Checks add *symbols* (a name, a score, a short detail) and
 * Authentication-Results entries; verdict_decide() sums the scores and
 * turns the total into one action through the [actions] thresholds. A
 * check may also force an outcome (SPF reject_fail, a DNS failure under
 * on_error = tempfail); the first forced outcome wins over the score,
 * and the earliest stage that forces one ends the transaction there.
 *
 * A check never formats an SMTP reply: it gives the enhanced status code
 * and a human text, and the verdict builds "550 5.7.23 text".
 *
 * verdict_new() / verdict_free(v)       caller frees; NULL is a no-op
 * verdict_reset(v)                      empty again, for the next message
 * verdict_add_symbol(v, name, score, detail)
 *	name is borrowed (a check's static symbol table); detail is copied
 *	and may be NULL.
 * verdict_force(v, action, enhanced, fmt, ...)
 *	action is VERDICT_TEMPFAIL or VERDICT_REJECT; enhanced like "5.7.23".
 *	Ignored when an outcome is already forced. The text is cut at 399
 *	bytes and made printable ASCII. The reply code is 550 for reject,
 *	451 for tempfail.
 * verdict_force_code(v, action, code, enhanced, fmt, ...)
 *	The same with the reply code given ("450": rate limits, whose
 *	deferral is the MTA's usual 450 for a policy refusal).
 * verdict_add_authres(v, method, result, reason, props)
 *	One RFC 8601 resinfo: method "spf", result "pass", optional reason
 *	(a comment) and props: "name=value" lines, one property a line
 *	("smtp.mailfrom=example.org" or "header.d=a\nheader.s=b"); values
 *	may hold anything, authres_format quotes them. Copied.
 * verdict_add_header(v, name, value)    a header to prepend at the end
 * verdict_quarantine(v, reason)
 *	Asks the MTA to hold the message (Postfix: the hold queue) with a
 *	reason; the first reason wins. The message is still accepted.
 * verdict_decide(v, actions)            fills action, score, reply
 *
 * Not thread-safe; one verdict per message.
 */
#ifndef MXG_VERDICT_H
#define MXG_VERDICT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum verdict_action {
	VERDICT_ACCEPT,
	VERDICT_ADD_HEADER,
	VERDICT_REWRITE_SUBJECT,	/* add_header, and tag the Subject */
	VERDICT_TEMPFAIL,
	VERDICT_REJECT,
};

struct verdict_symbol {
	const char *name;
	double score;
	char *detail;
};

struct verdict_authres {
	char *method;
	char *result;
	char *reason;
	char *props;
};

struct verdict_header {
	char *name;
	char *value;
};

struct verdict {
	struct verdict_symbol *symbols;
	size_t nsymbols;
	struct verdict_authres *authres;
	size_t nauthres;
	struct verdict_header *headers;
	size_t nheaders;

	char *quarantine;	/* reason, NULL: not held */
	char *new_subject;	/* rewrite_subject: the Subject to set */

	bool forced;
	enum verdict_action forced_action;
	char *forced_code;	/* NULL: 550 or 451 */
	char *forced_enhanced;
	char *forced_text;

	/* filled by verdict_decide */
	double score;
	enum verdict_action action;
	char *reply;		/* "550 5.7.23 text", NULL when accepting */
	char *reply_code;	/* "550" */
	char *reply_enhanced;	/* "5.7.23" */
	char *reply_text;
};

struct verdict *verdict_new(void);
void verdict_free(struct verdict *v);
void verdict_reset(struct verdict *v);

void verdict_add_symbol(struct verdict *v, const char *name, double score,
    const char *detail);
void verdict_force(struct verdict *v, enum verdict_action action,
    const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void verdict_force_code(struct verdict *v, enum verdict_action action,
    const char *code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void verdict_add_authres(struct verdict *v, const char *method,
    const char *result, const char *reason, const char *props);
void verdict_add_header(struct verdict *v, const char *name, const char *value);
void verdict_quarantine(struct verdict *v, const char *reason);
const struct verdict_symbol *verdict_find_symbol(const struct verdict *v,
    const char *name);

void verdict_decide(struct verdict *v, const struct config *cfg);

/* "accept" "add_header" "rewrite_subject" "tempfail" "reject" */
const char *verdict_action_name(enum verdict_action action);

#endif
