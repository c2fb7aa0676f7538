#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mxg.h"

#ifndef MXG_RULESDIR
#define MXG_RULESDIR "/usr/local/share/mxguard/rules"
#endif

/* inih reads lines into a buffer of INI_MAX_LINE bytes; anything longer
 * would be split silently, so the reader below refuses it instead. */
#define CONFIG_LINE_MAX INI_MAX_LINE

int
config_parse_bool(const char *text, bool *out)
{
	static const char *yes[] = {"yes", "true", "on", "1"};
	static const char *no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(text, no[i]) == 0)
			return *out = false, 0;
	}
	return -1;
}

/* A number followed by one of the given unit names; returns the number
 * times the unit's multiplier. */
struct unit {
	const char *name;
	double factor;
};

static int
parse_with_unit(const char *text, const struct unit *units, double *out)
{
	char *end;
	double value;

	errno = 0;
	value = strtod(text, &end);
	if (end == text || errno != 0 || !isfinite(value) || value < 0)
		return -1;
	while (*end == ' ')
		end++;
	for (const struct unit *u = units; u->name != NULL; u++)
		if (strcasecmp(end, u->name) == 0) {
			*out = value * u->factor;
			return 0;
		}
	return -1;
}

int
config_parse_duration_ms(const char *text, long *out)
{
	static const struct unit units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000},
		{"h", 3600000}, {"d", 86400000}, {NULL, 0},
	};
	double ms;

	if (parse_with_unit(text, units, &ms) < 0 || ms > 1e12)
		return -1;
	*out = (long)ms;
	return 0;
}

int
config_parse_size(const char *text, size_t *out)
{
	static const struct unit units[] = {
		{"", 1}, {"b", 1}, {"k", 1024}, {"m", 1048576},
		{"g", 1073741824.0}, {NULL, 0},
	};
	double bytes;

	if (parse_with_unit(text, units, &bytes) < 0 || bytes > 1e15)
		return -1;
	*out = (size_t)bytes;
	return 0;
}

int
config_parse_double(const char *text, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(text, &end);
	if (end == text || *end != '\0' || errno != 0 || !isfinite(*out))
		return -1;
	return 0;
}

/* Counts of events or bytes in rates and bursts: decimal K, M, G. */
static const struct unit count_units[] = {
	{"", 1}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {NULL, 0},
};

int
config_parse_rate(const char *text, double max, double *limit,
    long *period_ms)
{
	const char *slash = strchr(text, '/');
	char amount[64], period[64];
	double n;

	if (slash == NULL || slash == text ||
	    (size_t)(slash - text) >= sizeof(amount) ||
	    strlen(slash + 1) >= sizeof(period) - 1)
		return -1;
	snprintf(amount, sizeof(amount), "%.*s", (int)(slash - text), text);
	/* "20/m" means one minute; "5/10s" ten seconds. */
	snprintf(period, sizeof(period), "%s%s",
	    isdigit((unsigned char)slash[1]) ? "" : "1", slash + 1);
	if (!isdigit((unsigned char)amount[0]) ||
	    parse_with_unit(amount, count_units, &n) < 0 || n < 1 || n > max ||
	    n != floor(n))
		return -1;
	if (config_parse_duration_ms(period, period_ms) < 0 ||
	    *period_ms < 1000 || *period_ms > 365 * 86400000L)
		return -1;
	*limit = n;
	return 0;
}

static const char *const ratelimit_key_names[] = {"client_ip", "client_net",
    "sender", "sender_domain", "sasl_user", "rcpt", "rcpt_domain", NULL};
static const char *const ratelimit_count_names[] = {"connections",
    "messages", "recipients", "bytes", NULL};
static const char *const ratelimit_action_names[] = {"defer", "reject",
    "score", NULL};

const char *
config_ratelimit_key_name(enum ratelimit_key key)
{
	return ratelimit_key_names[key];
}

const char *
config_ratelimit_count_name(enum ratelimit_count count)
{
	return ratelimit_count_names[count];
}

