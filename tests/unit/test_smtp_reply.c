#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "smtp_reply.h"
#include "test.h"

/* Feed the lines of one reply; return the last status and fill rep. */
static enum smtp_reply_status feed(const char *const *lines,
				   struct smtp_reply *rep)
{
	enum smtp_reply_status st = SMTP_REPLY_BAD;

	smtp_reply_reset(rep);
	for (size_t i = 0; lines[i] != NULL; i++) {
		st = smtp_reply_line(rep, lines[i], strlen(lines[i]), NULL);
		if (st != SMTP_REPLY_MORE)
			break;
	}
	return st;
}

static const char *status_name(enum smtp_reply_status st)
{
	return st == SMTP_REPLY_DONE ? "DONE" : st == SMTP_REPLY_MORE ?
	       "MORE" : "BAD";
}

static void test_lines(void)
{
	static const struct {
		const char *name;
		const char *lines[4];
		enum smtp_reply_status want;
		int code;
		const char *enhanced, *text;
	} cases[] = {
		{ "plain", { "250 OK", NULL }, SMTP_REPLY_DONE, 250, "2.0.0", "OK" },
		{ "enhanced code", { "250 2.1.5 Ok", NULL }, SMTP_REPLY_DONE,
		  250, "2.1.5", "Ok" },
		{ "enhanced code alone", { "550 5.7.1", NULL }, SMTP_REPLY_DONE,
		  550, "5.7.1", "" },
		{ "code alone", { "354", NULL }, SMTP_REPLY_DONE, 354, "3.0.0", "" },
		{ "enhanced of another class is text",
		  { "550 4.1.1 x", NULL }, SMTP_REPLY_DONE, 550, "5.0.0",
		  "4.1.1 x" },
		{ "enhanced part too long is text",
		  { "250 2.1234.5 x", NULL }, SMTP_REPLY_DONE, 250, "2.0.0",
		  "2.1234.5 x" },
		{ "multiline keeps the first text",
		  { "250-mx.example.org", "250-SIZE 100", "250 AUTH PLAIN", NULL },
		  SMTP_REPLY_DONE, 250, "2.0.0", "mx.example.org" },
		{ "control octets become ?", { "421 a\tb\x7f\x80", NULL },
		  SMTP_REPLY_DONE, 421, "4.0.0", "a?b??" },
		{ "codes must agree", { "250-a", "251 b", NULL }, SMTP_REPLY_BAD,
		  0, NULL, NULL },
		{ "code below 200", { "199 x", NULL }, SMTP_REPLY_BAD, 0, NULL, NULL },
		{ "code above 599", { "600 x", NULL }, SMTP_REPLY_BAD, 0, NULL, NULL },
		{ "two digits", { "25", NULL }, SMTP_REPLY_BAD, 0, NULL, NULL },
		{ "not digits", { "2x0 y", NULL }, SMTP_REPLY_BAD, 0, NULL, NULL },
		{ "bad separator", { "250x", NULL }, SMTP_REPLY_BAD, 0, NULL, NULL },
		{ "empty line", { "", NULL }, SMTP_REPLY_BAD, 0, NULL, NULL },
	};
	struct smtp_reply rep;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum smtp_reply_status st = feed(cases[i].lines, &rep);

		CHECK(st == cases[i].want, "%s: got %s, want %s", cases[i].name,
		      status_name(st), status_name(cases[i].want));
		if (st != SMTP_REPLY_DONE || cases[i].want != SMTP_REPLY_DONE)
			continue;
		CHECK_INT(rep.code, cases[i].code, cases[i].name);
		CHECK_STR(rep.enhanced, cases[i].enhanced, cases[i].name);
		CHECK_STR(rep.text, cases[i].text, cases[i].name);
	}
}

static void test_limits(void)
{
	struct smtp_reply rep;
	char line[600];
	const char *text = NULL;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	unsigned i;

	/* At most SMTP_REPLY_LINES lines. */
	smtp_reply_reset(&rep);
	for (i = 1; i <= SMTP_REPLY_LINES && st == SMTP_REPLY_MORE; i++)
		st = smtp_reply_line(&rep, "250-x", 5, NULL);
	CHECK(st == SMTP_REPLY_MORE, "line %u of %d: got %s, want MORE",
	      i - 1, SMTP_REPLY_LINES, status_name(st));
	st = smtp_reply_line(&rep, "250 x", 5, NULL);
	CHECK(st == SMTP_REPLY_BAD, "line %d: got %s, want BAD",
	      SMTP_REPLY_LINES + 1, status_name(st));

	/* The text is cut at SMTP_REPLY_TEXT_MAX. */
	memset(line, 'a', 510);
	memcpy(line, "250 ", 4);
	line[510] = '\0';
	smtp_reply_reset(&rep);
	st = smtp_reply_line(&rep, line, 510, &text);
	CHECK(st == SMTP_REPLY_DONE, "long line: got %s", status_name(st));
	CHECK_INT(strlen(rep.text), SMTP_REPLY_TEXT_MAX, "long line text");
	CHECK(text == line + 4, "text_r: got offset %td, want 4", text - line);

	/* A reset starts a new reply: another code is fine then. */
	smtp_reply_reset(&rep);
	CHECK(smtp_reply_line(&rep, "220 hi", 6, NULL) == SMTP_REPLY_DONE,
	      "greeting");
	smtp_reply_reset(&rep);
	CHECK(smtp_reply_line(&rep, "250 ok", 6, NULL) == SMTP_REPLY_DONE &&
	      rep.code == 250, "after reset: got %d, want 250", rep.code);
}

static void test_ehlo(void)
{
	static const struct {
		const char *line;
		const char *want;	/* letters of the caps set */
	} cases[] = {
		{ "SIZE 10240000", "S" },
		{ "8bitmime", "8" },
		{ "DSN", "D" },
		{ "SMTPUTF8", "U" },
		{ "STARTTLS", "T" },
		{ "XCLIENT NAME ADDR LOGIN", "X" },
		{ "AUTH PLAIN LOGIN", "PL" },
		{ "auth  login   cram-md5", "L" },
		{ "AUTH=PLAIN LOGIN", "" },
		{ "AUTH PLAINX LOGINS", "" },
		{ "AUTH LOGIN PLAIN XOAUTH2", "PLx" },
		{ "AUTH XOAUTH2 OAUTHBEARER", "xo" },
		{ "AUTH XOAUTH OAUTHBEARERS", "" },
		{ "STARTTLSX", "" },
		{ "", "" },
		{ " SIZE", "" },
		{ "AVERYLONGKEYWORDTHATISLONGERTHANTHIRTYONE", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_ehlo_caps c;
		char got[16];
		size_t o = 0;

		memset(&c, 0, sizeof(c));
		smtp_ehlo_keyword(cases[i].line, &c);
		if (c.size) got[o++] = 'S';
		if (c.eightbitmime) got[o++] = '8';
		if (c.dsn) got[o++] = 'D';
		if (c.smtputf8) got[o++] = 'U';
		if (c.starttls) got[o++] = 'T';
		if (c.xclient) got[o++] = 'X';
		if (c.auth_plain) got[o++] = 'P';
		if (c.auth_login) got[o++] = 'L';
		if (c.auth_xoauth2) got[o++] = 'x';
		if (c.auth_oauthbearer) got[o++] = 'o';
		got[o] = '\0';
		CHECK_STR(got, cases[i].want, cases[i].line);
	}
}

int main(void)
{
	test_lines();
	test_limits();
	test_ehlo();
	return test_done("test_smtp_reply");
}
