/*
 * benchutil.h - what the benchmarks in tests/bench share: clocks, CPU
 * time, latency percentiles, tallies of outcomes, a seeded random
 * generator and the greylisting traffic mix. Never part of the engine;
 * never part of `make test`.
 *
 * bench_now_ns()
 *	CLOCK_MONOTONIC in nanoseconds.
 * bench_cpu_seconds()
 *	User + system CPU time of the whole process (every thread) so far,
 *	from getrusage(RUSAGE_SELF).
 * bench_watch_add(list, "NAME=PID") / bench_watch_start(list) /
 * bench_watch_print(list, unit, count, out)
 *	CPU time of other processes (Redis, mxguard-policy) over the timed
 *	part: "cpu of NAME: X ms/UNIT (Y s)" per process. add returns -1 for
 *	a bad spec or a full list.
 *
 * struct bench_lat: latencies in nanoseconds.
 *	bench_lat_add(lat, ns) appends; bench_lat_merge(into, from) appends
 *	every sample of from; bench_lat_percentile(lat, p) sorts (once, in
 *	place) and returns the p-th percentile (0 < p <= 100, nearest rank),
 *	0 when empty; bench_lat_free(lat). Not thread-safe: one per thread,
 *	merged at the end.
 *
 * struct bench_tally: counts by name.
 *	bench_tally_add(t, name, n) adds n to name's count; name is borrowed
 *	and must outlive the tally (static strings, or names owned by the
 *	engine). Names are compared by pointer first, then by text, so two
 *	copies of one name count together. bench_tally_merge(into, from);
 *	bench_tally_print(t, label, total, out) prints "label: a 12 (40.0%),
 *	b 18 (60.0%)", largest first (total 0: no percentages);
 *	bench_tally_free(t).
 *
 * bench_rand(&state)
 *	xorshift64*: a fast, seeded, reproducible generator (state != 0).
 *	bench_rand_below(&state, n): uniform in [0, n).
 *
 * GREYLISTING TRAFFIC (bench_greylist, bench_policy)
 *	struct bench_triplet: client address, client host name (may be ""),
 *	HELO, envelope sender ("" null sender) and recipient.
 *	bench_known_count() is the size of a fixed population of regular
 *	correspondents: 250 client /24 networks with 1 to 8 triplets each,
 *	so that after a warm-up (see below) those with 5 or more (the
 *	default auto_whitelist) are auto-whitelisted and the others pass.
 *	bench_known_triplet(i, domains, out) fills the i-th of them.
 *	bench_mix_next(mix, out) draws the next triplet of a stream:
 *	  40% new: a client never seen (random IPv4 in 100.64.0.0/10, one in
 *	      four IPv6 in 2001:db8::/32), random sender ("" one time in
 *	      20), random recipient (postmaster@ one time in 50, which the
 *	      default skip_recipients skips) -> deferred (or skipped);
 *	  25% retry: one of this stream's earlier new triplets (the last
 *	      65536) again, 7 times in 10 one older than the greylisting
 *	      delay (passes: the first time as a new pass, then as known),
 *	      3 in 10 a younger one (deferred again: a sender that retries
 *	      too early); when there is none of the age wanted, any;
 *	  35% known: one of the regular correspondents -> pass or AWL.
 *	The kind drawn is returned (BENCH_MIX_NEW ...). A mix belongs to one
 *	thread: bench_mix_init(mix, seed, domains, delay_ms) /
 *	bench_mix_free(mix). domains is a NULL-terminated list of sender
 *	domains, borrowed; delay_ms the configured greylisting delay.
 *	bench_mix_new(mix, out) draws a new triplet (and remembers it for
 *	retries) whatever the roll: a warm-up decides some of these before
 *	waiting out the delay, so that retries older than the delay exist
 *	from the first timed decision on.
 *	Triplets are remembered as the seed that made them and the time,
 *	16 bytes each, and made again when retried.
 *
 * THE CORPUS (bench_engine, smtp_load)
 *	struct bench_mail: one message file read for a benchmark: name (the
 *	file name), data and len (the message with CRLF line ends, every
 *	X-Bench-* header removed with its continuation lines) and the
 *	envelope: client, helo, from ("<>" the null sender) and rcpt.
 *	bench_mail_load_dir(dir, defaults, prog, &mails, &n) reads every
 *	regular file of dir whose name does not start with ".", in name
 *	order, so that every run sees the same sequence. The envelope comes
 *	from the X-Bench-Client, -Helo, -Mail-From and -Rcpt headers at the
 *	top of the file, else from defaults (defaults->from NULL: the From
 *	header's address). A file over 64 MB is an error. Returns 0, or -1
 *	with a line on stderr that starts with prog; what was read before
 *	the error is in *mails and *n either way, for bench_mail_free(mails,
 *	n), which frees the array and every string in it.
 */
#ifndef MXG_BENCHUTIL_H
#define MXG_BENCHUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

