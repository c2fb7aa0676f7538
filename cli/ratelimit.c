/*
 * ratelimit.c - `mxguard ratelimit`, see ratelimit.h.
 *
 * Reads go through one small read-only Lua script per batch of keys
 * that also returns Redis's TIME, so that levels are computed on the
 * clock the deciding script uses, at the moment the values were read.
 */
#include "ratelimit.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/config.h"
#include "../lib/mxg.h"
#include "../lib/ratelimit.h"
#include "../lib/redis.h"
#include "../lib/strbuf.h"
#include "common.h"

#define TOP_DEFAULT 10
#define usage_error(...) cli_usage_error("ratelimit", __VA_ARGS__)

/* KEYS: buckets. Returns {seconds, microseconds, value of each key}, ""
 * for a key that is gone or not a string. */
static const char fetch_lua[] =
    "local t = redis.call('TIME')\n"
    "local out = {t[1], t[2]}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local v = redis.pcall('GET', k)\n"
    "  if type(v) ~= 'string' then v = '' end\n"
    "  out[#out + 1] = v\n"
    "end\n"
    "return out\n";

struct rl {
	const struct config *cfg;
	struct redis_pool *pool;
	bool json;
	char err[MXG_ERRLEN];
};

/* One bucket read. */
struct row {
	const struct config_ratelimit *rule;
	char *key;
	char *value;
	struct ratelimit_bucket b;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mxguard ratelimit show RULE VALUE [-c FILE] [--json]\n"
	    "       mxguard ratelimit top [RULE] [-n N] [-c FILE] [--json]\n"
	    "       mxguard ratelimit reset RULE VALUE [-c FILE] [--json]\n"
	    "Default config: %s\n", CLI_DEFAULT_CONFIG);
}

static void
row_free(struct row *r)
{
	free(r->key);
	free(r->value);
}

/* ---------------------------------------------------------------- Redis */

/* Reads the buckets named by keys (lengths given) on Redis's clock:
 * *now_us, and each key's tat into tats (0: none). */
static int
fetch(struct rl *rl, const char *const *keys, const size_t *lens, size_t n,
    double *now_us, double *tats)
{
	redisReply *r = cli_eval(rl->pool, fetch_lua, keys, lens, n, NULL, 0,
	    rl->err);

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n + 2) {
		freeReplyObject(r);
		return mxg_fail(rl->err, MXG_EIO, "unexpected reply from the "
		    "bucket script");
	}
	for (size_t i = 0; i < n + 2; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING) {
			freeReplyObject(r);
			return mxg_fail(rl->err, MXG_EIO, "unexpected reply "
			    "from the bucket script");
		}
	*now_us = strtod(r->element[0]->str, NULL) * 1e6 +
	    strtod(r->element[1]->str, NULL);
	for (size_t i = 0; i < n; i++) {
		char *end;
		double tat = strtod(r->element[2 + i]->str, &end);

		tats[i] = *end == '\0' && tat > 0 ? tat : 0;
	}
	freeReplyObject(r);
	return 0;
}

/* ---------------------------------------------------------------- output */

static void
row_json(struct strbuf *sb, const struct row *r)
{
	const struct config_ratelimit *rule = r->rule;
	char rate[48];

	ratelimit_rate_text(rule, rate, sizeof(rate));
	cli_json_field(sb, "{\"rule\": ", rule->name);
	cli_json_field(sb, ", \"key\": ", r->key);
	cli_json_field(sb, ", \"value\": ", r->value);
	cli_json_field(sb, ", \"what\": ", ratelimit_key_what(rule->key));
	cli_json_field(sb, ", \"rate\": ", rate);
	strbuf_printf(sb, ", \"limit\": %.0f, \"period_seconds\": %.3f, "
	    "\"burst\": %.0f, \"count\": ", rule->limit,
	    (double)rule->period_ms / 1000.0, rule->burst);
	strbuf_json_cstr(sb, config_ratelimit_count_name(rule->count));
	cli_json_field(sb, ", \"action\": ",
	    config_ratelimit_action_name(rule->action));
	strbuf_printf(sb, ", \"exists\": %s, \"level\": %.3f, "
	    "\"seconds_until_free\": %.3f, \"seconds_until_empty\": %.3f}",
	    r->b.exists ? "true" : "false", r->b.level,
	    r->b.seconds_until_free, r->b.seconds_until_empty);
}

