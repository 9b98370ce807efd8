/* What authrelay -t checks beyond syntax and files: that the names the
 * configuration gives can work on this system. With backend = pam, every
 * group named by [auth] require_group, [policy] send_as, group_rate and
 * group_recipient_rate exists in NSS, and the PAM service has its file;
 * with backend = ldap those groups are DNs (RFC 4514 syntax).
 *
 * A problem that would refuse every login is an error ("FILE:LINE:
 * message"); one that may be intended, or that only disables one rule, is
 * a warning ("FILE:LINE: warning: message"). */
#ifndef AUTHRELAY_CONFIG_CHECK_H
#define AUTHRELAY_CONFIG_CHECK_H

#include <stdbool.h>

#include "config.h"

/* Appends errors to errs and warnings to warnings; returns the number of
 * errors added. Looks up NSS groups (and, for groups without
 * supplementary members, enumerates passwd up to a bound to find users
 * whose primary group it is) and stats the PAM service file: in
 * $PAM_WRAPPER_SERVICE_DIR when PAM_WRAPPER=1 (pam_wrapper, as the tests
 * run it), else in /etc/pam.d. */
size_t config_check_semantics(const struct config *cfg,
			      struct config_errors *errs,
			      struct config_errors *warnings);

/* RFC 4514 §3 distinguished name syntax (one or more RDNs), with the
 * spaces around ',' '+' '=' that directories also accept. */
bool config_check_is_dn(const char *s);

#endif
