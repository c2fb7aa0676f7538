/*
 * test_spf.c - lib/spf.h: which identity SPF judges, the cases decided
 * without DNS, and a lookup against a dead server (127.0.0.1 port 1,
 * where nothing listens) ending as temperror in bounded time.
 */
#include "unit.h"

#include <stdbool.h>

#include "../../lib/check.h"
#include "../../lib/config.h"
#include "../../lib/dns.h"
#include "../../lib/message.h"
#include "../../lib/mxg.h"
#include "../../lib/spf.h"

#define DEAD_SERVER "127.0.0.1@1"
#define TIMEOUT_MS 200
/* spf.c gives one evaluation 3 query timeouts; the brief allows ~1 s. */
#define EVALUATION_MAX_MS 1000

static void
test_spf_result_names(void **state)
{
	static const struct {
		enum spf_result_code code;
		const char *name;
	} rows[] = {
		{SPF_RES_NOT_CHECKED, "none"},
		{SPF_RES_PASS, "pass"},
		{SPF_RES_FAIL, "fail"},
		{SPF_RES_SOFTFAIL, "softfail"},
		{SPF_RES_NEUTRAL, "neutral"},
		{SPF_RES_NONE, "none"},
		{SPF_RES_TEMPERROR, "temperror"},
		{SPF_RES_PERMERROR, "permerror"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT_STR(rows[i].name, spf_result_name(rows[i].code),
		    rows[i].name);
}

static void
test_spf_declares_every_symbol(void **state)
{
	static const char *const want[] = {
		"SPF_PASS", "SPF_FAIL", "SPF_SOFTFAIL", "SPF_NEUTRAL",
		"SPF_NONE", "SPF_TEMPERROR", "SPF_PERMERROR",
	};
	size_t n = 0;

	(void)state;
	EXPECT_STR("name", spf_check.name, "spf");
	EXPECT_STR("section", spf_check.section, "spf");
	EXPECT_INT("stage", spf_check.stage, STAGE_MAIL);
	while (spf_check.symbols[n].name != NULL)
		n++;
	EXPECT_INT("symbol count", n, NELEM(want));
	for (size_t i = 0; i < NELEM(want) && i < n; i++)
		EXPECT_STR(want[i], spf_check.symbols[i].name, want[i]);
}

struct fixture {
	struct config *cfg;
	struct check_env env;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[MXG_ERRLEN] = "";

	assert_non_null(f);
	f->cfg = calloc(1, sizeof(*f->cfg));
	assert_non_null(f->cfg);
	config_defaults(f->cfg);
	f->cfg->dns.nameserver = strdup(DEAD_SERVER);
	f->cfg->dns.timeout_ms = TIMEOUT_MS;
	f->env.cfg = f->cfg;
	if (dns_resolver_new(f->cfg, &f->env.dns, err) != 0)
		fail_msg("dns_resolver_new: %s", err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	dns_resolver_free(f->env.dns);
	config_free(f->cfg);
	free(f);
	return 0;
}

struct identity_row {
	const char *label;
	const char *client;	/* NULL: unknown */
	const char *helo;
	const char *mail_from;	/* NULL: MAIL FROM not given */
	enum spf_result_code code;
	const char *identity;
	const char *domain;
	const char *sender;
	const char *comment;
};

static void
check_identity_rows(struct fixture *f, const struct identity_row *rows,
    size_t n, long max_ms)
{
	for (size_t i = 0; i < n; i++) {
		const struct identity_row *r = &rows[i];
		struct message *msg = message_new(64 * 1024, 1024 * 1024);
		struct spf_result res;

		if (r->client != NULL)
			assert_int_equal(message_set_client(msg, r->client, NULL), 0);
		message_set_helo(msg, r->helo);
		if (r->mail_from != NULL)
			message_set_mail_from(msg, r->mail_from);
		memset(&res, 0x5a, sizeof(res));	/* must be overwritten */
		long long start = mxg_now_ms();
		spf_check_identity(&f->env, msg, &res);
		long long took = mxg_now_ms() - start;

		EXPECT_STR(r->label, spf_result_name(res.code),
		    spf_result_name(r->code));
		EXPECT_INT(r->label, res.code, r->code);
		EXPECT_STR(r->label, res.identity, r->identity);
		EXPECT_STR(r->label, res.domain, r->domain);
		EXPECT_STR(r->label, res.sender, r->sender);
		EXPECT_STR(r->label, res.comment, r->comment);
		EXPECT_STR(r->label, res.explanation, NULL);
		if (took > max_ms)
			fail_msg("%s: took %lld ms, at most %ld expected",
			    r->label, took, max_ms);
		spf_result_clear(&res);
		EXPECT_TRUE(r->label, res.domain == NULL && res.sender == NULL &&
		    res.comment == NULL && res.explanation == NULL);
		message_free(msg);
	}
}

static void
test_spf_without_dns_unknown_client_or_unusable_helo_is_none(void **state)
{
	static const struct identity_row rows[] = {
		{"unknown client, sender given", NULL, "mail.example.test",
		    "<a@example.test>", SPF_RES_NONE, "mailfrom", "example.test",
		    "a@example.test", "client address unknown"},
		{"unknown client, null sender", NULL, "mail.example.test", "<>",
		    SPF_RES_NONE, "helo", "mail.example.test",
		    "postmaster@mail.example.test", "client address unknown"},
		{"unknown client, no MAIL FROM, no HELO", NULL, NULL, NULL,
		    SPF_RES_NONE, "helo", NULL, NULL, "client address unknown"},
		{"null sender, HELO is an IPv4 literal", "192.0.2.1", "[192.0.2.1]", "<>",
		    SPF_RES_NONE, "helo", "[192.0.2.1]", NULL,
		    "HELO '[192.0.2.1]' is not a domain name"},
		{"null sender, HELO is an IPv6 literal", "2001:db8::1",
		    "[IPv6:2001:db8::1]", "",
		    SPF_RES_NONE, "helo", "[IPv6:2001:db8::1]", NULL,
		    "HELO '[IPv6:2001:db8::1]' is not a domain name"},
		{"null sender, HELO without a dot", "192.0.2.1", "localhost", "<>",
		    SPF_RES_NONE, "helo", "localhost", NULL,
		    "HELO 'localhost' is not a domain name"},
		{"null sender, empty HELO", "192.0.2.1", "", "<>",
		    SPF_RES_NONE, "helo", NULL, NULL, "HELO '' is not a domain name"},
		{"null sender, no HELO", "192.0.2.1", NULL, "<>",
		    SPF_RES_NONE, "helo", NULL, NULL, "HELO '' is not a domain name"},
		{"no MAIL FROM, HELO without a dot", "192.0.2.1", "mailhost", NULL,
		    SPF_RES_NONE, "helo", "mailhost", NULL,
		    "HELO 'mailhost' is not a domain name"},
	};

	check_identity_rows(*state, rows, NELEM(rows), 150);
}

static void
test_spf_tempfails_in_bounded_time_when_dns_is_dead(void **state)
{
	static const struct identity_row rows[] = {
		{"sender domain, IPv4 client", "192.0.2.1", "mail.example.test",
		    "a@example.test", SPF_RES_TEMPERROR, "mailfrom", "example.test",
		    "a@example.test",
		    "DNS failure looking up the SPF record of example.test"},
		{"sender domain, IPv6 client", "2001:db8::25", "mail.example.test",
		    "<b@example.test>", SPF_RES_TEMPERROR, "mailfrom", "example.test",
		    "b@example.test",
		    "DNS failure looking up the SPF record of example.test"},
		{"null sender, HELO domain", "192.0.2.1", "mail.example.test", "<>",
		    SPF_RES_TEMPERROR, "helo", "mail.example.test",
		    "postmaster@mail.example.test",
		    "DNS failure looking up the SPF record of mail.example.test"},
	};

	check_identity_rows(*state, rows, NELEM(rows), EVALUATION_MAX_MS);
}

static void
test_spf_result_clear_of_an_empty_result_is_safe(void **state)
{
	struct spf_result res;

	(void)state;
	memset(&res, 0, sizeof(res));
	spf_result_clear(&res);
	EXPECT_INT("code", res.code, SPF_RES_NOT_CHECKED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spf_result_names),
		cmocka_unit_test(test_spf_declares_every_symbol),
		cmocka_unit_test(test_spf_result_clear_of_an_empty_result_is_safe),
		cmocka_unit_test_setup_teardown(test_spf_without_dns_unknown_client_or_unusable_helo_is_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spf_tempfails_in_bounded_time_when_dns_is_dead, setup, teardown),
	};

	return cmocka_run_group_tests_name("spf", tests, NULL, NULL);
}
