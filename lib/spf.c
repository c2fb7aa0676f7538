/* netinet/in.h must come before libspf2's headers (LIBRARY-NOTES.md). */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_rr.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "engine.h"
#include "log.h"
#include "mxg.h"
#include "spf.h"
#include "strbuf.h"

static const struct check_symbol spf_symbols[] = {
	{"SPF_PASS", -0.5, "SPF: the sender's domain authorizes the client"},
	{"SPF_FAIL", 4.0, "SPF: the sender's domain forbids the client"},
	{"SPF_SOFTFAIL", 2.0, "SPF: the sender's domain discourages the client"},
	{"SPF_NEUTRAL", 0.5, "SPF: the sender's domain makes no assertion"},
	{"SPF_NONE", 0.5, "SPF: the sender's domain publishes no SPF record"},
	{"SPF_TEMPERROR", 0.0, "SPF: a temporary DNS error"},
	{"SPF_PERMERROR", 1.0, "SPF: the domain's SPF record is broken"},
	{NULL, 0, NULL},
};

/*
 * The DNS layer libspf2 calls for every lookup of one check. It lives on
 * the stack of one spf_check_identity() call, so counting void lookups
 * needs no shared state. libspf2 must never get NULL back from lookup
 * (it would call its error handler, which aborts).
 */
struct spf_dns_layer {
	SPF_dns_server_t server;
	struct dns_resolver *resolver;
	int void_lookups;
	int void_limit;
	bool void_exceeded;
	bool tempfail;
	bool malformed;		/* an SPF record with bytes RFC 7208 forbids */
	bool mx_over_limit;	/* an "mx" with more than 10 MX records */
	bool unsafe_macro;	/* a record replaced by UNSAFE_MACRO_STUB */
	int spf_records;	/* TXT answers holding an SPF record */
	int dns_terms;		/* a, mx, ptr, exists, include, redirect */
	bool too_many_terms;	/* more than SPF_MAX_DNS_MECH of them */
	/* Host names from the latest MX or PTR answer: their address
	 * lookups belong to that mx or ptr term, not to a term of their own. */
	char follow_names[SPF_MAX_DNS_MX][256];
	int nfollow;
	long long deadline_ms;	/* one budget for the whole evaluation */
};

/* Rebuilds a TXT record from its character-strings, joined with nothing
 * between them (RFC 7208 3.3). */
static size_t
txt_join(const unsigned char *rdata, int rdlen, char *out)
{
	size_t o = 0;

	for (int i = 0; i < rdlen;) {
		int n = rdata[i++];

		if (n > rdlen - i)
			n = rdlen - i;
		memcpy(out + o, rdata + i, (size_t)n);
		o += (size_t)n;
		i += n;
	}
	out[o] = '\0';
	return o;
}

/* "v=spf1" followed by a space or the end (RFC 7208 4.5). */
static bool
txt_is_spf_record(const char *txt)
{
	return strncasecmp(txt, "v=spf1", 6) == 0 &&
	    (txt[6] == ' ' || txt[6] == '\0');
}

/*
 * Makes a TXT answer safe and faithful for libspf2, in place (txt has
 * room for twice its length):
 * - An SPF record must be 7-bit printable ASCII (RFC 7208 3.1, 4.5);
 *   libspf2 would read a NUL as the end and pass other bytes on. Such a
 *   record makes the check permerror: it is flagged here and replaced
 *   by one that matches nothing, so libspf2 parses nothing hostile.
 * - Any other TXT answer can only be an explanation (exp=), a macro
 *   string in which a space is literal (RFC 7208 6.2); libspf2's macro
 *   parser turns spaces into '%' and stops expanding after them, so each
 *   space is handed over as the macro "%_", which means exactly a space.
 */
static void
txt_prepare(struct spf_dns_layer *layer, char *txt, size_t len)
{
	if (len >= 6 && txt_is_spf_record(txt)) {
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)txt[i] < 0x20 ||
			    (unsigned char)txt[i] > 0x7e) {
				layer->malformed = true;
				strcpy(txt, "v=spf1 ?all");
				return;
			}
		return;
	}
	size_t spaces = 0;
	for (size_t i = 0; i < len; i++)
		spaces += txt[i] == ' ';
	if (spaces == 0)
		return;
	txt[len + spaces] = '\0';
	for (size_t i = len, o = len + spaces; i-- > 0;) {
		if (txt[i] == ' ') {
			txt[--o] = '_';
			txt[--o] = '%';
		} else {
			txt[--o] = txt[i];
		}
	}
}

