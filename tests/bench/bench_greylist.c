/*
 * bench_greylist - greylisting decisions per second against the
 * configured Redis, through the engine's RCPT stage as the milter drives
 * it, with latency per decision. A benchmark that prints figures, never a
 * test.
 *
 *	bench_greylist -c CONF [-n DECISIONS] [-t THREADS] [-s SEED] [-a]
 *	               [-p NAME=PID]...
 *
 * CONF must turn greylisting on with mode = triplet ([greylist] enabled =
 * yes) and name the Redis to use ([redis] server). SPF, DKIM, DMARC and
 * content rules are switched off in the loaded config, so that a decision
 * is greylisting alone (-a keeps every check as configured: SPF then runs
 * at MAIL before each decision, as in the milter).
 *
 * Each decision is one transaction on one connection's message and scan,
 * as mxguard-policy does it: message_reset and scan_reset, client, HELO,
 * MAIL FROM, one RCPT TO, engine_run_stage(RCPT). The triplets follow
 * benchutil.h's mix: 40% never seen (deferred), 25% retries of earlier
 * ones (most after [greylist] delay: passed; some too early: deferred),
 * 35% regular correspondents. Before timing, the regular correspondents
 * and 1000 new triplets per thread are decided once, the delay is waited
 * out, and the regular correspondents are decided again: they are then
 * known (passed), the networks with 5 or more of them auto-whitelisted,
 * as on a server that has run for a while, and the first timed retries
 * find triplets old enough to pass. Each run draws new clients (the seed
 * defaults to the time), so Redis need not be emptied between runs.
 *
 * Prints decisions, wall seconds, decisions per second, CPU ms per
 * decision (this process only; -p redis=PID adds the CPU time Redis
 * spent over the same timed part, per decision), latency
 * p50/p99/max (clock_gettime around each decision), the outcome mix
 * (from the GREYLIST_* symbol each decision adds) and the traffic mix.
 * Exit 0; 1 when every decision failed (Redis down); 2 for usage or config
 * errors.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/config.h"
#include "../../lib/engine.h"
#include "../../lib/greylist.h"
#include "../../lib/log.h"
#include "../../lib/message.h"
#include "../../lib/mxg.h"
#include "benchutil.h"

/* Sender domains of the traffic mix. */
static const char *const domains[] = {
	"northwind.example", "contoso.example", "fabrikam.example",
	"tailspin.example", "wingtip.example", "litware.example",
	"proseware.example", "woodgrove.example", "cheap-deals.example",
	"esp.example", NULL,
};

/* New triplets per thread decided in the warm-up, for early retries. */
#define PREFILL 1000

struct worker {
	pthread_t tid;
	struct bench_mix mix;
	struct engine *engine;
	const struct config *cfg;
	unsigned long decisions;
	struct bench_tally outcomes, kinds;
	struct bench_lat lat;
	unsigned long refused;
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: bench_greylist -c CONF [-n DECISIONS] "
	    "[-t THREADS] [-s SEED] [-a]\n"
	    "                      [-p NAME=PID]...\n");
}

/* The outcome of the decision just made, from its symbol. */
static const char *
outcome_of(const struct scan *scan)
{
	static const char *const names[] = {
		"GREYLIST_DEFER", "GREYLIST_PASS", "GREYLIST_AWL",
		"GREYLIST_SKIP", "GREYLIST_ERROR",
	};
	const struct verdict *v = scan->verdict;

	for (size_t i = 0; i < v->nsymbols; i++)
		for (size_t k = 0; k < sizeof(names) / sizeof(*names); k++)
			if (strcmp(v->symbols[i].name, names[k]) == 0)
				return names[k];
	return scan->verdict->forced ? "forced-before-rcpt" : "none";
}

