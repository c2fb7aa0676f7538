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
 * The standard message, as body rules see it (the Subject line first):
 *
 *	Caf\xc3\xa9 offer
 *	Hello world
 *	Second line
 *	Price #1 deal
 *	spam spam spam
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
	{(char *)"http://example.com/x", (char *)"example.com"},
	{(char *)"https://short.example/abc", (char *)"short.example"},
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
	{":raw: the encoded-word as sent", "header R Subject:raw =~ /^=\\?UTF-8\\?B\\?Q2Fmw6kgb2ZmZXI=\\?=$/\n", 1},
	{":raw: not decoded", "header R Subject:raw =~ /offer/\n", 0},
	{"decoded: folding removed", "header R X-Folded =~ /^first second$/\n", 1},
	{":raw: folding kept", "header R X-Folded:raw =~ /^first\\r?\\n second$/\n", 1},

	/* :addr, :name, chained */
	{":addr", "header R From:addr =~ /^john\\@example\\.com$/\n", 1},
	{":addr has no display name", "header R From:addr =~ /John/\n", 0},
	{":addr of a name-addr To", "header R To:addr =~ /^alice\\@example\\.org$/\n", 1},
	{":addr of a bare address", "header R Cc:addr =~ /^bob\\@example\\.net$/\n", 1},
	{":name", "header R From:name =~ /^John Doe$/\n", 1},
	{":name has no address", "header R From:name =~ /example/\n", 0},
	{":name:raw chained", "header R From:name:raw =~ /^John Doe$/\n", 1},
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
	{"body: ^ and $ at each line", "body R /^Second line$/\n", 1},
	{"body: ^ not mid-line", "body R /^world/\n", 0},
	{"body: . does not cross a line", "body R /world.Second/\n", 0},
	{"body: s flag crosses lines", "body R /world.Second/s\n", 1},
	{"body: no HTML tags", "body R /<b>/\n", 0},
	{"body: no headers", "body R /Message-ID/\n", 0},
	{"body: one hit without multiple", "body R /spam/\n", 1},

	/* rawbody, full, uri */
	{"rawbody: HTML tags visible", "rawbody R /<b>world<\\/b>/\n", 1},
	{"rawbody: no Subject line", "rawbody R /offer/\n", 0},
	{"rawbody: ^ and $ at each line", "rawbody R /^Second line$/\n", 1},
	{"full: raw header", "full R /^Subject: =\\?UTF-8\\?B\\?Q2Fmw6kgb2ZmZXI=\\?=\\r?$/m\n", 1},
	{"full: raw folded header", "full R /X-Folded: first\\r?\\n second/\n", 1},
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
	{"CRLF line ends", "body R /Hello world$/\r\n", 1},
	{"no newline at the end", "body R /Hello/", 1},

	/* redefinition and tflags */
	{"a later definition replaces the earlier", "body R /nomatch/\nbody R /Hello/\n", 1},
	{"a later definition of another type", "body R /Hello/\nheader R Subject =~ /nomatch/\n", 0},
	{"tflags multiple counts every match", "body R /spam/\ntflags R multiple\n", 3},
	{"tflags multiple maxhits=2", "body R /spam/\ntflags R multiple maxhits=2\n", 2},
	{"tflags before the rule", "tflags R multiple\nbody R /spam/\n", 3},
	{"tflags nice and others kept, ignored", "body R /spam/\ntflags R nice net learn noautolearn\n", 1},
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

	use_message(f, raw);
	memset(&f->content, 0, sizeof(f->content));
	f->content.text = (char *)"plain part\ncaf\xc3\xa9\n";
	f->content.text_len = strlen(f->content.text);
	f->content.raw_text = (char *)"plain part\n<p>caf\xc3\xa9</p>\n";
	f->content.raw_text_len = strlen(f->content.raw_text);
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
		{"negative value is no hit", "__NONE - 1", false},
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
	    /* a meta over an eval: test (skipped): 0 */
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
	expect_hits("metas", f, "TOP NEG3 NOT_UNKNOWN SCORED OVER_SCORED NOT_EVAL",
	    true);
	expect_hits("metas", f, "LOOP_A LOOP_B LOOP_SELF ABOVE_LOOP UNKNOWN "
	    "OVER_EVAL OVER_BROKEN", false);
	EXPECT_INT("metas: hits", f->eval.nhits, 6);
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

