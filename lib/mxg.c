#include "mxg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static void
out_of_memory(size_t size)
{
	log_msg(NULL, LOG_LEVEL_ERR, "out of memory allocating %zu bytes", size);
	abort();
}

void *
mxg_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		out_of_memory(size);
	return p;
}

void *
mxg_calloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);

	if (p == NULL)
		out_of_memory(count * size);
	return p;
}

void *
mxg_realloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		out_of_memory(size);
	return p;
}

char *
mxg_strdup(const char *s)
{
	return mxg_strndup(s, strlen(s));
}

char *
mxg_strndup(const char *s, size_t len)
{
	char *p = mxg_malloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

int
mxg_fail(char *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		va_start(ap, fmt);
		vsnprintf(err, MXG_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return code;
}

long long
mxg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
