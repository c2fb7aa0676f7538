#define PCRE2_CODE_UNIT_WIDTH 8
#include "rules.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <gmime/gmime.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "message.h"
#include "mxg.h"
#include "sa_eval.h"

#define RULES_LINE_MAX 65536
#define RULES_INCLUDE_DEPTH 8
#define RULES_MULTIPLE_MAX 1000	/* hits counted per rule and message */
#define META_DEPTH_MAX 64
#define BLOCKS_MAX 64		/* if/ifplugin blocks open at once */
#define REPLACE_PASSES 6	/* SpamAssassin's ReplaceTags: 1 + 5 again */

/* SpamAssassin's text limits (Constants.pm, Conf.pm defaults). */
#define SA_BODY_LINE_MAX 2048		/* MAX_BODY_LINE_LENGTH */
#define SA_BODY_PART_MAX 50000		/* body_part_scan_size */
#define SA_RAWBODY_PART_MAX 500000	/* rawbody_part_scan_size */

/* The SpamAssassin this engine reads rules for: `if (version >= ...)`. */
#define SA_VERSION 4.000001
#define SA_PERL_VERSION 5.036000

enum rule_type {
	RULE_NONE,		/* only score/describe/tflags lines so far */
	RULE_HEADER,
	RULE_EXISTS,
	RULE_BODY,
	RULE_RAWBODY,
	RULE_FULL,
	RULE_URI,
	RULE_META,
	RULE_OPAQUE,		/* SpamAssassin runs it, this engine cannot */
	RULE_EVAL,		/* an eval: test sa_eval.h runs */
};

/* Header modifiers (Name:raw:addr ...). */
#define HMOD_RAW	0x01
#define HMOD_ADDR	0x02
#define HMOD_NAME	0x04
#define HMOD_FIRST	0x08
#define HMOD_LAST	0x10

/* tflags this engine acts on; a tflags line replaces the earlier one. */
#define TF_MULTIPLE	0x01
#define TF_NICE		0x02
#define TF_NET		0x04
#define TF_LEARN	0x08
#define TF_NOSUBJECT	0x10

enum meta_op {
	META_NUM, META_RULE, META_NOT, META_NEG, META_AND, META_OR, META_ADD,
	META_SUB, META_MUL, META_DIV, META_LT, META_GT, META_LE, META_GE,
	META_EQ, META_NE, META_CALL,
};

struct meta_node {
	enum meta_op op;
	double number;
	char *name;		/* META_RULE; META_CALL: the function */
	char *arg;		/* META_CALL: its argument */
	long index;		/* META_RULE: resolved, -1: no such rule */
	struct meta_node *left, *right;
};

struct rule {
	char *name;
	enum rule_type type;
	char *header;		/* header and exists: rules */
	unsigned int hmods;
	long hspec;		/* index into the set's header specs */
	bool negate;
	char *if_unset;
	char *pattern;		/* the regex as SpamAssassin keeps it */
	pcre2_code *re;
	struct meta_node *meta;
	struct sa_eval_call call;	/* RULE_EVAL */
	double scores[4];
	bool has_score;
	double score;		/* the one in force */
	char *description;
	unsigned int tflags;
	int maxhits;		/* with TF_MULTIPLE; 0: no limit */
	bool replace;		/* named by replace_rules */
	bool dns;		/* a DNS list test (askdns, urirhssub, ...) */
	char *where;
	bool broken;		/* an error: never runs */
	/* worked out when loading ends (finish) */
	bool runs;		/* SpamAssassin runs it: score in force not 0 */
	bool unsolved;		/* meta in (or over) a loop: always 0 */
	bool never;		/* meta over a meta that never runs */
};

/* A header as rules ask for it ("From:addr"): one value per message. */
struct header_spec {
	char *name;
	unsigned int hmods;
};

struct ruleset {
	struct rule *rules;
	size_t count;
	GHashTable *index;	/* name -> position + 1 */
	struct header_spec *specs;
	size_t nspecs;
	struct rules_options options;
	pcre2_match_context *mctx;
	pcre2_code *addr_re;	/* SpamAssassin's header address parser */
	pcre2_code *group_re;
	pcre2_code *phrase_re;
	pcre2_code *mailre;
	pcre2_code *comment_re;
	GHashTable *tlds;	/* util_rb_tld: valid top-level domains */
	pcre2_code *uri_re;	/* SpamAssassin's URI finder for text */
};

/* ---------------------------------------------------------------- load */

struct name_value {
	char *name;
	char *value;
};

struct block {
	bool parent_on;		/* the enclosing text is read */
	bool cond;		/* the condition held */
	bool in_else;
};

struct loader {
	struct ruleset *set;
	struct rules_report *report;
	struct block blocks[BLOCKS_MAX];
	int open_blocks;	/* if/ifplugin blocks open */
	int overflow_blocks;	/* blocks past the 64th: refused */
	char **plugins;		/* loaded, as SpamAssassin would have them */
	size_t nplugins;
	struct name_value *tags[4];	/* replace_tag, _pre, _post, _inter */
	size_t ntags[4];
	char *replace_start, *replace_end;
	char *open_files[RULES_INCLUDE_DEPTH + 1];	/* being read */
	int nopen_files;
	int depth;		/* include nesting */
};

/* The plugins Debian's SpamAssassin 4.0 loads (its .pre files): their
 * ifplugin blocks are read, any other plugin's are skipped. */
static const char *const default_plugins[] = {
	"AskDNS", "AutoLearnThreshold", "Bayes", "BodyEval", "Check", "DKIM",
	"DMARC", "DNSEval", "FreeMail", "HTMLEval", "HTTPSMismatch", "HashBL",
	"HeaderEval", "ImageInfo", "MIMEEval", "MIMEHeader", "Pyzor",
	"Razor2", "RelayEval", "ReplaceTags", "SPF", "SpamCop", "URIDNSBL",
	"URIDetail", "URIEval", "VBounce", "WLBLEval", "WelcomeListSubject",
	NULL,
};

/* What `if can(Mail::SpamAssassin::Conf::...)` answers in 4.0.1. */
static const char *const conf_features[] = {
	"compat_welcomelist_blocklist", "feature_bayes_stopwords",
	"feature_bug6558_free", "feature_capture_rules",
	"feature_dns_block_rule", "feature_dns_local_ports_permit_avoid",
	"feature_originating_ip_headers", "feature_registryboundaries",
	"feature_welcomelist_blocklist", "feature_yesno_takes_args",
	"perl_min_version_5010000", NULL,
};

