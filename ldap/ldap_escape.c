#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <ldap.h>

#include "ldap_escape.h"
#include "log.h"
#include "xalloc.h"

char *ldap_escape_filter(const char *value, size_t len)
{
	struct berval in, out = { 0, NULL };
	char *s;

	if (len == 0)
		return xstrdup("");	/* libldap returns no buffer */
	in.bv_len = len;
	in.bv_val = (char *)value;
	/* RFC 4515 §3: "The <valueencoding> rule ensures that the entire
	 * filter string is a valid UTF-8 string and provides that the
	 * octets that represent the ASCII characters "*", "(", ")", "\",
	 * and NUL are represented as a backslash followed by the two
	 * hexadecimal digits representing the value of the encoded
	 * octet." libldap escapes those and every non-printable octet. */
	if (ldap_bv2escaped_filter_value(&in, &out) != 0 || out.bv_val == NULL)
		fatal("ldap_bv2escaped_filter_value: out of memory");
	s = xstrndup(out.bv_val, out.bv_len);
	ber_memfree(out.bv_val);
	return s;
}

static bool dn_special(unsigned char c)
{
	/* RFC 4514 §2.4 escapes '"', '+', ',', ';', '<', '>' and '\';
	 * §3 allows "\=" too, and an unescaped '=' in a value confuses
	 * more parsers than it helps. */
	return strchr("\"+,;<>=\\", c) != NULL && c != '\0';
}

char *ldap_escape_dn_value(const char *value, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	/* At most three octets for each input octet, plus NUL. */
	char *out = xmalloc(3 * len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c < 0x20 || c == 0x7f) {
			/* RFC 4514 §2.4: NUL is escaped as "\00"; other
			 * control octets the same way, so none reaches the
			 * server raw. */
			out[o++] = '\\';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		} else if (dn_special(c) ||
			   /* RFC 4514 §2.4: "a space or number sign ('#')
			    * occurring at the beginning of the string" and
			    * "a space character occurring at the end". */
			   (i == 0 && (c == ' ' || c == '#')) ||
			   (i == len - 1 && c == ' ')) {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

char *ldap_expand_login(const char *tmpl, const char *value)
{
	size_t n = 0, vlen = strlen(value), len;
	const char *p;
	char *out, *o;

	for (p = tmpl; (p = strstr(p, "%u")) != NULL; p += 2)
		n++;
	len = strlen(tmpl) - 2 * n;
	if (n > 0 && vlen > ((size_t)-1 - len - 1) / n)
		fatal("ldap template expansion overflows");
	out = xmalloc(len + n * vlen + 1);
	o = out;
	for (p = tmpl; *p != '\0';) {
		if (p[0] == '%' && p[1] == 'u') {
			memcpy(o, value, vlen);
			o += vlen;
			p += 2;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}
