/* The LDAP backend of the auth worker: find the user (a search with the
 * service account, or user_dn_template), verify the password with a
 * simple bind as the user on a connection used only for user binds,
 * check require_group membership (member, uniqueMember, memberUid or
 * memberOf; nested groups on request) and read the user's addresses.
 * Blocking: runs in the worker process only, one request at a time.
 *
 * Connections: one search connection (bound as bind_dn, or anonymous
 * without one) and one user-bind connection, each opened on the first
 * [ldap] uri that answers, in order, kept open across requests and
 * reopened after any error. A connection that turns out dead when it is
 * reused (the server restarted) is reopened and the step retried once.
 * A server that failed (no connection, TLS or service bind failure, a
 * timeout) is tried after the others for 30 s; a connection without a
 * bind or TLS to prove the server answers reads the root DSE first.
 *
 * Time: every connect, TLS handshake and operation waits at most
 * [ldap] timeout, and never past the request's deadline (nine tenths of
 * [auth] worker_timeout after it arrived), so the worker answers before
 * the daemon gives up on it.
 *
 * Groups: [auth] require_group and the groups of [policy] send_as are
 * DNs. Membership is looked up upwards from the user: groups whose
 * member (uniqueMember, memberUid = the entry's uid) holds the user, or
 * the user's memberOf; with nested_groups, the groups holding those,
 * level by level (member/uniqueMember by DN, or each group's memberOf),
 * each group once (cycles end), at most 8 levels and 1024 groups, under
 * base. A require_group that is not a DN matches nobody (logged at
 * start). send_as addresses follow the entry's own in the reply.
 *
 * Results: OK only after a successful bind and group check; PERMFAIL
 * (535) when the directory says no (no such user, more than one entry,
 * wrong password, not in a group); TEMPFAIL (454) for anything else: no
 * server reachable, a timeout, TLS failure, an unexpected result code.
 *
 * TLS: ldaps://, or StartTLS on ldap:// with starttls = yes (required:
 * a failure is a failed server); the chain is verified against ca_file
 * (empty: /etc/ssl/certs/ca-certificates.crt) and the URI's host name
 * against the certificate, TLS 1.2 at least.
 *
 * In user_dn_template mode the entry (canonical name, addresses,
 * memberOf) is read as the user, on the bind connection, right after the
 * bind; group searches always run on the search connection.
 *
 * The canonical name (reply USER) is the login name as the directory
 * spells it: the value of the attribute the login is matched against
 * (the attribute before "=%u" in user_filter or user_dn_template, e.g.
 * uid or sAMAccountName) that equals the login name ignoring ASCII case;
 * else that attribute's only value; else the login name as sent. */
#ifndef AUTHRELAY_LDAP_BACKEND_H
#define AUTHRELAY_LDAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "auth_proto.h"
#include "config.h"

struct ldap_backend;

/* cfg must outlive the backend; nothing is sent to a server yet. Sets
 * up the process for libldap: LDAPNOINIT (authrelay.conf is the only
 * configuration: no ldap.conf, ~/.ldaprc or LDAP* variables), SIGPIPE
 * ignored, SIGALRM and ITIMER_REAL taken (a watchdog for the waits
 * libldap cannot bound itself). */
struct ldap_backend *ldap_backend_new(const struct config *cfg);
void ldap_backend_free(struct ldap_backend **lb);
/* Secrets handed over by the privileged side, for a worker that cannot
 * open the files: the content of bind_password_file (copied; used
 * instead of reading the file when not NULL) and a path to read the CA
 * certificates from instead of [ldap] ca_file (e.g. /proc/self/fd/N of a
 * memfd), when not NULL. */
void ldap_backend_set_secrets(struct ldap_backend *lb,
			      const void *bind_password, size_t len,
			      const char *ca_file);

/* Authenticate req and fill in rep->result and rep->reason, and on OK
 * rep->user (the canonical name) and rep->address. rep->id is the
 * caller's. The caller owns req and wipes its password; none is copied
 * here (libldap frees its encoding of the bind request unwiped). */
void ldap_backend_auth(struct ldap_backend *lb,
		       const struct auth_request *req, struct auth_reply *rep);

/* The directory part of authrelay --check, in the worker: for each
 * [ldap] uri a connection as the daemon opens it (TLS verified as
 * configured, the service bind), then over the first that worked: the
 * base exists, and each group [auth] require_group and [policy] send_as,
 * group_rate and group_recipient_rate name exists. One check_line() per
 * check; returns the number of FAIL lines. */
unsigned ldap_backend_check(struct ldap_backend *lb);

/* --- exposed for tests --- */

/* Active Directory puts a sub-code in the diagnostic message of a failed
 * bind ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext
 * error, data 52e, v4563"). Returns its meaning, or NULL if diag carries
 * none we know; *code_r (4 octets) gets the code as written. */
const char *ldap_ad_bind_reason(const char *diag, char code_r[4]);

/* The attribute a login name is matched against in a user_filter or
 * user_dn_template: the attribute description before the first "=%u"
 * ("(&(objectClass=user)(sAMAccountName=%u))" -> "sAMAccountName").
 * NULL if there is none (e.g. "%u" only inside a substring). Allocated. */
char *ldap_login_attribute(const char *tmpl);

/* One value of an address attribute: true and *addr_r, *len_r set if it
 * is a sender address. proxyAddresses (Active Directory) values count
 * only with an "smtp:" prefix (any case), which is stripped; "SMTP:" in
 * capitals marks the primary address (*primary_r). Values with control
 * octets or without an '@' never count. */
bool ldap_address_value(const char *attr, const char *val, size_t len,
			const char **addr_r, size_t *len_r, bool *primary_r);

#endif
