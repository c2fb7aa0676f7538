/*
 * log.h - the one way mxguard writes log lines.
 *
 * Daemons log to syslog (facility mail) unless started in the foreground,
 * where lines go to stderr with a timestamp. Each line about a message
 * names its queue id, so that an operator can grep one transaction.
 *
 * log_init(ident, to_stderr, level)
 *	Once, before threads start. ident is borrowed for the process lifetime.
 * log_enabled(level)
 *	True when a line at this level would be written: check it before
 *	formatting anything expensive.
 * log_msg(queue_id, level, fmt, ...)
 *	queue_id may be NULL (not about one message). Thread-safe.
 * log_level_parse(text, &level)
 *	"err" "warning" "notice" "info" "debug" -> 0, else -1.
 */
#ifndef MXG_LOG_H
#define MXG_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

enum log_format {
	LOG_FORMAT_TEXT,	/* "queue_id: text" */
	LOG_FORMAT_JSON,	/* one JSON object a line */
};

void log_init(const char *ident, bool to_stderr, enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
void log_msg(const char *queue_id, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int log_level_parse(const char *text, enum log_level *level);

#endif
