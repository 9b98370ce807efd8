/* Server-side TLS context from [tls]: one or more certificate/key pairs
 * (e.g. RSA and ECDSA), minimum version, released buffers for idle
 * sessions. */
#ifndef AUTHRELAY_TLS_H
#define AUTHRELAY_TLS_H

#include <openssl/ssl.h>

#include "bundle.h"
#include "config.h"

/* Returns a new context, or NULL with "FILE:LINE: message" errors added
 * (file missing from the bundle, bad PEM, certificate not matching its
 * key). Certificates and keys come from b (read by the privileged side),
 * never from the file system. */
SSL_CTX *tls_server_ctx_new(const struct config *cfg, const struct bundle *b,
			    struct config_errors *errs);

/* The PEM entry path of b as a read-only memory BIO, or NULL. */
BIO *tls_bundle_bio(const struct bundle *b, const char *path);

#endif
