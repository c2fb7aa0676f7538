/*
 * greylist.c - `mxguard greylist`, see greylist.h.
 *
 * Reads go through small read-only Lua scripts, one per SCAN batch, so
 * that a listing costs one round trip per batch rather than per key and
 * never blocks Redis for long; writes are one script each, atomic like
 * the milter's decision.
 */
#include "greylist.h"

#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/config.h"
#include "../lib/greylist.h"
#include "../lib/message.h"
#include "../lib/mxg.h"
#include "../lib/redis.h"
#include "../lib/strbuf.h"
#include "common.h"

#define usage_error(...) cli_usage_error("greylist", __VA_ARGS__)
/* Output is written out when it grows past this (long listings). */
#define OUT_FLUSH_BYTES 65536

/* KEYS: triplet hashes. Per key {1, first, state, seen, last, ttl}, or
 * {0} when it is gone or not a hash. */
static const char fetch_triplets_lua[] =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  if redis.call('TYPE', k)['ok'] == 'hash' then\n"
    "    local v = redis.call('HMGET', k, 'first', 'state', 'seen', 'last')\n"
    "    out[i] = {1, v[1] or '', v[2] or '', v[3] or '', v[4] or '',\n"
    "      redis.call('TTL', k)}\n"
    "  else\n"
    "    out[i] = {0}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: client counts. Per key {1, count, ttl}, or {0}. */
static const char fetch_clients_lua[] =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  if redis.call('TYPE', k)['ok'] == 'string' then\n"
    "    out[i] = {1, redis.call('GET', k), redis.call('TTL', k)}\n"
    "  else\n"
    "    out[i] = {0}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS[1] a client count; ARGV threshold, max age. Raises the count to
 * at least the threshold; returns the count. */
static const char whitelist_client_lua[] =
    "local n = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "local want = tonumber(ARGV[1])\n"
    "if n < want then n = want end\n"
    "redis.call('SET', KEYS[1], n, 'EX', ARGV[2])\n"
    "return n\n";

/* KEYS[1] a triplet; ARGV max age. Marks it passed, creating it (seen 0)
 * when new; the client's count is left alone. */
static const char whitelist_triplet_lua[] =
    "local now = tonumber(redis.call('TIME')[1])\n"
    "if redis.call('HSETNX', KEYS[1], 'first', now) == 1 then\n"
    "  redis.call('HSET', KEYS[1], 'seen', 0)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', 'pass', 'last', now)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "return 1\n";

struct gl {
	const struct config *cfg;
	struct redis_pool *pool;
	bool json;
	long long now;		/* Redis's clock, seconds */
	long delay_s, max_age_s;
	struct strbuf out;
	char err[MXG_ERRLEN];
};

struct gl_args {
	const char *ip, *from, *rcpt;
	long limit;		/* 0: no limit */
};

struct triplet {
	char *key;
	char *net, *sender, *rcpt;	/* from the key */
	char *state;
	long long first, seen, last;	/* -1: not set */
	long long ttl;			/* -1: none */
};

struct client {
	char *key;
	char *net;
	long long passed;
	long long ttl;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mxguard greylist show --ip ADDR --from SENDER --rcpt RCPT "
	    "[-c FILE] [--json]\n"
	    "       mxguard greylist client --ip ADDR [-c FILE] [--json]\n"
	    "       mxguard greylist list [--limit N] [-c FILE] [--json]\n"
	    "       mxguard greylist whitelist --ip ADDR [--from SENDER "
	    "--rcpt RCPT] [-c FILE] [--json]\n"
	    "       mxguard greylist delete --ip ADDR [--from SENDER "
	    "--rcpt RCPT] [-c FILE] [--json]\n"
	    "       mxguard greylist counts [-c FILE] [--json]\n"
	    "Default config: %s\n", CLI_DEFAULT_CONFIG);
}

static void
out_flush(struct gl *gl)
{
	if (gl->out.len > 0)
		fwrite(gl->out.data, 1, gl->out.len, stdout);
	strbuf_reset(&gl->out);
}

static void
out_maybe_flush(struct gl *gl)
{
	if (gl->out.len >= OUT_FLUSH_BYTES)
		out_flush(gl);
}

static void
triplet_free(struct triplet *t)
{
	free(t->key);
	free(t->net);
	free(t->sender);
	free(t->rcpt);
	free(t->state);
}

static void
client_free(struct client *c)
{
	free(c->key);
	free(c->net);
}

static const char *
prefix(const struct gl *gl)
{
	return cli_key_prefix(gl->cfg);
}

static long long
parse_ll(const char *s, long long fallback)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return fallback;
	v = strtoll(s, &end, 10);
	return *end == '\0' ? v : fallback;
}

