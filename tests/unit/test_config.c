/*
 * test_config.c - lib/config.h: milter.conf in, one struct config out, or
 * an error that names "FILE:LINE: reason".
 *
 * Every case writes its file into a fresh mkdtemp directory (setup) that
 * teardown removes, so each test starts clean.
 */
#include "unit.h"

#include <stdbool.h>

#include "../../lib/config.h"
#include "../../lib/mxg.h"

struct fixture {
	char *dir;
	char *path;		/* the last file written */
	struct config *cfg;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = unit_tmpdir_new();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	config_free(f->cfg);
	free(f->path);
	unit_tmpdir_free(f->dir);
	free(f);
	return 0;
}

/* Writes text (len bytes; 0 means strlen) as dir/milter.conf and loads it.
 * f->cfg is the loaded config or NULL. */
static int
load(struct fixture *f, const char *text, size_t len, char *err)
{
	config_free(f->cfg);
	f->cfg = NULL;
	free(f->path);
	f->path = unit_write_file(f->dir, "milter.conf", text,
	    len ? len : strlen(text));
	err[0] = '\0';
	return config_load(f->path, &f->cfg, err);
}

/* "PATH:LINE: reason" for the current file. */
static void
expect_error(const char *label, struct fixture *f, int rc, const char *err,
    int want_line, const char *want_reason)
{
	char want[MXG_ERRLEN + 64];

	snprintf(want, sizeof(want), "%s:%d: %s", f->path, want_line,
	    want_reason);
	EXPECT_INT(label, rc, MXG_EINVAL);
	EXPECT_TRUE(label, f->cfg == NULL);
	EXPECT_STR(label, err, want);
}

/* Every field of a config that must equal the defaults. */
static void
expect_defaults(const char *label, const struct config *c)
{
	EXPECT_STR(label, c->milter.socket, "inet:8891@127.0.0.1");
	EXPECT_STR(label, c->milter.pidfile, NULL);
	EXPECT_STR(label, c->milter.authserv_id, NULL);
	EXPECT_INT(label, c->milter.body_scan_limit, 2 * 1024 * 1024);
	EXPECT_INT(label, c->milter.header_limit, 64 * 1024);
	EXPECT_INT(label, c->milter.timeout_ms, 300000);
	EXPECT_INT(label, c->milter.log_level, LOG_LEVEL_INFO);
	EXPECT_INT(label, c->milter.loopback_trusted, true);
	EXPECT_STR(label, c->dns.nameserver, NULL);
	EXPECT_INT(label, c->dns.timeout_ms, 5000);
	EXPECT_INT(label, c->dns.on_error, ON_ERROR_TEMPFAIL);
	EXPECT_INT(label, c->spf.enabled, true);
	EXPECT_INT(label, c->spf.reject_fail, false);
	EXPECT_INT(label, c->spf.received_spf, false);
	EXPECT_INT(label, c->spf.void_lookup_limit, 2);
	EXPECT_DOUBLE(label, c->actions.add_header, 6.0);
	EXPECT_DOUBLE(label, c->actions.tempfail, CONFIG_THRESHOLD_OFF);
	EXPECT_DOUBLE(label, c->actions.reject, 15.0);
	EXPECT_INT(label, c->nscores, 0);
}

static void
test_config_defaults_fill_every_field(void **state)
{
	struct config *c = calloc(1, sizeof(*c));

	(void)state;
	assert_non_null(c);
	config_defaults(c);
	expect_defaults("config_defaults", c);
	EXPECT_STR("config_defaults", c->path, NULL);
	config_free(c);
}

static void
test_config_empty_or_comment_only_file_gives_defaults(void **state)
{
	static const struct {
		const char *label;
		const char *text;
	} rows[] = {
		{"empty file", ""},
		{"blank lines", "\n\n\n"},
		{"comments only", "# a comment\n; another\n   # indented\n"},
		{"empty sections", "[milter]\n[dns]\n[spf]\n[actions]\n[scores]\n"},
		{"CRLF blank and comment", "# c\r\n\r\n[milter]\r\n"},
	};
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc = load(f, rows[i].text, 0, err);

		EXPECT_INT(rows[i].label, rc, MXG_OK);
		EXPECT_STR(rows[i].label, err, "");
		assert_non_null(f->cfg);
		expect_defaults(rows[i].label, f->cfg);
		EXPECT_STR(rows[i].label, f->cfg->path, f->path);
	}
}

enum field_type { F_BOOL, F_LONG, F_SIZE, F_DOUBLE, F_INT, F_STR };

#define FIELD(member) offsetof(struct config, member)

/* One value read from a file: where it lands and what it must be. */
struct value_row {
	const char *label;
	const char *text;
	enum field_type type;
	size_t offset;
	long long want_int;	/* F_BOOL, F_LONG, F_SIZE, F_INT (enums) */
	double want_double;	/* F_DOUBLE */
	const char *want_str;	/* F_STR; NULL: the field is NULL */
};

