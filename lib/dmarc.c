#include "dmarc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <gmime/gmime.h>
#include <libpsl.h>
#include <opendmarc/dmarc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "engine.h"
#include "log.h"
#include "mxg.h"
#include "netlist.h"
#include "strbuf.h"

#define DOMAIN_MAX 256
/* RFC 9989: a name of 8 or more labels jumps to its last 7. */
#define WALK_JUMP_LABELS 8
#define WALK_MAX 9
/* Names looked up per message: the From domain's walk and those of the
 * SPF and DKIM domains it is aligned against. */
#define CACHE_MAX 40
#define DMARC_RECORD_MAX 4096

static const struct check_symbol dmarc_symbols[] = {
	{"DMARC_PASS", -0.5, "DMARC: aligned SPF or DKIM pass"},
	{"DMARC_REJECT", 8.0, "DMARC: fails a p=reject policy"},
	{"DMARC_QUARANTINE", 6.0, "DMARC: fails a p=quarantine policy"},
	{"DMARC_POLICY_NONE_FAIL", 1.0, "DMARC: fails a p=none policy"},
	{"DMARC_NONE", 0.0, "DMARC: the From domain publishes no policy"},
	{"DMARC_TEMPERROR", 0.0, "DMARC: DNS failed looking for the policy"},
	{"DMARC_PERMERROR", 0.5, "DMARC: the policy record is broken"},
	{"DMARC_EXEMPT", 0.0, "DMARC: fails, but client or domain is exempt"},
	{"DMARC_MULTIPLE_FROM", 3.0, "DMARC: several From headers or addresses"},
	{"DMARC_NO_FROM", 2.0, "DMARC: no From header"},
	{"DMARC_BAD_FROM", 2.0, "DMARC: the From header cannot be parsed"},
	{NULL, 0, NULL},
};

struct dmarc_state {
	const struct config *cfg;
	psl_ctx_t *psl;			/* discovery = psl only */
	struct netlist *exempt_networks;
	struct domainlist *exempt_domains;
};

/* One _dmarc.<name> lookup of this message. */
struct lookup {
	char name[DOMAIN_MAX];
	struct dns_query *query;
	bool done;
	enum dns_status status;
	char *record;		/* the one valid DMARC record, or NULL */
};

struct lookups {
	struct dns_resolver *dns;
	long long deadline_ms;
	struct lookup entries[CACHE_MAX];
	int count;
};

const char *
dmarc_result_name(enum dmarc_result_code code)
{
	static const char *const names[] = {
		[DMARC_RES_PASS] = "pass", [DMARC_RES_FAIL] = "fail",
		[DMARC_RES_NONE] = "none", [DMARC_RES_TEMPERROR] = "temperror",
		[DMARC_RES_PERMERROR] = "permerror",
	};
	return names[code];
}

void
dmarc_result_clear(struct dmarc_result *r)
{
	free(r->domain);
	free(r->policy_domain);
	free(r->org_domain);
	free(r->reason);
	memset(r, 0, sizeof(*r));
}

static int
count_labels(const char *name)
{
	int n = *name ? 1 : 0;

	for (const char *p = name; *p; p++)
		n += *p == '.';
	return n;
}

/* The rightmost `labels` labels of name (borrowed, inside name). */
static const char *
last_labels(const char *name, int labels)
{
	int have = count_labels(name);
	const char *p = name;

	while (have > labels && (p = strchr(p, '.')) != NULL) {
		p++;
		have--;
	}
	return p ? p : name;
}

/* The names a tree walk visits from domain, most specific first. */
static int
walk_path(const char *domain, const char *path[WALK_MAX])
{
	int n = 0, labels = count_labels(domain);
	const char *p = domain;

	path[n++] = p;
	if (labels >= WALK_JUMP_LABELS) {
		p = last_labels(domain, WALK_JUMP_LABELS - 1);
		labels = WALK_JUMP_LABELS - 1;
		path[n++] = p;
	}
	while (labels > 1 && n < WALK_MAX) {
		p = strchr(p, '.') + 1;
		labels--;
		path[n++] = p;
	}
	return n;
}

