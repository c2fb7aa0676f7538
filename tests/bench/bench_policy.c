/*
 * bench_policy - a load generator for mxguard-policy: M connections at
 * once, each sending N protocol_state=RCPT requests one after the other
 * (as Postfix's smtpd does on one connection), with the latency of each.
 * A benchmark that prints figures, never a test.
 *
 *	bench_policy -c CONF [-m CONNECTIONS] [-n REQUESTS] [-d DOMAINS]
 *	             [-S ADDRESS] [-s SEED] [-p NAME=PID]...
 *
 * CONF is the config the server runs with: the server's address comes
 * from [policy] listen (inet:PORT@HOST, inet:PORT meaning 127.0.0.1, or
 * unix:/PATH; -S overrides it in the same form) and the warm-up waits
 * out [greylist] delay. Requests carry the attributes Postfix 3.7 sends
 * (about 30 lines); client, HELO, sender and recipient follow
 * benchutil.h's greylisting mix (40% new triplets, 25% retries, 35%
 * regular correspondents), senders in DOMAINS (comma-separated; default
 * a built-in list), so that SPF, when the server has it on, looks up
 * those domains' records. Before timing, one connection sends the
 * regular correspondents twice, the delay apart, so that they are known,
 * and 250 new triplets of each connection's stream before the pause, so
 * that the first timed retries find triplets old enough to pass.
 *
 * Per request, the time from the first byte sent to the end of the
 * answer (clock_gettime). Prints requests, wall seconds, requests per
 * second, latency p50/p99/max, the actions answered (DUNNO,
 * DEFER_IF_PERMIT, PREPEND with the Received-SPF result, 4xx, 5xx) and, with -p NAME=PID (say
 * policy=PID of mxguard-policy, redis=PID), those processes' CPU time
 * per request over the timed part. Exit 0; 1 when a connection failed
 * or an answer was malformed; 2 for usage errors.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/config.h"
#include "../../lib/log.h"
#include "../../lib/mxg.h"
#include "../../lib/strbuf.h"
#include "benchutil.h"

static const char *const default_domains[] = {
	"northwind.example", "contoso.example", "fabrikam.example",
	"tailspin.example", "wingtip.example", "litware.example",
	"proseware.example", "woodgrove.example", "cheap-deals.example",
	"esp.example", NULL,
};

/* New triplets per connection sent in the warm-up, for early retries. */
#define PREFILL 250

struct conn {
	pthread_t tid;
	struct bench_mix mix;
	const struct bench_target *target;
	unsigned long requests;
	unsigned int id;
	struct bench_tally actions;
	struct bench_lat lat;
	bool failed;
	char error[512];
};

/* Every thread waits here, so that the timed part starts together. */
static pthread_barrier_t start_line;

static void
usage(FILE *out)
{
	fprintf(out, "usage: bench_policy -c CONF [-m CONNECTIONS] "
	    "[-n REQUESTS] [-d DOMAINS]\n"
	    "                    [-S ADDRESS] [-s SEED] [-p NAME=PID]...\n");
}

/* The request Postfix 3.7's smtpd sends at RCPT TO. */
static void
format_request(struct strbuf *sb, const struct bench_triplet *tr,
    unsigned int conn_id, unsigned long n)
{
	strbuf_reset(sb);
	strbuf_printf(sb,
	    "request=smtpd_access_policy\n"
	    "protocol_state=RCPT\n"
	    "protocol_name=ESMTP\n"
	    "client_address=%s\n"
	    "client_name=%s\n"
	    "client_port=%lu\n"
	    "reverse_client_name=%s\n"
	    "server_address=192.0.2.25\n"
	    "server_port=25\n"
	    "helo_name=%s\n"
	    "sender=%s\n"
	    "recipient=%s\n"
	    "recipient_count=0\n"
	    "queue_id=\n"
	    "instance=%x.%lx.0\n"
	    "size=0\n"
	    "etrn_domain=\n"
	    "stress=\n"
	    "sasl_method=\n"
	    "sasl_username=\n"
	    "sasl_sender=\n"
	    "ccert_subject=\n"
	    "ccert_issuer=\n"
	    "ccert_fingerprint=\n"
	    "ccert_pubkey_fingerprint=\n"
	    "encryption_protocol=TLSv1.3\n"
	    "encryption_cipher=TLS_AES_256_GCM_SHA384\n"
	    "encryption_keysize=256\n"
	    "policy_context=\n"
	    "compatibility_level=3.6\n"
	    "mail_version=3.7.11\n"
	    "\n",
	    tr->client, tr->client_name[0] ? tr->client_name : "unknown",
	    40000 + n % 20000, tr->client_name[0] ? tr->client_name :
	    "unknown", tr->helo, tr->sender, tr->rcpt, conn_id, n);
}

