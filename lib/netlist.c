#include "netlist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mxg.h"

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
