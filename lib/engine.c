#include "engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "authres.h"
#include "dns.h"
#include "log.h"
#include "mxg.h"

struct symbol_score {
	const char *name;
	double score;
};

struct engine {
	const struct config *cfg;
	struct dns_resolver *dns;
	const struct check *checks[ENGINE_MAX_CHECKS];
	void *states[ENGINE_MAX_CHECKS];
	size_t nchecks;
	struct symbol_score *scores;
	size_t nscores;
	char hostname[256];
};

static int
build_score_table(struct engine *engine, char *err)
{
	const struct config *cfg = engine->cfg;

	for (size_t c = 0; all_checks[c] != NULL; c++)
		for (const struct check_symbol *s = all_checks[c]->symbols;
		    s->name != NULL; s++) {
			engine->scores = mxg_realloc(engine->scores,
			    (engine->nscores + 1) * sizeof(*engine->scores));
			engine->scores[engine->nscores].name = s->name;
			engine->scores[engine->nscores].score = s->score;
			engine->nscores++;
		}
	for (size_t i = 0; i < cfg->nscores; i++) {
		size_t k;

		for (k = 0; k < engine->nscores; k++)
			if (strcmp(engine->scores[k].name,
			    cfg->scores[i].symbol) == 0)
				break;
		if (k < engine->nscores) {
			engine->scores[k].score = cfg->scores[i].score;
			continue;
		}
		/* Not a declared symbol: a content rule's, maybe. */
		bool known = false;
		for (size_t c = 0; c < engine->nchecks && !known; c++)
			if (engine->checks[c]->has_symbol != NULL)
				known = engine->checks[c]->has_symbol(
				    engine->states[c], cfg->scores[i].symbol);
		if (!known)
			return mxg_fail(err, MXG_EINVAL, "%s:%d: [scores] %s: no "
			    "check or rule has a symbol of that name",
			    cfg->path ? cfg->path : "config",
			    cfg->scores[i].line, cfg->scores[i].symbol);
	}
	return MXG_OK;
}

int
engine_new(const struct config *cfg, struct engine **out, char *err)
{
	struct engine *engine = mxg_calloc(1, sizeof(*engine));
	struct check_env env;
	int rc;

	*out = NULL;
	engine->cfg = cfg;
	if (gethostname(engine->hostname, sizeof(engine->hostname) - 1) < 0)
		strcpy(engine->hostname, "localhost");
	if ((rc = dns_resolver_new(cfg, &engine->dns, err)) != 0) {
		engine_free(engine);
		return rc;
	}
	env.cfg = cfg;
	env.dns = engine->dns;
	for (size_t c = 0; all_checks[c] != NULL; c++) {
		const struct check *check = all_checks[c];

		if (!check->enabled(cfg))
			continue;
		if (engine->nchecks == ENGINE_MAX_CHECKS) {
			engine_free(engine);
			return mxg_fail(err, MXG_ELIB, "engine: too many checks");
		}
		if (check->init != NULL &&
		    (rc = check->init(&env, &engine->states[engine->nchecks],
		    err)) != 0) {
			engine_free(engine);
			return rc;
		}
		engine->checks[engine->nchecks++] = check;
	}
	if ((rc = build_score_table(engine, err)) != 0) {
		engine_free(engine);
		return rc;
	}
	*out = engine;
	return MXG_OK;
}

void
engine_free(struct engine *engine)
{
	if (engine == NULL)
		return;
	for (size_t c = 0; c < engine->nchecks; c++)
		if (engine->checks[c]->free != NULL)
			engine->checks[c]->free(engine->states[c]);
	dns_resolver_free(engine->dns);
	free(engine->scores);
	free(engine);
}

const struct config *
engine_config(const struct engine *engine)
{
	return engine->cfg;
}

struct scan *
scan_new(struct engine *engine, struct message *msg)
{
	struct scan *scan = mxg_calloc(1, sizeof(*scan));

	scan->engine = engine;
	scan->msg = msg;
	scan->cfg = engine->cfg;
	scan->dns = engine->dns;
	scan->verdict = verdict_new();
	return scan;
}

