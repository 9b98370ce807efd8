/* Watches the header section of a message as it streams to the
 * smarthost (the data filter's output: CRLF line ends, folded lines
 * kept) and keeps the fields the session needs afterwards: every From:
 * and Sender: (for the sender check) and the first Message-ID: (for the
 * log). Bounded: a kept field longer than HEADER_SCAN_FIELD_MAX, or more
 * than HEADER_SCAN_FIELDS of them, marks the scan overflowed (the sender
 * check then refuses the message rather than guess). */
#ifndef AUTHRELAY_HEADER_SCAN_H
#define AUTHRELAY_HEADER_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#define HEADER_SCAN_FIELD_MAX 8192
#define HEADER_SCAN_FIELDS 8

enum header_scan_field { HS_FROM, HS_SENDER, HS_MESSAGE_ID };

/* value holds exactly len octets (the field body after the colon,
 * unfolded) and a NUL after them. The octets are the field's own, a NUL
 * among them included: len, not strlen(), is the value's length, and a
 * parser given (value, len) sees every octet (header_addr_parse refuses
 * a NUL). */
struct header_scan_value {
	enum header_scan_field field;
	char *value;
	size_t len;
};

struct header_scan {
	bool done;		/* the empty line was seen */
	bool line_start;	/* the next octet starts a line */
	bool overflow;
	/* the line being collected */
	char *cur;
	size_t cur_len;
	bool cur_skip;		/* the current field is not one we keep */
	bool cur_active;	/* a field is being collected */
	struct header_scan_value v[HEADER_SCAN_FIELDS];
	size_t n;
};

/* hs starts at a line start. */
void header_scan_init(struct header_scan *hs);
void header_scan_free(struct header_scan *hs);
/* Feed output octets; stops looking once the header section ended. */
void header_scan_feed(struct header_scan *hs, const char *buf, size_t len);
/* The end of data: a message that ends inside its headers still has
 * its last field counted. */
void header_scan_finish(struct header_scan *hs);

#endif