/* One transaction up to RCPT TO; returns the outcome's name. */
static const char *
decide(struct engine *engine, struct message *msg, struct scan *scan,
    const struct bench_triplet *tr, bool *refused)
{
	message_reset(msg);
	scan_reset(scan);
	message_set_client(msg, tr->client, tr->client_name[0] ?
	    tr->client_name : NULL);
	message_set_helo(msg, tr->helo);
	message_set_mail_from(msg, tr->sender);
	message_add_rcpt(msg, tr->rcpt);
	engine_run_stage(engine, scan, STAGE_RCPT);
	*refused = scan->rcpt_refused_now;
	return outcome_of(scan);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct message *msg = message_new(w->cfg->milter.header_limit,
	    w->cfg->milter.body_scan_limit);
	struct scan *scan = scan_new(w->engine, msg);

	for (unsigned long i = 0; i < w->decisions; i++) {
		struct bench_triplet tr;
		enum bench_mix_kind kind = bench_mix_next(&w->mix, &tr);
		bool refused;
		uint64_t t0 = bench_now_ns();
		const char *outcome = decide(w->engine, msg, scan, &tr,
		    &refused);

		bench_lat_add(&w->lat, bench_now_ns() - t0);
		bench_tally_add(&w->outcomes, outcome, 1);
		bench_tally_add(&w->kinds, bench_mix_kind_name(kind), 1);
		w->refused += refused;
	}
	scan_free(scan);
	message_free(msg);
	return NULL;
}

/* The regular correspondents, decided until they pass, and the first
 * new triplets of each thread (see above). */
