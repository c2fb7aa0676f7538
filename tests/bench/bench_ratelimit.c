/*
 * bench_ratelimit - rate-limit decisions per second through a running
 * mxguard-policy: M connections at once, each sending N
 * protocol_state=RCPT requests one after the other (as Postfix's smtpd
 * does on one connection), every request a new message (a new
 * instance) with a client address, sender, SASL user and recipient, so
 * that every [ratelimit NAME] rule of the config that counts messages or
 * recipients matches it. A benchmark that prints figures, never a test.
 *
 *	bench_ratelimit -c CONF [-m CONNECTIONS] [-n REQUESTS] [-k KEYS]
 *	                [-S ADDRESS] [-s SEED] [-p NAME=PID]...
 *
 * CONF is the config the server runs with (tests/bench/ratelimit.conf
 * holds ten rules, one per key and count, to append to a config with
 * [redis] and [policy]): the server's address comes from [policy]
 * listen (inet:PORT@HOST or unix:/PATH; -S overrides it), and the rules
 * are counted to say how many buckets each request touches. Clients,
 * senders, SASL users and recipients are drawn from KEYS values each
 * (default 2000), uniformly, so that the buckets are many and some fill.
 * Every decision is one EVALSHA of all those buckets, so the figures
 * are the policy server's parsing, the engine and one Redis round trip.
 *
 * Per request, the time from the first byte sent to the end of the
 * answer. Prints requests, wall seconds, decisions per second, latency
 * p50/p99/max, the answers (DUNNO, 450 with the rule's key, 550, 4xx)
 * and with -p NAME=PID (mxguard-policy=PID, redis=PID) those processes'
 * CPU per decision. Exit 0; 1 when a connection failed, an answer was
 * malformed or the config has no rule that matches; 2 for usage errors.
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

struct conn {
	pthread_t tid;
	const struct bench_target *target;
	unsigned long requests;
	unsigned int id;
	unsigned long keys;
	uint64_t rng;
	struct bench_tally actions;
	struct bench_lat lat;
	bool failed;
	char error[512];
};

static pthread_barrier_t start_line;

static void
usage(FILE *out)
{
	fprintf(out, "usage: bench_ratelimit -c CONF [-m CONNECTIONS] "
	    "[-n REQUESTS] [-k KEYS]\n"
	    "                       [-S ADDRESS] [-s SEED] [-p NAME=PID]...\n");
}

/* A request as Postfix 3.7's smtpd sends it at RCPT TO, after SASL
 * authentication; values drawn from keys of each kind. */
static void
format_request(struct strbuf *sb, struct conn *c, unsigned long n)
{
	/* Client addresses spread over 100.64.0.0/10, most in a /24 of
	 * their own (Knuth's multiplicative hash). */
	uint64_t client = bench_rand_below(&c->rng, c->keys) *
	    2654435761u & 0x3fffff;
	uint64_t sender = bench_rand_below(&c->rng, c->keys);
	uint64_t user = bench_rand_below(&c->rng, c->keys);
	uint64_t rcpt = bench_rand_below(&c->rng, c->keys);

	strbuf_reset(sb);
	strbuf_printf(sb,
	    "request=smtpd_access_policy\n"
	    "protocol_state=RCPT\n"
	    "protocol_name=ESMTP\n"
	    "client_address=100.%u.%u.%u\n"
	    "client_name=unknown\n"
	    "client_port=%lu\n"
	    "reverse_client_name=unknown\n"
	    "server_address=192.0.2.25\n"
	    "server_port=587\n"
	    "helo_name=client%llu.example\n"
	    "sender=user%llu@sender%llu.example\n"
	    "recipient=rcpt%llu@dest%llu.example\n"
	    "recipient_count=0\n"
	    "queue_id=\n"
	    "instance=%x.%lx.0\n"
	    "size=0\n"
	    "etrn_domain=\n"
	    "stress=\n"
	    "sasl_method=PLAIN\n"
	    "sasl_username=user%llu\n"
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
	    64 + (unsigned)(client >> 16 & 63), (unsigned)(client >> 8 & 255),
	    (unsigned)(client & 255), 40000 + n % 20000,
	    (unsigned long long)client, (unsigned long long)sender,
	    (unsigned long long)(sender % 97), (unsigned long long)rcpt,
	    (unsigned long long)(rcpt % 89), c->id, n,
	    (unsigned long long)user);
}

/* The kind of answer, a static name for the tally: a 450 by the word
 * after "for" (client, network, sender ...). */
