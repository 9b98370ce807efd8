#include "autoconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtp_cmd.h"
#include "test.h"

/* --- smtp_cmd_parse --- */

struct verb_case {
	const char *line;
	size_t len;		/* 0: strlen(line) */
	int ret;
	enum smtp_verb verb;
	const char *args;
};

static const struct verb_case verb_cases[] = {
	{ "EHLO mail.example.com", 0, 0, SMTP_VERB_EHLO, "mail.example.com" },
	{ "ehlo mail.example.com", 0, 0, SMTP_VERB_EHLO, "mail.example.com" },
	{ "EhLo [192.0.2.1]", 0, 0, SMTP_VERB_EHLO, "[192.0.2.1]" },
	{ "EHLO", 0, 0, SMTP_VERB_EHLO, "" },
	{ "EHLO ", 0, 0, SMTP_VERB_EHLO, "" },
	{ "EHLO    ", 0, 0, SMTP_VERB_EHLO, "" },
	{ "HELO host", 0, 0, SMTP_VERB_HELO, "host" },
	{ "MAIL FROM:<a@b.c>", 0, 0, SMTP_VERB_MAIL, "FROM:<a@b.c>" },
	{ "mail from:<a@b.c>", 0, 0, SMTP_VERB_MAIL, "from:<a@b.c>" },
	{ "MAIL FROM: <a@b.c> SIZE=10", 0, 0, SMTP_VERB_MAIL,
	  "FROM: <a@b.c> SIZE=10" },
	{ "RCPT TO:<a@b.c>", 0, 0, SMTP_VERB_RCPT, "TO:<a@b.c>" },
	{ "DATA", 0, 0, SMTP_VERB_DATA, "" },
	{ "data", 0, 0, SMTP_VERB_DATA, "" },
	{ "RSET", 0, 0, SMTP_VERB_RSET, "" },
	{ "NOOP", 0, 0, SMTP_VERB_NOOP, "" },
	{ "NOOP   x", 0, 0, SMTP_VERB_NOOP, "x" },
	{ "NOOP x  ", 0, 0, SMTP_VERB_NOOP, "x  " },
	{ "NOOP x y", 0, 0, SMTP_VERB_NOOP, "x y" },
	{ "QUIT", 0, 0, SMTP_VERB_QUIT, "" },
	{ "VRFY alice", 0, 0, SMTP_VERB_VRFY, "alice" },
	{ "EXPN staff", 0, 0, SMTP_VERB_EXPN, "staff" },
	{ "HELP", 0, 0, SMTP_VERB_HELP, "" },
	{ "STARTTLS", 0, 0, SMTP_VERB_STARTTLS, "" },
	{ "starttls", 0, 0, SMTP_VERB_STARTTLS, "" },
	{ "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 0, 0, SMTP_VERB_AUTH,
	  "PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm" },
	{ "auth login", 0, 0, SMTP_VERB_AUTH, "login" },
	{ "BDAT 100 LAST", 0, 0, SMTP_VERB_BDAT, "100 LAST" },
	{ "ETRN example.com", 0, 0, SMTP_VERB_ETRN, "example.com" },
	/* HT is allowed but only SP ends the verb (RFC 5321 §4.1.1) */
	{ "NOOP\tx", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "EHLO\t", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "NOOP x\ty", 0, 0, SMTP_VERB_NOOP, "x\ty" },
	{ "NOOP \t", 0, 0, SMTP_VERB_NOOP, "\t" },
	/* unknown verbs are not an error here */
	{ "MAILX FROM:<a@b.c>", 0, 0, SMTP_VERB_UNKNOWN, "FROM:<a@b.c>" },
	{ "MAI", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "STARTTLSX", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "XCLIENT NAME=x", 0, 0, SMTP_VERB_UNKNOWN, "NAME=x" },
	{ "GET / HTTP/1.1", 0, 0, SMTP_VERB_UNKNOWN, "/ HTTP/1.1" },
	{ "", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ " NOOP", 0, 0, SMTP_VERB_UNKNOWN, "NOOP" },
	{ "NOOP \xc3\xa9", 0, 0, SMTP_VERB_NOOP, "\xc3\xa9" },
	{ "\xc3\x89HLO x", 0, 0, SMTP_VERB_UNKNOWN, "x" },
	/* NUL and control characters: 500 5.5.2 */
	{ "NOOP \0x", 7, -1, SMTP_VERB_UNKNOWN, "" },
	{ "\0", 1, -1, SMTP_VERB_UNKNOWN, "" },
	{ "NOOP\r", 0, -1, SMTP_VERB_UNKNOWN, "" },
	{ "NOOP\n", 0, -1, SMTP_VERB_UNKNOWN, "" },
	{ "MAIL FROM:<a@b.c>\rRCPT TO:<x@y.z>", 0, -1, SMTP_VERB_UNKNOWN,
	  "" },
	{ "\x1b[A", 0, -1, SMTP_VERB_UNKNOWN, "" },
	{ "NOOP \x01", 0, -1, SMTP_VERB_UNKNOWN, "" },
	{ "NOOP \x1f", 0, -1, SMTP_VERB_UNKNOWN, "" },
	{ "QUIT\x7f", 0, -1, SMTP_VERB_UNKNOWN, "" },
	{ "NOOP \x08", 0, -1, SMTP_VERB_UNKNOWN, "" },
};

