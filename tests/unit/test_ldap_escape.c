/* RFC 4515 filter and RFC 4514 DN value escaping of login names: every
 * name that could widen a search or add an RDN comes out as one plain
 * value. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldap_escape.h"
#include "test.h"

struct vector {
	const char *in;
	size_t len;
	const char *filter;	/* RFC 4515 */
	const char *dn;		/* RFC 4514 */
};

#define V(s, f, d) { s, sizeof(s) - 1, f, d }

static const struct vector vectors[] = {
	V("alice", "alice", "alice"),
	V("", "", ""),
	/* wildcards and filter structure */
	V("*", "\\2A", "*"),
	V("alice*", "alice\\2A", "alice*"),
	V("*alice*", "\\2Aalice\\2A", "*alice*"),
	V("alice)(uid=*", "alice\\29\\28uid=\\2A", "alice)(uid\\=*"),
	V("*)(|(uid=*", "\\2A\\29\\28|\\28uid=\\2A", "*)(|(uid\\=*"),
	V("alice)(&", "alice\\29\\28&", "alice)(&"),
	V("(", "\\28", "("),
	/* the escape character itself */
	V("alice\\", "alice\\5C", "alice\\\\"),
	V("\\", "\\5C", "\\\\"),
	V("\\2a", "\\5C2a", "\\\\2a"),
	/* NUL: cuts C strings short in a careless server */
	V("alice\0x", "alice\\00x", "alice\\00x"),
	V("\0", "\\00", "\\00"),
	/* DN structure: more RDNs, multi-valued RDNs, other branches */
	V("alice,ou=x", "alice,ou=x", "alice\\,ou\\=x"),
	V("a+uid=root", "a+uid=root", "a\\+uid\\=root"),
	V("alice,dc=evil,dc=com", "alice,dc=evil,dc=com",
	  "alice\\,dc\\=evil\\,dc\\=com"),
	V("a;b", "a;b", "a\\;b"),
	V("a\"b\"", "a\"b\"", "a\\\"b\\\""),
	V("<a>", "<a>", "\\<a\\>"),
	V("a=b", "a=b", "a\\=b"),
	/* leading '#' (a hex-encoded BER value) and leading/trailing space */
	V("#alice", "#alice", "\\#alice"),
	V("#", "#", "\\#"),
	V("a#b", "a#b", "a#b"),
	V(" alice", " alice", "\\ alice"),
	V("alice ", "alice ", "alice\\ "),
	V(" ", " ", "\\ "),
	V("  ", "  ", "\\ \\ "),
	V("a b", "a b", "a b"),
	/* control characters */
	V("a\r\nb", "a\\0D\\0Ab", "a\\0D\\0Ab"),
	V("a\x7f", "a\\7F", "a\\7F"),
	/* UTF-8: hex in a filter (libldap escapes all non-ASCII; the
	 * server matches the same octets), as it is in a DN */
	V("j\xc3\xb6rg", "j\\C3\\B6rg", "j\xc3\xb6rg"),
	V("\xe2\x82\xac", "\\E2\\82\\AC", "\xe2\x82\xac"),
};

struct expand {
	const char *tmpl;
	const char *value;
	const char *want;
};

static const struct expand expands[] = {
	{ "(uid=%u)", "alice", "(uid=alice)" },
	{ "(|(uid=%u)(mail=%u))", "bob", "(|(uid=bob)(mail=bob))" },
	{ "uid=%u,ou=people,dc=example,dc=com", "a\\,b",
	  "uid=a\\,b,ou=people,dc=example,dc=com" },
	{ "(cn=100%)(uid=%u)", "x", "(cn=100%)(uid=x)" },
	{ "%u", "", "" },
	{ "%%u", "v", "%v" },
	/* the value is not expanded again */
	{ "(uid=%u)", "%u", "(uid=%u)" },
};

int main(void)
{
	char what[128];

	for (size_t i = 0; i < sizeof(vectors) / sizeof(*vectors); i++) {
		const struct vector *v = &vectors[i];
		char *f = ldap_escape_filter(v->in, v->len);
		char *d = ldap_escape_dn_value(v->in, v->len);

		snprintf(what, sizeof(what), "filter escape of vector %zu", i);
		CHECK_STR(f, v->filter, what);
		snprintf(what, sizeof(what), "DN escape of vector %zu", i);
		CHECK_STR(d, v->dn, what);
		/* Whatever went in, no filter special survives unescaped. */
		CHECK(strpbrk(f, "()*") == NULL,
		      "vector %zu: filter escape \"%s\" holds ( ) or *", i, f);
		free(f);
		free(d);
	}
	for (size_t i = 0; i < sizeof(expands) / sizeof(*expands); i++) {
		char *got = ldap_expand_login(expands[i].tmpl,
					      expands[i].value);

		snprintf(what, sizeof(what), "expand \"%s\" with \"%s\"",
			 expands[i].tmpl, expands[i].value);
		CHECK_STR(got, expands[i].want, what);
		free(got);
	}
	return test_done("test_ldap_escape");
}
