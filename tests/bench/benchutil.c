/*
 * benchutil.c - shared helpers of the benchmarks. See benchutil.h.
 */
#include "benchutil.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/mxg.h"
#include "../../lib/strbuf.h"

#define KNOWN_NETWORKS 250
#define LOCAL_USERS 500
#define LOCAL_DOMAIN "bench.example"

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double
bench_cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

double
bench_proc_cpu_seconds(int pid)
{
	char path[64], buf[1024];
	unsigned long utime, stime;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is
	 * the 3rd field, utime the 14th, stime the 15th. */
	char *p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

int
bench_watch_add(struct bench_watchlist *list, const char *spec)
{
	const char *eq = strchr(spec, '=');
	struct bench_watch *w;
	char *end;
	long pid;

	if (eq == NULL || eq == spec || list->n == BENCH_MAX_WATCH)
		return -1;
	pid = strtol(eq + 1, &end, 10);
	if (end == eq + 1 || *end != '\0' || pid <= 0)
		return -1;
	w = &list->w[list->n++];
	snprintf(w->name, sizeof(w->name), "%.*s", (int)(eq - spec), spec);
	w->pid = (int)pid;
	return 0;
}

void
bench_watch_start(struct bench_watchlist *list)
{
	for (int i = 0; i < list->n; i++)
		list->w[i].start = bench_proc_cpu_seconds(list->w[i].pid);
}

void
bench_watch_print(const struct bench_watchlist *list, const char *unit,
    unsigned long count, FILE *out)
{
	for (int i = 0; i < list->n; i++) {
		const struct bench_watch *w = &list->w[i];
		double now = bench_proc_cpu_seconds(w->pid);
		char label[64];

		snprintf(label, sizeof(label), "cpu of %s:", w->name);
		if (now < 0 || w->start < 0) {
			fprintf(out, "%-19s unreadable (pid %d)\n", label,
			    w->pid);
			continue;
		}
		fprintf(out, "%-19s %.3f ms/%s (%.2f s user+sys, pid %d)\n",
		    label, count ? (now - w->start) * 1000.0 / (double)count :
		    0, unit, now - w->start, w->pid);
	}
}

/* ---------------------------------------------------------- latencies */

void
bench_lat_add(struct bench_lat *lat, uint64_t ns)
{
	if (lat->n == lat->cap) {
		lat->cap = lat->cap ? lat->cap * 2 : 4096;
		lat->ns = mxg_realloc(lat->ns, lat->cap * sizeof(*lat->ns));
	}
	lat->ns[lat->n++] = ns;
	lat->sorted = 0;
}

void
bench_lat_merge(struct bench_lat *into, const struct bench_lat *from)
{
	for (size_t i = 0; i < from->n; i++)
		bench_lat_add(into, from->ns[i]);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

double
bench_lat_percentile(struct bench_lat *lat, double p)
{
	size_t rank;

	if (lat->n == 0)
		return 0;
	if (!lat->sorted) {
		qsort(lat->ns, lat->n, sizeof(*lat->ns), cmp_u64);
		lat->sorted = 1;
	}
	/* Nearest rank: the smallest sample with p% of them at or below. */
	rank = (size_t)(p / 100.0 * (double)lat->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > lat->n)
		rank = lat->n;
	return (double)lat->ns[rank - 1];
}

double
bench_lat_mean(const struct bench_lat *lat)
{
	double sum = 0;

	for (size_t i = 0; i < lat->n; i++)
		sum += (double)lat->ns[i];
	return lat->n ? sum / (double)lat->n : 0;
}

void
bench_lat_free(struct bench_lat *lat)
{
	free(lat->ns);
	memset(lat, 0, sizeof(*lat));
}

/* ---------------------------------------------------------- tallies */

void
bench_tally_add(struct bench_tally *t, const char *name, unsigned long n)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->e[i].name == name)
			break;
	if (i == t->n)
		for (i = 0; i < t->n; i++)
			if (strcmp(t->e[i].name, name) == 0)
				break;
	if (i == t->n) {
		if (t->n == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 16;
			t->e = mxg_realloc(t->e, t->cap * sizeof(*t->e));
		}
		t->e[t->n].name = name;
		t->e[t->n].count = 0;
		t->n++;
	}
	t->e[i].count += n;
}

void
bench_tally_merge(struct bench_tally *into, const struct bench_tally *from)
{
	for (size_t i = 0; i < from->n; i++)
		bench_tally_add(into, from->e[i].name, from->e[i].count);
}

