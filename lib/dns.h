/*
 * dns.h - the one resolver every check shares (libunbound).
 *
 * Configured from [dns]: `nameserver` (HOST[@PORT], several separated by
 * spaces or commas) sends every query to those servers, names under
 * reserved TLDs such as .test and reverse zones of private and TEST-NET
 * ranges included (libunbound would otherwise answer those itself);
 * unset, the system resolver configuration (/etc/resolv.conf) is used.
 * libunbound caches answers by their TTL.
 *
 * Each query has a deadline (`timeout`): a server that does not answer
 * in time gives DNS_TEMPFAIL, never a hang. Queries can be started
 * together and waited for one by one, so that a check with many lookups
 * has them all in flight at once.
 *
 * dns_resolver_new(cfg, &res, err)
 *	Starts the resolver and its dispatch thread. 0, MXG_EINVAL for a
 *	bad nameserver ("HOST[@PORT]", port 1-65535) or MXG_ELIB, with err.
 *	Caller frees with dns_resolver_free (waits for the thread; NULL is a
 *	no-op). Thread-safe: any thread may query at any time.
 * dns_query_start(res, name, rrtype)
 *	Sends the query; never fails (a failure to send is kept and reported
 *	by dns_query_wait as DNS_TEMPFAIL).
 * dns_query_wait(q, deadline_ms, &answer)
 *	Waits until the answer or the deadline (mxg_now_ms() scale). Returns
 *	the status; *answer is set for DNS_OK only (borrowed, valid until
 *	dns_query_free). A query may be waited for once.
 * dns_query_free(q)
 *	Frees the query, cancelling it if still in flight. NULL is a no-op.
 * dns_lookup(res, name, rrtype, &q)
 *	Start + wait with the configured timeout; *q must be freed.
 */
#ifndef MXG_DNS_H
#define MXG_DNS_H

#include "config.h"

enum dns_status {
	DNS_OK,		/* records of the type asked for */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_NODATA,	/* the name exists, no records of that type */
	DNS_TEMPFAIL,	/* timeout, SERVFAIL, REFUSED, network error */
	DNS_PERMFAIL,	/* the name cannot be asked for (syntax) */
};

struct dns_answer {
	int count;
	char **data;		/* rdata of each record, wire format */
	int *len;
	const unsigned char *packet;	/* the whole reply, wire format */
	int packet_len;
	int ttl;
};

struct dns_resolver;
struct dns_query;

int dns_resolver_new(const struct config *cfg, struct dns_resolver **res,
    char *err);
void dns_resolver_free(struct dns_resolver *res);
long dns_resolver_timeout_ms(const struct dns_resolver *res);

struct dns_query *dns_query_start(struct dns_resolver *res, const char *name,
    int rrtype);
enum dns_status dns_query_wait(struct dns_query *q, long long deadline_ms,
    const struct dns_answer **answer);
void dns_query_free(struct dns_query *q);

enum dns_status dns_lookup(struct dns_resolver *res, const char *name,
    int rrtype, struct dns_query **q, const struct dns_answer **answer);

const char *dns_status_name(enum dns_status status);

/* Decodes an uncompressed wire-format name at data (len bytes) into
 * dotted text without the final dot (the root is "."). 0, or -1 for a
 * malformed name or when out (outlen bytes) is too small: it needs the
 * text's length plus 4 bytes, room for one escaped byte "\DDD". */
int dns_name_to_text(const unsigned char *data, size_t len, char *out,
    size_t outlen);

#endif
