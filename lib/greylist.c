#include "greylist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "mxg.h"
#include "netlist.h"
#include "redis.h"

static const struct check_symbol greylist_symbols[] = {
	{"GREYLIST_DEFER", 0.0, "greylisting: deferred, a first attempt"},
	{"GREYLIST_PASS", 0.0, "greylisting: a known sender, passed"},
	{"GREYLIST_AWL", 0.0, "greylisting: an auto-whitelisted client"},
	{"GREYLIST_SKIP", 0.0, "greylisting: skipped by a skip list"},
	{"GREYLIST_ERROR", 0.0, "greylisting: Redis failed, not applied"},
	{NULL, 0, NULL},
};

/*
 * One decision, atomically. KEYS[1] the triplet, KEYS[2] the client
 * network's count of passed triplets; ARGV delay (milliseconds), retry
 * window and max age (seconds, for TTLs) and the auto-whitelist
 * threshold (0: off). The time is Redis's own; first, last are seconds
 * (what mxguard greylist shows) and first_ms the precise first sight
 * (whole seconds let a retry pass up to a second early). Returns
 * {outcome, seconds left, rounded up}.
 */
static struct redis_script decide_script = REDIS_SCRIPT_INIT(
    "local t = redis.call('TIME')\n"
    "local sec = tonumber(t[1])\n"
    "local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local delay, window, max_age, awl = tonumber(ARGV[1]), "
    "tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if awl > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= awl then\n"
    "  redis.call('EXPIRE', KEYS[2], max_age)\n"
    "  return {'awl', 0}\n"
    "end\n"
    "local first = redis.call('HGET', KEYS[1], 'first')\n"
    "if not first then\n"
    "  redis.call('HSET', KEYS[1], 'first', sec, 'first_ms', now, 'state', "
    "'wait', 'seen', 1)\n"
    "  redis.call('EXPIRE', KEYS[1], window)\n"
    "  return {'defer', math.ceil(delay / 1000)}\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[1], 'seen', 1)\n"
    "if redis.call('HGET', KEYS[1], 'state') == 'pass' then\n"
    "  redis.call('HSET', KEYS[1], 'last', sec)\n"
    "  redis.call('EXPIRE', KEYS[1], max_age)\n"
    "  return {'pass', 0}\n"
    "end\n"
    "local first_ms = tonumber(redis.call('HGET', KEYS[1], 'first_ms')) or "
    "tonumber(first) * 1000\n"
    "local elapsed = now - first_ms\n"
    "if elapsed < delay then\n"
    "  return {'defer', math.ceil((delay - elapsed) / 1000)}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', 'pass', 'last', sec)\n"
    "redis.call('EXPIRE', KEYS[1], max_age)\n"
    "redis.call('INCR', KEYS[2])\n"
    "redis.call('EXPIRE', KEYS[2], max_age)\n"
    "return {'new', 0}\n");

struct greylist_state {
	const struct config *cfg;
	struct redis_pool *redis;
	struct netlist *skip_networks;
	struct domainlist *skip_hostnames;
	struct rcptlist *skip_recipients;
	struct domainlist *skip_spf_domains;
};

const char *
greylist_outcome_name(enum greylist_outcome outcome)
{
	static const char *const names[] = {
		[GREYLIST_PASS] = "pass", [GREYLIST_PASS_NEW] = "pass-new",
		[GREYLIST_PASS_AWL] = "pass-awl", [GREYLIST_DEFER] = "defer",
		[GREYLIST_SKIP] = "skip", [GREYLIST_ERROR] = "error",
	};
	return names[outcome];
}

void
greylist_client_net(const struct config *cfg, const struct message *msg,
    struct strbuf *out)
{
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	int bits, len;

	if (msg->client_family == AF_INET) {
		memcpy(addr, &msg->client_ip4, 4);
		bits = cfg->greylist.ipv4_prefix;
		len = 4;
	} else if (msg->client_family == AF_INET6) {
		memcpy(addr, &msg->client_ip6, 16);
		bits = cfg->greylist.ipv6_prefix;
		len = 16;
	} else {
		strbuf_puts(out, "unknown");
		return;
	}
	if (bits > len * 8)
		bits = len * 8;
	for (int i = 0; i < len; i++) {
		int keep = bits - i * 8;

		if (keep <= 0)
			addr[i] = 0;
		else if (keep < 8)
			addr[i] &= (unsigned char)(0xff << (8 - keep));
	}
	inet_ntop(msg->client_family, addr, text, sizeof(text));
	strbuf_printf(out, "%s/%d", text, bits);
}

