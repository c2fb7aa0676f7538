#include "content.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "mime.h"
#include "mxg.h"
#include "strbuf.h"

static const struct check_symbol content_symbols[] = {
	{"MIME_TRUNCATED", 0.0, "content: larger than max_scan_size, the rest "
	    "was not scanned"},
	{"MIME_TOO_MANY_PARTS", 1.0, "content: more MIME parts than max_parts"},
	{"MIME_TOO_DEEP", 1.0, "content: MIME nested deeper than max_depth"},
	{"RULES_REGEX_LIMIT", 0.0, "content: a rule's regex hit its match "
	    "limit"},
	{NULL, 0, NULL},
};

struct content_state {
	struct ruleset *rules;
	struct mime_limits limits;
};

void
content_rule_options(const struct config *cfg, struct rules_options *opt)
{
	opt->score_set = cfg->rules.score_set >= 0 ? cfg->rules.score_set :
	    (cfg->spf.enabled || cfg->dkim.enabled || cfg->dmarc.enabled) ?
	    1 : 0;
	opt->match_limit = (unsigned int)cfg->rules.match_limit;
	opt->depth_limit = (unsigned int)cfg->rules.depth_limit;
}

static int
content_init(const struct check_env *env, void **out, char *err)
{
	struct content_state *st = mxg_calloc(1, sizeof(*st));
	const struct config *cfg = env->cfg;
	struct rules_options opt;
	struct rules_report report;

	(void)err;
	mime_init();
	content_rule_options(cfg, &opt);
	st->rules = rules_load(cfg->rules.files, &opt, &report);
	for (size_t i = 0; i < report.nerrors; i++)
		log_msg(NULL, LOG_LEVEL_ERR, "rules: %s: %s",
		    report.errors[i].where, report.errors[i].text);
	if (report.nwarnings > 0)
		log_msg(NULL, LOG_LEVEL_INFO, "rules: %zu constructs skipped "
		    "(mxguard lint lists them)", report.nwarnings);
	log_msg(NULL, LOG_LEVEL_INFO, "rules: %zu loaded, %zu skipped, %zu "
	    "errors", report.loaded, report.skipped, report.nerrors);
	rules_report_free(&report);
	/* [scores] overrides rule scores as it does any symbol's. */
	for (size_t i = 0; i < cfg->nscores; i++)
		rules_set_score(st->rules, cfg->scores[i].symbol,
		    cfg->scores[i].score);
	st->limits.max_scan_size = cfg->rules.max_scan_size;
	st->limits.max_parts = cfg->rules.max_parts;
	st->limits.max_depth = cfg->rules.max_depth;
	st->limits.max_uris = cfg->rules.max_uris;
	*out = st;
	return MXG_OK;
}

static void
content_free(void *p)
{
	struct content_state *st = p;

	if (st == NULL)
		return;
	rules_free(st->rules);
	free(st);
}

static bool
content_has_symbol(void *p, const char *name)
{
	const struct content_state *st = p;

	return rules_has(st->rules, name);
}

static void
content_run(void *p, struct scan *scan)
{
	struct content_state *st = p;
	const struct message *msg = scan->msg;
	struct strbuf raw = STRBUF_INIT;
	struct rules_eval eval;

	/* The message as the MTA handed it over, for GMime. */
	for (size_t i = 0; i < msg->nheaders; i++) {
		strbuf_puts(&raw, msg->headers[i].name);
		strbuf_puts(&raw, ": ");
		strbuf_append(&raw, msg->headers[i].value,
		    msg->headers[i].value_len);
		strbuf_puts(&raw, "\r\n");
	}
	strbuf_puts(&raw, "\r\n");
	if (msg->body != NULL)
		strbuf_append(&raw, msg->body, msg->body_len);
	struct mime_content *content = mime_parse(raw.data, raw.len,
	    &st->limits);
	strbuf_free(&raw);

	if (content->truncated || msg->body_truncated)
		scan_add_symbol(scan, "MIME_TRUNCATED", NULL);
	if (content->too_many_parts)
		scan_add_symbol(scan, "MIME_TOO_MANY_PARTS", NULL);
	if (content->too_deep)
		scan_add_symbol(scan, "MIME_TOO_DEEP", NULL);

	rules_run(st->rules, msg, content, &eval);
	for (size_t i = 0; i < eval.nhits; i++) {
		char detail[64];

		if (eval.hits[i].count > 1)
			snprintf(detail, sizeof(detail), "%d hits",
			    eval.hits[i].count);
		scan_add_scored_symbol(scan, eval.hits[i].name,
		    eval.hits[i].score, eval.hits[i].count > 1 ? detail :
		    eval.hits[i].description);
	}
	if (eval.limit_hits > 0) {
		char detail[64];

		snprintf(detail, sizeof(detail), "%d regex runs stopped",
		    eval.limit_hits);
		scan_add_symbol(scan, "RULES_REGEX_LIMIT", detail);
		log_msg(msg->queue_id, LOG_LEVEL_WARNING, "rules: %d regex "
		    "runs hit the match limit", eval.limit_hits);
	}
	rules_eval_free(&eval);
	/* Kept for later checks (URI lists); freed with the scan. */
	mime_content_free(scan->mime);
	scan->mime = content;
}

static bool
content_enabled(const struct config *cfg)
{
	return cfg->rules.enabled;
}

const struct check content_check = {
	.name = "rules",
	.section = "rules",
	.stage = STAGE_EOM,
	.symbols = content_symbols,
	.enabled = content_enabled,
	.init = content_init,
	.run = content_run,
	.has_symbol = content_has_symbol,
	.free = content_free,
};
