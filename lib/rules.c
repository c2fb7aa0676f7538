#define PCRE2_CODE_UNIT_WIDTH 8
#include "rules.h"

#include <ctype.h>
#include <errno.h>
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

#define RULES_LINE_MAX 65536
#define RULES_INCLUDE_DEPTH 8
#define RULES_MULTIPLE_MAX 1000	/* hits counted per rule and message */
#define META_DEPTH_MAX 64

enum rule_type {
	RULE_NONE,		/* only score/describe lines seen so far */
	RULE_HEADER,
	RULE_EXISTS,
	RULE_BODY,
	RULE_RAWBODY,
	RULE_FULL,
	RULE_URI,
	RULE_META,
};

enum header_mode { HEADER_DECODED, HEADER_RAW, HEADER_ADDR, HEADER_NAME };

enum meta_op {
	META_NUM, META_RULE, META_NOT, META_NEG, META_AND, META_OR, META_ADD,
	META_SUB, META_MUL, META_DIV, META_LT, META_GT, META_LE, META_GE,
	META_EQ, META_NE,
};

struct meta_node {
	enum meta_op op;
	double number;
	char *name;		/* META_RULE, resolved to index */
	long index;		/* -1: no such rule (counts as 0) */
	struct meta_node *left, *right;
};

struct rule {
	char *name;
	enum rule_type type;
	char *header;
	enum header_mode header_mode;
	bool negate;
	char *if_unset;
	pcre2_code *re;
	struct meta_node *meta;
	double scores[4];
	bool has_score;
	double score;		/* the one in force */
	char *description;
	bool multiple;
	bool nice;		/* tflags nice: a ham sign, default score -1 */
	int maxhits;
	char *where;
	bool broken;		/* an error: never runs */
};

struct ruleset {
	struct rule *rules;
	size_t count;
	struct rules_options options;
	pcre2_match_context *mctx;
};

/* ---------------------------------------------------------------- load */

