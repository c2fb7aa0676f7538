/*
 * libFuzzer target: any byte string as a rule file. It is written to
 * fuzz.cf in a private directory (beside other.cf, so that "include
 * other.cf" has something to read), loaded with rules_load, run over a
 * small fixed message, and everything is freed. It must never crash,
 * hang or leak; errors in the rule file are fine.
 *
 * The message's decoded content is built by hand, so that this target
 * exercises the rule parser and matcher and not lib/mime.c (that has its
 * own target); header decoding and :addr/:name still go through GMime.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/message.h"
#include "../../lib/mime.h"
#include "../../lib/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_message[] =
    "From: \"John Doe\" <john@example.com>\r\n"
    "To: Alice <alice@example.org>, bob@example.net\r\n"
    "Cc: undisclosed-recipients:;\r\n"
    "Subject: =?UTF-8?B?Q2Fmw6kgb2ZmZXI=?= and more\r\n"
    "Received: from a.example by mx.example\r\n"
    "Received: from b.example by mx.example\r\n"
    "X-Folded: first\r\n"
    " second\r\n"
    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hello world, spam spam spam\r\n"
    "--b1\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<p>Hello <a href=\"http://example.com/x\">world</a></p>\r\n"
    "--b1--\r\n";

/* Two parts, as lib/mime.c joins them (one newline between), with
 * addresses, a bare domain and a link for the URI finder. */
static const char fixed_text[] =
    "Hello world, spam spam spam\nmail joe@example.org or example.com/x\n"
    "\n\n\nHello world www.example.net\naaaaaaaaaaaaaaaaaaaaaaaab\n";
static struct mime_span fixed_text_parts[] = {{0, 66}, {67, 56}};
static const char fixed_raw_text[] =
    "Hello world, spam spam spam\n\n"
    "<p>Hello <a href=\"http://example.com/x\">world</a></p>\n";
static struct mime_span fixed_raw_parts[] = {{0, 28}, {29, 54}};
static struct mime_uri fixed_uris[] = {
	{(char *)"http://example.com/x", (char *)"example.com", true},
	{(char *)"http://user@1.2.3.4:80/r?u=http://t.example/a", (char *)"1.2.3.4",
	    true},
	{(char *)"mailto:alice@example.org?subject=x", NULL, true},
};

static char dir[] = "/tmp/mxguard-fuzz-rules-XXXXXX";
static char path[sizeof(dir) + 16], other[sizeof(dir) + 16];
static struct message *msg;
static struct mime_content content;

static void
cleanup(void)
{
	unlink(path);
	unlink(other);
	rmdir(dir);
	message_free(msg);
}

static int
init(void)
{
	FILE *fp;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/fuzz.cf", dir);
	snprintf(other, sizeof(other), "%s/other.cf", dir);
	if ((fp = fopen(other, "w")) == NULL)
		return -1;
	fputs("body __OTHER /Hello/\nmeta OTHER __OTHER && !__NONE\n"
	    "score OTHER 2\nutil_rb_tld com org net example\n"
	    "replace_tag A (?:a|4)\n", fp);
	fclose(fp);
	msg = message_new(64 * 1024, 1024 * 1024);
	message_parse(msg, fixed_message, sizeof(fixed_message) - 1);
	content.text = (char *)fixed_text;
	content.text_len = sizeof(fixed_text) - 1;
	content.text_parts = fixed_text_parts;
	content.ntext_parts = 2;
	content.raw_text = (char *)fixed_raw_text;
	content.raw_text_len = sizeof(fixed_raw_text) - 1;
	content.raw_parts = fixed_raw_parts;
	content.nraw_parts = 2;
	content.uris = fixed_uris;
	content.nuris = sizeof(fixed_uris) / sizeof(fixed_uris[0]);
	content.nparts = 2;
	content.has_text_plain = content.has_html = true;
	atexit(cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = 0;
	struct rules_options opt = {(int)(size % 4), 10000, 1000};
	struct rules_report report;
	struct rules_eval eval;
	struct ruleset *set;
	FILE *fp;

	if (ready == 0)
		ready = init() == 0 ? 1 : -1;
	if (ready < 0)
		return 0;
	if ((fp = fopen(path, "wb")) == NULL)
		return 0;
	if (size > 0 && fwrite(data, 1, size, fp) != size) {
		fclose(fp);
		return 0;
	}
	fclose(fp);

	set = rules_load(path, &opt, &report);
	rules_run(set, msg, &content, &eval);
	/* What the CLI and the milter read of a result. */
	for (size_t i = 0; i < eval.nhits; i++)
		if (eval.hits[i].name == NULL || eval.hits[i].count <= 0)
			abort();
	rules_has(set, "OTHER");
	rules_set_score(set, "OTHER", 0);
	rules_eval_free(&eval);
	rules_free(set);
	rules_report_free(&report);
	return 0;
}
