/* UTF-8 (RFC 3629), for the address parsers (SMTPUTF8, RFC 6531). */
#ifndef AUTHRELAY_UTF8_H
#define AUTHRELAY_UTF8_H

#include <stddef.h>

/* Length of the UTF-8 encoded non-ASCII character at p (RFC 3629 §4:
 * no overlong forms, no surrogates, nothing above U+10FFFF), or 0 if p
 * does not start one within [p, end). */
size_t utf8_char_len(const char *p, const char *end);

#endif
