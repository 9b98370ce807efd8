/* The command an audit record names: the line, except that AUTH keeps
 * only its mechanism and a line that is no command we know (a base64
 * answer sent after a refused AUTH) keeps nothing. */
#include "autoconf.h"

#include <string.h>

#include "audit_cmd.h"
#include "test.h"

#define UNREC AUDIT_CMD_UNRECOGNIZED
/* A string literal as pointer and length: it may hold NULs. */
#define S(s) s, sizeof(s) - 1

static const struct {
	const char *line;
	size_t len;
	const char *want;
} cases[] = {
	{ S("RCPT TO:<bob@example.net>"), "RCPT TO:<bob@example.net>" },
	{ S("rcpt to:<bob@example.net> NOTIFY=NEVER"),
	  "rcpt to:<bob@example.net> NOTIFY=NEVER" },
	{ S("MAIL FROM:<alice@example.com> SIZE=99 AUTH=<>"),
	  "MAIL FROM:<alice@example.com> SIZE=99 AUTH=<>" },
	{ S("EHLO client.example.org"), "EHLO client.example.org" },
	{ S("DATA"), "DATA" },
	{ S("STARTTLS"), "STARTTLS" },
	/* control octets of a known command: shown, never raw */
	{ S("MAIL FROM:<a@b>\x01x"), "MAIL FROM:<a@b>?x" },
	{ S("NOOP \0hidden"), "NOOP ?hidden" },
	/* RFC 4954 §4: never the initial response */
	{ S("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), "AUTH PLAIN" },
	{ S("auth plain AGFsaWNlAHNlY3JldA=="), "AUTH PLAIN" },
	{ S("AUTH LOGIN YWxpY2U="), "AUTH LOGIN" },
	{ S("AUTH LOGIN"), "AUTH LOGIN" },
	{ S("AUTH\tPLAIN\tAGFsaWNlAHNlY3JldA=="), "AUTH PLAIN" },
	{ S("AUTH   PLAIN   AGFsaWNlAHNlY3JldA=="), "AUTH PLAIN" },
	{ S("AUTH"), "AUTH" },
	{ S("AUTH "), "AUTH" },
	/* not a mechanism name (RFC 4422 §3.1): left out */
	{ S("AUTH AGFsaWNlAHNlY3JldA=="), "AUTH" },
	{ S("AUTH ABCDEFGHIJKLMNOPQRSTU"), "AUTH" },
	{ S("AUTH ABCDEFGHIJKLMNOPQRST x"), "AUTH ABCDEFGHIJKLMNOPQRST" },
	{ S("AUTH PLAIN=x"), "AUTH" },
	{ S("AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4AQE="),
	  "AUTH XOAUTH2" },
	/* unknown: nothing of the line */
	{ S("YWxpY2U="), UNREC },
	{ S("c2VjcmV0"), UNREC },
	{ S("FOO bar"), UNREC },
	{ S(" AUTH PLAIN AGFsaWNlAHNlY3JldA=="), UNREC },
	{ S("\x01" "AUTH PLAIN AGFsaWNlAHNlY3JldA=="), UNREC },
	{ S("AUTHX PLAIN AGFsaWNlAHNlY3JldA=="), UNREC },
	{ S("MAILFROM:<a@b>"), UNREC },
	{ S(""), UNREC },
	{ S("*"), UNREC },
};

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[128];
		size_t n;

		memset(out, 'Z', sizeof(out));
		n = audit_cmd_text(cases[i].line, cases[i].len, out,
				   sizeof(out));
		CHECK_STR(out, cases[i].want, cases[i].line);
		CHECK_INT(n, strlen(cases[i].want), cases[i].line);
	}
}

/* A line longer than the room is cut, and still NUL-terminated. */
static void test_cut(void)
{
	char out[12];

	CHECK_INT(audit_cmd_text(S("RCPT TO:<bob@example.net>"), out,
				 sizeof(out)), 11, "cut length");
	CHECK_STR(out, "RCPT TO:<bo", "cut text");
	CHECK_INT(audit_cmd_text(S("AUTH PLAIN x"), out, 5), 4, "AUTH in 5");
	CHECK_STR(out, "AUTH", "AUTH in 5");
	CHECK_INT(audit_cmd_text(S("DATA"), out, 0), 0, "no room");
}

int main(void)
{
	test_table();
	test_cut();
	return test_done("test_audit_cmd");
}