const char *
config_ratelimit_action_name(enum ratelimit_action action)
{
	return ratelimit_action_names[action];
}

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->milter.socket = mxg_strdup("inet:8891@127.0.0.1");
	cfg->milter.body_scan_limit = 2 * 1024 * 1024;
	cfg->milter.header_limit = 64 * 1024;
	cfg->milter.timeout_ms = 300000;
	cfg->milter.log_level = LOG_LEVEL_INFO;
	cfg->milter.loopback_trusted = true;
	cfg->milter.socket_mode = 0660;
	cfg->log.format = LOG_FORMAT_TEXT;
	cfg->ratelimit.enabled = true;
	cfg->ratelimit.on_error = ON_ERROR_ACCEPT;
	cfg->ratelimit.skip_authenticated = false;
	cfg->dns.timeout_ms = 5000;
	cfg->dns.on_error = ON_ERROR_TEMPFAIL;
	cfg->spf.enabled = true;
	cfg->spf.reject_fail = false;
	cfg->spf.received_spf = false;
	cfg->spf.void_lookup_limit = 2;
	cfg->dkim.enabled = true;
	cfg->dkim.allow_sha1 = false;
	cfg->dkim.min_key_bits = 1024;
	cfg->dkim.max_signatures = 5;
	cfg->dmarc.enabled = true;
	cfg->dmarc.discovery = DMARC_DISCOVERY_TREEWALK;
	cfg->dmarc.public_suffix_list =
	    mxg_strdup("/usr/share/publicsuffix/public_suffix_list.dat");
	cfg->dmarc.enforce = true;
	cfg->dmarc.quarantine = DMARC_QUARANTINE_SCORE;
	cfg->dmarc.multiple_from = DMARC_MULTIPLE_FROM_REJECT;
	cfg->redis.server = mxg_strdup("127.0.0.1:6379");
	cfg->redis.connect_timeout_ms = 1000;
	cfg->redis.command_timeout_ms = 1000;
	cfg->redis.prefix = mxg_strdup("mxg:");
	cfg->greylist.enabled = false;
	cfg->greylist.mode = GREYLIST_MODE_TRIPLET;
	cfg->greylist.delay_ms = 300 * 1000L;
	cfg->greylist.retry_window_ms = 2 * 86400 * 1000L;
	cfg->greylist.max_age_ms = 35 * 86400 * 1000L;
	cfg->greylist.auto_whitelist = 5;
	cfg->greylist.ipv4_prefix = 24;
	cfg->greylist.ipv6_prefix = 64;
	cfg->greylist.normalize_sender = true;
	cfg->greylist.skip_recipients = mxg_strdup("postmaster@ abuse@");
	cfg->greylist.skip_authenticated = true;
	cfg->greylist.on_error = ON_ERROR_ACCEPT;
	cfg->rules.enabled = true;
	cfg->rules.files = mxg_strdup(MXG_RULESDIR "/*.rules");
	cfg->rules.score_set = -1;
	cfg->rules.max_scan_size = 2 * 1024 * 1024;
	cfg->rules.max_parts = 100;
	cfg->rules.max_depth = 20;
	cfg->rules.max_uris = 500;
	cfg->rules.match_limit = 100000;
	cfg->rules.depth_limit = 10000;
	cfg->policy.listen = mxg_strdup("inet:10040@127.0.0.1");
	cfg->policy.allow = mxg_strdup("127.0.0.0/8 ::1");
	cfg->policy.max_line = 4096;
	cfg->policy.max_request = 64 * 1024;
	cfg->policy.max_attributes = 100;
	cfg->policy.idle_timeout_ms = 300 * 1000L;
	cfg->policy.max_connections = 256;
	cfg->actions.greylist = 4.0;
	cfg->dnsbl.enabled = true;
	cfg->dnsbl.max_queries = 20;
	cfg->actions.add_header = 6.0;
	cfg->actions.rewrite_subject = CONFIG_THRESHOLD_OFF;
	cfg->actions.subject_prefix = mxg_strdup("***SPAM***");
	cfg->actions.tempfail = CONFIG_THRESHOLD_OFF;
	cfg->actions.reject = 15.0;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	config_release(cfg);
	free(cfg);
}

void
config_release(struct config *cfg)
{
	free(cfg->path);
	free(cfg->milter.socket);
	free(cfg->milter.pidfile);
	free(cfg->milter.authserv_id);
	free(cfg->milter.user);
	free(cfg->milter.group);
	free(cfg->metrics.listen);
	free(cfg->metrics.policy_listen);
	free(cfg->ratelimit.skip_networks);
	free(cfg->ratelimit.skip_networks_file);
	free(cfg->ratelimit.skip_recipients);
	free(cfg->ratelimit.skip_recipients_file);
	for (size_t i = 0; i < cfg->nratelimits; i++) {
		free(cfg->ratelimits[i].name);
		free(cfg->ratelimits[i].symbol);
	}
	free(cfg->dns.nameserver);
	free(cfg->rules.files);
	free(cfg->actions.subject_prefix);
	free(cfg->policy.listen);
	free(cfg->policy.allow);
	free(cfg->policy.pidfile);
	free(cfg->redis.server);
	free(cfg->redis.password);
	free(cfg->redis.prefix);
	free(cfg->greylist.skip_networks);
	free(cfg->greylist.skip_networks_file);
	free(cfg->greylist.skip_hostnames);
	free(cfg->greylist.skip_hostnames_file);
	free(cfg->greylist.skip_recipients);
	free(cfg->greylist.skip_recipients_file);
	free(cfg->greylist.skip_spf_pass_domains);
	free(cfg->dmarc.public_suffix_list);
	free(cfg->dmarc.exempt_networks);
	free(cfg->dmarc.exempt_domains);
	for (size_t i = 0; i < cfg->nscores; i++)
		free(cfg->scores[i].symbol);
	for (size_t i = 0; i < cfg->ndnsbls; i++) {
		free(cfg->dnsbls[i].name);
		free(cfg->dnsbls[i].zone);
		free(cfg->dnsbls[i].codes);
		free(cfg->dnsbls[i].symbol);
	}
	memset(cfg, 0, sizeof(*cfg));
}

/*
 * The key table: every key of every section, its type and where it lands.
 * One table, so that an unknown key is an error and the example config
 * can be checked against it.
 */
