/*
 * mxguard - the command line.
 *
 *   mxguard check [-c FILE] [--ip ADDR] [--helo NAME] [--from ADDR]
 *                 [--rcpt ADDR]... [--json] [FILE|-]
 *	Judges one message exactly as the milter would, through the same
 *	engine and stages. Exit 0 for any verdict; 2 for usage or config
 *	errors.
 *   mxguard lint [-c FILE]
 *	Loads the config (and starts every check) and says what is wrong,
 *	with file:line. Exit 0 when it is valid, 2 otherwise.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/config.h"
#include "../lib/content.h"
#include "../lib/rules.h"
#include "../lib/engine.h"
#include "../lib/log.h"
#include "../lib/message.h"
#include "../lib/mxg.h"
#include "../lib/strbuf.h"
#include "greylist.h"
#include "ratelimit.h"
#include "reload.h"

#ifndef MXG_SYSCONFDIR
#define MXG_SYSCONFDIR "/etc/mxguard"
#endif
#define DEFAULT_CONFIG MXG_SYSCONFDIR "/mxguard.conf"
#define EXIT_USAGE 2
/* A message larger than this is refused: an MTA would not pass it. */
#define CHECK_MAX_INPUT (256u * 1024 * 1024)

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: mxguard check [-c FILE] [--ip ADDR] [--helo NAME] "
	    "[--from ADDR]\n"
	    "                     [--rcpt ADDR]... [--json] [FILE|-]\n"
	    "       mxguard lint [-c FILE] [--json] [-v]\n"
	    "       mxguard greylist show|client|list|whitelist|delete|counts "
	    "[options]\n"
	    "       mxguard ratelimit show|top|reset [RULE [VALUE]] [options]\n"
	    "       mxguard reload [-c FILE] [--policy] [--pidfile PATH] "
	    "[--json]\n"
	    "Default config: %s\n", DEFAULT_CONFIG);
}

/* Reads the whole of fp; NULL with errno on failure or over the cap. */
static char *
read_all(FILE *fp, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
		if (sb.len + n > CHECK_MAX_INPUT) {
			strbuf_free(&sb);
			errno = EFBIG;
			return NULL;
		}
		strbuf_append(&sb, buf, n);
	}
	if (ferror(fp)) {
		strbuf_free(&sb);
		return NULL;
	}
	*len = sb.len;
	return strbuf_steal(&sb);
}

/* The milter sees CRLF line ends; a file on disk usually has LF. */
static char *
to_crlf(const char *data, size_t len, size_t *outlen)
{
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			strbuf_putc(&sb, '\r');
		strbuf_putc(&sb, data[i]);
	}
	*outlen = sb.len;
	return strbuf_steal(&sb);
}

static const char *
config_path_or_default(const char *path)
{
	return path ? path : DEFAULT_CONFIG;
}

static int
load_config(const char *path, struct config **cfg)
{
	char err[MXG_ERRLEN];

	if (config_load(config_path_or_default(path), cfg, err) != 0) {
		fprintf(stderr, "mxguard: %s\n", err);
		return -1;
	}
	return 0;
}

