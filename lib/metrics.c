#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "engine.h"
#include "log.h"
#include "mxg.h"
#include "verdict.h"

#ifndef MXG_VERSION
#define MXG_VERSION "dev"
#endif

/* A scrape is one short request; a few at once is plenty, and a client
 * that stalls must not hold a connection for long. */
#define METRICS_HTTP_CONNECTIONS 16
#define METRICS_HTTP_TIMEOUT_S 10

/*
 * One set of upper bounds for every histogram: a cached DNS answer or a
 * Redis command on loopback takes ~100 us, a DNS timeout seconds. The
 * text form is what Prometheus shows in `le`.
 */
static const struct {
	const char *le;
	uint64_t ns;
} METRICS_BUCKETS[] = {
	{"0.0001", 100000ull}, {"0.00025", 250000ull}, {"0.0005", 500000ull},
	{"0.001", 1000000ull}, {"0.0025", 2500000ull}, {"0.005", 5000000ull},
	{"0.01", 10000000ull}, {"0.025", 25000000ull}, {"0.05", 50000000ull},
	{"0.1", 100000000ull}, {"0.25", 250000000ull}, {"0.5", 500000000ull},
	{"1", 1000000000ull}, {"2.5", 2500000000ull}, {"5", 5000000000ull},
	{"10", 10000000000ull}, {"30", 30000000000ull},
};
#define NBUCKETS (sizeof(METRICS_BUCKETS) / sizeof(*METRICS_BUCKETS))

/* Counts per bucket, not cumulative (the text adds them up); the last
 * one is +Inf. The count is their sum, so _count always equals the
 * +Inf bucket, even while observations land during a scrape. */
struct histogram {
	atomic_uint_fast64_t counts[NBUCKETS + 1];
	atomic_uint_fast64_t sum_ns;
};

struct result_series {
	char *check;
	char *result;
	uint64_t count;
};

struct check_histogram {
	char *check;
	struct histogram h;
};

struct symbol_count {
	char *name;		/* NULL: free slot */
	uint64_t count;
};

#define NACTIONS (VERDICT_REJECT + 1)
#define NDNS_STATUS (DNS_PERMFAIL + 1)
/* Far more than the checks there are (engine.h: ENGINE_MAX_CHECKS). */
#define MAX_CHECK_HISTOGRAMS 64
/* Open addressing at most half full. */
#define SYMBOL_SLOTS (2 * METRICS_MAX_SYMBOLS)

static const char *const policy_actions[] = {
	"dunno", "prepend", "defer_if_permit", "tempfail", "reject", "other",
};
#define NPOLICY_ACTIONS (sizeof(policy_actions) / sizeof(*policy_actions))
#define POLICY_OTHER (NPOLICY_ACTIONS - 1)

static const char *daemon_name = "unknown";

static atomic_uint_fast64_t messages[NACTIONS];
static atomic_uint_fast64_t policy_requests[NPOLICY_ACTIONS];
static atomic_uint_fast64_t dns_queries[NDNS_STATUS];
static atomic_uint_fast64_t redis_commands[2];	/* [0] error, [1] ok */
static struct histogram message_duration;
static struct histogram policy_request_duration;
static struct histogram dns_duration;
static struct histogram redis_duration;
static atomic_int_fast64_t connections;
static atomic_uint_fast64_t config_generation;
static atomic_int config_last_success;
static atomic_int_fast64_t config_last_reload_ms;

/* The tables whose label values are only known as they come. */
static pthread_mutex_t tables_lock = PTHREAD_MUTEX_INITIALIZER;
static struct result_series results[METRICS_MAX_SERIES];
static size_t nresults;
static struct check_histogram *check_histograms[MAX_CHECK_HISTOGRAMS];
static size_t ncheck_histograms;
static struct symbol_count *symbols;	/* SYMBOL_SLOTS, made on first use */
static size_t nsymbols;

static struct MHD_Daemon *httpd;