/* "2024-05-01T12:00:00Z", or "-" for an unset time. */
static const char *
format_time(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t < 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void
json_ll_or_null(struct strbuf *sb, long long v)
{
	if (v < 0)
		strbuf_puts(sb, "null");
	else
		strbuf_printf(sb, "%lld", v);
}

/* ---------------------------------------------------------------- Redis */

static int
redis_time(struct gl *gl)
{
	const char *argv[] = {"TIME"};
	redisReply *r = redis_run_command(gl->pool, argv, NULL, 1, gl->err);

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return mxg_fail(gl->err, MXG_EIO, "unexpected reply to TIME");
	}
	gl->now = parse_ll(r->element[0]->str, 0);
	freeReplyObject(r);
	return 0;
}

/* Runs a script with keys (as they are, lengths given) and arguments. */
static redisReply *
run_eval(struct gl *gl, const char *script, const char *const *keys,
    const size_t *keylens, size_t nkeys, const char *const *args,
    size_t nargs)
{
	return cli_eval(gl->pool, script, keys, keylens, nkeys, args, nargs,
	    gl->err);
}

/* An EVAL reply of n entries, each an array starting with 0 or 1. */
static bool
fetch_reply_ok(const redisReply *r, size_t n, size_t fields)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = r->element[i];

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER)
			return false;
		if (e->element[0]->integer == 1 && e->elements != fields)
			return false;
	}
	return true;
}

static const char *
reply_str(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ?
	    r->str : "";
}

/* Splits "<prefix>gl:t:NET|SENDER|RCPT" into t's net, sender, rcpt. A
 * sender holding '|' is kept whole: the recipient is after the last. */
static void
triplet_parse_key(const struct gl *gl, struct triplet *t)
{
	struct strbuf head = STRBUF_INIT;
	const char *rest = t->key;

	strbuf_printf(&head, "%sgl:t:", prefix(gl));
	if (strncmp(rest, head.data, head.len) == 0)
		rest += head.len;
	strbuf_free(&head);
	const char *bar1 = strchr(rest, '|'), *bar2 = strrchr(rest, '|');
	if (bar1 != NULL && bar2 > bar1) {
		t->net = mxg_strndup(rest, (size_t)(bar1 - rest));
		t->sender = mxg_strndup(bar1 + 1, (size_t)(bar2 - bar1 - 1));
		t->rcpt = mxg_strdup(bar2 + 1);
	} else {
		t->net = mxg_strdup(rest);
		t->sender = mxg_strdup("");
		t->rcpt = mxg_strdup("");
	}
}

static void
client_parse_key(const struct gl *gl, struct client *c)
{
	size_t plen = strlen(prefix(gl)) + strlen("gl:c:");

	c->net = mxg_strdup(strlen(c->key) >= plen ? c->key + plen : c->key);
}

/* Fetches the triplets named by keys; those found are appended to
 * *out (caller frees each with triplet_free, and the array). */
static int
fetch_triplets(struct gl *gl, const char *const *keys, const size_t *lens,
    size_t n, struct triplet **out, size_t *nout)
{
	redisReply *r;

	if (n == 0)
		return 0;
	r = run_eval(gl, fetch_triplets_lua, keys, lens, n, NULL, 0);
	if (r == NULL)
		return -1;
	if (!fetch_reply_ok(r, n, 6)) {
		freeReplyObject(r);
		return mxg_fail(gl->err, MXG_EIO, "unexpected reply from the "
		    "triplet script");
	}
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = r->element[i];

		if (e->element[0]->integer != 1)
			continue;
		*out = mxg_realloc(*out, (*nout + 1) * sizeof(**out));
		struct triplet *t = &(*out)[(*nout)++];
		memset(t, 0, sizeof(*t));
		t->key = mxg_strndup(keys[i], lens ? lens[i] : strlen(keys[i]));
		triplet_parse_key(gl, t);
		t->first = parse_ll(reply_str(e->element[1]), -1);
		t->state = mxg_strdup(reply_str(e->element[2]));
		t->seen = parse_ll(reply_str(e->element[3]), -1);
		t->last = parse_ll(reply_str(e->element[4]), -1);
		t->ttl = e->element[5]->type == REDIS_REPLY_INTEGER ?
		    e->element[5]->integer : -1;
	}
	freeReplyObject(r);
	return 0;
}

static int
fetch_clients(struct gl *gl, const char *const *keys, const size_t *lens,
    size_t n, struct client **out, size_t *nout)
{
	redisReply *r;

	if (n == 0)
		return 0;
	r = run_eval(gl, fetch_clients_lua, keys, lens, n, NULL, 0);
	if (r == NULL)
		return -1;
	if (!fetch_reply_ok(r, n, 3)) {
		freeReplyObject(r);
		return mxg_fail(gl->err, MXG_EIO, "unexpected reply from the "
		    "client script");
	}
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = r->element[i];

		if (e->element[0]->integer != 1)
			continue;
		*out = mxg_realloc(*out, (*nout + 1) * sizeof(**out));
		struct client *c = &(*out)[(*nout)++];
		memset(c, 0, sizeof(*c));
		c->key = mxg_strndup(keys[i], lens ? lens[i] : strlen(keys[i]));
		client_parse_key(gl, c);
		c->passed = parse_ll(reply_str(e->element[1]), 0);
		c->ttl = e->element[2]->type == REDIS_REPLY_INTEGER ?
		    e->element[2]->integer : -1;
	}
	freeReplyObject(r);
	return 0;
}

