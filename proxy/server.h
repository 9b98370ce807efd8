/* The serving threads: each runs its own sd-event loop on the same
 * listening sockets, with its own auth worker pool. Settings (config and
 * TLS context) are shared, reference counted and swapped on reload:
 * a session keeps the settings it started with. */
#ifndef AUTHRELAY_SERVER_H
#define AUTHRELAY_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <openssl/ssl.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "listen.h"

struct relay_targets;

struct settings {
	atomic_uint refs;
	struct config *cfg;
	SSL_CTX *ssl_ctx;		/* for clients */
	SSL_CTX *relay_ssl_ctx;		/* towards smarthosts */
	struct relay_targets *relay_targets;
	char *relay_secret;		/* [relay] auth_password_file's line */
};


/* The current settings, referenced; settings_put() when done. */
struct settings *settings_get(void);
void settings_put(struct settings **st);
/* Make st (which the caller gives up) the current settings. */
void settings_publish(struct settings *st);

struct stats {
	atomic_ulong sessions_active;
	atomic_ulong sessions_total;
	atomic_ulong auth_ok;
	atomic_ulong auth_failed;
	atomic_ulong auth_tempfail;
};
extern struct stats stats;

struct smtp_session;
struct server_thread;

/* Start n serving threads on the listeners. done_fd (an eventfd) is
 * written once by each thread when it has finished. */
int servers_start(unsigned n, const struct listener *ls, size_t n_ls,
		  int done_fd);
/* Tell every thread to reload (recycle auth workers) or to stop
 * (stop accepting, close idle sessions, the rest within
 * shutdown_timeout). */
void servers_reload(void);
void servers_stop(void);
void servers_join(void);
/* True if every serving loop has turned since the last call. */
bool servers_alive(void);

/* For sessions. */
sd_event *server_event(struct server_thread *t);
struct auth_pool *server_auth_pool(struct server_thread *t);
bool server_stopping(const struct server_thread *t);
/* A session joins its thread's list at once and leaves it when freed. */
void server_session_add(struct server_thread *t, struct smtp_session *s);
void server_session_gone(struct server_thread *t, struct smtp_session *s);

#endif