/* The kind of action, as a static name for the tally. */
static const char *
action_kind(const char *answer)
{
	const char *a;

	if (strncmp(answer, "action=", 7) != 0)
		return NULL;
	a = answer + 7;
	if (strncmp(a, "DUNNO", 5) == 0)
		return "DUNNO";
	if (strncmp(a, "DEFER_IF_PERMIT", 15) == 0)
		return "DEFER_IF_PERMIT";
	if (strncmp(a, "PREPEND Received-SPF: ", 22) == 0) {
		/* The SPF result, so that one sees SPF ran. */
		static const char *const spf[] = {
			"PREPEND spf=pass", "PREPEND spf=fail",
			"PREPEND spf=softfail", "PREPEND spf=neutral",
			"PREPEND spf=none", "PREPEND spf=temperror",
			"PREPEND spf=permerror",
		};
		const char *r = a + 22;

		for (size_t i = 0; i < sizeof(spf) / sizeof(*spf); i++) {
			size_t len = strlen(spf[i] + 12);

			if (strncmp(r, spf[i] + 12, len) == 0 &&
			    (r[len] == ' ' || r[len] == '\n'))
				return spf[i];
		}
		return "PREPEND";
	}
	if (strncmp(a, "PREPEND", 7) == 0)
		return "PREPEND";
	if (a[0] == '4')
		return "4xx";
	if (a[0] == '5')
		return "5xx";
	return "other";
}

/* One request and its answer; the kind of action, or NULL with error. */
static const char *
exchange(int fd, struct strbuf *req, char *error, size_t errlen)
{
	char answer[4096];
	size_t len;
	const char *kind;

	if (!bench_send_all(fd, req->data, req->len)) {
		snprintf(error, errlen, "send: %s", strerror(errno));
		return NULL;
	}
	if (!bench_read_answer(fd, answer, sizeof(answer), &len)) {
		snprintf(error, errlen, "no complete answer (%zu bytes)", len);
		return NULL;
	}
	if ((kind = action_kind(answer)) == NULL)
		snprintf(error, errlen, "malformed answer: %.80s", answer);
	return kind;
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	struct strbuf req = STRBUF_INIT;
	int fd = bench_target_connect(c->target, c->error, sizeof(c->error));

	pthread_barrier_wait(&start_line);
	if (fd < 0) {
		c->failed = true;
		goto out;
	}
	for (unsigned long i = 0; i < c->requests; i++) {
		struct bench_triplet tr;
		const char *kind;

		bench_mix_next(&c->mix, &tr);
		format_request(&req, &tr, c->id, i);
		uint64_t t0 = bench_now_ns();
		kind = exchange(fd, &req, c->error, sizeof(c->error));
		if (kind == NULL) {
			c->failed = true;
			break;
		}
		bench_lat_add(&c->lat, bench_now_ns() - t0);
		bench_tally_add(&c->actions, kind, 1);
	}
	close(fd);
out:
	strbuf_free(&req);
	return NULL;
}

/* The regular correspondents, twice, the delay apart, and the first new
 * triplets of each connection before the pause. */
static int
warm_up(const struct bench_target *t, const char *const *domains, long delay_ms,
    struct conn *conns, long nconns, struct bench_tally *after)
{
	struct strbuf req = STRBUF_INIT;
	char err[512];
	int fd = bench_target_connect(t, err, sizeof(err));
	size_t n = bench_known_count();

