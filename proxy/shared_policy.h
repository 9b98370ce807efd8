/* The policy checks that several nodes share through Redis
 * (shared_state.h): per-user rates, brute-force counts and blocks, and
 * the credential cache's invalidation. Each verb answers through a
 * callback, at once when there is no shared state (node-local tables,
 * exactly as with one instance) and otherwise when Redis has answered
 * or shared_state_timeout has passed.
 *
 * With Redis: the node-local tables still learn what was counted (so a
 * node that loses Redis goes on from a warm table), but Redis decides.
 * When Redis cannot answer, shared_state_failure = open decides with
 * the node-local tables; closed refuses (POLICY_UNAVAILABLE: the
 * session answers 451 4.7.0, or 454 4.7.0 for AUTH). Failed logins are
 * always counted, locally at least: a refusal they lead to is a 535
 * whatever Redis does.
 *
 * What goes to Redis (keys under [policy] shared_state_prefix): counters
 * and block marks whose names carry user names and client addresses
 * only as keyed hashes (HMAC-SHA-256 under a key derived from the
 * shared_state password, cut to 128 bits); never a password, a password
 * hash or message content. */
#ifndef AUTHRELAY_SHARED_POLICY_H
#define AUTHRELAY_SHARED_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "rate_limit.h"
#include "settings.h"
#include "shared_state.h"

enum policy_verdict { POLICY_OK, POLICY_REFUSED, POLICY_UNAVAILABLE };

typedef void policy_cb(void *ctx, enum policy_verdict v);

/* Take one event of kind against rate for user: REFUSED over the limit. */
void shared_policy_rate_take(struct shared_state *ss, struct settings *st,
			     enum rate_kind kind,
			     const struct config_rate *rate, const char *user,
			     uint64_t now, struct shared_call **slot,
			     policy_cb *cb, void *ctx);
/* Is addr blocked after failed logins? REFUSED: it is. */
void shared_policy_blocked(struct shared_state *ss, struct settings *st,
			   const struct sockaddr_storage *addr, uint64_t now,
			   struct shared_call **slot, policy_cb *cb,
			   void *ctx);

/* A failed login: counted, and the user's cached credential dropped on
 * every node. blocked: this failure got the address blocked; delay:
 * before the 535 (auth_throttle.h). */
typedef void policy_failure_cb(void *ctx, bool blocked, uint64_t delay);
void shared_policy_auth_failure(struct shared_state *ss, struct settings *st,
				const struct sockaddr_storage *addr,
				const char *login, uint64_t now,
				struct shared_call **slot,
				policy_failure_cb *cb, void *ctx);
/* A successful login clears its (address, login) back-off. */
void shared_policy_auth_success(struct shared_state *ss, struct settings *st,
				const struct sockaddr_storage *addr,
				const char *login);

/* Credentials for login arrived from addr, before any is checked: is
 * the address blocked on any node (REFUSED), and may the credential
 * cache be used? On OK, entries verified before an eviction on any
 * node are gone from the node's cache, and gen is the shared generation
 * a credential verified from now on is stored with (0 without Redis).
 * UNAVAILABLE (closed): no login now, 454 4.7.0. */
typedef void policy_auth_cb(void *ctx, enum policy_verdict v, uint64_t gen);
void shared_policy_auth_check(struct shared_state *ss, struct settings *st,
			      const struct sockaddr_storage *addr,
			      const char *login, uint64_t now,
			      struct shared_call **slot, policy_auth_cb *cb,
			      void *ctx);
/* A reload: every node's cached credentials are dropped. */
void shared_policy_evict_all(struct shared_state *ss, struct settings *st);

/* The Redis key for a hashed name: prefix, kind, 32 hex digits of
 * HMAC-SHA-256(key, name)[0..16). For tests. */
void shared_policy_key(const struct settings *st, const char *kind,
		       const void *name, size_t len, char *buf, size_t size);

#endif
