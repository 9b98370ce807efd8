/* crlf_span(): how much of a body chunk the DATA filter may pass on
 * unchanged. Each case is placed at every offset of a buffer full of
 * text, so that the vector loop (32 octets at a time) and the octet
 * loop after it both meet every pattern, at every position within a
 * block and across block boundaries. */
#include "autoconf.h"

#include <stdlib.h>

#include "crlf_span.h"
#include "test.h"

struct span_case {
	const char *what;
	const char *special;	/* put after `lead` octets of text */
	size_t special_len;
	size_t want_after;	/* the span ends this far into `special`;
				 * (size_t)-1: runs to the end */
};

#define S(x) x, sizeof(x) - 1

static const struct span_case cases[] = {
	{ "CR LF lines pass", S("ab\r\ncd\r\n"), (size_t)-1 },
	{ "a NUL stops before it", S("a\0b"), 1 },
	{ "a bare LF stops before it", S("ab\ncd"), 2 },
	{ "a bare CR stops before it", S("ab\rcd"), 2 },
	{ "CR CR LF: the first CR is bare", S("ab\r\r\n"), 2 },
	{ "LF CR: the LF is bare", S("ab\n\r"), 2 },
	{ "a line starting with a dot: after its CR LF", S("ab\r\n.cd"), 4 },
	{ "dot CR LF: after the CR LF before it", S("\r\n.\r\n"), 2 },
	{ "a dot inside a line passes", S("a.b\r\nc.\r\n"), (size_t)-1 },
	{ "TAB, FF and other controls pass", S("\t\v\f\001\b\r\n"), (size_t)-1 },
	{ "8-bit octets pass", S("\xff\xe9\x80\r\n"), (size_t)-1 },
};

int main(void)
{
	enum { MAXLEAD = 70, TAIL = 40 };
	char buf[MAXLEAD + 64 + TAIL];

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct span_case *t = &cases[c];

		for (size_t lead = 0; lead <= MAXLEAD; lead++) {
			size_t n = lead + t->special_len + TAIL, want, got;

			memset(buf, 'x', sizeof(buf));
			memcpy(buf + lead, t->special, t->special_len);
			want = t->want_after == (size_t)-1 ?
			       n : lead + t->want_after;
			got = crlf_span(buf, n);
			CHECK(got == want, "%s, after %zu octets: got %zu, "
			      "want %zu", t->what, lead, got, want);
		}
	}

	/* The chunk's edges. */
	static const struct {
		const char *what;
		const char *in;
		size_t len;
		size_t want;
	} edges[] = {
		{ "empty", S(""), 0 },
		{ "a CR last: its LF may come next", S("abc\r"), 3 },
		{ "a LF first: its CR is not here", S("\nabc"), 0 },
		{ "a CR LF last: all of it", S("abc\r\n"), 5 },
		{ "a CR LF last before a dot", S("abc\r\n."), 5 },
		{ "a NUL first", S("\0abc"), 0 },
	};
	for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
		CHECK_INT(crlf_span(edges[e].in, edges[e].len), edges[e].want,
			  edges[e].what);

	/* A long run of 76-octet lines (base64 bodies): all of it. */
	{
		size_t n = 78 * 100;
		char *big = malloc(n);

		for (size_t i = 0; i < n; i += 78) {
			memset(big + i, 'Q', 76);
			memcpy(big + i + 76, "\r\n", 2);
		}
		CHECK_INT(crlf_span(big, n), n, "100 base64 lines");
		big[78 * 57] = '.';
		CHECK_INT(crlf_span(big, n), 78 * 57, "a dot at line 58");
		free(big);
	}
	return test_done("test_crlf_span");
}
