/*
 * sa_eval.c - check_for_shifted_date and check_outlook_message_id, with
 * SpamAssassin 4.0's HeaderEval semantics; see sa_eval.h.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "sa_eval.h"

#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mxg.h"

/* Bounds a regex run; one that reaches it counts as no match. */
#define SA_EVAL_MATCH_LIMIT	1000000

#define MONTHS "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"

enum {
	RE_DATE_DMY,		/* " 2 Jan 2024 " */
	RE_DATE_ASCTIME,	/* " Jan 2 10:00:00 2024 " */
	RE_DATE_DMY_SHORT,	/* " 2 Jan 24 " */
	RE_TIME,
	RE_ZONE_NUM,
	RE_ZONE_NAME,
	RE_RCVD_DATE,		/* the date in a Received: line */
	RE_RCVD_LOCAL,
	RE_RCVD_QMAIL,
	RE_RCVD_FETCHMAIL,
	RE_OUTLOOK_ID,
	RE_COUNT
};

static const char *const re_text[RE_COUNT] = {
	[RE_DATE_DMY] = "(?i) (\\d+) " MONTHS " (\\d{4}) ",
	[RE_DATE_ASCTIME] = "(?i) " MONTHS " +(\\d+) \\d+:\\d+:\\d+ (\\d{4}) ",
	[RE_DATE_DMY_SHORT] = "(?i) (\\d+) " MONTHS " (\\d{2,3}) ",
	[RE_TIME] = " (\\d?\\d):(\\d\\d)(:(\\d\\d))? ",
	[RE_ZONE_NUM] = " ([-+]\\d{4}) ",
	[RE_ZONE_NAME] = "\\b([A-Z]{2,4}(?:-DST)?)\\b",
	[RE_RCVD_DATE] = "(\\s.?\\d+ \\S\\S\\S \\d+ \\d+:\\d+:\\d+ \\S+)",
	[RE_RCVD_LOCAL] = "\\bfrom (?:localhost\\s|(?:\\S+ ){1,2}\\S*"
	    "\\b127\\.0\\.0\\.1\\b)",
	[RE_RCVD_QMAIL] = "qmail \\d+ invoked by uid \\d+",
	[RE_RCVD_FETCHMAIL] = "\\bby localhost with \\w+ \\(fetchmail-[\\d.]+",
	[RE_OUTLOOK_ID] = "^<[0-9a-f]{4}([0-9a-f]{8})\\$[0-9a-f]{8}\\$"
	    "[0-9a-f]{8}@",
};

static pcre2_code *re_code[RE_COUNT];

static void
out_of_memory(void)
{
	fprintf(stderr, "sa_eval: out of memory\n");
	abort();
}