void **
scan_check_data(struct scan *scan, const struct check *check)
{
	for (size_t c = 0; c < scan->engine->nchecks; c++)
		if (scan->engine->checks[c] == check)
			return &scan->check_data[c];
	/* Only an enabled check runs, so this is a bug in the caller. */
	log_msg(NULL, LOG_LEVEL_ERR, "engine: %s is not running", check->name);
	abort();
}

void
scan_reset(struct scan *scan)
{
	for (size_t c = 0; c < scan->engine->nchecks; c++)
		if (scan->check_data[c] != NULL) {
			scan->engine->checks[c]->release(scan->check_data[c]);
			scan->check_data[c] = NULL;
		}
	verdict_reset(scan->verdict);
	spf_result_clear(&scan->spf);
	dkim_results_clear(&scan->dkim);
	dmarc_result_clear(&scan->dmarc);
	mime_content_free(scan->mime);
	scan->mime = NULL;
	for (size_t i = 0; i < scan->nrefused; i++) {
		free(scan->refused[i].address);
		free(scan->refused[i].reply);
		free(scan->refused[i].code);
		free(scan->refused[i].enhanced);
		free(scan->refused[i].text);
	}
	free(scan->refused);
	scan->refused = NULL;
	scan->nrefused = 0;
	scan->rcpts_seen = 0;
	scan->current_rcpt = NULL;
	scan->rcpt_refused_now = false;
	free(scan->removals);
	free(scan->authserv_id);
	scan->removals = NULL;
	scan->nremovals = 0;
	scan->authserv_id = NULL;
	scan->trusted = false;
	scan->finished = false;
	memset(scan->stage_done, 0, sizeof(scan->stage_done));
	memset(scan->check_ns, 0, sizeof(scan->check_ns));
}

void
scan_free(struct scan *scan)
{
	if (scan == NULL)
		return;
	scan_reset(scan);
	spf_result_clear(&scan->spf_last);
	free(scan->spf_last_key);
	free(scan->ratelimit_counted_instance);
	verdict_free(scan->verdict);
	free(scan);
}

void
scan_add_scored_symbol(struct scan *scan, const char *name, double score,
    const char *detail)
{
	verdict_add_symbol(scan->verdict, name, score, detail);
}

void
scan_add_symbol(struct scan *scan, const char *name, const char *detail)
{
	struct engine *engine = scan->engine;

	for (size_t k = 0; k < engine->nscores; k++)
		if (strcmp(engine->scores[k].name, name) == 0) {
			verdict_add_symbol(scan->verdict, engine->scores[k].name,
			    engine->scores[k].score, detail);
			return;
		}
	/* A check emitting a symbol it did not declare is a bug in it. */
	log_msg(scan->msg->queue_id, LOG_LEVEL_ERR,
	    "engine: undeclared symbol %s", name);
}

static void
refuse_rcpt(struct scan *scan, const char *code, bool soft,
    const char *enhanced, const char *fmt, va_list ap)
{
	struct rcpt_refusal *r;
	char text[400], line[512];

	if (scan->rcpt_refused_now || scan->current_rcpt == NULL)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			*p = '?';
	scan->refused = mxg_realloc(scan->refused,
	    (scan->nrefused + 1) * sizeof(*scan->refused));
	r = &scan->refused[scan->nrefused++];
	r->address = mxg_strdup(scan->current_rcpt);
	r->reject = code[0] == '5';
	r->soft = soft;
	r->code = mxg_strdup(code);
	r->enhanced = mxg_strdup(enhanced);
	r->text = mxg_strdup(text);
	snprintf(line, sizeof(line), "%s %s %s", r->code, enhanced, text);
	r->reply = mxg_strdup(line);
	scan->rcpt_refused_now = true;
}

void
scan_refuse_rcpt(struct scan *scan, bool reject, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	refuse_rcpt(scan, reject ? "550" : "451", !reject, enhanced, fmt, ap);
	va_end(ap);
}

