/*
 * bench_engine - how fast the engine judges mail: messages per second and
 * CPU time per message, with every check the config turns on, on a warm
 * resolver cache. A benchmark that prints figures, never a test.
 *
 *	bench_engine -c CONF [-n ITERATIONS] [-t THREADS] [-i IP] [-H HELO]
 *	             [-f FROM] [-r RCPT] [-v] DIR
 *
 * Every regular file in DIR (names starting with "." left out) is one
 * message, read once into memory (LF line ends become CRLF, as
 * `mxguard check` does). ONE engine judges them all: first one untimed
 * warm-up pass (the resolver cache fills; a recipient deferred by
 * greylisting makes the warm-up wait out [greylist] delay and pass again,
 * up to 3 passes, so that the timed passes see known triplets), then
 * ITERATIONS timed passes shared by THREADS threads (default 1 and 1).
 * Each judgement is what `mxguard check` does: a new message and scan,
 * HELO, MAIL, one RCPT, the headers, the body in 64 KB chunks, then
 * engine_finish.
 *
 * THE ENVELOPE OF EACH MESSAGE comes from headers at the top of its file,
 * which are removed before the engine sees the message:
 *	X-Bench-Client: 192.0.2.17        client IP (default -i, 192.0.2.1)
 *	X-Bench-Helo: mail.example.org    HELO name (default -H, "bench.invalid")
 *	X-Bench-Mail-From: a@example.org  envelope sender, "<>" null sender
 *	                                  (default -f, else the From address)
 *	X-Bench-Rcpt: b@example.net       the one recipient (default -r,
 *	                                  "postmaster@bench.example")
 * Any other X-Bench-* header is removed too (the corpus generator keeps
 * its notes there, e.g. X-Bench-Kind).
 *
 * Prints: messages judged, wall seconds, messages per second, CPU ms per
 * message (getrusage user + system of the whole process, resolver thread
 * included, over the timed passes, divided by messages), latency p50 and
 * p99 per message, where the time goes per check (each enabled check's
 * wall time per message from scan->check_ns, DNS and Redis waits
 * included, and its share of the mean latency; "outside checks" is the
 * rest: parsing, verdict, headers), the mix of actions, SPF, DKIM (per
 * signature) and DMARC results, the most frequent symbols, and how many timed
 * judgements ended with another action than the warm-up's (DMARC's pct=
 * sampling is random; otherwise 0 unless something, DNS say, failed
 * under load). -v lists each message with its warm-up action, and those
 * that later ended otherwise. Exit 0, or 2 for usage, config or input errors.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/config.h"
#include "../../lib/engine.h"
#include "../../lib/log.h"
#include "../../lib/message.h"
#include "../../lib/mxg.h"
#include "benchutil.h"

#define CHUNK 65536
#define WARMUP_PASSES 3

/* A message of the corpus and what the warm-up made of it. */
struct bench_message {
	const struct bench_mail *mail;
	const char *warm_action;	/* the warm-up's last verdict */
	bool deferred;		/* refused at RCPT in the last warm-up */
};

/* What one thread saw. */
struct stats {
	unsigned long judged;
	unsigned long differing;	/* action other than the warm-up's */
	unsigned long deferred;		/* recipient refused at RCPT */
	unsigned long dkim_unsigned;
	struct bench_tally actions, spf, dkim, dmarc, symbols;
	struct bench_lat lat;
	uint64_t check_ns[ENGINE_MAX_CHECKS];	/* summed scan->check_ns */
};

struct shared {
	struct engine *engine;
	const struct config *cfg;
	struct bench_message *msgs;
	size_t nmsgs;
	unsigned long total;		/* judgements to make */
	atomic_ulong next;
	atomic_uint *differs;		/* per message, for -v */
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: bench_engine -c CONF [-n ITERATIONS] [-t THREADS] "
	    "[-i IP] [-H HELO]\n"
	    "                    [-f FROM] [-r RCPT] [-v] DIR\n");
}

