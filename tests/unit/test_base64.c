#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "test.h"

struct vector {
	const char *raw;
	size_t raw_len;
	const char *b64;
};

static const struct vector vectors[] = {
	/* RFC 4648 §10 */
	{ "", 0, "" },
	{ "f", 1, "Zg==" },
	{ "fo", 2, "Zm8=" },
	{ "foo", 3, "Zm9v" },
	{ "foob", 4, "Zm9vYg==" },
	{ "fooba", 5, "Zm9vYmE=" },
	{ "foobar", 6, "Zm9vYmFy" },
	/* every length 0..12, with NULs and octets >= 0x80 */
	{ "\x00", 1, "AA==" },
	{ "\x00\xff", 2, "AP8=" },
	{ "\x00\xff\x80", 3, "AP+A" },
	{ "\x00\xff\x80" "A", 4, "AP+AQQ==" },
	{ "\x00\xff\x80" "A\x00", 5, "AP+AQQA=" },
	{ "\x00\xff\x80" "A\x00\x7f", 6, "AP+AQQB/" },
	{ "\x00\xff\x80" "A\x00\x7f\xfe", 7, "AP+AQQB//g==" },
	{ "\x00\xff\x80" "A\x00\x7f\xfe\x10", 8, "AP+AQQB//hA=" },
	{ "\x00\xff\x80" "A\x00\x7f\xfe\x10\xc3", 9, "AP+AQQB//hDD" },
	{ "\x00\xff\x80" "A\x00\x7f\xfe\x10\xc3\xa9", 10, "AP+AQQB//hDDqQ==" },
	{ "\x00\xff\x80" "A\x00\x7f\xfe\x10\xc3\xa9\x00", 11,
	  "AP+AQQB//hDDqQA=" },
	{ "\x00\xff\x80" "A\x00\x7f\xfe\x10\xc3\xa9\x00\x01", 12,
	  "AP+AQQB//hDDqQAB" },
	/* SASL PLAIN examples, RFC 4616 §4 */
	{ "\0tim\0tanstaaftanstaaf", 21, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm" },
	{ "Kurt\0test\0password", 18, "S3VydAB0ZXN0AHBhc3N3b3Jk" },
	/* pad-bit edge cases: zero pad bits */
	{ "A", 1, "QQ==" },
	{ "AB", 2, "QUI=" },
	{ "\xfb\xff\xbf", 3, "+/+/" },
};

struct bad {
	const char *in;
	size_t len;
	const char *why;
};

#define BAD(s, why) { s, sizeof(s) - 1, why }

static const struct bad bads[] = {
	/* lengths 4n+1, 4n+2, 4n+3 */
	BAD("Z", "length 1"),
	BAD("Zm", "length 2"),
	BAD("Zm9", "length 3"),
	BAD("Zm9vY", "length 5"),
	BAD("Zm9vYm", "length 6"),
	BAD("Zm9vYmF", "length 7"),
	BAD("Zm9vYmFyZ", "length 9"),
	BAD("Zg=", "length 3 with pad"),
	BAD("Zg", "unpadded"),
	BAD("Zm8", "unpadded 2"),
	/* characters outside the alphabet */
	BAD("Zm9 v", "space"),
	BAD("Zm9v ", "trailing space, length 5"),
	BAD(" Zm9", "leading space"),
	BAD("Zm9vYmF\n", "newline"),
	BAD("Zm9vYm\r\n", "CRLF"),
	BAD("Zm\tv", "tab"),
	BAD("Zm-v", "base64url '-'"),
	BAD("Zm_v", "base64url '_'"),
	BAD("Zm\0v", "NUL"),
	BAD("\0\0\0\0", "all NUL"),
	BAD("Zm\x80v", "0x80"),
	BAD("Zm\xffv", "0xff"),
	BAD("Zm\xc3\xa9", "UTF-8"),
	BAD("Zm.v", "'.'"),
	BAD("Zm:v", "':'"),
	BAD("Zm@v", "'@' (just below 'A')"),
	BAD("Zm[v", "'[' (just above 'Z')"),
	BAD("Zm`v", "'`' (just below 'a')"),
	BAD("Zm{v", "'{' (just above 'z')"),
	BAD("Zm,v", "',' (between '+' and '/')"),
	/* padding in the wrong place */
	BAD("====", "only padding"),
	BAD("Z===", "three pad characters"),
	BAD("=Zm9", "leading '='"),
	BAD("Z=m9", "'=' in the middle of a group"),
	BAD("Zm=v", "'=' then data"),
	BAD("Zg==Zg==", "'=' in the middle"),
	BAD("Zm8=Zm9v", "padded group then more"),
	BAD("Zg==\0\0\0\0", "NULs after padding"),
	/* non-zero pad bits (RFC 4648 §3.5) */
	BAD("QR==", "pad bits 0001"),
	BAD("QX==", "pad bits 0111 (X)"),
	BAD("Q/==", "pad bits 1111"),
	BAD("QUJ=", "pad bits 01"),
	BAD("QUL=", "pad bits 11"),
	BAD("Zm9=", "pad bits of 'Zm9'"),
};

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		char enc[64];
		unsigned char dec[64];
		size_t n;
		long r;

		CHECK_INT(BASE64_ENCODED_LEN(v->raw_len), strlen(v->b64),
			  v->b64);
		n = base64_encode((const unsigned char *)v->raw, v->raw_len,
				  enc);
		CHECK_INT(n, strlen(v->b64), v->b64);
		CHECK_STR(enc, v->b64, "encode");

		memset(dec, 0xaa, sizeof(dec));
		r = base64_decode(v->b64, strlen(v->b64), dec, sizeof(dec));
		CHECK_INT(r, v->raw_len, v->b64);
		CHECK(r >= 0 && memcmp(dec, v->raw, v->raw_len) == 0,
		      "%s: decoded octets differ", v->b64);
		CHECK(BASE64_DECODED_MAX(strlen(v->b64)) >= v->raw_len,
		      "%s: BASE64_DECODED_MAX too small", v->b64);

		/* exactly enough room is enough */
		r = base64_decode(v->b64, strlen(v->b64), dec, v->raw_len);
		CHECK_INT(r, v->raw_len, "exact outsize");
	}
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void test_invalid(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		unsigned char out[32];
		long r;

		memset(out, 0xaa, sizeof(out));
		r = base64_decode(bads[i].in, bads[i].len, out, sizeof(out));
		CHECK_INT(r, -1, bads[i].why);
		CHECK(all_zero(out, sizeof(out)), "%s: out not wiped",
		      bads[i].why);
	}
}