static void test_cmd_parse(void)
{
	for (size_t i = 0; i < sizeof(verb_cases) / sizeof(verb_cases[0]);
	     i++) {
		const struct verb_case *c = &verb_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->line);
		struct smtp_cmd cmd;
		char what[80];
		int r;

		snprintf(what, sizeof(what), "case %zu \"%s\"", i, c->line);
		memset(&cmd, 0xaa, sizeof(cmd));
		r = smtp_cmd_parse(c->line, len, &cmd);
		CHECK_INT(r, c->ret, what);
		if (r == 0) {
			CHECK_INT(cmd.verb, c->verb, what);
			CHECK_STR(cmd.args, c->args, what);
		}
	}
}

static void test_verb_names(void)
{
	static const struct {
		enum smtp_verb verb;
		const char *name;
	} names[] = {
		{ SMTP_VERB_HELO, "HELO" }, { SMTP_VERB_EHLO, "EHLO" },
		{ SMTP_VERB_MAIL, "MAIL" }, { SMTP_VERB_RCPT, "RCPT" },
		{ SMTP_VERB_DATA, "DATA" }, { SMTP_VERB_RSET, "RSET" },
		{ SMTP_VERB_NOOP, "NOOP" }, { SMTP_VERB_QUIT, "QUIT" },
		{ SMTP_VERB_VRFY, "VRFY" }, { SMTP_VERB_EXPN, "EXPN" },
		{ SMTP_VERB_HELP, "HELP" },
		{ SMTP_VERB_STARTTLS, "STARTTLS" },
		{ SMTP_VERB_AUTH, "AUTH" }, { SMTP_VERB_BDAT, "BDAT" },
		{ SMTP_VERB_ETRN, "ETRN" },
		{ SMTP_VERB_UNKNOWN, "UNKNOWN" },
		{ (enum smtp_verb)999, "UNKNOWN" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct smtp_cmd cmd;

		CHECK_STR(smtp_verb_name(names[i].verb), names[i].name,
			  names[i].name);
		if (names[i].verb == SMTP_VERB_UNKNOWN ||
		    (int)names[i].verb == 999)
			continue;
		/* every name parses back to its verb */
		CHECK_INT(smtp_cmd_parse(names[i].name, strlen(names[i].name),
					 &cmd), 0, names[i].name);
		CHECK_INT(cmd.verb, names[i].verb, names[i].name);
	}
}

/* --- MAIL --- */

struct mail_case {
	const char *args;
	int code;		/* 0: accepted */
	const char *enhanced;
	const char *path;
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	bool has_auth;
	const char *ret;
	const char *envid;
};

#define MAIL_OK(a, ...) { .args = (a), .path = __VA_ARGS__ }
#define MAIL_ERR(a, c, e) { .args = (a), .code = (c), .enhanced = (e) }

static const struct mail_case mail_cases[] = {
	/* the path */
	MAIL_OK("FROM:<a@b.c>", "a@b.c"),
	MAIL_OK("from:<a@b.c>", "a@b.c"),
	MAIL_OK("From:<A.B@Example.COM>", "A.B@Example.COM"),
	MAIL_OK("FROM: <a@b.c>", "a@b.c"),
	MAIL_OK("FROM:   <a@b.c>", "a@b.c"),
	MAIL_OK("FROM:<a@b.c> ", "a@b.c"),
	MAIL_OK("FROM:<>", ""),
	MAIL_OK("FROM: <>", ""),
	MAIL_OK("FROM:<> SIZE=0", "", .has_size = true, .size = 0),
	MAIL_OK("FROM:<@r1,@r2:a@b.c>", "a@b.c"),
	MAIL_OK("FROM:<@relay.example.org:a@b.c>", "a@b.c"),
	MAIL_OK("FROM:<\"john doe\"@x.org>", "\"john doe\"@x.org"),
	MAIL_OK("FROM:<\"a\\\"b\"@x.org>", "\"a\\\"b\"@x.org"),
	MAIL_OK("FROM:<\"a>b\"@x.org>", "\"a>b\"@x.org"),
	MAIL_OK("FROM:<\"a@b\"@x.org>", "\"a@b\"@x.org"),
	MAIL_OK("FROM:<\"\"@x.org>", "\"\"@x.org"),
	MAIL_OK("FROM:<first.last+tag@sub.example.co.uk>",
		"first.last+tag@sub.example.co.uk"),
	MAIL_OK("FROM:<o'brien@example.ie>", "o'brien@example.ie"),
	MAIL_OK("FROM:<!#$%&'*+-/=?^_`{|}~@x.org>",
		"!#$%&'*+-/=?^_`{|}~@x.org"),
	MAIL_OK("FROM:<a@localhost>", "a@localhost"),
	MAIL_OK("FROM:<a@b-c.d>", "a@b-c.d"),
	MAIL_OK("FROM:<a@a--b.example>", "a@a--b.example"),
	MAIL_OK("FROM:<a@1.2.3.example>", "a@1.2.3.example"),
	MAIL_OK("FROM:<a@xn--bcher-kva.example>", "a@xn--bcher-kva.example"),
	MAIL_OK("FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]"),
	MAIL_OK("FROM:<a@[0.0.0.0]>", "a@[0.0.0.0]"),
	MAIL_OK("FROM:<a@[255.255.255.255]>", "a@[255.255.255.255]"),
	MAIL_OK("FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
	MAIL_OK("FROM:<a@[ipv6:::1]>", "a@[ipv6:::1]"),
	MAIL_OK("FROM:<a@[IPv6:::ffff:192.0.2.1]>",
		"a@[IPv6:::ffff:192.0.2.1]"),
	/* parameters */
	MAIL_OK("FROM:<a@b.c> SIZE=1000 BODY=8BITMIME", "a@b.c",
		.has_size = true, .size = 1000, .body = SMTP_BODY_8BITMIME),
	MAIL_OK("FROM:<a@b.c> size=1000 body=8bitmime", "a@b.c",
		.has_size = true, .size = 1000, .body = SMTP_BODY_8BITMIME),
	MAIL_OK("FROM:<a@b.c>  SIZE=1   BODY=7BIT  ", "a@b.c",
		.has_size = true, .size = 1, .body = SMTP_BODY_7BIT),
	MAIL_OK("FROM:<a@b.c> SIZE=18446744073709551615", "a@b.c",
		.has_size = true, .size = UINT64_MAX),
	MAIL_OK("FROM:<a@b.c> SIZE=00000000000000000001", "a@b.c",
		.has_size = true, .size = 1),
	MAIL_OK("FROM:<a@b.c> SMTPUTF8", "a@b.c", .smtputf8 = true),
	MAIL_OK("FROM:<a@b.c> smtputf8 BODY=8BITMIME", "a@b.c",
		.smtputf8 = true, .body = SMTP_BODY_8BITMIME),
	MAIL_OK("FROM:<a@b.c> AUTH=<>", "a@b.c", .has_auth = true),
	MAIL_OK("FROM:<a@b.c> AUTH=user+40example.com", "a@b.c",
		.has_auth = true),
	MAIL_OK("FROM:<a@b.c> auth=user@example.com", "a@b.c",
		.has_auth = true),
	MAIL_OK("FROM:<a@b.c> RET=FULL", "a@b.c", .ret = "FULL"),
	MAIL_OK("FROM:<a@b.c> ret=hdrs", "a@b.c", .ret = "HDRS"),
	MAIL_OK("FROM:<a@b.c> ENVID=QQ314159", "a@b.c", .envid = "QQ314159"),
	MAIL_OK("FROM:<a@b.c> ENVID=a+2Bb+3Dc", "a@b.c",
		.envid = "a+2Bb+3Dc"),
	MAIL_OK("FROM:<a@b.c> RET=HDRS ENVID=x SIZE=5 BODY=7BIT AUTH=<> "
		"SMTPUTF8", "a@b.c", .ret = "HDRS", .envid = "x",
		.has_size = true, .size = 5, .body = SMTP_BODY_7BIT,
		.has_auth = true, .smtputf8 = true),
	/* UTF-8 only with SMTPUTF8 (RFC 6531) */
	MAIL_OK("FROM:<j\xc3\xbcrgen@example.com> SMTPUTF8",
		"j\xc3\xbcrgen@example.com", .smtputf8 = true),
	MAIL_OK("FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
		"\xe5\xb9\xbf\xe5\x91\x8a> SMTPUTF8",
		"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
		"\xe5\xb9\xbf\xe5\x91\x8a", .smtputf8 = true),
	MAIL_OK("FROM:<\"j\xc3\xbc rgen\"@example.com> SMTPUTF8",
		"\"j\xc3\xbc rgen\"@example.com", .smtputf8 = true),
	MAIL_OK("FROM:<a\xf0\x9f\x98\x80@example.com> SMTPUTF8",
		"a\xf0\x9f\x98\x80@example.com", .smtputf8 = true),
	MAIL_ERR("FROM:<j\xc3\xbcrgen@example.com>", 553, "5.6.7"),
	MAIL_ERR("FROM:<a@b\xc3\xbc" "cher.example>", 553, "5.6.7"),
	MAIL_ERR("FROM:<j\xc3\xbcrgen@example.com> SIZE=1", 553, "5.6.7"),
	MAIL_ERR("FROM:<\xff@x.org> SMTPUTF8", 553, "5.1.7"),
	MAIL_ERR("FROM:<\xc3@x.org> SMTPUTF8", 553, "5.1.7"),
	MAIL_ERR("FROM:<\xc0\xaf@x.org> SMTPUTF8", 553, "5.1.7"),
	MAIL_ERR("FROM:<\xe0\x80\xaf@x.org> SMTPUTF8", 553, "5.1.7"),
	MAIL_ERR("FROM:<\xed\xa0\x80@x.org> SMTPUTF8", 553, "5.1.7"),
	MAIL_ERR("FROM:<\xf4\x90\x80\x80@x.org> SMTPUTF8", 553, "5.1.7"),
	MAIL_ERR("FROM:<\xe4\xf6@x.org> SMTPUTF8", 553, "5.1.7"),
	/* syntax: 501 5.5.2 */
	MAIL_ERR("", 501, "5.5.2"),
	MAIL_ERR("FROM:", 501, "5.5.2"),
	MAIL_ERR("FROM: ", 501, "5.5.2"),
	MAIL_ERR("FROM:a@b.c", 501, "5.5.2"),
	MAIL_ERR("FROM: a@b.c", 501, "5.5.2"),
	MAIL_ERR("FROM:<a@b.c", 501, "5.5.2"),
	MAIL_ERR("FROM:a@b.c>", 501, "5.5.2"),
	MAIL_ERR("FROM <a@b.c>", 501, "5.5.2"),
	MAIL_ERR("FROM :<a@b.c>", 501, "5.5.2"),
	MAIL_ERR("FROM;<a@b.c>", 501, "5.5.2"),
	MAIL_ERR("<a@b.c>", 501, "5.5.2"),
	MAIL_ERR("TO:<a@b.c>", 501, "5.5.2"),
	MAIL_ERR("FROMA:<a@b.c>", 501, "5.5.2"),
	MAIL_ERR("FROM:<a@b.c>junk", 501, "5.5.2"),
	MAIL_ERR("FROM:<a@b.c><d@e.f>", 501, "5.5.2"),
	MAIL_ERR("FROM:<\"unterminated@x.org>", 501, "5.5.2"),
	MAIL_ERR("FROM:\t<a@b.c>", 501, "5.5.2"),
	/* bad sender address: 553 5.1.7 */
	MAIL_ERR("FROM:<a>", 553, "5.1.7"),
	MAIL_ERR("FROM:<postmaster>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@>", 553, "5.1.7"),
	MAIL_ERR("FROM:<@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@b@c.d>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@b..c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@.b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@b.c.>", 553, "5.1.7"),
	MAIL_ERR("FROM:<.a@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a.@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a..b@c.d>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a b@c.d>", 553, "5.1.7"),
	MAIL_ERR("FROM:< a@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@b.c >", 553, "5.1.7"),
	MAIL_ERR("FROM:<a(comment)@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a,b@c.d>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a\\b@c.d>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@-b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@b-.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@b_c.d>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@b.c:25>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[192.0.2.256]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[192.0.2]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[192.0.2.1.5]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[192.0.2.0001]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[192.0.2.1>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[192.0.2.1]x>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[IPv6:2001:db8::g]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[IPv6:fe80::1%eth0]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[IPv6:]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[2001:db8::1]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<a@[x-tag:stuff]>", 553, "5.1.7"),
	MAIL_ERR("FROM:<\"a\"b@x.org>", 553, "5.1.7"),
	MAIL_ERR("FROM:<\"a\\\xc3\xa9\"@x.org> SMTPUTF8", 553, "5.1.7"),
	MAIL_ERR("FROM:<@r1:>", 553, "5.1.7"),
	MAIL_ERR("FROM:<@r1,a@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<@r1;@r2:a@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<@:a@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<@r1,:a@b.c>", 553, "5.1.7"),
	MAIL_ERR("FROM:<@[192.0.2.1]:a@b.c>", 553, "5.1.7"),
	/* parameters: unknown or repeated 555 5.5.4, bad value 501 5.5.4 */
	MAIL_ERR("FROM:<a@b.c> junk", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b> junk", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> X-FOO=1", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> NOTIFY=NEVER", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> ORCPT=rfc822;a@b.c", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=1 SIZE=2", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> BODY=7BIT body=8BITMIME", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SMTPUTF8 SMTPUTF8", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> AUTH=<> AUTH=<>", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> RET=FULL RET=HDRS", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> ENVID=a ENVID=a", 555, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=abc", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=99999999999999999999999", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=18446744073709551616", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=000000000000000000001", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=-1", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=+1", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=1e6", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> BODY=BINARYMIME", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> BODY=8BIT", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> BODY", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SMTPUTF8=yes", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> AUTH", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> AUTH=a+4", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> AUTH=a+zz", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> AUTH=a+4a", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> RET=BOTH", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> RET", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> ENVID", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> ENVID=a+2b", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> ENVID=a=b", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> =x", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> -X=1", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SI_ZE=1", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=1\t", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> ENVID=\xc3\xa9 SMTPUTF8", 501, "5.5.4"),
	MAIL_ERR("FROM:<a@b.c> SIZE=1 j@nk", 501, "5.5.4"),
};

static void check_mail(const char *what, const char *args,
		       const struct mail_case *want)
{
	struct smtp_mail_args out;
	struct smtp_arg_error err;
	int r;

	memset(&out, 0xaa, sizeof(out));
	memset(&err, 0xaa, sizeof(err));
	r = smtp_parse_mail(args, &out, &err);
	CHECK_INT(r, want->code == 0 ? 0 : -1, what);
	if (want->code != 0) {
		if (r == 0)
			return;
		CHECK_INT(err.code, want->code, what);
		CHECK_STR(err.enhanced, want->enhanced, what);
		CHECK(err.text != NULL && err.text[0] != '\0',
		      "%s: no reply text", what);
		CHECK_STR(out.path, "", what);
		return;
	}
	if (r != 0) {
		fprintf(stderr, "  (%s: got %d %s %s)\n", what, err.code,
			err.enhanced, err.text);
		return;
	}
	CHECK_INT(err.code, 0, what);
	CHECK_STR(out.path, want->path, what);
	CHECK_INT(out.has_size, want->has_size, what);
	CHECK_INT(out.size, want->size, what);
	CHECK_INT(out.body, want->body, what);
	CHECK_INT(out.smtputf8, want->smtputf8, what);
	CHECK_INT(out.has_auth, want->has_auth, what);
	CHECK_STR(out.ret, want->ret != NULL ? want->ret : "", what);
	CHECK_STR(out.envid, want->envid != NULL ? want->envid : "", what);
}

static void test_mail_table(void)
{
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]);
	     i++) {
		char what[600];

		snprintf(what, sizeof(what), "MAIL \"%s\"", mail_cases[i].args);
		check_mail(what, mail_cases[i].args, &mail_cases[i]);
	}
}