static void
print_json(const struct scan *scan)
{
	const struct verdict *v = scan->verdict;
	const struct spf_result *spf = &scan->spf;
	struct strbuf sb = STRBUF_INIT;

	strbuf_puts(&sb, "{\"spf\": ");
	if (spf->code == SPF_RES_NOT_CHECKED) {
		strbuf_puts(&sb, "null");
	} else {
		strbuf_puts(&sb, "{\"result\": ");
		strbuf_json_cstr(&sb, spf_result_name(spf->code));
		strbuf_puts(&sb, ", \"identity\": ");
		strbuf_json_cstr(&sb, spf->identity);
		strbuf_puts(&sb, ", \"domain\": ");
		strbuf_json_cstr(&sb, spf->domain);
		strbuf_puts(&sb, ", \"explanation\": ");
		strbuf_json_cstr(&sb, spf->explanation);
		strbuf_puts(&sb, ", \"comment\": ");
		strbuf_json_cstr(&sb, spf->comment);
		strbuf_puts(&sb, "}");
	}
	strbuf_puts(&sb, ", \"dkim\": [");
	for (size_t i = 0; i < scan->dkim.count; i++) {
		const struct dkim_signature_result *d = &scan->dkim.sigs[i];

		strbuf_puts(&sb, i ? ", {\"result\": " : "{\"result\": ");
		strbuf_json_cstr(&sb, dkim_result_name(d->code));
		strbuf_puts(&sb, ", \"domain\": ");
		strbuf_json_cstr(&sb, d->domain);
		strbuf_puts(&sb, ", \"selector\": ");
		strbuf_json_cstr(&sb, d->selector);
		strbuf_puts(&sb, ", \"algorithm\": ");
		strbuf_json_cstr(&sb, d->algorithm);
		strbuf_puts(&sb, ", \"b\": ");
		strbuf_json_cstr(&sb, d->b);
		strbuf_puts(&sb, ", \"reason\": ");
		strbuf_json_cstr(&sb, d->reason);
		strbuf_putc(&sb, '}');
	}
	strbuf_puts(&sb, "], \"dmarc\": ");
	const struct dmarc_result *dm = &scan->dmarc;
	if (!dm->checked) {
		strbuf_puts(&sb, "null");
	} else {
		strbuf_puts(&sb, "{\"result\": ");
		strbuf_json_cstr(&sb, dmarc_result_name(dm->code));
		strbuf_puts(&sb, ", \"policy\": ");
		strbuf_json_cstr(&sb, dm->policy);
		strbuf_puts(&sb, ", \"disposition\": ");
		strbuf_json_cstr(&sb, dm->disposition ? dm->disposition : "none");
		strbuf_puts(&sb, ", \"domain\": ");
		strbuf_json_cstr(&sb, dm->domain);
		strbuf_puts(&sb, ", \"policy_domain\": ");
		strbuf_json_cstr(&sb, dm->policy_domain);
		strbuf_puts(&sb, ", \"org_domain\": ");
		strbuf_json_cstr(&sb, dm->org_domain);
		strbuf_printf(&sb, ", \"aligned\": {\"spf\": %s, \"dkim\": %s}}",
		    dm->spf_aligned ? "true" : "false",
		    dm->dkim_aligned ? "true" : "false");
	}
	strbuf_puts(&sb, ", \"symbols\": [");
	for (size_t i = 0; i < v->nsymbols; i++) {
		strbuf_puts(&sb, i ? ", {\"name\": " : "{\"name\": ");
		strbuf_json_cstr(&sb, v->symbols[i].name);
		strbuf_printf(&sb, ", \"score\": %.2f, \"detail\": ",
		    v->symbols[i].score);
		strbuf_json_cstr(&sb, v->symbols[i].detail);
		strbuf_putc(&sb, '}');
	}
	strbuf_printf(&sb, "], \"score\": %.2f, \"action\": ", v->score);
	strbuf_json_cstr(&sb, verdict_action_name(v->action));
	strbuf_puts(&sb, ", \"reply\": ");
	strbuf_json_cstr(&sb, v->reply);
	strbuf_puts(&sb, ", \"quarantine\": ");
	strbuf_json_cstr(&sb, v->quarantine);
	strbuf_puts(&sb, ", \"new_subject\": ");
	strbuf_json_cstr(&sb, v->new_subject);
	strbuf_puts(&sb, ", \"headers\": [");
	for (size_t i = 0; i < v->nheaders; i++) {
		strbuf_puts(&sb, i ? ", {\"name\": " : "{\"name\": ");
		strbuf_json_cstr(&sb, v->headers[i].name);
		strbuf_puts(&sb, ", \"value\": ");
		strbuf_json_cstr(&sb, v->headers[i].value);
		strbuf_putc(&sb, '}');
	}
	strbuf_puts(&sb, "], \"refused_recipients\": [");
	for (size_t i = 0; i < scan->nrefused; i++) {
		strbuf_puts(&sb, i ? ", {\"address\": " : "{\"address\": ");
		strbuf_json_cstr(&sb, scan->refused[i].address);
		strbuf_puts(&sb, ", \"reply\": ");
		strbuf_json_cstr(&sb, scan->refused[i].reply);
		strbuf_putc(&sb, '}');
	}
	strbuf_puts(&sb, "], \"removed_headers\": [");
	for (size_t i = 0; i < scan->nremovals; i++) {
		strbuf_puts(&sb, i ? ", {\"name\": " : "{\"name\": ");
		strbuf_json_cstr(&sb, scan->removals[i].name);
		strbuf_printf(&sb, ", \"index\": %d}", scan->removals[i].index);
	}
	strbuf_puts(&sb, "]}\n");
	fwrite(sb.data, 1, sb.len, stdout);
	strbuf_free(&sb);
}

