#include "autoconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "smtp_chars.h"
#include "smtp_param.h"

/* The next esmtp-param at *pp, after its separating spaces (RFC 5321
 * §4.1.2). Returns 1, 0 at the end of the line, -1 on bad syntax. */
int smtp_param_next(const char **pp, struct smtp_param *prm)
{
	const char *p = *pp;

	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*pp = p;
		return 0;
	}
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	if (!is_alnum(*p))
		return -1;
	prm->key = p;
	while (is_alnum(*p) || *p == '-')
		p++;
	prm->key_len = (size_t)(p - prm->key);
	prm->value = NULL;
	prm->value_len = 0;
	if (*p == '=') {
		/* esmtp-value = 1*(%d33-60 / %d62-126) */
		prm->value = ++p;
		while (*p >= 33 && *p <= 126 && *p != '=')
			p++;
		prm->value_len = (size_t)(p - prm->value);
		if (prm->value_len == 0)
			return -1;
	}
	if (*p != ' ' && *p != '\0')
		return -1;
	*pp = p;
	return 1;
}

/* Index of the parameter's keyword in names (upper case, NULL-ended),
 * or -1. */
int smtp_param_index(const struct smtp_param *prm, const char *const *names)
{
	for (int i = 0; names[i] != NULL; i++)
		if (ascii_caseeq(prm->key, prm->key_len, names[i]))
			return i;
	return -1;
}

bool smtp_param_value_is(const struct smtp_param *prm, const char *upper)
{
	return prm->value != NULL &&
	       ascii_caseeq(prm->value, prm->value_len, upper);
}

static bool is_xtext_hex(char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F');
}

/* RFC 3461 §4: xtext = *( xchar / hexchar ), xchar = "!".."~" except
 * "+" and "=", hexchar = "+" two upper-case hex digits. */
bool smtp_param_is_xtext(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			if (len - i < 3 || !is_xtext_hex(s[i + 1]) ||
			    !is_xtext_hex(s[i + 2]))
				return false;
			i += 2;
		} else if (s[i] < 33 || s[i] > 126 || s[i] == '=') {
			return false;
		}
	}
	return true;
}

/* Copies an xtext value of at most SMTP_XTEXT_MAX octets into out. */
bool smtp_param_copy_xtext(const struct smtp_param *prm, char *out)
{
	if (prm->value == NULL || prm->value_len > SMTP_XTEXT_MAX ||
	    !smtp_param_is_xtext(prm->value, prm->value_len))
		return false;
	memcpy(out, prm->value, prm->value_len);
	out[prm->value_len] = '\0';
	return true;
}

/* RFC 1870: size-value = 1*20DIGIT, here also within uint64_t. */
bool smtp_param_size(const struct smtp_param *prm, uint64_t *size)
{
	uint64_t v = 0;

	if (prm->value == NULL || prm->value_len > 20)
		return false;
	for (size_t i = 0; i < prm->value_len; i++) {
		unsigned d;

		if (!is_digit(prm->value[i]))
			return false;
		d = (unsigned)(prm->value[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*size = v;
	return true;
}

/* RFC 3461 §4.1: NOTIFY="NEVER" / 1#( "SUCCESS" / "FAILURE" /
 * "DELAY" ); stored upper case, in the client's order. */
bool smtp_param_notify(const struct smtp_param *prm, char *out, size_t size)
{
	static const char *const words[] = { "NEVER", "SUCCESS", "FAILURE",
					     "DELAY" };
	const char *p, *end;
	unsigned seen = 0;
	size_t o = 0;

	if (prm->value == NULL)
		return false;
	p = prm->value;
	end = p + prm->value_len;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma != NULL ? comma : end;
		size_t k, wlen;

		for (k = 0; k < sizeof(words) / sizeof(words[0]); k++)
			if (ascii_caseeq(p, (size_t)(item_end - p), words[k]))
				break;
		if (k == sizeof(words) / sizeof(words[0]) ||
		    (seen & (1U << k)) != 0)
			return false;
		seen |= 1U << k;
		wlen = strlen(words[k]);
		if (o + (o > 0) + wlen + 1 > size)
			return false;
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, words[k], wlen);
		o += wlen;
		out[o] = '\0';
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	/* NEVER stands alone */
	return (seen & 1U) == 0 || seen == 1U;
}

/* RFC 3461 §4.2: ORCPT=addr-type ";" xtext. */
bool smtp_param_orcpt(const struct smtp_param *prm, char *out)
{
	const char *semi;
	size_t i, type_len;

	if (prm->value == NULL)
		return false;
	semi = memchr(prm->value, ';', prm->value_len);
	if (semi == NULL)
		return false;
	type_len = (size_t)(semi - prm->value);
	if (type_len == 0 || semi + 1 == prm->value + prm->value_len)
		return false;
	for (i = 0; i < type_len; i++)
		if (!is_atext(prm->value[i]))
			return false;
	return smtp_param_copy_xtext(prm, out) &&
	       smtp_param_is_xtext(semi + 1, prm->value_len - type_len - 1);
}

