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
 * log_set_format(format)
 *	LOG_FORMAT_TEXT (default) or LOG_FORMAT_JSON ([log] format): every
 *	line becomes one JSON object {"time", "level", "program",
 *	"queue_id" (when about a message), "message"}.
 *
 * STRUCTURED LINES
 *	The one line per message is a log_record: named fields, written
 *	as `key=value ...` in text and as members of the JSON object (the
 *	fields instead of "message") in json, so that log shippers get
 *	the same fields without parsing text.
 *	log_field(rec, key, style, fmt, ...) adds a field; the style says
 *	how text shows it (key=value, key=<value>, key="value", or value
 *	glued to the previous field as in client=1.2.3.4[name]) and
 *	whether JSON gets a number. log_record_text() renders the text
 *	form; log_record_emit() writes the line; log_record_free().
 */
#ifndef MXG_LOG_H
#define MXG_LOG_H

#include <stdbool.h>
#include <stddef.h>

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
void log_set_format(enum log_format format);

enum log_field_style {
	LOG_FIELD_PLAIN,	/* key=value */
	LOG_FIELD_ANGLE,	/* key=<value> */
	LOG_FIELD_QUOTED,	/* key="value" */
	LOG_FIELD_NUMBER,	/* key=value; a JSON number */
	LOG_FIELD_SUFFIX,	/* [value] right after the previous field */
};

#define LOG_RECORD_MAX_FIELDS 32

struct log_record {
	struct {
		const char *key;
		char *value;
		enum log_field_style style;
	} fields[LOG_RECORD_MAX_FIELDS];
	size_t n;
};

struct strbuf;

void log_field(struct log_record *rec, const char *key,
    enum log_field_style style, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void log_record_text(const struct log_record *rec, struct strbuf *out);
void log_record_emit(const char *queue_id, enum log_level level,
    const struct log_record *rec);
void log_record_free(struct log_record *rec);

#endif