/* --- RCPT --- */

struct rcpt_case {
	const char *args;
	int code;
	const char *enhanced;
	const char *path;
	const char *notify;
	const char *orcpt;
};

#define RCPT_OK(a, ...) { .args = (a), .path = __VA_ARGS__ }
#define RCPT_ERR(a, c, e) { .args = (a), .code = (c), .enhanced = (e) }

static const struct rcpt_case rcpt_cases[] = {
	RCPT_OK("TO:<a@b.c>", "a@b.c"),
	RCPT_OK("to:<a@b.c>", "a@b.c"),
	RCPT_OK("To: <a@b.c>", "a@b.c"),
	RCPT_OK("TO:<a@b.c>   ", "a@b.c"),
	RCPT_OK("TO:<postmaster>", "postmaster"),
	RCPT_OK("TO:<PostMaster>", "PostMaster"),
	RCPT_OK("TO: <postmaster> NOTIFY=NEVER", "postmaster",
		.notify = "NEVER"),
	RCPT_OK("TO:<postmaster@example.com>", "postmaster@example.com"),
	RCPT_OK("TO:<@r1,@r2:a@b.c>", "a@b.c"),
	RCPT_OK("TO:<\"john doe\"@x.org>", "\"john doe\"@x.org"),
	RCPT_OK("TO:<a@[192.0.2.1]>", "a@[192.0.2.1]"),
	RCPT_OK("TO:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
	/* non-ASCII: allowed here, the session checks the transaction's
	 * SMTPUTF8 (see smtp_cmd.c) */
	RCPT_OK("TO:<j\xc3\xbcrgen@example.com>", "j\xc3\xbcrgen@example.com"),
	/* DSN, RFC 3461 */
	RCPT_OK("TO:<a@b.c> NOTIFY=SUCCESS,FAILURE", "a@b.c",
		.notify = "SUCCESS,FAILURE"),
	RCPT_OK("TO:<a@b.c> NOTIFY=NEVER", "a@b.c", .notify = "NEVER"),
	RCPT_OK("TO:<a@b.c> notify=never", "a@b.c", .notify = "NEVER"),
	RCPT_OK("TO:<a@b.c> NOTIFY=delay,Failure,SUCCESS", "a@b.c",
		.notify = "DELAY,FAILURE,SUCCESS"),
	RCPT_OK("TO:<a@b.c> NOTIFY=DELAY", "a@b.c", .notify = "DELAY"),
	RCPT_OK("TO:<a@b.c> ORCPT=rfc822;a@b", "a@b.c",
		.orcpt = "rfc822;a@b"),
	RCPT_OK("TO:<a@b.c> ORCPT=rfc822;a+40b+2Bc@d", "a@b.c",
		.orcpt = "rfc822;a+40b+2Bc@d"),
	RCPT_OK("TO:<a@b.c> NOTIFY=SUCCESS ORCPT=rfc822;a@b.c", "a@b.c",
		.notify = "SUCCESS", .orcpt = "rfc822;a@b.c"),
	RCPT_OK("TO:<a@b.c> ORCPT=RFC822;x@y NOTIFY=FAILURE,DELAY", "a@b.c",
		.notify = "FAILURE,DELAY", .orcpt = "RFC822;x@y"),
	/* the null path is refused */
	RCPT_ERR("TO:<>", 501, "5.1.3"),
	RCPT_ERR("TO: <>", 501, "5.1.3"),
	RCPT_ERR("TO:<> NOTIFY=NEVER", 501, "5.1.3"),
	/* syntax */
	RCPT_ERR("", 501, "5.5.2"),
	RCPT_ERR("TO:", 501, "5.5.2"),
	RCPT_ERR("TO:a@b.c", 501, "5.5.2"),
	RCPT_ERR("TO:<a@b.c", 501, "5.5.2"),
	RCPT_ERR("TO <a@b.c>", 501, "5.5.2"),
	RCPT_ERR("FROM:<a@b.c>", 501, "5.5.2"),
	RCPT_ERR("TO:<a@b.c>junk", 501, "5.5.2"),
	/* bad recipient address: 553 5.1.3 */
	RCPT_ERR("TO:<a>", 553, "5.1.3"),
	RCPT_ERR("TO:<postmasterx>", 553, "5.1.3"),
	RCPT_ERR("TO:<postmaster.x>", 553, "5.1.3"),
	RCPT_ERR("TO:<@r1:postmaster>", 553, "5.1.3"),
	RCPT_ERR("TO:<a@b..c>", 553, "5.1.3"),
	RCPT_ERR("TO:<a@@b.c>", 553, "5.1.3"),
	RCPT_ERR("TO:<a@[300.0.0.1]>", 553, "5.1.3"),
	RCPT_ERR("TO:<\xff@x.org>", 553, "5.1.3"),
	/* parameters */
	RCPT_ERR("TO:<a@b.c> junk", 555, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> SIZE=1", 555, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> BODY=8BITMIME", 555, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=NEVER NOTIFY=NEVER", 555, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", 555,
		 "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=SUCCESS,NEVER", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=SUCCESS,SUCCESS", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=SUCCESS,", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=,SUCCESS", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=SUCCESS,,FAILURE", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=ALWAYS", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> NOTIFY=SUCCESS FAILURE", 555, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT=rfc822", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT=;a@b", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT=rfc822;", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT=rfc822;a+4", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT=rfc822;a+4g", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT=rfc(822);a@b", 501, "5.5.4"),
	RCPT_ERR("TO:<a@b.c> ORCPT", 501, "5.5.4"),
};

static void check_rcpt(const char *what, const char *args,
		       const struct rcpt_case *want)
{
	struct smtp_rcpt_args out;
	struct smtp_arg_error err;
	int r;

	memset(&out, 0xaa, sizeof(out));
	memset(&err, 0xaa, sizeof(err));
	r = smtp_parse_rcpt(args, &out, &err);
	CHECK_INT(r, want->code == 0 ? 0 : -1, what);
	if (want->code != 0) {
		if (r == 0)
			return;
		CHECK_INT(err.code, want->code, what);
		CHECK_STR(err.enhanced, want->enhanced, what);
		CHECK(err.text != NULL && err.text[0] != '\0',
		      "%s: no reply text", what);
		CHECK_STR(out.path, "", what);
		return;
	}
	if (r != 0) {
		fprintf(stderr, "  (%s: got %d %s %s)\n", what, err.code,
			err.enhanced, err.text);
		return;
	}
	CHECK_INT(err.code, 0, what);
	CHECK_STR(out.path, want->path, what);
	CHECK_STR(out.notify, want->notify != NULL ? want->notify : "", what);
	CHECK_STR(out.orcpt, want->orcpt != NULL ? want->orcpt : "", what);
}

static void test_rcpt_table(void)
{
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]);
	     i++) {
		char what[600];

		snprintf(what, sizeof(what), "RCPT \"%s\"", rcpt_cases[i].args);
		check_rcpt(what, rcpt_cases[i].args, &rcpt_cases[i]);
	}
}

