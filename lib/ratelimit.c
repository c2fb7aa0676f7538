#include "ratelimit.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "greylist.h"
#include "log.h"
#include "metrics.h"
#include "mxg.h"
#include "netlist.h"
#include "redis.h"

static const struct check_symbol ratelimit_symbols[] = {
	{"RATELIMIT_ERROR", 0.0, "rate limits: Redis failed, not applied"},
	{NULL, 0, NULL},
};

/* Declared once, by the connect check; the rules' own symbols
 * (RATELIMIT_<NAME>) are data-defined: see ratelimit_has_symbol. */
static const struct check_symbol no_symbols[] = {{NULL, 0, NULL}};

/* Slack in microseconds for the rounding of stored times (to the
 * nearest microsecond): far below one unit of any rate. */
#define GCRA_SLACK_US 1.0

/*
 * Every bucket of one request, judged at once (see ratelimit.h). KEYS
 * the buckets; ARGV four per key: T (microseconds per unit), tolerance
 * (burst * T), units, action ("d" defer, "r" reject, "s" score).
 * Returns {"refuse", index of the decisive rule, wait in microseconds}
 * and charges nothing, or {"ok", 0, 0, indices of score rules over
 * their limit...} having charged every bucket that conforms. A bucket
 * that holds no number is an error: the caller applies on_error.
 */
static struct redis_script decide_script = REDIS_SCRIPT_INIT(
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local new, over = {}, {}\n"
    "local refuse, wait_max, rejecting = 0, -1, false\n"
    "for i = 1, #KEYS do\n"
    "  local T, tau = tonumber(ARGV[4*i-3]), tonumber(ARGV[4*i-2])\n"
    "  local units, act = tonumber(ARGV[4*i-1]), ARGV[4*i]\n"
    "  local base = now\n"
    "  local v = redis.call('GET', KEYS[i])\n"
    "  if v then\n"
    "    local x = tonumber(v)\n"
    "    if x == nil then\n"
    "      return redis.error_reply('rate limit bucket ' .. KEYS[i] ..\n"
    "        ' holds no number')\n"
    "    end\n"
    "    if x > now then base = x end\n"
    "  end\n"
    "  local inc = units * T\n"
    "  local nt = base + inc\n"
    "  if nt - now <= tau + 1 or base == now then\n"
    "    new[i] = nt\n"
    "  else\n"
    "    local wait = nt - now - tau\n"
    "    if inc > tau then wait = base - now end\n"
    "    new[i] = false\n"
    "    if act == 's' then\n"
    "      over[#over + 1] = i\n"
    "    elseif act == 'r' then\n"
    "      if not rejecting then\n"
    "        refuse, wait_max, rejecting = i, wait, true\n"
    "      end\n"
    "    elseif not rejecting and wait > wait_max then\n"
    "      refuse, wait_max = i, wait\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if refuse > 0 then\n"
    "  return {'refuse', refuse, math.ceil(wait_max)}\n"
    "end\n"
    "for i = 1, #KEYS do\n"
    "  if new[i] then\n"
    "    local ttl = math.ceil((new[i] - now) / 1000)\n"
    "    if ttl < 1 then ttl = 1 end\n"
    "    redis.call('SET', KEYS[i], string.format('%.0f',\n"
    "      math.floor(new[i] + 0.5)), 'PX', ttl)\n"
    "  end\n"
    "end\n"
    "local out = {'ok', 0, 0}\n"
    "for _, i in ipairs(over) do out[#out + 1] = i end\n"
    "return out\n");

/* What the three checks of one config share: one Redis pool (so that an
 * outage is logged once), the skip lists, each rule's score. */