/*
 * CVE-2023-42118 (fixed upstream by d14abff, 2023; not in Debian 12's
 * libspf2 1.2.10-7.2, whose CVE-2021-20314 fix introduced it).
 * SPF_c_parse_macro() (spf_compile.c) compiles a macro string into at
 * most 511 bytes (SPF_MAX_MECH_LEN, SPF_MAX_MOD_LEN): a literal run takes
 * a 4-byte header plus its bytes rounded up to 4, a %{..} takes 4. After
 * each %{..} it computes the room for the next literal as
 * 511 - used - 4 in a size_t: a %{..} that ends at 508 bytes wraps it,
 * and the literal text that follows is copied, unbounded, past a stack
 * buffer (SPF_record_compile_macro's ~515 bytes for an explanation,
 * SPF_c_mech_add's or SPF_c_mod_add's 4 KiB for a record): a remote crash
 * ("stack smashing detected"), with text the sender's domain chose.
 *
 * Walks src[0..len) the way libspf2 does, starting with `used` bytes
 * already taken (4 after a CIDR length), and says whether that state is
 * reached. It stops, as libspf2 does, at an error libspf2 reports before
 * anything is written out of bounds; where the outcome depends on what
 * libspf2 would do next (an unterminated or unknown variable at the end)
 * it assumes the worst.
 */
static bool
macro_underflows(const char *src, size_t len, size_t used)
{
	const size_t avail = 511, hdr = 4;  /* SPF_MAX_*_LEN, SPF_data_t */
	size_t ds_len = 0, ds_avail = avail - used - hdr, i = 0;

	while (i < len) {
		size_t run = 0;

		/* A literal ends at a '%' or a space (read as a '%'). */
		while (i + run < len && src[i + run] != '%' &&
		    src[i + run] != ' ')
			run++;
		if (ds_len + run > ds_avail)
			return false;		/* refused: too long */
		ds_len += run;
		i += run;
		if (i >= len)
			break;
		i++;
		switch (i < len ? src[i] : '\0') {
		case '%':
		case '_':
			if (ds_len + 1 > ds_avail)
				return false;
			ds_len++;
			i++;
			break;
		case '-':
			if (ds_len + 3 > ds_avail)
				return false;
			ds_len += 3;
			i++;
			break;
		case '{':
			if (ds_len > 0) {	/* the literal so far is closed */
				size_t n = (hdr + ds_len + 3) & ~(size_t)3;

				if (ds_len > 255 || used + n > avail)
					return false;
				used += n;
				ds_len = 0;
			}
			while (i < len && src[i] != '}' && src[i] != ' ')
				i++;
			if (i < len && src[i] == ' ')
				return false;	/* unterminated variable */
			if (i < len)
				i++;
			if (used + hdr > avail)
				return false;
			used += hdr;
			if (avail - used < hdr)
				return true;	/* ds_avail would wrap */
			ds_avail = avail - used - hdr;
			break;
		default:	/* kept as a literal '%' */
			if (ds_len + 1 > ds_avail)
				return false;
			ds_len++;
			break;
		}
	}
	return false;
}

/* Whether a term of SPF record txt (libspf2 splits them at spaces) has a
 * value, after "name:" or "name=", that reaches the underflow; for "a"
 * and "mx" whose value ends in a CIDR length, also with the 4 bytes
 * libspf2 compiles that into first. */
static bool
record_macro_underflows(const char *txt)
{
	for (const char *p = txt; *p != '\0';) {
		size_t n, name;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		name = strspn(p, "+-~?");
		for (size_t i = name; i < n; i++) {
			const char *v = p + i + 1;
			size_t vlen = n - i - 1, d = 0;
			bool cidr;

			if (p[i] != ':' && p[i] != '=')
				continue;
			while (d < vlen && isdigit((unsigned char)v[vlen - 1 - d]))
				d++;
			cidr = p[i] == ':' && d > 0 && d < vlen &&
			    v[vlen - 1 - d] == '/' &&
			    ((i - name == 1 && strncasecmp(p + name, "a", 1) == 0) ||
			    (i - name == 2 && strncasecmp(p + name, "mx", 2) == 0));
			if (macro_underflows(v, vlen, 0) ||
			    (cidr && macro_underflows(v, vlen, 4)))
				return true;
			break;
		}
		p += n;
	}
	return false;
}

