/* The daemon's side of authentication: a pool of auth worker processes
 * (one per loop thread), each handling one request at a time over a
 * SOCK_SEQPACKET socketpair, recycled after worker_max_requests, replaced
 * when they die. A request in flight when its worker dies, times out or
 * answers nonsense gets AUTH_TEMPFAIL, never AUTH_OK. */
#ifndef AUTHRELAY_AUTH_CLIENT_H
#define AUTHRELAY_AUTH_CLIENT_H

#include <systemd/sd-event.h>

#include "auth_proto.h"

struct auth_pool;
struct auth_lookup;

/* Called exactly once per lookup that was not cancelled, always from the
 * event loop (never from within auth_pool_lookup). */
typedef void auth_callback(const struct auth_reply *reply, void *ctx);

struct auth_pool *auth_pool_new(sd_event *event, unsigned max_workers);
void auth_pool_free(struct auth_pool **pool);

/* After a reload: every worker is replaced once idle, so new requests are
 * served with the new config. */
void auth_pool_recycle(struct auth_pool *pool);
unsigned auth_pool_workers(const struct auth_pool *pool);

/* Start a lookup. user/password are copied (the copy is wiped once sent
 * to the worker); the caller may wipe its own at once. */
struct auth_lookup *auth_pool_lookup(struct auth_pool *pool, const char *user,
				     const char *password,
				     const char *client_ip,
				     auth_callback *cb, void *ctx);
/* The callback will not be called. */
void auth_lookup_cancel(struct auth_lookup **lookup);

#endif