static const struct block_row block_rows[] = {
	{"plain ifplugin block loads",
	    "ifplugin Mail::SpamAssassin::Plugin::URIDNSBL\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if (version) block loads",
	    "if (version >= 3.004000)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if can() block loads",
	    "if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if plugin() block loads",
	    "if plugin(Mail::SpamAssassin::Plugin::DKIM)\nbody IN /Hello/\nendif\n",
	    "IN", "", 1, 0, 0, NULL, 0, NULL},
	{"if !plugin() block skipped",
	    "if !plugin(Mail::SpamAssassin::Plugin::DKIM)\nbody OUT /Hello/\nmeta OUT2 OUT\nendif\nbody AFTER /Hello/\n",
	    "AFTER", "OUT OUT2", 1, 2, 1, "negated if block", 0, NULL},
	{"if ! (version) block skipped",
	    "if ! (version >= 3.004000)\nbody OUT /Hello/\nendif\n",
	    "", "OUT", 0, 1, 1, "negated if block", 0, NULL},
	{"else of a read block is skipped",
	    "ifplugin X\nbody A /Hello/\nelse\nbody B /Hello/\nendif\nbody C /Hello/\n",
	    "A C", "B", 2, 1, 1, "else branch", 0, NULL},
	{"else of a skipped block is read",
	    "if !plugin(X)\nbody A /Hello/\nelse\nbody B /Hello/\nendif\nbody C /Hello/\n",
	    "B C", "A", 2, 1, 1, "negated if block", 0, NULL},
	{"nested: negated inside read",
	    "ifplugin X\nbody A /Hello/\nif !plugin(Y)\nbody B /Hello/\nendif\nbody C /Hello/\nendif\n",
	    "A C", "B", 2, 1, 1, "negated if block", 0, NULL},
	{"nested: read inside negated, with else, all skipped",
	    "if !plugin(X)\nifplugin Y\nbody A /Hello/\nelse\nbody B /Hello/\nendif\nbody C /Hello/\nendif\nbody D /Hello/\n",
	    "D", "A B C", 1, 3, 1, "negated if block", 0, NULL},
	{"nested: read inside read",
	    "ifplugin X\nifplugin Y\nbody A /Hello/\nendif\nbody B /Hello/\nendif\n",
	    "A B", "", 2, 0, 0, NULL, 0, NULL},
	{"nested: else inside an else that is read",
	    "if !plugin(X)\nbody A /Hello/\nelse\nifplugin Y\nbody B /Hello/\nelse\nbody C /Hello/\nendif\nendif\n",
	    "B", "A C", 1, 2, 2, NULL, 0, NULL},
	{"score and describe in a skipped block are ignored",
	    "body R /Hello/\nif !plugin(X)\nscore R 0\ntflags R multiple\nendif\n",
	    "R", "", 1, 0, 1, "negated if block", 0, NULL},
	{"endif without if",
	    "body A /Hello/\nendif\nbody B /Hello/\n",
	    "A B", "", 2, 0, 0, NULL, 2, "endif without if"},
	{"else without if",
	    "else\nbody A /Hello/\n",
	    "A", "", 1, 0, 0, NULL, 1, "else without if"},
	{"ifplugin without endif: named at the end of the file",
	    "body A /Hello/\nifplugin X\nbody B /Hello/\n",
	    "A B", "", 2, 0, 0, NULL, 3, "if/ifplugin without endif"},
	{"negated if without endif skips to the end of the file",
	    "body A /Hello/\nif !plugin(X)\nbody B /Hello/\n\n",
	    "A", "B", 1, 1, 1, "negated if block", 4, "if/ifplugin without endif"},
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

	load_text(f, "body R /spam/\ndescribe R kept\nif !plugin(X)\n"
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

	put_file(f, "a.cf", "if !plugin(X)\nbody A /Hello/\n");
	put_file(f, "b.cf", "body B /Hello/\ninclude inc.cf\nbody C /Hello/\n");
	put_file(f, "inc.cf", "if !plugin(Y)\nbody IN /Hello/\n");
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
		strbuf_puts(&sb, "ifplugin X\n");
	strbuf_puts(&sb, "if !plugin(Y)\n");		/* line 65 */
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
	{"empty header modifier", "header BAD Subject: =~ /x/", "header BAD: unknown modifier :"},

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
	expect_hits("warnings", f, "A M", true);
	expect_hits("warnings", f, "EV1 EV2", false);
	EXPECT_INT("warnings: hits", f->eval.nhits, 2);
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
	    "if !plugin(X)\n"
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
	EXPECT_INT("counts: block", group_count(&f->report, "negated if block"),
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

	/* the same rule, a string it matches quickly: no limit hit */
	strcpy(body, "aaaa\n");
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
 * Linear regexes over an ordinary body must not stop on a limit: PCRE2's
 * JIT runs on a 32 KiB stack unless given one, and (?:a|b)+ over 10 KB
 * of text needs more (PCRE2_ERROR_JIT_STACKLIMIT: no hit, a limit hit).
 * Same limits as the shipped defaults (match 100000, depth 10000).
 */
static void
test_rules_linear_regex_over_a_long_body_hits(void **state)
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
	char *body = keep(f, malloc(16 * KB + 16));

	use_message(f, "From: a@example.com\n\nx\n");
	load_text(f, "body ALT /(?:a|b)+c/\nbody WS /(?:\\s|x)*END/\n");
	expect_no_diags("long body", f);
	for (size_t i = 0; i < NELEM(rows); i++) {
		size_t n = 0, u = strlen(rows[i].unit);

		while (n + u <= 16 * KB) {
			memcpy(body + n, rows[i].unit, u);
			n += u;
		}
		strcpy(body + n, rows[i].tail);
		memset(&f->content, 0, sizeof(f->content));
		f->content.text = body;
		f->content.text_len = strlen(body);
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
		cmocka_unit_test_setup_teardown(test_rules_linear_regex_over_a_long_body_hits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_include_of_an_endless_file_ends, setup, teardown),
	};

	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