static const char *
action_kind(const char *answer)
{
	static const struct {
		const char *after, *name;
	} limited[] = {
		{"for client ", "450 client"},
		{"for network ", "450 network"},
		{"for sender domain ", "450 sender domain"},
		{"for sender ", "450 sender"},
		{"for SASL user ", "450 SASL user"},
		{"for recipient domain ", "450 recipient domain"},
		{"for recipient ", "450 recipient"},
	};
	const char *a;

	if (strncmp(answer, "action=", 7) != 0)
		return NULL;
	a = answer + 7;
	if (strncmp(a, "DUNNO", 5) == 0)
		return "DUNNO";
	if (strncmp(a, "450 4.7.1 Rate limit exceeded ", 30) == 0) {
		for (size_t i = 0; i < sizeof(limited) / sizeof(*limited); i++)
			if (strncmp(a + 30, limited[i].after,
			    strlen(limited[i].after)) == 0)
				return limited[i].name;
		return "450";
	}
	if (strncmp(a, "DEFER_IF_PERMIT", 15) == 0)
		return "DEFER_IF_PERMIT";
	if (a[0] == '4')
		return "4xx other";
	if (a[0] == '5')
		return "5xx";
	return "other";
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	struct strbuf req = STRBUF_INIT;
	char answer[4096];
	int fd = bench_target_connect(c->target, c->error, sizeof(c->error));

	pthread_barrier_wait(&start_line);
	if (fd < 0) {
		c->failed = true;
		goto out;
	}
	for (unsigned long i = 0; i < c->requests; i++) {
		const char *kind;
		size_t len;

		format_request(&req, c, i);
		uint64_t t0 = bench_now_ns();
		if (!bench_send_all(fd, req.data, req.len)) {
			snprintf(c->error, sizeof(c->error), "send: %s",
			    strerror(errno));
			c->failed = true;
			break;
		}
		if (!bench_read_answer(fd, answer, sizeof(answer), &len)) {
			snprintf(c->error, sizeof(c->error), "no complete "
			    "answer (%zu bytes)", len);
			c->failed = true;
			break;
		}
		bench_lat_add(&c->lat, bench_now_ns() - t0);
		if ((kind = action_kind(answer)) == NULL) {
			snprintf(c->error, sizeof(c->error), "malformed "
			    "answer: %.80s", answer);
			c->failed = true;
			break;
		}
		bench_tally_add(&c->actions, kind, 1);
	}
	close(fd);
out:
	strbuf_free(&req);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL, *address = NULL;
	long connections = 8, requests = 2000, keys = 2000;
	uint64_t seed = 0;
	struct bench_watchlist watch = {0};
	int opt;

	while ((opt = getopt(argc, argv, "c:m:n:k:S:s:p:h")) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'm': connections = strtol(optarg, NULL, 10); break;
		case 'n': requests = strtol(optarg, NULL, 10); break;
		case 'k': keys = strtol(optarg, NULL, 10); break;
		case 'S': address = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'p':
			if (bench_watch_add(&watch, optarg) != 0) {
				fprintf(stderr, "bench_ratelimit: -p %s: not "
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
	    connections > 1000 || requests < 1 || keys < 1 ||
	    keys > (1L << 22)) {
		usage(stderr);
		return 2;
	}

	char err[MXG_ERRLEN];
	struct config *cfg;
	if (config_load(config_path, &cfg, err) != 0) {
		fprintf(stderr, "bench_ratelimit: %s\n", err);
		return 2;
	}
	log_init("bench_ratelimit", true, LOG_LEVEL_WARNING);
	size_t rules = 0;
	for (size_t i = 0; i < cfg->nratelimits; i++)
		rules += cfg->ratelimits[i].count == RATELIMIT_COUNT_MESSAGES ||
		    cfg->ratelimits[i].count == RATELIMIT_COUNT_RECIPIENTS;
	if (!cfg->ratelimit.enabled || rules == 0) {
		fprintf(stderr, "bench_ratelimit: %s has no [ratelimit NAME] "
		    "rule that counts messages or recipients\n", config_path);
		config_free(cfg);
		return 1;
	}
	struct bench_target target;
	if (address == NULL)
		address = cfg->policy.listen;
	if (bench_target_parse(address, &target) != 0) {
		fprintf(stderr, "bench_ratelimit: '%s' is not inet:PORT@HOST "
		    "or unix:/PATH\n", address);
		config_free(cfg);
		return 2;
	}
	if (seed == 0)
		seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();

	struct conn *c = mxg_calloc((size_t)connections, sizeof(*c));
	pthread_barrier_init(&start_line, NULL, (unsigned)connections + 1);
	for (long i = 0; i < connections; i++) {
		c[i].target = &target;
		c[i].requests = (unsigned long)requests;
		c[i].id = (unsigned)i;
		c[i].keys = (unsigned long)keys;
		c[i].rng = (seed + (uint64_t)i * 0x9E3779B97F4A7C15ULL) | 1;
		if (pthread_create(&c[i].tid, NULL, conn_main, &c[i]) != 0) {
			fprintf(stderr, "bench_ratelimit: pthread_create "
			    "failed\n");
			return 2;
		}
	}
	bench_watch_start(&watch);
	double cpu0 = bench_cpu_seconds();
	pthread_barrier_wait(&start_line);
	uint64_t t0 = bench_now_ns();
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
		if (c[i].failed && failed++ < 5)
			fprintf(stderr, "bench_ratelimit: connection %ld: %s\n",
			    i, c[i].error);
	}

	printf("bench_ratelimit: %ld connections x %ld requests, server %s, "
	    "%zu rules matching each request, %ld values of each key\n",
	    connections, requests, address, rules, keys);
	printf("decisions:          %zu%s\n", lat.n, failed ?
	    " (some connections failed: see stderr)" : "");
	bench_print_load(&lat, wall, cpu, "decisions", "decision");
	bench_watch_print(&watch, "decision", (unsigned long)lat.n, stdout);
	bench_tally_print(&actions, "answers:", (unsigned long)lat.n, stdout);

	for (long i = 0; i < connections; i++) {
		bench_tally_free(&c[i].actions);
		bench_lat_free(&c[i].lat);
	}
	free(c);
	pthread_barrier_destroy(&start_line);
	bench_tally_free(&actions);
	bench_lat_free(&lat);
	config_free(cfg);
	return failed ? 1 : 0;
}
