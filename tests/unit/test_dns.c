/*
 * test_dns.c - lib/dns.h: wire names to text, and a resolver whose only
 * server is dead (127.0.0.1 port 1, where nothing listens): every query
 * ends as DNS_TEMPFAIL by its deadline, and freeing a query still in
 * flight is safe.
 */
#include "unit.h"

#include <arpa/nameser.h>

#include "../../lib/config.h"
#include "../../lib/dns.h"
#include "../../lib/mxg.h"

#define DEAD_SERVER "127.0.0.1@1"
#define TIMEOUT_MS 200
/* How late a deadline may be met: thread wake-up, a loaded CI box. */
#define SLACK_MS 300

#define W(s) (const unsigned char *)s, sizeof(s) - 1

static void
test_dns_name_to_text_decodes_and_escapes(void **state)
{
	static unsigned char long_label[1 + 64 + 1], label63[1 + 63 + 1];
	static unsigned char max_name[255];
	static char want63[64], want_max[254];

	(void)state;
	long_label[0] = 64;
	memset(long_label + 1, 'a', 64);
	label63[0] = 63;
	memset(label63 + 1, 'b', 63);
	memset(want63, 'b', 63);
	/* 63.63.63.61 + root: 255 bytes, the longest legal name */
	{
		size_t o = 0, w = 0;
		const size_t labels[] = {63, 63, 63, 61};

		for (size_t k = 0; k < 4; k++) {
			max_name[o++] = (unsigned char)labels[k];
			memset(max_name + o, 'c', labels[k]);
			o += labels[k];
			if (k > 0)
				want_max[w++] = '.';
			memset(want_max + w, 'c', labels[k]);
			w += labels[k];
		}
		max_name[o++] = 0;
		assert_int_equal(o, 255);
		assert_int_equal(w, 253);
	}

	const struct {
		const char *label;
		const unsigned char *data;
		size_t len;
		size_t outlen;
		int rc;
		const char *want;
	} rows[] = {
		{"root", W("\0"), 64, 0, "."},
		{"one label", W("\3com\0"), 64, 0, "com"},
		{"several labels", W("\3www\7example\3com\0"), 64, 0, "www.example.com"},
		{"bytes after the end are ignored", W("\3com\0\3xyz\0"), 64, 0, "com"},
		{"dot inside a label is escaped", W("\3a.b\3com\0"), 64, 0, "a\\046b.com"},
		{"space inside a label is escaped", W("\3a b\0"), 64, 0, "a\\032b"},
		{"backslash is escaped", W("\2a\\\0"), 64, 0, "a\\092"},
		{"8-bit byte is escaped", W("\1\xff\0"), 64, 0, "\\255"},
		{"NUL byte is escaped", W("\2a\0\0"), 64, 0, "a\\000"},
		{"control byte is escaped", W("\1\n\0"), 64, 0, "\\010"},
		{"upper case kept", W("\4MiXe\0"), 64, 0, "MiXe"},
		{"hyphen and underscore kept", W("\6_dmarc\4a-b1\0"), 64, 0, "_dmarc.a-b1"},
		{"63-byte label", label63, sizeof(label63), 128, 0, want63},
		{"longest legal name", max_name, sizeof(max_name), 300, 0, want_max},
		{"label of 64 bytes", long_label, sizeof(long_label), 128, -1, NULL},
		{"compression pointer", W("\xc0\x0c"), 64, -1, NULL},
		{"empty input", (const unsigned char *)"", 0, 64, -1, NULL},
		{"no terminating zero", W("\3com"), 64, -1, NULL},
		{"truncated inside a label", W("\3www\7exa"), 64, -1, NULL},
		{"label length past the end", W("\5ab\0"), 64, -1, NULL},
		{"out too small for the name", W("\3www\7example\3com\0"), 5, -1, NULL},
		{"out too small for root", W("\0"), 1, -1, NULL},
		{"out of size 0", W("\3com\0"), 0, -1, NULL},
		{"root fits in 2 bytes", W("\0"), 2, 0, "."},
	};

	for (size_t i = 0; i < NELEM(rows); i++) {
		char out[512];
		/* exact-size input and output copies, checked by ASan */
		unsigned char *in = malloc(rows[i].len ? rows[i].len : 1);
		char *o = malloc(rows[i].outlen ? rows[i].outlen : 1);

		assert_non_null(in);
		assert_non_null(o);
		memcpy(in, rows[i].data, rows[i].len);
		int rc = dns_name_to_text(in, rows[i].len, o, rows[i].outlen);
		EXPECT_INT(rows[i].label, rc, rows[i].rc);
		if (rc == 0 && rows[i].rc == 0) {
			snprintf(out, sizeof(out), "%s", o);
			EXPECT_STR(rows[i].label, out, rows[i].want);
		}
		free(in);
		free(o);
	}
}

