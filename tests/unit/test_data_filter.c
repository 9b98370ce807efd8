#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data_filter.h"
#include "header_scan.h"
#include "test.h"
#include "xalloc.h"

#define PRE "X-Authenticated-User: alice\r\n"
#define DROP "X-Authenticated-User"
#define R BARE_NEWLINE_REJECT
#define N BARE_NEWLINE_NORMALIZE
#define DONE DATA_FILTER_DONE
#define MORE DATA_FILTER_MORE
#define BARE DATA_FILTER_BARE_NEWLINE
#define BIG DATA_FILTER_TOO_BIG
#define NOLIMIT ((uint64_t)1 << 40)
#define ALL ((size_t)-1)	/* consumed: the whole input */
#define ANY (-1LL)		/* size: not checked */
/* A string literal as pointer and length: it may hold NULs. */
#define S(s) s, sizeof(s) - 1

static const char *status_name(enum data_filter_status st)
{
	switch (st) {
	case DATA_FILTER_MORE:
		return "MORE";
	case DATA_FILTER_DONE:
		return "DONE";
	case DATA_FILTER_BARE_NEWLINE:
		return "BARE_NEWLINE";
	case DATA_FILTER_TOO_BIG:
		return "TOO_BIG";
	case DATA_FILTER_NUL:
		return "NUL";
	case DATA_FILTER_REFUSED:
		return "REFUSED";
	}
	return "?";
}

/* --- growable byte buffer --- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (n > b->cap - b->len) {
		size_t cap = b->cap > 0 ? b->cap : 256;

		while (cap - b->len < n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static bool buf_eq(const struct buf *b, const char *p, size_t n)
{
	return b->len == n && (n == 0 || memcmp(b->p, p, n) == 0);
}

/* Printable form, CR LF and other octets escaped; long buffers are cut in
 * the middle. Four rotating results, so one message can show two. */
static const char *esc(const char *p, size_t n)
{
	static char out[4][8192];
	static int which;
	char *o = out[which++ % 4];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (n > 1200 && i == 600) {
			k += (size_t)snprintf(o + k, 64, "...(%zu octets)...",
					      n - 1200);
			i = n - 600;
			c = (unsigned char)p[i];
		}
		if (c == '\r')
			k += (size_t)snprintf(o + k, 8, "\\r");
		else if (c == '\n')
			k += (size_t)snprintf(o + k, 8, "\\n");
		else if (c == '\\' || c == '"')
			k += (size_t)snprintf(o + k, 8, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			k += (size_t)snprintf(o + k, 8, "\\x%02x", c);
		else
			o[k++] = (char)c;
	}
	o[k] = '\0';
	return o;
}

#define CHECK_BUF(got, want, want_len, what) do { \
	const struct buf *gb_ = (got); \
	const char *wp_ = (want); \
	size_t wl_ = (want_len); \
	CHECK(buf_eq(gb_, wp_, wl_), "%s: got \"%s\", want \"%s\"", \
	      (what), esc(gb_->p, gb_->len), esc(wp_, wl_)); \
} while (0)
#define CHECK_LIT(got, lit, what) CHECK_BUF(got, lit, sizeof(lit) - 1, what)

#define CHECK_STATUS(got, want, what) do { \
	enum data_filter_status g_ = (got), w_ = (want); \
	CHECK(g_ == w_, "%s: got %s, want %s", (what), status_name(g_), \
	      status_name(w_)); \
} while (0)

/* --- running the filter --- */

struct params {
	enum bare_newline mode;
	uint64_t max;
	const char *prepend;
	const char *drop;
};

struct result {
	struct buf out;
	enum data_filter_status st;
	size_t consumed;
	uint64_t size;
	bool failed;
	unsigned calls;
	size_t max_emit;
};

static void capture(const char *p, size_t n, void *ctx)
{
	struct result *r = ctx;

	CHECK(n > 0, "emit called with 0 octets");
	buf_add(&r->out, p, n);
	r->calls++;
	if (n > r->max_emit)
		r->max_emit = n;
}

/* Feed in to a new filter in chunks of `chunk` octets (0: whole); chunk
 * SIZE_MAX - 1 means random chunk sizes from `seed`. */
#define RANDOM_CHUNKS ((size_t)-2)

static unsigned long long rng_state;