static pcre2_match_context *re_mctx;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void
re_init(void)
{
	for (int i = 0; i < RE_COUNT; i++) {
		int err;
		PCRE2_SIZE off;

		re_code[i] = pcre2_compile((PCRE2_SPTR)re_text[i],
		    PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
		if (re_code[i] == NULL) {	/* a bug: they are constants */
			fprintf(stderr, "sa_eval: regex %d: error %d\n", i,
			    err);
			abort();
		}
	}
	re_mctx = pcre2_match_context_create(NULL);
	if (re_mctx == NULL)
		out_of_memory();
	pcre2_set_match_limit(re_mctx, SA_EVAL_MATCH_LIMIT);
}

/* A first match of regex id in s[0..len): true with its captures (group
 * g at ov[2g], ov[2g+1]; PCRE2_UNSET for one that did not take part). */
static bool
re_find(int id, const char *s, size_t len, PCRE2_SIZE ov[10])
{
	pthread_once(&re_once, re_init);
	pcre2_match_data *md = pcre2_match_data_create(5, NULL);
	if (md == NULL)
		out_of_memory();
	int rc = pcre2_match(re_code[id], (PCRE2_SPTR)(s != NULL ? s : ""),
	    len, 0, 0, md, re_mctx);
	if (rc > 0) {
		PCRE2_SIZE *v = pcre2_get_ovector_pointer(md);
		uint32_t n = pcre2_get_ovector_count(md);

		for (uint32_t g = 0; g < 5; g++) {
			ov[2 * g] = g < n && g < (uint32_t)rc ? v[2 * g] :
			    PCRE2_UNSET;
			ov[2 * g + 1] = g < n && g < (uint32_t)rc ?
			    v[2 * g + 1] : PCRE2_UNSET;
		}
	}
	pcre2_match_data_free(md);
	return rc > 0;
}

/* A date being taken apart: each part found is cut out. */
struct text {
	char *s;
	size_t len;
};

/* Copies group g of the match just found in t into buf (cut to buflen
 * - 1 bytes); "" when unset. */
static void
group_copy(const struct text *t, const PCRE2_SIZE ov[10], int g, char *buf,
    size_t buflen)
{
	size_t n = 0;

	if (ov[2 * g] != PCRE2_UNSET) {
		n = ov[2 * g + 1] - ov[2 * g];
		if (n >= buflen)
			n = buflen - 1;
		memcpy(buf, t->s + ov[2 * g], n);
	}
	buf[n] = '\0';
}

/* Replaces the whole match with one space. */
static void
splice_space(struct text *t, const PCRE2_SIZE ov[10])
{
	size_t a = ov[0], b = ov[1];

	t->s[a] = ' ';
	memmove(t->s + a + 1, t->s + b, t->len - b);
	t->len = t->len - (b - a) + 1;
}

/* A digit string's value, capped (Perl's number is as large: callers
 * only compare it with small bounds). */
static long
digits_value_n(const char *d, size_t n)
{
	long v = 0;

	for (size_t i = 0; i < n && d[i] >= '0' && d[i] <= '9'; i++)
		if ((v = v * 10 + (d[i] - '0')) > 100000000L)
			v = 100000000L;
	return v;
}

static long
digits_value(const char *d)
{
	return digits_value_n(d, strlen(d));
}

static const struct {
	const char *name;
	int minutes;		/* east of UTC */
} zones[] = {
	{"UT", 0}, {"UTC", 0},
	{"NDT", -150}, {"AST", -240}, {"ADT", -180}, {"NST", -210},
	{"EST", -300}, {"EDT", -240}, {"CST", -360}, {"CDT", -300},
	{"MST", -420}, {"MDT", -360}, {"PST", -480}, {"PDT", -420},
	{"HST", -600}, {"AKST", -540}, {"AKDT", -480}, {"HADT", -540},
	{"HAST", -600},
	{"GMT", 0}, {"BST", 60}, {"IST", 60}, {"WET", 0}, {"WEST", 60},
	{"CET", 60}, {"CEST", 120}, {"EET", 120}, {"EEST", 180},
	{"MSK", 180}, {"MSD", 240}, {"MET", 60}, {"MEZ", 60}, {"MEST", 120},
	{"MESZ", 120},
	{"BRST", -120}, {"BRT", -180},
	{"AEST", 600}, {"AEDT", 660}, {"ACST", 570}, {"ACDT", 630},
	{"AWST", 480},
	{"NZST", 720}, {"NZDT", 780},
	{"JST", 540}, {"KST", 540}, {"HKT", 480}, {"SGT", 480}, {"PHT", 480},
	{"IDT", 180},
};

static int
month_number(const char *m)
{
	static const char *const names[] = {"jan", "feb", "mar", "apr", "may",
	    "jun", "jul", "aug", "sep", "oct", "nov", "dec"};

	for (int i = 0; i < 12; i++)
		if (strcasecmp(m, names[i]) == 0)
			return i + 1;
	return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static long long
days_from_civil(long y, long m, long d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return (long long)era * 146097 + doe - 719468;
}

static bool
is_perl_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

bool
sa_date_parse(const char *date, size_t len, long long *out)
{
	struct text t;
	PCRE2_SIZE ov[10];
	char mon_s[8], yyyy_s[8], buf[8];
	int dd_group;
	long dd, mmm, yyyy, hh = 0, mm = 0, ss = 0;
	int tz_minutes = 0;
	size_t yyyy_len;

	/* " date ", a comma and the spaces after it made one space, each
	 * white-space run one space */
	t.s = mxg_malloc(len + 3);
	t.len = 0;
	t.s[t.len++] = ' ';
	for (size_t i = 0; i < len; i++) {
		char c = date != NULL ? date[i] : ' ';

		if (c == ',') {
			while (i + 1 < len && date[i + 1] == ' ')
				i++;
			c = ' ';
		}
		if (is_perl_space((unsigned char)c)) {
			if (t.s[t.len - 1] == ' ' && t.len > 0)
				continue;
			c = ' ';
		}
		t.s[t.len++] = c;
	}
	if (t.s[t.len - 1] != ' ')
		t.s[t.len++] = ' ';

	if (re_find(RE_DATE_DMY, t.s, t.len, ov)) {
		dd_group = 1;
		group_copy(&t, ov, 2, mon_s, sizeof(mon_s));
		group_copy(&t, ov, 3, yyyy_s, sizeof(yyyy_s));
	} else if (re_find(RE_DATE_ASCTIME, t.s, t.len, ov)) {
		group_copy(&t, ov, 1, mon_s, sizeof(mon_s));
		dd_group = 2;
		group_copy(&t, ov, 3, yyyy_s, sizeof(yyyy_s));
	} else if (re_find(RE_DATE_DMY_SHORT, t.s, t.len, ov)) {
		dd_group = 1;
		group_copy(&t, ov, 2, mon_s, sizeof(mon_s));
		group_copy(&t, ov, 3, yyyy_s, sizeof(yyyy_s));
	} else {
		free(t.s);
		return false;
	}
	dd = digits_value_n(t.s + ov[2 * dd_group], ov[2 * dd_group + 1] -
	    ov[2 * dd_group]);
	splice_space(&t, ov);
	mmm = month_number(mon_s);
	yyyy = digits_value(yyyy_s);
	yyyy_len = strlen(yyyy_s);
	if (yyyy_len == 2 && yyyy < 50)
		yyyy += 2000;
	else if (yyyy_len != 4)
		yyyy += 1900;

	if (re_find(RE_TIME, t.s, t.len, ov)) {
		group_copy(&t, ov, 1, buf, sizeof(buf));
		hh = digits_value(buf);
		group_copy(&t, ov, 2, buf, sizeof(buf));
		mm = digits_value(buf);
		group_copy(&t, ov, 4, buf, sizeof(buf));
		ss = digits_value(buf);
		splice_space(&t, ov);
	}

	if (re_find(RE_ZONE_NUM, t.s, t.len, ov)) {
		group_copy(&t, ov, 1, buf, sizeof(buf));
		int h = (buf[1] - '0') * 10 + (buf[2] - '0');
		int m = (buf[3] - '0') * 10 + (buf[4] - '0');
		tz_minutes = (buf[0] == '-' ? -1 : 1) * (h * 60 + m);
		splice_space(&t, ov);
	} else if (re_find(RE_ZONE_NAME, t.s, t.len, ov)) {
		char name[16];

		group_copy(&t, ov, 1, name, sizeof(name));
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (strcmp(zones[i].name, name) == 0)
				tz_minutes = zones[i].minutes;
	}
	free(t.s);

	if (ss > 59)
		ss = 59;
	if (mm > 59)
		mm = 59;
	if (hh > 23)
		hh = 23;
	long max_dd = 31;
	if (mmm == 4 || mmm == 6 || mmm == 9 || mmm == 11)
		max_dd = 30;
	else if (mmm == 2)
		max_dd = (yyyy % 4 == 0 && (yyyy % 100 != 0 ||
		    yyyy % 400 == 0)) ? 29 : 28;
	if (dd > max_dd) {
		dd = 1;
		if (++mmm > 12) {
			mmm = 1;
			yyyy++;
		}
	}
	if (yyyy > 2037)
		yyyy = 2037;
	else if (yyyy < 1970)
		yyyy = 1970;
	if (dd < 1)		/* Time::Local's timegm croaks */
		return false;

	long long time = days_from_civil(yyyy, mmm, dd) * 86400LL +
	    hh * 3600LL + mm * 60LL + ss;
	long long off = (long long)abs(tz_minutes) * 60;
	if (tz_minutes <= 0)
		time += off;
	else if (time < off)	/* a '+' zone early on 1970-01-01 */
		time = 0;
	else
		time -= off;
	*out = time;
	return true;
}

/* The lines of text that hold a non-space (split /\n/, grep /\S/). */
struct lines {
	const char **s;
	size_t *len;
	size_t n;
};

static void
split_lines(const char *text, size_t len, struct lines *l)
{
	size_t start = 0;

	memset(l, 0, sizeof(*l));
	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != '\n')
			continue;
		bool blank = true;
		for (size_t k = start; k < i && blank; k++)
			blank = is_perl_space((unsigned char)text[k]);
		if (!blank) {
			l->s = mxg_realloc(l->s, (l->n + 1) * sizeof(*l->s));
			l->len = mxg_realloc(l->len, (l->n + 1) *
			    sizeof(*l->len));
			l->s[l->n] = text + start;
			l->len[l->n++] = i - start;
		}
		start = i + 1;
	}
}