static void
diag(struct rules_diag **list, size_t *n, const char *file, int line,
    const char *group, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void
diag(struct rules_diag **list, size_t *n, const char *file, int line,
    const char *group, const char *fmt, ...)
{
	char where[1100], text[600];
	va_list ap;

	snprintf(where, sizeof(where), "%s:%d", file, line);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			*p = '?';
	if ((*n & (*n - 1)) == 0)	/* grow by doubling */
		*list = mxg_realloc(*list, (*n ? *n * 2 : 8) * sizeof(**list));
	(*list)[*n].where = mxg_strdup(where);
	(*list)[*n].text = mxg_strdup(text);
	(*list)[*n].group = mxg_strdup(group ? group : "");
	(*n)++;
}

#define ERROR(ld, file, line, ...) \
	diag(&(ld)->report->errors, &(ld)->report->nerrors, file, line, NULL, \
	    __VA_ARGS__)
#define WARN(ld, file, line, group, ...) \
	diag(&(ld)->report->warnings, &(ld)->report->nwarnings, file, line, \
	    group, __VA_ARGS__)

static struct rule *
rule_find(const struct ruleset *set, const char *name)
{
	gpointer v = g_hash_table_lookup(set->index, name);

	return v != NULL ? &set->rules[GPOINTER_TO_SIZE(v) - 1] : NULL;
}

static struct rule *
rule_get(struct ruleset *set, const char *name)
{
	struct rule *r = rule_find(set, name);

	if (r != NULL)
		return r;
	if ((set->count & (set->count - 1)) == 0)	/* grow by doubling */
		set->rules = mxg_realloc(set->rules, (set->count ?
		    set->count * 2 : 1) * sizeof(*r));
	r = &set->rules[set->count++];
	memset(r, 0, sizeof(*r));
	r->name = mxg_strdup(name);
	r->hspec = -1;
	g_hash_table_insert(set->index, r->name,
	    GSIZE_TO_POINTER(set->count));
	return r;
}

static void
meta_free(struct meta_node *n)
{
	if (n == NULL)
		return;
	meta_free(n->left);
	meta_free(n->right);
	free(n->name);
	free(n->arg);
	free(n);
}

static void
rule_clear_test(struct rule *r)
{
	free(r->header);
	free(r->if_unset);
	free(r->pattern);
	if (r->re != NULL)
		pcre2_code_free(r->re);
	meta_free(r->meta);
	r->header = r->if_unset = r->pattern = NULL;
	r->re = NULL;
	r->meta = NULL;
	r->negate = false;
	r->hmods = 0;
	r->broken = false;
	r->dns = false;
	memset(&r->call, 0, sizeof(r->call));
}

/* Strips a comment (an unescaped '#') and trailing blanks; "\#" -> "#". */
static void
strip_comment(char *line)
{
	char *o = line;

	for (char *p = line; *p; p++) {
		if (*p == '\\' && p[1] == '#') {
			*o++ = '#';
			p++;
			continue;
		}
		if (*p == '#')
			break;
		*o++ = *p;
	}
	*o = '\0';
	while (o > line && isspace((unsigned char)o[-1]))
		*--o = '\0';
}

static char *
next_word(char **cursor)
{
	char *p = *cursor, *start;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return NULL;
	start = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	if (*p)
		*p++ = '\0';
	*cursor = p;
	return start;
}

static char *
rest_of_line(char *cursor)
{
	while (isspace((unsigned char)*cursor))
		cursor++;
	return cursor;
}

/* Compiles a pattern as SpamAssassin keeps it ("(?i)re"); NULL with why
 * filled. */
static pcre2_code *
compile_pattern(const char *pattern, char *why, size_t whylen)
{
	int errcode;
	PCRE2_SIZE erroffset;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern,
	    PCRE2_ZERO_TERMINATED, 0, &errcode, &erroffset, NULL);

	if (re == NULL) {
		PCRE2_UCHAR msg[200];

		pcre2_get_error_message(errcode, msg, sizeof(msg));
		snprintf(why, whylen, "regex error at offset %zu: %s",
		    (size_t)erroffset, (const char *)msg);
		return NULL;
	}
	/* JIT where it can; the interpreter where it cannot (still
	 * correct, and still bounded by the match limit). */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

/*
 * Reads a Perl-style regex: /re/flags or m<delim>re<delim>flags; the
 * pattern ends at the last delimiter, as SpamAssassin reads it. Returns
 * the pattern as SpamAssassin keeps it, "(?flags)re" (caller frees), or
 * NULL with why filled. Offsets in compile errors count from the regex's
 * first character, as they did before the flags moved inside.
 */
static char *
regex_pattern(const char *text, char *why, size_t whylen)
{
	char open, close, flags[8];
	const char *p = text, *end;
	size_t nflags = 0;

	if (*p == 'm' && p[1] != '\0' && !isalnum((unsigned char)p[1]) &&
	    !isspace((unsigned char)p[1]))
		p++;
	open = *p;
	if (open == '\0' || isalnum((unsigned char)open) ||
	    isspace((unsigned char)open)) {
		snprintf(why, whylen, "expected /regex/, got '%.40s'", text);
		return NULL;
	}
	close = open == '{' ? '}' : open == '(' ? ')' : open == '<' ? '>' :
	    open == '[' ? ']' : open;
	end = strrchr(p + 1, close);
	if (end == NULL) {
		snprintf(why, whylen, "regex without closing '%c'", close);
		return NULL;
	}
	for (const char *f = end + 1; *f && !isspace((unsigned char)*f); f++) {
		switch (*f) {
		case 'i': case 's': case 'm': case 'x':
			if (memchr(flags, *f, nflags) == NULL)
				flags[nflags++] = *f;
			break;
		case 'g': case 'o': break;	/* no meaning here */
		default:
			snprintf(why, whylen, "unknown regex flag '%c'", *f);
			return NULL;
		}
	}
	struct strbuf sb = STRBUF_INIT;
	if (nflags > 0) {
		strbuf_puts(&sb, "(?");
		strbuf_append(&sb, flags, nflags);
		strbuf_putc(&sb, ')');
	}
	strbuf_append(&sb, p + 1, (size_t)(end - p - 1));
	return strbuf_steal(&sb);
}

static void make_opaque(struct loader *ld, struct rule *r, const char *file,
    int line, const char *group, const char *what);

/* Compiles r's pattern; an error names the rule (what: its directive). */
static bool
rule_compile(struct loader *ld, struct rule *r, const char *what,
    const char *file, int line)
{
	char why[300];
	size_t prefix = 0;

	if (r->re != NULL)
		pcre2_code_free(r->re);
	r->re = compile_pattern(r->pattern, why, sizeof(why));
	if (r->re != NULL)
		return true;
	if (strstr(why, "too large") != NULL) {
		/* Perl has no such limit: SpamAssassin runs it */
		make_opaque(ld, r, file, line, "regex too large",
		    "too large for PCRE2");
		return false;
	}
	/* offsets as the user wrote the regex: without "(?flags)" */
	if (strncmp(r->pattern, "(?", 2) == 0 && strchr(r->pattern, ')'))
		prefix = (size_t)(strchr(r->pattern, ')') - r->pattern) + 1;
	if (prefix > 0 && strncmp(why, "regex error at offset ", 22) == 0) {
		char *rest;
		unsigned long off = strtoul(why + 22, &rest, 10);

		if (off >= prefix) {
			char fixed[300];

			snprintf(fixed, sizeof(fixed), "regex error at offset "
			    "%lu%s", off - prefix, rest);
			snprintf(why, sizeof(why), "%s", fixed);
		}
	}
	ERROR(ld, file, line, "%s %s: %s", what, r->name, why);
	r->broken = true;
	return false;
}

/* ---- meta expressions: recursive descent, Perl's precedence ---- */

struct meta_parser {
	const char *p;
	char why[200];
	int depth;
	bool calls;		/* name(arg) allowed: if lines, rules_matching */
};

static void
meta_skip(struct meta_parser *mp)
{
	while (isspace((unsigned char)*mp->p))
		mp->p++;
}

static struct meta_node *
meta_new(enum meta_op op, struct meta_node *l, struct meta_node *r)
{
	struct meta_node *n = mxg_calloc(1, sizeof(*n));

	n->op = op;
	n->left = l;
	n->right = r;
	n->index = -1;
	return n;
}

static struct meta_node *meta_or(struct meta_parser *mp);

static struct meta_node *
meta_primary(struct meta_parser *mp)
{
	meta_skip(mp);
	if (++mp->depth > META_DEPTH_MAX) {
		snprintf(mp->why, sizeof(mp->why), "expression nested too deep");
		return NULL;
	}
	struct meta_node *n = NULL;
	if (*mp->p == '(') {
		mp->p++;
		n = meta_or(mp);
		meta_skip(mp);
		if (n != NULL && *mp->p != ')') {
			snprintf(mp->why, sizeof(mp->why), "missing ')'");
			meta_free(n);
			n = NULL;
		} else if (n != NULL) {
			mp->p++;
		}
	} else if (*mp->p == '!') {
		mp->p++;
		struct meta_node *a = meta_primary(mp);
		n = a ? meta_new(META_NOT, a, NULL) : NULL;
	} else if (*mp->p == '-') {
		mp->p++;
		struct meta_node *a = meta_primary(mp);
		n = a ? meta_new(META_NEG, a, NULL) : NULL;
	} else if (isdigit((unsigned char)*mp->p) || *mp->p == '.') {
		char *end;
		n = meta_new(META_NUM, NULL, NULL);
		n->number = strtod(mp->p, &end);
		mp->p = end;
	} else if (isalpha((unsigned char)*mp->p) || *mp->p == '_') {
		const char *s = mp->p;
		while (isalnum((unsigned char)*mp->p) || *mp->p == '_')
			mp->p++;
		size_t len = (size_t)(mp->p - s);
		const char *q = mp->p;
		while (isspace((unsigned char)*q))
			q++;
		if (mp->calls && *q == '(') {
			/* name(argument): the argument is taken as it is */
			const char *a = q + 1, *close = strchr(a, ')');

			if (close == NULL) {
				snprintf(mp->why, sizeof(mp->why),
				    "missing ')'");
			} else {
				n = meta_new(META_CALL, NULL, NULL);
				n->name = mxg_strndup(s, len);
				while (a < close && isspace((unsigned char)*a))
					a++;
				const char *e = close;
				while (e > a && isspace((unsigned char)e[-1]))
					e--;
				n->arg = mxg_strndup(a, (size_t)(e - a));
				mp->p = close + 1;
			}
		} else {
			n = meta_new(META_RULE, NULL, NULL);
			n->name = mxg_strndup(s, len);
		}
	} else {
		snprintf(mp->why, sizeof(mp->why), "unexpected '%.10s'",
		    *mp->p ? mp->p : "end");
	}
	mp->depth--;
	return n;
}

struct binop {
	const char *text;
	enum meta_op op;
};

/* One precedence level: operand (op operand)*. */
static struct meta_node *
meta_level(struct meta_parser *mp, const struct binop *ops,
    struct meta_node *(*operand)(struct meta_parser *))
{
	struct meta_node *left = operand(mp);

	while (left != NULL) {
		const struct binop *found = NULL;

		meta_skip(mp);
		for (const struct binop *o = ops; o->text != NULL; o++)
			if (strncmp(mp->p, o->text, strlen(o->text)) == 0) {
				found = o;
				break;
			}
		if (found == NULL)
			break;
		mp->p += strlen(found->text);
		struct meta_node *right = operand(mp);
		if (right == NULL) {
			meta_free(left);
			return NULL;
		}
		left = meta_new(found->op, left, right);
	}
	return left;
}

static struct meta_node *
meta_mul(struct meta_parser *mp)
{
	static const struct binop ops[] = {{"*", META_MUL}, {"/", META_DIV},
	    {NULL, 0}};
	return meta_level(mp, ops, meta_primary);
}

static struct meta_node *
meta_add(struct meta_parser *mp)
{
	static const struct binop ops[] = {{"+", META_ADD}, {"-", META_SUB},
	    {NULL, 0}};
	return meta_level(mp, ops, meta_mul);
}

static struct meta_node *
meta_cmp(struct meta_parser *mp)
{
	static const struct binop ops[] = {{"<=", META_LE}, {">=", META_GE},
	    {"<", META_LT}, {">", META_GT}, {NULL, 0}};
	return meta_level(mp, ops, meta_add);
}

static struct meta_node *
meta_eq(struct meta_parser *mp)
{
	static const struct binop ops[] = {{"==", META_EQ}, {"!=", META_NE},
	    {NULL, 0}};
	return meta_level(mp, ops, meta_cmp);
}

static struct meta_node *
meta_and(struct meta_parser *mp)
{
	static const struct binop ops[] = {{"&&", META_AND}, {NULL, 0}};
	return meta_level(mp, ops, meta_eq);
}

static struct meta_node *
meta_or(struct meta_parser *mp)
{
	static const struct binop ops[] = {{"||", META_OR}, {NULL, 0}};
	return meta_level(mp, ops, meta_and);
}

/* A meta expression, or (calls) an if line's condition. */
static struct meta_node *
meta_parse(const char *text, bool calls, char *why, size_t whylen)
{
	struct meta_parser mp = {text, "", 0, calls};
	struct meta_node *n = meta_or(&mp);

	meta_skip(&mp);
	if (n != NULL && *mp.p != '\0') {
		snprintf(mp.why, sizeof(mp.why), "unexpected '%.20s'", mp.p);
		meta_free(n);
		n = NULL;
	}
	if (n == NULL)
		snprintf(why, whylen, "meta: %s", mp.why);
	return n;
}

/* A meta is checked when it is read: only rules_matching() calls. */
static bool
meta_calls_ok(const struct meta_node *n, char *why, size_t whylen)
{
	if (n == NULL)
		return true;
	if (n->op == META_CALL && strcmp(n->name, "rules_matching") != 0) {
		snprintf(why, whylen, "meta: unknown function '%.40s'",
		    n->name);
		return false;
	}
	return meta_calls_ok(n->left, why, whylen) &&
	    meta_calls_ok(n->right, why, whylen);
}

static bool
name_in(const char *name, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/* "Mail::SpamAssassin::Plugin::X" -> "X"; other names as they are. */
static const char *
plugin_short_name(const char *name)
{
	static const char prefix[] = "Mail::SpamAssassin::Plugin::";

	return strncmp(name, prefix, sizeof(prefix) - 1) == 0 ?
	    name + sizeof(prefix) - 1 : name;
}

static bool
plugin_loaded(const struct loader *ld, const char *name)
{
	const char *s = plugin_short_name(name);

	/* renamed in 4.0; still answered for the old names */
	if (strcmp(s, "Dmarc") == 0)
		s = "DMARC";
	else if (strcmp(s, "WhiteListSubject") == 0)
		s = "WelcomeListSubject";
	else if (strcmp(s, "RaciallyCharged") == 0)
		return true;
	for (size_t i = 0; i < ld->nplugins; i++)
		if (strcmp(ld->plugins[i], s) == 0)
			return true;
	return false;
}

static void
plugin_add(struct loader *ld, const char *name)
{
	const char *s = plugin_short_name(name);

	if (plugin_loaded(ld, s))
		return;
	ld->plugins = mxg_realloc(ld->plugins, (ld->nplugins + 1) *
	    sizeof(*ld->plugins));
	ld->plugins[ld->nplugins++] = mxg_strdup(s);
}

/* can(Module::method) as SpamAssassin 4.0.1 answers it. */
static bool
cond_can(const struct loader *ld, const char *arg)
{
	static const char conf[] = "Mail::SpamAssassin::Conf::";
	const char *method = strrchr(arg, ':');

	if (strncmp(arg, conf, sizeof(conf) - 1) == 0)
		return name_in(arg + sizeof(conf) - 1, conf_features);
	if (method == NULL || method == arg || method[-1] != ':')
		return false;
	/* Plugin::X::has_y: X is loaded (every has_ method of 4.0.1's
	 * plugins answers true) */
	char *module = mxg_strndup(arg, (size_t)(method - 1 - arg));
	bool yes = strncmp(method + 1, "has_", 4) == 0 &&
	    plugin_loaded(ld, module);
	free(module);
	return yes;
}

/* An if line's condition; NAN for an expression it cannot read. */
static double
cond_eval(const struct loader *ld, const struct meta_node *n)
{
	double a, b;

	switch (n->op) {
	case META_NUM:
		return n->number;
	case META_RULE:
		if (strcmp(n->name, "version") == 0)
			return SA_VERSION;
		if (strcmp(n->name, "perl_version") == 0)
			return SA_PERL_VERSION;
		if (strcmp(n->name, "local_tests_only") == 0)
			return (ld->set->options.score_set & 1) == 0;
		return NAN;
	case META_CALL:
		if (strcmp(n->name, "plugin") == 0)
			return plugin_loaded(ld, n->arg);
		if (strcmp(n->name, "can") == 0 || strcmp(n->name, "has") == 0)
			return cond_can(ld, n->arg);
		return NAN;
	case META_NOT:
		a = cond_eval(ld, n->left);
		return isnan(a) ? a : a == 0;
	case META_NEG:
		return -cond_eval(ld, n->left);
	default:
		break;
	}
	a = cond_eval(ld, n->left);
	b = cond_eval(ld, n->right);
	if (isnan(a) || isnan(b))
		return NAN;
	switch (n->op) {
	case META_AND: return a != 0 ? b : a;
	case META_OR: return a != 0 ? a : b;
	case META_ADD: return a + b;
	case META_SUB: return a - b;
	case META_MUL: return a * b;
	case META_DIV: return b == 0 ? NAN : a / b;
	case META_LT: return a < b;
	case META_GT: return a > b;
	case META_LE: return a <= b;
	case META_GE: return a >= b;
	case META_EQ: return a == b;
	case META_NE: return a != b;
	default: return NAN;
	}
}

static void
set_where(struct rule *r, const char *file, int line)
{
	char where[1100];

	snprintf(where, sizeof(where), "%s:%d", file, line);
	free(r->where);
	r->where = mxg_strdup(where);
}

/* Header names SpamAssassin computes from its Received parser or the
 * envelope: this engine has no value for them. */
static bool
header_is_opaque(const char *name)
{
	static const char *const names[] = {
		"X-Spam-Relays-Untrusted", "X-Spam-Relays-Trusted",
		"X-Spam-Relays-External", "X-Spam-Relays-Internal",
		"EnvelopeFrom", NULL,
	};

	if (strcmp(name, "ALL-TRUSTED") == 0 ||
	    strcmp(name, "ALL-INTERNAL") == 0 ||
	    strcmp(name, "ALL-UNTRUSTED") == 0 ||
	    strcmp(name, "ALL-EXTERNAL") == 0)
		return true;
	for (const char *const *n = names; *n != NULL; n++)
		if (strcasecmp(name, *n) == 0)
			return true;
	return false;
}

static void
make_opaque(struct loader *ld, struct rule *r, const char *file, int line,
    const char *group, const char *what)
{
	rule_clear_test(r);
	r->type = RULE_OPAQUE;
	WARN(ld, file, line, group, "%s %s: %s", group, r->name, what);
	ld->report->skipped++;
}

/* Reads Name[:mod[:mod]] from spec; false (error reported) when bad. */
static bool
header_spec_parse(struct loader *ld, struct rule *r, char *spec,
    const char *file, int line, bool *opaque_mod)
{
	char *mod = strchr(spec, ':');

	*opaque_mod = false;
	if (mod != NULL)
		*mod++ = '\0';
	while (mod != NULL && *mod != '\0') {	/* "Name:" is "Name" */
		char *next = strchr(mod, ':');

		if (next != NULL)
			*next++ = '\0';
		if (strcmp(mod, "raw") == 0)
			r->hmods |= HMOD_RAW;
		else if (strcmp(mod, "addr") == 0)
			r->hmods |= HMOD_ADDR;
		else if (strcmp(mod, "name") == 0)
			r->hmods |= HMOD_NAME;
		else if (strcmp(mod, "first") == 0)
			r->hmods |= HMOD_FIRST;
		else if (strcmp(mod, "last") == 0)
			r->hmods |= HMOD_LAST;
		else if (strcmp(mod, "host") == 0 ||
		    strcmp(mod, "domain") == 0 || strcmp(mod, "ip") == 0 ||
		    strcmp(mod, "revip") == 0)
			*opaque_mod = true;
		else {
			ERROR(ld, file, line, "header %s: unknown modifier "
			    ":%s", r->name, mod);
			r->broken = true;
			return false;
		}
		mod = next;
	}
	if (*spec == '\0') {
		ERROR(ld, file, line, "header %s: nothing to test", r->name);
		r->broken = true;
		return false;
	}
	r->header = mxg_strdup(spec);
	return true;
}

/* header NAME Header[:mod] =~ /re/ [if-unset: text] | exists:Header */
static void
parse_header_rule(struct loader *ld, struct rule *r, char *cursor,
    const char *file, int line)
{
	char why[300];
	char *text = rest_of_line(cursor);
	bool opaque_mod;

	if (*text == '\0') {
		ERROR(ld, file, line, "header %s: nothing to test", r->name);
		r->broken = true;
		return;
	}
	if (strncmp(text, "exists:", 7) == 0) {
		char *spec = next_word(&cursor) + 7;

		r->type = RULE_EXISTS;
		if (!header_spec_parse(ld, r, spec, file, line, &opaque_mod))
			return;
		if (opaque_mod || header_is_opaque(r->header))
			make_opaque(ld, r, file, line, "unsupported header",
			    "no value for this header");
		return;
	}
	/* Name[:mods] then =~ or !~, blanks around them optional */
	char *p = text;
	while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '-' ||
	    *p == '.' || *p == ':'))
		p++;
	char *spec = mxg_strndup(text, (size_t)(p - text));
	while (isspace((unsigned char)*p))
		p++;
	if (spec[0] == '\0' || !((p[0] == '=' || p[0] == '!') &&
	    p[1] == '~')) {
		char *shown = spec[0] != '\0' ? spec : text;
		char *sp = shown;
		while (*sp && !isspace((unsigned char)*sp))
			sp++;
		*sp = '\0';
		ERROR(ld, file, line, "header %s: expected =~ or !~ after %s",
		    r->name, shown);
		r->broken = true;
		free(spec);
		return;
	}
	r->type = RULE_HEADER;
	r->negate = p[0] == '!';
	bool ok = header_spec_parse(ld, r, spec, file, line, &opaque_mod);
	free(spec);
	if (!ok)
		return;
	char *regex = rest_of_line(p + 2);
	/* [if-unset: text] comes off first: its text may hold the regex's
	 * delimiter, and the regex ends at the last delimiter. */
	char *unset = strstr(regex, "[if-unset:");
	if (unset != NULL) {
		char *close = strrchr(unset, ']');
		char *v = rest_of_line(unset + 10);
		r->if_unset = mxg_strndup(v, close && close > v ?
		    (size_t)(close - v) : strlen(v));
		while (unset > regex && isspace((unsigned char)unset[-1]))
			unset--;
		*unset = '\0';
	}
	r->pattern = regex_pattern(regex, why, sizeof(why));
	if (r->pattern == NULL) {
		ERROR(ld, file, line, "header %s: %s", r->name, why);
		r->broken = true;
		return;
	}
	if (!rule_compile(ld, r, "header", file, line))
		return;
	if (opaque_mod || header_is_opaque(r->header))
		make_opaque(ld, r, file, line, "unsupported header",
		    "no value for this header");
	else if (strstr(r->pattern, "%{") != NULL)
		make_opaque(ld, r, file, line, "capture template",
		    "%{...} templates are not supported");
}

static void load_file(struct loader *ld, const char *path);

static void
set_scores(struct loader *ld, struct rule *r, char *cursor, const char *file,
    int line)
{
	double v[4];
	int n = 0;
	char *w;

	while ((w = next_word(&cursor)) != NULL) {
		char *end;
		double value;

		/* "(1.5)": a score the rescorer may not change; 1.5 here */
		size_t wl = strlen(w);
		if (wl > 2 && w[0] == '(' && w[wl - 1] == ')') {
			w[wl - 1] = '\0';
			w++;
		}
		errno = 0;
		value = strtod(w, &end);
		if (end == w || *end != '\0' || errno || !isfinite(value)) {
			ERROR(ld, file, line, "score %s: '%s' is not a number",
			    r->name, w);
			return;
		}
		if (n < 4)
			v[n] = value;
		n++;
	}
	if (n != 1 && n != 4) {
		ERROR(ld, file, line, "score %s: give 1 or 4 scores, not %d",
		    r->name, n);
		return;
	}
	for (int i = 0; i < 4; i++)
		r->scores[i] = n == 1 ? v[0] : v[i];
	r->has_score = true;
}

/* A tflags line replaces the rule's earlier one, as in SpamAssassin;
 * maxhits=N counts only with multiple. */
static void
parse_tflags(struct rule *r, char *cursor)
{
	char *w;

	r->tflags = 0;
	r->maxhits = 0;
	while ((w = next_word(&cursor)) != NULL) {
		if (strcmp(w, "nice") == 0)
			r->tflags |= TF_NICE;
		else if (strcmp(w, "multiple") == 0)
			r->tflags |= TF_MULTIPLE;
		else if (strcmp(w, "net") == 0)
			r->tflags |= TF_NET;
		else if (strcmp(w, "learn") == 0)
			r->tflags |= TF_LEARN;
		else if (strcmp(w, "nosubject") == 0)
			r->tflags |= TF_NOSUBJECT;
		else if (strncmp(w, "maxhits=", 8) == 0) {
			long m = strtol(w + 8, NULL, 10);
			r->maxhits = m > 0 && m < RULES_MULTIPLE_MAX ? (int)m :
			    0;
		}
	}
}

