/* SASL PLAIN and LOGIN decoding (RFC 4616, RFC 4954) and base64
 * (RFC 4648 §4, strict). The first octet picks what the rest is.
 *
 * Invariants beyond the sanitizers:
 * - base64: decode(encode(x)) == x for any x; and since the decoder is
 *   strict (padding, zero spare bits), a string that decodes is the
 *   encoding of what it decodes to: encode(decode(s)) == s;
 * - PLAIN: a decoded user is non-empty, at most AUTH_USER_MAX octets
 *   and equals the authcid between the two NULs of the decoded octets;
 *   the password is the octets after the second NUL; on any failure the
 *   credentials are wiped (all zero);
 * - LOGIN: the result is at most max octets and equals the decoded
 *   octets; on failure the output is wiped. */
#include "autoconf.h"

#include <string.h>

#include "base64.h"
#include "fuzz.h"
#include "sasl.h"

#define IN_MAX 4096

static void round_trip(const uint8_t *data, size_t size)
{
	static char enc[BASE64_ENCODED_LEN(IN_MAX) + 1];
	static unsigned char dec[IN_MAX];
	size_t n = base64_encode(data, size, enc);
	long m;

	FUZZ_CHECK(n == BASE64_ENCODED_LEN(size) && enc[n] == '\0',
		   "encoded length %zu, want %zu", n,
		   (size_t)BASE64_ENCODED_LEN(size));
	m = base64_decode(enc, n, dec, sizeof(dec));
	FUZZ_CHECK(m == (long)size && memcmp(dec, data, size) == 0,
		   "decode(encode(x)) != x (%ld octets back of %zu)", m, size);
}

static void decode_any(const uint8_t *data, size_t size)
{
	static unsigned char dec[IN_MAX];
	static char enc[BASE64_ENCODED_LEN(IN_MAX) + 1];
	long m = base64_decode((const char *)data, size, dec, sizeof(dec));

	if (m < 0) {
		FUZZ_CHECK(fuzz_all_zero(dec, sizeof(dec)),
			   "output not wiped after a refusal");
		return;
	}
	FUZZ_CHECK((size_t)m <= BASE64_DECODED_MAX(size), "decoded too much");
	base64_encode(dec, (size_t)m, enc);
	FUZZ_CHECK(strlen(enc) == size && memcmp(enc, data, size) == 0,
		   "encode(decode(s)) != s for a strict decoder");
	memset(dec, 0, sizeof(dec));
}

static void plain(const uint8_t *data, size_t size)
{
	static unsigned char raw[IN_MAX];
	struct sasl_credentials c;
	enum sasl_status st;
	long m;
	const unsigned char *nul1, *nul2;

	memset(&c, 0xaa, sizeof(c));
	st = sasl_plain_decode((const char *)data, size, &c);

	if (st != SASL_OK) {
		FUZZ_CHECK(fuzz_all_zero(&c, sizeof(c)), "credentials not wiped");
		return;
	}
	m = base64_decode((const char *)data, size, raw, sizeof(raw));
	FUZZ_CHECK(m >= 0, "PLAIN accepted what base64 refuses");
	nul1 = memchr(raw, '\0', (size_t)m);
	FUZZ_CHECK(nul1 != NULL, "PLAIN accepted without a NUL");
	nul2 = memchr(nul1 + 1, '\0', (size_t)m - (size_t)(nul1 + 1 - raw));
	FUZZ_CHECK(nul2 != NULL, "PLAIN accepted with one NUL");
	FUZZ_CHECK(c.user[0] != '\0' && strlen(c.user) <= AUTH_USER_MAX,
		   "user empty or over AUTH_USER_MAX");
	FUZZ_CHECK(strlen(c.user) == (size_t)(nul2 - nul1 - 1) &&
		   memcmp(c.user, nul1 + 1, strlen(c.user)) == 0,
		   "user is not the authcid");
	FUZZ_CHECK(strlen(c.password) == (size_t)(raw + m - nul2 - 1) &&
		   memcmp(c.password, nul2 + 1, strlen(c.password)) == 0,
		   "password is not what follows the second NUL");
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(&c, sizeof(c));
}

static void login(const uint8_t *data, size_t size, size_t max)
{
	static unsigned char raw[IN_MAX];
	char out[AUTH_PASSWORD_MAX + 1];
	enum sasl_status st;
	long m;

	memset(out, 0xaa, sizeof(out));
	st = sasl_login_decode((const char *)data, size, out, max);

	if (st != SASL_OK) {
		FUZZ_CHECK(fuzz_all_zero(out, max + 1), "LOGIN output not wiped");
		return;
	}
	m = base64_decode((const char *)data, size, raw, sizeof(raw));
	FUZZ_CHECK(m >= 0 && (size_t)m <= max && strlen(out) == (size_t)m &&
		   memcmp(out, raw, (size_t)m) == 0,
		   "LOGIN result is not the decoded octets within max");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > IN_MAX)
		return 0;
	switch (data[0] % 5) {
	case 0: round_trip(data + 1, size - 1); break;
	case 1: decode_any(data + 1, size - 1); break;
	case 2: plain(data + 1, size - 1); break;
	case 3: login(data + 1, size - 1, AUTH_USER_MAX); break;
	default: login(data + 1, size - 1, AUTH_PASSWORD_MAX); break;
	}
	return 0;
}