/* ---------------------------------------------------------- judging */

/*
 * One message, as `mxguard check` drives the engine (cli/mxguard.c,
 * command_check): the same stages in the same order, the same chunks.
 * Returns the action's name; *deferred when the recipient was refused.
 */
static const char *
judge(struct engine *engine, const struct config *cfg,
    const struct bench_mail *m, struct stats *st, bool *deferred)
{
	struct message *msg = message_new(cfg->milter.header_limit,
	    cfg->milter.body_scan_limit);
	struct scan *scan;
	const char *action;
	bool stop;

	*deferred = false;
	if (message_set_client(msg, m->client, NULL) < 0) {
		fprintf(stderr, "bench_engine: %s: client '%s' is not an "
		    "address; judged as unknown\n", m->name, m->client);
		message_set_client(msg, NULL, NULL);
	}
	scan = scan_new(engine, msg);
	message_set_helo(msg, m->helo);
	stop = engine_run_stage(engine, scan, STAGE_HELO);
	if (!stop) {
		message_set_mail_from(msg, m->from);
		stop = engine_run_stage(engine, scan, STAGE_MAIL);
	}
	if (!stop) {
		message_add_rcpt(msg, m->rcpt);
		stop = engine_run_stage(engine, scan, STAGE_RCPT);
	}
	if (!stop && msg->nrcpts == 0) {
		const struct rcpt_refusal *r =
		    &scan->refused[scan->nrefused - 1];

		verdict_force(scan->verdict, r->reject ? VERDICT_REJECT :
		    VERDICT_TEMPFAIL, r->enhanced, "%s", r->text);
		*deferred = true;
		stop = true;
	}
	if (!stop) {
		size_t body = message_parse_headers(msg, m->data, m->len);

		stop = engine_run_stage(engine, scan, STAGE_EOH);
		for (size_t off = body; !stop && off < m->len; off += CHUNK)
			engine_body(engine, scan, m->data + off,
			    m->len - off < CHUNK ? m->len - off : CHUNK);
	}
	engine_finish(engine, scan);

	const struct verdict *v = scan->verdict;
	action = verdict_action_name(v->action);
	if (st != NULL) {
		st->judged++;
		if (*deferred)
			st->deferred++;
		bench_tally_add(&st->actions, action, 1);
		bench_tally_add(&st->spf, scan->spf.code ==
		    SPF_RES_NOT_CHECKED ? "not-checked" :
		    spf_result_name(scan->spf.code), 1);
		if (scan->dkim.checked && scan->dkim.count == 0)
			st->dkim_unsigned++;
		for (size_t i = 0; i < scan->dkim.count; i++)
			bench_tally_add(&st->dkim,
			    dkim_result_name(scan->dkim.sigs[i].code), 1);
		bench_tally_add(&st->dmarc, scan->dmarc.checked ?
		    dmarc_result_name(scan->dmarc.code) : "not-checked", 1);
		for (size_t i = 0; i < v->nsymbols; i++)
			bench_tally_add(&st->symbols, v->symbols[i].name, 1);
		for (size_t i = 0; i < engine_check_count(engine); i++)
			st->check_ns[i] += scan->check_ns[i];
	}
	scan_free(scan);
	message_free(msg);
	return action;
}

static void *
worker(void *arg)
{
	struct shared *sh = ((void **)arg)[0];
	struct stats *st = ((void **)arg)[1];

	for (;;) {
		unsigned long k = atomic_fetch_add(&sh->next, 1);
		const struct bench_message *m;
		const char *action;
		uint64_t t0;
		bool deferred;

		if (k >= sh->total)
			break;
		m = &sh->msgs[k % sh->nmsgs];
		t0 = bench_now_ns();
		action = judge(sh->engine, sh->cfg, m->mail, st, &deferred);
		bench_lat_add(&st->lat, bench_now_ns() - t0);
		if (m->warm_action != NULL && strcmp(action, m->warm_action)) {
			st->differing++;
			atomic_fetch_add(&sh->differs[k % sh->nmsgs], 1);
		}
	}
	return NULL;
}