/* One SCAN batch: keys (strings) with their lengths. fn returns 0 to go
 * on, 1 to stop, -1 on a Redis failure (gl->err set). */
typedef int (*scan_fn)(struct gl *gl, const char *const *keys,
    const size_t *lens, size_t n, void *arg);

/* A scan_fn with its gl, for scan_batch. */
struct scan {
	struct gl *gl;
	scan_fn fn;
	void *arg;
};

static int
scan_batch(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	struct scan *sc = arg;

	return sc->fn(sc->gl, keys, lens, n, sc->arg);
}

/* SCAN MATCH pattern to the end (or until fn stops it). */
static int
scan_keys(struct gl *gl, const char *pattern, scan_fn fn, void *arg)
{
	struct scan sc = {gl, fn, arg};

	return cli_scan_keys(gl->pool, pattern, scan_batch, &sc, gl->err);
}

/* ---------------------------------------------------------------- output */

static bool
is_whitelisted(const struct gl *gl, long long passed)
{
	int awl = gl->cfg->greylist.auto_whitelist;

	return awl > 0 && passed >= awl;
}

/* Seconds before a retry of t would pass; -1 when unknown. */
static long long
seconds_left(const struct gl *gl, const struct triplet *t)
{
	if (strcmp(t->state, "pass") == 0)
		return 0;
	if (strcmp(t->state, "wait") != 0 || t->first < 0)
		return -1;
	long long left = t->first + gl->delay_s - gl->now;
	return left > 0 ? left : 0;
}

static void
triplet_json(const struct gl *gl, struct strbuf *sb, const struct triplet *t)
{
	cli_json_field(sb, "{\"type\": \"triplet\", \"key\": ", t->key);
	cli_json_field(sb, ", \"client_net\": ", t->net);
	cli_json_field(sb, ", \"sender\": ", t->sender);
	cli_json_field(sb, ", \"rcpt\": ", t->rcpt);
	cli_json_field(sb, ", \"state\": ", t->state);
	strbuf_puts(sb, ", \"first\": ");
	json_ll_or_null(sb, t->first);
	strbuf_puts(sb, ", \"seen\": ");
	json_ll_or_null(sb, t->seen);
	strbuf_puts(sb, ", \"last\": ");
	json_ll_or_null(sb, t->last);
	strbuf_puts(sb, ", \"ttl\": ");
	json_ll_or_null(sb, t->ttl);
	strbuf_puts(sb, ", \"seconds_left\": ");
	json_ll_or_null(sb, seconds_left(gl, t));
	strbuf_putc(sb, '}');
}

static void
triplet_line(const struct gl *gl, struct strbuf *sb, const struct triplet *t)
{
	char b1[32], b2[32];
	long long left = seconds_left(gl, t);

	strbuf_printf(sb, "triplet %s %s %s state=%s seen=%lld first=%s "
	    "last=%s ttl=", t->net, t->sender, t->rcpt, *t->state ? t->state :
	    "-", t->seen < 0 ? 0 : t->seen, format_time(t->first, b1,
	    sizeof(b1)), format_time(t->last, b2, sizeof(b2)));
	if (t->ttl < 0)
		strbuf_putc(sb, '-');
	else
		strbuf_printf(sb, "%lld", t->ttl);
	if (left < 0)
		strbuf_puts(sb, " passes_in=-\n");
	else
		strbuf_printf(sb, " passes_in=%lld\n", left);
}

static void
client_json(const struct gl *gl, struct strbuf *sb, const struct client *c)
{
	cli_json_field(sb, "{\"type\": \"client\", \"key\": ", c->key);
	cli_json_field(sb, ", \"client_net\": ", c->net);
	strbuf_printf(sb, ", \"passed\": %lld, \"whitelisted\": %s, \"ttl\": ",
	    c->passed, is_whitelisted(gl, c->passed) ? "true" : "false");
	json_ll_or_null(sb, c->ttl);
	strbuf_putc(sb, '}');
}

static void
client_line(const struct gl *gl, struct strbuf *sb, const struct client *c)
{
	strbuf_printf(sb, "client %s passed=%lld whitelisted=%s ttl=", c->net,
	    c->passed, is_whitelisted(gl, c->passed) ? "yes" : "no");
	if (c->ttl < 0)
		strbuf_puts(sb, "-\n");
	else
		strbuf_printf(sb, "%lld\n", c->ttl);
}