/* An SRS address (RFC-less but common): SRS0=hash=tt=domain=local. */
static bool
unwrap_srs(const char *local, struct strbuf *out)
{
	const char *p = local;

	if (strncmp(p, "srs1=", 5) == 0) {
		const char *inner = strstr(p, "==");
		if (inner == NULL)
			return false;
		p = inner + 2;
	} else if (strncmp(p, "srs0=", 5) == 0) {
		p += 5;
	} else {
		return false;
	}
	/* hash=tt=domain=local */
	const char *f1 = strchr(p, '=');
	const char *f2 = f1 ? strchr(f1 + 1, '=') : NULL;
	const char *f3 = f2 ? strchr(f2 + 1, '=') : NULL;
	if (f3 == NULL || f3[1] == '\0' || f3 == f2 + 1)
		return false;
	strbuf_puts(out, f3 + 1);
	strbuf_putc(out, '@');
	strbuf_append(out, f2 + 1, (size_t)(f3 - f2 - 1));
	return true;
}

void
greylist_normalize_sender(const char *sender, bool normalize,
    struct strbuf *out)
{
	struct strbuf low = STRBUF_INIT;

	if (sender == NULL || *sender == '\0') {
		strbuf_puts(out, "<>");
		return;
	}
	for (const char *p = sender; *p; p++)
		strbuf_putc(&low, (char)tolower((unsigned char)*p));
	const char *addr = low.data;
	const char *at = strrchr(addr, '@');
	if (!normalize || at == NULL) {
		strbuf_puts(out, addr);
		strbuf_free(&low);
		return;
	}
	char *local = mxg_strndup(addr, (size_t)(at - addr));
	const char *domain = at + 1;
	struct strbuf unwrapped = STRBUF_INIT;

	if (unwrap_srs(local, &unwrapped)) {
		greylist_normalize_sender(unwrapped.data, false, out);
	} else {
		const char *l = local;
		/* BATV: prvs=tag=local (RFC draft-levine-smtp-batv). */
		if (strncmp(l, "prvs=", 5) == 0 || strncmp(l, "btv1=", 5) == 0) {
			const char *last = strrchr(l, '=');
			if (last != NULL && last[1] != '\0')
				l = last + 1;
		}
		size_t llen = strcspn(l, "+");	/* user+ext -> user */
		if (llen == 0)
			llen = strlen(l);
		strbuf_append(out, l, llen);
		strbuf_putc(out, '@');
		strbuf_puts(out, domain);
	}
	strbuf_free(&unwrapped);
	free(local);
	strbuf_free(&low);
}

void
greylist_triplet_key(const struct config *cfg, const char *net,
    const char *sender, const char *rcpt, struct strbuf *out)
{
	strbuf_printf(out, "%sgl:t:%s|%s|", cfg->redis.prefix ?
	    cfg->redis.prefix : "", net, sender);
	for (const char *p = rcpt; *p; p++)
		strbuf_putc(out, (char)tolower((unsigned char)*p));
}

void
greylist_client_key(const struct config *cfg, const char *net,
    struct strbuf *out)
{
	strbuf_printf(out, "%sgl:c:%s", cfg->redis.prefix ?
	    cfg->redis.prefix : "", net);
}

static void
greylist_free_state(void *p)
{
	struct greylist_state *st = p;

	if (st == NULL)
		return;
	redis_pool_free(st->redis);
	netlist_free(st->skip_networks);
	domainlist_free(st->skip_hostnames);
	rcptlist_free(st->skip_recipients);
	domainlist_free(st->skip_spf_domains);
	free(st);
}

