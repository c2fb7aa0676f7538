/*
 * rules.h - content rules in a subset of SpamAssassin's rule language,
 * compiled once with PCRE2 (JIT) and run over a message's content with
 * SpamAssassin 4.0's semantics, so that its stock rules score here as
 * they score there.
 *
 * Supported: header (Name =~ /re/, Name !~ /re/, exists:Name, modifiers
 * :raw :addr :name :first :last, ALL, ToCc, MESSAGEID, [if-unset: text]),
 * body, rawbody, full, uri, meta (&& || ! + - * / < > <= >= == != and
 * parentheses over rule names and numbers, rules_matching(GLOB)), score
 * (1 or 4 values: SpamAssassin's score sets), describe, tflags (nice,
 * multiple, maxhits=N, nosubject, net, learn; a later tflags line
 * replaces the earlier), include, if/ifplugin/else/endif, loadplugin,
 * replace_tag/_pre/_post/_inter/_start/_end and replace_rules (the
 * ReplaceTags plugin), util_rb_tld (the TLDs that make bare domains in
 * text URIs), # comments. Regexes: /re/flags or m{re}flags with any
 * delimiter, flags i s m x.
 *
 * Two header eval: tests run here, as SpamAssassin's HeaderEval plugin
 * runs them (lib/sa_eval.h): check_for_shifted_date('min', 'max') (each
 * a number or 'undef'; DATE_IN_PAST_*, DATE_IN_FUTURE_*) and
 * check_outlook_message_id() (MSGID_OUTLOOK_INVALID). Their results are
 * known, 0 or 1; a message without a readable date does not hit.
 *
 * What each rule type sees, as SpamAssassin builds it:
 *   header  the header's values (decoded, unfolded, trimmed, a newline
 *           after each; Received, Message-ID, Date, References, List-*
 *           and the like not decoded); :raw the value after the colon
 *           as sent; :addr, :name every address (or name) of every
 *           instance, by SpamAssassin's address parser; a newline between
 *           values. A missing header is the empty string (or the
 *           if-unset text).
 *   body    the Subject line, then the rendered text of the text parts
 *           one line per paragraph (a white-space run with two or more
 *           newlines ends a paragraph, any other run is one space),
 *           lines cut at 2 KB; each line matched on its own.
 *   rawbody each text part decoded, HTML kept, in pieces of 2 to 4 KB.
 *   full    the whole message, LF line ends.
 *   uri     the URIs SpamAssassin finds in the body text (links, www.,
 *           e-mail addresses as mailto:, bare domains ending in a
 *           util_rb_tld) and in HTML attributes, each with its
 *           canonical variants (%-decoded, user@ and default ports taken
 *           off, redirect targets, IP hosts in dotted decimal).
 * No implicit m flag anywhere.
 *
 * if/ifplugin: a block is read when its condition holds for SpamAssassin
 * 4.0.1 with the plugins Debian's .pre files load (and any loadplugin
 * line adds): plugin(), can() and version answer as that SpamAssassin
 * would; a false block, and the other branch of an else, are skipped.
 *
 * Tests SpamAssassin runs and this engine cannot are kept as unknowns:
 * the other eval: tests (and these two with other arguments, or outside
 * a header rule), mimeheader, uri_detail and DNS-list rules (askdns,
 * urirhssub, ...), header rules on what SpamAssassin computes itself
 * (X-Spam-Relays-*, ALL-TRUSTED and the like, EnvelopeFrom) or with
 * :host :domain :ip :revip, %{...} capture templates, and regexes too
 * large for PCRE2. Such a test never hits; a meta over one hits only
 * when it would whatever the test's result (a && !UNKNOWN does not, a ||
 * UNKNOWN does). One with score 0 is not run by SpamAssassin either, nor
 * a net (or DNS-list) test without network tests (score sets 0 and 2),
 * nor a learn test without Bayes (sets 0 and 1): those are 0.
 * Each is a warning when loading (rules_report), grouped by kind.
 * Other directives are skipped with a warning, never a load failure.
 * Errors (a regex PCRE2 rejects, a malformed line, a file that cannot be
 * read) name file:line; a rule with an error is left out and the rest
 * load.
 *
 * Scores: a rule without a score line scores 1.0 (0.01 for T_ names;
 * negative for tflags nice, as in SpamAssassin); "__" names are
 * sub-rules for metas, never symbols. As in SpamAssassin, a rule whose
 * score in force is 0 does not run (a meta sees 0 for it), and a meta
 * over a meta that does not run never hits. With four scores, set 1
 * (network tests, no Bayes) is used when any network check is on, else
 * set 0. A meta's value is Perl's (&& and || give an operand); it hits
 * when not 0, negative values included.
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
/* Sets a rule's score for every score set; 0 stops it from running, as a
 * `score NAME 0` line would. No effect for a name the set does not know.
 * Not while another thread runs the set. */
void rules_set_score(struct ruleset *set, const char *name, double score);

/* Runs every rule over msg (headers, kept body) and its decoded content
 * (text and raw_text by part when text_parts/raw_parts are given, else
 * each as one part; uris: those marked html). Reports the rules that
 * surely hit. Thread-safe: the ruleset is read-only here. Caller frees
 * out. */
void rules_run(const struct ruleset *set, const struct message *msg,
    const struct mime_content *content, struct rules_eval *out);
void rules_eval_free(struct rules_eval *eval);

#endif