static void
print_text(const struct scan *scan)
{
	const struct verdict *v = scan->verdict;

	if (scan->trusted)
		printf("client: loopback, trusted (no checks run)\n");
	if (scan->spf.code != SPF_RES_NOT_CHECKED)
		printf("spf: %s (%s %s)%s%s\n", spf_result_name(scan->spf.code),
		    scan->spf.identity, scan->spf.domain ? scan->spf.domain :
		    "-", scan->spf.comment ? ": " : "",
		    scan->spf.comment ? scan->spf.comment : "");
	for (size_t i = 0; i < scan->dkim.count; i++)
		printf("dkim: %s (d=%s s=%s %s)%s%s\n",
		    dkim_result_name(scan->dkim.sigs[i].code),
		    scan->dkim.sigs[i].domain, scan->dkim.sigs[i].selector,
		    scan->dkim.sigs[i].algorithm,
		    scan->dkim.sigs[i].reason ? ": " : "",
		    scan->dkim.sigs[i].reason ? scan->dkim.sigs[i].reason : "");
	if (scan->dmarc.checked)
		printf("dmarc: %s (From %s, p=%s, disposition %s)\n",
		    dmarc_result_name(scan->dmarc.code), scan->dmarc.domain,
		    scan->dmarc.policy ? scan->dmarc.policy : "-",
		    scan->dmarc.disposition ? scan->dmarc.disposition : "none");
	if (v->quarantine != NULL)
		printf("quarantine: %s\n", v->quarantine);
	if (v->new_subject != NULL)
		printf("new subject: %s\n", v->new_subject);
	for (size_t i = 0; i < scan->nrefused; i++)
		printf("refused recipient: <%s> %s\n", scan->refused[i].address,
		    scan->refused[i].reply);
	for (size_t i = 0; i < v->nsymbols; i++)
		printf("symbol: %-26s %6.2f  %s\n", v->symbols[i].name,
		    v->symbols[i].score, v->symbols[i].detail ?
		    v->symbols[i].detail : "");
	printf("score: %.2f\naction: %s\n", v->score,
	    verdict_action_name(v->action));
	if (v->reply != NULL)
		printf("reply: %s\n", v->reply);
	for (size_t i = 0; i < v->nheaders; i++)
		printf("add header: %s: %s\n", v->headers[i].name,
		    v->headers[i].value);
	for (size_t i = 0; i < scan->nremovals; i++)
		printf("remove header: %s #%d\n", scan->removals[i].name,
		    scan->removals[i].index);
}

