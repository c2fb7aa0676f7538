/*
 * rules.h - content rules in a subset of SpamAssassin's rule language,
 * compiled once with PCRE2 (JIT) and run over a message's content.
 *
 * Supported: header (Name =~ /re/, Name !~ /re/, :raw :addr :name,
 * exists:Name, ALL, ToCc, [if-unset: text]), body (rendered text),
 * rawbody (decoded text, HTML kept), full (the whole raw message), uri
 * (each URI), meta (&& || ! + - * / < > <= >= == != and parentheses over
 * rule names and numbers), score (1 or 4 values: SpamAssassin's score
 * sets), describe, tflags (nice, multiple, maxhits=N; others kept and
 * ignored), include, # comments. Regexes: /re/flags or m{re}flags with
 * any delimiter, flags i s m x.
 *
 * if/ifplugin blocks are read (their eval: tests skipped one by one);
 * negated ones (if !plugin(...)) and else branches are skipped.
 * Skipped with a warning, never a load failure: eval: tests, lang lines,
 * and every other directive.
 * Errors (a regex PCRE2 rejects, a malformed line, a file that cannot be
 * read) name file:line; a rule with an error is left out and the rest
 * load.
 *
 * Scores: a rule without a score line scores 1.0 (0.01 for T_ names;
 * negative for tflags nice, as in SpamAssassin);
 * "__" names are sub-rules for metas, never symbols; score 0 disables a
 * rule. With four scores, set 1 (network tests, no Bayes) is used when
 * any network check is on, else set 0.
 *
 * Matching is bounded: each regex run has a match limit and a depth
 * limit; a run that hits one counts as no match and is reported
 * (rules_eval's limit_hits).
 */
#ifndef MXG_RULES_H
#define MXG_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "mime.h"
#include "strbuf.h"

struct message;
struct ruleset;

struct rules_diag {
	char *where;		/* "file:line" */
	char *text;
	char *group;		/* for warnings: what kind of construct */
};

struct rules_report {
	size_t loaded;		/* rules that can hit (scored or sub-rules) */
	size_t skipped;
	struct rules_diag *errors;
	size_t nerrors;
	struct rules_diag *warnings;
	size_t nwarnings;
};

struct rules_options {
	int score_set;		/* 0..3 */
	unsigned int match_limit;
	unsigned int depth_limit;
};

/* One rule that hit. name, description: borrowed from the ruleset. */
struct rules_hit {
	const char *name;
	const char *description;
	double score;
	int count;
};

struct rules_eval {
	struct rules_hit *hits;
	size_t nhits;
	int limit_hits;		/* regex runs stopped by a limit */
};

/* Loads every file matching the space-separated paths/globs. Always
 * returns a ruleset (maybe empty) and fills report (caller frees both). */
struct ruleset *rules_load(const char *files, const struct rules_options *opt,
    struct rules_report *report);
void rules_free(struct ruleset *set);
void rules_report_free(struct rules_report *report);

/* True when the set knows the name (a test, or only a score line). */
bool rules_has(const struct ruleset *set, const char *name);
void rules_set_score(struct ruleset *set, const char *name, double score);

/* Runs every rule over msg (headers, kept body) and its decoded content.
 * Thread-safe: the ruleset is read-only here. Caller frees out. */
void rules_run(const struct ruleset *set, const struct message *msg,
    const struct mime_content *content, struct rules_eval *out);
void rules_eval_free(struct rules_eval *eval);

#endif
