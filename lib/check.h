/*
 * check.h - what a check module is.
 *
 * A check judges one kind of evidence. It exports one `const struct
 * check` that names it, its config section, the SMTP stage at which its
 * inputs are known, and every symbol it can emit with a default score
 * (`[scores] SYMBOL = n` overrides it). lib/checks.c lists the checks;
 * adding one is two files and one line there.
 *
 * A check never writes SMTP replies or headers and never picks the
 * action: it adds symbols and Authentication-Results entries through
 * scan_* (engine.h), and may force tempfail or reject through
 * verdict_force() with an enhanced status code and a text.
 *
 * init(env, &state, err)     once at engine start; 0 or MXG_E* with err.
 *                            NULL when the check needs no state.
 * run(state, scan)           once per message at its stage; must be
 *                            thread-safe (many messages at once).
 * body(state, scan, chunk, len)
 *                            optional: every body chunk as it streams,
 *                            even past [milter] body_scan_limit, for
 *                            checks that need every byte (DKIM hashes).
 * release(data)             optional: frees the per-message data the
 *                            check kept in *scan_check_data() (engine.h)
 *                            when the message ends; data is never NULL.
 * has_symbol(state, name)    optional: for checks whose symbols come
 *                            from data (content rules), whether name is
 *                            one; lets [scores] name it.
 * free(state)                at engine end.
 * enabled(cfg)               the section's `enabled` key.
 */
#ifndef MXG_CHECK_H
#define MXG_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum check_stage {
	STAGE_CONNECT,
	STAGE_HELO,
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_EOH,
	STAGE_EOM,
	STAGE_COUNT,
};

struct check_symbol {
	const char *name;
	double score;
	const char *description;
};

struct dns_resolver;

struct check_env {
	const struct config *cfg;
	struct dns_resolver *dns;
};

struct scan;

struct check {
	const char *name;
	const char *section;
	enum check_stage stage;
	const struct check_symbol *symbols;	/* ends with {NULL} */
	bool (*enabled)(const struct config *cfg);
	int (*init)(const struct check_env *env, void **state, char *err);
	void (*run)(void *state, struct scan *scan);
	void (*body)(void *state, struct scan *scan, const char *chunk,
	    size_t len);
	void (*release)(void *data);
	bool (*has_symbol)(void *state, const char *name);
	void (*free)(void *state);
};

/* lib/checks.c: every check, in the order they run within a stage. */
extern const struct check *const all_checks[];

#endif
