/*
 * dnsbl.h - DNS lists: the client's IP in DNSBLs, the registered domains
 * of the message's URIs in URIBLs/DBLs.
 *
 * Sections: [dnsbl] (enabled, max_queries per message) and one
 * [dnsbl NAME] per list: zone, type (client | uri), score (for any
 * answer in 127.0.0.0/8), codes ("127.0.0.2=4.0 127.0.0.10=1.5": a score
 * per return code; the highest of the codes returned counts), symbol
 * (default DNSBL_<NAME> or URIBL_<NAME>, upper case). Stage: end of
 * message, after the content rules (which collect the URIs).
 *
 * Every query of a message is in flight at once through the shared
 * resolver; at most max_queries are made. A client IPv4 is reversed
 * octet by octet, an IPv6 nibble by nibble; loopback and private
 * addresses are never looked up. A URI's registered domain comes from
 * the public suffix list ([dmarc] public_suffix_list, libpsl).
 * NXDOMAIN: not listed. A DNS failure: not listed, and logged once per
 * message; answers outside 127.0.0.0/8 are ignored (a list that answers
 * everything, or a resolver that hijacks NXDOMAIN).
 */
#ifndef MXG_DNSBL_H
#define MXG_DNSBL_H

#include <stddef.h>

#include "check.h"

extern const struct check dnsbl_check;

/* The query name of an IPv4/IPv6 client in zone, into out (outlen
 * bytes); -1 when it does not fit. family is AF_INET or AF_INET6. */
int dnsbl_reverse_name(int family, const unsigned char *addr,
    const char *zone, char *out, size_t outlen);

#endif
