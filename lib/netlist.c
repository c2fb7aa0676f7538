#include "netlist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mxg.h"
#include "strbuf.h"

struct net {
	int family;
	unsigned char addr[16];
	int prefix;
};

struct netlist {
	struct net *nets;
	size_t count;
};

struct domainlist {
	char **domains;
	size_t count;
};

static char *
next_item(char **cursor)
{
	return strtok_r(NULL, " ,\t", cursor);
}

int
netlist_parse(const char *text, struct netlist **out, char *err)
{
	struct netlist *list = mxg_calloc(1, sizeof(*list));
	char *copy = mxg_strdup(text ? text : ""), *cursor = NULL;
	char *item = strtok_r(copy, " ,\t", &cursor);

	*out = NULL;
	for (; item != NULL; item = next_item(&cursor)) {
		struct net net = {0};
		char *slash = strchr(item, '/');
		int max;

		if (slash != NULL)
			*slash = '\0';
		if (inet_pton(AF_INET, item, net.addr) == 1) {
			net.family = AF_INET;
			max = 32;
		} else if (inet_pton(AF_INET6, item, net.addr) == 1) {
			net.family = AF_INET6;
			max = 128;
		} else {
			if (slash)
				*slash = '/';
			mxg_fail(err, MXG_EINVAL, "'%s' is not an address or "
			    "CIDR", item);
			goto fail;
		}
		net.prefix = max;
		if (slash != NULL) {
			char *end;
			long prefix = strtol(slash + 1, &end, 10);

			if (end == slash + 1 || *end != '\0' || prefix < 0 ||
			    prefix > max) {
				*slash = '/';
				mxg_fail(err, MXG_EINVAL, "'%s': prefix must be "
				    "0-%d", item, max);
				goto fail;
			}
			net.prefix = (int)prefix;
		}
		list->nets = mxg_realloc(list->nets,
		    (list->count + 1) * sizeof(*list->nets));
		list->nets[list->count++] = net;
	}
	free(copy);
	*out = list;
	return MXG_OK;
fail:
	free(copy);
	netlist_free(list);
	return MXG_EINVAL;
}

static bool
prefix_matches(const unsigned char *a, const unsigned char *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool
netlist_contains(const struct netlist *list, const struct message *msg)
{
	if (list == NULL || msg->client_family == 0)
		return false;
	const unsigned char *addr = msg->client_family == AF_INET ?
	    (const unsigned char *)&msg->client_ip4 :
	    (const unsigned char *)&msg->client_ip6;
	for (size_t i = 0; i < list->count; i++)
		if (list->nets[i].family == msg->client_family &&
		    prefix_matches(addr, list->nets[i].addr,
		    list->nets[i].prefix))
			return true;
	return false;
}

void
netlist_free(struct netlist *list)
{
	if (list == NULL)
		return;
	free(list->nets);
	free(list);
}

struct domainlist *
domainlist_parse(const char *text)
{
	struct domainlist *list = mxg_calloc(1, sizeof(*list));
	char *copy = mxg_strdup(text ? text : ""), *cursor = NULL;

	for (char *item = strtok_r(copy, " ,\t", &cursor); item != NULL;
	    item = next_item(&cursor)) {
		size_t len = strlen(item);

		while (len > 0 && item[len - 1] == '.')
			item[--len] = '\0';
		if (*item == '.')	/* ".example.org" means the same */
			item++;
		if (*item == '\0')
			continue;
		list->domains = mxg_realloc(list->domains,
		    (list->count + 1) * sizeof(char *));
		list->domains[list->count++] = mxg_strdup(item);
	}
	free(copy);
	return list;
}

bool
domainlist_matches(const struct domainlist *list, const char *domain)
{
	size_t dlen;

	if (list == NULL || domain == NULL)
		return false;
	dlen = strlen(domain);
	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	for (size_t i = 0; i < list->count; i++) {
		size_t elen = strlen(list->domains[i]);

		if (elen > dlen)
			continue;
		if (strncasecmp(domain + dlen - elen, list->domains[i],
		    elen) == 0 && (elen == dlen || domain[dlen - elen - 1] ==
		    '.'))
			return true;
	}
	return false;
}

void
domainlist_free(struct domainlist *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->count; i++)
		free(list->domains[i]);
	free(list->domains);
	free(list);
}

struct rcptlist {
	char **exact;		/* "user@domain", or "user@" for any domain */
	size_t nexact;
	struct domainlist *domains;
};

struct rcptlist *
rcptlist_parse(const char *text)
{
	struct rcptlist *list = mxg_calloc(1, sizeof(*list));
	struct strbuf domains = STRBUF_INIT;
	char *copy = mxg_strdup(text ? text : ""), *cursor = NULL;

	/* Entries with '@' are addresses (or "user@"), the others domains. */
	for (char *item = strtok_r(copy, " ,\t", &cursor); item != NULL;
	    item = next_item(&cursor)) {
		if (strchr(item, '@') == NULL) {
			strbuf_printf(&domains, " %s", item);
			continue;
		}
		list->exact = mxg_realloc(list->exact,
		    (list->nexact + 1) * sizeof(char *));
		list->exact[list->nexact++] = mxg_strdup(item);
	}
	free(copy);
	list->domains = domainlist_parse(domains.data);
	strbuf_free(&domains);
	return list;
}

bool
rcptlist_matches(const struct rcptlist *list, const char *rcpt)
{
	const char *at;

	if (list == NULL || rcpt == NULL)
		return false;
	at = strrchr(rcpt, '@');
	for (size_t i = 0; i < list->nexact; i++) {
		const char *e = list->exact[i];
		size_t elen = strlen(e);

		if (e[elen - 1] == '@') {	/* "postmaster@": any domain */
			if (at != NULL && (size_t)(at - rcpt) + 1 == elen &&
			    strncasecmp(rcpt, e, elen) == 0)
				return true;
		} else if (strcasecmp(rcpt, e) == 0) {
			return true;
		}
	}
	return at != NULL && domainlist_matches(list->domains, at + 1);
}

void
rcptlist_free(struct rcptlist *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->nexact; i++)
		free(list->exact[i]);
	free(list->exact);
	domainlist_free(list->domains);
	free(list);
}

static void
lines_to_spaces(struct strbuf *sb, size_t from)
{
	for (size_t i = from; i < sb->len; i++)
		if (sb->data[i] == '\n' || sb->data[i] == '\r')
			sb->data[i] = ' ';
}

int
netlist_text_with_file(const char *text, const char *path,
    struct strbuf *out, char *err)
{
	size_t start = out->len;
	char line[1024];
	FILE *fp;

	strbuf_puts(out, text ? text : "");
	if (path != NULL) {
		if ((fp = fopen(path, "r")) == NULL)
			return mxg_fail(err, MXG_EIO, "%s: %s", path,
			    strerror(errno));
		while (fgets(line, sizeof(line), fp) != NULL) {
			char *hash = strchr(line, '#');

			if (hash)
				*hash = '\0';
			strbuf_putc(out, ' ');
			strbuf_puts(out, line);
		}
		fclose(fp);
	}
	strbuf_putc(out, ' ');	/* never NULL data, even for no entries */
	lines_to_spaces(out, start);
	return MXG_OK;
}
