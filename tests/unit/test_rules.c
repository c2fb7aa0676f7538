/*
 * test_rules.c - lib/rules.h: SpamAssassin's rule language read into a
 * ruleset, and the ruleset run over a message.
 *
 * Every case writes its rule files into a fresh mkdtemp directory (setup)
 * that teardown removes. The message is parsed with message_parse; its
 * decoded content (struct mime_content) is built by hand so that what the
 * rules see does not depend on lib/mime.c. RFC 2047 decoding of header
 * values goes through mime_decode_header, as rules_run does.
 *
 * The standard message, as body rules see it: the Subject line, then its
 * one paragraph, line breaks made spaces (SpamAssassin's body text):
 *
 *	"Caf\xc3\xa9 offer\n"
 *	"Hello world Second line Price #1 deal spam spam spam "
 */
#include "unit.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "../../lib/message.h"
#include "../../lib/mime.h"
#include "../../lib/mxg.h"
#include "../../lib/rules.h"
#include "../../lib/sa_eval.h"

#define KB 1024
#define LINE_MAX_BYTES 65534	/* the longest rule line, newline excluded */

static const char std_message[] =
    "From: \"John Doe\" <john@example.com>\n"
    "To: Alice <alice@example.org>\n"
    "Cc: bob@example.net\n"
    "Subject: =?UTF-8?B?Q2Fmw6kgb2ZmZXI=?=\n"
    "Received: from a.example by mx.example\n"
    "Received: from b.example by mx.example\n"
    "X-Folded: first\n"
    " second\n"
    "Message-ID: <1@example.com>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Hello world\n"
    "Second line\n"
    "Price #1 deal\n"
    "spam spam spam\n";

/* What mime_parse would give for std_message, plus a little HTML. */
static const char std_text[] =
    "Hello world\nSecond line\nPrice #1 deal\nspam spam spam\n";
static const char std_raw_text[] =
    "<p>Hello <b>world</b></p>\nSecond line\nPrice #1 deal\n"
    "spam spam spam\n";
static struct mime_uri std_uris[] = {
	{(char *)"http://example.com/x", (char *)"example.com", true},
	{(char *)"https://short.example/abc", (char *)"short.example", true},
};

static const struct rules_options default_opt = {0, 100000, 10000};

struct fixture {
	char *dir;
	char *path;		/* the last rules.cf written */
	struct ruleset *set;
	struct rules_report report;
	struct rules_eval eval;
	struct message *msg;
	struct mime_content content;	/* by hand: nothing to free */
	void *owned[32];	/* freed by teardown, failed or not */
	size_t nowned;
};

static void
use_message(struct fixture *f, const char *raw)
{
	message_free(f->msg);
	f->msg = message_new(64 * KB, 1024 * KB);
	assert_non_null(f->msg);
	message_parse(f->msg, raw, strlen(raw));
}

static void
use_std_content(struct fixture *f)
{
	memset(&f->content, 0, sizeof(f->content));
	f->content.text = (char *)std_text;
	f->content.text_len = strlen(std_text);
	f->content.raw_text = (char *)std_raw_text;
	f->content.raw_text_len = strlen(std_raw_text);
	f->content.uris = std_uris;
	f->content.nuris = NELEM(std_uris);
	f->content.nparts = 1;
	f->content.has_text_plain = true;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = unit_tmpdir_new();
	use_message(f, std_message);
	use_std_content(f);
	*state = f;
	return 0;
}

static void
reset(struct fixture *f)
{
	rules_eval_free(&f->eval);
	rules_free(f->set);
	f->set = NULL;
	rules_report_free(&f->report);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	reset(f);
	message_free(f->msg);
	free(f->path);
	for (size_t i = 0; i < f->nowned; i++)
		free(f->owned[i]);
	/* the one subdirectory a test makes */
	char *sub = malloc(strlen(f->dir) + 8);
	assert_non_null(sub);
	sprintf(sub, "%s/sub", f->dir);
	unit_tmpdir_free(sub);
	unit_tmpdir_free(f->dir);
	free(f);
	return 0;
}

/* p, freed by teardown. */
static void *
keep(struct fixture *f, void *p)
{
	assert_non_null(p);
	assert_true(f->nowned < NELEM(f->owned));
	f->owned[f->nowned++] = p;
	return p;
}

/* dir/name, freed by teardown. */
static char *
path_in(struct fixture *f, const char *name)
{
	char *p = keep(f, malloc(strlen(f->dir) + strlen(name) + 2));

	sprintf(p, "%s/%s", f->dir, name);
	return p;
}

static void
put_file(const struct fixture *f, const char *name, const char *text)
{
	free(unit_write_file(f->dir, name, text, strlen(text)));
}

static void
load_files(struct fixture *f, const char *files,
    const struct rules_options *opt)
{
	reset(f);
	f->set = rules_load(files, opt != NULL ? opt : &default_opt,
	    &f->report);
	assert_non_null(f->set);
}

/* Writes len bytes as dir/rules.cf and loads that file alone. */
static void
load_bytes(struct fixture *f, const char *text, size_t len,
    const struct rules_options *opt)
{
	free(f->path);
	f->path = unit_write_file(f->dir, "rules.cf", text, len);
	load_files(f, f->path, opt);
}

static void
load_text(struct fixture *f, const char *text)
{
	load_bytes(f, text, strlen(text), NULL);
}

static void
run(struct fixture *f)
{
	rules_eval_free(&f->eval);
	rules_run(f->set, f->msg, &f->content, &f->eval);
}

static const struct rules_hit *
find_hit(const char *label, const struct rules_eval *e, const char *name)
{
	const struct rules_hit *found = NULL;

	for (size_t i = 0; i < e->nhits; i++) {
		if (strcmp(e->hits[i].name, name) != 0)
			continue;
		if (found != NULL)
			fail_msg("%s: %s reported twice", label, name);
		found = &e->hits[i];
	}
	return found;
}

static int
hit_count(const char *label, const struct fixture *f, const char *name)
{
	const struct rules_hit *h = find_hit(label, &f->eval, name);

	return h != NULL ? h->count : 0;
}

/* Fails with the first diagnostic when there is any. */
static void
expect_no_diags(const char *label, const struct fixture *f)
{
	if (f->report.nerrors > 0)
		fail_msg("%s: unexpected error %s: %s", label,
		    f->report.errors[0].where, f->report.errors[0].text);
	if (f->report.nwarnings > 0)
		fail_msg("%s: unexpected warning %s: %s (%s)", label,
		    f->report.warnings[0].where, f->report.warnings[0].text,
		    f->report.warnings[0].group);
}

static void
expect_diag(const char *label, const struct rules_diag *d, const char *file,
    int line, const char *text)
{
	char where[4200];

	snprintf(where, sizeof(where), "%s:%d", file, line);
	EXPECT_STR(label, d->where, where);
	if (text != NULL)
		EXPECT_STR(label, d->text, text);
}

static size_t
group_count(const struct rules_report *r, const char *group)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nwarnings; i++)
		n += strcmp(r->warnings[i].group, group) == 0;
	return n;
}

