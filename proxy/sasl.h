/* SASL PLAIN (RFC 4616) and LOGIN decoding for SMTP AUTH (RFC 4954).
 * Pure functions: no I/O, no allocation. Every buffer that held a
 * password is wiped before return on every path. */
#ifndef AUTHRELAY_SASL_H
#define AUTHRELAY_SASL_H

#include <stddef.h>

#include "auth_proto.h"

enum sasl_mech { SASL_MECH_NONE = 0, SASL_MECH_PLAIN, SASL_MECH_LOGIN };

enum sasl_status {
	SASL_OK = 0,
	SASL_BAD_BASE64,	/* 501 5.5.2 */
	SASL_BAD_FORMAT,	/* wrong NUL count, empty authcid: 501 5.5.2 */
	SASL_AUTHZID_MISMATCH,	/* authzid given and != authcid: 535 5.7.8 */
	SASL_TOO_LONG,		/* user or password over the limits: 501 5.5.2 */
};

struct sasl_credentials {
	char user[AUTH_USER_MAX + 1];
	char password[AUTH_PASSWORD_MAX + 1];
};

/* Mechanism name, case-insensitive ("PLAIN", "login"); NONE if unknown. */
enum sasl_mech sasl_mech_parse(const char *name);

/* PLAIN: base64 of [authzid] NUL authcid NUL passwd (RFC 4616 §2).
 * Exactly two NULs; authcid non-empty, no NUL in any part. An empty
 * password is decoded (the backend refuses it). An authzid equal to
 * authcid is accepted. On failure creds is wiped. */
enum sasl_status sasl_plain_decode(const char *b64, size_t len,
				   struct sasl_credentials *creds);

/* LOGIN: one base64 string (user name or password); no NUL allowed.
 * out gets a NUL-terminated string of at most max octets (max is
 * AUTH_USER_MAX or AUTH_PASSWORD_MAX). On failure out is wiped. */
enum sasl_status sasl_login_decode(const char *b64, size_t len, char *out,
				   size_t max);

/* The LOGIN prompts, base64 of "Username:" and "Password:". */
#define SASL_LOGIN_PROMPT_USER "VXNlcm5hbWU6"
#define SASL_LOGIN_PROMPT_PASS "UGFzc3dvcmQ6"

#endif