struct ratelimit_state {
	const struct config *cfg;
	struct redis_pool *redis;
	struct netlist *skip_networks;
	struct rcptlist *skip_recipients;
	double scores[CONFIG_MAX_RATELIMITS];
	int refs;
	struct ratelimit_state *next;
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ratelimit_state *shared;

/* Per message in the milter (scan_check_data of the RCPT check). */
struct ratelimit_message {
	bool counted;		/* messages rules charged for it */
};

/* One bucket a request touches. */
struct entry {
	size_t rule;		/* index in cfg->ratelimits */
	char *value;
	char *key;
	double units;
};

struct batch {
	struct entry *e;
	size_t n;
};

enum outcome {
	OUTCOME_PASS,
	OUTCOME_REFUSE,
	OUTCOME_ERROR,
};

struct decision {
	enum outcome outcome;
	size_t refused;		/* entry index, OUTCOME_REFUSE */
	long seconds;		/* until the refused request would conform */
	size_t *over;		/* entry indices of score rules over */
	size_t nover;
	char error[MXG_ERRLEN];
};

/* ------------------------------------------------------------ pure parts */

const char *
ratelimit_key_what(enum ratelimit_key key)
{
	static const char *const what[] = {
		[RATELIMIT_KEY_CLIENT_IP] = "client",
		[RATELIMIT_KEY_CLIENT_NET] = "network",
		[RATELIMIT_KEY_SENDER] = "sender",
		[RATELIMIT_KEY_SENDER_DOMAIN] = "sender domain",
		[RATELIMIT_KEY_SASL_USER] = "SASL user",
		[RATELIMIT_KEY_RCPT] = "recipient",
		[RATELIMIT_KEY_RCPT_DOMAIN] = "recipient domain",
	};
	return (unsigned)key < RATELIMIT_KEY_COUNT ? what[key] : "?";
}

const struct config_ratelimit *
ratelimit_rule_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nratelimits; i++)
		if (strcmp(cfg->ratelimits[i].name, name) == 0)
			return &cfg->ratelimits[i];
	return NULL;
}

void
ratelimit_bucket_key(const struct config *cfg,
    const struct config_ratelimit *rule, const char *value,
    struct strbuf *out)
{
	strbuf_printf(out, "%srl:%s:", cfg->redis.prefix ? cfg->redis.prefix :
	    "", rule->name);
	strbuf_puts(out, value);
}

static void
put_lower(struct strbuf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		strbuf_putc(out, (char)tolower((unsigned char)s[i]));
}

static bool
is_rcpt_key(enum ratelimit_key key)
{
	return key == RATELIMIT_KEY_RCPT || key == RATELIMIT_KEY_RCPT_DOMAIN;
}

bool
ratelimit_key_value(const struct config *cfg,
    const struct config_ratelimit *rule, const struct message *msg,
    const char *rcpt, struct strbuf *out)
{
	char text[INET6_ADDRSTRLEN];
	const char *s, *at;

	switch (rule->key) {
	case RATELIMIT_KEY_CLIENT_IP:
		if (msg->client_family == 0)
			return false;
		inet_ntop(msg->client_family, msg->client_family == AF_INET ?
		    (const void *)&msg->client_ip4 :
		    (const void *)&msg->client_ip6, text, sizeof(text));
		strbuf_puts(out, text);
		return true;
	case RATELIMIT_KEY_CLIENT_NET:
		if (msg->client_family == 0)
			return false;
		greylist_client_net(cfg, msg, out);
		return true;
	case RATELIMIT_KEY_SENDER:
		if (!msg->has_mail_from)
			return false;
		greylist_normalize_sender(msg->mail_from, false, out);
		return true;
	case RATELIMIT_KEY_SENDER_DOMAIN:
		if ((s = message_mail_from_domain(msg)) == NULL)
			return false;
		put_lower(out, s, strlen(s));
		return true;
	case RATELIMIT_KEY_SASL_USER:
		if (msg->auth_user == NULL || *msg->auth_user == '\0')
			return false;
		strbuf_puts(out, msg->auth_user);
		return true;
	case RATELIMIT_KEY_RCPT:
		if (rcpt == NULL || *rcpt == '\0')
			return false;
		put_lower(out, rcpt, strlen(rcpt));
		return true;
	case RATELIMIT_KEY_RCPT_DOMAIN:
		if (rcpt == NULL || (at = strrchr(rcpt, '@')) == NULL ||
		    at[1] == '\0')
			return false;
		put_lower(out, at + 1, strlen(at + 1));
		return true;
	case RATELIMIT_KEY_COUNT:
		break;
	}
	return false;
}

