/*
 * test_metrics.c - lib/metrics.h: the exposition text (every family
 * announced, every sample line well formed), histogram buckets
 * cumulative with _count equal to +Inf, label values escaped, and what
 * one message, one policy request, DNS and Redis calls add.
 *
 * The counters are process-wide and only grow, so each test reads the
 * text before and after and compares the difference.
 */
#include "unit.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "../../lib/config.h"
#include "../../lib/dns.h"
#include "../../lib/engine.h"
#include "../../lib/metrics.h"
#include "../../lib/message.h"
#include "../../lib/mxg.h"
#include "../../lib/strbuf.h"
#include "../../lib/verdict.h"

/* Every family lib/metrics.h promises, with its type. */
static const struct {
	const char *name;
	const char *type;
} families[] = {
	{"mxguard_build_info", "gauge"},
	{"mxguard_config_generation", "gauge"},
	{"mxguard_config_last_reload_success", "gauge"},
	{"mxguard_config_last_reload_timestamp_seconds", "gauge"},
	{"mxguard_connections_in_flight", "gauge"},
	{"mxguard_messages_total", "counter"},
	{"mxguard_policy_requests_total", "counter"},
	{"mxguard_check_results_total", "counter"},
	{"mxguard_symbol_hits_total", "counter"},
	{"mxguard_check_duration_seconds", "histogram"},
	{"mxguard_message_duration_seconds", "histogram"},
	{"mxguard_policy_request_duration_seconds", "histogram"},
	{"mxguard_dns_queries_total", "counter"},
	{"mxguard_dns_query_duration_seconds", "histogram"},
	{"mxguard_redis_commands_total", "counter"},
	{"mxguard_redis_command_duration_seconds", "histogram"},
};

static char *
render(void)
{
	struct strbuf sb = STRBUF_INIT;

	metrics_render(&sb);
	return strbuf_steal(&sb);
}

/*
 * The value of the sample whose text before the value is exactly series
 * ("mxguard_messages_total{action=\"reject\"}"); -1 when absent.
 */
static double
sample(const char *text, const char *series)
{
	size_t len = strlen(series);

	for (const char *p = text; p != NULL && *p; ) {
		if (strncmp(p, series, len) == 0 && p[len] == ' ')
			return strtod(p + len + 1, NULL);
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return -1;
}

static double
delta(const char *before, const char *after, const char *series)
{
	double b = sample(before, series), a = sample(after, series);

	if (a < 0)
		fail_msg("series %s is not in the text", series);
	return a - (b < 0 ? 0 : b);
}

static bool
name_char(char c, bool first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' ||
	    (!first && isdigit((unsigned char)c));
}

/* One sample line: name, optional {k="v",...}, space, a number, end. */
static const char *
sample_line_error(const char *line)
{
	const char *p = line;
	char *end;

	if (!name_char(*p, true))
		return "bad first character of the name";
	while (name_char(*p, false))
		p++;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			if (!name_char(*p, true))
				return "bad label name";
			while (name_char(*p, false))
				p++;
			if (p[0] != '=' || p[1] != '"')
				return "label without =\"";
			for (p += 2; *p != '"'; p++) {
				if (*p == '\0' || *p == '\n')
					return "unterminated label value";
				if (*p == '\\') {
					p++;
					if (*p != '\\' && *p != '"' && *p != 'n')
						return "bad escape in label value";
				}
			}
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return "labels not separated by ,";
		}
		p++;
	}
	if (*p != ' ')
		return "no space before the value";
	p++;
	if (strcmp(p, "+Inf") != 0) {
		strtod(p, &end);
		if (end == p || *end != '\0')
			return "value is not a number";
	}
	return NULL;
}

static void
test_metrics_text_announces_every_family_once_and_lines_are_well_formed(
    void **state)
{
	char *text = render(), *copy, *save = NULL;
	char want[256];

	(void)state;
	for (size_t i = 0; i < NELEM(families); i++) {
		snprintf(want, sizeof(want), "# TYPE %s %s\n", families[i].name,
		    families[i].type);
		const char *at = strstr(text, want);
		EXPECT_TRUE(families[i].name, at != NULL);
		EXPECT_TRUE(families[i].name, strstr(at + 1, want) == NULL);
		snprintf(want, sizeof(want), "# HELP %s ", families[i].name);
		EXPECT_TRUE(families[i].name, strstr(text, want) != NULL);
	}
	copy = mxg_strdup(text);
	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const char *why;

		if (line[0] == '#')
			continue;
		EXPECT_TRUE(line, strncmp(line, "mxguard_", 8) == 0);
		if ((why = sample_line_error(line)) != NULL)
			fail_msg("%s: %s", line, why);
	}
	EXPECT_TRUE("ends with a newline", text[strlen(text) - 1] == '\n');
	free(copy);
	free(text);
}