/* The network, sender and recipient of the arguments, normalised as
 * the milter keys them. */
struct names {
	struct strbuf net, sender, tkey, ckey;
	char *rcpt;
};

static void
names_free(struct names *n)
{
	strbuf_free(&n->net);
	strbuf_free(&n->sender);
	strbuf_free(&n->tkey);
	strbuf_free(&n->ckey);
	free(n->rcpt);
}

/* The client's count (passed 0, ttl -1 when none), into *c. */
static int
load_client(struct gl *gl, struct names *nm, struct client *c)
{
	const char *key = nm->ckey.data;
	struct client *found = NULL;
	size_t nfound = 0;

	memset(c, 0, sizeof(*c));
	if (fetch_clients(gl, &key, NULL, 1, &found, &nfound) < 0)
		return -1;
	if (nfound == 1) {
		*c = found[0];
	} else {
		c->key = mxg_strdup(nm->ckey.data);
		c->net = mxg_strdup(nm->net.data);
		c->ttl = -1;
	}
	free(found);
	return 0;
}

/* The client's fields as JSON members, without braces. */
static void
client_members(const struct gl *gl, struct strbuf *sb, const struct client *c)
{
	cli_json_field(sb, "\"client_net\": ", c->net);
	cli_json_field(sb, ", \"client_key\": ", c->key);
	strbuf_printf(sb, ", \"passed\": %lld, \"whitelisted\": %s, "
	    "\"auto_whitelist\": %d, \"client_ttl\": ", c->passed,
	    is_whitelisted(gl, c->passed) ? "true" : "false",
	    gl->cfg->greylist.auto_whitelist);
	json_ll_or_null(sb, c->ttl);
}

static void
client_text(const struct gl *gl, struct strbuf *sb, const struct client *c)
{
	int awl = gl->cfg->greylist.auto_whitelist;

	strbuf_printf(sb, "client network: %s\npassed triplets: %lld\n",
	    c->net, c->passed);
	if (awl > 0)
		strbuf_printf(sb, "auto-whitelisted: %s (at %d)\n",
		    is_whitelisted(gl, c->passed) ? "yes" : "no", awl);
	else
		strbuf_puts(sb, "auto-whitelisted: no (auto_whitelist = 0)\n");
	if (c->ttl >= 0)
		strbuf_printf(sb, "client expires in: %lld s\n", c->ttl);
}

/* ---------------------------------------------------------------- commands */

static int
cmd_show(struct gl *gl, struct names *nm)
{
	const char *key = nm->tkey.data;
	struct triplet *t = NULL;
	size_t nt = 0;
	struct client c;
	struct strbuf *sb = &gl->out;
	char b1[32], b2[32];

	if (fetch_triplets(gl, &key, NULL, 1, &t, &nt) < 0)
		return -1;
	if (load_client(gl, nm, &c) < 0) {
		for (size_t i = 0; i < nt; i++)
			triplet_free(&t[i]);
		free(t);
		return -1;
	}
	if (gl->json) {
		cli_json_field(sb, "{\"key\": ", nm->tkey.data);
		cli_json_field(sb, ", \"sender\": ", nm->sender.data);
		cli_json_field(sb, ", \"rcpt\": ", nm->rcpt);
		strbuf_puts(sb, ", \"triplet\": ");
		if (nt == 1)
			triplet_json(gl, sb, &t[0]);
		else
			strbuf_puts(sb, "null");
		strbuf_puts(sb, ", ");
		client_members(gl, sb, &c);
		strbuf_puts(sb, "}\n");
	} else {
		strbuf_printf(sb, "triplet: %s %s %s", nm->net.data,
		    nm->sender.data, nm->rcpt);
		if (nt == 0) {
			strbuf_puts(sb, ": not found\n");
		} else {
			long long left = seconds_left(gl, &t[0]);

			strbuf_printf(sb, "\nstate: %s\nfirst seen: %s",
			    *t[0].state ? t[0].state : "-", format_time(
			    t[0].first, b1, sizeof(b1)));
			if (t[0].first >= 0)
				strbuf_printf(sb, " (%lld s ago)",
				    gl->now - t[0].first);
			strbuf_printf(sb, "\nseen: %lld\nlast pass: %s\n",
			    t[0].seen < 0 ? 0 : t[0].seen, format_time(
			    t[0].last, b2, sizeof(b2)));
			if (t[0].ttl >= 0)
				strbuf_printf(sb, "expires in: %lld s\n",
				    t[0].ttl);
			if (left >= 0)
				strbuf_printf(sb, "passes in: %lld s\n", left);
		}
		client_text(gl, sb, &c);
	}
	for (size_t i = 0; i < nt; i++)
		triplet_free(&t[i]);
	free(t);
	client_free(&c);
	return 0;
}

