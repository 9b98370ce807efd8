#include "autoconf.h"

#include <limits.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "tls.h"
#include "tls_tickets.h"

/* TLS 1.2 and older: forward-secret AEAD suites only (the Mozilla
 * "intermediate" profile without DHE), ECDSA first. RSA key exchange and
 * CBC suites (LUCKY13) are left out. TLS 1.3 suites are OpenSSL's own
 * (SSL_CTX_set_ciphersuites is not called): all of them are AEAD. */
#define TLS_DEFAULT_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static void add_ssl_error(struct config_errors *errs, const char *file,
			  unsigned line, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	config_errors_add(errs, "%s:%u: %s %s: %s", file, line, what, path,
			  buf);
}

BIO *tls_bundle_bio(const struct bundle *b, const char *path)
{
	const unsigned char *data;
	size_t len;

	if (!bundle_get(b, path, &data, &len) || len > INT_MAX)
		return NULL;
	return BIO_new_mem_buf(data, (int)len);
}

/* A certificate chain file (leaf first, as SSL_CTX_use_certificate_chain_
 * file reads it) from the bundle into the context's current slot. */
static int use_chain(SSL_CTX *ctx, const struct bundle *b, const char *path)
{
	BIO *bio = tls_bundle_bio(b, path);
	X509 *x;
	int ok = 0;

	if (bio == NULL)
		return 0;
	x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
	if (x != NULL && SSL_CTX_use_certificate(ctx, x) == 1 &&
	    SSL_CTX_clear_chain_certs(ctx) == 1) {
		X509 *ca;

		ok = 1;
		while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
			if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
				X509_free(ca);
				ok = 0;
				break;
			}
		}
		/* The end of the file, or a broken PEM block after it. */
		if (ok && ERR_GET_REASON(ERR_peek_last_error()) ==
		    PEM_R_NO_START_LINE)
			ERR_clear_error();
		else if (ERR_peek_error() != 0)
			ok = 0;
	}
	X509_free(x);
	BIO_free(bio);
	return ok;
}

static int use_key(SSL_CTX *ctx, const struct bundle *b, const char *path)
{
	BIO *bio = tls_bundle_bio(b, path);
	EVP_PKEY *key;
	int ok;

	if (bio == NULL)
		return 0;
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	ok = key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1;
	EVP_PKEY_free(key);
	BIO_free(bio);
	return ok;
}

SSL_CTX *tls_server_ctx_new(const struct config *cfg, const struct bundle *b,
			    struct config_errors *errs)
{
	size_t nerr = errs->n;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		config_errors_add(errs, "%s: cannot create TLS context",
				  cfg->path);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_version);
	/* Idle sessions keep no record buffers (DESIGN: tens of KiB each). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
			 SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* One read() per burst of records instead of two per record (its
	 * header, then the rest); conn.c looks at SSL_has_pending(). */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
			    SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"authrelay",
				       9);
	if (tls_tickets_setup(ctx, cfg->tls_ticket_lifetime_usec) < 0)
		add_ssl_error(errs, cfg->path, 0, "cannot set up",
			      "TLS session tickets");
	if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers != NULL ?
				    cfg->tls_ciphers : TLS_DEFAULT_CIPHERS) != 1)
		config_errors_add(errs, "%s: invalid [tls] ciphers: %s",
				  cfg->path, cfg->tls_ciphers);

	for (size_t i = 0; i < cfg->n_tls; i++) {
		const struct config_tls_pair *p = &cfg->tls[i];

		if (use_chain(ctx, b, p->cert) != 1) {
			add_ssl_error(errs, cfg->path, p->cert_line,
				      "cannot load certificate", p->cert);
			continue;
		}
		if (use_key(ctx, b, p->key) != 1) {
			add_ssl_error(errs, cfg->path, p->key_line,
				      "cannot load key", p->key);
			continue;
		}
		/* Checks the pair just loaded (OpenSSL keeps one per key
		 * type). */
		if (SSL_CTX_check_private_key(ctx) != 1) {
			ERR_clear_error();
			config_errors_add(errs,
					  "%s:%u: key %s does not match certificate %s",
					  cfg->path, p->key_line, p->key,
					  p->cert);
		}
	}
	if (errs->n > nerr) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
