/*
 * test_verdict.c - lib/verdict.h: symbols and forced outcomes in, one
 * action and one SMTP reply out.
 */
#include "unit.h"

#include <stdbool.h>

#include "../../lib/config.h"
#include "../../lib/verdict.h"

#define OFF CONFIG_THRESHOLD_OFF

/* Only [actions] is read by verdict_decide; the rest stays zero. */
static void
actions(struct config *cfg, double add_header, double tempfail,
    double reject)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->actions.greylist = OFF;
	cfg->actions.rewrite_subject = OFF;
	cfg->actions.add_header = add_header;
	cfg->actions.tempfail = tempfail;
	cfg->actions.reject = reject;
}

static void
expect_reply(const char *label, const struct verdict *v,
    enum verdict_action action, const char *code, const char *enhanced,
    const char *text)
{
	char line[1400];

	EXPECT_STR(label, verdict_action_name(v->action),
	    verdict_action_name(action));
	EXPECT_INT(label, v->action, action);
	EXPECT_STR(label, v->reply_code, code);
	EXPECT_STR(label, v->reply_enhanced, enhanced);
	EXPECT_STR(label, v->reply_text, text);
	if (code == NULL) {
		EXPECT_STR(label, v->reply, NULL);
		return;
	}
	snprintf(line, sizeof(line), "%s %s %s", code, enhanced, text);
	EXPECT_STR(label, v->reply, line);
}

static void
test_verdict_score_is_the_sum_of_symbol_scores(void **state)
{
	static const struct {
		const char *label;
		double scores[4];
		size_t n;
		double want;
	} rows[] = {
		{"no symbols", {0}, 0, 0.0},
		{"one symbol", {4.0}, 1, 4.0},
		{"two symbols", {1.5, 2.25}, 2, 3.75},
		{"negative symbol lowers the score", {4.0, -0.5}, 2, 3.5},
		{"only negative", {-0.5, -1.0}, 2, -1.5},
		{"zero-score symbols", {0.0, 0.0, 0.0}, 3, 0.0},
		{"four symbols", {0.5, 0.5, 2.0, 4.0}, 4, 7.0},
	};
	static const char *const names[] = {"A", "B", "C", "D"};
	struct config cfg;

	(void)state;
	actions(&cfg, OFF, OFF, OFF);
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct verdict *v = verdict_new();

		for (size_t k = 0; k < rows[i].n; k++)
			verdict_add_symbol(v, names[k], rows[i].scores[k], NULL);
		verdict_decide(v, &cfg);
		EXPECT_INT(rows[i].label, v->nsymbols, rows[i].n);
		EXPECT_DOUBLE(rows[i].label, v->score, rows[i].want);
		expect_reply(rows[i].label, v, VERDICT_ACCEPT, NULL, NULL, NULL);
		verdict_free(v);
	}
}

static void
test_verdict_keeps_symbols_in_order_with_copied_details(void **state)
{
	struct verdict *v = verdict_new();
	char detail[32];

	(void)state;
	snprintf(detail, sizeof(detail), "example.org");
	verdict_add_symbol(v, "SPF_FAIL", 4.0, detail);
	verdict_add_symbol(v, "SPF_NONE", 0.5, NULL);
	snprintf(detail, sizeof(detail), "changed");	/* detail was copied */

	assert_int_equal(v->nsymbols, 2);
	EXPECT_STR("first name", v->symbols[0].name, "SPF_FAIL");
	EXPECT_DOUBLE("first score", v->symbols[0].score, 4.0);
	EXPECT_STR("first detail", v->symbols[0].detail, "example.org");
	EXPECT_STR("second name", v->symbols[1].name, "SPF_NONE");
	EXPECT_STR("second detail", v->symbols[1].detail, NULL);

	EXPECT_TRUE("find SPF_FAIL",
	    verdict_find_symbol(v, "SPF_FAIL") == &v->symbols[0]);
	EXPECT_TRUE("find SPF_NONE",
	    verdict_find_symbol(v, "SPF_NONE") == &v->symbols[1]);
	EXPECT_TRUE("find absent", verdict_find_symbol(v, "SPF_PASS") == NULL);
	EXPECT_TRUE("find is case-sensitive",
	    verdict_find_symbol(v, "spf_fail") == NULL);
	verdict_free(v);
}

