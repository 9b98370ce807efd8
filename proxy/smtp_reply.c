#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_reply.h"

void smtp_reply_reset(struct smtp_reply *rep)
{
	rep->lines = 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "X.Y.Z " with X the class of code (RFC 3463 §2); returns its length
 * with the space, 0 if text does not start with one. */
static size_t enhanced_len(const char *text, int code)
{
	const char *p = text;

	if (*p != '0' + code / 100 || p[1] != '.')
		return 0;
	p += 2;
	for (int part = 0; part < 2; part++) {
		size_t n = 0;

		while (is_digit(p[n]) && n < 4)
			n++;
		if (n == 0 || n > 3)
			return 0;
		p += n;
		if (part == 0) {
			if (*p != '.')
				return 0;
			p++;
		}
	}
	if (*p != ' ' && *p != '\0')
		return 0;
	return (size_t)(p - text) + (*p == ' ');
}

enum smtp_reply_status smtp_reply_line(struct smtp_reply *rep,
				       const char *line, size_t len,
				       const char **text_r)
{
	const char *text;
	int code;
	char sep;

	/* RFC 5321 §4.2: Reply-code [ SP textstring ] CRLF, or
	 * Reply-code "-" [ textstring ] CRLF for all but the last line. */
	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
	    !is_digit(line[2]))
		return SMTP_REPLY_BAD;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599)
		return SMTP_REPLY_BAD;
	sep = len > 3 ? line[3] : ' ';
	if (sep != ' ' && sep != '-')
		return SMTP_REPLY_BAD;
	/* RFC 5321 §4.2.1: every line of a multiline reply has the same
	 * code. */
	if (rep->lines > 0 && code != rep->code)
		return SMTP_REPLY_BAD;
	if (++rep->lines > SMTP_REPLY_LINES)
		return SMTP_REPLY_BAD;
	text = len > 4 ? line + 4 : "";
	if (rep->lines == 1) {
		size_t e = enhanced_len(text, code), o = 0;

		rep->code = code;
		if (e > 0) {
			snprintf(rep->enhanced, sizeof(rep->enhanced), "%.*s",
				 (int)(e - (text[e - 1] == ' ')), text);
			text += e;
		} else {
			snprintf(rep->enhanced, sizeof(rep->enhanced), "%d.0.0",
				 code / 100);
		}
		/* Only printable ASCII reaches the client or the log. */
		for (; *text != '\0' && o < SMTP_REPLY_TEXT_MAX; text++)
			rep->text[o++] = (*text >= ' ' && *text <= '~') ?
					 *text : '?';
		rep->text[o] = '\0';
		text = len > 4 ? line + 4 : "";
	}
	if (text_r != NULL)
		*text_r = text;
	return sep == ' ' ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

void smtp_ehlo_keyword(const char *text, struct smtp_ehlo_caps *caps)
{
	char word[32];
	size_t n = strcspn(text, " ");

	if (n == 0 || n >= sizeof(word))
		return;
	memcpy(word, text, n);
	word[n] = '\0';
	if (strcasecmp(word, "SIZE") == 0)
		caps->size = true;
	else if (strcasecmp(word, "8BITMIME") == 0)
		caps->eightbitmime = true;
	else if (strcasecmp(word, "DSN") == 0)
		caps->dsn = true;
	else if (strcasecmp(word, "SMTPUTF8") == 0)
		caps->smtputf8 = true;
	else if (strcasecmp(word, "STARTTLS") == 0)
		caps->starttls = true;
	else if (strcasecmp(word, "XCLIENT") == 0)
		caps->xclient = true;
	else if (strcasecmp(word, "PIPELINING") == 0)
		caps->pipelining = true;
	else if (strcasecmp(word, "AUTH") == 0) {
		for (const char *p = text + n; *p != '\0';) {
			size_t m;

			p += strspn(p, " ");
			m = strcspn(p, " ");
			if (m == 5 && strncasecmp(p, "PLAIN", 5) == 0)
				caps->auth_plain = true;
			if (m == 5 && strncasecmp(p, "LOGIN", 5) == 0)
				caps->auth_login = true;
			if (m == 7 && strncasecmp(p, "XOAUTH2", 7) == 0)
				caps->auth_xoauth2 = true;
			if (m == 11 && strncasecmp(p, "OAUTHBEARER", 11) == 0)
				caps->auth_oauthbearer = true;
			p += m;
		}
	}
}
