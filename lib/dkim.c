#include "dkim.h"

#include <opendkim/dkim.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "engine.h"
#include "log.h"
#include "mxg.h"
#include "strbuf.h"

/* A key name: selector._domainkey.domain, at most a DNS name. */
#define DKIM_KEY_NAME_MAX 1100
/* Keys fetched ahead per message, one per distinct s=/d= pair. */
#define DKIM_PREFETCH_MAX 8

static const struct check_symbol dkim_symbols[] = {
	{"DKIM_PASS", -0.5, "DKIM: a signature verified"},
	{"DKIM_FAIL", 2.0, "DKIM: a signature does not verify"},
	{"DKIM_NEUTRAL", 0.5, "DKIM: a signature has syntax errors"},
	{"DKIM_POLICY", 0.5, "DKIM: a signature refused by local policy"},
	{"DKIM_TEMPERROR", 0.0, "DKIM: a key could not be fetched"},
	{"DKIM_PERMERROR", 1.0, "DKIM: a signature cannot be verified"},
	{"DKIM_NONE", 0.0, "DKIM: the message is not signed"},
	{NULL, 0, NULL},
};

struct dkim_state {
	DKIM_LIB *lib;
	const struct config *cfg;
};

struct dkim_prefetch {
	char name[DKIM_KEY_NAME_MAX];
	struct dns_query *query;
};

/* One message's verification, kept in the scan's check data. */
struct dkim_message {
	struct dkim_state *state;
	struct dns_resolver *dns;
	DKIM *handle;
	bool started;		/* headers handed to libopendkim */
	bool unsigned_mail;	/* dkim_eoh found no signature */
	bool failed;		/* libopendkim refused the message */
	struct dkim_prefetch prefetch[DKIM_PREFETCH_MAX];
	int nprefetch;
	/* Keys that libopendkim is told are missing while the truth is
	 * different: see dkim_key_lookup. */
	struct key_problem {
		char name[DKIM_KEY_NAME_MAX];
		enum dkim_result_code code;
		const char *reason;
	} problems[DKIM_PREFETCH_MAX];
	int nproblems;
};

static void
note_problem(struct dkim_message *m, const char *name,
    enum dkim_result_code code, const char *reason)
{
	if (m->nproblems == DKIM_PREFETCH_MAX)
		return;
	snprintf(m->problems[m->nproblems].name, DKIM_KEY_NAME_MAX, "%s", name);
	m->problems[m->nproblems].code = code;
	m->problems[m->nproblems].reason = reason;
	m->nproblems++;
}

static const struct key_problem *
find_problem(const struct dkim_message *m, const char *name)
{
	for (int i = 0; i < m->nproblems; i++)
		if (strcasecmp(m->problems[i].name, name) == 0)
			return &m->problems[i];
	return NULL;
}

/* "rsa" or "ed25519" from a key record's k= (default rsa, RFC 6376). */
static bool
key_type_matches(const char *record, const char *algorithm)
{
	const char *p = record;
	char k[32] = "rsa";

	while (p != NULL && *p) {
		p += strspn(p, " \t;");
		if (p[0] == 'k' && p[strspn(p + 1, " \t") + 1] == '=') {
			const char *v = strchr(p, '=') + 1;
			v += strspn(v, " \t");
			size_t n = strcspn(v, "; \t");
			snprintf(k, sizeof(k), "%.*s", (int)n, v);
			break;
		}
		p = strchr(p, ';');
	}
	if (algorithm == NULL)
		return true;
	if (strncmp(algorithm, "ed25519", 7) == 0)
		return strcasecmp(k, "ed25519") == 0;
	if (strncmp(algorithm, "rsa", 3) == 0)
		return strcasecmp(k, "rsa") == 0;
	return true;
}

const char *
dkim_result_name(enum dkim_result_code code)
{
	static const char *const names[] = {
		[DKIM_RES_PASS] = "pass", [DKIM_RES_FAIL] = "fail",
		[DKIM_RES_NEUTRAL] = "neutral", [DKIM_RES_POLICY] = "policy",
		[DKIM_RES_TEMPERROR] = "temperror",
		[DKIM_RES_PERMERROR] = "permerror",
	};
	return names[code];
}

void
dkim_results_clear(struct dkim_results *results)
{
	for (size_t i = 0; i < results->count; i++) {
		free(results->sigs[i].domain);
		free(results->sigs[i].selector);
		free(results->sigs[i].identity);
		free(results->sigs[i].reason);
	}
	free(results->sigs);
	memset(results, 0, sizeof(*results));
}