enum value_type {
	VALUE_STRING,		/* char *, empty means NULL */
	VALUE_BOOL,
	VALUE_DURATION_MS,	/* long */
	VALUE_SIZE,		/* size_t */
	VALUE_THRESHOLD,	/* double or off */
	VALUE_COUNT,		/* int >= 0 */
	VALUE_ON_ERROR,
	VALUE_LOG_LEVEL,
	VALUE_SOCKET,		/* char *, syntax-checked */
	VALUE_CHOICE,		/* an enum (int): the index in choices */
	VALUE_MODE,		/* int: octal file mode, 0 to 0777 */
	VALUE_HOSTPORT,		/* char *: HOST:PORT, [V6]:PORT */
};

struct key {
	const char *section;
	const char *name;
	enum value_type type;
	size_t offset;
	const char *const *choices;	/* VALUE_CHOICE: names, NULL-ended */
};

#define KEY(sec, name, type, field) \
	{sec, name, type, offsetof(struct config, field), NULL}
#define CHOICE(sec, name, field, names) \
	{sec, name, VALUE_CHOICE, offsetof(struct config, field), names}

static const char *const discovery_names[] = {"treewalk", "psl", NULL};
static const char *const greylist_mode_names[] = {"triplet", "score", NULL};
/* Index 0 is "auto": stored as -1 (see set_value's VALUE_CHOICE). */
static const char *const score_set_names[] = {"auto", "0", "1", "2", "3",
    NULL};
static const char *const quarantine_names[] = {"score", "hold", NULL};
static const char *const multiple_from_names[] = {"reject", "score", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};

