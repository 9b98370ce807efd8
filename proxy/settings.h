/* What every serving thread shares: the settings (config, TLS contexts,
 * resolved smarthosts), reference counted and swapped on reload (a
 * session keeps the settings it started with), and the counters the
 * status line shows. */
#ifndef AUTHRELAY_SETTINGS_H
#define AUTHRELAY_SETTINGS_H

#include <stdatomic.h>

#include <openssl/ssl.h>

#include "config.h"

struct relay_targets;
struct shared_params;

struct settings {
	atomic_uint refs;
	struct config *cfg;
	SSL_CTX *ssl_ctx;		/* for clients */
	SSL_CTX *relay_ssl_ctx;		/* towards smarthosts */
	struct relay_targets *relay_targets;
	char *relay_secret;		/* [relay] auth_password_file's line */
	struct shared_params *shared;	/* [policy] shared_state, or NULL */
};

/* The current settings, referenced; settings_put() when done. */
struct settings *settings_get(void);
void settings_put(struct settings **st);
/* Make st (which the caller gives up) the current settings. */
void settings_publish(struct settings *st);

struct stats {
	atomic_ulong sessions_active;
	atomic_ulong sessions_total;
	atomic_ulong auth_ok;
	atomic_ulong auth_failed;
	atomic_ulong auth_tempfail;
};
extern struct stats stats;

#endif