static int
greylist_init(const struct check_env *env, void **out, char *err)
{
	struct greylist_state *st = mxg_calloc(1, sizeof(*st));
	const struct config *cfg = env->cfg;
	struct strbuf text = STRBUF_INIT;
	char why[MXG_ERRLEN];

	st->cfg = cfg;
	if (redis_pool_new(cfg, &st->redis, err) != 0)
		goto fail;
	if (netlist_text_with_file(cfg->greylist.skip_networks,
	    cfg->greylist.skip_networks_file, &text, why) != 0 ||
	    netlist_parse(text.data, &st->skip_networks, why) != 0) {
		mxg_fail(err, MXG_EINVAL, "[greylist] skip_networks: %s", why);
		goto fail;
	}
	strbuf_reset(&text);
	if (netlist_text_with_file(cfg->greylist.skip_hostnames,
	    cfg->greylist.skip_hostnames_file, &text, why) != 0) {
		mxg_fail(err, MXG_EINVAL, "[greylist] skip_hostnames: %s", why);
		goto fail;
	}
	st->skip_hostnames = domainlist_parse(text.data);
	strbuf_reset(&text);
	if (netlist_text_with_file(cfg->greylist.skip_recipients,
	    cfg->greylist.skip_recipients_file, &text, why) != 0) {
		mxg_fail(err, MXG_EINVAL, "[greylist] skip_recipients: %s",
		    why);
		goto fail;
	}
	st->skip_recipients = rcptlist_parse(text.data);
	st->skip_spf_domains = domainlist_parse(
	    cfg->greylist.skip_spf_pass_domains);
	strbuf_free(&text);
	*out = st;
	return MXG_OK;
fail:
	strbuf_free(&text);
	greylist_free_state(st);
	return MXG_EINVAL;
}

/* Why this recipient of this message is not greylisted, or NULL. */
static const char *
skip_reason(const struct greylist_state *st, const struct scan *scan,
    const char *rcpt)
{
	const struct message *msg = scan->msg;

	if (netlist_contains(st->skip_networks, msg))
		return "client network";
	if (msg->client_name != NULL &&
	    domainlist_matches(st->skip_hostnames, msg->client_name))
		return "client host name";
	if (st->cfg->greylist.skip_authenticated && msg->auth_user != NULL &&
	    *msg->auth_user != '\0')
		return "authenticated client";
	if (rcpt != NULL && rcptlist_matches(st->skip_recipients, rcpt))
		return "recipient";
	if (scan->spf.code == SPF_RES_PASS && scan->spf.domain != NULL &&
	    domainlist_matches(st->skip_spf_domains, scan->spf.domain))
		return "SPF pass for a listed sender domain";
	return NULL;
}

/* One triplet's decision from Redis. */
static void
decide(struct greylist_state *st, const struct message *msg,
    const char *rcpt, struct greylist_decision *d)
{
	const struct config *cfg = st->cfg;
	struct strbuf net = STRBUF_INIT, sender = STRBUF_INIT;
	struct strbuf tkey = STRBUF_INIT, ckey = STRBUF_INIT;
	char delay[24], window[24], max_age[24], awl[24];

	greylist_client_net(cfg, msg, &net);
	greylist_normalize_sender(msg->mail_from, cfg->greylist.normalize_sender,
	    &sender);
	greylist_triplet_key(cfg, net.data, sender.data, rcpt, &tkey);
	greylist_client_key(cfg, net.data, &ckey);
	snprintf(delay, sizeof(delay), "%ld", cfg->greylist.delay_ms);
	snprintf(window, sizeof(window), "%ld",
	    cfg->greylist.retry_window_ms / 1000 > 0 ?
	    cfg->greylist.retry_window_ms / 1000 : 1);
	snprintf(max_age, sizeof(max_age), "%ld",
	    cfg->greylist.max_age_ms / 1000 > 0 ?
	    cfg->greylist.max_age_ms / 1000 : 1);
	snprintf(awl, sizeof(awl), "%d", cfg->greylist.auto_whitelist);

	const char *argv[] = {tkey.data, ckey.data, delay, window, max_age, awl};
	size_t argvlen[] = {tkey.len, ckey.len, strlen(delay), strlen(window),
	    strlen(max_age), strlen(awl)};
	redisReply *r = redis_run_script(st->redis, &decide_script, 2, argv,
	    argvlen, 6, d->error);
	strbuf_free(&net);
	strbuf_free(&sender);
	strbuf_free(&tkey);
	strbuf_free(&ckey);

	memset(d, 0, offsetof(struct greylist_decision, error));
	if (r == NULL) {
		d->outcome = GREYLIST_ERROR;
		d->why = d->error;
		return;
	}
	/* The reply is untrusted too: check its shape. */
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_INTEGER) {
		snprintf(d->error, sizeof(d->error), "unexpected reply from "
		    "the greylist script");
		d->outcome = GREYLIST_ERROR;
		d->why = d->error;
		freeReplyObject(r);
		return;
	}
	const char *o = r->element[0]->str;
	d->seconds_left = (long)r->element[1]->integer;
	if (strcmp(o, "defer") == 0)
		d->outcome = GREYLIST_DEFER;
	else if (strcmp(o, "new") == 0)
		d->outcome = GREYLIST_PASS_NEW;
	else if (strcmp(o, "awl") == 0)
		d->outcome = GREYLIST_PASS_AWL;
	else
		d->outcome = GREYLIST_PASS;
	freeReplyObject(r);
}