/* "message", for "next message: ..." */
static const char *
unit_name(enum ratelimit_count count)
{
	static const char *const names[] = {
		[RATELIMIT_COUNT_CONNECTIONS] = "connection",
		[RATELIMIT_COUNT_MESSAGES] = "message",
		[RATELIMIT_COUNT_RECIPIENTS] = "recipient",
		[RATELIMIT_COUNT_BYTES] = "byte",
	};
	return names[count];
}

static void
row_text(struct strbuf *sb, const struct row *r)
{
	const struct config_ratelimit *rule = r->rule;
	char rate[48];

	ratelimit_rate_text(rule, rate, sizeof(rate));
	strbuf_printf(sb, "rule: %s: %s %s, %s, burst %.0f, action %s\n",
	    rule->name, config_ratelimit_count_name(rule->count), rate,
	    config_ratelimit_key_name(rule->key), rule->burst,
	    config_ratelimit_action_name(rule->action));
	strbuf_printf(sb, "%s: %s\nkey: %s\n", ratelimit_key_what(rule->key),
	    r->value, r->key);
	if (!r->b.exists) {
		strbuf_printf(sb, "level: 0 of %.0f (no bucket: idle)\n",
		    rule->burst);
		return;
	}
	strbuf_printf(sb, "level: %.2f of %.0f\n", r->b.level, rule->burst);
	if (r->b.seconds_until_free > 0)
		strbuf_printf(sb, "next %s: accepted in %.1f s\n",
		    unit_name(rule->count), r->b.seconds_until_free);
	else
		strbuf_printf(sb, "next %s: accepted now\n",
		    unit_name(rule->count));
	strbuf_printf(sb, "empty in: %.1f s\n", r->b.seconds_until_empty);
}

/* ---------------------------------------------------------------- commands */

/* The rule and the key of VALUE, into r; CLI_EXIT_USAGE with a message. */
static int
row_for(const struct rl *rl, const char *rule_name, const char *value,
    struct row *r)
{
	struct strbuf v = STRBUF_INIT, key = STRBUF_INIT;

	memset(r, 0, sizeof(*r));
	if ((r->rule = ratelimit_rule_find(rl->cfg, rule_name)) == NULL)
		return usage_error("no [ratelimit %s] in %s", rule_name,
		    rl->cfg->path);
	if (ratelimit_value_parse(rl->cfg, r->rule, value, &v) < 0)
		return usage_error("'%s' is not a %s ([ratelimit %s] key = "
		    "%s)", value, ratelimit_key_what(r->rule->key), rule_name,
		    config_ratelimit_key_name(r->rule->key));
	ratelimit_bucket_key(rl->cfg, r->rule, v.data, &key);
	r->value = strbuf_steal(&v);
	r->key = strbuf_steal(&key);
	return 0;
}

static int
cmd_show(struct rl *rl, struct row *r, struct strbuf *out)
{
	const char *key = r->key;
	size_t len = strlen(key);
	double now, tat;

	if (fetch(rl, &key, &len, 1, &now, &tat) < 0)
		return -1;
	ratelimit_bucket_at(r->rule, tat, now, &r->b);
	if (rl->json) {
		row_json(out, r);
		strbuf_putc(out, '\n');
	} else {
		row_text(out, r);
	}
	return 0;
}

static int
cmd_reset(struct rl *rl, const struct row *r, struct strbuf *out)
{
	const char *argv[] = {"DEL", r->key};
	redisReply *reply = redis_run_command(rl->pool, argv, NULL, 2,
	    rl->err);
	bool deleted;

	if (reply == NULL)
		return -1;
	if (reply->type != REDIS_REPLY_INTEGER) {
		freeReplyObject(reply);
		return mxg_fail(rl->err, MXG_EIO, "unexpected reply to DEL");
	}
	deleted = reply->integer > 0;
	freeReplyObject(reply);
	if (rl->json) {
		cli_json_field(out, "{\"rule\": ", r->rule->name);
		cli_json_field(out, ", \"key\": ", r->key);
		strbuf_printf(out, ", \"deleted\": %s}\n", deleted ? "true" :
		    "false");
	} else {
		strbuf_printf(out, "%s %s: %s\n", r->rule->name, r->value,
		    deleted ? "bucket deleted" : "no bucket (already idle)");
	}
	return 0;
}

