/* The DATA filter (proxy/data_filter.h), fed whole and in fuzzer-chosen
 * splits. Input: octet 0 seeds the splits, octet 1 picks the bare
 * newline mode and the size limit; the rest is what a client sends
 * after the 354.
 *
 * Invariants beyond the sanitizers:
 * - splitting the input never changes the status, the octets consumed,
 *   the size counted or the output;
 * - the output never holds a bare CR or a bare LF (a CR not followed by
 *   LF may only be the very last octet while the output has stopped);
 * - the output never holds CRLF "." CRLF, nor starts with "." CRLF: the
 *   end of data is the relay's to send, once;
 * - once DONE the output starts with the prepended fields and ends
 *   with CRLF;
 * - with DONE, the input left over (not consumed) starts right after the
 *   first CRLF "." CRLF of the input seen at a line start. */
#include "autoconf.h"

#include <string.h>

#include "data_filter.h"
#include "fuzz.h"
#include "xalloc.h"

#define PREPEND "Received: from client by relay\r\nX-Tag: 1\r\n"

struct out {
	char *buf;
	size_t len, cap;
};

static void emit(const char *buf, size_t len, void *ctx)
{
	struct out *o = ctx;

	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2;
		o->buf = xrealloc(o->buf, o->cap);
	}
	memcpy(o->buf + o->len, buf, len);
	o->len += len;
}

struct run {
	struct out out;
	enum data_filter_status st;
	size_t consumed;
	uint64_t size;
};

static void run(const char *in, size_t len, enum bare_newline mode,
		uint64_t max, struct fuzz_splits *splits, struct run *r)
{
	struct data_filter *df;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	df = data_filter_new(mode, max, PREPEND, "X-Drop", emit, &r->out);
	r->st = DATA_FILTER_MORE;
	while (off < len && r->st == DATA_FILTER_MORE) {
		size_t n = splits ? fuzz_splits_next(splits, len - off) :
			   len - off, c = 0;

		r->st = data_filter_feed(df, in + off, n, &c);
		FUZZ_CHECK(c <= n, "consumed %zu of %zu", c, n);
		FUZZ_CHECK(r->st != DATA_FILTER_MORE || c == n,
			   "MORE but %zu of %zu consumed", c, n);
		off += c;
	}
	r->consumed = off;
	r->size = data_filter_size(df);
	data_filter_free(&df);
}

static void check_output(const struct run *r)
{
	const char *o = r->out.buf;
	size_t n = r->out.len;
	size_t plen = strlen(PREPEND);

	if (r->st == DATA_FILTER_DONE) {
		FUZZ_CHECK(n >= plen && memcmp(o, PREPEND, plen) == 0,
			   "output does not start with the prepended fields");
	}
	for (size_t i = 0; i < n; i++) {
		if (o[i] == '\n')
			FUZZ_CHECK(i > 0 && o[i - 1] == '\r',
				   "bare LF at output offset %zu", i);
		if (o[i] == '\r' && i + 1 < n)
			FUZZ_CHECK(o[i + 1] == '\n',
				   "bare CR at output offset %zu", i);
	}
	if (r->st == DATA_FILTER_DONE) {
		FUZZ_CHECK(n >= 2 && o[n - 2] == '\r' && o[n - 1] == '\n',
			   "DONE output does not end with CRLF");
	} else if (n > 0 && o[n - 1] == '\r') {
		FUZZ_CHECK(r->st != DATA_FILTER_DONE, "trailing bare CR");
	}
	FUZZ_CHECK(!(n >= 3 && memcmp(o, ".\r\n", 3) == 0),
		   "output starts with the end of data");
	FUZZ_CHECK(n == 0 || memmem(o, n, "\r\n.\r\n", 5) == NULL,
		   "output holds CRLF . CRLF");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t limits[] = { 1000000, 0, 1, 64, 200 };
	struct fuzz_splits splits;
	struct run whole, split;
	enum bare_newline mode;
	uint64_t max;
	const char *in;
	size_t len;

	if (size < 2 || size > 65536)
		return 0;
	fuzz_splits_init(&splits, data[0]);
	mode = (data[1] & 1) ? BARE_NEWLINE_NORMALIZE : BARE_NEWLINE_REJECT;
	max = limits[(data[1] >> 1) % (sizeof(limits) / sizeof(limits[0]))];
	in = (const char *)data + 2;
	len = size - 2;

	run(in, len, mode, max, NULL, &whole);
	run(in, len, mode, max, &splits, &split);
	FUZZ_CHECK(whole.st == split.st, "status %d whole, %d split", whole.st,
		   split.st);
	FUZZ_CHECK(whole.consumed == split.consumed,
		   "consumed %zu whole, %zu split", whole.consumed,
		   split.consumed);
	FUZZ_CHECK(whole.size == split.size, "size %llu whole, %llu split",
		   (unsigned long long)whole.size,
		   (unsigned long long)split.size);
	FUZZ_CHECK(whole.out.len == split.out.len &&
		   (whole.out.len == 0 ||
		    memcmp(whole.out.buf, split.out.buf, whole.out.len) == 0),
		   "output differs when split (%zu vs %zu octets)",
		   whole.out.len, split.out.len);
	check_output(&whole);
	if (whole.st != DATA_FILTER_MORE) {
		/* The end: the input's first CRLF "." CRLF at a line start
		 * (the stream starts at one), ending where consumption
		 * stopped. */
		const char *end = NULL;

		if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
			end = in + 3;
		else {
			const char *p = memmem(in, len, "\r\n.\r\n", 5);

			if (p != NULL)
				end = p + 5;
		}
		FUZZ_CHECK(end != NULL && (size_t)(end - in) == whole.consumed,
			   "end of data at %zu, want %td", whole.consumed,
			   end ? end - in : (ptrdiff_t)-1);
	}
	free(whole.out.buf);
	free(split.out.buf);
	return 0;
}
