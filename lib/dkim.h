/*
 * dkim.h - DKIM signature verification (RFC 6376, RFC 8463 ed25519,
 * RFC 8301 algorithm and key-size rules) with libopendkim.
 *
 * Section [dkim]: enabled, allow_sha1, min_key_bits, max_signatures.
 * Stage: end of message; the body streams through the check's body hook
 * as it arrives (no second copy). Key lookups go through the shared
 * resolver (dns.h): they start as soon as the headers are complete, so
 * that end of message mostly finds the answers waiting.
 *
 * Per signature, an RFC 8601 result:
 *	pass       verified
 *	fail       the signature or the body hash does not match
 *	neutral    the signature has syntax errors
 *	policy     valid, but refused by configuration: rsa-sha1 without
 *	           allow_sha1, an RSA key under min_key_bits
 *	temperror  the key could not be fetched (DNS failure)
 *	permerror  no key, revoked or broken key, expired, future-dated ...
 * Signatures past max_signatures are not evaluated and not reported.
 *
 * Symbols: DKIM_PASS, DKIM_FAIL, DKIM_NEUTRAL, DKIM_POLICY,
 * DKIM_TEMPERROR, DKIM_PERMERROR (each once, whatever the number of
 * signatures with that result), DKIM_NONE (no signature). A temperror
 * with no signature passing, under [dns] on_error = tempfail, forces
 * 451 4.4.3.
 */
#ifndef MXG_DKIM_H
#define MXG_DKIM_H

#include <stdbool.h>
#include <stddef.h>

#include "check.h"

enum dkim_result_code {
	DKIM_RES_PASS,
	DKIM_RES_FAIL,
	DKIM_RES_NEUTRAL,
	DKIM_RES_POLICY,
	DKIM_RES_TEMPERROR,
	DKIM_RES_PERMERROR,
};

struct dkim_signature_result {
	enum dkim_result_code code;
	char *domain;		/* d= */
	char *selector;		/* s= */
	char *identity;		/* i=, NULL when absent */
	const char *algorithm;	/* "rsa-sha256" ... (static), or "unknown" */
	char b[9];		/* the first 8 characters of b= */
	char *reason;		/* why, for every result but pass */
};

struct dkim_results {
	bool checked;		/* the check ran on this message */
	struct dkim_signature_result *sigs;
	size_t count;
};

extern const struct check dkim_check;

void dkim_results_clear(struct dkim_results *results);
const char *dkim_result_name(enum dkim_result_code code);

#endif
