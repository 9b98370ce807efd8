/* Per-user rate limits ([policy] user_rate, user_recipient_rate): events
 * per sliding window, shared by every thread, per instance. The window
 * slides over two fixed halves-of-history (the previous window's count
 * weighted by how much of it still overlaps), so memory is two counters
 * per user and limit. */
#ifndef AUTHRELAY_RATE_LIMIT_H
#define AUTHRELAY_RATE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

enum rate_kind { RATE_MESSAGES, RATE_RECIPIENTS };

/* Would n more events for user exceed rate at now (CLOCK_MONOTONIC
 * usec)? A rate with count 0 never does. */
bool rate_limit_exceeded(enum rate_kind kind, const struct config_rate *rate,
			 const char *user, unsigned n, uint64_t now);
/* Count n events. */
void rate_limit_add(enum rate_kind kind, const struct config_rate *rate,
		    const char *user, unsigned n, uint64_t now);
/* Check and count in one step (under one lock, so sessions of the same
 * user on several threads cannot all slip under the limit): false, and
 * nothing counted, if n more would exceed it. What is taken stays taken
 * even if the message then fails (as Postfix's anvil counts). */
bool rate_limit_take(enum rate_kind kind, const struct config_rate *rate,
		     const char *user, unsigned n, uint64_t now);
void rate_limit_clear(void);

#endif
