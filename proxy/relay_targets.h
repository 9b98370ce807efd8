/* The smarthosts of [relay], resolved (at load and reload, never on the
 * event loop), the TLS client context towards them, and the shared list
 * of smarthosts that failed recently (skipped for a while). Part of the
 * settings; the relay reads them. */
#ifndef AUTHRELAY_RELAY_TARGETS_H
#define AUTHRELAY_RELAY_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "config.h"

struct relay_target {
	char *host;
	char *port;
	char *name;			/* "host:port" for logs */
	struct sockaddr_storage *addrs;
	socklen_t *lens;
	size_t n_addrs;			/* 0: did not resolve */
};

struct relay_targets {
	struct relay_target *t;
	size_t n;
};

/* Resolved smarthosts, part of the settings (resolved at load and
 * reload, never on the event loop). */
struct relay_targets *relay_targets_resolve(const struct config *cfg,
					    struct config_errors *errs);
void relay_targets_free(struct relay_targets **t);
/* The client TLS context for smarthosts ([relay] ca_file, read from
 * the bundle, or the system store). */
struct bundle;
SSL_CTX *relay_tls_ctx_new(const struct config *cfg, const struct bundle *b,
			   struct config_errors *errs);

/* Failed smarthosts, shared by every thread: name is skipped until
 * until (CLOCK_MONOTONIC usec); 0 clears it. */
bool relay_target_is_dead(const char *name, uint64_t now);
void relay_target_set_dead(const char *name, uint64_t until);

#endif
