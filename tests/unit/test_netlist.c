/*
 * test_netlist.c - CIDR, domain and recipient lists, and the list files
 * beside them (lib/netlist.h).
 */
#include "unit.h"

#include "../../lib/mxg.h"
#include "../../lib/netlist.h"
#include "../../lib/strbuf.h"

static bool
contains(const char *list_text, const char *addr)
{
	struct netlist *list;
	struct message *msg = message_new(1024, 1024);
	char err[MXG_ERRLEN];
	bool in;

	assert_int_equal(netlist_parse(list_text, &list, err), 0);
	assert_int_equal(message_set_client(msg, addr, NULL), 0);
	in = netlist_contains(list, msg);
	netlist_free(list);
	message_free(msg);
	return in;
}

static void
test_netlist_matches_addresses_inside_their_prefix(void **state)
{
	static const struct {
		const char *label, *list, *addr;
		bool want;
	} rows[] = {
		{"inside /24", "192.0.2.0/24", "192.0.2.77", true},
		{"outside /24", "192.0.2.0/24", "192.0.3.1", false},
		{"bare address is /32", "198.51.100.7", "198.51.100.7", true},
		{"bare address, neighbour", "198.51.100.7", "198.51.100.8", false},
		{"odd prefix /23, upper half", "10.0.2.0/23", "10.0.3.200", true},
		{"odd prefix /23, outside", "10.0.2.0/23", "10.0.4.1", false},
		{"/0 matches every IPv4", "0.0.0.0/0", "203.0.113.9", true},
		{"IPv6 /32", "2001:db8::/32", "2001:db8:ffff::1", true},
		{"IPv6 outside", "2001:db8::/32", "2001:db9::1", false},
		{"IPv4 list, IPv6 client", "192.0.2.0/24", "2001:db8::1", false},
		{"v4-mapped client matches IPv4", "192.0.2.0/24", "::ffff:192.0.2.5", true},
		{"comma and space separated", "10.0.0.0/8, 192.0.2.0/24 ::1", "::1", true},
		{"empty list", "", "192.0.2.1", false},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		EXPECT_INT(rows[i].label, contains(rows[i].list, rows[i].addr),
		    rows[i].want);
}

static void
test_netlist_rejects_bad_items_by_name(void **state)
{
	static const struct {
		const char *label, *list, *named;
	} rows[] = {
		{"not an address", "192.0.2.0/24 mail.example.org", "mail.example.org"},
		{"prefix too long", "192.0.2.0/33", "192.0.2.0/33"},
		{"IPv6 prefix too long", "2001:db8::/129", "2001:db8::/129"},
		{"prefix not a number", "192.0.2.0/x", "192.0.2.0/x"},
		{"empty prefix", "192.0.2.0/", "192.0.2.0/"},
		{"binary", "\x01\xff", "\x01\xff"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct netlist *list = (struct netlist *)1;
		char err[MXG_ERRLEN] = "";

		EXPECT_INT(rows[i].label, netlist_parse(rows[i].list, &list, err),
		    MXG_EINVAL);
		EXPECT_TRUE(rows[i].label, list == NULL);
		EXPECT_TRUE(rows[i].label, strstr(err, rows[i].named) != NULL);
	}
}

static void
test_domainlist_matches_domain_and_its_subdomains(void **state)
{
	static const struct {
		const char *label, *list, *domain;
		bool want;
	} rows[] = {
		{"same", "example.org", "example.org", true},
		{"case-insensitive", "Example.ORG", "mail.EXAMPLE.org", true},
		{"subdomain", "example.org", "a.b.example.org", true},
		{"suffix but not a label", "example.org", "badexample.org", false},
		{"parent is not covered", "mail.example.org", "example.org", false},
		{"trailing dots", "example.org.", "mail.example.org.", true},
		{"leading dot form", ".example.org", "mx.example.org", true},
		{"one of several", "a.test, b.test c.test", "x.b.test", true},
		{"empty list", "", "example.org", false},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct domainlist *list = domainlist_parse(rows[i].list);

		EXPECT_INT(rows[i].label, domainlist_matches(list,
		    rows[i].domain), rows[i].want);
		domainlist_free(list);
	}
	assert_false(domainlist_matches(NULL, "example.org"));
}

static void
test_rcptlist_matches_addresses_local_parts_and_domains(void **state)
{
	static const struct {
		const char *label, *list, *rcpt;
		bool want;
	} rows[] = {
		{"exact address", "abuse@example.org", "abuse@example.org", true},
		{"exact address, any case", "abuse@example.org",
		    "Abuse@EXAMPLE.org", true},
		{"exact address, other domain", "abuse@example.org",
		    "abuse@example.net", false},
		{"local part at any domain", "postmaster@", "postmaster@x.example",
		    true},
		{"local part, any case", "postmaster@", "PostMaster@x.example",
		    true},
		{"local part is whole", "postmaster@", "postmaster2@x.example",
		    false},
		{"local part needs a domain", "postmaster@", "postmaster", false},
		{"domain", "example.org", "bob@example.org", true},
		{"subdomain", "example.org", "bob@mail.example.org", true},
		{"look-alike domain", "example.org", "bob@badexample.org", false},
		{"second entry, comma", "postmaster@, example.org",
		    "bob@example.org", true},
		{"empty list", "", "bob@example.org", false},
		{"NULL list", NULL, "bob@example.org", false},
		{"no domain in the recipient", "example.org", "example.org",
		    false},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct rcptlist *list = rcptlist_parse(rows[i].list);

		EXPECT_INT(rows[i].label, rcptlist_matches(list, rows[i].rcpt),
		    rows[i].want);
		rcptlist_free(list);
	}
	rcptlist_free(NULL);
}

static void
test_netlist_text_with_file_joins_the_key_and_its_file(void **state)
{
	char *dir = unit_tmpdir_new();
	char *path = unit_write_file(dir, "skip.txt", "# networks\n"
	    "192.0.2.0/24   # TEST-NET-1\n\n198.51.100.7\r\n", 54);
	char err[MXG_ERRLEN], missing[600];
	struct strbuf text = STRBUF_INIT;
	struct netlist *list;

	(void)state;
	assert_int_equal(netlist_text_with_file("10.0.0.0/8", path, &text, err),
	    0);
	assert_int_equal(netlist_parse(text.data, &list, err), 0);
	struct message *msg = message_new(1024, 1024);
	static const struct {
		const char *addr;
		bool want;
	} rows[] = {
		{"10.1.2.3", true}, {"192.0.2.9", true}, {"198.51.100.7", true},
		{"198.51.100.8", false},
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		assert_int_equal(message_set_client(msg, rows[i].addr, NULL), 0);
		EXPECT_INT(rows[i].addr, netlist_contains(list, msg),
		    rows[i].want);
	}
	message_free(msg);
	netlist_free(list);

	strbuf_reset(&text);
	assert_int_equal(netlist_text_with_file(NULL, NULL, &text, err), 0);
	EXPECT_TRUE("nothing at all is an empty list", text.data != NULL &&
	    strspn(text.data, " ") == text.len);
	snprintf(missing, sizeof(missing), "%s/none.txt", dir);
	EXPECT_INT("a missing file", netlist_text_with_file("", missing, &text,
	    err), MXG_EIO);
	EXPECT_TRUE("the error names the file", strstr(err, missing) != NULL);
	strbuf_free(&text);
	free(path);
	unit_tmpdir_free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_netlist_matches_addresses_inside_their_prefix),
		cmocka_unit_test(test_netlist_rejects_bad_items_by_name),
		cmocka_unit_test(test_domainlist_matches_domain_and_its_subdomains),
		cmocka_unit_test(test_rcptlist_matches_addresses_local_parts_and_domains),
		cmocka_unit_test(test_netlist_text_with_file_joins_the_key_and_its_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
