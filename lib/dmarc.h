/*
 * dmarc.h - DMARC: the RFC5322.From domain's policy, alignment of the
 * SPF and DKIM results with it, and what to do with mail that fails.
 *
 * Section [dmarc]: enabled, discovery, public_suffix_list, enforce,
 * quarantine, multiple_from, exempt_networks, exempt_domains.
 * Stage: end of message, after SPF and DKIM (it reads their results).
 *
 * Discovery (all DNS through the shared resolver, every query of a walk
 * in flight at once):
 *   treewalk  RFC 9989 (DMARCbis): _dmarc.<From domain>, then up the
 *             tree (a name of 8 or more labels jumps to its last 7) to
 *             the top-level label; the policy record is the first valid
 *             one; the organizational domain follows psd=n / psd=y, else
 *             is the shortest name with a record. np= applies to a From
 *             domain that does not exist, sp= to other subdomains.
 *   psl       RFC 7489: _dmarc.<From domain>, then the organizational
 *             domain from the public suffix list (libpsl).
 * libopendmarc parses the record (p, sp, pct, adkim, aspf); this module
 * reads psd=, np= and t=, which libopendmarc 1.4.2 predates, and does
 * alignment itself (strict: same name; relaxed: same organizational
 * domain, found the same way as the policy).
 *
 * Results: pass (SPF or DKIM aligned), fail, none (no record),
 * temperror (DNS failed before a record was found), permerror (the
 * record cannot be parsed). With pct < 100 (or t=y) a failing message
 * gets the next milder disposition for the sampled-out share.
 *
 * Policy: with enforce = yes, p=reject failure is refused 550 5.7.1
 * naming the domain's policy; p=quarantine failure is held by the MTA
 * (quarantine = hold) or scored (symbol DMARC_QUARANTINE); p=none is a
 * result only. Exempt clients and From domains are judged but never
 * refused or held (symbol DMARC_EXEMPT). Several From headers: 550 5.7.1
 * (multiple_from = reject) or the symbol DMARC_MULTIPLE_FROM; no From,
 * or one that cannot be parsed: symbols, no DMARC result.
 */
#ifndef MXG_DMARC_H
#define MXG_DMARC_H

#include <stdbool.h>

#include "check.h"

enum dmarc_result_code {
	DMARC_RES_PASS,
	DMARC_RES_FAIL,
	DMARC_RES_NONE,
	DMARC_RES_TEMPERROR,
	DMARC_RES_PERMERROR,
};

struct dmarc_result {
	bool checked;		/* false: no From domain to evaluate */
	enum dmarc_result_code code;
	const char *policy;	/* "none" "quarantine" "reject"; NULL: none */
	const char *disposition;	/* what was done: same names */
	char *domain;		/* the RFC5322.From domain */
	char *policy_domain;	/* where the record was found */
	char *org_domain;
	bool spf_aligned;
	bool dkim_aligned;
	char *reason;
};

extern const struct check dmarc_check;

void dmarc_result_clear(struct dmarc_result *result);
const char *dmarc_result_name(enum dmarc_result_code code);

#endif
