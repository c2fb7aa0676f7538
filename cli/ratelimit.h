/*
 * ratelimit.h - `mxguard ratelimit`: look at and reset the rate limit
 * buckets in Redis, with the keys the milter and the policy server use
 * (lib/ratelimit.h).
 *
 *   mxguard ratelimit show RULE VALUE
 *	The bucket of [ratelimit RULE] for VALUE (an address for client_ip,
 *	an address or network for client_net, a sender, domain, SASL user
 *	or recipient, written as a person would: the form the rule keys on
 *	is made from it): its level (units in it now, of the burst), the
 *	time until one more unit conforms, the time until it is empty (its
 *	TTL); an idle bucket (no key) is level 0.
 *   mxguard ratelimit top [RULE] [-n N]
 *	The N busiest buckets (default 10), of RULE or of every rule:
 *	SCAN over the rate limit keys (never KEYS), fullest first (level
 *	as a share of the burst). Keys of rules the config does not have
 *	are left out.
 *   mxguard ratelimit reset RULE VALUE
 *	Deletes the bucket: the next request finds it idle.
 *
 *	Every subcommand takes -c FILE (default /etc/mxguard/mxguard.conf:
 *	[redis] says where, the [ratelimit NAME] sections the rates) and
 *	--json. Levels and times are computed from Redis's clock (TIME),
 *	as the script that decides uses it.
 *
 * command_ratelimit(argc, argv)
 *	argv[0] is "ratelimit". Returns the exit status: 0 done (an idle
 *	bucket included), 1 Redis could not be reached or answered with an
 *	error (a message on stderr), 2 a usage or config error (an unknown
 *	rule, a value that cannot be what the rule keys on).
 */
#ifndef MXG_CLI_RATELIMIT_H
#define MXG_CLI_RATELIMIT_H

int command_ratelimit(int argc, char **argv);

#endif