/* Every second character after a lone first one: valid only when its
 * low four bits (the pad bits) are zero; likewise the third character
 * of a padded pair with its low two bits. */
static void test_pad_bits(void)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789+/";

	for (unsigned v = 0; v < 64; v++) {
		char in[5];
		unsigned char out[3];
		long r;

		snprintf(in, sizeof(in), "Q%c==", alphabet[v]);
		r = base64_decode(in, 4, out, sizeof(out));
		CHECK_INT(r, (v & 0x0f) == 0 ? 1 : -1, in);

		snprintf(in, sizeof(in), "QU%c=", alphabet[v]);
		r = base64_decode(in, 4, out, sizeof(out));
		CHECK_INT(r, (v & 0x03) == 0 ? 2 : -1, in);
	}
}

static void test_all_octets(void)
{
	unsigned char raw[256], dec[256];
	char enc[BASE64_ENCODED_LEN(256) + 1];
	size_t n;
	long r;

	for (unsigned i = 0; i < 256; i++)
		raw[i] = (unsigned char)i;
	n = base64_encode(raw, sizeof(raw), enc);
	CHECK_INT(n, BASE64_ENCODED_LEN(256), "encoded length of 0..255");
	CHECK_INT(enc[n], 0, "NUL terminator");
	r = base64_decode(enc, n, dec, sizeof(dec));
	CHECK_INT(r, 256, "decode 0..255");
	CHECK(memcmp(raw, dec, sizeof(raw)) == 0, "0..255 did not round-trip");

	/* each octet alone and in every position of a group */
	for (unsigned i = 0; i < 256; i++) {
		for (size_t len = 1; len <= 3; len++) {
			unsigned char one[3] = { 0x5a, 0xa5, 0x5a };
			unsigned char back[3];
			char e[5];
			char what[32];

			one[len - 1] = (unsigned char)i;
			base64_encode(one, len, e);
			r = base64_decode(e, strlen(e), back, sizeof(back));
			snprintf(what, sizeof(what), "octet %u len %zu", i,
				 len);
			CHECK_INT(r, len, what);
			CHECK(r == (long)len && memcmp(one, back, len) == 0,
			      "%s: did not round-trip", what);
		}
	}
}

static void test_buffer_size(void)
{
	unsigned char out[8];
	long r;

	memset(out, 0xaa, sizeof(out));
	r = base64_decode("Zm9vYmFy", 8, out, 5);
	CHECK_INT(r, -1, "6 octets into 5");
	CHECK(all_zero(out, 5), "too small: out not wiped");
	CHECK_INT(out[5], 0xaa, "wrote past outsize");

	r = base64_decode("Zm9vYmFy", 8, out, 6);
	CHECK_INT(r, 6, "6 octets into 6");

	/* "Zm8=" is 2 octets though BASE64_DECODED_MAX(4) is 3 */
	r = base64_decode("Zm8=", 4, out, 2);
	CHECK_INT(r, 2, "padded into exact size");
	r = base64_decode("Zm8=", 4, out, 1);
	CHECK_INT(r, -1, "padded into too small");

	r = base64_decode("", 0, NULL, 0);
	CHECK_INT(r, 0, "empty into nothing");
	r = base64_decode("Zg==", 4, NULL, 0);
	CHECK_INT(r, -1, "one octet into nothing");
	r = base64_decode("Zg=", 3, NULL, 0);
	CHECK_INT(r, -1, "invalid into nothing");
}

static void test_macros(void)
{
	CHECK_INT(BASE64_ENCODED_LEN(0), 0, "ENCODED_LEN(0)");
	CHECK_INT(BASE64_ENCODED_LEN(1), 4, "ENCODED_LEN(1)");
	CHECK_INT(BASE64_ENCODED_LEN(3), 4, "ENCODED_LEN(3)");
	CHECK_INT(BASE64_ENCODED_LEN(4), 8, "ENCODED_LEN(4)");
	CHECK_INT(BASE64_DECODED_MAX(0), 0, "DECODED_MAX(0)");
	CHECK_INT(BASE64_DECODED_MAX(4), 3, "DECODED_MAX(4)");
	CHECK_INT(BASE64_DECODED_MAX(8), 6, "DECODED_MAX(8)");
}

int main(void)
{
	test_vectors();
	test_invalid();
	test_pad_bits();
	test_all_octets();
	test_buffer_size();
	test_macros();
	return test_done("test_base64");
}
