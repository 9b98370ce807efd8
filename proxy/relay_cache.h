/* Idle smarthost connections kept for the next session, one cache per
 * serving thread (like Postfix's scache): after a session, a relay
 * connection that is set up (TLS, our AUTH) goes back here after an
 * RSET answered 250, instead of QUIT; the next session of the thread
 * made with the same settings takes it instead of connecting,
 * handshaking and authenticating again.
 *
 * Capped by [relay] connection_cache (0: none) and
 * connection_cache_idle; never used with xclient = yes or auth_user =
 * @sender, where the upstream session carries the user's identity. An
 * idle connection is watched on the loop: anything the smarthost sends,
 * or its close, drops it. A reused connection that fails before its
 * first MAIL is answered (lost, timed out, or 4xx) is dropped and the
 * MAIL goes again, once, on a fresh connection: the client does not
 * notice. */
#ifndef AUTHRELAY_RELAY_CACHE_H
#define AUTHRELAY_RELAY_CACHE_H

#include <stdbool.h>

struct relay_cache;

/* empty(ctx) is called whenever the last relay opened through the cache
 * is gone (for a thread that waits for its QUITs before it ends). */
struct relay_cache *relay_cache_new(void (*empty)(void *ctx), void *ctx);
/* Relays opened through the cache that still exist (sessions', idle,
 * saying QUIT). */
unsigned relay_cache_open_count(const struct relay_cache *c);
/* A reload: every idle connection says QUIT (made with the old
 * settings, none is taken again). */
void relay_cache_flush(struct relay_cache *c);
/* Shutdown: flush, and keep no connection from now on. */
void relay_cache_stop(struct relay_cache *c);
/* After the loop has ended. */
void relay_cache_free(struct relay_cache **c);

#endif
