/* Escaping at the LDAP boundary: every login name or DN that goes into a
 * search filter is escaped per RFC 4515, every login name that goes into
 * a DN per RFC 4514. The results are allocated (never NULL; out of
 * memory is fatal) and belong to the caller. */
#ifndef AUTHRELAY_LDAP_ESCAPE_H
#define AUTHRELAY_LDAP_ESCAPE_H

#include <stddef.h>

/* RFC 4515 §3: the value of a filter item (len octets, may hold NUL):
 * "*", "(", ")", "\" and NUL (and, as libldap does, every octet outside
 * printable ASCII) become "\XX". */
char *ldap_escape_filter(const char *value, size_t len);

/* RFC 4514 §2.4: an attribute value of a DN (len octets, may hold NUL):
 * '"', '+', ',', ';', '<', '>', '=', '\' become "\c"; a leading '#' or
 * space and a trailing space become "\c"; NUL and other control octets
 * become "\XX". Octets >= 0x80 (UTF-8) are kept as they are. */
char *ldap_escape_dn_value(const char *value, size_t len);

/* tmpl with every "%u" replaced by value (already escaped for where it
 * goes); any other '%' is kept. */
char *ldap_expand_login(const char *tmpl, const char *value);

#endif
