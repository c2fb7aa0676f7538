/*
 * authres.h - Authentication-Results (RFC 8601): writing ours, spotting
 * forged ones.
 *
 * authres_format(authserv_id, v, fold)
 *	The header value for v's entries: "authserv-id; spf=pass (reason)
 *	smtp.mailfrom=example.org; dkim=..." — or "authserv-id; none" when
 *	no check reported anything. Entries are joined by ";" + fold (for
 *	example " " or "\n\t"). Comments are stripped of characters that
 *	would break the header (parentheses, backslashes, control bytes).
 *	An entry's props are "name=value" lines (see verdict_add_authres);
 *	a value that is not a plain token or domain is written as a
 *	quoted-string, so client data can never add a resinfo of its own.
 *	Caller frees.
 * authres_claims_id(value, len, authserv_id)
 *	True when an Authentication-Results header value names authserv_id
 *	(case-insensitive, after leading white space and comments, bare or
 *	as a quoted-string), so that
 *	the milter removes it before adding its own (RFC 8601 section 5).
 *	Any byte string is safe input.
 */
#ifndef MXG_AUTHRES_H
#define MXG_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#include "verdict.h"

char *authres_format(const char *authserv_id, const struct verdict *v,
    const char *fold);
bool authres_claims_id(const char *value, size_t len, const char *authserv_id);

#endif
