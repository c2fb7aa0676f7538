#include "check.h"

#include <stddef.h>

#include "content.h"
#include "dkim.h"
#include "dmarc.h"
#include "dnsbl.h"
#include "greylist.h"
#include "ratelimit.h"
#include "spf.h"

/* DMARC reads the SPF and DKIM results: it comes after both. DNS lists
 * come after the rules, which collect the URIs. Greylisting by score
 * comes last, to see every other check's score. Rate limits count only
 * what the others let through: at RCPT after greylisting, at end of
 * message last of all. */
const struct check *const all_checks[] = {
	&ratelimit_connect_check,
	&spf_check,
	&greylist_check,
	&ratelimit_rcpt_check,
	&dkim_check,
	&dmarc_check,
	&content_check,
	&dnsbl_check,
	&greylist_score_check,
	&ratelimit_size_check,
	NULL,
};