int
ratelimit_value_parse(const struct config *cfg,
    const struct config_ratelimit *rule, const char *text,
    struct strbuf *out)
{
	struct message *msg = message_new(0, 0);
	char *bare = message_strip_brackets(text);
	char *slash;
	int rc = -1;

	switch (rule->key) {
	case RATELIMIT_KEY_CLIENT_NET:
		/* "192.0.2.0/24" as well as "192.0.2.7". */
		if ((slash = strchr(bare, '/')) != NULL)
			*slash = '\0';
		/* FALLTHROUGH */
	case RATELIMIT_KEY_CLIENT_IP:
		if (*bare != '\0' && message_set_client(msg, bare, NULL) == 0 &&
		    ratelimit_key_value(cfg, rule, msg, NULL, out))
			rc = 0;
		break;
	case RATELIMIT_KEY_SENDER:
		message_set_mail_from(msg, bare);
		rc = ratelimit_key_value(cfg, rule, msg, NULL, out) ? 0 : -1;
		break;
	case RATELIMIT_KEY_SENDER_DOMAIN:
	case RATELIMIT_KEY_RCPT_DOMAIN: {
		const char *at = strrchr(bare, '@');
		const char *domain = at ? at + 1 : bare;

		if (*domain != '\0') {
			put_lower(out, domain, strlen(domain));
			rc = 0;
		}
		break;
	}
	case RATELIMIT_KEY_SASL_USER:
		if (*bare != '\0') {
			strbuf_puts(out, bare);
			rc = 0;
		}
		break;
	case RATELIMIT_KEY_RCPT:
		rc = ratelimit_key_value(cfg, rule, msg, bare, out) ? 0 : -1;
		break;
	case RATELIMIT_KEY_COUNT:
		break;
	}
	free(bare);
	message_free(msg);
	return rc;
}

double
ratelimit_interval_us(const struct config_ratelimit *rule)
{
	return (double)rule->period_ms * 1000.0 / rule->limit;
}

void
ratelimit_rate_text(const struct config_ratelimit *rule, char *buf,
    size_t len)
{
	static const struct {
		long ms;
		char unit;
	} units[] = {
		{86400000L, 'd'}, {3600000L, 'h'}, {60000L, 'm'}, {1000L, 's'},
	};
	long ms = rule->period_ms;

	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++)
		if (ms % units[i].ms == 0) {
			long n = ms / units[i].ms;

			if (n == 1)
				snprintf(buf, len, "%.0f/1%c", rule->limit,
				    units[i].unit);
			else
				snprintf(buf, len, "%.0f/%ld%c", rule->limit, n,
				    units[i].unit);
			return;
		}
	snprintf(buf, len, "%.0f/%ldms", rule->limit, ms);
}

bool
ratelimit_gcra(const struct config_ratelimit *rule, double tat_us,
    double now_us, double units, double *new_tat_us, double *wait_us)
{
	double interval = ratelimit_interval_us(rule);
	double tolerance = rule->burst * interval;
	double base = tat_us > now_us ? tat_us : now_us;
	double inc = units * interval;

	*wait_us = 0;
	*new_tat_us = base + inc;
	if (*new_tat_us - now_us <= tolerance + GCRA_SLACK_US ||
	    base == now_us)
		return true;
	*wait_us = inc > tolerance ? base - now_us :
	    *new_tat_us - now_us - tolerance;
	*new_tat_us = base;
	return false;
}

void
ratelimit_bucket_at(const struct config_ratelimit *rule, double tat_us,
    double now_us, struct ratelimit_bucket *out)
{
	double interval = ratelimit_interval_us(rule);
	double ahead = tat_us > now_us ? tat_us - now_us : 0;
	double new_tat, wait;

	memset(out, 0, sizeof(*out));
	out->exists = tat_us > 0;
	out->level = ahead / interval;
	ratelimit_gcra(rule, tat_us, now_us, 1, &new_tat, &wait);
	out->seconds_until_free = wait / 1e6;
	out->seconds_until_empty = ahead / 1e6;
}

