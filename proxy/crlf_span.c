#include "autoconf.h"

#include "crlf_span.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* NUL, LF and CR are all at most 0x0d: one unsigned comparison finds
 * every candidate (TAB, VT, FF and the other controls below CR are
 * candidates too and are passed over one by one). */
#define SPECIAL_MAX 0x0d

/* 0: p[j] is ordinary text here; 1: the span ends before p[j];
 * 2: it ends after p[j] (a CR LF followed by "."). */
static int special(const char *p, size_t n, size_t j)
{
	switch (p[j]) {
	case '\0':
		return 1;
	case '\r':
		/* RFC 5321 §2.3.8: CR only as part of CR LF */
		return j + 1 < n && p[j + 1] == '\n' ? 0 : 1;
	case '\n':
		if (j == 0 || p[j - 1] != '\r')
			return 1;
		/* RFC 5321 §4.5.2: a line that starts with "." */
		return j + 1 < n && p[j + 1] == '.' ? 2 : 0;
	default:
		return 0;
	}
}

size_t crlf_span(const char *p, size_t n)
{
	size_t i = 0;

#if defined(__SSE2__)
	const __m128i max = _mm_set1_epi8(SPECIAL_MAX);

	while (n - i >= 32) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 16));
		/* x <= max (unsigned) exactly when min(x, max) == x */
		unsigned ma = (unsigned)_mm_movemask_epi8(
			_mm_cmpeq_epi8(_mm_min_epu8(a, max), a));
		unsigned mb = (unsigned)_mm_movemask_epi8(
			_mm_cmpeq_epi8(_mm_min_epu8(b, max), b));
		unsigned mask = ma | (mb << 16);

		while (mask != 0) {
			size_t j = i + (size_t)__builtin_ctz(mask);
			int r = special(p, n, j);

			if (r != 0)
				return r == 1 ? j : j + 1;
			mask &= mask - 1;
		}
		i += 32;
	}
#endif
	for (; i < n; i++) {
		if ((unsigned char)p[i] <= SPECIAL_MAX) {
			int r = special(p, n, i);

			if (r != 0)
				return r == 1 ? i : i + 1;
		}
	}
	return n;
}
