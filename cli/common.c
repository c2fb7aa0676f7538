/*
 * common.c - what `mxguard greylist` and `mxguard ratelimit` share, see
 * common.h.
 */
#include "common.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

int
cli_common_option(int opt, struct cli_common *co, void (*usage)(FILE *fp))
{
	switch (opt) {
	case 'c': co->config_path = optarg; return CLI_OPT_NEXT;
	case 'j': co->json = true; return CLI_OPT_NEXT;
	case 'h': usage(stdout); return 0;
	default: usage(stderr); return CLI_EXIT_USAGE;
	}
}

int
cli_usage_error(const char *command, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mxguard %s: ", command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (mxguard %s --help)\n", command);
	return CLI_EXIT_USAGE;
}

int
cli_parse_long(const char *text, long min, long max, long *v)
{
	char *end;
	long n = strtol(text, &end, 10);

	if (*text == '\0' || *end != '\0' || n < min || n > max)
		return -1;
	*v = n;
	return 0;
}

int
cli_config_load(const char *path, struct config **cfg)
{
	char err[MXG_ERRLEN];

	if (config_load(path, cfg, err) != 0) {
		fprintf(stderr, "mxguard: %s\n", err);
		return -1;
	}
	/* Below every level (log.h has no "off"): the pool logs an outage as
	 * a daemon would; the command says it once, for a person. */
	log_init("mxguard", true, (enum log_level)(LOG_LEVEL_ERR - 1));
	return 0;
}

const char *
cli_key_prefix(const struct config *cfg)
{
	return cfg->redis.prefix ? cfg->redis.prefix : "";
}

void
cli_glob_escape(struct strbuf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '*': case '?': case '[': case ']': case '\\':
			strbuf_putc(out, '\\');
			break;
		}
		strbuf_putc(out, *s);
	}
}

int
cli_redis_connect(const struct config *cfg, struct redis_pool **pool)
{
	char err[MXG_ERRLEN];

	if (redis_pool_new(cfg, pool, err) != 0) {
		fprintf(stderr, "mxguard: %s\n", err);
		return -1;
	}
	return 0;
}

void
cli_json_field(struct strbuf *sb, const char *head, const char *value)
{
	strbuf_puts(sb, head);
	strbuf_json_cstr(sb, value);
}

redisReply *
cli_eval(struct redis_pool *pool, const char *script,
    const char *const *keys, const size_t *keylens, size_t nkeys,
    const char *const *args, size_t nargs, char *err)
{
	size_t argc = 3 + nkeys + nargs;
	const char **argv = mxg_calloc(argc, sizeof(*argv));
	size_t *argvlen = mxg_calloc(argc, sizeof(*argvlen));
	char nkeys_text[24];
	redisReply *r;

	snprintf(nkeys_text, sizeof(nkeys_text), "%zu", nkeys);
	argv[0] = "EVAL";
	argv[1] = script;
	argv[2] = nkeys_text;
	for (size_t i = 0; i < 3; i++)
		argvlen[i] = strlen(argv[i]);
	for (size_t i = 0; i < nkeys; i++) {
		argv[3 + i] = keys[i];
		argvlen[3 + i] = keylens ? keylens[i] : strlen(keys[i]);
	}
	for (size_t i = 0; i < nargs; i++) {
		argv[3 + nkeys + i] = args[i];
		argvlen[3 + nkeys + i] = strlen(args[i]);
	}
	r = redis_run_command(pool, argv, argvlen, (int)argc, err);
	free(argv);
	free(argvlen);
	return r;
}

int
cli_scan_keys(struct redis_pool *pool, const char *pattern, cli_scan_fn fn,
    void *arg, char *err)
{
	char cursor[32] = "0";

	do {
		const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT",
		    "1000"};
		redisReply *r = redis_run_command(pool, argv, NULL, 6, err);
		int rc = 0;

		if (r == NULL)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[0]->len >= sizeof(cursor) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			return mxg_fail(err, MXG_EIO, "unexpected reply to "
			    "SCAN");
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
		size_t n = r->element[1]->elements;
		const char **keys = mxg_calloc(n ? n : 1, sizeof(*keys));
		size_t *lens = mxg_calloc(n ? n : 1, sizeof(*lens));
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			const redisReply *e = r->element[1]->element[i];

			if (e->type != REDIS_REPLY_STRING)
				continue;
			keys[k] = e->str;
			lens[k++] = e->len;
		}
		if (k > 0)
			rc = fn(arg, keys, lens, k);
		free(keys);
		free(lens);
		freeReplyObject(r);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	} while (strcmp(cursor, "0") != 0);
	return 0;
}
