/*
 * test_ratelimit.c - the parts of rate limiting that need no Redis
 * (lib/ratelimit.h): what each rule keys on in a transaction, values as
 * a person types them, the keys, the words of a reply, the rate as
 * written and the GCRA arithmetic the Lua script does. Decisions are
 * tested against a real redis-server in tests/integration/ratelimit.py.
 */
#include "unit.h"

#include <math.h>

#include "../../lib/config.h"
#include "../../lib/message.h"
#include "../../lib/mxg.h"
#include "../../lib/ratelimit.h"

/* A rule with this key, count and rate (limit per period_ms, burst). */
static struct config_ratelimit
rule_of(enum ratelimit_key key, double limit, long period_ms, double burst)
{
	struct config_ratelimit r;

	memset(&r, 0, sizeof(r));
	r.name = "per-test";
	r.symbol = "RATELIMIT_PER_TEST";
	r.key = key;
	r.count = RATELIMIT_COUNT_MESSAGES;
	r.action = RATELIMIT_ACTION_DEFER;
	r.limit = limit;
	r.period_ms = period_ms;
	r.burst = burst;
	return r;
}

static void
test_ratelimit_key_value_takes_each_key_from_the_transaction(void **state)
{
	static const struct {
		const char *label;
		enum ratelimit_key key;
		const char *client, *sender, *auth, *rcpt;
		bool sender_set;
		const char *want;	/* NULL: the rule does not apply */
	} rows[] = {
		{"client IPv4", RATELIMIT_KEY_CLIENT_IP, "192.0.2.7", "a@x.org",
		    NULL, NULL, true, "192.0.2.7"},
		{"client IPv6 in canonical form", RATELIMIT_KEY_CLIENT_IP,
		    "2001:DB8:0:0::1", "a@x.org", NULL, NULL, true,
		    "2001:db8::1"},
		{"client IPv4-mapped IPv6 is IPv4", RATELIMIT_KEY_CLIENT_IP,
		    "::ffff:192.0.2.9", NULL, NULL, NULL, false, "192.0.2.9"},
		{"no client address", RATELIMIT_KEY_CLIENT_IP, NULL, "a@x.org",
		    NULL, NULL, true, NULL},
		{"client network /24", RATELIMIT_KEY_CLIENT_NET, "192.0.2.77",
		    NULL, NULL, NULL, false, "192.0.2.0/24"},
		{"client network /64", RATELIMIT_KEY_CLIENT_NET,
		    "2001:db8:1:2:3:4:5:6", NULL, NULL, NULL, false,
		    "2001:db8:1:2::/64"},
		{"no client network", RATELIMIT_KEY_CLIENT_NET, NULL, NULL,
		    NULL, NULL, false, NULL},
		{"sender lowercased", RATELIMIT_KEY_SENDER, "192.0.2.7",
		    "Alice+News@Example.ORG", NULL, NULL, true,
		    "alice+news@example.org"},
		{"null sender", RATELIMIT_KEY_SENDER, "192.0.2.7", "", NULL,
		    NULL, true, "<>"},
		{"no MAIL FROM yet", RATELIMIT_KEY_SENDER, "192.0.2.7", NULL,
		    NULL, NULL, false, NULL},
		{"sender domain", RATELIMIT_KEY_SENDER_DOMAIN, "192.0.2.7",
		    "a@Mail.Example.ORG", NULL, NULL, true, "mail.example.org"},
		{"null sender has no domain", RATELIMIT_KEY_SENDER_DOMAIN,
		    "192.0.2.7", "", NULL, NULL, true, NULL},
		{"sender without a domain", RATELIMIT_KEY_SENDER_DOMAIN,
		    "192.0.2.7", "postmaster", NULL, NULL, true, NULL},
		{"SASL user as given", RATELIMIT_KEY_SASL_USER, "192.0.2.7",
		    "a@x.org", "Bob", NULL, true, "Bob"},
		{"no SASL user", RATELIMIT_KEY_SASL_USER, "192.0.2.7",
		    "a@x.org", NULL, NULL, true, NULL},
		{"empty SASL user", RATELIMIT_KEY_SASL_USER, "192.0.2.7",
		    "a@x.org", "", NULL, true, NULL},
		{"recipient lowercased", RATELIMIT_KEY_RCPT, "192.0.2.7",
		    "a@x.org", NULL, "Bob@Dest.Example", true,
		    "bob@dest.example"},
		{"no recipient", RATELIMIT_KEY_RCPT, "192.0.2.7", "a@x.org",
		    NULL, NULL, true, NULL},
		{"recipient domain", RATELIMIT_KEY_RCPT_DOMAIN, "192.0.2.7",
		    "a@x.org", NULL, "bob@Dest.Example", true, "dest.example"},
		{"recipient without a domain", RATELIMIT_KEY_RCPT_DOMAIN,
		    "192.0.2.7", "a@x.org", NULL, "postmaster", true, NULL},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct config cfg;
		struct message *msg = message_new(1024, 1024);
		struct strbuf out = STRBUF_INIT;
		struct config_ratelimit rule = rule_of(rows[i].key, 10, 60000, 10);

		config_defaults(&cfg);
		if (rows[i].client != NULL)
			assert_int_equal(message_set_client(msg, rows[i].client,
			    NULL), 0);
		if (rows[i].sender_set)
			message_set_mail_from(msg, rows[i].sender);
		if (rows[i].auth != NULL)
			msg->auth_user = mxg_strdup(rows[i].auth);
		bool got = ratelimit_key_value(&cfg, &rule, msg, rows[i].rcpt,
		    &out);
		EXPECT_INT(rows[i].label, got, rows[i].want != NULL);
		if (rows[i].want != NULL)
			EXPECT_STR(rows[i].label, strbuf_cstr(&out),
			    rows[i].want);
		else
			EXPECT_INT(rows[i].label, out.len, 0);
		strbuf_free(&out);
		message_free(msg);
		config_release(&cfg);
	}
}