static void
key_name(char *out, size_t outlen, const char *selector, const char *domain)
{
	snprintf(out, outlen, "%s._domainkey.%s", selector, domain);
}

/*
 * libopendkim's key lookup, answered from the shared resolver: the
 * prefetched query when there is one, else a new query. The TXT record's
 * strings are joined (RFC 6376 3.6.2.2). A missing key is NOTFOUND
 * (permerror), a DNS failure TRYAGAIN (temperror).
 */
static DKIM_CBSTAT
dkim_key_lookup(DKIM *handle, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dkim_message *m = dkim_get_user_context(handle);
	const char *selector = (const char *)dkim_sig_getselector(sig);
	const char *domain = (const char *)dkim_sig_getdomain(sig);
	char name[DKIM_KEY_NAME_MAX];
	struct dns_query *q = NULL, *own = NULL;
	const struct dns_answer *answer;
	enum dns_status status;

	if (m == NULL || selector == NULL || domain == NULL)
		return DKIM_CBSTAT_ERROR;
	key_name(name, sizeof(name), selector, domain);
	for (int i = 0; i < m->nprefetch; i++)
		if (strcasecmp(m->prefetch[i].name, name) == 0)
			q = m->prefetch[i].query;
	if (q == NULL)
		q = own = dns_query_start(m->dns, name, 16 /* TXT */);
	status = dns_query_wait(q, mxg_now_ms() +
	    dns_resolver_timeout_ms(m->dns), &answer);
	DKIM_CBSTAT rc;
	switch (status) {
	case DNS_OK: {
		const unsigned char *d = (const unsigned char *)answer->data[0];
		int len = answer->len[0];
		size_t o = 0;

		for (int i = 0; i < len;) {
			int n = d[i++];

			if (n > len - i)
				n = len - i;
			if (o + (size_t)n + 1 > buflen)
				n = (int)(buflen - o - 1);
			memcpy(buf + o, d + i, (size_t)n);
			o += (size_t)n;
			i += n;
		}
		buf[o] = '\0';
		rc = DKIM_CBSTAT_CONTINUE;
		break;
	}
	case DNS_NXDOMAIN:
	case DNS_NODATA:
	case DNS_PERMFAIL:
		rc = DKIM_CBSTAT_NOTFOUND;
		break;
	default:
		/* libopendkim stops evaluating every other signature after
		 * a TRYAGAIN: it is told the key is missing, and the real
		 * outcome, temperror, is noted for judge_signature. */
		note_problem(m, name, DKIM_RES_TEMPERROR,
		    "key lookup failed (DNS), try again later");
		rc = DKIM_CBSTAT_NOTFOUND;
		break;
	}
	/* RFC 6376 3.6.1: a key of another type than the signature's
	 * algorithm cannot verify it; libopendkim does not check k=. */
	if (rc == DKIM_CBSTAT_CONTINUE) {
		const char *alg = (const char *)dkim_sig_gettagvalue(sig, false,
		    (u_char *)"a");
		if (!key_type_matches((const char *)buf, alg)) {
			note_problem(m, name, DKIM_RES_PERMERROR,
			    "key type (k=) does not match the algorithm");
			rc = DKIM_CBSTAT_NOTFOUND;
		}
	}
	/* A prefetched query may be waited for once: forget it. */
	for (int i = 0; i < m->nprefetch; i++)
		if (m->prefetch[i].query == q) {
			m->prefetch[i].name[0] = '\0';
			m->prefetch[i].query = NULL;
			own = q;
		}
	dns_query_free(own);
	return rc;
}

/* Marks every signature after the first max_signatures as ignored, so
 * that a message with a hundred signatures costs five key lookups. */
static DKIM_CBSTAT
dkim_prescreen(DKIM *handle, DKIM_SIGINFO **sigs, int nsigs)
{
	struct dkim_message *m = dkim_get_user_context(handle);

	if (m == NULL)
		return DKIM_CBSTAT_CONTINUE;
	for (int i = m->state->cfg->dkim.max_signatures; i < nsigs; i++)
		dkim_sig_ignore(sigs[i]);
	return DKIM_CBSTAT_CONTINUE;
}