static const struct value_row value_rows[] = {
	/* booleans: every spelling, both ways, any case */
	{"bool yes", "[spf]\nreject_fail = yes\n", F_BOOL, FIELD(spf.reject_fail), 1, 0, NULL},
	{"bool true", "[spf]\nreject_fail = true\n", F_BOOL, FIELD(spf.reject_fail), 1, 0, NULL},
	{"bool on", "[spf]\nreject_fail = on\n", F_BOOL, FIELD(spf.reject_fail), 1, 0, NULL},
	{"bool 1", "[spf]\nreject_fail = 1\n", F_BOOL, FIELD(spf.reject_fail), 1, 0, NULL},
	{"bool YES upper case", "[spf]\nreject_fail = YES\n", F_BOOL, FIELD(spf.reject_fail), 1, 0, NULL},
	{"bool True mixed case", "[spf]\nreceived_spf = True\n", F_BOOL, FIELD(spf.received_spf), 1, 0, NULL},
	{"bool no", "[spf]\nenabled = no\n", F_BOOL, FIELD(spf.enabled), 0, 0, NULL},
	{"bool false", "[spf]\nenabled = false\n", F_BOOL, FIELD(spf.enabled), 0, 0, NULL},
	{"bool off", "[spf]\nenabled = off\n", F_BOOL, FIELD(spf.enabled), 0, 0, NULL},
	{"bool 0", "[spf]\nenabled = 0\n", F_BOOL, FIELD(spf.enabled), 0, 0, NULL},
	{"bool OFF upper case", "[milter]\nloopback_trusted = OFF\n", F_BOOL, FIELD(milter.loopback_trusted), 0, 0, NULL},
	{"bool without spaces around =", "[spf]\nenabled=no\n", F_BOOL, FIELD(spf.enabled), 0, 0, NULL},

	/* durations */
	{"duration 500ms", "[dns]\ntimeout = 500ms\n", F_LONG, FIELD(dns.timeout_ms), 500, 0, NULL},
	{"duration 5s", "[dns]\ntimeout = 5s\n", F_LONG, FIELD(dns.timeout_ms), 5000, 0, NULL},
	{"duration 2m", "[milter]\ntimeout = 2m\n", F_LONG, FIELD(milter.timeout_ms), 120000, 0, NULL},
	{"duration 1h", "[milter]\ntimeout = 1h\n", F_LONG, FIELD(milter.timeout_ms), 3600000, 0, NULL},
	{"duration 1d", "[milter]\ntimeout = 1d\n", F_LONG, FIELD(milter.timeout_ms), 86400000, 0, NULL},
	{"duration bare number is seconds", "[dns]\ntimeout = 7\n", F_LONG, FIELD(dns.timeout_ms), 7000, 0, NULL},
	{"duration decimal seconds", "[dns]\ntimeout = 1.5s\n", F_LONG, FIELD(dns.timeout_ms), 1500, 0, NULL},
	{"duration space before unit", "[dns]\ntimeout = 5 s\n", F_LONG, FIELD(dns.timeout_ms), 5000, 0, NULL},
	{"duration upper-case unit", "[dns]\ntimeout = 250MS\n", F_LONG, FIELD(dns.timeout_ms), 250, 0, NULL},
	{"duration zero", "[dns]\ntimeout = 0\n", F_LONG, FIELD(dns.timeout_ms), 0, 0, NULL},

	/* sizes */
	{"size 64K", "[milter]\nheader_limit = 64K\n", F_SIZE, FIELD(milter.header_limit), 65536, 0, NULL},
	{"size 64k lower case", "[milter]\nheader_limit = 64k\n", F_SIZE, FIELD(milter.header_limit), 65536, 0, NULL},
	{"size 2M", "[milter]\nbody_scan_limit = 2M\n", F_SIZE, FIELD(milter.body_scan_limit), 2097152, 0, NULL},
	{"size 1G", "[milter]\nbody_scan_limit = 1G\n", F_SIZE, FIELD(milter.body_scan_limit), 1073741824LL, 0, NULL},
	{"size bare number is bytes", "[milter]\nheader_limit = 1000\n", F_SIZE, FIELD(milter.header_limit), 1000, 0, NULL},
	{"size with b unit", "[milter]\nheader_limit = 512b\n", F_SIZE, FIELD(milter.header_limit), 512, 0, NULL},

	/* thresholds */
	{"threshold off", "[actions]\nadd_header = off\n", F_DOUBLE, FIELD(actions.add_header), 0, CONFIG_THRESHOLD_OFF, NULL},
	{"threshold OFF upper case", "[actions]\nreject = OFF\n", F_DOUBLE, FIELD(actions.reject), 0, CONFIG_THRESHOLD_OFF, NULL},
	{"threshold decimal", "[actions]\nreject = 7.5\n", F_DOUBLE, FIELD(actions.reject), 0, 7.5, NULL},
	{"threshold negative", "[actions]\ntempfail = -2\n", F_DOUBLE, FIELD(actions.tempfail), 0, -2.0, NULL},
	{"threshold from off to a number", "[actions]\ntempfail = 10\n", F_DOUBLE, FIELD(actions.tempfail), 0, 10.0, NULL},

	/* enumerations and counts */
	{"on_error accept", "[dns]\non_error = accept\n", F_INT, FIELD(dns.on_error), ON_ERROR_ACCEPT, 0, NULL},
	{"on_error tempfail", "[dns]\non_error = accept\non_error = tempfail\n", F_INT, FIELD(dns.on_error), ON_ERROR_TEMPFAIL, 0, NULL},
	{"log_level err", "[milter]\nlog_level = err\n", F_INT, FIELD(milter.log_level), LOG_LEVEL_ERR, 0, NULL},
	{"log_level error", "[milter]\nlog_level = error\n", F_INT, FIELD(milter.log_level), LOG_LEVEL_ERR, 0, NULL},
	{"log_level warning", "[milter]\nlog_level = warning\n", F_INT, FIELD(milter.log_level), LOG_LEVEL_WARNING, 0, NULL},
	{"log_level notice", "[milter]\nlog_level = notice\n", F_INT, FIELD(milter.log_level), LOG_LEVEL_NOTICE, 0, NULL},
	{"log_level debug", "[milter]\nlog_level = debug\n", F_INT, FIELD(milter.log_level), LOG_LEVEL_DEBUG, 0, NULL},
	{"void_lookup_limit 5", "[spf]\nvoid_lookup_limit = 5\n", F_INT, FIELD(spf.void_lookup_limit), 5, 0, NULL},
	{"void_lookup_limit 0", "[spf]\nvoid_lookup_limit = 0\n", F_INT, FIELD(spf.void_lookup_limit), 0, 0, NULL},

	/* socket specs */
	{"socket inet", "[milter]\nsocket = inet:10025@127.0.0.1\n", F_STR, FIELD(milter.socket), 0, 0, "inet:10025@127.0.0.1"},
	{"socket inet without host", "[milter]\nsocket = inet:10025\n", F_STR, FIELD(milter.socket), 0, 0, "inet:10025"},
	{"socket inet port 65535", "[milter]\nsocket = inet:65535@localhost\n", F_STR, FIELD(milter.socket), 0, 0, "inet:65535@localhost"},
	{"socket inet6", "[milter]\nsocket = inet6:10025@[::1]\n", F_STR, FIELD(milter.socket), 0, 0, "inet6:10025@[::1]"},
	{"socket unix", "[milter]\nsocket = unix:/run/mxguard/milter.sock\n", F_STR, FIELD(milter.socket), 0, 0, "unix:/run/mxguard/milter.sock"},
	{"socket local", "[milter]\nsocket = local:/tmp/m.sock\n", F_STR, FIELD(milter.socket), 0, 0, "local:/tmp/m.sock"},

	/* text values */
	{"pidfile", "[milter]\npidfile = /run/mxguard.pid\n", F_STR, FIELD(milter.pidfile), 0, 0, "/run/mxguard.pid"},
	{"authserv_id", "[milter]\nauthserv_id = mx.example.org\n", F_STR, FIELD(milter.authserv_id), 0, 0, "mx.example.org"},
	{"empty text value is NULL", "[milter]\nauthserv_id = a\nauthserv_id =\n", F_STR, FIELD(milter.authserv_id), 0, 0, NULL},
	{"nameserver with port", "[dns]\nnameserver = 127.0.0.1@5353\n", F_STR, FIELD(dns.nameserver), 0, 0, "127.0.0.1@5353"},
	{"continued text value is joined with a space",
	    "[dns]\nnameserver = 192.0.2.1\n  192.0.2.2\n\t192.0.2.3\n", F_STR, FIELD(dns.nameserver), 0, 0,
	    "192.0.2.1 192.0.2.2 192.0.2.3"},

	/* comments and line ends */
	{"inline # comment stripped from a duration", "[dns]\ntimeout = 5s # five seconds\n", F_LONG, FIELD(dns.timeout_ms), 5000, 0, NULL},
	{"inline # comment stripped from text", "[milter]\nauthserv_id = mx.example # ours\n", F_STR, FIELD(milter.authserv_id), 0, 0, "mx.example"},
	{"inline # comment after a tab", "[milter]\nauthserv_id = mx.example\t# ours\n", F_STR, FIELD(milter.authserv_id), 0, 0, "mx.example"},
	{"inline ; comment stripped", "[dns]\ntimeout = 3s ; three\n", F_LONG, FIELD(dns.timeout_ms), 3000, 0, NULL},
	{"# inside a word is kept", "[milter]\nauthserv_id = mx#1.example\n", F_STR, FIELD(milter.authserv_id), 0, 0, "mx#1.example"},
	{"inline comment stripped from a continuation", "[dns]\nnameserver = 192.0.2.1 # first\n  192.0.2.2 # second\n", F_STR, FIELD(dns.nameserver), 0, 0, "192.0.2.1 192.0.2.2"},
	{"CRLF line ends", "[dns]\r\ntimeout = 2s\r\n", F_LONG, FIELD(dns.timeout_ms), 2000, 0, NULL},
	{"trailing blanks", "[dns]\ntimeout = 2s   \t\n", F_LONG, FIELD(dns.timeout_ms), 2000, 0, NULL},
	{"no newline at end of file", "[dns]\ntimeout = 4s", F_LONG, FIELD(dns.timeout_ms), 4000, 0, NULL},
	{"UTF-8 byte order mark", "\xef\xbb\xbf[dns]\ntimeout = 6s\n", F_LONG, FIELD(dns.timeout_ms), 6000, 0, NULL},

	/* overrides */
	{"later line overrides earlier", "[milter]\ntimeout = 1s\ntimeout = 2s\n", F_LONG, FIELD(milter.timeout_ms), 2000, 0, NULL},
	{"repeated section overrides earlier", "[dns]\ntimeout = 1s\n[milter]\ntimeout = 9s\n[dns]\ntimeout = 3s\n", F_LONG, FIELD(dns.timeout_ms), 3000, 0, NULL},
	{"repeated section keeps keys it does not repeat", "[dns]\non_error = accept\n[dns]\ntimeout = 3s\n", F_INT, FIELD(dns.on_error), ON_ERROR_ACCEPT, 0, NULL},
	{"later socket replaces earlier", "[milter]\nsocket = inet:1@a\nsocket = unix:/b\n", F_STR, FIELD(milter.socket), 0, 0, "unix:/b"},
};

