/* authrelay-token: fetch one OAuth2 access token for the smarthost.
 *
 *   authrelay-token -c CONFIG [--user MAILBOX]
 *
 * Run one-shot by the privileged side of authrelay, which holds the
 * client secret and the private keys: the network process only ever
 * receives the access token. Reads the [relay] oauth2_* keys of CONFIG
 * (which may be /dev/fd/N), asks the token endpoint over HTTPS with
 * certificate verification, and prints exactly one line on stdout:
 *
 *   OK <expires_in_seconds> <access_token>     exit 0
 *   TEMPFAIL <reason>                          exit 75 (EX_TEMPFAIL)
 *   PERMFAIL <reason>                          exit 1
 *
 * The reason is for the log; no secret is ever printed. Grants:
 * client_credentials (RFC 6749 §4.4) with a client secret or a signed
 * client assertion (RFC 7523 §2.2), and jwt_bearer (RFC 7523 §2.1) for a
 * Google service account with domain-wide delegation. */

#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "auth_proto.h"
#include "config.h"
#include "jwt.h"
#include "token_reply.h"
#include "xalloc.h"

#define EXIT_TEMPFAIL 75	/* sysexits.h EX_TEMPFAIL */
#define SECRET_FILE_MAX (64 * 1024)	/* keys, certificates, JSON keys */
#define CLIENT_SECRET_MAX 4096
/* Microsoft: a client assertion may be valid for at most 10 minutes;
 * Google: at most an hour. Five minutes covers the exchange. */
#define ASSERTION_LIFETIME 300
#define JSON_DEPTH 8

struct fetch {
	const struct config *cfg;
	const char *mailbox;
	const char *token_url;		/* jwt_bearer: may come from the key */
	char *form;			/* the POST body: holds secrets */
	size_t form_len;
};