long long
sa_date_diff(const char *const *dates, size_t ndates, const char *received,
    size_t received_len)
{
	long long date_time = 0, t;
	bool have_date = false;
	PCRE2_SIZE ov[10];

	for (size_t i = 0; i < ndates && !have_date; i++)
		if (dates[i] != NULL && dates[i][0] != '\0')
			have_date = sa_date_parse(dates[i], strlen(dates[i]),
			    &date_time);
	if (!have_date || received == NULL)
		return 0;

	struct lines l;
	split_lines(received, received_len, &l);
	/* fetchmail's own headers on top are left out */
	size_t first = 0;
	if (l.n > 0 && (re_find(RE_RCVD_LOCAL, l.s[0], l.len[0], ov) ||
	    re_find(RE_RCVD_QMAIL, l.s[0], l.len[0], ov))) {
		if (l.n > 1 && re_find(RE_RCVD_FETCHMAIL, l.s[1], l.len[1],
		    ov))
			first = 2;
	} else if (l.n > 0 && re_find(RE_RCVD_FETCHMAIL, l.s[0], l.len[0],
	    ov)) {
		first = 1;
	}

	long long *diffs = mxg_malloc((l.n + 1) * sizeof(*diffs));
	size_t n = 0;
	for (size_t i = first; i < l.n; i++) {
		if (!re_find(RE_RCVD_DATE, l.s[i], l.len[i], ov))
			continue;
		if (sa_date_parse(l.s[i] + ov[2], ov[3] - ov[2], &t))
			diffs[n++] = date_time - t;
	}
	free(l.s);
	free(l.len);

	long long best = 0;
	if (n > 1 && diffs[n - 1] == 0)	/* the last hop's own stamp */
		n--;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || llabs(diffs[i]) < llabs(best))
			best = diffs[i];
	free(diffs);
	return best;
}