static void
test_config_reads_every_value_type(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	for (size_t i = 0; i < NELEM(value_rows); i++) {
		const struct value_row *r = &value_rows[i];
		int rc = load(f, r->text, 0, err);

		EXPECT_INT(r->label, rc, MXG_OK);
		EXPECT_STR(r->label, err, "");
		if (f->cfg == NULL)
			continue;
		const char *field = (const char *)f->cfg + r->offset;

		switch (r->type) {
		case F_BOOL:
			EXPECT_INT(r->label, *(const bool *)field, r->want_int);
			break;
		case F_LONG:
			EXPECT_INT(r->label, *(const long *)field, r->want_int);
			break;
		case F_SIZE:
			EXPECT_INT(r->label, *(const size_t *)field, r->want_int);
			break;
		case F_INT:
			EXPECT_INT(r->label, *(const int *)field, r->want_int);
			break;
		case F_DOUBLE:
			EXPECT_DOUBLE(r->label, *(const double *)field,
			    r->want_double);
			break;
		case F_STR:
			EXPECT_STR(r->label, *(char *const *)field, r->want_str);
			break;
		}
	}
}

static void
test_config_repeated_sections_merge_into_one_config(void **state)
{
	static const char text[] =
	    "# shipped example\n"
	    "[milter]\n"
	    "socket = inet:8891@127.0.0.1\n"
	    "timeout = 5m\n"
	    "[dns]\n"
	    "timeout = 5s\n"
	    "[milter]\n"
	    "# site overrides, appended\n"
	    "socket = unix:/run/mxguard.sock\n"
	    "[dns]\n"
	    "on_error = accept\n";
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	assert_int_equal(load(f, text, 0, err), MXG_OK);
	EXPECT_STR("socket", f->cfg->milter.socket, "unix:/run/mxguard.sock");
	EXPECT_INT("milter timeout", f->cfg->milter.timeout_ms, 300000);
	EXPECT_INT("dns timeout", f->cfg->dns.timeout_ms, 5000);
	EXPECT_INT("on_error", f->cfg->dns.on_error, ON_ERROR_ACCEPT);
}