static void
warm_up(struct engine *engine, const struct config *cfg, struct worker *w,
    long nworkers, struct bench_tally *after)
{
	struct message *msg = message_new(cfg->milter.header_limit,
	    cfg->milter.body_scan_limit);
	struct scan *scan = scan_new(engine, msg);
	size_t n = bench_known_count();
	unsigned long deferred = 0;

	for (int round = 0; round < 2; round++) {
		if (round == 1 && deferred > 0)
			usleep((useconds_t)(cfg->greylist.delay_ms + 1100) *
			    1000);
		for (size_t i = 0; i < n; i++) {
			struct bench_triplet tr;
			bool refused;
			const char *o;

			bench_known_triplet(i, domains, &tr);
			o = decide(engine, msg, scan, &tr, &refused);
			if (round == 0)
				deferred += refused;
			else
				bench_tally_add(after, o, 1);
		}
		for (long t = 0; round == 0 && t < nworkers; t++)
			for (int i = 0; i < PREFILL; i++) {
				struct bench_triplet tr;
				bool refused;

				bench_mix_new(&w[t].mix, &tr);
				decide(engine, msg, scan, &tr, &refused);
				deferred += refused;
			}
	}
	scan_free(scan);
	message_free(msg);
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL;
	long decisions = 20000, threads = 1;
	uint64_t seed = 0;
	bool keep_checks = false;
	struct bench_watchlist watch = {0};
	int opt;

	while ((opt = getopt(argc, argv, "c:n:t:s:ap:h")) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'n': decisions = strtol(optarg, NULL, 10); break;
		case 't': threads = strtol(optarg, NULL, 10); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'a': keep_checks = true; break;
		case 'p':
			if (bench_watch_add(&watch, optarg) != 0) {
				fprintf(stderr, "bench_greylist: -p %s: not "
				    "NAME=PID (at most %d)\n", optarg,
				    BENCH_MAX_WATCH);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (config_path == NULL || optind != argc || decisions < 1 ||
	    threads < 1 || threads > 256) {
		usage(stderr);
		return 2;
	}

	char err[MXG_ERRLEN];
	struct config *cfg;
	if (config_load(config_path, &cfg, err) != 0) {
		fprintf(stderr, "bench_greylist: %s\n", err);
		return 2;
	}
	if (!cfg->greylist.enabled ||
	    cfg->greylist.mode != GREYLIST_MODE_TRIPLET) {
		fprintf(stderr, "bench_greylist: %s: [greylist] must be "
		    "enabled with mode = triplet\n", config_path);
		config_free(cfg);
		return 2;
	}
	if (!keep_checks) {
		cfg->spf.enabled = false;
		cfg->dkim.enabled = false;
		cfg->dmarc.enabled = false;
		cfg->rules.enabled = false;
	}
	log_init("bench_greylist", true, cfg->milter.log_level <
	    LOG_LEVEL_WARNING ? cfg->milter.log_level : LOG_LEVEL_WARNING);
	if (seed == 0)
		seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();

	struct engine *engine;
	if (engine_new(cfg, &engine, err) != 0) {
		fprintf(stderr, "bench_greylist: %s\n", err);
		config_free(cfg);
		return 2;
	}

	struct worker *w = mxg_calloc((size_t)threads, sizeof(*w));
	for (long t = 0; t < threads; t++)
		bench_mix_init(&w[t].mix, seed + (uint64_t)t *
		    0x9E3779B97F4A7C15ULL, domains, cfg->greylist.delay_ms);

	struct bench_tally warm = {0};
	uint64_t t0 = bench_now_ns();
	warm_up(engine, cfg, w, threads, &warm);
	double warm_s = (double)(bench_now_ns() - t0) / 1e9;

	bench_watch_start(&watch);
	double cpu0 = bench_cpu_seconds();
	t0 = bench_now_ns();
	for (long t = 0; t < threads; t++) {
		w[t].engine = engine;
		w[t].cfg = cfg;
		w[t].decisions = (unsigned long)(decisions / threads +
		    (t < decisions % threads));
		if (pthread_create(&w[t].tid, NULL, worker_main, &w[t]) != 0) {
			fprintf(stderr, "bench_greylist: pthread_create "
			    "failed\n");
			return 2;
		}
	}
	for (long t = 0; t < threads; t++)
		pthread_join(w[t].tid, NULL);
	double wall = (double)(bench_now_ns() - t0) / 1e9;
	double cpu = bench_cpu_seconds() - cpu0;

	struct bench_tally outcomes = {0}, kinds = {0};
	struct bench_lat lat = {0};
	unsigned long refused = 0;
	for (long t = 0; t < threads; t++) {
		bench_tally_merge(&outcomes, &w[t].outcomes);
		bench_tally_merge(&kinds, &w[t].kinds);
		bench_lat_merge(&lat, &w[t].lat);
		refused += w[t].refused;
	}

	printf("bench_greylist: %ld decisions, %ld thread%s, Redis %s, "
	    "delay %ld ms\n", decisions, threads, threads == 1 ? "" : "s",
	    cfg->redis.server, cfg->greylist.delay_ms);
	printf("checks:             greylist%s\n", keep_checks ?
	    " and every other check configured" : " only");
	printf("warm-up:            %.3f s (%zu known triplets decided "
	    "twice, %ld new ones, untimed)\n", warm_s, bench_known_count(),
	    (long)PREFILL * threads);
	bench_tally_print(&warm, "  known after it:", 0, stdout);
	printf("decisions:          %lu\n", (unsigned long)lat.n);
	printf("wall:               %.3f s\n", wall);
	printf("rate:               %.1f decisions/s\n",
	    wall > 0 ? (double)lat.n / wall : 0);
	printf("cpu:                %.3f ms/decision in this process "
	    "(%.2f s user+sys)\n", lat.n ? cpu * 1000.0 / (double)lat.n : 0,
	    cpu);
	bench_watch_print(&watch, "decision", (unsigned long)lat.n, stdout);
	printf("latency:            p50 %.3f ms, p99 %.3f ms, max %.3f ms, "
	    "mean %.3f ms\n", bench_lat_percentile(&lat, 50) / 1e6,
	    bench_lat_percentile(&lat, 99) / 1e6,
	    bench_lat_percentile(&lat, 100) / 1e6, bench_lat_mean(&lat) / 1e6);
	bench_tally_print(&outcomes, "outcomes:", (unsigned long)lat.n, stdout);
	printf("refused at RCPT:    %lu (451 4.7.1)\n", refused);
	bench_tally_print(&kinds, "traffic:", (unsigned long)lat.n, stdout);

	int rc = bench_tally_get(&outcomes, "GREYLIST_ERROR") == lat.n ? 1 : 0;
	for (long t = 0; t < threads; t++) {
		bench_tally_free(&w[t].outcomes);
		bench_tally_free(&w[t].kinds);
		bench_lat_free(&w[t].lat);
		bench_mix_free(&w[t].mix);
	}
	free(w);
	bench_tally_free(&outcomes);
	bench_tally_free(&kinds);
	bench_tally_free(&warm);
	bench_lat_free(&lat);
	engine_free(engine);
	config_free(cfg);
	return rc;
}
