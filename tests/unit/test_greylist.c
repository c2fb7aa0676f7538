/*
 * test_greylist.c - the parts of greylisting that need no Redis: the
 * client network, the sender's normal form and the keys
 * (lib/greylist.h). Decisions are tested against a real redis-server in
 * tests/integration/.
 */
#include "unit.h"

#include "../../lib/config.h"
#include "../../lib/greylist.h"
#include "../../lib/mxg.h"

static void
test_greylist_client_net_masks_to_the_configured_prefix(void **state)
{
	static const struct {
		const char *label, *addr;
		int v4, v6;
		const char *want;
	} rows[] = {
		{"IPv4 /24", "192.0.2.77", 24, 64, "192.0.2.0/24"},
		{"IPv4 exact", "192.0.2.77", 32, 64, "192.0.2.77/32"},
		{"IPv4 /20", "198.51.100.200", 20, 64, "198.51.96.0/20"},
		{"IPv6 /64", "2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
		{"IPv6 /48", "2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"},
		{"prefix larger than the address", "192.0.2.1", 40, 64, "192.0.2.1/32"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct config cfg;
		struct message *msg = message_new(1024, 1024);
		struct strbuf out = STRBUF_INIT;

		config_defaults(&cfg);
		cfg.greylist.ipv4_prefix = rows[i].v4;
		cfg.greylist.ipv6_prefix = rows[i].v6;
		assert_int_equal(message_set_client(msg, rows[i].addr, NULL), 0);
		greylist_client_net(&cfg, msg, &out);
		EXPECT_STR(rows[i].label, strbuf_cstr(&out), rows[i].want);
		strbuf_free(&out);
		message_free(msg);
		config_release(&cfg);
	}
}

static void
test_greylist_sender_normal_form(void **state)
{
	static const struct {
		const char *label, *sender;
		bool normalize;
		const char *want;
	} rows[] = {
		{"null sender", "", true, "<>"},
		{"NULL sender", NULL, true, "<>"},
		{"lowercased", "Alice@Example.ORG", true, "alice@example.org"},
		{"+ext dropped", "alice+news@example.org", true, "alice@example.org"},
		{"+ext kept without normalising", "alice+news@example.org", false,
		    "alice+news@example.org"},
		{"BATV prvs", "prvs=1234abcd=bounce@example.org", true,
		    "bounce@example.org"},
		{"SRS0", "SRS0=HHH=TT=orig.example=alice@forwarder.example", true,
		    "alice@orig.example"},
		{"SRS1", "SRS1=HHH=fwd1.example==HHH=TT=orig.example=bob@fwd2.example",
		    true, "bob@orig.example"},
		{"malformed SRS stays as it is", "SRS0=broken@fwd.example", true,
		    "srs0=broken@fwd.example"},
		{"no domain", "postmaster", true, "postmaster"},
		{"only a plus", "+@example.org", true, "+@example.org"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct strbuf out = STRBUF_INIT;

		greylist_normalize_sender(rows[i].sender, rows[i].normalize, &out);
		EXPECT_STR(rows[i].label, strbuf_cstr(&out), rows[i].want);
		strbuf_free(&out);
	}
}

static void
test_greylist_keys_carry_the_prefix_and_a_lowercase_recipient(void **state)
{
	struct config cfg;
	struct strbuf key = STRBUF_INIT;

	(void)state;
	config_defaults(&cfg);
	greylist_triplet_key(&cfg, "192.0.2.0/24", "a@x.org", "Bob@Y.org", &key);
	EXPECT_STR("triplet", strbuf_cstr(&key), "mxg:gl:t:192.0.2.0/24|a@x.org|bob@y.org");
	strbuf_reset(&key);
	greylist_client_key(&cfg, "2001:db8::/64", &key);
	EXPECT_STR("client", strbuf_cstr(&key), "mxg:gl:c:2001:db8::/64");
	strbuf_free(&key);
	config_release(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greylist_client_net_masks_to_the_configured_prefix),
		cmocka_unit_test(test_greylist_sender_normal_form),
		cmocka_unit_test(test_greylist_keys_carry_the_prefix_and_a_lowercase_recipient),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