struct collect {
	struct triplet *t;
	size_t n;
};

static int
collect_triplets(struct gl *gl, const char *const *keys, const size_t *lens,
    size_t n, void *arg)
{
	struct collect *col = arg;

	return fetch_triplets(gl, keys, lens, n, &col->t, &col->n) < 0 ? -1 : 0;
}

static int
triplet_cmp(const void *a, const void *b)
{
	return strcmp(((const struct triplet *)a)->key,
	    ((const struct triplet *)b)->key);
}

/* The triplets of the client network nm->net, sorted by key. */
static int
client_triplets(struct gl *gl, struct names *nm, struct collect *col)
{
	struct strbuf pattern = STRBUF_INIT, head = STRBUF_INIT;
	int rc;

	strbuf_printf(&head, "%sgl:t:%s|", prefix(gl), nm->net.data);
	cli_glob_escape(&pattern, head.data);
	strbuf_putc(&pattern, '*');
	rc = scan_keys(gl, pattern.data, collect_triplets, col);
	strbuf_free(&pattern);
	strbuf_free(&head);
	if (rc == 0 && col->n > 1)
		qsort(col->t, col->n, sizeof(*col->t), triplet_cmp);
	return rc;
}

static void
collect_free(struct collect *col)
{
	for (size_t i = 0; i < col->n; i++)
		triplet_free(&col->t[i]);
	free(col->t);
}

static int
cmd_client(struct gl *gl, struct names *nm)
{
	struct collect col = {NULL, 0};
	struct client c;
	struct strbuf *sb = &gl->out;

	if (load_client(gl, nm, &c) < 0)
		return -1;
	if (client_triplets(gl, nm, &col) < 0) {
		client_free(&c);
		collect_free(&col);
		return -1;
	}
	if (gl->json) {
		strbuf_putc(sb, '{');
		client_members(gl, sb, &c);
		strbuf_puts(sb, ", \"triplets\": [");
		for (size_t i = 0; i < col.n; i++) {
			if (i > 0)
				strbuf_puts(sb, ", ");
			triplet_json(gl, sb, &col.t[i]);
		}
		strbuf_puts(sb, "]}\n");
	} else {
		client_text(gl, sb, &c);
		strbuf_printf(sb, "triplets: %zu\n", col.n);
		for (size_t i = 0; i < col.n; i++)
			triplet_line(gl, sb, &col.t[i]);
	}
	client_free(&c);
	collect_free(&col);
	return 0;
}

/* Splits a SCAN batch into triplet and client keys and fetches both. */
static int
fetch_batch(struct gl *gl, const char *const *keys, const size_t *lens,
    size_t n, struct collect *triplets, struct client **clients,
    size_t *nclients)
{
	struct strbuf thead = STRBUF_INIT, chead = STRBUF_INIT;
	const char **tk = mxg_calloc(n, sizeof(*tk)), **ck = mxg_calloc(n,
	    sizeof(*ck));
	size_t *tl = mxg_calloc(n, sizeof(*tl)), *cl = mxg_calloc(n,
	    sizeof(*cl));
	size_t nt = 0, nc = 0;
	int rc = 0;

	strbuf_printf(&thead, "%sgl:t:", prefix(gl));
	strbuf_printf(&chead, "%sgl:c:", prefix(gl));
	for (size_t i = 0; i < n; i++) {
		if (lens[i] > thead.len &&
		    memcmp(keys[i], thead.data, thead.len) == 0) {
			tk[nt] = keys[i];
			tl[nt++] = lens[i];
		} else if (lens[i] > chead.len &&
		    memcmp(keys[i], chead.data, chead.len) == 0) {
			ck[nc] = keys[i];
			cl[nc++] = lens[i];
		}
	}
	if (fetch_triplets(gl, tk, tl, nt, &triplets->t, &triplets->n) < 0 ||
	    fetch_clients(gl, ck, cl, nc, clients, nclients) < 0)
		rc = -1;
	free(tk);
	free(tl);
	free(ck);
	free(cl);
	strbuf_free(&thead);
	strbuf_free(&chead);
	return rc;
}

struct listing {
	long limit;
	long printed;
};

static int
list_batch(struct gl *gl, const char *const *keys, const size_t *lens,
    size_t n, void *arg)
{
	struct listing *ls = arg;
	struct collect col = {NULL, 0};
	struct client *clients = NULL;
	size_t nclients = 0;
	int rc = fetch_batch(gl, keys, lens, n, &col, &clients, &nclients);

	for (size_t i = 0; rc == 0 && i < col.n + nclients; i++) {
		if (ls->limit > 0 && ls->printed >= ls->limit) {
			rc = 1;
			break;
		}
		if (gl->json && ls->printed > 0)
			strbuf_puts(&gl->out, ",\n ");
		if (i < col.n && gl->json)
			triplet_json(gl, &gl->out, &col.t[i]);
		else if (i < col.n)
			triplet_line(gl, &gl->out, &col.t[i]);
		else if (gl->json)
			client_json(gl, &gl->out, &clients[i - col.n]);
		else
			client_line(gl, &gl->out, &clients[i - col.n]);
		ls->printed++;
		out_maybe_flush(gl);
	}
	if (rc == 0 && ls->limit > 0 && ls->printed >= ls->limit)
		rc = 1;
	collect_free(&col);
	for (size_t i = 0; i < nclients; i++)
		client_free(&clients[i]);
	free(clients);
	return rc;
}