static void
add_symbol_once(struct scan *scan, const char *name, const char *detail)
{
	if (verdict_find_symbol(scan->verdict, name) == NULL)
		scan_add_symbol(scan, name, detail);
}

static const char *
outcome_symbol(enum greylist_outcome o)
{
	switch (o) {
	case GREYLIST_DEFER:
		return "GREYLIST_DEFER";
	case GREYLIST_PASS_AWL:
		return "GREYLIST_AWL";
	case GREYLIST_SKIP:
		return "GREYLIST_SKIP";
	case GREYLIST_ERROR:
		return "GREYLIST_ERROR";
	default:
		return "GREYLIST_PASS";
	}
}

/* Decides for one recipient, with skip lists and on_error applied. */
static void
judge_rcpt(struct greylist_state *st, struct scan *scan, const char *rcpt,
    struct greylist_decision *d)
{
	const char *skip = skip_reason(st, scan, rcpt);

	if (skip != NULL) {
		memset(d, 0, sizeof(*d));
		d->outcome = GREYLIST_SKIP;
		d->why = skip;
	} else {
		decide(st, scan->msg, rcpt, d);
	}
	add_symbol_once(scan, outcome_symbol(d->outcome), d->why);
	metrics_check_result("greylist", greylist_outcome_name(d->outcome));
}

static void
greylist_run(void *p, struct scan *scan)
{
	struct greylist_state *st = p;
	struct greylist_decision d;

	judge_rcpt(st, scan, scan->current_rcpt, &d);
	if (d.outcome == GREYLIST_DEFER)
		scan_refuse_rcpt(scan, false, "4.7.1", "Greylisted, try again "
		    "in %ld seconds", d.seconds_left);
	else if (d.outcome == GREYLIST_ERROR &&
	    st->cfg->greylist.on_error == ON_ERROR_TEMPFAIL)
		scan_refuse_rcpt(scan, false, "4.3.0", "Greylisting is "
		    "temporarily unavailable, try again later");
}

/* mode = score: at end of message, only mail that scores high enough. */
static void
greylist_score_run(void *p, struct scan *scan)
{
	struct greylist_state *st = p;
	double score = 0, threshold = st->cfg->actions.greylist;
	long longest = -1;
	bool error = false;

	for (size_t i = 0; i < scan->verdict->nsymbols; i++)
		score += scan->verdict->symbols[i].score;
	if (threshold == CONFIG_THRESHOLD_OFF || score < threshold)
		return;
	for (size_t i = 0; i < scan->msg->nrcpts; i++) {
		struct greylist_decision d;

		judge_rcpt(st, scan, scan->msg->rcpts[i], &d);
		if (d.outcome == GREYLIST_DEFER && d.seconds_left > longest)
			longest = d.seconds_left;
		error |= d.outcome == GREYLIST_ERROR;
	}
	if (longest >= 0)
		verdict_force(scan->verdict, VERDICT_TEMPFAIL, "4.7.1",
		    "Greylisted, try again in %ld seconds", longest);
	else if (error && st->cfg->greylist.on_error == ON_ERROR_TEMPFAIL)
		verdict_force(scan->verdict, VERDICT_TEMPFAIL, "4.3.0",
		    "Greylisting is temporarily unavailable, try again later");
}

static bool
triplet_mode(const struct config *cfg)
{
	return cfg->greylist.enabled &&
	    cfg->greylist.mode == GREYLIST_MODE_TRIPLET;
}

static bool
score_mode(const struct config *cfg)
{
	return cfg->greylist.enabled &&
	    cfg->greylist.mode == GREYLIST_MODE_SCORE;
}

const struct check greylist_check = {
	.name = "greylist",
	.section = "greylist",
	.stage = STAGE_RCPT,
	.symbols = greylist_symbols,
	.enabled = triplet_mode,
	.init = greylist_init,
	.run = greylist_run,
	.free = greylist_free_state,
};

/* No symbols of its own: they are declared once, by greylist_check. */
static const struct check_symbol no_symbols[] = {{NULL, 0, NULL}};

const struct check greylist_score_check = {
	.name = "greylist_score",
	.section = "greylist",
	.stage = STAGE_EOM,
	.symbols = no_symbols,
	.enabled = score_mode,
	.init = greylist_init,
	.run = greylist_score_run,
	.free = greylist_free_state,
};