static int
command_check(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"ip", required_argument, NULL, 'i'},
		{"helo", required_argument, NULL, 'H'},
		{"from", required_argument, NULL, 'f'},
		{"rcpt", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *ip = NULL, *helo = NULL, *from = NULL;
	const char **rcpts = NULL;
	size_t nrcpts = 0;
	int json = 0, opt;

	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'i': ip = optarg; break;
		case 'H': helo = optarg; break;
		case 'f': from = optarg; break;
		case 'r':
			rcpts = mxg_realloc(rcpts, (nrcpts + 1) * sizeof(*rcpts));
			rcpts[nrcpts++] = optarg;
			break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); free(rcpts); return 0;
		default: usage(stderr); free(rcpts); return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "mxguard check: one message at a time\n");
		free(rcpts);
		return EXIT_USAGE;
	}
	const char *input = optind < argc ? argv[optind] : "-";

	struct config *cfg;
	if (load_config(config_path, &cfg) < 0) {
		free(rcpts);
		return EXIT_USAGE;
	}
	log_init("mxguard", true, cfg->milter.log_level < LOG_LEVEL_WARNING ?
	    cfg->milter.log_level : LOG_LEVEL_WARNING);

	struct message *msg = message_new(cfg->milter.header_limit,
	    cfg->milter.body_scan_limit);
	int rc = EXIT_USAGE;
	if (ip != NULL && message_set_client(msg, ip, NULL) < 0) {
		fprintf(stderr, "mxguard check: --ip '%s' is not an IPv4 or "
		    "IPv6 address\n", ip);
		goto out;
	}

	FILE *fp = strcmp(input, "-") == 0 ? stdin : fopen(input, "rb");
	if (fp == NULL) {
		fprintf(stderr, "mxguard check: %s: %s\n", input,
		    strerror(errno));
		goto out;
	}
	size_t len, crlf_len;
	char *raw = read_all(fp, &len);
	int read_errno = errno;
	if (fp != stdin)
		fclose(fp);
	if (raw == NULL) {
		fprintf(stderr, "mxguard check: %s: %s\n", input,
		    read_errno == EFBIG ? "larger than 256 MB" :
		    strerror(read_errno));
		goto out;
	}
	char *data = to_crlf(raw, len, &crlf_len);
	free(raw);

	char err[MXG_ERRLEN];
	struct engine *engine;
	if (engine_new(cfg, &engine, err) != 0) {
		fprintf(stderr, "mxguard: %s\n", err);
		free(data);
		goto out;
	}

	/* The stages in the order an MTA drives them; a forced outcome ends
	 * the transaction where the milter would end it. */
	struct scan *scan = scan_new(engine, msg);
	message_set_helo(msg, helo);
	bool stop = engine_run_stage(engine, scan, STAGE_HELO);
	if (!stop && from != NULL) {
		message_set_mail_from(msg, from);
		stop = engine_run_stage(engine, scan, STAGE_MAIL);
	}
	for (size_t i = 0; !stop && i < nrcpts; i++) {
		message_add_rcpt(msg, rcpts[i]);
		stop = engine_run_stage(engine, scan, STAGE_RCPT);
	}
	/* Every recipient refused at RCPT TO: an MTA would send no DATA,
	 * and the client sees the last refusal. */
	if (!stop && nrcpts > 0 && msg->nrcpts == 0) {
		const struct rcpt_refusal *r = &scan->refused[scan->nrefused - 1];

		verdict_force_code(scan->verdict, r->reject ? VERDICT_REJECT :
		    VERDICT_TEMPFAIL, r->code, r->enhanced, "%s", r->text);
		stop = true;
	}
	if (!stop) {
		size_t body = message_parse_headers(msg, data, crlf_len);

		stop = engine_run_stage(engine, scan, STAGE_EOH);
		/* In chunks, as an MTA streams it to the milter. */
		for (size_t off = body; !stop && off < crlf_len; off += 65536)
			engine_body(engine, scan, data + off, crlf_len - off <
			    65536 ? crlf_len - off : 65536);
	}
	engine_finish(engine, scan);
	if (json)
		print_json(scan);
	else
		print_text(scan);
	free(data);
	scan_free(scan);
	engine_free(engine);
	rc = 0;
out:
	message_free(msg);
	config_free(cfg);
	free(rcpts);
	return rc;
}