	if (fd < 0) {
		fprintf(stderr, "bench_policy: %s\n", err);
		return -1;
	}
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			usleep((useconds_t)(delay_ms + 1100) * 1000);
		size_t total = n + (round == 0 ? (size_t)nconns * PREFILL : 0);
		for (size_t i = 0; i < total; i++) {
			struct bench_triplet tr;
			const char *kind;

			if (i < n)
				bench_known_triplet(i, domains, &tr);
			else
				bench_mix_new(&conns[(i - n) / PREFILL].mix,
				    &tr);
			format_request(&req, &tr, 0xffff, i);
			if ((kind = exchange(fd, &req, err, sizeof(err))) ==
			    NULL) {
				fprintf(stderr, "bench_policy: warm-up: %s\n",
				    err);
				close(fd);
				strbuf_free(&req);
				return -1;
			}
			if (round == 1 && i < n)
				bench_tally_add(after, kind, 1);
		}
	}
	close(fd);
	strbuf_free(&req);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL, *address = NULL, *domain_text = NULL;
	long connections = 8, requests = 1000;
	uint64_t seed = 0;
	struct bench_watchlist watch = {0};
	int opt;

	while ((opt = getopt(argc, argv, "c:m:n:d:S:s:p:h")) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'm': connections = strtol(optarg, NULL, 10); break;
		case 'n': requests = strtol(optarg, NULL, 10); break;
		case 'd': domain_text = optarg; break;
		case 'S': address = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'p':
			if (bench_watch_add(&watch, optarg) != 0) {
				fprintf(stderr, "bench_policy: -p %s: not "
				    "NAME=PID (at most %d)\n", optarg,
				    BENCH_MAX_WATCH);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (config_path == NULL || optind != argc || connections < 1 ||
	    connections > 1000 || requests < 1) {
		usage(stderr);
		return 2;
	}

	char err[MXG_ERRLEN];
	struct config *cfg;
	if (config_load(config_path, &cfg, err) != 0) {
		fprintf(stderr, "bench_policy: %s\n", err);
		return 2;
	}
	log_init("bench_policy", true, LOG_LEVEL_WARNING);
	struct bench_target target;
	if (address == NULL)
		address = cfg->policy.listen;
	if (bench_target_parse(address, &target) != 0) {
		fprintf(stderr, "bench_policy: '%s' is not inet:PORT@HOST or "
		    "unix:/PATH\n", address);
		config_free(cfg);
		return 2;
	}
	char **domain_list = domain_text ? bench_list_split(domain_text) : NULL;
	const char *const *domains = domain_list && domain_list[0] ?
	    (const char *const *)domain_list : default_domains;
	if (seed == 0)
		seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();

	long delay_ms = cfg->greylist.enabled ? cfg->greylist.delay_ms : 0;
	struct conn *c = mxg_calloc((size_t)connections, sizeof(*c));
	for (long i = 0; i < connections; i++)
		bench_mix_init(&c[i].mix, seed + (uint64_t)i *
		    0x9E3779B97F4A7C15ULL, domains, delay_ms);

	struct bench_tally warm = {0};
	uint64_t t0 = bench_now_ns();
	if (warm_up(&target, domains, delay_ms, c, connections, &warm) != 0) {
		for (long i = 0; i < connections; i++)
			bench_mix_free(&c[i].mix);
		free(c);
		bench_list_free(domain_list);
		config_free(cfg);
		return 1;
	}
	double warm_s = (double)(bench_now_ns() - t0) / 1e9;

	pthread_barrier_init(&start_line, NULL, (unsigned)connections + 1);
	for (long i = 0; i < connections; i++) {
		c[i].target = &target;
		c[i].requests = (unsigned long)requests;
		c[i].id = (unsigned)i;
		if (pthread_create(&c[i].tid, NULL, conn_main, &c[i]) != 0) {
			fprintf(stderr, "bench_policy: pthread_create failed\n");
			return 2;
		}
	}
	/* Connections are opened before the start line, not timed. */
	bench_watch_start(&watch);
	double cpu0 = bench_cpu_seconds();
	pthread_barrier_wait(&start_line);
	t0 = bench_now_ns();
	for (long i = 0; i < connections; i++)
		pthread_join(c[i].tid, NULL);
	double wall = (double)(bench_now_ns() - t0) / 1e9;
	double cpu = bench_cpu_seconds() - cpu0;

	struct bench_tally actions = {0};
	struct bench_lat lat = {0};
	int failed = 0;
	for (long i = 0; i < connections; i++) {
		bench_tally_merge(&actions, &c[i].actions);
		bench_lat_merge(&lat, &c[i].lat);
		if (c[i].failed) {
			if (failed++ < 5)
				fprintf(stderr, "bench_policy: connection "
				    "%ld: %s\n", i, c[i].error);
		}
	}

	printf("bench_policy: %ld connections x %ld requests, server %s\n",
	    connections, requests, address);
	printf("warm-up:            %.3f s (%zu known triplets sent twice, "
	    "%ld new ones, untimed)\n", warm_s, bench_known_count(),
	    (long)PREFILL * connections);
	bench_tally_print(&warm, "  known after it:", 0, stdout);
	printf("requests:           %zu%s\n", lat.n, failed ?
	    " (some connections failed: see stderr)" : "");
	bench_print_load(&lat, wall, cpu, "requests", "request");
	bench_watch_print(&watch, "request", (unsigned long)lat.n, stdout);
	bench_tally_print(&actions, "actions:", (unsigned long)lat.n, stdout);

	for (long i = 0; i < connections; i++) {
		bench_tally_free(&c[i].actions);
		bench_lat_free(&c[i].lat);
		bench_mix_free(&c[i].mix);
	}
	free(c);
	pthread_barrier_destroy(&start_line);
	bench_tally_free(&actions);
	bench_tally_free(&warm);
	bench_lat_free(&lat);
	bench_list_free(domain_list);
	config_free(cfg);
	return failed ? 1 : 0;
}