static void
test_ratelimit_value_parse_makes_the_key_form_of_what_a_person_types(
    void **state)
{
	static const struct {
		const char *label;
		enum ratelimit_key key;
		const char *text;
		const char *want;	/* NULL: refused */
	} rows[] = {
		{"client address", RATELIMIT_KEY_CLIENT_IP, "192.0.2.7",
		    "192.0.2.7"},
		{"client IPv6 upper case", RATELIMIT_KEY_CLIENT_IP,
		    "2001:DB8::0:1", "2001:db8::1"},
		{"client in brackets", RATELIMIT_KEY_CLIENT_IP, "[192.0.2.7]",
		    "192.0.2.7"},
		{"client not an address", RATELIMIT_KEY_CLIENT_IP, "mx.example",
		    NULL},
		{"client empty", RATELIMIT_KEY_CLIENT_IP, "", NULL},
		{"client network from an address", RATELIMIT_KEY_CLIENT_NET,
		    "192.0.2.77", "192.0.2.0/24"},
		{"client network as written", RATELIMIT_KEY_CLIENT_NET,
		    "192.0.2.0/24", "192.0.2.0/24"},
		{"client network with another prefix is masked",
		    RATELIMIT_KEY_CLIENT_NET, "192.0.2.77/32", "192.0.2.0/24"},
		{"client network garbage", RATELIMIT_KEY_CLIENT_NET, "/24",
		    NULL},
		{"sender in brackets, upper case", RATELIMIT_KEY_SENDER,
		    "<Alice@Example.ORG>", "alice@example.org"},
		{"null sender <>", RATELIMIT_KEY_SENDER, "<>", "<>"},
		{"null sender empty", RATELIMIT_KEY_SENDER, "", "<>"},
		{"sender domain", RATELIMIT_KEY_SENDER_DOMAIN, "Example.ORG",
		    "example.org"},
		{"sender domain from an address", RATELIMIT_KEY_SENDER_DOMAIN,
		    "a@Example.ORG", "example.org"},
		{"sender domain empty", RATELIMIT_KEY_SENDER_DOMAIN, "", NULL},
		{"SASL user kept", RATELIMIT_KEY_SASL_USER, "Bob", "Bob"},
		{"SASL user empty", RATELIMIT_KEY_SASL_USER, " ", NULL},
		{"recipient", RATELIMIT_KEY_RCPT, "<Bob@Dest.Example>",
		    "bob@dest.example"},
		{"recipient empty", RATELIMIT_KEY_RCPT, "<>", NULL},
		{"recipient domain", RATELIMIT_KEY_RCPT_DOMAIN, "DEST.example",
		    "dest.example"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct config cfg;
		struct strbuf out = STRBUF_INIT;
		struct config_ratelimit rule = rule_of(rows[i].key, 10, 60000, 10);

		config_defaults(&cfg);
		int rc = ratelimit_value_parse(&cfg, &rule, rows[i].text, &out);
		EXPECT_INT(rows[i].label, rc, rows[i].want ? 0 : -1);
		if (rows[i].want != NULL)
			EXPECT_STR(rows[i].label, strbuf_cstr(&out),
			    rows[i].want);
		else
			EXPECT_INT(rows[i].label, out.len, 0);
		strbuf_free(&out);
		config_release(&cfg);
	}
}

/* The CLI's form and the checks' form of one value are the same key. */
static void
test_ratelimit_value_parse_and_key_value_agree(void **state)
{
	struct config cfg;
	struct message *msg = message_new(1024, 1024);
	struct config_ratelimit net = rule_of(RATELIMIT_KEY_CLIENT_NET, 1, 1000,
	    1), sender = rule_of(RATELIMIT_KEY_SENDER, 1, 1000, 1);
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;

	(void)state;
	config_defaults(&cfg);
	cfg.greylist.ipv6_prefix = 48;
	assert_int_equal(message_set_client(msg, "2001:db8:7:8::1", NULL), 0);
	message_set_mail_from(msg, "<Carol@Example.NET>");
	assert_true(ratelimit_key_value(&cfg, &net, msg, NULL, &a));
	assert_int_equal(ratelimit_value_parse(&cfg, &net, "2001:DB8:7::42",
	    &b), 0);
	EXPECT_STR("network /48", strbuf_cstr(&b), strbuf_cstr(&a));
	strbuf_reset(&a);
	strbuf_reset(&b);
	assert_true(ratelimit_key_value(&cfg, &sender, msg, NULL, &a));
	assert_int_equal(ratelimit_value_parse(&cfg, &sender,
	    "carol@example.net", &b), 0);
	EXPECT_STR("sender", strbuf_cstr(&b), strbuf_cstr(&a));
	strbuf_free(&a);
	strbuf_free(&b);
	message_free(msg);
	config_release(&cfg);
}

static void
test_ratelimit_bucket_key_is_prefix_rl_rule_value(void **state)
{
	struct config cfg;
	struct strbuf key = STRBUF_INIT;
	struct config_ratelimit rule = rule_of(RATELIMIT_KEY_SENDER, 1, 1000, 1);

	(void)state;
	config_defaults(&cfg);
	ratelimit_bucket_key(&cfg, &rule, "a@example.org", &key);
	EXPECT_STR("default prefix", strbuf_cstr(&key),
	    "mxg:rl:per-test:a@example.org");
	strbuf_reset(&key);
	free(cfg.redis.prefix);
	cfg.redis.prefix = mxg_strdup("");
	ratelimit_bucket_key(&cfg, &rule, "<>", &key);
	EXPECT_STR("empty prefix", strbuf_cstr(&key), "rl:per-test:<>");
	strbuf_free(&key);
	config_release(&cfg);
}

static void
test_ratelimit_reply_words_and_rate_text(void **state)
{
	static const struct {
		enum ratelimit_key key;
		const char *want;
	} what[] = {
		{RATELIMIT_KEY_CLIENT_IP, "client"},
		{RATELIMIT_KEY_CLIENT_NET, "network"},
		{RATELIMIT_KEY_SENDER, "sender"},
		{RATELIMIT_KEY_SENDER_DOMAIN, "sender domain"},
		{RATELIMIT_KEY_SASL_USER, "SASL user"},
		{RATELIMIT_KEY_RCPT, "recipient"},
		{RATELIMIT_KEY_RCPT_DOMAIN, "recipient domain"},
	};
	static const struct {
		const char *label;
		double limit;
		long period_ms;
		const char *want;
	} rates[] = {
		{"an hour", 100, 3600000, "100/1h"},
		{"a minute", 20, 60000, "20/1m"},
		{"ten seconds", 5, 10000, "5/10s"},
		{"ninety minutes", 7, 5400000, "7/90m"},
		{"a day of bytes", 500e6, 86400000, "500000000/1d"},
		{"two days", 1, 172800000, "1/2d"},
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < NELEM(what); i++)
		EXPECT_STR(what[i].want, ratelimit_key_what(what[i].key),
		    what[i].want);
	for (size_t i = 0; i < NELEM(rates); i++) {
		struct config_ratelimit r = rule_of(RATELIMIT_KEY_SENDER,
		    rates[i].limit, rates[i].period_ms, 1);

		ratelimit_rate_text(&r, buf, sizeof(buf));
		EXPECT_STR(rates[i].label, buf, rates[i].want);
	}
}

/* 12/1m, burst 3: T = 5 s. An idle bucket takes 3 at once, the 4th
 * waits T, and one T later exactly one more conforms. */
static void
test_ratelimit_gcra_takes_the_burst_then_one_per_interval(void **state)
{
	struct config_ratelimit r = rule_of(RATELIMIT_KEY_CLIENT_IP, 12, 60000,
	    3);
	double now = 1.7e15, tat = 0, new_tat, wait;

	(void)state;
	EXPECT_DOUBLE("T", ratelimit_interval_us(&r), 5e6);
	for (int i = 0; i < 3; i++) {
		EXPECT_TRUE("burst", ratelimit_gcra(&r, tat, now, 1, &new_tat,
		    &wait));
		EXPECT_DOUBLE("no wait", wait, 0);
		tat = new_tat;
	}
	EXPECT_DOUBLE("full bucket", tat, now + 15e6);
	EXPECT_TRUE("4th refused", !ratelimit_gcra(&r, tat, now, 1, &new_tat,
	    &wait));
	EXPECT_DOUBLE("4th waits T", wait, 5e6);
	EXPECT_DOUBLE("a refusal charges nothing", new_tat, tat);
	/* 2 s later: 3 s left */
	EXPECT_TRUE("still refused", !ratelimit_gcra(&r, tat, now + 2e6, 1,
	    &new_tat, &wait));
	EXPECT_DOUBLE("the real time left", wait, 3e6);
	/* after the wait: one, not two */
	now += 5e6;
	EXPECT_TRUE("one more after T", ratelimit_gcra(&r, tat, now, 1,
	    &new_tat, &wait));
	tat = new_tat;
	EXPECT_TRUE("but not two", !ratelimit_gcra(&r, tat, now, 1, &new_tat,
	    &wait));
	/* two units at once need room for two: with two in the bucket,
	 * one fits, two do not */
	EXPECT_TRUE("one unit fits", ratelimit_gcra(&r, now + 10e6, now, 1,
	    &new_tat, &wait));
	EXPECT_TRUE("two units refused", !ratelimit_gcra(&r, now + 10e6, now, 2,
	    &new_tat, &wait));
	EXPECT_DOUBLE("two units wait", wait, 5e6);
	/* a long idle bucket is empty again, never better than empty */
	EXPECT_TRUE("idle", ratelimit_gcra(&r, tat, now + 3600e6, 3, &new_tat,
	    &wait));
	EXPECT_DOUBLE("from now", new_tat, now + 3600e6 + 15e6);
}

/* count = bytes: a message larger than the burst passes only from an
 * empty bucket, which it then over-fills; the next waits until empty. */
static void
test_ratelimit_gcra_request_larger_than_the_burst_needs_an_empty_bucket(
    void **state)
{
	struct config_ratelimit r = rule_of(RATELIMIT_KEY_CLIENT_IP, 1000,
	    1000, 100);		/* 1000 bytes/s: T = 1 ms a byte */
	double now = 1e15, new_tat, wait;

	(void)state;
	EXPECT_TRUE("from empty", ratelimit_gcra(&r, 0, now, 500, &new_tat,
	    &wait));
	EXPECT_DOUBLE("over-full", new_tat, now + 500e3);
	EXPECT_TRUE("not while there is anything in it", !ratelimit_gcra(&r,
	    now + 1, now, 500, &new_tat, &wait));
	EXPECT_DOUBLE("wait until empty", wait, 1);
	EXPECT_TRUE("a small one waits for room", !ratelimit_gcra(&r,
	    now + 500e3, now, 10, &new_tat, &wait));
	EXPECT_DOUBLE("room for 10 bytes", wait, 410e3);
}

static void
test_ratelimit_bucket_at_gives_level_and_times(void **state)
{
	struct config_ratelimit r = rule_of(RATELIMIT_KEY_CLIENT_IP, 12, 60000,
	    3);
	struct ratelimit_bucket b;
	double now = 1.7e15;

	(void)state;
	ratelimit_bucket_at(&r, 0, now, &b);
	EXPECT_TRUE("no key", !b.exists);
	EXPECT_DOUBLE("idle level", b.level, 0);
	EXPECT_DOUBLE("idle: free now", b.seconds_until_free, 0);
	ratelimit_bucket_at(&r, now + 15e6, now, &b);
	EXPECT_TRUE("key", b.exists);
	EXPECT_DOUBLE("full", b.level, 3);
	EXPECT_DOUBLE("next in T", b.seconds_until_free, 5);
	EXPECT_DOUBLE("empty in 3 T", b.seconds_until_empty, 15);
	ratelimit_bucket_at(&r, now + 7.5e6, now, &b);
	EXPECT_DOUBLE("half full", b.level, 1.5);
	EXPECT_DOUBLE("room now", b.seconds_until_free, 0);
	ratelimit_bucket_at(&r, now - 1e6, now, &b);
	EXPECT_DOUBLE("past tat: empty", b.level, 0);
	EXPECT_DOUBLE("past tat: no TTL", b.seconds_until_empty, 0);
}

static void
test_ratelimit_rule_find_by_name(void **state)
{
	struct config cfg;
	struct config_ratelimit rules[2] = {
		rule_of(RATELIMIT_KEY_CLIENT_IP, 1, 1000, 1),
		rule_of(RATELIMIT_KEY_SENDER, 1, 1000, 1),
	};

	(void)state;
	config_defaults(&cfg);
	rules[1].name = "other";
	memcpy(cfg.ratelimits, rules, sizeof(rules));
	cfg.nratelimits = 2;
	EXPECT_TRUE("found", ratelimit_rule_find(&cfg, "other") ==
	    &cfg.ratelimits[1]);
	EXPECT_TRUE("not found", ratelimit_rule_find(&cfg, "oth") == NULL);
	cfg.nratelimits = 0;	/* the names are not the config's to free */
	config_release(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_key_value_takes_each_key_from_the_transaction),
		cmocka_unit_test(test_ratelimit_value_parse_makes_the_key_form_of_what_a_person_types),
		cmocka_unit_test(test_ratelimit_value_parse_and_key_value_agree),
		cmocka_unit_test(test_ratelimit_bucket_key_is_prefix_rl_rule_value),
		cmocka_unit_test(test_ratelimit_reply_words_and_rate_text),
		cmocka_unit_test(test_ratelimit_gcra_takes_the_burst_then_one_per_interval),
		cmocka_unit_test(test_ratelimit_gcra_request_larger_than_the_burst_needs_an_empty_bucket),
		cmocka_unit_test(test_ratelimit_bucket_at_gives_level_and_times),
		cmocka_unit_test(test_ratelimit_rule_find_by_name),
	};
	return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