/* The N fullest buckets so far, fullest first. */
struct top {
	struct row *rows;
	size_t n, max;
	unsigned long skipped;	/* keys of rules not in the config */
	unsigned long seen;
};

static double
fill(const struct row *r)
{
	return r->b.level / r->rule->burst;
}

static bool
fuller(const struct row *a, const struct row *b)
{
	if (fill(a) != fill(b))
		return fill(a) > fill(b);
	if (a->b.level != b->b.level)
		return a->b.level > b->b.level;
	return strcmp(a->key, b->key) < 0;
}

/* Keeps r if it is among the fullest; takes its strings either way. */
static void
top_offer(struct top *t, struct row *r)
{
	size_t at = t->n;

	while (at > 0 && fuller(r, &t->rows[at - 1]))
		at--;
	if (at >= t->max) {
		row_free(r);
		return;
	}
	if (t->n == t->max)
		row_free(&t->rows[--t->n]);
	memmove(&t->rows[at + 1], &t->rows[at], (t->n - at) * sizeof(*r));
	t->rows[at] = *r;
	t->n++;
}

/* "<prefix>rl:RULE:VALUE" -> the rule, or NULL; *value into the key. */
static const struct config_ratelimit *
rule_of_key(const struct rl *rl, const char *key, size_t len,
    const char **value)
{
	const char *prefix = cli_key_prefix(rl->cfg);
	size_t plen = strlen(prefix);
	const char *name, *colon;
	char buf[64];

	if (len < plen + 3 || memcmp(key, prefix, plen) != 0 ||
	    memcmp(key + plen, "rl:", 3) != 0)
		return NULL;
	name = key + plen + 3;
	colon = memchr(name, ':', len - (size_t)(name - key));
	if (colon == NULL || (size_t)(colon - name) >= sizeof(buf))
		return NULL;
	memcpy(buf, name, (size_t)(colon - name));
	buf[colon - name] = '\0';
	*value = colon + 1;
	return ratelimit_rule_find(rl->cfg, buf);
}

static int
top_batch(struct rl *rl, struct top *t, const char *const *keys,
    const size_t *lens, size_t n)
{
	double now, *tats = mxg_calloc(n ? n : 1, sizeof(*tats));

	if (fetch(rl, keys, lens, n, &now, tats) < 0) {
		free(tats);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *value;
		struct row r;

		memset(&r, 0, sizeof(r));
		if ((r.rule = rule_of_key(rl, keys[i], lens[i], &value)) ==
		    NULL) {
			t->skipped++;
			continue;
		}
		if (tats[i] == 0)	/* expired since SCAN saw it */
			continue;
		t->seen++;
		r.key = mxg_strndup(keys[i], lens[i]);
		r.value = mxg_strndup(value, lens[i] -
		    (size_t)(value - keys[i]));
		ratelimit_bucket_at(r.rule, tats[i], now, &r.b);
		top_offer(t, &r);
	}
	free(tats);
	return 0;
}

/* The rl and the fullest buckets of a SCAN, for top_scan_batch. */
struct top_scan {
	struct rl *rl;
	struct top *t;
};

static int
top_scan_batch(void *arg, const char *const *keys, const size_t *lens,
    size_t n)
{
	struct top_scan *ts = arg;

	return top_batch(ts->rl, ts->t, keys, lens, n);
}