static unsigned rnd(unsigned n)
{
	/* xorshift64*: fixed seed, same run every time */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (unsigned)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

static void run(const struct params *pa, const char *in, size_t len,
		size_t chunk, struct result *r, const char *what)
{
	struct data_filter *df;
	size_t off = 0, c;
	enum data_filter_status st = DATA_FILTER_MORE;

	memset(r, 0, sizeof(*r));
	df = data_filter_new(pa->mode, pa->max, pa->prepend, pa->drop,
			     capture, r);
	while (off < len) {
		size_t n = len - off;

		if (chunk == RANDOM_CHUNKS)
			n = 1 + rnd(9);
		else if (chunk != 0)
			n = chunk;
		if (n > len - off)
			n = len - off;
		c = 12345;
		st = data_filter_feed(df, in + off, n, &c);
		if (st == DATA_FILTER_MORE) {
			CHECK(c == n, "%s: MORE consumed %zu of %zu", what, c,
			      n);
			off += n;
			continue;
		}
		CHECK(c <= n, "%s: consumed %zu of %zu", what, c, n);
		off += c;
		break;
	}
	if (st != DATA_FILTER_MORE) {
		size_t before = r->out.len;

		/* finished: the same status, nothing consumed or emitted */
		c = 12345;
		CHECK_STATUS(data_filter_feed(df, "QUIT\r\n.\r\n", 9, &c), st,
			     what);
		CHECK_INT(c, 0, what);
		CHECK_INT(r->out.len, before, what);
	}
	r->st = st;
	r->consumed = off;
	r->size = data_filter_size(df);
	r->failed = data_filter_failed(df);
	data_filter_free(&df);
	CHECK(df == NULL, "%s: data_filter_free left the pointer", what);
	data_filter_free(&df);
}

/* --- the table --- */

struct tcase {
	const char *name;
	const char *in;
	size_t in_len;
	enum bare_newline mode;
	uint64_t max;
	const char *prepend;
	const char *drop;
	const char *want;
	size_t want_len;
	enum data_filter_status st;
	size_t consumed;	/* ALL: the whole input */
	long long size;		/* ANY: not checked */
};

static const struct tcase cases[] = {
	/* basics */
	{ "plain message",
	  S("Subject: hi\r\nFrom: a@b\r\n\r\nHello\r\nWorld\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP,
	  S(PRE "Subject: hi\r\nFrom: a@b\r\n\r\nHello\r\nWorld\r\n"),
	  DONE, ALL, 40 },
	{ "no headers: starts with the empty line",
	  S("\r\nbody\r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "\r\nbody\r\n"), DONE, ALL, 8 },
	{ "empty message", S(".\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE), DONE, ALL, 0 },
	{ "empty message, nothing to prepend", S(".\r\n"), R, NOLIMIT, "",
	  NULL, S(""), DONE, ALL, 0 },
	{ "headers only: the end inside the header section",
	  S("Subject: a\r\nFrom: b\r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "Subject: a\r\nFrom: b\r\n"), DONE, ALL, 21 },
	{ "NULL prepend and drop",
	  S("X-Authenticated-User: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, NULL,
	  NULL, S("X-Authenticated-User: a\r\n\r\nb\r\n"), DONE, ALL, ANY },
	{ "empty drop_header drops nothing",
	  S("X-Authenticated-User: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, PRE,
	  "", S(PRE "X-Authenticated-User: a\r\n\r\nb\r\n"), DONE, ALL, ANY },
	{ "several prepended lines, folded, before the first header",
	  S("Subject: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT,
	  "Received: from x\r\n\tby y\r\n" PRE, DROP,
	  S("Received: from x\r\n\tby y\r\n" PRE "Subject: a\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "8-bit octets are data",
	  S("Subject: \xc3\xa9\r\n\r\na" "b\xff\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "Subject: \xc3\xa9\r\n\r\na" "b\xff\r\n"),
	  DONE, ALL, ANY },
	/* RFC 5321 §4.5.2: NUL is not text; what came before it is out */
	{ "a NUL stops the output",
	  S("Subject: \xc3\xa9\r\n\r\na\x00" "b\xff\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "Subject: \xc3\xa9\r\n\r\na"), DATA_FILTER_NUL,
	  ALL, ANY },
	{ "a NUL in the header section: nothing out",
	  S("Subject: a\x00\r\n\r\nb\r\n.\r\n"), N, NOLIMIT, PRE, DROP,
	  S(""), DATA_FILTER_NUL, ALL, ANY },
	{ "smuggling \\r\\n\\x00.\\r\\n: a NUL, not an end",
	  S("Subject: a\r\n\r\nbody\r\n\x00.\r\nMAIL FROM:<x@y>\r\n.\r\n"),
	  N, NOLIMIT, PRE, DROP, S(PRE "Subject: a\r\n\r\nbody\r\n"),
	  DATA_FILTER_NUL, ALL, ANY },
	{ "a bare LF after a NUL still wins",
	  S("Subject: a\r\n\r\nb\x00\nc\r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "Subject: a\r\n\r\nb"), BARE, ALL, ANY },

	/* drop_header */
	{ "drop: in the middle",
	  S("Subject: s\r\nX-Authenticated-User: a\r\nTo: t\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: lower case",
	  S("Subject: s\r\nx-authenticated-user: a\r\nTo: t\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: upper case, no space after the colon",
	  S("Subject: s\r\nX-AUTHENTICATED-USER:a\r\nTo: t\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: space before the colon",
	  S("Subject: s\r\nX-Authenticated-User : a\r\nTo: t\r\n\r\nb\r\n"
	    ".\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: tabs and spaces before the colon",
	  S("Subject: s\r\nX-Authenticated-User\t \t: a\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: folded over 3 lines, in the middle",
	  S("Subject: s\r\nX-Authenticated-User: a\r\n b\r\n\tc\r\nTo: t\r\n"
	    "\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: first, folded",
	  S("X-Authenticated-User: a\r\n b\r\n\tc\r\nSubject: s\r\nTo: t\r\n"
	    "\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: last, folded, before the empty line",
	  S("Subject: s\r\nTo: t\r\nX-Authenticated-User: a\r\n b\r\n\tc\r\n"
	    "\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: last, at the end of data",
	  S("Subject: s\r\nX-Authenticated-User: a\r\n b\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\n"), DONE, ALL, ANY },
	{ "drop: the only header",
	  S("X-Authenticated-User: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "\r\nb\r\n"), DONE, ALL, ANY },
	{ "drop: twice, apart",
	  S("X-Authenticated-User: a\r\nSubject: s\r\nx-authenticated-user: b"
	    "\r\nTo: t\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: twice, adjacent",
	  S("Subject: s\r\nX-Authenticated-User: a\r\nX-Authenticated-User: b"
	    "\r\n c\r\nTo: t\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: colon after a fold (unfolds to \"name : a\")",
	  S("Subject: s\r\nX-Authenticated-User\r\n : a\r\nTo: t\r\n\r\nb\r\n"
	    ".\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: whitespace, fold, whitespace, colon",
	  S("X-Authenticated-User \r\n\t\r\n  : a\r\n b\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "\r\nb\r\n"), DONE, ALL, ANY },
	{ "drop: client-stuffed \".X-Authenticated-User\" is the field",
	  S("Subject: s\r\n.X-Authenticated-User: a\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: in a header ended by bare LFs (normalize)",
	  S("Subject: s\nX-Authenticated-User: a\n b\n\nb\r\n.\r\n"),
	  N, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: a leading continuation line (would continue ours)",
	  S(" evil\r\n\tmore\r\nSubject: s\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "Subject: s\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "drop: a leading continuation line, nothing else to drop",
	  S(" evil\r\nSubject: s\r\n\r\nb\r\n.\r\n"),
	  R, NOLIMIT, "Received: x\r\n", NULL,
	  S("Received: x\r\nSubject: s\r\n\r\nb\r\n"), DONE, ALL, ANY },
	{ "keep: X-Authenticated-User-Foo",
	  S("X-Authenticated-User-Foo: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "X-Authenticated-User-Foo: a\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "keep: X-Authenticated-Userx",
	  S("X-Authenticated-Userx: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "X-Authenticated-Userx: a\r\n\r\nb\r\n"), DONE, ALL,
	  ANY },
	{ "keep: X-Authenticated-Use (a prefix)",
	  S("X-Authenticated-Use: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "X-Authenticated-Use: a\r\n\r\nb\r\n"), DONE, ALL, ANY },
	{ "keep: the name then something else than a colon",
	  S("X-Authenticated-User x: a\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "X-Authenticated-User x: a\r\n\r\nb\r\n"), DONE, ALL,
	  ANY },
	{ "keep: the name alone on a line, then another field",
	  S("X-Authenticated-User\r\nTo: t\r\n\r\nb\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "X-Authenticated-User\r\nTo: t\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "keep: the name, a fold, then no colon",
	  S("X-Authenticated-User \r\n x\r\n\r\nb\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "X-Authenticated-User \r\n x\r\n\r\nb\r\n"),
	  DONE, ALL, ANY },
	{ "keep: the name alone before the empty line",
	  S("X-Authenticated-User\t\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "X-Authenticated-User\t\r\n\r\nb\r\n"), DONE, ALL, ANY },
	{ "keep: the name alone at the end of data",
	  S("X-Authenticated-User \r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "X-Authenticated-User \r\n"), DONE, ALL, ANY },
	{ "keep: the name inside a continuation line of another field",
	  S("Subject: s\r\n X-Authenticated-User: a\r\n\r\nb\r\n.\r\n"), R,
	  NOLIMIT, PRE, DROP,
	  S(PRE "Subject: s\r\n X-Authenticated-User: a\r\n\r\nb\r\n"), DONE,
	  ALL, ANY },
	{ "keep: the name in the body",
	  S("Subject: s\r\n\r\nX-Authenticated-User: a\r\n.\r\n"), R,
	  NOLIMIT, PRE, DROP,
	  S(PRE "Subject: s\r\n\r\nX-Authenticated-User: a\r\n"), DONE, ALL,
	  ANY },
	{ "keep: the name in the body of a message without headers",
	  S("\r\nX-Authenticated-User: a\r\n b\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "\r\nX-Authenticated-User: a\r\n b\r\n"), DONE, ALL,
	  ANY },

	/* RFC 5321 §4.5.2 dot-stuffing */
	{ "stuffing: \"..foo\" stays", S("\r\n..foo\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "\r\n..foo\r\n"), DONE, ALL, 8 },
	{ "stuffing: \".foo\" loses its dot", S("\r\n.foo\r\n.\r\n"), R,
	  NOLIMIT, PRE, DROP, S(PRE "\r\nfoo\r\n"), DONE, ALL, 7 },
	{ "stuffing: \"..\" stays", S("\r\n..\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "\r\n..\r\n"), DONE, ALL, 5 },
	{ "stuffing: \"...\" stays", S("\r\n...\r\n.\r\n"), R, NOLIMIT, PRE,
	  DROP, S(PRE "\r\n...\r\n"), DONE, ALL, 6 },
	{ "stuffing: \". x\" gives \" x\"", S("\r\n. x\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "\r\n x\r\n"), DONE, ALL, ANY },
	{ "stuffing: the first line of a headerless body",
	  S("..a\r\n\r\n..b\r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "..a\r\n\r\n..b\r\n"), DONE, ALL, ANY },
	{ "stuffing: a dot inside a line is data", S("\r\na.b\r\na.\r\n.\r\n"),
	  R, NOLIMIT, PRE, DROP, S(PRE "\r\na.b\r\na.\r\n"), DONE, ALL, ANY },
	{ "stuffing: header lines too", S("..h: v\r\n\r\nb\r\n.\r\n"), R,
	  NOLIMIT, "", NULL, S("..h: v\r\n\r\nb\r\n"), DONE, ALL, ANY },
	{ "stuffing: after bare LF, normalized",
	  S("\r\na\n..b\n.c\r\n.\r\n"), N, NOLIMIT, PRE, DROP,
	  S(PRE "\r\na\r\n..b\r\nc\r\n"), DONE, ALL, ANY },

	/* what is the end, and what comes after it */
	{ "consumed: pipelined QUIT stays",
	  S("Subject: a\r\n\r\nb\r\n.\r\nQUIT\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "Subject: a\r\n\r\nb\r\n"), DONE, 20, ANY },
	{ "consumed: a second message stays",
	  S("\r\na\r\n.\r\n\r\nb\r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "\r\na\r\n"), DONE, 8, ANY },
	{ "consumed: an empty message and a pipelined command",
	  S(".\r\nMAIL FROM:<a@b>\r\n"), R, NOLIMIT, PRE, DROP, S(PRE),
	  DONE, 3, ANY },
	{ "no end yet", S("Subject: a\r\n\r\nbody\r\n."), R, NOLIMIT, PRE,
	  DROP, S(PRE "Subject: a\r\n\r\nbody\r\n"), MORE, ALL, ANY },
	{ "no end yet: \".\\r\"", S("\r\nbody\r\n.\r"), R, NOLIMIT, PRE, DROP,
	  S(PRE "\r\nbody\r\n"), MORE, ALL, ANY },
	{ "no end yet: headers held", S("Subject: a\r\n"), R, NOLIMIT, PRE,
	  DROP, S(""), MORE, ALL, ANY },

	/* bare CR, bare LF */
	{ "bare LF in the body: reject", S("\r\nb\nc\r\n.\r\nQUIT\r\n"), R,
	  NOLIMIT, PRE, DROP, S(PRE "\r\nb"), BARE, 10, ANY },
	{ "bare LF in the body: normalize", S("\r\nb\nc\r\n.\r\nQUIT\r\n"), N,
	  NOLIMIT, PRE, DROP, S(PRE "\r\nb\r\nc\r\n"), DONE, 10, 8 },
	{ "bare CR in the body: reject", S("\r\nb\rc\r\n.\r\n"), R, NOLIMIT,
	  PRE, DROP, S(PRE "\r\nb"), BARE, ALL, ANY },
	{ "bare CR in the body: normalize", S("\r\nb\rc\r\n.\r\n"), N,
	  NOLIMIT, PRE, DROP, S(PRE "\r\nb\r\nc\r\n"), DONE, ALL, 8 },
	{ "CR CR LF: normalize", S("\r\nb\r\r\n.\r\n"), N, NOLIMIT, PRE, DROP,
	  S(PRE "\r\nb\r\n\r\n"), DONE, ALL, ANY },
	{ "CR CR LF: reject", S("\r\nb\r\r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "\r\nb"), BARE, ALL, ANY },
	{ "LF CR: normalize", S("\r\nb\n\rc\r\n.\r\n"), N, NOLIMIT, PRE,
	  DROP, S(PRE "\r\nb\r\n\r\nc\r\n"), DONE, ALL, ANY },
	{ "bare LF in the headers: nothing emitted",
	  S("Subject: a\nb: c\r\n\r\nbody\r\n.\r\n"), R, NOLIMIT, PRE, DROP,
	  S(""), BARE, ALL, ANY },
	{ "bare LFs end the header section: normalize",
	  S("Subject: a\n\nbody\r\n.\r\n"), N, NOLIMIT, PRE, DROP,
	  S(PRE "Subject: a\r\n\r\nbody\r\n"), DONE, ALL, ANY },
	{ "bare CR then the real end: reject",
	  S("\r\nb\r\r\n.\r\nQUIT\r\n"), R, NOLIMIT, PRE, DROP,
	  S(PRE "\r\nb"), BARE, 9, ANY },

	/* size: the message as unstuffed, CR LF as 2 */
	{ "size: exactly max", S("\r\nabc\r\n.\r\n"), R, 7, PRE, DROP,
	  S(PRE "\r\nabc\r\n"), DONE, ALL, 7 },
	{ "size: max + 1", S("\r\nabc\r\n.\r\nQUIT\r\n"), R, 6, PRE, DROP,
	  S(PRE "\r\nabc"), BIG, 10, 7 },
	{ "size: over in the middle of a line, still searched for the end",
	  S("\r\nabcdef\r\nmore\r\n.\r\nQUIT\r\n"), R, 4, PRE, DROP,
	  S(PRE "\r\nab"), BIG, 19, 16 },
	{ "size: unstuffed, exactly max", S("\r\n..x\r\n.\r\n"), R, 6, PRE,
	  DROP, S(PRE "\r\n..x\r\n"), DONE, ALL, 6 },
	{ "size: unstuffed, max + 1", S("\r\n..x\r\n.\r\n"), R, 5, PRE, DROP,
	  S(PRE "\r\n..x"), BIG, ALL, 6 },
	{ "size: in the header section: nothing emitted",
	  S("Subject: abc\r\n\r\nb\r\n.\r\n"), R, 10, PRE, DROP, S(""), BIG,
	  ALL, 19 },
	{ "size: empty message with max 0", S(".\r\n"), R, 0, PRE, DROP,
	  S(PRE), DONE, ALL, 0 },
	{ "size: 0 and one empty line", S("\r\n.\r\n"), R, 0, PRE, DROP,
	  S(""), BIG, ALL, 2 },
	{ "size: normalized bare LF counts 2", S("\r\na\nb\r\n.\r\n"), N,
	  8, PRE, DROP, S(PRE "\r\na\r\nb\r\n"), DONE, ALL, 8 },
	{ "size: normalized bare LF counts 2, max + 1",
	  S("\r\na\nb\r\n.\r\n"), N, 7, PRE, DROP, S(PRE "\r\na\r\nb"),
	  BIG, ALL, 8 },
	{ "size: dropped headers count (what the client sent)",
	  S("X-Authenticated-User: a\r\n\r\n.\r\n"), R, 27, PRE, DROP,
	  S(PRE "\r\n"), DONE, ALL, 27 },
	{ "errors: too big first wins", S("\r\nabcd\ne\r\n.\r\n"), R, 4, PRE,
	  DROP, S(PRE "\r\nab"), BIG, ALL, ANY },
	{ "errors: bare newline first wins", S("\r\na\nbcdef\r\n.\r\n"), R,
	  6, PRE, DROP, S(PRE "\r\na"), BARE, ALL, ANY },
};

static void check_case(const struct tcase *t, const struct params *pa,
		       const char *want, size_t want_len,
		       enum data_filter_status want_st, size_t want_consumed,
		       long long want_size)
{
	static const size_t chunks[] = { 1, 2, 3, 7, 0 };
	char what[512];

	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		struct result r;

		snprintf(what, sizeof(what), "%s [%s, chunks of %zu]", t->name,
			 pa->mode == R ? "reject" : "normalize", chunks[k]);
		run(pa, t->in, t->in_len, chunks[k], &r, what);
		CHECK_BUF(&r.out, want, want_len, what);
		CHECK_STATUS(r.st, want_st, what);
		CHECK_INT(r.consumed,
			  want_consumed == ALL ? t->in_len : want_consumed,
			  what);
		if (want_size != ANY)
			CHECK_INT(r.size, want_size, what);
		CHECK_INT(r.failed, want_st != DONE && want_st != MORE, what);
		buf_free(&r.out);
	}
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *t = &cases[i];
		struct params pa = { t->mode, t->max, t->prepend, t->drop };

		check_case(t, &pa, t->want, t->want_len, t->st, t->consumed,
			   t->size);
	}
}

/* --- SMTP smuggling: each sequence followed by a second transaction ---
 * The stream is head + TAIL; with normalize the output is want_n + OUT,
 * with reject want_r (and status st_r); "QUIT\r\n" is never consumed. */
#define TAIL "MAIL FROM:<x@y>\r\n...\r\n.\r\nQUIT\r\n"
#define TAIL_OUT "MAIL FROM:<x@y>\r\n...\r\n"

static void test_smuggling(void)
{
	static const struct {
		const char *name;
		const char *head;
		size_t head_len;
		const char *want_n;
		size_t want_n_len;
		const char *want_r;
		size_t want_r_len;
		enum data_filter_status st_r;
	} sm[] = {
		{ "\\n.\\n", S("Subject: a\r\n\r\nbody\n.\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody"), BARE },
		{ "\\r.\\r", S("Subject: a\r\n\r\nbody\r.\r"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody"), BARE },
		{ "\\r.\\n", S("Subject: a\r\n\r\nbody\r.\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody"), BARE },
		{ "\\n.\\r\\n", S("Subject: a\r\n\r\nbody\n.\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody"), BARE },
		{ "\\r\\n.\\n", S("Subject: a\r\n\r\nbody\r\n.\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n"), BARE },
		{ "\\r\\n.\\r", S("Subject: a\r\n\r\nbody\r\n.\r"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n"), BARE },
		{ "\".\\r\" at the very start", S(".\r"), S(PRE "..\r\n"),
		  S(""), BARE },
		{ "\"\\n.\\r\\n\" at the very start", S("\n.\r\n"),
		  S(PRE "\r\n..\r\n"), S(""), BARE },
		{ "\\r\\n.\\r\\r\\n", S("Subject: a\r\n\r\nbody\r\n.\r\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n"), BARE },
		{ "\\r\\n..\\r\\n (stuffed, not an end)",
		  S("Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n..\r\n" TAIL_OUT), DONE },
		{ "\\r\\n .\\r\\n (space first)",
		  S("Subject: a\r\n\r\nbody\r\n .\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n .\r\n"),
		  S(PRE "Subject: a\r\n\r\nbody\r\n .\r\n" TAIL_OUT), DONE },
	};

	for (size_t i = 0; i < sizeof(sm) / sizeof(sm[0]); i++) {
		struct buf in = { 0 }, want = { 0 };
		char name[256];
		struct tcase t;
		struct params pn = { N, NOLIMIT, PRE, DROP };
		struct params pr = { R, NOLIMIT, PRE, DROP };

		buf_add(&in, sm[i].head, sm[i].head_len);
		buf_str(&in, TAIL);
		buf_add(&want, sm[i].want_n, sm[i].want_n_len);
		buf_str(&want, TAIL_OUT);
		snprintf(name, sizeof(name), "smuggling %s", sm[i].name);
		memset(&t, 0, sizeof(t));
		t.name = name;
		t.in = in.p;
		t.in_len = in.len;

		/* consumed stops right after the real CR LF "." CR LF */
		check_case(&t, &pn, want.p, want.len, DONE, in.len - 6, ANY);
		check_case(&t, &pr, sm[i].want_r, sm[i].want_r_len,
			   sm[i].st_r, in.len - 6, ANY);
		buf_free(&in);
		buf_free(&want);
	}
}

/* --- header sections over DATA_FILTER_HEADER_MAX --- */

/* Header fields past the cap, with forged fields everywhere (so some
 * straddle it): all dropped, all others intact; the body streams. */
static void test_big_header(void)
{
	static const char *const forged[] = {
		"X-Authenticated-User: forged\r\n",
		"x-authenticated-user : forged\r\n\tmore\r\n more\r\n",
		"X-AUTHENTICATED-USER\r\n : forged\r\n",
	};
	struct params pa = { R, NOLIMIT, PRE, DROP };

	for (size_t shift = 0; shift < 48; shift += 7) {
		struct buf in = { 0 }, want = { 0 };
		char line[256], what[128], x[100];
		size_t n = 0;

		memset(x, 'x', sizeof(x));

		buf_str(&want, PRE);
		while (in.len < 2 * DATA_FILTER_HEADER_MAX + 1000) {
			/* lengths vary, so fields fall across the cap */
			int len = snprintf(line, sizeof(line),
					   "X-Filler-%zu: %.*s\r\n", n,
					   (int)((n * 13 + shift) % 90), x);

			buf_add(&in, line, (size_t)len);
			buf_add(&want, line, (size_t)len);
			/* a continuation of a kept field */
			if (n % 5 == 0) {
				buf_str(&in, "\t.cont\r\n");
				buf_str(&want, "\t.cont\r\n");
			}
			if (n % 3 == 0)
				buf_str(&in, forged[n % 9 / 3]);
			n++;
		}
		buf_str(&in, "\r\nbody\r\n.x\r\n..\r\n.\r\nQUIT\r\n");
		buf_str(&want, "\r\nbody\r\nx\r\n..\r\n");

		static const size_t chunks[] = { 0, 4096, 7, 1 };
		size_t nchunks = sizeof(chunks) / sizeof(chunks[0]);

		for (size_t k = 0; k < nchunks; k++) {
			struct result r;

			if (chunks[k] == 1 && shift != 0)
				continue;
			snprintf(what, sizeof(what),
				 "big header, shift %zu, chunks of %zu", shift,
				 chunks[k]);
			run(&pa, in.p, in.len, chunks[k], &r, what);
			CHECK_BUF(&r.out, want.p, want.len, what);
			CHECK_STATUS(r.st, DONE, what);
			CHECK_INT(r.consumed, in.len - 6, what);
			/* released at the cap, not held to the end */
			CHECK(r.calls > 1, "%s: %u emit calls", what, r.calls);
			buf_free(&r.out);
		}
		buf_free(&in);
		buf_free(&want);
	}
}

/* A header section over the cap that ends with the data. */
static void test_big_header_no_body(void)
{
	struct params pa = { N, NOLIMIT, "", DROP };
	struct buf in = { 0 }, want = { 0 };
	struct result r;

	static const char field[] = "A: 01234567890123456789\r\n";

	while (in.len < DATA_FILTER_HEADER_MAX + 100) {
		/* bare LF: normalized, and dropped */
		buf_str(&in, "X-Authenticated-User: f\n");
		buf_str(&in, field);
		buf_str(&want, field);
	}
	buf_str(&in, ".\r\n");
	run(&pa, in.p, in.len, 64 * 1024, &r, "big header, no body");
	CHECK_BUF(&r.out, want.p, want.len, "big header, no body");
	CHECK_STATUS(r.st, DONE, "big header, no body");
	buf_free(&r.out);
	buf_free(&in);
	buf_free(&want);
}

/* Whitespace between the name and the colon is held up to a bound; past
 * it the field is taken for drop_header (never a way around the drop). */
static void test_long_whitespace(void)
{
	static const struct {
		const char *name;
		size_t spaces;
		const char *after;
		bool dropped;
	} ws[] = {
		{ "900 spaces, colon", 900, ": a", true },
		{ "900 spaces, no colon", 900, "x: a", false },
		{ "5000 spaces, colon", 5000, ": a", true },
		{ "5000 spaces, no colon: dropped all the same", 5000, "x",
		  true },
	};
	struct params pa = { R, NOLIMIT, PRE, DROP };

	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
		struct buf in = { 0 }, field = { 0 }, want = { 0 };
		struct result r;
		char what[128];

		buf_str(&field, "X-Authenticated-User");
		for (size_t k = 0; k < ws[i].spaces; k++)
			buf_str(&field, k % 50 == 49 ? "\r\n " : "\t");
		buf_str(&field, ws[i].after);
		buf_str(&field, "\r\n");
		buf_str(&in, "Subject: s\r\n");
		buf_add(&in, field.p, field.len);
		buf_str(&in, "To: t\r\n\r\nb\r\n.\r\n");
		buf_str(&want, PRE "Subject: s\r\n");
		if (!ws[i].dropped)
			buf_add(&want, field.p, field.len);
		buf_str(&want, "To: t\r\n\r\nb\r\n");
		for (size_t chunk = 0; chunk < 8; chunk += 7) {
			snprintf(what, sizeof(what),
				 "whitespace: %s, chunks of %zu", ws[i].name,
				 chunk);
			run(&pa, in.p, in.len, chunk, &r, what);
			CHECK_BUF(&r.out, want.p, want.len, what);
			CHECK_STATUS(r.st, DONE, what);
			buf_free(&r.out);
		}
		buf_free(&in);
		buf_free(&field);
		buf_free(&want);
	}
}

/* --- streaming: one line of 10 MB --- */

struct stream_ctx {
	size_t out_len;
	unsigned calls;
	size_t max_emit;
	const char *expect;	/* what the output must be, octet by octet */
	size_t expect_len;
	bool mismatch;
};

static void stream_emit(const char *p, size_t n, void *ctx)
{
	struct stream_ctx *s = ctx;

	if (n > s->expect_len - s->out_len ||
	    memcmp(s->expect + s->out_len, p, n) != 0)
		s->mismatch = true;
	s->out_len += n;
	s->calls++;
	if (n > s->max_emit)
		s->max_emit = n;
}

/* header: whether the stream is still in the header section after head
 * (held up to the cap, so not lagging only past it). */
static void stream_one(const char *what, const char *head, bool header,
		       size_t body_len, enum data_filter_status want_st)
{
	const size_t chunk = 64 * 1024;
	size_t head_len = strlen(head), pre_len = strlen(PRE);
	size_t in_len = head_len + body_len + 5;
	char *in = xmalloc(in_len);
	char *expect = xmalloc(pre_len + in_len);
	struct stream_ctx s = { 0 };
	struct data_filter *df;
	enum data_filter_status st = MORE;
	size_t off = 0, max_lag = 0;

	memcpy(in, head, head_len);
	memset(in + head_len, 'a', body_len);
	memcpy(in + head_len + body_len, "\r\n.\r\n", 5);
	memcpy(expect, PRE, pre_len);
	memcpy(expect + pre_len, in, in_len - 3);
	s.expect = expect;
	s.expect_len = pre_len + in_len - 3;

	df = data_filter_new(R, NOLIMIT, PRE, DROP, stream_emit, &s);
	while (off < in_len && st == MORE) {
		size_t n = in_len - off < chunk ? in_len - off : chunk;
		size_t c;

		st = data_filter_feed(df, in + off, n, &c);
		off += c;
		/* what came in went out (past the held header section),
		 * less the few octets that may still be an end */
		if (st == MORE && (!header || off > DATA_FILTER_HEADER_MAX)) {
			size_t lag = off + pre_len - s.out_len;

			if (lag > max_lag)
				max_lag = lag;
		}
	}
	data_filter_free(&df);
	CHECK_STATUS(st, want_st, what);
	CHECK_INT(off, in_len, what);
	CHECK(!s.mismatch, "%s: output differs from the input", what);
	CHECK_INT(s.out_len, s.expect_len, what);
	/* one per feed, but for the held header section */
	CHECK(s.calls > (body_len - DATA_FILTER_HEADER_MAX) / chunk,
	      "%s: got %u emit calls, want more than %zu (streaming)", what,
	      s.calls, (body_len - DATA_FILTER_HEADER_MAX) / chunk);
	CHECK(max_lag <= 2, "%s: output lags input by %zu octets", what,
	      max_lag);
	CHECK(s.max_emit <= DATA_FILTER_HEADER_MAX + chunk,
	      "%s: one emit of %zu octets", what, s.max_emit);
	free(in);
	free(expect);
}

static void test_streaming(void)
{
	stream_one("10 MB body line", "Subject: x\r\n\r\n", false, 10u << 20,
		   DONE);
	stream_one("10 MB line, no headers", "\r\n", false, 10u << 20, DONE);
	/* one header line past the cap: released, then streamed */
	stream_one("10 MB header line", "X-Long: ", true, 10u << 20, DONE);
}

/* --- fuzz against a reference model --- */

struct ref_line {
	size_t off, len;	/* in the unstuffed text */
	bool dot;		/* the data line "." */
};

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Whether the field starting at line l, unfolded (RFC 5322 §2.2.3), is
 * drop, optional whitespace and a colon. */
static bool ref_is_drop(const char *text, const struct ref_line *lines,
			size_t nlines, size_t l, const char *drop)
{
	const char *u = text + lines[l].off;
	size_t ulen = lines[l].len, j = 0;

	if (drop == NULL || *drop == '\0')
		return false;
	for (; *drop != '\0'; drop++, j++)
		if (j >= ulen || lower(u[j]) != lower(*drop))
			return false;
	for (;;) {
		while (j < ulen && is_wsp(u[j]))
			j++;
		if (j < ulen)
			return u[j] == ':';
		/* the line ended: on into a continuation line */
		if (++l >= nlines || lines[l].len == 0 ||
		    !is_wsp(text[lines[l].off]))
			return false;
		u = text + lines[l].off;
		ulen = lines[l].len;
		j = 0;
	}
}

/* The filter as the header comment says, on the whole input at once: find
 * the end, split into lines, unstuff, count, then header fields. */
static void reference(const struct params *pa, const char *in, size_t len,
		      struct buf *out, enum data_filter_status *st_r,
		      size_t *consumed_r, uint64_t *size_r)
{
	enum data_filter_status err = MORE;
	size_t end = SIZE_MAX;
	uint64_t size = 0;
	struct ref_line lines[1024];
	size_t nlines = 0;
	char *text = xmalloc(len + 1);	/* unstuffed line contents */
	size_t text_len = 0;

	for (size_t i = 0; i + 3 <= len; i++) {
		if (memcmp(in + i, ".\r\n", 3) == 0 &&
		    (i == 0 || (i >= 2 && in[i - 2] == '\r' &&
				in[i - 1] == '\n'))) {
			end = i;
			break;
		}
	}
	if (end == SIZE_MAX) {
		*st_r = MORE;
		*consumed_r = len;
		free(text);
		return;
	}
	*consumed_r = end + 3;

	for (size_t i = 0; i < end;) {
		size_t s = i, n;
		bool bare;

		while (in[i] != '\r' && in[i] != '\n')
			i++;
		n = i - s;
		if (in[i] == '\r' && in[i + 1] == '\n') {
			bare = false;
			i += 2;
		} else {
			bare = true;
			i++;
		}
		if (nlines == sizeof(lines) / sizeof(lines[0]))
			abort();
		lines[nlines].dot = n == 1 && in[s] == '.';
		if (n > 0 && in[s] == '.' && !lines[nlines].dot) {
			s++;
			n--;
		}
		lines[nlines].off = text_len;
		lines[nlines].len = n;
		memcpy(text + text_len, in + s, n);
		text_len += n;
		nlines++;

		if (lines[nlines - 1].dot && bare && pa->mode == R &&
		    err == MORE)
			err = BARE;
		size += n;
		if (size > pa->max && err == MORE)
			err = BIG;
		if (bare && pa->mode == R && err == MORE)
			err = BARE;
		size += 2;
		if (size > pa->max && err == MORE)
			err = BIG;
	}
	*size_r = size;
	*st_r = err != MORE ? err : DONE;
	if (err != MORE) {
		free(text);
		return;
	}

	buf_str(out, pa->prepend);
	size_t l = 0;
	bool drop = true;	/* a continuation before any field */
	for (; l < nlines && lines[l].len > 0; l++) {
		const char *t = text + lines[l].off;

		/* a continuation line goes with its field */
		if (t[0] != ' ' && t[0] != '\t')
			drop = ref_is_drop(text, lines, nlines, l, pa->drop);
		if (drop)
			continue;
		if (t[0] == '.')
			buf_str(out, ".");
		buf_add(out, t, lines[l].len);
		buf_str(out, "\r\n");
	}
	for (; l < nlines; l++) {
		const char *t = text + lines[l].off;

		if (lines[l].len > 0 && t[0] == '.')
			buf_str(out, ".");
		buf_add(out, t, lines[l].len);
		buf_str(out, "\r\n");
	}
	free(text);
}

/* Output invariants: CR LF only, no line ".", and the filter gives it
 * back unchanged (so every "." line start was stuffed). */
static void check_output(const struct buf *o, const char *what)
{
	bool ok = true;

	for (size_t i = 0; i < o->len; i++) {
		if (o->p[i] == '\r' && (i + 1 >= o->len || o->p[i + 1] != '\n'))
			ok = false;
		if (o->p[i] == '\n' && (i == 0 || o->p[i - 1] != '\r'))
			ok = false;
	}
	CHECK(ok, "%s: bare CR or LF in \"%s\"", what, esc(o->p, o->len));
	CHECK(o->len == 0 || o->p[o->len - 1] == '\n',
	      "%s: output does not end a line: \"%s\"", what,
	      esc(o->p, o->len));
	ok = !(o->len >= 3 && memcmp(o->p, ".\r\n", 3) == 0);
	for (size_t i = 0; ok && i + 5 <= o->len; i++)
		if (memcmp(o->p + i, "\r\n.\r\n", 5) == 0)
			ok = false;
	CHECK(ok, "%s: an end in \"%s\"", what, esc(o->p, o->len));

	struct params again = { R, NOLIMIT, "", NULL };
	struct buf in = { 0 };
	struct result r;

	buf_add(&in, o->p, o->len);
	buf_str(&in, ".\r\n");
	run(&again, in.p, in.len, 0, &r, what);
	CHECK_STATUS(r.st, DONE, what);
	CHECK_INT(r.consumed, in.len, what);
	CHECK(buf_eq(&r.out, o->p, o->len),
	      "%s: output fed again: got \"%s\", want \"%s\"", what,
	      esc(r.out.p, r.out.len), esc(o->p, o->len));
	buf_free(&r.out);
	buf_free(&in);
}

/* The reference knows nothing of NUL: a message it would deliver with
 * a NUL in it is refused, and the output stops at the NUL (or is empty,
 * the NUL being in the held header section). */
static void nul_reference(struct buf *want, enum data_filter_status *st)
{
	const char *nul, *p = want->p;
	size_t pos, hend = (size_t)-1;

	if (*st != DONE || want->len == 0 ||
	    (nul = memchr(p, '\0', want->len)) == NULL)
		return;
	*st = DATA_FILTER_NUL;
	pos = (size_t)(nul - p);
	if (want->len >= 2 && p[0] == '\r' && p[1] == '\n') {
		hend = 2;
	} else {
		for (size_t i = 0; i + 4 <= want->len; i++) {
			if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
				hend = i + 4;
				break;
			}
		}
	}
	want->len = pos < hend ? 0 : pos;
}

static void test_fuzz(void)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a', ':', ' ',
					 '\0', '\r', '\n', '.' };
	static const char *const drops[] = { "a", "aa", NULL };
	static const char *const prepends[] = { "P: 1\r\n", "" };
	unsigned done = 0, bare = 0, big = 0;

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (unsigned iter = 0; iter < 20000; iter++) {
		struct buf in = { 0 };
		unsigned n = rnd(10) == 0 ? rnd(200) : rnd(30);
		char what[128];

		for (unsigned i = 0; i < n; i++)
			buf_add(&in, &alphabet[rnd(sizeof(alphabet))], 1);
		buf_str(&in, "\r\n.\r\n");
		if (rnd(2))
			buf_str(&in, "QUIT\r\n");

		for (int m = 0; m < 2; m++) {
			struct params pa;
			struct buf want = { 0 };
			enum data_filter_status want_st;
			size_t want_consumed;
			uint64_t want_size = 0;
			struct result whole, ones, rand;

			pa.mode = m ? N : R;
			pa.max = rnd(4) == 0 ? rnd(40) : NOLIMIT;
			pa.prepend = prepends[rnd(2)];
			pa.drop = drops[rnd(3)];
			snprintf(what, sizeof(what), "fuzz %u %s \"%s\"", iter,
				 m ? "normalize" : "reject",
				 esc(in.p, in.len));
			reference(&pa, in.p, in.len, &want, &want_st,
				  &want_consumed, &want_size);
			nul_reference(&want, &want_st);
			run(&pa, in.p, in.len, 0, &whole, what);
			run(&pa, in.p, in.len, 1, &ones, what);
			run(&pa, in.p, in.len, RANDOM_CHUNKS, &rand, what);

			CHECK_STATUS(whole.st, want_st, what);
			CHECK_INT(whole.consumed, want_consumed, what);
			CHECK_INT(whole.size, want_size, what);
			if (want_st == DONE || want_st == DATA_FILTER_NUL) {
				CHECK_BUF(&whole.out, want.p, want.len, what);
				if (pa.mode == N && want_st == DONE)
					check_output(&whole.out, what);
			}
			/* any split: the same */
			CHECK_BUF(&ones.out, whole.out.p, whole.out.len, what);
			CHECK_BUF(&rand.out, whole.out.p, whole.out.len, what);
			CHECK_STATUS(ones.st, whole.st, what);
			CHECK_STATUS(rand.st, whole.st, what);
			CHECK_INT(ones.consumed, whole.consumed, what);
			CHECK_INT(rand.consumed, whole.consumed, what);

			done += whole.st == DONE;
			bare += whole.st == BARE;
			big += whole.st == BIG;
			buf_free(&want);
			buf_free(&whole.out);
			buf_free(&ones.out);
			buf_free(&rand.out);
		}
		buf_free(&in);
	}
	/* the fuzz reached every outcome */
	CHECK(done > 1000 && bare > 1000 && big > 1000,
	      "fuzz outcomes: %u done, %u bare newline, %u too big", done,
	      bare, big);
}

/* data_filter_failed tells early; the status waits for the end. */
static void test_failed_early(void)
{
	struct result r;
	struct data_filter *df;
	size_t c;

	memset(&r, 0, sizeof(r));
	df = data_filter_new(R, NOLIMIT, PRE, DROP, capture, &r);
	CHECK_STATUS(data_filter_feed(df, S("\r\nab\n"), &c), MORE,
		     "failed early");
	CHECK_INT(data_filter_failed(df), 1, "failed early");
	CHECK_STATUS(data_filter_feed(df, S(".\r\n"), &c), MORE,
		     "failed early: \".\" after a bare LF");
	CHECK_STATUS(data_filter_feed(df, S(".\r\nQUIT\r\n"), &c), BARE,
		     "failed early: the end");
	CHECK_INT(c, 3, "failed early: consumed");
	CHECK_LIT(&r.out, PRE "\r\nab", "failed early: output");
	CHECK_STATUS(data_filter_feed(df, NULL, 0, &c), BARE,
		     "failed early: after the end");
	data_filter_free(&df);
	buf_free(&r.out);

	memset(&r, 0, sizeof(r));
	df = data_filter_new(N, NOLIMIT, PRE, DROP, capture, &r);
	CHECK_STATUS(data_filter_feed(df, NULL, 0, &c), MORE, "empty feed");
	CHECK_INT(c, 0, "empty feed");
	CHECK_STATUS(data_filter_feed(df, S("\r\nab\n"), &c), MORE,
		     "not failed");
	CHECK_INT(data_filter_failed(df), 0, "not failed");
	/* freed before the end */
	data_filter_free(&df);
	CHECK_LIT(&r.out, PRE "\r\nab\r\n", "not failed: output");
	buf_free(&r.out);
}

/* --- the NUL check and the header check --- */

struct verdict {
	bool pass;
	unsigned calls;
	unsigned n_from;
	bool done;
};

static bool check_from(const struct header_scan *hs, void *ctx)
{
	struct verdict *v = ctx;

	v->calls++;
	v->done = hs->done;
	v->n_from = 0;
	for (size_t i = 0; i < hs->n; i++)
		if (hs->v[i].field == HS_FROM)
			v->n_from++;
	return v->pass;
}

static void test_nul_and_check(void)
{
	static const struct {
		const char *name;
		const char *in;
		size_t len;
		bool check;		/* a check is set */
		bool pass;		/* what it answers */
		enum data_filter_status st;
		const char *want;	/* the whole output */
		size_t want_len;
		unsigned calls, n_from;
	} ccases[] = {
		{ "NUL in the body", S("From: a\r\n\r\nb\0c\r\n.\r\n"), false,
		  true, DATA_FILTER_NUL, S(PRE "From: a\r\n\r\nb"), 0, 0 },
		{ "NUL in a header", S("From: a\0\r\n\r\nb\r\n.\r\n"), true,
		  true, DATA_FILTER_NUL, S(""), 0, 0 },
		{ "NUL in a dropped field", S(DROP ": x\0y\r\nFrom: a\r\n\r\n"
		  "b\r\n.\r\n"), false, true, DATA_FILTER_DONE,
		  S(PRE "From: a\r\n\r\nb\r\n"), 0, 0 },
		{ "refused: nothing out", S("From: a\r\n\r\nbody\r\n.\r\n"),
		  true, false, DATA_FILTER_REFUSED, S(""), 1, 1 },
		{ "passed: all out", S("From: a\r\n\r\nbody\r\n.\r\n"), true,
		  true, DATA_FILTER_DONE, S(PRE "From: a\r\n\r\nbody\r\n"), 1,
		  1 },
		{ "refused, ends in the header", S("From: a\r\nFrom: b\r\n.\r\n"),
		  true, false, DATA_FILTER_REFUSED, S(""), 1, 2 },
		{ "refused: the body is not looked at", S("From: a\r\n\r\n"
		  "b\0c\r\n.\r\n"), true, false, DATA_FILTER_REFUSED, S(""), 1,
		  1 },
		{ "bare LF wins over NUL", S("From: a\r\n\r\nb\0\nc\r\n.\r\n"),
		  false, true, DATA_FILTER_BARE_NEWLINE,
		  S(PRE "From: a\r\n\r\nb"), 0, 0 },
	};

	for (size_t i = 0; i < sizeof(ccases) / sizeof(ccases[0]); i++) {
		struct verdict v = { .pass = ccases[i].pass };
		struct result r;
		struct data_filter *df;
		size_t c;
		enum data_filter_status st;

		memset(&r, 0, sizeof(r));
		df = data_filter_new(R, NOLIMIT, PRE, DROP, capture, &r);
		if (ccases[i].check)
			data_filter_set_check(df, check_from, &v);
		/* one octet at a time: the verdict must not depend on
		 * how the input comes */
		st = DATA_FILTER_MORE;
		for (size_t o = 0; o < ccases[i].len && st == DATA_FILTER_MORE;
		     o++)
			st = data_filter_feed(df, ccases[i].in + o, 1, &c);
		CHECK_STATUS(st, ccases[i].st, ccases[i].name);
		CHECK(buf_eq(&r.out, ccases[i].want, ccases[i].want_len),
		      "%s: got output \"%s\"", ccases[i].name,
		      esc(r.out.p, r.out.len));
		CHECK_INT(v.calls, ccases[i].calls, ccases[i].name);
		CHECK_INT(v.n_from, ccases[i].n_from, ccases[i].name);
		if (v.calls > 0)
			CHECK_INT(v.done || ccases[i].st == DATA_FILTER_REFUSED,
				  1, ccases[i].name);
		data_filter_free(&df);
		buf_free(&r.out);
	}
}

int main(void)
{
	test_nul_and_check();
	test_table();
	test_smuggling();
	test_failed_early();
	test_big_header();
	test_big_header_no_body();
	test_long_whitespace();
	test_streaming();
	test_fuzz();
	return test_done("test_data_filter");
}
