#include "dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <libpsl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "engine.h"
#include "log.h"
#include "mxg.h"

#define DNSBL_CODES_MAX 16

struct dnsbl_code {
	unsigned char addr[4];
	double score;
};

struct dnsbl_list {
	const struct config_dnsbl *cfg;
	char symbol[64];
	struct dnsbl_code codes[DNSBL_CODES_MAX];
	int ncodes;
	bool overridden;	/* [scores] names the symbol: its score wins */
	double override;
};

struct dnsbl_state {
	const struct config *cfg;
	struct dnsbl_list lists[CONFIG_MAX_DNSBLS];
	size_t nlists;
	const psl_ctx_t *psl;
	psl_ctx_t *psl_loaded;	/* ours to free */
};

static const struct check_symbol dnsbl_symbols[] = {
	{NULL, 0, NULL},
};

int
dnsbl_reverse_name(int family, const unsigned char *addr, const char *zone,
    char *out, size_t outlen)
{
	size_t o = 0;
	int n;

	if (family == AF_INET) {
		n = snprintf(out, outlen, "%u.%u.%u.%u.%s", addr[3], addr[2],
		    addr[1], addr[0], zone);
		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		if (o + 4 >= outlen)
			return -1;
		out[o++] = hex[addr[i] & 0xf];
		out[o++] = '.';
		out[o++] = hex[addr[i] >> 4];
		out[o++] = '.';
	}
	n = snprintf(out + o, outlen - o, "%s", zone);
	return n < 0 || (size_t)n >= outlen - o ? -1 : 0;
}

