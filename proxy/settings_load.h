/* Reading the configuration on the privileged side, and building the
 * network process's settings from what it was handed.
 *
 * settings_read() runs in the supervisor (and for -t): it reads the
 * config file once, checks it (every named file readable), and puts the
 * text and the files it names into two bundles: one for the network
 * process (TLS certificates and keys, [relay] ca_file and
 * auth_password_file, [policy] shared_state_password_file), one for
 * the auth workers ([ldap]
 * bind_password_file and ca_file). Neither gets the other's secrets.
 * It then builds the network process's settings once from its bundle,
 * so that a key that does not match its certificate fails here, before
 * anything is handed over. */
#ifndef AUTHRELAY_SETTINGS_LOAD_H
#define AUTHRELAY_SETTINGS_LOAD_H

#include "bundle.h"
#include "config.h"
#include "server.h"

int settings_read(const char *path, struct bundle **net_r,
		  struct bundle **worker_r, struct config **cfg_r,
		  struct config_errors *errs);

/* The network process's settings (refs 1) from its bundle; NULL with
 * errors. */
struct settings *settings_from_bundle(const struct bundle *b,
				      struct config_errors *errs);

#endif