/*
 * Refuses what libspf2 would compile into the overflow above. libspf2
 * compiles each SPF record term by term, and the first TXT answer of an
 * exp= lookup as a whole (SPF_request_get_exp); a layer cannot tell the
 * two lookups apart, so every answer is checked both ways, as handed
 * over (after txt_prepare). No legitimate record comes near: a domain-spec
 * names at most 253 octets (RFC 7208 7.3) and libspf2 itself refuses one
 * that takes more than 511 bytes; this only adds the 508..511 window
 * where it overflows.
 * - An SPF record is replaced by UNSAFE_MACRO_STUB: as a record libspf2
 *   cannot parse it, permerror (RFC 7208 4.6: a record that cannot be
 *   compiled); as an explanation it cannot compile it either and gives
 *   its default one (RFC 7208 6.2: the result stands).
 * - Any other TXT answer can only serve as an explanation: it is left
 *   out (returns true), with the same effect.
 */
#define UNSAFE_MACRO_STUB "v=spf1 {z}mxguard-refused-unsafe-macro"

static bool
txt_refuse_unsafe_macros(struct spf_dns_layer *layer, char *txt)
{
	bool as_exp = macro_underflows(txt, strlen(txt), 0);

	if (!txt_is_spf_record(txt)) {
		if (as_exp)
			log_msg(NULL, LOG_LEVEL_NOTICE, "spf: TXT answer left "
			    "out: libspf2 cannot compile it safely as an "
			    "explanation (CVE-2023-42118)");
		return as_exp;
	}
	if (as_exp || record_macro_underflows(txt)) {
		layer->unsafe_macro = true;
		/* shorter than any text that can reach the overflow */
		strcpy(txt, UNSAFE_MACRO_STUB);
	}
	return false;
}

static SPF_dns_rr_t *
layer_answer(struct spf_dns_layer *layer, SPF_dns_server_t *server,
    const char *domain, ns_type type, const struct dns_answer *answer)
{
	SPF_dns_rr_t *rr = SPF_dns_rr_new_init(server, domain, type,
	    answer->ttl, NETDB_SUCCESS);
	int cnt = 0;

	if (rr == NULL)
		return NULL;
	for (int i = 0; i < answer->count; i++) {
		const unsigned char *d = (const unsigned char *)answer->data[i];
		int len = answer->len[i];
		char name[1100];

		switch (type) {
		case ns_t_a:
			if (len != 4 || SPF_dns_rr_buf_realloc(rr, cnt, 4))
				continue;
			memcpy(&rr->rr[cnt++]->a, d, 4);
			break;
		case ns_t_aaaa:
			if (len != 16 || SPF_dns_rr_buf_realloc(rr, cnt, 16))
				continue;
			memcpy(&rr->rr[cnt++]->aaaa, d, 16);
			break;
		case ns_t_mx:
			if (len < 3 || dns_name_to_text(d + 2, (size_t)len - 2,
			    name, sizeof(name)) < 0 ||
			    SPF_dns_rr_buf_realloc(rr, cnt, strlen(name) + 1))
				continue;
			strcpy(rr->rr[cnt++]->mx, name);
			break;
		case ns_t_ptr:
			if (dns_name_to_text(d, (size_t)len, name,
			    sizeof(name)) < 0 ||
			    SPF_dns_rr_buf_realloc(rr, cnt, strlen(name) + 1))
				continue;
			strcpy(rr->rr[cnt++]->ptr, name);
			break;
		case ns_t_txt:
			/* Room for every space to become "%_" (below). */
			if (SPF_dns_rr_buf_realloc(rr, cnt, 2 * (size_t)len + 1))
				continue;
			txt_prepare(layer, rr->rr[cnt]->txt,
			    txt_join(d, len, rr->rr[cnt]->txt));
			if (txt_refuse_unsafe_macros(layer, rr->rr[cnt]->txt))
				continue;
			cnt++;
			break;
		default:
			break;
		}
	}
	rr->num_rr = cnt;
	if (cnt == 0)
		rr->herrno = NO_DATA;
	return rr;
}

