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
 *	conforms only from an empty bucket. A request that does not
 *	conform would conform after max(tat, now) + n*T - now - burst*T
 *	(from an empty bucket: tat - now), the wait the reply names.
 *
 *	Every bucket one request touches is judged in ONE Lua script
 *	(EVALSHA), with the time from Redis (TIME, microseconds), so hosts
 *	with skewed clocks agree and concurrent hosts never overshoot: when
 *	any defer or reject rule does not conform, no bucket is charged (a
 *	refused message or recipient consumes no budget) and the answer
 *	names the strictest rule (reject before defer; the longest wait
 *	among defers); otherwise every conforming bucket is charged and the
 *	score rules that did not conform are returned as symbols (a score
 *	rule's bucket is charged only by what conforms, so it measures
 *	the traffic under the limit). Each bucket is a string key holding
 *	tat in microseconds of Redis's clock, rounded up, with a PX TTL.
 *
 * KEYS
 *	prefix + "rl:" + rule name + ":" + the key value: the client
 *	address (as inet_ntop writes it); its network (/ipv4_prefix,
 *	/ipv6_prefix of [greylist], "192.0.2.0/24"); the envelope sender
 *	or its domain (lowercased; the null sender is "<>" and has no
 *	domain); the SASL user (as given); the recipient or its domain
 *	(lowercased). A request that lacks what a rule keys on (no SASL
 *	user, the null sender for sender_domain, no client address, no
 *	recipient at END-OF-MESSAGE of a message to several) skips that
 *	rule, logged at debug.
 *
 * WHEN IT COUNTS (what `count` means)
 *	connections  at connect (milter connect, policy protocol_state
 *	             CONNECT); only client_ip and client_net keys (config
 *	             refuses the others)
 *	messages     at the first accepted recipient of a transaction;
 *	             with key = rcpt or rcpt_domain, once per recipient
 *	             (each recipient receives the message once)
 *	recipients   at each recipient
 *	bytes        at end of message, message_size() (message.h):
 *	             milter: the headers and body bytes seen; policy: the
 *	             `size` attribute at END-OF-MESSAGE. With key = rcpt
 *	             or rcpt_domain, the size goes to each recipient's
 *	             (each domain's) bucket.
 *	At RCPT the check runs after greylisting and does nothing for a
 *	recipient something else already refused, so a greylisted
 *	recipient is not charged.
 *
 * OUTCOMES
 *	defer   450 4.7.1 Rate limit exceeded for <what>, try again in N
 *	        seconds (N: the real time until the request would conform,
 *	        rounded up)
 *	reject  550 5.7.1 Rate limit exceeded for <what>
 *	score   symbol RATELIMIT_<NAME> with the rule's score ([scores]
 *	        RATELIMIT_<NAME> overrides it)
 *	<what> is the rule's key and value: "client 192.0.2.7",
 *	"sender a@example.org", "SASL user bob" ...
 *	At RCPT a defer or reject refuses that recipient (the transaction
 *	goes on for the others: scan_refuse_rcpt_code, a final 450, not
 *	the soft deferral of greylisting); at connect and end of message
 *	it forces the verdict (verdict_force_code).
 *	Redis down, slow or answering garbage: on_error = accept (symbol
 *	RATELIMIT_ERROR, no limit applied) or tempfail (451 4.3.0); logged
 *	once per outage by the Redis layer.
 *
 *	Exempt: clients in skip_networks(_file), recipients in
 *	skip_recipients(_file) (same forms as [greylist]), authenticated
 *	clients when skip_authenticated = yes. At end of message the size
 *	is not counted when every recipient is exempt.
 *
 * CALLS (the parts that need no Redis, shared with `mxguard ratelimit`)
 *	ratelimit_bucket_key(cfg, rule, value, out)
 *		The Redis key of a rule's bucket for one key value.
 *	ratelimit_key_value(cfg, rule, msg, rcpt, out)
 *		Appends the value this transaction has for the rule's key
 *		(rcpt: the recipient, for rcpt and rcpt_domain keys; may be
 *		NULL). False, appending nothing, when it has none.
 *	ratelimit_value_parse(cfg, rule, text, out)
 *		A value as a person types it into the form the key holds:
 *		an address for client_ip; an address or network for
 *		client_net (masked to the configured prefix); brackets
 *		dropped and lowercased for addresses and domains ("<>" or ""
 *		the null sender; a domain may be given as an address). 0, or
 *		-1 (nothing appended) when it cannot be such a value.
 *	ratelimit_key_what(key)
 *		"client", "network", "sender", "sender domain", "SASL user",
 *		"recipient", "recipient domain".
 *	ratelimit_rule_find(cfg, name)
 *		The rule of that name, or NULL (borrowed from cfg).
 *	ratelimit_interval_us(rule)
 *		T, microseconds per unit.
 *	ratelimit_rate_text(rule, buf, len)
 *		The rate as written: "100/1h", "5/10s" (largest whole unit).
 *	ratelimit_gcra(rule, tat_us, now_us, units, &new_tat_us, &wait_us)
 *		The script's arithmetic in C: whether units conform to a
 *		bucket at tat_us (0: empty) at now_us; *new_tat_us the
 *		bucket after charging them, *wait_us (when they do not) the
 *		time until they would.
 *	ratelimit_bucket_at(rule, tat_us, now_us, out)
 *		A bucket as `mxguard ratelimit` prints it (tat_us 0: no key).
 *
 *	All are pure and thread-safe; the checks are thread-safe too (the
 *	Redis pool is shared by the three checks of one config).
 */
#ifndef MXG_RATELIMIT_H
#define MXG_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "check.h"
#include "config.h"
#include "message.h"
#include "strbuf.h"

/* Checks (lib/checks.c): connections at CONNECT, messages and
 * recipients at RCPT (after greylisting, so that a greylisted recipient
 * is not charged), bytes at end of message (last, so that a message
 * something else refused is not charged). Each is enabled when
 * [ratelimit] enabled = yes and some rule counts what it counts. */
extern const struct check ratelimit_connect_check;
extern const struct check ratelimit_rcpt_check;
extern const struct check ratelimit_size_check;

/* One bucket as `mxguard ratelimit show` prints it. */
struct ratelimit_bucket {
	bool exists;
	double level;		/* units in the bucket now, 0..burst (more
				 * after a message larger than the burst) */
	double seconds_until_free;	/* until one more unit conforms */
	double seconds_until_empty;	/* the key's TTL */
};

void ratelimit_bucket_key(const struct config *cfg,
    const struct config_ratelimit *rule, const char *value,
    struct strbuf *out);
bool ratelimit_key_value(const struct config *cfg,
    const struct config_ratelimit *rule, const struct message *msg,
    const char *rcpt, struct strbuf *out);
int ratelimit_value_parse(const struct config *cfg,
    const struct config_ratelimit *rule, const char *text,
    struct strbuf *out);
const char *ratelimit_key_what(enum ratelimit_key key);
const struct config_ratelimit *ratelimit_rule_find(const struct config *cfg,
    const char *name);
double ratelimit_interval_us(const struct config_ratelimit *rule);
void ratelimit_rate_text(const struct config_ratelimit *rule, char *buf,
    size_t len);
bool ratelimit_gcra(const struct config_ratelimit *rule, double tat_us,
    double now_us, double units, double *new_tat_us, double *wait_us);
void ratelimit_bucket_at(const struct config_ratelimit *rule, double tat_us,
    double now_us, struct ratelimit_bucket *out);

#endif
