/* Server-side TLS context from [tls]: one or more certificate/key pairs
 * (e.g. RSA and ECDSA), minimum version, released buffers for idle
 * sessions. */
#ifndef AUTHRELAY_TLS_H
#define AUTHRELAY_TLS_H

#include <openssl/ssl.h>

#include "config.h"

/* Returns a new context, or NULL with "FILE:LINE: message" errors added
 * (unreadable file, bad PEM, certificate not matching its key). */
SSL_CTX *tls_server_ctx_new(const struct config *cfg,
			    struct config_errors *errs);

#endif