static void
test_verdict_thresholds_pick_the_action_and_reply(void **state)
{
	static const struct {
		const char *label;
		double add_header, tempfail, reject;
		double score;
		enum verdict_action action;
		const char *code, *enhanced, *text;
	} rows[] = {
		/* the shipped defaults: 6, off, 15 */
		{"defaults, score 0", 6, OFF, 15, 0, VERDICT_ACCEPT, NULL, NULL, NULL},
		{"defaults, just under add_header", 6, OFF, 15, 5.5, VERDICT_ACCEPT, NULL, NULL, NULL},
		{"defaults, exactly add_header", 6, OFF, 15, 6, VERDICT_ADD_HEADER, NULL, NULL, NULL},
		{"defaults, under reject", 6, OFF, 15, 14.5, VERDICT_ADD_HEADER, NULL, NULL, NULL},
		{"defaults, exactly reject", 6, OFF, 15, 15, VERDICT_REJECT, "550", "5.7.1",
		    "Message rejected as spam (score 15.0)"},
		{"defaults, far over reject", 6, OFF, 15, 100.5, VERDICT_REJECT, "550", "5.7.1",
		    "Message rejected as spam (score 100.5)"},
		{"defaults, negative score", 6, OFF, 15, -3, VERDICT_ACCEPT, NULL, NULL, NULL},
		/* with a tempfail band */
		{"tempfail band, under it", 6, 10, 15, 9.5, VERDICT_ADD_HEADER, NULL, NULL, NULL},
		{"tempfail band, exactly tempfail", 6, 10, 15, 10, VERDICT_TEMPFAIL, "451", "4.7.1",
		    "Message looks like spam (score 10.0), try again later"},
		{"tempfail band, inside it", 6, 10, 15, 12.5, VERDICT_TEMPFAIL, "451", "4.7.1",
		    "Message looks like spam (score 12.5), try again later"},
		{"tempfail band, reject wins above", 6, 10, 15, 15.5, VERDICT_REJECT, "550", "5.7.1",
		    "Message rejected as spam (score 15.5)"},
		/* off */
		{"all off, huge score", OFF, OFF, OFF, 1000, VERDICT_ACCEPT, NULL, NULL, NULL},
		{"reject off, tempfail on", 6, 8, OFF, 50, VERDICT_TEMPFAIL, "451", "4.7.1",
		    "Message looks like spam (score 50.0), try again later"},
		{"add_header off, under reject", OFF, OFF, 15, 10, VERDICT_ACCEPT, NULL, NULL, NULL},
		{"only reject on", OFF, OFF, 15, 15, VERDICT_REJECT, "550", "5.7.1",
		    "Message rejected as spam (score 15.0)"},
		/* thresholds at and below zero are still thresholds */
		{"add_header 0, score 0", 0, OFF, OFF, 0, VERDICT_ADD_HEADER, NULL, NULL, NULL},
		{"negative reject threshold", OFF, OFF, -1, -0.5, VERDICT_REJECT, "550", "5.7.1",
		    "Message rejected as spam (score -0.5)"},
	};
	struct config cfg;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct verdict *v = verdict_new();

		actions(&cfg, rows[i].add_header, rows[i].tempfail,
		    rows[i].reject);
		verdict_add_symbol(v, "TEST", rows[i].score, NULL);
		verdict_decide(v, &cfg);
		EXPECT_DOUBLE(rows[i].label, v->score, rows[i].score);
		expect_reply(rows[i].label, v, rows[i].action, rows[i].code,
		    rows[i].enhanced, rows[i].text);
		verdict_free(v);
	}
}