/*
 * RFC 7208 4.6.4 counts void answers to the lookups of "a", "mx", "ptr"
 * and "exists" (address, MX and PTR queries). A TXT lookup that finds
 * nothing already ends include/redirect in permerror or none, and the
 * exp= lookup happens after the result is known and must not change it.
 */
static void
count_void_lookup(struct spf_dns_layer *layer, ns_type type)
{
	if (type == ns_t_txt)
		return;
	if (++layer->void_lookups > layer->void_limit)
		layer->void_exceeded = true;
}

/*
 * RFC 7208 4.6.4: at most 10 terms that cause DNS lookups (a, mx, ptr,
 * exists, include, redirect) in the whole evaluation, includes included.
 * libspf2 counts per record, afresh in each include, and checks only
 * before the next mechanism, so an include tree costs thousands of
 * lookups and an 11th term at the end passes. The layer counts instead:
 * an MX or PTR query is an mx or ptr term; an address query is an a or
 * exists term unless it is for a host the latest MX or PTR answer named.
 */
static bool
same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static bool
lookup_is_term(const struct spf_dns_layer *layer, const char *domain,
    ns_type type)
{
	if (type == ns_t_mx || type == ns_t_ptr)
		return true;
	for (int i = 0; i < layer->nfollow; i++)
		if (same_name(layer->follow_names[i], domain))
			return false;
	return true;
}

static void
remember_follow_names(struct spf_dns_layer *layer, const SPF_dns_rr_t *rr,
    ns_type type)
{
	layer->nfollow = 0;
	for (int i = 0; i < rr->num_rr && layer->nfollow < SPF_MAX_DNS_MX; i++)
		snprintf(layer->follow_names[layer->nfollow++],
		    sizeof(layer->follow_names[0]), "%s",
		    type == ns_t_mx ? rr->rr[i]->mx : rr->rr[i]->ptr);
}

static SPF_dns_rr_t *
layer_lookup(SPF_dns_server_t *server, const char *domain, ns_type type,
    int should_cache)
{
	struct spf_dns_layer *layer = server->hook;
	const struct dns_answer *answer;
	struct dns_query *q;
	enum dns_status status;
	SPF_dns_rr_t *rr;

	(void)should_cache;
	if (type == ns_t_spf)
		/* RFC 7208 3.1: type SPF is obsolete and never asked for.
		 * Answered here so it neither costs a query nor counts as a
		 * void lookup. */
		return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
	if (layer->void_exceeded)
		/* The result is permerror already: end the evaluation. */
		return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
	if (type != ns_t_txt && lookup_is_term(layer, domain, type) &&
	    ++layer->dns_terms > SPF_MAX_DNS_MECH) {
		layer->too_many_terms = true;
		layer->void_exceeded = true;	/* stop evaluating */
		return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
	}

	/* Each query gets the configured timeout, within what is left of
	 * the evaluation's budget. */
	long long deadline = mxg_now_ms() +
	    dns_resolver_timeout_ms(layer->resolver);
	if (deadline > layer->deadline_ms)
		deadline = layer->deadline_ms;
	q = dns_query_start(layer->resolver, domain, type);
	status = dns_query_wait(q, deadline, &answer);
	switch (status) {
	case DNS_OK:
		/* RFC 7208 4.6.4: an "mx" whose name has more than 10 MX
		 * records is permerror. libspf2 tries the first 10 first and
		 * may match one, so whether it notices depends on the order
		 * the server happened to send them in. */
		if (type == ns_t_mx && answer->count > SPF_MAX_DNS_MX) {
			layer->mx_over_limit = true;
			layer->void_exceeded = true;	/* stop evaluating */
		}
		rr = layer_answer(layer, server, domain, type, answer);
		if (rr != NULL && rr->num_rr == 0)
			count_void_lookup(layer, type);
		/* Every SPF record after the first was fetched for an include
		 * or a redirect: a term (an exp= answer is not a record). */
		for (int i = 0; type == ns_t_txt && rr != NULL &&
		    i < rr->num_rr; i++)
			if (txt_is_spf_record(rr->rr[i]->txt)) {
				if (++layer->spf_records > 1 &&
				    ++layer->dns_terms > SPF_MAX_DNS_MECH) {
					layer->too_many_terms = true;
					layer->void_exceeded = true;
				}
				break;
			}
		if ((type == ns_t_mx || type == ns_t_ptr) && rr != NULL)
			remember_follow_names(layer, rr, type);
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		rr = SPF_dns_rr_new_init(server, domain, type, 0,
		    status == DNS_NXDOMAIN ? HOST_NOT_FOUND : NO_DATA);
		count_void_lookup(layer, type);
		break;
	case DNS_PERMFAIL:
		/* A name no server could be asked for does not exist. */
		rr = SPF_dns_rr_new_init(server, domain, type, 0,
		    HOST_NOT_FOUND);
		break;
	default:
		layer->tempfail = true;
		rr = SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
		break;
	}
	dns_query_free(q);
	if (rr == NULL)		/* libspf2 out of memory: never return NULL */
		rr = SPF_dns_rr_new();
	if (rr == NULL) {
		log_msg(NULL, LOG_LEVEL_ERR, "spf: out of memory");
		abort();
	}
	return rr;
}

