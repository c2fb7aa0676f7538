/*
 * content.h - content scoring: the message decoded by lib/mime, then
 * every content rule of lib/rules run over it.
 *
 * Section [rules]: enabled, files (paths and globs), score_set (auto:
 * 1 when SPF, DKIM or DMARC is on, else 0), max_scan_size, max_parts,
 * max_depth, max_uris, match_limit, depth_limit. Stage: end of message.
 *
 * Each rule that hits adds a symbol named after it with its score (a
 * [scores] line overrides a rule's score as for any symbol). Declared
 * symbols: MIME_TRUNCATED (the message was larger than max_scan_size:
 * the rest was not scanned), MIME_TOO_MANY_PARTS, MIME_TOO_DEEP,
 * RULES_REGEX_LIMIT (a regex hit its match limit: logged too).
 *
 * A rule file with errors still loads what it can; each error is logged
 * at start with file:line (mxguard lint lists them and exits 1).
 */
#ifndef MXG_CONTENT_H
#define MXG_CONTENT_H

#include "check.h"
#include "rules.h"

extern const struct check content_check;

/* The rule options a config asks for (score set resolved). */
void content_rule_options(const struct config *cfg, struct rules_options *opt);

#endif