static void
test_config_stores_score_overrides_with_their_line(void **state)
{
	static const char text[] =
	    "[scores]\n"			/* 1 */
	    "SPF_FAIL = 7\n"			/* 2 */
	    "SPF_PASS = -1.5\n"			/* 3 */
	    "# comment\n"			/* 4 */
	    "[milter]\n"			/* 5 */
	    "timeout = 1s\n"			/* 6 */
	    "[scores]\n"			/* 7 */
	    "SPF_FAIL = 9.25 # later wins\n"	/* 8 */
	    "UNKNOWN_TO_CONFIG = 0\n";		/* 9: checked by the engine */
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	assert_int_equal(load(f, text, 0, err), MXG_OK);
	assert_int_equal(f->cfg->nscores, 3);
	EXPECT_STR("first", f->cfg->scores[0].symbol, "SPF_FAIL");
	EXPECT_DOUBLE("first", f->cfg->scores[0].score, 9.25);
	EXPECT_INT("first", f->cfg->scores[0].line, 8);
	EXPECT_STR("second", f->cfg->scores[1].symbol, "SPF_PASS");
	EXPECT_DOUBLE("second", f->cfg->scores[1].score, -1.5);
	EXPECT_INT("second", f->cfg->scores[1].line, 3);
	EXPECT_STR("third", f->cfg->scores[2].symbol, "UNKNOWN_TO_CONFIG");
	EXPECT_DOUBLE("third", f->cfg->scores[2].score, 0.0);
	EXPECT_INT("third", f->cfg->scores[2].line, 9);
}

static void
test_config_stores_a_single_score_override(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	assert_int_equal(load(f, "[scores]\nSPF_FAIL = 7\n", 0, err), MXG_OK);
	assert_int_equal(f->cfg->nscores, 1);
	EXPECT_STR("SPF_FAIL = 7", f->cfg->scores[0].symbol, "SPF_FAIL");
	EXPECT_DOUBLE("SPF_FAIL = 7", f->cfg->scores[0].score, 7.0);
	EXPECT_INT("SPF_FAIL = 7", f->cfg->scores[0].line, 2);
}

/* A file that must not load: the error names its line and the reason. */
struct error_row {
	const char *label;
	const char *text;
	size_t len;		/* 0: strlen(text) */
	int line;
	const char *reason;
};

static const struct error_row error_rows[] = {
	{"unknown key", "[milter]\ntimeout = 1s\nsockett = inet:1@x\n", 0, 3,
	    "unknown key 'sockett' in [milter]"},
	{"unknown key in [dns]", "# c\n\n[dns]\nserver = 192.0.2.1\n", 0, 4,
	    "unknown key 'server' in [dns]"},
	{"unknown section, named at its own line", "[milter]\ntimeout = 1s\n[spff]\nenabled = yes\n", 0, 3,
	    "unknown section [spff]"},
	{"unknown empty section", "[milter]\n[spff]\n", 0, 2,
	    "unknown section [spff]"},
	{"key outside any section", "# c\ntimeout = 5s\n[milter]\n", 0, 2,
	    "'timeout' is outside any [section]"},
	{"line without =", "[milter]\ntimeout = 1s\njust some words\n", 0, 3,
	    "syntax error: not [section], key = value or a comment"},
	{"section without ] as the last line", "[dns]\ntimeout = 1s\n[milter\n", 0, 3,
	    "syntax error: not [section], key = value or a comment"},
	{"bad bool", "[spf]\nenabled = maybe\n", 0, 2,
	    "enabled: 'maybe' is not yes or no"},
	{"empty bool", "[spf]\nreject_fail =\n", 0, 2,
	    "reject_fail: '' is not yes or no"},
	{"bad duration unit", "[dns]\ntimeout = 5x\n", 0, 2,
	    "timeout: '5x' is not a duration (like 5s, 500ms, 2m)"},
	{"negative duration", "[dns]\ntimeout = -1s\n", 0, 2,
	    "timeout: '-1s' is not a duration (like 5s, 500ms, 2m)"},
	{"duration without number", "[milter]\ntimeout = s\n", 0, 2,
	    "timeout: 's' is not a duration (like 5s, 500ms, 2m)"},
	{"duration with two units", "[milter]\ntimeout = 5s3m\n", 0, 2,
	    "timeout: '5s3m' is not a duration (like 5s, 500ms, 2m)"},
	{"bad size", "[milter]\nheader_limit = 64Q\n", 0, 2,
	    "header_limit: '64Q' is not a size (like 64K, 2M)"},
	{"bad threshold", "[actions]\nreject = never\n", 0, 2,
	    "reject: 'never' is not a number or off"},
	{"threshold with trailing junk", "[actions]\nreject = 5 points\n", 0, 2,
	    "reject: '5 points' is not a number or off"},
	{"bad on_error", "[dns]\non_error = retry\n", 0, 2,
	    "on_error: 'retry' is not tempfail or accept"},
	{"bad log_level", "[milter]\nlog_level = loud\n", 0, 2,
	    "log_level: 'loud' is not err, warning, notice, info or debug"},
	{"negative count", "[spf]\nvoid_lookup_limit = -1\n", 0, 2,
	    "void_lookup_limit: '-1' is not a whole number"},
	{"fractional count", "[spf]\nvoid_lookup_limit = 2.5\n", 0, 2,
	    "void_lookup_limit: '2.5' is not a whole number"},
	{"bad score", "[scores]\nSPF_FAIL = high\n", 0, 2,
	    "[scores] SPF_FAIL: 'high' is not a number"},
	{"socket port over 65535", "[milter]\nsocket = inet:99999@x\n", 0, 2,
	    "socket: 'inet:99999@x' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"socket port 0", "[milter]\nsocket = inet:0@x\n", 0, 2,
	    "socket: 'inet:0@x' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"socket unknown scheme", "[milter]\nsocket = tcp:1@x\n", 0, 2,
	    "socket: 'tcp:1@x' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"socket relative unix path", "[milter]\nsocket = unix:relative\n", 0, 2,
	    "socket: 'unix:relative' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"socket empty host", "[milter]\nsocket = inet:25@\n", 0, 2,
	    "socket: 'inet:25@' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"socket port not a number", "[milter]\nsocket = inet:smtp@x\n", 0, 2,
	    "socket: 'inet:smtp@x' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"socket junk after port", "[milter]\nsocket = inet6:25x@x\n", 0, 2,
	    "socket: 'inet6:25x@x' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"socket empty", "[milter]\nsocket =\n", 0, 2,
	    "socket: '' is not inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH"},
	{"continuation of a value that is not text", "[dns]\ntimeout = 5s\n   10s\n", 0, 3,
	    "timeout: a continued line is only allowed for text values"},
	{"first of two errors is reported", "[milter]\nbogus = 1\n[dns]\ntimeout = x\n", 0, 2,
	    "unknown key 'bogus' in [milter]"},
	{"line number counts comments, blanks and CRLF",
	    "# one\r\n\r\n; three\r\n[spf]\r\n\r\nenabled = nope\r\n", 0, 6,
	    "enabled: 'nope' is not yes or no"},
	/* Rows for earlier bugs live in their own tests below:
	 * test_config_rejects_nul_byte_with_file_and_line,
	 * test_config_reports_a_syntax_error_before_a_later_bad_key. */
};

