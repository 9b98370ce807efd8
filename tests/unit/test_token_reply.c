/* oauth2/token_reply.c: the token endpoint's answers, classified; and
 * oauth2/jwt.c: an RS256 JWT whose signature verifies with the key's
 * public half, in base64url without padding. */

#include "autoconf.h"

#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "base64.h"
#include "jwt.h"
#include "test.h"
#include "token_reply.h"

static const struct {
	long status;
	const char *body;
	enum token_result result;
	long expires_in;
	const char *token;
	const char *reason;	/* a part of it */
} cases[] = {
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
	  "\"access_token\":\"eyJ0eXAi.abc-_~+/==\"}", TOKEN_OK, 3599,
	  "eyJ0eXAi.abc-_~+/==", "" },
	{ 200, "{\"token_type\":\"bearer\",\"expires_in\":\"60\","
	  "\"access_token\":\"ya29.x\"}", TOKEN_OK, 60, "ya29.x", "" },
	{ 200, "{\"access_token\":\"t\"}", TOKEN_OK, TOKEN_DEFAULT_LIFETIME,
	  "t", "" },
	{ 200, "{\"access_token\":\"a b\"}", TOKEN_TEMPFAIL, 0, "",
	  "not a bearer token" },
	{ 200, "{\"access_token\":\"a\\r\\nQUIT\"}", TOKEN_TEMPFAIL, 0, "",
	  "not a bearer token" },
	{ 200, "{\"access_token\":\"t\",\"token_type\":\"mac\"}",
	  TOKEN_TEMPFAIL, 0, "", "token_type mac" },
	{ 200, "{\"access_token\":\"t\",\"expires_in\":-5}", TOKEN_TEMPFAIL,
	  0, "", "expires_in" },
	{ 200, "{\"access_token\":\"t\"} trailing", TOKEN_TEMPFAIL, 0, "",
	  "not a JSON object" },
	{ 200, "[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]", TOKEN_TEMPFAIL,
	  0, "", "not a JSON object" },
	{ 200, "{}", TOKEN_TEMPFAIL, 0, "", "no access_token" },
	{ 401, "{\"error\":\"invalid_client\",\"error_description\":"
	  "\"AADSTS7000215: Invalid client secret provided.\"}",
	  TOKEN_PERMFAIL, 0, "", "invalid_client (HTTP 401) AADSTS7000215" },
	{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
	  "\"AADSTS65001: The user or administrator has not consented\"}",
	  TOKEN_PERMFAIL, 0, "", "consent missing" },
	{ 401, "{\"error\":\"unauthorized_client\"}", TOKEN_PERMFAIL, 0, "",
	  "domain-wide delegation" },
	{ 503, "{\"error\":\"temporarily_unavailable\"}", TOKEN_TEMPFAIL, 0,
	  "", "temporarily_unavailable (HTTP 503)" },
	{ 502, "<html>Bad gateway</html>", TOKEN_TEMPFAIL, 0, "",
	  "HTTP 502" },
	{ 429, "{\"error\":\"slow_down\"}", TOKEN_TEMPFAIL, 0, "",
	  "too many requests" },
	{ 404, "", TOKEN_TEMPFAIL, 0, "", "without an OAuth2 error" },
	{ 400, "{\"error\":\"bad\\u0007\\ncode\"}", TOKEN_PERMFAIL, 0, "",
	  "bad??code" },
};

static void test_replies(void)
{
	struct token_reply *r = malloc(sizeof(*r));

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "case %zu", i);
		token_reply_parse(cases[i].status, cases[i].body,
				  strlen(cases[i].body), r);
		CHECK_INT(r->result, cases[i].result, what);
		CHECK_INT(r->expires_in, cases[i].expires_in, what);
		CHECK_STR(r->token, cases[i].token, what);
		CHECK(strstr(r->reason, cases[i].reason) != NULL,
		      "%s: got reason \"%s\", want \"%s\" in it", what,
		      r->reason, cases[i].reason);
	}
	free(r);
}

static size_t unb64url(const char *in, size_t len, unsigned char *out)
{
	char buf[1024];
	size_t n = 0;
	long got;

	for (size_t i = 0; i < len; i++)
		buf[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (n % 4 != 0)
		buf[n++] = '=';
	got = base64_decode(buf, n, out, 512);
	return got < 0 ? 0 : (size_t)got;
}

static void test_jwt(void)
{
	EVP_PKEY *key = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	const char *error = NULL;
	char *jwt = jwt_sign_rs256("{\"alg\":\"RS256\"}", "{\"sub\":\"a\"}",
				   key, &error);
	char *dot1, *dot2, hdr[64];
	unsigned char sig[512];
	size_t siglen;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	CHECK(jwt != NULL, "jwt_sign_rs256: got NULL (%s)", error);
	dot1 = strchr(jwt, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	CHECK(dot2 != NULL, "got %s, want three parts", jwt);
	CHECK(strchr(jwt, '=') == NULL && strchr(jwt, '+') == NULL &&
	      strchr(jwt, '/') == NULL, "got %s, want base64url", jwt);
	snprintf(hdr, sizeof(hdr), "%.*s", (int)(dot1 - jwt), jwt);
	CHECK_STR(hdr, "eyJhbGciOiJSUzI1NiJ9", "header");
	siglen = unb64url(dot2 + 1, strlen(dot2 + 1), sig);
	CHECK_INT(siglen, 256, "signature length");
	CHECK(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	      EVP_DigestVerify(md, sig, siglen, (unsigned char *)jwt,
			       (size_t)(dot2 - jwt)) == 1,
	      "RS256 signature does not verify");
	EVP_MD_CTX_free(md);
	free(jwt);
	jwt = jwt_sign_rs256("{}", "{}", ec, &error);
	CHECK(jwt == NULL, "an EC key: got a JWT, want an error");
	CHECK_STR(error, "the private key is not an RSA key (RS256)", "error");
	EVP_PKEY_free(key);
	EVP_PKEY_free(ec);
}

int main(void)
{
	test_replies();
	test_jwt();
	return test_done("test_token_reply");
}