/* --- limits (RFC 5321 §4.5.3.1, RFC 3461) --- */

/* Writes n octets of c at p, every 63rd a '.' when dots is set (so a
 * domain is made of legal labels of up to 62 octets); returns the end. */
static char *fill(char *p, size_t n, char c, bool dots)
{
	for (size_t i = 0; i < n; i++)
		*p++ = dots && i % 63 == 62 && i + 1 < n ? '.' : c;
	return p;
}

/* "FROM:<" local "@" domain ">" suffix, or the RCPT form. */
static void build(char *buf, bool rcpt, size_t local, size_t domain,
		  const char *suffix)
{
	char *p = buf;

	p += sprintf(p, "%s<", rcpt ? "TO:" : "FROM:");
	p = fill(p, local, 'l', false);
	*p++ = '@';
	p = fill(p, domain, 'd', true);
	sprintf(p, ">%s", suffix);
}

static void test_limits(void)
{
	static const struct {
		const char *what;
		size_t local, domain;
		int code;
	} cases[] = {
		{ "local part 64", 64, 10, 0 },
		{ "local part 65", 65, 10, 553 },
		{ "domain 254, path 256", 1, 254, 0 },
		{ "domain 255, path 257", 1, 255, 553 },
		{ "domain 256", 1, 256, 553 },
		{ "local 64, domain 191, path 256", 64, 191, 0 },
		{ "local 64, domain 192, path 257", 64, 192, 553 },
	};
	static char buf[2048];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int rcpt = 0; rcpt <= 1; rcpt++) {
			char want_path[SMTP_PATH_MAX * 2];
			char *p = want_path;
			char what[80];

			build(buf, rcpt, cases[i].local, cases[i].domain, "");
			p = fill(p, cases[i].local, 'l', false);
			*p++ = '@';
			p = fill(p, cases[i].domain, 'd', true);
			*p = '\0';
			snprintf(what, sizeof(what), "%s %s",
				 rcpt ? "RCPT" : "MAIL", cases[i].what);
			if (rcpt) {
				struct rcpt_case want = {
					.code = cases[i].code,
					.enhanced = "5.1.3",
					.path = want_path,
				};

				check_rcpt(what, buf, &want);
			} else {
				struct mail_case want = {
					.code = cases[i].code,
					.enhanced = "5.1.7",
					.path = want_path,
				};

				check_mail(what, buf, &want);
			}
		}
	}

	/* a source route's domains are bounded too, though dropped */
	for (size_t n = 255; n <= 256; n++) {
		struct mail_case want = {
			.code = n == 255 ? 0 : 553,
			.enhanced = "5.1.7",
			.path = "a@b.c",
		};
		char *p = buf + sprintf(buf, "FROM:<@");

		strcpy(fill(p, n, 'r', true), ":a@b.c>");
		check_mail(n == 255 ? "route domain 255" : "route domain 256",
			   buf, &want);
	}

	/* a domain label is at most 63 octets (RFC 1035 §2.3.4) */
	for (size_t n = 63; n <= 64; n++) {
		char path[100];
		struct mail_case want = {
			.code = n == 63 ? 0 : 553,
			.enhanced = "5.1.7",
			.path = path,
		};

		snprintf(path, sizeof(path), "a@");
		strcpy(fill(path + 2, n, 'x', false), ".example");
		snprintf(buf, sizeof(buf), "FROM:<%s>", path);
		check_mail(n == 63 ? "63-octet label" : "64-octet label", buf,
			   &want);
	}
}