static bool
valid_name(const char *name)
{
	if (name == NULL || *name == '\0' || strlen(name) > 128)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

/* True when the text being read is not inside a false if block. */
static bool
reading(const struct loader *ld)
{
	if (ld->open_blocks == 0)
		return true;
	const struct block *b = &ld->blocks[ld->open_blocks - 1];
	return b->parent_on && (b->in_else ? !b->cond : b->cond);
}

static bool
is_test_directive(const char *d)
{
	return strcmp(d, "header") == 0 || strcmp(d, "body") == 0 ||
	    strcmp(d, "rawbody") == 0 || strcmp(d, "uri") == 0 ||
	    strcmp(d, "full") == 0 || strcmp(d, "meta") == 0 ||
	    strcmp(d, "mimeheader") == 0 || strcmp(d, "uri_detail") == 0;
}

/* if/ifplugin/else/endif; true when the line was one of them. */
static bool
parse_block(struct loader *ld, const char *directive, char *cursor,
    const char *file, int lineno)
{
	if (strcmp(directive, "if") == 0 || strcmp(directive, "ifplugin") == 0) {
		char *expr = rest_of_line(cursor), why[300];
		bool cond = false, unreadable = false;

		if (ld->open_blocks >= BLOCKS_MAX) {
			/* Refused whole: its endif must not close an outer
			 * block, and it changes nothing else. */
			ERROR(ld, file, lineno, "if blocks nested too deep");
			ld->overflow_blocks++;
			return true;
		}
		if (directive[2] == 'p') {
			cond = plugin_loaded(ld, expr);
		} else {
			struct meta_node *n = meta_parse(expr, true, why,
			    sizeof(why));
			double v = n != NULL ? cond_eval(ld, n) : NAN;

			meta_free(n);
			unreadable = isnan(v);
			if (unreadable && reading(ld))
				WARN(ld, file, lineno, "unreadable if",
				    "if %s: cannot evaluate; block skipped",
				    expr);
			cond = !isnan(v) && v != 0;
		}
		bool parent_on = reading(ld);
		if (parent_on && !cond && !unreadable)
			WARN(ld, file, lineno, "false if block", "%s %s: false "
			    "for SpamAssassin 4.0 with its default plugins; "
			    "block skipped", directive, expr);
		ld->blocks[ld->open_blocks++] = (struct block){parent_on,
		    cond, false};
		return true;
	}
	if (strcmp(directive, "else") == 0) {
		if (ld->overflow_blocks > 0)
			return true;
		if (ld->open_blocks == 0) {
			ERROR(ld, file, lineno, "else without if");
			return true;
		}
		struct block *b = &ld->blocks[ld->open_blocks - 1];
		b->in_else = !b->in_else;
		if (b->parent_on && !reading(ld))
			WARN(ld, file, lineno, "else branch", "else branch "
			    "skipped");
		return true;
	}
	if (strcmp(directive, "endif") == 0) {
		if (ld->overflow_blocks > 0) {
			ld->overflow_blocks--;
			return true;
		}
		if (ld->open_blocks == 0) {
			ERROR(ld, file, lineno, "endif without if");
			return true;
		}
		ld->open_blocks--;
		return true;
	}
	return false;
}

static void
parse_include(struct loader *ld, char *cursor, const char *file, int lineno)
{
	char *target = rest_of_line(cursor), path[2048];
	char *copy = mxg_strdup(file);

	if (*target == '/')
		snprintf(path, sizeof(path), "%s", target);
	else
		snprintf(path, sizeof(path), "%s/%s", dirname(copy), target);
	free(copy);
	if (ld->depth >= RULES_INCLUDE_DEPTH) {
		ERROR(ld, file, lineno, "include nested deeper than %d",
		    RULES_INCLUDE_DEPTH);
		return;
	}
	if (access(path, R_OK) != 0) {
		ERROR(ld, file, lineno, "include %s: %s", path, strerror(errno));
		return;
	}
	char real[PATH_MAX];
	if (realpath(path, real) != NULL)
		for (int i = 0; i < ld->nopen_files; i++)
			if (strcmp(ld->open_files[i], real) == 0) {
				ERROR(ld, file, lineno, "include %s: an "
				    "include loop", path);
				return;
			}
	ld->depth++;
	load_file(ld, path);
	ld->depth--;
}

/* replace_tag, replace_pre, replace_post, replace_inter NAME VALUE;
 * replace_start, replace_end X; replace_rules NAME... True when the line
 * was one of them. */
static bool
parse_replace(struct loader *ld, const char *directive, char *cursor,
    const char *file, int lineno)
{
	static const char *const kinds[] = {"replace_tag", "replace_pre",
	    "replace_post", "replace_inter"};

	if (strncmp(directive, "replace_", 8) != 0)
		return false;
	for (int k = 0; k < 4; k++) {
		if (strcmp(directive, kinds[k]) != 0)
			continue;
		char *name = next_word(&cursor);
		char *value = name != NULL ? rest_of_line(cursor) : NULL;
		if (name == NULL || *value == '\0') {
			ERROR(ld, file, lineno, "%s: give a name and a value",
			    directive);
			return true;
		}
		for (size_t i = 0; i < ld->ntags[k]; i++)
			if (strcmp(ld->tags[k][i].name, name) == 0) {
				free(ld->tags[k][i].value);
				ld->tags[k][i].value = mxg_strdup(value);
				return true;
			}
		ld->tags[k] = mxg_realloc(ld->tags[k], (ld->ntags[k] + 1) *
		    sizeof(**ld->tags));
		ld->tags[k][ld->ntags[k]].name = mxg_strdup(name);
		ld->tags[k][ld->ntags[k]++].value = mxg_strdup(value);
		return true;
	}
	if (strcmp(directive, "replace_start") == 0 ||
	    strcmp(directive, "replace_end") == 0) {
		char *v = next_word(&cursor);
		char **slot = directive[8] == 's' ? &ld->replace_start :
		    &ld->replace_end;

		if (v == NULL) {
			ERROR(ld, file, lineno, "%s: give a value", directive);
			return true;
		}
		free(*slot);
		*slot = mxg_strdup(v);
		return true;
	}
	if (strcmp(directive, "replace_rules") == 0) {
		char *w;

		while ((w = next_word(&cursor)) != NULL) {
			if (!valid_name(w)) {
				ERROR(ld, file, lineno, "replace_rules: '%s' is "
				    "not a rule name", w);
				continue;
			}
			rule_get(ld->set, w)->replace = true;
		}
		return true;
	}
	return false;
}

/* Directives that define a rule SpamAssassin runs through a plugin: the
 * rule exists here too, with no value this engine can give it. dns:
 * a DNS list test, never run without network tests. */
static bool
parse_plugin_rule(struct loader *ld, const char *directive, char *cursor,
    const char *file, int lineno)
{
	static const char *const dns[] = {"askdns", "urirhssub", "urirhsbl",
	    "urinsrhssub", "urinsrhsbl", "urifullnsrhssub", "urifullnsrhsbl",
	    "uridnssub", "uridnsbl", NULL};
	static const char *const other[] = {"mimeheader", "uri_detail", NULL};
	bool is_dns = name_in(directive, dns);

	if (!is_dns && !name_in(directive, other))
		return false;
	char *name = next_word(&cursor);
	if (!valid_name(name)) {
		ERROR(ld, file, lineno, "%s: '%s' is not a rule name",
		    directive, name ? name : "");
		return true;
	}
	struct rule *r = rule_get(ld->set, name);
	char group[80];
	snprintf(group, sizeof(group), "directive %s", directive);
	make_opaque(ld, r, file, lineno, group, is_dns ? "a DNS list test" :
	    "not supported");
	set_where(r, file, lineno);
	r->dns = is_dns;
	return true;
}

static void
parse_line(struct loader *ld, char *line, const char *file, int lineno)
{
	char *cursor = line, why[300];
	char *directive = next_word(&cursor);

	if (directive == NULL)
		return;
	/*
	 * if/ifplugin blocks test for Perl plugins and versions: a block is
	 * read when its condition holds for SpamAssassin 4.0 with the
	 * plugins Debian loads (and those a loadplugin line adds), as
	 * SpamAssassin itself would read it.
	 */
	if (parse_block(ld, directive, cursor, file, lineno))
		return;
	if (!reading(ld)) {
		ld->report->skipped += is_test_directive(directive);
		return;
	}
	if (strcmp(directive, "include") == 0) {
		parse_include(ld, cursor, file, lineno);
		return;
	}
	if (strcmp(directive, "loadplugin") == 0 ||
	    strcmp(directive, "tryplugin") == 0) {
		char *name = next_word(&cursor);

		if (name != NULL)
			plugin_add(ld, name);
		return;
	}
	if (strcmp(directive, "lang") == 0) {
		WARN(ld, file, lineno, "lang", "lang lines are skipped");
		return;
	}
	if (strcmp(directive, "util_rb_tld") == 0) {
		char *w;

		while ((w = next_word(&cursor)) != NULL) {
			if (strchr(w, '.') != NULL)
				continue;
			for (char *c = w; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			g_hash_table_add(ld->set->tlds, mxg_strdup(w));
		}
		return;
	}
	if (strcmp(directive, "clear_util_rb") == 0) {
		g_hash_table_remove_all(ld->set->tlds);
		return;
	}
	if (parse_replace(ld, directive, cursor, file, lineno) ||
	    parse_plugin_rule(ld, directive, cursor, file, lineno))
		return;

	static const struct {
		const char *name;
		enum rule_type type;
	} tests[] = {
		{"header", RULE_HEADER}, {"body", RULE_BODY},
		{"rawbody", RULE_RAWBODY}, {"full", RULE_FULL},
		{"uri", RULE_URI}, {"meta", RULE_META},
	};
	bool is_test = false, is_attr = strcmp(directive, "score") == 0 ||
	    strcmp(directive, "describe") == 0 || strcmp(directive, "tflags") == 0;
	enum rule_type type = RULE_NONE;
	for (size_t i = 0; i < sizeof(tests) / sizeof(*tests); i++)
		if (strcmp(directive, tests[i].name) == 0) {
			is_test = true;
			type = tests[i].type;
		}
	if (!is_test && !is_attr) {
		char group[80];
		snprintf(group, sizeof(group), "directive %.40s", directive);
		WARN(ld, file, lineno, group, "'%s' is not supported; line "
		    "skipped", directive);
		return;
	}
	char *name = next_word(&cursor);
	if (!valid_name(name)) {
		ERROR(ld, file, lineno, "%s: '%s' is not a rule name", directive,
		    name ? name : "");
		return;
	}

	if (is_attr) {
		struct rule *r = rule_get(ld->set, name);

		if (directive[0] == 's')
			set_scores(ld, r, cursor, file, lineno);
		else if (directive[0] == 'd') {
			free(r->description);
			r->description = mxg_strdup(rest_of_line(cursor));
		} else
			parse_tflags(r, cursor);
		return;
	}

	char *rest = rest_of_line(cursor);
	const char *test_text = rest;
	if (type == RULE_HEADER) {	/* header NAME eval:... */
		char *copy = mxg_strdup(rest), *cur = copy;
		char *w = next_word(&cur);
		bool eval = w != NULL && strncmp(w, "eval:", 5) == 0;
		free(copy);
		test_text = eval ? "eval:" : "";
	}
	struct rule *r = rule_get(ld->set, name);
	rule_clear_test(r);
	set_where(r, file, lineno);
	if (type == RULE_HEADER && strncmp(test_text, "eval:", 5) == 0 &&
	    sa_eval_parse(rest, &r->call)) {
		r->type = RULE_EVAL;	/* one this engine runs */
		return;
	}
	if (strncmp(test_text, "eval:", 5) == 0) {
		/* SpamAssassin runs it: its result is unknown here */
		WARN(ld, file, lineno, "eval: test", "%s %s: eval: tests are "
		    "not supported", directive, name);
		ld->report->skipped++;
		r->type = RULE_OPAQUE;
		return;
	}
	r->type = type;
	switch (type) {
	case RULE_HEADER:
		parse_header_rule(ld, r, cursor, file, lineno);
		break;
	case RULE_META:
		r->meta = meta_parse(rest, true, why, sizeof(why));
		if (r->meta != NULL && !meta_calls_ok(r->meta, why,
		    sizeof(why))) {
			meta_free(r->meta);
			r->meta = NULL;
		}
		if (r->meta == NULL) {
			ERROR(ld, file, lineno, "meta %s: %s", name, why);
			r->broken = true;
		}
		break;
	default:
		r->pattern = regex_pattern(rest, why, sizeof(why));
		if (r->pattern == NULL) {
			ERROR(ld, file, lineno, "%s %s: %s", directive, name,
			    why);
			r->broken = true;
		} else if (rule_compile(ld, r, directive, file, lineno) &&
		    strstr(r->pattern, "%{") != NULL) {
			make_opaque(ld, r, file, lineno, "capture template",
			    "%{...} templates are not supported");
		}
		break;
	}
}

static void
load_file(struct loader *ld, const char *path)
{
	struct stat sb;
	char real[PATH_MAX];
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;

	if (fp == NULL) {
		ERROR(ld, path, 0, "cannot read: %s", strerror(errno));
		return;
	}
	/* Only regular files: a directory reads as nothing, a device or a
	 * FIFO may never end. */
	if (fstat(fileno(fp), &sb) < 0 || !S_ISREG(sb.st_mode)) {
		ERROR(ld, path, 0, "not a regular file");
		fclose(fp);
		return;
	}
	/* A file being read already (an include loop) is read once. */
	if (realpath(path, real) == NULL)
		snprintf(real, sizeof(real), "%s", path);
	for (int i = 0; i < ld->nopen_files; i++)
		if (strcmp(ld->open_files[i], real) == 0) {
			ERROR(ld, path, 0, "include loop: the file is being read "
			    "already");
			fclose(fp);
			return;
		}
	if (ld->nopen_files < RULES_INCLUDE_DEPTH + 1)
		ld->open_files[ld->nopen_files++] = mxg_strdup(real);
	int my_slot = ld->nopen_files - 1;

	int blocks_at_start = ld->open_blocks;
	int overflow_at_start = ld->overflow_blocks;
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			ERROR(ld, path, lineno, "NUL byte in line");
			continue;
		}
		size_t content = (size_t)n - (line[n - 1] == '\n');
		if (content > RULES_LINE_MAX - 2) {
			ERROR(ld, path, lineno, "line longer than %d bytes",
			    RULES_LINE_MAX - 2);
			continue;
		}
		strip_comment(line);
		parse_line(ld, line, path, lineno);
	}
	if (ferror(fp))
		ERROR(ld, path, lineno, "read error: %s", strerror(errno));
	/* A block opened here ends with this file. */
	if (ld->open_blocks > blocks_at_start ||
	    ld->overflow_blocks > overflow_at_start)
		ERROR(ld, path, lineno, "if/ifplugin without endif");
	if (ld->open_blocks > blocks_at_start)
		ld->open_blocks = blocks_at_start;
	if (ld->overflow_blocks > overflow_at_start)
		ld->overflow_blocks = overflow_at_start;
	if (my_slot >= 0 && my_slot == ld->nopen_files - 1) {
		free(ld->open_files[my_slot]);
		ld->nopen_files--;
	}
	fclose(fp);
	free(line);
}

/* ------------------------------------------------------------- finish */

static const char *
tag_value(const struct loader *ld, int kind, const char *name, size_t len)
{
	for (size_t i = 0; i < ld->ntags[kind]; i++)
		if (strlen(ld->tags[kind][i].name) == len &&
		    strncmp(ld->tags[kind][i].name, name, len) == 0)
			return ld->tags[kind][i].value;
	return NULL;
}

/* The first start.+?end in s from 'from' on (at least one character
 * between, the first end after it, no newline inside as Perl's '.'):
 * its offset, SIZE_MAX when none; *len: its length. */
static size_t
find_delimited(const char *s, size_t from, const char *start,
    const char *end, size_t *len)
{
	size_t sl = strlen(start), el = strlen(end);

	for (const char *p = strstr(s + from, start); p != NULL;
	    p = strstr(p + 1, start)) {
		const char *q = p + sl;
		if (*q == '\0' || *q == '\n')
			continue;
		const char *e = strstr(q + 1, end);
		const char *nl = memchr(q, '\n', e ? (size_t)(e - q) : 0);
		if (e == NULL || nl != NULL)
			continue;
		*len = (size_t)(e + el - p);
		return (size_t)(p - s);
	}
	return SIZE_MAX;
}

