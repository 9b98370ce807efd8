/* PROXY protocol v1 and v2 (proxy/proxy_proto.h), receiving side. The
 * input is the first octets of a connection; every prefix of it is
 * parsed, as the connection would see them arrive.
 *
 * Invariants beyond the sanitizers:
 * - final once INVALID: once a prefix is INVALID, every longer prefix is;
 * - stable once OK: once a prefix is OK with header length h, every
 *   longer prefix is OK with the same h and the same addresses;
 * - h is at most the prefix length and at most PROXY_PROTO_MAX;
 * - a v1 header (starting "PROXY ") is at most 107 octets. */
#include "autoconf.h"

#include <string.h>

#include "fuzz.h"
#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_proto_result first, res;
	enum proxy_proto_status prev = PROXY_PROTO_NEED_MORE;
	size_t ok_len = 0;

	if (size > PROXY_PROTO_MAX + 64)
		return 0;
	memset(&first, 0, sizeof(first));
	for (size_t k = 0; k <= size; k++) {
		size_t h = 0;
		enum proxy_proto_status st;

		memset(&res, 0, sizeof(res));
		st = proxy_proto_parse(data, k, &h, &res);
		if (prev == PROXY_PROTO_INVALID)
			FUZZ_CHECK(st == PROXY_PROTO_INVALID,
				   "INVALID at %zu octets, %d at %zu", k - 1, st,
				   k);
		if (st == PROXY_PROTO_OK) {
			FUZZ_CHECK(h > 0 && h <= k && h <= PROXY_PROTO_MAX,
				   "header length %zu of %zu", h, k);
			if (h >= 6 && memcmp(data, "PROXY ", 6) == 0)
				FUZZ_CHECK(h <= 107, "v1 header of %zu", h);
			if (prev == PROXY_PROTO_OK) {
				FUZZ_CHECK(h == ok_len, "OK length %zu, then %zu",
					   ok_len, h);
				FUZZ_CHECK(res.has_addr == first.has_addr &&
					   memcmp(&res.src, &first.src,
						  sizeof(res.src)) == 0 &&
					   memcmp(&res.dst, &first.dst,
						  sizeof(res.dst)) == 0,
					   "OK result changed at %zu octets", k);
			} else {
				ok_len = h;
				first = res;
			}
		} else {
			FUZZ_CHECK(prev != PROXY_PROTO_OK,
				   "OK at %zu octets, %d at %zu", k - 1, st, k);
		}
		prev = st;
	}
	return 0;
}