static int
dkim_init_check(const struct check_env *env, void **out, char *err)
{
	struct dkim_state *state = mxg_calloc(1, sizeof(*state));
	unsigned int flags;
	unsigned int min_bits = (unsigned int)env->cfg->dkim.min_key_bits;

	state->cfg = env->cfg;
	state->lib = dkim_init(NULL, NULL);
	if (state->lib == NULL) {
		free(state);
		return mxg_fail(err, MXG_ELIB, "dkim: dkim_init failed");
	}
	/* FIXCRLF: header values from the MTA may fold with a bare LF. */
	flags = DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES;
	if (dkim_options(state->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof(flags)) != DKIM_STAT_OK ||
	    dkim_options(state->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS,
	    &min_bits, sizeof(min_bits)) != DKIM_STAT_OK ||
	    dkim_set_key_lookup(state->lib, dkim_key_lookup) != DKIM_STAT_OK ||
	    dkim_set_prescreen(state->lib, dkim_prescreen) != DKIM_STAT_OK) {
		dkim_close(state->lib);
		free(state);
		return mxg_fail(err, MXG_ELIB, "dkim: libopendkim refused "
		    "its options");
	}
	if (!dkim_libfeature(state->lib, DKIM_FEATURE_ED25519))
		log_msg(NULL, LOG_LEVEL_WARNING, "dkim: this libopendkim "
		    "cannot verify ed25519-sha256 (RFC 8463) signatures");
	*out = state;
	return MXG_OK;
}

static void
dkim_free_check(void *p)
{
	struct dkim_state *state = p;

	if (state == NULL)
		return;
	dkim_close(state->lib);
	free(state);
}

static void
dkim_release_message(void *p)
{
	struct dkim_message *m = p;

	for (int i = 0; i < m->nprefetch; i++)
		dns_query_free(m->prefetch[i].query);
	if (m->handle != NULL)
		dkim_free(m->handle);
	free(m);
}

/* The value of tag `tag` in a DKIM-Signature value, white space removed,
 * into out; false when absent. Hostile input is fine: bounded copy. */
static bool
signature_tag(const char *value, size_t len, const char *tag, char *out,
    size_t outlen)
{
	size_t taglen = strlen(tag);

	for (size_t i = 0; i < len;) {
		while (i < len && (isspace((unsigned char)value[i]) ||
		    value[i] == ';'))
			i++;
		size_t start = i;
		while (i < len && value[i] != '=' && value[i] != ';')
			i++;
		size_t end = i;
		while (end > start && isspace((unsigned char)value[end - 1]))
			end--;
		bool match = end - start == taglen &&
		    strncmp(value + start, tag, taglen) == 0;
		if (i < len && value[i] == '=')
			i++;
		size_t o = 0;
		while (i < len && value[i] != ';') {
			if (match && !isspace((unsigned char)value[i]) &&
			    o + 1 < outlen)
				out[o++] = value[i];
			i++;
		}
		if (match) {
			out[o] = '\0';
			return o > 0;
		}
	}
	return false;
}

/* At end of headers: start the key queries of the first signatures, so
 * that they run while the body streams in. */
static void
prefetch_keys(struct dkim_message *m, const struct message *msg, int max)
{
	for (size_t i = 0; i < msg->nheaders && m->nprefetch < DKIM_PREFETCH_MAX
	    && max-- > 0; i++) {
		const struct header *h = &msg->headers[i];
		char d[256], s[256], name[DKIM_KEY_NAME_MAX];
		bool seen = false;

		if (strcasecmp(h->name, "DKIM-Signature") != 0)
			continue;
		if (!signature_tag(h->value, h->value_len, "d", d, sizeof(d)) ||
		    !signature_tag(h->value, h->value_len, "s", s, sizeof(s)))
			continue;
		key_name(name, sizeof(name), s, d);
		for (int k = 0; k < m->nprefetch; k++)
			seen |= strcasecmp(m->prefetch[k].name, name) == 0;
		if (seen)
			continue;
		snprintf(m->prefetch[m->nprefetch].name, DKIM_KEY_NAME_MAX, "%s",
		    name);
		m->prefetch[m->nprefetch++].query = dns_query_start(m->dns, name,
		    16 /* TXT */);
	}
}

/* Hands the headers to libopendkim once, on the first body chunk or at
 * end of message, whichever comes first. */