void
scan_refuse_rcpt_code(struct scan *scan, const char *code,
    const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	refuse_rcpt(scan, code, false, enhanced, fmt, ap);
	va_end(ap);
}

static uint64_t
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
run_checks(struct engine *engine, struct scan *scan, int stage)
{
	for (size_t c = 0; c < engine->nchecks && !scan->verdict->forced; c++)
		if ((int)engine->checks[c]->stage == stage) {
			uint64_t start = monotonic_ns();

			engine->checks[c]->run(engine->states[c], scan);
			scan->check_ns[c] += monotonic_ns() - start;
		}
}

bool
engine_run_stage(struct engine *engine, struct scan *scan,
    enum check_stage stage)
{
	if (!scan->stage_done[STAGE_CONNECT])
		scan->trusted = scan->cfg->milter.loopback_trusted &&
		    message_client_is_loopback(scan->msg);
	scan->rcpt_refused_now = false;
	scan->stage_asked = stage;
	for (int s = 0; s <= (int)stage; s++) {
		if (s == STAGE_RCPT) {
			/* Every recipient gets its own judgement. */
			while (scan->rcpts_seen < scan->msg->nrcpts) {
				size_t i = scan->rcpts_seen++;

				scan->current_rcpt = scan->msg->rcpts[i];
				scan->rcpt_refused_now = false;
				if (!scan->trusted)
					run_checks(engine, scan, s);
				if (scan->verdict->forced)
					return true;
				if (scan->rcpt_refused_now) {
					message_remove_rcpt(scan->msg, i);
					scan->rcpts_seen--;
				}
			}
			scan->current_rcpt = NULL;
			continue;
		}
		if (scan->stage_done[s])
			continue;
		scan->stage_done[s] = true;
		if (!scan->trusted)
			run_checks(engine, scan, s);
		if (scan->verdict->forced)
			return true;
	}
	return scan->verdict->forced;
}

bool
engine_run_check(struct engine *engine, struct scan *scan,
    const struct check *check)
{
	if (!scan->stage_done[STAGE_CONNECT])
		scan->trusted = scan->cfg->milter.loopback_trusted &&
		    message_client_is_loopback(scan->msg);
	scan->rcpt_refused_now = false;
	scan->stage_asked = check->stage;
	for (size_t c = 0; c < engine->nchecks; c++)
		if (engine->checks[c] == check && !scan->trusted &&
		    !scan->verdict->forced) {
			uint64_t start = monotonic_ns();

			check->run(engine->states[c], scan);
			scan->check_ns[c] += monotonic_ns() - start;
		}
	return scan->verdict->forced;
}

void
engine_body(struct engine *engine, struct scan *scan, const char *chunk,
    size_t len)
{
	message_append_body(scan->msg, chunk, len);
	if (scan->trusted || scan->verdict->forced)
		return;
	for (size_t c = 0; c < engine->nchecks; c++)
		if (engine->checks[c]->body != NULL) {
			uint64_t start = monotonic_ns();

			engine->checks[c]->body(engine->states[c], scan, chunk,
			    len);
			scan->check_ns[c] += monotonic_ns() - start;
		}
}

size_t
engine_check_count(const struct engine *engine)
{
	return engine->nchecks;
}

const char *
engine_check_name(const struct engine *engine, size_t index)
{
	return index < engine->nchecks ? engine->checks[index]->name : NULL;
}

/* key="value"; with the value from the client made a safe quoted-string. */
static void
append_quoted(struct strbuf *sb, const char *key, const char *value)
{
	strbuf_puts(sb, key);
	strbuf_putc(sb, '"');
	for (const char *p = value; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 32 || c > 126)
			continue;
		if (c == '"' || c == '\\')
			strbuf_putc(sb, '\\');
		strbuf_putc(sb, (char)c);
	}
	strbuf_puts(sb, "\";");
}

static const char *
authserv_id_of(const struct engine *engine, const struct scan *scan)
{
	const char *id = scan->cfg->milter.authserv_id;

	if (id == NULL)
		id = scan->msg->mta_name;
	if (id == NULL || *id == '\0')
		id = engine->hostname;
	return id;
}