/* Takes "<pre NAME>" (kind "pre ") out of re; NAME's value or NULL. */
static const char *
take_directive(const struct loader *ld, char *re, const char *start,
    const char *kind, const char *end, int table)
{
	size_t sl = strlen(start), kl = strlen(kind), len;

	for (size_t from = 0;; from++) {
		size_t at = find_delimited(re, from, start, end, &len);
		if (at == SIZE_MAX)
			return NULL;
		from = at;
		if (len <= sl + kl + strlen(end) ||
		    strncmp(re + at + sl, kind, kl) != 0)
			continue;
		const char *v = tag_value(ld, table, re + at + sl + kl,
		    len - sl - kl - strlen(end));
		memmove(re + at, re + at + len, strlen(re + at + len) + 1);
		return v;
	}
}

/*
 * SpamAssassin's ReplaceTags over one pattern (caller frees), step by
 * step as the plugin does it: <pre NAME>, <post NAME> and <inter NAME>
 * come out of the pattern; the pattern is split into text and <...>
 * fields (an empty last field dropped, as Perl's split does); pre goes
 * before the first start...end of each field, post after each one, inter
 * fills the empty fields; then in each field the first start NAME end
 * names a tag whose value replaces every start NAME end of that field.
 * Again (without pre, post, inter) while a value brought in a <...>, six
 * passes at most.
 */
static char *
replace_tags(const struct loader *ld, const char *pattern)
{
	const char *start = ld->replace_start ? ld->replace_start : "<";
	const char *end = ld->replace_end ? ld->replace_end : ">";
	size_t sl = strlen(start), el = strlen(end);
	char *re = mxg_strdup(pattern);
	bool again;
	int passes = 0;

	do {
		const char *pre = take_directive(ld, re, start, "pre ", end, 1);
		const char *post = take_directive(ld, re, start, "post ", end,
		    2);
		const char *inter = take_directive(ld, re, start, "inter ", end,
		    3);

		again = false;
		/* split(/(<[^<>]+>)/) */
		GPtrArray *fields = g_ptr_array_new_with_free_func(free);
		const char *p = re;
		for (;;) {
			const char *lt = p, *gt = NULL;
			for (; *lt; lt++) {
				if (*lt != '<')
					continue;
				const char *q = lt + 1;
				while (*q && *q != '<' && *q != '>')
					q++;
				if (*q == '>' && q > lt + 1) {
					gt = q;
					break;
				}
			}
			g_ptr_array_add(fields, mxg_strndup(p, (size_t)(lt - p)));
			if (*lt == '\0')
				break;
			g_ptr_array_add(fields, mxg_strndup(lt,
			    (size_t)(gt - lt + 1)));
			p = gt + 1;
		}
		if (fields->len > 0 && *(char *)g_ptr_array_index(fields,
		    fields->len - 1) == '\0')
			g_ptr_array_remove_index(fields, fields->len - 1);

		struct strbuf out = STRBUF_INIT;
		for (guint i = 0; i < fields->len; i++) {
			struct strbuf f = STRBUF_INIT;
			const char *text = g_ptr_array_index(fields, i);
			size_t len, at;

			strbuf_puts(&f, text);
			if (pre != NULL && (at = find_delimited(strbuf_cstr(&f), 0,
			    start, end, &len)) != SIZE_MAX) {
				struct strbuf t = STRBUF_INIT;
				strbuf_append(&t, f.data, at);
				strbuf_puts(&t, pre);
				strbuf_puts(&t, f.data + at);
				strbuf_free(&f);
				f = t;
			}
			if (post != NULL) {
				struct strbuf t = STRBUF_INIT;
				size_t from = 0;
				const char *c = strbuf_cstr(&f);
				while ((at = find_delimited(c, from, start, end,
				    &len)) != SIZE_MAX) {
					strbuf_append(&t, c + from, at + len - from);
					strbuf_puts(&t, post);
					from = at + len;
				}
				strbuf_puts(&t, c + from);
				strbuf_free(&f);
				f = t;
			}
			if (inter != NULL && f.len == 0)
				strbuf_puts(&f, inter);
			const char *c = strbuf_cstr(&f);
			if ((at = find_delimited(c, 0, start, end, &len)) !=
			    SIZE_MAX) {
				const char *value = tag_value(ld, 0, c + at + sl,
				    len - sl - el);
				if (value != NULL) {
					char *whole = mxg_strndup(c + at, len);
					struct strbuf t = STRBUF_INIT;
					const char *q = c, *hit;
					while ((hit = strstr(q, whole)) != NULL) {
						strbuf_append(&t, q,
						    (size_t)(hit - q));
						strbuf_puts(&t, value);
						q = hit + len;
					}
					strbuf_puts(&t, q);
					free(whole);
					strbuf_free(&f);
					f = t;
					const char *lt2 = strchr(value, '<');
					if (lt2 != NULL && lt2[1] != '>' &&
					    lt2[1] != '\0' &&
					    strchr(lt2 + 1, '>') != NULL)
						again = true;
				}
			}
			strbuf_append(&out, f.data ? f.data : "", f.len);
			strbuf_free(&f);
		}
		g_ptr_array_free(fields, TRUE);
		free(re);
		re = strbuf_steal(&out);
		if (re == NULL)
			re = mxg_strdup("");
		passes++;
	} while (again && passes < REPLACE_PASSES);
	return re;
}

/* For g_ptr_array_sort: a and b point to the array's elements. */
static gint
name_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
meta_resolve(struct ruleset *set, struct meta_node *n, const char *self)
{
	if (n == NULL)
		return;
	if (n->op == META_RULE) {
		struct rule *r = rule_find(set, n->name);
		n->index = r ? (long)(r - set->rules) : -1;
	}
	if (n->op == META_CALL) {
		/* rules_matching(GLOB): the sum of the rules it names,
		 * sorted, itself left out; 0 when none */
		struct meta_node *sum = NULL;
		GPtrArray *names = g_ptr_array_new();

		for (size_t i = 0; i < set->count; i++) {
			const struct rule *r = &set->rules[i];
			if ((r->type != RULE_NONE || r->has_score) &&
			    strcmp(r->name, self) != 0 &&
			    fnmatch(n->arg, r->name, FNM_NOESCAPE) == 0)
				g_ptr_array_add(names, r->name);
		}
		g_ptr_array_sort(names, name_cmp);
		for (guint i = 0; i < names->len; i++) {
			const char *nm = g_ptr_array_index(names, i);
			struct meta_node *leaf = meta_new(META_RULE, NULL,
			    NULL);
			leaf->name = mxg_strdup(nm);
			leaf->index = (long)(rule_find(set, nm) - set->rules);
			sum = sum ? meta_new(META_ADD, sum, leaf) : leaf;
		}
		g_ptr_array_free(names, TRUE);
		free(n->name);
		free(n->arg);
		n->name = n->arg = NULL;
		if (sum == NULL) {
			n->op = META_NUM;
			n->number = 0;
		} else {
			*n = *sum;	/* take the sum's place */
			free(sum);
		}
		return;
	}
	meta_resolve(set, n->left, self);
	meta_resolve(set, n->right, self);
}

static bool
is_meta(const struct ruleset *set, long i)
{
	return i >= 0 && set->rules[i].type == RULE_META &&
	    !set->rules[i].broken;
}

/* True when fn holds for a rule named in n. */
static bool
meta_any_dep(const struct ruleset *set, const struct meta_node *n,
    bool (*fn)(const struct ruleset *, long))
{
	if (n == NULL)
		return false;
	if (n->op == META_RULE && fn(set, n->index))
		return true;
	return meta_any_dep(set, n->left, fn) ||
	    meta_any_dep(set, n->right, fn);
}

/* SpamAssassin's loop check: metas left after taking away, again and
 * again, those whose meta dependencies are all gone. */
static bool
dep_still_in(const struct ruleset *set, long i)
{
	return is_meta(set, i) && set->rules[i].unsolved;
}

/* A meta that SpamAssassin never evaluates, or that waits on one. */
static bool
dep_never_ready(const struct ruleset *set, long i)
{
	return is_meta(set, i) && (!set->rules[i].runs ||
	    set->rules[i].never);
}

/* runs and never, from the scores in force. */
static void
compute_never(struct ruleset *set)
{
	bool changed;

	for (size_t i = 0; i < set->count; i++)
		set->rules[i].never = false;
	do {
		changed = false;
		for (size_t i = 0; i < set->count; i++) {
			struct rule *r = &set->rules[i];

			if (!is_meta(set, (long)i) || r->unsolved || r->never)
				continue;
			if (meta_any_dep(set, r->meta, dep_never_ready)) {
				r->never = true;
				changed = true;
			}
		}
	} while (changed);
}

static void
compute_unsolved(struct ruleset *set)
{
	bool changed;

	for (size_t i = 0; i < set->count; i++)
		set->rules[i].unsolved = is_meta(set, (long)i);
	do {
		changed = false;
		for (size_t i = 0; i < set->count; i++) {
			struct rule *r = &set->rules[i];

			if (r->unsolved && !meta_any_dep(set, r->meta,
			    dep_still_in)) {
				r->unsolved = false;
				changed = true;
			}
		}
	} while (changed);
}

/* SpamAssassin's defaults for a rule without a score line. */
static double
default_score(const struct rule *r)
{
	if (strncmp(r->name, "__", 2) == 0)
		return 0;
	if (strncmp(r->name, "T_", 2) == 0)
		return r->tflags & TF_NICE ? -0.01 : 0.01;
	return r->tflags & TF_NICE ? -1.0 : 1.0;
}

static long
spec_get(struct ruleset *set, const char *name, unsigned int hmods)
{
	for (size_t i = 0; i < set->nspecs; i++)
		if (set->specs[i].hmods == hmods &&
		    strcmp(set->specs[i].name, name) == 0)
			return (long)i;
	set->specs = mxg_realloc(set->specs, (set->nspecs + 1) *
	    sizeof(*set->specs));
	set->specs[set->nspecs].name = mxg_strdup(name);
	set->specs[set->nspecs].hmods = hmods;
	return (long)set->nspecs++;
}

static void
finish(struct loader *ld)
{
	struct ruleset *set = ld->set;
	const struct rules_options *opt = &set->options;

	for (size_t i = 0; i < set->count; i++) {
		struct rule *r = &set->rules[i];

		if (!r->replace || r->pattern == NULL || r->broken ||
		    r->type == RULE_OPAQUE)
			continue;
		char *re = replace_tags(ld, r->pattern);
		if (strcmp(re, r->pattern) == 0) {
			free(re);
			continue;
		}
		free(r->pattern);
		r->pattern = re;
		char why[300];
		pcre2_code *code = compile_pattern(re, why, sizeof(why));
		if (code == NULL && strstr(why, "too large") != NULL) {
			/* Perl has no such limit: SpamAssassin runs it */
			diag(&ld->report->warnings, &ld->report->nwarnings,
			    r->where ? r->where : "?", 0, "regex too large",
			    "%s: after replace_tag the regex is too large for "
			    "PCRE2", r->name);
			char *w = ld->report->warnings[ld->report->nwarnings -
			    1].where;
			char *colon = strrchr(w, ':');
			if (colon != NULL && strcmp(colon, ":0") == 0)
				*colon = '\0';
			rule_clear_test(r);
			r->type = RULE_OPAQUE;
			ld->report->skipped++;
			continue;
		}
		if (code == NULL) {
			diag(&ld->report->errors, &ld->report->nerrors,
			    r->where ? r->where : "?", 0, NULL,
			    "%s: after replace_tag: %s", r->name, why);
			/* "where" holds file:line already */
			char *w = ld->report->errors[ld->report->nerrors - 1]
			    .where;
			char *colon = strrchr(w, ':');
			if (colon != NULL && strcmp(colon, ":0") == 0)
				*colon = '\0';
			r->broken = true;
			continue;
		}
		pcre2_code_free(r->re);
		r->re = code;
	}
	for (size_t i = 0; i < set->count; i++) {
		struct rule *r = &set->rules[i];

		meta_resolve(set, r->meta, r->name);
		r->score = r->has_score ? r->scores[opt->score_set & 3] :
		    default_score(r);
		/* SpamAssassin runs a rule only when its score is not 0; a
		 * rule without a score line has 1 (sub-rules too). */
		r->runs = r->has_score ? r->scores[opt->score_set & 3] != 0 :
		    true;
		if ((r->type == RULE_HEADER || r->type == RULE_EXISTS) &&
		    !r->broken)
			r->hspec = spec_get(set, r->header, r->hmods);
		if (r->type != RULE_NONE && r->type != RULE_OPAQUE &&
		    !r->broken)
			ld->report->loaded++;
	}
	compute_unsolved(set);
	compute_never(set);
}

/* SpamAssassin's header address parser (Util.pm, 4.0), for :addr and
 * :name: the same regexes, run by PCRE2. */
#define SA_QUOTED "\" (?:|(?:[^\"\\\\]++|\\\\.)*+) \""
#define SA_MAILRE \
	"(?: " SA_QUOTED " | [^\\@\\s\\<\\>\\(\\)\\[\\]\\,\\:\\;]+ )" \
	" \\@ (?: [^\\\"\\s\\<\\>\\(\\)\\[\\]\\,\\:\\;]+ | \\[ [\\d:.]+ \\] )"
static const char sa_address_re[] =
	"(?ix)^ \\s* (?:"
	" (?: ( (?: " SA_QUOTED " | [^\",;<]++ )+ ) \\s* )?"
	" < \\s* ( [^>\\@]* \\S+ | \\s* ) \\s* >"
	" (?: \\s* < \\s* (?: (?: " SA_QUOTED " )? \\S+ | \\s* ) \\s* > )*"
	" | (?: ( " SA_MAILRE " ) | ( (?: " SA_QUOTED " | [^\",;<]++ )+ ) )"
	" ) (?: \\s* \\( ( (?:|(?:[^()\\\\]++|\\\\.)*+) ) \\) )?"
	" \\s* (?: [,;] | \\z )";
static const char sa_group_re[] = "(?s)^[^\"()<>]+:\\s*(?:;.*)?";
static const char sa_phrase_re[] =
	"(?is)(?:\"(|(?:[^\"\\\\]++|\\\\.)*+)\"|([^\"]++))";
static const char sa_mailre_full[] = "(?ix)^" SA_MAILRE "$";
static const char sa_comment_re[] = "(?s)\\((?:|(?:[^()\\\\]++|\\\\.)*+)\\)";

/*
 * PerMsgStatus.pm's _tbirdurire: URIs in text as Thunderbird and Outlook
 * make links of them, schemeless ones when they end in a known TLD.
 */
#define TB_START "><\"'`,{\\[(|\\s\\x1b\\xa0"
#define TB_END "><\"`}\\]{\\[|\\s\\x1b\\xa0"
#define TB_END_MAIL TB_END ",('\\x80-\\xff"
#define TB_SC_START "[!\"\\#$&'()*+,/:;<=>?@\\[\\\\\\]^`{|}~\\s\\x1b\\xa0]"

static pcre2_code *
uri_regex(GHashTable *tlds)
{
	struct strbuf re = STRBUF_INIT, list = STRBUF_INIT;
	GHashTableIter it;
	gpointer key;
	char why[300];

	g_hash_table_iter_init(&it, tlds);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		if (list.len > 0)
			strbuf_putc(&list, '|');
		for (const char *c = key; *c; c++) {
			if (!isalnum((unsigned char)*c) && *c != '-')
				strbuf_putc(&list, '\\');
			strbuf_putc(&list, *c);
		}
	}
	strbuf_puts(&re, "(?ix)(?:\\b|(?<=\\x1b\\(.)|(?<=[" TB_START "]))(?:"
	    "(?:((?:(?:https?|ftp)://|(?:www\\d{0,2}|ftp)\\.)[^" TB_END
	    "]{1,2048})(?=(?:[" TB_END "]|\\z)))"
	    "|(?:((?:mailto:[^" TB_END_MAIL "]{1,2048}|[^" TB_END_MAIL
	    "@]{1,251}@[^" TB_END_MAIL "]{1,251}))(?=(?:[" TB_END_MAIL
	    "]|\\z)))"
	    "|(?:(?:^|(?<=" TB_SC_START "))(([a-z\\d][a-z\\d._-]{0,251}\\.");
	if (list.len > 0) {
		strbuf_puts(&re, "(?<![a-zA-Z0-9-])(?:");
		strbuf_append(&re, list.data, list.len);
		strbuf_puts(&re, ")(?!(?:[a-zA-Z0-9-]|\\.[a-zA-Z0-9]))");
	} else {
		strbuf_puts(&re, "no_tlds_defined");
	}
	strbuf_puts(&re, ")\\.?(?::\\d{1,5})?(?:/[^" TB_END "]{1,2048})?)"
	    "(?=(?:[" TB_END "]|\\z))))");
	strbuf_free(&list);
	pcre2_code *code = compile_pattern(strbuf_cstr(&re), why, sizeof(why));
	strbuf_free(&re);
	if (code == NULL)
		abort();	/* a fixed pattern: a bug, never input */
	return code;
}

