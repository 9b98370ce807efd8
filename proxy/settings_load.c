#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "relay.h"
#include "settings_load.h"
#include "shared_state.h"
#include "tls.h"
#include "xalloc.h"

#define CONFIG_FILE_MAX (1024 * 1024)

static void add_file(struct bundle *b, const struct config *cfg,
		     const char *what, const char *path,
		     struct config_errors *errs)
{
	const char *error;

	if (path != NULL && bundle_add_file(b, path, &error) < 0)
		config_errors_add(errs, "%s: %s %s: %s", cfg->path, what,
				  path, error);
}

static struct bundle *config_bundle(const char *path, const void *text,
				    size_t len, struct config_errors *errs)
{
	struct bundle *b = bundle_new();
	const char *error;

	if (bundle_add(b, BUNDLE_CONFIG, text, len, &error) < 0 ||
	    bundle_add(b, BUNDLE_CONFIG_PATH, path, strlen(path), &error) < 0) {
		config_errors_add(errs, "%s: %s", path, error);
		bundle_free(&b);
	}
	return b;
}

int settings_read(const char *path, struct bundle **net_r,
		  struct bundle **worker_r, struct config **cfg_r,
		  struct config_errors *errs)
{
	struct bundle *file = bundle_new(), *net = NULL, *worker = NULL;
	struct config *cfg = NULL;
	struct settings *st;
	const unsigned char *text;
	const char *error;
	size_t len, nerr = errs->n;

	/* Read once: what is checked is what is handed over. */
	if (bundle_add_file(file, path, &error) < 0) {
		config_errors_add(errs, "%s: cannot open: %s", path, error);
		goto fail;
	}
	if (!bundle_get(file, path, &text, &len) || len > CONFIG_FILE_MAX) {
		config_errors_add(errs, "%s: larger than %d octets", path,
				  CONFIG_FILE_MAX);
		goto fail;
	}
	cfg = config_load_mem(path, text, len, true, errs);
	if (cfg == NULL)
		goto fail;
	net = config_bundle(path, text, len, errs);
	worker = config_bundle(path, text, len, errs);
	if (net == NULL || worker == NULL)
		goto fail;
	for (size_t i = 0; i < cfg->n_tls; i++) {
		add_file(net, cfg, "[tls] cert", cfg->tls[i].cert, errs);
		add_file(net, cfg, "[tls] key", cfg->tls[i].key, errs);
	}
	add_file(net, cfg, "[relay] ca_file", cfg->relay_ca_file, errs);
	add_file(net, cfg, "[relay] auth_password_file",
		 cfg->relay_auth_password_file, errs);
	/* Redis is spoken to by the network process alone. */
	add_file(net, cfg, "[policy] shared_state_password_file",
		 cfg->shared_state_password_file, errs);
	if (cfg->backend == AUTH_BACKEND_LDAP) {
		add_file(worker, cfg, "[ldap] ca_file", cfg->ldap_ca_file,
			 errs);
		add_file(worker, cfg, "[ldap] bind_password_file",
			 cfg->ldap_bind_password_file, errs);
	}
	if (errs->n > nerr)
		goto fail;
	st = settings_from_bundle(net, errs);
	if (st == NULL)
		goto fail;
	settings_put(&st);
	bundle_free(&file);
	*net_r = net;
	*worker_r = worker;
	*cfg_r = cfg;
	return 0;
fail:
	bundle_free(&file);
	bundle_free(&net);
	bundle_free(&worker);
	config_free(&cfg);
	return -1;
}

/* The first line of the relay credential file, as the smarthost gets it. */
static char *relay_secret(const struct config *cfg, const struct bundle *b,
			  struct config_errors *errs)
{
	const unsigned char *data;
	size_t len, n;
	char *s;

	if (cfg->relay_auth_password_file == NULL)
		return NULL;
	if (!bundle_get(b, cfg->relay_auth_password_file, &data, &len)) {
		config_errors_add(errs, "%s: [relay] auth_password_file %s: "
				  "not handed over", cfg->path,
				  cfg->relay_auth_password_file);
		return NULL;
	}
	n = strcspn((const char *)data, "\r\n");
	s = xmalloc(n + 1);
	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

struct settings *settings_from_bundle(const struct bundle *b,
				      struct config_errors *errs)
{
	const unsigned char *text, *path;
	size_t len, path_len, nerr = errs->n;
	struct settings *st;
	struct config *cfg;
	SSL_CTX *ctx, *relay_ctx = NULL;
	struct relay_targets *targets = NULL;
	struct shared_params *shared = NULL;
	char *secret;

	if (!bundle_get(b, BUNDLE_CONFIG, &text, &len) ||
	    !bundle_get(b, BUNDLE_CONFIG_PATH, &path, &path_len)) {
		config_errors_add(errs, "settings: no config handed over");
		return NULL;
	}
	cfg = config_load_mem((const char *)path, text, len, false, errs);
	if (cfg == NULL)
		return NULL;
	ctx = tls_server_ctx_new(cfg, b, errs);
	if (ctx != NULL)
		relay_ctx = relay_tls_ctx_new(cfg, b, errs);
	if (relay_ctx != NULL)
		targets = relay_targets_resolve(cfg, errs);
	secret = relay_secret(cfg, b, errs);
	if (targets != NULL)
		shared = shared_params_new(cfg, b, errs);
	if (targets == NULL || errs->n > nerr) {
		shared_params_free(&shared);
		if (secret != NULL)
			free_secret(secret, strlen(secret) + 1);
		relay_targets_free(&targets);
		SSL_CTX_free(ctx);
		SSL_CTX_free(relay_ctx);
		config_free(&cfg);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	atomic_init(&st->refs, 1);
	st->cfg = cfg;
	st->ssl_ctx = ctx;
	st->relay_ssl_ctx = relay_ctx;
	st->relay_targets = targets;
	st->relay_secret = secret;
	st->shared = shared;
	return st;
}