bool
engine_received_spf(const struct engine *engine, const struct scan *scan,
    struct strbuf *sb)
{
	const struct spf_result *r = &scan->spf;
	const struct message *msg = scan->msg;

	if (r->code == SPF_RES_NOT_CHECKED)
		return false;

	strbuf_puts(sb, spf_result_name(r->code));
	if (r->comment != NULL) {
		strbuf_puts(sb, " (");
		for (const char *p = r->comment; *p; p++)
			strbuf_putc(sb, (*p == '(' || *p == ')' ||
			    (unsigned char)*p < 32) ? ' ' : *p);
		strbuf_putc(sb, ')');
	}
	if (msg->client_addr != NULL)
		strbuf_printf(sb, " client-ip=%s;", msg->client_addr);
	if (msg->mail_from != NULL)
		append_quoted(sb, " envelope-from=", msg->mail_from);
	if (msg->helo != NULL)
		append_quoted(sb, " helo=", msg->helo);
	strbuf_printf(sb, " receiver=%s; identity=%s;",
	    authserv_id_of(engine, scan), r->identity);
	return true;
}

static void
add_spam_headers(struct scan *scan)
{
	const struct verdict *v = scan->verdict;
	struct strbuf sb = STRBUF_INIT;
	double required = scan->cfg->actions.add_header;

	bool spam = v->action == VERDICT_ADD_HEADER ||
	    v->action == VERDICT_REWRITE_SUBJECT;
	size_t line_start = 0;
	char score[32];

	strbuf_printf(&sb, "%s, score=%.1f", spam ? "Yes" : "No", v->score);
	if (required != CONFIG_THRESHOLD_OFF)
		strbuf_printf(&sb, " required=%.1f", required);
	strbuf_puts(&sb, " symbols=");
	for (size_t i = 0; i < v->nsymbols; i++) {
		/* Folded, so that a long list stays within header limits. */
		if (i > 0 && sb.len - line_start > 70) {
			strbuf_puts(&sb, ",\n\t");
			line_start = sb.len;
		} else if (i > 0) {
			strbuf_putc(&sb, ',');
		}
		strbuf_printf(&sb, "%s(%.2f)", v->symbols[i].name,
		    v->symbols[i].score);
	}
	if (v->nsymbols == 0)
		strbuf_puts(&sb, "none");
	if (spam)
		verdict_add_header(scan->verdict, "X-Spam-Flag", "YES");
	snprintf(score, sizeof(score), "%.1f", v->score);
	verdict_add_header(scan->verdict, "X-Spam-Score", score);
	verdict_add_header(scan->verdict, "X-Spam-Status", sb.data);
	strbuf_free(&sb);

	if (v->action == VERDICT_REWRITE_SUBJECT) {
		const struct header *h = message_header_find(scan->msg,
		    "Subject", 0);
		struct strbuf subject = STRBUF_INIT;

		strbuf_puts(&subject, scan->cfg->actions.subject_prefix ?
		    scan->cfg->actions.subject_prefix : "***SPAM***");
		if (h != NULL) {
			strbuf_putc(&subject, ' ');
			strbuf_append(&subject, h->value, h->value_len);
		}
		free(scan->verdict->new_subject);
		scan->verdict->new_subject = strbuf_steal(&subject);
	}
}

