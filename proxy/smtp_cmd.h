/* SMTP command parsing (RFC 5321 §4.1, RFC 6409): pure functions over
 * one command line (CRLF already removed). No I/O, no allocation. */
#ifndef AUTHRELAY_SMTP_CMD_H
#define AUTHRELAY_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_param.h"

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_RSET, SMTP_VERB_NOOP, SMTP_VERB_QUIT,
	SMTP_VERB_VRFY, SMTP_VERB_EXPN, SMTP_VERB_HELP, SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH, SMTP_VERB_BDAT, SMTP_VERB_ETRN,
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *args;	/* after the verb and its separating spaces;
				   "" when none; points into the line */
};

/* Split a line into verb and arguments. The verb is case-insensitive
 * and ends at SP or end of line. Returns 0, or -1 if the line holds a
 * NUL or other control character (other than HT) (reply 500 5.5.2). An
 * unknown verb is not an error here: verb is SMTP_VERB_UNKNOWN. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd);
const char *smtp_verb_name(enum smtp_verb verb);

/* RFC 5321 §4.5.3.1 limits. */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

/* MAIL FROM:<reverse-path> [SP mail-parameters] */
struct smtp_mail_args {
	char path[SMTP_PATH_MAX + 1];	/* "" for the null sender <> */
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	bool has_auth;			/* client's AUTH=: parsed, never passed on */
	char ret[8];			/* DSN RET=FULL|HDRS, "" if absent */
	char envid[SMTP_XTEXT_MAX + 1];	/* DSN ENVID= xtext, "" if absent */
};

/* RCPT TO:<forward-path> [SP rcpt-parameters] */
struct smtp_rcpt_args {
	char path[SMTP_PATH_MAX + 1];	/* "postmaster" allowed without domain */
	char notify[64];		/* DSN NOTIFY=, "" if absent */
	char orcpt[SMTP_XTEXT_MAX + 1];	/* DSN ORCPT=, "" if absent */
};

/* Result of argument parsing: the reply the session sends on error. */
struct smtp_arg_error {
	int code;		/* 501, 553, 555 */
	const char *enhanced;	/* "5.5.2", "5.1.7", "5.5.4", ... */
	const char *text;	/* human text, static */
};

/* Parse the arguments of MAIL (args as in struct smtp_cmd: "FROM:<a@b> X=Y").
 * Returns 0, or -1 with err filled. Rules:
 * - "FROM:" case-insensitive, optional spaces after the colon (clients
 *   send "MAIL FROM: <a@b>"); angle brackets required;
 * - a source route (@a,@b:user@dom) is accepted and dropped;
 * - address: dot-atom or quoted-string local part (<= 64), domain of
 *   dot-separated labels or an address literal [..] (<= 255), path <= 256;
 *   octets >= 0x80 only when SMTPUTF8 is given; errors 553 5.1.7
 *   (sender) / 553 5.1.3 (recipient) / 501 5.5.2 (syntax);
 * - parameters keyword[=value], keyword case-insensitive: SIZE=digits
 *   (501 5.5.4 if not a number), BODY=7BIT|8BITMIME, SMTPUTF8 (no value),
 *   AUTH=xtext|<> (kept only as has_auth), RET=FULL|HDRS, ENVID=xtext;
 *   an unknown or repeated parameter: 555 5.5.4. */
int smtp_parse_mail(const char *args, struct smtp_mail_args *out,
		    struct smtp_arg_error *err);
/* Same for RCPT ("TO:<a@b> NOTIFY=..."); parameters NOTIFY=NEVER or a
 * comma list of SUCCESS,FAILURE,DELAY, ORCPT=addr-type;xtext. The null
 * path <> is refused (501 5.1.3). */
int smtp_parse_rcpt(const char *args, struct smtp_rcpt_args *out,
		    struct smtp_arg_error *err);

#endif