/* Every triplet and client key under our prefix. */
static void
all_pattern(const struct gl *gl, struct strbuf *pattern)
{
	cli_glob_escape(pattern, prefix(gl));
	strbuf_puts(pattern, "gl:[tc]:*");
}

static int
cmd_list(struct gl *gl, long limit)
{
	struct strbuf pattern = STRBUF_INIT;
	struct listing ls = {limit, 0};
	int rc;

	all_pattern(gl, &pattern);
	if (gl->json)
		strbuf_putc(&gl->out, '[');
	rc = scan_keys(gl, pattern.data, list_batch, &ls);
	strbuf_free(&pattern);
	if (rc < 0)
		return -1;
	if (gl->json)
		strbuf_puts(&gl->out, "]\n");
	return 0;
}

struct tally {
	long long waiting, passed, clients, whitelisted;
};

static int
count_batch(struct gl *gl, const char *const *keys, const size_t *lens,
    size_t n, void *arg)
{
	struct tally *t = arg;
	struct collect col = {NULL, 0};
	struct client *clients = NULL;
	size_t nclients = 0;
	int rc = fetch_batch(gl, keys, lens, n, &col, &clients, &nclients);

	for (size_t i = 0; i < col.n; i++) {
		if (strcmp(col.t[i].state, "pass") == 0)
			t->passed++;
		else
			t->waiting++;
	}
	for (size_t i = 0; i < nclients; i++) {
		t->clients++;
		t->whitelisted += is_whitelisted(gl, clients[i].passed);
		client_free(&clients[i]);
	}
	collect_free(&col);
	free(clients);
	return rc;
}

static int
cmd_counts(struct gl *gl)
{
	struct strbuf pattern = STRBUF_INIT;
	struct tally t = {0, 0, 0, 0};
	int rc;

	all_pattern(gl, &pattern);
	rc = scan_keys(gl, pattern.data, count_batch, &t);
	strbuf_free(&pattern);
	if (rc < 0)
		return -1;
	if (gl->json)
		strbuf_printf(&gl->out, "{\"triplets_waiting\": %lld, "
		    "\"triplets_passed\": %lld, \"clients\": %lld, "
		    "\"clients_whitelisted\": %lld}\n", t.waiting, t.passed,
		    t.clients, t.whitelisted);
	else
		strbuf_printf(&gl->out, "triplets waiting: %lld\n"
		    "triplets passed: %lld\nclient networks: %lld\n"
		    "client networks auto-whitelisted: %lld\n", t.waiting,
		    t.passed, t.clients, t.whitelisted);
	return 0;
}

static int
cmd_whitelist(struct gl *gl, struct names *nm, bool triplet)
{
	char max_age[24], threshold[24];
	redisReply *r;

	snprintf(max_age, sizeof(max_age), "%ld", gl->max_age_s);
	if (triplet) {
		const char *key = nm->tkey.data, *args[] = {max_age};

		r = run_eval(gl, whitelist_triplet_lua, &key, NULL, 1, args, 1);
		if (r == NULL)
			return -1;
		freeReplyObject(r);
		if (redis_time(gl) < 0)	/* show ages from after the write */
			return -1;
		return cmd_show(gl, nm);
	}
	const char *key = nm->ckey.data, *args[] = {threshold, max_age};
	snprintf(threshold, sizeof(threshold), "%d",
	    gl->cfg->greylist.auto_whitelist);
	r = run_eval(gl, whitelist_client_lua, &key, NULL, 1, args, 2);
	if (r == NULL)
		return -1;
	freeReplyObject(r);
	struct client c;
	if (load_client(gl, nm, &c) < 0)
		return -1;
	if (gl->json) {
		strbuf_putc(&gl->out, '{');
		client_members(gl, &gl->out, &c);
		strbuf_puts(&gl->out, "}\n");
	} else {
		client_text(gl, &gl->out, &c);
	}
	client_free(&c);
	return 0;
}

