/* Addresses in From: and Sender: header fields (RFC 5322 §3.4, with the
 * obsolete forms of §4.4 that real mail still uses): the sender check
 * needs every mailbox's addr-spec, whatever the display names, quoting,
 * comments, groups, folding or RFC 2047 encoded words around it. Pure:
 * no I/O. */
#ifndef AUTHRELAY_HEADER_ADDR_H
#define AUTHRELAY_HEADER_ADDR_H

#include <stddef.h>

#define HEADER_ADDR_MAX 32	/* mailboxes taken from one field */
#define HEADER_ADDR_LEN 320

struct header_addrs {
	char addr[HEADER_ADDR_MAX][HEADER_ADDR_LEN + 1];	/* local@domain */
	size_t n;
};

/* value: the field body after the colon, possibly folded (CRLF + WSP)
 * and unfolded or not. Appends each mailbox's addr-spec to out, as
 * local@domain with the local part unquoted where quoting was not needed
 * ("john"@x -> john@x; "john doe"@x stays quoted) and the domain
 * lower-cased; group names and empty groups yield nothing; comments and
 * display names are ignored (an address inside a display name or comment
 * does not count). Returns 0, or -1 if the field cannot be parsed or
 * holds more than HEADER_ADDR_MAX mailboxes or an address over
 * HEADER_ADDR_LEN: the caller refuses such a message. */
int header_addr_parse(const char *value, size_t len, struct header_addrs *out);

/* Case rules for comparing an address with the user's: local part
 * exact (RFC 5321 §2.4), except that ASCII case is folded too when
 * fold_local is set (what directories do); domain case-insensitive. */
int header_addr_equal(const char *a, const char *b, int fold_local);

#endif