static void __attribute__((noreturn))
spf_log_error(const char *file, int line, const char *text)
{
	log_msg(NULL, LOG_LEVEL_ERR, "libspf2 fatal error at %s:%d: %s",
	    file ? file : "?", line, text);
	abort();
}

static void
spf_log_debug(const char *file, int line, const char *text)
{
	(void)file;
	(void)line;
	log_msg(NULL, LOG_LEVEL_DEBUG, "libspf2: %s", text);
}

static pthread_once_t spf_handlers_once = PTHREAD_ONCE_INIT;

static void
spf_install_handlers(void)
{
	/* libspf2's handlers are process-wide; its stdio ones would write
	 * to stdout/stderr in the middle of `mxguard check --json`. */
	SPF_error_handler = spf_log_error;
	SPF_warning_handler = spf_log_debug;
	SPF_info_handler = spf_log_debug;
	SPF_debug_handler = spf_log_debug;
}

static enum spf_result_code
map_result(SPF_result_t result)
{
	switch (result) {
	case SPF_RESULT_PASS:
		return SPF_RES_PASS;
	case SPF_RESULT_FAIL:
		return SPF_RES_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return SPF_RES_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return SPF_RES_NEUTRAL;
	case SPF_RESULT_NONE:
		return SPF_RES_NONE;
	case SPF_RESULT_TEMPERROR:
		return SPF_RES_TEMPERROR;
	case SPF_RESULT_PERMERROR:
	case SPF_RESULT_INVALID:
	default:
		return SPF_RES_PERMERROR;
	}
}

const char *
spf_result_name(enum spf_result_code code)
{
	static const char *const names[] = {
		[SPF_RES_NOT_CHECKED] = "none", [SPF_RES_PASS] = "pass",
		[SPF_RES_FAIL] = "fail", [SPF_RES_SOFTFAIL] = "softfail",
		[SPF_RES_NEUTRAL] = "neutral", [SPF_RES_NONE] = "none",
		[SPF_RES_TEMPERROR] = "temperror",
		[SPF_RES_PERMERROR] = "permerror",
	};
	return names[code];
}

void
spf_result_clear(struct spf_result *result)
{
	free(result->domain);
	free(result->sender);
	free(result->explanation);
	free(result->comment);
	memset(result, 0, sizeof(*result));
}

static char *
dup_or_null(const char *s)
{
	return s ? mxg_strdup(s) : NULL;
}

void
spf_result_copy(struct spf_result *dst, const struct spf_result *src)
{
	spf_result_clear(dst);
	dst->code = src->code;
	dst->identity = src->identity;
	dst->domain = dup_or_null(src->domain);
	dst->sender = dup_or_null(src->sender);
	dst->explanation = dup_or_null(src->explanation);
	dst->comment = dup_or_null(src->comment);
}

static void
set_comment(struct spf_result *result, const char *fmt, const char *a)
{
	char buf[512];

	snprintf(buf, sizeof(buf), fmt, a);
	free(result->comment);
	result->comment = mxg_strdup(buf);
}

/* A HELO name SPF can check: a domain, not an address literal, with a dot
 * (RFC 7208 2.3: check only a fully qualified domain name). */
static bool
helo_is_checkable(const char *helo)
{
	return helo != NULL && *helo != '\0' && *helo != '[' &&
	    strchr(helo, '.') != NULL;
}