static int
cmd_top(struct rl *rl, const char *rule_name, long n, struct strbuf *out)
{
	struct strbuf pattern = STRBUF_INIT;
	struct top t = {NULL, 0, (size_t)n, 0, 0};
	struct top_scan ts = {rl, &t};
	int rc;

	cli_glob_escape(&pattern, cli_key_prefix(rl->cfg));
	strbuf_puts(&pattern, "rl:");
	if (rule_name != NULL) {
		cli_glob_escape(&pattern, rule_name);
		strbuf_putc(&pattern, ':');
	}
	strbuf_putc(&pattern, '*');
	t.rows = mxg_calloc(t.max + 1, sizeof(*t.rows));
	rc = cli_scan_keys(rl->pool, pattern.data, top_scan_batch, &ts,
	    rl->err);
	strbuf_free(&pattern);

	if (rc == 0 && rl->json) {
		strbuf_putc(out, '[');
		for (size_t i = 0; i < t.n; i++) {
			strbuf_puts(out, i ? ",\n " : "");
			row_json(out, &t.rows[i]);
		}
		strbuf_puts(out, "]\n");
	} else if (rc == 0) {
		strbuf_printf(out, "%-20s %-10s %14s %9s %9s  %s\n", "RULE",
		    "COUNT", "LEVEL/BURST", "FREE IN", "EMPTY IN", "KEY VALUE");
		for (size_t i = 0; i < t.n; i++) {
			const struct row *r = &t.rows[i];
			char level[48];

			snprintf(level, sizeof(level), "%.2f/%.0f", r->b.level,
			    r->rule->burst);
			strbuf_printf(out, "%-20s %-10s %14s %8.1fs %8.1fs  "
			    "%s %s\n", r->rule->name,
			    config_ratelimit_count_name(r->rule->count), level,
			    r->b.seconds_until_free, r->b.seconds_until_empty,
			    ratelimit_key_what(r->rule->key), r->value);
		}
		strbuf_printf(out, "(%zu of %lu buckets", t.n, t.seen);
		if (t.skipped > 0)
			strbuf_printf(out, "; %lu keys of rules not in %s left "
			    "out", t.skipped, rl->cfg->path);
		strbuf_puts(out, ")\n");
	}
	for (size_t i = 0; i < t.n; i++)
		row_free(&t.rows[i]);
	free(t.rows);
	return rc;
}

/* ---------------------------------------------------------------- main */

int
command_ratelimit(int argc, char **argv)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"limit", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0},
	};
	struct cli_common co = {CLI_DEFAULT_CONFIG, false};
	const char *limit_text = NULL;
	long limit = TOP_DEFAULT;
	int opt, done;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "n:", options,
	    NULL)) != -1) {
		if (opt == 'n')
			limit_text = optarg;
		else if ((done = cli_common_option(opt, &co, usage)) !=
		    CLI_OPT_NEXT)
			return done;
	}
	if (optind >= argc)
		return usage_error("which subcommand?");
	const char *sub = argv[optind];
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;
	if (strcmp(sub, "show") == 0 || strcmp(sub, "reset") == 0) {
		if (nargs != 2)
			return usage_error("%s needs RULE VALUE", sub);
		if (limit_text != NULL)
			return usage_error("%s takes no -n", sub);
	} else if (strcmp(sub, "top") == 0) {
		if (nargs > 1)
			return usage_error("top takes at most one RULE");
	} else {
		return usage_error("unknown subcommand '%s'", sub);
	}
	if (limit_text != NULL &&
	    cli_parse_long(limit_text, 1, 100000, &limit) < 0)
		return usage_error("-n '%s' is not a number from 1 to 100000",
		    limit_text);

	struct config *cfg;
	if (cli_config_load(co.config_path, &cfg) < 0)
		return CLI_EXIT_USAGE;

	struct rl rl = {.cfg = cfg, .json = co.json};
	struct strbuf out = STRBUF_INIT;
	struct row row;
	int rc = CLI_EXIT_USAGE, r = -1;

	memset(&row, 0, sizeof(row));
	if (strcmp(sub, "top") == 0 && nargs == 1 &&
	    ratelimit_rule_find(cfg, args[0]) == NULL) {
		usage_error("no [ratelimit %s] in %s", args[0], cfg->path);
		goto out;
	}
	if (strcmp(sub, "top") != 0 && row_for(&rl, args[0], args[1], &row) !=
	    0)
		goto out;
	if (cli_redis_connect(cfg, &rl.pool) < 0)
		goto out;
	rc = CLI_EXIT_REDIS;
	if (strcmp(sub, "show") == 0)
		r = cmd_show(&rl, &row, &out);
	else if (strcmp(sub, "reset") == 0)
		r = cmd_reset(&rl, &row, &out);
	else
		r = cmd_top(&rl, nargs == 1 ? args[0] : NULL, limit, &out);
	if (r < 0) {
		fprintf(stderr, "mxguard ratelimit: Redis at %s: %s\n",
		    cfg->redis.server, rl.err);
		goto out;
	}
	if (out.len > 0)
		fwrite(out.data, 1, out.len, stdout);
	rc = 0;
out:
	strbuf_free(&out);
	row_free(&row);
	redis_pool_free(rl.pool);
	config_free(cfg);
	return rc;
}
