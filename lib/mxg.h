/*
 * mxg.h - what every mxguard module shares: error codes, the error buffer,
 * allocation that never returns NULL.
 *
 * ERRORS
 *	A call that can fail returns int: 0 on success, a negative MXG_E*
 *	code on failure, and writes a one-line reason into the caller's
 *	char err[MXG_ERRLEN]. A dependency failure seen while judging mail
 *	(DNS timeout, Redis down) is not an error: it is a result that the
 *	check reports as a symbol.
 *
 * MEMORY
 *	mxg_malloc() and friends abort the process on out-of-memory after one
 *	log line: a milter that runs out of memory cannot judge mail anyway,
 *	and Postfix's milter_default_action decides what happens to the
 *	message. Nothing else in mxguard checks for NULL from these.
 */
#ifndef MXG_H
#define MXG_H

#include <stddef.h>

#define MXG_ERRLEN 512

enum {
	MXG_OK = 0,
	MXG_EINVAL = -1,	/* bad input: config value, argument, record */
	MXG_EIO = -2,		/* a file or socket could not be used */
	MXG_ELIB = -3,		/* a library refused to initialise */
	MXG_ETOOBIG = -4,	/* input over a configured cap */
};

void *mxg_malloc(size_t size);
void *mxg_calloc(size_t count, size_t size);
void *mxg_realloc(void *ptr, size_t size);
char *mxg_strdup(const char *s);
char *mxg_strndup(const char *s, size_t len);

/* Formats into err (MXG_ERRLEN bytes) and returns code, so that a failing
 * path can say `return mxg_fail(err, MXG_EINVAL, "...", ...);`. */
int mxg_fail(char *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Milliseconds from a monotonic clock, for timing and deadlines. */
long long mxg_now_ms(void);

#endif