static void out(enum token_result res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void out(enum token_result res, const char *fmt, ...)
{
	char reason[TOKEN_REASON_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	token_reason_clean(reason);
	printf("%s %s\n", res == TOKEN_TEMPFAIL ? "TEMPFAIL" : "PERMFAIL",
	       reason);
	fflush(stdout);
	exit(res == TOKEN_TEMPFAIL ? EXIT_TEMPFAIL : 1);
}

/* A whole (small) file, NUL-terminated; wipe with free_secret(buf,
 * SECRET_FILE_MAX + 1). */
static char *read_file(const char *path, const char *what, size_t *len_r)
{
	char *buf = xmalloc(SECRET_FILE_MAX + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	size_t len = 0;
	ssize_t n;

	if (fd < 0) {
		free(buf);
		out(TOKEN_PERMFAIL, "cannot open %s %s: %s", what, path,
		    strerror(errno));
	}
	while (len < SECRET_FILE_MAX &&
	       (n = read(fd, buf + len, SECRET_FILE_MAX - len)) > 0)
		len += (size_t)n;
	if (len == SECRET_FILE_MAX && read(fd, &(char){ 0 }, 1) > 0) {
		close(fd);
		free_secret(buf, SECRET_FILE_MAX + 1);
		out(TOKEN_PERMFAIL, "%s %s is larger than %d octets", what,
		    path, SECRET_FILE_MAX);
	}
	close(fd);
	buf[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return buf;
}

/* application/x-www-form-urlencoded (RFC 6749 appendix B). */
static void form_add(struct fetch *f, CURL *curl, const char *name,
		     const char *value)
{
	char *esc = curl_easy_escape(curl, value, 0);
	size_t add, vlen;
	char *grown;

	if (esc == NULL)
		out(TOKEN_TEMPFAIL, "out of memory");
	vlen = strlen(esc);
	add = (f->form_len > 0 ? 1 : 0) + strlen(name) + 1 + vlen;
	grown = xmalloc(f->form_len + add + 1);
	if (f->form != NULL) {
		memcpy(grown, f->form, f->form_len);
		free_secret(f->form, f->form_len + 1);
	}
	snprintf(grown + f->form_len, add + 1, "%s%s=%s",
		 f->form_len > 0 ? "&" : "", name, esc);
	explicit_bzero(esc, vlen);
	curl_free(esc);
	f->form = grown;
	f->form_len += add;
}

static EVP_PKEY *load_key(const char *pem, size_t len, const char *what)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key = bio != NULL ?
		PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	if (key == NULL)
		out(TOKEN_PERMFAIL, "%s: no PEM private key (an encrypted key "
		    "is not supported)", what);
	return key;
}

static void random_id(char *buf, size_t size)
{
	unsigned char raw[16];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		out(TOKEN_TEMPFAIL, "no randomness for the assertion id");
	for (size_t i = 0; i < sizeof(raw) && 2 * i + 2 < size; i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
}

static char *json_text(json_object *o)
{
	char *s = xstrdup(json_object_to_json_string_ext(o,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(o);
	return s;
}

static char *sign(json_object *header, json_object *claims, EVP_PKEY *key)
{
	char *h = json_text(header), *c = json_text(claims), *jwt;
	const char *error = NULL;

	jwt = jwt_sign_rs256(h, c, key, &error);
	free(h);
	free(c);
	if (jwt == NULL)
		out(TOKEN_PERMFAIL, "%s", error);
	return jwt;
}

/* RFC 7523 §2.2 / §3: a client assertion for the client-credentials
 * grant, as Entra ID takes it: x5t#S256 (and x5t for older tenants)
 * name the certificate uploaded to the app registration; aud is the
 * token URL; iss and sub are the client id; jti is unique. */
static char *client_assertion(struct fetch *f)
{
	const struct config *cfg = f->cfg;
	size_t len;
	char *pem = read_file(cfg->oauth2_client_certificate,
			      "oauth2_client_certificate", &len);
	char x5t[JWT_X5T_SIZE], x5t_s256[JWT_X5T_S256_SIZE], jti[40];
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) :
		     NULL;
	EVP_PKEY *key;
	json_object *h, *c;
	time_t now = time(NULL);
	char *jwt;

	BIO_free(bio);
	free_secret(pem, SECRET_FILE_MAX + 1);
	if (cert == NULL)
		out(TOKEN_PERMFAIL, "oauth2_client_certificate: no PEM "
		    "certificate");
	pem = read_file(cfg->oauth2_client_key, "oauth2_client_key", &len);
	key = load_key(pem, len, "oauth2_client_key");
	free_secret(pem, SECRET_FILE_MAX + 1);
	if (X509_check_private_key(cert, key) != 1)
		out(TOKEN_PERMFAIL, "oauth2_client_certificate does not match "
		    "oauth2_client_key");
	if (jwt_thumbprints(cert, x5t, x5t_s256) < 0)
		out(TOKEN_PERMFAIL, "oauth2_client_certificate: cannot encode");
	X509_free(cert);
	random_id(jti, sizeof(jti));

	h = json_object_new_object();
	json_object_object_add(h, "alg", json_object_new_string("RS256"));
	json_object_object_add(h, "typ", json_object_new_string("JWT"));
	json_object_object_add(h, "x5t", json_object_new_string(x5t));
	json_object_object_add(h, "x5t#S256", json_object_new_string(x5t_s256));
	c = json_object_new_object();
	json_object_object_add(c, "aud", json_object_new_string(f->token_url));
	json_object_object_add(c, "iss",
			       json_object_new_string(cfg->oauth2_client_id));
	json_object_object_add(c, "sub",
			       json_object_new_string(cfg->oauth2_client_id));
	json_object_object_add(c, "jti", json_object_new_string(jti));
	json_object_object_add(c, "iat", json_object_new_int64(now));
	json_object_object_add(c, "nbf", json_object_new_int64(now));
	json_object_object_add(c, "exp",
			       json_object_new_int64(now + ASSERTION_LIFETIME));
	jwt = sign(h, c, key);
	EVP_PKEY_free(key);
	return jwt;
}

static void grant_client_credentials(struct fetch *f, CURL *curl)
{
	const struct config *cfg = f->cfg;

	f->token_url = cfg->oauth2_token_url;
	form_add(f, curl, "grant_type", "client_credentials");
	form_add(f, curl, "client_id", cfg->oauth2_client_id);
	form_add(f, curl, "scope", cfg->oauth2_scope);
	if (cfg->oauth2_client_secret_file != NULL) {
		char *secret = read_file(cfg->oauth2_client_secret_file,
					 "oauth2_client_secret_file", NULL);

		/* The file's first line, without its line end. */
		secret[strcspn(secret, "\r\n")] = '\0';
		if (secret[0] == '\0' || strlen(secret) > CLIENT_SECRET_MAX) {
			free_secret(secret, SECRET_FILE_MAX + 1);
			out(TOKEN_PERMFAIL, "oauth2_client_secret_file: empty "
			    "or longer than %d octets", CLIENT_SECRET_MAX);
		}
		/* RFC 6749 §2.3.1: client_secret in the request body. */
		form_add(f, curl, "client_secret", secret);
		free_secret(secret, SECRET_FILE_MAX + 1);
	} else {
		char *jwt = client_assertion(f);

		form_add(f, curl, "client_assertion_type",
			 "urn:ietf:params:oauth:client-assertion-type:"
			 "jwt-bearer");
		form_add(f, curl, "client_assertion", jwt);
		free_secret(jwt, strlen(jwt) + 1);
	}
}

static const char *key_string(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Google's service account key: a JSON object with client_email,
 * private_key (PEM), private_key_id and token_uri. The assertion
 * (RFC 7523 §3, Google "OAuth 2.0 for Server to Server Applications")
 * names the mailbox in sub: domain-wide delegation lets the service
 * account act for it. */
static void grant_jwt_bearer(struct fetch *f, CURL *curl, char **url_r)
{
	const struct config *cfg = f->cfg;
	size_t len;
	char *text = read_file(cfg->oauth2_service_account_file,
			       "oauth2_service_account_file", &len);
	json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	json_object *sa = tok != NULL ?
		json_tokener_parse_ex(tok, text, (int)len) : NULL;
	const char *email, *pk, *kid, *uri;
	json_object *h, *c;
	EVP_PKEY *key;
	time_t now = time(NULL);
	char *jwt;

	json_tokener_free(tok);
	free_secret(text, SECRET_FILE_MAX + 1);
	if (sa == NULL || !json_object_is_type(sa, json_type_object))
		out(TOKEN_PERMFAIL, "oauth2_service_account_file: not a JSON "
		    "object");
	email = key_string(sa, "client_email");
	pk = key_string(sa, "private_key");
	kid = key_string(sa, "private_key_id");
	uri = key_string(sa, "token_uri");
	if (email == NULL || pk == NULL)
		out(TOKEN_PERMFAIL, "oauth2_service_account_file: no "
		    "client_email or private_key (not a service account "
		    "key?)");
	if (cfg->oauth2_token_url != NULL)
		uri = cfg->oauth2_token_url;
	if (uri == NULL || strncmp(uri, "https://", 8) != 0)
		out(TOKEN_PERMFAIL, "oauth2_service_account_file: token_uri "
		    "missing or not https (set oauth2_token_url)");
	*url_r = xstrdup(uri);
	f->token_url = *url_r;
	key = load_key(pk, strlen(pk), "oauth2_service_account_file "
		       "private_key");
	/* json-c keeps the string: wipe it in place before letting go. */
	explicit_bzero((char *)pk, strlen(pk));

	h = json_object_new_object();
	json_object_object_add(h, "alg", json_object_new_string("RS256"));
	json_object_object_add(h, "typ", json_object_new_string("JWT"));
	if (kid != NULL)
		json_object_object_add(h, "kid", json_object_new_string(kid));
	c = json_object_new_object();
	json_object_object_add(c, "iss", json_object_new_string(email));
	json_object_object_add(c, "sub", json_object_new_string(f->mailbox));
	json_object_object_add(c, "scope",
			       json_object_new_string(cfg->oauth2_scope));
	json_object_object_add(c, "aud", json_object_new_string(f->token_url));
	json_object_object_add(c, "iat", json_object_new_int64(now));
	json_object_object_add(c, "exp",
			       json_object_new_int64(now + ASSERTION_LIFETIME));
	json_object_put(sa);
	jwt = sign(h, c, key);
	EVP_PKEY_free(key);
	form_add(f, curl, "grant_type",
		 "urn:ietf:params:oauth:grant-type:jwt-bearer");
	form_add(f, curl, "assertion", jwt);
	free_secret(jwt, strlen(jwt) + 1);
}

struct body {
	char *buf;
	size_t len;
	bool too_large;
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct body *b = ctx;
	size_t len = size * n;

	if (len > TOKEN_RESPONSE_MAX - b->len) {
		b->too_large = true;
		return 0;	/* stops the transfer */
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	return len;
}

static void post(struct fetch *f, CURL *curl, struct token_reply *r)
{
	const struct config *cfg = f->cfg;
	long timeout_ms = (long)(cfg->oauth2_timeout_usec / 1000);
	struct body b = { xmalloc(TOKEN_RESPONSE_MAX + 1), 0, false };
	struct curl_slist *headers =
		curl_slist_append(NULL, "Accept: application/json");
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;

	curl_easy_setopt(curl, CURLOPT_URL, f->token_url);
	/* HTTPS only, no redirects: the secret goes to this URL alone. */
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
	if (cfg->oauth2_ca_file != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, cfg->oauth2_ca_file);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "authrelay-token/"
			 PACKAGE_VERSION);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, f->form);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)f->form_len);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(curl);
	free_secret(f->form, f->form_len + 1);
	f->form = NULL;
	curl_slist_free_all(headers);
	memset(r, 0, sizeof(*r));
	if (b.too_large) {
		r->result = TOKEN_TEMPFAIL;
		snprintf(r->reason, sizeof(r->reason), "token endpoint response "
			 "larger than %d octets", TOKEN_RESPONSE_MAX);
	} else if (rc != CURLE_OK) {
		r->result = TOKEN_TEMPFAIL;
		snprintf(r->reason, sizeof(r->reason), "token endpoint "
			 "unreachable: %s%s%s", curl_easy_strerror(rc),
			 errbuf[0] ? ": " : "", errbuf);
	} else {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		token_reply_parse(status, b.buf, b.len, r);
	}
	free_secret(b.buf, TOKEN_RESPONSE_MAX + 1);
}

/* The mailbox goes into a JWT and, later, into the SMTP AUTH string:
 * printable ASCII without space, bounded. */
static bool mailbox_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AUTH_USER_MAX || strchr(s, '@') == NULL)
		return false;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~')
			return false;
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: authrelay-token -c CONFIG [--user MAILBOX]\n"
		"Prints one line: OK <expires_in> <token>, TEMPFAIL <reason> "
		"or PERMFAIL <reason>.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config_errors errs = { NULL, 0 };
	const char *path = NULL, *user = NULL;
	struct fetch f = { 0 };
	struct token_reply *r;
	char *url = NULL;
	struct config *cfg;
	CURL *curl;
	int c;

	/* Keys and secrets pass through this process: no core dumps. */
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	while ((c = getopt_long(argc, argv, "c:u:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			out(TOKEN_PERMFAIL, "usage");
		}
	}
	if (path == NULL || optind < argc) {
		usage(stderr);
		out(TOKEN_PERMFAIL, "usage");
	}
	cfg = config_load(path, false, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	config_errors_clear(&errs);
	if (cfg == NULL)
		out(TOKEN_PERMFAIL, "invalid configuration %s", path);
	if (cfg->oauth2_grant == OAUTH2_GRANT_NONE)
		out(TOKEN_PERMFAIL, "no [relay] oauth2_grant configured");
	if (user == NULL)
		user = cfg->relay_auth_user;
	if (user == NULL)
		out(TOKEN_PERMFAIL, "auth_user = @sender: give the mailbox "
		    "with --user");
	if (!mailbox_ok(user))
		out(TOKEN_PERMFAIL, "malformed mailbox");
	f.cfg = cfg;
	f.mailbox = user;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (curl = curl_easy_init()) == NULL)
		out(TOKEN_TEMPFAIL, "cannot initialize libcurl");
	if (cfg->oauth2_grant == OAUTH2_GRANT_CLIENT_CREDENTIALS)
		grant_client_credentials(&f, curl);
	else
		grant_jwt_bearer(&f, curl, &url);
	r = xmalloc(sizeof(*r));
	post(&f, curl, r);
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	free(url);
	config_free(&cfg);
	if (r->result != TOKEN_OK) {
		char reason[TOKEN_REASON_MAX + 1];

		memcpy(reason, r->reason, sizeof(reason));
		c = r->result;
		free_secret(r, sizeof(*r));
		out(c, "%s", reason);
	}
	printf("OK %ld %s\n", r->expires_in, r->token);
	free_secret(r, sizeof(*r));
	return fflush(stdout) == 0 ? 0 : EXIT_TEMPFAIL;
}