/* Private, loopback, link-local and other never-listed addresses. */
static bool
address_is_private(const struct message *msg)
{
	if (msg->client_family == AF_INET) {
		uint32_t a = ntohl(msg->client_ip4.s_addr);

		return (a >> 24) == 10 || (a >> 24) == 127 || (a >> 24) == 0 ||
		    (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 ||
		    (a >> 16) == 0xa9fe || (a >> 22) == (100 << 2 | 1);
	}
	if (msg->client_family == AF_INET6) {
		const unsigned char *b = msg->client_ip6.s6_addr;

		return IN6_IS_ADDR_LOOPBACK(&msg->client_ip6) ||
		    IN6_IS_ADDR_LINKLOCAL(&msg->client_ip6) ||
		    (b[0] & 0xfe) == 0xfc;
	}
	return true;
}

static void dnsbl_free(void *p);

static int
dnsbl_init(const struct check_env *env, void **out, char *err)
{
	struct dnsbl_state *st = mxg_calloc(1, sizeof(*st));
	const struct config *cfg = env->cfg;

	st->cfg = cfg;
	for (size_t i = 0; i < cfg->ndnsbls; i++) {
		struct dnsbl_list *l = &st->lists[st->nlists++];
		const struct config_dnsbl *d = &cfg->dnsbls[i];

		l->cfg = d;
		if (d->symbol != NULL)
			snprintf(l->symbol, sizeof(l->symbol), "%s", d->symbol);
		else
			snprintf(l->symbol, sizeof(l->symbol), "%s_%s",
			    d->type == DNSBL_TYPE_CLIENT ? "DNSBL" : "URIBL",
			    d->name);
		for (char *p = l->symbol; *p; p++)
			*p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
		for (size_t k = 0; k < cfg->nscores; k++)
			if (strcmp(cfg->scores[k].symbol, l->symbol) == 0) {
				l->overridden = true;
				l->override = cfg->scores[k].score;
			}

		char *copy = mxg_strdup(d->codes ? d->codes : ""), *cur = NULL;
		for (char *item = strtok_r(copy, " ,\t", &cur); item != NULL;
		    item = strtok_r(NULL, " ,\t", &cur)) {
			char *eq = strchr(item, '=');
			struct dnsbl_code *c = &l->codes[l->ncodes];

			if (eq != NULL)
				*eq = '\0';
			if (l->ncodes == DNSBL_CODES_MAX || eq == NULL ||
			    inet_pton(AF_INET, item, c->addr) != 1 ||
			    config_parse_double(eq + 1, &c->score) < 0) {
				/* The message first: item lives in copy. */
				mxg_fail(err, MXG_EINVAL, "[dnsbl %s] codes: '%s' "
				    "is not ADDRESS=SCORE (at most %d)", d->name,
				    item, DNSBL_CODES_MAX);
				free(copy);
				dnsbl_free(st);
				return MXG_EINVAL;
			}
			l->ncodes++;
		}
		free(copy);
		if (d->type == DNSBL_TYPE_URI && st->psl == NULL) {
			const char *path = cfg->dmarc.public_suffix_list;

			st->psl_loaded = path ? psl_load_file(path) : NULL;
			st->psl = st->psl_loaded ? st->psl_loaded :
			    psl_builtin();
			if (st->psl == NULL) {
				dnsbl_free(st);
				return mxg_fail(err, MXG_EINVAL, "[dnsbl %s]: no "
				    "public suffix list to find registered "
				    "domains", d->name);
			}
		}
	}
	*out = st;
	return MXG_OK;
}

static void
dnsbl_free(void *p)
{
	struct dnsbl_state *st = p;

	if (st == NULL)
		return;
	if (st->psl_loaded != NULL)
		psl_free(st->psl_loaded);
	free(st);
}

static bool
dnsbl_has_symbol(void *p, const char *name)
{
	const struct dnsbl_state *st = p;

	for (size_t i = 0; i < st->nlists; i++)
		if (strcmp(st->lists[i].symbol, name) == 0)
			return true;
	return false;
}

struct pending {
	struct dnsbl_list *list;
	char what[256];		/* the IP or domain, for the detail */
	struct dns_query *query;
};

/* The score of an answer: the best matching code, else the list's. */
static double
answer_score(const struct dnsbl_list *l, const struct dns_answer *a,
    char *code, size_t codelen)
{
	double best = -1e9;
	bool any = false;

	for (int i = 0; i < a->count; i++) {
		const unsigned char *ip = (const unsigned char *)a->data[i];

		if (a->len[i] != 4 || ip[0] != 127)
			continue;	/* not a list answer */
		double score = l->cfg->score;
		for (int k = 0; k < l->ncodes; k++)
			if (memcmp(l->codes[k].addr, ip, 4) == 0)
				score = l->codes[k].score;
		if (!any || score > best) {
			best = score;
			snprintf(code, codelen, "%u.%u.%u.%u", ip[0], ip[1],
			    ip[2], ip[3]);
		}
		any = true;
	}
	return any ? best : -1e9;
}

static void
dnsbl_run(void *p, struct scan *scan)
{
	struct dnsbl_state *st = p;
	const struct message *msg = scan->msg;
	int max = st->cfg->dnsbl.max_queries;
	struct pending *q = mxg_calloc((size_t)max + 1, sizeof(*q));
	int n = 0;
	char name[1100];

	for (size_t i = 0; i < st->nlists && n < max; i++) {
		struct dnsbl_list *l = &st->lists[i];

		if (l->cfg->type == DNSBL_TYPE_CLIENT) {
			if (address_is_private(msg))
				continue;
			const unsigned char *addr = msg->client_family == AF_INET ?
			    (const unsigned char *)&msg->client_ip4 :
			    msg->client_ip6.s6_addr;
			if (dnsbl_reverse_name(msg->client_family, addr,
			    l->cfg->zone, name, sizeof(name)) < 0)
				continue;
			q[n].list = l;
			snprintf(q[n].what, sizeof(q[n].what), "%s",
			    msg->client_addr);
			q[n++].query = dns_query_start(scan->dns, name, 1);
			continue;
		}
		/* URIBL: each registered domain once per list. */
		for (size_t u = 0; scan->mime != NULL && u < scan->mime->nuris &&
		    n < max; u++) {
			const char *host = scan->mime->uris[u].host;
			const char *reg;
			bool seen = false;

			if (host == NULL || *host == '\0' ||
			    strspn(host, "0123456789.") == strlen(host))
				continue;	/* an IP: that is a DNSBL's job */
			reg = psl_registrable_domain(st->psl, host);
			if (reg == NULL)
				continue;
			for (int k = 0; k < n; k++)
				seen |= q[k].list == l &&
				    strcasecmp(q[k].what, reg) == 0;
			if (seen)
				continue;
			snprintf(name, sizeof(name), "%s.%s", reg, l->cfg->zone);
			q[n].list = l;
			snprintf(q[n].what, sizeof(q[n].what), "%s", reg);
			q[n++].query = dns_query_start(scan->dns, name, 1);
		}
	}

	long long deadline = mxg_now_ms() + dns_resolver_timeout_ms(scan->dns);
	bool failed_logged = false;
	for (int i = 0; i < n; i++) {
		const struct dns_answer *answer;
		enum dns_status status = dns_query_wait(q[i].query, deadline,
		    &answer);
		char code[32] = "", detail[400];

		if (status == DNS_TEMPFAIL && !failed_logged) {
			failed_logged = true;
			log_msg(msg->queue_id, LOG_LEVEL_NOTICE, "dnsbl: %s did "
			    "not answer for %s; taken as not listed",
			    q[i].list->cfg->zone, q[i].what);
		}
		if (status != DNS_OK)
			continue;
		double score = answer_score(q[i].list, answer, code,
		    sizeof(code));
		if (score <= -1e9)
			continue;
		/* One symbol per list: the first listing found. */
		if (verdict_find_symbol(scan->verdict, q[i].list->symbol))
			continue;
		if (q[i].list->overridden)
			score = q[i].list->override;
		snprintf(detail, sizeof(detail), "%s listed in %s (%s)",
		    q[i].what, q[i].list->cfg->zone, code);
		scan_add_scored_symbol(scan, q[i].list->symbol, score, detail);
	}
	for (int i = 0; i < n; i++)
		dns_query_free(q[i].query);
	free(q);
}

static bool
dnsbl_enabled(const struct config *cfg)
{
	return cfg->dnsbl.enabled && cfg->ndnsbls > 0;
}

const struct check dnsbl_check = {
	.name = "dnsbl",
	.section = "dnsbl",
	.stage = STAGE_EOM,
	.symbols = dnsbl_symbols,
	.enabled = dnsbl_enabled,
	.init = dnsbl_init,
	.run = dnsbl_run,
	.has_symbol = dnsbl_has_symbol,
	.free = dnsbl_free,
};