static void
test_config_rejects_bad_input_with_file_and_line(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	for (size_t i = 0; i < NELEM(error_rows); i++) {
		const struct error_row *r = &error_rows[i];
		int rc = load(f, r->text, r->len, err);

		expect_error(r->label, f, rc, err, r->line, r->reason);
	}
}

/*
 * Regression (lib/config.c, read_line, fixed): the NUL check is dead code. fgets() reads
 * the whole line, NUL included, but len is taken with strlen(), so
 * memchr(str, '\0', len) and strlen(str) != len can never be true: the
 * line is silently cut at the NUL and the file loads.
 */
static void
test_config_rejects_nul_byte_with_file_and_line(void **state)
{
	static const struct {
		const char *label;
		const char *text;
		size_t len;
		int line;
	} rows[] = {
#define NUL_ROW(label, text, line) {label, text, sizeof(text) - 1, line}
		NUL_ROW("NUL inside a value", "[milter]\nsocket = unix:/a\0junk\n", 2),
		NUL_ROW("NUL at the start of a line", "[milter]\n\0timeout = 1s\n", 2),
		NUL_ROW("NUL hiding a bad key", "[dns]\ntimeout = 1s\n#\0bogus = 1\n", 3),
		NUL_ROW("NUL in a comment", "# c\0\n[dns]\ntimeout = 1s\n", 1),
#undef NUL_ROW
	};
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	for (size_t i = 0; i < NELEM(rows); i++) {
		/* the lengths above must cover the whole text */
		assert_int_equal(rows[i].text[rows[i].len - 1], '\n');
		int rc = load(f, rows[i].text, rows[i].len, err);

		expect_error(rows[i].label, f, rc, err, rows[i].line,
		    "NUL byte in line");
	}
}

/*
 * Regression (lib/config.c, config_load, fixed): inih does not stop at a syntax error
 * (INI_STOP_ON_FIRST_ERROR is 0) and only returns its line at the end,
 * while a handler error is kept at once; config_load prefers st.error, so
 * a syntax error on line 1 is reported as whatever bad key comes after it
 * ("[milter" on line 1 is reported as "2: 'timeout' is outside any
 * [section]"). The first error in the file should be the one named.
 */
static void
test_config_reports_a_syntax_error_before_a_later_bad_key(void **state)
{
	static const struct error_row rows[] = {
		{"section without ] then a key", "[milter\ntimeout = 1s\n", 0, 1,
		    "syntax error: not [section], key = value or a comment"},
		{"line without = then an unknown key",
		    "[milter]\njust words\nbogus = 1\n", 0, 2,
		    "syntax error: not [section], key = value or a comment"},
		{"line without = then a bad value",
		    "[spf]\nenabled\nenabled = maybe\n", 0, 2,
		    "syntax error: not [section], key = value or a comment"},
	};
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc = load(f, rows[i].text, rows[i].len, err);

		expect_error(rows[i].label, f, rc, err, rows[i].line,
		    rows[i].reason);
	}
}

/* A line of n characters (no newline) into buf. */
static char *
line_of(char *buf, const char *start, size_t n)
{
	size_t k = strlen(start);

	memcpy(buf, start, k);
	memset(buf + k, 'x', n - k);
	buf[n] = '\0';
	return buf;
}

static void
test_config_rejects_lines_longer_than_198_characters(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN], line[1200], text[2600];
	int rc;

	/* 198 characters: the longest line that fits. */
	snprintf(text, sizeof(text), "[milter]\n%s\n",
	    line_of(line, "authserv_id = ", 198));
	rc = load(f, text, 0, err);
	EXPECT_INT("198-character value line", rc, MXG_OK);
	if (f->cfg != NULL)
		EXPECT_INT("198-character value line",
		    strlen(f->cfg->milter.authserv_id), 198 - 14);

	static const struct {
		const char *label;
		const char *start;
		size_t n;
		const char *after;
		int line;
	} rows[] = {
		{"199-character value line", "authserv_id = ", 199, "", 2},
		{"1000-character value line", "authserv_id = ", 1000, "", 2},
		{"over-long comment line", "# ", 250, "", 2},
		{"over-long line then good lines", "# ", 300, "timeout = 1s\n", 2},
		{"over-long last line without newline", "authserv_id = ", 199, NULL, 2},
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		snprintf(text, sizeof(text), "[milter]\n%s%s%s",
		    line_of(line, rows[i].start, rows[i].n),
		    rows[i].after ? "\n" : "",
		    rows[i].after ? rows[i].after : "");
		rc = load(f, text, 0, err);
		expect_error(rows[i].label, f, rc, err, rows[i].line,
		    "line longer than 198 characters");
	}

	/* The line after an over-long one is counted right. */
	snprintf(text, sizeof(text), "[milter]\n# %s\n%s\n",
	    line_of(line, "", 50), line_of(line + 100, "", 300));
	rc = load(f, text, 0, err);
	expect_error("over-long third line", f, rc, err, 3,
	    "line longer than 198 characters");
}