static const struct key config_keys[] = {
	KEY("milter", "socket", VALUE_SOCKET, milter.socket),
	KEY("milter", "pidfile", VALUE_STRING, milter.pidfile),
	KEY("milter", "authserv_id", VALUE_STRING, milter.authserv_id),
	KEY("milter", "body_scan_limit", VALUE_SIZE, milter.body_scan_limit),
	KEY("milter", "header_limit", VALUE_SIZE, milter.header_limit),
	KEY("milter", "timeout", VALUE_DURATION_MS, milter.timeout_ms),
	KEY("milter", "log_level", VALUE_LOG_LEVEL, milter.log_level),
	KEY("milter", "loopback_trusted", VALUE_BOOL, milter.loopback_trusted),
	KEY("milter", "user", VALUE_STRING, milter.user),
	KEY("milter", "group", VALUE_STRING, milter.group),
	KEY("milter", "socket_mode", VALUE_MODE, milter.socket_mode),
	KEY("log", "level", VALUE_LOG_LEVEL, milter.log_level),
	CHOICE("log", "format", log.format, log_format_names),
	KEY("metrics", "listen", VALUE_HOSTPORT, metrics.listen),
	KEY("metrics", "policy_listen", VALUE_HOSTPORT, metrics.policy_listen),
	KEY("ratelimit", "enabled", VALUE_BOOL, ratelimit.enabled),
	KEY("ratelimit", "on_error", VALUE_ON_ERROR, ratelimit.on_error),
	KEY("ratelimit", "skip_networks", VALUE_STRING, ratelimit.skip_networks),
	KEY("ratelimit", "skip_networks_file", VALUE_STRING,
	    ratelimit.skip_networks_file),
	KEY("ratelimit", "skip_recipients", VALUE_STRING,
	    ratelimit.skip_recipients),
	KEY("ratelimit", "skip_recipients_file", VALUE_STRING,
	    ratelimit.skip_recipients_file),
	KEY("ratelimit", "skip_authenticated", VALUE_BOOL,
	    ratelimit.skip_authenticated),
	KEY("dns", "nameserver", VALUE_STRING, dns.nameserver),
	KEY("dns", "timeout", VALUE_DURATION_MS, dns.timeout_ms),
	KEY("dns", "on_error", VALUE_ON_ERROR, dns.on_error),
	KEY("spf", "enabled", VALUE_BOOL, spf.enabled),
	KEY("spf", "reject_fail", VALUE_BOOL, spf.reject_fail),
	KEY("spf", "received_spf", VALUE_BOOL, spf.received_spf),
	KEY("spf", "void_lookup_limit", VALUE_COUNT, spf.void_lookup_limit),
	KEY("dkim", "enabled", VALUE_BOOL, dkim.enabled),
	KEY("dkim", "allow_sha1", VALUE_BOOL, dkim.allow_sha1),
	KEY("dkim", "min_key_bits", VALUE_COUNT, dkim.min_key_bits),
	KEY("dkim", "max_signatures", VALUE_COUNT, dkim.max_signatures),
	KEY("dmarc", "enabled", VALUE_BOOL, dmarc.enabled),
	CHOICE("dmarc", "discovery", dmarc.discovery, discovery_names),
	KEY("dmarc", "public_suffix_list", VALUE_STRING, dmarc.public_suffix_list),
	KEY("dmarc", "enforce", VALUE_BOOL, dmarc.enforce),
	CHOICE("dmarc", "quarantine", dmarc.quarantine, quarantine_names),
	CHOICE("dmarc", "multiple_from", dmarc.multiple_from,
	    multiple_from_names),
	KEY("dmarc", "exempt_networks", VALUE_STRING, dmarc.exempt_networks),
	KEY("dmarc", "exempt_domains", VALUE_STRING, dmarc.exempt_domains),
	KEY("redis", "server", VALUE_STRING, redis.server),
	KEY("redis", "password", VALUE_STRING, redis.password),
	KEY("redis", "database", VALUE_COUNT, redis.database),
	KEY("redis", "connect_timeout", VALUE_DURATION_MS,
	    redis.connect_timeout_ms),
	KEY("redis", "command_timeout", VALUE_DURATION_MS,
	    redis.command_timeout_ms),
	KEY("redis", "prefix", VALUE_STRING, redis.prefix),
	KEY("greylist", "enabled", VALUE_BOOL, greylist.enabled),
	CHOICE("greylist", "mode", greylist.mode, greylist_mode_names),
	KEY("greylist", "delay", VALUE_DURATION_MS, greylist.delay_ms),
	KEY("greylist", "retry_window", VALUE_DURATION_MS,
	    greylist.retry_window_ms),
	KEY("greylist", "max_age", VALUE_DURATION_MS, greylist.max_age_ms),
	KEY("greylist", "auto_whitelist", VALUE_COUNT, greylist.auto_whitelist),
	KEY("greylist", "ipv4_prefix", VALUE_COUNT, greylist.ipv4_prefix),
	KEY("greylist", "ipv6_prefix", VALUE_COUNT, greylist.ipv6_prefix),
	KEY("greylist", "normalize_sender", VALUE_BOOL,
	    greylist.normalize_sender),
	KEY("greylist", "skip_networks", VALUE_STRING, greylist.skip_networks),
	KEY("greylist", "skip_networks_file", VALUE_STRING,
	    greylist.skip_networks_file),
	KEY("greylist", "skip_hostnames", VALUE_STRING,
	    greylist.skip_hostnames),
	KEY("greylist", "skip_hostnames_file", VALUE_STRING,
	    greylist.skip_hostnames_file),
	KEY("greylist", "skip_recipients", VALUE_STRING,
	    greylist.skip_recipients),
	KEY("greylist", "skip_recipients_file", VALUE_STRING,
	    greylist.skip_recipients_file),
	KEY("greylist", "skip_authenticated", VALUE_BOOL,
	    greylist.skip_authenticated),
	KEY("greylist", "skip_spf_pass_domains", VALUE_STRING,
	    greylist.skip_spf_pass_domains),
	KEY("greylist", "on_error", VALUE_ON_ERROR, greylist.on_error),
	KEY("rules", "enabled", VALUE_BOOL, rules.enabled),
	KEY("rules", "files", VALUE_STRING, rules.files),
	CHOICE("rules", "score_set", rules.score_set, score_set_names),
	KEY("rules", "max_scan_size", VALUE_SIZE, rules.max_scan_size),
	KEY("rules", "max_parts", VALUE_COUNT, rules.max_parts),
	KEY("rules", "max_depth", VALUE_COUNT, rules.max_depth),
	KEY("rules", "max_uris", VALUE_COUNT, rules.max_uris),
	KEY("rules", "match_limit", VALUE_COUNT, rules.match_limit),
	KEY("rules", "depth_limit", VALUE_COUNT, rules.depth_limit),
	KEY("policy", "listen", VALUE_SOCKET, policy.listen),
	KEY("policy", "allow", VALUE_STRING, policy.allow),
	KEY("policy", "pidfile", VALUE_STRING, policy.pidfile),
	KEY("policy", "max_line", VALUE_SIZE, policy.max_line),
	KEY("policy", "max_request", VALUE_SIZE, policy.max_request),
	KEY("policy", "max_attributes", VALUE_COUNT, policy.max_attributes),
	KEY("policy", "idle_timeout", VALUE_DURATION_MS, policy.idle_timeout_ms),
	KEY("policy", "max_connections", VALUE_COUNT, policy.max_connections),
	KEY("dnsbl", "enabled", VALUE_BOOL, dnsbl.enabled),
	KEY("dnsbl", "max_queries", VALUE_COUNT, dnsbl.max_queries),
	KEY("actions", "greylist", VALUE_THRESHOLD, actions.greylist),
	KEY("actions", "add_header", VALUE_THRESHOLD, actions.add_header),
	KEY("actions", "rewrite_subject", VALUE_THRESHOLD,
	    actions.rewrite_subject),
	KEY("actions", "subject_prefix", VALUE_STRING, actions.subject_prefix),
	KEY("actions", "tempfail", VALUE_THRESHOLD, actions.tempfail),
	KEY("actions", "reject", VALUE_THRESHOLD, actions.reject),
};

/* inet:PORT@HOST, inet6:PORT@HOST, unix:PATH (or local:PATH). */
static int
socket_spec_valid(const char *spec)
{
	const char *rest;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		rest = strchr(spec, ':') + 1;
		return rest[0] == '/' && strlen(rest) < 108;
	}
	if (strncmp(spec, "inet:", 5) == 0)
		rest = spec + 5;
	else if (strncmp(spec, "inet6:", 6) == 0)
		rest = spec + 6;
	else
		return 0;
	char *end;
	long port = strtol(rest, &end, 10);
	if (end == rest || port < 1 || port > 65535)
		return 0;
	return *end == '\0' || (*end == '@' && end[1] != '\0');
}

/* HOST:PORT or [IPV6]:PORT, for listeners that are not milter sockets. */
static int
hostport_valid(const char *spec)
{
	const char *colon = strrchr(spec, ':');
	char *end;
	long port;

	if (colon == NULL || colon == spec)
		return 0;
	if (spec[0] == '[' && colon[-1] != ']')
		return 0;
	port = strtol(colon + 1, &end, 10);
	return end != colon + 1 && *end == '\0' && port >= 1 && port <= 65535;
}

