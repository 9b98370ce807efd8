#include "autoconf.h"

#include "jwt.h"

#include <string.h>

#include <openssl/sha.h>

#include "base64.h"
#include "xalloc.h"

size_t jwt_b64url(const unsigned char *in, size_t len, char *out)
{
	size_t n = base64_encode(in, len, out);

	/* RFC 7515 §2: the URL-safe alphabet, no '=' padding. */
	while (n > 0 && out[n - 1] == '=')
		out[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return n;
}

int jwt_thumbprints(X509 *cert, char x5t[JWT_X5T_SIZE],
		    char x5t_s256[JWT_X5T_S256_SIZE])
{
	unsigned char *der = NULL;
	unsigned char sha1[SHA_DIGEST_LENGTH], sha256[SHA256_DIGEST_LENGTH];
	int len = i2d_X509(cert, &der);

	if (len <= 0)
		return -1;
	SHA1(der, (size_t)len, sha1);
	SHA256(der, (size_t)len, sha256);
	OPENSSL_free(der);
	_Static_assert(BASE64_ENCODED_LEN(SHA_DIGEST_LENGTH) < JWT_X5T_SIZE,
		       "x5t room");
	_Static_assert(BASE64_ENCODED_LEN(SHA256_DIGEST_LENGTH) <
		       JWT_X5T_S256_SIZE, "x5t#S256 room");
	jwt_b64url(sha1, sizeof(sha1), x5t);
	jwt_b64url(sha256, sizeof(sha256), x5t_s256);
	return 0;
}

static char *b64url_dup(const unsigned char *in, size_t len)
{
	char *out = xmalloc(BASE64_ENCODED_LEN(len) + 1);

	jwt_b64url(in, len, out);
	return out;
}

char *jwt_sign_rs256(const char *header_json, const char *claims_json,
		     EVP_PKEY *key, const char **error_r)
{
	char *h, *c, *input, *s, *jwt;
	unsigned char *sig;
	size_t siglen = 0;
	EVP_MD_CTX *md;

	if (!EVP_PKEY_is_a(key, "RSA")) {
		*error_r = "the private key is not an RSA key (RS256)";
		return NULL;
	}
	h = b64url_dup((const unsigned char *)header_json, strlen(header_json));
	c = b64url_dup((const unsigned char *)claims_json, strlen(claims_json));
	/* RFC 7515 §5.1: the signing input is the two encoded parts. */
	input = xasprintf("%s.%s", h, c);
	free(h);
	free(c);
	md = EVP_MD_CTX_new();
	if (md == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input,
			   strlen(input)) != 1) {
		EVP_MD_CTX_free(md);
		free(input);
		*error_r = "cannot sign with the private key";
		return NULL;
	}
	sig = xmalloc(siglen);
	if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input,
			   strlen(input)) != 1) {
		EVP_MD_CTX_free(md);
		free(sig);
		free(input);
		*error_r = "cannot sign with the private key";
		return NULL;
	}
	EVP_MD_CTX_free(md);
	s = b64url_dup(sig, siglen);
	free(sig);
	jwt = xasprintf("%s.%s", input, s);
	free(input);
	free(s);
	return jwt;
}