static void
test_metrics_fixed_label_values_are_there_at_zero_from_the_start(
    void **state)
{
	static const char *const series[] = {
		"mxguard_messages_total{action=\"accept\"}",
		"mxguard_messages_total{action=\"add_header\"}",
		"mxguard_messages_total{action=\"rewrite_subject\"}",
		"mxguard_messages_total{action=\"tempfail\"}",
		"mxguard_messages_total{action=\"reject\"}",
		"mxguard_policy_requests_total{action=\"dunno\"}",
		"mxguard_policy_requests_total{action=\"defer_if_permit\"}",
		"mxguard_dns_queries_total{status=\"ok\"}",
		"mxguard_dns_queries_total{status=\"nxdomain\"}",
		"mxguard_dns_queries_total{status=\"nodata\"}",
		"mxguard_dns_queries_total{status=\"tempfail\"}",
		"mxguard_dns_queries_total{status=\"permfail\"}",
		"mxguard_redis_commands_total{status=\"ok\"}",
		"mxguard_redis_commands_total{status=\"error\"}",
		"mxguard_connections_in_flight",
	};
	char *text = render();

	(void)state;
	for (size_t i = 0; i < NELEM(series); i++)
		EXPECT_TRUE(series[i], sample(text, series[i]) >= 0);
	free(text);
}

