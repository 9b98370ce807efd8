/* The header lines we put on top of every message we relay: a Received:
 * field (RFC 5321 §4.4) that names the authenticated sender, and the
 * [policy] identity_header field with the user name. */
#ifndef AUTHRELAY_MESSAGE_TAG_H
#define AUTHRELAY_MESSAGE_TAG_H

#include <time.h>

#include "strbuf.h"

/* Enough for every field at its bound and a hostname of 255. */
#define MESSAGE_TAG_MAX 4096

struct message_tag {
	const char *hostname;		/* ours */
	const char *helo;		/* the client's EHLO name */
	const char *client_ip;
	unsigned long session_id;
	unsigned long message_no;	/* in the session, from 1 */
	const char *tls_version;	/* NULL: none */
	const char *tls_cipher;
	const char *user;
	const char *rcpt;		/* the only recipient, or NULL */
	const char *identity_header;	/* NULL or "": none */
	time_t now;
};

/* Append the lines, each ended by CRLF. 0, or -1 if they did not fit
 * (then sb holds nothing usable). */
int message_tag_headers(const struct message_tag *t, struct strbuf *sb);

#endif
