/* TLS session tickets for clients (RFC 5077; RFC 8446 §4.6.1):
 * stateless resumption with keys of our own, held in memory only and
 * shared by every serving thread (they share the settings' SSL_CTX), so
 * a client that comes back resumes whichever thread serves it. A key
 * encrypts new tickets for one lifetime and still opens them for one
 * more (a ticket opened with it is renewed with the current key), then
 * it is gone; a reload builds a new SSL_CTX and so new keys. */
#ifndef AUTHRELAY_TLS_TICKETS_H
#define AUTHRELAY_TLS_TICKETS_H

#include <stdint.h>

#include <openssl/ssl.h>

/* lifetime_usec 0: no tickets and no session cache (every connection a
 * full handshake). Returns 0, or -1 (OpenSSL error queued). */
int tls_tickets_setup(SSL_CTX *ctx, uint64_t lifetime_usec);

#endif
