/*
 * greylist.h - greylisting with its state in Redis, shared by every MX
 * host of a fleet (and by the milter and mxguard-policy alike).
 *
 * Section [greylist] (and [redis] for the connection). A triplet is the
 * client network (IPv4 /ipv4_prefix, IPv6 /ipv6_prefix), the envelope
 * sender (lowercased; with normalize_sender, +ext, SRS and BATV
 * wrappers removed; "<>" for the null sender) and the recipient.
 *
 * Behaviour (postgrey's defaults): a new triplet is deferred for
 * `delay`; a retry after the delay and within `retry_window` passes, and
 * the triplet is then remembered for `max_age`, refreshed on each pass;
 * a client network with `auto_whitelist` passed triplets skips
 * greylisting. Each decision is one Lua script (EVALSHA) that reads the
 * time from Redis, so hosts with skewed clocks agree, and runs
 * atomically, so two hosts never double-count. Keys expire by TTL.
 *
 *   mode = triplet  (check greylist, stage RCPT) defers each new
 *                   recipient: 451 4.7.1 Greylisted, try again in N
 *                   seconds (N: the real time left).
 *   mode = score    (check greylist_score, end of message) defers only
 *                   mail whose score reaches [actions] greylist, keyed on
 *                   the same triplets, so clean mail is never delayed.
 *
 * Skipped: skip_networks(_file), client host names under skip_hostnames
 * (_file), recipients in skip_recipients(_file) (user@domain, user@ for
 * any domain, or a domain), authenticated clients (skip_authenticated),
 * and SPF pass for a sender domain in skip_spf_pass_domains. Files hold
 * one entry a line, # comments.
 *
 * Redis down, slow or answering garbage: on_error = accept (symbol
 * GREYLIST_ERROR) or tempfail (451 4.3.0); the outage is logged once.
 *
 * The functions below are the engine for `mxguard greylist` too.
 */
#ifndef MXG_GREYLIST_H
#define MXG_GREYLIST_H

#include <stdbool.h>

#include "check.h"
#include "message.h"
#include "strbuf.h"

struct redis_pool;

enum greylist_outcome {
	GREYLIST_PASS,		/* known triplet, retried in time */
	GREYLIST_PASS_NEW,	/* this retry made it pass */
	GREYLIST_PASS_AWL,	/* the client network is auto-whitelisted */
	GREYLIST_DEFER,		/* new, or retried too early */
	GREYLIST_SKIP,		/* on a skip list */
	GREYLIST_ERROR,		/* Redis failed: see on_error */
};

struct greylist_decision {
	enum greylist_outcome outcome;
	long seconds_left;	/* for GREYLIST_DEFER */
	const char *why;	/* which skip list, or the Redis error */
	char error[256];
};

extern const struct check greylist_check;
extern const struct check greylist_score_check;

/* The network part of a triplet ("192.0.2.0/24"), into out. */
void greylist_client_net(const struct config *cfg, const struct message *msg,
    struct strbuf *out);
/* The sender as the triplet keeps it ("<>" for the null sender). */
void greylist_normalize_sender(const char *sender, bool normalize,
    struct strbuf *out);
/* Redis keys: of a triplet, and of a client network's pass count. */
void greylist_triplet_key(const struct config *cfg, const char *net,
    const char *sender, const char *rcpt, struct strbuf *out);
void greylist_client_key(const struct config *cfg, const char *net,
    struct strbuf *out);

const char *greylist_outcome_name(enum greylist_outcome outcome);

#endif