static int
del_batch(struct gl *gl, const char *const *keys, const size_t *lens,
    size_t n, void *arg)
{
	long long *deleted = arg;
	const char **argv = mxg_calloc(n + 1, sizeof(*argv));
	size_t *argvlen = mxg_calloc(n + 1, sizeof(*argvlen));
	redisReply *r;

	argv[0] = "DEL";
	argvlen[0] = 3;
	memcpy(argv + 1, keys, n * sizeof(*keys));
	memcpy(argvlen + 1, lens, n * sizeof(*lens));
	r = redis_run_command(gl->pool, argv, argvlen, (int)(n + 1), gl->err);
	free(argv);
	free(argvlen);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_INTEGER)
		*deleted += r->integer;
	freeReplyObject(r);
	return 0;
}

static int
cmd_delete(struct gl *gl, struct names *nm, bool triplet)
{
	long long deleted = 0;
	bool count_deleted = false;

	if (triplet) {
		const char *key = nm->tkey.data;
		size_t len = nm->tkey.len;

		if (del_batch(gl, &key, &len, 1, &deleted) < 0)
			return -1;
		if (gl->json) {
			cli_json_field(&gl->out, "{\"key\": ", nm->tkey.data);
			strbuf_printf(&gl->out, ", \"deleted\": %s}\n",
			    deleted ? "true" : "false");
		} else {
			strbuf_printf(&gl->out, "triplet %s %s %s: %s\n",
			    nm->net.data, nm->sender.data, nm->rcpt, deleted ?
			    "deleted" : "not found");
		}
		return 0;
	}
	const char *key = nm->ckey.data;
	size_t len = nm->ckey.len;
	if (del_batch(gl, &key, &len, 1, &deleted) < 0)
		return -1;
	count_deleted = deleted > 0;
	deleted = 0;
	struct strbuf pattern = STRBUF_INIT, head = STRBUF_INIT;
	strbuf_printf(&head, "%sgl:t:%s|", prefix(gl), nm->net.data);
	cli_glob_escape(&pattern, head.data);
	strbuf_putc(&pattern, '*');
	int rc = scan_keys(gl, pattern.data, del_batch, &deleted);
	strbuf_free(&pattern);
	strbuf_free(&head);
	if (rc < 0)
		return -1;
	if (gl->json) {
		cli_json_field(&gl->out, "{\"client_net\": ", nm->net.data);
		strbuf_printf(&gl->out, ", \"count_deleted\": %s, "
		    "\"triplets_deleted\": %lld}\n", count_deleted ? "true" :
		    "false", deleted);
	} else {
		strbuf_printf(&gl->out, "client network %s: %s, %lld "
		    "triplet%s deleted\n", nm->net.data, count_deleted ?
		    "pass count deleted" : "no pass count", deleted,
		    deleted == 1 ? "" : "s");
	}
	return 0;
}

/* ---------------------------------------------------------------- main */

enum gl_sub { SUB_SHOW, SUB_CLIENT, SUB_LIST, SUB_WHITELIST, SUB_DELETE,
    SUB_COUNTS };

static const struct {
	const char *name;
	enum gl_sub sub;
	bool ip;		/* --ip required */
	bool triplet;		/* --from/--rcpt: required, optional */
	bool triplet_required;
	bool limit;
} subcommands[] = {
	{"show", SUB_SHOW, true, true, true, false},
	{"client", SUB_CLIENT, true, false, false, false},
	{"list", SUB_LIST, false, false, false, true},
	{"whitelist", SUB_WHITELIST, true, true, false, false},
	{"delete", SUB_DELETE, true, true, false, false},
	{"counts", SUB_COUNTS, false, false, false, false},
};

/* Fills nm from the arguments, as the milter would key this client,
 * sender and recipient; -1 when --ip is not an address. */
static int
names_fill(const struct config *cfg, const struct gl_args *a,
    struct names *nm)
{
	struct message *msg = message_new(cfg->milter.header_limit,
	    cfg->milter.body_scan_limit);

	memset(nm, 0, sizeof(*nm));
	if (message_set_client(msg, a->ip, NULL) < 0) {
		message_free(msg);
		return -1;
	}
	greylist_client_net(cfg, msg, &nm->net);
	greylist_client_key(cfg, nm->net.data, &nm->ckey);
	if (a->from != NULL && a->rcpt != NULL) {
		message_set_mail_from(msg, a->from);
		message_add_rcpt(msg, a->rcpt);
		greylist_normalize_sender(msg->mail_from,
		    cfg->greylist.normalize_sender, &nm->sender);
		/* Shown as the key has it: lowercased. */
		struct strbuf low = STRBUF_INIT;
		for (const char *p = msg->rcpts[0]; *p; p++)
			strbuf_putc(&low, (char)tolower((unsigned char)*p));
		nm->rcpt = strbuf_steal(&low);
		if (nm->rcpt == NULL)
			nm->rcpt = mxg_strdup("");
		greylist_triplet_key(cfg, nm->net.data, nm->sender.data,
		    msg->rcpts[0], &nm->tkey);
	}
	message_free(msg);
	return 0;
}

