/* authrelay --autoconfig DIR --domain DOMAIN: the files that configure
 * mail clients for this service, from the config's [server] hostname
 * and listen entries (the first `tls` one for port 465 style implicit
 * TLS, the first `starttls` one for 587 style STARTTLS):
 *
 *   DIR/mail/config-v1.1.xml          Thunderbird (Mozilla autoconfig)
 *   DIR/autodiscover/autodiscover.xml Outlook (Autodiscover, POX)
 *   DIR/apple/DOMAIN.mobileconfig     Apple Mail (com.apple.mail.managed)
 *   DIR/nginx.conf, DIR/apache.conf   where a web server serves them
 *
 * authrelay is a submission service: the incoming server (IMAP) is
 * someone else's and comes as a parameter. Apple's payload requires
 * one, so the profile is written only with it; the other two then list
 * it as well. The login name clients send is the address or its local
 * part (login); AUTOCONFIG_LOGIN_AUTO picks from the backend: the
 * address when the LDAP login attribute is mail or userPrincipalName,
 * else the local part (PAM users are system user names).
 *
 * The output depends on nothing but its inputs (profile UUIDs are
 * name-based, RFC 4122 §4.3), so regenerating gives the same files. */
#ifndef AUTHRELAY_AUTOCONFIG_H
#define AUTHRELAY_AUTOCONFIG_H

enum autoconfig_login { AUTOCONFIG_LOGIN_AUTO, AUTOCONFIG_LOGIN_ADDRESS,
			AUTOCONFIG_LOGIN_LOCALPART };

struct autoconfig_opts {
	const char *config_path;
	const char *dir;
	const char *domain;
	const char *imap;		/* "HOST[:PORT]" or NULL; 993 by
					 * default; 143: STARTTLS, any other
					 * port implicit TLS */
	enum autoconfig_login login;
};

/* Returns the exit status; errors on stderr. */
int autoconfig_run(const struct autoconfig_opts *o);

#endif