unsigned long
bench_tally_get(const struct bench_tally *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->e[i].name, name) == 0)
			return t->e[i].count;
	return 0;
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct bench_tally_entry *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->name, y->name);
}

void
bench_tally_print(const struct bench_tally *t, const char *label,
    unsigned long total, FILE *out)
{
	struct bench_tally_entry *sorted;

	fprintf(out, "%-20s", label);
	if (t->n == 0) {
		fprintf(out, "(none)\n");
		return;
	}
	sorted = mxg_malloc(t->n * sizeof(*sorted));
	memcpy(sorted, t->e, t->n * sizeof(*sorted));
	qsort(sorted, t->n, sizeof(*sorted), cmp_entry);
	for (size_t i = 0; i < t->n; i++) {
		fprintf(out, "%s%s %lu", i ? ", " : "", sorted[i].name,
		    sorted[i].count);
		if (total > 0)
			fprintf(out, " (%.1f%%)", 100.0 *
			    (double)sorted[i].count / (double)total);
	}
	fputc('\n', out);
	free(sorted);
}

void
bench_tally_free(struct bench_tally *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

/* ---------------------------------------------------------- randomness */

uint64_t
bench_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

uint64_t
bench_rand_below(uint64_t *state, uint64_t n)
{
	return n ? bench_rand(state) % n : 0;
}

/* ---------------------------------------------------------- the mix */

/* Triplets of network i: 1 to 8, each count equally common. */
static size_t
known_per_network(size_t i)
{
	return (i * 37) % 8 + 1;
}

size_t
bench_known_count(void)
{
	size_t n = 0;

	for (size_t i = 0; i < KNOWN_NETWORKS; i++)
		n += known_per_network(i);
	return n;
}

static size_t
count_domains(const char *const *domains)
{
	size_t n = 0;

	while (domains[n] != NULL)
		n++;
	return n;
}

void
bench_known_triplet(size_t index, const char *const *domains,
    struct bench_triplet *out)
{
	size_t net = 0, j = index, nd = count_domains(domains);
	const char *domain;

	while (net < KNOWN_NETWORKS && j >= known_per_network(net)) {
		j -= known_per_network(net);
		net++;
	}
	net %= KNOWN_NETWORKS;
	domain = domains[net % nd];
	memset(out, 0, sizeof(*out));
	snprintf(out->client, sizeof(out->client), "172.16.%zu.%zu", net,
	    10 + j);
	snprintf(out->client_name, sizeof(out->client_name), "out%zu.%s", j,
	    domain);
	snprintf(out->helo, sizeof(out->helo), "out%zu.%s", j, domain);
	snprintf(out->sender, sizeof(out->sender), "news%zu@%s", j, domain);
	snprintf(out->rcpt, sizeof(out->rcpt), "user%zu@%s",
	    (net * 8 + j) % LOCAL_USERS, LOCAL_DOMAIN);
}

void
bench_mix_init(struct bench_mix *mix, uint64_t seed,
    const char *const *domains, long delay_ms)
{
	memset(mix, 0, sizeof(*mix));
	mix->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
	/* Spread close seeds apart. */
	for (int i = 0; i < 8; i++)
		bench_rand(&mix->rng);
	mix->domains = domains;
	mix->ndomains = count_domains(domains);
	mix->delay_ns = delay_ms > 0 ? (uint64_t)delay_ms * 1000000u : 0;
	mix->ring = mxg_calloc(BENCH_MIX_RING, sizeof(*mix->ring));
}

void
bench_mix_free(struct bench_mix *mix)
{
	free(mix->ring);
	mix->ring = NULL;
}

/* The triplet a seed makes: the same seed, the same triplet. */
static void
make_triplet(const struct bench_mix *mix, uint64_t seed,
    struct bench_triplet *out)
{
	uint64_t rng = seed | 1, r = bench_rand(&rng);
	const char *domain = mix->domains[bench_rand_below(&rng,
	    mix->ndomains)];

	memset(out, 0, sizeof(*out));
	if (r % 4 == 0)
		snprintf(out->client, sizeof(out->client),
		    "2001:db8:%x:%x::%x", (unsigned)(r >> 8) & 0xffff,
		    (unsigned)(r >> 24) & 0xffff, (unsigned)(r >> 40) & 0xff);
	else
		snprintf(out->client, sizeof(out->client), "100.%u.%u.%u",
		    64 + (unsigned)((r >> 8) & 63), (unsigned)(r >> 16) & 255,
		    1 + (unsigned)((r >> 24) % 254));
	snprintf(out->helo, sizeof(out->helo), "host-%lx.%s",
	    (unsigned long)(r >> 32) & 0xfffff, domain);
	if (bench_rand_below(&rng, 20) == 0)
		out->sender[0] = '\0';
	else
		snprintf(out->sender, sizeof(out->sender), "u%016llx@%s",
		    (unsigned long long)bench_rand(&rng), domain);
	if (bench_rand_below(&rng, 50) == 0)
		snprintf(out->rcpt, sizeof(out->rcpt), "postmaster@%s",
		    LOCAL_DOMAIN);
	else
		snprintf(out->rcpt, sizeof(out->rcpt), "user%u@%s",
		    (unsigned)bench_rand_below(&rng, LOCAL_USERS),
		    LOCAL_DOMAIN);
}

void
bench_mix_new(struct bench_mix *mix, struct bench_triplet *out)
{
	struct bench_mix_seen *seen = &mix->ring[mix->ring_next];

	seen->seed = bench_rand(&mix->rng);
	seen->born_ns = bench_now_ns();
	make_triplet(mix, seen->seed, out);
	mix->ring_next = (mix->ring_next + 1) % BENCH_MIX_RING;
	if (mix->ring_len < BENCH_MIX_RING)
		mix->ring_len++;
}

/* The k-th remembered triplet, oldest first. */
static const struct bench_mix_seen *
seen_at(const struct bench_mix *mix, size_t k)
{
	size_t oldest = mix->ring_len < BENCH_MIX_RING ? 0 : mix->ring_next;

	return &mix->ring[(oldest + k) % BENCH_MIX_RING];
}

/* Picks a remembered triplet older (late) or younger than the delay. */
static void
retry_triplet(struct bench_mix *mix, bool late, struct bench_triplet *out)
{
	uint64_t cutoff = bench_now_ns() - mix->delay_ns;
	size_t lo = 0, hi = mix->ring_len;

	/* Oldest first, so birth times only grow: the first one born
	 * after the cutoff splits older from younger. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (seen_at(mix, mid)->born_ns <= cutoff)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t older = lo, k;
	if (late && older > 0)
		k = bench_rand_below(&mix->rng, older);
	else if (!late && older < mix->ring_len)
		k = older + bench_rand_below(&mix->rng, mix->ring_len - older);
	else
		k = bench_rand_below(&mix->rng, mix->ring_len);
	make_triplet(mix, seen_at(mix, k)->seed, out);
}

enum bench_mix_kind
bench_mix_next(struct bench_mix *mix, struct bench_triplet *out)
{
	uint64_t roll = bench_rand_below(&mix->rng, 100);

	if (roll < 35) {
		bench_known_triplet(bench_rand_below(&mix->rng,
		    bench_known_count()), mix->domains, out);
		return BENCH_MIX_KNOWN;
	}
	if (roll < 60 && mix->ring_len > 0) {
		retry_triplet(mix, bench_rand_below(&mix->rng, 10) < 7, out);
		return BENCH_MIX_RETRY;
	}
	bench_mix_new(mix, out);
	return BENCH_MIX_NEW;
}

const char *
bench_mix_kind_name(enum bench_mix_kind kind)
{
	switch (kind) {
	case BENCH_MIX_NEW:
		return "new";
	case BENCH_MIX_RETRY:
		return "retry";
	case BENCH_MIX_KNOWN:
		return "known";
	}
	return "?";
}

/* ---------------------------------------------------------- lists */

char **
bench_list_split(const char *text)
{
	char **list = mxg_calloc(1, sizeof(*list));
	char *copy = mxg_strdup(text ? text : ""), *save = NULL;
	size_t n = 0;

	for (char *tok = strtok_r(copy, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		list = mxg_realloc(list, (n + 2) * sizeof(*list));
		list[n++] = mxg_strdup(tok);
		list[n] = NULL;
	}
	free(copy);
	return list;
}

void
bench_list_free(char **list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; list[i] != NULL; i++)
		free(list[i]);
	free(list);
}

/* ---------------------------------------------------------- the corpus */

#define BENCH_MAX_INPUT (64u * 1024 * 1024)

static char *
read_file(const char *path, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	FILE *fp = fopen(path, "rb");
	size_t n;

	if (fp == NULL)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
		if (sb.len + n > BENCH_MAX_INPUT) {
			fclose(fp);
			strbuf_free(&sb);
			errno = EFBIG;
			return NULL;
		}
		strbuf_append(&sb, buf, n);
	}
	fclose(fp);
	*len = sb.len;
	if (sb.data == NULL)
		return mxg_strdup("");
	return strbuf_steal(&sb);
}

/* The value of an "X-Bench-Name: value" line (unfolded, trimmed). */
static char *
header_value(const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	struct strbuf sb = STRBUF_INIT;

	if (colon == NULL)
		return mxg_strdup("");
	for (const char *p = colon + 1; p < line + len; p++)
		if (*p != '\r' && *p != '\n')
			strbuf_putc(&sb, *p);
	char *v = strbuf_steal(&sb);
	if (v == NULL)
		return mxg_strdup("");
	char *start = v;
	while (*start == ' ' || *start == '\t')
		start++;
	size_t vl = strlen(start);
	while (vl > 0 && (start[vl - 1] == ' ' || start[vl - 1] == '\t'))
		vl--;
	char *out = mxg_strndup(start, vl);
	free(v);
	return out;
}

/* The address inside a From header value: "Name <a@b>" or "a@b". */
static char *
from_address(const char *value)
{
	const char *lt = strchr(value, '<'), *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
		return mxg_strndup(lt + 1, (size_t)(gt - lt - 1));
	while (*value == ' ' || *value == '\t')
		value++;
	return mxg_strndup(value, strcspn(value, " \t\r\n"));
}

/*
 * Makes the CRLF message and takes out the X-Bench-* headers (with their
 * continuation lines), keeping their values in m. Also notes the From
 * address for a missing X-Bench-Mail-From.
 */
static void
prepare(struct bench_mail *m, const char *raw, size_t rawlen,
    const struct bench_mail_defaults *def)
{
	struct strbuf out = STRBUF_INIT;
	char *from_header = NULL;
	size_t i = 0;
	bool in_headers = true, dropping = false;

	while (i < rawlen) {
		const char *nl = memchr(raw + i, '\n', rawlen - i);
		size_t end = nl ? (size_t)(nl - raw) + 1 : rawlen;
		const char *line = raw + i;
		size_t len = end - i, textlen = len;

		/* The line without its end. */
		while (textlen > 0 && (line[textlen - 1] == '\n' ||
		    line[textlen - 1] == '\r'))
			textlen--;
		if (in_headers) {
			bool cont = len > 0 && (line[0] == ' ' ||
			    line[0] == '\t');

			if (textlen == 0) {
				in_headers = false;
				dropping = false;
			} else if (cont && dropping) {
				i = end;
				continue;
			} else if (!cont) {
				dropping = textlen > 8 &&
				    strncasecmp(line, "X-Bench-", 8) == 0;
				if (dropping) {
					char *v = header_value(line, textlen);
					char **slot = NULL;
					const char *name = line + 8;

					if (strncasecmp(name, "Client:", 7) == 0)
						slot = &m->client;
					else if (strncasecmp(name, "Helo:", 5) == 0)
						slot = &m->helo;
					else if (strncasecmp(name, "Mail-From:",
					    10) == 0)
						slot = &m->from;
					else if (strncasecmp(name, "Rcpt:", 5) == 0)
						slot = &m->rcpt;
					if (slot != NULL) {
						free(*slot);
						*slot = v;
					} else {
						free(v);
					}
					i = end;
					continue;
				}
				if (from_header == NULL && textlen > 5 &&
				    strncasecmp(line, "From:", 5) == 0) {
					char *v = header_value(line, textlen);
					from_header = from_address(v);
					free(v);
				}
			}
		}
		strbuf_append(&out, line, textlen);
		if (nl != NULL)
			strbuf_puts(&out, "\r\n");
		i = end;
	}
	m->len = out.len;
	m->data = out.data ? strbuf_steal(&out) : mxg_strdup("");
	if (m->client == NULL)
		m->client = mxg_strdup(def->client);
	if (m->helo == NULL)
		m->helo = mxg_strdup(def->helo);
	if (m->from == NULL)
		m->from = mxg_strdup(def->from ? def->from :
		    from_header ? from_header : "");
	if (m->rcpt == NULL)
		m->rcpt = mxg_strdup(def->rcpt);
	free(from_header);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
bench_mail_load_dir(const char *dir, const struct bench_mail_defaults *def,
    const char *prog, struct bench_mail **out, size_t *nout)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t nnames = 0;
	struct bench_mail *mails;

	*out = NULL;
	*nout = 0;
	if (d == NULL) {
		fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		names = mxg_realloc(names, (nnames + 1) * sizeof(*names));
		names[nnames++] = mxg_strdup(de->d_name);
	}
	closedir(d);
	if (nnames == 0) {
		fprintf(stderr, "%s: %s: no message files\n", prog, dir);
		free(names);
		return -1;
	}
	/* The same order every run, whatever readdir says. */
	qsort(names, nnames, sizeof(*names), cmp_names);
	mails = mxg_calloc(nnames, sizeof(*mails));
	for (size_t i = 0; i < nnames; i++) {
		char path[4096];
		size_t len;
		char *raw;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((raw = read_file(path, &len)) == NULL) {
			fprintf(stderr, "%s: %s: %s\n", prog, path,
			    strerror(errno));
			for (size_t k = i; k < nnames; k++)
				free(names[k]);
			free(names);
			*out = mails;
			*nout = i;
			return -1;
		}
		mails[i].name = names[i];
		prepare(&mails[i], raw, len, def);
		free(raw);
	}
	free(names);
	*out = mails;
	*nout = nnames;
	return 0;
}

void
bench_mail_free(struct bench_mail *mails, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(mails[i].name);
		free(mails[i].data);
		free(mails[i].client);
		free(mails[i].helo);
		free(mails[i].from);
		free(mails[i].rcpt);
	}
	free(mails);
}

