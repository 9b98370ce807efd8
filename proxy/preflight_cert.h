/* The pre-flight's check of one [tls] pair: it loads and matches its
 * key; the chain verifies from the leaf up to a root in the system
 * trust store (or a self-signed root the file holds, said so); the days
 * left (fewer than CERT_WARN_DAYS warn, expired fails); the names cover
 * [server] hostname. One check_line() per finding. */
#ifndef AUTHRELAY_PREFLIGHT_CERT_H
#define AUTHRELAY_PREFLIGHT_CERT_H

#include "bundle.h"
#include "config.h"

void preflight_check_certificate(const struct config *cfg,
				 const struct bundle *b,
				 const struct config_tls_pair *pair);

#endif
