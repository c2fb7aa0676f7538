/*
 * config.h - milter.conf, read into one immutable struct config.
 *
 * FORMAT
 *	INI (inih): `[section]`, `key = value`, comments from `#` or `;` at
 *	the start of a line, or after white space inside a line. Sections may
 *	repeat; a later line for a key overrides an earlier one, so a site
 *	file can append overrides to the shipped example. A line that starts
 *	with white space continues the previous value. Every key is listed
 *	in one table in config.c: an unknown section or key, a bad value or
 *	an over-long line is an error naming file:line.
 *
 *	Named sections: `[dnsbl NAME]` (one per DNS list; keys zone,
 *	type, score, codes, symbol) and `[ratelimit NAME]` (one per rate
 *	limit; keys key, rate, burst, count, action, score), several of
 *	each allowed.
 *
 *	Rates: `N/PERIOD` with PERIOD a duration (`100/1h`, `20/m`,
 *	`5/10s`); N a whole number > 0, with K/M/G for count = bytes
 *	(`500M/1d`); periods from 1s to 365d.
 *
 *	Values: booleans yes/no/true/false/on/off/1/0; durations with unit
 *	ms, s, m, h, d (a bare number is seconds); sizes with K, M, G (bytes,
 *	powers of 1024); scores as decimals; thresholds as a decimal or
 *	`off`.
 *
 * CALLS
 *	config_load(path, &cfg, err)
 *		Reads path; on success *cfg is a new config (caller frees with
 *		config_free); on failure returns MXG_EINVAL/MXG_EIO, err says
 *		"FILE:LINE: reason" and *cfg is NULL.
 *	config_defaults(cfg)
 *		Fills cfg with every default: the config you get from an
 *		empty file.
 *	config_free(cfg)
 *		NULL is a no-op.
 *	config_release(cfg)
 *		Frees what cfg holds, not cfg itself (for a struct config on
 *		the stack filled by config_defaults).
 *
 *	A config is never changed after loading, so threads share it freely.
 */
#ifndef MXG_CONFIG_H
#define MXG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

enum on_error {
	ON_ERROR_TEMPFAIL,	/* answer 4xx: the sender retries later */
	ON_ERROR_ACCEPT,	/* judge the message without that evidence */
};

enum dmarc_discovery {
	DMARC_DISCOVERY_TREEWALK,	/* RFC 9989 DNS tree walk */
	DMARC_DISCOVERY_PSL,		/* RFC 7489 with the public suffix list */
};

enum dmarc_quarantine {
	DMARC_QUARANTINE_SCORE,		/* symbol DMARC_QUARANTINE and its score */
	DMARC_QUARANTINE_HOLD,		/* the MTA's quarantine (Postfix: hold) */
};

enum dmarc_multiple_from {
	DMARC_MULTIPLE_FROM_REJECT,	/* 550 5.7.1 */
	DMARC_MULTIPLE_FROM_SCORE,
};

enum greylist_mode {
	GREYLIST_MODE_TRIPLET,	/* defer each new triplet at RCPT TO */
	GREYLIST_MODE_SCORE,	/* only mail scoring [actions] greylist */
};

#define CONFIG_THRESHOLD_OFF (-1e300)
#define CONFIG_MAX_RATELIMITS 64
/* The largest N of a rate: 10^9 events, or 10^13 bytes per period. */
#define CONFIG_RATE_MAX_EVENTS 1e9
#define CONFIG_RATE_MAX_BYTES 1e13
#define CONFIG_MAX_SCORES 256
#define CONFIG_MAX_DNSBLS 32

enum dnsbl_type {
	DNSBL_TYPE_CLIENT,	/* the client's IP, reversed */
	DNSBL_TYPE_URI,		/* registered domains of the message's URIs */
};