static void test_xtext_limits(void)
{
	static char buf[2048], value[SMTP_XTEXT_MAX + 2];
	struct mail_case mwant = { 0 };
	struct rcpt_case rwant = { 0 };

	memset(value, 'e', SMTP_XTEXT_MAX);
	value[SMTP_XTEXT_MAX] = '\0';
	snprintf(buf, sizeof(buf), "FROM:<a@b.c> ENVID=%s", value);
	mwant.path = "a@b.c";
	mwant.envid = value;
	check_mail("ENVID at SMTP_XTEXT_MAX", buf, &mwant);

	snprintf(buf, sizeof(buf), "FROM:<a@b.c> ENVID=%se", value);
	mwant.code = 501;
	mwant.enhanced = "5.5.4";
	check_mail("ENVID over SMTP_XTEXT_MAX", buf, &mwant);

	memcpy(value, "rfc822;", 7);
	snprintf(buf, sizeof(buf), "TO:<a@b.c> ORCPT=%s", value);
	rwant.path = "a@b.c";
	rwant.orcpt = value;
	check_rcpt("ORCPT at SMTP_XTEXT_MAX", buf, &rwant);

	snprintf(buf, sizeof(buf), "TO:<a@b.c> ORCPT=%se", value);
	rwant.code = 501;
	rwant.enhanced = "5.5.4";
	check_rcpt("ORCPT over SMTP_XTEXT_MAX", buf, &rwant);
}

int main(void)
{
	test_cmd_parse();
	test_verb_names();
	test_mail_table();
	test_rcpt_table();
	test_limits();
	test_xtext_limits();
	return test_done("test_smtp_cmd");
}