/* The le bounds of one histogram in order, with their counts. */
static size_t
buckets_of(const char *text, const char *name, const char *labels,
    double *le, double *count, size_t max)
{
	char prefix[256];
	size_t n = 0, plen;

	snprintf(prefix, sizeof(prefix), "%s_bucket{%sle=\"", name, labels);
	plen = strlen(prefix);
	for (const char *p = text; p != NULL && *p && n < max; ) {
		if (strncmp(p, prefix, plen) == 0) {
			const char *q = p + plen;

			le[n] = strncmp(q, "+Inf", 4) == 0 ? 1e300 :
			    strtod(q, NULL);
			q = strchr(q, ' ');
			assert_non_null(q);
			count[n++] = strtod(q + 1, NULL);
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return n;
}

static void
test_metrics_histogram_buckets_are_cumulative_and_count_equals_inf(
    void **state)
{
	static const double values[] = {
		0.00005,	/* below the first bound */
		0.001,		/* on a bound: le is "less or equal" */
		0.003,		/* between bounds */
		60,		/* past the last bound: +Inf only */
	};
	double le[64], count[64], le0[64], count0[64], sum = 0;
	char *before = render(), *after;
	char label[64];
	size_t n, n0;

	(void)state;
	for (size_t i = 0; i < NELEM(values); i++) {
		metrics_dns_query(DNS_OK, values[i]);
		sum += values[i];
	}
	after = render();
	n0 = buckets_of(before, "mxguard_dns_query_duration_seconds", "", le0,
	    count0, NELEM(le0));
	n = buckets_of(after, "mxguard_dns_query_duration_seconds", "", le,
	    count, NELEM(le));
	EXPECT_INT("bucket lines", n, n0);
	EXPECT_TRUE("several buckets", n >= 10);
	EXPECT_TRUE("last is +Inf", le[n - 1] == 1e300);
	for (size_t i = 1; i < n; i++) {
		EXPECT_TRUE("bounds increase", le[i] > le[i - 1]);
		EXPECT_TRUE("counts never decrease", count[i] >= count[i - 1]);
	}
	EXPECT_DOUBLE("_count equals +Inf", sample(after,
	    "mxguard_dns_query_duration_seconds_count"), count[n - 1]);
	for (size_t i = 0; i < n; i++) {
		double want = 0;

		for (size_t v = 0; v < NELEM(values); v++)
			want += values[v] <= le[i];
		snprintf(label, sizeof(label), "bucket le=%g", le[i]);
		EXPECT_DOUBLE(label, count[i] - count0[i], want);
	}
	double grew = delta(before, after,
	    "mxguard_dns_query_duration_seconds_sum");
	EXPECT_TRUE("_sum grew by the values (to the ns)",
	    fabs(grew - sum) < 1e-6);
	EXPECT_DOUBLE("ok counted", delta(before, after,
	    "mxguard_dns_queries_total{status=\"ok\"}"), NELEM(values));
	free(before);
	free(after);
}

static void
test_metrics_label_values_are_escaped_and_kept_to_printable_ascii(
    void **state)
{
	static const struct {
		const char *label;
		const char *check, *result;
		const char *series;
	} rows[] = {
		{"quote, backslash, newline", "esc\"a\\pe\nd", "r",
		    "mxguard_check_results_total{check=\"esc\\\"a\\\\pe\\nd\","
		    "result=\"r\"}"},
		{"control and UTF-8 bytes", "ctl", "r\x01\xc3\xa9s",
		    "mxguard_check_results_total{check=\"ctl\","
		    "result=\"r???s\"}"},
		{"empty value", "", "",
		    "mxguard_check_results_total{check=\"\",result=\"\"}"},
	};
	char *text;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		metrics_check_result(rows[i].check, rows[i].result);
	text = render();
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT_DOUBLE(rows[i].label, sample(text, rows[i].series), 1);
	free(text);
}

static void
test_metrics_policy_actions_are_labelled_by_their_first_word(void **state)
{
	static const struct {
		const char *action;
		const char *label;
	} rows[] = {
		{"DUNNO", "dunno"},
		{"dunno", "dunno"},
		{"PREPEND Received-SPF: pass (...)", "prepend"},
		{"DEFER_IF_PERMIT 4.7.1 Greylisted, try again in 300 seconds",
		    "defer_if_permit"},
		{"550 5.7.23 SPF: example.org forbids 192.0.2.1", "reject"},
		{"REJECT no", "reject"},
		{"451 4.4.3 DNS failure", "tempfail"},
		{"DEFER later", "tempfail"},
		{"FILTER smtp:[127.0.0.1]:10025", "other"},
		{"", "other"},
		{"4", "other"},
	};
	char series[128];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		char *before, *after;

		snprintf(series, sizeof(series),
		    "mxguard_policy_requests_total{action=\"%s\"}",
		    rows[i].label);
		before = render();
		metrics_policy_request(NULL, NULL, rows[i].action);
		after = render();
		EXPECT_DOUBLE(rows[i].action, delta(before, after, series), 1);
		free(before);
		free(after);
	}
}

static void
test_metrics_dns_statuses_and_redis_outcomes_are_counted(void **state)
{
	char *before = render(), *after;

	(void)state;
	metrics_dns_query(DNS_NXDOMAIN, 0.001);
	metrics_dns_query(DNS_TEMPFAIL, 5);
	metrics_dns_query(DNS_TEMPFAIL, 5);
	metrics_dns_query(99, 1);	/* not a status: ignored */
	metrics_redis_command(true, 0.0002);
	metrics_redis_command(false, 1);
	metrics_redis_command(false, 0);
	after = render();
	EXPECT_DOUBLE("nxdomain", delta(before, after,
	    "mxguard_dns_queries_total{status=\"nxdomain\"}"), 1);
	EXPECT_DOUBLE("tempfail", delta(before, after,
	    "mxguard_dns_queries_total{status=\"tempfail\"}"), 2);
	EXPECT_DOUBLE("dns count", delta(before, after,
	    "mxguard_dns_query_duration_seconds_count"), 3);
	EXPECT_DOUBLE("redis ok", delta(before, after,
	    "mxguard_redis_commands_total{status=\"ok\"}"), 1);
	EXPECT_DOUBLE("redis error", delta(before, after,
	    "mxguard_redis_commands_total{status=\"error\"}"), 2);
	EXPECT_DOUBLE("redis count", delta(before, after,
	    "mxguard_redis_command_duration_seconds_count"), 3);
	EXPECT_DOUBLE("redis le=0.00025", delta(before, after,
	    "mxguard_redis_command_duration_seconds_bucket{le=\"0.00025\"}"),
	    2);
	free(before);
	free(after);
}

static void
test_metrics_connections_and_config_gauges(void **state)
{
	char *t0, *t1, *t2, *t3;

	(void)state;
	t0 = render();
	metrics_connection(1);
	metrics_connection(1);
	metrics_connection(-1);
	metrics_config_loaded(true);
	t1 = render();
	metrics_config_loaded(false);
	t2 = render();
	metrics_connection(-1);
	metrics_config_loaded(true);
	t3 = render();
	EXPECT_DOUBLE("one connection open", delta(t0, t1,
	    "mxguard_connections_in_flight"), 1);
	EXPECT_DOUBLE("generation +1", delta(t0, t1,
	    "mxguard_config_generation"), 1);
	EXPECT_DOUBLE("success", sample(t1,
	    "mxguard_config_last_reload_success"), 1);
	EXPECT_TRUE("timestamp is Unix time", sample(t1,
	    "mxguard_config_last_reload_timestamp_seconds") > 1.5e9);
	EXPECT_DOUBLE("failed reload: generation stays", delta(t1, t2,
	    "mxguard_config_generation"), 0);
	EXPECT_DOUBLE("failed reload: success 0", sample(t2,
	    "mxguard_config_last_reload_success"), 0);
	EXPECT_DOUBLE("all closed", delta(t0, t3,
	    "mxguard_connections_in_flight"), 0);
	EXPECT_DOUBLE("good reload again", sample(t3,
	    "mxguard_config_last_reload_success"), 1);
	free(t0);
	free(t1);
	free(t2);
	free(t3);
}

/* An engine running SPF only, against a dead DNS server, and a message
 * whose scan the tests fill by hand. */
struct fixture {
	struct config *cfg;
	struct engine *engine;
	struct message *msg;
	struct scan *scan;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[MXG_ERRLEN] = "";

	assert_non_null(f);
	f->cfg = calloc(1, sizeof(*f->cfg));
	assert_non_null(f->cfg);
	config_defaults(f->cfg);
	f->cfg->dns.nameserver = strdup("127.0.0.1@1");
	f->cfg->dkim.enabled = false;
	f->cfg->dmarc.enabled = false;
	f->cfg->rules.enabled = false;
	f->cfg->greylist.enabled = false;
	f->cfg->dnsbl.enabled = false;
	f->cfg->ratelimit.enabled = false;
	if (engine_new(f->cfg, &f->engine, err) != 0)
		fail_msg("engine_new: %s", err);
	f->msg = message_new(f->cfg->milter.header_limit,
	    f->cfg->milter.body_scan_limit);
	f->scan = scan_new(f->engine, f->msg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	scan_free(f->scan);
	message_free(f->msg);
	engine_free(f->engine);
	config_free(f->cfg);
	free(f);
	return 0;
}

static size_t
spf_index(const struct engine *engine)
{
	for (size_t i = 0; i < engine_check_count(engine); i++)
		if (strcmp(engine_check_name(engine, i), "spf") == 0)
			return i;
	fail_msg("the engine runs no spf check");
	return 0;
}

static void
test_metrics_message_counts_action_results_symbols_and_times(void **state)
{
	struct fixture *f = *state;
	struct scan *scan = f->scan;
	size_t spf = spf_index(f->engine);
	char *before, *after;

	scan->spf.code = SPF_RES_FAIL;
	scan->dkim.checked = true;		/* and no signature */
	scan->dmarc.checked = true;
	scan->dmarc.code = DMARC_RES_FAIL;
	scan->check_ns[spf] = 3000000;		/* 3 ms */
	verdict_add_symbol(scan->verdict, "SPF_FAIL", 4, NULL);
	verdict_force(scan->verdict, VERDICT_REJECT, "5.7.23", "no");
	verdict_decide(scan->verdict, f->cfg);
	EXPECT_INT("the verdict", scan->verdict->action, VERDICT_REJECT);

	before = render();
	metrics_message(f->engine, scan);
	after = render();
	static const struct {
		const char *series;
		double delta;
	} rows[] = {
		{"mxguard_messages_total{action=\"reject\"}", 1},
		{"mxguard_messages_total{action=\"accept\"}", 0},
		{"mxguard_check_results_total{check=\"spf\",result=\"fail\"}", 1},
		{"mxguard_check_results_total{check=\"dkim\",result=\"none\"}", 1},
		{"mxguard_check_results_total{check=\"dmarc\",result=\"fail\"}",
		    1},
		{"mxguard_symbol_hits_total{symbol=\"SPF_FAIL\"}", 1},
		{"mxguard_check_duration_seconds_count{check=\"spf\"}", 1},
		{"mxguard_check_duration_seconds_bucket{check=\"spf\","
		    "le=\"0.0025\"}", 0},
		{"mxguard_check_duration_seconds_bucket{check=\"spf\","
		    "le=\"0.005\"}", 1},
		{"mxguard_check_duration_seconds_sum{check=\"spf\"}", 0.003},
		{"mxguard_message_duration_seconds_count", 1},
		{"mxguard_message_duration_seconds_sum", 0.003},
		{"mxguard_policy_request_duration_seconds_count", 0},
	};
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT_TRUE(rows[i].series, fabs(delta(before, after,
		    rows[i].series) - rows[i].delta) < 1e-9);
	free(before);
	free(after);
}

static void
test_metrics_trusted_message_counts_its_action_but_no_time(void **state)
{
	struct fixture *f = *state;
	char *before, *after;

	f->scan->trusted = true;
	verdict_decide(f->scan->verdict, f->cfg);
	before = render();
	metrics_message(f->engine, f->scan);
	after = render();
	EXPECT_DOUBLE("accept", delta(before, after,
	    "mxguard_messages_total{action=\"accept\"}"), 1);
	EXPECT_DOUBLE("no time", delta(before, after,
	    "mxguard_message_duration_seconds_count"), 0);
	free(before);
	free(after);
}

static void
test_metrics_policy_request_with_a_scan_counts_its_results(void **state)
{
	struct fixture *f = *state;
	size_t spf = spf_index(f->engine);
	char *before, *after;

	f->scan->spf.code = SPF_RES_SOFTFAIL;
	f->scan->check_ns[spf] = 200000;	/* 0.2 ms */
	verdict_decide(f->scan->verdict, f->cfg);
	before = render();
	metrics_policy_request(f->engine, f->scan, "DUNNO");
	after = render();
	EXPECT_DOUBLE("dunno", delta(before, after,
	    "mxguard_policy_requests_total{action=\"dunno\"}"), 1);
	EXPECT_DOUBLE("softfail", delta(before, after,
	    "mxguard_check_results_total{check=\"spf\",result=\"softfail\"}"),
	    1);
	EXPECT_DOUBLE("request time", delta(before, after,
	    "mxguard_policy_request_duration_seconds_bucket{le=\"0.00025\"}"),
	    1);
	EXPECT_DOUBLE("not a message", delta(before, after,
	    "mxguard_message_duration_seconds_count"), 0);
	free(before);
	free(after);
}

static int
count_lines_starting(const char *text, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);

	for (const char *p = text; p != NULL && *p; ) {
		n += strncmp(p, prefix, len) == 0;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return n;
}

static void
test_metrics_symbol_hits_show_only_the_most_frequent(void **state)
{
	struct fixture *f = *state;
	static char names[METRICS_TOP_SYMBOLS + 10][32];
	const int nnames = METRICS_TOP_SYMBOLS + 10;
	char series[96], *text;

	for (int k = 0; k < nnames; k++)
		snprintf(names[k], sizeof(names[k]), "TOPTEST_%02d", k);
	/* Symbol k is on messages k..nnames-1: nnames - k hits. */
	for (int m = 0; m < nnames; m++) {
		verdict_reset(f->scan->verdict);
		for (int k = 0; k <= m; k++)
			verdict_add_symbol(f->scan->verdict, names[k], 0, NULL);
		verdict_decide(f->scan->verdict, f->cfg);
		metrics_message(f->engine, f->scan);
	}
	text = render();
	EXPECT_INT("symbol lines", count_lines_starting(text,
	    "mxguard_symbol_hits_total{"), METRICS_TOP_SYMBOLS);
	snprintf(series, sizeof(series),
	    "mxguard_symbol_hits_total{symbol=\"%s\"}", names[0]);
	EXPECT_DOUBLE("the most frequent", sample(text, series), nnames);
	snprintf(series, sizeof(series),
	    "mxguard_symbol_hits_total{symbol=\"%s\"}",
	    names[METRICS_TOP_SYMBOLS - 1]);
	EXPECT_DOUBLE("the last shown", sample(text, series),
	    nnames - METRICS_TOP_SYMBOLS + 1);
	snprintf(series, sizeof(series),
	    "mxguard_symbol_hits_total{symbol=\"%s\"}",
	    names[METRICS_TOP_SYMBOLS]);
	EXPECT_DOUBLE("the first left out", sample(text, series), -1);
	/* Most frequent first. */
	const char *first = strstr(text, "mxguard_symbol_hits_total{");
	EXPECT_TRUE("ordered by hits", first != NULL &&
	    strncmp(first, "mxguard_symbol_hits_total{symbol=\"TOPTEST_00\"}",
	    46) == 0);
	free(text);
}

/* ---------------------------------------------------------- HTTP */

static int
unused_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* One HTTP/1.0 request; the whole response, or NULL when the
 * connection is refused. Caller frees. */
static char *
http(int port, const char *request)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return NULL;
	}
	assert_int_equal(send(fd, request, strlen(request), 0),
	    (ssize_t)strlen(request));
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		strbuf_append(&sb, buf, (size_t)n);
	close(fd);
	return strbuf_steal(&sb);
}