/* ---------------------------------------------------------- counting */

static void
histogram_observe(struct histogram *h, uint64_t ns)
{
	size_t i = 0;

	while (i < NBUCKETS && ns > METRICS_BUCKETS[i].ns)
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

static uint64_t
seconds_to_ns(double seconds)
{
	if (!(seconds > 0))	/* negative, zero or NaN */
		return 0;
	if (seconds > 1e9)
		return UINT64_C(1000000000) * 1000000000u;
	return (uint64_t)(seconds * 1e9);
}

/* Callers hold tables_lock. */
static void
result_add_locked(const char *check, const char *result)
{
	for (size_t i = 0; i < nresults; i++)
		if (strcmp(results[i].check, check) == 0 &&
		    strcmp(results[i].result, result) == 0) {
			results[i].count++;
			return;
		}
	if (nresults == METRICS_MAX_SERIES)
		return;
	results[nresults].check = mxg_strdup(check);
	results[nresults].result = mxg_strdup(result);
	results[nresults].count = 1;
	nresults++;
}

static struct histogram *
check_histogram_locked(const char *check)
{
	struct check_histogram *ch;

	for (size_t i = 0; i < ncheck_histograms; i++)
		if (strcmp(check_histograms[i]->check, check) == 0)
			return &check_histograms[i]->h;
	if (ncheck_histograms == MAX_CHECK_HISTOGRAMS)
		return NULL;
	/* calloc: the atomics start at 0. */
	ch = mxg_calloc(1, sizeof(*ch));
	ch->check = mxg_strdup(check);
	check_histograms[ncheck_histograms++] = ch;
	return &ch->h;
}

static void
symbol_add_locked(const char *name)
{
	uint32_t hash = 2166136261u;	/* FNV-1a */
	size_t i;

	if (symbols == NULL)
		symbols = mxg_calloc(SYMBOL_SLOTS, sizeof(*symbols));
	for (const char *p = name; *p; p++)
		hash = (hash ^ (unsigned char)*p) * 16777619u;
	for (i = hash % SYMBOL_SLOTS; symbols[i].name != NULL;
	    i = (i + 1) % SYMBOL_SLOTS)
		if (strcmp(symbols[i].name, name) == 0) {
			symbols[i].count++;
			return;
		}
	if (nsymbols == METRICS_MAX_SYMBOLS)
		return;
	symbols[i].name = mxg_strdup(name);
	symbols[i].count = 1;
	nsymbols++;
}

/* A scan's structured results, symbols and times; the checks' time
 * summed goes to total. */
static void
record_scan(const struct engine *engine, const struct scan *scan,
    struct histogram *total)
{
	const struct verdict *v = scan->verdict;
	size_t n = engine_check_count(engine);
	uint64_t sum_ns = 0;

	if (n > ENGINE_MAX_CHECKS)
		n = ENGINE_MAX_CHECKS;
	pthread_mutex_lock(&tables_lock);
	if (scan->spf.code != SPF_RES_NOT_CHECKED)
		result_add_locked("spf", spf_result_name(scan->spf.code));
	if (scan->dkim.checked) {
		for (size_t i = 0; i < scan->dkim.count; i++)
			result_add_locked("dkim",
			    dkim_result_name(scan->dkim.sigs[i].code));
		if (scan->dkim.count == 0)
			result_add_locked("dkim", "none");
	}
	if (scan->dmarc.checked)
		result_add_locked("dmarc", dmarc_result_name(scan->dmarc.code));
	for (size_t i = 0; i < v->nsymbols; i++)
		symbol_add_locked(v->symbols[i].name);
	for (size_t i = 0; i < n; i++) {
		struct histogram *h;

		/* A check that did not run (a later stage never reached, a
		 * trusted client) has no time to count. */
		if (scan->check_ns[i] == 0)
			continue;
		sum_ns += scan->check_ns[i];
		if ((h = check_histogram_locked(engine_check_name(engine, i)))
		    != NULL)
			histogram_observe(h, scan->check_ns[i]);
	}
	pthread_mutex_unlock(&tables_lock);
	if (!scan->trusted)
		histogram_observe(total, sum_ns);
}

void
metrics_init(const char *daemon)
{
	daemon_name = daemon != NULL ? daemon : "unknown";
}

void
metrics_message(const struct engine *engine, const struct scan *scan)
{
	enum verdict_action action = scan->verdict->action;

	if ((unsigned)action < NACTIONS)
		atomic_fetch_add_explicit(&messages[action], 1,
		    memory_order_relaxed);
	record_scan(engine, scan, &message_duration);
}

/* The label of a policy action: its first word ("DEFER_IF_PERMIT 4.7.1
 * Greylisted" -> defer_if_permit; "550 5.7.23 ..." -> reject). */
static size_t
policy_action_index(const char *action)
{
	size_t len = strcspn(action, " \t");

	if (len > 0 && action[0] == '4' && action[1] >= '0' &&
	    action[1] <= '9')
		return 3;
	if (len > 0 && action[0] == '5' && action[1] >= '0' &&
	    action[1] <= '9')
		return 4;
	if (len == 5 && strncasecmp(action, "DEFER", len) == 0)
		return 3;
	if (len == 6 && strncasecmp(action, "REJECT", len) == 0)
		return 4;
	for (size_t i = 0; i < POLICY_OTHER; i++)
		if (strlen(policy_actions[i]) == len &&
		    strncasecmp(action, policy_actions[i], len) == 0)
			return i;
	return POLICY_OTHER;
}

void
metrics_policy_request(const struct engine *engine, const struct scan *scan,
    const char *action)
{
	atomic_fetch_add_explicit(&policy_requests[policy_action_index(
	    action != NULL ? action : "")], 1, memory_order_relaxed);
	if (scan != NULL)
		record_scan(engine, scan, &policy_request_duration);
}

void
metrics_check_result(const char *check, const char *result)
{
	pthread_mutex_lock(&tables_lock);
	result_add_locked(check, result);
	pthread_mutex_unlock(&tables_lock);
}

void
metrics_dns_query(int status, double seconds)
{
	if (status < 0 || status >= (int)NDNS_STATUS)
		return;
	atomic_fetch_add_explicit(&dns_queries[status], 1,
	    memory_order_relaxed);
	histogram_observe(&dns_duration, seconds_to_ns(seconds));
}

void
metrics_redis_command(bool ok, double seconds)
{
	atomic_fetch_add_explicit(&redis_commands[ok ? 1 : 0], 1,
	    memory_order_relaxed);
	histogram_observe(&redis_duration, seconds_to_ns(seconds));
}

void
metrics_connection(int delta)
{
	atomic_fetch_add_explicit(&connections, delta, memory_order_relaxed);
}

void
metrics_config_loaded(bool ok)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (ok)
		atomic_fetch_add(&config_generation, 1);
	atomic_store(&config_last_success, ok ? 1 : 0);
	atomic_store(&config_last_reload_ms,
	    (int_fast64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

/* ---------------------------------------------------------- rendering */

/* key="value", the value escaped as the text format wants and kept to
 * printable ASCII (the format wants UTF-8; we never need more). */
static void
put_label(struct strbuf *out, const char *key, const char *value)
{
	strbuf_puts(out, key);
	strbuf_puts(out, "=\"");
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p == '\\')
			strbuf_puts(out, "\\\\");
		else if (*p == '"')
			strbuf_puts(out, "\\\"");
		else if (*p == '\n')
			strbuf_puts(out, "\\n");
		else if (*p < 32 || *p > 126)
			strbuf_putc(out, '?');
		else
			strbuf_putc(out, (char)*p);
	}
	strbuf_putc(out, '"');
}

static void
put_family(struct strbuf *out, const char *name, const char *type,
    const char *help)
{
	strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* name{key="value"} count, or name count when key is NULL. */
static void
put_count(struct strbuf *out, const char *name, const char *key,
    const char *value, uint64_t count)
{
	strbuf_puts(out, name);
	if (key != NULL) {
		strbuf_putc(out, '{');
		put_label(out, key, value);
		strbuf_putc(out, '}');
	}
	strbuf_printf(out, " %llu\n", (unsigned long long)count);
}

/* The series of one histogram, with one label or none. */
static void
put_histogram(struct strbuf *out, const char *name, const char *key,
    const char *value, struct histogram *h)
{
	struct strbuf labels = STRBUF_INIT;
	uint64_t cumulative = 0;

	if (key != NULL) {
		put_label(&labels, key, value);
		strbuf_putc(&labels, ',');
	}
	for (size_t i = 0; i <= NBUCKETS; i++) {
		cumulative += atomic_load_explicit(&h->counts[i],
		    memory_order_relaxed);
		strbuf_printf(out, "%s_bucket{%sle=\"%s\"} %llu\n", name,
		    labels.len ? labels.data : "",
		    i < NBUCKETS ? METRICS_BUCKETS[i].le : "+Inf",
		    (unsigned long long)cumulative);
	}
	if (labels.len)
		labels.data[--labels.len] = '\0';	/* the ',' */
	uint64_t sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
	strbuf_printf(out, "%s_sum%s%s%s %llu.%09llu\n", name,
	    labels.len ? "{" : "", labels.len ? labels.data : "",
	    labels.len ? "}" : "", (unsigned long long)(sum_ns / 1000000000u),
	    (unsigned long long)(sum_ns % 1000000000u));
	strbuf_printf(out, "%s_count%s%s%s %llu\n", name,
	    labels.len ? "{" : "", labels.len ? labels.data : "",
	    labels.len ? "}" : "", (unsigned long long)cumulative);
	strbuf_free(&labels);
}

static int
symbol_order(const void *a, const void *b)
{
	const struct symbol_count *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
result_order(const void *a, const void *b)
{
	const struct result_series *x = a, *y = b;
	int c = strcmp(x->check, y->check);

	return c != 0 ? c : strcmp(x->result, y->result);
}

static void
render_tables_locked(struct strbuf *out)
{
	struct result_series *sorted_results;
	struct symbol_count *top;
	size_t ntop = 0;

	put_family(out, "mxguard_check_results_total", "counter",
	    "Results of the checks: spf, dmarc per message, dkim per "
	    "signature, greylist and ratelimit per decision.");
	sorted_results = mxg_calloc(nresults + 1, sizeof(*sorted_results));
	memcpy(sorted_results, results, nresults * sizeof(*results));
	qsort(sorted_results, nresults, sizeof(*sorted_results), result_order);
	for (size_t i = 0; i < nresults; i++) {
		strbuf_puts(out, "mxguard_check_results_total{");
		put_label(out, "check", sorted_results[i].check);
		strbuf_putc(out, ',');
		put_label(out, "result", sorted_results[i].result);
		strbuf_printf(out, "} %llu\n",
		    (unsigned long long)sorted_results[i].count);
	}
	free(sorted_results);

	put_family(out, "mxguard_symbol_hits_total", "counter",
	    "Messages that got each symbol, for the most frequent symbols.");
	top = mxg_calloc(nsymbols + 1, sizeof(*top));
	for (size_t i = 0; symbols != NULL && i < SYMBOL_SLOTS; i++)
		if (symbols[i].name != NULL)
			top[ntop++] = symbols[i];
	qsort(top, ntop, sizeof(*top), symbol_order);
	for (size_t i = 0; i < ntop && i < METRICS_TOP_SYMBOLS; i++)
		put_count(out, "mxguard_symbol_hits_total", "symbol",
		    top[i].name, top[i].count);
	free(top);

	put_family(out, "mxguard_check_duration_seconds", "histogram",
	    "Time each check spent on a message it ran on.");
	for (size_t i = 0; i < ncheck_histograms; i++)
		put_histogram(out, "mxguard_check_duration_seconds", "check",
		    check_histograms[i]->check, &check_histograms[i]->h);
}

void
metrics_render(struct strbuf *out)
{
	static const char *const redis_status[] = {"error", "ok"};

	put_family(out, "mxguard_build_info", "gauge",
	    "Always 1; the labels say which build and daemon this is.");
	strbuf_puts(out, "mxguard_build_info{");
	put_label(out, "version", MXG_VERSION);
	strbuf_putc(out, ',');
	put_label(out, "daemon", daemon_name);
	strbuf_puts(out, "} 1\n");

	put_family(out, "mxguard_config_generation", "gauge",
	    "Configurations loaded: 1 at start, +1 per reload that took "
	    "effect.");
	put_count(out, "mxguard_config_generation", NULL, NULL,
	    atomic_load(&config_generation));
	put_family(out, "mxguard_config_last_reload_success", "gauge",
	    "1 when the last (re)load of the configuration took effect.");
	put_count(out, "mxguard_config_last_reload_success", NULL, NULL,
	    (uint64_t)atomic_load(&config_last_success));
	put_family(out, "mxguard_config_last_reload_timestamp_seconds", "gauge",
	    "Unix time of the last (re)load attempt.");
	int_fast64_t ms = atomic_load(&config_last_reload_ms);
	strbuf_printf(out, "mxguard_config_last_reload_timestamp_seconds "
	    "%lld.%03lld\n", (long long)(ms / 1000), (long long)(ms % 1000));

	put_family(out, "mxguard_connections_in_flight", "gauge",
	    "Connections open now (MTA to milter, Postfix to policy server).");
	strbuf_printf(out, "mxguard_connections_in_flight %lld\n",
	    (long long)atomic_load_explicit(&connections,
	    memory_order_relaxed));

	put_family(out, "mxguard_messages_total", "counter",
	    "Messages decided, by action.");
	for (size_t i = 0; i < NACTIONS; i++)
		put_count(out, "mxguard_messages_total", "action",
		    verdict_action_name((enum verdict_action)i),
		    atomic_load_explicit(&messages[i], memory_order_relaxed));

	put_family(out, "mxguard_policy_requests_total", "counter",
	    "Policy requests answered, by action.");
	for (size_t i = 0; i < NPOLICY_ACTIONS; i++)
		put_count(out, "mxguard_policy_requests_total", "action",
		    policy_actions[i], atomic_load_explicit(
		    &policy_requests[i], memory_order_relaxed));

	pthread_mutex_lock(&tables_lock);
	render_tables_locked(out);
	pthread_mutex_unlock(&tables_lock);

	put_family(out, "mxguard_message_duration_seconds", "histogram",
	    "Time the checks spent on one message, summed.");
	put_histogram(out, "mxguard_message_duration_seconds", NULL, NULL,
	    &message_duration);
	put_family(out, "mxguard_policy_request_duration_seconds", "histogram",
	    "Time the checks spent on one policy request, summed.");
	put_histogram(out, "mxguard_policy_request_duration_seconds", NULL,
	    NULL, &policy_request_duration);

	put_family(out, "mxguard_dns_queries_total", "counter",
	    "DNS queries waited for, by status (a timeout is tempfail).");
	for (int i = 0; i < (int)NDNS_STATUS; i++)
		put_count(out, "mxguard_dns_queries_total", "status",
		    dns_status_name((enum dns_status)i), atomic_load_explicit(
		    &dns_queries[i], memory_order_relaxed));
	put_family(out, "mxguard_dns_query_duration_seconds", "histogram",
	    "DNS query time, from sending to the answer or the deadline.");
	put_histogram(out, "mxguard_dns_query_duration_seconds", NULL, NULL,
	    &dns_duration);

	put_family(out, "mxguard_redis_commands_total", "counter",
	    "Redis commands and scripts run for the checks, by status.");
	for (size_t i = 0; i < 2; i++)
		put_count(out, "mxguard_redis_commands_total", "status",
		    redis_status[i], atomic_load_explicit(&redis_commands[i],
		    memory_order_relaxed));
	put_family(out, "mxguard_redis_command_duration_seconds", "histogram",
	    "Redis command time, connecting and retrying included.");
	put_histogram(out, "mxguard_redis_command_duration_seconds", NULL,
	    NULL, &redis_duration);
}

/* ---------------------------------------------------------- serving */

static void
__attribute__((format(printf, 2, 0)))
httpd_log(void *arg, const char *fmt, va_list ap)
{
	char line[512];
	size_t len;

	(void)arg;
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	log_msg(NULL, LOG_LEVEL_INFO, "metrics: %s", line);
}

static enum MHD_Result
reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result
handle_request(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **request)
{
	struct MHD_Response *resp;
	struct strbuf text = STRBUF_INIT;
	enum MHD_Result rc;
	size_t len;

	(void)arg;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)request;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "only GET and HEAD\n");
	if (strcmp(url, "/metrics") != 0)
		return reply_text(conn, MHD_HTTP_NOT_FOUND,
		    "not found: the metrics are at /metrics\n");
	metrics_render(&text);
	len = text.len;
	resp = MHD_create_response_from_buffer(len, strbuf_steal(&text),
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; version=0.0.4; charset=utf-8");
	rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* A listening socket on HOST:PORT ([V6]:PORT) into *out; 0 or MXG_E*
 * with err. */
static int
listen_socket(const char *listen_spec, int *out, bool *ipv6, char *err)
{
	const char *spec = listen_spec, *colon = strrchr(listen_spec, ':');
	struct addrinfo hints, *res = NULL;
	char host[256];
	size_t hostlen;
	int fd = -1, rc, saved = EADDRNOTAVAIL, one = 1;

	*out = -1;
	if (colon == NULL || colon == listen_spec || colon[1] == '\0')
		return mxg_fail(err, MXG_EINVAL, "metrics: listen '%s' is not "
		    "HOST:PORT", listen_spec);
	hostlen = (size_t)(colon - listen_spec);
	if (listen_spec[0] == '[' && hostlen >= 2 && colon[-1] == ']') {
		listen_spec++;
		hostlen -= 2;
	}
	if (hostlen == 0 || hostlen >= sizeof(host))
		return mxg_fail(err, MXG_EINVAL, "metrics: listen '%s': bad "
		    "host", spec);
	memcpy(host, listen_spec, hostlen);
	host[hostlen] = '\0';

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
		return mxg_fail(err, MXG_EIO, "metrics: listen %s: %s", spec,
		    gai_strerror(rc));
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 64) == 0) {
			*ipv6 = ai->ai_family == AF_INET6;
			break;
		}
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return mxg_fail(err, MXG_EIO, "metrics: cannot listen on "
		    "%s: %s", spec, strerror(saved));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	*out = fd;
	return MXG_OK;
}

int
metrics_start(const char *listen_spec, char *err)
{
	bool ipv6 = false;
	int fd, rc;

	if (httpd != NULL)
		return mxg_fail(err, MXG_EINVAL, "metrics: already serving");
	if (listen_spec == NULL)
		return mxg_fail(err, MXG_EINVAL, "metrics: no listen address");
	if ((rc = listen_socket(listen_spec, &fd, &ipv6, err)) != MXG_OK)
		return rc;
	httpd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD |
	    MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
	    handle_request, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, httpd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT_S,
	    MHD_OPTION_END);
	if (httpd == NULL) {
		close(fd);
		return mxg_fail(err, MXG_EIO, "metrics: libmicrohttpd did not "
		    "start on %s", listen_spec);
	}
	return MXG_OK;
}

void
metrics_stop(void)
{
	if (httpd == NULL)
		return;
	/* Closes the listening socket too. */
	MHD_stop_daemon(httpd);
	httpd = NULL;
}