static void
test_config_rejects_more_than_256_score_overrides(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN], want[64];
	char *text = malloc(300 * 32);
	size_t o;

	assert_non_null(text);
	o = (size_t)sprintf(text, "[scores]\n");
	for (int i = 0; i < 256; i++)
		o += (size_t)sprintf(text + o, "SYM_%d = %d\n", i, i);
	int rc = load(f, text, 0, err);
	EXPECT_INT("256 overrides", rc, MXG_OK);
	if (f->cfg != NULL) {
		EXPECT_INT("256 overrides", f->cfg->nscores, 256);
		EXPECT_STR("256 overrides", f->cfg->scores[255].symbol, "SYM_255");
		EXPECT_DOUBLE("256 overrides", f->cfg->scores[255].score, 255.0);
	}
	/* a repeated symbol is not a new override */
	o += (size_t)sprintf(text + o, "SYM_0 = 1.5\n");
	rc = load(f, text, 0, err);
	EXPECT_INT("256 overrides and a repeat", rc, MXG_OK);
	if (f->cfg != NULL)
		EXPECT_DOUBLE("256 overrides and a repeat",
		    f->cfg->scores[0].score, 1.5);

	o += (size_t)sprintf(text + o, "SYM_256 = 1\n");
	rc = load(f, text, 0, err);
	snprintf(want, sizeof(want), "[scores] SYM_256: more than 256 overrides");
	expect_error("257th override", f, rc, err, 259, want);
	free(text);
}

/*
 * Regression (lib/config.c, handle_key, fixed): a continued text value is re-joined in
 * char joined[CONFIG_LINE_MAX * 8] with snprintf, so past 1599 bytes the
 * value is cut without a word: a long nameserver list loses servers.
 * It should load whole (or fail with FILE:LINE), never be cut silently.
 */
static void
test_config_long_continued_value_is_not_cut_silently(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN];
	char text[8192], want[8192];
	size_t o, w = 0;
	int rc;

	o = (size_t)sprintf(text, "[dns]\nnameserver = 192.0.2.0@53\n");
	w = (size_t)sprintf(want, "192.0.2.0@53");
	for (int i = 1; i <= 200; i++) {
		o += (size_t)sprintf(text + o, "  192.0.2.%d@53\n", i);
		w += (size_t)sprintf(want + w, " 192.0.2.%d@53", i);
	}
	assert_true(w > 2000);
	rc = load(f, text, 0, err);
	if (rc == MXG_OK) {
		EXPECT_INT("201 servers", strlen(f->cfg->dns.nameserver), w);
		EXPECT_STR("201 servers", f->cfg->dns.nameserver, want);
	} else {
		EXPECT_INT("201 servers", rc, MXG_EINVAL);
		EXPECT_TRUE("201 servers: error names the file",
		    strncmp(err, f->path, strlen(f->path)) == 0);
	}
}

/* Regression: failed with the first-error bug above (the PNG signature line is a
 * syntax error at line 1; a later garbage "key" is reported instead). */
static void
test_config_rejects_binary_garbage_with_file_and_line(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN], prefix[600];
	unsigned char data[4096];
	uint32_t x = 12345;

	/* a PNG signature, then pseudo-random bytes with NULs and newlines */
	memcpy(data, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
	for (size_t i = 16; i < sizeof(data); i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	int rc = load(f, (const char *)data, sizeof(data), err);
	EXPECT_INT("binary garbage", rc, MXG_EINVAL);
	EXPECT_TRUE("binary garbage", f->cfg == NULL);
	snprintf(prefix, sizeof(prefix), "%s:1: ", f->path);
	EXPECT_MEM("binary garbage: error names line 1", err,
	    strnlen(err, strlen(prefix)), prefix, strlen(prefix));

	/* an ELF header: a NUL in the very first line */
	rc = load(f, "\x7f" "ELF\x02\x01\x01\0\0\0\0\n", 12, err);
	EXPECT_INT("ELF header", rc, MXG_EINVAL);
	EXPECT_MEM("ELF header: error names line 1", err,
	    strnlen(err, strlen(prefix)), prefix, strlen(prefix));
}

static void
test_config_missing_file_is_an_io_error(void **state)
{
	struct fixture *f = *state;
	struct config *cfg = (struct config *)&cfg;	/* must become NULL */
	char err[MXG_ERRLEN], path[600], want[700];

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", f->dir);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory",
	    path);
	EXPECT_INT("missing file", config_load(path, &cfg, err), MXG_EIO);
	EXPECT_TRUE("missing file", cfg == NULL);
	EXPECT_STR("missing file", err, want);
}

/*
 * Regression (lib/config.c, config_load/read_line, fixed): a read error is taken for the
 * end of the file. fopen() of a directory succeeds, fgets() then fails
 * with EISDIR, inih sees no lines and config_load returns 0 with every
 * default: `-c /etc/mxguard` (a directory) starts the milter on the
 * built-in config. ferror(st.fp) after parsing should give MXG_EIO.
 */
static void
test_config_unreadable_path_is_an_io_error(void **state)
{
	struct fixture *f = *state;
	struct config *cfg = (struct config *)&cfg;
	char err[MXG_ERRLEN], want[700];

	snprintf(want, sizeof(want), "%s: ", f->dir);
	err[0] = '\0';
	int rc = config_load(f->dir, &cfg, err);
	f->cfg = cfg;		/* teardown frees it if it loaded */
	EXPECT_INT("a directory", rc, MXG_EIO);
	EXPECT_TRUE("a directory", cfg == NULL);
	EXPECT_MEM("a directory: error names the path", err,
	    strnlen(err, strlen(want)), want, strlen(want));
}