void
spf_check_identity(const struct check_env *env, const struct message *msg,
    struct spf_result *result)
{
	struct spf_dns_layer layer;
	SPF_server_t *server;
	SPF_request_t *request;
	SPF_response_t *response = NULL;
	const char *domain;

	memset(result, 0, sizeof(*result));
	pthread_once(&spf_handlers_once, spf_install_handlers);

	if (msg->mail_from != NULL && *msg->mail_from != '\0') {
		result->identity = "mailfrom";
		domain = strrchr(msg->mail_from, '@');
		domain = domain ? domain + 1 : msg->mail_from;
		result->sender = mxg_strdup(msg->mail_from);
	} else {
		result->identity = "helo";
		domain = msg->helo ? msg->helo : "";
		if (helo_is_checkable(domain)) {
			char buf[1100];
			snprintf(buf, sizeof(buf), "postmaster@%s", domain);
			result->sender = mxg_strdup(buf);
		}
	}
	result->domain = *domain ? mxg_strdup(domain) : NULL;

	if (msg->client_family == 0) {
		result->code = SPF_RES_NONE;
		set_comment(result, "client address unknown%s", "");
		return;
	}
	if (result->identity[0] == 'h' && !helo_is_checkable(domain)) {
		result->code = SPF_RES_NONE;
		set_comment(result, "HELO '%.200s' is not a domain name", domain);
		return;
	}

	memset(&layer, 0, sizeof(layer));
	layer.server.lookup = layer_lookup;
	layer.server.name = "mxguard";
	layer.server.hook = &layer;
	/* destroy stays NULL: the layer is ours, libspf2 must not free it */
	layer.resolver = env->dns;
	layer.void_limit = env->cfg->spf.void_lookup_limit;
	/* libspf2 may make up to ~30 lookups; give the whole evaluation
	 * a budget of a few query timeouts, not thirty. */
	layer.deadline_ms = mxg_now_ms() + 3 * dns_resolver_timeout_ms(env->dns);

	server = SPF_server_new_dns(&layer.server, 0);
	if (server == NULL) {
		result->code = SPF_RES_TEMPERROR;
		set_comment(result, "libspf2 could not start%s", "");
		return;
	}
	if (msg->mta_name != NULL)
		SPF_server_set_rec_dom(server, msg->mta_name);
	request = SPF_request_new(server);
	if (msg->client_family == AF_INET)
		SPF_request_set_ipv4(request, msg->client_ip4);
	else
		SPF_request_set_ipv6(request, msg->client_ip6);
	if (msg->helo != NULL && *msg->helo != '\0')
		SPF_request_set_helo_dom(request, msg->helo);
	if (result->identity[0] == 'm')
		SPF_request_set_env_from(request, msg->mail_from);
	else
		SPF_request_set_env_from(request, result->sender);

	SPF_request_query_mailfrom(request, &response);
	if (response == NULL) {
		result->code = SPF_RES_TEMPERROR;
		set_comment(result, "libspf2 gave no response%s", "");
	} else if (layer.mx_over_limit) {
		result->code = SPF_RES_PERMERROR;
		set_comment(result, "an mx mechanism in the evaluation of %s "
		    "names more than 10 MX hosts (RFC 7208 4.6.4)",
		    result->domain ? result->domain : "?");
	} else if (layer.malformed) {
		result->code = SPF_RES_PERMERROR;
		set_comment(result, "an SPF record in the evaluation of %s is "
		    "not 7-bit printable ASCII (RFC 7208 3.1)",
		    result->domain ? result->domain : "?");
	} else if (layer.too_many_terms) {
		result->code = SPF_RES_PERMERROR;
		set_comment(result, "the evaluation of %s needs more than 10 "
		    "DNS-querying terms (RFC 7208 4.6.4)",
		    result->domain ? result->domain : "?");
	} else if (layer.void_exceeded) {
		char buf[64];

		result->code = SPF_RES_PERMERROR;
		snprintf(buf, sizeof(buf), "%d", layer.void_limit);
		set_comment(result, "more than %s void DNS lookups "
		    "(RFC 7208 4.6.4)", buf);
	} else if (SPF_response_result(response) == SPF_RESULT_INVALID) {
		/* libspf2 leaves the result unset when fetching the record
		 * itself failed; a DNS error there is temperror (RFC 7208
		 * 4.4), anything else it could not evaluate is permerror. */
		result->code = layer.tempfail ||
		    SPF_response_errcode(response) == SPF_E_DNS_ERROR ?
		    SPF_RES_TEMPERROR : SPF_RES_PERMERROR;
		set_comment(result, result->code == SPF_RES_TEMPERROR ?
		    "DNS failure looking up the SPF record of %s" :
		    "the SPF record of %s could not be evaluated",
		    result->domain ? result->domain : "?");
	} else {
		result->code = map_result(SPF_response_result(response));
		const char *comment = SPF_response_get_header_comment(response);
		if (comment != NULL)
			set_comment(result, "%s", comment);
		const char *exp = SPF_response_get_explanation(response);
		if (result->code == SPF_RES_FAIL && exp != NULL)
			result->explanation = mxg_strdup(exp);
	}
	if (layer.unsafe_macro && result->code == SPF_RES_PERMERROR)
		set_comment(result, "an SPF record in the evaluation of %s has "
		    "a macro string libspf2 cannot compile safely "
		    "(CVE-2023-42118; RFC 7208 4.6)",
		    result->domain ? result->domain : "?");
	SPF_response_free(response);
	SPF_request_free(request);
	SPF_server_free(server);
}

