/* Shared state ([policy] shared_state): one Redis connection per serving
 * thread, driven by the thread's sd-event loop through hiredis' async
 * API, never blocking it.
 *
 * Every call has a deadline (shared_state_timeout). A call that cannot
 * be answered -- Redis down, connecting failed, the password refused, an
 * error reply, or no answer in time -- is answered "unavailable" (a NULL
 * result), at once when the connection is known to be down. Redis that
 * misses a deadline is taken for down: the connection is dropped and
 * made again after a back-off (RECONNECT_MIN doubling to RECONNECT_MAX).
 * An outage is logged once for the whole process when it starts and
 * once when every thread is connected again; a refused password once
 * per RECONNECT_MAX.
 *
 * Scripts run with EVALSHA; their SHA-1 is computed here and each is
 * loaded (SCRIPT LOAD) on every new connection, before any call. */
#ifndef AUTHRELAY_SHARED_STATE_H
#define AUTHRELAY_SHARED_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "bundle.h"
#include "config.h"

#define SHARED_KEY_LEN 32
#define SHARED_RESULT_MAX 4
#define SHARED_ARG_MAX 8

/* Where Redis is and how to log in: built from the config and the
 * bundle (the password file's first line) in the network process at
 * start and at reload. The host is resolved there, off the loops. */
struct shared_params {
	char *host;		/* numeric address; NULL: Unix socket */
	unsigned port;
	char *path;		/* Unix socket */
	char *user;		/* NULL: the default user */
	char *password;		/* NULL: none; a secret */
	unsigned db;
	char *display;		/* the URI, for logs */
	/* What names are hashed under before they go to Redis: HMAC-SHA-256
	 * of "authrelay shared_state names" under the password (or the
	 * prefix, without one), so every node derives the same key. */
	unsigned char key[SHARED_KEY_LEN];
};

/* NULL and nothing added to errs when shared_state is not set. */
struct shared_params *shared_params_new(const struct config *cfg,
					const struct bundle *b,
					struct config_errors *errs);
void shared_params_free(struct shared_params **p);

/* The scripts (shared_policy.c has their text and their contract). */
enum shared_script {
	SHARED_RATE_TAKE,
	SHARED_BLOCKED,
	SHARED_AUTH_FAILURE,
	SHARED_AUTH_SUCCESS,
	SHARED_EVICT,
	SHARED_AUTH_CHECK,
	SHARED_N_SCRIPTS
};
extern const char *const shared_script_text[SHARED_N_SCRIPTS];

struct shared_state;
struct shared_call;

/* v: up to SHARED_RESULT_MAX integers of the script's array reply (a nil
 * element is 0), NULL when unavailable. */
typedef void shared_state_cb(const long long *v, size_t n, void *ctx);

struct shared_state *shared_state_new(sd_event *event);
/* Connect to p (referenced by the caller's settings for as long as it is
 * given here), or keep the connection when p says the same as before;
 * NULL: no shared state. */
void shared_state_configure(struct shared_state *ss,
			    const struct shared_params *p);
void shared_state_free(struct shared_state **ss);
bool shared_state_enabled(const struct shared_state *ss);

/* Run script with keys and args; cb(ctx) with the result, then
 * ctx_free(ctx) (if not NULL) in any case. When the answer is known at
 * once (down), cb runs before this returns and NULL is returned; else
 * the call, which *slot also holds until cb runs (shared_call_cancel()
 * takes it back). slot may be NULL (no waiting party). */
struct shared_call *shared_state_eval(struct shared_state *ss,
				      enum shared_script script,
				      const char *const *keys, size_t n_keys,
				      const char *const *args, size_t n_args,
				      uint64_t timeout_usec,
				      struct shared_call **slot,
				      shared_state_cb *cb, void *ctx,
				      void (*ctx_free)(void *ctx));
/* The caller is gone: cb will not run (ctx_free still will). */
void shared_call_cancel(struct shared_call **slot);

#endif