/* ------------------------------------------------------------ state */

static void
state_free(struct ratelimit_state *st)
{
	redis_pool_free(st->redis);
	netlist_free(st->skip_networks);
	rcptlist_free(st->skip_recipients);
	free(st);
}

static int
state_new(const struct config *cfg, struct ratelimit_state **out, char *err)
{
	struct ratelimit_state *st = mxg_calloc(1, sizeof(*st));
	struct strbuf text = STRBUF_INIT;
	char why[MXG_ERRLEN];

	st->cfg = cfg;
	if (redis_pool_new(cfg, &st->redis, err) != 0)
		goto fail;
	if (netlist_text_with_file(cfg->ratelimit.skip_networks,
	    cfg->ratelimit.skip_networks_file, &text, why) != 0 ||
	    netlist_parse(text.data, &st->skip_networks, why) != 0) {
		mxg_fail(err, MXG_EINVAL, "[ratelimit] skip_networks: %s", why);
		goto fail;
	}
	strbuf_reset(&text);
	if (netlist_text_with_file(cfg->ratelimit.skip_recipients,
	    cfg->ratelimit.skip_recipients_file, &text, why) != 0) {
		mxg_fail(err, MXG_EINVAL, "[ratelimit] skip_recipients: %s",
		    why);
		goto fail;
	}
	st->skip_recipients = rcptlist_parse(text.data);
	strbuf_free(&text);
	for (size_t i = 0; i < cfg->nratelimits; i++) {
		st->scores[i] = cfg->ratelimits[i].score;
		for (size_t k = 0; k < cfg->nscores; k++)
			if (strcmp(cfg->scores[k].symbol,
			    cfg->ratelimits[i].symbol) == 0)
				st->scores[i] = cfg->scores[k].score;
	}
	*out = st;
	return MXG_OK;
fail:
	strbuf_free(&text);
	state_free(st);
	return MXG_EINVAL;
}

/* The three checks of one config share one state, counted. */
static int
ratelimit_init(const struct check_env *env, void **out, char *err)
{
	struct ratelimit_state *st;
	int rc = MXG_OK;

	pthread_mutex_lock(&shared_lock);
	for (st = shared; st != NULL; st = st->next)
		if (st->cfg == env->cfg)
			break;
	if (st == NULL && (rc = state_new(env->cfg, &st, err)) == MXG_OK) {
		st->next = shared;
		shared = st;
	}
	if (rc == MXG_OK)
		st->refs++;
	pthread_mutex_unlock(&shared_lock);
	*out = rc == MXG_OK ? st : NULL;
	return rc;
}

static void
ratelimit_free(void *p)
{
	struct ratelimit_state *st = p;

	if (st == NULL)
		return;
	pthread_mutex_lock(&shared_lock);
	if (--st->refs == 0) {
		for (struct ratelimit_state **pp = &shared; *pp != NULL;
		    pp = &(*pp)->next)
			if (*pp == st) {
				*pp = st->next;
				break;
			}
		state_free(st);
	}
	pthread_mutex_unlock(&shared_lock);
}

static bool
ratelimit_has_symbol(void *p, const char *name)
{
	const struct ratelimit_state *st = p;

	for (size_t i = 0; i < st->cfg->nratelimits; i++)
		if (strcmp(st->cfg->ratelimits[i].symbol, name) == 0)
			return true;
	return false;
}

static void
message_data_release(void *data)
{
	free(data);
}

/* ------------------------------------------------------------ decisions */

static void
batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->e[i].value);
		free(b->e[i].key);
	}
	free(b->e);
	b->e = NULL;
	b->n = 0;
}

/* Adds units to a rule's bucket for value; the same bucket twice in one
 * request (two recipients in one domain) is one entry. */
static void
batch_add(const struct config *cfg, struct batch *b, size_t rule,
    const char *value, double units)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->e[i].rule == rule && strcmp(b->e[i].value, value) == 0) {
			b->e[i].units += units;
			return;
		}
	struct strbuf key = STRBUF_INIT;

	ratelimit_bucket_key(cfg, &cfg->ratelimits[rule], value, &key);
	b->e = mxg_realloc(b->e, (b->n + 1) * sizeof(*b->e));
	b->e[b->n].rule = rule;
	b->e[b->n].value = mxg_strdup(value);
	b->e[b->n].key = strbuf_steal(&key);
	b->e[b->n].units = units;
	b->n++;
}