struct loader {
	struct ruleset *set;
	struct rules_report *report;
	int skip_depth;		/* inside skipped if/ifplugin blocks */
	int open_blocks;	/* if/ifplugin blocks open */
	bool block_skips[64];	/* per open block: is it skipped */
	int overflow_blocks;	/* blocks past the 64th: refused */
	char *open_files[RULES_INCLUDE_DEPTH + 1];	/* being read */
	int nopen_files;
	int depth;		/* include nesting */
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
rule_find(struct ruleset *set, const char *name)
{
	for (size_t i = 0; i < set->count; i++)
		if (strcmp(set->rules[i].name, name) == 0)
			return &set->rules[i];
	return NULL;
}

static struct rule *
rule_get(struct ruleset *set, const char *name)
{
	struct rule *r = rule_find(set, name);

	if (r != NULL)
		return r;
	set->rules = mxg_realloc(set->rules, (set->count + 1) * sizeof(*r));
	r = &set->rules[set->count++];
	memset(r, 0, sizeof(*r));
	r->name = mxg_strdup(name);
	r->maxhits = 1;
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
	free(n);
}

static void
rule_clear_test(struct rule *r)
{
	free(r->header);
	free(r->if_unset);
	if (r->re != NULL)
		pcre2_code_free(r->re);
	meta_free(r->meta);
	r->header = r->if_unset = NULL;
	r->re = NULL;
	r->meta = NULL;
	r->negate = false;
	r->header_mode = HEADER_DECODED;
	r->broken = false;
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

/*
 * Compiles a Perl-style regex: /re/flags or m<delim>re<delim>flags. The
 * pattern ends at the last delimiter, as SpamAssassin reads it.
 * Returns NULL with why filled.
 */
static pcre2_code *
compile_regex(const char *text, bool multiline, char *why, size_t whylen,
    char **tail)
{
	char open, close;
	const char *p = text, *end;
	uint32_t options = 0;

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
	const char *f = end + 1;
	for (; *f && !isspace((unsigned char)*f); f++) {
		switch (*f) {
		case 'i': options |= PCRE2_CASELESS; break;
		case 's': options |= PCRE2_DOTALL; break;
		case 'm': options |= PCRE2_MULTILINE; break;
		case 'x': options |= PCRE2_EXTENDED; break;
		case 'g': case 'o': break;	/* no meaning here */
		default:
			snprintf(why, whylen, "unknown regex flag '%c'", *f);
			return NULL;
		}
	}
	if (tail != NULL)
		*tail = (char *)f;
	if (multiline)
		options |= PCRE2_MULTILINE;

	int errcode;
	PCRE2_SIZE erroffset;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)(p + 1),
	    (PCRE2_SIZE)(end - p - 1), options, &errcode, &erroffset, NULL);
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

/* ---- meta expressions: recursive descent, Perl's precedence ---- */

struct meta_parser {
	const char *p;
	char why[200];
	int depth;
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
		n = meta_new(META_RULE, NULL, NULL);
		n->name = mxg_strndup(s, (size_t)(mp->p - s));
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

static struct meta_node *
meta_parse(const char *text, char *why, size_t whylen)
{
	struct meta_parser mp = {text, "", 0};
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

static void
set_where(struct rule *r, const char *file, int line)
{
	char where[1100];

	snprintf(where, sizeof(where), "%s:%d", file, line);
	free(r->where);
	r->where = mxg_strdup(where);
}

/* header NAME Header[:mod] =~ /re/ [if-unset: text] | exists:Header */
static void
parse_header_rule(struct loader *ld, struct rule *r, char *cursor,
    const char *file, int line)
{
	char why[300];
	char *spec = next_word(&cursor);

	if (spec == NULL) {
		ERROR(ld, file, line, "header %s: nothing to test", r->name);
		r->broken = true;
		return;
	}
	if (strncmp(spec, "exists:", 7) == 0) {
		r->type = RULE_EXISTS;
		r->header = mxg_strdup(spec + 7);
		return;
	}
	/* Modifiers may chain (From:name:raw); addr and name decide. */
	char *mod = strchr(spec, ':');
	if (mod != NULL)
		*mod++ = '\0';
	while (mod != NULL) {
		char *next = strchr(mod, ':');

		if (next != NULL)
			*next++ = '\0';
		if (strcmp(mod, "raw") == 0) {
			if (r->header_mode == HEADER_DECODED)
				r->header_mode = HEADER_RAW;
		} else if (strcmp(mod, "addr") == 0) {
			r->header_mode = HEADER_ADDR;
		} else if (strcmp(mod, "name") == 0) {
			r->header_mode = HEADER_NAME;
		} else {
			ERROR(ld, file, line, "header %s: unknown modifier "
			    ":%s", r->name, mod);
			r->broken = true;
			return;
		}
		mod = next;
	}
	r->type = RULE_HEADER;
	r->header = mxg_strdup(spec);
	char *op = next_word(&cursor);
	if (op == NULL || (strcmp(op, "=~") != 0 && strcmp(op, "!~") != 0)) {
		ERROR(ld, file, line, "header %s: expected =~ or !~ after %s",
		    r->name, spec);
		r->broken = true;
		return;
	}
	r->negate = op[0] == '!';
	char *tail = NULL, *regex = rest_of_line(cursor);
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
	r->re = compile_regex(regex, false, why, sizeof(why), &tail);
	if (r->re == NULL) {
		ERROR(ld, file, line, "header %s: %s", r->name, why);
		r->broken = true;
		return;
	}

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

static void
parse_tflags(struct rule *r, char *cursor)
{
	char *w;

	while ((w = next_word(&cursor)) != NULL) {
		if (strcmp(w, "nice") == 0) {
			r->nice = true;
		} else if (strcmp(w, "multiple") == 0) {
			r->multiple = true;
			if (r->maxhits <= 1)
				r->maxhits = RULES_MULTIPLE_MAX;
		} else if (strncmp(w, "maxhits=", 8) == 0) {
			long m = strtol(w + 8, NULL, 10);
			r->multiple = true;
			r->maxhits = m > 0 && m < RULES_MULTIPLE_MAX ? (int)m :
			    RULES_MULTIPLE_MAX;
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

static void
parse_line(struct loader *ld, char *line, const char *file, int lineno)
{
	char *cursor = line, why[300];
	char *directive = next_word(&cursor);

	if (directive == NULL)
		return;
	/*
	 * if/ifplugin blocks test for Perl plugins and versions. A block
	 * that asks for something is read (its eval: tests are skipped one
	 * by one, its plain rules load); a negated one ("if !plugin(...)",
	 * a fallback for when a plugin is missing) and an else branch are
	 * skipped, so that a rule is not defined twice.
	 */
	if (strcmp(directive, "if") == 0 || strcmp(directive, "ifplugin") == 0) {
		bool negated = strchr(rest_of_line(cursor), '!') != NULL;

		if (ld->open_blocks >= (int)sizeof(ld->block_skips)) {
			/* Refused whole: its endif must not close an outer
			 * block, and it changes nothing else. */
			ERROR(ld, file, lineno, "if blocks nested too deep");
			ld->overflow_blocks++;
			return;
		}
		ld->block_skips[ld->open_blocks++] = negated ||
		    ld->skip_depth > 0;
		if (negated || ld->skip_depth > 0) {
			if (ld->skip_depth++ == 0)
				WARN(ld, file, lineno, "negated if block",
				    "%s %s: block skipped", directive,
				    rest_of_line(cursor));
		}
		return;
	}
	if (strcmp(directive, "else") == 0 && ld->overflow_blocks > 0)
		return;
	if (strcmp(directive, "else") == 0) {
		/* Read the branch we skipped, skip the one we read. */
		if (ld->open_blocks == 0) {
			ERROR(ld, file, lineno, "else without if");
			return;
		}
		bool was_skipping = ld->block_skips[ld->open_blocks - 1];
		bool outer_skip = ld->skip_depth - (was_skipping ? 1 : 0) > 0;
		if (outer_skip)
			return;
		if (was_skipping) {
			ld->skip_depth--;
		} else {
			ld->skip_depth++;
			WARN(ld, file, lineno, "else branch", "else branch "
			    "skipped");
		}
		ld->block_skips[ld->open_blocks - 1] = !was_skipping;
		return;
	}
	if (strcmp(directive, "endif") == 0) {
		if (ld->overflow_blocks > 0) {
			ld->overflow_blocks--;
			return;
		}
		if (ld->open_blocks == 0) {
			ERROR(ld, file, lineno, "endif without if");
			return;
		}
		if (ld->block_skips[--ld->open_blocks])
			ld->skip_depth--;
		return;
	}
	if (ld->skip_depth > 0) {
		ld->report->skipped += strcmp(directive, "header") == 0 ||
		    strcmp(directive, "body") == 0 ||
		    strcmp(directive, "rawbody") == 0 ||
		    strcmp(directive, "uri") == 0 ||
		    strcmp(directive, "full") == 0 ||
		    strcmp(directive, "meta") == 0;
		return;
	}
	if (strcmp(directive, "include") == 0) {
		char *target = rest_of_line(cursor), path[2048];
		char *copy = mxg_strdup(file);

		if (*target == '/')
			snprintf(path, sizeof(path), "%s", target);
		else
			snprintf(path, sizeof(path), "%s/%s", dirname(copy),
			    target);
		free(copy);
		if (ld->depth >= RULES_INCLUDE_DEPTH) {
			ERROR(ld, file, lineno, "include nested deeper than %d",
			    RULES_INCLUDE_DEPTH);
			return;
		}
		if (access(path, R_OK) != 0) {
			ERROR(ld, file, lineno, "include %s: %s", path,
			    strerror(errno));
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
		return;
	}
	if (strcmp(directive, "lang") == 0) {
		WARN(ld, file, lineno, "lang", "lang lines are skipped");
		return;
	}

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
	if (strncmp(test_text, "eval:", 5) == 0) {
		WARN(ld, file, lineno, "eval: test", "%s %s: eval: tests are "
		    "not supported", directive, name);
		ld->report->skipped++;
		struct rule *r = rule_find(ld->set, name);
		if (r != NULL && r->type == RULE_NONE)
			r->broken = true;
		return;
	}
	struct rule *r = rule_get(ld->set, name);
	rule_clear_test(r);
	set_where(r, file, lineno);
	r->type = type;
	switch (type) {
	case RULE_HEADER:
		parse_header_rule(ld, r, cursor, file, lineno);
		break;
	case RULE_META:
		r->meta = meta_parse(rest, why, sizeof(why));
		if (r->meta == NULL) {
			ERROR(ld, file, lineno, "meta %s: %s", name, why);
			r->broken = true;
		}
		break;
	default:
		r->re = compile_regex(rest, type == RULE_BODY ||
		    type == RULE_RAWBODY, why, sizeof(why), NULL);
		if (r->re == NULL) {
			ERROR(ld, file, lineno, "%s %s: %s", directive, name,
			    why);
			r->broken = true;
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

	int depth_at_start = ld->skip_depth, blocks_at_start = ld->open_blocks;
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
	if (ld->open_blocks != blocks_at_start) {
		ERROR(ld, path, lineno, "if/ifplugin without endif");
		ld->skip_depth = depth_at_start;
		ld->open_blocks = blocks_at_start;
	}
	if (my_slot >= 0 && my_slot == ld->nopen_files - 1) {
		free(ld->open_files[my_slot]);
		ld->nopen_files--;
	}
	fclose(fp);
	free(line);
}

static void
meta_resolve(struct ruleset *set, struct meta_node *n)
{
	if (n == NULL)
		return;
	if (n->op == META_RULE) {
		struct rule *r = rule_find(set, n->name);
		n->index = r ? (long)(r - set->rules) : -1;
	}
	meta_resolve(set, n->left);
	meta_resolve(set, n->right);
}

/* SpamAssassin's defaults for a rule without a score line. */
static double
default_score(const struct rule *r)
{
	if (strncmp(r->name, "__", 2) == 0)
		return 0;
	if (strncmp(r->name, "T_", 2) == 0)
		return r->nice ? -0.01 : 0.01;
	return r->nice ? -1.0 : 1.0;
}

struct ruleset *
rules_load(const char *files, const struct rules_options *opt,
    struct rules_report *report)
{
	struct ruleset *set = mxg_calloc(1, sizeof(*set));
	struct loader ld;

	memset(&ld, 0, sizeof(ld));
	ld.set = set;
	ld.report = report;
	char *copy = mxg_strdup(files ? files : ""), *cursor = NULL;

	memset(report, 0, sizeof(*report));
	set->options = *opt;
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

	for (size_t i = 0; i < set->count; i++) {
		struct rule *r = &set->rules[i];

		meta_resolve(set, r->meta);
		r->score = r->has_score ? r->scores[opt->score_set & 3] :
		    default_score(r);
		if (r->type != RULE_NONE && !r->broken)
			report->loaded++;
	}
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
	return rule_find((struct ruleset *)set, name) != NULL;
}

void
rules_set_score(struct ruleset *set, const char *name, double score)
{
	struct rule *r = rule_find(set, name);

	if (r != NULL)
		r->score = score;
}

/* ----------------------------------------------------------------- run */

struct run {
	const struct ruleset *set;
	const struct message *msg;
	const struct mime_content *content;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit_stack;
	int *counts;		/* per rule; -1: not computed yet */
	char *state;		/* meta: 0 new, 1 in progress, 2 done */
	char **decoded;		/* per header, lazily */
	struct strbuf body;	/* Subject line + rendered text */
	struct strbuf full;
	int limit_hits;
};

/* Counts matches of re in text (at most max). */
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

static const char *
decoded_header(struct run *run, size_t i)
{
	if (run->decoded[i] == NULL)
		run->decoded[i] = mime_decode_header(run->msg->headers[i].value,
		    run->msg->headers[i].value_len);
	return run->decoded[i];
}

/* First mailbox's address or display name of a header value. */
static void
address_part(const char *value, bool want_name, struct strbuf *out)
{
	InternetAddressList *list = internet_address_list_parse(NULL, value);

	for (int i = 0; list != NULL && i < internet_address_list_length(list);
	    i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);

		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		const char *v = want_name ? internet_address_get_name(ia) :
		    internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		if (v != NULL)
			strbuf_puts(out, v);
		break;
	}
	if (list != NULL)
		g_object_unref(list);
}

/* The text a header rule looks at; false when the header is absent. */
static bool
header_text(struct run *run, const struct rule *r, struct strbuf *out)
{
	const struct message *msg = run->msg;
	bool found = false;

	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct header *h = &msg->headers[i];
		bool all = strcmp(r->header, "ALL") == 0;

		if (!all && !(strcasecmp(h->name, r->header) == 0 ||
		    (strcmp(r->header, "ToCc") == 0 &&
		    (strcasecmp(h->name, "To") == 0 ||
		    strcasecmp(h->name, "Cc") == 0))))
			continue;
		if (found)
			strbuf_putc(out, '\n');
		found = true;
		if (all) {
			strbuf_puts(out, h->name);
			strbuf_puts(out, ": ");
		}
		switch (r->header_mode) {
		case HEADER_RAW:
			strbuf_append(out, h->value, h->value_len);
			break;
		case HEADER_ADDR:
		case HEADER_NAME:
			address_part(h->value, r->header_mode == HEADER_NAME,
			    out);
			break;
		default:
			strbuf_puts(out, decoded_header(run, i));
			break;
		}
	}
	return found;
}

static int rule_count(struct run *run, size_t i);

static double
meta_eval(struct run *run, const struct meta_node *n)
{
	double a, b;

	switch (n->op) {
	case META_NUM:
		return n->number;
	case META_RULE:
		return n->index < 0 ? 0 : rule_count(run, (size_t)n->index);
	case META_NOT:
		return meta_eval(run, n->left) == 0;
	case META_NEG:
		return -meta_eval(run, n->left);
	case META_AND:
		return meta_eval(run, n->left) != 0 &&
		    meta_eval(run, n->right) != 0;
	case META_OR:
		return meta_eval(run, n->left) != 0 ||
		    meta_eval(run, n->right) != 0;
	default:
		break;
	}
	a = meta_eval(run, n->left);
	b = meta_eval(run, n->right);
	switch (n->op) {
	case META_ADD: return a + b;
	case META_SUB: return a - b;
	case META_MUL: return a * b;
	case META_DIV: return b == 0 ? 0 : a / b;
	case META_LT: return a < b;
	case META_GT: return a > b;
	case META_LE: return a <= b;
	case META_GE: return a >= b;
	case META_EQ: return a == b;
	case META_NE: return a != b;
	default: return 0;
	}
}

/* Hit count of rule i, computed once per message. */
static int
rule_count(struct run *run, size_t i)
{
	const struct rule *r = &run->set->rules[i];
	const struct mime_content *c = run->content;
	struct strbuf text = STRBUF_INIT;
	int n = 0;

	if (run->counts[i] >= 0)
		return run->counts[i];
	if (run->state[i] == 1)		/* a meta loop: counts as 0 */
		return 0;
	run->state[i] = 1;
	if (r->broken) {
		n = 0;
	} else switch (r->type) {
	case RULE_EXISTS:
		n = message_header_count(run->msg, r->header) > 0;
		break;
	case RULE_HEADER: {
		bool present = header_text(run, r, &text);
		if (!present && r->if_unset != NULL)
			strbuf_puts(&text, r->if_unset);
		int m = count_matches(run, r->re, strbuf_cstr(&text), text.len, 1);
		n = r->negate ? !m : m;
		break;
	}
	case RULE_BODY:
		n = count_matches(run, r->re, strbuf_cstr(&run->body),
		    run->body.len, r->maxhits);
		break;
	case RULE_RAWBODY:
		n = c->raw_text ? count_matches(run, r->re, c->raw_text,
		    c->raw_text_len, r->maxhits) : 0;
		break;
	case RULE_FULL:
		n = count_matches(run, r->re, strbuf_cstr(&run->full),
		    run->full.len, r->maxhits);
		break;
	case RULE_URI:
		for (size_t u = 0; u < c->nuris && n < r->maxhits; u++)
			n += count_matches(run, r->re, c->uris[u].uri,
			    strlen(c->uris[u].uri), r->maxhits - n);
		break;
	case RULE_META: {
		double v = meta_eval(run, r->meta);
		n = v > 0 ? (v > RULES_MULTIPLE_MAX ? RULES_MULTIPLE_MAX :
		    (int)(v < 1 ? 1 : v)) : 0;
		break;
	}
	default:
		n = 0;
	}
	strbuf_free(&text);
	run->state[i] = 2;
	run->counts[i] = n;
	return n;
}

void
rules_run(const struct ruleset *set, const struct message *msg,
    const struct mime_content *content, struct rules_eval *out)
{
	struct run run;

	memset(out, 0, sizeof(*out));
	memset(&run, 0, sizeof(run));
	run.set = set;
	run.msg = msg;
	run.content = content;
	run.md = pcre2_match_data_create(1, NULL);
	/* JIT's default 32 KiB stack is too small for ordinary patterns
	 * over long text; a context per run, since a stack cannot be shared
	 * between threads. */
	run.mctx = pcre2_match_context_copy(set->mctx);
	run.jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024,
	    NULL);
	if (run.mctx != NULL && run.jit_stack != NULL)
		pcre2_jit_stack_assign(run.mctx, NULL, run.jit_stack);
	run.counts = mxg_malloc((set->count + 1) * sizeof(int));
	run.state = mxg_calloc(set->count + 1, 1);
	run.decoded = mxg_calloc(msg->nheaders + 1, sizeof(char *));
	for (size_t i = 0; i < set->count; i++)
		run.counts[i] = -1;

	/* SpamAssassin's body text starts with the Subject line. */
	const struct header *subject = message_header_find(msg, "Subject", 0);
	if (subject != NULL) {
		strbuf_puts(&run.body, decoded_header(&run,
		    (size_t)(subject - msg->headers)));
		strbuf_putc(&run.body, '\n');
	}
	if (content->text != NULL)
		strbuf_append(&run.body, content->text, content->text_len);
	for (size_t i = 0; i < msg->nheaders; i++) {
		strbuf_puts(&run.full, msg->headers[i].name);
		strbuf_puts(&run.full, ": ");
		strbuf_append(&run.full, msg->headers[i].value,
		    msg->headers[i].value_len);
		strbuf_puts(&run.full, "\r\n");
	}
	strbuf_puts(&run.full, "\r\n");
	if (msg->body != NULL)
		strbuf_append(&run.full, msg->body, msg->body_len);

	for (size_t i = 0; i < set->count; i++) {
		const struct rule *r = &set->rules[i];

		if (r->type == RULE_NONE || r->broken || r->score == 0 ||
		    strncmp(r->name, "__", 2) == 0)
			continue;
		int n = rule_count(&run, i);
		if (n == 0)
			continue;
		out->hits = mxg_realloc(out->hits,
		    (out->nhits + 1) * sizeof(*out->hits));
		out->hits[out->nhits].name = r->name;
		out->hits[out->nhits].description = r->description;
		out->hits[out->nhits].score = r->score;
		out->hits[out->nhits].count = n;
		out->nhits++;
	}
	out->limit_hits = run.limit_hits;

	pcre2_match_data_free(run.md);
	if (run.mctx != NULL)
		pcre2_match_context_free(run.mctx);
	if (run.jit_stack != NULL)
		pcre2_jit_stack_free(run.jit_stack);
	for (size_t i = 0; i < msg->nheaders; i++)
		free(run.decoded[i]);
	free(run.decoded);
	free(run.counts);
	free(run.state);
	strbuf_free(&run.body);
	strbuf_free(&run.full);
}

void
rules_eval_free(struct rules_eval *eval)
{
	free(eval->hits);
	memset(eval, 0, sizeof(*eval));
}