static void
test_dns_status_names(void **state)
{
	static const struct {
		enum dns_status status;
		const char *name;
	} rows[] = {
		{DNS_OK, "ok"}, {DNS_NXDOMAIN, "nxdomain"}, {DNS_NODATA, "nodata"},
		{DNS_TEMPFAIL, "tempfail"}, {DNS_PERMFAIL, "permfail"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT_STR(rows[i].name, dns_status_name(rows[i].status),
		    rows[i].name);
	EXPECT_STR("out of range", dns_status_name((enum dns_status)42), "?");
}

/* A config whose [dns] sends every query to the dead server. */
static struct config *
dead_config(const char *nameserver)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(cfg);
	config_defaults(cfg);
	cfg->dns.nameserver = nameserver ? strdup(nameserver) : NULL;
	cfg->dns.timeout_ms = TIMEOUT_MS;
	return cfg;
}

struct fixture {
	struct config *cfg;
	struct dns_resolver *res;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[MXG_ERRLEN] = "";

	assert_non_null(f);
	f->cfg = dead_config(DEAD_SERVER);
	if (dns_resolver_new(f->cfg, &f->res, err) != 0)
		fail_msg("dns_resolver_new: %s", err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	dns_resolver_free(f->res);
	config_free(f->cfg);
	free(f);
	return 0;
}

static void
test_dns_resolver_takes_the_configured_timeout(void **state)
{
	struct fixture *f = *state;

	assert_non_null(f->res);
	EXPECT_INT("timeout", dns_resolver_timeout_ms(f->res), TIMEOUT_MS);
}

static void
test_dns_query_tempfails_by_its_deadline_on_a_dead_server(void **state)
{
	static const struct {
		const char *label;
		const char *name;
		int rrtype;
		long wait_ms;
	} rows[] = {
		{"A under .test", "a.example.test", ns_t_a, TIMEOUT_MS},
		{"TXT under .test", "example.test", ns_t_txt, TIMEOUT_MS},
		{"MX, public-looking name", "example.org", ns_t_mx, TIMEOUT_MS},
		{"AAAA", "host.example.test", ns_t_aaaa, TIMEOUT_MS},
		{"PTR in a TEST-NET reverse zone", "1.2.0.192.in-addr.arpa", ns_t_ptr, TIMEOUT_MS},
		{"PTR in a private reverse zone", "1.0.0.10.in-addr.arpa", ns_t_ptr, TIMEOUT_MS},
		{"short deadline", "short.example.test", ns_t_a, 20},
		{"deadline already past", "past.example.test", ns_t_a, -1000},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(rows); i++) {
		const struct dns_answer *answer = (const void *)&answer;
		long long start = mxg_now_ms();
		long long deadline = start + rows[i].wait_ms;
		struct dns_query *q = dns_query_start(f->res, rows[i].name,
		    rows[i].rrtype);

		assert_non_null(q);
		enum dns_status st = dns_query_wait(q, deadline, &answer);
		long long end = mxg_now_ms();

		EXPECT_STR(rows[i].label, dns_status_name(st), "tempfail");
		EXPECT_TRUE(rows[i].label, answer == NULL);
		if (end > (deadline > start ? deadline : start) + SLACK_MS)
			fail_msg("%s: answered after %lld ms, deadline was %ld ms",
			    rows[i].label, end - start, rows[i].wait_ms);
		dns_query_free(q);
	}
}

static void
test_dns_lookup_tempfails_within_the_configured_timeout(void **state)
{
	struct fixture *f = *state;
	const struct dns_answer *answer = (const void *)&answer;
	struct dns_query *q = NULL;
	long long start = mxg_now_ms();

	enum dns_status st = dns_lookup(f->res, "lookup.example.test", ns_t_txt,
	    &q, &answer);
	long long took = mxg_now_ms() - start;

	EXPECT_STR("dns_lookup", dns_status_name(st), "tempfail");
	EXPECT_TRUE("dns_lookup", answer == NULL);
	EXPECT_TRUE("dns_lookup gives a query to free", q != NULL);
	if (took > TIMEOUT_MS + SLACK_MS)
		fail_msg("dns_lookup took %lld ms with timeout %d ms", took,
		    TIMEOUT_MS);
	dns_query_free(q);
}

static void
test_dns_query_for_a_malformed_name_is_permfail(void **state)
{
	static const struct {
		const char *label;
		const char *name;
	} rows[] = {
		{"empty label", "a..example.test"},
		{"label over 63 bytes",
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test"},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(rows); i++) {
		const struct dns_answer *answer;
		long long start = mxg_now_ms();
		struct dns_query *q = dns_query_start(f->res, rows[i].name, ns_t_a);
		enum dns_status st = dns_query_wait(q, start + TIMEOUT_MS, &answer);

		EXPECT_STR(rows[i].label, dns_status_name(st), "permfail");
		EXPECT_TRUE(rows[i].label, answer == NULL);
		EXPECT_TRUE(rows[i].label, mxg_now_ms() - start < 150);
		dns_query_free(q);
	}
}

static void
test_dns_query_free_on_an_in_flight_query_is_safe(void **state)
{
	struct fixture *f = *state;
	struct dns_query *qs[50];
	char name[64];

	/* freed at once, before any answer */
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "q%d.inflight.example.test", i);
		dns_query_free(dns_query_start(f->res, name, ns_t_a));
	}
	/* many in flight together, freed in reverse order */
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "m%d.inflight.example.test", i);
		qs[i] = dns_query_start(f->res, name, ns_t_txt);
	}
	for (int i = 49; i >= 0; i--)
		dns_query_free(qs[i]);
	/* waited for past a zero deadline, then freed */
	for (int i = 0; i < 50; i++) {
		const struct dns_answer *answer;

		snprintf(name, sizeof(name), "w%d.inflight.example.test", i);
		struct dns_query *q = dns_query_start(f->res, name, ns_t_a);
		EXPECT_STR("zero deadline",
		    dns_status_name(dns_query_wait(q, 0, &answer)), "tempfail");
		dns_query_free(q);
	}
	/* the resolver still works afterwards */
	const struct dns_answer *answer;
	struct dns_query *q;
	EXPECT_STR("after the frees", dns_status_name(dns_lookup(f->res,
	    "after.example.test", ns_t_a, &q, &answer)), "tempfail");
	dns_query_free(q);
	dns_query_free(NULL);
}