static void
print_diags(const char *kind, const struct rules_diag *d, size_t n, bool json,
    struct strbuf *sb)
{
	for (size_t i = 0; i < n; i++) {
		if (!json) {
			fprintf(stderr, "%s: %s: %s\n", d[i].where, kind,
			    d[i].text);
			continue;
		}
		strbuf_puts(sb, i ? ", {\"where\": " : "{\"where\": ");
		strbuf_json_cstr(sb, d[i].where);
		strbuf_puts(sb, ", \"message\": ");
		strbuf_json_cstr(sb, d[i].text);
		if (d[i].group[0] != '\0') {
			strbuf_puts(sb, ", \"group\": ");
			strbuf_json_cstr(sb, d[i].group);
		}
		strbuf_putc(sb, '}');
	}
}

/* Warnings grouped by kind of construct, with a count each. */
static void
print_warning_groups(const struct rules_report *report)
{
	bool *done = mxg_calloc(report->nwarnings + 1, sizeof(bool));

	for (size_t i = 0; i < report->nwarnings; i++) {
		size_t count = 0;

		if (done[i])
			continue;
		for (size_t k = i; k < report->nwarnings; k++)
			if (!done[k] && strcmp(report->warnings[k].group,
			    report->warnings[i].group) == 0) {
				done[k] = true;
				count++;
			}
		printf("  skipped: %-28s %zu\n", report->warnings[i].group,
		    count);
	}
	free(done);
}

static int
command_lint(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	bool json = false, verbose = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:vh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	struct config *cfg;
	if (load_config(config_path, &cfg) < 0)
		return EXIT_USAGE;
	log_init("mxguard", true, LOG_LEVEL_ERR);

	struct rules_report report;
	memset(&report, 0, sizeof(report));
	if (cfg->rules.enabled) {
		struct rules_options ropt;

		content_rule_options(cfg, &ropt);
		rules_free(rules_load(cfg->rules.files, &ropt, &report));
	}
	char err[MXG_ERRLEN];
	struct engine *engine;
	int rc = 0;
	if (engine_new(cfg, &engine, err) != 0) {
		fprintf(stderr, "mxguard: %s\n", err);
		rules_report_free(&report);
		config_free(cfg);
		return EXIT_USAGE;
	}
	engine_free(engine);
	if (report.nerrors > 0)
		rc = 1;

	if (json) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "{\"config\": ");
		strbuf_json_cstr(&sb, config_path_or_default(config_path));
		strbuf_printf(&sb, ", \"rules_loaded\": %zu, \"rules_skipped\": "
		    "%zu, \"errors\": [", report.loaded, report.skipped);
		print_diags("error", report.errors, report.nerrors, true, &sb);
		strbuf_puts(&sb, "], \"warnings\": [");
		print_diags("warning", report.warnings, report.nwarnings, true,
		    &sb);
		strbuf_puts(&sb, "]}\n");
		fwrite(sb.data, 1, sb.len, stdout);
		strbuf_free(&sb);
	} else {
		print_diags("error", report.errors, report.nerrors, false, NULL);
		if (verbose)
			print_diags("warning", report.warnings,
			    report.nwarnings, false, NULL);
		printf("%s: %s\n", config_path_or_default(config_path),
		    rc == 0 ? "ok" : "errors in rule files");
		if (cfg->rules.enabled) {
			printf("rules: %zu loaded, %zu skipped, %zu errors, "
			    "%zu warnings\n", report.loaded, report.skipped,
			    report.nerrors, report.nwarnings);
			print_warning_groups(&report);
		}
	}
	rules_report_free(&report);
	config_free(cfg);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "check") == 0)
		return command_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "lint") == 0)
		return command_lint(argc - 1, argv + 1);
	if (strcmp(argv[1], "greylist") == 0)
		return command_greylist(argc - 1, argv + 1);
	if (strcmp(argv[1], "ratelimit") == 0)
		return command_ratelimit(argc - 1, argv + 1);
	if (strcmp(argv[1], "reload") == 0)
		return command_reload(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "mxguard: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