struct ruleset *
rules_load(const char *files, const struct rules_options *opt,
    struct rules_report *report)
{
	struct ruleset *set = mxg_calloc(1, sizeof(*set));
	struct loader ld;
	char why[300];

	memset(&ld, 0, sizeof(ld));
	ld.set = set;
	ld.report = report;
	for (const char *const *p = default_plugins; *p != NULL; p++)
		plugin_add(&ld, *p);
	char *copy = mxg_strdup(files ? files : ""), *cursor = NULL;

	memset(report, 0, sizeof(*report));
	set->options = *opt;
	set->index = g_hash_table_new(g_str_hash, g_str_equal);
	set->tlds = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	g_mime_init();
	for (char *pattern = strtok_r(copy, " \t,", &cursor); pattern != NULL;
	    pattern = strtok_r(NULL, " \t,", &cursor)) {
		glob_t g;
		int rc = glob(pattern, 0, NULL, &g);

		if (rc == GLOB_NOMATCH) {
			/* A glob may match nothing (no local rules yet); a
			 * file named outright must exist. */
			if (strpbrk(pattern, "*?[") != NULL)
				WARN(&ld, pattern, 0, "empty glob",
				    "no rule file matches");
			else
				ERROR(&ld, pattern, 0, "no such rule file");
			continue;
		}
		if (rc != 0) {
			ERROR(&ld, pattern, 0, "cannot expand the pattern");
			continue;
		}
		for (size_t i = 0; i < g.gl_pathc; i++)
			load_file(&ld, g.gl_pathv[i]);
		globfree(&g);
	}
	free(copy);
	finish(&ld);

	for (size_t i = 0; i < ld.nplugins; i++)
		free(ld.plugins[i]);
	free(ld.plugins);
	for (int k = 0; k < 4; k++) {
		for (size_t i = 0; i < ld.ntags[k]; i++) {
			free(ld.tags[k][i].name);
			free(ld.tags[k][i].value);
		}
		free(ld.tags[k]);
	}
	free(ld.replace_start);
	free(ld.replace_end);

	set->addr_re = compile_pattern(sa_address_re, why, sizeof(why));
	set->group_re = compile_pattern(sa_group_re, why, sizeof(why));
	set->phrase_re = compile_pattern(sa_phrase_re, why, sizeof(why));
	set->mailre = compile_pattern(sa_mailre_full, why, sizeof(why));
	set->comment_re = compile_pattern(sa_comment_re, why, sizeof(why));
	if (set->addr_re == NULL || set->group_re == NULL ||
	    set->phrase_re == NULL || set->mailre == NULL ||
	    set->comment_re == NULL)
		abort();	/* fixed patterns: a bug, never input */
	set->uri_re = uri_regex(set->tlds);
	set->mctx = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(set->mctx, opt->match_limit);
	pcre2_set_depth_limit(set->mctx, opt->depth_limit);
	return set;
}

void
rules_free(struct ruleset *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->count; i++) {
		rule_clear_test(&set->rules[i]);
		free(set->rules[i].name);
		free(set->rules[i].description);
		free(set->rules[i].where);
	}
	free(set->rules);
	for (size_t i = 0; i < set->nspecs; i++)
		free(set->specs[i].name);
	free(set->specs);
	if (set->index != NULL)
		g_hash_table_destroy(set->index);
	if (set->tlds != NULL)
		g_hash_table_destroy(set->tlds);
	pcre2_code *codes[] = {set->addr_re, set->group_re, set->phrase_re,
	    set->mailre, set->comment_re, set->uri_re};
	for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++)
		if (codes[i] != NULL)
			pcre2_code_free(codes[i]);
	if (set->mctx != NULL)
		pcre2_match_context_free(set->mctx);
	free(set);
}

void
rules_report_free(struct rules_report *report)
{
	for (size_t i = 0; i < report->nerrors; i++) {
		free(report->errors[i].where);
		free(report->errors[i].text);
		free(report->errors[i].group);
	}
	for (size_t i = 0; i < report->nwarnings; i++) {
		free(report->warnings[i].where);
		free(report->warnings[i].text);
		free(report->warnings[i].group);
	}
	free(report->errors);
	free(report->warnings);
	memset(report, 0, sizeof(*report));
}

bool
rules_has(const struct ruleset *set, const char *name)
{
	return rule_find(set, name) != NULL;
}

void
rules_set_score(struct ruleset *set, const char *name, double score)
{
	struct rule *r = rule_find(set, name);

	if (r == NULL)
		return;
	r->score = score;
	r->runs = score != 0;	/* as `score NAME 0` in a rule file */
	compute_never(set);
}

/* ----------------------------------------------------------------- run */

/* A rule's hit count on one message: exact when lo == hi; a range when
 * it rests on tests SpamAssassin runs and this engine cannot. */
struct ival {
	double lo, hi;
};

#define IVAL_BIG 1e9
#define IVAL_TINY 1e-9	/* above 0: true, its value not known */

/* Pieces of text a rule type is matched against one by one. */
struct lines {
	struct strbuf buf;
	size_t *off;
	size_t *len;
	size_t n, cap;
	bool built;
};

struct hval {
	bool done;
	bool defined;
	struct strbuf text;
};

struct run {
	const struct ruleset *set;
	const struct message *msg;
	const struct mime_content *content;
	pcre2_match_data *md;
	pcre2_match_data *md_big;	/* with room for captures */
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit_stack;
	struct ival *vals;	/* per rule */
	char *state;		/* 0 new, 1 in progress, 2 done */
	struct hval *hvals;	/* per header spec */
	char **decoded;		/* per header, SpamAssassin's decoded value */
	struct lines body, rawbody, uris;
	struct strbuf full;
	bool full_built;
	int limit_hits;
	bool date_diff_done;
	long long date_diff;	/* check_for_shifted_date's, in seconds */
};

static void
lines_add(struct lines *l, size_t off, size_t len)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->off = mxg_realloc(l->off, l->cap * sizeof(*l->off));
		l->len = mxg_realloc(l->len, l->cap * sizeof(*l->len));
	}
	l->off[l->n] = off;
	l->len[l->n++] = len;
}

/* Appends s to the buffer as one piece. */
static void
lines_push(struct lines *l, const char *s, size_t len)
{
	size_t off = l->buf.len;

	strbuf_append(&l->buf, s, len);
	lines_add(l, off, len);
}

static void
lines_free(struct lines *l)
{
	strbuf_free(&l->buf);
	free(l->off);
	free(l->len);
	memset(l, 0, sizeof(*l));
}

/* Runs re over text; counts matches (at most max, 1 when max is 1). */
static int
count_matches(struct run *run, const pcre2_code *re, const char *text,
    size_t len, int max)
{
	PCRE2_SIZE offset = 0;
	int hits = 0;

	while (hits < max && offset <= len) {
		int rc = pcre2_match(re, (PCRE2_SPTR)text, len, offset, 0,
		    run->md, run->mctx ? run->mctx : run->set->mctx);

		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			/* The match or depth limit, or a JIT stack that
			 * ran out: no match, reported. */
			run->limit_hits++;
			break;
		}
		hits++;
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(run->md);
		offset = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
	}
	return hits;
}

/* One match with captures, for the address parser: rc as pcre2_match. */
static int
match_at(struct run *run, const pcre2_code *re, const char *text, size_t len)
{
	return pcre2_match(re, (PCRE2_SPTR)text, len, 0, 0, run->md_big,
	    run->mctx ? run->mctx : run->set->mctx);
}

static bool
group_set(struct run *run, int g, const char **s, size_t *n, const char *text)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(run->md_big);

	if (g >= (int)pcre2_get_ovector_count(run->md_big) ||
	    ov[2 * g] == PCRE2_UNSET)
		return false;
	*s = text + ov[2 * g];
	*n = ov[2 * g + 1] - ov[2 * g];
	return true;
}

/* A rule matched over every piece: SpamAssassin's loop, one hit unless
 * tflags multiple. skip: pieces left out at the start (nosubject). */
static int
count_lines(struct run *run, const struct rule *r, const struct lines *l,
    size_t skip)
{
	int max = r->tflags & TF_MULTIPLE ? (r->maxhits > 0 ? r->maxhits :
	    RULES_MULTIPLE_MAX) : 1;
	int n = 0;

	for (size_t i = skip; i < l->n && n < max; i++)
		n += count_matches(run, r->re, l->buf.data + l->off[i],
		    l->len[i], max - n);
	return n;
}

/* ---- headers, as SpamAssassin's get() returns them ---- */

static bool
perl_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

/* The raw value after the colon, LF line ends, with its newline. */
static void
raw_value(const struct header *h, struct strbuf *out)
{
	strbuf_putc(out, ' ');
	for (size_t i = 0; i < h->value_len; i++)
		if (!(h->value[i] == '\r' && i + 1 < h->value_len &&
		    h->value[i + 1] == '\n'))
			strbuf_putc(out, h->value[i]);
	strbuf_putc(out, '\n');
}

/* Headers SpamAssassin does not decode RFC 2047 words in. */
static bool
header_not_decoded(const char *name)
{
	static const char *const names[] = {"Received", "Message-ID",
	    "Resent-Message-ID", "Date", "Resent-Date", "MIME-Version",
	    "References", "In-Reply-To", NULL};

	if (strncasecmp(name, "List-", 5) == 0)
		return true;
	for (const char *const *n = names; *n != NULL; n++)
		if (strcasecmp(name, *n) == 0)
			return true;
	return false;
}

/* Header i as SpamAssassin decodes it: unfolded, trimmed, encoded-words
 * decoded, UTF-8; without the newline get() adds. */
static const char *
decoded_header(struct run *run, size_t i)
{
	const struct header *h = &run->msg->headers[i];
	struct strbuf v = STRBUF_INIT;

	if (run->decoded[i] != NULL)
		return run->decoded[i];
	raw_value(h, &v);
	/* s/\n[ \t]+/ /g; s/\s+$//; s/^\s+// */
	struct strbuf u = STRBUF_INIT;
	for (size_t k = 0; k < v.len; k++) {
		if (v.data[k] == '\n' && k + 1 < v.len &&
		    (v.data[k + 1] == ' ' || v.data[k + 1] == '\t')) {
			strbuf_putc(&u, ' ');
			while (k + 1 < v.len && (v.data[k + 1] == ' ' ||
			    v.data[k + 1] == '\t'))
				k++;
			continue;
		}
		strbuf_putc(&u, v.data[k]);
	}
	strbuf_free(&v);
	size_t a = 0, b = u.len;
	while (a < b && perl_space((unsigned char)u.data[a]))
		a++;
	while (b > a && perl_space((unsigned char)u.data[b - 1]))
		b--;
	run->decoded[i] = header_not_decoded(h->name) ?
	    mime_header_utf8(u.data ? u.data + a : "", b - a) :
	    mime_decode_header(u.data ? u.data + a : "", b - a);
	strbuf_free(&u);
	return run->decoded[i];
}

/* The values of one header as SpamAssassin's Node returns them:
 * decoded (get_header), raw and unfolded (get_header raw), or raw as
 * sent (raw_header). Each ends with a newline. */
enum hform { HFORM_DECODED, HFORM_RAW_UNFOLDED, HFORM_RAW };

static void
header_values(struct run *run, const char *name, enum hform form,
    GPtrArray *out)
{
	const struct message *msg = run->msg;

	for (size_t i = 0; i < msg->nheaders; i++) {
		struct strbuf v = STRBUF_INIT;

		if (strcasecmp(msg->headers[i].name, name) != 0)
			continue;
		if (form == HFORM_DECODED) {
			strbuf_puts(&v, decoded_header(run, i));
			strbuf_putc(&v, '\n');
		} else {
			struct strbuf raw = STRBUF_INIT;

			raw_value(&msg->headers[i], &raw);
			if (form == HFORM_RAW) {
				v = raw;
			} else {	/* s/\015?\012\s+/ /gs */
				for (size_t k = 0; k < raw.len; k++) {
					if (raw.data[k] == '\n' &&
					    k + 1 < raw.len &&
					    perl_space((unsigned char)
					    raw.data[k + 1])) {
						strbuf_putc(&v, ' ');
						while (k + 1 < raw.len &&
						    perl_space((unsigned char)
						    raw.data[k + 1]))
							k++;
						continue;
					}
					strbuf_putc(&v, raw.data[k]);
				}
				strbuf_free(&raw);
			}
		}
		char *text = strbuf_steal(&v);
		g_ptr_array_add(out, text != NULL ? text : mxg_strdup(""));
	}
}

/* is_fqdn_valid(host, 1) of SpamAssassin's Util.pm. */
static bool
fqdn_valid(const char *host, size_t len)
{
	while (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	size_t labels = 1;
	for (size_t i = 0; i < len; i++)
		labels += host[i] == '.';
	if (labels < 2)
		return false;
	size_t start = 0, left = labels;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && host[i] != '.')
			continue;
		size_t n = i - start;
		const char *l = host + start;
		if (n < 1 || n > 63)
			return false;
		for (size_t k = 0; k < n; k++) {
			char c = (char)tolower((unsigned char)l[k]);
			bool ok = isalnum((unsigned char)c) ? isascii(c) :
			    c == '_' || (c == '-' && k > 0 && k + 1 < n);
			if (!ok || (c == '_' && left <= 2))
				return false;
		}
		left--;
		start = i + 1;
	}
	return true;
}

/* Removes (comments) as s/\((?:|(?:[^()\\]++|\\.)*+)\)//gs does. */
static void
strip_comments(struct run *run, struct strbuf *s)
{
	struct strbuf out = STRBUF_INIT;
	size_t pos = 0;

	while (pos <= s->len) {
		int rc = pcre2_match(run->set->comment_re,
		    (PCRE2_SPTR)(s->data ? s->data : ""), s->len, pos, 0,
		    run->md_big, run->mctx);
		if (rc < 0)
			break;
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(run->md_big);
		strbuf_append(&out, s->data + pos, ov[0] - pos);
		pos = ov[1];
	}
	if (pos < s->len)
		strbuf_append(&out, s->data + pos, s->len - pos);
	strbuf_free(s);
	*s = out;
}

static bool
full_match(struct run *run, const pcre2_code *re, const char *s, size_t n)
{
	return pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, run->md_big,
	    run->mctx) >= 0;
}

