/* Brute force and password spraying: failed logins are counted per
 * client address and per (address, login), shared by every thread.
 * - An address whose failures within failure_window reach
 *   max_failures_per_ip is blocked for block_time, doubled at each new
 *   block up to a day: the failure that reaches the limit is answered
 *   421 4.7.0, and so are the address's connections and AUTH after it,
 *   before any password is checked. max_failures_per_ip passwords are
 *   checked, never one more.
 * - Each (address, login) pair's failures lengthen that pair's delay
 *   before the 535 exponentially (failure_delay * 2^(n-1), at most 60s).
 * Keyed by address, so an attacker elsewhere never locks the real user
 * out. Per instance. */
#ifndef AUTHRELAY_AUTH_THROTTLE_H
#define AUTHRELAY_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

/* Is addr blocked at now (CLOCK_MONOTONIC usec)? */
bool auth_throttle_blocked(const struct sockaddr_storage *addr, uint64_t now);
/* Count a failure; returns the delay before the 535 and sets *blocked_r
 * if this failure got the address blocked. */
uint64_t auth_throttle_failure(const struct config *cfg,
			       const struct sockaddr_storage *addr,
			       const char *login, uint64_t now,
			       bool *blocked_r);
/* The delay before the 535 for the n_pair-th failure of a pair. */
uint64_t auth_throttle_delay(const struct config *cfg, unsigned n_pair);
/* The longest block: block_time doubles up to this. */
#define AUTH_THROTTLE_BLOCK_MAX_USEC (86400 * USEC_PER_SEC)
/* A success clears the (address, login) pair's back-off. */
void auth_throttle_success(const struct sockaddr_storage *addr,
			   const char *login);
void auth_throttle_clear(void);

#endif
