/*
 * metrics.h - process-wide counters and histograms, served to Prometheus
 * as text (GET /metrics) by libmicrohttpd's own thread.
 *
 * Section [metrics]: `listen` (mxguard-milter) and `policy_listen`
 * (mxguard-policy), HOST:PORT; unset, nothing listens and every call
 * below still counts (cheap: atomics and a short lock per message), so
 * `mxguard check` and the tests can read the text with metrics_render.
 *
 * Names follow Prometheus' conventions: mxguard_ prefix, _total for
 * counters, _seconds for durations, base units, lowercase label values.
 * Every family is in every daemon's text (a family of the other daemon
 * stays at 0); series with a fixed set of label values are there from
 * the start, at 0.
 *
 *   mxguard_messages_total{action}            accept add_header
 *                                             rewrite_subject tempfail
 *                                             reject (milter: one per
 *                                             message decided)
 *   mxguard_policy_requests_total{action}     mxguard-policy, one per
 *                                             request answered: dunno
 *                                             prepend defer_if_permit
 *                                             tempfail (4xx) reject
 *                                             (5xx) other
 *   mxguard_check_results_total{check,result} spf, dmarc: one per
 *                                             message; dkim: one per
 *                                             signature, "none" when
 *                                             unsigned; greylist and
 *                                             ratelimit: one per
 *                                             decision
 *   mxguard_symbol_hits_total{symbol}         the most frequent symbols
 *                                             (at most METRICS_TOP_SYMBOLS
 *                                             of METRICS_MAX_SYMBOLS
 *                                             tracked): a series may
 *                                             leave and come back
 *   mxguard_check_duration_seconds{check}     histogram per check, of
 *                                             the messages it ran on
 *   mxguard_message_duration_seconds          histogram: the checks'
 *                                             time on one message,
 *                                             summed (not the client's
 *                                             time to send it)
 *   mxguard_policy_request_duration_seconds   histogram: the same, per
 *                                             policy request
 *   mxguard_dns_queries_total{status}         ok nxdomain nodata tempfail
 *                                             permfail (a timeout is a
 *                                             tempfail)
 *   mxguard_dns_query_duration_seconds        histogram: sent to answer
 *                                             or deadline
 *   mxguard_redis_commands_total{status}      ok error: one per command
 *                                             or script a check runs,
 *                                             retries and connecting
 *                                             included; a fast failure
 *                                             while Redis is down is an
 *                                             error
 *   mxguard_redis_command_duration_seconds    histogram
 *   mxguard_connections_in_flight             gauge: MTA connections
 *                                             (milter) or Postfix policy
 *                                             connections (policy)
 *   mxguard_config_generation                 gauge: 1 at start, +1 per
 *                                             reload that took effect
 *   mxguard_config_last_reload_success        gauge 1/0
 *   mxguard_config_last_reload_timestamp_seconds
 *                                             gauge: Unix time of the
 *                                             last (re)load attempt
 *   mxguard_build_info{version,daemon}        gauge 1
 *
 * Histograms share one set of buckets, 100 us to 30 s (METRICS_BUCKETS
 * in metrics.c), cumulative as Prometheus wants them.
 *
 * metrics_init(daemon)                once, before threads; daemon is
 *                                     "milter", "policy" or "cli"
 *                                     (borrowed: a string literal).
 * metrics_start(listen, err)          binds HOST:PORT (a name, an IPv4
 *                                     address or [IPv6]) and serves
 *                                     GET /metrics on a thread of its
 *                                     own; 0, or MXG_EIO (cannot bind:
 *                                     port in use, no such address) /
 *                                     MXG_EINVAL (bad HOST:PORT) with
 *                                     err. Start it after any fork and
 *                                     with the signal mask the daemon's
 *                                     threads must have.
 * metrics_stop()                      stops serving (at exit); no-op
 *                                     when not serving.
 * metrics_message(engine, scan)       after engine_finish (or a forced
 *                                     answer at an earlier stage): the
 *                                     action, check results, symbols,
 *                                     per-check and total durations.
 *                                     Once per message.
 * metrics_policy_request(engine, scan, action)
 *                                     mxguard-policy, once per request
 *                                     answered: action is the text
 *                                     after "action=" (its first word
 *                                     gives the label); scan is the
 *                                     request's (its results, symbols
 *                                     and durations are counted as
 *                                     metrics_message does), or NULL
 *                                     for a request judged without one.
 * metrics_check_result(check, result) one decision of a check that is
 *                                     not in the scan's structured
 *                                     results (greylist, ratelimit).
 *                                     Strings are copied.
 * metrics_dns_query(status, seconds)  from lib/dns.c, every query
 *                                     waited for (enum dns_status).
 * metrics_redis_command(ok, seconds)  from lib/redis.c, every command.
 * metrics_connection(delta)           +1 / -1 around a connection.
 * metrics_config_loaded(ok)           after each (re)load attempt: ok
 *                                     bumps the generation.
 * metrics_render(out)                 the exposition text (format 0.0.4),
 *                                     appended.
 *
 * Label values are escaped (\\ \" \n) and bytes outside printable ASCII
 * become '?'. Tables of label values are bounded: past
 * METRICS_MAX_SERIES (check, result) pairs or METRICS_MAX_SYMBOLS symbol
 * names, new ones are not counted.
 *
 * All calls are thread-safe.
 */
#ifndef MXG_METRICS_H
#define MXG_METRICS_H

#include <stdbool.h>

#include "strbuf.h"

#define METRICS_TOP_SYMBOLS 50
#define METRICS_MAX_SYMBOLS 4096
#define METRICS_MAX_SERIES 256

struct engine;
struct scan;

void metrics_init(const char *daemon);
int metrics_start(const char *listen, char *err);
void metrics_stop(void);

void metrics_message(const struct engine *engine, const struct scan *scan);
void metrics_policy_request(const struct engine *engine,
    const struct scan *scan, const char *action);
void metrics_check_result(const char *check, const char *result);
void metrics_dns_query(int status, double seconds);
void metrics_redis_command(bool ok, double seconds);
void metrics_connection(int delta);
void metrics_config_loaded(bool ok);

void metrics_render(struct strbuf *out);

#endif