/* Adds the rule's bucket for this transaction (and recipient), or logs
 * at debug why the rule does not apply. */
static void
batch_add_rule(const struct config *cfg, struct batch *b, size_t rule,
    const struct message *msg, const char *rcpt, double units)
{
	const struct config_ratelimit *r = &cfg->ratelimits[rule];
	struct strbuf value = STRBUF_INIT;

	if (ratelimit_key_value(cfg, r, msg, rcpt, &value))
		batch_add(cfg, b, rule, value.data, units);
	else if (log_enabled(LOG_LEVEL_DEBUG))
		log_msg(msg->queue_id, LOG_LEVEL_DEBUG, "ratelimit %s: no %s "
		    "in this transaction; rule not applied", r->name,
		    ratelimit_key_what(r->key));
	strbuf_free(&value);
}

static const char *
action_code(enum ratelimit_action action)
{
	return action == RATELIMIT_ACTION_REJECT ? "r" :
	    action == RATELIMIT_ACTION_SCORE ? "s" : "d";
}

/* Checks the script's reply; fills d. False for a reply of the wrong
 * shape (Redis answering garbage). */
static bool
read_reply(const redisReply *r, size_t n, struct decision *d)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_INTEGER ||
	    r->element[2]->type != REDIS_REPLY_INTEGER)
		return false;
	const char *status = r->element[0]->str;
	long long index = r->element[1]->integer;
	long long wait_us = r->element[2]->integer;

	if (strcmp(status, "refuse") == 0) {
		if (r->elements != 3 || index < 1 || (size_t)index > n ||
		    wait_us < 0)
			return false;
		d->outcome = OUTCOME_REFUSE;
		d->refused = (size_t)index - 1;
		d->seconds = (long)((wait_us + 999999) / 1000000);
		if (d->seconds < 1)
			d->seconds = 1;
		return true;
	}
	if (strcmp(status, "ok") != 0)
		return false;
	d->over = mxg_calloc(r->elements, sizeof(*d->over));
	for (size_t i = 3; i < r->elements; i++) {
		const redisReply *e = r->element[i];

		if (e->type != REDIS_REPLY_INTEGER || e->integer < 1 ||
		    (size_t)e->integer > n)
			return false;
		d->over[d->nover++] = (size_t)e->integer - 1;
	}
	d->outcome = OUTCOME_PASS;
	return true;
}

/* Every bucket of the batch in one script. */
static void
decide(struct ratelimit_state *st, const struct batch *b, struct decision *d)
{
	const struct config *cfg = st->cfg;
	size_t argc = b->n * 5;
	const char **argv = mxg_calloc(argc, sizeof(*argv));
	size_t *argvlen = mxg_calloc(argc, sizeof(*argvlen));
	char (*num)[32] = mxg_calloc(b->n * 3, sizeof(*num));
	redisReply *r;

	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < b->n; i++) {
		const struct config_ratelimit *rule =
		    &cfg->ratelimits[b->e[i].rule];
		double interval = ratelimit_interval_us(rule);
		const char **arg = &argv[b->n + 4 * i];

		argv[i] = b->e[i].key;
		snprintf(num[3 * i], sizeof(num[0]), "%.17g", interval);
		snprintf(num[3 * i + 1], sizeof(num[0]), "%.17g",
		    rule->burst * interval);
		snprintf(num[3 * i + 2], sizeof(num[0]), "%.17g",
		    b->e[i].units);
		arg[0] = num[3 * i];
		arg[1] = num[3 * i + 1];
		arg[2] = num[3 * i + 2];
		arg[3] = action_code(rule->action);
	}
	for (size_t i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	r = redis_run_script(st->redis, &decide_script, (int)b->n, argv,
	    argvlen, (int)argc, d->error);
	free(argv);
	free(argvlen);
	free(num);
	if (r == NULL) {
		d->outcome = OUTCOME_ERROR;
		return;
	}
	if (!read_reply(r, b->n, d)) {
		free(d->over);
		d->over = NULL;
		d->nover = 0;
		d->outcome = OUTCOME_ERROR;
		snprintf(d->error, sizeof(d->error), "unexpected reply from "
		    "the rate limit script");
	}
	freeReplyObject(r);
}