/* Each name in the space-separated list hits (want) or does not. */
static void
expect_hits(const char *label, const struct fixture *f, const char *names,
    bool want)
{
	char buf[512], *cursor = NULL;

	snprintf(buf, sizeof(buf), "%s", names ? names : "");
	for (char *n = strtok_r(buf, " ", &cursor); n != NULL;
	    n = strtok_r(NULL, " ", &cursor)) {
		char what[600];

		snprintf(what, sizeof(what), "%s: %s %s", label, n,
		    want ? "hits" : "does not hit");
		EXPECT_INT(what, hit_count(label, f, n) > 0, want);
	}
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Loads path in a child process that gets `seconds` to finish, so that a
 * loader that hangs or runs away fails its test instead of the suite.
 * Returns the number of errors (capped at 250), or -1 when the child had
 * to be stopped.
 */
static int
load_in_child(const char *path, int seconds)
{
	pid_t pid;
	int status = 0;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rules_report report;

		alarm((unsigned int)seconds);
		rules_free(rules_load(path, &default_opt, &report));
		_exit(report.nerrors > 250 ? 250 : (int)report.nerrors);
	}
	for (int i = 0; i < seconds * 20; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		usleep(100 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* ------------------------------------------------------- constructs */

struct construct_row {
	const char *label;
	const char *rules;
	int want;		/* hit count of R, 0: not reported */
};

static const struct construct_row construct_rows[] = {
	/* header =~ and !~ */
	{"header =~ hits", "header R Subject =~ /offer/\n", 1},
	{"header =~ misses", "header R Subject =~ /nomatch/\n", 0},
	{"header !~ hits when the regex misses", "header R Subject !~ /nomatch/\n", 1},
	{"header !~ misses when the regex hits", "header R Subject !~ /offer/\n", 0},
	{"header name is case-insensitive", "header R subject =~ /offer/\n", 1},

	/* decoded vs :raw */
	{"decoded: RFC 2047 Subject", "header R Subject =~ /^Caf\xc3\xa9 offer$/\n", 1},
	{"decoded: no encoded-word left", "header R Subject =~ /=\\?UTF-8\\?/\n", 0},
	{":raw: the encoded-word as sent, blank after the colon kept", "header R Subject:raw =~ /^ =\\?UTF-8\\?B\\?Q2Fmw6kgb2ZmZXI=\\?=\\n\\z/\n", 1},
	{":raw: not decoded", "header R Subject:raw =~ /offer/\n", 0},
	{"decoded: folding removed", "header R X-Folded =~ /^first second$/\n", 1},
	{":raw: folding kept, LF line ends", "header R X-Folded:raw =~ /^ first\\n second\\n\\z/\n", 1},
	{"decoded: ends with a newline", "header R Subject =~ /offer\\n\\z/\n", 1},
	{"decoded: no blank at the start", "header R Subject =~ /^ /\n", 0},
	{"name with a trailing colon", "header R Subject: =~ /offer/\n", 1},
	{"no blanks around =~", "header R Subject=~/offer/\n", 1},

	/* :addr, :name, chained */
	{":addr", "header R From:addr =~ /^john\\@example\\.com$/\n", 1},
	{":addr has no display name", "header R From:addr =~ /John/\n", 0},
	{":addr of a name-addr To", "header R To:addr =~ /^alice\\@example\\.org$/\n", 1},
	{":addr of a bare address", "header R Cc:addr =~ /^bob\\@example\\.net$/\n", 1},
	{":name", "header R From:name =~ /^John Doe$/\n", 1},
	{":name has no address", "header R From:name =~ /example/\n", 0},
	{":name:raw chained: the phrase as parsed, blank kept", "header R From:name:raw =~ /^John Doe $/\n", 1},
	{":addr:raw chained", "header R From:addr:raw =~ /^john\\@example\\.com$/\n", 1},

	/* exists:, ALL, ToCc, if-unset, repeated headers */
	{"exists: present", "header R exists:X-Folded\n", 1},
	{"exists: case-insensitive", "header R exists:x-folded\n", 1},
	{"exists: absent", "header R exists:X-Absent\n", 0},
	{"ALL: name and value of each header", "header R ALL =~ /^Message-ID: <1\\@example\\.com>$/m\n", 1},
	{"ALL: decoded", "header R ALL =~ /^Subject: Caf\xc3\xa9 offer$/m\n", 1},
	{"ALL:raw", "header R ALL:raw =~ /^Subject: =\\?UTF-8\\?B\\?/m\n", 1},
	{"ALL: not a body line", "header R ALL =~ /Hello world/\n", 0},
	{"ToCc: To", "header R ToCc =~ /alice\\@example\\.org/\n", 1},
	{"ToCc: Cc", "header R ToCc =~ /bob\\@example\\.net/\n", 1},
	{"ToCc: not From", "header R ToCc =~ /john/\n", 0},
	{"if-unset: absent header takes the text", "header R X-Absent =~ /^UNSET$/ [if-unset: UNSET]\n", 1},
	{"if-unset: present header keeps its value", "header R Subject =~ /UNSET/ [if-unset: UNSET]\n", 0},
	{"if-unset with !~", "header R X-Absent !~ /UNSET/ [if-unset: UNSET]\n", 0},
	{"repeated header: values joined", "header R Received =~ /a\\.example by mx\\.example\\nfrom b\\.example/\n", 1},
	{"repeated header: second value, m flag", "header R Received =~ /^from b\\.example/m\n", 1},
	{"repeated header: not multiline without m", "header R Received =~ /^from b\\.example/\n", 0},

	/* body */
	{"body", "body R /Hello world/\n", 1},
	{"body misses", "body R /Goodbye/\n", 0},
	{"body starts with the Subject line", "body R /^Caf\xc3\xa9 offer$/\n", 1},
	{"body: a paragraph is one line", "body R /^Hello world Second line Price \\#1 deal spam spam spam $/\n", 1},
	{"body: a line break is a space", "body R /world Second/\n", 1},
	{"body: ^ only where the paragraph starts", "body R /^Second line/\n", 0},
	{"body: no implicit m flag", "body R /line$/\n", 0},
	{"body: the Subject line is a line of its own", "body R /offer Hello/\n", 0},
	{"body: no HTML tags", "body R /<b>/\n", 0},
	{"body: no headers", "body R /Message-ID/\n", 0},
	{"body: one hit without multiple", "body R /spam/\n", 1},

	/* rawbody, full, uri */
	{"rawbody: HTML tags visible", "rawbody R /<b>world<\\/b>/\n", 1},
	{"rawbody: no Subject line", "rawbody R /offer/\n", 0},
	{"rawbody: ^ and $ at each line with m", "rawbody R /^Second line$/m\n", 1},
	{"rawbody: no implicit m flag", "rawbody R /^Second line$/\n", 0},
	{"rawbody: line breaks kept", "rawbody R /<\\/p>\\nSecond line\\n/\n", 1},
	{"full: raw header", "full R /^Subject: =\\?UTF-8\\?B\\?Q2Fmw6kgb2ZmZXI=\\?=$/m\n", 1},
	{"full: raw folded header", "full R /X-Folded: first\\n second/\n", 1},
	{"full: LF line ends, as SpamAssassin reads a message", "full R /\\r/\n", 0},
	{"full: raw body", "full R /Price \\#1 deal/\n", 1},
	{"full: not multiline without m", "full R /^Hello/\n", 0},
	{"full: m flag", "full R /^Hello world$/m\n", 1},
	{"uri", "uri R /^https:\\/\\/short\\.example\\/abc$/\n", 1},
	{"uri misses", "uri R /nomatch/\n", 0},
	{"uri: anchored to each URI", "uri R /^http:\\/\\/example\\.com\\/x$/\n", 1},
	{"uri: one hit without multiple", "uri R /example/\n", 1},
	{"uri: no body text", "uri R /Hello/\n", 0},

	/* flags */
	{"flag i", "body R /HELLO WORLD/i\n", 1},
	{"without flag i", "body R /HELLO WORLD/\n", 0},
	{"flag x", "body R /Hel lo \\s wor ld/x\n", 1},
	{"without flag x", "body R /Hel lo/\n", 0},
	{"flag m on a header", "header R Received =~ /^from b/m\n", 1},
	{"flags ixs", "body R /hello . WORLD/ixs\n", 1},

	/* delimiters */
	{"m{}", "body R m{Hello world}\n", 1},
	{"m{} with flag", "body R m{HELLO}i\n", 1},
	{"m() with a group inside", "body R m(Hello (world))\n", 1},
	{"m<>", "body R m<Hello>\n", 1},
	{"m[]", "body R m[Hello]\n", 1},
	{"m!! with flag", "body R m!hello world!i\n", 1},
	{"m|| with slashes inside", "uri R m|^http://example\\.com/x$|\n", 1},
	{"m,,", "body R m,Second line,\n", 1},
	{"m{} on a header", "header R Subject =~ m{offer}\n", 1},
	{"escaped delimiter inside //", "uri R /^https:\\/\\/short/\n", 1},

	/* comments */
	{"\\# is a literal #", "body R /Price \\#1 deal/\n", 1},
	{"# after the regex starts a comment", "body R /Hello/ # a comment with /slashes/\n", 1},
	{"# line is a comment", "# body R /Hello/\nbody R /nomatch/\n", 0},
	{"indented comment", "   # a comment\nbody R /Hello/\n", 1},
	{"blank lines", "\n\n   \n\tbody R /Hello/\n\n", 1},
	{"CRLF line ends", "body R /^Hello world Second/\r\n", 1},
	{"no newline at the end", "body R /Hello/", 1},

	/* redefinition and tflags */
	{"a later definition replaces the earlier", "body R /nomatch/\nbody R /Hello/\n", 1},
	{"a later definition of another type", "body R /Hello/\nheader R Subject =~ /nomatch/\n", 0},
	{"tflags multiple counts every match", "body R /spam/\ntflags R multiple\n", 3},
	{"tflags multiple maxhits=2", "body R /spam/\ntflags R multiple maxhits=2\n", 2},
	{"tflags before the rule", "tflags R multiple\nbody R /spam/\n", 3},
	{"tflags nice and others kept, ignored", "body R /spam/\ntflags R nice net learn noautolearn\n", 1},
	{"a tflags line replaces the earlier one", "body R /spam/\ntflags R multiple\ntflags R nice\n", 1},
	{"maxhits without multiple: one hit", "body R /spam/\ntflags R maxhits=2\n", 1},
	{"header multiple", "header R Received =~ /mx/\ntflags R multiple\n", 2},
	{"header multiple maxhits=1", "header R Received =~ /mx/\ntflags R multiple maxhits=1\n", 1},
	{"body nosubject leaves the Subject line out", "body R /offer/\ntflags R nosubject\n", 0},
	{"body nosubject, the text still seen", "body R /Hello/\ntflags R nosubject\n", 1},
	{"rawbody multiple", "rawbody R /spam/\ntflags R multiple\n", 3},
	{"full multiple", "full R /spam/\ntflags R multiple\n", 3},
	{"uri multiple counts each URI", "uri R /example/\ntflags R multiple\n", 2},
};

static void
test_rules_every_construct_hits_and_misses(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(construct_rows); i++) {
		const struct construct_row *r = &construct_rows[i];

		load_text(f, r->rules);
		expect_no_diags(r->label, f);
		run(f);
		EXPECT_INT(r->label, hit_count(r->label, f, "R"), r->want);
		EXPECT_INT(r->label, f->eval.limit_hits, 0);
		EXPECT_INT(r->label, f->eval.nhits, r->want > 0);
	}
}

/* A multipart message: full rules see each part's own MIME headers; body
 * rules see only the decoded text. */
static void
test_rules_full_sees_mime_part_headers(void **state)
{
	static const char raw[] =
	    "From: a@example.com\n"
	    "Subject: parts\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/alternative; boundary=\"b1\"\n"
	    "\n"
	    "--b1\n"
	    "Content-Type: text/plain; charset=us-ascii\n"
	    "\n"
	    "plain part\n"
	    "--b1\n"
	    "Content-Type: text/html; charset=iso-8859-1\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "<p>caf=E9</p>\n"
	    "--b1--\n";
	static const char rules[] =
	    "full HTML_PART /^Content-Type: text\\/html; charset=iso-8859-1$/m\n"
	    "full QP_PART /^Content-Transfer-Encoding: quoted-printable$/m\n"
	    "full QP_RAW /caf=E9/\n"
	    "body BODY_PART_HDR /Content-Type/\n"
	    "body BODY_TEXT /^plain part$/\n"
	    "rawbody RAW_PART_HDR /Content-Transfer-Encoding/\n";
	struct fixture *f = *state;

	/* two parts: a blank line between them in the body text */
	static struct mime_span text_parts[] = {{0, 11}, {12, 6}};
	static struct mime_span raw_parts[] = {{0, 11}, {12, 13}};

	use_message(f, raw);
	memset(&f->content, 0, sizeof(f->content));
	f->content.text = (char *)"plain part\n\ncaf\xc3\xa9\n";
	f->content.text_len = strlen(f->content.text);
	f->content.text_parts = text_parts;
	f->content.ntext_parts = NELEM(text_parts);
	f->content.raw_text = (char *)"plain part\n\n<p>caf\xc3\xa9</p>\n";
	f->content.raw_text_len = strlen(f->content.raw_text);
	f->content.raw_parts = raw_parts;
	f->content.nraw_parts = NELEM(raw_parts);
	load_text(f, rules);
	expect_no_diags("multipart", f);
	EXPECT_INT("multipart: loaded", f->report.loaded, 6);
	run(f);
	expect_hits("multipart", f, "HTML_PART QP_PART QP_RAW BODY_TEXT", true);
	expect_hits("multipart", f, "BODY_PART_HDR RAW_PART_HDR", false);
	EXPECT_INT("multipart: hits", f->eval.nhits, 4);
}

/* ------------------------------------------------------------- meta */

/* Sub-rules over the standard message: __HELLO 1, __NONE 0, __LINE 1,
 * __SPAM 3 (multiple), __SUBJ 1. */
static const char meta_base[] =
    "body __HELLO /Hello/\n"
    "body __NONE /nomatch/\n"
    "body __LINE /line/\n"
    "body __SPAM /spam/\n"
    "tflags __SPAM multiple\n"
    "header __SUBJ Subject =~ /offer/\n";

static void
test_rules_meta_operators(void **state)
{
	static const struct {
		const char *label;
		const char *expr;
		bool want;
	} rows[] = {
		{"&& both hit", "__HELLO && __LINE", true},
		{"&& one misses", "__HELLO && __NONE", false},
		{"|| one hits", "__NONE || __LINE", true},
		{"|| none hits", "__NONE || __NONE", false},
		{"! of a miss", "!__NONE", true},
		{"! of a hit", "!__HELLO", false},
		{"!!", "!!__HELLO", true},
		{"+ adds hit counts", "__HELLO + __LINE + __NONE == 2", true},
		{"+ over three", "(__HELLO + __LINE + __SUBJ) >= 3", true},
		{"- subtracts", "__SPAM - __HELLO == 2", true},
		{"* multiplies", "__SPAM * 2 == 6", true},
		{"/ divides", "__SPAM / 3 == 1", true},
		{"/ by zero is no hit", "__SPAM / __NONE", false},
		{"< true", "__SPAM < 4", true},
		{"< false", "__SPAM < 3", false},
		{"> true", "__SPAM > 2", true},
		{"> false", "__SPAM > 3", false},
		{"<= true", "__SPAM <= 3", true},
		{"<= false", "__SPAM <= 2", false},
		{">= true", "__SPAM >= 3", true},
		{">= false", "__SPAM >= 4", false},
		{"== true", "__SPAM == 3", true},
		{"== false", "__SPAM == 2", false},
		{"!= true", "__SPAM != 2", true},
		{"!= false", "__SPAM != 3", false},
		{"* before +", "2 + 3 * 4 == 14", true},
		{"parentheses", "(2 + 3) * 4 == 20", true},
		{"- is left-associative", "10 - 4 - 3 == 3", true},
		{"/ is left-associative", "12 / 2 / 3 == 2", true},
		{"&& before ||", "__HELLO || __NONE && __NONE", true},
		{"parentheses around ||", "(__HELLO || __NONE) && __NONE", false},
		{"! before &&", "!__NONE && __HELLO", true},
		{"! of parentheses", "!(__HELLO && __NONE)", true},
		{"comparison before &&", "__SPAM > 2 && __HELLO", true},
		{"< before ==", "__SPAM > 2 == 1", true},
		{"unary minus", "-__HELLO + 2 == 1", true},
		{"decimal numbers", "__SPAM * 0.5 == 1.5", true},
		{"a number alone", "1", true},
		{"zero alone", "0", false},
		{"no blanks", "__HELLO&&!__NONE", true},
		{"nested parentheses", "((__HELLO) && ((__LINE || __NONE)))", true},
		{"negative value is a hit (true in Perl)", "__NONE - 1", true},
		{"&& gives its right operand", "(__HELLO && __SPAM) == 3", true},
		{"|| gives its left operand", "(__SPAM || __HELLO) == 3", true},
		{"|| gives the right one when the left is 0", "(__NONE || __SPAM) == 3", true},
		{"&& gives its left operand when it is 0", "(__NONE && __SPAM) == 0", true},
		{"a fraction is a hit", "__HELLO / 2", true},
		{"unknown rule is 0", "__NOPE", false},
		{"! unknown rule", "!__NOPE", true},
		{"unknown rule in arithmetic", "__NOPE + 1 == 1", true},
		{"header sub-rule", "__SUBJ && __HELLO", true},
	};
	struct fixture *f = *state;
	char text[1024];

	for (size_t i = 0; i < NELEM(rows); i++) {
		snprintf(text, sizeof(text), "%smeta R %s\n", meta_base,
		    rows[i].expr);
		load_text(f, text);
		expect_no_diags(rows[i].label, f);
		run(f);
		EXPECT_INT(rows[i].label, hit_count(rows[i].label, f, "R") > 0,
		    rows[i].want);
		EXPECT_INT(rows[i].label, f->eval.nhits, rows[i].want);
	}
}

static void
test_rules_meta_over_metas_loops_and_unknowns(void **state)
{
	static const char rules[] =
	    "body __HELLO /Hello/\n"
	    "body __NONE /nomatch/\n"
	    /* a meta over a meta defined after it */
	    "meta TOP __MID && !__NONE\n"
	    "meta __MID __HELLO && __LOW\n"
	    "meta __LOW __HELLO\n"
	    /* three levels, each negating */
	    "meta NEG3 !__NEG2\n"
	    "meta __NEG2 !__NEG1\n"
	    "meta __NEG1 !__NONE\n"
	    /* loops: no hang, each counts 0 */
	    "meta LOOP_A LOOP_B\n"
	    "meta LOOP_B LOOP_A\n"
	    "meta LOOP_SELF LOOP_SELF\n"
	    "meta ABOVE_LOOP LOOP_A || LOOP_B\n"
	    /* unknown names */
	    "meta UNKNOWN __NO_SUCH_RULE\n"
	    "meta NOT_UNKNOWN !__NO_SUCH_RULE\n"
	    /* a meta over a scored rule that is reported too */
	    "body SCORED /world/\n"
	    "meta OVER_SCORED SCORED && __HELLO\n"
	    /* a meta over an eval: test SpamAssassin runs: unknown, so
	     * neither the meta nor its negation hits */
	    "body __EVAL eval:check_foo()\n"
	    "meta OVER_EVAL __EVAL\n"
	    "meta NOT_EVAL !__EVAL\n"
	    /* a meta over a rule with an error: 0 */
	    "body __BROKEN /a(/\n"
	    "meta OVER_BROKEN __BROKEN || __NONE\n";
	struct fixture *f = *state;
	double t0;

	load_text(f, rules);
	EXPECT_INT("metas: errors", f->report.nerrors, 1);
	EXPECT_INT("metas: warnings", f->report.nwarnings, 1);
	EXPECT_INT("metas: eval warning", group_count(&f->report, "eval: test"), 1);
	t0 = now_seconds();
	run(f);
	EXPECT_TRUE("metas: no hang", now_seconds() - t0 < 1.0);
	expect_hits("metas", f, "TOP NEG3 NOT_UNKNOWN SCORED OVER_SCORED", true);
	expect_hits("metas", f, "LOOP_A LOOP_B LOOP_SELF ABOVE_LOOP UNKNOWN "
	    "OVER_EVAL NOT_EVAL OVER_BROKEN", false);
	EXPECT_INT("metas: hits", f->eval.nhits, 5);
}

/* ------------------------------------------------------------ scores */

static const char score_rules[] =
    "body PLAIN /Hello/\n"
    "body T_TEST /Hello/\n"
    "body __SUB /Hello/\n"
    "score __SUB 5\n"
    "body ONE /Hello/\n"
    "score ONE 2.5\n"
    "body FOUR /Hello/\n"
    "score FOUR 1 2 3 4\n"
    "body ZERO /Hello/\n"
    "score ZERO 0\n"
    "body NEG /Hello/\n"
    "score NEG -1.5\n"
    "tflags NEG nice\n"
    "score EARLY 3\n"
    "body EARLY /Hello/\n"
    "body TWICE /Hello/\n"
    "score TWICE 1\n"
    "score TWICE 4\n"
    "body DESC /Hello/\n"
    "describe DESC Says hello, in 2 words\n"
    "meta META4 __SUB && FOUR\n"
    "score META4 0.5 0.25 2 8\n"
    "body T_SCORED /Hello/\n"
    "score T_SCORED 1.5\n"
    "body MISS /nomatch/\n"
    "score MISS 9\n"
    "body NICE_DEFAULT /Hello/\n"
    "tflags NICE_DEFAULT nice\n";

static void
test_rules_scores_and_score_sets(void **state)
{
	struct fixture *f = *state;

	for (int set = 0; set < 4; set++) {
		struct rules_options opt = default_opt;
		char label[64];

		opt.score_set = set;
		snprintf(label, sizeof(label), "score set %d", set);
		load_bytes(f, score_rules, strlen(score_rules), &opt);
		expect_no_diags(label, f);
		EXPECT_INT(label, f->report.loaded, 14);
		run(f);

		static const struct {
			const char *name;
			double score[4];
		} want[] = {
			{"PLAIN", {1.0, 1.0, 1.0, 1.0}},
			{"T_TEST", {0.01, 0.01, 0.01, 0.01}},
			{"ONE", {2.5, 2.5, 2.5, 2.5}},
			{"FOUR", {1, 2, 3, 4}},
			{"NEG", {-1.5, -1.5, -1.5, -1.5}},
			{"EARLY", {3, 3, 3, 3}},
			{"TWICE", {4, 4, 4, 4}},
			{"DESC", {1.0, 1.0, 1.0, 1.0}},
			{"META4", {0.5, 0.25, 2, 8}},
			{"T_SCORED", {1.5, 1.5, 1.5, 1.5}},
			/* No score line, tflags nice: SpamAssassin's -1. */
			{"NICE_DEFAULT", {-1.0, -1.0, -1.0, -1.0}},
		};
		for (size_t i = 0; i < NELEM(want); i++) {
			const struct rules_hit *h = find_hit(label, &f->eval,
			    want[i].name);
			char what[128];

			snprintf(what, sizeof(what), "%s: %s", label,
			    want[i].name);
			EXPECT_TRUE(what, h != NULL);
			EXPECT_DOUBLE(what, h->score, want[i].score[set]);
			EXPECT_INT(what, h->count, 1);
			if (strcmp(want[i].name, "DESC") == 0)
				EXPECT_STR(what, h->description,
				    "Says hello, in 2 words");
			else
				EXPECT_STR(what, h->description, NULL);
		}
		/* __ names are never symbols; score 0 disables. */
		expect_hits(label, f, "__SUB ZERO MISS", false);
		EXPECT_INT(label, f->eval.nhits, NELEM(want));
	}
}

static void
test_rules_has_and_set_score(void **state)
{
	struct fixture *f = *state;
	const struct rules_hit *h;

	load_text(f, score_rules);
	expect_no_diags("has", f);
	EXPECT_INT("has PLAIN", rules_has(f->set, "PLAIN"), true);
	EXPECT_INT("has a meta", rules_has(f->set, "META4"), true);
	EXPECT_INT("has a sub-rule", rules_has(f->set, "__SUB"), true);
	EXPECT_INT("has a score-0 rule", rules_has(f->set, "ZERO"), true);
	EXPECT_INT("has no unknown", rules_has(f->set, "NO_SUCH_RULE"), false);
	EXPECT_INT("names are case-sensitive", rules_has(f->set, "plain"), false);
	EXPECT_INT("has no empty name", rules_has(f->set, ""), false);

	rules_set_score(f->set, "PLAIN", 6.5);
	rules_set_score(f->set, "ONE", 0);		/* disables */
	rules_set_score(f->set, "ZERO", 2);		/* enables */
	rules_set_score(f->set, "FOUR", -3);		/* overrides all sets */
	rules_set_score(f->set, "__SUB", 7);		/* still not a symbol */
	rules_set_score(f->set, "NO_SUCH_RULE", 3);	/* no effect */
	EXPECT_INT("set_score adds no rule", rules_has(f->set, "NO_SUCH_RULE"),
	    false);
	run(f);
	h = find_hit("set_score", &f->eval, "PLAIN");
	EXPECT_TRUE("set_score PLAIN", h != NULL);
	EXPECT_DOUBLE("set_score PLAIN", h->score, 6.5);
	h = find_hit("set_score", &f->eval, "ZERO");
	EXPECT_TRUE("set_score ZERO", h != NULL);
	EXPECT_DOUBLE("set_score ZERO", h->score, 2);
	h = find_hit("set_score", &f->eval, "FOUR");
	EXPECT_TRUE("set_score FOUR", h != NULL);
	EXPECT_DOUBLE("set_score FOUR", h->score, -3);
	expect_hits("set_score", f, "ONE __SUB NO_SUCH_RULE", false);
	/* META4 still sees FOUR and __SUB. */
	expect_hits("set_score", f, "META4", true);
	EXPECT_INT("set_score: hits", f->eval.nhits, 11);
}

/* ------------------------------------------------------- if / ifplugin */

struct block_row {
	const char *label;
	const char *text;
	const char *hit;	/* names that hit */
	const char *miss;	/* names that do not */
	size_t loaded, skipped, nwarnings;
	const char *warning_group;	/* of every warning */
	int error_line;		/* 0: no error */
	const char *error;
};

/* Conditions answer as SpamAssassin 4.0.1 with the plugins Debian loads:
 * URIDNSBL, DKIM, BodyEval, FreeMail... yes; TextCat, ASN... no. */
static const struct block_row block_rows[] = {
	{"ifplugin of a plugin SpamAssassin loads: read",
	    "ifplugin Mail::SpamAssassin::Plugin::URIDNSBL\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"ifplugin with the short name",
	    "ifplugin FreeMail\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"ifplugin of a plugin it does not load: skipped",
	    "ifplugin Mail::SpamAssassin::Plugin::TextCat\nbody OUT /Hello/\nendif\nbody AFTER /Hello/\n",
	    "AFTER", "OUT", 1, 1, 1, "false if block", 0, NULL},
	{"loadplugin makes ifplugin true",
	    "loadplugin Mail::SpamAssassin::Plugin::TextCat\nifplugin Mail::SpamAssassin::Plugin::TextCat\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"renamed plugin: Dmarc is DMARC",
	    "ifplugin Mail::SpamAssassin::Plugin::Dmarc\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if (version >= 3.4): read",
	    "if (version >= 3.004000)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if (version < 4.0): skipped",
	    "if (version < 4.000000)\nbody OUT /Hello/\nendif\n",
	    "", "OUT", 0, 1, 1, "false if block", 0, NULL},
	{"if can() of a 4.0 feature: read",
	    "if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if can() of an unknown feature: skipped",
	    "if can(Mail::SpamAssassin::Conf::feature_from_the_future)\nbody OUT /Hello/\nendif\n",
	    "", "OUT", 0, 1, 1, "false if block", 0, NULL},
	{"if can() of a loaded plugin's method: read",
	    "if can(Mail::SpamAssassin::Plugin::BodyEval::has_check_body_length)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if can() of a plugin not loaded: skipped",
	    "if can(Mail::SpamAssassin::Plugin::ASN::has_check_asn)\nbody OUT /Hello/\nendif\n",
	    "", "OUT", 0, 1, 1, "false if block", 0, NULL},
	{"if plugin() of a loaded plugin: read",
	    "if plugin(Mail::SpamAssassin::Plugin::DKIM)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if !plugin() of a loaded plugin: skipped",
	    "if !plugin(Mail::SpamAssassin::Plugin::DKIM)\nbody OUT /Hello/\nmeta OUT2 OUT\nendif\nbody AFTER /Hello/\n",
	    "AFTER", "OUT OUT2", 1, 2, 1, "false if block", 0, NULL},
	{"if !plugin() of a plugin not loaded: read",
	    "if !plugin(Mail::SpamAssassin::Plugin::TextCat)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if ! (version): skipped",
	    "if ! (version >= 3.004000)\nbody OUT /Hello/\nendif\n",
	    "", "OUT", 0, 1, 1, "false if block", 0, NULL},
	{"if !(!plugin()) of a loaded plugin: read",
	    "if !(!plugin(Mail::SpamAssassin::Plugin::DKIM))\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"&& and || with perl_version",
	    "if (version >= 4.0 && plugin(Mail::SpamAssassin::Plugin::TextCat)) || perl_version >= 5.010\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"a condition it cannot read skips the block",
	    "if frobnicate(x)\nbody OUT /Hello/\nendif\nbody AFTER /Hello/\n",
	    "AFTER", "OUT", 1, 1, 1, "unreadable if", 0, NULL},
	{"else of a read block is skipped",
	    "ifplugin URIDNSBL\nbody A /Hello/\nelse\nbody B /Hello/\nendif\nbody C /Hello/\n",
	    "A C", "B", 2, 1, 1, "else branch", 0, NULL},
	{"else of a skipped block is read",
	    "ifplugin TextCat\nbody A /Hello/\nelse\nbody B /Hello/\nendif\nbody C /Hello/\n",
	    "B C", "A", 2, 1, 1, "false if block", 0, NULL},
	{"nested: false inside read",
	    "ifplugin URIDNSBL\nbody A /Hello/\nifplugin TextCat\nbody B /Hello/\nendif\nbody C /Hello/\nendif\n",
	    "A C", "B", 2, 1, 1, "false if block", 0, NULL},
	{"nested: read inside false, with else, all skipped",
	    "ifplugin TextCat\nifplugin URIDNSBL\nbody A /Hello/\nelse\nbody B /Hello/\nendif\nbody C /Hello/\nendif\nbody D /Hello/\n",
	    "D", "A B C", 1, 3, 1, "false if block", 0, NULL},
	{"nested: read inside read",
	    "ifplugin URIDNSBL\nifplugin DKIM\nbody A /Hello/\nendif\nbody B /Hello/\nendif\n",
	    "A B", "", 2, 0, 0, NULL, 0, NULL},
	{"nested: else inside an else that is read",
	    "ifplugin TextCat\nbody A /Hello/\nelse\nifplugin URIDNSBL\nbody B /Hello/\nelse\nbody C /Hello/\nendif\nendif\n",
	    "B", "A C", 1, 2, 2, NULL, 0, NULL},
	{"score and tflags in a skipped block are ignored",
	    "body R /Hello/\nifplugin TextCat\nscore R 0\ntflags R multiple\nendif\n",
	    "R", "", 1, 0, 1, "false if block", 0, NULL},
	{"endif without if",
	    "body A /Hello/\nendif\nbody B /Hello/\n",
	    "A B", "", 2, 0, 0, NULL, 2, "endif without if"},
	{"else without if",
	    "else\nbody A /Hello/\n",
	    "A", "", 1, 0, 0, NULL, 1, "else without if"},
	{"ifplugin without endif: named at the end of the file",
	    "body A /Hello/\nifplugin URIDNSBL\nbody B /Hello/\n",
	    "A B", "", 2, 0, 0, NULL, 3, "if/ifplugin without endif"},
	{"false if without endif skips to the end of the file",
	    "body A /Hello/\nifplugin TextCat\nbody B /Hello/\n\n",
	    "A", "B", 1, 1, 1, "false if block", 4, "if/ifplugin without endif"},
};

static void
test_rules_if_blocks(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(block_rows); i++) {
		const struct block_row *r = &block_rows[i];

		load_text(f, r->text);
		run(f);
		expect_hits(r->label, f, r->hit, true);
		expect_hits(r->label, f, r->miss, false);
		EXPECT_INT(r->label, f->report.loaded, r->loaded);
		EXPECT_INT(r->label, f->report.skipped, r->skipped);
		EXPECT_INT(r->label, f->report.nwarnings, r->nwarnings);
		if (r->warning_group != NULL)
			EXPECT_INT(r->label, group_count(&f->report,
			    r->warning_group), r->nwarnings);
		EXPECT_INT(r->label, f->report.nerrors, r->error_line > 0);
		if (r->error_line > 0)
			expect_diag(r->label, &f->report.errors[0], f->path,
			    r->error_line, r->error);
	}
}

static void
test_rules_skipped_block_does_not_change_a_score(void **state)
{
	struct fixture *f = *state;
	const struct rules_hit *h;

	load_text(f, "body R /spam/\ndescribe R kept\nifplugin TextCat\n"
	    "score R 9\ndescribe R replaced\ntflags R multiple\nendif\n");
	run(f);
	h = find_hit("skipped score", &f->eval, "R");
	EXPECT_TRUE("skipped score", h != NULL);
	EXPECT_DOUBLE("skipped score", h->score, 1.0);
	EXPECT_STR("skipped describe", h->description, "kept");
	EXPECT_INT("skipped tflags", h->count, 1);
}

/* An unclosed block ends with its file: the next file, and the file that
 * included it, are read as usual. */
static void
test_rules_unclosed_block_ends_with_its_file(void **state)
{
	struct fixture *f = *state;
	char *a = path_in(f, "a.cf"), *inc = path_in(f, "inc.cf");
	char files[4200];

	put_file(f, "a.cf", "ifplugin TextCat\nbody A /Hello/\n");
	put_file(f, "b.cf", "body B /Hello/\ninclude inc.cf\nbody C /Hello/\n");
	put_file(f, "inc.cf", "ifplugin AWL\nbody IN /Hello/\n");
	snprintf(files, sizeof(files), "%s/a.cf %s/b.cf", f->dir, f->dir);
	load_files(f, files, NULL);
	run(f);
	expect_hits("unclosed", f, "B C", true);
	expect_hits("unclosed", f, "A IN", false);
	EXPECT_INT("unclosed: errors", f->report.nerrors, 2);
	expect_diag("unclosed a.cf", &f->report.errors[0], a, 2,
	    "if/ifplugin without endif");
	expect_diag("unclosed inc.cf", &f->report.errors[1], inc, 2,
	    "if/ifplugin without endif");
	EXPECT_INT("unclosed: loaded", f->report.loaded, 2);
	EXPECT_INT("unclosed: skipped", f->report.skipped, 2);
}

/*
 * More blocks open than the loader tracks: the deepest one is an error,
 * and once every block is closed the rest of the file, and the next file,
 * load as usual.
 */
static void
test_rules_blocks_nested_too_deep_recover(void **state)
{
	struct fixture *f = *state;
	struct strbuf sb = STRBUF_INIT;
	char files[4200];

	for (int i = 0; i < 64; i++)
		strbuf_puts(&sb, "ifplugin DKIM\n");
	strbuf_puts(&sb, "ifplugin TextCat\n");		/* line 65 */
	strbuf_puts(&sb, "body DEEP /Hello/\n");
	for (int i = 0; i < 65; i++)
		strbuf_puts(&sb, "endif\n");
	strbuf_puts(&sb, "body AFTER /Hello/\n");
	put_file(f, "deep.cf", strbuf_cstr(&sb));
	put_file(f, "next.cf", "body NEXT /Hello/\n");
	strbuf_free(&sb);
	snprintf(files, sizeof(files), "%s/deep.cf %s/next.cf", f->dir, f->dir);
	load_files(f, files, NULL);
	run(f);
	EXPECT_TRUE("too deep: an error", f->report.nerrors >= 1);
	char *deep = path_in(f, "deep.cf");
	expect_diag("too deep", &f->report.errors[0], deep, 65, NULL);
	expect_hits("too deep", f, "AFTER NEXT", true);
}

/* ------------------------------------------------------------ errors */

struct error_row {
	const char *label;
	const char *line;	/* line 2, between two good rules */
	const char *error;
};

static const struct error_row error_rows[] = {
	/* regexes */
	{"bad regex", "body BAD /a(b/", "body BAD: regex error at offset 3: missing closing parenthesis"},
	{"bad regex in a header rule", "header BAD Subject =~ /[a-/", "header BAD: regex error at offset 3: missing terminating ] for character class"},
	{"bad regex in a uri rule", "uri BAD /*a/", "uri BAD: regex error at offset 0: quantifier does not follow a repeatable item"},
	{"bad regex in a rawbody rule", "rawbody BAD /a{2,1}/", "rawbody BAD: regex error at offset 5: numbers out of order in {} quantifier"},
	{"bad regex in a full rule", "full BAD /\\/", "full BAD: regex error at offset 1: \\ at end of pattern"},
	{"unknown flag", "body BAD /a/q", "body BAD: unknown regex flag 'q'"},
	{"unknown flag after good ones", "body BAD /a/isq", "body BAD: unknown regex flag 'q'"},
	{"unknown flag in a header rule", "header BAD Subject =~ /a/e", "header BAD: unknown regex flag 'e'"},
	{"missing closing /", "body BAD /abc", "body BAD: regex without closing '/'"},
	{"missing closing }", "body BAD m{abc", "body BAD: regex without closing '}'"},
	{"# ends the regex early", "body BAD /Price #1/", "body BAD: regex without closing '/'"},
	{"no delimiter", "body BAD abc", "body BAD: expected /regex/, got 'abc'"},
	{"no regex", "body BAD", "body BAD: expected /regex/, got ''"},
	{"no regex after m", "uri BAD m", "uri BAD: expected /regex/, got 'm'"},

	/* header rules */
	{"header without =~", "header BAD Subject /foo/", "header BAD: expected =~ or !~ after Subject"},
	{"header with =", "header BAD Subject = /foo/", "header BAD: expected =~ or !~ after Subject"},
	{"header with nothing", "header BAD", "header BAD: nothing to test"},
	{"header without regex", "header BAD Subject =~", "header BAD: expected /regex/, got ''"},
	{"unknown header modifier", "header BAD Subject:foo =~ /x/", "header BAD: unknown modifier :foo"},
	{"unknown modifier after a good one", "header BAD From:addr:bar =~ /x/", "header BAD: unknown modifier :bar"},
	{"empty header modifier between two", "header BAD Subject::raw =~ /x/", "header BAD: unknown modifier :"},
	{"bad name in replace_rules", "replace_rules GOOD1 BAD-NAME", "replace_rules: 'BAD-NAME' is not a rule name"},
	{"replace_tag without a value", "replace_tag A", "replace_tag: give a name and a value"},
	{"replace_tag without anything", "replace_tag", "replace_tag: give a name and a value"},
	{"replace_inter without a value", "replace_inter W1", "replace_inter: give a name and a value"},
	{"replace_start without a value", "replace_start", "replace_start: give a value"},
	{"meta: unknown function", "meta BAD frobnicate(GOOD1)", "meta BAD: meta: unknown function 'frobnicate'"},
	{"meta: call without ')'", "meta BAD rules_matching(GOOD*", "meta BAD: meta: missing ')'"},
	{"bad name in mimeheader", "mimeheader BAD-NAME Content-Type =~ /x/", "mimeheader: 'BAD-NAME' is not a rule name"},

	/* names */
	{"bad rule name", "body BAD-NAME /x/", "body: 'BAD-NAME' is not a rule name"},
	{"rule name missing", "body", "body: '' is not a rule name"},
	{"bad name in score", "score BAD.NAME 1", "score: 'BAD.NAME' is not a rule name"},
	{"bad name in describe", "describe BAD:NAME text", "describe: 'BAD:NAME' is not a rule name"},
	{"bad name in meta", "meta BAD$ GOOD1", "meta: 'BAD$' is not a rule name"},

	/* scores */
	{"score with 2 values", "score GOOD1 1 2", "score GOOD1: give 1 or 4 scores, not 2"},
	{"score with 3 values", "score GOOD1 1 2 3", "score GOOD1: give 1 or 4 scores, not 3"},
	{"score without a value", "score GOOD1", "score GOOD1: give 1 or 4 scores, not 0"},
	{"score not a number", "score GOOD1 abc", "score GOOD1: 'abc' is not a number"},
	{"score with a unit", "score GOOD1 1.5x", "score GOOD1: '1.5x' is not a number"},
	{"score out of range", "score GOOD1 1e999", "score GOOD1: '1e999' is not a number"},
	{"one of four scores not a number", "score GOOD1 1 2 x 4", "score GOOD1: 'x' is not a number"},

	/* metas */
	{"meta: unbalanced (", "meta BAD (GOOD1 && GOOD2", "meta BAD: meta: missing ')'"},
	{"meta: unbalanced )", "meta BAD GOOD1 && GOOD2)", "meta BAD: meta: unexpected ')'"},
	{"meta: dangling &&", "meta BAD GOOD1 &&", "meta BAD: meta: unexpected 'end'"},
	{"meta: dangling !", "meta BAD GOOD1 && !", "meta BAD: meta: unexpected 'end'"},
	{"meta: dangling +", "meta BAD GOOD1 +", "meta BAD: meta: unexpected 'end'"},
	{"meta: dangling <", "meta BAD GOOD1 <", "meta BAD: meta: unexpected 'end'"},
	{"meta: leading ||", "meta BAD || GOOD1", "meta BAD: meta: unexpected '|| GOOD1'"},
	{"meta: two names", "meta BAD GOOD1 GOOD2", "meta BAD: meta: unexpected 'GOOD2'"},
	{"meta: single &", "meta BAD GOOD1 & GOOD2", "meta BAD: meta: unexpected '& GOOD2'"},
	{"meta: single =", "meta BAD GOOD1 = 1", "meta BAD: meta: unexpected '= 1'"},
	{"meta: garbage", "meta BAD $x", "meta BAD: meta: unexpected '$x'"},
	{"meta: empty", "meta BAD", "meta BAD: meta: unexpected 'end'"},
	{"meta: empty parentheses", "meta BAD ()", "meta BAD: meta: unexpected ')'"},

	/* blocks */
	{"endif without if", "endif", "endif without if"},
	{"else without if", "else", "else without if"},
};

static void
test_rules_errors_name_file_and_line(void **state)
{
	struct fixture *f = *state;
	char text[1024];

	for (size_t i = 0; i < NELEM(error_rows); i++) {
		const struct error_row *r = &error_rows[i];
		const struct rules_hit *h;

		snprintf(text, sizeof(text),
		    "body GOOD1 /Hello/\n%s\nbody GOOD2 /world/\n", r->line);
		load_text(f, text);
		EXPECT_INT(r->label, f->report.nerrors, 1);
		expect_diag(r->label, &f->report.errors[0], f->path, 2,
		    r->error);
		EXPECT_INT(r->label, f->report.nwarnings, 0);
		EXPECT_INT(r->label, f->report.loaded, 2);
		EXPECT_INT(r->label, f->report.skipped, 0);
		run(f);
		EXPECT_INT(r->label, f->eval.nhits, 2);
		/* a score line with an error leaves the score alone */
		h = find_hit(r->label, &f->eval, "GOOD1");
		EXPECT_TRUE(r->label, h != NULL);
		EXPECT_DOUBLE(r->label, h->score, 1.0);
		EXPECT_TRUE(r->label, find_hit(r->label, &f->eval, "GOOD2"));
		EXPECT_INT(r->label, rules_has(f->set, "BAD-NAME"), false);
	}
}

static void
test_rules_limits_on_names_and_nesting(void **state)
{
	struct fixture *f = *state;
	char name[200], text[1024];

	/* names of 128 characters load; 129 do not */
	memset(name, 'N', 128);
	name[128] = '\0';
	snprintf(text, sizeof(text), "body %s /Hello/\n", name);
	load_text(f, text);
	expect_no_diags("128-character name", f);
	EXPECT_INT("128-character name", rules_has(f->set, name), true);
	strcat(name, "N");
	snprintf(text, sizeof(text), "body %s /Hello/\n", name);
	load_text(f, text);
	EXPECT_INT("129-character name", f->report.nerrors, 1);
	expect_diag("129-character name", &f->report.errors[0], f->path, 1,
	    NULL);
	EXPECT_INT("129-character name", f->report.loaded, 0);

	/* meta parentheses: 10 deep load, 100 deep are an error */
	strcpy(text, "body __A /Hello/\nmeta R ");
	for (int i = 0; i < 10; i++)
		strcat(text, "(");
	strcat(text, "__A");
	for (int i = 0; i < 10; i++)
		strcat(text, ")");
	strcat(text, "\n");
	load_text(f, text);
	expect_no_diags("meta 10 deep", f);
	run(f);
	EXPECT_INT("meta 10 deep", hit_count("meta 10 deep", f, "R"), 1);

	strcpy(text, "body __A /Hello/\nmeta R ");
	for (int i = 0; i < 100; i++)
		strcat(text, "(");
	strcat(text, "__A");
	for (int i = 0; i < 100; i++)
		strcat(text, ")");
	strcat(text, "\n");
	load_text(f, text);
	EXPECT_INT("meta 100 deep", f->report.nerrors, 1);
	expect_diag("meta 100 deep", &f->report.errors[0], f->path, 2,
	    "meta R: meta: expression nested too deep");
	EXPECT_INT("meta 100 deep", f->report.loaded, 1);

	/* 200 '!' are as deep */
	strcpy(text, "body __A /Hello/\nmeta R ");
	for (int i = 0; i < 200; i++)
		strcat(text, "!");
	strcat(text, "__A\n");
	load_text(f, text);
	EXPECT_INT("200 !", f->report.nerrors, 1);
	expect_diag("200 !", &f->report.errors[0], f->path, 2,
	    "meta R: meta: expression nested too deep");
}

/* Lines up to the limit load; a longer one is an error on its own line,
 * and the lines after it keep their numbers. */
static void
test_rules_line_longer_than_the_limit(void **state)
{
	struct fixture *f = *state;
	struct strbuf sb = STRBUF_INIT;
	const struct rules_hit *h;
	size_t start;

	strbuf_puts(&sb, "body A /Hello/\n");
	start = sb.len;
	strbuf_puts(&sb, "describe A ");
	while (sb.len - start < LINE_MAX_BYTES)
		strbuf_putc(&sb, 'd');
	strbuf_putc(&sb, '\n');			/* line 2: at the limit */
	start = sb.len;
	strbuf_puts(&sb, "body LONG /");
	while (sb.len - start < 70000)
		strbuf_putc(&sb, 'x');
	strbuf_puts(&sb, "/\n");			/* line 3: over */
	start = sb.len;
	strbuf_puts(&sb, "body LONG2 /");
	while (sb.len - start < LINE_MAX_BYTES)
		strbuf_putc(&sb, 'y');
	strbuf_puts(&sb, "/\n");			/* line 4: one over */
	strbuf_puts(&sb, "body B /world/\n");	/* line 5 */
	strbuf_puts(&sb, "body BAD /x/q\n");		/* line 6 */
	load_bytes(f, sb.data, sb.len, NULL);
	strbuf_free(&sb);

	EXPECT_INT("long lines: errors", f->report.nerrors, 3);
	expect_diag("long line 3", &f->report.errors[0], f->path, 3,
	    "line longer than 65534 bytes");
	expect_diag("long line 4", &f->report.errors[1], f->path, 4,
	    "line longer than 65534 bytes");
	expect_diag("line after", &f->report.errors[2], f->path, 6,
	    "body BAD: unknown regex flag 'q'");
	EXPECT_INT("long lines: loaded", f->report.loaded, 2);
	run(f);
	expect_hits("long lines", f, "A B", true);
	expect_hits("long lines", f, "LONG LONG2", false);
	h = find_hit("long lines", &f->eval, "A");
	EXPECT_TRUE("line at the limit", h != NULL &&
	    h->description != NULL &&
	    strlen(h->description) == LINE_MAX_BYTES - strlen("describe A "));
}

/* ------------------------------------------------- NUL bytes, garbage */

static void
test_rules_nul_bytes_are_errors(void **state)
{
	static const struct {
		const char *label;
		const char *bytes;
		size_t len;
		const char *miss;	/* rule on the NUL line */
	} rows[] = {
		{"NUL inside a regex", "body NUL1 /He\0llo/\n", 19, "NUL1"},
		{"NUL after a whole rule", "body NUL2 /Hello/\0 junk\n", 24, "NUL2"},
		{"NUL only", "\0\0\0\0\n", 5, ""},
		{"NUL at the start of a rule", "\0body NUL3 /Hello/\n", 19, "NUL3"},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(rows); i++) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_puts(&sb, "body A /Hello/\n");
		strbuf_append(&sb, rows[i].bytes, rows[i].len);
		strbuf_puts(&sb, "body B /world/\n");
		load_bytes(f, sb.data, sb.len, NULL);
		strbuf_free(&sb);
		EXPECT_INT(rows[i].label, f->report.nerrors, 1);
		if (f->report.nerrors > 0)
			expect_diag(rows[i].label, &f->report.errors[0],
			    f->path, 2, NULL);
		run(f);
		expect_hits(rows[i].label, f, "A B", true);
		expect_hits(rows[i].label, f, rows[i].miss, false);
	}
}

