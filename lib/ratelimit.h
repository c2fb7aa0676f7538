/*
 * ratelimit.h - rate limits kept in Redis, exact across every MX host of
 * a fleet, for the milter and mxguard-policy alike (same rules, same
 * keys).
 *
 * Sections: [ratelimit] (enabled, on_error, skip lists) and one
 * [ratelimit NAME] per rule (config.h: key, rate, burst, count, action,
 * score). [redis] for the connection.
 *
 * ALGORITHM
 *	GCRA (a leaky bucket kept as one "theoretical arrival time" per
 *	bucket). A rule of `limit` units per `period` has an emission
 *	interval T = period / limit; an idle bucket takes `burst` units at
 *	once. A request of n units conforms when
 *	    max(tat, now) + n*T - now <= burst*T
 *	and then tat becomes max(tat, now) + n*T. The bucket's key expires
 *	when it would be empty again (TTL = tat - now), so idle buckets
 *	cost nothing. A request larger than the burst (count = bytes)
 *	conforms only from an empty bucket.
 *
 *	Every bucket one request touches is judged in ONE Lua script
 *	(EVALSHA), with the time from Redis (TIME, microseconds), so hosts
 *	with skewed clocks agree and concurrent hosts never overshoot: when
 *	any defer or reject rule does not conform, no bucket is charged (a
 *	refused message or recipient consumes no budget) and the answer
 *	names the strictest rule (reject before defer; the longest wait
 *	among defers); otherwise every conforming bucket is charged and the
 *	score rules that did not conform are returned as symbols.
 *
 * KEYS
 *	prefix + "rl:" + rule name + ":" + the key value: the client
 *	address; its network (/ipv4_prefix, /ipv6_prefix of [greylist]);
 *	the envelope sender or its domain (lowercased; the null sender is
 *	"<>" and has no domain); the SASL user; the recipient or its
 *	domain (lowercased). A request that lacks what a rule keys on (no
 *	SASL user, the null sender for sender_domain) skips that rule,
 *	logged at debug.
 *
 * WHEN IT COUNTS (what `count` means)
 *	connections  at connect (milter connect, policy protocol_state
 *	             CONNECT)
 *	messages     at the first accepted recipient of a transaction
 *	recipients   at each recipient
 *	bytes        at end of message (milter: body bytes seen plus
 *	             headers; policy: the `size` attribute at
 *	             END-OF-MESSAGE)
 *
 * OUTCOMES
 *	defer   450 4.7.1 Rate limit exceeded for <what>, try again in N
 *	        seconds (N: the real time until the request would conform,
 *	        rounded up)
 *	reject  550 5.7.1 Rate limit exceeded for <what>
 *	score   symbol RATELIMIT_<NAME> with the rule's score
 *	<what> is the rule's key and value: "client 192.0.2.7",
 *	"sender a@example.org", "SASL user bob" ...
 *	Redis down, slow or answering garbage: on_error = accept (symbol
 *	RATELIMIT_ERROR, no limit applied) or tempfail (451 4.3.0); logged
 *	once per outage by the Redis layer.
 *
 *	Exempt: clients in skip_networks(_file), recipients in
 *	skip_recipients(_file) (same forms as [greylist]), authenticated
 *	clients when skip_authenticated = yes.
 */
#ifndef MXG_RATELIMIT_H
#define MXG_RATELIMIT_H

#include <stdbool.h>

#include "check.h"
#include "config.h"
#include "message.h"
#include "strbuf.h"

struct redis_pool;

/* Checks (lib/checks.c): connections at CONNECT, messages and
 * recipients at RCPT (after greylisting, so that a greylisted recipient
 * is not charged), bytes at end of message. */
extern const struct check ratelimit_connect_check;
extern const struct check ratelimit_rcpt_check;
extern const struct check ratelimit_size_check;

/* One bucket as `mxguard ratelimit show` prints it. */
struct ratelimit_bucket {
	bool exists;
	double level;		/* units in the bucket now, 0..burst */
	double seconds_until_free;	/* until one more unit conforms */
	double seconds_until_empty;	/* the key's TTL */
};

/* The Redis key of a rule's bucket for one key value, into out. */
void ratelimit_bucket_key(const struct config *cfg,
    const struct config_ratelimit *rule, const char *value,
    struct strbuf *out);

#endif
