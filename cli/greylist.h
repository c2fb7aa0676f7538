/*
 * greylist.h - `mxguard greylist`: inspect and manage the greylisting
 * state in Redis, with the keys the milter and the policy server use
 * (lib/greylist.h).
 *
 *   mxguard greylist show      --ip ADDR --from SENDER --rcpt RCPT
 *	The triplet (first seen, state wait|pass, times seen, last pass,
 *	TTL, seconds before a retry would pass) or "not found", and its
 *	client network's count of passed triplets and whether that makes
 *	the network auto-whitelisted.
 *   mxguard greylist client    --ip ADDR
 *	The client network of ADDR, its count, whitelisted or not, and
 *	every triplet of that network (SCAN, sorted by key).
 *   mxguard greylist list      [--limit N]
 *	Every triplet and client count (SCAN, never KEYS; Redis's order),
 *	one a line, or a JSON array; at most N entries.
 *   mxguard greylist whitelist --ip ADDR [--from SENDER --rcpt RCPT]
 *	Without --from/--rcpt: the client network's count is raised to at
 *	least [greylist] auto_whitelist, with a TTL of max_age (an error
 *	when auto_whitelist is 0). With them: the triplet is marked passed
 *	(created if new), TTL max_age. A triplet passed by hand does not
 *	add to the network's count: only a real retry does.
 *   mxguard greylist delete    --ip ADDR [--from SENDER --rcpt RCPT]
 *	The triplet, or the network's count and all its triplets.
 *   mxguard greylist counts
 *	Triplets waiting, triplets passed, client networks with a count
 *	and how many of them are auto-whitelisted.
 *
 *	Every subcommand takes -c FILE (default /etc/mxguard/mxguard.conf:
 *	[redis] says where, [greylist] the prefixes, delay and thresholds)
 *	and --json. The sender and recipient are normalised as the milter
 *	does (brackets, case, normalize_sender); "<>" or "" is the null
 *	sender. Times are Redis's clock (TIME), as the milter's script uses.
 *
 * command_greylist(argc, argv)
 *	argv[0] is "greylist". Returns the exit status: 0 done (a triplet
 *	"not found" included), 1 Redis could not be reached or answered
 *	with an error (a message on stderr), 2 a usage or config error.
 */
#ifndef MXG_CLI_GREYLIST_H
#define MXG_CLI_GREYLIST_H

int command_greylist(int argc, char **argv);

#endif
