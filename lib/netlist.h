/*
 * netlist.h - lists of client networks (CIDRs) and of domains, as
 * operators write them in config: "192.0.2.0/24 2001:db8::/32 10.1.2.3",
 * "example.org, lists.example.net".
 *
 * netlist_parse(text, &list, err)
 *	Addresses and CIDRs separated by spaces or commas; a bare address is
 *	a /32 or /128. 0, or MXG_EINVAL naming the bad item. Caller frees
 *	with netlist_free (NULL is a no-op). An empty or NULL text is an
 *	empty list.
 * netlist_contains(list, msg)
 *	True when the message's client address is inside one of the nets.
 * domainlist_parse(text, &list) / domainlist_matches(list, domain)
 *	A domain matches an entry equal to it or to one of its parents
 *	("example.org" covers "mail.example.org"); case-insensitive.
 * rcptlist_parse(text) / rcptlist_matches(list, rcpt) / rcptlist_free
 *	Recipients as skip lists name them: "user@domain" (that address),
 *	"user@" (that local part at any domain) or "domain" (the domain
 *	and its subdomains); case-insensitive. Never fails: a NULL or
 *	empty text is an empty list.
 * netlist_text_with_file(text, path, out, err)
 *	Appends to out the inline text and then the entries of the file at
 *	path (NULL: none; one entry a line, # starts a comment), line ends
 *	turned into spaces, ready for the parsers above: the form of every
 *	`skip_*` + `skip_*_file` pair of keys. 0, or MXG_EIO with err
 *	naming the file when it cannot be read.
 *
 * Lists are immutable once built: threads share them freely.
 */
#ifndef MXG_NETLIST_H
#define MXG_NETLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "message.h"

struct netlist;
struct domainlist;

int netlist_parse(const char *text, struct netlist **list, char *err);
bool netlist_contains(const struct netlist *list, const struct message *msg);
void netlist_free(struct netlist *list);

struct domainlist *domainlist_parse(const char *text);
bool domainlist_matches(const struct domainlist *list, const char *domain);
void domainlist_free(struct domainlist *list);

struct rcptlist;

struct rcptlist *rcptlist_parse(const char *text);
bool rcptlist_matches(const struct rcptlist *list, const char *rcpt);
void rcptlist_free(struct rcptlist *list);

struct strbuf;

int netlist_text_with_file(const char *text, const char *path,
    struct strbuf *out, char *err);

#endif