/* ---------------------------------------------------------- reporting */

static void
print_symbols(const struct bench_tally *t, unsigned long judged, int top)
{
	struct bench_tally copy = {0};

	bench_tally_merge(&copy, t);
	/* Most frequent first: reuse the tally printer on the first ones. */
	for (size_t i = 0; i < copy.n; i++)
		for (size_t k = i + 1; k < copy.n; k++)
			if (copy.e[k].count > copy.e[i].count) {
				struct bench_tally_entry tmp = copy.e[i];

				copy.e[i] = copy.e[k];
				copy.e[k] = tmp;
			}
	if (copy.n > (size_t)top)
		copy.n = (size_t)top;
	printf("symbols (top %d, %zu distinct; %% of messages)\n", top,
	    t->n);
	for (size_t i = 0; i < copy.n; i++)
		printf("  %-28s %8lu  %5.1f%%\n", copy.e[i].name,
		    copy.e[i].count, judged ? 100.0 * (double)copy.e[i].count /
		    (double)judged : 0);
	bench_tally_free(&copy);
}

/*
 * Where a message's time goes: each check's wall time (its stage hooks
 * and body hook, resolver and Redis waits included, as scan->check_ns
 * counts it) per message and as a share of the mean latency; the rest is
 * the engine's own work (parsing, verdict, headers) and this program's.
 */
static void
print_checks(const struct engine *engine, const struct stats *all)
{
	double mean_ns = bench_lat_mean(&all->lat), in_checks = 0;
	double judged = all->judged ? (double)all->judged : 1;

	printf("per check:          wall time in each check per message "
	    "(DNS and Redis waits included), share of the mean latency\n");
	for (size_t i = 0; i < engine_check_count(engine); i++) {
		double ns = (double)all->check_ns[i] / judged;

		in_checks += ns;
		printf("  %-18s %8.3f ms/msg  %5.1f%%\n",
		    engine_check_name(engine, i), ns / 1e6,
		    mean_ns > 0 ? 100.0 * ns / mean_ns : 0);
	}
	printf("  %-18s %8.3f ms/msg  %5.1f%%  (parsing, verdict, headers)\n",
	    "outside checks", (mean_ns - in_checks) / 1e6,
	    mean_ns > 0 ? 100.0 * (mean_ns - in_checks) / mean_ns : 0);
}

