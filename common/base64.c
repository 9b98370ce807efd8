#include "autoconf.h"

#include <limits.h>
#include <string.h>

#include "base64.h"

/* The character <-> value maps below avoid table look-ups and branches on
 * the data: this code decodes AUTH passwords and encodes the relay's own
 * credentials, and neither should leak through cache or branch timing. */

/* All ones if lo <= c <= hi, else 0 (c, lo, hi small). */
static unsigned int range_mask(unsigned int c, unsigned int lo,
			       unsigned int hi)
{
	unsigned int ge = (lo - 1 - c) >> (sizeof(unsigned int) * CHAR_BIT - 1);
	unsigned int le = (c - hi - 1) >> (sizeof(unsigned int) * CHAR_BIT - 1);

	return 0U - (ge & le);
}

/* RFC 4648 §4, Table 1. Sets all bits of *bad for a character outside
 * the alphabet ('=' included: the caller handles padding). */
static unsigned int b64_value(unsigned char ch, unsigned int *bad)
{
	unsigned int c = ch;
	unsigned int upper = range_mask(c, 'A', 'Z');
	unsigned int lower = range_mask(c, 'a', 'z');
	unsigned int digit = range_mask(c, '0', '9');
	unsigned int plus = range_mask(c, '+', '+');
	unsigned int slash = range_mask(c, '/', '/');

	*bad |= ~(upper | lower | digit | plus | slash);
	return (upper & (c - 'A')) | (lower & (c - 'a' + 26)) |
	       (digit & (c - '0' + 52)) | (plus & 62) | (slash & 63);
}

static char b64_char(unsigned int v)
{
	unsigned int c = v + 'A';

	c += range_mask(v, 26, 63) & ('a' - 'A' - 26);
	c -= range_mask(v, 52, 63) & (('a' - 26) - ('0' - 52));
	c -= range_mask(v, 62, 63) & (('0' - 52 + 62) - '+');
	c += range_mask(v, 63, 63) & ('/' - '+' - 1);
	return (char)(c & 0xff);
}

long base64_decode(const char *in, size_t len, unsigned char *out,
		   size_t outsize)
{
	size_t pad = 0, outlen, i, o = 0;
	unsigned int bad = 0;

	/* RFC 4648 §3.2: padding is required, so the length is a
	 * multiple of 4. */
	if (len % 4 != 0)
		goto fail;
	if (len == 0)
		return 0;
	if (in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	outlen = len / 4 * 3 - pad;
	if (outlen > outsize || outlen > LONG_MAX)
		goto fail;

	for (i = 0; i < len; i += 4) {
		/* data characters in this group: 4, or 2-3 in a padded
		 * last group; '=' anywhere else is outside the alphabet */
		size_t n = i + 4 == len ? 4 - pad : 4;
		unsigned int a, b, c = 0, d = 0, w;

		a = b64_value((unsigned char)in[i], &bad);
		b = b64_value((unsigned char)in[i + 1], &bad);
		if (n > 2)
			c = b64_value((unsigned char)in[i + 2], &bad);
		if (n > 3)
			d = b64_value((unsigned char)in[i + 3], &bad);
		w = a << 18 | b << 12 | c << 6 | d;
		out[o++] = (unsigned char)(w >> 16);
		if (n > 2)
			out[o++] = (unsigned char)(w >> 8);
		if (n > 3)
			out[o++] = (unsigned char)w;
		/* RFC 4648 §3.5: the pad bits must be zero, or two
		 * encodings would decode to the same octets. */
		if (n == 2)
			bad |= b & 0x0f;
		else if (n == 3)
			bad |= c & 0x03;
	}
	if (bad != 0)
		goto fail;
	return (long)outlen;

fail:
	if (out != NULL && outsize > 0)
		explicit_bzero(out, outsize);
	return -1;
}

size_t base64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 3 <= len; i += 3) {
		unsigned int w = (unsigned int)in[i] << 16 |
				 (unsigned int)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64_char(w >> 18);
		out[o++] = b64_char((w >> 12) & 0x3f);
		out[o++] = b64_char((w >> 6) & 0x3f);
		out[o++] = b64_char(w & 0x3f);
	}
	if (len - i == 1) {
		unsigned int w = (unsigned int)in[i] << 16;

		out[o++] = b64_char(w >> 18);
		out[o++] = b64_char((w >> 12) & 0x3f);
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		unsigned int w = (unsigned int)in[i] << 16 |
				 (unsigned int)in[i + 1] << 8;

		out[o++] = b64_char(w >> 18);
		out[o++] = b64_char((w >> 12) & 0x3f);
		out[o++] = b64_char((w >> 6) & 0x3f);
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}
