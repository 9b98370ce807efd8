/* The credential cache: successful logins remembered for [auth] cache_ttl,
 * shared by every loop thread, so a hit never reaches an auth worker (nor
 * PAM, nor the directory). An entry holds the login name, a keyed hash
 * (HMAC-SHA-256 under a random key made at start-up, never stored) of
 * the password, the canonical name and the user's addresses; never the
 * password. A failed login for a cached name drops its entry; a reload
 * drops them all. */
#ifndef AUTHRELAY_AUTH_CACHE_H
#define AUTHRELAY_AUTH_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "auth_proto.h"

/* Make the key; once, before any thread uses the cache. -1 if no
 * randomness could be had (then the cache stays off). */
int auth_cache_init(void);

#define AUTH_CACHE_HASH_LEN 32

/* The keyed hash of login and password, computed once per AUTH: the
 * session keeps it (not the password) until the worker answers. */
int auth_cache_hash(const char *login, const char *password,
		    unsigned char out[AUTH_CACHE_HASH_LEN]);
/* On a hit, fills rep (result AUTH_OK, user, addresses) and returns
 * true. now: CLOCK_MONOTONIC usec. */
bool auth_cache_lookup(const char *login,
		       const unsigned char hash[AUTH_CACHE_HASH_LEN],
		       uint64_t now, struct auth_reply *rep);
void auth_cache_store(const char *login,
		      const unsigned char hash[AUTH_CACHE_HASH_LEN],
		      const struct auth_reply *rep, uint64_t now, uint64_t ttl);
/* The same, the entry marked with gen: the shared generation
 * (shared_policy.h) it was verified at. */
void auth_cache_store_gen(const char *login,
			  const unsigned char hash[AUTH_CACHE_HASH_LEN],
			  const struct auth_reply *rep, uint64_t now,
			  uint64_t ttl, uint64_t gen);
void auth_cache_forget(const char *login);
/* Forget login's entry if it was verified before generation evicted. */
void auth_cache_forget_older(const char *login, uint64_t evicted);
void auth_cache_clear(void);
unsigned auth_cache_size(void);

#endif