uint64_t bench_now_ns(void);
double bench_cpu_seconds(void);

/* Other processes to watch (-p NAME=PID): their user + system CPU time
 * from /proc/PID/stat (-1 when unreadable). */
#define BENCH_MAX_WATCH 4
struct bench_watch {
	char name[32];
	int pid;
	double start;
};
struct bench_watchlist {
	struct bench_watch w[BENCH_MAX_WATCH];
	int n;
};
double bench_proc_cpu_seconds(int pid);
int bench_watch_add(struct bench_watchlist *list, const char *spec);
void bench_watch_start(struct bench_watchlist *list);
void bench_watch_print(const struct bench_watchlist *list, const char *unit,
    unsigned long count, FILE *out);

struct bench_lat {
	uint64_t *ns;
	size_t n, cap;
	int sorted;
};

void bench_lat_add(struct bench_lat *lat, uint64_t ns);
void bench_lat_merge(struct bench_lat *into, const struct bench_lat *from);
double bench_lat_percentile(struct bench_lat *lat, double p);
double bench_lat_mean(const struct bench_lat *lat);
void bench_lat_free(struct bench_lat *lat);

struct bench_tally_entry {
	const char *name;
	unsigned long count;
};

struct bench_tally {
	struct bench_tally_entry *e;
	size_t n, cap;
};

void bench_tally_add(struct bench_tally *t, const char *name,
    unsigned long n);
void bench_tally_merge(struct bench_tally *into, const struct bench_tally *from);
unsigned long bench_tally_get(const struct bench_tally *t, const char *name);
void bench_tally_print(const struct bench_tally *t, const char *label,
    unsigned long total, FILE *out);
void bench_tally_free(struct bench_tally *t);

uint64_t bench_rand(uint64_t *state);
uint64_t bench_rand_below(uint64_t *state, uint64_t n);

struct bench_triplet {
	char client[64];
	char client_name[96];
	char helo[96];
	char sender[160];
	char rcpt[160];
};

enum bench_mix_kind {
	BENCH_MIX_NEW,
	BENCH_MIX_RETRY,
	BENCH_MIX_KNOWN,
};

#define BENCH_MIX_RING 65536

struct bench_mix_seen {
	uint64_t seed;		/* makes the triplet again */
	uint64_t born_ns;
};

struct bench_mix {
	uint64_t rng;
	const char *const *domains;
	size_t ndomains;
	uint64_t delay_ns;
	struct bench_mix_seen *ring;	/* the last new triplets, oldest at
					 * ring_next once full */
	size_t ring_len, ring_next;
};

size_t bench_known_count(void);
void bench_known_triplet(size_t i, const char *const *domains,
    struct bench_triplet *out);
void bench_mix_init(struct bench_mix *mix, uint64_t seed,
    const char *const *domains, long delay_ms);
enum bench_mix_kind bench_mix_next(struct bench_mix *mix,
    struct bench_triplet *out);
void bench_mix_new(struct bench_mix *mix, struct bench_triplet *out);
void bench_mix_free(struct bench_mix *mix);
const char *bench_mix_kind_name(enum bench_mix_kind kind);

struct bench_mail {
	char *name;
	char *data;		/* CRLF, X-Bench-* headers removed */
	size_t len;
	char *client;
	char *helo;
	char *from;		/* "<>": the null sender */
	char *rcpt;
};

struct bench_mail_defaults {
	const char *client, *helo, *from, *rcpt;
};

int bench_mail_load_dir(const char *dir,
    const struct bench_mail_defaults *defaults, const char *prog,
    struct bench_mail **mails, size_t *n);
void bench_mail_free(struct bench_mail *mails, size_t n);

/* Splits a comma-separated list into a NULL-terminated array (caller
 * frees the array and its strings with bench_list_free). */
/* A policy server's address as the config spells it ([policy] listen):
 * inet:PORT@HOST, inet6:PORT@HOST, inet:PORT, unix:/PATH, local:/PATH.
 * bench_target_connect returns a connected socket (TCP_NODELAY) or -1
 * with err. */
struct bench_target {
	bool unix_socket;
	char path[108];
	char host[128];
	char port[16];
};
int bench_target_parse(const char *spec, struct bench_target *t);
int bench_target_connect(const struct bench_target *t, char *err,
    size_t errlen);
/* The figures of a load generator, as run.py reads them: wall, rate,
 * latency percentiles and its own CPU per unit (plural, singular). */
void bench_print_load(struct bench_lat *lat, double wall, double cpu,
    const char *units, const char *unit);
/* All of data to fd (no SIGPIPE); false on error. */
bool bench_send_all(int fd, const char *data, size_t len);
/* One policy answer ("action=...\n\n") into buf, NUL-terminated; false
 * on EOF, error or an answer longer than size - 1. */
bool bench_read_answer(int fd, char *buf, size_t size, size_t *len);

char **bench_list_split(const char *text);
void bench_list_free(char **list);

#endif