/* _valid_parsed_address */
static bool
address_valid(const char *a, size_t n)
{
	size_t quotes = 0;

	if (n >= 3 && strncmp(a, "\"\"@", 3) == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		quotes += a[i] == '"';
	return quotes != 1;
}

/*
 * SpamAssassin's _parse_header_addresses over one raw value: for each
 * address, its address (want_name false) or its phrase, into out.
 */
static void
parse_addresses(struct run *run, const char *value, bool want_name,
    bool raw, GPtrArray *out)
{
	struct strbuf s = STRBUF_INIT;
	size_t n = strlen(value);

	while (n > 0 && perl_space((unsigned char)value[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++) {	/* s/\\\\//g */
		if (value[i] == '\\' && i + 1 < n && value[i + 1] == '\\') {
			i++;
			continue;
		}
		strbuf_putc(&s, value[i]);
	}
	if (s.len > 0 && match_at(run, run->set->group_re, s.data, s.len) >= 0) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(run->md_big);
		size_t cut = ov[1];
		memmove(s.data, s.data + cut, s.len - cut + 1);
		s.len -= cut;
	}
	size_t pos = 0;
	while (pos < s.len) {
		const char *text = s.data + pos, *g;
		size_t left = s.len - pos, gl;

		if (match_at(run, run->set->addr_re, text, left) < 0)
			break;
		PCRE2_SIZE end = pcre2_get_ovector_pointer(run->md_big)[1];
		struct strbuf phrase = STRBUF_INIT, address = STRBUF_INIT;
		struct strbuf comment = STRBUF_INIT;
		bool has_phrase = false, has_address = false;
		bool has_comment = false, relaxed = false;

		if (group_set(run, 1, &g, &gl, text) ||
		    group_set(run, 4, &g, &gl, text)) {
			strbuf_append(&phrase, g, gl);
			has_phrase = true;
		}
		if (group_set(run, 2, &g, &gl, text)) {
			strbuf_append(&address, g, gl);
			has_address = relaxed = true;
		} else if (group_set(run, 3, &g, &gl, text)) {
			strbuf_append(&address, g, gl);
			has_address = true;
		}
		if (group_set(run, 5, &g, &gl, text)) {
			strbuf_append(&comment, g, gl);
			has_comment = true;
		}
		pos += end > 0 ? end : 1;

		if (relaxed) {
			strip_comments(run, &address);
			if (!full_match(run, run->set->mailre,
			    strbuf_cstr(&address), address.len))
				has_address = false;
		}
		if (has_address && !address_valid(address.data, address.len))
			has_address = false;
		if (has_phrase) {
			struct strbuf np = STRBUF_INIT;
			size_t p2 = 0;
			while (p2 < phrase.len && pcre2_match(run->set->phrase_re,
			    (PCRE2_SPTR)phrase.data, phrase.len, p2, 0,
			    run->md_big, run->mctx) >= 0) {
				PCRE2_SIZE *ov =
				    pcre2_get_ovector_pointer(run->md_big);
				if (ov[2] != PCRE2_UNSET) {	/* quoted */
					const char *q = phrase.data + ov[2];
					size_t ql = ov[3] - ov[2];
					for (size_t k = 0; k < ql; k++) {
						if (q[k] == '\\' && k + 1 < ql &&
						    q[k + 1] == '\\') {
							strbuf_putc(&np, '\\');
							k++;
						} else if (q[k] != '\\') {
							strbuf_putc(&np, q[k]);
						}
					}
				} else {
					struct strbuf u = STRBUF_INIT;
					strbuf_append(&u, phrase.data + ov[4],
					    ov[5] - ov[4]);
					strip_comments(run, &u);
					strbuf_append(&np, u.data ? u.data : "",
					    u.len);
					strbuf_free(&u);
				}
				p2 = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
			}
			strbuf_free(&phrase);
			phrase = np;
			const char *at = phrase.data ? memchr(phrase.data, '@',
			    phrase.len) : NULL;
			if (!has_address && at != NULL &&
			    full_match(run, run->set->mailre, phrase.data,
			    phrase.len) &&
			    address_valid(phrase.data, phrase.len) &&
			    fqdn_valid(at + 1, strcspn(at + 1, "@"))) {
				strbuf_free(&address);
				address = phrase;
				memset(&phrase, 0, sizeof(phrase));
				has_address = true;
				has_phrase = false;
			} else if ((has_address && phrase.len == address.len &&
			    (phrase.len == 0 || memcmp(phrase.data,
			    address.data, phrase.len) == 0)) ||
			    phrase.len == 0) {
				has_phrase = false;
			}
		}
		if (!has_phrase && has_comment) {
			strbuf_free(&phrase);
			phrase = comment;
			memset(&comment, 0, sizeof(comment));
			has_phrase = true;
		}
		if (has_address) {	/* s/^(([^\@]*)\@([^\@]*)).* /$1/ */
			char *at = memchr(address.data, '@', address.len);
			if (at != NULL) {
				char *at2 = memchr(at + 1, '@',
				    address.len - (size_t)(at + 1 -
				    address.data));
				if (at2 != NULL) {
					address.len = (size_t)(at2 -
					    address.data);
					address.data[address.len] = '\0';
				}
			}
		}
		if (!want_name && has_address) {
			g_ptr_array_add(out, mxg_strndup(address.data,
			    address.len));
		} else if (want_name && has_phrase) {
			if (raw) {
				g_ptr_array_add(out, mxg_strndup(phrase.data ?
				    phrase.data : "", phrase.len));
			} else {
				char *d = mime_decode_header(phrase.data ?
				    phrase.data : "", phrase.len);
				struct strbuf w = STRBUF_INIT;
				bool any = false;
				for (char *c = d; *c; c++)
					any |= !perl_space((unsigned char)*c);
				if (any) {	/* normalize white space */
					bool gap = false;
					for (char *c = d; *c; c++) {
						if (perl_space((unsigned char)*c)) {
							gap = w.len > 0;
							continue;
						}
						if (gap)
							strbuf_putc(&w, ' ');
						gap = false;
						strbuf_putc(&w, *c);
					}
					if (w.len >= 2 && w.data[0] == '\'' &&
					    w.data[w.len - 1] == '\'') {
						memmove(w.data, w.data + 1,
						    w.len - 2);
						w.len -= 2;
						w.data[w.len] = '\0';
					}
				} else {
					strbuf_puts(&w, d);
				}
				free(d);
				char *t = strbuf_steal(&w);
				g_ptr_array_add(out, t ? t : mxg_strdup(""));
			}
		}
		strbuf_free(&phrase);
		strbuf_free(&address);
		strbuf_free(&comment);
	}
	strbuf_free(&s);
}

/* SpamAssassin's get(spec) for one message: defined, and the values
 * joined (a newline between them unless they end with one). */
static const struct hval *
header_get(struct run *run, long spec_index)
{
	struct hval *hv = &run->hvals[spec_index];
	const struct header_spec *spec = &run->set->specs[spec_index];
	const struct message *msg = run->msg;
	unsigned int mods = spec->hmods;
	bool raw = mods & HMOD_RAW;
	bool addr = mods & HMOD_ADDR, name = mods & HMOD_NAME;
	GPtrArray *vals;

	if (hv->done)
		return hv;
	hv->done = true;
	vals = g_ptr_array_new_with_free_func(free);
	if (strcmp(spec->name, "ALL") == 0) {
		for (size_t i = 0; i < msg->nheaders; i++) {
			struct strbuf v = STRBUF_INIT;

			strbuf_puts(&v, msg->headers[i].name);
			strbuf_putc(&v, ':');
			if (raw) {
				raw_value(&msg->headers[i], &v);
			} else {
				strbuf_putc(&v, ' ');
				strbuf_puts(&v, decoded_header(run, i));
				strbuf_putc(&v, '\n');
			}
			g_ptr_array_add(vals, strbuf_steal(&v));
		}
		addr = name = false;	/* ALL takes no other modifier */
		mods = 0;
	} else if (strcasecmp(spec->name, "ToCc") == 0) {
		header_values(run, "To", raw ? HFORM_RAW_UNFOLDED :
		    HFORM_DECODED, vals);
		header_values(run, "Cc", raw ? HFORM_RAW_UNFOLDED :
		    HFORM_DECODED, vals);
	} else if (strcmp(spec->name, "MESSAGEID") == 0) {
		static const char *const ids[] = {"X-Message-Id",
		    "Resent-Message-Id", "X-Original-Message-ID", "Message-Id"};
		for (size_t k = 0; k < 4; k++)
			header_values(run, ids[k], raw ? HFORM_RAW_UNFOLDED :
			    HFORM_DECODED, vals);
		/* grep { $_ ne '' }: values are never empty (a newline) */
	} else {
		header_values(run, spec->name, raw || addr || name ?
		    HFORM_RAW : HFORM_DECODED, vals);
	}
	if (vals->len > 1 && (mods & (HMOD_FIRST | HMOD_LAST))) {
		guint keep = mods & HMOD_FIRST ? 0 : vals->len - 1;
		char *v = mxg_strdup(g_ptr_array_index(vals, keep));
		g_ptr_array_set_size(vals, 0);
		g_ptr_array_add(vals, v);
	}
	if (addr || name) {
		GPtrArray *res = g_ptr_array_new_with_free_func(free);

		for (guint i = 0; i < vals->len; i++)
			parse_addresses(run, g_ptr_array_index(vals, i), name &&
			    !addr, raw, res);
		g_ptr_array_free(vals, TRUE);
		vals = res;
	}
	if (vals->len > 0) {
		const char *first = g_ptr_array_index(vals, 0);
		bool nl = first[0] != '\0' && first[strlen(first) - 1] == '\n';

		hv->defined = true;
		for (guint i = 0; i < vals->len; i++) {
			if (i > 0 && !nl)
				strbuf_putc(&hv->text, '\n');
			strbuf_puts(&hv->text, g_ptr_array_index(vals, i));
		}
	}
	g_ptr_array_free(vals, TRUE);
	return hv;
}

/* ---- body, rawbody and full texts, as SpamAssassin builds them ---- */

/* Length of the white-space character at s (Perl's \s over Unicode
 * text, in UTF-8), 0 when there is none. */
static size_t
space_len(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (perl_space(s[0]))
		return 1;
	if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0))
		return 2;
	if (n >= 3 && s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80)
		return 3;
	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && ((s[2] >= 0x80 &&
	    s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
		return 3;
	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f)
		return 3;
	if (n >= 3 && s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80)
		return 3;
	return 0;
}

/* SpamAssassin's cut of a part longer than limit: just after the first
 * of seps (tried in order) found no more than 1 KiB past the limit. */
static size_t
truncated_len(const char *s, size_t len, size_t limit, const char *seps)
{
	if (len <= limit)
		return len;
	for (const char *c = seps; *c; c++) {
		const char *p = memchr(s + limit, *c, len - limit);

		if (p != NULL && (size_t)(p - s) - limit <= 1024)
			return (size_t)(p - s) + 1;
	}
	return limit;
}

/* Text to paragraphs: a white-space run with two or more newlines is a
 * paragraph break, any other run one space (the whitespace handling of
 * Message.pm's get_body_text_array_common). */
static void
paragraphs(const char *s, size_t n, struct strbuf *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t w = space_len(u + i, n - i);

		if (w == 0) {
			strbuf_putc(out, s[i] == '\0' ? '\n' : s[i]);
			i++;
			continue;
		}
		size_t a = i, first = SIZE_MAX, last = 0, nl = 0;
		while (i < n && (w = space_len(u + i, n - i)) > 0) {
			if (s[i] == '\n') {
				if (first == SIZE_MAX)
					first = i;
				last = i;
				nl++;
			}
			i += w;
		}
		if (nl >= 2) {
			if (first > a)
				strbuf_putc(out, ' ');
			strbuf_putc(out, '\n');
			if (last + 1 < i)
				strbuf_putc(out, ' ');
		} else {
			strbuf_putc(out, ' ');
		}
	}
}

static void
build_body(struct run *run)
{
	const struct mime_content *c = run->content;
	struct strbuf text = STRBUF_INIT, all = STRBUF_INIT;
	const struct header *subject = NULL;

	run->body.built = true;
	for (size_t i = 0; i < run->msg->nheaders; i++)
		if (strcasecmp(run->msg->headers[i].name, "Subject") == 0)
			subject = &run->msg->headers[i];
	if (subject != NULL)
		strbuf_puts(&all, decoded_header(run,
		    (size_t)(subject - run->msg->headers)));
	strbuf_putc(&all, '\n');
	if (c->ntext_parts > 0) {
		for (size_t i = 0; i < c->ntext_parts; i++) {
			const char *p = c->text + c->text_parts[i].off;

			if (i > 0)
				strbuf_putc(&text, '\n');
			strbuf_append(&text, p, truncated_len(p,
			    c->text_parts[i].len, SA_BODY_PART_MAX, "\n "));
		}
	} else if (c->text != NULL) {
		strbuf_append(&text, c->text, truncated_len(c->text,
		    c->text_len, SA_BODY_PART_MAX, "\n "));
	}
	paragraphs(text.data ? text.data : "", text.len, &all);
	strbuf_free(&text);

	/* split_into_array_of_short_lines */
	const char *s = all.data ? all.data : "";
	size_t pos = 0;
	while (pos < all.len) {
		const char *nl = memchr(s + pos, '\n', all.len - pos);
		size_t len = nl ? (size_t)(nl - s) - pos + 1 : all.len - pos;

		while (len > SA_BODY_LINE_MAX) {
			size_t cut = 0;
			for (size_t k = SA_BODY_LINE_MAX + 1; k-- > 0;)
				if (s[pos + k] == ' ') {
					cut = k + 1;
					break;
				}
			if (cut == 0)
				cut = SA_BODY_LINE_MAX;
			lines_push(&run->body, s + pos, cut);
			pos += cut;
			len -= cut;
		}
		lines_push(&run->body, s + pos, len);
		pos += len;
	}
	strbuf_free(&all);
}

/* split_into_array_of_short_paragraphs */
static void
rawbody_part(struct lines *l, const char *s, size_t n)
{
	const size_t max = SA_BODY_LINE_MAX;
	size_t ofs = 0;

	if (n <= max) {
		lines_push(l, s, n);
		return;
	}
	while (n - ofs > 2 * max) {
		static const char seps[] = "\n> ";
		size_t j = SIZE_MAX;

		for (const char *c = seps; *c && j == SIZE_MAX; c++) {
			const char *p = memchr(s + ofs + max, *c,
			    n - ofs - max);
			if (p != NULL && (size_t)(p - s) - ofs + 1 <= 2 * max)
				j = (size_t)(p - s);
		}
		if (j == SIZE_MAX)
			j = ofs + max;
		lines_push(l, s + ofs, j - ofs + 1);
		ofs = j + 1;
	}
	if (ofs < n)
		lines_push(l, s + ofs, n - ofs);
}

static void
build_rawbody(struct run *run)
{
	const struct mime_content *c = run->content;

	run->rawbody.built = true;
	if (c->nraw_parts == 0) {
		if (c->raw_text != NULL && c->raw_text_len > 0)
			rawbody_part(&run->rawbody, c->raw_text,
			    truncated_len(c->raw_text, c->raw_text_len,
			    SA_RAWBODY_PART_MAX, "\n> "));
		return;
	}
	for (size_t i = 0; i < c->nraw_parts; i++) {
		const char *p = c->raw_text + c->raw_parts[i].off;

		rawbody_part(&run->rawbody, p, truncated_len(p,
		    c->raw_parts[i].len, SA_RAWBODY_PART_MAX, "\n> "));
	}
}

/* The message as received, LF line ends. */
static void
build_full(struct run *run)
{
	const struct message *msg = run->msg;

	run->full_built = true;
	for (size_t i = 0; i < msg->nheaders; i++) {
		strbuf_puts(&run->full, msg->headers[i].name);
		strbuf_putc(&run->full, ':');
		raw_value(&msg->headers[i], &run->full);
	}
	strbuf_putc(&run->full, '\n');
	for (size_t i = 0; msg->body != NULL && i < msg->body_len; i++)
		if (!(msg->body[i] == '\r' && i + 1 < msg->body_len &&
		    msg->body[i + 1] == '\n'))
			strbuf_putc(&run->full, msg->body[i]);
}

/* ---- URIs: the list uri rules see, SpamAssassin's variants included */

static bool
lines_has(const struct lines *l, const char *s, size_t n)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->len[i] == n && memcmp(l->buf.data + l->off[i], s, n) == 0)
			return true;
	return false;
}

static void
uri_add(struct lines *l, const char *s, size_t n)
{
	if (n > 8192)		/* MAX_URI_LENGTH */
		n = 8192;
	if (!lines_has(l, s, n))
		lines_push(l, s, n);
}

static int
hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