/* inet:PORT@HOST, inet6:PORT@HOST, inet:PORT, unix:/PATH, local:/PATH */
int
bench_target_parse(const char *spec, struct bench_target *t)
{
	memset(t, 0, sizeof(*t));
	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		const char *path = strchr(spec, ':') + 1;

		if (strlen(path) >= sizeof(t->path))
			return -1;
		t->unix_socket = true;
		strcpy(t->path, path);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) != 0 && strncmp(spec, "inet6:", 6) != 0)
		return -1;
	const char *p = strchr(spec, ':') + 1;
	const char *at = strchr(p, '@');
	size_t plen = at ? (size_t)(at - p) : strlen(p);

	if (plen == 0 || plen >= sizeof(t->port))
		return -1;
	memcpy(t->port, p, plen);
	snprintf(t->host, sizeof(t->host), "%s", at && at[1] ? at + 1 :
	    strncmp(spec, "inet6:", 6) == 0 ? "::1" : "127.0.0.1");
	return 0;
}

int
bench_target_connect(const struct bench_target *t, char *err, size_t errlen)
{
	int fd = -1, one = 1;

	if (t->unix_socket) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		strcpy(sun.sun_path, t->path);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			snprintf(err, errlen, "unix:%s: %s", t->path,
			    strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		return fd;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int rc = getaddrinfo(t->host, t->port, &hints, &res);

	if (rc != 0) {
		snprintf(err, errlen, "%s:%s: %s", t->host, t->port,
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		snprintf(err, errlen, "%s:%s: %s", t->host, t->port,
		    strerror(errno));
	freeaddrinfo(res);
	/* Postfix writes a request at once; so do we. */
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

bool
bench_send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= (size_t)n;
	}
	return true;
}

bool
bench_read_answer(int fd, char *buf, size_t size, size_t *len)
{
	*len = 0;
	for (;;) {
		ssize_t n;

		if (*len >= 2 && buf[*len - 1] == '\n' && buf[*len - 2] == '\n')
			return true;
		if (*len + 1 >= size)
			return false;
		n = recv(fd, buf + *len, size - 1 - *len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		*len += (size_t)n;
		buf[*len] = '\0';
	}
}

void
bench_print_load(struct bench_lat *lat, double wall, double cpu,
    const char *units, const char *unit)
{
	printf("wall:               %.3f s\n", wall);
	printf("rate:               %.1f %s/s\n",
	    wall > 0 ? (double)lat->n / wall : 0, units);
	printf("latency:            p50 %.3f ms, p99 %.3f ms, max %.3f ms, "
	    "mean %.3f ms\n", bench_lat_percentile(lat, 50) / 1e6,
	    bench_lat_percentile(lat, 99) / 1e6,
	    bench_lat_percentile(lat, 100) / 1e6, bench_lat_mean(lat) / 1e6);
	printf("cpu of the client:  %.3f ms/%s (%.2f s user+sys)\n",
	    lat->n ? cpu * 1000.0 / (double)lat->n : 0, unit, cpu);
}
