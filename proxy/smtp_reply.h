/* Replies from an SMTP server (the smarthost), client side: RFC 5321
 * §4.2 reply lines with RFC 3463 enhanced status codes, and the EHLO
 * keywords (§4.1.1.1) the relay needs. Pure: no I/O, no allocation.
 * Hard limits: a line is what the line reader gives (at most 510 octets
 * without CRLF, NUL-terminated); at most SMTP_REPLY_LINES lines a reply;
 * the text kept is the first line's, at most SMTP_REPLY_TEXT_MAX
 * octets, printable ASCII only (anything else becomes '?'). */
#ifndef AUTHRELAY_SMTP_REPLY_H
#define AUTHRELAY_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_LINES 100
#define SMTP_REPLY_TEXT_MAX 400

enum smtp_reply_status {
	SMTP_REPLY_BAD = -1,	/* malformed: the connection is unusable */
	SMTP_REPLY_MORE = 0,	/* a continuation line ("250-"): more follow */
	SMTP_REPLY_DONE = 1,	/* the last line ("250 "): the reply is whole */
};

/* One reply being read. Reset before the reply to each command. */
struct smtp_reply {
	unsigned lines;			/* lines of this reply so far */
	int code;			/* 200..599, set by the first line */
	char enhanced[16];		/* "2.1.5"; "X.0.0" if absent */
	char text[SMTP_REPLY_TEXT_MAX + 1];	/* the first line's text */
};

void smtp_reply_reset(struct smtp_reply *rep);

/* One line: line[0..len) followed by a NUL (as line_reader_next gives
 * it). Rules: three digits, a code 200..599, then SP, "-" or the end;
 * every line of a reply has the same code; more than SMTP_REPLY_LINES
 * lines is BAD. The first line sets code, enhanced (when its text starts
 * with "X.Y.Z" of the code's class, RFC 3463 §2) and text. *text_r (if
 * not NULL) gets the line's text after "ddd-" or "ddd " on MORE and DONE
 * (for EHLO keywords: every line but the first). */
enum smtp_reply_status smtp_reply_line(struct smtp_reply *rep,
				       const char *line, size_t len,
				       const char **text_r);

/* What an EHLO reply offers, as far as the relay cares. */
struct smtp_ehlo_caps {
	bool size, eightbitmime, dsn, smtputf8, starttls, xclient, pipelining;
	bool auth_plain, auth_login, auth_xoauth2, auth_oauthbearer;
};

/* One EHLO keyword line's text (RFC 5321 §4.1.1.1: keyword, then
 * parameters separated by SP), NUL-terminated; sets what it offers in
 * caps, ignores anything else. */
void smtp_ehlo_keyword(const char *text, struct smtp_ehlo_caps *caps);

#endif