struct force {
	enum verdict_action action;
	const char *enhanced;
	const char *text;
};

static void
test_verdict_forced_outcome_wins_and_the_first_one_counts(void **state)
{
	static const struct {
		const char *label;
		double score;
		struct force force[3];
		size_t nforce;
		enum verdict_action action;
		const char *code, *enhanced, *text;
	} rows[] = {
		{"forced reject over a low score", 0,
		    {{VERDICT_REJECT, "5.7.23", "SPF: not authorized"}}, 1,
		    VERDICT_REJECT, "550", "5.7.23", "SPF: not authorized"},
		{"forced reject over a negative score", -10,
		    {{VERDICT_REJECT, "5.7.23", "SPF: fail"}}, 1,
		    VERDICT_REJECT, "550", "5.7.23", "SPF: fail"},
		{"forced tempfail over a reject score", 100,
		    {{VERDICT_TEMPFAIL, "4.4.3", "DNS down, try later"}}, 1,
		    VERDICT_TEMPFAIL, "451", "4.4.3", "DNS down, try later"},
		{"forced tempfail over an add_header score", 7,
		    {{VERDICT_TEMPFAIL, "4.4.3", "later"}}, 1,
		    VERDICT_TEMPFAIL, "451", "4.4.3", "later"},
		{"first forced wins: tempfail then reject", 0,
		    {{VERDICT_TEMPFAIL, "4.4.3", "first"},
		     {VERDICT_REJECT, "5.7.23", "second"}}, 2,
		    VERDICT_TEMPFAIL, "451", "4.4.3", "first"},
		{"first forced wins: reject then tempfail", 0,
		    {{VERDICT_REJECT, "5.7.23", "first"},
		     {VERDICT_TEMPFAIL, "4.4.3", "second"}}, 2,
		    VERDICT_REJECT, "550", "5.7.23", "first"},
		{"first forced wins: three rejects", 0,
		    {{VERDICT_REJECT, "5.7.1", "one"},
		     {VERDICT_REJECT, "5.7.23", "two"},
		     {VERDICT_REJECT, "5.7.26", "three"}}, 3,
		    VERDICT_REJECT, "550", "5.7.1", "one"},
		{"empty forced text", 0,
		    {{VERDICT_REJECT, "5.7.23", ""}}, 1,
		    VERDICT_REJECT, "550", "5.7.23", ""},
	};
	struct config cfg;

	(void)state;
	actions(&cfg, 6, 10, 15);
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct verdict *v = verdict_new();

		verdict_add_symbol(v, "TEST", rows[i].score, NULL);
		for (size_t k = 0; k < rows[i].nforce; k++)
			verdict_force(v, rows[i].force[k].action,
			    rows[i].force[k].enhanced, "%s",
			    rows[i].force[k].text);
		verdict_decide(v, &cfg);
		EXPECT_TRUE(rows[i].label, v->forced);
		EXPECT_DOUBLE(rows[i].label, v->score, rows[i].score);
		expect_reply(rows[i].label, v, rows[i].action, rows[i].code,
		    rows[i].enhanced, rows[i].text);
		verdict_free(v);
	}
}