/*
 * A NUL byte early in a line longer than the buffer: the line must not
 * be read as two lines (the second part loading as a rule of its own).
 */
static void
test_rules_nul_in_a_long_line_hides_no_rule(void **state)
{
	struct fixture *f = *state;
	struct strbuf sb = STRBUF_INIT;
	size_t start;

	strbuf_puts(&sb, "body A /Hello/\n");
	start = sb.len;
	strbuf_append(&sb, "body X /x/\0", 11);
	while (sb.len - start < LINE_MAX_BYTES + 1)	/* one buffer full */
		strbuf_putc(&sb, 'p');
	strbuf_puts(&sb, "body SMUGGLED /Hello/\n");	/* still line 2 */
	strbuf_puts(&sb, "body BAD /x/q\n");		/* line 3 */
	load_bytes(f, sb.data, sb.len, NULL);
	strbuf_free(&sb);
	run(f);
	expect_hits("NUL long line", f, "A", true);
	expect_hits("NUL long line", f, "SMUGGLED X", false);
	EXPECT_TRUE("NUL long line: errors", f->report.nerrors >= 2);
	if (f->report.nerrors >= 2) {
		expect_diag("NUL long line", &f->report.errors[0], f->path, 2,
		    NULL);
		expect_diag("line after", &f->report.errors[
		    f->report.nerrors - 1], f->path, 3,
		    "body BAD: unknown regex flag 'q'");
	}
}