/* Dotted or single-number IPv4 host forms in decimal; false otherwise. */
static bool
ip_host_decimal(const char *h, size_t n, struct strbuf *out)
{
	unsigned long long parts[4];
	int np = 0;
	size_t i = 0;

	while (i < n && np < 4) {
		unsigned long long v = 0;
		size_t s = i;

		if (i + 1 < n && h[i] == '0' && (h[i + 1] == 'x' ||
		    h[i + 1] == 'X')) {
			i += 2;
			if (i >= n || hexval((unsigned char)h[i]) < 0)
				return false;
			while (i < n && hexval((unsigned char)h[i]) >= 0) {
				v = (v << 4 | (unsigned)hexval((unsigned char)
				    h[i])) & 0xffffffffffULL;
				i++;
			}
		} else {
			while (i < n && isdigit((unsigned char)h[i]))
				v = (v * 10 + (unsigned)(h[i++] - '0')) %
				    1000000000000ULL;
			if (i == s)
				return false;
			/* 0-led octets are octal when they read as such */
			if (h[s] == '0' && i - s > 1) {
				unsigned long long o = 0;
				bool octal = true;
				for (size_t k = s; k < i; k++) {
					if (h[k] > '7')
						octal = false;
					o = o * 8 + (unsigned)(h[k] - '0');
				}
				if (octal && o < 256)
					v = o;
			}
		}
		parts[np++] = v;
		if (i < n && h[i] == '.')
			i++;
		else
			break;
	}
	if (i != n)
		return false;
	if (np == 4) {
		for (int k = 0; k < 4; k++)
			strbuf_printf(out, k ? ".%llu" : "%llu", parts[k]);
		return true;
	}
	if (np == 1 && parts[0] <= 0xffffffffULL) {
		unsigned long long v = parts[0];
		strbuf_printf(out, "%llu.%llu.%llu.%llu", v >> 24 & 255,
		    v >> 16 & 255, v >> 8 & 255, v & 255);
		return true;
	}
	return false;
}

/* Util.pm's url_encode (which decodes): %XX of a printable character
 * decoded, other %XX kept; raw controls, spaces, 8-bit bytes, ", %, <
 * and > encoded. */
static void
url_encode(struct strbuf *u)
{
	struct strbuf t = STRBUF_INIT;

	for (size_t i = 0; i < u->len; i++) {
		unsigned char c = (unsigned char)u->data[i];

		if (c == '%' && i + 2 < u->len &&
		    hexval((unsigned char)u->data[i + 1]) >= 0 &&
		    hexval((unsigned char)u->data[i + 2]) >= 0) {
			int hi = hexval((unsigned char)u->data[i + 1]);
			int v = hi * 16 + hexval((unsigned char)u->data[i + 2]);
			if (hi >= 2 && hi <= 7 && v != 0x20 && v != 0x7f)
				strbuf_putc(&t, (char)v);
			else
				strbuf_append(&t, u->data + i, 3);
			i += 2;
			continue;
		}
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '%' || c == '<' ||
		    c == '>')
			strbuf_printf(&t, "%%%02x", c);
		else
			strbuf_putc(&t, (char)c);
	}
	strbuf_free(u);
	*u = t;
}

static bool
has_pct_hex(const struct strbuf *u)
{
	for (size_t i = 0; i + 2 < u->len; i++)
		if (u->data[i] == '%' && hexval((unsigned char)u->data[i + 1])
		    >= 0 && hexval((unsigned char)u->data[i + 2]) >= 0)
			return true;
	return false;
}

/* Util.pm's uri_list_canonicalize for one URI (redirect targets found
 * go through it too). */