/* "client 192.0.2.7" */
static void
entry_what(const struct config *cfg, const struct entry *e, char *buf,
    size_t len)
{
	snprintf(buf, len, "%s %s",
	    ratelimit_key_what(cfg->ratelimits[e->rule].key), e->value);
}

/* Symbols of the score rules over their limit; the symbol once per
 * message whatever the number of recipients. */
static void
add_over_symbols(struct ratelimit_state *st, struct scan *scan,
    const struct batch *b, const struct decision *d)
{
	for (size_t i = 0; i < d->nover; i++) {
		const struct entry *e = &b->e[d->over[i]];
		const struct config_ratelimit *rule =
		    &st->cfg->ratelimits[e->rule];
		char what[300], rate[48], detail[400];

		metrics_check_result("ratelimit", "score");
		if (verdict_find_symbol(scan->verdict, rule->symbol) != NULL)
			continue;
		entry_what(st->cfg, e, what, sizeof(what));
		ratelimit_rate_text(rule, rate, sizeof(rate));
		snprintf(detail, sizeof(detail), "%s over %s", what, rate);
		scan_add_scored_symbol(scan, rule->symbol, st->scores[e->rule],
		    detail);
	}
}

/* How a refusal or a failure is answered at this stage. */
enum answer_at {
	ANSWER_RCPT,		/* refuse the recipient */
	ANSWER_VERDICT,		/* force the verdict */
};

static void
refuse(struct scan *scan, enum answer_at at, bool reject, const char *text)
{
	if (at == ANSWER_RCPT && reject)
		scan_refuse_rcpt(scan, true, "5.7.1", "%s", text);
	else if (at == ANSWER_RCPT)
		scan_refuse_rcpt_code(scan, "450", "4.7.1", "%s", text);
	else if (reject)
		verdict_force(scan->verdict, VERDICT_REJECT, "5.7.1", "%s",
		    text);
	else
		verdict_force_code(scan->verdict, VERDICT_TEMPFAIL, "450",
		    "4.7.1", "%s", text);
}

/* Runs the batch and answers: a refusal, on_error, or symbols. Returns
 * true when the request passed (its buckets are charged). */
static bool
judge(struct ratelimit_state *st, struct scan *scan, const struct batch *b,
    enum answer_at at)
{
	struct decision d;

	if (b->n == 0)
		return true;
	decide(st, b, &d);
	switch (d.outcome) {
	case OUTCOME_PASS:
		metrics_check_result("ratelimit", "pass");
		add_over_symbols(st, scan, b, &d);
		free(d.over);
		return true;
	case OUTCOME_REFUSE: {
		const struct entry *e = &b->e[d.refused];
		bool reject = st->cfg->ratelimits[e->rule].action ==
		    RATELIMIT_ACTION_REJECT;
		char what[300], text[400];

		metrics_check_result("ratelimit", reject ? "reject" : "defer");
		entry_what(st->cfg, e, what, sizeof(what));
		if (reject)
			snprintf(text, sizeof(text), "Rate limit exceeded for "
			    "%s", what);
		else
			snprintf(text, sizeof(text), "Rate limit exceeded for "
			    "%s, try again in %ld seconds", what, d.seconds);
		refuse(scan, at, reject, text);
		return false;
	}
	case OUTCOME_ERROR:
		break;
	}
	metrics_check_result("ratelimit", "error");
	if (verdict_find_symbol(scan->verdict, "RATELIMIT_ERROR") == NULL)
		scan_add_symbol(scan, "RATELIMIT_ERROR", d.error);
	if (st->cfg->ratelimit.on_error == ON_ERROR_TEMPFAIL) {
		if (at == ANSWER_RCPT)
			scan_refuse_rcpt(scan, false, "4.3.0", "Rate limiting "
			    "is temporarily unavailable, try again later");
		else
			verdict_force(scan->verdict, VERDICT_TEMPFAIL, "4.3.0",
			    "Rate limiting is temporarily unavailable, try "
			    "again later");
		return false;
	}
	return true;
}