static void
test_rules_binary_garbage_does_not_crash(void **state)
{
	struct fixture *f = *state;
	struct strbuf sb = STRBUF_INIT;
	uint32_t x = 12345;
	char prefix[4200];

	strbuf_puts(&sb, "body A /Hello/\n");
	for (int i = 0; i < 16384; i++) {
		x = x * 1103515245u + 12345u;
		char c = (char)(x >> 16);
		/* keep some structure: words and lines, then raw bytes */
		if (i % 97 == 0)
			c = '\n';
		else if (i % 13 == 0)
			c = ' ';
		strbuf_putc(&sb, c);
	}
	strbuf_puts(&sb, "\nbody B /world/\n");
	load_bytes(f, sb.data, sb.len, NULL);
	strbuf_free(&sb);

	snprintf(prefix, sizeof(prefix), "%s:", f->path);
	EXPECT_TRUE("garbage: errors or warnings",
	    f->report.nerrors + f->report.nwarnings > 0);
	for (size_t i = 0; i < f->report.nerrors + f->report.nwarnings; i++) {
		const struct rules_diag *d = i < f->report.nerrors ?
		    &f->report.errors[i] :
		    &f->report.warnings[i - f->report.nerrors];

		EXPECT_MEM("garbage: where names the file", d->where,
		    strnlen(d->where, strlen(prefix)), prefix, strlen(prefix));
		for (const char *p = d->text; *p; p++)
			EXPECT_TRUE("garbage: printable text",
			    *p >= 32 && *p < 127);
	}
	run(f);
	expect_hits("garbage", f, "A B", true);
}

/* A directory is not a rule file: saying nothing would run without
 * rules. */
static void
test_rules_directory_is_an_error(void **state)
{
	struct fixture *f = *state;
	char want[4200];

	load_files(f, f->dir, NULL);
	EXPECT_INT("directory: errors", f->report.nerrors, 1);
	snprintf(want, sizeof(want), "%s:", f->dir);
	if (f->report.nerrors > 0)
		EXPECT_MEM("directory: where", f->report.errors[0].where,
		    strnlen(f->report.errors[0].where, strlen(want)), want,
		    strlen(want));
}

/* ---------------------------------------------- warnings and counts */

static void
test_rules_warnings_grouped_with_counts(void **state)
{
	static const char rules[] =
	    "body A /Hello/\n"					/* 1 */
	    "header EV1 eval:check_for_foo()\n"			/* 2 */
	    "body EV2 eval:check_bar('x', 2)\n"			/* 3 */
	    "lang de describe A Hallo\n"			/* 4 */
	    "priority A 100\n"					/* 5 */
	    "priority EV1 -100\n"				/* 6 */
	    "reuse A\n"						/* 7 */
	    "meta M A && !EV1\n"				/* 8 */
	    "score EV1 2\n"					/* 9 */
	    "describe EV2 an eval test\n";			/* 10 */
	static const struct {
		int line;
		const char *text;
		const char *group;
	} want[] = {
		{2, "header EV1: eval: tests are not supported", "eval: test"},
		{3, "body EV2: eval: tests are not supported", "eval: test"},
		{4, "lang lines are skipped", "lang"},
		{5, "'priority' is not supported; line skipped", "directive priority"},
		{6, "'priority' is not supported; line skipped", "directive priority"},
		{7, "'reuse' is not supported; line skipped", "directive reuse"},
	};
	struct fixture *f = *state;

	load_text(f, rules);
	EXPECT_INT("warnings: errors", f->report.nerrors, 0);
	EXPECT_INT("warnings: count", f->report.nwarnings, NELEM(want));
	for (size_t i = 0; i < NELEM(want) && i < f->report.nwarnings; i++) {
		expect_diag(want[i].text, &f->report.warnings[i], f->path,
		    want[i].line, want[i].text);
		EXPECT_STR(want[i].text, f->report.warnings[i].group,
		    want[i].group);
	}
	EXPECT_INT("group eval", group_count(&f->report, "eval: test"), 2);
	EXPECT_INT("group lang", group_count(&f->report, "lang"), 1);
	EXPECT_INT("group priority",
	    group_count(&f->report, "directive priority"), 2);
	EXPECT_INT("group reuse", group_count(&f->report, "directive reuse"),
	    1);
	EXPECT_INT("warnings: loaded", f->report.loaded, 2);
	EXPECT_INT("warnings: skipped", f->report.skipped, 2);
	run(f);
	/* EV1 scores 2: SpamAssassin runs it, its result is unknown here,
	 * so M (A && !EV1) is not known to hit */
	expect_hits("warnings", f, "A", true);
	expect_hits("warnings", f, "M EV1 EV2", false);
	EXPECT_INT("warnings: hits", f->eval.nhits, 1);
}

