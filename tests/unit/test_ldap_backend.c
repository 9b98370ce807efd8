/* The LDAP backend's parsing: Active Directory bind sub-codes, the
 * attribute a login name is matched against, sender addresses from
 * address_attributes (AD proxyAddresses included). */
#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldap_backend.h"
#include "test.h"

struct ad_case {
	const char *diag;
	const char *meaning;	/* NULL: none */
	const char *code;
};

#define AD(code) "80090308: LdapErr: DSID-0C09044E, comment: " \
	"AcceptSecurityContext error, data " code ", v4563"

static const struct ad_case ad_cases[] = {
	{ AD("52e"), "invalid credentials", "52e" },
	{ AD("525"), "user not found", "525" },
	{ AD("530"), "not permitted to log on at this time", "530" },
	{ AD("531"), "not permitted to log on at this workstation", "531" },
	{ AD("532"), "password expired", "532" },
	{ AD("533"), "account disabled", "533" },
	{ AD("701"), "account expired", "701" },
	{ AD("773"), "user must reset password", "773" },
	{ AD("775"), "account locked out", "775" },
	{ AD("52E"), "invalid credentials", "52e" },
	/* unknown or malformed codes: no meaning */
	{ AD("999"), NULL, "999" },
	{ AD("52ef"), NULL, "" },
	{ AD("5"), NULL, "" },
	{ "data 52e", "invalid credentials", "52e" },
	{ "metadata 1 data 775,", "account locked out", "775" },
	{ "", NULL, "" },
	/* OpenLDAP's messages carry none */
	{ "invalid credentials", NULL, "" },
};

struct attr_case {
	const char *tmpl;
	const char *want;	/* NULL: none */
};

static const struct attr_case attr_cases[] = {
	{ "(&(objectClass=inetOrgPerson)(uid=%u))", "uid" },
	{ "(&(objectClass=user)(sAMAccountName=%u))", "sAMAccountName" },
	{ "(uid=%u)", "uid" },
	{ "uid=%u,ou=people,dc=example,dc=com", "uid" },
	{ "cn=%u,cn=Users,dc=corp,dc=example", "cn" },
	{ "(|(uid=%u)(mail=%u))", "uid" },
	{ "(uid:caseExactMatch:=%u)", "uid" },
	{ "(uid:dn:2.5.13.5:=%u)", "uid" },
	{ "(cn~=%u)", "cn" },
	{ "(userPrincipalName;x-opt=%u)", "userPrincipalName" },
	{ "(0.9.2342.19200300.100.1.1=%u)", "0.9.2342.19200300.100.1.1" },
	/* %u not after "attr=": none, or the next one that is */
	{ "(cn=*%u*)", NULL },
	{ "(cn=*%u*)(mail=%u)", "mail" },
	{ "%u", NULL },
	{ "(=%u)", NULL },
};

struct addr_case {
	const char *attr;
	const char *val;
	const char *want;	/* NULL: not an address */
	bool primary;
};

static const struct addr_case addr_cases[] = {
	{ "mail", "alice@example.com", "alice@example.com", false },
	{ "mailAlternateAddress", "a.l@example.org", "a.l@example.org",
	  false },
	{ "mail", "no-at-sign", NULL, false },
	{ "mail", "", NULL, false },
	{ "mail", "a b@example.com", NULL, false },
	{ "mail", "<a@example.com>", NULL, false },
	{ "mail", "a@example.com\r\nBcc: x@y", NULL, false },
	{ "proxyAddresses", "SMTP:alice@corp.example", "alice@corp.example",
	  true },
	{ "proxyAddresses", "smtp:al@corp.example", "al@corp.example",
	  false },
	{ "proxyaddresses", "Smtp:x@corp.example", "x@corp.example", false },
	{ "proxyAddresses", "X400:c=US;a= ;p=Corp;o=Ex;s=Alice;", NULL,
	  false },
	{ "proxyAddresses", "SIP:alice@corp.example", NULL, false },
	{ "proxyAddresses", "alice@corp.example", NULL, false },
	{ "proxyAddresses", "smtp:", NULL, false },
	/* only proxyAddresses has prefixes */
	{ "mail", "SMTP:alice@corp.example", "SMTP:alice@corp.example",
	  false },
};

int main(void)
{
	char what[160];

	for (size_t i = 0; i < sizeof(ad_cases) / sizeof(*ad_cases); i++) {
		char code[4];
		const char *got = ldap_ad_bind_reason(ad_cases[i].diag, code);

		snprintf(what, sizeof(what), "AD meaning of \"%s\"",
			 ad_cases[i].diag);
		CHECK_STR(got, ad_cases[i].meaning, what);
		snprintf(what, sizeof(what), "AD code of \"%s\"",
			 ad_cases[i].diag);
		CHECK_STR(code, ad_cases[i].code, what);
	}
	for (size_t i = 0; i < sizeof(attr_cases) / sizeof(*attr_cases);
	     i++) {
		char *got = ldap_login_attribute(attr_cases[i].tmpl);

		snprintf(what, sizeof(what), "login attribute of \"%s\"",
			 attr_cases[i].tmpl);
		CHECK_STR(got, attr_cases[i].want, what);
		free(got);
	}
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(*addr_cases);
	     i++) {
		const struct addr_case *c = &addr_cases[i];
		const char *a = NULL;
		size_t len = 0;
		bool primary = false, ok;
		char got[400] = "";

		ok = ldap_address_value(c->attr, c->val, strlen(c->val), &a,
					&len, &primary);
		if (ok)
			snprintf(got, sizeof(got), "%.*s", (int)len, a);
		snprintf(what, sizeof(what), "%s: \"%s\"", c->attr, c->val);
		CHECK_STR(ok ? got : NULL, c->want, what);
		if (ok)
			CHECK_INT(primary, c->primary, what);
	}
	return test_done("test_ldap_backend");
}
