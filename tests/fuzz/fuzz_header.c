/* header_scan (the fields kept from the header section) and header_addr
 * (the mailboxes of From: and Sender:). Input: octet 0 seeds the splits;
 * the rest is a message for header_scan, made into what header_scan is
 * fed, the data filter's output (every CR and every LF becomes part of
 * a CRLF: the filter never emits a bare one), and is also given to
 * header_addr as a field body as it is.
 *
 * Invariants beyond the sanitizers:
 * - splitting the input never changes what header_scan keeps;
 * - a kept value is exactly len octets followed by a NUL, len at most
 *   HEADER_SCAN_FIELD_MAX, at most HEADER_SCAN_FIELDS values;
 * - a parsed address holds no control character and no SP outside
 *   quotes, has an '@', is at most HEADER_ADDR_LEN octets, and at most
 *   HEADER_ADDR_MAX of them come from one field;
 * - header_addr_parse is deterministic and an address equals itself
 *   under header_addr_equal. */
#include "autoconf.h"

#include <string.h>

#include "fuzz.h"
#include "header_addr.h"
#include "header_scan.h"

static void check_addrs(const char *value, size_t len)
{
	static struct header_addrs a, b;
	int r;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	r = header_addr_parse(value, len, &a);
	FUZZ_CHECK(r == header_addr_parse(value, len, &b) && a.n == b.n,
		   "header_addr_parse not deterministic");
	FUZZ_CHECK(a.n <= HEADER_ADDR_MAX, "%zu addresses", a.n);
	if (r < 0)
		return;
	for (size_t i = 0; i < a.n; i++) {
		size_t n = strnlen(a.addr[i], HEADER_ADDR_LEN + 1);

		FUZZ_CHECK(n <= HEADER_ADDR_LEN, "address over HEADER_ADDR_LEN");
		FUZZ_CHECK(strcmp(a.addr[i], b.addr[i]) == 0,
			   "header_addr_parse not deterministic");
		FUZZ_CHECK(!fuzz_has_control(a.addr[i], n),
			   "address with a control octet: \"%s\"", a.addr[i]);
		FUZZ_CHECK(strchr(a.addr[i], '@') != NULL,
			   "address without @: \"%s\"", a.addr[i]);
		FUZZ_CHECK(header_addr_equal(a.addr[i], a.addr[i], 0),
			   "address not equal to itself: \"%s\"", a.addr[i]);
	}
}

static void scan(const char *in, size_t len, struct fuzz_splits *splits,
		 struct header_scan *hs)
{
	size_t off = 0;

	header_scan_init(hs);
	while (off < len) {
		size_t n = splits ? fuzz_splits_next(splits, len - off) :
			   len - off;

		header_scan_feed(hs, in + off, n);
		off += n;
	}
	header_scan_finish(hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_splits splits;
	struct header_scan whole, split;
	const char *in;
	size_t len;

	static char msg[2 * 65536];

	if (size < 1 || size > 65536)
		return 0;
	fuzz_splits_init(&splits, data[0]);
	in = (const char *)data + 1;
	len = 0;
	for (size_t i = 1; i < size; i++) {
		if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n')
			continue;	/* the LF writes the CRLF */
		if (data[i] == '\r' || data[i] == '\n') {
			msg[len++] = '\r';
			msg[len++] = '\n';
		} else {
			msg[len++] = (char)data[i];
		}
	}

	scan(msg, len, NULL, &whole);
	scan(msg, len, &splits, &split);
	FUZZ_CHECK(whole.n == split.n && whole.overflow == split.overflow,
		   "split changes the fields kept (%zu vs %zu)", whole.n,
		   split.n);
	FUZZ_CHECK(whole.n <= HEADER_SCAN_FIELDS, "%zu fields", whole.n);
	for (size_t i = 0; i < whole.n; i++) {
		const struct header_scan_value *v = &whole.v[i], *w = &split.v[i];

		FUZZ_CHECK(v->len <= HEADER_SCAN_FIELD_MAX, "value of %zu",
			   v->len);
		FUZZ_CHECK(v->value[v->len] == '\0', "value not NUL-terminated "
			   "at len");
		FUZZ_CHECK(v->field == w->field && v->len == w->len &&
			   memcmp(v->value, w->value, v->len) == 0,
			   "split changes field %zu", i);
		if (v->field != HS_MESSAGE_ID)
			check_addrs(v->value, v->len);
	}
	header_scan_free(&whole);
	header_scan_free(&split);
	check_addrs(in, size - 1);
	return 0;
}
