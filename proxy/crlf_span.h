/* The fast path of the DATA filter: how much of a chunk of message body
 * can go upstream exactly as it came. Such text is lines ended by CR LF
 * (RFC 5321 §2.3.8), with no NUL (§4.5.2) and no line that starts with
 * "." (§4.5.2: those are unstuffed and stuffed again, and "." CR LF may
 * be the end of data), so the filter's output equals its input. */
#ifndef AUTHRELAY_CRLF_SPAN_H
#define AUTHRELAY_CRLF_SPAN_H

#include <stddef.h>

/* Length of the longest prefix of p[0..n) that is such text, starting
 * inside a line (p[0] is not the start of a line that begins with "."
 * unless the caller knows it is not at a line start). It stops before a
 * NUL, before a LF not preceded by CR inside the prefix, before a CR not
 * followed by LF (or that is the last octet: the LF may come in the next
 * chunk), and after a CR LF that a "." follows. The prefix ends either
 * at n or just after a CR LF, or before one of the octets above. */
size_t crlf_span(const char *p, size_t n);

#endif
