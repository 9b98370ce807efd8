/* Replies from a smarthost, parsed with hard limits (RFC 5321
 * §4.5.3.1.5: 512 octets a line, which the line reader enforces; at most
 * RELAY_REPLY_LINES lines; every line the same code) and anything
 * malformed refused: the relay fails rather than guess. Pure: no I/O. */
#ifndef AUTHRELAY_RELAY_REPLY_H
#define AUTHRELAY_RELAY_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define RELAY_REPLY_LINES 100
#define RELAY_TEXT_MAX 400

struct relay_reply {
	int code;			/* 200..599 */
	char enhanced[16];		/* "2.1.5"; synthesized if absent */
	char text[RELAY_TEXT_MAX + 1];	/* first line, printable ASCII */
};

/* What an EHLO reply offers (the keywords we use). */
struct relay_caps {
	bool size, eightbitmime, dsn, smtputf8, starttls, xclient;
	bool auth_plain, auth_login, auth_xoauth2, auth_oauthbearer;
};

struct relay_reply_reader {
	unsigned lines;			/* of the reply being read */
	int code;
	struct relay_reply reply;
	struct relay_caps caps;		/* from the last EHLO reply */
};

/* A command was sent: its reply comes next. */
void relay_reply_begin(struct relay_reply_reader *r);
/* One reply line (without CRLF). 1 when the reply is complete (in
 * r->reply), 0 for more, -1 malformed. With ehlo, lines after the first
 * are read as EHLO keywords into r->caps. */
int relay_reply_line(struct relay_reply_reader *r, const char *line,
		     size_t len, bool ehlo);
/* One EHLO keyword line (RFC 5321 §4.1.1.1). */
void relay_caps_parse(struct relay_caps *caps, const char *text);

#endif