static void
test_config_value_parsers_accept_and_refuse(void **state)
{
	static const struct {
		const char *label;
		const char *text;
		int rc;
		long ms;
	} durations[] = {
		{"500ms", "500ms", 0, 500}, {"5s", "5s", 0, 5000},
		{"2m", "2m", 0, 120000}, {"1h", "1h", 0, 3600000},
		{"1d", "1d", 0, 86400000}, {"bare 30", "30", 0, 30000},
		{"0.5s", "0.5s", 0, 500}, {"empty", "", -1, 0},
		{"unit only", "ms", -1, 0}, {"negative", "-5s", -1, 0},
		{"unknown unit", "5w", -1, 0}, {"nan", "nan", -1, 0},
		{"inf", "inf", -1, 0}, {"huge", "1e20", -1, 0},
	};
	static const struct {
		const char *label;
		const char *text;
		int rc;
		size_t bytes;
	} sizes[] = {
		{"64K", "64K", 0, 65536}, {"2M", "2M", 0, 2097152},
		{"1G", "1G", 0, 1073741824}, {"bare 10", "10", 0, 10},
		{"empty", "", -1, 0}, {"64KB", "64KB", -1, 0},
		{"negative", "-1K", -1, 0}, {"1T", "1T", -1, 0},
	};
	static const struct {
		const char *label;
		const char *text;
		int rc;
		bool value;
	} bools[] = {
		{"yes", "yes", 0, true}, {"no", "no", 0, false},
		{"On", "On", 0, true}, {"FALSE", "FALSE", 0, false},
		{"y", "y", -1, false}, {"empty", "", -1, false},
		{"2", "2", -1, false}, {"yes with space", "yes ", -1, false},
	};
	static const struct {
		const char *label;
		const char *text;
		int rc;
		double value;
	} doubles[] = {
		{"7", "7", 0, 7.0}, {"-0.5", "-0.5", 0, -0.5},
		{"empty", "", -1, 0}, {"7x", "7x", -1, 0},
		{"inf", "inf", -1, 0}, {"nan", "nan", -1, 0},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(durations); i++) {
		long ms = -42;
		int rc = config_parse_duration_ms(durations[i].text, &ms);

		EXPECT_INT(durations[i].label, rc, durations[i].rc);
		EXPECT_INT(durations[i].label, ms,
		    durations[i].rc == 0 ? durations[i].ms : -42);
	}
	for (size_t i = 0; i < NELEM(sizes); i++) {
		size_t bytes = 42;
		int rc = config_parse_size(sizes[i].text, &bytes);

		EXPECT_INT(sizes[i].label, rc, sizes[i].rc);
		EXPECT_INT(sizes[i].label, bytes,
		    sizes[i].rc == 0 ? sizes[i].bytes : 42);
	}
	for (size_t i = 0; i < NELEM(bools); i++) {
		bool b = !bools[i].value;
		int rc = config_parse_bool(bools[i].text, &b);

		EXPECT_INT(bools[i].label, rc, bools[i].rc);
		if (bools[i].rc == 0)
			EXPECT_INT(bools[i].label, b, bools[i].value);
	}
	for (size_t i = 0; i < NELEM(doubles); i++) {
		double d = 0;
		int rc = config_parse_double(doubles[i].text, &d);

		EXPECT_INT(doubles[i].label, rc, doubles[i].rc);
		if (doubles[i].rc == 0)
			EXPECT_DOUBLE(doubles[i].label, d, doubles[i].value);
	}
}

/* A [ratelimit NAME] section: the rule, its defaults and every value. */
static void
test_config_ratelimit_rules_load_with_their_values(void **state)
{
	struct fixture *f = *state;
	char err[MXG_ERRLEN];
	int rc = load(f,
	    "[ratelimit]\n"
	    "on_error = tempfail\n"
	    "skip_recipients = postmaster@\n"
	    "[ratelimit per-client]\n"
	    "key = client_ip\n"
	    "rate = 100/1h\n"
	    "[ratelimit big_senders]\n"
	    "key = sender_domain\n"
	    "rate = 500M/1d\n"
	    "burst = 20M\n"
	    "count = bytes\n"
	    "action = reject\n"
	    "[ratelimit per-client]\n"
	    "burst = 10\n"
	    "[ratelimit fast]\n"
	    "key = sasl_user\n"
	    "rate = 20/m\n"
	    "count = recipients\n"
	    "action = score\n"
	    "score = 2.5\n", 0, err);

	EXPECT_INT("three rules", rc, MXG_OK);
	if (f->cfg == NULL)
		return;
	const struct config *c = f->cfg;
	EXPECT_INT("on_error", c->ratelimit.on_error, ON_ERROR_TEMPFAIL);
	EXPECT_STR("skip_recipients", c->ratelimit.skip_recipients,
	    "postmaster@");
	EXPECT_INT("three rules", c->nratelimits, 3);
	EXPECT_STR("per-client name", c->ratelimits[0].name, "per-client");
	EXPECT_STR("per-client symbol", c->ratelimits[0].symbol,
	    "RATELIMIT_PER_CLIENT");
	EXPECT_INT("per-client key", c->ratelimits[0].key,
	    RATELIMIT_KEY_CLIENT_IP);
	EXPECT_INT("per-client count defaults to messages",
	    c->ratelimits[0].count, RATELIMIT_COUNT_MESSAGES);
	EXPECT_INT("per-client action defaults to defer",
	    c->ratelimits[0].action, RATELIMIT_ACTION_DEFER);
	EXPECT_DOUBLE("per-client limit", c->ratelimits[0].limit, 100);
	EXPECT_INT("per-client period", c->ratelimits[0].period_ms, 3600000);
	EXPECT_DOUBLE("per-client burst from a later section",
	    c->ratelimits[0].burst, 10);
	EXPECT_INT("per-client line", c->ratelimits[0].line, 4);
	EXPECT_DOUBLE("bytes limit", c->ratelimits[1].limit, 500e6);
	EXPECT_INT("bytes period", c->ratelimits[1].period_ms, 86400000);
	EXPECT_DOUBLE("bytes burst", c->ratelimits[1].burst, 20e6);
	EXPECT_INT("bytes count", c->ratelimits[1].count,
	    RATELIMIT_COUNT_BYTES);
	EXPECT_INT("bytes action", c->ratelimits[1].action,
	    RATELIMIT_ACTION_REJECT);
	EXPECT_STR("symbol of a name with _", c->ratelimits[1].symbol,
	    "RATELIMIT_BIG_SENDERS");
	EXPECT_DOUBLE("20/m: burst defaults to the limit",
	    c->ratelimits[2].burst, 20);
	EXPECT_INT("20/m is one minute", c->ratelimits[2].period_ms, 60000);
	EXPECT_DOUBLE("score", c->ratelimits[2].score, 2.5);
}

