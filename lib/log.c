#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *log_ident = "mxguard";
static bool log_to_stderr = true;
static enum log_level log_threshold = LOG_LEVEL_INFO;

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

	if (log_to_stderr) {
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