struct parse_state {
	struct config *cfg;
	const char *path;
	FILE *fp;
	int line;
	bool continuation;	/* the line just read started with white space */
	char last_section[64];
	char last_key[64];
	int section_line;	/* of the last [section] header */
	char *error;		/* first error, "path:line: ..." */
	int error_line;
};

static int
parse_error(struct parse_state *st, const char *fmt, const char *a,
    const char *b)
{
	char msg[MXG_ERRLEN / 2];

	if (st->error != NULL)
		return 0;
	snprintf(msg, sizeof(msg), fmt, a, b);
	/* Text from the file may be anything: keep the message printable. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			*p = '?';
	st->error = mxg_malloc(MXG_ERRLEN);
	st->error_line = st->line;
	snprintf(st->error, MXG_ERRLEN, "%s:%d: %s", st->path, st->line, msg);
	return 0;
}

static int
set_score(struct parse_state *st, const char *symbol, const char *value)
{
	struct config *cfg = st->cfg;
	double score;

	if (config_parse_double(value, &score) < 0)
		return parse_error(st, "[scores] %s: '%s' is not a number",
		    symbol, value);
	for (size_t i = 0; i < cfg->nscores; i++)
		if (strcmp(cfg->scores[i].symbol, symbol) == 0) {
			cfg->scores[i].score = score;
			cfg->scores[i].line = st->line;
			return 1;
		}
	if (cfg->nscores == CONFIG_MAX_SCORES)
		return parse_error(st, "[scores] %s: more than %s overrides",
		    symbol, "256");
	cfg->scores[cfg->nscores].symbol = mxg_strdup(symbol);
	cfg->scores[cfg->nscores].score = score;
	cfg->scores[cfg->nscores].line = st->line;
	cfg->nscores++;
	return 1;
}

static bool
section_name_valid(const char *name)
{
	return *name != '\0' && strlen(name) <= 40 && strspn(name,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
	    strlen(name);
}

static int
choice_index(const char *const *names, const char *value)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], value) == 0)
			return i;
	return -1;
}

/* A key of a `[dnsbl NAME]` section; the list is created on first use. */
static int
set_dnsbl_key(struct parse_state *st, const char *list_name, const char *name,
    const char *value)
{
	struct config *cfg = st->cfg;
	struct config_dnsbl *d = NULL;
	double score;

	if (!section_name_valid(list_name))
		return parse_error(st, "[dnsbl %s]: a list name is letters, "
		    "digits, - and _%s", list_name, "");
	for (size_t i = 0; i < cfg->ndnsbls; i++)
		if (strcmp(cfg->dnsbls[i].name, list_name) == 0)
			d = &cfg->dnsbls[i];
	if (d == NULL) {
		if (cfg->ndnsbls == CONFIG_MAX_DNSBLS)
			return parse_error(st, "more than %s [dnsbl] lists%s",
			    "32", "");
		d = &cfg->dnsbls[cfg->ndnsbls++];
		memset(d, 0, sizeof(*d));
		d->name = mxg_strdup(list_name);
		d->score = 1.0;
		d->line = st->line;
	}
	if (strcmp(name, "zone") == 0) {
		if (*value == '\0' || strchr(value, ' ') != NULL)
			return parse_error(st, "[dnsbl %s] zone: '%s' is not a "
			    "DNS zone", list_name, value);
		free(d->zone);
		d->zone = mxg_strdup(value);
	} else if (strcmp(name, "type") == 0) {
		if (strcmp(value, "client") == 0)
			d->type = DNSBL_TYPE_CLIENT;
		else if (strcmp(value, "uri") == 0)
			d->type = DNSBL_TYPE_URI;
		else
			return parse_error(st, "[dnsbl] type: '%s' is not client "
			    "or uri%s", value, "");
	} else if (strcmp(name, "score") == 0) {
		if (config_parse_double(value, &score) < 0)
			return parse_error(st, "[dnsbl] score: '%s' is not a "
			    "number%s", value, "");
		d->score = score;
	} else if (strcmp(name, "codes") == 0) {
		free(d->codes);
		d->codes = mxg_strdup(value);
	} else if (strcmp(name, "symbol") == 0) {
		free(d->symbol);
		d->symbol = *value ? mxg_strdup(value) : NULL;
	} else {
		return parse_error(st, "unknown key '%s' in [dnsbl %s]", name,
		    list_name);
	}
	return 1;
}

/* A key of a `[ratelimit NAME]` section; the rule is created on first
 * use. Rates are checked against their count when the file ends. */
static int
set_ratelimit_key(struct parse_state *st, const char *rule_name,
    const char *name, const char *value)
{
	struct config *cfg = st->cfg;
	struct config_ratelimit *r = NULL;
	int i;

	if (!section_name_valid(rule_name))
		return parse_error(st, "[ratelimit %s]: a rule name is letters, "
		    "digits, - and _%s", rule_name, "");
	for (size_t k = 0; k < cfg->nratelimits; k++)
		if (strcmp(cfg->ratelimits[k].name, rule_name) == 0)
			r = &cfg->ratelimits[k];
	if (r == NULL) {
		if (cfg->nratelimits == CONFIG_MAX_RATELIMITS)
			return parse_error(st, "more than %s [ratelimit] "
			    "rules%s", "64", "");
		r = &cfg->ratelimits[cfg->nratelimits++];
		memset(r, 0, sizeof(*r));
		r->name = mxg_strdup(rule_name);
		r->count = RATELIMIT_COUNT_MESSAGES;
		r->action = RATELIMIT_ACTION_DEFER;
		r->score = 5.0;
		r->line = st->section_line ? st->section_line : st->line;
		r->symbol = mxg_malloc(strlen(rule_name) + 11);
		snprintf(r->symbol, strlen(rule_name) + 11, "RATELIMIT_%s",
		    rule_name);
		for (char *p = r->symbol; *p; p++)
			*p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	}
	if (strcmp(name, "key") == 0) {
		if ((i = choice_index(ratelimit_key_names, value)) < 0)
			return parse_error(st, "[ratelimit] key: '%s' is not one "
			    "of client_ip client_net sender sender_domain "
			    "sasl_user rcpt rcpt_domain%s", value, "");
		r->key = (enum ratelimit_key)i;
		r->has_key = true;
	} else if (strcmp(name, "count") == 0) {
		if ((i = choice_index(ratelimit_count_names, value)) < 0)
			return parse_error(st, "[ratelimit] count: '%s' is not "
			    "connections, messages, recipients or bytes%s",
			    value, "");
		r->count = (enum ratelimit_count)i;
	} else if (strcmp(name, "action") == 0) {
		if ((i = choice_index(ratelimit_action_names, value)) < 0)
			return parse_error(st, "[ratelimit] action: '%s' is not "
			    "defer, reject or score%s", value, "");
		r->action = (enum ratelimit_action)i;
	} else if (strcmp(name, "rate") == 0) {
		if (config_parse_rate(value, CONFIG_RATE_MAX_BYTES, &r->limit,
		    &r->period_ms) < 0)
			return parse_error(st, "[ratelimit] rate: '%s' is not "
			    "N/PERIOD with N from 1 (like 100/1h, 20/m, "
			    "5/10s)%s", value, "");
		r->has_rate = true;
		r->rate_line = st->line;
	} else if (strcmp(name, "burst") == 0) {
		double burst;

		if (!isdigit((unsigned char)*value) ||
		    parse_with_unit(value, count_units, &burst) < 0 || burst < 1 ||
		    burst > CONFIG_RATE_MAX_BYTES || burst != floor(burst))
			return parse_error(st, "[ratelimit] burst: '%s' is not a "
			    "whole number from 1%s", value, "");
		r->burst = burst;
		r->burst_line = st->line;
	} else if (strcmp(name, "score") == 0) {
		if (config_parse_double(value, &r->score) < 0)
			return parse_error(st, "[ratelimit] score: '%s' is not a "
			    "number%s", value, "");
	} else {
		return parse_error(st, "unknown key '%s' in [ratelimit %s]",
		    name, rule_name);
	}
	return 1;
}

/* What a [ratelimit NAME] section needs as a whole, once it is read. */
static void
check_ratelimits(struct parse_state *st)
{
	struct config *cfg = st->cfg;

	for (size_t i = 0; st->error == NULL && i < cfg->nratelimits; i++) {
		struct config_ratelimit *r = &cfg->ratelimits[i];
		double max = r->count == RATELIMIT_COUNT_BYTES ?
		    CONFIG_RATE_MAX_BYTES : CONFIG_RATE_MAX_EVENTS;

		st->line = r->line;
		if (!r->has_key)
			parse_error(st, "[ratelimit %s] has no key%s", r->name,
			    "");
		else if (!r->has_rate)
			parse_error(st, "[ratelimit %s] has no rate%s", r->name,
			    "");
		else if (r->count == RATELIMIT_COUNT_CONNECTIONS &&
		    r->key != RATELIMIT_KEY_CLIENT_IP &&
		    r->key != RATELIMIT_KEY_CLIENT_NET)
			parse_error(st, "[ratelimit %s] count = connections "
			    "needs key = client_ip or client_net, not %s (only "
			    "the client is known at connect)", r->name,
			    ratelimit_key_names[r->key]);
		else if (r->limit > max) {
			st->line = r->rate_line;
			parse_error(st, "[ratelimit %s] rate: more than %s "
			    "per period", r->name, r->count ==
			    RATELIMIT_COUNT_BYTES ? "10^13 bytes" :
			    "10^9 events");
		} else if (r->burst > max) {
			st->line = r->burst_line;
			parse_error(st, "[ratelimit %s] burst: more than %s",
			    r->name, r->count == RATELIMIT_COUNT_BYTES ?
			    "10^13 bytes" : "10^9 events");
		} else if (r->burst == 0)
			r->burst = r->limit;
	}
}

static int
set_value(struct parse_state *st, const struct key *key, const char *value)
{
	void *field = (char *)st->cfg + key->offset;
	bool b;
	long ms;
	size_t size;
	double d;
	char *end;

	switch (key->type) {
	case VALUE_HOSTPORT:
		if (*value != '\0' && !hostport_valid(value))
			return parse_error(st, "%s: '%s' is not HOST:PORT",
			    key->name, value);
		free(*(char **)field);
		*(char **)field = *value ? mxg_strdup(value) : NULL;
		return 1;
	case VALUE_MODE:
		errno = 0;
		long mode = strtol(value, &end, 8);
		if (end == value || *end != '\0' || errno || mode < 0 ||
		    mode > 0777)
			return parse_error(st, "%s: '%s' is not an octal mode "
			    "(like 0660)", key->name, value);
		*(int *)field = (int)mode;
		return 1;
	case VALUE_SOCKET:
		if (!socket_spec_valid(value))
			return parse_error(st, "socket: '%s' is not inet:PORT@HOST, "
			    "inet6:PORT@HOST or unix:/PATH%s", value, "");
		/* fallthrough */
	case VALUE_STRING:
		free(*(char **)field);
		*(char **)field = *value ? mxg_strdup(value) : NULL;
		return 1;
	case VALUE_BOOL:
		if (config_parse_bool(value, &b) < 0)
			return parse_error(st, "%s: '%s' is not yes or no",
			    key->name, value);
		*(bool *)field = b;
		return 1;
	case VALUE_DURATION_MS:
		if (config_parse_duration_ms(value, &ms) < 0)
			return parse_error(st, "%s: '%s' is not a duration "
			    "(like 5s, 500ms, 2m)", key->name, value);
		*(long *)field = ms;
		return 1;
	case VALUE_SIZE:
		if (config_parse_size(value, &size) < 0)
			return parse_error(st, "%s: '%s' is not a size "
			    "(like 64K, 2M)", key->name, value);
		*(size_t *)field = size;
		return 1;
	case VALUE_THRESHOLD:
		if (strcasecmp(value, "off") == 0) {
			*(double *)field = CONFIG_THRESHOLD_OFF;
			return 1;
		}
		if (config_parse_double(value, &d) < 0)
			return parse_error(st, "%s: '%s' is not a number or off",
			    key->name, value);
		*(double *)field = d;
		return 1;
	case VALUE_COUNT:
		errno = 0;
		long n = strtol(value, &end, 10);
		if (end == value || *end != '\0' || errno || n < 0 || n > 1000000)
			return parse_error(st, "%s: '%s' is not a whole number",
			    key->name, value);
		*(int *)field = (int)n;
		return 1;
	case VALUE_ON_ERROR:
		if (strcmp(value, "tempfail") == 0)
			*(enum on_error *)field = ON_ERROR_TEMPFAIL;
		else if (strcmp(value, "accept") == 0)
			*(enum on_error *)field = ON_ERROR_ACCEPT;
		else
			return parse_error(st, "%s: '%s' is not tempfail or accept",
			    key->name, value);
		return 1;
	case VALUE_CHOICE:
		for (int i = 0; key->choices[i] != NULL; i++)
			if (strcmp(value, key->choices[i]) == 0) {
				/* score_set: "auto" first, then the sets. */
				*(int *)field = key->choices == score_set_names ?
				    i - 1 : i;
				return 1;
			}
		{
			char names[128] = "";

			for (int i = 0; key->choices[i] != NULL; i++)
				snprintf(names + strlen(names), sizeof(names) -
				    strlen(names), "%s%s", i ? " or " : "",
				    key->choices[i]);
			char what[200];
			snprintf(what, sizeof(what), "'%.60s' is not %s", value,
			    names);
			return parse_error(st, "%s: %s", key->name, what);
		}
	case VALUE_LOG_LEVEL:
		if (log_level_parse(value, (enum log_level *)field) < 0)
			return parse_error(st, "%s: '%s' is not err, warning, "
			    "notice, info or debug", key->name, value);
		return 1;
	}
	return 0;
}

/* Cuts an inline "# comment" (after white space) and trailing blanks. */
static void
strip_inline_comment(char *value)
{
	char *p = value;

	while ((p = strchr(p, '#')) != NULL) {
		if (p == value || isspace((unsigned char)p[-1])) {
			*p = '\0';
			break;
		}
		p++;
	}
	size_t len = strlen(value);
	while (len > 0 && isspace((unsigned char)value[len - 1]))
		value[--len] = '\0';
}

static int
handle_key(void *user, const char *section, const char *name,
    const char *raw_value)
{
	struct parse_state *st = user;
	char value[CONFIG_LINE_MAX * 4];

	if (st->error != NULL)
		return 0;
	snprintf(value, sizeof(value), "%s", raw_value);
	strip_inline_comment(value);

	if (st->continuation && strcmp(section, st->last_section) == 0 &&
	    strcmp(name, st->last_key) == 0) {
		/* A continuation line: inih hands us only the new text. The
		 * previous value is in the config; re-join it. Only string
		 * values may continue. */
		const struct key *key = NULL;
		for (size_t i = 0; i < sizeof(config_keys) / sizeof(*config_keys); i++)
			if (strcmp(config_keys[i].section, section) == 0 &&
			    strcmp(config_keys[i].name, name) == 0)
				key = &config_keys[i];
		if (key == NULL || key->type != VALUE_STRING)
			return parse_error(st, "%s: a continued line is only "
			    "allowed for text values%s", name, "");
		char *prev = *(char **)((char *)st->cfg + key->offset);
		size_t joined_len = (prev ? strlen(prev) : 0) + strlen(value) + 2;
		char *joined = mxg_malloc(joined_len);
		snprintf(joined, joined_len, "%s %s", prev ? prev : "", value);
		int ok = set_value(st, key, joined);
		free(joined);
		return ok;
	}
	snprintf(st->last_section, sizeof(st->last_section), "%s", section);
	snprintf(st->last_key, sizeof(st->last_key), "%s", name);

	if (*section == '\0')
		return parse_error(st, "'%s' is outside any [section]%s", name, "");
	if (strcmp(section, "scores") == 0)
		return set_score(st, name, value);
	if (strncmp(section, "dnsbl ", 6) == 0)
		return set_dnsbl_key(st, section + 6, name, value);
	if (strncmp(section, "ratelimit ", 10) == 0)
		return set_ratelimit_key(st, section + 10, name, value);
	bool section_known = false;
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(*config_keys); i++) {
		const struct key *key = &config_keys[i];

		if (strcmp(key->section, section) != 0)
			continue;
		section_known = true;
		if (strcmp(key->name, name) == 0)
			return set_value(st, key, value);
	}
	if (!section_known)
		return parse_error(st, "unknown section [%s] (key %s)", section,
		    name);
	return parse_error(st, "unknown key '%s' in [%s]", name, section);
}