static void
checks_line(const struct config *cfg)
{
	printf("checks:             spf=%s dkim=%s dmarc=%s rules=%s "
	    "greylist=%s\n", cfg->spf.enabled ? "on" : "off",
	    cfg->dkim.enabled ? "on" : "off",
	    cfg->dmarc.enabled ? "on" : "off",
	    cfg->rules.enabled ? "on" : "off",
	    !cfg->greylist.enabled ? "off" :
	    cfg->greylist.mode == GREYLIST_MODE_TRIPLET ? "triplet" : "score");
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL;
	struct bench_mail_defaults def = {"192.0.2.1", "bench.invalid", NULL,
	    "postmaster@bench.example"};
	long iterations = 1, threads = 1;
	bool verbose = false;
	int opt;

	while ((opt = getopt(argc, argv, "c:n:t:i:H:f:r:vh")) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'n': iterations = strtol(optarg, NULL, 10); break;
		case 't': threads = strtol(optarg, NULL, 10); break;
		case 'i': def.client = optarg; break;
		case 'H': def.helo = optarg; break;
		case 'f': def.from = optarg; break;
		case 'r': def.rcpt = optarg; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (config_path == NULL || optind != argc - 1 || iterations < 1 ||
	    threads < 1 || threads > 256) {
		usage(stderr);
		return 2;
	}

	char err[MXG_ERRLEN];
	struct config *cfg;
	if (config_load(config_path, &cfg, err) != 0) {
		fprintf(stderr, "bench_engine: %s\n", err);
		return 2;
	}
	log_init("bench_engine", true, cfg->milter.log_level <
	    LOG_LEVEL_WARNING ? cfg->milter.log_level : LOG_LEVEL_WARNING);

	struct bench_mail *mails = NULL;
	size_t nmsgs = 0;
	if (bench_mail_load_dir(argv[optind], &def, "bench_engine", &mails,
	    &nmsgs) != 0) {
		bench_mail_free(mails, nmsgs);
		config_free(cfg);
		return 2;
	}
	struct bench_message *msgs = mxg_calloc(nmsgs, sizeof(*msgs));
	size_t bytes = 0;
	for (size_t i = 0; i < nmsgs; i++) {
		msgs[i].mail = &mails[i];
		bytes += mails[i].len;
	}

	struct engine *engine;
	uint64_t t0 = bench_now_ns();
	if (engine_new(cfg, &engine, err) != 0) {
		fprintf(stderr, "bench_engine: %s\n", err);
		free(msgs);
		bench_mail_free(mails, nmsgs);
		config_free(cfg);
		return 2;
	}
	double start_s = (double)(bench_now_ns() - t0) / 1e9;

	/* Warm-up: the resolver cache (and greylisting's known triplets). */
	t0 = bench_now_ns();
	int passes = 0;
	size_t deferred = 0;
	do {
		if (deferred > 0) {
			long wait_ms = cfg->greylist.delay_ms + 1100;

			fprintf(stderr, "bench_engine: %zu messages greylisted "
			    "in warm-up; waiting %ld ms for the delay\n",
			    deferred, wait_ms);
			usleep((useconds_t)wait_ms * 1000);
		}
		deferred = 0;
		for (size_t i = 0; i < nmsgs; i++) {
			bool d;

			msgs[i].warm_action = judge(engine, cfg, &mails[i],
			    NULL, &d);
			msgs[i].deferred = d;
			deferred += d;
		}
		passes++;
	} while (deferred > 0 && passes < WARMUP_PASSES);
	double warm_s = (double)(bench_now_ns() - t0) / 1e9;
	if (verbose)
		for (size_t i = 0; i < nmsgs; i++)
			printf("  %-40s %7zu bytes  %-12s%s\n", mails[i].name,
			    mails[i].len, msgs[i].warm_action,
			    msgs[i].deferred ? " (greylisted)" : "");

	/* Timed passes. */
	struct shared sh = {
		.engine = engine, .cfg = cfg, .msgs = msgs, .nmsgs = nmsgs,
		.total = (unsigned long)nmsgs * (unsigned long)iterations,
	};
	atomic_init(&sh.next, 0);
	sh.differs = mxg_calloc(nmsgs, sizeof(*sh.differs));
	for (size_t i = 0; i < nmsgs; i++)
		atomic_init(&sh.differs[i], 0);
	struct stats *stats = mxg_calloc((size_t)threads, sizeof(*stats));
	pthread_t *tids = mxg_calloc((size_t)threads, sizeof(*tids));
	void *(*args)[2] = mxg_calloc((size_t)threads, sizeof(*args));

	double cpu0 = bench_cpu_seconds();
	t0 = bench_now_ns();
	for (long t = 0; t < threads; t++) {
		args[t][0] = &sh;
		args[t][1] = &stats[t];
		if (pthread_create(&tids[t], NULL, worker, args[t]) != 0) {
			fprintf(stderr, "bench_engine: pthread_create failed\n");
			return 2;
		}
	}
	for (long t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	double wall = (double)(bench_now_ns() - t0) / 1e9;
	double cpu = bench_cpu_seconds() - cpu0;

	struct stats all = {0};
	for (long t = 0; t < threads; t++) {
		all.judged += stats[t].judged;
		all.differing += stats[t].differing;
		all.deferred += stats[t].deferred;
		all.dkim_unsigned += stats[t].dkim_unsigned;
		bench_tally_merge(&all.actions, &stats[t].actions);
		bench_tally_merge(&all.spf, &stats[t].spf);
		bench_tally_merge(&all.dkim, &stats[t].dkim);
		bench_tally_merge(&all.dmarc, &stats[t].dmarc);
		bench_tally_merge(&all.symbols, &stats[t].symbols);
		bench_lat_merge(&all.lat, &stats[t].lat);
		for (size_t i = 0; i < ENGINE_MAX_CHECKS; i++)
			all.check_ns[i] += stats[t].check_ns[i];
	}

	printf("bench_engine: %zu messages (%.1f KB average) x %ld "
	    "iterations, %ld thread%s\n", nmsgs, (double)bytes / 1024.0 /
	    (double)nmsgs, iterations, threads, threads == 1 ? "" : "s");
	checks_line(cfg);
	printf("engine start:       %.3f s (rules compiled, resolver up)\n",
	    start_s);
	printf("warm-up:            %.3f s, %d pass%s (cold cache, untimed)\n",
	    warm_s, passes, passes == 1 ? "" : "es");
	printf("messages:           %lu\n", all.judged);
	printf("wall:               %.3f s\n", wall);
	printf("rate:               %.1f messages/s\n",
	    wall > 0 ? (double)all.judged / wall : 0);
	printf("cpu:                %.3f ms/message (%.2f s user+sys, "
	    "%.0f%% of one core)\n", all.judged ? cpu * 1000.0 /
	    (double)all.judged : 0, cpu, wall > 0 ? 100.0 * cpu / wall : 0);
	printf("throughput:         %.1f MB/s of message data\n",
	    wall > 0 ? (double)bytes * (double)iterations / wall / 1e6 : 0);
	printf("latency:            p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
	    bench_lat_percentile(&all.lat, 50) / 1e6,
	    bench_lat_percentile(&all.lat, 99) / 1e6,
	    bench_lat_percentile(&all.lat, 100) / 1e6);
	print_checks(engine, &all);
	bench_tally_print(&all.actions, "actions:", all.judged, stdout);
	bench_tally_print(&all.spf, "spf:", all.judged, stdout);
	bench_tally_add(&all.dkim, "unsigned", all.dkim_unsigned);
	bench_tally_print(&all.dkim, "dkim (signatures):", 0, stdout);
	bench_tally_print(&all.dmarc, "dmarc:", all.judged, stdout);
	if (cfg->greylist.enabled)
		printf("greylisted:         %lu\n", all.deferred);
	printf("unlike warm-up:     %lu judgements ended with another "
	    "action (DMARC pct= sampling does that; DNS trouble too)\n",
	    all.differing);
	for (size_t i = 0; verbose && i < nmsgs; i++)
		if (atomic_load(&sh.differs[i]) > 0)
			printf("  %-40s %u times not %s\n", mails[i].name,
			    atomic_load(&sh.differs[i]), msgs[i].warm_action);
	print_symbols(&all.symbols, all.judged, 12);

	for (long t = 0; t < threads; t++) {
		bench_tally_free(&stats[t].actions);
		bench_tally_free(&stats[t].spf);
		bench_tally_free(&stats[t].dkim);
		bench_tally_free(&stats[t].dmarc);
		bench_tally_free(&stats[t].symbols);
		bench_lat_free(&stats[t].lat);
	}
	bench_tally_free(&all.actions);
	bench_tally_free(&all.spf);
	bench_tally_free(&all.dkim);
	bench_tally_free(&all.dmarc);
	bench_tally_free(&all.symbols);
	bench_lat_free(&all.lat);
	free(stats);
	free(sh.differs);
	free(tids);
	free(args);
	engine_free(engine);
	free(msgs);
	bench_mail_free(mails, nmsgs);
	config_free(cfg);
	return 0;
}