static void
test_dns_resolver_free_with_queries_in_flight_is_safe(void **state)
{
	struct config *cfg = dead_config(DEAD_SERVER);
	char err[MXG_ERRLEN];

	(void)state;
	for (int round = 0; round < 5; round++) {
		struct dns_resolver *res = NULL;
		struct dns_query *qs[10];
		char name[64];

		assert_int_equal(dns_resolver_new(cfg, &res, err), 0);
		for (int i = 0; i < 10; i++) {
			snprintf(name, sizeof(name), "r%d-%d.example.test", round, i);
			qs[i] = dns_query_start(res, name, ns_t_a);
		}
		for (int i = 0; i < 10; i++)
			dns_query_free(qs[i]);
		dns_resolver_free(res);
	}
	dns_resolver_free(NULL);
	config_free(cfg);
}

static void
test_dns_resolver_refuses_a_bad_nameserver(void **state)
{
	static const struct {
		const char *label;
		const char *nameserver;
		const char *err_prefix;
	} rows[] = {
		{"host name", "dns.example.org", "dns: nameserver 'dns.example.org': "},
		{"IPv6 garbage", "2001:db8:::1::", "dns: nameserver '2001:db8:::1::': "},
		{"only separators", " , ", "dns: nameserver is empty"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct config *cfg = dead_config(rows[i].nameserver);
		struct dns_resolver *res = (struct dns_resolver *)&res;
		char err[MXG_ERRLEN] = "";
		int rc = dns_resolver_new(cfg, &res, err);

		EXPECT_TRUE(rows[i].label, rc < 0);
		EXPECT_TRUE(rows[i].label, res == NULL);
		EXPECT_MEM(rows[i].label, err, strnlen(err,
		    strlen(rows[i].err_prefix)), rows[i].err_prefix,
		    strlen(rows[i].err_prefix));
		if (rc == 0)
			dns_resolver_free(res);
		config_free(cfg);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_name_to_text_decodes_and_escapes),
		cmocka_unit_test(test_dns_status_names),
		cmocka_unit_test_setup_teardown(test_dns_resolver_takes_the_configured_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_query_tempfails_by_its_deadline_on_a_dead_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_lookup_tempfails_within_the_configured_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_query_for_a_malformed_name_is_permfail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_query_free_on_an_in_flight_query_is_safe, setup, teardown),
		cmocka_unit_test(test_dns_resolver_free_with_queries_in_flight_is_safe),
		cmocka_unit_test(test_dns_resolver_refuses_a_bad_nameserver),
	};

	return cmocka_run_group_tests_name("dns", tests, NULL, NULL);
}