/* inih's line reader, wrapped to count lines, spot continuation lines and
 * refuse lines that would not fit inih's buffer. */
/* True when name is a section some key (or [scores]) belongs to. */
static bool
section_is_known(const char *name, size_t len)
{
	if (len == 6 && strncmp(name, "scores", 6) == 0)
		return true;
	if (len > 6 && strncmp(name, "dnsbl ", 6) == 0)
		return true;
	if (len > 10 && strncmp(name, "ratelimit ", 10) == 0)
		return true;
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(*config_keys); i++)
		if (strlen(config_keys[i].section) == len &&
		    strncmp(config_keys[i].section, name, len) == 0)
			return true;
	return false;
}

/*
 * inih's line reader, done by hand rather than with fgets so that it can
 * count lines, see NUL bytes (fgets cannot tell them from the end),
 * refuse lines that would not fit inih's buffer, spot continuation
 * lines, and check section names even for a section with no keys.
 */
static char *
read_line(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	size_t len = 0, content = 0;
	bool nul = false;
	int c;

	/* A line may hold num - 2 characters before its newline. */
	while ((c = getc(st->fp)) != EOF) {
		if (c == '\0')
			nul = true;
		if (c != '\n')
			content++;
		if (len + 1 < (size_t)num)
			str[len++] = (char)c;
		if (c == '\n')
			break;
	}
	if (len == 0 && c == EOF)
		return NULL;
	str[len] = '\0';
	st->line++;
	if (content > (size_t)num - 2) {
		parse_error(st, "line longer than %s characters%s", "198", "");
		str[0] = '\0';
		return str;
	}
	if (nul) {
		parse_error(st, "NUL byte in line%s%s", "", "");
		str[0] = '\0';
		return str;
	}
	st->continuation = (str[0] == ' ' || str[0] == '\t') &&
	    str[strspn(str, " \t\r\n")] != '\0';

	const char *p = str + strspn(str, " \t");
	if (*p == '[') {
		const char *close = strchr(p, ']');

		st->section_line = st->line;
		if (close != NULL && !section_is_known(p + 1,
		    (size_t)(close - p - 1))) {
			char name[64];
			snprintf(name, sizeof(name), "%.*s",
			    (int)(close - p - 1), p + 1);
			parse_error(st, "unknown section [%s]%s", name, "");
		}
	}
	return str;
}

