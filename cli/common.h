/*
 * common.h - what the Redis subcommands of mxguard (`mxguard greylist`,
 * `mxguard ratelimit`) share: exit statuses, usage errors, loading the
 * config, and the Redis calls they make the same way.
 *
 * CLI_DEFAULT_CONFIG, CLI_EXIT_REDIS (1), CLI_EXIT_USAGE (2)
 *	The config read without -c, and the exit statuses of a Redis
 *	failure and of a usage or config error.
 * CLI_COMMON_OPTIONS, struct cli_common, cli_common_option(opt, co, usage)
 *	The options every subcommand takes: -c/--config FILE, --json and
 *	-h/--help, for a getopt_long table (CLI_COMMON_SHORT in its short
 *	options). cli_common_option() takes an option the command's own
 *	switch does not know: -c and --json go into co (CLI_OPT_NEXT), -h
 *	prints usage on stdout (0), anything else usage on stderr
 *	(CLI_EXIT_USAGE); the command returns what is not CLI_OPT_NEXT.
 * cli_usage_error(command, fmt, ...)
 *	Prints "mxguard COMMAND: MESSAGE (mxguard COMMAND --help)" on
 *	stderr; returns CLI_EXIT_USAGE.
 * cli_parse_long(text, min, max, &v)
 *	text as a whole decimal number from min to max into *v: 0, or -1
 *	(v untouched) when text is empty, not a number or out of range.
 * cli_config_load(path, &cfg)
 *	Loads the config (caller frees with config_free) and quiets the log
 *	below every level, so that a Redis outage the pool would log as a
 *	daemon does is said once, by the command, for a person. 0, or -1
 *	with "mxguard: ERROR" printed on stderr (*cfg untouched).
 * cli_key_prefix(cfg)
 *	[redis] prefix, or "" when it has none. Borrowed from cfg.
 * cli_glob_escape(out, s)
 *	Appends s to out as a Redis glob matching s itself: a backslash
 *	before * ? [ ] and itself.
 * cli_redis_connect(cfg, &pool)
 *	redis_pool_new, or -1 with "mxguard: ERROR" printed on stderr.
 * cli_json_field(sb, head, value)
 *	Appends head (punctuation and a quoted name, as it is) and value as
 *	a JSON string: `, "key": "VALUE"`.
 * cli_eval(pool, script, keys, keylens, nkeys, args, nargs, err)
 *	EVAL script with nkeys keys (keylens NULL: C strings) and nargs
 *	arguments (C strings). The reply (caller frees with
 *	freeReplyObject), or NULL with err set.
 * cli_scan_keys(pool, pattern, fn, arg, err)
 *	SCAN MATCH pattern to the end, calling fn(arg, keys, lens, n) for
 *	each batch of string keys that is not empty (keys borrowed for the
 *	call). fn returns 0 to go on, 1 to stop, -1 on a failure (err set
 *	by it). 0 when done or stopped, -1 on a failure of fn or Redis
 *	(err set).
 */
#ifndef MXG_CLI_COMMON_H
#define MXG_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../lib/config.h"
#include "../lib/mxg.h"
#include "../lib/redis.h"
#include "../lib/strbuf.h"

#ifndef MXG_SYSCONFDIR
#define MXG_SYSCONFDIR "/etc/mxguard"
#endif
#define CLI_DEFAULT_CONFIG MXG_SYSCONFDIR "/mxguard.conf"
#define CLI_EXIT_REDIS 1
#define CLI_EXIT_USAGE 2
#define CLI_OPT_NEXT (-1)

#define CLI_COMMON_SHORT "c:h"
#define CLI_COMMON_OPTIONS \
	{"config", required_argument, NULL, 'c'}, \
	{"json", no_argument, NULL, 'j'}, \
	{"help", no_argument, NULL, 'h'}

struct cli_common {
	const char *config_path;	/* CLI_DEFAULT_CONFIG unless -c */
	bool json;
};

typedef int (*cli_scan_fn)(void *arg, const char *const *keys,
    const size_t *lens, size_t n);

int cli_common_option(int opt, struct cli_common *co,
    void (*usage)(FILE *fp));
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cli_parse_long(const char *text, long min, long max, long *v);
int cli_config_load(const char *path, struct config **cfg);
const char *cli_key_prefix(const struct config *cfg);
void cli_glob_escape(struct strbuf *out, const char *s);
int cli_redis_connect(const struct config *cfg, struct redis_pool **pool);
void cli_json_field(struct strbuf *sb, const char *head, const char *value);
redisReply *cli_eval(struct redis_pool *pool, const char *script,
    const char *const *keys, const size_t *keylens, size_t nkeys,
    const char *const *args, size_t nargs, char *err);
int cli_scan_keys(struct redis_pool *pool, const char *pattern,
    cli_scan_fn fn, void *arg, char *err);

#endif
