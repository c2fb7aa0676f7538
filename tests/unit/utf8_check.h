/*
 * utf8_check.h - for tests and fuzz targets: whether text is well-formed
 * UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF; U+0000 allowed, as decoded content may carry it). What the
 * MIME walk promises of every string it returns.
 */
#ifndef MXG_TEST_UTF8_CHECK_H
#define MXG_TEST_UTF8_CHECK_H

#include <stdbool.h>
#include <stddef.h>

static inline bool
valid_utf8(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n;
		unsigned int cp;

		if (u[i] < 0x80) {
			i++;
			continue;
		} else if (u[i] >= 0xc2 && u[i] <= 0xdf) {
			n = 2, cp = u[i] & 0x1f;
		} else if (u[i] >= 0xe0 && u[i] <= 0xef) {
			n = 3, cp = u[i] & 0x0f;
		} else if (u[i] >= 0xf0 && u[i] <= 0xf4) {
			n = 4, cp = u[i] & 0x07;
		} else {
			return false;
		}
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((u[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (u[i + k] & 0x3f);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

#endif