static void
test_rules_loaded_and_skipped_counts(void **state)
{
	static const char rules[] =
	    "body R1 /Hello/\n"
	    "header R2 Subject =~ /offer/\n"
	    "meta R3 R1 && R2\n"
	    "body __SUB /Hello/\n"
	    "header R5 exists:Subject\n"
	    "uri R6 /example/\n"
	    "rawbody R7 /<b>/\n"
	    "full R8 /Received/\n"
	    "body BROKEN /x(/\n"			/* error */
	    "body EVAL eval:foo()\n"			/* skipped */
	    "score ONLY 3\n"				/* no test: neither */
	    "describe ONLY x\n"
	    "ifplugin TextCat\n"
	    "body IN_SKIPPED /x/\n"			/* skipped */
	    "meta M_SKIPPED R1\n"			/* skipped */
	    "score R1 5\n"				/* ignored */
	    "endif\n"
	    "lang fr describe R1 x\n"
	    "body R1 /Hello/\n";			/* redefined: counts once */
	struct fixture *f = *state;

	load_text(f, rules);
	EXPECT_INT("counts: loaded", f->report.loaded, 8);
	EXPECT_INT("counts: skipped", f->report.skipped, 3);
	EXPECT_INT("counts: errors", f->report.nerrors, 1);
	EXPECT_INT("counts: warnings", f->report.nwarnings, 3);
	EXPECT_INT("counts: eval", group_count(&f->report, "eval: test"), 1);
	EXPECT_INT("counts: block", group_count(&f->report, "false if block"),
	    1);
	EXPECT_INT("counts: lang", group_count(&f->report, "lang"), 1);
	run(f);
	expect_hits("counts", f, "R1 R2 R3 R5 R6 R7 R8", true);
	EXPECT_INT("counts: hits", f->eval.nhits, 7);
	const struct rules_hit *h = find_hit("counts", &f->eval, "R1");
	EXPECT_TRUE("counts: R1", h != NULL);
	EXPECT_DOUBLE("counts: R1 score", h->score, 1.0);
}

/* ----------------------------------------------- files, globs, include */

static void
test_rules_include_is_relative_to_the_including_file(void **state)
{
	struct fixture *f = *state;
	char *sub = path_in(f, "sub"), *abs = path_in(f, "abs.cf");
	char text[4200];

	assert_int_equal(mkdir(sub, 0700), 0);
	put_file(f, "other.cf", "body B /world/\n");
	put_file(f, "sub/inner.cf", "include leaf.cf\nbody INNER /Second/\n");
	put_file(f, "sub/leaf.cf", "body LEAF /line/\n");
	put_file(f, "abs.cf", "body ABS /deal/\n");
	snprintf(text, sizeof(text), "body A /Hello/\ninclude other.cf\n"
	    "include sub/inner.cf\ninclude %s\nbody C /spam/\n", abs);
	load_text(f, text);
	expect_no_diags("include", f);
	EXPECT_INT("include: loaded", f->report.loaded, 6);
	run(f);
	expect_hits("include", f, "A B INNER LEAF ABS C", true);
}

static void
test_rules_include_of_a_missing_file_is_an_error(void **state)
{
	struct fixture *f = *state;
	const struct rules_diag *d;

	load_text(f, "body A /Hello/\ninclude missing.cf\nbody B /world/\n");
	EXPECT_INT("missing include: errors", f->report.nerrors, 1);
	d = &f->report.errors[0];
	/* Named where the include line is; the text says which file. */
	expect_diag("missing include", d, f->path, 2, NULL);
	EXPECT_TRUE("missing include: text names the file",
	    strstr(d->text, "missing.cf") != NULL);
	EXPECT_TRUE("missing include: text says why",
	    strstr(d->text, "No such file or directory") != NULL);
	run(f);
	expect_hits("missing include", f, "A B", true);
}

static void
test_rules_include_loop_is_read_once(void **state)
{
	struct fixture *f = *state;
	char *a = path_in(f, "a.cf");
	double t0;

	put_file(f, "a.cf", "body A /Hello/\ninclude b.cf\n");
	put_file(f, "b.cf", "body B /world/\ninclude a.cf\n");
	t0 = now_seconds();
	load_files(f, a, NULL);
	EXPECT_TRUE("include loop: quick", now_seconds() - t0 < 1.0);
	EXPECT_INT("include loop: errors", f->report.nerrors, 1);
	/* Named where the loop closes: b.cf's include of a.cf. */
	char *b = path_in(f, "b.cf");
	expect_diag("include loop", &f->report.errors[0], b, 2, NULL);
	EXPECT_TRUE("include loop: says so",
	    strstr(f->report.errors[0].text, "an include loop") != NULL);
	EXPECT_INT("include loop: loaded", f->report.loaded, 2);
	run(f);
	expect_hits("include loop", f, "A B", true);
}

/* c0 includes c1 ... includes c9: eight levels of include load. */
static void
test_rules_include_depth_limit_is_eight(void **state)
{
	struct fixture *f = *state;
	char name[32], text[128], *c0 = path_in(f, "c0.cf"), *c8;

	for (int i = 0; i <= 9; i++) {
		snprintf(name, sizeof(name), "c%d.cf", i);
		snprintf(text, sizeof(text), "include c%d.cf\nbody L%d /Hello/\n",
		    i + 1, i);
		put_file(f, name, i < 9 ? text : "body L9 /Hello/\n");
	}
	load_files(f, c0, NULL);
	c8 = path_in(f, "c8.cf");
	EXPECT_INT("depth: errors", f->report.nerrors, 1);
	expect_diag("depth", &f->report.errors[0], c8, 1,
	    "include nested deeper than 8");
	run(f);
	expect_hits("depth", f, "L0 L1 L2 L3 L4 L5 L6 L7 L8", true);
	expect_hits("depth", f, "L9", false);
}

/*
 * A file that includes itself on several lines: the depth limit alone
 * lets it be read n^8 times. It must stay quick, with a handful of
 * errors, not one per leaf of that tree.
 */
static void
test_rules_include_loop_with_several_lines_stays_quick(void **state)
{
	struct fixture *f = *state;
	char *self = path_in(f, "self.cf");
	double t0;
	int nerrors;

	put_file(f, "self.cf", "body S /Hello/\ninclude self.cf\n"
	    "include self.cf\ninclude self.cf\ninclude self.cf\n");
	t0 = now_seconds();
	nerrors = load_in_child(self, 5);
	EXPECT_TRUE("self include x4: ends", nerrors >= 0);
	EXPECT_TRUE("self include x4: under a second", now_seconds() - t0 < 1.0);
	EXPECT_TRUE("self include x4: a few errors", nerrors >= 1 &&
	    nerrors <= 16);
}

static void
test_rules_globs_and_file_lists(void **state)
{
	struct fixture *f = *state;
	char files[4200], want[4200];

	put_file(f, "a.cf", "body R /nomatch/\nbody A /Hello/\n");
	put_file(f, "b.cf", "body R /Hello/\nbody B /world/\n");
	put_file(f, "c.txt", "body C /Hello/\n");

	/* a glob loads every match, in sorted order: b.cf redefines R */
	snprintf(files, sizeof(files), "%s/*.cf", f->dir);
	load_files(f, files, NULL);
	expect_no_diags("glob", f);
	EXPECT_INT("glob: loaded", f->report.loaded, 3);
	run(f);
	expect_hits("glob", f, "R A B", true);
	expect_hits("glob", f, "C", false);

	/* space-separated list, in its order */
	snprintf(files, sizeof(files), "%s/b.cf  %s/a.cf\t%s/c.txt", f->dir,
	    f->dir, f->dir);
	load_files(f, files, NULL);
	expect_no_diags("list", f);
	run(f);
	expect_hits("list", f, "A B C", true);
	expect_hits("list", f, "R", false);

	/* a glob that matches nothing: a warning */
	snprintf(files, sizeof(files), "%s/a.cf %s/*.nomatch", f->dir, f->dir);
	load_files(f, files, NULL);
	EXPECT_INT("empty glob: errors", f->report.nerrors, 0);
	EXPECT_INT("empty glob: warnings", f->report.nwarnings, 1);
	snprintf(want, sizeof(want), "%s/*.nomatch", f->dir);
	expect_diag("empty glob", &f->report.warnings[0], want, 0,
	    "no rule file matches");
	EXPECT_STR("empty glob", f->report.warnings[0].group, "empty glob");
	EXPECT_INT("empty glob: loaded", f->report.loaded, 2);

	/* a file named outright that is not there: an error */
	snprintf(files, sizeof(files), "%s/missing.cf %s/a.cf", f->dir,
	    f->dir);
	load_files(f, files, NULL);
	EXPECT_INT("missing file: errors", f->report.nerrors, 1);
	EXPECT_INT("missing file: warnings", f->report.nwarnings, 0);
	snprintf(want, sizeof(want), "%s/missing.cf", f->dir);
	expect_diag("missing file", &f->report.errors[0], want, 0,
	    "no such rule file");
	EXPECT_INT("missing file: loaded", f->report.loaded, 2);

	/* nothing at all */
	load_files(f, "", NULL);
	expect_no_diags("empty list", f);
	EXPECT_INT("empty list: loaded", f->report.loaded, 0);
	run(f);
	EXPECT_INT("empty list: hits", f->eval.nhits, 0);
	load_files(f, NULL, NULL);
	expect_no_diags("NULL list", f);
	EXPECT_INT("NULL list: loaded", f->report.loaded, 0);
}

/* ------------------------------------------------------ match limits */

static void
test_rules_match_limit_stops_catastrophic_backtracking(void **state)
{
	struct fixture *f = *state;
	struct rules_options opt = {0, 5000, 1000};
	char body[200];
	double t0, took;

	/* 40 a's and a b: without a limit, 2^40 steps */
	memset(body, 'a', 40);
	strcpy(body + 40, "b\n");
	use_message(f, "From: a@example.com\n\naaa\n");
	memset(&f->content, 0, sizeof(f->content));
	f->content.text = body;
	f->content.text_len = strlen(body);
	f->content.raw_text = body;
	f->content.raw_text_len = strlen(body);

	static const char rules[] =
	    "body SLOW /(a+)+$/\n"
	    "rawbody SLOW_RAW /(a|aa)+$/\n"
	    "body FAST /aaab/\n"
	    "meta OVER_SLOW SLOW || SLOW_RAW\n";
	load_bytes(f, rules, strlen(rules), &opt);
	expect_no_diags("match limit", f);
	t0 = now_seconds();
	run(f);
	took = now_seconds() - t0;
	EXPECT_TRUE("match limit: quick", took < 1.0);
	EXPECT_INT("match limit: limit_hits", f->eval.limit_hits, 2);
	expect_hits("match limit", f, "SLOW SLOW_RAW OVER_SLOW", false);
	expect_hits("match limit", f, "FAST", true);
	EXPECT_INT("match limit: hits", f->eval.nhits, 1);

	/* the same rule, a string it matches quickly: no limit hit (no
	 * newline: SpamAssassin's body text would end with a space) */
	strcpy(body, "aaaa");
	f->content.text_len = f->content.raw_text_len = strlen(body);
	run(f);
	EXPECT_INT("match limit, short input", f->eval.limit_hits, 0);
	expect_hits("match limit, short input", f, "SLOW SLOW_RAW OVER_SLOW",
	    true);
}

/* ---------------------------------------------------- other messages */

static void
test_rules_empty_message_and_content(void **state)
{
	static const char rules[] =
	    "header H Subject =~ /./\n"
	    "header UNSET X-Absent =~ /^none$/ [if-unset: none]\n"
	    "header EXISTS exists:Subject\n"
	    "header ALLH ALL =~ /./\n"
	    "body B /./\n"
	    "rawbody RB /./\n"
	    "full F /\\S/\n"
	    "uri U /./\n"
	    "meta M !B && !U\n";
	struct fixture *f = *state;

	use_message(f, "");
	memset(&f->content, 0, sizeof(f->content));
	load_text(f, rules);
	expect_no_diags("empty message", f);
	run(f);
	expect_hits("empty message", f, "UNSET M", true);
	expect_hits("empty message", f, "H EXISTS ALLH B RB F U", false);
	EXPECT_INT("empty message: hits", f->eval.nhits, 2);
	EXPECT_INT("empty message: limits", f->eval.limit_hits, 0);
}

/* A run leaves nothing behind: the same ruleset over two messages. */
static void
test_rules_run_twice_gives_each_message_its_own_result(void **state)
{
	struct fixture *f = *state;

	load_text(f, "body R /spam/\ntflags R multiple\n"
	    "header S Subject =~ /offer/\n");
	run(f);
	EXPECT_INT("first run: R", hit_count("first", f, "R"), 3);
	EXPECT_INT("first run: S", hit_count("first", f, "S"), 1);
	use_message(f, "Subject: other\n\nspam\n");
	memset(&f->content, 0, sizeof(f->content));
	f->content.text = (char *)"spam\n";
	f->content.text_len = 5;
	run(f);
	EXPECT_INT("second run: R", hit_count("second", f, "R"), 1);
	EXPECT_INT("second run: S", hit_count("second", f, "S"), 0);
}

struct thread_arg {
	const struct fixture *f;
	int failures;
};

static void *
run_many(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < 200; i++) {
		struct rules_eval e;

		rules_run(a->f->set, a->f->msg, &a->f->content, &e);
		if (e.nhits != 4)
			a->failures++;
		rules_eval_free(&e);
	}
	return NULL;
}