static bool
spf_enabled(const struct config *cfg)
{
	return cfg->spf.enabled;
}

static const char *const result_symbols[] = {
	[SPF_RES_PASS] = "SPF_PASS", [SPF_RES_FAIL] = "SPF_FAIL",
	[SPF_RES_SOFTFAIL] = "SPF_SOFTFAIL", [SPF_RES_NEUTRAL] = "SPF_NEUTRAL",
	[SPF_RES_NONE] = "SPF_NONE", [SPF_RES_TEMPERROR] = "SPF_TEMPERROR",
	[SPF_RES_PERMERROR] = "SPF_PERMERROR",
};

static void
spf_run(void *state, struct scan *scan)
{
	struct check_env env = {scan->cfg, scan->dns};
	struct spf_result *r = &scan->spf;
	struct strbuf props = STRBUF_INIT;

	struct strbuf key = STRBUF_INIT;

	(void)state;
	/* What the evaluation depends on: client, HELO, sender. */
	strbuf_printf(&key, "%s|%s|%s", scan->msg->client_addr ?
	    scan->msg->client_addr : "", scan->msg->helo ? scan->msg->helo : "",
	    scan->msg->mail_from ? scan->msg->mail_from : "");
	if (scan->spf_last_key != NULL &&
	    strcmp(scan->spf_last_key, key.data) == 0) {
		spf_result_copy(r, &scan->spf_last);
	} else {
		spf_result_clear(r);
		spf_check_identity(&env, scan->msg, r);
		/* A temporary failure is asked again next time. */
		if (r->code != SPF_RES_TEMPERROR) {
			spf_result_copy(&scan->spf_last, r);
			free(scan->spf_last_key);
			scan->spf_last_key = strbuf_steal(&key);
		}
	}
	strbuf_free(&key);

	scan_add_symbol(scan, result_symbols[r->code], r->comment);
	if (r->domain != NULL)
		strbuf_printf(&props, "smtp.%s=%s", r->identity, r->domain);
	verdict_add_authres(scan->verdict, "spf", spf_result_name(r->code),
	    r->comment, props.len ? props.data : NULL);
	strbuf_free(&props);

	if (r->code == SPF_RES_FAIL && scan->cfg->spf.reject_fail)
		verdict_force(scan->verdict, VERDICT_REJECT, "5.7.23",
		    "SPF: %s", r->explanation ? r->explanation :
		    "the sender's domain does not authorize this client");
	else if (r->code == SPF_RES_TEMPERROR &&
	    scan->cfg->dns.on_error == ON_ERROR_TEMPFAIL)
		verdict_force(scan->verdict, VERDICT_TEMPFAIL, "4.4.3",
		    "SPF: temporary DNS failure checking %s, try again later",
		    r->domain ? r->domain : "the sender");
}

const struct check spf_check = {
	.name = "spf",
	.section = "spf",
	.stage = STAGE_MAIL,
	.symbols = spf_symbols,
	.enabled = spf_enabled,
	.init = NULL,
	.run = spf_run,
	.free = NULL,
};
