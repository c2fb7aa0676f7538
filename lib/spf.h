/*
 * spf.h - SPF (RFC 7208) for the envelope sender, or for the HELO name
 * when the sender is null (RFC 7208 2.3, 2.4), with libspf2.
 *
 * Section [spf]: enabled, reject_fail, received_spf, void_lookup_limit.
 * Stage: MAIL (the client, HELO and sender are known).
 *
 * Every DNS query goes through the shared resolver (dns.h) via a DNS layer
 * handed to libspf2, which also enforces the void-lookup limit libspf2
 * lacks (RFC 7208 4.6.4: more than void_lookup_limit lookups answered
 * NXDOMAIN or with no records -> permerror).
 *
 * Symbols: SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_NEUTRAL, SPF_NONE,
 * SPF_TEMPERROR, SPF_PERMERROR. Policy: fail with reject_fail -> forced
 * reject 550 5.7.23 with the domain's explanation; temperror with
 * [dns] on_error = tempfail -> forced tempfail 451 4.4.3.
 *
 * Within one connection (scan) the last evaluation is remembered: the
 * same client, HELO and sender again (the policy server is asked once
 * per recipient; a client may send several messages) reuse its result
 * instead of asking DNS again.
 *
 * spf_check_identity(env, msg, &result)
 *	The evaluation alone (no symbols, no policy), for callers that only
 *	need the result. Fills result; free its strings with
 *	spf_result_clear. Thread-safe.
 */
#ifndef MXG_SPF_H
#define MXG_SPF_H

#include "check.h"
#include "message.h"

enum spf_result_code {
	SPF_RES_NOT_CHECKED,	/* disabled, trusted client, or not reached */
	SPF_RES_PASS,
	SPF_RES_FAIL,
	SPF_RES_SOFTFAIL,
	SPF_RES_NEUTRAL,
	SPF_RES_NONE,
	SPF_RES_TEMPERROR,
	SPF_RES_PERMERROR,
};

struct spf_result {
	enum spf_result_code code;
	const char *identity;	/* "mailfrom" or "helo" (static) */
	char *domain;		/* the domain checked, NULL if none */
	char *sender;		/* the full identity: local@domain */
	char *explanation;	/* for fail: the domain's exp= or default */
	char *comment;		/* why, in words, for headers and logs */
};

extern const struct check spf_check;

void spf_check_identity(const struct check_env *env, const struct message *msg,
    struct spf_result *result);
void spf_result_clear(struct spf_result *result);
/* A deep copy of src into dst (dst is cleared first). */
void spf_result_copy(struct spf_result *dst, const struct spf_result *src);
/* "pass" "fail" ... "temperror" "permerror"; "none" for NOT_CHECKED. */
const char *spf_result_name(enum spf_result_code code);

#endif