/* One `[dnsbl NAME]` section. */
struct config_dnsbl {
	char *name;
	char *zone;
	enum dnsbl_type type;
	double score;		/* any answer in 127.0.0.0/8 */
	char *codes;		/* "127.0.0.2=4.0 127.0.0.10=1.5" */
	char *symbol;		/* NULL: DNSBL_<NAME> or URIBL_<NAME> */
	int line;
};

enum ratelimit_key {
	RATELIMIT_KEY_CLIENT_IP,	/* the address itself */
	RATELIMIT_KEY_CLIENT_NET,	/* /ipv4_prefix, /ipv6_prefix of [greylist] */
	RATELIMIT_KEY_SENDER,		/* envelope sender, lowercased */
	RATELIMIT_KEY_SENDER_DOMAIN,
	RATELIMIT_KEY_SASL_USER,
	RATELIMIT_KEY_RCPT,
	RATELIMIT_KEY_RCPT_DOMAIN,
	RATELIMIT_KEY_COUNT
};

enum ratelimit_count {
	RATELIMIT_COUNT_CONNECTIONS,
	RATELIMIT_COUNT_MESSAGES,
	RATELIMIT_COUNT_RECIPIENTS,
	RATELIMIT_COUNT_BYTES,
};

enum ratelimit_action {
	RATELIMIT_ACTION_DEFER,		/* 450 4.7.1 */
	RATELIMIT_ACTION_REJECT,	/* 550 5.7.1 */
	RATELIMIT_ACTION_SCORE,		/* symbol RATELIMIT_<NAME> */
};

/* One `[ratelimit NAME]` section: at most `limit` units per `period_ms`,
 * `burst` of them at once from an idle bucket. */
struct config_ratelimit {
	char *name;
	enum ratelimit_key key;
	enum ratelimit_count count;
	enum ratelimit_action action;
	double limit;		/* units per period */
	long period_ms;
	double burst;		/* 0 in the file: defaults to limit */
	double score;		/* action = score */
	char *symbol;		/* RATELIMIT_<NAME> in upper case */
	bool has_key, has_rate;
	int line;		/* the section header */
	int rate_line, burst_line;
};

/* One `[scores]` override: SYMBOL = value, checked against the symbols the
 * checks declare when the engine starts (line kept for the error). */
struct config_score {
	char *symbol;
	double score;
	int line;
};

struct config {
	char *path;

	struct {
		char *socket;		/* inet:PORT@HOST, inet6:..., unix:PATH */
		char *pidfile;		/* NULL: none */
		char *authserv_id;	/* NULL: the MTA's j macro, else hostname */
		size_t body_scan_limit;	/* bytes of body kept for checks */
		size_t header_limit;	/* bytes of one header kept */
		long timeout_ms;	/* libmilter's I/O timeout with the MTA */
		enum log_level log_level;
		bool loopback_trusted;	/* loopback clients skip every check */
		char *user;		/* started as root: drop to this user */
		char *group;		/* NULL: the user's primary group */
		int socket_mode;	/* unix sockets of both daemons */
	} milter;

	struct {
		enum log_format format;
	} log;

	struct {
		char *listen;		/* milter's HOST:PORT, NULL: off */
		char *policy_listen;	/* mxguard-policy's, NULL: off */
	} metrics;

	struct {
		char *nameserver;	/* NULL: system resolver; "HOST[@PORT] ..." */
		long timeout_ms;	/* per query */
		enum on_error on_error;
	} dns;

	struct {
		bool enabled;
		bool reject_fail;	/* fail -> 550 5.7.23 */
		bool received_spf;	/* add a Received-SPF header */
		int void_lookup_limit;	/* RFC 7208 4.6.4: 2 */
	} spf;

	struct {
		bool enabled;
		bool allow_sha1;	/* rsa-sha1 can pass (RFC 8301 says not) */
		int min_key_bits;	/* smaller RSA keys: result policy */
		int max_signatures;	/* evaluated per message */
	} dkim;