static void
test_config_ratelimit_rejects_bad_rules_with_file_and_line(void **state)
{
	static const struct error_row rows[] = {
		{"rate without a slash", "[ratelimit a]\nkey = client_ip\n"
		    "rate = 100\n", 0, 3, "[ratelimit] rate: '100' is not "
		    "N/PERIOD with N from 1 (like 100/1h, 20/m, 5/10s)"},
		{"rate that is words", "[ratelimit a]\nrate = lots/1h\n", 0, 2,
		    "[ratelimit] rate: 'lots/1h' is not N/PERIOD with N from 1 "
		    "(like 100/1h, 20/m, 5/10s)"},
		{"zero rate", "[ratelimit a]\nrate = 0/1h\n", 0, 2,
		    "[ratelimit] rate: '0/1h' is not N/PERIOD with N from 1 "
		    "(like 100/1h, 20/m, 5/10s)"},
		{"negative rate", "[ratelimit a]\nrate = -5/1h\n", 0, 2,
		    "[ratelimit] rate: '-5/1h' is not N/PERIOD with N from 1 "
		    "(like 100/1h, 20/m, 5/10s)"},
		{"fractional rate", "[ratelimit a]\nrate = 1.5/1h\n", 0, 2,
		    "[ratelimit] rate: '1.5/1h' is not N/PERIOD with N from 1 "
		    "(like 100/1h, 20/m, 5/10s)"},
		{"zero period", "[ratelimit a]\nrate = 5/0s\n", 0, 2,
		    "[ratelimit] rate: '5/0s' is not N/PERIOD with N from 1 "
		    "(like 100/1h, 20/m, 5/10s)"},
		{"period under a second", "[ratelimit a]\nrate = 5/500ms\n", 0,
		    2, "[ratelimit] rate: '5/500ms' is not N/PERIOD with N from "
		    "1 (like 100/1h, 20/m, 5/10s)"},
		{"period over a year", "[ratelimit a]\nrate = 5/366d\n", 0, 2,
		    "[ratelimit] rate: '5/366d' is not N/PERIOD with N from 1 "
		    "(like 100/1h, 20/m, 5/10s)"},
		{"overflow of events", "[ratelimit a]\nkey = client_ip\n"
		    "rate = 99999999999/1s\n", 0, 3, "[ratelimit a] rate: more "
		    "than 10^9 events per period"},
		{"overflow of bytes", "[ratelimit a]\nkey = client_ip\n"
		    "count = bytes\nrate = 99999999999999/1s\n", 0, 4,
		    "[ratelimit] rate: '99999999999999/1s' is not N/PERIOD with "
		    "N from 1 (like 100/1h, 20/m, 5/10s)"},
		{"overflow of a burst", "[ratelimit a]\nkey = client_ip\n"
		    "rate = 10/1s\nburst = 2G\n", 0, 4, "[ratelimit a] burst: "
		    "more than 10^9 events"},
		{"zero burst", "[ratelimit a]\nburst = 0\n", 0, 2,
		    "[ratelimit] burst: '0' is not a whole number from 1"},
		{"unknown key kind", "[ratelimit a]\nkey = client\n", 0, 2,
		    "[ratelimit] key: 'client' is not one of client_ip "
		    "client_net sender sender_domain sasl_user rcpt "
		    "rcpt_domain"},
		{"unknown count", "[ratelimit a]\ncount = mails\n", 0, 2,
		    "[ratelimit] count: 'mails' is not connections, messages, "
		    "recipients or bytes"},
		{"unknown action", "[ratelimit a]\naction = drop\n", 0, 2,
		    "[ratelimit] action: 'drop' is not defer, reject or score"},
		{"unknown key in a rule", "[ratelimit a]\nkey = client_ip\n"
		    "limit = 5\n", 0, 3, "unknown key 'limit' in [ratelimit a]"},
		{"unknown key in [ratelimit]", "[ratelimit]\nrate = 5/1s\n", 0,
		    2, "unknown key 'rate' in [ratelimit]"},
		{"bad rule name", "[ratelimit a.b]\nkey = client_ip\n", 0, 2,
		    "[ratelimit a.b]: a rule name is letters, digits, - and _"},
		{"rule without a key", "# rules\n[ratelimit a]\nrate = 5/1s\n",
		    0, 2, "[ratelimit a] has no key"},
		{"rule without a rate", "[ratelimit a]\nkey = sender\n", 0, 1,
		    "[ratelimit a] has no rate"},
		{"connections keyed on the sender",
		    "[ratelimit a]\nkey = sender\nrate = 5/1s\n"
		    "count = connections\n", 0, 1, "[ratelimit a] count = "
		    "connections needs key = client_ip or client_net, not sender "
		    "(only the client is known at connect)"},
		{"bad skip_networks value type", "[ratelimit]\n"
		    "skip_authenticated = maybe\n", 0, 2,
		    "skip_authenticated: 'maybe' is not yes or no"},
	};
	struct fixture *f = *state;
	char err[MXG_ERRLEN];

	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc = load(f, rows[i].text, rows[i].len, err);

		expect_error(rows[i].label, f, rc, err, rows[i].line,
		    rows[i].reason);
	}
}

static void
test_config_free_null_is_a_no_op(void **state)
{
	(void)state;
	config_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_fill_every_field),
		cmocka_unit_test(test_config_free_null_is_a_no_op),
		cmocka_unit_test(test_config_value_parsers_accept_and_refuse),
		cmocka_unit_test_setup_teardown(test_config_empty_or_comment_only_file_gives_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_reads_every_value_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_repeated_sections_merge_into_one_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_stores_a_single_score_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_stores_score_overrides_with_their_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_rejects_bad_input_with_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_rejects_lines_longer_than_198_characters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_rejects_more_than_256_score_overrides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_missing_file_is_an_io_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_ratelimit_rules_load_with_their_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_ratelimit_rejects_bad_rules_with_file_and_line, setup, teardown),
		/* Regressions for lib/config.c bugs they describe (fixed). */
		cmocka_unit_test_setup_teardown(test_config_rejects_nul_byte_with_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_reports_a_syntax_error_before_a_later_bad_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_unreadable_path_is_an_io_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_rejects_binary_garbage_with_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_long_continued_value_is_not_cut_silently, setup, teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
