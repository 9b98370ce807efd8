#include "autoconf.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "log.h"
#include "relay_targets.h"
#include "tls.h"
#include "xalloc.h"

#define RELAY_DEAD_SLOTS 64

struct relay_targets *relay_targets_resolve(const struct config *cfg,
					    struct config_errors *errs)
{
	struct relay_targets *ts = xcalloc(1, sizeof(*ts));

	ts->t = xcalloc(cfg->n_smarthost ? cfg->n_smarthost : 1,
			sizeof(*ts->t));
	ts->n = cfg->n_smarthost;
	for (size_t i = 0; i < cfg->n_smarthost; i++) {
		const struct config_hostport *h = &cfg->smarthost[i];
		struct relay_target *t = &ts->t[i];
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
					  .ai_flags = AI_NUMERICSERV };
		struct addrinfo *res = NULL, *ai;
		int r;

		t->host = xstrdup(h->host);
		t->port = xstrdup(h->port);
		t->name = xasprintf("%s%s%s:%s", strchr(h->host, ':') ? "[" : "",
				    h->host, strchr(h->host, ':') ? "]" : "",
				    h->port);
		r = getaddrinfo(h->host, h->port, &hints, &res);
		if (r != 0) {
			/* Not fatal: DNS may come back; the host counts as
			 * unreachable until the next reload. */
			log_warn("%s:%u: smarthost %s: %s", cfg->path, h->line,
				 t->name, gai_strerror(r));
			continue;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next)
			t->n_addrs++;
		t->addrs = xcalloc(t->n_addrs, sizeof(*t->addrs));
		t->lens = xcalloc(t->n_addrs, sizeof(*t->lens));
		t->n_addrs = 0;
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (ai->ai_addrlen > sizeof(t->addrs[0]))
				continue;
			memcpy(&t->addrs[t->n_addrs], ai->ai_addr, ai->ai_addrlen);
			t->lens[t->n_addrs++] = ai->ai_addrlen;
		}
		freeaddrinfo(res);
	}
	(void)errs;
	return ts;
}

void relay_targets_free(struct relay_targets **tsp)
{
	struct relay_targets *ts = *tsp;

	if (ts == NULL)
		return;
	*tsp = NULL;
	for (size_t i = 0; i < ts->n; i++) {
		free(ts->t[i].host);
		free(ts->t[i].port);
		free(ts->t[i].name);
		free(ts->t[i].addrs);
		free(ts->t[i].lens);
	}
	free(ts->t);
	free(ts);
}

/* ca_file from the bundle into the context's store. */
static int load_ca(SSL_CTX *ctx, const struct bundle *b, const char *path)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	BIO *bio = tls_bundle_bio(b, path);
	unsigned n = 0;
	X509 *x;

	if (bio == NULL)
		return 0;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, x) == 1)
			n++;
		X509_free(x);
	}
	BIO_free(bio);
	if (n > 0 && ERR_GET_REASON(ERR_peek_last_error()) ==
	    PEM_R_NO_START_LINE)
		ERR_clear_error();
	return n > 0 && ERR_peek_error() == 0;
}

SSL_CTX *relay_tls_ctx_new(const struct config *cfg, const struct bundle *b,
			   struct config_errors *errs)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		config_errors_add(errs, "%s: cannot create TLS context",
				  cfg->path);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
			 SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* One read() per burst of records instead of two per record (its
	 * header, then the rest); conn.c looks at SSL_has_pending(). */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
			    SSL_OP_NO_RENEGOTIATION);
	if (cfg->relay_ca_file != NULL) {
		if (load_ca(ctx, b, cfg->relay_ca_file) != 1) {
			unsigned long e = ERR_get_error();

			config_errors_add(errs, "%s: [relay] ca_file %s: %s",
					  cfg->path, cfg->relay_ca_file,
					  ERR_reason_error_string(e) ?
					  ERR_reason_error_string(e) : "invalid");
			ERR_clear_error();
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ERR_clear_error();
	}
	return ctx;
}

/* Smarthosts that failed recently, shared by every thread. */
static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[300];
	uint64_t until;
} dead[RELAY_DEAD_SLOTS];

bool relay_target_is_dead(const char *name, uint64_t now)
{
	bool r = false;

	pthread_mutex_lock(&dead_lock);
	for (size_t i = 0; i < RELAY_DEAD_SLOTS; i++)
		if (dead[i].until > now && strcmp(dead[i].name, name) == 0)
			r = true;
	pthread_mutex_unlock(&dead_lock);
	return r;
}

void relay_target_set_dead(const char *name, uint64_t until)
{
	size_t slot = 0;

	pthread_mutex_lock(&dead_lock);
	for (size_t i = 0; i < RELAY_DEAD_SLOTS; i++) {
		if (strcmp(dead[i].name, name) == 0) {
			slot = i;
			break;
		}
		if (dead[i].until < dead[slot].until)
			slot = i;
	}
	snprintf(dead[slot].name, sizeof(dead[slot].name), "%s", name);
	dead[slot].until = until;
	pthread_mutex_unlock(&dead_lock);
}