int
config_load(const char *path, struct config **out, char *err)
{
	struct parse_state st;
	struct config *cfg;
	int rc;

	*out = NULL;
	memset(&st, 0, sizeof(st));
	st.path = path;
	st.fp = fopen(path, "r");
	if (st.fp == NULL)
		return mxg_fail(err, MXG_EIO, "%s: cannot open: %s", path,
		    strerror(errno));
	cfg = mxg_malloc(sizeof(*cfg));
	config_defaults(cfg);
	cfg->path = mxg_strdup(path);
	st.cfg = cfg;

	rc = ini_parse_stream(read_line, &st, handle_key, &st);
	if (ferror(st.fp)) {
		int read_errno = errno;

		fclose(st.fp);
		free(st.error);
		config_free(cfg);
		return mxg_fail(err, MXG_EIO, "%s: cannot read: %s", path,
		    strerror(read_errno));
	}
	fclose(st.fp);
	/* inih reports its first syntax error only at the end; ours come as
	 * lines are read. Whichever line is earlier is the one to fix. */
	if (rc > 0 && (st.error == NULL || rc < st.error_line)) {
		free(st.error);
		st.error = NULL;
		st.line = rc;
		parse_error(&st, "syntax error: not [section], key = value or "
		    "a comment%s%s", "", "");
	}
	for (size_t i = 0; st.error == NULL && i < cfg->ndnsbls; i++)
		if (cfg->dnsbls[i].zone == NULL) {
			st.line = cfg->dnsbls[i].line;
			parse_error(&st, "[dnsbl %s] has no zone%s",
			    cfg->dnsbls[i].name, "");
		}
	check_ratelimits(&st);
	if (st.error != NULL) {
		mxg_fail(err, MXG_EINVAL, "%s", st.error);
		free(st.error);
		config_free(cfg);
		return MXG_EINVAL;
	}
	*out = cfg;
	return MXG_OK;
}