int
command_greylist(int argc, char **argv)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"ip", required_argument, NULL, 'i'},
		{"from", required_argument, NULL, 'f'},
		{"rcpt", required_argument, NULL, 'r'},
		{"limit", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	struct cli_common co = {CLI_DEFAULT_CONFIG, false};
	const char *limit_text = NULL;
	struct gl_args a = {NULL, NULL, NULL, 0};
	int opt, done;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, options,
	    NULL)) != -1) {
		switch (opt) {
		case 'i': a.ip = optarg; break;
		case 'f': a.from = optarg; break;
		case 'r': a.rcpt = optarg; break;
		case 'l': limit_text = optarg; break;
		default:
			if ((done = cli_common_option(opt, &co, usage)) !=
			    CLI_OPT_NEXT)
				return done;
		}
	}
	if (optind >= argc)
		return usage_error("which subcommand?");
	if (argc - optind > 1)
		return usage_error("unexpected argument '%s'",
		    argv[optind + 1]);
	size_t s;
	const size_t nsubs = sizeof(subcommands) / sizeof(subcommands[0]);
	for (s = 0; s < nsubs; s++)
		if (strcmp(argv[optind], subcommands[s].name) == 0)
			break;
	if (s == nsubs)
		return usage_error("unknown subcommand '%s'", argv[optind]);
	const char *name = subcommands[s].name;
	if (subcommands[s].ip && a.ip == NULL)
		return usage_error("%s needs --ip ADDR", name);
	if (!subcommands[s].ip && a.ip != NULL)
		return usage_error("%s takes no --ip", name);
	if (!subcommands[s].triplet && (a.from != NULL || a.rcpt != NULL))
		return usage_error("%s takes no --from or --rcpt", name);
	if (subcommands[s].triplet && (a.from == NULL) != (a.rcpt == NULL))
		return usage_error("%s: --from and --rcpt go together", name);
	if (subcommands[s].triplet_required && a.from == NULL)
		return usage_error("%s needs --from SENDER and --rcpt RCPT",
		    name);
	if (a.rcpt != NULL && *a.rcpt == '\0')
		return usage_error("--rcpt is empty");
	if (!subcommands[s].limit && limit_text != NULL)
		return usage_error("%s takes no --limit", name);
	if (limit_text != NULL &&
	    cli_parse_long(limit_text, 1, LONG_MAX, &a.limit) < 0)
		return usage_error("--limit '%s' is not a number above 0",
		    limit_text);

	struct config *cfg;
	if (cli_config_load(co.config_path, &cfg) < 0)
		return CLI_EXIT_USAGE;

	int rc = CLI_EXIT_USAGE;
	struct names nm;
	memset(&nm, 0, sizeof(nm));
	struct gl gl = {.cfg = cfg, .json = co.json, .out = STRBUF_INIT};
	gl.delay_s = cfg->greylist.delay_ms / 1000;
	gl.max_age_s = cfg->greylist.max_age_ms / 1000 > 0 ?
	    cfg->greylist.max_age_ms / 1000 : 1;
	if (a.ip != NULL && names_fill(cfg, &a, &nm) < 0) {
		fprintf(stderr, "mxguard greylist: --ip '%s' is not an IPv4 "
		    "or IPv6 address\n", a.ip);
		goto out;
	}
	if (subcommands[s].sub == SUB_WHITELIST && a.from == NULL &&
	    cfg->greylist.auto_whitelist <= 0) {
		fprintf(stderr, "mxguard greylist: [greylist] auto_whitelist "
		    "is 0 in %s: client networks are never whitelisted\n",
		    co.config_path);
		goto out;
	}
	if (cli_redis_connect(cfg, &gl.pool) < 0)
		goto out;
	rc = CLI_EXIT_REDIS;
	if (redis_time(&gl) < 0) {
		fprintf(stderr, "mxguard greylist: cannot reach Redis at %s: "
		    "%s\n", cfg->redis.server, gl.err);
		goto out;
	}
	int r = -1;
	switch (subcommands[s].sub) {
	case SUB_SHOW: r = cmd_show(&gl, &nm); break;
	case SUB_CLIENT: r = cmd_client(&gl, &nm); break;
	case SUB_LIST: r = cmd_list(&gl, a.limit); break;
	case SUB_WHITELIST: r = cmd_whitelist(&gl, &nm, a.from != NULL); break;
	case SUB_DELETE: r = cmd_delete(&gl, &nm, a.from != NULL); break;
	case SUB_COUNTS: r = cmd_counts(&gl); break;
	}
	if (r < 0) {
		fprintf(stderr, "mxguard greylist: Redis at %s: %s\n",
		    cfg->redis.server, gl.err);
		goto out;
	}
	out_flush(&gl);
	rc = 0;
out:
	strbuf_free(&gl.out);
	names_free(&nm);
	redis_pool_free(gl.pool);
	config_free(cfg);
	return rc;
}