static struct dkim_message *
dkim_message_start(struct dkim_state *state, struct scan *scan)
{
	void **slot = scan_check_data(scan, &dkim_check);
	struct dkim_message *m = *slot;
	const struct message *msg = scan->msg;
	DKIM_STAT status;

	if (m != NULL)
		return m;
	m = mxg_calloc(1, sizeof(*m));
	*slot = m;
	m->state = state;
	m->dns = scan->dns;
	m->started = true;
	if (message_header_count(msg, "DKIM-Signature") == 0) {
		m->unsigned_mail = true;
		return m;
	}
	prefetch_keys(m, msg, state->cfg->dkim.max_signatures);
	m->handle = dkim_verify(state->lib,
	    (const unsigned char *)(msg->queue_id ? msg->queue_id : "mxguard"),
	    NULL, &status);
	if (m->handle == NULL) {
		m->failed = true;
		return m;
	}
	dkim_set_user_context(m->handle, m);
	struct strbuf line = STRBUF_INIT;
	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct header *h = &msg->headers[i];

		strbuf_reset(&line);
		strbuf_puts(&line, h->name);
		strbuf_puts(&line, ": ");
		/* libmilter hands folded values over with bare LF; the
		 * signer hashed CRLF (relaxed and simple alike). */
		for (size_t k = 0; k < h->value_len; k++) {
			if (h->value[k] == '\n' && (k == 0 ||
			    h->value[k - 1] != '\r'))
				strbuf_putc(&line, '\r');
			strbuf_putc(&line, h->value[k]);
		}
		/* A header libopendkim cannot take (NUL bytes, no colon)
		 * only means its signature will not verify. */
		(void)dkim_header(m->handle, (u_char *)line.data, line.len);
	}
	strbuf_free(&line);
	status = dkim_eoh(m->handle);
	if (status == DKIM_STAT_NOSIG)
		m->unsigned_mail = true;
	else if (status != DKIM_STAT_OK)
		m->failed = status != DKIM_STAT_SYNTAX;
	return m;
}

static void
dkim_body_chunk(void *p, struct scan *scan, const char *chunk, size_t len)
{
	struct dkim_message *m = dkim_message_start(p, scan);

	if (m->handle != NULL && !m->unsigned_mail && !m->failed)
		(void)dkim_body(m->handle, (u_char *)chunk, len);
}

static const char *
algorithm_name(DKIM_SIGINFO *sig)
{
	dkim_alg_t alg;
	const char *a = (const char *)dkim_sig_gettagvalue(sig, false,
	    (u_char *)"a");

	/* The a= tag as written: libopendkim leaves its parsed algorithm
	 * at 0 (rsa-sha1) for a signature it refused early. */
	if (a != NULL) {
		static const char *const known[] = {"rsa-sha256",
		    "ed25519-sha256", "rsa-sha1"};
		for (size_t i = 0; i < 3; i++)
			if (strcasecmp(a, known[i]) == 0)
				return known[i];
		return "unknown";
	}
	if (dkim_sig_getsignalg(sig, &alg) != DKIM_STAT_OK)
		return "unknown";
	switch (alg) {
	case DKIM_SIGN_RSASHA1:
		return "rsa-sha1";
	case DKIM_SIGN_RSASHA256:
		return "rsa-sha256";
	case DKIM_SIGN_ED25519SHA256:
		return "ed25519-sha256";
	default:
		return "unknown";
	}
}

static enum dkim_result_code
classify_error(int err)
{
	switch (err) {
	case DKIM_SIGERROR_BADSIG:
		return DKIM_RES_FAIL;
	case DKIM_SIGERROR_KEYFAIL:
		return DKIM_RES_TEMPERROR;
	case DKIM_SIGERROR_KEYTOOSMALL:
		return DKIM_RES_POLICY;
	case DKIM_SIGERROR_VERSION:
	case DKIM_SIGERROR_DOMAIN:
	case DKIM_SIGERROR_TIMESTAMPS:
	case DKIM_SIGERROR_INVALID_HC:
	case DKIM_SIGERROR_INVALID_BC:
	case DKIM_SIGERROR_MISSING_A:
	case DKIM_SIGERROR_INVALID_A:
	case DKIM_SIGERROR_MISSING_H:
	case DKIM_SIGERROR_INVALID_L:
	case DKIM_SIGERROR_INVALID_Q:
	case DKIM_SIGERROR_INVALID_QO:
	case DKIM_SIGERROR_MISSING_D:
	case DKIM_SIGERROR_EMPTY_D:
	case DKIM_SIGERROR_MISSING_S:
	case DKIM_SIGERROR_EMPTY_S:
	case DKIM_SIGERROR_MISSING_B:
	case DKIM_SIGERROR_EMPTY_B:
	case DKIM_SIGERROR_CORRUPT_B:
	case DKIM_SIGERROR_MISSING_BH:
	case DKIM_SIGERROR_EMPTY_BH:
	case DKIM_SIGERROR_CORRUPT_BH:
	case DKIM_SIGERROR_EMPTY_H:
	case DKIM_SIGERROR_INVALID_H:
	case DKIM_SIGERROR_MISSING_V:
	case DKIM_SIGERROR_EMPTY_V:
		return DKIM_RES_NEUTRAL;
	default:
		return DKIM_RES_PERMERROR;
	}
}