/* "v=DMARC1" first, then ';' or the end (RFC 7489 6.4, RFC 9989 4.7). */
static bool
is_dmarc_record(const char *txt)
{
	if (strncmp(txt, "v", 1) != 0)
		return false;
	txt = txt + 1 + strspn(txt + 1, " \t");
	if (*txt != '=')
		return false;
	txt = txt + 1 + strspn(txt + 1, " \t");
	if (strncmp(txt, "DMARC1", 6) != 0)
		return false;
	txt += 6 + strspn(txt + 6, " \t");
	return *txt == ';' || *txt == '\0';
}

static struct lookup *
lookup_start(struct lookups *c, const char *name)
{
	char qname[DOMAIN_MAX + 8];

	for (int i = 0; i < c->count; i++)
		if (strcasecmp(c->entries[i].name, name) == 0)
			return &c->entries[i];
	if (c->count == CACHE_MAX || strlen(name) >= DOMAIN_MAX)
		return NULL;
	struct lookup *e = &c->entries[c->count++];
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(qname, sizeof(qname), "_dmarc.%s", name);
	e->query = dns_query_start(c->dns, qname, 16 /* TXT */);
	return e;
}

/* Waits for the lookup of name; NULL when it could not be made. */
static struct lookup *
lookup_get(struct lookups *c, const char *name)
{
	struct lookup *e = lookup_start(c, name);
	const struct dns_answer *answer;

	if (e == NULL || e->done)
		return e;
	e->done = true;
	e->status = dns_query_wait(e->query, c->deadline_ms, &answer);
	if (e->status != DNS_OK)
		return e;
	int valid = 0;
	for (int i = 0; i < answer->count; i++) {
		char txt[DMARC_RECORD_MAX];
		const unsigned char *d = (const unsigned char *)answer->data[i];
		size_t o = 0;

		for (int k = 0; k < answer->len[i];) {
			int n = d[k++];

			if (n > answer->len[i] - k)
				n = answer->len[i] - k;
			if (o + (size_t)n >= sizeof(txt))
				n = (int)(sizeof(txt) - 1 - o);
			memcpy(txt + o, d + k, (size_t)n);
			o += (size_t)n;
			k += n;
		}
		txt[o] = '\0';
		if (strlen(txt) != o || !is_dmarc_record(txt))
			continue;	/* NUL inside, or not DMARC: skip */
		if (valid++ == 0)
			e->record = mxg_strdup(txt);
	}
	/* Several records at one name count as none (RFC 7489 6.6.3). */
	if (valid > 1) {
		free(e->record);
		e->record = NULL;
	}
	return e;
}

static void
lookups_free(struct lookups *c)
{
	for (int i = 0; i < c->count; i++) {
		dns_query_free(c->entries[i].query);
		free(c->entries[i].record);
	}
}

/* Value of tag `name` in a DMARC record, into out; false if absent. */
static bool
record_tag(const char *record, const char *name, char *out, size_t outlen)
{
	size_t namelen = strlen(name);

	for (const char *p = record; *p;) {
		p += strspn(p, " \t;");
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);

		if (eq != NULL) {
			size_t k = (size_t)(eq - p);
			while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
				k--;
			if (k == namelen && strncasecmp(p, name, k) == 0) {
				const char *v = eq + 1 + strspn(eq + 1, " \t");
				size_t vlen = (size_t)(p + len - v);
				while (vlen > 0 && (v[vlen - 1] == ' ' ||
				    v[vlen - 1] == '\t'))
					vlen--;
				snprintf(out, outlen, "%.*s", (int)vlen, v);
				return true;
			}
		}
		p += len;
	}
	return false;
}