static void
test_metrics_start_serves_get_metrics_and_refuses_what_it_cannot_do(
    void **state)
{
	char err[MXG_ERRLEN] = "", spec[64], *resp;
	int port = unused_port();

	(void)state;
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	if (metrics_start(spec, err) != 0)
		fail_msg("metrics_start %s: %s", spec, err);
	EXPECT_INT("a second start", metrics_start(spec, err), MXG_EINVAL);

	resp = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(resp);
	EXPECT_TRUE("200", strncmp(resp, "HTTP/1.1 200", 12) == 0 ||
	    strncmp(resp, "HTTP/1.0 200", 12) == 0);
	EXPECT_TRUE("content type", strstr(resp,
	    "text/plain; version=0.0.4") != NULL);
	EXPECT_TRUE("the text", strstr(resp, "\r\n\r\n# HELP mxguard_") !=
	    NULL);
	free(resp);
	resp = http(port, "GET /other HTTP/1.0\r\n\r\n");
	assert_non_null(resp);
	EXPECT_TRUE("404", strstr(resp, " 404 ") != NULL);
	free(resp);
	resp = http(port, "DELETE /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(resp);
	EXPECT_TRUE("405", strstr(resp, " 405 ") != NULL);
	free(resp);
	metrics_stop();
	metrics_stop();		/* a no-op */
	resp = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	EXPECT_TRUE("stopped: refused", resp == NULL);
	free(resp);
}

static void
test_metrics_start_reports_bad_addresses_and_ports_in_use(void **state)
{
	static const struct {
		const char *spec;
		int rc;
		const char *says;
	} rows[] = {
		{"no-port", MXG_EINVAL, "not HOST:PORT"},
		{":9100", MXG_EINVAL, "not HOST:PORT"},
		{"127.0.0.1:", MXG_EINVAL, "not HOST:PORT"},
		{"[]:9100", MXG_EINVAL, "bad host"},
		{"192.0.2.1:9100", MXG_EIO, "cannot listen on 192.0.2.1:9100"},
		{"no-such-host.invalid:9100", MXG_EIO, "no-such-host.invalid"},
	};
	char err[MXG_ERRLEN], spec[64];
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		err[0] = '\0';
		EXPECT_INT(rows[i].spec, metrics_start(rows[i].spec, err),
		    rows[i].rc);
		if (strstr(err, rows[i].says) == NULL)
			fail_msg("%s: err \"%s\" lacks \"%s\"", rows[i].spec,
			    err, rows[i].says);
	}
	/* A port someone else listens on. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", ntohs(sin.sin_port));
	EXPECT_INT("port in use", metrics_start(spec, err), MXG_EIO);
	EXPECT_TRUE(err, strstr(err, "Address already in use") != NULL);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_text_announces_every_family_once_and_lines_are_well_formed),
		cmocka_unit_test(test_metrics_fixed_label_values_are_there_at_zero_from_the_start),
		cmocka_unit_test(test_metrics_histogram_buckets_are_cumulative_and_count_equals_inf),
		cmocka_unit_test(test_metrics_label_values_are_escaped_and_kept_to_printable_ascii),
		cmocka_unit_test(test_metrics_policy_actions_are_labelled_by_their_first_word),
		cmocka_unit_test(test_metrics_dns_statuses_and_redis_outcomes_are_counted),
		cmocka_unit_test(test_metrics_connections_and_config_gauges),
		cmocka_unit_test_setup_teardown(test_metrics_message_counts_action_results_symbols_and_times, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_trusted_message_counts_its_action_but_no_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_policy_request_with_a_scan_counts_its_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_symbol_hits_show_only_the_most_frequent, setup, teardown),
		cmocka_unit_test(test_metrics_start_serves_get_metrics_and_refuses_what_it_cannot_do),
		cmocka_unit_test(test_metrics_start_reports_bad_addresses_and_ports_in_use),
		/* Last: the text with everything above in it. */
		cmocka_unit_test(test_metrics_text_announces_every_family_once_and_lines_are_well_formed),
	};

	metrics_init("unit");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