/* One signature's outcome, from libopendkim's flags and error. */
/* RFC 6376 3.2: a tag list with a tag twice is invalid. Works on the
 * raw header value: any bytes, NUL included. */
static bool
has_duplicate_tags(const struct header *h)
{
	char names[64][16];
	int n = 0;
	const char *v = h->value, *end = h->value + h->value_len;

	while (v < end && n < 64) {
		while (v < end && (isspace((unsigned char)*v) || *v == ';'))
			v++;
		const char *start = v;
		while (v < end && *v != '=' && *v != ';')
			v++;
		const char *stop = v;
		while (stop > start && isspace((unsigned char)stop[-1]))
			stop--;
		if (stop > start && (size_t)(stop - start) < sizeof(names[0])) {
			snprintf(names[n], sizeof(names[0]), "%.*s",
			    (int)(stop - start), start);
			for (int j = 0; j < n; j++)
				if (strcmp(names[j], names[n]) == 0)
					return true;
			n++;
		}
		while (v < end && *v != ';')
			v++;
	}
	return false;
}

/* The index-th DKIM-Signature header (libopendkim lists signatures in
 * the order of their headers). */
static const struct header *
signature_header(const struct message *msg, int index)
{
	for (size_t i = 0; i < msg->nheaders; i++)
		if (strcasecmp(msg->headers[i].name, "DKIM-Signature") == 0 &&
		    index-- == 0)
			return &msg->headers[i];
	return NULL;
}

static void
judge_signature(struct dkim_state *state, const struct dkim_message *m,
    const struct header *header, DKIM_SIGINFO *sig,
    struct dkim_signature_result *r)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int err = dkim_sig_geterror(sig);
	const char *v;
	char buf[64];

	r->domain = mxg_strdup((v = (const char *)dkim_sig_getdomain(sig)) ?
	    v : "");
	r->selector = mxg_strdup((v = (const char *)dkim_sig_getselector(sig))
	    ? v : "");
	if ((v = (const char *)dkim_sig_gettagvalue(sig, false,
	    (u_char *)"i")) != NULL)
		r->identity = mxg_strdup(v);
	r->algorithm = algorithm_name(sig);
	if ((v = (const char *)dkim_sig_gettagvalue(sig, false,
	    (u_char *)"b")) != NULL) {
		size_t o = 0;
		for (; *v && o < 8; v++)
			if (!isspace((unsigned char)*v))
				r->b[o++] = *v;
		r->b[o] = '\0';
	}

	char name[DKIM_KEY_NAME_MAX];
	key_name(name, sizeof(name), r->selector, r->domain);
	const struct key_problem *problem = find_problem(m, name);
	if (problem != NULL) {
		r->code = problem->code;
		r->reason = mxg_strdup(problem->reason);
		return;
	}
	if (header != NULL && has_duplicate_tags(header)) {
		r->code = DKIM_RES_NEUTRAL;
		r->reason = mxg_strdup("a tag appears twice (RFC 6376 3.2)");
		return;
	}
	if ((flags & DKIM_SIGFLAG_PASSED) &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
		r->code = DKIM_RES_PASS;
		if (strcmp(r->algorithm, "rsa-sha1") == 0 &&
		    !state->cfg->dkim.allow_sha1) {
			r->code = DKIM_RES_POLICY;
			r->reason = mxg_strdup("rsa-sha1 is not accepted "
			    "(RFC 8301)");
		}
		return;
	}
	if ((flags & DKIM_SIGFLAG_PASSED) &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
		r->code = DKIM_RES_FAIL;
		r->reason = mxg_strdup("body hash mismatch");
		return;
	}
	if (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_UNKNOWN) {
		/* Processed, no error, not passed: the signature itself
		 * does not match the headers. */
		r->code = (flags & DKIM_SIGFLAG_PROCESSED) ? DKIM_RES_FAIL :
		    DKIM_RES_PERMERROR;
		r->reason = mxg_strdup((flags & DKIM_SIGFLAG_PROCESSED) ?
		    "signature verification failed" : "not processed");
		return;
	}
	r->code = classify_error(err);
	if (err == DKIM_SIGERROR_KEYTOOSMALL) {
		snprintf(buf, sizeof(buf), "RSA key under %d bits",
		    state->cfg->dkim.min_key_bits);
		r->reason = mxg_strdup(buf);
	} else {
		r->reason = mxg_strdup(dkim_sig_geterrorstr(err) ?
		    dkim_sig_geterrorstr(err) : "unknown error");
	}
}