static void
uri_canonicalize(struct lines *l, const char *in, size_t inlen, int depth)
{
	struct strbuf u = STRBUF_INIT, nuri = STRBUF_INIT;
	size_t a = 0, b = inlen;

	for (size_t i = 0; i < inlen; i++)
		if (in[i] != '\n' && in[i] != '\r')
			strbuf_putc(&u, in[i]);
	const char *s = u.data ? u.data : "";
	b = u.len;
	while (a < b && perl_space((unsigned char)s[a]))
		a++;
	while (b > a && perl_space((unsigned char)s[b - 1]))
		b--;
	s += a;
	size_t n = b - a;
	if (n <= 1 || s[0] == '#' || s[0] == '?' || s[0] == '&' ||
	    (s[0] == '/' && s[1] != '/'))
		goto out;
	uri_add(l, s, n);

	const char *colon = memchr(s, ':', n), *at = memchr(s, '@', n);
	if ((n >= 7 && strncasecmp(s, "mailto:", 7) == 0) ||
	    (at != NULL && (colon == NULL || at < colon))) {
		/* e-mail: ?subject= and &... dropped */
		const char *q = memchr(s, '?', n), *amp = memchr(s, '&', n);
		if (at != NULL && at > s && q != NULL && q > at + 1)
			uri_add(l, s, (size_t)(q - s));
		if (at != NULL && at > s && amp != NULL && amp > at + 1 &&
		    (q == NULL || amp < q))
			uri_add(l, s, (size_t)(amp - s));
		goto out;
	}

	for (size_t i = 0; i < n; i++)		/* tr{\\}{/} */
		strbuf_putc(&nuri, s[i] == '\\' ? '/' : s[i]);
	/* http:www.foo.biz -> http://www.foo.biz */
	size_t sch = strncasecmp(nuri.data, "http:", 5) == 0 ? 5 :
	    strncasecmp(nuri.data, "https:", 6) == 0 ? 6 : 0;
	if (sch > 0) {
		size_t sl = 0;
		while (sch + sl < nuri.len && sl < 2 && nuri.data[sch + sl] == '/')
			sl++;
		if (sl != 2) {
			struct strbuf t = STRBUF_INIT;
			strbuf_append(&t, nuri.data, sch);
			strbuf_puts(&t, "//");
			strbuf_append(&t, nuri.data + sch + sl,
			    nuri.len - sch - sl);
			strbuf_free(&nuri);
			nuri = t;
		}
	}
	/* url_encode, when there is any %XX */
	if (has_pct_hex(&nuri))
		url_encode(&nuri);
	/* no scheme: http:// (ftp:// for ftp.) */
	size_t k = 0;
	while (k < nuri.len && (isalnum((unsigned char)nuri.data[k]) ||
	    nuri.data[k] == '-' || nuri.data[k] == '_'))
		k++;
	if (!(k > 0 && k < nuri.len && nuri.data[k] == ':')) {
		struct strbuf t = STRBUF_INIT;
		strbuf_puts(&t, strncmp(nuri.data, "ftp.", 4) == 0 ? "ftp://" :
		    "http://");
		strbuf_append(&t, nuri.data, nuri.len);
		strbuf_free(&nuri);
		nuri = t;
	}
	/* http://host?x -> http://host/?x */
	sch = strncasecmp(nuri.data, "http://", 7) == 0 ? 7 :
	    strncasecmp(nuri.data, "https://", 8) == 0 ? 8 : 0;
	if (sch > 0) {
		size_t h = sch;
		while (h < nuri.len && !strchr("/?#", nuri.data[h]))
			h++;
		if (h > sch && h < nuri.len && nuri.data[h] != '/') {
			struct strbuf t = STRBUF_INIT;
			strbuf_append(&t, nuri.data, h);
			strbuf_putc(&t, '/');
			strbuf_append(&t, nuri.data + h, nuri.len - h);
			strbuf_free(&nuri);
			nuri = t;
		}
	}
	/* &#NN; of printable characters, and Unicode dots */
	if (memchr(nuri.data, '&', nuri.len) != NULL) {
		struct strbuf t = STRBUF_INIT;
		for (size_t i = 0; i < nuri.len; i++) {
			unsigned long v;
			char *e;
			if (nuri.data[i] == '&' && i + 2 < nuri.len &&
			    nuri.data[i + 1] == '#') {
				bool x = nuri.data[i + 2] == 'x' ||
				    nuri.data[i + 2] == 'X';
				v = strtoul(nuri.data + i + 2 + x, &e, x ? 16 : 10);
				if (e > nuri.data + i + 2 + x && *e == ';' &&
				    ((v >= 33 && v <= 126) || v == 0x3002 ||
				    v == 0xff0e || v == 0xff61)) {
					strbuf_putc(&t, v >= 33 && v <= 126 ?
					    (char)v : '.');
					i = (size_t)(e - nuri.data);
					continue;
				}
			}
			strbuf_putc(&t, nuri.data[i]);
		}
		strbuf_free(&nuri);
		nuri = t;
	}
	if (nuri.len != n || memcmp(nuri.data, s, n) != 0)
		uri_add(l, nuri.data, nuri.len);

	/* ^(https?://)([^@/?#]*@)?([^/?#:]+)((?::(\d*))?.*)$ */
	sch = strncasecmp(nuri.data, "http://", 7) == 0 ? 7 :
	    strncasecmp(nuri.data, "https://", 8) == 0 ? 8 : 0;
	if (sch == 0)
		goto out;
	const char *d = nuri.data, *hs = d + sch, *e = d + nuri.len;
	const char *auth_end = hs;
	while (auth_end < e && !strchr("@/?#", *auth_end))
		auth_end++;
	const char *host = auth_end < e && *auth_end == '@' ? auth_end + 1 :
	    hs;
	const char *he = host;
	while (he < e && !strchr("/?#:", *he))
		he++;
	if (he == host)
		goto out;
	const char *rest = he;
	char proto[9];
	snprintf(proto, sizeof(proto), "%.*s", (int)sch, d);
	for (char *c = proto; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	bool http = sch == 7;
	struct strbuf t = STRBUF_INIT;

	/* default ports dropped */
	if (rest < e && *rest == ':') {
		const char *pe = rest + 1;
		while (pe < e && isdigit((unsigned char)*pe))
			pe++;
		size_t plen = (size_t)(pe - rest - 1);
		if ((http && plen == 2 && strncmp(rest + 1, "80", 2) == 0) ||
		    (!http && plen == 3 && strncmp(rest + 1, "443", 3) == 0)) {
			strbuf_append(&t, d, (size_t)(rest - d));
			strbuf_append(&t, pe, (size_t)(e - pe));
			uri_add(l, t.data, t.len);
			strbuf_reset(&t);
		}
	}
	/* redirectors: one level of http(s) inside the rest */
	if (depth < 4) {
		for (const char *p = rest; p + 5 < e; p++) {
			if (strncasecmp(p, "http", 4) != 0)
				continue;
			const char *q = p + 4;
			if (q < e && (*q == 's' || *q == 'S'))
				q++;
			if (q >= e || *q != ':')
				continue;
			q++;
			for (int sl = 0; sl < 2 && q < e && *q == '/'; sl++)
				q++;
			const char *r = q;
			while (r < e && *r != '&' && *r != '#')
				r++;
			if (r > q && memchr(p, '.', (size_t)(r - p)) != NULL)
				uri_canonicalize(l, p, (size_t)(r - p),
				    depth + 1);
			break;
		}
	}
	/* user@ taken off the host */
	if (host != hs) {
		strbuf_append(&t, d, sch);
		strbuf_append(&t, host, (size_t)(e - host));
		uri_add(l, t.data, t.len);
		strbuf_reset(&t);
	}
	/* trailing punctuation taken off the host */
	const char *hend = he;
	while (hend > host && !isalnum((unsigned char)hend[-1]))
		hend--;
	if (hend < he) {
		strbuf_append(&t, d, sch);
		strbuf_append(&t, host, (size_t)(hend - host));
		strbuf_append(&t, rest, (size_t)(e - rest));
		uri_add(l, t.data, t.len);
		strbuf_reset(&t);
	}
	/* hosts that are IPs in other forms */
	struct strbuf ip = STRBUF_INIT;
	if (ip_host_decimal(host, (size_t)(hend - host), &ip) &&
	    (ip.len != (size_t)(hend - host) ||
	    memcmp(ip.data, host, ip.len) != 0)) {
		strbuf_append(&t, d, sch);
		strbuf_append(&t, ip.data, ip.len);
		strbuf_append(&t, rest, (size_t)(e - rest));
		uri_add(l, t.data, t.len);
		strbuf_reset(&t);
	} else if (http && host == hs && memchr(host, '.',
	    (size_t)(hend - host)) == NULL && (size_t)(hend - host) > 0 &&
	    !(hend - host == 9 && strncasecmp(host, "localhost", 9) == 0) &&
	    !(rest < e && *rest == ':')) {
		/* http://foobar -> http://www.foobar.com, as Firefox does */
		strbuf_puts(&t, "http://www.");
		strbuf_append(&t, host, (size_t)(hend - host));
		strbuf_puts(&t, ".com");
		strbuf_append(&t, rest, (size_t)(e - rest));
		uri_add(l, t.data, t.len);
		strbuf_reset(&t);
	}
	strbuf_free(&ip);
	strbuf_free(&t);
out:
	strbuf_free(&u);
	strbuf_free(&nuri);
}

/* is_domain_valid: a dot, and a known TLD after the last one. */
static bool
domain_valid(const struct ruleset *set, const char *d, size_t n)
{
	const char *dot = NULL;

	for (size_t i = 0; i < n; i++) {
		if (perl_space((unsigned char)d[i]))
			return false;
		if (d[i] == '.')
			dot = d + i;
	}
	if (dot == NULL || dot + 1 == d + n)
		return false;
	char *tld = mxg_strndup(dot + 1, (size_t)(d + n - dot - 1));
	for (char *c = tld; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	bool ok = g_hash_table_contains(set->tlds, tld);
	free(tld);
	return ok;
}

/* One URI found in text, as _process_text_uri_list takes it. */
static void
text_uri(struct run *run, GHashTable *seen, const char *raw, size_t n,
    bool mail, const char *host, size_t hostlen)
{
	struct strbuf u = STRBUF_INIT;

	/* ")" ends it when no "(" comes before */
	const char *close = memchr(raw, ')', n);
	if (close != NULL && memchr(raw, '(', (size_t)(close - raw)) == NULL)
		n = (size_t)(close - raw);
	while (n > 0 && strchr("-~!@#^&*()_+=:;'?,.", raw[n - 1]) != NULL &&
	    raw[n - 1] != '\0')
		n--;
	char *key = mxg_strndup(raw, n);
	if (g_hash_table_contains(seen, key)) {
		free(key);
		return;
	}
	g_hash_table_add(seen, key);
	if (mail && memchr(raw, '@', n) == NULL)
		return;
	if (host != NULL && !fqdn_valid(host, hostlen))
		return;
	if (n >= 4 && (strncasecmp(raw, "cid:", 4) == 0 ||
	    strncasecmp(raw, "mid:", 4) == 0))
		return;
	size_t w = 0;	/* ^\w+:\/{0,2}$ */
	while (w < n && (isalnum((unsigned char)raw[w]) || raw[w] == '_'))
		w++;
	if (w > 0 && w < n && raw[w] == ':') {
		size_t k = w + 1;
		while (k < n && k < w + 3 && raw[k] == '/')
			k++;
		if (k == n)
			return;
	}
	if (!(strncasecmp(raw, "http:", 5) == 0 ||
	    strncasecmp(raw, "https:", 6) == 0 ||
	    strncasecmp(raw, "ftp:", 4) == 0 ||
	    strncasecmp(raw, "mailto:", 7) == 0)) {
		const char *at = memchr(raw, '@', n);
		const char *slash = memchr(raw, '/', n);
		size_t www = 0;
		if (n > 3 && strncasecmp(raw, "www", 3) == 0) {
			www = 3;
			while (www < n && www < 5 && isdigit((unsigned char)
			    raw[www]))
				www++;
			www = www < n && raw[www] == '.' ? www : 0;
		}
		if (n >= 4 && strncasecmp(raw, "ftp.", 4) == 0) {
			strbuf_puts(&u, "ftp://");
		} else if (www > 0 || (slash != NULL && at != NULL &&
		    slash < at && at > slash + 1)) {
			strbuf_puts(&u, "http://");
		} else if (at != NULL) {
			/* foo@bar.com: a dot after the @ */
			if (memchr(at + 1, '.', n - (size_t)(at + 1 - raw)) ==
			    NULL || at + 1 == raw + n ||
			    memmem(raw, n, "&nbsp;", 6) != NULL)
				return;
			size_t k = 0;	/* ^(?:skype|e?-?mail)?:+ */
			if (n >= 5 && strncasecmp(raw, "skype", 5) == 0)
				k = 5;
			else {
				size_t q = 0;
				if (q < n && (raw[q] | 0x20) == 'e')
					q++;
				if (q < n && raw[q] == '-')
					q++;
				if (q + 4 <= n && strncasecmp(raw + q, "mail",
				    4) == 0)
					k = q + 4;
			}
			size_t c = k;
			while (c < n && raw[c] == ':')
				c++;
			if (c > k) {
				raw += c;
				n -= c;
			}
			strbuf_puts(&u, "mailto:");
		} else {
			if (memchr(raw, '.', n) == NULL)
				return;
			strbuf_puts(&u, "http://");
		}
	}
	strbuf_append(&u, raw, n);
	if (u.len >= 7 && strncasecmp(u.data, "mailto:", 7) == 0) {
		if (has_pct_hex(&u))
			url_encode(&u);
		const char *at = memchr(u.data, '@', u.len);
		if (at == NULL) {
			strbuf_free(&u);
			return;
		}
		size_t hl = strcspn(at + 1, "?&>");
		while (hl >= 3 && strncmp(at + 1 + hl - 3, "%20", 3) == 0)
			hl -= 3;
		if (!domain_valid(run->set, at + 1, hl)) {
			strbuf_free(&u);
			return;
		}
	}
	uri_canonicalize(&run->uris, u.data, u.len, 0);
	strbuf_free(&u);
}

/* The URIs uri rules see: those SpamAssassin finds in the body text and
 * those of HTML attributes, each with its canonical variants. */
static void
build_uris(struct run *run)
{
	const struct mime_content *c = run->content;
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal,
	    free, NULL);

	run->uris.built = true;
	if (!run->body.built)
		build_body(run);
	for (size_t i = 0; i < run->body.n; i++) {
		const char *text = run->body.buf.data + run->body.off[i];
		size_t len = run->body.len[i], pos = 0;

		while (pos < len) {
			int rc = pcre2_match(run->set->uri_re, (PCRE2_SPTR)text,
			    len, pos, 0, run->md_big, run->mctx);
			const char *g, *h = NULL;
			size_t gl, hl = 0;

			if (rc < 0) {
				if (rc != PCRE2_ERROR_NOMATCH)
					run->limit_hits++;
				break;
			}
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(run->md_big);
			size_t next = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
			bool mail = false;
			if (group_set(run, 1, &g, &gl, text)) {
				/* scheme or www. */
			} else if (group_set(run, 2, &g, &gl, text)) {
				mail = true;
			} else if (group_set(run, 3, &g, &gl, text)) {
				group_set(run, 4, &h, &hl, text);
			} else {
				pos = next;
				continue;
			}
			char *copy_h = h ? mxg_strndup(h, hl) : NULL;
			char *copy = mxg_strndup(g, gl);
			text_uri(run, seen, copy, gl, mail, copy_h, hl);
			free(copy);
			free(copy_h);
			pos = next;
		}
	}
	g_hash_table_destroy(seen);
	for (size_t i = 0; i < c->nuris; i++)
		if (c->uris[i].html)
			uri_canonicalize(&run->uris, c->uris[i].uri,
			    strlen(c->uris[i].uri), 0);
}

/* ---- values: exact counts, or ranges over what cannot be known ---- */

static struct ival rule_value(struct run *run, size_t i);

static struct ival
iv(double lo, double hi)
{
	return (struct ival){lo, hi};
}

static double
clampd(double v)
{
	return isnan(v) ? 0 : v > IVAL_BIG ? IVAL_BIG : v < -IVAL_BIG ?
	    -IVAL_BIG : v;
}

/* 1: surely true (not 0), 0: surely false, -1: either. */
static int
truth(struct ival v)
{
	if (v.lo > 0 || v.hi < 0)
		return 1;
	if (v.lo == 0 && v.hi == 0)
		return 0;
	return -1;
}

static struct ival
hull(struct ival a, struct ival b)
{
	return iv(a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi);
}

static struct ival
corners(double a, double b, double c, double d)
{
	double lo = a, hi = a;
	double v[3] = {b, c, d};

	for (int i = 0; i < 3; i++) {
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	return iv(clampd(lo), clampd(hi));
}

/* Perl's answer to a comparison over ranges. */
static struct ival
compare(enum meta_op op, struct ival a, struct ival b)
{
	bool yes, no;

	switch (op) {
	case META_LT: yes = a.hi < b.lo; no = a.lo >= b.hi; break;
	case META_GT: yes = a.lo > b.hi; no = a.hi <= b.lo; break;
	case META_LE: yes = a.hi <= b.lo; no = a.lo > b.hi; break;
	case META_GE: yes = a.lo >= b.hi; no = a.hi < b.lo; break;
	case META_EQ:
		yes = a.lo == a.hi && b.lo == b.hi && a.lo == b.lo;
		no = a.hi < b.lo || b.hi < a.lo;
		break;
	default:	/* META_NE */
		no = a.lo == a.hi && b.lo == b.hi && a.lo == b.lo;
		yes = a.hi < b.lo || b.hi < a.lo;
		break;
	}
	return yes ? iv(1, 1) : no ? iv(0, 0) : iv(0, 1);
}

/* A meta expression, as Perl computes it (&& and || give an operand's
 * value), over ranges. */
static struct ival
meta_eval(struct run *run, const struct meta_node *n)
{
	struct ival a, b;

	switch (n->op) {
	case META_NUM:
		return iv(n->number, n->number);
	case META_RULE:
		return n->index < 0 ? iv(0, 0) :
		    rule_value(run, (size_t)n->index);
	case META_NOT:
		switch (truth(meta_eval(run, n->left))) {
		case 1: return iv(0, 0);
		case 0: return iv(1, 1);
		default: return iv(0, 1);
		}
	case META_NEG:
		a = meta_eval(run, n->left);
		return iv(-a.hi, -a.lo);
	case META_AND:
		a = meta_eval(run, n->left);
		switch (truth(a)) {
		case 0: return a;
		case 1: return meta_eval(run, n->right);
		default: return hull(iv(0, 0), meta_eval(run, n->right));
		}
	case META_OR:
		a = meta_eval(run, n->left);
		switch (truth(a)) {
		case 1: return a;
		case 0: return meta_eval(run, n->right);
		default:
			/* a when a is true, else b: true when b is */
			b = meta_eval(run, n->right);
			if (b.lo > 0 && a.lo >= 0)
				return iv(IVAL_TINY, a.hi > b.hi ? a.hi : b.hi);
			if (b.hi < 0 && a.hi <= 0)
				return iv(a.lo < b.lo ? a.lo : b.lo, -IVAL_TINY);
			return hull(a, b);
		}
	default:
		break;
	}
	a = meta_eval(run, n->left);
	b = meta_eval(run, n->right);
	switch (n->op) {
	case META_ADD: return iv(clampd(a.lo + b.lo), clampd(a.hi + b.hi));
	case META_SUB: return iv(clampd(a.lo - b.hi), clampd(a.hi - b.lo));
	case META_MUL:
		return corners(a.lo * b.lo, a.lo * b.hi, a.hi * b.lo,
		    a.hi * b.hi);
	case META_DIV:
		if (b.lo == 0 && b.hi == 0)
			return iv(0, 0);	/* as a miss, not Perl's die */
		if (b.lo <= 0 && b.hi >= 0)
			return iv(-IVAL_BIG, IVAL_BIG);
		return corners(a.lo / b.lo, a.lo / b.hi, a.hi / b.lo,
		    a.hi / b.hi);
	default:
		return compare(n->op, a, b);
	}
}

/* Hits of an opaque rule: unknown when SpamAssassin would run it. */
static struct ival
opaque_value(const struct run *run, const struct rule *r)
{
	int set = run->set->options.score_set;

	if (!r->runs || ((r->tflags & TF_NET || r->dns) && !(set & 1)) ||
	    (r->tflags & TF_LEARN && !(set & 2)))
		return iv(0, 0);
	return iv(0, r->tflags & TF_MULTIPLE ? (r->maxhits > 0 ? r->maxhits :
	    RULES_MULTIPLE_MAX) : 1);
}

static int
header_count(struct run *run, const struct rule *r)
{
	const struct hval *hv = header_get(run, r->hspec);
	const char *text = hv->defined ? strbuf_cstr((struct strbuf *)
	    &hv->text) : r->if_unset != NULL ? r->if_unset : "";
	size_t len = hv->defined ? hv->text.len : strlen(text);
	int max = r->tflags & TF_MULTIPLE && !r->negate ? (r->maxhits > 0 ?
	    r->maxhits : RULES_MULTIPLE_MAX) : 1;
	int m = count_matches(run, r->re, text, len, max);

	return r->negate ? !m : m;
}

/* The values of one header as get() joins them (decoded, a newline after
 * each) into out; false when there is none. */
static bool
header_joined(struct run *run, const char *const *names, struct strbuf *out)
{
	GPtrArray *vals = g_ptr_array_new_with_free_func(free);

	for (const char *const *n = names; *n != NULL; n++)
		header_values(run, *n, HFORM_DECODED, vals);
	for (guint i = 0; i < vals->len; i++)
		strbuf_puts(out, g_ptr_array_index(vals, i));
	bool any = vals->len > 0;
	g_ptr_array_free(vals, TRUE);
	return any;
}

/* An eval: test of sa_eval.h over this message: 1 when it hits. */
static int
eval_value(struct run *run, const struct rule *r)
{
	static const char *const received[] = {"Received", NULL};
	static const char *const date[] = {"Date", NULL};
	static const char *const msgids[] = {"X-Message-Id",
	    "Resent-Message-Id", "X-Original-Message-ID", "Message-Id", NULL};
	struct strbuf rcvd = STRBUF_INIT;
	int hit = 0;

	switch (r->call.fn) {
	case SA_EVAL_SHIFTED_DATE:
		if (!run->date_diff_done) {
			GPtrArray *dates = g_ptr_array_new_with_free_func(free);

			/* Resent-Date: first, then Date: */
			header_values(run, "Resent-Date", HFORM_DECODED, dates);
			header_values(run, "Date", HFORM_DECODED, dates);
			header_joined(run, received, &rcvd);
			run->date_diff = sa_date_diff((const char *const *)
			    dates->pdata, dates->len, rcvd.data, rcvd.len);
			run->date_diff_done = true;
			g_ptr_array_free(dates, TRUE);
		}
		hit = sa_shifted_date_hits(&r->call, run->date_diff);
		break;
	case SA_EVAL_OUTLOOK_MSGID: {
		struct strbuf id = STRBUF_INIT, d = STRBUF_INIT;

		header_joined(run, msgids, &id);
		header_joined(run, date, &d);
		header_joined(run, received, &rcvd);
		hit = sa_outlook_msgid_hits(id.data, id.len, d.data, d.len,
		    rcvd.data, rcvd.len);
		strbuf_free(&id);
		strbuf_free(&d);
		break;
	}
	default:
		break;
	}
	strbuf_free(&rcvd);
	return hit;
}

/* Hit count of rule i, worked out once per message. */
static struct ival
rule_value(struct run *run, size_t i)
{
	const struct rule *r = &run->set->rules[i];
	struct ival v = iv(0, 0);
	int n = 0;

	if (run->state[i] == 2)
		return run->vals[i];
	if (run->state[i] == 1)		/* a meta loop: counts as 0 */
		return v;
	run->state[i] = 1;
	if (r->broken || (!r->runs && r->type != RULE_OPAQUE)) {
		v = iv(0, 0);
	} else switch (r->type) {
	case RULE_OPAQUE:
		v = opaque_value(run, r);
		break;
	case RULE_EXISTS:
		n = header_get(run, r->hspec)->defined;
		v = iv(n, n);
		break;
	case RULE_HEADER:
		n = header_count(run, r);
		v = iv(n, n);
		break;
	case RULE_EVAL:
		n = eval_value(run, r);
		v = iv(n, n);
		break;
	case RULE_BODY:
		if (!run->body.built)
			build_body(run);
		n = count_lines(run, r, &run->body, r->tflags & TF_NOSUBJECT ?
		    1 : 0);
		v = iv(n, n);
		break;
	case RULE_RAWBODY:
		if (!run->rawbody.built)
			build_rawbody(run);
		n = count_lines(run, r, &run->rawbody, 0);
		v = iv(n, n);
		break;
	case RULE_FULL: {
		int max = r->tflags & TF_MULTIPLE ? (r->maxhits > 0 ?
		    r->maxhits : RULES_MULTIPLE_MAX) : 1;
		if (!run->full_built)
			build_full(run);
		n = count_matches(run, r->re, strbuf_cstr(&run->full),
		    run->full.len, max);
		v = iv(n, n);
		break;
	}
	case RULE_URI:
		if (!run->uris.built)
			build_uris(run);
		n = count_lines(run, r, &run->uris, 0);
		v = iv(n, n);
		break;
	case RULE_META:
		if (r->unsolved || r->never || r->meta == NULL)
			break;
		v = meta_eval(run, r->meta);
		/* SpamAssassin's hit value: the result, 1 when not
		 * positive */
		switch (truth(v)) {
		case 1: v = v.lo > 0 ? v : iv(1, 1); break;
		case 0: v = iv(0, 0); break;
		default: v = iv(0, v.hi > 1 ? v.hi : 1); break;
		}
		break;
	default:
		break;
	}
	run->state[i] = 2;
	run->vals[i] = v;
	return v;
}

static void
run_begin(struct run *run, const struct ruleset *set,
    const struct message *msg, const struct mime_content *content)
{
	memset(run, 0, sizeof(*run));
	run->set = set;
	run->msg = msg;
	run->content = content;
	run->md = pcre2_match_data_create(1, NULL);
	run->md_big = pcre2_match_data_create(8, NULL);
	/* JIT's default 32 KiB stack is too small for ordinary patterns
	 * over long text; a context per run, since a stack cannot be shared
	 * between threads. */
	run->mctx = pcre2_match_context_copy(set->mctx);
	run->jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024,
	    NULL);
	if (run->mctx != NULL && run->jit_stack != NULL)
		pcre2_jit_stack_assign(run->mctx, NULL, run->jit_stack);
	run->vals = mxg_malloc((set->count + 1) * sizeof(*run->vals));
	run->state = mxg_calloc(set->count + 1, 1);
	run->hvals = mxg_calloc(set->nspecs + 1, sizeof(*run->hvals));
	run->decoded = mxg_calloc(msg->nheaders + 1, sizeof(char *));
}

static void
run_end(struct run *run)
{
	pcre2_match_data_free(run->md);
	pcre2_match_data_free(run->md_big);
	if (run->mctx != NULL)
		pcre2_match_context_free(run->mctx);
	if (run->jit_stack != NULL)
		pcre2_jit_stack_free(run->jit_stack);
	for (size_t i = 0; i < run->msg->nheaders; i++)
		free(run->decoded[i]);
	free(run->decoded);
	for (size_t i = 0; i < run->set->nspecs; i++)
		strbuf_free(&run->hvals[i].text);
	free(run->hvals);
	free(run->vals);
	free(run->state);
	lines_free(&run->body);
	lines_free(&run->rawbody);
	lines_free(&run->uris);
	strbuf_free(&run->full);
}

/* A rule that scores: reported when it surely hits. */
static bool
reportable(const struct rule *r)
{
	return r->type != RULE_NONE && r->type != RULE_OPAQUE && !r->broken &&
	    r->runs && !r->never && r->score != 0 &&
	    strncmp(r->name, "__", 2) != 0;
}

void
rules_run(const struct ruleset *set, const struct message *msg,
    const struct mime_content *content, struct rules_eval *out)
{
	struct run run;

	memset(out, 0, sizeof(*out));
	run_begin(&run, set, msg, content);
	for (size_t i = 0; i < set->count; i++) {
		const struct rule *r = &set->rules[i];

		if (!reportable(r))
			continue;
		struct ival v = rule_value(&run, i);
		if (v.lo <= 0)
			continue;
		out->hits = mxg_realloc(out->hits,
		    (out->nhits + 1) * sizeof(*out->hits));
		out->hits[out->nhits].name = r->name;
		out->hits[out->nhits].description = r->description;
		out->hits[out->nhits].score = r->score;
		out->hits[out->nhits].count = v.lo >= RULES_MULTIPLE_MAX ?
		    RULES_MULTIPLE_MAX : v.lo < 1 ? 1 : (int)v.lo;
		out->nhits++;
	}
	out->limit_hits = run.limit_hits;
	run_end(&run);
}

void
rules_eval_free(struct rules_eval *eval)
{
	free(eval->hits);
	memset(eval, 0, sizeof(*eval));
}