static void
test_rules_run_is_thread_safe(void **state)
{
	struct fixture *f = *state;
	pthread_t t[4];
	struct thread_arg args[4];

	load_text(f, "body R /spam/\ntflags R multiple\n"
	    "header S Subject =~ /offer/\nheader N From:name =~ /John/\n"
	    "uri U /example/\nbody MISS /nomatch/\n");
	expect_no_diags("threads", f);
	for (int i = 0; i < 4; i++) {
		args[i].f = f;
		args[i].failures = 0;
		assert_int_equal(pthread_create(&t[i], NULL, run_many,
		    &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		EXPECT_INT("threads: wrong results", args[i].failures, 0);
	}
}

static void
test_rules_free_null_and_empty_are_no_ops(void **state)
{
	struct rules_report report;
	struct rules_eval eval;

	(void)state;
	rules_free(NULL);
	memset(&report, 0, sizeof(report));
	rules_report_free(&report);
	memset(&eval, 0, sizeof(eval));
	rules_eval_free(&eval);
}

/* ------------------------------------------- more lib/rules.c bugs */

/* Only a test that starts with eval: is an eval: test. */
static void
test_rules_eval_inside_a_regex_is_a_regex(void **state)
{
	struct fixture *f = *state;

	load_text(f, "body R /Hello| eval:x/\nrawbody R2 /Hello eval:|<b>/\n");
	expect_no_diags("' eval:' in a regex", f);
	EXPECT_INT("' eval:' in a regex: loaded", f->report.loaded, 2);
	EXPECT_INT("' eval:' in a regex: skipped", f->report.skipped, 0);
	run(f);
	expect_hits("' eval:' in a regex", f, "R R2", true);
}

/* [if-unset: ...] may hold the regex delimiter (a URL, a path). */
static void
test_rules_if_unset_text_may_hold_the_delimiter(void **state)
{
	struct fixture *f = *state;

	load_text(f, "header R X-Absent =~ /^a\\/b$/ [if-unset: a/b]\n"
	    "header P Subject =~ /^a\\/b$/ [if-unset: a/b]\n"
	    "header U X-Absent =~ m{^http://x/} [if-unset: http://x/}]\n");
	expect_no_diags("if-unset with /", f);
	EXPECT_INT("if-unset with /: loaded", f->report.loaded, 3);
	run(f);
	expect_hits("if-unset with /", f, "R U", true);
	expect_hits("if-unset with /", f, "P", false);
}

/* A score line takes 1 or 4 finite numbers; anything else is an error
 * that leaves the score alone. */
static void
test_rules_score_needs_1_or_4_finite_numbers(void **state)
{
	static const struct {
		const char *label;
		const char *line;
		const char *error;
	} rows[] = {
		{"5 values", "score R 1 2 3 4 5", "score R: give 1 or 4 scores, not 5"},
		{"nan", "score R nan", "score R: 'nan' is not a number"},
		{"inf", "score R inf", "score R: 'inf' is not a number"},
		{"-inf among four", "score R 1 -inf 1 1", "score R: '-inf' is not a number"},
	};
	struct fixture *f = *state;
	char text[256];

	for (size_t i = 0; i < NELEM(rows); i++) {
		const struct rules_hit *h;
		struct rules_options opt = default_opt;

		opt.score_set = 1;
		snprintf(text, sizeof(text), "body R /Hello/\n%s\n",
		    rows[i].line);
		load_bytes(f, text, strlen(text), &opt);
		EXPECT_INT(rows[i].label, f->report.nerrors, 1);
		if (f->report.nerrors > 0)
			expect_diag(rows[i].label, &f->report.errors[0],
			    f->path, 2, rows[i].error);
		run(f);
		h = find_hit(rows[i].label, &f->eval, "R");
		EXPECT_TRUE(rows[i].label, h != NULL);
		EXPECT_DOUBLE(rows[i].label, h->score, 1.0);
	}
}

/*
 * Linear regexes over long text must not stop on a limit: PCRE2's JIT
 * runs on a 32 KiB stack unless given one, and (?:a|b)+ over 10 KB of
 * text needs more (PCRE2_ERROR_JIT_STACKLIMIT: no hit, a limit hit).
 * Body lines are 2 KB at most (SpamAssassin's), so full rules, which see
 * the whole message, carry the test. Same limits as the shipped defaults
 * (match 100000, depth 10000).
 */
static void
test_rules_linear_regex_over_a_long_message_hits(void **state)
{
	static const struct {
		const char *label;
		const char *unit;	/* repeated to 16 KB */
		const char *tail;
	} rows[] = {
		{"(?:a|b)+c over 16 KB", "ab", "c\n"},
		{"(?:\\s|x)*END over 16 KB", " x", "END\n"},
	};
	struct fixture *f = *state;
	char *msg = keep(f, malloc(16 * KB + 64));

	load_text(f, "full ALT /(?:a|b)+c/\nfull WS /(?:\\s|x)*END/\n");
	expect_no_diags("long message", f);
	for (size_t i = 0; i < NELEM(rows); i++) {
		size_t n = 0, u = strlen(rows[i].unit);

		n = (size_t)sprintf(msg, "From: a@example.com\n\n");
		while (n + u <= 16 * KB) {
			memcpy(msg + n, rows[i].unit, u);
			n += u;
		}
		strcpy(msg + n, rows[i].tail);
		use_message(f, msg);
		run(f);
		EXPECT_INT(rows[i].label, f->eval.limit_hits, 0);
		EXPECT_INT(rows[i].label, f->eval.nhits, 1);
	}
}

/*
 * A file that never ends (include /dev/zero: NUL bytes, no newline)
 * must not hang the loader.
 */
static void
test_rules_include_of_an_endless_file_ends(void **state)
{
	struct fixture *f = *state;
	char *path = path_in(f, "zero.cf");
	int nerrors;

	put_file(f, "zero.cf", "body A /Hello/\ninclude /dev/zero\n");
	nerrors = load_in_child(path, 5);
	EXPECT_TRUE("include /dev/zero: the load ends", nerrors >= 0);
	EXPECT_TRUE("include /dev/zero: an error", nerrors >= 1);
}

/* ------------------------------ SpamAssassin's texts, rule by rule */

/* Loads rules, runs them over the message and content in f, and checks
 * that exactly the names in `hits` hit. */
static void
expect_exactly(struct fixture *f, const char *label, const char *rules,
    const char *hits, const char *misses)
{
	load_text(f, rules);
	expect_no_diags(label, f);
	run(f);
	expect_hits(label, f, hits, true);
	expect_hits(label, f, misses, false);
}

static void
use_text(struct fixture *f, const char *text)
{
	memset(&f->content, 0, sizeof(f->content));
	f->content.text = (char *)text;
	f->content.text_len = strlen(text);
}

/*
 * Body rules see SpamAssassin's body text: the Subject line, then one
 * line per paragraph (a white-space run with two or more newlines ends
 * a paragraph, any other run is one space, Unicode spaces included), each
 * matched on its own, without an implicit m flag.
 */
static void
test_rules_body_is_one_line_per_paragraph(void **state)
{
	static const char rules[] =
	    "body P1 /^First line second line$/\n"
	    "body P2 /^Para two$/\n"
	    "body P3 /^Para three end $/\n"
	    "body SUBJECT /^Caf\xc3\xa9 offer$/\n"
	    "body ACROSS /line\\nPara/\n"
	    "body ACROSS_S /two.Para/s\n"
	    "body LINES /^/\n"
	    "tflags LINES multiple\n"
	    "body LINES_NOSUBJ /^/\n"
	    "tflags LINES_NOSUBJ multiple nosubject\n"
	    "body TAB /second\\tline/\n";
	struct fixture *f = *state;

	use_text(f, "First  line\nsecond\tline\n\nPara two\n \n\n"
	    "Para three\xc2\xa0" "end\n");
	expect_exactly(f, "paragraphs", rules,
	    "P1 P2 P3 SUBJECT LINES LINES_NOSUBJ", "ACROSS ACROSS_S TAB");
	EXPECT_INT("paragraphs: lines", hit_count("paragraphs", f, "LINES"), 4);
	EXPECT_INT("paragraphs: lines without the subject",
	    hit_count("paragraphs", f, "LINES_NOSUBJ"), 3);

	/* blanks before and after a paragraph break stay, as one space */
	use_text(f, "a \n\n b\n");
	expect_exactly(f, "blanks at a break", "body A /^a $/\nbody B /^ b $/\n",
	    "A B", "");

	/* no Subject header: an empty first line */
	use_message(f, "From: a@example.com\n\nx\n");
	use_text(f, "one\n");
	expect_exactly(f, "no subject", "body EMPTY /^$/\nbody ONE /^one $/\n",
	    "EMPTY ONE", "");
}

/* Lines over 2048 bytes are cut at the last blank within the first 2049
 * bytes, else at 2048 (split_into_array_of_short_lines). */
static void
test_rules_body_lines_are_cut_at_2048_bytes(void **state)
{
	struct fixture *f = *state;
	char *text = keep(f, malloc(8 * KB));
	size_t n = 0;

	memset(text, 'x', 3000);
	n = 3000;
	text[n++] = ' ';
	memset(text + n, 'y', 100);
	n += 100;
	strcpy(text + n, "\n\n");
	n += 2;
	memset(text + n, 'a', 2000);
	n += 2000;
	text[n++] = ' ';
	memset(text + n, 'b', 100);
	n += 100;
	text[n] = '\0';
	use_text(f, text);
	expect_exactly(f, "long lines",
	    "body X2048 /^x{2048}$/\n"
	    "body X2049 /x{2049}/\n"
	    "body REST /^x{952} y{100}$/\n"
	    "body AT_BLANK /^a{2000} $/\n"
	    "body AFTER_BLANK /^b{100}$/\n",
	    "X2048 REST AT_BLANK AFTER_BLANK", "X2049");
}

/* Rawbody rules see each text part on its own, decoded, HTML kept, in
 * pieces of 2 to 4 KB cut after a newline, a '>' or a blank. */
static void
test_rules_rawbody_is_per_part_in_pieces(void **state)
{
	static struct mime_span parts[] = {{0, 4}, {5, 11}};
	struct fixture *f = *state;

	memset(&f->content, 0, sizeof(f->content));
	f->content.raw_text = (char *)"one\n\n<p>two</p>";
	f->content.raw_text_len = strlen(f->content.raw_text);
	f->content.raw_parts = parts;
	f->content.nraw_parts = NELEM(parts);
	expect_exactly(f, "raw parts",
	    "rawbody PART2 /^<p>two/\n"
	    "rawbody ACROSS /one\\n\\n<p>/\n"
	    "rawbody STARTS /^/\n"
	    "tflags STARTS multiple\n",
	    "PART2 STARTS", "ACROSS");
	EXPECT_INT("raw parts: pieces", hit_count("raw parts", f, "STARTS"), 2);

	char *raw = keep(f, malloc(8 * KB));
	memset(raw, 'x', 2500);
	raw[2500] = '\n';
	memset(raw + 2501, 'y', 2500);
	raw[5001] = '\0';
	memset(&f->content, 0, sizeof(f->content));
	f->content.raw_text = raw;
	f->content.raw_text_len = 5001;
	expect_exactly(f, "raw pieces",
	    "rawbody X /^x{2500}$/\n"
	    "rawbody Y /^y{2500}$/\n"
	    "rawbody XY /x\\ny/\n",
	    "X Y", "XY");
}

static const char header_message[] =
    "From: \"Joe Q. Public\" <joe@example.com>, Mary <mary@example.org>,\n"
    " bare@example.net\n"
    "To: A <a@example.com>\n"
    "Cc: b@example.com\n"
    "To: c@example.com\n"
    "Subject: =?ISO-8859-1?Q?caf=E9?=\n"
    "  folded\n"
    "Message-ID: <=?utf-8?q?x?=@example.com>\n"
    "X-Message-Id: <x1@example.com>\n"
    "Received: from a by b\n"
    "X-Empty:\n"
    "Reply-To: undisclosed-recipients:;\n"
    "Sender: Group: one@example.com, two@example.com;\n"
    "X-Comment: joe@example.com (Joe Comment)\n"
    "X-Quoted: 'Single Quoted' <sq@example.com>\n"
    "\n"
    "body\n";

/* Header rules see what SpamAssassin's get() returns. */
static void
test_rules_header_values_as_spamassassin_gets_them(void **state)
{
	static const struct construct_row rows[] = {
		{"every address of every To", "header R To:addr =~ /^a\\@example\\.com\\nc\\@example\\.com$/\n", 1},
		{":first", "header R To:first:addr =~ /^a\\@example\\.com$/\n", 1},
		{":last", "header R To:addr:last =~ /^c\\@example\\.com$/\n", 1},
		{"From:addr, a folded list", "header R From:addr =~ /^joe\\@example\\.com\\nmary\\@example\\.org\\nbare\\@example\\.net$/\n", 1},
		{"From:name: addresses without a name left out", "header R From:name =~ /^Joe Q\\. Public\\nMary$/\n", 1},
		{":name strips single quotes", "header R X-Quoted:name =~ /^Single Quoted$/\n", 1},
		{":name of a comment", "header R X-Comment:name =~ /^Joe Comment$/\n", 1},
		{"group syntax", "header R Sender:addr =~ /^one\\@example\\.com\\ntwo\\@example\\.com$/\n", 1},
		{"an empty group has no address", "header R Reply-To:addr =~ /./\n", 0},
		{"no address: as if unset", "header R Reply-To:addr =~ /^$/\n", 1},
		{"ToCc: every To, then Cc", "header R ToCc =~ /^A <a\\@example\\.com>\\nc\\@example\\.com\\nb\\@example\\.com\\n\\z/\n", 1},
		{"ToCc:addr", "header R ToCc:addr =~ /^a\\@example\\.com\\nc\\@example\\.com\\nb\\@example\\.com$/\n", 1},
		{"decoded and unfolded", "header R Subject =~ /^caf\\xc3\\xa9 folded\\n\\z/\n", 1},
		{"Message-ID is not decoded", "header R Message-ID =~ /^<=\\?utf-8\\?q\\?x\\?=\\@example\\.com>$/\n", 1},
		{"MESSAGEID: X-Message-Id, then Message-Id", "header R MESSAGEID =~ /^<x1\\@example\\.com>\\n<=\\?utf-8/\n", 1},
		{"exists:MESSAGEID", "header R exists:MESSAGEID\n", 1},
		{"exists:ToCc", "header R exists:ToCc\n", 1},
		{"exists: of an empty header", "header R exists:X-Empty\n", 1},
		{"an empty header is a newline", "header R X-Empty =~ /^\\n\\z/\n", 1},
		{"a missing header is the empty string", "header R X-Missing =~ /^\\z/\n", 1},
		{"!~ on a missing header", "header R X-Missing !~ /x/\n", 1},
		{"=~ on a missing header", "header R X-Missing =~ /x/\n", 0},
		{"ALL: decoded, one line each", "header R ALL =~ /^Subject: caf\\xc3\\xa9 folded$/m\n", 1},
		{"ALL:raw: as sent", "header R ALL:raw =~ /^Subject: =\\?ISO-8859-1\\?Q\\?caf=E9\\?=\\n  folded$/m\n", 1},
		{"ALL ignores :addr", "header R ALL:addr =~ /^From: /\n", 1},
		{":raw keeps the blank after the colon", "header R Received:raw =~ /^ from a by b\\n\\z/\n", 1},
		{"ToCc:raw unfolded", "header R ToCc:raw =~ /^ A <a\\@example\\.com>\\n c\\@example\\.com\\n/\n", 1},
	};
	struct fixture *f = *state;

	use_message(f, header_message);
	memset(&f->content, 0, sizeof(f->content));
	for (size_t i = 0; i < NELEM(rows); i++) {
		load_text(f, rows[i].rules);
		expect_no_diags(rows[i].label, f);
		run(f);
		EXPECT_INT(rows[i].label, hit_count(rows[i].label, f, "R"),
		    rows[i].want);
	}
}

/*
 * Tests SpamAssassin runs and this engine cannot (eval:, headers it does
 * not compute, :host, plugin rules) have unknown results: a meta over one
 * hits only when it would whatever the result. One with score 0 does not
 * run in SpamAssassin either: 0. So are net tests without network tests
 * (score sets 0 and 2) and learn tests without Bayes (sets 0 and 1).
 */
static void
test_rules_unknown_tests_leave_metas_unknown(void **state)
{
	static const char rules[] =
	    "body __A /Hello/\n"
	    "body __NO /nomatch/\n"
	    "body __EV eval:check_x()\n"
	    "body __EV0 eval:check_z()\n"
	    "score __EV0 0\n"
	    "header __NET eval:check_rbl('x', 'y')\n"
	    "tflags __NET net\n"
	    "body __LEARN eval:check_bayes('0.99', '1.00')\n"
	    "tflags __LEARN learn\n"
	    "header __RELAY X-Spam-Relays-External =~ /x/\n"
	    "header __ENVFROM exists:EnvelopeFrom\n"
	    "header __HOST From:host =~ /x/\n"
	    "mimeheader __MIME Content-Type =~ /x/\n"
	    "askdns __ASK _SENDERDOMAIN_ TXT /x/\n"
	    "meta M_AND_NOT __A && !__EV\n"
	    "meta M_OR __A || __EV\n"
	    "meta M_NOT_AND !(__NO && __EV)\n"
	    "meta M_NOT_EV !__EV\n"
	    "meta M_SUM1 (__A + __EV) >= 1\n"
	    "meta M_SUM2 (__A + __EV) >= 2\n"
	    "meta M_LT (__A + __EV) < 3\n"
	    "meta M_MUL __EV * 0 == 0\n"
	    "meta M_EV0 !__EV0\n"
	    "meta M_NET !__NET\n"
	    "meta M_LEARN !__LEARN\n"
	    "meta M_RELAY !__RELAY\n"
	    "meta M_ENVFROM !__ENVFROM\n"
	    "meta M_HOST !__HOST\n"
	    "meta M_MIME !__MIME\n"
	    "meta M_ASK !__ASK\n"
	    "meta M_OVER !M_AND_NOT\n";
	static const struct {
		int set;
		const char *hits;
		const char *misses;
	} sets[] = {
		{0, "M_OR M_NOT_AND M_SUM1 M_LT M_MUL M_EV0 M_NET M_LEARN "
		    "M_ASK",
		    "M_AND_NOT M_NOT_EV M_SUM2 M_RELAY M_ENVFROM M_HOST "
		    "M_MIME M_OVER"},
		{1, "M_OR M_NOT_AND M_SUM1 M_LT M_MUL M_EV0 M_LEARN",
		    "M_NET M_ASK M_AND_NOT M_NOT_EV M_RELAY M_MIME"},
		{3, "M_OR M_EV0", "M_NET M_LEARN M_ASK"},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < NELEM(sets); i++) {
		struct rules_options opt = default_opt;
		char label[64];

		opt.score_set = sets[i].set;
		snprintf(label, sizeof(label), "unknowns, score set %d",
		    sets[i].set);
		load_bytes(f, rules, strlen(rules), &opt);
		EXPECT_INT(label, f->report.nerrors, 0);
		EXPECT_INT(label, group_count(&f->report, "eval: test"), 4);
		EXPECT_INT(label, group_count(&f->report, "unsupported header"),
		    3);
		EXPECT_INT(label, group_count(&f->report, "directive mimeheader"),
		    1);
		EXPECT_INT(label, group_count(&f->report, "directive askdns"), 1);
		EXPECT_INT(label, f->report.skipped, 9);
		run(f);
		expect_hits(label, f, sets[i].hits, true);
		expect_hits(label, f, sets[i].misses, false);
		/* opaque tests are never reported themselves */
		expect_hits(label, f, "__EV __RELAY __MIME", false);
	}
}

/*
 * SpamAssassin runs no rule whose score is 0: a meta sees 0 for it. A
 * meta over a meta with score 0 is never ready, so it never hits, even
 * when its other half would make it true (SpamAssassin 4.0's
 * do_meta_tests). [scores] (rules_set_score) changes both.
 */
static void
test_rules_score_zero_rules_do_not_run(void **state)
{
	static const char rules[] =
	    "body __A /Hello/\n"
	    "body B /Hello/\n"
	    "score B 0\n"
	    "meta M_B B\n"
	    "meta M_NOT_B !B\n"
	    "meta Z __A\n"
	    "score Z 0\n"
	    "meta M_Z !Z\n"
	    "meta M_OVER M_Z || __A\n"
	    "meta M_UNDEF !__NO_SUCH_RULE\n"
	    "body __SUB0 /Hello/\n"
	    "score __SUB0 0\n"
	    "meta M_SUB0 __SUB0\n"
	    "body FOUR /Hello/\n"
	    "score FOUR 0 1 0 1\n"
	    "meta M_FOUR FOUR\n";
	struct fixture *f = *state;

	expect_exactly(f, "score 0", rules, "M_NOT_B M_UNDEF",
	    "B M_B Z M_Z M_OVER M_SUB0 FOUR M_FOUR");
	EXPECT_INT("score 0: hits", f->eval.nhits, 2);

	rules_set_score(f->set, "B", 1);
	rules_set_score(f->set, "Z", 1);
	run(f);
	expect_hits("score set back", f, "B M_B Z M_OVER M_UNDEF", true);
	expect_hits("score set back", f, "M_NOT_B M_Z", false);

	rules_set_score(f->set, "__A", 0);
	run(f);
	expect_hits("sub-rule off", f, "Z", false);
	expect_hits("sub-rule off", f, "M_Z M_OVER", true);

	/* score set 1: FOUR scores 1 and runs */
	struct rules_options opt = default_opt;
	opt.score_set = 1;
	load_bytes(f, rules, strlen(rules), &opt);
	run(f);
	expect_hits("score set 1", f, "FOUR M_FOUR", true);
}

/* ReplaceTags: the stock rules' obfuscation tags, step by step. */
static void
test_rules_replace_tags(void **state)
{
	static const char rules[] =
	    "replace_tag A (?:a|4)\n"
	    "replace_tag B (?:b|8)\n"
	    "replace_tag AB <A><B>\n"
	    "replace_tag LOOP <LOOP>x\n"
	    "replace_inter W1 [\\W_]?\n"
	    "replace_pre P1 \\b\n"
	    "replace_post P2 {2}\n"
	    "body TAGS /^<A><B>c$/\n"
	    "body INTER /^<inter W1><A><B>c$/\n"
	    "body PRE /<pre P1><A>z/\n"
	    "body POST /^<post P2><A><B>$/\n"
	    "body NESTED /^<AB>c$/\n"
	    "body UNKNOWN /^<NOPE>$/\n"
	    "body NOT_LISTED /^<A>$/\n"
	    "body LOOP /<LOOP>/\n"
	    "replace_rules TAGS INTER PRE POST NESTED UNKNOWN LOOP\n";
	static const struct {
		const char *label;
		const char *text;
		const char *hits;
	} rows[] = {
		{"tags", "4bc", "TAGS INTER NESTED"},
		{"inter between tags", "a-8c", "INTER"},
		{"inter not needed", "abc", "TAGS INTER NESTED"},
		{"pre: a word boundary before the tag", "xaz az", "PRE"},
		{"pre: none", "xaz", ""},
		{"post: each tag twice", "aabb", "POST"},
		{"post: once is not enough", "ab", ""},
		{"an unknown tag stays as it is", "<NOPE>", "UNKNOWN"},
		{"a rule not listed keeps its tags", "<A>", "NOT_LISTED"},
		{"a tag that names itself stops after six passes",
		    "xxxxxx", ""},
	};
	struct fixture *f = *state;

	load_text(f, rules);
	expect_no_diags("replace", f);
	for (size_t i = 0; i < NELEM(rows); i++) {
		use_text(f, rows[i].text);
		run(f);
		expect_hits(rows[i].label, f, rows[i].hits, true);
		char all[] = "TAGS INTER PRE POST NESTED UNKNOWN NOT_LISTED LOOP";
		char miss[128] = "";
		char *cursor = NULL;
		for (char *n = strtok_r(all, " ", &cursor); n != NULL;
		    n = strtok_r(NULL, " ", &cursor)) {
			char padded[64];
			snprintf(padded, sizeof(padded), " %s ", n);
			char hits[128];
			snprintf(hits, sizeof(hits), " %s ", rows[i].hits);
			if (strstr(hits, padded) == NULL) {
				strcat(miss, n);
				strcat(miss, " ");
			}
		}
		expect_hits(rows[i].label, f, miss, false);
	}

	/* other delimiters: tags are found in text fields too */
	load_text(f, "replace_start {{\nreplace_end }}\nreplace_tag X (?:x|%)\n"
	    "body R /^a{{X}}b$/\nreplace_rules R\n");
	expect_no_diags("replace_start", f);
	use_text(f, "a%b");
	run(f);
	expect_hits("replace_start", f, "R", true);

	/* the replaced regex does not compile: an error naming the rule */
	load_text(f, "replace_tag BAD (\nbody R /<BAD>/\nreplace_rules R\n"
	    "body OK /Hello/\n");
	EXPECT_INT("bad replacement: errors", f->report.nerrors, 1);
	if (f->report.nerrors > 0) {
		expect_diag("bad replacement", &f->report.errors[0], f->path, 2,
		    NULL);
		EXPECT_TRUE("bad replacement: names the rule",
		    strncmp(f->report.errors[0].text, "R: after replace_tag",
		    20) == 0);
	}
	use_text(f, "Hello\n");
	run(f);
	expect_hits("bad replacement", f, "OK", true);
	expect_hits("bad replacement", f, "R", false);
}

/* rules_matching(GLOB) in a meta: the sum of the rules it names. */
static void
test_rules_rules_matching(void **state)
{
	struct fixture *f = *state;

	expect_exactly(f, "rules_matching",
	    "body __X_ONE /Hello/\nbody __X_TWO /world/\nbody __X_NONE /nope/\n"
	    "meta TWO rules_matching(__X_*) == 2\n"
	    "meta NONE rules_matching(__NOTHING_*) == 0\n"
	    "meta Q rules_matching(__X_?NE) == 1\n",
	    "TWO NONE Q", "");
}

/*
 * URI rules see the URIs SpamAssassin finds in the body text (links,
 * www. and e-mail addresses, bare domains ending in a util_rb_tld) and in
 * HTML attributes, each with its variants: %-decoded, user@ and default
 * ports taken off, a redirect's target, IPs in dotted decimal.
 */
static void
test_rules_uri_list_as_spamassassin_makes_it(void **state)
{
	static const struct {
		const char *label;
		const char *regex;
		bool want;
	} rows[] = {
		{"www. gets http://", "^http://www\\.example\\.com$", true},
		{"e-mail address: mailto:", "^mailto:joe\\@example\\.org$", true},
		{"bare domain with a known TLD", "^http://example\\.net/page$", true},
		{"bare domain with an unknown TLD", "example\\.zz", false},
		{"trailing punctuation taken off", "\\.$", false},
		{"%-decoded variant", "^http://upper\\.example\\.com/~user\\?x=1$", true},
		{"as written too", "^http://upper\\.example\\.com/%7Euser", true},
		{"default port taken off", "^http://user\\@host\\.example\\.com/path$", true},
		{"user@ taken off", "^http://host\\.example\\.com:80/path$", true},
		{"redirect target", "^http://target\\.example\\.net/a$", true},
		{"number host in dotted decimal", "^http://127\\.0\\.0\\.1/$", true},
		{"http://word gets www. and .com", "^http://www\\.intranet\\.com/$", true},
		{"HTML attribute", "^https://short\\.example/abc$", true},
		{"the Subject line is searched", "^http://subj\\.example\\.com/x$", true},
		{"mailto: ?subject= taken off", "^mailto:m\\@example\\.org$", true},
	};
	struct fixture *f = *state;
	char rules[512];

	use_message(f, "From: a@example.com\n"
	    "Subject: see http://subj.example.com/x\n\nx\n");
	use_std_content(f);
	f->content.nuris = 2;
	use_text(f, "Visit www.example.com, or mail joe@example.org. See "
	    "example.net/page and example.zz too.\n"
	    "Also http://upper.example.com/%7Euser?x=1 and "
	    "http://user@host.example.com:80/path.\n"
	    "And http://2130706433/ and http://intranet/ and "
	    "http://r.example.com/go?u=http://target.example.net/a&b=2 "
	    "mailto:m@example.org?subject=hi\n");
	f->content.uris = std_uris;
	f->content.nuris = NELEM(std_uris);
	for (size_t i = 0; i < NELEM(rows); i++) {
		snprintf(rules, sizeof(rules), "util_rb_tld com org net\n"
		    "uri R m{%s}i\n", rows[i].regex);
		load_text(f, rules);
		expect_no_diags(rows[i].label, f);
		run(f);
		EXPECT_INT(rows[i].label, hit_count(rows[i].label, f, "R") > 0,
		    rows[i].want);
	}
}

/* Directives that define tests SpamAssassin runs through its plugins. */
static void
test_rules_plugin_tests_are_known_and_unknown(void **state)
{
	struct fixture *f = *state;

	load_text(f, "mimeheader M1 Content-Type =~ /text/\n"
	    "uri_detail U1 host =~ /x/\n"
	    "urirhssub URIBL_X multi.example. A 2\n"
	    "body URIBL_X eval:check_uridnsbl('URIBL_X')\n"
	    "meta NOT_M1 !M1\n"
	    "meta NOT_URIBL !URIBL_X\n");
	EXPECT_INT("plugin tests: errors", f->report.nerrors, 0);
	EXPECT_INT("plugin tests: loaded", f->report.loaded, 2);
	EXPECT_TRUE("plugin tests: known", rules_has(f->set, "M1") &&
	    rules_has(f->set, "U1") && rules_has(f->set, "URIBL_X"));
	run(f);
	/* mimeheader runs in SpamAssassin: unknown; the eval: line made
	 * URIBL_X an eval test again (no DNS flag): unknown too */
	expect_hits("plugin tests", f, "M1 U1 URIBL_X NOT_M1 NOT_URIBL", false);

	load_text(f, "urirhssub URIBL_X multi.example. A 2\n"
	    "meta NOT_URIBL !URIBL_X\n");
	run(f);
	expect_hits("DNS list test, no network tests", f, "NOT_URIBL", true);
}

/* A regex PCRE2 cannot hold (Perl can): SpamAssassin runs it, so its
 * result is unknown here, a warning and not an error. */
static void
test_rules_regex_too_large_for_pcre2_is_unknown(void **state)
{
	struct fixture *f = *state;

	load_text(f, "replace_tag BIG (?:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|"
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb|ccccccccccccccccccccccccccc)"
	    "{1,40}\n"
	    "replace_tag BIGGER <BIG><BIG><BIG><BIG><BIG><BIG><BIG><BIG>\n"
	    "body __R /(?:<BIGGER>){30}/\nreplace_rules __R\n"
	    "meta NOT_R !__R\nmeta OR_R __R || 1\n");
	EXPECT_INT("too large: errors", f->report.nerrors, 0);
	EXPECT_INT("too large: warning", group_count(&f->report,
	    "regex too large"), 1);
	run(f);
	expect_hits("too large", f, "OR_R", true);
	expect_hits("too large", f, "NOT_R", false);
}

/* ---- eval: tests run here (lib/sa_eval.h) ---- */

/* The stock date rules (20_head_tests.cf, 72_active.cf) and the Outlook
 * one, with a meta over each kind to show they are known. */
static const char date_rules[] =
    "header DATE_IN_PAST_03_06 eval:check_for_shifted_date('-6', '-3')\n"
    "header DATE_IN_PAST_06_12 eval:check_for_shifted_date('-12', '-6')\n"
    "header DATE_IN_PAST_12_24 eval:check_for_shifted_date('-24', '-12')\n"
    "header DATE_IN_PAST_24_48 eval:check_for_shifted_date('-48', '-24')\n"
    "header DATE_IN_PAST_96_XX eval:check_for_shifted_date('undef', '-96')\n"
    "header DATE_IN_FUTURE_03_06 eval:check_for_shifted_date('3', '6')\n"
    "header DATE_IN_FUTURE_06_12 eval:check_for_shifted_date('6', '12')\n"
    "header DATE_IN_FUTURE_12_24 eval:check_for_shifted_date('12', '24')\n"
    "header DATE_IN_FUTURE_24_48 eval:check_for_shifted_date('24', '48')\n"
    "header DATE_IN_FUTURE_48_96 eval:check_for_shifted_date('48', '96')\n"
    "header DATE_IN_FUTURE_Q_PLUS eval:check_for_shifted_date('2920', 'undef')\n"
    "header MSGID_OUTLOOK_INVALID eval:check_outlook_message_id()\n"
    "meta M_NOT_PAST !DATE_IN_PAST_03_06\n"
    "meta M_NOT_OUTLOOK !MSGID_OUTLOOK_INVALID\n";

static const char date_rule_names[] =
    "DATE_IN_PAST_03_06 DATE_IN_PAST_06_12 DATE_IN_PAST_12_24 "
    "DATE_IN_PAST_24_48 DATE_IN_PAST_96_XX DATE_IN_FUTURE_03_06 "
    "DATE_IN_FUTURE_06_12 DATE_IN_FUTURE_12_24 DATE_IN_FUTURE_24_48 "
    "DATE_IN_FUTURE_48_96 DATE_IN_FUTURE_Q_PLUS MSGID_OUTLOOK_INVALID";

#define RCVD(date) "Received: from mail.example.net (mail.example.net " \
    "[192.0.2.1]) by mx.example.org with ESMTP id ABC; " date "\n"
#define TAIL "From: a@example.com\nTo: b@example.org\n" \
    "Subject: test message here\n\nHello there, this is a body.\n"

/* Runs the date rules over each message: exactly the listed ones hit. */
struct date_case {
	const char *label;
	const char *message;
	const char *hits;	/* of date_rule_names; "" for none */
};

static void
expect_date_cases(struct fixture *f, const struct date_case *rows,
    size_t nrows)
{
	for (size_t i = 0; i < nrows; i++) {
		char names[sizeof(date_rule_names)], *cursor = NULL;

		use_message(f, rows[i].message);
		run(f);
		snprintf(names, sizeof(names), "%s", date_rule_names);
		for (char *n = strtok_r(names, " ", &cursor); n != NULL;
		    n = strtok_r(NULL, " ", &cursor)) {
			char what[300];
			const char *h = strstr(rows[i].hits, n);
			bool want = h != NULL && (h[strlen(n)] == '\0' ||
			    h[strlen(n)] == ' ');

			snprintf(what, sizeof(what), "%s: %s %s",
			    rows[i].label, n, want ? "hits" : "does not hit");
			EXPECT_INT(what, hit_count(rows[i].label, f, n) > 0,
			    want);
		}
	}
}

/*
 * check_for_shifted_date as SpamAssassin's HeaderEval works it out: Date
 * (Resent-Date first) minus the Received: time closest to it, the last
 * hop's left out when it is exactly the date. Expectations from its
 * algorithm, confirmed with `spamassassin -L -t` (Debian, 4.0).
 */
static void
test_rules_shifted_date_as_spamassassin(void **state)
{
	static const struct date_case rows[] = {
		{"4.5 hours in the past",
		    RCVD("Wed, 10 Jan 2024 16:30:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL,
		    "DATE_IN_PAST_03_06"},
		{"7 hours in the future",
		    RCVD("Wed, 10 Jan 2024 05:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL,
		    "DATE_IN_FUTURE_06_12"},
		{"100 hours in the past",
		    RCVD("Sun, 14 Jan 2024 16:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL,
		    "DATE_IN_PAST_96_XX"},
		{"a year in the future: 2920 hours or more",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Fri, 10 Jan 2025 12:00:00 +0000\n" TAIL,
		    "DATE_IN_FUTURE_Q_PLUS"},
		{"named zone EST is -0500: half an hour, no hit",
		    RCVD("Wed, 10 Jan 2024 12:30:00 +0000")
		    "Date: Wed, 10 Jan 2024 07:00:00 EST\n" TAIL, ""},
		{"unknown zone name counts as -0000",
		    RCVD("Wed, 10 Jan 2024 16:30:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 XYZ\n" TAIL,
		    "DATE_IN_PAST_03_06"},
		{"two-digit year 24 is 2024",
		    RCVD("Wed, 10 Jan 2024 16:30:00 +0000")
		    "Date: 10 Jan 24 12:00:00 +0000\n" TAIL,
		    "DATE_IN_PAST_03_06"},
		{"the Received: time closest to the date counts",
		    RCVD("Thu, 11 Jan 2024 08:00:00 +0000")
		    RCVD("Wed, 10 Jan 2024 17:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL,
		    "DATE_IN_PAST_03_06"},
		{"a last hop stamped with the date itself is left out",
		    RCVD("Wed, 10 Jan 2024 16:00:00 +0000")
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL,
		    "DATE_IN_PAST_03_06"},
		{"asctime date: its time is lost, midnight is -12h exactly",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Wed Jan 10 12:00:00 2024\n" TAIL,
		    "DATE_IN_PAST_06_12"},
		{"Resent-Date: wins over Date:",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Resent-Date: Wed, 10 Jan 2024 19:00:00 +0000\n"
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL,
		    "DATE_IN_FUTURE_06_12"},
		{"fetchmail's own two headers on top are left out",
		    "Received: from localhost [127.0.0.1] by me.example with "
		    "POP3; Wed, 10 Jan 2024 12:30:00 +0000\n"
		    "Received: from pop.example by localhost with POP3 "
		    "(fetchmail-6.4.37) for <me@localhost> (single-drop); "
		    "Wed, 10 Jan 2024 12:30:00 +0000\n"
		    RCVD("Wed, 10 Jan 2024 16:30:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL,
		    "DATE_IN_PAST_03_06"},
		{"on time", RCVD("Wed, 10 Jan 2024 12:10:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL, ""},
	};
	struct fixture *f = *state;

	load_text(f, date_rules);
	expect_no_diags("date rules", f);
	EXPECT_INT("date rules: loaded", f->report.loaded, 14);
	EXPECT_INT("date rules: skipped", f->report.skipped, 0);
	expect_date_cases(f, rows, NELEM(rows));
	/* known results: a meta over a miss hits */
	expect_hits("date rules, on time", f, "M_NOT_PAST M_NOT_OUTLOOK", true);
}

/*
 * check_outlook_message_id: a Message-ID <XXXXTTTTTTTT$...$...@ whose
 * token T is 250 or more from int(time * 0.0023283064365387 +
 * 27111902.8329849) for the Date: time and for the Received: time (0 for
 * one that does not parse). 2024-01-10 12:00 UTC gives 0x01da43bc.
 */
static void
test_rules_outlook_message_id_as_spamassassin(void **state)
{
	static const struct date_case rows[] = {
		{"token of the date",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n"
		    "Message-ID: <000001da43bc$0000abcd$0000ef01@h.example>\n"
		    TAIL, ""},
		{"token 250 off both times",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n"
		    "Message-ID: <000001da44b6$0000abcd$0000ef01@h.example>\n"
		    TAIL, "MSGID_OUTLOOK_INVALID"},
		{"token 249 off",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n"
		    "Message-ID: <000001da44b5$0000abcd$0000ef01@h.example>\n"
		    TAIL, ""},
		{"date off, Received: time fits",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Sat, 10 Feb 2024 12:00:00 +0000\n"
		    "Message-ID: <000001da43bc$0000abcd$0000ef01@h.example>\n"
		    TAIL, ""},
		{"no Date, no Received: time 0, token 10 off its 0x019db1de",
		    "Message-ID: <0000019db1e8$0000abcd$0000ef01@h.example>\n"
		    TAIL, ""},
		{"no Date, no Received: any other token hits",
		    "Message-ID: <000001da43bc$0000abcd$0000ef01@h.example>\n"
		    TAIL, "MSGID_OUTLOOK_INVALID"},
		{"upper-case hex is not Outlook's form",
		    RCVD("Wed, 10 Jan 2024 12:00:00 +0000")
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n"
		    "Message-ID: <000001DA44B6$0000ABCD$0000EF01@h.example>\n"
		    TAIL, ""},
	};
	struct fixture *f = *state;

	load_text(f, date_rules);
	expect_date_cases(f, rows, NELEM(rows));
}

/* Input these tests cannot read is a clear no-hit, never a crash. */
static void
test_rules_date_evals_on_bad_input_do_not_hit(void **state)
{
	static const struct date_case rows[] = {
		{"no Date:", RCVD("Wed, 10 Jan 2024 16:30:00 +0000") TAIL, ""},
		{"garbage Date:", RCVD("Wed, 10 Jan 2024 16:30:00 +0000")
		    "Date: tomorrow at noon\n" TAIL, ""},
		{"day 0 does not parse", RCVD("Wed, 10 Jan 2024 16:30:00 +0000")
		    "Date: Wed, 0 Jan 2024 12:00:00 +0000\n" TAIL, ""},
		{"no Received:", "Date: Wed, 10 Jan 2024 12:00:00 +0000\n"
		    TAIL, ""},
		{"Received: without a date",
		    "Received: from a.example by mx.example\n"
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL, ""},
		{"empty Message-ID", "Message-ID:\n"
		    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL, ""},
		{"binary bytes", RCVD("Wed, 10 Jan 2024 16:30:00 \xff\xfe")
		    "Date: \x01\x02 10 Jan \xc3\xa9 2024\n"
		    "Message-ID: <0000\xff\n" TAIL, ""},
	};
	struct fixture *f = *state;

	load_text(f, date_rules);
	expect_date_cases(f, rows, NELEM(rows));

	/* 16 KB of digits and spaces in Date:, Received: and Message-ID */
	size_t n = 16 * KB;
	char *big = keep(f, malloc(3 * n + 512));
	char *p = big;
	p += sprintf(p, "Received: from ");
	for (size_t i = 0; i < n; i++)
		*p++ = i % 7 == 6 ? ' ' : '1';
	p += sprintf(p, "\nDate: ");
	for (size_t i = 0; i < n; i++)
		*p++ = i % 3 == 2 ? ' ' : '9';
	p += sprintf(p, "\nMessage-ID: <0000");
	for (size_t i = 0; i < n; i++)
		*p++ = 'a';
	sprintf(p, ">\n%s", TAIL);
	struct date_case huge = {"huge headers", big, ""};
	expect_date_cases(f, &huge, 1);
}

/* Only these two functions, with the arguments SpamAssassin's rules give
 * them, in header rules, are run; any other eval: stays unknown. */
static void
test_rules_other_evals_stay_unknown(void **state)
{
	static const char rules[] =
	    "header E1 eval:check_for_shifted_date(\"-6\", -3)\n"
	    "header E2 eval:check_for_shifted_date('x', '3')\n"
	    "header E3 eval:check_for_shifted_date('-6')\n"
	    "header E4 eval:check_outlook_message_id('x')\n"
	    "body E5 eval:check_for_shifted_date('-6', '-3')\n"
	    "header E6 eval:check_for_shifted_date_x('-6', '-3')\n"
	    "header E7 eval:check_for_shifted_date('-6', '-3') junk\n"
	    "meta M2 !E2\n";
	struct fixture *f = *state;

	load_text(f, rules);
	EXPECT_INT("other evals: warnings", group_count(&f->report,
	    "eval: test"), 6);
	EXPECT_INT("other evals: loaded", f->report.loaded, 2);
	use_message(f, RCVD("Wed, 10 Jan 2024 16:30:00 +0000")
	    "Date: Wed, 10 Jan 2024 12:00:00 +0000\n" TAIL);
	run(f);
	expect_hits("other evals", f, "E1", true);
	expect_hits("other evals", f, "E2 E3 E4 E5 E6 E7 M2", false);
}

/* Util::parse_rfc822_date's reading of dates. */
static void
test_rules_rfc822_dates_as_spamassassin_reads_them(void **state)
{
	static const struct {
		const char *label;
		const char *date;
		long long want;		/* -1: no date */
	} rows[] = {
		{"plain", "Wed, 10 Jan 2024 12:00:00 +0000", 1704888000},
		{"offset", "Wed, 10 Jan 2024 12:00:00 -0230", 1704897000},
		{"named zone", "Wed, 10 Jan 2024 12:00:00 PDT", 1704913200},
		{"zone in parentheses", "10 Jan 2024 12:00:00 (CEST)",
		    1704880800},
		{"no seconds", "10 Jan 2024 12:00 GMT", 1704888000},
		{"lower-case month", "10 jan 2024 12:00:00 UT", 1704888000},
		{"two-digit year 99", "1 Jan 99 00:00:00 +0000", 915148800},
		{"three-digit year", "1 Jan 124 00:00:00 +0000", 1704067200},
		{"day past the month's end", "31 Feb 2024 00:00:00 +0000",
		    1709251200},
		{"hour 25 is 23", "10 Jan 2024 25:00:00 +0000", 1704927600},
		{"year before 1970 is 1970", "1 Jan 1900 00:00:00 +0000", 0},
		{"'+' zone on 1 Jan 1970", "1 Jan 1970 00:00:00 +0100", 0},
		{"year after 2037 is 2037", "1 Jan 2100 00:00:00 +0000",
		    2114380800},
		{"asctime", "Wed Jan 10 12:00:00 2024", 1704844800},
		{"day 0", "0 Jan 2024 00:00:00 +0000", -1},
		{"no month", "10 2024 12:00:00", -1},
		{"empty", "", -1},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(rows); i++) {
		long long t = -1;
		bool ok = sa_date_parse(rows[i].date, strlen(rows[i].date), &t);

		EXPECT_INT(rows[i].label, ok, rows[i].want >= 0);
		if (ok)
			EXPECT_INT(rows[i].label, t, rows[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_free_null_and_empty_are_no_ops),
		cmocka_unit_test_setup_teardown(test_rules_every_construct_hits_and_misses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_full_sees_mime_part_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_meta_operators, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_meta_over_metas_loops_and_unknowns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_scores_and_score_sets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_has_and_set_score, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_if_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_skipped_block_does_not_change_a_score, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_unclosed_block_ends_with_its_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_errors_name_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_limits_on_names_and_nesting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_line_longer_than_the_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_binary_garbage_does_not_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_warnings_grouped_with_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_loaded_and_skipped_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_include_is_relative_to_the_including_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_include_loop_is_read_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_include_depth_limit_is_eight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_globs_and_file_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_match_limit_stops_catastrophic_backtracking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_empty_message_and_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_run_twice_gives_each_message_its_own_result, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_run_is_thread_safe, setup, teardown),
		/* Regressions for lib/rules.c bugs these describe (fixed). */
		cmocka_unit_test_setup_teardown(test_rules_blocks_nested_too_deep_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_nul_bytes_are_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_nul_in_a_long_line_hides_no_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_directory_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_include_of_a_missing_file_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_include_loop_with_several_lines_stays_quick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_eval_inside_a_regex_is_a_regex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_if_unset_text_may_hold_the_delimiter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_score_needs_1_or_4_finite_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_linear_regex_over_a_long_message_hits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_include_of_an_endless_file_ends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_body_is_one_line_per_paragraph, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_body_lines_are_cut_at_2048_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_rawbody_is_per_part_in_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_header_values_as_spamassassin_gets_them, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_unknown_tests_leave_metas_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_score_zero_rules_do_not_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_replace_tags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_rules_matching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_uri_list_as_spamassassin_makes_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_plugin_tests_are_known_and_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_regex_too_large_for_pcre2_is_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_shifted_date_as_spamassassin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_outlook_message_id_as_spamassassin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_date_evals_on_bad_input_do_not_hit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_other_evals_stay_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_rfc822_dates_as_spamassassin_reads_them, setup, teardown),
	};

	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
