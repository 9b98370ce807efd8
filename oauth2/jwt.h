/* JSON Web Tokens signed with RS256 (RFC 7515 §A.2, RFC 7518 §3.3), for
 * the two assertions authrelay-token makes: the client assertion of the
 * client-credentials grant (RFC 7523 §2.2, Microsoft Entra ID
 * "certificate credentials") and the authorization grant of a Google
 * service account (RFC 7523 §2.1). */
#ifndef AUTHRELAY_JWT_H
#define AUTHRELAY_JWT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* base64url without padding (RFC 7515 §2); out needs
 * BASE64_ENCODED_LEN(len) + 1 octets. Returns the length. */
size_t jwt_b64url(const unsigned char *in, size_t len, char *out);

/* Room for the base64url thumbprints: the encoder writes the padded
 * form (BASE64_ENCODED_LEN + NUL) before the padding is cut. */
#define JWT_X5T_SIZE 29		/* SHA-1: 20 octets */
#define JWT_X5T_S256_SIZE 45	/* SHA-256: 32 octets */

/* The x5t (SHA-1) and x5t#S256 (SHA-256) thumbprints of cert's DER
 * encoding (RFC 7515 §4.1.7, §4.1.8), base64url. Returns 0, or -1. */
int jwt_thumbprints(X509 *cert, char x5t[JWT_X5T_SIZE],
		    char x5t_s256[JWT_X5T_S256_SIZE]);

/* header.claims.signature from the two JSON texts, signed with key (RSA,
 * PKCS #1 v1.5 with SHA-256). Returns a malloc'd string, or NULL with
 * *error_r set. */
char *jwt_sign_rs256(const char *header_json, const char *claims_json,
		     EVP_PKEY *key, const char **error_r);

#endif
