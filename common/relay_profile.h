/* Provider profiles for [relay] profile = NAME[:ARG]: the smarthost,
 * port, TLS mode, AUTH mechanism and user-name convention each provider
 * documents, so an administrator sets only what is theirs (the secret,
 * and for OAuth2 the client id and key). Each field fills its key only
 * when the config does not give that key itself. */
#ifndef AUTHRELAY_RELAY_PROFILE_H
#define AUTHRELAY_RELAY_PROFILE_H

#include <stddef.h>

#include "config.h"

enum relay_profile_arg {
	PROFILE_ARG_NONE,	/* "NAME:x" is an error */
	PROFILE_ARG_OPTIONAL,
	PROFILE_ARG_REQUIRED,	/* "NAME" alone is an error */
};

#define RELAY_PROFILE_ARG_MAX 64

struct relay_profile {
	const char *name;
	enum relay_profile_arg arg;
	const char *arg_what;	/* "region", "tenant" */
	/* "%s" in host and token_url stands for the argument. */
	const char *host;
	const char *port;
	enum relay_tls tls;
	enum relay_auth_mech mech;	/* AUTO: PLAIN or LOGIN as offered */
	const char *auth_user;		/* a fixed user name, or NULL */
	enum oauth2_grant grant;
	const char *token_url;		/* used only with an argument */
	const char *scope;
	/* Needs [relay] ca_file or tls_verify = no (a local bridge with
	 * its own certificate). */
	unsigned needs_ca : 1;
	const char *source;		/* the provider's documentation */
};

/* The profile spec names ("NAME" or "NAME:ARG"). Returns the profile and
 * copies the argument ("" if none) into arg (RELAY_PROFILE_ARG_MAX + 1
 * octets); NULL with *error_r set when the name is unknown or the
 * argument missing, unwanted or malformed. */
const struct relay_profile *relay_profile_find(const char *spec, char *arg,
					       const char **error_r);
/* The table, for documentation and tests: n_r entries. */
const struct relay_profile *relay_profile_all(size_t *n_r);

#endif