static bool
dkim_enabled(const struct config *cfg)
{
	return cfg->dkim.enabled;
}

static const char *const result_symbols[] = {
	[DKIM_RES_PASS] = "DKIM_PASS", [DKIM_RES_FAIL] = "DKIM_FAIL",
	[DKIM_RES_NEUTRAL] = "DKIM_NEUTRAL", [DKIM_RES_POLICY] = "DKIM_POLICY",
	[DKIM_RES_TEMPERROR] = "DKIM_TEMPERROR",
	[DKIM_RES_PERMERROR] = "DKIM_PERMERROR",
};

static void
report(struct scan *scan)
{
	struct dkim_results *res = &scan->dkim;
	bool seen[DKIM_RES_PERMERROR + 1] = {false};
	bool temp_only = res->count > 0;

	for (size_t i = 0; i < res->count; i++) {
		struct dkim_signature_result *r = &res->sigs[i];
		struct strbuf props = STRBUF_INIT;

		strbuf_printf(&props, "header.d=%s\nheader.s=%s\nheader.a=%s",
		    r->domain, r->selector, r->algorithm);
		if (r->identity != NULL)
			strbuf_printf(&props, "\nheader.i=%s", r->identity);
		if (r->b[0] != '\0')
			strbuf_printf(&props, "\nheader.b=%s", r->b);
		verdict_add_authres(scan->verdict, "dkim",
		    dkim_result_name(r->code), r->reason, props.data);
		strbuf_free(&props);
		if (!seen[r->code]) {
			char detail[300];

			seen[r->code] = true;
			snprintf(detail, sizeof(detail), "d=%s s=%s%s%s",
			    r->domain, r->selector, r->reason ? ": " : "",
			    r->reason ? r->reason : "");
			scan_add_symbol(scan, result_symbols[r->code], detail);
		}
		if (r->code != DKIM_RES_TEMPERROR)
			temp_only = false;
	}
	if (res->count == 0) {
		scan_add_symbol(scan, "DKIM_NONE", NULL);
		verdict_add_authres(scan->verdict, "dkim", "none", NULL, NULL);
	}
	/* Only when no signature could be judged otherwise: one good
	 * signature is worth more than a retry. */
	if (temp_only && scan->cfg->dns.on_error == ON_ERROR_TEMPFAIL)
		verdict_force(scan->verdict, VERDICT_TEMPFAIL, "4.4.3",
		    "DKIM: temporary DNS failure fetching the key of %s, try "
		    "again later", res->sigs[0].domain);
}

static void
dkim_run(void *p, struct scan *scan)
{
	struct dkim_state *state = p;
	struct dkim_message *m = dkim_message_start(state, scan);
	struct dkim_results *res = &scan->dkim;
	DKIM_SIGINFO **sigs;
	int nsigs = 0;

	dkim_results_clear(res);
	res->checked = true;
	if (!m->unsigned_mail && m->handle != NULL) {
		(void)dkim_eom(m->handle, NULL);
		if (dkim_getsiglist(m->handle, &sigs, &nsigs) != DKIM_STAT_OK)
			nsigs = 0;
	}
	res->sigs = mxg_calloc((size_t)nsigs + 1, sizeof(*res->sigs));
	for (int i = 0; i < nsigs; i++) {
		if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE)
			continue;
		judge_signature(state, m, signature_header(scan->msg, i),
		    sigs[i], &res->sigs[res->count++]);
	}
	if (m->failed && res->count == 0)
		log_msg(scan->msg->queue_id, LOG_LEVEL_NOTICE, "dkim: "
		    "libopendkim could not process the message: %s",
		    m->handle ? dkim_geterror(m->handle) : "no handle");
	report(scan);
}

const struct check dkim_check = {
	.name = "dkim",
	.section = "dkim",
	.stage = STAGE_EOM,
	.symbols = dkim_symbols,
	.enabled = dkim_enabled,
	.init = dkim_init_check,
	.run = dkim_run,
	.body = dkim_body_chunk,
	.release = dkim_release_message,
	.free = dkim_free_check,
};