/* Why this client is exempt from every rule, or NULL. */
static const char *
client_exempt(const struct ratelimit_state *st, const struct message *msg)
{
	if (netlist_contains(st->skip_networks, msg))
		return "client network";
	if (st->cfg->ratelimit.skip_authenticated && msg->auth_user != NULL &&
	    *msg->auth_user != '\0')
		return "authenticated client";
	return NULL;
}

static void
log_exempt(const struct message *msg, const char *why)
{
	metrics_check_result("ratelimit", "skip");
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_msg(msg->queue_id, LOG_LEVEL_DEBUG, "ratelimit: exempt "
		    "(%s)", why);
}

/* count = connections, at the real connect only (see engine.h). */
static void
ratelimit_connect_run(void *p, struct scan *scan)
{
	struct ratelimit_state *st = p;
	const struct config *cfg = st->cfg;
	struct batch b = {NULL, 0};
	const char *why;

	if (scan->stage_asked != STAGE_CONNECT)
		return;
	if ((why = client_exempt(st, scan->msg)) != NULL) {
		log_exempt(scan->msg, why);
		return;
	}
	for (size_t i = 0; i < cfg->nratelimits; i++)
		if (cfg->ratelimits[i].count == RATELIMIT_COUNT_CONNECTIONS)
			batch_add_rule(cfg, &b, i, scan->msg, NULL, 1);
	judge(st, scan, &b, ANSWER_VERDICT);
	batch_free(&b);
}

/* Whether the messages rules have counted this message: per instance in
 * the policy server (whose scan is reset at every request), per scan in
 * the milter. */
static bool
message_counted(struct scan *scan)
{
	const char *instance = scan->msg->instance;

	if (instance != NULL)
		return scan->ratelimit_counted_instance != NULL &&
		    strcmp(scan->ratelimit_counted_instance, instance) == 0;
	struct ratelimit_message *m =
	    *scan_check_data(scan, &ratelimit_rcpt_check);
	return m != NULL && m->counted;
}

static void
message_set_counted(struct scan *scan)
{
	const char *instance = scan->msg->instance;

	if (instance != NULL) {
		free(scan->ratelimit_counted_instance);
		scan->ratelimit_counted_instance = mxg_strdup(instance);
		return;
	}
	void **slot = scan_check_data(scan, &ratelimit_rcpt_check);
	if (*slot == NULL)
		*slot = mxg_calloc(1, sizeof(struct ratelimit_message));
	((struct ratelimit_message *)*slot)->counted = true;
}

/* count = recipients at each recipient, count = messages at the first
 * accepted one, after greylisting. */
static void
ratelimit_rcpt_run(void *p, struct scan *scan)
{
	struct ratelimit_state *st = p;
	const struct config *cfg = st->cfg;
	const char *rcpt = scan->current_rcpt, *why;
	struct batch b = {NULL, 0};
	bool counted, charges_message = false;

	if (scan->rcpt_refused_now || rcpt == NULL)
		return;
	why = client_exempt(st, scan->msg);
	if (why == NULL && rcptlist_matches(st->skip_recipients, rcpt))
		why = "recipient";
	if (why != NULL) {
		log_exempt(scan->msg, why);
		return;
	}
	counted = message_counted(scan);
	for (size_t i = 0; i < cfg->nratelimits; i++) {
		const struct config_ratelimit *r = &cfg->ratelimits[i];
		bool per_rcpt = r->count == RATELIMIT_COUNT_RECIPIENTS ||
		    (r->count == RATELIMIT_COUNT_MESSAGES &&
		    is_rcpt_key(r->key));

		if (per_rcpt)
			batch_add_rule(cfg, &b, i, scan->msg, rcpt, 1);
		else if (r->count == RATELIMIT_COUNT_MESSAGES && !counted) {
			size_t before = b.n;

			batch_add_rule(cfg, &b, i, scan->msg, rcpt, 1);
			charges_message |= b.n > before;
		}
	}
	if (judge(st, scan, &b, ANSWER_RCPT) && charges_message &&
	    !scan->rcpt_refused_now)
		message_set_counted(scan);
	batch_free(&b);
}

