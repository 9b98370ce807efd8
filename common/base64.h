/* RFC 4648 §4 base64, strict: the standard alphabet, '=' padding
 * required to a multiple of 4, no whitespace, no characters after the
 * padding, and the unused bits of the last group must be zero. */
#ifndef AUTHRELAY_BASE64_H
#define AUTHRELAY_BASE64_H

#include <stddef.h>

/* Decoded size upper bound for an input of len characters. */
#define BASE64_DECODED_MAX(len) (((len) / 4) * 3)
/* Encoded size for n octets, without the NUL. */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Decode in[0..len) into out (room for outsize octets). Returns the
 * decoded length, or -1 for invalid input or too small a buffer (out is
 * wiped then). */
long base64_decode(const char *in, size_t len, unsigned char *out,
		   size_t outsize);
/* Encode; out needs BASE64_ENCODED_LEN(len) + 1 octets; NUL-terminated.
 * Returns the encoded length. */
size_t base64_encode(const unsigned char *in, size_t len, char *out);

#endif
