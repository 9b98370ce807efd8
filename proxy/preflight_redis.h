/* The pre-flight's check of [policy] shared_state: connect, AUTH,
 * SELECT, PING, with the password the network process would use, each
 * step bounded by shared_state_timeout (at least a second: this is a
 * one-shot command, not the event loop). */
#ifndef AUTHRELAY_PREFLIGHT_REDIS_H
#define AUTHRELAY_PREFLIGHT_REDIS_H

struct settings;

void preflight_check_shared_state(const struct settings *st);

#endif