	struct {
		bool enabled;
		enum dmarc_discovery discovery;
		char *public_suffix_list;
		bool enforce;		/* p=reject failure -> 550 5.7.1 */
		enum dmarc_quarantine quarantine;
		enum dmarc_multiple_from multiple_from;
		char *exempt_networks;	/* CIDRs, space or comma separated */
		char *exempt_domains;	/* From domains */
	} dmarc;

	struct {
		char *server;		/* HOST:PORT or unix:/PATH */
		char *password;
		int database;
		long connect_timeout_ms;
		long command_timeout_ms;
		char *prefix;		/* before every key */
	} redis;

	struct {
		bool enabled;
		enum greylist_mode mode;
		long delay_ms;
		long retry_window_ms;
		long max_age_ms;
		int auto_whitelist;	/* passed triplets; 0: never */
		int ipv4_prefix;
		int ipv6_prefix;
		bool normalize_sender;	/* +ext, SRS, BATV */
		char *skip_networks;
		char *skip_networks_file;
		char *skip_hostnames;	/* client host name suffixes */
		char *skip_hostnames_file;
		char *skip_recipients;	/* user@domain, user@, domain */
		char *skip_recipients_file;
		bool skip_authenticated;
		char *skip_spf_pass_domains;
		enum on_error on_error;
	} greylist;

	struct {
		bool enabled;
		char *files;		/* paths and globs, space separated */
		int score_set;		/* -1: auto (1 with network checks) */
		size_t max_scan_size;	/* bytes of a message parsed */
		int max_parts;
		int max_depth;
		int max_uris;
		int match_limit;	/* PCRE2 match limit per regex run */
		int depth_limit;
	} rules;

	struct {
		char *listen;		/* inet:PORT@HOST or unix:/PATH */
		char *allow;		/* client CIDRs allowed to connect */
		char *pidfile;
		size_t max_line;	/* bytes of one name=value line */
		size_t max_request;	/* bytes of one request */
		int max_attributes;	/* lines of one request */
		long idle_timeout_ms;	/* a connection with no request */
		int max_connections;	/* served at once */
	} policy;

	struct {
		double add_header;	/* CONFIG_THRESHOLD_OFF: never */
		double rewrite_subject;
		char *subject_prefix;
		double greylist;	/* [greylist] mode = score */
		double tempfail;
		double reject;
	} actions;

	struct config_score scores[CONFIG_MAX_SCORES];
	size_t nscores;

	struct {
		bool enabled;
		int max_queries;	/* per message */
	} dnsbl;
	struct config_dnsbl dnsbls[CONFIG_MAX_DNSBLS];
	size_t ndnsbls;

	struct {
		bool enabled;
		enum on_error on_error;
		char *skip_networks;	/* same formats as [greylist]'s */
		char *skip_networks_file;
		char *skip_recipients;
		char *skip_recipients_file;
		bool skip_authenticated;
	} ratelimit;
	struct config_ratelimit ratelimits[CONFIG_MAX_RATELIMITS];
	size_t nratelimits;
};

int config_load(const char *path, struct config **cfg, char *err);
void config_defaults(struct config *cfg);
void config_free(struct config *cfg);
void config_release(struct config *cfg);

/* Parsers for one value, shared with the command line: 0 or -1. */
int config_parse_bool(const char *text, bool *out);
int config_parse_duration_ms(const char *text, long *out);
int config_parse_size(const char *text, size_t *out);
int config_parse_double(const char *text, double *out);
/* "N/PERIOD"; max is CONFIG_RATE_MAX_EVENTS or _BYTES. */
int config_parse_rate(const char *text, double max, double *limit,
    long *period_ms);
/* Names of the enums above, as the config file spells them. */
const char *config_ratelimit_key_name(enum ratelimit_key key);
const char *config_ratelimit_count_name(enum ratelimit_count count);
const char *config_ratelimit_action_name(enum ratelimit_action action);

#endif
