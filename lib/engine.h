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
 *	stage and runs no more stages. The RCPT stage runs once for every
 *	recipient added since the last call (scan->current_rcpt); a check
 *	may refuse just that recipient (scan_refuse_rcpt): it is then taken
 *	off the message, recorded in scan->refused, and
 *	scan->rcpt_refused_now tells the caller to answer that RCPT TO with
 *	the last refusal's reply while the transaction goes on.
 *	scan->stage_asked is the stage of the latest call: after scan_reset
 *	the CONNECT checks run again as part of later stages, and a check
 *	that must act once per connection (a connection rate limit) acts
 *	only when it is the stage asked for.
 *
 * engine_run_check(engine, scan, check)
 *	Runs that one check alone, outside the stage order (no earlier
 *	stage runs), when it is enabled; a no-op otherwise. For the policy
 *	server, which at END-OF-MESSAGE knows the size but never the
 *	content, and so runs the size limits alone. Returns as
 *	engine_run_stage.
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
 * engine_received_spf(engine, scan, sb)
 *	Appends the Received-SPF header value (RFC 7208 9.1) for the SPF
 *	result so far; false when SPF has not run. For the policy server,
 *	which prepends it at RCPT time, and for engine_finish.
 *
 * engine_check_count(engine) / engine_check_name(engine, i)
 *	The enabled checks in run order; i indexes scan->check_ns.
 *
 * engine_summary(scan, buf) / engine_summary_record(scan, rec)
 *	The one log line about the message (without queue id), as text or
 *	as the fields of a log record (log.h).
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
#include <stdint.h>

#include "check.h"
#include "dkim.h"
#include "dmarc.h"
#include "message.h"
#include "mime.h"
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

/* A recipient refused at RCPT TO while the transaction goes on. */
struct rcpt_refusal {
	char *address;
	bool reject;		/* 5xx; else 4xx */
	/* A 4xx that a later 5xx of the MTA's own restrictions may
	 * override (greylisting: the policy server answers DEFER_IF_PERMIT);
	 * false: this reply and no other (a rate limit's 450). */
	bool soft;
	char *reply;		/* "451 4.7.1 Greylisted, ..." */
	char *code, *enhanced, *text;
};

struct scan {
	struct engine *engine;
	struct message *msg;
	struct verdict *verdict;
	const struct config *cfg;
	struct dns_resolver *dns;
	bool trusted;		/* loopback client: no checks run */
	bool stage_done[STAGE_COUNT];
	size_t rcpts_seen;	/* recipients the RCPT checks have judged */
	const char *current_rcpt;	/* the one being judged, for checks */
	struct rcpt_refusal *refused;	/* in order; see engine_run_stage */
	size_t nrefused;
	bool rcpt_refused_now;	/* the latest recipient was refused */
	bool finished;
	enum check_stage stage_asked;	/* see engine_run_stage */

	struct spf_result spf;
	/* The last SPF evaluation of this connection, kept across
	 * scan_reset (see spf.h); freed by scan_free. */
	struct spf_result spf_last;
	char *spf_last_key;
	/* The policy server asks once per recipient and resets the scan
	 * each time: the instance (message.h) whose message the rate limits
	 * have counted, kept across scan_reset; freed by scan_free. */
	char *ratelimit_counted_instance;
	struct dkim_results dkim;
	struct dmarc_result dmarc;
	struct mime_content *mime;	/* decoded by the rules check, or NULL */
	void *check_data[ENGINE_MAX_CHECKS];
	/* Wall time each enabled check spent on this message (run and body
	 * hooks), indexed as engine_check_name(); zeroed by scan_reset. */
	uint64_t check_ns[ENGINE_MAX_CHECKS];

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
bool engine_run_check(struct engine *engine, struct scan *scan,
    const struct check *check);
void engine_body(struct engine *engine, struct scan *scan, const char *chunk,
    size_t len);
void engine_finish(struct engine *engine, struct scan *scan);
bool engine_received_spf(const struct engine *engine, const struct scan *scan,
    struct strbuf *sb);
void engine_summary(const struct scan *scan, struct strbuf *line);
struct log_record;
void engine_summary_record(const struct scan *scan, struct log_record *rec);
size_t engine_check_count(const struct engine *engine);
const char *engine_check_name(const struct engine *engine, size_t index);

void scan_add_symbol(struct scan *scan, const char *name, const char *detail);
void **scan_check_data(struct scan *scan, const struct check *check);
/* For checks with data-defined symbols: name is borrowed and must live
 * as long as the engine; score is the check's own. */
void scan_add_scored_symbol(struct scan *scan, const char *name,
    double score, const char *detail);
/* For RCPT checks: refuses scan->current_rcpt with 4xx (451, soft) or
 * 5xx (550) when reject, and a text; the first refusal of a recipient
 * wins. */
void scan_refuse_rcpt(struct scan *scan, bool reject, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same with the reply code given ("450"): a refusal that is final
 * (not soft) whatever the code. */
void scan_refuse_rcpt_code(struct scan *scan, const char *code,
    const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