static void
test_verdict_forced_text_is_made_printable_ascii(void **state)
{
	static const struct {
		const char *label;
		const char *text;
		const char *want;
	} rows[] = {
		{"plain", "SPF: example.org says no", "SPF: example.org says no"},
		{"CR LF inside", "line one\r\n550 injected", "line one??550 injected"},
		{"control bytes", "\x01\x07\x1b[31mred\x7f", "???[31mred?"},
		{"tab", "a\tb", "a?b"},
		{"UTF-8 bytes", "caf\xc3\xa9", "caf??"},
		{"invalid UTF-8", "\xff\xfe ok", "?? ok"},
		{"every printable kept", " !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~",
		    " !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~"},
	};
	struct config cfg;

	(void)state;
	actions(&cfg, 6, OFF, 15);
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct verdict *v = verdict_new();

		verdict_force(v, VERDICT_REJECT, "5.7.23", "%s", rows[i].text);
		EXPECT_STR(rows[i].label, v->forced_text, rows[i].want);
		EXPECT_STR(rows[i].label, v->forced_enhanced, "5.7.23");
		verdict_decide(v, &cfg);
		expect_reply(rows[i].label, v, VERDICT_REJECT, "550", "5.7.23",
		    rows[i].want);
		verdict_free(v);
	}

	/* the format is a printf format */
	struct verdict *v = verdict_new();
	verdict_force(v, VERDICT_TEMPFAIL, "4.4.3", "SPF: %s (%d tries)",
	    "example.org", 3);
	verdict_decide(v, &cfg);
	expect_reply("printf format", v, VERDICT_TEMPFAIL, "451", "4.4.3",
	    "SPF: example.org (3 tries)");
	verdict_free(v);
}

static void
test_verdict_reset_empties_everything(void **state)
{
	struct verdict *v = verdict_new();
	struct config cfg;

	(void)state;
	actions(&cfg, 6, OFF, 15);
	verdict_add_symbol(v, "SPF_FAIL", 20, "detail");
	verdict_add_authres(v, "spf", "fail", "reason", "smtp.mailfrom=a.example");
	verdict_add_header(v, "X-Spam-Flag", "YES");
	verdict_force(v, VERDICT_REJECT, "5.7.23", "no");
	verdict_decide(v, &cfg);
	assert_non_null(v->reply);

	verdict_reset(v);
	EXPECT_INT("nsymbols", v->nsymbols, 0);
	EXPECT_TRUE("symbols", v->symbols == NULL);
	EXPECT_INT("nauthres", v->nauthres, 0);
	EXPECT_TRUE("authres", v->authres == NULL);
	EXPECT_INT("nheaders", v->nheaders, 0);
	EXPECT_TRUE("headers", v->headers == NULL);
	EXPECT_INT("forced", v->forced, false);
	EXPECT_STR("forced_enhanced", v->forced_enhanced, NULL);
	EXPECT_STR("forced_text", v->forced_text, NULL);
	EXPECT_DOUBLE("score", v->score, 0.0);
	EXPECT_STR("reply", v->reply, NULL);
	EXPECT_STR("reply_code", v->reply_code, NULL);
	EXPECT_STR("reply_enhanced", v->reply_enhanced, NULL);
	EXPECT_STR("reply_text", v->reply_text, NULL);
	EXPECT_TRUE("no symbol found", verdict_find_symbol(v, "SPF_FAIL") == NULL);

	/* and is usable again: a new force is not ignored */
	verdict_add_symbol(v, "LOW", 1, NULL);
	verdict_force(v, VERDICT_TEMPFAIL, "4.4.3", "again");
	verdict_decide(v, &cfg);
	expect_reply("after reset", v, VERDICT_TEMPFAIL, "451", "4.4.3", "again");
	EXPECT_DOUBLE("after reset", v->score, 1.0);
	verdict_free(v);
}

static void
test_verdict_keeps_authres_and_headers_as_copies(void **state)
{
	struct verdict *v = verdict_new();
	char buf[64];

	(void)state;
	snprintf(buf, sizeof(buf), "smtp.mailfrom=a.example");
	verdict_add_authres(v, "spf", "pass", NULL, buf);
	verdict_add_authres(v, "dkim", "none", "no signature", NULL);
	verdict_add_header(v, "X-Spam-Score", "1.5");
	buf[0] = 'X';
	assert_int_equal(v->nauthres, 2);
	EXPECT_STR("authres 0 method", v->authres[0].method, "spf");
	EXPECT_STR("authres 0 result", v->authres[0].result, "pass");
	EXPECT_STR("authres 0 reason", v->authres[0].reason, NULL);
	EXPECT_STR("authres 0 props", v->authres[0].props, "smtp.mailfrom=a.example");
	EXPECT_STR("authres 1 method", v->authres[1].method, "dkim");
	EXPECT_STR("authres 1 reason", v->authres[1].reason, "no signature");
	EXPECT_STR("authres 1 props", v->authres[1].props, NULL);
	assert_int_equal(v->nheaders, 1);
	EXPECT_STR("header name", v->headers[0].name, "X-Spam-Score");
	EXPECT_STR("header value", v->headers[0].value, "1.5");
	verdict_free(v);
}

