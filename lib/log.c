#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "mxg.h"
#include "strbuf.h"

static const char *log_ident = "mxguard";
static bool log_to_stderr = true;
static enum log_level log_threshold = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;

static const char *
level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERR: return "err";
	case LOG_LEVEL_WARNING: return "warning";
	case LOG_LEVEL_NOTICE: return "notice";
	case LOG_LEVEL_INFO: return "info";
	case LOG_LEVEL_DEBUG: return "debug";
	}
	return "info";
}

void
log_init(const char *ident, bool to_stderr, enum log_level level)
{
	log_ident = ident;
	log_to_stderr = to_stderr;
	log_threshold = level;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

/* One finished line to stderr (with a time stamp) or syslog. JSON lines
 * carry their own time and program. */
static void
write_line(enum log_level level, const char *line)
{
	if (log_to_stderr && log_format == LOG_FORMAT_JSON) {
		fprintf(stderr, "%s\n", line);
	} else if (log_to_stderr) {
		char stamp[32];
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		localtime_r(&now.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		/* One fprintf per line: stdio locks the stream, so lines from
		 * worker threads never interleave. */
		fprintf(stderr, "%s.%03ld %s: %s\n", stamp,
		    now.tv_nsec / 1000000, log_ident, line);
	} else {
		syslog((int)level, "%s", line);
	}
}

/* {"time":..,"level":..,"program":..,"queue_id":.. without the brace
 * that closes it. */
static void
json_head(struct strbuf *sb, enum log_level level, const char *queue_id)
{
	char stamp[48];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_printf(sb, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\","
	    "\"program\":", stamp, now.tv_nsec / 1000000, level_name(level));
	strbuf_json_cstr(sb, log_ident);
	if (queue_id != NULL && *queue_id != '\0') {
		strbuf_puts(sb, ",\"queue_id\":");
		strbuf_json_cstr(sb, queue_id);
	}
}

bool
log_enabled(enum log_level level)
{
	return level <= log_threshold;
}

void
log_msg(const char *queue_id, enum log_level level, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	int off = 0;

	if (!log_enabled(level))
		return;
	if (queue_id != NULL && *queue_id != '\0')
		off = snprintf(line, sizeof(line), "%s: ", queue_id);
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - (size_t)off, fmt, ap);
	va_end(ap);

	if (log_format == LOG_FORMAT_JSON) {
		struct strbuf sb = STRBUF_INIT;

		json_head(&sb, level, queue_id);
		strbuf_puts(&sb, ",\"message\":");
		strbuf_json_cstr(&sb, line + off);
		strbuf_putc(&sb, '}');
		write_line(level, sb.data);
		strbuf_free(&sb);
		return;
	}
	write_line(level, line);
}

void
log_field(struct log_record *rec, const char *key, enum log_field_style style,
    const char *fmt, ...)
{
	va_list ap;

	if (rec->n == LOG_RECORD_MAX_FIELDS)
		return;
	va_start(ap, fmt);
	char *text;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	rec->fields[rec->n].key = key;
	rec->fields[rec->n].value = text != NULL ? text : mxg_strdup("");
	rec->fields[rec->n].style = style;
	rec->n++;
}

void
log_record_text(const struct log_record *rec, struct strbuf *out)
{
	for (size_t i = 0; i < rec->n; i++) {
		const char *v = rec->fields[i].value;

		if (rec->fields[i].style == LOG_FIELD_SUFFIX) {
			strbuf_printf(out, "[%s]", v);
			continue;
		}
		if (i > 0)
			strbuf_putc(out, ' ');
		switch (rec->fields[i].style) {
		case LOG_FIELD_ANGLE:
			strbuf_printf(out, "%s=<%s>", rec->fields[i].key, v);
			break;
		case LOG_FIELD_QUOTED:
			strbuf_printf(out, "%s=\"%s\"", rec->fields[i].key, v);
			break;
		default:
			strbuf_printf(out, "%s=%s", rec->fields[i].key, v);
			break;
		}
	}
}

void
log_record_emit(const char *queue_id, enum log_level level,
    const struct log_record *rec)
{
	struct strbuf sb = STRBUF_INIT;

	if (!log_enabled(level))
		return;
	if (log_format != LOG_FORMAT_JSON) {
		log_record_text(rec, &sb);
		log_msg(queue_id, level, "%s", sb.data ? sb.data : "");
		strbuf_free(&sb);
		return;
	}
	json_head(&sb, level, queue_id);
	for (size_t i = 0; i < rec->n; i++) {
		const char *v = rec->fields[i].value;

		strbuf_putc(&sb, ',');
		strbuf_json_cstr(&sb, rec->fields[i].key);
		strbuf_putc(&sb, ':');
		if (rec->fields[i].style == LOG_FIELD_NUMBER)
			strbuf_puts(&sb, v);
		else
			strbuf_json_cstr(&sb, v);
	}
	strbuf_putc(&sb, '}');
	write_line(level, sb.data);
	strbuf_free(&sb);
}

void
log_record_free(struct log_record *rec)
{
	for (size_t i = 0; i < rec->n; i++)
		free(rec->fields[i].value);
	rec->n = 0;
}

int
log_level_parse(const char *text, enum log_level *level)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{"err", LOG_LEVEL_ERR}, {"error", LOG_LEVEL_ERR},
		{"warning", LOG_LEVEL_WARNING}, {"notice", LOG_LEVEL_NOTICE},
		{"info", LOG_LEVEL_INFO}, {"debug", LOG_LEVEL_DEBUG},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(text, names[i].name) == 0) {
			*level = names[i].level;
			return 0;
		}
	return -1;
}