/* count = bytes at end of message. */
static void
ratelimit_size_run(void *p, struct scan *scan)
{
	struct ratelimit_state *st = p;
	const struct config *cfg = st->cfg;
	const struct message *msg = scan->msg;
	double size = (double)message_size(msg);
	struct batch b = {NULL, 0};
	size_t exempt = 0;
	const char *why;

	if (size <= 0) {
		if (log_enabled(LOG_LEVEL_DEBUG))
			log_msg(msg->queue_id, LOG_LEVEL_DEBUG, "ratelimit: no "
			    "message size; bytes not counted");
		return;
	}
	if ((why = client_exempt(st, msg)) != NULL) {
		log_exempt(msg, why);
		return;
	}
	for (size_t k = 0; k < msg->nrcpts; k++)
		exempt += rcptlist_matches(st->skip_recipients, msg->rcpts[k]);
	if (msg->nrcpts > 0 && exempt == msg->nrcpts) {
		log_exempt(msg, "every recipient");
		return;
	}
	for (size_t i = 0; i < cfg->nratelimits; i++) {
		const struct config_ratelimit *r = &cfg->ratelimits[i];

		if (r->count != RATELIMIT_COUNT_BYTES)
			continue;
		if (!is_rcpt_key(r->key) || msg->nrcpts == 0) {
			batch_add_rule(cfg, &b, i, msg, NULL, size);
			continue;
		}
		for (size_t k = 0; k < msg->nrcpts; k++)
			if (!rcptlist_matches(st->skip_recipients,
			    msg->rcpts[k]))
				batch_add_rule(cfg, &b, i, msg, msg->rcpts[k],
				    size);
	}
	judge(st, scan, &b, ANSWER_VERDICT);
	batch_free(&b);
}

static bool
counts(const struct config *cfg, enum ratelimit_count count)
{
	if (!cfg->ratelimit.enabled)
		return false;
	for (size_t i = 0; i < cfg->nratelimits; i++)
		if (cfg->ratelimits[i].count == count)
			return true;
	return false;
}

static bool
connect_enabled(const struct config *cfg)
{
	return counts(cfg, RATELIMIT_COUNT_CONNECTIONS);
}

static bool
rcpt_enabled(const struct config *cfg)
{
	return counts(cfg, RATELIMIT_COUNT_MESSAGES) ||
	    counts(cfg, RATELIMIT_COUNT_RECIPIENTS);
}

static bool
size_enabled(const struct config *cfg)
{
	return counts(cfg, RATELIMIT_COUNT_BYTES);
}

const struct check ratelimit_connect_check = {
	.name = "ratelimit_connect",
	.section = "ratelimit",
	.stage = STAGE_CONNECT,
	.symbols = ratelimit_symbols,
	.enabled = connect_enabled,
	.init = ratelimit_init,
	.run = ratelimit_connect_run,
	.has_symbol = ratelimit_has_symbol,
	.free = ratelimit_free,
};

const struct check ratelimit_rcpt_check = {
	.name = "ratelimit_rcpt",
	.section = "ratelimit",
	.stage = STAGE_RCPT,
	.symbols = no_symbols,
	.enabled = rcpt_enabled,
	.init = ratelimit_init,
	.run = ratelimit_rcpt_run,
	.release = message_data_release,
	.has_symbol = ratelimit_has_symbol,
	.free = ratelimit_free,
};

const struct check ratelimit_size_check = {
	.name = "ratelimit_size",
	.section = "ratelimit",
	.stage = STAGE_EOM,
	.symbols = no_symbols,
	.enabled = size_enabled,
	.init = ratelimit_init,
	.run = ratelimit_size_run,
	.has_symbol = ratelimit_has_symbol,
	.free = ratelimit_free,
};