/*
 * Regression (lib/verdict.c, verdict_decide, fixed): the accept and add_header branches
 * leave reply/reply_code/... from an earlier decision, so deciding again
 * after the score dropped (or with other thresholds) gives action accept
 * with a stale "550 5.7.1 ..." reply. verdict.h: reply is NULL when
 * accepting.
 */
static void
test_verdict_deciding_again_clears_a_stale_reply(void **state)
{
	struct verdict *v = verdict_new();
	struct config cfg;

	(void)state;
	actions(&cfg, 6, OFF, 15);
	verdict_add_symbol(v, "HIGH", 20, NULL);
	verdict_decide(v, &cfg);
	expect_reply("first decision", v, VERDICT_REJECT, "550", "5.7.1",
	    "Message rejected as spam (score 20.0)");
	verdict_add_symbol(v, "WHITELISTED", -18, NULL);
	verdict_decide(v, &cfg);
	/* read, free, then check: a failure leaks nothing */
	double score = v->score;
	enum verdict_action action = v->action;
	bool stale = v->reply != NULL || v->reply_code != NULL ||
	    v->reply_enhanced != NULL || v->reply_text != NULL;
	char reply[200];
	snprintf(reply, sizeof(reply), "%s", v->reply ? v->reply : "(null)");
	verdict_free(v);
	EXPECT_DOUBLE("second decision", score, 2.0);
	EXPECT_STR("second decision", verdict_action_name(action), "accept");
	EXPECT_STR("second decision: reply", reply, "(null)");
	EXPECT_TRUE("second decision: no reply field left", !stale);
}

static void
test_verdict_action_names(void **state)
{
	static const struct {
		enum verdict_action action;
		const char *name;
	} rows[] = {
		{VERDICT_ACCEPT, "accept"},
		{VERDICT_ADD_HEADER, "add_header"},
		{VERDICT_TEMPFAIL, "tempfail"},
		{VERDICT_REJECT, "reject"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT_STR(rows[i].name, verdict_action_name(rows[i].action),
		    rows[i].name);
	EXPECT_STR("out of range", verdict_action_name((enum verdict_action)99),
	    "accept");
}

static void
test_verdict_free_null_is_a_no_op(void **state)
{
	(void)state;
	verdict_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict_score_is_the_sum_of_symbol_scores),
		cmocka_unit_test(test_verdict_keeps_symbols_in_order_with_copied_details),
		cmocka_unit_test(test_verdict_thresholds_pick_the_action_and_reply),
		cmocka_unit_test(test_verdict_forced_outcome_wins_and_the_first_one_counts),
		cmocka_unit_test(test_verdict_forced_text_is_made_printable_ascii),
		cmocka_unit_test(test_verdict_reset_empties_everything),
		cmocka_unit_test(test_verdict_keeps_authres_and_headers_as_copies),
		cmocka_unit_test(test_verdict_action_names),
		cmocka_unit_test(test_verdict_free_null_is_a_no_op),
		/* Regression for the lib/verdict.c bug it describes (fixed). */
		cmocka_unit_test(test_verdict_deciding_again_clears_a_stale_reply),
	};

	return cmocka_run_group_tests_name("verdict", tests, NULL, NULL);
}
