#include "autoconf.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "base64.h"
#include "sasl.h"

/* RFC 4616 §2: [authzid] NUL authcid NUL passwd. The authzid must equal
 * the authcid, so it is bounded like the user name. */
#define PLAIN_MAX (AUTH_USER_MAX * 2 + AUTH_PASSWORD_MAX + 2)
/* Longest base64 input that may decode to PLAIN_MAX octets; anything
 * longer is refused before decoding. */
#define PLAIN_B64_MAX BASE64_ENCODED_LEN(PLAIN_MAX)
#define LOGIN_B64_MAX BASE64_ENCODED_LEN(AUTH_PASSWORD_MAX)

static char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* Locale-independent: strcasecmp() would fold per the locale. */
static bool ascii_caseeq(const char *a, const char *upper)
{
	for (; *a != '\0' && *upper != '\0'; a++, upper++)
		if (ascii_upper(*a) != *upper)
			return false;
	return *a == *upper;
}

enum sasl_mech sasl_mech_parse(const char *name)
{
	if (name == NULL)
		return SASL_MECH_NONE;
	if (ascii_caseeq(name, "PLAIN"))
		return SASL_MECH_PLAIN;
	if (ascii_caseeq(name, "LOGIN"))
		return SASL_MECH_LOGIN;
	return SASL_MECH_NONE;
}

/* A login name with control characters is never valid, and would end up
 * in logs and headers: refuse it as malformed. */
static bool has_ctl(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return true;
	return false;
}

enum sasl_status sasl_plain_decode(const char *b64, size_t len,
				   struct sasl_credentials *creds)
{
	/* room for every input up to PLAIN_B64_MAX, which may decode to
	 * a little more than PLAIN_MAX: the field limits catch that */
	unsigned char buf[BASE64_DECODED_MAX(PLAIN_B64_MAX)];
	const unsigned char *authzid, *authcid, *passwd, *nul, *end;
	size_t zlen, clen, plen;
	enum sasl_status status;
	long n;

	assert(creds != NULL);
	if (len > PLAIN_B64_MAX) {
		explicit_bzero(creds, sizeof(*creds));
		return SASL_TOO_LONG;
	}

	n = base64_decode(b64, len, buf, sizeof(buf));
	if (n < 0) {
		status = SASL_BAD_BASE64;
		goto out;
	}
	end = buf + n;

	/* RFC 4616 §2: exactly two NULs, so no part contains one. */
	authzid = buf;
	nul = memchr(authzid, '\0', (size_t)(end - authzid));
	if (nul == NULL) {
		status = SASL_BAD_FORMAT;
		goto out;
	}
	zlen = (size_t)(nul - authzid);
	authcid = nul + 1;
	nul = memchr(authcid, '\0', (size_t)(end - authcid));
	if (nul == NULL) {
		status = SASL_BAD_FORMAT;
		goto out;
	}
	clen = (size_t)(nul - authcid);
	passwd = nul + 1;
	plen = (size_t)(end - passwd);
	if (memchr(passwd, '\0', plen) != NULL) {
		status = SASL_BAD_FORMAT;
		goto out;
	}

	if (clen == 0 || has_ctl(authcid, clen)) {
		status = SASL_BAD_FORMAT;
		goto out;
	}
	if (zlen > AUTH_USER_MAX || clen > AUTH_USER_MAX ||
	    plen > AUTH_PASSWORD_MAX) {
		status = SASL_TOO_LONG;
		goto out;
	}
	/* RFC 4616 §2: an authzid names the identity to act as; we act
	 * only as the authenticated user. */
	if (zlen != 0 &&
	    (zlen != clen || memcmp(authzid, authcid, clen) != 0)) {
		status = SASL_AUTHZID_MISMATCH;
		goto out;
	}

	memcpy(creds->user, authcid, clen);
	creds->user[clen] = '\0';
	/* RFC 4616 §2 makes passwd 1*SAFE, yet an empty one is decoded
	 * (sasl.h): the backend refuses it (RFC 4513 §5.1.2, an
	 * unauthenticated bind) with the same delayed 535 as any other
	 * bad password. */
	memcpy(creds->password, passwd, plen);
	creds->password[plen] = '\0';
	status = SASL_OK;

out:
	explicit_bzero(buf, sizeof(buf));
	if (status != SASL_OK)
		explicit_bzero(creds, sizeof(*creds));
	return status;
}

enum sasl_status sasl_login_decode(const char *b64, size_t len, char *out,
				   size_t max)
{
	unsigned char buf[BASE64_DECODED_MAX(LOGIN_B64_MAX)];
	enum sasl_status status;
	long n;

	assert(out != NULL);
	assert(max <= AUTH_PASSWORD_MAX);
	if (len > BASE64_ENCODED_LEN(max)) {
		explicit_bzero(out, max + 1);
		return SASL_TOO_LONG;
	}

	n = base64_decode(b64, len, buf, sizeof(buf));
	if (n < 0) {
		status = SASL_BAD_BASE64;
		goto out;
	}
	if (memchr(buf, '\0', (size_t)n) != NULL) {
		status = SASL_BAD_FORMAT;
		goto out;
	}
	if ((size_t)n > max) {
		status = SASL_TOO_LONG;
		goto out;
	}
	/* max == AUTH_USER_MAX marks the user name step (sasl.h): an empty
	 * user name is malformed, an empty password is the backend's to
	 * refuse. */
	if (max == AUTH_USER_MAX && (n == 0 || has_ctl(buf, (size_t)n))) {
		status = SASL_BAD_FORMAT;
		goto out;
	}

	memcpy(out, buf, (size_t)n);
	out[n] = '\0';
	status = SASL_OK;

out:
	explicit_bzero(buf, sizeof(buf));
	if (status != SASL_OK)
		explicit_bzero(out, max + 1);
	return status;
}
