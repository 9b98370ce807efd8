/* config_check_is_dn: RFC 4514 §3 syntax of the group DNs that
 * backend = ldap needs. */
#include "autoconf.h"

#include <stdbool.h>

#include "config_check.h"
#include "test.h"

static const struct {
	const char *dn;
	bool want;
} cases[] = {
	{ "cn=mail-senders,ou=groups,dc=example,dc=com", true },
	{ "CN=Mail Senders,OU=Groups,DC=corp,DC=example", true },
	{ "cn=sales, ou=groups, dc=example, dc=com", true },	/* spaces */
	{ "cn=a+uid=b,dc=example", true },		/* multi-valued RDN */
	{ "cn=Smith\\, John,dc=example", true },	/* escaped comma */
	{ "cn=x\\2Cy,dc=example", true },		/* hex pair */
	{ "cn=\\#hash,dc=example", true },
	{ "uid=#04024869,dc=example", true },		/* hexstring */
	{ "2.5.4.3=abc,dc=example", true },		/* numericoid */
	{ "dc=com", true },
	{ "", false },
	{ "mail-senders", false },			/* an NSS name */
	{ "cn=a,,dc=example", false },			/* empty RDN */
	{ "=a,dc=example", false },			/* no type */
	{ "c n=a", false },
	{ "cn=a;b", false },				/* unescaped ';' */
	{ "cn=a<b", false },
	{ "cn=a\"b", false },
	{ "cn=a\\", false },				/* dangling '\' */
	{ "cn=a\\q", false },				/* bad escape */
	{ "uid=#0,dc=example", false },			/* odd hex */
	{ "2.5=a", true },
	{ "2=a", false },				/* a lone number */
	{ "cn=a,", false },				/* trailing ',' */
};

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(config_check_is_dn(cases[i].dn) == cases[i].want,
		      "is_dn(\"%s\"): got %d, want %d", cases[i].dn,
		      !cases[i].want, cases[i].want);
	return test_done("test_config_check");
}