/* Organizational domain of domain (caller frees). */
static char *
org_domain(const struct dmarc_state *state, struct lookups *c,
    const char *domain)
{
	if (state->cfg->dmarc.discovery == DMARC_DISCOVERY_PSL) {
		const char *reg = psl_registrable_domain(state->psl, domain);

		return mxg_strdup(reg ? reg : domain);
	}
	const char *path[WALK_MAX], *candidate = NULL;
	int n = walk_path(domain, path);
	for (int i = 0; i < n; i++)
		lookup_start(c, path[i]);
	for (int i = 0; i < n; i++) {
		struct lookup *e = lookup_get(c, path[i]);
		char psd[8];

		if (e == NULL || e->record == NULL)
			continue;
		if (record_tag(e->record, "psd", psd, sizeof(psd))) {
			if (strcmp(psd, "n") == 0)
				return mxg_strdup(path[i]);
			if (strcmp(psd, "y") == 0)
				return mxg_strdup(i == 0 ? domain : last_labels(
				    domain, count_labels(path[i]) + 1));
		}
		candidate = path[i];
	}
	return mxg_strdup(candidate ? candidate : domain);
}

static bool
same_domain(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static bool
aligned(const struct dmarc_state *state, struct lookups *c,
    const char *domain, const char *from, const char *from_org, bool strict)
{
	if (domain == NULL || *domain == '\0')
		return false;
	if (same_domain(domain, from))
		return true;
	if (strict)
		return false;
	char *org = org_domain(state, c, domain);
	bool same = same_domain(org, from_org);
	free(org);
	return same;
}

/*
 * The From domain: 0 and *domain (caller frees) for one address;
 * otherwise the symbol that says why there is none (or several).
 */
static const char *
from_domain(const struct message *msg, char **domain)
{
	size_t nfrom = message_header_count(msg, "From");
	const char *problem = NULL;

	*domain = NULL;
	if (nfrom == 0)
		return "DMARC_NO_FROM";
	if (nfrom > 1)
		problem = "DMARC_MULTIPLE_FROM";

	InternetAddressList *list = internet_address_list_parse(NULL,
	    message_header_find(msg, "From", 0)->value);
	int count = 0;
	for (int i = 0; list != NULL && i < internet_address_list_length(list);
	    i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		InternetAddressList *members = NULL;

		if (INTERNET_ADDRESS_IS_GROUP(ia))
			members = internet_address_group_get_members(
			    INTERNET_ADDRESS_GROUP(ia));
		int nmembers = members ? internet_address_list_length(members) : 1;
		for (int k = 0; k < nmembers; k++) {
			InternetAddress *a = members ?
			    internet_address_list_get_address(members, k) : ia;
			if (!INTERNET_ADDRESS_IS_MAILBOX(a))
				continue;
			const char *addr = internet_address_mailbox_get_addr(
			    INTERNET_ADDRESS_MAILBOX(a));
			const char *at = addr ? strrchr(addr, '@') : NULL;
			count++;
			if (at == NULL || *domain != NULL)
				continue;
			char *d = mxg_strdup(at + 1);
			bool ok = *d != '\0' && *d != '.' && strlen(d) < DOMAIN_MAX;
			for (char *p = d; *p; p++) {
				*p = (char)tolower((unsigned char)*p);
				if (!(isalnum((unsigned char)*p) || *p == '-' ||
				    *p == '_' || (*p == '.' && p[1] != '.')))
					ok = false;
			}
			if (ok)
				*domain = d;
			else
				free(d);
		}
	}
	if (list != NULL)
		g_object_unref(list);
	if (count > 1)
		problem = "DMARC_MULTIPLE_FROM";
	if (*domain == NULL && problem == NULL)
		problem = "DMARC_BAD_FROM";
	return problem;
}

static const char *
policy_name(int p)
{
	switch (p) {
	case DMARC_RECORD_P_REJECT:
		return "reject";
	case DMARC_RECORD_P_QUARANTINE:
		return "quarantine";
	default:
		return "none";
	}
}

/* The same request, one step milder (RFC 7489 6.6.4, RFC 9989 t=y). */
static const char *
milder(const char *policy)
{
	if (strcmp(policy, "reject") == 0)
		return "quarantine";
	return "none";
}

/* RFC 9989 np=: the From domain does not exist (NXDOMAIN). */
static bool
domain_is_nonexistent(struct dns_resolver *dns, const char *domain)
{
	const struct dns_answer *answer;
	struct dns_query *q;
	enum dns_status status = dns_lookup(dns, domain, 1 /* A */, &q, &answer);

	dns_query_free(q);
	return status == DNS_NXDOMAIN;
}

struct record_policy {
	int p, sp, pct;
	bool has_sp;
	bool strict_spf, strict_dkim;
	char np[16];
	bool testing;		/* t=y */
};

/* Parses the record with libopendmarc; false when it refuses it. */
static bool
parse_record(const struct message *msg, const char *record,
    const char *policy_domain, const char *org, const char *from,
    struct record_policy *rp)
{
	DMARC_POLICY_T *pctx;
	int adkim = 0, aspf = 0;
	char buf[16];

	memset(rp, 0, sizeof(*rp));
	pctx = opendmarc_policy_connect_init((u_char *)(msg->client_addr ?
	    msg->client_addr : "0.0.0.0"), msg->client_family == AF_INET6 ?
	    DMARC_POLICY_IP_TYPE_IPV6 : DMARC_POLICY_IP_TYPE_IPV4);
	if (pctx == NULL)
		return false;
	opendmarc_policy_store_from_domain(pctx, (u_char *)from);
	int rc = opendmarc_policy_store_dmarc(pctx, (u_char *)record,
	    (u_char *)policy_domain, (u_char *)org);
	if (rc == DMARC_PARSE_OKAY) {
		opendmarc_policy_fetch_p(pctx, &rp->p);
		opendmarc_policy_fetch_sp(pctx, &rp->sp);
		opendmarc_policy_fetch_pct(pctx, &rp->pct);
		opendmarc_policy_fetch_adkim(pctx, &adkim);
		opendmarc_policy_fetch_aspf(pctx, &aspf);
	}
	opendmarc_policy_connect_shutdown(pctx);
	if (rc != DMARC_PARSE_OKAY)
		return false;
	rp->has_sp = record_tag(record, "sp", buf, sizeof(buf));
	rp->strict_dkim = adkim == DMARC_RECORD_A_STRICT;
	rp->strict_spf = aspf == DMARC_RECORD_A_STRICT;
	if (!record_tag(record, "pct", buf, sizeof(buf)))
		rp->pct = 100;
	if (record_tag(record, "np", rp->np, sizeof(rp->np)) &&
	    strcmp(rp->np, "none") != 0 && strcmp(rp->np, "quarantine") != 0 &&
	    strcmp(rp->np, "reject") != 0)
		rp->np[0] = '\0';
	rp->testing = record_tag(record, "t", buf, sizeof(buf)) &&
	    strcmp(buf, "y") == 0;
	return true;
}

/* Finds the policy record: the first valid one on the walk (or, under
 * RFC 7489, at the From domain or its organizational domain). */
static const struct lookup *
discover_policy(const struct dmarc_state *state, struct lookups *c,
    const char *from, const char *org, bool *tempfail)
{
	const char *path[WALK_MAX];
	int n;

	*tempfail = false;
	if (state->cfg->dmarc.discovery == DMARC_DISCOVERY_PSL) {
		path[0] = from;
		path[1] = org;
		n = same_domain(from, org) ? 1 : 2;
	} else {
		n = walk_path(from, path);
	}
	for (int i = 0; i < n; i++) {
		const struct lookup *e = lookup_get(c, path[i]);

		if (e == NULL)
			continue;
		if (e->record != NULL)
			return e;
		if (e->status == DNS_TEMPFAIL)
			*tempfail = true;
	}
	return NULL;
}

static void
report(struct scan *scan, const struct dmarc_result *r, const char *symbol,
    const char *detail)
{
	struct strbuf comment = STRBUF_INIT, props = STRBUF_INIT;

	if (symbol != NULL)
		scan_add_symbol(scan, symbol, detail);
	if (r->policy != NULL)
		strbuf_printf(&comment, "p=%s dis=%s", r->policy,
		    r->disposition);
	else if (r->reason != NULL)
		strbuf_puts(&comment, r->reason);
	strbuf_printf(&props, "header.from=%s", r->domain);
	verdict_add_authres(scan->verdict, "dmarc", dmarc_result_name(r->code),
	    comment.len ? comment.data : NULL, props.data);
	strbuf_free(&comment);
	strbuf_free(&props);
}

static void
evaluate(struct dmarc_state *state, struct scan *scan, struct dmarc_result *r)
{
	const struct config *cfg = state->cfg;
	struct lookups c;
	bool tempfail;

	memset(&c, 0, sizeof(c));
	c.dns = scan->dns;
	c.deadline_ms = mxg_now_ms() + dns_resolver_timeout_ms(scan->dns);

	/* Every name this message may need, in flight together. */
	const char *path[WALK_MAX];
	if (cfg->dmarc.discovery == DMARC_DISCOVERY_TREEWALK) {
		int n = walk_path(r->domain, path);
		for (int i = 0; i < n; i++)
			lookup_start(&c, path[i]);
	}
	r->org_domain = org_domain(state, &c, r->domain);
	const struct lookup *found = discover_policy(state, &c, r->domain,
	    r->org_domain, &tempfail);
	r->disposition = "none";

	if (found == NULL) {
		r->code = tempfail ? DMARC_RES_TEMPERROR : DMARC_RES_NONE;
		r->reason = mxg_strdup(tempfail ? "DNS failure looking for "
		    "the policy" : "no policy published");
		report(scan, r, tempfail ? "DMARC_TEMPERROR" : "DMARC_NONE",
		    r->domain);
		if (tempfail && cfg->dns.on_error == ON_ERROR_TEMPFAIL)
			verdict_force(scan->verdict, VERDICT_TEMPFAIL, "4.4.3",
			    "DMARC: temporary DNS failure looking up the "
			    "policy of %s, try again later", r->domain);
		lookups_free(&c);
		return;
	}
	r->policy_domain = mxg_strdup(found->name);

	struct record_policy rp;
	if (!parse_record(scan->msg, found->record, found->name,
	    r->org_domain, r->domain, &rp)) {
		r->code = DMARC_RES_PERMERROR;
		r->reason = mxg_strdup("the policy record cannot be parsed");
		report(scan, r, "DMARC_PERMERROR", found->name);
		lookups_free(&c);
		return;
	}

	/* Alignment: SPF's domain (MAIL FROM, or HELO for the null sender)
	 * and each passing DKIM signature's d=. */
	if (scan->spf.code == SPF_RES_PASS)
		r->spf_aligned = aligned(state, &c, scan->spf.domain,
		    r->domain, r->org_domain, rp.strict_spf);
	for (size_t i = 0; i < scan->dkim.count && !r->dkim_aligned; i++)
		if (scan->dkim.sigs[i].code == DKIM_RES_PASS)
			r->dkim_aligned = aligned(state, &c,
			    scan->dkim.sigs[i].domain, r->domain,
			    r->org_domain, rp.strict_dkim);
	lookups_free(&c);

	/* The policy that applies to this From domain. */
	const char *policy = policy_name(rp.p);
	if (!same_domain(r->domain, found->name)) {
		if (rp.np[0] != '\0' && domain_is_nonexistent(scan->dns,
		    r->domain))
			policy = strcmp(rp.np, "reject") == 0 ? "reject" :
			    strcmp(rp.np, "quarantine") == 0 ? "quarantine" :
			    "none";
		else if (rp.has_sp)
			policy = policy_name(rp.sp);
	}
	r->policy = policy;

	if (r->spf_aligned || r->dkim_aligned) {
		r->code = DMARC_RES_PASS;
		report(scan, r, "DMARC_PASS", r->domain);
		return;
	}
	r->code = DMARC_RES_FAIL;
	const char *requested = policy;
	if (rp.testing || (rp.pct < 100 &&
	    (rp.pct <= 0 || (int)arc4random_uniform(100) >= rp.pct)))
		requested = milder(policy);

	bool exempt = netlist_contains(state->exempt_networks, scan->msg) ||
	    domainlist_matches(state->exempt_domains, r->domain);
	char detail[300];
	snprintf(detail, sizeof(detail), "%s p=%s", r->domain, policy);
	if (strcmp(requested, "none") == 0) {
		report(scan, r, "DMARC_POLICY_NONE_FAIL", detail);
	} else if (exempt) {
		report(scan, r, "DMARC_EXEMPT", detail);
	} else if (strcmp(requested, "reject") == 0) {
		if (cfg->dmarc.enforce) {
			r->disposition = "reject";
			verdict_force(scan->verdict, VERDICT_REJECT, "5.7.1",
			    "DMARC: %s publishes p=%s and this message is "
			    "not authenticated for it", r->domain, policy);
		}
		report(scan, r, "DMARC_REJECT", detail);
	} else {
		if (cfg->dmarc.enforce) {
			char reason[300];

			r->disposition = "quarantine";
			snprintf(reason, sizeof(reason), "DMARC: %s publishes "
			    "p=%s", r->domain, policy);
			if (cfg->dmarc.quarantine == DMARC_QUARANTINE_HOLD)
				verdict_quarantine(scan->verdict, reason);
		}
		report(scan, r, "DMARC_QUARANTINE", detail);
	}
}

static void
dmarc_run(void *p, struct scan *scan)
{
	struct dmarc_state *state = p;
	struct dmarc_result *r = &scan->dmarc;
	char *domain;

	dmarc_result_clear(r);
	const char *problem = from_domain(scan->msg, &domain);
	if (problem != NULL) {
		scan_add_symbol(scan, problem, NULL);
		if (strcmp(problem, "DMARC_MULTIPLE_FROM") == 0 &&
		    message_header_count(scan->msg, "From") > 1 &&
		    state->cfg->dmarc.multiple_from ==
		    DMARC_MULTIPLE_FROM_REJECT) {
			verdict_force(scan->verdict, VERDICT_REJECT, "5.7.1",
			    "Message has %zu From headers (RFC 5322 3.6)",
			    message_header_count(scan->msg, "From"));
			free(domain);
			return;
		}
	}
	if (domain == NULL)
		return;		/* nothing to evaluate: dmarc stays null */
	r->checked = true;
	r->domain = domain;
	evaluate(state, scan, r);
}

static bool
dmarc_enabled(const struct config *cfg)
{
	return cfg->dmarc.enabled;
}

static pthread_once_t library_once = PTHREAD_ONCE_INIT;

static void
library_init(void)
{
	/* Process-wide, once, before threads (LIBRARY-NOTES.md): no TLD
	 * file, since discovery and alignment are done here. */
	static OPENDMARC_LIB_T lib;

	memset(&lib, 0, sizeof(lib));
	lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
	opendmarc_policy_library_init(&lib);
	g_mime_init();
}

static void
dmarc_free_check(void *p)
{
	struct dmarc_state *state = p;

	if (state == NULL)
		return;
	if (state->psl != NULL)
		psl_free(state->psl);
	netlist_free(state->exempt_networks);
	domainlist_free(state->exempt_domains);
	free(state);
}

static int
dmarc_init_check(const struct check_env *env, void **out, char *err)
{
	struct dmarc_state *state = mxg_calloc(1, sizeof(*state));
	const struct config *cfg = env->cfg;
	char why[MXG_ERRLEN];

	pthread_once(&library_once, library_init);
	state->cfg = cfg;
	if (cfg->dmarc.discovery == DMARC_DISCOVERY_PSL) {
		if (cfg->dmarc.public_suffix_list == NULL ||
		    (state->psl = psl_load_file(cfg->dmarc.public_suffix_list))
		    == NULL) {
			dmarc_free_check(state);
			return mxg_fail(err, MXG_EINVAL, "[dmarc] "
			    "public_suffix_list: cannot load '%s'",
			    cfg->dmarc.public_suffix_list ?
			    cfg->dmarc.public_suffix_list : "");
		}
	}
	if (netlist_parse(cfg->dmarc.exempt_networks, &state->exempt_networks,
	    why) != 0) {
		dmarc_free_check(state);
		return mxg_fail(err, MXG_EINVAL, "[dmarc] exempt_networks: %s",
		    why);
	}
	state->exempt_domains = domainlist_parse(cfg->dmarc.exempt_domains);
	*out = state;
	return MXG_OK;
}

const struct check dmarc_check = {
	.name = "dmarc",
	.section = "dmarc",
	.stage = STAGE_EOM,
	.symbols = dmarc_symbols,
	.enabled = dmarc_enabled,
	.init = dmarc_init_check,
	.run = dmarc_run,
	.free = dmarc_free_check,
};