bool
sa_shifted_date_hits(const struct sa_eval_call *call, long long diff)
{
	double d = (double)diff;

	return (!call->has_min || d >= 3600 * call->min_hours) &&
	    (!call->has_max || d < 3600 * call->max_hours);
}

/* int($time * $x + $y): the token Outlook would have written. */
static long long
outlook_expected(long long time)
{
	double v = (double)time * 0.0023283064365387;

	v += 27111902.8329849;
	return (long long)trunc(v);
}

bool
sa_outlook_msgid_hits(const char *msgid, size_t msgid_len, const char *date,
    size_t date_len, const char *received, size_t received_len)
{
	PCRE2_SIZE ov[10];
	char hex[16];
	long long t = 0;

	if (msgid == NULL || !re_find(RE_OUTLOOK_ID, msgid, msgid_len, ov))
		return false;
	size_t n = ov[3] - ov[2];
	memcpy(hex, msgid + ov[2], n);
	hex[n] = '\0';
	long long token = strtoll(hex, NULL, 16);
	const long long fudge = 250;

	if (!sa_date_parse(date, date != NULL ? date_len : 0, &t))
		t = 0;
	if (llabs(token - outlook_expected(t)) < fudge)
		return false;
	/* SpamAssassin parses every Received: header as one date */
	if (!sa_date_parse(received, received != NULL ? received_len : 0,
	    &t))
		t = 0;
	return llabs(token - outlook_expected(t)) >= fudge;
}

/* One argument: 'x', "x" or a bare word; its text in buf. */
static const char *
parse_arg(const char *p, char *buf, size_t buflen)
{
	size_t n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\'' || *p == '"') {
		char q = *p++;
		while (*p != '\0' && *p != q) {
			if (n + 1 >= buflen)
				return NULL;
			buf[n++] = *p++;
		}
		if (*p != q)
			return NULL;
		p++;
	} else {
		while (*p != '\0' && *p != ',' && *p != ')' && *p != ' ' &&
		    *p != '\t') {
			if (n + 1 >= buflen)
				return NULL;
			buf[n++] = *p++;
		}
	}
	buf[n] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	return n > 0 ? p : NULL;
}

/* 'undef' or a decimal number. */
static bool
parse_bound(const char *s, bool *has, double *v)
{
	char *end;

	if (strcmp(s, "undef") == 0) {
		*has = false;
		return true;
	}
	*v = strtod(s, &end);
	*has = true;
	return end != s && *end == '\0' && isfinite(*v) &&
	    strpbrk(s, "xXnN") == NULL;
}

static bool
only_space(const char *p)
{
	while (is_perl_space((unsigned char)*p))
		p++;
	return *p == '\0';
}

bool
sa_eval_parse(const char *text, struct sa_eval_call *call)
{
	static const char shifted[] = "eval:check_for_shifted_date(";
	static const char outlook[] = "eval:check_outlook_message_id(";
	char a[32], b[32];
	const char *p;

	memset(call, 0, sizeof(*call));
	if (strncmp(text, outlook, sizeof(outlook) - 1) == 0) {
		p = text + sizeof(outlook) - 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != ')' || !only_space(p + 1))
			return false;
		call->fn = SA_EVAL_OUTLOOK_MSGID;
		return true;
	}
	if (strncmp(text, shifted, sizeof(shifted) - 1) != 0)
		return false;
	p = parse_arg(text + sizeof(shifted) - 1, a, sizeof(a));
	if (p == NULL || *p != ',')
		return false;
	p = parse_arg(p + 1, b, sizeof(b));
	if (p == NULL || *p != ')' || !only_space(p + 1))
		return false;
	if (!parse_bound(a, &call->has_min, &call->min_hours) ||
	    !parse_bound(b, &call->has_max, &call->max_hours))
		return false;
	call->fn = SA_EVAL_SHIFTED_DATE;
	return true;
}
