/* Characters of SMTP commands, ASCII only and locale-independent
 * (unlike ctype.h and strncasecmp): shared by the command parser
 * (smtp_cmd.c) and its parameter values (smtp_param.c). */
#ifndef AUTHRELAY_SMTP_CHARS_H
#define AUTHRELAY_SMTP_CHARS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static inline bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alnum(char c)
{
	return is_alpha(c) || is_digit(c);
}

static inline bool is_8bit(char c)
{
	return (unsigned char)c >= 0x80;
}

/* s[0..len) equals upper (written in upper case), ignoring ASCII case.
 * Locale-independent, unlike strncasecmp(). */
static inline bool ascii_caseeq(const char *s, size_t len, const char *upper)
{
	for (size_t i = 0; i < len; i++)
		if (upper[i] == '\0' || ascii_upper(s[i]) != upper[i])
			return false;
	return upper[len] == '\0';
}

/* s starts with upper, ignoring ASCII case. */
static inline bool ascii_caseprefix(const char *s, const char *upper)
{
	for (; *upper != '\0'; s++, upper++)
		if (ascii_upper(*s) != *upper)
			return false;
	return true;
}

/* RFC 5322 §3.2.3 atext. */
static inline bool is_atext(char c)
{
	return is_alnum(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

#endif
