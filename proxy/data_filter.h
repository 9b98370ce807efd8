/* The DATA stream filter (RFC 5321 §4.1.1.4, §4.5.2): turns what a client
 * sends after DATA into what goes to the smarthost, incrementally, with
 * bounded memory.
 *
 * Input: raw client octets after the 354, in chunks of any size.
 * Output (through the emit callback): the message, dot-stuffed again,
 * with CRLF line ends only, WITHOUT the final ".\r\n" (the relay sends
 * that itself, once, only when the whole transfer succeeded).
 *
 * - Only CR LF "." CR LF ends the message (the first CR LF may be the one
 *   that ended the DATA command: the stream starts at a line start).
 *   Everything else that looks like an end elsewhere ("\n.\n", "\r.\r",
 *   "\r.\n", "\n.\r\n", "\r\n.\n", ...) is data (SMTP smuggling).
 * - Dot-stuffing: a line starting with "." has its first "." removed
 *   (client stuffing undone); on output every line that starts with "."
 *   gets one more.
 * - A bare CR or bare LF (not part of CR LF): with BARE_NEWLINE_REJECT the
 *   message is marked DATA_FILTER_BARE_NEWLINE (scanning goes on to the
 *   real end so the session stays in sync; output stops); with
 *   BARE_NEWLINE_NORMALIZE each becomes CR LF. A "." line ended by a bare
 *   CR or LF is never an end: after normalizing it is the line ".", sent
 *   as "..".
 * - Size: octets of the message as unstuffed, CRLF counted as 2; past
 *   max_size the message is marked DATA_FILTER_TOO_BIG (scanning goes on;
 *   output stops).
 * - Header section (everything up to the first empty line, or up to
 *   DATA_FILTER_HEADER_MAX octets, or the end of data): held, then emitted
 *   with `prepend` (our own header lines, already CRLF-terminated) first,
 *   and every field whose name equals `drop_header` (case-insensitive;
 *   whitespace before the colon allowed; with all its folded continuation
 *   lines; a fold before the colon counts as whitespace) removed. Past
 *   DATA_FILTER_HEADER_MAX the held part is released and the rest of the
 *   header section streams, fields still dropped up to the real empty
 *   line (else filler could push a forged field past the cap). A
 *   continuation line at the very start of the message is dropped: it
 *   would otherwise continue our own last prepended field.
 * - A message that ends inside its header section (no empty line) gets
 *   its headers emitted at the end; an empty message gets just `prepend`.
 * - A NUL anywhere in what would go out stops the output; the message is
 *   marked DATA_FILTER_NUL (RFC 5321 §4.5.2: NUL is not text).
 * - The output's header section (our prepended lines first) is scanned
 *   (header_scan.h) as it is produced. When it ends, and before any of
 *   it leaves the filter (past DATA_FILTER_HEADER_MAX: before any body
 *   octet), the check set with data_filter_set_check() decides; a
 *   refusal stops the output and marks the message DATA_FILTER_REFUSED.
 *   A message refused so emits nothing at all.
 * - The body is emitted as it comes (no line is held longer than needed
 *   to see its first octets and its end), so memory does not grow with
 *   line length or message size.
 */
#ifndef AUTHRELAY_DATA_FILTER_H
#define AUTHRELAY_DATA_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DATA_FILTER_HEADER_MAX (256 * 1024)

enum data_filter_status {
	DATA_FILTER_MORE = 0,		/* end not seen yet */
	DATA_FILTER_DONE,		/* end seen, message good */
	DATA_FILTER_BARE_NEWLINE,	/* end seen; refuse 550 5.5.2 */
	DATA_FILTER_TOO_BIG,		/* end seen; refuse 552 5.3.4 */
	DATA_FILTER_NUL,		/* end seen; refuse 550 5.6.0 */
	DATA_FILTER_REFUSED,		/* end seen; the check said no */
};
/* At the end the first of TOO_BIG or BARE_NEWLINE wins, then NUL, then
 * REFUSED. */

/* Output: called with a chunk of filtered octets to send upstream. */
typedef void data_filter_emit(const char *buf, size_t len, void *ctx);

struct data_filter;
struct header_scan;

/* The header section has ended: true lets the message go on. */
typedef bool data_filter_check(const struct header_scan *hs, void *ctx);

/* prepend and drop_header are copied. drop_header NULL or "": drop
 * nothing. */
struct data_filter *data_filter_new(enum bare_newline mode, uint64_t max_size,
				    const char *prepend,
				    const char *drop_header,
				    data_filter_emit *emit, void *ctx);
void data_filter_free(struct data_filter **df);

/* Feed input. *consumed_r tells how much was used: input after the end of
 * data is not consumed (it is the client's next command). Once a status
 * other than DATA_FILTER_MORE is returned, the filter is finished and
 * further calls return that same status consuming nothing. While
 * DATA_FILTER_MORE, all input is consumed. An error status is only
 * returned once the end of data is seen. */
enum data_filter_status data_filter_feed(struct data_filter *df,
					 const char *buf, size_t len,
					 size_t *consumed_r);

/* Octets counted so far (the message as unstuffed). */
uint64_t data_filter_size(const struct data_filter *df);
/* True once the message is marked TOO_BIG, BARE_NEWLINE, NUL or
 * REFUSED (output has stopped), even before the end is seen. */
bool data_filter_failed(const struct data_filter *df);

/* Set before the first feed. NULL: every header section passes. */
void data_filter_set_check(struct data_filter *df, data_filter_check *check,
			   void *ctx);
/* The scan of the output's header section so far. */
const struct header_scan *data_filter_headers(const struct data_filter *df);
/* The first Message-ID: field's value, without leading blanks; NULL if
 * none (yet). */
const char *data_filter_message_id(const struct data_filter *df);

#endif
