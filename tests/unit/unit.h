/*
 * unit.h - what every tests/unit/test_<module>.c shares: cmocka, and
 * checks that name the table row that failed.
 *
 * Tables of labelled rows are checked with EXPECT_* (label first): the
 * first mismatch fails the test with "file:line: label: got ..., want
 * ...", bytes outside printable ASCII shown as \xNN, so a failure names
 * its row without a debugger.
 *
 * unit_tmpdir_new() / unit_tmpdir_free(dir)
 *	A fresh mkdtemp directory under $TMPDIR (or /tmp), and its removal
 *	with every file in it.
 * unit_write_file(dir, name, data, len)
 *	Writes len bytes (NUL included) to dir/name; returns the path
 *	(caller frees).
 */
#ifndef MXG_TESTS_UNIT_H
#define MXG_TESTS_UNIT_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Quotes len bytes of s into buf for a failure message. */
static inline const char *
unit_show(const char *s, size_t len, char *buf, size_t size)
{
	size_t i, o = 0;

	if (s == NULL)
		return "(null)";
	for (i = 0; i < len && o + 8 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 32 && c < 127 && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
	}
	if (i < len)
		o += (size_t)snprintf(buf + o, size - o, "...");
	buf[o] = '\0';
	return buf;
}

static inline void
unit_expect_mem(const char *label, const char *got, size_t got_len,
    const char *want, size_t want_len, const char *file, int line)
{
	char gbuf[600], wbuf[600], gq[640], wq[640];

	if ((got == NULL) == (want == NULL) && got_len == want_len &&
	    (got == NULL || memcmp(got, want, got_len) == 0))
		return;
	if (got == NULL)
		snprintf(gq, sizeof(gq), "NULL");
	else
		snprintf(gq, sizeof(gq), "\"%s\" (%zu bytes)",
		    unit_show(got, got_len, gbuf, sizeof(gbuf)), got_len);
	if (want == NULL)
		snprintf(wq, sizeof(wq), "NULL");
	else
		snprintf(wq, sizeof(wq), "\"%s\" (%zu bytes)",
		    unit_show(want, want_len, wbuf, sizeof(wbuf)), want_len);
	fail_msg("%s:%d: %s: got %s, want %s", file, line, label, gq, wq);
}

/* Strings; NULL equals only NULL. */
#define EXPECT_STR(label, got, want) do {				\
	const char *g_ = (got), *w_ = (want);				\
	unit_expect_mem((label), g_, g_ ? strlen(g_) : 0, w_,		\
	    w_ ? strlen(w_) : 0, __FILE__, __LINE__);			\
} while (0)

/* Byte strings with explicit lengths. */
#define EXPECT_MEM(label, got, got_len, want, want_len)			\
	unit_expect_mem((label), (got), (got_len), (want), (want_len),	\
	    __FILE__, __LINE__)

#define EXPECT_INT(label, got, want) do {				\
	long long g_ = (long long)(got), w_ = (long long)(want);	\
	if (g_ != w_)							\
		fail_msg("%s:%d: %s: %s is %lld, want %lld", __FILE__,	\
		    __LINE__, (label), #got, g_, w_);			\
} while (0)

/* Exact: the values under test are sums of binary fractions. */
#define EXPECT_DOUBLE(label, got, want) do {				\
	double g_ = (got), w_ = (want);					\
	if (g_ != w_)							\
		fail_msg("%s:%d: %s: %s is %.17g, want %.17g", __FILE__,	\
		    __LINE__, (label), #got, g_, w_);			\
} while (0)

#define EXPECT_TRUE(label, cond) do {					\
	if (!(cond))							\
		fail_msg("%s:%d: %s: expected %s", __FILE__, __LINE__,	\
		    (label), #cond);					\
} while (0)

static inline char *
unit_tmpdir_new(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	dir = malloc(strlen(base) + 32);
	if (dir == NULL)
		abort();
	sprintf(dir, "%s/mxg-unit-XXXXXX", base);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static inline void
unit_tmpdir_free(char *dir)
{
	DIR *d;
	struct dirent *e;
	char path[4096];

	if (dir == NULL)
		return;
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
	free(dir);
}

static inline char *
unit_write_file(const char *dir, const char *name, const void *data,
    size_t len)
{
	char *path = malloc(strlen(dir) + strlen(name) + 2);
	FILE *fp;

	if (path == NULL)
		abort();
	sprintf(path, "%s/%s", dir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	if (len > 0)
		assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	return path;
}

#endif
