#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include "audit_cmd.h"
#include "smtp_cmd.h"
#include "strbuf.h"

/* RFC 4422 §3.1: sasl-mech = 1*20mech-char */
#define SASL_MECH_MAX 20

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static char ascii_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static bool is_mech_char(char c)
{
	c = ascii_upper(c);
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

/* The verb line[0..vlen) by name, SMTP_VERB_UNKNOWN if none. */
static enum smtp_verb verb_of(const char *line, size_t vlen)
{
	for (int v = SMTP_VERB_HELO; v <= SMTP_VERB_ETRN; v++) {
		const char *name = smtp_verb_name((enum smtp_verb)v);
		size_t i;

		if (strlen(name) != vlen)
			continue;
		for (i = 0; i < vlen && ascii_upper(line[i]) == name[i]; i++)
			;
		if (i == vlen)
			return (enum smtp_verb)v;
	}
	return SMTP_VERB_UNKNOWN;
}

size_t audit_cmd_text(const char *line, size_t len, char *out, size_t size)
{
	struct strbuf sb;
	enum smtp_verb verb;
	size_t vlen, i, m;

	if (size == 0)
		return 0;
	strbuf_init(&sb, out, size);
	for (vlen = 0; vlen < len && !is_space(line[vlen]); vlen++)
		;
	verb = verb_of(line, vlen);
	if (verb == SMTP_VERB_UNKNOWN) {
		strbuf_add(&sb, AUDIT_CMD_UNRECOGNIZED);
		return strbuf_len(&sb);
	}
	if (verb == SMTP_VERB_AUTH) {
		/* RFC 4954 §4: AUTH mechanism [initial-response]; the
		 * response, like every line of the exchange, stays out. */
		strbuf_add(&sb, "AUTH");
		for (i = vlen; i < len && is_space(line[i]); i++)
			;
		for (m = 0; i + m < len && is_mech_char(line[i + m]); m++)
			;
		if (m > 0 && m <= SASL_MECH_MAX &&
		    (i + m == len || is_space(line[i + m]))) {
			strbuf_addc(&sb, ' ');
			for (size_t k = 0; k < m; k++)
				strbuf_addc(&sb, ascii_upper(line[i + k]));
		}
		return strbuf_len(&sb);
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		strbuf_addc(&sb, (c < 0x20 && c != '\t') || c == 0x7f ? '?'
								      : (char)c);
	}
	return strbuf_len(&sb);
}
