/* authrelay --check: the pre-flight. Beyond -t it contacts what the
 * configuration names, with the daemon's own code, and writes one
 * check_line() per check (check_line.h):
 *
 *   config        settings_read() and config_check_semantics(), as -t
 *   certificate   per [tls] cert/key pair: loads and matches (the
 *                 daemon's TLS context was built from it), the chain
 *                 verifies to a trusted root, days left (< 21: warn,
 *                 expired: FAIL), covers [server] hostname
 *   smarthost     per [relay] smarthost: the relay client (relay.c)
 *                 connects, greets, speaks EHLO, STARTTLS or implicit
 *                 TLS with the configured verification, AUTH with the
 *                 relay credential (an OAuth2 token fetched by
 *                 authrelay-token as the supervisor does), XCLIENT when
 *                 configured; then QUIT
 *   ldap          in an auth worker started as the supervisor starts
 *                 them (authrelay-auth --check: ldap_backend_check)
 *   pam           the service file and NSS groups (config_check.h)
 *   user          with check_user: the password from standard input
 *                 through a real auth worker; canonical name, groups,
 *                 addresses, and whether the user may send as from
 *
 * Never opens a listener and never sends a message. */
#ifndef AUTHRELAY_PREFLIGHT_H
#define AUTHRELAY_PREFLIGHT_H

struct preflight_opts {
	const char *config_path;
	const char *check_user;		/* NULL: no login check */
	const char *from;		/* NULL: no sender check */
};

/* Returns the exit status: 0 when no check failed, else 1. */
int preflight_run(const struct preflight_opts *o);

#endif
