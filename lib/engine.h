/*
 * engine.h - runs the checks over a message and turns their evidence
 * into a verdict. The milter, the policy server and `mxguard check` all
 * drive this, so a message is judged the same way everywhere.
 *
 * engine_new(cfg, &engine, err)
 *	Starts the shared resolver and every enabled check, and checks the
 *	[scores] overrides against the symbols the checks declare (an
 *	unknown symbol is an error naming the config line). cfg is borrowed
 *	and must outlive the engine. Caller frees with engine_free.
 *	Thread-safe after creation.
 *
 * scan_new(engine, msg) / scan_free(scan)
 *	One scan per message (transaction): the verdict and the structured
 *	results. msg is borrowed. scan_reset() readies it for the next
 *	message on the same connection.
 *
 * engine_run_stage(engine, scan, stage)
 *	Runs the checks of that stage (and of any earlier stage not yet
 *	run, since an MTA may skip callbacks). Returns true when the verdict
 *	is now forced (tempfail or reject): the caller answers at this
 *	stage and runs no more stages.
 *
 * engine_body(engine, scan, chunk, len)
 *	Appends a body chunk to the message (kept up to body_scan_limit) and
 *	streams it whole to every check with a body hook.
 *
 * engine_finish(engine, scan)
 *	Runs what has not run, decides the action and prepares the headers
 *	to add (Authentication-Results, Received-SPF, X-Spam-*) and the
 *	forged Authentication-Results to remove.
 *
 * engine_summary(scan, buf)
 *	The one log line about the message (without queue id).
 *
 * scan_add_symbol(scan, name, detail)
 *	For checks: adds a declared symbol with its configured score.
 *
 * scan_check_data(scan, check)
 *	For checks: a slot for the check's own per-message data (NULL at the
 *	start of each message); the engine hands it to check->release when
 *	the message ends.
 */
#ifndef MXG_ENGINE_H
#define MXG_ENGINE_H

#include <stdbool.h>

#include "check.h"
#include "dkim.h"
#include "dmarc.h"
#include "message.h"
#include "spf.h"
#include "strbuf.h"
#include "verdict.h"

struct engine;

#define ENGINE_MAX_CHECKS 16

/* A header to remove from the message: the index-th (1-based, as
 * smfi_chgheader counts) header with that name. */
struct header_removal {
	const char *name;
	int index;
};

struct scan {
	struct engine *engine;
	struct message *msg;
	struct verdict *verdict;
	const struct config *cfg;
	struct dns_resolver *dns;
	bool trusted;		/* loopback client: no checks run */
	bool stage_done[STAGE_COUNT];
	bool finished;

	struct spf_result spf;
	struct dkim_results dkim;
	struct dmarc_result dmarc;
	void *check_data[ENGINE_MAX_CHECKS];

	struct header_removal *removals;
	size_t nremovals;
	char *authserv_id;
};

int engine_new(const struct config *cfg, struct engine **engine, char *err);
void engine_free(struct engine *engine);
const struct config *engine_config(const struct engine *engine);

struct scan *scan_new(struct engine *engine, struct message *msg);
void scan_reset(struct scan *scan);
void scan_free(struct scan *scan);

bool engine_run_stage(struct engine *engine, struct scan *scan,
    enum check_stage stage);
void engine_body(struct engine *engine, struct scan *scan, const char *chunk,
    size_t len);
void engine_finish(struct engine *engine, struct scan *scan);
void engine_summary(const struct scan *scan, struct strbuf *line);

void scan_add_symbol(struct scan *scan, const char *name, const char *detail);
void **scan_check_data(struct scan *scan, const struct check *check);

#endif