void
engine_finish(struct engine *engine, struct scan *scan)
{
	const struct message *msg = scan->msg;
	const char *id;

	if (scan->finished)
		return;
	scan->finished = true;
	if (!scan->verdict->forced)
		engine_run_stage(engine, scan, STAGE_EOM);
	verdict_decide(scan->verdict, scan->cfg);

	id = authserv_id_of(engine, scan);
	scan->authserv_id = mxg_strdup(id);

	/* RFC 8601 5: results that claim to be ours but came from outside
	 * are removed, whoever the client is. */
	int index = 0;
	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct header *h = &msg->headers[i];

		if (strcasecmp(h->name, "Authentication-Results") != 0)
			continue;
		index++;
		if (!authres_claims_id(h->value, h->value_len, id))
			continue;
		scan->removals = mxg_realloc(scan->removals,
		    (scan->nremovals + 1) * sizeof(*scan->removals));
		scan->removals[scan->nremovals].name = "Authentication-Results";
		scan->removals[scan->nremovals].index = index;
		scan->nremovals++;
	}
	if (scan->trusted || scan->verdict->action == VERDICT_REJECT ||
	    scan->verdict->action == VERDICT_TEMPFAIL)
		return;

	char *ar = authres_format(id, scan->verdict, "\n\t");
	verdict_add_header(scan->verdict, "Authentication-Results", ar);
	free(ar);
	struct strbuf spf = STRBUF_INIT;
	if (scan->cfg->spf.received_spf &&
	    engine_received_spf(engine, scan, &spf))
		verdict_add_header(scan->verdict, "Received-SPF", spf.data);
	strbuf_free(&spf);
	add_spam_headers(scan);
}

void
engine_summary_record(const struct scan *scan, struct log_record *rec)
{
	const struct message *msg = scan->msg;
	const struct verdict *v = scan->verdict;
	struct strbuf list = STRBUF_INIT;

	log_field(rec, "client", LOG_FIELD_PLAIN, "%s",
	    msg->client_addr ? msg->client_addr : "unknown");
	if (msg->client_name != NULL)
		log_field(rec, "client_name", LOG_FIELD_SUFFIX, "%s",
		    msg->client_name);
	log_field(rec, "helo", LOG_FIELD_PLAIN, "%s", msg->helo ? msg->helo : "");
	log_field(rec, "from", LOG_FIELD_ANGLE, "%s",
	    msg->mail_from ? msg->mail_from : "");
	log_field(rec, "rcpts", LOG_FIELD_NUMBER, "%zu", msg->nrcpts);
	if (scan->trusted)
		log_field(rec, "trusted", LOG_FIELD_PLAIN, "loopback");
	log_field(rec, "spf", LOG_FIELD_PLAIN, "%s",
	    scan->spf.code == SPF_RES_NOT_CHECKED ? "skipped" :
	    spf_result_name(scan->spf.code));
	for (size_t i = 0; i < scan->dkim.count; i++)
		strbuf_printf(&list, "%s%s:%s", i ? "," : "",
		    dkim_result_name(scan->dkim.sigs[i].code),
		    scan->dkim.sigs[i].domain);
	if (scan->dkim.count == 0)
		strbuf_puts(&list, scan->dkim.checked ? "none" : "skipped");
	log_field(rec, "dkim", LOG_FIELD_PLAIN, "%s", list.data);
	if (scan->dmarc.checked)
		log_field(rec, "dmarc", LOG_FIELD_PLAIN, "%s:%s",
		    dmarc_result_name(scan->dmarc.code), scan->dmarc.domain);
	if (v->quarantine != NULL)
		log_field(rec, "quarantine", LOG_FIELD_PLAIN, "yes");
	log_field(rec, "score", LOG_FIELD_NUMBER, "%.1f", v->score);
	log_field(rec, "action", LOG_FIELD_PLAIN, "%s",
	    verdict_action_name(v->action));
	if (v->reply != NULL)
		log_field(rec, "reply", LOG_FIELD_QUOTED, "%s", v->reply);
	strbuf_reset(&list);
	for (size_t i = 0; i < v->nsymbols; i++)
		strbuf_printf(&list, "%s%s", i ? "," : "", v->symbols[i].name);
	log_field(rec, "symbols", LOG_FIELD_PLAIN, "%s",
	    v->nsymbols ? list.data : "none");
	log_field(rec, "ms", LOG_FIELD_NUMBER, "%lld",
	    mxg_now_ms() - msg->started_ms);
	strbuf_free(&list);
}

void
engine_summary(const struct scan *scan, struct strbuf *line)
{
	struct log_record rec = {.n = 0};

	engine_summary_record(scan, &rec);
	log_record_text(&rec, line);
	log_record_free(&rec);
}
